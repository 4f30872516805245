"""Shared fixtures: the real EMO-DB, RAVDESS and EMOVO folders, WAV writers, the synthetic corpus."""

import io
import os
import wave

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMODB_DIR = os.environ.get("KERAS_SER_EMODB", os.path.join(ROOT, "..", "shared", "data", "emodb", "wav"))
RAVDESS_DIR = os.environ.get("KERAS_SER_RAVDESS", os.path.join(ROOT, "..", "shared", "data", "ravdess"))
EMOVO_DIR = os.environ.get("KERAS_SER_EMOVO", os.path.join(ROOT, "..", "shared", "data", "emovo"))


def _corpus_dir(path, name, variable):
    """`path` when it is a folder; else a skip, or a failure when KERAS_SER_REQUIRE_DATA=1 (CI)."""
    if not os.path.isdir(path):
        message = f"{name} not found at {path} (set {variable})"
        if os.environ.get("KERAS_SER_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def emodb_dir():
    """The real EMO-DB WAV folder. CI sets KERAS_SER_REQUIRE_DATA=1, so a missing
    folder fails there instead of skipping."""
    return _corpus_dir(EMODB_DIR, "EMO-DB", "KERAS_SER_EMODB")


@pytest.fixture(scope="session")
def ravdess_dir():
    """The real RAVDESS speech folder (Actor_01 .. Actor_24), like `emodb_dir`."""
    return _corpus_dir(RAVDESS_DIR, "RAVDESS", "KERAS_SER_RAVDESS")


@pytest.fixture(scope="session")
def emovo_dir():
    """The real EMOVO folder (f1 .. m3), like `emodb_dir`."""
    return _corpus_dir(EMOVO_DIR, "EMOVO", "KERAS_SER_EMOVO")


def wav_bytes(samples, rate=16000, channels=1, sampwidth=2):
    """PCM WAV bytes from float samples in [-1, 1] ([n] or [n, channels])."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim == 1:
        samples = samples[:, None]
    assert samples.shape[1] == channels
    if sampwidth == 1:
        pcm = np.clip(np.round(samples * 127 + 128), 0, 255).astype(np.uint8)
    elif sampwidth == 2:
        pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    elif sampwidth == 3:
        ints = np.clip(np.round(samples * 8388607), -8388608, 8388607).astype("<i4")
        pcm = ints.view(np.uint8).reshape(-1, 4)[:, :3]
    else:
        raise ValueError(sampwidth)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(sampwidth)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())
    return buffer.getvalue()


def tone(seconds=1.0, rate=16000, frequency=440.0, amplitude=0.3, seed=0):
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (amplitude * np.sin(2 * np.pi * frequency * t) + 0.01 * noise).astype(np.float32)


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory):
    """A small synthetic corpus: 3 speakers x 3 emotions x 4 utterances."""
    from tf_pipeline import corpora

    return corpora.synthetic(str(tmp_path_factory.mktemp("synthetic")), n_speakers=3, per_class=4, emotions="WTN")


def compiled_call(fn):
    """`fn(inputs, training=False)` in one `tf.function`, its shapes relaxed after the first trace.

    For a Keras model (or its `features_model()`) called on one utterance at a
    time: the eager call runs a speech encoder's LSTM step by step, seconds per
    utterance on 2 cores, while the traced call is the same computation on
    the same single input.
    """
    import tensorflow as tf

    return tf.function(lambda inputs: fn(inputs, training=False), reduce_retracing=True)
