"""The frozen-feature recipes' fast paths give what the plain computations give.

- `corpus_features`: padded, length-ordered batches through one compiled call
  equal each real EMO-DB file run alone through the model.
- `fit_probe`: fits reused between calls, and the warm-started path in the
  span of the rows, choose the `C` and weights of refitting from scratch.
- `fold_test_probabilities`: the head on cached pooled features equals the
  whole model on the test audio.
"""

import dataclasses
import os
import warnings

import numpy as np
import pytest

import tf_pipeline
from conftest import compiled_call
from keras_ser.training import frozen
from keras_ser.training import regressions
from keras_ser.training.config import TrainConfig
from keras_ser.training.loso import feature_config_for

# Real EMO-DB files from 1.2 s to 4.7 s, not in length order.
FILES = ["16a01Ec.wav", "03a01Fa.wav", "11b03Td.wav", "08a02Ab.wav", "03b10Ec.wav"]


@pytest.fixture(scope="module")
def few_files(emodb_dir):
    corpus = tf_pipeline.corpora.emodb(emodb_dir)
    records = tuple(record for name in FILES for record in corpus.records if os.path.basename(record.path) == name)
    assert len(records) == len(FILES)
    return dataclasses.replace(corpus, records=records)


@pytest.mark.parametrize("model_name", ["fusion_stats", "encoder_stats"])
def test_batched_extraction_equals_each_file_alone(few_files, model_name):
    from keras_ser.training.recipes import build_model_for_config

    config = TrainConfig(model=model_name, recipe="probe", validation="none")
    feature_config = feature_config_for(config)
    lines = []
    batched = frozen.corpus_features(few_files, config, feature_config, batch_size=3, log=lines.append)
    model = build_model_for_config(config, list(few_files.class_names), feature_config)
    features_model = compiled_call(model.features_model())
    alone = np.concatenate([
        np.asarray(features_model(model.preprocessor(tf_pipeline.load_audio(record.path, feature_config))))
        for record in few_files.records])
    assert batched.shape == alone.shape and batched.dtype == np.float32
    np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-5)
    # The rows were computed shortest first, in two batches (3 + 2), and come back in corpus order.
    sizes = [os.path.getsize(record.path) for record in few_files.records]
    assert list(frozen.length_order(few_files)) == list(np.argsort(sizes, kind="stable"))
    assert any(line.startswith(f"encoder features: {len(FILES)}/{len(FILES)} utterances") for line in lines)
    # One compiled function passed to several calls (one file at a time, then in pairs): the same rows.
    function = frozen.features_function(model)
    order = frozen.length_order(few_files)
    parts = [frozen.extract_features(model, few_files, order[:2], batch_size=1, function=function),
             frozen.extract_features(model, few_files, order[2:], batch_size=2, function=function)]
    np.testing.assert_allclose(np.concatenate(parts), alone[order], rtol=0, atol=1e-5)


def test_extract_features_checks_the_batch_size(few_files):
    with pytest.raises(ValueError, match="batch_size must be a positive integer. Received: batch_size=0"):
        frozen.extract_features(None, few_files, batch_size=0)


def _speaker_features(seed, speakers=4, per_speaker=24, dims=60, classes=3):
    """Features with an emotion signal in a few dimensions and a per-speaker offset in all."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(speakers), per_speaker)
    labels = np.tile(np.arange(classes), speakers * per_speaker // classes)
    features = rng.normal(size=(len(labels), dims)) + rng.normal(size=(speakers, dims))[groups]
    features[:, :3] += 1.2 * np.eye(classes)[labels]
    return features, labels, groups


def _plain_probe(features, labels, groups, c_grid, seed=0, scored=None):
    """The probe's inner search written out: standardise and fit from scratch for every inner fold and C
    (a held-out group scored on its rows with `scored` True)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    inner_ua = {}
    for c in c_grid:
        scores = []
        for group in np.unique(groups):
            train, held = groups != group, groups == group
            if scored is not None:
                held &= scored
            scaler = StandardScaler().fit(features[train])
            classifier = LogisticRegression(C=c, max_iter=2000, random_state=seed)
            classifier.fit(scaler.transform(features[train]), labels[train])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                predicted = classifier.predict(scaler.transform(features[held]))
                scores.append(balanced_accuracy_score(labels[held], predicted))
        inner_ua[c] = float(np.mean(scores))
    best = max(c_grid, key=lambda c: (inner_ua[c], -c))
    scaler = StandardScaler().fit(features)
    classifier = LogisticRegression(C=best, max_iter=2000, random_state=seed).fit(scaler.transform(features), labels)
    return best, {str(c): round(v, 4) for c, v in inner_ua.items()}, classifier.coef_.T


