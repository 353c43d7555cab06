"""The plugin's HTTP routes over TensorBoard's real WSGI app and data provider."""

import json
import os
import subprocess
import sys
import types
from urllib.parse import quote

import numpy as np
import pytest

from tb_layerview import metadata, render
from tb_layerview.plugin import STATIC_FILES, LayerViewLoader
from helpers import HOSTILE_LAYER, HOSTILE_RUN, json_of, layer_series, read_series, wsgi_client

# Its module-scoped fixture is built once when the suite runs on several workers.
pytestmark = pytest.mark.xdist_group("plugin")

BASE = "/data/plugin/tb_layerview/"


@pytest.fixture(scope="module")
def client(logdir):
    return wsgi_client(logdir)


def get(client, route, **params):
    q = "&".join("%s=%s" % (k, quote(str(v), safe="")) for k, v in params.items())
    return client.get(BASE + route + ("?" + q if q else ""))


def get_json(client, route, **params):
    resp = get(client, route, **params)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers["Content-Type"].startswith("application/json")
    return json.loads(resp.get_data())


def test_runs_lists_every_run_with_layers_in_model_order_and_all_steps(client):
    """GET /runs: runs sorted, layers in model order with kinds, every one of 16 steps."""
    runs = get_json(client, "runs")["runs"]
    assert [r["run"] for r in runs] == ["cnn", "mlp", HOSTILE_RUN]
    cnn = runs[0]
    assert [s["step"] for s in cnn["steps"]] == list(range(16))
    assert cnn["probe_count"] == 3 and cnn["has_config"] is True
    assert [(l["path"], l["class"], l["index"], l["layout"], sorted(l["kinds"])) for l in cnn["layers"]] == [
        ("conv1", "Conv2D", 0, "grid", ["activations", "filters"]),
        ("pool1", "MaxPooling2D", 1, "grid", ["activations"]),
        ("conv2", "Conv2D", 2, "grid", ["activations", "filters", "units"]),
        ("flatten", "Flatten", 3, "vector", ["activations"]),
        ("predictions", "Dense", 4, "vector", ["activations", "filters"]),
    ]
    assert cnn["layers"][0]["output_shape"] == [10, 10, 6]
    assert cnn["layers"][0]["kinds"]["activations"]["max_step"] == 15


def test_hostile_run_and_layer_names_round_trip(client):
    """Names with HTML, spaces and unicode come back intact and address their data."""
    runs = get_json(client, "runs")["runs"]
    odd = next(r for r in runs if r["run"] == HOSTILE_RUN)
    assert odd["layers"][0]["path"] == HOSTILE_LAYER == odd["layers"][0]["name"]
    assert (odd["layers"][1]["path"], odd["layers"][1]["name"], odd["layers"][1]["parent"]) == ("a/b c ü", "b c ü", "a")
    info = get_json(client, "info", run=HOSTILE_RUN, layer=HOSTILE_LAYER, kind="activations", step=1)
    assert info["layer"] == HOSTILE_LAYER and info["run"] == HOSTILE_RUN
    resp = get(client, "image", run=HOSTILE_RUN, layer=HOSTILE_LAYER, kind="activations", step=1, probe=1)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "image/png"


