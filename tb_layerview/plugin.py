"""The Layer View TensorBoard plugin: serves tb_layerview series over HTTP.

This module must import without TensorFlow or Keras (TensorBoard loads it in
its own process, and an import error there stops TensorBoard from starting).
It reads only through ``context.data_provider``, so it works under both
``--load_fast=true`` and ``--load_fast=false``. The routes are documented in
``docs/http_api.md``.
"""

import collections
import concurrent.futures
import hashlib
import json
import math
import os
import threading
import time
import typing

from werkzeug import http as werkzeug_http
from werkzeug import wrappers

from tensorboard import errors
from tensorboard import plugin_util
from tensorboard.backend import http_util
from tensorboard.backend import json_util
from tensorboard.plugins import base_plugin

from tb_layerview import metadata

#: Blob sequences kept per tag when the user gave no --samples_per_plugin:
#: 0 means all of them.
DEFAULT_SAMPLES = 0


#: Seconds a listing of series is reused before asking the provider again,
#: at least; a listing that took t seconds is reused for _LISTING_COST_FACTOR
#: * t seconds, up to _LISTING_TTL_MAX.
_LISTING_TTL = 1.0
_LISTING_COST_FACTOR = 40
_LISTING_TTL_MAX = 10.0
#: A listing kept for t seconds is still answered from until it is this many
#: t old, while a new one is read on a thread of its own: an open panel's
#: polls then never wait on the provider's listing (TensorBoard's Python
#: loader: 164 ms for 3 runs x 101 steps of MobileNetV2). Older than that
#: (no request for a while), a request waits for the new listing.
_LISTING_STALE_FACTOR = 2.0

#: Series whose step index (steps, wall times, blob keys) the plugin keeps.
_INDEX_SERIES = 4096

#: Answers derived from a whole series (/ranges, /health, a configuration) kept.
_DERIVED_ANSWERS = 1024

#: Images never change once written (a step's blobs are immutable).
_IMAGE_MAX_AGE = 365 * 24 * 3600

#: Bytes of blobs kept in memory by the plugin (immutable, so never stale),
#: when blobs come from a data server in another process.
_BLOB_CACHE_BYTES = 64 * 2**20

#: Steps read ahead around a requested one, as offsets in the series' steps.
#: The panel follows the same policy: GET /runs sends it as ``read_ahead``.
READ_AHEAD = (1, -1, 2)

#: Threads reading ahead the neighbours of a requested image.
_READ_AHEAD_THREADS = 4

#: Threads reading all steps of one series at once.
_BULK_THREADS = 16

_HERE = os.path.dirname(os.path.abspath(__file__))


class _BlobCache:
    """A byte-bounded LRU of blob contents, with in-flight reads shared.

    Blob reads through the Rust data server (``--load_fast=true``) cost tens
    of milliseconds each whatever their size, so the plugin keeps recent blobs
    and reads the neighbours of a requested image ahead of time (the panel
    scrubs through adjacent epochs).
    """

    def __init__(self, max_bytes):
        self._max = max_bytes
        self._size = 0
        self._data = collections.OrderedDict()  # key -> bytes
        self._pending = {}  # key -> Future
        self._lock = threading.Lock()

    def get(self, key, read):
        """The blob for ``key``; ``read()`` fetches it on a miss (once for concurrent callers)."""
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            fut = self._pending.get(key)
            owner = fut is None
            if owner:
                fut = concurrent.futures.Future()
                self._pending[key] = fut
        if not owner:
            return fut.result()
        try:
            value = read()
        except BaseException as e:
            with self._lock:
                del self._pending[key]
            fut.set_exception(e)
            raise
        with self._lock:
            del self._pending[key]
            if len(value) <= self._max // 4:
                self._data[key] = value
                self._size += len(value)
                while self._size > self._max:
                    _, old = self._data.popitem(last=False)
                    self._size -= len(old)
        fut.set_result(value)
        return value

    def has(self, key):
        with self._lock:
            return key in self._data or key in self._pending


def _json_text(answer):
    """The JSON text ``http_util.Respond`` sends for a dict answer (no charset asked: ASCII)."""
    return json.dumps(json_util.Cleanse(answer), ensure_ascii=True)


class _Shared(dict):
    """A JSON answer that the plugin keeps and serves again unchanged (the
    /runs answer, the answers derived from a whole series): its JSON text is
    made once, on first use.

    TensorBoard's ``http_util.Respond`` walks a dict answer through
    ``json_util.Cleanse`` and ``json.dumps`` at every request; for the /runs
    answer of 20 runs of 400 to 770 layers (1.4 MB of JSON) that took 0.4 s,
    at every poll of every open panel. A kept answer is never changed after
    it is made, so its text stays right.
    """

    __slots__ = ("_text", "_etag")

    def set_text(self, text):
        """Gives the answer's JSON text, made by the caller from parts it keeps."""
        self._text = text

    def etag(self):
        """A weak ETag of the answer's text (weak: sent gzipped or not, it is the same answer)."""
        tag = getattr(self, "_etag", None)
        if tag is None:
            tag = self._etag = 'W/"%s"' % hashlib.sha1(self.json_text().encode("utf-8")).hexdigest()
        return tag

    def json_text(self):
        text = getattr(self, "_text", None)
        if text is None:
            text = self._text = _json_text(self)
        return text


