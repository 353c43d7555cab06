"""Class views as LayerView logs them: which ones a model supports, and the
items of one step (:mod:`tb_layerview.classviews` has the algorithms).

Every decision is kept in ``status`` ({kind: {"available", "reason", ...}}),
which the run's configuration carries so the panel can say why a view is
missing.
"""

import time

import numpy as np

from tb_layerview import classviews
from tb_layerview import gradients
from tb_layerview import items
from tb_layerview import metadata
from tb_layerview import probe as probe_lib


def class_output(outputs, regression=None):
    """The name of the output class views explain, or why there is none.

    It is the first of the model's outputs (in the model's order,
    :func:`tb_layerview.walk.output_keys`, the same on every backend) that
    gives a vector of scores per probe and is not trained
    with a regression loss: a box-regression head before a classifier
    leaves the classifier to explain. The panel judges predictions by the
    same output.

    Args:
      outputs: ``{name: array (probes, ...)}`` of the model's outputs.
      regression: ``{name: loss name}`` of the outputs trained as regression
        targets (:func:`tb_layerview.probe.regression_outputs`).

    Returns:
      ``(name, None)``, or ``(None, reason)``.
    """
    regression = regression or {}
    why = []
    for name, value in outputs.items():
        if name in regression:
            why.append("output %r is trained with a regression loss (%s)" % (name, regression[name]))
        elif np.ndim(value) != 2:
            why.append("output %r of shape %s is not a vector of class scores"
                       % (name, tuple(np.shape(value)[1:])))
        else:
            return name, None
    if len(why) == 1:
        name, value = next(iter(outputs.items()))
        if name in regression:
            return None, ("the model's output %r is trained with a regression loss (%s), not as class scores"
                          % (name, regression[name]))
        return None, "the model's output of shape %s is not a vector of class scores" % (tuple(np.shape(value)[1:]),)
    return None, "no output of the model gives class scores: %s" % "; ".join(why)


def _which_output(outputs, output):
    """``{"output": name}`` for a model of several outputs (which one a class view explains), else ``{}``."""
    return {"output": output} if len(outputs) > 1 else {}


def classes_of(outputs, max_classes, regression=None):
    """The class indices for class views, or why there are none.

    Class views read the output :func:`class_output` picks; ``regression``
    is as there.

    Returns:
      ``(classes, None)``, or ``(None, reason)``.
    """
    name, why = class_output(outputs, regression)
    if why is not None:
        return None, why
    k = outputs[name].shape[1]
    return (list(range(min(k, max_classes))) if k > 1 else [0, 1]), None


