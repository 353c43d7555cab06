"""LayerView with real model.fit runs, read back through TensorBoard's reader."""

import json
import os
import re
import warnings

import numpy as np
import pytest

import keras
import tensorflow as tf

from tb_layerview import LayerView, LayerViewWarning, metadata, render
from helpers import eager_channels_first_convolution, json_of, layer_series, read_series, run_blob

ACT, FIL = metadata.KIND_ACTIVATIONS, metadata.KIND_FILTERS


def fit(model, x, y, log_dir, epochs=2, loss="mse", optimizer="sgd", fit_kwargs=None, **lv):
    model.compile(optimizer=optimizer, loss=loss)
    lv.setdefault("budget", None)  # these tests check that everything asked for is logged
    cb = LayerView(str(log_dir), **lv)
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0, callbacks=[cb], **(fit_kwargs or {}))
    return cb


def only_run(log_dir):
    series = read_series(str(log_dir.parent))
    return series, log_dir.name


def test_cnn_logs_every_layer_every_epoch_filters_config_probes_predictions(tmp_path):
    """A CNN fit for 3 epochs: activations of every layer at steps 0..3, conv filters, run info."""
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(name="pool"),
        keras.layers.Conv2D(2, 2, name="conv2"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(3, activation="softmax", name="out"),
    ])
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 8, 8, 3), dtype=np.float32), rng.integers(0, 3, 32)
    fit(model, x, y, tmp_path / "cnn", epochs=3, loss="sparse_categorical_crossentropy",
        probe=(x[:4], y[:4]), class_names=["a", "b", "c"])
    series, run = only_run(tmp_path / "cnn")
    got = layer_series(series, run)
    assert set(got) == {(ACT, "conv1"), (ACT, "pool"), (ACT, "conv2"), (ACT, "flat"), (ACT, "out"),
                        (FIL, "conv1"), (FIL, "conv2"), (FIL, "out")}
    for steps in got.values():
        assert sorted(steps) == [0, 1, 2, 3]
    blobs = got[(ACT, "conv1")][2]
    info = json_of(blobs[0])
    assert len(blobs) == 5 and len(info["probes"]) == 4
    assert info["layout"] == "grid" and info["shape"] == [6, 6, 4]
    assert render.decode_png(blobs[1]).shape == (13, 13, 2)
    filt = json_of(got[(FIL, "conv1")][0][0])
    assert filt["rgb"] is True and filt["channels"] == 4
    assert render.decode_png(got[(FIL, "conv1")][0][1]).shape[2] == 4
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    assert [l["path"] for l in config["layers"]] == ["conv1", "pool", "conv2", "flat", "out"]
    assert config["layers"][0]["params"] == 3 * 3 * 3 * 4 + 4
    assert config["layers"][0]["config"]["filters"] == 4
    assert config["class_names"] == ["a", "b", "c"]
    probes = run_blob(series, run, metadata.KIND_PROBES)
    assert list(probes) == [0] and len(probes[0]) == 5
    assert json_of(probes[0][0])["probes"][1]["label"]["class"] == int(y[1])
    preds = run_blob(series, run, metadata.KIND_PREDICTIONS)
    assert sorted(preds) == [0, 1, 2, 3]
    rec = json_of(preds[3][0])["probes"][0]["outputs"]["output"]
    assert rec["type"] == "classes" and rec["kind"] == "probabilities" and len(rec["top"]) == 3
    assert rec["names"][0] in ("a", "b", "c")


def test_activation_pixels_match_hand_set_weights(tmp_path):
    """A 1x1 conv with weight 2 on a known input gives exactly the expected bytes."""
    model = keras.Sequential([keras.Input((2, 2, 1)),
                              keras.layers.Conv2D(1, 1, use_bias=False, name="double")])
    model.layers[0].set_weights([np.full((1, 1, 1, 1), 2.0, np.float32)])
    x = np.array([[[[0.0], [1.0]], [[2.0], [3.0]]]], np.float32)
    fit(model, x, x * 2, tmp_path / "hand", epochs=1, optimizer=keras.optimizers.SGD(0.0), probe=x)
    series, run = only_run(tmp_path / "hand")
    blobs = layer_series(series, run)[(ACT, "double")][0]
    assert render.decode_png(blobs[1])[..., 0].tolist() == [[0, 85], [170, 255]]
    stats = json_of(blobs[0])["probes"][0]
    assert (stats["min"], stats["max"], stats["mean"]) == ([0.0], [6.0], [3.0])


def test_dense_units_of_a_784_200_10_network_are_drawn_as_28x28_images(tmp_path):
    """The first Dense layer on a flat 784 input draws each unit's weights as a 28x28 tile."""
    model = keras.Sequential([keras.Input((784,)),
                              keras.layers.Dense(5, activation="sigmoid", name="hidden"),
                              keras.layers.Dense(3, activation="sigmoid", name="output")])
    x = np.random.default_rng(1).random((16, 784), dtype=np.float32)
    fit(model, x, np.zeros((16, 3)), tmp_path / "mlp", epochs=1, probe=x[:2])
    series, run = only_run(tmp_path / "mlp")
    got = layer_series(series, run)
    hidden = json_of(got[(FIL, "hidden")][1][0])
    assert (hidden["tile_h"], hidden["tile_w"], hidden["channels"]) == (28, 28, 5)
    kernel = model.get_layer("hidden").get_weights()[0]
    assert hidden["probes"][0]["max"][2] == pytest.approx(float(kernel[:, 2].max()))
    output = json_of(got[(FIL, "output")][1][0])
    assert (output["tile_h"], output["tile_w"], output["channels"]) == (5, 3, 1)
    probes = run_blob(series, run, metadata.KIND_PROBES)[0]
    assert render.decode_png(probes[1]).shape == (28, 28, 2)


def test_sequential_without_input_is_built_lazily(tmp_path):
    """A Sequential model with no Input is logged once fit has built it."""
    model = keras.Sequential([keras.layers.Dense(4, name="a"), keras.layers.Dense(2, name="b")])
    x = np.ones((16, 3), np.float32)
    fit(model, x, np.zeros((16, 2)), tmp_path / "lazy", probe=x[:2])
    series, run = only_run(tmp_path / "lazy")
    assert set(layer_series(series, run)) == {(ACT, "a"), (ACT, "b"), (FIL, "a"), (FIL, "b")}


def test_nested_model_layers_are_logged_under_a_path(tmp_path):
    """A model used as a layer contributes its inner layers as encoder/<name>."""
    encoder = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3, name="conv1"),
                                keras.layers.Flatten(name="flat")], name="encoder")
    inp = keras.Input((6, 6, 1))
    out = keras.layers.Dense(2, name="head")(encoder(inp))
    model = keras.Model(inp, out)
    x = np.ones((16, 6, 6, 1), np.float32)
    fit(model, x, np.zeros((16, 2)), tmp_path / "nested", probe=x[:2])
    series, run = only_run(tmp_path / "nested")
    got = layer_series(series, run)
    assert set(got) == {(ACT, "encoder/conv1"), (ACT, "encoder/flat"), (ACT, "head"),
                        (FIL, "encoder/conv1"), (FIL, "head")}
    meta = next(s["meta"] for s in series[run].values() if s["meta"].layer == "encoder/conv1")
    assert meta.parent == "encoder"
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    enc = next(l for l in config["layers"] if l["path"] == "encoder")
    assert enc["nested_model"] is True and "encoder/" in enc["skipped"]
    assert enc["calls"] == 1  # counted, though its outputs are its layers' (it used to say 0)


def _stats_by_path(series, run, step):
    from tb_layerview import stats

    header, data = stats.decode(*run_blob(series, run, metadata.KIND_STATS)[step])
    out, at = {}, 0
    for layer in header["layers"]:
        out[layer["path"]] = dict(zip(header["stats"], data[:, at:at + layer["channels"]]))
        at += layer["channels"]
    return out


def test_multi_input_multi_output_and_shared_layers(tmp_path):
    """Two inputs through one shared Dense, two outputs: all logged, and the shared layer's second call
    too, as 'shared@2' (it used to show its first call only)."""
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    shared = keras.layers.Dense(3, name="shared")
    merged = keras.layers.Concatenate(name="concat")([shared(a), shared(b)])
    out1 = keras.layers.Dense(2, name="out1")(merged)
    out2 = keras.layers.Dense(1, name="out2")(merged)
    model = keras.Model([a, b], [out1, out2])
    xa, xb = np.ones((16, 4), np.float32), np.zeros((16, 4), np.float32)
    model.compile("sgd", ["mse", "mse"])
    model.fit([xa, xb], [np.zeros((16, 2)), np.zeros((16, 1))], epochs=1, verbose=0,
              callbacks=[LayerView(str(tmp_path / "multi"), probe=[xa[:2], xb[:2]], budget=None)])
    series, run = only_run(tmp_path / "multi")
    assert {k for k in layer_series(series, run) if k[0] == ACT} == {
        (ACT, "shared"), (ACT, "shared@2"), (ACT, "concat"), (ACT, "out1"), (ACT, "out2")}
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    assert next(l for l in config["layers"] if l["path"] == "shared")["calls"] == 2
    assert not [l for l in config["layers"] if "@" in l["path"]]  # one layer, two calls
    by_path = _stats_by_path(series, run, 1)
    assert list(by_path)[:2] == ["shared", "shared@2"]
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in model.get_layer("shared").weights)
    np.testing.assert_allclose(by_path["shared"]["mean"], xa[0] @ kernel + bias, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(by_path["shared@2"]["mean"], xb[0] @ kernel + bias, rtol=1e-5, atol=1e-6)
    preds = json_of(run_blob(series, run, metadata.KIND_PREDICTIONS)[1][0])
    assert set(preds["probes"][0]["outputs"]) == {"out1", "out2"}
    probes = json_of(run_blob(series, run, metadata.KIND_PROBES)[0][0])
    assert probes["inputs"] == ["a", "b"]


def test_channels_first_model_keeps_channels_on_axis_1_in_every_layer(tmp_path):
    """Built under keras.config.set_image_data_format("channels_first") (as PyTorch users often do): the
    BatchNormalization, Activation and Add layers, which have no data_format of their own, are read
    channels first like the convolutions (their statistics used to count the width as channels), the
    probe is drawn as an RGB image, and the class views come out channels last."""
    saved = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        inp = keras.Input((3, 10, 12))
        conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inp)
        bn = keras.layers.BatchNormalization(axis=1, name="bn")(conv)
        act = keras.layers.Activation("relu", name="act")(bn)
        add = keras.layers.Add(name="add")([act, conv])
        pooled = keras.layers.GlobalAveragePooling2D(name="gap")(add)
        model = keras.Model(inp, keras.layers.Dense(2, activation="softmax", name="out")(pooled))
    finally:
        keras.config.set_image_data_format(saved)
    # TensorFlow on a CPU without oneDNN runs a channels-first convolution only compiled with XLA, and
    # so does this model's training there: LayerView's probe pass follows.
    xla = keras.backend.backend() == "tensorflow" and not eager_channels_first_convolution()
    model.compile("sgd", "sparse_categorical_crossentropy", jit_compile=True if xla else "auto")
    x = np.random.default_rng(0).random((8, 3, 10, 12)).astype("float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, np.zeros(8, int), epochs=1, verbose=0,
                  callbacks=[LayerView(str(tmp_path / "cf"), probe=(x[:4], np.array([0, 1, 0, 1])), budget=None)])
    series, run = only_run(tmp_path / "cf")
    by_path = _stats_by_path(series, run, 1)
    reference = keras.Model(model.input, [model.get_layer(n).output for n in ("conv", "bn", "act", "add")])
    if xla:
        import tensorflow as tf

        reference = tf.function(reference, jit_compile=True)
    probe_out = reference(x[:4])
    for name, out in zip(("conv", "bn", "act", "add"), probe_out):
        assert by_path[name]["mean"].shape == (4,), name
        np.testing.assert_allclose(by_path[name]["mean"], keras.ops.convert_to_numpy(out).mean(axis=(0, 2, 3)),
                                   rtol=1e-4, atol=1e-5, err_msg=name)
    probes = json_of(run_blob(series, run, metadata.KIND_PROBES)[0][0])
    assert probes["drawn_input"] is not None and probes["probes"][0]["image"]["shape"] == [10, 12, 3]
    if xla:  # the class views' gradients run eagerly there, and fail with a warning
        assert any("UnimplementedError" in str(w.message) for w in caught), [str(w.message) for w in caught]
        # A fit long enough to compile the pass before its first run: the plain graph fails when it
        # runs, and XLA takes over from it.
        model.fit(x, np.zeros(8, int), epochs=4, verbose=0,
                  callbacks=[LayerView(str(tmp_path / "cf4"), probe=(x[:4], np.array([0, 1, 0, 1])), budget=None,
                                       class_views=False)])
        series, run = only_run(tmp_path / "cf4")
        for step in range(5):
            assert _stats_by_path(series, run, step)["conv"]["mean"].shape == (4,), step
        return
    maxim = json_of(run_blob(series, run, metadata.KIND_MAXIMIZATION)[1][0])
    assert maxim["shape"] == [10, 12, 3]
    attribution = json_of(run_blob(series, run, metadata.KIND_ATTRIBUTION)[1][0])
    assert attribution["shape"] == [10, 12] and attribution["method"] == "gradcam"


class _NoCall(keras.Model):
    """A model trained through its own train_step only, as a GAN is: it defines no call()."""

    def __init__(self, part):
        super().__init__()
        self.part = part
        self.built = True  # its parts are built; Keras cannot build a model without call() itself

    def train_step(self, data):
        return {}


def test_model_argument_watches_a_part_of_the_trained_model(tmp_path):
    """model= watches a part of what fit trains (an autoencoder's encoder here; a GAN's generator in the
    README): its layers at every step, with the weights training gave them at each step (on JAX, Keras
    keeps them in its training state, which reading the trained model writes back). A model without
    call() stops fit at its start with a message that points to model=."""
    enc = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="tanh", name="code")], name="encoder")
    dec = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, name="recon")], name="decoder")
    auto = keras.Model(enc.inputs, dec(enc(enc.inputs[0])))
    auto.compile(keras.optimizers.SGD(0.5), "mse")
    x = np.random.default_rng(0).random((32, 6)).astype("float32")
    means = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            means.append(keras.ops.convert_to_numpy(enc(x[:4])).mean(axis=0))

    auto.fit(x, x, epochs=2, batch_size=8, verbose=0,
             callbacks=[LayerView(str(tmp_path / "enc"), probe=x[:4], model=enc, budget=None), Spy()])
    series, run = only_run(tmp_path / "enc")
    assert {k[1] for k in layer_series(series, run) if k[0] == ACT} == {"code"}
    for step in (1, 2):
        np.testing.assert_allclose(_stats_by_path(series, run, step)["code"]["mean"], means[step - 1],
                                   rtol=1e-5, atol=1e-6)
    assert not np.allclose(means[0], means[1])
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    assert config["model"]["name"] == "encoder"

    with pytest.raises(ValueError, match=r"the model '.*' cannot be called on the probe: it defines no call\(\).*"
                                         r"model=gan\.generator"):
        no_call = _NoCall(enc)
        no_call.compile("sgd")
        no_call.fit(x, x, epochs=1, verbose=0, callbacks=[LayerView(str(tmp_path / "nocall"), probe=x[:4])])
    with pytest.raises(TypeError, match=r"model must be a keras.Model to watch .*got 'encoder'"):
        LayerView(str(tmp_path / "bad"), probe=x[:4], model="encoder")


class RepeatedBlock(keras.Model):
    """Applies one Dense 12 times, as a weight-tied block."""

    def __init__(self):
        super().__init__()
        self.step = keras.layers.Dense(4, activation="tanh", name="step")
        self.head = keras.layers.Dense(2, activation="softmax", name="head")

    def call(self, x):
        for _ in range(12):
            x = self.step(x)
        return self.head(x)


