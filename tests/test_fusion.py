"""The second speech backbone's input, the fused model, and the speaker-subspace lever.

- `keras_ser.models.speech_encoders.sound_effects_mel`: equals the `aisfx` package's own
  spectrogram at 44.1 kHz and librosa at 16 kHz, on real EMO-DB audio.
- `sfx_stats` / `fusion_stats`: build, save and load, train through the LOSO
  runner (probe, with and without the speaker-subspace projection), export
  with the front ends in the graph.
"""

import json
import os
import re
import warnings

import numpy as np
import pytest
import tensorflow as tf

import keras
import keras_ser
import tf_pipeline
from conftest import compiled_call
from keras_ser.layers.pooling import DownsampleMask
from keras_ser.layers.pooling import FillPadding
from keras_ser.layers.speaker_projection import SpeakerSubspaceProjection
from keras_ser.models import registry
from keras_ser.models.speech_encoders.config import FusionFeatureConfig
from keras_ser.models.speech_encoders.config import SoundEffectsMelConfig
from keras_ser.models.speech_encoders.sound_effects_mel import batch_sfx_mel
from keras_ser.models.speech_encoders.sound_effects_mel import sfx_mel

FILES = ["03a01Wa.wav", "08a02Ab.wav", "11b03Td.wav"]
TINY = {"speaker_encoder": {"units": 8, "embedding_dim": 4}, "sound_effects_encoder": {"filters": 4}}


@pytest.fixture(scope="module")
def waveforms(emodb_dir):
    return [np.asarray(tf_pipeline.load_audio(os.path.join(emodb_dir, name))) for name in FILES]


def _tiny(name, **kwargs):
    backbone_kwargs = TINY if name == "fusion_stats" else TINY["sound_effects_encoder"]
    return keras_ser.build_model(name, num_classes=3, backbone_weights="random", backbone_kwargs=backbone_kwargs,
                                 compile=False, **kwargs)


# --------------------------------------------------------------------------
# The sound-effects encoder's log-Mel (keras_ser.models.speech_encoders.sound_effects_mel)
# --------------------------------------------------------------------------