class _Lru:
    """A dict of at most ``size`` entries that drops the least recently used
    one when full (callers hold the plugin's lock). Clearing it all at once
    instead would make every series a viewer is looking at a miss again, and
    a miss through the data server costs ~40 ms."""

    def __init__(self, size):
        self._size = size
        self._data = collections.OrderedDict()

    def get(self, key):
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key, value):
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self._size:
            self._data.popitem(last=False)

    def __len__(self):
        return len(self._data)


class _KeptListing(typing.NamedTuple):
    """A listing of series the plugin keeps (:meth:`LayerViewPlugin._listing_for`)."""

    read_at: float   # time.monotonic() when the provider was asked
    keys: dict       # _listing_keys of the provider's answer
    runs: dict       # {run: ...}: metadata.index_series of it
    seconds: float   # how long it is kept


class _KeptRun(typing.NamedTuple):
    """One run's GET /runs entry, kept while its listing entry is the same object."""

    entry: dict      # the run's entry in the kept listing it was built from
    answer: dict
    text: str        # the answer's JSON text


def _listing_keys(raw):
    """``{run: key}`` of a provider's ``list_blob_sequences`` answer: what it
    says about each of the run's series, in a form that compares equal
    exactly when none of them changed."""
    return {run: [(tag, ts.max_step, ts.max_wall_time, ts.max_length, ts.plugin_content)
                  for tag, ts in tags.items()] for run, tags in raw.items()}


def _frontend_dir():
    installed = os.path.join(_HERE, "frontend")
    if os.path.isdir(installed):
        return installed
    return os.path.join(os.path.dirname(_HERE), "frontend")  # source checkout


#: The only files served as static assets, with their MIME types.
STATIC_FILES = {
    "index.js": "text/javascript",
    "api.js": "text/javascript",
    "state.js": "text/javascript",
    "views.js": "text/javascript",
    "normalise.js": "text/javascript",
    "live.js": "text/javascript",
    "url.js": "text/javascript",
    "model.js": "text/javascript",
    "column.js": "text/javascript",
    "classgrid.js": "text/javascript",
    "enlarge.js": "text/javascript",
    "health.js": "text/javascript",
    "style.css": "text/css",
}


class LayerViewLoader(base_plugin.TBLoader):
    """Keeps every tb_layerview step by default and builds the plugin."""

    def define_flags(self, parser):
        pass

    def fix_flags(self, flags):
        samples = getattr(flags, "samples_per_plugin", None)
        if isinstance(samples, dict):
            # An explicit --samples_per_plugin=tb_layerview=N still wins.
            samples.setdefault(metadata.PLUGIN_NAME, DEFAULT_SAMPLES)

    def load(self, context):
        return LayerViewPlugin(context)


