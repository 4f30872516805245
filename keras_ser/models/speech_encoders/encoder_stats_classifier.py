"""`EncoderStatsClassifier` (`encoder_stats`): the GE2E speech encoder's statistics and a softmax."""

import keras

from keras_ser.models.checks import check_dropout
from keras_ser.models.checks import check_num_classes
from keras_ser.models.checks import resolve_class_names
from keras_ser.models.speech_encoders.backbones import build_speech_backbone
from keras_ser.models.speech_encoders.encoder_task import EncoderTask
from keras_ser.models.speech_encoders.encoder_task import check_fine_tune
from keras_ser.models.speech_encoders.encoder_task import check_speaker_encoder
from keras_ser.models.speech_encoders.encoder_task import check_speaker_subspace
from keras_ser.models.speech_encoders.encoder_task import set_trainable
from keras_ser.models.speech_encoders.encoder_task import speaker_statistics
from keras_ser.models.speech_encoders.encoder_task import statistics_head


@keras.saving.register_keras_serializable(package="keras_ser")
class EncoderStatsClassifier(EncoderTask):
    """Speech encoder + statistics pooling of every LSTM layer + softmax.

    Input `mel_frames` `[batch, time, n_mels]` (Mel power, padded with -1).
    Graph: `frame_mask` -> `speaker_encoder` (frozen unless `fine_tune`)
    -> `pool_lstm_k` (mean and std over the real frames of each LSTM
    layer) -> `pooled` (concatenation, `2 * units * num_layers` values) ->
    `standardize` (training speakers' statistics) -> [`speaker_projection`]
    -> `dropout` -> `predictions` (softmax). With the default recipe the softmax is a
    multinomial logistic regression fitted on the pooled features
    (`keras_ser.training.frozen.train_probe`).

    Args:
        encoder: a `keras_ser.backbones.SpeakerEncoder`.
        num_classes: int >= 2. Defaults to `7`.
        fine_tune: int. Top LSTM layers left trainable (0: the encoder is
            frozen). Defaults to `0`.
        dropout: float in [0, 1). Dropout on the standardised features
            (training only). Defaults to `0.0`.
        speaker_subspace: int >= 0. Rank of the speaker-subspace projection
            after `standardize` (0: none; fitted by the `probe` recipe on
            the training speakers). Defaults to `0`.
        class_names: list of `num_classes` str, or None.
        feature_config: `keras_ser.models.speech_encoders.MelFramesConfig`, its dict, or None.
        dtype: dtype or dtype policy of the head. Defaults to `None`.
        name: str. Defaults to `"encoder_stats"`.

    Example:

    >>> import numpy as np
    >>> from keras_ser.backbones import SpeakerEncoder
    >>> model = EncoderStatsClassifier(SpeakerEncoder(units=8, embedding_dim=4), num_classes=4)
    >>> model.predict(np.random.rand(2, 30, 40).astype("float32"), verbose=0).shape
    (2, 4)
    """

    NAME = "encoder_stats"
    DESCRIPTION = "Pretrained GE2E speech encoder (frozen), mean+std over time of each LSTM layer, softmax."
    SEGMENTED = None
    TFLITE_SUPPORTED = True
    BUILD_OPTIONS = EncoderTask.BUILD_OPTIONS + ("speaker_subspace", "fine_tune")
    PROTOCOL_POOLING = "mean and std over time of each layer's frames (1536 features)"

    @classmethod
    def from_options(cls, num_classes, class_names, feature_config, dropout, backbone=None, backbone_variant=None,
                     backbone_weights=None, backbone_kwargs=None, speaker_subspace=0, fine_tune=0, **unused):
        """Builds the model from `keras_ser.build_model`'s arguments (the speech backbone by name)."""
        encoder = build_speech_backbone(cls.DEFAULT_BACKBONE if backbone is None else backbone, backbone_variant,
                                        backbone_weights, backbone_kwargs)
        return cls(encoder, num_classes=num_classes, fine_tune=fine_tune, dropout=dropout, class_names=class_names,
                   feature_config=feature_config, speaker_subspace=speaker_subspace)

    def __init__(self, encoder, num_classes=7, fine_tune=0, dropout=0.0, class_names=None,
                 feature_config=None, speaker_subspace=0, dtype=None, name="encoder_stats", **kwargs):
        check_speaker_encoder(encoder)
        check_num_classes(num_classes)
        check_fine_tune(fine_tune, encoder)
        check_dropout(dropout)
        check_speaker_subspace(speaker_subspace)
        class_names = resolve_class_names(class_names, num_classes)
        set_trainable(encoder, fine_tune)

        # === Functional graph (the pooling and head that sfx_stats and fusion_stats use too) ===
        mel_frames = keras.Input(shape=(None, encoder.n_mels), name="mel_frames")
        pooled = keras.layers.Concatenate(axis=-1, dtype=dtype, name="pooled")(
            speaker_statistics(encoder, mel_frames, encoder.sequence_outputs, dtype)
        )
        outputs = statistics_head(pooled, num_classes, speaker_subspace, dropout, dtype)
        super().__init__(inputs=mel_frames, outputs=outputs, class_names=class_names,
                         feature_config=feature_config, n_segments=None, dtype=dtype, name=name, **kwargs)

        # === Config ===
        self.fine_tune = fine_tune
        self.dropout = dropout
        self.speaker_subspace = speaker_subspace

    @property
    def HEAD_LAYERS(self):  # noqa: N802 (EncoderTask.head_model reads it; here it depends on the instance)
        middle = ("speaker_projection",) if self.speaker_subspace else ()
        return ("standardize", *middle, "dropout", "predictions")

    def get_config(self):
        config = super().get_config()
        if self.speaker_subspace:  # only when used: configs saved before the option load and compare unchanged
            config["speaker_subspace"] = self.speaker_subspace
        return config
