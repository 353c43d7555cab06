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


#: Samples kept of a batch taken from a data set given as the probe.
DATASET_PROBES = 8


def _array_like(value):
    return (isinstance(value, (np.ndarray, np.generic, list, tuple, dict, str, bytes))
            or hasattr(value, "__array__") or hasattr(value, "shape"))


def _is_pydataset(value):
    return any(c.__name__ == "PyDataset" for c in type(value).__mro__)


def first_batch(probe):
    """A probe given as a data set (a ``tf.data.Dataset``, a Keras
    ``PyDataset``, a PyTorch ``DataLoader``, any re-iterable of batches), as
    the first :data:`DATASET_PROBES` samples of its first batch, read as
    ``fit`` reads it (``keras.utils.unpack_x_y_sample_weight``): ``x``, or
    ``(x, y)`` from an ``(x, y)`` or ``(x, y, sample_weight)`` batch. Any
    other probe comes back as it is.

    Raises:
      TypeError: a one-shot iterator or generator: a batch taken from it
        would be taken from training too.
      ValueError: an empty data set.

    Example::

        LayerView("logs/run", probe=val_ds)   # the first 8 samples of val_ds
    """
    if _array_like(probe):
        return probe
    if _is_pydataset(probe):
        if len(probe) == 0:
            raise ValueError("probe is an empty data set (%s): it has no batch to take" % type(probe).__name__)
        batch = probe[0]
    elif hasattr(probe, "__iter__"):
        it = iter(probe)
        if it is probe:
            raise TypeError("probe is a one-shot iterator (%s): a batch taken from it would be taken from"
                            " training too. Pass a batch, such as next(iter(dataset)) or x[:8]"
                            % type(probe).__name__)
        try:
            batch = next(it)
        except StopIteration:
            raise ValueError("probe is an empty data set (%s): it has no batch to take"
                             % type(probe).__name__) from None
    else:
        return probe
    import keras

    from tb_layerview import capture

    x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)  # as fit reads a batch

    def head(v):
        if isinstance(v, dict):
            return {k: head(t) for k, t in v.items()}
        if isinstance(v, (list, tuple)):
            return [head(t) for t in v]
        return np.asarray(capture.to_numpy(dense(v)))[:DATASET_PROBES]

    return head(x) if y is None else (head(x), head(y))


def dense(value):
    """A sparse batch (``tf.sparse.SparseTensor``, a ``scipy.sparse`` matrix,
    a JAX ``BCOO`` array) as a dense numpy array; anything else as it is.

    A probe is a few samples, and a model with a ``sparse=True`` input takes
    them dense as well.

    Example::

        dense(scipy.sparse.csr_matrix([[0, 1.5]]))  # array([[0. , 1.5]])
    """
    name = type(value).__name__
    if name in ("SparseTensor", "SparseTensorValue"):
        import tensorflow as tf  # only TensorFlow makes one

        return tf.sparse.to_dense(value).numpy()
    if name == "BCOO":
        return np.asarray(value.todense())
    if callable(getattr(value, "toarray", None)) and hasattr(value, "nnz"):  # scipy.sparse
        return value.toarray()
    return value


def _as_array(value, what, text=True):
    """``value`` as a numpy array: numbers, or (``text``) strings.

    Strings come as numpy ``str``/``bytes`` arrays or as object arrays of
    ``str`` or ``bytes`` (what numpy makes of a TensorFlow string tensor);
    object arrays become ``str``/``bytes`` arrays. Sparse batches are made
    dense (:func:`dense`).
    """
    try:
        arr = np.asarray(dense(value))
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
    """The class index of one label, or None where the label names no single
    class.

    A label is a class when it is an integer (or integral float) class id, or
    a one-hot or soft label vector (non-negative, summing to 1), whose argmax
    is the class. A fractional scalar (a regression target), a multi-hot
    vector (several tags, see :func:`label_set`), any other vector and a
    label of two or more axes (a segmentation mask) name none.

    Example::

        true_class(3)                      # 3
        true_class([0.0, 0.9, 0.1])        # 1
        true_class([1, 0, 1])              # None: two tags
    """
    y = np.asarray(y)
    if y.size == 1 and y.ndim <= 1:
        v = np.ravel(y)[0]
        if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_):
            return int(v)
        v = float(v)
        return int(v) if np.isfinite(v) and v.is_integer() else None
    if y.ndim != 1:
        return None
    v = y.astype(np.float64)
    if not (np.all(np.isfinite(v)) and np.all(v >= 0) and abs(v.sum() - 1.0) < 1e-3):
        return None
    return int(np.argmax(v))


