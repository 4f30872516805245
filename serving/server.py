"""`keras-ser serve-local`: a development server for exported models (not a production server).

A Python gRPC server on the official tensorflow-serving-api stubs plus TF
Serving's REST API, for machines without `tensorflow_model_server` (no
binary on PyPI or apt, no Docker engine: docs/design.md, Why a Python
test server). It serves the same
SavedModel directories with the same protocol, status codes and messages,
so clients, tests and the warmup file can be checked end to end before the
real `tensorflow/serving` image runs them on a GPU host.

- gRPC: `PredictionService/Predict`, `PredictionService/GetModelMetadata`,
  `ModelService/GetModelStatus`, `ModelService/HandleReloadConfigRequest`
  (Classify, Regress and MultiInference answer UNIMPLEMENTED).
- REST: `GET /v1/models/<name>[/versions/<v>|/labels/<l>]` (status),
  `GET .../metadata`, `POST /v1/models/<name>[/versions/<v>|/labels/<l>]:predict`.
- Models: `--model_name` + `--model_base_path`, or a `models.config`
  (version policy, labels `stable`/`canary`); the highest version unless the
  config says otherwise; new version directories are picked up while running
  (polled every second); the warmup file is replayed at load.
- Binds 127.0.0.1 only. Port 0 picks a free port; the chosen ports are
  printed as TF Serving prints them (`Running gRPC ModelServer at ...`,
  `Exporting HTTP/REST API at:...`).

- Batching (`--enable_batching`, off by default as in TF Serving):
  concurrent Predict requests (gRPC and REST) for the same signature of a
  version are queued and run as one call, grouped by length, with a short
  batch timeout under load and none for a request that finds the server
  idle; a bad request in a batch fails alone with its own message
  (`serving/batching.py`). Without it each request runs alone.

It is not tuned or hardened for production traffic: use the real server for
that (`serving/docker-compose.gpu.yml`).

Example:

>>> from serving.server import DevServer
>>> with DevServer.for_model("ser", "exports/ser", port=0, rest_api_port=0) as server:  # doctest: +SKIP
...     print(server.grpc_address, server.rest_url)
127.0.0.1:40123 http://127.0.0.1:40124
"""

import concurrent.futures
import http.server
import json
import logging
import re
import signal
import sys
import threading
import urllib.parse

import grpc

from serving import json_tensor
from serving.errors import ServingError
from serving.errors import invalid
from serving.servables import DEFAULT_MAX_BATCH_SIZE
from serving.servables import Model
from serving.servables import ModelManager

log = logging.getLogger("serving.server")

HOST = "127.0.0.1"
# tensorflow_model_server's own defaults.
DEFAULT_GRPC_PORT = 8500
DEFAULT_REST_PORT = 8501

_PREDICT_PATH = re.compile(
    r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)")
