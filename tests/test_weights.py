"""Import of Caffe (bvlc_alexnet.npy) and torchvision AlexNet weights, checked against PyTorch."""

import numpy as np
import pytest

import keras
import keras_ser
from keras_ser.backbones import AlexNet
from keras_ser.backbones import alexnet_backbone
from keras_ser.weights import load_caffe_alexnet
from keras_ser.weights import load_torchvision_alexnet

torch = pytest.importorskip("torch")
nn = torch.nn

FILTERS = (8, 12, 16, 12, 8)  # divisible by 2 (grouped conv2/4/5) and all different
FC_UNITS = 24
IMAGE_SIZE = 99  # pool5 is 2x2: the fc6 flatten order matters


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _images(seed, size=IMAGE_SIZE, batch=2):
    return np.random.default_rng(seed).normal(size=(batch, size, size, 3)).astype("float32")


class CaffeAlexNet(nn.Module):
    """BVLC AlexNet in PyTorch (NCHW, Caffe's ceil-mode pools, grouped convs, LRN)."""

    def __init__(self, filters, fc_units, pool5_hw):
        super().__init__()
        f = filters
        self.conv1 = nn.Conv2d(3, f[0], 11, stride=4)
        self.conv2 = nn.Conv2d(f[0], f[1], 5, padding=2, groups=2)
        self.conv3 = nn.Conv2d(f[1], f[2], 3, padding=1)
        self.conv4 = nn.Conv2d(f[2], f[3], 3, padding=1, groups=2)
        self.conv5 = nn.Conv2d(f[3], f[4], 3, padding=1, groups=2)
        self.fc6 = nn.Linear(f[4] * pool5_hw * pool5_hw, fc_units)
        self.fc7 = nn.Linear(fc_units, fc_units)
        self.lrn = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)

    def forward(self, x):
        relu = torch.relu
        x = self.pool(self.lrn(relu(self.conv1(x))))
        x = self.pool(self.lrn(relu(self.conv2(x))))
        x = relu(self.conv5(relu(self.conv4(relu(self.conv3(x))))))
        x = torch.flatten(self.pool(x), 1)  # C, H, W order
        return relu(self.fc7(relu(self.fc6(x))))


