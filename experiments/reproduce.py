#!/usr/bin/env python
"""The paper's tables on EMO-DB under leave-one-speaker-out: one command per table.

Each `--table` runs its grid of configurations through the normal resumable
LOSO runner (`keras_ser.training.run_loso`; one run folder per configuration
under --run_root, one `fold_<speaker>.json` per finished fold, so a second
invocation only trains what is missing), then refreshes `docs/results.md`:
our numbers next to the paper's (Jiang, Fu & Tao 2019), with the protocol of
every row, the folds it covers, the machine it ran on and paired t-tests.

Tables:

    II        CNN+SRU for N = 1..5 segments, and the ensemble over N (mean of
              the per-utterance probabilities of the five runs).
    III       CNN alone (one segment), SRU alone (frame features), CNN+SRU (N=3).
    V         openSMILE IS09 / IS10 + SVM: reads runs/baselines/*/results.json
              (made by experiments/baselines.py; never rerun here).
    levers    each lever on vs off on the same folds: SpecAugment masks,
              segment jitter, mixup, label smoothing; per-speaker
              normalisation (uses the test speaker's unlabelled audio) as a
              separately labelled variant.
    imagenet  EfficientNet-Lite0 with ImageNet weights, frozen (paper recipe,
              stage1_epochs=0: only SRU + softmax train on its features), vs
              the same network with random weights frozen (control), vs the
              AlexNet CNN+SRU trained end to end.
    IV        paired t-tests between the main configurations (trains what
              its pairs need and is missing, except the N=1..5 ensemble).
    all       every table above, in that order.

Presets scale the protocol (`--folds`, `--epochs`, `--override` scale it further):

    cpu    a small AlexNet (filters 16-32-48-48-32, FC 128) on 67x67 segments,
           SRU 64, end_to_end Adam 1e-3, batch 16, up to 20 epochs with early
           stopping on the next training speaker (val_loss, patience 5);
           EfficientNet-Lite0 rows at 112x112, SRU 256. Fits 2 CPU cores.
    paper  the paper's sizes: AlexNet (caffe layout) on 227x227 segments, SRU
           4096, dropout 0.5, batch 30, end_to_end Adam 1e-4 for 30 epochs, last
           epoch kept (the calibration of ../shared/DESIGN.md and the default
           of experiments/gpu_loso.py); EfficientNet-Lite0 rows at 224x224,
           frozen and fine-tuned. A GPU job.

The LOSO rules hold for every row: the test speaker is never in training, in
the feature statistics or in model selection (early stopping, when on, watches
the next training speaker). Only the `speaker_norm` row uses the test
speaker's unlabelled audio, and it says so wherever it appears.

Examples:

    .venv/bin/python experiments/reproduce.py --table=III --preset=cpu
    .venv/bin/python experiments/reproduce.py --table=levers --folds=03,08,09,11,13
    .venv/bin/python experiments/reproduce.py --table=all --report_only      # refresh docs/results.md
    .venv/bin/python experiments/reproduce.py --table=II --preset=paper --print_device_command

On a machine without TensorFlow (the GPU machines, Keras on JAX), --features
reads the `.npz` of experiments/gpu_features.py (numpy input pipeline,
`keras_ser.training.arrays`) instead of decoding the WAV files with tf.data;
--print_device_command prints the whole device command (docs/gpu.md).
"""

import argparse
import dataclasses
import datetime
import glob
import json
import os
import platform
import re
import shlex
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __package__ in (None, ""):  # run as a script from a checkout: make the repository importable
    sys.path.insert(0, ROOT)

# Jiang, Fu & Tao (2019), EMO-DB, leave-one-speaker-out, WA / UA in %.
PAPER_TABLE_II = {1: (78.9, 76.1), 2: (78.2, 76.3), 3: (82.5, 80.6), 4: (77.5, 77.5), 5: (76.8, 73.3)}
PAPER_TABLE_III = {"cnn": (72.1, 70.1), "sru": (64.2, 61.5), "cnn_sru": (82.5, 80.6)}
PAPER_TABLE_V = {"IS09": (75.5, 74.0), "IS10": (78.1, 76.7)}
GOAL_UA = 80.6  # the paper's CNN+SRU; our goal without test-speaker statistics (issue 6)

TABLES = ("II", "III", "V", "levers", "imagenet", "IV")
DEFAULT_DATA_DIR = os.path.join(os.path.dirname(ROOT), "shared", "data", "emodb", "wav")
DEFAULT_RESULTS = os.path.join(ROOT, "docs", "results.md")
DEFAULT_BASELINES = os.path.join(ROOT, "runs", "baselines")

# A small AlexNet that learns EMO-DB in minutes on 2 CPU cores (as keras_ser/cli/demo.py's DEMO_MODEL).
SMALL_ALEXNET = {"filters": [16, 32, 48, 48, 32], "fc_units": 128}

