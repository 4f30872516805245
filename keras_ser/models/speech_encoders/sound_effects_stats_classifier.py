"""`SoundEffectsStatsClassifier` (`sfx_stats`): the aisfx sound-effects CNN's statistics and a softmax."""

import keras

from keras_ser.models.checks import check_dropout
from keras_ser.models.checks import check_num_classes
from keras_ser.models.checks import resolve_class_names
from keras_ser.models.speech_encoders.encoder_task import DEFAULT_SFX_OUTPUTS
from keras_ser.models.speech_encoders.encoder_task import SFX_PROTOCOL
from keras_ser.models.speech_encoders.encoder_task import StatisticsHeadTask
from keras_ser.models.speech_encoders.encoder_task import check_fixed_backbone
from keras_ser.models.speech_encoders.encoder_task import check_outputs
from keras_ser.models.speech_encoders.encoder_task import check_sound_effects_encoder
from keras_ser.models.speech_encoders.encoder_task import check_speaker_subspace
from keras_ser.models.speech_encoders.encoder_task import front_end_protocol
from keras_ser.models.speech_encoders.encoder_task import sound_effects_statistics
from keras_ser.models.speech_encoders.encoder_task import statistics_head
from keras_ser.models.speech_encoders.preprocessor import SoundEffectsMelPreprocessor
from keras_ser.models.speech_encoders.sound_effects_encoder import sound_effects_encoder


@keras.saving.register_keras_serializable(package="keras_ser")
class SoundEffectsStatsClassifier(StatisticsHeadTask):
    """Sound-effects encoder + statistics pooling of its top block + softmax.

    Input `sfx_mel` `[batch, time, 96]` (the encoder's log-Mel,
    `keras_ser.models.speech_encoders.sound_effects_mel.batch_sfx_mel`, padded with -1). Graph: `sfx_frame_mask`
    and `sound_effects_encoder` (frozen; it masks the padding itself) ->
    `pool_block_k` (mean and std over the real frames of each block in
    `outputs`) -> `pooled` -> `standardize` -> [`speaker_projection`] ->
    `dropout` -> `predictions`. Trained by the `probe` recipe.

    Args:
        encoder: a `keras_ser.backbones.SoundEffectsEncoder`.
        num_classes: int >= 2. Defaults to `7`.
        outputs: names of the encoder blocks to pool. Defaults to
            `("block_4",)`.
        speaker_subspace: int >= 0. Rank of the speaker-subspace
            projection after `standardize` (0: none). Defaults to `0`.
        dropout: float in [0, 1). Defaults to `0.0`.
        class_names, dtype: as `EncoderStatsClassifier`.
        feature_config: `keras_ser.models.speech_encoders.SoundEffectsMelConfig`, its
            dict, or None.
        name: str. Defaults to `"sfx_stats"`.

    Example:

    >>> import numpy as np
    >>> from keras_ser.backbones import SoundEffectsEncoder
    >>> model = SoundEffectsStatsClassifier(SoundEffectsEncoder(n_mels=96, filters=4), num_classes=3)
    >>> model.predict(np.random.rand(2, 40, 96).astype("float32"), verbose=0).shape
    (2, 3)
    >>> model.get_layer("pooled").output.shape
    (None, 64)
    """

    NAME = "sfx_stats"
    DESCRIPTION = "Pretrained aisfx sound-effects CNN (frozen), mean+std over time of its top block, softmax."
    PREPROCESSOR = SoundEffectsMelPreprocessor
    DEFAULT_BACKBONE = "sound_effects_encoder"
    PROTOCOL_POOLING = "mean and std over time of the top block's frames (1024 features)"

    @classmethod
    def protocol_encoder(cls, feature_config):
        return SFX_PROTOCOL + front_end_protocol(feature_config)

    @classmethod
    def from_options(cls, num_classes, class_names, feature_config, dropout, speaker_subspace=0, backbone=None,
                     backbone_weights=None, backbone_kwargs=None, **unused):
        """Builds the model from `keras_ser.build_model`'s arguments: the shipped aisfx weights unless
        `backbone_weights` is `"random"` or a path (see `keras_ser.backbones.sound_effects_encoder`, the function)."""
        check_fixed_backbone(cls, backbone)
        weights = "aisfx" if backbone_weights is None else backbone_weights
        encoder = sound_effects_encoder(None if weights == "random" else weights, **(backbone_kwargs or {}))
        return cls(encoder, num_classes=num_classes, dropout=dropout, class_names=class_names,
                   feature_config=feature_config, speaker_subspace=speaker_subspace)

    def __init__(self, encoder, num_classes=7, outputs=DEFAULT_SFX_OUTPUTS, speaker_subspace=0, dropout=0.0,
                 class_names=None, feature_config=None, dtype=None, name="sfx_stats", **kwargs):
        check_sound_effects_encoder(encoder)
        check_num_classes(num_classes)
        outputs = check_outputs("outputs", outputs, encoder)
        check_speaker_subspace(speaker_subspace)
        check_dropout(dropout)
        class_names = resolve_class_names(class_names, num_classes)
        encoder.trainable = False

        # === Functional graph ===
        sfx_mel = keras.Input(shape=(None, encoder.n_mels), name="sfx_mel")
        pooled = keras.layers.Concatenate(axis=-1, dtype=dtype, name="pooled")(
            sound_effects_statistics(encoder, sfx_mel, outputs, dtype)
        )
        predictions = statistics_head(pooled, num_classes, speaker_subspace, dropout, dtype)
        super().__init__(inputs=sfx_mel, outputs=predictions, class_names=class_names,
                         feature_config=feature_config, n_segments=None, dtype=dtype, name=name, **kwargs)

        # === Config ===
        self.outputs_pooled = outputs
        self.speaker_subspace = speaker_subspace
        self.dropout = dropout

    @property
    def encoder(self):
        """The `SoundEffectsEncoder` inside the model."""
        return self.get_layer("sound_effects_encoder")

    def get_config(self):
        return {**super().get_config(), "encoder": keras.saving.serialize_keras_object(self.encoder),
                "outputs": list(self.outputs_pooled)}
