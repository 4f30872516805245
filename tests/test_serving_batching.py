"""Server-side batching of `keras-ser serve-local --enable_batching` (serving/batching.py).

Over real gRPC on loopback, with the tiny exported CNN+SRU and real EMO-DB
files: requests merged into one call give what each gives alone (within
1e-5), a bad request in a batch fails alone with its own message while the
others succeed, requests that a merged call could answer differently run
alone, and the server keeps serving. The queue, the length buckets and the
timeout rule are checked on the `Batcher` itself, with a run function that
holds the batch thread until the test lets it go (no clock is asserted).
"""

import doctest
import json
import os
import re
import threading

import grpc
import numpy as np
import pytest

import exported_model
from conftest import tone
from conftest import wav_bytes

RPC_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def exported(emodb_dir):
    return exported_model.exported()


@pytest.fixture(scope="module")
def plain(exported):
    """The shared server without batching: each request alone (the reference)."""
    return exported_model.dev_server()


@pytest.fixture(scope="module")
def batched(exported):
    """A server with batching: any lengths merged (no buckets), up to 200 ms to fill a batch under load."""
    from serving.batching import BatchingParameters
    from serving.server import DevServer

    params = BatchingParameters(max_execution_batch_size=16, batch_timeout_micros=200_000, length_bucket_ratio=0)
    server = DevServer.for_model(exported_model.MODEL_NAME, exported.base_path, batching=params, port=0,
                                 rest_api_port=0, poll_seconds=0).start()
    yield server
    server.stop(0)


def _stub(server):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(server.grpc_address, options=[("grpc.max_send_message_length", -1)])
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _request(signature_name, inputs):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = exported_model.MODEL_NAME
    request.model_spec.signature_name = signature_name
    for alias, value in inputs.items():
        dtype = tf.string if isinstance(value, list) else None
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(value, dtype=dtype))
    return request


def _wav_request(contents):
    return _request("serve_wav", {"audio_bytes": list(contents)})


def _waveform_request(waveform, num_samples):
    return _request("serving_default", {"waveform": np.asarray(waveform, np.float32)[None],
                                        "num_samples": np.array([num_samples], np.int32)})


def _call(stub, request):
    """(outputs as numpy, None) or (None, RpcError)."""
    import tensorflow as tf

    try:
        response = stub.Predict(request, RPC_TIMEOUT)
    except grpc.RpcError as error:
        return None, error
    return {alias: tf.make_ndarray(proto) for alias, proto in response.outputs.items()}, None


def _concurrently(server, requests):
    """Sends every request at once, each from its own thread and channel; answers in request order."""
    stubs = [_stub(server) for _ in requests]
    answers = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def send(index):
        barrier.wait()
        answers[index] = _call(stubs[index], requests[index])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def _stats(server, signature="serve_wav"):
    return server.batching_stats()[(exported_model.MODEL_NAME, 1, signature)]


def _good_requests(emodb_dir):
    """Six EMO-DB files one per request, two in one request, and a 44.1 kHz stereo WAV (resampled in the graph)."""
    contents = [open(path, "rb").read() for path in exported_model.emodb_paths(emodb_dir)]
    stereo = wav_bytes(np.stack([tone(2.0, rate=44100), tone(2.0, rate=44100, frequency=220.0)], 1), rate=44100,
                       channels=2)
    return [_wav_request([c]) for c in contents] + [_wav_request(contents[:2]), _wav_request([stereo])]


def test_merged_requests_equal_each_request_alone(plain, batched, emodb_dir):
    requests = _good_requests(emodb_dir)
    alone = [_call(_stub(plain), request) for request in requests]
    assert all(error is None for _, error in alone), [str(e) for _, e in alone if e]
    before = _stats(batched)["largest"] if batched.batching_stats() else 0
    for _ in range(2):  # the first round puts the batcher under load; requests merge in both
        merged = _concurrently(batched, requests)
        for (expected, _), (outputs, error) in zip(alone, merged):
            assert error is None, error
            np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], rtol=0, atol=1e-5)
            assert list(outputs["class_name"]) == list(expected["class_name"])
            assert outputs["classes"].shape == expected["classes"].shape
    stats = _stats(batched)
    assert max(stats["largest"], before) >= 2, stats  # some batch really merged requests
    assert stats["retried"] == 0


