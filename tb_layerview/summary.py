"""tf.summary-style ops that write tb_layerview series.

Use them in custom training loops, inside a ``writer.as_default()`` block,
exactly like ``tf.summary.image``::

    import tensorflow as tf
    import tb_layerview

    writer = tf.summary.create_file_writer("logs/run1")
    with writer.as_default():
        for step in range(epochs):
            train_one_epoch()
            outs = feature_extractor(probe)  # (N, H, W, C) for a conv layer
            tb_layerview.summary.activations("conv1", outs, step=step,
                                             layer_class="Conv2D")
            tb_layerview.summary.filters("conv1", conv1.kernel, step=step)

Every function returns True when a summary was written and False when no
default writer is set (as ``tf.summary.write`` does). Inside
``tb_layerview.writer.writing_to(EventWriter(logdir))`` they write into
that event file instead (TensorBoard's protos and file layer), without
TensorFlow. The blob layout of each kind is written down in
``docs/format.md``.
"""

import contextlib
import json
import math
import threading

import numpy as np

from tb_layerview import kernels
from tb_layerview import metadata
from tb_layerview import probe as probe_lib
from tb_layerview import render
from tb_layerview import writer as writer_lib

_TALLY = threading.local()


@contextlib.contextmanager
def tally():
    """Counts the blob bytes this thread writes inside the block.

    Yields:
      a dict whose ``"bytes"`` grows with every series written.
    """
    counter = {"bytes": 0}
    previous = getattr(_TALLY, "counter", None)
    _TALLY.counter = counter
    try:
        yield counter
    finally:
        _TALLY.counter = previous


def _tf():
    import tensorflow as tf  # deferred: importing tb_layerview must stay light

    return tf


def json_bytes(obj):
    """JSON-encodes ``obj`` (see :func:`json_ready` for what gets converted)."""
    try:
        text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError):  # NaN/Inf or non-JSON values: the slow, thorough path
        text = json.dumps(json_ready(obj), separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def json_ready(obj, depth=0):
    """A JSON-encodable copy of ``obj``: non-finite floats become null, numpy
    values plain numbers and lists, other objects their ``repr`` (so that any
    layer's ``get_config()`` can be stored)."""
    if depth > 16:
        return repr(obj)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_ready(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v, depth + 1) for v in obj]
    if isinstance(obj, np.generic):
        return json_ready(obj.item(), depth + 1)
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist(), depth + 1)
    return repr(obj)