def test_siamese_branches_each_get_their_series_and_a_looped_layer_keeps_its_first_calls(tmp_path):
    """A nested encoder applied to two inputs logs each branch's layers ('encoder/conv' and
    'encoder/conv@2', told apart by their statistics); a layer applied 12 times keeps 8 calls
    (capture.MAX_CALLS) and counts 12."""
    from tb_layerview import capture

    enc_in = keras.Input((6, 6, 1))
    enc = keras.Model(enc_in, keras.layers.GlobalAveragePooling2D(name="gap")(
        keras.layers.Conv2D(2, 3, name="conv")(enc_in)), name="encoder")
    left, right = keras.Input((6, 6, 1), name="left"), keras.Input((6, 6, 1), name="right")
    model = keras.Model([left, right], keras.layers.Dense(1, activation="sigmoid", name="same")(
        keras.layers.Subtract(name="diff")([enc(left), enc(right)])))
    model.compile("sgd", "binary_crossentropy")
    xl, xr = np.ones((8, 6, 6, 1), np.float32), np.full((8, 6, 6, 1), -2.0, np.float32)
    model.fit([xl, xr], np.zeros((8, 1)), epochs=1, verbose=0,
              callbacks=[LayerView(str(tmp_path / "siamese"), probe=[xl[:2], xr[:2]], budget=None)])
    series, run = only_run(tmp_path / "siamese")
    assert {k[1] for k in layer_series(series, run) if k[0] == ACT} == {
        "encoder/conv", "encoder/conv@2", "encoder/gap", "encoder/gap@2", "diff", "same"}
    meta = {s["meta"].layer: s["meta"] for s in series[run].values() if s["meta"].kind == ACT}
    assert meta["encoder/conv@2"].parent == "encoder"
    assert meta["encoder/conv@2"].layer_index == meta["encoder/conv"].layer_index
    by_path = _stats_by_path(series, run, 1)
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in enc.get_layer("conv").weights)
    np.testing.assert_allclose(by_path["encoder/gap"]["mean"], kernel.sum((0, 1, 2)) + bias, rtol=1e-5)
    np.testing.assert_allclose(by_path["encoder/gap@2"]["mean"], -2 * kernel.sum((0, 1, 2)) + bias, rtol=1e-5)
    # Each call names the inputs it depends on, and both image inputs are drawn: the panel shows the
    # right image beside encoder/conv@2 (it used to show the left one beside every layer).
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    reach = {o["path"]: o["inputs"] for l in config["layers"] for o in l["outputs"]}
    assert reach == {"encoder/conv": ["left"], "encoder/conv@2": ["right"], "encoder/gap": ["left"],
                     "encoder/gap@2": ["right"], "diff": ["left", "right"], "same": ["left", "right"]}
    probe_blobs = run_blob(series, run, metadata.KIND_PROBES)[0]
    probes = json_of(probe_blobs[0])
    assert probes["drawn_inputs"] == ["left", "right"] and probes["drawn_input"] == "left"
    assert len(probe_blobs) == 1 + 2 * 2
    assert [p["images"]["right"]["stats"]["min"] for p in probes["probes"]] == [-2.0, -2.0]
    assert [p["images"]["left"]["stats"]["min"] for p in probes["probes"]] == [1.0, 1.0]
    assert probes["probes"][0]["image"] == probes["probes"][0]["images"]["left"]

    looped = RepeatedBlock()
    looped.compile("sgd", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((8, 4)).astype("float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        looped.fit(x, np.zeros(8, int), epochs=1, verbose=0,
                   callbacks=[LayerView(str(tmp_path / "looped"), probe=x[:2], budget=None)])
    assert not [w for w in caught if issubclass(w.category, LayerViewWarning)], [str(w.message) for w in caught]
    series, run = only_run(tmp_path / "looped")
    assert list(_stats_by_path(series, run, 1)) == (
        ["step"] + ["step@%d" % i for i in range(2, capture.MAX_CALLS + 1)] + ["head"])
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    assert next(l for l in config["layers"] if l["path"] == "step")["calls"] == 12


class TwoHeadsModel(keras.Model):
    """A subclassed model returning a dict whose keys are not in alphabetical order."""

    def __init__(self):
        super().__init__()
        self.body = keras.layers.Dense(4, activation="relu", name="body")
        self.zeta = keras.layers.Dense(3, activation="softmax", name="zeta")
        self.alpha = keras.layers.Dense(1, name="alpha")

    def call(self, x):
        h = self.body(x)
        return {"zeta": self.zeta(h), "alpha": self.alpha(h)}


def test_a_model_returning_a_dict_keeps_its_order_in_predictions_and_statistics(tmp_path):
    """Predictions list a dict output's keys in the model's order, and statistics the layers in call
    order, at every step, compiled (tf.function and jax.jit sort dict keys) or eager; 8 epochs pay back
    compiling on TensorFlow, JAX compiles from the start."""
    from tb_layerview import stats

    model = TwoHeadsModel()
    x = np.random.default_rng(0).random((16, 5)).astype("float32")
    model.compile("sgd", {"zeta": "sparse_categorical_crossentropy", "alpha": "mse"})
    cb = LayerView(str(tmp_path / "heads"), probe=(x[:3], np.array([0, 1, 2])), budget=None)
    model.fit(x, {"zeta": np.zeros(16, int), "alpha": np.zeros((16, 1))}, epochs=8, batch_size=16, verbose=0,
              callbacks=[cb])
    series, run = only_run(tmp_path / "heads")
    preds = run_blob(series, run, metadata.KIND_PREDICTIONS)
    assert sorted(preds) == list(range(9))
    for step, blobs in preds.items():
        assert list(json_of(blobs[0])["probes"][0]["outputs"]) == ["zeta", "alpha"], step
    for step, blobs in run_blob(series, run, metadata.KIND_STATS).items():
        assert [l["path"] for l in stats.decode(*blobs)[0]["layers"]] == ["body", "zeta", "alpha"], step


def test_outputs_compiled_with_a_regression_loss_are_values_not_classes(tmp_path):
    """A box-regression head (mse) before a classifier: its predictions are values, the classifier's
    are classes, class_names are checked against the classifier only, and the class views explain the
    classifier, the first output that gives class scores (they said the first output was a regression
    one, and explained nothing)."""
    inp = keras.Input((6,), name="features")
    h = keras.layers.Dense(8, activation="relu", name="body")(inp)
    model = keras.Model(inp, {"box": keras.layers.Dense(4, name="box")(h),
                              "cls": keras.layers.Dense(3, activation="softmax", name="cls")(h)})
    x = np.random.default_rng(0).random((16, 6)).astype("float32")
    model.compile("sgd", {"box": keras.losses.MeanSquaredError(), "cls": "sparse_categorical_crossentropy"})
    with warnings.catch_warnings(record=True) as caught:  # class_names fit the classifier, not the 4 box values
        warnings.simplefilter("always")
        model.fit(x, {"box": np.zeros((16, 4)), "cls": np.zeros(16, int)}, epochs=1, verbose=0,
                  callbacks=[LayerView(str(tmp_path / "box"), probe=(x[:2], np.array([0, 2])), budget=None,
                                       class_names=["a", "b", "c"])])
    series, run = only_run(tmp_path / "box")
    assert not [w for w in caught if issubclass(w.category, LayerViewWarning)], [str(w.message) for w in caught]
    outputs = json_of(run_blob(series, run, metadata.KIND_PREDICTIONS)[1][0])["probes"][0]["outputs"]
    assert outputs["box"]["type"] == "values" and outputs["box"]["shape"] == [4] and len(outputs["box"]["values"]) == 4
    assert outputs["cls"]["type"] == "classes" and outputs["cls"]["kind"] == "probabilities"
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    assert config["class_views"][metadata.KIND_ATTRIBUTION]["available"], config["class_views"]
    attribution = json_of(run_blob(series, run, metadata.KIND_ATTRIBUTION)[1][0])
    predicted = [t["class"] for t in attribution["targets"] if t["which"] == "predicted"]
    assert predicted == [outputs_of["cls"]["predicted"] for outputs_of in (
        p["outputs"] for p in json_of(run_blob(series, run, metadata.KIND_PREDICTIONS)[1][0])["probes"])]
    assert [t["class"] for t in attribution["targets"] if t["which"] == "true"] == [0, 2]
    maximization = run_blob(series, run, metadata.KIND_MAXIMIZATION)
    maxim = json_of(maximization[min(maximization)][0])
    # Log-probabilities of the classifier's three classes (the box head gives four unbounded values).
    assert maxim["classes"] == [0, 1, 2] and len(maxim["scores"]) == 3 and max(maxim["scores"]) <= 0, maxim


def test_a_functional_models_dict_outputs_keep_the_order_it_was_built_in_on_every_backend(tmp_path):
    """keras.Model(i, {"value": ..., "label": ...}): PyTorch's backend hands the dict back sorted,
    TensorFlow's and JAX's as built. Predictions list the outputs as built on every backend, and the
    class views explain "label", the first output giving class scores, wherever it sorts (on
    TensorFlow they explained nothing, "value" being a regression head; on PyTorch the predictions
    came sorted)."""
    inp = keras.Input((5,))
    model = keras.Model(inp, {"value": keras.layers.Dense(1, name="value")(inp),
                              "label": keras.layers.Dense(3, activation="softmax", name="label")(inp)})
    model.compile("sgd", {"value": "mse", "label": "sparse_categorical_crossentropy"})
    x = np.random.default_rng(1).random((16, 5)).astype("float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, {"value": np.zeros((16, 1)), "label": np.arange(16) % 3}, epochs=2, batch_size=8, verbose=0,
                  callbacks=[LayerView(str(tmp_path / "order"), budget=None,
                                       probe=(x[:3], {"value": np.zeros((3, 1)), "label": np.array([2, 0, 1])}))])
    assert not [w for w in caught if issubclass(w.category, LayerViewWarning)], [str(w.message) for w in caught]
    series, run = only_run(tmp_path / "order")
    preds = run_blob(series, run, metadata.KIND_PREDICTIONS)
    assert sorted(preds) == [0, 1, 2]
    for step, blobs in preds.items():
        probes = json_of(blobs[0])["probes"]
        assert [list(p["outputs"]) for p in probes] == [["value", "label"]] * 3, step
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    assert config["class_views"][metadata.KIND_ATTRIBUTION]["available"], config["class_views"]
    assert config["class_views"][metadata.KIND_ATTRIBUTION]["output"] == "label"
    assert config["class_views"][metadata.KIND_MAXIMIZATION]["output"] == "label"
    assert config["class_views"][metadata.KIND_BACKQUERY] == {
        "available": False, "reason": "back-query needs a single-output model; this one has 2 outputs ('value', 'label')"}
    for step, blobs in run_blob(series, run, metadata.KIND_ATTRIBUTION).items():
        targets = json_of(blobs[0])["targets"]
        assert json_of(blobs[0])["output"] == "label"
        predicted = [p["outputs"]["label"]["predicted"] for p in json_of(preds[step][0])["probes"]]
        assert [t["class"] for t in targets if t["which"] == "predicted"] == predicted, step
        assert [t["class"] for t in targets if t["which"] == "true"] == [2, 0, 1], step


def test_the_class_output_is_the_first_giving_class_scores_and_says_why_when_none_does():
    from tb_layerview import classlog

    box, cls, seg = np.zeros((2, 4)), np.zeros((2, 3)), np.zeros((2, 8, 8, 3))
    assert classlog.class_output({"box": box, "cls": cls}, {"box": "mse"}) == ("cls", None)
    assert classlog.class_output({"seg": seg, "cls": cls}) == ("cls", None)
    assert classlog.class_output({"cls": cls, "box": box}, {"box": "mse"}) == ("cls", None)
    assert classlog.class_output({"box": box}, {"box": "mse"}) == (
        None, "the model's output 'box' is trained with a regression loss (mse), not as class scores")
    assert classlog.class_output({"seg": seg}) == (
        None, "the model's output of shape (8, 8, 3) is not a vector of class scores")
    assert classlog.class_output({"box": box, "seg": seg}, {"box": "huber_loss"}) == (
        None, "no output of the model gives class scores: output 'box' is trained with a regression loss"
              " (huber_loss); output 'seg' of shape (8, 8, 3) is not a vector of class scores")
    assert classlog.classes_of({"box": box, "cls": cls}, 2, {"box": "mse"}) == ([0, 1], None)


@pytest.mark.parametrize("loss, names, activations, expected", [
    ("mse", ["out"], None, {"out": "mse"}),
    ("mse", ["out"], {"out": "softmax"}, {}),  # a softmax classifier trained with mse is a classifier
    ("mean_squared_error", ["out"], {"out": "sigmoid"}, {}),
    ("mse", ["out"], {"out": "relu"}, {"out": "mse"}),
    ("sparse_categorical_crossentropy", ["out"], None, {}),
    (["categorical_crossentropy", keras.losses.Huber()], ["cls", "box"], None, {"box": "huber_loss"}),
    ({"box": keras.losses.mean_absolute_error, "cls": keras.losses.BinaryCrossentropy()}, ["cls", "box"], None,
     {"box": "mean_absolute_error"}),
    ({"box": "LogCosh", "cls": "CategoricalCrossentropy"}, ["cls", "box"], None, {"box": "log_cosh"}),
    ("MeanSquaredError", ["out"], None, {"out": "mean_squared_error"}),
    ("MSE", ["out"], {"other": "softmax"}, {"out": "mse"}),
    (None, ["out"], None, {}),
])
def test_regression_outputs_are_told_by_their_compiled_loss_and_activation(loss, names, activations, expected):
    from tb_layerview import probe

    assert probe.regression_outputs(loss, names, activations) == expected


@pytest.mark.parametrize("label, expected", [
    (3, 3), (np.int64(0), 0), (2.0, 2), (0.5, None), (True, 1),
    ([0, 0, 1], 2), ([0.1, 0.7, 0.2], 1), (np.array([[1.0]]), None),
    ([1, 0, 1], None),            # several tags: no single class
    ([0, 0, 0], None),            # no tag
    ([0.3, 2.5], None),           # regression targets
    (np.zeros((4, 4), int), None),  # a segmentation mask
])
def test_true_class_only_where_a_label_names_one_class(label, expected):
    from tb_layerview import probe

    assert probe.true_class(label) == expected


@pytest.mark.parametrize("loss, names, widths, activations, expected", [
    ("binary_crossentropy", ["tags"], {"tags": 5}, {"tags": "sigmoid"}, {"tags": 0.5}),
    ("categorical_crossentropy", ["tags"], {"tags": 5}, {"tags": "sigmoid"}, {"tags": 0.5}),
    (keras.losses.BinaryCrossentropy(from_logits=True), ["tags"], {"tags": 5}, {"tags": "linear"}, {"tags": 0.0}),
    (keras.losses.BinaryFocalCrossentropy(), ["tags"], {"tags": 5}, {"tags": None}, {"tags": 0.5}),
    ("binary_crossentropy", ["out"], {"out": 2}, {"out": "softmax"}, {}),  # one of two classes
    ("binary_crossentropy", ["out"], {"out": 1}, {"out": "sigmoid"}, {}),  # a yes/no output
    ("sparse_categorical_crossentropy", ["out"], {"out": 10}, {"out": "softmax"}, {}),
    (["mse", "binary_crossentropy"], ["box", "tags"], {"tags": 3}, {}, {"tags": 0.5}),
    ({"tags": "bce"}, ["cls", "tags"], {"cls": 4, "tags": 3}, {}, {"tags": 0.5}),
    (None, ["tags"], {"tags": 5}, {"tags": "sigmoid"}, {"tags": 0.5}),
])
def test_multilabel_outputs_are_told_by_their_activation_and_loss(loss, names, widths, activations, expected):
    from tb_layerview import probe

    assert probe.multilabel_outputs(loss, names, widths, activations) == expected


def test_multilabel_and_segmentation_labels_are_not_read_as_one_class(tmp_path):
    """A sigmoid tagger trained on multi-hot labels predicts a set of classes and its labels are sets, not
    their first tag; a per-pixel label (a segmentation mask) names no class at all, and counts in its
    output's share of pixels right."""
    x = np.random.default_rng(0).random((16, 6)).astype("float32")
    tags = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0], [1, 1, 1]] * 4, "float32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="sigmoid", name="tags")])
    model.compile("sgd", "binary_crossentropy")
    model.fit(x, tags, epochs=1, verbose=0, callbacks=[
        LayerView(str(tmp_path / "tags"), probe=(x[:4], tags[:4]), class_names=["a", "b", "c"], budget=None)])
    series, run = only_run(tmp_path / "tags")
    probes = json_of(run_blob(series, run, metadata.KIND_PREDICTIONS)[1][0])["probes"]
    scores = model.predict(x[:4], verbose=0)
    for p, row, label in zip(probes, scores, tags[:4]):
        rec = p["outputs"]["output"]
        assert rec["kind"] == "multilabel" and rec["threshold"] == 0.5 and "predicted" not in rec
        assert rec["predicted_set"] == [int(i) for i in np.flatnonzero(row >= 0.5)]
        assert rec["predicted_names"] == [["a", "b", "c"][i] for i in rec["predicted_set"]]
        assert p["label"]["classes"] == [int(i) for i in np.flatnonzero(label)]
    assert "class" not in probes[0]["label"] and probes[0]["label"]["names"] == ["a", "c"]
    assert probes[2]["label"]["class"] == 1  # one tag: also that class

    inp = keras.Input((8, 8, 3))
    seg = keras.Model(inp, keras.layers.Conv2D(4, 1, activation="softmax", name="seg")(inp))
    # one-hot masks: Keras' sparse cross-entropy of a 3-axis output fails its backward pass on PyTorch
    # ("grad_input must be contiguous"), with or without LayerView
    seg.compile("sgd", "categorical_crossentropy")
    images = np.random.default_rng(1).random((8, 8, 8, 3)).astype("float32")
    masks = np.eye(4, dtype="float32")[np.random.default_rng(2).integers(0, 4, (8, 8, 8))]
    seg.fit(images, masks, epochs=1, verbose=0,
            callbacks=[LayerView(str(tmp_path / "seg"), probe=(images[:2], masks[:2]), budget=None)])
    series, run = only_run(tmp_path / "seg")
    predicted = keras.ops.convert_to_numpy(seg(images[:2])).argmax(axis=-1)
    for p, mask, want in zip(json_of(run_blob(series, run, metadata.KIND_PREDICTIONS)[1][0])["probes"], masks,
                             predicted):
        # no class, but what the mask holds
        assert p["label"] == {"value": None, "shape": [8, 8, 4], "values": mask.ravel()[:64].tolist()}
        # the map of classes the pixels take, and the share of pixels the mask says are right
        rec = p["outputs"]["output"]
        assert rec["type"] == "positions" and rec["shape"] == [8, 8] and rec["classes"] == 4, rec
        assert sum(share for _, share in rec["top"]) == pytest.approx(1.0)
        assert rec["accuracy"] == pytest.approx(np.mean(want == mask.argmax(axis=-1)), abs=2 / 64)


class _Batches(keras.utils.PyDataset):
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return self.x[i * 16:(i + 1) * 16], self.y[i * 16:(i + 1) * 16]


def test_a_data_set_as_probe_gives_the_first_samples_of_its_first_batch(tmp_path):
    """probe=val_ds, as fit takes data: the first 8 samples of the first batch of a PyDataset or a
    tf.data.Dataset of (x, y) or (x, y, sample_weight), labels included, and an (x, y, sample_weight)
    tuple of arrays; a generator is refused, since a batch taken from it would be taken from training too."""
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax", name="out")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((32, 5)).astype("float32")
    y = np.arange(32) % 3
    sets = {"pydataset": _Batches(x, y),
            "tfdata": tf.data.Dataset.from_tensor_slices((x, y, np.ones(32, "float32"))).batch(16),
            # arrays as fit's validation_data takes them, sample weights included
            "arrays_with_weights": (x[:8], y[:8], np.ones(8, "float32"))}
    try:  # the suite installs every backend; a DataLoader yields PyTorch tensors whatever Keras runs on
        import torch.utils.data as torch_data

        sets["dataloader"] = torch_data.DataLoader(list(zip(x, y)), batch_size=16)
    except ImportError:
        pass
    for name, data in sets.items():
        model.fit(_Batches(x, y), epochs=1, verbose=0,
                  callbacks=[LayerView(str(tmp_path / name), probe=data, budget=None)])
        series, run = only_run(tmp_path / name)
        probes = json_of(run_blob(series, run, metadata.KIND_PROBES)[0][0])
        assert probes["count"] == 8, name
        assert [p["label"]["class"] for p in probes["probes"]] == y[:8].tolist(), name
        values = next(iter(probes["probes"][3]["inputs"].values()))["values"]
        np.testing.assert_allclose(values, x[3], rtol=1e-6)
    with pytest.raises(TypeError, match=r"probe is a one-shot iterator \(generator\)"):
        LayerView(str(tmp_path / "gen"), probe=(b for b in [x]))


def test_dict_probe_for_named_inputs(tmp_path):
    """A dict probe is matched to the model's inputs by name."""
    a, b = keras.Input((2,), name="left"), keras.Input((3,), name="right")
    model = keras.Model({"left": a, "right": b},
                        keras.layers.Dense(1, name="out")(keras.layers.Concatenate(name="cat")([a, b])))
    probe = {"right": np.ones((2, 3), np.float32), "left": np.zeros((2, 2), np.float32)}
    model.compile("sgd", "mse")
    model.fit({"left": np.zeros((8, 2)), "right": np.ones((8, 3))}, np.zeros((8, 1)), epochs=1,
              verbose=0, callbacks=[LayerView(str(tmp_path / "dict"), probe=probe, budget=None)])
    series, run = only_run(tmp_path / "dict")
    assert (ACT, "cat") in layer_series(series, run)


class TwoDense(keras.Model):
    def __init__(self):
        super().__init__(name="two_dense")
        self.d1 = keras.layers.Dense(4, activation="relu", name="d1")
        self.d2 = keras.layers.Dense(2, name="d2")

    def call(self, x):
        return self.d2(self.d1(x))


class AttentionBlock(keras.layers.Layer):
    """A layer of the user's own that holds layers, in attributes and a list, tracked in another
    order than it calls them."""

    def __init__(self, dim, **kwargs):
        super().__init__(**kwargs)
        self.attention = keras.layers.MultiHeadAttention(2, dim // 2, name="attention")
        self.ffn = [keras.layers.Dense(2 * dim, activation="relu", name="ffn_in"),
                    keras.layers.Dense(dim, name="ffn_out")]
        self.norm = keras.layers.LayerNormalization(name="norm")

    def call(self, x):
        h = self.norm(x + self.attention(x, x))
        for layer in self.ffn:
            h = layer(h)
        return h + x


def test_a_layer_of_your_own_that_holds_layers_logs_each_of_them_under_its_path(tmp_path):
    """A custom layer holding layers (a transformer block) is entered like a nested model: each
    layer inside gets its series under the block's path, with its filters, its statistics and the
    inputs it sees, and the block keeps its own output (a residual sum, not its last layer's).
    Keras' own MultiHeadAttention is not entered. Before, the block was one opaque layer."""
    from tb_layerview import stats

    tokens, extra = keras.Input((6,), dtype="int32", name="tokens"), keras.Input((3,), name="extra")
    h = AttentionBlock(8, name="block")(keras.layers.Embedding(20, 8, name="embed")(tokens))
    h = keras.layers.Concatenate(name="cat")([keras.layers.GlobalAveragePooling1D(name="pool")(h), extra])
    model = keras.Model([tokens, extra], keras.layers.Dense(3, activation="softmax", name="out")(h))
    rng = np.random.default_rng(5)
    x = [rng.integers(0, 20, (16, 6)), rng.random((16, 3), dtype=np.float32)]
    fit(model, x, np.arange(16) % 3, tmp_path / "block", loss="sparse_categorical_crossentropy",
        probe=[x[0][:4], x[1][:4]])
    series, run = only_run(tmp_path / "block")
    got = layer_series(series, run)
    inside = ["block/attention", "block/ffn_in", "block/ffn_out", "block/norm"]
    for path in ["block"] + inside:
        assert sorted(got[(ACT, path)]) == [0, 1, 2], path
    assert sorted(got[(FIL, "block/ffn_in")]) == [0, 1, 2] and (FIL, "block") not in got
    assert not any(p.startswith("block/attention/") for _, p in got)
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    by_path = {l["path"]: l for l in config["layers"]}
    assert all(by_path[p]["parent"] == "block" and by_path[p]["calls"] == 1 for p in inside)
    assert by_path["block/ffn_in"]["name"] == "ffn_in" and by_path["block"]["nested_model"] is False
    assert by_path["block/ffn_in"]["outputs"][0]["inputs"] == ["tokens"]
    header, data = stats.decode(*run_blob(series, run, metadata.KIND_STATS)[2])
    block = model.get_layer("block")
    e = model.get_layer("embed")(x[0][:4])
    ffn_in = keras.ops.convert_to_numpy(block.ffn[0](block.norm(e + block.attention(e, e))))
    np.testing.assert_allclose(stats.layer_slice(header, data, "block/ffn_in")["mean"],
                               ffn_in.reshape(-1, 16).mean(axis=0), rtol=1e-4, atol=1e-5)
    whole = keras.ops.convert_to_numpy(block(e))
    np.testing.assert_allclose(stats.layer_slice(header, data, "block")["mean"],
                               whole.reshape(-1, 8).mean(axis=0), rtol=1e-4, atol=1e-5)


def test_subclassed_model_sublayers_are_captured_and_restored(tmp_path):
    """Sublayers of a subclassed model are captured in one pass; their call is restored."""
    model = TwoDense()
    x = np.ones((16, 3), np.float32)
    fit(model, x, np.zeros((16, 2)), tmp_path / "sub", probe=x[:2])
    series, run = only_run(tmp_path / "sub")
    assert {k for k in layer_series(series, run) if k[0] == ACT} == {(ACT, "d1"), (ACT, "d2")}
    assert "call" not in model.d1.__dict__ and "call" not in model.d2.__dict__


def test_batchnorm_and_dropout_run_in_inference_mode(tmp_path):
    """Dropout is the identity on the probe and BatchNormalization uses moving statistics."""
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(6, name="dense"),
                              keras.layers.Dropout(0.9, name="drop"),
                              keras.layers.BatchNormalization(name="bn")])
    x = np.random.default_rng(2).random((16, 6), dtype=np.float32)
    fit(model, x, x, tmp_path / "bn", epochs=1, probe=x[:2])
    series, run = only_run(tmp_path / "bn")
    got = layer_series(series, run)
    dense = json_of(got[(ACT, "dense")][1][0])["probes"]
    drop = json_of(got[(ACT, "drop")][1][0])["probes"]
    assert dense == drop


def test_embedding_lstm_gru_conv1d(tmp_path):
    """Sequences: Embedding and LSTM outputs are heat maps, the GRU's last state a vector."""
    model = keras.Sequential([
        keras.Input((10,), dtype="int32"),
        keras.layers.Embedding(20, 8, name="embed"),
        keras.layers.Conv1D(4, 3, name="conv1d"),
        keras.layers.LSTM(6, return_sequences=True, name="lstm"),
        keras.layers.GRU(5, name="gru"),
        keras.layers.Dense(1, name="out"),
    ])
    x = np.random.default_rng(3).integers(0, 20, (16, 10)).astype("int32")
    fit(model, x, np.zeros((16, 1)), tmp_path / "seq", epochs=1, probe=x[:2])
    series, run = only_run(tmp_path / "seq")
    got = layer_series(series, run)
    layouts = {layer: json_of(steps[1][0])["layout"] for (kind, layer), steps in got.items() if kind == ACT}
    assert layouts == {"embed": "heat", "conv1d": "heat", "lstm": "heat", "gru": "vector", "out": "vector"}
    assert json_of(got[(FIL, "conv1d")][1][0])["kernel_kind"] == "conv1d"


def test_conv3d_volume_and_transposed_depthwise_separable_filters(tmp_path):
    """3-D convolutions draw the middle slice; other conv kinds log their filters."""
    inp = keras.Input((4, 6, 6, 1))
    v = keras.layers.Conv3D(2, 3, padding="same", name="conv3d")(inp)
    model3 = keras.Model(inp, keras.layers.Flatten(name="flat")(v))
    x3 = np.ones((8, 4, 6, 6, 1), np.float32)
    fit(model3, x3, np.zeros((8, 288)), tmp_path / "conv3d", epochs=1, probe=x3[:1])
    inp2 = keras.Input((8, 8, 3))
    h = keras.layers.DepthwiseConv2D(3, name="depthwise")(inp2)
    h = keras.layers.SeparableConv2D(4, 3, name="separable")(h)
    h = keras.layers.Conv2DTranspose(2, 3, name="transpose")(h)
    model2 = keras.Model(inp2, h)
    x2 = np.ones((8, 8, 8, 3), np.float32)
    fit(model2, x2, np.zeros((8, 6, 6, 2)), tmp_path / "convs", epochs=1, probe=x2[:1])
    series = read_series(str(tmp_path))
    got3 = layer_series(series, "conv3d")
    info = json_of(got3[(ACT, "conv3d")][1][0])
    assert info["layout"] == "volume" and info["slice"] == {"axis": 0, "index": 2}
    assert (FIL, "conv3d") in got3
    got2 = layer_series(series, "convs")
    assert {k for k in got2 if k[0] == FIL} == {(FIL, "depthwise"), (FIL, "separable"), (FIL, "transpose")}
    assert json_of(got2[(FIL, "transpose")][1][0])["channels"] == 2
    assert json_of(got2[(FIL, "depthwise")][1][0])["channels"] == 3


def test_mixed_float16_policy(tmp_path):
    """Under mixed_float16 the float16 outputs are drawn and statistics are finite."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="d"),
                                  keras.layers.Dense(1, dtype="float32", name="out")])
        x = np.ones((16, 4), np.float32)
        fit(model, x, np.zeros((16, 1)), tmp_path / "mixed", epochs=1, probe=x[:2])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    series, run = only_run(tmp_path / "mixed")
    info = json_of(layer_series(series, run)[(ACT, "d")][1][0])
    assert info["dtype"] == "float16"
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    assert config["model"]["dtype_policy"] == "mixed_float16"


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_a_quantized_model_logs_every_layer_at_every_step(tmp_path, mode):
    """A model quantized with ``model.quantize()``: Keras runs each quantized layer's
    ``quantized_call``, not its ``call``. Recording wrapped ``call`` only, so these layers were
    listed as never called, with no statistics and no images, and nothing said why."""
    import warnings

    from tb_layerview import stats

    inputs = keras.Input((6,))
    h = keras.layers.Dense(8, activation="relu", name="dense")(inputs)
    h = keras.layers.EinsumDense("ab,bc->ac", output_shape=5, name="einsum")(h)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(h))
    with warnings.catch_warnings():  # "Layer InputLayer does not have a `quantize` method"
        warnings.simplefilter("ignore")
        model.quantize(mode)
    x = np.random.default_rng(3).normal(size=(16, 6)).astype("float32")
    fit(model, x, np.arange(16) % 3, tmp_path / mode, loss="sparse_categorical_crossentropy", probe=x[:4])
    series, run = only_run(tmp_path / mode)
    got = layer_series(series, run)
    for path in ("dense", "einsum", "out"):
        assert sorted(got[(ACT, path)]) == [0, 1, 2], path
    assert sorted(got[(FIL, "dense")]) == [0, 1, 2]
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    assert {l["path"]: l["calls"] for l in config["layers"]} == {"dense": 1, "einsum": 1, "out": 1}
    header, data = stats.decode(*run_blob(series, run, metadata.KIND_STATS)[2])
    assert [l["path"] for l in header["layers"]] == ["dense", "einsum", "out"]
    want = keras.Model(inputs, model.get_layer("einsum").output)(x[:4], training=False)
    got_mean = stats.layer_slice(header, data, "einsum")["mean"]
    np.testing.assert_allclose(got_mean, keras.ops.convert_to_numpy(want).mean(axis=0), rtol=1e-4, atol=1e-5)


def test_layer_selection_by_name_and_regex(tmp_path):
    """layers= and exclude= accept names and regular expressions."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, name="enc_a"),
                              keras.layers.Dense(3, name="enc_b"), keras.layers.Dense(1, name="head")])
    x = np.ones((16, 3), np.float32)
    fit(model, x, np.zeros((16, 1)), tmp_path / "sel", epochs=1, probe=x[:1],
        layers=[r"enc_.*", "head"], exclude=["enc_b"], log_filters=False)
    series, run = only_run(tmp_path / "sel")
    assert set(layer_series(series, run)) == {(ACT, "enc_a"), (ACT, "head")}


