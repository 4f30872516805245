"""`EncoderSRUClassifier` (`encoder_sru`): the GE2E encoder's frames in N segments, the paper's SRU."""

import keras

from keras_ser.models.checks import check_dropout
from keras_ser.models.checks import check_num_classes
from keras_ser.models.checks import check_positive_int
from keras_ser.models.checks import resolve_class_names
from keras_ser.layers.pooling import FrameMask
from keras_ser.layers.pooling import SegmentStatisticsPooling
from keras_ser.layers.sru import SRU
from keras_ser.layers.standardization import ChannelStandardization
from keras_ser.models.speech_encoders.backbones import build_speech_backbone
from keras_ser.models.speech_encoders.encoder_task import EncoderTask
from keras_ser.models.speech_encoders.encoder_task import check_fine_tune
from keras_ser.models.speech_encoders.encoder_task import check_speaker_encoder
from keras_ser.models.speech_encoders.encoder_task import set_trainable
from keras_ser.models.task import float32_if_mixed
from tf_pipeline.config import check_n_segments


@keras.saving.register_keras_serializable(package="keras_ser")
class EncoderSRUClassifier(EncoderTask):
    """Speech encoder + per-segment statistics + the paper's SRU over segments + softmax.

    Input `mel_frames` `[batch, time, n_mels]`. Graph: `frame_mask` ->
    `speaker_encoder` -> `frame_features` (the LSTM layers' frame outputs
    side by side) -> `pooled` (`SegmentStatisticsPooling`: N equal time
    segments, mean and std of each: `[batch, N, 2 * units * num_layers]`)
    -> `standardize` -> `dropout` -> `sru` (last output) -> `predictions`.

    Args:
        encoder: a `keras_ser.backbones.SpeakerEncoder`.
        n_segments: int in 1..5. Defaults to `3`.
        num_classes: int >= 2. Defaults to `7`.
        sru_units: int. Width of the SRU. Defaults to `256`.
        fine_tune: int. Top LSTM layers left trainable. Defaults to `0`.
        dropout: float in [0, 1). Dropout on the segment features. Defaults
            to `0.2`.
        class_names, feature_config, dtype: as `EncoderStatsClassifier`.
        name: str. Defaults to `"encoder_sru"`.

    Example:

    >>> import numpy as np
    >>> from keras_ser.backbones import SpeakerEncoder
    >>> model = EncoderSRUClassifier(SpeakerEncoder(units=8, embedding_dim=4), n_segments=3,
    ...                              num_classes=4, sru_units=8)
    >>> model.get_layer("pooled").output.shape
    (None, 3, 48)
    """

    NAME = "encoder_sru"
    DESCRIPTION = "Pretrained GE2E speech encoder, mean+std of its frames in N segments, SRU over segments, softmax."
    SEGMENTED = "n"
    RECIPES = ("frozen",)
    BUILD_OPTIONS = EncoderTask.BUILD_OPTIONS + ("sru_units",)
    DEFAULT_SRU_UNITS = 256
    TFLITE_SUPPORTED = True
    HEAD_LAYERS = ("standardize", "dropout", "sru", "predictions")
    PROTOCOL_POOLING = ("each layer's frames cut in N={n_segments} segments, mean and std per segment (1536 features "
                        "each), dropout {dropout}, SRU {sru_units} units over the segments")

    @classmethod
    def from_options(cls, num_classes, class_names, feature_config, n_segments, dropout, sru_units=None,
                     backbone=None, backbone_variant=None, backbone_weights=None, backbone_kwargs=None, **unused):
        """Builds the model from `keras_ser.build_model`'s arguments (the speech backbone by name)."""
        sru_units = cls.DEFAULT_SRU_UNITS if sru_units is None else sru_units
        check_positive_int("sru_units", sru_units)
        encoder = build_speech_backbone(cls.DEFAULT_BACKBONE if backbone is None else backbone, backbone_variant,
                                        backbone_weights, backbone_kwargs)
        return cls(encoder, n_segments=n_segments, sru_units=sru_units, num_classes=num_classes, dropout=dropout,
                   class_names=class_names, feature_config=feature_config)

    def __init__(self, encoder, n_segments=3, num_classes=7, sru_units=256, fine_tune=0, dropout=0.2,
                 class_names=None, feature_config=None, dtype=None, name="encoder_sru", **kwargs):
        check_speaker_encoder(encoder)
        check_n_segments(n_segments)
        check_num_classes(num_classes)
        check_positive_int("sru_units", sru_units)
        check_fine_tune(fine_tune, encoder)
        check_dropout(dropout)
        class_names = resolve_class_names(class_names, num_classes)
        set_trainable(encoder, fine_tune)

        # === Layers ===
        frame_mask = FrameMask(name="frame_mask")
        concatenate = keras.layers.Concatenate(axis=-1, dtype=dtype, name="frame_features")
        pool = SegmentStatisticsPooling(n_segments, dtype=dtype, name="pooled")
        standardize = ChannelStandardization(dtype=float32_if_mixed(dtype), name="standardize")
        drop = keras.layers.Dropout(dropout, dtype=dtype, name="dropout")
        sru = SRU(sru_units, dtype=dtype, name="sru")
        predictions = keras.layers.Dense(
            num_classes, activation="softmax", dtype=float32_if_mixed(dtype), name="predictions"
        )

        # === Functional graph ===
        mel_frames = keras.Input(shape=(None, encoder.n_mels), name="mel_frames")
        mask = frame_mask(mel_frames)
        sequences = encoder(mel_frames)
        x = concatenate([sequences[output] for output in encoder.sequence_outputs])
        x = pool([x, mask])
        x = standardize(x)
        x = drop(x)
        x = sru(x)
        outputs = predictions(x)
        super().__init__(inputs=mel_frames, outputs=outputs, class_names=class_names,
                         feature_config=feature_config, n_segments=n_segments, dtype=dtype, name=name, **kwargs)

        # === Config ===
        self.sru_units = sru_units
        self.fine_tune = fine_tune
        self.dropout = dropout

    def get_config(self):
        return {**super().get_config(), "n_segments": self.n_segments, "sru_units": self.sru_units}
