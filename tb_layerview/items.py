"""What one logged step writes: small typed records, each knowing how to write itself.

The callback builds these on the training thread (copies of arrays taken
while the model is in that step's state) and writes them later, on the
background thread, by calling :meth:`write` on each. ``image`` items are
the thinnable part of a step; the rest is its fixed cost.
"""

import dataclasses

import numpy as np

from tb_layerview import summary


@dataclasses.dataclass(frozen=True)
class WriteContext:
    """Settings every item may need when it is written."""

    class_names: object = None
    labels: object = None  # an array, or {output name: array} for a multi-output model
    top_k: int = 5
    max_filters: int = 64
    filter_input: str = "first"
    min_spatial: int = 2
    warn: object = None  # warn(key, message)
    output_class_names: object = None  # class_names per output (summary.prediction_record); None: class_names


@dataclasses.dataclass
class Activations:
    """One output's activation images at one step."""

    entry: object
    key: str
    array: np.ndarray
    channels: int
    probes: int
    tile_pixels: int
    channels_first: bool = False  # the output's channels are on axis 1 (capture.OutputSpec)
    image = True

    @property
    def output_key(self):
        """The output whose plan entry decides this item."""
        return self.key

    def write(self, step, ctx):
        summary.activations(self.key, self.array[:self.probes], step=step,
                            layer_class=self.entry.layer_class, layer_index=self.entry.index,
                            parent=self.entry.parent, max_channels=self.channels,
                            max_tile_pixels=self.tile_pixels, min_spatial=ctx.min_spatial,
                            channels_first=self.channels_first)

    def what(self):
        return "activations of layer %r (%s, output shape %s)" % (
            self.key, self.entry.layer_class, tuple(self.array.shape))


@dataclasses.dataclass
class Filters:
    """A layer's kernel drawn as filters at one step."""

    entry: object
    kind: str
    kernel: np.ndarray    # the part that is drawn (kernels.drawn_part)
    shape: tuple          # the whole kernel's stored shape
    image_shape: object = None
    max_filters: int = None  # filters drawn; None: the context's (the plan draws fewer of a wide kernel)
    image = True

    @property
    def output_key(self):
        """The output whose plan entry decides this item: the layer's own (first) output."""
        return self.entry.path

    def write(self, step, ctx):
        image_shape = self.image_shape
        if self.kind != "dense" or (image_shape is not None
                                    and self.kernel.shape[0] != int(np.prod(image_shape))):
            image_shape = None
        summary.filters(self.entry.path, self.kernel, step=step, kind=self.kind,
                        layer_class=self.entry.layer_class, layer_index=self.entry.index,
                        parent=self.entry.parent, max_filters=self.max_filters or ctx.max_filters,
                        input_channel=ctx.filter_input, image_shape=image_shape, kernel_shape=self.shape)

    def what(self):
        return "filters of layer %r (%s, kernel shape %s)" % (
            self.entry.path, self.entry.layer_class, tuple(self.shape))


@dataclasses.dataclass
class ChannelStats:
    """Per-channel statistics of every output (never thinned); ``encoded``:
    the blobs of :func:`tb_layerview.stats.encode`, where they were made already."""

    records: list
    encoded: list = None
    image = False

    def write(self, step, ctx):
        from tb_layerview import stats

        # Here, not where images are drawn: every output has statistics at every logged step.
        rows = [stats.STATS.index("nan"), stats.STATS.index("inf")]
        for path, _, values in self.records:
            bad = int(np.asarray(values)[rows].sum())
            if bad and ctx.warn is not None:
                ctx.warn("nan:" + path, "layer %r produced %d NaN/Inf values on the probe at step %d; they are"
                         " counted in its statistics, and drawn in a distinct colour where it gets images"
                         % (path, bad, step))
        summary.channel_stats(self.records, step=step, encoded=self.encoded)

    def what(self):
        return "the per-channel statistics"


@dataclasses.dataclass
class HealthScalars:
    """Dead and saturated unit fractions of every layer, for TensorBoard's Scalars tab."""

    records: list  # (output path, activation, stats array)
    streaks: object = None  # a stats.UnitStreaks the LayerView keeps, fed here off the training thread
    image = False

    def write(self, step, ctx):
        from tb_layerview import stats

        flags = [stats.unit_flags(activation, values) for _, activation, values in self.records]
        if self.streaks is not None:  # before the scalars, whose writing may fail
            for (path, activation, values), f in zip(self.records, flags):
                self.streaks.add(step, path, activation, values, f)
        for (path, activation, values), f in zip(self.records, flags):
            summary.health_scalars(path, stats.health(activation, values, f), step=step)

    def what(self):
        return "the health scalars"


@dataclasses.dataclass
class Predictions:
    """The model's outputs for the probes; ``regression``: the names of those
    trained as regression targets (:func:`tb_layerview.probe.regression_outputs`);
    ``multilabel``: ``{name: threshold}`` of those that tag a probe with
    several classes (:func:`tb_layerview.probe.multilabel_outputs`)."""

    outputs: dict
    regression: frozenset = frozenset()
    multilabel: dict = dataclasses.field(default_factory=dict)
    image = False

    def write(self, step, ctx):
        names = ctx.class_names if ctx.output_class_names is None else ctx.output_class_names
        summary.predictions(self.outputs, step=step, class_names=names, top_k=ctx.top_k,
                            labels=ctx.labels, regression=self.regression, multilabel=self.multilabel)

    def what(self):
        return "predictions"


@dataclasses.dataclass
class ClassImages:
    """Back-query or activation-maximisation images, one per class."""

    kind: str
    images: np.ndarray
    classes: list
    image_shape: object = None
    extra: dict = None
    image = False

    def write(self, step, ctx):
        summary.class_images(self.kind, self.images, step=step, classes=self.classes,
                             class_names=ctx.class_names, image_shape=self.image_shape, extra=self.extra)

    def what(self):
        return self.kind


@dataclasses.dataclass
class Attribution:
    """Attribution maps of the probes for their predicted (and true) classes."""

    maps: np.ndarray
    targets: list
    info: dict
    image = False

    def write(self, step, ctx):
        summary.attribution_maps(self.maps, step=step, targets=self.targets, **self.info)

    def what(self):
        return "attribution maps"


@dataclasses.dataclass
class Units:
    """Activation maximisation of chosen units of a layer."""

    entry: object
    images: np.ndarray
    units: list
    image_shape: object = None
    extra: dict = None
    image = False

    def write(self, step, ctx):
        summary.unit_images(self.entry.path, self.images, step=step, units=self.units,
                            layer_class=self.entry.layer_class, layer_index=self.entry.index,
                            parent=self.entry.parent, image_shape=self.image_shape, extra=self.extra)

    def what(self):
        return "units of layer %r" % self.entry.path


@dataclasses.dataclass
class Plan:
    """The step's plan record (written last, with what the step cost)."""

    record: dict
    image = False

    def write(self, step, ctx):
        summary.plan(self.record, step=step)

    def what(self):
        return "the plan record"
