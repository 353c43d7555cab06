"""Class views: back-query exact numbers, activation maximisation, Grad-CAM."""

import numpy as np
import pytest

import keras

from tb_layerview import classviews

# Its module-scoped fixture is built once when the suite runs on several workers.
pytestmark = pytest.mark.xdist_group("classviews")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_backquery_equals_the_inverse_computed_by_hand():
    """A 2-3-2 sigmoid network with hand-set weights: back-query matches the hand computation."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="sigmoid", name="h"),
                              keras.layers.Dense(2, activation="sigmoid", name="o")])
    w1 = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]], np.float32)
    b1 = np.array([0.1, 0.0, -0.2], np.float32)
    w2 = np.array([[1.0, -2.0], [0.5, 0.5], [-1.0, 3.0]], np.float32)
    b2 = np.array([0.0, 0.3], np.float32)
    model.get_layer("h").set_weights([w1, b1])
    model.get_layer("o").set_weights([w2, b2])
    plan = classviews.backquery_plan(model)
    targets = classviews.class_targets(plan, [0, 1])
    assert targets.tolist() == [[0.99, 0.01], [0.01, 0.99]]
    got = classviews.backquery(plan, targets)
    # By hand for class 0: logit(0.99) = 4.59512, logit(0.01) = -4.59512
    t = np.array([np.log(0.99 / 0.01), np.log(0.01 / 0.99)])
    z = t - np.array([0.0, 0.3])
    hidden = z @ w2.T.astype(np.float64)
    hidden = (hidden - hidden.min()) / (hidden.max() - hidden.min()) * 0.98 + 0.01
    z1 = np.log(hidden / (1 - hidden)) - b1
    x = z1 @ w1.T.astype(np.float64)
    x = (x - x.min()) / (x.max() - x.min()) * 0.98 + 0.01
    np.testing.assert_allclose(got[0], x, rtol=1e-6)
    assert got.min() == pytest.approx(0.01) and got.max() == pytest.approx(0.99)
    # Exact numbers of the hidden step: 4.59512 - 0 = 4.59512; -4.59512 - 0.3 = -4.89512
    assert z.tolist() == pytest.approx([4.595119850, -4.895119850])


def test_backquery_forward_consistency_for_a_square_linear_network():
    """With an invertible square kernel and linear activations, back-query inverts the forward pass."""
    w = np.array([[2.0, 1.0], [0.0, 1.0]])
    plan = [(w, np.array([0.5, -1.0]), "linear")]
    x = np.array([[3.0, -2.0]])
    y = x @ w + np.array([0.5, -1.0])
    back = classviews.backquery(plan, y, input_range=(0.0, 1.0))
    # Transposed (not inverted) kernel, then rescaling: compare the direction only.
    expected = (y - np.array([0.5, -1.0])) @ w.T
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    np.testing.assert_allclose(back, expected)


def test_relu_network_gets_a_message_naming_the_blocking_layer():
    """Back-query on a ReLU network names the layer and points to activation maximisation."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu", name="hidden_relu"),
                              keras.layers.Dense(2, activation="softmax", name="out")])
    with pytest.raises(classviews.BackQueryUnavailable,
                       match=r"layer 'hidden_relu' \(Dense\) uses the 'relu' activation.*activation maximisation"):
        classviews.backquery_plan(model)
    conv = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(1, 3, name="c"),
                             keras.layers.Flatten(), keras.layers.Dense(2, activation="sigmoid")])
    with pytest.raises(classviews.BackQueryUnavailable, match=r"layer 'c' \(Conv2D\)"):
        classviews.backquery_plan(conv)


