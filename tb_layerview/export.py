"""Export tb_layerview data from event files: PNG folders, GIFs and contact
sheets over epochs, and the unit-health table as CSV.

Reader side: reads through TensorBoard's own event-file reader and never
imports TensorFlow itself.

Command line::

    python -m tb_layerview.export LOGDIR OUT [--run RUN] [--layer LAYER]
        [--kind activations] [--probe 0] [--gif] [--contact-sheet] [--health-csv]
        [--scale 4]

writes ``OUT/<run>/<kind>/<layer>/step_000012_probe0.png`` for every logged
step (grey images with NaN in magenta, +Inf yellow, -Inf cyan, padding
transparent; colour filters as they are); with ``--gif``, one animated GIF
per (run, kind, layer, probe) with a frame per epoch; with
``--contact-sheet``, one ``contact_probe0.png`` per (run, kind, layer) with a
row per channel (per class or probe for class views) and a column per epoch;
with ``--health-csv``, ``OUT/health.csv``: a row per run, step and layer with
its dead, saturated and NaN/Inf units, and ``OUT/units.csv``: a row per unit
that has one of those problems at its layer's last logged step, with the
step since which it has had it. A progress bar on standard error follows
long exports. Items that cannot be read are left out with an
:class:`UnreadableItem` warning each (listed on standard error, exit status
1); the rest is written.
"""

import argparse
import json
import os
import re
import sys
import warnings

import numpy as np

from tb_layerview import args as argcheck
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


class UnreadableItem(UserWarning):
    """A stored item the export could not read, and left out; the rest is written."""


#: What reading a stored item of another form raises: a record's errors, or
#: Pillow's on an image it cannot decode (an OSError).
_UNREADABLE = metadata.RECORD_ERRORS + (OSError,)


def _unreadable(run, meta, step, what, err):
    warnings.warn("left out %s of the %s series%s in run %r at step %d: %s: %s"
                  % (what, meta.kind, " of layer %r" % meta.layer if meta.layer else "", run, step,
                     type(err).__name__, err), UnreadableItem, stacklevel=3)


def _safe(name):
    """A file-system-safe version of a run or layer name (keeps it readable)."""
    cleaned = re.sub(r"[^A-Za-z0-9._ -]+", "_", name).strip(" .")
    return cleaned or "_"


class Progress:
    """A one-line progress bar on standard error, for exports of many items."""

    def __init__(self, total, stream=None, width=30, min_total=10):
        self.total, self.done, self.width = total, 0, width
        self.stream = stream or sys.stderr
        self.enabled = total >= min_total

    def step(self, label=""):
        self.done += 1
        if not self.enabled:
            return
        filled = int(self.width * self.done / max(self.total, 1))
        self.stream.write("\r[%s%s] %d/%d %s" % ("#" * filled, "." * (self.width - filled), self.done, self.total,
                                                 label[:40].ljust(40)))
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


class Catalog:
    """What a log directory holds, from the series listing an export reads:
    which runs, which layers with which kinds, and how many images a step
    holds. It tells a ``--run``, ``--layer`` or ``--probe`` that selects
    nothing from a selection that found nothing to export.

    Example::

        catalog = Catalog()
        export("logs", "out", layers=["conv9"], catalog=catalog)
        for problem in catalog.unmatched(layers=["conv9"]):
            print(problem)  # --layer 'conv9' is no layer of the run in logs; its layers: ...
    """

    def __init__(self):
        self.logdir = None
        self.index = {}  # metadata.index_series of the runs read so far
        self.unread = set()  # runs of the log directory that no selection asked to read
        self.stats_layers = set()  # the layer outputs the statistics read so far cover

    def unmatched(self, runs=None, layers=None, kinds=("activations",), probes=None):
        """A message for each selector value that selects nothing, naming it and what there is."""
        problems = []
        where = self.logdir if self.logdir is not None else "the log directory"
        for run in runs or ():
            if run not in self.index:
                problems.append("--run %r is no run in %s; its runs: %s"
                                % (run, where, _listed(set(self.index) | self.unread)))
        chosen = [e for run, e in sorted(self.index.items()) if not runs or run in runs]
        if not chosen:
            return problems
        paths = {}
        for entry in chosen:
            for path, by_kind in entry["layers"].items():
                paths.setdefault(path, set()).update(by_kind)
        for path in self.stats_layers:
            paths.setdefault(path, set()).add(metadata.KIND_STATS)
        for layer in layers or ():
            one = _patterns([layer])
            found = {k for path, ks in paths.items() if _chosen(one, path) for k in ks}
            if not found:
                problems.append("--layer %r is no layer of the %s in %s; %s layers: %s"
                                % (layer, "run" if len(chosen) == 1 else "runs", where,
                                   "its" if len(chosen) == 1 else "their", _listed(paths)))
            elif not found & set(kinds):
                problems.append("--layer %r has no %s series (it has %s); choose them with --kind"
                                % (layer, " or ".join(kinds), ", ".join(sorted(found))))
        series = [s for entry in chosen for s in _series_of(entry)]
        patterns = _patterns(layers)
        most = max((metadata.image_count(s.max_length) for s in series
                    if s.meta.kind in kinds and _chosen(patterns, s.meta.layer)), default=0)
        for probe in probes or ():
            if not 0 <= probe < most:
                problems.append("--probe %d is no image of the chosen series: their steps hold %s"
                                % (probe, "none" if not most else "only image 0" if most == 1
                                   else "images 0 to %d" % (most - 1)))
        return problems