def test_image_is_the_stored_png_with_long_lived_cache_headers(client, logdir):
    """GET /image returns the exact PNG written, cacheable, with an ETag and 304 on revalidation."""
    series = read_series(logdir)
    expected = layer_series(series, "cnn")[("activations", "conv1")][7][1 + 2]
    resp = get(client, "image", run="cnn", layer="conv1", kind="activations", step=7, probe=2)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "image/png"
    assert resp.get_data() == expected
    assert render.decode_png(resp.get_data()).shape == (21, 32, 2)
    assert "max-age=31536000" in resp.headers["Cache-Control"]
    etag = resp.headers["ETag"]
    again = client.get(BASE + "image?run=cnn&layer=conv1&kind=activations&step=7&probe=2",
                       headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["ETag"] == etag
    weak = client.get(BASE + "image?run=cnn&layer=conv1&kind=activations&step=7&probe=2",
                      headers={"If-None-Match": '"0", W/' + etag})
    assert weak.status_code == 304
    other = get(client, "image", run="cnn", layer="conv1", kind="activations", step=8, probe=2)
    assert other.headers["ETag"] != etag


def test_filters_image_and_info(client):
    """Filters: one RGBA image for a first conv layer on RGB input; info describes it."""
    info = get_json(client, "info", run="cnn", layer="conv1", kind="filters", step=3)
    assert info["rgb"] is True and info["channels"] == 6 and info["kernel_shape"] == [3, 3, 3, 6]
    img = render.decode_png(get(client, "image", run="cnn", layer="conv1", kind="filters", step=3).get_data())
    assert img.shape == (7, 11, 4)


def test_json_routes_answer_as_documented_and_are_not_cached(client):
    """/config, /steps, /info, /ranges, /probes, /predictions return the documented JSON."""
    config = get_json(client, "config", run="cnn")
    assert config["format_version"] == metadata.FORMAT_VERSION
    assert [l["path"] for l in config["layers"]] == ["conv1", "pool1", "conv2", "flatten", "predictions"]
    steps = get_json(client, "steps", run="cnn", layer="conv2", kind="activations")
    assert [s["step"] for s in steps["steps"]] == list(range(16))
    assert get_json(client, "steps", run="cnn", kind="predictions")["steps"][0]["step"] == 0
    info = get_json(client, "info", run="cnn", layer="conv2", kind="activations", step=15)
    assert (info["rows"], info["cols"], info["shown"], info["step"]) == (2, 2, 4, 15)
    assert len(info["probes"]) == 3 and set(info["probes"][0]) == {"min", "max", "mean", "std", "zero", "nan", "inf"}
    assert all(len(v) == 4 for v in info["probes"][0].values())
    ranges = get_json(client, "ranges", run="cnn", layer="conv2", kind="activations")
    assert len(ranges["steps"]) == 16 and len(ranges["tile_min"]) == 4
    assert ranges["max"] == max(s["max"] for s in ranges["steps"])
    probes = get_json(client, "probes", run="cnn")
    assert probes["count"] == 3 and probes["drawn_input"] == "image"
    assert probes["probes"][0]["label"]["name"] in ("top", "bottom")
    preds = get_json(client, "predictions", run="cnn", step=15)
    assert len(preds["probes"]) == 3 and preds["step"] == 15
    resp = get(client, "runs")
    assert "max-age" not in resp.headers.get("Cache-Control", "")
    probe_png = get(client, "probe_image", run="cnn", probe=0)
    assert render.decode_png(probe_png.get_data()).shape == (12, 12, 4)


BAD_QUERIES = [
    ("image", {"run": "nope", "layer": "conv1", "kind": "activations", "step": 0}, 404, "no tb_layerview data for run 'nope'"),
    ("image", {"run": "cnn", "layer": "nope", "kind": "activations", "step": 0}, 404, "run 'cnn' has no layer 'nope'"),
    ("image", {"run": "cnn", "layer": "pool1", "kind": "filters", "step": 0}, 404, "layer 'pool1' of run 'cnn' has no filters"),
    ("image", {"run": "cnn", "layer": "conv1", "kind": "weights", "step": 0}, 400, "kind must be one of"),
    ("image", {"run": "cnn", "layer": "conv1", "kind": "activations", "step": 99}, 404, "has no step 99"),
    ("image", {"run": "cnn", "layer": "conv1", "kind": "activations", "step": "1e3"}, 400, "must be an integer; got '1e3'"),
    ("image", {"run": "cnn", "layer": "conv1", "kind": "activations", "step": -1}, 400, "must be >= 0; got -1"),
    ("image", {"run": "cnn", "layer": "conv1", "kind": "activations", "step": 0, "probe": 3}, 404, "index 4 is out of range"),
    ("image", {"run": "cnn", "layer": "conv1", "kind": "activations", "step": 0, "probe": "x"}, 400, "'probe' must be an integer"),
    ("image", {"run": "cnn", "layer": "conv1", "kind": "activations", "step": "9" * 40}, 404, "has no step"),
    ("image", {"layer": "conv1", "kind": "activations", "step": 0}, 400, "missing query parameter 'run'"),
    ("image", {"run": "cnn", "kind": "activations", "step": 0}, 400, "missing query parameter 'layer'"),
    ("info", {"run": "cnn", "layer": "conv1", "kind": "activations"}, 400, "missing query parameter 'step'"),
    ("steps", {"run": "cnn", "kind": "bogus"}, 400, "unknown kind 'bogus'"),
    ("steps", {"run": "cnn", "kind": "activations"}, 400, "missing query parameter 'layer'"),
    ("config", {"run": "../../etc/passwd"}, 404, "no tb_layerview data"),
    ("predictions", {"run": "cnn", "step": 1000}, 404, "has no step 1000"),
    ("probe_image", {"run": "cnn", "probe": 7}, 404, "out of range"),
    ("ranges", {"run": "mlp", "layer": "hidden", "kind": "nope"}, 400, "kind must be one of"),
]


@pytest.mark.parametrize("route, params, status, message", BAD_QUERIES)
def test_bad_queries_get_4xx_with_a_message(client, route, params, status, message):
    """Unknown names, bad numbers and missing parameters are 400/404 with a plain message."""
    resp = get(client, route, **params)
    assert resp.status_code == status
    assert message in resp.get_data(as_text=True)


def test_static_files_come_from_an_allow_list_with_fixed_types(client):
    """Allowed assets are served with hard-coded MIME types; anything else is 404."""
    for name, mime in STATIC_FILES.items():
        resp = client.get(BASE + name)
        assert resp.status_code == 200, name
        assert resp.headers["Content-Type"].startswith(mime)
    for path in ["setup.py", "..%2f..%2fsetup.py", "%2e%2e/plugin.py", "index.js/../plugin.py",
                 "frontend/index.js", "static/index.js", "index.js%00.py", "plugin.py"]:
        resp = client.get(BASE + path)
        assert resp.status_code == 404, path


def test_sampling_hint_zero_reads_every_step(logdir):
    """A --samples_per_plugin hint of 0 means all steps, never none."""
    client = wsgi_client(logdir, sampling_hints={metadata.PLUGIN_NAME: 0})
    steps = get_json(client, "steps", run="cnn", layer="conv1", kind="activations")["steps"]
    assert len(steps) == 16
    client = wsgi_client(logdir, sampling_hints={metadata.PLUGIN_NAME: 4})
    steps = get_json(client, "steps", run="cnn", layer="conv1", kind="activations")["steps"]
    assert len(steps) == 4 and steps[-1]["step"] == 15


def test_loader_keeps_every_sample_unless_the_user_says_otherwise():
    """fix_flags sets tb_layerview=0 in samples_per_plugin but never overrides the user."""
    loader = LayerViewLoader()
    flags = types.SimpleNamespace(samples_per_plugin={})
    loader.fix_flags(flags)
    assert flags.samples_per_plugin == {"tb_layerview": 0}
    flags = types.SimpleNamespace(samples_per_plugin={"tb_layerview": 5, "images": 3})
    loader.fix_flags(flags)
    assert flags.samples_per_plugin == {"tb_layerview": 5, "images": 3}


def test_plugin_metadata_for_the_frontend(client):
    """The plugin names its tab and entry module; is_active defers to the data provider."""
    from tb_layerview.plugin import LayerViewPlugin
    from tensorboard.plugins import base_plugin

    plugin = LayerViewPlugin(base_plugin.TBContext(data_provider=None))
    meta = plugin.frontend_metadata()
    assert (meta.tab_name, meta.es_module_path) == ("Layer View", "/index.js")
    assert "/index.js" in plugin.get_plugin_apps()
    assert plugin.is_active() is False


def test_newer_format_versions_are_skipped_not_fatal():
    """Plugin metadata from a newer format is refused with a message naming the version."""
    from tb_layerview.proto import plugin_data_pb2

    raw = plugin_data_pb2.LayerViewPluginData(version=99, kind="activations").SerializeToString()
    with pytest.raises(metadata.FormatError, match="format version 99 is not supported"):
        metadata.parse_plugin_data(raw)
    with pytest.raises(metadata.FormatError, match="malformed"):
        metadata.parse_plugin_data(b"\xff\xff\xff")


READER_SCRIPT = r"""
import importlib.abc, json, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow.") or name == "keras" or name.startswith("keras."):
            raise ImportError("tensorflow and keras are blocked in this process")
        return None

if sys.argv[2] == "block":
    sys.meta_path.insert(0, NoTensorFlow())

import tb_layerview, tb_layerview.plugin, tb_layerview.metadata, tb_layerview.render
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "imported TF/Keras"
if sys.argv[2] == "block":
    sys.path.insert(0, sys.argv[3])
    from helpers import wsgi_client
    client = wsgi_client(sys.argv[1])
    runs = json.loads(client.get("/data/plugin/tb_layerview/runs").get_data())["runs"]
    img = client.get("/data/plugin/tb_layerview/image?run=cnn&layer=conv1&kind=activations&step=3&probe=0")
    assert img.status_code == 200 and img.get_data()[:4] == b"\x89PNG"
    print(len(runs), "tensorflow" in sys.modules)
else:
    print("ok")
"""


@pytest.mark.parametrize("mode", ["plain", "block"])
def test_reader_side_needs_no_tensorflow(logdir, mode):
    """The plugin imports without TF and serves data with TF and Keras impossible to import."""
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", READER_SCRIPT, logdir, mode, here],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == (["3", "False"] if mode == "block" else ["ok"])


def test_class_view_series_are_listed_and_served(client):
    """Back-query (MLP), maximisation and attribution are listed per run and served without a layer."""
    runs = {r["run"]: r for r in get_json(client, "runs")["runs"]}
    assert set(runs["mlp"]["class_views"]) == {"backquery", "maximization", "attribution"}
    assert set(runs["cnn"]["class_views"]) == {"maximization", "attribution"}
    info = get_json(client, "info", run="mlp", kind="backquery", step=3)
    assert info["classes"] == [0, 1, 2] and info["shape"] == [8, 8] and "layer" not in info
    png = get(client, "image", run="mlp", kind="backquery", step=3, probe=2)
    assert render.decode_png(png.get_data()).shape == (8, 8, 2)
    att = get_json(client, "info", run="cnn", kind="attribution", step=15)
    assert att["method"] == "gradcam" and att["layer"] == "conv2" and len(att["targets"]) == 6
    img = render.decode_png(get(client, "image", run="cnn", kind="attribution", step=15, probe=5).get_data())
    assert img.shape == (12, 12, 2)
    steps = get_json(client, "steps", run="cnn", kind="maximization")["steps"]
    assert [s["step"] for s in steps] == [0, 5, 10, 15]
    config = get_json(client, "config", run="cnn")
    assert "relu" in config["class_views"]["backquery"]["reason"] or "Conv2D" in config["class_views"]["backquery"]["reason"]
    resp = get(client, "image", run="cnn", kind="backquery", step=1)
    assert resp.status_code == 404 and "has no backquery" in resp.get_data(as_text=True)


def test_random_queries_never_get_a_500(client):
    """A few thousand random queries over every route: 200, 304, 400 or 404, never 500."""
    import random

    rnd = random.Random(1234)
    values = {
        "run": ["cnn", "mlp", HOSTILE_RUN, "", "nope", "../cnn", "cnn\x00", "ü" * 300, "%2e%2e"],
        "layer": ["conv1", "predictions", HOSTILE_LAYER, "", "a/b c ü", "../../x", "conv1/"],
        "kind": list(metadata.KINDS) + ["", "ACTIVATIONS", "x" * 1000],
        "step": ["0", "3", "15", "-1", "1.5", "", "9" * 50, "0x10", " 1", "١"],
        "probe": ["0", "2", "3", "-1", "", "nan", "1e2"],
    }
    routes = ["runs", "config", "steps", "info", "image", "ranges", "probes", "probe_image", "predictions"]
    seen = set()
    for _ in range(1500):
        route = rnd.choice(routes)
        params = {k: rnd.choice(v) for k, v in values.items() if rnd.random() < 0.8}
        resp = get(client, route, **params)
        seen.add(resp.status_code)
        assert resp.status_code in (200, 400, 404), (route, params, resp.status_code, resp.get_data()[:200])
    assert {200, 400, 404} <= seen


def test_units_series_is_served_per_layer(client):
    """Unit maximisation images are a per-layer series served by /info and /image."""
    info = get_json(client, "info", run="cnn", layer="conv2", kind="units", step=15)
    assert info["units"] == [0, 1] and info["layer"] == "conv2" and info["shape"] == [12, 12, 3]
    assert [s["step"] for s in get_json(client, "steps", run="cnn", layer="conv2", kind="units")["steps"]] == [0, 5, 10, 15]
    png = get(client, "image", run="cnn", layer="conv2", kind="units", step=15, probe=1)
    assert render.decode_png(png.get_data()).shape == (12, 12, 4)


def test_runs_written_with_summary_ops_alone_still_list_their_steps(tmp_path):
    """A custom loop that writes only activations still gets a run with its steps."""
    import tensorflow as tf

    from tb_layerview import summary

    writer = tf.summary.create_file_writer(str(tmp_path / "loop"))
    with writer.as_default():
        for step in (0, 2, 4):
            summary.activations("feat", np.ones((2, 4, 4, 3)) * step, step=step, layer_class="Custom")
    writer.close()
    run = get_json(wsgi_client(str(tmp_path)), "runs")["runs"][0]
    assert [s["step"] for s in run["steps"]] == [0, 2, 4]
    assert run["probe_count"] == 2 and run["has_probes"] is False and run["has_config"] is False


def test_a_run_whose_probes_draw_no_image_lists_every_probe(tmp_path):
    """Tabular (7 features) or text probes draw no PNG: /runs counts the probes from the probes info,
    and /probes holds them, so the panel can offer each one."""
    import keras

    from tb_layerview import LayerView

    model = keras.Sequential([keras.Input((7,), name="features"), keras.layers.Dense(3, name="out")])
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).random((16, 7)).astype("float32")
    model.fit(x, np.zeros((16, 3)), epochs=1, verbose=0, callbacks=[LayerView(str(tmp_path / "tab"), probe=x[:5])])
    client = wsgi_client(str(tmp_path))
    run = get_json(client, "runs")["runs"][0]
    assert run["has_probes"] is True and run["probe_count"] == 5
    info = get_json(client, "probes", run="tab")
    assert info["drawn_input"] is None and len(info["probes"]) == 5
    assert get(client, "probe_image", run="tab", probe=0).status_code == 404


