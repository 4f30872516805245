"""keras_ser.training.channel_copies and `TrainConfig.channel_copies`: training utterances heard through another
channel, their features extracted once and cached apart, trained on and never scored."""

import json
import os

import numpy as np
import pytest

from keras_ser.training import channel_copies
from keras_ser.training.config import TrainConfig


def test_equaliser_gains_stay_within_six_db_and_follow_the_drawn_curve():
    rng = np.random.default_rng(3)
    waveform = rng.standard_normal(16000)
    out = channel_copies.equalised(waveform, np.random.default_rng(7))
    assert out.shape == waveform.shape
    gain_db = 20 * np.log10(np.abs(np.fft.rfft(out)) / np.abs(np.fft.rfft(waveform)))
    assert gain_db.max() <= 6.0 + 1e-6 and gain_db.min() >= -6.0 - 1e-6 and np.ptp(gain_db) > 1.0
    # The same draws give the same copy; the gain at 1 kHz is the fourth value drawn.
    np.testing.assert_allclose(channel_copies.equalised(waveform, np.random.default_rng(7)), out)
    expected = np.random.default_rng(7).uniform(-6.0, 6.0, 6)[3]
    assert gain_db[1000] == pytest.approx(expected, abs=1e-6)  # 1 Hz per bin over one second


def test_synthetic_room_keeps_the_direct_path_and_adds_a_decaying_tail():
    import scipy.signal

    click = np.zeros(16000)
    click[100] = 1.0
    out = channel_copies.reverberated(click, np.random.default_rng(0))
    assert out.shape == click.shape
    assert out[100] == pytest.approx(1.0) and np.allclose(out[:100], 0.0)
    assert np.allclose(out[101:132], 0.0)  # nothing within 2 ms of the direct path
    early, late = np.sum(out[132:2132] ** 2), np.sum(out[8000:10000] ** 2)
    assert 0 < late < early  # the tail decays
    reverberant = np.sum(out[101:] ** 2)
    assert 10 ** (-10 / 10) - 1e-9 <= reverberant <= 1.0 + 1e-9  # direct-to-reverberant ratio in [0, 10] dB
    # The convolution is scipy's, cut to the input's length.
    speech = np.random.default_rng(1).standard_normal(5000)
    response = channel_copies.room_response(np.random.default_rng(2))
    np.testing.assert_allclose(channel_copies.reverberated(speech, np.random.default_rng(2)),
                               scipy.signal.fftconvolve(speech, response)[:5000], atol=1e-9)


def test_background_noise_has_the_drawn_level_and_colour():
    waveform = np.sin(np.arange(64000) * 0.05)
    for seed in range(4):
        draws = np.random.default_rng(seed)  # the first two draws, as noisy makes them
        slope = draws.uniform(*channel_copies.NOISE_SLOPE_DB_PER_OCTAVE)
        snr = draws.uniform(*channel_copies.NOISE_SNR_DB)
        noise = channel_copies.noisy(waveform, np.random.default_rng(seed)) - waveform
        assert 10 * np.log10(np.mean(waveform**2) / np.mean(noise**2)) == pytest.approx(snr, abs=1e-6)
        power = np.abs(np.fft.rfft(noise)) ** 2
        hz = np.fft.rfftfreq(len(noise), 1 / 16000)
        low, high = (power[(hz >= f) & (hz < 2 * f)].mean() for f in (250.0, 2000.0))  # three octaves apart
        assert 10 * np.log10(high / low) / 3 == pytest.approx(slope, abs=0.5)


def test_a_copy_is_drawn_from_its_samples_and_draw_and_stays_below_full_scale():
    rng = np.random.default_rng(0)
    first, second = (0.9 * rng.uniform(-1, 1, 8000)).astype(np.float32), (0.3 * rng.standard_normal(8000))
    for kind in channel_copies.CHANNEL_KINDS:
        copy = channel_copies.heard_through(first, kind, 0)
        assert copy.dtype == np.float32 and copy.shape == first.shape
        assert np.max(np.abs(copy)) <= channel_copies.MAX_PEAK + 1e-6
        assert not np.allclose(copy, first, atol=1e-3)
        # The same utterance and draw: the same copy, whatever was copied before it.
        channel_copies.heard_through(second, kind, 0)
        np.testing.assert_array_equal(channel_copies.heard_through(first, kind, 0), copy)
        assert not np.allclose(channel_copies.heard_through(first, kind, 1), copy, atol=1e-3)
    with pytest.raises(ValueError, match=r"distinct kinds of \('eq', 'reverb', 'noise'\). "
                                         r"Received: channel_copies=\('room',\)"):
        channel_copies.heard_through(first, "room", 0)


