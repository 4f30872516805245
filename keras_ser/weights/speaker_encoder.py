"""Weights of the GE2E speaker encoder: conversion from the torch checkpoint, and loading.

The `resemblyzer` package (Apache-2.0) ships a pretrained GE2E speaker
encoder as `resemblyzer/pretrained.pt`: a torch checkpoint whose
`model_state` holds a 3-layer `torch.nn.LSTM(40, 256)` (`lstm.*`) and a
`torch.nn.Linear(256, 256)` (`linear.*`). keras-ser ships those weights
converted (`keras_ser/weights/data/speaker_encoder_resemblyzer.npz`, 5.7 MB,
with the package's license notice in `NOTICE`), so the encoder loads with
neither torch nor the package installed.

| torch                              | Keras (`SpeakerEncoder`)                      |
| ---------------------------------- | --------------------------------------------- |
| `lstm.weight_ih_l{k}` `[4u, in]`   | `lstm_{k+1}` kernel `[in, 4u]` (transposed)   |
| `lstm.weight_hh_l{k}` `[4u, u]`    | `lstm_{k+1}` recurrent kernel `[u, 4u]`       |
| `lstm.bias_ih_l{k} + bias_hh_l{k}` | `lstm_{k+1}` bias `[4u]`                      |
| `linear.weight`, `linear.bias`     | `projection` kernel (transposed), bias        |

Both frameworks order the LSTM gates input, forget, cell, output, so the
gate blocks need no reordering; Keras has one bias where torch has two.
"""

import os

import numpy as np

from keras_ser.weights.assign import assign_checked

INSTALL_HINT = 'pip install "keras-ser[speech]"'
SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "speaker_encoder_resemblyzer.npz")


def resemblyzer_checkpoint_path():
    """Path of `pretrained.pt` inside the installed `resemblyzer` package (not imported).

    Raises:
        ImportError: the package is not installed.
    """
    import importlib.util

    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "The GE2E checkpoint comes from the package `resemblyzer`, which is not installed. "
            f"Install it with: {INSTALL_HINT}"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "pretrained.pt")


def convert_checkpoint(path=None):
    """Reads a resemblyzer-format torch checkpoint into Keras-layout numpy arrays.

    Args:
        path: str or None. The `.pt` file; None takes the installed
            package's `pretrained.pt`.

    Returns:
        dict `{"lstm_1/kernel": ..., "lstm_1/recurrent_kernel": ...,
        "lstm_1/bias": ..., ..., "projection/kernel": ...,
        "projection/bias": ...}` of float32 arrays.

    Raises:
        ImportError: torch is not installed.
        ValueError: the checkpoint lacks a tensor or has an unexpected shape;
            the message names every problem.

    Example:

    >>> arrays = convert_checkpoint()                       # doctest: +SKIP
    >>> arrays["lstm_1/kernel"].shape                       # doctest: +SKIP
    (40, 1024)
    """
    try:
        import torch
    except ImportError as error:
        raise ImportError(f"Converting a torch checkpoint needs torch: {INSTALL_HINT}") from error
    path = resemblyzer_checkpoint_path() if path is None else os.fspath(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("model_state", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a resemblyzer checkpoint (a dict with 'model_state'). "
                         f"Received: {type(checkpoint).__name__}")
    state = {key: value.detach().numpy().astype(np.float32) for key, value in state.items()
             if hasattr(value, "detach")}
    problems = []
    layers = sorted({int(key.rsplit("_l", 1)[1]) for key in state if key.startswith("lstm.weight_ih_l")})
    if not layers:
        problems.append("no tensors lstm.weight_ih_l0, ... (not a GE2E LSTM checkpoint)")
    arrays = {}
    for k in layers:
        names = [f"lstm.weight_ih_l{k}", f"lstm.weight_hh_l{k}", f"lstm.bias_ih_l{k}", f"lstm.bias_hh_l{k}"]
        missing = [n for n in names if n not in state]
        if missing:
            problems.append(f"missing {missing}")
            continue
        w_ih, w_hh, b_ih, b_hh = (state[n] for n in names)
        units = w_hh.shape[1]
        if w_hh.shape != (4 * units, units) or w_ih.shape[0] != 4 * units or b_ih.shape != (4 * units,):
            problems.append(f"layer {k}: shapes {w_ih.shape}, {w_hh.shape}, {b_ih.shape} are not an LSTM's")
            continue
        arrays[f"lstm_{k + 1}/kernel"] = w_ih.T.copy()
        arrays[f"lstm_{k + 1}/recurrent_kernel"] = w_hh.T.copy()
        arrays[f"lstm_{k + 1}/bias"] = b_ih + b_hh
    if "linear.weight" in state and "linear.bias" in state:
        arrays["projection/kernel"] = state["linear.weight"].T.copy()
        arrays["projection/bias"] = state["linear.bias"]
    else:
        problems.append("missing linear.weight / linear.bias")
    if problems:
        raise ValueError(f"Cannot convert {path}: " + "; ".join(problems))
    return arrays


def save_converted(arrays, path):
    """Writes converted arrays (`convert_checkpoint`) as a compressed `.npz`."""
    np.savez_compressed(path, **arrays)


def _read_arrays(weights):
    if isinstance(weights, str) and weights == "resemblyzer":
        weights = SHIPPED
    if isinstance(weights, dict):
        return weights, "the given arrays"
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "weights must be 'resemblyzer', a path to a .npz or .pt file, or a dict of arrays. "
            f"Received: weights={weights!r}"
        )
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No speaker-encoder weights at {path!r}")
    if path.endswith(".pt") or path.endswith(".pth"):
        return convert_checkpoint(path), path
    with np.load(path) as data:
        return {key: data[key] for key in data.files}, path


def load_speaker_encoder(encoder, weights="resemblyzer"):
    """Loads GE2E weights into a `keras_ser.backbones.SpeakerEncoder`.

    Every shape is checked before anything is assigned: on any mismatch
    the encoder is left as it was and one `ValueError` names each problem.

    Args:
        encoder: a `SpeakerEncoder` (or a model holding one as a layer
            named `"speaker_encoder"`).
        weights: `"resemblyzer"` (the shipped conversion), a `.npz` from
            `save_converted`, a resemblyzer-format `.pt` (needs torch), or a
            dict of arrays from `convert_checkpoint`.

    Returns:
        The encoder.

    Example:

    >>> from keras_ser.backbones import SpeakerEncoder
    >>> encoder = load_speaker_encoder(SpeakerEncoder())
    >>> tuple(encoder.get_layer("lstm_1").weights[0].shape)
    (40, 1024)
    """
    arrays, source = _read_arrays(weights)
    layer_names = [f"lstm_{i + 1}" for i in range(encoder.num_layers)] + ["projection"]
    assign_checked(encoder, layer_names, arrays, f"Speaker-encoder weights from {source}")
    return encoder
