"""Mel power frames for pretrained speech encoders, in TensorFlow ops.

The speaker encoder of `keras_ser.backbones.SpeakerEncoder` (a GE2E network
trained on 40-band Mel *power* frames, not log) reads what this module
computes: 16 kHz audio, a 25 ms periodic Hann window every 10 ms, frames
centred on their sample (`center=True`, the signal padded with zeros by half
a window at each end), power spectrum, Slaney Mel filterbank. The values
equal `librosa.feature.melspectrogram(y, sr=16000, n_fft=400,
hop_length=160, n_mels=40).T` (librosa's defaults otherwise), which is what
the encoder's original package computes.

Before the spectrum, the speech front end runs when the config holds one
(`MelFramesConfig.front_end`: leading and trailing silence trimmed, level
normalised; `tf_pipeline.front_end`), and the waveform can be brought up to
a target loudness (`MelFramesConfig.volume_dbfs`, increase only), as the
original package does. The package also removes long pauses *inside* an
utterance with a WebRTC voice activity detector; the front end keeps
those (the difference and its measured effect are in
`docs/speech_encoder.md`).

Batches of different lengths are padded with `PAD_VALUE` (-1, a value a
power spectrum never takes), which the encoder masks; real frames of
digital silence (all zeros) stay real frames.

Every function runs eagerly, inside `tf.function`, tf.data and an exported
SavedModel.
"""

import functools

import numpy as np
import tensorflow as tf

from tf_pipeline.config import MelFramesConfig
from tf_pipeline.features import _assert_finite
from tf_pipeline.features import _check_waveform
from tf_pipeline.features import _mel_filterbank_np
from tf_pipeline.front_end import apply_front_end
from tf_pipeline.front_end import normalize_level

# Value of the padded frames of a batch: a power spectrum is never negative.
PAD_VALUE = -1.0


def _config(config):
    return MelFramesConfig.from_dict(config) if config is not None else MelFramesConfig()


@functools.lru_cache(maxsize=8)
def _hann_window_np(n_fft):
    # Periodic Hann (scipy.signal.get_window("hann", n_fft, fftbins=True)).
    n = np.arange(n_fft)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)).astype(np.float32)


def check_rows(waveforms, num_samples, config, what, needed_for=None, reject_silence=True):
    """Asserts: long enough, finite, and (`reject_silence`) not digital silence (eager: ValueError).

    Shared by the encoders' front ends. `needed_for` ends the too-short
    message (default: one `config.n_fft`-sample frame).
    """
    needed = config.min_samples
    needed_for = needed_for or f"for one {config.n_fft}-sample frame"
    short = (
        f"{what} is too short: at least {needed} samples ({needed / config.sample_rate * 1000:.1f} ms at "
        f"{config.sample_rate} Hz) are needed {needed_for}. Received samples:"
    )
    silent = f"{what} is silent (every sample is 0); expected speech"
    mask = tf.sequence_mask(num_samples, tf.shape(waveforms)[1])
    loudest = tf.reduce_max(tf.where(mask, tf.abs(waveforms), 0.0), axis=1)
    shortest = tf.reduce_min(num_samples)
    if tf.executing_eagerly():
        if int(shortest) < needed:
            raise ValueError(f"{short} {int(shortest)}")
        checks = _assert_finite(waveforms, what)
        if reject_silence and not bool(tf.reduce_all(loudest > 0)):
            raise ValueError(silent)
        return checks
    checks = [tf.debugging.assert_greater_equal(shortest, needed, message=short), *_assert_finite(waveforms, what)]
    if reject_silence:
        checks.append(tf.debugging.Assert(tf.reduce_all(loudest > 0), [silent]))
    return checks


def centred_power_spectrum(waveforms, n_fft, hop_length):
    """`|rfft|^2` of periodic-Hann frames centred on every `hop_length`-th sample: `[B, S] -> [B, T, n_fft // 2 + 1]`.

    The signal is padded with zeros by half a window at each end (librosa's
    `center=True`); `T = 1 + S // hop_length`.
    """
    half = n_fft // 2
    padded = tf.pad(waveforms, [[0, 0], [half, half]])
    framed = tf.signal.frame(padded, n_fft, hop_length, pad_end=False)
    spectrum = tf.signal.rfft(framed * tf.constant(_hann_window_np(n_fft)), fft_length=[n_fft])
    return tf.square(tf.math.real(spectrum)) + tf.square(tf.math.imag(spectrum))


