"""The development server over real gRPC (loopback) and HTTP, and the clients.

The status / metadata / predict tests mirror the assertions of TF Serving's
own server tests (tensorflow_serving/model_servers/tensorflow_model_server_test.py:
testGetModelStatus, testGetStatusREST, testGetModelMetadataREST,
VerifyPredictRequest with and without output_filter, testPredictREST and
testPredictColumnarREST); the error cases check the status codes and
messages of TF Serving's sources.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest

import exported_model
from conftest import ROOT
from conftest import tone
from conftest import wav_bytes

RPC_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def exported(emodb_dir):
    return exported_model.exported()


@pytest.fixture(scope="module")
def server(exported):
    return exported_model.dev_server()


@pytest.fixture(scope="module")
def stubs(server):
    from tensorflow_serving.apis import model_service_pb2_grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(server.grpc_address, options=[("grpc.max_send_message_length", -1)])
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel), model_service_pb2_grpc.ModelServiceStub(channel)
    channel.close()


def _rest(url, payload=None):
    """(HTTP status, JSON body) of a REST call."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=RPC_TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _predict_request(signature_name, inputs, model_name="ser", version=None, label=None, output_filter=()):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(value if not isinstance(value, (np.ndarray, list)) else tf.make_tensor_proto(
            value, dtype=tf.string if isinstance(value, list) else None))
    request.output_filter.extend(output_filter)
    return request


def _wav_request(contents, **kwargs):
    return _predict_request("serve_wav", {"audio_bytes": list(contents)}, **kwargs)


def _good_wav():
    return wav_bytes(tone(1.0))


def _verify_model_spec(spec, name, signature_name, version):
    """TF Serving's _VerifyModelSpec."""
    assert spec.name == name
    assert spec.signature_name == signature_name
    assert spec.version.value == version


# --- status and metadata (TF Serving: testGetModelStatus, testGetStatusREST, metadata tests) ---


def test_get_model_status(stubs):
    from tensorflow_serving.apis import get_model_status_pb2

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "ser"
    result = stubs[1].GetModelStatus(request, RPC_TIMEOUT)
    assert len(result.model_version_status) == 1
    assert result.model_version_status[0].version == 1
    assert result.model_version_status[0].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    # OK error code (0) indicates no error occurred
    assert result.model_version_status[0].status.error_code == 0


def test_get_status_rest(server):
    assert _rest(f"{server.rest_url}/v1/models/ser") == (200, {
        "model_version_status": [{"version": "1", "state": "AVAILABLE",
                                  "status": {"error_code": "OK", "error_message": ""}}]})
    assert _rest(f"{server.rest_url}/v1/models/ser/versions/1")[0] == 200


def test_get_model_metadata(stubs, exported):
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "ser"
    result = stubs[0].GetModelMetadata(request, RPC_TIMEOUT)
    assert result.model_spec.name == "ser" and result.model_spec.version.value == 1
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert result.metadata["signature_def"].Unpack(signature_map)
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(open(os.path.join(exported.version_dir, "saved_model.pb"), "rb").read())
    assert dict(signature_map.signature_def) == dict(saved_model.meta_graphs[0].signature_def)
    assert signature_map.signature_def["serve_wav"].inputs["audio_bytes"].dtype == 7  # DT_STRING

    request.ClearField("metadata_field")
    with pytest.raises(grpc.RpcError) as error:
        stubs[0].GetModelMetadata(request, RPC_TIMEOUT)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == "GetModelMetadataRequest must specify at least one metadata_field"


def test_get_model_metadata_rest(server, exported):
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(open(os.path.join(exported.version_dir, "saved_model.pb"), "rb").read())
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, value in saved_model.meta_graphs[0].signature_def.items():
        signature_map.signature_def[key].CopyFrom(value)
    expected = {
        "model_spec": {"name": "ser", "signature_name": "", "version": "1"},
        "metadata": {"signature_def": json_format.MessageToDict(
            signature_map, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)},
    }
    assert _rest(f"{server.rest_url}/v1/models/ser/metadata") == (200, expected)


# --- predict (TF Serving: VerifyPredictRequest, testPredictREST, testPredictColumnarREST) -------


