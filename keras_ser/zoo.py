"""The model zoo: the paper's CNN+SRU and its two baselines, and `build_model`.

Zoo entries (`list_models()`):

- `cnn_sru`: Jiang, Fu & Tao (2019). Each of N segments of the feature image
  goes through the CNN (`TimeDistributed` backbone, AlexNet by default); the
  FC7 vectors are the steps of an SRU; a softmax on the last SRU output.
- `cnn`: the paper's CNN baseline: the CNN alone on one segment (the whole
  utterance image), softmax on FC7.
- `sru`: the paper's SRU baseline: the SRU alone over frame-level features
  of variable length (zero-padded frames masked).

Every model is a registered functional `keras.Model` subclass (keras-hub
"task" style) that carries what inference needs, saved with it in `.keras`
files: `class_names`, `feature_config` (a `tf_pipeline.config.FeatureConfig`),
`n_segments`, and the training speakers' feature statistics in its first
layer, `"standardize"` (see `keras_ser.set_channel_stats`).

Mixed precision: build under a global policy such as `"mixed_bfloat16"`
(or pass `dtype`); the input standardisation (and the `sru` model's
masking) and the softmax head stay in float32, everything else computes
in the policy's dtype.
"""

import keras

from keras_ser.backbones import get_backbone_factory
from keras_ser.layers.sru import SRU
from keras_ser.layers.standardization import ChannelStandardization
from keras_ser.metrics import UnweightedAccuracy
from keras_ser.rebuilt_model import RebuiltModel
from tf_pipeline.config import MAX_SEGMENTS
from tf_pipeline.config import check_n_segments
from tf_pipeline.config import FeatureConfig

# The feature image has 3 channels: log-Mel, delta, delta-delta.
FEATURE_CHANNELS = 3
# Compile defaults: Adam at 1e-4 is the optimiser of this project's reference
# calibration of the end-to-end CNN+SRU (docs/design.md, Reference calibration).
DEFAULT_LEARNING_RATE = 1e-4


def _check_positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"{name} must be an integer of at least {minimum}. Received: {name}={value!r}"
        )


def _check_num_classes(num_classes):
    _check_positive_int("num_classes", num_classes, minimum=2)


def _resolve_class_names(class_names, num_classes):
    if class_names is None:
        return tuple(f"class_{i}" for i in range(num_classes))
    if isinstance(class_names, str) or not all(isinstance(c, str) for c in class_names):
        raise ValueError(
            f"class_names must be a list of strings. Received: class_names={class_names!r}"
        )
    class_names = tuple(class_names)
    if len(class_names) != num_classes:
        raise ValueError(
            f"class_names must have num_classes={num_classes} entries. "
            f"Received: {len(class_names)} class names {list(class_names)}"
        )
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"class_names must be unique. Received: class_names={list(class_names)}")
    return class_names


def _resolve_feature_config(feature_config, config_class=FeatureConfig):
    if feature_config is None:
        return config_class()
    if isinstance(feature_config, (config_class, dict)):
        return config_class.from_dict(feature_config)
    raise ValueError(
        f"feature_config must be a tf_pipeline.config.{config_class.__name__}, its dict, or None. "
        f"Received: feature_config={feature_config!r}"
    )


def _float32_if_mixed(dtype):
    """float32 under a mixed-precision policy, else `dtype`.

    For the layers that stay in float32 under mixed precision: the input
    standardisation (raw log-Mel values need the mantissa) and the softmax
    head (as Keras advises).
    """
    policy = keras.dtype_policies.get(dtype) if dtype is not None else keras.config.dtype_policy()
    return "float32" if policy.compute_dtype in ("float16", "bfloat16") else dtype


def _check_dropout(dropout):
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a number in [0, 1). Received: dropout={dropout!r}")


