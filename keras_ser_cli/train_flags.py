"""Flags that define a model and how it is trained (a `TrainConfig`)."""

import json

from keras_ser_cli.usage import UsageError


def define(flag_values):
    from absl import flags

    from keras_ser.models import registry
    from keras_ser.training.config import INNER_FOLDS, RECIPES, STRATEGIES, VALIDATION, TrainConfig

    d = TrainConfig()
    F = dict(flag_values=flag_values)
    models = registry.tasks()
    flags.DEFINE_enum("model", d.model, list(models), "Zoo model (keras_ser.list_models()): " + "; ".join(
        f"{name} ({task.DESCRIPTION.rstrip('.')}; --recipe={' or '.join(task.RECIPES)})"
        for name, task in models.items()) + ".", **F)
    flags.DEFINE_integer("n_segments", d.n_segments, "Segments per utterance N for cnn_sru and encoder_sru (1..5).",
                         **F)
    flags.DEFINE_enum("recipe", d.recipe, list(RECIPES),
                      "end_to_end: one model.fit of the whole network (Adam). paper: stage 1 fine-tunes the CNN on "
                      "segments (SGD), stage 2 trains the SRU on FC7 features extracted once (Adam). probe "
                      "(encoder_stats): logistic regression on the frozen encoder's features, C chosen by "
                      "leave-one-speaker-out over the training speakers. frozen (encoder models): the head alone, "
                      "Adam, on features extracted once.", **F)
    flags.DEFINE_string("backbone", None, "Backbone: alexnet or efficientnet_lite0 for the CNN models, "
                        "speaker_encoder for encoder_stats and encoder_sru. Default: the model's own (" + ", ".join(
                            f"{name} {task.DEFAULT_BACKBONE}" for name, task in models.items()
                            if task.DEFAULT_BACKBONE and "backbone" in task.BUILD_OPTIONS) + ").", **F)
    flags.DEFINE_string("backbone_variant", None, "Backbone variant (AlexNet: caffe (default) or torchvision).", **F)
    flags.DEFINE_string("backbone_weights", None,
                        "Pretrained backbone weights: a bvlc_alexnet.npy or torchvision .pth path for AlexNet, "
                        "'imagenet' for efficientnet_lite0. Default: random initialisation for the CNNs; the "
                        "pretrained GE2E weights shipped with keras-ser for speaker_encoder ('random' for none).",
                        **F)
    flags.DEFINE_float("volume_dbfs", None, "Models whose front end raises the volume (" + ", ".join(
        name for name, task in models.items() if hasattr(task.PREPROCESSOR.CONFIG_CLASS, "with_volume"))
        + "): raise each utterance to this RMS level in dBFS before the features (e.g. -30, as the GE2E encoder's "
        "original package does). Default: raw audio.", **F)
    flags.DEFINE_enum("front_end", "none", ["none", "speech"],
                      "Speech front end, in the model's graph: speech trims the leading and trailing silence "
                      "(quieter than --trim_db below the loudest frame) and scales the rest to --level_dbfs RMS "
                      "before the features, in training, prediction and serving alike; none reads the waveform "
                      "as it is.", **F)
    flags.DEFINE_float("trim_db", None, "With --front_end=speech: silence threshold below the loudest 50 ms frame, "
                       "in dB (default 30; 0 = no trimming).", **F)
    flags.DEFINE_float("level_dbfs", None, "With --front_end=speech: RMS level in dBFS each trimmed utterance is "
                       "scaled to, up or down (default -18; 0 = level unchanged).", **F)
    flags.DEFINE_string("backbone_kwargs", None,
                        'JSON dict of more backbone arguments, e.g. \'{"filters": [16, 32, 48, 48, 32], '
                        '"fc_units": 256}\' for a small AlexNet.', **F)
    flags.DEFINE_integer("sru_units", None, "SRU width (default: the model's own; 4096, the paper's, and 256 for "
                         "encoder_sru).", **F)
    flags.DEFINE_float("dropout", d.dropout, "Dropout after FC6 and FC7 (the paper: 0.5).", **F)
    flags.DEFINE_integer("image_size", d.image_size, "Height and width of each segment image (the paper: 227).", **F)
    flags.DEFINE_integer("epochs", d.epochs, "end_to_end: maximum epochs.", **F)
    flags.DEFINE_float("learning_rate", d.learning_rate, "end_to_end: Adam learning rate.", **F)
    flags.DEFINE_integer("stage1_epochs", d.stage1_epochs, "paper: stage 1 maximum epochs (the paper: 400).", **F)
    flags.DEFINE_float("stage1_learning_rate", d.stage1_learning_rate, "paper: stage 1 SGD learning rate.", **F)
    flags.DEFINE_float("stage1_momentum", d.stage1_momentum, "paper: stage 1 SGD momentum.", **F)
    flags.DEFINE_integer("stage2_epochs", d.stage2_epochs, "paper: stage 2 maximum epochs (the paper: 100).", **F)
    flags.DEFINE_float("stage2_learning_rate", d.stage2_learning_rate, "paper: stage 2 Adam learning rate.", **F)
    flags.DEFINE_float("stage2_dropout", d.stage2_dropout, "paper: dropout on the segment features the SRU reads in "
                       "stage 2 (0 = off; the regulariser of a frozen backbone's head).", **F)
    flags.DEFINE_integer("batch_size", d.batch_size, "Batch size (the paper: 30).", **F)
    flags.DEFINE_enum("validation", d.validation, list(VALIDATION),
                      "none: train the full epochs, keep the last. next: hold out the next training speaker for "
                      "early stopping and best-epoch choice (never the test speaker).", **F)
    flags.DEFINE_integer("patience", d.patience, "Early-stopping patience in epochs (with --validation=next).", **F)
    flags.DEFINE_enum("monitor", d.monitor, ["val_loss", "val_ua"], "What early stopping watches.", **F)
    flags.DEFINE_integer("seed", d.seed, "Random seed (weights, shuffling, dropout).", **F)
    flags.DEFINE_enum("mixed_precision", None, ["mixed_float16", "mixed_bfloat16"],
                      "Mixed-precision policy (default: float32).", **F)
    flags.DEFINE_enum("strategy", d.strategy, list(STRATEGIES),
                      "tf.distribute strategy: default (one device), mirrored (all local GPUs), multi_worker "
                      "(MultiWorkerMirroredStrategy; each worker reads TF_CONFIG).", **F)
    # Levers: all off by default.
    flags.DEFINE_integer("time_masks", d.time_masks, "SpecAugment: time masks per training utterance (0 = off).",
                         lower_bound=0, **F)
    flags.DEFINE_integer("time_width", d.time_width, "SpecAugment: maximum frames per time mask.", lower_bound=0, **F)
    flags.DEFINE_integer("freq_masks", d.freq_masks, "SpecAugment: frequency masks per training utterance (0 = off).",
                         lower_bound=0, **F)
    flags.DEFINE_integer("freq_width", d.freq_width, "SpecAugment: maximum Mel bands per frequency mask.",
                         lower_bound=0, **F)
    flags.DEFINE_float("jitter", d.jitter, "Segment jitter: trim up to this share of frames at each end of a "
                       "training utterance, moving the segment boundaries (0 = off; < 0.5).", **F)
    flags.DEFINE_float("mixup_alpha", d.mixup_alpha, "Mixup of training batches, Beta(a, a) weights (0 = off).", **F)
    flags.DEFINE_float("label_smoothing", d.label_smoothing, "Label smoothing of the cross-entropy (0 = off).", **F)
    flags.DEFINE_boolean("speaker_norm", d.speaker_norm,
                         "Per-speaker normalisation: standardise every speaker with its own statistics, the test "
                         "speaker's from its UNLABELLED TEST AUDIO. Off by default; named in every report.", **F)
    flags.DEFINE_enum("inner_folds", d.inner_folds, list(INNER_FOLDS),
                      "--recipe=probe: the inner folds on which C is chosen. auto: leave one training speaker out "
                      "(one training corpus under --protocol=loco); speakers: leave one training speaker out, also "
                      "under --protocol=loco; speaker_groups: five groups of whole training speakers (dealt "
                      "round-robin, so each group mixes the corpora), one left out at a time: five inner folds "
                      "instead of one per speaker.", **F)
    flags.DEFINE_integer("speaker_subspace", d.speaker_subspace,
                         "encoder_stats / sfx_stats / fusion_stats with --recipe=probe: largest rank of the speaker "
                         "subspace projected out before the softmax (directions in which the TRAINING speakers' mean "
                         "features differ); the probe chooses the rank (0, 2, ... up to this) with C by its inner folds "
                         "(training speakers; training corpora under --protocol=loco). "
                         "Uses no test-speaker audio. 0 = off.", lower_bound=0, **F)
    flags.DEFINE_integer("fine_tune", d.fine_tune,
                         "encoder_stats with --recipe=probe: after the regression, train this many top LSTM layers "
                         "of the speech encoder with the head, from the regression's weights (Adam at "
                         "--learning_rate for --epochs; last epoch kept). 0 = off: the encoder stays frozen.",
                         lower_bound=0, **F)
    flags.DEFINE_list("channel_copies", list(d.channel_copies),
                      "--recipe=probe or frozen: also train the head on copies of every training utterance heard "
                      "through another channel, comma-separated kinds: eq (a random equaliser, +-6 dB at the "
                      "octaves 125 Hz-4 kHz), reverb (a synthetic room, RT60 0.2-0.7 s), noise (background noise "
                      "10-30 dB below the speech, white to brown). The copies' features are extracted once and "
                      "cached like the utterances'; they are never scored. Default: none.", **F)
    flags.DEFINE_integer("channel_draws", d.channel_draws,
                         "With --channel_copies: random draws of each kind per training utterance.", lower_bound=1,
                         **F)


