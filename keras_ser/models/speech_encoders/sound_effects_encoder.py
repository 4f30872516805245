"""The aisfx sound-effects encoder: a pretrained audio backbone of four convolution blocks.

The network of Ma & Lerch, "Representation Learning for the Automatic
Indexing of Sound Effects Libraries" (ISMIR 2022), as trained on nine
sound-effects libraries and released in the `aisfx` package (code MIT,
weights CC BY 4.0): the 9-layer CNN of the DCASE 2018 cross-task baseline
(`EmbeddingNet('max', 3, 1, 64)`). Four blocks of two 3x3 convolutions (no
bias), each followed by batch normalisation and a ReLU, with 2x2 max
pooling after the first three blocks; 64, 128, 256 and 512 channels. Its
input is a normalised log-Mel spectrogram (96 bands at 44.1 kHz, hop 1024);
its embedding is the mean over frequency of the last block, then the
maximum over time (512 values).

For emotion recognition the useful parts are the frame sequences of each
block (averaged over frequency, as the package does for the last one); the
Keras model returns all four and the embedding.

Weights: `keras_ser.weights.sound_effects_encoder.load_sound_effects_encoder`
(a converted copy of the package's `models/checkpoint.pth` ships with
keras-ser; torch is needed only to convert a checkpoint of one's own).
"""

import keras

from keras_ser.layers.pooling import DownsampleMask
from keras_ser.layers.pooling import FillPadding
from keras_ser.layers.pooling import FrameMask
from keras_ser.layers.pooling import PAD_VALUE
from keras_ser.rebuilt_model import RebuiltModel

NUM_BLOCKS = 4
# Time (and frequency) pooling after each block: the package pools 2x2, 2x2, 2x2, then 1x1 (none).
POOLS = (2, 2, 2, 1)
BATCH_NORM_EPSILON = 1e-5  # torch.nn.BatchNorm2d's


