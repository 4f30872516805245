"""TensorFlow Lite export (`saved_models.tflite`, `keras-ser export --format=tflite`).

The speech-encoder model (`encoder_stats`, pretrained GE2E encoder, the best
zoo entry) and the tiny CNN+SRU of tests/exported_model.py are exported as
SavedModels and as .tflite files; the TFLite interpreter, resized to each of
three real EMO-DB utterances of different lengths, must give the SavedModel's
`serving_default` probabilities within 1e-4, with TFLite built-in ops only.
"""

import contextlib
import functools
import io
import json
import os
import re
import warnings

import numpy as np
import pytest

from conftest import EMODB_DIR
from exported_model import exported

EMOTIONS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]
# Three speakers, 1.9 s, 3.8 s and 4.5 s.
FILES = ["03a01Fa.wav", "10b03Tb.wav", "08b03Lc.wav"]
TOLERANCE = 1e-4


def _interpreter(path):
    import tensorflow as tf

    with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice (LiteRT)
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_path=path)


@functools.cache
def _encoder_export(root):
    """encoder_stats saved as .keras, exported as a SavedModel (Python API) and as .tflite (the CLI)."""
    import keras

    import keras_ser
    import saved_models
    from keras_ser_cli.main import run

    keras.utils.set_random_seed(3)
    model = keras_ser.build_model("encoder_stats", class_names=EMOTIONS, compile=False)
    keras_path = os.path.join(root, "encoder_stats.keras")
    model.save(keras_path)
    export_root = os.path.join(root, "exports")
    version_dir = saved_models.export(model, export_root, "ser")
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        status = run(["keras-ser", "export", f"--model={keras_path}", f"--export_root={export_root}",
                      "--name=ser", "--format=tflite"])
    assert status == 0, output.getvalue()
    return model, keras_path, version_dir, os.path.join(export_root, "ser.tflite"), output.getvalue()


@pytest.fixture(scope="module")
def encoder(tmp_path_factory, emodb_dir):
    return _encoder_export(str(tmp_path_factory.mktemp("tflite")))


def _waveforms(emodb_dir, config):
    import tf_pipeline

    return [tf_pipeline.load_audio(os.path.join(emodb_dir, name), config) for name in FILES]


@functools.cache
def _loaded(version_dir):
    """The SavedModel of `version_dir`, loaded once per test process."""
    import tensorflow as tf

    return tf.saved_model.load(version_dir)


def _saved_model_probabilities(version_dir, waveform):
    import tensorflow as tf

    outputs = _loaded(version_dir).signatures["serving_default"](
        waveform=tf.constant(waveform[None]), num_samples=tf.constant([waveform.shape[0]], tf.int32))
    return outputs["probabilities"].numpy()[0]


def _tflite_probabilities(interpreter, waveform):
    """The plain interpreter API: resize to this utterance, allocate, set, invoke."""
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, [1, waveform.shape[0]])
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, waveform[None].astype(np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]


def _check_parity(version_dir, tflite_path, waveforms):
    interpreter = _interpreter(tflite_path)
    assert [d["name"] for d in interpreter.get_input_details()] == ["serving_default_waveform:0"]
    assert list(interpreter.get_input_details()[0]["shape_signature"]) == [1, -1]
    lengths = set()
    for waveform in waveforms:
        expected = _saved_model_probabilities(version_dir, waveform)
        actual = _tflite_probabilities(interpreter, waveform)
        assert actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE)
        assert np.argmax(actual) == np.argmax(expected)
        lengths.add(waveform.shape[0])
    assert len(lengths) == len(waveforms)  # really different lengths (a resize for each)


def test_encoder_tflite_matches_saved_model_serving_default(encoder, emodb_dir):
    model, _, version_dir, tflite_path, _ = encoder
    waveforms = _waveforms(emodb_dir, model.feature_config)
    _check_parity(version_dir, tflite_path, waveforms)
    # The probabilities differ from file to file (a constant output would pass any parity check).
    interpreter = _interpreter(tflite_path)
    rows = np.stack([_tflite_probabilities(interpreter, w) for w in waveforms])
    assert np.abs(rows[0] - rows[1]).max() > 1e-3


def test_encoder_tflite_ops_are_builtin(encoder, capsys):
    import tensorflow as tf

    import saved_models
    from saved_models import tflite

    _, _, _, tflite_path, _ = encoder
    ops = saved_models.tflite_ops(tflite_path)
    assert ops["select"] == list(tflite.SELECT_OPS) == []
    assert ops["custom"] == []
    # The spectrum is a DFT matrix product (TFLite's RFFT2D takes power-of-two lengths, the window is 400);
    # the LSTMs are loops of 32 steps, not the fused op, which keeps state between invocations.
    assert "RFFT2D" not in ops["builtin"]
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in ops["builtin"]
    assert {"WHILE", "FULLY_CONNECTED", "GATHER", "SOFTMAX"} <= set(ops["builtin"])
    assert tflite._variable_tensors(open(tflite_path, "rb").read()) == []
    # TFLite's own analyzer sees the same ops, and no Flex (select TF) op.
    capsys.readouterr()
    tf.lite.experimental.Analyzer.analyze(model_path=tflite_path)
    report = capsys.readouterr().out
    assert "Flex" not in report
    assert set(re.findall(r"Op#\d+ ([A-Z0-9_]+)\(", report)) == set(ops["builtin"])


