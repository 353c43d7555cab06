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


def to_float(x):
    """Casts any numeric or boolean array to float32 (float64 stays float64).

    float16, bfloat16 (ml_dtypes), integers and booleans become float32; other
    dtypes raise ``TypeError`` naming the dtype.
    """
    x = np.asarray(x)
    if x.dtype == np.float64:
        return x
    if x.dtype.kind in "fiub" or str(x.dtype) in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        return x.astype(np.float32)
    raise TypeError("cannot draw an array of dtype %r (expected numbers or booleans)" % str(x.dtype))


def tile_stats(tile):
    """Statistics of one tile over its finite values.

    Args:
      tile: float array of any shape.

    Returns:
      dict with ``min``, ``max``, ``mean``, ``std`` (over finite values; 0.0
      when there are none), ``zero`` (fraction of all values that are exactly
      0), ``nan`` and ``inf`` (counts).
    """
    tile = np.asarray(tile)
    finite = np.isfinite(tile)
    vals = tile[finite].astype(np.float64)
    n = tile.size
    if vals.size:
        out = {
            "min": float(vals.min()),
            "max": float(vals.max()),
            "mean": float(vals.mean()),
            "std": float(vals.std()),
        }
    else:
        out = {"min": 0.0, "max": 0.0, "mean": 0.0, "std": 0.0}
    out["zero"] = float(np.count_nonzero(tile == 0) / n) if n else 0.0
    out["nan"] = int(np.count_nonzero(np.isnan(tile)))
    out["inf"] = int(np.count_nonzero(np.isinf(tile)))
    return out


def quantize(tile, lo, hi):
    """Maps finite values of ``tile`` linearly from [lo, hi] to uint8 0..255.

    A constant tile (``hi == lo``) maps to 0. Non-finite values map to 0 and are
    flagged by :func:`alpha_codes`.
    """
    tile = np.asarray(tile, dtype=np.float64)
    span = hi - lo
    finite = np.isfinite(tile)
    safe = np.where(finite, tile, lo)
    if span > 0 and np.isfinite(span):
        q = np.rint((safe - lo) / span * 255.0)
    else:
        q = np.zeros_like(safe)
    return np.clip(q, 0, 255).astype(np.uint8)


def alpha_codes(tile):
    """Alpha channel for a tile: 255 finite, 1 NaN, 2 +Inf, 3 -Inf."""
    tile = np.asarray(tile)
    a = np.full(tile.shape, ALPHA_DATA, dtype=np.uint8)
    a[np.isnan(tile)] = ALPHA_NAN
    a[np.isposinf(tile)] = ALPHA_POSINF
    a[np.isneginf(tile)] = ALPHA_NEGINF
    return a


