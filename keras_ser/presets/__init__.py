"""Trained models that ship with keras-ser: `list_presets()` and `from_preset(name)`.

A preset is a folder `keras_ser/presets/<name>/` holding `preset.json` (the
zoo entry and its arguments, class names, feature config with its speech
front end, what it was trained on and under which licences, its held-out
figures (leave one speaker out, or one corpus out for a preset trained on
several), its figures on corpora it never heard (`cross_corpus`) and the
command that made it)
and `head.npz` (the weights of every layer outside the pretrained backbone).
The backbones' weights come from their own shipped files (for the speech
encoder `keras_ser/weights/data/speaker_encoder_resemblyzer.npz`, for the
sound-effects CNN `keras_ser/weights/data/sound_effects_encoder_aisfx.npz`),
so a preset costs the repository a few kilobytes and loads offline, with no
training and no download.

Example:

>>> import keras_ser
>>> sorted(keras_ser.list_presets())
['encoder_stats_emodb', 'encoder_stats_multilingual', 'encoder_stats_multilingual_adaptive', 'fusion_stats_emodb']
>>> model = keras_ser.from_preset("encoder_stats_emodb")
>>> model.class_names
['anger', 'boredom', 'disgust', 'fear', 'happiness', 'sadness', 'neutral']
>>> keras_ser.from_preset("encoder_stats_multilingual").class_names
['anger', 'happiness', 'sadness', 'neutral', 'fear', 'disgust']

`encoder_stats_multilingual_adaptive` was trained with per-speaker
normalisation: adapt it to a speaker with `keras_ser.adapt(model,
waveforms)` (ten or more of that speaker's utterances) before predicting.
"""

import json
import os

import numpy as np

PRESETS_DIR = os.path.dirname(os.path.abspath(__file__))
PRESET_FILE = "preset.json"
HEAD_FILE = "head.npz"
# The pretrained backbones inside preset models: their weights are not stored in the preset.
BACKBONE_LAYERS = ("speaker_encoder", "sound_effects_encoder")


def _preset_dir(name):
    return os.path.join(PRESETS_DIR, name)


def _read(name):
    presets = list_presets()
    if not isinstance(name, str) or name not in presets:
        raise ValueError(f"Unknown preset. Expected one of {sorted(presets)}. Received: name={name!r}")
    with open(os.path.join(_preset_dir(name), PRESET_FILE), encoding="utf-8") as handle:
        return json.load(handle)


def list_presets():
    """The shipped presets: a dict `name -> one-line description`.

    Example:

    >>> list_presets()["encoder_stats_emodb"][:40]
    'Frozen GE2E speech encoder + statistics '
    """
    presets = {}
    for entry in sorted(os.listdir(PRESETS_DIR)):
        path = os.path.join(PRESETS_DIR, entry, PRESET_FILE)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                presets[entry] = json.load(handle)["description"]
    return presets


def preset_metadata(name):
    """Everything `preset.json` says of a preset: model arguments, training data and licences, held-out and
    cross-corpus figures, command.

    Example:

    >>> metadata = preset_metadata("encoder_stats_emodb")
    >>> metadata["loso"]["ua_pooled"] >= 82, len(metadata["loso"]["folds"])
    (True, 10)
    >>> metadata["cross_corpus"]["ravdess"]["four_emotions"]["ua"] > 25   # RAVDESS, never heard, above chance
    True
    """
    return _read(name)


def head_weights(model, backbone_layers=BACKBONE_LAYERS):
    """The weights of every layer of `model` but the pretrained backbones, as `{"layer/variable": array}`."""
    arrays = {}
    for layer in model.layers:
        if layer.name in backbone_layers:
            continue
        for variable in layer.weights:
            arrays[f"{layer.name}/{variable.name}"] = np.asarray(variable)
    return arrays


def save_preset(model, name, description, metadata, root=PRESETS_DIR):
    """Writes a trained encoder model as preset `name` (`preset.json` + `head.npz`) under `root`.

    Args:
        model: a trained `keras_ser.EncoderStatsClassifier` or `EncoderSRUClassifier`
            whose encoder holds the shipped pretrained weights.
        name: str. The preset name (a folder name).
        description: str. One line for `list_presets()`.
        metadata: dict. More to store: `build_args` (the arguments of
            `keras_ser.build_model` besides class names and feature config),
            `trained_on`, `loso` (figures and command), `command`.
        root: str. Folder of presets. Defaults to the package's.

    Returns:
        str, the preset folder.
    """
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    payload = {
        "name": name,
        "description": description,
        "class_names": model.class_names,
        "feature_config": model.feature_config.to_dict(),
        **metadata,
    }
    np.savez_compressed(os.path.join(folder, HEAD_FILE), **head_weights(model))
    with open(os.path.join(folder, PRESET_FILE), "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return folder


def from_preset(name, compile=True):
    """A shipped trained model, ready to `predict` or export: no training, no download.

    The model is built with `keras_ser.build_model` from the preset's
    arguments (the backbone loads its shipped pretrained weights), then
    every other layer gets the preset's trained weights. It carries its
    class names and feature config; `preset_metadata(name)` has its
    leave-one-speaker-out figures and training command.

    Args:
        name: str. A name from `list_presets()`.
        compile: bool. Compile with the zoo defaults. Defaults to `True`.

    Returns:
        A keras-ser model (`keras_ser.SERTask`).

    Raises:
        ValueError: unknown name (the message lists the presets), or
            stored weights that do not fit the model.

    Example:

    >>> import keras_ser, tf_pipeline
    >>> model = keras_ser.from_preset("fusion_stats_emodb")
    >>> waveform = tf_pipeline.load_audio("03a01Fa.wav")                  # doctest: +SKIP
    >>> model.predict(model.preprocessor(waveform))                         # doctest: +SKIP
    """
    from keras_ser.models.registry import build_model

    preset = _read(name)
    model = build_model(
        class_names=preset["class_names"],
        num_classes=len(preset["class_names"]),
        feature_config=preset["feature_config"],
        compile=compile,
        **preset["build_args"],
    )
    with np.load(os.path.join(_preset_dir(name), HEAD_FILE)) as data:
        arrays = {key: data[key] for key in data.files}
    expected = head_weights(model)
    problems = [
        f"{key}: {'missing' if key not in arrays else f'shape {arrays[key].shape}, expected {value.shape}'}"
        for key, value in expected.items()
        if key not in arrays or arrays[key].shape != value.shape
    ]
    if problems or set(arrays) != set(expected):
        extra = sorted(set(arrays) - set(expected))
        raise ValueError(f"Preset {name!r} does not fit its model: " + "; ".join(problems + [f"unexpected {extra}"]))
    for layer in model.layers:
        for variable in layer.weights:
            key = f"{layer.name}/{variable.name}"
            if key in arrays:
                variable.assign(arrays[key])
    return model
