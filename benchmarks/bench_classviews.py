"""Cost of each class-view kind per logged epoch on the demo's models.

Trains each demo model for a few epochs (so that the weights are not
random), then times, on the training thread's side, one call of each kind
as LayerView makes it: back-query (784-200-10 sigmoid MLP), activation
maximisation (64 steps, all classes in one batch) and attribution (Grad-CAM
on the CNN, saliency on the MLP) for the demo's probes; each next to the
model's own epoch time, measured in the same run.

Usage: python benchmarks/bench_classviews.py [--repeats 3]
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "demo"))

import numpy as np  # noqa: E402


def timed(fn, repeats):
    fn()  # first call traces/warms up
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return float(np.median(out))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    import keras

    import data
    import models
    from tb_layerview import classviews

    keras.utils.set_random_seed(0)
    x, y = data.shapes(2000)
    cnn = models.cnn(name="cnn_relu")
    cnn.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    t0 = time.perf_counter()
    cnn.fit(x, y, epochs=2, batch_size=32, verbose=0)
    cnn_epoch = (time.perf_counter() - t0) / 2
    xd, yd = data.digits()
    onehot = np.full((len(yd), 10), 0.01, np.float32)
    onehot[np.arange(len(yd)), yd] = 0.99
    mlp = models.mlp_784_200_10()
    mlp.compile(keras.optimizers.SGD(0.5), "mse")
    t0 = time.perf_counter()
    mlp.fit(xd, onehot, epochs=2, batch_size=16, verbose=0)
    mlp_epoch = (time.perf_counter() - t0) / 2

    rows = []
    plan = classviews.backquery_plan(mlp)
    rows.append(("back-query, MLP 784-200-10, 10 classes", mlp_epoch,
                 timed(lambda: classviews.backquery(classviews.backquery_plan(mlp),
                                                    classviews.class_targets(plan, range(10))), args.repeats)))
    rows.append(("activation maximisation, MLP, 10 classes x 64 steps", mlp_epoch,
                 timed(lambda: classviews.maximize(mlp, range(10), steps=64, value_range=(0.01, 1.0)), args.repeats)))
    rows.append(("attribution (saliency), MLP, 8 probes x 2 targets", mlp_epoch,
                 timed(lambda: classviews.attribution(mlp, np.concatenate([xd[:8]] * 2), list(yd[:8]) * 2), args.repeats)))
    rows.append(("activation maximisation, CNN, 5 classes x 64 steps", cnn_epoch,
                 timed(lambda: classviews.maximize(cnn, range(5), steps=64), args.repeats)))
    rows.append(("attribution (Grad-CAM), CNN, 6 probes x 2 targets", cnn_epoch,
                 timed(lambda: classviews.attribution(cnn, np.concatenate([x[:6]] * 2), list(y[:6]) * 2), args.repeats)))
    print("one training epoch: CNN %.2f s (2000 samples), MLP %.2f s (1797 samples)" % (cnn_epoch, mlp_epoch))
    for name, epoch, cost in rows:
        print("%-55s %7.1f ms = %5.1f%% of an epoch" % (name, cost * 1000, 100 * cost / epoch))


if __name__ == "__main__":
    main()
