"""Leave-one-speaker-out SVM on utterance functionals, as in the paper's Table V.

Per fold, nothing about the test speaker is used to build the classifier:
the standardisation is fitted on the training speakers only (and, inside
model selection, on each inner fold's training part only), C is chosen by
leave-one-speaker-out cross-validation over the training speakers, and the
model refitted on all training speakers predicts the test speaker once.

The one exception is an option, off by default: `normalization="speaker"`
standardises every speaker with its own mean and standard deviation, which
for the test speaker means statistics of its unlabelled test audio. Results
made that way carry the label of `BaselineConfig.label` and
`uses_test_speaker_audio: true`.

`run_loso` runs the folds through the LOSO runner of the Keras models
(`keras_ser.training.loso.run_folds`), so a baseline's run folder is that of
every other system: `run.json`, one `fold_<speaker>.json` per finished fold
(written as soon as the fold is done; run again with the same folder, the
folds already there are skipped), `results.json` and `results.md`
(`keras_ser.training.report`). An SVC gives decisions, not probabilities: a
prediction's `probabilities` are the one-hot of its decision.
"""

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
import sys
import time

import numpy as np

from keras_ser.baselines.config import BaselineConfig
from keras_ser.baselines.dependencies import require
from keras_ser.training import loso
from keras_ser.training.scores import unweighted_accuracy


# -- normalisation ---------------------------------------------------------------------------------

def per_speaker_standardize(features, speakers, min_std=1e-8):
    """Standardises each speaker's rows with that speaker's own mean and std.

    Uses no labels, but it does use every speaker's audio, the test speaker's
    included: results that use it must say so (see `NORMALIZATIONS`).

    Args:
        features: array `[n, d]`.
        speakers: array `[n]` of speaker ids.
        min_std: float. A feature whose std within a speaker is below it is
            only centred. Defaults to `1e-8`.

    Returns:
        float64 array `[n, d]`.
    """
    features = np.asarray(features, dtype=np.float64)
    speakers = np.asarray(speakers)
    out = np.empty_like(features)
    for speaker in np.unique(speakers):
        rows = speakers == speaker
        mean = features[rows].mean(axis=0)
        std = features[rows].std(axis=0)
        std[std < min_std] = 1.0
        out[rows] = (features[rows] - mean) / std
    return out


# -- one fold --------------------------------------------------------------------------------------

def _check_inputs(features, labels, speakers):
    features = np.asarray(features)
    labels = np.asarray(labels)
    speakers = np.asarray(speakers).astype(str)
    if features.ndim != 2:
        raise ValueError(f"features must be a 2-D array [utterances, dims]. Received shape {features.shape}")
    if not (len(features) == len(labels) == len(speakers)):
        raise ValueError(
            f"features, labels and speakers must have one entry per utterance. Received lengths "
            f"{len(features)}, {len(labels)}, {len(speakers)}"
        )
    if not np.isfinite(features).all():
        raise ValueError("features hold NaN or infinite values")
    return features, labels.astype(np.int64), speakers


