"""Training recipes, fold data, reports and the paired t-test."""

import json
import os

import numpy as np
import pytest
from scipy import stats

import tf_pipeline
from keras_ser.training import TrainConfig, report
from keras_ser.training.loso import make_fold_data, run_fold
from tf_pipeline.atomic import write_json_atomic
from keras_ser.training import recipes, scores

TINY = dict(image_size=67, backbone_kwargs={"filters": [4, 8, 8, 8, 8], "fc_units": 16}, sru_units=16,
            batch_size=12, learning_rate=3e-3)


def test_scores_match_sklearn():
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix

    rng = np.random.default_rng(0)
    labels, predicted = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    assert scores.unweighted_accuracy(labels, predicted, 4) == pytest.approx(balanced_accuracy_score(labels, predicted))
    assert scores.weighted_accuracy(labels, predicted) == pytest.approx(np.mean(labels == predicted))
    np.testing.assert_array_equal(scores.confusion_matrix(labels, predicted, 4), confusion_matrix(labels, predicted))


def test_train_config_checks_and_round_trips():
    config = TrainConfig(recipe="paper", n_segments=4, validation="next")
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ValueError, match="n_segments=6"):
        TrainConfig(n_segments=6)
    with pytest.raises(ValueError, match="recipe='fast'"):
        TrainConfig(recipe="fast")
    with pytest.raises(ValueError, match="model='sru'"):
        TrainConfig(recipe="paper", model="sru")
    with pytest.raises(ValueError, match="multi_worker"):
        TrainConfig(strategy="multi_worker", recipe="paper")


def test_fold_statistics_come_from_training_speakers_only(synthetic_corpus):
    corpus = synthetic_corpus
    fold = tf_pipeline.loso_folds(corpus, validation="next")[0]
    data = make_fold_data(corpus, fold, TrainConfig(**TINY))
    train_only = tf_pipeline.corpus_channel_stats(corpus, fold.train_indices)
    everyone = tf_pipeline.corpus_channel_stats(corpus)
    np.testing.assert_allclose(data.channel_stats[0], train_only.mean)
    assert not np.allclose(data.channel_stats[0], everyone.mean)
    assert data.labels["test"].tolist() == corpus.labels[fold.test_indices].tolist()
    assert set(corpus.speaker_ids[fold.validation_indices]) == {fold.validation_speaker}


def test_end_to_end_fold_lowers_the_loss_and_reports(synthetic_corpus):
    corpus = synthetic_corpus
    fold = tf_pipeline.loso_folds(corpus)[0]
    result, model = run_fold(corpus, fold, TrainConfig(epochs=4, **TINY), tf_pipeline.FeatureConfig(), verbose=0)
    losses = result["history"]["end_to_end"]["loss"]
    assert min(losses[1:]) < losses[0]
    assert result["n_test"] == len(fold.test_indices) and len(result["predictions"]) == result["n_test"]
    predicted = [p["predicted"] for p in result["predictions"]]
    labels = [p["label"] for p in result["predictions"]]
    assert result["wa"] == pytest.approx(np.mean(np.array(predicted) == np.array(labels)))
    assert np.array(result["confusion"]).sum() == result["n_test"]
    # The model carries the fold's training statistics.
    from keras_ser import get_channel_stats

    np.testing.assert_allclose(get_channel_stats(model)[0], result["channel_stats"]["mean"], rtol=1e-6)


def test_paper_recipe_trains_both_stages_and_assembles_one_model(synthetic_corpus):
    import keras

    corpus = synthetic_corpus
    fold = tf_pipeline.loso_folds(corpus, validation="next")[0]
    config = TrainConfig(recipe="paper", n_segments=2, stage1_epochs=2, stage2_epochs=3, validation="next",
                         patience=5, **TINY)
    data = make_fold_data(corpus, fold, config)
    keras.utils.set_random_seed(0)
    fresh = recipes.build_for(config, data)
    keras.utils.set_random_seed(0)
    result = recipes.train(config, data, verbose=0)
    assert set(result.epochs_run) == {"stage1", "stage2"}
    assert 1 <= result.best_epoch["stage2"] <= result.epochs_run["stage2"] <= 3
    for layer in ("backbone", "sru", "predictions"):  # stage 1 trained the CNN; stage 2's SRU and softmax were copied in
        before = fresh.get_layer(layer).get_weights()
        after = result.model.get_layer(layer).get_weights()
        assert any(not np.allclose(a, b) for a, b in zip(before, after)), layer
    probabilities = result.model.predict(data.dataset("test", training=False), verbose=0)
    assert probabilities.shape == (len(fold.test_indices), corpus.num_classes)


