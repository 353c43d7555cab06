"""Per-channel statistics of every layer: definitions, reference maths, encoding.

Every logged epoch, each layer's output on the probe is reduced to a few
numbers per channel (the last axis, or axis 1 of ``channels_first`` layers;
a Dense layer's channels are its units). They are always logged, whatever
the budget leaves of the images, because they are small. The statistics,
over all probe samples and positions of a channel:

* ``mean``, ``std``, ``min``, ``max``: of the finite values (0 if none);
* ``active``: fraction of values > 0 (a unit whose ``active`` is 0 was never
  positive on any probe: *dead* for ReLU-like activations);
* ``zero``: fraction of values exactly 0;
* ``sat``: fraction of values within ``SATURATION_MARGIN`` of the range
  (of its width) of a bounded activation: sigmoid and hard sigmoid (0, 1),
  tanh (-1, 1), softsign (-1, 1), ReLU6 (upper bound 6 only: its lower
  bound is inactivity); 0 for unbounded activations;
* ``nan``, ``inf``: counts of NaN and +-Inf values.

The computation inside the compiled probe pass lives in
:mod:`tb_layerview.capture`; :func:`channel_stats` is the same maths in numpy,
the reference the tests hold it to, and what an eager pass uses for outputs
in host memory. This module needs neither TensorFlow nor
Keras: the reader decodes with it.
"""

import json
import threading
import zlib

import numpy as np

#: Order of the statistics in the encoded array.
STATS = ("mean", "std", "min", "max", "active", "zero", "sat", "nan", "inf")

#: A value this close to a bound (as a fraction of the range) is saturated.
SATURATION_MARGIN = 0.01

#: (low, high) bounds of bounded activations; None: no bound on that side.
_BOUNDS = {
    "sigmoid": (0.0, 1.0),
    "hard_sigmoid": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "softsign": (-1.0, 1.0),
    "relu6": (None, 6.0),
}


def saturation_limits(activation):
    """``(low, high)`` thresholds beyond which a value of ``activation`` is
    saturated, or None for an unbounded activation. A side without a bound is
    ``-inf`` / ``+inf``."""
    bounds = _BOUNDS.get(activation)
    if bounds is None:
        return None
    lo, hi = bounds
    width = (hi - (lo if lo is not None else 0.0))
    margin = SATURATION_MARGIN * width
    return (-np.inf if lo is None else lo + margin, hi - margin)


#: The activations among the ``keras.ops`` operations a functional graph can
#: hold (``keras.ops.relu(x)`` is a node of class ``Relu``), by class name.
_OPERATION_ACTIVATIONS = {
    "Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "HardSigmoid": "hard_sigmoid",
    "Tanh": "tanh", "Softsign": "softsign", "LeakyRelu": "leaky_relu", "Elu": "elu",
    "Selu": "selu", "Celu": "celu", "Gelu": "gelu", "Silu": "silu", "Softplus": "softplus",
}


def activation_of(layer):
    """The name of a layer's output activation (``"relu"``, ``"sigmoid"``...), or None.

    ``layer`` may also be an operation of a functional graph
    (``keras.ops.sigmoid(x)`` gives ``"sigmoid"``).

    Example::

        activation_of(keras.layers.Dense(4, activation="tanh"))  # "tanh"
    """
    cls = type(layer).__name__
    if cls in _OPERATION_ACTIVATIONS:
        return _OPERATION_ACTIVATIONS[cls]
    if cls == "ReLU":
        max_value = getattr(layer, "max_value", None)
        return "relu6" if max_value is not None and float(max_value) == 6.0 else "relu"
    if cls == "Softmax":
        return "softmax"
    if cls in ("LeakyReLU", "ELU", "PReLU"):
        return {"LeakyReLU": "leaky_relu", "ELU": "elu", "PReLU": "leaky_relu"}[cls]
    act = getattr(layer, "activation", None)
    if act is None:
        return None
    name = getattr(act, "__name__", None) or (act if isinstance(act, str) else None)
    if name in (None, "linear", "identity"):
        return None
    return str(name)


