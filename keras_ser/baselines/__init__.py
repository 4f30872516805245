"""The paper's Table V baselines: openSMILE functionals + SVM, leave-one-speaker-out.

IS09 and IS10 (the paper's), ComParE_2016 and eGeMAPSv02 functionals. Pure
Python on numpy; openSMILE and scikit-learn come with the extra
`pip install 'keras-ser[baselines]'` and are imported on first use (never
TensorFlow or Keras). The folds run through the LOSO runner of the Keras
models (`keras_ser.training.loso.run_folds`): a baseline's run folder is that
of every other system. These are research baselines: openSMILE does not run
inside a SavedModel, so none of them is an exportable model.
`experiments/baselines.py` runs the whole table.

Example:

>>> from tf_pipeline import corpora
>>> from tf_pipeline.folds import loso_folds
>>> from keras_ser import baselines
>>> corpus = corpora.emodb("/data/emodb/wav")                                   # doctest: +SKIP
>>> functionals = baselines.extract_functionals(corpus.paths, "IS09",
...                                             cache_dir="~/.cache/keras_ser")  # doctest: +SKIP
>>> run = baselines.run_loso(functionals.features, corpus.labels, corpus.speaker_ids,
...                          loso_folds(corpus), "runs/baselines/is09-train",
...                          baselines.BaselineConfig("IS09"), corpus.class_names)  # doctest: +SKIP
>>> run.results["pooled"]["wa"], run.results["pooled"]["ua"]                     # doctest: +SKIP
"""

import importlib

_EXPORTS = {
    "BaselineConfig": "keras_ser.baselines.config",
    "NORMALIZATIONS": "keras_ser.baselines.config",
    "DEFAULT_C_GRID": "keras_ser.baselines.config",
    "FEATURE_SETS": "keras_ser.baselines.opensmile_features",
    "Functionals": "keras_ser.baselines.opensmile_features",
    "extract_functionals": "keras_ser.baselines.opensmile_features",
    "feature_set_info": "keras_ser.baselines.opensmile_features",
    "confusion_matrix": "keras_ser.training.scores",
    "scores_from_confusion": "keras_ser.training.scores",
    "unweighted_accuracy": "keras_ser.training.scores",
    "LosoRun": "keras_ser.baselines.svm",
    "evaluate_fold": "keras_ser.baselines.svm",
    "per_speaker_standardize": "keras_ser.baselines.svm",
    "run_loso": "keras_ser.baselines.svm",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'keras_ser.baselines' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
