"""Import of pretrained AlexNet weights: Caffe's `bvlc_alexnet.npy` and torchvision state dicts.

No ImageNet AlexNet weights can be downloaded here, so users bring their own
file; these functions copy it into a `keras_ser.backbones.AlexNet` by layer
name (`conv1`..`conv5`, `fc6`, `fc7`; the ImageNet classifier `fc8` /
`classifier.6` is not used).

Layouts handled:

- Keras: conv kernels `[h, w, in / groups, out]`, dense kernels `[in, out]`,
  and fc6 reads pool5 flattened in `H, W, C` order (channels last).
- `bvlc_alexnet.npy` as widely distributed (converted from Caffe's
  `bvlc_alexnet.caffemodel` with ethereon's caffe-tensorflow "kaffe" and
  used by Guerzhoy's `myalexnet_forward.py`): a pickled dict
  `layer -> [weights, biases]` with conv weights in `[h, w, in / groups,
  out]` (as Keras, grouping included), fc weights `[in, out]`, and fc6's
  rows *already reordered* by the converter to `H, W, C` (the converter
  rewires the first fully connected layer after a spatial one; the
  reference TensorFlow code flattens an NHWC pool5 into it). Loaded as is.
- A dump straight from Caffe blobs (e.g. `{name: [p.data for p in
  net.params[name]]}` with pycaffe): conv weights `[out, in / groups, h, w]`,
  fc weights `[out, in]` and fc6's inputs in Caffe's `C, H, W` flatten
  order. Detected from the shape of conv1's weights and converted,
  including the fc6 permutation. `fc6_order` overrides the detection.
- torchvision (`alexnet-owt-*.pth`, `features.0.weight`, ...): conv
  `[out, in, h, w]`, linear `[out, in]`, fc6 (`classifier.1`) inputs in
  `C, H, W` order (torch flattens NCHW): converted and permuted.

Errors name the layer: a missing layer, or weights whose shape does not fit
the backbone, raise `ValueError`, and then nothing is assigned (the backbone
keeps its weights unless every layer passes its checks).
"""

import os
from collections.abc import Mapping

import numpy as np

# Keras layer -> torchvision state-dict prefix.
TORCHVISION_NAMES = {
    "conv1": "features.0",
    "conv2": "features.3",
    "conv3": "features.6",
    "conv4": "features.8",
    "conv5": "features.10",
    "fc6": "classifier.1",
    "fc7": "classifier.4",
}
CONV_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
FC_LAYERS = ("fc6", "fc7")
FC6_ORDERS = ("hwc", "chw")


def _check_backbone(backbone):
    names = {layer.name for layer in getattr(backbone, "layers", [])}
    missing = [name for name in CONV_LAYERS + FC_LAYERS + ("pool5",) if name not in names]
    if missing:
        raise ValueError(
            "Expected a keras_ser.backbones.AlexNet (layers conv1..conv5, pool5, fc6, fc7). "
            f"Received: a model without layers {missing}"
        )


def _pool5_shape(backbone):
    height, width, channels = backbone.get_layer("pool5").output.shape[1:]
    return height, width, channels


def _fc6_from_chw(kernel, pool5_shape, source):
    """Reorders fc6's input rows from a `C, H, W` flatten to Keras' `H, W, C` flatten."""
    height, width, channels = pool5_shape
    if kernel.shape[0] != height * width * channels:
        raise ValueError(
            f"Layer 'fc6' of {source}: expected {height * width * channels} inputs "
            f"(pool5 {height}x{width}x{channels}). Received: weights of shape {kernel.shape}"
        )
    out = kernel.shape[1]
    return kernel.reshape(channels, height, width, out).transpose(1, 2, 0, 3).reshape(-1, out)


def _checked(backbone, name, kernel, bias, source):
    """Returns `(layer, [kernel, bias])` after checking the shapes against the layer."""
    layer = backbone.get_layer(name)
    expected_kernel = tuple(layer.kernel.shape)
    expected_bias = tuple(layer.bias.shape)
    if tuple(kernel.shape) != expected_kernel:
        raise ValueError(
            f"Layer '{name}' of {source}: expected weights of shape {expected_kernel} "
            f"(after conversion to the Keras layout). Received: shape {tuple(kernel.shape)}"
        )
    if tuple(bias.shape) != expected_bias:
        raise ValueError(
            f"Layer '{name}' of {source}: expected biases of shape {expected_bias}. "
            f"Received: shape {tuple(bias.shape)}"
        )
    return layer, [kernel.astype("float32"), bias.astype("float32")]