def evaluate_fold(features, labels, speakers, fold, config, n_jobs=1):
    """Trains on a fold's training speakers, chooses C among them, tests on its test speaker.

    Args:
        features: array `[n, d]` of utterance functionals.
        labels: int array `[n]` of class indices.
        speakers: array `[n]` of speaker ids.
        fold: a `tf_pipeline.folds.Fold` made with `validation="none"` (C is
            chosen by the inner cross-validation, not on a validation speaker).
        config: a `BaselineConfig`.
        n_jobs: int, parallel fits of the inner cross-validation. Defaults to `1`.

    Returns:
        A dict: `test_speaker`, `train_speakers`, `test_indices`, `y_true`,
        `y_pred`, `chosen_C`, `model_selection` (score of every C, per held-out
        training speaker), `scaler` (the fitted `StandardScaler`'s `mean` and
        `scale`, and the speakers and row count it was fitted on).

    Example:

    >>> fold = loso_folds(corpus)[0]                                        # doctest: +SKIP
    >>> out = evaluate_fold(x, corpus.labels, corpus.speaker_ids, fold,
    ...                     BaselineConfig("IS09"))                         # doctest: +SKIP
    """
    features, labels, speakers = _check_inputs(features, labels, speakers)
    if not isinstance(config, BaselineConfig):
        raise ValueError(f"config must be a BaselineConfig. Received: {type(config).__name__}")
    if len(getattr(fold, "validation_indices", ())):
        raise ValueError(
            "The SVM baselines choose C by leave-one-speaker-out over the training speakers; build the "
            f"folds with validation='none'. Received a fold holding out validation speaker {fold.validation_speaker!r}"
        )
    pipeline_lib = require("sklearn.pipeline")
    preprocessing = require("sklearn.preprocessing")
    sklearn_svm = require("sklearn.svm")
    model_selection = require("sklearn.model_selection")
    sklearn_metrics = require("sklearn.metrics")

    train = np.asarray(fold.train_indices, np.int64)
    test = np.asarray(fold.test_indices, np.int64)
    test_speaker = str(fold.test_speaker)
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"fold {test_speaker!r} has {len(train)} training and {len(test)} test utterances")
    if np.any(speakers[train] == test_speaker) or np.any(speakers[test] != test_speaker):
        raise ValueError(f"fold {test_speaker!r}: the test speaker's utterances appear in the training indices")
    train_speakers = sorted(set(speakers[train]))
    if len(train_speakers) < 2:
        raise ValueError(
            f"fold {test_speaker!r}: choosing C by leave-one-speaker-out needs at least 2 training speakers. "
            f"Received: {train_speakers}"
        )

    x = features.astype(np.float64)
    if config.normalization == "speaker":
        rows = np.concatenate([train, test])
        x = x.copy()
        x[rows] = per_speaker_standardize(x[rows], speakers[rows])

    x_train, y_train, g_train = x[train], labels[train], speakers[train]
    splits = list(model_selection.LeaveOneGroupOut().split(x_train, y_train, g_train))
    held_out = [str(g_train[inner_test][0]) for _, inner_test in splits]
    scoring = (
        sklearn_metrics.make_scorer(unweighted_accuracy) if config.selection_metric == "ua" else "accuracy"
    )
    search = model_selection.GridSearchCV(
        pipeline_lib.Pipeline(
            [
                ("scaler", preprocessing.StandardScaler()),
                ("svm", sklearn_svm.SVC(kernel=config.kernel)),
            ]
        ),
        {"svm__C": list(config.c_grid)},
        scoring=scoring,
        cv=splits,
        refit=True,
        n_jobs=n_jobs,
        error_score="raise",
    )
    search.fit(x_train, y_train)
    cv = search.cv_results_
    grid = []
    for i, c in enumerate(config.c_grid):
        grid.append(
            {
                "C": float(c),
                "mean": float(cv["mean_test_score"][i]),
                "std": float(cv["std_test_score"][i]),
                "per_speaker": {s: float(cv[f"split{k}_test_score"][i]) for k, s in enumerate(held_out)},
            }
        )
    scaler = search.best_estimator_.named_steps["scaler"]
    return {
        "test_speaker": test_speaker,
        "train_speakers": train_speakers,
        "test_indices": test.tolist(),
        "y_true": labels[test].tolist(),
        "y_pred": search.predict(x[test]).astype(np.int64).tolist(),
        "chosen_C": float(search.best_params_["svm__C"]),
        "model_selection": {
            "method": f"GridSearchCV, leave-one-speaker-out over the {len(train_speakers)} training speakers",
            "metric": config.selection_metric,
            "ties": "smallest C",
            "grid": grid,
        },
        "scaler": {
            "fitted_on": "training speakers only",
            "speakers": train_speakers,
            "n_rows": int(scaler.n_samples_seen_),
            "mean": scaler.mean_.tolist(),
            "scale": scaler.scale_.tolist(),
        },
    }


# -- a run directory -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class LosoRun:
    """What `run_loso` did: the report written (`results.json`) and which folds it computed or found done."""

    results: dict
    computed: tuple
    skipped: tuple
    run_dir: str


