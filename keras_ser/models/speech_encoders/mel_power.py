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

from keras_ser.models.speech_encoders.config import MelFramesConfig
from tf_pipeline.config import check_batch_size
from tf_pipeline.dataset import check_indices
from tf_pipeline.dataset import map_without_autograph
from tf_pipeline.dataset import waveform_fn
from tf_pipeline.features import assert_finite
from tf_pipeline.features import check_waveform
from tf_pipeline.features import slaney_filterbank
from tf_pipeline.front_end import apply_front_end
from tf_pipeline.front_end import normalize_level

# Value of the padded frames of a batch: a power spectrum is never negative.
PAD_VALUE = -1.0



@functools.lru_cache(maxsize=8)
def _hann_window_np(n_fft):
    # Periodic Hann (scipy.signal.get_window("hann", n_fft, fftbins=True)).
    n = np.arange(n_fft)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)).astype(np.float32)


def masked_batch(waveforms, num_samples):
    """`(waveforms, num_samples)` of a padded batch: float32 `[batch, samples]`, int32 lengths, zeros past each length.

    The batch front ends of the speech encoders start here, so that what lies
    past a row's length (another row's padding) reads as silence. A ValueError
    names a waveform that is not float or not `[batch, samples]`.

    Example:

    >>> waveforms, _ = masked_batch([[1.0, 1.0], [1.0, 1.0]], [2, 1])
    >>> waveforms.numpy().tolist()
    [[1.0, 1.0], [1.0, 0.0]]
    """
    waveforms = check_waveform(waveforms, "waveforms")
    if waveforms.shape.rank is not None and waveforms.shape.rank != 2:
        raise ValueError(f"`waveforms` must have shape [batch, samples]. Received shape: {waveforms.shape}")
    num_samples = tf.cast(num_samples, tf.int32)
    return waveforms * tf.sequence_mask(num_samples, tf.shape(waveforms)[1], dtype=tf.float32), num_samples


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
        checks = assert_finite(waveforms, what)
        if reject_silence and not bool(tf.reduce_all(loudest > 0)):
            raise ValueError(silent)
        return checks
    checks = [tf.debugging.assert_greater_equal(shortest, needed, message=short), *assert_finite(waveforms, what)]
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
    config = MelFramesConfig.coerce(config, "config")
    # Samples past each row's length must read as the zero padding of `center=True`.
    waveforms, num_samples = masked_batch(waveforms, num_samples)
    checks = check_rows(waveforms, num_samples, config, "every waveform of the batch")
    with tf.control_dependencies(checks):
        waveforms = tf.identity(waveforms)
    waveforms, num_samples = apply_front_end(waveforms, num_samples, config.front_end, config.sample_rate,
                                             config.min_samples)
    if config.volume_dbfs is not None:
        waveforms = normalize_level(waveforms, num_samples, config.volume_dbfs, increase_only=True)
    power = centred_power_spectrum(waveforms, config.n_fft, config.hop_length)
    filterbank = slaney_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax)
    mel = tf.tensordot(power, tf.constant(filterbank), axes=1)
    num_frames = 1 + num_samples // config.hop_length
    # The batch may be wider than its longest row: drop the frames past every row.
    max_frames = tf.reduce_max(num_frames)
    mel = mel[:, :max_frames]
    valid = tf.sequence_mask(num_frames, tf.shape(mel)[1])[:, :, None]
    return tf.where(valid, mel, PAD_VALUE), num_frames


