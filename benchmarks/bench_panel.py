"""First paint and scrubbing frame rate of the Layer View panel in Chromium.

Trains the demo's two CNNs (every epoch logged), starts TensorBoard, opens the
tab in Debian's Chromium (Playwright) with both runs side by side and every
probe shown, then measures:

* first paint: from the page's navigation start to the first painted image,
  and from the panel module's start (iframe time origin);
* scrubbing: frames per second while stepping through every epoch, each step
  awaited until painted plus one animation frame; once with cold caches
  (first pass) and over three passes once images are cached.

Usage: python benchmarks/bench_panel.py [--epochs 10] [--layer conv1]
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


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--layer", default="conv1")
    args = p.parse_args()
    from helpers import panel_frame, start_tensorboard, stop
    from playwright.sync_api import sync_playwright

    logdir = tempfile.mkdtemp(prefix="lv_bench_panel_")
    subprocess.run([sys.executable, os.path.join(ROOT, "demo", "run_demo.py"), "--no-tensorboard", "--logdir",
                    logdir, "--epochs", str(args.epochs), "--models", "cnn_relu,cnn_tanh"], check=True,
                   stdout=subprocess.DEVNULL)
    proc, url = start_tensorboard(logdir)
    state = "run=cnn_relu&run=cnn_tanh&layer=%s&probe=-1" % args.layer
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
            browser.close()
    finally:
        stop(proc)
    print("panel: 2 runs side by side, layer %s, %d canvases, %d epochs" % (args.layer, warm["canvases"],
                                                                            args.epochs + 1))
    print("first paint: %.0f ms after navigation start (%.0f ms after the panel module started)"
          % (since_nav, in_panel))
    print("scrub, cold caches: %.1f frames/s" % (cold["frames"] / cold["ms"] * 1000))
    print("scrub, cached:      %.1f frames/s (target >= 30)" % (warm["frames"] / warm["ms"] * 1000))


if __name__ == "__main__":
    main()
