"""Model versions of the development server: loading, version policy, labels, Predict.

What `tensorflow_model_server` does for a SavedModel, in Python, with the
same status codes and messages (taken from TF Serving's sources):

- a model is a base path of numeric version directories (`1`, `2`,
  `00000123`; other names, such as the exporter's hidden `.tmp-*`
  directories, are ignored); the version policy (`latest { num_versions }`,
  `specific { versions }`, `all {}`; default: the highest version) picks
  the versions to serve; the base path is polled and new versions are
  loaded while running, the new one before the old one is unloaded; a
  failed load is retried up to 5 times, 5 s apart;
- a version is loaded with `tf.saved_model.load`, then the warmup file
  `assets.extra/tf_serving_warmup_requests` is replayed through Predict;
  only then is it AVAILABLE (a failing warmup fails the load);
- a request without a `model_spec`: INVALID_ARGUMENT "Missing ModelSpec"; a
  `model_spec` without a name: INVALID_ARGUMENT "ModelSpec has no name
  specified."; unknown model or version: NOT_FOUND "Servable not found for request:
  Latest(name)" / "Specific(name, 7)"; unknown label: INVALID_ARGUMENT
  "Unrecognized servable version label: x"; unknown signature:
  FAILED_PRECONDITION 'Serving signature key "x" not found.'; inputs that do
  not match the signature, and errors raised by the graph (bad audio):
  INVALID_ARGUMENT with the message of the check that failed.

Batching: without `batching` each request runs alone; with a
`serving.batching.BatchingParameters`, concurrent requests for the same
signature of a version are merged into one call (length buckets, a batch
timeout, a bad request failing alone: `serving/batching.py`). A request
larger than `max_batch_size` is refused either way, as the real batcher
refuses it.

Differences from the real server: no model platforms other than
SavedModel, no resource accounting.
"""

import json
import logging
import os
import re
import threading
import time

import grpc
import numpy as np

from saved_models.signatures import SERVING_DEFAULT
from serving.errors import ServingError
from serving.errors import invalid
from serving.errors import not_found

log = logging.getLogger("serving.servables")

DEFAULT_MAX_BATCH_SIZE = 64
# A version that failed to load is tried again this many times, this many seconds apart.
MAX_LOAD_RETRIES = 5
LOAD_RETRY_SECONDS = 5.0
WARMUP_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")

# ModelVersionStatus.State (get_model_status.proto).
START, LOADING, AVAILABLE, UNLOADING, END = 10, 20, 30, 40, 50

_CODES = {code.value[0]: code for code in grpc.StatusCode}


def tf_error_message(error):
    """The useful lines of a TensorFlow op error: no 'Graph execution error', node names or [Op:...]."""
    text = getattr(error, "message", None) or str(error)
    kept = []
    for line in text.splitlines():
        stripped = line.strip()
        if (not stripped or stripped.startswith(("Graph execution error", "Detected at node", "<stack traces",
                                                 "[[", "File \"")) or stripped == "defined at (most recent call last):"):
            continue
        kept.append(re.sub(r"\s*\[Op:[^\]]*\]\s*$", "", stripped))
    return " ".join(kept) or text.strip()


def _dtype_name(dtype):
    return dtype.name if dtype is not None else "?"


def _shape_text(dims):
    return "[" + ",".join("?" if d is None or d < 0 else str(d) for d in dims) + "]"