PRESETS = {
    "cpu": {
        "description": ("small AlexNet (filters 16-32-48-48-32, FC 128, random init) on 67x67 segments, SRU 64, "
                        "end_to_end Adam 1e-3, batch 16, up to 20 epochs, early stopping on the next training "
                        "speaker (val_loss, patience 5, best epoch restored), seed 0"),
        "base": dict(model="cnn_sru", n_segments=3, backbone="alexnet", backbone_kwargs=SMALL_ALEXNET, image_size=67,
                     sru_units=64, dropout=0.3, recipe="end_to_end", epochs=20, learning_rate=1e-3, batch_size=16,
                     validation="next", patience=5, monitor="val_loss", seed=0),
        "imagenet": dict(recipe="paper", backbone="efficientnet_lite0", backbone_kwargs=None, image_size=112,
                         sru_units=256, stage1_epochs=0, stage2_epochs=40, stage2_learning_rate=1e-3, batch_size=30,
                         patience=8),
        "finetune": False,
    },
    "paper": {
        "description": ("the paper's sizes: AlexNet (caffe layout, random init) on 227x227 segments, SRU 4096, "
                        "dropout 0.5, end_to_end Adam 1e-4, batch 30, 30 epochs, last epoch kept, seed 0"),
        "base": dict(model="cnn_sru", n_segments=3, backbone="alexnet", backbone_kwargs=None, image_size=227,
                     sru_units=4096, dropout=0.5, recipe="end_to_end", epochs=30, learning_rate=1e-4, batch_size=30,
                     validation="none", patience=10, monitor="val_loss", seed=0),
        "imagenet": dict(recipe="paper", backbone="efficientnet_lite0", backbone_kwargs=None, image_size=224,
                         sru_units=4096, stage1_epochs=0, stage2_epochs=100, stage2_learning_rate=1e-3, batch_size=30),
        "finetune": True,
    },
}

LEVERS = {
    "specaugment": ("SpecAugment: 2 time masks (<= 20 frames), 2 frequency masks (<= 8 Mel bands)",
                    dict(time_masks=2, time_width=20, freq_masks=2, freq_width=8)),
    "jitter": ("segment jitter: trim up to 10% of frames at each end", dict(jitter=0.1)),
    "mixup": ("mixup, Beta(0.2, 0.2)", dict(mixup_alpha=0.2)),
    "label_smoothing": ("label smoothing 0.1", dict(label_smoothing=0.1)),
    "speaker_norm": ("PER-SPEAKER NORMALISATION (uses the test speaker's unlabelled audio)", dict(speaker_norm=True)),
}


@dataclasses.dataclass
class Row:
    """One line of a table: a training run, an ensemble of runs, or an openSMILE baseline run."""

    name: str  # run folder name (training, ensemble) or baselines folder name
    label: str  # what the table shows
    kind: str = "train"  # "train", "ensemble" or "baseline"
    overrides: dict = None  # TrainConfig overrides of the preset's base (kind "train")
    members: tuple = ()  # run names (kind "ensemble")
    paper: tuple = None  # (WA, UA) the paper reports, or None
    uses_test_audio: bool = False


def train_rows(preset):
    """Every training row of a preset, by name (the tables pick from these)."""
    spec = PRESETS[preset]
    rows = {}
    for n in range(1, 6):
        rows[f"cnn_sru_n{n}"] = Row(f"cnn_sru_n{n}", f"CNN+SRU, N={n}", overrides=dict(n_segments=n),
                                    paper=PAPER_TABLE_II[n])
    rows["cnn"] = Row("cnn", "CNN alone (one segment)", overrides=dict(model="cnn", n_segments=1),
                      paper=PAPER_TABLE_III["cnn"])
    rows["sru"] = Row("sru", "SRU alone (frame-level log-Mel + deltas, 180-d)", overrides=dict(model="sru"),
                      paper=PAPER_TABLE_III["sru"])
    for name, (label, overrides) in LEVERS.items():
        rows[f"lever_{name}"] = Row(f"lever_{name}", label, overrides=dict(overrides),
                                    uses_test_audio=name == "speaker_norm")
    imagenet = spec["imagenet"]
    rows["effnet_imagenet_frozen"] = Row(
        "effnet_imagenet_frozen", "EfficientNet-Lite0, ImageNet weights, frozen (SRU + softmax trained)",
        overrides=dict(imagenet, backbone_weights="imagenet"))
    rows["effnet_imagenet_frozen_fd"] = Row(
        "effnet_imagenet_frozen_fd", "EfficientNet-Lite0, ImageNet weights, frozen, feature dropout 0.5 in stage 2",
        overrides=dict(imagenet, backbone_weights="imagenet", stage2_dropout=0.5))
    rows["effnet_random_frozen"] = Row(
        "effnet_random_frozen", "EfficientNet-Lite0, random weights, frozen (control)",
        overrides=dict(imagenet, backbone_weights=None))
    if spec["finetune"]:
        rows["effnet_imagenet_finetune"] = Row(
            "effnet_imagenet_finetune", "EfficientNet-Lite0, ImageNet weights, paper recipe (stage 1 fine-tunes 40 epochs)",
            overrides=dict(imagenet, backbone_weights="imagenet", stage1_epochs=40, stage2_epochs=50))
        rows["effnet_imagenet_e2e"] = Row(
            "effnet_imagenet_e2e", "EfficientNet-Lite0, ImageNet weights, end_to_end fine-tuning",
            overrides=dict(imagenet, backbone_weights="imagenet", recipe="end_to_end"))
    return rows