def test_refit_search_reuses_fits_and_equals_the_plain_search(monkeypatch):
    """Two outer folds of leave-one-speaker-out: the second refits only the inner folds it does not share."""
    features, labels, groups = _speaker_features(0)
    c_grid = (0.01, 0.1, 1.0)
    fitted = []
    fit_rows = regressions.fit_rows
    monkeypatch.setattr(regressions, "fit_rows", lambda *args: fitted.append(args[3]) or fit_rows(*args))
    frozen._INNER_FITS.clear()
    # New fits: inner folds x C; test speaker 1's inner fold holding out 0 is test speaker 0's holding out 1.
    for test_speaker, new_fits in ((0, 3 * 3), (1, 2 * 3)):
        rows = groups != test_speaker
        before = len(fitted)
        probe = frozen.fit_probe(features[rows], labels[rows], groups[rows], 3, c_grid=c_grid, n_jobs=1)
        assert len(fitted) - before == new_fits
        best, inner_ua, kernel = _plain_probe(features[rows], labels[rows], groups[rows], c_grid)
        assert probe["C"] == best and probe["inner_ua"] == inner_ua
        np.testing.assert_array_equal(probe["kernel"], kernel.astype(np.float32))
    frozen._INNER_FITS.clear()


def test_probe_scores_only_the_rows_it_is_told_and_trains_on_all():
    """Channel copies train and are never scored: with `scored`, a held-out group's copies (here with shuffled
    labels) are left out of its score and the other groups' copies train, as the search written out does."""
    features, labels, groups = _speaker_features(4)
    rng = np.random.default_rng(5)
    copies = features + 0.3 * rng.normal(size=features.shape)
    rows = np.concatenate([features, copies])
    both_labels = np.concatenate([labels, rng.permutation(labels)])
    both_groups, scored = np.tile(groups, 2), np.arange(2 * len(labels)) < len(labels)
    c_grid = (0.01, 1.0)
    frozen._INNER_FITS.clear()
    probe = frozen.fit_probe(rows, both_labels, both_groups, 3, c_grid=c_grid, n_jobs=1, scored=scored)
    best, inner_ua, kernel = _plain_probe(rows, both_labels, both_groups, c_grid, scored=scored)
    assert probe["C"] == best and probe["inner_ua"] == inner_ua
    np.testing.assert_array_equal(probe["kernel"], kernel.astype(np.float32))
    unmasked = frozen.fit_probe(rows, both_labels, both_groups, 3, c_grid=c_grid, n_jobs=1)
    frozen._INNER_FITS.clear()
    assert probe["inner_ua"] != unmasked["inner_ua"]  # the copies' rows scored change every inner UA
    with pytest.raises(ValueError, match=r"scored must hold one bool per row"):
        frozen.fit_probe(rows, both_labels, both_groups, 3, c_grid=c_grid, scored=scored[:10])
    with pytest.raises(ValueError, match="every inner group needs scored rows"):
        frozen.fit_probe(rows, both_labels, both_groups, 3, c_grid=c_grid, scored=scored & (both_groups != 0))