def define_feature_cache(flag_values):
    """`--feature_cache`, the folder of the frozen-feature recipes' feature stores (`keras-ser loso` and `train`)."""
    from absl import flags

    flags.DEFINE_string("feature_cache", None,
                        "Speech-encoder models: folder of the frozen encoders' feature stores. Every file's pooled "
                        "features (and those of its --channel_copies) are kept there once extracted (per model and "
                        "front end), keyed by each file's bytes, so later runs, other corpus combinations, an "
                        "interrupted extraction and a corpus copied again in place reuse them. Default: none "
                        "(features kept for this run only).", flag_values=flag_values)


def config_from(flag_values):
    """The `TrainConfig` the flags describe; bad values are a UsageError."""
    from keras_ser.training.config import TrainConfig

    backbone_kwargs = None
    if flag_values.backbone_kwargs:
        try:
            backbone_kwargs = json.loads(flag_values.backbone_kwargs)
        except json.JSONDecodeError as error:
            raise UsageError(f"--backbone_kwargs is not valid JSON ({error}): {flag_values.backbone_kwargs!r}")
        if not isinstance(backbone_kwargs, dict):
            raise UsageError(f"--backbone_kwargs must be a JSON object. Received: {flag_values.backbone_kwargs!r}")
    names = [name for name in TrainConfig.__dataclass_fields__ if name != "backbone_kwargs" and name in flag_values]
    values = {name: flag_values[name].value for name in names}
    from keras_ser.models import registry
    from tf_pipeline.config import check_n_segments

    try:
        segmented = registry.get(values["model"]).SEGMENTED
    except ValueError as error:
        raise UsageError(str(error)) from None
    if segmented == "n":
        try:
            check_n_segments(values["n_segments"], "--n_segments")
        except ValueError as error:
            raise UsageError(str(error)) from None
    if segmented == 1:
        values["n_segments"] = 1
    try:
        return TrainConfig(backbone_kwargs=backbone_kwargs, **values)
    except ValueError as error:
        raise UsageError(str(error)) from None