def test_kinds_and_draws_are_checked_in_the_train_config():
    config = TrainConfig(model="encoder_stats", recipe="probe", channel_copies="eq, reverb", channel_draws=2)
    assert config.channel_copies == ("eq", "reverb")
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config
    assert "2 draws of a random equaliser and a synthetic room" in config.levers()[0]
    from keras_ser.training.report import protocol_text

    assert "channel copies: 2 draws of a random equaliser and a synthetic room per training utterance (4 copies), " \
           "their features trained on with the utterance's label and never scored" in protocol_text(config.to_dict())
    assert channel_copies.copy_keys(config.channel_copies, 2) == (("eq", 0), ("reverb", 0), ("eq", 1), ("reverb", 1))
    with pytest.raises(ValueError, match="distinct kinds"):
        TrainConfig(model="encoder_stats", recipe="probe", channel_copies=("eq", "eq"))
    with pytest.raises(ValueError, match="channel_draws must be a positive integer. Received: channel_draws=0"):
        TrainConfig(model="encoder_stats", recipe="probe", channel_copies=("eq",), channel_draws=0)
    with pytest.raises(ValueError, match="recipe='end_to_end'"):
        TrainConfig(model="cnn_sru", channel_copies=("eq",))
    with pytest.raises(ValueError, match="speaker_subspace=4"):
        TrainConfig(model="encoder_stats", recipe="probe", channel_copies=("eq",), speaker_subspace=4)


def test_copies_train_the_probe_beside_the_utterances_through_the_runner(synthetic_corpus, tmp_path):
    """One LOSO fold with an equaliser copy of every utterance: the copies' features are those of the copied
    audio, extracted once into a store of their own, and the probe trains on twice the rows and scores only the
    utterances."""
    import tf_pipeline
    from keras_ser.training import frozen
    from keras_ser.training.fitting import build_model_for_config
    from keras_ser.training.loso import feature_config_for
    from keras_ser.training.loso import make_fold_data
    from keras_ser.training.loso import run_loso

    cache_dir = str(tmp_path / "cache")
    config = TrainConfig(model="encoder_stats", recipe="probe", batch_size=8, channel_copies=("eq",))
    feature_config = feature_config_for(config, None)
    speaker = synthetic_corpus.speakers[0]
    saved = frozen._FEATURES
    frozen._FEATURES = {}
    try:
        run_loso(synthetic_corpus, config, str(tmp_path / "run"), speakers=[speaker], feature_cache=cache_dir,
                 verbose=0, tensorboard=False)
        stores = sorted(os.listdir(cache_dir))
        own = frozen.corpus_features(synthetic_corpus, config, feature_config, cache_dir=cache_dir)
        copied = frozen.corpus_features(synthetic_corpus, config, feature_config, cache_dir=cache_dir,
                                        channel=("eq", 0))
        fold = next(f for f in tf_pipeline.folds.loso_folds(synthetic_corpus) if f.test_speaker == speaker)
        data = make_fold_data(synthetic_corpus, fold, config, feature_config, cache_dir=cache_dir)
        features, labels, groups, scored = frozen.training_rows(data)
    finally:
        frozen._FEATURES = saved
    assert stores == sorted([os.path.basename(frozen.store_path(cache_dir, config, feature_config)),
                             os.path.basename(frozen.store_path(cache_dir, config, feature_config, ("eq", 0)))])
    # The copies' features are the model's features of the copied audio, and differ from the utterances'.
    model = build_model_for_config(config, list(synthetic_corpus.class_names), feature_config)
    waveform = np.asarray(tf_pipeline.load_audio(synthetic_corpus.records[0].path))
    heard = channel_copies.heard_through(waveform, "eq", 0)
    expected = frozen.features_function(model)(heard[None], np.array([len(heard)], np.int32))[0]
    np.testing.assert_allclose(copied[0], expected, rtol=1e-4, atol=1e-4)
    assert not np.allclose(copied, own, atol=1e-3)
    # The training rows: the fold's utterances, then their copies with the same labels and groups.
    train = len(data.labels["train"])
    assert features.shape == (2 * train, own.shape[1]) and scored.sum() == train and scored[:train].all()
    np.testing.assert_array_equal(labels, np.tile(data.labels["train"], 2))
    np.testing.assert_array_equal(groups, np.tile(data.groups["train"], 2))
    stored = json.load(open(tmp_path / "run" / f"fold_{speaker}.json"))
    assert stored["config"]["channel_copies"] == ["eq"] and 0 <= stored["ua"] <= 1