def test_sfx_mel_at_44k_equals_the_encoder_package(emodb_dir):
    librosa = pytest.importorskip("librosa")
    pytest.importorskip("aisfx")
    from aisfx.preprocessing import spectrogram_normalize
    from aisfx.spectrogram.spectrogram_librosa import compute_spectrogram

    for name in FILES[:2]:
        path = os.path.join(emodb_dir, name)
        expected = spectrogram_normalize(compute_spectrogram(path, 44100.0, 2048, 1024, 96, 0.0, 22050.0)).T
        waveform, _ = librosa.load(path, sr=44100)
        got = sfx_mel(waveform, SoundEffectsMelConfig(sample_rate=44100)).numpy()
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_sfx_mel_at_16k_equals_librosa_with_the_same_window_duration(waveforms):
    librosa = pytest.importorskip("librosa")
    config = SoundEffectsMelConfig()
    assert (config.n_fft, config.hop_length) == (743, 372)
    warnings.simplefilter("ignore", UserWarning)  # librosa: the bands above 8 kHz are empty, as they should be
    for waveform in waveforms:
        peak = waveform / np.abs(waveform).max()
        power = librosa.feature.melspectrogram(y=peak, sr=16000, n_fft=743, hop_length=372, n_mels=96, norm=1.0,
                                               fmin=0.0, fmax=22050.0, htk=True, power=2.0).T
        expected = np.log10(1e4 * power * (2048 / 743) ** 2 + 1) / 9.457798957824707
        got = sfx_mel(waveform).numpy()
        assert got.shape == expected.shape == (1 + len(waveform) // 372, 96)
        np.testing.assert_allclose(got, expected, atol=5e-5)  # float32 vs float64 spectra (seen: 1.3e-5)


def test_batched_sfx_mel_equals_one_at_a_time_and_pads_with_minus_one(waveforms):
    lengths = [len(w) for w in waveforms]
    batch = np.zeros((len(waveforms), max(lengths)), np.float32)
    for row, waveform in enumerate(waveforms):
        batch[row, : len(waveform)] = waveform
    frames, num_frames = batch_sfx_mel(batch, lengths)
    for row, waveform in enumerate(waveforms):
        alone = sfx_mel(waveform).numpy()
        assert int(num_frames[row]) == len(alone)
        np.testing.assert_allclose(frames[row, : len(alone)].numpy(), alone, atol=1e-6)
        assert np.all(frames[row, len(alone):].numpy() == -1.0)


def test_sfx_mel_refuses_bad_audio_eagerly_and_in_graphs():
    with pytest.raises(ValueError, match="too short: at least 2048 samples"):
        sfx_mel(np.zeros(1000, np.float32) + 0.1)
    with pytest.raises(ValueError, match="NaN or Inf"):
        sfx_mel(np.full(4000, np.nan, np.float32))
    graph = tf.function(lambda x: sfx_mel(x), input_signature=[tf.TensorSpec([None], tf.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="too short"):
        graph(tf.constant(np.full(100, 0.1, np.float32)))
    assert graph(tf.constant(np.full(4000, 0.1, np.float32))).shape == (11, 96)


def test_fusion_config_round_trips_and_checks_the_rate():
    config = FusionFeatureConfig(mel_frames={"volume_dbfs": -30.0})
    assert FusionFeatureConfig.from_json(config.to_json()) == config
    assert config.mel_frames.volume_dbfs == -30.0 and config.min_samples == 2048
    with pytest.raises(ValueError, match="same sample rate"):
        FusionFeatureConfig(sfx_mel=SoundEffectsMelConfig(sample_rate=44100))
    with pytest.raises(ValueError, match="min_samples"):
        SoundEffectsMelConfig(min_samples=100)


# --------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------


def test_mask_layers_and_projection_round_trip_and_compute():
    frames = np.array([[[1.0], [2.0], [-1.0], [-1.0]]], "float32")
    mask = np.array([[1.0, 1.0, 0.0, 0.0]], "float32")
    assert FillPadding()([frames, mask]).numpy()[0, :, 0].tolist() == [1.0, 2.0, 0.0, 0.0]
    assert DownsampleMask(2)(np.array([[1, 1, 1, 0, 0]], "float32")).numpy().tolist() == [[1.0, 0.0]]
    assert DownsampleMask(4)(np.ones((2, 9), "float32")).shape == (2, 2)
    with pytest.raises(ValueError, match="stride must be a positive integer. Received: stride=0"):
        DownsampleMask(0)
    layer = SpeakerSubspaceProjection(2, name="speaker_projection")
    layer.build((None, 3))
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 2)))[0].astype("float32")
    layer.basis.assign(basis)
    x = np.random.default_rng(1).normal(size=(5, 3)).astype("float32")
    projected = layer(x).numpy()
    np.testing.assert_allclose(projected @ basis, 0.0, atol=1e-5)  # nothing left along the speaker directions
    np.testing.assert_allclose(projected, x - x @ basis @ basis.T, atol=1e-5)
    for built in (FillPadding(0.5), DownsampleMask(8), layer):
        assert type(built).from_config(built.get_config()).get_config() == built.get_config()
    with pytest.raises(ValueError, match="rank must be a positive integer"):
        SpeakerSubspaceProjection(0)


def test_speaker_subspace_finds_the_speaker_direction_not_the_emotion_one():
    from keras_ser.training.frozen import fit_speaker_subspace

    rng = np.random.default_rng(0)
    speakers = np.repeat(np.arange(6), 20)
    labels = np.tile(np.arange(4), 30)
    features = rng.normal(size=(120, 6))
    features[:, 1] += 4.0 * rng.normal(size=6)[speakers]  # speakers differ along feature 1
    features[:, 3] += 3.0 * labels  # emotions along feature 3
    basis = fit_speaker_subspace(features, labels, speakers, 1)
    assert basis.shape == (6, 1) and int(np.argmax(np.abs(basis[:, 0]))) == 1
    assert abs(basis[3, 0]) < 0.2
    # More directions than speakers - 1 exist nowhere: those columns stay zero.
    assert np.all(fit_speaker_subspace(features, labels, speakers, 8)[:, 5:] == 0)