def data_fingerprint(features, labels, speakers, paths=None, class_names=None):
    """What identifies the data of a run: sizes and hashes of features, labels, speakers, files."""

    def digest(value):
        return hashlib.sha256(value).hexdigest()

    fingerprint = {
        "n_utterances": int(len(labels)),
        "dimension": int(np.asarray(features).shape[1]),
        "speakers": sorted(set(np.asarray(speakers).astype(str).tolist())),
        "features_sha256": digest(np.ascontiguousarray(features, dtype=np.float64).tobytes()),
        "labels_sha256": digest(np.asarray(labels, np.int64).tobytes()),
        "speakers_sha256": digest("\n".join(np.asarray(speakers).astype(str)).encode("utf-8")),
    }
    if paths is not None:
        fingerprint["files_sha256"] = digest("\n".join(os.path.basename(str(p)) for p in paths).encode("utf-8"))
    if class_names is not None:
        fingerprint["class_names"] = list(class_names)
    return fingerprint


def _version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def versions():
    """Library versions and the machine, for every fold file (the baselines' `versions`)."""
    try:
        usable_cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        usable_cpus = os.cpu_count()
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": _version("scipy"),
        "scikit-learn": _version("scikit-learn"),
        "opensmile": _version("opensmile"),
        "keras-ser": _version("keras-ser"),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus,
        "gpus": [],
    }


def _fold_record(out, fold, config, class_names, paths, feature_config, corpus, wall_time):
    """The fold file: the keys of every system's fold (see `keras_ser.training.loso`), and the SVM's own."""
    y_true, y_pred = np.asarray(out["y_true"]), np.asarray(out["y_pred"])
    one_hot = np.eye(len(class_names))
    predictions = [
        {
            "index": int(index),
            "path": None if paths is None else str(paths[index]),
            "label": int(true),
            "predicted": int(pred),
            "probabilities": one_hot[pred].tolist(),  # an SVC decides: the one-hot of its decision
        }
        for index, true, pred in zip(out["test_indices"], y_true, y_pred)
    ]
    selection = out["model_selection"]
    scaler = out["scaler"]
    return {
        "test_speaker": out["test_speaker"],
        "validation_speaker": None,  # C is chosen by leave-one-speaker-out over the training speakers
        "n_train": int(len(fold.train_indices)),
        "n_validation": 0,
        "n_test": int(len(y_true)),
        **loso.fold_scores(y_true, y_pred, len(class_names)),
        "class_names": list(class_names),
        "predictions": predictions,
        "epochs_run": {"svm": 1},
        "best_epoch": {"svm": 1},
        "history": {
            "svm": {
                "C": out["chosen_C"],
                f"inner_{selection['metric']}": {str(entry["C"]): round(entry["mean"], 4) for entry in selection["grid"]},
                "model_selection": selection,
                "scaler": {key: scaler[key] for key in ("fitted_on", "speakers", "n_rows")},
            }
        },
        "channel_stats": {"mean": scaler["mean"], "std": scaler["scale"]},
        "wall_time_s": round(wall_time, 3),
        "config": config.to_dict(),
        "feature_config": feature_config,
        "corpus": corpus,
        "versions": versions(),
        "label": config.label,
        "uses_test_speaker_audio": config.uses_test_speaker_audio,
    }


def _describe_difference(stored, wanted):
    keys = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
    return ", ".join(f"{k}: {stored.get(k)!r} there, {wanted.get(k)!r} now" for k in keys)


