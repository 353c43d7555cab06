"""The ``LayerView`` Keras callback."""

import json
import os
import queue
import re
import threading
import time
import warnings

import numpy as np
import keras

from tb_layerview import capture
from tb_layerview import metadata
from tb_layerview import render
from tb_layerview import summary

#: Probes are drawn for every layer at every logged epoch; more than this is a
#: mistake (a whole data set passed as probe), not a wish.
MAX_PROBES = 64


class LayerViewWarning(UserWarning):
    """A logging problem that did not stop training."""


def _is_chief():
    """True unless TF_CONFIG names this process a non-chief worker."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return True
    try:
        cfg = json.loads(raw)
    except ValueError:
        return True
    task = cfg.get("task") or {}
    kind, index = task.get("type"), int(task.get("index", 0))
    cluster = cfg.get("cluster") or {}
    if kind in ("chief", "master"):
        return True
    if kind == "worker" and index == 0 and not (cluster.get("chief") or cluster.get("master")):
        return True
    return kind is None


def _as_array(value, what):
    try:
        arr = np.asarray(value)
    except Exception as e:
        raise TypeError("%s must be array-like; got %s (%s)" % (what, type(value).__name__, e)) from None
    if arr.dtype == object:
        raise TypeError("%s must be a numeric array; got an object array of shape %s"
                        % (what, arr.shape))
    if arr.ndim == 0:
        raise ValueError("%s needs a leading batch axis; got a scalar %r" % (what, arr.item()))
    return arr


def _split_probe(probe):
    """Returns ``(inputs, labels)``; ``inputs`` is an array, list or dict."""
    labels = None
    if isinstance(probe, tuple):
        if len(probe) != 2:
            raise ValueError("probe given as a tuple must be (x, y); got a tuple of %d items"
                             % len(probe))
        probe, labels = probe
    if isinstance(probe, dict):
        inputs = {str(k): _as_array(v, "probe[%r]" % k) for k, v in probe.items()}
        arrays = list(inputs.values())
    elif isinstance(probe, list):
        inputs = [_as_array(v, "probe[%d]" % i) for i, v in enumerate(probe)]
        arrays = inputs
    else:
        inputs = _as_array(probe, "probe")
        arrays = [inputs]
    if not arrays:
        raise ValueError("probe is empty: pass at least one input array")
    n = arrays[0].shape[0]
    for a in arrays:
        if a.shape[0] != n:
            raise ValueError("probe inputs disagree on the number of samples: %s"
                             % [a.shape[0] for a in arrays])
    if n < 1 or n > MAX_PROBES:
        raise ValueError("probe must hold 1 to %d samples (each is drawn for every layer at every"
                         " logged epoch); got %d. Pass a slice such as x[:8]" % (MAX_PROBES, n))
    if labels is not None:
        labels = _as_array(labels, "probe labels (y)")
        if labels.shape[0] != n:
            raise ValueError("probe labels have %d samples but the inputs have %d"
                             % (labels.shape[0], n))
    return inputs, labels


def _compile_patterns(value, what):
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    try:
        items = list(value)
    except TypeError:
        raise TypeError("%s must be a list of layer names or regular expressions; got %r"
                        % (what, value)) from None
    out = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError("%s must hold strings; got %r" % (what, item))
        try:
            out.append(re.compile(item))
        except re.error as e:
            raise ValueError("%s: %r is not a valid regular expression (%s)" % (what, item, e)) from None
    return out


def _matches(patterns, path, name):
    return any(p.fullmatch(path) or p.fullmatch(name) or p.pattern in (path, name) for p in patterns)


def _positive_int(value, what, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError("%s must be an integer >= %d; got %r" % (what, minimum, value))
    return int(value)


def _unit_spec(value):
    """Validates ``maximize_units``: {layer: [unit indices] or a count}."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError("maximize_units must be a dict {layer name: unit indices or a count}; got %r"
                        % (value,))
    out = {}
    for name, units in value.items():
        if not isinstance(name, str):
            raise TypeError("maximize_units keys must be layer names; got %r" % (name,))
        if isinstance(units, (int, np.integer)) and not isinstance(units, bool):
            units = list(range(_positive_int(units, "maximize_units[%r]" % name)))
        try:
            units = [int(u) for u in units]
        except (TypeError, ValueError):
            raise TypeError("maximize_units[%r] must be unit indices or a count; got %r" % (name, units)) from None
        if not units or min(units) < 0:
            raise ValueError("maximize_units[%r] must name units >= 0; got %r" % (name, units))
        out[name] = units
    return out


