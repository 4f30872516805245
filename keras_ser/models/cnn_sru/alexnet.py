"""AlexNet backbones: the paper's Caffe network and torchvision's "one weird trick" layout.

Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep
Convolutional Neural Networks" (NIPS 2012) as released by BVLC for Caffe
(`bvlc_alexnet`, the network of Jiang, Fu & Tao 2019), and Krizhevsky, "One
weird trick for parallelizing convolutional neural networks" (2014) as
shipped by torchvision (`torchvision.models.alexnet`).

Both are headless: image `[image_size, image_size, 3]` -> FC7 features
`[fc_units]` (4096 by default), with dropout after FC6 and FC7. Layer names
follow the reference layouts so weights load by name (`conv1`..`conv5`,
`fc6`, `fc7`; see `keras_ser.weights`).
"""

import keras

from keras_ser.layers.lrn import LocalResponseNormalization
from keras_ser.rebuilt_model import RebuiltModel

VARIANTS = ("caffe", "torchvision")

# Per variant: conv filters, conv1 padding, groups of conv2/conv4/conv5, LRN.
_DEFAULTS = {
    "caffe": {"filters": (96, 256, 384, 384, 256), "conv1_padding": 0, "groups": 2, "lrn": True},
    "torchvision": {"filters": (64, 192, 384, 256, 256), "conv1_padding": 2, "groups": 1, "lrn": False},
}


def _pool5_size(image_size, conv1_padding):
    """Spatial size after pool5 (conv1 11x11/4, three 3x3/2 max pools, floor mode)."""
    size = (image_size + 2 * conv1_padding - 11) // 4 + 1
    for _ in range(3):
        size = (size - 3) // 2 + 1
    return size


def _min_image_size(conv1_padding):
    size = 11
    while _pool5_size(size, conv1_padding) < 1:
        size += 1
    return size