def run_loso(
    features,
    labels,
    speakers,
    folds,
    run_dir,
    config,
    class_names,
    paths=None,
    provenance=None,
    n_jobs=1,
    log=None,
):
    """Evaluates `config` on every fold, resumably, writing the run folder of every LOSO system.

    The folds go through `keras_ser.training.loso.run_folds`, the runner of
    the Keras models, so `run_dir` holds what theirs hold (see
    `keras_ser.training.loso`):
      - `run.json`: the configuration (`config`: feature set, normalisation,
        kernel, C grid, selection metric), the data fingerprint (`data`),
        `label`, `protocol`, `uses_test_speaker_audio`, `feature_config` (the
        openSMILE configuration, from `provenance["features"]`), `provenance`
        and `command`. A second call with another configuration or other
        features is refused (use a new directory), so folds of different
        runs never mix.
      - `fold_<speaker>.json`: one per finished fold, written atomically as
        soon as the fold is done: WA, UA, confusion matrix, every prediction
        (`path`, `label`, `predicted`), the chosen C with the inner
        cross-validation scores (`history["svm"]`), the scaler's statistics
        (`channel_stats`), wall time, configuration, versions. A fold whose
        file is there is skipped.
      - `results.json`, `results.md` (and `confusion.png` with matplotlib):
        every finished fold, pooled WA/UA over all their test utterances,
        mean and standard deviation over folds, `complete` /
        `speakers_missing`, provenance and versions.

    Args:
        features: array `[n, d]` of utterance functionals.
        labels: int array `[n]`.
        speakers: array `[n]` of speaker ids.
        folds: `tf_pipeline.folds.Fold`s built with `validation="none"`.
        run_dir: str, the run directory.
        config: a `BaselineConfig`.
        class_names: list of str.
        paths: optional file paths `[n]`, recorded with the predictions.
        provenance: optional dict (corpus, data_dir, command, feature
            extraction), recorded in `run.json` and `results.json`.
        n_jobs: int, parallel fits of the inner cross-validation.
        log: optional callable for progress lines (the runner's, prefixed
            with the configuration's slug).

    Returns:
        A `LosoRun` with the report dict (`results.json`) and the folds computed / skipped.

    Example:

    >>> run = run_loso(x, corpus.labels, corpus.speaker_ids, loso_folds(corpus),
    ...                "runs/is09", BaselineConfig("IS09"), corpus.class_names)  # doctest: +SKIP
    >>> run.results["pooled"]["ua"]                                              # doctest: +SKIP
    """
    features, labels, speakers = _check_inputs(features, labels, speakers)
    class_names = [str(name) for name in class_names]
    if labels.min() < 0 or labels.max() >= len(class_names):
        raise ValueError(f"labels must lie in [0, {len(class_names)}). Received range {labels.min()}..{labels.max()}")
    provenance = dict(provenance or {})
    fingerprint = data_fingerprint(features, labels, speakers, paths, class_names)
    identity = {"config": config.to_dict(), "data": fingerprint}
    run_dir = os.path.abspath(run_dir)
    corpus = provenance.get("corpus") or "an unnamed corpus"
    feature_config = provenance.get("features") or {"feature_set": config.feature_set}
    record = {
        **identity,
        "corpus": corpus,
        "data_dir": provenance.get("data_dir"),
        "class_names": class_names,
        "num_utterances": int(len(labels)),
        "speakers": fingerprint["speakers"],
        "feature_config": feature_config,
        "label": config.label,
        "protocol": config.protocol,
        "uses_test_speaker_audio": config.uses_test_speaker_audio,
        "provenance": provenance,
        "command": provenance.get("command") or " ".join(sys.argv),
    }

    def check():
        path = os.path.join(run_dir, loso.RUN_FILE)
        if not os.path.isfile(path):
            return
        with open(path, encoding="utf-8") as handle:
            stored = json.load(handle)
        for part in ("config", "data"):
            if stored.get(part) != identity[part]:
                raise ValueError(
                    f"{run_dir} holds a run with another {part} "
                    f"({_describe_difference(stored.get(part) or {}, identity[part])}); use a new run directory"
                )

    def fit_fold(fold):
        start = time.perf_counter()
        out = evaluate_fold(features, labels, speakers, fold, config, n_jobs=n_jobs)
        return _fold_record(out, fold, config, class_names, paths, feature_config, corpus,
                            time.perf_counter() - start)

    progress = loso.run_folds(
        run_dir,
        folds,
        fit_fold,
        record,
        check=check,
        log=(lambda text: log(f"[{config.slug}] {text}")) if log else None,
        print_report=False,
        note=lambda result: f", C={result['history']['svm']['C']:g}",
    )
    return LosoRun(progress.report, progress.computed, progress.skipped, run_dir)