def test_two_class_probe_logits_give_the_regression_probabilities():
    """A regression on two classes holds one row of weights; the probe's two logits must still give its
    probabilities (they were the same logit twice, so every file went to the first class). Also with two of
    four classes present in the training rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    labels, groups = np.tile([0, 1], 30), np.repeat([0, 1, 2], 20)
    features = rng.normal(size=(60, 6))
    features[:, 0] += 1.5 * labels
    frozen._INNER_FITS.clear()
    for present, num_classes in (([0, 1], 2), ([1, 3], 4)):
        y = np.asarray(present)[labels]
        probe = frozen.fit_probe(features, y, groups, num_classes, c_grid=(0.1, 1.0), n_jobs=1)
        scaler = StandardScaler().fit(features)
        reference = LogisticRegression(C=probe["C"], max_iter=2000).fit(scaler.transform(features), y)
        logits = frozen.probe_logits(probe, features)
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(probabilities[:, present], reference.predict_proba(scaler.transform(features)),
                                   atol=1e-4)
        assert np.all(probabilities[:, [c for c in range(num_classes) if c not in present]] < 1e-6)
        assert np.mean(logits.argmax(axis=1) == y) > 0.75
    frozen._INNER_FITS.clear()


def test_parallel_probe_equals_the_serial_one():
    """Regressions in two processes (what large features get by default): the same choice and the same weights."""
    features, labels, groups = _speaker_features(2)
    assert frozen.probe_jobs(features) == 1  # small: in this process
    assert frozen.probe_jobs(np.zeros((500, 1000)), None) == min(frozen.PROBE_MAX_JOBS, len(os.sched_getaffinity(0)))
    frozen._INNER_FITS.clear()
    serial = frozen.fit_probe(features, labels, groups, 3, c_grid=(0.01, 1.0), n_jobs=1)
    frozen._INNER_FITS.clear()
    parallel = frozen.fit_probe(features, labels, groups, 3, c_grid=(0.01, 1.0), n_jobs=2)
    frozen._INNER_FITS.clear()
    assert parallel["C"] == serial["C"] and parallel["inner_ua"] == serial["inner_ua"]
    np.testing.assert_array_equal(parallel["kernel"], serial["kernel"])


def test_probe_workers_import_neither_keras_ser_nor_tensorflow():
    """The inner folds' fits reach joblib's worker processes by value: a worker imports numpy and scikit-learn,
    not keras_ser (whose package imports TensorFlow: seconds of CPU and most of a gigabyte per worker)."""
    from joblib import Parallel
    from joblib import delayed

    features, labels, groups = _speaker_features(2)
    rows = np.flatnonzero(groups != 0)

    def fit_and_list_modules(*args):
        import sys

        fitted = regressions.fit_rows(*args)
        return fitted, sorted(name for name in sys.modules if name.split(".")[0] in ("keras_ser", "tensorflow", "keras"))

    results = Parallel(n_jobs=2)(delayed(fit_and_list_modules)(features, labels, rows, c, 0) for c in (0.01, 1.0))
    for (scaler, classifier), imported in results:
        assert imported == [], imported
    here = regressions.fit_rows(features, labels, rows, 1.0, 0)
    np.testing.assert_array_equal(results[1][0][1].coef_, here[1].coef_)  # the same fit as in this process


def test_path_search_chooses_the_plain_c_and_nearly_the_same_weights():
    """Fewer rows than columns (the span is used) and a clear best C: the same choice, nearly the same model."""
    features, labels, groups = _speaker_features(1, per_speaker=30, dims=150)
    c_grid = (0.001, 0.01, 0.1, 1.0)
    probe = frozen.fit_probe(features, labels, groups, 3, c_grid=c_grid, inner_search="path")
    best, inner_ua, kernel = _plain_probe(features, labels, groups, c_grid)
    assert probe["C"] == best
    assert max(abs(probe["inner_ua"][c] - inner_ua[c]) for c in inner_ua) <= 0.02
    # The final refit is the same from-scratch fit: the same weights and predictions.
    np.testing.assert_allclose(probe["kernel"], kernel, atol=1e-6)
    with pytest.raises(ValueError, match="inner_search must be one of .* Received: inner_search='warm'"):
        frozen.fit_probe(features, labels, groups, 3, inner_search="warm")


def test_path_search_fits_the_same_optimum_in_the_span():
    """One inner fold's regression in the span of its rows reaches the full-width optimum (tight tolerance)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    features, labels, _ = _speaker_features(2, per_speaker=21, dims=120)
    x = StandardScaler().fit_transform(features)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    full = LogisticRegression(C=0.1, max_iter=5000, tol=1e-10).fit(x, labels)
    span = LogisticRegression(C=0.1, max_iter=5000, tol=1e-10).fit(x @ vt.T, labels)
    np.testing.assert_allclose(span.coef_ @ vt, full.coef_, atol=1e-5)
    np.testing.assert_allclose(span.intercept_, full.intercept_, atol=1e-5)


