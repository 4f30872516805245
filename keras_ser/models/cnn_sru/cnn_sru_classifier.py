"""`CNNSRUClassifier`: the paper's network, a CNN per segment and an SRU over the segments."""

import keras

from keras_ser.layers.sru import SRU
from keras_ser.layers.standardization import ChannelStandardization
from keras_ser.models.checks import check_num_classes
from keras_ser.models.checks import check_positive_int
from keras_ser.models.checks import resolve_class_names
from keras_ser.models.cnn_sru.backbones import build_backbone
from keras_ser.models.cnn_sru.preprocessor import LogMelSegmentsPreprocessor
from keras_ser.models.task import SERTask
from keras_ser.models.task import float32_if_mixed
from tf_pipeline.config import check_n_segments


def segments_input(backbone, n_segments):
    """The `segments` input `[batch, n_segments, *backbone image shape]` of the CNN models."""
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

    NAME = "cnn_sru"
    DESCRIPTION = "CNN+SRU of Jiang, Fu & Tao (2019): CNN per segment (N=1..5), SRU over segments, softmax."
    PREPROCESSOR = LogMelSegmentsPreprocessor
    SEGMENTED = "n"
    RECIPES = ("end_to_end", "paper")
    BUILD_OPTIONS = ("n_segments", "backbone", "backbone_variant", "backbone_weights", "backbone_kwargs", "image_size", "sru_units", "dropout")
    DEFAULT_BACKBONE = "alexnet"
    DEFAULT_SRU_UNITS = 4096
    TFLITE_SUPPORTED = True
    NESTED_MODELS = ("backbone",)

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
        check_n_segments(n_segments)
        check_num_classes(num_classes)
        check_positive_int("sru_units", sru_units)
        class_names = resolve_class_names(class_names, num_classes)

        # === Layers ===
        standardize = ChannelStandardization(dtype=float32_if_mixed(dtype), name="standardize")
        per_segment = keras.layers.TimeDistributed(backbone, name="backbone")
        sru = SRU(sru_units, dtype=dtype, name="sru")
        predictions = keras.layers.Dense(
            num_classes, activation="softmax", dtype=float32_if_mixed(dtype), name="predictions"
        )

        # === Functional graph ===
        segments = segments_input(backbone, n_segments)
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

    @classmethod
    def from_options(cls, num_classes, class_names, feature_config, n_segments, dropout, backbone=None,
                     backbone_variant=None, backbone_weights=None, backbone_kwargs=None, sru_units=None,
                     image_size=227, **unused):
        """Builds the model from `keras_ser.build_model`'s arguments (the backbone by name)."""
        sru_units = cls.DEFAULT_SRU_UNITS if sru_units is None else sru_units
        check_positive_int("sru_units", sru_units)
        cnn = build_backbone(cls.DEFAULT_BACKBONE if backbone is None else backbone, backbone_variant,
                             backbone_weights, image_size, dropout, backbone_kwargs)
        return cls(cnn, n_segments=n_segments, num_classes=num_classes, sru_units=sru_units, class_names=class_names,
                   feature_config=feature_config)

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