def _names_or_none(value):
    """A list of input names from a configuration record, or None when it
    holds none (older logs) or something else."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _arg(request, name, required=True):
    value = request.args.get(name)
    if value is None:
        if required:
            raise errors.InvalidArgumentError("missing query parameter %r" % name)
        return None
    return value


def _int_arg(request, name, minimum=0, required=True, default=None):
    raw = _arg(request, name, required)
    if raw is None:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise errors.InvalidArgumentError("query parameter %r must be an integer; got %r" % (name, raw)) from None
    if value < minimum:
        raise errors.InvalidArgumentError("query parameter %r must be >= %d; got %d" % (name, minimum, value))
    return value


class LayerViewPlugin(base_plugin.TBPlugin):
    """Serves activations, filters, unit and class views, configs, probes and predictions."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context):
        self._provider = context.data_provider
        hint = (context.sampling_hints or {}).get(metadata.PLUGIN_NAME)
        # A hint of 0 means "keep all"; reading with downsample=0 would return nothing.
        self._downsample = metadata.ALL_STEPS if not hint else int(hint)
        self._lock = threading.Lock()
        self._listing = {}  # experiment id -> _KeptListing
        self._relisting = set()  # experiment ids whose listing is being read again in the background
        self._relister = concurrent.futures.ThreadPoolExecutor(1, "tb_layerview-list")
        self._runs_answer = {}  # experiment id -> (listing it was built from, GET /runs answer)
        self._run_answers = {}  # (experiment id, run) -> _KeptRun
        self._index = _Lru(_INDEX_SERIES)  # (eid, run, tag, max_step, max_wall_time) -> {step: (wall, keys)}
        self._derived = _Lru(_DERIVED_ANSWERS)  # (what, series version, ...) -> an answer computed from a series
        # Only a data provider in another process (the Rust data server behind
        # gRPC) makes blob reads slow; an in-process one would just hold each
        # blob twice.
        remote = type(self._provider).__name__ == "GrpcDataProvider"
        self._blobs = _BlobCache(_BLOB_CACHE_BYTES if remote else 0)
        self._read_ahead_enabled = remote
        self._reader = concurrent.futures.ThreadPoolExecutor(_READ_AHEAD_THREADS, "tb_layerview-read")
        # Reads of every step of a series (/ranges) go in parallel: one by one
        # they cost ~44 ms each through the data server.
        self._bulk = concurrent.futures.ThreadPoolExecutor(_BULK_THREADS, "tb_layerview-bulk")
        self._frontend = _frontend_dir()

    # --------------------------------------------------------------- plugin

    def get_plugin_apps(self):
        apps = {
            "/runs": self._serve_runs,
            "/config": self._serve_config,
            "/steps": self._serve_steps,
            "/info": self._serve_info,
            "/image": self._serve_image,
            "/ranges": self._serve_ranges,
            "/probes": self._serve_probes,
            "/probe_image": self._serve_probe_image,
            "/predictions": self._serve_predictions,
            "/plan": self._serve_plan,
            "/health": self._serve_health,
            "/stats": self._serve_stats,
        }
        for name in STATIC_FILES:
            apps["/" + name] = self._static_app(name)
        return apps

    def is_active(self):
        return False  # activity comes from data_plugin_names() and the provider

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Layer View",
                                            disable_reload=False)

    # -------------------------------------------------------------- reading

    def _listing_for(self, ctx, eid):
        """{run: {"layers": {path: {kind: Series}}, "run": {kind: Series}}} (metadata.index_series)."""
        now = time.monotonic()
        with self._lock:
            cached = self._listing.get(eid)
            if cached and now - cached.read_at < cached.seconds:
                return cached.runs
            if cached and now - cached.read_at < _LISTING_STALE_FACTOR * cached.seconds:
                if eid not in self._relisting:
                    self._relisting.add(eid)
                    self._relister.submit(self._relist_in_background, ctx, eid)
                return cached.runs
        return self._relist(ctx, eid)

    def _relist_in_background(self, ctx, eid):
        try:
            self._relist(ctx, eid)
        except Exception:  # noqa: BLE001 - the listing stays as it was; a request that waits for one answers the error
            pass
        finally:
            with self._lock:
                self._relisting.discard(eid)

    def _relist(self, ctx, eid):
        """Asks the provider for the listing of ``eid`` and keeps it (see :meth:`_listing_for`)."""
        now = time.monotonic()
        with self._lock:
            cached = self._listing.get(eid)
        raw = self._provider.list_blob_sequences(ctx, experiment_id=eid,
                                                 plugin_name=metadata.PLUGIN_NAME)
        # TensorBoard's Python loader lists a series by walking its every
        # event: 3 runs x 101 steps of MobileNetV2 took 170 ms a listing, at
        # every poll of an open panel. A costly listing is kept longer, so
        # listing takes at most about 1/40 of the server's time.
        ttl = min(max(_LISTING_TTL, _LISTING_COST_FACTOR * (time.monotonic() - now)), _LISTING_TTL_MAX)
        keys = _listing_keys(raw)
        # An unchanged listing stays the same object, and so does the entry of
        # every unchanged run in a changed one: what is kept per listing and
        # per run (the /runs answer) is not built again at every renewal.
        if cached and cached.keys == keys:
            out = cached.runs
        else:
            old_keys, old = (cached.keys, cached.runs) if cached else ({}, {})
            out = {}
            for run in raw:
                if run in old and old_keys.get(run) == keys[run]:
                    out[run] = old[run]
                else:
                    out.update(metadata.index_series({run: raw[run]}))
        with self._lock:
            # A listing read in the background may finish after a later one
            # that a request waited for: the later read is kept.
            current = self._listing.get(eid)
            if current is None or current.read_at <= now:
                self._listing[eid] = _KeptListing(now, keys, out, ttl)
        return out

    def _run_entry(self, ctx, eid, run):
        listing = self._listing_for(ctx, eid)
        if run not in listing:
            raise errors.NotFoundError("no tb_layerview data for run %r" % run)
        return listing[run]

    def _series(self, ctx, eid, run, layer, kind):
        entry = self._run_entry(ctx, eid, run)
        if kind in metadata.RUN_KINDS:
            series = entry["run"].get(kind)
            if series is None:
                raise errors.NotFoundError("run %r has no %s series" % (run, kind))
            return series
        if kind not in metadata.LAYER_KINDS:
            raise errors.InvalidArgumentError("unknown kind %r; expected one of %s"
                                              % (kind, ", ".join(metadata.KINDS)))
        if layer is None:
            raise errors.InvalidArgumentError("missing query parameter 'layer'")
        kinds = entry["layers"].get(layer)
        if kinds is None:
            raise errors.NotFoundError("run %r has no layer %r" % (run, layer))
        if kind not in kinds:
            raise errors.NotFoundError("layer %r of run %r has no %s" % (layer, run, kind))
        return kinds[kind]

    def _steps_of(self, ctx, eid, series):
        """{step: (wall_time, [blob keys])} of a series, cached per version."""
        key = (eid, series.run, series.tag, series.max_step, series.max_wall_time)
        with self._lock:
            hit = self._index.get(key)
        if hit is not None:
            return hit
        result = self._provider.read_blob_sequences(
            ctx, experiment_id=eid, plugin_name=metadata.PLUGIN_NAME,
            downsample=self._downsample,
            run_tag_filter=_run_tag_filter(series.run, series.tag))
        data = result.get(series.run, {}).get(series.tag, [])
        index = {d.step: (d.wall_time, [v.blob_key for v in d.values]) for d in data}
        with self._lock:
            self._index.put(key, index)
        return index

    def _blob(self, ctx, eid, series, step, position):
        index = self._steps_of(ctx, eid, series)
        if step not in index:
            raise errors.NotFoundError("%s of %r in run %r has no step %d"
                                       % (series.meta.kind, series.meta.layer or series.run,
                                          series.run, step))
        wall, keys = index[step]
        if position >= len(keys):
            raise errors.NotFoundError("step %d of this series holds %d item(s); index %d is out of"
                                       " range" % (step, len(keys), position))
        return self._read_blob(ctx, keys[position]), keys[position], wall

    def _item(self, ctx, eid, series, step, position):
        """(wall time of ``step``, blob key of its item ``position``), or None when the series lacks it."""
        wall, keys = self._steps_of(ctx, eid, series).get(step, (None, ()))
        return (wall, keys[position]) if position < len(keys) else None

    def _read_blob(self, ctx, key):
        try:
            return self._blobs.get(key, lambda: self._provider.read_blob(ctx, blob_key=key))
        except errors.PublicError:
            raise
        except Exception as e:  # loaders raise assorted errors on vanished or bad keys
            raise errors.NotFoundError("could not read blob: %s" % e) from None

    def _read_ahead(self, ctx, eid, series, step, position, other_probes=True):
        """Starts reading what a viewer is likely to ask for next: the same
        item at the neighbouring steps and, for images, the step's other probes."""
        if not self._read_ahead_enabled:
            return
        index = self._steps_of(ctx, eid, series)
        steps = sorted(index)
        i = steps.index(step)
        wanted = []
        if other_probes:
            wanted = [index[step][1][p] for p in range(1, len(index[step][1])) if p != position]
        for j in (i + d for d in READ_AHEAD):
            if 0 <= j < len(steps) and position < len(index[steps[j]][1]):
                wanted.append(index[steps[j]][1][position])
        for key in wanted:
            if not self._blobs.has(key):
                self._reader.submit(self._quiet_read, ctx, key)

    def _with_neighbours(self, ctx, eid, series, step, position, read, other_probes=True):
        """``read()``, with the neighbours of item ``position`` at ``step`` read ahead.

        When that item is not cached yet, the read-ahead starts first:
        TensorBoard's data server holds a lone answer until the client's
        delayed ACK (~40 ms, Nagle's algorithm on its side), and requests in
        flight beside it release the answer at once. When it is cached, the
        read-ahead waits until the answer is out.
        """
        item = self._item(ctx, eid, series, step, position)
        known = item is not None
        missing = known and self._read_ahead_enabled and not self._blobs.has(item[1])
        if missing:
            self._read_ahead(ctx, eid, series, step, position, other_probes)
        out = read()
        if known and not missing:
            self._read_ahead(ctx, eid, series, step, position, other_probes)
        return out

    def _blob_pair(self, ctx, eid, series, step):
        """Items 0 and 1 of a step (the statistics' header and data), read side
        by side from a remote data server (see :meth:`_with_neighbours`)."""
        if not self._read_ahead_enabled:
            return self._blob(ctx, eid, series, step, 0), self._blob(ctx, eid, series, step, 1)
        second = self._reader.submit(self._blob, ctx, eid, series, step, 1)
        return self._blob(ctx, eid, series, step, 0), second.result()

    def _quiet_read(self, ctx, key):
        try:
            self._read_blob(ctx, key)
        except Exception:
            pass  # a read-ahead that fails is simply not cached

    def _json_blob(self, ctx, eid, series, step):
        """The JSON record of a step (an object in every series that holds one) and its wall time."""
        data, _, wall = self._blob(ctx, eid, series, step, 0)
        try:
            record = json.loads(data.decode("utf-8"))
        except ValueError as e:
            raise errors.NotFoundError("stored JSON of series %r of run %r at step %d is corrupt: %s"
                                       % (series.tag, series.run, step, e)) from None
        if not isinstance(record, dict):
            raise errors.NotFoundError("stored JSON of series %r of run %r at step %d is not an object: got %s"
                                       % (series.tag, series.run, step, type(record).__name__))
        return record, wall

    def _latest_step(self, ctx, eid, series):
        index = self._steps_of(ctx, eid, series)
        if not index:
            raise errors.NotFoundError("series %r of run %r holds no data yet" % (series.tag, series.run))
        return max(index)

    # ------------------------------------------------------------- handlers

    def runs_impl(self, ctx, eid):
        """All runs with their layers in model order (see docs/http_api.md)."""
        listing = self._listing_for(ctx, eid)
        # The answer only changes with the listing (renewed at most every
        # _LISTING_TTL): the panel polls it, and models have hundreds of layers.
        with self._lock:
            cached = self._runs_answer.get(eid)
        if cached is not None and cached[0] is listing:
            return cached[1]
        names = sorted(listing)
        # A run's entry changes only with its own series (while one run trains,
        # the others keep theirs), and each new one costs a few reads: through
        # the data server about 30 ms each, so new runs are answered in parallel.
        runs = list(self._bulk.map(lambda run: self._run_answer(ctx, eid, run, listing[run]), names))
        answer = _Shared(runs=[r for r, _ in runs], read_ahead=list(READ_AHEAD))
        answer.set_text('{"runs": [%s], "read_ahead": %s}' % (", ".join(text for _, text in runs),
                                                             json.dumps(answer["read_ahead"])))
        with self._lock:
            self._runs_answer[eid] = (listing, answer)
            for key in [k for k in self._run_answers if k[0] == eid and k[1] not in listing]:
                del self._run_answers[key]  # a run that is gone
        return answer

    def _run_answer(self, ctx, eid, run, entry):
        """One run's /runs entry and its JSON text, kept while the run's entry
        in the listing (:meth:`_listing_for`) is the same."""
        with self._lock:
            cached = self._run_answers.get((eid, run))
        if cached is not None and cached.entry is entry:
            return cached.answer, cached.text
        layers = []
        for path, kinds in entry["layers"].items():
            layer_class, parent, index = metadata.layer_description(kinds)
            act = kinds.get(metadata.KIND_ACTIVATIONS)
            layers.append({
                "path": path,
                "name": metadata.display_name(path, parent),
                "class": layer_class,
                "parent": parent,
                "index": index,
                "output_shape": list(act.meta.output_shape) if act else None,
                "layout": act.meta.layout if act else None,
                "kinds": {k: {"max_step": s.max_step, "max_wall_time": s.max_wall_time}
                          for k, s in sorted(kinds.items())},
                "inputs": None,
                "layer": path,
            })
        # Layers the budget has not drawn yet have no series, but the run's
        # configuration lists them: they are listed too, without kinds.
        listed = {l["path"]: l for l in layers}
        for l in self._config_layers(ctx, eid, entry):
            if l["path"] in listed:
                listed[l["path"]].update(inputs=l["inputs"], layer=l["layer"])
            else:
                layers.append(l)
        layers.sort(key=lambda l: (l["index"], l["path"]))
        steps, probe_count = [], 0
        # The predictions series has every logged step; runs written with
        # the summary ops alone may lack it: then the first layer's steps.
        timeline = entry["run"].get(metadata.KIND_PREDICTIONS)
        if timeline is None and layers:
            first = entry["layers"][layers[0]["path"]]
            timeline = next(first[k] for k in metadata.LAYER_KINDS if k in first)
        if timeline is not None:
            index = self._steps_of(ctx, eid, timeline)
            steps = [{"step": s, "wall_time": index[s][0]} for s in sorted(index)]
        probes = entry["run"].get(metadata.KIND_PROBES)
        if probes is not None:
            probe_count = self._probe_count(ctx, eid, probes)
        else:  # written by summary ops alone: count the images of a step
            probe_count = max([metadata.image_count(k[metadata.KIND_ACTIVATIONS].max_length)
                               for k in entry["layers"].values()
                               if metadata.KIND_ACTIVATIONS in k] or [0])
        answer = {
            "run": run,
            "steps": steps,
            "probe_count": probe_count,
            "has_config": metadata.KIND_CONFIG in entry["run"],
            "has_probes": probes is not None,
            "has_plan": metadata.KIND_PLAN in entry["run"],
            "has_stats": metadata.KIND_STATS in entry["run"],
            "class_views": {k: {"max_step": s.max_step, "count": metadata.image_count(s.max_length)}
                            for k, s in sorted(entry["run"].items()) if k in metadata.CLASS_KINDS},
            "layers": layers,
        }
        text = _json_text(answer)
        with self._lock:
            self._run_answers[(eid, run)] = _KeptRun(entry, answer, text)
        return answer, text

    def _per_version(self, key, series, compute):
        """``compute()``, kept while ``series`` has no new step: a series' data
        only changes with one. Bounded, as answers of every series add up."""
        key = key + (series.run, series.tag, series.max_step, series.max_wall_time)
        with self._lock:
            hit = self._derived.get(key)
        if hit is not None:
            return hit
        result = compute()
        if isinstance(result, dict):
            result = _Shared(result)
        with self._lock:
            self._derived.put(key, result)
        return result

    def _probes_info(self, ctx, eid, series):
        """The info record of a run's probes (latest step), with
        ``drawn_inputs`` filled in for logs of format version 3 and older,
        which drew at most one input."""
        def read():
            info, _ = self._json_blob(ctx, eid, series, self._latest_step(ctx, eid, series))
            if not isinstance(info.get("drawn_inputs"), list):
                drawn = info.get("drawn_input")
                info["drawn_inputs"] = [drawn] if drawn is not None else []
            return info

        return self._per_version(("probes_info", eid), series, read)

    def _probe_count(self, ctx, eid, series):
        """The probes of a run: the ``count`` of its probes info, else its
        images (0 when neither can be read)."""
        try:
            return int(self._probes_info(ctx, eid, series).get("count") or 0)
        except (errors.PublicError,) + metadata.RECORD_ERRORS:
            return metadata.image_count(series.max_length)

    def _config_layers(self, ctx, eid, entry):
        """The drawable layers of a run's configuration, as /runs entries without kinds."""
        series = entry["run"].get(metadata.KIND_CONFIG)
        if series is None:
            return []
        return self._per_version(("config_layers", eid), series, lambda: self._layers_of_config(ctx, eid, series))

    def _layers_of_config(self, ctx, eid, series):
        try:
            config, _ = self._json_blob(ctx, eid, series, self._latest_step(ctx, eid, series))
        except errors.PublicError:
            return []
        layers = config.get("layers")
        out = []
        for l in layers if isinstance(layers, list) else []:
            try:
                for output in l.get("outputs") or []:
                    if l.get("nested_model") or l.get("skipped"):
                        continue
                    path = output["path"]
                    out.append({"path": path, "name": metadata.display_name(path, l.get("parent", "")),
                                "class": l.get("class", ""), "parent": l.get("parent", ""),
                                "index": int(l.get("index", 0)), "output_shape": output.get("shape"),
                                "layout": None, "kinds": {}, "inputs": _names_or_none(output.get("inputs")),
                                "layer": str(l.get("path", path))})
            except metadata.RECORD_ERRORS:
                continue  # a malformed record is left out
        return out

    def config_impl(self, ctx, eid, run):
        series = self._series(ctx, eid, run, None, metadata.KIND_CONFIG)
        # Kept, with its JSON text, until a new step: a model of 770 layers has
        # a configuration of 0.7 MB, 85-100 ms to parse and encode again.
        return self._per_version(("config", eid), series,
                                 lambda: self._json_blob(ctx, eid, series, self._latest_step(ctx, eid, series))[0])

    def steps_impl(self, ctx, eid, run, layer, kind):
        series = self._series(ctx, eid, run, layer, kind)
        index = self._steps_of(ctx, eid, series)
        return {"run": run, "layer": layer, "kind": kind,
                "steps": [{"step": s, "wall_time": index[s][0]} for s in sorted(index)]}

    def info_impl(self, ctx, eid, run, layer, kind, step):
        series = self._series(ctx, eid, run, layer, kind)
        info, wall = self._with_neighbours(ctx, eid, series, step, 0,
                                           lambda: self._json_blob(ctx, eid, series, step), other_probes=False)
        info.update(run=run, kind=kind, step=step, wall_time=wall)
        if layer is not None:  # class views keep their own "layer" (Grad-CAM's)
            info["layer"] = layer
        return info

    def ranges_impl(self, ctx, eid, run, layer, kind):
        """Per-step and overall per-tile ranges, for normalisation across epochs."""
        series = self._series(ctx, eid, run, layer, kind)
        return self._per_version(("ranges", eid, layer, kind), series,
                                 lambda: self._ranges_of(ctx, eid, series, run, layer, kind))

    def _ranges_of(self, ctx, eid, series, run, layer, kind):
        steps = sorted(self._steps_of(ctx, eid, series))
        infos = self._bulk.map(lambda st: self._json_blob(ctx, eid, series, st)[0], steps)
        per_step, lo, hi = [], None, None
        for step, info in zip(steps, infos):
            try:
                tiles_min, tiles_max = _tile_ranges(info)
            except metadata.RECORD_ERRORS as e:
                raise errors.NotFoundError("the %s record of layer %r in run %r at step %d has no readable tile"
                                           " ranges: %s: %s" % (kind, layer, run, step, type(e).__name__, e)) from None
            per_step.append({"step": step, "min": min(tiles_min, default=0.0),
                             "max": max(tiles_max, default=0.0)})
            lo = tiles_min if lo is None else [min(a, b) for a, b in zip(lo, tiles_min)]
            hi = tiles_max if hi is None else [max(a, b) for a, b in zip(hi, tiles_max)]
        result = {"run": run, "layer": layer, "kind": kind, "steps": per_step,
                  "tile_min": lo or [], "tile_max": hi or [],
                  "min": min(lo or [0.0]), "max": max(hi or [0.0])}
        return result

    def probes_impl(self, ctx, eid, run):
        series = self._series(ctx, eid, run, None, metadata.KIND_PROBES)
        return self._probes_info(ctx, eid, series)

    def probe_image_position(self, ctx, eid, run, probe, name=None):
        """(probes series, step, blob position) of probe ``probe``'s picture
        of input ``name`` (the first drawn input when None)."""
        series = self._series(ctx, eid, run, None, metadata.KIND_PROBES)
        info = self._probes_info(ctx, eid, series)
        drawn = info["drawn_inputs"]
        if not drawn:
            raise errors.NotFoundError("run %r draws no probe input (none is image-shaped)" % run)
        if name is not None and name not in drawn:
            raise errors.NotFoundError("run %r draws no probe input %r; drawn: %s"
                                       % (run, name, ", ".join(repr(d) for d in drawn)))
        try:
            count = int(info.get("count"))
        except (TypeError, ValueError):
            raise errors.NotFoundError("the probes record of run %r has no count" % run) from None
        if probe >= count:
            raise errors.NotFoundError("probe %d is out of range: run %r has %d probes" % (probe, run, count))
        k = drawn.index(name) if name is not None else 0
        return series, self._latest_step(ctx, eid, series), metadata.probe_image_position(probe, k, count)

    def predictions_impl(self, ctx, eid, run, step):
        series = self._series(ctx, eid, run, None, metadata.KIND_PREDICTIONS)
        data, wall = self._with_neighbours(ctx, eid, series, step, 0,
                                           lambda: self._json_blob(ctx, eid, series, step), other_probes=False)
        data.update(run=run, step=step, wall_time=wall)
        return data

    def plan_impl(self, ctx, eid, run, step):
        """The plan record of a step: what was logged, and why not the rest."""
        series = self._series(ctx, eid, run, None, metadata.KIND_PLAN)
        data, wall = self._with_neighbours(ctx, eid, series, step, 0,
                                           lambda: self._json_blob(ctx, eid, series, step), other_probes=False)
        data.update(run=run, step=step, wall_time=wall)
        return data

    def stats_impl(self, ctx, eid, run, step, layer):
        """Per-channel statistics of a step: every layer's totals, one layer's channels."""
        from tb_layerview import stats

        series = self._series(ctx, eid, run, None, metadata.KIND_STATS)
        (header_blob, _, wall), (data_blob, _, _) = self._blob_pair(ctx, eid, series, step)
        try:
            header, data = stats.decode(header_blob, data_blob)
        except ValueError as e:
            raise errors.NotFoundError("stored statistics of step %d are corrupt: %s" % (step, e)) from None
        out = {"run": run, "step": step, "wall_time": wall, "stats": header["stats"],
               "layers": [{k: l[k] for k in ("path", "activation", "channels", "nan", "inf")}
                          for l in header["layers"]]}
        if layer is not None:
            values = stats.layer_slice(header, data, layer)
            if values is None:
                raise errors.NotFoundError("step %d of run %r has no statistics of layer %r" % (step, run, layer))
            out["layer"] = layer
            out["values"] = {k: _finite_or_none(vals) for k, vals in values.items()}
        return out

    def _stats_steps(self, ctx, eid, run):
        """(series, steps) of a run's statistics."""
        series = self._series(ctx, eid, run, None, metadata.KIND_STATS)
        return series, sorted(self._steps_of(ctx, eid, series))

    def _decoded_stats(self, ctx, eid, series, step):
        from tb_layerview import stats

        (header_blob, _, _), (data_blob, _, _) = self._blob_pair(ctx, eid, series, step)
        try:
            return stats.decode(header_blob, data_blob)
        except ValueError as e:
            raise errors.NotFoundError("stored statistics of step %d are corrupt: %s" % (step, e)) from None

    def health_impl(self, ctx, eid, run, layer=None, stat=None):
        """Unit health of a run over its steps (see docs/http_api.md, GET /health)."""
        from tb_layerview import stats

        series, steps = self._stats_steps(ctx, eid, run)
        if layer is not None and stat not in stats.STATS:
            raise errors.InvalidArgumentError("stat must be one of %s; got %r" % (", ".join(stats.STATS), stat))
        return self._per_version(("health", eid, layer, stat), series,
                                 lambda: self._health_of(ctx, eid, series, steps, run, layer, stat))

    def _health_of(self, ctx, eid, series, steps, run, layer, stat):
        from tb_layerview import stats

        decoded = list(self._bulk.map(lambda st: self._decoded_stats(ctx, eid, series, st), steps))
        if layer is None:
            result = {"run": run, "steps": steps, "layers": stats.problems(steps, decoded)}
        else:
            rows = []
            for header, data in decoded:
                values = stats.layer_slice(header, data, layer)
                rows.append(None if values is None else _finite_or_none(values[stat]))
            if all(r is None for r in rows):
                raise errors.NotFoundError("run %r has no statistics of layer %r" % (run, layer))
            result = {"run": run, "layer": layer, "stat": stat, "steps": steps,
                      "channels": max(len(r) for r in rows if r is not None), "values": rows,
                      "units": stats.unit_streaks(steps, decoded, layer)}
        return result

    # ----------------------------------------------------------------- HTTP

    @staticmethod
    def _ctx(request):
        return plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)

    def _json(self, request, fn, *args):
        ctx, eid = self._ctx(request)
        try:
            answer = fn(ctx, eid, *args)
        except metadata.RECORD_ERRORS as e:
            # Records are read field by field; a log written by another tool,
            # or damaged on disk, can hold records of another shape: say which
            # and what failed instead of answering 500.
            raise errors.NotFoundError("the stored data this answer needs has another form than tb_layerview"
                                       " writes (%s: %s)" % (type(e).__name__, e)) from None
        if isinstance(answer, _Shared):
            # A kept answer is asked for again and again (the panel polls
            # /runs): a client that holds it gets a 304, not 1 MB gzipped again.
            etag = answer.etag()
            if _holds(request, etag):
                return _not_modified(etag, "no-cache, must-revalidate")
            return http_util.Respond(request, answer.json_text(), "application/json", headers=[("ETag", etag)])
        return http_util.Respond(request, answer, "application/json")

    @wrappers.Request.application
    def _serve_runs(self, request):
        return self._json(request, self.runs_impl)

    @wrappers.Request.application
    def _serve_config(self, request):
        return self._json(request, self.config_impl, _arg(request, "run"))

    @wrappers.Request.application
    def _serve_steps(self, request):
        return self._json(request, self.steps_impl, _arg(request, "run"),
                          _arg(request, "layer", required=False), _arg(request, "kind"))

    @wrappers.Request.application
    def _serve_info(self, request):
        return self._json(request, self.info_impl, _arg(request, "run"),
                          _arg(request, "layer", required=False), _image_kind(request),
                          _int_arg(request, "step"))

    @wrappers.Request.application
    def _serve_ranges(self, request):
        return self._json(request, self.ranges_impl, _arg(request, "run"),
                          _arg(request, "layer", required=False), _image_kind(request))

    @wrappers.Request.application
    def _serve_probes(self, request):
        return self._json(request, self.probes_impl, _arg(request, "run"))

    @wrappers.Request.application
    def _serve_predictions(self, request):
        return self._json(request, self.predictions_impl, _arg(request, "run"),
                          _int_arg(request, "step"))

    @wrappers.Request.application
    def _serve_plan(self, request):
        return self._json(request, self.plan_impl, _arg(request, "run"), _int_arg(request, "step"))

    @wrappers.Request.application
    def _serve_stats(self, request):
        return self._json(request, self.stats_impl, _arg(request, "run"), _int_arg(request, "step"),
                          _arg(request, "layer", required=False))

    @wrappers.Request.application
    def _serve_health(self, request):
        layer = _arg(request, "layer", required=False)
        stat = _arg(request, "stat", required=layer is not None) if layer is not None else None
        return self._json(request, self.health_impl, _arg(request, "run"), layer, stat)

    @wrappers.Request.application
    def _serve_image(self, request):
        ctx, eid = self._ctx(request)
        run, layer, kind = _arg(request, "run"), _arg(request, "layer", required=False), _image_kind(request)
        step = _int_arg(request, "step")
        probe = _int_arg(request, "probe", required=False, default=0)
        series = self._series(ctx, eid, run, layer, kind)
        return self._png(request, ctx, eid, series, step, metadata.image_position(probe))

    @wrappers.Request.application
    def _serve_probe_image(self, request):
        ctx, eid = self._ctx(request)
        run, probe = _arg(request, "run"), _int_arg(request, "probe")
        series, step, position = self.probe_image_position(ctx, eid, run, probe, _arg(request, "input", False))
        return self._png(request, ctx, eid, series, step, position)

    def _png(self, request, ctx, eid, series, step, position):
        item = self._item(ctx, eid, series, step, position)
        etag = None
        if item is not None:
            # The ETag names the blob (its step's wall time included), so a
            # re-written step gets a new one.
            etag = '"%s"' % hashlib.sha1(repr((series.run, series.tag, step, position,
                                               item[0])).encode()).hexdigest()
            if _holds(request, etag):
                return _not_modified(etag, "private, max-age=%d" % _IMAGE_MAX_AGE)
        # 404s for what the index lacks
        data, _, _ = self._with_neighbours(ctx, eid, series, step, position,
                                           lambda: self._blob(ctx, eid, series, step, position))
        if not data.startswith(b"\x89PNG"):
            raise errors.NotFoundError("item %d of step %d is not an image" % (position - 1, step))
        return http_util.Respond(request, data, "image/png", expires=_IMAGE_MAX_AGE, headers=[("ETag", etag)])

    def _static_app(self, name):
        mime = STATIC_FILES[name]
        path = os.path.join(self._frontend, name)

        @wrappers.Request.application
        def serve(request):
            try:
                with open(path, "rb") as f:
                    content = f.read()
            except OSError:
                raise errors.NotFoundError("asset %r is missing from this installation" % name) from None
            return http_util.Respond(request, content, mime)

        return serve


