"""Pillow's PNG settings on tb_layerview's images: size and encoding time.

Renders the activation grids of a real architecture's layers
(keras.applications MobileNetV2, weights=None, 96x96x3, 8 probes) with
tb_layerview.render, then encodes every image with each zlib compression
level (and with ``optimize``), timing them in one run. Prints bytes and
milliseconds relative to the level tb_layerview uses.

Usage: python benchmarks/bench_png.py
"""

import io
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def images():
    import keras

    from tb_layerview import capture, render, walk

    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), classes=10)
    x = np.random.default_rng(0).random((8, 96, 96, 3), dtype=np.float32)
    entries = [e for e in walk.walk(model) if not e.container]
    with capture.recording({e.path: e.layer for e in entries}) as rec:
        model(x, training=False)
    out = []
    for e in entries:
        t = rec.output(e.path)
        if t is None:
            continue
        imgs, _ = render.render_activations(np.asarray(t), max_channels=16, max_tile_pixels=1024)
        out.extend(imgs[:2])
    return out


def encode(img, **kw):
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img), mode="LA").save(buf, format="PNG", **kw)
    return len(buf.getvalue())


def main():
    from tb_layerview import render

    imgs = images()
    settings = [("level %d" % lv, {"compress_level": lv}) for lv in (0, 1, 2, 3, 6, 9)]
    settings.append(("level 9 + optimize", {"compress_level": 9, "optimize": True}))
    rows = []
    for name, kw in settings:
        t0 = time.perf_counter()
        size = sum(encode(img, **kw) for img in imgs)
        rows.append((name, size, time.perf_counter() - t0))
    ref = next(r for r in rows if r[0] == "level %d" % render.PNG_COMPRESS_LEVEL)
    print("%d activation images of MobileNetV2 (16 channels, 1024 pixels per tile)" % len(imgs))
    print("%-20s %10s %8s %10s %8s" % ("setting", "bytes", "x size", "ms", "x time"))
    for name, size, secs in rows:
        print("%-20s %10d %8.2f %10.1f %8.2f" % (name, size, size / ref[1], 1000 * secs, secs / ref[2]))


if __name__ == "__main__":
    main()
