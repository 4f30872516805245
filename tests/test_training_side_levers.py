"""experiments/training_side_levers.py: speed-perturbed and channel copies, speech-only pooling, balanced weights,
functionals."""

import dataclasses
import os

import numpy as np
import pytest

from conftest import experiment_script


@pytest.fixture(scope="module")
def levers():
    with experiment_script("training_side_levers") as module:
        yield module


def _part(rng, shift, n_per_class=8, perturbed=0):
    """`(features, labels, original)` of one small corpus over the six emotions, with `perturbed` noisy copies."""
    classes = ["anger", "happiness", "sadness", "neutral", "fear", "disgust"]
    labels = np.repeat(np.array(classes), n_per_class)
    base = (np.eye(6, 10) * 3.0)[[classes.index(v) for v in labels]]
    copies = [base + shift + rng.normal(size=base.shape) for _ in range(1 + perturbed)]
    return (np.concatenate(copies).astype(np.float32), np.tile(labels, 1 + perturbed),
            np.concatenate([np.full(len(labels), i == 0) for i in range(1 + perturbed)]))


def test_inner_choice_scores_original_rows_of_the_training_corpora_only(levers):
    rng = np.random.default_rng(0)
    train = {"a": _part(rng, 0.0, perturbed=1), "b": _part(rng, 0.5, perturbed=1)}
    test_x, test_y, _ = _part(rng, 1.0)
    fold = levers.loco_probe(train, (test_x, test_y))
    assert fold["n_train"] == 2 * 2 * 48 and fold["n_test"] == 32
    assert set(fold["recall"]) == set(levers.FOUR)
    assert fold["ua"] > 0.5  # separable classes
    # The test corpus's labels shuffled: the inner choice is the same, the test score moves.
    shuffled = levers.loco_probe(train, (test_x, rng.permutation(test_y)))
    assert shuffled["C"] == fold["C"] and shuffled["inner_ua"] == fold["inner_ua"]
    assert shuffled["ua"] != fold["ua"]
    # The perturbed copies' labels scrambled: they are trained on, but each inner fold scores only the
    # held-out corpus's original rows, as recomputed here.
    noisy = {n: (x, np.where(original, y, np.roll(y, 7)), original) for n, (x, y, original) in train.items()}
    inner = levers.loco_probe(noisy, (test_x, test_y))["inner_ua"]
    c = levers.C_GRID[0]
    expected = []
    for held, rest in (("a", "b"), ("b", "a")):
        fitted = levers.fit_regression(noisy[rest][0], noisy[rest][1], c, None)
        x, y, original = noisy[held]
        predicted = levers.predict_among(fitted, x[original], levers.SIX)
        expected.append(np.mean([np.mean(predicted[y[original] == k] == k) for k in levers.SIX]))
    assert inner[str(c)] == pytest.approx(np.mean(expected), abs=1e-4)


def test_balanced_weights(levers):
    labels = np.array(["anger"] * 6 + ["sadness"] * 2)
    corpora = np.array(["a"] * 4 + ["b"] * 4)
    assert levers.balanced_weights(labels, corpora, "none") is None
    weights = levers.balanced_weights(labels, corpora, "class")
    assert np.isclose(weights.sum(), 8)
    assert np.isclose(weights[labels == "anger"].sum(), weights[labels == "sadness"].sum())
    weights = levers.balanced_weights(labels, corpora, "corpus_class")
    groups = {(c, l): weights[(corpora == c) & (labels == l)].sum() for c, l in zip(corpora, labels)}
    assert len(groups) == 3 and np.allclose(list(groups.values()), 8 / 3)


def test_speed_perturbed_copies_play_faster_and_higher(levers, tmp_path):
    import soundfile

    from tf_pipeline import corpora

    rate, seconds = 16000, 1.0
    t = np.arange(int(rate * seconds)) / rate
    path = tmp_path / "src" / "tone.wav"
    path.parent.mkdir()
    soundfile.write(path, 0.5 * np.sin(2 * np.pi * 200 * t), rate, subtype="PCM_16")
    corpus = corpora.Corpus("toy", (corpora.Record(str(path), 0, "s1"),), ("anger",))
    for factor, expected_hz in ((1.1, 220.0), (0.9, 180.0)):
        copy = levers.speed_perturbed(corpus, factor, str(tmp_path / "out"))
        assert copy.records[0].path != str(path) and copy.records[0].label == 0 and copy.records[0].speaker == "s1"
        waveform, copy_rate = soundfile.read(copy.records[0].path)
        assert copy_rate == rate and abs(len(waveform) - len(t) / factor) <= 2
        spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
        assert abs(np.argmax(spectrum) * rate / len(waveform) - expected_hz) < 3
        # Written once: a second call keeps the file.
        before = os.path.getmtime(copy.records[0].path)
        assert levers.speed_perturbed(corpus, factor, str(tmp_path / "out")).records[0].path == copy.records[0].path
        assert os.path.getmtime(copy.records[0].path) == before


