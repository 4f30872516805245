"""`TF`: the TensorFlow array namespace of `tf_pipeline.array_math`.

Every call is one TensorFlow op (or the op numpy's name stands for), so the
shared arithmetic builds the same graph the pipeline had before it was
shared: it runs eagerly, in `tf.function`, in tf.data and in SavedModels,
and converts to TFLite built-in ops.

Example:

>>> from tf_pipeline import array_math
>>> array_math.deltas(TF, tf.constant([[0.0], [1.0], [2.0], [3.0]]))[:, 0].numpy()
array([0.5, 0.8, 0.8, 0.5], dtype=float32)
"""

import tensorflow as tf

from tf_pipeline.array_math import ArrayNamespace

TF = ArrayNamespace(
    name="tensorflow",
    float32=tf.float32,
    int32=tf.int32,
    shape=tf.shape,
    astype=tf.cast,
    arange=lambda start, stop, dtype: tf.range(start, stop, dtype=dtype),
    floor=tf.floor,
    ceil=tf.math.ceil,
    minimum=tf.minimum,
    maximum=tf.maximum,
    clip=tf.clip_by_value,
    where=tf.where,
    stack=lambda arrays, axis: tf.stack(arrays, axis=axis),
    reshape=tf.reshape,
    transpose=tf.transpose,
    mean=lambda x, axis, keepdims=False: tf.reduce_mean(x, axis=axis, keepdims=keepdims),
    take=lambda x, indices, axis: tf.gather(x, indices, axis=axis),
    batch_take=lambda x, indices, axis: tf.gather(x, indices, axis=axis, batch_dims=1),
    lerp=lambda low, high, weight: low + (high - low) * weight,
)


def draw(high):
    """A random int32 in `[0, high)` (the `draw` of `array_math`'s levers)."""
    return tf.random.uniform([], 0, high, dtype=tf.int32)
