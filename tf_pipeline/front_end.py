"""The speech front end: silence trimming and level normalisation, in TensorFlow ops.

Corpora differ in how much silence surrounds each sentence and in how loud
they were recorded; pooled statistics average over silence, and the
pretrained encoders' inputs depend on level. The front end removes both
differences before any feature is computed:

1. **Trimming** (`trim_db`): each row is cut to the stretch from its first
   to its last frame whose mean power is at most `trim_db` below its
   loudest frame. The frames are `frame_ms` long, centred every `hop_ms`
   (zeros outside the signal), exactly as `librosa.effects.trim` frames
   them, so the cut points equal librosa's for the same frame and hop
   lengths. Pauses *inside* the utterance are kept: only the leading and
   trailing silence goes. A cut that would leave fewer than the features'
   `min_samples` is widened to that many samples (never past the row).
2. **Level** (`level_dbfs`): the kept samples are scaled so that their RMS
   is `level_dbfs` dB relative to full scale, up or down. Samples may then
   exceed [-1, 1]; no feature clips them.

Digital silence (a row of zeros) has no speech to find: it is refused with
the features' usual error.

Every feature function of `tf_pipeline` whose config holds a
`FrontEndConfig` (`config.front_end`) calls `apply_front_end` first, so
training datasets, `predict`, timelines, the SavedModel signatures and the
TFLite export all run this same code. Rows of a padded batch are treated
independently: a row in a batch equals the row alone.
"""

import numpy as np
import tensorflow as tf

from tf_pipeline.config import FrontEndConfig  # noqa: F401 - the doctests' config
from tf_pipeline.config import check_front_end

# Floor of a frame's mean power before the log (librosa's amin squared).
_POWER_FLOOR = 1e-10


def speech_bounds(waveforms, num_samples, trim_db, frame_length, hop_length):
    """Start and end sample of each row's speech: `([B], [B])` int32.

    Args:
        waveforms: float32 `[batch, max_samples]`, zero past each row's
            length.
        num_samples: int32 `[batch]`, the true length of each row.
        trim_db: float. Threshold below the loudest frame, in dB.
        frame_length: int. Samples per power frame.
        hop_length: int. Samples between frame centres.

    Returns:
        `(start, end)`: `waveforms[i, start[i]:end[i]]` is row `i` without
        its leading and trailing silence; equal to the interval
        `librosa.effects.trim(row, top_db=trim_db, frame_length=...,
        hop_length=...)` returns. A row whose frames are all equally loud
        (digital silence included) is kept whole.

    Example:

    >>> x = tf.concat([tf.zeros([1, 8000]), tf.random.uniform([1, 16000], -0.5, 0.5), tf.zeros([1, 8000])], 1)
    >>> start, end = speech_bounds(x, [32000], 30.0, 800, 160)
    >>> 7000 < int(start[0]) <= 8000, 24000 <= int(end[0]) < 25000
    (True, True)
    """
    num_samples = tf.cast(num_samples, tf.int32)
    half = frame_length // 2
    padded = tf.pad(waveforms, [[0, 0], [half, half]])
    frames = tf.signal.frame(padded, frame_length, hop_length, pad_end=False)  # [B, T, L]
    power = tf.reduce_mean(tf.square(frames), axis=-1)
    num_frames = 1 + (num_samples + 2 * half - frame_length) // hop_length
    count = tf.shape(power)[1]
    valid = tf.sequence_mask(num_frames, count)
    level = 10.0 * tf.math.log(tf.maximum(power, _POWER_FLOOR)) / tf.math.log(10.0)
    loudest = tf.reduce_max(tf.where(valid, level, -1e30), axis=1, keepdims=True)
    speech = tf.logical_and(valid, level > loudest - float(trim_db))
    speech = tf.cast(speech, tf.int32)
    first = tf.cast(tf.argmax(speech, axis=1), tf.int32)
    last = count - 1 - tf.cast(tf.argmax(tf.reverse(speech, axis=[1]), axis=1), tf.int32)
    start = first * hop_length
    end = tf.minimum(num_samples, (last + 1) * hop_length)
    return start, end


def _widen(start, end, num_samples, min_samples):
    """Bounds widened to at least `min(min_samples, num_samples)` samples, inside the row."""
    needed = tf.minimum(num_samples, min_samples)
    short = end - start < needed
    wide_end = tf.minimum(num_samples, start + needed)
    return tf.where(short, wide_end - needed, start), tf.where(short, wide_end, end)