def test_every_n_epochs_logs_step_zero_multiples_and_the_last_epoch(tmp_path):
    """every_n_epochs=2 over 5 epochs logs steps 0, 2, 4 and 5."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="d")])
    x = np.ones((16, 2), np.float32)
    fit(model, x, np.zeros((16, 1)), tmp_path / "every", epochs=5, probe=x[:1], every_n_epochs=2)
    series, run = only_run(tmp_path / "every")
    assert sorted(layer_series(series, run)[(ACT, "d")]) == [0, 2, 4, 5]


def test_training_stopped_early_logs_the_epoch_it_stopped_at(tmp_path):
    """every_n_epochs=2 over 10 epochs, stopped after the third by a callback listed after LayerView (as
    EarlyStopping usually is): steps 0, 2 and 3, the state training ended in; a fit that runs to its end
    logs no extra step."""

    class StopAfterThird(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                self.model.stop_training = True

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="d")])
    model.compile("sgd", "mse")
    x = np.ones((16, 2), np.float32)
    model.fit(x, np.zeros((16, 1)), epochs=10, verbose=0, callbacks=[
        LayerView(str(tmp_path / "stopped"), probe=x[:1], every_n_epochs=2, budget=None), StopAfterThird()])
    series, run = only_run(tmp_path / "stopped")
    assert sorted(layer_series(series, run)[(ACT, "d")]) == [0, 2, 3]
    assert sorted(run_blob(series, run, metadata.KIND_STATS)) == [0, 2, 3]


def test_resuming_with_initial_epoch_continues_the_step_count(tmp_path):
    """With initial_epoch=3 and epochs=5 the steps are 3 (before), 4 and 5."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="d")])
    x = np.ones((16, 2), np.float32)
    fit(model, x, np.zeros((16, 1)), tmp_path / "resume", epochs=5, probe=x[:1],
        fit_kwargs={"initial_epoch": 3})
    series, run = only_run(tmp_path / "resume")
    assert sorted(layer_series(series, run)[(ACT, "d")]) == [3, 4, 5]


def test_nan_activations_warn_count_and_training_goes_on(tmp_path):
    """NaN outputs are counted, drawn with alpha code 1, warned about; fit completes."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="d")])
    model.layers[0].set_weights([np.full((2, 2), np.nan, np.float32), np.zeros(2, np.float32)])
    x = np.ones((16, 2), np.float32)
    with pytest.warns(LayerViewWarning, match=r"layer 'd' produced 4 NaN/Inf"):
        fit(model, x, np.zeros((16, 2)), tmp_path / "nan", epochs=2, probe=x[:2])
    series, run = only_run(tmp_path / "nan")
    steps = layer_series(series, run)[(ACT, "d")]
    assert sorted(steps) == [0, 1, 2]
    assert json_of(steps[0][0])["probes"][0]["nan"] == [2]
    assert render.decode_png(steps[0][1])[..., 1].tolist() == [[1, 1]]


def test_a_failing_layer_warns_with_its_name_and_the_others_are_logged(tmp_path, monkeypatch):
    """A rendering error on one layer becomes a warning naming it; other layers still log."""
    from tb_layerview import summary

    real = summary.activations

    def flaky(name, *args, **kwargs):
        if name == "bad":
            raise RuntimeError("boom")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(summary, "activations", flaky)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="bad"),
                              keras.layers.Dense(1, name="good")])
    x = np.ones((16, 2), np.float32)
    with pytest.warns(LayerViewWarning, match=r"activations of layer 'bad' .*boom"):
        fit(model, x, np.zeros((16, 1)), tmp_path / "flaky", epochs=2, probe=x[:1])
    series, run = only_run(tmp_path / "flaky")
    got = layer_series(series, run)
    assert (ACT, "bad") not in got and sorted(got[(ACT, "good")]) == [0, 1, 2]


def test_probe_that_does_not_fit_the_model_is_a_clear_error_at_train_begin(tmp_path):
    """A wrong probe shape raises ValueError naming the expected and received shapes."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="d")])
    model.compile("sgd", "mse")
    cb = LayerView(str(tmp_path / "bad"), probe=np.ones((2, 7), np.float32))
    with pytest.raises(ValueError, match=r"probe does not fit the model .*\(None, 4\).*\(2, 7\)"):
        model.fit(np.ones((8, 4)), np.zeros((8, 1)), epochs=1, verbose=0, callbacks=[cb])


INTERRUPTED_SCRIPT = r"""
import sys, time, numpy as np, keras
from tb_layerview import LayerView, items
write = items.ChannelStats.write
def slow_write(self, step, ctx):  # a slow disk: each step's statistics take a second to reach it
    time.sleep(1.0)
    write(self, step, ctx)
items.ChannelStats.write = slow_write
class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt  # Ctrl-C, as the second epoch ends
m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu", name="h"),
                      keras.layers.Dense(2, activation="softmax", name="out")])
m.compile("sgd", "sparse_categorical_crossentropy")
x = np.random.default_rng(0).random((16, 6), dtype=np.float32)
m.fit(x, np.arange(16) % 2, epochs=5, verbose=0,
      callbacks=[LayerView(sys.argv[1], probe=x[:2], budget=None, class_views=False), Interrupt()])
"""


def test_a_fit_interrupted_by_ctrl_c_still_writes_the_epochs_it_logged(tmp_path):
    """Ctrl-C ends a script's fit without on_train_end, while the writer thread (slowed here to a second per
    step) still holds the logged epochs: the interpreter's exit writes them (steps 1 and 2 were lost)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", INTERRUPTED_SCRIPT, str(tmp_path / "ctrl_c")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "KeyboardInterrupt" in out.stderr, out.stderr[-2000:]
    series, run = only_run(tmp_path / "ctrl_c")
    assert sorted(run_blob(series, run, metadata.KIND_STATS)) == [0, 1, 2]
    assert sorted(run_blob(series, run, metadata.KIND_PLAN)) == [0, 1, 2]


def test_a_sparse_input_model_takes_its_probe_sparse_from_scipy_tensorflow_or_its_data_set(tmp_path):
    """A bag-of-words model with a sparse input: a probe given as a scipy.sparse matrix, a
    tf.sparse.SparseTensor or the training data set of sparse batches is made dense (it was refused as
    "an object array holding SparseTensor"), and every layer is logged from the same values."""
    import scipy.sparse
    from tb_layerview import stats

    bags = (np.random.default_rng(0).random((32, 50)) > 0.85).astype("float32")
    y = np.arange(32) % 2
    sparse_input = keras.backend.backend() != "torch"  # Keras on PyTorch has none: that model takes them dense
    bag = keras.Input((50,), sparse=sparse_input, name="bag")
    model = keras.Model(bag, keras.layers.Dense(2, activation="softmax", name="out")(
        keras.layers.Dense(8, activation="relu", name="hidden")(bag)))
    model.compile("sgd", "sparse_categorical_crossentropy")
    data = tf.data.Dataset.from_tensor_slices((tf.sparse.from_dense(bags), y)).batch(4)
    probes = {"scipy": (scipy.sparse.csr_matrix(bags[:4]), y[:4]),
              "tensorflow": (tf.sparse.from_dense(bags[:4]), y[:4]), "dataset": data}
    got, start = {}, model.get_weights()
    for name, probe in probes.items():
        model.set_weights(start)  # step 0 of each run sees the same weights
        with warnings.catch_warnings():
            warnings.simplefilter("error", LayerViewWarning)
            model.fit(data if sparse_input else bags, None if sparse_input else y, batch_size=None if sparse_input
                      else 4, epochs=1, verbose=0,
                      callbacks=[LayerView(str(tmp_path / name), probe=probe, budget=None, class_views=False)])
        series, run = only_run(tmp_path / name)
        header, values = stats.decode(*run_blob(series, run, metadata.KIND_STATS)[0])
        assert [l["path"] for l in header["layers"]] == ["hidden", "out"]
        got[name] = values
    assert np.array_equal(got["scipy"], got["tensorflow"]) and np.array_equal(got["scipy"], got["dataset"])


def test_attention_scores_are_one_queries_by_keys_map_per_head(tmp_path):
    """MultiHeadAttention(return_attention_scores=True) returns (batch, heads, queries, keys) beside its
    output: its statistics have one channel per head, and its images one 12 x 12 map per head (they were
    12 channels, one per key, each a heads x queries picture). The values are the layer's own."""
    from tb_layerview import stats

    seq = keras.Input((12, 16), name="seq")
    out, scores = keras.layers.MultiHeadAttention(4, 8, name="mha")(seq, seq, return_attention_scores=True)
    model = keras.Model(seq, keras.layers.Dense(3, activation="softmax", name="out")(
        keras.layers.GlobalAveragePooling1D(name="gap")(out)))
    x = np.random.default_rng(0).random((8, 12, 16)).astype("float32")
    fit(model, x, np.arange(8) % 3, tmp_path / "mha", probe=x[:2], epochs=1,
        loss="sparse_categorical_crossentropy", budget=None, class_views=False)
    series, run = only_run(tmp_path / "mha")
    expected = keras.ops.convert_to_numpy(keras.Model(seq, scores)(x[:2]))  # (2, 4, 12, 12), the weights after fit
    header, data = stats.decode(*run_blob(series, run, metadata.KIND_STATS)[1])
    got = stats.layer_slice(header, data, "mha:1")
    assert len(got["mean"]) == 4
    assert np.allclose(got["mean"], expected.mean(axis=(0, 2, 3)), atol=1e-6)
    assert np.allclose(got["max"], expected.max(axis=(0, 2, 3)), atol=1e-6)
    info = json_of(layer_series(series, run)[(ACT, "mha:1")][1][0])
    assert (info["layout"], info["shown"], info["tile_h"], info["tile_w"]) == ("grid", 4, 12, 12), info
    assert np.allclose(info["probes"][0]["max"], expected[0].max(axis=(1, 2)), atol=1e-5)
    # The layer's own output, (queries, features), is drawn as it was.
    assert json_of(layer_series(series, run)[(ACT, "mha")][1][0])["layout"] == "heat"


def test_unwritable_log_dir_is_a_clear_error_at_train_begin(tmp_path):
    """A log_dir that cannot be created raises OSError quoting the path."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="d")])
    model.compile("sgd", "mse")
    target = str(blocker / "run")
    cb = LayerView(target, probe=np.ones((1, 2), np.float32))
    with pytest.raises(OSError, match="cannot write to log_dir '%s'" % target):
        model.fit(np.ones((8, 2)), np.zeros((8, 1)), epochs=1, verbose=0, callbacks=[cb])


@pytest.mark.parametrize("kwargs, message", [
    ({"every_n_epochs": 0}, "every_n_epochs must be an integer >= 1; got 0"),
    ({"every_n_epochs": 1.5}, "every_n_epochs must be an integer >= 1; got 1.5"),
    ({"max_channels": -3}, "max_channels must be an integer >= 1; got -3"),
    ({"filter_input": "all"}, "filter_input must be \"first\" or \"mean\"; got 'all'"),
    ({"layers": ["conv("]}, "layers: 'conv\\(' is not a valid regular expression"),
    ({"class_names": "abc"}, "class_names must be a list of strings; got 'abc'"),
    ({"input_image_shape": (28,)}, "input_image_shape must be .* got \\(28,\\)"),
    ({"probe": np.ones((100, 2))}, "probe must hold 1 to 64 samples .* got 100"),
    ({"probe": np.float32(3)}, "probe needs a leading batch axis; got a scalar 3.0"),
    ({"probe": (np.ones((2, 2)), np.ones(3))}, "probe labels have 3 samples but the inputs have 2"),
    ({"probe": (np.ones((2, 2)), {"animal": np.ones(3)})}, "probe labels\\['animal'\\] have 3 samples but the inputs have 2"),
    ({"probe": (np.ones((2, 2)), {})}, "probe labels \\(y\\) is an empty dict; pass one array per output or none"),
    ({"probe": (1, 2, 3, 4)}, "probe given as a tuple must be \\(x, y\\) or \\(x, y, sample_weight\\); got a tuple"
                              " of 4 items"),
    ({"probe": [np.ones((2, 2)), np.ones((3, 2))]}, "probe inputs disagree on the number of samples: \\[2, 3\\]"),
    ({"log_dir": ""}, "log_dir must be a non-empty path string; got ''"),
    ({"probe": np.array([1, "a", None], dtype=object)},
     "probe must be an array of numbers or of strings; got an object array of shape \\(3,\\) holding NoneType, int, str"),
    ({"probe": (np.ones((2, 2)), np.array(["cat", "dog"]))},
     "probe labels \\(y\\) must be numbers \\(class ids, one-hot rows or targets\\); got strings such as 'cat'"),
])
def test_bad_arguments_are_rejected_up_front_with_the_value_quoted(tmp_path, kwargs, message):
    """Constructor arguments are validated; messages name the argument and the value."""
    args = {"log_dir": str(tmp_path / "x"), "probe": np.ones((2, 2), np.float32)}
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=message):
        LayerView(**args)


def test_user_default_writer_is_left_as_it_was_and_no_files_without_fit(tmp_path):
    """LayerView writes to its own writer; the user's default writer keeps receiving summaries."""
    LayerView(str(tmp_path / "unused"), probe=np.ones((1, 2), np.float32))
    assert not (tmp_path / "unused").exists()
    user = tf.summary.create_file_writer(str(tmp_path / "user"))
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="d")])
    x = np.ones((8, 2), np.float32)
    with user.as_default():
        fit(model, x, np.zeros((8, 1)), tmp_path / "lv", epochs=1, probe=x[:1])
        assert tf.summary.scalar("user_scalar", 1.0, step=0)
    user.flush()
    series = read_series(str(tmp_path))
    assert set(series) == {"lv"}  # the user's scalar is not a tb_layerview series
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(tmp_path / "user"))
    acc.Reload()
    assert acc.Tags()["tensors"] == ["user_scalar"]


def test_non_chief_worker_writes_nothing(tmp_path, monkeypatch):
    """Under multi-worker TF_CONFIG, worker 1 logs nothing; the chief logs."""
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="d")])
    x = np.ones((8, 2), np.float32)
    fit(model, x, np.zeros((8, 1)), tmp_path / "worker1", epochs=1, probe=x[:1])
    assert not (tmp_path / "worker1").exists()


def test_keras_distribution_process_other_than_0_writes_nothing(tmp_path, monkeypatch):
    """KERAS_DISTRIBUTION_PROCESS_ID=1 (keras.distribution's own variable): nothing is written, and the
    callback says why; process 0 writes."""
    from tb_layerview import distributed

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="d")])
    x = np.ones((8, 2), np.float32)
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "1")
    cb = fit(model, x, np.zeros((8, 1)), tmp_path / "proc1", epochs=1, probe=x[:1])
    assert not (tmp_path / "proc1").exists()
    assert "KERAS_DISTRIBUTION_PROCESS_ID is 1" in cb.not_writing
    assert distributed.writer_process()[0] is False
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "0")
    cb = fit(model, x, np.zeros((8, 1)), tmp_path / "proc0", epochs=1, probe=x[:1])
    assert (tmp_path / "proc0").exists() and cb.not_writing is None


def test_deciding_which_process_writes_starts_jax_only_on_the_jax_backend(tmp_path):
    """Keras imports JAX whatever its backend; asking JAX for the process index starts its
    runtime and a dozen threads, which a TensorFlow or PyTorch fit has no use for."""
    import subprocess
    import sys

    script = ("import keras, os\n"
              "from tb_layerview import distributed\n"
              "threads = len(os.listdir('/proc/self/task'))\n"
              "print(distributed.writer_process())\n"
              "from jax._src import xla_bridge\n"
              "print(xla_bridge.backends_are_initialized(), len(os.listdir('/proc/self/task')) - threads)\n")
    backend = keras.backend.backend()
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    writes, started = out.stdout.splitlines()[-2:]
    assert writes == "(True, None)"
    if backend == "jax":
        assert started.startswith("True")
    else:
        assert started == "False 0", started


def test_only_the_training_thread_reads_the_callbacks_model_property(tmp_path, monkeypatch):
    """Keras' Callback.model writes JAX training state back into the variables; from the writer thread
    that raced the train step ("Buffer has been deleted or donated"). Every read is on the training thread."""
    import threading

    readers = set()
    original = keras.callbacks.Callback.model

    def model(self):
        readers.add(threading.current_thread().name)
        return original.fget(self)

    monkeypatch.setattr(keras.callbacks.Callback, "model", property(model, original.fset))
    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax", name="out")])
    x = np.random.default_rng(0).random((64, 4), dtype=np.float32)
    fit(net, x, np.zeros(64, int), tmp_path / "threads", epochs=2, loss="sparse_categorical_crossentropy",
        probe=x[:2], class_names=["a", "b", "c"])
    assert readers == {threading.main_thread().name}, readers


def test_a_stateless_loop_logs_the_weights_it_passes_and_is_warned_when_it_passes_none(tmp_path):
    """A loop that trains outside the model's variables (model.stateless_call, as Keras' JAX guide
    does) logged its initial weights at every step, silently. log(step, state=...) assigns the state
    it is given, so each step's statistics are those of that step's weights; logging unchanged weights
    at a new step warns, naming both steps; a state that does not fit the model is a clear error."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d"),
                              keras.layers.BatchNormalization(name="bn")])
    probe = np.random.default_rng(0).random((4, 3)).astype("float32")
    lv = LayerView(str(tmp_path / "stateless"), probe=probe, budget=None, class_views=False)
    lv.set_model(model)
    trainable = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    non_trainable = [keras.ops.convert_to_numpy(v) for v in model.non_trainable_variables]
    lv.log(0)
    with pytest.warns(LayerViewWarning, match=r"log\(step=1\): the model's weights are the ones logged at step 0"):
        lv.log(1)  # trained outside the model, and not passed
    kernels = {}
    for step in (2, 3):
        trainable = [w + 0.5 * step for w in trainable]  # what a step of the loop returns
        kernels[step] = trainable[:2]
        lv.log(step, state=(trainable, non_trainable))
    with pytest.raises(ValueError, match=r"state has 1 trainable values; the model 'sequential\S*' has 4"):
        lv.log(4, state=(trainable[:1], non_trainable))
    with pytest.raises(ValueError, match=r"a value of shape \(2, 3\) for variable '\S*/d/kernel' of"
                                         r" shape \(3, 2\)"):
        lv.log(4, state=([trainable[0].T] + trainable[1:], non_trainable))
    with pytest.raises(TypeError, match="state must be \\(trainable_variables, non_trainable_variables\\); got list"):
        lv.log(4, state=[trainable])
    lv.close()
    series, run = only_run(tmp_path / "stateless")
    for step in (2, 3):
        kernel, bias = kernels[step]
        want = probe @ kernel + bias
        np.testing.assert_allclose(_stats_by_path(series, run, step)["d"]["mean"], want.mean(axis=0), rtol=1e-5)


def test_custom_training_loop_with_log_and_summary_ops(tmp_path):
    """LayerView.log and tb_layerview.summary write the same series without model.fit. A step the log
    directory already holds (logged twice by one loop, or by an earlier one) is not written again, and
    a warning says so: TensorBoard's two loaders would each keep another of the two."""
    import tb_layerview

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    lv = LayerView(str(tmp_path / "loop"), probe=np.ones((2, 3), np.float32), budget=None)
    lv.set_model(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3):
            model.get_layer("d").kernel.assign(np.full((3, 2), float(step), np.float32))  # a step of training
            lv.log(step)
        lv.log(2)
        lv.close()
        lv.log(1)
        again = LayerView(str(tmp_path / "loop"), probe=np.ones((2, 3), np.float32), budget=None)
        again.set_model(model)
        again.log(2)
        model.get_layer("d").kernel.assign(np.full((3, 2), 3.0, np.float32))
        again.log(3)
        again.close()
    said = [str(w.message) for w in caught if issubclass(w.category, LayerViewWarning)]
    assert len(said) == 3 and all("already holds step" in m for m in said), said
    assert [m.split("holds step ")[1].split(",")[0] for m in said] == ["2", "1", "2"]
    assert [step for step, tags in _steps_written(str(tmp_path / "loop")) if "layerview/run/stats" in tags] \
        == [0, 1, 2, 3]
    writer = tf.summary.create_file_writer(str(tmp_path / "ops"))
    with writer.as_default():
        assert tb_layerview.summary.activations("feat", np.ones((2, 4, 4, 3)), step=7, layer_class="Custom")
        assert tb_layerview.summary.filters("feat", np.ones((3, 3, 3, 5)), step=7)
    writer.close()
    assert tb_layerview.summary.activations("x", np.ones((1, 3)), step=0) is False  # no default writer
    series = read_series(str(tmp_path))
    assert sorted(layer_series(series, "loop")[(ACT, "d")]) == [0, 1, 2, 3]
    assert {k: sorted(v) for k, v in layer_series(series, "ops").items()} == {(ACT, "feat"): [7], (FIL, "feat"): [7]}


def test_any_gfile_path_works_as_log_dir():
    """log_dir may be any tf.io.gfile path; here TensorFlow's in-memory ram:// file system. A second
    LayerView continuing the run there reads the steps the first one wrote, and writes none twice."""
    from tb_layerview import writer

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="d")])
    x = np.ones((8, 2), np.float32)
    model.compile("sgd", "mse")
    for start in (0, 1):
        model.fit(x, np.zeros((8, 1)), initial_epoch=start, epochs=start + 1, verbose=0,
                  callbacks=[LayerView("ram://lv_test/run", probe=x[:1], budget=None)])
    files = tf.io.gfile.listdir("ram://lv_test/run")
    assert any(f.startswith("events.out.tfevents") for f in files)
    assert not any(f.startswith(".tb_layerview") for f in files)
    names = writer.layerview_files("ram://lv_test/run")
    assert [writer.logged_steps("ram://lv_test/run", [n]) for n in names] == [{0, 1}, {2}]


def test_format_document_names_every_key_and_tag_the_writer_uses(tmp_path):
    """docs/format.md mentions every key of the info blobs and every tag prefix actually written."""
    doc = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "format.md"),
               encoding="utf-8").read()
    model = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Conv2D(2, 3, name="conv"),
                              keras.layers.Flatten(name="flat"), keras.layers.Dense(2, name="out")])
    x = np.ones((8, 6, 6, 3), np.float32)
    fit(model, x, np.zeros((8, 2)), tmp_path / "fmt", epochs=1, probe=x[:1])
    series, run = only_run(tmp_path / "fmt")
    for tag, s in series[run].items():
        assert tag.rsplit("/", 1)[0] in doc or tag in doc, tag
        first = s["steps"][min(s["steps"])][0]
        for key in json_of(first):
            assert '"%s"' % key in doc or "`%s`" % key in doc, (tag, key)