def _patterns(layers):
    """``layers`` (names, paths or regular expressions) compiled once for :func:`_chosen`."""
    return argcheck.compile_patterns(layers, "layers") if layers else None


def _chosen(patterns, path):
    """Whether ``patterns`` (:func:`_patterns`; None: every layer) choose the
    layer at ``path``: by path or name, literally or as a regular expression,
    the rule of LayerView's own ``layers`` argument (:func:`tb_layerview.args.matches`)."""
    if not patterns:
        return True
    if path is None:  # a run-level series (class views) belongs to no layer
        return False
    base = path.split(":", 1)[0]
    return argcheck.matches(patterns, base, base.rsplit("/", 1)[-1])


def _series_of(entry):
    """Every series of one run's :func:`metadata.index_series` entry."""
    return [s for by_kind in entry["layers"].values() for s in by_kind.values()] + list(entry["run"].values())


def _listed(names):
    return argcheck.abbreviated(repr(n) for n in sorted(names))


def iter_series(logdir, kinds=metadata.IMAGE_KINDS, runs=None, catalog=None):
    """Yields ``(run, [(meta, {step: [blobs]})])`` for each run of ``logdir``
    (of ``runs`` when given) that holds tb_layerview series of ``kinds``, in
    run order; ``catalog``, a :class:`Catalog`, is told each run's listing.

    One run is read at a time, through TensorBoard's own loader and data
    provider: the loader keeps every event of what it loads (images too),
    several times their bytes on disk, so a whole log directory of big
    models read at once took 1.1 GB for 96.5 MiB of events (18 runs), where
    one run at a time holds one run's worth.

    Example::

        for run, items in iter_series("logs", kinds=("activations",)):
            for meta, steps in items:
                print(run, meta.layer, sorted(steps))
    """
    from tensorboard import context as tb_context
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer
    from tensorboard.data import provider as provider_lib

    # Run names and directories as TensorBoard makes them; nothing is loaded yet.
    found = plugin_event_multiplexer.EventMultiplexer()
    found.AddRunsFromDirectory(logdir)
    run_paths = found.RunPaths()
    if catalog is not None:
        catalog.logdir = logdir
    ctx = tb_context.RequestContext()
    for name in sorted(run_paths):
        if runs and name not in runs:
            if catalog is not None and name not in catalog.index:
                catalog.unread.add(name)
            continue
        mult = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={metadata.PLUGIN_NAME: 0})
        mult.AddRun(run_paths[name], name=name)
        mult.Reload()
        provider = data_provider.MultiplexerDataProvider(mult, logdir)
        listing = provider.list_blob_sequences(ctx, experiment_id="", plugin_name=metadata.PLUGIN_NAME)
        index = metadata.index_series(listing)
        if catalog is not None:
            catalog.index.update(index)
            catalog.unread.discard(name)
        entry = index.get(name)
        if entry is None:
            continue
        wanted = [s for s in _series_of(entry) if s.meta.kind in kinds]
        if not wanted:
            continue
        data = provider.read_blob_sequences(ctx, experiment_id="", plugin_name=metadata.PLUGIN_NAME,
                                            downsample=metadata.ALL_STEPS,
                                            run_tag_filter=provider_lib.RunTagFilter(
                                                runs=[name], tags=[s.tag for s in wanted]))
        items = []
        for s in wanted:
            steps = {d.step: [provider.read_blob(ctx, blob_key=v.blob_key) for v in d.values]
                     for d in data.get(name, {}).get(s.tag, [])}
            items.append((s.meta, steps))
        yield name, items


