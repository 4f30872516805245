"""The grids as data: the paper's figures, the presets, the levers, the rows of every table, their TrainConfigs.

Nothing here trains or reads a run folder. A table is a list of `Row`s: a
training run (a `TrainConfig`: the preset's base with the row's overrides, or
a configuration of its own), an ensemble of training runs, or an openSMILE
baseline run folder of experiments/baselines.py.

>>> [row.name for row in table_rows("III", "cpu")]
['cnn_sru_n3', 'cnn', 'sru']
>>> run_root_name("cpu", {"epochs": 2})
'cpu_epochs2'
"""

import dataclasses
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Jiang, Fu & Tao (2019), EMO-DB, leave-one-speaker-out, WA / UA in %.
PAPER_TABLE_II = {1: (78.9, 76.1), 2: (78.2, 76.3), 3: (82.5, 80.6), 4: (77.5, 77.5), 5: (76.8, 73.3)}
PAPER_TABLE_III = {"cnn": (72.1, 70.1), "sru": (64.2, 61.5), "cnn_sru": (82.5, 80.6)}
PAPER_TABLE_V = {"IS09": (75.5, 74.0), "IS10": (78.1, 76.7)}
GOAL_UA = 80.6  # the paper's CNN+SRU: the goal without any statistic of the test speaker

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
