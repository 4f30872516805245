"""Exports a .keras model as a versioned SavedModel for TensorFlow Serving, or as TensorFlow Lite.

Writes EXPORT_ROOT/NAME/VERSION/ (the next integer version unless --version
is given) through a temporary directory renamed into place, so a server
polling EXPORT_ROOT/NAME never loads half a model. Signatures:
serving_default (waveform float32 [batch, samples] at 16 kHz + num_samples
int32 [batch]) and serve_wav (audio_bytes: 16-bit PCM WAV bytes [batch]);
outputs probabilities, class_id, class_name, classes. The export holds
warmup requests and labels.txt in assets.extra/. Serve it with
`keras-ser serve-local` here, or tensorflow/serving on a GPU host
(docs/serving.md).

--format=tflite writes EXPORT_ROOT/NAME.tflite instead (and NAME.tflite.json:
class names, sample rate, accepted lengths, ops): one utterance's 16 kHz mono
float32 waveform [1, samples] in, probabilities [1, classes] out, features
in the graph, TFLite built-in ops only (saved_models/tflite.py). --version
and --warmup_files apply to SavedModels only.

--preset=NAME exports a trained model shipped with keras-ser instead of a
.keras file (e.g. encoder_stats_emodb; keras_ser.list_presets()).

Example:
    keras-ser export --model=emodb.keras --export_root=exports --name=ser
    keras-ser export --preset=encoder_stats_emodb --export_root=exports --name=ser
    keras-ser export --model=emodb.keras --export_root=exports --name=ser --format=tflite
"""

import os

from keras_ser_cli.usage import UsageError


def define_flags(flag_values):
    from absl import flags

    flags.DEFINE_string("model", None, "The .keras model to export (saved by keras-ser train/loso/demo).",
                        flag_values=flag_values)
    flags.DEFINE_string("preset", None, "A trained model shipped with keras-ser to export instead of --model "
                        "(one of keras_ser.list_presets(), e.g. fusion_stats_emodb).", flag_values=flag_values)
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
    flags.DEFINE_enum("format", "saved_model", ["saved_model", "tflite"], "saved_model: the versioned "
                      "SavedModel for TF Serving; tflite: EXPORT_ROOT/NAME.tflite, waveform [1, samples] at 16 kHz "
                      "in, probabilities out (TFLite built-in ops only).", flag_values=flag_values)


def main(flag_values, positional):
    if positional:
        raise UsageError(f"unexpected arguments: {' '.join(positional)}")
    if bool(flag_values.model) == bool(flag_values.preset):
        raise UsageError("give exactly one of --model=M.keras or --preset=NAME")
    if not flag_values.export_root:
        raise UsageError("--export_root is required")
    if flag_values.model and not os.path.isfile(flag_values.model):
        raise UsageError(f"--model file not found: {flag_values.model}")
    for path in flag_values.warmup_files:
        if not os.path.isfile(path):
            raise UsageError(f"--warmup_files: file not found: {path}")
    from saved_models.export import check_name
    from saved_models.export import export
    from saved_models.export import read_labels
    from saved_models.export import read_metadata

    try:
        check_name(flag_values.name)
    except ValueError as error:
        raise UsageError(str(error)) from None
    source, what = flag_values.model, flag_values.model
    if flag_values.preset:
        from keras_ser_cli import model_flags

        source, what = model_flags.preset(flag_values.preset, compile=False), f"preset {flag_values.preset}"
    if flag_values.format == "tflite":
        return _export_tflite(flag_values, source, what)
    model_dir = os.path.join(flag_values.export_root, flag_values.name)
    if (flag_values.version is not None and not flag_values.overwrite
            and os.path.exists(os.path.join(model_dir, str(flag_values.version)))):
        raise UsageError(f"version {flag_values.version} already exists in {model_dir}; "
                         "add --overwrite to replace it, or leave out --version for the next one")
    try:
        path = export(
            source, flag_values.export_root, flag_values.name, version=flag_values.version,
            overwrite=flag_values.overwrite, warmup_files=flag_values.warmup_files or None,
            max_seconds=flag_values.max_seconds or None,
        )
    except FileExistsError as error:
        raise UsageError(str(error)) from None
    except ValueError as error:
        raise UsageError(str(error).replace("\n", " ")) from None
    labels = read_labels(path)
    print(f"exported {what} to {path}")
    inputs = {"serving_default": "waveform, num_samples", "serve_wav": "audio_bytes",
              "serve_speaker": "audio_bytes, all of one speaker"}
    signatures = ", ".join(f"{name} ({inputs.get(name, ', '.join(spec['inputs']))})"
                           for name, spec in read_metadata(path)["signatures"].items())
    print(f"  signatures: {signatures}; classes: {', '.join(labels)}")
    print(f"  serve it: keras-ser serve-local --model_base_path={model_dir} --model_name={flag_values.name}")
    return 0


def _export_tflite(flag_values, source, what):
    if flag_values.version is not None:
        raise UsageError("--version applies to --format=saved_model only (a .tflite export is one file, "
                         "EXPORT_ROOT/NAME.tflite; --overwrite replaces it)")
    if flag_values.warmup_files:
        raise UsageError("--warmup_files applies to --format=saved_model only (TF Serving's warmup requests)")
    from saved_models.tflite import export_tflite
    from saved_models.tflite import read_tflite_metadata

    path = os.path.join(flag_values.export_root, flag_values.name + ".tflite")
    if os.path.exists(path) and not flag_values.overwrite:
        raise UsageError(f"{path} already exists; add --overwrite to replace it")
    try:
        path = export_tflite(source, flag_values.export_root, flag_values.name,
                             max_seconds=flag_values.max_seconds or None, overwrite=flag_values.overwrite)
    except FileExistsError as error:
        raise UsageError(str(error)) from None
    except ValueError as error:
        raise UsageError(str(error).replace("\n", " ")) from None
    metadata = read_tflite_metadata(path)
    select = ", ".join(metadata["ops"]["select"]) or "none"
    print(f"exported {what} to {path} ({metadata['size_bytes'] / 1e6:.1f} MB)")
    print(f"  signature: serving_default (waveform float32 [1, samples] at {metadata['sample_rate']} Hz, at least "
          f"{metadata['min_samples']} samples) -> probabilities; classes: {', '.join(metadata['class_names'])}")
    print(f"  ops: {len(metadata['ops']['builtin'])} TFLite built-ins; select TF ops: {select}")
    return 0
