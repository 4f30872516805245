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

`run_loso` writes one JSON per fold into a run directory as soon as the fold
is done, then `results.json` and `results.md`; run again with the same
directory, it skips the folds already there.
"""

import dataclasses
import glob
import hashlib
import json
import os
import re
import time

import numpy as np

from keras_ser.baselines import results as results_lib
from keras_ser.training.atomic import write_json_atomic, write_text_atomic
from keras_ser.baselines.config import NORMALIZATIONS, BaselineConfig
from keras_ser.baselines.dependencies import require
from keras_ser.training.scores import confusion_matrix, scores_from_confusion, unweighted_accuracy

FOLD_FORMAT = "keras_ser.baselines.fold/1"
RUN_FORMAT = "keras_ser.baselines.run/1"


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
    """What `run_loso` did: the results written and which folds it computed or found done."""

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


def fold_filename(test_speaker):
    return "fold-" + re.sub(r"[^A-Za-z0-9._-]", "_", str(test_speaker)) + ".json"


def _load_finished_fold(path, identity):
    """The fold record at `path` if it is complete and of this run, else None."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    if record.get("format") != FOLD_FORMAT:
        return None
    if record.get("config") != identity["config"] or record.get("data") != identity["data"]:
        return None
    return record


def _fold_record(out, config, identity, class_names, paths, wall_time):
    num_classes = len(class_names)
    matrix = confusion_matrix(out["y_true"], out["y_pred"], num_classes)
    wa, ua, recalls = scores_from_confusion(matrix)
    predictions = []
    for index, true, pred in zip(out["test_indices"], out["y_true"], out["y_pred"]):
        entry = {"index": int(index), "true": class_names[true], "predicted": class_names[pred]}
        if paths is not None:
            entry["file"] = os.path.basename(str(paths[index]))
        predictions.append(entry)
    return {
        "format": FOLD_FORMAT,
        "label": config.label,
        "normalization": config.normalization,
        "normalization_label": NORMALIZATIONS[config.normalization],
        "uses_test_speaker_audio": config.uses_test_speaker_audio,
        "test_speaker": out["test_speaker"],
        "train_speakers": out["train_speakers"],
        "n_train": out["scaler"]["n_rows"],
        "n_test": len(out["y_true"]),
        "wa": wa,
        "ua": ua,
        "per_class_recall": dict(zip(class_names, recalls)),
        "class_names": list(class_names),
        "confusion_matrix": matrix.tolist(),
        "chosen_C": out["chosen_C"],
        "model_selection": out["model_selection"],
        "scaler": out["scaler"],
        "predictions": predictions,
        "wall_time_s": round(wall_time, 3),
        "config": identity["config"],
        "data": identity["data"],
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
    """Evaluates `config` on every fold, resumably, writing results into `run_dir`.

    Layout of `run_dir`:
      - `run.json`: the configuration and the data fingerprint of the run. A
        second call with another configuration or other features is refused
        (use a new directory), so folds of different runs never mix.
      - `folds/fold-<speaker>.json`: one per finished fold, written
        atomically (temporary file + `os.replace`) as soon as the fold is done:
        WA, UA, per-class recall, confusion matrix, every prediction, chosen C
        with the inner cross-validation scores, the scaler's statistics, wall
        time, configuration. A fold whose file is there is skipped.
      - `results.json`, `results.md`: every finished fold, pooled WA/UA over all
        their test utterances, mean and standard deviation over folds,
        configuration, provenance, library versions and machine.

    Args:
        features: array `[n, d]`.
        labels: int array `[n]`.
        speakers: array `[n]` of speaker ids.
        folds: list of `tf_pipeline.folds.Fold` (`validation="none"`).
        run_dir: str, the run directory (created if needed).
        config: a `BaselineConfig`.
        class_names: sequence of str, indexed by the labels.
        paths: optional sequence of the utterances' files (recorded per prediction).
        provenance: optional JSON-ready dict stored in `results.json` (corpus,
            data folder, feature extraction details, the command line).
        n_jobs: int, parallel fits in model selection. Defaults to `1`.
        log: optional callable taking a str (progress lines).

    Returns:
        A `LosoRun` with the results dict and the folds computed / skipped.

    Example:

    >>> run = run_loso(x, corpus.labels, corpus.speaker_ids, loso_folds(corpus),
    ...                "runs/is09", BaselineConfig("IS09"), corpus.class_names)  # doctest: +SKIP
    >>> run.results["pooled"]["ua"]                                              # doctest: +SKIP
    """
    features, labels, speakers = _check_inputs(features, labels, speakers)
    class_names = [str(name) for name in class_names]
    if labels.min() < 0 or labels.max() >= len(class_names):
        raise ValueError(f"labels must lie in [0, {len(class_names)}). Received range {labels.min()}..{labels.max()}")
    log = log or (lambda message: None)
    identity = {
        "config": config.to_dict(),
        "data": data_fingerprint(features, labels, speakers, paths, class_names),
    }
    run_dir = os.path.abspath(run_dir)
    fold_dir = os.path.join(run_dir, "folds")
    os.makedirs(fold_dir, exist_ok=True)
    run_file = os.path.join(run_dir, "run.json")
    if os.path.isfile(run_file):
        with open(run_file, encoding="utf-8") as handle:
            stored = json.load(handle)
        for part in ("config", "data"):
            if stored.get(part) != identity[part]:
                raise ValueError(
                    f"{run_dir} holds a run with another {part} ({_describe_difference(stored.get(part) or {}, identity[part])}); "
                    "use a new run directory"
                )
    else:
        write_json_atomic(run_file, {"format": RUN_FORMAT, "label": config.label, **identity})

    computed, skipped = [], []
    for fold in folds:
        path = os.path.join(fold_dir, fold_filename(fold.test_speaker))
        if _load_finished_fold(path, identity) is not None:
            skipped.append(str(fold.test_speaker))
            log(f"[{config.slug}] fold {fold.test_speaker}: done already ({path})")
            continue
        start = time.perf_counter()
        out = evaluate_fold(features, labels, speakers, fold, config, n_jobs=n_jobs)
        record = _fold_record(out, config, identity, class_names, paths, time.perf_counter() - start)
        write_json_atomic(path, record)
        computed.append(str(fold.test_speaker))
        log(
            f"[{config.slug}] fold {fold.test_speaker}: WA {100 * record['wa']:.1f} UA {100 * record['ua']:.1f} "
            f"C={record['chosen_C']:g} ({record['wall_time_s']:.1f} s)"
        )

    records = []
    for path in sorted(glob.glob(os.path.join(fold_dir, "fold-*.json"))):
        record = _load_finished_fold(path, identity)
        if record is not None:
            records.append(record)
    results = results_lib.summarize(records, config, identity, class_names, provenance)
    write_json_atomic(os.path.join(run_dir, "results.json"), results)
    write_text_atomic(os.path.join(run_dir, "results.md"), results_lib.markdown(results))
    return LosoRun(results, tuple(computed), tuple(skipped), run_dir)
