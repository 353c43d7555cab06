"""The contract between tb_layerview's writer and its reader.

Both sides import this module; it needs neither TensorFlow nor Keras. The blob
layout of every kind is described in ``docs/format.md``.
"""

import urllib.parse

from tensorboard.compat.proto import summary_pb2

from tb_layerview.proto import plugin_data_pb2

#: The TensorBoard plugin name under which every series is written.
PLUGIN_NAME = "tb_layerview"

#: Version of the format (plugin metadata, tag grammar and blob layout)
#: written by this code. Version 2 percent-encodes layer paths in tags;
#: readers identify series by their metadata, so version 1 logs read alike.
#: Version 3 stores the statistics' bytes as planes (``"shuffle"`` in their
#: header), which a version 2 reader would misread: it refuses them instead.
#: Version 4 draws every image-shaped input of a multi-input probe (its
#: ``probes`` series holds the PNGs input after input, ``drawn_inputs`` in
#: its info) and names in the configuration the inputs each output depends
#: on; a version 3 reader would count every input's pictures as probes.
#: Version 5 stores a large statistics record in blocks, some of them not
#: compressed (``"compression": "blocks"``), which a version 4 reader cannot
#: unpack.
FORMAT_VERSION = 5

#: Characters a layer path keeps in a tag; any other is percent-encoded
#: (TensorBoard's data server cannot parse blob keys of tags with '"' or '\\').
_TAG_SAFE = "/:._-"

#: Per-layer kinds: one series per layer and kind. ``units`` holds the
#: activation-maximisation images of chosen units of the layer.
KIND_ACTIVATIONS = "activations"
KIND_FILTERS = "filters"
KIND_UNITS = "units"
LAYER_KINDS = (KIND_ACTIVATIONS, KIND_FILTERS, KIND_UNITS)

#: Run-level kinds: one series per run.
KIND_CONFIG = "config"
KIND_PROBES = "probes"
KIND_PREDICTIONS = "predictions"

#: Run-level class views: images per class (or per probe) at each step.
KIND_BACKQUERY = "backquery"
KIND_MAXIMIZATION = "maximization"
KIND_ATTRIBUTION = "attribution"
CLASS_KINDS = (KIND_BACKQUERY, KIND_MAXIMIZATION, KIND_ATTRIBUTION)

#: Run-level records written at every logged step: the per-channel statistics
#: of every layer (never thinned) and the plan that says what was logged.
KIND_STATS = "stats"
KIND_PLAN = "plan"

RUN_KINDS = (KIND_CONFIG, KIND_PROBES, KIND_PREDICTIONS) + CLASS_KINDS + (KIND_STATS, KIND_PLAN)

#: Kinds whose steps hold ``[info_json, png, png, ...]`` (served by /image and /info).
IMAGE_KINDS = LAYER_KINDS + CLASS_KINDS

KINDS = LAYER_KINDS + RUN_KINDS

#: Tag prefix of each kind. Tags only need to be unique; readers identify a
#: series by its metadata, never by parsing the tag.
_TAG_PREFIX = {
    KIND_ACTIVATIONS: "layerview/activations/",
    KIND_FILTERS: "layerview/filters/",
    KIND_UNITS: "layerview/units/",
    KIND_CONFIG: "layerview/run/config",
    KIND_PROBES: "layerview/run/probes",
    KIND_PREDICTIONS: "layerview/run/predictions",
    KIND_BACKQUERY: "layerview/class/backquery",
    KIND_MAXIMIZATION: "layerview/class/maximization",
    KIND_ATTRIBUTION: "layerview/class/attribution",
    KIND_STATS: "layerview/run/stats",
    KIND_PLAN: "layerview/run/plan",
}


#: The blob layout of every image kind: ``[info_json, png_0, png_1, ...]``.
INFO_POSITION = 0


def image_position(index):
    """Position of image ``index`` (a probe, class, unit or target) in a step's blobs."""
    return 1 + int(index)


def probe_image_position(probe, input_index=0, count=1):
    """Position of probe ``probe``'s picture of its ``input_index``-th drawn
    input in the ``probes`` series' blobs, for ``count`` probes."""
    return 1 + int(input_index) * int(count) + int(probe)


def image_count(length):
    """Images in a step of ``length`` blobs of an image kind."""
    return max(int(length) - 1, 0)


#: ``downsample`` that reads every step of a series from a data provider.
ALL_STEPS = 10**9


#: What reading a stored record of another form than this module's writers
#: produce raises (a field of another type, a missing key, a short list): the
#: readers catch these, and only these, to report such a record.
RECORD_ERRORS = (AttributeError, IndexError, KeyError, TypeError, ValueError)


class Series:
    """One (run, tag) series of tb_layerview data, identified by its metadata."""

    __slots__ = ("run", "tag", "meta", "max_step", "max_wall_time", "max_length")

    def __init__(self, run, tag, meta, ts):
        self.run, self.tag, self.meta = run, tag, meta
        self.max_step, self.max_wall_time, self.max_length = ts.max_step, ts.max_wall_time, ts.max_length