class SERTask(RebuiltModel):
    """Base class of the keras-ser task models (a head on a backbone, with metadata).

    Holds what inference needs, saved with the model: `class_names`,
    `feature_config`, `n_segments`; and owns the compile defaults
    (`compile()` with no arguments gives the recipe of `build_model`).
    Subclasses build their functional graph in `__init__` and call
    `super().__init__(inputs=..., outputs=..., ...)`.

    Example:

    >>> import keras_ser
    >>> model = keras_ser.build_model("sru", num_classes=3, sru_units=8,
    ...                               class_names=["anger", "neutral", "sadness"])
    >>> isinstance(model, SERTask), model.class_names, model.n_segments
    (True, ['anger', 'neutral', 'sadness'], None)
    >>> model.feature_config.n_mels, type(model.optimizer).__name__
    (60, 'Adam')
    """

    # What the model takes, stated once (keras_ser.preprocessor turns it into
    # TensorFlow work): the class of `feature_config`; the layout of the
    # input, "segments" [B, N, H, W, 3], "frames" [B, T, 3 * n_mels] or
    # "mel_frames" [B, T, n_mels] (Mel power, padded with -1); and its
    # segments: "n" (the `n_segments` argument, 1..5), 1, or None (none).
    FEATURE_CONFIG_CLASS = FeatureConfig
    INPUT_LAYOUT = "segments"
    SEGMENTED = "n"
    NESTED_MODELS = ("backbone",)

    def __init__(
        self,
        inputs,
        outputs,
        class_names=None,
        feature_config=None,
        n_segments=None,
        **kwargs,
    ):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        num_classes = self.outputs[0].shape[-1]
        self._class_names = _resolve_class_names(class_names, num_classes)
        self._feature_config = _resolve_feature_config(feature_config, self.FEATURE_CONFIG_CLASS)
        self._n_segments = n_segments

    @property
    def class_names(self):
        """List of str: the label of each output unit, in order."""
        return list(self._class_names)

    @property
    def num_classes(self):
        """int: number of classes (outputs of the softmax)."""
        return len(self._class_names)

    @property
    def feature_config(self):
        """`tf_pipeline.config.FeatureConfig` of the features the model was trained on."""
        return self._feature_config

    @property
    def n_segments(self):
        """int or None: segments per utterance (`None` for frame-level models)."""
        return self._n_segments

    @property
    def preprocessor(self):
        """The `keras_ser.preprocessor.Preprocessor` that turns audio into this model's input.

        Built from what the model saves with itself (layout, feature config,
        segments, image size); imports TensorFlow on first use.
        """
        from keras_ser.preprocessor import Preprocessor

        return Preprocessor.for_model(self)

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """Configures training; `"auto"` arguments take the keras-ser defaults.

        Defaults: `keras.optimizers.Adam(learning_rate=1e-4)` (the optimiser
        of the project's reference calibration of the end-to-end CNN+SRU,
        docs/design.md), sparse categorical cross-entropy on the softmax output,
        and the metrics WA (`SparseCategoricalAccuracy` named `"wa"`) and UA
        (`keras_ser.metrics.UnweightedAccuracy` named `"ua"`).

        Args:
            optimizer: `"auto"` or any Keras optimizer (instance or name).
            loss: `"auto"` or any Keras loss.
            metrics: `"auto"` or a list of Keras metrics.
            **kwargs: passed to `keras.Model.compile` (`jit_compile`, ...).

        Example:

        >>> model.compile()                                              # doctest: +SKIP
        >>> model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9))  # doctest: +SKIP
        """
        if isinstance(optimizer, str) and optimizer == "auto":
            optimizer = keras.optimizers.Adam(learning_rate=DEFAULT_LEARNING_RATE)
        if isinstance(loss, str) and loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy()
        if isinstance(metrics, str) and metrics == "auto":
            metrics = [
                keras.metrics.SparseCategoricalAccuracy(name="wa"),
                UnweightedAccuracy(num_classes=self.num_classes, name="ua"),
            ]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        """Re-compiles a loaded model as it was saved (optimizer, loss, metrics)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if hasattr(self, "optimizer") and self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        # Not chained to the functional config: the graph is rebuilt from the
        # constructor arguments (keras-hub style), the weights loaded by path.
        return {
            "class_names": list(self._class_names),
            "feature_config": self._feature_config.to_dict(),
            **self.base_config(),
        }


def _segments_input(backbone, n_segments):
    image_shape = tuple(backbone.input.shape[1:])
    return keras.Input(shape=(n_segments, *image_shape), name="segments")


@keras.saving.register_keras_serializable(package="keras_ser")
class CNNSRUClassifier(SERTask):
    """CNN+SRU (Jiang, Fu & Tao 2019): a CNN per segment, an SRU over the segments, a softmax.

    Input `segments`: `[batch, n_segments, height, width, 3]` float32 raw
    feature images (log-Mel, delta, delta-delta; not standardised: the
    first layer, `standardize`, does it with the stored training statistics).
    Graph: `standardize` -> `backbone` (`TimeDistributed` CNN, one FC7
    vector per segment) -> `sru` (`keras_ser.layers.SRU`, last output) ->
    `predictions` (dense softmax, `num_classes`).

    Args:
        backbone: a functional `keras.Model` from one image to a feature
            vector (e.g. `keras_ser.backbones.AlexNet()`).
        n_segments: int in 1..5. Segments per utterance. Defaults to `3`.
        num_classes: int >= 2. Defaults to `7` (EMO-DB).
        sru_units: int. Width of the SRU. Defaults to `4096`.
        class_names: list of `num_classes` str, or None for `class_0`, ...
        feature_config: `tf_pipeline.config.FeatureConfig`, its dict, or
            None for the defaults.
        dtype: dtype or dtype policy of the head layers. Defaults to `None`.
        name: str. Defaults to `"cnn_sru"`.

    Example:

    >>> from keras_ser.backbones import AlexNet
    >>> backbone = AlexNet(image_size=67, filters=(8, 8, 8, 8, 8), fc_units=16)
    >>> model = CNNSRUClassifier(backbone, n_segments=3, num_classes=4, sru_units=16,
    ...                          class_names=["angry", "happy", "neutral", "sad"])
    >>> model.output.shape
    (None, 4)
    >>> model.class_names
    ['angry', 'happy', 'neutral', 'sad']
    """

    def __init__(
        self,
        backbone,
        n_segments=3,
        num_classes=7,
        sru_units=4096,
        class_names=None,
        feature_config=None,
        dtype=None,
        name="cnn_sru",
        **kwargs,
    ):
        _check_segments(n_segments)
        _check_num_classes(num_classes)
        _check_positive_int("sru_units", sru_units)
        class_names = _resolve_class_names(class_names, num_classes)

        # === Layers ===
        standardize = ChannelStandardization(dtype=_float32_if_mixed(dtype), name="standardize")
        per_segment = keras.layers.TimeDistributed(backbone, name="backbone")
        sru = SRU(sru_units, dtype=dtype, name="sru")
        predictions = keras.layers.Dense(
            num_classes, activation="softmax", dtype=_float32_if_mixed(dtype), name="predictions"
        )

        # === Functional graph ===
        segments = _segments_input(backbone, n_segments)
        x = standardize(segments)
        x = per_segment(x)  # [batch, n_segments, features]
        x = sru(x)  # [batch, sru_units]: the last step's output
        outputs = predictions(x)
        super().__init__(
            inputs=segments,
            outputs=outputs,
            class_names=class_names,
            feature_config=feature_config,
            n_segments=n_segments,
            dtype=dtype,
            name=name,
            **kwargs,
        )

        # === Config ===
        self.sru_units = sru_units

    @property
    def backbone(self):
        """The per-segment CNN (the model wrapped by the `backbone` layer)."""
        return self.get_layer("backbone").layer

    def get_config(self):
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "n_segments": self.n_segments,
            "num_classes": self.num_classes,
            "sru_units": self.sru_units,
        }


@keras.saving.register_keras_serializable(package="keras_ser")
class CNNClassifier(SERTask):
    """The paper's CNN baseline: the CNN alone on one segment, softmax on its features.

    Input `segments`: `[batch, 1, height, width, 3]` raw feature images (the
    same input as `CNNSRUClassifier` with `n_segments=1`, so the same data
    pipeline feeds both). Graph: `standardize` -> `backbone`
    (`TimeDistributed` CNN, FC7 for AlexNet) -> `squeeze` -> `predictions`
    (dense softmax).

    Args:
        backbone: a functional `keras.Model` from one image to a feature vector.
        num_classes: int >= 2. Defaults to `7`.
        class_names: list of `num_classes` str, or None.
        feature_config: `FeatureConfig`, its dict, or None.
        dtype: dtype or dtype policy of the head layers. Defaults to `None`.
        name: str. Defaults to `"cnn"`.

    Example:

    >>> from keras_ser.backbones import AlexNet
    >>> backbone = AlexNet(image_size=67, filters=(8, 8, 8, 8, 8), fc_units=16)
    >>> model = CNNClassifier(backbone, num_classes=7)
    >>> model.input.shape
    (None, 1, 67, 67, 3)
    """

    SEGMENTED = 1

    def __init__(
        self,
        backbone,
        num_classes=7,
        class_names=None,
        feature_config=None,
        dtype=None,
        name="cnn",
        **kwargs,
    ):
        _check_num_classes(num_classes)
        class_names = _resolve_class_names(class_names, num_classes)

        # === Layers ===
        standardize = ChannelStandardization(dtype=_float32_if_mixed(dtype), name="standardize")
        per_segment = keras.layers.TimeDistributed(backbone, name="backbone")
        feature_dim = backbone.output.shape[-1]
        squeeze = keras.layers.Reshape((feature_dim,), dtype=dtype, name="squeeze")
        predictions = keras.layers.Dense(
            num_classes, activation="softmax", dtype=_float32_if_mixed(dtype), name="predictions"
        )

        # === Functional graph ===
        segments = _segments_input(backbone, 1)
        x = standardize(segments)
        x = per_segment(x)  # [batch, 1, features]
        x = squeeze(x)
        outputs = predictions(x)
        super().__init__(
            inputs=segments,
            outputs=outputs,
            class_names=class_names,
            feature_config=feature_config,
            n_segments=1,
            dtype=dtype,
            name=name,
            **kwargs,
        )

    @property
    def backbone(self):
        """The CNN (the model wrapped by the `backbone` layer)."""
        return self.get_layer("backbone").layer

    def get_config(self):
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
        }


@keras.saving.register_keras_serializable(package="keras_ser")
class SRUClassifier(SERTask):
    """The paper's SRU baseline: an SRU over frame-level features, softmax on its last output.

    Input `frames`: `[batch, time, 3 * n_mels]` float32, one vector per
    10 ms frame: the concatenation `[log-Mel (n_mels) | delta (n_mels) |
    delta-delta (n_mels)]` of the raw (not standardised) features, with
    `n_mels` from `feature_config` (60: 180 values per frame). Utterances of
    different lengths are zero-padded at the end; frames that are all zeros
    are masked (the SRU skips them). Graph: `mask` (`Masking`, on the raw
    input) -> `standardize` (per-channel statistics, each broadcast over its
    `n_mels` block) -> `sru` -> `dropout` -> `predictions`.

    Args:
        num_classes: int >= 2. Defaults to `7`.
        sru_units: int. Width of the SRU. Defaults to `4096`.
        dropout: float in [0, 1). Dropout on the SRU output. Defaults to `0.5`.
        class_names: list of `num_classes` str, or None.
        feature_config: `FeatureConfig`, its dict, or None (60 Mel bands).
        dtype: dtype or dtype policy of the layers. Defaults to `None`.
        name: str. Defaults to `"sru"`.

    Example:

    >>> import numpy as np
    >>> model = SRUClassifier(num_classes=7, sru_units=32)
    >>> frames = np.zeros((2, 300, 180), "float32")      # 3 s, zero-padded
    >>> frames[0, :250] = np.random.randn(250, 180)
    >>> frames[1, :120] = np.random.randn(120, 180)
    >>> model.predict(frames, verbose=0).shape
    (2, 7)
    """

    INPUT_LAYOUT = "frames"
    SEGMENTED = None

    def __init__(
        self,
        num_classes=7,
        sru_units=4096,
        dropout=0.5,
        class_names=None,
        feature_config=None,
        dtype=None,
        name="sru",
        **kwargs,
    ):
        _check_num_classes(num_classes)
        _check_positive_int("sru_units", sru_units)
        _check_dropout(dropout)
        class_names = _resolve_class_names(class_names, num_classes)
        feature_config = _resolve_feature_config(feature_config)
        n_mels = feature_config.n_mels

        # === Layers ===
        mask = keras.layers.Masking(mask_value=0.0, dtype=_float32_if_mixed(dtype), name="mask")
        standardize = ChannelStandardization(
            features_per_channel=n_mels, dtype=_float32_if_mixed(dtype), name="standardize"
        )
        sru = SRU(sru_units, dtype=dtype, name="sru")
        drop = keras.layers.Dropout(dropout, dtype=dtype, name="dropout")
        predictions = keras.layers.Dense(
            num_classes, activation="softmax", dtype=_float32_if_mixed(dtype), name="predictions"
        )

        # === Functional graph ===
        frames = keras.Input(shape=(None, FEATURE_CHANNELS * n_mels), name="frames")
        x = mask(frames)
        x = standardize(x)
        x = sru(x)
        x = drop(x)
        outputs = predictions(x)
        super().__init__(
            inputs=frames,
            outputs=outputs,
            class_names=class_names,
            feature_config=feature_config,
            n_segments=None,
            dtype=dtype,
            name=name,
            **kwargs,
        )

        # === Config ===
        self.sru_units = sru_units
        self.dropout = dropout

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "sru_units": self.sru_units,
            "dropout": self.dropout,
        }


def _check_segments(n_segments):
    check_n_segments(n_segments)


MODELS = {
    "cnn_sru": "CNN+SRU of Jiang, Fu & Tao (2019): CNN per segment (N=1..5), SRU over segments, softmax.",
    "cnn": "CNN baseline: the CNN alone on one segment (the whole utterance image), softmax on FC7.",
    "sru": "SRU baseline: SRU over frame-level log-Mel/delta/delta-delta vectors (variable length, masked).",
    "encoder_stats": "Pretrained GE2E speech encoder (frozen), mean+std over time of each LSTM layer, softmax.",
    "encoder_sru": "Pretrained GE2E speech encoder, mean+std of its frames in N segments, SRU over segments, softmax.",
    "sfx_stats": "Pretrained aisfx sound-effects CNN (frozen), mean+std over time of its top block, softmax.",
    "fusion_stats": "GE2E speech encoder and aisfx sound-effects CNN side by side (frozen), both statistics, softmax.",
}
# Zoo entries on pretrained speech encoders (frozen; trained by the probe or frozen recipes),
# and the backbone each uses when none is named.
ENCODER_MODELS = ("encoder_stats", "encoder_sru", "sfx_stats", "fusion_stats")
DEFAULT_SPEECH_BACKBONE = "speaker_encoder"
FIXED_BACKBONES = {"sfx_stats": "sound_effects_encoder", "fusion_stats": "speaker_encoder+sound_effects_encoder"}
DEFAULT_SRU_UNITS = {"cnn_sru": 4096, "sru": 4096, "encoder_sru": 256}


def model_class(name):
    """The task class of a zoo entry (`list_models()` name)."""
    if name not in MODELS:
        raise ValueError(f"Unknown model. Expected one of {list(MODELS)}. Received: name={name!r}")
    if name in ENCODER_MODELS:
        from keras_ser import encoder_models

        return {"encoder_stats": encoder_models.EncoderStatsClassifier,
                "encoder_sru": encoder_models.EncoderSRUClassifier,
                "sfx_stats": encoder_models.SoundEffectsStatsClassifier,
                "fusion_stats": encoder_models.FusionStatsClassifier}[name]
    return {"cnn_sru": CNNSRUClassifier, "cnn": CNNClassifier, "sru": SRUClassifier}[name]


def model_input(name, n_segments=None):
    """`(layout, n_segments)` of the input a zoo entry takes, from its class.

    `n_segments` is what the model is built with: the given number for
    entries that take N segments (`cnn_sru`, `encoder_sru`; None: 3), 1 for
    `cnn`, None for the others.

    Example:

    >>> model_input("cnn", 3), model_input("encoder_sru", 4), model_input("sru", 3)
    (('segments', 1), ('mel_frames', 4), ('frames', None))
    """
    task = model_class(name)
    segments = {"n": 3 if n_segments is None else n_segments, 1: 1, None: None}[task.SEGMENTED]
    return task.INPUT_LAYOUT, segments


def default_backbone(name):
    """The backbone a zoo entry uses when none is named.

    Example:

    >>> default_backbone("cnn_sru"), default_backbone("encoder_stats"), default_backbone("fusion_stats")
    ('alexnet', 'speaker_encoder', 'speaker_encoder+sound_effects_encoder')
    """
    if name in FIXED_BACKBONES:
        return FIXED_BACKBONES[name]
    return DEFAULT_SPEECH_BACKBONE if name in ENCODER_MODELS else "alexnet"


def list_models():
    """Lists the zoo: a dict `name -> one-line description`.

    Example:

    >>> for name, description in list_models().items():
    ...     print(name)
    cnn_sru
    cnn
    sru
    encoder_stats
    encoder_sru
    sfx_stats
    fusion_stats
    """
    return dict(MODELS)


def build_model(
    name="cnn_sru",
    n_segments=None,
    num_classes=7,
    backbone=None,
    backbone_variant=None,
    backbone_weights=None,
    sru_units=None,
    dropout=0.5,
    class_names=None,
    compile=True,
    feature_config=None,
    image_size=227,
    backbone_kwargs=None,
    speaker_subspace=0,
):
    """Builds a zoo model, ready to `fit`: the entry point of keras-ser.

    The default is the paper's network: 3 segments of 227x227x3 through the
    Caffe AlexNet, an SRU of 4096 units, a softmax over 7 emotions;
    107.2 M parameters (108.6 M with ungrouped convolutions,
    `backbone_kwargs={"groups": 1}`). Models take raw feature images and
    standardise them in their first layer: set the training speakers'
    statistics with `keras_ser.set_channel_stats(model, mean, std)`.

    Inputs (float32, raw features, not standardised):
    - `cnn_sru`, `cnn`: `segments`, `[batch, n_segments, image_size,
      image_size, 3]`: the feature image (channels log-Mel, delta,
      delta-delta) cut into N segments along time, each resized
      (`tf_pipeline.segment_and_resize`; `make_dataset(output="segments")`).
    - `sru`: `frames`, `[batch, time, 3 * n_mels]`: per 10 ms frame the
      concatenation `[log-Mel | delta | delta-delta]` (`n_mels` values each),
      zero-padded at the end; all-zero frames are masked
      (`make_dataset(output="frames")`).
    - `encoder_stats`, `encoder_sru`: `mel_frames`, `[batch, time, 40]`: Mel
      power frames (`tf_pipeline.batch_mel_frames`), padded with -1; their
      `feature_config` is a `tf_pipeline.config.MelFramesConfig`.
    - `sfx_stats`: `sfx_mel`, `[batch, time, 96]`: the sound-effects CNN's
      log-Mel (`tf_pipeline.batch_sfx_mel`), padded with -1
      (`SoundEffectsMelConfig`).
    - `fusion_stats`: a dict of both, `{"mel_frames": ..., "sfx_mel": ...}`
      (`tf_pipeline.batch_fusion_inputs`, `FusionFeatureConfig`).

    With `compile=True` the model is compiled with `model.compile()`'s
    defaults: Adam with learning rate 1e-4 (the optimiser of this project's
    reference calibration of the end-to-end model, docs/design.md), sparse
    categorical cross-entropy, and the metrics WA (accuracy, `"wa"`) and UA
    (mean per-class recall over the epoch, `"ua"`).

    Args:
        name: str. Zoo entry: `"cnn_sru"`, `"cnn"`, `"sru"`,
            `"encoder_stats"`, `"encoder_sru"`, `"sfx_stats"` or
            `"fusion_stats"` (`list_models()`).
            Defaults to `"cnn_sru"`.
        n_segments: int or None. Segments per utterance: 1..5 for
            `cnn_sru` and `encoder_sru` (None: 3); `cnn` takes exactly one
            (None or 1); `sru` and `encoder_stats` take no segments (None
            only). Defaults to `None`.
        num_classes: int >= 2. Defaults to `7` (EMO-DB).
        backbone: str or None. For the CNN entries a name in
            `keras_ser.backbones.BACKBONES` (`"alexnet"`,
            `"efficientnet_lite0"`); for the encoder entries a name in
            `keras_ser.backbones.SPEECH_BACKBONES` (`"speaker_encoder"`).
            Not used by `sru`. None takes `"alexnet"` or `"speaker_encoder"`.
            `sfx_stats` and `fusion_stats` have fixed backbones (None or
            `default_backbone(name)` only). Defaults to `None`.
        backbone_variant: str or None. The backbone's variant; None takes
            its default (`"caffe"`, the paper's network, for AlexNet;
            `"torchvision"` is the other). Defaults to `None`.
        backbone_weights: None, or what the backbone factory accepts: for
            AlexNet a path to `bvlc_alexnet.npy` (caffe) or a torchvision
            `.pth`; for EfficientNet-Lite0 `"imagenet"` or a path. For the
            CNN entries None is a random initialisation. For the speech
            encoder None means its pretrained weights (`"resemblyzer"`,
            shipped with keras-ser); `"random"` asks for random weights, a
            path for a `.npz` or `.pt` of one's own. For `sfx_stats` None
            means the shipped aisfx weights (`"aisfx"`); for `fusion_stats`
            None means both pretrained and `"random"` neither. Defaults to
            `None`.
        sru_units: int or None. SRU width (`cnn_sru`, `sru`,
            `encoder_sru`). None: 4096 (256 for `encoder_sru`). Defaults to
            `None`.
        dropout: float in [0, 1). Backbone dropout (after fc6 and fc7 for
            AlexNet) for `cnn_sru` and `cnn`; dropout on the SRU output for
            `sru`; dropout on the pooled, standardised features for the
            encoder entries. Defaults to `0.5`.
        class_names: list of `num_classes` str, or None for `"class_0"`, ...
            Stored in the model (`model.class_names`).
        compile: bool. Compile with the defaults above. Defaults to `True`.
        feature_config: `tf_pipeline.config.FeatureConfig`, its dict, or
            None for the paper's settings. Stored in the model
            (`model.feature_config`); `sru` reads `n_mels` from it.
        image_size: int. Height and width of each segment image. Defaults
            to `227`.
        backbone_kwargs: dict or None. More arguments of the backbone
            factory, e.g. `{"filters": (8, 8, 8, 8, 8), "fc_units": 16}` for
            a tiny AlexNet. For `fusion_stats` a dict with the keys
            `"speaker_encoder"` and `"sound_effects_encoder"`, each the
            arguments of that encoder.
        speaker_subspace: int >= 0. For `sfx_stats` and `fusion_stats`: the
            rank of the speaker-subspace projection after the
            standardisation (0: none; fitted by the `probe` recipe on the
            training speakers). Defaults to `0`.

    Returns:
        A `CNNSRUClassifier`, `CNNClassifier` or `SRUClassifier`.

    Raises:
        ValueError: bad arguments; the message says what was received.

    Example:

    >>> import keras_ser
    >>> model = keras_ser.build_model(n_segments=3, class_names=[
    ...     "anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"])
    ...                                                          # doctest: +SKIP
    >>> model.fit(train_ds, validation_data=val_ds, epochs=30)   # doctest: +SKIP

    A tiny instance (what the tests build):

    >>> model = keras_ser.build_model(n_segments=2, num_classes=4, sru_units=16,
    ...     image_size=67, backbone_kwargs={"filters": (8, 8, 8, 8, 8), "fc_units": 16})
    >>> model.input.shape, model.output.shape
    ((None, 2, 67, 67, 3), (None, 4))
    """
    # === Arguments, checked at the door ===
    if name not in MODELS:
        raise ValueError(f"Unknown model. Expected one of {list(MODELS)}. Received: name={name!r}")
    _check_num_classes(num_classes)
    class_names = _resolve_class_names(class_names, num_classes)
    feature_config = _resolve_feature_config(feature_config, model_class(name).FEATURE_CONFIG_CLASS)
    _check_dropout(dropout)
    if backbone_kwargs is not None and not isinstance(backbone_kwargs, dict):
        raise ValueError(
            f"backbone_kwargs must be a dict or None. Received: backbone_kwargs={backbone_kwargs!r}"
        )
    segmented = model_class(name).SEGMENTED
    if segmented == "n":
        n_segments = 3 if n_segments is None else n_segments
        _check_segments(n_segments)
    elif segmented == 1 and n_segments not in (None, 1):
        raise ValueError(
            f"The {name!r} model takes one segment (the whole utterance image). "
            f"Received: n_segments={n_segments!r}"
        )
    elif segmented is None and n_segments is not None:
        raise ValueError(
            f"The {name!r} model reads frame-level features, not segments; leave n_segments=None. "
            f"Received: n_segments={n_segments!r}"
        )
    if sru_units is None:
        sru_units = DEFAULT_SRU_UNITS.get(name, 4096)
    if name in DEFAULT_SRU_UNITS:
        _check_positive_int("sru_units", sru_units)
    backbone = default_backbone(name) if backbone is None else backbone
    if name in FIXED_BACKBONES and backbone != FIXED_BACKBONES[name]:
        raise ValueError(f"The {name!r} model's backbone is {FIXED_BACKBONES[name]!r}. Received: backbone={backbone!r}")
    if speaker_subspace and name not in FIXED_BACKBONES:
        raise ValueError(f"speaker_subspace is an option of {sorted(FIXED_BACKBONES)}. "
                         f"Received: speaker_subspace={speaker_subspace!r} for {name!r}")

    # === Model ===
    if name in FIXED_BACKBONES:
        from keras_ser import encoder_models

        model = encoder_models.build_statistics_model(
            name, backbone_weights, backbone_kwargs, num_classes=num_classes, dropout=dropout,
            class_names=class_names, feature_config=feature_config, speaker_subspace=speaker_subspace)
    elif name in ENCODER_MODELS:
        from keras_ser import encoder_models
        from keras_ser.backbones import get_speech_backbone_factory

        factory = get_speech_backbone_factory(backbone)
        encoder = factory(backbone_variant, backbone_weights, **(backbone_kwargs or {}))
        common = dict(num_classes=num_classes, dropout=dropout, class_names=class_names,
                      feature_config=feature_config)
        if name == "encoder_stats":
            model = encoder_models.EncoderStatsClassifier(encoder, **common)
        else:
            model = encoder_models.EncoderSRUClassifier(encoder, n_segments=n_segments, sru_units=sru_units,
                                                        **common)
    elif name == "sru":
        if backbone_weights is not None:
            raise ValueError(
                "The 'sru' model has no backbone. Received: "
                f"backbone_weights={backbone_weights!r}"
            )
        model = SRUClassifier(
            num_classes=num_classes,
            sru_units=sru_units,
            dropout=dropout,
            class_names=class_names,
            feature_config=feature_config,
        )
    else:
        _check_positive_int("image_size", image_size)
        factory = get_backbone_factory(backbone)
        cnn = factory(backbone_variant, backbone_weights, image_size, dropout, **(backbone_kwargs or {}))
        if name == "cnn_sru":
            model = CNNSRUClassifier(
                cnn,
                n_segments=n_segments,
                num_classes=num_classes,
                sru_units=sru_units,
                class_names=class_names,
                feature_config=feature_config,
            )
        else:
            model = CNNClassifier(
                cnn, num_classes=num_classes, class_names=class_names, feature_config=feature_config
            )
    if compile:
        model.compile()
    return model