def _assign(assignments):
    for layer, values in assignments:
        layer.set_weights(values)


def _read_caffe_npy(path):
    if isinstance(path, Mapping):
        return dict(path), "the given dict"
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(
            f"path must be a path to a .npy file or a dict. Received: path={path!r}"
        )
    # The file is a pickled dict (written by Python 2 for the original one):
    # only load files you trust.
    data = np.load(path, allow_pickle=True, encoding="latin1")
    if isinstance(data, np.ndarray) and data.dtype == object and data.shape == ():
        data = data.item()
    if not isinstance(data, Mapping):
        raise ValueError(
            f"Expected a pickled dict layer -> [weights, biases] in {os.fspath(path)}. "
            f"Received: {type(data).__name__}"
        )
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in data.items()}, os.fspath(path)


def _caffe_entry(data, name, source):
    if name not in data:
        raise ValueError(
            f"Layer '{name}' is missing from {source}. Found layers: {sorted(data)}"
        )
    entry = data[name]
    if isinstance(entry, Mapping):  # {"weights": W, "biases": b} (newer kaffe output)
        if "weights" not in entry or "biases" not in entry:
            raise ValueError(
                f"Layer '{name}' of {source}: expected [weights, biases] or a dict with "
                f"'weights' and 'biases'. Received: keys {sorted(entry)}"
            )
        entry = [entry["weights"], entry["biases"]]
    if len(entry) != 2:
        raise ValueError(
            f"Layer '{name}' of {source}: expected [weights, biases]. "
            f"Received: {len(entry)} arrays"
        )
    kernel, bias = (np.asarray(value, dtype="float32") for value in entry)
    return kernel, bias.reshape(-1)


def load_caffe_alexnet(backbone, path, fc6_order=None):
    """Loads Caffe AlexNet weights (`bvlc_alexnet.npy`) into a caffe-variant `AlexNet`.

    Reads the widely used `bvlc_alexnet.npy` (a pickled dict
    `layer -> [weights, biases]`, converted from BVLC's caffemodel with
    caffe-tensorflow): conv weights `[h, w, in / groups, out]`, fc weights
    `[in, out]`, fc6 inputs already in `H, W, C` order. A dump straight from
    Caffe's blobs (conv `[out, in / groups, h, w]`, fc `[out, in]`, fc6 inputs
    in Caffe's `C, H, W` order) is recognised from conv1's shape and converted.
    Layers conv1..conv5, fc6 and fc7 are loaded; others (fc8) are ignored.

    The file is a pickle: load only files you trust. The Caffe network was
    trained on BGR images with the ImageNet mean subtracted; keras-ser feeds
    standardised log-Mel / delta / delta-delta channels in their place.

    Args:
        backbone: a `keras_ser.backbones.AlexNet` with `variant="caffe"` and
            the default widths (or any widths matching the file).
        path: path to the `.npy` file, or the dict itself.
        fc6_order: None, `"hwc"` or `"chw"`: the flatten order of fc6's
            input rows in the file. Defaults to `None`: `"hwc"` for
            `[h, w, in, out]` conv weights (the caffe-tensorflow file),
            `"chw"` for `[out, in, h, w]` ones (raw Caffe blobs).

    Returns:
        The backbone, with its weights replaced.

    Raises:
        ValueError: a layer is missing or its weights do not fit (the message
            names the layer and both shapes).

    Example:

    >>> from keras_ser.backbones import AlexNet
    >>> backbone = AlexNet(variant="caffe")                                # doctest: +SKIP
    >>> load_caffe_alexnet(backbone, "bvlc_alexnet.npy")                   # doctest: +SKIP
    """
    if fc6_order not in (None,) + FC6_ORDERS:
        raise ValueError(f"fc6_order must be None, 'hwc' or 'chw'. Received: fc6_order={fc6_order!r}")
    _check_backbone(backbone)
    data, source = _read_caffe_npy(path)
    entries = {name: _caffe_entry(data, name, source) for name in CONV_LAYERS + FC_LAYERS}

    # Which layout? conv1's kernel is square in (h, w): HWIO has it first.
    conv1 = entries["conv1"][0]
    expected = tuple(backbone.get_layer("conv1").kernel.shape)
    if conv1.ndim == 4 and conv1.shape == expected:
        caffe_blobs = False
    elif conv1.ndim == 4 and conv1.shape == (expected[3], expected[2], expected[0], expected[1]):
        caffe_blobs = True
    else:
        raise ValueError(
            f"Layer 'conv1' of {source}: expected weights of shape {expected} (h, w, in, out) "
            f"or {(expected[3], expected[2], expected[0], expected[1])} (Caffe's out, in, h, w). "
            f"Received: shape {conv1.shape}"
        )
    if fc6_order is None:
        fc6_order = "chw" if caffe_blobs else "hwc"

    assignments = []
    for name in CONV_LAYERS:
        kernel, bias = entries[name]
        if caffe_blobs and kernel.ndim == 4:
            kernel = kernel.transpose(2, 3, 1, 0)
        assignments.append(_checked(backbone, name, kernel, bias, source))
    for name in FC_LAYERS:
        kernel, bias = entries[name]
        if kernel.ndim == 4 and kernel.shape[:2] == (1, 1):  # old Caffe: (1, 1, out, in)
            kernel = kernel[0, 0]
        if kernel.ndim != 2:
            raise ValueError(
                f"Layer '{name}' of {source}: expected 2-D weights. Received: shape {kernel.shape}"
            )
        if caffe_blobs:
            kernel = kernel.T
        if name == "fc6" and fc6_order == "chw":
            kernel = _fc6_from_chw(kernel, _pool5_shape(backbone), source)
        assignments.append(_checked(backbone, name, kernel, bias, source))
    _assign(assignments)  # Only once every layer has passed its checks.
    return backbone