def table_rows(table, preset, baselines_dir=DEFAULT_BASELINES):
    """The rows of a table (the first is the table's reference for paired tests, except V)."""
    rows = train_rows(preset)
    if table == "II":
        return ([rows["cnn_sru_n3"]] + [rows[f"cnn_sru_n{n}"] for n in (1, 2, 4, 5)]
                + [Row("ensemble_n1-5", "ensemble over N = 1..5 (mean probabilities)", kind="ensemble",
                       members=tuple(f"cnn_sru_n{n}" for n in range(1, 6)))])
    if table == "III":
        return [rows["cnn_sru_n3"], rows["cnn"], rows["sru"]]
    if table == "V":
        baselines = []
        for feature_set in ("IS09", "IS10"):
            for normalization, label in (("train", "standardised on the training speakers"),
                                         ("speaker", "PER-SPEAKER NORMALISATION (uses the test speaker's audio)")):
                baselines.append(Row(os.path.join(baselines_dir, f"emodb-{feature_set.lower()}-{normalization}"),
                                     f"openSMILE {feature_set} + linear SVM, {label}", kind="baseline",
                                     paper=PAPER_TABLE_V[feature_set], uses_test_audio=normalization == "speaker"))
        return [rows["cnn_sru_n3"]] + baselines
    if table == "levers":
        return [Row("cnn_sru_n3", "no lever (CNN+SRU, N=3)", overrides=rows["cnn_sru_n3"].overrides,
                    paper=rows["cnn_sru_n3"].paper)] + [rows[f"lever_{name}"] for name in LEVERS]
    if table == "imagenet":
        chosen = [rows["effnet_random_frozen"], rows["effnet_imagenet_frozen"], rows["effnet_imagenet_frozen_fd"]]
        chosen += [rows[name] for name in ("effnet_imagenet_finetune", "effnet_imagenet_e2e") if name in rows]
        return chosen + [Row("cnn_sru_n3", "AlexNet CNN+SRU (N=3), random init, trained end to end",
                             overrides=rows["cnn_sru_n3"].overrides, paper=rows["cnn_sru_n3"].paper)]
    if table == "IV":
        return [rows[name] for name in ("cnn_sru_n3", "cnn", "sru", "effnet_imagenet_frozen", "effnet_random_frozen")]
    raise ValueError(f"table must be one of {TABLES}. Received: table={table!r}")


def table_iv_pairs(baselines_dir=DEFAULT_BASELINES):
    """`(A, B)` run names of Table IV (B - A is reported); baselines by folder path."""
    is09 = os.path.join(baselines_dir, "emodb-is09-train")
    is10 = os.path.join(baselines_dir, "emodb-is10-train")
    return [("cnn", "cnn_sru_n3"), ("sru", "cnn_sru_n3"), ("sru", "cnn"), (is09, "cnn_sru_n3"),
            (is10, "cnn_sru_n3"), ("cnn_sru_n3", "ensemble_n1-5"), ("effnet_random_frozen", "effnet_imagenet_frozen"),
            ("cnn_sru_n3", "effnet_imagenet_frozen"), (is10, "effnet_imagenet_frozen"), (is09, is10)]


def make_config(preset, overrides, global_overrides=None):
    """The `TrainConfig` of a row: preset base, then the row's overrides, then the command's."""
    from keras_ser.training.config import TrainConfig

    base = PRESETS[preset]["base"]
    values = {**base, **(overrides or {})}
    for key, value in (global_overrides or {}).items():
        if key == "epochs" and values.get("recipe") == "paper":
            values["stage2_epochs"] = value  # --epochs scales the trained part of every row
        elif key == "backbone_kwargs" and values.get("backbone") != base["backbone"]:
            continue  # widths of the preset's backbone (AlexNet) do not apply to another backbone
        else:
            values[key] = value
    return TrainConfig.from_dict(values)


def run_root_name(preset, global_overrides):
    """`cpu`, or e.g. `cpu_epochs3` when the command changes the preset's protocol."""
    suffix = "".join(f"_{key}{value}" for key, value in sorted((global_overrides or {}).items()))
    return re.sub(r"[^A-Za-z0-9_.=-]+", "", f"{preset}{suffix}")


# ---------------------------------------------------------------------------------------------------------------------
# Reading run folders (training runs, ensembles and openSMILE baselines) into one shape


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

    @property
    def speakers(self):
        return sorted(self.folds)