_STATUS_PATH = re.compile(
    r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?")

# TF Serving's ToHTTPStatusCode (http_server.cc).
HTTP_STATUS = {
    "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400, "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403, "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501, "INTERNAL": 500,
    "UNAVAILABLE": 503, "DATA_LOSS": 500, "UNAUTHENTICATED": 401,
}


def _abort(context, error):
    context.abort(error.code, error.message)


def _servicers(manager):
    from tensorflow_serving.apis import model_management_pb2
    from tensorflow_serving.apis import model_service_pb2_grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            try:
                if not request.HasField("model_spec"):  # as TF Serving's predict_impl.cc
                    raise invalid("Missing ModelSpec")
                return manager.resolve(request.model_spec).predict(request)
            except ServingError as error:
                _abort(context, error)

        def GetModelMetadata(self, request, context):
            try:
                if not request.HasField("model_spec"):
                    raise invalid("Missing ModelSpec")
                if not request.metadata_field:
                    raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
                for field in request.metadata_field:
                    if field != "signature_def":
                        raise invalid(f"Metadata field {field} is not supported")
                return manager.resolve(request.model_spec).metadata(request.model_spec)
            except ServingError as error:
                _abort(context, error)

        def _unimplemented(self, request, context):
            context.abort(grpc.StatusCode.UNIMPLEMENTED,
                          "keras-ser serve-local implements Predict and GetModelMetadata; use Predict")

        Classify = Regress = MultiInference = _unimplemented

    class ModelService(model_service_pb2_grpc.ModelServiceServicer):
        def GetModelStatus(self, request, context):
            try:
                if not request.HasField("model_spec"):
                    raise invalid("Missing ModelSpec")
                return manager.status(request.model_spec)
            except ServingError as error:
                _abort(context, error)

        def HandleReloadConfigRequest(self, request, context):
            response = model_management_pb2.ReloadConfigResponse()
            try:
                models = models_from_config(request.config, manager_max_batch(manager), manager_batching(manager))
                manager.reload(models)
            except (ValueError, ServingError) as error:
                response.status.error_code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
                response.status.error_message = str(error)
            return response

    return PredictionService(), ModelService()


def manager_max_batch(manager):
    sizes = [m.max_batch_size for m in manager.models.values()]
    return max(sizes) if sizes else DEFAULT_MAX_BATCH_SIZE


def manager_batching(manager):
    """The server's batching parameters (the same for every model), or None."""
    return next((m.batching for m in manager.models.values()), None)


def models_from_config(config, max_batch_size=DEFAULT_MAX_BATCH_SIZE, batching=None):
    """`Model`s of a `ModelServerConfig` proto (a parsed models.config)."""
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError("Only model_config_list is supported in models.config")
    models = [Model.from_config(entry, max_batch_size, batching) for entry in config.model_config_list.config]
    if not models:
        raise ValueError("models.config lists no model")
    return models


def _model_spec(name, version, label):
    from tensorflow_serving.apis import model_pb2

    spec = model_pb2.ModelSpec(name=name)
    if version is not None and label is not None:
        raise invalid(f"Both model version ({version}) and model version label ({label}) cannot be supplied.")
    if version is not None:
        spec.version.value = version
    if label is not None:
        spec.version_label = label
    return spec


def _empty_batch(servable, signature_name, inputs):
    """The inputs of an empty `instances` list as 0-row tensors of the signature's rank.

    TF Serving refuses an empty `instances` list itself ("No values in 'instances'
    array"); here the 0-row batch also goes to the signature, so the message names
    the input (`waveform has 0 rows; ...`) as it does for an empty gRPC batch.
    """
    import numpy as np

    _, signature = servable.signature(signature_name, rest=True)
    shaped = {}
    for alias, (array, dtype) in inputs.items():
        shape = signature.inputs[alias].tensor_shape
        dims = [] if shape.unknown_rank else [max(d.size, 0) for d in shape.dim]
        shaped[alias] = (np.reshape(array, [0] + dims[1:]) if len(dims) > 1 else array, dtype)
    return shaped


def _rest_handler(manager):
    from google.protobuf import json_format

    def to_dict(message, preserve=False):
        return json_format.MessageToDict(message, preserving_proto_field_name=preserve,
                                         always_print_fields_with_no_presence=True)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "keras-ser-serve-local"

        def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
            log.debug("%s - %s", self.address_string(), format % args)

        def _send(self, status, payload):
            body = json.dumps(payload, indent=1 if status == 200 else None).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _fail(self, error):
            self._send(HTTP_STATUS.get(error.code.name, 500), {"error": error.message})

        def _path(self):
            return urllib.parse.urlsplit(self.path).path

        def _parse_target(self, match):
            name = urllib.parse.unquote(match.group(1) or "")
            version = int(match.group(2)) if match.group(2) else None
            label = urllib.parse.unquote(match.group(3)) if match.group(3) else None
            return name, version, label

        def do_GET(self):  # noqa: N802 - http.server's naming
            path = self._path()
            match = _STATUS_PATH.fullmatch(path)
            try:
                if not match:
                    if path.lower().startswith("/v1/"):
                        raise invalid(f"Malformed request: GET {path}")
                    return self._send(404, {"error": f"Not found: {path}; the API is under /v1/models/"})
                name, version, label = self._parse_target(match)
                if not name:
                    raise invalid("Missing model name in request.")
                spec = _model_spec(name, version, label)
                if match.group(4):
                    response = manager.resolve(spec).metadata(spec)
                    from tensorflow_serving.apis import get_model_metadata_pb2

                    signature_map = get_model_metadata_pb2.SignatureDefMap()
                    response.metadata["signature_def"].Unpack(signature_map)
                    return self._send(200, {"model_spec": to_dict(response.model_spec, preserve=True),
                                            "metadata": {"signature_def": to_dict(signature_map, preserve=True)}})
                return self._send(200, to_dict(manager.status(spec)))
            except ServingError as error:
                self._fail(error)

        def do_POST(self):  # noqa: N802
            path = self._path()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            match = _PREDICT_PATH.fullmatch(path)
            try:
                if not match:
                    if path.lower().startswith("/v1/"):
                        raise invalid(f"Malformed request: POST {path}")
                    return self._send(404, {"error": f"Not found: {path}; the API is under /v1/models/"})
                name, version, label = self._parse_target(match)
                if match.group(4).lower() != "predict":
                    raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                                       f"keras-ser serve-local implements :predict, not :{match.group(4)}")
                spec = _model_spec(name, version, label)
                servable = manager.resolve(spec)

                def signature_inputs(signature_name):
                    import tensorflow as tf

                    _, signature = servable.signature(signature_name, rest=True)
                    return {alias: tf.dtypes.as_dtype(info.dtype) for alias, info in signature.inputs.items()}

                signature_name, inputs, row_format = json_tensor.parse_request(body, signature_inputs)
                if row_format and inputs and all(array.shape[:1] == (0,) for array, _ in inputs.values()):
                    inputs = _empty_batch(servable, signature_name, inputs)
                    try:
                        servable.run(signature_name, inputs, rest=True)
                    except ServingError as error:  # the signature's own empty-batch message
                        raise ServingError(error.code, f"No values in 'instances' array: {error.message}") from None
                    raise invalid("No values in 'instances' array")
                _, outputs = servable.run(signature_name, inputs, rest=True)
                self._send(200, json_tensor.format_response(outputs, row_format))
            except ServingError as error:
                self._fail(error)

    return Handler