@keras.saving.register_keras_serializable(package="keras_ser")
class AlexNet(RebuiltModel):
    """AlexNet as a headless functional model: image -> FC7 features.

    Two layouts (`variant`):

    - `"caffe"`: BVLC AlexNet, the network of Jiang, Fu & Tao (2019).
      conv1 96x11x11/4 (no padding) -> ReLU -> `norm1` (LRN, size 5,
      alpha 1e-4, beta 0.75, k 1) -> `pool1` 3x3/2 -> conv2 256x5x5 (2 groups)
      -> ReLU -> `norm2` -> `pool2` -> conv3 384x3x3 -> conv4 384x3x3
      (2 groups) -> conv5 256x3x3 (2 groups) -> `pool5` -> `flatten` -> fc6
      4096 -> `drop6` -> fc7 4096 -> `drop7`. 227x227 input (6x6x256 at
      pool5). 56.9 M parameters (58.3 M with `groups=1`).
    - `"torchvision"`: the "one weird trick" layout of
      `torchvision.models.alexnet`: conv1 64x11x11/4 with 2 pixels of zero
      padding (`conv1_pad`), conv2 192, conv3 384, conv4 256, conv5 256, no
      groups, no LRN; then the same pools and FC layers. 57.0 M parameters.
      torchvision's `AdaptiveAvgPool2d((6, 6))` is the identity at 224 and
      227 input (pool5 is already 6x6) and is not reproduced: at other
      sizes fc6 sees pool5 as it is.

    Convolutions with padding use "same" (symmetric for the odd kernels at
    stride 1); max pools floor their output size (Caffe rounds up; the two
    agree at 227 and at every size where `(n - 3)` is even at each pool).
    Dropout sits after FC6 and FC7 (torchvision puts it before them; without
    training the two are the same network). The output is FC7 after ReLU
    and `drop7`.

    The input channels are whatever the caller feeds: for keras-ser the
    standardised log-Mel, delta and delta-delta images. (ImageNet weights
    expect BGR for Caffe and RGB for torchvision, mean-subtracted.)

    Args:
        variant: str. `"caffe"` or `"torchvision"`. Defaults to `"caffe"`.
        image_size: int. Height and width of the square input. Defaults to
            `227`.
        filters: tuple of 5 ints or None. Filters of conv1..conv5. Defaults
            to `None`: the variant's widths.
        fc_units: int. Width of fc6 and fc7 (the feature size). Defaults to
            `4096`.
        groups: int or None. Groups of conv2, conv4 and conv5. Defaults to
            `None`: 2 for `"caffe"`, 1 for `"torchvision"`.
        dropout: float. Dropout rate after fc6 and fc7. Defaults to `0.5`.
        input_channels: int. Channels of the input image. Defaults to `3`.
        dtype: dtype or dtype policy of the layers. Defaults to `None`
            (the global policy).
        name: str. Defaults to `"alexnet"`.

    Example:

    >>> import numpy as np
    >>> backbone = AlexNet(variant="caffe", image_size=67, filters=(8, 8, 8, 8, 8), fc_units=16)
    >>> tuple(backbone(np.zeros((2, 67, 67, 3), "float32")).shape)
    (2, 16)
    >>> full = AlexNet()                                  # the paper's network
    >>> full.count_params()
    56868224
    """

    def __init__(
        self,
        variant="caffe",
        image_size=227,
        filters=None,
        fc_units=4096,
        groups=None,
        dropout=0.5,
        input_channels=3,
        dtype=None,
        name="alexnet",
        **kwargs,
    ):
        # === Arguments ===
        if variant not in VARIANTS:
            raise ValueError(
                f"variant must be one of {VARIANTS}. Received: variant={variant!r}"
            )
        defaults = _DEFAULTS[variant]
        filters = tuple(defaults["filters"] if filters is None else filters)
        groups = defaults["groups"] if groups is None else groups
        if len(filters) != 5 or not all(isinstance(f, int) and f > 0 for f in filters):
            raise ValueError(
                f"filters must be 5 positive integers (conv1..conv5). Received: filters={filters!r}"
            )
        if isinstance(fc_units, bool) or not isinstance(fc_units, int) or fc_units < 1:
            raise ValueError(f"fc_units must be a positive integer. Received: fc_units={fc_units!r}")
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"groups must be a positive integer. Received: groups={groups!r}")
        grouped_in = (filters[0], filters[2], filters[3])  # inputs of conv2, conv4, conv5
        grouped_out = (filters[1], filters[3], filters[4])
        if any(n % groups for n in grouped_in + grouped_out):
            raise ValueError(
                "With groups > 1 the inputs and outputs of conv2, conv4 and conv5 "
                f"(filters[0:5]) must be divisible by groups. Received: filters={filters}, "
                f"groups={groups}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout!r}")
        min_size = _min_image_size(defaults["conv1_padding"])
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < min_size:
            raise ValueError(
                f"image_size must be an integer of at least {min_size} for the {variant} "
                f"AlexNet. Received: image_size={image_size!r}"
            )

        # === Layers ===
        def conv(index, kernel, stride=1, padding="same", groups=1):
            return keras.layers.Conv2D(
                filters[index - 1], kernel, strides=stride, padding=padding, groups=groups,
                activation="relu", dtype=dtype, name=f"conv{index}",
            )

        def pool(index):
            return keras.layers.MaxPooling2D(3, strides=2, dtype=dtype, name=f"pool{index}")

        def lrn(index):
            return LocalResponseNormalization(size=5, alpha=1e-4, beta=0.75, k=1.0, dtype=dtype, name=f"norm{index}")

        # === Functional graph ===
        images = keras.Input(shape=(image_size, image_size, input_channels), name="images")
        x = images
        if defaults["conv1_padding"]:
            x = keras.layers.ZeroPadding2D(defaults["conv1_padding"], dtype=dtype, name="conv1_pad")(x)
        x = conv(1, 11, stride=4, padding="valid")(x)
        if defaults["lrn"]:
            x = lrn(1)(x)
        x = pool(1)(x)
        x = conv(2, 5, groups=groups)(x)
        if defaults["lrn"]:
            x = lrn(2)(x)
        x = pool(2)(x)
        x = conv(3, 3)(x)
        x = conv(4, 3, groups=groups)(x)
        x = conv(5, 3, groups=groups)(x)
        x = pool(5)(x)
        x = keras.layers.Flatten(dtype=dtype, name="flatten")(x)
        x = keras.layers.Dense(fc_units, activation="relu", dtype=dtype, name="fc6")(x)
        x = keras.layers.Dropout(dropout, dtype=dtype, name="drop6")(x)
        x = keras.layers.Dense(fc_units, activation="relu", dtype=dtype, name="fc7")(x)
        features = keras.layers.Dropout(dropout, dtype=dtype, name="drop7")(x)
        super().__init__(inputs=images, outputs=features, dtype=dtype, name=name, **kwargs)

        # === Config ===
        self.variant = variant
        self.image_size = image_size
        self.filters = filters
        self.fc_units = fc_units
        self.groups = groups
        self.dropout = dropout
        self.input_channels = input_channels

    @property
    def feature_dim(self):
        """Width of the output feature vector (`fc_units`)."""
        return self.fc_units

    def get_config(self):
        # Not chained to the functional config: the graph is rebuilt from these arguments.
        return {
            "variant": self.variant,
            "image_size": self.image_size,
            "filters": list(self.filters),
            "fc_units": self.fc_units,
            "groups": self.groups,
            "dropout": self.dropout,
            "input_channels": self.input_channels,
            **self.base_config(),
        }


