"""Training-time augmentation of feature images and batches (TensorFlow ops).

Per utterance, on the small `[n_mels, frames, 3]` image before segmentation:
`spec_augment` (SpecAugment-style time and frequency masks, Park et al.
2019) and `segment_jitter` (random trimming of both ends, which moves the
segment boundaries). Per batch: `mixup` (Zhang et al. 2018). All of them are
used only on training data (`make_dataset(training=True)`). The random
numbers are `tf.random`'s; the arithmetic is `tf_pipeline.array_math`'s,
shared with the numpy path of the GPU machines.

Example:

>>> augment = make_augment(time_masks=2, freq_masks=2, jitter=0.1)
>>> train = tf_pipeline.make_dataset(corpus, fold.train_indices, training=True,
...                                  augment=augment)               # doctest: +SKIP
"""

import tensorflow as tf

from tf_pipeline import array_math
from tf_pipeline.tf_namespace import TF
from tf_pipeline.tf_namespace import draw


def spec_augment(image, num_frames, time_masks=2, time_width=20, freq_masks=2, freq_width=8):
    """Masks random bands of frames and of Mel bands (SpecAugment-style).

    Masked values are set to each channel's mean over the utterance, so after
    the model's standardisation they carry no information rather than an
    extreme value. Widths are drawn uniformly from `0..max` per mask
    (`tf.random`; the arithmetic is `tf_pipeline.array_math.spec_augment`).

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
    image = tf.convert_to_tensor(image)
    return array_math.spec_augment(TF, image, draw, time_masks, time_width, freq_masks, freq_width), num_frames


def segment_jitter(image, num_frames, fraction=0.1, min_frames=5):
    """Trims a random share (up to `fraction`) of frames from each end.

    The N segments are cut from what remains, so their boundaries move from
    epoch to epoch. At least `min_frames` frames are kept. Returns
    `(image, num_frames)`.
    """
    return array_math.segment_jitter(TF, tf.convert_to_tensor(image), num_frames, draw, fraction, min_frames)


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
    return augment_fn(array_math.Augment(time_masks, time_width, freq_masks, freq_width, jitter))


def augment_fn(settings):
    """The tf.data augmentation of an `array_math.Augment` (None when every lever is off)."""
    if not settings:
        return None

    def augment(image, num_frames):
        return settings(TF, image, num_frames, draw)

    return augment


def mixup(inputs, labels, num_classes, alpha=0.2):
    """Mixes each example of a batch with another one (mixup).

    `lam ~ Beta(alpha, alpha)` per example; inputs become
    `lam * x + (1 - lam) * x[perm]` and labels the same mix of one-hot
    vectors (`tf_pipeline.array_math.mix`).

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
    return array_math.mix(TF, inputs, labels, lam, perm)
