"""The layer walk: every layer of a model in order, with its path.

Nested models (and a model wrapped in ``TimeDistributed``) are entered, so
their layers get paths such as ``encoder/conv1``; so are layers of your own
that hold layers (a transformer block's attention, dense and normalisation
layers: ``block/dense``), which keep their own output too. Shared layers
appear once (their calls are told apart by the capture:
:func:`tb_layerview.capture.output_key`).
A functional model's graph also holds the ``keras.ops`` operations written
between its layers (``x + shortcut``, ``keras.ops.relu(x)``); Keras' own
``summary()`` lists them, and so does the walk (:func:`members`), so a
residual sum written as ``+`` is watched like an ``Add`` layer.
"""

import dataclasses
import functools
import sys
import threading


_config_lock = threading.Lock()


#: A value of a layer's configuration with more numbers or items than this,
#: or a string longer than CONFIG_MAX_CHARS, is described rather than
#: stored: a Constant initializer holding a 20,000 x 100 embedding matrix
#: took 1.3 s of Keras serialising it on the training thread and made a
#: 38 MB configuration record (GloVe's 400,000 x 300 would hold gigabytes).
CONFIG_MAX_VALUES = 1024
CONFIG_MAX_CHARS = 4096


def described(obj):
    """A short description of a configuration value too large to store, else None.

    Example::

        described(np.zeros((20000, 100), "float32"))
        # 'array of shape (20000, 100), float32: 2000000 values, not stored'
    """
    shape = getattr(obj, "shape", None)
    if shape is not None and hasattr(obj, "dtype") and not isinstance(obj, (str, bytes)):
        try:
            dims = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            return None
        size = 1
        for d in dims:
            size *= d
        if size > CONFIG_MAX_VALUES:
            return "array of shape %s, %s: %d values, not stored" % (dims, getattr(obj.dtype, "name", obj.dtype), size)
        return None
    if isinstance(obj, (list, tuple)) and _count_leaves(obj, CONFIG_MAX_VALUES) > CONFIG_MAX_VALUES:
        dims, inner = [], obj
        while isinstance(inner, (list, tuple)) and inner:
            dims.append(len(inner))
            inner = inner[0]
        return "list of %s items, not stored" % " x ".join(map(str, dims))
    if isinstance(obj, str) and len(obj) > CONFIG_MAX_CHARS:
        return obj[:CONFIG_MAX_CHARS] + "... (%d characters in all)" % len(obj)
    return None


def _count_leaves(obj, limit):
    """Items of a nested list or tuple; counting stops past ``limit``."""
    n = 0
    for v in obj:
        n += _count_leaves(v, limit - n) if isinstance(v, (list, tuple)) else 1
        if n > limit:
            break
    return n


def layer_config(layer):
    """``layer.get_config()``, cheap to take and to store whatever the layer holds.

    Two things are avoided while Keras serialises the config:

    * Keras checks whether each value is one of TensorFlow's types, and the
      first such check imports TensorFlow wherever it is installed, on every
      backend: on JAX or PyTorch that import took 2.8 s of the first step
      here, once per process. No value can be of a type whose module was
      never imported, so while TensorFlow is not imported, Keras is told for
      the call that it is unavailable; the config comes out the same.
    * An array or list of more than ``CONFIG_MAX_VALUES`` values (an
      initializer holding pretrained embeddings) is described
      (:func:`described`), not turned into Python numbers one by one.

    Both only apply to this thread's call: another thread saving the model
    meanwhile serialises it whole.

    Example::

        layer_config(keras.layers.Dense(3))["units"]  # 3
    """
    try:
        from keras.src.saving import serialization_lib
        from keras.src.utils import module_utils

        lazy = module_utils.tensorflow
        original = serialization_lib.serialize_keras_object
    except Exception:  # noqa: BLE001 - another Keras: call it as it is
        return layer.get_config()
    me = threading.get_ident()

    def serialize(obj):
        if threading.get_ident() == me:
            brief = described(obj)
            if brief is not None:
                return brief
        return original(obj)

    flag = "tensorflow" not in sys.modules and getattr(lazy, "_available", True) is None
    with _config_lock:
        if flag:
            lazy._available = False
        serialization_lib.serialize_keras_object = serialize
        try:
            return layer.get_config()
        finally:
            serialization_lib.serialize_keras_object = original
            if flag and lazy._available is False and getattr(lazy, "module", None) is None:
                lazy._available = None  # asked again later, Keras looks for TensorFlow as before


