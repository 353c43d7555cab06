"""tb_layerview on JAX and PyTorch, without TensorFlow, and under multi-process training.

Each backend runs in its own process (Keras picks its backend once per
process, from KERAS_BACKEND).
"""

import glob
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from helpers import http_get, layer_series, read_series, run_blob, start_tensorboard, stop, wait_for
from tb_layerview import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "backend_worker.py")
BACKENDS = ("tensorflow", "jax", "torch")
ACT = metadata.KIND_ACTIVATIONS


def backend_env(backend, **extra):
    """The environment of a process on ``backend``, on the CPU."""
    return dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu",
                CUDA_VISIBLE_DEVICES="", **extra)


def run(cmd, backend, timeout=600, cwd=None, python=None, **extra_env):
    proc = subprocess.run([python or sys.executable] + cmd, env=backend_env(backend, **extra_env), cwd=cwd or HERE,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, "%s on %s failed (%d):\n%s\n%s" % (
        cmd, backend, proc.returncode, proc.stdout[-4000:], proc.stderr[-6000:])
    return proc


@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.parametrize("module", ["test_callback.py", "test_classviews.py"])
def test_callback_and_class_view_tests_pass_on(backend, module):
    """The callback-level tests (real fits, read back through TensorBoard's data provider) and the
    class-view tests pass on JAX and on PyTorch, every model kind and class view included. One
    process per module, so that the suite's workers can run them side by side."""
    # On JAX most of these small fits' time goes to XLA compiling each new function: its cheaper
    # optimisation level halves the run (test_callback.py: 284 s to about 130 s here) and changes no
    # result beyond the tests' tolerances. Fits elsewhere in the suite run JAX as users do.
    extra = {"JAX_DISABLE_MOST_OPTIMIZATIONS": "1"} if backend == "jax" else {}
    proc = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-W", "ignore::DeprecationWarning",
                os.path.join(HERE, module)], backend, timeout=900, **extra)
    summary = proc.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "failed" not in summary and "skipped" not in summary, summary


def test_class_views_agree_across_backends(tmp_path):
    """On the same weights, maximisation (classes and units), Grad-CAM (both weightings) and saliency
    from tf.GradientTape, jax.value_and_grad and torch.autograd agree within 1e-4 (measured: 2.4e-7).
    Weights keep the units out of saturation: there the normalised gradient is float32 rounding."""
    results = {}
    for backend in BACKENDS:
        out = str(tmp_path / ("%s.npz" % backend))
        run([WORKER, "agree", out], backend)
        results[backend] = np.load(out)
        assert str(results[backend]["backend"]) == backend
    ref = results["tensorflow"]
    for backend in ("jax", "torch"):
        for key in ("images", "history", "units", "unit_history", "cam", "cam_mean", "saliency"):
            np.testing.assert_allclose(results[backend][key], ref[key], rtol=0, atol=1e-4,
                                       err_msg="%s differs on %s" % (key, backend))
    assert ref["history"][-1].mean() > ref["history"][0].mean()  # the ascent ascends
    assert ref["cam"].max() == pytest.approx(1.0) and ref["saliency"].max() == pytest.approx(1.0)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_processes(job, backend, tmp_path, n=2):
    """Runs ``n`` worker processes of ``job`` (each given its index, n, a free port and ``tmp_path``)
    side by side; returns their outputs once all succeeded."""
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, WORKER, job, str(i), str(n), str(port), str(tmp_path)],
                              env=backend_env(backend), cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
             for i in range(n)]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=300))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, "a training process failed (%d):\n%s\n%s" % (p.returncode, out, err[-6000:])
    return [out for out, _ in outs]


def _assert_one_complete_event_file(tmp_path):
    """The processes left exactly one event file, in run/, with every layer, the statistics and the
    class views at steps 0 to 2."""
    files = glob.glob(str(tmp_path / "**" / "*tfevents*"), recursive=True)
    assert len(files) == 1 and os.path.dirname(files[0]) == str(tmp_path / "run"), files
    series = read_series(str(tmp_path))
    got = layer_series(series, "run")
    for layer in ("conv1", "conv2", "gap", "out"):
        assert sorted(got[(ACT, layer)]) == [0, 1, 2], layer
    for kind in (metadata.KIND_STATS, metadata.KIND_MAXIMIZATION, metadata.KIND_ATTRIBUTION):
        assert sorted(run_blob(series, "run", kind)) == [0, 1, 2], kind


def test_keras_distribution_on_two_processes_writes_one_complete_event_file(tmp_path):
    """Two JAX processes on localhost train one model under keras.distribution.DataParallel, each
    with LayerView on the same log directory: process 0 writes exactly one event file, complete."""
    outs = _run_processes("distributed", "jax", tmp_path)
    assert "process 0 of 2" in outs[0] and "process 1 of 2" in outs[1]
    _assert_one_complete_event_file(tmp_path)


