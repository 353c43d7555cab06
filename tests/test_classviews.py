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
