"""The arithmetic of every step after the log-Mel, written once for TensorFlow and numpy.

Each function takes an array namespace `xp` first: `TF` (in
`tf_pipeline.tf_namespace`: TensorFlow ops, so the result runs eagerly, in
`tf.function`, in tf.data and in exported SavedModels) or `NUMPY` (the GPU
path, `keras_ser.training.feature_file`, on machines without TensorFlow).
The calls are numpy's names with numpy's meaning (`ArrayNamespace` lists
them), so there is one formula per step and the two paths agree within
float32 rounding:

- `deltas`, `batch_deltas`, `image_from_log_mel`: the delta and delta-delta
  channels (HTK regression, edge frames repeated).
- `batch_segment_and_resize`: N time segments of each image, each resized
  bilinearly (half-pixel centres, the last segment absorbs the remainder).
- `frame_sequence`: images as the frame sequences of the `sru` model.
- `Augment`, `spec_augment`, `segment_jitter`, `mix`: the training levers.
  Random numbers stay with the caller: `draw(high)` returns a uniform
  integer in `[0, high)` (`tf.random.uniform` in tf_pipeline, a numpy
  `Generator` on the GPU path), and mixup receives its weights and
  permutation.
- `standardise`: per-channel (or per-speaker) standardisation.

Argument checks and limits are in `tf_pipeline.config`. This module imports
numpy only.

Example:

>>> image = image_from_log_mel(NUMPY, np.zeros([300, 60], np.float32), 2)   # [60, 300, 3]
>>> batch_segment_and_resize(NUMPY, image[None], np.array([300]), 3, (227, 227)).shape
(1, 3, 227, 227, 3)
"""

import dataclasses
from typing import Callable

import numpy as np

from tf_pipeline.config import check_integer


@dataclasses.dataclass(frozen=True)
class ArrayNamespace:
    """The array calls the shared arithmetic makes, for one array library.

    Names and meanings are numpy's (`np.take`, `np.clip`, ...), with three
    additions: `shape(x)` gives the sizes when the code runs (a tuple of ints
    for numpy, an int32 tensor for TensorFlow, whose sizes may be unknown
    while a graph is traced), `batch_take(x, indices, axis)` takes, for
    every row `b`, `x[b]` at `indices[b]` along `axis` of `x`
    (`tf.gather(x, indices, axis=axis, batch_dims=1)`), and `lerp(low,
    high, weight)` is `low + (high - low) * weight` (numpy computes it in
    place in `high`). Arrays support the operators `+ - * / // == < >= & ~`
    and slicing with `None` and computed bounds in both libraries.
    """

    name: str
    float32: object
    int32: object
    shape: Callable
    astype: Callable  # (x, dtype)
    arange: Callable  # (start, stop, dtype)
    floor: Callable
    ceil: Callable
    minimum: Callable
    maximum: Callable
    clip: Callable  # (x, low, high)
    where: Callable  # (condition, x, y), broadcasting
    stack: Callable  # (arrays, axis)
    reshape: Callable
    transpose: Callable  # (x, axes)
    mean: Callable  # (x, axis, keepdims)
    take: Callable  # (x, indices, axis)
    batch_take: Callable  # (x, indices [batch, ...], axis) -> tf.gather(x, indices, axis=axis, batch_dims=1)
    lerp: Callable  # (low, high, weight) -> low + (high - low) * weight; `high` is not used afterwards


def _numpy_batch_take(x, indices, axis):
    """`tf.gather(x, indices, axis=axis, batch_dims=1)` in numpy: one `np.take` per row."""
    out = np.empty(x.shape[:axis] + indices.shape[1:] + x.shape[axis + 1 :], x.dtype)
    for row in range(len(x)):
        np.take(x[row], indices[row], axis=axis - 1, out=out[row])
    return out


def _numpy_lerp(low, high, weight):
    """`low + (high - low) * weight` (the same operations, so the same rounding), in place in `high`:
    on the GPU path's 227x227 batches the temporaries would cost more than the arithmetic."""
    high -= low
    high *= weight
    high += low
    return high