def test_class_views_for_a_sigmoid_mlp_and_a_cnn(tmp_path):
    """An MLP gets back-query, maximisation and saliency; a CNN Grad-CAM and a reason for no back-query."""
    mlp = keras.Sequential([keras.Input((64,)), keras.layers.Dense(6, activation="sigmoid", name="hidden"),
                            keras.layers.Dense(3, activation="sigmoid", name="out")])
    x = np.random.default_rng(0).random((32, 64), dtype=np.float32)
    y = np.random.default_rng(1).integers(0, 3, 32)
    fit(mlp, x, keras.utils.to_categorical(y, 3), tmp_path / "mlp", epochs=2, probe=(x[:2], y[:2]),
        maximize_every_n_epochs=2, maximize_steps=8, class_names=["a", "b", "c"])
    cnn = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, activation="relu", name="conv"),
                            keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax", name="out")])
    xc = np.random.default_rng(2).random((16, 8, 8, 3), dtype=np.float32)
    fit(cnn, xc, np.zeros(16, int), tmp_path / "cnn", epochs=1, loss="sparse_categorical_crossentropy",
        probe=xc[:3], maximize_steps=8)
    series = read_series(str(tmp_path))
    bq = run_blob(series, "mlp", metadata.KIND_BACKQUERY)
    assert sorted(bq) == [0, 1, 2]
    info = json_of(bq[2][0])
    assert info["classes"] == [0, 1, 2] and info["names"] == ["a", "b", "c"] and info["shape"] == [8, 8]
    assert render.decode_png(bq[2][1]).shape == (8, 8, 2)
    assert sorted(run_blob(series, "mlp", metadata.KIND_MAXIMIZATION)) == [0, 2]
    att = json_of(run_blob(series, "mlp", metadata.KIND_ATTRIBUTION)[1][0])
    assert att["method"] == "saliency" and [t["which"] for t in att["targets"]] == ["predicted"] * 2 + ["true"] * 2
    config = json_of(run_blob(series, "cnn", metadata.KIND_CONFIG)[0][0])
    assert config["class_views"]["backquery"]["available"] is False
    assert "layer 'conv' (Conv2D)" in config["class_views"]["backquery"]["reason"]
    assert config["class_views"]["attribution"] == {"available": True, "reason": None, "method": "gradcam",
                                                    "layer": "conv"}
    cam = run_blob(series, "cnn", metadata.KIND_ATTRIBUTION)[1]
    assert len(cam) == 4 and render.decode_png(cam[1]).shape == (8, 8, 2)
    assert sorted(run_blob(series, "cnn", metadata.KIND_MAXIMIZATION)) == [0, 1]


def test_maximize_units_logs_images_of_the_chosen_units(tmp_path):
    """maximize_units={'conv': 2} writes a units series of 2 images at the maximisation epochs."""
    cnn = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
                            keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax", name="out")])
    x = np.random.default_rng(2).random((16, 8, 8, 3), dtype=np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(cnn, x, np.zeros(16, int), tmp_path / "units", epochs=2, loss="sparse_categorical_crossentropy",
            probe=x[:2], maximize_steps=8, maximize_every_n_epochs=2, maximize_units={"conv": 2, "nope": [1]})
    assert any("maximize_units names layer 'nope'" in str(w.message) for w in caught)
    series, run = only_run(tmp_path / "units")
    units = layer_series(series, run)[(metadata.KIND_UNITS, "conv")]
    assert sorted(units) == [0, 2] and len(units[2]) == 3
    info = json_of(units[2][0])
    assert info["units"] == [0, 1] and info["shape"] == [8, 8, 3] and len(info["history"]) == 2
    assert render.decode_png(units[2][1]).shape == (8, 8, 4)


@pytest.mark.parametrize("value, message", [
    ([1, 2], "maximize_units must be a dict"),
    ({"conv": "ab"}, "maximize_units\\['conv'\\] must be unit indices or a count; got 'ab'"),
    ({"conv": 0}, "maximize_units\\['conv'\\] must be an integer >= 1; got 0"),
    ({"conv": [-1]}, "must name units >= 0; got \\[-1\\]"),
])
def test_bad_maximize_units_are_rejected(tmp_path, value, message):
    """maximize_units is validated up front with the value quoted."""
    with pytest.raises((TypeError, ValueError), match=message):
        LayerView(str(tmp_path), probe=np.ones((1, 2), np.float32), maximize_units=value)


# ---------------------------------------------------------------------------
# Silent gaps found with models from peers' test suites, one test each.


class NeverCalled(keras.Model):
    def __init__(self):
        super().__init__()
        self.d1 = keras.layers.Dense(4, activation="relu", name="d1")
        self.d2 = keras.layers.Dense(2, name="d2")

    def call(self, x):
        return self.d2(self.d1(x))


class _Private(keras.Model):
    """Keras names it ``__private``: on TensorFlow, not a valid root name scope in a traced function."""

    def __init__(self):
        super().__init__()
        self.conv = keras.layers.Conv2D(3, 3, name="conv")
        self.flat = keras.layers.Flatten(name="flat")
        self.out = keras.layers.Dense(2, activation="softmax", name="out")

    def call(self, x):
        return self.out(self.flat(self.conv(x)))


def test_a_model_whose_name_starts_with_an_underscore_gets_compiled_passes_and_class_views(tmp_path):
    """A model Keras names ``__private`` trains eagerly (``run_eagerly=True``; Keras' compiled train step
    refuses the name on TensorFlow); LayerView's traced passes open a scope of their own first, so the
    probe pass is compiled and activation maximisation is logged, with no warning."""
    x = np.random.default_rng(0).random((16, 6, 6, 2)).astype("float32")
    model = _Private()
    model.compile("sgd", "sparse_categorical_crossentropy", run_eagerly=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, np.arange(16) % 2, epochs=8, batch_size=16, verbose=0,
                  callbacks=[LayerView(str(tmp_path / "private"), probe=(x[:3], np.arange(3) % 2), budget=None)])
    assert model.name == "__private"
    assert not [w for w in caught if issubclass(w.category, LayerViewWarning)], [str(w.message) for w in caught]
    series, run = only_run(tmp_path / "private")
    plans = run_blob(series, run, metadata.KIND_PLAN)
    modes = {json_of(b[0])["capture"]["mode"] for b in plans.values()}
    assert modes == ({"eager"} if keras.backend.backend() == "torch" else {"compiled"}), modes
    assert sorted(run_blob(series, run, metadata.KIND_MAXIMIZATION)) == [0, 5, 8]


def test_each_plan_record_counts_the_training_thread_time_of_its_step(tmp_path):
    """Step 0's plan record counts the hook time spent for it (preparing when training begins, its
    probe pass included), not 0; the records' hook seconds add up to no more than ``lv.cost`` counts.
    In a custom loop each ``LayerView.log`` counts its own time, and ``lv.cost`` says so too."""
    x = np.random.default_rng(0).random((32, 8, 8, 3)).astype("float32")
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
                              keras.layers.Flatten(name="flat"), keras.layers.Dense(2, name="out")])
    cb = fit(model, x, np.zeros((32, 2)), tmp_path / "fit", epochs=3, probe=x[:4])

    def plans(log_dir):
        series, run = only_run(log_dir)
        return {step: json_of(b[0]) for step, b in run_blob(series, run, metadata.KIND_PLAN).items()}

    fitted = plans(tmp_path / "fit")
    assert sorted(fitted) == [0, 1, 2, 3]
    for step, plan in fitted.items():
        assert plan["cost"]["hook_seconds"] >= plan["capture"]["seconds"] > 0, (step, plan["cost"], plan["capture"])
        # The pass ran (or was traced) with its three plain layers called directly.
        assert plan["capture"]["layer_calls"] == {"direct": 3, "keras": 0}, plan["capture"]
        assert plan["capture"]["direct_failed"] is None
    assert sum(p["cost"]["hook_seconds"] for p in fitted.values()) <= cb.cost["hook_seconds"] + 1e-3, cb.cost

    lv = LayerView(str(tmp_path / "loop"), probe=x[:2], budget=None)
    lv.set_model(model)
    for step in range(2):
        model.get_layer("out").bias.assign(np.full(2, float(step), np.float32))  # a step of training
        lv.log(step)
    lv.close()
    looped = plans(tmp_path / "loop")
    assert sorted(looped) == [0, 1]
    for step, plan in looped.items():
        assert plan["cost"]["hook_seconds"] >= plan["capture"]["seconds"] > 0, (step, plan["cost"], plan["capture"])
    assert lv.cost["hook_seconds"] >= sum(p["cost"]["hook_seconds"] for p in looped.values()) - 1e-3 > 0, lv.cost


def test_subclassed_model_not_called_before_fit_gets_step_zero(tmp_path):
    """A subclassed model fit without a prior call still has step 0, and its layers are not 'not called'."""
    x = np.random.default_rng(0).random((32, 3)).astype("float32")
    cb = fit(NeverCalled(), x, np.zeros((32, 2)), tmp_path / "sub", probe=x[:2])
    series, run = only_run(tmp_path / "sub")
    got = layer_series(series, run)
    assert sorted(got[(ACT, "d1")]) == [0, 1, 2]
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    for layer in config["layers"]:
        assert layer["skipped"] is None and layer["calls"] == 1, layer
    assert cb.cost["logged_steps"] == 3


def test_layer_with_several_outputs_logs_every_output(tmp_path):
    """LSTM(return_sequences, return_state) logs its states; a custom layer's dict outputs all appear."""

    class Split(keras.layers.Layer):
        def call(self, x):
            return {"low": x[:, :2], "high": x[:, 2:]}

    inp = keras.Input((5, 3))
    seq, h, c = keras.layers.LSTM(4, return_sequences=True, return_state=True, name="lstm")(inp)
    parts = Split(name="split")(keras.layers.Flatten(name="flat")(seq))
    out = keras.layers.Dense(2, name="out")(keras.layers.Concatenate(name="cat")([parts["low"], parts["high"], h, c]))
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).random((16, 5, 3)).astype("float32")
    fit(model, x, np.zeros((16, 2)), tmp_path / "multi_out", probe=x[:2], epochs=1)
    series, run = only_run(tmp_path / "multi_out")
    got = layer_series(series, run)
    for key in ("lstm", "lstm:1", "lstm:2", "split", "split:high"):
        assert sorted(got[(ACT, key)]) == [0, 1], key
    assert json_of(got[(ACT, "lstm:1")][1][0])["shape"] == [4]
    assert json_of(got[(ACT, "split:high")][1][0])["shape"] == [18]
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    lstm = next(l for l in config["layers"] if l["path"] == "lstm")
    assert [o["path"] for o in lstm["outputs"]] == ["lstm", "lstm:1", "lstm:2"]


class _WithEmpty(keras.layers.Layer):
    """Returns its input, an int per sample and an output without values (no channels)."""

    def call(self, x):
        return x, keras.ops.argmax(x, axis=-1), keras.ops.zeros((keras.ops.shape(x)[0], 0))

    def compute_output_shape(self, shape):
        return shape, shape[:-1], (shape[0], 0)


def test_an_output_without_values_is_listed_with_why_and_the_rest_logged(tmp_path):
    """A layer output with an axis of 0 once stopped fit, reported as a probe that did not fit the model
    ("cannot reshape array of size 0"). It now has statistics of no channels, its configuration says why
    it has no images, and dtypes are named as Keras names them on every backend."""
    from tb_layerview import stats

    inp = keras.Input((6,))
    same, arg, empty = _WithEmpty(name="odd")(keras.layers.Dense(4, name="d")(inp))
    model = keras.Model(inp, keras.layers.Dense(1, name="out")(same))
    x = np.random.default_rng(0).random((16, 6)).astype("float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(model, x, np.zeros((16, 1)), tmp_path / "empty", probe=x[:2])
    assert not [w for w in caught if issubclass(w.category, LayerViewWarning)], [str(w.message) for w in caught]
    series, run = only_run(tmp_path / "empty")
    got = layer_series(series, run)
    assert sorted(got[(ACT, "odd")]) == [0, 1, 2] and sorted(got[(ACT, "odd:1")]) == [0, 1, 2]
    assert (ACT, "odd:2") not in got
    header, data = stats.decode(*run_blob(series, run, metadata.KIND_STATS)[2])
    channels = {l["path"]: l["channels"] for l in header["layers"]}
    assert channels == {"d": 4, "odd": 4, "odd:1": 1, "odd:2": 0, "out": 1}, channels
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    odd = next(l for l in config["layers"] if l["path"] == "odd")
    assert [(o["path"], o["shape"], o["dtype"]) for o in odd["outputs"]] == [
        ("odd", [4], "float32"), ("odd:1", [], "int32"), ("odd:2", [0], "float32")]
    assert [o["skipped"] for o in odd["outputs"]] == [
        None, None, "output has 0 values per sample, fewer than min_size=1"], odd["outputs"]


class BatchSummaryLayer(keras.layers.Layer):
    """Adds a loss and returns what has no batch axis: the mean of everything, and each channel's mean
    over the batch."""

    def call(self, x):
        self.add_loss(1e-3 * keras.ops.mean(keras.ops.square(x)))
        return keras.ops.mean(x), keras.ops.mean(x, axis=(0, 1, 2))

    def compute_output_shape(self, shape):
        return (), shape[-1:]


class SummarisedModel(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = keras.layers.Conv2D(3, 3, name="conv")
        self.summary_layer = BatchSummaryLayer(name="summary")
        self.out = keras.layers.Dense(2, activation="softmax", name="out")

    def call(self, x):
        h = self.conv(x)
        whole, per_channel = self.summary_layer(h)
        return self.out(keras.ops.mean(h, axis=(1, 2)) + per_channel + whole)


def test_outputs_without_the_batch_axis_say_so_and_the_rest_is_logged(tmp_path):
    """A layer returning a scalar or a mean over the batch has no values per probe: its configuration says
    so with the shape and the probe count, it has no statistics or images, and nothing warns."""
    from tb_layerview import stats

    x = np.random.default_rng(0).random((16, 6, 6, 2)).astype("float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(SummarisedModel(), x, np.arange(16) % 2, tmp_path / "batchless", probe=x[:4],
            loss="sparse_categorical_crossentropy")
    assert not [w for w in caught if issubclass(w.category, LayerViewWarning)], [str(w.message) for w in caught]
    series, run = only_run(tmp_path / "batchless")
    for step in (0, 1, 2):
        header, _ = stats.decode(*run_blob(series, run, metadata.KIND_STATS)[step])
        assert [l["path"] for l in header["layers"]] == ["conv", "out"]
    assert {path for kind, path in layer_series(series, run) if kind == ACT} == {"conv", "out"}
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    summary = next(l for l in config["layers"] if l["path"] == "summary")
    assert [(o["path"], o["shape"], o["skipped"]) for o in summary["outputs"]] == [
        ("summary", [], "output has no batch axis (shape () for 4 probes): no values per probe, so no "
                        "statistics or images"),
        ("summary:1", [3], "output has no batch axis (shape (3,) for 4 probes): no values per probe, so no "
                           "statistics or images")]
    assert summary["skipped"] == summary["outputs"][0]["skipped"] and summary["kinds"] == []


def test_statistics_that_fail_on_one_output_warn_and_the_others_are_logged(tmp_path, monkeypatch):
    """A failure computing one output's statistics warns with the output's name and what went wrong;
    training goes on and every other output keeps its statistics and images."""
    from tb_layerview import stats

    real = stats.channel_stats

    def failing_on_three_channels(x, *args, **kwargs):
        if np.asarray(x).shape[-1] == 3:
            raise FloatingPointError("boom")
        return real(x, *args, **kwargs)

    monkeypatch.setattr(stats, "channel_stats", failing_on_three_channels)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, name="bad"),
                              keras.layers.Dense(2, name="good")])
    x = np.random.default_rng(0).random((16, 6)).astype("float32")
    with pytest.warns(LayerViewWarning, match=r"statistics of output 'bad' \(shape \(3,\), float32\) could not be"
                                              r" computed and are left out: FloatingPointError: boom"):
        history = fit(model, x, np.zeros((16, 2)), tmp_path / "stats_fail", probe=x[:2]).model.history
    assert len(history.history["loss"]) == 2
    series, run = only_run(tmp_path / "stats_fail")
    for step in (0, 1, 2):
        header, _ = stats.decode(*run_blob(series, run, metadata.KIND_STATS)[step])
        assert [l["path"] for l in header["layers"]] == ["good"], step
    got = layer_series(series, run)
    assert (ACT, "bad") not in got and sorted(got[(ACT, "good")]) == [0, 1, 2]
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    bad = next(l for l in config["layers"] if l["path"] == "bad")
    assert bad["skipped"] == "statistics could not be computed (FloatingPointError: boom)", bad


def test_model_wrapped_in_time_distributed_is_logged_inside(tmp_path):
    """The layers of a model inside TimeDistributed get series, their calls stacked over time."""
    inner = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3, name="conv"),
                              keras.layers.Flatten(name="flat")], name="frame")
    inp = keras.Input((4, 6, 6, 1))
    feats = keras.layers.TimeDistributed(inner, name="td")(inp)
    out = keras.layers.Dense(1, name="out")(keras.layers.GlobalAveragePooling1D(name="gap")(feats))
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).random((8, 4, 6, 6, 1)).astype("float32")
    fit(model, x, np.zeros((8, 1)), tmp_path / "td", probe=x[:2], epochs=1)
    series, run = only_run(tmp_path / "td")
    got = layer_series(series, run)
    assert (ACT, "td/frame/conv") in got and (ACT, "td/frame/flat") in got
    assert json_of(got[(ACT, "td/frame/conv")][1][0])["shape"] == [4, 4, 4, 2]  # (T, H, W, C)
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    conv = next(l for l in config["layers"] if l["path"] == "td/frame/conv")
    assert conv["per_time_step"] is True and conv["skipped"] is None and conv["calls"] == 4
    frame = next(l for l in config["layers"] if l["path"] == "td/frame")
    assert frame["nested_model"] is True and frame["calls"] == 4


def test_functional_model_with_list_inputs_and_a_bare_probe_does_not_warn(tmp_path):
    """Model(inputs=[i1]) with a bare-array probe, as the README shows, makes Keras warn nothing."""
    i1 = keras.Input((4,), name="features")
    model = keras.Model(inputs=[i1], outputs=keras.layers.Dense(2, name="out")(i1))
    x = np.ones((16, 4), np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(model, x, np.zeros((16, 2)), tmp_path / "listin", probe=x[:2], epochs=1)
    assert not [w for w in caught if "structure" in str(w.message)], [str(w.message) for w in caught]


def test_sequential_probe_input_is_named_after_its_input_layer(tmp_path):
    """The probe of a Sequential model is named after its InputLayer, not an internal tensor name."""
    model = keras.Sequential([keras.Input((4,), name="features"), keras.layers.Dense(2, name="out")])
    x = np.ones((16, 4), np.float32)
    fit(model, x, np.zeros((16, 2)), tmp_path / "seqname", probe=x[:2], epochs=1)
    series, run = only_run(tmp_path / "seqname")
    probes = json_of(run_blob(series, run, metadata.KIND_PROBES)[0][0])
    assert probes["inputs"] == ["features"]


# ---------------------------------------------------------------------------
# Statistics, the budget and the plan.


def test_statistics_of_every_output_at_every_step_match_numpy(tmp_path):
    """Eager and compiled per-channel statistics equal tb_layerview.stats.channel_stats on the same outputs,
    in the model's call order; a fit long enough to pay back tracing is compiled from step 0, a short one
    stays eager on TensorFlow."""
    from tb_layerview import capture, stats

    model = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3, activation="relu", name="conv"),
                              keras.layers.Flatten(name="a_flat"),  # not in alphabetical order
                              keras.layers.Dense(4, activation="sigmoid", name="out")])
    x = np.random.default_rng(1).normal(size=(16, 6, 6, 2)).astype("float32")
    def modes_of(name):
        series, run = only_run(tmp_path / name)
        return [json_of(b[0])["capture"]["mode"] for _, b in sorted(run_blob(series, run, metadata.KIND_PLAN).items())]

    # 8 epochs: 9 logged passes pay back compiling (about 4 passes) at 0.5 of a pass each; 2 epochs do not.
    fit(keras.models.clone_model(model), x, np.zeros((16, 4)), tmp_path / "short", probe=x[:3], epochs=2)
    fit(model, x, np.zeros((16, 4)), tmp_path / "st", probe=x[:3], epochs=8)
    series, run = only_run(tmp_path / "st")
    steps = run_blob(series, run, metadata.KIND_STATS)
    assert sorted(steps) == list(range(9))
    if keras.backend.backend() == "torch":
        assert modes_of("st") == ["eager"] * 9  # PyTorch's pass stays eager
    elif keras.backend.backend() == "jax":
        # JAX: its eager first pass costs more than compiling, so even a short fit is compiled.
        assert modes_of("st") == ["compiled"] * 9 and modes_of("short") == ["compiled"] * 3
    else:
        assert modes_of("st") == ["compiled"] * 9 and modes_of("short") == ["eager"] * 3
    header, data = stats.decode(*steps[8])
    # In the order the model calls its layers, compiled or not (tf.function and jax.jit sort dict keys).
    for step in (0, 8):
        assert [l["path"] for l in stats.decode(*steps[step])[0]["layers"]] == ["conv", "a_flat", "out"]
    short = run_blob(*only_run(tmp_path / "short"), metadata.KIND_STATS)
    assert [l["path"] for l in stats.decode(*short[2])[0]["layers"]] == ["conv", "a_flat", "out"]
    with capture.recording({"conv": model.get_layer("conv"), "out": model.get_layer("out")}) as rec:
        model(x[:3], training=False)
    conv_ref = stats.channel_stats(capture.to_numpy(rec.output("conv")))
    out_ref = stats.channel_stats(capture.to_numpy(rec.output("out")), limits=stats.saturation_limits("sigmoid"))
    got = stats.layer_slice(header, data, "conv")
    np.testing.assert_allclose(np.stack([got[k] for k in stats.STATS]), conv_ref, rtol=1e-4, atol=1e-5)
    got = stats.layer_slice(header, data, "out")
    np.testing.assert_allclose(np.stack([got[k] for k in stats.STATS]), out_ref, rtol=1e-4, atol=1e-5)
    assert header["layers"][2]["activation"] == "sigmoid"


