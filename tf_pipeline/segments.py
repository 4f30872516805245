"""Cutting a feature image into N time segments, each resized to the CNN input.

Bilinear resizing is done with gathers and linear interpolation, the same
arithmetic as `tf.image.resize(..., method="bilinear")` (half-pixel centres,
no antialiasing), but for segments of different widths in one batched op, so
the batched form used by the serving signature equals the one-at-a-time form.
The arithmetic is `tf_pipeline.array_math.batch_segment_and_resize` in
TensorFlow ops (the numpy path of the GPU machines runs the same function);
the checks are `tf_pipeline.config`'s.
"""

import tensorflow as tf

from tf_pipeline import array_math
from tf_pipeline.config import DEFAULT_SIZE  # noqa: F401  (re-exported)
from tf_pipeline.config import MAX_SEGMENTS  # noqa: F401  (re-exported as tf_pipeline.MAX_SEGMENTS)
from tf_pipeline.config import check_frames
from tf_pipeline.config import check_n_segments  # noqa: F401  (re-exported as tf_pipeline.check_n_segments)
from tf_pipeline.config import check_size
from tf_pipeline.config import too_few_frames_message
from tf_pipeline.tf_namespace import TF


def _check_frames(num_frames, n_segments):
    """`check_frames` eagerly (ValueError); in a graph, an assertion with its message."""
    if tf.executing_eagerly():
        check_frames(tf.reduce_min(num_frames) if tf.size(num_frames) > 0 else n_segments, n_segments)
        return []
    return [tf.debugging.assert_greater_equal(tf.reduce_min(num_frames), n_segments,
                                              message=too_few_frames_message(n_segments))]


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
    size = check_size(size)
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape.rank != 4:
        raise ValueError(
            f"`images` must have shape [batch, n_mels, frames, channels]. Received shape: {images.shape}"
        )
    num_frames = tf.cast(num_frames, tf.int32)
    with tf.control_dependencies(_check_frames(num_frames, n_segments)):
        num_frames = tf.identity(num_frames)
    return array_math.batch_segment_and_resize(TF, images, num_frames, n_segments, size)


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