def test_torch_distributed_ranks_on_localhost_write_one_event_file_from_rank_0(tmp_path):
    """Two torch.distributed ranks (gloo, on localhost), each fitting with LayerView on the same log
    directory: rank 0 writes exactly one complete event file, rank 1 says why it writes nothing."""
    outs = _run_processes("torch_distributed", "torch", tmp_path)
    assert "rank 0 of 2 done on torch; not writing: None" in outs[0], outs[0]
    assert "rank 1 of 2 done on torch; not writing: this is torch.distributed rank 1; rank 0 writes" in outs[1]
    _assert_one_complete_event_file(tmp_path)


def test_data_parallel_over_local_devices_gathers_a_sharded_probe(tmp_path):
    """One JAX process over two CPU devices under DataParallel, with a probe sharded along the batch axis
    like a training batch: every layer at every step, class views included, and no warning."""
    proc = run([WORKER, "local_devices", str(tmp_path)], "jax", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert "devices 2" in proc.stdout and "LayerView warnings: []" in proc.stdout, proc.stdout
    series = read_series(str(tmp_path))
    got = layer_series(series, "run")
    for layer in ("conv1", "conv2", "gap", "out"):
        assert sorted(got[(ACT, layer)]) == [0, 1, 2], layer
    probes = json.loads(got[(ACT, "out")][2][0].decode("utf-8"))["probes"]
    assert len(probes) == 4  # all four probes, gathered from both devices
    for kind in (metadata.KIND_STATS, metadata.KIND_MAXIMIZATION, metadata.KIND_ATTRIBUTION):
        assert sorted(run_blob(series, "run", kind)) == [0, 1, 2], kind


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_fit_on_jax_or_pytorch_beside_an_installed_tensorflow_never_imports_it(tmp_path, backend):
    """With TensorFlow installed but not imported, a fit on JAX or PyTorch with LayerView leaves it
    unimported: the event file goes through TensorBoard's own file layer, and the layers' configs are
    read without Keras importing TensorFlow to serialise them. Importing it cost 2.8 s of the first
    step, which the time budget then took from the images of every later epoch. The configs are whole."""
    import importlib.util

    assert importlib.util.find_spec("tensorflow") is not None, "this test needs TensorFlow installed"
    proc = run([WORKER, "fit", str(tmp_path)], backend, cwd=str(tmp_path))
    assert "tensorflow imported: False" in proc.stdout, proc.stdout
    series = read_series(str(tmp_path))
    config = json.loads(run_blob(series, "run_" + backend, metadata.KIND_CONFIG)[0][0])
    by_path = {layer["path"]: layer for layer in config["layers"]}
    assert by_path["conv2"]["config"]["filters"] == 6 and by_path["conv2"]["config"]["activation"] == "tanh"
    assert by_path["out"]["config"]["units"] == 3


@pytest.fixture(scope="module")
def venv_without_tensorflow(tmp_path_factory):
    """A new virtual environment with tb_layerview installed the documented ways for JAX and PyTorch users
    (PyTorch's CPU build first, as scripts/setup.sh does)."""
    path = tmp_path_factory.mktemp("venv_no_tf")
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    python = str(path / "bin" / "python")
    for args in (["torch==" + os.environ.get("TORCH_VERSION", "2.13.0")], [ROOT + "[jax]"], [ROOT + "[torch]"]):
        proc = subprocess.run([python, "-m", "pip", "install", "-q"] + args, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return python


def test_without_tensorflow_jax_and_pytorch_users_install_fit_and_serve(tmp_path, venv_without_tensorflow):
    """pip install 'tb_layerview[jax]' or '[torch]' brings no TensorFlow; fits on JAX and on PyTorch log
    every layer and the class views, and that environment's own tensorboard serves them through the plugin
    under both loaders."""
    python = venv_without_tensorflow
    probe = subprocess.run([python, "-c", "import importlib.util as u; print(u.find_spec('tensorflow'))"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "None"
    for backend in ("jax", "torch"):
        proc = run([WORKER, "fit", str(tmp_path)], backend, python=python, cwd=str(tmp_path))
        assert "tensorflow imported: False" in proc.stdout
    series = read_series(str(tmp_path))
    for run_name in ("run_jax", "run_torch"):
        assert sorted(layer_series(series, run_name)[(ACT, "conv2")]) == [0, 1, 2]
        for kind in (metadata.KIND_STATS, metadata.KIND_MAXIMIZATION, metadata.KIND_ATTRIBUTION):
            assert sorted(run_blob(series, run_name, kind)) == [0, 1, 2], (run_name, kind)
    tensorboard = os.path.join(os.path.dirname(python), "tensorboard")
    answers = {}
    for fast in ("false", "true"):
        server, url = start_tensorboard(str(tmp_path), "--load_fast=" + fast, executable=tensorboard)
        try:
            base = url + "/data/plugin/" + metadata.PLUGIN_NAME
            runs = wait_for(lambda: (lambda r: r if r[0] == 200 and b"run_jax" in r[2] else None)(
                http_get(base + "/runs")))
            listing = json.loads(runs[2])
            steps = http_get(base + "/steps?run=run_jax&layer=conv2&kind=" + ACT)
            assert steps[0] == 200, steps
            answers[fast] = (listing, json.loads(steps[2]))
        finally:
            stop(server)
    assert answers["false"] == answers["true"]