def batch_mel_frames(waveforms, num_samples, config=None):
    """Mel power frames of zero-padded waveforms of different lengths.

    Args:
        waveforms: float32 `[batch, max_samples]` in [-1, 1] at
            `config.sample_rate`, each row padded after its true length.
        num_samples: int `[batch]`, the true length of each row.
        config: `MelFramesConfig` or its dict. Defaults to the encoder's
            settings.

    Returns:
        `(frames, num_frames)`: float32 `[batch, max_frames, n_mels]`, rows
        past their own `num_frames` filled with `PAD_VALUE`, and int32
        `[batch]`. Row `i` cut to `num_frames[i]` equals
        `mel_frames(waveforms[i, :num_samples[i]])`.

    Raises:
        ValueError (eagerly) or InvalidArgumentError (in a graph): a row
        shorter than `config.min_samples`, NaN or Inf samples, or a row of
        digital silence.

    Example:

    >>> x = tf.random.uniform([2, 16000], -0.1, 0.1)
    >>> frames, count = batch_mel_frames(x, [16000, 8000])
    >>> frames.shape, count.numpy().tolist()
    (TensorShape([2, 101, 40]), [101, 51])
    """
    config = _config(config)
    waveforms = _check_waveform(waveforms, "waveforms")
    if waveforms.shape.rank is not None and waveforms.shape.rank != 2:
        raise ValueError(f"`waveforms` must have shape [batch, samples]. Received shape: {waveforms.shape}")
    num_samples = tf.cast(num_samples, tf.int32)
    max_samples = tf.shape(waveforms)[1]
    # Samples past each row's length must read as the zero padding of `center=True`.
    waveforms = waveforms * tf.sequence_mask(num_samples, max_samples, dtype=tf.float32)
    checks = check_rows(waveforms, num_samples, config, "every waveform of the batch")
    with tf.control_dependencies(checks):
        waveforms = tf.identity(waveforms)
    waveforms, num_samples = apply_front_end(waveforms, num_samples, config.front_end, config.sample_rate,
                                             config.min_samples)
    if config.volume_dbfs is not None:
        waveforms = normalize_level(waveforms, num_samples, config.volume_dbfs, increase_only=True)
    power = centred_power_spectrum(waveforms, config.n_fft, config.hop_length)
    filterbank = _mel_filterbank_np(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax)
    mel = tf.tensordot(power, tf.constant(filterbank), axes=1)
    num_frames = 1 + num_samples // config.hop_length
    # The batch may be wider than its longest row: drop the frames past every row.
    max_frames = tf.reduce_max(num_frames)
    mel = mel[:, :max_frames]
    valid = tf.sequence_mask(num_frames, tf.shape(mel)[1])[:, :, None]
    return tf.where(valid, mel, PAD_VALUE), num_frames


def mel_frames(waveform, config=None):
    """Mel power frames of one mono waveform: `[samples] -> [frames, n_mels]`.

    Equals `librosa.feature.melspectrogram(y=waveform, sr=16000, n_fft=400,
    hop_length=160, n_mels=40).T` for the default config (after the optional
    volume normalisation). Frames = `1 + samples // hop_length`.

    Args:
        waveform: float tensor `[samples]` in [-1, 1] at `config.sample_rate`.
        config: `MelFramesConfig` or its dict.

    Returns:
        float32 tensor `[frames, n_mels]`.

    Raises:
        ValueError (eagerly) or InvalidArgumentError (in a graph): fewer than
        `config.min_samples` samples, NaN or Inf samples, or digital silence.

    Example:

    >>> mel_frames(tf.random.uniform([16000], -0.1, 0.1)).shape
    TensorShape([101, 40])
    """
    waveform = _check_waveform(waveform)
    if waveform.shape.rank is not None and waveform.shape.rank != 1:
        raise ValueError(f"`waveform` must be a mono signal of shape [samples]. Received shape: {waveform.shape}")
    frames, _ = batch_mel_frames(waveform[None], tf.shape(waveform)[:1], config)
    return frames[0]


def pad_mel_frames(sequences):
    """Stacks `[frames_i, n_mels]` arrays into one `PAD_VALUE`-padded numpy batch.

    Example:

    >>> pad_mel_frames([np.ones((2, 40)), np.ones((3, 40))])[0, :, 0].tolist()
    [1.0, 1.0, -1.0]
    """
    longest = max(len(s) for s in sequences)
    n_mels = sequences[0].shape[-1]
    batch = np.full((len(sequences), longest, n_mels), PAD_VALUE, np.float32)
    for row, sequence in enumerate(sequences):
        batch[row, : len(sequence)] = sequence
    return batch
