"""Class views: what a network "sees" for each class, and where it looks.

* :func:`backquery` runs a network of Dense layers backwards: the target
  output of a class goes through each layer's inverse activation, minus the
  bias, through the transposed kernel, rescaled into the previous layer's
  range, down to an input-shaped image. Pure numpy; :func:`backquery_plan`
  extracts the layers from a Keras model or says which layer prevents it.
* :func:`maximize` is activation maximisation: a regularised gradient ascent
  on the input for every chosen class at once, with the backend's own
  gradients (TensorFlow, JAX or PyTorch; :mod:`tb_layerview.gradients`).
* :func:`attribution` gives Grad-CAM maps on a convolutional layer, or
  gradient x input saliency for models without one (any of those backends).

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
from tb_layerview import gradients
from tb_layerview import walk

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
    name = getattr(act, "__name__", None) or (walk.layer_config(layer).get("activation") if hasattr(layer, "get_config") else None)
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
    plan, names = [], []

    def visit(m):
        # A functional model's operations include keras.ops calls made outside any layer.
        for layer in getattr(m, "operations", None) or m.layers:
            cls = type(layer).__name__
            if not isinstance(layer, keras.layers.Layer):
                raise BackQueryUnavailable(
                    "back-query is unavailable: %r applies the operation %r (%s) outside any layer. Use"
                    " activation maximisation instead." % (m.name, getattr(layer, "name", cls), cls))
            calls = len(getattr(layer, "_inbound_nodes", None) or ()) if not isinstance(layer, keras.Model) else 0
            if calls > 1:
                raise BackQueryUnavailable(
                    "back-query is unavailable: layer %r (%s) is called %d times in the model, so the model"
                    " is not a chain of layers. Use activation maximisation instead." % (layer.name, cls, calls))
            if isinstance(layer, keras.Model):
                visit(layer)
            elif isinstance(layer, keras.layers.Dense):
                act = _activation_name(layer)
                if act not in INVERTIBLE:
                    raise BackQueryUnavailable(
                        "back-query is unavailable: layer %r (Dense) uses the %r activation, which has no"
                        " inverse (needs sigmoid, tanh, linear or softmax). Use activation maximisation"
                        " instead." % (layer.name, act))
                kernel = capture.snapshot(layer.kernel)
                bias = capture.snapshot(layer.bias) if layer.use_bias else None
                if plan and plan[-1][0].shape[1] != kernel.shape[0]:
                    raise BackQueryUnavailable(
                        "back-query is unavailable: the Dense layers do not form a chain (%r gives %d values,"
                        " %r takes %d). Use activation maximisation instead."
                        % (names[-1], plan[-1][0].shape[1], layer.name, kernel.shape[0]))
                bias = np.zeros(kernel.shape[1]) if bias is None else bias
                plan.append((np.asarray(kernel, np.float64), np.asarray(bias, np.float64), act))
                names.append(layer.name)
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
        with capture.one_blas_thread():  # no spinning BLAS workers left behind for training
            signal = z @ kernel.T
        below = _RANGES[plan[i - 1][2]] if i > 0 else input_range
        if below is not None:
            signal = rescale(signal, *below)
    return signal


def _blur(x):
    """A 3x3 binomial blur of each channel of NHWC images."""
    from keras import ops

    k = np.outer([1, 2, 1], [1, 2, 1]).astype(np.float32) / 16.0
    c = x.shape[-1]
    kernel = ops.cast(ops.convert_to_tensor(np.tile(k[:, :, None, None], (1, 1, c, 1))), x.dtype)
    return ops.depthwise_conv(x, kernel, strides=1, padding="same", data_format="channels_last")


def maximize(model, classes=None, input_shape=None, steps=64, learning_rate=0.05, l2=0.01, jitter=2,
             blur_every=4, value_range=(0.0, 1.0), seed=0, output_index=0, record_every=8,
             layer=None, units=None, channels_first=False):
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

    The gradients are the backend's own (:mod:`tb_layerview.gradients`):
    ``tf.GradientTape`` in a ``tf.function``, ``jax.value_and_grad`` in a
    ``jax.jit``, or ``torch.autograd``. The same weights give the same
    images on every backend, up to float32 rounding.

    Args:
      model: a differentiable Keras model (TensorFlow, JAX or PyTorch backend), single input.
      classes: output indices to maximise (ignored with ``layer``).
      input_shape: input shape without batch axis; from the model when None.
      steps, learning_rate, l2, jitter, blur_every: see above.
      value_range: (low, high) of valid input values.
      seed: seed of the starting noise.
      output_index: which output of a multi-output model, in the model's
        order (:func:`output_of`).
      record_every: the un-jittered target scores are recorded every this
        many steps, and after the last.
      layer: a layer (object or name) whose units to maximise instead.
      units: the unit (channel) indices of ``layer``.
      channels_first: the model takes images as (C, H, W). The images are
        optimised, shifted, blurred and returned channels last (H, W, C), and
        turned to the model's layout for each call.

    Returns:
      ``(images, history)``: float32 array (K,) + input_shape (channels last,
      see above), and the target
      scores (log-probabilities for outputs in [0, 1]), one row (K,) per
      record, the first before any step and the last after the final step.
    """
    g = gradients.for_backend()
    if input_shape is None:
        input_shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    input_shape = tuple(int(d) for d in input_shape)
    channels_first = bool(channels_first) and len(input_shape) == 3
    if channels_first:
        input_shape = input_shape[1:] + input_shape[:1]
    if isinstance(layer, str):
        layer = find_layer(model, layer)
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
    x = g.constant(rng.uniform(mid - spread, mid + spread, (len(targets),) + input_shape))
    image = len(input_shape) == 3
    # Rolling wraps pixels around: keep shifts small next to the image size.
    jitter = min(int(jitter), min(input_shape[:2]) // 16) if image else 0
    shift_rng = np.random.default_rng(seed + 1)
    state = g.state(model)
    if layer is None:
        first = capture.to_numpy(_class_output(model, g.call(model, state, _model_layout(x, channels_first)),
                                               output_index))
        use_log = bool(np.all(first >= 0.0) and np.all(first <= 1.0))
    else:
        use_log = False
    score, step_fn = _ascent_functions(g, model, tuple(targets), input_shape, use_log, output_index, layer,
                                       channels_first)
    history = []
    params = tuple(g.constant(v) for v in (learning_rate * (hi - lo), l2, lo, hi))
    for step in range(steps):
        if step % record_every == 0:
            history.append(capture.to_numpy(score(state, x)))
        shift = shift_rng.integers(-jitter, jitter + 1, 2) if jitter else np.zeros(2, int)
        blur = bool(image and blur_every and (step + 1) % blur_every == 0)
        x = step_fn(state, x, g.shift(shift), *params, blur=blur)
    history.append(capture.to_numpy(score(state, x)))
    return capture.to_numpy(x).astype(np.float32), np.stack(history)


def output_of(model, out, output_index):
    """Output ``output_index`` of ``out``, what ``model`` returned: a list's
    item, or a dict's in the model's order (:func:`tb_layerview.walk.output_keys`,
    the same on every backend)."""
    if isinstance(out, (list, tuple)):
        return out[output_index]
    if isinstance(out, dict):
        return out[walk.output_keys(model, out)[output_index]]
    return out


def _class_output(model, out, output_index):
    from keras import ops

    return ops.cast(output_of(model, out, output_index), "float32")


def _pick(out, indices):
    """``out[i, indices[i]]`` for each row ``i``, as a sum with a one-hot mask
    (the same operations on every backend, inside or outside compiled code)."""
    from keras import ops

    onehot = np.zeros((len(indices), int(out.shape[-1])), np.float32)
    onehot[np.arange(len(indices)), np.asarray(indices, np.int64)] = 1.0
    return ops.sum(out * ops.convert_to_tensor(onehot), axis=-1)


def _class_scores(out, classes):
    """Each sample's score for its class: ``out[i, classes[i]]``; for a single
    sigmoid unit, ``out`` for class 1 and ``1 - out`` for class 0. ``classes``
    is a list or an int tensor, which a compiled function takes as an
    argument, so that new classes do not trace it again."""
    from keras import ops

    if isinstance(classes, (list, tuple, np.ndarray)):
        classes = np.asarray(classes, np.int32)
    if out.shape[-1] == 1:
        high = ops.cast(ops.greater(classes, 0), "float32")
        return high * out[:, 0] + (1.0 - high) * (1.0 - out[:, 0])
    return ops.sum(out * ops.one_hot(classes, int(out.shape[-1])), axis=-1)


#: Compiled ascent steps per model, so that each logged epoch reuses the trace.
_ASCENT_CACHE = weakref.WeakKeyDictionary()
#: Compiled attribution gradients per model (JAX), for the same reason.
_ATTRIBUTION_CACHE = weakref.WeakKeyDictionary()


def compiled_count(model):
    """How many class-view functions are cached (traced or compiled) for
    ``model``: a run that raises it compiled one, and took longer than the
    runs after it will."""
    return sum(len(cache.get(model, ())) for cache in (_ASCENT_CACHE, _ATTRIBUTION_CACHE))


def _model_layout(x, channels_first):
    """Channels-last images (N, H, W, C) as a channels-first model takes them."""
    from keras import ops

    return ops.transpose(x, (0, 3, 1, 2)) if channels_first else x


def _ascent_functions(g, model, targets, input_shape, use_log, output_index, layer=None, channels_first=False):
    """(score, step) functions maximising ``targets``: classes of ``model``,
    or units of ``layer``, compiled by the backend ``g``; ``input_shape`` is
    channels last, and ``channels_first`` models get their inputs transposed."""
    from keras import ops

    key = (g.name, targets, input_shape, use_log, output_index, None if layer is None else id(layer),
           channels_first)
    per_model = _ASCENT_CACHE.setdefault(model, {})
    if key in per_model:
        return per_model[key]
    image = len(input_shape) == 3
    axes = list(range(1, len(input_shape) + 1))
    # The caches are keyed weakly by the model, so their functions reach it
    # through a weak reference: a model the user drops (one per trial of a
    # search) is then freed, with its compiled functions.
    model = weakref.ref(model)
    unit_cf = layer is not None and walk.data_format_of(layer) == "channels_first"

    def score_of(state, inp):
        inp = _model_layout(inp, channels_first)
        if layer is not None:
            with capture.recording({"units": layer}) as rec:
                g.call(model(), state, inp)
            feats = ops.cast(rec.output("units"), "float32")
            rank = len(feats.shape)
            if rank > 2:  # a unit's mean over its positions
                feats = ops.mean(feats, axis=list(range(2, rank)) if unit_cf else list(range(1, rank - 1)))
            return _pick(feats, targets)  # a unit's mean, even for a layer of one unit
        s = _class_scores(_class_output(model(), g.call(model(), state, inp), output_index), targets)
        return ops.log(s + 1e-7) if use_log else s

    def loss(x, shift, state):
        inp = g.roll(x, shift) if image else x
        return ops.sum(score_of(state, inp)), None

    def step(state, x, shift, lr, l2, lo, hi, blur=False):
        _, _, grad = g.value_and_grad(loss, x, shift, state)
        grad = grad / (ops.std(grad, axis=axes, keepdims=True) + 1e-8)
        # The L2 term is applied as a decay toward the middle of the range,
        # outside the normalised gradient: normalising it too would turn a
        # flat score (an untrained or dead unit) into a full-speed collapse.
        mid = (lo + hi) / 2.0
        x = mid + (x + lr * grad - mid) * (1.0 - l2)
        if blur:
            x = _blur(x)
        return ops.clip(x, lo, hi)

    per_model[key] = (g.compile(score_of), g.compile(step, static=("blur",)))
    return per_model[key]


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


def attribution(model, inputs, classes, layer=None, output_index=0, weighting="elementwise", channels_first=False,
                image=None):
    """Where the model looks: Grad-CAM on a conv layer, else gradient x input.

    Grad-CAM weighs a convolutional layer's feature maps A_k by the gradient
    of the class score and keeps the positive part of the sum over channels.
    ``weighting="elementwise"`` (default) multiplies each feature value by its
    own gradient (the HiResCAM form of Grad-CAM), which stays faithful when
    Dense layers follow the convolution (Flatten + Dense heads, where
    averaged gradients of opposite sign cancel out); ``"mean"`` uses the
    original per-channel average of the gradients.

    Args:
      model: a Keras model (TensorFlow, JAX or PyTorch backend), single input.
      inputs: array (N, ...) of probe inputs.
      classes: the class to explain for each input (N,).
      layer: the conv layer (object or name) for Grad-CAM; the last conv layer
        when None; without any, gradient x input saliency is used.
      output_index: which output of a multi-output model, in the model's
        order (:func:`output_of`).
      weighting: ``"elementwise"`` or ``"mean"`` (see above).
      channels_first: the inputs are images (N, C, H, W). The conv layer's
        channel axis is its own (:func:`tb_layerview.walk.data_format_of`).
      image: for a model of several inputs (``inputs`` a list or dict of
        arrays, in the structure the model takes), the index or key of the
        image input the conv layer sees, whose size the maps take. Only
        Grad-CAM explains such a model (its other inputs need not be
        differentiable).

    Returns:
      ``(maps, info)``: float32 maps in [0, 1], (N, H, W) for image inputs
      (Grad-CAM upsampled to the input size) or shaped like one input
      otherwise; ``info = {"method": "gradcam"|"saliency", "layer": name,
      "weighting": ...}``.
    """
    if weighting not in ("elementwise", "mean"):
        raise ValueError('weighting must be "elementwise" or "mean"; got %r' % (weighting,))
    g = gradients.for_backend()
    if isinstance(inputs, (list, tuple, dict)):
        if image is None:
            raise ValueError("attribution of a model of several inputs needs image=, the index or key of the"
                             " image input its conv layer sees; got inputs %s"
                             % (list(inputs) if isinstance(inputs, dict) else "of %d arrays" % len(inputs)))
        import keras

        x_np = np.asarray(inputs[image], np.float32)
        x = keras.tree.map_structure(g.constant, inputs)
    else:
        x_np = np.asarray(inputs, np.float32)
        x = g.constant(x_np)
    channels_first = bool(channels_first) and x_np.ndim == 4
    spatial = (int(x_np.shape[-2]), int(x_np.shape[-1])) if channels_first else tuple(int(d) for d in x_np.shape[1:3])
    classes = [int(c) for c in classes]
    if isinstance(layer, str):
        layer = find_layer(model, layer)
    if layer is None:
        layer = last_conv_layer(model)
    state = g.state(model)
    labels = np.asarray(classes, np.int32)
    saliency = layer is None
    if saliency and isinstance(x, (list, dict)):
        raise ValueError("attribution of a model of several inputs needs a conv layer (Grad-CAM); this model has none")
    gradient = _attribution_gradient(g, model, layer, output_index)
    if saliency:
        grad = gradient(state, x, labels)
        if grad is None:
            raise ValueError("the class score does not depend differentiably on the input")
        sal = np.abs(capture.to_numpy(grad) * x_np)
        if sal.ndim == 4:
            sal = sal.sum(axis=1 if channels_first else -1)
        return _normalise(sal).astype(np.float32), {"method": "saliency", "layer": None, "weighting": None}
    feats, grads = gradient(state, x, labels)
    feats, grads = capture.to_numpy(feats).astype(np.float64), capture.to_numpy(grads).astype(np.float64)
    if walk.data_format_of(layer) == "channels_first" and feats.ndim == 4:
        feats, grads = np.moveaxis(feats, 1, -1), np.moveaxis(grads, 1, -1)
    if weighting == "mean":
        grads = np.broadcast_to(grads.mean(axis=(1, 2), keepdims=True), grads.shape)
    cam = np.maximum((feats * grads).sum(axis=-1), 0.0)
    if x_np.ndim == 4:
        cam = _upsample(cam, spatial)
    return _normalise(cam).astype(np.float32), {"method": "gradcam", "layer": layer.name, "weighting": weighting}


def _attribution_gradient(g, model, layer, output_index):
    """``fn(state, x, classes)``: the gradient of the summed class scores with
    respect to the input (``layer`` None) or, for Grad-CAM, ``(features,
    gradient)`` of ``layer``'s output. On JAX it is compiled once per model
    and layer: run eagerly, JAX compiles each operation of the gradient on
    its first call (seed CNN: 2.5 s for the first attribution of a process,
    then 0.02 s), and the whole function compiles in less.

    The gradient with respect to the layer's output is taken as the gradient
    of a zero offset added to it: the one form every backend differentiates.
    """
    from keras import ops

    cache = _ATTRIBUTION_CACHE.setdefault(model, {}) if g.name == "jax" else {}
    key = (None if layer is None else id(layer), output_index)
    if key in cache:
        return cache[key]
    # The caches are keyed weakly by the model, so their functions reach it
    # through a weak reference: a model the user drops (one per trial of a
    # search) is then freed, with its compiled functions.
    model = weakref.ref(model)

    def score(out, classes):
        return ops.sum(_class_scores(_class_output(model(), out, output_index), classes))

    if layer is None:
        def gradient(state, x, classes):
            return g.value_and_grad(lambda v: (score(g.call(model(), state, v), classes), None), x)[2]
    else:
        def gradient(state, x, classes):
            with capture.recording({"features": layer}) as rec:
                g.call(model(), state, x)
            feats = rec.output("features")
            if feats is None:
                raise ValueError("layer %r was not called when the model ran on the probe" % layer.name)

            def layer_score(offset):
                with capture.recording({"features": layer}, offsets={"features": offset}):
                    return score(g.call(model(), state, x), classes), None

            return feats, g.value_and_grad(layer_score, ops.zeros_like(feats))[2]
    if g.name != "jax":
        return gradient
    cache[key] = g.compile(gradient)
    return cache[key]


def find_layer(model, name):
    """The layer called ``name`` in ``model`` or a model nested in it (depth first).

    Raises:
      ValueError: naming the layer and the model, when there is none.
    """
    for layer in model.layers:
        if layer.name == name:
            return layer
        if hasattr(layer, "layers") and layer.layers:
            try:
                return find_layer(layer, name)
            except ValueError:
                pass
    raise ValueError("no layer named %r in model %r" % (name, model.name))