def test_a_recurrent_models_probe_pass_is_compiled_from_step_0_of_a_short_fit(tmp_path):
    """A recurrent layer's eager pass runs its time loop one step at a time, so tracing pays back within
    two passes: a 2-epoch fit of an LSTM model is compiled from step 0 on TensorFlow and JAX, where the
    same fit of a CNN stays eager on TensorFlow. Which layers count is one rule (capture.compile_estimate),
    with exact figures."""
    from tb_layerview import capture, walk

    def estimate(*layers, shape=(5, 3)):
        return capture.compile_estimate(walk.walk(keras.Sequential([keras.Input(shape), *layers])))

    class Encoder(keras.layers.Layer):  # a layer of your own holding an LSTM
        def __init__(self, **kw):
            super().__init__(**kw)
            self.rnn = keras.layers.LSTM(2)

        def call(self, x):
            return self.rnn(x)

    recurrent = {
        "lstm": estimate(keras.layers.LSTM(2, name="lstm")),
        "bi": estimate(keras.layers.Bidirectional(keras.layers.GRU(2), name="bi")),
        "cell": estimate(keras.layers.RNN(keras.layers.SimpleRNNCell(2), name="cell")),
        "convlstm": estimate(keras.layers.ConvLSTM2D(2, 3, name="convlstm"), shape=(3, 6, 6, 1)),
        "enc/lstm": estimate(Encoder(name="enc")),
        "inner/lstm": estimate(keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(2, name="lstm")],
                                                name="inner")),
    }
    for path, e in recurrent.items():
        assert (e.cost_in_passes, e.pass_share, e.recurrent) == (1.5, 0.1, (path,)), (path, e)
    for e in (estimate(keras.layers.LSTM(2, unroll=True)),  # the trace holds every step too
              estimate(keras.layers.TimeDistributed(keras.layers.Dense(2)), keras.layers.Flatten()),
              estimate(keras.layers.Conv1D(2, 3))):
        assert (e.cost_in_passes, e.pass_share, e.recurrent) == (4.0, 0.5, ()), e
    # 2 passes: 2 x 0.9 > 1.5 for a recurrent model; a CNN needs 9: 8 x 0.5 = 4, 9 x 0.5 = 4.5 > 4.
    assert recurrent["lstm"].pays(2) and not recurrent["lstm"].pays(1)
    assert not capture.compile_estimate([]).pays(8) and capture.compile_estimate([]).pays(9)
    assert (recurrent["lstm"].passes_to_pay, capture.compile_estimate([]).passes_to_pay) == (2, 4)

    def modes_of(name):
        series, run = only_run(tmp_path / name)
        return [json_of(b[0])["capture"]["mode"] for _, b in sorted(run_blob(series, run, metadata.KIND_PLAN).items())]

    rng = np.random.default_rng(0)
    seq = rng.random((16, 12, 3)).astype("float32")
    rnn = keras.Sequential([keras.Input((12, 3)), keras.layers.LSTM(4, return_sequences=True, name="lstm"),
                            keras.layers.GRU(3, name="gru"), keras.layers.Dense(2, name="out")])
    fit(rnn, seq, np.zeros((16, 2)), tmp_path / "rnn", probe=seq[:3], epochs=2)
    img = rng.random((16, 6, 6, 2)).astype("float32")
    cnn = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3, name="conv"),
                            keras.layers.Flatten(name="flat"), keras.layers.Dense(2, name="out")])
    fit(cnn, img, np.zeros((16, 2)), tmp_path / "cnn", probe=img[:3], epochs=2)
    if keras.backend.backend() == "torch":
        assert modes_of("rnn") == modes_of("cnn") == ["eager"] * 3  # PyTorch's pass stays eager
    elif keras.backend.backend() == "jax":
        assert modes_of("rnn") == modes_of("cnn") == ["compiled"] * 3
    else:
        assert modes_of("rnn") == ["compiled"] * 3 and modes_of("cnn") == ["eager"] * 3
    stats_steps = run_blob(*only_run(tmp_path / "rnn"), metadata.KIND_STATS)
    from tb_layerview import stats

    assert sorted(stats_steps) == [0, 1, 2]
    header, data = stats.decode(*stats_steps[2])
    assert [l["path"] for l in header["layers"]] == ["lstm", "gru", "out"]
    # The compiled pass records what an eager call of the trained model returns.
    with capture.recording({p: rnn.get_layer(p) for p in ("lstm", "gru")}) as rec:
        rnn(seq[:3], training=False)
    for path in ("lstm", "gru"):
        got = stats.layer_slice(header, data, path)
        np.testing.assert_allclose(np.stack([got[k] for k in stats.STATS]),
                                   stats.channel_stats(capture.to_numpy(rec.output(path))), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("epochs", [2, 8])
def test_keras_ops_between_the_layers_of_a_functional_model_are_logged_as_keras_summary_lists_them(
        tmp_path, epochs):
    """``keras.ops`` calls and tensor arithmetic between layers (``ops.relu(x)``, ``x * 2 + shortcut``)
    are nodes of the graph that Keras' summary lists; each gets its statistics and images in graph order,
    on the eager and the compiled pass, and an ``ops.relu`` whose units never fire is counted dead."""
    from keras import ops

    from tb_layerview import stats

    inp = keras.Input((6, 6, 2), name="img")
    conv = keras.layers.Conv2D(3, 3, bias_initializer=keras.initializers.Constant(-100.0), name="conv")(inp)
    act = ops.relu(conv)
    summed = act * 2.0 + conv
    flat = keras.layers.Flatten(name="flat")(summed)
    out = keras.layers.Dense(2, activation="sigmoid", name="out")(ops.concatenate([flat, ops.tanh(flat)], -1))
    model = keras.Model(inp, out)
    op_names = [o.name for o in model.operations if o.name not in ("img", "conv", "flat", "out")]
    assert len(op_names) == 5  # relu, multiply, add, tanh, concatenate, as Keras names them
    x = np.random.default_rng(0).random((16, 6, 6, 2)).astype("float32")
    fit(model, x, np.zeros((16, 2)), tmp_path / "ops", probe=x[:3], epochs=epochs)
    series, run = only_run(tmp_path / "ops")
    expected = [o.name for o in model.operations if o.name != "img"]
    steps = run_blob(series, run, metadata.KIND_STATS)
    assert sorted(steps) == list(range(epochs + 1))
    for step in (0, epochs):
        header, data = stats.decode(*steps[step])
        assert [l["path"] for l in header["layers"]] == expected
    relu = stats.layer_slice(header, data, op_names[0])
    assert header["layers"][1]["activation"] == "relu" and np.all(relu["max"] == 0.0)
    assert stats.health("relu", np.stack([relu[k] for k in stats.STATS]))["dead"] == 1.0
    info = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    by_path = {l["path"]: l for l in info["layers"]}
    assert [l["path"] for l in info["layers"]] == expected
    assert by_path[op_names[0]]["class"] == "Relu" and by_path[op_names[0]]["params"] == 0
    assert not by_path[op_names[0]]["trainable"] and by_path[op_names[0]]["skipped"] is None
    drawn = {path for (kind, path) in layer_series(series, run) if kind == ACT}
    assert set(op_names) <= drawn and (FIL, op_names[0]) not in layer_series(series, run)


def test_a_byte_budget_thins_images_but_never_statistics(tmp_path):
    """A tight byte budget: layers take turns for images, every step keeps every layer's statistics,
    the plan says why, and the event bytes per step stay near the budget."""
    from tb_layerview import stats

    model = keras.Sequential([keras.Input((16, 16, 3)),
                              keras.layers.Conv2D(16, 3, activation="relu", name="c1"),
                              keras.layers.Conv2D(16, 3, activation="relu", name="c2"),
                              keras.layers.Conv2D(16, 3, activation="relu", name="c3"),
                              keras.layers.GlobalAveragePooling2D(name="gap"),
                              keras.layers.Dense(3, activation="softmax", name="out")])
    x = np.random.default_rng(0).random((32, 16, 16, 3)).astype("float32")
    budget = {"time_share": None, "bytes_per_epoch": 12000}
    fit(model, x, np.zeros(32, int), tmp_path / "thin", probe=x[:4], epochs=4,
        loss="sparse_categorical_crossentropy", budget=budget, class_views=False)
    series, run = only_run(tmp_path / "thin")
    got = layer_series(series, run)
    image_steps = {k: sorted(v) for k, v in got.items() if k[0] == ACT}
    assert all(len(s) < 5 for s in image_steps.values()), image_steps
    assert set().union(*image_steps.values()) == {0, 1, 2, 3, 4}
    for step, blobs in run_blob(series, run, metadata.KIND_STATS).items():
        header, _ = stats.decode(*blobs)
        assert [l["path"] for l in header["layers"]] == ["c1", "c2", "c3", "gap", "out"]
    plans = run_blob(series, run, metadata.KIND_PLAN)
    assert sorted(plans) == [0, 1, 2, 3, 4]
    for step, blobs in plans.items():
        plan = json_of(blobs[0])
        assert plan["limited_by"] == "bytes" and plan["cadence"] > 1
        missing = {k for k, s in image_steps.items() if step not in s}
        named = {layer for layers in plan["no_images"].values() for layer in layers}
        assert {k[1] for k in missing} <= named
        assert plan["cost"]["bytes"] <= 1.5 * budget["bytes_per_epoch"], plan["cost"]


def test_a_probe_pass_over_the_time_budget_warns_once_with_the_every_n_epochs_to_use(tmp_path, monkeypatch):
    """A time share of one in a million: every pass is over it, and the fit warns once, naming the
    pass's share and an every_n_epochs; at the default 5% the same fit's passes of milliseconds,
    under the margin that spares such fits, warn nothing."""
    from tb_layerview import plan as plan_lib

    def model():
        return keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu", name="h"),
                                 keras.layers.Dense(2, name="out")])

    x = np.random.default_rng(0).random((64, 6)).astype("float32")
    y = np.zeros((64, 2), "float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(model(), x, y, tmp_path / "default", probe=x[:8], epochs=3, budget=plan_lib.Budget(),
            class_views=False)
    assert not [w for w in caught if "probe pass alone" in str(w.message)], [str(w.message) for w in caught]
    monkeypatch.setattr(plan_lib, "PASS_OVER_BUDGET_SECONDS", 0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cb = fit(model(), x, y, tmp_path / "tight", probe=x[:8], epochs=3, budget={"time_share": 1e-6},
                 class_views=False)
    said = [str(w.message) for w in caught if issubclass(w.category, LayerViewWarning)]
    over = [m for m in said if "probe pass alone" in m]
    assert len(over) == 1, said
    match = re.search(r"took ([0-9.]+) s, ([0-9.]+)% of the ([0-9.]+) s of training per logged epoch, over the"
                      r" 0.0001% time budget\..* every_n_epochs=(\d+), or fewer probes", over[0])
    assert match, over[0]
    assert int(match.group(4)) > 1
    # Statistics are never thinned: every step has them, whatever the warning says.
    series, run = only_run(tmp_path / "tight")
    assert sorted(run_blob(series, run, metadata.KIND_STATS)) == [0, 1, 2, 3]
    assert cb.cost["logged_steps"] == 4


def _deciding_first_look(monkeypatch, share):
    """Makes every step-0 image estimate dear enough to wait (``FIRST_LOOK_SECONDS`` 0), and the
    planner's first look decide with a room of ``share`` of those images' estimated time, through its
    own rule (a share a little off 1 or 0: the fit's time is worked back from the room, in floating
    point); returns what the callback handed it."""
    from tb_layerview import plan as plan_lib

    monkeypatch.setattr(plan_lib, "FIRST_LOOK_SECONDS", 0.0)
    real, seen = plan_lib.Planner.first_look, {}

    def first_look(self, plan, fit_seconds, epochs, spent_seconds, future_seconds):
        seen.update(fit_seconds=fit_seconds, epochs=epochs, spent=spent_seconds, future=future_seconds,
                    imaged=[k for k, p in plan.layers.items() if p.images])
        images = sum(self.image_seconds(p.estimate_bytes) for p in plan.layers.values() if p.images)
        room = share * images
        return real(self, plan, (room + spent_seconds + future_seconds) / self.target_share(), epochs,
                    spent_seconds, future_seconds)

    monkeypatch.setattr(plan_lib.Planner, "first_look", first_look)
    return seen


def _small_cnn():
    return keras.Sequential([keras.Input((12, 12, 3)),
                             keras.layers.Conv2D(6, 3, activation="relu", name="c1"),
                             keras.layers.Conv2D(6, 3, activation="relu", name="c2"),
                             keras.layers.Conv2D(6, 3, activation="relu", name="c3"),
                             keras.layers.Conv2D(6, 3, activation="relu", name="c4"),
                             keras.layers.GlobalAveragePooling2D(name="gap"),
                             keras.layers.Dense(3, activation="softmax", name="out")])


def _event_order(log_dir):
    """[(step, kinds of the event's values)] of a run's event file, in file order."""
    from tensorboard.backend.event_processing import event_file_loader

    (name,) = [n for n in os.listdir(log_dir) if "tfevents" in n]
    prefixes = {metadata.tag_for(k, "x")[:-1] if k in metadata.LAYER_KINDS else metadata.tag_for(k): k
                for k in metadata.KINDS}
    out = []
    for event in event_file_loader.EventFileLoader(os.path.join(log_dir, name)).Load():
        kinds = {k for v in event.summary.value for p, k in prefixes.items() if v.tag.startswith(p)}
        if kinds:
            out.append((event.step, kinds))
    return out


@pytest.mark.parametrize("share, kept", [(1.05, ["c1", "c2", "c3", "c4", "gap", "out"]), (0.55, ["c1", "c3", "gap"]),
                                         (-0.05, [])])
def test_dear_images_before_training_wait_for_the_first_epoch_and_the_fits_time_budget(tmp_path, monkeypatch,
                                                                                        share, kept):
    """Images of the step before training whose writing is estimated dearer than FIRST_LOOK_SECONDS wait
    until the first epoch has been timed. The step's statistics, health scalars and predictions are
    written at once; its images, as far as the fit's time budget leaves room for them (all, every
    second layer, none), and its plan record come before step 1's records, and the plan says why the
    others have none. Every step keeps every layer's statistics."""
    from tb_layerview import stats

    seen = _deciding_first_look(monkeypatch, share)
    x = np.random.default_rng(0).random((64, 12, 12, 3)).astype("float32")
    lv = fit(_small_cnn(), x, np.zeros(64, int), tmp_path / "first", probe=x[:4], epochs=2,
             loss="sparse_categorical_crossentropy", budget={"time_share": 1.0, "bytes_per_epoch": None},
             class_views=False)
    assert seen["epochs"] == 2 and seen["imaged"] == ["c1", "c2", "c3", "c4", "gap", "out"], seen
    assert seen["fit_seconds"] > 0 and seen["spent"] > 0 and seen["future"] > 0, seen
    series, run = only_run(tmp_path / "first")
    drawn = sorted(k[1] for k, steps in layer_series(series, run).items() if k[0] == ACT and 0 in steps)
    assert drawn == sorted(kept)
    for step, blobs in run_blob(series, run, metadata.KIND_STATS).items():
        assert [l["path"] for l in stats.decode(*blobs)[0]["layers"]] == ["c1", "c2", "c3", "c4", "gap", "out"]
    assert sorted(run_blob(series, run, metadata.KIND_STATS)) == [0, 1, 2]
    plan = json_of(run_blob(series, run, metadata.KIND_PLAN)[0][0])
    assert plan["images"] == kept and plan["cost"]["first_look"]["cadence"] == {6: 1, 3: 2, 0: 0}[len(kept)]
    if len(kept) < 6:
        reason, = plan["no_images"]
        assert plan["no_images"][reason] == [k for k in seen["imaged"] if k not in kept]
        assert reason == ("no images before training: the statistics of every logged epoch fill the 100% time"
                          " budget of this fit's 2 epochs" if not kept else
                          "images before training for every 2nd layer only, to stay within the 100% time budget"
                          " of this fit's 2 epochs")
    # The step's costs add up over both parts; it counts as one logged step.
    assert plan["cost"]["hook_seconds"] > 0 and plan["cost"]["bytes"] > plan["cost"]["image_bytes"]
    assert lv.cost["logged_steps"] == 3
    order = _event_order(str(tmp_path / "first"))
    zero = [kinds for step, kinds in order if step == 0]
    (stats_at,) = [i for i, kinds in enumerate(zero) if metadata.KIND_STATS in kinds]
    (plan_at,) = [i for i, kinds in enumerate(zero) if metadata.KIND_PLAN in kinds]
    assert stats_at < plan_at and metadata.KIND_ACTIVATIONS not in zero[stats_at], zero
    assert (metadata.KIND_ACTIVATIONS in zero[plan_at]) == bool(kept), zero
    assert [step for step, _ in order] == sorted(step for step, _ in order)  # step 0's last part before step 1


def test_held_images_before_training_are_decided_at_the_first_epoch_end_when_it_is_not_logged(tmp_path,
                                                                                               monkeypatch):
    """every_n_epochs=2: the first epoch's end logs nothing, and decides step 0's images there; the later
    steps' least cost counts the logged steps 2 and 3."""
    seen = _deciding_first_look(monkeypatch, 1.05)
    x = np.random.default_rng(0).random((64, 12, 12, 3)).astype("float32")
    fit(_small_cnn(), x, np.zeros(64, int), tmp_path / "every2", probe=x[:4], epochs=3, every_n_epochs=2,
        loss="sparse_categorical_crossentropy", budget={"time_share": 1.0, "bytes_per_epoch": None},
        class_views=False)
    assert seen["epochs"] == 3 and seen["future"] > 0
    series, run = only_run(tmp_path / "every2")
    assert sorted(run_blob(series, run, metadata.KIND_PLAN)) == [0, 2, 3]
    assert sorted(layer_series(series, run)[(ACT, "c1")])[:1] == [0]
    order = [step for step, _ in _event_order(str(tmp_path / "every2"))]
    assert order == sorted(order)


def test_held_images_before_training_are_written_when_training_fails_in_its_first_epoch(tmp_path, monkeypatch):
    """A fit that raises in its first epoch never times it: closing LayerView writes every held image of
    the step before training, and its plan record, rather than lose them."""
    _deciding_first_look(monkeypatch, -0.05)

    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                raise RuntimeError("data pipeline broke")

    model = _small_cnn()
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((64, 12, 12, 3)).astype("float32")
    lv = LayerView(str(tmp_path / "broke"), probe=x[:4], budget={"time_share": 1.0}, class_views=False)
    with pytest.raises(RuntimeError, match="data pipeline broke"):
        model.fit(x, np.zeros(64, int), epochs=2, batch_size=16, verbose=0, callbacks=[lv, Boom()])
    lv.close()
    series, run = only_run(tmp_path / "broke")
    assert {k[1] for k, steps in layer_series(series, run).items() if k[0] == ACT and 0 in steps} == {
        "c1", "c2", "c3", "c4", "gap", "out"}
    plan = json_of(run_blob(series, run, metadata.KIND_PLAN)[0][0])
    assert plan["note"].startswith("images at the cheapest settings until an epoch has been timed")
    assert "first_look" not in plan["cost"]


def test_the_step_before_training_sizes_its_statistics_exactly_so_a_wide_model_still_gets_images(tmp_path):
    """5,000 channels compress to far fewer bytes than an estimate per channel allows: the step before
    training, which has no step written to measure, encodes them to know, and draws images in the room
    left under the byte budget, which its plan and the bytes written hold to."""
    from tb_layerview import stats

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
                              keras.layers.Flatten(name="flat"), keras.layers.Dense(2500, activation="relu", name="wide"),
                              keras.layers.Dense(2500, activation="relu", name="wide2"),
                              keras.layers.Dense(3, activation="softmax", name="out")])
    x = np.random.default_rng(0).random((16, 8, 8, 3)).astype("float32")
    budget = {"time_share": None, "bytes_per_epoch": 120_000}
    fit(model, x, np.zeros(16, int), tmp_path / "wide", probe=x[:4], epochs=1,
        loss="sparse_categorical_crossentropy", budget=budget, class_views=False)
    series, run = only_run(tmp_path / "wide")
    header, data = stats.decode(*run_blob(series, run, metadata.KIND_STATS)[0])
    assert data.shape[1] > 5000
    plan = json_of(run_blob(series, run, metadata.KIND_PLAN)[0][0])
    assert plan["images"] and plan["room_bytes"] > 0, plan
    assert 0 < plan["cost"]["image_bytes"] and plan["cost"]["bytes"] <= budget["bytes_per_epoch"], plan["cost"]
    assert {path for (kind, path), steps in layer_series(series, run).items() if kind == ACT and 0 in steps}


def test_a_layer_initialised_with_pretrained_embeddings_keeps_its_configuration_small(tmp_path):
    """An Embedding whose Constant initializer holds a 5,000 x 40 matrix (pretrained vectors, as tutorials
    load GloVe): the configuration describes the matrix instead of storing 200,000 numbers (it was a 4 MB
    record, built by Keras on the training thread), every other field is kept, and the model's own
    serialisation, outside LayerView, still holds the matrix."""
    matrix = np.random.default_rng(0).standard_normal((5000, 40)).astype("float32")
    tokens = keras.Input((6,), dtype="int32")
    h = keras.layers.Embedding(5000, 40, embeddings_initializer=keras.initializers.Constant(matrix),
                               trainable=False, name="glove")(tokens)
    model = keras.Model(tokens, keras.layers.Dense(2, activation="softmax", name="out")(
        keras.layers.GlobalAveragePooling1D(name="pool")(h)))
    x = np.random.default_rng(1).integers(0, 5000, (16, 6))
    fit(model, x, np.arange(16) % 2, tmp_path / "glove", probe=x[:2], epochs=1,
        loss="sparse_categorical_crossentropy", budget=None, class_views=False)
    series, run = only_run(tmp_path / "glove")
    blob = run_blob(series, run, metadata.KIND_CONFIG)[0][0]
    assert len(blob) < 50_000, len(blob)
    cfg = {l["path"]: l for l in json_of(blob)["layers"]}["glove"]["config"]
    assert cfg["embeddings_initializer"]["config"]["value"] == (
        "array of shape (5000, 40), float32: 200000 values, not stored"), cfg
    assert cfg["input_dim"] == 5000 and cfg["output_dim"] == 40 and cfg["trainable"] is False
    saved = keras.saving.serialize_keras_object(model.get_layer("glove"))
    value = saved["config"]["embeddings_initializer"]["config"]["value"]
    assert value["class_name"] == "__numpy__" and np.array_equal(np.asarray(value["config"]["value"]), matrix)


def test_user_arguments_override_the_budget(tmp_path):
    """An explicit max_channels is kept however tight the byte budget."""
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(12, 3, name="c1"),
                              keras.layers.Flatten(name="flat"), keras.layers.Dense(2, name="out")])
    x = np.ones((8, 8, 8, 3), np.float32)
    fit(model, x, np.zeros((8, 2)), tmp_path / "pin", probe=x[:2], epochs=1, max_channels=12,
        budget={"time_share": None, "bytes_per_epoch": 3000}, class_views=False)
    series, run = only_run(tmp_path / "pin")
    for blobs in run_blob(series, run, metadata.KIND_PLAN).values():
        assert json_of(blobs[0])["settings"]["channels"] == 12


def test_keras_applications_model_keeps_statistics_and_the_byte_budget(tmp_path):
    """MobileNetV2 (weights=None) on 32x32: every layer's statistics at every step, bytes within budget."""
    from tb_layerview import stats

    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=3)
    x = np.random.default_rng(0).random((32, 32, 32, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, 32)
    model.compile("adam", "sparse_categorical_crossentropy")
    lv = LayerView(str(tmp_path / "mnet"), probe=(x[:4], y[:4]), budget={"bytes_per_epoch": "400KB"})
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[lv])
    series, run = only_run(tmp_path / "mnet")
    n_layers = len([l for l in model.layers if type(l).__name__ != "InputLayer"])
    steps = run_blob(series, run, metadata.KIND_STATS)
    assert sorted(steps) == [0, 1, 2]
    for blobs in steps.values():
        header, data = stats.decode(*blobs)
        assert len(header["layers"]) == n_layers
        assert data.shape[1] == sum(l["channels"] for l in header["layers"])
    for blobs in run_blob(series, run, metadata.KIND_PLAN).values():
        assert json_of(blobs[0])["cost"]["bytes"] <= 1.5 * 400_000
    # Class views wait for a timed epoch: the configuration says so for each kind, attribution included.
    views = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])["class_views"]
    for kind in (metadata.KIND_MAXIMIZATION, metadata.KIND_ATTRIBUTION):
        assert views[kind] == {"available": True, "reason": None,
                               "note": "waits until an epoch has been timed (time budget)"}, views