def alexnet_backbone(variant=None, weights=None, image_size=227, dropout=0.5, **kwargs):
    """Builds an `AlexNet` backbone, optionally loading pretrained weights.

    The factory registered as `"alexnet"` in `keras_ser.backbones.BACKBONES`
    (what `keras_ser.build_model(backbone="alexnet", ...)` calls).

    Args:
        variant: str or None. `"caffe"` (the paper's network) or
            `"torchvision"`. Defaults to `None`: `"caffe"`.
        weights: None or a path. `None` leaves the random initialisation. A
            `.npy` file is read with `keras_ser.weights.load_caffe_alexnet`
            (the `bvlc_alexnet.npy` format, for `variant="caffe"`); a `.pth`
            or `.pt` file with `keras_ser.weights.load_torchvision_alexnet`
            (for `variant="torchvision"`; needs torch). Nothing is
            downloaded: ImageNet AlexNet weights must be brought as a file.
        image_size: int. Input height and width. Defaults to `227`.
        dropout: float. Dropout after fc6 and fc7. Defaults to `0.5`.
        **kwargs: passed to `AlexNet` (`filters`, `fc_units`, `groups`,
            `dtype`, `name`).

    Returns:
        An `AlexNet` (a functional `keras.Model`).

    Example:

    >>> backbone = alexnet_backbone("caffe", image_size=67, filters=(8, 8, 8, 8, 8), fc_units=16)
    >>> backbone.output.shape
    (None, 16)
    >>> alexnet_backbone("caffe", weights="bvlc_alexnet.npy")  # doctest: +SKIP
    """
    variant = "caffe" if variant is None else variant
    backbone = AlexNet(variant=variant, image_size=image_size, dropout=dropout, **kwargs)
    if weights is None:
        return backbone
    path = str(weights) if hasattr(weights, "__fspath__") else weights
    if not isinstance(path, str):
        raise ValueError(
            f"weights must be None or a path to a .npy or .pth file. Received: weights={weights!r}"
        )
    from keras_ser import weights as weights_module

    if path.endswith(".npy"):
        weights_module.load_caffe_alexnet(backbone, path)
    elif path.endswith((".pth", ".pt")):
        weights_module.load_torchvision_alexnet(backbone, path)
    else:
        raise ValueError(
            "No AlexNet weights can be downloaded here: pass a path to Caffe's "
            "bvlc_alexnet.npy (variant='caffe') or a torchvision state dict .pth "
            f"(variant='torchvision'). Received: weights={weights!r}"
        )
    return backbone