def load_run(path):
    """A `RunScores` of a keras-ser LOSO run folder or of an experiments/baselines.py run folder; None if absent."""
    import numpy as np

    if os.path.isfile(os.path.join(path, "results.json")) and os.path.isdir(os.path.join(path, "folds")):
        with open(os.path.join(path, "results.json")) as handle:
            results = json.load(handle)
        names = results["class_names"]
        index = {name: i for i, name in enumerate(names)}
        folds = {}
        for fold_file in sorted(glob.glob(os.path.join(path, "folds", "fold-*.json"))):
            with open(fold_file) as handle:
                fold = json.load(handle)
            labels = np.array([index[p["true"]] for p in fold["predictions"]])
            predicted = np.array([index[p["predicted"]] for p in fold["predictions"]])
            folds[fold["test_speaker"]] = {"wa": fold["wa"], "ua": fold["ua"], "labels": labels, "predicted": predicted,
                                           "wall_time_s": fold.get("wall_time_s"), "epochs": None}
        versions = dict(results.get("versions", {}))
        machine = results.get("machine", {})
        versions.setdefault("platform", machine.get("platform", machine.get("system", "?")))
        versions.setdefault("cpu_count", machine.get("cpu_count", "?"))
        return RunScores(path, folds, names, config=None, versions=versions, command=None,
                         uses_test_audio=bool(results.get("uses_test_speaker_audio")))
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
        folds[fold["test_speaker"]] = {
            "wa": fold["wa"], "ua": fold["ua"],
            "labels": np.array([p["label"] for p in fold["predictions"]]),
            "predicted": np.array([p["predicted"] for p in fold["predictions"]]),
            "wall_time_s": fold.get("wall_time_s"),
            "epochs": fold.get("epochs_run"),
        }
    config = run.get("config")
    return RunScores(path, folds, names, config=config, versions=versions, command=run.get("command"),
                     uses_test_audio=bool(config and config.get("speaker_norm")))


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
    import numpy as np
    from scipy import stats

    shared = sorted(set(run_a.folds) & set(run_b.folds))
    if len(shared) < 2:
        return None
    result = {"speakers": shared}
    pooled_a, pooled_b = pooled(run_a, shared), pooled(run_b, shared)
    for position, metric in enumerate(("wa", "ua")):
        a = np.array([run_a.folds[s][metric] for s in shared])
        b = np.array([run_b.folds[s][metric] for s in shared])
        if np.allclose(a, b):
            t, p = 0.0, 1.0
        else:
            test = stats.ttest_rel(b, a)
            t, p = float(test.statistic), float(test.pvalue)
        result[metric] = {"mean_a": float(a.mean()), "mean_b": float(b.mean()), "difference": float((b - a).mean()),
                          "pooled_a": pooled_a[position], "pooled_b": pooled_b[position], "t": t, "p": p}
    return result


# ---------------------------------------------------------------------------------------------------------------------
# Markdown


def _pct(value):
    return f"{100 * value:.1f}"


def _signed(value):
    return f"{100 * value:+.1f}"


def _p(value):
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def folds_label(run, all_speakers):
    if all_speakers and run.speakers == sorted(all_speakers):
        return f"all {len(run.speakers)}"
    return f"{len(run.speakers)}: " + ",".join(run.speakers)


def machine_label(versions):
    """E.g. `CPU, 2 cores (TF 2.21.0)` or `GPU NVIDIA H100 (jax)` from a fold's `versions`."""
    versions = versions or {}
    gpus = versions.get("gpus")
    backend = versions.get("keras_backend")
    if backend == "tensorflow" and versions.get("tensorflow"):
        library = f"TF {versions['tensorflow']}"
    elif backend == "jax" and versions.get("jax"):
        library = f"JAX {versions['jax']}"
    else:
        library = backend
    if gpus:
        return f"GPU {', '.join(str(g) for g in gpus)}" + (f" ({library})" if library else "")
    cores = versions.get("cpu_count", "?")
    return f"CPU, {cores} cores" + (f" ({library})" if library else "")


def protocol_text(config):
    """The protocol sentence of a run's config (as in each run's results.md)."""
    if config is None:
        return "see docs/baselines.md"
    from keras_ser.training.report import _protocol

    return _protocol(config).removeprefix("Protocol: ")


def _seconds_per_fold(run):
    times = [f["wall_time_s"] for f in run.folds.values() if f.get("wall_time_s")]
    return f"{sum(times) / len(times):.0f}" if times else ""


def _epochs(run):
    values = [sum(f["epochs"].values()) for f in run.folds.values() if isinstance(f.get("epochs"), dict)]
    return f"{sum(values) / len(values):.1f}" if values else ""


