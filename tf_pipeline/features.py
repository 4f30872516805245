"""Log-Mel, delta and delta-delta features in TensorFlow ops.

Every function here runs eagerly, inside `tf.function`, inside tf.data and
inside an exported SavedModel: the constants (window, Mel filterbank) are
built once per config with numpy and embedded as graph constants. The delta
channels and frame sequences are the shared arithmetic of
`tf_pipeline.array_math` in TensorFlow ops. With `FeatureConfig.front_end`,
the speech front end (`tf_pipeline.front_end`) trims and levels the
waveform first.
"""

import functools

import numpy as np
import tensorflow as tf

from tf_pipeline import array_math
from tf_pipeline.config import MAX_SEGMENTS
from tf_pipeline.config import FeatureConfig
from tf_pipeline.front_end import apply_front_end
from tf_pipeline.tf_namespace import TF


def _hz_to_mel(freqs):
    """Slaney Mel scale (librosa's default, `htk=False`)."""
    freqs = np.asanyarray(freqs, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = freqs / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = freqs >= min_log_hz
    mels = np.where(log_t, min_log_mel + np.log(np.maximum(freqs, min_log_hz) / min_log_hz) / logstep, mels)
    return mels


def _mel_to_hz(mels):
    mels = np.asanyarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = mels >= min_log_mel
    return np.where(log_t, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


@functools.lru_cache(maxsize=16)
def slaney_filterbank(sample_rate, n_fft, n_mels, fmin, fmax):
    """Slaney-scale Mel filters of unit area in Hz, numpy `[n_fft // 2 + 1, n_mels]` (cached; `mel_filterbank` by settings).

    Shared by the log-Mel image and the model families' own front ends
    (e.g. the speech encoders' Mel power frames).
    """
    fft_freqs = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    mel_points = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    # Slaney area normalisation: each filter has unit area in Hz.
    weights *= (2.0 / (mel_points[2 : n_mels + 2] - mel_points[:n_mels]))[:, None]
    return weights.T.astype(np.float32)  # [n_fft // 2 + 1, n_mels]


def mel_filterbank(config=None):
    """The Mel filterbank as a numpy array of shape `[n_fft // 2 + 1, n_mels]`.

    Same values as `librosa.filters.mel(sr, n_fft, n_mels=..., fmin=...,
    fmax=...).T` (Slaney scale, Slaney area normalisation), computed without
    librosa.

    Example:

    >>> mel_filterbank(FeatureConfig()).shape
    (257, 60)
    """
    config = FeatureConfig.coerce(config, "config")
    return slaney_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax)


@functools.lru_cache(maxsize=16)
def _frame_window_np(win_length, n_fft):
    # Periodic Hamming (scipy.signal.get_window("hamming", N, fftbins=True)),
    # zero-padded to n_fft and centred, as librosa does.
    n = np.arange(win_length)
    window = 0.54 - 0.46 * np.cos(2.0 * np.pi * n / win_length)
    left = (n_fft - win_length) // 2
    padded = np.zeros(n_fft, dtype=np.float64)
    padded[left : left + win_length] = window
    return padded.astype(np.float32)


def check_waveform(waveform, name="waveform"):
    """`waveform` as a float32 tensor (floats are cast); a ValueError names any other dtype."""
    waveform = tf.convert_to_tensor(waveform)
    if waveform.dtype != tf.float32:
        if waveform.dtype.is_floating:
            waveform = tf.cast(waveform, tf.float32)
        else:
            raise ValueError(
                f"`{name}` must be a float waveform with samples in [-1, 1]. "
                f"Received dtype: {waveform.dtype.name}"
            )
    return waveform


def _assert_frames(num_samples, config, n_frames=1, what="waveform"):
    """Raises a clear error (eager: ValueError; graph: InvalidArgumentError)."""
    needed = config.min_samples(n_frames)
    message = (
        f"{what} is too short: at least {needed} samples "
        f"({needed / config.sample_rate * 1000:.1f} ms at {config.sample_rate} Hz) are needed "
        f"for {n_frames} frame(s) of {config.n_fft} samples every {config.hop_length}. Received samples:"
    )
    if isinstance(num_samples, int) or (tf.is_tensor(num_samples) and tf.executing_eagerly()):
        value = int(num_samples)
        if value < needed:
            raise ValueError(f"{message} {value}")
        return []
    return [tf.debugging.assert_greater_equal(tf.cast(num_samples, tf.int32), needed, message=message)]


def assert_finite(waveform, what="waveform"):
    """Raises ValueError eagerly, or returns graph assertions, when `waveform` holds NaN or Inf samples."""
    message = f"{what} contains NaN or Inf samples; expected finite samples in [-1, 1]"
    if tf.executing_eagerly():
        if not bool(tf.reduce_all(tf.math.is_finite(waveform))):
            raise ValueError(message)
        return []
    return [tf.debugging.assert_all_finite(waveform, message)]


def _power_mel(frames, config):
    """[..., frames, n_fft] framed signal -> [..., frames, n_mels] Mel power."""
    window = tf.constant(_frame_window_np(config.win_length, config.n_fft))
    spectrum = tf.signal.rfft(frames * window, fft_length=[config.n_fft])
    # (re, im) pairs without a copy; squaring them and a filterbank with every row
    # repeated sums re^2 + im^2 inside the matmul.
    pairs = tf.bitcast(spectrum, tf.float32)  # [..., bins, 2]
    bins = config.n_fft // 2 + 1
    squares = tf.reshape(tf.square(pairs), tf.concat([tf.shape(spectrum)[:-1], [2 * bins]], 0))
    return tf.tensordot(squares, tf.constant(_paired_filterbank(config)), axes=1)


def _paired_filterbank(config):
    return np.repeat(mel_filterbank(config), 2, axis=0)


def log_mel(waveform, config=None):
    """Log-Mel spectrogram of a mono waveform: `[samples] -> [frames, n_mels]`.

    `waveform` is float32 in [-1, 1] at `config.sample_rate`. Framing follows
    librosa with `center=False` (see `FeatureConfig`): the result equals
    `log(librosa.feature.melspectrogram(y, sr=16000, n_fft=512, win_length=400,
    hop_length=160, window="hamming", center=False, power=2.0, n_mels=60,
    fmin=0, fmax=8000) + 1e-6).T` for the default config. Frames =
    `1 + (samples - n_fft) // hop_length`; fewer than `n_fft` samples is an
    error (`ValueError` eagerly, `InvalidArgumentError` in a graph), as are
    NaN or Inf samples.

    Args:
        waveform: float tensor of shape `[samples]`.
        config: `FeatureConfig` or its dict; defaults to the paper's settings.

    Returns:
        float32 tensor of shape `[frames, n_mels]`.

    Example:

    >>> x = tf.random.uniform([16000], -0.1, 0.1)
    >>> log_mel(x).shape
    TensorShape([97, 60])
    """
    config = FeatureConfig.coerce(config, "config")
    waveform = check_waveform(waveform)
    if waveform.shape.rank is not None and waveform.shape.rank != 1:
        raise ValueError(
            f"`waveform` must be a mono signal of shape [samples]. Received shape: {waveform.shape}"
        )
    if config.front_end is not None:
        mel, num_frames = _batch_log_mel(waveform[None], tf.shape(waveform)[:1], config)
        return mel[0, : num_frames[0]]
    checks = _assert_frames(tf.shape(waveform)[0], config) + assert_finite(waveform)
    with tf.control_dependencies(checks):
        frames = tf.signal.frame(waveform, config.n_fft, config.hop_length, pad_end=False)
    return tf.math.log(_power_mel(frames, config) + config.log_floor)


def deltas(x, n=2, axis=0):
    """Regression deltas along `axis` (frames), HTK formula, edges replicated.

    `d_t = sum_{k=1..n} k * (x_{t+k} - x_{t-k}) / (2 * sum_{k=1..n} k^2)`,
    where frames beyond either end repeat the edge frame. Equals
    `librosa.feature.delta(x, width=2 * n + 1, mode="nearest", axis=...)`.
    The arithmetic is `tf_pipeline.array_math.deltas`, shared with the numpy
    path of the GPU machines.

    Args:
        x: float tensor, e.g. `[frames, n_mels]`.
        n: int. Half-width of the regression window. Defaults to `2`.
        axis: int. The frame axis. Defaults to `0`.

    Returns:
        A tensor of the shape of `x`.

    Example:

    >>> deltas(tf.constant([[0.0], [1.0], [2.0], [3.0]]))[:, 0].numpy()
    array([0.5, 0.8, 0.8, 0.5], dtype=float32)
    """
    return array_math.deltas(TF, tf.convert_to_tensor(x), n, axis)


def feature_image(waveform, config=None):
    """The 3-channel feature image of the paper: `[samples] -> [n_mels, frames, 3]`.

    Channels are the log-Mel spectrogram, its delta and the delta of the delta
    (`deltas` applied twice). Row 0 is the lowest Mel band; columns are
    frames in time order. Values are raw (not standardised): models built
    by `keras_ser.build_model` standardise per channel in their first layer.

    Args:
        waveform: float tensor `[samples]` in [-1, 1] at `config.sample_rate`.
        config: `FeatureConfig` or its dict.

    Returns:
        float32 tensor of shape `[n_mels, frames, 3]`.

    Example:

    >>> feature_image(tf.zeros([16000])).shape
    TensorShape([60, 97, 3])
    """
    config = FeatureConfig.coerce(config, "config")
    return array_math.image_from_log_mel(TF, log_mel(waveform, config), config.delta_width)


def _batch_mask(num_frames, max_frames):
    return tf.sequence_mask(num_frames, max_frames, dtype=tf.float32)


def batch_log_mel(waveforms, num_samples, config=None):
    """Batched `log_mel` for zero-padded waveforms of different lengths.

    Args:
        waveforms: float32 `[batch, max_samples]`, each row padded after its
            true length.
        num_samples: int `[batch]`, the true length of each row.
        config: `FeatureConfig` or its dict.

    Returns:
        `(log_mel, num_frames)`: float32 `[batch, max_frames, n_mels]` where
        frames past a row's `num_frames` are zero, and int32 `[batch]`. Row
        `i` equals `log_mel(waveforms[i, :num_samples[i]])` on its valid
        frames.
    """
    config = FeatureConfig.coerce(config, "config")
    mel, num_frames = _batch_log_mel(waveforms, num_samples, config)
    return mel * _batch_mask(num_frames, tf.shape(mel)[1])[:, :, None], num_frames


def _batch_log_mel(waveforms, num_samples, config):
    """`batch_log_mel` without zeroing the frames past each row's end."""
    waveforms = check_waveform(waveforms, "waveforms")
    num_samples = tf.cast(num_samples, tf.int32)
    checks = _assert_frames(tf.reduce_min(num_samples), config, what="every waveform of the batch")
    checks += assert_finite(waveforms, "waveforms")
    max_samples = tf.shape(waveforms)[1]
    # Samples past each row's length must not leak into its frames: zero them.
    waveforms = waveforms * tf.sequence_mask(num_samples, max_samples, dtype=tf.float32)
    with tf.control_dependencies(checks):
        waveforms = tf.identity(waveforms)
    if config.front_end is not None:
        # At least the frames of the most segments a model cuts.
        waveforms, num_samples = apply_front_end(waveforms, num_samples, config.front_end, config.sample_rate,
                                                 config.min_samples(MAX_SEGMENTS))
    frames = tf.signal.frame(waveforms, config.n_fft, config.hop_length, pad_end=False)
    num_frames = 1 + (num_samples - config.n_fft) // config.hop_length
    return tf.math.log(_power_mel(frames, config) + config.log_floor), num_frames


def batch_feature_image(waveforms, num_samples, config=None):
    """Batched `feature_image` for zero-padded waveforms of different lengths.

    Args:
        waveforms: float32 `[batch, max_samples]`.
        num_samples: int `[batch]`, the true length of each row.
        config: `FeatureConfig` or its dict.

    Returns:
        `(images, num_frames)`: float32 `[batch, n_mels, max_frames, 3]`
        (zero past each row's frames) and int32 `[batch]`. Row `i`, cut to
        `num_frames[i]` columns, equals
        `feature_image(waveforms[i, :num_samples[i]])`.

    Example:

    >>> images, frames = batch_feature_image(tf.zeros([2, 16000]), [16000, 8000])
    >>> images.shape, frames.numpy().tolist()
    (TensorShape([2, 60, 97, 3]), [97, 47])
    """
    config = FeatureConfig.coerce(config, "config")
    mel, num_frames = _batch_log_mel(waveforms, num_samples, config)
    d1 = array_math.batch_deltas(TF, mel, num_frames, config.delta_width)
    d2 = array_math.batch_deltas(TF, d1, num_frames, config.delta_width)
    mask = _batch_mask(num_frames, tf.shape(mel)[1])[:, :, None, None]
    images = tf.stack([mel, d1, d2], axis=-1) * mask  # [batch, frames, n_mels, 3]
    return tf.transpose(images, [0, 2, 1, 3]), num_frames


def batch_frame_sequence(images):
    """Feature images as frame sequences: `[B, n_mels, T, C] -> [B, T, C * n_mels]`.

    The input of the frame-level `sru` model: each frame is the log-Mel
    vector, then its delta, then its delta-delta (channel-major). Padded
    frames stay zero.

    Example:

    >>> batch_frame_sequence(tf.zeros([2, 60, 97, 3])).shape
    TensorShape([2, 97, 180])
    """
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4:
        raise ValueError(f"`images` must have shape [batch, n_mels, frames, channels]. Received shape: {images.shape}")
    return array_math.frame_sequence(TF, images)