def test_a_format_version_1_log_with_raw_layer_tags_still_reads(tmp_path):
    """A version-1 series (layer path unencoded in its tag) is listed and served by its metadata."""
    import numpy as np
    import tensorflow as tf
    from tensorboard.compat.proto import summary_pb2

    from tb_layerview import summary
    from tb_layerview.proto import plugin_data_pb2
    from helpers import wsgi_client

    blobs, info = summary.activation_blobs(np.ones((1, 4, 4, 2), np.float32))
    content = plugin_data_pb2.LayerViewPluginData(version=1, kind="activations", layer="old layer/x",
                                                  layer_class="Conv2D", output_shape=[4, 4, 2],
                                                  layout=info["layout"]).SerializeToString()
    meta = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME, content=content),
        data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE)
    writer = tf.summary.create_file_writer(str(tmp_path / "v1run"))
    with writer.as_default():
        for step in range(2):
            tf.summary.write("layerview/activations/old layer/x", tf.constant(blobs, shape=[len(blobs)]),
                             step=step, metadata=meta)
    writer.close()
    client = wsgi_client(str(tmp_path))
    runs = json.loads(client.get("/data/plugin/tb_layerview/runs").get_data())["runs"]
    assert [l["path"] for l in runs[0]["layers"]] == ["old layer/x"]
    resp = client.get("/data/plugin/tb_layerview/info?run=v1run&layer=old%20layer%2Fx&kind=activations&step=1")
    assert resp.status_code == 200 and json.loads(resp.get_data())["shape"] == [4, 4, 2]
    assert metadata.tag_for("activations", "old layer/x") == "layerview/activations/old%20layer/x"


