"""Clients of TensorFlow Serving (and of `keras-ser serve-local`) for keras-ser models.

- `GrpcClient(host, port)`: the official tensorflow-serving-api stubs
  (`PredictionService`, `ModelService`) over gRPC.
- `RestClient(url)`: TF Serving's REST API (`/v1/models/...:predict`, WAV
  bytes as `{"b64": ...}`), with the standard library only.
- `predict_with_server(server, files)`: what `keras-ser predict --server=...`
  calls.

Both clients have the same methods and return the same structures:

- `predict_files(files)`: one result dict per file, in order (see
  `predict_with_server`); a file that fails gets an `"error"` entry instead
  of a label, the others still get theirs.
- `predict_waveforms(waveforms)`: mono float arrays at 16 kHz, sent as one
  zero-padded batch with their true lengths to `serving_default`; a list of
  result dicts (raises `ServingRequestError` if the request fails).
- `metadata()` and `status()`: the JSON structures of TF Serving's REST API
  (`{"model_spec": ..., "metadata": {"signature_def": ...}}` and
  `{"model_version_status": [...]}`), built from the gRPC replies for
  `GrpcClient`.

Example:

>>> from serving.client import GrpcClient
>>> client = GrpcClient("localhost", 8500, model_name="ser")          # doctest: +SKIP
>>> client.predict_files(["03a01Fa.wav"])                                 # doctest: +SKIP
[{'file': '03a01Fa.wav', 'label': 'happiness', 'class_id': 4, 'probabilities': {'anger': 0.01, ...}, 'model_version': 1}]
"""

import base64
import concurrent.futures
import json
import os
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

from saved_models.signatures import SERVE_WAV
from saved_models.signatures import SERVING_DEFAULT
from tf_pipeline.padding import pad_waveforms

DEFAULT_MODEL_NAME = "ser"
DEFAULT_TIMEOUT = 60.0

