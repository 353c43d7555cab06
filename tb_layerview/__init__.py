"""tb_layerview: watch every layer of a Keras model learn, in TensorBoard.

Public API::

    from tb_layerview import LayerView          # the Keras callback
    from tb_layerview import Budget             # its cost bound
    import tb_layerview.summary                 # tf.summary-style ops
    import tb_layerview.render                  # pure-numpy image maths
    import tb_layerview.classviews              # back-query, activation maximisation, attribution
    import tb_layerview.export                  # PNG folders, GIFs, contact sheets, health CSV (no TF)
    import tb_layerview.stats                   # per-channel statistics and unit health (pure numpy)
    import tb_layerview.writer                  # event files from TensorBoard's protos (no TF)
    import tb_layerview.gradients               # input gradients on TensorFlow, JAX and PyTorch
    import tb_layerview.distributed             # which process writes, local copies of weights

Importing this package does not import TensorFlow or Keras; they are loaded
on first use of ``LayerView`` or of a summary op.
"""

import importlib

from tb_layerview.version import VERSION as __version__

__all__ = ["LayerView", "LayerViewWarning", "Budget", "summary", "render", "metadata", "classviews", "export",
           "stats", "writer", "gradients", "distributed", "__version__"]

_LAZY = {
    "LayerView": ("tb_layerview.callback", "LayerView"),
    "LayerViewWarning": ("tb_layerview.callback", "LayerViewWarning"),
    "Budget": ("tb_layerview.plan", "Budget"),
    "summary": ("tb_layerview.summary", None),
    "render": ("tb_layerview.render", None),
    "metadata": ("tb_layerview.metadata", None),
    "classviews": ("tb_layerview.classviews", None),
    "export": ("tb_layerview.export", None),
    "stats": ("tb_layerview.stats", None),
    "writer": ("tb_layerview.writer", None),
    "gradients": ("tb_layerview.gradients", None),
    "distributed": ("tb_layerview.distributed", None),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError("module 'tb_layerview' has no attribute %r" % name)
    module_name, attr = _LAZY[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name not in ("tensorflow", "jax", "torch"):
            raise
        # Keras imports its configured backend on first use; say which and how to get one.
        raise ImportError("tb_layerview.%s needs Keras, and Keras' backend %r is not installed (%s). Install"
                          " one, for example pip install 'tb_layerview[%s]', or choose an installed one"
                          " with KERAS_BACKEND=tensorflow|jax|torch."
                          % (name, err.name, err, err.name)) from err
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
