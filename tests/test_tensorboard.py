"""A real `tensorboard` process under both data loaders serves every documented route."""

import json
import os
import re
from urllib.parse import quote

import pytest

from tb_layerview import render
from helpers import HOSTILE_LAYER, HOSTILE_RUN, MALFORMED, http_get, start_tensorboard, stop, wait_for, write_malformed

pytestmark = [pytest.mark.tensorboard, pytest.mark.xdist_group("tensorboard")]

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "http_api.md")
PLUGIN = "/data/plugin/tb_layerview/"


def documented_examples():
    """(route, example path) for every route section of docs/http_api.md."""
    text = open(DOC, encoding="utf-8").read()
    routes = re.findall(r"^## GET (/\w+)", text, re.M)
    examples = re.findall(r"^Example: `GET (/data/plugin/tb_layerview/[^`]+)`", text, re.M)
    return routes, examples


@pytest.fixture(scope="module", params=["true", "false"], ids=["load_fast", "python_loader"])
def server(request, logdir):
    proc, url = start_tensorboard(logdir, "--load_fast=%s" % request.param)

    def loaded():
        status, _, body = http_get(url + PLUGIN + "runs")
        runs = json.loads(body)["runs"] if status == 200 else []
        return len(runs) == 3 and len(runs[0]["steps"]) == 16 and runs[0]["has_config"]

    try:
        wait_for(loaded, timeout=120)
        yield url
    finally:
        stop(proc)


def test_plugin_is_listed_and_enabled(server):
    """plugins_listing shows the Layer View tab, enabled, loaded as an ES module in an iframe."""
    status, _, body = http_get(server + "/data/plugins_listing")
    entry = json.loads(body)["tb_layerview"]
    assert entry["enabled"] is True and entry["tab_name"] == "Layer View"
    assert entry["loading_mechanism"] == {"type": "IFRAME", "module_path": PLUGIN + "index.js"}


def test_all_fifteen_epochs_and_step_zero_are_served(server):
    """All 16 steps of a 15-epoch run are served, not TensorBoard's default 10."""
    status, _, body = http_get(server + PLUGIN + "steps?run=cnn&layer=conv1&kind=activations")
    assert [s["step"] for s in json.loads(body)["steps"]] == list(range(16))
    for step in (0, 7, 15):
        status, headers, png = http_get(server + PLUGIN + "image?run=cnn&layer=conv1&kind=activations&step=%d&probe=0" % step)
        assert status == 200 and headers["Content-Type"] == "image/png"
        assert render.decode_png(png).shape == (21, 32, 2)


def test_every_documented_route_answers_as_documented(server):
    """Each route in docs/http_api.md has an example that answers 200 with the documented type."""
    routes, examples = documented_examples()
    assert routes == ["/runs", "/config", "/steps", "/info", "/image", "/ranges", "/probes",
                      "/probe_image", "/predictions", "/plan", "/stats", "/health"]
    assert [e.split("?")[0].rsplit("/", 1)[1] for e in examples] == [r[1:] for r in routes]
    for path in examples:
        status, headers, body = http_get(server + path)
        assert status == 200, (path, body[:200])
        if "image" in path.split("?")[0]:
            assert headers["Content-Type"] == "image/png" and body[:4] == b"\x89PNG"
            assert "max-age=31536000" in headers["Cache-Control"] and headers.get("ETag")
        else:
            assert headers["Content-Type"].startswith("application/json")
            json.loads(body)


def test_image_revalidation_gets_304(server):
    """A repeated image request with its ETag is answered 304 Not Modified."""
    url = server + PLUGIN + "image?run=cnn&layer=conv2&kind=activations&step=3&probe=1"
    _, headers, _ = http_get(url)
    status, _, body = http_get(url, headers={"If-None-Match": headers["ETag"]})
    assert status == 304 and body == b""


