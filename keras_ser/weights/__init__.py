"""Import of pretrained backbone weights from files users bring (nothing is downloaded).

- `load_caffe_alexnet(backbone, path)`: Caffe's `bvlc_alexnet.npy`.
- `load_torchvision_alexnet(backbone, path)`: a torchvision AlexNet state dict.
- `load_efficientnet_lite0(model, path=None)`: EfficientNet-Lite0 torch weights
  (`keras_ser.weights.efficientnet`, imported on first use).

Example:

>>> from keras_ser import weights
>>> from keras_ser.backbones import AlexNet
>>> weights.load_caffe_alexnet(AlexNet(), "bvlc_alexnet.npy")   # doctest: +SKIP
"""

import importlib

from keras_ser.weights.alexnet import load_caffe_alexnet
from keras_ser.weights.alexnet import load_torchvision_alexnet

_LAZY = {"load_efficientnet_lite0": "keras_ser.weights.efficientnet"}

__all__ = ["load_caffe_alexnet", "load_efficientnet_lite0", "load_torchvision_alexnet"]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_ser.weights' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
