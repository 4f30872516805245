"""The GE2E speaker encoder: a pretrained speech backbone of three LSTM layers.

The network of Wan et al.'s generalised end-to-end (GE2E) speaker
verification, as trained and released (Apache-2.0) in the `resemblyzer`
package: three LSTM layers of 256 units over 40-band Mel power frames
(`keras_ser.models.speech_encoders.mel_power`), then a linear projection to 256 values, a ReLU
and L2 normalisation of the last LSTM state: the speaker embedding.

For emotion recognition the useful part is the frame sequence of each LSTM
layer (its statistics over time carry prosody and voice quality); the
embedding itself is tuned to ignore everything but the speaker. The Keras
model returns all four.

Weights: `keras_ser.weights.load_speaker_encoder` (a converted copy of the
package's `pretrained.pt` ships with keras-ser; torch is needed only to
convert a checkpoint of one's own).
"""

import keras

from keras_ser.layers.pooling import PAD_VALUE
from keras_ser.rebuilt_model import RebuiltModel

SEQUENCE_OUTPUTS = ("lstm_1", "lstm_2", "lstm_3")


@keras.saving.register_keras_serializable(package="keras_ser")
class SpeakerEncoder(RebuiltModel):
    """GE2E speaker encoder: `mel_frames` -> LSTM frame sequences and the speaker embedding.

    Input `mel_frames`: `[batch, time, n_mels]` float32 Mel power frames
    (not log; `keras_ser.models.speech_encoders.mel_power.batch_mel_frames`), padded frames
    filled with `-1.0` (masked: the LSTMs skip them and the final state is
    that of each row's last real frame).

    Outputs, a dict: `"lstm_1"`, `"lstm_2"`, `"lstm_3"`, each `[batch, time,
    units]` (the frame outputs of each LSTM layer; padded frames hold
    unspecified values), and `"embedding"` `[batch, embedding_dim]`
    (`relu(projection(last state of lstm_3))`, L2-normalised).

    Args:
        n_mels: int. Mel bands of the input. Defaults to `40`.
        units: int. Width of each LSTM layer. Defaults to `256`.
        num_layers: int. LSTM layers. Defaults to `3`.
        embedding_dim: int. Width of the projection. Defaults to `256`.
        dtype: dtype or dtype policy. Defaults to `None`.
        name: str. Defaults to `"speaker_encoder"`.

    Example:

    >>> import numpy as np
    >>> encoder = SpeakerEncoder(units=8, embedding_dim=4)
    >>> outputs = encoder(np.random.rand(2, 50, 40).astype("float32"))
    >>> tuple(outputs["lstm_3"].shape), tuple(outputs["embedding"].shape)
    ((2, 50, 8), (2, 4))
    """

    def __init__(self, n_mels=40, units=256, num_layers=3, embedding_dim=256, dtype=None,
                 name="speaker_encoder", **kwargs):
        for arg, value in (("n_mels", n_mels), ("units", units), ("num_layers", num_layers),
                           ("embedding_dim", embedding_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} must be a positive integer. Received: {arg}={value!r}")

        # === Layers ===
        masking = keras.layers.Masking(mask_value=PAD_VALUE, dtype=dtype, name="mask")
        lstms = [
            keras.layers.LSTM(units, return_sequences=True, return_state=(i == num_layers - 1),
                              dtype=dtype, name=f"lstm_{i + 1}")
            for i in range(num_layers)
        ]
        projection = keras.layers.Dense(embedding_dim, activation="relu", dtype=dtype, name="projection")
        normalize = keras.layers.UnitNormalization(axis=-1, dtype=dtype, name="embedding")

        # === Functional graph ===
        mel_frames = keras.Input(shape=(None, n_mels), name="mel_frames")
        x = masking(mel_frames)
        outputs = {}
        for lstm in lstms[:-1]:
            x = lstm(x)
            outputs[lstm.name] = x
        x, last_state, _ = lstms[-1](x)
        outputs[lstms[-1].name] = x
        outputs["embedding"] = normalize(projection(last_state))
        super().__init__(inputs=mel_frames, outputs=outputs, dtype=dtype, name=name, **kwargs)

        # === Config ===
        self.n_mels = n_mels
        self.units = units
        self.num_layers = num_layers
        self.embedding_dim = embedding_dim

    @property
    def sequence_outputs(self):
        """Names of the frame-sequence outputs, bottom layer first."""
        return tuple(f"lstm_{i + 1}" for i in range(self.num_layers))

    def get_config(self):
        return {
            "n_mels": self.n_mels,
            "units": self.units,
            "num_layers": self.num_layers,
            "embedding_dim": self.embedding_dim,
            **self.base_config(),
        }


def speaker_encoder(weights=None, **kwargs):
    """A `SpeakerEncoder`, with weights loaded when asked.

    Args:
        weights: None (random), `"resemblyzer"` (the pretrained GE2E weights
            that ship with keras-ser, converted from the `resemblyzer`
            package), or a path: a `.npz` written by
            `keras_ser.weights.speaker_encoder.save_converted` or a
            resemblyzer-format `.pt` checkpoint (needs torch).
        **kwargs: `SpeakerEncoder` arguments.

    Example:

    >>> encoder = speaker_encoder("resemblyzer")
    >>> encoder.count_params()
    1420544
    """
    encoder = SpeakerEncoder(**kwargs)
    if weights is not None:
        from keras_ser.weights.speaker_encoder import load_speaker_encoder

        load_speaker_encoder(encoder, weights)
    return encoder
