"""Training configuration: model, recipe and optimisation settings as data.

What a model needs of its training configuration (the recipes that train
it, its default backbone and SRU width, the fields its `build_model` call
takes) is read from its class in the model registry
(`keras_ser.models.registry`), not listed here.
"""

import dataclasses
import json

from keras_ser.training.channel_copies import check_kinds
from keras_ser.training.channel_copies import describe as describe_copies
from tf_pipeline.config import check_n_segments

RECIPES = ("end_to_end", "paper", "probe", "frozen")
# The recipes that train a head on features extracted once from frozen encoders (`keras_ser.training.frozen`).
ENCODER_RECIPES = ("probe", "frozen")
# The SRU width a TrainConfig names for a model that has no default of its own (the paper's).
PAPER_SRU_UNITS = 4096


def _registry():
    # Imported on use: the models import Keras, and this module stays light (the baselines import it).
    from keras_ser.models import registry

    return registry
VALIDATION = ("none", "next")
STRATEGIES = ("default", "mirrored", "multi_worker")
# The probe's inner folds (how C is chosen on the training part; keras_ser.training.loso.inner_groups).
INNER_FOLDS = ("auto", "speakers", "speaker_groups")
SPEAKER_GROUPS = 5  # inner_folds="speaker_groups": the number of groups of whole training speakers


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run, stored in every result file.

    Model fields go to `keras_ser.build_model`; recipe fields choose how it
    is trained. Defaults are the paper's where it gives them (batch 30;
    `paper` recipe: stage 1 SGD 1e-3 for 400 epochs, stage 2 Adam 1e-3 for
    100 epochs) and this project's reference calibration otherwise
    (`end_to_end`: Adam 1e-4, 30 epochs; docs/design.md, Reference
    calibration).

    Args:
        model: a registered model (`keras_ser.list_models()`).
        n_segments: segments per utterance (1..5) for the models that take
            N (`cnn_sru`, `encoder_sru`); `cnn` uses 1, the others none.
        backbone, backbone_variant, backbone_weights, backbone_kwargs,
            sru_units, dropout, image_size, speaker_subspace: passed to
            `build_model`, those the model's class lists in its
            `BUILD_OPTIONS` (`model_kwargs`). `backbone` and `sru_units`
            left None take the model's defaults (`DEFAULT_BACKBONE`,
            `DEFAULT_SRU_UNITS`, else 4096).
        recipe: one of the model's `RECIPES`: `"end_to_end"` (one
            `model.fit` of the whole network), `"paper"` (`cnn_sru`: stage 1
            fine-tunes the CNN on segments labelled with their utterance's
            emotion, stage 2 trains the SRU + softmax on the FC7 features
            extracted once), or, for the speech-encoder entries,
            `"probe"` (logistic regression on the frozen encoders' pooled
            features, its `C` chosen by leave-one-speaker-out over the
            training speakers; the statistics entries only,
            `validation="none"`) or `"frozen"` (the head trained with Adam
            on those features, `epochs` and `learning_rate`). See
            `keras_ser.training.frozen`.
        epochs, learning_rate: the `end_to_end` recipe (Adam).
        stage1_epochs, stage1_learning_rate, stage1_momentum: stage 1 (SGD).
            `stage1_epochs=0` skips stage 1: the backbone stays frozen as
            built (e.g. ImageNet weights, or random weights as a control)
            and only the SRU + softmax are trained on its features.
        stage2_epochs, stage2_learning_rate: stage 2 (Adam).
        stage2_dropout: dropout on the segment features the SRU reads in
            stage 2 (training only; 0 = off). The backbone's own `dropout`
            acts only where the backbone trains, so with a frozen backbone
            (`stage1_epochs=0`) this is the only regulariser of stage 2.
        batch_size: utterances per batch (stage 1: segments per batch).
        validation: `"none"` (fixed epochs) or `"next"` (hold out the next
            training speaker; early stopping and best-epoch choice there).
        patience: epochs without improvement of `monitor` before stopping
            (with a validation speaker).
        monitor: `"val_loss"` or `"val_ua"`.
        seed: seeds weights, shuffling and dropout.
        mixed_precision: `None`, `"mixed_float16"` or `"mixed_bfloat16"`.
        strategy: `"default"`, `"mirrored"` or `"multi_worker"` (tf.distribute).
        time_masks, time_width, freq_masks, freq_width: SpecAugment-style
            masks on training images (`tf_pipeline.augment.spec_augment`);
            0 masks = off.
        jitter: random trimming of up to this share of frames at each end of
            training utterances, moving the segment boundaries; 0 = off.
        mixup_alpha: mixup of training batches with `Beta(a, a)`; 0 = off.
        label_smoothing: label smoothing of the cross-entropy; 0 = off.
        speaker_norm: standardise every speaker with its own statistics,
            the test speaker's computed from its unlabelled test audio. Off
            by default; every report that uses it says so.
        inner_folds: the `probe` recipe's inner folds, on which C (and a
            speaker-subspace rank) is chosen: `"auto"` (default) leaves
            one training speaker out, or under leave-one-corpus-out one
            training corpus; `"speakers"` always leaves one training
            speaker out (of every training corpus); `"speaker_groups"`
            deals the training speakers (sorted) round-robin into five
            groups and leaves one group out: five inner folds, each with
            speakers of every training corpus.
        speaker_subspace: the statistics entries (`encoder_stats`,
            `sfx_stats`, `fusion_stats`) with the `probe` recipe: the
            largest rank of the speaker-subspace projection (directions in
            which the training speakers' mean features differ, removed
            before the softmax); the probe chooses the rank among 0, 2, 4,
            ... up to it, with `C`, by the probe's inner folds (leaving out
            one training speaker, or one training corpus under
            leave-one-corpus-out). 0 = off. Uses no test-speaker audio.
        fine_tune: `encoder_stats` with the `probe` recipe: after the
            regression, train this many top LSTM layers of the speech
            encoder together with the head, starting from the regression's
            weights (linear probe, then fine-tuning), with Adam at
            `learning_rate` for `epochs` epochs of `batch_size` utterances,
            last epoch kept. 0 = off (the encoder stays frozen).
        channel_copies: the recipes on frozen encoders' features (`probe`,
            `frozen`): kinds of channel copies of the training utterances,
            a tuple of `"eq"` (a random equaliser), `"reverb"` (a
            synthetic room) and `"noise"` (background noise), or a
            comma-separated string
            (`keras_ser.training.channel_copies`). Each training utterance
            is also heard through `channel_draws` random channels of each
            kind, and those copies' features train the head beside it;
            they are never scored (the inner folds choose `C` on the
            utterances themselves). With `speaker_norm`, each speaker's
            copies of one kind and draw are standardised with their own
            statistics. `()` = off (default).
        channel_draws: draws of each kind of `channel_copies` per training
            utterance. Defaults to `1`.
        jit_compile: `jit_compile` of every `compile()` of the recipes:
            True, False or `"auto"` (Keras' choice: no XLA with TensorFlow
            on a CPU-only machine or under a tf.distribute strategy, XLA on
            a TensorFlow GPU; `jax.jit` on JAX, where False means no
            compilation at all). Defaults to `"auto"`, which on the CPUs
            measured (`benchmarks/jit_compile.py`, docs/performance.md) is
            no XLA, the faster choice there.
    """

    model: str = "cnn_sru"
    n_segments: int = 3
    backbone: str = None
    backbone_variant: str = None
    backbone_weights: str = None
    backbone_kwargs: dict = None
    sru_units: int = None
    dropout: float = 0.5
    image_size: int = 227
    recipe: str = "end_to_end"
    epochs: int = 30
    learning_rate: float = 1e-4
    stage1_epochs: int = 400
    stage1_learning_rate: float = 1e-3
    stage1_momentum: float = 0.9
    stage2_epochs: int = 100
    stage2_learning_rate: float = 1e-3
    stage2_dropout: float = 0.0
    batch_size: int = 30
    validation: str = "none"
    patience: int = 10
    monitor: str = "val_loss"
    seed: int = 0
    mixed_precision: str = None
    strategy: str = "default"
    time_masks: int = 0
    time_width: int = 20
    freq_masks: int = 0
    freq_width: int = 8
    jitter: float = 0.0
    mixup_alpha: float = 0.0
    label_smoothing: float = 0.0
    speaker_norm: bool = False
    jit_compile: object = "auto"
    speaker_subspace: int = 0
    inner_folds: str = "auto"
    fine_tune: int = 0
    channel_copies: tuple = ()
    channel_draws: int = 1

    def __post_init__(self):
        registry = _registry()
        task = registry.get(self.model)  # an unknown model is a ValueError that lists the registered ones
        # Per-model defaults, resolved here so that stored configs name them.
        if self.backbone is None:
            object.__setattr__(self, "backbone", task.DEFAULT_BACKBONE)
        if self.sru_units is None:
            object.__setattr__(self, "sru_units", task.DEFAULT_SRU_UNITS or PAPER_SRU_UNITS)
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {RECIPES}. Received: recipe={self.recipe!r}")
        if self.recipe not in task.RECIPES:
            trained = registry.names(lambda t: self.recipe in t.RECIPES)
            raise ValueError(f"The {self.recipe!r} recipe trains {', '.join(trained)}; the {self.model!r} model "
                             f"trains with a recipe in {task.RECIPES}. Received: model={self.model!r}, "
                             f"recipe={self.recipe!r}")
        if self.recipe == "probe" and self.validation != "none":
            raise ValueError(f"The 'probe' recipe fits {self.model} with validation='none' (its inner "
                             f"leave-one-speaker-out chooses C). Received: validation={self.validation!r}")
        value = self.speaker_subspace
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"speaker_subspace must be a non-negative integer. Received: speaker_subspace={value!r}")
        if value and ("speaker_subspace" not in task.BUILD_OPTIONS or self.recipe != "probe"):
            takes = registry.names(lambda t: "speaker_subspace" in t.BUILD_OPTIONS)
            raise ValueError(f"speaker_subspace is fitted by the 'probe' recipe of {' and '.join(takes)}. "
                             f"Received: model={self.model!r}, recipe={self.recipe!r}")
        value = self.fine_tune
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"fine_tune must be a non-negative integer. Received: fine_tune={value!r}")
        if value and ("fine_tune" not in task.BUILD_OPTIONS or self.recipe != "probe"):
            takes = registry.names(lambda t: "fine_tune" in t.BUILD_OPTIONS)
            raise ValueError(f"fine_tune trains the top LSTM layers of {' and '.join(takes)} after the 'probe' "
                             f"recipe's regression. Received: model={self.model!r}, recipe={self.recipe!r}, "
                             f"fine_tune={value!r}")
        if value and (self.speaker_norm or self.speaker_subspace):
            raise ValueError("fine_tune starts from the plain probe: it is not combined with speaker_norm or "
                             f"speaker_subspace. Received: speaker_norm={self.speaker_norm!r}, "
                             f"speaker_subspace={self.speaker_subspace!r}")
        object.__setattr__(self, "channel_copies", check_kinds(self.channel_copies))
        value = self.channel_draws
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"channel_draws must be a positive integer. Received: channel_draws={value!r}")
        if self.channel_copies and (self.recipe not in ENCODER_RECIPES or self.speaker_subspace or self.fine_tune):
            raise ValueError(f"channel_copies add training rows to the {' and '.join(ENCODER_RECIPES)} recipes on "
                             "frozen features, without speaker_subspace or fine_tune. Received: "
                             f"recipe={self.recipe!r}, speaker_subspace={self.speaker_subspace!r}, "
                             f"fine_tune={self.fine_tune!r}")
        if self.inner_folds not in INNER_FOLDS:
            raise ValueError(f"inner_folds must be one of {INNER_FOLDS}. Received: inner_folds={self.inner_folds!r}")
        if self.inner_folds != "auto" and self.recipe != "probe":
            raise ValueError(f"inner_folds chooses the 'probe' recipe's C. Received: inner_folds={self.inner_folds!r}, "
                             f"recipe={self.recipe!r}")
        if self.validation not in VALIDATION:
            raise ValueError(f"validation must be one of {VALIDATION}. Received: validation={self.validation!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}. Received: strategy={self.strategy!r}")
        if not (isinstance(self.jit_compile, bool) or self.jit_compile == "auto"):
            raise ValueError(f"jit_compile must be True, False or 'auto'. Received: jit_compile={self.jit_compile!r}")
        if self.monitor not in ("val_loss", "val_ua"):
            raise ValueError(f"monitor must be 'val_loss' or 'val_ua'. Received: monitor={self.monitor!r}")
        if self.mixed_precision not in (None, "mixed_float16", "mixed_bfloat16"):
            raise ValueError(
                "mixed_precision must be None, 'mixed_float16' or 'mixed_bfloat16'. "
                f"Received: mixed_precision={self.mixed_precision!r}"
            )
        if self.strategy == "multi_worker" and (self.recipe != "end_to_end" or self.monitor != "val_loss"):
            raise ValueError(
                "strategy='multi_worker' runs the end_to_end recipe with monitor='val_loss' "
                f"(a custom loop; Keras 3's fit does not support it). Received: recipe={self.recipe!r}, "
                f"monitor={self.monitor!r}"
            )
        if not 0 <= self.jitter < 0.5:
            raise ValueError(f"jitter must be in [0, 0.5). Received: jitter={self.jitter}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1). Received: label_smoothing={self.label_smoothing}")
        if not 0 <= self.stage2_dropout < 1:
            raise ValueError(f"stage2_dropout must be in [0, 1). Received: stage2_dropout={self.stage2_dropout}")
        if self.mixup_alpha < 0:
            raise ValueError(f"mixup_alpha must be >= 0. Received: mixup_alpha={self.mixup_alpha}")
        if task.SEGMENTED == "n":
            check_n_segments(self.n_segments)
        for name in ("epochs", "stage2_epochs", "batch_size", "image_size", "sru_units"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        value = self.stage1_epochs  # 0: frozen backbone (stage 1 skipped)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(
                f"stage1_epochs must be a non-negative integer (0 = frozen backbone). Received: stage1_epochs={value!r}")

    @property
    def task(self):
        """The model's task class (`keras_ser.models.registry.get(self.model)`)."""
        return _registry().get(self.model)

    @property
    def segments(self):
        """Segments per utterance the model is built with (None for frame-level models)."""
        return self.task.input_segments(self.n_segments)

    @property
    def output(self):
        """The input layout this model reads (its preprocessor's `LAYOUT`, e.g. `"segments"`)."""
        return self.task.PREPROCESSOR.LAYOUT

    def preprocessor(self, feature_config=None):
        """The preprocessor (`keras_ser.models.preprocessor.Preprocessor`) of the model this config describes."""
        return self.task.PREPROCESSOR.for_options(feature_config, self.segments, self.image_size)

    def feature_config(self, feature_config=None):
        """The model's feature config (its preprocessor's `CONFIG_CLASS`) from `feature_config`: an instance,
        its dict, or None for the defaults."""
        return self.task.PREPROCESSOR.CONFIG_CLASS.coerce(feature_config)

    @property
    def uses_encoder(self):
        """True when the recipe trains a head on features extracted once from frozen encoders (`probe`, `frozen`)."""
        return self.recipe in ENCODER_RECIPES

    @property
    def label_mode(self):
        """`"one_hot"` when label smoothing or mixup needs soft labels."""
        return "one_hot" if (self.mixup_alpha > 0 or self.label_smoothing > 0) else "int"

    def augment(self):
        """The per-utterance training augmentation, or None."""
        from tf_pipeline.array_math import Augment
        from tf_pipeline.augment import augment_fn

        return augment_fn(Augment.from_config(self))

    def levers(self):
        """Short names of the levers that are on (for reports)."""
        on = []
        if self.time_masks or self.freq_masks:
            on.append(f"SpecAugment {self.time_masks}x{self.time_width} time, {self.freq_masks}x{self.freq_width} freq")
        if self.jitter:
            on.append(f"segment jitter {self.jitter}")
        if self.mixup_alpha:
            on.append(f"mixup {self.mixup_alpha}")
        if self.label_smoothing:
            on.append(f"label smoothing {self.label_smoothing}")
        if self.channel_copies:
            on.append(describe_copies(self.channel_copies, self.channel_draws))
        if self.speaker_norm:
            on.append("PER-SPEAKER NORMALISATION (uses the test speaker's unlabelled audio)")
        return on

    def model_kwargs(self):
        """Arguments of `keras_ser.build_model` (besides classes and features): the model's `BUILD_OPTIONS`."""
        kwargs = {"name": self.model}
        for option in self.task.BUILD_OPTIONS:
            value = self.segments if option == "n_segments" else getattr(self, option)
            if option == "backbone_kwargs":
                value = dict(value) if value else None
            kwargs[option] = value
        return kwargs

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, config):
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"Unknown TrainConfig fields: {unknown}")
        return cls(**config)

    def to_json(self):
        return json.dumps(self.to_dict(), sort_keys=True)


def encoder_models():
    """The registered models trained only by the recipes on frozen encoders' features (`ENCODER_RECIPES`)."""
    return _registry().names(lambda task: set(task.RECIPES) <= set(ENCODER_RECIPES))
