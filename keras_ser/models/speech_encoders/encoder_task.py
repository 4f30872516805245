"""The base of the speech-encoder zoo entries: a pretrained encoder, pooled statistics, a head.

`EncoderTask` holds what the entries share: the features / head split. Their
pooled features (the `"pooled"` layer's output) do not depend on the labels
while the encoders are frozen, so training extracts them once
(`features_model()`) and fits only the head (`head_model()`): the layers
after `"pooled"`, starting with `"standardize"` (per-feature statistics of
the training speakers, see `keras_ser.set_channel_stats`).
`StatisticsHeadTask` adds the optional speaker-subspace projection of the
statistics heads (`sfx_stats`, `fusion_stats`). The functions here build the
parts the entries share (the statistics of each encoder, the head) and check
their arguments.
"""

import keras

from keras_ser.layers.pooling import DownsampleMask
from keras_ser.layers.pooling import FrameMask
from keras_ser.layers.pooling import StatisticsPooling
from keras_ser.layers.speaker_projection import SpeakerSubspaceProjection
from keras_ser.layers.standardization import ChannelStandardization
from keras_ser.models.speech_encoders.preprocessor import MelFramesPreprocessor
from keras_ser.models.speech_encoders.sound_effects_encoder import SoundEffectsEncoder
from keras_ser.models.speech_encoders.speaker_encoder import SpeakerEncoder
from keras_ser.models.task import SERTask
from keras_ser.models.task import float32_if_mixed

# Pooled by default: every LSTM layer of the speaker encoder (as `encoder_stats`)
# and the top block of the sound-effects encoder (the block its own embedding
# reads); docs/notes.md says when this was fixed.
DEFAULT_SPEAKER_OUTPUTS = ("lstm_1", "lstm_2", "lstm_3")
DEFAULT_SFX_OUTPUTS = ("block_4",)


def check_speaker_encoder(encoder):
    """Raises ValueError unless `encoder` is a `SpeakerEncoder`."""
    if not isinstance(encoder, SpeakerEncoder):
        raise ValueError(
            "encoder must be a keras_ser.backbones.SpeakerEncoder. "
            f"Received: encoder={type(encoder).__name__}"
        )


def check_fine_tune(fine_tune, encoder):
    """Raises ValueError unless `fine_tune` is an int from 0 to the encoder's LSTM layers."""
    if isinstance(fine_tune, bool) or not isinstance(fine_tune, int) or not 0 <= fine_tune <= encoder.num_layers:
        raise ValueError(
            f"fine_tune must be an integer from 0 to {encoder.num_layers} (top LSTM layers to train). "
            f"Received: fine_tune={fine_tune!r}"
        )


def set_trainable(encoder, fine_tune):
    """Freezes the encoder except its `fine_tune` top LSTM layers (and the unused projection)."""
    encoder.trainable = fine_tune > 0
    for index, name in enumerate(encoder.sequence_outputs):
        encoder.get_layer(name).trainable = index >= encoder.num_layers - fine_tune
    encoder.get_layer("projection").trainable = False


def speaker_statistics(encoder, mel_frames, outputs, dtype):
    """Mean and std over the real frames of the speaker encoder's `outputs` layers."""
    mask = FrameMask(name="frame_mask")(mel_frames)
    sequences = encoder(mel_frames)
    return [StatisticsPooling(dtype=dtype, name=f"pool_{name}")([sequences[name], mask]) for name in outputs]


def statistics_head(pooled, num_classes, speaker_subspace, dropout, dtype):
    """`standardize` -> [`speaker_projection`] -> `dropout` -> `predictions` on the pooled features."""
    x = ChannelStandardization(dtype=float32_if_mixed(dtype), name="standardize")(pooled)
    if speaker_subspace:
        x = SpeakerSubspaceProjection(speaker_subspace, dtype=float32_if_mixed(dtype), name="speaker_projection")(x)
    x = keras.layers.Dropout(dropout, dtype=dtype, name="dropout")(x)
    return keras.layers.Dense(num_classes, activation="softmax", dtype=float32_if_mixed(dtype), name="predictions")(x)


# The sound-effects CNN's input is fixed by its weights.
SFX_PROTOCOL = ("aisfx sound-effects CNN (4 blocks of two 3x3 convolutions, 64-512 channels, offline weights CC BY "
                "4.0, frozen) over 96-band HTK log-Mel (46.4 ms Hann window every 23.2 ms at 16 kHz, "
                "peak-normalised audio)")


def front_end_protocol(feature_config):
    """`", <the speech front end>"` when a feature config (dict) has one, else `""`."""
    front_end = (feature_config or {}).get("front_end")
    if not front_end:
        return ""
    return (f", leading and trailing silence (below {front_end['trim_db']:g} dB of the loudest frame) trimmed and "
            f"the level set to {front_end['level_dbfs']:g} dBFS RMS, in the graph")


def ge2e_protocol(feature_config):
    """How a run's protocol describes the GE2E speaker encoder over its Mel power frames (a `MelFramesConfig` dict)."""
    volume = feature_config.get("volume_dbfs")
    if volume is not None:
        audio = f"each utterance raised to {volume:g} dBFS RMS (never lowered) before the spectrum, in the graph"
    elif feature_config.get("front_end"):
        audio = "audio as the speech front end leaves it (below)"
    else:
        audio = "raw audio (no volume normalisation)"
    frames = (f"{feature_config.get('n_mels', 40)}-band Mel power frames ({feature_config.get('n_fft', 400)}-sample "
              f"window every {feature_config.get('hop_length', 160)} samples at "
              f"{feature_config.get('sample_rate', 16000)} Hz)")
    return (f"GE2E speaker encoder (3 LSTM layers of 256 units, offline weights, frozen) over {frames}, {audio}"
            + front_end_protocol(feature_config))