NUMPY = ArrayNamespace(
    name="numpy",
    float32=np.float32,
    int32=np.int32,
    shape=np.shape,
    astype=lambda x, dtype: np.asarray(x).astype(dtype, copy=False),
    arange=lambda start, stop, dtype: np.arange(start, stop, dtype=dtype),
    floor=np.floor,
    ceil=np.ceil,
    minimum=np.minimum,
    maximum=np.maximum,
    clip=np.clip,
    where=np.where,
    stack=lambda arrays, axis: np.stack(arrays, axis=axis),
    reshape=np.reshape,
    transpose=np.transpose,
    mean=lambda x, axis, keepdims=False: np.mean(x, axis=axis, keepdims=keepdims),
    take=lambda x, indices, axis: np.take(x, indices, axis=axis),
    batch_take=_numpy_batch_take,
    lerp=_numpy_lerp,
)


# ---------------------------------------------------------------------------
# Delta and delta-delta channels.
# ---------------------------------------------------------------------------


def regression(xp, extended, length, n, axis):
    """HTK regression over an `axis` extended by `n` edge frames at each end:
    `d_t = sum_{k=1..n} k * (x_{t+k} - x_{t-k}) / (2 * sum_{k=1..n} k^2)`."""

    def shifted(k):
        index = [slice(None)] * extended.ndim
        index[axis] = slice(n + k, n + k + length)
        return extended[tuple(index)]

    result = shifted(1) - shifted(-1)
    for k in range(2, n + 1):
        result = result + float(k) * (shifted(k) - shifted(-k))
    return result / (2.0 * sum(k * k for k in range(1, n + 1)))


def deltas(xp, x, n=2, axis=0):
    """Regression deltas along `axis` (frames), HTK formula, edges replicated.

    Equals `librosa.feature.delta(x, width=2 * n + 1, mode="nearest",
    axis=axis)` (`tests/test_features.py`).

    Example:

    >>> deltas(NUMPY, np.array([[0.0], [1.0], [2.0], [3.0]], np.float32))[:, 0]
    array([0.5, 0.8, 0.8, 0.5], dtype=float32)
    """
    n = check_integer("n", n)
    axis = axis % x.ndim
    length = xp.shape(x)[axis]
    # Edge-replicated copy, n frames longer at each end: one gather, then slices.
    extended = xp.take(x, xp.clip(xp.arange(-n, length + n, xp.int32), 0, length - 1), axis=axis)
    return regression(xp, extended, length, n, axis)


def batch_deltas(xp, x, num_frames, n=2):
    """`deltas` along axis 1 of padded `[batch, frames, ...]`, each row replicating
    its own edge frames (frames past a row's `num_frames` are never read)."""
    n = check_integer("n", n)
    length = xp.shape(x)[1]
    index = xp.minimum(xp.maximum(xp.arange(-n, length + n, xp.int32)[None, :], 0), (num_frames - 1)[:, None])
    return regression(xp, xp.batch_take(x, index, 1), length, n, axis=1)


def image_from_log_mel(xp, log_mel, n=2):
    """`[frames, n_mels]` log-Mel -> the `[n_mels, frames, 3]` feature image
    (log-Mel, delta, delta-delta; row 0 is the lowest Mel band)."""
    d1 = deltas(xp, log_mel, n, axis=0)
    d2 = deltas(xp, d1, n, axis=0)
    return xp.transpose(xp.stack([log_mel, d1, d2], axis=-1), [1, 0, 2])


# ---------------------------------------------------------------------------
# Segments, bilinear resizing, frame sequences.
# ---------------------------------------------------------------------------


def interpolation(xp, out_size, in_size, offset=None):
    """Source indices (lower, upper) and weights of a half-pixel bilinear resize
    from `in_size` (any shape) to `out_size`; the results get a trailing
    `[out_size]` axis, the indices shifted by `offset` when given."""
    in_size = xp.astype(in_size, xp.float32)
    scale = in_size / xp.astype(out_size, xp.float32)  # float32 / float32 (numpy 1.x widens 0-d * float)
    position = (xp.arange(0, out_size, xp.float32) + 0.5) * scale[..., None] - 0.5
    floor = xp.floor(position)
    lerp = position - floor
    last = xp.astype(in_size, xp.int32)[..., None] - 1
    lower = xp.clip(xp.astype(floor, xp.int32), 0, xp.maximum(last, 0))
    upper = xp.maximum(xp.minimum(xp.astype(xp.ceil(position), xp.int32), last), 0)
    if offset is not None:
        lower = lower + offset[..., None]
        upper = upper + offset[..., None]
    return lower, upper, lerp


