"""Masked pooling of frame sequences: the frame mask, statistics over time, and per segment."""

import keras
from keras import ops

# Padded frames of a Mel-frame batch hold this value (a power spectrum never does);
# `keras_ser.models.speech_encoders.mel_power.PAD_VALUE` is the same number.
PAD_VALUE = -1.0


@keras.saving.register_keras_serializable(package="keras_ser")
class FrameMask(keras.layers.Layer):
    """The valid frames of a padded batch: `[batch, time, features] -> [batch, time]` float 0/1.

    A frame is padding when every feature equals `pad_value`.

    Args:
        pad_value: float. Value of the padded frames. Defaults to `-1.0`.
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> frames = np.array([[[1.0, 2.0], [-1.0, -1.0]]], "float32")
    >>> FrameMask()(frames).numpy().tolist()
    [[1.0, 0.0]]
    """

    def __init__(self, pad_value=PAD_VALUE, **kwargs):
        super().__init__(**kwargs)
        self.pad_value = float(pad_value)

    def call(self, inputs):
        return ops.cast(ops.any(ops.not_equal(inputs, self.pad_value), axis=-1), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def get_config(self):
        return {**super().get_config(), "pad_value": self.pad_value}


def _weighted_moments(sequence, weights, epsilon):
    """Mean and standard deviation of `sequence` [B, T, F] under `weights` [B, K, T] -> [B, K, 2F]."""
    count = ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1.0)  # [B, K, 1]
    mean = ops.matmul(weights, sequence) / count
    mean_square = ops.matmul(weights, ops.square(sequence)) / count
    std = ops.sqrt(ops.maximum(mean_square - ops.square(mean), 0.0) + epsilon)
    return ops.concatenate([mean, std], axis=-1)


def _check_epsilon(epsilon):
    if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool) or epsilon < 0:
        raise ValueError(f"epsilon must be a non-negative number. Received: epsilon={epsilon!r}")
    return float(epsilon)


