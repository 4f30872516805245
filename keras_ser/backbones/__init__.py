"""Backbones of keras-ser: headless image -> feature-vector models, and their registry.

`BACKBONES` maps a backbone name to a factory
`factory(variant, weights, image_size, dropout, **kwargs) -> keras.Model`
(a functional model from `[image_size, image_size, 3]` images to a feature
vector `[batch, features]`). `keras_ser.build_model(backbone=name, ...)`
looks names up here; a new backbone is one entry (or one call to
`register_backbone`).

Example:

>>> from keras_ser import backbones
>>> sorted(backbones.BACKBONES)
['alexnet', 'efficientnet_lite0']
>>> factory = backbones.get_backbone_factory("alexnet")
>>> model = factory("caffe", None, 67, 0.5, filters=(8, 8, 8, 8, 8), fc_units=16)
>>> model.output.shape
(None, 16)
"""

from keras_ser.backbones.alexnet import AlexNet
from keras_ser.backbones.alexnet import alexnet_backbone


def _efficientnet_lite0(variant=None, weights=None, image_size=224, dropout=0.2, **kwargs):
    """EfficientNet-Lite0 (`keras_ser.backbones.efficientnet_lite.efficientnet_lite0`), imported on use."""
    from keras_ser.backbones.efficientnet_lite import efficientnet_lite0

    return efficientnet_lite0(
        variant=variant, weights=weights, image_size=image_size, dropout=dropout, **kwargs
    )


BACKBONES = {
    "alexnet": alexnet_backbone,
    "efficientnet_lite0": _efficientnet_lite0,
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
        raise ValueError(
            f"Unknown backbone. Expected one of {sorted(BACKBONES)}. Received: backbone={name!r}"
        )
    return BACKBONES[name]


__all__ = ["AlexNet", "BACKBONES", "alexnet_backbone", "get_backbone_factory", "register_backbone"]