def _shift(waveforms, start, length):
    """Each row's `[start, start + length)` moved to the front, zeros after: `[B, max(length)]`."""
    width = tf.reduce_max(length)
    positions = tf.range(width)[None, :]
    index = tf.minimum(start[:, None] + positions, tf.shape(waveforms)[1] - 1)
    rows = tf.gather(waveforms, index, batch_dims=1)
    return rows * tf.cast(positions < length[:, None], rows.dtype)


def _assert_not_silent(waveforms, what):
    message = f"{what} is silent (every sample is 0); expected speech"
    loud = tf.reduce_all(tf.reduce_max(tf.abs(waveforms), axis=1) > 0)
    if tf.executing_eagerly():
        if not bool(loud):
            raise ValueError(message)
        return []
    return [tf.debugging.Assert(loud, [message])]


def normalize_level(waveforms, num_samples, level_dbfs, increase_only=False):
    """Scales each row to an RMS of `level_dbfs` dB full scale over its `num_samples` samples.

    With `increase_only`, a row already louder keeps its level (the GE2E
    encoder package's volume normalisation, `keras_ser.models.speech_encoders.MelFramesConfig.volume_dbfs`).
    Rows of zeros stay zeros.

    Example:

    >>> x = tf.random.uniform([1, 16000], -0.01, 0.01)
    >>> y = normalize_level(x, [16000], -20.0)
    >>> round(float(20 * np.log10(np.sqrt(np.mean(np.square(y.numpy()))))), 3)
    -20.0
    """
    num_samples = tf.cast(num_samples, tf.int32)
    mask = tf.sequence_mask(num_samples, tf.shape(waveforms)[1], dtype=waveforms.dtype)
    count = tf.maximum(tf.cast(num_samples, waveforms.dtype), 1.0)
    rms = tf.sqrt(tf.reduce_sum(tf.square(waveforms) * mask, axis=1) / count)
    gain = (10.0 ** (float(level_dbfs) / 20.0)) / tf.maximum(rms, 1e-12)
    if increase_only:
        gain = tf.maximum(gain, 1.0)
    return waveforms * gain[:, None]


def apply_front_end(waveforms, num_samples, config, sample_rate, min_samples=1,
                    what="every waveform of the batch"):
    """Trims and levels zero-padded waveforms as `config` says.

    Args:
        waveforms: float32 `[batch, max_samples]` at `sample_rate`, zero
            past each row's length.
        num_samples: int `[batch]`, the true length of each row.
        config: `FrontEndConfig`, its dict, or None (returns the inputs).
        sample_rate: int. Rate of the waveforms, in Hz.
        min_samples: int. Fewest samples the features after the front end
            need; a trimmed row keeps at least that many (or all it has).
        what: str. How errors name the input.

    Returns:
        `(waveforms, num_samples)`: float32 `[batch, max_kept]`, each row's
        kept samples first and zeros after, and int32 `[batch]`.

    Raises:
        ValueError (eagerly) or InvalidArgumentError (in a graph): a row of
        digital silence.

    Example:

    >>> speech = tf.random.uniform([1, 16000], -0.5, 0.5)
    >>> padded = tf.concat([tf.zeros([1, 16000]), speech * 0.1, tf.zeros([1, 16000])], axis=1)
    >>> kept, count = apply_front_end(padded, [48000], FrontEndConfig(), 16000)
    >>> 16000 <= int(count[0]) < 17000   # a second of silence on each side cut off
    True
    >>> rms = np.sqrt(np.mean(np.square(kept.numpy()[0, :int(count[0])])))
    >>> round(float(20 * np.log10(rms)), 3)   # the level of -18 dBFS
    -18.0
    """
    config = check_front_end(config)
    num_samples = tf.cast(num_samples, tf.int32)
    if config is None or not config.active:
        return waveforms, num_samples
    checks = _assert_not_silent(waveforms, what)
    with tf.control_dependencies(checks):
        waveforms = tf.identity(waveforms)
    if config.trim_db is not None:
        start, end = speech_bounds(waveforms, num_samples, config.trim_db, config.frame_length(sample_rate),
                                   config.hop_length(sample_rate))
        start, end = _widen(start, end, num_samples, int(min_samples))
        num_samples = end - start
        waveforms = _shift(waveforms, start, num_samples)
    if config.level_dbfs is not None:
        waveforms = normalize_level(waveforms, num_samples, config.level_dbfs)
    return waveforms, num_samples