def write_fake_run(run_dir, speakers, was, uas, config=None):
    """Fold files with hand-set numbers, to test the report arithmetic."""
    os.makedirs(run_dir, exist_ok=True)
    config = config or TrainConfig().to_dict()
    write_json_atomic(os.path.join(run_dir, "run.json"), {
        "config": config, "corpus": "fake", "command": "test", "feature_config": {}, "class_names": ["a", "b"]})
    for speaker, wa, ua in zip(speakers, was, uas):
        # two utterances per fold: label 0 right when wa >= 0.5
        predictions = [{"path": f"{speaker}_1.wav", "label": 0, "predicted": 0 if wa >= 0.5 else 1, "probabilities": [1, 0]},
                       {"path": f"{speaker}_2.wav", "label": 1, "predicted": 1 if wa >= 1 else 0, "probabilities": [1, 0]}]
        write_json_atomic(os.path.join(run_dir, f"fold_{speaker}.json"), {
            "test_speaker": speaker, "validation_speaker": None, "n_train": 10, "n_test": 2, "wa": wa, "ua": ua,
            "epochs_run": {"end_to_end": 3}, "best_epoch": {"end_to_end": 3}, "wall_time_s": 1.0,
            "class_names": ["a", "b"], "predictions": predictions})


def test_report_pools_over_utterances(tmp_path):
    run = str(tmp_path / "run")
    write_fake_run(run, ["s1", "s2", "s3"], [0.5, 1.0, 0.0], [0.5, 1.0, 0.0])
    summary = report.write_report(run, log=None)
    assert summary["pooled"]["n"] == 6
    assert summary["pooled"]["wa"] == pytest.approx(3 / 6)
    assert summary["mean"]["wa"] == pytest.approx(0.5)
    assert summary["std"]["wa"] == pytest.approx(np.std([0.5, 1.0, 0.0], ddof=1))
    assert summary["confusion"] == [[2, 1], [2, 1]]
    for name in ("results.json", "results.md", "confusion.png"):
        assert os.path.getsize(os.path.join(run, name)) > 0
    assert open(os.path.join(run, "confusion.png"), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "| **pooled** | 6 | **50.0** |" in open(os.path.join(run, "results.md")).read()


def test_compare_is_a_paired_t_test_on_shared_folds(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    write_fake_run(a, ["s1", "s2", "s3", "s4"], [0.5, 0.6, 0.7, 0.5], [0.4, 0.6, 0.6, 0.5])
    write_fake_run(b, ["s1", "s2", "s3", "s5"], [0.7, 0.7, 0.9, 0.1], [0.6, 0.65, 0.9, 0.1])
    result = report.compare(a, b)
    assert result["speakers"] == ["s1", "s2", "s3"]
    expected = stats.ttest_rel([0.7, 0.7, 0.9], [0.5, 0.6, 0.7])
    assert result["metrics"]["wa"]["t"] == pytest.approx(expected.statistic)
    assert result["metrics"]["wa"]["p"] == pytest.approx(expected.pvalue)
    assert result["metrics"]["wa"]["difference"] == pytest.approx(0.5 / 3)
    assert "WA" in report.compare_table(result)
    write_fake_run(str(tmp_path / "c"), ["s9"], [0.5], [0.5])
    with pytest.raises(ValueError, match="at least 2 folds present in both runs"):
        report.compare(a, str(tmp_path / "c"))


def test_ensemble_averages_probabilities_of_shared_folds(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    write_fake_run(a, ["s1", "s2"], [0.5, 0.5], [0.5, 0.5])
    write_fake_run(b, ["s1", "s2", "s3"], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    for run, probs in ((a, [[0.9, 0.1], [0.6, 0.4]]), (b, [[0.2, 0.8], [0.1, 0.9]])):
        for speaker in ("s1", "s2"):
            path = os.path.join(run, f"fold_{speaker}.json")
            fold = json.load(open(path))
            for prediction, p in zip(fold["predictions"], probs):
                prediction["probabilities"] = p
            write_json_atomic(path, fold)
    summary = report.ensemble([a, b], str(tmp_path / "ens"), log=None)
    assert [fold["test_speaker"] for fold in summary["folds"]] == ["s1", "s2"]
    fold = json.load(open(tmp_path / "ens" / "fold_s1.json"))
    np.testing.assert_allclose([p["probabilities"] for p in fold["predictions"]], [[0.55, 0.45], [0.35, 0.65]])
    assert [p["predicted"] for p in fold["predictions"]] == [0, 1]
    assert fold["wa"] == 1.0 and summary["pooled"]["wa"] == 1.0
    assert "ensemble of 2 runs" in open(tmp_path / "ens" / "results.md").read()


def test_paper_recipe_with_stage1_epochs_0_keeps_the_backbone_frozen(synthetic_corpus):
    """stage1_epochs=0: no stage 1; the backbone keeps its built weights, only SRU + softmax train."""
    import keras

    assert TrainConfig(recipe="paper", stage1_epochs=0).stage1_epochs == 0
    with pytest.raises(ValueError, match="stage1_epochs must be a non-negative integer.*Received: stage1_epochs=-1"):
        TrainConfig(recipe="paper", stage1_epochs=-1)
    with pytest.raises(ValueError, match="stage2_epochs must be a positive integer"):
        TrainConfig(recipe="paper", stage1_epochs=0, stage2_epochs=0)
    corpus = synthetic_corpus
    fold = tf_pipeline.loso_folds(corpus, validation="next")[0]
    config = TrainConfig(recipe="paper", n_segments=2, stage1_epochs=0, stage2_epochs=3, validation="next",
                         patience=5, **TINY)
    data = make_fold_data(corpus, fold, config)
    keras.utils.set_random_seed(0)
    fresh = recipes.build_for(config, data)
    keras.utils.set_random_seed(0)
    result = recipes.train(config, data, verbose=0)
    assert result.epochs_run["stage1"] == 0 and result.best_epoch["stage1"] == 0
    assert result.history["stage1"] == {}
    assert 1 <= result.epochs_run["stage2"] <= 3 and len(result.history["stage2"]["loss"]) == result.epochs_run["stage2"]
    for before, after in zip(fresh.get_layer("backbone").get_weights(), result.model.get_layer("backbone").get_weights()):
        np.testing.assert_array_equal(before, after)  # same seed, same build: the frozen backbone is untouched
    for layer in ("sru", "predictions"):
        before, after = fresh.get_layer(layer).get_weights(), result.model.get_layer(layer).get_weights()
        assert any(not np.allclose(a, b) for a, b in zip(before, after)), layer
    probabilities = result.model.predict(data.dataset("test", training=False), verbose=0)
    assert probabilities.shape == (len(fold.test_indices), corpus.num_classes)


def test_stage2_dropout_regularises_the_frozen_head_only_in_training(synthetic_corpus):
    """stage2_dropout: dropout on the features stage 2 trains on; the assembled model has no extra layer."""
    import keras

    with pytest.raises(ValueError, match=r"stage2_dropout must be in \[0, 1\). Received: stage2_dropout=1.0"):
        TrainConfig(recipe="paper", stage2_dropout=1.0)
    corpus = synthetic_corpus
    fold = tf_pipeline.loso_folds(corpus, validation="none")[0]
    results = {}
    for rate in (0.0, 0.5):
        config = TrainConfig(recipe="paper", n_segments=2, stage1_epochs=0, stage2_epochs=2, stage2_dropout=rate,
                             **TINY)
        data = make_fold_data(corpus, fold, config)
        keras.utils.set_random_seed(0)
        result = recipes.train(config, data, verbose=0)
        assert "feature_dropout" not in [layer.name for layer in result.model.layers]
        results[rate] = result
    # Same seed and data: only the dropout differs, so the training losses and the trained SRU differ.
    assert results[0.0].history["stage2"]["loss"] != results[0.5].history["stage2"]["loss"]
    assert any(not np.allclose(a, b) for a, b in zip(results[0.0].model.get_layer("sru").get_weights(),
                                                      results[0.5].model.get_layer("sru").get_weights()))
    config = TrainConfig(recipe="paper", stage1_epochs=0, stage2_dropout=0.5).to_dict()
    text = report.protocol_text(config)
    assert "no stage 1 (backbone frozen as built)" in text and "feature dropout 0.5" in text
    assert "dropout 0.5, " not in text.replace("feature dropout 0.5", "")  # the backbone's dropout does not act
    assert ", dropout 0.5," in report.protocol_text(TrainConfig(recipe="paper").to_dict())
