"""`FusionStatsClassifier` (`fusion_stats`): both pretrained encoders side by side, their statistics fused."""

import keras

from keras_ser.models.checks import check_dropout
from keras_ser.models.checks import check_num_classes
from keras_ser.models.checks import resolve_class_names
from keras_ser.models.speech_encoders.encoder_task import DEFAULT_SFX_OUTPUTS
from keras_ser.models.speech_encoders.encoder_task import DEFAULT_SPEAKER_OUTPUTS
from keras_ser.models.speech_encoders.encoder_task import SFX_PROTOCOL
from keras_ser.models.speech_encoders.encoder_task import StatisticsHeadTask
from keras_ser.models.speech_encoders.encoder_task import check_fixed_backbone
from keras_ser.models.speech_encoders.encoder_task import check_outputs
from keras_ser.models.speech_encoders.encoder_task import check_sound_effects_encoder
from keras_ser.models.speech_encoders.encoder_task import check_speaker_encoder
from keras_ser.models.speech_encoders.encoder_task import check_speaker_subspace
from keras_ser.models.speech_encoders.encoder_task import front_end_protocol
from keras_ser.models.speech_encoders.encoder_task import ge2e_protocol
from keras_ser.models.speech_encoders.encoder_task import set_trainable
from keras_ser.models.speech_encoders.encoder_task import sound_effects_statistics
from keras_ser.models.speech_encoders.encoder_task import speaker_statistics
from keras_ser.models.speech_encoders.encoder_task import statistics_head
from keras_ser.models.speech_encoders.preprocessor import FusionPreprocessor
from keras_ser.models.speech_encoders.sound_effects_encoder import sound_effects_encoder
from keras_ser.models.speech_encoders.speaker_encoder import speaker_encoder


