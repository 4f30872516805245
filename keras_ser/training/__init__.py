"""Training and leave-one-speaker-out evaluation of keras-ser models.

The default input pipeline is tf.data (TensorFlow); the models themselves do
not need TensorFlow, and `keras_ser.training.feature_file` feeds the same LOSO
runner from precomputed features with numpy (`run_loso(..., fold_data=...)`), e.g. on
the JAX-only GPU machines (docs/gpu.md).
Names load lazily: importing this package imports none of its modules.

Example:

>>> import tf_pipeline
>>> from keras_ser.training import TrainConfig, run_loso
>>> corpus = tf_pipeline.corpora.emodb("/data/emodb/wav")                 # doctest: +SKIP
>>> config = TrainConfig(recipe="paper", validation="next")                 # doctest: +SKIP
>>> run_loso(corpus, config, "runs/emodb_paper", speakers=["03", "08"])     # doctest: +SKIP
"""

import importlib

_EXPORTS = {
    "TrainConfig": "keras_ser.training.config",
    "train_final": "keras_ser.training.final",
    "run_fold": "keras_ser.training.loso",
    "run_loso": "keras_ser.training.loso",
    "FoldData": "keras_ser.training.fitting",
    "TrainResult": "keras_ser.training.fitting",
    "train": "keras_ser.training.recipes",
    "compare": "keras_ser.training.report",
    "compare_table": "keras_ser.training.report",
    "ensemble": "keras_ser.training.report",
    "write_report": "keras_ser.training.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'keras_ser.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
