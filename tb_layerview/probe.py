"""The probe: the fixed inputs LayerView passes through the model each epoch.

One place for what a probe is: its checks, the structure the model's call
expects, the names of its inputs, and the true class of each sample.
"""

import dataclasses
import re

import numpy as np

#: Probes are drawn for every layer at every logged epoch; more than this is a
#: mistake (a whole data set passed as probe), not a wish.
MAX_PROBES = 64


def is_text(arr):
    """Whether ``arr`` holds strings (``str`` or ``bytes``), as a model that
    starts with ``TextVectorization`` takes them."""
    return np.asarray(arr).dtype.kind in "US"


def _as_array(value, what, text=True):
    """``value`` as a numpy array: numbers, or (``text``) strings.

    Strings come as numpy ``str``/``bytes`` arrays or as object arrays of
    ``str`` or ``bytes`` (what numpy makes of a TensorFlow string tensor);
    object arrays become ``str``/``bytes`` arrays.
    """
    try:
        arr = np.asarray(value)
    except Exception as e:
        raise TypeError("%s must be array-like; got %s (%s)" % (what, type(value).__name__, e)) from None
    if arr.dtype == object:
        kinds = {type(v) for v in arr.ravel()}
        if text and kinds and kinds <= {str, np.str_}:
            arr = arr.astype(str)
        elif text and kinds and kinds <= {bytes, np.bytes_}:
            arr = arr.astype(bytes)
        else:
            raise TypeError("%s must be an array of numbers%s; got an object array of shape %s holding %s"
                            % (what, " or of strings" if text else "", arr.shape,
                               ", ".join(sorted(k.__name__ for k in kinds)) or "nothing"))
    if not text and is_text(arr):
        raise TypeError("%s must be numbers (class ids, one-hot rows or targets); got strings such as %r"
                        % (what, arr.ravel()[0].item() if arr.size else ""))
    if arr.ndim == 0:
        raise ValueError("%s needs a leading batch axis; got a scalar %r" % (what, arr.item()))
    return arr


def true_class(y):
    """The class index of one label: an integer (or integral float) class id,
    or the argmax of a one-hot / soft label vector; None for a fractional
    scalar (a regression target)."""
    y = np.asarray(y)
    if y.size == 1:
        v = np.ravel(y)[0]
        if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_):
            return int(v)
        v = float(v)
        return int(v) if np.isfinite(v) and v.is_integer() else None
    return int(np.argmax(np.ravel(y)))


#: Keras losses (their names and aliases) of regression targets: an output
#: trained with one of these holds values, not class scores.
REGRESSION_LOSSES = frozenset({
    "mean_squared_error", "mse", "mean_absolute_error", "mae", "mean_absolute_percentage_error", "mape",
    "mean_squared_logarithmic_error", "msle", "huber", "huber_loss", "log_cosh", "logcosh",
    "cosine_similarity"})


def loss_name(loss):
    """A loss as given to ``compile`` (a name, a class name, a function or a
    ``Loss``) by its snake_case name: ``"mse"``, ``"mean_squared_error"``,
    ``"huber_loss"``; ``"MeanSquaredError"`` becomes ``"mean_squared_error"``."""
    name = str(loss if isinstance(loss, str) else
               getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__)
    if name.isupper() or name.islower():  # "MSE", "mse", "huber_loss"
        return name.lower()
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()  # "LogCosh" -> "log_cosh"


#: Output activations that make class scores whatever the loss (a softmax
#: classifier trained with ``mse`` is still a classifier).
CLASS_SCORE_ACTIVATIONS = ("softmax", "log_softmax", "sigmoid")


def regression_outputs(loss, names, activations=None):
    """The names of the model outputs trained as regression targets.

    Their predictions are values, not class scores, and class views do not
    treat them as classes. An output is one when its loss is a regression
    loss and its activation, where known, does not make class scores. The
    loss is ``model.loss``, as given to ``compile``: one loss for every
    output, a list in the order of ``names``, or a dict by output name.

    Args:
      loss: the compiled loss, or None (not compiled: no output is known to
        be a regression).
      names: the output names, in the model's order.
      activations: ``{name: activation name or None}`` of the layers that
        compute the outputs, where the model's graph tells.

    Returns:
      ``{name: loss name}`` of those outputs.

    Example::

        regression_outputs({"cls": "sparse_categorical_crossentropy", "box": "mse"}, ["cls", "box"])
        # {"box": "mse"}
    """
    if loss is None:
        return {}
    if isinstance(loss, dict):
        pairs = [(n, loss.get(n)) for n in names]
    elif isinstance(loss, (list, tuple)):
        pairs = list(zip(names, loss))
    else:
        pairs = [(n, loss) for n in names]
    activations = activations or {}
    losses = {n: loss_name(l) for n, l in pairs if l is not None}
    return {n: l for n, l in losses.items()
            if l in REGRESSION_LOSSES and activations.get(n) not in CLASS_SCORE_ACTIVATIONS}


