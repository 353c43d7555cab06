"""Class views: what a network "sees" for each class, and where it looks.

* :func:`backquery` runs a network of Dense layers backwards: the target
  output of a class goes through each layer's inverse activation, minus the
  bias, through the transposed kernel, rescaled into the previous layer's
  range, down to an input-shaped image. Pure numpy; :func:`backquery_plan`
  extracts the layers from a Keras model or says which layer prevents it.
* :func:`maximize` is activation maximisation: a regularised gradient ascent
  on the input for every chosen class at once (TensorFlow backend).
* :func:`attribution` gives Grad-CAM maps on a convolutional layer, or
  gradient x input saliency for models without one (TensorFlow backend).

Example::

    from tb_layerview import classviews

    plan = classviews.backquery_plan(mlp)          # raises BackQueryUnavailable for ReLU nets
    images = classviews.backquery(plan, classviews.class_targets(plan, [0, 1, 2]))
    x, history = classviews.maximize(cnn, classes=[0, 1], steps=64)
    maps, info = classviews.attribution(cnn, x_probe, classes=[3, 1])
"""

import weakref

import numpy as np

from tb_layerview import capture

#: Activations whose inverse the back-query knows.
INVERTIBLE = ("sigmoid", "tanh", "linear", "softmax")

#: Layers the back-query passes through unchanged (in inference mode).
_PASS_THROUGH = ("Flatten", "Reshape", "Dropout", "InputLayer", "GaussianNoise", "GaussianDropout",
                 "AlphaDropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D")

#: Open ranges each activation's inverse accepts; the signal is rescaled into
#: them (the classic 0.01..0.99 for sigmoid).
_RANGES = {"sigmoid": (0.01, 0.99), "softmax": (0.01, 0.99), "tanh": (-0.99, 0.99), "linear": None}


class BackQueryUnavailable(ValueError):
    """The model is not a chain of Dense layers with invertible activations."""


def _activation_name(layer):
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", None) or (layer.get_config().get("activation") if hasattr(layer, "get_config") else None)
    return "linear" if name in (None, "linear", "identity") else str(name)


def backquery_plan(model):
    """The Dense layers of ``model`` as ``[(kernel, bias, activation), ...]``, input first.

    Raises:
      BackQueryUnavailable: naming the first layer that is not a Dense layer
        with a sigmoid, tanh, linear or softmax activation (or a layer that
        passes values through, such as Flatten or Dropout), and pointing to
        activation maximisation.
    """
    import keras

    inputs = getattr(model, "inputs", None) or []
    if len(inputs) > 1:
        raise BackQueryUnavailable("back-query needs a single-input model; %r has %d inputs."
                                   " Use activation maximisation instead." % (model.name, len(inputs)))
    plan = []

    def visit(m):
        for layer in m.layers:
            cls = type(layer).__name__
            if isinstance(layer, keras.Model):
                visit(layer)
            elif isinstance(layer, keras.layers.Dense):
                act = _activation_name(layer)
                if act not in INVERTIBLE:
                    raise BackQueryUnavailable(
                        "back-query is unavailable: layer %r (Dense) uses the %r activation, which has no"
                        " inverse (needs sigmoid, tanh, linear or softmax). Use activation maximisation"
                        " instead." % (layer.name, act))
                weights = layer.get_weights()
                bias = weights[1] if len(weights) > 1 else np.zeros(weights[0].shape[1], np.float32)
                plan.append((np.asarray(weights[0], np.float64), np.asarray(bias, np.float64), act))
            elif cls == "Activation":
                act = _activation_name(layer)
                if act not in INVERTIBLE:
                    raise BackQueryUnavailable(
                        "back-query is unavailable: layer %r (Activation) applies %r, which has no inverse."
                        " Use activation maximisation instead." % (layer.name, act))
                if plan and plan[-1][2] == "linear":
                    plan[-1] = (plan[-1][0], plan[-1][1], act)
                else:
                    raise BackQueryUnavailable("back-query is unavailable: layer %r (Activation) does not"
                                               " follow a linear Dense layer." % layer.name)
            elif cls not in _PASS_THROUGH:
                raise BackQueryUnavailable(
                    "back-query is unavailable: layer %r (%s) is not a Dense layer with an invertible"
                    " activation. Use activation maximisation instead." % (layer.name, cls))

    visit(model)
    if not plan:
        raise BackQueryUnavailable("back-query is unavailable: %r has no Dense layer." % model.name)
    return plan


def inverse_activation(name, y):
    """The inverse of activation ``name`` at ``y`` (softmax: its logarithm)."""
    y = np.asarray(y, np.float64)
    if name == "sigmoid":
        return np.log(y / (1.0 - y))
    if name == "tanh":
        return np.arctanh(y)
    if name == "softmax":
        return np.log(y)
    if name == "linear":
        return y
    raise ValueError("no inverse for activation %r" % name)


