"""LayerView's cost at its defaults on real architectures, measured within one run.

For each model, fits with and without the callback alternate (so the
machine's noise hits both alike) and the script prints the median ratio of
whole-fit times, the event bytes per logged epoch, the share of training
time LayerView measured for itself (hooks plus the writer thread's CPU, from
the plan records) and whether every layer's statistics are at every logged
epoch.

Models: the seed CNN (Conv2D 32/64/64, Dense 128/256/10, 32x32x3, 4096
samples, batch 64); keras.applications MobileNetV2 (96x96x3, 1024 samples,
batch 32), VGG16 and ResNet50 (64x64x3, 512 samples, batch 32), all with
``weights=None`` and 10 classes; a text classifier (``rnn``: Embedding,
Bidirectional LSTM(32) and GRU(32) over 40 token ids, 4096 samples, batch
64); 8 labelled probes, logging every epoch.

Usage: python benchmarks/bench_models.py [--models cnn,mobilenetv2,vgg16,resnet50,rnn] [--epochs 3]
       [--samples N] [--pairs 2] [--class-views on|off] [--budget default|off] [--feed dataset|arrays]
       [--writer background|inline]
       [--cold] [--process-per-fit] [--batch-times]

Each model's train step is traced by a one-batch fit before the timed fit,
so the ratio compares LayerView with the training itself; ``--cold`` times
a fresh model's first fit instead, Keras tracing its train step included,
which is what a user's first ``fit`` costs (ResNet50 at 64x64: about 20 s
of tracing before 10-13 s of training here).

``--process-per-fit`` runs each fit in a fresh Python process, as a
user's first fit in a script runs: what a process does once (imports,
JAX's compilation of each new operation) then falls inside the fit it
serves, with LayerView and without.

Besides the whole fit, the script times each fit from train begin to train
end (every hook of LayerView inside, see TrainingWindow). ``--batch-times``
also sums the train steps' own times (train batch begin to end, in both
fits): where the whole fit grows by more than LayerView's hooks, it tells
whether the training steps themselves ran slower beside LayerView. By default it
feeds TensorFlow a repeated tf.data pipeline without autotuning (see feed),
which keeps this machine's idle spells of seconds in the teardown of
tf.data's iterators, where LayerView runs no code, out of the whole fit.

Each fit's line also gives the CPU time the hypervisor stole meanwhile and
the seconds Python's garbage collector ran (with its full collections), so
that a fit slowed by the machine or by a collection that happened to fall
in it can be told from one slowed by what it ran.

The extra CPU of a fit with LayerView is split by thread (from /proc): the
training thread, which runs LayerView's hooks, and the others (TensorFlow's
pools, LayerView's writer). Set beside LayerView's own measure, it shows
whether anything LayerView does escapes that measure, with less noise than
the wall time of a fit on a shared machine.
"""

import argparse
import gc
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

MODELS = {
    # name: (builder, input shape, samples, batch, default epochs)
    "cnn": ("seed", (32, 32, 3), 4096, 64, 6),
    "mobilenetv2": ("MobileNetV2", (96, 96, 3), 1024, 32, 5),
    "vgg16": ("VGG16", (64, 64, 3), 512, 32, 2),
    "resnet50": ("ResNet50", (64, 64, 3), 512, 32, 2),
    "rnn": ("rnn", (40,), 4096, 64, 4),
}


def make_data(name, samples=None):
    """The fit's (x, y): images in [0, 1), or token ids for the text model;
    ``samples`` of them, or the model's own number."""
    shape = MODELS[name][1]
    samples = samples or MODELS[name][2]
    rng = np.random.default_rng(0)
    if MODELS[name][0] == "rnn":
        x = rng.integers(1, 100, (samples,) + shape).astype("int32")
    else:
        x = rng.random((samples,) + shape, dtype=np.float32)
    return x, rng.integers(0, 10, samples)


