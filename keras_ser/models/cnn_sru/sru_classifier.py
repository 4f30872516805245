"""`SRUClassifier`: the paper's SRU baseline, an SRU over frame-level log-Mel features."""

import keras

from keras_ser.layers.sru import SRU
from keras_ser.layers.standardization import ChannelStandardization
from keras_ser.models.checks import check_dropout
from keras_ser.models.checks import check_num_classes
from keras_ser.models.checks import check_positive_int
from keras_ser.models.checks import resolve_class_names
from keras_ser.models.cnn_sru.preprocessor import LogMelFramesPreprocessor
from keras_ser.models.task import SERTask
from keras_ser.models.task import float32_if_mixed
from tf_pipeline.config import FeatureConfig

# The feature image has 3 channels: log-Mel, delta, delta-delta.
FEATURE_CHANNELS = 3


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

    NAME = "sru"
    DESCRIPTION = "SRU baseline: SRU over frame-level log-Mel/delta/delta-delta vectors (variable length, masked)."
    PREPROCESSOR = LogMelFramesPreprocessor
    SEGMENTED = None
    RECIPES = ("end_to_end",)
    BUILD_OPTIONS = ("sru_units", "dropout")
    DEFAULT_BACKBONE = "alexnet"  # what a TrainConfig names (stored in run records); the model has no backbone
    DEFAULT_SRU_UNITS = 4096
    TFLITE_SUPPORTED = True

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
        check_num_classes(num_classes)
        check_positive_int("sru_units", sru_units)
        check_dropout(dropout)
        class_names = resolve_class_names(class_names, num_classes)
        feature_config = FeatureConfig.coerce(feature_config)
        n_mels = feature_config.n_mels

        # === Layers ===
        mask = keras.layers.Masking(mask_value=0.0, dtype=float32_if_mixed(dtype), name="mask")
        standardize = ChannelStandardization(
            features_per_channel=n_mels, dtype=float32_if_mixed(dtype), name="standardize"
        )
        sru = SRU(sru_units, dtype=dtype, name="sru")
        drop = keras.layers.Dropout(dropout, dtype=dtype, name="dropout")
        predictions = keras.layers.Dense(
            num_classes, activation="softmax", dtype=float32_if_mixed(dtype), name="predictions"
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

    @classmethod
    def from_options(cls, num_classes, class_names, feature_config, dropout, sru_units=None, backbone_weights=None,
                     **unused):
        """Builds the model from `keras_ser.build_model`'s arguments (it has no backbone)."""
        sru_units = cls.DEFAULT_SRU_UNITS if sru_units is None else sru_units
        check_positive_int("sru_units", sru_units)
        if backbone_weights is not None:
            raise ValueError(f"The 'sru' model has no backbone. Received: backbone_weights={backbone_weights!r}")
        return cls(num_classes=num_classes, sru_units=sru_units, dropout=dropout, class_names=class_names,
                   feature_config=feature_config)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "sru_units": self.sru_units,
            "dropout": self.dropout,
        }
