"""The probe pass through a functional model, plain layers called directly.

Keras runs a functional model node by node, and each node's layer through
``Layer.__call__``: it converts and casts the arguments, binds them to the
``call`` signature, checks the input spec, resolves ``training`` through a
call context, opens a name scope and attaches masks. On a layer that is
built, gets tensors of its own dtype and no mask, all of that leaves the
arguments as they were, and on a few probes it costs more than many
layers' own operations. An eager call of ResNet50 on 8 probes at 64x64
took 0.18 s with its 176 layers called directly against 0.25 s through
``__call__`` on TensorFlow, MobileNetV2's (96x96) 0.18 s against 0.25 s;
on PyTorch 0.14 s against 0.18 s and 0.065 s against 0.084 s. The whole
probe pass, statistics included, took 9-26% less on five architectures
(``benchmarks/bench_pass.py``).

:func:`direct_calls` makes a model's graphs call such layers' ``call`` (or
the recording wrapper :func:`tb_layerview.capture.recording` puts there)
with the same arguments ``__call__`` would pass, and leaves every other
layer, and every call that does not meet the conditions, to Keras. The
outputs are the same tensors from the same operations.

On TensorFlow, two layers' own ``call`` also costs more eagerly than their
operations: a convolution reshapes its bias and batch normalisation its
four vectors to the output's rank before a broadcast, and TensorFlow's
eager fast path takes no Keras variable, so each reshape goes through its
Python fallback (about 0.04 s of ResNet50's 0.25 s pass on 8 probes at
64x64). :func:`direct_calls` gives those layers an inference call with the
same operations on the unreshaped vectors, which broadcast along the last
axis to the same values, bit for bit; any other case (training, a mask,
another dtype, the channels not last, a graph being traced) runs Keras' own.
A dense layer on a matrix gets the same: ``ops.matmul`` converts, casts and
dispatches around the one ``MatMul`` it runs, which costs more than the
product itself on a few probes.
"""

import contextlib

#: The call-context arguments a directly called layer may take.
_CONTEXT_ARGS = frozenset({"training"})


def _keras_parts():
    """Keras' own pieces this module relies on, or None when this Keras lacks one."""
    try:
        from keras.src import backend
        from keras.src.layers.layer import Layer
        from keras.src.models import functional
        from keras.src.models.sequential import Sequential
        from keras.src.ops.function import Function
    except ImportError:  # noqa: BLE001 - another Keras: every layer through __call__
        return None
    needed = (hasattr(functional.Functional, "_run_through_graph")
              and hasattr(functional.Functional, "_standardize_inputs")
              and hasattr(functional, "operation_fn") and hasattr(functional, "unpack_singleton")
              and hasattr(Layer, "_set_mask_metadata"))
    return (backend, Layer, functional, Sequential, Function) if needed else None


def plain(layer):
    """Whether ``layer``'s ``call`` can run without ``Layer.__call__`` when it
    gets tensors of its input dtype without masks.

    Not plain: a layer that overrides ``__call__``, a model or another graph,
    a layer with layers inside it (they read ``training`` from the call
    context that ``__call__`` opens), a quantized, rematerialised or unbuilt
    layer, one with an activity regulariser (``__call__`` adds its loss),
    one whose dtype policy computes in another dtype than it stores (mixed
    precision casts inside ``__call__``), one with call-context arguments
    besides ``training``, and on PyTorch one with forward hooks.

    Example::

        plain(keras.layers.Conv2D(8, 3))  # False until it is built
    """
    parts = _keras_parts()
    if parts is None:
        return False
    _, Layer, _, _, Function = parts
    try:
        if not isinstance(layer, Layer) or isinstance(layer, Function):
            return False
        if type(layer).__call__ is not Layer.__call__:
            return False
        if not layer.built or getattr(layer, "quantization_mode", None) is not None:
            return False
        if getattr(layer, "_remat_mode", None) or layer.activity_regularizer is not None:
            return False
        if not set(getattr(layer, "_call_context_args", ())) <= _CONTEXT_ARGS:
            return False
        if not hasattr(layer, "_call_has_context_arg"):
            return False
        if layer.compute_dtype != layer.variable_dtype:
            return False
        if getattr(layer, "_forward_hooks", None) or getattr(layer, "_forward_pre_hooks", None):
            return False
        return next(iter(layer._flatten_layers(include_self=False, recursive=False)), None) is None
    except Exception:  # noqa: BLE001 - anything unexpected: Keras calls it
        return False