def index_series(listing):
    """Groups a data provider's ``list_blob_sequences`` answer by run.

    The one series listing of the reader side (plugin, export, tests): series
    whose metadata this version cannot read, or that hold no items, are left
    out, not fatal; so is a run left without series.

    Returns:
      ``{run: {"layers": {path: {kind: Series}}, "run": {kind: Series}}}``.
    """
    out = {}
    for run, tags in listing.items():
        entry = {"layers": {}, "run": {}}
        for tag, ts in tags.items():
            if not ts.max_length:
                # Nothing to read; TensorBoard's Rust data server does not list such a series at all.
                continue
            try:
                meta = parse_plugin_data(ts.plugin_content)
            except FormatError:
                continue
            series = Series(run, tag, meta, ts)
            if meta.kind in LAYER_KINDS:
                entry["layers"].setdefault(meta.layer, {})[meta.kind] = series
            else:
                entry["run"][meta.kind] = series
        if entry["layers"] or entry["run"]:
            out[run] = entry
    return out


def layer_description(kinds):
    """``(class, parent, index)`` of a layer from its series ``{kind:
    Series}``: each field from the first series, in the order of
    :data:`LAYER_KINDS`, that has one. Loaders list a run's tags in different
    orders, and a log written with the summary ops may give a field in only
    one of its series."""
    ordered = [kinds[k] for k in LAYER_KINDS if k in kinds]
    return (next((s.meta.layer_class for s in ordered if s.meta.layer_class), ""),
            next((s.meta.parent for s in ordered if s.meta.parent), ""),
            next((s.meta.layer_index for s in ordered if s.meta.layer_index), 0))


def display_name(path, parent):
    """The name a layer is shown under: its path without the enclosing model's
    prefix (``encoder/conv1`` in ``encoder`` is ``conv1``)."""
    if parent and path.startswith(parent + "/"):
        return path[len(parent) + 1:]
    return path


class FormatError(ValueError):
    """Plugin metadata that this version of tb_layerview cannot read."""


def tag_for(kind, layer=""):
    """The tag under which ``kind`` of ``layer`` is written."""
    if kind not in _TAG_PREFIX:
        raise ValueError("unknown series kind %r; expected one of %s" % (kind, ", ".join(KINDS)))
    if kind in LAYER_KINDS:
        if not layer:
            raise ValueError("series kind %r needs a layer name" % kind)
        return _TAG_PREFIX[kind] + urllib.parse.quote(layer, safe=_TAG_SAFE)
    return _TAG_PREFIX[kind]


def create_plugin_data(kind, layer="", layer_class="", output_shape=(), layer_index=0,
                       parent="", layout=""):
    """Serialised ``LayerViewPluginData`` for one series.

    Args:
      kind: one of :data:`KINDS`.
      layer: the layer path for per-layer kinds.
      layer_class: Keras class name.
      output_shape: output shape without the batch axis; None becomes -1.
      layer_index: position of the layer in model order.
      parent: path of the enclosing nested model.
      layout: how the output is drawn (see ``render.classify_shape``).

    Returns:
      bytes.
    """
    if kind not in KINDS:
        raise ValueError("unknown series kind %r; expected one of %s" % (kind, ", ".join(KINDS)))
    msg = plugin_data_pb2.LayerViewPluginData(
        version=FORMAT_VERSION,
        kind=kind,
        layer=layer,
        layer_class=layer_class,
        output_shape=[-1 if d is None else int(d) for d in output_shape],
        layer_index=int(layer_index),
        parent=parent,
        layout=layout,
    )
    return msg.SerializeToString()


def create_summary_metadata(kind, description="", **fields):
    """A ``SummaryMetadata`` proto for a tb_layerview series.

    The data class is set explicitly to BLOB_SEQUENCE: TensorBoard's loaders
    infer it for built-in plugins only, and a series without it is invisible.
    """
    return summary_pb2.SummaryMetadata(
        summary_description=description,
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=create_plugin_data(kind, **fields)
        ),
        data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE,
    )


def parse_plugin_data(content):
    """Parses ``plugin_content`` bytes into a ``LayerViewPluginData``.

    Raises:
      FormatError: the bytes do not parse, or were written by a newer format.
    """
    msg = plugin_data_pb2.LayerViewPluginData()
    try:
        msg.ParseFromString(content)
    except Exception as e:  # DecodeError's module path differs across protobuf versions
        raise FormatError("malformed tb_layerview plugin metadata: %s" % e) from None
    if msg.version > FORMAT_VERSION or msg.version < 1:
        raise FormatError(
            "tb_layerview format version %d is not supported by this reader (supports 1..%d);"
            " upgrade tb_layerview" % (msg.version, FORMAT_VERSION)
        )
    if msg.kind not in KINDS:
        raise FormatError("unknown tb_layerview series kind %r" % msg.kind)
    return msg
