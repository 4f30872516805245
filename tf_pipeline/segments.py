"""Cutting a feature image into N time segments, each resized to the CNN input.

Bilinear resizing is done with gathers and linear interpolation, the same
arithmetic as `tf.image.resize(..., method="bilinear")` (half-pixel centres,
no antialiasing), but for segments of different widths in one batched op, so
the batched form used by the serving signature equals the one-at-a-time form.
"""

import tensorflow as tf

from tf_pipeline.config import MAX_SEGMENTS  # noqa: F401  (re-exported as tf_pipeline.MAX_SEGMENTS)

DEFAULT_SIZE = (227, 227)


def check_n_segments(n_segments):
    """Validates N (1 <= N <= 5, a Python int) and returns it."""
    if isinstance(n_segments, bool) or not isinstance(n_segments, int) or not 1 <= n_segments <= MAX_SEGMENTS:
        raise ValueError(
            f"n_segments must be an integer between 1 and {MAX_SEGMENTS}. Received: n_segments={n_segments!r}"
        )
    return n_segments


def _check_size(size):
    if isinstance(size, int):
        size = (size, size)
    size = tuple(size)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise ValueError(f"size must be (height, width) with positive integers. Received: size={size!r}")
    return size


def _interpolation(out_size, in_size, offset=None):
    """Source indices (lower, upper) and weights of a half-pixel bilinear resize.

    `in_size` may be a tensor of any shape; the results get a trailing
    `[out_size]` axis.
    """
    in_size = tf.cast(in_size, tf.float32)
    scale = in_size / float(out_size)
    position = (tf.range(out_size, dtype=tf.float32) + 0.5) * scale[..., None] - 0.5
    floor = tf.floor(position)
    lerp = position - floor
    last = tf.cast(in_size, tf.int32)[..., None] - 1
    lower = tf.clip_by_value(tf.cast(floor, tf.int32), 0, tf.maximum(last, 0))
    upper = tf.minimum(tf.cast(tf.math.ceil(position), tf.int32), last)
    upper = tf.maximum(upper, 0)
    if offset is not None:
        lower += offset[..., None]
        upper += offset[..., None]
    return lower, upper, lerp


def _check_frames(num_frames, n_segments):
    message = (
        f"an utterance needs at least n_segments={n_segments} frames to be cut into {n_segments} "
        "segments (each frame is 10 ms with the default config); received fewer. Frames:"
    )
    if tf.executing_eagerly():
        shortest = int(tf.reduce_min(num_frames)) if tf.size(num_frames) > 0 else n_segments
        if shortest < n_segments:
            raise ValueError(f"{message} {shortest}")
        return []
    return [tf.debugging.assert_greater_equal(tf.reduce_min(num_frames), n_segments, message=message)]


def batch_segment_and_resize(images, num_frames, n_segments, size=DEFAULT_SIZE):
    """Batched `segment_and_resize` for images padded along time.

    Args:
        images: float32 `[batch, n_mels, max_frames, channels]`, each padded
            after its `num_frames` columns (as `batch_feature_image` returns).
        num_frames: int `[batch]`, the true number of frames of each image.
        n_segments: int, N in 1..5.
        size: `(height, width)` of each resized segment. Defaults to
            `(227, 227)`.

    Returns:
        float32 `[batch, n_segments, height, width, channels]`; row `i`
        equals `segment_and_resize(images[i, :, :num_frames[i]], n_segments)`.

    Example:

    >>> out = batch_segment_and_resize(tf.zeros([2, 60, 300, 3]), [300, 120], 3)
    >>> out.shape
    TensorShape([2, 3, 227, 227, 3])
    """
    n_segments = check_n_segments(n_segments)
    height, width = _check_size(size)
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape.rank != 4:
        raise ValueError(
            f"`images` must have shape [batch, n_mels, frames, channels]. Received shape: {images.shape}"
        )
    num_frames = tf.cast(num_frames, tf.int32)
    checks = _check_frames(num_frames, n_segments)
    with tf.control_dependencies(checks):
        seg_len = num_frames // n_segments
    n_mels = tf.shape(images)[1]
    channels = images.shape[-1]

    # Frequency axis first: [batch, n_mels, T, C] -> [batch, height, T, C].
    f_lower, f_upper, f_lerp = _interpolation(height, n_mels)
    low = tf.gather(images, f_lower, axis=1)
    high = tf.gather(images, f_upper, axis=1)
    images = low + (high - low) * f_lerp[None, :, None, None]

    # Time axis: every segment gathers its own columns.
    index = tf.range(n_segments)
    starts = seg_len[:, None] * index[None, :]  # [batch, N]
    lengths = tf.where(index[None, :] == n_segments - 1, num_frames[:, None] - starts, seg_len[:, None])
    t_lower, t_upper, t_lerp = _interpolation(width, lengths, offset=starts)  # [batch, N, width]
    batch = tf.shape(images)[0]
    t_lower = tf.reshape(t_lower, [batch, n_segments * width])
    t_upper = tf.reshape(t_upper, [batch, n_segments * width])
    columns = tf.transpose(images, [0, 2, 1, 3])  # [batch, T, height, C]
    low = tf.gather(columns, t_lower, axis=1, batch_dims=1)
    high = tf.gather(columns, t_upper, axis=1, batch_dims=1)
    lerp = tf.reshape(t_lerp, [batch, n_segments * width])[:, :, None, None]
    resized = low + (high - low) * lerp  # [batch, N * width, height, C]
    resized = tf.reshape(resized, [batch, n_segments, width, height, channels])
    return tf.transpose(resized, [0, 1, 3, 2, 4])


def segment_and_resize(image, n_segments, size=DEFAULT_SIZE):
    """Cuts `[n_mels, frames, C]` into N time segments resized to `size`.

    The N parts are equal and contiguous along time; the last one absorbs
    the remainder (`frames - (N - 1) * (frames // N)` columns). Each part is
    resized bilinearly (as `tf.image.resize(..., "bilinear")`) to
    `size = (height, width)`. An image with fewer frames than N is an error
    (`ValueError` eagerly, `InvalidArgumentError` in a graph).

    Args:
        image: float32 `[n_mels, frames, channels]` from `feature_image`.
        n_segments: int, N in 1..5.
        size: `(height, width)`. Defaults to `(227, 227)`.

    Returns:
        float32 `[n_segments, height, width, channels]`.

    Example:

    >>> segment_and_resize(tf.zeros([60, 310, 3]), n_segments=3).shape
    TensorShape([3, 227, 227, 3])
    """
    image = tf.convert_to_tensor(image, tf.float32)
    if image.shape.rank != 3:
        raise ValueError(
            f"`image` must have shape [n_mels, frames, channels]. Received shape: {image.shape}"
        )
    num_frames = tf.shape(image)[1][None]
    return batch_segment_and_resize(image[None], num_frames, n_segments, size)[0]
