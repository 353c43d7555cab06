"""The Layer View panel in a real Chromium (Debian's) driven by Playwright, against a real TensorBoard."""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from helpers import HOSTILE_LAYER, HOSTILE_RUN, panel_frame, start_tensorboard, stop

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

CHROMIUM = os.environ.get("TB_LAYERVIEW_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = os.environ.get("TB_LAYERVIEW_ARTIFACTS",
                           os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "artifacts"))

#: The panel's debug switch (README): exposes window.layerView to the tests.
DEBUG_INIT = "try { localStorage.setItem('tb_layerview.debug', '1'); } catch (e) {}"


def debug_page(browser, **kwargs):
    page = browser.new_page(**kwargs)
    page.add_init_script(DEBUG_INIT)
    return page


GROW_SCRIPT = r"""
import sys, numpy as np, keras
from tb_layerview import LayerView
keras.utils.set_random_seed(0)
m = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3, name="conv"),
                      keras.layers.Flatten(name="flat"), keras.layers.Dense(1, name="out")])
m.compile("sgd", "mse")
x = np.random.default_rng(0).random((16, 4, 4, 1), dtype=np.float32)
start, end = int(sys.argv[2]), int(sys.argv[3])
m.fit(x, np.zeros((16, 1)), initial_epoch=start, epochs=end, verbose=0,
      callbacks=[LayerView(sys.argv[1], probe=x[:1], class_views=False, budget=None)])
"""

LIVE_SCRIPT = r"""
import sys, numpy as np, keras
from tb_layerview import LayerView
m = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh", name="late_dense"),
                      keras.layers.Dense(1, name="late_out")])
m.compile("sgd", "mse")
x = np.random.default_rng(0).random((16, 5), dtype=np.float32)
m.fit(x, np.zeros((16, 1)), epochs=2, verbose=0, callbacks=[LayerView(sys.argv[1], probe=x[:2], budget=None)])
"""


@pytest.fixture(scope="module")
def browser_logdir(logdir, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("browser_logs"))
    for run in os.listdir(logdir):
        shutil.copytree(os.path.join(logdir, run), os.path.join(path, run))
    return path


