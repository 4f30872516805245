"""Fuzzing `audio_bytes` through the development server: it never dies, and every
answer is OK or INVALID_ARGUMENT (never UNKNOWN, INTERNAL or a dropped connection)."""

import struct

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import exported_model
from conftest import tone
from conftest import wav_bytes

GOOD = wav_bytes(tone(0.2))  # 3200 samples: 18 frames, a valid utterance for 2 segments


def _header(channels, rate, bits, data_size, fmt=1, fmt_size=16, riff_size=None):
    block_align = (channels * bits // 8) & 0xFFFF
    byte_rate = (rate * block_align) & 0xFFFFFFFF
    fmt_chunk = struct.pack("<4sIHHIIHH", b"fmt ", fmt_size, fmt, channels, rate, byte_rate, block_align, bits)
    body = b"WAVE" + fmt_chunk + struct.pack("<4sI", b"data", data_size)
    riff_size = (len(body) + data_size) if riff_size is None else riff_size
    return b"RIFF" + struct.pack("<I", riff_size & 0xFFFFFFFF) + body


u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)

headers = st.builds(
    lambda channels, rate, bits, data_size, fmt, payload, cut: (_header(channels, rate, bits, data_size, fmt) + payload)[:cut],
    channels=st.one_of(st.sampled_from([0, 1, 2, 6]), u16),
    rate=st.one_of(st.sampled_from([0, 1, 3999, 8000, 16000, 44100, 192000, 192001]), u32),
    bits=st.one_of(st.sampled_from([0, 8, 16, 24, 32]), u16),
    data_size=st.one_of(st.integers(0, 8000), u32),
    fmt=st.sampled_from([1, 3, 0xFFFE, 0]),
    payload=st.binary(max_size=6000),
    cut=st.integers(0, 7000),
)


@st.composite
def mutated(draw):
    data = bytearray(GOOD)
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.one_of(st.integers(0, 60), st.integers(0, len(data) - 1)))
        data[position] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))]) if draw(st.booleans()) else bytes(data)


audio = st.one_of(st.binary(max_size=3000), headers, mutated(),
                  st.builds(lambda seconds: wav_bytes(np.zeros(int(seconds * 16000))), st.floats(0, 0.1)))


@pytest.fixture(scope="module")
def stub(emodb_dir):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    server = exported_model.dev_server()
    channel = grpc.insecure_channel(server.grpc_address)
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


def _request(contents):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "ser"
    request.model_spec.signature_name = "serve_wav"
    request.inputs["audio_bytes"].CopyFrom(tf.make_tensor_proto(list(contents), dtype=tf.string))
    return request


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(contents=audio, with_good=st.booleans())
def test_audio_bytes_fuzz(stub, contents, with_good):
    batch = [GOOD, contents] if with_good else [contents]
    try:
        response = stub.Predict(_request(batch), 30.0)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
        assert error.details(), "an error must say what was wrong"
    else:
        assert len(response.outputs["class_name"].string_val) == len(batch)


def test_server_alive_after_fuzz(stub):
    response = stub.Predict(_request([GOOD]), 30.0)
    assert len(response.outputs["probabilities"].float_val) == 4