def test_waveforms_of_different_widths_are_padded_and_masked(plain, batched, emodb_dir):
    """serving_default: rows of 1.0, 1.7 and 2.5 s merged (zero-padded to the widest) equal each alone."""
    import tf_pipeline

    audio = tf_pipeline.load_audio(exported_model.emodb_paths(emodb_dir)[5])
    requests = [_waveform_request(audio[:n], n) for n in (16000, 27000, 40000)]
    # A row padded by its client: num_samples shorter than the row.
    padded = np.concatenate([audio[:20000], np.zeros(5000, np.float32)])
    requests.append(_waveform_request(padded, 20000))
    alone = [_call(_stub(plain), request)[0] for request in requests]
    for expected, (outputs, error) in zip(alone * 2, _concurrently(batched, requests * 2)):
        assert error is None, error
        np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], rtol=0, atol=1e-5)


def test_a_bad_request_fails_alone_and_the_server_keeps_serving(plain, batched, emodb_dir):
    good = _good_requests(emodb_dir)[:6]
    whole = wav_bytes(tone(1.0))
    truncated = whole[:1000]  # a readable header that declares 32000 bytes of data: merged, then rerun alone
    too_short = wav_bytes(tone(0.005))  # 80 samples: the graph refuses it
    bad = [(_wav_request([truncated]), r"audio_bytes\[0\] is a truncated WAV file"),
           (_wav_request([too_short]), r"too short"),
           (_wav_request([b"RIFF....WAVE no chunks"]), r"audio_bytes\[0\]"),  # unreadable: runs alone from the start
           (_wav_request([]), r"audio_bytes has 0 rows")]
    requests = good[:3] + [request for request, _ in bad] + good[3:]
    retried_before = _stats(batched)["retried"] if batched.batching_stats() else 0
    expected = [_call(_stub(plain), request)[0] for request in good]
    # Whether the truncated file meets others in one batch depends on timing (on a loaded machine the requests
    # may arrive one by one): up to three concurrent rounds, every answer checked in each.
    for _ in range(3):
        answers = _concurrently(batched, requests)
        good_answers = answers[:3] + answers[3 + len(bad):]
        for reference, (outputs, error) in zip(expected, good_answers):
            assert error is None, error
            np.testing.assert_allclose(outputs["probabilities"], reference["probabilities"], rtol=0, atol=1e-5)
        for (_, pattern), (outputs, error) in zip(bad, answers[3:3 + len(bad)]):
            assert outputs is None
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert re.search(pattern, error.details()), error.details()
        if _stats(batched)["retried"] > retried_before:
            break
    assert _stats(batched)["retried"] > retried_before  # a merged batch failed and ran again one by one
    # Still serving, and the same answer as before.
    outputs, error = _call(_stub(batched), good[0])
    assert error is None
    np.testing.assert_allclose(outputs["probabilities"], expected[0]["probabilities"], rtol=0, atol=1e-5)


def test_a_length_outside_its_own_row_fails_as_it_does_alone(plain, batched):
    """num_samples past its own row would look valid once padded to a wider row: such a request runs alone."""
    wide = _waveform_request(tone(3.0), 48000)
    wrong = _waveform_request(tone(1.0), 20000)
    answers = _concurrently(batched, [wide, wrong, wide, wrong])
    for outputs, error in answers[0::2]:
        assert error is None
    for outputs, error in answers[1::2]:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "num_samples[0] = 20000 exceeds the 16000 samples of its waveform row" in error.details()
    _, alone = _call(_stub(plain), wrong)
    assert alone.details() == answers[1][1].details()


def test_rest_requests_are_batched_too(batched, emodb_dir):
    import base64
    import urllib.request

    content = open(exported_model.emodb_paths(emodb_dir)[0], "rb").read()
    body = json.dumps({"signature_name": "serve_wav",
                       "instances": [{"b64": base64.b64encode(content).decode()}]}).encode()
    before = _stats(batched)["requests"] if batched.batching_stats() else 0
    request = urllib.request.Request(f"{batched.rest_url}/v1/models/ser:predict", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=RPC_TIMEOUT) as response:
        prediction = json.loads(response.read())["predictions"][0]
    assert len(prediction["probabilities"]) == len(exported_model.CLASS_NAMES)
    assert _stats(batched)["requests"] == before + 1


# --- the Batcher on its own ------------------------------------------------------------------