def test_a_layers_pattern_that_matches_nothing_stops_fit_with_the_layer_list(tmp_path):
    """layers=["conv_1"] on a model without it: a ValueError quoting the pattern and listing the layers."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden"),
                              keras.layers.Dense(2, name="out")])
    x = np.ones((8, 4), np.float32)
    with pytest.raises(ValueError) as err:
        fit(model, x, np.zeros((8, 2)), tmp_path / "nomatch", probe=x[:2], layers=["conv_1"])
    assert str(err.value) == ("LayerView: layers='conv_1' matches no layer of model '%s'; its layers are:"
                              " hidden, out" % model.name)


def test_class_names_of_the_wrong_length_warn_once_with_both_numbers(tmp_path):
    """Two class names for a three-class output: one LayerViewWarning naming 2 and 3."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax", name="out")])
    x = np.ones((8, 4), np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(model, x, np.zeros(8, int), tmp_path / "names", probe=x[:2], class_names=["a", "b"],
            loss="sparse_categorical_crossentropy", epochs=2, class_views=False)
    msgs = [str(w.message) for w in caught if issubclass(w.category, LayerViewWarning)]
    assert msgs == ["tb_layerview: class_names has 2 names but the model's output has 3 classes"]


@pytest.mark.parametrize("non_finite", [False, True])
@pytest.mark.parametrize("channels_first", [False, True])
def test_eager_and_graph_statistics_equal_the_numpy_reference(non_finite, channels_first):
    """capture.eager_stats, graph_stats and host_stats give stats.channel_stats, NaN/Inf and
    channels_first included; and the reference's all-finite path gives its masked path."""
    from tb_layerview import capture, stats

    x = np.random.default_rng(3).normal(size=(4, 3, 5, 6)).astype("float32")
    x[:, 0] = 0.0
    if non_finite:
        x[1, 2, 3, 4], x[0, 1, 1, 1], x[2, 0, 0, 0] = np.nan, np.inf, -np.inf
    limits = stats.saturation_limits("tanh")
    ref = stats.channel_stats(x, channels_first=channels_first, limits=limits)
    axis = 1 if channels_first else -1
    flat = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])
    np.testing.assert_allclose(ref, stats._masked_stats(flat.astype(np.float64), limits), rtol=1e-6, atol=1e-7)
    assert capture.on_host(keras.ops.convert_to_tensor(x))  # the CPU backends of these tests
    for fn in [capture.eager_stats, capture.graph_stats, capture.host_stats]:
        got = capture.to_numpy(fn(keras.ops.convert_to_tensor(x), channels_first, limits))
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5, err_msg=str(fn))
    sums = capture.to_numpy(capture.graph_sums(keras.ops.convert_to_tensor(x), channels_first, limits))
    if non_finite:
        assert capture.sums_to_stats(sums) is None  # the compiled pass then recomputes with masks
    else:
        np.testing.assert_allclose(capture.sums_to_stats(sums), ref, rtol=1e-4, atol=1e-5)
    jobs = [(keras.ops.convert_to_tensor(x), channels_first, limits), (x[:1], channels_first, None)]
    many, errors = capture.many_host_stats(jobs)
    assert errors == [None, None]
    np.testing.assert_allclose(many[0], ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(many[1], stats.channel_stats(x[:1], channels_first), rtol=1e-4, atol=1e-5)


def test_statistics_run_on_one_blas_thread_which_the_thread_that_set_it_restores():
    """Inside capture.one_blas_thread numpy's BLAS has one thread, on the main
    thread or any other; when blocks of two threads overlap, the first one in
    restores the thread counts as it leaves, and they are never left at one."""
    import threading

    import threadpoolctl

    from tb_layerview import capture

    def blas_threads():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    assert before, "numpy's BLAS is not visible to threadpoolctl"
    seen = {}

    def alone():
        with capture.one_blas_thread():
            seen["alone"] = blas_threads()
        seen["after"] = blas_threads()

    t = threading.Thread(target=alone)
    t.start()
    t.join(30)
    assert seen == {"alone": [1] * len(before), "after": before}

    entered, release = threading.Event(), threading.Event()

    def overlapping():
        with capture.one_blas_thread():
            seen["overlapping"] = blas_threads()
            entered.set()
            release.wait(30)

    t = threading.Thread(target=overlapping)
    with capture.one_blas_thread():
        with capture.one_blas_thread():  # nested on one thread
            assert blas_threads() == [1] * len(before)
        t.start()
        assert entered.wait(30)
        assert seen["overlapping"] == [1] * len(before)
    assert blas_threads() == before  # restored by the first thread in, the other block still open
    release.set()
    t.join(30)
    assert blas_threads() == before
    many, _ = capture.many_host_stats([(np.ones((64, 3), np.float32), False, None)])
    assert many[0][0].tolist() == [1.0, 1.0, 1.0] and blas_threads() == before


def test_numpy_statistics_of_a_large_output_equal_the_float64_reference():
    """An output large enough for the folded column reductions (12800 positions of 6 channels:
    folded rows plus a remainder): extremes and counts equal a float64 reference exactly, and a
    channel at 1000 + N(0, 0.01) keeps its std (the sums are retaken around the mean)."""
    from tb_layerview import stats

    rng = np.random.default_rng(5)
    x = rng.normal(size=(8, 40, 40, 6)).astype("float32")
    x[..., 1] = np.maximum(x[..., 1], 0.0)             # rectified: zeros and positives
    x[..., 2] = np.tanh(4 * x[..., 2])                 # reaches tanh's saturation limits
    x[..., 3] = 1000.0 + 0.01 * x[..., 3]              # far from zero
    x[..., 4] = -np.abs(x[..., 4])                     # never positive
    x[3, 7, 9, 5], x[0, 0, 0, 5] = 50.0, -70.0         # extremes inside the folded rows
    x[7, 39, 39, 0] = 99.0                             # extreme in the remainder
    limits = stats.saturation_limits("tanh")
    got = stats.channel_stats(x, limits=limits)
    flat = x.reshape(-1, 6).astype(np.float64)
    assert flat.shape[0] > 2 * (stats._FOLD_WIDTH // 6) and flat.shape[0] % (stats._FOLD_WIDTH // 6)
    ref = stats._masked_stats(flat, limits)
    exact = [stats.STATS.index(k) for k in ("min", "max", "active", "zero", "sat", "nan", "inf")]
    np.testing.assert_array_equal(got[exact], ref[exact])
    np.testing.assert_allclose(got[:2], ref[:2], rtol=1e-4, atol=1e-6)
    assert got[stats.STATS.index("max"), 0] == 99.0 and got[stats.STATS.index("min"), 5] == -70.0
    np.testing.assert_allclose(got[stats.STATS.index("std"), 3], flat[:, 3].std(), rtol=1e-3)
    assert 0 < got[stats.STATS.index("sat"), 2] < 1 and got[stats.STATS.index("active"), 4] == 0
    np.testing.assert_array_equal(stats.column_reduce(np.add, np.ones((9000, 3), np.uint8), dtype=np.int32),
                                  [9000, 9000, 9000])


def test_statistics_records_store_byte_planes_and_read_back_exactly_in_every_layout():
    """encode stores the float32 values' bytes as 4 planes (smaller and faster to compress than
    the values in order). A small record is one zlib stream; a large one is a block per plane and
    statistic, the noisy low bytes of the means stored raw and the rest compressed. decode gives
    back exactly the float32 values from both, from version 2 records without planes, and names
    a plane count or a block that does not fit."""
    import zlib

    from tb_layerview import stats

    rng = np.random.default_rng(3)
    a = rng.normal(size=(len(stats.STATS), 5)) * 1e3
    b = rng.normal(size=(len(stats.STATS), 2))
    b[stats.STATS.index("nan")] = [1, 0]
    header_blob, data_blob = stats.encode([("conv/a", "relu", a), ("dense", None, b)])
    header, data = stats.decode(header_blob, data_blob)
    want = np.concatenate([a, b], axis=1).astype("<f4")
    np.testing.assert_array_equal(data, want)
    assert header["shuffle"] == 4 and header["compression"] == "zlib" and "blocks" not in header
    assert [l["offset"] for l in header["layers"]] == [0, 5]
    planes = np.frombuffer(zlib.decompress(data_blob), np.uint8).reshape(4, -1)
    np.testing.assert_array_equal(planes[3], want.reshape(-1).view(np.uint8)[3::4])  # sign and exponent
    assert stats.layer_slice(header, data, "dense")["nan"].tolist() == [1, 0]
    old = dict(header)
    del old["shuffle"]
    header2, data2 = stats.decode(json.dumps(old).encode(), zlib.compress(want.tobytes()))
    np.testing.assert_array_equal(data2, want)
    with pytest.raises(ValueError, match="shuffle 2 does not match dtype"):
        stats.decode(json.dumps(dict(header, shuffle=2)).encode(), data_blob)

    # 2000 channels (72 kB): blocks. Means are noise to their last bits; fractions of 8 probes are not.
    big = np.zeros((len(stats.STATS), 2000))
    big[stats.STATS.index("mean")] = rng.normal(size=2000)
    big[stats.STATS.index("active")] = rng.integers(0, 9, 2000) / 8
    header_blob, data_blob = stats.encode([("wide", "relu", big)])
    header, data = stats.decode(header_blob, data_blob)
    np.testing.assert_array_equal(data, big.astype("<f4"))
    blocks = header["blocks"]
    assert header["compression"] == "blocks" and len(blocks) == 4 * len(stats.STATS)
    assert sum(size for size, _ in blocks) == len(data_blob)
    mean_row = stats.STATS.index("mean")
    assert [blocks[plane * len(stats.STATS) + mean_row] for plane in (0, 1)] == [[2000, "raw"]] * 2
    assert all(kind == "zlib" and size < 2000 for size, kind in blocks[len(stats.STATS) * 3:])  # signs, exponents
    assert len(data_blob) < 0.5 * big.size * 4
    for broken, why in ((dict(header, blocks=blocks[:-1]), "the blocks hold"),
                        (dict(header, blocks=[[len(data_blob) + 1, "zlib"]]), "does not fit"),
                        (dict(header, blocks=[[size, "lz4"] for size, _ in blocks]), "does not fit")):
        with pytest.raises(ValueError, match="not a tb_layerview statistics record: .*" + why):
            stats.decode(json.dumps(broken).encode(), data_blob)


def test_compiled_sums_keep_the_variance_of_an_output_far_from_zero():
    """Values 1000 + N(0, 0.01): mean and std from capture.graph_sums match numpy in float64
    (a plain sum of squares in float32 would lose the std entirely)."""
    from tb_layerview import capture, stats

    x = (1000.0 + 0.01 * np.random.default_rng(0).normal(size=(8, 16, 16, 4))).astype("float32")
    got = capture.sums_to_stats(capture.to_numpy(capture.graph_sums(keras.ops.convert_to_tensor(x))))
    ref = stats.channel_stats(x)
    np.testing.assert_allclose(got[stats.STATS.index("std")], ref[stats.STATS.index("std")], rtol=1e-2)
    np.testing.assert_allclose(got[stats.STATS.index("mean")], ref[stats.STATS.index("mean")], rtol=1e-6)


@pytest.mark.parametrize("sums_in_graph", [False, True], ids=["host-statistics", "accelerator-sums"])
def test_a_compiled_pass_over_nan_outputs_counts_them_with_masks(sums_in_graph):
    """Both compiled forms (outputs reduced on the host; sums in the graph, as on an accelerator)
    give the numpy statistics, and over NaN outputs count the NaN values (the sums cannot, so
    that pass is redone eagerly) and keep the finite channels' means; PyTorch's eager pass too."""
    from tb_layerview import capture, stats, walk

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")])
    x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    pp = capture.ProbePass(model, walk.walk(model), x, {})
    pp._sums_in_graph = sums_in_graph
    if keras.backend.backend() == "torch":  # the PyTorch pass stays eager, and says why
        assert pp.compile() == "compiled capture is implemented for the TensorFlow and JAX backends"
        assert pp.mode == "eager"
    else:
        assert pp.compile() is None and pp.mode == "compiled"
    w, b = model.get_layer("d").get_weights()
    np.testing.assert_allclose(pp.run().stats["d"], stats.channel_stats(x @ w + b), rtol=1e-4, atol=1e-6)
    w[:, 1] = np.nan
    model.get_layer("d").set_weights([w, b])
    got = pp.run().stats["d"]
    assert list(got[stats.STATS.index("nan")]) == [0.0, 2.0, 0.0]
    np.testing.assert_allclose(got[stats.STATS.index("mean"), [0, 2]], (x @ w + b).mean(axis=0)[[0, 2]],
                               rtol=1e-5, atol=1e-6)  # float32 rounding: a mean near zero has no relative precision


@pytest.mark.parametrize("sums_in_graph", [False, True], ids=["host-statistics", "accelerator-sums"])
def test_a_compiled_pass_measures_an_output_without_values_on_the_host(sums_in_graph):
    """An output with an axis of 0 has nothing to sum in the graph (not even a first position): both
    compiled forms give it statistics of no channels, beside the other outputs' own, in model order."""
    from tb_layerview import capture, stats, walk

    inp = keras.Input((4,))
    same, _, _ = _WithEmpty(name="odd")(keras.layers.Dense(3, name="d")(inp))
    model = keras.Model(inp, keras.layers.Dense(1, name="out")(same))
    x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    pp = capture.ProbePass(model, walk.walk(model), x, {})
    pp._sums_in_graph = sums_in_graph
    if keras.backend.backend() != "torch":
        assert pp.compile() is None and pp.mode == "compiled"
    got = pp.run().stats
    assert list(got) == ["d", "odd", "odd:1", "odd:2", "out"] and got["odd:2"].shape == (len(stats.STATS), 0)
    w, b = model.get_layer("d").get_weights()
    np.testing.assert_allclose(got["odd"], stats.channel_stats(x @ w + b), rtol=1e-4, atol=1e-6)
    assert not pp.failed


def _direct_and_keras_passes(model, x):
    """Two probe passes over ``model``: with plain layers called directly, and with every layer called
    through Keras (as before directcalls), and the number of ``Layer.__call__`` calls each made."""
    from keras.src.layers.layer import Layer
    from tb_layerview import capture, walk

    entered = []
    original = Layer.__call__

    def counting(self, *args, **kwargs):
        entered.append(self.name)
        return original(self, *args, **kwargs)

    direct = capture.ProbePass(model, walk.walk(model), x, {})
    through_keras = capture.ProbePass(model, walk.walk(model), x, {})
    through_keras.direct_failed = "turned off by the test"
    Layer.__call__ = counting
    try:
        got = direct.run()
        direct_entered, entered[:] = list(entered), []
        ref = through_keras.run()
        keras_entered = list(entered)
    finally:
        Layer.__call__ = original
    assert list(got.stats) == list(ref.stats)
    for key in ref.stats:  # the same operations on the same tensors: equal to the bit
        assert np.array_equal(got.stats[key], ref.stats[key], equal_nan=True), key
        assert np.array_equal(capture.to_numpy(got.tensors[key]), capture.to_numpy(ref.tensors[key])), key
    assert direct.direct_failed is None
    return direct, direct_entered, keras_entered


def test_plain_layers_of_a_functional_model_run_without_keras_call_bookkeeping():
    """A residual block's built layers (convolutions, batch norm with moving statistics away from 0 and
    1, dropout, padding, pooling, an addition, a Sequential inside) run their ``call`` directly in the
    probe pass: ``Layer.__call__`` is entered for the two models only, against once per layer through
    Keras; the statistics and outputs are bit for bit Keras' own, inference ones (dropout off, moving
    statistics used)."""
    inp = keras.Input((8, 8, 3), name="image")
    x = keras.layers.ZeroPadding2D(1, name="pad")(inp)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    y = keras.layers.BatchNormalization(name="bn")(x)
    y = keras.layers.Activation("relu", name="relu")(y)
    y = keras.layers.Dropout(0.5, name="drop")(y)
    z = keras.layers.Add(name="add")([x, y])
    head = keras.Sequential([keras.layers.GlobalAveragePooling2D(name="gap"), keras.layers.Dense(3, name="dense")],
                            name="head")
    model = keras.Model(inp, head(keras.layers.MaxPooling2D(name="pool")(z)))
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.full(4, 0.5, np.float32))
    bn.moving_variance.assign(np.full(4, 4.0, np.float32))
    xs = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
    direct, direct_entered, keras_entered = _direct_and_keras_passes(model, xs)
    # The nested model only (and the model itself, except on JAX, whose stateless call runs its call).
    assert [n for n in direct_entered if n != model.name] == ["head"], direct_entered
    assert len([n for n in keras_entered if n != model.name]) == 10, keras_entered  # 7 layers, the Sequential and its 2
    assert (direct.layer_calls.direct, direct.layer_calls.keras) == (9, 1)  # the nested model's own call
    conv = capture_of(direct, "conv")
    want = (conv - 0.5) / np.sqrt(4.0 + bn.epsilon)
    np.testing.assert_allclose(capture_of(direct, "bn"), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(capture_of(direct, "drop"), np.maximum(want, 0), rtol=1e-5, atol=1e-5)


def test_convolutions_batch_norms_and_dense_layers_take_eager_shortcuts_with_the_same_outputs_to_the_bit():
    """On TensorFlow, eager, a convolution with a bias and a batch normalisation over the last axis
    run Keras' inference operations on their unreshaped vectors (Keras reshapes each through
    TensorFlow's slow eager fallback), an undilated 2D convolution as TensorFlow's ``Conv2D``
    operation itself, a dense layer on a matrix as TensorFlow's ``MatMul`` (LoRA's computed kernels
    too); the outputs are Keras' own, bit for bit. A convolution without a bias, a batch
    normalisation over another axis, a dense layer on a sequence and every layer on the other
    backends run Keras' own call."""
    rng = np.random.default_rng(5)
    seq = keras.Input((10, 3), name="seq")
    a = keras.layers.Conv1D(4, 3, activation="tanh", name="c1")(seq)
    a = keras.layers.BatchNormalization(center=False, scale=False, name="bn1")(a)
    img = keras.Input((8, 8, 3), name="img")
    b = keras.layers.Conv2D(5, 3, strides=2, padding="same", activation="relu", name="c2")(img)
    b = keras.layers.BatchNormalization(name="bn2")(b)
    b = keras.layers.Conv2D(6, 1, use_bias=False, name="nobias")(b)
    b = keras.layers.BatchNormalization(axis=1, name="bn_rows")(b)  # normalises rows: Keras' own call
    dil = keras.layers.Conv2D(2, 3, dilation_rate=2, name="dilated")(img)  # Keras' convolution, unreshaped bias
    tall = keras.layers.Conv2D(2, (2, 3), strides=(1, 2), name="tall")(img)
    doubled = _DoubledKernelConv(2, 3, name="doubled")(img)  # its own convolution: the shortcut keeps it
    vol = keras.Input((4, 4, 4, 2), name="vol")
    c = keras.layers.Conv3D(3, 2, name="c3")(vol)
    out = keras.layers.Concatenate(name="cat")([
        keras.layers.GlobalAveragePooling1D(name="p1")(a), keras.layers.GlobalAveragePooling2D(name="p2")(b),
        keras.layers.GlobalAveragePooling3D(name="p3")(c), keras.layers.GlobalAveragePooling2D(name="p4")(dil),
        keras.layers.GlobalAveragePooling2D(name="p5")(tall), keras.layers.GlobalAveragePooling2D(name="p6")(doubled)])
    lora_conv = keras.layers.Conv2D(2, 3, name="lora_conv")
    out = keras.layers.Concatenate(name="cat2")([out, keras.layers.Flatten(name="flat")(lora_conv(img))])
    d = keras.layers.Dense(4, activation="relu", name="d1")(out)
    d = keras.layers.Dense(3, use_bias=False, name="d_nobias")(d)
    lora_dense = keras.layers.Dense(2, activation="softmax", name="d_lora")
    seq_dense = keras.layers.Dense(3, name="d_seq")(seq)  # on a sequence: Keras' own call
    model = keras.Model([seq, img, vol], [lora_dense(d), seq_dense])
    lora_conv.enable_lora(2)
    lora_dense.enable_lora(1)
    for layer in (lora_conv, lora_dense):
        layer.lora_kernel_b.assign(rng.normal(size=layer.lora_kernel_b.shape).astype("float32"))
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(size=n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 3.0, n).astype("float32"))
            for w in (layer.gamma, layer.beta):
                if w is not None:
                    w.assign(rng.normal(size=n).astype("float32"))
        elif getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(size=layer.bias.shape).astype("float32"))
    xs = [rng.normal(size=(3,) + tuple(i.shape[1:])).astype("float32") for i in model.inputs]
    direct, _, _ = _direct_and_keras_passes(model, xs)
    # c1, bn1, c2, bn2, c3, dilated, tall, doubled, lora_conv, d1, d_nobias, d_lora
    want = 12 if keras.backend.backend() == "tensorflow" else 0
    assert direct.layer_calls.shortcut == want, direct.layer_calls.shortcut
    # The undilated 2D ones run TensorFlow's Conv2D operation directly.
    assert direct.layer_calls.conv2d == (3 if want else 0), direct.layer_calls.conv2d
    got = capture_of(direct, "bn2")
    conv = capture_of(direct, "c2")
    bn = model.get_layer("bn2")
    w = [keras.ops.convert_to_numpy(v) for v in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)]
    np.testing.assert_allclose(got, (conv - w[2]) / np.sqrt(w[3] + bn.epsilon) * w[0] + w[1], rtol=1e-5, atol=1e-5)
    assert direct.layer_calls.shortcut == want  # and again: nothing is left patched between passes
    assert not any("call" in layer.__dict__ for layer in model.layers)

    # A model of your own: Keras calls its layers, and hands the shortcuts what it would hand call.
    block = _ConvBlock()
    block(xs[1])
    block.bn.moving_variance.assign(rng.uniform(0.5, 3.0, 4).astype("float32"))
    sub, _, _ = _direct_and_keras_passes(block, xs[1])
    assert sub.layer_calls.shortcut == (2 if want else 0), sub.layer_calls.shortcut


class _DoubledKernelConv(keras.layers.Conv2D):
    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, kernel * 2.0)