def test_health_lists_every_layer_and_serves_a_channel_by_step_matrix(client):
    """GET /health: every layer output with its unit counts; with layer and stat, one row per step."""
    res = client.get("/data/plugin/tb_layerview/health?run=cnn")
    assert res.status_code == 200
    body = json.loads(res.get_data())
    assert [l["path"] for l in body["layers"]] == ["conv1", "pool1", "conv2", "flatten", "predictions"]
    conv2 = body["layers"][2]
    assert conv2["activation"] == "relu" and conv2["channels"] == 4 and conv2["saturated"] is None
    assert body["steps"] == list(range(16))
    res = client.get("/data/plugin/tb_layerview/health?run=cnn&layer=conv2&stat=active")
    matrix = json.loads(res.get_data())
    assert matrix["channels"] == 4 and len(matrix["values"]) == 16
    assert all(0.0 <= v <= 1.0 for row in matrix["values"] for v in row)
    # Each channel never positive at the last step, with the first step of its unbroken run of such steps.
    dead = []
    for c in range(4):
        column = [row[c] for row in matrix["values"]]
        if column[-1] == 0:
            run_start = len(column) - 1
            while run_start > 0 and column[run_start - 1] == 0:
                run_start -= 1
            dead.append([c, body["steps"][run_start]])
    assert matrix["units"] == {"dead": dead, "saturated": None, "nonfinite": []}, matrix["units"]
    assert conv2["dead"] == len(dead) and conv2["since"].get("dead") == (min(s for _, s in dead) if dead else None)
    for path, status in [("health?run=cnn&layer=conv2&stat=bogus", 400), ("health?run=cnn&layer=conv2", 400),
                         ("health?run=cnn&layer=nope&stat=mean", 404), ("health?run=nope", 404)]:
        res = client.get("/data/plugin/tb_layerview/" + path)
        assert res.status_code == status, (path, res.get_data()[:200])