@pytest.mark.parametrize("specify_output", [True, False])
def test_predict(stubs, exported, specify_output):
    import tensorflow as tf

    waveform = tone(1.0)
    request = _predict_request("serving_default", {"waveform": waveform[None], "num_samples": np.array([16000], np.int32)},
                               output_filter=["probabilities"] if specify_output else ())
    result = stubs[0].Predict(request, RPC_TIMEOUT)
    assert ("class_id" in result.outputs) is not specify_output
    assert result.outputs["probabilities"].dtype == tf.float32.as_datatype_enum
    assert len(result.outputs["probabilities"].float_val) == 4  # as proto fields, as the real server
    expected = exported.loaded.signatures["serving_default"](
        waveform=tf.constant(waveform[None]), num_samples=tf.constant([16000]))["probabilities"].numpy()
    np.testing.assert_array_equal(tf.make_ndarray(result.outputs["probabilities"]), expected)
    _verify_model_spec(result.model_spec, "ser", "serving_default", 1)

    request.model_spec.signature_name = ""  # the default signature
    _verify_model_spec(stubs[0].Predict(request, RPC_TIMEOUT).model_spec, "ser", "serving_default", 1)


def test_predict_emodb_parity_over_grpc(server, exported, emodb_dir):
    """Real EMO-DB files through gRPC == model.predict on tf_pipeline features, within 1e-5."""
    from serving.client import GrpcClient

    import tf_pipeline

    paths = exported_model.emodb_paths(emodb_dir)
    expected = exported_model.reference_probabilities(exported.model, paths)
    with GrpcClient("127.0.0.1", server.grpc_port, model_name="ser") as client:
        for batch_size in (1, 6):
            results = client.predict_files(paths, batch_size=batch_size)
            assert [r["file"] for r in results] == paths
            got = np.array([list(r["probabilities"].values()) for r in results])
            np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
            assert [list(r["probabilities"]) for r in results] == [exported_model.CLASS_NAMES] * len(paths)
            assert [r["label"] for r in results] == [exported_model.CLASS_NAMES[i] for i in expected.argmax(1)]
            assert {r["model_version"] for r in results} == {1}
        waveforms = client.predict_waveforms([tf_pipeline.load_audio(p) for p in paths])
        np.testing.assert_allclose([list(r["probabilities"].values()) for r in waveforms], expected, atol=1e-5, rtol=0)


def test_predict_rest_row_and_columnar(server, exported):
    import tensorflow as tf

    contents = [_good_wav(), wav_bytes(tone(0.7, frequency=300.0))]
    expected = exported.loaded.signatures["serve_wav"](audio_bytes=tf.constant(contents))
    b64 = [{"b64": base64.b64encode(c).decode()} for c in contents]
    url = f"{server.rest_url}/v1/models/ser:predict"

    status, body = _rest(url, {"signature_name": "serve_wav", "instances": b64})
    assert status == 200
    assert [row["class_name"] for row in body["predictions"]] == [c.decode() for c in expected["class_name"].numpy()]
    np.testing.assert_allclose([row["probabilities"] for row in body["predictions"]],
                               expected["probabilities"].numpy(), atol=1e-7, rtol=0)
    assert body["predictions"][0]["classes"] == exported_model.CLASS_NAMES

    status, body = _rest(url, {"signature_name": "serve_wav", "inputs": {"audio_bytes": b64}})
    assert status == 200 and sorted(body["outputs"]) == ["class_id", "class_name", "classes", "probabilities"]
    np.testing.assert_allclose(body["outputs"]["probabilities"], expected["probabilities"].numpy(), atol=1e-7, rtol=0)

    waveform = tone(0.5)
    status, body = _rest(f"{server.rest_url}/v1/models/ser/versions/1:predict",
                         {"instances": [{"waveform": waveform.tolist(), "num_samples": 8000}]})
    assert status == 200 and body["predictions"][0]["class_id"] in range(4)


def test_clients_and_predict_with_server(server, emodb_dir, tmp_path):
    from serving.client import GrpcClient
    from serving.client import RestClient
    from serving.client import predict_with_server

    path = exported_model.emodb_paths(emodb_dir)[0]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not a wav")
    for address in (f"127.0.0.1:{server.grpc_port}", f"grpc://127.0.0.1:{server.grpc_port}", server.rest_url):
        results = predict_with_server(address, [path, str(bad), str(tmp_path / "missing.wav")], model_name="ser",
                                      batch_size=2)
        assert results[0]["file"] == path and results[0]["label"] in exported_model.CLASS_NAMES
        assert abs(sum(results[0]["probabilities"].values()) - 1) < 1e-5
        assert results[1] == {"file": str(bad), "error": results[1]["error"]}
        assert results[1]["error"].startswith("INVALID_ARGUMENT: ") and "not a WAV file" in results[1]["error"]
        assert results[2]["error"].startswith("NOT_FOUND: cannot read")
    grpc_client, rest_client = GrpcClient("127.0.0.1", server.grpc_port), RestClient(server.rest_url)
    assert grpc_client.status() == rest_client.status()
    assert grpc_client.metadata() == rest_client.metadata()
    grpc_client.close()
    with pytest.raises(ValueError, match="server must be"):
        predict_with_server("nonsense", [path])


