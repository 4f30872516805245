"""Development gRPC + REST server for exported models (not a production server).

Serves MODEL_BASE_PATH/<version>/ SavedModels (from `keras-ser export`)
with TensorFlow Serving's protocol: gRPC PredictionService (Predict,
GetModelMetadata) and ModelService (GetModelStatus), and the REST API
(/v1/models/NAME[/versions/V|/labels/L][:predict|/metadata]). Serves the
highest version (or what --model_config_file says), loads new version
folders while running, replays the export's warmup requests at load, and
answers bad input with INVALID_ARGUMENT and a message. Binds 127.0.0.1 only;
--port=0 / --rest_api_port=0 pick free ports, printed at start. For
production use the tensorflow/serving image (serving/docker-compose.gpu.yml).

Examples:
    keras-ser serve-local --model_base_path=exports/ser --model_name=ser
    keras-ser serve-local --model_config_file=serving/models.config --port=0 --rest_api_port=0
"""

import os

from keras_ser_cli.usage import UsageError


def define_flags(flag_values):
    from absl import flags

    flags.DEFINE_string("model_base_path", None, "Folder of numeric version folders (EXPORT_ROOT/NAME).",
                        flag_values=flag_values)
    flags.DEFINE_string("model_name", "ser", "Name clients use for the model of --model_base_path.",
                        flag_values=flag_values)
    flags.DEFINE_string("model_config_file", None, "A models.config (text ModelServerConfig: several models, "
                        "version policy, stable/canary labels) instead of --model_base_path.",
                        flag_values=flag_values)
    flags.DEFINE_integer("port", 8500, "gRPC port on 127.0.0.1 (0: any free port).", lower_bound=0,
                         upper_bound=65535, flag_values=flag_values)
    flags.DEFINE_integer("rest_api_port", 8501, "REST port on 127.0.0.1 (0: any free port; -1: no REST).",
                         lower_bound=-1, upper_bound=65535, flag_values=flag_values)
    flags.DEFINE_alias("rest_port", "rest_api_port", flag_values=flag_values)
    flags.DEFINE_string("batching_parameters_file", None, "A batching.config; its max_batch_size caps the "
                        "batch of one request (the server runs each request alone).", flag_values=flag_values)
    flags.DEFINE_integer("max_batch_size", 64, "Largest batch one request may carry (INVALID_ARGUMENT "
                         "above it), unless --batching_parameters_file sets it.", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_float("file_system_poll_wait_seconds", 1.0, "How often the base paths are polled for new "
                       "versions (0: never).", lower_bound=0.0, flag_values=flag_values)


def main(flag_values, positional):
    if positional:
        raise UsageError(f"unexpected arguments: {' '.join(positional)}")
    if bool(flag_values.model_base_path) == bool(flag_values.model_config_file):
        raise UsageError("give exactly one of --model_base_path=EXPORT_ROOT/NAME or --model_config_file=FILE")
    for flag in ("model_base_path", "model_config_file", "batching_parameters_file"):
        value = getattr(flag_values, flag)
        if value and not os.path.exists(value):
            raise UsageError(f"--{flag} not found: {value}")
    max_batch_size = flag_values.max_batch_size
    if flag_values.batching_parameters_file:
        from serving.config import read_batching_config

        try:
            max_batch_size = read_batching_config(flag_values.batching_parameters_file).get("max_batch_size",
                                                                                             max_batch_size)
        except ValueError as error:
            raise UsageError(str(error)) from None
    from serving.server import serve

    try:
        return serve(
            model_name=flag_values.model_name, model_base_path=flag_values.model_base_path,
            model_config_file=flag_values.model_config_file, port=flag_values.port,
            rest_api_port=None if flag_values.rest_api_port < 0 else flag_values.rest_api_port,
            max_batch_size=max_batch_size, poll_seconds=flag_values.file_system_poll_wait_seconds,
        )
    except (OSError, ValueError) as error:
        raise UsageError(str(error).replace("\n", " ")) from None
