"""Export tb_layerview images from event files: PNG folders and GIFs over epochs.

Reader side: reads through TensorBoard's own event-file reader and never
imports TensorFlow itself.

Command line::

    python -m tb_layerview.export LOGDIR OUT [--run RUN] [--layer LAYER]
        [--kind activations] [--probe 0] [--gif] [--scale 4]

writes ``OUT/<run>/<kind>/<layer>/step_000012_probe0.png`` for every logged
step (grey images with NaN in magenta, +Inf yellow, -Inf cyan, padding
transparent; colour filters as they are) and, with ``--gif``, one animated
GIF per (run, kind, layer, probe) with a frame per epoch.
"""

import argparse
import os
import re
import sys

import numpy as np

from tb_layerview import metadata
from tb_layerview import render

_SPECIAL = {render.ALPHA_NAN: (255, 0, 255), render.ALPHA_POSINF: (255, 255, 0),
            render.ALPHA_NEGINF: (0, 255, 255)}


def viewable(png, scale=1):
    """A stored tb_layerview PNG as an RGBA array a person can look at.

    Grey (LA) images: value as grey, alpha codes turned into colours (NaN
    magenta, +Inf yellow, -Inf cyan) and padding transparent. RGBA images are
    returned as they are. ``scale`` enlarges by pixel repetition.
    """
    img = render.decode_png(png)
    if img.ndim == 2:
        img = np.stack([img, np.full_like(img, 255)], axis=-1)
    if img.shape[2] == 2:
        value, alpha = img[..., 0], img[..., 1]
        out = np.zeros(img.shape[:2] + (4,), np.uint8)
        out[..., 0] = out[..., 1] = out[..., 2] = value
        out[..., 3] = np.where(alpha == render.ALPHA_GAP, 0, 255)
        for code, rgb in _SPECIAL.items():
            out[alpha == code, :3] = rgb
        img = out
    elif img.shape[2] == 3:
        img = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    if scale > 1:
        img = img.repeat(scale, axis=0).repeat(scale, axis=1)
    return img


def _safe(name):
    """A file-system-safe version of a run or layer name (keeps it readable)."""
    cleaned = re.sub(r"[^A-Za-z0-9._ -]+", "_", name).strip(" .")
    return cleaned or "_"


def read_series(logdir):
    """{run: [(meta, {step: [blobs]})]} of every tb_layerview image series in ``logdir``."""
    from tensorboard import context as tb_context
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer

    mult = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={metadata.PLUGIN_NAME: 0})
    mult.AddRunsFromDirectory(logdir)
    mult.Reload()
    provider = data_provider.MultiplexerDataProvider(mult, logdir)
    ctx = tb_context.RequestContext()
    listing = provider.list_blob_sequences(ctx, experiment_id="", plugin_name=metadata.PLUGIN_NAME)
    data = provider.read_blob_sequences(ctx, experiment_id="", plugin_name=metadata.PLUGIN_NAME,
                                        downsample=metadata.ALL_STEPS)
    out = {}
    for run, entry in metadata.index_series(listing).items():
        series = [s for kinds in entry["layers"].values() for s in kinds.values()] + list(entry["run"].values())
        for s in series:
            if s.meta.kind not in metadata.IMAGE_KINDS:
                continue
            steps = {d.step: [provider.read_blob(ctx, blob_key=v.blob_key) for v in d.values]
                     for d in data.get(run, {}).get(s.tag, [])}
            out.setdefault(run, []).append((s.meta, steps))
    return out


def export(logdir, out, runs=None, layers=None, kinds=("activations",), probes=None, gif=False,
           scale=1, frame_ms=400):
    """Writes PNGs (and GIFs) of the chosen series; returns the paths written.

    Args:
      logdir: a TensorBoard log directory.
      out: the folder to write into.
      runs, layers: names to export (all when None).
      kinds: series kinds, e.g. ``("activations", "filters", "maximization")``.
      probes: image indices to export (all when None).
      gif: also write one animated GIF per series and image, a frame per step.
      scale: enlarge images by this integer factor.
      frame_ms: GIF frame duration.
    """
    from PIL import Image

    written = []
    for run, series in sorted(read_series(logdir).items()):
        if runs and run not in runs:
            continue
        for meta, steps in series:
            if meta.kind not in kinds or (layers and meta.layer not in layers):
                continue
            folder = os.path.join(out, _safe(run), meta.kind, _safe(meta.layer or meta.kind))
            os.makedirs(folder, exist_ok=True)
            frames = {}
            for step in sorted(steps):
                blobs = steps[step]
                for i in range(metadata.image_count(len(blobs))):
                    blob = blobs[metadata.image_position(i)]
                    if probes is not None and i not in probes:
                        continue
                    img = Image.fromarray(viewable(blob, scale), "RGBA")
                    path = os.path.join(folder, "step_%06d_probe%d.png" % (step, i))
                    img.save(path)
                    written.append(path)
                    frames.setdefault(i, []).append(img)
            if gif:
                for i, imgs in frames.items():
                    path = os.path.join(folder, "epochs_probe%d.gif" % i)
                    # GIF has no alpha channel worth keeping: flatten onto white.
                    flat = []
                    for im in imgs:
                        bg = Image.new("RGB", im.size, (255, 255, 255))
                        bg.paste(im, mask=im.getchannel("A"))
                        flat.append(bg)
                    flat[0].save(path, save_all=True, append_images=flat[1:], duration=frame_ms, loop=0)
                    written.append(path)
    return written


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tb_layerview.export", description=__doc__.splitlines()[0])
    p.add_argument("logdir")
    p.add_argument("out")
    p.add_argument("--run", action="append", help="run to export (repeatable; default: all)")
    p.add_argument("--layer", action="append", help="layer path to export (repeatable; default: all)")
    p.add_argument("--kind", action="append", choices=metadata.IMAGE_KINDS,
                   help="series kind (repeatable; default: activations)")
    p.add_argument("--probe", action="append", type=int, help="image index (repeatable; default: all)")
    p.add_argument("--gif", action="store_true", help="also write a GIF over epochs per series and image")
    p.add_argument("--scale", type=int, default=1, help="enlarge by this factor (default 1)")
    args = p.parse_args(argv)
    if not os.path.isdir(args.logdir):
        p.error("log directory %r does not exist" % args.logdir)
    if args.scale < 1:
        p.error("--scale must be >= 1; got %d" % args.scale)
    written = export(args.logdir, args.out, runs=args.run, layers=args.layer,
                     kinds=tuple(args.kind or ["activations"]), probes=args.probe, gif=args.gif,
                     scale=args.scale)
    if not written:
        print("nothing exported: no tb_layerview images match in %s" % args.logdir, file=sys.stderr)
        return 1
    print("wrote %d files under %s" % (len(written), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