# --- errors ----------------------------------------------------------------------------


def test_not_found_and_failed_precondition(stubs, server):
    from tensorflow_serving.apis import get_model_status_pb2

    def code_and_details(call, request):
        with pytest.raises(grpc.RpcError) as error:
            call(request, RPC_TIMEOUT)
        return error.value.code(), error.value.details()

    good = [_good_wav()]
    assert code_and_details(stubs[0].Predict, _wav_request(good, model_name="nope")) == (
        grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)")
    assert code_and_details(stubs[0].Predict, _wav_request(good, version=7)) == (
        grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(ser, 7)")
    assert code_and_details(stubs[0].Predict, _wav_request(good, label="canary")) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: canary")
    request = _wav_request(good)
    request.model_spec.signature_name = "nope"
    assert code_and_details(stubs[0].Predict, request) == (
        grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found.')
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "nope"
    assert code_and_details(stubs[1].GetModelStatus, status) == (
        grpc.StatusCode.NOT_FOUND, "Could not find any versions of model nope")
    status.model_spec.name = "ser"
    status.model_spec.version.value = 7
    assert code_and_details(stubs[1].GetModelStatus, status) == (
        grpc.StatusCode.NOT_FOUND, "Could not find version 7 of model ser")

    assert _rest(f"{server.rest_url}/v1/models/nope") == (404, {"error": "Could not find any versions of model nope"})
    assert _rest(f"{server.rest_url}/v1/models/ser/versions/7:predict", {"instances": []}) == (
        404, {"error": "Servable not found for request: Specific(ser, 7)"})
    assert _rest(f"{server.rest_url}/v1/models/ser:predict", {"signature_name": "nope", "instances": []}) == (
        400, {"error": 'Serving signature name: "nope" not found in signature def'})
    assert _rest(f"{server.rest_url}/v1/models/ser:regress", {"instances": []})[0] == 501
    assert _rest(f"{server.rest_url}/v1/nonsense")[0] == 400


def _truncated():
    return _good_wav()[:1000]


def _short_for_segments():
    return wav_bytes(tone(0.033))  # 528 samples: 1 frame, the model needs 2 segments


BAD_INPUTS = {
    # name: (signature, inputs, message pattern)
    "empty bytes": ("serve_wav", {"audio_bytes": [b""]}, r"audio_bytes\[0\] is empty \(0 bytes\)"),
    "non-WAV bytes": ("serve_wav", {"audio_bytes": [b"ID3\x03 an mp3 perhaps"]}, r"is not a WAV file"),
    "truncated WAV": ("serve_wav", {"audio_bytes": [_truncated()]},
                      r"truncated WAV file: its header declares 32000 bytes of audio data but only 956 follow"),
    "24-bit WAV": ("serve_wav", {"audio_bytes": [wav_bytes(tone(1.0), sampwidth=3)]},
                   r"Can only read 16-bit WAV files, but received 24"),
    "zero-length audio": ("serve_wav", {"audio_bytes": [wav_bytes(np.zeros(0))]},
                          r"too short: at least 512 samples .* Received samples:.*\[0\]"),
    "too short for the segments": ("serve_wav", {"audio_bytes": [_short_for_segments()]},
                                   r"needs at least n_segments=2 frames"),
    "second row bad": ("serve_wav", {"audio_bytes": [wav_bytes(tone(1.0)), b""]}, r"audio_bytes\[1\] is empty"),
    "NaN samples": ("serving_default", {"waveform": np.full((1, 16000), np.nan, np.float32),
                                        "num_samples": np.array([16000], np.int32)}, r"NaN or Inf samples"),
    "wrong dtype": ("serving_default", {"waveform": np.zeros((1, 16000), np.float64),
                                        "num_samples": np.array([16000], np.int32)},
                    r"Expects arg\[1\] to be float32 but float64 is provided \(input 'waveform'\)"),
    "wrong shape": ("serving_default", {"waveform": np.zeros(16000, np.float32),
                                        "num_samples": np.array([16000], np.int32)},
                    r"input 'waveform' must have shape \[\?,\?\] \(2-D, batch first\); received shape \[16000\]"),
    "lengths disagree": ("serving_default", {"waveform": np.zeros((1, 16000), np.float32),
                                             "num_samples": np.array([20000], np.int32)},
                         r"num_samples\[0\] = 20000 exceeds the 16000 samples"),
    "missing input": ("serving_default", {"waveform": np.zeros((1, 16000), np.float32)},
                      r"input size does not match signature: 1!=2 .* Missing but required: \{num_samples\}"),
    "batch of 1000": ("serve_wav", {"audio_bytes": [b"RIFF"] * 1000},
                      r"Task size 1000 is larger than maximum input batch size 64"),
    "empty batch of WAV files": ("serve_wav", {"audio_bytes": []},
                                 r"audio_bytes has 0 rows; expected at least one WAV file"),
    "empty batch of waveforms": ("serving_default", {"waveform": np.zeros((0, 16000), np.float32),
                                                     "num_samples": np.zeros(0, np.int32)},
                                 r"waveform has 0 rows; expected a batch of at least one waveform"),
    "empty batch of 0-sample waveforms": ("serving_default", {"waveform": np.zeros((0, 0), np.float32),
                                                              "num_samples": np.zeros(0, np.int32)},
                                          r"waveform has 0 rows"),
}


def _rest_payload(signature, inputs):
    columns = {}
    for alias, value in inputs.items():
        if alias == "audio_bytes":
            columns[alias] = [{"b64": base64.b64encode(v).decode()} for v in value]
        else:
            columns[alias] = value.tolist()
    return {"signature_name": signature, "inputs": columns}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_grpc(stubs, case):
    """Each bad input: INVALID_ARGUMENT with a message that says what was wrong; the next request works."""
    signature, inputs, pattern = BAD_INPUTS[case]
    with pytest.raises(grpc.RpcError) as error:
        stubs[0].Predict(_predict_request(signature, inputs), RPC_TIMEOUT)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    assert re.search(pattern, error.value.details()), error.value.details()
    result = stubs[0].Predict(_wav_request([_good_wav()]), RPC_TIMEOUT)
    assert len(result.outputs["class_name"].string_val) == 1


REST_BAD_INPUTS = {
    "empty bytes": ("serve_wav", {"audio_bytes": [b""]}, r"is empty \(0 bytes\)"),
    "non-WAV bytes": ("serve_wav", {"audio_bytes": [b"not audio"]}, r"is not a WAV file"),
    "truncated WAV": ("serve_wav", {"audio_bytes": [_truncated()]}, r"truncated WAV file"),
    "24-bit WAV": ("serve_wav", {"audio_bytes": [wav_bytes(tone(1.0), sampwidth=3)]}, r"16-bit"),
    "zero-length audio": ("serve_wav", {"audio_bytes": [wav_bytes(np.zeros(0))]}, r"too short"),
    "too short for the segments": ("serve_wav", {"audio_bytes": [_short_for_segments()]}, r"n_segments=2 frames"),
    "wrong shape": ("serving_default", {"waveform": np.zeros(400, np.float32), "num_samples": np.array([400], np.int32)},
                    r"input 'waveform' must have shape \[\?,\?\]"),
    "batch of 1000": ("serve_wav", {"audio_bytes": [b"RIFF"] * 1000}, r"Task size 1000 is larger"),
    "empty batch": ("serve_wav", {"audio_bytes": []}, r"audio_bytes has 0 rows; expected at least one WAV file"),
}


@pytest.mark.parametrize("case", sorted(REST_BAD_INPUTS))
def test_bad_input_rest(server, case):
    signature, inputs, pattern = REST_BAD_INPUTS[case]
    status, body = _rest(f"{server.rest_url}/v1/models/ser:predict", _rest_payload(signature, inputs))
    assert status == 400 and re.search(pattern, body["error"]), body
    good = {"signature_name": "serve_wav", "instances": [{"b64": base64.b64encode(_good_wav()).decode()}]}
    assert _rest(f"{server.rest_url}/v1/models/ser:predict", good)[0] == 200


def test_empty_instances_rest(server):
    """An empty `instances` list: 400 with TF Serving's words and the signature's empty-batch message."""
    url = f"{server.rest_url}/v1/models/ser:predict"
    for payload, pattern in (
        ({"signature_name": "serve_wav", "instances": []}, r"audio_bytes has 0 rows; expected at least one WAV file"),
        ({"instances": []}, r"waveform has 0 rows; expected a batch of at least one waveform"),
    ):
        status, body = _rest(url, payload)
        assert status == 400, body
        assert body["error"].startswith("No values in 'instances' array: ") and re.search(pattern, body["error"]), body
        good = {"signature_name": "serve_wav", "instances": [{"b64": base64.b64encode(_good_wav()).decode()}]}
        assert _rest(url, good)[0] == 200


def test_missing_model_spec(stubs):
    """No model_spec: INVALID_ARGUMENT "Missing ModelSpec"; a nameless one: "ModelSpec has no name specified."
    (TF Serving's predict_impl.cc, get_model_metadata_impl.cc, get_model_status_impl.cc, server_core.cc)."""
    from tensorflow_serving.apis import get_model_metadata_pb2
    from tensorflow_serving.apis import get_model_status_pb2
    from tensorflow_serving.apis import predict_pb2

    def code_and_details(call, request):
        with pytest.raises(grpc.RpcError) as error:
            call(request, RPC_TIMEOUT)
        return error.value.code(), error.value.details()

    missing = (grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    request = predict_pb2.PredictRequest()
    request.inputs["audio_bytes"].CopyFrom(_wav_request([_good_wav()]).inputs["audio_bytes"])
    assert not request.HasField("model_spec")
    assert code_and_details(stubs[0].Predict, request) == missing
    request.model_spec.signature_name = "serve_wav"  # a model_spec, but no model name
    assert code_and_details(stubs[0].Predict, request) == (
        grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    assert code_and_details(stubs[0].GetModelMetadata, metadata) == missing
    metadata.model_spec.signature_name = "serve_wav"
    assert code_and_details(stubs[0].GetModelMetadata, metadata) == (
        grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
    status = get_model_status_pb2.GetModelStatusRequest()
    assert code_and_details(stubs[1].GetModelStatus, status) == missing
    status.model_spec.SetInParent()
    assert code_and_details(stubs[1].GetModelStatus, status) == missing

    request.model_spec.name = "ser"  # the server keeps serving
    assert len(stubs[0].Predict(request, RPC_TIMEOUT).outputs["class_name"].string_val) == 1


def test_bad_json_rest(server):
    url = f"{server.rest_url}/v1/models/ser:predict"
    cases = [
        ({"instances": [{"waveform": "loud", "num_samples": 1}]}, r"not of expected type: float32"),
        ({"inputs": {"waveform": [[0.0, 0.1]], "num_samples": [1.5]}}, r"not of expected type: int32"),
        ({"instances": [{"waveform": [0.0] * 600, "num_samples": 600}, {"waveform": [0.0] * 500, "num_samples": 500}]},
         r"same shape"),
        ({"signature_name": 3, "instances": []}, r"'signature_name' key must be a string value."),
        ({"signature_name": "serve_wav", "instances": [{"b64": "%%%"}]}, r"base64"),
        ({}, r"Missing 'inputs' or 'instances' key"),
    ]
    for payload, pattern in cases:
        status, body = _rest(url, payload)
        assert status == 400 and re.search(pattern, body["error"]), (payload, body)
    request = urllib.request.Request(url, data=b"{not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=RPC_TIMEOUT)
    assert error.value.code == 400 and "JSON Parse error" in json.loads(error.value.read())["error"]


# --- versions, labels, warmup ---------------------------------------------------------------


def _copy_version(base_path, source, target):
    """Copies a version the way `keras-ser export` publishes one: hidden directory, then rename."""
    tmp = os.path.join(base_path, f".tmp-{target}")
    shutil.copytree(os.path.join(base_path, str(source)), tmp)
    os.rename(tmp, os.path.join(base_path, str(target)))


def _wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_new_version_is_picked_up_while_running(exported, tmp_path, monkeypatch):
    from serving import servables
    from serving.client import GrpcClient
    from serving.client import ServingRequestError
    from serving.server import DevServer

    monkeypatch.setattr(servables, "LOAD_RETRY_SECONDS", 0.3)

    base_path = str(tmp_path / "ser")
    shutil.copytree(exported.base_path, base_path)
    with DevServer.for_model("ser", base_path, port=0, rest_api_port=None, poll_seconds=0.2) as server:
        client = GrpcClient("127.0.0.1", server.grpc_port)
        version = server.manager.models["ser"].versions[1]
        assert version.warmup_records == 4, "the warmup file is replayed at load"
        assert client.predict_files([__file__])[0]["error"].startswith("INVALID_ARGUMENT")
        _copy_version(base_path, 1, 2)
        _wait_for(lambda: [s["state"] for s in client.status()["model_version_status"]] == ["END", "AVAILABLE"])
        assert [s["version"] for s in client.status()["model_version_status"]] == ["1", "2"]
        assert client.predict_waveforms([tone(1.0)])[0]["model_version"] == 2

        # A version copied in place non-atomically fails to load at first, and is retried.
        def state_of_3():
            try:
                return client.status(version=3)["model_version_status"][0]
            except ServingRequestError:  # NOT_FOUND until the poller has seen it
                return {"state": None}

        os.makedirs(os.path.join(base_path, "3"))
        _wait_for(lambda: state_of_3()["state"] == "END")
        assert "Failed to load" in state_of_3()["status"]["error_message"]
        shutil.copytree(os.path.join(base_path, "2"), os.path.join(base_path, "3"), dirs_exist_ok=True)
        _wait_for(lambda: state_of_3()["state"] == "AVAILABLE")
        assert client.predict_waveforms([tone(1.0)])[0]["model_version"] == 3
        client.close()


def test_labels_and_config_reload(exported, tmp_path):
    from tensorflow_serving.apis import model_management_pb2
    from tensorflow_serving.apis import model_service_pb2_grpc

    from serving.client import GrpcClient
    from serving.client import RestClient
    from serving.config import ModelEntry
    from serving.config import model_server_config
    from serving.config import write_models_config
    from serving.server import DevServer

    base_path = str(tmp_path / "ser")
    shutil.copytree(exported.base_path, base_path)
    _copy_version(base_path, 1, 2)
    _copy_version(base_path, 1, 3)
    config_path = write_models_config(str(tmp_path / "models.config"),
                                      [ModelEntry("ser", base_path, stable=1, canary=2)], header="test")
    with DevServer.from_config_file(config_path, port=0, rest_api_port=0, poll_seconds=0) as server:
        grpc_client = GrpcClient("127.0.0.1", server.grpc_port)
        rest = RestClient(server.rest_url)
        assert sorted(server.manager.models["ser"].available()) == [1, 2], "specific policy: the labelled versions"
        for label, version in (("stable", 1), ("canary", 2)):
            assert grpc_client.predict_waveforms([tone(1.0)], version_label=label)[0]["model_version"] == version
            assert rest.status(version_label=label)["model_version_status"][0]["version"] == str(version)
            assert rest.predict_files([exported_model.emodb_paths()[0]], version_label=label)[0]["label"]
        status, body = _rest(f"{server.rest_url}/v1/models/ser/labels/nope:predict", {"instances": []})
        assert status == 400 and body == {"error": "Unrecognized servable version label: nope"}

        # Promote: stable -> 2, canary -> 3, by HandleReloadConfigRequest (what a config poll does).
        request = model_management_pb2.ReloadConfigRequest(
            config=model_server_config([ModelEntry("ser", base_path, stable=2, canary=3)]))
        channel = grpc.insecure_channel(server.grpc_address)
        reply = model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(request, RPC_TIMEOUT)
        assert reply.status.error_code == 0, reply.status.error_message
        assert grpc_client.predict_waveforms([tone(1.0)], version_label="stable")[0]["model_version"] == 2
        assert grpc_client.predict_waveforms([tone(1.0)], version_label="canary")[0]["model_version"] == 3
        channel.close()
        grpc_client.close()


def test_failing_warmup_fails_the_load(exported, tmp_path):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from serving.client import GrpcClient
    from serving.server import DevServer

    base_path = str(tmp_path / "ser")
    shutil.copytree(exported.base_path, base_path)
    log = prediction_log_pb2.PredictionLog()
    log.predict_log.request.CopyFrom(_wav_request([b"junk"]))
    with tf.io.TFRecordWriter(os.path.join(base_path, "1", "assets.extra", "tf_serving_warmup_requests")) as writer:
        writer.write(log.SerializeToString())
    with DevServer.for_model("ser", base_path, port=0, rest_api_port=None, poll_seconds=0) as server:
        client = GrpcClient("127.0.0.1", server.grpc_port)
        status = client.status()["model_version_status"][0]
        assert status["state"] == "END" and status["status"]["error_code"] == "INVALID_ARGUMENT"
        assert "Failed to warm up model ser version 1" in status["status"]["error_message"]
        assert "not a WAV file" in status["status"]["error_message"]
        with pytest.raises(Exception, match="Servable not found for request: Latest\\(ser\\)"):
            client.predict_waveforms([tone(1.0)])
        client.close()


# --- the keras-ser serve-local command ------------------------------------------------------


def test_serve_local_command(exported):
    """`keras-ser serve-local --port=0` prints the ports it chose, serves, and stops on SIGTERM."""
    from serving.client import GrpcClient

    command = [sys.executable, "-c", "import sys; from keras_ser_cli.main import run; sys.exit(run())",
               "serve-local", f"--model_base_path={exported.base_path}", "--model_name=ser", "--port=0",
               "--rest_api_port=0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("keras-ser serve-local is a development server"):
                break
        text = "".join(lines)
        grpc_port = int(re.search(r"Running gRPC ModelServer at 127\.0\.0\.1:(\d+) \.\.\.", text).group(1))
        rest_port = int(re.search(r"Exporting HTTP/REST API at:127\.0\.0\.1:(\d+) \.\.\.", text).group(1))
        assert "Model ser: base path" in text and "serving versions [1]" in text
        with GrpcClient("127.0.0.1", grpc_port) as client:
            assert client.status()["model_version_status"][0]["state"] == "AVAILABLE"
        assert _rest(f"http://127.0.0.1:{rest_port}/v1/models/ser")[0] == 200
        process.terminate()
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()


# --- configs -----------------------------------------------------------------------------------


def test_configs_generated_and_checked_in(tmp_path):
    """The checked-in configs are what the generator writes, and parse with TF Serving's own proto."""
    from serving.config import ModelEntry
    from serving.config import batching_config_text
    from serving.config import main
    from serving.config import models_config_text
    from serving.config import read_batching_config
    from serving.config import read_models_config

    def body(path):
        return "".join(line for line in open(path) if not line.startswith("#"))

    assert main(["--stable", "1", "--canary", "2", "--out_dir", str(tmp_path)]) == 0
    for name in ("models.config", "batching.config"):
        assert body(os.path.join(ROOT, "serving", name)) == body(tmp_path / name), f"regenerate serving/{name}"
    config = read_models_config(os.path.join(ROOT, "serving", "models.config"))
    model = config.model_config_list.config[0]
    assert (model.name, model.base_path, model.model_platform) == ("ser", "/models/ser", "tensorflow")
    assert dict(model.version_labels) == {"stable": 1, "canary": 2}
    assert list(model.model_version_policy.specific.versions) == [1, 2]
    batching = read_batching_config(os.path.join(ROOT, "serving", "batching.config"))
    assert batching["max_batch_size"] == 32 and batching["allowed_batch_sizes"][-1] == 32
    assert batching["pad_variable_length_inputs"] is True

    assert "latest {\n        num_versions: 1" in models_config_text([ModelEntry("ser", "/m")])
    with pytest.raises(ValueError, match="canary needs a stable"):
        ModelEntry("ser", "/m", canary=2)
    with pytest.raises(ValueError, match="allowed_batch_sizes must increase and end at max_batch_size=8"):
        batching_config_text(max_batch_size=8, allowed_batch_sizes=[1, 4])
    (tmp_path / "bad.config").write_text("model_config_list { config { nme: 'x' } }")
    with pytest.raises(ValueError, match="Error parsing text-format tensorflow.serving.ModelServerConfig"):
        read_models_config(str(tmp_path / "bad.config"))

    compose = open(os.path.join(ROOT, "serving", "docker-compose.gpu.yml")).read()
    assert "image: tensorflow/serving:${TF_SERVING_VERSION:-2.21.0}-gpu" in compose
    for flag in ("--model_config_file=/config/models.config", "--enable_batching=true",
                 "--batching_parameters_file=/config/batching.config"):
        assert flag in compose
    assert "NOT exercised by the tests" in compose
