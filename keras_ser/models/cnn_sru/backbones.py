"""The image backbones of the CNN+SRU family, by name: `BACKBONES` and `build_backbone`.

`BACKBONES` maps a backbone name to a factory
`factory(variant, weights, image_size, dropout, **kwargs) -> keras.Model`
(a functional model from `[image_size, image_size, 3]` images to a feature
vector `[batch, features]`). `keras_ser.build_model(backbone=name, ...)`
looks names up here for `cnn_sru` and `cnn`; a new backbone is one entry
(or one call to `register_backbone`).

Example:

>>> sorted(BACKBONES)
['alexnet', 'efficientnet_lite0']
>>> model = get_backbone_factory("alexnet")("caffe", None, 67, 0.5, filters=(8, 8, 8, 8, 8), fc_units=16)
>>> model.output.shape
(None, 16)
"""

from keras_ser.models.checks import check_positive_int
from keras_ser.models.cnn_sru.alexnet import alexnet_backbone


def efficientnet_lite0_backbone(variant=None, weights=None, image_size=224, dropout=0.2, **kwargs):
    """EfficientNet-Lite0 (`keras_ser.models.cnn_sru.efficientnet_lite.efficientnet_lite0`), imported on use."""
    from keras_ser.models.cnn_sru.efficientnet_lite import efficientnet_lite0

    return efficientnet_lite0(variant=variant, weights=weights, image_size=image_size, dropout=dropout, **kwargs)


BACKBONES = {
    "alexnet": alexnet_backbone,
    "efficientnet_lite0": efficientnet_lite0_backbone,
}


def register_backbone(name, factory):
    """Adds a backbone factory to `BACKBONES` under `name`.

    Args:
        name: str. The name `build_model(backbone=...)` will accept.
        factory: callable `factory(variant, weights, image_size, dropout,
            **kwargs)` returning a functional `keras.Model` from images to
            a feature vector.

    Example:

    >>> register_backbone("alexnet_torchvision",
    ...     lambda variant, weights, image_size, dropout, **kw:
    ...         alexnet_backbone("torchvision", weights, image_size, dropout, **kw))
    >>> "alexnet_torchvision" in BACKBONES
    True
    >>> del BACKBONES["alexnet_torchvision"]
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string. Received: name={name!r}")
    if not callable(factory):
        raise ValueError(f"factory must be callable. Received: factory={factory!r}")
    BACKBONES[name] = factory


def get_backbone_factory(name):
    """Returns the factory registered as `name`; a `ValueError` lists the known names.

    Example:

    >>> get_backbone_factory("alexnet") is alexnet_backbone
    True
    """
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone. Expected one of {sorted(BACKBONES)}. Received: backbone={name!r}")
    return BACKBONES[name]


def build_backbone(name, variant, weights, image_size, dropout, backbone_kwargs=None):
    """The backbone `name` built by its factory, `image_size` checked first."""
    check_positive_int("image_size", image_size)
    factory = get_backbone_factory(name)
    return factory(variant, weights, image_size, dropout, **(backbone_kwargs or {}))
