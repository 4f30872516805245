"""The model a subcommand reads: `--model=M.keras` or `--preset=NAME`, loaded with a one-line error."""

import os

from keras_ser_cli.usage import UsageError


def load(flag_values):
    """`(model, source)` for the `--preset` or `--model` flag set (the caller checks that one is).

    `source` names it as the output does, e.g. "preset encoder_stats_emodb" or
    "model emodb.keras". An unknown preset or a missing file is a UsageError.
    """
    import keras

    if flag_values.preset:
        return preset(flag_values.preset), f"preset {flag_values.preset}"
    if not os.path.isfile(flag_values.model):
        raise UsageError(f"--model file not found: {flag_values.model}")
    return keras.saving.load_model(flag_values.model), f"model {flag_values.model}"


def preset(name, **kwargs):
    """`keras_ser.from_preset(name, **kwargs)`; an unknown name is a UsageError listing the presets."""
    import keras_ser

    if name not in keras_ser.list_presets():
        raise UsageError(f"unknown --preset {name!r}; the presets are {sorted(keras_ser.list_presets())}")
    return keras_ser.from_preset(name, **kwargs)