class Counts:
    """How many layer calls of a pass ran directly, and how many through
    Keras; and how many, either way, took an eager shortcut."""

    def __init__(self):
        self.direct = 0
        self.keras = 0
        self.shortcut = 0
        self.conv2d = 0  # shortcuts that ran TensorFlow's Conv2D operation directly


def _eager_tf(backend):
    """Whether operations run eagerly on TensorFlow right now, outside an autocast scope."""
    if backend.backend() != "tensorflow" or backend.get_autocast_scope() is not None:
        return False
    import tensorflow as tf

    return tf.executing_eagerly()


def _float32(*values):
    return all(v is None or getattr(v, "dtype", None) == "float32" for v in values)


def _tensor(value):
    """A Keras variable's value, or ``value`` itself when it is a tensor
    already (a kernel with LoRA enabled is computed on every read)."""
    return getattr(value, "value", value)


def _conv2d(tf, layer, inputs):
    """The operation Keras' ``ops.conv`` runs for a plain 2D convolution
    over the last axis, called as TensorFlow's own ``tf.nn.convolution``
    ends up calling it: the same ``Conv2D`` operation, without the Python
    layers in between (Keras builds a ``tf.function`` on every call, and
    ``tf.nn.convolution`` checks its arguments each time: ResNet50's 53
    convolutions at 64x64 take 0.066 s instead of 0.081 s). None when the
    call is not that case (grouped, dilated, not 2D) or its output is empty,
    which Keras' own call turns into its error."""
    kernel = layer.kernel
    if len(inputs.shape) != 4 or len(kernel.shape) != 4 or inputs.shape[-1] != kernel.shape[-2] \
            or any(d != 1 for d in layer.dilation_rate):
        return None
    outputs = tf.raw_ops.Conv2D(input=inputs, filter=_tensor(kernel), strides=[1, *layer.strides, 1],
                                padding=layer.padding.upper(), data_format="NHWC", dilations=[1, 1, 1, 1])
    return outputs if outputs.shape.num_elements() else None


def _conv_shortcut(layer, backend, counts):
    """``BaseConv.call`` for inference, the bias added unreshaped."""
    from keras.src.layers.convolutional.base_conv import BaseConv

    keras_call = type(layer).call
    # A subclass with a convolution of its own keeps it.
    direct_2d = type(layer).convolution_op is BaseConv.convolution_op and layer.padding in ("valid", "same")

    def call(inputs):
        bias = layer.bias if layer.use_bias else None
        if bias is None or layer.data_format != "channels_last" or not _eager_tf(backend) \
                or not _float32(inputs, layer.kernel, bias):
            return keras_call(layer, inputs)
        import tensorflow as tf

        outputs = None
        if direct_2d:
            outputs = _conv2d(tf, layer, inputs)
            counts.conv2d += outputs is not None
        if outputs is None:
            outputs = layer.convolution_op(inputs, layer.kernel)
        if outputs.dtype != tf.float32:
            return keras_call(layer, inputs)
        outputs = tf.add(outputs, _tensor(bias))
        counts.shortcut += 1
        return layer.activation(outputs) if layer.activation is not None else outputs

    return call


def _dense_shortcut(layer, backend, counts):
    """``Dense.call`` for inference on a matrix: TensorFlow's ``MatMul``,
    the operation Keras' ``ops.matmul`` runs for two matrices, without the
    conversions, casts and dispatch around it (three dense layers of the
    seed CNN on 8 probes: about 1.2 ms each through Keras here, against
    0.2 ms). Any other input (a sequence, a sparse tensor, another dtype)
    runs Keras' own call."""
    def keras_call(inputs, training):
        # An older Dense.call takes no training argument, and then gets none.
        own = type(layer).call
        return own(layer, inputs) if training is None else own(layer, inputs, training=training)

    def call(inputs, training=None):
        kernel, bias = layer.kernel, layer.bias
        if not _eager_tf(backend) or not _float32(inputs, kernel, bias) or len(inputs.shape) != 2 \
                or len(kernel.shape) != 2 or inputs.shape[-1] != kernel.shape[0]:
            return keras_call(inputs, training)
        import tensorflow as tf

        if not isinstance(inputs, tf.Tensor):  # a SparseTensor, a RaggedTensor
            return keras_call(inputs, training)
        outputs = tf.raw_ops.MatMul(a=inputs, b=_tensor(kernel))
        if bias is not None:
            outputs = tf.add(outputs, _tensor(bias))
        counts.shortcut += 1
        return layer.activation(outputs) if layer.activation is not None else outputs

    return call


