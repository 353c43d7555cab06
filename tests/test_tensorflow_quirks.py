"""What TensorFlow itself does around LayerView's probe pass, when Keras runs on TensorFlow.

Not run under the JAX and PyTorch workers of test_backends: the models here
use ``tf.function`` inside their layers, as Keras' own TensorFlow operations do.
"""

import contextlib
import itertools
import logging
import threading
import warnings

import numpy as np
import pytest

import keras
import tensorflow as tf

from tb_layerview import LayerView, LayerViewWarning, gradients, metadata, stats
from helpers import json_of, run_blob
from test_callback import fit, only_run

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="Keras runs on TensorFlow here")


_RETRACING_MODELS = itertools.count()


def _retracing_model():
    """Six layers that, like Keras' grouped convolutions on a CPU, wrap their
    operation in a new ``tf.function`` at every eager call. The class is
    compiled from source each time, on lines of its own: TensorFlow warns at
    most twice per code object, and code objects of the same source on the
    same lines compare equal, so every model gets a fresh allowance."""
    source = "\n" * next(_RETRACING_MODELS) + (
        "class Doubling(keras.layers.Layer):\n"
        "    def call(self, x):\n"
        "        return tf.function(lambda t: t * 2.0, autograph=False)(x)\n")
    scope = {"keras": keras, "tf": tf}
    exec(compile(source, "<retracing layer>", "exec"), scope)
    inp = keras.Input((4,))
    x = inp
    for i in range(6):
        x = scope["Doubling"](name="double%d" % i)(x)
    return keras.Model(inp, keras.layers.Dense(2, name="out")(x))


def _tensorflow_log(run):
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger, handler = logging.getLogger("tensorflow"), Keep()
    logger.addHandler(handler)
    try:
        run()
    finally:
        logger.removeHandler(handler)
    # Only the warnings about the test's own per-call function: how often the
    # process traced Keras' train function before depends on the tests that
    # ran in it, and TensorFlow warns about that too.
    return [r for r in records if "retracing" in r and "Doubling.call" in r]


def test_eager_probe_pass_through_ops_that_trace_per_call_logs_no_retracing_warning(tmp_path, monkeypatch):
    """A fit with LayerView of a model whose ops trace a tf.function at every eager call logs no
    "triggered tf.function retracing" warning, as the same fit without LayerView does not; with
    the quieting undone, the probe pass does log it."""
    x = np.ones((16, 4), np.float32)
    y = np.zeros((16, 2))
    bare = _retracing_model()
    bare.compile(optimizer="sgd", loss="mse")
    assert _tensorflow_log(lambda: bare.fit(x, y, epochs=2, batch_size=16, verbose=0)) == []
    assert _tensorflow_log(lambda: fit(_retracing_model(), x, y, tmp_path / "quiet", probe=x[:2])) == []
    series, run = only_run(tmp_path / "quiet")
    assert len(run_blob(series, run, metadata.KIND_STATS)) == 3
    plans = run_blob(series, run, metadata.KIND_PLAN)
    assert [json_of(plans[s][0])["capture"]["mode"] for s in sorted(plans)] == ["eager"] * 3

    monkeypatch.setattr(gradients, "eager_retracing_quiet", contextlib.nullcontext)
    logged = _tensorflow_log(lambda: fit(_retracing_model(), x, y, tmp_path / "loud", probe=x[:2]))
    assert logged and "triggered tf.function retracing" in logged[0]


def test_retracing_notice_is_dropped_on_the_quieted_thread_only():
    def record(message):
        return logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, message, None, None)

    kept = []
    with gradients.eager_retracing_quiet():
        logger = logging.getLogger("tensorflow")
        for f in logger.filters:
            kept.append(f.filter(record("5 out of the last 5 calls to f triggered tf.function retracing.")))
            kept.append(f.filter(record("something else")))
            other = threading.Thread(target=lambda: kept.append(
                f.filter(record("6 out of the last 6 calls to f triggered tf.function retracing."))))
            other.start()
            other.join()
    assert kept == [False, True, True]
    assert not [f for f in logging.getLogger("tensorflow").filters if isinstance(f, gradients._DropRetracingNotice)]


def _text_model():
    texts = np.array(["the cat sat", "a dog ran far", "birds fly high up", "fish swim \u00fc <b>"] * 8)
    vectorize = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=6, name="vec")
    vectorize.adapt(texts)
    inp = keras.Input((1,), dtype="string", name="text")
    x = keras.layers.Embedding(50, 8, name="emb")(vectorize(inp))
    out = keras.layers.Dense(2, activation="softmax", name="out")(keras.layers.GlobalAveragePooling1D(name="gap")(x))
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    labels = np.arange(len(texts)) % 2
    data = tf.data.Dataset.from_tensor_slices((texts[:, None], labels)).batch(16)
    return model, data, texts[:, None], labels


@pytest.mark.parametrize("make_probe", [lambda t: t, lambda t: tf.constant(t), lambda t: t.astype(object),
                                        lambda t: np.char.encode(t, "utf-8")],
                         ids=["numpy str", "tf.constant", "object array", "numpy bytes"])