class EncoderTask(SERTask):
    """Base of the zoo entries on a speech encoder: the features / head split.

    Subclasses name their pooled-feature layer `"pooled"` and list the
    layers after it, in order, in `HEAD_LAYERS`. They are trained by the
    recipes on features extracted once (`probe`, `frozen`,
    `keras_ser.training.frozen`).
    """

    PREPROCESSOR = MelFramesPreprocessor
    RECIPES = ("probe", "frozen")
    BUILD_OPTIONS = ("n_segments", "backbone", "backbone_variant", "backbone_weights", "backbone_kwargs", "dropout")
    DEFAULT_BACKBONE = "speaker_encoder"
    HEAD_LAYERS = ()
    NESTED_MODELS = ("encoder",)
    # How the run reports and docs/results.md describe the pooled features (`str.format` of the run's
    # TrainConfig dict).
    PROTOCOL_POOLING = "mean and std over time of the encoder's frames"

    @classmethod
    def protocol_encoder(cls, feature_config):
        """The sentence of a run's protocol that describes the frozen encoder and its input.

        Args:
            feature_config: the run's feature config as a dict (`to_dict()`), or None for the defaults.
        """
        return ge2e_protocol(feature_config or {})

    @property
    def encoder(self):
        """The `SpeakerEncoder` inside the model."""
        return self.get_layer("speaker_encoder")

    def features_model(self):
        """The model from `mel_frames` to the pooled features (the frozen part).

        Example:

        >>> import numpy as np, keras_ser
        >>> model = keras_ser.build_model("encoder_stats", num_classes=3, backbone_weights="random",
        ...                               backbone_kwargs={"units": 8, "embedding_dim": 4})
        >>> model.features_model().output.shape
        (None, 48)
        """
        return keras.Model(self.input, self.get_layer("pooled").output, name=f"{self.name}_features")

    def head_model(self):
        """The layers after `"pooled"` as a model on pooled features (weights shared)."""
        pooled = self.get_layer("pooled").output
        inputs = keras.Input(shape=tuple(pooled.shape[1:]), name="pooled_features")
        x = inputs
        for name in self.HEAD_LAYERS:
            x = self.get_layer(name)(x)
        return keras.Model(inputs, x, name=f"{self.name}_head")

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "num_classes": self.num_classes,
            "fine_tune": self.fine_tune,
            "dropout": self.dropout,
        }


def check_outputs(what, outputs, encoder):
    """`outputs` as a tuple of distinct names of the encoder's `sequence_outputs`; else ValueError."""
    outputs = tuple(outputs)
    unknown = [name for name in outputs if name not in encoder.sequence_outputs]
    if not outputs or unknown or len(set(outputs)) != len(outputs):
        raise ValueError(
            f"{what} must name one or more distinct outputs of {encoder.name} {encoder.sequence_outputs}. "
            f"Received: {what}={outputs!r}"
        )
    return outputs


def check_sound_effects_encoder(encoder):
    """Raises ValueError unless `encoder` is a `SoundEffectsEncoder`."""
    if not isinstance(encoder, SoundEffectsEncoder):
        raise ValueError(
            "sound_effects_encoder must be a keras_ser.backbones.SoundEffectsEncoder. "
            f"Received: sound_effects_encoder={type(encoder).__name__}"
        )


def check_fixed_backbone(task_class, backbone):
    """Raises ValueError unless `backbone` is None or the model's own (`DEFAULT_BACKBONE`, its only one)."""
    if backbone is not None and backbone != task_class.DEFAULT_BACKBONE:
        raise ValueError(f"The {task_class.NAME!r} model's backbone is {task_class.DEFAULT_BACKBONE!r}. "
                         f"Received: backbone={backbone!r}")


def check_speaker_subspace(rank):
    """Raises ValueError unless `rank` is a non-negative int."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
        raise ValueError(
            f"speaker_subspace must be a non-negative integer (0: no projection). Received: speaker_subspace={rank!r}"
        )


def sound_effects_statistics(encoder, sfx_mel, outputs, dtype):
    """Mean and std over the real frames of the sound-effects encoder's `outputs` blocks.

    The encoder masks the padding itself (each row is computed as if alone);
    each block's mask keeps the output frames of the row's own length.
    """
    mask = FrameMask(name="sfx_frame_mask")(sfx_mel)
    sequences = encoder(sfx_mel)
    strides = dict(zip(encoder.sequence_outputs, encoder.time_strides))
    return [
        StatisticsPooling(dtype=dtype, name=f"pool_{name}")(
            [sequences[name], DownsampleMask(strides[name], name=f"mask_{name}")(mask)]
        )
        for name in outputs
    ]


class StatisticsHeadTask(EncoderTask):
    """Base of the statistics heads with an optional speaker-subspace projection.

    Head: `pooled` -> `standardize` -> `speaker_projection` (only when
    `speaker_subspace > 0`) -> `dropout` -> `predictions`.
    """

    SEGMENTED = None
    BUILD_OPTIONS = EncoderTask.BUILD_OPTIONS + ("speaker_subspace",)

    @property
    def HEAD_LAYERS(self):  # noqa: N802 (EncoderTask.head_model reads it; here it depends on the instance)
        middle = ("speaker_projection",) if self.speaker_subspace else ()
        return ("standardize", *middle, "dropout", "predictions")

    def get_config(self):
        config = SERTask.get_config(self)
        return {**config, "num_classes": self.num_classes, "dropout": self.dropout,
                "speaker_subspace": self.speaker_subspace}