def label_set(y):
    """The classes a multi-hot label vector marks (its 1s, in order), or None
    where the label is not a vector of 0s and 1s.

    Example::

        label_set([1, 0, 1])   # [0, 2]
        label_set([0, 0, 0])   # []
        label_set(2)           # None
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.size < 2:
        return None
    v = y.astype(np.float64)
    if not np.all((v == 0) | (v == 1)):
        return None
    return [int(i) for i in np.flatnonzero(v)]


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


def _loss_of_each(loss, names):
    """``{output name: its loss}`` of a compiled loss: one for every output, a
    list in the order of ``names``, or a dict by output name."""
    if isinstance(loss, dict):
        return {n: loss.get(n) for n in names}
    if isinstance(loss, (list, tuple)):
        return dict(zip(names, loss))
    return {n: loss for n in names}


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
    activations = activations or {}
    losses = {n: loss_name(l) for n, l in _loss_of_each(loss, names).items() if l is not None}
    return {n: l for n, l in losses.items()
            if l in REGRESSION_LOSSES and activations.get(n) not in CLASS_SCORE_ACTIVATIONS}


#: Losses of outputs whose units are independent yes/no scores: with two or
#: more units, such an output tags each probe with any number of classes.
MULTILABEL_LOSSES = frozenset({"binary_crossentropy", "bce", "binary_focal_crossentropy"})


def multilabel_outputs(loss, names, widths, activations=None):
    """The outputs that tag each probe with any number of classes, and the
    score from which a class counts as predicted.

    An output of two or more units is one when its layer's activation is a
    sigmoid (threshold 0.5), or when it is trained with a binary
    cross-entropy and its activation is not a softmax: of probabilities
    (0.5), or of logits (``from_logits=True`` with no sigmoid: 0).

    Args:
      loss: the compiled loss (as for :func:`regression_outputs`), or None.
      names: the output names, in the model's order.
      widths: ``{name: number of units}`` of the outputs that are vectors.
      activations: ``{name: activation name or None}`` of the layers that
        compute them, where the model's graph tells.

    Returns:
      ``{name: threshold}``.

    Example::

        multilabel_outputs("binary_crossentropy", ["tags"], {"tags": 5}, {"tags": "sigmoid"})
        # {"tags": 0.5}
    """
    activations = activations or {}
    losses = _loss_of_each(loss, names) if loss is not None else {}
    out = {}
    for n in names:
        if widths.get(n, 0) < 2:
            continue
        l = losses.get(n)
        if activations.get(n) in ("softmax", "log_softmax"):
            continue  # one class of several, whatever the loss
        if activations.get(n) == "sigmoid":
            out[n] = 0.5
        elif l is not None and loss_name(l) in MULTILABEL_LOSSES:
            logits = bool(getattr(l, "from_logits", False)) and activations.get(n) in (None, "linear")
            out[n] = 0.0 if logits else 0.5
    return out


def predicted_class(scores):
    """The predicted class of one output vector: argmax, or ``score >= 0.5``
    for a single sigmoid unit."""
    s = np.ravel(np.asarray(scores, dtype=np.float64))
    if s.size == 1:
        return int(s[0] >= 0.5)
    return int(np.argmax(np.nan_to_num(s, nan=-np.inf)))


def predicted_set(scores, threshold):
    """The classes a multi-label output predicts: the units whose score is at
    least ``threshold`` (see :func:`multilabel_outputs`), in order."""
    s = np.ravel(np.asarray(scores, dtype=np.float64))
    return [int(i) for i in np.flatnonzero(np.nan_to_num(s, nan=-np.inf) >= threshold)]


def _labels_array(y, n, key=None):
    """One array of probe labels (those of output ``key`` when given), checked to have ``n`` samples."""
    where = "" if key is None else "[%r]" % key
    y = _as_array(y, "probe labels (y)" + where, text=False)
    if y.ndim == 0 or y.shape[0] != n:
        raise ValueError("probe labels%s have %s samples but the inputs have %d"
                         % (where, y.shape[0] if y.ndim else "no", n))
    return y


def graph_input_names(model):
    """The names of a model's flattened ``inputs``: the keys of a model built
    on a dict of inputs, else its input layers' names; None for a model
    without symbolic inputs (subclassed, or not built)."""
    try:
        tensors = list(model.inputs)
    except Exception:  # noqa: BLE001 - subclassed or unbuilt models have no symbolic inputs
        return None
    struct = getattr(model, "_inputs_struct", None)
    keys = {id(t): k for k, t in struct.items()} if isinstance(struct, dict) else {}
    names = []
    for t in tensors:
        op = getattr(getattr(t, "_keras_history", None), "operation", None)
        names.append(keys.get(id(t)) or getattr(op, "name", None) or t.name)
    return names


@dataclasses.dataclass
class Probe:
    """Checked probe inputs, with optional labels.

    Attributes:
      inputs: an array, a list of arrays or a dict of arrays.
      labels: array (N, ...) or None: the labels of the model's first
        labelled output (its only one, mostly), which the class views and
        each probe's ``label`` record use.
      output_labels: the labels of a multi-output model, given per output as
        ``y`` is to ``fit``: ``{output name: array}`` once
        :meth:`resolve_labels` has named them (a list of arrays before, in
        the model's output order); None for one array of labels.
    """

    inputs: object
    labels: object = None
    output_labels: object = None

    @classmethod
    def parse(cls, probe):
        """Checks a probe as given to ``LayerView``: an array, a list or dict
        of arrays, an ``(x, y)`` tuple, or a data set (:func:`first_batch`).

        Raises:
          TypeError, ValueError: naming the problem and quoting the value.
        """
        if isinstance(probe, cls):  # a LayerView's copy: its own record of the same checked probe
            return dataclasses.replace(probe)
        labels = None
        probe = first_batch(probe)
        if isinstance(probe, tuple):
            # (x, y, sample_weight), as fit's validation_data takes it: the weights do not matter here.
            if len(probe) not in (2, 3):
                raise ValueError("probe given as a tuple must be (x, y) or (x, y, sample_weight); got a tuple"
                                 " of %d items" % len(probe))
            probe, labels = probe[:2]
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
        output_labels = None
        if isinstance(labels, dict) or (isinstance(labels, (list, tuple)) and len(labels) > 1 and all(
                len(getattr(y, "shape", ())) >= 1 and y.shape[0] == n for y in labels)):
            # One array per output of a multi-output model, as fit takes y (a
            # list of numbers, or of one-hot rows, is one output's labels).
            keyed = labels.items() if isinstance(labels, dict) else enumerate(labels)
            output_labels = {k if isinstance(k, int) else str(k): _labels_array(y, n, k) for k, y in keyed}
            if not output_labels:
                raise ValueError("probe labels (y) is an empty %s; pass one array per output or none"
                                 % type(labels).__name__)
            if isinstance(labels, dict):
                labels = next(iter(output_labels.values()))
            else:
                labels, output_labels = output_labels[0], list(output_labels.values())
        elif labels is not None:
            labels = _labels_array(labels, n)
        return cls(inputs, labels, output_labels)

    def resolve_labels(self, output_names):
        """Names the per-output labels after the model's outputs (``output_names``,
        in the model's order) and takes :attr:`labels` from the first
        labelled one. Nothing to do for one array of labels.

        Raises:
          ValueError: labels for an output the model does not have, or a
            list of labels whose length is not the number of outputs.
        """
        if self.output_labels is None:
            return
        names = list(output_names)
        given = self.output_labels
        if isinstance(given, list):
            if len(given) != len(names):
                raise ValueError("probe labels (y) is a list of %d arrays but the model has %d outputs (%s)"
                                 % (len(given), len(names), ", ".join(names)))
            given = dict(zip(names, given))
        unknown = [k for k in given if k not in names]
        if unknown:
            raise ValueError("probe labels (y) name outputs the model does not have: %s; its outputs are: %s"
                             % (", ".join(map(repr, unknown)), ", ".join(names)))
        self.output_labels = {n: given[n] for n in names if n in given}
        self.labels = next(iter(self.output_labels.values()))

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
        names = graph_input_names(model) or []
        if len(names) != len(arrays) or len(set(names)) != len(names):
            names = ["input_%d" % i for i in range(len(arrays))] if len(arrays) > 1 else ["input"]
        return dict(zip(names, arrays))

    def input_names(self, model):
        """The probe's name (a key of :meth:`named`) of each of the model's
        flattened ``inputs``, in order, or None where they cannot be matched
        (a subclassed model has no symbolic inputs)."""
        keys = list(self.named(model))
        graph = graph_input_names(model)
        if graph is None or len(graph) != len(keys):
            return None
        return graph if set(graph) == set(keys) else keys

    def true_classes(self, output=None):
        """The true class of every sample (None where a label is no class), or None without labels.

        Args:
          output: the name of the output whose labels to read, where they
            were given per output (:meth:`resolve_labels`); by default, or
            for one array of labels, :attr:`labels`.
        """
        labels = self.labels
        if output is not None and isinstance(self.output_labels, dict):
            if output not in self.output_labels:
                return None
            labels = self.output_labels[output]
        if labels is None:
            return None
        return [true_class(y) for y in np.asarray(labels)]

    def value_range(self):
        """(low, high) of the single input's values, widened when constant."""
        arr = self.single
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        return (lo, hi) if hi > lo else (lo - 1.0, hi + 1.0)