@functools.lru_cache(maxsize=8)
def dft_basis(n_fft):
    """`[n_fft, 2 * bins]`: the real DFT's cosine then sine columns times a periodic Hann window.

    `frames @ basis` holds the real parts and (minus) the imaginary parts of
    `rfft(frames * window)`, so their squares summed per bin are the power
    spectrum. Computed in float64, stored as float32.
    """
    n = np.arange(n_fft)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)  # the window of `centred_power_spectrum`
    k = np.arange(n_fft // 2 + 1)
    # The angle reduced modulo n_fft first: exact integers, then one rounding.
    angle = 2.0 * np.pi * ((n[:, None] * k[None, :]) % n_fft) / n_fft
    basis = np.concatenate([np.cos(angle), np.sin(angle)], axis=1) * window[:, None]
    return basis.astype(np.float32)


def tflite_mel_frames(waveform, num_samples, config=None):
    """`batch_mel_frames` of one row, `[1, samples] -> [1, frames, n_mels]`, in TFLite built-in ops only.

    The same steps (the speech front end when the config holds one,
    optional volume normalisation, centred frames with zero padding,
    periodic Hann window, power spectrum, Slaney Mel filterbank); the
    spectrum is a DFT as a matrix product (`dft_basis`) instead of `rfft`,
    because TFLite's built-in `RFFT2D` takes power-of-two lengths only and
    the encoder's window is 400 samples. No input checks: the TFLite export
    makes its own (`saved_models.tflite`).
    """
    config = MelFramesConfig.coerce(config, "config")
    waveform, num_samples = apply_front_end(waveform, num_samples, config.front_end, config.sample_rate,
                                            config.min_samples)
    if config.volume_dbfs is not None:
        waveform = normalize_level(waveform, num_samples, config.volume_dbfs, increase_only=True)
    half = config.n_fft // 2
    padded = tf.pad(waveform, [[0, 0], [half, half]])
    framed = tf.signal.frame(padded, config.n_fft, config.hop_length, pad_end=False)  # [1, T, n_fft]
    parts = tf.tensordot(framed, tf.constant(dft_basis(config.n_fft)), axes=1)  # [1, T, 2 * bins]
    filterbank = slaney_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax)
    # re^2 @ F + im^2 @ F in one product: the filterbank stacked twice.
    paired = np.concatenate([filterbank, filterbank], axis=0).astype(np.float32)
    mel = tf.tensordot(tf.square(parts), tf.constant(paired), axes=1)
    num_frames = 1 + num_samples[0] // config.hop_length
    return tf.reshape(mel[:, :num_frames], [1, -1, config.n_mels])


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
    waveform = check_waveform(waveform)
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


def mel_frames_dataset(corpus, indices=None, config=None, batch_size=32, training=False, seed=0, cache=True):
    """A batched dataset of `(mel_frames, labels)` for the speech-encoder models.

    Each utterance becomes its Mel power frames (`mel_frames`,
    `[frames, n_mels]`) in a parallel map; frames are cached (memory, or a
    file path), shuffled when `training` (seeded, reshuffled every epoch),
    and padded per batch with `PAD_VALUE`.

    Args:
        corpus: a `tf_pipeline.Corpus`.
        indices: record indices (default: all), e.g. a fold's `test_indices`.
        config: `MelFramesConfig` or its dict.
        batch_size: int. Defaults to `32`.
        training: bool. Shuffle. Defaults to `False` (corpus order).
        seed: int. Shuffle seed. Defaults to `0`.
        cache: `True` (memory), `False`, or a file path.

    Returns:
        A `tf.data.Dataset` of `(float32 [B, T, n_mels], int32 [B])`.

    Example:

    >>> import tf_pipeline
    >>> corpus = tf_pipeline.corpora.synthetic("/tmp/synthetic")
    >>> frames, labels = next(iter(mel_frames_dataset(corpus, batch_size=4)))
    >>> frames.shape[0], frames.shape[2]
    (4, 40)
    """
    config = MelFramesConfig.coerce(config, "config")
    check_batch_size(batch_size)
    indices = check_indices(corpus, indices)
    paths = [corpus.records[i].path for i in indices]
    to_waveform = waveform_fn(paths, config)

    def load(path, label):
        return mel_frames(to_waveform(path), config), label

    dataset = tf.data.Dataset.from_tensor_slices((paths, corpus.labels[indices].astype(np.int32)))
    dataset = map_without_autograph(dataset, load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache is True:
        dataset = dataset.cache()
    elif cache:
        dataset = dataset.cache(str(cache))
    if training:
        dataset = dataset.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.padded_batch(
        batch_size, padded_shapes=([None, config.n_mels], []),
        padding_values=(PAD_VALUE, 0),
    )
    return dataset.prefetch(tf.data.AUTOTUNE)
