"""Speaker adaptation at inference: keras_ser.adapt, speaker_norm training, serve_speaker, --adapt_speaker."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import keras
import keras_ser
import tf_pipeline
from conftest import compiled_call
from keras_ser import adaptation

# Five utterances of speaker 03 (different emotions).
FILES = ["03a01Fa.wav", "03a01Nc.wav", "03a01Wa.wav", "03a02Fc.wav", "03a02Nc.wav"]


@pytest.fixture(scope="module")
def paths(emodb_dir):
    found = [os.path.join(emodb_dir, name) for name in FILES if os.path.exists(os.path.join(emodb_dir, name))]
    if len(found) < 5:
        found = sorted(os.path.join(emodb_dir, n) for n in os.listdir(emodb_dir) if n.startswith("03"))[:5]
    return found


@pytest.fixture(scope="module")
def waveforms(paths):
    return [np.asarray(tf_pipeline.load_audio(p)) for p in paths]


@pytest.fixture(scope="module")
def adaptable():
    """encoder_stats (pretrained encoder) with a random probe written as speaker-normalised."""
    keras.utils.set_random_seed(5)
    model = keras_ser.build_model("encoder_stats", num_classes=4, class_names=list("WATF"), compile=False)
    rng = np.random.default_rng(0)
    probe = {"mean": rng.normal(size=1536) * 0.1, "variance": rng.uniform(0.5, 2.0, size=1536),
             "kernel": (rng.normal(size=(1536, 4)) * 0.1).astype("float32"), "bias": np.zeros(4, "float32")}
    prior = rng.uniform(0.5, 2.0, size=1536) * 1e-3
    adaptation.set_speaker_normalized_probe(model, probe, prior)
    return model


def manual(model, waveforms, prior_weight=adaptation.DEFAULT_PRIOR_WEIGHT):
    """Softmax of the folded head on the features standardised with the utterances' own (shrunk) statistics."""
    features = adaptation.pooled_features(model, waveforms).astype(np.float64)
    prior = np.asarray(model.get_layer("standardize").variance, np.float64)
    n = len(waveforms)
    variance = (n * features.var(0) + prior_weight * prior) / (n - 1 + prior_weight)
    z = (features - features.mean(0)) / np.sqrt(variance)
    logits = z @ np.asarray(model.get_layer("predictions").kernel) + np.asarray(model.get_layer("predictions").bias)
    logits -= logits.max(1, keepdims=True)
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


def predict_each(model, waveforms):
    """The model on each waveform alone."""
    call = compiled_call(model)
    return np.concatenate([np.asarray(call(model.preprocessor(w))) for w in waveforms])


def test_adapt_equals_manual_standardisation_and_changes_predictions(adaptable, waveforms):
    before = [w.copy() for w in adaptable.get_weights()]
    adapted = keras_ser.adapt(adaptable, waveforms)
    for old, new in zip(before, adaptable.get_weights()):  # the original is untouched
        np.testing.assert_array_equal(old, new)
    assert adaptation.is_speaker_normalized(adaptable) and not adaptation.is_speaker_normalized(adapted)
    got = predict_each(adapted, waveforms)
    np.testing.assert_allclose(got, manual(adaptable, waveforms), atol=1e-5)
    assert np.abs(got - predict_each(adaptable, waveforms)).max() > 1e-3
    mean, variance = adaptation.speaker_statistics(adaptable, waveforms)
    np.testing.assert_allclose(np.asarray(adapted.get_layer("standardize").mean), mean, rtol=1e-6)
    # One utterance: centring only (the variance is the prior's).
    one = keras_ser.adapt(adaptable, waveforms[:1])
    np.testing.assert_allclose(np.asarray(one.get_layer("standardize").variance),
                               np.asarray(adaptable.get_layer("standardize").variance), rtol=1e-6)
    with pytest.raises(ValueError, match="at least 3 utterance"):
        keras_ser.adapt(adaptable, waveforms[:2], min_utterances=3)


def test_shrinkage_formula():
    features = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
    mean, variance = adaptation.shrink_statistics(features, np.array([1.0, 2.0]), prior_weight=3)
    np.testing.assert_allclose(mean, [2.0, 4.0])
    np.testing.assert_allclose(variance, (3 * features.var(0) + 3 * np.array([1.0, 2.0])) / 5)
    np.testing.assert_allclose(adaptation.shrink_statistics(features, np.ones(2), 0)[1], features.var(0, ddof=1))
    with pytest.raises(ValueError, match="one utterance"):
        adaptation.shrink_statistics(features[:1], np.ones(2), 0)


def test_models_without_speaker_normalisation_are_refused(waveforms):
    model = keras_ser.build_model("encoder_stats", num_classes=3, compile=False)
    with pytest.raises(ValueError, match="not trained with per-speaker normalisation"):
        keras_ser.adapt(model, waveforms[:2])  # untrained: identity
    rng = np.random.default_rng(1)
    keras_ser.set_channel_stats(model, rng.normal(size=1536) * 0.05, rng.uniform(0.05, 0.2, size=1536))
    with pytest.raises(ValueError, match="not trained with per-speaker normalisation"):
        keras_ser.adapt(model, waveforms[:2])  # global statistics
    with pytest.raises(ValueError, match="speech-encoder entries"):
        keras_ser.adapt(keras_ser.build_model("sru", num_classes=3, compile=False), waveforms[:2])


