"""Export: stored images to viewable PNG folders and GIFs, without TensorFlow."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from tb_layerview import export, render


def test_viewable_colours_non_finite_values_and_hides_padding():
    """LA pixels become grey RGBA; NaN magenta, +Inf yellow, -Inf cyan, padding transparent."""
    la = np.array([[[10, 255], [0, 1], [0, 2], [0, 3], [0, 0]]], np.uint8)
    out = export.viewable(render.encode_png(la))
    assert out.tolist() == [[[10, 10, 10, 255], [255, 0, 255, 255], [255, 255, 0, 255],
                             [0, 255, 255, 255], [0, 0, 0, 0]]]
    assert export.viewable(render.encode_png(la), scale=2).shape == (2, 10, 4)


def test_export_writes_one_png_per_step_and_a_gif_over_epochs(logdir, tmp_path):
    """A layer's activations give a PNG per epoch and a GIF with a frame per epoch."""
    written = export.export(logdir, str(tmp_path), runs=["cnn"], layers=["conv1"], probes=[0], gif=True, scale=2)
    folder = tmp_path / "cnn" / "activations" / "conv1"
    pngs = sorted(p for p in os.listdir(folder) if p.endswith(".png"))
    assert len(pngs) == 16 and pngs[0] == "step_000000_probe0.png" and len(written) == 17
    assert Image.open(folder / pngs[0]).size == (64, 42)
    gif = Image.open(folder / "epochs_probe0.gif")
    assert gif.n_frames == 16


def test_export_command_line_needs_no_tensorflow(logdir, tmp_path):
    """python -m tb_layerview.export works with TensorFlow and Keras impossible to import."""
    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'keras'):\n"
        "            raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from tb_layerview import export\n"
        "sys.exit(export.main(sys.argv[1:]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, logdir, str(tmp_path), "--run", "mlp", "--kind", "backquery",
                          "--kind", "filters"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "wrote" in out.stdout
    assert len(os.listdir(tmp_path / "mlp" / "backquery" / "backquery")) == 4 * 3
    assert len(os.listdir(tmp_path / "mlp" / "filters" / "hidden")) == 4


def test_export_command_line_errors(tmp_path):
    """A missing log directory is a usage error; an empty one exports nothing with exit 1."""
    out = subprocess.run([sys.executable, "-m", "tb_layerview.export", str(tmp_path / "missing"), str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "does not exist" in out.stderr
    out = subprocess.run([sys.executable, "-m", "tb_layerview.export", str(tmp_path), str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "nothing exported" in out.stderr
