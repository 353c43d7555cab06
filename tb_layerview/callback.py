"""The ``LayerView`` Keras callback: hooks, the step loop and the writer thread.

The pieces it drives each live in their own module: the layer walk
(:mod:`~tb_layerview.walk`), the probe (:mod:`~tb_layerview.probe`),
argument checks (:mod:`~tb_layerview.args`), the compiled probe pass
(:mod:`~tb_layerview.capture`), the budget and the plan
(:mod:`~tb_layerview.plan`), the items a step writes
(:mod:`~tb_layerview.items`) and the class views
(:mod:`~tb_layerview.classlog`).
"""

import atexit
import os
import queue
import sys
import threading
import time
import warnings
import weakref

import numpy as np
import keras

from tb_layerview import args as argcheck
from tb_layerview import capture
from tb_layerview import distributed
from tb_layerview import gradients
from tb_layerview import items
from tb_layerview import kernels
from tb_layerview import metadata
from tb_layerview import plan as plan_lib
from tb_layerview import probe as probe_lib
from tb_layerview import render
from tb_layerview import stats as stats_lib
from tb_layerview import summary
from tb_layerview import walk as walk_lib
from tb_layerview import writer as writer_lib
from tb_layerview.plan import Budget
from tb_layerview.probe import MAX_PROBES, Probe

__all__ = ["LayerView", "LayerViewWarning", "Budget", "MAX_PROBES"]

#: log_dir -> the LayerViews of this process writing it (weakly held): two
#: writing one directory at once put the same steps in two files.
_WRITING = {}
_WRITING_LOCK = threading.Lock()

#: Defaults of the arguments the budget may lower when the user did not set them.
DEFAULT_MAX_CHANNELS = 64
DEFAULT_MAX_TILE_PIXELS = 4096
DEFAULT_MAX_FILTERS = 64


def _load_for_writing(log_dir):
    """Loads, once per process, what logging a step needs and does not load
    before: the libraries the first step written inside ``fit`` would import
    (TensorBoard's protos and its gfile, Pillow's image plugins, the class
    views: about 40 ms on the training and writer threads), and
    threadpoolctl's controller (:func:`tb_layerview.capture.blas_controller`,
    about 12 ms). Later calls find them loaded and cost nothing.

    A library that fails to load here is left to fail where it is used,
    which reports it and lets training go on: building LayerView does not
    fail on it."""
    try:
        from PIL import Image
        from tensorboard.compat.proto import event_pb2, summary_pb2  # noqa: F401
        from tensorboard.plugins.scalar import metadata as scalar_metadata  # noqa: F401
        from tensorboard.util import tensor_util  # noqa: F401

        from tb_layerview import classlog  # noqa: F401

        Image.preinit()  # the first PNG saved would load Pillow's common plugins
        writer_lib.gfile(log_dir)  # TensorFlow's gfile or TensorBoard's stand-in: no I/O, only its import
    except Exception:  # noqa: BLE001 - see above
        pass
    capture.blas_controller()


def _built(model):
    """Whether every layer of ``model`` is built: a failed call can leave a
    model marked built around unbuilt layers."""
    return all(getattr(layer, "built", True) for layer in capture.all_layers(model))


def _changed(marks, earlier):
    """Whether the variables two :meth:`LayerView._fingerprint` read in
    both hold other values now: True or False, or None when that cannot be
    told (a fingerprint missing, or no variable read in both)."""
    if marks is None or earlier is None:
        return None
    common = marks.keys() & earlier.keys()
    if not common:
        return None if marks or earlier else False  # a model without weights
    return any(marks[k] != earlier[k] for k in common)


class LayerViewWarning(UserWarning):
    """A logging problem that did not stop training."""