def test_speaker_norm_training_of_the_encoder_entries(synthetic_corpus):
    from tf_pipeline.folds import Fold

    from keras_ser.training import recipes
    from keras_ser.training.config import TrainConfig
    from keras_ser.training.loso import make_encoder_fold_data
    from keras_ser.models.speech_encoders.config import MelFramesConfig

    config = TrainConfig(model="encoder_stats", recipe="probe", batch_size=8, speaker_norm=True)
    ids = synthetic_corpus.speaker_ids
    test = synthetic_corpus.speakers[0]
    fold = Fold(test, np.flatnonzero(ids != test), np.flatnonzero(ids == test))
    data = make_encoder_fold_data(synthetic_corpus, fold, config, MelFramesConfig())
    for part in ("train", "test"):
        z = data.features(part)
        for speaker in set(data.speakers[part]):
            rows = z[data.speakers[part] == speaker]
            np.testing.assert_allclose(rows.mean(0), 0, atol=1e-4)
            assert np.all((rows.var(0) < 1.001) & ((rows.var(0) > 0.999) | (rows.var(0) < 1e-6)))
    result = recipes.train(config, data, MelFramesConfig(), verbose=0)
    standardize = result.model.get_layer("standardize")
    np.testing.assert_allclose(np.asarray(standardize.mean), data.channel_stats[0], rtol=1e-6)
    # The fold's model is the test speaker's adapted model: on raw frames it equals the folded probe on z.
    frames = next(iter(data.dataset("test", training=False)))[0]
    probabilities = np.asarray(compiled_call(result.model)(frames))
    predictions = result.model.get_layer("predictions")
    expected = np.asarray(predictions(data.features("test")[: len(probabilities)]))
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)


def test_serve_speaker_signature_equals_adapt(adaptable, paths, waveforms, tmp_path):
    import saved_models

    global_model = keras_ser.build_model("encoder_stats", num_classes=3, compile=False)
    assert "serve_speaker" not in saved_models.serving_functions(global_model)
    path = saved_models.export(adaptable, str(tmp_path), "ser")
    with open(os.path.join(path, "assets.extra", "keras_ser.json")) as handle:
        metadata = json.load(handle)
    assert metadata["speaker_normalized"] and "serve_speaker" in metadata["signatures"]
    loaded = tf.saved_model.load(path)
    audio = tf.constant([open(p, "rb").read() for p in paths])
    out = loaded.signatures["serve_speaker"](audio_bytes=audio)
    expected = predict_each(keras_ser.adapt(adaptable, waveforms), waveforms)
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    assert [c.decode() for c in out["class_name"].numpy()] == [adaptable.class_names[i] for i in expected.argmax(1)]
    assert out["classes"].shape == (5, 4)
    one = loaded.signatures["serve_speaker"](audio_bytes=audio[:1])
    np.testing.assert_allclose(one["probabilities"].numpy(),
                               predict_each(keras_ser.adapt(adaptable, waveforms[:1]), waveforms[:1]), atol=1e-5)
    # The stored-statistics signatures are unchanged.
    wav = loaded.signatures["serve_wav"](audio_bytes=audio[:2])
    np.testing.assert_allclose(wav["probabilities"].numpy(), predict_each(adaptable, waveforms[:2]), atol=1e-5)


def test_cli_adapt_speaker(adaptable, paths, waveforms, tmp_path, capsys):
    from keras_ser_cli.main import run as entry

    saved = str(tmp_path / "speaker_norm.keras")
    adaptable.save(saved)
    capsys.readouterr()
    assert entry(["keras-ser", "predict", "--adapt_speaker", f"--model={saved}", "--json"] + paths) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["adapt_speaker"]["files"] == 5
    expected = predict_each(keras_ser.adapt(adaptable, waveforms), waveforms)
    got = np.array([[r["probabilities"][c] for c in adaptable.class_names] for r in out["results"]])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert entry(["keras-ser", "predict", "--adapt_speaker", f"--model={saved}"] + paths[:3]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith(
        "speaker adaptation: the predictions use the statistics of these 3 file(s)")
    # A model trained without per-speaker normalisation: a usage error (exit 2).
    global_path = str(tmp_path / "global.keras")
    model = keras_ser.build_model("encoder_stats", num_classes=3, compile=False)
    keras_ser.set_channel_stats(model, np.full(1536, 0.1), np.full(1536, 0.2))
    model.save(global_path)
    assert entry(["keras-ser", "predict", "--adapt_speaker", f"--model={global_path}"] + paths[:2]) == 2
    assert "per-speaker normalisation" in capsys.readouterr().err
    assert entry(["keras-ser", "predict", "--adapt_speaker", "--preset=encoder_stats_emodb"] + paths[:2]) == 2


def test_a_final_model_trained_with_speaker_norm_is_adaptable(synthetic_corpus):
    from keras_ser.adaptation import adapt
    from keras_ser.training.config import TrainConfig
    from keras_ser.training.final import train_final

    config = TrainConfig(model="encoder_stats", recipe="probe", batch_size=8, speaker_norm=True)
    model = train_final(synthetic_corpus, config, verbose=0).model
    speaker = synthetic_corpus.speakers[0]
    rows = np.flatnonzero(synthetic_corpus.speaker_ids == speaker)[:5]
    waves = [np.asarray(tf_pipeline.load_audio(synthetic_corpus.records[i].path)) for i in rows]
    adapted = adapt(model, waves)
    assert not np.allclose(np.asarray(adapted.get_layer("standardize").mean), 0)
    with pytest.raises(ValueError, match="a final CNN or SRU model for serving cannot use it"):
        train_final(synthetic_corpus, TrainConfig(model="sru", sru_units=8, epochs=1, speaker_norm=True), verbose=0)
