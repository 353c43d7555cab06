"""Kernel kinds: which kernel of a layer is drawn as filters, and how.

The one place that knows how Keras stores each kind of kernel. The callback
asks :func:`kernel_of` for a layer's kernel, :func:`for_rendering` brings it
to one of the layouts :func:`tb_layerview.render.kernel_tiles` draws,
:func:`filter_count` and :func:`drawn_part` say how many filters a kernel
holds and which part of it is drawn, and the summary ops use
:func:`kind_from_rank` when a kernel comes without a layer.
Nothing here imports TensorFlow or Keras: layers are recognised by the names
of their classes (subclasses included).
"""

import dataclasses

import numpy as np

#: Every kind :func:`kernel_of` returns, with Keras' storage order.
KINDS = (
    "dense",              # (in, out)
    "conv1d",             # (k, in, out)
    "conv2d",             # (kh, kw, in, out)
    "conv3d",             # (kd, kh, kw, in, out)
    "conv1d_transpose",   # (k, out, in)
    "conv2d_transpose",   # (kh, kw, out, in)
    "conv3d_transpose",   # (kd, kh, kw, out, in)
    "depthwise",          # (kh, kw, in, mult): DepthwiseConv2D, SeparableConv2D's depthwise part
    "depthwise1d",        # (k, in, mult): DepthwiseConv1D, SeparableConv1D's depthwise part
)

#: Kinds that :func:`tb_layerview.render.kernel_tiles` draws directly.
RENDER_KINDS = ("dense", "conv1d", "conv2d", "conv3d", "conv2d_transpose", "depthwise")

_CONV_BY_RANK = {3: "conv1d", 4: "conv2d", 5: "conv3d"}
_TRANSPOSE_BY_RANK = {3: "conv1d_transpose", 4: "conv2d_transpose", 5: "conv3d_transpose"}


@dataclasses.dataclass(frozen=True)
class Kernel:
    """A layer's drawable kernel: its kind and the variable holding it."""

    kind: str
    variable: object

    @property
    def shape(self):
        return tuple(int(d) for d in self.variable.shape)


def _class_names(layer):
    return {c.__name__ for c in type(layer).__mro__}


def kernel_of(layer):
    """The drawable kernel of ``layer``, or None when it has none.

    Convolutions of every kind (1-D to 3-D, transposed, depthwise, the
    depthwise part of separable ones) and Dense layers have one.
    """
    names = _class_names(layer)
    cls = type(layer).__name__
    # Separable convolutions keep depthwise_kernel; DepthwiseConv layers call it kernel.
    k = getattr(layer, "depthwise_kernel", None)
    if k is None and any("Depthwise" in n for n in names):
        k = getattr(layer, "kernel", None)
    if k is not None and hasattr(k, "shape"):
        return Kernel("depthwise" if len(k.shape) == 4 else "depthwise1d", k)
    kernel = getattr(layer, "kernel", None)
    if kernel is None or not hasattr(kernel, "shape"):
        return None
    rank = len(kernel.shape)
    if "Dense" in names and rank == 2:
        return Kernel("dense", kernel)
    if not any("Conv" in n for n in names):
        return None
    if "Transpose" in cls or any(n.endswith("Transpose") for n in names):
        kind = _TRANSPOSE_BY_RANK.get(rank)
    else:
        kind = _CONV_BY_RANK.get(rank)
    return Kernel(kind, kernel) if kind else None


def kind_from_rank(ndim):
    """The kind of a bare kernel array by its rank (2: dense, 3-5: convolutions)."""
    kind = {2: "dense"}.get(ndim) or _CONV_BY_RANK.get(ndim)
    if kind is None:
        raise ValueError("cannot draw a kernel of rank %d as filters (expected 2 to 5)" % ndim)
    return kind


def for_rendering(kind, kernel):
    """``(render_kind, array)``: the kernel in a layout ``render.kernel_tiles`` draws.

    1-D depthwise kernels gain a leading axis; 1-D and 3-D transposed kernels
    have their (out, in) axes swapped to (in, out).
    """
    if kind not in KINDS:
        raise ValueError("unknown kernel kind %r; expected one of %s" % (kind, ", ".join(KINDS)))
    k = np.asarray(kernel)
    if kind == "depthwise1d":  # (k, in, mult) -> (1, k, in, mult)
        return "depthwise", k[None]
    if kind == "conv1d_transpose":
        return "conv1d", np.swapaxes(k, -1, -2)
    if kind == "conv3d_transpose":
        return "conv3d", np.swapaxes(k, -1, -2)
    return kind, k


def filter_count(kind, shape):
    """How many filters (a dense kernel's units) a kernel of ``kind`` and
    ``shape`` holds; ``kind`` is a stored or a rendering kind.

    Example::

        filter_count("depthwise", (3, 3, 32, 2))  # 64: in x mult
    """
    if kind not in KINDS:
        raise ValueError("unknown kernel kind %r; expected one of %s" % (kind, ", ".join(KINDS)))
    if kind in ("depthwise", "depthwise1d"):
        return int(shape[-2]) * int(shape[-1])
    if kind.endswith("_transpose"):  # (..., out, in)
        return int(shape[-2])
    return int(shape[-1])


def rendering_layout(kind, shape):
    """``(render_kind, shape)``: what :func:`for_rendering` makes of a kernel
    of stored ``shape``, from a zero-strided stand-in (no kernel is read).

    Example::

        rendering_layout("conv1d_transpose", (3, 9, 2))  # ("conv1d", (3, 2, 9))
    """
    render_kind, arr = for_rendering(kind, np.broadcast_to(np.uint8(0), tuple(shape)))
    return render_kind, arr.shape


def drawn_part(kind, shape, max_filters):
    """The index of the part of a stored kernel that is drawn with ``max_filters``.

    :func:`tb_layerview.render.kernel_tiles` draws the first ``max_filters``
    filters (a dense kernel's first units); the callback copies only this
    part of each kernel off the training thread (VGG16: 152 MB of kernels,
    about 10 MB drawn).

    Args:
      kind: a kind of :data:`KINDS`.
      shape: the kernel's stored shape.
      max_filters: filters drawn.

    Returns:
      a tuple of slices, one per axis of ``shape``.

    Example::

        drawn_part("conv2d", (3, 3, 512, 512), 64)  # [..., :64]: (3, 3, 512, 64)
    """
    if kind not in KINDS:
        raise ValueError("unknown kernel kind %r; expected one of %s" % (kind, ", ".join(KINDS)))
    n, rank, whole = max(int(max_filters), 1), len(shape), slice(None)
    if kind in ("depthwise", "depthwise1d"):  # filters run over (in, mult), mult fastest
        return (whole,) * (rank - 2) + (slice(0, -(-n // max(int(shape[-1]), 1))), whole)
    if kind.endswith("_transpose"):  # (..., out, in)
        return (whole,) * (rank - 2) + (slice(0, n), whole)
    return (whole,) * (rank - 1) + (slice(0, n),)
