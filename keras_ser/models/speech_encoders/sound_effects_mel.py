"""Log-Mel input of the sound-effects encoder, in TensorFlow ops.

`keras_ser.backbones.SoundEffectsEncoder` (a CNN trained on sound-effects
libraries at 44.1 kHz) reads 96 HTK Mel bands of 2048-sample Hann frames
every 1024 samples, of audio peak-normalised to 1, compressed as
`log10(10000 * power + 1)` and divided by 9.4578 (the largest value of its
training spectrograms).

Speech corpora are 16 kHz, so this module computes the same quantity at the
corpus rate instead of resampling to 44.1 kHz: frames of the same duration
(46.4 ms: 743 samples at 16 kHz) every 23.2 ms (372 samples), the same Mel
filter edges in Hz (bands above the Nyquist frequency stay empty, as they
are for upsampled 16 kHz audio), and the power scaled by `(2048 / n_fft)^2`,
the ratio between the two window lengths' power sums. At 44.1 kHz
(`SoundEffectsMelConfig(sample_rate=44100)`) the settings are exactly the
network's. Frames are centred on their sample (`center=True`, zero padding
by half a window); frames = `1 + samples // hop_length`.

Batches of different lengths are padded with `PAD_VALUE` (-1, a value the
compressed spectrum never takes: it is never negative); the encoder models
mask those frames and show the network zeros there.

With `SoundEffectsMelConfig.front_end`, the speech front end
(`tf_pipeline.front_end`) trims and levels each row first.

Every function runs eagerly, inside `tf.function`, tf.data and an exported
SavedModel.
"""

import functools

import numpy as np
import tensorflow as tf

from keras_ser.models.speech_encoders.config import SoundEffectsMelConfig
from keras_ser.models.speech_encoders.mel_power import centred_power_spectrum
from keras_ser.models.speech_encoders.mel_power import check_rows
from keras_ser.models.speech_encoders.mel_power import masked_batch
from tf_pipeline.features import check_waveform
from tf_pipeline.front_end import apply_front_end

# Value of the padded frames of a batch: log10(10000 * power + 1) is never negative.
PAD_VALUE = -1.0
# Largest value of the network's training spectrograms (its min-max scaling, minimum 0).
SPECTRUM_MAX = 9.457798957824707



def _htk_mel(freqs):
    return 2595.0 * np.log10(1.0 + np.asarray(freqs, np.float64) / 700.0)


def _htk_hz(mels):
    return 700.0 * (10.0 ** (np.asarray(mels, np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=8)
def htk_filterbank(sample_rate, n_fft, n_mels, fmin, fmax):
    """HTK-scale triangular Mel filters, each of unit sum, `[n_fft // 2 + 1, n_mels]`.

    The values of `librosa.filters.mel(sr=sample_rate, n_fft=n_fft,
    n_mels=n_mels, fmin=fmin, fmax=fmax, htk=True, norm=1.0).T`; filters
    above the Nyquist frequency are all zero.

    Example:

    >>> bank = htk_filterbank(16000, 743, 96, 0.0, 22050.0)
    >>> bank.shape, int((bank.sum(axis=0) > 0).sum())
    ((372, 96), 71)
    """
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = _htk_hz(np.linspace(_htk_mel(fmin), _htk_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    sums = weights.sum(axis=1, keepdims=True)
    weights = np.where(sums > np.finfo(np.float32).tiny, weights / np.maximum(sums, 1e-30), weights)
    return weights.T.astype(np.float32)


def batch_sfx_mel(waveforms, num_samples, config=None):
    """The sound-effects encoder's input for zero-padded waveforms of different lengths.

    Each row is divided by its peak absolute sample (digital silence stays
    zero), framed, windowed, and turned into
    `log10(10000 * power_scale * mel_power + 1) / 9.4578`.

    Args:
        waveforms: float32 `[batch, max_samples]` in [-1, 1] at
            `config.sample_rate`, each row padded after its true length.
        num_samples: int `[batch]`, the true length of each row.
        config: `SoundEffectsMelConfig` or its dict.

    Returns:
        `(frames, num_frames)`: float32 `[batch, max_frames, n_mels]`, rows
        past their own `num_frames` filled with `PAD_VALUE`, and int32
        `[batch]`. Row `i` cut to `num_frames[i]` equals
        `sfx_mel(waveforms[i, :num_samples[i]])`.

    Raises:
        ValueError (eagerly) or InvalidArgumentError (in a graph): a row
        shorter than `config.min_samples`, or NaN or Inf samples.

    Example:

    >>> x = tf.random.uniform([2, 16000], -0.1, 0.1)
    >>> frames, count = batch_sfx_mel(x, [16000, 8000])
    >>> frames.shape, count.numpy().tolist()
    (TensorShape([2, 44, 96]), [44, 22])
    """
    config = SoundEffectsMelConfig.coerce(config, "config")
    waveforms, num_samples = masked_batch(waveforms, num_samples)
    checks = check_rows(waveforms, num_samples, config, "every waveform of the batch",
                        needed_for="by the sound-effects encoder", reject_silence=False)
    with tf.control_dependencies(checks):
        waveforms = tf.identity(waveforms)
    waveforms, num_samples = apply_front_end(waveforms, num_samples, config.front_end, config.sample_rate,
                                             config.min_samples)
    peak = tf.reduce_max(tf.abs(waveforms), axis=1, keepdims=True)
    waveforms = waveforms / tf.where(peak > 0, peak, 1.0)
    power = centred_power_spectrum(waveforms, config.n_fft, config.hop_length)
    filterbank = htk_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax)
    mel = tf.tensordot(power, tf.constant(filterbank * np.float32(config.power_scale)), axes=1)
    values = tf.math.log(10000.0 * mel + 1.0) / (np.log(10.0) * SPECTRUM_MAX)
    num_frames = 1 + num_samples // config.hop_length
    max_frames = tf.reduce_max(num_frames)
    values = values[:, :max_frames]
    valid = tf.sequence_mask(num_frames, tf.shape(values)[1])[:, :, None]
    return tf.where(valid, values, PAD_VALUE), num_frames


def sfx_mel(waveform, config=None):
    """The sound-effects encoder's input for one mono waveform: `[samples] -> [frames, n_mels]`.

    Example:

    >>> sfx_mel(tf.random.uniform([16000], -0.1, 0.1)).shape
    TensorShape([44, 96])
    """
    waveform = check_waveform(waveform)
    if waveform.shape.rank is not None and waveform.shape.rank != 1:
        raise ValueError(f"`waveform` must be a mono signal of shape [samples]. Received shape: {waveform.shape}")
    frames, _ = batch_sfx_mel(waveform[None], tf.shape(waveform)[:1], config)
    return frames[0]
