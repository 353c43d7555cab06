"""What LayerView logs at each epoch, and why not the rest: the budget and the plan.

A :class:`Budget` bounds LayerView's cost: the share of training time it may
take (the forward pass of the probe and the hooks on the training thread,
plus the CPU time of the background writer) and the bytes it writes per
logged epoch. A :class:`Planner` turns the budget, the layers' shapes and
what it measured at the previous epochs into an :class:`EpochPlan`: which
layers get images, with how many channels, probes and pixels, and which class
views run. Everything here is plain Python, so the decisions can be tested
with exact numbers.

How the plan decides (the README has the user's version):

1. Statistics of every layer, the predictions and the plan itself are always
   written: they are the fixed cost.
2. Plans aim at :data:`TIME_TARGET` of the time bound, which keeps the fit
   within the bound when an epoch runs faster than the one the plan was
   measured on. :data:`IMAGE_SHARE` of that planned time, less the fixed
   cost, at the measured cost per image byte, and what the fixed bytes leave
   of the byte budget, are the room for images. Before an epoch has been
   timed (the step before training), only the cheapest rung is used; when
   those images would take more than :data:`FIRST_LOOK_SECONDS` of the
   writer's time, they wait until the first epoch has been timed and are
   written as far as the whole fit's time target, less the statistics passes
   of all its logged epochs, has room (:meth:`Planner.first_look`). The
   planner takes the first rung of :data:`LADDER` (channels, probes and
   pixels per tile) whose images of all layers fit the room. When even the
   last rung does not fit, layers take turns: layer ``j`` gets images when
   ``logged_index % cadence == j % cadence``, with the smallest cadence that
   fits.
3. Class views draw on a credit that grows by their share
   (:data:`CLASS_VIEW_SHARE`) of the planned time each epoch; attribution
   runs when the credit covers it, activation maximisation when it is due
   and the credit covers its (estimated, then measured) cost. Until the
   first epoch has been timed, no class view that needs gradients runs.
4. Explicit user arguments (``max_channels``, ``max_tile_pixels``, ``layers``,
   ``every_n_epochs``...) are never overridden; ``budget=None`` turns all of
   this off.
"""

import dataclasses
import math
import re

from tb_layerview import kernels
from tb_layerview import render

#: Rungs tried in order: (channels, probes, pixels per tile); None keeps the
#: user's value. User arguments cap every rung.
LADDER = (
    (None, None, None),
    (32, 4, 1024),
    (16, 2, 576),
    (8, 1, 256),
)

#: Share of the planned time for the probe pass, the statistics and the
#: images. It does not grow when there are no class views: what those would
#: have had is left unspent, so that ``class_views=False`` keeps LayerView
#: near 1.4% of training at the default budget (0.4 x 0.7 x 5%).
IMAGE_SHARE = 0.4

#: Share of the planned time for class views, split equally between the
#: kinds the model has.
CLASS_VIEW_SHARE = 1.0 - IMAGE_SHARE

#: Share of the time bound the planner plans to spend. What a step costs is
#: known only once it ran, and the epochs it is measured against vary (by a
#: third from one epoch to the next on a busy machine); the writer's time on
#: the last step is spent after training. Planned at the bound itself, the
#: whole fit would overshoot about as often as not.
TIME_TARGET = 0.7

#: Bytes per pixel of an 8-bit LA activation PNG before calibration.
BYTES_PER_PIXEL = 1.0

#: Writer CPU seconds per image byte before calibration (measured at the
#: cheapest rung: MobileNetV2 0.30 us, ResNet50 0.25 us, VGG16 with its
#: filters 1.0 us). Without it, the first images after the step before
#: training would be bounded by bytes alone.
SECONDS_PER_IMAGE_BYTE = 3e-7

#: Estimated writer CPU seconds up to which the step before training writes
#: its images at once. Dearer ones (a model of hundreds of layers) wait
#: until the first epoch has been timed, and are written only as far as the
#: fit's time budget leaves room for them (:meth:`Planner.first_look`).
FIRST_LOOK_SECONDS = 0.05

