"""Logging overhead of LayerView on the reference CNN, measured within one run.

Model: Conv2D 32/64/64 (3x3) with MaxPooling, Flatten, Dense 128/256/10 on
32x32x3 inputs; 4096 samples, batch 64, 8 probes, every epoch, all layers
and filters. Prints the time spent in LayerView's hooks (on the training
thread) as a fraction of the fit, the same fit's duration next to an
interleaved fit without the callback, and the event bytes per logged epoch.

Usage: python benchmarks/bench_callback.py [--epochs 4] [--repeats 2]
"""

import argparse
import glob
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def build():
    """The seed CNN, as benchmarks/bench_models.py builds it."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_models

    return bench_models.build("cnn")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--class-views", choices=["off", "on", "both"], default="both",
                   help="LayerView(class_views=...): the issue's reference setting is off")
    args = p.parse_args()
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.class_views]
    for cv in modes:
        run(args, cv)


def run(args, class_views):
    import keras

    from tb_layerview import LayerView

    rng = np.random.default_rng(0)
    x = rng.random((4096, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, 4096)
    rows = []
    for r in range(args.repeats):
        for with_cb in (False, True):  # interleaved, so machine noise hits both alike
            keras.utils.set_random_seed(r)
            model = build()
            model.compile("adam", "sparse_categorical_crossentropy")
            model.fit(x[:64], y[:64], epochs=1, batch_size=64, verbose=0)  # compile/trace outside timing
            logdir = tempfile.mkdtemp(prefix="lv_bench_")
            cbs = [LayerView(logdir, probe=(x[:8], y[:8]), class_views=class_views)] if with_cb else []
            t0 = time.perf_counter()
            model.fit(x, y, epochs=args.epochs, batch_size=64, verbose=0, callbacks=cbs)
            total = time.perf_counter() - t0
            if with_cb:
                hooks = cbs[0].cost["hook_seconds"]
                size = sum(os.path.getsize(f) for f in glob.glob(os.path.join(logdir, "*")))
                rows.append(("with", total, hooks, size / (args.epochs + 1)))
            else:
                rows.append(("without", total, 0.0, 0))
    base = np.median([t for k, t, _, _ in rows if k == "without"])
    withs = [row for row in rows if row[0] == "with"]
    fit = np.median([t for _, t, _, _ in withs])
    hooks = np.median([h for _, _, h, _ in withs])
    per_epoch = np.median([b for _, _, _, b in withs])
    print("\nreference CNN, 4096 samples, batch 64, 8 probes, %d epochs, %d repeats, class views %s"
          % (args.epochs, args.repeats, "on" if class_views else "off"))
    print("fit without callback      : %.2f s" % base)
    print("fit with LayerView        : %.2f s  (ratio %.3f)" % (fit, fit / base))
    print("time in LayerView hooks   : %.3f s = %.2f%% of the fit" % (hooks, 100 * hooks / fit))
    print("event bytes per logged step: %.0f KiB (%d steps incl. step 0)" % (per_epoch / 1024, args.epochs + 1))


if __name__ == "__main__":
    main()
