"""Zoo entries on a pretrained speech encoder (`keras_ser.backbones.SpeakerEncoder`).

- `encoder_stats`: the encoder (frozen by default), the mean and standard
  deviation over time of each LSTM layer's frame outputs, a softmax.
- `encoder_sru`: the encoder's frame outputs of all layers, cut into N time
  segments, mean and standard deviation per segment, the paper's SRU over
  the N segment vectors, a softmax.

Both take `mel_frames` `[batch, time, n_mels]` (Mel power frames,
`tf_pipeline.batch_mel_frames`, padded with -1) and carry a
`tf_pipeline.config.MelFramesConfig` as their `feature_config`. Their
pooled features (the `"pooled"` layer's output) do not depend on the labels
while the encoder is frozen, so training extracts them once
(`features_model()`) and fits only the head (`head_model()`): the layers
after `"pooled"`, starting with `"standardize"` (per-feature statistics of
the training speakers, see `keras_ser.set_channel_stats`).
"""

import keras

from keras_ser.backbones.speaker_encoder import SpeakerEncoder
from keras_ser.layers.pooling import DownsampleMask
from keras_ser.layers.pooling import FrameMask
from keras_ser.layers.pooling import SegmentStatisticsPooling
from keras_ser.layers.pooling import StatisticsPooling
from keras_ser.layers.speaker_projection import SpeakerSubspaceProjection
from keras_ser.layers.sru import SRU
from keras_ser.layers.standardization import ChannelStandardization
from keras_ser.zoo import SERTask
from keras_ser.zoo import _check_dropout
from keras_ser.zoo import _check_num_classes
from keras_ser.zoo import _check_positive_int
from keras_ser.zoo import _check_segments
from keras_ser.zoo import _float32_if_mixed
from keras_ser.zoo import _resolve_class_names
from tf_pipeline.config import FusionFeatureConfig
from tf_pipeline.config import MelFramesConfig
from tf_pipeline.config import SoundEffectsMelConfig


def _check_encoder(encoder):
    if not isinstance(encoder, SpeakerEncoder):
        raise ValueError(
            "encoder must be a keras_ser.backbones.SpeakerEncoder. "
            f"Received: encoder={type(encoder).__name__}"
        )


def _check_fine_tune(fine_tune, encoder):
    if isinstance(fine_tune, bool) or not isinstance(fine_tune, int) or not 0 <= fine_tune <= encoder.num_layers:
        raise ValueError(
            f"fine_tune must be an integer from 0 to {encoder.num_layers} (top LSTM layers to train). "
            f"Received: fine_tune={fine_tune!r}"
        )


def _set_trainable(encoder, fine_tune):
    """Freezes the encoder except its `fine_tune` top LSTM layers (and the unused projection)."""
    encoder.trainable = fine_tune > 0
    for index, name in enumerate(encoder.sequence_outputs):
        encoder.get_layer(name).trainable = index >= encoder.num_layers - fine_tune
    encoder.get_layer("projection").trainable = False


def _speaker_statistics(encoder, mel_frames, outputs, dtype):
    """Mean and std over the real frames of the speaker encoder's `outputs` layers."""
    mask = FrameMask(name="frame_mask")(mel_frames)
    sequences = encoder(mel_frames)
    return [StatisticsPooling(dtype=dtype, name=f"pool_{name}")([sequences[name], mask]) for name in outputs]


def _statistics_head(pooled, num_classes, speaker_subspace, dropout, dtype):
    """`standardize` -> [`speaker_projection`] -> `dropout` -> `predictions` on the pooled features."""
    x = ChannelStandardization(dtype=_float32_if_mixed(dtype), name="standardize")(pooled)
    if speaker_subspace:
        x = SpeakerSubspaceProjection(speaker_subspace, dtype=_float32_if_mixed(dtype), name="speaker_projection")(x)
    x = keras.layers.Dropout(dropout, dtype=dtype, name="dropout")(x)
    return keras.layers.Dense(num_classes, activation="softmax", dtype=_float32_if_mixed(dtype), name="predictions")(x)