@dataclasses.dataclass(frozen=True, eq=False)
class LayerEntry:
    """One layer in model order.

    Attributes:
      layer: the Keras layer.
      path: ``"conv1"``, or ``"encoder/conv1"`` inside a nested model.
      parent: path of the enclosing nested model; empty at the top level.
      index: position in model order (depth-first).
      container: a nested model, whose layers follow under ``path/``.
      per_time_step: the layer runs once per time step inside a
        ``TimeDistributed`` wrapper; its calls are stacked along axis 1.
      composite: a layer of your own that holds layers
        (:func:`sublayers`): they follow under ``path/``, and unlike a
        nested model's, its output is its own.
    """

    layer: object
    path: str
    parent: str
    index: int
    container: bool
    per_time_step: bool = False
    composite: bool = False

    @property
    def layer_class(self):
        return type(self.layer).__name__

    @functools.cached_property
    def data_format(self):
        return data_format_of(self.layer)


#: Layers that return attention scores beside their output: (batch, heads,
#: queries, keys), one map per head.
ATTENTION_CLASSES = ("MultiHeadAttention", "GroupedQueryAttention")


def output_channels_first(layer, further=False):
    """Whether an output of ``layer`` keeps its channels on axis 1 (for its
    4-D and 5-D outputs): :func:`data_format_of` for the layer's own output
    (``further`` False); for the attention scores an attention layer returns
    beside it (``further``: a second output of a ``MultiHeadAttention`` or
    ``GroupedQueryAttention``), always: their channels are the heads, each a
    queries x keys map.

    Example::

        output_channels_first(keras.layers.MultiHeadAttention(4, 8), further=True)  # True
    """
    if further and any(c.__name__ in ATTENTION_CLASSES for c in type(layer).__mro__):
        return True
    return data_format_of(layer) == "channels_first"


def data_format_of(layer, _hops=0):
    """Where a layer's image-like (4-D and 5-D) outputs keep their channels:
    ``"channels_first"`` or ``"channels_last"``.

    The layer's own ``data_format`` where it has one (convolutions, pooling);
    else a channel axis it names, 1 or -1 (``BatchNormalization(axis=1)``,
    ``Concatenate(axis=1)``); else ``channels_first`` for a wrapped PyTorch
    module, whose convention that is, and ``channels_last`` for a Dense
    layer, which acts on the last axis. A layer with none of these (the
    ``Activation`` and ``Add`` layers of a channels-first ResNet) keeps the
    layout of the layer that feeds it, in a model's graph; without one,
    Keras' ``image_data_format()`` decides.
    """
    fmt = getattr(layer, "data_format", None)
    if fmt in ("channels_first", "channels_last"):
        return fmt
    axis = getattr(layer, "axis", None)
    if type(axis) is int and axis in (1, -1):
        return "channels_first" if axis == 1 else "channels_last"
    kinds = {c.__name__ for c in type(layer).__mro__}
    if "TorchModuleWrapper" in kinds:
        return "channels_first"
    if kinds & {"Dense", "EinsumDense"}:
        return "channels_last"
    nodes = getattr(layer, "_inbound_nodes", None) or ()
    if nodes and _hops < 100:
        for t in getattr(nodes[0], "input_tensors", ()):
            source = getattr(getattr(t, "_keras_history", None), "operation", None)
            if source is not None and type(source).__name__ != "InputLayer":
                return data_format_of(source, _hops + 1)
    import keras

    return keras.config.image_data_format()


def _is_model(layer):
    return any(c.__name__ in ("Model", "Functional", "Sequential") for c in type(layer).__mro__)


def members(model):
    """A model's layers in its order; for a functional model also the
    operations between them, where they run (its graph's order)."""
    ops = getattr(model, "_operations", None)
    if ops is not None and any(c.__name__ == "Functional" for c in type(model).__mro__):
        return list(ops)
    return list(getattr(model, "layers", []))


