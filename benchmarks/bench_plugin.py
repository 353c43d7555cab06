"""Plugin latency and TensorBoard memory on a large log directory.

``--source model`` (the default) writes 3 runs x 100 epochs of
keras.applications MobileNetV2 (weights=None, 32x32x3, alpha 0.35: 155
layers) with the real LayerView callback at its default byte budget (2 MB
per logged epoch; no time bound, so that every epoch carries as many images
as the bytes allow), one batch per epoch. ``--source zoo`` writes runs of
larger architectures the same way (32x32x3, default 18 runs x 2 epochs):
DenseNet121, NASNetMobile, EfficientNetB0, ConvNeXtTiny, MobileNetV3Small
and ResNet50 (156 to 770 outputs), each fitted once and its run copied
under further names. ``--source synthetic`` writes 3 runs x 200 epochs x
30 layers x 4 probes with the summary ops instead.
Then it starts ``tensorboard`` under each loader, waits until every step is
loaded, and reports p50/p95 latency of each route and the TensorBoard
process tree's RSS next to the log directory's size on disk (and next to
the RSS of the same TensorBoard on an empty log directory).

"runs (poll)" asks GET /runs as an open panel does, every few seconds:
each request comes after the plugin's listing has expired, so it pays for
asking the data provider again.

Targets: list routes p95 <= 50 ms, image route p95 <= 10 ms,
RSS growth <= 1.5 x bytes on disk.

Usage: python benchmarks/bench_plugin.py [--source model|zoo|synthetic] [--runs 3]
       [--epochs 100] [--layers 30] [--probes 4] [--requests 200] [--logdir DIR]
       [--loaders true,false]
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import numpy as np  # noqa: E402

SHAPES = [(24, 24, 8), (12, 12, 16), (6, 6, 32), (48, 64), (128,), (10,)]


def layer_shape(i):
    return SHAPES[i % len(SHAPES)]


def write_logdir(logdir, runs, epochs, layers, probes):
    import tensorflow as tf

    from tb_layerview import summary

    rng = np.random.default_rng(0)
    for r in range(runs):
        writer = tf.summary.create_file_writer(os.path.join(logdir, "run%d" % r))
        with writer.as_default():
            for step in range(epochs + 1):
                for i in range(layers):
                    shape = layer_shape(i)
                    summary.activations("layer%02d" % i, rng.standard_normal((probes,) + shape).astype(np.float32),
                                        step=step, layer_class="Synthetic", layer_index=i)
                    if len(shape) == 3 and i % 3 == 0:
                        summary.filters("layer%02d" % i, rng.standard_normal((3, 3, 3, shape[2])), step=step)
                summary.predictions(rng.random((probes, 10)), step=step)
        writer.close()


def _fit_logged(model, log_dir, probes, epochs):
    """One batch per epoch of a fresh fit of ``model`` with LayerView at the
    default byte bound and no time bound, so that every epoch carries as many
    images as the bytes allow."""
    from tb_layerview import LayerView

    rng = np.random.default_rng(0)
    x = rng.random((32,) + tuple(model.input_shape[1:]), dtype=np.float32)
    y = rng.integers(0, 10, 32)
    model.compile("adam", "sparse_categorical_crossentropy")
    lv = LayerView(log_dir, probe=(x[:probes], y[:probes]),
                   budget={"time_share": None, "bytes_per_epoch": "2MB"}, class_views=False)
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=[lv])


def write_model_logdir(logdir, runs, epochs, probes):
    """Real fits of MobileNetV2 with the LayerView callback, one batch per epoch."""
    import keras

    for r in range(runs):
        keras.utils.set_random_seed(r)
        model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=10)
        _fit_logged(model, os.path.join(logdir, "run%d" % r), probes, epochs)


#: --source zoo: (run name prefix, keras.applications constructor), fitted in this order.
ZOO = [("densenet121", "DenseNet121"), ("nasnetmobile", "NASNetMobile"), ("efficientnetb0", "EfficientNetB0"),
       ("convnexttiny", "ConvNeXtTiny"), ("mobilenetv3small", "MobileNetV3Small"), ("resnet50", "ResNet50")]


def write_zoo_logdir(logdir, runs, epochs, probes):
    """Real fits of the ZOO architectures with the LayerView callback, one
    batch per epoch; runs past the first len(ZOO) are copies of those."""
    import shutil

    import keras

    for r in range(runs):
        name = "run%d" % r
        if r >= len(ZOO):
            shutil.copytree(os.path.join(logdir, "run%d" % (r % len(ZOO))), os.path.join(logdir, name))
            continue
        keras.utils.set_random_seed(r)
        model = getattr(keras.applications, ZOO[r][1])(weights=None, input_shape=(32, 32, 3), classes=10)
        _fit_logged(model, os.path.join(logdir, name), probes, epochs)


def dir_size(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def tree_rss(pid):
    """RSS in bytes of a process and all its descendants (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            for task in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, task)) as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return total