def test_the_frozen_recipe_trains_its_head_on_the_copies_too():
    """`frozen` (the head fitted with Adam): the standardisation is fitted on the utterances and their copies,
    and one epoch sees both (its steps count them)."""
    import keras

    from keras_ser.training import frozen
    from keras_ser.training.fitting import FoldData

    rng = np.random.default_rng(0)
    n, dim = 24, 48
    own = rng.normal(size=(n, dim)).astype(np.float32)
    copies = [own + 5.0 + rng.normal(size=own.shape).astype(np.float32)]
    labels = {"train": np.tile([0, 1, 2], n // 3), "validation": np.zeros(0, np.int64)}
    speakers = {"train": np.repeat(["a", "b", "c"], n // 3)}
    data = FoldData(None, labels, ["x", "y", "z"], None, features=lambda part: own, speakers=speakers,
                    copy_features=lambda part: copies)
    config = TrainConfig(model="encoder_stats", recipe="frozen", epochs=1, batch_size=8, channel_copies=("eq",),
                         backbone_weights="random", backbone_kwargs={"units": 8, "embedding_dim": 4})
    steps = []
    callback = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: steps.append(batch))
    fit = keras.Model.fit

    def counting_fit(self, *args, **kwargs):
        return fit(self, *args, **{**kwargs, "callbacks": [*kwargs.get("callbacks", []), callback]})

    keras.Model.fit = counting_fit
    try:
        result = frozen.train_frozen(config, data, verbose=0)
    finally:
        keras.Model.fit = fit
    both = np.concatenate([own, *copies])
    np.testing.assert_allclose(result.model.get_layer("standardize").mean.numpy(), both.mean(axis=0), atol=1e-5)
    assert len(steps) == 2 * n // 8  # 48 rows in batches of 8


def test_train_command_keeps_the_copies_features_in_its_feature_cache(tmp_path, capsys):
    """`keras-ser train --channel_copies=eq --feature_cache=DIR`: the final model is trained (saved, loadable) and
    the features of the files and of their copies are stored for the next run."""
    import keras

    from keras_ser.training import frozen
    from keras_ser_cli.main import run

    cache, output = tmp_path / "cache", tmp_path / "final.keras"
    saved = frozen._FEATURES
    frozen._FEATURES = {}
    try:
        code = run(["keras-ser", "train", "--corpus=synthetic", f"--data_dir={tmp_path / 'corpus'}",
                    "--synthetic_speakers=2", "--synthetic_per_class=3", "--synthetic_emotions=WTN",
                    "--model=encoder_stats", "--recipe=probe", "--channel_copies=eq", f"--feature_cache={cache}",
                    f"--output={output}", "--verbose=0", "--batch_size=8"])
    finally:
        frozen._FEATURES = saved
    assert code == 0, capsys.readouterr().err[-2000:]
    stores = sorted(os.listdir(cache))
    assert len(stores) == 2 and all(name.startswith("encoder_features_") for name in stores)
    for name in stores:
        with np.load(cache / name) as store:
            assert store["features"].shape == (18, 1536)
    model = keras.saving.load_model(str(output))
    assert model.class_names and model.get_layer("predictions").kernel.shape == (1536, 3)


def test_with_speaker_norm_each_speakers_copies_are_standardised_in_their_own_channel(synthetic_corpus):
    """`speaker_norm` with copies: a training speaker's copies of one kind and draw have mean 0 and variance 1 over
    that speaker (their own statistics, not those of the speaker's own recordings)."""
    import keras

    import tf_pipeline
    from keras_ser.training import frozen
    from keras_ser.training.loso import feature_config_for
    from keras_ser.training.loso import make_fold_data

    config = TrainConfig(model="encoder_stats", recipe="probe", speaker_norm=True, channel_copies=("reverb",),
                         backbone_weights="random", backbone_kwargs={"units": 8, "embedding_dim": 4})
    fold = tf_pipeline.folds.loso_folds(synthetic_corpus)[0]
    saved = frozen._FEATURES
    frozen._FEATURES = {}
    try:
        keras.utils.set_random_seed(0)
        data = make_fold_data(synthetic_corpus, fold, config, feature_config_for(config, None))
        (copy,) = data.copy_features("train")
        features, labels, groups, scored = frozen.training_rows(data)
    finally:
        frozen._FEATURES = saved
    speakers = data.speakers["train"]
    for speaker in set(speakers):
        rows = copy[speakers == speaker]
        np.testing.assert_allclose(rows.mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(rows.var(axis=0)[rows.var(axis=0) > 1e-3], 1.0, atol=1e-3)
    assert features.shape[0] == 2 * len(speakers) and scored.sum() == len(speakers)