@pytest.mark.parametrize("model_name,recipe", [("fusion_stats", "probe"), ("encoder_stats", "frozen")])
def test_test_pass_on_cached_features_equals_the_whole_model(synthetic_corpus, model_name, recipe):
    from keras_ser.training import loso
    from keras_ser.training import recipes
    from tf_pipeline.folds import loso_folds

    # The shipped encoder weights: the model that extracts the features and the fold's model hold the same encoders.
    config = TrainConfig(model=model_name, recipe=recipe, validation="none", batch_size=8, epochs=1)
    feature_config = feature_config_for(config)
    fold = loso_folds(synthetic_corpus, validation="none", speakers=[synthetic_corpus.speakers[0]])[0]
    data = loso.make_fold_data(synthetic_corpus, fold, config, feature_config)
    model = recipes.train(config, data, feature_config=feature_config, verbose=0).model
    from_features = loso.fold_test_probabilities(config, data, model)
    whole = model.predict(data.dataset("test", training=False), verbose=0)
    assert from_features.shape == whole.shape == (len(fold.test_indices), len(synthetic_corpus.class_names))
    np.testing.assert_allclose(from_features, whole, rtol=0, atol=1e-5)
    # Another recipe, or data without pooled features, runs the whole model.
    del data.pooled_features
    np.testing.assert_allclose(loso.fold_test_probabilities(config, data, model), whole, rtol=0, atol=1e-6)


def test_feature_store_serves_subsets_and_combinations_and_resumes(tmp_path):
    """One store per model and front end: features of files met before are read back, only new files are run."""
    import tf_pipeline
    from keras_ser.training import frozen
    from keras_ser.training.config import TrainConfig
    from keras_ser.models.speech_encoders.config import MelFramesConfig

    corpus = tf_pipeline.corpora.synthetic(str(tmp_path / "corpus"), n_speakers=2, per_class=2, emotions="WT")
    config = TrainConfig(model="encoder_stats", recipe="probe", validation="none",
                         backbone_kwargs={"units": 8, "embedding_dim": 4}, backbone_weights="random")
    extract, calls = frozen.extract_features, []

    def counting_extract(model, corpus, indices, **kwargs):
        calls.append(len(indices))
        return extract(model, corpus, indices, **kwargs)

    memory, frozen._FEATURES, frozen.extract_features = frozen._FEATURES, {}, counting_extract
    try:
        cache = str(tmp_path / "cache")
        half = corpus.subset(range(0, len(corpus), 2))
        first = frozen.corpus_features(half, config, MelFramesConfig(), cache_dir=cache)
        frozen._FEATURES.clear()  # a new process: only the store on disk is left
        whole = frozen.corpus_features(corpus, config, MelFramesConfig(), cache_dir=cache)
        frozen._FEATURES.clear()
        again = frozen.corpus_features(corpus, config, MelFramesConfig(), cache_dir=cache)
        other = frozen.corpus_features(corpus, config, MelFramesConfig(front_end={}), cache_dir=cache)
    finally:
        frozen._FEATURES, frozen.extract_features = memory, extract
    assert calls == [len(half), len(corpus) - len(half), len(corpus)]  # the front end makes another store
    np.testing.assert_array_equal(whole[::2], first)
    np.testing.assert_array_equal(again, whole)
    assert not np.allclose(other, whole)
    assert len(os.listdir(cache)) == 2