def test_projected_probe_equals_its_sklearn_pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from keras_ser.training.frozen import fit_probe_projected
    from keras_ser.training.frozen import fit_speaker_subspace
    from keras_ser.training.frozen import set_probe_weights

    rng = np.random.default_rng(0)
    speakers = np.repeat(np.arange(4), 15)
    labels = np.tile(np.arange(3), 20)
    features = rng.normal(size=(60, 112)) + labels[:, None] * 0.3 + rng.normal(size=(4, 112))[speakers]
    probe = fit_probe_projected(features, labels, speakers, 3, ranks=(0, 2), c_grid=(0.01, 1.0))
    assert probe["rank"] in (0, 2) and probe["C"] in (0.01, 1.0) and len(probe["inner_ua"]) == 4
    # The same pipeline by hand: standardise, project out the chosen subspace, regression.
    standardized = (features - features.mean(0)) / features.std(0)
    basis = fit_speaker_subspace(standardized, labels, speakers, 2)[:, : probe["rank"]]
    projected = standardized - standardized @ basis @ basis.T
    scaler = StandardScaler().fit(projected)
    reference = LogisticRegression(C=probe["C"], max_iter=2000).fit(scaler.transform(projected), labels)
    model = _tiny("fusion_stats", speaker_subspace=2)
    set_probe_weights(model, probe)
    test = rng.normal(size=(7, 112))
    test_projected = (test - features.mean(0)) / features.std(0)
    test_projected = test_projected - test_projected @ basis @ basis.T
    np.testing.assert_allclose(model.head_model().predict(test.astype("float32"), verbose=0),
                               reference.predict_proba(scaler.transform(test_projected)), atol=1e-4)