def test_unit_problems_say_since_when_each_unit_and_layer_has_had_them_without_a_break():
    """A ReLU channel dead at step 0, alive at step 1 and dead again from step 2 is dead "since 2", not
    since 0; a problem that went away keeps only its first step; a step without the layer breaks no run."""
    from tb_layerview import stats

    def step(active, nan=(0, 0, 0), path="c"):
        v = np.zeros((len(stats.STATS), 3))
        v[stats.STATS.index("active")] = active
        v[stats.STATS.index("nan")] = nan
        return stats.decode(*stats.encode([(path, "relu", v)]))

    decoded = [step([0, 0.5, 0], nan=(0, 2, 0)), step([0, 0, 0.5]), step([0, 0, 0], path="other"),
               step([0, 0.25, 0]), step([0, 0.25, 0])]
    steps = [0, 1, 2, 3, 4]
    assert stats.unit_streaks(steps, decoded, "c") == {"dead": [[0, 0], [2, 3]], "saturated": None, "nonfinite": []}
    [c] = [l for l in stats.problems(steps, decoded) if l["path"] == "c"]
    assert (c["dead"], c["nonfinite"], c["since"], c["first"]) == (2, 0, {"dead": 0}, {"dead": 0, "nonfinite": 0})
    assert stats.unit_streaks(steps, decoded, "nope") is None
    every = stats.unit_streaks(steps, decoded)  # every layer in one pass, as the export reads them
    assert sorted(every) == ["c", "other"] and every["c"] == stats.unit_streaks(steps, decoded, "c")
    # The layer's own run breaks when no unit has the problem at a step.
    decoded[2] = step([0.5, 0.5, 0.5])
    [c] = [l for l in stats.problems(steps, decoded) if l["path"] == "c"]
    assert c["since"] == {"dead": 3} and c["first"] == {"dead": 0, "nonfinite": 0}
    assert stats.unit_streaks(steps, decoded, "c")["dead"] == [[0, 3], [2, 3]]


def test_every_image_input_is_served_and_each_layer_names_the_inputs_it_sees(tmp_path):
    """A siamese model with two image inputs and a tabular one: /probes lists both drawn inputs,
    /probe_image serves each (input=right is the right picture), /runs says which inputs each
    layer call depends on, and an unknown input or a probe past the count is a 404 that names it."""
    import keras
    from tb_layerview import LayerView

    rng = np.random.default_rng(0)
    enc_in = keras.Input((8, 8, 3))
    enc = keras.Model(enc_in, keras.layers.GlobalAveragePooling2D(name="gap")(
        keras.layers.Conv2D(2, 3, name="conv")(enc_in)), name="encoder")
    left, right = keras.Input((8, 8, 3), name="left"), keras.Input((8, 8, 3), name="right")
    side = keras.Input((5,), name="side")
    merged = keras.layers.Concatenate(name="cat")([
        keras.layers.Subtract(name="diff")([enc(left), enc(right)]), keras.layers.Dense(2, name="side_dense")(side)])
    model = keras.Model([left, right, side], keras.layers.Dense(1, activation="sigmoid", name="same")(merged))
    model.compile("sgd", "binary_crossentropy")
    xl, xs = rng.random((8, 8, 8, 3), dtype=np.float32), rng.random((8, 5), dtype=np.float32)
    xr = xl[:, ::-1] * 2.0  # the left pictures upside down and twice as bright
    model.fit([xl, xr, xs], np.zeros((8, 1)), epochs=1, verbose=0,
              callbacks=[LayerView(str(tmp_path / "pair"), probe=[xl[:2], xr[:2], xs[:2]], budget=None)])
    client = wsgi_client(str(tmp_path))
    probes = get_json(client, "probes", run="pair")
    assert probes["drawn_inputs"] == ["left", "right"] and probes["inputs"] == ["left", "right", "side"]
    run = get_json(client, "runs")["runs"][0]
    assert run["probe_count"] == 2
    reach = {l["path"]: l["inputs"] for l in run["layers"]}
    assert {l["path"]: l["layer"] for l in run["layers"]}["encoder/conv@2"] == "encoder/conv"
    assert reach["encoder/conv"] == ["left"] and reach["encoder/conv@2"] == ["right"]
    assert reach["side_dense"] == ["side"] and reach["cat"] == ["left", "right", "side"]
    stored = read_series(str(tmp_path))["pair"]
    blobs = next(s for s in stored.values() if s["meta"].kind == metadata.KIND_PROBES)["steps"][0]
    for p in range(2):
        first = get(client, "probe_image", run="pair", probe=p).get_data()
        assert first == get(client, "probe_image", run="pair", probe=p, input="left").get_data() == blobs[1 + p]
        second = get(client, "probe_image", run="pair", probe=p, input="right").get_data()
        assert second == blobs[1 + 2 + p] != first
        # Drawn with its own range, the right picture is the left one upside down.
        np.testing.assert_array_equal(render.decode_png(second), render.decode_png(first)[::-1])
    for params, message in [({"probe": 0, "input": "side"}, "run 'pair' draws no probe input 'side'; drawn: 'left', 'right'"),
                            ({"probe": 2}, "probe 2 is out of range: run 'pair' has 2 probes"),
                            ({"probe": 2, "input": "left"}, "probe 2 is out of range")]:
        resp = get(client, "probe_image", run="pair", **params)
        assert resp.status_code == 404 and message in resp.get_data(as_text=True), resp.get_data(as_text=True)


