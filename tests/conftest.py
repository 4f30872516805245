"""Shared fixtures: the real EMO-DB folder, WAV writers, the synthetic corpus."""

import io
import os
import wave

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMODB_DIR = os.environ.get("KERAS_SER_EMODB", os.path.join(ROOT, "..", "shared", "data", "emodb", "wav"))


@pytest.fixture(scope="session")
def emodb_dir():
    """The real EMO-DB WAV folder. CI sets KERAS_SER_REQUIRE_DATA=1, so a missing
    folder fails there instead of skipping."""
    if not os.path.isdir(EMODB_DIR):
        message = f"EMO-DB not found at {EMODB_DIR} (set KERAS_SER_EMODB)"
        if os.environ.get("KERAS_SER_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return EMODB_DIR


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
