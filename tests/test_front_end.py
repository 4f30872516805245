"""The speech front end (`tf_pipeline.front_end`, `FrontEndConfig`): silence trimming and level normalisation.

- The cut points equal `librosa.effects.trim` on real files of EMO-DB,
  RAVDESS and EMOVO.
- The same real file with a second of silence on each side and 20 dB
  quieter gets the same features and probabilities from every model family
  whose config holds the front end, through `predict`, a saved and loaded
  model, the SavedModel signatures, a timeline and TFLite.
- Digital silence keeps its clear error; configs round-trip and old ones
  (without the field) load unchanged.
"""

import json
import os
import warnings

import numpy as np
import pytest
import tensorflow as tf

import keras
import keras_ser
import tf_pipeline
from tf_pipeline.config import FeatureConfig
from tf_pipeline.config import FrontEndConfig
from tf_pipeline.front_end import apply_front_end
from tf_pipeline.front_end import normalize_level
from tf_pipeline.front_end import speech_bounds
from keras_ser.models.speech_encoders.config import FusionFeatureConfig
from keras_ser.models.speech_encoders.config import MelFramesConfig
from keras_ser.models.speech_encoders.config import SoundEffectsMelConfig
from keras_ser.models.speech_encoders.fusion_inputs import batch_fusion_inputs
from keras_ser.models.speech_encoders.sound_effects_mel import batch_sfx_mel

FILES = {
    "emodb": ["03a01Wa.wav", "11b03Td.wav"],
    "ravdess": ["Actor_01/03-01-05-02-01-01-01.flac", "Actor_24/03-01-04-01-02-02-24.flac"],
    "emovo": ["f1/rab-f1-b1.flac", "m3/tri-m3-l2.flac"],
}
TINY = {"speaker_encoder": {"units": 8, "embedding_dim": 4}, "sound_effects_encoder": {"filters": 4}}


@pytest.fixture(scope="module")
def speech(emodb_dir, ravdess_dir, emovo_dir):
    """Real utterances of the three corpora, 16 kHz."""
    folders = {"emodb": emodb_dir, "ravdess": ravdess_dir, "emovo": emovo_dir}
    return {name: [np.asarray(tf_pipeline.load_audio(os.path.join(folders[name], f))) for f in files]
            for name, files in FILES.items()}


def _padded_and_quieter(waveform, seconds=1.0, gain_db=-20.0, rate=16000):
    silence = np.zeros(int(seconds * rate), np.float32)
    return np.concatenate([silence, waveform * np.float32(10 ** (gain_db / 20)), silence])


# --------------------------------------------------------------------------
# The functions
# --------------------------------------------------------------------------


@pytest.mark.parametrize("frame_length, hop_length", [(800, 160), (2048, 512)])
def test_speech_bounds_equal_librosa_trim(speech, frame_length, hop_length):
    import librosa

    waveforms = [w for rows in speech.values() for w in rows]
    for waveform in waveforms:
        _, (start, end) = librosa.effects.trim(waveform, top_db=30, frame_length=frame_length, hop_length=hop_length)
        got = speech_bounds(tf.constant(waveform[None]), [len(waveform)], 30.0, frame_length, hop_length)
        assert (int(got[0][0]), int(got[1][0])) == (start, end)
    # RAVDESS has about a second of silence before each sentence: it is found.
    ravdess = speech["ravdess"][0]
    start, end = speech_bounds(tf.constant(ravdess[None]), [len(ravdess)], 30.0, frame_length, hop_length)
    assert int(start[0]) > 8000 and int(end[0]) < len(ravdess) - 4000


def test_padded_batch_rows_equal_rows_alone(speech):
    waveforms = [speech["emodb"][0], speech["ravdess"][1], _padded_and_quieter(speech["emovo"][0])]
    lengths = [len(w) for w in waveforms]
    batch = np.zeros((3, max(lengths)), np.float32)
    for row, waveform in enumerate(waveforms):
        batch[row, : len(waveform)] = waveform
    config = FrontEndConfig()
    together, kept = apply_front_end(tf.constant(batch), lengths, config, 16000)
    for row, waveform in enumerate(waveforms):
        alone, count = apply_front_end(tf.constant(waveform[None]), [len(waveform)], config, 16000)
        assert int(kept[row]) == int(count[0]) < len(waveform)
        np.testing.assert_allclose(together[row, : int(kept[row])], alone[0], atol=1e-6)
        assert not np.any(together[row, int(kept[row]):].numpy())  # zeros after the kept samples


