"""Input gradients on every Keras 3 backend, behind one small interface.

The class views (:mod:`tb_layerview.classviews`) need three things a backend
does its own way: the gradient of a scalar with respect to a tensor
(``tf.GradientTape``, ``jax.value_and_grad``, ``torch.autograd.grad``), a
way to compile a step that runs many times, and a model call that sees the
current weights inside that compiled step. Everything else (the scores, the
regularisers, the maps) is written once with ``keras.ops``.

Example::

    from tb_layerview import gradients

    g = gradients.for_backend()             # the backend Keras runs on
    x = g.constant(images)

    def score(x, state):
        out = g.call(model, state, x)
        return keras.ops.sum(out[:, 3]), out

    value, out, grad = g.value_and_grad(score, x, g.state(model))
"""

import contextlib
import logging
import sys
import threading

import numpy as np

#: What TensorFlow's warning about functions traced again and again says.
_RETRACING_NOTICE = "triggered tf.function retracing"


class _DropRetracingNotice(logging.Filter):
    """Drops TensorFlow's frequent-retracing warning logged by one thread."""

    def __init__(self, thread):
        super().__init__()
        self.thread = thread

    def filter(self, record):
        return not (record.thread == self.thread and _RETRACING_NOTICE in record.getMessage())


@contextlib.contextmanager
def eager_retracing_quiet():
    """TensorFlow's "N out of the last N calls ... triggered tf.function
    retracing" warning is not logged by this thread inside the block.

    Some Keras operations wrap themselves in a new ``tf.function`` at every
    eager call (on a CPU, grouped convolutions compile with XLA: ConvNeXt's
    18 depthwise layers, for instance). Inside ``fit`` they are traced once
    with the train step; LayerView's eager probe pass calls them eagerly, so
    TensorFlow warned about retracing in code the user never wrote, in a fit
    that without LayerView warns about nothing. The warning of any other
    thread, and every other record, still gets through.
    """
    if "tensorflow" not in sys.modules:  # nothing of TensorFlow's runs here
        yield
        return
    logger = logging.getLogger("tensorflow")
    notice = _DropRetracingNotice(threading.get_ident())
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)


def tf_function(fn, **kwargs):
    """``tf.function(fn, **kwargs)`` whose graph opens its own name scope first.

    Inside a traced function, the first name scope is a root scope, and
    TensorFlow refuses a root scope whose name starts with an underscore:
    a model of class ``_Net`` (Keras names it ``__net``) could not be traced.
    Keras' compiled train step refuses it too, but trained eagerly
    (``run_eagerly=True``, a custom loop) it trains; LayerView's compiled
    passes open ``tb_layerview`` first, so the model's scope is not the root.

    Example::

        step = tf_function(lambda x: model(x, training=False), reduce_retracing=True)
    """
    import tensorflow as tf

    def scoped(*args, **kw):
        with tf.name_scope("tb_layerview"):
            return fn(*args, **kw)

    return tf.function(scoped, **kwargs)


class Gradients:
    """How one backend differentiates, compiles and calls a model.

    Attributes:
      name: the Keras backend name.
    """

    name = None

    def constant(self, array):
        """``array`` as a float32 tensor of this backend (on Keras' device)."""
        import keras

        return keras.ops.convert_to_tensor(np.asarray(array, np.float32))

    def state(self, model):
        """The weights that :meth:`call` needs passed in (None: it reads the variables)."""
        return None

    def call(self, model, state, x):
        """``model(x)`` in inference mode, with the weights of ``state``."""
        return model(x, training=False)

    def value_and_grad(self, fn, x, *args):
        """``fn(x, *args)`` returns ``(scalar, aux)``; returns ``(scalar, aux, d scalar / d x)``."""
        raise NotImplementedError

    def compile(self, fn, static=()):
        """``fn`` compiled where the backend can; ``static``: names of Python-valued arguments."""
        return fn

    def roll(self, x, shift, axes=(1, 2)):
        """``x`` rolled by ``shift`` (from :meth:`shift`) along ``axes``."""
        import keras

        return keras.ops.roll(x, shift, axis=axes)

    def shift(self, shift):
        """The integer pair ``shift`` (a host array) as this backend's compiled steps take it."""
        import keras

        return keras.ops.convert_to_tensor(np.asarray(shift, np.int32))


