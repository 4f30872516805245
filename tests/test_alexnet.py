"""AlexNet backbones (caffe and torchvision layouts) and local response normalisation."""

import re

import numpy as np
import pytest

import keras
from keras_ser.backbones import AlexNet
from keras_ser.backbones import BACKBONES
from keras_ser.backbones import alexnet_backbone
from keras_ser.backbones import get_backbone_factory
from keras_ser.backbones import register_backbone
from keras_ser.layers import LocalResponseNormalization

TINY = {"filters": (8, 8, 8, 8, 8), "fc_units": 16}


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


# -- full-size layouts: shapes and parameter counts (built, never run) ---------------------------

@pytest.mark.parametrize(
    "variant,kwargs,params,layer_shapes",
    [
        ("caffe", {}, 56_868_224,
         {"conv1": (11, 11, 3, 96), "conv2": (5, 5, 48, 256), "conv3": (3, 3, 256, 384),
          "conv4": (3, 3, 192, 384), "conv5": (3, 3, 192, 256), "fc6": (9216, 4096), "fc7": (4096, 4096)}),
        ("caffe", {"groups": 1}, 58_281_344,
         {"conv2": (5, 5, 96, 256), "conv4": (3, 3, 384, 384), "conv5": (3, 3, 384, 256)}),
        ("torchvision", {}, 57_003_840,
         {"conv1": (11, 11, 3, 64), "conv2": (5, 5, 64, 192), "conv3": (3, 3, 192, 384),
          "conv4": (3, 3, 384, 256), "conv5": (3, 3, 256, 256), "fc6": (9216, 4096), "fc7": (4096, 4096)}),
    ],
    ids=["caffe", "caffe_ungrouped", "torchvision"],
)
def test_full_size_layouts(variant, kwargs, params, layer_shapes):
    model = AlexNet(variant=variant, **kwargs)
    assert model.input.shape == (None, 227, 227, 3)
    assert model.output.shape == (None, 4096)
    assert model.get_layer("pool5").output.shape == (None, 6, 6, 256)
    assert model.count_params() == params
    for name, shape in layer_shapes.items():
        assert tuple(model.get_layer(name).kernel.shape) == shape, name
    names = [layer.name for layer in model.layers]
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "pool1", "pool2", "pool5",
                 "flatten", "fc6", "drop6", "fc7", "drop7"):
        assert name in names
    assert ("norm1" in names and "norm2" in names) == (variant == "caffe")
    assert ("conv1_pad" in names) == (variant == "torchvision")
    assert model.get_layer("drop6").rate == 0.5 and model.get_layer("drop7").rate == 0.5


def test_caffe_order_is_conv_relu_norm_pool():
    model = AlexNet(image_size=67, **TINY)
    names = [layer.name for layer in model.layers]
    assert names[:8] == ["images", "conv1", "norm1", "pool1", "conv2", "norm2", "pool2", "conv3"]
    assert model.get_layer("conv1").activation is keras.activations.relu
    assert model.get_layer("conv2").groups == 2 and model.get_layer("conv3").groups == 1


@pytest.mark.parametrize("variant", ["caffe", "torchvision"])
def test_tiny_forward_and_dropout_only_in_training(variant):
    model = AlexNet(variant=variant, image_size=67, **TINY)
    x = np.random.default_rng(0).normal(size=(2, 67, 67, 3)).astype("float32")
    inference = _numpy(model(x, training=False))
    assert inference.shape == (2, 16)
    assert (inference >= 0).all()  # FC7 after ReLU
    np.testing.assert_array_equal(_numpy(model(x, training=False)), inference)
    assert model.feature_dim == 16