def test_encoder_tflite_long_input_and_repeated_invokes(encoder, emodb_dir):
    """11 s (the three files end to end: 1100 frames, not a multiple of the 32-step chunks), and the
    same input invoked again without a resize gives the same output (no state kept between calls)."""
    model, _, version_dir, tflite_path, _ = encoder
    waveform = np.concatenate(_waveforms(emodb_dir, model.feature_config))
    expected = _saved_model_probabilities(version_dir, waveform)
    interpreter = _interpreter(tflite_path)
    first = _tflite_probabilities(interpreter, waveform)
    np.testing.assert_allclose(first, expected, rtol=0, atol=TOLERANCE)
    interpreter.invoke()
    np.testing.assert_array_equal(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0], first)


@pytest.mark.parametrize("steps", [1, 31, 32, 33, 70])
def test_chunked_lstm_equals_keras_lstm(steps):
    import keras
    import tensorflow as tf

    from saved_models import tflite

    keras.utils.set_random_seed(steps)
    layer = keras.layers.LSTM(8, return_sequences=True, return_state=True, bias_initializer="uniform")
    x = np.random.default_rng(steps).normal(size=(1, steps, 5)).astype(np.float32)
    expected = [np.asarray(y) for y in layer(x)]
    actual = [y.numpy() for y in tf.function(tflite._chunked_lstm(layer))(tf.constant(x))]
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=0, atol=1e-6)


def test_tflite_cli_output_and_metadata(encoder):
    from saved_models import tflite

    model, keras_path, _, tflite_path, output = encoder
    assert f"to {tflite_path}" in output
    assert "select TF ops: none" in output
    metadata = tflite.read_tflite_metadata(tflite_path)
    assert metadata["class_names"] == EMOTIONS
    assert metadata["sample_rate"] == 16000
    assert metadata["min_samples"] == 400
    assert metadata["max_samples"] == 30 * 16000
    assert metadata["size_bytes"] == os.path.getsize(tflite_path)
    assert metadata["ops"]["select"] == []
    # Nothing temporary is left beside the files.
    assert not [name for name in os.listdir(os.path.dirname(tflite_path)) if name.startswith(".tmp")]


def test_tflite_cli_refuses_to_overwrite_and_saved_model_flags(encoder):
    from keras_ser_cli.main import run

    _, keras_path, _, tflite_path, _ = encoder
    root = os.path.dirname(tflite_path)
    before = os.path.getmtime(tflite_path)
    for extra in ([], ["--version=2"], [f"--warmup_files={os.path.join(EMODB_DIR, FILES[0])}"]):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            status = run(["keras-ser", "export", f"--model={keras_path}", f"--export_root={root}", "--name=ser",
                          "--format=tflite", *extra])
        assert status == 2, (extra, err.getvalue())
    assert os.path.getmtime(tflite_path) == before


@pytest.mark.parametrize("case", ["short", "nan", "inf", "silence", "two_rows", "too_long"])
def test_tflite_bad_input_fails_invoke(encoder, case):
    """TFLite has no assertion op: bad input fails `invoke()` through an out-of-bounds GATHER."""
    from saved_models import tflite

    _, _, _, tflite_path, _ = encoder
    rng = np.random.default_rng(0)
    speech = rng.uniform(-0.1, 0.1, 2000).astype(np.float32)
    waveform = {
        "short": speech[:399],
        "nan": np.concatenate([speech, [np.nan]]),
        "inf": np.concatenate([speech, [np.inf]]),
        "silence": np.zeros(2000),
        "two_rows": np.stack([speech, speech]),
        "too_long": rng.uniform(-0.1, 0.1, 30 * 16000 + 1),
    }[case].astype(np.float32)
    interpreter = _interpreter(tflite_path)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, [1, waveform.shape[-1]] if waveform.ndim == 1 else list(waveform.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, waveform.reshape(interpreter.get_input_details()[0]["shape"]))
    with pytest.raises(RuntimeError, match="GATHER"):
        interpreter.invoke()
    # run_tflite with the metadata says why, before invoking.
    if waveform.ndim == 1:
        with pytest.raises(ValueError, match="too short|too long|NaN or Inf|silent"):
            tflite.run_tflite(interpreter, waveform, tflite.read_tflite_metadata(tflite_path))


def test_tflite_shortest_accepted_input(encoder):
    from saved_models import tflite

    _, _, version_dir, tflite_path, _ = encoder
    waveform = np.random.default_rng(1).uniform(-0.1, 0.1, 400).astype(np.float32)
    interpreter = _interpreter(tflite_path)
    actual = tflite.run_tflite(interpreter, waveform, tflite.read_tflite_metadata(tflite_path))
    np.testing.assert_allclose(actual, _saved_model_probabilities(version_dir, waveform), rtol=0, atol=TOLERANCE)


def test_tiny_cnn_sru_tflite_matches_saved_model(emodb_dir, tmp_path):
    """The log-Mel layout: the preprocessor's own graph (512-point FFT, a TFLite built-in)."""
    import saved_models

    exp = exported()
    path = saved_models.export_tflite(exp.model, str(tmp_path), "ser")
    assert path == os.path.join(str(tmp_path), "ser.tflite")
    ops = saved_models.tflite_ops(path)
    assert ops["select"] == [] and ops["custom"] == []
    _check_parity(exp.version_dir, path, _waveforms(emodb_dir, exp.model.feature_config))
    with pytest.raises(FileExistsError):
        saved_models.export_tflite(exp.model, str(tmp_path), "ser")
    metadata = saved_models.read_tflite_metadata(path)
    assert metadata["min_samples"] == 512 + 160  # two segments need two frames
    assert json.loads(json.dumps(metadata))["class_names"] == exp.model.class_names