class _Worker:
    """One background thread that renders and writes, in submission order.

    The queue is bounded: if writing falls behind, the training thread waits
    rather than dropping epochs or piling up memory.
    """

    def __init__(self, guarded, depth=2):
        self._guarded = guarded
        self._queue = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="tb_layerview-writer", daemon=True)
        self._thread.start()

    def submit(self, fn, *args):
        self._queue.put((fn, args))

    def _run(self):
        while True:
            job = self._queue.get()
            if job is None:
                return
            fn, args = job
            self._guarded(fn, *args)

    def drain(self):
        """Waits until every job submitted so far has run (at once on the
        worker's own thread, and once the worker has stopped, which ran them all)."""
        if threading.current_thread() is self._thread:
            return
        done = threading.Event()
        self.submit(done.set)
        while not done.wait(0.1) and self._thread.is_alive():
            pass

    def stop(self, timeout=None):
        """Finishes every pending job, then ends the thread; returns whether
        it ended (within ``timeout`` seconds, if given)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._queue.put(None, timeout=timeout)  # waits for room while the writes run
        except queue.Full:
            return False
        self._thread.join(None if deadline is None else max(deadline - time.monotonic(), 0.0))
        return not self._thread.is_alive()


#: How long the interpreter's exit waits for LayerView's pending writes.
EXIT_WAIT_SECONDS = 120


@atexit.register
def _finish_at_exit():
    """Writes what fits interrupted before their end still hold.

    A fit stopped by an exception (Ctrl-C in a script, an error in another
    callback) never reaches ``on_train_end``, and the writer thread, a
    daemon so that it cannot keep the process alive, is dropped at exit
    with the last logged epochs in its queue: MobileNetV2's two last
    epochs were lost that way. Each LayerView still writing is closed here.
    """
    with _WRITING_LOCK:
        views = {lv for group in _WRITING.values() for lv in group}
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    for lv in views:
        try:
            lv._finish(max(deadline - time.monotonic(), 0.1))
        except Exception:  # noqa: BLE001 - the interpreter is going away: never raise from here
            pass


class _Step:
    """One logged step on its way to the writer."""

    __slots__ = ("step", "items", "plan", "hook_seconds", "capture", "class_seconds", "setup_seconds",
                 "part", "before", "written")

    def __init__(self, step, items_, plan, hook_seconds=0.0):
        self.step, self.items, self.plan, self.hook_seconds = step, items_, plan, hook_seconds
        self.capture = None
        self.class_seconds = 0.0
        # The part of hook_seconds later steps do not repeat, which the
        # planner's estimate of a step's fixed cost leaves out.
        self.setup_seconds = 0.0
        # A step written in two parts (the step before training, whose images
        # wait for the first epoch's time, LayerView._hold_first_look):
        # "fixed" (everything but the images and the plan record), then
        # "images" (the images kept and the plan record), whose ``before`` is
        # the fixed part; ``written``: the fixed part's (writer CPU, bytes).
        self.part = None
        self.before = None
        self.written = (0.0, 0)

    def split(self):
        """``(fixed part, images part)`` of this step, for :meth:`LayerView._hold_first_look`."""
        fixed = _Step(self.step, [it for it in self.items if not it.image], self.plan, self.hook_seconds)
        fixed.capture, fixed.class_seconds, fixed.setup_seconds = self.capture, self.class_seconds, self.setup_seconds
        fixed.part = "fixed"
        held = _Step(self.step, [it for it in self.items if it.image], self.plan)
        held.capture, held.part, held.before = self.capture, "images", fixed
        return fixed, held


class LayerView(keras.callbacks.Callback):
    """Logs every layer's view of a fixed probe, every epoch, for TensorBoard.

    At the start of training and after every ``every_n_epochs`` epochs, the
    probe inputs are passed through the model once (in inference mode, one
    compiled pass on TensorFlow and JAX, eager on PyTorch). Every layer's output is reduced
    to per-channel statistics (always logged), and the outputs the plan
    chooses are drawn as 8-bit images with per-tile ranges stored beside
    them. The kernels of convolution and dense layers are drawn as filters;
    the model's configuration, the probe inputs, the model's predictions for
    them and the plan of each step (what was logged, and why not the rest)
    are logged too. Open TensorBoard on the same log directory and pick the
    "Layer View" tab.

    A :class:`~tb_layerview.plan.Budget` bounds the cost: by default 5% of
    the training time (hooks plus the background writer's CPU) and 2 MB per
    logged epoch. Plans aim at 70% of the time bound, 40% of that for the
    probe's pass, statistics and images and 60% for class views (left
    unspent without them). Within it, the images are thinned (fewer
    channels, probes and pixels, then layers taking turns) and class views
    deferred; the statistics never are. Arguments you set explicitly are
    kept.

    Step ``N`` is the state after ``N`` epochs; step ``initial_epoch`` (0 for
    a new run) is the state before training. A logging failure never stops
    training: it is reported as a :class:`LayerViewWarning`.

    Example::

        import keras, numpy as np
        from tb_layerview import LayerView

        model = keras.Sequential([
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(16, 3, activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(name="pool1"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(10, activation="softmax", name="out"),
        ])
        model.compile("adam", "sparse_categorical_crossentropy")
        x = np.random.rand(256, 32, 32, 3).astype("float32")
        y = np.random.randint(0, 10, 256)
        model.fit(x, y, epochs=3,
                  callbacks=[LayerView("logs/cnn", probe=(x[:8], y[:8]))])

    Args:
      log_dir: directory of the run (any ``tf.io.gfile`` path); TensorBoard
        shows it under this name when started with ``--logdir`` on its parent.
      probe: the inputs to watch: an array ``(N, ...)``, a list or dict of
        arrays for multi-input models, or an ``(x, y)`` tuple to record the
        true labels (``(x, y, sample_weight)`` too; the weights are not
        used). 1 to 64 samples. A data set (``tf.data.Dataset``,
        ``PyDataset``, ``DataLoader``): the first 8 samples of its first batch
        (:func:`tb_layerview.probe.first_batch`).
      class_names: names of the output classes, for predictions.
      layers: layer names, paths (``"encoder/conv1"``) or regular expressions
        of the layers to draw; all drawable layers when None. A pattern that
        matches no layer stops ``fit`` at its start.
      exclude: names, paths or regular expressions of layers not to draw.
      every_n_epochs: log after every this many epochs (the last epoch is
        always logged, as is the one training stopped at when a callback
        such as ``EarlyStopping`` ends it early).
      log_initial: log the state before training as step ``initial_epoch``.
      log_filters: log kernels of convolution and dense layers.
      max_channels: channels drawn per layer (the first ones); 64 when None,
        which the budget may lower.
      max_tile_pixels: a bigger channel map is block-averaged to this size;
        4096 when None, which the budget may lower.
      min_spatial: an (H, W, C) output with H or W below this is drawn as a
        vector (e.g. after global pooling).
      min_size: outputs with fewer values per sample are not drawn.
      max_filters: filters (or dense units) drawn per layer; 64 when None,
        which the budget may lower for a kernel of wide filters (a dense
        layer's units: :func:`tb_layerview.plan.filters_drawn`).
      filter_input: ``"first"`` draws each filter's first input channel,
        ``"mean"`` the mean over input channels (3-channel filters: RGB).
      input_image_shape: the image shape of a flat input (e.g. ``(28, 28)``);
        guessed for perfect squares >= 64 when None.
      top_k: classes kept per probe in the predictions.
      background: render and write on a background thread, so that the
        training thread only runs the probe's pass and copies what it needs;
        ``on_train_end`` waits for the writes to finish.
      class_views: log what the network "sees" per class: the back-query of
        Dense networks with invertible activations and attribution maps of
        each probe, and activation maximisation (every
        ``maximize_every_n_epochs``); see :mod:`tb_layerview.classviews`.
        Single-input models, on TensorFlow, JAX or PyTorch (each backend's
        own gradients, :mod:`tb_layerview.gradients`).
      max_classes: class views cover the first this many classes.
      maximize_every_n_epochs: activation maximisation is due at the first
        logged step, every this many epochs and at the last epoch.
      maximize_steps: gradient-ascent steps per activation maximisation.
      attribution_layer: the conv layer (name) for Grad-CAM; the last conv
        layer when None (gradient x input saliency without one).
      maximize_units: ``{layer name or path: units}``, units being a list of
        unit (channel) indices or a count of first units: activation
        maximisation of those units, at the same epochs as the classes'.
      budget: a :class:`~tb_layerview.plan.Budget`, a dict of its fields
        (``{"time_share": 0.05, "bytes_per_epoch": "2MB"}``), or None to log
        everything the other arguments ask for at every logged epoch.
        The budget thins images and class views, never the statistics:
        where the probe pass alone costs more than the time share of a
        logged epoch, the fit warns once with the ``every_n_epochs`` that
        keeps it within.
      model: the model to watch, when it is not the one being trained: a
        part of it, such as the generator of a GAN whose own ``train_step``
        trains a generator and a discriminator (``model=gan.generator``),
        or the encoder of a larger model. The probe is that model's input.
    """

    def __init__(self, log_dir, probe, class_names=None, layers=None, exclude=None,
                 every_n_epochs=1, log_initial=True, log_filters=True, max_channels=None,
                 max_tile_pixels=None, min_spatial=2, min_size=1, max_filters=None,
                 filter_input="first", input_image_shape=None, top_k=5, background=True,
                 class_views=True, max_classes=10, maximize_every_n_epochs=5, maximize_steps=64,
                 attribution_layer=None, maximize_units=None, budget=Budget(), model=None):
        arguments = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__()
        if isinstance(log_dir, os.PathLike):
            log_dir = os.fspath(log_dir)
        if not isinstance(log_dir, str) or not log_dir:
            raise ValueError("log_dir must be a non-empty path string; got %r" % (log_dir,))
        self.log_dir = log_dir
        self.probe = Probe.parse(probe)
        # What a copy is made from (__deepcopy__): the probe as checked here,
        # so that a data set gives every copy the same batch.
        self._arguments = dict(arguments, probe=Probe.parse(self.probe))
        self._copied_with = None  # the memo of the deepcopy that made this instance, if one did
        self.class_names = argcheck.class_names(class_names)
        self._include = argcheck.compile_patterns(layers, "layers")
        self._exclude = argcheck.compile_patterns(exclude, "exclude") or []
        self.every_n_epochs = argcheck.positive_int(every_n_epochs, "every_n_epochs")
        self._pinned = set()
        if max_channels is not None:
            self._pinned.add("max_channels")
        if max_tile_pixels is not None:
            self._pinned.add("max_tile_pixels")
        self.max_channels = argcheck.positive_int(
            DEFAULT_MAX_CHANNELS if max_channels is None else max_channels, "max_channels")
        self.max_tile_pixels = argcheck.positive_int(
            DEFAULT_MAX_TILE_PIXELS if max_tile_pixels is None else max_tile_pixels, "max_tile_pixels", 16)
        self.min_spatial = argcheck.positive_int(min_spatial, "min_spatial")
        self.min_size = argcheck.positive_int(min_size, "min_size")
        if max_filters is not None:
            self._pinned.add("max_filters")
        self.max_filters = argcheck.positive_int(
            DEFAULT_MAX_FILTERS if max_filters is None else max_filters, "max_filters")
        self.top_k = argcheck.positive_int(top_k, "top_k")
        if filter_input not in ("first", "mean"):
            raise ValueError('filter_input must be "first" or "mean"; got %r' % (filter_input,))
        self.filter_input = filter_input
        self.input_image_shape = argcheck.image_shape(input_image_shape)
        self.log_initial = bool(log_initial)
        self.log_filters = bool(log_filters)
        self.background = bool(background)
        self.class_views = bool(class_views)
        self.max_classes = argcheck.positive_int(max_classes, "max_classes")
        self.maximize_every_n_epochs = argcheck.positive_int(maximize_every_n_epochs, "maximize_every_n_epochs")
        self.maximize_steps = argcheck.positive_int(maximize_steps, "maximize_steps")
        if attribution_layer is not None and not isinstance(attribution_layer, str):
            raise TypeError("attribution_layer must be a layer name; got %r" % (attribution_layer,))
        self.attribution_layer = attribution_layer
        self.maximize_units = argcheck.unit_spec(maximize_units)
        self.budget = Budget.parse(budget)
        if model is not None and not isinstance(model, keras.Model):
            raise TypeError("model must be a keras.Model to watch (for instance a GAN's generator); got %r"
                            % (model,))
        self._watch = model
        self._writer = None
        self._worker = None
        self._started = True
        self._writes, self._not_writing = True, None
        self._prepared_for = None
        self._weight_marks = None  # (step, _fingerprint()) at the last log(), or "moved"
        self._logged = None  # (model, step, _fingerprint() when it was logged) of the last step logged
        self._held_steps = set()  # steps the log held at train begin; None when they could not be read
        self._first_marks = None  # _fingerprint() when the first pass ran
        self._own_steps = {}  # name of each event file this instance closed -> the steps it holds
        self._steps_noted = set()  # the steps this instance wrote to its open event file
        self._described = None  # the model whose configuration and probes this instance has written
        self._probe_pass = None
        self._states = []  # stateful layers' state variables (capture.layer_states)
        self._earlier_files = []  # event files of earlier fits found in log_dir at train begin
        self._warned = set()
        self._regression, self._multilabel, self._class_widths = {}, {}, None
        self._lock = threading.Lock()
        self._unit_streaks = stats_lib.UnitStreaks()
        self._reset_measures()
        _load_for_writing(self.log_dir)  # before training rather than inside its first logged step

    def __deepcopy__(self, memo):
        """A fresh LayerView with the same arguments, for tools that copy
        callbacks, such as KerasTuner's ``search`` (a copy per trial).

        Nothing of this instance's state is copied: no event file, thread or
        lock, and the copy logs from its own first fit on. The watched
        ``model=`` and the probe's arrays are shared, not copied. A copy made
        together with a ``keras.callbacks.TensorBoard`` that had the same
        ``log_dir`` follows it when the tool then gives that callback a
        directory of its own inside it (KerasTuner: ``<log_dir>/<trial
        id>/execution<k>``), so each trial's layers sit in the run of its
        scalars and hyperparameters.
        """
        cls = type(self)
        twin = cls.__new__(cls)
        LayerView.__init__(twin, **self._arguments)
        twin._copied_with = memo
        memo[id(self)] = twin
        return twin

    def _follow_copied_tensorboard(self):
        """Where a TensorBoard callback, copied with this instance from one
        with the same log_dir, has since been moved to inside that log_dir;
        else None."""
        memo = self._copied_with
        if memo is None:
            return None
        base = str(self._arguments["log_dir"]).rstrip("/")
        moved = set()
        # The originals deepcopy keeps alive in its memo: the copy of each is memo[id(original)].
        for original in memo.get(id(memo), ()):
            if (isinstance(original, keras.callbacks.TensorBoard)
                    and str(original.log_dir).rstrip("/") == base):
                twin = memo.get(id(original))
                target = str(getattr(twin, "log_dir", "")).rstrip("/")
                if twin is not original and target.startswith(base + "/"):
                    moved.add(target)
        return moved.pop() if len(moved) == 1 else None

    @property
    def _watched(self):
        """The model LayerView watches: ``model=`` where given, else the one
        being trained. Reading Keras' ``self.model`` first keeps JAX's training
        state written back into the variables, which a watched part shares."""
        trained = self.model
        return self._watch if self._watch is not None else trained

    # ----------------------------------------------------------------- hooks

    def on_train_begin(self, logs=None):
        t0 = time.perf_counter()
        self._reset_measures()
        self._writes, self._not_writing = distributed.writer_process()
        if not self._writes:
            return
        moved = self._follow_copied_tensorboard() if self._writer is None else None
        if moved is not None:
            self.log_dir = moved
        self._check_log_dir()
        self._read_held_steps()
        try:
            self._prepare()  # raises a clear error if the probe or the layer patterns do not fit
        except distributed.SplitAcrossProcesses as err:
            self._warn("distributed", "nothing is logged in this fit: %s; training goes on" % err)
            self._writes, self._not_writing = False, str(err)
            return
        # The state before training is captured at the first epoch's start,
        # once every callback has begun: one that restores a checkpoint
        # (BackupAndRestore) changes the weights and the first epoch here.
        self._first_marks = self._fingerprint() if self._first_result is not None else None
        self._started = False
        self._hook_seconds += time.perf_counter() - t0

    def _note_step(self, step):
        """Records that this instance writes ``step`` to log_dir; warns when
        another LayerView of this process still writing there (two in one fit,
        one per part of a model) has written the same step."""
        key = self.log_dir.rstrip("/") if "://" in self.log_dir else os.path.abspath(self.log_dir)
        with _WRITING_LOCK:
            group = _WRITING.setdefault(key, weakref.WeakSet())
            clash = any(step in other._steps_noted for other in list(group) if other is not self)
            group.add(self)
            self._steps_noted.add(step)
        if clash:
            self._warn("shared_log_dir", "another LayerView of this process has written step %d to log_dir %r too;"
                       " TensorBoard's two loaders keep different ones of a step written twice. Give each LayerView"
                       " its own log_dir (for instance logs/run1/encoder and logs/run1/decoder)" % (step, self.log_dir))

    def _leave_log_dir(self):
        """This instance has finished writing log_dir (its fit ended)."""
        with _WRITING_LOCK:
            for key, group in list(_WRITING.items()):
                group.discard(self)
                if not group:  # a sweep of many runs in one process keeps no entry per finished run
                    del _WRITING[key]
        self._steps_noted = set()

    def _read_held_steps(self):
        """Lists the earlier event files in log_dir and the steps they hold:
        a fit that resumes from a checkpoint starts at a step the log holds."""
        self._earlier_files = writer_lib.layerview_files(self.log_dir)
        # Only files of other writers are read: a long loop of fits over a
        # remote directory would otherwise open every file of its own again.
        others = [n for n in self._earlier_files if n not in self._own_steps]
        held = writer_lib.logged_steps(self.log_dir, others) if others else set()
        self._held_steps = None if held is None else held.union(*self._own_steps.values())

    def on_epoch_begin(self, epoch, logs=None):
        t0 = time.perf_counter()
        self._epoch_began = t0
        if self._started:
            return
        self._started = True
        if not self._writes or self._probe_pass is None:
            return
        held = self._held_steps
        if self._earlier_files and (epoch < max(held) if held else held is None and epoch == 0):
            self._warn("earlier_log", "log_dir %r already holds the LayerView log of an earlier fit (%s)%s; this"
                       " fit logs from epoch %d again, so TensorBoard will show both fits' data at the same epochs"
                       " (and its two loaders keep different ones). Pass initial_epoch to continue that run's"
                       " epochs, or give each fit its own log_dir%s"
                       % (self.log_dir, ", ".join(self._earlier_files[:3])
                          + (" ..." if len(self._earlier_files) > 3 else ""),
                          " up to step %d" % max(held) if held else "", epoch,
                          "" if self._copied_with is None else
                          " (this LayerView is a copy, as KerasTuner makes one per trial: a"
                          " keras.callbacks.TensorBoard with the same log_dir beside it gives each copy the"
                          " trial's own directory)"))
        model = self._prepared_for
        marks = self._fingerprint()
        if self._first_result is not None and _changed(marks, self._first_marks) is not False:
            self._first_result = None  # another callback's on_train_begin changed the weights
        # A step is written once: TensorBoard's two loaders keep different
        # events of a step written twice. A fit that starts where the log
        # already has a step (resumed from a checkpoint, or the next fit of
        # a loop) starts from the state that step shows.
        held_now = self._holds(epoch)
        if held_now and self._logged is not None and self._logged[0] is model and self._logged[1] == epoch \
                and _changed(marks, self._logged[2]):
            self._warn("held_start", "the weights changed after step %d was logged, and a fit starts from them"
                       " at epoch %d; the log already holds step %d, so the state this fit starts from is"
                       " shown from its first logged epoch on" % (epoch, epoch, epoch))
        snap = None
        if self.log_initial and not held_now:
            snap = self._guarded(self._take_step, None, False)
        self._first_result = None
        if not held_now:  # the run information reads what the pass found (the outputs, the calls)
            self._describe(epoch)
        if snap is not None:
            snap.step = snap.plan.step = epoch
            # The step before training cost every hook so far: preparing in
            # on_train_begin (the layer walk, tracing, the pass itself) and
            # this one. Most of that happens once (the walk, tracing, a
            # compiled pass's first call), so the planner's estimate of a
            # later step's fixed cost leaves all of it out.
            snap.hook_seconds = snap.setup_seconds = self._hook_seconds + time.perf_counter() - t0
            self._note_step(epoch)
            if not self._hold_first_look(snap):
                self._submit(self._write_step, snap)
            self._logged = (model, epoch, marks)
        self._epoch_began = time.perf_counter()
        self._hook_seconds += time.perf_counter() - t0

    def on_epoch_end(self, epoch, logs=None):
        t0 = time.perf_counter()
        if self._epoch_began is not None:
            self._epochs_timed.append(t0 - self._epoch_began)
        if not self._writes or self._probe_pass is None:
            return
        step = epoch + 1
        self._unlogged = step
        last = self.params.get("epochs") if self.params else None
        if step % self.every_n_epochs and step != last:
            if self._first_look is not None:
                self._guarded(self._decide_first_look, t0, step, False)
                self._hook_seconds += time.perf_counter() - t0
            return
        self._log_epoch(step, step == last, t0)

    def _log_epoch(self, step, last, t0):
        self._unlogged = None
        self._update_epoch_time()
        snap = self._guarded(self._take_step, step, last)
        if self._first_look is not None:  # written before this step, as the steps come
            self._guarded(self._decide_first_look, t0, step, True)
        self._describe(step)  # unless written already: this fit started at a step the log held
        if snap is not None:
            # Read now: a callback after this one (EarlyStopping restoring
            # the best weights) may change the weights before the next fit.
            self._logged = (self._prepared_for, step, self._fingerprint())
            snap.hook_seconds = time.perf_counter() - t0
            self._note_step(step)
            self._submit(self._write_step, snap)
        self._hook_seconds += time.perf_counter() - t0

    def on_train_end(self, logs=None):
        # Stopped early (EarlyStopping, a NaN guard) between two logged epochs:
        # the state training ends in is logged too, as the last epoch's would be.
        if (self._unlogged is not None and self._writes and self._probe_pass is not None
                and getattr(self.model, "stop_training", False)):
            self._log_epoch(self._unlogged, True, time.perf_counter())
        self.close()  # writes held images of the step before training, if no epoch ended to decide them

    # ------------------------------------------------------------ public API

    @property
    def not_writing(self):
        """Why this process logs nothing (in distributed training another one
        writes the run), or None when it writes."""
        return self._not_writing

    def log(self, step, state=None):
        """Logs the current state at ``step`` (for custom training loops).

        Call ``set_model(model)`` once first (or pass ``model=``). The run information (model
        configuration, probes) is written on the first call. Without epochs to
        time, only the byte bound of the budget applies. A step the log
        directory already holds (from this instance or an earlier run) is not
        written again, with a warning: TensorBoard's two loaders would each
        keep another of the two.

        Args:
          step: the step (epoch) to log at.
          state: for a loop that trains with ``model.stateless_call`` (JAX),
            which keeps the weights outside the model: its
            ``(trainable_variables, non_trainable_variables)``, in the order
            of ``model.trainable_variables`` and
            ``model.non_trainable_variables``. They are assigned to the
            model's variables before logging, as such a loop does once
            training ends; the loop's own state is not touched.

        Example::

            for epoch in range(epochs):
                trainable, non_trainable, opt_vars = train_one_epoch(trainable, non_trainable, opt_vars)
                lv.log(step=epoch + 1, state=(trainable, non_trainable))
        """
        if self._watched is None:
            raise RuntimeError("LayerView.log needs a model: call set_model(model) first, or pass model=")
        t0 = time.perf_counter()
        self._writes, self._not_writing = distributed.writer_process()
        if not self._writes:
            return
        if state is not None:
            self._assign_state(state)
        marks = self._fingerprint()
        self._check_weights_moved(step, state is not None, marks)
        first = self._prepared_for is not self._watched
        if first:
            self._check_log_dir()
            self._read_held_steps()
            self._prepare()
        if self._holds(int(step)):
            self._warn("held:%d" % int(step), "log_dir %r already holds step %d, so it is not written again:"
                       " TensorBoard's two loaders would each keep another of the two" % (self.log_dir, int(step)))
            return
        snap = self._take_step(step, False)
        # The loop's thread ran all of it; the first call also prepared (walked the model, traced the pass).
        snap.hook_seconds = time.perf_counter() - t0
        snap.setup_seconds = snap.hook_seconds if first else 0.0
        self._hook_seconds += snap.hook_seconds  # as the hooks add theirs: only the calling thread writes it
        self._note_step(int(step))
        if self._described is not self._prepared_for:
            self._write_run_info(step, self._run_info())
            self._described = self._prepared_for
        self._write_step(snap)
        self._logged = (self._prepared_for, step, marks)
        self.flush()

    def _holds(self, step):
        """Whether log_dir holds ``step``: in an earlier writer's file, or in one of this instance's."""
        return (step in (self._held_steps or ()) or any(step in steps for steps in self._own_steps.values())
                or step in self._steps_noted)

    def _assign_state(self, state):
        """Assigns a stateless loop's ``(trainable, non_trainable)`` values to the watched model's variables."""
        model = self._watched
        try:
            trainable, non_trainable = state
        except (TypeError, ValueError):
            raise TypeError("LayerView.log state must be (trainable_variables, non_trainable_variables); got %s"
                            % type(state).__name__) from None
        for name, variables, values in (("trainable", model.trainable_variables, trainable),
                                        ("non-trainable", model.non_trainable_variables, non_trainable)):
            values = list(values)
            if len(values) != len(variables):
                raise ValueError("LayerView.log state has %d %s values; the model %r has %d %s variables"
                                 % (len(values), name, model.name, len(variables), name))
            for variable, value in zip(variables, values):
                if tuple(value.shape) != tuple(variable.shape):
                    raise ValueError("LayerView.log state: a value of shape %s for variable %r of shape %s"
                                     % (tuple(value.shape), variable.path, tuple(variable.shape)))
                variable.assign(value)

    def _check_weights_moved(self, step, given, marks):
        """Warns when a custom loop logs the same weights at a new step: a
        loop that trains outside the model's variables logs its start
        again and again. A few values of some variables tell
        (:meth:`_fingerprint`); once the weights have moved between two logs, the check stops."""
        if self._weight_marks == "moved" or marks is None:
            return
        last = self._weight_marks
        self._weight_marks = (step, marks)
        if last is not None and _changed(marks, last[1]):
            self._weight_marks = "moved"
        elif last is not None and last[0] != step and marks and _changed(marks, last[1]) is False:
            self._warn("weights_unchanged", "LayerView.log(step=%r): the model's weights are the ones logged at"
                       " step %r. A loop that trains with model.stateless_call (JAX) keeps its weights outside"
                       " the model: pass them, log(step, state=(trainable_variables, non_trainable_variables)),"
                       " or assign them to the model's variables before logging%s"
                       % (step, last[0], " (the state given holds the same values)" if given else ""))

    def _fingerprint(self):
        """A few values of some of the watched model's variables, by
        variable: enough to tell whether training moved the weights, read in
        milliseconds (compare two with :func:`_changed`). None when they
        cannot be read.

        Up to 16 variables are taken evenly from all the weights, whose
        order does not change when layers are frozen or unfrozen between
        two fits, and up to 16 from the trainable ones, so that a small
        trained part (a head on a frozen base) is seen too."""
        try:
            model = self._watched
            picked = {}
            for variables in (model.weights, model.trainable_variables):
                for v in variables[::max(1, -(-len(variables) // 16))]:
                    picked[id(v)] = v
            return {key: capture.first_values(v).tobytes() for key, v in picked.items()}
        except Exception:  # noqa: BLE001 - a check, never a reason to skip a step
            return None

    def flush(self):
        """Flushes the event file, if one was opened."""
        if self._writer is not None:
            self._writer.flush()

    def close(self):
        """Waits for pending writes, then flushes and closes the event file.

        A later log opens a new event file.
        """
        self._finish(None)

    def _finish(self, timeout):
        """:meth:`close`, waiting at most ``timeout`` seconds for the writer thread."""
        if self._first_look is not None:  # training stopped (or failed) before they were decided: all of them
            held, self._first_look = self._first_look[0], None
            self._submit(self._write_step, held)
        if self._worker is not None:
            if not self._worker.stop(timeout):
                sys.stderr.write("tb_layerview: gave up waiting %.0f s for the writes to %r\n" % (timeout, self.log_dir))
                return  # the thread may be writing: the file is left to it
            self._worker = None
        if self._writer is not None:  # opened by the last pending write at the latest
            self._own_steps[os.path.basename(self._writer.path)] = self._steps_noted
        self._leave_log_dir()
        if self._writer is not None:
            try:
                self._writer.flush()
                self._writer.close()
            except Exception as e:  # closing must not fail a finished training
                self._warn("close", "could not close the event file in %r: %s" % (self.log_dir, e))
            self._writer = None

    def unit_problems(self):
        """The units that are dead, saturated or NaN/Inf on the probe at their
        layer's last logged step, and since when, without leaving Python.

        The same answer as the panel's Health view and the export's
        ``units.csv``, from the statistics this instance logged (steps it
        logs in the background are waited for). In distributed training the
        process that writes the run has the answer; the others log nothing,
        and get an empty list.

        Returns:
          list of ``{"layer", "activation", "channel", "problem", "since",
          "last_step"}``: ``problem`` is ``"dead"`` (a rectifier unit never
          positive on the probe), ``"saturated"`` (a bounded activation's
          unit at its bounds on at least 90% of its values) or
          ``"nonfinite"``; ``since`` is the logged step from which the unit
          has had it at every logged step, up to ``last_step``.

        Example::

            lv = LayerView("logs/run1", probe=x_val[:8])
            model.fit(x, y, epochs=20, callbacks=[lv])
            for u in lv.unit_problems():
                if u["problem"] == "dead":
                    print("%s channel %d dead since epoch %d" % (u["layer"], u["channel"], u["since"]))
        """
        worker = self._worker
        if worker is not None:
            worker.drain()
        return self._unit_streaks.rows()

    @property
    def cost(self):
        """What LayerView cost so far: ``{"hook_seconds", "writer_cpu_seconds",
        "bytes", "logged_steps", "epoch_seconds"}`` (the plan records the same
        per step)."""
        with self._lock:
            return {"hook_seconds": self._hook_seconds, "writer_cpu_seconds": self._writer_cpu,
                    "bytes": self._bytes_written, "logged_steps": self._logged_steps,
                    "epoch_seconds": list(self._epochs_timed)}

    # -------------------------------------------------------------- internals

    def _reset_measures(self):
        self._hook_seconds = 0.0
        self._writer_cpu = 0.0
        self._bytes_written = 0
        self._logged_steps = 0
        self._epochs_timed = []
        self._epoch_began = None
        # (images part of the step before training, the fit's epochs) while
        # those images wait for the first epoch's time (_hold_first_look).
        self._first_look = None
        self._forward_mode = None  # the pass mode of planner.measured.forward_seconds
        self._unlogged = None  # the step of the last epoch, while it is not logged

    def _warn(self, key, message):
        if key in self._warned:
            return
        self._warned.add(key)
        warnings.warn("tb_layerview: " + message, LayerViewWarning, stacklevel=3)

    def _guarded(self, fn, *args):
        """Runs ``fn``; a failure becomes a warning and None, never an exception."""
        try:
            return fn(*args)
        except Exception as e:
            self._warn("step:%s" % type(e).__name__,
                       "logging failed and was skipped (%s: %s); training goes on"
                       % (type(e).__name__, e))
            return None

    def _submit(self, fn, *args):
        """Runs a write job: on the background thread, or here if it is off."""
        if not self.background:
            self._guarded(fn, *args)
            return
        if self._worker is None:
            self._worker = _Worker(self._guarded)
        self._worker.submit(fn, *args)

    def _check_log_dir(self):
        writer_lib.check_writable(self.log_dir)

    def _get_writer(self):
        """The run's event file, written with TensorBoard's protos and file layer (no TensorFlow)."""
        if self._writer is None:
            self._writer = writer_lib.EventWriter(self.log_dir)
        return self._writer

    def _selected(self, entry):
        path, name = entry.path.split(":", 1)[0], entry.layer.name
        if self._include is not None and not argcheck.matches(self._include, path, name):
            return False
        return not argcheck.matches(self._exclude, path, name)

    # ------------------------------------------------------------- preparing

    def _prepare(self):
        """Walks the model, checks the layer patterns, traces the probe pass
        (the garbage collector waiting, as in :meth:`_take_step`)."""
        model = self._watched
        if self._prepared_for is model and self._probe_pass is not None:
            return
        with capture.gc_paused():
            if not _built(model):
                self._build(model)
            states = capture.layer_states(model)
            with capture.states_kept(states):
                self._prepare_for(model, states)

    def _build(self, model):
        """Builds a model that was never called (a subclassed model, which
        Keras builds at its first train step on TensorFlow) by a call of the
        probe inside a ``keras.StatelessScope``: its layers then exist to be
        walked, the call says whether the probe fits, and the variables it
        creates keep their initial values (a stateful layer's state too) for
        training. A layer that creates a variable from a value, which Keras
        does not allow in that scope, is built by a plain call instead."""
        try:
            with keras.StatelessScope():
                probe = self.probe.for_model(model)
                if isinstance(model, keras.Sequential) and hasattr(probe, "shape"):
                    # A Sequential keeps its building input's shape as its own: built
                    # from the probe, its summary and saved file would show the
                    # probe's batch size.
                    model.build((None,) + tuple(probe.shape[1:]))
                self._call_model()
            return
        except Exception:  # noqa: BLE001 - a probe that does not fit fails again below, and says so
            pass
        self._call_model()
        if capture.layer_states(model):
            self._warn("build-state", "model %r was built by calling it on the probe (a layer creates a"
                       " variable from a value, which keras.StatelessScope does not allow), so its stateful"
                       " layers start training from the state the probe left; call the model once before fit"
                       " to avoid this" % model.name)

    def _prepare_for(self, model, states):
        entries = walk_lib.walk(model)
        for what, patterns in (("layers", self._include), ("exclude", self._exclude)):
            missing = argcheck.unmatched(patterns, entries)
            if missing:
                raise ValueError("LayerView: %s=%r matches no layer of model %r; its layers are: %s"
                                 % (what, missing[0] if len(missing) == 1 else missing, model.name,
                                    argcheck.abbreviated(e.path for e in entries)))
        self._entries = entries
        self._states = states
        self._by_path = {e.path: e for e in entries}
        limits = {e.path: stats_lib.saturation_limits(stats_lib.activation_of(e.layer)) for e in entries}
        self._activation = {e.path: stats_lib.activation_of(e.layer) for e in entries}
        self._probe_pass = capture.ProbePass(model, entries, self.probe.for_model(model), limits)
        self._planner = plan_lib.Planner(self.budget, self.max_channels, self.max_tile_pixels,
                                         self.probe.count, self.max_filters, self._pinned,
                                         self.every_n_epochs)
        self._frozen_written = {}
        self._last_stats = {}
        self._pass_done = False
        self._first_result = None
        self._eager_seconds = None
        self._compile_refused = False
        self._compiled_ran = False
        self._classlog = None
        self._logged_index = 0
        self._first_weighted = next((e.path for e in entries if getattr(e.layer, "weights", None)
                                     and not (e.container or e.composite)), None)
        self._prepared_for = model
        # The first pass checks that the probe fits (a clear error stops fit
        # here); its result is the initial step's. A fit whose logged steps
        # pay back tracing is compiled before it rather than after an eager
        # first pass, which would cost a pass more. JAX always is: its eager
        # first pass costs more than compiling (capture.COMPILED_PASS_SHARE). A probe
        # that does not fit fails the tracing too, and the eager pass then
        # names the mismatch.
        backend = keras.backend.backend()
        passes = self._remaining_steps(0)
        if passes is not None and not self.log_initial:
            passes -= 1
        if backend == "jax" or (backend == "tensorflow" and self._compile_pays(passes)):
            if self._probe_pass.compile() is not None:
                self._compile_refused = True
        self._first_result = self._run_pass()
        # What the model's outputs are does not change from one step to the next.
        outputs = self._output_dict(self._first_result.model_outputs) or {}
        if outputs:
            self.probe.resolve_labels(outputs)  # a clear error for labels of outputs the model lacks
        self._regression, self._multilabel, widths = self._output_roles(outputs)
        self._class_widths = {n: k for n, k in widths.items() if k > 1}

    def _labels_by_output(self):
        """The probe's labels as the writer takes them: one array, or
        ``{output name: array}`` when they were given per output."""
        return self.probe.output_labels if isinstance(self.probe.output_labels, dict) else self.probe.labels

    def _names_by_output(self):
        """``class_names`` per output, for a model with several class
        outputs: ``{output: the names}`` for the outputs with as many classes
        as names, None for the others (a 2-class head of a 10-class model is
        not 'cat'/'dog'); None when ``class_names`` serve every output as
        they are."""
        widths = self._class_widths or {}
        if self.class_names is None or len(widths) < 2:
            return None
        return {n: (list(self.class_names) if k == len(self.class_names) else None) for n, k in widths.items()}

    def _call_model(self):
        try:
            with gradients.eager_retracing_quiet():
                model = self._watched
                return model(self.probe.for_model(model), training=False)
        except Exception as err:
            raise ValueError(self._probe_mismatch(err)) from None

    def _probe_mismatch(self, err):
        def shapes(x):
            if isinstance(x, dict):
                return {k: tuple(v.shape) for k, v in x.items()}
            if isinstance(x, list):
                return [tuple(v.shape) for v in x]
            return tuple(x.shape)

        expected = None
        try:
            expected = [tuple(t.shape) for t in self._watched.inputs]
        except Exception:
            pass
        if isinstance(err, NotImplementedError) and self._watch is None:
            return ("LayerView: the model %r cannot be called on the probe: it defines no call() (%s). A"
                    " model trained through its own train_step, such as a GAN, is watched through one of its"
                    " parts: pass model=, e.g. LayerView(..., model=gan.generator), and a probe for that part"
                    % (self._watched.name, capture.error_summary(err)))
        return ("LayerView: the probe does not fit the model %r: the model expects inputs %s, the"
                " probe has shape %s (%s)" % (self._watched.name, expected or "(unknown)",
                                              shapes(self.probe.inputs), capture.error_summary(err)))

    def _run_pass(self):
        """The probe pass; a failure of the first one is the probe not fitting the model."""
        first = not self._pass_done
        try:
            result = self._probe_pass.run()
        except distributed.SplitAcrossProcesses:
            raise
        except Exception as err:
            if not first:
                raise
            result = self._compiled_first_pass(err)
            if result is None:
                raise ValueError(self._probe_mismatch(err)) from None
        self._pass_done = True
        return result

    def _compiled_first_pass(self, err):
        """The first pass compiled with XLA, when the eager one failed on an
        operation TensorFlow runs only compiled on this device (a model that
        trains with ``jit_compile=True`` for that reason); None when that is
        not the failure or XLA fails too."""
        pp = self._probe_pass
        if keras.backend.backend() != "tensorflow" or pp.mode != "eager" or not capture.runs_only_compiled(err):
            return None
        if pp.compile(xla=True) is not None:
            return None
        try:
            return pp.run()  # compiled from now on: the eager pass is never tried again
        except Exception:  # noqa: BLE001 - the eager error is the one to report
            return None

    def _image_shape(self):
        """The image shape of the (first) input, channels last, for dense-unit filters and class views."""
        if self.input_image_shape is not None:
            return self.input_image_shape
        first = self.probe.arrays[0]
        return render.image_shape_of(first.shape[1:], self._input_channels_first())

    def _input_channels_first(self):
        """Whether the model takes its (first) input's images as (C, H, W):
        the layout of the first layer that reads it (:func:`walk.data_format_of`)."""
        first = self.probe.arrays[0]
        reader = next((e.layer for e in self._entries if not e.container), None)
        return (first.ndim == 4 and reader is not None
                and walk_lib.data_format_of(reader) == "channels_first")

    def _output_skip_reason(self, key, spec):
        entry = self._by_path[spec.layer_path]
        if not self._selected(entry):
            return "not selected (layers/exclude arguments)"
        if not spec.batched:
            return ("output has no batch axis (shape %s for %d probes): no values per probe, so no "
                    "statistics or images" % (spec.shape, self.probe.count))
        if key in self._probe_pass.failed:
            return "statistics could not be computed (%s)" % self._probe_pass.failed[key]
        if key not in self._last_stats:
            return "output dtype %s cannot be drawn" % spec.dtype
        per_sample = int(np.prod(spec.shape)) if spec.shape else 1
        if per_sample < self.min_size:
            return "output has %d values per sample, fewer than min_size=%d" % (per_sample, self.min_size)
        return None

    def _candidates(self):
        """The outputs that may get images, as :class:`plan.Candidate`, in model order."""
        out = []
        for key, spec in self._probe_pass.specs.items():
            if self._output_skip_reason(key, spec) is not None:
                continue
            entry = self._by_path[spec.layer_path]
            shape = tuple(max(d, 1) for d in spec.shape)
            if spec.channels_first and len(shape) in (3, 4):
                shape = shape[1:] + shape[:1]
            kernel = kernels.kernel_of(entry.layer) if (self.log_filters and key == entry.path) else None
            kind, kshape, rgb, unchanged = None, None, False, False
            if kernel is not None:
                # The layout only, not a copy of the kernel, every step.
                kind, kshape = kernels.rendering_layout(kernel.kind, kernel.shape)
                rgb = len(kshape) == 4 and kind != "depthwise" and kshape[2] == 3
                unchanged = not entry.layer.trainable and key in self._frozen_written
            out.append(plan_lib.Candidate(key, shape, render.classify_shape(shape, self.min_spatial),
                                          kshape, rgb, unchanged, kind))
        order = {e.path: e.index for e in self._entries}
        out.sort(key=lambda c: (order.get(c.key.split(":", 1)[0], 0), c.key))
        return out

    # ------------------------------------------------------------ one step

    def _update_epoch_time(self):
        m = self._planner.measured
        if self._epochs_timed:
            recent = self._epochs_timed[-max(self.every_n_epochs, 3):]
            m.epoch_seconds = float(np.median(recent))
        # The account the time budget is kept over (plan.Planner.time_allowance).
        m.trained_seconds = float(sum(self._epochs_timed))
        with self._lock:
            m.spent_seconds = self._hook_seconds + self._writer_cpu

    def _remaining_steps(self, step):
        """Logged steps from ``step`` to the end of training, or None when unknown."""
        last = self.params.get("epochs") if self.params else None
        if step is None or not last:
            return None
        return sum(1 for s in range(step, last + 1) if s % self.every_n_epochs == 0 or s == last)

    def _maybe_compile(self, step):
        """Compiles the probe pass once the logged steps left will pay it back."""
        pp = self._probe_pass
        if pp.mode == "compiled" or self._compile_refused or self._eager_seconds is None:
            return
        if self._compile_pays(self._remaining_steps(step)) and pp.compile() is not None:
            self._compile_refused = True

    def _compile_pays(self, remaining):
        """Whether ``remaining`` logged passes (None: unknown) pay back tracing the pass."""
        estimate = self._probe_pass.estimate
        if remaining is None:  # a custom loop: no end in sight
            return self._logged_index >= estimate.passes_to_pay
        return estimate.pays(remaining)

    def _hold_first_look(self, snap):
        """Writes the step before training without its images, and holds
        those until the first epoch has been timed, when they would take
        more than :data:`plan.FIRST_LOOK_SECONDS` of the writer's time in a
        fit with a time budget and a known number of epochs. Returns whether
        it held them.

        Their cost is priced only against a whole fit's time, and on a model
        of hundreds of layers trained for a few epochs the statistics passes
        alone may fill the budget (:meth:`plan.Planner.first_look`)."""
        planner = self._planner
        epochs = self.params.get("epochs") if self.params else None
        if planner.target_share() is None or planner.measured.epoch_seconds is not None \
                or not isinstance(epochs, int) or epochs <= snap.step \
                or planner.image_seconds(snap.plan.estimate_bytes) <= plan_lib.FIRST_LOOK_SECONDS:
            return False
        fixed, held = snap.split()
        for item in held.items:
            if isinstance(item, items.Activations) and item.array.shape[0] > item.probes:
                # Held for an epoch: only the probes that are drawn.
                item.array = np.array(item.array[:item.probes])
        self._first_look = (held, epochs - snap.step)
        self._submit(self._write_step, fixed)
        return True

    def _decide_first_look(self, t0, step, logged):
        """Writes the held images of the step before training that the fit's
        time budget has room for (:meth:`plan.Planner.first_look`), at the
        end of the first epoch (:meth:`_finish` writes them all if training
        ends before it).

        The later logged steps are priced at their least: the last pass
        timed (once the pass is compiled, until a compiled one has been
        timed, the share of the last eager one that
        :func:`capture.compile_estimate` expects) and the writer's fixed
        records.

        Args:
          t0: when the hook deciding it began.
          step: the step whose hook decides it.
          logged: whether ``step`` is logged (its pass ran in this hook, its
            records are still to be written).
        """
        held, fit_epochs = self._first_look
        self._first_look = None
        m = self._planner.measured
        if self._epochs_timed:
            elapsed = time.perf_counter() - t0
            with self._lock:
                spent = self._hook_seconds + self._writer_cpu + elapsed
            writer = m.fixed_seconds or 0.0
            pass_seconds = m.forward_seconds or 0.0
            if self._probe_pass.mode == "compiled" and self._forward_mode == "eager":
                pass_seconds *= self._probe_pass.estimate.pass_share
            later = self._remaining_steps(step + 1 if logged else step) or 0
            future = later * (pass_seconds + writer) + (writer if logged else 0.0)
            kept = set(self._planner.first_look(held.plan, float(np.median(self._epochs_timed)) * fit_epochs,
                                                fit_epochs, spent, future))
            keep = kept | {None}  # items of no output (none yet at this step) stay
            for item in held.items:
                if isinstance(item, items.Filters) and item.output_key not in keep:
                    self._frozen_written.pop(item.output_key, None)  # not written: a later step draws it
            held.items = [it for it in held.items if getattr(it, "output_key", None) in keep]
        self._submit(self._write_step, held)

    def _take_step(self, step, last):
        """Captures one step on the training thread: returns a :class:`_Step`.

        Only the probe pass, the copies of what gets drawn and the class
        views run here; rendering and writing happen on the writer thread.
        The garbage collector waits during the capture
        (:func:`capture.gc_paused`), not during the class views, whose
        activation maximisation may run for seconds.
        """
        with capture.states_kept(self._states):
            with capture.gc_paused():
                plan, step_items, outputs, result = self._capture(step)
            first = step is None
            class_seconds = 0.0
            if outputs is not None:
                step_items.append(items.Predictions(outputs, frozenset(self._regression), dict(self._multilabel)))
                t0 = time.perf_counter()
                step_items += self._class_items(plan, outputs, step, first, last)
                class_seconds = time.perf_counter() - t0
        snap = _Step(step, step_items, plan)
        snap.class_seconds = class_seconds
        pp = self._probe_pass
        snap.capture = {"mode": pp.mode, "seconds": round(result.seconds, 4),
                        "fallback_reason": pp.fallback_reason,
                        "layer_calls": {"direct": pp.layer_calls.direct, "keras": pp.layer_calls.keras},
                        "direct_failed": pp.direct_failed}
        return snap

    def _capture(self, step):
        """The probe pass, the step's plan and its items (statistics,
        activations, filters): ``(plan, items, outputs, pass result)``."""
        if self._first_result is None:
            self._maybe_compile(step)
        compiling = self._probe_pass.mode == "compiled" and not self._compiled_ran
        result, self._first_result = (self._first_result or self._run_pass()), None
        self._last_stats = result.stats
        for key, why in self._probe_pass.failed.items():
            self._warn("stats:" + key, "statistics of output %r (shape %s, %s) could not be computed and are"
                       " left out: %s" % (key, self._probe_pass.specs[key].shape,
                                          self._probe_pass.specs[key].dtype, why))
        planner = self._planner
        if self._probe_pass.mode == "eager":
            self._eager_seconds = result.seconds
        if not compiling:  # the first compiled call includes optimising the graph
            planner.measured.forward_seconds = result.seconds
            self._forward_mode = self._probe_pass.mode
            if step is not None:
                self._check_pass_cost(result.seconds)
        self._compiled_ran = self._probe_pass.mode == "compiled"
        outputs = self._output_dict(result.model_outputs)
        candidates = self._candidates()
        records = [(k, self._activation.get(self._probe_pass.specs[k].layer_path), v)
                   for k, v in result.stats.items()]
        fixed_bytes, encoded = planner.measured.fixed_bytes, None
        if fixed_bytes is None:
            # No step written yet to measure: the statistics, most of the
            # fixed bytes, are encoded here once (the writer reuses them), as
            # their compressed size per channel varies threefold by model.
            encoded = stats_lib.encode(records)
            fixed_bytes = sum(map(len, encoded)) + plan_lib.fixed_bytes_besides_stats(len(records))
        plan = planner.plan_images(step, self._logged_index, candidates, fixed_bytes)
        self._logged_index += 1
        step_items = [items.ChannelStats(records, encoded), items.HealthScalars(records, self._unit_streaks)]
        for c in candidates:
            lp = plan.layers[c.key]
            if not lp.images:
                continue
            entry = self._by_path[self._probe_pass.specs[c.key].layer_path]
            try:
                arr = capture.to_numpy(result.tensors[c.key])
            except Exception as err:
                self._warn("layer:" + c.key, "activations of layer %r could not be read: %s: %s"
                           % (c.key, type(err).__name__, err))
                continue
            step_items.append(items.Activations(entry, c.key, arr, plan.settings.channels,
                                                plan.settings.probes, plan.settings.tile_pixels,
                                                self._probe_pass.specs[c.key].channels_first))
            if lp.filters:
                kernel = kernels.kernel_of(entry.layer)
                try:
                    drawn = lp.filters_drawn or self.max_filters
                    k = capture.snapshot(kernel.variable, kernels.drawn_part(kernel.kind, kernel.shape, drawn))
                except Exception as err:
                    self._warn("filters:" + entry.path, "filters of layer %r could not be read: %s: %s"
                               % (entry.path, type(err).__name__, err))
                    continue
                step_items.append(items.Filters(entry, kernel.kind, k, kernel.shape,
                                                self._image_shape() if entry.path == self._first_weighted else None,
                                                drawn))
                if not entry.layer.trainable:
                    self._frozen_written[c.key] = step
        return plan, step_items, outputs, result

    def _check_pass_cost(self, seconds):
        """Warns once when the probe pass alone, which the budget never thins,
        costs more than the time budget allows per logged epoch
        (:meth:`plan.Planner.pass_over_budget`): the plan records and the
        panel say it at each step, and this says it where the fit runs."""
        over = self._planner.pass_over_budget(seconds)
        if over is None:
            return
        self._warn("pass_over_budget",
                   "the probe pass alone took %.2f s, %.1f%% of the %.2f s of training per logged epoch, over the"
                   " %g%% time budget. Every layer's statistics come out of it and the budget never thins them,"
                   " so LayerView costs more than its budget in this fit, with images and class views waiting"
                   " for room. every_n_epochs=%d, or fewer probes, keeps the pass within it"
                   % (over.pass_seconds, 100 * over.share, over.logged_seconds,
                      100 * self._planner.budget.time_share, over.every_n_epochs))

    def _output_roles(self, outputs):
        """The outputs trained as regression targets (``{name: loss name}``,
        :func:`tb_layerview.probe.regression_outputs`), those that tag a
        probe with several classes (``{name: threshold}``,
        :func:`tb_layerview.probe.multilabel_outputs`), from the compiled loss
        and the activations of the layers that compute them, and the width of
        the others that are vectors (``{name: units}``)."""
        names = list(outputs)
        activations = {n: stats_lib.activation_of(layer)
                       for n, layer in walk_lib.output_layers(self._watched, names).items()}
        loss = getattr(self._watched, "loss", None)
        regression = probe_lib.regression_outputs(loss, names, activations)
        widths = {n: int(a.shape[1]) for n, a in outputs.items()
                  if n not in regression and getattr(a, "ndim", 0) == 2}
        return regression, probe_lib.multilabel_outputs(loss, names, widths, activations), widths

    def _class_items(self, plan, outputs, step, first, last):
        from tb_layerview import classlog

        if not (self.class_views or self.maximize_units):
            return []
        if self._classlog is None:
            self._classlog = classlog.ClassViewLog(self._watched, self.probe, self.max_classes, self.maximize_steps,
                                                   self.attribution_layer, self.maximize_units,
                                                   self._image_shape(), self._warn, self._input_channels_first())
        log = self._classlog
        regression = self._regression
        available = log.available(outputs, regression)
        if not self.class_views:
            available = [metadata.KIND_MAXIMIZATION] if metadata.KIND_MAXIMIZATION in available else []
        for kind, seconds in log.seconds.items():
            self._planner.measured.class_view_seconds[kind] = seconds
        due = first or last or (step is not None and step % self.maximize_every_n_epochs == 0)
        n_classes = len(classlog.classes_of(outputs, self.max_classes, regression)[0] or [])
        n_targets = n_classes + sum(len(u) for u in self.maximize_units.values())
        decisions = self._planner.allow_class_views(plan, step, due, available, n_targets, self.maximize_steps)
        if not self.class_views:
            probe, why = log.gradient_probe(metadata.KIND_MAXIMIZATION)
            if why is None and decisions.get(metadata.KIND_MAXIMIZATION, {}).get("run"):
                return log.timed(metadata.KIND_MAXIMIZATION, lambda: log.unit_items(probe))
            return []
        return log.step_items(outputs, decisions, regression)

    def _output_dict(self, outputs):
        """The model's outputs as ``{name: array}`` in the model's order
        (:func:`tb_layerview.walk.output_keys`, which the class views index
        by too): what reads "the first output" reads the same one on every
        backend."""
        try:
            to_np = capture.to_numpy
            if isinstance(outputs, dict):
                return {str(k): to_np(outputs[k]) for k in walk_lib.output_keys(self._watched, outputs)}
            if isinstance(outputs, (list, tuple)):
                names = list(getattr(self._watched, "output_names", None) or [])
                if len(names) != len(outputs):
                    names = ["output_%d" % i for i in range(len(outputs))]
                return {n: to_np(v) for n, v in zip(names, outputs)}
            return {"output": to_np(outputs)}
        except Exception as err:
            self._warn("predictions", "predictions were not logged (%s: %s)" % (type(err).__name__, err))
            return None

    def _write_step(self, snap):
        """Renders and writes one step (on the writer thread), measuring its cost."""
        ctx = items.WriteContext(self.class_names, self._labels_by_output(), self.top_k, self.max_filters,
                                 self.filter_input, self.min_spatial, self._warn, self._names_by_output())
        cpu0 = time.thread_time()
        image_cpu = fixed_cpu = 0.0
        image_bytes = fixed_bytes = 0
        event_writer = self._get_writer()
        with writer_lib.writing_to(event_writer), event_writer.one_event(snap.step):
            for item in snap.items:
                c0 = time.thread_time()
                with summary.tally() as counter:
                    try:
                        item.write(snap.step, ctx)
                    except Exception as err:
                        self._warn("write:" + item.what(), "%s were not logged: %s: %s"
                                   % (item.what(), type(err).__name__, err))
                spent = time.thread_time() - c0
                if item.image:
                    image_cpu += spent
                    image_bytes += counter["bytes"]
                else:
                    fixed_cpu += spent
                    fixed_bytes += counter["bytes"]
            if snap.part == "fixed":  # the plan record comes with the images
                snap.written = (time.thread_time() - cpu0, fixed_bytes)
            else:
                before = snap.before or _Step(snap.step, [], snap.plan)
                record = snap.plan.record()
                record["cost"] = {
                    "hook_seconds": round(snap.hook_seconds + before.hook_seconds, 4),
                    "writer_cpu_seconds": round(time.thread_time() - cpu0 + before.written[0], 4),
                    "bytes": image_bytes + fixed_bytes + before.written[1],
                    "image_bytes": image_bytes,
                    "epoch_seconds": self._planner.measured.epoch_seconds,
                    **snap.plan.account,
                }
                record["budget"] = self.budget.record() if self.budget else None
                record["capture"] = snap.capture
                with summary.tally() as counter:
                    try:
                        items.Plan(record).write(snap.step, ctx)
                    except Exception as err:
                        self._warn("write:plan", "the plan record was not logged: %s: %s"
                                   % (type(err).__name__, err))
                fixed_bytes += counter["bytes"]
        self._writer.flush()
        self._learn(snap, image_cpu, fixed_cpu, image_bytes, fixed_bytes, time.thread_time() - cpu0)

    def _learn(self, snap, image_cpu, fixed_cpu, image_bytes, fixed_bytes, cpu):
        """Feeds what a step cost back into the planner's measurements."""
        m = self._planner.measured

        def ema(old, new):
            return new if old is None else 0.5 * old + 0.5 * new

        with self._lock:
            self._writer_cpu += cpu
            self._bytes_written += image_bytes + fixed_bytes
            self._logged_steps += snap.part != "fixed"  # a step written in two parts counts once
        if snap.part != "images":  # the images part's fixed records are its plan record alone
            m.fixed_bytes = ema(m.fixed_bytes, fixed_bytes)
            # Class views have their own share of the budget: not part of the fixed cost.
            m.fixed_seconds = ema(m.fixed_seconds,
                                 fixed_cpu + max(snap.hook_seconds - snap.setup_seconds - snap.class_seconds, 0.0))
        if image_bytes > 0:
            m.seconds_per_image_byte = ema(m.seconds_per_image_byte, image_cpu / image_bytes)
            if snap.plan.estimate_bytes:
                m.bytes_ratio = ema(m.bytes_ratio, image_bytes / snap.plan.estimate_bytes)

    # ------------------------------------------------------------ run info

    def _run_info(self):
        """The model and layer configuration (built on the training thread)."""
        specs = self._probe_pass.specs
        by_layer = {}
        for key, spec in specs.items():
            by_layer.setdefault(spec.layer_path, []).append(key)
        candidates = {c.key for c in self._candidates()}
        reach = walk_lib.InputReach(self._watched, self.probe.input_names(self._watched) or (), self._entries)
        layers = []
        for e in self._entries:
            layer = e.layer
            keys = by_layer.get(e.path, [])
            spec = specs.get(e.path)
            if e.container:
                reason = "nested model: its layers are logged under %s/" % e.path
            elif spec is None:
                reason = "not called in the forward pass of the probe, or its output is not a tensor"
            else:
                reason = self._output_skip_reason(e.path, spec)
            try:
                cfg = summary.config_ready(walk_lib.layer_config(layer))
            except Exception as err:
                cfg = {"error": "get_config failed: %s" % err}
            try:
                params = int(layer.count_params()) if layer.built else 0
            except Exception:
                params = 0
            kinds = []
            if e.path in candidates:
                kinds.append(metadata.KIND_ACTIVATIONS)
            if self.log_filters and self._selected(e) and kernels.kernel_of(layer) and not e.container:
                kinds.append(metadata.KIND_FILTERS)
            layers.append({
                "path": e.path, "name": metadata.display_name(e.path, e.parent),
                "class": e.layer_class, "parent": e.parent, "index": e.index, "nested_model": e.container,
                "output_shape": list(spec.shape) if spec is not None else None,
                "dtype": spec.dtype if spec is not None else None,
                "outputs": [{"path": k, "shape": list(specs[k].shape), "dtype": specs[k].dtype,
                             "inputs": reach.listed(*capture.key_parts(k, {e.path})),
                             "skipped": reason if k == e.path else self._output_skip_reason(k, specs[k])}
                            for k in keys],
                "activation": self._activation.get(e.path),
                "trainable": bool(getattr(layer, "trainable", False)),  # a keras.ops operation has none
                "per_time_step": e.per_time_step,
                "params": params, "calls": self._probe_pass.calls.get(e.path, 0), "config": cfg,
                "kinds": kinds, "skipped": reason,
            })
        model = self._watched
        try:
            total = int(model.count_params())
        except Exception:
            total = None
        status = dict(self._classlog.status) if self._classlog is not None else {}
        return {
            "format_version": metadata.FORMAT_VERSION,
            "model": {"name": model.name, "class": type(model).__name__, "params": total,
                      "backend": keras.backend.backend(), "keras_version": keras.__version__,
                      "dtype_policy": str(getattr(model.dtype_policy, "name", model.dtype_policy))},
            "probe_count": self.probe.count,
            "class_names": self.class_names,
            "every_n_epochs": self.every_n_epochs,
            "class_views": status,
            "budget": self.budget.record() if self.budget else None,
            "capture": {"mode": self._probe_pass.mode, "fallback_reason": self._probe_pass.fallback_reason},
            "layers": layers,
        }

    def _describe(self, step):
        """Submits the run information (configuration, probes) at ``step``
        unless it was written for the model being logged."""
        if self._described is self._prepared_for:
            return
        info = self._guarded(self._run_info)
        if info is not None:
            self._submit(self._write_run_info, step, info)
            self._described = self._prepared_for

    def _write_run_info(self, step, info):
        # This runs on the writer thread, which must not read self.model: on
        # JAX, Keras' model property writes the training state back into the
        # variables, and doing that during a train step hands the step buffers
        # it has already donated. The model seen by _prepare is the same one.
        model = self._prepared_for
        self._check_class_names()
        with writer_lib.writing_to(self._get_writer()):
            summary.config(info, step=step)
            summary.probes(self.probe.named(model), step=step, labels=self._labels_by_output(),
                           class_names=self._names_by_output() or self.class_names,
                           image_shape=self.input_image_shape, channels_first=self._input_channels_first())

    def _check_class_names(self):
        """Warns when ``class_names`` fit none of the outputs that predict
        classes (the first pass's, regression heads left out)."""
        widths = self._class_widths
        if self.class_names is None or not widths or len(self.class_names) in widths.values():
            return
        if len(widths) == 1:
            said = "the model's output has %d classes" % next(iter(widths.values()))
        else:
            said = "the model's class outputs have %s classes" % ", ".join(
                "%d (%s)" % (w, name) for name, w in widths.items())
        self._warn("class_names", "class_names has %d names but %s" % (len(self.class_names), said))