def downsample(tile, max_pixels):
    """Block-averages a 2-D (or HxWx3) tile until it has at most ``max_pixels``.

    The factor is the smallest integer ``f`` with ``ceil(h/f)*ceil(w/f) <=
    max_pixels``; edge blocks average over the pixels they have. NaN/Inf in a
    block make the block NaN/Inf (the sum propagates them), so they stay visible.

    Returns:
      ``(tile, f)``.
    """
    h, w = tile.shape[:2]
    if max_pixels is None or h * w <= max_pixels:
        return tile, 1
    f = 1
    while math.ceil(h / f) * math.ceil(w / f) > max_pixels:
        f += 1
    hp, wp = math.ceil(h / f) * f, math.ceil(w / f) * f
    pad = [(0, hp - h), (0, wp - w)] + [(0, 0)] * (tile.ndim - 2)
    data = np.pad(tile.astype(np.float64), pad)
    ones = np.pad(np.ones((h, w)), pad[:2])
    shape = (hp // f, f, wp // f, f) + tile.shape[2:]
    sums = data.reshape(shape).sum(axis=(1, 3))
    counts = ones.reshape(hp // f, f, wp // f, f).sum(axis=(1, 3))
    if tile.ndim == 3:
        counts = counts[..., None]
    return sums / counts, f


def compose_grid(tiles, stats=None, gap=GAP):
    """Quantises tiles with their own ranges and lays them out in a grid.

    Args:
      tiles: list of float arrays, all (h, w) or all (h, w, 3), same size.
      stats: the :func:`tile_stats` of each tile, when the range must come
        from elsewhere (the full-resolution tile of a downsampled one);
        computed from ``tiles`` when None.
      gap: pixels between tiles (alpha 0).

    Returns:
      ``(image, stats)``: ``image`` is uint8 (H, W, 2) for grey tiles or
      (H, W, 4) for RGB tiles; ``stats`` is a list with the
      :func:`tile_stats` of each tile.
    """
    n = len(tiles)
    if n == 0:
        raise ValueError("compose_grid needs at least one tile")
    th, tw = tiles[0].shape[:2]
    rgb = tiles[0].ndim == 3
    rows, cols = grid_shape(n)
    if stats is None:
        stats = [tile_stats(t) for t in tiles]
    depth = 4 if rgb else 2
    img = np.zeros((rows * th + (rows - 1) * gap, cols * tw + (cols - 1) * gap, depth), np.uint8)
    for i, (tile, st) in enumerate(zip(tiles, stats)):
        r, c = divmod(i, cols)
        y, x = r * (th + gap), c * (tw + gap)
        q = quantize(tile, st["min"], st["max"])
        if rgb:
            img[y:y + th, x:x + tw, :3] = q
            img[y:y + th, x:x + tw, 3] = alpha_codes(tile).min(axis=2)
        else:
            img[y:y + th, x:x + tw, 0] = q
            img[y:y + th, x:x + tw, 1] = alpha_codes(tile)
    return img, stats


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


def vector_tile(v):
    """Lays a 1-D vector out as a strip (<= STRIP_MAX values) or near-square.

    Unused cells of the near-square are NaN-free padding: they get alpha 0 via
    the returned mask.

    Returns:
      ``(tile, mask)``: the 2-D tile and a boolean mask of cells holding data.
    """
    v = np.ravel(v)
    d = v.size
    if d <= STRIP_MAX:
        rows, cols = 1, max(d, 1)
    else:
        rows, cols = grid_shape(d)
    tile = np.zeros(rows * cols, dtype=np.float64)
    mask = np.zeros(rows * cols, dtype=bool)
    tile[:d] = v
    mask[:d] = True
    return tile.reshape(rows, cols), mask.reshape(rows, cols)


def render_activation(x, max_channels=64, max_tile_pixels=4096, min_spatial=2,
                      channels_first=False):
    """Draws one probe's output of one layer.

    Args:
      x: the layer output for a single probe sample (batch axis removed), any
        numeric dtype.
      max_channels: at most this many channels are drawn (the first ones).
      max_tile_pixels: a larger tile is block-averaged down to this size.
      min_spatial: (H, W, C) outputs with H or W below this are drawn as a
        vector (e.g. the 1x1xC output of a global pooling).
      channels_first: the layer uses ``data_format="channels_first"``.

    Returns:
      ``(image, info)``: ``image`` is uint8 (H, W, 2); ``info`` is a JSON-ready
      dict with ``layout``, ``shape``, ``channels`` (in the output),
      ``shown``, ``rows``, ``cols``, ``tile_h``, ``tile_w``, ``gap``,
      ``scale`` (downsampling factor), ``slice`` (for volumes) and ``stats``
      (one :func:`tile_stats` dict per drawn tile).
    """
    x = to_float(x)
    shape = list(x.shape)
    if channels_first and x.ndim in (3, 4):
        x = np.moveaxis(x, 0, -1)
    layout = classify_shape(x.shape, min_spatial)
    info = {"layout": layout, "shape": shape, "slice": None}
    if layout == "volume":
        mid = x.shape[0] // 2
        info["slice"] = {"axis": 0, "index": mid}
        x = x[mid]
    if layout in ("grid", "volume"):
        channels = x.shape[-1]
        shown = min(channels, max_channels)
        tiles, scale = [], 1
        for c in range(shown):
            t, scale = downsample(x[:, :, c], max_tile_pixels)
            tiles.append(t)
        # Ranges come from the full-resolution channel so that the stored
        # min/max are the layer's real ones, not those of the averaged tile.
        stats = [tile_stats(x[:, :, c]) for c in range(shown)]
        img, _ = compose_grid(tiles, stats)
    elif layout == "heat":
        channels, shown = 1, 1
        t, scale = downsample(x, max_tile_pixels)
        stats = [tile_stats(x)]
        img, _ = compose_grid([t], stats)
    else:
        channels, shown, scale = 1, 1, 1
        v = np.ravel(x)
        t, mask = vector_tile(v)
        if t.size > max_tile_pixels:
            t, scale = downsample(t, max_tile_pixels)
            mask = downsample(mask.astype(np.float64), max_tile_pixels)[0] > 0
        stats = [tile_stats(v)]
        img, _ = compose_grid([t], stats)
        img[..., 1][~mask] = ALPHA_GAP
        img[..., 0][~mask] = 0
    rows, cols = grid_shape(shown)
    th, tw = (img.shape[0] - (rows - 1) * GAP) // rows, (img.shape[1] - (cols - 1) * GAP) // cols
    info.update(channels=int(channels), shown=int(shown), rows=rows, cols=cols,
                tile_h=int(th), tile_w=int(tw), gap=GAP, scale=int(scale), stats=stats)
    return img, info


def render_tiles(tiles, max_tile_pixels=4096):
    """Draws a list of same-shape 2-D or HxWx3 tiles, each with its own range.

    Used for kernels: conv filters, and dense units reshaped to the input.

    Returns:
      ``(image, info)`` as for :func:`render_activation` with layout
      ``"tiles"`` and ``rgb`` set.
    """
    small = []
    scale = 1
    for t in tiles:
        s, scale = downsample(to_float(t), max_tile_pixels)
        small.append(s)
    stats = [tile_stats(to_float(t)) for t in tiles]
    img, _ = compose_grid(small, stats)
    rgb = small[0].ndim == 3
    rows, cols = grid_shape(len(tiles))
    th, tw = small[0].shape[:2]
    info = {"layout": "tiles", "rgb": rgb, "shape": list(np.shape(tiles[0])),
            "channels": len(tiles), "shown": len(tiles), "rows": rows, "cols": cols,
            "tile_h": int(th), "tile_w": int(tw), "gap": GAP, "scale": int(scale),
            "slice": None, "stats": stats}
    return img, info


def kernel_tiles(kernel, kind, max_filters=64, input_channel="first", image_shape=None):
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
        inputs come from; without it the kernel is one in x out matrix.

    Returns:
      ``(tiles, total, note)``: the list of tiles, the number of filters in the
      kernel, and a short description of what each tile shows.
    """
    k = to_float(kernel)
    if kind == "dense":
        if image_shape is None:
            return [k], 1, "kernel matrix (rows: inputs, columns: units)"
        units = k.shape[1]
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
    total = k.shape[-1]
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


def encode_png(img, compress_level=1):
    """Encodes a uint8 (H, W, 1|2|3|4) or (H, W) array as PNG bytes (Pillow)."""
    from PIL import Image

    img = np.ascontiguousarray(img, dtype=np.uint8)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    mode = {2: "L", 3: None}.get(img.ndim)
    if img.ndim == 3:
        mode = {2: "LA", 3: "RGB", 4: "RGBA"}[img.shape[2]]
    buf = io.BytesIO()
    Image.fromarray(img, mode=mode).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def decode_png(data):
    """Decodes PNG bytes to a uint8 array (H, W[, C]) (Pillow)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


def image_shape_of(shape):
    """Returns (h, w[, c]) if a sample of ``shape`` looks like an image, else None.

    Image-like: (H, W), (H, W, 1|3|4) with H, W >= 4, or a flat vector whose
    length is a perfect square >= 64 (e.g. 784 -> 28x28).
    """
    shape = tuple(int(s) for s in shape if s is not None)
    if len(shape) == 2 and min(shape) >= 4:
        return shape
    if len(shape) == 3 and min(shape[:2]) >= 4 and shape[2] in (1, 3, 4):
        return shape if shape[2] != 1 else shape[:2]
    if len(shape) == 1 and shape[0] >= 64:
        r = int(round(math.sqrt(shape[0])))
        if r * r == shape[0]:
            return (r, r)
    return None


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
