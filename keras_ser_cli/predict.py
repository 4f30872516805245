"""Emotion label and per-class probabilities for audio files.

With --model, a saved .keras model predicts locally; with --preset, a
trained model shipped with keras-ser does (no training, no download: see
`keras_ser.list_presets()`); with --server, a TensorFlow Serving server (or
`keras-ser serve-local`) does, over gRPC. A
file that cannot be read is reported by name and the others are still
predicted; the exit status is 1 when any file failed.

Examples:
    keras-ser predict --model=emodb.keras 03a01Fa.wav 03a01Wa.wav
    keras-ser predict --preset=encoder_stats_emodb recording.wav
    keras-ser predict --server=localhost:8500 --model_name=ser --json *.wav
"""

import json

from keras_ser_cli.main import UsageError

USAGE = "FILE [FILE ...]"


def define_flags(flag_values):
    from absl import flags

    flags.DEFINE_string("model", None, "A .keras model saved by keras-ser (train, demo).", flag_values=flag_values)
    flags.DEFINE_string("preset", None, "A trained model shipped with keras-ser, instead of --model "
                        "(keras_ser.list_presets(): encoder_stats_emodb, the 7 EMO-DB emotions).",
                        flag_values=flag_values)
    flags.DEFINE_string("server", None, "host:port of a TF Serving gRPC endpoint, instead of --model.",
                        flag_values=flag_values)
    flags.DEFINE_string("model_name", "ser", "Model name on the server (--server).", flag_values=flag_values)
    flags.DEFINE_boolean("json", False, "Print JSON (one object per file) instead of a table.",
                         flag_values=flag_values)


def main(flag_values, positional):
    if not positional:
        raise UsageError("no audio files given; usage: keras-ser predict --model=M.keras FILE [FILE ...]")
    if sum(bool(v) for v in (flag_values.model, flag_values.preset, flag_values.server)) != 1:
        raise UsageError("give exactly one of --model=M.keras, --preset=NAME or --server=host:port")
    if flag_values.server:
        from serving.client import predict_with_server

        results = predict_with_server(flag_values.server, positional, model_name=flag_values.model_name)
        class_names = next((list(r["probabilities"]) for r in results if "probabilities" in r), [])
    else:
        import os

        import keras

        import keras_ser  # noqa: F401  (registers the model classes)
        from keras_ser.inference import predict_files

        if flag_values.preset:
            if flag_values.preset not in keras_ser.list_presets():
                raise UsageError(f"unknown --preset {flag_values.preset!r}; the presets are "
                                 f"{sorted(keras_ser.list_presets())}")
            model = keras_ser.from_preset(flag_values.preset)
        elif not os.path.isfile(flag_values.model):
            raise UsageError(f"--model file not found: {flag_values.model}")
        else:
            model = keras.saving.load_model(flag_values.model)
        results = predict_files(model, positional)
        class_names = model.class_names
    from keras_ser.inference import format_table

    print(json.dumps(results, indent=1) if flag_values.json else format_table(results, class_names))
    return 1 if any("error" in result for result in results) else 0