def test_a_format_version_3_probes_series_reads_with_its_one_drawn_input(tmp_path):
    """Version 3 probes info has drawn_input and no drawn_inputs (nor images): /probes fills drawn_inputs
    in, /runs counts its probes, /probe_image serves them, with or without input=."""
    import json as json_lib

    from tb_layerview import summary, writer

    blobs = summary.probe_blobs({"image": np.random.default_rng(0).random((3, 6, 6, 3)).astype(np.float32)})
    from tb_layerview.proto import plugin_data_pb2

    info = json_lib.loads(blobs[0])
    info.pop("drawn_inputs")
    for p in info["probes"]:
        p.pop("images")
    old = [json_lib.dumps(info).encode()] + blobs[1:]
    w = writer.EventWriter(str(tmp_path / "v3run"))
    meta = metadata.create_summary_metadata(metadata.KIND_PROBES)
    meta.plugin_data.content = plugin_data_pb2.LayerViewPluginData(version=3, kind="probes").SerializeToString()
    w.write(metadata.tag_for(metadata.KIND_PROBES), old, 0, meta)
    w.close()
    client = wsgi_client(str(tmp_path))
    probes = get_json(client, "probes", run="v3run")
    assert probes["drawn_inputs"] == ["image"] and probes["drawn_input"] == "image"
    assert get_json(client, "runs")["runs"][0]["probe_count"] == 3
    assert get(client, "probe_image", run="v3run", probe=2).get_data() == blobs[3]
    assert get(client, "probe_image", run="v3run", probe=2, input="image").get_data() == blobs[3]
    assert get(client, "probe_image", run="v3run", probe=3).status_code == 404


def _write_feature_steps(logdir, run, steps):
    import tensorflow as tf

    from tb_layerview import summary

    writer = tf.summary.create_file_writer(os.path.join(logdir, run))
    with writer.as_default():
        for step in steps:
            summary.activations("feat", np.ones((2, 4, 4, 3)) * step, step=step, layer_class="Custom")
            summary.activations("feat2", np.ones((2, 5)) * step, step=step, layer_class="Dense")
    writer.close()


def _counting_run_encodings(monkeypatch):
    """Counts, by run name, the /runs entries that TensorBoard's JSON
    cleansing walks: each walk is an encoding of that entry."""
    from tensorboard.backend import json_util

    seen = []
    cleanse = json_util.Cleanse

    def counting(obj, *args, **kwargs):
        if isinstance(obj, dict) and "run" in obj and "layers" in obj:
            seen.append(obj["run"])
        return cleanse(obj, *args, **kwargs)

    monkeypatch.setattr(json_util, "Cleanse", counting)
    return seen


def test_runs_answer_encodes_only_the_runs_that_changed(tmp_path, monkeypatch):
    """While one run trains, each poll of GET /runs encodes that run's entry
    alone, and an unchanged log none; the text is TensorBoard's own JSON of
    the answer, byte for byte (names with HTML and unicode included)."""
    from tensorboard.backend import json_util

    from tb_layerview import plugin as plugin_mod
    from helpers import client_for, provider_for

    monkeypatch.setattr(plugin_mod, "_LISTING_TTL", 0.0)  # every request asks the provider again
    monkeypatch.setattr(plugin_mod, "_LISTING_COST_FACTOR", 0)
    logdir = str(tmp_path)
    for run in ("a", HOSTILE_RUN, "c"):
        _write_feature_steps(logdir, run, (0, 1))
    provider, mult = provider_for(logdir)
    client = client_for(logdir, provider, mult)
    encoded = _counting_run_encodings(monkeypatch)

    body = client.get(BASE + "runs").get_data()
    assert sorted(encoded) == sorted(["a", HOSTILE_RUN, "c"])
    answer = json.loads(body)
    assert body == json.dumps(json_util.Cleanse(answer)).encode("ascii")
    assert [r["run"] for r in answer["runs"]] == ["a", "c", HOSTILE_RUN]

    encoded.clear()
    assert client.get(BASE + "runs").get_data() == body
    assert encoded == []  # nothing changed: the kept text is served

    _write_feature_steps(logdir, "a", (2,))
    mult.Reload()
    body = client.get(BASE + "runs").get_data()
    assert encoded == ["a"]
    answer = json.loads(body)
    assert body == json.dumps(json_util.Cleanse(answer)).encode("ascii")
    assert [[s["step"] for s in r["steps"]] for r in answer["runs"]] == [[0, 1, 2], [0, 1], [0, 1]]
    assert answer["runs"][0]["layers"][0]["kinds"]["activations"]["max_step"] == 2