class _Gate:
    """A run function that records each call's rows and widths and, while closed, holds the batch thread.

    The tests below run one batch thread, so the queue fills while the gate holds it.
    """

    def __init__(self):
        self.open = threading.Event()
        self.calls = []
        self.started = threading.Event()

    def __call__(self, feed):
        x = feed["x"].numpy()
        self.calls.append((x.shape[0], x.shape[1]))
        self.started.set()
        self.open.wait(30)
        if (x == -1).any():
            from serving.errors import invalid

            raise invalid("x holds -1")
        return {"y": x.sum(axis=1)}


def _submit_in_order(batcher, feeds, results):
    """Submits each feed from its own thread, the next once the previous is queued (a known queue order)."""
    threads = []
    for index, feed in enumerate(feeds):
        def submit(index=index, feed=feed):
            try:
                results[index] = batcher.submit(feed)
            except Exception as error:  # noqa: BLE001 - kept for the assertions
                results[index] = error

        threads.append(threading.Thread(target=submit))
        threads[-1].start()
        _wait_pending(batcher, index + 1)
    return threads


def _wait_pending(batcher, count):
    for _ in range(3000):
        with batcher._cond:
            if len(batcher._pending) >= count:
                return
        threading.Event().wait(0.01)
    raise AssertionError(f"{count} requests never queued")


def test_batcher_groups_by_length_and_caps_rows():
    import tensorflow as tf

    from serving.batching import Batcher
    from serving.batching import BatchingParameters

    gate = _Gate()
    batcher = Batcher(gate, BatchingParameters(max_execution_batch_size=3, batch_timeout_micros=0,
                                               length_bucket_ratio=1.5, num_batch_threads=1))
    results = {}
    first = threading.Thread(target=lambda: results.setdefault("first", batcher.submit({"x": tf.ones([1, 100])})))
    first.start()
    assert gate.started.wait(30)  # the batch thread is now busy with the first request
    widths = [100, 400, 120, 110, 410, 140, 105]
    threads = _submit_in_order(batcher, [{"x": tf.fill([1, w], float(i + 1))} for i, w in enumerate(widths)], results)
    gate.open.set()
    for thread in threads + [first]:
        thread.join(30)
    batcher.stop()
    # Oldest first; each batch holds lengths within 1.5x of each other and at most 3 rows.
    assert gate.calls == [(1, 100), (3, 120), (2, 410), (2, 140)]
    for index, width in enumerate(widths):
        assert float(results[index]["y"][0]) == pytest.approx((index + 1) * width)  # its own row, not padding
    assert batcher.stats["batches"] == 4 and batcher.stats["largest"] == 3 and batcher.stats["waited"] == 0


def test_batcher_failed_batch_reruns_alone_and_full_queue_refuses():
    import tensorflow as tf

    from serving.batching import Batcher
    from serving.batching import BatchingParameters

    gate = _Gate()
    batcher = Batcher(gate, BatchingParameters(max_execution_batch_size=4, max_enqueued_batches=1,
                                               batch_timeout_micros=0, length_bucket_ratio=0, num_batch_threads=1))
    results = {}
    threading.Thread(target=lambda: results.setdefault("first", batcher.submit({"x": tf.ones([1, 8])}))).start()
    assert gate.started.wait(30)
    feeds = [{"x": tf.fill([1, 8], 2.0)}, {"x": tf.fill([1, 8], -1.0)}, {"x": tf.fill([2, 8], 3.0)}]
    threads = _submit_in_order(batcher, feeds, results)
    # 4 rows wait: the queue (1 batch of 4 rows) is full.
    from serving.errors import ServingError

    full = "The batch scheduling queue to which this task was submitted is full"
    with pytest.raises(ServingError, match=full) as info:
        batcher.submit({"x": tf.ones([1, 8])})
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    gate.open.set()
    for thread in threads:
        thread.join(30)
    batcher.stop()
    assert gate.calls == [(1, 8), (4, 8), (1, 8), (1, 8), (2, 8)]  # merged, failed, then one by one
    assert list(results[0]["y"]) == [16.0] and list(results[2]["y"]) == [24.0, 24.0]
    assert isinstance(results[1], ServingError) and "x holds -1" in results[1].message
    assert batcher.stats["retried"] == 1