def test_get_config_and_keras_round_trip(tmp_path):
    model = AlexNet(variant="caffe", image_size=75, filters=(4, 8, 8, 8, 4), fc_units=8, dropout=0.25)
    config = model.get_config()
    assert config["filters"] == [4, 8, 8, 8, 4] and config["dropout"] == 0.25 and config["image_size"] == 75
    assert AlexNet.from_config(config).get_config() == config
    x = np.random.default_rng(1).normal(size=(2, 75, 75, 3)).astype("float32")
    model.save(tmp_path / "alexnet.keras")
    restored = keras.saving.load_model(tmp_path / "alexnet.keras")
    assert isinstance(restored, AlexNet)
    np.testing.assert_array_equal(_numpy(restored(x)), _numpy(model(x)))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"variant": "vgg"}, "variant must be one of ('caffe', 'torchvision'). Received: variant='vgg'"),
        ({"filters": (8, 8, 8)}, "filters must be 5 positive integers"),
        ({"filters": (8, 8, 8, 8, 0)}, "Received: filters="),
        ({"fc_units": 0}, "fc_units must be a positive integer. Received: fc_units=0"),
        ({"filters": (8, 8, 6, 8, 8), "groups": 4}, "must be divisible by groups"),
        ({"groups": 0}, "groups must be a positive integer. Received: groups=0"),
        ({"dropout": 1.0}, "dropout must be in [0, 1). Received: dropout=1.0"),
        ({"image_size": 66}, "image_size must be an integer of at least 67 for the caffe AlexNet. "
                             "Received: image_size=66"),
        ({"image_size": 62, "variant": "torchvision"}, "at least 63 for the torchvision AlexNet"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    arguments = {"image_size": 67, **TINY, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        AlexNet(**arguments)


def test_registry_and_factory():
    assert BACKBONES["alexnet"] is alexnet_backbone
    assert "efficientnet_lite0" in BACKBONES
    backbone = get_backbone_factory("alexnet")(None, None, 67, 0.3, **TINY)
    assert isinstance(backbone, AlexNet) and backbone.variant == "caffe" and backbone.dropout == 0.3
    with pytest.raises(ValueError, match="Unknown backbone. Expected one of .*Received: backbone='resnet'"):
        get_backbone_factory("resnet")
    with pytest.raises(ValueError, match="No AlexNet weights can be downloaded"):
        alexnet_backbone("caffe", "imagenet", 67, 0.5, **TINY)

    register_backbone("tiny_alexnet", lambda variant, weights, image_size, dropout, **kw: alexnet_backbone(
        "torchvision", weights, image_size, dropout, **TINY))
    try:
        assert get_backbone_factory("tiny_alexnet")(None, None, 67, 0.5).variant == "torchvision"
    finally:
        del BACKBONES["tiny_alexnet"]
    with pytest.raises(ValueError, match="factory must be callable"):
        register_backbone("x", None)


# -- local response normalisation ---------------------------------------------------------------

def _numpy_lrn(x, size, alpha, beta, k):
    """Caffe's LRN across channels, written as a loop over channels."""
    channels = x.shape[-1]
    out = np.empty_like(x, dtype=np.float64)
    for c in range(channels):
        low, high = max(0, c - size // 2), min(channels, c + (size - 1) // 2 + 1)
        scale = k + alpha / size * np.sum(x[..., low:high].astype(np.float64) ** 2, axis=-1)
        out[..., c] = x[..., c] / scale ** beta
    return out


@pytest.mark.parametrize("size,alpha,beta,k", [(5, 1e-4, 0.75, 1.0), (4, 0.5, 0.5, 2.0), (3, 2.0, 0.75, 1.0)])
def test_lrn_matches_numpy_and_torch(size, alpha, beta, k):
    x = np.random.default_rng(2).normal(scale=3.0, size=(2, 3, 4, 9)).astype("float32")
    layer = LocalResponseNormalization(size=size, alpha=alpha, beta=beta, k=k)
    out = _numpy(layer(x))
    np.testing.assert_allclose(out, _numpy_lrn(x, size, alpha, beta, k), rtol=1e-5, atol=1e-6)

    torch = pytest.importorskip("torch")
    reference = torch.nn.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k)(
        torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-6)


def test_lrn_config_round_trip_and_bad_size():
    layer = LocalResponseNormalization(size=3, alpha=1e-3, beta=0.5, k=2.0, name="norm")
    assert LocalResponseNormalization.from_config(layer.get_config()).get_config() == layer.get_config()
    with pytest.raises(ValueError, match="size must be a positive integer. Received: size=0"):
        LocalResponseNormalization(size=0)