#: JSON bytes per tile and probe (seven statistics) in an image info blob.
JSON_BYTES_PER_TILE = 70

#: Bytes per output of the fixed records besides the statistics (its health
#: scalars, its name in the plan; ResNet50's 176 outputs: 4.7 KB of plan,
#: 2.6-6.8 KB of health scalars, 2.3 KB of predictions), and bytes per step.
FIXED_BYTES_PER_OUTPUT = 64
FIXED_BYTES_PER_STEP = 2000


def fixed_bytes_besides_stats(outputs):
    """Bytes a logged step writes besides the statistics and the images
    (health scalars, predictions, the plan), before any step was measured."""
    return FIXED_BYTES_PER_STEP + FIXED_BYTES_PER_OUTPUT * outputs

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(i?)[bB]?\s*$")


def parse_bytes(value, what="bytes_per_epoch"):
    """Bytes from an int or a string such as ``"2MB"``, ``"500 KiB"``."""
    if isinstance(value, bool):
        raise ValueError("%s must be a number of bytes or a size such as '2MB'; got %r" % (what, value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError("%s must be positive; got %r" % (what, value))
        return int(value)
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            num, unit, binary = float(m.group(1)), m.group(2).upper(), m.group(3)
            base = 1024 if binary else 1000
            out = int(num * base ** " KMG".index(unit or " "))
            if out > 0:
                return out
    raise ValueError("%s must be a number of bytes or a size such as '2MB'; got %r" % (what, value))


@dataclasses.dataclass(frozen=True)
class Budget:
    """LayerView's cost budget.

    Attributes:
      time_share: the share of training time LayerView may take (0.05 = 5%),
        or None for no time bound.
      bytes_per_epoch: bytes written per logged epoch (an int, or a string
        such as ``"2MB"``), or None for no size bound.

    Example::

        LayerView("logs/run", probe, budget=Budget(time_share=0.02, bytes_per_epoch="1MB"))
    """

    time_share: object = 0.05
    bytes_per_epoch: object = 2_000_000

    def __post_init__(self):
        if self.time_share is not None:
            if isinstance(self.time_share, bool) or not isinstance(self.time_share, (int, float)) \
                    or not 0 < self.time_share <= 1:
                raise ValueError("budget time_share must be a fraction in (0, 1], e.g. 0.05; got %r"
                                 % (self.time_share,))
            object.__setattr__(self, "time_share", float(self.time_share))
        if self.bytes_per_epoch is not None:
            object.__setattr__(self, "bytes_per_epoch", parse_bytes(self.bytes_per_epoch,
                                                                    "budget bytes_per_epoch"))

    @classmethod
    def parse(cls, value):
        """A Budget from what ``LayerView(budget=...)`` accepts: a Budget, a
        dict of its fields, True / "auto" (the defaults), or None / False (off)."""
        if value is None or value is False:
            return None
        if value is True or value == "auto":
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {"time_share", "bytes_per_epoch"}
            if unknown:
                raise ValueError("budget has unknown keys %s; expected time_share, bytes_per_epoch"
                                 % sorted(unknown))
            return cls(**value)
        raise TypeError("budget must be a tb_layerview.Budget, a dict, True or None; got %r" % (value,))

    def record(self):
        return {"time_share": self.time_share, "bytes_per_epoch": self.bytes_per_epoch}


@dataclasses.dataclass(frozen=True)
class Settings:
    """How images are drawn at one epoch."""

    channels: int
    probes: int
    tile_pixels: int


@dataclasses.dataclass(frozen=True)
class Candidate:
    """An output the plan may draw.

    Attributes:
      key: the output path.
      shape: output shape of one sample (channels last).
      layout: ``render.classify_shape`` of it.
      kernel_shape: shape of the layer's kernel in render layout, or None.
      kernel_rgb: the kernel's filters are drawn in RGB.
      kernel_unchanged: the kernel is frozen and was already written.
      kernel_kind: the render kind of the kernel (``kernels.rendering_layout``);
        None: told by the kernel's rank (``kernels.kind_from_rank``).
    """

    key: str
    shape: tuple
    layout: str
    kernel_shape: tuple = None
    kernel_rgb: bool = False
    kernel_unchanged: bool = False
    kernel_kind: str = None


def tiles_and_pixels(shape, layout, channels, tile_pixels):
    """(tiles, pixels per tile) drawn for one probe of an output."""
    shape = tuple(max(int(d), 1) for d in shape)
    if layout in ("grid", "volume"):
        h, w, c = (shape[0], shape[1], shape[-1]) if layout == "grid" else (shape[1], shape[2], shape[-1])
        return min(c, channels), _downsampled(h, w, tile_pixels)
    if layout == "heat":
        return 1, _downsampled(shape[0], shape[1], tile_pixels, keep_short=True)
    d = math.prod(shape)
    cols = d if d <= 32 else math.ceil(math.sqrt(d))
    rows = math.ceil(d / cols)
    return 1, _downsampled(rows, cols, tile_pixels)


def _downsampled(h, w, max_pixels, keep_short=False):
    fh, fw = render.downsample_factors(h, w, max_pixels, keep_short)
    return math.ceil(h / fh) * math.ceil(w / fw)


def image_bytes(c, settings, max_filters, bytes_per_pixel=BYTES_PER_PIXEL, keep_filters=False):
    """Estimated bytes of one output's activation images (and filters) at
    ``settings``; ``keep_filters``: as for :func:`filters_drawn`."""
    tiles, pixels = tiles_and_pixels(c.shape, c.layout, settings.channels, settings.tile_pixels)
    total = settings.probes * (tiles * pixels * bytes_per_pixel + tiles * JSON_BYTES_PER_TILE) + 300
    if c.kernel_shape is not None and not c.kernel_unchanged:
        kind = c.kernel_kind or kernels.kind_from_rank(len(c.kernel_shape))
        drawn = filters_drawn(kind, c.kernel_shape, settings, max_filters, keep_filters)
        total += filter_bytes(kind, c.kernel_shape, drawn, c.kernel_rgb, bytes_per_pixel)
    return int(total)


def _filter_pixels(kind, kernel_shape):
    """Pixels of one filter's tile (a dense unit's: its inputs) of a kernel in render layout."""
    shape = tuple(int(d) for d in kernel_shape)
    if len(shape) == 2:
        return shape[0]
    return math.prod(shape[:-2][-2:])


def filters_drawn(kind, kernel_shape, settings, max_filters, keep=False):
    """How many filters of a kernel (render ``kind`` and layout) are drawn at
    ``settings``: ``max_filters``, or fewer where the filters are wide.

    A rung of the ladder draws an output's filters in at most the pixels of
    one probe's activation tiles (``channels x tile_pixels``), and never
    fewer filters than ``channels``: the 3x3 filters of a convolution all
    fit any rung, while a dense layer of 1024 inputs, whose 64 units make a
    64 KB image, gets 8 at the cheapest rung. ``keep`` (the user gave
    ``max_filters``): always ``max_filters``.

    Example::

        filters_drawn("dense", (1024, 128), Settings(8, 1, 256), 64)  # 8
    """
    count = min(kernels.filter_count(kind, tuple(kernel_shape)), max_filters)
    if keep:
        return count
    cap = max(settings.channels, settings.channels * settings.tile_pixels // max(_filter_pixels(kind, kernel_shape), 1))
    return min(count, cap)


def filter_bytes(kind, kernel_shape, max_filters, rgb=False, bytes_per_pixel=BYTES_PER_PIXEL):
    """Estimated bytes of the filter image of a kernel of render ``kind``."""
    shape = tuple(int(d) for d in kernel_shape)
    # A depthwise kernel (kh, kw, in, mult) holds in x mult filters, a
    # transposed one (kh, kw, out, in) out: the count is the kernels module's.
    tiles = min(kernels.filter_count(kind, shape), max_filters)
    pixels = tiles * _filter_pixels(kind, shape)
    if len(shape) == 2:  # dense: units reshaped to the image, or one matrix
        pixels = min(pixels, 4096 * max_filters)
    return int(pixels * bytes_per_pixel * (2 if rgb else 1) + tiles * JSON_BYTES_PER_TILE + 300)


@dataclasses.dataclass(frozen=True)
class LayerPlan:
    """What one output gets at one epoch; ``reason`` says why not images."""

    key: str
    images: bool
    filters: bool
    reason: str = None
    #: Estimated bytes of its images (and filters) when it gets them.
    estimate_bytes: int = 0
    #: Filters drawn where the rung draws fewer than ``max_filters`` of a
    #: wide kernel (:func:`filters_drawn`); None: ``max_filters``.
    filters_drawn: int = None


@dataclasses.dataclass
class EpochPlan:
    """The decisions for one logged epoch, written to the run's ``plan`` series."""

    step: int
    settings: Settings
    cadence: int
    layers: dict
    class_views: dict
    limited_by: str = None
    room_bytes: float = None
    estimate_bytes: int = 0
    note: str = ""
    #: The time account the plan was made with (see Planner.time_allowance).
    account: dict = dataclasses.field(default_factory=dict)

    def record(self):
        """The JSON-ready form (see docs/format.md, ``plan``)."""
        imaged = [k for k, p in self.layers.items() if p.images]
        reasons = {}
        for k, p in self.layers.items():
            if not p.images and p.reason:
                reasons.setdefault(p.reason, []).append(k)
        return {
            "step": self.step,
            "settings": dataclasses.asdict(self.settings),
            "cadence": self.cadence,
            "limited_by": self.limited_by,
            "room_bytes": None if self.room_bytes is None else int(max(self.room_bytes, 0)),
            "estimate_bytes": int(self.estimate_bytes),
            "images": imaged,
            "filters": [k for k, p in self.layers.items() if p.filters],
            "filters_drawn": {k: p.filters_drawn for k, p in self.layers.items()
                              if p.filters and p.filters_drawn is not None},
            "no_images": reasons,
            "class_views": self.class_views,
            "note": self.note,
        }


#: Seconds by which a probe pass may exceed the time bound of its logged
#: epoch before LayerView warns that the pass alone is over the budget
#: (:meth:`Planner.pass_over_budget`): on a first try with epochs of a
#: fraction of a second, a pass of a few milliseconds is over 5% of them
#: and still costs nothing a user would notice.
PASS_OVER_BUDGET_SECONDS = 0.05


@dataclasses.dataclass(frozen=True)
class PassOverBudget:
    """A probe pass that alone costs more than the time budget allows."""

    pass_seconds: float      # one probe pass, statistics included
    logged_seconds: float    # training per logged epoch (epoch time x every_n_epochs)
    share: float             # pass_seconds / logged_seconds
    every_n_epochs: int      # the smallest every_n_epochs that keeps the pass within the planned share


@dataclasses.dataclass
class Measurements:
    """What the callback measured so far (None: not yet known)."""

    epoch_seconds: float = None       # training time of one epoch, LayerView excluded
    fixed_seconds: float = None       # probe pass, statistics, predictions per logged epoch
    seconds_per_image_byte: float = None
    bytes_ratio: float = 1.0          # written image bytes / estimated image bytes
    fixed_bytes: float = None         # statistics, predictions and plan bytes per logged epoch
    forward_seconds: float = None     # one probe pass
    # kind -> the last run's cost, a run that compiled left out (ClassViewLog.timed)
    class_view_seconds: dict = dataclasses.field(default_factory=dict)
    trained_seconds: float = 0.0      # all epochs timed so far, LayerView excluded
    spent_seconds: float = 0.0        # all LayerView cost so far (hooks + writer CPU), step 0 included


def _count(n, noun):
    """``"1 probe"``, ``"4 probes"``."""
    return "%d %s%s" % (n, noun, "" if n == 1 else "s")


class Planner:
    """Decides each logged epoch's :class:`EpochPlan` within a :class:`Budget`.

    Args:
      budget: a :class:`Budget`, or None for no budget (the user's settings
        at every logged epoch).
      channels, tile_pixels: the user's ``max_channels`` / ``max_tile_pixels``.
      probes: the number of probe samples.
      max_filters: the user's ``max_filters``.
      pinned: names of the arguments the user gave explicitly
        (``"max_channels"``, ``"max_tile_pixels"``): the budget keeps them.
      every_n_epochs: epochs per logged epoch.
    """

    def __init__(self, budget, channels, tile_pixels, probes, max_filters, pinned=(), every_n_epochs=1):
        self.budget = budget
        self.user = Settings(channels, probes, tile_pixels)
        self.max_filters = max_filters
        self.pinned = set(pinned)
        self.every_n_epochs = every_n_epochs
        self.measured = Measurements()
        self.credit = {}  # class-view kind -> seconds of budget saved up
        self.overdue_maximization = False

    # ------------------------------------------------------------- images

    def rungs(self):
        """The settings of each rung of :data:`LADDER`, user arguments kept."""
        out = []
        for ch, pr, px in LADDER:
            s = Settings(
                self.user.channels if ch is None or "max_channels" in self.pinned else min(ch, self.user.channels),
                self.user.probes if pr is None else min(pr, self.user.probes),
                self.user.tile_pixels if px is None or "max_tile_pixels" in self.pinned
                else min(px, self.user.tile_pixels))
            if s not in out:
                out.append(s)
        return out

    def time_allowance(self):
        """Seconds LayerView may spend at this logged epoch, or None (no time
        bound, or no epoch timed yet).

        The budget is kept over the whole training, not epoch by epoch: the
        allowance is the target share (:data:`TIME_TARGET` of the bound) of
        the epochs since the last logged one, less whatever LayerView has
        spent beyond that share of all the epochs so far (the step before
        training, a compilation, a maximisation).
        Unspent time is not saved up beyond one step's allowance, so that it
        cannot come back as a burst.
        """
        target, m = self.target_share(), self.measured
        if target is None or m.epoch_seconds is None:
            return None
        per_step = target * m.epoch_seconds * self.every_n_epochs
        balance = self._balance()
        return per_step if balance is None else min(per_step, balance)

    def _balance(self):
        """The time share of all epochs so far less what LayerView spent, or
        None without a time bound or without epochs (a custom loop)."""
        target, m = self.target_share(), self.measured
        if target is None or not m.trained_seconds:
            return None
        return target * m.trained_seconds - m.spent_seconds

    def target_share(self):
        """The share of training time the plans aim at: :data:`TIME_TARGET` of
        the bound (None without a time bound)."""
        if self.budget is None or self.budget.time_share is None:
            return None
        return self.budget.time_share * TIME_TARGET

    def pass_over_budget(self, pass_seconds):
        """Whether one probe pass alone, which the budget never thins, costs
        more than the time bound allows per logged epoch, by more than
        :data:`PASS_OVER_BUDGET_SECONDS`.

        Returns None when it does not (or there is no time bound or no epoch
        timed yet), else a :class:`PassOverBudget` with the share of training
        the pass takes and the smallest ``every_n_epochs`` that brings it
        within the planned share (:meth:`target_share`).

        Example::

            pl.measured.epoch_seconds = 2.0   # with Budget(time_share=0.05)
            pl.pass_over_budget(0.3).every_n_epochs  # 5: 0.3 s within 3.5% of 5 epochs of 2 s
        """
        target, epoch = self.target_share(), self.measured.epoch_seconds
        if target is None or not epoch or pass_seconds is None:
            return None
        per_logged = epoch * self.every_n_epochs
        bound = self.budget.time_share * per_logged
        if pass_seconds - bound <= PASS_OVER_BUDGET_SECONDS:
            return None
        # Over the bound, the pass is over the planned share too, so this
        # is always more epochs than every_n_epochs is now.
        return PassOverBudget(pass_seconds, per_logged, pass_seconds / per_logged,
                              math.ceil(pass_seconds / (target * epoch)))

    def in_debt(self):
        """Whether LayerView has spent more than its target share of the epochs so far."""
        balance = self._balance()
        return balance is not None and balance < 0

    def image_room(self, fixed_bytes):
        """(room in image bytes per logged epoch, what limits it), or (None, None) without bounds."""
        if self.budget is None:
            return None, None
        rooms = []
        if self.budget.bytes_per_epoch is not None:
            rooms.append((self.budget.bytes_per_epoch - fixed_bytes, "bytes"))
        m = self.measured
        allowed = self.time_allowance()
        if allowed is not None:
            share = allowed * IMAGE_SHARE if allowed > 0 else allowed
            share -= m.fixed_seconds or 0.0
            rooms.append((share / (m.seconds_per_image_byte or SECONDS_PER_IMAGE_BYTE), "time"))
        if not rooms:
            return None, None
        return min(rooms)

    def plan_images(self, step, logged_index, candidates, fixed_bytes):
        """Chooses settings and which outputs get images; returns an :class:`EpochPlan`
        (class views still empty)."""
        plan = self._plan_images(step, logged_index, candidates, fixed_bytes)
        allowance = self.time_allowance()
        target = self.target_share()
        plan.account = {"target_share": None if target is None else round(target, 6),
                        "trained_seconds": round(self.measured.trained_seconds, 4),
                        "spent_seconds": round(self.measured.spent_seconds, 4),
                        "allowance_seconds": None if allowance is None else round(allowance, 4)}
        return plan

    def _plan_images(self, step, logged_index, candidates, fixed_bytes):
        ratio = self.measured.bytes_ratio or 1.0
        bpp = BYTES_PER_PIXEL * ratio
        room, limit = self.image_room(fixed_bytes)
        rungs = self.rungs()
        untimed = self.target_share() is not None and self.measured.epoch_seconds is None
        if untimed:
            # No epoch timed yet (the step before training): the images' cost
            # could be any share of an epoch, so the cheapest settings.
            rungs = rungs[-1:]
        chosen, cadence, total = rungs[0], 1, 0
        keep = self.keep_filters
        if room is None:
            sizes = [image_bytes(c, chosen, self.max_filters, bpp, keep) for c in candidates]
            layers = {c.key: self._imaged(c, chosen, size) for c, size in zip(candidates, sizes)}
            return EpochPlan(step, chosen, 1, layers, {}, estimate_bytes=sum(sizes))
        sizes = []
        for s in rungs:
            sizes = [image_bytes(c, s, self.max_filters, bpp, keep) for c in candidates]
            total = sum(sizes)
            chosen = s
            if total <= room:
                break
        else:
            # 0: no room at all for images at this step.
            cadence = 0 if room <= 0 else self.cadence_for(sizes, room)
        layers = {}
        why = {"bytes": "the %s bytes per epoch budget" % _size(self.budget.bytes_per_epoch),
               "time": "the %g%% time budget" % (100 * (self.budget.time_share or 0))}.get(limit, "the budget")
        estimate = 0
        for j, c in enumerate(candidates):
            if cadence == 0:
                layers[c.key] = LayerPlan(c.key, False, False, "no images: %s fill %s" % (
                    "statistics and what LayerView spent earlier" if limit == "time" and self.in_debt()
                    else "statistics alone", why))
                continue
            mine = (j % cadence) == (logged_index % cadence)
            if mine:
                estimate += sizes[j]
                layers[c.key] = self._imaged(c, chosen, sizes[j])
            else:
                layers[c.key] = LayerPlan(c.key, False, False,
                                          "images every %d logged epochs for this layer, to stay within %s"
                                          % (cadence, why))
        if cadence == 1:
            estimate = total
        note = ""
        settings = "%s, %s, %d pixels per tile" % (_count(chosen.channels, "channel"), _count(chosen.probes, "probe"),
                                                   chosen.tile_pixels) + _fewer_filters(layers)
        if untimed:
            note = "images at the cheapest settings until an epoch has been timed (%s)" % settings
            limit = limit or "time"
        elif chosen != rungs[0] or cadence > 1:
            note = "images thinned to stay within %s: %s%s" % (
                why, settings,
                ", each layer every %d logged epochs" % cadence if cadence > 1 else
                ", none this step" if cadence == 0 else "")
        return EpochPlan(step, chosen, cadence, layers, {},
                         limited_by=limit if (untimed or chosen != rungs[0] or cadence > 1) else None,
                         room_bytes=room, estimate_bytes=estimate, note=note)

    @property
    def keep_filters(self):
        """Whether the user gave ``max_filters``: every rung then draws that many."""
        return "max_filters" in self.pinned

    def _imaged(self, c, settings, size):
        """The :class:`LayerPlan` of candidate ``c`` drawn at ``settings``."""
        if c.kernel_shape is None or c.kernel_unchanged:
            return LayerPlan(c.key, True, False, None, size)
        kind = c.kernel_kind or kernels.kind_from_rank(len(c.kernel_shape))
        drawn = filters_drawn(kind, c.kernel_shape, settings, self.max_filters, self.keep_filters)
        whole = min(kernels.filter_count(kind, tuple(c.kernel_shape)), self.max_filters)
        return LayerPlan(c.key, True, True, None, size, drawn if drawn < whole else None)

    def image_seconds(self, estimate_bytes):
        """Estimated writer CPU seconds of ``estimate_bytes`` of images."""
        return estimate_bytes * (self.measured.seconds_per_image_byte or SECONDS_PER_IMAGE_BYTE)

    def first_look(self, plan, fit_seconds, epochs, spent_seconds, future_seconds):
        """Decides, once the first epoch has been timed, which of the held
        images of the step before training are written; updates ``plan`` (its
        layers' reasons, cadence, note and account) and returns the kept keys.

        The fit's time target (the target share of ``fit_seconds``, its
        expected training time) less what LayerView has spent so far and what
        the fit's remaining logged steps will cost at least (their statistics
        passes and records, ``future_seconds``) is the room. Images that fit
        it are all written; else every ``k``-th layer, with the smallest
        ``k`` that fits (:meth:`cadence_for`); none when there is no room.

        Args:
          plan: the step's :class:`EpochPlan`, made before any epoch was timed.
          fit_seconds: the fit's expected training time (an epoch's times the epochs).
          epochs: the fit's epochs, for the reasons.
          spent_seconds: LayerView's cost so far (hooks and writer CPU).
          future_seconds: the least the fit's later logged steps will cost.

        Example::

            kept = planner.first_look(plan, fit_seconds=17.6, epochs=2, spent_seconds=0.55,
                                      future_seconds=0.25)
        """
        imaged = [k for k, p in plan.layers.items() if p.images]
        costs = [self.image_seconds(plan.layers[k].estimate_bytes) for k in imaged]
        target = self.target_share() or 0.0
        room = target * fit_seconds - spent_seconds - future_seconds
        if sum(costs) <= room:
            cadence = 1
        elif room <= 0:
            cadence = 0
        else:
            cadence = self.cadence_for(costs, room)
        kept = [k for j, k in enumerate(imaged) if cadence and j % cadence == 0]
        plan.account["first_look"] = {"fit_seconds": round(fit_seconds, 4), "room_seconds": round(room, 4),
                                      "images_seconds": round(sum(costs), 4), "cadence": cadence}
        if cadence == 1:
            return kept
        why = "the %g%% time budget of this fit's %s" % (100 * self.budget.time_share, _count(epochs, "epoch"))
        reason = ("no images before training: the statistics of every logged epoch fill %s" % why
                  if cadence == 0 else
                  "images before training for every %d%s layer only, to stay within %s"
                  % (cadence, _ordinal_suffix(cadence), why))
        dropped = set(imaged) - set(kept)
        for k in dropped:
            plan.layers[k] = dataclasses.replace(plan.layers[k], images=False, filters=False, reason=reason)
        plan.cadence = cadence
        plan.limited_by = "time"
        plan.estimate_bytes = sum(plan.layers[k].estimate_bytes for k in kept)
        plan.note = "%s (decided once the first epoch had been timed, at about %.3g s)" % (
            reason, fit_seconds / max(epochs, 1))
        return kept

    @staticmethod
    def cadence_for(sizes, room):
        """The smallest cadence k whose heaviest group (outputs ``j`` with the
        same ``j % k``) fits ``room``; ``len(sizes)`` at most."""
        n = len(sizes)
        k = max(1, min(math.ceil(sum(sizes) / room), n))
        while k < n and max(sum(sizes[g::k]) for g in range(k)) > room:
            k += 1
        return k

    # -------------------------------------------------------- class views

    def class_view_costs(self, kind, classes, steps):
        """The expected seconds of a class view: measured, or estimated from the probe pass."""
        m = self.measured
        if kind in m.class_view_seconds:
            return m.class_view_seconds[kind]
        fwd = m.forward_seconds or 0.0
        per_sample = fwd / max(self.user.probes, 1)
        if kind == "maximization":
            return steps * 3.0 * max(classes, 1) * per_sample
        return 6.0 * fwd  # attribution: a gradient pass over twice the probes

    def allow_class_views(self, plan, step, due_maximization, available, classes, steps):
        """Fills ``plan.class_views`` ({kind: {"run", "reason"}}) for attribution and
        maximisation. ``available``: the kinds the model supports; each has its
        own credit, an equal part of the class views' share of the time budget."""
        out = {}
        timed = self.target_share() is not None
        epoch = self.measured.epoch_seconds
        per_epoch = 0.0
        allowed = self.time_allowance()
        if allowed is not None and available:
            per_epoch = max(allowed, 0.0) * CLASS_VIEW_SHARE / len(available)
        if due_maximization:
            self.overdue_maximization = True
        for kind in ("attribution", "maximization"):
            if kind not in available:
                continue
            if kind == "maximization" and not self.overdue_maximization:
                out[kind] = {"run": False, "reason": "not due (every maximize_every_n_epochs epochs)"}
                continue
            if not timed:
                out[kind] = {"run": True, "reason": None}
                continue
            cost = self.class_view_costs(kind, classes, steps)
            if epoch is None:  # its cost could be any share of an epoch not timed yet
                out[kind] = {"run": False, "reason": "waits until an epoch has been timed (time budget)"}
                continue
            # Credit is not hoarded beyond the view's cost, or it would burst later.
            credit = min(self.credit.get(kind, 0.0) + per_epoch, cost)
            if credit >= cost - 1e-12:
                self.credit[kind] = credit - cost
                out[kind] = {"run": True, "reason": None, "cost_seconds": round(cost, 4)}
            else:
                self.credit[kind] = credit
                # (less a rounding error, which would add an epoch to an exact quotient)
                wait = math.ceil((cost - credit) / per_epoch - 1e-9) if per_epoch > 0 else None
                if allowed is not None and allowed <= 0:
                    reason = ("deferred to stay within the %g%% time budget: it takes about %.2g s, and"
                              " LayerView has already spent its share of the training so far"
                              % (100 * self.budget.time_share, cost))
                else:
                    reason = ("deferred to stay within the %g%% time budget: it takes about %.2g s,"
                              " the budget gives it %.2g s per epoch%s"
                              % (100 * self.budget.time_share, cost, per_epoch,
                                 " (next in about %d epochs)" % wait if wait else ""))
                out[kind] = {"run": False, "cost_seconds": round(cost, 4), "reason": reason}
        if out.get("maximization", {}).get("run"):
            self.overdue_maximization = False
        plan.class_views = out
        return out


def _fewer_filters(layers):
    """The note's words on wide kernels drawn with fewer filters, or ""."""
    fewer = [(k, p.filters_drawn) for k, p in layers.items() if p.filters and p.filters_drawn is not None]
    if not fewer:
        return ""
    named = ", ".join("%s %d" % kv for kv in fewer[:3]) + (" ..." if len(fewer) > 3 else "")
    return ", fewer filters of wide kernels (%s)" % named


def _ordinal_suffix(n):
    """``"st"`` for 1, ``"nd"`` for 2, ``"th"`` for 11..."""
    if 10 <= n % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _size(n):
    if n is None:
        return "unbounded"
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= f:
            return "%g %s" % (round(n / f, 2), unit)
    return "%d B" % n