def test_runs_answer_reads_the_runs_side_by_side(tmp_path):
    """Each run's entry takes a few reads of the provider (through the data
    server, tens of milliseconds each): a first GET /runs makes them for
    several runs at once instead of one run after the other."""
    import threading
    import time as time_mod

    from helpers import client_for, provider_for

    logdir = str(tmp_path)
    runs = ["r%d" % i for i in range(6)]
    for run in runs:
        _write_feature_steps(logdir, run, (0, 1))
    provider, mult = provider_for(logdir)

    class SlowReads:
        """The provider, with each read of a series' steps taking a while, as through gRPC."""

        def __init__(self, inner):
            self._inner, self._lock = inner, threading.Lock()
            self.active = self.peak = 0

        def __getattr__(self, name):
            return getattr(self._inner, name)

        def read_blob_sequences(self, *args, **kwargs):
            with self._lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
            try:
                time_mod.sleep(0.05)
                return self._inner.read_blob_sequences(*args, **kwargs)
            finally:
                with self._lock:
                    self.active -= 1

    slow = SlowReads(provider)
    client = client_for(logdir, slow, mult)
    answer = json.loads(client.get(BASE + "runs").get_data())
    assert [r["run"] for r in answer["runs"]] == runs
    assert all([s["step"] for s in r["steps"]] == [0, 1] for r in answer["runs"])
    assert slow.peak >= 2


def test_a_configuration_is_encoded_once_per_step(client, monkeypatch):
    """GET /config serves its kept JSON text again until the run logs a new
    step: a model of hundreds of layers has a configuration of most of a MB."""
    from tensorboard.backend import json_util

    first = get(client, "config", run="cnn").get_data()
    walked = []
    cleanse = json_util.Cleanse

    def counting(obj, *args, **kwargs):
        walked.append(obj)
        return cleanse(obj, *args, **kwargs)

    monkeypatch.setattr(json_util, "Cleanse", counting)
    again = get(client, "config", run="cnn")
    assert again.status_code == 200 and again.get_data() == first
    assert walked == []
    config = json.loads(first)
    assert [l["name"] for l in config["layers"]][:2] == ["conv1", "pool1"]
    assert first == json.dumps(cleanse(config)).encode("ascii")


