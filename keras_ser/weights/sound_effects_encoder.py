"""Weights of the aisfx sound-effects encoder: conversion from the torch checkpoint, and loading.

The `aisfx` package 0.1.2 (code MIT; weights CC BY 4.0, Alison B. Ma and
Alexander Lerch, ISMIR 2022) ships its trained model as
`aisfx/models/checkpoint.pth`: a torch file holding `(state_dict, ds_dict)`,
the state dict of a `CrossNet` whose `embedding_net.*` tensors are the
backbone (`EmbeddingNet('max', 3, 1, 64)`) and whose `fc.*` tensors are
nine per-library classification heads (not converted). keras-ser ships the
backbone converted (`keras_ser/weights/data/sound_effects_encoder_aisfx.npz`,
with the attribution in `NOTICE`), so the encoder loads with neither torch
nor the package installed.

| torch (`embedding_net.`)                   | Keras (`SoundEffectsEncoder`)                   |
| ------------------------------------------ | ----------------------------------------------- |
| `conv_block{k}.conv{j}.weight` `[o,i,3,3]` | `block_{k}_conv_{j}/kernel` `[3,3,i,o]`         |
| `conv_block{k}.bn{j}.weight`, `.bias`      | `block_{k}_bn_{j}/gamma`, `/beta`               |
| `conv_block{k}.bn{j}.running_mean`, `_var` | `block_{k}_bn_{j}/moving_mean`, `/moving_variance` |

Both frameworks correlate (no kernel flip) and put time on the first
spatial axis and the Mel bands on the second, so the kernels are only
transposed to Keras' `[height, width, in, out]`; `num_batches_tracked` is
dropped. A converted `.npz` also holds two strings, `format` (this layout's
version) and `source` (where the values came from).
"""

import os

import numpy as np

from keras_ser.weights.assign import assign_checked

TORCH_HINT = "pip install torch"
AISFX_HINT = "pip install --no-deps aisfx==0.1.2"
SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "sound_effects_encoder_aisfx.npz")
FORMAT = "keras_ser.sound_effects_encoder/1"
METADATA = ("format", "source")
# The checkpoint of the aisfx 0.1.2 wheel that the shipped file was converted from.
AISFX_CHECKPOINT_SHA256 = "499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5"
AISFX_SOURCE = (
    f"aisfx 0.1.2 (PyPI wheel), file aisfx/models/checkpoint.pth, sha256 {AISFX_CHECKPOINT_SHA256}; "
    "tensors embedding_net.*. "
    "Alison B. Ma and Alexander Lerch, 'Representation Learning for the Automatic Indexing of Sound Effects "
    "Libraries', ISMIR 2022. License: CC BY 4.0. Converted by keras_ser.weights.sound_effects_encoder."
)
NUM_BLOCKS = 4
_BATCH_NORM = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def aisfx_checkpoint_path():
    """Path of `models/checkpoint.pth` inside the installed `aisfx` package (not imported).

    Raises:
        ImportError: the package is not installed.
    """
    import importlib.util

    spec = importlib.util.find_spec("aisfx")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "The aisfx checkpoint comes from the package `aisfx`, which is not installed. Install it with: "
            f"{AISFX_HINT} (--no-deps: its pins on numpy 1.23 / librosa 0.9.2 do not install on Python 3.11; "
            f"it runs on current ones), and torch with: {TORCH_HINT}"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "models", "checkpoint.pth")


def load_torch_checkpoint(path):
    """The state dict of an aisfx-format checkpoint, read with `weights_only=True`."""
    try:
        import torch
    except ImportError as error:
        raise ImportError(f"Converting a torch checkpoint needs torch: {TORCH_HINT}") from error
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    # The checkpoint's `ds_dict` holds numpy integers; these are the only non-torch types it needs.
    allowed = [(scalar, "numpy.core.multiarray.scalar"), np.dtype, np.dtypes.Int64DType, np.dtypes.Float64DType]
    with torch.serialization.safe_globals(allowed):
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(checkpoint, (tuple, list)) and checkpoint and isinstance(checkpoint[0], dict):
        checkpoint = checkpoint[0]  # (state_dict, ds_dict)
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} is not an aisfx checkpoint ((state_dict, ds_dict) or a state dict). "
                         f"Received: {type(checkpoint).__name__}")
    return checkpoint