def rescale(x, lo, hi):
    """Linearly maps each row of ``x`` onto [lo, hi] (a constant row maps to lo)."""
    x = np.asarray(x, np.float64)
    mn = x.min(axis=-1, keepdims=True)
    span = x.max(axis=-1, keepdims=True) - mn
    unit = np.where(span > 0, (x - mn) / np.where(span > 0, span, 1.0), 0.0)
    return unit * (hi - lo) + lo


def class_targets(plan, classes):
    """Target outputs for ``classes``: high on the class, low elsewhere.

    0.99/0.01 for sigmoid and softmax outputs, 0.99/-0.99 for tanh, 1/0 for
    linear outputs. A single-unit output has two classes: low (0) and high (1).
    """
    kernel, _, act = plan[-1]
    units = kernel.shape[1]
    low, high = {"sigmoid": (0.01, 0.99), "softmax": (0.01, 0.99), "tanh": (-0.99, 0.99)}.get(act, (0.0, 1.0))
    if units == 1:
        return np.array([[high if c else low] for c in classes], np.float64)
    out = np.full((len(classes), units), low, np.float64)
    out[np.arange(len(classes)), list(classes)] = high
    return out


def backquery(plan, targets, input_range=(0.01, 0.99)):
    """Runs ``targets`` backwards through ``plan`` (see :func:`backquery_plan`).

    For each Dense layer from the output down: the inverse activation, minus
    the bias, times the transposed kernel, then each sample rescaled into the
    range the layer below accepts (the input's ``input_range`` at the bottom).

    Returns:
      float64 array (K, input units).
    """
    signal = np.asarray(targets, np.float64)
    for i in range(len(plan) - 1, -1, -1):
        kernel, bias, act = plan[i]
        z = inverse_activation(act, signal) - bias
        signal = z @ kernel.T
        below = _RANGES[plan[i - 1][2]] if i > 0 else input_range
        if below is not None:
            signal = rescale(signal, *below)
    return signal


def _tf():
    import tensorflow as tf

    return tf


def _blur(x, tf):
    """A 3x3 binomial blur of each channel of NHWC images."""
    k = np.outer([1, 2, 1], [1, 2, 1]).astype(np.float32) / 16.0
    c = x.shape[-1]
    kernel = tf.constant(np.tile(k[:, :, None, None], (1, 1, c, 1)), x.dtype)
    return tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "SAME")