#: Activations whose output is "off" at <= 0: a unit never positive on the probe is dead.
RECTIFIERS = ("relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "mish", "celu")

#: A unit is saturated when at least this fraction of its values on the probe
#: lie within SATURATION_MARGIN of a bound of its activation.
SATURATED_UNIT = 0.9


def unit_flags(activation, values):
    """Which units of one layer output have each problem: the one rule
    behind :func:`health`, :func:`unit_counts` and :func:`problems`.

    Args:
      activation: the layer's activation name (:func:`activation_of`).
      values: array (len(STATS), C) of :func:`channel_stats`.

    Returns:
      ``{"dead": bool (C,) (never positive on the probe), or None when the
      activation is no rectifier; "saturated": bool (C,) (``sat >=
      SATURATED_UNIT``), or None when the activation is unbounded;
      "nonfinite": bool (C,) (any NaN or Inf)}``.

    Example::

        v = np.zeros((len(STATS), 2)); v[STATS.index("active")] = [0.0, 0.5]
        unit_flags("relu", v)["dead"]  # [True, False]
    """
    v = np.asarray(values, dtype=np.float64).reshape(len(STATS), -1)
    row = {name: v[i] for i, name in enumerate(STATS)}
    return {"dead": row["active"] == 0 if activation in RECTIFIERS else None,
            "saturated": row["sat"] >= SATURATED_UNIT if activation in _BOUNDS else None,
            "nonfinite": (row["nan"] + row["inf"]) > 0}


#: The unit problems :func:`unit_flags` tells, in the order answers list them.
PROBLEMS = ("dead", "saturated", "nonfinite")


def health(activation, values, flags=None):
    """Unit health of one layer output from its statistics.

    Args:
      activation: the layer's activation name (:func:`activation_of`).
      values: array (len(STATS), C) of :func:`channel_stats`.
      flags: their :func:`unit_flags`, when already at hand.

    Returns:
      ``{"dead": fraction of units never positive on the probe, or None when
      the activation is no rectifier; "saturated": fraction of units with
      ``sat >= SATURATED_UNIT``, or None when the activation is unbounded;
      "nan": NaN count; "inf": Inf count}``.
    """
    v = np.asarray(values, dtype=np.float64).reshape(len(STATS), -1)
    c = max(v.shape[1], 1)
    flags = unit_flags(activation, v) if flags is None else flags
    share = {k: None if f is None else float(np.count_nonzero(f) / c) for k, f in flags.items()}
    return {"dead": share["dead"], "saturated": share["saturated"],
            "nan": int(v[STATS.index("nan")].sum()), "inf": int(v[STATS.index("inf")].sum())}


def channel_axis(ndim, channels_first=False):
    """The channel axis of an output of rank ``ndim`` (batch axis included)."""
    if ndim <= 1:
        return None
    return 1 if channels_first and ndim in (4, 5) else ndim - 1


def channel_stats(x, channels_first=False, limits=None):
    """Per-channel statistics of one layer output, in numpy.

    This is the reference the in-graph version is held to, and what the
    probe pass uses for outputs that are already in host memory: a few
    numpy reductions cost far less than a dozen eager backend operations.

    Args:
      x: array (N, ...): the layer's output on N probe samples.
      channels_first: the channel axis is 1 (for rank 4 and 5 outputs).
      limits: :func:`saturation_limits` of the layer's activation, or None.

    Returns:
      float64 array (len(STATS), C), rows in :data:`STATS` order.

    Example::

        channel_stats(np.array([[0.0, 2.0], [1.0, -2.0]]))[STATS.index("mean")]  # [0.5, 0.0]
    """
    x = np.asarray(x)
    if x.dtype.kind != "f" or x.dtype.itemsize < 4:  # ints, bools, float16, bfloat16
        x = x.astype(np.float32)
    axis = channel_axis(x.ndim, channels_first)
    if axis is None:
        flat = x.reshape(-1, 1)
    else:  # rows counted, not inferred: an output without channels has no -1 to infer
        c = x.shape[axis]
        flat = np.moveaxis(x, axis, -1).reshape(x.size // c if c else 0, c)
    if not flat.shape[0]:  # no values (a sequence of length 0, no channels): nothing to measure
        return np.zeros((len(STATS), flat.shape[1]))
    flat = np.ascontiguousarray(flat)
    lo, hi = column_reduce(np.minimum, flat), column_reduce(np.maximum, flat)
    # min and max carry any NaN or Inf through: finite extremes mean finite data.
    if np.isfinite(lo).all() and np.isfinite(hi).all():
        return _finite_stats(flat, lo, hi, limits)
    return _masked_stats(flat.astype(np.float64), limits)


#: Row width (values) that column reductions fold a (positions, C) matrix
#: to: numpy reduces a C-contiguous matrix along axis 0 one row at a time,
#: and rows of a few dozen channels leave it mostly loop overhead.
_FOLD_WIDTH = 4096


def column_reduce(ufunc, flat, dtype=None):
    """``ufunc.reduce(flat, axis=0)`` of a C-contiguous (positions, C) matrix,
    3 to 4 times faster where C is small.

    Consecutive rows are folded side by side into rows of about
    ``_FOLD_WIDTH`` values, reduced along axis 0 with long inner loops, and
    the ``k`` partial results of each column then reduced together.

    Example::

        column_reduce(np.maximum, np.arange(12.0).reshape(6, 2))  # [10., 11.]
    """
    n, c = flat.shape
    k = _FOLD_WIDTH // max(c, 1)
    if k < 2 or n < 2 * k:
        return ufunc.reduce(flat, axis=0, dtype=dtype)
    m = n // k * k
    out = ufunc.reduce(ufunc.reduce(flat[:m].reshape(m // k, k * c), axis=0, dtype=dtype).reshape(k, c), axis=0)
    if m < n:
        out = ufunc(out, ufunc.reduce(flat[m:], axis=0, dtype=dtype))
    return out


def _count(mask):
    """Per-column count of a boolean (positions, C) matrix (summed as bytes:
    no int64 copy of the mask)."""
    return column_reduce(np.add, mask.view(np.uint8), dtype=np.int32).astype(np.int64)


#: Where a channel's variance is below this share of its squared mean, the
#: sums are taken again around the mean: there, E[x^2] - E[x]^2 in the
#: data's precision would cancel out.
_CANCELLATION = 1e-2


def _finite_stats(flat, lo, hi, limits):
    """:func:`channel_stats` of an all-finite (positions, C) matrix with its
    column minima and maxima: sums as matrix products in the data's
    precision (relative error about 1e-6), no masks, no float64 copy."""
    n = flat.shape[0]
    ones = np.ones(n, flat.dtype)
    mean = (ones @ flat).astype(np.float64) / n
    var = np.einsum("ij,ij->j", flat, flat).astype(np.float64) / n - mean * mean
    if (var < _CANCELLATION * mean * mean).any():
        # Two passes in the data's precision: values near the mean subtract
        # exactly, and the squares of what is left no longer cancel. A
        # broadcast subtraction of the whole matrix costs a third of
        # gathering the few affected columns (MobileNetV2: 129 of 155 outputs
        # have such a channel while the network is young).
        centre = mean.astype(flat.dtype)
        d = flat - centre
        shift = (ones @ d).astype(np.float64) / n
        var = np.einsum("ij,ij->j", d, d).astype(np.float64) / n - shift * shift
        mean = centre.astype(np.float64) + shift
    if (lo > 0).all():  # no zero anywhere: no mask to count
        zero = np.zeros(flat.shape[1], np.int64)
    else:
        zero = _count(flat == 0)
    if (lo >= 0).all():  # rectified outputs: what is not zero is positive
        active = n - zero
    elif (hi <= 0).all():
        active = np.zeros(flat.shape[1])
    else:
        active = _count(flat > 0)
    low, high = limits if limits is not None else (-np.inf, np.inf)
    # Only channels that reach a limit are counted: the rest have no saturated value.
    below, above = lo <= low, hi >= high
    if below.any() and above.any():
        sat = _count((flat <= low) | (flat >= high)) / n
    elif below.any() or above.any():
        sat = _count(flat <= low if below.any() else flat >= high) / n
    else:
        sat = np.zeros(flat.shape[1])
    nothing = np.zeros(flat.shape[1])
    return np.stack([mean, np.sqrt(np.maximum(var, 0.0)), lo, hi, active / n, zero / n, sat,
                     nothing, nothing]).astype(np.float64)


def _masked_stats(flat, limits):
    """:func:`channel_stats` of a (positions, C) float64 matrix that may hold NaN and Inf."""
    finite = np.isfinite(flat)
    count = finite.sum(axis=0)
    n = max(flat.shape[0], 1)
    vals = np.where(finite, flat, 0.0)
    mean = vals.sum(axis=0) / np.maximum(count, 1)
    std = np.sqrt(np.where(finite, flat - mean, 0.0).__pow__(2).sum(axis=0) / np.maximum(count, 1))
    lo = np.where(count > 0, np.where(finite, flat, np.inf).min(axis=0), 0.0)
    hi = np.where(count > 0, np.where(finite, flat, -np.inf).max(axis=0), 0.0)
    with np.errstate(invalid="ignore"):
        active = (flat > 0).sum(axis=0) / n
        zero = (flat == 0).sum(axis=0) / n
        if limits is None:
            sat = np.zeros(flat.shape[1])
        else:
            sat = ((flat <= limits[0]) | (flat >= limits[1])).sum(axis=0) / n
    return np.stack([mean, std, lo, hi, active, zero, sat,
                     np.isnan(flat).sum(axis=0), np.isinf(flat).sum(axis=0)]).astype(np.float64)


#: Bytes of a block that zlib tries first: a block whose sample shrinks to
#: no less than :data:`_RAW_SHARE` of it is stored as it is.
_SAMPLE_BYTES = 8192
_RAW_SHARE = 0.9

#: Records of fewer bytes are one zlib stream: in blocks of a few hundred
#: bytes, zlib would find less to share and the header would list them.
_BLOCKS_FROM_BYTES = 1 << 16


def _blocks(planes, rows):
    """The byte planes cut into one block per plane and statistic, each
    zlib-compressed or stored raw: ``(header entries, data)``."""
    entries, parts = [], []
    for block in np.split(planes.reshape(-1), planes.shape[0] * rows) if planes.size else []:
        raw = block.tobytes()
        sample = raw[:_SAMPLE_BYTES]
        packed = None
        if len(zlib.compress(sample, 1)) < _RAW_SHARE * len(sample):
            packed = zlib.compress(raw, 1)
        if packed is None or len(packed) >= len(raw):
            entries.append([len(raw), "raw"])
            parts.append(raw)
        else:
            entries.append([len(packed), "zlib"])
            parts.append(packed)
    return entries, b"".join(parts)


def encode(records):
    """Encodes one step's statistics of all layers to ``[header_json, data]``.

    Args:
      records: list of ``(path, activation, array (len(STATS), C))``.

    Returns:
      two blobs: the JSON header ``{"stats": [...], "layers": [{"path",
      "activation", "channels", "offset", "nan", "inf"}...], "dtype",
      "compression", "shuffle", "blocks"}`` and the little-endian float32
      array (len(STATS), total channels), its bytes stored as 4 planes
      (every value's first byte, then every second byte, ...). Records of
      64 KiB and more cut each plane into one block per statistic, a block
      zlib-compressed or stored raw as ``blocks`` (``[[bytes, "zlib" or
      "raw"], ...]``) says (``"compression": "blocks"``); smaller ones are
      one zlib stream (``"compression": "zlib"``, no ``blocks``).

    The planes are there for size and speed: the low mantissa bytes of
    means and extremes are noise that zlib cannot shrink, and interleaved
    with the sign and exponent bytes they hide those bytes' repetitions too
    (ResNet50 at 64x64, 93 k channels: 1.08 MB in 23 ms instead of 1.27 MB
    in 32 ms). The blocks are there for speed: zlib spends as long on a
    block of noise as on any other, and the low bytes of the means and
    deviations are a third of the record (the same 93 k channels, 1.25 MB
    either way, in 22 ms instead of 32 ms).
    """
    layers, parts, offset = [], [], 0
    for path, activation, arr in records:
        arr = np.asarray(arr, dtype=np.float64).reshape(len(STATS), -1)
        c = arr.shape[1]
        layers.append({"path": path, "activation": activation, "channels": int(c), "offset": offset,
                       "nan": int(arr[STATS.index("nan")].sum()), "inf": int(arr[STATS.index("inf")].sum())})
        parts.append(arr)
        offset += c
    data = np.concatenate(parts, axis=1) if parts else np.zeros((len(STATS), 0))
    values = np.ascontiguousarray(data, dtype="<f4")
    planes = np.ascontiguousarray(values.view(np.uint8).reshape(-1, values.itemsize).T)
    header = {"stats": list(STATS), "layers": layers, "dtype": values.dtype.str, "compression": "zlib",
              "shuffle": values.itemsize}
    if planes.size >= _BLOCKS_FROM_BYTES:
        header["compression"] = "blocks"
        header["blocks"], blob = _blocks(planes, len(STATS))
    else:
        blob = zlib.compress(planes.tobytes(), 1)
    return [json.dumps(header, separators=(",", ":")).encode("utf-8"), blob]


def _unpack(header, data_blob):
    """The record's bytes before compression, by its ``compression``."""
    how = header.get("compression")
    if how == "zlib":  # one stream: small records, and every record before format version 5
        return zlib.decompress(data_blob)
    if how != "blocks":
        return data_blob
    out, at = [], 0
    for entry in header["blocks"]:
        size, kind = int(entry[0]), entry[1]
        if size < 0 or at + size > len(data_blob) or kind not in ("raw", "zlib"):
            raise ValueError("block %r does not fit the %d bytes of data" % (entry, len(data_blob)))
        part = data_blob[at:at + size]
        out.append(zlib.decompress(part) if kind == "zlib" else part)
        at += size
    if at != len(data_blob):
        raise ValueError("the blocks hold %d of the %d bytes of data" % (at, len(data_blob)))
    return b"".join(out)


def decode(header_blob, data_blob):
    """Inverse of :func:`encode`: ``(header, array (len(STATS), total channels))``.

    Raises:
      ValueError: the blobs are not a statistics record.
    """
    try:
        header = json.loads(header_blob.decode("utf-8"))
        names = header["stats"]
        total = sum(int(l["channels"]) for l in header["layers"])
        raw = _unpack(header, data_blob)
        dtype = np.dtype(header.get("dtype", "<f4"))
        size = int(header.get("shuffle") or 0)
        if size > 1:  # byte planes (format version 3; older records have none)
            if size != dtype.itemsize:
                raise ValueError("shuffle %r does not match dtype %s" % (size, dtype))
            raw = np.ascontiguousarray(np.frombuffer(raw, np.uint8).reshape(size, -1).T).tobytes()
        data = np.frombuffer(raw, dtype=dtype).reshape(len(names), total)
        for l in header["layers"]:
            offset, channels = int(l["offset"]), int(l["channels"])
            if not isinstance(l["path"], str) or channels < 0 or offset < 0 or offset + channels > total:
                raise ValueError("layer record %r does not fit %d channels" % (l, total))
    except (ValueError, KeyError, TypeError, IndexError, zlib.error) as e:
        raise ValueError("not a tb_layerview statistics record: %s" % e) from None
    return header, data


def layer_slice(header, data, path):
    """``{stat: array (C,)}`` of one layer from a decoded record, or None."""
    for layer in header["layers"]:
        if layer["path"] == path:
            part = data[:, layer["offset"]:layer["offset"] + layer["channels"]]
            return {name: part[i] for i, name in enumerate(header["stats"])}
    return None


def unit_counts(activation, values):
    """Numbers of dead, saturated (None where they make no sense for the
    activation) and non-finite units of one layer output, from its statistics."""
    return {k: None if f is None else int(np.count_nonzero(f)) for k, f in unit_flags(activation, values).items()}


def problems(steps, decoded):
    """The unit problems of every layer output over a run's steps.

    Args:
      steps: the steps, in order.
      decoded: the :func:`decode` result of each step.

    Returns:
      list of ``{"path", "activation", "channels", "dead", "saturated",
      "nonfinite", "since", "first"}``: the numbers of dead, saturated (None
      where the activation has no such notion) and non-finite units at the
      last step the layer was measured; ``since``, ``{problem: the step from
      which the layer has had it at every step}`` for the problems it has
      then; and ``first``, ``{problem: the first step it appeared}``, gone
      since or not. A step without the layer's statistics breaks no streak.
    """
    out = {}
    for step, (header, data) in zip(steps, decoded):
        for l in header["layers"]:
            counts = unit_counts(l.get("activation"), data[:, l["offset"]:l["offset"] + l["channels"]])
            rec = out.setdefault(l["path"], {"path": l["path"], "activation": l.get("activation"),
                                             "channels": l["channels"], "since": {}, "first": {}})
            for what, n in counts.items():
                rec[what] = n
                if n:
                    rec["first"].setdefault(what, step)
                    rec["since"].setdefault(what, step)
                else:
                    rec["since"].pop(what, None)
    return list(out.values())


class UnitStreaks:
    """Since when each unit of each layer output has had each problem, fed
    one step at a time: what :func:`unit_streaks` reads from a log, and what
    :meth:`tb_layerview.LayerView.unit_problems` keeps while training runs.
    A step without a layer's statistics breaks none of its streaks; one
    whose channel count differs starts them again. Safe to read from one
    thread while another adds.

    Example::

        streaks = UnitStreaks()
        for step, records in enumerate(steps_of_records):  # (path, activation, values)
            for path, activation, values in records:
                streaks.add(step, path, activation, values)
        streaks.rows()  # [{"layer": "conv2", "channel": 1, "problem": "dead", "since": 2, ...}]
    """

    def __init__(self):
        self._start = {}  # path -> {problem: first step of each channel's streak, -1 if none}
        self._flags = {}  # path -> unit_flags at the last step that measured it
        self._last = {}   # path -> (activation, the last step that measured it)
        self._lock = threading.Lock()

    def add(self, step, path, activation, values, flags=None):
        """Adds one layer output's statistics (array (len(STATS), C)) at
        ``step`` (``flags``: their :func:`unit_flags`, when already at hand)."""
        f = unit_flags(activation, values) if flags is None else flags
        c = len(f["nonfinite"])
        with self._lock:
            runs = self._start.get(path)
            if runs is None or any(len(v) != c for v in runs.values()):
                runs = self._start[path] = {k: np.full(c, -1, np.int64) for k in PROBLEMS}
            for what in PROBLEMS:
                on = f[what] if f[what] is not None else np.zeros(c, bool)
                runs[what] = np.where(on, np.where(runs[what] >= 0, runs[what], step), -1)
            self._flags[path] = f
            self._last[path] = (activation, step)

    def streaks(self, path=None):
        """``{problem: [[channel, since step], ...] in channel order, or None
        where the activation has no such notion}`` of one layer output, None
        when no step measured it; without ``path``, ``{path: that}`` of every one."""
        with self._lock:
            out = self._streaks()
        return out if path is None else out.get(path)

    def _streaks(self):
        return {p: {what: None if self._flags[p][what] is None else
                    [[int(ch), int(runs[what][ch])] for ch in np.flatnonzero(runs[what] >= 0)]
                    for what in PROBLEMS}
                for p, runs in self._start.items()}

    def rows(self):
        """One dict per unit with a problem at its layer's last measured step:
        ``{"layer", "activation", "channel", "problem", "since", "last_step"}``,
        layers in the order first measured, then problems, then channels."""
        with self._lock:  # one step's streaks and last steps, not two
            every, last = self._streaks(), dict(self._last)
        return [{"layer": path, "activation": activation or "", "channel": ch, "problem": problem,
                 "since": since, "last_step": at}
                for path, (activation, at) in last.items()
                for problem, found in every.get(path, {}).items() for ch, since in found or ()]


def unit_streaks(steps, decoded, path=None):
    """The units of a layer output that have each problem at the last step
    it was measured, with the step since which each has had it.

    Args:
      steps: the steps, in order.
      decoded: the :func:`decode` result of each step.
      path: the layer output; None: every layer output, in one pass.

    Returns:
      :meth:`UnitStreaks.streaks` of those steps.

    Example::

        # a ReLU channel 1 dead at steps 2 and 3, after being alive at step 1
        unit_streaks([1, 2, 3], decoded, "conv2")["dead"]  # [[1, 2]]
    """
    streaks = UnitStreaks()
    for step, (header, data) in zip(steps, decoded):
        for layer in header["layers"]:
            if path is None or layer["path"] == path:
                c, o = layer["channels"], layer["offset"]
                streaks.add(step, layer["path"], layer.get("activation"), data[:, o:o + c])
    return streaks.streaks(path)