class EncoderTask(SERTask):
    """Base of the zoo entries on a speech encoder: the features / head split.

    Subclasses name their pooled-feature layer `"pooled"` and list the
    layers after it, in order, in `HEAD_LAYERS`.
    """

    FEATURE_CONFIG_CLASS = MelFramesConfig
    INPUT_LAYOUT = "mel_frames"
    HEAD_LAYERS = ()
    NESTED_MODELS = ("encoder",)

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


@keras.saving.register_keras_serializable(package="keras_ser")
class EncoderStatsClassifier(EncoderTask):
    """Speech encoder + statistics pooling of every LSTM layer + softmax.

    Input `mel_frames` `[batch, time, n_mels]` (Mel power, padded with -1).
    Graph: `frame_mask` -> `speaker_encoder` (frozen unless `fine_tune`)
    -> `pool_lstm_k` (mean and std over the real frames of each LSTM
    layer) -> `pooled` (concatenation, `2 * units * num_layers` values) ->
    `standardize` (training speakers' statistics) -> `dropout` ->
    `predictions` (softmax). With the default recipe the softmax is a
    multinomial logistic regression fitted on the pooled features
    (`keras_ser.training.probe`).

    Args:
        encoder: a `keras_ser.backbones.SpeakerEncoder`.
        num_classes: int >= 2. Defaults to `7`.
        fine_tune: int. Top LSTM layers left trainable (0: the encoder is
            frozen). Defaults to `0`.
        dropout: float in [0, 1). Dropout on the standardised features
            (training only). Defaults to `0.0`.
        class_names: list of `num_classes` str, or None.
        feature_config: `tf_pipeline.config.MelFramesConfig`, its dict, or None.
        dtype: dtype or dtype policy of the head. Defaults to `None`.
        name: str. Defaults to `"encoder_stats"`.

    Example:

    >>> import numpy as np
    >>> from keras_ser.backbones import SpeakerEncoder
    >>> model = EncoderStatsClassifier(SpeakerEncoder(units=8, embedding_dim=4), num_classes=4)
    >>> model.predict(np.random.rand(2, 30, 40).astype("float32"), verbose=0).shape
    (2, 4)
    """

    HEAD_LAYERS = ("standardize", "dropout", "predictions")
    SEGMENTED = None

    def __init__(self, encoder, num_classes=7, fine_tune=0, dropout=0.0, class_names=None,
                 feature_config=None, dtype=None, name="encoder_stats", **kwargs):
        _check_encoder(encoder)
        _check_num_classes(num_classes)
        _check_fine_tune(fine_tune, encoder)
        _check_dropout(dropout)
        class_names = _resolve_class_names(class_names, num_classes)
        _set_trainable(encoder, fine_tune)

        # === Functional graph (the pooling and head that sfx_stats and fusion_stats use too) ===
        mel_frames = keras.Input(shape=(None, encoder.n_mels), name="mel_frames")
        pooled = keras.layers.Concatenate(axis=-1, dtype=dtype, name="pooled")(
            _speaker_statistics(encoder, mel_frames, encoder.sequence_outputs, dtype)
        )
        outputs = _statistics_head(pooled, num_classes, 0, dropout, dtype)
        super().__init__(inputs=mel_frames, outputs=outputs, class_names=class_names,
                         feature_config=feature_config, n_segments=None, dtype=dtype, name=name, **kwargs)

        # === Config ===
        self.fine_tune = fine_tune
        self.dropout = dropout


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

    HEAD_LAYERS = ("standardize", "dropout", "sru", "predictions")

    def __init__(self, encoder, n_segments=3, num_classes=7, sru_units=256, fine_tune=0, dropout=0.2,
                 class_names=None, feature_config=None, dtype=None, name="encoder_sru", **kwargs):
        _check_encoder(encoder)
        _check_segments(n_segments)
        _check_num_classes(num_classes)
        _check_positive_int("sru_units", sru_units)
        _check_fine_tune(fine_tune, encoder)
        _check_dropout(dropout)
        class_names = _resolve_class_names(class_names, num_classes)
        _set_trainable(encoder, fine_tune)

        # === Layers ===
        frame_mask = FrameMask(name="frame_mask")
        concatenate = keras.layers.Concatenate(axis=-1, dtype=dtype, name="frame_features")
        pool = SegmentStatisticsPooling(n_segments, dtype=dtype, name="pooled")
        standardize = ChannelStandardization(dtype=_float32_if_mixed(dtype), name="standardize")
        drop = keras.layers.Dropout(dropout, dtype=dtype, name="dropout")
        sru = SRU(sru_units, dtype=dtype, name="sru")
        predictions = keras.layers.Dense(
            num_classes, activation="softmax", dtype=_float32_if_mixed(dtype), name="predictions"
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


# ---------------------------------------------------------------------------
# Statistics heads on the sound-effects encoder, alone or fused with the speaker encoder.

# Pooled by default: every LSTM layer of the speaker encoder (as `encoder_stats`)
# and the top block of the sound-effects encoder (the block its own embedding
# reads). Fixed before any EMO-DB result of these entries was seen.
DEFAULT_SPEAKER_OUTPUTS = ("lstm_1", "lstm_2", "lstm_3")
DEFAULT_SFX_OUTPUTS = ("block_4",)


def _check_outputs(what, outputs, encoder):
    outputs = tuple(outputs)
    unknown = [name for name in outputs if name not in encoder.sequence_outputs]
    if not outputs or unknown or len(set(outputs)) != len(outputs):
        raise ValueError(
            f"{what} must name one or more distinct outputs of {encoder.name} {encoder.sequence_outputs}. "
            f"Received: {what}={outputs!r}"
        )
    return outputs


def _check_sound_effects_encoder(encoder):
    from keras_ser.backbones.sound_effects_encoder import SoundEffectsEncoder

    if not isinstance(encoder, SoundEffectsEncoder):
        raise ValueError(
            "sound_effects_encoder must be a keras_ser.backbones.SoundEffectsEncoder. "
            f"Received: sound_effects_encoder={type(encoder).__name__}"
        )


def _check_speaker_subspace(rank):
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
        raise ValueError(
            f"speaker_subspace must be a non-negative integer (0: no projection). Received: speaker_subspace={rank!r}"
        )


def _sound_effects_statistics(encoder, sfx_mel, outputs, dtype):
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

    @property
    def HEAD_LAYERS(self):  # noqa: N802 (EncoderTask.head_model reads it; here it depends on the instance)
        middle = ("speaker_projection",) if self.speaker_subspace else ()
        return ("standardize", *middle, "dropout", "predictions")

    def get_config(self):
        config = SERTask.get_config(self)
        return {**config, "num_classes": self.num_classes, "dropout": self.dropout,
                "speaker_subspace": self.speaker_subspace}


@keras.saving.register_keras_serializable(package="keras_ser")
class SoundEffectsStatsClassifier(StatisticsHeadTask):
    """Sound-effects encoder + statistics pooling of its top block + softmax.

    Input `sfx_mel` `[batch, time, 96]` (the encoder's log-Mel,
    `tf_pipeline.batch_sfx_mel`, padded with -1). Graph: `sfx_frame_mask`
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
        feature_config: `tf_pipeline.config.SoundEffectsMelConfig`, its
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

    FEATURE_CONFIG_CLASS = SoundEffectsMelConfig
    INPUT_LAYOUT = "sfx_mel"

    def __init__(self, encoder, num_classes=7, outputs=DEFAULT_SFX_OUTPUTS, speaker_subspace=0, dropout=0.0,
                 class_names=None, feature_config=None, dtype=None, name="sfx_stats", **kwargs):
        _check_sound_effects_encoder(encoder)
        _check_num_classes(num_classes)
        outputs = _check_outputs("outputs", outputs, encoder)
        _check_speaker_subspace(speaker_subspace)
        _check_dropout(dropout)
        class_names = _resolve_class_names(class_names, num_classes)
        encoder.trainable = False

        # === Functional graph ===
        sfx_mel = keras.Input(shape=(None, encoder.n_mels), name="sfx_mel")
        pooled = keras.layers.Concatenate(axis=-1, dtype=dtype, name="pooled")(
            _sound_effects_statistics(encoder, sfx_mel, outputs, dtype)
        )
        predictions = _statistics_head(pooled, num_classes, speaker_subspace, dropout, dtype)
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


@keras.saving.register_keras_serializable(package="keras_ser")
class FusionStatsClassifier(StatisticsHeadTask):
    """Speaker encoder and sound-effects encoder side by side, their statistics fused, softmax.

    Input: a dict `{"mel_frames": [batch, time, 40], "sfx_mel": [batch,
    time', 96]}` (both front ends of the same audio,
    `tf_pipeline.encoder_inputs.batch_fusion_inputs`, each padded with -1).
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
        feature_config: `tf_pipeline.config.FusionFeatureConfig`, its dict,
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

    FEATURE_CONFIG_CLASS = FusionFeatureConfig
    INPUT_LAYOUT = "fusion"
    NESTED_MODELS = ("speaker_encoder", "sound_effects_encoder")

    def __init__(self, speaker_encoder, sound_effects_encoder, num_classes=7,
                 speaker_outputs=DEFAULT_SPEAKER_OUTPUTS, sfx_outputs=DEFAULT_SFX_OUTPUTS, speaker_subspace=0,
                 dropout=0.0, class_names=None, feature_config=None, dtype=None, name="fusion_stats", **kwargs):
        _check_encoder(speaker_encoder)
        _check_sound_effects_encoder(sound_effects_encoder)
        _check_num_classes(num_classes)
        speaker_outputs = _check_outputs("speaker_outputs", speaker_outputs, speaker_encoder)
        sfx_outputs = _check_outputs("sfx_outputs", sfx_outputs, sound_effects_encoder)
        _check_speaker_subspace(speaker_subspace)
        _check_dropout(dropout)
        class_names = _resolve_class_names(class_names, num_classes)
        _set_trainable(speaker_encoder, 0)
        sound_effects_encoder.trainable = False

        # === Functional graph ===
        inputs = {
            "mel_frames": keras.Input(shape=(None, speaker_encoder.n_mels), name="mel_frames"),
            "sfx_mel": keras.Input(shape=(None, sound_effects_encoder.n_mels), name="sfx_mel"),
        }
        statistics = [
            *_speaker_statistics(speaker_encoder, inputs["mel_frames"], speaker_outputs, dtype),
            *_sound_effects_statistics(sound_effects_encoder, inputs["sfx_mel"], sfx_outputs, dtype),
        ]
        pooled = keras.layers.Concatenate(axis=-1, dtype=dtype, name="pooled")(statistics)
        predictions = _statistics_head(pooled, num_classes, speaker_subspace, dropout, dtype)
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


def build_statistics_model(name, backbone_weights=None, backbone_kwargs=None, **kwargs):
    """Builds `sfx_stats` or `fusion_stats` with their encoders (`keras_ser.build_model` calls it).

    Args:
        name: `"sfx_stats"` or `"fusion_stats"`.
        backbone_weights: None (pretrained: the shipped aisfx weights, and
            for `fusion_stats` the shipped GE2E weights too), `"random"`
            (no weights), or for `sfx_stats` a path (see
            `keras_ser.backbones.sound_effects_encoder`).
        backbone_kwargs: for `sfx_stats` the encoder's arguments; for
            `fusion_stats` a dict with `"speaker_encoder"` and/or
            `"sound_effects_encoder"` keys, each that encoder's arguments.
        **kwargs: the task class's arguments.
    """
    from keras_ser.backbones.sound_effects_encoder import sound_effects_encoder
    from keras_ser.backbones.speaker_encoder import speaker_encoder

    backbone_kwargs = dict(backbone_kwargs or {})
    if name == "sfx_stats":
        weights = "aisfx" if backbone_weights is None else backbone_weights
        encoder = sound_effects_encoder(None if weights == "random" else weights, **backbone_kwargs)
        return SoundEffectsStatsClassifier(encoder, **kwargs)
    if backbone_weights not in (None, "random"):
        raise ValueError("fusion_stats takes backbone_weights=None (both pretrained) or 'random'. "
                         f"Received: backbone_weights={backbone_weights!r}")
    unknown = sorted(set(backbone_kwargs) - {"speaker_encoder", "sound_effects_encoder"})
    if unknown:
        raise ValueError("backbone_kwargs of fusion_stats has the keys 'speaker_encoder' and "
                         f"'sound_effects_encoder'. Received: {unknown}")
    random = backbone_weights == "random"
    return FusionStatsClassifier(
        speaker_encoder(None if random else "resemblyzer", **backbone_kwargs.get("speaker_encoder", {})),
        sound_effects_encoder(None if random else "aisfx", **backbone_kwargs.get("sound_effects_encoder", {})),
        **kwargs,
    )
