"""Training-time augmentation of feature images and batches (TensorFlow ops).

Per utterance, on the small `[n_mels, frames, 3]` image before segmentation:
`spec_augment` (SpecAugment-style time and frequency masks, Park et al.
2019) and `segment_jitter` (random trimming of both ends, which moves the
segment boundaries). Per batch: `mixup` (Zhang et al. 2018). All of them are
used only on training data (`make_dataset(training=True)`).

Example:

>>> augment = make_augment(time_masks=2, freq_masks=2, jitter=0.1)
>>> train = tf_pipeline.make_dataset(corpus, fold.train_indices, training=True,
...                                  augment=augment)               # doctest: +SKIP
"""

import tensorflow as tf


def _masks(length, count, max_width):
    """`[length]` float mask with `count` random zero bands of width < max_width."""
    positions = tf.range(length)
    keep = tf.ones([length], tf.bool)
    for _ in range(count):
        width = tf.random.uniform([], 0, max_width + 1, dtype=tf.int32)
        width = tf.minimum(width, length)
        start = tf.random.uniform([], 0, tf.maximum(length - width, 0) + 1, dtype=tf.int32)
        keep &= ~((positions >= start) & (positions < start + width))
    return keep


def spec_augment(image, num_frames, time_masks=2, time_width=20, freq_masks=2, freq_width=8):
    """Masks random bands of frames and of Mel bands (SpecAugment-style).

    Masked values are set to each channel's mean over the utterance, so after
    the model's standardisation they carry no information rather than an
    extreme value. Widths are drawn uniformly from `0..max` per mask.

    Args:
        image: float32 `[n_mels, frames, C]`.
        num_frames: int scalar, the frames of `image`.
        time_masks: int, number of time masks. Defaults to `2`.
        time_width: int, maximum frames per time mask. Defaults to `20` (200 ms).
        freq_masks: int, number of frequency masks. Defaults to `2`.
        freq_width: int, maximum Mel bands per mask. Defaults to `8`.

    Returns:
        `(image, num_frames)`, the image masked.
    """
    shape = tf.shape(image)
    fill = tf.reduce_mean(image, axis=[0, 1], keepdims=True)
    keep_time = _masks(shape[1], time_masks, time_width)
    keep_freq = _masks(shape[0], freq_masks, freq_width)
    keep = keep_freq[:, None, None] & keep_time[None, :, None]
    return tf.where(keep, image, fill + tf.zeros_like(image)), num_frames


def segment_jitter(image, num_frames, fraction=0.1, min_frames=5):
    """Trims a random share (up to `fraction`) of frames from each end.

    The N segments are cut from what remains, so their boundaries move from
    epoch to epoch. At least `min_frames` frames are kept.
    """
    frames = tf.cast(num_frames, tf.int32)
    most = tf.cast(tf.cast(frames, tf.float32) * fraction, tf.int32)
    most = tf.minimum(most, tf.maximum((frames - min_frames) // 2, 0))
    start = tf.random.uniform([], 0, most + 1, dtype=tf.int32)
    end = frames - tf.random.uniform([], 0, most + 1, dtype=tf.int32)
    return image[:, start:end], end - start


def make_augment(time_masks=0, time_width=20, freq_masks=0, freq_width=8, jitter=0.0):
    """A per-utterance augmentation for `make_dataset(augment=...)`, or None.

    Args:
        time_masks, time_width, freq_masks, freq_width: `spec_augment`
            settings; no masks when both counts are 0.
        jitter: float in [0, 0.5): `segment_jitter` fraction; 0 disables it.

    Returns:
        A callable `(image, num_frames) -> (image, num_frames)`, or `None`
        when every lever is off.
    """
    if not 0 <= jitter < 0.5:
        raise ValueError(f"jitter must be in [0, 0.5). Received: jitter={jitter}")
    for name, value in (("time_masks", time_masks), ("freq_masks", freq_masks),
                        ("time_width", time_width), ("freq_width", freq_width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer. Received: {name}={value!r}")
    if not (time_masks or freq_masks or jitter):
        return None

    def augment(image, num_frames):
        if jitter:
            image, num_frames = segment_jitter(image, num_frames, jitter)
        if time_masks or freq_masks:
            image, num_frames = spec_augment(image, num_frames, time_masks, time_width, freq_masks, freq_width)
        return image, num_frames

    return augment


def mixup(inputs, labels, num_classes, alpha=0.2):
    """Mixes each example of a batch with another one (mixup).

    `lam ~ Beta(alpha, alpha)` per example; inputs become
    `lam * x + (1 - lam) * x[perm]` and labels the same mix of one-hot
    vectors.

    Args:
        inputs: float tensor `[B, ...]`.
        labels: int `[B]` class ids or float `[B, num_classes]` one-hot.
        num_classes: int.
        alpha: float > 0. Defaults to `0.2`.

    Returns:
        `(inputs, soft_labels [B, num_classes])`.
    """
    if labels.shape.rank == 1:
        labels = tf.one_hot(labels, num_classes)
    batch = tf.shape(inputs)[0]
    gamma_a = tf.random.gamma([batch], alpha)
    gamma_b = tf.random.gamma([batch], alpha)
    lam = gamma_a / (gamma_a + gamma_b + 1e-12)
    perm = tf.random.shuffle(tf.range(batch))
    lam_x = tf.reshape(lam, tf.concat([[batch], tf.ones([tf.rank(inputs) - 1], tf.int32)], 0))
    mixed = lam_x * inputs + (1.0 - lam_x) * tf.gather(inputs, perm)
    soft = lam[:, None] * labels + (1.0 - lam[:, None]) * tf.gather(labels, perm)
    return mixed, soft