def maximize(model, classes=None, input_shape=None, steps=64, learning_rate=0.05, l2=0.01, jitter=2,
             blur_every=4, value_range=(0.0, 1.0), seed=0, output_index=0, record_every=8,
             layer=None, units=None):
    """Activation maximisation for several classes (or units) in one batch.

    Starts from the same seeded noise every call (so epochs are comparable)
    and ascends, for each class ``c``, ``log(p_c)`` for outputs in [0, 1]
    (the raw output otherwise), along the gradient normalised per sample,
    with an L2 decay of ``x`` toward the middle of ``value_range`` by the
    factor ``1 - l2`` each step. With ``layer`` and
    ``units``, the targets are instead the mean activation of each unit
    (channel) of that layer, averaged over any spatial or time axes. Regularisers: a random
    translation of up to ``jitter`` pixels at each step (image inputs), a
    3x3 blur every ``blur_every`` steps, and clipping to ``value_range``.
    Shifts are capped at 1/16 of the image side, since rolling wraps pixels
    around.
    Gradients are normalised per sample, so ``learning_rate`` is a step in
    units of the value range.

    Args:
      model: a differentiable Keras model (TensorFlow backend), single input.
      classes: output indices to maximise (ignored with ``layer``).
      input_shape: input shape without batch axis; from the model when None.
      steps, learning_rate, l2, jitter, blur_every: see above.
      value_range: (low, high) of valid input values.
      seed: seed of the starting noise.
      output_index: which output of a multi-output model.
      record_every: the un-jittered target scores are recorded every this
        many steps, and after the last.
      layer: a layer (object or name) whose units to maximise instead.
      units: the unit (last-axis) indices of ``layer``.

    Returns:
      ``(images, history)``: float32 array (K,) + input_shape, and the target
      scores (log-probabilities for outputs in [0, 1]), one row (K,) per
      record, the first before any step and the last after the final step.
    """
    tf = _tf()
    if input_shape is None:
        input_shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    input_shape = tuple(int(d) for d in input_shape)
    if isinstance(layer, str):
        layer = _find_layer(model, layer)
    if layer is not None:
        if not units:
            raise ValueError("maximize(layer=...) needs the units to maximise; got %r" % (units,))
        targets = [int(u) for u in units]
    elif classes is None:
        raise ValueError("maximize needs classes, or a layer and its units")
    else:
        targets = [int(c) for c in classes]
    lo, hi = (float(v) for v in value_range)
    rng = np.random.default_rng(seed)
    mid, spread = (lo + hi) / 2.0, (hi - lo) * 0.05
    x = tf.constant(rng.uniform(mid - spread, mid + spread, (len(targets),) + input_shape).astype(np.float32))
    image = len(input_shape) == 3
    # Rolling wraps pixels around: keep shifts small next to the image size.
    jitter = min(int(jitter), min(input_shape[:2]) // 16) if image else 0
    shift_rng = np.random.default_rng(seed + 1)
    if layer is None:
        first = _class_output(model(x, training=False), output_index)
        use_log = bool(tf.reduce_all(first >= 0.0)) and bool(tf.reduce_all(first <= 1.0))
    else:
        use_log = False
    score, step_fn = _ascent_functions(model, tuple(targets), input_shape, use_log, output_index, layer)
    history = []
    lr = tf.constant(learning_rate * (hi - lo), tf.float32)
    l2_t, lo_t, hi_t = tf.constant(l2, tf.float32), tf.constant(lo, tf.float32), tf.constant(hi, tf.float32)
    for step in range(steps):
        if step % record_every == 0:
            history.append(score(x).numpy())
        shift = shift_rng.integers(-jitter, jitter + 1, 2) if jitter else np.zeros(2, int)
        blur = bool(image and blur_every and (step + 1) % blur_every == 0)
        x = step_fn(x, tf.constant(shift, tf.int32), lr, l2_t, lo_t, hi_t, blur)
    history.append(score(x).numpy())
    return x.numpy(), np.stack(history)


def _class_output(out, output_index):
    tf = _tf()
    if isinstance(out, (list, tuple)):
        out = out[output_index]
    elif isinstance(out, dict):
        out = list(out.values())[output_index]
    return tf.cast(out, tf.float32)


def _class_scores(out, classes):
    """Each sample's score for its class: ``out[i, classes[i]]``; for a single
    sigmoid unit, ``out`` for class 1 and ``1 - out`` for class 0."""
    tf = _tf()
    if out.shape[-1] == 1:
        high = tf.constant(np.array(classes)[:, None] > 0)
        return tf.where(high, out, 1.0 - out)[:, 0]
    idx = tf.constant(np.stack([np.arange(len(classes)), classes], axis=1), tf.int32)
    return tf.gather_nd(out, idx)


#: Compiled ascent steps per model, so that each logged epoch reuses the trace.
_ASCENT_CACHE = weakref.WeakKeyDictionary()


def _ascent_functions(model, targets, input_shape, use_log, output_index, layer=None):
    """(score, step) tf.functions maximising ``targets``: classes of ``model``,
    or units of ``layer``."""
    tf = _tf()
    key = (targets, input_shape, use_log, output_index, None if layer is None else id(layer))
    per_model = _ASCENT_CACHE.setdefault(model, {})
    if key in per_model:
        return per_model[key]
    image = len(input_shape) == 3
    unit_idx = tf.constant(np.stack([np.arange(len(targets)), targets], axis=1), tf.int32)

    def score_of(inp):
        if layer is not None:
            with capture.recording({"units": layer}) as rec:
                model(inp, training=False)
            feats = tf.cast(rec.output("units"), tf.float32)
            per_unit = tf.reduce_mean(feats, axis=list(range(1, len(feats.shape) - 1))) if len(feats.shape) > 2 else feats
            return tf.gather_nd(per_unit, unit_idx)
        s = _class_scores(_class_output(model(inp, training=False), output_index), targets)
        return tf.math.log(s + 1e-7) if use_log else s

    @tf.function(reduce_retracing=True)
    def score(x):
        return score_of(x)

    @tf.function(reduce_retracing=True)
    def step(x, shift, lr, l2, lo, hi, blur):
        with tf.GradientTape() as tape:
            tape.watch(x)
            inp = tf.roll(x, shift=shift, axis=[1, 2]) if image else x
            loss = tf.reduce_sum(score_of(inp))
        grad = tape.gradient(loss, x)
        axes = list(range(1, len(input_shape) + 1))
        grad = grad / (tf.math.reduce_std(grad, axis=axes, keepdims=True) + 1e-8)
        # The L2 term is applied as a decay toward the middle of the range,
        # outside the normalised gradient: normalising it too would turn a
        # flat score (an untrained or dead unit) into a full-speed collapse.
        mid = (lo + hi) / 2.0
        x = mid + (x + lr * grad - mid) * (1.0 - l2)
        if blur:
            x = _blur(x, tf)
        return tf.clip_by_value(x, lo, hi)

    per_model[key] = (score, step)
    return score, step


def last_conv_layer(model):
    """The last layer (depth-first) whose output is (batch, H, W, C), or None."""
    found = None

    def visit(m):
        nonlocal found
        for layer in m.layers:
            if hasattr(layer, "layers") and layer.layers:
                visit(layer)
                continue
            try:
                shape = layer.output.shape
            except Exception:  # subclassed models' sublayers have no symbolic output
                continue
            if len(shape) == 4 and "Conv" in type(layer).__name__:
                found = layer

    visit(model)
    return found


def _upsample(maps, size):
    """Bilinear resize of (N, h, w) maps to (N, H, W) (pure numpy)."""
    n, h, w = maps.shape
    H, W = size

    def axis(src, dst):
        pos = (np.arange(dst) + 0.5) * src / dst - 0.5
        pos = np.clip(pos, 0, src - 1)
        i0 = np.floor(pos).astype(int)
        i1 = np.minimum(i0 + 1, src - 1)
        return i0, i1, pos - i0

    y0, y1, fy = axis(h, H)
    x0, x1, fx = axis(w, W)
    rows = maps[:, y0] * (1 - fy)[None, :, None] + maps[:, y1] * fy[None, :, None]
    return rows[:, :, x0] * (1 - fx)[None, None, :] + rows[:, :, x1] * fx[None, None, :]


def _normalise(maps):
    mx = maps.reshape(len(maps), -1).max(axis=1)
    mx = np.where(mx > 0, mx, 1.0)
    return maps / mx.reshape((-1,) + (1,) * (maps.ndim - 1))


def attribution(model, inputs, classes, layer=None, output_index=0, weighting="elementwise"):
    """Where the model looks: Grad-CAM on a conv layer, else gradient x input.

    Grad-CAM weighs a convolutional layer's feature maps A_k by the gradient
    of the class score and keeps the positive part of the sum over channels.
    ``weighting="elementwise"`` (default) multiplies each feature value by its
    own gradient (the HiResCAM form of Grad-CAM), which stays faithful when
    Dense layers follow the convolution (Flatten + Dense heads, where
    averaged gradients of opposite sign cancel out); ``"mean"`` uses the
    original per-channel average of the gradients.

    Args:
      model: a Keras model (TensorFlow backend), single input.
      inputs: array (N, ...) of probe inputs.
      classes: the class to explain for each input (N,).
      layer: the conv layer (object or name) for Grad-CAM; the last conv layer
        when None; without any, gradient x input saliency is used.
      output_index: which output of a multi-output model.
      weighting: ``"elementwise"`` or ``"mean"`` (see above).

    Returns:
      ``(maps, info)``: float32 maps in [0, 1], (N, H, W) for image inputs
      (Grad-CAM upsampled to the input size) or shaped like one input
      otherwise; ``info = {"method": "gradcam"|"saliency", "layer": name,
      "weighting": ...}``.
    """
    if weighting not in ("elementwise", "mean"):
        raise ValueError('weighting must be "elementwise" or "mean"; got %r' % (weighting,))
    tf = _tf()
    x = tf.constant(np.asarray(inputs, np.float32))
    classes = [int(c) for c in classes]
    if isinstance(layer, str):
        layer = _find_layer(model, layer)
    if layer is None:
        layer = last_conv_layer(model)

    def score(out):
        return tf.reduce_sum(_class_scores(_class_output(out, output_index), classes))

    if layer is None:
        with tf.GradientTape() as tape:
            tape.watch(x)
            s = score(model(x, training=False))
        grad = tape.gradient(s, x)
        if grad is None:
            raise ValueError("the class score does not depend differentiably on the input")
        sal = np.abs(grad.numpy() * x.numpy())
        if sal.ndim == 4:
            sal = sal.sum(axis=-1)
        return _normalise(sal).astype(np.float32), {"method": "saliency", "layer": None, "weighting": None}
    with capture.recording({"features": layer}) as rec:
        with tf.GradientTape() as tape:
            s = score(model(x, training=False))
    feats = rec.output("features")
    grads = tape.gradient(s, feats)
    feats, grads = feats.numpy().astype(np.float64), grads.numpy().astype(np.float64)
    if weighting == "mean":
        grads = np.broadcast_to(grads.mean(axis=(1, 2), keepdims=True), grads.shape)
    cam = np.maximum((feats * grads).sum(axis=-1), 0.0)
    if x.shape.rank == 4:
        cam = _upsample(cam, (int(x.shape[1]), int(x.shape[2])))
    return _normalise(cam).astype(np.float32), {"method": "gradcam", "layer": layer.name, "weighting": weighting}


def _find_layer(model, name):
    for layer in model.layers:
        if layer.name == name:
            return layer
        if hasattr(layer, "layers") and layer.layers:
            try:
                return _find_layer(layer, name)
            except ValueError:
                pass
    raise ValueError("no layer named %r in model %r" % (name, model.name))