@pytest.mark.parametrize("path, status", [
    ("image?run=cnn&layer=conv1&kind=activations&step=abc", 400),
    ("image?run=cnn&layer=conv1&kind=activations&step=16&probe=0", 404),
    ("image?run=cnn&layer=conv1&kind=activations&step=1&probe=99", 404),
    ("image?run=ghost&layer=conv1&kind=activations&step=1", 404),
    ("image?run=cnn&layer=conv1&kind=%3Cscript%3E&step=1", 400),
    ("info?run=cnn&layer=..%2F..%2Fetc&kind=activations&step=1", 404),
    ("config", 400),
    ("predictions?run=cnn&step=-5", 400),
    ("probe_image?run=cnn&probe=0&input=%3Cscript%3E", 404),
    ("probe_image?run=cnn&probe=3", 404),
    ("..%2f..%2fsetup.py", 404),
    ("%2e%2e%2fplugin.py", 404),
    ("index.js%2f..%2f..%2fplugin.py", 404),
    ("static/../../plugin.py", 404),
])
def test_hostile_requests_get_4xx_never_500(server, path, status):
    """Bad numbers, unknown names and traversal attempts are 4xx and leak nothing."""
    code, _, body = http_get(server + PLUGIN + path)
    assert code == status, body[:300]
    assert b"import" not in body


def test_hostile_names_round_trip_through_the_server(server):
    """A run and a layer named with HTML and unicode are listed and served intact."""
    _, _, body = http_get(server + PLUGIN + "runs")
    odd = next(r for r in json.loads(body)["runs"] if r["run"] == HOSTILE_RUN)
    from helpers import ODD_LAYER

    assert [l["path"] for l in odd["layers"]] == [HOSTILE_LAYER, "a/b c ü", ODD_LAYER]
    status, _, _ = http_get(server + PLUGIN + "image?run=%s&layer=%s&kind=activations&step=2&probe=1"
                            % (quote(HOSTILE_RUN, safe=""), quote(HOSTILE_LAYER, safe="")))
    assert status == 200