class Version:
    """One loaded SavedModel version: its signatures and how to run them."""

    def __init__(self, name, version, path, max_batch_size=DEFAULT_MAX_BATCH_SIZE, batching=None):
        self.name = name
        self.version = version
        self.path = path
        self.max_batch_size = max_batch_size
        self.batching = batching  # serving.batching.BatchingParameters, or None: each request alone
        self.batchers = {}  # signature name -> serving.batching.Batcher
        self._batchers_lock = threading.Lock()
        self._unbatched = set()  # signatures whose rows depend on each other (export metadata)
        self.state = START
        self.error = None  # (grpc.StatusCode, message) of a failed load
        self.warmup_records = 0
        self.attempts = 0
        self.failed_at = None
        self.loaded = None
        self.signature_defs = {}

    # --- loading ---------------------------------------------------------

    def load(self):
        """Loads the SavedModel and replays its warmup file; sets AVAILABLE or END with the error."""
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2

        self.state = LOADING
        try:
            saved_model = saved_model_pb2.SavedModel()
            with open(os.path.join(self.path, "saved_model.pb"), "rb") as handle:
                saved_model.ParseFromString(handle.read())
            self.signature_defs = dict(saved_model.meta_graphs[0].signature_def)
            self._unbatched = _rows_depend_on_each_other(self.path)
            self.loaded = tf.saved_model.load(self.path)
            self.warmup_records = self._warmup()
        except ServingError as error:
            self._fail(error.code, f"Failed to warm up model {self.name} version {self.version}: {error.message}")
        except Exception as error:  # noqa: BLE001 - any load failure is reported in the status
            self._fail(grpc.StatusCode.UNKNOWN, f"Failed to load {self.path}: {tf_error_message(error)}")
        else:
            self.state = AVAILABLE
            log.info("Successfully loaded servable version {name: %s version: %d} (%d warmup records)",
                     self.name, self.version, self.warmup_records)

    def _fail(self, code, message):
        self.failed_at = time.monotonic()
        self.loaded = None
        self.error = (code, message)
        self.state = END
        log.error("%s", message)

    def _warmup(self):
        from saved_models.warmup import read_warmup_file

        path = os.path.join(self.path, WARMUP_PATH)
        if not os.path.exists(path):
            return 0
        logs = read_warmup_file(path)
        for record in logs:
            if record.WhichOneof("log_type") != "predict_log":
                raise invalid(f"Unsupported log_type for warmup: {record.WhichOneof('log_type')}")
            self.predict(record.predict_log.request)
        return len(logs)

    def unload(self):
        self.state = UNLOADING
        self.loaded = None
        with self._batchers_lock:
            batchers, self.batchers = list(self.batchers.values()), {}
        for batcher in batchers:
            batcher.stop()
        self.state = END

    # --- serving ---------------------------------------------------------

    def signature(self, name, rest=False):
        """The SignatureDef `name` ('' means serving_default), or the real server's error."""
        name = name or SERVING_DEFAULT
        signature = self.signature_defs.get(name)
        if signature is None or name.startswith("__"):
            if rest:
                raise invalid(f'Serving signature name: "{name}" not found in signature def')
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.')
        return name, signature

    def run(self, signature_name, inputs, output_filter=(), rest=False):
        """Checks `inputs` against the signature and runs it.

        Args:
            signature_name: str ('' for serving_default).
            inputs: dict alias -> (numpy array, tf.DType of the request).
            output_filter: aliases to return (all when empty).

        Returns:
            `(signature_name, dict alias -> numpy array)`.
        """
        import tensorflow as tf

        signature_name, signature = self.signature(signature_name, rest=rest)
        expected = sorted(signature.inputs)
        received = sorted(inputs)
        if len(received) > len(expected) or (len(received) < len(expected) and not signature.defaults):
            extra = sorted(set(received) - set(expected))
            missing = sorted(set(expected) - set(received))
            raise invalid(
                f"input size does not match signature: {len(received)}!={len(expected)} "
                f"len({{{','.join(received)}}}) != len({{{','.join(expected)}}}). "
                f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}."
            )
        feed = {}
        for index, alias in enumerate(expected):
            if alias not in inputs:
                raise invalid(f"input tensor alias not found in signature: {[a for a in received if a not in expected][0]}"
                              f". Inputs expected to be in the set {{{','.join(expected)}}}.")
            array, dtype = inputs[alias]
            info = signature.inputs[alias]
            want = tf.dtypes.as_dtype(info.dtype)
            if dtype != want:
                raise invalid(f"Expects arg[{index}] to be {_dtype_name(want)} but {_dtype_name(dtype)} is provided "
                              f"(input '{alias}')")
            if not info.tensor_shape.unknown_rank:
                dims = [d.size for d in info.tensor_shape.dim]
                shape = list(array.shape)
                if len(shape) != len(dims) or any(d >= 0 and d != s for d, s in zip(dims, shape)):
                    raise invalid(f"input '{alias}' must have shape {_shape_text(dims)} ({len(dims)}-D, batch first); "
                                  f"received shape {_shape_text(shape)}")
            if array.ndim >= 1 and array.shape[0] > self.max_batch_size:
                raise invalid(f"Task size {array.shape[0]} is larger than maximum input batch size "
                              f"{self.max_batch_size} (input '{alias}'); split the request")
            feed[alias] = tf.constant(array, dtype=want)
        outputs = list(output_filter) or sorted(signature.outputs)
        seen = set()
        for alias in outputs:
            if alias not in signature.outputs:
                raise invalid(f"output tensor alias not found in signature: {alias} Outputs expected to be in the "
                              f"set {{{','.join(sorted(signature.outputs))}}}.")
            if alias in seen:
                raise invalid(f"duplicate output tensor alias: {alias}")
            seen.add(alias)
        loaded = self.loaded
        if loaded is None:
            raise not_found(f"Servable not found for request: Specific({self.name}, {self.version})")
        function = loaded.signatures[signature_name]
        batcher = self._batcher(signature_name, signature, function)
        if batcher is not None:
            result = batcher.submit(feed)
        else:
            result = _call_signature(function, signature_name, feed)
        return signature_name, {alias: result[alias] for alias in outputs}

    def _batcher(self, signature_name, signature, function):
        """The `Batcher` of a signature, or None when batching is off or the signature cannot be merged."""
        if self.batching is None or signature_name in self._unbatched or not _batch_first(signature):
            return None
        with self._batchers_lock:
            batcher = self.batchers.get(signature_name)
            if batcher is None:
                from serving.batching import Batcher

                def run(feed):
                    return _call_signature(function, signature_name, feed)

                batcher = Batcher(run, self.batching, name=f"{self.name}-{self.version}-{signature_name}")
                self.batchers[signature_name] = batcher
            return batcher

    def predict(self, request):
        """Runs a `PredictRequest`; returns a `PredictResponse` (outputs as proto fields, as the real server)."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        inputs = {}
        for alias, proto in request.inputs.items():
            try:
                array = tf.make_ndarray(proto)
            except Exception:  # noqa: BLE001 - any malformed TensorProto
                raise invalid(f"tensor parsing error: {alias}") from None
            inputs[alias] = (array, tf.dtypes.as_dtype(proto.dtype) if proto.dtype else None)
        signature_name, outputs = self.run(request.model_spec.signature_name, inputs, request.output_filter)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name or self.name
        response.model_spec.version.value = self.version
        response.model_spec.signature_name = signature_name
        for alias, value in outputs.items():
            as_proto_field(value, response.outputs[alias])
        return response

    def metadata(self, model_spec):
        """A `GetModelMetadataResponse` with the `signature_def` map of saved_model.pb."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.name
        response.model_spec.version.value = self.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in self.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature)
        response.metadata["signature_def"].Pack(signature_map)
        return response