@keras.saving.register_keras_serializable(package="keras_ser")
class StatisticsPooling(keras.layers.Layer):
    """Mean and standard deviation over the valid frames: `[B, T, F] -> [B, 2F]`.

    Called on `[sequence, mask]`: `sequence` `[batch, time, features]` and
    `mask` `[batch, time]` (1 for real frames, 0 for padding, e.g. from
    `FrameMask`). Output `[mean | std]`, the standard deviation being the
    population one, `sqrt(E[x^2] - E[x]^2 + epsilon)`.

    Args:
        epsilon: float. Added under the square root (keeps gradients finite
            for constant features). Defaults to `1e-8`.
        **kwargs: standard layer arguments.

    Example:

    >>> import numpy as np
    >>> x = np.array([[[1.0], [3.0], [100.0]]], "float32")
    >>> mask = np.array([[1.0, 1.0, 0.0]], "float32")
    >>> np.round(StatisticsPooling()([x, mask]).numpy(), 4).tolist()
    [[2.0, 1.0]]
    """

    def __init__(self, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = _check_epsilon(epsilon)

    def call(self, inputs, mask=None):
        # `mask`: a Keras mask the sequence may carry; the explicit mask input is what counts.
        sequence, mask = inputs
        weights = ops.cast(mask, sequence.dtype)[:, None, :]
        return _weighted_moments(sequence, weights, self.epsilon)[:, 0]

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        sequence_shape = input_shape[0]
        return (sequence_shape[0], 2 * sequence_shape[-1])

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="keras_ser")
class SegmentStatisticsPooling(keras.layers.Layer):
    """Mean and standard deviation per time segment: `[B, T, F] -> [B, N, 2F]`.

    Each row's valid frames (`mask`, 1 for real frames) are cut into
    `n_segments` equal parts in time, as `tf_pipeline.segment_and_resize`
    cuts feature images: `length // n_segments` frames each, the last
    segment taking the remainder. Each segment gives `[mean | std]` of its
    frames. A row shorter than `n_segments` frames gives empty leading
    segments (zeros).

    Args:
        n_segments: int >= 1. Segments per utterance.
        epsilon: float. Added under the square root. Defaults to `1e-8`.
        **kwargs: standard layer arguments.

    Example:

    >>> import numpy as np
    >>> x = np.arange(6, dtype="float32").reshape(1, 6, 1)
    >>> mask = np.ones((1, 6), "float32")
    >>> SegmentStatisticsPooling(3)([x, mask]).numpy()[0, :, 0].tolist()
    [0.5, 2.5, 4.5]
    """

    def __init__(self, n_segments, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        if isinstance(n_segments, bool) or not isinstance(n_segments, int) or n_segments < 1:
            raise ValueError(f"n_segments must be a positive integer. Received: n_segments={n_segments!r}")
        self.n_segments = n_segments
        self.epsilon = _check_epsilon(epsilon)

    def call(self, inputs, mask=None):
        # `mask`: a Keras mask the sequence may carry; the explicit mask input is what counts.
        sequence, mask = inputs
        mask = ops.cast(mask, sequence.dtype)
        length = ops.cast(ops.sum(mask, axis=-1), "int32")  # [B]
        size = length // self.n_segments
        index = ops.arange(self.n_segments, dtype="int32")
        start = index[None, :] * size[:, None]  # [B, N]
        end = ops.where(index[None, :] == self.n_segments - 1, length[:, None], start + size[:, None])
        time = ops.arange(ops.shape(sequence)[1], dtype="int32")[None, None, :]
        inside = ops.logical_and(time >= start[:, :, None], time < end[:, :, None])
        weights = ops.cast(inside, sequence.dtype) * mask[:, None, :]  # [B, N, T]
        return _weighted_moments(sequence, weights, self.epsilon)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        sequence_shape = input_shape[0]
        return (sequence_shape[0], self.n_segments, 2 * sequence_shape[-1])

    def get_config(self):
        return {**super().get_config(), "n_segments": self.n_segments, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="keras_ser")
class FillPadding(keras.layers.Layer):
    """Sets the padded frames of a batch to one value: `[frames, mask] -> frames`.

    A network that has no mask of its own (a CNN) then sees zeros past each
    row's end, as a zero-padded convolution sees them past the end of a
    single utterance: `frames` `[batch, time, ...]` (any rank >= 2),
    `mask` `[batch, time]` (1 for real frames, e.g. from `FrameMask`).

    Args:
        value: float. What padded frames become. Defaults to `0.0`.
        **kwargs: standard layer arguments.

    Example:

    >>> import numpy as np
    >>> frames = np.array([[[2.0], [-1.0]]], "float32")
    >>> FillPadding()([frames, np.array([[1.0, 0.0]], "float32")]).numpy()[0, :, 0].tolist()
    [2.0, 0.0]
    """

    def __init__(self, value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.value = float(value)

    def call(self, inputs):
        frames, mask = inputs
        keep = ops.cast(mask, "bool")
        for _ in range(len(frames.shape) - 2):
            keep = ops.expand_dims(keep, -1)
        return ops.where(keep, frames, ops.cast(self.value, frames.dtype))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {**super().get_config(), "value": self.value}


@keras.saving.register_keras_serializable(package="keras_ser")
class DownsampleMask(keras.layers.Layer):
    """The frame mask after a network pools time by `stride`: `[B, T] -> [B, T // stride]`.

    Output frame `t` covers input frames `t * stride .. (t + 1) * stride - 1`
    (pooling without padding drops the remainder) and is real only if all of
    them are.

    Args:
        stride: int >= 1. Time reduction of the network.
        **kwargs: standard layer arguments.

    Example:

    >>> import numpy as np
    >>> DownsampleMask(2)(np.array([[1, 1, 1, 0, 0]], "float32")).numpy().tolist()
    [[1.0, 0.0]]
    """

    def __init__(self, stride, **kwargs):
        super().__init__(**kwargs)
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be a positive integer. Received: stride={stride!r}")
        self.stride = stride

    def call(self, inputs):
        if self.stride == 1:
            return ops.cast(inputs, self.compute_dtype)
        steps = ops.shape(inputs)[1] // self.stride
        windows = ops.reshape(inputs[:, : steps * self.stride], (ops.shape(inputs)[0], steps, self.stride))
        return ops.cast(ops.min(windows, axis=-1), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        time = None if input_shape[1] is None else input_shape[1] // self.stride
        return (input_shape[0], time)

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}