def test_backquery_refuses_graphs_that_are_not_a_chain_of_dense_layers():
    """Dense layers listed in order are not a chain when the graph reuses a layer, applies a keras.ops call
    between them or feeds a Dense the last axis of a 3-axis tensor: back-query says so up front instead of
    failing at its first class view (it raised a numpy broadcasting error on the first two)."""
    i = keras.Input((4,))
    shared = keras.layers.Dense(4, activation="tanh", name="shared")
    twice = keras.Model(i, keras.layers.Dense(2, activation="softmax", name="out")(shared(shared(i))))
    with pytest.raises(classviews.BackQueryUnavailable, match=r"layer 'shared' \(Dense\) is called 2 times"):
        classviews.backquery_plan(twice)

    j = keras.Input((4,))
    h = keras.ops.concatenate([keras.layers.Dense(3, activation="tanh", name="d1")(j), j], axis=-1)
    raw = keras.Model(j, keras.layers.Dense(2, activation="softmax", name="out")(h))
    with pytest.raises(classviews.BackQueryUnavailable, match=r"applies the operation .*\(Concatenate\) outside"):
        classviews.backquery_plan(raw)

    seq = keras.Sequential([keras.Input((5, 4)), keras.layers.Dense(3, activation="tanh", name="per_step"),
                            keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax", name="out")])
    with pytest.raises(classviews.BackQueryUnavailable, match=r"'per_step' gives 3 values, 'out' takes 15"):
        classviews.backquery_plan(seq)


def two_patterns(n=400, seed=0):
    """8x8 images: class 0 a bright left half, class 1 a bright right half, with noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.uniform(0, 0.3, (n, 8, 8, 1)).astype(np.float32)
    for i in range(n):
        if y[i] == 0:
            x[i, :, :4] += 0.6
        else:
            x[i, :, 4:] += 0.6
    return np.clip(x, 0, 1), y


@pytest.fixture(scope="module")
def halves_model():
    keras.utils.set_random_seed(0)
    x, y = two_patterns()
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax", name="out")])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    assert model.evaluate(x, y, verbose=0)[1] > 0.95
    return model


def test_activation_maximisation_finds_each_class_pattern_and_the_score_rises(halves_model):
    """Each class's image correlates with its own pattern more than the other's; scores rise."""
    images, history = classviews.maximize(halves_model, classes=[0, 1], steps=48)
    left = np.zeros((8, 8)); left[:, :4] = 1
    right = 1 - left
    img = images[..., 0]

    def corr(a, b):
        return np.corrcoef(a.ravel(), b.ravel())[0, 1]

    assert corr(img[0], left) > corr(img[0], right)
    assert corr(img[1], right) > corr(img[1], left)
    assert (history[-1] > history[0]).all() and len(history) == 7
    assert images.min() >= 0.0 and images.max() <= 1.0
    again, _ = classviews.maximize(halves_model, classes=[0, 1], steps=48)
    np.testing.assert_allclose(again, images)  # fixed seed: epochs are comparable


def test_gradcam_mass_lies_on_the_half_that_decides_the_class(halves_model):
    """Grad-CAM of class 0 (left half bright) puts most of its mass on the left half."""
    x, y = two_patterns(40, seed=1)
    maps, info = classviews.attribution(halves_model, x, classes=y)
    assert info == {"method": "gradcam", "layer": "conv", "weighting": "elementwise"}
    assert maps.shape == (40, 8, 8)
    left_mass = maps[:, :, :4].sum(axis=(1, 2)) / maps.sum(axis=(1, 2))
    assert (left_mass[y == 0] > 0.5).mean() > 0.8
    assert (left_mass[y == 1] < 0.5).mean() > 0.8


def test_an_image_model_fed_8_bit_pixels_gets_gradcam_and_says_why_not_maximisation(tmp_path):
    """uint8 images into a Rescaling layer: Grad-CAM differentiates the convolution's output, not the
    input, so its maps are logged (and put their mass on the half that decides the class); activation
    maximisation needs input gradients and says so, naming the dtype. Token ids get neither, and say why."""
    from helpers import json_of, read_series, run_blob

    from tb_layerview import LayerView, metadata, render

    keras.utils.set_random_seed(0)
    x, y = two_patterns(64)
    x8 = np.round(x * 255).astype("uint8")
    model = keras.Sequential([keras.Input((8, 8, 1), dtype="uint8"), keras.layers.Rescaling(1 / 255),
                              keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax", name="out")])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x8, y, epochs=15, batch_size=32, verbose=0,
              callbacks=[LayerView(str(tmp_path / "u8"), probe=(x8[:8], y[:8]), budget=None)])
    assert model.evaluate(x8, y, verbose=0)[1] > 0.95
    series = read_series(str(tmp_path))["u8"]
    config = json_of(run_blob({"u8": series}, "u8", metadata.KIND_CONFIG)[0][0])
    assert config["class_views"]["attribution"] == {"available": True, "reason": None, "method": "gradcam",
                                                    "layer": "conv"}
    assert config["class_views"]["maximization"] == {
        "available": False, "reason": "the input (dtype uint8: token ids, 8-bit pixels...) is not differentiable,"
                                      " which activation maximisation needs"}
    blobs = run_blob({"u8": series}, "u8", metadata.KIND_ATTRIBUTION)[15]
    info = json_of(blobs[0])
    maps = np.stack([render.decode_png(b)[..., 0] for b in blobs[1:]]).astype(np.float64)
    predicted = [t for t in info["targets"] if t["which"] == "predicted"]
    assert info["method"] == "gradcam" and maps.shape == (len(info["targets"]), 8, 8)
    left_mass = maps[:, :, :4].sum(axis=(1, 2)) / np.maximum(maps.sum(axis=(1, 2)), 1e-9)
    for t, mass in zip(predicted, left_mass):
        assert (mass > 0.5) == (t["class"] == 0), (t, mass)

    tokens = keras.Sequential([keras.Input((10,), dtype="int32"), keras.layers.Embedding(20, 4),
                               keras.layers.Conv1D(3, 3, name="conv1d"), keras.layers.GlobalMaxPooling1D(),
                               keras.layers.Dense(2, activation="softmax")])
    tokens.compile("sgd", "sparse_categorical_crossentropy")
    ids = np.random.default_rng(0).integers(0, 20, (16, 10)).astype("int32")
    tokens.fit(ids, np.zeros(16, int), epochs=1, verbose=0,
               callbacks=[LayerView(str(tmp_path / "ids"), probe=(ids[:2], np.zeros(2, int)), budget=None)])
    config = json_of(run_blob(read_series(str(tmp_path)), "ids", metadata.KIND_CONFIG)[0][0])
    assert config["class_views"]["attribution"]["reason"] == (
        "the input (dtype int32: token ids, 8-bit pixels...) is not differentiable, and Grad-CAM, which needs no"
        " input gradient, needs image inputs and a convolution")


def test_a_model_of_several_inputs_gets_gradcam_over_the_image_its_convolution_sees(tmp_path):
    """An image and a table of numbers into one classifier: Grad-CAM on the image branch's convolution,
    fed both inputs, logs maps that name the image input and put their mass on the half that decides
    the class. Maximisation and back-query say they need a single input; a siamese encoder, whose
    convolution runs on both images, gets no maps and says why."""
    from helpers import json_of, read_series, run_blob

    from tb_layerview import LayerView, metadata, render

    keras.utils.set_random_seed(0)
    x, y = two_patterns(64)
    table = np.random.default_rng(5).random((64, 3)).astype("float32")
    image, meta = keras.Input((8, 8, 1), name="image"), keras.Input((3,), name="meta")
    features = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(image))
    joined = keras.layers.Concatenate()([features, keras.layers.Dense(2, name="meta_dense")(meta)])
    model = keras.Model([image, meta], keras.layers.Dense(2, activation="softmax", name="out")(joined))
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit([x, table], y, epochs=15, batch_size=32, verbose=0,
              callbacks=[LayerView(str(tmp_path / "mm"), probe=([x[:8], table[:8]], y[:8]), budget=None)])
    assert model.evaluate([x, table], y, verbose=0)[1] > 0.95
    series = read_series(str(tmp_path))
    config = json_of(run_blob(series, "mm", metadata.KIND_CONFIG)[0][0])
    views = config["class_views"]
    assert views["attribution"] == {"available": True, "reason": None, "method": "gradcam", "layer": "conv",
                                    "input": "image"}, views
    assert views["maximization"] == {"available": False, "reason": "activation maximisation needs a single-input model"}
    blobs = run_blob(series, "mm", metadata.KIND_ATTRIBUTION)[15]
    info = json_of(blobs[0])
    assert info["input"] == "image" and info["shape"] == [8, 8]
    maps = np.stack([render.decode_png(b)[..., 0] for b in blobs[1:]]).astype(np.float64)
    left_mass = maps[:, :, :4].sum(axis=(1, 2)) / np.maximum(maps.sum(axis=(1, 2)), 1e-9)
    for t, mass in zip(info["targets"], left_mass):
        if t["which"] == "predicted":
            assert (mass > 0.5) == (t["class"] == 0), (t, mass)

    encoder = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="conv"),
                                keras.layers.GlobalAveragePooling2D()], name="encoder")
    left, right = keras.Input((8, 8, 1), name="left"), keras.Input((8, 8, 1), name="right")
    pair = keras.Model([left, right], keras.layers.Dense(2, activation="softmax")(
        keras.layers.Concatenate()([encoder(left), encoder(right)])))
    pair.compile("sgd", "sparse_categorical_crossentropy")
    pair.fit([x, x[::-1]], y, epochs=1, verbose=0,
             callbacks=[LayerView(str(tmp_path / "pair"), probe=([x[:2], x[2:4]], y[:2]), budget=None)])
    config = json_of(run_blob(read_series(str(tmp_path)), "pair", metadata.KIND_CONFIG)[0][0])
    assert config["class_views"]["attribution"]["reason"] == (
        "Grad-CAM's layer 'encoder/conv' is called 2 times (a shared encoder): one map cannot tell its calls"
        " apart; pass attribution_layer= a layer called once")


def test_saliency_for_models_without_convolutions():
    """A dense model gets gradient x input saliency shaped like its input."""
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2, activation="softmax")])
    maps, info = classviews.attribution(model, np.ones((3, 6), np.float32), classes=[0, 1, 0])
    assert info["method"] == "saliency" and maps.shape == (3, 6) and maps.max() == pytest.approx(1.0)


def test_unit_maximisation_raises_the_unit_mean_activation(halves_model):
    """Maximising channels of a conv layer raises each channel's mean activation."""
    images, history = classviews.maximize(halves_model, layer="conv", units=[0, 1, 2], steps=32)
    assert images.shape == (3, 8, 8, 1)
    assert (history[-1] > history[0]).all()
    with pytest.raises(ValueError, match="needs the units"):
        classviews.maximize(halves_model, layer="conv", units=[])
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        classviews.maximize(halves_model, layer="nope", units=[0])


def test_the_only_unit_of_a_one_unit_layer_is_maximised_not_minimised():
    """maximize(layer=..., units=[0]) on a layer of one unit raises that unit's mean (a class output of one
    sigmoid unit is the only place where index 0 means "1 - output")."""
    import keras

    from tb_layerview import classviews

    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(1, 3, activation="tanh", name="one"),
                              keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    model.set_weights([np.full(w.shape, 0.1, np.float32) for w in model.get_weights()])
    images, history = classviews.maximize(model, layer="one", units=[0], steps=16, value_range=(-1.0, 1.0))
    unit = keras.Model(model.inputs[0], model.get_layer("one").output)
    start = np.zeros((1, 4, 4, 1), np.float32)  # the middle of the range, where the ascent starts
    before = float(np.mean(keras.ops.convert_to_numpy(unit(start))))
    after = float(np.mean(keras.ops.convert_to_numpy(unit(images))))
    assert after > before + 0.1, (before, after)
    assert history[-1, 0] == pytest.approx(after, abs=1e-4)  # the recorded score is the unit's mean


def _twin_cnns():
    """One small CNN built channels last and again channels first, with the same weights (Keras keeps
    conv kernels as (kh, kw, in, out) in both layouts, and its channels-first Flatten reorders to
    channels last, so the Dense weights carry over too)."""

    def build(fmt):
        axis = 1 if fmt == "channels_first" else -1
        shape = (3, 12, 12) if fmt == "channels_first" else (12, 12, 3)
        inp = keras.Input(shape)
        h = keras.layers.Conv2D(4, 3, data_format=fmt, name="conv")(inp)
        h = keras.layers.BatchNormalization(axis=axis, name="bn")(h)
        h = keras.layers.Activation("tanh", name="act")(h)
        h = keras.layers.Conv2D(5, 3, data_format=fmt, activation="tanh", name="conv2")(h)
        h = keras.layers.Flatten(data_format=fmt)(h)
        return keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="out")(h))

    last, first = build("channels_last"), build("channels_first")
    rng = np.random.default_rng(7)
    for layer in last.layers:
        weights = [rng.normal(0, 0.3, w.shape).astype("float32") for w in layer.get_weights()]
        if layer.name == "bn":  # moving variance must stay positive
            weights[3] = np.abs(weights[3]) + 0.5
        layer.set_weights(weights)
        if weights:
            first.get_layer(layer.name).set_weights(weights)
    return last, first