def build(name):
    import keras

    kind, shape = MODELS[name][:2]
    if kind == "seed":
        return keras.Sequential([
            keras.Input(shape),
            keras.layers.Conv2D(32, 3, activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(name="pool1"),
            keras.layers.Conv2D(64, 3, activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(name="pool2"),
            keras.layers.Conv2D(64, 3, activation="relu", name="conv3"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(128, activation="relu", name="dense1"),
            keras.layers.Dense(256, activation="relu", name="dense2"),
            keras.layers.Dense(10, activation="softmax", name="predictions"),
        ])
    if kind == "rnn":
        return keras.Sequential([
            keras.Input(shape, dtype="int32"),
            keras.layers.Embedding(100, 16, mask_zero=True, name="embed"),
            keras.layers.Bidirectional(keras.layers.LSTM(32, return_sequences=True), name="bilstm"),
            keras.layers.GRU(32, name="gru"),
            keras.layers.Dense(10, activation="softmax", name="predictions"),
        ])
    return getattr(keras.applications, kind)(weights=None, input_shape=shape, classes=10)


class TrainingWindow:
    """Times a fit from its train begin to its train end: ``begin`` goes
    first in the callback list and ``end`` last, so every hook of LayerView,
    the writer's last step included, falls inside. It leaves out what fit
    does before and after, where LayerView runs no code (building and
    tearing down the input pipeline, see feed)."""

    def __init__(self):
        import keras

        window = self

        class Begin(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                window.started = time.perf_counter()

        class End(keras.callbacks.Callback):
            def on_train_end(self, logs=None):
                window.seconds = time.perf_counter() - window.started

        self.begin, self.end, self.started, self.seconds = Begin(), End(), None, None


class BatchClock:
    """Sums the time of each train step, from its batch begin to its batch
    end, which none of LayerView's hooks falls in (it has no batch hooks).
    A callback with batch hooks makes Keras hand each step's logs over at
    once, so both fits of a pair carry it."""

    def __init__(self):
        import keras

        clock = self

        class Clock(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                clock.started = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                clock.seconds += time.perf_counter() - clock.started

        self.callback, self.started, self.seconds = Clock(), None, 0.0


def feed(x, y, batch, seed, how):
    """fit's inputs: the arrays, or one repeated tf.data pipeline whose
    iterator lives through the whole fit, with tf.data's autotuning off.

    Destroying a tf.data iterator waits for its autotuning thread, and on
    this machine that wait at times lasts seconds with both cores idle
    (py-spy, native: the main thread in ``~IteratorResource`` ->
    ``RootDataset::Iterator::~Iterator``, waiting on an
    ``UnboundedThreadPool`` thread). The pipeline's iterator is destroyed
    once, when fit returns: with autotuning on, 5 of 10 bare fits of the
    seed CNN stalled there for 0.3-4.6 s; with it off, none of 20. With
    arrays, Keras builds an autotuned pipeline and destroys its iterator at
    every epoch, so the stalls (about 2.4 s) fall between epochs, in bare
    fits too. The pipeline prefetches a fixed 2 batches, so it needs no
    autotuning."""
    if how == "arrays":
        return (x, y), {"batch_size": batch}
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    ds = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed).batch(batch).repeat()
          .prefetch(2).with_options(options))
    return (ds,), {"steps_per_epoch": -(-len(x) // batch), "shuffle": False}


def stolen_seconds():
    """CPU time the hypervisor gave to other guests so far, all cores
    summed (the steal column of /proc/stat), or None off Linux. A fit that
    lost seconds to it was slowed by the machine, not by what it ran."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def thread_cpu():
    """{thread id: CPU seconds so far} of this process's threads, from
    /proc (None off Linux): a fit's extra CPU can then be split between the
    training thread and the others (TensorFlow's pools, LayerView's writer)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open("/proc/self/task/%s/stat" % tid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[tid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def split_cpu(before, after, ended):
    """(training thread's CPU seconds, other threads') between two
    :func:`thread_cpu` readings; ``ended``: CPU seconds of threads that ended
    between them (LayerView's writer, measured by itself)."""
    if before is None or after is None:
        return None, None
    main = str(os.getpid())
    own = after.get(main, 0.0) - before.get(main, 0.0)
    others = sum(c - before.get(tid, 0.0) for tid, c in after.items() if tid != main) + ended
    return own, others


class GCMeter:
    """Seconds Python's cyclic garbage collector ran during a fit, and how
    many collections of the oldest generation: a full collection of a
    process holding TensorFlow and a model of hundreds of layers takes
    tenths of a second, on whichever thread allocated last."""

    def __init__(self):
        self.seconds, self.full, self._t0 = 0.0, 0, None

    def __call__(self, phase, info):
        if phase == "start":
            self._t0 = time.perf_counter()
        elif self._t0 is not None:
            self.seconds += time.perf_counter() - self._t0
            self.full += info.get("generation") == 2
            self._t0 = None

    def __enter__(self):
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc):
        gc.callbacks.remove(self)


def event_bytes(logdir):
    return sum(os.path.getsize(f) for f in glob.glob(os.path.join(logdir, "events.out.tfevents.*")))


def read_back(logdir):
    """{kind: {step: [blobs]}} of the run-level series, through TensorBoard's reader."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    import helpers

    parent = os.path.dirname(logdir)
    series = helpers.read_series(parent)
    return series[os.path.basename(logdir)]


def one_fit(name, args, pair, with_cb, x, y):
    """One timed fit, with or without LayerView: its row of figures. A fit
    with LayerView keeps its log directory for reading back."""
    import keras

    from tb_layerview import LayerView

    batch, epochs = MODELS[name][3], args.epochs or MODELS[name][4]
    keras.utils.set_random_seed(pair)
    model = build(name)
    model.compile("adam", "sparse_categorical_crossentropy")
    if not args.cold:
        # Trace the train step outside the timing, as any second fit would.
        inputs, kwargs = feed(x[:batch], y[:batch], batch, pair, args.feed)
        model.fit(*inputs, epochs=1, verbose=0, **kwargs)
    root = tempfile.mkdtemp(prefix="lv_models_")
    logdir = os.path.join(root, name)
    cbs, lv = [], None
    if with_cb:
        kw = {"class_views": args.class_views == "on"}
        if args.budget == "off":
            kw["budget"] = None
        if args.writer == "inline":
            kw["background"] = False
        lv = LayerView(logdir, probe=(x[:8], y[:8]), **kw)
        cbs = [lv]
    window = TrainingWindow()
    clock = BatchClock() if args.batch_times else None
    if clock:
        cbs = [clock.callback] + cbs
    threads0 = thread_cpu()
    t0, c0, s0 = time.perf_counter(), time.process_time(), stolen_seconds()
    inputs, kwargs = feed(x, y, batch, pair, args.feed)
    with GCMeter() as collected:
        model.fit(*inputs, epochs=epochs, verbose=0, callbacks=[window.begin] + cbs + [window.end], **kwargs)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    s1 = stolen_seconds()
    # The writer thread has ended by now: its CPU is LayerView's own measure.
    own_cpu, others_cpu = split_cpu(threads0, thread_cpu(), lv.cost["writer_cpu_seconds"] if lv else 0.0)
    stolen = "" if s0 is None or s1 is None else ", %.2f s stolen by the hypervisor" % (s1 - s0)
    row = {"with": with_cb, "seconds": total, "cpu": cpu, "window": window.seconds,
           "training_thread_cpu": own_cpu, "other_threads_cpu": others_cpu,
           "steps_seconds": clock.seconds if clock else None}
    if with_cb:
        row.update({"bytes": event_bytes(logdir), "cost": lv.cost, "logdir": logdir})
    else:
        shutil.rmtree(root, ignore_errors=True)
    print("  %-12s pair %d %-7s %.2f s wall (training %.2f s), %.2f s CPU%s, %.2f s in Python's garbage"
          " collector (%d full collections)"
          % (name, pair, "with" if with_cb else "without", total, window.seconds, cpu, stolen,
             collected.seconds, collected.full), flush=True)
    return row


def fit_in_child(name, args, pair, with_cb):
    """:func:`one_fit` in a fresh Python process, as a user's first fit in a
    script runs: the imports and compilations a process does once (JAX's
    per-operation compilation, TensorFlow's import) fall inside it."""
    cmd = [sys.executable, os.path.abspath(__file__), "--models", name, "--child",
           "%d:%s" % (pair, "with" if with_cb else "without")]
    for flag in ("epochs", "samples", "class_views", "budget", "writer", "feed"):
        value = getattr(args, flag)
        if value is not None:
            cmd += ["--" + flag.replace("_", "-"), str(value)]
    if args.cold:
        cmd.append("--cold")
    if args.batch_times:
        cmd.append("--batch-times")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith(CHILD_ROW):
        raise RuntimeError("the fit in a child process failed (%d):\n%s\n%s"
                           % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    print("\n".join(lines[:-1]), flush=True)
    return json.loads(lines[-1][len(CHILD_ROW):])


#: The prefix of the line on which a child process hands its fit's row back.
CHILD_ROW = "ROW "


def bench(name, args):
    from tb_layerview import metadata, stats

    _, _, samples, batch, default_epochs = MODELS[name]
    samples = args.samples or samples
    epochs = args.epochs or default_epochs
    x = y = None
    if not args.process_per_fit:
        x, y = make_data(name, samples)
    rows = []
    last_logdir = None
    for pair in range(args.pairs):
        order = (False, True) if pair % 2 == 0 else (True, False)
        for with_cb in order:
            row = fit_in_child(name, args, pair, with_cb) if args.process_per_fit else \
                one_fit(name, args, pair, with_cb, x, y)
            rows.append(row)
            if with_cb:
                if last_logdir:
                    shutil.rmtree(os.path.dirname(last_logdir), ignore_errors=True)
                last_logdir = row["logdir"]
    withouts = [r for r in rows if not r["with"]]
    without = [r["seconds"] for r in withouts]
    withs = [r for r in rows if r["with"]]
    pairs = [w["seconds"] / wo for w, wo in zip(withs, without)]
    cpu_pairs = [w["cpu"] / wo["cpu"] for w, wo in zip(withs, withouts)]
    window_pairs = [w["window"] / wo["window"] for w, wo in zip(withs, withouts)]
    steps = epochs + 1
    per_epoch = np.median([r["bytes"] / steps for r in withs])
    series = read_back(last_logdir)
    by_kind = {}
    for tag, s in series.items():
        by_kind.setdefault(s["meta"].kind, {})[tag] = s
    stats_steps = next(iter(by_kind[metadata.KIND_STATS].values()))["steps"]
    complete = True
    layer_count = 0
    for step, blobs in stats_steps.items():
        header, data = stats.decode(blobs[0], blobs[1])
        layer_count = len(header["layers"])
        complete &= data.shape[1] == sum(l["channels"] for l in header["layers"])
    complete &= sorted(stats_steps) == list(range(steps))
    plans = next(iter(by_kind[metadata.KIND_PLAN].values()))["steps"]
    shares = []
    for step in sorted(plans):
        rec = json.loads(plans[step][0])
        cost = rec.get("cost") or {}
        if cost.get("epoch_seconds"):
            shares.append((cost["hook_seconds"] + cost["writer_cpu_seconds"]) / cost["epoch_seconds"])
    last_plan = json.loads(plans[max(plans)][0])
    cost = withs[-1]["cost"]
    print("\n%s: %d epochs, %d samples, batch %d, 8 probes, class views %s, budget %s, writer %s, fed as %s, %s%s"
          % (name, epochs, samples, batch, args.class_views, args.budget, args.writer, args.feed,
             "first fit of a fresh model" if args.cold else "train step traced before the timing",
             ", each fit in a fresh process" if args.process_per_fit else ""))
    print("  whole fit with / without LayerView: median %.3f (pairs: %s)"
          % (np.median(pairs), ", ".join("%.3f" % p for p in pairs)))
    print("  training (train begin to train end, every hook of LayerView included) with / without: median %.3f"
          " (pairs: %s)" % (np.median(window_pairs), ", ".join("%.3f" % p for p in window_pairs)))
    if args.batch_times:
        step_pairs = [w["steps_seconds"] / wo["steps_seconds"] for w, wo in zip(withs, withouts)]
        print("  train steps alone (batch begin to batch end, summed) with / without: median %.3f (pairs: %s)"
              % (np.median(step_pairs), ", ".join("%.3f" % p for p in step_pairs)))
    print("  fastest fit with / fastest without: %.3f" % (min(w["seconds"] for w in withs) / min(without)))
    print("  process CPU time with / without: median %.3f (pairs: %s)"
          % (np.median(cpu_pairs), ", ".join("%.3f" % p for p in cpu_pairs)))
    if withs[0]["training_thread_cpu"] is not None:
        extra = [(w["training_thread_cpu"] - wo["training_thread_cpu"], w["other_threads_cpu"] - wo["other_threads_cpu"])
                 for w, wo in zip(withs, withouts)]
        print("  extra CPU with LayerView, per pair (median): %.2f s on the training thread, %.2f s on the other"
              " threads (TensorFlow's pools, LayerView's writer); LayerView's own measure: %.2f s of hooks, %.2f s"
              " of writer CPU" % (np.median([e[0] for e in extra]), np.median([e[1] for e in extra]),
                                   np.median([w["cost"]["hook_seconds"] for w in withs]),
                                   np.median([w["cost"]["writer_cpu_seconds"] for w in withs])))
    # What the whole-fit ratio would be if LayerView's own accounting were all it cost: a figure with
    # far less of the machine's noise than the wall times it sits beside.
    own = [1 + (w["cost"]["hook_seconds"] + w["cost"]["writer_cpu_seconds"]) / wo for w, wo in zip(withs, without)]
    print("  whole fit by LayerView's own accounting (1 + hooks and writer CPU / the pair's bare fit): median %.3f"
          " (%.3f … %.3f)" % (np.median(own), min(own), max(own)))
    print("  fit without: %.1f s (median)" % np.median(without))
    print("  events per logged epoch: %.0f KB (%d steps incl. step 0)" % (per_epoch / 1000, steps))
    print("  LayerView's own measure per logged epoch (hooks + writer CPU / epoch): median %.1f%%"
          % (100 * np.median(shares) if shares else float("nan")))
    print("  training-thread hooks %.2f s, writer CPU %.2f s in the last fit"
          % (cost["hook_seconds"], cost["writer_cpu_seconds"]))
    print("  statistics: %d outputs at every one of %d steps: %s" % (layer_count, steps, complete))
    print("  last plan: %s" % (last_plan.get("note") or "everything"))
    shutil.rmtree(os.path.dirname(last_logdir), ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="cnn,mobilenetv2")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs per fit (default: cnn 6, mobilenetv2 5, vgg16 and resnet50 2, rnn 4)")
    p.add_argument("--samples", type=int, default=None,
                   help="training samples per epoch (default: cnn and rnn 4096, mobilenetv2 1024, vgg16 and "
                        "resnet50 512); more make each epoch longer against the same probe passes")
    p.add_argument("--pairs", type=int, default=2)
    p.add_argument("--class-views", choices=["on", "off"], default="on")
    p.add_argument("--budget", choices=["default", "off"], default="default")
    p.add_argument("--writer", choices=["background", "inline"], default="background",
                   help="inline: LayerView(background=False), rendering and writing on the training thread")
    p.add_argument("--cold", action="store_true",
                   help="time a fresh model's first fit, Keras tracing its train step included, as a user's "
                        "first fit runs (default: the train step is traced before the timing)")
    p.add_argument("--process-per-fit", action="store_true",
                   help="run each fit in a fresh Python process, as a user's first fit in a script runs")
    p.add_argument("--batch-times", action="store_true",
                   help="also sum each fit's train steps (batch begin to end), to tell a slower training "
                        "step beside LayerView from LayerView's own hooks")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--feed", choices=["dataset", "arrays"], default=None,
                   help="dataset: a repeated tf.data pipeline (the default on TensorFlow); arrays: numpy arrays "
                        "(the default on other backends)")
    args = p.parse_args()
    if args.feed is None:
        import keras

        args.feed = "dataset" if keras.backend.backend() == "tensorflow" else "arrays"
    if args.child:  # one fit of a --process-per-fit run: its row goes back on the last line
        pair, which = args.child.split(":")
        name = args.models
        x, y = make_data(name, args.samples)
        row = one_fit(name, args, int(pair), which == "with", x, y)
        print(CHILD_ROW + json.dumps(row), flush=True)
        return
    for name in args.models.split(","):
        bench(name.strip(), args)


if __name__ == "__main__":
    main()
