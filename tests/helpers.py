"""Test helpers: read tb_layerview series back through TensorBoard's own code."""

import json
import os

from tensorboard import context as tb_context
from tensorboard.backend import application
from tensorboard.backend.event_processing import data_provider
from tensorboard.backend.event_processing import plugin_event_multiplexer
from tensorboard.plugins import base_plugin

from tb_layerview import metadata


def eager_channels_first_convolution():
    """Whether Keras' backend runs a channels-first convolution eagerly on this machine
    (TensorFlow on a CPU without oneDNN runs it only compiled with XLA)."""
    import keras
    import numpy as np

    try:
        keras.layers.Conv2D(1, 1, data_format="channels_first")(np.zeros((1, 1, 2, 2), "float32"))
    except Exception:  # noqa: BLE001 - TensorFlow's UnimplementedError
        return False
    return True


def provider_for(logdir):
    """A MultiplexerDataProvider over ``logdir`` keeping every tb_layerview step."""
    mult = plugin_event_multiplexer.EventMultiplexer(
        tensor_size_guidance={metadata.PLUGIN_NAME: 0})
    mult.AddRunsFromDirectory(logdir)
    mult.Reload()
    return data_provider.MultiplexerDataProvider(mult, logdir), mult


def read_series(logdir):
    """{run: {tag: {"meta": LayerViewPluginData, "steps": {step: [bytes, ...]}}}}."""
    provider, _ = provider_for(logdir)
    ctx = tb_context.RequestContext()
    listing = provider.list_blob_sequences(ctx, experiment_id="", plugin_name=metadata.PLUGIN_NAME)
    data = provider.read_blob_sequences(ctx, experiment_id="", plugin_name=metadata.PLUGIN_NAME,
                                        downsample=metadata.ALL_STEPS)
    out = {}
    for run, entry in metadata.index_series(listing).items():
        for s in [s for kinds in entry["layers"].values() for s in kinds.values()] + list(entry["run"].values()):
            steps = {d.step: [provider.read_blob(ctx, blob_key=v.blob_key) for v in d.values]
                     for d in data[run][s.tag]}
            out.setdefault(run, {})[s.tag] = {"meta": s.meta, "steps": steps}
    return out


def layer_series(series, run):
    """{(kind, layer path): steps dict} of one run's per-layer series."""
    return {(s["meta"].kind, s["meta"].layer): s["steps"] for s in series[run].values()
            if s["meta"].kind in metadata.LAYER_KINDS}


def run_blob(series, run, kind):
    """The steps dict of a run-level series."""
    for s in series[run].values():
        if s["meta"].kind == kind:
            return s["steps"]
    raise KeyError(kind)


def json_of(blob):
    return json.loads(blob.decode("utf-8"))


def wsgi_client(logdir, sampling_hints=None):
    """A werkzeug test client for TensorBoard's real WSGI app with the plugin."""
    provider, mult = provider_for(logdir)
    return client_for(logdir, provider, mult, sampling_hints)


def client_for(logdir, provider, mult, sampling_hints=None):
    """:func:`wsgi_client` over a given data provider (one that counts or
    slows its reads, say) and the multiplexer behind it (to Reload)."""
    from werkzeug import test as wtest

    from tb_layerview.plugin import LayerViewPlugin

    ctx = base_plugin.TBContext(logdir=logdir, data_provider=provider, multiplexer=mult,
                                sampling_hints=sampling_hints or {})
    app = application.TensorBoardWSGI([LayerViewPlugin(ctx)], data_provider=provider)
    return wtest.Client(app)


HOSTILE_RUN = "odd run <b>ü</b>"
HOSTILE_LAYER = "<img src=x onerror=alert(1)>"
#: A layer path with every character that once broke one loader and not the other.
ODD_LAYER = 'q"uo\\te \'x\' <b> 50% ü'



