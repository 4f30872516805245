"""Results of a baseline run: the summary over folds, the Markdown table, the environment.

Figures in the JSON files are fractions in [0, 1]; the Markdown shows
percentages. WA is the overall accuracy, UA the mean per-class recall. Pooled
figures count every test utterance of the finished folds once (one confusion
matrix summed over folds); mean and standard deviation (sample, ddof=1) are
over the per-fold figures.
"""

import datetime
import importlib.metadata
import os
import platform
import sys

import numpy as np

from keras_ser.baselines.config import NORMALIZATIONS
from keras_ser.training.scores import scores_from_confusion

RESULTS_FORMAT = "keras_ser.baselines.results/1"


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


def environment():
    """Library versions and the machine, for `results.json`."""
    try:
        usable_cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        usable_cpus = os.cpu_count()
    return {
        "versions": {
            "python": platform.python_version(),
            "numpy": _version("numpy"),
            "scipy": _version("scipy"),
            "scikit-learn": _version("scikit-learn"),
            "opensmile": _version("opensmile"),
            "keras-ser": _version("keras-ser"),
        },
        "machine": {
            "machine": platform.machine(),
            "system": platform.system(),
            "release": platform.release(),
            "platform": platform.platform(),
            "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "usable_cpus": usable_cpus,
            "python_executable": sys.executable,
        },
    }


def _mean_std(values):
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return None, None
    return float(values.mean()), (float(values.std(ddof=1)) if values.size > 1 else None)


def summarize(fold_records, config, identity, class_names, provenance=None):
    """The `results.json` dict of a run from its finished fold records.

    Args:
        fold_records: list of fold dicts as `svm.run_loso` writes them.
        config: the run's `BaselineConfig`.
        identity: dict with the run's `config` and `data` fingerprint.
        class_names: list of str.
        provenance: optional dict (corpus, command, feature extraction).
    """
    records = sorted(fold_records, key=lambda record: record["test_speaker"])
    done = [record["test_speaker"] for record in records]
    all_speakers = identity["data"]["speakers"]
    folds = [
        {
            "test_speaker": record["test_speaker"],
            "n_test": record["n_test"],
            "wa": record["wa"],
            "ua": record["ua"],
            "chosen_C": record["chosen_C"],
            "wall_time_s": record["wall_time_s"],
        }
        for record in records
    ]
    pooled = None
    if records:
        matrix = np.sum([record["confusion_matrix"] for record in records], axis=0)
        wa, ua, recalls = scores_from_confusion(matrix)
        pooled = {
            "n": int(matrix.sum()),
            "wa": wa,
            "ua": ua,
            "per_class_recall": dict(zip(class_names, recalls)),
            "confusion_matrix": matrix.tolist(),
        }
    wa_mean, wa_std = _mean_std([record["wa"] for record in records])
    ua_mean, ua_std = _mean_std([record["ua"] for record in records])
    return {
        "format": RESULTS_FORMAT,
        "label": config.label,
        "feature_set": config.feature_set,
        "normalization": config.normalization,
        "normalization_label": NORMALIZATIONS[config.normalization],
        "uses_test_speaker_audio": config.uses_test_speaker_audio,
        "complete": sorted(done) == sorted(all_speakers),
        "speakers_done": done,
        "speakers_missing": [speaker for speaker in all_speakers if speaker not in done],
        "folds": folds,
        "pooled": pooled,
        "mean": {"wa": wa_mean, "ua": ua_mean},
        "std": {"wa": wa_std, "ua": ua_std},
        "std_ddof": 1,
        "wall_time_s": {"folds_total": round(sum(record["wall_time_s"] for record in records), 3)},
        "class_names": list(class_names),
        "config": identity["config"],
        "data": identity["data"],
        "provenance": provenance or {},
        **environment(),
        "written_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def format_percent(value):
    """A fraction as a percentage with one decimal, or "n/a"."""
    return "n/a" if value is None else f"{100 * value:.1f}"


def format_mean_std(mean, std):
    """Mean ± std in percent, e.g. "81.6 ± 6.1"; the mean alone without a std, "n/a" without a mean."""
    if mean is None:
        return "n/a"
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if std is not None else f"{100 * mean:.1f}"


def markdown(results):
    """A human-readable `results.md` for a `results.json` dict."""
    pct, pm = format_percent, format_mean_std
    lines = [f"# {results['label']}", ""]
    if results["uses_test_speaker_audio"]:
        lines += [
            "> **Per-speaker normalisation: uses the test speaker's unlabelled audio** (its own feature "
            "mean/std). Not comparable with results that keep the test speaker fully unseen.",
            "",
        ]
    status = "complete" if results["complete"] else f"INCOMPLETE, missing: {', '.join(results['speakers_missing'])}"
    lines += [
        f"Leave-one-speaker-out, {len(results['speakers_done'])} of "
        f"{len(results['speakers_done']) + len(results['speakers_missing'])} folds ({status}). "
        "WA = overall accuracy, UA = mean per-class recall, in %.",
        "",
        "| test speaker | utterances | WA | UA | chosen C | wall time (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for fold in results["folds"]:
        lines.append(
            f"| {fold['test_speaker']} | {fold['n_test']} | {pct(fold['wa'])} | {pct(fold['ua'])} | "
            f"{fold['chosen_C']:g} | {fold['wall_time_s']:.1f} |"
        )
    pooled = results["pooled"] or {}
    lines += [
        f"| **pooled** | {pooled.get('n', 0)} | **{pct(pooled.get('wa'))}** | **{pct(pooled.get('ua'))}** | | "
        f"{results['wall_time_s']['folds_total']:.1f} |",
        f"| mean ± std over folds | | {pm(results['mean']['wa'], results['std']['wa'])} | "
        f"{pm(results['mean']['ua'], results['std']['ua'])} | | |",
        "",
    ]
    if pooled:
        names = results["class_names"]
        lines += [
            "Pooled per-class recall (%) and confusion matrix (rows: true, columns: predicted):",
            "",
            "| true \\ predicted | " + " | ".join(names) + " | recall |",
            "|---|" + "---:|" * (len(names) + 1),
        ]
        for name, row in zip(names, pooled["confusion_matrix"]):
            recall = pooled["per_class_recall"][name]
            lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + f" | {pct(recall)} |")
        lines.append("")
    config = results["config"]
    features = results["provenance"].get("features", {})
    lines += [
        "## Configuration",
        "",
        f"- features: {config['feature_set']} functionals"
        + (
            f", openSMILE {features.get('opensmile_version')} `{features.get('config_file')}` "
            f"({features.get('dimension')}-d, sha256 {str(features.get('config_sha256'))[:12]}...)"
            if features
            else ""
        ),
        f"- normalisation: {results['normalization']}: {results['normalization_label']}",
        f"- classifier: sklearn SVC, kernel {config['kernel']}, C in {config['c_grid']} chosen by "
        f"leave-one-speaker-out over the training speakers, maximising {config['selection_metric'].upper()} "
        "(ties: smallest C); StandardScaler fitted on the training part of every (inner) fold",
    ]
    command = results["provenance"].get("command")
    if command:
        lines.append(f"- command: `{command}`")
    versions = ", ".join(f"{k} {v}" for k, v in results["versions"].items() if v)
    machine = results["machine"]
    lines += [
        f"- versions: {versions}",
        f"- machine: {machine['machine']}, {machine['cpu']}, {machine['usable_cpus']} usable CPUs, {machine['platform']}",
        f"- written: {results['written_at']}",
        "",
    ]
    return "\n".join(lines)