class _TensorFlow(Gradients):
    name = "tensorflow"

    def value_and_grad(self, fn, x, *args):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            value, aux = fn(x, *args)
        return value, aux, tape.gradient(value, x)

    def compile(self, fn, static=()):
        # Python-valued arguments retrace once per value, which is what static means here.
        return tf_function(fn, reduce_retracing=True)


class _Jax(Gradients):
    name = "jax"

    def state(self, model):
        # Passed as arguments, so a compiled step sees this epoch's weights
        # instead of the values it closed over when it was traced; local
        # copies, so that under keras.distribution the writing process
        # computes alone.
        from tb_layerview.distributed import local_array

        return ([local_array(v.value) for v in model.trainable_variables],
                [local_array(v.value) for v in model.non_trainable_variables])

    def call(self, model, state, x):
        if state is None:
            return model(x, training=False)
        # stateless_call hands its keywords to call() as they are, unlike __call__.
        kwargs = {"training": False} if getattr(model, "_call_has_training_arg", True) else {}
        out, _ = model.stateless_call(state[0], state[1], x, **kwargs)
        return out

    def value_and_grad(self, fn, x, *args):
        import jax

        (value, aux), grad = jax.value_and_grad(fn, has_aux=True)(x, *args)
        return value, aux, grad

    def compile(self, fn, static=()):
        import jax

        return jax.jit(fn, static_argnames=tuple(static))


class _Torch(Gradients):
    name = "torch"

    def value_and_grad(self, fn, x, *args):
        import torch

        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            value, aux = fn(x, *args)
            grad, = torch.autograd.grad(value, x, allow_unused=True)
        if grad is None:
            grad = torch.zeros_like(x)
        return value.detach(), _detach(aux), grad.detach()

    def shift(self, shift):
        # torch.roll takes Python ints; the steps run eagerly, so nothing retraces.
        return tuple(int(s) for s in np.asarray(shift).ravel())


def _detach(tree):
    if hasattr(tree, "detach"):
        return tree.detach()
    if isinstance(tree, (list, tuple)):
        return type(tree)(_detach(t) for t in tree)
    if isinstance(tree, dict):
        return {k: _detach(v) for k, v in tree.items()}
    return tree


def inference_call(model, x):
    """``model(x, training=False)``, for recording: on JAX with this process's
    own copy of the weights (:func:`tb_layerview.distributed.local_array`), on
    PyTorch without building a gradient graph."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        g = _Jax()
        return g.call(model, g.state(model), x)
    if backend == "torch":
        import torch

        with torch.no_grad():  # outputs that need no graph, and convert to numpy as they are
            return model(x, training=False)
    with eager_retracing_quiet():
        return model(x, training=False)


def on_accelerator():
    """Whether Keras' backend computes on an accelerator (GPU, TPU) by default,
    rather than on the host's CPU."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))
        if backend == "jax":
            import jax

            return jax.default_backend() != "cpu"
        if backend == "torch":
            import torch

            return bool(torch.cuda.is_available())
    except Exception:
        return False
    return False


_BACKENDS = {"tensorflow": _TensorFlow, "jax": _Jax, "torch": _Torch}


def for_backend(name=None):
    """The :class:`Gradients` of backend ``name`` (Keras' own when None).

    Raises:
      ValueError: for a backend without gradients here (such as ``numpy``),
        naming it and the backends that have them.
    """
    if name is None:
        import keras

        name = keras.backend.backend()
    if name not in _BACKENDS:
        raise ValueError("input gradients need the tensorflow, jax or torch backend; Keras runs on %r" % (name,))
    return _BACKENDS[name]()