def test_channel_copies_are_drawn_per_file_and_written_once(levers, tmp_path):
    import soundfile

    from tf_pipeline import corpora

    rng = np.random.default_rng(0)
    records = []
    for index in range(3):
        path = tmp_path / "src" / f"u{index}.wav"
        path.parent.mkdir(exist_ok=True)
        soundfile.write(path, 0.3 * rng.standard_normal(8000), 16000, subtype="PCM_16")
        records.append(corpora.Record(str(path), index % 2, f"s{index}"))
    corpus = corpora.Corpus("toy", tuple(records), ("anger", "sadness"))
    for kind in levers.CHANNEL_KINDS:
        copy = levers.channel_copy(corpus, kind, 0, str(tmp_path / "out"))
        assert [(r.label, r.speaker) for r in copy.records] == [(r.label, r.speaker) for r in records]
        written = [soundfile.read(r.path)[0] for r in copy.records]
        originals = [soundfile.read(r.path)[0] for r in records]
        assert all(len(w) == len(o) and np.max(np.abs(w)) <= 0.99 + 1e-4 for w, o in zip(written, originals))
        assert all(not np.allclose(w, o, atol=1e-3) for w, o in zip(written, originals))
        # A file's draw does not depend on the files written before it: the corpus written again in reverse
        # order (into another folder) gives every file the same copy.
        reverse = dataclasses.replace(corpus, records=tuple(reversed(records)))
        again = levers.channel_copy(reverse, kind, 0, str(tmp_path / "out_reverse"))
        for record, first in zip(reversed(again.records), written):
            np.testing.assert_allclose(soundfile.read(record.path)[0], first, atol=1e-4)
        other_seed = levers.channel_copy(corpus, kind, 1, str(tmp_path / "out"))
        assert not np.allclose(soundfile.read(other_seed.records[2].path)[0], written[2], atol=1e-3)


def test_channel_grid_trains_on_the_copies_and_scores_the_original_test_files(levers, monkeypatch, tmp_path):
    """The grid's bookkeeping, with the GE2E extraction and the written copies replaced by stand-ins (both are
    tested on their own): every lever for every test corpus, the copies in training only, the choice per seed."""
    from keras_ser.training import frozen
    from tf_pipeline import corpora

    six = ["anger", "happiness", "sadness", "neutral", "fear", "disgust"]
    native = {"emodb": six, "ravdess": ["angry", "happy", "sad", "neutral", "fearful", "disgust"],
              "emovo": ["anger", "joy", "sadness", "neutral", "fear", "disgust"]}
    built = {}
    for name, classes in native.items():
        records = tuple(corpora.Record(f"/{name}/s{k % 3}_{k}.wav", k % 6, f"s{k % 3}") for k in range(36))
        built[name] = corpora.Corpus(name, records, tuple(classes))
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 12)) * 3.0
    extracted = []

    def fake_features(corpus, config, feature_config, cache_dir=None):
        extracted.append(corpus.records[0].path)
        noise = np.random.default_rng(len(extracted)).normal(size=(len(corpus.records), 12))
        return (centres[[r.label for r in corpus.records]] + noise).astype(np.float32)

    def fake_copy(corpus, kind, seed, out_dir, sample_rate=16000):
        return dataclasses.replace(corpus, records=tuple(
            dataclasses.replace(r, path=f"{out_dir}/{kind}_seed{seed}{r.path}") for r in corpus.records))

    monkeypatch.setattr(frozen, "corpus_features", fake_features)
    monkeypatch.setattr(levers, "channel_copy", fake_copy)
    monkeypatch.setattr(levers, "C_GRID", (1e-2, 1e-1))  # two values of C keep the 30 folds quick
    rows = levers.loco_channel_levers(built, None, str(tmp_path), log=lambda *_: None)
    assert len(extracted) == 3 * (1 + len(levers.CHANNEL_SEEDS) * len(levers.CHANNEL_KINDS))
    suffixes = [f"seed{s}" for s in levers.CHANNEL_SEEDS] + ["all_seeds"]
    expected = {"baseline"} | {f"{v}_{suffix}" for suffix in suffixes for v in ("eq", "reverb", "eq+reverb", "chosen")}
    assert set(rows) == expected
    for lever, folds in rows.items():
        assert set(folds) == set(native)
        per_kind = len(levers.CHANNEL_SEEDS) if lever.endswith("all_seeds") else 1
        copies = 0 if lever == "baseline" else per_kind * (2 if lever.startswith("eq+reverb") else 1)
        assert levers.lever_protocol(lever).startswith("leave-one-corpus-out")
        if lever != "baseline":
            assert ("draws of seed" in levers.lever_protocol(lever)) != lever.endswith("all_seeds")
        for test, fold in folds.items():
            assert fold["n_test"] == 24  # the test corpus's own files of the four shared emotions
            if not lever.startswith("chosen"):
                assert fold["n_train"] == 2 * 36 * (1 + copies), (lever, test)
                assert fold["ua"] > 0.9  # separable stand-in features
    for suffix in suffixes:
        for test in native:
            fold = rows[f"chosen_{suffix}"][test]
            candidates = ["baseline"] + [f"{v}_{suffix}" for v in ("eq", "reverb", "eq+reverb")]
            assert fold["variant"] == levers.chosen_variant({v: rows[v][test] for v in candidates})
            assert fold["ua"] == rows[fold["variant"]][test]["ua"]