class DevServer:
    """The development server: gRPC and REST over a `ModelManager`.

    Args:
        models: list of `serving.servables.Model`.
        port: int. gRPC port; 0 picks a free one. Defaults to `8500`.
        rest_api_port: int. REST port; 0 picks a free one, None disables
            REST. Defaults to `8501`.
        poll_seconds: float. Base-path polling period; 0 disables polling.
            Defaults to `1.0` (TF Serving's default).
        max_workers: int or None. gRPC worker threads (each holds one
            request until it is answered). Defaults to `None`: 16, or with
            batching twice the largest merged batch if that is more, so a
            full batch can run while the next one fills.

    Example:

    >>> server = DevServer.for_model("ser", "exports/ser", port=0).start()   # doctest: +SKIP
    >>> server.grpc_port                                                              # doctest: +SKIP
    40123
    >>> server.stop()                                                                 # doctest: +SKIP
    """

    def __init__(self, models, port=DEFAULT_GRPC_PORT, rest_api_port=DEFAULT_REST_PORT, poll_seconds=1.0,
                 max_workers=None):
        for label, value in (("port", port), ("rest_api_port", rest_api_port)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535):
                raise ValueError(f"{label} must be a port number in 0..65535 (0: any free port). Received: {value!r}")
        self.manager = ModelManager(models, poll_seconds=poll_seconds)
        self._port = port
        self._rest_port = rest_api_port
        if max_workers is None:
            sizes = [m.batching.max_execution_batch_size for m in models if m.batching is not None]
            max_workers = max([16] + [2 * size for size in sizes])
        self._max_workers = max_workers
        self._grpc = None
        self._http = None
        self.grpc_port = None
        self.rest_port = None
        self._stopped = threading.Event()

    @classmethod
    def for_model(cls, model_name, model_base_path, max_batch_size=DEFAULT_MAX_BATCH_SIZE, batching=None, **kwargs):
        """A server for one model (TF Serving's `--model_name` / `--model_base_path`).

        `batching`: a `serving.batching.BatchingParameters` to merge
        concurrent requests (`--enable_batching`), or None (each alone).
        """
        return cls([Model(model_name, model_base_path, max_batch_size=max_batch_size, batching=batching)], **kwargs)

    @classmethod
    def from_config_file(cls, path, max_batch_size=DEFAULT_MAX_BATCH_SIZE, batching=None, **kwargs):
        """A server for the models of a `models.config` (`--model_config_file`)."""
        from serving.config import read_models_config

        return cls(models_from_config(read_models_config(path), max_batch_size, batching), **kwargs)

    def batching_stats(self):
        """`{(model, version, signature): Batcher.stats}` of the batchers made so far (empty without batching)."""
        stats = {}
        for model in self.manager.models.values():
            with model.lock:
                versions = dict(model.versions)
            for number, version in versions.items():
                for signature, batcher in dict(version.batchers).items():
                    stats[(model.name, number, signature)] = dict(batcher.stats)
        return stats

    @property
    def grpc_address(self):
        return f"{HOST}:{self.grpc_port}"

    @property
    def rest_url(self):
        return None if self.rest_port is None else f"http://{HOST}:{self.rest_port}"

    def start(self):
        """Loads the models (replaying warmup), then opens the ports. Returns self."""
        from tensorflow_serving.apis import model_service_pb2_grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.manager.start()
        # TF Serving accepts messages of any size (a batch of waveforms is large).
        options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1),
                   ("grpc.so_reuseport", 0)]
        self._grpc = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=self._max_workers,
                                                                      thread_name_prefix="grpc"), options=options)
        prediction, model_service = _servicers(self.manager)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(prediction, self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(model_service, self._grpc)
        try:
            self.grpc_port = self._grpc.add_insecure_port(f"{HOST}:{self._port}")
        except RuntimeError as error:
            self.manager.stop()
            raise OSError(f"Cannot bind gRPC to {HOST}:{self._port}: {error}") from None
        if not self.grpc_port:
            self.manager.stop()
            raise OSError(f"Cannot bind gRPC to {HOST}:{self._port} (in use?)")
        self._grpc.start()
        if self._rest_port is not None:
            try:
                self._http = http.server.ThreadingHTTPServer((HOST, self._rest_port), _rest_handler(self.manager))
            except OSError as error:
                self.stop()
                raise OSError(f"Cannot bind REST to {HOST}:{self._rest_port}: {error.strerror}") from None
            self._http.daemon_threads = True
            self.rest_port = self._http.server_address[1]
            threading.Thread(target=self._http.serve_forever, name="rest", daemon=True).start()
        return self

    def stop(self, grace=1.0):
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
            self._grpc = None
        self.manager.stop()
        for model in self.manager.models.values():
            with model.lock:
                versions = list(model.versions.values())
            for version in versions:
                for batcher in list(version.batchers.values()):
                    batcher.stop()
        self._stopped.set()

    def wait(self):
        """Blocks until `stop()` (from another thread or a signal handler)."""
        self._stopped.wait()

    def __enter__(self):
        return self.start() if self._grpc is None else self

    def __exit__(self, *exc):
        self.stop()


def serve(model_name=None, model_base_path=None, model_config_file=None, port=DEFAULT_GRPC_PORT,
          rest_api_port=DEFAULT_REST_PORT, max_batch_size=DEFAULT_MAX_BATCH_SIZE, poll_seconds=1.0, out=None,
          batching=None):
    """Starts a `DevServer`, prints its ports, and serves until SIGINT/SIGTERM. Returns 0.

    With `batching` (a `serving.batching.BatchingParameters`) the merged
    batches of each signature are summed up when the server stops.
    """
    out = out or sys.stdout
    if model_config_file:
        server = DevServer.from_config_file(model_config_file, max_batch_size, batching, port=port,
                                            rest_api_port=rest_api_port, poll_seconds=poll_seconds)
    else:
        server = DevServer.for_model(model_name, model_base_path, max_batch_size, batching, port=port,
                                     rest_api_port=rest_api_port, poll_seconds=poll_seconds)

    def stop(signum, frame):
        threading.Thread(target=server.stop, daemon=True).start()

    # Installed before the ready lines are printed: a client that reads them may stop the server at once.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        for model in server.manager.models.values():
            versions = sorted(model.available())
            print(f"Model {model.name}: base path {model.base_path}, serving versions {versions or 'none yet'}"
                  + (f", labels {model.labels}" if model.labels else ""), file=out)
        if batching is not None:
            import tensorflow as tf

            intra = tf.config.threading.get_intra_op_parallelism_threads() or "TensorFlow's default"
            print(f"Batching: at most {batching.max_execution_batch_size} rows a call, "
                  f"{batching.batch_timeout_micros} us timeout, {batching.num_batch_threads} batch thread(s), "
                  f"length buckets {batching.length_bucket_ratio:g}x; intra-op threads: {intra}", file=out)
        print(f"Running gRPC ModelServer at {server.grpc_address} ...", file=out)
        if server.rest_url:
            print(f"Exporting HTTP/REST API at:{HOST}:{server.rest_port} ...", file=out)
        print("keras-ser serve-local is a development server (not for production); Ctrl-C stops it.", file=out)
        out.flush()
        server.wait()
        for (name, number, signature), stats in sorted(server.batching_stats().items()):
            print(f"Batched {name} version {number} {signature}: {stats['requests']} requests in {stats['batches']} "
                  f"calls ({stats['requests'] / max(stats['batches'], 1):.1f} a call, at most {stats['largest']}), "
                  f"{stats['retried']} failed batches run again request by request", file=out)
        out.flush()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