def test_level_is_set_up_and_down_and_trimming_keeps_enough_samples(speech):
    waveform = speech["emodb"][1]
    for gain in (0.01, 1.0, 3.0):
        out = normalize_level(tf.constant(waveform[None] * gain), [len(waveform)], -23.0).numpy()[0]
        assert 20 * np.log10(np.sqrt(np.mean(np.square(out)))) == pytest.approx(-23.0, abs=1e-3)
    # A click in silence: the speech found is 1 ms, but the features need more.
    click = np.zeros(16000, np.float32)
    click[8000:8016] = 0.5
    _, kept = apply_front_end(tf.constant(click[None]), [16000], FrontEndConfig(), 16000, min_samples=2048)
    assert int(kept[0]) == 2048
    short = np.full(1000, 0.1, np.float32)  # shorter than min_samples: kept whole
    _, kept = apply_front_end(tf.constant(short[None]), [1000], FrontEndConfig(), 16000, min_samples=2048)
    assert int(kept[0]) == 1000
    # Off: nothing changes.
    same, count = apply_front_end(tf.constant(click[None]), [16000], FrontEndConfig(trim_db=None, level_dbfs=None),
                                  16000)
    assert int(count[0]) == 16000 and np.array_equal(same.numpy()[0], click)


def test_digital_silence_keeps_its_clear_error():
    config = FusionFeatureConfig(front_end=FrontEndConfig())
    silence = tf.zeros([2, 16000])
    for call in (lambda: apply_front_end(silence, [16000, 16000], FrontEndConfig(), 16000),
                 lambda: batch_sfx_mel(silence, [16000, 8000], SoundEffectsMelConfig(front_end={})),
                 lambda: batch_fusion_inputs(silence, [16000, 8000], config)):
        with pytest.raises(ValueError, match="is silent \\(every sample is 0\\); expected speech"):
            call()
    graph = tf.function(lambda w, n: batch_fusion_inputs(w, n, config))
    with pytest.raises(tf.errors.InvalidArgumentError, match="is silent"):
        graph(silence, tf.constant([16000, 8000]))


# --------------------------------------------------------------------------
# The configs
# --------------------------------------------------------------------------


def test_configs_hold_the_front_end_and_old_dicts_load_unchanged():
    front_end = FrontEndConfig(trim_db=40.0, level_dbfs=-20.0)
    for config_class in (FeatureConfig, MelFramesConfig, SoundEffectsMelConfig, FusionFeatureConfig):
        plain = config_class()
        assert "front_end" not in plain.to_dict()  # saved models and run records of before stay byte-identical
        assert config_class.from_dict(plain.to_dict()) == plain and plain.front_end is None
        config = config_class(front_end=front_end.to_dict())
        assert config.front_end == front_end
        assert config_class.from_json(config.to_json()) == config
        assert config.to_dict()["front_end"] == {"trim_db": 40.0, "level_dbfs": -20.0, "frame_ms": 50.0,
                                                 "hop_ms": 10.0}
    assert "front_end" not in json.dumps(FusionFeatureConfig().to_dict())  # nor in the nested configs
    with pytest.raises(ValueError, match="set FusionFeatureConfig\\(front_end=...\\), not mel_frames.front_end"):
        FusionFeatureConfig(mel_frames=MelFramesConfig(front_end=front_end))
    for kwargs, message in (({"trim_db": -3}, "`trim_db` must be None or a positive number of dB. Received: trim_db=-3"),
                            ({"level_dbfs": 6}, "`level_dbfs` must be None or a negative level"),
                            ({"hop_ms": 60.0}, "`hop_ms` must not exceed `frame_ms`"),
                            ({"frame_ms": "50"}, "`frame_ms` must be a positive number of milliseconds")):
        with pytest.raises(ValueError, match=kwargs and message.replace("(", "\\(").replace(")", "\\)")):
            FrontEndConfig(**kwargs)
    with pytest.raises(ValueError, match="`front_end` must be a FrontEndConfig, its dict or None. Received: 30"):
        MelFramesConfig(front_end=30)


# --------------------------------------------------------------------------
# Models: silence and level no longer change what they hear
# --------------------------------------------------------------------------


def _model(name, front_end):
    keras.utils.set_random_seed(1)
    if name == "fusion_stats":
        model = keras_ser.build_model(name, num_classes=4, backbone_weights="random", backbone_kwargs=TINY,
                                      feature_config=FusionFeatureConfig(front_end=front_end), compile=False)
    elif name == "encoder_stats":
        model = keras_ser.build_model(name, num_classes=4, feature_config=MelFramesConfig(front_end=front_end),
                                      compile=False)
    else:
        model = keras_ser.build_model("cnn_sru", num_classes=4, n_segments=2, image_size=67, sru_units=8,
                                      backbone_kwargs={"filters": [4, 4, 4, 4, 4], "fc_units": 8},
                                      feature_config=FeatureConfig(front_end=front_end), compile=False)
    predictions = model.get_layer("predictions")
    kernel = np.random.default_rng(0).normal(size=predictions.kernel.shape).astype("float32")
    predictions.kernel.assign(kernel)
    return model