@keras.saving.register_keras_serializable(package="keras_ser")
class SoundEffectsEncoder(RebuiltModel):
    """aisfx sound-effects CNN: `sfx_mel` -> per-block frame sequences and the clip embedding.

    Ma & Lerch, "Representation Learning for the Automatic Indexing of Sound
    Effects Libraries", ISMIR 2022 (the `aisfx` package's `EmbeddingNet`).

    Input `sfx_mel`: `[batch, time, n_mels]` float32, the network's
    normalised log-Mel frames, time first: `log10(1 + 1e4 * mel_power) /
    9.4578` of peak-normalised 44.1 kHz audio (`aisfx.spectrogram` +
    `aisfx.preprocessing.spectrogram_normalize`, transposed;
    `keras_ser.models.speech_encoders.sound_effects_mel.batch_sfx_mel`). Padded frames of a batch hold `-1.0`
    (`PAD_VALUE`, a value the input never takes): they are masked, and
    every row's outputs equal those of the row alone (past a row's end all
    activations are 0, as the zero padding of a convolution is at the end
    of a single utterance; the padded frames of the outputs hold 0). At
    least 8 frames per row: block 3 pools time by 8.

    Outputs, a dict: `"block_1"` .. `"block_4"`, each `[batch, time_k,
    channels_k]`: a block's output (after its pooling) averaged over the
    frequency axis, with `time_k = time // 2, // 4, // 8, // 8` (pooling
    floors, as torch's does) and `channels_k = filters * 1, 2, 4, 8`; and
    `"embedding"` `[batch, 8 * filters]`, the maximum over time of
    `"block_4"` (the package's embedding).

    Batch normalisation uses the moving statistics (inference) unless the
    model is called with `training=True`; its epsilon is torch's, `1e-5`.

    Args:
        n_mels: int. Mel bands of the input, at least 8. Defaults to `96`
            (the pretrained weights' value; the convolutions accept any).
        filters: int. Channels of the first block, doubled by each next
            block. Defaults to `64`.
        dtype: dtype or dtype policy. Defaults to `None`.
        name: str. Defaults to `"sound_effects_encoder"`.

    Example:

    >>> import numpy as np
    >>> encoder = SoundEffectsEncoder(n_mels=16, filters=4)
    >>> outputs = encoder(np.random.rand(2, 37, 16).astype("float32"))
    >>> [tuple(outputs[name].shape) for name in encoder.sequence_outputs]
    [(2, 18, 4), (2, 9, 8), (2, 4, 16), (2, 4, 32)]
    >>> tuple(outputs["embedding"].shape)
    (2, 32)
    """

    def __init__(self, n_mels=96, filters=64, dtype=None, name="sound_effects_encoder", **kwargs):
        if isinstance(n_mels, bool) or not isinstance(n_mels, int) or n_mels < 8:
            raise ValueError(
                f"n_mels must be an integer of at least 8 (three 2x2 poolings). Received: n_mels={n_mels!r}"
            )
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise ValueError(f"filters must be a positive integer. Received: filters={filters!r}")

        # === Layers ===
        add_channel = keras.layers.Reshape((-1, n_mels, 1), dtype=dtype, name="add_channel")
        blocks = []
        width = n_mels
        for k in range(NUM_BLOCKS):
            prefix = f"block_{k + 1}"
            layers = []
            for j in (1, 2):
                layers += [
                    keras.layers.Conv2D(filters * 2**k, 3, padding="same", use_bias=False, dtype=dtype,
                                        name=f"{prefix}_conv_{j}"),
                    keras.layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, momentum=0.9, dtype=dtype,
                                                    name=f"{prefix}_bn_{j}"),
                    keras.layers.ReLU(dtype=dtype, name=f"{prefix}_relu_{j}"),
                ]
            if POOLS[k] > 1:
                layers.append(keras.layers.MaxPooling2D(POOLS[k], dtype=dtype, name=f"{prefix}_pool"))
                width //= POOLS[k]
            # The mean over the (static) frequency width, then [batch, time_k, 1, c] -> [batch, time_k, c].
            frequency_mean = keras.layers.AveragePooling2D((1, width), dtype=dtype, name=f"{prefix}_frequency_mean")
            to_sequence = keras.layers.Reshape((-1, filters * 2**k), dtype=dtype, name=prefix)
            blocks.append((layers, frequency_mean, to_sequence))
        time_max = keras.layers.GlobalMaxPooling1D(dtype=dtype, name="embedding")

        # Padding: each row is computed as if alone. Past a row's end every
        # activation is set to 0, the value a zero-padded convolution sees there.
        frame_mask = FrameMask(PAD_VALUE, name="frame_mask")
        strides = [1]
        for pool in POOLS:
            strides.append(strides[-1] * pool)
        masks = {stride: DownsampleMask(stride, name=f"mask_{stride}") for stride in sorted(set(strides))}

        # === Functional graph ===
        sfx_mel = keras.Input(shape=(None, n_mels), name="sfx_mel")
        mask = frame_mask(sfx_mel)
        x = add_channel(FillPadding(0.0, name="fill_padding")([sfx_mel, mask]))
        outputs = {}
        for k, (layers, frequency_mean, to_sequence) in enumerate(blocks):
            for layer in layers:
                x = layer(x)
                if isinstance(layer, (keras.layers.ReLU, keras.layers.MaxPooling2D)):
                    stride = strides[k + 1] if isinstance(layer, keras.layers.MaxPooling2D) else strides[k]
                    x = FillPadding(0.0, name=f"{layer.name}_fill")([x, masks[stride](mask)])
            outputs[to_sequence.name] = to_sequence(frequency_mean(x))
        outputs["embedding"] = time_max(outputs[f"block_{NUM_BLOCKS}"])
        super().__init__(inputs=sfx_mel, outputs=outputs, dtype=dtype, name=name, **kwargs)

        # === Config ===
        self.n_mels = n_mels
        self.filters = filters

    @property
    def sequence_outputs(self):
        """Names of the frame-sequence outputs, bottom block first."""
        return tuple(f"block_{k + 1}" for k in range(NUM_BLOCKS))

    @property
    def time_strides(self):
        """Input frames per frame of each sequence output: `(2, 4, 8, 8)`."""
        strides, stride = [], 1
        for pool in POOLS:
            stride *= pool
            strides.append(stride)
        return tuple(strides)

    def get_config(self):
        return {
            "n_mels": self.n_mels,
            "filters": self.filters,
            **self.base_config(),
        }


def sound_effects_encoder(weights=None, **kwargs):
    """A `SoundEffectsEncoder`, with weights loaded when asked.

    Args:
        weights: None (random), `"aisfx"` (the pretrained weights that ship
            with keras-ser, converted from the `aisfx` 0.1.2 package; CC BY
            4.0, see `NOTICE`), or a path: a `.npz` written by
            `keras_ser.weights.sound_effects_encoder.save_converted` or an
            aisfx-format `.pth` checkpoint (needs torch).
        **kwargs: `SoundEffectsEncoder` arguments.

    Example:

    >>> encoder = sound_effects_encoder("aisfx")
    >>> encoder.count_params()
    4689984
    """
    encoder = SoundEffectsEncoder(**kwargs)
    if weights is not None:
        from keras_ser.weights.sound_effects_encoder import load_sound_effects_encoder

        load_sound_effects_encoder(encoder, weights)
    return encoder