def write_logs(logdir, cnn_epochs=15):
    """Writes three runs with real fits: a CNN, an MLP and one with hostile names.

    Returns:
      dict of run name -> the fitted model.
    """
    import os

    import keras
    import numpy as np

    from tb_layerview import LayerView

    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    models = {}
    x = rng.random((64, 12, 12, 3), dtype=np.float32)
    y = (x[:, :6].mean(axis=(1, 2, 3)) > x[:, 6:].mean(axis=(1, 2, 3))).astype("int64")
    cnn = keras.Sequential([
        keras.Input((12, 12, 3), name="image"),
        keras.layers.Conv2D(6, 3, activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(name="pool1"),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(2, activation="softmax", name="predictions"),
    ], name="cnn")
    cnn.compile("adam", "sparse_categorical_crossentropy")
    cnn.fit(x, y, epochs=cnn_epochs, batch_size=32, verbose=0,
            callbacks=[LayerView(os.path.join(logdir, "cnn"), probe=(x[:3], y[:3]),
                                 class_names=["top", "bottom"], maximize_steps=16,
                                 maximize_units={"conv2": 2}, budget=None)])
    models["cnn"] = cnn
    xm = rng.random((64, 64), dtype=np.float32)
    mlp = keras.Sequential([keras.Input((64,), name="pixels"),
                            keras.layers.Dense(10, activation="sigmoid", name="hidden"),
                            keras.layers.Dense(3, activation="sigmoid", name="output")], name="mlp")
    mlp.compile("sgd", "mse")
    mlp.fit(xm, np.zeros((64, 3)), epochs=3, verbose=0,
            callbacks=[LayerView(os.path.join(logdir, "mlp"), probe=xm[:2], budget=None)])
    models["mlp"] = mlp
    # Keras' TensorFlow backend refuses such layer names in graph scopes, but
    # names reach the log from custom loops through the summary ops as well.
    import tensorflow as tf

    from tb_layerview import summary

    writer = tf.summary.create_file_writer(os.path.join(logdir, HOSTILE_RUN))
    with writer.as_default():
        for step in range(3):
            summary.activations(HOSTILE_LAYER, rng.random((2, 5, 5, 2)), step=step, layer_class="Odd")
            summary.activations("a/b c ü", rng.random((2, 7)), step=step, layer_index=1, parent="a")
            summary.activations(ODD_LAYER, rng.random((2, 4, 4, 2)), step=step, layer_index=2)
            summary.filters(ODD_LAYER, rng.random((3, 3, 2, 4)), step=step, layer_index=2)
            summary.filters(HOSTILE_LAYER, rng.random((3, 3, 2, 4)), step=step)
            summary.predictions(rng.random((2, 3)), step=step)
    writer.close()
    return models


def start_tensorboard(logdir, *extra, timeout=120, executable=None):
    """Starts a real ``tensorboard`` (this environment's, or ``executable``) on a free port; returns
    (process, base URL)."""
    import os
    import re
    import shutil
    import subprocess
    import sys
    import threading
    import time

    exe = executable or shutil.which("tensorboard", path=os.path.dirname(sys.executable)) or shutil.which("tensorboard")
    cmd = [exe, "--logdir", logdir, "--host", "127.0.0.1", "--port", "0", "--reload_interval", "1"]
    cmd += list(extra)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    deadline = time.time() + timeout
    url = None
    while url is None and time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError("tensorboard exited (%s):\n%s" % (proc.returncode, "".join(lines[-40:])))
            continue
        lines.append(line)
        m = re.search(r"(http://[^\s]+)", line)
        if m and "TensorBoard" in line:
            url = m.group(1).rstrip("/")
    if url is None:
        proc.kill()
        raise RuntimeError("tensorboard did not start:\n" + "".join(lines[-40:]))
    threading.Thread(target=lambda: [lines.append(l) for l in proc.stderr], daemon=True).start()
    proc.log_lines = lines
    return proc, url


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except Exception:
        proc.kill()


def http_get(url, headers=None, timeout=30):
    """(status, headers, body bytes) of a GET, without raising on 4xx/5xx."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def wait_for(predicate, timeout=90, interval=0.5):
    import time

    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # server still loading
            last = e
        time.sleep(interval)
    raise AssertionError("condition not met within %ss (last: %r)" % (timeout, last))


def panel_frame(page, timeout=60):
    """The Layer View iframe of a TensorBoard page, once the panel has its runs.

    Waits with Playwright's own waits: the sync API only learns about new
    frames while it is itself waiting, never during time.sleep.
    """
    import time

    deadline = time.time() + timeout
    page.wait_for_selector("iframe", timeout=timeout * 1000)
    while time.time() < deadline:
        for f in page.frames:
            if "plugin_entry.html" in f.url:
                try:
                    if f.evaluate("!!(window.layerView && window.layerView.runs.length)"):
                        return f
                except Exception:  # the frame is still navigating
                    pass
        page.wait_for_timeout(200)
    raise AssertionError("the Layer View panel did not load within %ss" % timeout)


#: Records of other forms than tb_layerview writes, as another tool or a damaged disk may leave them:
#: run -> the items written at each step of every series kind.
MALFORMED = {
    "not_json": [b"\xff\x00 not json"],
    "not_objects": [b"[1, 2, 3]"],
    "null": [b"null"],
    "wrong_types": [b'{"layers": 5, "probes": 5, "count": "x", "drawn_inputs": 5, "stats": "x"}', b"{}"],
    "wrong_items": [b'{"layers": [5, {"outputs": 3}], "probes": [5, {"min": "a", "max": [null, "b"]}],'
                    b' "count": 2, "drawn_inputs": ["a", 5], "stats": ["mean"]}', b"\x00\x01\x02"],
    "no_items": [],
}


def write_malformed(logdir):
    """Writes a run per :data:`MALFORMED` entry: every series kind, steps 0 and 1, those items."""
    from tb_layerview.writer import EventWriter

    for run, items in MALFORMED.items():
        w = EventWriter(os.path.join(logdir, run))
        for kind in metadata.KINDS:
            layer = "L" if kind in metadata.LAYER_KINDS else ""
            meta = metadata.create_summary_metadata(kind, layer=layer, layer_class="Conv2D",
                                                    output_shape=(4, 4, 2), layout="grid")
            for step in (0, 1):
                w.write(metadata.tag_for(kind, layer), items, step, meta)
        w.close()
