"""Per-channel standardisation of raw feature images, stored inside the model."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="keras_ser")
class ChannelStandardization(keras.layers.Layer):
    """Standardises each feature channel with stored statistics: `(x - mean) / std`.

    The first layer of every keras-ser zoo model (named `"standardize"`).
    Models take raw feature images (log-Mel, delta and delta-delta channels,
    not standardised); the statistics of each channel, computed on the
    training speakers only, live in this layer's non-trainable weights
    `mean` and `variance` (shape `[channels]`, defaults 0 and 1: identity),
    so they travel with the model into `.keras` files and SavedModels.
    Set them with `keras_ser.set_channel_stats(model, mean, std)`.

    Channels are on the last axis. For frame-level features laid out as one
    vector per frame, `[log-Mel (n_mels) | delta (n_mels) | delta-delta
    (n_mels)]`, pass `features_per_channel=n_mels`: the last axis then holds
    `channels` consecutive blocks of `features_per_channel` values, each block
    standardised with its channel's statistics.

    Computes `(x - mean) / max(sqrt(variance), epsilon)` (the same guard as
    `keras.layers.Normalization`). Masks pass through unchanged.

    Args:
        features_per_channel: int. Consecutive features of the last axis
            that share one channel's statistics. Defaults to `1` (the last
            axis is the channel axis).
        epsilon: float. Lower bound of the standard deviation. Defaults to
            `1e-7`.
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> layer = ChannelStandardization()
    >>> images = np.ones((2, 8, 8, 3), "float32") * [1.0, 2.0, 3.0]
    >>> _ = layer(images)  # builds mean = 0, variance = 1
    >>> _ = layer.mean.assign([1.0, 2.0, 3.0]), layer.variance.assign([4.0, 4.0, 4.0])
    >>> float(keras.ops.max(keras.ops.abs(layer(images))))
    0.0
    """

    def __init__(self, features_per_channel=1, epsilon=1e-7, **kwargs):
        super().__init__(**kwargs)
        if (
            isinstance(features_per_channel, bool)
            or not isinstance(features_per_channel, int)
            or features_per_channel < 1
        ):
            raise ValueError(
                "features_per_channel must be a positive integer. "
                f"Received: features_per_channel={features_per_channel!r}"
            )
        self.features_per_channel = features_per_channel
        self.epsilon = float(epsilon)
        self.supports_masking = True

    def build(self, input_shape):
        width = input_shape[-1]
        if width is None or width % self.features_per_channel:
            raise ValueError(
                "The last axis must be a known multiple of features_per_channel="
                f"{self.features_per_channel}. Received: input shape {tuple(input_shape)}"
            )
        channels = width // self.features_per_channel
        self.mean = self.add_weight(
            name="mean", shape=(channels,), initializer="zeros", trainable=False
        )
        self.variance = self.add_weight(
            name="variance", shape=(channels,), initializer="ones", trainable=False
        )

    def call(self, inputs):
        mean = ops.cast(self.mean, inputs.dtype)
        std = ops.maximum(ops.sqrt(ops.cast(self.variance, inputs.dtype)), self.epsilon)
        if self.features_per_channel > 1:
            mean = ops.repeat(mean, self.features_per_channel)
            std = ops.repeat(std, self.features_per_channel)
        return (inputs - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {"features_per_channel": self.features_per_channel, "epsilon": self.epsilon}
        return {**super().get_config(), **config}


STANDARDIZE_LAYER = "standardize"


def _find_layer(model, name):
    """Depth-first search for a layer called `name` in nested models and wrappers."""
    stack = [model]
    while stack:
        layer = stack.pop()
        if layer is not model and layer.name == name:
            return layer
        children = list(getattr(layer, "layers", None) or [])
        if getattr(layer, "layer", None) is not None:
            children.append(layer.layer)
        stack.extend(reversed(children))
    return None


def _standardize_layer(model):
    layer = _find_layer(model, STANDARDIZE_LAYER)
    if not isinstance(layer, ChannelStandardization):
        raise ValueError(
            f"Expected a model with a ChannelStandardization layer named '{STANDARDIZE_LAYER}' "
            f"(every keras_ser zoo model has one). Received: model {getattr(model, 'name', model)!r}"
        )
    if not layer.built:
        raise ValueError(
            f"The '{STANDARDIZE_LAYER}' layer of model {model.name!r} is not built yet; "
            "call the model on data (or build it) first."
        )
    return layer


def set_channel_stats(model, mean, std=None):
    """Stores per-channel feature statistics in a model's `"standardize"` layer.

    Every keras-ser zoo model takes raw feature images and standardises them
    in its first layer, `ChannelStandardization` named `"standardize"`. Call
    this with statistics computed on the training speakers only (never the
    test speaker: see docs/design.md, Evaluation rules); they are then saved with
    the model (`.keras`, SavedModel), so inference needs nothing else.

    Args:
        model: a keras-ser model (any zoo entry), or any model containing a
            `ChannelStandardization` layer named `"standardize"`.
        mean: array-like `[channels]` (3: log-Mel, delta, delta-delta), or an
            object with `mean` and `std` attributes (such as
            `tf_pipeline.ChannelStats`) when `std` is omitted.
        std: array-like `[channels]` of standard deviations, all positive.

    Raises:
        ValueError: no such layer, shapes that do not match the layer's
            `[channels]`, non-finite values, or a non-positive `std`.

    Example:

    >>> import keras_ser
    >>> model = keras_ser.build_model(image_size=67, sru_units=16, compile=False,
    ...     backbone_kwargs={"filters": (8, 8, 8, 8, 8), "fc_units": 16})
    >>> set_channel_stats(model, mean=[-6.0, 0.0, 0.0], std=[2.5, 0.3, 0.1])
    >>> [round(float(v), 3) for v in get_channel_stats(model)[1]]
    [2.5, 0.3, 0.1]
    """
    if std is None:
        if not (hasattr(mean, "mean") and hasattr(mean, "std")):
            raise ValueError(
                "Pass `mean` and `std`, or one object with `mean` and `std` attributes. "
                f"Received: mean={mean!r}, std=None"
            )
        mean, std = mean.mean, mean.std
    layer = _standardize_layer(model)
    expected = tuple(layer.mean.shape)
    mean = np.asarray(keras.ops.convert_to_numpy(mean), dtype="float64")
    std = np.asarray(keras.ops.convert_to_numpy(std), dtype="float64")
    for label, value in (("mean", mean), ("std", std)):
        if value.shape != expected:
            raise ValueError(
                f"{label} must have shape {expected} (one value per channel). "
                f"Received: {label} of shape {value.shape}"
            )
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{label} must be finite. Received: {label}={value.tolist()}")
    if not np.all(std > 0):
        raise ValueError(f"std must be positive. Received: std={std.tolist()}")
    layer.mean.assign(mean.astype("float32"))
    layer.variance.assign(np.square(std).astype("float32"))


def get_channel_stats(model):
    """Returns `(mean, std)`, numpy arrays `[channels]`, of a model's `"standardize"` layer.

    Example:

    >>> import keras_ser
    >>> model = keras_ser.build_model("sru", sru_units=8, compile=False)
    >>> mean, std = get_channel_stats(model)     # defaults: identity
    >>> mean.tolist(), std.tolist()
    ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    """
    layer = _standardize_layer(model)
    mean = keras.ops.convert_to_numpy(layer.mean)
    std = np.sqrt(keras.ops.convert_to_numpy(layer.variance))
    return mean, std
