"""Demo data sets, made locally or read from packages: no downloads.

* ``shapes``: generated 32x32 RGB images of five coloured shapes.
* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images),
  upsampled to 28x28 and flattened to 784 values in [0.01, 1.0].
* ``mnist``: real MNIST from a user-given ``mnist_train.csv`` (label then 784
  pixels per line) or ``mnist.npz`` file.
* ``moons``: two interleaved half-circles in 2-D, for a binary task.
* ``stripes``: 50x50 images of horizontal or vertical stripes.
"""

import os

import numpy as np

SHAPE_CLASSES = ["circle", "square", "triangle", "cross", "ring"]
DIGIT_CLASSES = [str(d) for d in range(10)]


def shapes(n=2000, size=32, seed=0):
    """Coloured shapes on a noisy background; returns (x float32 NHWC in [0,1], y)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    x = np.empty((n, size, size, 3), np.float32)
    y = rng.integers(0, len(SHAPE_CLASSES), n)
    for i in range(n):
        cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
        r = rng.uniform(size * 0.18, size * 0.3)
        dy, dx = yy - cy, xx - cx
        kind = y[i]
        if kind == 0:
            mask = dy ** 2 + dx ** 2 <= r ** 2
        elif kind == 1:
            mask = (np.abs(dy) <= r * 0.8) & (np.abs(dx) <= r * 0.8)
        elif kind == 2:
            mask = (dy <= r * 0.7) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
        elif kind == 3:
            mask = ((np.abs(dy) <= r * 0.25) | (np.abs(dx) <= r * 0.25)) & (np.abs(dy) <= r) & (np.abs(dx) <= r)
        else:
            d = np.sqrt(dy ** 2 + dx ** 2)
            mask = (d <= r) & (d >= r * 0.6)
        colour = rng.uniform(0.3, 1.0, 3)
        background = rng.uniform(0.0, 0.25, 3)
        img = np.broadcast_to(background, (size, size, 3)).copy()
        img[mask] = colour
        img += rng.normal(0, 0.03, img.shape)
        x[i] = np.clip(img, 0, 1)
    return x, y.astype(np.int64)


def _upsample(img8, size=28):
    """Bilinear upsampling of an 8x8 image to size x size (pure numpy)."""
    src = np.linspace(0, 7, size)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, 7)
    f = src - i0
    rows = img8[i0] * (1 - f)[:, None] + img8[i1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i1] * f[None, :]


def digits(size=28):
    """scikit-learn's 8x8 digits upsampled; returns (x (N, size*size) in [0.01, 1], y)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = np.stack([_upsample(im / 16.0, size) for im in d.images]).astype(np.float32)
    x = imgs.reshape(len(imgs), -1) * 0.99 + 0.01
    return x, d.target.astype(np.int64)


def mnist(path, limit=None):
    """Reads real MNIST from ``mnist_train.csv`` or ``mnist.npz``; x scaled to [0.01, 1]."""
    if not os.path.exists(path):
        raise FileNotFoundError("MNIST file %r does not exist" % path)
    if path.endswith(".npz"):
        with np.load(path) as f:
            x, y = f["x_train"], f["y_train"]
        x = x.reshape(len(x), -1).astype(np.float32)
    else:
        raw = np.loadtxt(path, delimiter=",", max_rows=limit, dtype=np.float32)
        if raw.ndim != 2 or raw.shape[1] != 785:
            raise ValueError("%r is not in the mnist_train.csv format (label then 784 pixels per"
                             " line): got %s columns" % (path, raw.shape[-1]))
        y, x = raw[:, 0], raw[:, 1:]
    if limit:
        x, y = x[:limit], y[:limit]
    return (x / 255.0 * 0.99 + 0.01).astype(np.float32), np.asarray(y, np.int64)


def moons(n=1000, noise=0.15, seed=0):
    """Two interleaved half-circles; returns (x (N, 2), y in {0, 1})."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    t = rng.uniform(0, np.pi, n)
    x = np.where(y[:, None] == 0,
                 np.stack([np.cos(t), np.sin(t)], 1),
                 np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1))
    x = x + rng.normal(0, noise, x.shape)
    return x.astype(np.float32), y.astype(np.int64)


def stripes(n=1000, size=50, seed=0):
    """Horizontal (0) or vertical (1) stripes with noise; returns (x (N, size, size), y)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    idx = np.arange(size)
    x = np.empty((n, size, size), np.float32)
    for i in range(n):
        period = rng.integers(4, 10)
        phase = rng.integers(0, period)
        wave = ((idx + phase) % period < period / 2).astype(np.float32)
        img = np.tile(wave[:, None], (1, size)) if y[i] == 0 else np.tile(wave[None, :], (size, 1))
        x[i] = img * 0.8 + rng.normal(0, 0.2, (size, size))
    return x, y.astype(np.int64)