def test_kept_answers_carry_an_etag_and_a_client_that_holds_one_gets_a_304(tmp_path, monkeypatch):
    """A panel polls GET /runs every few seconds: while nothing changed it
    gets a 304 without a body, and a new step gives a 200 with a new ETag.
    Answers that are not kept (a series' steps) carry none."""
    from tb_layerview import plugin as plugin_mod
    from helpers import client_for, provider_for

    monkeypatch.setattr(plugin_mod, "_LISTING_TTL", 0.0)
    monkeypatch.setattr(plugin_mod, "_LISTING_COST_FACTOR", 0)
    logdir = str(tmp_path)
    _write_feature_steps(logdir, "a", (0, 1))
    provider, mult = provider_for(logdir)
    client = client_for(logdir, provider, mult)

    first = client.get(BASE + "runs", headers={"Accept-Encoding": "gzip"})
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag.startswith('W/"') and first.headers["Content-Encoding"] == "gzip"
    assert "max-age" not in first.headers["Cache-Control"] and "no-cache" in first.headers["Cache-Control"]
    again = client.get(BASE + "runs", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b"" and again.headers["ETag"] == etag
    other = client.get(BASE + "runs", headers={"If-None-Match": 'W/"0000"'})
    assert other.status_code == 200 and other.headers["ETag"] == etag
    # If-None-Match as HTTP has it: a list, either form of the tag, or "*";
    # a tag that merely contains the answer's is another tag.
    opaque = etag[2:]
    for held in ('W/"0000", ' + etag, opaque, '"1111",' + opaque, "*"):
        assert client.get(BASE + "runs", headers={"If-None-Match": held}).status_code == 304, held
    for other_tags in ('W/"x' + opaque[1:], opaque[:-1] + 'x"', "", "W/", '"'):
        assert client.get(BASE + "runs", headers={"If-None-Match": other_tags}).status_code == 200, other_tags

    _write_feature_steps(logdir, "a", (2,))
    mult.Reload()
    changed = client.get(BASE + "runs", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert [s["step"] for s in json.loads(changed.get_data())["runs"][0]["steps"]] == [0, 1, 2]
    ranges = client.get(BASE + "ranges?run=a&layer=feat&kind=activations")
    assert ranges.status_code == 200
    assert client.get(BASE + "ranges?run=a&layer=feat&kind=activations",
                      headers={"If-None-Match": ranges.headers["ETag"]}).status_code == 304
    assert "ETag" not in client.get(BASE + "steps?run=a&layer=feat&kind=activations").headers


def test_an_expired_listing_is_answered_from_while_a_new_one_is_read_beside_it(tmp_path, monkeypatch):
    """A panel's poll that finds the kept listing expired gets it as it is,
    while the provider lists again on another thread; the next poll gets the
    new listing. A listing expired for longer (no request for a while) is
    read again before the answer."""
    import time as real_time

    from tb_layerview import plugin as plugin_mod
    from helpers import client_for, provider_for

    class Clock:
        now = 1000.0

        def monotonic(self):
            return self.now

        def __getattr__(self, name):
            return getattr(real_time, name)

    clock = Clock()
    monkeypatch.setattr(plugin_mod, "time", clock)
    monkeypatch.setattr(plugin_mod, "_LISTING_TTL", 5.0)
    monkeypatch.setattr(plugin_mod, "_LISTING_COST_FACTOR", 0)
    logdir = str(tmp_path)
    _write_feature_steps(logdir, "a", (0, 1))
    provider, mult = provider_for(logdir)
    listed = []
    real_list = provider.list_blob_sequences

    def counted_list(*args, **kwargs):
        listed.append(clock.now)
        return real_list(*args, **kwargs)

    monkeypatch.setattr(provider, "list_blob_sequences", counted_list)
    client = client_for(logdir, provider, mult)

    def steps():
        resp = client.get(BASE + "runs")
        assert resp.status_code == 200
        return [s["step"] for s in json.loads(resp.get_data())["runs"][0]["steps"]]

    assert steps() == [0, 1] and listed == [1000.0]
    _write_feature_steps(logdir, "a", (2,))
    mult.Reload()
    clock.now = 1003.0  # kept
    assert steps() == [0, 1] and listed == [1000.0]
    clock.now = 1007.0  # expired, within twice its keeping time: answered as kept, listed beside
    assert steps() == [0, 1]
    deadline = real_time.monotonic() + 30
    while listed != [1000.0, 1007.0]:
        assert real_time.monotonic() < deadline, listed
        real_time.sleep(0.01)
    for _ in range(3000):  # the background listing is kept once it is read
        if steps() == [0, 1, 2]:
            break
        real_time.sleep(0.01)
    assert steps() == [0, 1, 2] and listed == [1000.0, 1007.0]

    _write_feature_steps(logdir, "a", (3,))
    mult.Reload()
    clock.now = 1030.0  # 23 s after the last listing, kept 5 s: read again before the answer
    assert steps() == [0, 1, 2, 3] and listed == [1000.0, 1007.0, 1030.0]


def test_the_step_index_drops_the_least_recently_used_series_when_full(tmp_path, monkeypatch):
    """The plugin keeps the step index of a bounded number of series; when
    full it forgets the one used longest ago, and a series in use stays
    (reads through the data server cost ~40 ms each)."""
    from tb_layerview import plugin as plugin_mod
    from helpers import client_for, provider_for

    monkeypatch.setattr(plugin_mod, "_INDEX_SERIES", 3)
    logdir = str(tmp_path)
    import tensorflow as tf

    from tb_layerview import summary

    writer = tf.summary.create_file_writer(os.path.join(logdir, "r"))
    with writer.as_default():
        for step in (0, 1):
            for name in ("a", "b", "c", "d"):
                summary.activations(name, np.ones((2, 3)) * step, step=step, layer_class="Dense")
    writer.close()
    provider, mult = provider_for(logdir)
    reads = []

    class Counting:
        def __getattr__(self, name):
            return getattr(provider, name)

        def read_blob_sequences(self, *args, **kwargs):
            reads.append(sorted(kwargs["run_tag_filter"].tags))
            return provider.read_blob_sequences(*args, **kwargs)

    client = client_for(logdir, Counting(), mult)

    def steps(layer):
        resp = client.get(BASE + "steps?run=r&layer=%s&kind=activations" % layer)
        assert resp.status_code == 200
        return [s["step"] for s in json.loads(resp.get_data())["steps"]]

    for layer in ("a", "b", "c", "a", "d"):  # d comes in when a was used after b: b goes
        assert steps(layer) == [0, 1]
    tags = {layer: metadata.tag_for(metadata.KIND_ACTIVATIONS, layer) for layer in "abcd"}
    assert reads == [[tags[l]] for l in "abcd"]
    del reads[:]
    assert steps("a") == [0, 1] and steps("c") == [0, 1] and reads == []
    assert steps("b") == [0, 1] and reads == [[tags["b"]]]


def test_a_costly_listing_is_kept_longer(tmp_path):
    """The panel polls GET /runs every few seconds, and each renewal of the
    listing asks TensorBoard to list every series (the Python loader walks
    every event for it). A listing that took t seconds is kept 40 t seconds
    (1 s at least), so a slow one is not asked for at every poll; a cheap
    one is renewed after 1 s, as before."""
    import time as time_mod

    from helpers import client_for, provider_for

    _write_feature_steps(str(tmp_path), "a", (0, 1))
    provider, mult = provider_for(str(tmp_path))

    class Listing:
        def __init__(self, delay):
            self.delay, self.calls = delay, 0

        def __getattr__(self, name):
            return getattr(provider, name)

        def list_blob_sequences(self, *args, **kwargs):
            self.calls += 1
            time_mod.sleep(self.delay)
            return provider.list_blob_sequences(*args, **kwargs)

    for delay, calls in ((0.15, 1), (0.0, 2)):  # kept 6 s; kept 1 s
        listing = Listing(delay)
        client = client_for(str(tmp_path), listing, mult)
        assert client.get(BASE + "runs").status_code == 200
        time_mod.sleep(1.3)
        assert client.get(BASE + "runs").status_code == 200
        # The renewal may run beside the answer (_LISTING_STALE_FACTOR): wait
        # for it, then long enough that one not due would show.
        deadline = time_mod.monotonic() + 10
        while listing.calls < calls and time_mod.monotonic() < deadline:
            time_mod.sleep(0.01)
        time_mod.sleep(0.3)
        assert listing.calls == calls, (delay, listing.calls)