# REST status -> the gRPC code TF Serving most often maps to it.
_HTTP_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
               501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class ServingRequestError(Exception):
    """A request the server refused: `code` is the gRPC status name, `message` the server's text.

    For REST, `http_status` holds the HTTP status as well.
    """

    def __init__(self, code, message, http_status=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _results(outputs, version, names=None):
    probabilities = np.asarray(outputs["probabilities"], np.float32)
    classes = outputs.get("classes")
    results = []
    for row in range(probabilities.shape[0]):
        if classes is not None:
            scores = {_text(c): float(p) for c, p in zip(classes[row], probabilities[row])}
        else:  # a model exported without the `classes` output
            scores = [float(p) for p in probabilities[row]]
        results.append({
            **({"file": names[row]} if names is not None else {}),
            "label": _text(outputs["class_name"][row]),
            "class_id": int(outputs["class_id"][row]),
            "probabilities": scores,
            "model_version": version,
        })
    return results


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(), None
    except OSError as error:
        return None, f"cannot read {os.fspath(path)}: {error.strerror}"


class _Client:
    """What both clients share: batching of files, per-file errors."""

    def predict(self, inputs, signature_name=SERVING_DEFAULT, version=None, version_label=None):
        raise NotImplementedError

    def predict_waveforms(self, waveforms, version=None, version_label=None):
        """Results for mono 16 kHz waveforms (one padded request to `serving_default`).

        Returns:
            list of dicts `{"label", "class_id", "probabilities", "model_version"}`.

        Raises:
            ServingRequestError: the server refused the request.
        """
        batch, lengths = pad_waveforms(waveforms)
        outputs, served = self.predict({"waveform": batch, "num_samples": lengths}, SERVING_DEFAULT,
                                       version, version_label)
        return _results(outputs, served)

    def predict_files(self, files, version=None, version_label=None, batch_size=1, workers=4):
        """Results for WAV files (16-bit PCM, any rate/channels), through `serve_wav`.

        Files are sent `batch_size` per request, `workers` requests at a
        time. When a batch fails with INVALID_ARGUMENT (one bad file fails
        the whole batch), its files are retried one by one, so each file
        gets its own result or its own error.

        Returns:
            list of dicts, in the order of `files`: `{"file", "label",
            "class_id", "probabilities", "model_version"}`, or
            `{"file", "error"}` (error: `"<gRPC code>: <server message>"`).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer. Received: batch_size={batch_size!r}")
        files = [os.fspath(f) for f in files]
        results = [None] * len(files)
        readable = []
        for index, path in enumerate(files):
            contents, error = _read(path)
            if error:
                results[index] = {"file": path, "error": f"NOT_FOUND: {error}"}
            else:
                readable.append((index, contents))
        chunks = [readable[i : i + batch_size] for i in range(0, len(readable), batch_size)]

        def run(chunk):
            try:
                outputs, served = self.predict({"audio_bytes": np.array([c for _, c in chunk], dtype=object)},
                                               SERVE_WAV, version, version_label)
                for (index, _), result in zip(chunk, _results(outputs, served, [files[i] for i, _ in chunk])):
                    results[index] = result
            except ServingRequestError as error:
                if len(chunk) > 1 and error.code == "INVALID_ARGUMENT":  # one bad file fails its batch
                    for item in chunk:
                        run([item])
                else:
                    for index, _ in chunk:
                        results[index] = {"file": files[index], "error": f"{error.code}: {error.message}"}

        if chunks:
            with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(chunks)))) as pool:
                list(pool.map(run, chunks))
        return results


class GrpcClient(_Client):
    """A gRPC client of TF Serving on the official tensorflow-serving-api stubs.

    Args:
        host: str. Defaults to `"127.0.0.1"`.
        port: int. Defaults to `8500` (TF Serving's gRPC port).
        model_name: str. Defaults to `"ser"`.
        timeout: float. Seconds per call. Defaults to `60`.

    Example:

    >>> with GrpcClient("localhost", 8500, model_name="ser") as client:   # doctest: +SKIP
    ...     client.status()["model_version_status"][0]["state"]
    'AVAILABLE'
    """

    def __init__(self, host="127.0.0.1", port=8500, model_name=DEFAULT_MODEL_NAME, timeout=DEFAULT_TIMEOUT):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.address = f"{host}:{int(port)}"
        self.model_name = model_name
        self.timeout = timeout
        self._channel = grpc.insecure_channel(
            self.address, options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _spec(self, spec, version, version_label, signature_name=None):
        spec.name = self.model_name
        if version is not None:
            spec.version.value = int(version)
        if version_label:
            spec.version_label = version_label
        if signature_name is not None:
            spec.signature_name = signature_name

    def _call(self, method, request):
        import grpc

        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingRequestError(error.code().name, error.details() or "") from None

    def predict(self, inputs, signature_name=SERVING_DEFAULT, version=None, version_label=None):
        """One Predict call. `inputs`: dict alias -> array. Returns `(outputs, version)`:
        outputs is a dict alias -> numpy array."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, version, version_label, signature_name)
        for alias, value in inputs.items():
            value = np.asarray(value)
            dtype = tf.string if value.dtype.kind in "OSU" else None
            request.inputs[alias].CopyFrom(tf.make_tensor_proto(value, dtype=dtype))
        response = self._call(self.prediction.Predict, request)
        outputs = {alias: tf.make_ndarray(proto) for alias, proto in response.outputs.items()}
        return outputs, int(response.model_spec.version.value)

    def metadata(self, version=None, version_label=None):
        """GetModelMetadata as TF Serving's REST JSON: `{"model_spec", "metadata": {"signature_def"}}`."""
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, version, version_label)
        response = self._call(self.prediction.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        as_dict = lambda m: json_format.MessageToDict(  # noqa: E731
            m, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        return {"model_spec": as_dict(response.model_spec), "metadata": {"signature_def": as_dict(signature_map)}}

    def status(self, version=None, version_label=None):
        """GetModelStatus as TF Serving's REST JSON: `{"model_version_status": [...]}`."""
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, version, version_label)
        response = self._call(self.models.GetModelStatus, request)
        return json_format.MessageToDict(response, always_print_fields_with_no_presence=True)


class RestClient(_Client):
    """A client of TF Serving's REST API (standard library only).

    Args:
        url: str. Server root, e.g. `"http://localhost:8501"`.
        model_name: str. Defaults to `"ser"`.
        timeout: float. Seconds per call. Defaults to `60`.

    Example:

    >>> RestClient("http://localhost:8501").predict_files(["03a01Fa.wav"])   # doctest: +SKIP
    """

    def __init__(self, url="http://127.0.0.1:8501", model_name=DEFAULT_MODEL_NAME, timeout=DEFAULT_TIMEOUT):
        if "://" not in url:
            url = "http://" + url
        self.url = url.rstrip("/")
        self.model_name = model_name
        self.timeout = timeout

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def _target(self, version, version_label):
        path = f"/v1/models/{urllib.parse.quote(self.model_name, safe='')}"
        if version is not None:
            path += f"/versions/{int(version)}"
        elif version_label:
            path += f"/labels/{urllib.parse.quote(version_label, safe='')}"
        return self.url + path

    def _request(self, url, payload=None):
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                message = json.loads(body).get("error", "")
            except ValueError:
                message = body.decode("utf-8", "replace")
            raise ServingRequestError(_HTTP_CODES.get(error.code, "UNKNOWN"), message, error.code) from None
        except urllib.error.URLError as error:
            raise ServingRequestError("UNAVAILABLE", f"cannot reach {url}: {error.reason}") from None

    def predict(self, inputs, signature_name=SERVING_DEFAULT, version=None, version_label=None):
        """One :predict call (columnar "inputs" format). Returns `(outputs, version)`.

        The REST response does not say which version answered: `version` is
        the one asked for, or None.
        """
        columns = {}
        for alias, value in inputs.items():
            value = np.asarray(value)
            if value.dtype.kind in "OS":
                columns[alias] = [{"b64": base64.b64encode(bytes(v)).decode("ascii")} for v in value.ravel()]
            else:
                columns[alias] = value.tolist()
        payload = {"signature_name": signature_name, "inputs": columns}
        response = self._request(self._target(version, version_label) + ":predict", payload)["outputs"]
        outputs = {alias: np.asarray(value, dtype=object if alias in ("class_name", "classes") else None)
                   for alias, value in response.items()}
        return outputs, version

    def metadata(self, version=None, version_label=None):
        return self._request(self._target(version, version_label) + "/metadata")

    def status(self, version=None, version_label=None):
        return self._request(self._target(version, version_label))


def client_for(server, model_name=DEFAULT_MODEL_NAME, timeout=DEFAULT_TIMEOUT):
    """A client for `server`: `"host:port"` or `"grpc://host:port"` (gRPC), `"http://host:port"` (REST)."""
    if not isinstance(server, str) or not server:
        raise ValueError(f"server must be 'host:port', 'grpc://host:port' or 'http://host:port'. Received: {server!r}")
    if server.startswith(("http://", "https://")):
        return RestClient(server, model_name=model_name, timeout=timeout)
    address = server[len("grpc://"):] if server.startswith("grpc://") else server
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"server must be 'host:port', 'grpc://host:port' or 'http://host:port'. Received: {server!r}")
    return GrpcClient(host.strip("[]"), int(port), model_name=model_name, timeout=timeout)


def predict_with_server(server, files, model_name=DEFAULT_MODEL_NAME, version=None, version_label=None,
                        batch_size=1, timeout=DEFAULT_TIMEOUT):
    """Emotion of each audio file, from a TF Serving (or `keras-ser serve-local`) server.

    The files (16-bit PCM WAV of any rate and channel count) are sent as
    `audio_bytes` to the `serve_wav` signature, decoded and featurised in
    the server's graph.

    Args:
        server: str. `"host:port"` or `"grpc://host:port"` for gRPC,
            `"http://host:port"` for the REST API.
        files: list of paths.
        model_name: str. Defaults to `"ser"`.
        version: int or None. A specific version (default: the server's
            latest, or the one the label names).
        version_label: str or None, e.g. `"stable"` or `"canary"`.
        batch_size: int. Files per request. Defaults to `1`.
        timeout: float. Seconds per request. Defaults to `60`.

    Returns:
        list of dicts, one per file, in the order of `files`:

        - success: `{"file": str, "label": str, "class_id": int,
          "probabilities": {class name: float} (in class_id order; the
          format of `keras_ser.inference.predict_files`), "model_version":
          int or None (None over REST, whose response does not carry
          it)}`;
        - failure: `{"file": str, "error": str}`, the error being
          `"<gRPC status>: <server message>"`, e.g. `"INVALID_ARGUMENT:
          assertion failed: [audio_bytes[0] is a truncated WAV file: ...]"`.

    Raises:
        ValueError: `server` is not an address.

    Example:

    >>> for result in predict_with_server("localhost:8500", ["03a01Fa.wav"]):   # doctest: +SKIP
    ...     print(result["file"], result.get("label") or result["error"])
    03a01Fa.wav happiness
    """
    client = client_for(server, model_name=model_name, timeout=timeout)
    try:
        return client.predict_files(files, version=version, version_label=version_label, batch_size=batch_size)
    finally:
        client.close()
