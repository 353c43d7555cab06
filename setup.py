"""Installs tb_layerview: the LayerView callback and its TensorBoard plugin."""

import os

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version():
    scope = {}
    with open(os.path.join(HERE, "tb_layerview", "version.py"), encoding="utf-8") as f:
        exec(f.read(), scope)
    return scope["VERSION"]


with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
    LONG_DESCRIPTION = f.read()

setup(
    name="tb_layerview",
    version=read_version(),
    description="Watch every layer of a Keras model learn: activations, filters and more in TensorBoard",
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=["tb_layerview", "tb_layerview.proto", "tb_layerview.frontend"],
    # The panel's assets live in the top-level frontend/ folder and ship inside
    # the package as tb_layerview/frontend.
    package_dir={"tb_layerview.frontend": "frontend"},
    package_data={
        "tb_layerview.frontend": ["*.js", "*.css", "*.html", "*.svg"],
        "tb_layerview.proto": ["*.proto"],
    },
    # No backend is required: like Keras itself, tb_layerview runs on the one
    # the user installs, named by an extra. Events are written with
    # TensorBoard's own writer and Pillow, so TensorFlow is needed only to
    # train on it.
    install_requires=[
        "tensorboard>=2.16",
        "keras>=3.0",
        "numpy>=1.23",
        "protobuf>=3.20",
        "Pillow>=9.0",
        # The event files' CRC32C in C: TensorBoard's own is pure Python.
        "google-crc32c>=1.5",
        # Keeps numpy's BLAS on one thread for the statistics (capture.one_blas_thread).
        "threadpoolctl>=3.0",
    ],
    extras_require={
        "tensorflow": ["tensorflow>=2.16"],
        "jax": ["jax>=0.4.20"],
        "torch": ["torch>=2.1"],
        "test": ["pytest>=7", "pytest-xdist>=3", "werkzeug>=2", "playwright>=1.40", "keras-tuner>=1.4"],
        "demo": ["scikit-learn>=1.2"],
    },
    entry_points={
        "tensorboard_plugins": [
            "tb_layerview = tb_layerview.plugin:LayerViewLoader",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: TensorFlow",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