def test_chosen_variant_reads_only_the_inner_ua_at_the_chosen_c(levers):
    def fold(c, inner, ua):
        return {"C": c, "inner_ua": {"0.001": inner[0], "0.01": inner[1]}, "ua": ua}

    folds = {"baseline": fold(0.001, (0.50, 0.60), 0.9), "eq_seed0": fold(0.01, (0.70, 0.55), 0.1),
             "reverb_seed0": fold(0.001, (0.58, 0.40), 0.5)}
    # eq's best inner UA (0.70) is at a C it did not choose: its 0.55 counts, and reverb's 0.58 wins.
    assert levers.chosen_variant(folds) == "reverb_seed0"
    folds["reverb_seed0"] = fold(0.001, (0.55, 0.40), 0.5)
    assert levers.chosen_variant(folds) == "eq_seed0"  # tied with reverb at 0.55: the first wins
    assert levers.chosen_variant({"baseline": folds["baseline"]}) == "baseline"


def test_speech_pooling_of_every_frame_is_the_models_pooling(levers, emodb_dir):
    from keras_ser.models.speech_encoders.config import MelFramesConfig
    from keras_ser.training.config import TrainConfig
    from keras_ser.training.frozen import extract_features
    from keras_ser.training.fitting import build_model_for_config
    from tf_pipeline import corpora
    from tf_pipeline.config import FrontEndConfig

    corpus = corpora.emodb(emodb_dir)
    corpus = dataclasses.replace(corpus, records=corpus.records[:4])
    feature_config = MelFramesConfig(front_end=FrontEndConfig())
    pooled = levers.speech_pooled_features(corpus, feature_config, (None, 20.0), batch_size=2)
    model = build_model_for_config(TrainConfig(model="encoder_stats", recipe="probe", validation="none"),
                                   list(corpus.class_names), feature_config)
    reference = extract_features(model, corpus, batch_size=4)
    np.testing.assert_allclose(pooled[None], reference, atol=1e-4)
    assert np.abs(pooled[20.0] - reference).max() > 1e-2  # fewer frames pooled: other statistics


def test_functionals_hear_the_front_ends_audio_and_are_cached(levers, emodb_dir, tmp_path):
    import soundfile

    from keras_ser.baselines.opensmile_features import extract_functionals
    from tf_pipeline import corpora
    from tf_pipeline.audio import load_audio
    from tf_pipeline.config import FrontEndConfig

    emodb = corpora.emodb(emodb_dir)
    source = emodb.records[0]
    waveform = load_audio(source.path)
    padded = np.concatenate([np.zeros(16000), 0.1 * waveform, np.zeros(16000)])  # 20 dB quieter, a second each side
    soundfile.write(tmp_path / "padded.wav", padded, 16000, subtype="FLOAT")
    corpus = corpora.Corpus("toy", (source, dataclasses.replace(source, path=str(tmp_path / "padded.wav"))),
                            emodb.class_names)
    cache = tmp_path / "cache"
    features = levers.functionals(corpus, "eGeMAPSv02", FrontEndConfig(), str(cache))
    assert features.shape == (2, 88)
    np.testing.assert_allclose(features[1], features[0], rtol=1e-4, atol=1e-3)
    raw = extract_functionals([str(tmp_path / "padded.wav")], "eGeMAPSv02").features[0]
    assert np.abs(raw - features[0]).max() > 10.0  # without the front end the copy is heard differently
    copies = sorted(os.listdir(cache / "front_end_audio" / "toy"))
    assert len(copies) == 2 and len(os.listdir(cache / "functionals")) == 1
    mtimes = [os.path.getmtime(cache / "front_end_audio" / "toy" / name) for name in copies]
    np.testing.assert_array_equal(levers.functionals(corpus, "eGeMAPSv02", FrontEndConfig(), str(cache)), features)
    assert [os.path.getmtime(cache / "front_end_audio" / "toy" / name) for name in copies] == mtimes


