"""TF Serving warmup records: `assets.extra/tf_serving_warmup_requests`.

TensorFlow Serving replays the `PredictionLog` records of this TFRecord file
when it loads a version, before the version is marked AVAILABLE, so the first
real request does not pay for graph initialisation. keras-ser writes records
for both signatures, at batch sizes 1 and 2 (rows of different lengths, and a
44.1 kHz stereo WAV that exercises the in-graph resampler).

Example:

>>> wavs, waveforms = synthetic_audio()
>>> requests = warmup_requests("ser", wavs, waveforms)                          # doctest: +SKIP
>>> write_warmup_file("exports/ser/1/assets.extra/tf_serving_warmup_requests", requests)  # doctest: +SKIP
"""

import io
import os
import wave

import numpy as np

from saved_models.signatures import SERVE_WAV
from saved_models.signatures import SERVING_DEFAULT
from tf_pipeline.padding import pad_waveforms

WARMUP_FILE = "tf_serving_warmup_requests"
ASSETS_EXTRA = "assets.extra"
# TF Serving reads at most this many records (saved_model_warmup_util.cc).
MAX_WARMUP_RECORDS = 1000


def pcm16_wav(samples, rate=16000):
    """16-bit PCM WAV bytes from float samples in [-1, 1] (`[n]` or `[n, channels]`)."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim == 1:
        samples = samples[:, None]
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(samples.shape[1])
        handle.setsampwidth(2)
        handle.setframerate(int(rate))
        handle.writeframes(pcm.tobytes())
    return buffer.getvalue()


def _speech_like(seconds, rate, seed):
    """A deterministic voiced signal (harmonics of a gliding pitch plus noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 140.0 + 40.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    return (0.2 * voiced * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def synthetic_audio(sample_rate=16000):
    """The default warmup audio: `(wav_bytes list, waveforms list)`.

    WAV: 1.0 s mono at 16 kHz and 1.5 s stereo at 44.1 kHz. Waveforms (at
    `sample_rate`): 1.0 s and 0.6 s.
    """
    wavs = [
        pcm16_wav(_speech_like(1.0, 16000, 0), 16000),
        pcm16_wav(np.stack([_speech_like(1.5, 44100, 1), _speech_like(1.5, 44100, 2)], axis=1), 44100),
    ]
    waveforms = [_speech_like(1.0, sample_rate, 3), _speech_like(0.6, sample_rate, 4)]
    return wavs, waveforms


def warmup_requests(model_name, wavs, waveforms, wav_signature=SERVE_WAV, waveform_signature=SERVING_DEFAULT):
    """`PredictRequest`s for both signatures, at batch sizes 1 and len(inputs).

    Args:
        model_name: str, written into each request's `model_spec.name`.
        wavs: list of WAV byte strings (`audio_bytes` of `serve_wav`).
        waveforms: list of 1-D float32 arrays at the model's rate
            (`waveform` + `num_samples` of `serving_default`).

    Returns:
        list of `tensorflow_serving.apis.predict_pb2.PredictRequest`.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    requests = []
    for batch in (wavs[:1], wavs):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = wav_signature
        request.inputs["audio_bytes"].CopyFrom(tf.make_tensor_proto(list(batch), dtype=tf.string))
        requests.append(request)
    for batch in (waveforms[:1], waveforms):
        padded, lengths = pad_waveforms(batch)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = waveform_signature
        request.inputs["waveform"].CopyFrom(tf.make_tensor_proto(padded))
        request.inputs["num_samples"].CopyFrom(tf.make_tensor_proto(lengths))
        requests.append(request)
    return requests


def write_warmup_file(path, requests):
    """Writes `PredictRequest`s as TFRecords of `PredictionLog` (TF Serving's format)."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    if len(requests) > MAX_WARMUP_RECORDS:
        raise ValueError(
            f"TF Serving replays at most {MAX_WARMUP_RECORDS} warmup records. Received: {len(requests)}"
        )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def read_warmup_file(path):
    """Reads the `PredictionLog` records of a warmup file (at most 1000, as TF Serving)."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    logs = []
    for record in tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS + 1):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    if len(logs) > MAX_WARMUP_RECORDS:
        raise ValueError(f"{path}: more than {MAX_WARMUP_RECORDS} warmup records (TF Serving's limit)")
    return logs