@pytest.fixture(scope="module")
def tensorboard_url(browser_logdir):
    proc, url = start_tensorboard(browser_logdir)
    deadline = time.time() + 120
    from helpers import http_get

    while time.time() < deadline:
        status, _, body = http_get(url + "/data/plugin/tb_layerview/runs")
        if status == 200 and len(json.loads(body)["runs"]) == 3 and len(json.loads(body)["runs"][0]["steps"]) == 16:
            break
        time.sleep(0.5)
    yield url
    stop(proc)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium not found at %s (scripts/test.sh installs Debian's chromium)" % CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A TensorBoard page with the Layer View tab, collecting errors and dialogs."""

    def __init__(self, browser, url):
        self.page = debug_page(browser, viewport={"width": 1280, "height": 800})
        self.errors, self.dialogs = [], []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("response", lambda r: self.errors.append("%d %s" % (r.status, r.url))
                     if r.status >= 400 and "favicon" not in r.url else None)
        self.page.goto(url)
        self.frame = self.wait_frame()

    def wait_frame(self, timeout=30):
        try:
            return panel_frame(self.page, timeout)
        except AssertionError as e:
            raise AssertionError("%s; errors: %s" % (e, self.errors)) from None

    def eval(self, js, arg=None):
        return self.frame.evaluate(js, arg)

    def wait(self, js, timeout=20):
        self.frame.wait_for_function(js, timeout=timeout * 1000)

    def painted(self, selector="canvas.tiles"):
        """Data URLs of the painted canvases, after the current paint finished."""
        self.wait("() => window.layerView.paintToken > 0")
        self.eval("() => window.layerView.refresh()")
        return self.eval("(sel) => [...document.querySelectorAll(sel)].map(c => c.toDataURL())", selector)

    def state(self):
        return self.eval("() => ({...window.layerView.state, current: window.layerView.currentStep()})")

    def finish(self, shot=None):
        """Saves a screenshot, checks that nothing failed on the page, closes it."""
        if shot:
            self.shot(shot)
        assert self.errors == [] and self.dialogs == [], (self.errors, self.dialogs)
        self.page.close()

    def shot(self, name):
        os.makedirs(ARTIFACTS, exist_ok=True)
        self.page.screenshot(path=os.path.join(ARTIFACTS, name + ".png"))


def tab_url(base, state=""):
    from urllib.parse import quote

    return base + "/#tb_layerview" + ("&lv=" + quote(state, safe="") if state else "")


def test_tab_loads_without_errors_and_lists_the_model_layers(browser, tensorboard_url):
    """The tab loads with no console/page errors; the layer list matches the model, in order."""
    p = Page(browser, tab_url(tensorboard_url, "run=cnn&layer=conv1"))
    p.wait("() => document.querySelectorAll('canvas.tiles').length > 0")
    names = p.eval("() => [...document.querySelectorAll('li.layer .layer-name')].map(e => e.textContent)")
    assert names == ["conv1", "pool1", "conv2", "flatten", "predictions"]
    runs = p.eval("() => [...document.querySelectorAll('li.run .run-name')].map(e => e.textContent)")
    assert runs == ["cnn", "mlp", HOSTILE_RUN]
    p.painted()
    p.shot("activations")
    assert p.errors == [] and p.dialogs == []
    p.page.close()


def test_moving_the_epoch_changes_the_pixels(browser, tensorboard_url):
    """Stepping the shared epoch control repaints the activations with other pixels."""
    p = Page(browser, tab_url(tensorboard_url, "run=cnn&layer=conv1&step=0&probe=0"))
    assert p.state()["current"] == 0
    before = p.painted()
    p.frame.click("button[title^='Next epoch']")
    p.wait("() => window.layerView.currentStep() === 1")
    after = p.painted()
    assert before and after and before != after
    p.eval("() => window.layerView.set({step: 15, follow: false}, false)")
    assert p.painted() != after
    label = p.eval("() => document.querySelector('.epoch-label').textContent")
    assert label == "epoch 15 (16/16)"
    assert p.errors == []
    p.page.close()


def test_two_runs_side_by_side_with_a_placeholder_for_a_missing_layer(browser, tensorboard_url):
    """Two selected runs show as two columns at the same epoch; a missing layer shows a placeholder.
    The run filter (text or regex) shortens the run list, says how many selected runs it hides, and
    leaves the columns as they are."""
    p = Page(browser, tab_url(tensorboard_url, "run=cnn&run=mlp&layer=conv1&step=2"))
    p.wait("() => document.querySelectorAll('.column').length === 2")
    cols = p.eval("() => [...document.querySelectorAll('.column')].map(c => [c.dataset.run, c.getBoundingClientRect().x])")
    assert [c[0] for c in cols] == ["cnn", "mlp"] and cols[0][1] < cols[1][1]
    placeholder = p.eval("() => document.querySelector('.column[data-run=\"mlp\"] .placeholder').textContent")
    assert "not in this run" in placeholder
    listed = "() => [...document.querySelectorAll('li.run .run-name')].map(e => e.textContent)"
    every = p.eval(listed)
    assert {"cnn", "mlp"} <= set(every) and len(every) >= 3, every
    p.frame.fill("input.run-filter", "^M")
    assert p.eval(listed) == ["mlp"]
    count = p.eval("() => document.querySelector('.run-count').textContent")
    assert count == "1 of %d runs; 1 selected run not listed" % len(every), count
    assert p.eval("() => document.querySelectorAll('.column').length") == 2
    p.frame.fill("input.run-filter", "mlp|CNN")
    assert p.eval(listed) == ["cnn", "mlp"]
    p.frame.fill("input.run-filter", "")
    assert p.eval(listed) == every and p.eval("() => document.querySelector('.run-count').textContent") == ""
    p.eval("() => window.layerView.set({layer: 'predictions'})")
    p.shot("side_by_side")
    assert p.errors == []
    p.page.close()


def test_url_state_restores_the_same_view_after_reload_and_back_works(browser, tensorboard_url):
    """The view lives in the URL: a reload restores it; Back returns to the previous layer."""
    p = Page(browser, tab_url(tensorboard_url, "run=cnn&layer=conv1&step=3"))
    p.eval("() => window.layerView.set({layer: 'conv2'})")
    p.eval("() => window.layerView.set({view: 'filters', norm: 'layer', cmap: 'viridis', zoom: 4}, true)")
    p.eval("() => window.layerView.set({step: 5, follow: false}, false)")
    assert "lv=" in p.page.url
    p.page.reload()
    p.frame = p.wait_frame()
    s = p.state()
    assert (s["layer"], s["view"], s["norm"], s["cmap"], s["zoom"], s["current"], s["runs"]) == (
        "conv2", "filters", "layer", "viridis", 4, 5, ["cnn"])
    p.page.go_back()
    p.wait("() => window.layerView.state.view === 'activations'")
    assert p.state()["layer"] == "conv2"
    p.page.go_back()
    p.wait("() => window.layerView.state.layer === 'conv1'")
    assert p.errors == []
    p.page.close()


def test_a_run_written_while_the_page_is_open_appears_without_reload(browser, tensorboard_url, browser_logdir):
    """A new training run shows up live, and the current selection is kept. Its nested name, as
    sweeps write them, is listed whole, wrapped between its parts: the part that tells runs apart
    (the last) used to be cut off by an ellipsis."""
    name = "live/2026-12-03 10:00:00/seed 7 of the sweep"
    p = Page(browser, tab_url(tensorboard_url, "run=cnn&layer=pool1&step=4"))
    out = subprocess.run([sys.executable, "-c", LIVE_SCRIPT, os.path.join(browser_logdir, *name.split("/"))],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    p.wait("() => window.layerView.runs.some(r => r.run === %r && r.steps.length === 3)" % name, timeout=60)
    s = p.state()
    assert (s["layer"], s["current"], s["runs"]) == ("pool1", 4, ["cnn"])
    names = p.eval("() => [...document.querySelectorAll('li.run .run-name')].map(e => e.textContent)")
    assert name in names
    cut, wrapped, single = p.eval("""() => {
        const names = [...document.querySelectorAll('li.run .run-name')];
        const e = names.find(e => e.textContent === %r), one = names.find(e => e.textContent === 'cnn');
        return [e.scrollWidth > e.clientWidth, e.getBoundingClientRect().height, one.getBoundingClientRect().height];
    }""" % name)
    assert not cut and wrapped > 1.5 * single, (cut, wrapped, single)
    assert p.errors == []
    p.page.close()


def test_hostile_layer_name_is_text_and_runs_no_script(browser, tensorboard_url):
    """A layer named <img src=x onerror=alert(1)> is displayed as text; no script runs."""
    state = "run=%s&layer=%s" % (HOSTILE_RUN, HOSTILE_LAYER)
    from urllib.parse import urlencode

    p = Page(browser, tab_url(tensorboard_url, urlencode([("run", HOSTILE_RUN), ("layer", HOSTILE_LAYER)])))
    p.wait("() => document.querySelectorAll('canvas.tiles').length > 0")
    p.painted()
    texts = p.eval("() => [...document.querySelectorAll('li.layer .layer-name')].map(e => e.textContent)")
    assert HOSTILE_LAYER in texts
    assert p.eval("() => document.querySelectorAll('.layerview img:not(.probe-img)').length") == 0
    assert p.eval("() => document.querySelector('.layer-title strong').textContent") == HOSTILE_LAYER
    p.page.wait_for_timeout(500)
    assert p.dialogs == [] and p.errors == []
    assert state  # the state string itself is never parsed as HTML either
    p.page.close()


def test_keyboard_moves_epoch_and_layer(browser, tensorboard_url):
    """Arrow keys move the epoch (left/right) and the layer (up/down); Space plays."""
    p = Page(browser, tab_url(tensorboard_url, "run=cnn&layer=conv1&step=3"))
    p.frame.locator("ul.layers").focus()
    p.page.keyboard.press("ArrowDown")
    p.wait("() => window.layerView.state.layer === 'pool1'")
    p.eval("() => document.activeElement.blur()")
    p.page.keyboard.press("ArrowRight")
    p.wait("() => window.layerView.currentStep() === 4")
    p.page.keyboard.press("ArrowLeft")
    p.page.keyboard.press("ArrowLeft")
    p.wait("() => window.layerView.currentStep() === 2")
    p.page.keyboard.press("ArrowUp")
    p.wait("() => window.layerView.state.layer === 'conv1'")
    p.page.keyboard.press("Space")
    p.wait("() => window.layerView.currentStep() > 2", timeout=10)
    p.page.keyboard.press("Space")
    assert p.errors == []
    p.page.close()


def test_views_normalisation_colormaps_hover_and_enlarge(browser, tensorboard_url):
    """Filters and config views render; normalisations repaint; hover shows stats; click opens a filmstrip."""
    p = Page(browser, tab_url(tensorboard_url, "run=cnn&layer=conv2&step=8&zoom=6"))
    base = p.painted()
    for norm in ("layer", "fixed"):
        p.eval("(n) => window.layerView.set({norm: n}, false)", norm)
        assert p.painted() != base
    p.eval("() => window.layerView.set({norm: 'channel', cmap: 'diverging'}, false)")
    assert p.painted() != base
    box = p.frame.locator("canvas.tiles").first.bounding_box()
    p.page.mouse.move(box["x"] + 4, box["y"] + 4)
    p.wait("() => !document.querySelector('.tooltip').hidden")
    tip = p.eval("() => document.querySelector('.tooltip').textContent")
    assert tip.startswith("channel 0") and "min" in tip and "zeros" in tip
    p.page.mouse.click(box["x"] + 4, box["y"] + 4)
    p.wait("() => document.querySelectorAll('.filmstrip canvas[data-painted]').length === 16")
    p.shot("filmstrip")
    p.page.keyboard.press("Escape")
    p.eval("() => window.layerView.set({view: 'filters', layer: 'conv1', cmap: 'grey'})")
    assert len(p.painted()) == 1
    p.shot("filters")
    p.eval("() => window.layerView.set({view: 'config'})")
    p.wait("() => document.querySelector('table.config') !== null")
    rows = p.eval("() => Object.fromEntries([...document.querySelectorAll('table.config tr')].map(r => [r.cells[0].textContent, r.cells[1].textContent]))")
    assert rows["Class"] == "Conv2D" and rows["filters"] == "6" and rows["Parameters"] == "168"
    p.shot("config")
    assert p.errors == []
    p.page.close()


def test_empty_logdir_shows_how_to_add_the_callback(browser, tmp_path):
    """With no data yet the panel shows a code snippet for the callback, not a blank page."""
    proc, url = start_tensorboard(str(tmp_path))
    try:
        page = debug_page(browser)
        page.goto(url + "/data/plugin_entry.html?name=tb_layerview")
        page.wait_for_selector("pre.snippet", timeout=30000)
        assert "LayerView(" in page.text_content("pre.snippet")
        page.close()
    finally:
        stop(proc)


def test_scrubbing_through_every_epoch_repaints_every_frame(browser, tensorboard_url):
    """Stepping through all epochs with all probes shown paints each step without errors.

    Speed is measured by benchmarks/bench_panel.py, not asserted here.
    """
    p = Page(browser, tab_url(tensorboard_url, "run=cnn&layer=conv1&probe=-1"))
    p.wait("() => window.layerView.debug.firstPaintMs !== undefined")
    seen = p.eval("""async () => {
      const lv = window.layerView;
      const seen = new Set();
      for (const s of lv.steps()) {
        await lv.set({step: s, follow: false}, false);
        seen.add([...document.querySelectorAll('canvas.tiles')].map(c => c.toDataURL()).join('|'));
      }
      return seen.size;
    }""")
    assert seen == 16
    assert p.eval("() => document.querySelectorAll('canvas.tiles').length") == 3
    assert p.errors == []
    p.page.close()


def test_scrubbing_and_arrow_keys_keep_the_run_and_layer_lists_and_move_only_the_selection(browser, tensorboard_url):
    """Each change of state renders the side bar, but rows that show the same
    things keep their elements: with hundreds of layers, building the lists
    again at every epoch took most of a frame. The selection still moves, and
    the lists still change when what they show does."""
    p = Page(browser, tab_url(tensorboard_url, "run=cnn&layer=conv1&probe=0"))
    p.wait("() => window.layerView.debug.firstPaintMs !== undefined")
    p.eval("""() => {
      window.sideBarChanges = {layers: 0, runs: 0};
      for (const [sel, key] of [['ul.layers', 'layers'], ['ul.runs', 'runs']]) {
        new MutationObserver((records) => { window.sideBarChanges[key] += records.length; })
          .observe(document.querySelector(sel), {childList: true});
      }
    }""")
    p.eval("""async () => {
      const lv = window.layerView;
      for (const s of lv.steps()) await lv.set({step: s, follow: false}, false);
    }""")
    p.frame.locator("ul.layers").focus()
    p.page.keyboard.press("ArrowDown")
    p.wait("() => window.layerView.state.layer === 'pool1'")
    p.page.keyboard.press("ArrowDown")
    p.wait("() => window.layerView.state.layer === 'conv2'")
    assert p.eval("() => window.sideBarChanges") == {"layers": 0, "runs": 0}
    selected = p.eval("""() => [...document.querySelectorAll('ul.layers li.layer')]
      .filter(li => li.classList.contains('selected') || li.getAttribute('aria-selected') === 'true')
      .map(li => [li.dataset.path, li.classList.contains('selected'), li.getAttribute('aria-selected')])""")
    assert selected == [["conv2", True, "true"]]
    p.frame.fill("input.layer-filter", "conv")
    p.wait("() => document.querySelectorAll('ul.layers li.layer').length === 2")
    assert p.eval("() => document.querySelector('ul.layers li.selected').dataset.path") == "conv2"
    p.frame.click("li.run:has-text('mlp') input[type=checkbox]")
    p.wait("() => window.layerView.state.runs.length === 2")
    changes = p.eval("() => window.sideBarChanges")
    assert changes["layers"] >= 1 and changes["runs"] >= 1, changes
    assert p.eval("() => [...document.querySelectorAll('li.run input')].filter(b => b.checked).length") == 2
    p.finish()


def test_dark_mode_follows_the_system(browser, tensorboard_url):
    """With the system in dark mode the panel is dark; in light mode it is light."""
    colours = {}
    for scheme in ("dark", "light"):
        page = debug_page(browser, color_scheme=scheme, viewport={"width": 1280, "height": 800})
        page.goto(tensorboard_url + "/data/plugin_entry.html?name=tb_layerview#run=cnn&layer=conv1")
        page.wait_for_function("() => window.layerView && window.layerView.debug.firstPaintMs !== undefined")
        colours[scheme] = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        if scheme == "dark":
            os.makedirs(ARTIFACTS, exist_ok=True)
            page.screenshot(path=os.path.join(ARTIFACTS, "dark_mode.png"))
        page.close()
    assert colours == {"dark": "rgb(32, 33, 36)", "light": "rgb(255, 255, 255)"}


def test_a_failed_request_shows_a_message_not_a_blank_panel(browser, browser_logdir):
    """When TensorBoard goes away, the panel says so and keeps what it showed."""
    proc, url = start_tensorboard(browser_logdir)
    try:
        page = debug_page(browser)
        page.goto(url + "/data/plugin_entry.html?name=tb_layerview#run=cnn&layer=conv1")
        page.wait_for_function("() => window.layerView && window.layerView.debug.firstPaintMs !== undefined",
                               timeout=60000)
    finally:
        stop(proc)
    page.wait_for_selector(".error", timeout=20000)
    assert "Cannot reach TensorBoard" in page.text_content(".error")
    assert page.evaluate("() => document.querySelectorAll('canvas.tiles').length") > 0
    page.close()


def test_class_views_grid_and_attribution_overlay(browser, tensorboard_url):
    """Class views show class x epoch grids per run (or why not); attribution overlays the probes."""
    p = Page(browser, tab_url(tensorboard_url, "run=mlp&run=cnn&view=classes&step=3&layer=conv2"))
    p.wait("() => document.querySelectorAll('table.class-grid').length === 4")
    counts = p.eval("""() => Object.fromEntries([...document.querySelectorAll('.column')].map(c => [c.dataset.run,
        [...c.querySelectorAll('.class-view')].map(s => [s.dataset.kind, s.querySelectorAll('img.class-img').length])]))""")
    assert counts["mlp"] == [["maximization", 3 * 2], ["backquery", 3 * 4]]
    assert counts["cnn"][1:] == [["backquery", 0], ["units", 2 * 4]]
    reason = p.eval("() => document.querySelector('.column[data-run=\"cnn\"] .class-view[data-kind=\"backquery\"] .placeholder').textContent")
    assert "Conv2D" in reason and "activation maximisation" in reason
    p.wait("() => [...document.querySelectorAll('img.class-img')].every(i => i.complete && i.naturalWidth > 0)")
    p.shot("class_views")
    p.eval("() => window.layerView.set({view: 'activations', runs: ['cnn'], layer: 'conv1', step: 15, follow: false})")
    p.wait("() => { const c = document.querySelector('canvas.attribution'); return c && !c.hidden; }")
    p.shot("attribution")
    p.eval("() => window.layerView.set({attr: false}, false)")
    p.wait("() => document.querySelector('canvas.attribution').hidden")
    assert p.errors == []
    p.page.close()


def test_new_epochs_of_a_training_run_appear_and_follow_latest_tracks_them(browser, browser_logdir):
    """While a run trains, its new epochs show up without a reload and "follow latest" moves to them."""
    run_dir = os.path.join(browser_logdir, "grow")
    first = subprocess.run([sys.executable, "-c", GROW_SCRIPT, run_dir, "0", "2"], capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    proc, url = start_tensorboard(browser_logdir)
    try:
        page = debug_page(browser)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/data/plugin_entry.html?name=tb_layerview#run=grow&layer=conv")
        page.wait_for_function("() => window.layerView && window.layerView.debug.firstPaintMs !== undefined",
                               timeout=60000)
        assert page.evaluate("() => window.layerView.currentStep()") == 2
        rebuilds = page.evaluate("() => window.layerView.debug.rebuilds")
        more = subprocess.run([sys.executable, "-c", GROW_SCRIPT, run_dir, "2", "5"], capture_output=True,
                              text=True, timeout=300)
        assert more.returncode == 0, more.stderr[-2000:]
        page.wait_for_function("() => window.layerView.currentStep() === 5", timeout=60000)
        page.wait_for_function("() => document.querySelector('.epoch-label').textContent.startsWith('epoch 5')")
        page.wait_for_function("() => !document.querySelector('canvas.tiles').classList.contains('stale')",
                               timeout=10000)
        assert "No epoch" not in page.text_content(".cell-status")
        # New epochs repaint in place: the columns are not rebuilt (scroll and hover survive).
        assert page.evaluate("() => window.layerView.debug.rebuilds") == rebuilds == 1
        assert errors == []
        page.close()
    finally:
        stop(proc)


THIN_SCRIPT = r"""
import sys, numpy as np, keras
from tb_layerview import LayerView
keras.utils.set_random_seed(0)
layers = [keras.Input((8, 8, 3))]
for b in range(1, 13):  # a long, flat list of blocks, as in keras.applications models
    # The ReLU keeps the name Keras makes up (re_lu, re_lu_1, ...), as MobileNetV3's do.
    layers += [keras.layers.Conv2D(4, 3, padding="same", name="block_%d_conv" % b),
               keras.layers.ReLU(), keras.layers.BatchNormalization(name="block_%d_bn" % b)]
layers += [keras.layers.GlobalAveragePooling2D(name="gap"), keras.layers.Dense(2, name="out")]
m = keras.Sequential(layers)
m.compile("sgd", "mse")
x = np.random.default_rng(0).random((16, 8, 8, 3), dtype=np.float32)
m.fit(x, np.zeros((16, 2)), epochs=4, verbose=0,
      callbacks=[LayerView(sys.argv[1], probe=x[:2], class_views=False,
                           budget={"time_share": None, "bytes_per_epoch": 14000})])
"""


def test_thinned_images_say_why_and_long_layer_lists_fold_into_blocks(browser, tmp_path):
    """A budget-thinned layer shows the nearest drawn epoch with the plan's reason; 38 layers fold into blocks,
    each with the unnamed layer inside it."""
    logdir = str(tmp_path / "thin_logs")
    out = subprocess.run([sys.executable, "-c", THIN_SCRIPT, os.path.join(logdir, "thin")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    from helpers import read_series

    series = read_series(logdir)["thin"]
    steps = {s["meta"].layer: sorted(s["steps"]) for s in series.values() if s["meta"].kind == "activations"}
    # A layer drawn at some epochs and not at others.
    layer = next(l for l, st in sorted(steps.items()) if l.startswith("block_") and 0 < len(st) < 5)
    missing = next(st for st in range(5) if st not in steps[layer])
    proc, url = start_tensorboard(logdir)
    try:
        p = Page(browser, tab_url(url, "run=thin&layer=%s&step=%d&probe=0" % (layer, missing)))
        p.wait("() => document.querySelector('.thinned') && !document.querySelector('.thinned').hidden")
        notice = p.eval("() => document.querySelector('.thinned').textContent")
        assert notice.startswith("No images at epoch %d (images every " % missing), notice
        assert "to stay within the 14 KB bytes per epoch budget). Showing epoch" in notice
        # The column says what LayerView cost up to that epoch, from the step's plan record.
        plan = json.loads(next(s["steps"][missing][0] for s in series.values() if s["meta"].kind == "plan"))
        p.wait("() => !document.querySelector('.run-cost').hidden")
        cost = p.eval("() => document.querySelector('.run-cost').textContent")
        written = re.search(r"([0-9.]+) KB at this epoch \(budget 14 KB\)", cost)
        assert written and abs(float(written.group(1)) - plan["cost"]["bytes"] / 1e3) <= 0.006, (cost, plan["cost"])
        assert ("% of training time so far, " in cost) == (missing > 0), cost
        assert cost.startswith("LayerView: ") and "budget 5%" not in cost  # this run's budget has no time bound
        p.wait("() => document.querySelector('canvas.tiles').width > 0")
        blocks = p.eval("() => [...document.querySelectorAll('li.layer-block')].map(e => e.textContent)")
        assert len(blocks) == 12 and blocks[0] == "▸ block_1 (3)", blocks
        visible = p.eval("() => [...document.querySelectorAll('li.layer .layer-name')].map(e => e.textContent)")
        assert visible == [layer, "gap", "out"]  # folded blocks keep the selected layer
        other = "block_2" if not layer.startswith("block_2_") else "block_3"
        p.frame.click("li.layer-block[data-group='%s']" % other)
        visible = p.eval("() => [...document.querySelectorAll('li.layer .layer-name')].map(e => e.textContent)")
        relu = "re_lu_%d" % (int(other.split("_")[1]) - 1)
        assert visible[:3] == [other + "_conv", relu, other + "_bn"] or \
            visible[1:4] == [other + "_conv", relu, other + "_bn"], visible
        p.frame.fill("input.layer-filter", "relu")
        visible = p.eval("() => [...document.querySelectorAll('li.layer .layer-name')].map(e => e.textContent)")
        assert len(visible) == 12  # a search opens every block
        p.finish("thinned")
    finally:
        stop(proc)


def test_standalone_panel_url_honours_a_tensorboard_style_hash(browser, tensorboard_url):
    """data/plugin_entry.html?name=tb_layerview#tb_layerview&lv=... opens that view, with no failed request."""
    from urllib.parse import quote

    page = debug_page(browser)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append("%d %s" % (r.status, r.url)) if r.status >= 400 else None)
    page.goto(tensorboard_url + "/data/plugin_entry.html?name=tb_layerview#tb_layerview&lv="
              + quote("run=cnn&layer=conv2&step=3&follow=0", safe=""))
    page.wait_for_function("() => window.layerView && window.layerView.debug.firstPaintMs !== undefined", timeout=60000)
    state = page.evaluate("() => ({...window.layerView.state, current: window.layerView.currentStep()})")
    assert state["runs"] == ["cnn"] and state["layer"] == "conv2" and state["current"] == 3
    assert errors == []
    page.close()


DEAD_SCRIPT = r"""
import sys, numpy as np, keras
from tb_layerview import LayerView
keras.utils.set_random_seed(0)
m = keras.Sequential([keras.Input((8, 8, 3)),
                      keras.layers.Conv2D(4, 3, activation="relu", name="dead_conv",
                                          bias_initializer=keras.initializers.Constant(-100.0)),
                      keras.layers.Conv2D(3, 1, activation="relu", name="alive", bias_initializer="ones"),
                      keras.layers.Flatten(name="flat"), keras.layers.Dense(2, activation="softmax", name="out")])
m.compile("sgd", "sparse_categorical_crossentropy")
x = np.random.default_rng(0).random((16, 8, 8, 3), dtype=np.float32)
m.fit(x, np.zeros(16, int), epochs=4, verbose=0, callbacks=[LayerView(sys.argv[1], probe=x[:2], budget=None)])
"""


def test_health_view_names_dead_channels_since_their_first_epoch_and_draws_a_heatmap(browser, tmp_path):
    """The Health view lists the planted dead layer with 4/4 dead units since epoch 0; a click selects it,
    and the heatmap has one column per epoch and one row per channel."""
    logdir = str(tmp_path / "health_logs")
    out = subprocess.run([sys.executable, "-c", DEAD_SCRIPT, os.path.join(logdir, "dead")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    proc, url = start_tensorboard(logdir)
    try:
        p = Page(browser, tab_url(url, "run=dead&layer=alive&view=health"))
        p.wait("() => document.querySelector('table.health-table')")
        rows = p.eval("() => [...document.querySelectorAll('tr.health-row')].map(r => [...r.cells].map(c => c.textContent))")
        assert rows == [["dead_conv", "4 / 4 since 0", "–", "0 / 4", "0"]], rows
        p.frame.click("tr.health-row[data-path='dead_conv']")
        p.wait("() => window.layerView.state.layer === 'dead_conv' && window.layerView.currentStep() === 0")
        p.wait("() => document.querySelector('canvas.heatmap')")
        size = p.eval("() => { const c = document.querySelector('canvas.heatmap'); return [c.width, c.height]; }")
        assert size == [5, 4]
        legend = p.eval("() => document.querySelector('.heat-legend').textContent")
        assert legend.startswith("active (fraction > 0): 0.00 (dark) to 1.00 (bright)")
        units = p.eval("() => document.querySelector('.unit-lines').textContent")
        assert units == "dead (4): channel 0 since 0, 1 since 0, 2 since 0, 3 since 0", units
        p.finish("health")
    finally:
        stop(proc)


def test_health_view_of_runs_side_by_side_asks_only_for_the_layers_each_run_has(browser, tensorboard_url):
    """Health of conv1 beside a run without it: that column says so, and no request fails."""
    p = Page(browser, tab_url(tensorboard_url, "run=cnn&run=mlp&layer=conv1&view=health"))
    p.wait("() => document.querySelector('.column[data-run=\"cnn\"] canvas.heatmap')")
    p.wait("() => !document.querySelector('.column[data-run=\"mlp\"] .health-problems').textContent.startsWith('Loading')")
    notes = p.eval("() => [...document.querySelectorAll('.column[data-run=\"mlp\"] .placeholder')].map(e => e.textContent)")
    assert notes[-1] == "Layer “conv1” is not in this run.", notes
    assert p.eval("() => document.querySelectorAll('.column[data-run=\"mlp\"] canvas.heatmap').length") == 0
    p.finish()


def test_difference_modes_paint_the_change_from_another_epoch(browser, tensorboard_url):
    """Δ previous epoch and Δ first epoch repaint conv1 as a signed change and say from what."""
    p = Page(browser, tab_url(tensorboard_url, "run=cnn&layer=conv1&step=3&probe=0"))
    plain = p.painted()
    p.eval("() => window.layerView.set({diff: 'prev'}, false)")
    p.wait("() => document.querySelector('.cell-status').textContent.startsWith('Δ from epoch 2')")
    prev = p.painted()
    assert prev != plain
    p.eval("() => window.layerView.set({diff: 'first'}, false)")
    p.wait("() => document.querySelector('.cell-status').textContent.startsWith('Δ from epoch 0')")
    assert p.painted() != prev
    p.eval("() => window.layerView.set({diff: 'run', step: 0}, false)")
    p.wait("() => document.querySelector('.cell-status').textContent.startsWith('the reference of Δ first run')")
    assert "diff=run" in p.page.url or "diff%3Drun" in p.page.url
    assert p.errors == [], p.errors
    p.page.close()


SMALL_SCRIPT = r"""
import os, sys, numpy as np, keras
from tb_layerview import LayerView
keras.utils.set_random_seed(0)
# A siamese pair of image inputs, through one encoder.
enc_in = keras.Input((8, 8, 3))
enc = keras.Model(enc_in, keras.layers.GlobalAveragePooling2D(name="gap")(
    keras.layers.Conv2D(2, 3, name="conv")(enc_in)), name="encoder")
left, right = keras.Input((8, 8, 3), name="left"), keras.Input((8, 8, 3), name="right")
side = keras.Input((3,), name="side")  # and a tabular input, through a branch of its own
merged = keras.layers.Concatenate(name="cat")([keras.layers.Subtract(name="diff")([enc(left), enc(right)]),
                                              keras.layers.Dense(2, name="side_dense")(side)])
m = keras.Model([left, right, side], keras.layers.Dense(1, activation="sigmoid", name="same")(merged))
m.compile("sgd", "binary_crossentropy")
x = np.random.default_rng(0).random((8, 8, 8, 3), dtype=np.float32)
xs = np.array([[0.25, 0.5, 0.75]] * 8, dtype=np.float32)
m.fit([x, x[:, ::-1], xs], np.zeros((8, 1)), epochs=1, verbose=0,
      callbacks=[LayerView(os.path.join(sys.argv[1], "pair"), probe=[x[:2], x[:2, ::-1], xs[:2]], budget=None)])
# A classifier of a table and two pictures, whose only convolution sees the second picture.
meta, thumb, photo = keras.Input((3,), name="meta"), keras.Input((6, 6, 3), name="thumb"), keras.Input((8, 8, 3), name="photo")
parts = [keras.layers.Dense(2, name="mdense")(meta), keras.layers.Flatten(name="tflat")(thumb),
         keras.layers.GlobalAveragePooling2D(name="pgap")(keras.layers.Conv2D(2, 3, name="pconv")(photo))]
m3 = keras.Model([meta, thumb, photo], keras.layers.Dense(2, activation="softmax", name="cls")(
    keras.layers.Concatenate(name="all")(parts)))
m3.compile("sgd", "sparse_categorical_crossentropy")
xt3 = np.random.default_rng(2).random((8, 6, 6, 3), dtype=np.float32)
m3.fit([xs, xt3, x], np.arange(8) % 2, epochs=1, verbose=0,
       callbacks=[LayerView(os.path.join(sys.argv[1], "second"), probe=([xs[:2], xt3[:2], x[:2]], np.array([0, 1])),
                            budget=None)])
# A tiny classifier at the default budget: its class views (seconds) never fit in 5% of its epochs.
t = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3, name="c"),
                      keras.layers.Flatten(name="flat"), keras.layers.Dense(3, activation="softmax", name="o")])
t.compile("sgd", "sparse_categorical_crossentropy")
xt = np.random.default_rng(1).random((32, 6, 6, 1), dtype=np.float32)
t.fit(xt, np.arange(32) % 3, epochs=2, verbose=0,
      callbacks=[LayerView(os.path.join(sys.argv[1], "tiny"), probe=(xt[:3], np.arange(3)))])
# A long signal through a Conv1D: a (1996, 6) heat map, more than 4096 pixels.
w = keras.Sequential([keras.Input((2000, 1)), keras.layers.Conv1D(6, 5, name="conv"),
                      keras.layers.GlobalAveragePooling1D(name="gap"), keras.layers.Dense(2, activation="softmax", name="o")])
w.compile("sgd", "sparse_categorical_crossentropy")
xw = np.random.default_rng(3).standard_normal((8, 2000, 1)).astype(np.float32)
w.fit(xw, np.arange(8) % 2, epochs=1, verbose=0,
      callbacks=[LayerView(os.path.join(sys.argv[1], "wave"), probe=xw[:2], budget=None, class_views=False)])
"""


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory):
    """A TensorBoard over SMALL_SCRIPT's two runs."""
    logdir = str(tmp_path_factory.mktemp("small_logs"))
    out = subprocess.run([sys.executable, "-c", SMALL_SCRIPT, logdir], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    proc, url = start_tensorboard(logdir)
    yield url
    stop(proc)


def test_each_branch_of_a_siamese_model_sits_beside_its_own_input(browser, small_runs):
    """encoder/conv@2 (the encoder's call on the right input) shows the right picture, named;
    encoder/conv shows the left one, with the attribution overlay's place."""
    shown = ("() => [...document.querySelectorAll('.probe')].map(s => [s.querySelector('.probe-index').textContent,"
             " s.querySelector('img.probe-img').getAttribute('src'), s.querySelector('img.probe-img').naturalWidth])")
    loaded = "() => { const i = document.querySelector('img.probe-img'); return i && i.complete && i.naturalWidth > 0; }"
    p = Page(browser, tab_url(small_runs, "run=pair&layer=encoder/conv@2&step=1&probe=0"))
    p.wait(loaded)
    [(head, src, width)] = p.eval(shown)
    assert head == "probe 0 · right" and "input=right" in src and width == 8, (head, src, width)
    p.page.goto(tab_url(small_runs, "run=pair&layer=encoder/conv&step=1&probe=0"))
    p.frame = p.wait_frame()
    p.wait(loaded)
    [(head, src, width)] = p.eval(shown)
    assert head == "probe 0 · left" and "input=" not in src and width == 8, (head, src, width)
    assert p.eval("() => document.querySelectorAll('.probe-stack canvas.attribution').length") == 1
    # A layer of the tabular branch stands beside that input's values, not beside a picture.
    p.page.goto(tab_url(small_runs, "run=pair&layer=side_dense&step=1&probe=0"))
    p.frame = p.wait_frame()
    p.wait("() => document.querySelector('.probe-values')")
    side = p.eval("() => [document.querySelector('.probe-index').textContent,"
                  " document.querySelector('.probe-values').textContent, document.querySelectorAll('img.probe-img').length]")
    assert side == ["probe 0 · side", "0.25 0.50 0.75", 0], side
    # The second call's configuration is its layer's, and says which input each call sees.
    p.page.goto(tab_url(small_runs, "run=pair&layer=encoder/conv@2&view=config"))
    p.frame = p.wait_frame()
    p.wait("() => document.querySelector('table.config')")
    rows = p.eval("() => Object.fromEntries([...document.querySelectorAll('table.config tr')].map("
                  "r => [r.cells[0].textContent, r.cells[1].textContent]))")
    assert rows["Path"] == "encoder/conv" and rows["Calls on the probe"] == "2", rows
    assert rows["Depends on inputs"] == "encoder/conv: left · encoder/conv@2: right", rows
    assert re.fullmatch(r"encoder/conv@2 \(\d+, \d+, \d+\) float32", rows["This output"]), rows
    assert "Skipped" not in rows, rows
    # Its filters are its layer's (they said "This layer has no filters").
    p.page.goto(tab_url(small_runs, "run=pair&layer=encoder/conv@2&view=filters&step=1"))
    p.frame = p.wait_frame()
    p.wait("() => document.querySelector('canvas.tiles') && document.querySelector('canvas.tiles').width > 0")
    note = p.eval("() => document.querySelector('.owner-note').textContent")
    assert note == "The filters of encoder/conv, whose output this is.", note
    assert p.eval("() => document.querySelectorAll('.placeholder').length") == 0
    p.finish("siamese")


def test_attribution_maps_go_on_the_picture_of_the_input_they_explain(browser, small_runs):
    """A model of a table and two pictures whose convolution sees the second one: the Grad-CAM overlay
    is drawn on that picture, beside its layers, and not on the first picture."""
    overlay = "() => { const c = document.querySelector('.probe-stack canvas.attribution'); return c && !c.hidden; }"
    p = Page(browser, tab_url(small_runs, "run=second&layer=pconv&step=1&probe=0"))
    p.wait(overlay)
    head = p.eval("() => document.querySelector('.probe-index').textContent")
    title = p.eval("() => document.querySelector('.probe-stack canvas.attribution').title")
    assert head == "probe 0 · photo" and title.startswith("gradcam on pconv for class "), (head, title)
    p.page.goto(tab_url(small_runs, "run=second&layer=tflat&step=1&probe=0"))
    p.frame = p.wait_frame()
    p.wait("() => { const i = document.querySelector('img.probe-img'); return i && i.complete && i.naturalWidth > 0; }")
    assert p.eval("() => document.querySelector('.probe-index').textContent") == "probe 0 · thumb"
    p.page.wait_for_timeout(1500)  # the attribution info has come and gone by now
    assert p.eval(overlay) is False
    p.finish("attribution_input")


def test_class_views_the_budget_deferred_say_why_at_the_shown_epoch(browser, small_runs):
    """A run without activation maximisation says what the shown epoch's plan says (deferred by the
    time budget, with its cost), not only the status written when training started."""
    p = Page(browser, tab_url(small_runs, "run=tiny&layer=c&view=classes&step=2"))
    section = "section.class-view[data-kind='maximization'] .placeholder"
    p.wait("() => { const e = document.querySelector(\"%s\"); return e && e.textContent.startsWith('None up'); }" % section)
    text = p.eval("(sel) => document.querySelector(sel).textContent", section)
    assert re.match(r"None up to epoch 2: deferred to stay within the 5% time budget: it takes about [0-9.e+-]+ s", text), text
    # A 2-epoch fit logs epochs 0 (before training) to 2: the run list says so, not "3 epochs".
    metas = p.eval("() => Object.fromEntries([...document.querySelectorAll('li.run')].map("
                   "r => [r.querySelector('.run-name').textContent, r.querySelector('.run-meta').textContent]))")
    assert metas == {"pair": "epochs 0–1", "second": "epochs 0–1", "tiny": "epochs 0–2", "wave": "epochs 0–1"}, metas
    p.finish("class_views_deferred")


def test_probes_the_budget_did_not_draw_at_an_epoch_say_so_and_are_not_requested(browser, small_runs):
    """At the default budget, epoch 0 is drawn at the cheapest settings, one probe of three. With every
    probe shown (probe=-1) or probe 2 chosen there, the panel used to request images that epoch does not
    hold, and showed an error banner over 404s. Now each undrawn probe says so, with the plan's note, and
    no request fails."""
    p = Page(browser, tab_url(small_runs, "run=tiny&layer=c&step=0&probe=-1"))
    p.wait("() => document.querySelectorAll('.thinned:not([hidden])').length === 2")
    notices = p.eval("() => [...document.querySelectorAll('.cell')].map(c => c.querySelector('.thinned').hidden ? ''"
                     " : c.querySelector('.thinned').textContent)")
    assert notices[0] == "", notices
    for probe, notice in zip((1, 2), notices[1:]):
        assert notice == ("No image of probe %d at epoch 0: only probe 0 is drawn there (images at the cheapest"
                          " settings until an epoch has been timed (8 channels, 1 probe, 256 pixels per tile))."
                          % probe), notice
    p.wait("() => document.querySelector('canvas.tiles').width > 0")
    # Every probe's prediction at that epoch is there, drawn or not.
    p.wait("() => [...document.querySelectorAll('.prediction')].filter(e => e.textContent.length > 0).length === 3")
    p.page.goto(tab_url(small_runs, "run=tiny&layer=c&step=0&probe=2&diff=prev"))
    p.frame = p.wait_frame()
    p.wait("() => { const n = document.querySelector('.thinned'); return n && !n.hidden; }")
    assert p.eval("() => document.querySelector('.thinned').textContent").startswith("No image of probe 2 at epoch 0")
    assert p.eval("() => document.querySelector('.error')") is None
    p.finish()


def test_a_long_sequence_keeps_every_feature_column_and_is_shown_wide_enough_to_read(browser, small_runs):
    """A (1996, 6) Conv1D output over 4096 pixels averages 3 time steps a row and keeps its 6 feature
    columns (it was 998 x 3, features averaged in pairs); each column is shown 32 pixels wide at zoom 2,
    rows 2 pixels high, and the note says which axis was averaged. Hovering and clicking in the widened
    columns finds the map (a single magnification put them outside it)."""
    p = Page(browser, tab_url(small_runs, "run=wave&layer=conv&step=1&probe=0&zoom=2"))
    p.wait("() => { const c = document.querySelector('canvas.tiles'); return c && c.style.width !== ''; }")
    got = p.eval("() => { const c = document.querySelector('canvas.tiles');"
                 " return [c.width, c.height, c.style.width, c.style.height,"
                 " document.querySelector('.cell-status').textContent]; }")
    assert got == [6, 666, "192px", "1332px", "rows averaged 3× (columns kept)"], got
    box = p.frame.locator("canvas.tiles").first.bounding_box()
    p.page.mouse.move(box["x"] + 170, box["y"] + 40)
    p.wait("() => !document.querySelector('.tooltip').hidden")
    assert p.eval("() => document.querySelector('.tooltip').textContent").startswith("values 0\nmin ")
    p.page.mouse.click(box["x"] + 170, box["y"] + 40)
    p.wait("() => document.querySelector('.modal-body canvas.big[data-painted]')")
    big = p.eval("() => { const c = document.querySelector('.modal-body canvas.big'); return [c.style.width, c.style.height]; }")
    assert big == ["318px", "666px"], big
    assert p.errors == [], p.errors
    p.finish("heat_long")