class TorchvisionAlexNet(nn.Module):
    """torchvision.models.alexnet's module layout (same state-dict keys), any widths."""

    def __init__(self, filters, fc_units, pool5_hw):
        super().__init__()
        f = filters
        self.features = nn.Sequential(
            nn.Conv2d(3, f[0], 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(f[0], f[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(f[1], f[2], 3, padding=1), nn.ReLU(),
            nn.Conv2d(f[2], f[3], 3, padding=1), nn.ReLU(),
            nn.Conv2d(f[3], f[4], 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((pool5_hw, pool5_hw))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(f[4] * pool5_hw * pool5_hw, fc_units), nn.ReLU(),
            nn.Dropout(0.5), nn.Linear(fc_units, fc_units), nn.ReLU(), nn.Linear(fc_units, 1000),
        )

    def fc7(self, x):
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier[:6](x)


def _torch_forward(fn, images):
    with torch.no_grad():
        return fn(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()


@pytest.fixture(scope="module")
def caffe_reference():
    torch.manual_seed(0)
    net = CaffeAlexNet(FILTERS, FC_UNITS, pool5_hw=2).eval()
    blobs = {name: [getattr(net, name).weight.detach().numpy().copy(),
                    getattr(net, name).bias.detach().numpy().copy()]
             for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")}
    blobs["fc8"] = [np.zeros((1000, FC_UNITS), "float32"), np.zeros(1000, "float32")]
    images = _images(1)
    return blobs, images, _torch_forward(net, images)


def kaffe_layout(blobs, pool5_shape):
    """What caffe-tensorflow writes to bvlc_alexnet.npy from Caffe blobs (HWIO convs,
    [in, out] fc, fc6 rows rewired from C,H,W to H,W,C)."""
    height, width, channels = pool5_shape
    out = {}
    for name, (weight, bias) in blobs.items():
        if weight.ndim == 4:
            weight = weight.transpose(2, 3, 1, 0)
        elif name == "fc6":
            weight = weight.reshape(-1, channels, height, width).transpose(2, 3, 1, 0).reshape(-1, weight.shape[0])
        else:
            weight = weight.T
        out[name] = [weight, bias]
    return out


def _caffe_backbone():
    return AlexNet(variant="caffe", image_size=IMAGE_SIZE, filters=FILTERS, fc_units=FC_UNITS)


def test_caffe_npy_in_the_caffe_tensorflow_layout_matches_pytorch(caffe_reference, tmp_path):
    blobs, images, expected = caffe_reference
    backbone = _caffe_backbone()
    assert backbone.get_layer("pool5").output.shape == (None, 2, 2, FILTERS[4])
    path = tmp_path / "bvlc_alexnet.npy"
    np.save(path, kaffe_layout(blobs, (2, 2, FILTERS[4])), allow_pickle=True)
    assert load_caffe_alexnet(backbone, path) is backbone
    out = _numpy(backbone(images, training=False))
    assert np.abs(expected).max() > 0.1  # ReLUs not all off: a real comparison
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_caffe_blob_dump_is_detected_and_permuted(caffe_reference, tmp_path):
    blobs, images, expected = caffe_reference
    path = tmp_path / "caffe_blobs.npy"
    np.save(path, blobs, allow_pickle=True)  # conv [out, in, h, w], fc [out, in], fc6 C,H,W
    backbone = load_caffe_alexnet(_caffe_backbone(), path)
    np.testing.assert_allclose(_numpy(backbone(images, training=False)), expected, atol=1e-4)


def test_caffe_fc6_order_override_and_dict_formats(caffe_reference):
    blobs, images, expected = caffe_reference
    kaffe = kaffe_layout(blobs, (2, 2, FILTERS[4]))
    # A file with HWIO convs but fc6 rows still in Caffe's C,H,W order.
    mixed = dict(kaffe)
    mixed["fc6"] = [blobs["fc6"][0].T, blobs["fc6"][1]]
    backbone = load_caffe_alexnet(_caffe_backbone(), mixed, fc6_order="chw")
    np.testing.assert_allclose(_numpy(backbone(images, training=False)), expected, atol=1e-4)
    # Loading it as H,W,C (the default for this layout) gives a different network.
    wrong = load_caffe_alexnet(_caffe_backbone(), mixed)
    assert np.abs(_numpy(wrong(images, training=False)) - expected).max() > 1e-3
    # {"weights": W, "biases": b} entries (newer caffe-tensorflow output).
    as_dicts = {name: {"weights": w, "biases": b} for name, (w, b) in kaffe.items()}
    backbone = load_caffe_alexnet(_caffe_backbone(), as_dicts)
    np.testing.assert_allclose(_numpy(backbone(images, training=False)), expected, atol=1e-4)
    with pytest.raises(ValueError, match="fc6_order must be None, 'hwc' or 'chw'. Received: fc6_order='cwh'"):
        load_caffe_alexnet(_caffe_backbone(), kaffe, fc6_order="cwh")


def test_caffe_errors_name_the_layer_and_assign_nothing(caffe_reference):
    blobs, _, _ = caffe_reference
    kaffe = kaffe_layout(blobs, (2, 2, FILTERS[4]))
    backbone = _caffe_backbone()
    before = [w.copy() for w in backbone.get_weights()]

    missing = {k: v for k, v in kaffe.items() if k != "conv3"}
    with pytest.raises(ValueError, match=r"Layer 'conv3' is missing from the given dict. Found layers: \['conv1'"):
        load_caffe_alexnet(backbone, missing)
    bad_fc7 = dict(kaffe, fc7=[np.zeros((FC_UNITS, 5), "float32"), kaffe["fc7"][1]])
    with pytest.raises(ValueError, match=r"Layer 'fc7' .*expected weights of shape \(24, 24\).*Received: shape \(24, 5\)"):
        load_caffe_alexnet(backbone, bad_fc7)
    bad_bias = dict(kaffe, conv4=[kaffe["conv4"][0], np.zeros(3, "float32")])
    with pytest.raises(ValueError, match=r"Layer 'conv4' .*expected biases of shape \(12,\). Received: shape \(3,\)"):
        load_caffe_alexnet(backbone, bad_bias)
    with pytest.raises(ValueError, match=r"Layer 'conv1' .*Received: shape \(5, 5, 3, 8\)"):
        load_caffe_alexnet(backbone, dict(kaffe, conv1=[np.zeros((5, 5, 3, 8)), kaffe["conv1"][1]]))
    for old, new in zip(before, backbone.get_weights()):
        np.testing.assert_array_equal(old, new)  # nothing was assigned

    torchvision_backbone = AlexNet(variant="torchvision", image_size=IMAGE_SIZE, filters=FILTERS, fc_units=FC_UNITS)
    with pytest.raises(ValueError, match="Layer 'conv2'"):  # groups differ: conv2 is [5, 5, 8, 12] there
        load_caffe_alexnet(torchvision_backbone, kaffe)
    with pytest.raises(ValueError, match="Expected a keras_ser.backbones.AlexNet"):
        load_caffe_alexnet(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), kaffe)


@pytest.fixture(scope="module")
def torchvision_reference(tmp_path_factory):
    torch.manual_seed(1)
    net = TorchvisionAlexNet(FILTERS, FC_UNITS, pool5_hw=2).eval()
    path = tmp_path_factory.mktemp("torchvision") / "alexnet-owt-tiny.pth"
    torch.save(net.state_dict(), path)
    images = _images(2)
    return path, images, _torch_forward(net.fc7, images)


def _torchvision_backbone():
    return AlexNet(variant="torchvision", image_size=IMAGE_SIZE, filters=FILTERS, fc_units=FC_UNITS)


def test_torchvision_state_dict_matches_pytorch_fc7(torchvision_reference):
    path, images, expected = torchvision_reference
    backbone = _torchvision_backbone()
    assert backbone.get_layer("pool5").output.shape == (None, 2, 2, FILTERS[4])
    load_torchvision_alexnet(backbone, path)
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(_numpy(backbone(images, training=False)), expected, atol=1e-4)
    # The factory dispatches on the extension.
    from_factory = alexnet_backbone("torchvision", path, IMAGE_SIZE, 0.5, filters=FILTERS, fc_units=FC_UNITS)
    np.testing.assert_allclose(_numpy(from_factory(images, training=False)), expected, atol=1e-4)


def test_torchvision_errors_name_the_layer(torchvision_reference):
    path, _, _ = torchvision_reference
    state = torch.load(path, weights_only=True)
    backbone = _torchvision_backbone()
    missing = {k: v for k, v in state.items() if k != "classifier.4.weight"}
    with pytest.raises(ValueError, match=r"Layer 'fc7' \(classifier.4\) is missing from the given state dict"):
        load_torchvision_alexnet(backbone, missing)
    bad = dict(state)
    bad["features.8.weight"] = torch.zeros(12, 16, 5, 5)
    with pytest.raises(ValueError, match=r"Layer 'conv4' of the given state dict \(features.8\): expected weights"):
        load_torchvision_alexnet(backbone, bad)
    with pytest.raises(ValueError, match="Layer 'conv2'"):  # grouped caffe conv2 is [5, 5, 4, 12]
        load_torchvision_alexnet(_caffe_backbone(), state)
    # numpy arrays instead of tensors need no torch at all.
    load_torchvision_alexnet(backbone, {k: v.numpy() for k, v in state.items()})


@pytest.mark.slow
def test_full_size_torchvision_layout_at_227_matches_pytorch(tmp_path):
    """The real widths, the real AdaptiveAvgPool2d((6, 6)): the fc6 permutation at 6x6x256."""
    torch.manual_seed(2)
    net = TorchvisionAlexNet((64, 192, 384, 256, 256), 4096, pool5_hw=6).eval()
    path = tmp_path / "alexnet-owt-random.pth"
    torch.save(net.state_dict(), path)
    images = _images(3, size=227, batch=1)
    expected = _torch_forward(net.fc7, images)
    backbone = load_torchvision_alexnet(AlexNet(variant="torchvision"), path)
    np.testing.assert_allclose(_numpy(backbone(images, training=False)), expected, atol=1e-4)


@pytest.mark.slow
def test_full_size_caffe_npy_at_227_matches_pytorch(tmp_path):
    """The paper's network: 6x6x256 pool5, grouped convs, LRN, a 9216 x 4096 fc6."""
    torch.manual_seed(3)
    net = CaffeAlexNet((96, 256, 384, 384, 256), 4096, pool5_hw=6).eval()
    blobs = {name: [getattr(net, name).weight.detach().numpy(), getattr(net, name).bias.detach().numpy()]
             for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")}
    path = tmp_path / "bvlc_alexnet.npy"
    np.save(path, kaffe_layout(blobs, (6, 6, 256)), allow_pickle=True)
    images = _images(4, size=227, batch=1) * 50.0  # large enough for LRN to act
    expected = _torch_forward(net, images)
    backbone = load_caffe_alexnet(AlexNet(variant="caffe"), path)
    np.testing.assert_allclose(_numpy(backbone(images, training=False)), expected, rtol=1e-4, atol=1e-4)


def test_build_model_loads_backbone_weights(caffe_reference, tmp_path):
    blobs, images, expected = caffe_reference
    path = tmp_path / "bvlc_alexnet.npy"
    np.save(path, kaffe_layout(blobs, (2, 2, FILTERS[4])), allow_pickle=True)
    model = keras_ser.build_model(
        n_segments=1, image_size=IMAGE_SIZE, sru_units=FC_UNITS, backbone_weights=str(path),
        backbone_kwargs={"filters": FILTERS, "fc_units": FC_UNITS}, compile=False,
    )
    np.testing.assert_allclose(_numpy(model.backbone(images, training=False)), expected, atol=1e-4)