class ClassViewLog:
    """Builds the class-view items of each logged step.

    Args:
      model: the Keras model.
      probe: the :class:`tb_layerview.probe.Probe`.
      max_classes, maximize_steps, attribution_layer, maximize_units: as for
        ``LayerView``.
      image_shape: the input's image shape for drawing (channels last), or None.
      warn: ``warn(key, message)``.
      channels_first: the model takes images as (C, H, W); the class views
        are computed and drawn channels last.
    """

    def __init__(self, model, probe, max_classes, maximize_steps, attribution_layer, maximize_units,
                 image_shape, warn, channels_first=False):
        self.model, self.probe, self.channels_first = model, probe, channels_first
        self.max_classes, self.maximize_steps = max_classes, maximize_steps
        self.attribution_layer, self.maximize_units = attribution_layer, maximize_units
        self.image_shape, self.warn = image_shape, warn
        self.status = {}
        #: Seconds the last run of each kind took, a run that compiled its
        #: functions left out (see :meth:`timed`).
        self.seconds = {}
        self._gradcam = False  # not looked for yet (None: the model has no convolution)
        self._image_input = None  # (key, why) of _attribution_input, once looked for
        #: The input attribution maps are drawn over, for a model of several inputs.
        self.attribution_input_name = None

    def _not_run_yet(self, kind, decisions):
        """A kind available but not run at this step: until its first run, its
        status carries the plan's reason as a note."""
        if kind not in self.status:
            self._set(kind, True, None, note=decisions.get(kind, {}).get("reason"))

    def _set(self, kind, available, reason=None, **more):
        status = {"available": bool(available), "reason": reason}
        status.update(more)
        self.status[kind] = status

    def gradient_probe(self, kind=metadata.KIND_MAXIMIZATION):
        """The probe as one array to run ``kind`` (maximisation or
        attribution) on, or why there is none.

        Maximisation and saliency take gradients with respect to the input,
        which needs a float input. Grad-CAM takes them with respect to a
        convolution's output, so an image model fed integers (8-bit pixels
        into a ``Rescaling`` layer) still gets attribution maps.
        """
        import keras

        arr = self.probe.single
        if arr is None and kind != metadata.KIND_ATTRIBUTION:
            return None, "activation maximisation needs a single-input model"
        try:
            gradients.for_backend(keras.backend.backend())
        except ValueError as err:
            return None, str(err)
        if arr is None:
            why = self._attribution_input()[1]
            return (None, why) if why else (self.probe.for_model(self.model), None)
        arr = np.asarray(arr)
        if np.issubdtype(arr.dtype, np.floating):
            return arr, None
        if kind == metadata.KIND_ATTRIBUTION and self.image_shape is not None and self._gradcam_layer() is not None:
            return arr, None
        what = "the input (dtype %s: token ids, 8-bit pixels...) is not differentiable" % arr.dtype
        if kind == metadata.KIND_MAXIMIZATION:
            return None, what + ", which activation maximisation needs"
        return None, what + ", and Grad-CAM, which needs no input gradient, needs image inputs and a convolution"

    def _attribution_input(self):
        """For a model of several inputs: ``(key, None)``, the index or key in
        :meth:`Probe.for_model`'s structure of the one image input that
        Grad-CAM's layer sees, or ``(None, why)`` when there is none such."""
        from tb_layerview import render, walk

        if self._image_input is not None:
            return self._image_input
        layer = self._gradcam_layer()
        names = self.probe.input_names(self.model)
        why, key = None, None
        if layer is None:
            why = "attribution of a model of several inputs needs a convolution (Grad-CAM)"
        elif names is None:
            why = "the model does not say which of its inputs layer %r sees (a subclassed model)" % layer.name
        else:
            entries = walk.walk(self.model)
            path = next((e.path for e in entries if e.layer is layer), layer.name)
            reach = walk.InputReach(self.model, names, entries)
            seen, calls = reach.of(path), reach.calls(path)
            named = self.probe.named(self.model)
            if calls is not None and calls > 1:
                why = ("Grad-CAM's layer %r is called %d times (a shared encoder): one map cannot tell its calls"
                       " apart; pass attribution_layer= a layer called once" % (path, calls))
            elif seen is None or len(seen) != 1:
                why = "Grad-CAM's layer %r sees the inputs %s; a map needs exactly one" % (path, list(seen or ()))
            elif render.image_shape_of(np.asarray(named[seen[0]]).shape[1:], self.channels_first) is None:
                why = "Grad-CAM's layer %r sees input %r, which is not an image" % (path, seen[0])
            else:
                structure = self.probe.for_model(self.model)
                key = seen[0] if isinstance(structure, dict) else names.index(seen[0])
                self.attribution_input_name = seen[0]
        self._image_input = (key, why)
        return self._image_input

    def _gradcam_layer(self):
        """The layer Grad-CAM would explain: ``attribution_layer``, else the last convolution (None: none)."""
        if self._gradcam is False:
            layer = self.attribution_layer
            if isinstance(layer, str):
                try:
                    layer = classviews.find_layer(self.model, layer)
                except ValueError:
                    layer = None  # attribution then fails with the same message, which the status keeps
            self._gradcam = layer or classviews.last_conv_layer(self.model)
        return self._gradcam

    def available(self, outputs, regression=None):
        """The gradient kinds (attribution, maximisation) this model supports now."""
        if classes_of(outputs, self.max_classes, regression)[1] is not None:
            return []
        return [kind for kind in (metadata.KIND_ATTRIBUTION, metadata.KIND_MAXIMIZATION)
                if self.gradient_probe(kind)[1] is None]

    def step_items(self, outputs, decisions, regression=None):
        """Items of one step. ``decisions``: {kind: {"run": bool, "reason": str}}
        from the plan for attribution and maximisation; ``regression``: as
        for :func:`classes_of`."""
        out = []
        classes, reason = classes_of(outputs, self.max_classes, regression)
        if reason is not None:
            for kind in metadata.CLASS_KINDS:
                self._set(kind, False, reason)
            return out
        output = class_output(outputs, regression)[0]
        try:
            if self.probe.single is None:
                raise classviews.BackQueryUnavailable("back-query needs a single-input model")
            if len(outputs) > 1:  # its chain of Dense layers would be cut by the other outputs' heads
                raise classviews.BackQueryUnavailable(
                    "back-query needs a single-output model; this one has %d outputs (%s)"
                    % (len(outputs), ", ".join(map(repr, outputs))))
            plan = classviews.backquery_plan(self.model)
            images = classviews.backquery(plan, classviews.class_targets(plan, classes))
            out.append(items.ClassImages(metadata.KIND_BACKQUERY, images, classes, self.image_shape))
            self._set(metadata.KIND_BACKQUERY, True)
        except classviews.BackQueryUnavailable as err:
            self._set(metadata.KIND_BACKQUERY, False, str(err))
        except Exception as err:
            self._set(metadata.KIND_BACKQUERY, False, "back-query failed: %s: %s" % (type(err).__name__, err))
            self.warn("backquery", "back-query was not logged (%s: %s)" % (type(err).__name__, err))
        probe, why = self.gradient_probe(metadata.KIND_MAXIMIZATION)
        if why is not None:
            self._set(metadata.KIND_MAXIMIZATION, False, why)
        elif decisions.get(metadata.KIND_MAXIMIZATION, {}).get("run"):
            out += self.timed(metadata.KIND_MAXIMIZATION,
                              lambda: self._maximization_items(probe, classes, outputs, output) + self.unit_items(probe))
        else:
            self._not_run_yet(metadata.KIND_MAXIMIZATION, decisions)
        probe, why = self.gradient_probe(metadata.KIND_ATTRIBUTION)
        if why is not None:
            self._set(metadata.KIND_ATTRIBUTION, False, why)
        elif decisions.get(metadata.KIND_ATTRIBUTION, {}).get("run"):
            out += self.timed(metadata.KIND_ATTRIBUTION, lambda: self._attribution_items(probe, outputs, output))
        else:
            self._not_run_yet(metadata.KIND_ATTRIBUTION, decisions)
        return out

    def timed(self, kind, make):
        """``make()``, its seconds kept as the cost of ``kind`` for the planner.

        A run that traced or compiled a class-view function (the cache of
        :func:`tb_layerview.classviews.compiled_count` grew) is not kept:
        compiling is paid once, and the next runs cost a fraction of it
        (JAX, seed CNN: attribution 0.25 s with its compilation, then 0.003
        s). Kept, it deferred every later run as if each cost as much. Until
        a run without compiling is timed, the planner estimates the cost from
        the probe pass.
        """
        compiled = classviews.compiled_count(self.model)
        t0 = time.perf_counter()
        try:
            return make()
        finally:
            if classviews.compiled_count(self.model) == compiled:
                self.seconds[kind] = time.perf_counter() - t0

    def _maximization_items(self, probe, classes, outputs, output):
        try:
            lo, hi = self.probe.value_range()
            images, history = classviews.maximize(self.model, classes, steps=self.maximize_steps,
                                                  value_range=(lo, hi), input_shape=probe.shape[1:],
                                                  channels_first=self.channels_first,
                                                  output_index=list(outputs).index(output))
            extra = {"scores": history[-1].tolist(), "history": history.tolist(),
                     "params": {"steps": self.maximize_steps, "value_range": [lo, hi]}}
            item = items.ClassImages(metadata.KIND_MAXIMIZATION, images, classes, self.image_shape, extra)
        except Exception as err:
            return self._failed(metadata.KIND_MAXIMIZATION, "activation maximisation was not logged", err)
        self._set(metadata.KIND_MAXIMIZATION, True, **_which_output(outputs, output))
        return [item]

    def _attribution_items(self, probe, outputs, output):
        try:
            return [self.attribution_item(probe, outputs, output)]
        except Exception as err:
            return self._failed(metadata.KIND_ATTRIBUTION, "attribution maps were not logged", err)

    def _failed(self, kind, what, err):
        """Keeps ``err`` as why ``kind`` is missing at this step and warns
        (once per kind) with ``what``; training goes on. Returns no items."""
        why = "%s: %s" % (type(err).__name__, err)
        self._set(kind, False, why)
        self.warn(kind, "%s (%s)" % (what, why))
        return []

    def attribution_item(self, probe, outputs, output):
        """The attribution maps of one step: for each probe its predicted
        class and, where labelled, its true one, of ``output`` (the name
        :func:`class_output` picks)."""
        import keras

        predicted = [probe_lib.predicted_class(row) for row in outputs[output]]
        targets = [{"probe": i, "class": c, "which": "predicted"} for i, c in enumerate(predicted)]
        true = self.probe.true_classes(output)
        if true is not None and all(c is not None for c in true):
            targets += [{"probe": i, "class": c, "which": "true"} for i, c in enumerate(true)]
        copies = len(targets) // self.probe.count
        image = None
        if isinstance(probe, (list, dict)):  # a model of several inputs
            image = self._attribution_input()[0]
        inputs = keras.tree.map_structure(lambda a: np.concatenate([np.asarray(a)] * copies), probe)
        maps, info = classviews.attribution(self.model, inputs, [t["class"] for t in targets],
                                            layer=self.attribution_layer, channels_first=self.channels_first,
                                            image=image, output_index=list(outputs).index(output))
        more = {}
        if image is not None:  # the maps and the status say which input they explain
            info["input"] = more["input"] = self.attribution_input_name
        info.update(_which_output(outputs, output))  # and which output's classes
        self._set(metadata.KIND_ATTRIBUTION, True, method=info["method"], layer=info["layer"], **more,
                  **_which_output(outputs, output))
        return items.Attribution(maps, targets, info)

    def unit_items(self, probe):
        """Activation maximisation of the units named in ``maximize_units``."""
        from tb_layerview import walk

        out = []
        if not self.maximize_units:
            return out
        value_range = self.probe.value_range()
        by_name = {}
        entries = walk.walk(self.model)
        for e in entries:
            by_name.setdefault(e.path, e)
            by_name.setdefault(e.layer.name, e)
        for name, units in self.maximize_units.items():
            entry = by_name.get(name)
            if entry is None:
                self.warn("units:" + name, "maximize_units names layer %r, which the model does not have"
                          " (layers: %s)" % (name, ", ".join(e.path for e in entries)))
                continue
            try:
                images, history = classviews.maximize(self.model, layer=entry.layer, units=units,
                                                      steps=self.maximize_steps, value_range=value_range,
                                                      input_shape=probe.shape[1:],
                                                      channels_first=self.channels_first)
                extra = {"scores": history[-1].tolist(), "history": history.tolist(),
                         "params": {"steps": self.maximize_steps, "value_range": list(value_range)}}
                out.append(items.Units(entry, images, units, self.image_shape, extra))
            except Exception as err:
                self.warn("units:" + name, "units of layer %r were not maximised (%s: %s)"
                          % (name, type(err).__name__, err))
        return out