def test_feature_store_keeps_touched_files_and_drops_the_rows_of_a_file_that_changed(tmp_path, monkeypatch):
    """A file touched or copied again with the same bytes (a new modification time) is found in the store; a file
    written again with other bytes is extracted again, and its old row leaves the store."""
    import keras
    import soundfile

    import tf_pipeline
    from keras_ser.models.speech_encoders.config import MelFramesConfig
    from keras_ser.training import frozen
    from keras_ser.training.config import TrainConfig

    corpus = tf_pipeline.corpora.synthetic(str(tmp_path / "corpus"), n_speakers=2, per_class=1, emotions="WT")
    config = TrainConfig(model="encoder_stats", recipe="probe", validation="none",
                         backbone_kwargs={"units": 8, "embedding_dim": 4}, backbone_weights="random")
    cache = str(tmp_path / "cache")
    extract = frozen.extract_features

    def no_extraction(*args, **kwargs):
        raise AssertionError("extracted although every file's bytes are in the store")

    memory, frozen._FEATURES = frozen._FEATURES, {}
    try:
        keras.utils.set_random_seed(0)  # the same random encoder weights for both extractions
        first = frozen.corpus_features(corpus, config, MelFramesConfig(), cache_dir=cache)
        changed = corpus.records[0].path
        for record in corpus.records:  # every file touched: same bytes, new modification time
            os.utime(record.path, ns=(os.stat(record.path).st_atime_ns, os.stat(record.path).st_mtime_ns + 10**9))
        frozen._FEATURES.clear()
        monkeypatch.setattr(frozen, "extract_features", no_extraction)
        np.testing.assert_array_equal(frozen.corpus_features(corpus, config, MelFramesConfig(), cache_dir=cache),
                                      first)
        monkeypatch.setattr(frozen, "extract_features", extract)
        samples, rate = soundfile.read(changed, dtype="int16")
        soundfile.write(changed, samples // 2, rate, subtype="PCM_16")  # other bytes: 6 dB quieter
        frozen._FEATURES.clear()
        keras.utils.set_random_seed(0)
        again = frozen.corpus_features(corpus, config, MelFramesConfig(), cache_dir=cache)
    finally:
        frozen._FEATURES = memory
    np.testing.assert_array_equal(again[1:], first[1:])  # the other files' rows read back
    assert not np.allclose(again[0], first[0], atol=1e-5)  # the quieter file's features computed anew
    with np.load(frozen.store_path(cache, config, MelFramesConfig())) as store:
        keys = store["files"].tolist()
    assert len(keys) == len(corpus)
    assert sum(key.startswith(changed + "|") for key in keys) == 1
    assert frozen._file_key(changed) in keys


def test_remembered_features_are_what_corpus_features_returns_without_extracting(tmp_path, monkeypatch):
    import tf_pipeline
    from keras_ser.models.speech_encoders.config import MelFramesConfig
    from keras_ser.training import frozen
    from keras_ser.training.config import TrainConfig

    corpus = tf_pipeline.corpora.synthetic(str(tmp_path / "corpus"), n_speakers=2, per_class=1, emotions="WT")
    config = TrainConfig(model="encoder_stats", recipe="probe", validation="none",
                         backbone_kwargs={"units": 8, "embedding_dim": 4}, backbone_weights="random")
    features = np.arange(len(corpus.records) * 3, dtype=np.float32).reshape(len(corpus.records), 3)

    def no_extraction(*args, **kwargs):
        raise AssertionError("extracted although the features were remembered")

    memory, frozen._FEATURES = frozen._FEATURES, {}
    try:
        monkeypatch.setattr(frozen, "extract_features", no_extraction)
        frozen.remember_features(corpus, config, MelFramesConfig(), features)
        np.testing.assert_array_equal(frozen.corpus_features(corpus, config, MelFramesConfig()), features)
        with pytest.raises(AssertionError, match="remembered"):  # another feature config: not those rows
            frozen.corpus_features(corpus, config, MelFramesConfig(volume_dbfs=-30.0))
        with pytest.raises(ValueError, match=r"one row per record of the corpus \(4\). Received: 3 rows"):
            frozen.remember_features(corpus, config, MelFramesConfig(), features[:3])
    finally:
        frozen._FEATURES = memory