@keras.saving.register_keras_serializable(package="keras_ser")
class FusionStatsClassifier(StatisticsHeadTask):
    """Speaker encoder and sound-effects encoder side by side, their statistics fused, softmax.

    Input: a dict `{"mel_frames": [batch, time, 40], "sfx_mel": [batch,
    time', 96]}` (both front ends of the same audio,
    `keras_ser.models.speech_encoders.fusion_inputs.batch_fusion_inputs`, each padded with -1).
    Graph: the speaker encoder's pooled LSTM statistics (as
    `encoder_stats`) and the sound-effects encoder's pooled block
    statistics (as `sfx_stats`), concatenated in `pooled`, then
    `standardize` -> [`speaker_projection`] -> `dropout` -> `predictions`.
    Both encoders are frozen.

    Args:
        speaker_encoder: a `keras_ser.backbones.SpeakerEncoder`.
        sound_effects_encoder: a `keras_ser.backbones.SoundEffectsEncoder`.
        num_classes: int >= 2. Defaults to `7`.
        speaker_outputs: LSTM layers to pool. Defaults to all three.
        sfx_outputs: blocks to pool. Defaults to `("block_4",)`.
        speaker_subspace: int >= 0. Rank of the speaker-subspace projection
            (0: none). Defaults to `0`.
        dropout: float in [0, 1). Defaults to `0.0`.
        class_names, dtype: as `EncoderStatsClassifier`.
        feature_config: `keras_ser.models.speech_encoders.FusionFeatureConfig`, its dict,
            or None.
        name: str. Defaults to `"fusion_stats"`.

    Example:

    >>> import numpy as np
    >>> from keras_ser.backbones import SoundEffectsEncoder, SpeakerEncoder
    >>> model = FusionStatsClassifier(SpeakerEncoder(units=8, embedding_dim=4),
    ...                               SoundEffectsEncoder(filters=4), num_classes=3)
    >>> inputs = {"mel_frames": np.random.rand(2, 50, 40).astype("float32"),
    ...           "sfx_mel": np.random.rand(2, 40, 96).astype("float32")}
    >>> model.predict(inputs, verbose=0).shape
    (2, 3)
    >>> model.get_layer("pooled").output.shape
    (None, 112)
    """

    NAME = "fusion_stats"
    DESCRIPTION = "GE2E speech encoder and aisfx sound-effects CNN side by side (frozen), both statistics, softmax."
    PREPROCESSOR = FusionPreprocessor
    DEFAULT_BACKBONE = "speaker_encoder+sound_effects_encoder"
    NESTED_MODELS = ("speaker_encoder", "sound_effects_encoder")
    PROTOCOL_POOLING = ("mean and std over time of each LSTM layer's frames and of the CNN's top block, concatenated "
                        "(1536 + 1024 = 2560 features)")

    @classmethod
    def protocol_encoder(cls, feature_config):
        feature_config = feature_config or {}
        return (ge2e_protocol(feature_config.get("mel_frames") or {}) + f", and the {SFX_PROTOCOL}"
                + front_end_protocol(feature_config))

    @classmethod
    def from_options(cls, num_classes, class_names, feature_config, dropout, speaker_subspace=0, backbone=None,
                     backbone_weights=None, backbone_kwargs=None, **unused):
        """Builds the model from `keras_ser.build_model`'s arguments: both encoders with their shipped
        weights (`backbone_weights=None`) or random ones (`"random"`); `backbone_kwargs` holds each encoder's
        arguments under `"speaker_encoder"` and `"sound_effects_encoder"`."""
        check_fixed_backbone(cls, backbone)
        backbone_kwargs = dict(backbone_kwargs or {})
        if backbone_weights not in (None, "random"):
            raise ValueError("fusion_stats takes backbone_weights=None (both pretrained) or 'random'. "
                             f"Received: backbone_weights={backbone_weights!r}")
        unknown = sorted(set(backbone_kwargs) - {"speaker_encoder", "sound_effects_encoder"})
        if unknown:
            raise ValueError("backbone_kwargs of fusion_stats has the keys 'speaker_encoder' and "
                             f"'sound_effects_encoder'. Received: {unknown}")
        random = backbone_weights == "random"
        return cls(
            speaker_encoder(None if random else "resemblyzer", **backbone_kwargs.get("speaker_encoder", {})),
            sound_effects_encoder(None if random else "aisfx", **backbone_kwargs.get("sound_effects_encoder", {})),
            num_classes=num_classes, dropout=dropout, class_names=class_names, feature_config=feature_config,
            speaker_subspace=speaker_subspace,
        )

    def __init__(self, speaker_encoder, sound_effects_encoder, num_classes=7,
                 speaker_outputs=DEFAULT_SPEAKER_OUTPUTS, sfx_outputs=DEFAULT_SFX_OUTPUTS, speaker_subspace=0,
                 dropout=0.0, class_names=None, feature_config=None, dtype=None, name="fusion_stats", **kwargs):
        check_speaker_encoder(speaker_encoder)
        check_sound_effects_encoder(sound_effects_encoder)
        check_num_classes(num_classes)
        speaker_outputs = check_outputs("speaker_outputs", speaker_outputs, speaker_encoder)
        sfx_outputs = check_outputs("sfx_outputs", sfx_outputs, sound_effects_encoder)
        check_speaker_subspace(speaker_subspace)
        check_dropout(dropout)
        class_names = resolve_class_names(class_names, num_classes)
        set_trainable(speaker_encoder, 0)
        sound_effects_encoder.trainable = False

        # === Functional graph ===
        inputs = {
            "mel_frames": keras.Input(shape=(None, speaker_encoder.n_mels), name="mel_frames"),
            "sfx_mel": keras.Input(shape=(None, sound_effects_encoder.n_mels), name="sfx_mel"),
        }
        statistics = [
            *speaker_statistics(speaker_encoder, inputs["mel_frames"], speaker_outputs, dtype),
            *sound_effects_statistics(sound_effects_encoder, inputs["sfx_mel"], sfx_outputs, dtype),
        ]
        pooled = keras.layers.Concatenate(axis=-1, dtype=dtype, name="pooled")(statistics)
        predictions = statistics_head(pooled, num_classes, speaker_subspace, dropout, dtype)
        super().__init__(inputs=inputs, outputs=predictions, class_names=class_names,
                         feature_config=feature_config, n_segments=None, dtype=dtype, name=name, **kwargs)

        # === Config ===
        self.speaker_outputs = speaker_outputs
        self.sfx_outputs = sfx_outputs
        self.speaker_subspace = speaker_subspace
        self.dropout = dropout

    @property
    def sound_effects_encoder(self):
        """The `SoundEffectsEncoder` inside the model."""
        return self.get_layer("sound_effects_encoder")

    def get_config(self):
        return {
            **super().get_config(),
            "speaker_encoder": keras.saving.serialize_keras_object(self.encoder),
            "sound_effects_encoder": keras.saving.serialize_keras_object(self.sound_effects_encoder),
            "speaker_outputs": list(self.speaker_outputs),
            "sfx_outputs": list(self.sfx_outputs),
        }