def test_static_assets_have_fixed_types(server):
    """The entry module and stylesheet are served with JavaScript and CSS types."""
    status, headers, body = http_get(server + PLUGIN + "index.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert b"export async function render" in body
    status, headers, _ = http_get(server + PLUGIN + "style.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")


def test_path_prefix_and_experiment_urls(logdir):
    """Under --path_prefix, and under /experiment/<id>/ URLs, the routes answer the same."""
    proc, url = start_tensorboard(logdir, "--path_prefix", "/tb/prefix", "--load_fast=false")
    try:
        assert url.endswith("/tb/prefix")
        runs = wait_for(lambda: json.loads(http_get(url + PLUGIN + "runs")[2])["runs"])
        assert [r["run"] for r in runs] == ["cnn", "mlp", HOSTILE_RUN]
        status, _, body = http_get(url + "/experiment/some-id" + PLUGIN + "probes?run=cnn")
        assert status == 200 and json.loads(body)["count"] == 3
        status, _, _ = http_get(url.replace("/tb/prefix", "") + PLUGIN + "runs")
        assert status == 404
    finally:
        stop(proc)


def test_explicit_samples_per_plugin_still_wins(logdir):
    """--samples_per_plugin=tb_layerview=5 keeps 5 steps, as the user asked."""
    proc, url = start_tensorboard(logdir, "--samples_per_plugin", "tb_layerview=5", "--load_fast=false")
    try:
        steps = wait_for(lambda: json.loads(http_get(url + PLUGIN + "steps?run=cnn&layer=conv1&kind=activations")[2])["steps"])
        assert len(steps) == 5 and steps[-1]["step"] == 15
    finally:
        stop(proc)


def test_both_loaders_answer_identically_for_odd_layer_names(logdir):
    """Layers named with '"', '\\', "'", '<', '%', spaces and non-ASCII letters: every route gives the
    same status and content under --load_fast=true and false (no request succeeds under only one), and
    the run listings are the same."""
    from helpers import ODD_LAYER

    servers = [start_tensorboard(logdir, "--load_fast=%s" % lf) for lf in ("true", "false")]
    try:
        for _, url in servers:
            wait_for(lambda: any(l["path"] == ODD_LAYER for r in json.loads(http_get(url + PLUGIN + "runs")[2])["runs"]
                                 for l in r["layers"]), timeout=120)
        run = quote(HOSTILE_RUN, safe="")
        paths = []
        for layer in (ODD_LAYER, HOSTILE_LAYER, "a/b c ü"):
            lq = quote(layer, safe="")
            for kind in ("activations", "filters"):
                paths += ["steps?run=%s&layer=%s&kind=%s" % (run, lq, kind),
                          "info?run=%s&layer=%s&kind=%s&step=1" % (run, lq, kind),
                          "image?run=%s&layer=%s&kind=%s&step=1&probe=0" % (run, lq, kind),
                          "ranges?run=%s&layer=%s&kind=%s" % (run, lq, kind)]
        answers = []
        for _, url in servers:
            answers.append([http_get(url + PLUGIN + p)[::2] for p in paths])
        fast, python = answers
        assert [s for s, _ in fast] == [s for s, _ in python]
        assert sum(s == 200 for s, _ in fast) >= 12
        for path, (s1, b1), (_, b2) in zip(paths, fast, python):
            if path.startswith("image") or s1 != 200:
                assert b1 == b2, path
            else:
                one, two = json.loads(b1), json.loads(b2)
                one.pop("wall_time", None), two.pop("wall_time", None)
                assert one == two, path
        # A layer's class is written in one of its series only (summary ops): both loaders, which list
        # the series in different orders, take it from there.
        listings = [json.loads(http_get(url + PLUGIN + "runs")[2])["runs"] for _, url in servers]
        assert listings[0] == listings[1]
        layers = {l["path"]: l for r in listings[0] if r["run"] == HOSTILE_RUN for l in r["layers"]}
        assert ODD_LAYER in layers and layers[HOSTILE_LAYER]["class"] == "Odd", layers
    finally:
        for proc, _ in servers:
            stop(proc)


def _keys(obj):
    """Every dict key in a JSON value, at any depth."""
    if isinstance(obj, dict):
        return set(obj) | set().union(*(_keys(v) for v in obj.values()))
    if isinstance(obj, list):
        return set().union(*(_keys(v) for v in obj)) if obj else set()
    return set()


def test_documented_json_examples_name_exactly_the_served_fields(server):
    """Each JSON example of docs/http_api.md uses only keys the real answer has, and its top-level
    keys are all of the answer's (the doc describes what is served, not an older shape)."""
    text = open(DOC, encoding="utf-8").read()
    blocks = re.findall(r"^Example: `GET (/data/plugin/tb_layerview/[^`]+)`\n\n```json\n(.*?)```", text, re.M | re.S)
    assert len(blocks) >= 9
    for path, block in blocks:
        status, _, body = http_get(server + path)
        served = json.loads(body)
        documented = set(re.findall(r'"([A-Za-z_]+)":', block))
        assert documented <= _keys(served), (path, documented - _keys(served))
        top = set(re.findall(r'^[{ ]"([A-Za-z_]+)":', block, re.M))
        if isinstance(served, dict):
            assert set(served) <= top | documented, (path, set(served) - top - documented)


def test_records_of_another_form_get_a_4xx_with_a_message_under_both_loaders(tmp_path):
    """Runs whose series hold records of another form than tb_layerview writes (not JSON, JSON that is
    not an object, fields of other types, no items): /runs still lists every run that holds items, and
    every route answers with a 4xx and a message, never a 500, the same under --load_fast=true and
    false. (A config of {"layers": 5} made /runs answer 500 for every run; a run of empty series was
    listed by the Python loader alone.)"""
    write_malformed(str(tmp_path))
    servers = [start_tensorboard(str(tmp_path), "--load_fast=%s" % lf) for lf in ("true", "false")]
    try:
        for _, url in servers:
            wait_for(lambda: [r["run"] for r in json.loads(http_get(url + PLUGIN + "runs")[2])["runs"]]
                     == sorted(set(MALFORMED) - {"no_items"}), timeout=120)
        paths = []
        for run in MALFORMED:
            paths += [p % run for p in (
                "config?run=%s", "probes?run=%s", "predictions?run=%s&step=1", "plan?run=%s&step=1",
                "stats?run=%s&step=1", "stats?run=%s&step=1&layer=L", "health?run=%s",
                "health?run=%s&layer=L&stat=mean", "steps?run=%s&layer=L&kind=activations",
                "info?run=%s&layer=L&kind=activations&step=1", "info?run=%s&layer=L&kind=filters&step=0",
                "info?run=%s&kind=maximization&step=1", "ranges?run=%s&layer=L&kind=activations",
                "image?run=%s&layer=L&kind=activations&step=1&probe=0", "probe_image?run=%s&probe=0",
                "probe_image?run=%s&probe=1&input=a")]
        answers = [[http_get(url + PLUGIN + p)[::2] for p in paths] for _, url in servers]
        for path, (s1, b1), (s2, b2) in zip(paths, *answers):
            assert s1 < 500 and (s1, b1) == (s2, b2), (path, s1, b1[:200], s2, b2[:200])
            if s1 >= 400:
                assert len(b1) > 20, (path, b1)  # a message, not a bare status
        assert sum(s == 200 for s, _ in answers[0]) < len(paths) // 2
    finally:
        for proc, _ in servers:
            stop(proc)


def test_a_fit_resumed_from_a_checkpoint_reads_the_same_under_both_loaders(tmp_path):
    """Three epochs, then a new model with the saved weights and a new LayerView continuing from epoch 3
    into the same log_dir, as after a restart. The resumed fit used to write step 3 a second time:
    the Python loader served the first fit's step 3 and the Rust one the second's (other wall times,
    other statistics). Both now serve the same steps, wall times and records."""
    import keras
    import numpy as np

    from tb_layerview import LayerView

    rng = np.random.default_rng(0)
    x, y = rng.random((32, 6), dtype=np.float32), rng.integers(0, 3, 32)

    def model():
        m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu", name="hidden"),
                              keras.layers.Dense(3, activation="softmax", name="out")])
        m.compile("adam", "sparse_categorical_crossentropy")
        return m

    log_dir = str(tmp_path / "resumed")
    first = model()
    first.fit(x, y, epochs=3, verbose=0, callbacks=[LayerView(log_dir, probe=(x[:4], y[:4]), budget=None)])
    again = model()
    again.set_weights(first.get_weights())
    again.fit(x, y, initial_epoch=3, epochs=5, verbose=0,
              callbacks=[LayerView(log_dir, probe=(x[:4], y[:4]), budget=None)])
    servers = [start_tensorboard(str(tmp_path), "--load_fast=%s" % lf) for lf in ("true", "false")]
    try:
        for _, url in servers:
            wait_for(lambda: [len(r["steps"]) for r in json.loads(http_get(url + PLUGIN + "runs")[2])["runs"]]
                     == [6], timeout=120)
        paths = ["runs", "config?run=resumed", "steps?run=resumed&layer=hidden&kind=activations"]
        paths += ["%s?run=resumed&step=%d" % (route, step) for route in ("stats", "plan", "predictions")
                  for step in (2, 3, 4)]
        answers = [[http_get(url + PLUGIN + p)[::2] for p in paths] for _, url in servers]
        for path, (s1, b1), (s2, b2) in zip(paths, *answers):
            assert s1 == 200 and s2 == 200, (path, s1, s2)
            assert json.loads(b1) == json.loads(b2), path
    finally:
        for proc, _ in servers:
            stop(proc)
