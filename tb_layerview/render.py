"""Pure-numpy image math: layer outputs and kernels to 8-bit tile grids.

Nothing here imports TensorFlow or Keras. Every function takes and returns
numpy arrays (or plain dicts/lists that serialise to JSON), so the reader side,
the tests and any other tool can use the same maths.

Pixel encoding (documented in docs/format.md): images are two-channel
"LA" (value, alpha) arrays, or four-channel "RGBA" for colour filters. The
alpha channel says what a pixel is:

* 255: a finite value, quantised with its tile's own min/max;
* 0: padding between tiles (not data);
* 1: NaN; 2: +Inf; 3: -Inf.

Each tile (a channel, a filter, a whole heat map) is quantised with its own
finite min/max, and the range and statistics of every tile are returned beside
the image so that a viewer can re-normalise after the fact.
"""

import io
import math

import numpy as np

from tb_layerview import kernels

ALPHA_DATA = 255
ALPHA_GAP = 0
ALPHA_NAN = 1
ALPHA_POSINF = 2
ALPHA_NEGINF = 3

#: Gap in pixels between two tiles of a grid.
GAP = 1

#: Vectors with at most this many values are drawn as a one-row strip.
STRIP_MAX = 32


def grid_shape(n):
    """Near-square (rows, cols) holding ``n`` tiles, wider than tall.

    Args:
      n: number of tiles, >= 0.

    Returns:
      ``(rows, cols)`` with ``rows * cols >= n``; ``(0, 0)`` for ``n == 0``.
    """
    if n <= 0:
        return (0, 0)
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    return (rows, cols)


#: Floating dtypes numpy knows only through ml_dtypes (JAX, Keras' quantized layers).
_ML_FLOATS = ("bfloat16", "float8_e4m3fn", "float8_e5m2")


def is_float_dtype(dtype):
    """Whether ``dtype`` is a floating-point one, ml_dtypes' bfloat16 and float8 included."""
    dtype = np.dtype(dtype)
    return dtype.kind == "f" or str(dtype) in _ML_FLOATS


def to_float(x):
    """Casts any numeric or boolean array to float32 (float64 stays float64).

    float16, bfloat16 (ml_dtypes), integers and booleans become float32; other
    dtypes raise ``TypeError`` naming the dtype.
    """
    x = np.asarray(x)
    if x.dtype == np.float64:
        return x
    if x.dtype.kind in "iub" or is_float_dtype(x.dtype):
        return x.astype(np.float32)
    raise TypeError("cannot draw an array of dtype %r (expected numbers or booleans)" % str(x.dtype))


STAT_KEYS = ("min", "max", "mean", "std", "zero", "nan", "inf")


def batch_stats(x):
    """Statistics of every tile of a batch, vectorised.

    Args:
      x: float array (N, T, ...): N images of T tiles each; statistics are
        taken over the remaining axes.

    Returns:
      dict of float64 arrays of shape (N, T): ``min``, ``max``, ``mean``,
      ``std`` over the finite values (0.0 where there are none), ``zero`` (the
      fraction of all values that are exactly 0), ``nan`` and ``inf`` (counts).
    """
    x = np.asarray(x)
    n, t = x.shape[:2]
    flat = x.reshape(n, t, -1)
    size = flat.shape[2]
    if size and np.isfinite(flat).all():
        # The usual case: no masks, and float64 accumulation without a float64 copy.
        mean = flat.sum(axis=2, dtype=np.float64) / size
        dev = flat - mean[..., None].astype(flat.dtype)
        return {
            "min": flat.min(axis=2).astype(np.float64),
            "max": flat.max(axis=2).astype(np.float64),
            "mean": mean,
            "std": np.sqrt(np.einsum("ntk,ntk->nt", dev, dev, dtype=np.float64) / size),
            "zero": np.count_nonzero(flat == 0, axis=2) / size,
            "nan": np.zeros((n, t)),
            "inf": np.zeros((n, t)),
        }
    finite = np.isfinite(flat)
    count = finite.sum(axis=2)
    has = count > 0
    vals = np.where(finite, flat, 0).astype(np.float64)
    mean = vals.sum(axis=2) / np.maximum(count, 1)
    dev = np.where(finite, vals - mean[..., None], 0.0)
    std = np.sqrt((dev * dev).sum(axis=2) / np.maximum(count, 1))
    lo = np.where(finite, flat, np.inf).min(axis=2) if size else np.zeros((n, t))
    hi = np.where(finite, flat, -np.inf).max(axis=2) if size else np.zeros((n, t))
    return {
        "min": np.where(has, lo, 0.0).astype(np.float64),
        "max": np.where(has, hi, 0.0).astype(np.float64),
        "mean": mean,
        "std": std,
        "zero": (flat == 0).sum(axis=2) / max(size, 1),
        "nan": np.isnan(flat).sum(axis=2).astype(np.float64),
        "inf": np.isinf(flat).sum(axis=2).astype(np.float64),
    }