def convert_checkpoint(path=None):
    """Reads an aisfx-format torch checkpoint into Keras-layout numpy arrays.

    Accepts the package's `(state_dict, ds_dict)` file, a `CrossNet` state
    dict (`embedding_net.*` keys) or an `EmbeddingNet` state dict
    (`conv_block*` keys). The file is read with `weights_only=True`.

    Args:
        path: str or None. The `.pth` file; None takes the installed `aisfx`
            package's `models/checkpoint.pth`.

    Returns:
        dict `{"block_1_conv_1/kernel": ..., "block_1_bn_1/gamma": ...,
        "block_1_bn_1/beta": ..., "block_1_bn_1/moving_mean": ...,
        "block_1_bn_1/moving_variance": ..., ...}` of float32 arrays (40
        arrays: 4 blocks x 2 convolutions x (1 kernel + 4 normalisation)).

    Raises:
        ImportError: torch (or, for the default path, aisfx) is not installed.
        ValueError: the checkpoint lacks a tensor or has an unexpected shape;
            the message names every problem.

    Example:

    >>> arrays = convert_checkpoint()                       # doctest: +SKIP
    >>> arrays["block_1_conv_1/kernel"].shape               # doctest: +SKIP
    (3, 3, 1, 64)
    """
    path = aisfx_checkpoint_path() if path is None else os.fspath(path)
    state = load_torch_checkpoint(path)
    prefix = "embedding_net." if any(key.startswith("embedding_net.") for key in state) else ""
    state = {key[len(prefix):]: value.detach().cpu().numpy() for key, value in state.items()
             if key.startswith(prefix) and hasattr(value, "detach")}
    arrays, problems = {}, []
    for k in range(1, NUM_BLOCKS + 1):
        for j in (1, 2):
            conv = f"{prefix}conv_block{k}.conv{j}.weight"
            kernel = state.get(conv[len(prefix):])
            if kernel is None:
                problems.append(f"missing {conv}")
                continue
            if kernel.ndim != 4 or kernel.shape[2:] != (3, 3):
                problems.append(f"{conv}: shape {kernel.shape} is not a 3x3 convolution's [out, in, 3, 3]")
                continue
            arrays[f"block_{k}_conv_{j}/kernel"] = np.ascontiguousarray(kernel.transpose(2, 3, 1, 0), np.float32)
            for torch_name, keras_name in _BATCH_NORM.items():
                key = f"conv_block{k}.bn{j}.{torch_name}"
                value = state.get(key)
                if value is None:
                    problems.append(f"missing {prefix}{key}")
                elif value.shape != (kernel.shape[0],):
                    problems.append(f"{prefix}{key}: shape {value.shape}, expected ({kernel.shape[0]},)")
                else:
                    arrays[f"block_{k}_bn_{j}/{keras_name}"] = value.astype(np.float32)
    if problems:
        raise ValueError(f"Cannot convert {path}: " + "; ".join(problems))
    return arrays


def save_converted(weights, path, source="unspecified"):
    """Writes converted arrays (`convert_checkpoint`) as a compressed `.npz`, with `format` and `source`.

    Args:
        weights: dict of arrays from `convert_checkpoint` (stored as float32).
        path: str. The `.npz` to write.
        source: str. Where the values came from (stored as the string
            `source`). Defaults to `"unspecified"`.

    Example:

    >>> save_converted(convert_checkpoint(), "sfx.npz", source="aisfx 0.1.2")   # doctest: +SKIP
    """
    clashes = sorted(set(weights) & set(METADATA))
    if clashes:
        raise ValueError(f"Array names {clashes} are reserved for metadata. Received: {sorted(weights)}")
    arrays = {key: np.asarray(value, np.float32) for key, value in weights.items()}
    np.savez_compressed(path, format=np.array(FORMAT), source=np.array(str(source)), **arrays)


def read_converted(path):
    """Arrays and metadata of a `.npz` written by `save_converted`: `(arrays, {"format": ..., "source": ...})`."""
    with np.load(os.fspath(path), allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files if key not in METADATA}
        metadata = {key: str(data[key]) for key in METADATA if key in data.files}
    return arrays, metadata


def _read_arrays(weights):
    if isinstance(weights, str) and weights == "aisfx":
        weights = SHIPPED
    if isinstance(weights, dict):
        return weights, "the given arrays", []
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "weights must be 'aisfx', a path to a .npz or .pth file, or a dict of arrays. "
            f"Received: weights={weights!r}"
        )
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No sound-effects-encoder weights at {path!r}")
    if path.endswith(".pt") or path.endswith(".pth"):
        return convert_checkpoint(path), path, []
    arrays, metadata = read_converted(path)
    problems = []
    if metadata.get("format") != FORMAT:
        problems.append(f"format {metadata.get('format')!r}, expected {FORMAT!r}")
    return arrays, path, problems


def load_sound_effects_encoder(encoder, weights="aisfx"):
    """Loads aisfx weights into a `keras_ser.backbones.SoundEffectsEncoder`.

    Every name and shape is checked before anything is assigned: on any
    mismatch the encoder is left as it was and one `ValueError` names each
    problem.

    Args:
        encoder: a `SoundEffectsEncoder` (or a model holding one as a layer
            named `"sound_effects_encoder"`).
        weights: `"aisfx"` (the shipped conversion), a `.npz` from
            `save_converted`, an aisfx-format `.pth` (needs torch), or a dict
            of arrays from `convert_checkpoint`.

    Returns:
        The encoder.

    Example:

    >>> from keras_ser.backbones import SoundEffectsEncoder
    >>> encoder = load_sound_effects_encoder(SoundEffectsEncoder())
    >>> tuple(encoder.get_layer("block_4_conv_2").kernel.shape)
    (3, 3, 512, 512)
    """
    arrays, source, problems = _read_arrays(weights)
    target = encoder if hasattr(encoder, "time_strides") else encoder.get_layer("sound_effects_encoder")
    layer_names = [f"block_{k}_{kind}_{j}" for k in range(1, NUM_BLOCKS + 1) for j in (1, 2) for kind in ("conv", "bn")]
    assign_checked(target, layer_names, arrays, f"Sound-effects-encoder weights from {source}", problems)
    return encoder