def table_markdown(table, rows, runs, all_speakers, reference=None):
    """The Markdown of one table from the loaded runs (`runs[name]` is a RunScores or None)."""
    lines = [
        "| configuration | folds | WA pooled | UA pooled | WA mean ± std | UA mean ± std | paper WA / UA "
        "| Δ WA / Δ UA vs ref (same folds) | p WA / p UA | epochs | s / fold | machine |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    missing = []
    ref_run = runs.get(reference) if reference else None
    for row in rows:
        run = runs.get(row.name)
        label = row.label + (" **[uses test-speaker audio]**" if row.uses_test_audio else "")
        if row.name == reference:
            label += " (ref)"
        paper = f"{row.paper[0]} / {row.paper[1]}" if row.paper else "-"
        if run is None or not run.folds:
            missing.append(row)
            lines.append(f"| {label} | not run | | | | | {paper} | | | | | |")
            continue
        wa, ua, _ = pooled(run)
        wa_mean, wa_std = fold_stats(run, "wa")
        ua_mean, ua_std = fold_stats(run, "ua")
        versus, p = "", ""
        if ref_run is not None and row.name != reference:
            test = paired(ref_run, run)
            if test:
                versus = (f"{_signed(test['wa']['pooled_b'] - test['wa']['pooled_a'])} / "
                          f"{_signed(test['ua']['pooled_b'] - test['ua']['pooled_a'])}"
                          + ("" if test["speakers"] == run.speakers == ref_run.speakers
                             else f" ({len(test['speakers'])} folds)"))
                p = f"{_p(test['wa']['p'])} / {_p(test['ua']['p'])}"
        lines.append(
            f"| {label} | {folds_label(run, all_speakers)} | **{_pct(wa)}** | **{_pct(ua)}** | "
            f"{_pct(wa_mean)} ± {_pct(wa_std)} | {_pct(ua_mean)} ± {_pct(ua_std)} | {paper} | {versus} | {p} | "
            f"{_epochs(run)} | {_seconds_per_fold(run)} | {machine_label(run.versions)} |")
    return lines, missing


def table_iv_markdown(runs, pairs, names):
    lines = [
        "| A | B | shared folds | WA: A / B pooled | Δ WA (mean of folds) | t | p | UA: A / B pooled "
        "| Δ UA (mean of folds) | t | p | significant (p < 0.05, UA) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for a, b in pairs:
        run_a, run_b = runs.get(a), runs.get(b)
        label_a, label_b = names.get(a, a), names.get(b, b)
        test = paired(run_a, run_b) if run_a and run_b else None
        if test is None:
            lines.append(f"| {label_a} | {label_b} | < 2 | | | | | | | | | not run |")
            continue
        wa, ua = test["wa"], test["ua"]
        lines.append(
            f"| {label_a} | {label_b} | {len(test['speakers'])} | {_pct(wa['pooled_a'])} / {_pct(wa['pooled_b'])} "
            f"| {_signed(wa['difference'])} | {wa['t']:.2f} | {_p(wa['p'])} | {_pct(ua['pooled_a'])} / "
            f"{_pct(ua['pooled_b'])} | {_signed(ua['difference'])} | {ua['t']:.2f} | {_p(ua['p'])} "
            f"| {'yes' if ua['p'] < 0.05 else 'no'} |")
    return lines


TITLES = {
    "II": "Table II: CNN+SRU for N = 1..5 segments, and the ensemble over N",
    "III": "Table III: CNN alone, SRU alone, CNN+SRU",
    "V": "Table V: openSMILE functionals + SVM against CNN+SRU",
    "levers": "Levers: each one on vs off, same folds",
    "imagenet": "ImageNet features for spectrograms: EfficientNet-Lite0 ImageNet vs random init vs AlexNet",
    "IV": "Table IV style: paired t-tests between the main configurations",
}


def load_runs(run_root, baselines_dir=DEFAULT_BASELINES, preset="cpu"):
    """Every run the tables of a preset can show, by row name (None where absent)."""
    names = set(train_rows(preset)) | {"ensemble_n1-5"}
    runs = {name: load_run(os.path.join(run_root, name)) for name in names}
    for table in ("V",):
        for row in table_rows(table, preset, baselines_dir):
            if row.kind == "baseline":
                runs[row.name] = load_run(row.name)
    return runs


def block_markdown(table, preset, run_root, runs, all_speakers, baselines_dir=DEFAULT_BASELINES):
    """The generated Markdown of one table (between the markers in docs/results.md)."""
    rows = table_rows(table, preset, baselines_dir)
    relative_root = os.path.relpath(run_root, ROOT)
    lines = [f"### {TITLES[table]} (preset `{preset}`, run folders `{relative_root}/`)", ""]
    if table == "IV":
        names = {row.name: row.name for row in rows}
        names.update({path: "IS09+SVM" if "is09" in path else "IS10+SVM" for path in
                      (os.path.join(baselines_dir, "emodb-is09-train"), os.path.join(baselines_dir, "emodb-is10-train"))})
        lines += table_iv_markdown(runs, table_iv_pairs(baselines_dir), names)
        lines += ["", "Δ = B - A in points, the mean of the per-fold differences; t and two-sided p of the paired "
                      "t-test over the shared folds (`scipy.stats.ttest_rel`, as `keras-ser compare`); pooled "
                      "figures are over the shared folds only. With few folds the test has little power: "
                      "\"no\" means not shown, not \"equal\"."]
        return "\n".join(lines) + "\n"
    reference = {"II": "cnn_sru_n3", "III": "cnn_sru_n3", "V": "cnn_sru_n3", "levers": "cnn_sru_n3",
                 "imagenet": "effnet_random_frozen"}[table]
    table_lines, missing = table_markdown(table, rows, runs, all_speakers, reference=reference)
    lines += table_lines
    lines += ["", "WA = accuracy, UA = mean per-class recall, in %; *pooled* over every test utterance of the "
                  "folds run; mean ± std over those folds (ddof=1). Δ vs ref: pooled difference on the folds both "
                  "rows ran; p: paired t-test over those folds' per-fold WA / UA. Epochs: mean epochs run per fold "
                  "(all stages). s / fold: mean wall time of a fold.", ""]
    protocols = []
    for row in rows:
        run = runs.get(row.name)
        if run is None or not run.folds:
            continue
        if row.kind == "ensemble":
            protocols.append(f"- `{row.name}`: mean of the per-utterance probabilities of "
                             + ", ".join(f"`{m}`" for m in row.members) + " on the folds all of them finished.")
        elif row.kind == "baseline":
            protocols.append(f"- `{os.path.relpath(row.name, ROOT)}`: {row.label}; protocol and command in "
                             "docs/baselines.md (not rerun here).")
        else:
            protocols.append(f"- `{row.name}`: {protocol_text(run.config)}")
    if protocols:
        lines += ["Protocols:", ""] + protocols
    commands = sorted({run.command for row in rows for run in [runs.get(row.name)]
                       if run is not None and run.folds and run.command and row.kind == "train"})
    if commands:
        lines += ["", "Last command per run folder:", ""] + [f"- `{command}`" for command in commands]
    if missing:
        lines += ["", "Not run yet: " + ", ".join(f"`{row.name}`" for row in missing)
                  + f" (`python experiments/reproduce.py --table={table} --preset={preset}`)."]
    return "\n".join(lines) + "\n"


def invocations_markdown(run_root):
    path = os.path.join(run_root, "invocations.jsonl")
    if not os.path.isfile(path):
        return ""
    lines = ["| started (UTC) | command | folds trained | wall time | machine |", "|---|---|---:|---:|---|"]
    with open(path) as handle:
        for line in handle:
            if not line.strip():
                continue
            item = json.loads(line)
            lines.append(f"| {item['started']} | `{item['command']}` | {item['folds_trained']} | "
                         f"{item['wall_time_s'] / 60:.1f} min | {item['machine']} |")
    return "\n".join(lines) + "\n"


BEGIN = "<!-- reproduce:begin {key} -->"
END = "<!-- reproduce:end {key} -->"

TEMPLATE = """# Reproducing Jiang, Fu & Tao (2019) on EMO-DB, leave-one-speaker-out

Every table below is written by `experiments/reproduce.py` from the run folders (the generated
blocks between `reproduce:begin` / `reproduce:end` markers are replaced on each run; text outside
them is kept). Paper: CNN+SRU WA 82.5 / UA 80.6 at N=3. Goal (issue 6): UA >= 80.6 without any
statistic of the test speaker.

"""


def update_results_md(path, blocks):
    """Replaces (or appends) the generated blocks `{key: markdown}` of `path`, keeping everything else."""
    text = open(path).read() if os.path.isfile(path) else TEMPLATE
    for key, body in blocks.items():
        begin, end = BEGIN.format(key=key), END.format(key=key)
        block = f"{begin}\n{body.rstrip()}\n{end}"
        if begin in text and end in text:
            start = text.index(begin)
            stop = text.index(end, start) + len(end)
            text = text[:start] + block + text[stop:]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = f"{path}.tmp{os.getpid()}"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return text


def write_results(path, tables, preset, run_root, all_speakers, baselines_dir=DEFAULT_BASELINES):
    """Refreshes the blocks of `tables` (and the invocation log) of one run root in `path`."""
    runs = load_runs(run_root, baselines_dir, preset)
    tag = os.path.basename(os.path.normpath(run_root))
    blocks = {f"table={table} runs={tag}": block_markdown(table, preset, run_root, runs, all_speakers, baselines_dir)
              for table in tables}
    log = invocations_markdown(run_root)
    if log:
        blocks[f"invocations runs={tag}"] = (f"### Commands that ran (run folders `{os.path.relpath(run_root, ROOT)}/`)"
                                            "\n\n" + log)
    return update_results_md(path, blocks)


# ---------------------------------------------------------------------------------------------------------------------
# Running


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True, choices=TABLES + ("all",), help="Which table's grid to run.")
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="Protocol size (default: cpu).")
    parser.add_argument("--folds", default=None,
                        help="Test speakers, comma-separated (default: all). Use the same subset for every table "
                             "so that comparisons are paired.")
    parser.add_argument("--epochs", type=int, default=None,
                        help="Epochs of every row (end_to_end: epochs; paper recipe: stage2_epochs). Changes the run "
                             "folder (e.g. runs/reproduce/cpu_epochs3).")
    parser.add_argument("--override", default=None,
                        help='JSON dict of TrainConfig fields for every row, e.g. \'{"patience": 3}\'. Changes the '
                             "run folder.")
    parser.add_argument("--data_dir", default=DEFAULT_DATA_DIR, help="EMO-DB wav folder (tf.data input path).")
    parser.add_argument("--features", default=None,
                        help="Feature .npz of experiments/gpu_features.py: numpy input path, no TensorFlow "
                             "(the GPU machines).")
    parser.add_argument("--run_root", default=None, help="Folder of the run folders (default: runs/reproduce/<preset>"
                        "[_<overrides>]).")
    parser.add_argument("--baselines_dir", default=DEFAULT_BASELINES, help="Run folders of experiments/baselines.py.")
    parser.add_argument("--results", default=DEFAULT_RESULTS, help="Markdown file to refresh ('' = none).")
    parser.add_argument("--report_only", action="store_true", help="Train nothing; refresh the tables only.")
    parser.add_argument("--order", default="config", choices=["config", "fold"],
                        help="config: every fold of a row before the next row; fold: each fold for every row in turn.")
    parser.add_argument("--budget_s", type=float, default=None,
                        help="Stop cleanly between folds before this many seconds (the last fold's time as estimate).")
    parser.add_argument("--max_folds", type=int, default=None, help="Stop after training this many folds.")
    parser.add_argument("--workers", type=int, default=4, help="--features only: threads preparing batches.")
    parser.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2], help="Keras output (2: a line per epoch).")
    parser.add_argument("--tensorboard", action="store_true", help="Write TensorBoard logs (tf.data path only).")
    parser.add_argument("--dry_run", action="store_true", help="Print the configurations and exit.")
    parser.add_argument("--print_device_command", action="store_true",
                        help="Print the device command (docs/gpu.md) that runs this invocation on a GPU machine, "
                             "and exit.")
    args = parser.parse_args(argv)
    args.folds = [s.strip() for s in args.folds.split(",") if s.strip()] if args.folds else None
    overrides = {}
    if args.override:
        try:
            overrides = json.loads(args.override)
        except json.JSONDecodeError as error:
            parser.error(f"--override is not valid JSON ({error}): {args.override!r}")
        if not isinstance(overrides, dict):
            parser.error(f"--override must be a JSON object. Received: {args.override!r}")
    if args.epochs is not None:
        if args.epochs < 1:
            parser.error(f"--epochs must be >= 1. Received: {args.epochs}")
        overrides["epochs"] = args.epochs
    args.global_overrides = overrides
    args.run_root = args.run_root or os.path.join(ROOT, "runs", "reproduce",
                                                  run_root_name(args.preset, overrides))
    return args


