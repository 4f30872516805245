"""tf.distribute strategies for the training recipes."""


_STRATEGIES = {}


def get_strategy(name="default"):
    """Returns the `tf.distribute.Strategy` a `TrainConfig.strategy` names.

    One strategy object per name and process (a multi-worker strategy must be
    created once, before TensorFlow runs any op: the training entry points
    call this first).

    - `"default"`: the default strategy (one device); on the JAX and PyTorch
      backends a `NoStrategy` (no-op scope) and TensorFlow is not imported.
    - `"mirrored"`: `tf.distribute.MirroredStrategy()`, every local GPU (or
      the CPU when there is none).
    - `"multi_worker"`: `tf.distribute.MultiWorkerMirroredStrategy()`; each
      worker reads its role from the `TF_CONFIG` environment variable
      (`{"cluster": {"worker": ["host:port", ...]}, "task": {"type":
      "worker", "index": i}}`). Every worker runs the same command.

    Example:

    >>> strategy = get_strategy("mirrored")      # doctest: +SKIP
    >>> with strategy.scope():                    # doctest: +SKIP
    ...     model = keras_ser.build_model()
    """
    if name not in _STRATEGIES:
        _STRATEGIES[name] = _create(name)
    return _STRATEGIES[name]


class NoStrategy:
    """The `"default"` strategy on the JAX and PyTorch backends: one device, a
    no-op `scope()`, and no TensorFlow import (the GPU machines have none)."""

    num_replicas_in_sync = 1

    def scope(self):
        import contextlib

        return contextlib.nullcontext()


def _create(name):
    import keras

    if keras.backend.backend() != "tensorflow":
        if name == "default":
            return NoStrategy()
        raise ValueError(
            f"strategy={name!r} needs tf.distribute (the TensorFlow backend); the Keras backend is "
            f"{keras.backend.backend()!r}. Use strategy='default'."
        )
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        import json
        import os

        if "TF_CONFIG" not in os.environ:
            raise ValueError("strategy='multi_worker' needs the TF_CONFIG environment variable (cluster and task)")
        json.loads(os.environ["TF_CONFIG"])  # a clear JSON error before TF's own
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be 'default', 'mirrored' or 'multi_worker'. Received: strategy={name!r}")


def is_chief():
    """True on the worker that writes result files.

    Without `TF_CONFIG` that is this process; in a cluster it is the `chief`
    task, or worker 0 when the cluster has no chief.
    """
    import json
    import os

    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    if not config:
        return True
    task = config.get("task", {})
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type", "worker") == "worker" and int(task.get("index", 0)) == 0