def test_unseen_channel_grid_trains_on_the_runners_copies_and_tests_through_a_new_draw(levers, monkeypatch,
                                                                                       tmp_path):
    """`loco_unseen_channels`' bookkeeping, the GE2E extraction replaced by stand-ins that remember which channel
    they were asked for: the copies train and are never scored, and the test corpus is heard through the unseen
    draw only in the `_test_eq` / `_test_reverb` rows (a test corpus shifted away from the training classes'
    centres there, so a row scored on the wrong features shows)."""
    from keras_ser.training import frozen
    from tf_pipeline import corpora

    native = {"emodb": list(levers.SIX), "ravdess": ["angry", "happy", "sad", "neutral", "fearful", "disgust"],
              "emovo": ["anger", "joy", "sadness", "neutral", "fear", "disgust"]}
    built = {}
    for name, classes in native.items():
        records = tuple(corpora.Record(f"/{name}/s{k % 3}_{k}.wav", k % 6, f"s{k % 3}") for k in range(36))
        built[name] = corpora.Corpus(name, records, tuple(classes))
    centres = np.random.default_rng(0).normal(size=(6, 12)) * 3.0
    asked, scored_masks = [], []

    def fake_features(corpus, config, feature_config, cache_dir=None, channel=None, **kwargs):
        asked.append((corpus.name, channel))
        rng = np.random.default_rng(len(asked))
        labels = [r.label for r in corpus.records]
        shift = 0.0
        if channel is not None and channel[1] == levers.UNSEEN_DRAW:
            shift = 40.0 if channel[0] == "reverb" else 0.0  # the unseen room moves every test row far away
        return (centres[labels] + rng.normal(size=(len(labels), 12)) + shift).astype(np.float32)

    fit_probe = frozen.fit_probe

    def recording_fit_probe(*args, scored=None, **kwargs):
        scored_masks.append(None if scored is None else np.asarray(scored).copy())
        return fit_probe(*args, scored=scored, c_grid=(0.01, 0.1), **kwargs)

    monkeypatch.setattr(frozen, "corpus_features", fake_features)
    monkeypatch.setattr(frozen, "fit_probe", recording_fit_probe)
    rows = levers.loco_unseen_channels(built, None, str(tmp_path), log=lambda *_: None, draws=2)
    kinds = ("eq", "reverb", "noise")
    assert set(rows) == {f"train_{t}_test_{c}" for t in ("plain", "copies", "copies+noise")
                         for c in ("recorded", *kinds)}
    copy_keys = {(kind, draw) for kind in kinds for draw in (0, 1)}
    unseen = {(kind, levers.UNSEEN_DRAW) for kind in kinds}
    assert {channel for _, channel in asked} == {None} | copy_keys | unseen
    assert len(asked) == len(set(asked)) == 3 * (1 + 6 + 3)  # every corpus and channel extracted once
    # Three plain probes score every row; three with copies score one row in five (the files themselves), three
    # with the noise copies too one in seven.
    assert all(mask.all() for mask in scored_masks[:3])
    assert all(mask.mean() == pytest.approx(1 / 5) for mask in scored_masks[3:6])
    assert all(mask.mean() == pytest.approx(1 / 7) for mask in scored_masks[6:])
    for lever, folds in rows.items():
        assert "leave-one-corpus-out" in levers.lever_protocol(lever)
        for test, fold in folds.items():
            assert fold["n_test"] == 24 and fold["n_train"] == 72
            # Separable stand-ins: high UA as recorded and through the harmless equaliser, near chance in the room.
            assert (fold["ua"] < 0.5) == lever.endswith("_reverb"), (lever, test, fold["ua"])