def _batch_norm_shortcut(layer, backend, counts):
    """``BatchNormalization.call`` for inference, the moving statistics and
    the scale and offset unreshaped."""
    keras_call = type(layer).call

    def call(inputs, training=None, mask=None):
        gamma = layer.gamma if layer.scale else None
        beta = layer.beta if layer.center else None
        rank = len(inputs.shape)
        if training or mask is not None or not _eager_tf(backend) or layer.axis not in (-1, rank - 1) \
                or not _float32(inputs, layer.moving_mean, layer.moving_variance, gamma, beta):
            return keras_call(layer, inputs, training=training, mask=mask)
        import tensorflow as tf

        counts.shortcut += 1
        return tf.nn.batch_normalization(
            inputs, _tensor(layer.moving_mean), _tensor(layer.moving_variance),
            None if beta is None else _tensor(beta), None if gamma is None else _tensor(gamma), layer.epsilon)

    return call


def _shortcut_for(layer, backend, counts):
    """The eager inference shortcut of ``layer``, or None when Keras' own
    ``call`` of its class is not one this module has a shortcut for."""
    try:
        from keras.src.layers.convolutional.base_conv import BaseConv
        from keras.src.layers.convolutional.conv1d import Conv1D
        from keras.src.layers.core.dense import Dense
        from keras.src.layers.normalization.batch_normalization import BatchNormalization
    except ImportError:  # noqa: BLE001 - another Keras: its own calls
        return None
    call = type(layer).call
    # Conv1D's own call differs from BaseConv's only by its causal padding.
    conv = call is BaseConv.call or (call is Conv1D.call and layer.padding != "causal")
    if conv and hasattr(layer, "convolution_op"):
        return _conv_shortcut(layer, backend, counts)
    if call is BatchNormalization.call:
        return _batch_norm_shortcut(layer, backend, counts)
    if call is Dense.call:
        return _dense_shortcut(layer, backend, counts)
    return None


def _arguments_ready(backend, layer, args, kwargs):
    """Whether ``__call__`` would hand ``args`` to ``call`` unchanged: one
    positional argument, a tensor or a flat list of tensors, of the layer's
    input dtype where floating, without masks, and no other keywords than
    ``training`` and an empty ``mask`` (a node records the ``mask=None``
    that ``__call__`` filled in when the model was built)."""
    if len(args) != 1 or any(k != "training" and not (k == "mask" and v is None) for k, v in kwargs.items()):
        return False
    first = args[0]
    tensors = first if isinstance(first, (list, tuple)) else (first,)
    if not tensors:
        return False
    want = layer.input_dtype
    for t in tensors:
        if not backend.is_tensor(t) or backend.get_keras_mask(t) is not None:
            return False
        dtype = backend.standardize_dtype(t.dtype)
        if dtype != want and backend.is_float_dtype(dtype):
            return False
    return True