def _value_range(probe):
    """(low, high) of the probe's values, widened when the probe is constant."""
    lo, hi = float(np.nanmin(probe)), float(np.nanmax(probe))
    return (lo, hi) if hi > lo else (lo - 1.0, hi + 1.0)


def _to_numpy(t):
    return np.asarray(keras.ops.convert_to_numpy(t))


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

    def stop(self):
        """Finishes every pending job, then ends the thread."""
        self._queue.put(None)
        self._thread.join()


class _Entry:
    """A layer in model order, with its path and enclosing model."""

    __slots__ = ("layer", "path", "parent", "index", "container")

    def __init__(self, layer, path, parent, index, container):
        self.layer, self.path, self.parent, self.index = layer, path, parent, index
        self.container = container


def _walk(model):
    """Depth-first list of the model's layers; nested models become paths."""
    entries, seen = [], set()

    def visit(m, prefix):
        for layer in getattr(m, "layers", []):
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            if isinstance(layer, keras.layers.InputLayer):
                continue
            path = prefix + layer.name
            container = isinstance(layer, keras.Model)
            entries.append(_Entry(layer, path, prefix[:-1], len(entries), container))
            if container:
                visit(layer, path + "/")

    visit(model, "")
    return entries


def _kernel_kind(layer):
    """The :func:`render.kernel_tiles` kind of a layer's kernel, or None."""
    cls = type(layer).__name__
    # Separable convolutions keep depthwise_kernel; DepthwiseConv layers call it kernel.
    k = getattr(layer, "depthwise_kernel", None)
    if k is None and "Depthwise" in cls:
        k = getattr(layer, "kernel", None)
    if k is not None and hasattr(k, "shape"):
        return ("depthwise" if len(k.shape) == 4 else "depthwise1d"), k
    kernel = getattr(layer, "kernel", None)
    if kernel is None or not hasattr(kernel, "shape"):
        return None, None
    rank = len(kernel.shape)
    if isinstance(layer, keras.layers.Dense) and rank == 2:
        return "dense", kernel
    if "Conv" not in cls:
        return None, None
    if "Transpose" in cls:
        if rank == 4:
            return "conv2d_transpose", kernel
        if rank == 3:
            return "conv1d_transpose", kernel
        if rank == 5:
            return "conv3d_transpose", kernel
    return {3: "conv1d", 4: "conv2d", 5: "conv3d"}.get(rank), kernel


def _normalise_kernel(kind, k):
    """Brings 1-D/3-D transposed and 1-D depthwise kernels to a render kind."""
    if kind == "depthwise1d":  # (k, in, mult) -> (1, k, in, mult)
        return "depthwise", k[None]
    if kind == "conv1d_transpose":  # (k, out, in) -> (k, in, out)
        return "conv1d", np.swapaxes(k, -1, -2)
    if kind == "conv3d_transpose":
        return "conv3d", np.swapaxes(k, -1, -2)
    return kind, k