def read_series(logdir, kinds=metadata.IMAGE_KINDS, runs=None, catalog=None):
    """{run: [(meta, {step: [blobs]})]} of every tb_layerview series of ``kinds``
    in ``logdir`` (of ``runs`` when given), all in memory at once: see
    :func:`iter_series`, which reads one run at a time."""
    return dict(iter_series(logdir, kinds, runs, catalog))


def export(logdir, out, runs=None, layers=None, kinds=("activations",), probes=None, gif=False,
           scale=1, frame_ms=400, catalog=None):
    """Writes PNGs (and GIFs) of the chosen series; returns the paths written.

    Args:
      logdir: a TensorBoard log directory.
      out: the folder to write into.
      runs: run names to export (all when None).
      layers: layers to export (all when None): paths or names, literally or
        as regular expressions, as LayerView's ``layers`` argument takes them.
      kinds: series kinds, e.g. ``("activations", "filters", "maximization")``.
      probes: image indices to export (all when None).
      gif: also write one animated GIF per series and image, a frame per step.
      scale: enlarge images by this integer factor.
      frame_ms: GIF frame duration.
      catalog: a :class:`Catalog` to be told what the log directory holds.
    """
    from PIL import Image

    written = []
    patterns = _patterns(layers)
    for run, series in iter_series(logdir, kinds, runs, catalog):
        for meta, steps in series:
            if not _chosen(patterns, meta.layer):
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
                    try:
                        img = Image.fromarray(viewable(blob, scale), "RGBA")
                    except _UNREADABLE as e:
                        _unreadable(run, meta, step, "image %d" % i, e)
                        continue
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


def _tile(img, info, t):
    """Tile ``t`` of a viewable image, by the layout in ``info``."""
    cols, tw, th, gap = info.get("cols", 1), info.get("tile_w"), info.get("tile_h"), info.get("gap", 0)
    if tw is None or th is None:
        return img
    r, c = divmod(t, max(cols, 1))
    return img[r * (th + gap):r * (th + gap) + th, c * (tw + gap):c * (tw + gap) + tw]