def _graph_call(graph, parts, is_plain, counts):
    """A ``call`` for ``graph`` (a functional model's) that runs its plain
    layers directly; anything but an inference call goes to the graph's own."""
    backend, Layer, functional, _, _ = parts
    original = graph.call

    def op_fn(op, training):
        if not isinstance(op, Layer):  # an operation of keras.ops applied to the model's tensors
            return functional.operation_fn(op, training=training)
        if not is_plain(op):
            keras_call = functional.operation_fn(op, training=training)

            def counted(*args, **kwargs):
                counts.keras += 1
                return keras_call(*args, **kwargs)
            return counted

        def call(*args, **kwargs):
            # A layer quantized since it was found plain (model.quantize() between
            # two epochs) runs quantized_call, which __call__ knows to choose.
            if backend.get_autocast_scope() is not None or getattr(op, "quantization_mode", None) is not None \
                    or not _arguments_ready(backend, op, args, kwargs):
                counts.keras += 1
                return functional.operation_fn(op, training=training)(*args, **kwargs)
            kwargs = {"mask": None} if "mask" in kwargs else {}
            if op._call_has_context_arg.get("training"):
                kwargs["training"] = training
            out = getattr(op, "call")(*args, **kwargs)  # the recording wrapper, where one is set
            if op.supports_masking:
                # As __call__ does: a layer that makes a mask (Embedding with
                # mask_zero, Masking) attaches it for the layers after it.
                op._set_mask_metadata(args[0], out, [None] * len(args[0])
                                      if isinstance(args[0], (list, tuple)) else None)
            counts.direct += 1
            return out
        return call

    def call(inputs, training=None, mask=None, **kwargs):
        if training is not False or mask is not None or kwargs:
            return original(inputs, training=training, mask=mask, **kwargs)
        inputs = graph._standardize_inputs(inputs)
        outputs = graph._run_through_graph(inputs, operation_fn=lambda op: op_fn(op, training))
        return functional.unpack_singleton(outputs)

    return call


def _graphs(model, parts):
    """The functional graphs ``model`` runs (its own, a Sequential's inner
    one, those of nested models) whose ``call`` is Keras' own."""
    from tb_layerview.capture import all_layers  # here: capture imports this module

    _, _, functional, Sequential, _ = parts
    found = []
    for layer in all_layers(model):
        graph = layer
        if isinstance(layer, Sequential) and type(layer).call is Sequential.call:
            graph = getattr(layer, "_functional", None)
        if not isinstance(graph, functional.Functional) or type(graph).call is not functional.Functional.call:
            continue
        if "call" in graph.__dict__:  # already replaced for this instance (by a user, or a pass in progress)
            continue
        found.append(graph)
    return found


@contextlib.contextmanager
def direct_calls(model, counts=None, cache=None):
    """While the block runs, ``model(x, training=False)`` calls its plain
    layers directly (see the module's docstring).

    Args:
      model: the Keras model.
      counts: a :class:`Counts` to add the block's layer calls to, or None.
      cache: a dict that keeps each layer's :func:`plain` between blocks, or None.

    Yields:
      the number of graphs whose calls were replaced (0 when this Keras
      lacks a piece it needs, or under a distribution).

    Example::

        with direct_calls(model):
            y = model(x, training=False)
    """
    parts = _keras_parts()
    graphs, shortcuts_apply = [], False
    if parts is not None:
        try:
            from keras.src.distribution import distribution_lib

            # A distribution lays out each layer's output inside __call__.
            distributed = distribution_lib.distribution() is not None
        except Exception:  # noqa: BLE001 - a Keras without distributions
            distributed = False
        if not distributed:
            graphs = _graphs(model, parts)
            # Also in a model of your own, whose layers Keras calls: its
            # __call__ hands the shortcut what it would hand call.
            shortcuts_apply = parts[0].backend() == "tensorflow"
    counts = counts if counts is not None else Counts()
    cache = cache if cache is not None else {}

    def is_plain(op):
        key = id(op)
        if key not in cache:
            cache[key] = plain(op)
        return cache[key]

    patched, shortcuts = [], []
    try:
        for graph in graphs:
            # object.__setattr__: Keras' tracking __setattr__ must not see this.
            object.__setattr__(graph, "call", _graph_call(graph, parts, is_plain, counts))
            patched.append(graph)
        if shortcuts_apply:
            from tb_layerview.capture import all_layers  # here: capture imports this module

            for layer in all_layers(model):
                fast = _shortcut_for(layer, parts[0], counts) \
                    if "call" not in layer.__dict__ and is_plain(layer) else None
                if fast is not None:
                    # Under the recording wrapper, which wraps whatever call it finds.
                    object.__setattr__(layer, "call", fast)
                    shortcuts.append(layer)
        yield len(patched)
    finally:
        for layer in reversed(shortcuts):
            object.__delattr__(layer, "call")
        for graph in reversed(patched):
            object.__delattr__(graph, "call")
