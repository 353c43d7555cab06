"""The probe pass with plain layers called directly, against every layer through Keras.

For each keras.applications model (``weights=None``, 10 classes), two
ProbePass objects over the same model and probe alternate: one as LayerView
runs it (tb_layerview.directcalls), one with every layer called through
``Layer.__call__``, as before. The script checks that both give the same
statistics to the bit, then prints the median of the pairs' time ratios
(direct / through Keras), the medians of both, and how many layer calls ran
directly (and how many of those took the eager shortcut of a convolution
or a batch normalisation on TensorFlow, and of those how many ran
TensorFlow's Conv2D operation directly). The passes are eager: what
PyTorch always runs and TensorFlow runs until tracing pays back.
LayerView compiles JAX's passes from the first one, so there what counts
is the tracing, which ``--compiled`` times (a direct call is traced once,
like any other).

Usage: KERAS_BACKEND=tensorflow|jax|torch python benchmarks/bench_pass.py
       [--models ResNet50:64,MobileNetV2:96,DenseNet121:64,EfficientNetB0:64,NASNetMobile:64,seed:32]
       [--probes 8] [--pairs 15] [--compiled]

``--compiled`` also times tracing the pass (TensorFlow, JAX) both ways,
once each, and prints what tracing and a compiled pass cost in eager
passes: the figures ``tb_layerview.capture.CompileEstimate`` holds.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

DEFAULT_MODELS = "ResNet50:64,MobileNetV2:96,DenseNet121:64,EfficientNetB0:64,NASNetMobile:64"


def passes(name, size, probes):
    """The model and its two probe passes: (model, direct, through Keras)."""
    import keras

    from tb_layerview import capture, walk

    if name == "seed":  # the seed CNN of bench_models.py (Conv2D and Dense layers)
        from bench_models import build

        model = build("cnn")
        size = model.input_shape[1]
    else:
        model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=10)
    x = np.random.default_rng(0).random((probes, size, size, 3)).astype("float32")
    model(x)
    direct = capture.ProbePass(model, walk.walk(model), x, {})
    through_keras = capture.ProbePass(model, walk.walk(model), x, {})
    through_keras.direct_failed = "every layer through Keras, for comparison"
    return model, direct, through_keras


def timed(pp):
    from tb_layerview import capture

    with capture.gc_paused():  # as the callback runs it
        return pp.run()


def main():
    import keras

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=DEFAULT_MODELS,
                   help="name:input size, comma-separated (seed: the seed CNN of bench_models.py, 32x32)")
    p.add_argument("--probes", type=int, default=8)
    p.add_argument("--pairs", type=int, default=15)
    p.add_argument("--compiled", action="store_true", help="also time tracing the pass both ways")
    args = p.parse_args()
    backend = keras.backend.backend()
    print("backend %s, %d probes, %d interleaved pairs per model" % (backend, args.probes, args.pairs))
    for spec in args.models.split(","):
        name, size = spec.split(":")
        try:
            model, direct, through_keras = passes(name, int(size), args.probes)
            a, b = timed(direct), timed(through_keras)  # first calls: each operation's first run
        except Exception as err:  # noqa: BLE001 - a model this backend cannot run (NASNetMobile on PyTorch)
            print("  %-16s not run on %s: %s: %s" % (name, backend, type(err).__name__, str(err).splitlines()[0]))
            continue
        same = list(a.stats) == list(b.stats) and all(
            np.array_equal(a.stats[k], b.stats[k], equal_nan=True) for k in b.stats)
        ratios, d_s, k_s = [], [], []
        for i in range(args.pairs):
            order = (direct, through_keras) if i % 2 == 0 else (through_keras, direct)
            got = {id(pp): timed(pp).seconds for pp in order}
            d_s.append(got[id(direct)])
            k_s.append(got[id(through_keras)])
            ratios.append(d_s[-1] / k_s[-1])
        print("  %-16s direct / through Keras: median x%.3f (%.3f ... %.3f); %.3f s against %.3f s;"
              " %d of %d layer calls direct (%d through an eager shortcut, %d of them a direct Conv2D);"
              " same statistics: %s"
              % (name, np.median(ratios), min(ratios), max(ratios), np.median(d_s), np.median(k_s),
                 direct.layer_calls.direct, direct.layer_calls.direct + direct.layer_calls.keras,
                 direct.layer_calls.shortcut, direct.layer_calls.conv2d, same))
        if args.compiled and backend in ("tensorflow", "jax"):
            t0 = time.perf_counter()
            direct.compile()
            timed(direct)
            t1 = time.perf_counter()
            through_keras.compile()
            timed(through_keras)
            t2 = time.perf_counter()
            compiled = np.median([timed(direct).seconds for _ in range(5)])
            eager = np.median(d_s)
            print("  %-16s tracing and the first compiled pass: %.2f s direct, %.2f s through Keras (x%.3f)"
                  % ("", t1 - t0, t2 - t1, (t1 - t0) / (t2 - t1)))
            # The two figures capture.CompileEstimate holds for a kind of model.
            print("  %-16s in eager passes (direct): tracing %.1f, a compiled pass %.2f of one (%.3f s)"
                  % ("", (t1 - t0) / eager, compiled / eager, compiled))
        del model, direct, through_keras
        keras.backend.clear_session()


if __name__ == "__main__":
    main()