def config_ready(obj, depth=0):
    """:func:`json_ready` for a layer's configuration, values too large to
    store described instead (:func:`tb_layerview.walk.described`), such as
    the lists a layer's ``get_config`` made itself.

    Example::

        config_ready({"mean": list(range(5000))})  # {"mean": "list of 5000 items, not stored"}
    """
    from tb_layerview import walk

    if depth > 16:
        return repr(obj)
    if obj is None or isinstance(obj, (bool, int)):  # most of a config: nothing to describe
        return obj
    brief = walk.described(obj)
    if brief is not None:
        return brief
    if isinstance(obj, dict):
        return {str(k): config_ready(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [config_ready(v, depth + 1) for v in obj]
    return json_ready(obj, depth)


def write_blobs(kind, blobs, step=None, description="", **fields):
    """Writes one step of a series as a rank-1 string tensor of blobs.

    Args:
      kind: a kind from :mod:`tb_layerview.metadata`.
      blobs: list of bytes.
      step: the step; defaults to ``tf.summary.experimental.get_step()``.
      description: summary description.
      **fields: plugin metadata fields (``layer``, ``layer_class``,
        ``output_shape``, ``layer_index``, ``parent``, ``layout``).

    Returns:
      True on success, False if no default summary writer is set.
    """
    tag = metadata.tag_for(kind, fields.get("layer", ""))
    meta = metadata.create_summary_metadata(kind, description=description, **fields)
    direct = writer_lib.active()
    if direct is not None:  # an EventWriter: no TensorFlow needed
        if step is None:
            raise ValueError("step is required when writing without TensorFlow; got None")
        written = direct.write(tag, list(blobs), step, meta)
    else:
        tf = _tf()
        # Rank 1 is required: the Rust data server drops rank-0 and rank-2 blob tensors.
        tensor = tf.constant(list(blobs), dtype=tf.string, shape=[len(blobs)])
        written = bool(tf.summary.write(tag=tag, tensor=tensor, step=step, metadata=meta))
    counter = getattr(_TALLY, "counter", None)
    if written and counter is not None:
        counter["bytes"] += sum(len(b) for b in blobs) + len(tag) + 64
    return written


def activation_blobs(outputs, max_channels=64, max_tile_pixels=4096, min_spatial=2,
                     channels_first=False):
    """Renders a batch of one layer's outputs (one row per probe) to blobs.

    Returns:
      ``(blobs, info)``: ``blobs[0]`` is the JSON info (layout and per-probe
      per-tile statistics), ``blobs[1 + i]`` the PNG of probe ``i``.
    """
    outputs = np.asarray(outputs)
    images, info = render.render_activations(outputs, max_channels=max_channels,
                                             max_tile_pixels=max_tile_pixels,
                                             min_spatial=min_spatial, channels_first=channels_first)
    info["dtype"] = str(outputs.dtype)
    return [json_bytes(info)] + [render.encode_png(img) for img in images], info


def activations(name, data, step=None, layer_class="", layer_index=0, parent="",
                max_channels=64, max_tile_pixels=4096, min_spatial=2, channels_first=False,
                description=""):
    """Writes one layer's outputs for every probe sample.

    Args:
      name: the layer path, e.g. ``"conv1"`` or ``"encoder/conv1"``.
      data: array-like ``(N, ...)``: the layer's output for N probe samples.
      step: the step (epoch); defaults to the global summary step.
      layer_class: Keras class name shown in the panel.
      layer_index: position in model order.
      parent: enclosing nested model's path.
      max_channels, max_tile_pixels, min_spatial, channels_first: see
        :func:`tb_layerview.render.render_activation`.
      description: summary description.

    Returns:
      True on success, False if no default writer is set.
    """
    data = np.asarray(data)
    blobs, info = activation_blobs(data, max_channels, max_tile_pixels, min_spatial, channels_first)
    return write_blobs(metadata.KIND_ACTIVATIONS, blobs, step=step, description=description,
                       layer=name, layer_class=layer_class, output_shape=data.shape[1:],
                       layer_index=layer_index, parent=parent, layout=info["layout"])


def filter_blobs(kernel, kind, max_filters=64, input_channel="first", image_shape=None,
                 max_tile_pixels=4096, full_shape=None):
    """Renders a kernel to ``[info_json, png]`` (see :func:`render.kernel_tiles`)."""
    tiles, total, note = render.kernel_tiles(kernel, kind, max_filters=max_filters, input_channel=input_channel,
                                             image_shape=image_shape, full_shape=full_shape)
    img, info = render.render_tiles(tiles, max_tile_pixels=max_tile_pixels)
    info["channels"] = int(total)
    info["kernel_shape"] = [int(d) for d in (full_shape if full_shape is not None else np.shape(kernel))]
    info["kernel_kind"] = kind
    info["note"] = note
    info["probes"] = [info.pop("stats")]
    return [json_bytes(info), render.encode_png(img)], info


def filters(name, kernel, step=None, kind=None, layer_class="", layer_index=0, parent="",
            max_filters=64, input_channel="first", image_shape=None, description="", kernel_shape=None):
    """Writes a layer's kernel as a grid of filters.

    Args:
      name: the layer path.
      kernel: the kernel array as Keras stores it.
      step: the step (epoch).
      kind: a kernel kind of :data:`tb_layerview.kernels.KINDS`; guessed
        from the rank when None (2: dense, 3: conv1d, 4: conv2d, 5: conv3d).
      layer_class, layer_index, parent: as for :func:`activations`.
      max_filters: at most this many filters are drawn.
      input_channel: ``"first"`` or ``"mean"``.
      image_shape: for dense kernels, the input image shape.
      description: summary description.
      kernel_shape: the whole kernel's stored shape when ``kernel`` is only
        the part that is drawn (:func:`tb_layerview.kernels.drawn_part`).

    Returns:
      True on success, False if no default writer is set.
    """
    kernel = np.asarray(kernel)
    stored_shape = tuple(int(d) for d in kernel_shape) if kernel_shape is not None else kernel.shape
    if kind is None:
        kind = kernels.kind_from_rank(kernel.ndim)
    render_kind, drawn = kernels.for_rendering(kind, kernel)
    full = kernels.rendering_layout(kind, stored_shape)[1]
    blobs, _ = filter_blobs(drawn, render_kind, max_filters, input_channel, image_shape, full_shape=full)
    return write_blobs(metadata.KIND_FILTERS, blobs, step=step, description=description,
                       layer=name, layer_class=layer_class, output_shape=stored_shape,
                       layer_index=layer_index, parent=parent, layout="tiles")


def channel_stats(records, step=None, encoded=None):
    """Writes the per-channel statistics of every layer at ``step``.

    Args:
      records: list of ``(layer path, activation name or None, array
        (len(stats.STATS), C))``, e.g. from :func:`tb_layerview.stats.channel_stats`.
      step: the step.
      encoded: ``stats.encode(records)``, if it was computed already.
    """
    from tb_layerview import stats

    return write_blobs(metadata.KIND_STATS, encoded or stats.encode(records), step=step)


#: Prefix of the health scalars: TensorBoard's Scalars tab folds them into one section.
HEALTH_SECTION = "layerview_health"


def health_scalars(path, health, step=None):
    """Writes a layer's dead and saturated unit fractions as ordinary scalars.

    They appear in TensorBoard's Scalars tab under ``layerview_health/dead/<layer>``
    and ``layerview_health/saturated/<layer>`` (only those that apply to the
    layer's activation; see :func:`tb_layerview.stats.health`).
    """
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.scalar import metadata as scalar_metadata

    written = False
    for what in ("dead", "saturated"):
        value = health.get(what)
        if value is None:
            continue
        tag = "%s/%s/%s" % (HEALTH_SECTION, what, metadata.tag_for(metadata.KIND_ACTIVATIONS, path).split("/", 2)[2])
        meta = scalar_metadata.create_summary_metadata(
            display_name="%s units of %s" % (what, path), description="fraction of %s units on the probe" % what)
        meta.data_class = summary_pb2.DATA_CLASS_SCALAR
        direct = writer_lib.active()
        if direct is not None:
            if step is None:
                raise ValueError("step is required when writing without TensorFlow; got None")
            written = direct.scalar(tag, value, step, meta) or written
        else:
            tf = _tf()
            written = bool(tf.summary.write(tag=tag, tensor=tf.constant(value, tf.float32), step=step,
                                            metadata=meta)) or written
    return written


def plan(record, step=None):
    """Writes the plan of one logged step (what was logged, and why not the rest)."""
    return write_blobs(metadata.KIND_PLAN, [json_bytes(record)], step=step)


def config(model_config, step=None):
    """Writes the model and layer configuration (a JSON-ready dict)."""
    return write_blobs(metadata.KIND_CONFIG, [json_bytes(model_config)], step=step)


def probe_blobs(inputs, labels=None, class_names=None, image_shape=None, max_values=256, max_text=1000,
                channels_first=False):
    """Renders probe inputs to ``[info_json, png, ...]``: the PNGs of every
    probe of the first drawn input, then of the next one, and so on.

    Args:
      inputs: ``{input_name: array (N, ...)}``; every image-shaped numeric
        input is drawn (``drawn_inputs`` in the info); every input's first
        ``max_values`` values are kept in JSON (``values``; for strings, ``text``).
      labels: optional array (N, ...) of true labels, or ``{output name:
        array}`` for a multi-output model (each probe then has ``labels``, one
        record per output, and ``label``, the first one's).
      class_names: optional list of class names, or ``{output name: names
        or None}`` (see :func:`prediction_record`).
      image_shape: forces the image shape of the first drawn input (and of
        any other input of as many values).
      max_values: values per input and probe kept in the JSON.
      max_text: characters kept of each string.
      channels_first: image inputs are (C, H, W), as the model's first layer
        reads them; they are drawn channels last.
    """
    names = list(inputs)
    n = int(np.shape(inputs[names[0]])[0])
    drawn = {}  # name -> image shape forced on it (or None)
    for nm in names:
        arr = np.asarray(inputs[nm])
        if probe_lib.is_text(arr) or not np.issubdtype(render.to_float(arr[:1]).dtype, np.floating):
            continue
        forced = image_shape if image_shape and (not drawn or int(np.prod(image_shape)) == arr[0].size) else None
        if forced or render.image_shape_of(arr.shape[1:], channels_first) is not None:
            drawn[nm] = forced
    pictures = {nm: render.channels_last(inputs[nm], channels_first) for nm in drawn}
    pngs = {nm: [] for nm in drawn}
    probes = []
    for i in range(n):
        entry = {"inputs": {}}
        for nm in names:
            arr = np.asarray(inputs[nm])[i]
            flat = np.ravel(arr)
            if probe_lib.is_text(arr):
                entry["inputs"][nm] = {"shape": list(arr.shape), "dtype": "string",
                                       "text": [_text_of(v, max_text) for v in flat[:max_values]],
                                       "truncated": bool(flat.size > max_values)}
                continue
            entry["inputs"][nm] = {"shape": list(arr.shape), "dtype": str(arr.dtype),
                                   "values": flat[:max_values].astype(np.float64).tolist(),
                                   "truncated": bool(flat.size > max_values)}
        per_output, label = _probe_labels(labels, i, class_names,
                                          next(iter(class_names), None) if isinstance(class_names, dict) else None)
        if per_output is not None:
            entry["labels"] = per_output
        if label is not None:
            entry["label"] = label
        for k, (nm, forced) in enumerate(drawn.items()):
            img, img_info = render.render_input(pictures[nm][i], forced)
            pngs[nm].append(render.encode_png(img))
            entry.setdefault("images", {})[nm] = img_info
            if k == 0:
                entry["image"] = img_info
        probes.append(entry)
    order = list(drawn)
    info = {"count": n, "inputs": names, "drawn_input": order[0] if order else None,
            "drawn_inputs": order, "class_names": class_names, "probes": probes}
    if isinstance(class_names, dict):  # the names the user gave are those of the outputs that use them
        info["class_names"] = next((v for v in class_names.values() if v), None)
    return [json_bytes(info)] + [png for nm in order for png in pngs[nm]]


def _text_of(value, max_text):
    """One string value for JSON: bytes decoded as UTF-8 (undecodable bytes
    replaced), at most ``max_text`` characters."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= max_text else text[:max_text] + "\u2026"


def _class_name(c, class_names):
    return class_names[c] if class_names and 0 <= c < len(class_names) else str(c)


#: Values a prediction or label record of several values keeps in JSON.
MAX_RECORD_VALUES = 64


def _values_record(y):
    """``{"shape", "values"}`` of an output or label of several values: its
    shape and first :data:`MAX_RECORD_VALUES` values, in C order."""
    y = np.asarray(y)
    return {"shape": list(y.shape), "values": np.ravel(y)[:MAX_RECORD_VALUES].astype(np.float64).tolist()}


def _label_of(y, class_names):
    y = np.asarray(y)
    out = {"value": float(np.ravel(y)[0]) if y.size == 1 else None}
    idx = probe_lib.true_class(y)
    if idx is not None:
        out["class"] = idx
        if class_names and 0 <= idx < len(class_names):
            out["name"] = class_names[idx]
    tags = probe_lib.label_set(y)
    if tags is not None:
        out["classes"] = tags
        if class_names:
            out["names"] = [_class_name(c, class_names) for c in tags]
    if y.size != 1 and "class" not in out and "classes" not in out:
        # A target vector (a box) or a mask: what it holds, as its prediction's record shows it.
        out.update(_values_record(y))
    return out


def probes(inputs, step=None, labels=None, class_names=None, image_shape=None, channels_first=False):
    """Writes the probe inputs (once per run); ``channels_first``: as for
    :func:`probe_blobs`."""
    if not isinstance(inputs, dict):
        inputs = {"input": inputs}
    return write_blobs(metadata.KIND_PROBES,
                       probe_blobs(inputs, labels, class_names, image_shape, channels_first=channels_first),
                       step=step)


def prediction_record(outputs, class_names=None, top_k=5, labels=None, regression=(), multilabel=None):
    """Summarises model outputs per probe as a JSON-ready list.

    Args:
      outputs: ``{output_name: array (N, ...)}``.
      class_names: names of the classes of a classifier output, or
        ``{output_name: names or None}`` for a model whose outputs have
        classes of their own.
      top_k: classes kept per probe for classifier outputs.
      labels: optional true labels (N, ...), or ``{output_name: labels}`` for
        a multi-output model: then each of those outputs' records has its
        ``label``, and the entry's ``label`` is the first one's.
      regression: names of outputs trained as regression targets, whose
        records are always ``values``.
      multilabel: ``{name: threshold}`` of outputs that tag a probe with any
        number of classes (:func:`tb_layerview.probe.multilabel_outputs`):
        their records have ``"kind": "multilabel"``, the ``threshold`` and
        ``"predicted_set"`` (every class scored at least the threshold)
        instead of ``predicted``.

    Returns:
      list (one entry per probe) of ``{"outputs": {name: record}}``: a record
      is ``{"type": "classes", "top": [[class, value], ...], "kind":
      "probabilities"|"scores", "predicted": class}`` for outputs of shape
      (K,) with K >= 2, ``{"type": "binary", "value": p, "predicted": 0|1}``
      for one-value float or bool outputs whose finite values are all in
      [0, 1] (``predicted`` by
      :func:`tb_layerview.probe.predicted_class`), ``{"type": "positions",
      "shape": [...], "classes": K, "top": [[class, share of positions],
      ...], "accuracy": a}`` for class probabilities at every position of a
      map or sequence (``accuracy`` with a label map), otherwise
      ``{"type": "values", "shape": [...], "values": [...]}`` (first 64).
    """
    multilabel = multilabel or {}
    names = list(outputs)
    n = int(np.shape(outputs[names[0]])[0])
    binary = {nm for nm in names if nm not in regression and _one_probability(outputs[nm])}
    per_position = {nm for nm in names if nm not in regression and nm not in multilabel
                    and _class_probabilities_per_position(outputs[nm])}
    recs = []
    for i in range(n):
        entry = {"outputs": {}}
        for nm in names:
            y = render.to_float(np.asarray(outputs[nm])[i]).astype(np.float64)
            scores = nm not in regression
            if scores and y.ndim == 1 and y.size >= 2:
                order = np.argsort(-np.nan_to_num(y, nan=-np.inf), kind="stable")[:top_k]
                top = [[int(c), float(y[c])] for c in order]
                if nm in multilabel:
                    rec = {"type": "classes", "kind": "multilabel", "top": top, "threshold": multilabel[nm],
                           "predicted_set": probe_lib.predicted_set(y, multilabel[nm])}
                else:
                    probs = _probabilities(y)
                    rec = {"type": "classes", "kind": "probabilities" if probs else "scores",
                           "top": top, "predicted": probe_lib.predicted_class(y)}
                own = _names_for(class_names, nm)
                if own:
                    rec["names"] = [_class_name(c, own) for c, _ in top]
                    if "predicted_set" in rec:
                        rec["predicted_names"] = [_class_name(c, own) for c in rec["predicted_set"]]
            elif nm in per_position:
                rec = _positions_record(y, _output_labels(labels, nm, names[0], i), _names_for(class_names, nm),
                                        top_k)
            elif nm in binary and np.isfinite(y.ravel()[0]):
                rec = {"type": "binary", "value": float(y.ravel()[0]), "predicted": probe_lib.predicted_class(y)}
            else:
                rec = dict(type="values", **_values_record(y))
            entry["outputs"][nm] = rec
        per_output, label = _probe_labels(labels, i, class_names, names[0])
        for nm, rec in (per_output or {}).items():
            if nm in entry["outputs"]:
                entry["outputs"][nm]["label"] = rec
        if label is not None:
            entry["label"] = label
        recs.append(entry)
    return recs


def _class_probabilities_per_position(output):
    """Whether an output ``(N, ..., K)`` holds class probabilities at every
    position (a segmentation map, a tagger's tokens): at least one position
    axis, K >= 2, and every probe's finite scores in [0, 1] summing to 1
    along the last axis (a softmax). Decided for the output, as
    :func:`_one_probability` is."""
    arr = np.asarray(output)
    if arr.ndim < 3 or arr.shape[-1] < 2 or arr.size == 0 or not render.is_float_dtype(arr.dtype):
        return False
    values = render.to_float(arr).astype(np.float64)
    rows = values.reshape(-1, values.shape[-1])
    rows = rows[np.all(np.isfinite(rows), axis=1)]
    return rows.size > 0 and _probabilities(rows)


def _probabilities(scores):
    """Whether every row (the last axis) of ``scores`` is a probability
    distribution: values in [0, 1] that sum to 1 (a softmax's)."""
    return bool(np.all((scores >= 0.0) & (scores <= 1.0)) and np.all(np.abs(scores.sum(axis=-1) - 1.0) < 1e-3))


def _output_labels(labels, name, first, i):
    """Probe ``i``'s labels for output ``name``: its own (labels given per
    output), else the one label array when ``name`` is the first output."""
    if isinstance(labels, dict):
        y = labels.get(name)
    else:
        y = labels if name == first else None
    return None if y is None else np.asarray(y)[i]


def _positions_record(y, label, class_names, top_k):
    """The record of one probe's per-position class probabilities ``(..., K)``:
    how many positions each class wins (the ``top_k`` most frequent), and,
    with a label map of the positions' classes (or one-hot rows), the share of
    positions predicted right."""
    predicted = np.argmax(np.nan_to_num(y, nan=-np.inf), axis=-1)
    counts = np.bincount(predicted.ravel(), minlength=y.shape[-1])
    order = np.argsort(-counts, kind="stable")[:top_k]
    rec = {"type": "positions", "shape": list(predicted.shape), "classes": int(y.shape[-1]),
           "top": [[int(c), int(counts[c]) / predicted.size] for c in order if counts[c]]}
    if class_names:
        rec["names"] = [_class_name(c, class_names) for c, _ in rec["top"]]
    if label is not None:
        label = np.asarray(label)
        if label.shape == y.shape:  # one-hot rows
            label = np.argmax(label, axis=-1)
        elif label.shape == predicted.shape + (1,):
            label = label[..., 0]
        if label.shape == predicted.shape and np.all(np.isfinite(render.to_float(label))):
            rec["accuracy"] = float(np.mean(predicted == label))
    return rec


def _one_probability(output):
    """Whether an output ``(N, ...)`` reads as one probability per probe: one
    value each, of a float or bool dtype, every finite one within [0, 1].

    Decided for the output, not per probe, so that all its records are of
    one type; an integer output (a class index, a count) is values."""
    arr = np.asarray(output)
    if arr.ndim == 0 or arr.size != arr.shape[0] or not (render.is_float_dtype(arr.dtype) or arr.dtype == bool):
        return False
    values = render.to_float(arr).astype(np.float64).ravel()
    finite = values[np.isfinite(values)]
    return finite.size > 0 and bool(np.all((finite >= 0.0) & (finite <= 1.0)))


def _probe_labels(labels, i, class_names, labelled_output):
    """The label records of probe ``i``: ``(per output, the probe's)``.

    Labels given per output (``{output: array}``) give ``{output: record}``,
    each named with its output's class names, and the first one as the
    probe's; one array of labels gives ``(None, its record)``, named as
    ``labelled_output``'s classes; no labels give ``(None, None)``.
    """
    if isinstance(labels, dict):
        per_output = {out: _label_of(np.asarray(y)[i], _names_for(class_names, out)) for out, y in labels.items()}
        return per_output, next(iter(per_output.values()), None)
    if labels is None:
        return None, None
    return None, _label_of(np.asarray(labels)[i], _names_for(class_names, labelled_output))


def _names_for(class_names, output):
    """The class names of ``output``: ``class_names`` itself (one list for
    every output), or its entry for that output (a dict)."""
    return class_names.get(output) if isinstance(class_names, dict) else class_names


def predictions(outputs, step=None, class_names=None, top_k=5, labels=None, regression=(), multilabel=None):
    """Writes the model's outputs for each probe at ``step`` (``regression``
    and ``multilabel``: as for :func:`prediction_record`)."""
    if not isinstance(outputs, dict):
        outputs = {"output": outputs}
    rec = {"probes": prediction_record(outputs, class_names, top_k, labels, regression, multilabel)}
    return write_blobs(metadata.KIND_PREDICTIONS, [json_bytes(rec)], step=step)


def class_image_blobs(images, image_shape=None, extra=None):
    """Renders per-class (or per-probe) input-shaped images to ``[info_json, png, ...]``.

    Image-shaped inputs become one picture each (``RGBA`` for colour, ``LA``
    for grey, one range per picture); other inputs are drawn as vectors.

    Args:
      images: array (K, ...) shaped like K model inputs.
      image_shape: forces the image shape; guessed from the input otherwise.
      extra: JSON-ready fields added to the info.
    """
    images = render.to_float(images)
    shape = image_shape or render.image_shape_of(images.shape[1:])
    pngs, per = [], []
    if shape is not None:
        for img in images:
            pic, info = render.render_input(img, shape)
            pngs.append(render.encode_png(pic))
            per.append(info)
        info = {"layout": "image", "shape": list(shape), "images": per}
    else:
        rendered, info = render.render_activations(images)
        pngs = [render.encode_png(pic) for pic in rendered]
    info.update(extra or {})
    return [json_bytes(info)] + pngs


def class_images(kind, images, step=None, classes=(), class_names=None, image_shape=None, extra=None):
    """Writes back-query or activation-maximisation images, one per class.

    Args:
      kind: ``"backquery"`` or ``"maximization"``.
      images: array (K, ...) shaped like the model's input, one per class.
      step: the step.
      classes: the class index of each image.
      class_names: names of all classes.
      image_shape: forces the image shape of a flat input.
      extra: more JSON-ready fields for the info blob (parameters, scores).
    """
    if kind not in (metadata.KIND_BACKQUERY, metadata.KIND_MAXIMIZATION):
        raise ValueError("class_images writes backquery or maximization; got %r" % (kind,))
    classes = [int(c) for c in classes]
    names = [_class_name(c, class_names) for c in classes]
    fields = {"classes": classes, "names": names}
    fields.update(extra or {})
    return write_blobs(kind, class_image_blobs(images, image_shape, fields), step=step)


def attribution_maps(maps, step=None, targets=(), method="", layer=None, weighting=None, input=None, output=None):
    """Writes attribution maps (values in [0, 1]), one per (probe, class) target.

    The maps are quantised on the fixed range [0, 1] so that intensities
    compare across probes and epochs.

    Args:
      maps: array (M, H, W) or (M, ...) in [0, 1].
      step: the step.
      targets: one ``{"probe": i, "class": c, "which": "predicted"|"true"}``
        per map.
      method, layer, weighting: as returned by
        :func:`tb_layerview.classviews.attribution`.
      input: for a model of several inputs, the name (as the probes series
        names it) of the input the maps are drawn over; None: the first drawn.
      output: for a model of several outputs, the name of the output whose
        classes the maps explain.
    """
    maps = np.clip(render.to_float(maps), 0.0, 1.0)
    pngs = []
    for m in maps:
        if m.ndim != 2:
            m = render.vector_layout(m)
        q = render.quantize(m, 0.0, 1.0)
        pngs.append(render.encode_png(np.stack([q, render.alpha_codes(m)], axis=-1)))
    info = {"method": method, "layer": layer, "weighting": weighting, "shape": list(maps.shape[1:]),
            "targets": list(targets), "range": [0.0, 1.0]}
    if input is not None:
        info["input"] = str(input)
    if output is not None:
        info["output"] = str(output)
    return write_blobs(metadata.KIND_ATTRIBUTION, [json_bytes(info)] + pngs, step=step)


def unit_images(name, images, step=None, units=(), layer_class="", layer_index=0, parent="",
                image_shape=None, extra=None):
    """Writes activation-maximisation images of chosen units of a layer.

    Args:
      name: the layer path.
      images: array (K, ...) shaped like the model's input, one per unit.
      step: the step.
      units: the unit (channel) index of each image.
      layer_class, layer_index, parent: as for :func:`activations`.
      image_shape: forces the image shape of a flat input.
      extra: more JSON-ready fields for the info blob.
    """
    fields = {"units": [int(u) for u in units]}
    fields.update(extra or {})
    return write_blobs(metadata.KIND_UNITS, class_image_blobs(images, image_shape, fields), step=step,
                       layer=name, layer_class=layer_class, output_shape=np.shape(images)[1:],
                       layer_index=layer_index, parent=parent, layout="image")