def front_end_from(flag_values):
    """The `FrontEndConfig` the --front_end, --trim_db and --level_dbfs flags ask for, or None."""
    from tf_pipeline.config import FrontEndConfig

    trim_db, level_dbfs = flag_values.trim_db, flag_values.level_dbfs
    if flag_values.front_end == "none":
        if trim_db is not None or level_dbfs is not None:
            raise UsageError("--trim_db and --level_dbfs set the speech front end; add --front_end=speech")
        return None
    defaults = FrontEndConfig()
    try:
        return FrontEndConfig(
            trim_db=defaults.trim_db if trim_db is None else (trim_db or None),
            level_dbfs=defaults.level_dbfs if level_dbfs is None else (level_dbfs or None))
    except ValueError as error:
        raise UsageError(str(error)) from None


def feature_config_from(flag_values, config):
    """The feature config dict the flags ask for, or None for the model's defaults."""
    from keras_ser.models import registry

    front_end = front_end_from(flag_values)
    config_class = config.task.PREPROCESSOR.CONFIG_CLASS
    if flag_values.volume_dbfs is None:
        if front_end is None:
            return None
        return config_class(front_end=front_end).to_dict()
    if not hasattr(config_class, "with_volume"):
        takes = registry.names(lambda task: hasattr(task.PREPROCESSOR.CONFIG_CLASS, "with_volume"))
        raise UsageError(f"--volume_dbfs applies to the models whose front end raises the volume ({', '.join(takes)}). "
                         f"Received: --model={config.model}")
    try:
        return config_class.with_volume(flag_values.volume_dbfs, front_end=front_end).to_dict()
    except ValueError as error:
        raise UsageError(str(error)) from None