def device_command(argv):
    """The `run` tool command that runs these reproduce.py arguments on a GPU machine (Keras on JAX)."""
    keep = [a for a in argv if not a.startswith(("--print_device_command", "--run_root", "--features", "--results"))]
    return ('python3 -m pip install -q --no-index --no-deps --no-compile --target .site .whl/*.whl && '
            'PYTHONPATH=$PWD/.site:$PWD KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false '
            'python3 experiments/reproduce.py ' + " ".join(shlex.quote(a) for a in keep)
            + ' --features=.gpu_data/emodb.npz --run_root=$OUT/reproduce --results=$OUT/results.md '
            '--budget_s=480 --order=fold 2>&1 | tee $OUT/reproduce.log')


def grid(tables, preset, global_overrides, baselines_dir=DEFAULT_BASELINES):
    """`[(name, TrainConfig)]` to train, in table order, without duplicates; and the ensembles to build."""
    trains, ensembles, seen = [], [], set()
    for table in tables:
        for row in table_rows(table, preset, baselines_dir):
            if row.kind == "train" and row.name not in seen:
                seen.add(row.name)
                trains.append((row.name, make_config(preset, row.overrides, global_overrides)))
            elif row.kind == "ensemble" and row.name not in seen:
                seen.add(row.name)
                ensembles.append(row)
    return trains, ensembles