class _ConvBlock(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(4, 3, name="sc")
        self.bn = keras.layers.BatchNormalization(name="sbn")

    def call(self, x, training=None):
        return self.bn(self.conv(x), training=training)


def capture_of(pp, key):
    """The output ``key`` of the last pass of ``pp``, as numpy."""
    from tb_layerview import capture

    return capture.to_numpy(pp.run().tensors[key])


class _Scaled(keras.layers.Layer):
    """A layer with a layer inside it: Keras calls it (the inner call reads ``training`` from the context)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = keras.layers.Dropout(0.5)

    def call(self, x, training=None):
        return self.inner(x) * 2.0


def test_layers_that_need_keras_call_bookkeeping_still_get_it():
    """Layers whose call ``__call__`` changes are left to Keras, and the pass gives Keras' own outputs:
    a mask made by an ``Embedding`` reaches the masked average after it (padding left out), a
    mixed-precision layer and the one after it get their inputs cast, a layer with a layer inside gets ``training`` through
    the call context, and a subclassed model runs as it always did."""
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    e = keras.layers.Embedding(10, 4, mask_zero=True, name="embed")(tokens)
    d = keras.layers.Dense(4, name="dense")(e)
    pooled = keras.layers.GlobalAveragePooling1D(name="mean")(d)
    half = keras.layers.Dense(3, dtype="mixed_float16", name="half")(pooled)
    out = _Scaled(name="scaled")(keras.layers.Activation("linear", dtype="float32", name="back")(half))
    model = keras.Model(tokens, out)
    ids = np.array([[1, 2, 0, 0, 0, 0], [3, 4, 5, 6, 7, 0]], np.int32)
    direct, direct_entered, _ = _direct_and_keras_passes(model, ids)
    # Keras: the layers given a mask, the mixed-precision one, the one given its float16 output, and the
    # one with a layer inside (and that inner layer).
    assert sorted(set(direct_entered) - {model.name}) == sorted({"dense", "mean", "half", "back", "scaled",
                                                                  model.get_layer("scaled").inner.name}), direct_entered
    assert (direct.layer_calls.direct, direct.layer_calls.keras) == (1, 5)  # the embedding runs directly
    vectors = model.get_layer("dense")(model.get_layer("embed")(ids))
    want = np.stack([capture_of(direct, "dense")[0, :2].mean(axis=0), capture_of(direct, "dense")[1, :5].mean(axis=0)])
    np.testing.assert_allclose(capture_of(direct, "mean"), want, rtol=1e-6)
    assert not np.allclose(want, keras.ops.convert_to_numpy(vectors).mean(axis=1))  # the padding would change it

    sub = _Private()
    xs = np.random.default_rng(0).random((2, 6, 6, 2)).astype("float32")
    sub(xs)
    plain_sub, _, _ = _direct_and_keras_passes(sub, xs)
    assert plain_sub.layer_calls.direct == 0 and plain_sub.layer_calls.keras == 0  # no graph to run


def test_a_layer_quantized_between_two_passes_runs_its_quantized_call():
    """``model.quantize()`` between two epochs: the layers found plain before go through Keras, which
    runs their ``quantized_call``, and the pass records the quantized outputs."""
    import warnings

    from tb_layerview import capture, walk

    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(8, name="dense")(inputs))
    x = np.random.default_rng(3).normal(size=(4, 6)).astype("float32")
    pp = capture.ProbePass(model, walk.walk(model), x, {})
    before = capture.to_numpy(pp.run().tensors["dense"])
    assert (pp.layer_calls.direct, pp.layer_calls.keras) == (1, 0)
    with warnings.catch_warnings():  # "Layer InputLayer does not have a `quantize` method"
        warnings.simplefilter("ignore")
        model.quantize("int8")
    got = capture.to_numpy(pp.run().tensors["dense"])
    assert (pp.layer_calls.direct, pp.layer_calls.keras) == (0, 1)
    want = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, before)  # int8 weights give other outputs


def test_a_pass_whose_direct_calls_fail_runs_through_keras_from_then_on(monkeypatch):
    """Anything that goes wrong in a pass with direct calls (here a check that raises) costs nothing
    but that attempt: the pass runs again through Keras, says why, and later passes stay there. A
    probe the model cannot take fails both ways: Keras' error is raised, and direct calls stay."""
    from tb_layerview import capture, directcalls, stats, walk

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")])
    x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    pp = capture.ProbePass(model, walk.walk(model), x, {})

    def broken(*args):
        raise RuntimeError("a Keras this module does not know")

    monkeypatch.setattr(directcalls, "_arguments_ready", broken)
    w, b = model.get_layer("d").get_weights()
    for _ in range(2):
        np.testing.assert_allclose(pp.run().stats["d"], stats.channel_stats(x @ w + b), rtol=1e-4, atol=1e-6)
        # (Through __call__ Keras puts a header of its own before the cause; JAX's stateless call does not.)
        assert pp.direct_failed in ("RuntimeError: Exception encountered when calling Sequential.call(): a Keras"
                                    " this module does not know",
                                    "RuntimeError: a Keras this module does not know"), pp.direct_failed
        assert (pp.layer_calls.direct, pp.layer_calls.keras) == (0, 0)  # nothing counted: no direct calls
    monkeypatch.undo()
    pp.run()
    assert pp.layer_calls.direct == 0

    # A pass that fails through Keras too is the model's failure: Keras' error, and direct calls stay.
    fresh = capture.ProbePass(model, walk.walk(model), x[:, :3], {})
    with pytest.raises(Exception) as failed:
        fresh.run()
    assert "incompatible" in str(failed.value) or "shape" in str(failed.value).lower(), failed.value
    assert fresh.direct_failed is None
    fresh._inputs = x
    fresh.run()
    assert (fresh.layer_calls.direct, fresh.layer_calls.keras) == (1, 0)


def test_a_kernel_snapshot_keeps_the_value_it_was_taken_at():
    """capture.snapshot copies a variable once: an update afterwards (as the next training step
    makes, in place on PyTorch) leaves the copy the writer thread draws unchanged."""
    from tb_layerview import capture

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")])
    kernel = model.get_layer("d").kernel
    snap = capture.snapshot(kernel)
    before = snap.copy()
    kernel.assign(keras.ops.ones((4, 3)) * 5.0)
    np.testing.assert_array_equal(snap, before)
    assert snap.flags.writeable and isinstance(snap, np.ndarray)
    np.testing.assert_array_equal(capture.snapshot(kernel), np.full((4, 3), 5.0, np.float32))


def test_first_values_are_a_copy_of_a_variables_leading_values_in_c_order():
    """capture.first_values, which the weight fingerprint reads at every logged step: the first
    values in C order, copied, so an in-place update afterwards leaves them as they were; a
    variable with fewer values gives all of them."""
    from tb_layerview import capture

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")])
    layer = model.get_layer("d")
    layer.kernel.assign(np.arange(12, dtype=np.float32).reshape(4, 3))
    got = capture.first_values(layer.kernel)
    np.testing.assert_array_equal(got, np.arange(8, dtype=np.float32))
    layer.kernel.assign(keras.ops.zeros((4, 3)))
    np.testing.assert_array_equal(got, np.arange(8, dtype=np.float32))
    np.testing.assert_array_equal(capture.first_values(layer.kernel), np.zeros(8, np.float32))
    np.testing.assert_array_equal(capture.first_values(layer.bias, count=8), np.zeros(3, np.float32))


def test_the_compiled_pass_on_a_cpu_skips_graph_rewrites_and_training_keeps_its_options():
    """Only calls inside capture._without_graph_rewrites run without Grappler; the thread's
    options are restored after it, also when the block raises. (TensorFlow's eager context:
    the same whichever backend Keras runs on.)"""
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager import context
    from tb_layerview import capture

    def rewrites_off():
        config = config_pb2.ConfigProto()
        config.ParseFromString(context.context().function_call_options.config_proto_serialized)
        return config.graph_options.rewrite_options.disable_meta_optimizer

    before = context.context().function_call_options.config_proto_serialized
    with capture._without_graph_rewrites():
        assert rewrites_off()
    assert not rewrites_off() and context.context().function_call_options.config_proto_serialized == before
    with pytest.raises(KeyError):
        with capture._without_graph_rewrites():
            raise KeyError("x")
    assert not rewrites_off()


def test_kernels_of_frozen_layers_are_drawn_once(tmp_path):
    """A frozen conv layer's filters are written at the first step only; its activations every step."""
    model = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Conv2D(2, 3, name="frozen"),
                              keras.layers.Conv2D(2, 3, name="trained"), keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(2, name="out")])
    model.get_layer("frozen").trainable = False
    x = np.ones((8, 6, 6, 3), np.float32)
    fit(model, x, np.zeros((8, 2)), tmp_path / "frozen", probe=x[:2], epochs=3)
    series, run = only_run(tmp_path / "frozen")
    got = layer_series(series, run)
    assert sorted(got[(FIL, "frozen")]) == [0]
    assert sorted(got[(FIL, "trained")]) == [0, 1, 2, 3]
    assert sorted(got[(ACT, "frozen")]) == [0, 1, 2, 3]
    plan = json_of(run_blob(series, run, metadata.KIND_PLAN)[2][0])
    assert "frozen" in plan["images"] and "frozen" not in plan["filters"]


# ---------------------------------------------------------------------------
# Training health from the statistics.


def test_a_planted_dead_relu_layer_is_flagged_from_its_first_epoch_and_in_the_scalars(tmp_path):
    """A ReLU conv with a large negative bias: every channel dead at every step, in the stats and as a
    layerview_health/dead scalar read back through TensorBoard's data provider; a healthy layer is not."""
    from tensorboard import context as tb_context

    from tb_layerview import stats
    from helpers import provider_for

    model = keras.Sequential([
        keras.Input((6, 6, 2)),
        keras.layers.Conv2D(4, 3, activation="relu", bias_initializer=keras.initializers.Constant(-100.0),
                            name="dead_conv"),
        keras.layers.Conv2D(3, 1, activation="relu", name="alive", bias_initializer="ones"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(2, activation="sigmoid", name="out"),
    ])
    x = np.random.default_rng(0).random((16, 6, 6, 2)).astype("float32")
    fit(model, x, np.zeros((16, 2)), tmp_path / "dead", probe=x[:4], epochs=2)
    series, run = only_run(tmp_path / "dead")
    for step, blobs in run_blob(series, run, metadata.KIND_STATS).items():
        header, data = stats.decode(*blobs)
        dead = stats.health("relu", np.stack([stats.layer_slice(header, data, "dead_conv")[k] for k in stats.STATS]))
        alive = stats.health("relu", np.stack([stats.layer_slice(header, data, "alive")[k] for k in stats.STATS]))
        assert (dead["dead"], alive["dead"]) == (1.0, 0.0), step
    provider, _ = provider_for(str(tmp_path))
    ctx = tb_context.RequestContext()
    scalars = provider.list_scalars(ctx, experiment_id="", plugin_name="scalars")[run]
    assert {"layerview_health/dead/dead_conv", "layerview_health/dead/alive",
            "layerview_health/saturated/out"} <= set(scalars)
    read = provider.read_scalars(ctx, experiment_id="", plugin_name="scalars", downsample=100,
                                 run_tag_filter=None)[run]["layerview_health/dead/dead_conv"]
    assert [(d.step, d.value) for d in read] == [(0, 1.0), (1, 1.0), (2, 1.0)]


def test_a_sigmoid_layer_driven_into_saturation_is_flagged():
    """Inputs of +-50 through a sigmoid: every unit saturated; a tanh at 0 is not."""
    from tb_layerview import stats

    x = np.where(np.random.default_rng(0).random((8, 5)) > 0.5, 50.0, -50.0)
    y = 1 / (1 + np.exp(-x))
    sat = stats.health("sigmoid", stats.channel_stats(y, limits=stats.saturation_limits("sigmoid")))
    assert sat["saturated"] == 1.0 and sat["dead"] is None
    calm = stats.health("tanh", stats.channel_stats(np.zeros((8, 5)), limits=stats.saturation_limits("tanh")))
    assert calm["saturated"] == 0.0


def test_a_model_diverging_to_nan_shows_the_first_nan_epoch_of_each_layer(tmp_path):
    """SGD with a huge learning rate: the Health answer gives each layer the first step with NaN/Inf
    units, none at step 0, and training goes on to the end with warnings only."""
    from helpers import wsgi_client

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="d1"),
                              keras.layers.Dense(8, activation="relu", name="d2"), keras.layers.Dense(1, name="out")])
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32") * 10
    y = (x.sum(axis=1, keepdims=True) ** 3).astype("float32")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        fit(model, x, y, tmp_path / "nan", probe=x[:4], epochs=6, optimizer=keras.optimizers.SGD(1e3),
            class_views=False)
    health = json.loads(wsgi_client(str(tmp_path)).get("/data/plugin/tb_layerview/health?run=nan").get_data())
    assert health["steps"] == list(range(7))
    since = {l["path"]: l["first"].get("nonfinite") for l in health["layers"]}
    assert since["out"] is not None and since["out"] > 0, since
    series, run = only_run(tmp_path / "nan")
    from tb_layerview import stats

    for path, first in since.items():
        bad = [step for step, blobs in sorted(run_blob(series, run, metadata.KIND_STATS).items())
               if stats.health(None, np.stack([stats.layer_slice(*stats.decode(*blobs), path)[k]
                                                for k in stats.STATS]))["nan"]
               + stats.health(None, np.stack([stats.layer_slice(*stats.decode(*blobs), path)[k]
                                               for k in stats.STATS]))["inf"] > 0]
        assert first == (bad[0] if bad else None), (path, first, bad)


def test_a_sigmoid_layer_of_a_model_driven_into_saturation_is_flagged(tmp_path):
    """A Dense sigmoid layer with weights of 50 on inputs of +-1: all its units saturated, from step 0."""
    from helpers import wsgi_client

    model = keras.Sequential([keras.Input((3,)),
                              keras.layers.Dense(5, activation="sigmoid", name="sat",
                                                 kernel_initializer=keras.initializers.Constant(50.0)),
                              keras.layers.Dense(1, name="out")])
    x = np.sign(np.random.default_rng(0).normal(size=(16, 3))).astype("float32")
    fit(model, x, np.zeros((16, 1)), tmp_path / "sat", probe=x[:4], epochs=1, optimizer=keras.optimizers.SGD(0.0),
        class_views=False)
    health = json.loads(wsgi_client(str(tmp_path)).get("/data/plugin/tb_layerview/health?run=sat").get_data())
    sat = next(l for l in health["layers"] if l["path"] == "sat")
    assert (sat["activation"], sat["saturated"], sat["since"].get("saturated")) == ("sigmoid", 5, 0)


# ---------------------------------------------------------------------------
# Every model kind of the README, on whichever backend Keras runs
# (tests/test_backends.py runs this module on JAX and PyTorch too).


class SubclassedCNN(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed")
        self.conv = keras.layers.Conv2D(3, 3, activation="relu", name="conv")
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
        self.out = keras.layers.Dense(3, activation="softmax", name="out")

    def call(self, x):
        return self.out(self.pool(self.conv(x)))


def _zoo():
    """(name, model builder, x, probe, class views expected) for each model kind the README lists."""
    rng = np.random.default_rng(7)
    img = rng.random((32, 8, 8, 3), dtype=np.float32)
    seq = rng.random((32, 6, 4), dtype=np.float32)

    def cnn():
        return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
                                 keras.layers.BatchNormalization(name="bn"), keras.layers.Flatten(name="flat"),
                                 keras.layers.Dense(3, activation="softmax", name="out")])

    def nested():
        inner = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, name="conv"),
                                  keras.layers.GlobalAveragePooling2D(name="gap")], name="encoder")
        inp = keras.Input((8, 8, 3))
        return keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="out")(inner(inp)))

    def multi_input():
        a, b = keras.Input((8, 8, 3), name="image"), keras.Input((4,), name="side")
        h = keras.layers.Flatten(name="flat")(keras.layers.Conv2D(2, 3, name="conv")(a))
        merged = keras.layers.Concatenate(name="cat")([h, keras.layers.Dense(3, name="side_dense")(b)])
        return keras.Model([a, b], keras.layers.Dense(3, activation="softmax", name="out")(merged))

    def rnn():
        return keras.Sequential([keras.Input((6, 4)), keras.layers.LSTM(5, return_sequences=True, name="lstm"),
                                 keras.layers.GRU(4, name="gru"),
                                 keras.layers.Dense(3, activation="softmax", name="out")])

    def mixed():
        return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
                                 keras.layers.GlobalAveragePooling2D(name="gap"),
                                 keras.layers.Dense(3, activation="softmax", dtype="float32", name="out")])

    side = rng.random((32, 4), dtype=np.float32)
    return [("cnn", cnn, img, img[:2], True, None), ("nested", nested, img, img[:2], True, None),
            ("multi_input", multi_input, [img, side], [img[:2], side[:2]], False, None),
            ("subclassed", SubclassedCNN, img, img[:2], True, None), ("rnn", rnn, seq, seq[:2], True, None),
            ("mixed_precision", mixed, img, img[:2], True, "mixed_float16")]


@pytest.mark.parametrize("name", [z[0] for z in _zoo()])
def test_every_model_kind_logs_every_layer_at_every_epoch_with_class_views(tmp_path, name):
    """Each model kind of the README logs every layer's activations and statistics at every epoch, and
    (single float input) activation maximisation and attribution maps, on the backend Keras runs."""
    from tb_layerview import stats, walk

    _, build, x, probe, class_views, policy = next(z for z in _zoo() if z[0] == name)
    if policy:
        keras.mixed_precision.set_global_policy(policy)
    try:
        model = build()
        y = np.random.default_rng(8).integers(0, 3, 32)
        fit(model, x, y, tmp_path / name, epochs=2, loss="sparse_categorical_crossentropy", probe=probe,
            maximize_every_n_epochs=1, maximize_steps=4)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    series, run = only_run(tmp_path / name)
    got = layer_series(series, run)
    paths = [e.path for e in walk.walk(model) if not e.container]
    assert paths, "the walk found no layers in %s" % name
    for path in paths:
        assert sorted(got.get((ACT, path), {})) == [0, 1, 2], (keras.backend.backend(), name, path)
    for step, blobs in run_blob(series, run, metadata.KIND_STATS).items():
        header, _ = stats.decode(*blobs)
        assert set(paths) <= {l["path"] for l in header["layers"]}, (step, header["layers"])
    assert sorted(run_blob(series, run, metadata.KIND_STATS)) == [0, 1, 2]
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    views = config["class_views"]
    if class_views:
        assert sorted(run_blob(series, run, metadata.KIND_MAXIMIZATION)) == [0, 1, 2], views
        assert sorted(run_blob(series, run, metadata.KIND_ATTRIBUTION)) == [0, 1, 2], views
        images = json_of(run_blob(series, run, metadata.KIND_MAXIMIZATION)[2][0])
        assert len(images["scores"]) == 3 and all(np.isfinite(images["scores"]))
    else:
        assert views["maximization"]["available"] is False and "single-input" in views["maximization"]["reason"]


def test_garbage_collector_waits_during_capture_and_is_restored_as_found():
    """capture.gc_paused: the collector is off inside (nested blocks and an exception
    included) and back as it was after: enabled when it was, still disabled when the
    user had disabled it."""
    import gc

    from tb_layerview import capture

    assert gc.isenabled()
    with capture.gc_paused():
        assert not gc.isenabled()
        with capture.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block still runs
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with capture.gc_paused():
            raise RuntimeError("a failing pass")
    assert gc.isenabled()
    gc.disable()
    try:
        with capture.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # not turned on behind the user's back
    finally:
        gc.enable()


def test_probe_passes_run_with_the_garbage_collector_paused_and_fit_leaves_it_on(tmp_path):
    """In a real fit every probe pass (eager, or its one trace where it is compiled) reaches
    the layers with the collector paused, training reaches them with it on, and after the fit
    (and after a fit whose probe does not fit the model) it is on again."""
    import gc
    import sys

    seen = []

    def in_probe_pass():
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_name == "recording_call":  # capture's wrapper of each layer's call
                return True
            frame = frame.f_back
        return False

    class Watch(keras.layers.Layer):
        def call(self, x, training=None):
            seen.append((in_probe_pass(), bool(training), gc.isenabled()))
            return x

    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, name="d1"), Watch(name="watch"),
                              keras.layers.Dense(2, name="out")])
    x = np.random.default_rng(0).normal(size=(32, 6)).astype("float32")
    y = np.zeros((32, 2), "float32")
    seen.clear()
    fit(model, x, y, tmp_path / "run", epochs=2, probe=x[:4], class_views=False)
    in_pass = [enabled for from_pass, _, enabled in seen if from_pass]
    assert in_pass and not any(in_pass)
    assert all(enabled for from_pass, training, enabled in seen if training and not from_pass)
    assert gc.isenabled()
    with pytest.raises(ValueError, match="probe does not fit"):
        fit(model, x, y, tmp_path / "bad", epochs=1, probe=np.zeros((4, 5), "float32"))
    assert gc.isenabled()


class _RunningSum(keras.layers.Layer):
    """Adds to its input the running sum of the batch means of every call so far: a stateful layer, as
    a stateful RNN is, whose output depends on all the calls before it."""

    stateful = True

    def build(self, shape):
        self.states = [self.add_weight(shape=(shape[-1],), initializer="zeros", trainable=False, name="total")]

    def call(self, x):
        total = self.states[0] + keras.ops.mean(x, axis=0)
        self.states[0].assign(total)
        return x + total


class SummingModel(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden, self.sum = keras.layers.Dense(3, name="hidden"), _RunningSum(name="sum")
        self.out = keras.layers.Dense(1, name="out")

    def call(self, x):
        return self.out(self.sum(self.hidden(x)))


def test_stateful_layers_train_as_without_layerview(tmp_path):
    """The probe pass and the class views call the model; through a stateful layer those calls used
    to hand training the state the probe left (a stateful LSTM's loss moved from 0.4120 to 0.4093 on
    TensorFlow). They now leave every stateful layer's state as they found it: the same losses and
    final state with and without LayerView."""
    rng = np.random.default_rng(0)

    def run(build, x, y, with_view, batch):
        keras.utils.set_random_seed(3)
        model = build()
        model.compile("sgd", "mse")
        callbacks = [LayerView(str(tmp_path / build.__name__), probe=x[:batch], budget=None)] if with_view else []
        history = model.fit(x, y, batch_size=batch, epochs=2, shuffle=False, verbose=0, callbacks=callbacks)
        state = [keras.ops.convert_to_numpy(v) for l in model._flatten_layers() if getattr(l, "stateful", False)
                 for v in l.states]
        return history.history["loss"], state

    def summing():
        inp = keras.Input((3,))
        return keras.Model(inp, keras.layers.Dense(1, name="out")(_RunningSum(name="sum")(
            keras.layers.Dense(3, name="hidden")(inp))))

    def subclassed():
        # Never called before fit: Keras builds it at its first train step on TensorFlow, and LayerView,
        # which walks it before that, used to build it by calling it on the probe.
        return SummingModel()

    x, y = rng.random((32, 3), dtype=np.float32), rng.random((32, 1), dtype=np.float32)
    builds = [(summing, x, y, 8), (subclassed, x, y, 8)]
    if keras.backend.backend() != "torch":
        # Keras cannot train a stateful LSTM on PyTorch ("modified by an inplace operation"), with or
        # without LayerView.
        def lstm():
            inp = keras.Input((5, 2), batch_size=8)
            return keras.Model(inp, keras.layers.Dense(1, name="out")(keras.layers.LSTM(4, stateful=True)(inp)))

        builds.append((lstm, rng.random((32, 5, 2), dtype=np.float32), y, 8))
    for build, xs, ys, batch in builds:
        (loss_off, state_off), (loss_on, state_on) = (run(build, xs, ys, v, batch) for v in (False, True))
        assert loss_on == loss_off, (build.__name__, loss_on, loss_off)
        assert len(state_on) == len(state_off) > 0
        for a, b in zip(state_on, state_off):
            np.testing.assert_array_equal(a, b)


class _ValueInitialisedSum(_RunningSum):
    """Creates its state from a value, not an initializer: Keras allows that only outside a
    keras.StatelessScope."""

    def build(self, shape):
        self.states = [keras.Variable(np.zeros(shape[-1], np.float32), trainable=False, name="total")]


def test_a_stateful_model_that_only_a_plain_call_can_build_warns_that_the_probe_set_its_state(tmp_path):
    """LayerView builds a never-called model by a call of the probe in a keras.StatelessScope, which
    leaves every variable at its initial value. A layer creating a variable from a value cannot be built
    there; the plain call that builds it instead leaves the stateful layers' state to training: that
    is said, naming the model, not silent."""
    x = np.random.default_rng(0).random((16, 3)).astype("float32")
    model = SummingModel()
    model.sum = _ValueInitialisedSum(name="sum")
    view = LayerView(str(tmp_path / "run"), probe=x[:4], class_views=False, budget=None)
    view.set_model(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        view.log(0)
    view.close()
    messages = [str(w.message) for w in caught if issubclass(w.category, LayerViewWarning)]
    assert any("model %r was built by calling it on the probe" % model.name in m and "stateful" in m
               for m in messages), messages
    assert keras.ops.convert_to_numpy(model.sum.states[0]).any()  # what the warning is about


def test_a_sequential_model_without_input_keeps_no_trace_of_the_probes_batch_size(tmp_path):
    """A Sequential model without an Input is built by its first call and keeps that call's input
    shape: Keras' fit gives it the first batch's (16). On TensorFlow LayerView builds it before Keras
    does: from the probe, its summary and saved file said batch 3. It is now built for any batch."""
    x = np.random.default_rng(0).random((32, 4)).astype("float32")

    def input_shape(with_view):
        model = keras.Sequential([keras.layers.Dense(8, activation="relu", name="d1"), keras.layers.Dense(2)])
        model.compile("sgd", "mse")
        callbacks = [LayerView(str(tmp_path / str(with_view)), probe=x[:3], budget=None)] if with_view else []
        model.fit(x, x[:, :2], epochs=1, batch_size=16, verbose=0, callbacks=callbacks)
        return tuple(model.inputs[0].shape)

    with_view, without = input_shape(True), input_shape(False)
    assert without == (16, 4)
    assert with_view in ((None, 4), without), with_view


def _steps_written(log_dir):
    """[(step, sorted tags)] of every event with a summary in ``log_dir``'s files, in file order."""
    from tensorboard.backend.event_processing import event_file_loader

    return [(e.step, sorted(v.tag for v in e.summary.value)) for f in sorted(os.listdir(log_dir))
            for e in event_file_loader.EventFileLoader(os.path.join(log_dir, f)).Load() if e.HasField("summary")]


def test_a_loop_of_one_epoch_fits_logs_each_epoch_once(tmp_path, monkeypatch):
    """`for e in range(n): fit(initial_epoch=e, epochs=e + 1, callbacks=[view])` hands each fit the
    model the last fit logged at its end. Each fit used to log that state again at its start, with
    the configuration and the probes: two probe passes per epoch, and every step written twice. Now
    each step is written once, and the configuration once; a fit at another epoch than the last one
    ended at still logs its start. A fit that starts from changed weights at a step the log holds
    does not write that step again (TensorBoard's two loaders would each keep another of the two),
    and says so."""
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 6), dtype=np.float32), rng.integers(0, 3, 32)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu", name="hidden"),
                              keras.layers.Dense(3, activation="softmax", name="out")])
    model.compile("adam", "sparse_categorical_crossentropy")
    log_dir = str(tmp_path / "loop")
    view = LayerView(log_dir, probe=(x[:4], y[:4]), budget=None)
    from tb_layerview import writer as writer_lib

    scanned, scan = [], writer_lib.logged_steps
    monkeypatch.setattr(writer_lib, "logged_steps", lambda d, names: scanned.extend(names) or scan(d, names))
    for e in range(3):
        model.fit(x, y, initial_epoch=e, epochs=e + 1, verbose=0, callbacks=[view])
    written = _steps_written(log_dir)
    steps = [step for step, tags in written if any(t.startswith("layerview/activations/") for t in tags)]
    assert steps == [0, 1, 2, 3], written
    assert [step for step, tags in written if "layerview/run/config" in tags] == [0]

    # Changed weights between fits: step 3 is held, so the new start is not written, and a warning says so.
    model.get_layer("hidden").set_weights([w + 1.0 for w in model.get_layer("hidden").get_weights()])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, initial_epoch=3, epochs=4, verbose=0, callbacks=[view])
    [held] = [str(w.message) for w in caught if issubclass(w.category, LayerViewWarning)]
    assert "the weights changed after step 3 was logged" in held and "already holds step 3" in held, held
    # A fit at another epoch than the last one ended at, from the same weights: its start is logged.
    model.fit(x, y, initial_epoch=10, epochs=11, verbose=0, callbacks=[view])

    class Restore(keras.callbacks.Callback):  # as EarlyStopping(restore_best_weights=True) does
        def on_train_end(self, logs=None):
            self.model.get_layer("hidden").set_weights(self.kept)

    restore = Restore()
    restore.kept = model.get_layer("hidden").get_weights()
    model.fit(x, y, initial_epoch=11, epochs=12, verbose=0, callbacks=[restore, view])
    # Weights changed after the last logged step, by a callback whose end ran before LayerView's.
    model.fit(x, y, initial_epoch=12, epochs=13, verbose=0, callbacks=[view])
    steps = [step for step, tags in _steps_written(log_dir) if any(t.startswith("layerview/activations/") for t in tags)]
    assert steps == [0, 1, 2, 3, 4, 10, 11, 12, 13], steps
    assert scanned == []  # the loop's own files are known, not read again at each fit