def predicted_class(scores):
    """The predicted class of one output vector: argmax, or ``score >= 0.5``
    for a single sigmoid unit."""
    s = np.ravel(np.asarray(scores, dtype=np.float64))
    if s.size == 1:
        return int(s[0] >= 0.5)
    return int(np.argmax(np.nan_to_num(s, nan=-np.inf)))


@dataclasses.dataclass
class Probe:
    """Checked probe inputs, with optional labels.

    Attributes:
      inputs: an array, a list of arrays or a dict of arrays.
      labels: array (N, ...) or None.
    """

    inputs: object
    labels: object = None

    @classmethod
    def parse(cls, probe):
        """Checks a probe as given to ``LayerView``: an array, a list or dict
        of arrays, or an ``(x, y)`` tuple.

        Raises:
          TypeError, ValueError: naming the problem and quoting the value.
        """
        labels = None
        if isinstance(probe, tuple):
            if len(probe) != 2:
                raise ValueError("probe given as a tuple must be (x, y); got a tuple of %d items"
                                 % len(probe))
            probe, labels = probe
        if isinstance(probe, dict):
            inputs = {str(k): _as_array(v, "probe[%r]" % k) for k, v in probe.items()}
            arrays = list(inputs.values())
        elif isinstance(probe, list):
            inputs = [_as_array(v, "probe[%d]" % i) for i, v in enumerate(probe)]
            arrays = inputs
        else:
            inputs = _as_array(probe, "probe")
            arrays = [inputs]
        if not arrays:
            raise ValueError("probe is empty: pass at least one input array")
        n = arrays[0].shape[0]
        for a in arrays:
            if a.shape[0] != n:
                raise ValueError("probe inputs disagree on the number of samples: %s"
                                 % [a.shape[0] for a in arrays])
        if n < 1 or n > MAX_PROBES:
            raise ValueError("probe must hold 1 to %d samples (each is drawn for every layer at every"
                             " logged epoch); got %d. Pass a slice such as x[:8]" % (MAX_PROBES, n))
        if labels is not None:
            labels = _as_array(labels, "probe labels (y)", text=False)
            if labels.shape[0] != n:
                raise ValueError("probe labels have %d samples but the inputs have %d"
                                 % (labels.shape[0], n))
        return cls(inputs, labels)

    @property
    def arrays(self):
        if isinstance(self.inputs, dict):
            return list(self.inputs.values())
        return list(self.inputs) if isinstance(self.inputs, list) else [self.inputs]

    @property
    def count(self):
        return int(self.arrays[0].shape[0])

    @property
    def single(self):
        """The probe's one input array, or None for a multi-input probe."""
        return None if isinstance(self.inputs, (list, dict)) else self.inputs

    def for_model(self, model):
        """The probe in the structure the model's call expects.

        A functional model built with ``inputs=[i]`` takes a one-item list; a
        bare array would make Keras warn that the structure does not match.
        """
        inputs = self.inputs
        struct = getattr(model, "_inputs_struct", None)
        if isinstance(inputs, dict):
            names = [getattr(t, "name", None) for t in (getattr(model, "inputs", None) or [])]
            if names and set(names) <= set(inputs):
                return {k: inputs[k] for k in names}
            return inputs
        if not isinstance(inputs, list) and isinstance(struct, (list, tuple)) and len(struct) == 1:
            return [inputs]
        if not isinstance(inputs, list) and isinstance(struct, dict) and len(struct) == 1:
            return {next(iter(struct)): inputs}
        return inputs

    def named(self, model):
        """The probe as ``{input name: array}``, named after the model's input
        layers (``Input(name=...)``), or ``input`` / ``input_<i>``."""
        if isinstance(self.inputs, dict):
            return dict(self.inputs)
        arrays = self.arrays
        names = []
        try:
            for t in model.inputs:
                history = getattr(t, "_keras_history", None)
                op = getattr(history, "operation", None) if history is not None else None
                names.append(getattr(op, "name", None) or t.name)
        except Exception:  # subclassed or unbuilt models have no symbolic inputs
            names = []
        if len(names) != len(arrays) or len(set(names)) != len(names):
            names = ["input_%d" % i for i in range(len(arrays))] if len(arrays) > 1 else ["input"]
        return dict(zip(names, arrays))

    def true_classes(self):
        """The true class of every sample (None where a label is no class), or None without labels."""
        if self.labels is None:
            return None
        return [true_class(y) for y in np.asarray(self.labels)]

    def value_range(self):
        """(low, high) of the single input's values, widened when constant."""
        arr = self.single
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        return (lo, hi) if hi > lo else (lo - 1.0, hi + 1.0)
