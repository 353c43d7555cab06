"""Regenerates docs/screenshot.png and docs/health.png: the real panel on real demo runs.

Trains the demo's two CNNs and the MLP for a few epochs, starts TensorBoard,
opens the Layer View tab in Debian's Chromium (Playwright) and saves a
screenshot of the activations of two runs side by side, and one of the
Health view of the ReLU CNN.

Usage: .venv/bin/python scripts/screenshot.py [--out docs/screenshot.png]
       [--health-out docs/health.png] [--epochs 20]
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


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "screenshot.png"))
    p.add_argument("--health-out", default=os.path.join(ROOT, "docs", "health.png"))
    p.add_argument("--health-state", default="run=cnn_relu&run=cnn_tanh&layer=conv2&view=health")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--state", default="run=cnn_relu&run=cnn_tanh&layer=conv2&probe=0&norm=channel&cmap=viridis&zoom=2")
    args = p.parse_args()
    from helpers import panel_frame, start_tensorboard, stop
    from playwright.sync_api import sync_playwright

    logdir = tempfile.mkdtemp(prefix="lv_shot_")
    subprocess.run([sys.executable, os.path.join(ROOT, "demo", "run_demo.py"), "--no-tensorboard", "--logdir",
                    logdir, "--epochs", str(args.epochs), "--models", "cnn_relu,cnn_tanh,mlp"], check=True)
    proc, url = start_tensorboard(logdir)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.add_init_script("try { localStorage.setItem('tb_layerview.debug', '1'); } catch (e) {}")  # the panel's debug switch
            page.goto(url + "/#tb_layerview&lv=" + quote(args.state, safe=""))
            frame = panel_frame(page)
            frame.wait_for_function("() => window.layerView && window.layerView.debug.firstPaintMs !== undefined",
                                    timeout=60000)
            page.wait_for_timeout(1000)
            page.screenshot(path=args.out)
            page.goto(url + "/#tb_layerview&lv=" + quote(args.health_state, safe=""))
            page.reload()
            frame = panel_frame(page)
            frame.wait_for_function("() => document.querySelector('canvas.heatmap')", timeout=60000)
            page.wait_for_timeout(1000)
            page.screenshot(path=args.health_out)
            browser.close()
    finally:
        stop(proc)
    print("wrote", args.out, "and", args.health_out)


if __name__ == "__main__":
    main()
