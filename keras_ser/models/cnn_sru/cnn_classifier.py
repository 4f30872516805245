"""`CNNClassifier`: the paper's CNN baseline, the CNN alone on the whole utterance image."""

import keras

from keras_ser.layers.standardization import ChannelStandardization
from keras_ser.models.checks import check_num_classes
from keras_ser.models.checks import resolve_class_names
from keras_ser.models.cnn_sru.backbones import build_backbone
from keras_ser.models.cnn_sru.cnn_sru_classifier import segments_input
from keras_ser.models.cnn_sru.preprocessor import LogMelSegmentsPreprocessor
from keras_ser.models.task import SERTask
from keras_ser.models.task import float32_if_mixed


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

    NAME = "cnn"
    DESCRIPTION = "CNN baseline: the CNN alone on one segment (the whole utterance image), softmax on FC7."
    PREPROCESSOR = LogMelSegmentsPreprocessor
    SEGMENTED = 1
    RECIPES = ("end_to_end",)
    BUILD_OPTIONS = ("n_segments", "backbone", "backbone_variant", "backbone_weights", "backbone_kwargs", "image_size", "sru_units", "dropout")
    DEFAULT_BACKBONE = "alexnet"
    DEFAULT_SRU_UNITS = 4096  # what a TrainConfig names (and the run reports print); the model has no SRU
    TFLITE_SUPPORTED = True
    NESTED_MODELS = ("backbone",)

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
        check_num_classes(num_classes)
        class_names = resolve_class_names(class_names, num_classes)

        # === Layers ===
        standardize = ChannelStandardization(dtype=float32_if_mixed(dtype), name="standardize")
        per_segment = keras.layers.TimeDistributed(backbone, name="backbone")
        feature_dim = backbone.output.shape[-1]
        squeeze = keras.layers.Reshape((feature_dim,), dtype=dtype, name="squeeze")
        predictions = keras.layers.Dense(
            num_classes, activation="softmax", dtype=float32_if_mixed(dtype), name="predictions"
        )

        # === Functional graph ===
        segments = segments_input(backbone, 1)
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

    @classmethod
    def from_options(cls, num_classes, class_names, feature_config, dropout, backbone=None, backbone_variant=None,
                     backbone_weights=None, backbone_kwargs=None, image_size=227, **unused):
        """Builds the model from `keras_ser.build_model`'s arguments (the backbone by name)."""
        cnn = build_backbone(cls.DEFAULT_BACKBONE if backbone is None else backbone, backbone_variant,
                             backbone_weights, image_size, dropout, backbone_kwargs)
        return cls(cnn, num_classes=num_classes, class_names=class_names, feature_config=feature_config)

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