def test_unfreezing_layers_between_two_fits_is_not_taken_for_changed_weights(tmp_path):
    """Fine-tuning: fit a head on a frozen base, unfreeze the base, compile again and continue with
    initial_epoch. The weights did not change between the two fits, only which of them train. The
    second fit used to warn that "the weights changed after step 2 was logged", because the
    fingerprint read the trainable variables and their list had grown. Changed weights still warn."""
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 6), dtype=np.float32), rng.integers(0, 3, 32)
    base = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu", name="b1"),
                             keras.layers.Dense(8, activation="relu", name="b2")], name="base")
    inp = keras.Input((6,))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="head")(base(inp)))
    base.trainable = False
    model.compile("adam", "sparse_categorical_crossentropy")
    view = LayerView(str(tmp_path / "run"), probe=(x[:4], y[:4]), class_views=False, budget=None)

    def caught_fit(**kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(x, y, verbose=0, callbacks=[view], **kwargs)
        return [str(w.message) for w in caught if issubclass(w.category, LayerViewWarning)]

    assert caught_fit(epochs=2) == []
    base.trainable = True
    model.compile(keras.optimizers.Adam(1e-5), "sparse_categorical_crossentropy")
    assert caught_fit(initial_epoch=2, epochs=3) == []
    model.get_layer("base").get_layer("b2").set_weights(
        [w + 1.0 for w in model.get_layer("base").get_layer("b2").get_weights()])
    [held] = caught_fit(initial_epoch=3, epochs=4)
    assert "the weights changed after step 3 was logged" in held, held
    steps = [step for step, tags in _steps_written(str(tmp_path / "run"))
             if any(t.startswith("layerview/activations/") for t in tags)]
    assert steps == [0, 1, 2, 3, 4], steps


def _resumable_model():
    model = keras.Sequential([keras.Input((6,), name="features"),
                              keras.layers.Dense(5, activation="relu", name="hidden"),
                              keras.layers.Dense(3, activation="softmax", name="out")])
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def test_a_fit_resumed_by_backup_and_restore_logs_the_restored_state_and_no_step_twice(tmp_path):
    """A fit killed after epoch 3, rerun with BackupAndRestore listed after LayerView: Keras restores the
    epoch-3 weights and starts at epoch 3 in BackupAndRestore's on_train_begin, which runs after LayerView's.
    LayerView used to capture the state before training in its own on_train_begin, and logged the
    rerun's fresh weights as step 3. Now step 3 holds the restored state, and every step is written once."""
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 6), dtype=np.float32), rng.integers(0, 3, 32)
    log_dir, backup = str(tmp_path / "run"), str(tmp_path / "backup")
    kept = {}

    class Killed(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                kept["weights"] = self.model.get_layer("hidden").get_weights()
                raise RuntimeError("killed")

    def run(*extra):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _resumable_model().fit(x, y, epochs=6, verbose=0, callbacks=[
                LayerView(log_dir, probe=(x[:4], y[:4]), every_n_epochs=2, budget=None),
                keras.callbacks.BackupAndRestore(backup), *extra])
        return [str(w.message) for w in caught if issubclass(w.category, LayerViewWarning)]

    with pytest.raises(RuntimeError, match="killed"):
        run(Killed())
    assert run() == []
    steps = [step for step, tags in _steps_written(log_dir) if "layerview/run/stats" in tags]
    assert steps == [0, 2, 3, 4, 6], steps
    series, name = only_run(tmp_path / "run")
    w, b = kept["weights"]
    expected = np.maximum(x[:4] @ w + b, 0).mean(axis=0)
    np.testing.assert_allclose(_stats_by_path(series, name, 3)["hidden"]["mean"], expected, rtol=1e-5, atol=1e-6)


def test_a_fit_resumed_at_a_step_the_log_holds_writes_no_step_twice_and_both_loaders_agree(tmp_path):
    """Training saved after 3 epochs and continued in a new process with initial_epoch=3 and a new
    LayerView: step 3 is already in the log. It used to be written again, and TensorBoard's Python
    loader kept the first of the two while the Rust one kept the second. Now no step is written twice,
    the configuration of the resumed fit goes with its first new step, and nothing warns."""
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 6), dtype=np.float32), rng.integers(0, 3, 32)
    log_dir = str(tmp_path / "run")
    model = _resumable_model()
    model.fit(x, y, epochs=3, verbose=0, callbacks=[LayerView(log_dir, probe=(x[:4], y[:4]), budget=None)])
    weights = model.get_weights()
    again = _resumable_model()
    again.set_weights(weights)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again.fit(x, y, initial_epoch=3, epochs=5, verbose=0,
                  callbacks=[LayerView(log_dir, probe=(x[:4], y[:4]), budget=None)])
    assert [str(w.message) for w in caught if issubclass(w.category, LayerViewWarning)] == []
    written = _steps_written(log_dir)
    assert [step for step, tags in written if "layerview/run/stats" in tags] == [0, 1, 2, 3, 4, 5]
    assert [step for step, tags in written if "layerview/run/config" in tags] == [0, 4]


def test_two_layerviews_writing_one_log_dir_at_once_warn_and_apart_they_do_not(tmp_path):
    """Two LayerViews in one fit with the same log_dir (one for the whole model, one for a part of it)
    both write every step there, and TensorBoard's loaders keep different ones: the second warns, naming
    the step and the directory. Two with their own directories, one after the other has finished, and a
    fit resuming one that crashed (test_a_fit_resumed_by_backup_and_restore...) do not."""
    x = np.random.default_rng(0).random((16, 4)).astype("float32")
    encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="code")], name="encoder")
    model = keras.Sequential([encoder, keras.layers.Dense(2, name="out")])
    model.compile("sgd", "mse")

    def run(*dirs):
        views = [LayerView(str(tmp_path / d), probe=x[:2], class_views=False, budget=None, **kw)
                 for d, kw in zip(dirs, ({}, {"model": encoder}))]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(x, np.zeros((16, 2)), epochs=1, verbose=0, callbacks=views)
        return [str(w.message) for w in caught if issubclass(w.category, LayerViewWarning)]

    [message] = run("same", "same")
    assert "another LayerView of this process has written step 0 to log_dir %r too" % str(tmp_path / "same") \
        in message, message
    assert run("whole", "part") == []
    assert run("after") == [] and run("after_too") == []


def test_a_second_fit_from_epoch_0_into_the_same_log_dir_warns_and_one_that_continues_does_not(tmp_path):
    """Rerunning a fit into the same log_dir writes epochs 0.. again beside the earlier ones (TensorBoard's
    two loaders then keep different ones): it warns, naming the directory and the earlier file. A fit that
    continues with initial_epoch, and a first fit, do not."""
    x = np.random.default_rng(0).random((16, 4)).astype("float32")

    def run(**fit_kwargs):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
        model.compile("sgd", "mse")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(x, np.zeros((16, 2)), verbose=0, callbacks=[
                LayerView(str(tmp_path / "run"), probe=x[:2], class_views=False, budget=None)], **fit_kwargs)
        return [str(w.message) for w in caught if issubclass(w.category, LayerViewWarning)]

    assert run(epochs=2) == []
    first_file = sorted(os.listdir(tmp_path / "run"))[0]
    [message] = run(epochs=2)
    assert "log_dir %r already holds the LayerView log of an earlier fit (%s)" % (str(tmp_path / "run"), first_file) \
        in message and "Pass initial_epoch" in message, message
    assert run(epochs=4, initial_epoch=2) == []


def test_each_call_of_a_layer_shared_by_two_nested_models_names_the_input_its_data_came_from(tmp_path):
    """A Dense shared by two nested models (one fed through a nested Sequential): the capture counts its
    calls under one path, and the configuration's inputs of each call agree with the statistics of that
    call's output (the graph is replayed in the order Keras runs it)."""
    shared = keras.layers.Dense(3, name="shared")
    a_in, b_in = keras.Input((4,)), keras.Input((4,))
    ma = keras.Model(a_in, shared(a_in), name="ma")
    mb = keras.Model(b_in, keras.layers.Dense(2, name="after")(shared(b_in)), name="mb")
    seq = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, name="s1")], name="seq")
    i1, i2 = keras.Input((4,), name="i1"), keras.Input((4,), name="i2")
    model = keras.Model([i1, i2], keras.layers.Concatenate(name="cat")([ma(i1), mb(seq(i2))]))
    x1 = np.ones((8, 4), np.float32)
    x2 = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    fit(model, [x1, x2], np.zeros((8, 5)), tmp_path / "run", epochs=1, probe=[x1[:2], x2[:2]])
    series, run = only_run(tmp_path / "run")
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    layer = next(l for l in config["layers"] if l["outputs"] and l["outputs"][0]["path"].endswith("shared"))
    assert layer["calls"] == 2
    by_path = _stats_by_path(series, run, 1)
    expected = {"i1": keras.ops.convert_to_numpy(shared(x1[:2])),
                "i2": keras.ops.convert_to_numpy(shared(seq(x2[:2])))}
    seen = []
    for output in layer["outputs"]:
        [name] = output["inputs"]
        seen.append(name)
        np.testing.assert_allclose(by_path[output["path"]]["mean"], expected[name].mean(axis=0), rtol=1e-5, atol=1e-6)
    assert sorted(seen) == ["i1", "i2"]
    reach = {o["path"]: o["inputs"] for l in config["layers"] for o in l["outputs"]}
    assert reach["seq/s1"] == ["i2"] and reach["mb/after"] == ["i2"] and reach["cat"] == ["i1", "i2"]


def test_labels_given_per_output_label_each_output_and_name_only_the_classes_they_fit(tmp_path):
    """A model with a 4-class and a 2-class head, probe labels given per output as fit takes them (a dict,
    or a list in output order): each output's prediction record has its own label, the probes keep one
    per output, class_names name the 4-class head only, and labels for an output the model lacks stop
    fit with the names of its outputs. It used to refuse the dict as 'an object array holding dict'."""
    inp = keras.Input((8,))
    h = keras.layers.Dense(6, activation="relu", name="h")(inp)
    model = keras.Model(inp, {"animal": keras.layers.Dense(4, activation="softmax", name="animal")(h),
                              "indoor": keras.layers.Dense(2, activation="softmax", name="indoor")(h)})
    x = np.random.default_rng(0).random((32, 8)).astype("float32")
    ya, yi = np.arange(32) % 4, (np.arange(32) // 2) % 2
    names = ["cat", "dog", "bird", "fish"]
    for run, y in (("by_name", {"indoor": yi[:3], "animal": ya[:3]}), ("by_order", [ya[:3], yi[:3]])):
        model.compile("sgd", {"animal": "sparse_categorical_crossentropy", "indoor": "sparse_categorical_crossentropy"})
        model.fit(x, {"animal": ya, "indoor": yi}, epochs=1, batch_size=16, verbose=0, callbacks=[
            LayerView(str(tmp_path / run), probe=(x[:3], y), class_names=names, budget=None)])
        series, _ = only_run(tmp_path / run)
        preds = json_of(run_blob(series, run, metadata.KIND_PREDICTIONS)[1][0])["probes"]
        for i, entry in enumerate(preds):
            animal, indoor = entry["outputs"]["animal"], entry["outputs"]["indoor"]
            assert animal["label"] == {"value": float(ya[i]), "class": int(ya[i]), "name": names[ya[i]]}, run
            assert indoor["label"] == {"value": float(yi[i]), "class": int(yi[i])}, run
            assert animal["names"] and "names" not in indoor
            assert entry["label"] == animal["label"]  # the first output's, which the class views explain
        probes = json_of(run_blob(series, run, metadata.KIND_PROBES)[0][0])["probes"]
        assert [p["labels"]["indoor"]["class"] for p in probes] == [int(c) for c in yi[:3]]
        assert [p["label"]["name"] for p in probes] == [names[c] for c in ya[:3]]
        attribution = json_of(run_blob(series, run, metadata.KIND_ATTRIBUTION)[1][0])
        assert [t["class"] for t in attribution["targets"] if t["which"] == "true"] == [int(c) for c in ya[:3]]
    with pytest.raises(ValueError, match="probe labels \\(y\\) name outputs the model does not have: 'kind'; "
                                         "its outputs are: animal, indoor"):
        model.fit(x, {"animal": ya, "indoor": yi}, epochs=1, verbose=0, callbacks=[
            LayerView(str(tmp_path / "bad"), probe=(x[:3], {"kind": ya[:3]}), budget=None)])


def test_unit_problems_says_which_units_are_dead_and_since_when_during_and_after_fit(tmp_path):
    """lv.unit_problems() answers in Python, from a later callback while training runs (the writer
    thread's pending step waited for) and after it: two ReLU units whose bias keeps them below zero
    are dead since step 0 at every epoch; the live ones have no row."""
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(4, activation="relu", name="hidden", kernel_initializer="ones",
                           bias_initializer=keras.initializers.Constant([-50.0, -50.0, 0.0, 0.0])),
        keras.layers.Dense(2, name="logits"),
    ])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 4), dtype=np.float32), rng.integers(0, 2, 64)
    lv = LayerView(str(tmp_path / "run"), probe=(x[:8], y[:8]), class_views=False)
    answers = []

    class Ask(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            answers.append([(u["layer"], u["activation"], u["channel"], u["problem"], u["since"], u["last_step"])
                            for u in lv.unit_problems()])

    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[lv, Ask()])
    assert answers == [[("hidden", "relu", 0, "dead", 0, s), ("hidden", "relu", 1, "dead", 0, s)]
                       for s in (1, 2, 3)]
    assert [(u["channel"], u["since"], u["last_step"]) for u in lv.unit_problems()] == [(0, 0, 3), (1, 0, 3)]


def test_a_deep_copy_is_a_fresh_layerview_that_follows_a_tensorboard_moved_into_its_log_dir(tmp_path):
    """Tools that copy callbacks (KerasTuner copies them for every trial) can copy a LayerView,
    even one that has trained (it holds a thread, a lock and an event file): the copy is fresh,
    takes the same arguments and the same probe batch, and writes where a TensorBoard callback
    copied with it from the same log_dir was moved to, inside that log_dir, whichever comes first
    in the list. copy.deepcopy used to fail with "cannot pickle '_thread.lock' object"."""
    import copy

    base = str(tmp_path / "logs")
    x, y = np.random.default_rng(0).random((32, 6), dtype=np.float32), np.arange(32) % 3

    def fit(callbacks):
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu", name="hidden"),
                                  keras.layers.Dense(3, activation="softmax", name="out")])
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=callbacks)

    lv = LayerView(base, probe=(x[:4], y[:4]), class_views=False, budget=None)
    fit([lv])
    tb = keras.callbacks.TensorBoard(base)
    for i, order in enumerate(((tb, lv), (lv, tb))):
        copies = copy.deepcopy(list(order))
        twin = next(c for c in copies if isinstance(c, LayerView))
        assert twin is not lv and twin.log_dir == base and twin.cost["logged_steps"] == 0
        assert twin.probe is not lv.probe and np.array_equal(twin.probe.inputs, lv.probe.inputs)
        next(c for c in copies if c is not twin).log_dir = os.path.join(base, str(i), "execution0")
        with warnings.catch_warnings():
            warnings.simplefilter("error", LayerViewWarning)
            fit([twin])  # the TensorBoard copy itself need not run: where it was moved to is enough
        assert twin.log_dir == os.path.join(base, str(i), "execution0")
    series = read_series(base)
    for run in (".", "0/execution0", "1/execution0"):
        assert sorted(layer_series(series, run)[("activations", "hidden")]) == [0, 1, 2], run
    # A copy with no TensorBoard moved beside it keeps the log_dir it was given, and its warning
    # about the earlier fit there says how a copy gets a directory of its own.
    alone = copy.deepcopy(lv)
    with pytest.warns(LayerViewWarning, match="this LayerView is a copy, as KerasTuner makes one per trial"):
        fit([alone])
    assert alone.log_dir == base


def test_the_blas_controller_is_made_when_layerview_is_built_not_in_the_first_probe_pass(tmp_path, monkeypatch):
    """Listing the process's libraries for threadpoolctl takes about 12 ms
    once TensorFlow is loaded; LayerView pays it when it is built, before
    training, and then reuses it."""
    from tb_layerview import LayerView, capture

    monkeypatch.setitem(capture._blas_state, "controller", None)
    LayerView(str(tmp_path), probe=np.zeros((2, 4), np.float32))
    made = capture._blas_state["controller"]
    assert made is not None and made is not False
    with capture.one_blas_thread():
        pass
    assert capture._blas_state["controller"] is made and capture.blas_controller() is made


def test_a_nested_model_shared_by_two_branches_counts_both_calls(tmp_path):
    """A siamese encoder (a nested model applied to two inputs): the panel's
    'Calls on the probe' reads 2 for the encoder as for each of its layers,
    and each call of its layers has its own series."""
    enc = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")], name="encoder")
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    out = keras.layers.Dense(1, name="out")(keras.layers.Subtract(name="diff")([enc(a), enc(b)]))
    model = keras.Model([a, b], out)
    x = np.random.default_rng(0).random((16, 4), dtype=np.float32)
    fit(model, [x, x[::-1]], np.zeros((16, 1)), tmp_path / "siamese", probe=[x[:2], x[2:4]], epochs=1)
    series, run = only_run(tmp_path / "siamese")
    assert {(ACT, "encoder/d"), (ACT, "encoder/d@2")} <= set(layer_series(series, run))
    config = json_of(run_blob(series, run, metadata.KIND_CONFIG)[0][0])
    calls = {l["path"]: l["calls"] for l in config["layers"]}
    assert calls == {"encoder": 2, "encoder/d": 2, "diff": 1, "out": 1}, calls


def test_a_fit_imports_none_of_the_libraries_layerview_writes_with(tmp_path):
    """Building LayerView loads what writing needs (TensorBoard's protos and
    gfile, Pillow's plugins, the class views, threadpoolctl): in a fresh
    process, a fit that logs images, statistics and class views imports none
    of them. Before, the first logged step imported 76 modules inside fit."""
    import subprocess
    import sys

    script = (
        "import sys, numpy as np, keras\n"
        "from tb_layerview import LayerView\n"
        "i = keras.Input((8, 8, 1))\n"
        "h = keras.layers.Conv2D(4, 3, activation='relu', name='conv')(i)\n"
        "o = keras.layers.Dense(3, activation='softmax', name='out')(keras.layers.Flatten()(h))\n"
        "m = keras.Model(i, o)\n"
        "m.compile('adam', 'sparse_categorical_crossentropy')\n"
        "x = np.random.default_rng(0).random((32, 8, 8, 1), dtype=np.float32)\n"
        "y = np.arange(32) % 3\n"
        "m.fit(x, y, epochs=1, verbose=0)\n"
        "lv = LayerView('logs', probe=(x[:3], y[:3]), budget=None)\n"
        "before = set(sys.modules)\n"
        "m.fit(x, y, epochs=2, verbose=0, callbacks=[lv])\n"
        "lv.close()\n"
        "assert lv.cost['logged_steps'] == 3, lv.cost\n"
        "ours = ('tb_layerview', 'PIL', 'tensorboard', 'fsspec', 'threadpoolctl', 'google.protobuf')\n"
        "print(sorted(n for n in set(sys.modules) - before if n.split('.')[0] in ours or n.startswith(ours)))\n")
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(), JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[-1] == "[]", out.stdout[-2000:]


def test_building_layerview_does_not_fail_on_a_library_that_fails_to_load(tmp_path, monkeypatch):
    """Loading the writer's libraries ahead is an optimisation: a Pillow that
    cannot be imported is reported where images are drawn, not by LayerView()."""
    import sys

    from tb_layerview import LayerView

    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError):
        from PIL import Image  # noqa: F401
    lv = LayerView(str(tmp_path), probe=np.zeros((2, 4), np.float32))
    assert lv.log_dir == str(tmp_path)