def contact_sheet(cells, gap=1):
    """Lays out a grid of RGBA arrays (rows of cells, None for none) on a transparent sheet.

    Cells of different sizes (the budget may change tile sizes between
    epochs) are enlarged by pixel repetition and padded to the largest.
    """
    hs = [c.shape[0] for row in cells for c in row if c is not None]
    ws = [c.shape[1] for row in cells for c in row if c is not None]
    if not hs:
        return None
    h, w = max(hs), max(ws)
    n_rows, n_cols = len(cells), max(len(row) for row in cells)
    sheet = np.zeros((n_rows * (h + gap) - gap, n_cols * (w + gap) - gap, 4), np.uint8)
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            if cell is None:
                continue
            f = max(1, min(h // cell.shape[0], w // cell.shape[1]))
            cell = cell.repeat(f, axis=0).repeat(f, axis=1)
            sheet[r * (h + gap):r * (h + gap) + cell.shape[0], c * (w + gap):c * (w + gap) + cell.shape[1]] = cell
    return sheet


def contact_sheets(logdir, out, runs=None, layers=None, kinds=("activations",), probe=0, scale=1,
                   catalog=None):
    """Writes one contact sheet per (run, kind, layer): a row per channel (or
    filter) of image ``probe`` for layer kinds, a row per image (class, unit or
    probe target) for class views; a column per logged epoch. Returns the paths."""
    patterns = _patterns(layers)
    written = []
    for run, items in iter_series(logdir, kinds, runs, catalog):
        written += _contact_sheets_of(run, [(m, st) for m, st in items if _chosen(patterns, m.layer)],
                                      out, probe, scale)
    return written


def _contact_sheets_of(run, series, out, probe, scale):
    """The contact sheets of one run's chosen ``[(meta, steps)]`` (see :func:`contact_sheets`)."""
    from PIL import Image

    progress = Progress(len(series))
    written = []
    for meta, steps in series:
        progress.step("%s %s" % (run, meta.layer or meta.kind))
        columns = []
        for step in sorted(steps):
            try:
                columns.append(_column(meta, steps[step], probe))
            except _UNREADABLE as e:
                _unreadable(run, meta, step, "the column", e)
                columns.append([])
        rows = max((len(c) for c in columns), default=0)
        cells = [[col[r] if r < len(col) else None for col in columns] for r in range(rows)]
        sheet = contact_sheet(cells)
        if sheet is None:
            continue
        if scale > 1:
            sheet = sheet.repeat(scale, axis=0).repeat(scale, axis=1)
        folder = os.path.join(out, _safe(run), meta.kind, _safe(meta.layer or meta.kind))
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "contact_probe%d.png" % probe)
        Image.fromarray(sheet, "RGBA").save(path)
        written.append(path)
    return written


def _column(meta, blobs, probe):
    """One epoch's cells of a contact sheet (see :func:`contact_sheets`)."""
    info = json.loads(blobs[metadata.INFO_POSITION].decode("utf-8"))
    n = metadata.image_count(len(blobs))
    if meta.kind in metadata.LAYER_KINDS and meta.kind != metadata.KIND_UNITS:
        index = 0 if meta.kind == metadata.KIND_FILTERS else probe
        if index >= n:
            return []
        img = viewable(blobs[metadata.image_position(index)])
        return [_tile(img, info, t) for t in range(int(info.get("shown", 1)))]
    return [viewable(blobs[metadata.image_position(i)]) for i in range(n)]


HEALTH_COLUMNS = ("run", "step", "layer", "activation", "channels", "dead_units", "saturated_units",
                  "nonfinite_units", "mean_active", "nan", "inf")

UNIT_COLUMNS = ("run", "layer", "activation", "channel", "problem", "since", "last_step")


def _decoded_stats(logdir, runs=None, catalog=None):
    """``(run, steps, decoded)`` of each run's statistics series: its steps in
    order and each one's :func:`tb_layerview.stats.decode` result."""
    from tb_layerview import stats

    for run, items in iter_series(logdir, (metadata.KIND_STATS,), runs, catalog):
        for meta, steps in items:
            progress = Progress(len(steps))
            order, decoded = [], []
            for step in sorted(steps):
                progress.step("%s step %d" % (run, step))
                try:
                    decoded.append(stats.decode(*steps[step][:2]))
                except _UNREADABLE as e:
                    _unreadable(run, meta, step, "the record", e)
                    continue
                order.append(step)
            yield run, order, decoded


def health_tables(logdir, runs=None, catalog=None, layers=None):
    """The unit-health tables, from one read of the statistics series.

    Args:
      logdir: a TensorBoard log directory (any path TensorBoard reads).
      runs: run names to read (all when None).
      catalog: a :class:`Catalog` to be told what the log directory holds.
      layers: the layers whose rows to keep (all when None), as
        :func:`export` takes them.

    Returns:
      ``(health, units)``: one dict per (run, step, layer output) with its
      unit counts (the columns of :data:`HEALTH_COLUMNS`), and one per unit
      that has a problem at its layer's last logged step, with the step
      since which it has had it without a break (:data:`UNIT_COLUMNS`,
      :class:`tb_layerview.stats.UnitStreaks`).

    Example::

        from tb_layerview.export import health_tables

        health, units = health_tables("logs", runs=["run1"])
        for u in units:
            if u["problem"] == "dead":
                print(u["layer"], "channel", u["channel"], "dead since epoch", u["since"])
    """
    from tb_layerview import stats

    health, units = [], []
    patterns = _patterns(layers)
    for run, steps, decoded in _decoded_stats(logdir, runs, catalog):
        streaks = stats.UnitStreaks()
        for step, (header, data) in zip(steps, decoded):
            if catalog is not None:
                catalog.stats_layers.update(l["path"] for l in header["layers"])
            for l in header["layers"]:
                if not _chosen(patterns, l["path"]):
                    continue
                part = data[:, l["offset"]:l["offset"] + l["channels"]]
                counts = stats.unit_counts(l.get("activation"), part)
                c = l["channels"]
                streaks.add(step, l["path"], l.get("activation"), part)
                health.append({
                    "run": run, "step": step, "layer": l["path"], "activation": l.get("activation") or "",
                    "channels": c,
                    "dead_units": "" if counts["dead"] is None else counts["dead"],
                    "saturated_units": "" if counts["saturated"] is None else counts["saturated"],
                    "nonfinite_units": counts["nonfinite"],
                    "mean_active": float("%.6g" % float(np.nanmean(part[stats.STATS.index("active")]))) if c else "",
                    "nan": l["nan"], "inf": l["inf"]})
        units += [{"run": run, **row} for row in streaks.rows()]
    return health, units


def _write_csv(path, columns, rows):
    import csv

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


def health_csv(logdir, out, runs=None, catalog=None, layers=None):
    """Writes :func:`health_tables` to ``out/health.csv`` and ``out/units.csv``
    (its header alone when no unit has a problem); returns the paths written,
    none when the log directory holds no statistics (of ``layers``)."""
    health, units = health_tables(logdir, runs, catalog, layers)
    if not health:
        return []
    paths = [os.path.join(out, "health.csv"), os.path.join(out, "units.csv")]
    _write_csv(paths[0], HEALTH_COLUMNS, health)
    _write_csv(paths[1], UNIT_COLUMNS, units)
    return paths


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tb_layerview.export", description=__doc__.splitlines()[0])
    p.add_argument("logdir")
    p.add_argument("out")
    p.add_argument("--run", action="append", help="run to export (repeatable; default: all)")
    p.add_argument("--layer", action="append",
                   help="layer to export, by path or name, literally or as a regular expression; also chooses"
                        " the rows of --health-csv (repeatable; default: all)")
    p.add_argument("--kind", action="append", choices=metadata.IMAGE_KINDS,
                   help="series kind (repeatable; default: activations)")
    p.add_argument("--probe", action="append", type=int, help="image index (repeatable; default: all)")
    p.add_argument("--gif", action="store_true",
                   help="also write a GIF over epochs per series and image (with the PNG folders, also beside"
                        " --contact-sheet or --health-csv)")
    p.add_argument("--contact-sheet", action="store_true",
                   help="write one contact sheet per series instead of the PNG folders: channels (or classes)"
                        " x epochs")
    p.add_argument("--health-csv", action="store_true",
                   help="write OUT/health.csv (unit health per run, step, layer) and OUT/units.csv (each unit"
                        " dead, saturated or NaN/Inf at the last step, and since when)")
    p.add_argument("--scale", type=int, default=1, help="enlarge by this factor (default 1)")
    args = p.parse_args(argv)
    if not os.path.isdir(args.logdir):
        p.error("log directory %r does not exist" % args.logdir)
    if args.scale < 1:
        p.error("--scale must be >= 1; got %d" % args.scale)
    try:
        argcheck.compile_patterns(args.layer, "--layer")
    except ValueError as e:
        p.error(str(e))
    kinds = tuple(args.kind or ["activations"])
    catalog = Catalog()
    with warnings.catch_warnings(record=True) as left_out:
        warnings.simplefilter("always", UnreadableItem)
        written = _run(args, kinds, catalog)
    for w in left_out:
        print("%s: %s" % (w.category.__name__, w.message), file=sys.stderr)
    unreadable = sum(issubclass(w.category, UnreadableItem) for w in left_out)
    images = args.contact_sheet or args.gif or not args.health_csv
    unmatched = catalog.unmatched(args.run, args.layer, kinds + (() if images else (metadata.KIND_STATS,)),
                                  args.probe if images else None)
    for problem in unmatched:
        print("nothing selected: %s" % problem, file=sys.stderr)
    if not written:
        print("nothing exported: %s in %s" % ("every matching item was unreadable" if unreadable else
                                              "the selection above matches nothing" if unmatched else
                                              "no tb_layerview images match", args.logdir), file=sys.stderr)
        return 1
    print("wrote %d files under %s" % (len(written), args.out))
    if unreadable:
        print("left out %d unreadable item(s), listed above" % unreadable, file=sys.stderr)
    return 1 if unreadable or unmatched else 0


def _run(args, kinds, catalog):
    written = []
    if args.health_csv:
        written += health_csv(args.logdir, args.out, runs=args.run, catalog=catalog, layers=args.layer)
    if args.contact_sheet:
        for probe in args.probe or [0]:
            written += contact_sheets(args.logdir, args.out, runs=args.run, layers=args.layer, kinds=kinds,
                                      probe=probe, scale=args.scale, catalog=catalog)
    # A GIF is made of its PNG folder: asked for beside the others, both are written.
    if args.gif or not (args.health_csv or args.contact_sheet):
        written += export(args.logdir, args.out, runs=args.run, layers=args.layer, kinds=kinds,
                          probes=args.probe, gif=args.gif, scale=args.scale, catalog=catalog)
    return written


if __name__ == "__main__":
    sys.exit(main())