def _call_signature(function, signature_name, feed):
    """Runs a loaded signature; returns every output as numpy, or raises the `ServingError` of its failure."""
    import tensorflow as tf

    try:
        result = function(**feed)
    except tf.errors.OpError as error:
        raise ServingError(_CODES.get(error.error_code, grpc.StatusCode.UNKNOWN), tf_error_message(error)) from None
    except UnicodeDecodeError:  # TF could not decode its own error text (raw bytes quoted from the input)
        raise invalid(f"signature {signature_name} rejected the input with a message that is not UTF-8 text "
                      "(it quotes raw input bytes: malformed input)") from None
    except (TypeError, ValueError) as error:
        raise invalid(str(error).splitlines()[0]) from None
    return {alias: value.numpy() for alias, value in result.items()}


def _batch_first(signature):
    """Whether every input and output of a SignatureDef has a known rank and a variable first (batch) axis."""
    for info in list(signature.inputs.values()) + list(signature.outputs.values()):
        shape = info.tensor_shape
        if shape.unknown_rank or not shape.dim or shape.dim[0].size != -1:
            return False
    return True


def _rows_depend_on_each_other(path):
    """Signatures the export marks as using the whole batch together (`uses_speaker_audio`: `serve_speaker`)."""
    from saved_models.export import METADATA_FILE

    metadata_path = os.path.join(path, "assets.extra", METADATA_FILE)
    try:
        with open(metadata_path, encoding="utf-8") as handle:
            signatures = json.load(handle).get("signatures", {})
    except (OSError, ValueError, AttributeError):
        return set()
    return {name for name, info in signatures.items() if isinstance(info, dict) and info.get("uses_speaker_audio")}


