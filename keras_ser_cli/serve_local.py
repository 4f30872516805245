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

--enable_batching merges concurrent requests for the same signature into one
call: requests of similar length (--length_bucket_ratio), at most
--max_execution_batch_size rows, waiting at most --batch_timeout_micros for
more under load and not at all when the server is idle; a bad request in a
batch fails alone. --batching_parameters_file (TF Serving's batching.config)
sets the same values; a flag given on the command line wins over the file.
--tensorflow_intra_op_parallelism / --tensorflow_inter_op_parallelism size
TensorFlow's thread pools (0: TensorFlow's default), as in TF Serving. By
default (-1) the intra-op pool is TensorFlow's without batching and, with
--enable_batching, the cores shared among the batch threads (1 thread per op
on 2 cores with 2 batch threads: measured faster, docs/serving.md).

Examples:
    keras-ser serve-local --model_base_path=exports/ser --model_name=ser
    keras-ser serve-local --model_base_path=exports/ser --enable_batching
    keras-ser serve-local --model_config_file=serving/models.config --port=0 --rest_api_port=0
"""

import os

from keras_ser_cli.usage import UsageError

BATCHING_FLAGS = ("max_execution_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches",
                  "length_bucket_ratio")


def define_flags(flag_values):
    from absl import flags

    from serving import batching as defaults

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
    flags.DEFINE_string("batching_parameters_file", None, "A batching.config (TF Serving's BatchingParameters): "
                        "its max_batch_size caps the batch of one request; with --enable_batching its "
                        "max_execution_batch_size (else max_batch_size), batch_timeout_micros, num_batch_threads, "
                        "max_enqueued_batches and pad_variable_length_inputs apply too.", flag_values=flag_values)
    flags.DEFINE_integer("max_batch_size", 64, "Largest batch one request may carry (INVALID_ARGUMENT "
                         "above it), unless --batching_parameters_file sets it.", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_boolean("enable_batching", False, "Merge concurrent Predict requests (gRPC and REST) for the same "
                         "signature into one call, grouped by length; a bad request fails alone. Off: each request "
                         "runs alone.", flag_values=flag_values)
    flags.DEFINE_integer("max_execution_batch_size", defaults.DEFAULT_MAX_EXECUTION_BATCH_SIZE,
                         "With --enable_batching: most rows merged into one call (a larger request runs alone).",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("batch_timeout_micros", defaults.DEFAULT_BATCH_TIMEOUT_MICROS,
                         "With --enable_batching: under load, longest wait for more requests to join a batch, from "
                         "its oldest request's arrival (a request that finds the server idle runs at once).",
                         lower_bound=0, flag_values=flag_values)
    flags.DEFINE_integer("num_batch_threads", defaults.DEFAULT_NUM_BATCH_THREADS,
                         "With --enable_batching: batches run at the same time.", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_integer("max_enqueued_batches", defaults.DEFAULT_MAX_ENQUEUED_BATCHES,
                         "With --enable_batching: queue depth in batches; beyond it requests get UNAVAILABLE.",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_float("length_bucket_ratio", defaults.DEFAULT_LENGTH_BUCKET_RATIO,
                       "With --enable_batching: longest / shortest request length in one batch (WAV duration, or "
                       "waveform width); 0: any lengths.", lower_bound=0.0, flag_values=flag_values)
    flags.DEFINE_integer("tensorflow_intra_op_parallelism", -1, "Threads of one op (TensorFlow's intra-op pool). "
                         "0: TensorFlow's default (one per core); -1: that without --enable_batching, and with it "
                         "cores / --num_batch_threads (at least 1).", lower_bound=-1, flag_values=flag_values)
    flags.DEFINE_integer("tensorflow_inter_op_parallelism", 0, "Ops run at the same time (TensorFlow's inter-op "
                         "pool; 0: TensorFlow's default).", lower_bound=0, flag_values=flag_values)
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
    if not flag_values.enable_batching:
        given = [f"--{name}" for name in BATCHING_FLAGS if flag_values[name].present]
        if given:
            raise UsageError(f"{', '.join(given)} need --enable_batching (without it each request runs alone)")
    max_batch_size = flag_values.max_batch_size
    batching = None
    try:
        if flag_values.batching_parameters_file:
            from serving.config import read_batching_config

            max_batch_size = read_batching_config(flag_values.batching_parameters_file).get("max_batch_size",
                                                                                             max_batch_size)
        if flag_values.enable_batching:
            from serving.batching import BatchingParameters

            given = {name: flag_values[name].value for name in BATCHING_FLAGS
                     if flag_values[name].present or not flag_values.batching_parameters_file}
            if flag_values.batching_parameters_file:
                batching = BatchingParameters.from_file(flag_values.batching_parameters_file, **given)
            else:
                batching = BatchingParameters(**given)
    except ValueError as error:
        raise UsageError(str(error)) from None
    intra = flag_values.tensorflow_intra_op_parallelism
    if intra < 0:
        intra = intra_op_threads(batching.num_batch_threads) if batching is not None else 0
    _set_threads(intra, flag_values.tensorflow_inter_op_parallelism)
    from serving.server import serve

    try:
        return serve(
            model_name=flag_values.model_name, model_base_path=flag_values.model_base_path,
            model_config_file=flag_values.model_config_file, port=flag_values.port,
            rest_api_port=None if flag_values.rest_api_port < 0 else flag_values.rest_api_port,
            max_batch_size=max_batch_size, poll_seconds=flag_values.file_system_poll_wait_seconds,
            batching=batching,
        )
    except (OSError, ValueError) as error:
        raise UsageError(str(error).replace("\n", " ")) from None


def intra_op_threads(num_batch_threads, cores=None):
    """Intra-op threads when batching: the cores shared among the batch threads, at least 1.

    On 2 cores with 2 batch threads each op runs on one thread while the
    other batch (or the other encoder of the same batch) uses the other
    core: on the fusion export, 1.3x the requests per second of TensorFlow's
    default pool (docs/serving.md, Serving performance).

    >>> intra_op_threads(2, cores=2), intra_op_threads(2, cores=16), intra_op_threads(4, cores=2)
    (1, 8, 1)
    """
    cores = cores or os.cpu_count() or 1
    return max(1, cores // num_batch_threads)


def _set_threads(intra, inter):
    """TensorFlow's thread pools, before anything runs (0 keeps TensorFlow's default)."""
    if not intra and not inter:
        return
    import tensorflow as tf

    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)