def _time_distributed_inner(layer):
    if type(layer).__name__ != "TimeDistributed":
        return None
    inner = getattr(layer, "layer", None)
    return inner if inner is not None and _is_model(inner) else None


def sublayers(layer):
    """The layers a layer of your own holds, in the order it tracked them
    (a transformer block's attention, dense and normalisation layers, kept
    in attributes, lists or dicts); none for models, which :func:`members`
    lists, and for Keras' own layers, whose parts (the query, key and value
    projections of ``MultiHeadAttention``, the two directions of
    ``Bidirectional``) are details of one documented layer.

    Example::

        class Block(keras.layers.Layer):
            def __init__(self):
                super().__init__()
                self.norm = keras.layers.LayerNormalization()
                self.ffn = [keras.layers.Dense(32), keras.layers.Dense(8)]

        [l.name for l in sublayers(Block())]  # the norm and both Dense layers
    """
    if _is_model(layer) or type(layer).__module__.split(".", 1)[0] in ("keras", "tf_keras"):
        return []
    try:
        found = layer._flatten_layers(include_self=False, recursive=False)
    except Exception:  # noqa: BLE001 - another Keras: its tracked list, if any
        found = getattr(layer, "_layers", None) or []
    return [s for s in found if s is not layer]


def walk(model):
    """Depth-first list of :class:`LayerEntry` for ``model`` (input layers
    left out, the operations of functional graphs in: :func:`members`)."""
    entries, seen = [], set()

    def visit(layers, prefix, per_step):
        for layer in layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            if type(layer).__name__ == "InputLayer":
                continue
            path = prefix + layer.name
            container = _is_model(layer)
            inside = members(layer) if container else sublayers(layer)
            entries.append(LayerEntry(layer, path, prefix[:-1], len(entries), container, per_step,
                                      composite=bool(inside) and not container))
            visit(inside, path + "/", per_step)
            inner = _time_distributed_inner(layer)
            if inner is not None and id(inner) not in seen:
                seen.add(id(inner))
                inner_path = path + "/" + inner.name
                entries.append(LayerEntry(inner, inner_path, path, len(entries), True, True))
                visit(members(inner), inner_path + "/", True)

    visit(members(model), "", False)
    return entries


def output_keys(model, out):
    """The keys of ``out``, a dict of the model's outputs, in the model's
    order: the order a functional model was built with (``keras.Model(i,
    {"box": ..., "cls": ...})``), which PyTorch's backend hands back sorted
    and TensorFlow's and JAX's as built; else the dict's own order (a
    subclassed model's, as its ``call`` returns it on every backend).

    Example::

        names = output_keys(model, model(x))  # ["box", "cls"] on every backend
    """
    struct = getattr(model, "_outputs_struct", None)
    if isinstance(struct, dict) and set(map(str, struct)) == set(map(str, out)) and len(struct) == len(out):
        by_name = {str(k): k for k in out}
        return [by_name[str(k)] for k in struct]
    return list(out)


def output_layers(model, names):
    """``{output name: the layer that computes it}`` where the model's graph
    tells (functional and Sequential models); ``names`` are the names the
    callback gives the outputs (a dict's keys, else in ``model.outputs``
    order). Subclassed models have no graph: ``{}``.
    """
    try:
        struct = getattr(model, "_outputs_struct", None)
        tensors = dict(struct) if isinstance(struct, dict) else dict(zip(names, list(model.outputs)))
    except Exception:  # noqa: BLE001 - no symbolic outputs
        return {}
    out = {}
    for name, t in tensors.items():
        op = getattr(getattr(t, "_keras_history", None), "operation", None)
        if op is not None and name in names:
            out[name] = op
    return out