def test_class_views_of_a_channels_first_model_equal_those_of_its_channels_last_twin():
    """Maximisation (classes and units) and attribution (Grad-CAM and saliency) of a model that takes
    (C, H, W) images, run with channels_first=True, give what its channels-last twin gives: images
    channels last, maps (H, W). Without the flag the shifts, blur and channel sums ran over the
    wrong axes."""
    from helpers import eager_channels_first_convolution

    if not eager_channels_first_convolution():
        pytest.skip("this backend runs no channels-first convolution eagerly on this CPU (TensorFlow without oneDNN)")
    last, first = _twin_cnns()
    x = np.random.default_rng(3).random((2, 12, 12, 3)).astype("float32")
    x_cf = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(first(x_cf)), keras.ops.convert_to_numpy(last(x)),
                               atol=1e-5)
    kw = dict(steps=8, record_every=4)
    img_l, hist_l = classviews.maximize(last, [0, 2], **kw)
    img_f, hist_f = classviews.maximize(first, [0, 2], channels_first=True, **kw)
    assert img_f.shape == (2, 12, 12, 3)
    np.testing.assert_allclose(img_f, img_l, atol=1e-4)
    np.testing.assert_allclose(hist_f, hist_l, atol=1e-4)
    units_l, _ = classviews.maximize(last, layer="conv2", units=[1, 4], **kw)
    units_f, _ = classviews.maximize(first, layer="conv2", units=[1, 4], channels_first=True, **kw)
    np.testing.assert_allclose(units_f, units_l, atol=1e-4)
    for layer in ("conv2", "bn"):  # a convolution, and a layer whose channel axis is its `axis`
        maps_l, info_l = classviews.attribution(last, x, [0, 1], layer=layer)
        maps_f, info_f = classviews.attribution(first, x_cf, [0, 1], layer=layer, channels_first=True)
        assert maps_f.shape == (2, 12, 12) and info_f == info_l
        np.testing.assert_allclose(maps_f, maps_l, atol=1e-4)
    dense = {fmt: keras.Sequential([keras.Input(shape), keras.layers.Flatten(data_format=fmt),
                                    keras.layers.Dense(3, activation="softmax", name="out")])
             for fmt, shape in (("channels_last", (12, 12, 3)), ("channels_first", (3, 12, 12)))}
    dense["channels_first"].get_layer("out").set_weights(dense["channels_last"].get_layer("out").get_weights())
    sal_l, info = classviews.attribution(dense["channels_last"], x, [0, 1])  # no convolution: saliency
    sal_f, _ = classviews.attribution(dense["channels_first"], x_cf, [0, 1], channels_first=True)
    assert info["method"] == "saliency" and sal_f.shape == (2, 12, 12)
    np.testing.assert_allclose(sal_f, sal_l, atol=1e-5)


