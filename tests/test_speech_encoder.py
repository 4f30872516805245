"""The pretrained speech backbone: Mel power frames, the GE2E encoder, its weights, its zoo entries.

Parity is checked against the `resemblyzer` package itself (its Mel
computation and its torch network) on real EMO-DB audio.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

import keras
import keras_ser
import tf_pipeline
from keras_ser.backbones import SpeakerEncoder
from keras_ser.layers.pooling import FrameMask
from keras_ser.layers.pooling import SegmentStatisticsPooling
from keras_ser.layers.pooling import StatisticsPooling
from keras_ser.weights import speaker_encoder as encoder_weights
from keras_ser.models.speech_encoders import mel_power
from keras_ser.models.speech_encoders.config import MelFramesConfig

# Four speakers, four emotions, 1.6 s to 4.1 s.
FILES = ["03a01Wa.wav", "08a02Ab.wav", "11b03Td.wav", "16a01Fc.wav"]


@pytest.fixture(scope="module")
def waveforms(emodb_dir):
    return [np.asarray(tf_pipeline.load_audio(os.path.join(emodb_dir, name))) for name in FILES]


@pytest.fixture(scope="module")
def resemblyzer():
    return pytest.importorskip("resemblyzer")


# --------------------------------------------------------------------------
# Mel power frames (keras_ser.models.speech_encoders.mel_power)
# --------------------------------------------------------------------------


def test_mel_frames_equal_the_encoder_package(waveforms, resemblyzer):
    for waveform in waveforms:
        expected = resemblyzer.wav_to_mel_spectrogram(waveform)
        got = mel_power.mel_frames(waveform).numpy()
        assert got.shape == expected.shape == (1 + len(waveform) // 160, 40)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * expected.max())


def test_volume_normalisation_equals_the_encoder_package(waveforms, resemblyzer):
    config = MelFramesConfig(volume_dbfs=-30.0)
    quiet = waveforms[0] * 0.05  # far below -30 dBFS: raised
    for waveform in (waveforms[1], quiet):
        expected = resemblyzer.wav_to_mel_spectrogram(resemblyzer.normalize_volume(waveform, -30, increase_only=True))
        got = mel_power.mel_frames(waveform, config).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * expected.max())
    # Increase only: a loud utterance is left as it is.
    loud = np.clip(waveforms[2] * 20, -1, 1)
    np.testing.assert_allclose(mel_power.mel_frames(loud, config), mel_power.mel_frames(loud), rtol=1e-6)


def test_batched_mel_frames_equal_one_at_a_time(waveforms):
    width = max(len(w) for w in waveforms) + 321  # wider than the longest row
    batch = np.zeros((len(waveforms), width), np.float32)
    batch[1] = 0.5  # samples past a row's length must not leak into its frames
    for row, waveform in enumerate(waveforms):
        batch[row, : len(waveform)] = waveform
    lengths = [len(w) for w in waveforms]
    for config in (MelFramesConfig(), MelFramesConfig(volume_dbfs=-30.0)):
        frames, counts = mel_power.batch_mel_frames(batch, lengths, config)
        assert frames.shape[1] == max(counts.numpy())
        for row, waveform in enumerate(waveforms):
            alone = mel_power.mel_frames(waveform, config).numpy()
            np.testing.assert_allclose(frames[row, : counts[row]], alone, rtol=1e-5, atol=1e-7 * alone.max())
            assert np.all(frames[row, counts[row]:] == mel_power.PAD_VALUE)


@pytest.mark.parametrize(
    "waveform, message",
    [
        (np.full(399, 0.1, np.float32), "too short: at least 400 samples (25.0 ms at 16000 Hz)"),
        (np.zeros(16000, np.float32), "is silent (every sample is 0)"),
        (np.array([0.1] * 800 + [np.nan] * 10, np.float32), "NaN or Inf"),
    ],
    ids=["too_short", "silence", "nan"],
)
def test_bad_waveforms_get_clear_errors(waveform, message):
    with pytest.raises(ValueError, match=__import__("re").escape(message)):
        mel_power.mel_frames(waveform)
    graph = tf.function(lambda x: mel_power.mel_frames(x), input_signature=[tf.TensorSpec([None], tf.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=__import__("re").escape(message)):
        graph(waveform)


def test_mel_frames_config_round_trip_and_errors():
    config = MelFramesConfig(volume_dbfs=-25.0)
    assert MelFramesConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="volume_dbfs"):
        MelFramesConfig(volume_dbfs=3.0)
    with pytest.raises(ValueError, match=r"Unknown MelFramesConfig fields: \['n_fft_typo'\]"):
        MelFramesConfig.from_dict({"n_fft_typo": 1})


# --------------------------------------------------------------------------
# The GE2E encoder and its weights
# --------------------------------------------------------------------------


def test_shipped_weights_are_the_package_checkpoint_converted(resemblyzer):
    converted = encoder_weights.convert_checkpoint()
    with np.load(encoder_weights.SHIPPED) as shipped:
        assert sorted(shipped.files) == sorted(converted)
        for key in converted:
            np.testing.assert_array_equal(shipped[key], converted[key], err_msg=key)
    assert os.path.getsize(encoder_weights.SHIPPED) < 20 * 2**20


def test_encoder_equals_the_torch_network_on_emodb(waveforms, resemblyzer):
    torch = pytest.importorskip("torch")
    voice_encoder = resemblyzer.VoiceEncoder("cpu", verbose=False)
    encoder = keras_ser.backbones.speaker_encoder("resemblyzer")
    mels = [mel_power.mel_frames(w).numpy() for w in waveforms]
    outputs = encoder.predict(mel_power.pad_mel_frames(mels), verbose=0)  # one padded batch
    for row, mel in enumerate(mels):
        x = torch.from_numpy(mel[None])
        with torch.no_grad():
            embedding = voice_encoder(x)[0].numpy()
            # Each layer's frame outputs: the package's LSTM run one layer at a time.
            h = x
            for k in range(3):
                layer = torch.nn.LSTM(40 if k == 0 else 256, 256, batch_first=True)
                layer.load_state_dict({f"{name}_l0": getattr(voice_encoder.lstm, f"{name}_l{k}")
                                       for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
                h, _ = layer(h)
                np.testing.assert_allclose(outputs[f"lstm_{k + 1}"][row, : len(mel)], h[0].numpy(), atol=1e-5,
                                           err_msg=f"{FILES[row]} lstm_{k + 1}")
            # The package's own 3-layer module gives the same top layer.
            top, _ = voice_encoder.lstm(x)
            np.testing.assert_allclose(h.numpy(), top.numpy(), atol=1e-6)
        np.testing.assert_allclose(outputs["embedding"][row], embedding, atol=1e-5, err_msg=FILES[row])


def test_loading_weights_that_do_not_fit_changes_nothing():
    tiny = SpeakerEncoder(units=8, embedding_dim=4)
    before = [np.array(v) for v in tiny.weights]
    with pytest.raises(ValueError, match=r"lstm_1/kernel: shape \(40, 1024\), expected \(40, 32\)"):
        encoder_weights.load_speaker_encoder(tiny, "resemblyzer")
    for old, variable in zip(before, tiny.weights):
        np.testing.assert_array_equal(old, np.array(variable))
    with pytest.raises(FileNotFoundError, match="No speaker-encoder weights at 'missing.npz'"):
        encoder_weights.load_speaker_encoder(tiny, "missing.npz")
    with pytest.raises(ValueError, match="weights must be 'resemblyzer', a path"):
        encoder_weights.load_speaker_encoder(tiny, 3)


def test_encoder_config_round_trip():
    encoder = SpeakerEncoder(units=8, num_layers=2, embedding_dim=4, name="enc")
    clone = SpeakerEncoder.from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config()
    assert clone.sequence_outputs == ("lstm_1", "lstm_2")
    with pytest.raises(ValueError, match="units must be a positive integer. Received: units=0"):
        SpeakerEncoder(units=0)


# --------------------------------------------------------------------------
# Pooling layers
# --------------------------------------------------------------------------


def test_statistics_pooling_uses_only_real_frames():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, 3)).astype("float32")
    frames = np.ones((2, 9, 5), "float32")
    frames[1, 6:] = -1.0
    mask = FrameMask()(frames)
    np.testing.assert_array_equal(mask.numpy()[1], [1] * 6 + [0] * 3)
    pooled = StatisticsPooling()([x, mask]).numpy()
    for row, length in ((0, 9), (1, 6)):
        np.testing.assert_allclose(pooled[row, :3], x[row, :length].mean(0), atol=1e-5)
        np.testing.assert_allclose(pooled[row, 3:], x[row, :length].std(0), atol=1e-4)


def test_segment_statistics_pooling_cuts_like_the_feature_images():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 11, 2)).astype("float32")
    mask = np.ones((2, 11), "float32")
    mask[1, 8:] = 0.0
    layer = SegmentStatisticsPooling(3)
    pooled = layer([x, mask]).numpy()
    assert pooled.shape == (2, 3, 4)
    for row, length in ((0, 11), (1, 8)):
        size = length // 3
        bounds = [(0, size), (size, 2 * size), (2 * size, length)]  # the last segment takes the remainder
        for k, (start, end) in enumerate(bounds):
            np.testing.assert_allclose(pooled[row, k, :2], x[row, start:end].mean(0), atol=1e-5)
            np.testing.assert_allclose(pooled[row, k, 2:], x[row, start:end].std(0), atol=1e-4)
    assert SegmentStatisticsPooling.from_config(layer.get_config()).n_segments == 3
    with pytest.raises(ValueError, match="n_segments must be a positive integer. Received: n_segments=0"):
        SegmentStatisticsPooling(0)


# --------------------------------------------------------------------------
# Zoo entries
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name, kwargs", [("encoder_stats", {}), ("encoder_sru", {"n_segments": 2, "sru_units": 8})])
def test_encoder_entries_save_and_load(name, kwargs, tmp_path, waveforms):
    model = keras_ser.build_model(name, num_classes=4, class_names=list("WATF"),
                                  feature_config={"volume_dbfs": -30.0}, **kwargs)
    assert model.encoder.trainable is False and len(model.trainable_weights) == len(model.head_model().trainable_weights)
    batch = mel_power.pad_mel_frames([mel_power.mel_frames(w).numpy() for w in waveforms])
    expected = model.predict(batch, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(batch, verbose=0), expected, atol=1e-6)
    assert loaded.class_names == list("WATF")
    assert loaded.feature_config == MelFramesConfig(volume_dbfs=-30.0)
    assert loaded.preprocessor.layout == "mel_frames"
    # The frozen part and the head compose to the whole model.
    features = model.features_model().predict(batch, verbose=0)
    np.testing.assert_allclose(model.head_model().predict(features, verbose=0), expected, atol=1e-6)


def test_encoder_entries_bad_arguments():
    with pytest.raises(ValueError, match="leave n_segments=None. Received: n_segments=3"):
        keras_ser.build_model("encoder_stats", n_segments=3)
    with pytest.raises(ValueError, match=r"Unknown speech backbone. Expected one of \['speaker_encoder'\]"):
        keras_ser.build_model("encoder_stats", backbone="alexnet")
    with pytest.raises(ValueError, match="fine_tune must be an integer from 0 to 3"):
        keras_ser.EncoderStatsClassifier(SpeakerEncoder(units=8), fine_tune=4)


def test_fine_tune_leaves_only_the_top_layers_trainable():
    model = keras_ser.EncoderStatsClassifier(keras_ser.backbones.speaker_encoder(None, units=8), num_classes=3,
                                             fine_tune=1)
    trainable = {id(v) for v in model.trainable_weights}
    layers = {"predictions": model.get_layer("predictions")}
    layers.update({name: model.encoder.get_layer(name) for name in ("lstm_1", "lstm_2", "lstm_3", "projection")})
    assert {name for name, layer in layers.items() if all(id(v) in trainable for v in layer.weights)} == {
        "lstm_3", "predictions"}
    assert not [name for name in ("lstm_1", "lstm_2", "projection")
                if any(id(v) in trainable for v in layers[name].weights)]


# --------------------------------------------------------------------------
# The probe recipe: logistic regression on pooled features, C on training speakers
# --------------------------------------------------------------------------


def test_probe_weights_reproduce_the_logistic_regression():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from keras_ser.training.frozen import fit_probe
    from keras_ser.training.frozen import set_probe_weights

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    groups = np.tile(np.repeat(["a", "b", "c", "d"], 5), 3)
    features = rng.normal(size=(60, 1536)) + labels[:, None] * 0.3
    probe = fit_probe(features, labels, groups, num_classes=3)
    assert probe["C"] in (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)
    scaler = StandardScaler().fit(features)
    reference = LogisticRegression(C=probe["C"], max_iter=2000).fit(scaler.transform(features), labels)
    model = keras_ser.build_model("encoder_stats", num_classes=3, compile=False)
    set_probe_weights(model, probe)
    head = model.head_model()
    test = rng.normal(size=(7, 1536))
    np.testing.assert_allclose(head.predict(test.astype("float32"), verbose=0),
                               reference.predict_proba(scaler.transform(test)), atol=1e-4)


def test_probe_and_frozen_recipes_through_the_loso_runner(synthetic_corpus, tmp_path):
    import json

    from keras_ser.training import frozen
    from keras_ser.training.config import TrainConfig
    from keras_ser.training.loso import run_loso

    extract, calls = frozen.extract_features, []

    def counting_extract(*args, **kwargs):
        calls.append(len(args[2]))
        return extract(*args, **kwargs)

    cache, frozen._FEATURES, frozen.extract_features = frozen._FEATURES, {}, counting_extract
    try:
        probe = TrainConfig(model="encoder_stats", recipe="probe", batch_size=8)
        report = run_loso(synthetic_corpus, probe, str(tmp_path / "probe"), verbose=0, tensorboard=False)
        sru = TrainConfig(model="encoder_sru", n_segments=2, sru_units=8, recipe="frozen", epochs=2, batch_size=8,
                          validation="next")
        run_loso(synthetic_corpus, sru, str(tmp_path / "sru"), speakers=[synthetic_corpus.speakers[0]], verbose=0,
                 tensorboard=False)
    finally:
        frozen._FEATURES, frozen.extract_features = cache, extract
    # The features of a configuration are extracted once, however many folds read them.
    assert calls == [len(synthetic_corpus)] * 2
    assert len(report["folds"]) == 3
    fold = json.load(open(tmp_path / "probe" / f"fold_{synthetic_corpus.speakers[0]}.json"))
    assert 0 <= fold["ua"] <= 1 and fold["history"]["probe"]["C"] > 0
    assert fold["feature_config"] == MelFramesConfig().to_dict()
    assert fold["config"]["backbone"] == "speaker_encoder"


def test_encoder_configs_are_checked():
    from keras_ser.training.config import TrainConfig

    with pytest.raises(ValueError, match="'probe' recipe fits encoder_stats with validation='none'"):
        TrainConfig(model="encoder_stats", recipe="probe", validation="next")
    with pytest.raises(ValueError, match="trains with a recipe in"):
        TrainConfig(model="encoder_sru", recipe="end_to_end")
    with pytest.raises(ValueError, match="The 'probe' recipe trains encoder_stats, sfx_stats, fusion_stats"):
        TrainConfig(model="cnn_sru", recipe="probe")
    assert TrainConfig(model="encoder_sru", recipe="frozen").sru_units == 256
    assert TrainConfig().backbone == "alexnet" and TrainConfig().sru_units == 4096


# --------------------------------------------------------------------------
# Export: the SavedModel computes the Mel frames in-graph
# --------------------------------------------------------------------------


def test_exported_encoder_model_matches_predict(tmp_path, emodb_dir):
    import saved_models
    from conftest import wav_bytes

    keras.utils.set_random_seed(3)
    model = keras_ser.build_model("encoder_stats", num_classes=4, class_names=list("WATF"))
    rng = np.random.default_rng(0)
    keras_ser.set_channel_stats(model, rng.normal(size=1536) * 0.05, rng.uniform(0.05, 0.2, size=1536))
    model.get_layer("predictions").kernel.assign(rng.normal(size=(1536, 4)).astype("float32") * 0.05)
    paths = [os.path.join(emodb_dir, name) for name in FILES[:3]]
    path = saved_models.export(model, str(tmp_path), "ser")
    with open(os.path.join(path, "assets.extra", "keras_ser.json")) as handle:
        metadata = __import__("json").load(handle)
    assert metadata["input_layout"] == "mel_frames" and metadata["image_size"] is None
    loaded = tf.saved_model.load(path)
    waves = [np.asarray(tf_pipeline.load_audio(p)) for p in paths]
    expected = np.concatenate([model.predict(mel_power.mel_frames(w).numpy()[None], verbose=0) for w in waves])
    wav = loaded.signatures["serve_wav"](audio_bytes=tf.constant([open(p, "rb").read() for p in paths]))
    np.testing.assert_allclose(wav["probabilities"].numpy(), expected, atol=1e-5)
    batch = np.zeros((3, max(len(w) for w in waves)), np.float32)
    for row, w in enumerate(waves):
        batch[row, : len(w)] = w
    default = loaded.signatures["serving_default"](waveform=tf.constant(batch),
                                                   num_samples=tf.constant([len(w) for w in waves], tf.int32))
    np.testing.assert_allclose(default["probabilities"].numpy(), expected, atol=1e-5)
    assert [c.decode() for c in default["class_name"].numpy()] == [model.class_names[i] for i in expected.argmax(1)]
    # Digital silence is refused with a message that says so; the next request is served.
    with pytest.raises(tf.errors.InvalidArgumentError, match="is silent"):
        loaded.signatures["serve_wav"](audio_bytes=tf.constant([wav_bytes(np.zeros(16000))]))
    again = loaded.signatures["serve_wav"](audio_bytes=tf.constant([open(paths[0], "rb").read()]))
    np.testing.assert_allclose(again["probabilities"].numpy(), expected[:1], atol=1e-5)


def test_probe_then_fine_tune_trains_the_top_lstm_from_the_regression(synthetic_corpus):
    from keras_ser.training import recipes
    from keras_ser.training.config import TrainConfig
    from keras_ser.training.loso import feature_config_for
    from keras_ser.training.loso import fold_test_probabilities
    from keras_ser.training.loso import make_fold_data
    from keras_ser.training.report import protocol_text
    from tf_pipeline.folds import loso_folds

    config = TrainConfig(model="encoder_stats", recipe="probe", fine_tune=1, epochs=1, batch_size=12,
                         learning_rate=1e-3)
    feature_config = feature_config_for(config)
    data = make_fold_data(synthetic_corpus, loso_folds(synthetic_corpus, validation="none")[0], config,
                          feature_config)
    result = recipes.train(config, data, feature_config=feature_config, verbose=0)
    model = result.model
    assert result.epochs_run == {"probe": 1, "fine_tune": 1} and len(result.history["fine_tune"]["loss"]) == 1
    pretrained = keras_ser.build_model("encoder_stats", num_classes=len(synthetic_corpus.class_names)).encoder
    for name, changed in (("lstm_1", False), ("lstm_2", False), ("lstm_3", True)):
        moved = max(float(np.abs(a - b).max()) for a, b in zip(model.encoder.get_layer(name).get_weights(),
                                                                pretrained.get_layer(name).get_weights()))
        assert (moved > 0) == changed, (name, moved)
    # The test pass runs the fine-tuned encoder: the cached (frozen) pooled features would no longer match it.
    probabilities = fold_test_probabilities(config, data, model)
    np.testing.assert_allclose(probabilities, model.predict(data.dataset("test", training=False), verbose=0),
                               atol=1e-5)
    cached = np.asarray(model.head_model()(data.pooled_features("test"), training=False))
    assert np.abs(cached - probabilities).max() > 1e-4
    text = protocol_text(config.to_dict(), feature_config.to_dict())
    assert "offline weights, top 1 fine-tuned after the probe)" in text
    assert "then the encoder's top 1 LSTM layer and the head trained from the regression's weights" in text


def test_fine_tune_configs_are_checked():
    from keras_ser.training.config import TrainConfig

    with pytest.raises(ValueError, match=r"fine_tune trains the top LSTM layers of encoder_stats after the 'probe' "
                                         r"recipe's regression. Received: model='fusion_stats'"):
        TrainConfig(model="fusion_stats", recipe="probe", fine_tune=1)
    with pytest.raises(ValueError, match="recipe='frozen', fine_tune=2"):
        TrainConfig(model="encoder_stats", recipe="frozen", fine_tune=2)
    with pytest.raises(ValueError, match="not combined with speaker_norm or speaker_subspace"):
        TrainConfig(model="encoder_stats", recipe="probe", fine_tune=1, speaker_norm=True)
    with pytest.raises(ValueError, match="fine_tune must be a non-negative integer. Received: fine_tune=-1"):
        TrainConfig(model="encoder_stats", recipe="probe", fine_tune=-1)
    assert TrainConfig(model="encoder_stats", recipe="probe", fine_tune=1).model_kwargs()["fine_tune"] == 1
