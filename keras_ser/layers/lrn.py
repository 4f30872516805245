"""Local response normalisation across channels, as in Caffe's AlexNet."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_ser")
class LocalResponseNormalization(keras.layers.Layer):
    """Local response normalisation across channels (Krizhevsky et al. 2012).

    Caffe's `LRN` layer in `ACROSS_CHANNELS` mode (also `torch.nn.LocalResponseNorm`),
    on channels-last input:

        b_c = a_c / (k + alpha / size * sum_{c' in window(c)} a_{c'}^2) ** beta

    where the window holds `size` neighbouring channels centred on `c`
    (`size // 2` before, `(size - 1) // 2` after, clipped at the edges).
    Note that `alpha` is divided by `size`, as in Caffe; TensorFlow's
    `tf.nn.local_response_normalization` takes `alpha / size` as its `alpha`
    and `size // 2` as its `depth_radius`. Written with `keras.ops` only.

    The defaults are those of the BVLC AlexNet (`norm1`, `norm2`).

    Args:
        size: int. Number of channels in the window. Defaults to `5`.
        alpha: float. Scale of the sum of squares (divided by `size`).
            Defaults to `1e-4`.
        beta: float. Exponent. Defaults to `0.75`.
        k: float. Additive constant. Defaults to `1.0`.
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> lrn = LocalResponseNormalization(size=5, alpha=1e-4, beta=0.75, k=1.0)
    >>> tuple(lrn(np.ones((1, 4, 4, 16), "float32")).shape)
    (1, 4, 4, 16)
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=1.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer. Received: size={size!r}")
        self.size = size
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)
        self.supports_masking = True

    def call(self, inputs):
        channels = inputs.shape[-1]
        before, after = self.size // 2, (self.size - 1) // 2
        squares = ops.square(inputs)
        padding = [[0, 0]] * (len(inputs.shape) - 1) + [[before, after]]
        padded = ops.pad(squares, padding)
        window_sum = padded[..., 0:channels]
        for offset in range(1, self.size):
            window_sum = window_sum + padded[..., offset : offset + channels]
        scale = self.k + (self.alpha / self.size) * window_sum
        return inputs / ops.power(scale, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {"size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k}
        return {**super().get_config(), **config}