def test_a_model_that_takes_raw_strings_is_logged_with_its_text_probe(tmp_path, make_probe):
    """TextVectorization inside the model, a probe of raw strings (numpy str or bytes, an object array, a
    tf.constant): no warning, every layer's statistics at every step, and the probes series keeps the text."""
    model, data, texts, labels = _text_model()
    cb = LayerView(str(tmp_path / "text"), probe=(make_probe(texts[:4]), labels[:4]), budget=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(data, epochs=2, verbose=0, callbacks=[cb])
    assert not [w for w in caught if issubclass(w.category, LayerViewWarning)], [str(w.message) for w in caught]
    series, run = only_run(tmp_path / "text")
    steps = run_blob(series, run, metadata.KIND_STATS)
    assert sorted(steps) == [0, 1, 2]
    assert [l["path"] for l in stats.decode(*steps[2])[0]["layers"]] == ["vec", "emb", "gap", "out"]
    info = json_of(run_blob(series, run, metadata.KIND_PROBES)[0][0])
    assert info["drawn_input"] is None and info["count"] == 4
    assert info["probes"][3]["inputs"]["text"] == {"shape": [1], "dtype": "string",
                                                   "text": ["fish swim \u00fc <b>"], "truncated": False}
    assert info["probes"][1]["label"] == {"value": 1.0, "class": 1}


def test_a_keras_tuner_search_gives_each_trial_its_layers_in_its_own_run(tmp_path):
    """KerasTuner copies every callback for every trial and moves keras.callbacks.TensorBoard into
    <log_dir>/<trial id>/execution0. A LayerView given beside it lands in the same run for each
    trial, with every step, without a warning. The search used to stop at once: "All callbacks used
    during a search should be deep-copyable"."""
    import warnings

    import keras_tuner

    from helpers import layer_series, read_series

    logs = str(tmp_path / "logs")
    rng = np.random.default_rng(0)
    x, y = rng.random((48, 6), dtype=np.float32), np.arange(48) % 3

    def build(hp):
        model = keras.Sequential([
            keras.Input((6,)),
            keras.layers.Dense(hp.Int("units", 4, 8, step=4), activation="relu", name="hidden"),
            keras.layers.Dense(3, activation="softmax", name="out")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    tuner = keras_tuner.RandomSearch(build, objective="val_accuracy", max_trials=2, seed=1,
                                     directory=str(tmp_path / "tuner"), project_name="p")
    with warnings.catch_warnings():
        warnings.simplefilter("error", LayerViewWarning)
        tuner.search(x, y, epochs=2, validation_split=0.25, verbose=0,
                     callbacks=[keras.callbacks.TensorBoard(logs),
                                LayerView(logs, probe=(x[:4], y[:4]), class_views=False, budget=None)])
    trials = sorted(tuner.oracle.trials)
    assert len(trials) == 2
    series = read_series(logs)
    for trial in trials:
        run = "%s/execution0" % trial
        assert sorted(layer_series(series, run)[("activations", "hidden")]) == [0, 1, 2], (run, sorted(series))
        config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
        hidden = next(l for l in config["layers"] if l["path"] == "hidden")
        assert hidden["output_shape"][-1] == tuner.oracle.trials[trial].hyperparameters.get("units"), hidden
    assert "." not in series  # nothing written to the base directory itself


class _FailsInTracedInference(keras.layers.Layer):
    """Passes its input on, except inside a traced graph that is not training, where it adds an
    assertion that fails when the graph runs: a graph that traces and then cannot run."""

    def call(self, x, training=None):
        if not tf.executing_eagerly() and not training:
            with tf.control_dependencies([tf.debugging.Assert(False, ["checked only when the graph runs"])]):
                return tf.identity(x)
        return x


def test_a_compiled_pass_that_fails_when_it_runs_falls_back_to_the_eager_pass(tmp_path):
    """The compiled probe pass traces, then fails at its first call. That used to stop fit with "the
    probe does not fit the model", which it does; now every step is captured by the eager pass, whose
    plan records say why, and the pass is not traced again at later steps."""
    x = np.random.default_rng(0).random((16, 6, 3)).astype("float32")
    model = keras.Sequential([keras.Input((6, 3)), keras.layers.LSTM(4, name="lstm", return_sequences=True),
                              _FailsInTracedInference(name="odd"), keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(2, name="out")])
    view = fit(model, x, np.zeros((16, 2)), tmp_path / "run", probe=x[:3], epochs=3)
    series, run = only_run(tmp_path / "run")
    steps = run_blob(series, run, metadata.KIND_STATS)
    assert sorted(steps) == [0, 1, 2, 3]
    assert [l["path"] for l in stats.decode(*steps[3])[0]["layers"]] == ["lstm", "odd", "flat", "out"]
    captures = [json_of(b[0])["capture"] for _, b in sorted(run_blob(series, run, metadata.KIND_PLAN).items())]
    assert [c["mode"] for c in captures] == ["eager"] * 4
    for c in captures:
        assert c["fallback_reason"].startswith("the compiled pass failed when it ran: InvalidArgumentError"), c
        assert "checked only when the graph runs" in c["fallback_reason"], c
    assert view._probe_pass._fn is None and view._compile_refused


def test_error_summary_gives_the_cause_of_a_tensorflow_graph_error_in_one_line():
    """One line, "Type: message": the first line of a message, and for TensorFlow's graph errors, whose
    first line is a header followed by where the node was defined, the cause after it."""
    from tb_layerview import capture

    @tf.function(autograph=False)
    def failing(x):
        with tf.control_dependencies([tf.debugging.Assert(False, ["the cause"])]):
            return tf.identity(x)

    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        failing(tf.ones(2))
    assert capture.error_summary(caught.value) == (
        "InvalidArgumentError: Graph execution error: assertion failed: [the cause]")
    assert capture.error_summary(ValueError("bad shape\n\nmore: detail")) == "ValueError: bad shape"
    assert capture.error_summary(RuntimeError("")) == "RuntimeError: "