def test_two_batch_threads_run_two_batches_at_once():
    import tensorflow as tf

    from serving.batching import Batcher
    from serving.batching import BatchingParameters

    gate = _Gate()
    batcher = Batcher(gate, BatchingParameters(num_batch_threads=2, batch_timeout_micros=0))
    results = {}
    threads = [threading.Thread(target=lambda k=k: results.setdefault(k, batcher.submit({"x": tf.ones([1, 4])})))
               for k in range(2)]
    threads[0].start()
    assert gate.started.wait(30)
    threads[1].start()
    for _ in range(3000):  # the second thread takes the second request while the first is still held
        if len(gate.calls) == 2:
            break
        threading.Event().wait(0.01)
    assert gate.calls == [(1, 4), (1, 4)]
    gate.open.set()
    for thread in threads:
        thread.join(30)
    batcher.stop()
    assert float(results[0]["y"][0]) == float(results[1]["y"][0]) == 4.0


def test_lone_requests_never_wait_for_the_timeout():
    """With an hour of batch timeout, requests one after the other still run: the timeout applies under load only."""
    import tensorflow as tf

    from serving.batching import Batcher
    from serving.batching import BatchingParameters

    gate = _Gate()
    gate.open.set()
    batcher = Batcher(gate, BatchingParameters(batch_timeout_micros=3_600_000_000))
    for value in range(3):
        assert float(batcher.submit({"x": tf.fill([1, 4], float(value))})["y"][0]) == 4.0 * value
    batcher.stop()
    assert batcher.stats["waited"] == 0 and batcher.stats["batches"] == 3


def test_signatures_whose_rows_depend_on_each_other_are_not_merged(tmp_path, plain):
    from tensorflow.core.protobuf import meta_graph_pb2

    from serving.servables import _batch_first
    from serving.servables import _rows_depend_on_each_other

    extra = tmp_path / "assets.extra"
    extra.mkdir()
    (extra / "keras_ser.json").write_text(json.dumps({"signatures": {
        "serve_wav": {"inputs": {}}, "serve_speaker": {"inputs": {}, "uses_speaker_audio": True}}}))
    assert _rows_depend_on_each_other(str(tmp_path)) == {"serve_speaker"}
    assert _rows_depend_on_each_other(str(tmp_path / "missing")) == set()
    # The exported signatures are batch-first; one with a scalar output is not.
    version = plain.manager.models[exported_model.MODEL_NAME].available()[1]
    assert _batch_first(version.signature_defs["serve_wav"]) and _batch_first(version.signature_defs["serving_default"])
    scalar = meta_graph_pb2.SignatureDef()
    scalar.CopyFrom(version.signature_defs["serve_wav"])
    scalar.outputs["probabilities"].tensor_shape.Clear()
    assert not _batch_first(scalar)


def test_batching_parameters_are_checked_and_read_from_a_batching_config(tmp_path):
    from conftest import ROOT
    from serving.batching import BatchingParameters

    for kwargs, message in [
        (dict(max_execution_batch_size=0), "max_execution_batch_size must be an integer >= 1. Received: "
                                           "max_execution_batch_size=0"),
        (dict(batch_timeout_micros=-1), "batch_timeout_micros must be an integer >= 0"),
        (dict(length_bucket_ratio=0.5), "length_bucket_ratio must be 0 \\(no buckets\\) or a number >= 1"),
        (dict(pad_variable_length_inputs="yes"), "pad_variable_length_inputs must be True or False"),
    ]:
        with pytest.raises(ValueError, match=message):
            BatchingParameters(**kwargs)
    params = BatchingParameters.from_file(os.path.join(ROOT, "serving", "batching.config"), num_batch_threads=1)
    assert (params.max_execution_batch_size, params.batch_timeout_micros, params.num_batch_threads,
            params.max_enqueued_batches, params.pad_variable_length_inputs) == (32, 2000, 1, 100, True)
    (tmp_path / "b.config").write_text("max_batch_size { value: 64 }\nmax_execution_batch_size { value: 8 }\n")
    assert BatchingParameters.from_file(str(tmp_path / "b.config")).max_execution_batch_size == 8


def test_serve_local_batching_flags(capsys, tmp_path, exported):
    from keras_ser_cli.main import run

    code = run(["keras-ser", "serve-local", f"--model_base_path={exported.base_path}", "--max_execution_batch_size=4"])
    assert code != 0
    assert "--max_execution_batch_size need --enable_batching" in capsys.readouterr().err
    code = run(["keras-ser", "serve-local", f"--model_base_path={exported.base_path}", "--enable_batching",
                "--length_bucket_ratio=0.5"])
    assert code != 0
    assert "length_bucket_ratio must be 0 (no buckets) or a number >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["serving.batching", "keras_ser_cli.serve_local"])
def test_docstring_examples_run(module):
    import importlib

    result = doctest.testmod(importlib.import_module(module),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
