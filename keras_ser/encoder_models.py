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
from keras_ser.layers.pooling import FrameMask
from keras_ser.layers.pooling import SegmentStatisticsPooling
from keras_ser.layers.pooling import StatisticsPooling
from keras_ser.layers.sru import SRU
from keras_ser.layers.standardization import ChannelStandardization
from keras_ser.zoo import SERTask
from keras_ser.zoo import _check_dropout
from keras_ser.zoo import _check_num_classes
from keras_ser.zoo import _check_positive_int
from keras_ser.zoo import _check_segments
from keras_ser.zoo import _float32_if_mixed
from keras_ser.zoo import _resolve_class_names
from tf_pipeline.config import MelFramesConfig


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


class EncoderTask(SERTask):
    """Base of the zoo entries on a speech encoder: the features / head split.

    Subclasses name their pooled-feature layer `"pooled"` and list the
    layers after it, in order, in `HEAD_LAYERS`.
    """

    FEATURE_CONFIG_CLASS = MelFramesConfig
    INPUT_LAYOUT = "mel_frames"
    HEAD_LAYERS = ()

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

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("encoder"), dict):
            config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return super().from_config(config)


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

        # === Layers ===
        frame_mask = FrameMask(name="frame_mask")
        pools = [StatisticsPooling(dtype=dtype, name=f"pool_{output}") for output in encoder.sequence_outputs]
        concatenate = keras.layers.Concatenate(axis=-1, dtype=dtype, name="pooled")
        standardize = ChannelStandardization(dtype=_float32_if_mixed(dtype), name="standardize")
        drop = keras.layers.Dropout(dropout, dtype=dtype, name="dropout")
        predictions = keras.layers.Dense(
            num_classes, activation="softmax", dtype=_float32_if_mixed(dtype), name="predictions"
        )

        # === Functional graph ===
        mel_frames = keras.Input(shape=(None, encoder.n_mels), name="mel_frames")
        mask = frame_mask(mel_frames)
        sequences = encoder(mel_frames)
        x = concatenate([pool([sequences[output], mask]) for pool, output in zip(pools, encoder.sequence_outputs)])
        x = standardize(x)
        x = drop(x)
        outputs = predictions(x)
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