def batch_segment_and_resize(xp, images, num_frames, n_segments, size):
    """N time segments of every padded image, each resized bilinearly to `size`.

    The N parts are equal and contiguous along time; the last one absorbs
    the remainder (`frames - (N - 1) * (frames // N)` columns). Each is
    resized as `tf.image.resize(..., "bilinear")` does (half-pixel centres,
    no antialiasing), time axis first, then frequency (on the N * width
    columns, so padding is never resized). The arguments are not checked
    here (`tf_pipeline.config.check_n_segments`, `check_size`,
    `check_frames`).

    Args:
        xp: the array namespace.
        images: float32 `[batch, n_mels, max_frames, channels]`, each padded
            after its `num_frames` columns.
        num_frames: int32 `[batch]`, every one at least `n_segments`.
        n_segments: int, N.
        size: `(height, width)` ints.

    Returns:
        float32 `[batch, n_segments, height, width, channels]`.
    """
    height, width = size

    # Time axis: every segment gathers its own columns, [batch, n_mels, T, C] -> [batch, N, n_mels, width, C].
    seg_len = num_frames // n_segments
    index = xp.arange(0, n_segments, xp.int32)
    starts = seg_len[:, None] * index[None, :]  # [batch, N]
    lengths = xp.where(index[None, :] == n_segments - 1, num_frames[:, None] - starts, seg_len[:, None])
    t_lower, t_upper, t_lerp = interpolation(xp, width, lengths, offset=starts)  # [batch, N, width]
    low = xp.batch_take(images, t_lower, 2)
    high = xp.batch_take(images, t_upper, 2)
    columns = xp.transpose(xp.lerp(low, high, t_lerp[:, None, :, :, None]), [0, 2, 1, 3, 4])  # [batch, N, n_mels, ...]

    # Frequency axis: [batch, N, n_mels, width, C] -> [batch, N, height, width, C].
    f_lower, f_upper, f_lerp = interpolation(xp, height, xp.shape(images)[1])
    low = xp.take(columns, f_lower, axis=2)
    high = xp.take(columns, f_upper, axis=2)
    return xp.lerp(low, high, f_lerp[:, None, None])


def frame_sequence(xp, images):
    """Padded images as frame sequences: `[B, n_mels, T, C] -> [B, T, C * n_mels]`.

    Each frame is the log-Mel vector, then its delta, then its delta-delta
    (channel-major); padded frames stay zero.
    """
    shape = xp.shape(images)
    sequence = xp.transpose(images, [0, 2, 3, 1])  # [B, T, C, n_mels]
    return xp.reshape(sequence, [shape[0], shape[2], shape[1] * shape[3]])


def standardise(image, mean, std):
    """`(image - mean) / std`, per channel (the last axis)."""
    return (image - mean) / std


# ---------------------------------------------------------------------------
# Training levers.
# ---------------------------------------------------------------------------


def band_keep(xp, length, count, max_width, draw):
    """`[length]` bool, False on `count` bands, each of a width drawn from
    `0..max_width` (at most `length`) at a start drawn so that it fits."""
    positions = xp.arange(0, length, xp.int32)
    keep = positions >= 0
    for _ in range(count):
        width = xp.minimum(draw(max_width + 1), length)
        start = draw(xp.maximum(length - width, 0) + 1)
        keep = keep & ~((positions >= start) & (positions < start + width))
    return keep