def test_a_dropped_model_is_freed_with_its_compiled_class_view_functions():
    """Maximisation and attribution keep their compiled functions per model, for the next epoch, but
    not the model: one dropped after its class views (one per trial of a hyperparameter search) is
    freed, and its cache entries with it. The cached functions held the model before."""
    import gc
    import weakref

    def class_views_of_a_fresh_model():
        model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                                  keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
        classviews.attribution(model, np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32), [0, 2])
        classviews.maximize(model, [0, 1], steps=2)
        classviews.maximize(model, [0, 1], steps=2)  # the second call reuses the first one's functions
        assert len(classviews._ASCENT_CACHE[model]) == 1
        return weakref.ref(model)

    ref = class_views_of_a_fresh_model()
    gc.collect()
    assert ref() is None


def test_a_class_view_run_that_compiles_is_not_taken_as_the_cost_of_the_runs_after_it():
    """The planner prices a class view by its last run. A run that traced or compiled its functions
    (maximisation on every backend, attribution on JAX) is left out: compiling is paid once (JAX,
    seed CNN: attribution 0.25 s with it, then 0.003 s), and kept, it deferred every later run as
    if each cost as much. The next run, which reuses the functions, is kept."""
    from tb_layerview import classlog, metadata

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    x = np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32)
    log = classlog.ClassViewLog(model, None, 3, 2, None, {}, (8, 8, 3), lambda key, message: None)
    attribution_compiles = keras.backend.backend() == "jax"
    kinds = {metadata.KIND_MAXIMIZATION: lambda: classviews.maximize(model, [0, 1], steps=2),
             metadata.KIND_ATTRIBUTION: lambda: classviews.attribution(model, x, [0, 2])}
    for kind, run in kinds.items():
        images, _ = log.timed(kind, run)
        assert len(images) == 2  # what the run made comes back
        compiles = kind == metadata.KIND_MAXIMIZATION or attribution_compiles
        assert (kind in log.seconds) is not compiles, (kind, log.seconds)
        log.timed(kind, run)
        assert log.seconds[kind] > 0, (kind, log.seconds)
    assert classviews.compiled_count(model) == 1 + attribution_compiles