def test_projected_probe_spans_the_speakers_when_the_inner_groups_are_corpora():
    from keras_ser.training.frozen import fit_probe_projected
    from keras_ser.training.frozen import fit_speaker_subspace

    rng = np.random.default_rng(0)
    speakers = np.repeat(np.arange(6), 12)          # six speakers ...
    corpora = np.array(["a", "b"])[speakers // 3]   # ... in two corpora: the inner folds
    labels = np.tile(np.arange(3), 24)
    features = rng.normal(size=(72, 20)) + labels[:, None] * 0.5 + 3 * rng.normal(size=(6, 20))[speakers]
    standardized = (features - features.mean(0)) / features.std(0)
    probe = fit_probe_projected(features, labels, corpora, 3, ranks=(4,), c_grid=(1.0,), speakers=speakers)
    assert list(probe["inner_ua"]) == ["4/1.0"]  # two inner folds, one per corpus, scored together
    np.testing.assert_allclose(np.abs(probe["basis"]), np.abs(fit_speaker_subspace(standardized, labels, speakers, 4)),
                               atol=1e-5)
    # Without `speakers` the groups span it: two corpora have one direction between them.
    by_corpus = fit_probe_projected(features, labels, corpora, 3, ranks=(4,), c_grid=(1.0,))
    assert np.sum(np.any(by_corpus["basis"] != 0, axis=0)) == 1
    assert np.sum(np.any(probe["basis"] != 0, axis=0)) == 4
    with pytest.raises(ValueError, match=r"speakers must give one speaker per row \(72 rows\). Received: speakers "
                                         r"of shape \(5,\)"):
        fit_probe_projected(features, labels, corpora, 3, ranks=(2,), speakers=speakers[:5])


# --------------------------------------------------------------------------
# The zoo entries
# --------------------------------------------------------------------------


def test_sfx_and_fusion_entries_build_save_and_load(tmp_path, waveforms):
    for name, layout in (("sfx_stats", "sfx_mel"), ("fusion_stats", "fusion")):
        model = _tiny(name, speaker_subspace=2)
        assert model.preprocessor.layout == layout
        assert registry.get(name).DEFAULT_BACKBONE == model_config_backbone(name) != "speaker_encoder"
        assert model.HEAD_LAYERS == ("standardize", "speaker_projection", "dropout", "predictions")
        inputs = model.preprocessor(waveforms[0])
        expected = model.predict(inputs, verbose=0)
        path = str(tmp_path / f"{name}.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        np.testing.assert_allclose(loaded.predict(inputs, verbose=0), expected, atol=1e-6)
        assert loaded.feature_config == model.feature_config and loaded.speaker_subspace == 2
        # The head on the pooled features gives the model's output.
        pooled = model.features_model()(inputs)
        np.testing.assert_allclose(model.head_model()(pooled).numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="backbone is 'sound_effects_encoder'. Received: backbone='speaker_encoder'"):
        keras_ser.build_model("sfx_stats", backbone="speaker_encoder")
    with pytest.raises(ValueError, match="speaker_subspace is an option of"):
        keras_ser.build_model("encoder_sru", speaker_subspace=2, backbone_weights="random")


def test_encoder_stats_takes_a_speaker_subspace_and_round_trips(tmp_path, waveforms):
    model = keras_ser.build_model("encoder_stats", num_classes=3, backbone_weights="random", compile=False,
                                  backbone_kwargs={"units": 8, "embedding_dim": 4}, speaker_subspace=2)
    assert model.HEAD_LAYERS == ("standardize", "speaker_projection", "dropout", "predictions")
    assert model.get_layer("speaker_projection").basis.shape == (48, 2)
    keras.utils.set_random_seed(1)
    basis = np.linalg.qr(np.random.default_rng(1).normal(size=(48, 2)))[0].astype("float32")
    model.get_layer("speaker_projection").basis.assign(basis)
    inputs = model.preprocessor(waveforms[0])
    expected = model.predict(inputs, verbose=0)
    path = str(tmp_path / "encoder_stats.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.speaker_subspace == 2 and loaded.get_config()["speaker_subspace"] == 2
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), expected, atol=1e-6)
    np.testing.assert_allclose(model.head_model()(model.features_model()(inputs)).numpy(), expected, atol=1e-6)
    plain = keras_ser.build_model("encoder_stats", num_classes=3, backbone_weights="random", compile=False,
                                  backbone_kwargs={"units": 8, "embedding_dim": 4})
    # Without the option the config is the one saved before it existed.
    assert "speaker_subspace" not in plain.get_config() and plain.HEAD_LAYERS == ("standardize", "dropout",
                                                                                   "predictions")


def model_config_backbone(name):
    from keras_ser.training.config import TrainConfig

    return TrainConfig(model=name, recipe="probe", validation="none").backbone


def test_padded_batch_equals_one_at_a_time(waveforms):
    """Both encoders mask the padding: a row of a padded batch gives the features of the row alone."""
    model = keras_ser.build_model("fusion_stats", num_classes=3, compile=False)
    lengths = [len(w) for w in waveforms]
    batch = np.zeros((len(waveforms), max(lengths)), np.float32)
    for row, waveform in enumerate(waveforms):
        batch[row, : len(waveform)] = waveform
    features = compiled_call(model.features_model())
    together = np.asarray(features(model.preprocessor.batch(batch, lengths)))
    alone = np.concatenate([np.asarray(features(model.preprocessor(w))) for w in waveforms])
    np.testing.assert_allclose(together, alone, atol=1e-4, rtol=1e-4)


def test_probe_with_speaker_subspace_through_the_loso_runner(synthetic_corpus, tmp_path):
    from keras_ser.training.config import TrainConfig
    from keras_ser.training.loso import run_loso

    config = TrainConfig(model="fusion_stats", recipe="probe", batch_size=8, speaker_subspace=2,
                         backbone_weights="random", backbone_kwargs=TINY)
    speaker = synthetic_corpus.speakers[0]
    report = run_loso(synthetic_corpus, config, str(tmp_path / "fusion"), speakers=[speaker], verbose=0,
                      tensorboard=False)
    assert len(report["folds"]) == 1
    fold = json.load(open(tmp_path / "fusion" / f"fold_{speaker}.json"))
    assert fold["history"]["probe"]["rank"] in (0, 2) and fold["history"]["probe"]["C"] > 0
    assert fold["feature_config"] == FusionFeatureConfig().to_dict()
    with pytest.raises(ValueError, match="speaker_subspace is fitted by the 'probe' recipe of encoder_stats"):
        TrainConfig(model="encoder_sru", recipe="frozen", speaker_subspace=2)
    with pytest.raises(ValueError, match="speaker_subspace is fitted by the 'probe' recipe of encoder_stats"):
        TrainConfig(model="encoder_stats", recipe="frozen", speaker_subspace=2)


def test_exported_fusion_model_matches_predict_and_refuses_bad_audio(tmp_path, emodb_dir, waveforms):
    import saved_models
    from conftest import wav_bytes

    keras.utils.set_random_seed(4)
    model = _tiny("fusion_stats", speaker_subspace=2)
    rng = np.random.default_rng(0)
    model.get_layer("predictions").kernel.assign(rng.normal(size=(112, 3)).astype("float32"))
    path = saved_models.export(model, str(tmp_path), "fusion")
    with open(os.path.join(path, "assets.extra", "keras_ser.json")) as handle:
        assert json.load(handle)["input_layout"] == "fusion"
    loaded = tf.saved_model.load(path)
    expected = np.concatenate([model.predict(model.preprocessor(w), verbose=0) for w in waveforms])
    paths = [os.path.join(emodb_dir, name) for name in FILES]
    for row, file in enumerate(paths):  # one request per utterance: no padding
        got = loaded.signatures["serve_wav"](audio_bytes=tf.constant([open(file, "rb").read()]))
        np.testing.assert_allclose(got["probabilities"].numpy(), expected[row: row + 1], atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="is silent"):
        loaded.signatures["serve_wav"](audio_bytes=tf.constant([wav_bytes(np.zeros(16000))]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="too short"):
        loaded.signatures["serve_wav"](audio_bytes=tf.constant([wav_bytes(np.full(1000, 0.1))]))
    again = loaded.signatures["serve_wav"](audio_bytes=tf.constant([open(paths[0], "rb").read()]))
    np.testing.assert_allclose(again["probabilities"].numpy(), expected[:1], atol=1e-5)


def test_command_line_flags_reach_the_config():
    from absl import flags

    from keras_ser_cli import train_flags
    from keras_ser_cli.main import UsageError

    values = flags.FlagValues()
    train_flags.define(values)
    values(["prog", "--model=fusion_stats", "--recipe=probe", "--validation=none", "--speaker_subspace=4",
            "--volume_dbfs=-30"])
    config = train_flags.config_from(values)
    assert (config.model, config.speaker_subspace, config.backbone) == (
        "fusion_stats", 4, "speaker_encoder+sound_effects_encoder")
    assert train_flags.feature_config_from(values, config) == FusionFeatureConfig(
        mel_frames={"volume_dbfs": -30.0}).to_dict()
    values(["prog", "--model=sfx_stats", "--speaker_subspace=0", "--recipe=probe", "--validation=none"])
    with pytest.raises(UsageError, match=re.escape("--volume_dbfs applies to the models whose front end raises the volume "
                                                      "(encoder_stats, encoder_sru, fusion_stats)")):
        train_flags.feature_config_from(values, train_flags.config_from(values))


def test_tflite_export_refuses_the_new_layouts(tmp_path):
    import saved_models

    with pytest.raises(ValueError, match="TFLite export covers cnn_sru, cnn, sru, encoder_stats, encoder_sru.*'fusion'"):
        saved_models.export_tflite(_tiny("fusion_stats"), str(tmp_path), "fusion")


def test_fusion_preset_timeline_windows_match_each_window_alone(waveforms):
    from keras_ser.inference import predictor

    model = keras_ser.from_preset("fusion_stats_emodb")
    recording = np.concatenate(waveforms)
    timeline = keras_ser.predict_timeline(model, recording, 2.0, 1.5, batch_windows=4)
    window, hop = 32000, 24000
    assert len(timeline.starts) == (len(recording) - window) // hop + 1 >= 4
    predict = predictor(model)
    for i in range(len(timeline.starts)):
        alone = np.asarray(predict(model.preprocessor(recording[i * hop: i * hop + window])))[0]
        np.testing.assert_allclose(timeline.probabilities[i], alone, atol=1e-5)
