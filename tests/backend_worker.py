"""Jobs that tests/test_backends.py runs in a fresh process on a chosen Keras backend.

Usage:
  python backend_worker.py agree OUT.npz              class views on fixed weights
  python backend_worker.py fit LOGDIR                 a fit with LayerView (no TensorFlow needed)
  python backend_worker.py distributed PID N PORT LOGDIR
                                                      one process of a keras.distribution fit on JAX
  python backend_worker.py local_devices LOGDIR       DataParallel over two local devices (XLA_FLAGS)
  python backend_worker.py torch_distributed RANK N PORT LOGDIR
                                                      one rank of a torch.distributed (gloo) job
"""

import os
import sys

import numpy as np


def fixed_cnn():
    """A small CNN whose weights come from a seeded numpy generator, the same on every backend."""
    import keras

    model = keras.Sequential([keras.Input((12, 12, 3)),
                              keras.layers.Conv2D(4, 3, activation="relu", name="conv1"),
                              keras.layers.Conv2D(6, 3, activation="tanh", name="conv2"),
                              keras.layers.GlobalAveragePooling2D(name="gap"),
                              keras.layers.Dense(3, activation="softmax", name="out")])
    rng = np.random.default_rng(11)
    model.set_weights([rng.normal(0, 0.25, w.shape).astype("float32") for w in model.get_weights()])
    return model


def agree(out):
    import keras

    from tb_layerview import classviews

    model = fixed_cnn()
    mlp = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh", name="h"),
                            keras.layers.Dense(3, activation="softmax", name="out")])
    rng = np.random.default_rng(12)
    mlp.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in mlp.get_weights()])
    x = np.random.default_rng(13).random((3, 12, 12, 3)).astype("float32")
    images, history = classviews.maximize(model, classes=[0, 1, 2], steps=16)
    units, unit_history = classviews.maximize(model, layer="conv2", units=[0, 5], steps=16)
    cam, _ = classviews.attribution(model, x, [0, 1, 2])
    cam_mean, _ = classviews.attribution(model, x, [2, 2, 0], weighting="mean")
    saliency, info = classviews.attribution(mlp, rng.random((2, 5)).astype("float32"), [0, 2])
    assert info["method"] == "saliency"
    np.savez(out, images=images, history=history, units=units, unit_history=unit_history, cam=cam,
             cam_mean=cam_mean, saliency=saliency, backend=keras.backend.backend())


def fit(logdir):
    import keras

    from tb_layerview import LayerView

    model = fixed_cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((64, 12, 12, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, 64)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0,
              callbacks=[LayerView(os.path.join(logdir, "run_" + keras.backend.backend()), probe=(x[:2], y[:2]),
                                   maximize_every_n_epochs=1, maximize_steps=4, budget=None)])
    print("tensorflow imported:", "tensorflow" in sys.modules)


def _fit_part(index, logdir):
    """One process's fit of a multi-process job: its own part of the data, the shared probe, LayerView
    on the shared log directory. Returns the callback."""
    from tb_layerview import LayerView

    model = fixed_cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(index).random((64, 12, 12, 3)).astype("float32")
    y = np.random.default_rng(10 + index).integers(0, 3, 64)
    probe = np.random.default_rng(99).random((2, 12, 12, 3)).astype("float32")
    cb = LayerView(os.path.join(logdir, "run"), probe=probe, maximize_every_n_epochs=1, maximize_steps=4,
                   budget=None)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[cb])
    return cb


def distributed(pid, n, port, logdir):
    import keras
    import jax

    keras.distribution.initialize(job_addresses="localhost:%s" % port, num_processes=int(n), process_id=int(pid))
    # Each process feeds its own part of the data, as with a sharded input pipeline.
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices(),
                                                                        auto_shard_dataset=False))
    _fit_part(int(pid), logdir)
    print("process %s of %d done; devices %d" % (jax.process_index(), jax.process_count(), len(jax.devices())))


def local_devices(logdir):
    """One process over several (forced) CPU devices: weights replicated on them, the probe sharded."""
    import keras
    import jax

    assert len(jax.local_devices()) == 2, jax.local_devices()
    distribution = keras.distribution.DataParallel(devices=jax.devices())
    keras.distribution.set_distribution(distribution)
    from tb_layerview import LayerView

    model = fixed_cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((64, 12, 12, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, 64)
    # A probe laid out like a training batch: split over the devices along the batch axis.
    probe = keras.distribution.distribute_tensor(x[:4], distribution.get_data_layout((4, 12, 12, 3)))
    assert len(probe.sharding.device_set) == 2, probe.sharding
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=2, batch_size=16, verbose=0,
                  callbacks=[LayerView(os.path.join(logdir, "run"), probe=probe, maximize_every_n_epochs=1,
                                       maximize_steps=4, budget=None)])
    print("devices", len(jax.devices()))
    print("LayerView warnings:", [str(w.message) for w in caught if "tb_layerview" in str(w.message)])


def torch_distributed(rank, n, port, logdir):
    """One rank of a torch.distributed job on localhost (gloo), every rank fitting with LayerView on the
    same log directory, as a script launched by torchrun would."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%s" % port, rank=int(rank), world_size=int(n))
    import keras

    cb = _fit_part(int(rank), logdir)
    dist.barrier()  # every rank finished its fit: none waited on the writer
    print("rank %d of %d done on %s; not writing: %s" % (dist.get_rank(), dist.get_world_size(),
                                                        keras.backend.backend(), cb.not_writing))
    dist.destroy_process_group()


if __name__ == "__main__":
    job, rest = sys.argv[1], sys.argv[2:]
    {"agree": agree, "fit": fit, "distributed": distributed, "local_devices": local_devices,
     "torch_distributed": torch_distributed}[job](*rest)
