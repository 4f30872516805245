"""Loading run folders and their scores: training runs, ensembles and openSMILE baselines share one layout.

A LOSO run folder holds `run.json` and one `fold_<speaker>.json` per finished
fold (`keras_ser.training.loso`, `keras_ser.baselines`); `load_run` reads it
into a `RunScores`, and the statistics of the tables come from there: pooled
WA / UA over the test utterances, mean and std over folds, paired t-tests
over the folds two runs share, per-class recall.
"""

import dataclasses
import glob
import json
import os

from .grids import DEFAULT_BASELINES
from .grids import TABLES
from .grids import table_rows
from .grids import train_rows


@dataclasses.dataclass
class RunScores:
    """Per-fold labels and predictions of a finished (or partly finished) run."""

    path: str
    folds: dict  # speaker -> {"wa", "ua", "labels", "predicted", "wall_time_s", "epochs"}
    class_names: list
    config: dict = None
    versions: dict = None
    command: str = None
    uses_test_audio: bool = False
    feature_config: dict = None
    corpus: str = "emodb"
    protocol: str = None  # run.json's own protocol sentence (the openSMILE baselines), else None

    @property
    def speakers(self):
        return sorted(self.folds)


def load_run(path):
    """A `RunScores` of a LOSO run folder (`run.json` + `fold_<speaker>.json`, the layout of every system: the
    Keras runs, ensembles and the openSMILE baselines); None if absent."""
    import numpy as np

    fold_files = sorted(glob.glob(os.path.join(path, "fold_*.json")))
    if not fold_files or not os.path.isfile(os.path.join(path, "run.json")):
        return None
    with open(os.path.join(path, "run.json")) as handle:
        run = json.load(handle)
    folds, names, versions = {}, run.get("class_names"), {}
    for fold_file in fold_files:
        with open(fold_file) as handle:
            fold = json.load(handle)
        names = fold.get("class_names", names)
        versions = fold.get("versions", versions)
        history = fold.get("history") or {}
        fit = history.get("probe") or history.get("svm") or {}  # a fit with C chosen on the training speakers
        folds[fold["test_speaker"]] = {
            "wa": fold["wa"], "ua": fold["ua"],
            "labels": np.array([p["label"] for p in fold["predictions"]]),
            "predicted": np.array([p["predicted"] for p in fold["predictions"]]),
            "wall_time_s": fold.get("wall_time_s"),
            "epochs": fold.get("epochs_run"),
            "probe_c": fit.get("C"),
            "probe_rank": fit.get("rank"),  # speaker-subspace rank, when the probe chose one
            # inner_ua keys: "C", or "rank/C" for a probe behind a speaker-subspace projection
            "probe_grid": sorted({float(key.split("/")[-1]) for key in fit.get("inner_ua", {})}),
        }
    config = run.get("config")
    uses_test_audio = run.get("uses_test_speaker_audio", bool(config and config.get("speaker_norm")))
    return RunScores(path, folds, names, config=config, versions=versions, command=run.get("command"),
                     uses_test_audio=bool(uses_test_audio), feature_config=run.get("feature_config"),
                     corpus=run.get("corpus") or "emodb", protocol=run.get("protocol"))


def pooled(run, speakers=None):
    """`(WA, UA, n)` over every test utterance of `speakers` (default: every finished fold)."""
    import numpy as np

    from keras_ser.training import scores

    speakers = run.speakers if speakers is None else speakers
    labels = np.concatenate([run.folds[s]["labels"] for s in speakers])
    predicted = np.concatenate([run.folds[s]["predicted"] for s in speakers])
    return (scores.weighted_accuracy(labels, predicted),
            scores.unweighted_accuracy(labels, predicted, len(run.class_names)), int(labels.size))


def fold_stats(run, metric, speakers=None):
    """`(mean, std)` over folds (sample std, ddof=1; 0 for one fold)."""
    import numpy as np

    values = np.array([run.folds[s][metric] for s in (run.speakers if speakers is None else speakers)])
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


def paired(run_a, run_b):
    """Paired t-test (B - A) over the folds both runs finished, for WA and UA; None below 2 shared folds.

    Returns a dict with the shared speakers and, per metric: mean of A and B over
    those folds, pooled A and B on those folds, the mean per-fold difference,
    t and the two-sided p (`scipy.stats.ttest_rel`, as `keras-ser compare`).
    """
    from keras_ser.training.report import paired_ttest

    shared = sorted(set(run_a.folds) & set(run_b.folds))
    if len(shared) < 2:
        return None
    result = {"speakers": shared}
    pooled_a, pooled_b = pooled(run_a, shared), pooled(run_b, shared)
    for position, metric in enumerate(("wa", "ua")):
        test = paired_ttest([run_a.folds[s][metric] for s in shared], [run_b.folds[s][metric] for s in shared])
        result[metric] = {key: test[key] for key in ("mean_a", "mean_b", "difference", "t", "p")}
        result[metric].update(pooled_a=pooled_a[position], pooled_b=pooled_b[position])
    return result



def per_class_recall(run, speakers=None):
    """`{class name: (recall or None, utterances)}` pooled over the folds `speakers` (default: every finished fold)."""
    import numpy as np

    speakers = run.speakers if speakers is None else speakers
    labels = np.concatenate([run.folds[s]["labels"] for s in speakers])
    predicted = np.concatenate([run.folds[s]["predicted"] for s in speakers])
    recall = {}
    for index, name in enumerate(run.class_names):
        support = int(np.sum(labels == index))
        recall[name] = (float(np.mean(predicted[labels == index] == index)) if support else None, support)
    return recall


def load_runs(run_root, baselines_dir=DEFAULT_BASELINES, preset="cpu"):
    """Every run the tables of a preset can show, by row name (None where absent)."""
    ensembles = {row.name for table in TABLES if table not in ("V", "IV")
                 for row in table_rows(table, preset, baselines_dir) if row.kind == "ensemble"}
    names = set(train_rows(preset)) | ensembles
    runs = {name: load_run(os.path.join(run_root, name)) for name in names}
    for table in ("V",):
        for row in table_rows(table, preset, baselines_dir):
            if row.kind == "baseline":
                runs[row.name] = load_run(row.name)
    return runs


def probe_grid(run):
    """The C values the probe of `run` tried (union over its folds), or None when it recorded none."""
    grid = sorted({c for f in run.folds.values() for c in f.get("probe_grid") or ()})
    return grid or None