def get(url):
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            resp.read()
    except urllib.error.HTTPError as e:
        raise RuntimeError("%s answered %d: %s" % (url, e.code, e.read()[:300])) from None
    return (time.perf_counter() - t0) * 1000


def percentiles(ms):
    ms = sorted(ms)
    return ms[len(ms) // 2], ms[min(len(ms) - 1, int(len(ms) * 0.95))]


def measure(logdir, loader, args):
    from helpers import http_get, start_tensorboard, stop, wait_for

    base_proc, _ = start_tensorboard(tempfile.mkdtemp(), "--load_fast=%s" % loader)
    time.sleep(3)
    base_rss = tree_rss(base_proc.pid)
    stop(base_proc)
    proc, url = start_tensorboard(logdir, "--load_fast=%s" % loader)
    plugin = url + "/data/plugin/tb_layerview/"
    t0 = time.time()

    def loaded():
        status, _, body = http_get(plugin + "runs")
        if status != 200:
            return False
        runs = json.loads(body)["runs"]
        return (len(runs) == args.runs and all(len(r["steps"]) == args.epochs + 1 for r in runs)
                and all(max((k["max_step"] for k in l["kinds"].values()), default=args.epochs) >= args.epochs - 20
                        for r in runs for l in r["layers"]))

    try:
        wait_for(loaded, timeout=1800, interval=2)
        load_s = time.time() - t0
        # Memory is read once it has stopped growing (the loaders may still be settling).
        previous = -1
        while True:
            time.sleep(3)
            now = tree_rss(proc.pid)
            if abs(now - previous) < 8 * 2**20:
                break
            previous = now
        rss = tree_rss(proc.pid)
        rnd = random.Random(0)
        # Every (run, layer, step) that holds images: the budget may thin them.
        listing = json.loads(http_get(plugin + "runs")[2])["runs"]
        drawn = []
        for r in listing:
            for l in r["layers"]:
                if "activations" in l["kinds"]:
                    q = "steps?run=%s&layer=%s&kind=activations" % (r["run"], urllib.parse.quote(l["path"]))
                    for st in json.loads(http_get(plugin + q)[2])["steps"]:
                        drawn.append((r["run"], l["path"], st["step"]))
        by_layer = {}
        for run, layer, step in drawn:
            by_layer.setdefault((run, layer), []).append(step)
        scrub_layers = sorted(by_layer, key=lambda k: -len(by_layer[k]))[:args.runs]

        def pick():
            run, layer, step = drawn[rnd.randrange(len(drawn))]
            return run, urllib.parse.quote(layer), step

        drawn_probes = {}

        def pick_image():
            # The budget may draw fewer probes at a step (step 0 is priced before any epoch is timed):
            # ask the step's info, outside the timing, how many it holds.
            run, layer, step = pick()
            if (run, layer, step) not in drawn_probes:
                info = http_get(plugin + "info?run=%s&layer=%s&kind=activations&step=%d" % (run, layer, step))[2]
                drawn_probes[(run, layer, step)] = len(json.loads(info)["probes"])
            return run, layer, step, rnd.randrange(min(args.probes, drawn_probes[(run, layer, step)]))

        routes = {
            "runs": lambda: plugin + "runs",
            "steps": lambda: plugin + "steps?run=%s&layer=%s&kind=activations" % pick()[:2],
            "random info": lambda: plugin + "info?run=%s&layer=%s&kind=activations&step=%d" % pick(),
            "random image": lambda: plugin + "image?run=%s&layer=%s&kind=activations&step=%d&probe=%d" % pick_image(),
            "ranges": lambda: plugin + "ranges?run=%s&layer=%s&kind=activations" % pick()[:2],
            "predictions": lambda: plugin + "predictions?run=run%d&step=%d" % (rnd.randrange(args.runs), rnd.randrange(args.epochs + 1)),
            "plan": lambda: plugin + "plan?run=run%d&step=%d" % (rnd.randrange(args.runs), rnd.randrange(args.epochs + 1)),
            "health": lambda: plugin + "health?run=run%d" % rnd.randrange(args.runs),
            "stats": lambda: plugin + "stats?run=%s&step=%d&layer=%s" % (lambda p: (p[0], p[2], p[1]))(pick()),
        }
        results = {}

        def scrub(kind):
            # The panel's pattern: one layer, epoch after epoch (read-ahead helps here).
            ms = []
            for run, layer in scrub_layers:
                for step in sorted(by_layer[(run, layer)]):
                    q = "run=%s&layer=%s&kind=activations&step=%d" % (run, urllib.parse.quote(layer), step)
                    ms.append(get(plugin + ("image?%s&probe=0" % q if kind == "image" else "info?" + q)))
                    time.sleep(0.005)
            return percentiles(ms)

        def poll():
            # An open panel's poll: each request after the plugin's listing
            # expired, with the ETag of the answer it holds, as the browser sends it.
            ms, etag, unchanged = [], None, 0
            for _ in range(max(10, args.requests // 20)):
                time.sleep(1.1)
                req = urllib.request.Request(plugin + "runs", headers={"Accept-Encoding": "gzip",
                                                                       **({"If-None-Match": etag} if etag else {})})
                t0 = time.perf_counter()
                try:
                    with urllib.request.urlopen(req, timeout=60) as resp:
                        resp.read()
                        etag = resp.headers.get("ETag")
                except urllib.error.HTTPError as e:
                    if e.code != 304:
                        raise
                    unchanged += 1
                ms.append((time.perf_counter() - t0) * 1000)
            print("  runs (poll): %d of %d answered 304 (unchanged)" % (unchanged, len(ms)))
            return percentiles(ms)

        # Logs written with the summary ops alone (--source synthetic) have no plans or statistics.
        for route, flag in (("plan", "has_plan"), ("health", "has_stats"), ("stats", "has_stats")):
            if not all(r[flag] for r in listing):
                del routes[route]
        results["runs (poll)"] = poll()
        results["scrub info"] = scrub("info")
        results["scrub image"] = scrub("image")
        for name, make in routes.items():
            n = args.requests if name not in ("ranges", "health") else max(20, args.requests // 10)
            for _ in range(5):
                get(make())  # warm-up
            results[name] = percentiles([get(make()) for _ in range(n)])
        return {"load_s": load_s, "rss": rss, "base_rss": base_rss, "latency": results}
    finally:
        stop(proc)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", choices=["model", "zoo", "synthetic"], default="model")
    p.add_argument("--runs", type=int, default=None, help="default: 18 (zoo), 3 (others)")
    p.add_argument("--epochs", type=int, default=None, help="default: 100 (model), 200 (synthetic)")
    p.add_argument("--layers", type=int, default=30)
    p.add_argument("--probes", type=int, default=4)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--logdir", default=None, help="reuse/keep this log directory")
    p.add_argument("--loaders", default="true,false")
    args = p.parse_args()
    if args.epochs is None:
        args.epochs = {"model": 100, "zoo": 2, "synthetic": 200}[args.source]
    if args.runs is None:
        args.runs = 18 if args.source == "zoo" else 3
    logdir = args.logdir or tempfile.mkdtemp(prefix="lv_bench_plugin_")
    if not os.path.isdir(logdir) or not os.listdir(logdir):
        t0 = time.time()
        if args.source == "model":
            write_model_logdir(logdir, args.runs, args.epochs, args.probes)
            what = "MobileNetV2 (155 layers) with the LayerView callback"
        elif args.source == "zoo":
            write_zoo_logdir(logdir, args.runs, args.epochs, args.probes)
            what = "%s (each fitted once, then copied) with the LayerView callback" % ", ".join(n for _, n in ZOO)
        else:
            write_logdir(logdir, args.runs, args.epochs, args.layers, args.probes)
            what = "%d synthetic layers" % args.layers
        print("wrote %d runs x %d steps of %s, %d probes, in %.0f s" %
              (args.runs, args.epochs + 1, what, args.probes, time.time() - t0))
    size = dir_size(logdir)
    print("log directory: %s, %.1f MiB on disk" % (logdir, size / 2**20))
    for loader in args.loaders.split(","):
        r = measure(logdir, loader, args)
        print("\n--load_fast=%s: all steps loaded after %.0f s" % (loader, r["load_s"]))
        print("  (\"random\": uniformly random run/layer/step; \"scrub\": one layer epoch after epoch)")
        for name, (p50, p95) in r["latency"].items():
            # The targets: list routes (runs, steps) p95 <= 50 ms, image route p95 <= 10 ms.
            target = 10 if "image" in name else 50 if name in ("runs", "runs (poll)", "steps") else None
            verdict = "no target" if target is None else "target p95 <= %d ms: %s" % (
                target, "met" if p95 <= target else "MISSED")
            print("  %-12s p50 %6.1f ms   p95 %6.1f ms   (%s)" % (name, p50, p95, verdict))
        print("  RSS %.0f MiB = %.2f x on-disk size; growth over an empty logdir %.0f MiB = %.2f x (target 1.5 x)"
              % (r["rss"] / 2**20, r["rss"] / size, (r["rss"] - r["base_rss"]) / 2**20,
                 (r["rss"] - r["base_rss"]) / size))


if __name__ == "__main__":
    main()