class LayerView(keras.callbacks.Callback):
    """Logs every layer's view of a fixed probe, every epoch, for TensorBoard.

    At the start of training and after every ``every_n_epochs`` epochs, the
    probe inputs are passed through the model once (in inference mode) and,
    for every selected layer, the output of each probe sample is drawn as an
    8-bit image with per-channel ranges and statistics stored beside it. The
    kernels of convolution and dense layers are drawn as filters; the model's
    configuration, the probe inputs and the model's predictions for them are
    logged too. Open TensorBoard on the same log directory and pick the
    "Layer View" tab.

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
        true labels. 1 to 64 samples.
      class_names: names of the output classes, for predictions.
      layers: layer names, paths (``"encoder/conv1"``) or regular expressions
        to log; all displayable layers when None.
      exclude: names, paths or regular expressions of layers to leave out.
      every_n_epochs: log after every this many epochs (the last epoch is
        always logged).
      log_initial: log the state before training as step ``initial_epoch``.
      log_filters: log kernels of convolution and dense layers.
      max_channels: channels drawn per layer (the first ones).
      max_tile_pixels: a bigger channel map is block-averaged to this size.
      min_spatial: an (H, W, C) output with H or W below this is drawn as a
        vector (e.g. after global pooling).
      min_size: outputs with fewer values per sample are skipped.
      max_filters: filters (or dense units) drawn per layer.
      filter_input: ``"first"`` draws each filter's first input channel,
        ``"mean"`` the mean over input channels (3-channel filters: RGB).
      input_image_shape: the image shape of a flat input (e.g. ``(28, 28)``);
        guessed for perfect squares >= 64 when None.
      top_k: classes kept per probe in the predictions.
      background: render and write on a background thread, so that the
        training thread only runs the probe's forward pass and copies the
        kernels; ``on_train_end`` waits for the writes to finish.
      class_views: log what the network "sees" per class: the back-query of
        Dense networks with invertible activations and attribution maps of
        each probe (every logged epoch), and activation maximisation (every
        ``maximize_every_n_epochs``); see :mod:`tb_layerview.classviews`.
        Single-input models on the TensorFlow backend.
      max_classes: class views cover the first this many classes.
      maximize_every_n_epochs: activation maximisation runs at the first
        logged step, every this many epochs and at the last epoch.
      maximize_steps: gradient-ascent steps per activation maximisation.
      attribution_layer: the conv layer (name) for Grad-CAM; the last conv
        layer when None (gradient x input saliency without one).
      maximize_units: ``{layer name or path: units}``, units being a list of
        unit (channel) indices or a count of first units: activation
        maximisation of those units, at the same epochs as the classes'.
    """

    def __init__(self, log_dir, probe, class_names=None, layers=None, exclude=None,
                 every_n_epochs=1, log_initial=True, log_filters=True, max_channels=64,
                 max_tile_pixels=4096, min_spatial=2, min_size=1, max_filters=64,
                 filter_input="first", input_image_shape=None, top_k=5, background=True,
                 class_views=True, max_classes=10, maximize_every_n_epochs=5, maximize_steps=64,
                 attribution_layer=None, maximize_units=None):
        super().__init__()
        if isinstance(log_dir, os.PathLike):
            log_dir = os.fspath(log_dir)
        if not isinstance(log_dir, str) or not log_dir:
            raise ValueError("log_dir must be a non-empty path string; got %r" % (log_dir,))
        self.log_dir = log_dir
        self._inputs, self._labels = _split_probe(probe)
        if class_names is not None:
            if isinstance(class_names, str) or not all(isinstance(c, str) for c in class_names):
                raise TypeError("class_names must be a list of strings; got %r" % (class_names,))
            class_names = list(class_names)
        self.class_names = class_names
        self._include = _compile_patterns(layers, "layers")
        self._exclude = _compile_patterns(exclude, "exclude") or []
        self.every_n_epochs = _positive_int(every_n_epochs, "every_n_epochs")
        self.max_channels = _positive_int(max_channels, "max_channels")
        self.max_tile_pixels = _positive_int(max_tile_pixels, "max_tile_pixels", 16)
        self.min_spatial = _positive_int(min_spatial, "min_spatial")
        self.min_size = _positive_int(min_size, "min_size")
        self.max_filters = _positive_int(max_filters, "max_filters")
        self.top_k = _positive_int(top_k, "top_k")
        if filter_input not in ("first", "mean"):
            raise ValueError('filter_input must be "first" or "mean"; got %r' % (filter_input,))
        self.filter_input = filter_input
        if input_image_shape is not None:
            shape = tuple(input_image_shape)
            if len(shape) not in (2, 3) or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
                raise ValueError("input_image_shape must be (h, w) or (h, w, c) of positive ints;"
                                 " got %r" % (input_image_shape,))
            input_image_shape = shape
        self.input_image_shape = input_image_shape
        self.log_initial = bool(log_initial)
        self.log_filters = bool(log_filters)
        self.background = bool(background)
        self.class_views = bool(class_views)
        self.max_classes = _positive_int(max_classes, "max_classes")
        self.maximize_every_n_epochs = _positive_int(maximize_every_n_epochs, "maximize_every_n_epochs")
        self.maximize_steps = _positive_int(maximize_steps, "maximize_steps")
        if attribution_layer is not None and not isinstance(attribution_layer, str):
            raise TypeError("attribution_layer must be a layer name; got %r" % (attribution_layer,))
        self.attribution_layer = attribution_layer
        self.maximize_units = _unit_spec(maximize_units)
        self._class_status = {}
        self._writer = None
        self._worker = None
        self._pending_initial = None
        self._started = True
        self._entries = None
        self._warned = set()
        #: Seconds spent in this callback's hooks, per hook name (for benchmarks).
        self.timings = {}

    # ----------------------------------------------------------------- hooks

    def on_train_begin(self, logs=None):
        t0 = time.perf_counter()
        try:
            if not _is_chief():
                return
            self._check_log_dir()
            first_pass = self._capture()  # raises a clear error if the probe does not fit
            # The state before training is snapshotted now and written once
            # the first epoch's number (the step) is known.
            self._pending_initial = self._snapshot(first_pass, maximize=True) if self.log_initial else None
            self._started = False
        finally:
            self._add_time("on_train_begin", t0)

    def on_epoch_begin(self, epoch, logs=None):
        if self._started:
            return
        self._started = True
        t0 = time.perf_counter()
        try:
            info = self._guarded(self._run_info)
            if info is not None:
                self._submit(self._write_run_info, epoch, info)
            if self._pending_initial is not None:
                self._submit(self._write_snapshot, epoch, self._pending_initial)
            self._pending_initial = None
        finally:
            self._add_time("on_epoch_begin", t0)

    def on_epoch_end(self, epoch, logs=None):
        if not _is_chief():
            return
        step = epoch + 1
        last = self.params.get("epochs") if self.params else None
        if step % self.every_n_epochs and step != last:
            return
        t0 = time.perf_counter()
        try:
            due = step % self.maximize_every_n_epochs == 0 or step == last
            snap = self._guarded(lambda: self._snapshot(self._capture(), maximize=due))
            if snap is not None:
                self._submit(self._write_snapshot, step, snap)
        finally:
            self._add_time("on_epoch_end", t0)

    def on_train_end(self, logs=None):
        t0 = time.perf_counter()
        self.close()
        self._add_time("on_train_end", t0)

    # ------------------------------------------------------------ public API

    def log(self, step):
        """Logs the current state at ``step`` (for custom training loops).

        Call ``set_model(model)`` once first. The run information (model
        configuration, probes) is written on the first call.
        """
        if self.model is None:
            raise RuntimeError("LayerView.log needs a model: call set_model(model) first")
        first = self._entries is None
        if first:
            self._check_log_dir()
        snap = self._snapshot(self._capture(), maximize=first or step % self.maximize_every_n_epochs == 0)
        if first:
            self._write_run_info(step, self._run_info())
        self._write_snapshot(step, snap)
        self.flush()

    def flush(self):
        """Flushes the event file, if one was opened."""
        if self._writer is not None:
            self._writer.flush()

    def close(self):
        """Waits for pending writes, then flushes and closes the event file.

        A later log opens a new event file.
        """
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        if self._writer is not None:
            try:
                self._writer.flush()
                self._writer.close()
            except Exception as e:  # closing must not fail a finished training
                self._warn("close", "could not close the event file in %r: %s" % (self.log_dir, e))
            self._writer = None

    # -------------------------------------------------------------- internals

    def _add_time(self, hook, t0):
        self.timings[hook] = self.timings.get(hook, 0.0) + time.perf_counter() - t0

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
        import tensorflow as tf

        probe_file = self.log_dir.rstrip("/") + "/.tb_layerview_write_check"
        try:
            tf.io.gfile.makedirs(self.log_dir)
            with tf.io.gfile.GFile(probe_file, "w") as f:
                f.write("ok")
            tf.io.gfile.remove(probe_file)
        except Exception as e:
            raise OSError("LayerView cannot write to log_dir %r: %s" % (self.log_dir, e)) from None

    def _get_writer(self):
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        return self._writer

    def _model_inputs(self):
        """The probe in the structure the model's call expects."""
        inputs = self._inputs
        if isinstance(inputs, dict):
            names = [getattr(t, "name", None) for t in (getattr(self.model, "inputs", None) or [])]
            if names and set(names) <= set(inputs):
                return {k: inputs[k] for k in names}
        return inputs

    def _selected(self, entry):
        path, name = entry.path, entry.layer.name
        if self._include is not None and not _matches(self._include, path, name):
            return False
        return not _matches(self._exclude, path, name)

    def _capture(self):
        """One inference pass of the probe, recording every layer's output
        (see :mod:`tb_layerview.capture` for why it wraps ``call``).

        Returns:
          ``(outputs_by_path, model_outputs)``.
        """
        model = self.model
        entries = _walk(model)
        self._entries = entries
        with capture.recording({e.path: e.layer for e in entries}) as (captured, calls):
            try:
                outputs = model(self._model_inputs(), training=False)
            except Exception as err:
                raise ValueError(self._probe_mismatch(err)) from None
        arrays = {}
        for path, t in captured.items():
            try:
                arrays[path] = _to_numpy(t)
            except Exception:
                arrays[path] = None
        self._calls = calls
        self._last_arrays = arrays
        return arrays, outputs

    def _probe_mismatch(self, err):
        def shapes(x):
            if isinstance(x, dict):
                return {k: tuple(v.shape) for k, v in x.items()}
            if isinstance(x, list):
                return [tuple(v.shape) for v in x]
            return tuple(x.shape)

        expected = None
        try:
            expected = [tuple(t.shape) for t in self.model.inputs]
        except Exception:
            pass
        return ("LayerView: the probe does not fit the model %r: the model expects inputs %s, the"
                " probe has shape %s (%s: %s)" % (self.model.name, expected or "(unknown)",
                                                  shapes(self._inputs), type(err).__name__,
                                                  str(err).strip().splitlines()[0] if str(err).strip() else ""))

    def _output_dict(self, outputs):
        if isinstance(outputs, dict):
            return {str(k): _to_numpy(v) for k, v in outputs.items()}
        if isinstance(outputs, (list, tuple)):
            names = list(getattr(self.model, "output_names", None) or [])
            if len(names) != len(outputs):
                names = ["output_%d" % i for i in range(len(outputs))]
            return {n: _to_numpy(v) for n, v in zip(names, outputs)}
        return {"output": _to_numpy(outputs)}

    def _input_dict(self):
        """The probe as {input name: array}, named after the model's inputs."""
        inputs = self._inputs
        if isinstance(inputs, dict):
            return dict(inputs)
        arrays = inputs if isinstance(inputs, list) else [inputs]
        try:
            names = [t.name for t in self.model.inputs]
        except Exception:  # subclassed or unbuilt models have no symbolic inputs
            names = []
        if len(names) != len(arrays) or len(set(names)) != len(names):
            names = ["input_%d" % i for i in range(len(arrays))] if len(arrays) > 1 else ["input"]
        return dict(zip(names, arrays))

    def _image_shape(self):
        """The image shape of the (first) input, for dense-unit filters."""
        if self.input_image_shape is not None:
            return self.input_image_shape
        first = next(iter(self._input_dict().values()))
        return render.image_shape_of(first.shape[1:])

    def _skip_reason(self, entry, out):
        if entry.container:
            return "nested model: its layers are logged under %s/" % entry.path
        if not self._selected(entry):
            return "not selected (layers/exclude arguments)"
        if out is None:
            return "not called in the forward pass of the probe, or its output is not a tensor"
        if out.dtype.kind not in "fiub" and str(out.dtype) != "bfloat16":
            return "output dtype %s cannot be drawn" % out.dtype
        if out.ndim < 1:
            return "output has no batch axis (shape %s)" % (out.shape,)
        per_sample = int(np.prod(out.shape[1:])) if out.ndim > 1 else 1
        if per_sample < self.min_size:
            return "output has %d values per sample, fewer than min_size=%d" % (per_sample, self.min_size)
        return None

    def _run_info(self):
        """The model and layer configuration (built on the training thread)."""
        arrays = self._last_arrays
        layers = []
        for e in self._entries:
            layer = e.layer
            out = arrays.get(e.path)
            reason = self._skip_reason(e, out)
            try:
                cfg = summary.json_ready(layer.get_config())
            except Exception as err:
                cfg = {"error": "get_config failed: %s" % err}
            try:
                params = int(layer.count_params()) if layer.built else 0
            except Exception:
                params = 0
            kinds = []
            if reason is None:
                kinds.append(metadata.KIND_ACTIVATIONS)
            if self.log_filters and self._selected(e) and _kernel_kind(layer)[0] and not e.container:
                kinds.append(metadata.KIND_FILTERS)
            layers.append({
                "path": e.path, "name": layer.name, "class": type(layer).__name__,
                "parent": e.parent, "index": e.index, "nested_model": e.container,
                "output_shape": list(out.shape[1:]) if out is not None else None,
                "dtype": str(out.dtype) if out is not None else None,
                "params": params, "calls": self._calls.get(e.path, 0), "config": cfg,
                "kinds": kinds, "skipped": reason,
            })
        model = self.model
        try:
            total = int(model.count_params())
        except Exception:
            total = None
        info = {
            "format_version": metadata.FORMAT_VERSION,
            "model": {"name": model.name, "class": type(model).__name__, "params": total,
                      "backend": keras.backend.backend(), "keras_version": keras.__version__,
                      "dtype_policy": str(getattr(model.dtype_policy, "name", model.dtype_policy))},
            "probe_count": int(next(iter(self._input_dict().values())).shape[0]),
            "class_names": self.class_names,
            "every_n_epochs": self.every_n_epochs,
            "class_views": dict(self._class_status),
            "layers": layers,
        }
        return info

    def _write_run_info(self, step, info):
        with self._get_writer().as_default():
            summary.config(info, step=step)
            summary.probes(self._input_dict(), step=step, labels=self._labels,
                           class_names=self.class_names, image_shape=self.input_image_shape)

    def _snapshot(self, capture, maximize=False):
        """Copies what a step needs while the model is still in that state.

        Runs on the training thread: layer outputs are already numpy arrays;
        kernels are copied here because training changes them afterwards.
        Rendering and writing happen later, in :meth:`_write_snapshot`.
        """
        arrays, outputs = capture
        image_shape = self._image_shape()
        first_weighted = True
        items = []
        for e in self._entries:
            if e.container:
                continue
            out = arrays.get(e.path)
            selected = self._selected(e)
            if selected and self._skip_reason(e, out) is None:
                items.append(("activations", e, out))
            if self.log_filters and selected:
                kind, kernel = _kernel_kind(e.layer)
                if kind is not None:
                    try:
                        k = np.array(_to_numpy(kernel))
                        items.append(("filters", e, kind, k, image_shape if first_weighted else None))
                    except Exception as err:
                        self._warn("filters:" + e.path, "filters of layer %r could not be read: %s: %s"
                                   % (e.path, type(err).__name__, err))
            if e.layer.weights:
                first_weighted = False
        try:
            outputs = self._output_dict(outputs)
        except Exception as err:
            self._warn("predictions", "predictions were not logged (%s: %s)" % (type(err).__name__, err))
            outputs = None
        t0 = time.perf_counter()
        if self.class_views and outputs is not None:
            items += self._class_view_items(outputs, maximize)
        if self.maximize_units and maximize:
            items += self._unit_items()
        self._add_time("class_views", t0)
        return items, outputs

    def _classes(self, outputs):
        """The class indices for class views, or a reason why there are none."""
        first = next(iter(outputs.values()))
        if first.ndim != 2:
            return None, "the model's output of shape %s is not a vector of class scores" % (first.shape[1:],)
        k = first.shape[1]
        return (list(range(min(k, self.max_classes))) if k > 1 else [0, 1]), None

    def _set_status(self, kind, available, reason=None, **more):
        status = {"available": bool(available), "reason": reason}
        status.update(more)
        self._class_status[kind] = status

    def _gradient_probe(self):
        """The probe as one float array to take input gradients of, or why there is none."""
        if isinstance(self._inputs, (list, dict)):
            return None, "needs a single-input model"
        if keras.backend.backend() != "tensorflow":
            return None, "needs the TensorFlow backend (this is %s)" % keras.backend.backend()
        probe = np.asarray(self._inputs)
        if not np.issubdtype(probe.dtype, np.floating):
            return None, "the input (dtype %s, e.g. token ids) is not differentiable" % probe.dtype
        return probe, None

    def _class_view_items(self, outputs, maximize):
        """Back-query, activation maximisation and attribution of the current model."""
        from tb_layerview import classviews

        items = []
        classes, reason = self._classes(outputs)
        if reason is None and isinstance(self._inputs, (list, dict)):
            reason = "class views need a single-input model"
        if reason is not None:
            for kind in metadata.CLASS_KINDS:
                self._set_status(kind, False, reason)
            return items
        image_shape = self._image_shape()
        try:
            plan = classviews.backquery_plan(self.model)
            images = classviews.backquery(plan, classviews.class_targets(plan, classes))
            items.append(("class", metadata.KIND_BACKQUERY, images, classes, image_shape, None))
            self._set_status(metadata.KIND_BACKQUERY, True)
        except classviews.BackQueryUnavailable as err:
            self._set_status(metadata.KIND_BACKQUERY, False, str(err))
        except Exception as err:
            self._set_status(metadata.KIND_BACKQUERY, False, "back-query failed: %s: %s" % (type(err).__name__, err))
            self._warn("backquery", "back-query was not logged (%s: %s)" % (type(err).__name__, err))
        probe, why = self._gradient_probe()
        if why is not None:
            for kind in (metadata.KIND_MAXIMIZATION, metadata.KIND_ATTRIBUTION):
                self._set_status(kind, False, why)
            return items
        if maximize:
            try:
                lo, hi = _value_range(probe)
                images, history = classviews.maximize(self.model, classes, steps=self.maximize_steps,
                                                      value_range=(lo, hi), input_shape=probe.shape[1:])
                extra = {"scores": history[-1].tolist(), "history": history.tolist(),
                         "params": {"steps": self.maximize_steps, "value_range": [lo, hi]}}
                items.append(("class", metadata.KIND_MAXIMIZATION, images, classes, image_shape, extra))
                self._set_status(metadata.KIND_MAXIMIZATION, True)
            except Exception as err:
                self._set_status(metadata.KIND_MAXIMIZATION, False, "%s: %s" % (type(err).__name__, err))
                self._warn("maximization", "activation maximisation was not logged (%s: %s)"
                           % (type(err).__name__, err))
        try:
            first = next(iter(outputs.values()))
            predicted = (np.argmax(first, axis=1) if first.shape[1] > 1
                         else (first[:, 0] >= 0.5).astype(int)).tolist()
            targets = [{"probe": i, "class": int(c), "which": "predicted"} for i, c in enumerate(predicted)]
            if self._labels is not None:
                labels = np.asarray(self._labels)
                true = np.argmax(labels.reshape(len(labels), -1), axis=1) if labels.ndim > 1 and labels.shape[-1] > 1 \
                    else labels.reshape(len(labels)).astype(int)
                targets += [{"probe": i, "class": int(c), "which": "true"} for i, c in enumerate(true)]
            inputs = np.concatenate([probe] * (len(targets) // len(probe)))
            maps, info = classviews.attribution(self.model, inputs, [t["class"] for t in targets],
                                                layer=self.attribution_layer)
            items.append(("attribution", maps, targets, info))
            self._set_status(metadata.KIND_ATTRIBUTION, True, method=info["method"], layer=info["layer"])
        except Exception as err:
            self._set_status(metadata.KIND_ATTRIBUTION, False, "%s: %s" % (type(err).__name__, err))
            self._warn("attribution", "attribution maps were not logged (%s: %s)" % (type(err).__name__, err))
        return items

    def _unit_items(self):
        """Activation maximisation of the units named in ``maximize_units``."""
        from tb_layerview import classviews

        items = []
        probe, why = self._gradient_probe()
        if why is not None:
            self._warn("units", "maximize_units: no units were maximised: %s" % why)
            return items
        value_range = _value_range(probe)
        image_shape = self._image_shape()
        by_name = {}
        for e in self._entries:
            by_name.setdefault(e.path, e)
            by_name.setdefault(e.layer.name, e)
        for name, units in self.maximize_units.items():
            entry = by_name.get(name)
            if entry is None:
                self._warn("units:" + name, "maximize_units names layer %r, which the model does not have"
                           " (layers: %s)" % (name, ", ".join(e.path for e in self._entries)))
                continue
            try:
                images, history = classviews.maximize(self.model, layer=entry.layer, units=units,
                                                      steps=self.maximize_steps, value_range=value_range,
                                                      input_shape=probe.shape[1:])
                extra = {"scores": history[-1].tolist(), "history": history.tolist(),
                         "params": {"steps": self.maximize_steps, "value_range": list(value_range)}}
                items.append(("units", entry, images, units, image_shape, extra))
            except Exception as err:
                self._warn("units:" + name, "units of layer %r were not maximised (%s: %s)"
                           % (name, type(err).__name__, err))
        return items

    def _write_snapshot(self, step, snap):
        items, outputs = snap
        with self._get_writer().as_default():
            for item in items:
                if item[0] == "activations":
                    self._log_layer(item[1], item[2], step)
                elif item[0] == "filters":
                    self._log_filters(item[1], step, *item[2:])
                elif item[0] == "units":
                    _, e, images, units, image_shape, extra = item
                    summary.unit_images(e.path, images, step=step, units=units,
                                        layer_class=type(e.layer).__name__, layer_index=e.index,
                                        parent=e.parent, image_shape=image_shape, extra=extra)
                elif item[0] == "class":
                    _, kind, images, classes, image_shape, extra = item
                    summary.class_images(kind, images, step=step, classes=classes,
                                         class_names=self.class_names, image_shape=image_shape, extra=extra)
                else:
                    _, maps, targets, info = item
                    summary.attribution_maps(maps, step=step, targets=targets, **info)
            if outputs is not None:
                try:
                    summary.predictions(outputs, step=step, class_names=self.class_names,
                                        top_k=self.top_k, labels=self._labels)
                except Exception as err:
                    self._warn("predictions", "predictions were not logged (%s: %s)"
                               % (type(err).__name__, err))
        self._writer.flush()

    def _log_layer(self, e, out, step):
        try:
            bad = int(np.count_nonzero(~np.isfinite(render.to_float(out))))
            if bad:
                self._warn("nan:" + e.path, "layer %r produced %d NaN/Inf values on the probe at"
                           " step %d; they are counted and drawn in a distinct colour"
                           % (e.path, bad, step))
            fmt = getattr(e.layer, "data_format", None)
            summary.activations(e.path, out, step=step, layer_class=type(e.layer).__name__,
                                layer_index=e.index, parent=e.parent,
                                max_channels=self.max_channels,
                                max_tile_pixels=self.max_tile_pixels,
                                min_spatial=self.min_spatial,
                                channels_first=fmt == "channels_first")
        except Exception as err:
            self._warn("layer:" + e.path, "activations of layer %r (%s, output shape %s) were not"
                       " logged: %s: %s" % (e.path, type(e.layer).__name__,
                                             getattr(out, "shape", None), type(err).__name__, err))

    def _log_filters(self, e, step, kind, k, image_shape):
        try:
            kind, k = _normalise_kernel(kind, k)
            if kind != "dense" or (image_shape is not None and k.shape[0] != int(np.prod(image_shape))):
                image_shape = None
            summary.filters(e.path, k, step=step, kind=kind, layer_class=type(e.layer).__name__,
                            layer_index=e.index, parent=e.parent, max_filters=self.max_filters,
                            input_channel=self.filter_input, image_shape=image_shape)
        except Exception as err:
            self._warn("filters:" + e.path, "filters of layer %r (%s, kernel shape %s) were not"
                       " logged: %s: %s" % (e.path, type(e.layer).__name__, tuple(k.shape),
                                             type(err).__name__, err))