def spec_augment(xp, image, draw, time_masks=2, time_width=20, freq_masks=2, freq_width=8):
    """Masks random bands of frames and of Mel bands (SpecAugment, Park et al. 2019).

    Masked values are set to each channel's mean over the utterance, so
    after the model's standardisation they carry no information rather than
    an extreme value. Widths are drawn from `0..max` per mask, time masks
    first.

    Args:
        xp: the array namespace.
        image: float32 `[n_mels, frames, C]`.
        draw: callable, `draw(high)` -> a random int in `[0, high)`.
        time_masks, time_width, freq_masks, freq_width: ints.

    Returns:
        The masked image.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> masked = spec_augment(NUMPY, np.ones([60, 100, 3], np.float32), lambda high: int(rng.integers(0, high)))
    >>> masked.shape
    (60, 100, 3)
    """
    shape = xp.shape(image)
    fill = xp.mean(image, axis=(0, 1), keepdims=True)
    keep_time = band_keep(xp, shape[1], time_masks, time_width, draw)
    keep_freq = band_keep(xp, shape[0], freq_masks, freq_width, draw)
    keep = keep_freq[:, None, None] & keep_time[None, :, None]
    return xp.where(keep, image, fill)


def segment_jitter(xp, image, num_frames, draw, fraction=0.1, min_frames=5):
    """Trims a random share (up to `fraction`) of frames from each end, keeping
    at least `min_frames`; the N segments are then cut from what remains, so
    their boundaries move from epoch to epoch. Returns `(image, num_frames)`."""
    frames = xp.astype(num_frames, xp.int32)
    most = xp.astype(xp.astype(frames, xp.float32) * xp.astype(fraction, xp.float32), xp.int32)
    most = xp.minimum(most, xp.maximum((frames - min_frames) // 2, 0))
    start = draw(most + 1)
    end = frames - draw(most + 1)
    return image[:, start:end], end - start


def mix(xp, inputs, labels, lam, perm):
    """Mixup (Zhang et al. 2018) with the given draws: each example `i` becomes
    `lam[i] * x[i] + (1 - lam[i]) * x[perm[i]]`, and its float labels
    `[B, num_classes]` the same mix. Returns `(inputs, soft_labels)`."""
    lam_x = xp.reshape(lam, [-1] + [1] * (inputs.ndim - 1))
    mixed = lam_x * inputs + (1.0 - lam_x) * xp.take(inputs, perm, axis=0)
    soft = lam[:, None] * labels + (1.0 - lam[:, None]) * xp.take(labels, perm, axis=0)
    return mixed, soft


@dataclasses.dataclass(frozen=True)
class Augment:
    """The per-utterance training augmentation: segment jitter first, then masks.

    Args:
        time_masks, time_width, freq_masks, freq_width: `spec_augment`
            settings (non-negative ints); no masks when both counts are 0.
        jitter: float in [0, 0.5): the `segment_jitter` fraction; 0 disables it.

    Example:

    >>> augment = Augment(time_masks=2, freq_masks=2, jitter=0.1)
    >>> rng = np.random.default_rng(0)
    >>> draw = lambda high: int(rng.integers(0, high))
    >>> image, frames = augment(NUMPY, np.ones([60, 100, 3], np.float32), 100, draw)
    >>> image.shape[1] == int(frames) <= 100
    True
    """

    time_masks: int = 0
    time_width: int = 20
    freq_masks: int = 0
    freq_width: int = 8
    jitter: float = 0.0

    def __post_init__(self):
        if not 0 <= self.jitter < 0.5:
            raise ValueError(f"jitter must be in [0, 0.5). Received: jitter={self.jitter}")
        for name in ("time_masks", "freq_masks", "time_width", "freq_width"):
            check_integer(name, getattr(self, name), minimum=0)

    @classmethod
    def from_config(cls, config):
        """The augmentation a `keras_ser.training.TrainConfig` asks for."""
        return cls(config.time_masks, config.time_width, config.freq_masks, config.freq_width, config.jitter)

    def __bool__(self):
        return bool(self.time_masks or self.freq_masks or self.jitter)

    def __call__(self, xp, image, num_frames, draw):
        """`(image [n_mels, frames, C], num_frames) -> (image, num_frames)`, augmented."""
        if self.jitter:
            image, num_frames = segment_jitter(xp, image, num_frames, draw, self.jitter)
        if self.time_masks or self.freq_masks:
            image = spec_augment(xp, image, draw, self.time_masks, self.time_width, self.freq_masks,
                                 self.freq_width)
        return image, num_frames
