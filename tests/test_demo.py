"""The demo: its local data sets and a short end-to-end run with TensorBoard."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "demo"))

import data  # noqa: E402


def test_generated_and_bundled_data_sets_have_the_documented_shapes():
    """shapes, digits, moons and stripes need no download and have the right shapes and ranges."""
    x, y = data.shapes(20)
    assert x.shape == (20, 32, 32, 3) and x.min() >= 0 and x.max() <= 1 and set(y) <= set(range(5))
    x, y = data.digits()
    assert x.shape == (1797, 784) and x.min() >= 0.01 - 1e-6 and x.max() <= 1.0 + 1e-6
    assert sorted(set(y)) == list(range(10))
    x, y = data.moons(50)
    assert x.shape == (50, 2) and set(y) <= {0, 1}
    x, y = data.stripes(10)
    assert x.shape == (10, 50, 50)


def test_mnist_from_a_user_csv_or_npz(tmp_path):
    """Real MNIST loads from mnist_train.csv (label then 784 pixels) or mnist.npz."""
    rows = np.zeros((3, 785), int)
    rows[:, 0] = [7, 2, 1]
    rows[0, 1] = 255
    csv = tmp_path / "mnist_train.csv"
    np.savetxt(csv, rows, fmt="%d", delimiter=",")
    x, y = data.mnist(str(csv))
    assert x.shape == (3, 784) and y.tolist() == [7, 2, 1] and x[0, 0] == pytest.approx(1.0)
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.array([3, 4]))
    x, y = data.mnist(str(npz))
    assert x.shape == (2, 784) and y.tolist() == [3, 4]
    bad = tmp_path / "bad.csv"
    np.savetxt(bad, np.zeros((2, 5)), delimiter=",")
    with pytest.raises(ValueError, match="not in the mnist_train.csv format .* got 5 columns"):
        data.mnist(str(bad))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.mnist(str(tmp_path / "missing.csv"))


def test_demo_serves_tensorboard_and_trains_every_model(tmp_path):
    """run_demo.py starts TensorBoard, prints its URL and trains all five models into runs."""
    logdir = tmp_path / "demo_logs"
    out = subprocess.run([sys.executable, os.path.join(ROOT, "demo", "run_demo.py"), "--logdir", str(logdir),
                          "--epochs", "1", "--samples", "200", "--port", "0", "--exit"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"TensorBoard is serving at http://127\.0\.0\.1:\d+/", out.stdout)
    assert sorted(os.listdir(logdir)) == ["cnn_relu", "cnn_tanh", "dense_2d", "mlp_784_200_10", "tanh_mlp"]
    assert out.stdout.count("done in") == 5


def test_demo_rejects_unknown_models_with_the_choices_listed():
    """A wrong --models value is a clear command-line error."""
    out = subprocess.run([sys.executable, os.path.join(ROOT, "demo", "run_demo.py"), "--models", "resnet"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "unknown model(s) resnet; choose from cnn_relu" in out.stderr


def test_demo_runs_carry_health_statistics_and_scalars(tmp_path):
    """The demo's ReLU CNN has per-channel statistics at every step, a Health answer for its layers,
    and layerview_health scalars for TensorBoard's Scalars tab."""
    from tensorboard import context as tb_context

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from helpers import provider_for, wsgi_client

    logdir = tmp_path / "demo_logs"
    out = subprocess.run([sys.executable, os.path.join(ROOT, "demo", "run_demo.py"), "--logdir", str(logdir),
                          "--epochs", "2", "--samples", "200", "--models", "cnn_relu", "--no-tensorboard"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    import json

    health = json.loads(wsgi_client(str(logdir)).get("/data/plugin/tb_layerview/health?run=cnn_relu").get_data())
    assert health["steps"] == [0, 1, 2]
    conv2 = next(l for l in health["layers"] if l["path"] == "conv2")
    assert conv2["activation"] == "relu" and conv2["dead"] is not None
    provider, _ = provider_for(str(logdir))
    tags = provider.list_scalars(tb_context.RequestContext(), experiment_id="", plugin_name="scalars")["cnn_relu"]
    assert "layerview_health/dead/conv2" in tags
