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
    V         openSMILE functionals + linear SVM: IS09 / IS10 (the paper's,
              standardised on the training speakers and per speaker),
              ComParE_2016 and eGeMAPSv02 (training speakers only). Their run
              folders (--baselines_dir, the LOSO runner's layout) are made by
              experiments/baselines.py, which this runs for any fold missing
              (not with --features: openSMILE reads the WAV files).
    levers    each lever on vs off on the same folds: SpecAugment masks,
              segment jitter, mixup, label smoothing; per-speaker
              normalisation (uses the test speaker's unlabelled audio) as a
              separately labelled variant.
    imagenet  EfficientNet-Lite0 with ImageNet weights, frozen (paper recipe,
              stage1_epochs=0: only SRU + softmax train on its features), vs
              the same network with random weights frozen (control), vs the
              AlexNet CNN+SRU trained end to end.
    speech    a pretrained speech encoder (GE2E speaker encoder, weights
              shipped with keras-ser, frozen): mean + std of its LSTM
              layers' frames with a logistic-regression probe (C chosen by
              leave-one-speaker-out over the training speakers), on raw
              audio and with the encoder's -30 dBFS volume normalisation;
              its frames in N=3 segments under an SRU head trained with
              Adam; against IS10 + SVM, the CNN+SRU (N=3) and the frozen
              ImageNet EfficientNet-Lite0 rows of the preset: paired
              t-tests, per-class recall and time per fold. Its encoder rows
              are TrainConfigs of their own (not the preset's CNN base) and
              need the WAV files (skipped with --features).
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
           epoch kept (docs/design.md, Reference calibration, and the default
           of experiments/gpu_loso.py); EfficientNet-Lite0 rows at 224x224,
           frozen and fine-tuned. A GPU job.

The LOSO rules hold for every row: the test speaker is never in training, in
the feature statistics or in model selection (early stopping, when on, watches
the next training speaker). Only the per-speaker normalisation rows (the
`speaker_norm` lever, the baselines' `speaker` normalisation) use the test
speaker's unlabelled audio, and they say so wherever they appear.

Besides the Markdown, every refresh writes a machine-readable leaderboard next
to it (`docs/results.json`: one object per system with pooled and per-fold
WA / UA, folds, command, machine and protocol). Entries are keyed by run
folder: a refresh replaces the entries of the run folders it finds and keeps
the others, and a generated block of docs/results.md is not replaced when that
would turn a row with results into "not run" (run folders are not kept in git,
so a checkout may lack them; --overwrite_blocks rewrites it anyway). Without a
results.json, the first refresh seeds it from the generated blocks of
docs/results.md.

Examples:

    .venv/bin/python experiments/reproduce.py --table=III --preset=cpu
    .venv/bin/python experiments/reproduce.py --table=levers --folds=03,08,09,11,13
    .venv/bin/python experiments/reproduce.py --table=III --rows=cnn_sru_n3   # one row of a table
    .venv/bin/python experiments/reproduce.py --table=speech --folds=03
    .venv/bin/python experiments/reproduce.py --table=all --report_only      # refresh docs/results.md
    .venv/bin/python experiments/reproduce.py --table=II --preset=paper --print_device_command

On a machine without TensorFlow (a GPU machine with Keras on JAX), --features
reads the `.npz` of experiments/gpu_features.py (numpy input pipeline,
`keras_ser.training.feature_file`) instead of decoding the WAV files with tf.data;
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

TABLES = ("II", "III", "V", "levers", "imagenet", "speech", "IV")
DEFAULT_DATA_DIR = os.path.join(os.path.dirname(ROOT), "shared", "data", "emodb", "wav")
DEFAULT_RESULTS = os.path.join(ROOT, "docs", "results.md")
EMODB_SPEAKERS = ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16")
DEFAULT_BASELINES = os.path.join(ROOT, "runs", "baselines")

# A small AlexNet that learns EMO-DB in minutes on 2 CPU cores (as keras_ser_cli/demo.py's DEMO_MODEL).
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
    features: dict = None  # feature-config fields passed to run_loso as `feature_config` (None: the model's default)
    standalone: bool = False  # `overrides` is a whole TrainConfig (on its defaults), not changes to the preset's base
    baseline: tuple = None  # (feature set, normalization) of experiments/baselines.py (kind "baseline")


# The speech-encoder rows: TrainConfigs of their own, the same under every preset.
SPEECH_PROBE = dict(model="encoder_stats", recipe="probe", validation="none", batch_size=16, seed=0)
SPEECH_SRU = dict(model="encoder_sru", n_segments=3, recipe="frozen", validation="next", epochs=60, learning_rate=1e-3,
                  batch_size=32, dropout=0.3, patience=10, monitor="val_loss", seed=0)


def speech_rows():
    """The pretrained speech-encoder rows, by name."""
    return {
        "encoder_stats_probe": Row(
            "encoder_stats_probe", "GE2E encoder, mean + std of each layer (1536-d), logistic-regression probe, "
            "raw audio", overrides=dict(SPEECH_PROBE), standalone=True),
        "encoder_stats_probe_vol30": Row(
            "encoder_stats_probe_vol30", "GE2E encoder, mean + std of each layer, logistic-regression probe, "
            "volume normalised to -30 dBFS", overrides=dict(SPEECH_PROBE), features={"volume_dbfs": -30.0},
            standalone=True),
        "encoder_sru_frozen": Row(
            "encoder_sru_frozen", "GE2E encoder, N=3 segments (mean + std each), SRU 256 + softmax trained with Adam",
            overrides=dict(SPEECH_SRU), standalone=True),
        "sfx_stats_probe": Row(
            "sfx_stats_probe", "aisfx sound-effects CNN, mean + std of its top block (1024-d), logistic-regression "
            "probe", overrides=dict(SPEECH_PROBE, model="sfx_stats"), standalone=True),
        "fusion_stats_probe": Row(
            "fusion_stats_probe", "GE2E encoder + aisfx CNN, both mean + std (2560-d), logistic-regression probe",
            overrides=dict(SPEECH_PROBE, model="fusion_stats"), standalone=True),
        "fusion_stats_subspace": Row(
            "fusion_stats_subspace", "GE2E encoder + aisfx CNN, speaker-subspace projection (rank 0-4 chosen on the "
            "training speakers), logistic-regression probe",
            overrides=dict(SPEECH_PROBE, model="fusion_stats", speaker_subspace=4), standalone=True),
    }


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
    rows.update(speech_rows())
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
        return [rows["cnn_sru_n3"]] + baseline_rows(baselines_dir)
    if table == "levers":
        return [Row("cnn_sru_n3", "no lever (CNN+SRU, N=3)", overrides=rows["cnn_sru_n3"].overrides,
                    paper=rows["cnn_sru_n3"].paper)] + [rows[f"lever_{name}"] for name in LEVERS]
    if table == "imagenet":
        chosen = [rows["effnet_random_frozen"], rows["effnet_imagenet_frozen"], rows["effnet_imagenet_frozen_fd"]]
        chosen += [rows[name] for name in ("effnet_imagenet_finetune", "effnet_imagenet_e2e") if name in rows]
        return chosen + [Row("cnn_sru_n3", "AlexNet CNN+SRU (N=3), random init, trained end to end",
                             overrides=rows["cnn_sru_n3"].overrides, paper=rows["cnn_sru_n3"].paper)]
    if table == "speech":
        is10 = baseline_row(baselines_dir, "IS10", "train")
        cnn = Row("cnn_sru_n3", f"AlexNet CNN+SRU (N=3), random init, trained end to end (preset `{preset}`)",
                  overrides=rows["cnn_sru_n3"].overrides, paper=rows["cnn_sru_n3"].paper)
        late = Row("ensemble_ge2e_sfx", "late fusion: mean probabilities of the GE2E probe and the sound-effects "
                   "probe", kind="ensemble", members=("encoder_stats_probe", "sfx_stats_probe"))
        return [rows[name] for name in speech_rows()] + [late, is10, cnn, rows["effnet_imagenet_frozen"],
                                                          rows["effnet_imagenet_frozen_fd"]]
    if table == "IV":
        return [rows[name] for name in ("cnn_sru_n3", "cnn", "sru", "effnet_imagenet_frozen", "effnet_random_frozen")]
    raise ValueError(f"table must be one of {TABLES}. Received: table={table!r}")


# The openSMILE + linear SVM rows: (feature set, normalisations); the paper's Table V has IS09 and IS10.
BASELINES = (("IS09", ("train", "speaker")), ("IS10", ("train", "speaker")), ("ComParE_2016", ("train",)),
             ("eGeMAPSv02", ("train",)))
BASELINE_NORMALIZATIONS = {"train": "standardised on the training speakers",
                           "speaker": "PER-SPEAKER NORMALISATION (uses the test speaker's audio)"}


def baseline_row(baselines_dir, feature_set, normalization):
    """The row of one experiments/baselines.py run folder (`<baselines_dir>/emodb-<set>-<normalisation>`)."""
    return Row(os.path.join(baselines_dir, f"emodb-{feature_set.lower()}-{normalization}"),
               f"openSMILE {feature_set} + linear SVM, {BASELINE_NORMALIZATIONS[normalization]}", kind="baseline",
               paper=PAPER_TABLE_V.get(feature_set), uses_test_audio=normalization == "speaker",
               baseline=(feature_set, normalization))


def baseline_rows(baselines_dir=DEFAULT_BASELINES):
    """Every openSMILE + SVM row of Table V, in table order."""
    return [baseline_row(baselines_dir, feature_set, normalization)
            for feature_set, normalizations in BASELINES for normalization in normalizations]


def table_iv_pairs(baselines_dir=DEFAULT_BASELINES):
    """`(A, B)` run names of Table IV (B - A is reported); baselines by folder path."""
    is09 = os.path.join(baselines_dir, "emodb-is09-train")
    is10 = os.path.join(baselines_dir, "emodb-is10-train")
    return [("cnn", "cnn_sru_n3"), ("sru", "cnn_sru_n3"), ("sru", "cnn"), (is09, "cnn_sru_n3"),
            (is10, "cnn_sru_n3"), ("cnn_sru_n3", "ensemble_n1-5"), ("effnet_random_frozen", "effnet_imagenet_frozen"),
            ("cnn_sru_n3", "effnet_imagenet_frozen"), (is10, "effnet_imagenet_frozen"), (is09, is10)]


def speech_pairs(baselines_dir=DEFAULT_BASELINES):
    """`(A, B)` paired tests of the speech table (B - A reported): each other system against the reference probe."""
    reference = "encoder_stats_probe"
    others = [os.path.join(baselines_dir, "emodb-is10-train"), "cnn_sru_n3", "effnet_imagenet_frozen",
              "effnet_imagenet_frozen_fd"]
    return [(other, reference) for other in others] + [(reference, "encoder_stats_probe_vol30"),
                                                       (reference, "encoder_sru_frozen"),
                                                       (reference, "sfx_stats_probe"),
                                                       (reference, "fusion_stats_probe"),
                                                       (reference, "fusion_stats_subspace"),
                                                       (reference, "ensemble_ge2e_sfx"),
                                                       ("fusion_stats_probe", "fusion_stats_subspace")]


def make_config(preset, overrides, global_overrides=None, standalone=False):
    """The `TrainConfig` of a row: preset base (or, `standalone`, TrainConfig's defaults), then the row's
    overrides, then the command's."""
    from keras_ser.training.config import TrainConfig

    base = PRESETS[preset]["base"]
    values = dict(overrides or {}) if standalone else {**base, **(overrides or {})}
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
# Reading run folders (training runs, ensembles and openSMILE baselines: one layout) into one shape


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


def protocol_text(config, feature_config=None, c_grid=None):
    """The protocol sentence of a run's config (as in each run's results.md)."""
    if config is None:
        return "see docs/baselines.md"
    from keras_ser.zoo import ENCODER_MODELS

    if config.get("model") in ENCODER_MODELS:
        return encoder_protocol_text(config, feature_config, c_grid)
    from keras_ser.training.report import _protocol

    return _protocol(config).removeprefix("Protocol: ")


def encoder_protocol_text(config, feature_config=None, c_grid=None):
    """The protocol sentence of a speech-encoder run (`encoder_stats` / `encoder_sru`); `c_grid`: the probe's
    C values as the run recorded them (default: the current `keras_ser.training.frozen.PROBE_C_GRID`)."""
    if c_grid is None:
        from keras_ser.training.frozen import PROBE_C_GRID as c_grid

    features = feature_config or {}
    if config["model"] == "fusion_stats":
        features = features.get("mel_frames") or {}
    volume = features.get("volume_dbfs")
    audio = ("raw audio (no volume normalisation)" if volume is None else
             f"each utterance raised to {volume:g} dBFS RMS (never lowered) before the spectrum, in the graph")
    frames = (f"{features.get('n_mels', 40)}-band Mel power frames ({features.get('n_fft', 400)}-sample window every "
              f"{features.get('hop_length', 160)} samples at {features.get('sample_rate', 16000)} Hz)")
    encoder = f"GE2E speaker encoder (3 LSTM layers of 256 units, offline weights, frozen) over {frames}, {audio}"
    sfx = ("aisfx sound-effects CNN (4 blocks of two 3x3 convolutions, 64-512 channels, offline weights CC BY 4.0, "
           "frozen) over 96-band HTK log-Mel (46.4 ms Hann window every 23.2 ms at 16 kHz, peak-normalised audio)")
    if config["model"] == "sfx_stats":
        encoder, pooling = sfx, "mean and std over time of the top block's frames (1024 features)"
    elif config["model"] == "fusion_stats":
        encoder = f"{encoder}, and the {sfx}"
        pooling = ("mean and std over time of each LSTM layer's frames and of the CNN's top block, concatenated "
                   "(1536 + 1024 = 2560 features)")
    elif config["model"] == "encoder_stats":
        pooling = "mean and std over time of each layer's frames (1536 features)"
    else:
        pooling = (f"each layer's frames cut in N={config['n_segments']} segments, mean and std per segment "
                   f"(1536 features each), dropout {config['dropout']}, SRU {config['sru_units']} units over the "
                   "segments")
    if config["recipe"] == "probe":
        grid = ", ".join(f"{c:g}" for c in sorted(c_grid))
        training = ("features standardised on the training speakers, multinomial logistic regression (L-BFGS), "
                    f"C from {{{grid}}} chosen by leave-one-speaker-out over the training speakers (mean UA), "
                    "then refitted on all of them")
        if config.get("speaker_subspace"):
            from keras_ser.training.frozen import subspace_ranks

            ranks = ", ".join(str(r) for r in subspace_ranks(config["speaker_subspace"]))
            training += (f"; before the regression, the speaker subspace (principal directions of the training "
                         f"speakers' class-balanced mean features) is projected out, its rank from {{{ranks}}} "
                         "chosen together with C in the same inner leave-one-speaker-out")
    else:
        validation = ("early stopping on the next training speaker "
                      f"({config['monitor']}, patience {config['patience']}, best epoch restored)"
                      if config["validation"] == "next" else "no validation speaker, last epoch kept")
        training = (f"softmax head trained on the features extracted once, Adam lr {config['learning_rate']:g} up to "
                    f"{config['epochs']} epochs, batch {config['batch_size']}, {validation}")
    return f"{encoder}; {pooling}; {training}; seed {config['seed']}."


def _seconds_per_fold(run):
    times = [f["wall_time_s"] for f in run.folds.values() if f.get("wall_time_s")]
    return f"{sum(times) / len(times):.0f}" if times else ""


def _epochs(run):
    fits = {"probe", "svm"}  # one fit each (the probe, the openSMILE baselines' SVM): not epochs
    values = [sum(v for k, v in f["epochs"].items() if k not in fits)
              for f in run.folds.values() if isinstance(f.get("epochs"), dict) and not set(f["epochs"]) <= fits]
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


def recall_markdown(rows, runs, all_speakers):
    """One row per system that has results, one column per class: recall in %, pooled over its folds."""
    shown = [(row, runs.get(row.name)) for row in rows if runs.get(row.name) is not None and runs[row.name].folds]
    if not shown:
        return []
    classes = []
    for _, run in shown:
        classes += [name for name in run.class_names if name not in classes]
    lines = ["| system | folds | " + " | ".join(classes) + " | UA |", "|---|---|" + "---:|" * (len(classes) + 1)]
    for row, run in shown:
        recall = per_class_recall(run)
        cells = [_pct(recall[name][0]) if recall.get(name, (None,))[0] is not None else "-" for name in classes]
        lines.append(f"| {row.label} | {folds_label(run, all_speakers)} | " + " | ".join(cells)
                     + f" | {_pct(pooled(run)[1])} |")
    return lines


TITLES = {
    "II": "Table II: CNN+SRU for N = 1..5 segments, and the ensemble over N",
    "III": "Table III: CNN alone, SRU alone, CNN+SRU",
    "V": "Table V: openSMILE functionals + SVM against CNN+SRU",
    "levers": "Levers: each one on vs off, same folds",
    "imagenet": "ImageNet features for spectrograms: EfficientNet-Lite0 ImageNet vs random init vs AlexNet",
    "speech": "Pretrained speech encoder (GE2E, offline weights)",
    "IV": "Table IV style: paired t-tests between the main configurations",
}


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


def _probe_grid(run):
    """The C values the probe of `run` tried (union over its folds), or None when it recorded none."""
    grid = sorted({c for f in run.folds.values() for c in f.get("probe_grid") or ()})
    return grid or None


def _probe_choices(run):
    """` C chosen per fold: 1 (6 folds), 0.3 (4 folds).` for probe runs, '' otherwise."""
    chosen = [f["probe_c"] for f in run.folds.values() if f.get("probe_c") is not None]
    if not chosen:
        return ""
    counts = {c: chosen.count(c) for c in sorted(set(chosen), reverse=True)}
    text = " C chosen per fold: " + ", ".join(f"{c:g} ({n} fold{'s' if n > 1 else ''})"
                                              for c, n in counts.items()) + "."
    ranks = [f["probe_rank"] for f in run.folds.values() if f.get("probe_rank") is not None]
    if ranks:
        counts = {r: ranks.count(r) for r in sorted(set(ranks))}
        text += " Speaker-subspace rank chosen per fold: " + ", ".join(
            f"{r} ({n} fold{'s' if n > 1 else ''})" for r, n in counts.items()) + "."
    return text


def block_markdown(table, preset, run_root, runs, all_speakers, baselines_dir=DEFAULT_BASELINES):
    """The generated Markdown of one table (between the markers in docs/results.md)."""
    from keras_ser import zoo

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
                 "imagenet": "effnet_random_frozen", "speech": "encoder_stats_probe"}[table]
    table_lines, missing = table_markdown(table, rows, runs, all_speakers, reference=reference)
    lines += table_lines
    lines += ["", "WA = accuracy, UA = mean per-class recall, in %; *pooled* over every test utterance of the "
                  "folds run; mean ± std over those folds (ddof=1). Δ vs ref: pooled difference on the folds both "
                  "rows ran; p: paired t-test over those folds' per-fold WA / UA. Epochs: mean epochs run per fold "
                  "(all stages). s / fold: mean wall time of a fold.", ""]
    if table == "speech":
        ref_run = runs.get(reference)
        if ref_run is not None and ref_run.folds:
            ua = pooled(ref_run)[1]
            lines += [f"Goal: UA >= {GOAL_UA} (the paper's CNN+SRU, ImageNet AlexNet) without statistics of the test "
                      f"speaker. The reference reaches UA {_pct(ua)} pooled over {len(ref_run.speakers)} "
                      f"fold{'s' if len(ref_run.speakers) > 1 else ''}: "
                      f"{'at or above' if 100 * ua >= GOAL_UA else 'below'} the goal on those folds. "
                      "The probe has no epochs (its C is chosen per fold, below). The first fold of an encoder row "
                      "also extracts the encoder features of the whole corpus (once), which weighs on the mean "
                      "s / fold of those rows.", ""]
        names = {row.name: row.name for row in rows}
        names[os.path.join(baselines_dir, "emodb-is10-train")] = "IS10+SVM"
        lines += ["Paired t-tests (B - A; A = each other system, B = the reference probe on raw audio; then the "
                  "two variants against the reference):", ""]
        lines += table_iv_markdown(runs, speech_pairs(baselines_dir), names)
        recall = recall_markdown(rows, runs, all_speakers)
        if recall:
            lines += ["", "Per-class recall in %, pooled over the test utterances of the folds each system ran "
                          "(UA is their mean):", ""] + recall
        lines += [""]
    protocols = []
    for row in rows:
        run = runs.get(row.name)
        if run is None or not run.folds:
            continue
        if row.features:
            protocols.append(f"- `{row.name}` (feature config `{json.dumps(row.features, sort_keys=True)}`): "
                             + protocol_text(run.config, run.feature_config, _probe_grid(run)) + _probe_choices(run))
        elif row.kind == "train" and run.config and run.config.get("model") in zoo.ENCODER_MODELS:
            protocols.append(f"- `{row.name}` (feature config: defaults): "
                             + protocol_text(run.config, run.feature_config, _probe_grid(run)) + _probe_choices(run))
        elif row.kind == "ensemble":
            protocols.append(f"- `{row.name}`: mean of the per-utterance probabilities of "
                             + ", ".join(f"`{m}`" for m in row.members) + " on the folds all of them finished.")
        elif row.kind == "baseline":
            protocols.append(f"- `{_run_key(row.name)}`: {_baseline_protocol(row, run)}")
        else:
            protocols.append(f"- `{row.name}`: {protocol_text(run.config)}")
    if protocols:
        lines += ["Protocols:", ""] + protocols
    commands = sorted({public_command(run.command) for row in rows for run in [runs.get(row.name)]
                       if run is not None and run.folds and run.command and row.kind in ("train", "baseline")})
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
            lines.append(f"| {item['started']} | `{public_command(item['command'])}` | {item['folds_trained']} | "
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


def _table_rows_of(body):
    """`{key: line}` of the data rows of every Markdown table in `body` (key: the first cell, or the first two
    where the table's header starts with `A | B`, as Table IV's pairs)."""
    rows, header = {}, None
    for line in body.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif not line.startswith("|---"):
            key = tuple(cells[:2]) if header[:2] == ["A", "B"] else (cells[0],)
            rows[(tuple(header[:2]),) + key] = line
    return rows


def _rows_with_results(body):
    return {key for key, line in _table_rows_of(body).items() if "not run" not in line and "< 2" not in line}


def update_results_md(path, blocks, protect=True, log=None):
    """Replaces (or appends) the generated blocks `{key: markdown}` of `path`, keeping everything else.

    With `protect`, a block that exists is kept as it is when the new one would show a row that has results
    in it without them (a checkout without that row's run folders); `log` says so.
    """
    text = open(path).read() if os.path.isfile(path) else TEMPLATE
    for key, body in blocks.items():
        begin, end = BEGIN.format(key=key), END.format(key=key)
        block = f"{begin}\n{body.rstrip()}\n{end}"
        if begin in text and end in text:
            start = text.index(begin)
            stop = text.index(end, start) + len(end)
            if protect:
                lost = _rows_with_results(text[start + len(begin):stop - len(end)]) - _rows_with_results(body)
                if lost:
                    if log:
                        log(f"kept the block '{key}' of {path} as it was: its rows "
                            + ", ".join(repr(" | ".join(k[1:])) for k in sorted(lost))
                            + " have results there but no run folder here (--overwrite_blocks rewrites it)")
                    continue
            text = text[:start] + block + text[stop:]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = f"{path}.tmp{os.getpid()}"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return text


def _merge_invocations(old_body, new_body):
    """The invocation table of `new_body` with the rows of `old_body` it lacks, in order of start time."""
    def data_lines(body):
        return [line for line in body.splitlines()
                if line.startswith("|") and not line.startswith(("|---", "| started (UTC) |"))]

    new = data_lines(new_body)
    lines = new + [line for line in data_lines(old_body) if line not in new]
    if len(lines) == len(new):
        return new_body
    lines.sort(key=lambda line: line.strip("|").split("|")[0].strip())
    head = [line for line in new_body.splitlines() if line.startswith("|")][:2]
    prefix = new_body[:new_body.index(head[0])]
    return prefix + "\n".join(head + lines) + "\n"


def _existing_block(path, key):
    if not os.path.isfile(path):
        return None
    text = open(path).read()
    begin, end = BEGIN.format(key=key), END.format(key=key)
    if begin not in text or end not in text:
        return None
    start = text.index(begin) + len(begin)
    return text[start:text.index(end, start)]


def write_results(path, tables, preset, run_root, all_speakers, baselines_dir=DEFAULT_BASELINES, json_path=None,
                  log=None, protect=True):
    """Refreshes the blocks of `tables` (and the invocation log) of one run root in `path`, and the
    leaderboard `json_path` (default: `path` with `.json`) from every run folder of the run root."""
    json_path = json_path or os.path.splitext(path)[0] + ".json"
    previous = load_results_json(json_path)
    if previous is None:  # first refresh: seed the leaderboard from the blocks as they stand
        previous = entries_from_results_md(open(path).read()) if os.path.isfile(path) else []
    runs = load_runs(run_root, baselines_dir, preset)
    tag = os.path.basename(os.path.normpath(run_root))
    blocks = {f"table={table} runs={tag}": block_markdown(table, preset, run_root, runs, all_speakers, baselines_dir)
              for table in tables}
    log_md = invocations_markdown(run_root)
    if log_md:
        key = f"invocations runs={tag}"
        body = f"### Commands that ran (run folders `{os.path.relpath(run_root, ROOT)}/`)\n\n" + log_md
        old = _existing_block(path, key)
        blocks[key] = _merge_invocations(old, body) if old else body
    text = update_results_md(path, blocks, protect=protect, log=log)
    entries = merge_entries(previous, system_entries(preset, run_root, runs, all_speakers, baselines_dir))
    write_results_json(json_path, entries)
    return text


# ---------------------------------------------------------------------------------------------------------------------
# The leaderboard: docs/results.json

REQUIRED_KEYS = ("system", "table", "run", "corpus", "folds", "ua_pooled", "wa_pooled", "per_fold",
                 "uses_test_speaker_audio", "command", "machine", "protocol")


def _run_key(path):
    """A run folder as the leaderboard names it: relative to the repository when inside it."""
    path = os.path.abspath(path)
    inside = os.path.commonpath([path, ROOT]) == ROOT
    return os.path.relpath(path, ROOT) if inside else path


def public_command(command):
    """A command as the leaderboard shows it: the EMO-DB folder of the machine it ran on is a placeholder."""
    if not command:
        return command
    command = re.sub(r"--data_dir(=|\s+)\S+", r"--data_dir\1<EMO-DB wav folder>", command)
    return re.sub(r"--results(=|\s+)\S+", r"--results\1<scratch file>", command)  # where a run wrote its table


def table_command(table, preset, folds=None, all_speakers=None):
    """The reproduce.py command that trains (resumably) and reports a row of `table` on `folds`."""
    command = f"python experiments/reproduce.py --table={table}" + (f" --preset={preset}" if preset != "cpu" else "")
    if folds and (not all_speakers or sorted(folds) != sorted(all_speakers)):
        command += " --folds=" + ",".join(folds)
    return command


def baseline_command(run_name):
    """The experiments/baselines.py command of one baselines run folder (`emodb-<set>-<normalisation>`)."""
    _, feature_set, normalization = os.path.basename(run_name).split("-")
    feature_set = {name.lower(): name for name, _ in BASELINES}.get(feature_set, feature_set.upper())
    return (f"python experiments/baselines.py --data_dir=<EMO-DB wav folder> --feature_set={feature_set} "
            f"--normalization={normalization} --run_dir={_run_key(os.path.dirname(run_name))}")


def _round(value):
    return None if value is None else round(100 * value, 2)


def _system_name(row, preset):
    label = row.label.replace(" (ref)", "")
    return label if row.kind == "baseline" or row.standalone else f"{label} (preset {preset})"


def _baseline_protocol(row, run):
    """`<label>: <the run's protocol> C chosen per fold: ...` of an openSMILE baseline row; docs/baselines.md."""
    return f"{row.label}: {run.protocol or 'protocol not recorded.'}{_probe_choices(run)} See docs/baselines.md."


def system_entries(preset, run_root, runs, all_speakers=None, baselines_dir=DEFAULT_BASELINES):
    """Leaderboard entries of every row of every table whose run folder has finished folds (one per run folder;
    `tables` lists every table that shows it)."""
    entries = {}
    for table in TABLES:
        if table == "IV":
            continue
        for row in table_rows(table, preset, baselines_dir):
            run = runs.get(row.name)
            if run is None or not run.folds:
                continue
            path = row.name if row.kind == "baseline" else os.path.join(run_root, row.name)
            key = _run_key(path)
            if key in entries:
                entries[key]["tables"].append(table)
                continue
            wa, ua, n = pooled(run)
            wa_mean, wa_std = fold_stats(run, "wa")
            ua_mean, ua_std = fold_stats(run, "ua")
            times = [f["wall_time_s"] for f in run.folds.values() if f.get("wall_time_s")]
            if row.kind == "baseline":
                command, protocol = run.command or baseline_command(row.name), _baseline_protocol(row, run)
            elif row.kind == "ensemble":
                command = table_command(table, preset, run.speakers, all_speakers)
                protocol = ("mean of the per-utterance probabilities of "
                            + ", ".join(row.members) + " on the folds all of them finished")
            else:
                command = run.command or table_command(table, preset, run.speakers, all_speakers)
                protocol = protocol_text(run.config, run.feature_config, _probe_grid(run)) + _probe_choices(run)
                if row.features:
                    protocol = f"feature config {json.dumps(row.features, sort_keys=True)}; " + protocol
            recall = per_class_recall(run)
            entries[key] = {
                "system": _system_name(row, preset),
                "table": table,
                "tables": [table],
                "run": key,
                "corpus": run.corpus or "emodb",
                "preset": None if row.kind == "baseline" or row.standalone else preset,
                "folds": run.speakers,
                "n_utterances": n,
                "wa_pooled": _round(wa),
                "ua_pooled": _round(ua),
                "wa_mean": _round(wa_mean), "wa_std": _round(wa_std),
                "ua_mean": _round(ua_mean), "ua_std": _round(ua_std),
                "per_fold": [{"speaker": s, "wa": _round(run.folds[s]["wa"]), "ua": _round(run.folds[s]["ua"])}
                             for s in run.speakers],
                "per_class_recall": {name: _round(value) for name, (value, _) in recall.items()},
                "s_per_fold": round(sum(times) / len(times), 1) if times else None,
                "paper": {"wa": row.paper[0], "ua": row.paper[1]} if row.paper else None,
                "uses_test_speaker_audio": bool(row.uses_test_audio or run.uses_test_audio),
                "command": public_command(command),
                "machine": machine_label(run.versions),
                "protocol": protocol,
                "source": "run folder",
            }
    return list(entries.values())


def _number(cell):
    cell = cell.replace("*", "").strip()
    try:
        return float(cell)
    except ValueError:
        return None


def _mean_std(cell):
    parts = [part.strip() for part in cell.split("±")]
    return (_number(parts[0]), _number(parts[1])) if len(parts) == 2 else (None, None)


def entries_from_results_md(text, baselines_dir=DEFAULT_BASELINES, speakers=EMODB_SPEAKERS):
    """Leaderboard entries read from the generated table blocks of a docs/results.md (figures as printed there).

    Per-fold figures are not in those blocks (`per_fold` is None); the command is the one the block lists
    for the row's table when there is one, else the table's reproduce.py command on the row's folds.
    """
    pattern = re.compile(r"<!-- reproduce:begin table=(\S+) runs=(\S+) -->\n(.*?)<!-- reproduce:end table=\1 "
                         r"runs=\2 -->", re.S)
    found = {}
    for table, _, body in pattern.findall(text):
        if table not in TABLES or table == "IV":
            continue
        heading = re.search(r"\(preset `([^`]+)`, run folders `([^`]+)`\)", body)
        if not heading:
            continue
        preset, run_root = heading.group(1), heading.group(2).rstrip("/")
        rows = {row.label: row for row in table_rows(table, preset, baselines_dir)}
        protocols = dict(re.findall(r"^- `([^`]+)`(?: \([^)]*\))?: (.*)$", body, re.M))
        commands = re.findall(r"^- `(python [^`]+)`$", body, re.M)
        for line in _table_rows_of(body).values():
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            label = cells[0].replace(" **[uses test-speaker audio]**", "").removesuffix(" (ref)")
            row = rows.get(label)
            if row is None or len(cells) < 12 or cells[1] == "not run" or row.kind not in ("train", "ensemble",
                                                                                          "baseline"):
                continue
            folds_cell = cells[1]
            if folds_cell.startswith("all "):
                folds = list(speakers) if int(folds_cell[4:]) == len(speakers) else None
            else:
                folds = folds_cell.split(":", 1)[1].strip().split(",")
            name = _run_key(row.name) if row.kind == "baseline" else row.name
            key = name if row.kind == "baseline" else os.path.normpath(os.path.join(run_root, row.name))
            wa_mean, wa_std = _mean_std(cells[4])
            ua_mean, ua_std = _mean_std(cells[5])
            entry = found.setdefault(key, {
                "system": _system_name(row, preset), "table": table, "tables": [], "run": key, "corpus": "emodb",
                "preset": None if row.kind == "baseline" or row.standalone else preset, "folds": folds,
                "n_utterances": None, "wa_pooled": _number(cells[2]), "ua_pooled": _number(cells[3]),
                "wa_mean": wa_mean, "wa_std": wa_std, "ua_mean": ua_mean, "ua_std": ua_std, "per_fold": None,
                "per_class_recall": None, "s_per_fold": _number(cells[10]),
                "paper": {"wa": row.paper[0], "ua": row.paper[1]} if row.paper else None,
                "uses_test_speaker_audio": bool(row.uses_test_audio or "[uses test-speaker audio]" in cells[0]),
                "command": None, "machine": cells[11], "protocol": None, "source": "docs/results.md",
                "_candidates": None})
            entry["tables"].append(table)
            if row.kind == "baseline":
                entry["command"] = baseline_command(row.name)
                entry["protocol"] = protocols.get(name, f"{row.label}; protocol and command in docs/baselines.md")
                continue
            if entry["protocol"] is None and name in protocols:
                entry["protocol"] = protocols[name].replace("`", "")
            # Commands of this block for a table that shows the row; the row's command is the one every block agrees on.
            showing = {t for t in TABLES if t != "IV" and any(r.name == row.name for r in table_rows(t, preset))}
            mine = {c for c in commands if (re.search(r"--table[= ](\S+)", c) or [None, None])[1] in showing}
            entry["_candidates"] = mine if entry["_candidates"] is None else entry["_candidates"] & mine
    entries = []
    for entry in found.values():
        candidates = entry.pop("_candidates")
        if entry["command"] is None:
            entry["command"] = (sorted(candidates)[0] if candidates and len(candidates) == 1 else
                                table_command(entry["table"], entry["preset"] or "cpu", entry["folds"], speakers))
            entry["command"] = public_command(entry["command"])
        entries.append(entry)
    return entries


def load_results_json(path):
    """The leaderboard entries of `path`, or None when there is no such file."""
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def merge_entries(old, new):
    """`old` with every entry whose `run` is in `new` replaced by the new one, then the new runs."""
    fresh = {entry["run"]: entry for entry in new}
    merged = [fresh.pop(entry["run"], entry) for entry in old]
    return merged + [entry for entry in new if entry["run"] in fresh]


def write_results_json(path, entries):
    tmp = f"{path}.tmp{os.getpid()}"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(tmp, "w") as handle:
        json.dump(entries, handle, indent=1, ensure_ascii=False)
        handle.write("\n")
    os.replace(tmp, path)


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
                        help="Epochs of every row (end_to_end, frozen: epochs; paper recipe: stage2_epochs). "
                             "Changes the run folder (e.g. runs/reproduce/cpu_epochs3).")
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
    parser.add_argument("--results", default=DEFAULT_RESULTS,
                        help="Markdown file to refresh ('' = none); the leaderboard goes next to it (.json).")
    parser.add_argument("--rows", default=None,
                        help="Train (and ensemble) only these rows of the tables, comma-separated run folder names "
                             "(e.g. cnn_sru_n3); the report still shows every row.")
    parser.add_argument("--report_only", action="store_true",
                        help="Train nothing; refresh the tables (and the results.json next to them) only.")
    parser.add_argument("--overwrite_blocks", action="store_true",
                        help="Rewrite the tables' blocks even where a row with results would become 'not run' "
                             "(by default such a block is kept: its run folders may just be missing here).")
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
    args.rows = [s.strip() for s in args.rows.split(",") if s.strip()] if args.rows else None
    if args.rows:
        tables = list(TABLES) if args.table == "all" else [args.table]
        known = row_names(tables, args.preset, args.baselines_dir)
        unknown = [name for name in args.rows if name not in known]
        if unknown:
            parser.error(f"--rows names rows that --table={args.table} does not have: {unknown}; "
                         f"it has {sorted(set(known))}")
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


@dataclasses.dataclass
class Train:
    """One training row of the grid: its run folder name, TrainConfig, feature-config override and row."""

    name: str
    config: object
    features: dict
    row: Row


def grid(tables, preset, global_overrides, baselines_dir=DEFAULT_BASELINES, only=None):
    """`[Train]` to train, in table order, without duplicates; and the ensembles to build.

    `only`: row names to keep (None: every row of the tables).
    """
    trains, ensembles, seen = [], [], set()
    for table in tables:
        for row in table_rows(table, preset, baselines_dir):
            if row.name in seen or (only is not None and row.name not in only):
                continue
            if row.kind == "train":
                seen.add(row.name)
                config = make_config(preset, row.overrides, global_overrides, standalone=row.standalone)
                trains.append(Train(row.name, config, row.features, row))
            elif row.kind == "ensemble":
                seen.add(row.name)
                ensembles.append(row)
    return trains, ensembles


def row_names(tables, preset, baselines_dir=DEFAULT_BASELINES):
    """Names of the training and ensemble rows of `tables`, and the folder names of their baseline rows (what
    --rows accepts)."""
    return [os.path.basename(row.name) if row.kind == "baseline" else row.name
            for table in tables for row in table_rows(table, preset, baselines_dir)]


def baselines_of(tables, preset, baselines_dir=DEFAULT_BASELINES, only=None):
    """The openSMILE baseline rows of `tables`, without duplicates (`only`: folder names to keep)."""
    rows, seen = [], set()
    for table in tables:
        for row in table_rows(table, preset, baselines_dir):
            if row.kind == "baseline" and row.name not in seen and (
                    only is None or os.path.basename(row.name) in only):
                seen.add(row.name)
                rows.append(row)
    return rows


def run_baseline(row, data_dir, folds=None):
    """Runs the missing folds of one openSMILE baseline row with experiments/baselines.py (same runner, same run
    folder as calling that script); returns the number of folds it computed."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("baselines_command", os.path.join(ROOT, "experiments",
                                                                                     "baselines.py"))
    command = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(command)
    feature_set, normalization = row.baseline
    argv = [f"--data_dir={data_dir}", f"--feature_set={feature_set}", f"--normalization={normalization}",
            f"--run_dir={os.path.dirname(row.name)}"] + ([f"--folds={','.join(folds)}"] if folds else [])
    before = len(glob.glob(os.path.join(row.name, "fold_*.json")))
    if command.main(argv) != 0:
        raise SystemExit(f"error: experiments/baselines.py {' '.join(argv)} failed")
    return len(glob.glob(os.path.join(row.name, "fold_*.json"))) - before


def load_corpus(args):
    """`(corpus, feature_config, fold_data)`: tf.data from WAV files, or numpy arrays from --features."""
    if args.features:
        from keras_ser.training import feature_file

        data = feature_file.load_feature_arrays(args.features)
        return data.corpus, data.feature_config, feature_file.fold_data_fn(data, workers=args.workers)
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

    trains, ensembles = grid(tables, args.preset, args.global_overrides, args.baselines_dir, only=args.rows)
    log(f"tables {', '.join(tables)}; preset {args.preset}; run root {args.run_root}; {len(trains)} training "
        f"row(s), {len(ensembles)} ensemble(s)")
    base = make_config(args.preset, {}, args.global_overrides).to_dict()
    log(f"  base: {json.dumps(base, sort_keys=True)}")
    for train in trains:
        if train.row.standalone:  # a TrainConfig of its own: its changes from TrainConfig's defaults
            from keras_ser.training.config import TrainConfig

            reference, prefix = {f.name: f.default for f in dataclasses.fields(TrainConfig)}, "own config, "
        else:
            reference, prefix = base, ""
        changed = {key: value for key, value in train.config.to_dict().items() if reference.get(key) != value}
        features = f", feature config {json.dumps(train.features, sort_keys=True)}" if train.features else ""
        log(f"  {train.name}: {prefix}{json.dumps(changed, sort_keys=True)}{features}")
    baselines = baselines_of(tables, args.preset, args.baselines_dir, only=args.rows)
    for row in baselines:
        log(f"  {os.path.basename(row.name)}: openSMILE {row.baseline[0]} + linear SVM, normalisation "
            f"{row.baseline[1]} (experiments/baselines.py, run folder {row.name})")
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
        if args.features:  # the .npz holds log-Mel images, not the Mel power frames the speech encoder reads
            skipped = [t.name for t in trains if t.config.uses_encoder]
            if skipped:
                log(f"skipped (the speech encoder reads the WAV files; run without --features): {', '.join(skipped)}")
            trains = [t for t in trains if not t.config.uses_encoder]
        if args.order == "config":
            schedule = [(t, s) for t in trains for s in speakers]
        else:
            schedule = [(t, s) for s in speakers for t in trains]
        last_fold_s, stopped = None, False

        def run_log(text):
            if "\n" not in text and not text.startswith("confusion.png not written"):
                log(text)

        for train, speaker in schedule:
            name, config = train.name, train.config
            run_dir = os.path.join(args.run_root, name)
            if os.path.exists(loso.fold_path(run_dir, speaker)):
                continue
            if args.max_folds is not None and trained >= args.max_folds:
                log(f"--max_folds={args.max_folds} reached; stopping (rerun to resume)")
                stopped = True
                break
            elapsed = time.time() - start
            if args.budget_s is not None and last_fold_s is not None and elapsed + last_fold_s > args.budget_s:
                log(f"budget: {elapsed:.0f} s used, next fold expected to take {last_fold_s:.0f} s of "
                    f"{args.budget_s:.0f} s; stopping (rerun to resume)")
                stopped = True
                break
            log(f"{name}: fold {speaker}")
            fold_start = time.time()
            loso.run_loso(corpus, config, run_dir, speakers=[speaker],
                          feature_config=train.features if train.features is not None else feature_config,
                          data_dir=None if args.features else args.data_dir, verbose=args.verbose, command=command,
                          log=run_log, fold_data=fold_data, tensorboard=args.tensorboard and not args.features)
            last_fold_s = time.time() - fold_start
            trained += 1
            keras.backend.clear_session()

        # The openSMILE baseline rows: openSMILE reads the WAV files, so not with --features.
        for row in baselines if not stopped else []:
            if args.features:
                log(f"skipped {os.path.basename(row.name)} (openSMILE reads the WAV files; run without --features)")
                continue
            try:
                trained += run_baseline(row, args.data_dir, args.folds)
            except ImportError as error:  # the baselines extra is not installed
                log(f"skipped {os.path.basename(row.name)}: {error}")

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
        write_results(args.results, tables, args.preset, args.run_root, all_speakers, args.baselines_dir, log=log,
                      protect=not args.overwrite_blocks)
        log(f"refreshed {args.results} and {os.path.splitext(args.results)[0]}.json")
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
