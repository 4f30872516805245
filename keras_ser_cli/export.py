"""Exports a .keras model as a versioned SavedModel for TensorFlow Serving.

Writes EXPORT_ROOT/NAME/VERSION/ (the next integer version unless --version
is given) through a temporary directory renamed into place, so a server
polling EXPORT_ROOT/NAME never loads half a model. Signatures:
serving_default (waveform float32 [batch, samples] at 16 kHz + num_samples
int32 [batch]) and serve_wav (audio_bytes: 16-bit PCM WAV bytes [batch]);
outputs probabilities, class_id, class_name, classes. The export holds
warmup requests and labels.txt in assets.extra/. Serve it with
`keras-ser serve-local` here, or tensorflow/serving on a GPU host
(docs/serving.md).

Example:
    keras-ser export --model=emodb.keras --export_root=exports --name=ser
"""

import os

from keras_ser_cli.main import UsageError


def define_flags(flag_values):
    from absl import flags

    flags.DEFINE_string("model", None, "The .keras model to export (saved by keras-ser train/loso/demo).",
                        flag_values=flag_values)
    flags.DEFINE_string("export_root", None, "Folder of exported models; the model goes to "
                        "EXPORT_ROOT/NAME/VERSION/.", flag_values=flag_values)
    flags.DEFINE_string("name", "ser", "Model name: the folder under --export_root and the name TF Serving "
                        "serves it as.", flag_values=flag_values)
    flags.DEFINE_integer("version", None, "Version number (default: 1 + the highest existing one).",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_boolean("overwrite", False, "Replace --version if it exists (otherwise an error).",
                         flag_values=flag_values)
    flags.DEFINE_list("warmup_files", [], "16-bit PCM WAV files for the warmup requests (up to 4; default: "
                      "synthetic speech-like audio).", flag_values=flag_values)
    flags.DEFINE_float("max_seconds", 30.0, "Longest audio the signatures accept, in seconds (0: no limit).",
                       lower_bound=0.0, flag_values=flag_values)


def main(flag_values, positional):
    if positional:
        raise UsageError(f"unexpected arguments: {' '.join(positional)}")
    if not flag_values.model:
        raise UsageError("--model=M.keras is required")
    if not flag_values.export_root:
        raise UsageError("--export_root is required")
    if not os.path.isfile(flag_values.model):
        raise UsageError(f"--model file not found: {flag_values.model}")
    for path in flag_values.warmup_files:
        if not os.path.isfile(path):
            raise UsageError(f"--warmup_files: file not found: {path}")
    from saved_models.export import check_name
    from saved_models.export import export
    from saved_models.export import read_labels

    try:
        check_name(flag_values.name)
    except ValueError as error:
        raise UsageError(str(error)) from None
    model_dir = os.path.join(flag_values.export_root, flag_values.name)
    if (flag_values.version is not None and not flag_values.overwrite
            and os.path.exists(os.path.join(model_dir, str(flag_values.version)))):
        raise UsageError(f"version {flag_values.version} already exists in {model_dir}; "
                         "add --overwrite to replace it, or leave out --version for the next one")
    try:
        path = export(
            flag_values.model, flag_values.export_root, flag_values.name, version=flag_values.version,
            overwrite=flag_values.overwrite, warmup_files=flag_values.warmup_files or None,
            max_seconds=flag_values.max_seconds or None,
        )
    except FileExistsError as error:
        raise UsageError(str(error)) from None
    except ValueError as error:
        raise UsageError(str(error).replace("\n", " ")) from None
    labels = read_labels(path)
    print(f"exported {flag_values.model} to {path}")
    print(f"  signatures: serving_default (waveform, num_samples), serve_wav (audio_bytes); classes: {', '.join(labels)}")
    print(f"  serve it: keras-ser serve-local --model_base_path={model_dir} --model_name={flag_values.name}")
    return 0