def stats_column(stats, i):
    """The JSON-ready statistics of image ``i`` of :func:`batch_stats`:
    ``{"min": [per tile], "max": [...], ...}`` (``nan``/``inf`` as ints)."""
    out = {}
    for k in STAT_KEYS:
        col = stats[k][i]
        # Six significant digits: the ranges only re-normalise 8-bit pixels,
        # and full float64 text would double the size of every info blob.
        out[k] = [int(v) for v in col] if k in ("nan", "inf") else [float("%.6g" % v) for v in col]
    return out


def tile_stats(tile):
    """Statistics of one tile (see :func:`batch_stats`) as a dict of scalars."""
    col = stats_column(batch_stats(np.asarray(tile)[None, None]), 0)
    return {k: v[0] for k, v in col.items()}


def quantize(tile, lo, hi):
    """Maps finite values of ``tile`` linearly from [lo, hi] to uint8 0..255.

    ``lo`` and ``hi`` are scalars or arrays broadcasting against ``tile``. A
    constant tile (``hi == lo``) maps to 0. Non-finite values map to 0 and are
    flagged by :func:`alpha_codes`.
    """
    tile = np.asarray(tile, dtype=np.float64)
    lo = np.asarray(lo, dtype=np.float64)
    span = np.asarray(hi, dtype=np.float64) - lo
    ok = (span > 0) & np.isfinite(span)
    scale = np.where(ok, 255.0 / np.where(ok, span, 1.0), 0.0)
    safe = np.where(np.isfinite(tile), tile, lo)
    q = np.rint((safe - lo) * scale)
    return np.clip(q, 0, 255).astype(np.uint8)


def alpha_codes(tile):
    """Alpha channel for a tile: 255 finite, 1 NaN, 2 +Inf, 3 -Inf."""
    tile = np.asarray(tile)
    a = np.full(tile.shape, ALPHA_DATA, dtype=np.uint8)
    a[np.isnan(tile)] = ALPHA_NAN
    a[np.isposinf(tile)] = ALPHA_POSINF
    a[np.isneginf(tile)] = ALPHA_NEGINF
    return a


