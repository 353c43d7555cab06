"""First paint and scrubbing frame rate of the Layer View panel in Chromium.

Trains the demo's two CNNs (every epoch logged), starts TensorBoard, opens the
tab in Debian's Chromium (Playwright) with both runs side by side and every
probe shown, then measures:

* first paint: from the page's navigation start to the first painted image,
  and from the panel module's start (iframe time origin);
* scrubbing: frames per second while stepping through every epoch, each step
  awaited until painted plus one animation frame; once with cold caches
  (first pass) and over three passes once images are cached.

With ``--logdir`` it opens an existing log directory instead, e.g. the 3
runs x 100 epochs of MobileNetV2 that ``bench_plugin.py --logdir DIR``
writes, and also times the layer list of that 155-layer model: filtering
it and moving through it with the arrow keys.

Usage: python benchmarks/bench_panel.py [--epochs 10] [--layer conv1]
       [--logdir DIR --runs run0,run1,run2 --layer block_3_expand]
"""

import argparse
import os
import subprocess
import sys
import tempfile
from urllib.parse import quote

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

SCRUB = """async (passes) => {
  const lv = window.layerView;
  const steps = lv.steps();
  const frame = () => new Promise(r => requestAnimationFrame(r));
  const t0 = performance.now();
  let frames = 0;
  for (let p = 0; p < passes; p++) {
    for (const s of steps) { await lv.set({step: s, follow: false}, false); await frame(); frames++; }
  }
  return {frames, ms: performance.now() - t0, canvases: document.querySelectorAll('canvas.tiles').length};
}"""


LAYER_LIST = """async () => {
  const lv = window.layerView;
  const frame = () => new Promise(r => requestAnimationFrame(r));
  const rows = document.querySelectorAll('ul.layers li').length;
  let t0 = performance.now();
  lv.filterBox.value = 'block_1';
  lv.filterBox.dispatchEvent(new Event('input'));
  await frame();
  const filterMs = performance.now() - t0;
  const filtered = document.querySelectorAll('ul.layers li.layer').length;
  lv.filterBox.value = '';
  lv.filterBox.dispatchEvent(new Event('input'));
  await frame();
  t0 = performance.now();
  for (let i = 0; i < 20; i++) {
    lv.layerList.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowDown', bubbles: true}));
    await frame();
  }
  return {layers: lv.layers().length, rows, filter_ms: filterMs, filtered,
          arrow_ms: (performance.now() - t0) / 20};
}"""


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--layer", default="conv1")
    p.add_argument("--logdir", default=None, help="an existing log directory (default: train the demo CNNs)")
    p.add_argument("--runs", default="cnn_relu,cnn_tanh")
    args = p.parse_args()
    from helpers import panel_frame, start_tensorboard, stop
    from playwright.sync_api import sync_playwright

    logdir = args.logdir
    if logdir is None:
        logdir = tempfile.mkdtemp(prefix="lv_bench_panel_")
        subprocess.run([sys.executable, os.path.join(ROOT, "demo", "run_demo.py"), "--no-tensorboard", "--logdir",
                        logdir, "--epochs", str(args.epochs), "--models", "cnn_relu,cnn_tanh"], check=True,
                       stdout=subprocess.DEVNULL)
    proc, url = start_tensorboard(logdir)
    state = "&".join("run=%s" % quote(r, safe="") for r in args.runs.split(",")) + "&layer=%s&probe=-1" % args.layer
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.add_init_script("try { localStorage.setItem('tb_layerview.debug', '1'); } catch (e) {}")  # the panel's debug switch
            page.goto(url + "/#tb_layerview&lv=" + quote(state, safe=""))
            frame = panel_frame(page)
            frame.wait_for_function("() => window.layerView && window.layerView.debug.firstPaintMs !== undefined",
                                    timeout=60000)
            in_panel = frame.evaluate("() => window.layerView.debug.firstPaintMs")
            since_nav = frame.evaluate("() => performance.timeOrigin + window.layerView.debug.firstPaintMs") - \
                page.evaluate("() => performance.timeOrigin")
            cold = frame.evaluate(SCRUB, 1)
            warm = frame.evaluate(SCRUB, 3)
            layers = frame.evaluate(LAYER_LIST)
            browser.close()
    finally:
        stop(proc)
    print("panel: %d runs side by side, layer %s, %d canvases, %d epochs"
          % (len(args.runs.split(",")), args.layer, warm["canvases"], warm["frames"] // 3))
    print("first paint: %.0f ms after navigation start (%.0f ms after the panel module started)"
          % (since_nav, in_panel))
    print("scrub, cold caches: %.1f frames/s" % (cold["frames"] / cold["ms"] * 1000))
    print("scrub, cached:      %.1f frames/s (target >= 30)" % (warm["frames"] / warm["ms"] * 1000))
    print("layer list: %d layers, %d rows shown (blocks folded); filter 'block_1' %.1f ms (%d rows);"
          " 20 arrow-key moves %.1f ms each" % (layers["layers"], layers["rows"], layers["filter_ms"],
                                              layers["filtered"], layers["arrow_ms"]))


if __name__ == "__main__":
    main()