def _read_torch_state_dict(path):
    if isinstance(path, Mapping):
        state, source = dict(path), "the given state dict"
    elif isinstance(path, (str, os.PathLike)):
        import torch  # Optional dependency: pip install "keras-ser[torch]".

        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        source = os.fspath(path)
    else:
        raise ValueError(
            f"path must be a path to a .pth file or a state dict. Received: path={path!r}"
        )
    if "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = dict(state["state_dict"])
    arrays = {}
    for key, value in state.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        arrays[key] = np.asarray(value, dtype="float32")
    return arrays, source


def load_torchvision_alexnet(backbone, path):
    """Loads a torchvision AlexNet state dict into a torchvision-variant `AlexNet`.

    Reads `torchvision.models.alexnet` weights (`alexnet-owt-*.pth`, keys
    `features.0.weight` ... `classifier.4.bias`; `classifier.6`, the ImageNet
    classifier, is ignored). Conv weights go from `[out, in, h, w]` to
    `[h, w, in, out]`, linear weights from `[out, in]` to `[in, out]`, and
    fc6's input rows from torch's `C, H, W` flatten to Keras' `H, W, C`.
    torch is imported only here (`pip install "keras-ser[torch]"`), and only
    to read a file: a dict of numpy arrays needs no torch.

    Args:
        backbone: a `keras_ser.backbones.AlexNet` with
            `variant="torchvision"` (widths matching the file).
        path: path to the `.pth` file (read with
            `torch.load(..., weights_only=True)`), or the state dict itself
            (tensors or numpy arrays).

    Returns:
        The backbone, with its weights replaced.

    Raises:
        ValueError: a layer is missing or its weights do not fit (the message
            names the layer and the state-dict key).

    Example:

    >>> from keras_ser.backbones import AlexNet
    >>> backbone = AlexNet(variant="torchvision", image_size=224)          # doctest: +SKIP
    >>> load_torchvision_alexnet(backbone, "alexnet-owt-7be5be79.pth")     # doctest: +SKIP
    """
    _check_backbone(backbone)
    state, source = _read_torch_state_dict(path)
    assignments = []
    for name, prefix in TORCHVISION_NAMES.items():
        keys = (prefix + ".weight", prefix + ".bias")
        missing = [key for key in keys if key not in state]
        if missing:
            raise ValueError(
                f"Layer '{name}' ({prefix}) is missing from {source}: no {missing}. "
                f"Found keys: {sorted(state)}"
            )
        kernel, bias = state[keys[0]], state[keys[1]]
        label = f"{source} ({prefix})"
        if name in CONV_LAYERS:
            if kernel.ndim != 4:
                raise ValueError(
                    f"Layer '{name}' of {label}: expected 4-D weights. Received: shape {kernel.shape}"
                )
            kernel = kernel.transpose(2, 3, 1, 0)
        else:
            if kernel.ndim != 2:
                raise ValueError(
                    f"Layer '{name}' of {label}: expected 2-D weights. Received: shape {kernel.shape}"
                )
            kernel = kernel.T
            if name == "fc6":
                kernel = _fc6_from_chw(kernel, _pool5_shape(backbone), label)
        assignments.append(_checked(backbone, name, kernel, bias, label))
    _assign(assignments)  # Only once every layer has passed its checks.
    return backbone