def as_proto_field(array, proto):
    """Fills a TensorProto with the typed repeated fields (`float_val`, ...), as TF Serving's AsProtoField."""
    import tensorflow as tf

    array = np.asarray(array)
    if array.dtype.kind in "OSU":
        dtype = tf.string
    else:
        dtype = tf.dtypes.as_dtype(array.dtype)
    proto.dtype = dtype.as_datatype_enum
    proto.tensor_shape.Clear()
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
    flat = array.ravel()
    if dtype == tf.string:
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode("utf-8") for v in flat)
    elif dtype == tf.float32:
        proto.float_val.extend(flat.tolist())
    elif dtype == tf.float64:
        proto.double_val.extend(flat.tolist())
    elif dtype == tf.int64:
        proto.int64_val.extend(flat.tolist())
    elif dtype in (tf.int32, tf.int16, tf.int8, tf.uint8, tf.uint16):
        proto.int_val.extend(flat.tolist())
    elif dtype == tf.bool:
        proto.bool_val.extend(flat.tolist())
    else:
        proto.CopyFrom(tf.make_tensor_proto(array))


class Model:
    """A served model: base path, version policy, labels, versions seen so far."""

    def __init__(self, name, base_path, policy=None, labels=None, max_batch_size=DEFAULT_MAX_BATCH_SIZE,
                 batching=None):
        self.name = name
        self.base_path = base_path
        self.policy = policy or ("latest", 1)
        self.labels = dict(labels or {})
        self.max_batch_size = max_batch_size
        self.batching = batching
        self.versions = {}  # version -> Version (every version ever loaded, END ones included)
        self.lock = threading.Lock()

    @classmethod
    def from_config(cls, config, max_batch_size=DEFAULT_MAX_BATCH_SIZE, batching=None):
        """From a `ModelConfig` proto (one entry of models.config)."""
        policy_kind = config.model_version_policy.WhichOneof("policy_choice")
        if policy_kind == "specific":
            policy = ("specific", tuple(config.model_version_policy.specific.versions))
        elif policy_kind == "all":
            policy = ("all", None)
        else:
            policy = ("latest", config.model_version_policy.latest.num_versions or 1)
        if config.model_platform not in ("", "tensorflow"):
            raise ValueError(f"Model {config.name}: only model_platform 'tensorflow' is served. "
                             f"Received: {config.model_platform!r}")
        return cls(config.name, config.base_path, policy, dict(config.version_labels), max_batch_size, batching)

    def on_disk(self):
        """Numeric version directories under the base path."""
        try:
            entries = os.listdir(self.base_path)
        except OSError:
            return []
        return sorted(int(e) for e in entries
                      if e.isdigit() and os.path.isdir(os.path.join(self.base_path, e)))

    def aspired(self):
        available = self.on_disk()
        kind, value = self.policy
        if kind == "all":
            return available
        if kind == "specific":
            return [v for v in available if v in value]
        return available[-value:]

    def available(self):
        with self.lock:
            return {v: s for v, s in self.versions.items() if s.state == AVAILABLE}

    def poll(self):
        """Loads aspired versions that are not loaded yet, then unloads the rest."""
        aspired = self.aspired()
        for number in sorted(aspired, reverse=True):
            with self.lock:
                known = self.versions.get(number)
            if known is not None and known.state in (LOADING, AVAILABLE):
                continue
            attempts = 0
            if known is not None and known.error:
                # As TF Serving (--max_num_load_retries=5): retry a failed load a few times, spaced out.
                if known.attempts > MAX_LOAD_RETRIES or time.monotonic() - known.failed_at < LOAD_RETRY_SECONDS:
                    continue
                attempts = known.attempts
            version = Version(self.name, number, os.path.join(self.base_path, _dir_name(self.base_path, number)),
                              self.max_batch_size, self.batching)
            version.attempts = attempts + 1
            with self.lock:
                self.versions[number] = version
            version.load()
        for number, version in list(self.available().items()):
            if number not in aspired:
                version.unload()
                log.info("Unloaded servable version {name: %s version: %d}", self.name, number)

    def resolve(self, model_spec):
        """The `Version` a `ModelSpec` asks for, or the real server's error."""
        if model_spec.HasField("version") and model_spec.version_label:
            raise invalid(f"Both model version ({model_spec.version.value}) and model version label "
                          f"({model_spec.version_label}) cannot be supplied.")
        available = self.available()
        if model_spec.version_label:
            label = model_spec.version_label
            if label not in self.labels:
                raise invalid(f"Unrecognized servable version label: {label}")
            number = self.labels[label]
        elif model_spec.HasField("version"):
            number = model_spec.version.value
        else:
            if not available:
                raise not_found(f"Servable not found for request: Latest({self.name})")
            return available[max(available)]
        if number not in available:
            raise not_found(f"Servable not found for request: Specific({self.name}, {number})")
        return available[number]