def downsample_factors(h, w, max_pixels, keep_short=False):
    """Block sizes ``(fh, fw)`` that bring an h x w tile to at most ``max_pixels``.

    By default one factor for both axes, the smallest that fits: pictures keep
    their aspect. With ``keep_short`` (a heat map, whose axes mean different
    things: 4,000 time steps of 8 features) the shorter axis keeps its
    resolution up to the side of a square of ``max_pixels``, and the longer
    axis alone is averaged: the 8 features stay 8 columns.

    Example::

        downsample_factors(3998, 8, 4096)                   # (3, 3): 1333 x 3
        downsample_factors(3998, 8, 4096, keep_short=True)  # (8, 1): 500 x 8
    """
    if not max_pixels or h * w <= max_pixels:
        return 1, 1
    if not keep_short:
        f = 1
        while math.ceil(h / f) * math.ceil(w / f) > max_pixels:
            f += 1
        return f, f
    side = max(1, math.isqrt(int(max_pixels)))
    short, long_ = min(h, w), max(h, w)
    fs = math.ceil(short / side)
    kept = math.ceil(short / fs)
    fl = max(1, math.ceil(long_ / max(1, max_pixels // kept)))
    return (fl, fs) if h >= w else (fs, fl)


def downsample(tile, max_pixels, rgb=False, keep_short=False):
    """Block-averages tiles until each has at most ``max_pixels`` pixels.

    Works on any leading axes: the spatial axes are the last two, or the two
    before a last colour axis when ``rgb``. Edge blocks average over the pixels
    they have; NaN/Inf in a block make the block NaN/Inf (sums propagate
    them), so they stay visible. ``keep_short``: see :func:`downsample_factors`.

    Returns:
      ``(tiles, (fh, fw))``.
    """
    tile = np.asarray(tile)
    ax = tile.ndim - (3 if rgb else 2)
    h, w = tile.shape[ax], tile.shape[ax + 1]
    fh, fw = downsample_factors(h, w, max_pixels, keep_short)
    if fh == fw == 1:
        return tile, (1, 1)
    hp, wp = math.ceil(h / fh) * fh, math.ceil(w / fw) * fw
    pad = [(0, 0)] * tile.ndim
    pad[ax], pad[ax + 1] = (0, hp - h), (0, wp - w)
    data = np.pad(tile.astype(np.float64), pad)
    counts = np.pad(np.ones((h, w)), [(0, hp - h), (0, wp - w)])
    counts = counts.reshape(hp // fh, fh, wp // fw, fw).sum(axis=(1, 3))
    shape = tile.shape[:ax] + (hp // fh, fh, wp // fw, fw) + tile.shape[ax + 2:]
    sums = data.reshape(shape).sum(axis=(ax + 1, ax + 3))
    if rgb:
        counts = counts[..., None]
    return sums / counts, (fh, fw)


def compose(q, alpha, gap=GAP):
    """Lays quantised tiles out in near-square grids, one image per batch item.

    Args:
      q: uint8 (N, T, h, w) or (N, T, h, w, 3) tile values.
      alpha: uint8 (N, T, h, w) alpha codes.
      gap: pixels between tiles (alpha 0).

    Returns:
      uint8 array (N, H, W, 2) (grey) or (N, H, W, 4) (RGB).
    """
    n, t, h, w = alpha.shape
    rows, cols = grid_shape(t)
    rgb = q.ndim == 5
    planes = np.concatenate([q if rgb else q[..., None], alpha[..., None]], axis=-1)
    depth = planes.shape[-1]
    full = np.zeros((n, rows * cols, h + gap, w + gap, depth), np.uint8)
    full[:, :t, :h, :w] = planes
    full = full.reshape(n, rows, cols, h + gap, w + gap, depth).transpose(0, 1, 3, 2, 4, 5)
    full = full.reshape(n, rows * (h + gap), cols * (w + gap), depth)
    return full[:, :rows * (h + gap) - gap, :cols * (w + gap) - gap]


def _grid_of(tiles, stats, rgb, gap=GAP):
    """Quantises tiles (N, T, h, w[, 3]) with their ranges and composes them."""
    lo, hi = stats["min"], stats["max"]
    shape = lo.shape + (1,) * (tiles.ndim - 2)
    q = quantize(tiles, lo.reshape(shape), hi.reshape(shape))
    alpha = alpha_codes(tiles)
    if rgb:
        alpha = alpha.min(axis=-1)
    return compose(q, alpha, gap)


def classify_shape(shape, min_spatial=2):
    """Decides how an output of ``shape`` (batch axis removed) is drawn.

    Returns one of ``"grid"`` (H, W, C), ``"volume"`` (D, H, W, C), ``"heat"``
    (T, F) or ``"vector"`` (anything else, flattened).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 3 and min(shape[0], shape[1]) >= min_spatial:
        return "grid"
    if len(shape) == 4 and min(shape[1], shape[2]) >= min_spatial:
        return "volume"
    if len(shape) == 2 and min(shape) >= min_spatial:
        return "heat"
    return "vector"


def vector_shape(d):
    """(rows, cols) of the tile a D-vector is drawn in: a strip up to STRIP_MAX."""
    if d <= STRIP_MAX:
        return 1, max(d, 1)
    return grid_shape(d)


def vector_layout(v):
    """A 1-D vector as a 2-D tile of :func:`vector_shape`, padded with NaN-free zeros."""
    v = np.ravel(v)
    rows, cols = vector_shape(v.size)
    out = np.zeros(rows * cols, v.dtype)
    out[:v.size] = v
    return out.reshape(rows, cols)


def render_activations(outputs, max_channels=64, max_tile_pixels=4096, min_spatial=2,
                       channels_first=False):
    """Draws one layer's outputs for a batch of probes.

    Args:
      outputs: array (N, ...): the layer output for N probe samples, any
        numeric dtype.
      max_channels: at most this many channels are drawn (the first ones).
      max_tile_pixels: a larger tile is block-averaged down to this size.
      min_spatial: (H, W, C) outputs with H or W below this are drawn as a
        vector (e.g. the 1x1xC output of a global pooling).
      channels_first: the layer uses ``data_format="channels_first"``.

    Returns:
      ``(images, info)``: ``images`` is uint8 (N, H, W, 2); ``info`` is a
      JSON-ready dict with ``layout``, ``shape`` (of one sample), ``channels``
      (in the output), ``shown``, ``rows``, ``cols``, ``tile_h``, ``tile_w``,
      ``gap``, ``scale`` (the larger downsampling factor), ``scales`` (the
      factors along the image's rows and columns), ``slice`` (for volumes) and
      ``probes``: for each probe, :func:`stats_column` of its tiles.
    """
    x = to_float(outputs)
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError("outputs need a batch axis with at least one probe; got shape %s"
                         % (np.shape(outputs),))
    n = x.shape[0]
    shape = list(x.shape[1:])
    if channels_first and x.ndim in (4, 5):
        x = np.moveaxis(x, 1, -1)
    layout = classify_shape(x.shape[1:], min_spatial)
    info = {"layout": layout, "shape": shape, "slice": None}
    if layout == "volume":
        mid = x.shape[1] // 2
        info["slice"] = {"axis": 0, "index": mid}
        x = x[:, mid]
    mask = None
    if layout in ("grid", "volume"):
        channels = x.shape[-1]
        tiles = np.moveaxis(x[..., :max_channels], -1, 1)  # (N, T, H, W)
    elif layout == "heat":
        channels = 1
        tiles = x[:, None]
    else:
        channels = 1
        flat = x.reshape(n, -1)
        d = flat.shape[1]
        rows, cols = vector_shape(d)
        tiles = np.zeros((n, 1, rows * cols), x.dtype)
        tiles[:, 0, :d] = flat
        tiles = tiles.reshape(n, 1, rows, cols)
        mask = np.zeros(rows * cols, bool)
        mask[:d] = True
        mask = mask.reshape(rows, cols)
    # Statistics come from the full-resolution values, before any averaging.
    stats = batch_stats(tiles if mask is None else x.reshape(n, 1, -1))
    small, scales = downsample(tiles, max_tile_pixels, keep_short=layout == "heat")
    images = _grid_of(small, stats, rgb=False)
    if mask is not None:
        small_mask = downsample(mask.astype(np.float64), max_tile_pixels)[0] > 0
        images[:, ~small_mask] = 0
    shown = tiles.shape[1]
    rows, cols = grid_shape(shown)
    info.update(channels=int(channels), shown=int(shown), rows=rows, cols=cols,
                tile_h=int(small.shape[2]), tile_w=int(small.shape[3]), gap=GAP, scale=int(max(scales)),
                scales=[int(f) for f in scales],
                probes=[stats_column(stats, i) for i in range(n)])
    return images, info


def render_activation(x, max_channels=64, max_tile_pixels=4096, min_spatial=2,
                      channels_first=False):
    """Draws one probe's output: :func:`render_activations` for a batch of one.

    Returns:
      ``(image, info)`` with ``info["stats"]`` the probe's tile statistics.
    """
    images, info = render_activations(np.asarray(x)[None], max_channels, max_tile_pixels,
                                       min_spatial, channels_first)
    info["stats"] = info.pop("probes")[0]
    return images[0], info


def render_tiles(tiles, max_tile_pixels=4096):
    """Draws a list of same-shape 2-D or HxWx3 tiles, each with its own range.

    Used for kernels: conv filters, and dense units reshaped to the input.

    Returns:
      ``(image, info)`` as for :func:`render_activation`, with layout
      ``"tiles"`` and ``rgb`` set.
    """
    arr = np.stack([to_float(t) for t in tiles])[None]
    rgb = arr.ndim == 5
    stats = batch_stats(arr)
    small, (scale, _) = downsample(arr, max_tile_pixels, rgb=rgb)
    image = _grid_of(small, stats, rgb)[0]
    rows, cols = grid_shape(len(tiles))
    info = {"layout": "tiles", "rgb": rgb, "shape": list(np.shape(tiles[0])),
            "channels": len(tiles), "shown": len(tiles), "rows": rows, "cols": cols,
            "tile_h": int(small.shape[2]), "tile_w": int(small.shape[3]), "gap": GAP,
            "scale": int(scale), "slice": None, "stats": stats_column(stats, 0)}
    return image, info


def kernel_tiles(kernel, kind, max_filters=64, input_channel="first", image_shape=None, full_shape=None):
    """Cuts a layer kernel into one tile per filter (or unit).

    Args:
      kernel: the kernel array as Keras stores it.
      kind: ``"conv1d"`` (k, in, out), ``"conv2d"`` (kh, kw, in, out),
        ``"conv3d"`` (kd, kh, kw, in, out), ``"conv2d_transpose"``
        (kh, kw, out, in), ``"depthwise"`` (kh, kw, in, mult), or ``"dense"``
        (in, out).
      max_filters: at most this many tiles (the first filters).
      input_channel: ``"first"`` draws each filter's first input channel,
        ``"mean"`` the mean over input channels. A filter with exactly 3 input
        channels is drawn in RGB either way.
      image_shape: for ``"dense"``: the (h, w) or (h, w, c) image the units'
        inputs come from; without it the kernel is one in x out matrix (its
        first ``max_filters`` columns).
      full_shape: the whole kernel's shape when ``kernel`` is only its drawn
        part (:func:`tb_layerview.kernels.drawn_part`); the counts and notes
        then speak of the whole kernel.

    Returns:
      ``(tiles, total, note)``: the list of tiles, the number of filters in the
      kernel, and a short description of what each tile shows.
    """
    k = to_float(kernel)
    # Filters of the whole kernel, of which ``kernel`` may be the drawn part.
    total = kernels.filter_count(kind, tuple(full_shape) if full_shape is not None else k.shape)
    if kind == "dense":
        units = total
        if image_shape is None:
            if units > max_filters:  # a 4096 x 4096 head would cost seconds to draw, for a grey blur
                return [k[:, :max_filters]], 1, ("kernel matrix (rows: inputs, columns: the first %d of %d units)"
                                                 % (max_filters, units))
            return [k], 1, "kernel matrix (rows: inputs, columns: units)"
        n = min(units, max_filters)
        shape = tuple(image_shape)
        tiles = []
        for j in range(n):
            img = k[:, j].reshape(shape)
            if img.ndim == 3:
                img = img if img.shape[2] == 3 else (img[..., 0] if input_channel == "first" else img.mean(axis=2))
            tiles.append(img)
        return tiles, units, "each unit's input weights reshaped to the %s input image" % "x".join(map(str, shape))
    if kind == "conv2d_transpose":
        k = np.swapaxes(k, -1, -2)
        kind = "conv2d"
    if kind == "depthwise":
        kh, kw, cin, mult = k.shape
        k = k.reshape(kh, kw, 1, cin * mult)
        kind = "conv2d"
    if kind == "conv1d":
        k = k[None]  # (1, k, in, out): each filter a 1 x k strip
    elif kind == "conv3d":
        k = k[k.shape[0] // 2]  # middle depth slice
    n = min(total, max_filters)
    cin = k.shape[2]
    rgb = cin == 3
    tiles = []
    for j in range(n):
        f = k[:, :, :, j]
        if rgb:
            tiles.append(f)
        elif input_channel == "mean":
            tiles.append(f.mean(axis=2))
        else:
            tiles.append(f[:, :, 0])
    if rgb:
        note = "filters in RGB (input channels 0, 1, 2)"
    elif input_channel == "mean":
        note = "mean over the %d input channels" % cin
    else:
        note = "input channel 0 of %d" % cin
    if kind == "conv3d":
        note += ", middle depth slice"
    return tiles, total, note


#: zlib level of every PNG (benchmarks/bench_png.py measures the others).
PNG_COMPRESS_LEVEL = 1


def encode_png(img, compress_level=None):
    """Encodes a uint8 (H, W, 1|2|3|4) or (H, W) array as PNG bytes (Pillow)."""
    from PIL import Image

    img = np.ascontiguousarray(img, dtype=np.uint8)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    mode = {2: "L", 3: None}.get(img.ndim)
    if img.ndim == 3:
        mode = {2: "LA", 3: "RGB", 4: "RGBA"}[img.shape[2]]
    buf = io.BytesIO()
    level = PNG_COMPRESS_LEVEL if compress_level is None else compress_level
    Image.fromarray(img, mode=mode).save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def decode_png(data):
    """Decodes PNG bytes to a uint8 array (H, W[, C]) (Pillow)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


def image_shape_of(shape, channels_first=False):
    """Returns (h, w[, c]) if a sample of ``shape`` looks like an image, else None.

    Image-like: (H, W), (H, W, 1|3|4) with H, W >= 4, or a flat vector whose
    length is a perfect square >= 64 (e.g. 784 -> 28x28). With
    ``channels_first`` a 3-D sample is read as (C, H, W) and its image shape
    is still given channels last (see :func:`channels_last`).
    """
    shape = tuple(int(s) for s in shape if s is not None)
    if channels_first and len(shape) == 3:
        shape = shape[1:] + shape[:1]
    if len(shape) == 2 and min(shape) >= 4:
        return shape
    if len(shape) == 3 and min(shape[:2]) >= 4 and shape[2] in (1, 3, 4):
        return shape if shape[2] != 1 else shape[:2]
    if len(shape) == 1 and shape[0] >= 64:
        r = int(round(math.sqrt(shape[0])))
        if r * r == shape[0]:
            return (r, r)
    return None


def channels_last(x, channels_first=True):
    """A batch of channels-first images (N, C, H, W) as (N, H, W, C); any
    other array, or ``channels_first=False``, as it is."""
    x = np.asarray(x)
    return np.moveaxis(x, 1, -1) if channels_first and x.ndim == 4 else x


def render_input(x, image_shape=None):
    """Draws a probe input as an image when it is image-shaped.

    Returns:
      ``(image, info)`` or ``(None, None)`` if the input is not image-like.
      RGB(A) inputs are drawn as RGB with one joint range; grey ones as LA.
    """
    x = to_float(x)
    shape = image_shape or image_shape_of(x.shape)
    if shape is None:
        return None, None
    x = x.reshape(shape)
    if x.ndim == 3 and x.shape[2] == 4:
        x = x[..., :3]
    st = tile_stats(x)
    q = quantize(x, st["min"], st["max"])
    a = alpha_codes(x)
    if x.ndim == 3:
        img = np.concatenate([q, a.min(axis=2, keepdims=True)], axis=2)
    else:
        img = np.stack([q, a], axis=2)
    return img, {"shape": list(shape), "stats": st}