def load_corpus(args):
    """`(corpus, feature_config, fold_data)`: tf.data from WAV files, or numpy arrays from --features."""
    if args.features:
        from keras_ser.training import arrays as arrays_lib

        data = arrays_lib.load_feature_arrays(args.features)
        return data.corpus, data.feature_config, arrays_lib.fold_data_fn(data, workers=args.workers)
    from tf_pipeline import corpora

    return corpora.emodb(args.data_dir), None, None


def machine_now():
    import keras

    from keras_ser.training.loso import versions

    return machine_label(versions()) + f", {platform.machine()}, keras {keras.__version__} ({keras.backend.backend()})"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.features:
        os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports Keras: no TensorFlow needed
    tables = list(TABLES) if args.table == "all" else [args.table]
    if args.print_device_command:
        print(device_command(argv))
        return 0
    start = time.time()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    command = "python experiments/reproduce.py " + " ".join(shlex.quote(a) for a in argv)

    def log(text):
        print(f"[{time.time() - start:7.1f} s] {text}", flush=True)

    trains, ensembles = grid(tables, args.preset, args.global_overrides, args.baselines_dir)
    log(f"tables {', '.join(tables)}; preset {args.preset}; run root {args.run_root}; {len(trains)} training "
        f"row(s), {len(ensembles)} ensemble(s)")
    base = make_config(args.preset, {}, args.global_overrides).to_dict()
    log(f"  base: {json.dumps(base, sort_keys=True)}")
    for name, config in trains:
        changed = {key: value for key, value in config.to_dict().items() if base.get(key) != value}
        log(f"  {name}: {json.dumps(changed, sort_keys=True)}")
    if args.dry_run:
        return 0

    trained = 0
    all_speakers = None
    if not args.report_only:
        import keras

        from keras_ser.training import loso

        corpus, feature_config, fold_data = load_corpus(args)
        all_speakers = list(corpus.speakers)
        speakers = args.folds or all_speakers
        unknown = [s for s in speakers if s not in corpus.speakers]
        if unknown:
            raise SystemExit(f"error: --folds names unknown speakers {unknown}; {corpus.name} has {all_speakers}")
        os.makedirs(args.run_root, exist_ok=True)
        if args.order == "config":
            schedule = [(name, config, s) for name, config in trains for s in speakers]
        else:
            schedule = [(name, config, s) for s in speakers for name, config in trains]
        last_fold_s = None

        def run_log(text):
            if "\n" not in text and not text.startswith("confusion.png not written"):
                log(text)

        for name, config, speaker in schedule:
            run_dir = os.path.join(args.run_root, name)
            if os.path.exists(loso.fold_path(run_dir, speaker)):
                continue
            if args.max_folds is not None and trained >= args.max_folds:
                log(f"--max_folds={args.max_folds} reached; stopping (rerun to resume)")
                break
            elapsed = time.time() - start
            if args.budget_s is not None and last_fold_s is not None and elapsed + last_fold_s > args.budget_s:
                log(f"budget: {elapsed:.0f} s used, next fold expected to take {last_fold_s:.0f} s of "
                    f"{args.budget_s:.0f} s; stopping (rerun to resume)")
                break
            log(f"{name}: fold {speaker}")
            fold_start = time.time()
            loso.run_loso(corpus, config, run_dir, speakers=[speaker], feature_config=feature_config,
                          data_dir=None if args.features else args.data_dir, verbose=args.verbose, command=command,
                          log=run_log, fold_data=fold_data, tensorboard=args.tensorboard and not args.features)
            last_fold_s = time.time() - fold_start
            trained += 1
            keras.backend.clear_session()

    from keras_ser.training import report

    for row in ensembles:
        members = [os.path.join(args.run_root, m) for m in row.members]
        finished = [set(os.path.basename(p)[5:-5] for p in glob.glob(os.path.join(m, "fold_*.json"))) for m in members]
        if all(finished) and set.intersection(*finished):
            report.ensemble(members, os.path.join(args.run_root, row.name), log=None)
            log(f"{row.name}: ensemble of {len(members)} runs over {len(set.intersection(*finished))} fold(s)")
        else:
            log(f"{row.name}: not built (a member has no finished fold)")

    wall = time.time() - start
    if not args.report_only:
        item = {"started": started, "command": command, "folds_trained": trained, "wall_time_s": round(wall, 1),
                "machine": machine_now()}
        with open(os.path.join(args.run_root, "invocations.jsonl"), "a") as handle:
            handle.write(json.dumps(item) + "\n")
    if all_speakers is None:
        all_speakers = _speakers_of(args)
    if args.results:
        write_results(args.results, tables, args.preset, args.run_root, all_speakers, args.baselines_dir)
        log(f"refreshed {args.results}")
    log(f"done: {trained} fold(s) trained in {wall:.0f} s")
    return 0


def _speakers_of(args):
    """The corpus's speakers without loading audio (file names), for 'all N' fold labels."""
    if args.features:
        import numpy as np

        with np.load(args.features, allow_pickle=False) as data:
            return sorted({str(s) for s in data["speakers"]}) if "speakers" in data.files else None
    files = glob.glob(os.path.join(args.data_dir, "*.wav"))
    return sorted({os.path.basename(f)[:2] for f in files}) or None


if __name__ == "__main__":
    sys.exit(main())