def _holds(request, etag):
    """Whether the client says it holds the answer with ``etag``: its
    If-None-Match, as werkzeug parses it, lists the tag (weak or strong: a
    GET compares them weakly, RFC 9110 13.1.2) or is ``*``."""
    tag, _ = werkzeug_http.unquote_etag(etag)
    return request.if_none_match.contains_weak(tag)


def _not_modified(etag, cache_control):
    """The 304 answer to a client that holds the answer with ``etag``."""
    resp = wrappers.Response(status=304)
    resp.headers["ETag"] = etag
    resp.headers["Cache-Control"] = cache_control
    return resp


def _tile_ranges(info):
    """(per-tile minima, per-tile maxima) of one step's info record over its
    probes (a missing value counts as 0); raises TypeError or ValueError on
    a malformed record."""
    tiles_min, tiles_max = None, None
    for probe in info.get("probes", []):
        mins = [0.0 if v is None else float(v) for v in probe.get("min", [])]
        maxs = [0.0 if v is None else float(v) for v in probe.get("max", [])]
        tiles_min = mins if tiles_min is None else [min(a, b) for a, b in zip(tiles_min, mins)]
        tiles_max = maxs if tiles_max is None else [max(a, b) for a, b in zip(tiles_max, maxs)]
    return tiles_min or [], tiles_max or []


def _finite_or_none(values):
    """Numbers for JSON: non-finite ones (NaN, +-Inf) become null."""
    return [v if math.isfinite(v) else None for v in (float(x) for x in values)]


def _image_kind(request):
    kind = _arg(request, "kind")
    if kind not in metadata.IMAGE_KINDS:
        raise errors.InvalidArgumentError("kind must be one of %s; got %r"
                                          % (", ".join(metadata.IMAGE_KINDS), kind))
    return kind


def _run_tag_filter(run, tag):
    from tensorboard.data import provider

    return provider.RunTagFilter(runs=[run], tags=[tag])