def _dir_name(base_path, number):
    for entry in os.listdir(base_path):
        if entry.isdigit() and int(entry) == number:
            return entry
    return str(number)


class ModelManager:
    """The models of a server and the thread that polls their base paths.

    Args:
        models: list of `Model`.
        poll_seconds: float. Base-path polling period (TF Serving's
            `--file_system_poll_wait_seconds`, default 1). 0 disables polling.
    """

    def __init__(self, models, poll_seconds=1.0):
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ValueError(f"Model names must be unique. Received: {names}")
        self.models = {m.name: m for m in models}
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()

    def start(self):
        """Loads every model's aspired versions (blocking), then starts polling."""
        self.poll_once()
        if self.poll_seconds and self.poll_seconds > 0:
            self._thread = threading.Thread(target=self._loop, name="model-poller", daemon=True)
            self._thread.start()

    def poll_once(self):
        with self._lock:
            for model in list(self.models.values()):
                model.poll()

    def _loop(self):
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - keep polling whatever one poll hit
                log.exception("polling the model base paths failed")

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def reload(self, models):
        """Replaces the model list (HandleReloadConfigRequest); keeps loaded versions of models that stay."""
        with self._lock:
            new = {}
            for model in models:
                old = self.models.get(model.name)
                if old is not None and old.base_path == model.base_path:
                    old.policy, old.labels, old.max_batch_size = model.policy, model.labels, model.max_batch_size
                    old.batching = model.batching  # for versions loaded from now on
                    new[model.name] = old
                else:
                    new[model.name] = model
            for name, old in self.models.items():
                if name not in new:
                    for version in old.available().values():
                        version.unload()
            self.models = new
            for model in new.values():
                model.poll()

    def model(self, name, for_status=False):
        model = self.models.get(name)
        if model is None:
            if for_status:
                raise not_found(f"Could not find any versions of model {name}")
            raise not_found(f"Servable not found for request: Latest({name})")
        return model

    def resolve(self, model_spec):
        if not model_spec.name:  # as TF Serving's ServerCore::ServableRequestFromModelSpec
            raise invalid("ModelSpec has no name specified.")
        return self.model(model_spec.name).resolve(model_spec)

    def status(self, model_spec):
        """A `GetModelStatusResponse` (every version seen, END ones included)."""
        from tensorflow_serving.apis import get_model_status_pb2

        if not model_spec.name:
            raise invalid("Missing ModelSpec")
        model = self.models.get(model_spec.name)
        with (model.lock if model else threading.Lock()):
            versions = dict(model.versions) if model else {}
        if model_spec.version_label:
            if model is None or model_spec.version_label not in model.labels:
                raise invalid(f"Unrecognized servable version label: {model_spec.version_label}")
            wanted = [model.labels[model_spec.version_label]]
        elif model_spec.HasField("version"):
            wanted = [model_spec.version.value]
        else:
            wanted = sorted(versions)
            if not wanted:
                raise not_found(f"Could not find any versions of model {model_spec.name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for number in wanted:
            version = versions.get(number)
            if version is None:
                raise not_found(f"Could not find version {number} of model {model_spec.name}")
            status = response.model_version_status.add()
            status.version = number
            status.state = version.state
            status.status.error_code = version.error[0].value[0] if version.error else 0
            status.status.error_message = version.error[1] if version.error else ""
        return response

    def wait_until_available(self, name, version=None, timeout=60.0):
        """Blocks until `name` (or that version) is AVAILABLE; returns the `Version`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.models.get(name)
            if model is not None:
                available = model.available()
                if version is None and available:
                    return available[max(available)]
                if version in available:
                    return available[version]
            time.sleep(0.05)
        raise TimeoutError(f"model {name} version {version} not AVAILABLE after {timeout} s")
