"""tb_layerview demo: starts TensorBoard and trains several models with LayerView.

Usage::

    python demo/run_demo.py [--logdir demo_logs] [--epochs 20] [--models cnn_relu,mlp]
                            [--port 6006] [--mnist PATH] [--exit]

TensorBoard starts first so that the Layer View tab fills in live while the
models train. Without ``--exit`` TensorBoard keeps serving after training
until Ctrl-C.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

# TensorFlow's start-up chatter (CPU features, missing CUDA) hides the demo's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import data  # noqa: E402  (demo-local module)

MODELS = ["cnn_relu", "cnn_tanh", "mlp", "tanh", "dense2d"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--logdir", default="demo_logs", help="log directory (default: demo_logs)")
    p.add_argument("--epochs", type=int, default=20, help="epochs per model (default: 20)")
    p.add_argument("--models", default=",".join(MODELS),
                   help="comma-separated subset of: %s" % ", ".join(MODELS))
    p.add_argument("--port", type=int, default=6006, help="TensorBoard port (default: 6006; 0 picks one)")
    p.add_argument("--host", default="127.0.0.1", help="TensorBoard host (default: 127.0.0.1)")
    p.add_argument("--mnist", default=None,
                   help="path to mnist_train.csv or mnist.npz for the 784-200-10 MLP (default:"
                        " scikit-learn's digits upsampled to 28x28)")
    p.add_argument("--samples", type=int, default=2000, help="training samples per model")
    p.add_argument("--budget", choices=["off", "default"], default="off",
                   help="LayerView's cost budget: 'off' (default here: the demo's models train in a"
                        " fraction of a second per epoch, and the demo shows everything) or 'default'"
                        " (5%% of training time, 2 MB per epoch: watch it thin the images)")
    p.add_argument("--no-tensorboard", action="store_true", help="only train")
    p.add_argument("--exit", action="store_true", help="stop TensorBoard after training")
    p.add_argument("--keep-logs", action="store_true", help="do not clear --logdir first")
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        p.error("unknown model(s) %s; choose from %s" % (", ".join(unknown), ", ".join(MODELS)))
    if args.epochs < 1:
        p.error("--epochs must be >= 1; got %d" % args.epochs)
    return args


def start_tensorboard(logdir, host, port):
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", logdir, "--host", host,
           "--port", str(port), "--reload_interval", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    url = None
    while time.time() < deadline and url is None:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                raise SystemExit("TensorBoard exited with code %s" % proc.returncode)
            continue
        if "http://" in line and "TensorBoard" in line:
            url = line[line.index("http://"):].split()[0]
    if url is None:
        proc.terminate()
        raise SystemExit("TensorBoard did not start within 120 s")
    # Keep draining stderr so that TensorBoard never blocks on a full pipe.
    import threading

    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return proc, url


def train_all(args):
    import keras

    import tb_layerview
    from tb_layerview import LayerView
    import models

    keras.utils.set_random_seed(0)
    n = args.samples

    def fit(run, model, x, y, probe, class_names, loss, optimizer, batch=32, **lv):
        model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
        lv.setdefault("budget", None if args.budget == "off" else tb_layerview.Budget())
        cb = LayerView(os.path.join(args.logdir, run), probe=probe, class_names=class_names, **lv)
        print("training %-14s (%d epochs)" % (run, args.epochs), flush=True)
        t0 = time.time()
        hist = model.fit(x, y, epochs=args.epochs, batch_size=batch, verbose=0, callbacks=[cb])
        print("  done in %.1f s, accuracy %.3f" % (time.time() - t0, hist.history["accuracy"][-1]), flush=True)

    if "cnn_relu" in args.models or "cnn_tanh" in args.models:
        x, y = data.shapes(n)
        probe = (x[:6], y[:6])
        if "cnn_relu" in args.models:
            fit("cnn_relu", models.cnn(activation="relu", name="cnn_relu"), x, y, probe,
                data.SHAPE_CLASSES, "sparse_categorical_crossentropy", keras.optimizers.Adam(1e-3))
        if "cnn_tanh" in args.models:
            fit("cnn_tanh", models.cnn(filters=(16, 32, 32), activation="tanh", name="cnn_tanh"), x, y,
                probe, data.SHAPE_CLASSES, "sparse_categorical_crossentropy", keras.optimizers.SGD(0.05))
    if "mlp" in args.models:
        x, y = data.mnist(args.mnist, limit=n) if args.mnist else data.digits()
        onehot = np.full((len(y), 10), 0.01, np.float32)
        onehot[np.arange(len(y)), y] = 0.99
        fit("mlp_784_200_10", models.mlp_784_200_10(), x, onehot, (x[:8], y[:8]), data.DIGIT_CLASSES,
            "mse", keras.optimizers.SGD(0.5), batch=16, input_image_shape=(28, 28))
    if "tanh" in args.models:
        x, y = data.moons(n)
        fit("tanh_mlp", models.tanh_mlp(), x, y, (x[:8], y[:8]), ["upper", "lower"],
            "binary_crossentropy", keras.optimizers.Adam(1e-2))
    if "dense2d" in args.models:
        x, y = data.stripes(min(n, 1000))
        fit("dense_2d", models.dense_2d(), x, y, (x[:4], y[:4]), ["horizontal", "vertical"],
            "sparse_categorical_crossentropy", keras.optimizers.Adam(1e-3))


def main(argv=None):
    args = parse_args(argv)
    if not args.keep_logs and os.path.isdir(args.logdir):
        shutil.rmtree(args.logdir)
    os.makedirs(args.logdir, exist_ok=True)
    proc = None
    if not args.no_tensorboard:
        proc, url = start_tensorboard(args.logdir, args.host, args.port)
        print("TensorBoard is serving at %s  (open the 'Layer View' tab:"
              " %sdata/plugin_entry.html?name=tb_layerview shows the panel alone)" % (url, url), flush=True)
    try:
        train_all(args)
        if proc is not None and not args.exit:
            print("training finished; TensorBoard keeps serving at %s (Ctrl-C to stop)" % url, flush=True)
            proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