class InputReach:
    """Which of a model's inputs each layer call depends on.

    A probe picture belongs beside the layers its input reaches: the second
    call of a siamese encoder (``encoder/conv@2``) sees the right image, not
    the left. Functional and Sequential models say it through their graph,
    which Keras runs node by node in a fixed order (deepest first), so the
    n-th node of a layer in that order is the n-th call the capture counts.
    Layers of a model without a graph (subclassed) get every input its call
    reaches, or none are known at all at the top level.

    Example::

        reach = InputReach(siamese, ["left", "right"])
        reach.of("encoder/conv", 2)  # ("right",)
    """

    def __init__(self, model, names, entries=None):
        """Args:
          model: the model whose calls the capture counts.
          names: the name of each of ``model.inputs`` (flattened), in order.
          entries: :func:`walk` of the model (walked here when None): a
            layer's calls are counted under its one path, however many
            nested models share it.
        """
        self._calls = {}  # path -> [frozenset of input names, per call in order]
        self._loose = {}  # path of a model without a graph -> what every call of its layers reaches
        self._composite = set()  # paths of layers of your own that hold layers (LayerEntry.composite)
        names = list(names)
        # Everything depends on a model's one input, whatever the model's kind.
        self._all = frozenset(names) if len(names) == 1 else None
        self._known = False
        if self._all is not None or not names or not _is_model(model):
            return
        try:
            entries = walk(model) if entries is None else entries
            self._paths = {id(e.layer): e.path for e in entries}
            self._composite = {e.path for e in entries if e.composite}
            tensors = list(getattr(model, "inputs", None) or ())
            if len(tensors) == len(names):
                self._known = self._run(model, [frozenset([n]) for n in names], 0) is not None
        except Exception:  # noqa: BLE001 - an unusual graph: no answer rather than a wrong one
            self._calls, self._known = {}, False

    def of(self, path, call=1):
        """The names of the inputs call ``call`` (from 1) of layer ``path``
        depends on, sorted; None when the model does not say."""
        if self._all is not None:
            return tuple(sorted(self._all))
        if not self._known:
            return None
        calls = self._calls.get(path)
        if calls and call <= len(calls):
            return tuple(sorted(calls[call - 1]))
        parent = path.rpartition("/")[0]
        while parent:
            if parent in self._loose:
                return tuple(sorted(self._loose[parent]))
            parent = parent.rpartition("/")[0]
        return None

    def calls(self, path):
        """How many calls of layer ``path`` the model's graph makes, or None when it does not say."""
        if not self._known:
            return None
        return len(self._calls.get(path, ()))

    def listed(self, path, call=1):
        """:meth:`of` as a JSON-ready list (or None)."""
        names = self.of(path, call)
        return None if names is None else list(names)

    def _run(self, model, in_reach, depth):
        """Replays one call of ``model`` whose flattened inputs reach
        ``in_reach``; returns what each flattened output reaches, or None
        when the model has no graph."""
        if depth > 50:
            return None
        functional = getattr(model, "_functional", None)  # a Sequential built on an Input
        graph = model if getattr(model, "_nodes_by_depth", None) is not None else functional
        if graph is None or getattr(graph, "_nodes_by_depth", None) is None:
            return None
        reach = {id(t): r for t, r in zip(graph.inputs, in_reach)}
        for d in sorted(graph._nodes_by_depth, reverse=True):
            for node in graph._nodes_by_depth[d]:
                op = node.operation
                if not op or node.is_input:
                    continue
                sources = node.input_tensors
                if any(id(t) not in reach for t in sources):
                    continue  # Keras skips a node its inputs do not reach, too
                r = frozenset().union(*(reach[id(t)] for t in sources))
                outs = node.output_tensors
                out_reach = [r] * len(outs)
                path = self._paths.get(id(op))
                if path is not None:
                    self._calls.setdefault(path, []).append(r)
                if path is not None and _is_model(op):
                    inner = [reach[id(t)] for t in sources]
                    n_in = len(getattr(op, "inputs", None) or ()) if _has_graph(op) else 0
                    got = self._run(op, inner if len(inner) == n_in else [r] * n_in, depth + 1) if n_in else None
                    if got is None:
                        self._loose[path] = self._loose.get(path, frozenset()) | r
                    elif len(got) == len(outs):
                        out_reach = got
                if path is not None and (_time_distributed_inner(op) is not None or path in self._composite):
                    # Layers called inside it: what its calls reach.
                    self._loose[path] = self._loose.get(path, frozenset()) | r
                for t, tr in zip(outs, out_reach):
                    reach[id(t)] = tr
        return [reach.get(id(t), frozenset()) for t in graph.outputs]


def _has_graph(model):
    return (getattr(model, "_nodes_by_depth", None) is not None
            or getattr(getattr(model, "_functional", None), "_nodes_by_depth", None) is not None)
