"""Which process writes, and host copies of arrays, however training is distributed.

Keras 3 runs every callback in every process (tf.keras filtered them to the
chief; Keras 3's ``CallbackList`` does not), so :func:`writer_process`
decides whether this one writes. One process per run writes, by the rule
each setup already has:

* ``keras.distribution`` on JAX (``keras.distribution.initialize``): process 0
  (``jax.process_index()``, or ``KERAS_DISTRIBUTION_PROCESS_ID`` before
  JAX is initialised);
* ``tf.distribute`` multi-worker (``TF_CONFIG``): the chief, else worker 0;
* ``torch.distributed``: rank 0.

The writing process then runs the probe on its own devices, with a local
copy of each weight (:func:`local_array`), so the other processes never wait
for it.

Example::

    from tb_layerview import distributed

    writes, why = distributed.writer_process()
    if not writes:
        print("not logging here:", why)
"""

import json
import os


def _tf_config_role():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        cfg = json.loads(raw)
    except ValueError:
        return None
    task = cfg.get("task") or {}
    kind, index = task.get("type"), int(task.get("index", 0))
    cluster = cfg.get("cluster") or {}
    if kind is None or kind in ("chief", "master"):
        return None
    if kind == "worker" and index == 0 and not (cluster.get("chief") or cluster.get("master")):
        return None
    return "TF_CONFIG names this process %s %d, not the chief" % (kind, index)


def _jax_process():
    import sys

    env = os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID")
    keras = sys.modules.get("keras")
    # Keras imports JAX whatever its backend, and asking JAX for the process
    # index starts its runtime (a dozen threads): only a JAX backend asks.
    if "jax" in sys.modules and keras is not None and keras.backend.backend() == "jax":
        import jax

        try:
            index = jax.process_index()
        except Exception:
            index = 0
        if index:
            return "this is JAX process %d of %d; process 0 writes" % (index, jax.process_count())
        if env is None:
            return None
    if env not in (None, "", "0"):
        return "KERAS_DISTRIBUTION_PROCESS_ID is %s; process 0 writes" % env
    return None


def _torch_rank():
    import sys

    if "torch" not in sys.modules:
        return None
    import torch

    dist = getattr(torch, "distributed", None)
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    rank = dist.get_rank()
    return "this is torch.distributed rank %d; rank 0 writes" % rank if rank else None


def writer_process():
    """Whether this process writes the run, and if not, why.

    Returns:
      ``(True, None)`` in the writing process (and outside distributed
      training), else ``(False, reason)``.
    """
    for check in (_tf_config_role, _jax_process, _torch_rank):
        reason = check()
        if reason:
            return False, reason
    return True, None


class SplitAcrossProcesses(ValueError):
    """A weight is split across processes, so one process cannot run the model alone."""


def local_array(value):
    """A weight as this process can compute with alone.

    A JAX array spread over several processes' devices but replicated (as
    ``keras.distribution.DataParallel`` keeps weights) gives this process's
    own copy. Arrays this process holds entirely, and other backends'
    tensors, come back as they are.

    Raises:
      SplitAcrossProcesses: for an array split across processes (a model-parallel
        layout), naming its shape and sharding: gathering it would need every
        process to take part.
    """
    if getattr(value, "is_fully_addressable", True):
        return value
    if value.sharding.is_fully_replicated:
        return value.addressable_data(0)
    raise SplitAcrossProcesses("a weight of shape %s is split across processes (%s); LayerView logs models whose"
                     " weights each process holds whole, such as keras.distribution.DataParallel"
                     % (tuple(value.shape), value.sharding))
