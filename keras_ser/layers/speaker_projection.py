"""Removing the directions in which training speakers differ from pooled features."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_ser")
class SpeakerSubspaceProjection(keras.layers.Layer):
    """Projects features onto the complement of a speaker subspace: `x - (x V) V^T`.

    `V` (`basis`, `[features, rank]`, orthonormal columns, not trained by
    gradient descent) spans the directions in which the training speakers'
    mean features differ (nuisance attribute projection). It is fitted from
    the training speakers only (`keras_ser.training.frozen.fit_speaker_subspace`); its columns
    may be zero (they then remove nothing), so a model built with `rank=8`
    can carry a fitted subspace of any dimension up to 8. With all columns
    zero (the initial state) the layer is the identity.

    Args:
        rank: int >= 1. Columns of `basis`.
        **kwargs: standard layer arguments.

    Example:

    >>> import numpy as np
    >>> layer = SpeakerSubspaceProjection(rank=1)
    >>> layer.build((None, 2))
    >>> _ = layer.basis.assign(np.array([[1.0], [0.0]], "float32"))
    >>> layer(np.array([[3.0, 4.0]], "float32")).numpy().tolist()
    [[0.0, 4.0]]
    """

    def __init__(self, rank, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank must be a positive integer. Received: rank={rank!r}")
        self.rank = rank

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(f"The last axis of the input must be known. Received: input_shape={input_shape}")
        self.basis = self.add_weight(
            shape=(input_shape[-1], self.rank), initializer="zeros", trainable=False, name="basis"
        )

    def call(self, inputs):
        basis = ops.cast(self.basis, inputs.dtype)
        return inputs - ops.matmul(ops.matmul(inputs, basis), ops.transpose(basis))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "rank": self.rank}
