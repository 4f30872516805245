"""A batched dataset of padded waveforms, turned into model input by any batch front end."""

import numpy as np
import tensorflow as tf

from tf_pipeline.config import check_batch_size
from tf_pipeline.dataset import check_indices
from tf_pipeline.dataset import map_without_autograph
from tf_pipeline.dataset import waveform_fn


def waveform_dataset(corpus, indices, to_input, config, batch_size=32, training=False, seed=0):
    """`(model input, labels)` batches: waveforms padded per batch, then `to_input`.

    For front ends that work on a whole batch of waveforms at once (the
    default dataset of `keras_ser.models.preprocessor.Preprocessor`, e.g.
    the speech encoders' inputs). The waveforms are
    decoded in a parallel map, shuffled when `training` (seeded, reshuffled
    every epoch), padded with zeros to the longest of each batch, and
    `to_input(waveforms, num_samples)` runs on each batch.

    Args:
        corpus: a `tf_pipeline.Corpus`.
        indices: record indices (None: all).
        to_input: callable `(waveforms [B, S], num_samples [B]) -> model
            input` (a tensor or a dict of tensors), in TensorFlow ops.
        config: any config with a `sample_rate` (the rate audio is
            resampled to).
        batch_size: int. Defaults to `32`.
        training: bool. Shuffle. Defaults to `False` (the order of `indices`).
        seed: int. Shuffle seed. Defaults to `0`.

    Returns:
        A `tf.data.Dataset` of `(model input, int32 [B])`.

    Example:

    >>> import tf_pipeline
    >>> corpus = tf_pipeline.corpora.synthetic("/tmp/synthetic")
    >>> config = tf_pipeline.FeatureConfig()
    >>> to_input = lambda w, n: tf_pipeline.batch_log_mel(w, n, config)[0]
    >>> frames, labels = next(iter(waveform_dataset(corpus, None, to_input, config, batch_size=4)))
    >>> frames.shape[0], frames.shape[-1], labels.shape
    (4, 60, TensorShape([4]))
    """
    check_batch_size(batch_size)
    indices = check_indices(corpus, indices)
    paths = [corpus.records[i].path for i in indices]
    to_waveform = waveform_fn(paths, config)

    def load(path, label):
        waveform = to_waveform(path)
        return waveform, tf.shape(waveform)[0], label

    dataset = tf.data.Dataset.from_tensor_slices((paths, corpus.labels[indices].astype(np.int32)))
    if training:
        dataset = dataset.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
    dataset = map_without_autograph(dataset, load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.padded_batch(batch_size, padded_shapes=([None], [], []), padding_values=(0.0, 0, 0))
    dataset = map_without_autograph(
        dataset, lambda waveforms, num_samples, labels: (to_input(waveforms, num_samples), labels))
    return dataset.prefetch(tf.data.AUTOTUNE)