@pytest.mark.parametrize("name", ["fusion_stats", "encoder_stats", "cnn_sru"])
def test_silence_and_a_quieter_copy_get_the_same_probabilities(speech, name, tmp_path):
    from keras_ser.inference import predictor

    model = _model(name, FrontEndConfig())
    predict = predictor(model)  # one trace for every input length (model.predict traces again)
    waveforms = [speech["emodb"][0], speech["emovo"][1]]
    clean = np.concatenate([predict(model.preprocessor(w)) for w in waveforms])
    moved = np.concatenate([predict(model.preprocessor(_padded_and_quieter(w))) for w in waveforms])
    np.testing.assert_allclose(moved, clean, atol=2e-3)
    assert np.abs(clean[0] - clean[1]).max() > 1e-3  # not a constant output
    # Without the front end the same copies are heard differently.
    plain = _model(name, None)
    predict_plain = predictor(plain)
    before = np.asarray(predict_plain(plain.preprocessor(waveforms[0])))
    after = np.asarray(predict_plain(plain.preprocessor(_padded_and_quieter(waveforms[0]))))
    assert np.abs(before - after).max() > 1e-2
    # The front end is stored in the model.
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.feature_config.front_end == FrontEndConfig()
    np.testing.assert_allclose(loaded.predict(loaded.preprocessor(_padded_and_quieter(waveforms[1])), verbose=0),
                               clean[1:], atol=2e-3)


def test_the_signatures_and_a_timeline_run_the_same_front_end(speech, tmp_path):
    import saved_models
    from conftest import wav_bytes

    model = _model("fusion_stats", FrontEndConfig())
    waveform = speech["ravdess"][0]  # with its own second of silence on each side
    expected = model.predict(model.preprocessor(waveform), verbose=0)
    loaded = tf.saved_model.load(saved_models.export(model, str(tmp_path), "front_end"))
    for audio in (waveform, _padded_and_quieter(waveform, gain_db=-10.0)):
        got = loaded.signatures["serve_wav"](audio_bytes=tf.constant([wav_bytes(audio)]))["probabilities"]
        np.testing.assert_allclose(got.numpy(), expected, atol=2e-3)
        got = loaded.signatures["serving_default"](waveform=tf.constant(audio[None]),
                                                   num_samples=tf.constant([len(audio)], tf.int32))["probabilities"]
        np.testing.assert_allclose(got.numpy(), expected, atol=2e-3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="is silent"):
        loaded.signatures["serve_wav"](audio_bytes=tf.constant([wav_bytes(np.zeros(16000))]))
    # A timeline's windows, each through the front end as if alone.
    from keras_ser.inference import predictor

    recording = np.concatenate([speech["emodb"][0], speech["emovo"][0]])
    timeline = keras_ser.predict_timeline(model, recording, 2.0, 1.0, batch_windows=3)
    predict = predictor(model)
    for i in (0, len(timeline.starts) - 1):
        window = recording[i * 16000: i * 16000 + 32000]
        np.testing.assert_allclose(timeline.probabilities[i], np.asarray(predict(model.preprocessor(window)))[0],
                                   atol=1e-5)


def test_tflite_runs_the_same_front_end(speech, tmp_path):
    import saved_models
    from keras_ser.inference import predictor
    from saved_models.tflite import run_tflite

    model = _model("encoder_stats", FrontEndConfig())
    path = saved_models.export_tflite(model, str(tmp_path), "front_end")
    with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice (LiteRT)
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=path)
    predict = predictor(model)
    for waveform in (speech["ravdess"][1], _padded_and_quieter(speech["emodb"][1])):
        expected = np.asarray(predict(model.preprocessor(waveform)))[0]
        np.testing.assert_allclose(run_tflite(interpreter, waveform), expected, atol=1e-4)
    clean = np.asarray(predict(model.preprocessor(speech["emodb"][1])))[0]
    np.testing.assert_allclose(run_tflite(interpreter, _padded_and_quieter(speech["emodb"][1])), clean, atol=2e-3)


def test_command_line_flags_set_the_front_end():
    from absl import flags

    from keras_ser_cli import train_flags
    from keras_ser_cli.main import UsageError

    def feature_config(*args):
        values = flags.FlagValues()
        train_flags.define(values)
        values(["prog", *args])
        return train_flags.feature_config_from(values, train_flags.config_from(values))

    assert feature_config("--model=fusion_stats", "--recipe=probe", "--validation=none", "--front_end=speech",
                          "--trim_db=40") == FusionFeatureConfig(front_end=FrontEndConfig(trim_db=40.0)).to_dict()
    assert feature_config("--model=encoder_stats", "--recipe=probe", "--validation=none", "--front_end=speech",
                          "--level_dbfs=0",
                          "--volume_dbfs=-30") == MelFramesConfig(
        volume_dbfs=-30.0, front_end=FrontEndConfig(level_dbfs=None)).to_dict()
    assert feature_config("--model=cnn_sru", "--front_end=speech", "--level_dbfs=-60", "--trim_db=0") == FeatureConfig(
        front_end=FrontEndConfig(trim_db=None, level_dbfs=-60.0)).to_dict()
    assert feature_config("--model=cnn_sru") is None
    with pytest.raises(UsageError, match="add --front_end=speech"):
        feature_config("--trim_db=20")
    with pytest.raises(UsageError, match="`level_dbfs` must be None or a negative level"):
        feature_config("--front_end=speech", "--level_dbfs=3")
