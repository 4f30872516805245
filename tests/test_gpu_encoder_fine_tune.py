"""experiments/gpu_encoder_fine_tune.py: the nested leave-one-corpus-out grid of encoder fine-tuning, on a tiny
random encoder and made-up frames (the real run needs the three corpora and a GPU: docs/cross_corpus.md)."""

import json

import keras
import numpy as np
import pytest

from conftest import experiment_script
from keras_ser.training import frozen

CLASSES = ["anger", "happiness", "sadness", "neutral", "fear", "disgust"]
ENCODER = {"units": 4, "embedding_dim": 4}


@pytest.fixture(scope="module")
def script():
    with experiment_script("gpu_encoder_fine_tune") as module:
        yield module


def _pooled_model(script, seed=0):
    from keras_ser.models.speech_encoders.encoder_stats_classifier import EncoderStatsClassifier
    from keras_ser.models.speech_encoders.speaker_encoder import speaker_encoder

    keras.utils.set_random_seed(seed)  # the run's Trainer builds its random encoder the same way
    model = EncoderStatsClassifier(speaker_encoder(None, **ENCODER), num_classes=len(CLASSES), class_names=CLASSES)
    return keras.Model(model.inputs, model.get_layer("pooled").output)


def _pooled(pooled_model, frames):
    return np.concatenate([np.asarray(pooled_model.predict_on_batch(f[None].astype(np.float32))) for f in frames])


@pytest.fixture(scope="module")
def frames_file(script, tmp_path_factory):
    """Three corpora of 2 speakers x 6 emotions x 2 files, frames of 12-40 steps; the class shifts the frames, so
    that the probes learn something; real probes (`fit_probe`) of every training set on the tiny encoder."""
    rng = np.random.default_rng(0)
    frames, labels, corpora, speakers = [], [], [], []
    for corpus in script.CORPORA:
        for speaker in ("s1", "s2"):
            for label in range(len(CLASSES)):
                for _ in range(2):
                    frames.append(rng.uniform(0.0, 1.0, (int(rng.integers(12, 41)), 40)) * (1.0 + label))
                    labels.append(label), corpora.append(corpus), speakers.append(f"{corpus}.{speaker}")
    labels, corpora, speakers = np.array(labels), np.array(corpora), np.array(speakers)
    pooled = _pooled(_pooled_model(script), frames)
    probes = {}
    for item in script.training_sets():
        rows = np.flatnonzero(np.isin(corpora, item["train"]))
        probes[item["key"]] = frozen.fit_probe(pooled[rows], labels[rows], script.probe_groups(corpora, speakers, rows),
                                               len(CLASSES), c_grid=(0.1, 1.0), n_jobs=1)
    path = tmp_path_factory.mktemp("frames") / "frames.npz"
    script.save_frames(str(path), frames, labels, corpora, speakers, CLASSES, probes, check_rows=[0, 5],
                       check_pooled=pooled[[0, 5]])
    return path, frames, labels, corpora, pooled, probes


def test_training_sets_never_train_on_the_test_corpus_and_inner_sets_score_a_training_corpus(script):
    sets = script.training_sets()
    assert len(sets) == 9
    for item in sets:
        assert item["test"] not in item["train"]
        if item["role"] == "inner":
            assert len(item["train"]) == 1 and item["scored_on"] not in (item["test"], item["train"][0])
        else:
            assert sorted(item["train"]) == sorted(set(script.CORPORA) - {item["test"]})
            assert item["scored_on"] == item["test"]


def test_probe_groups_are_the_corpora_or_five_groups_of_whole_speakers(script):
    corpora = np.array(["a"] * 4 + ["b"] * 4)
    speakers = np.array(["a.1", "a.1", "a.2", "a.3", "b.1", "b.2", "b.3", "b.4"])
    assert list(script.probe_groups(corpora, speakers, np.arange(8))) == list(corpora)
    groups = script.probe_groups(corpora, speakers, np.arange(4))
    assert list(groups) == [0, 0, 1, 2]  # a.1's two files in one group
    many = np.array([f"a.{i}" for i in range(12)])
    assert sorted(set(script.probe_groups(np.array(["a"] * 12), many, np.arange(12)))) == [0, 1, 2, 3, 4]


def test_batches_crop_a_window_of_long_files_and_pad_short_ones(script, frames_file):
    data = script.Data(str(frames_file[0]))
    long_row, short_row = int(np.argmax(data.lengths)), int(np.argmin(data.lengths))
    length = int(data.lengths[short_row]) + 2
    stored = data.frames[data.offsets[long_row]:data.offsets[long_row + 1]].astype(np.float32)
    batch = data.batch(np.array([long_row, short_row]), length, rng=np.random.default_rng(3))
    starts = [s for s in range(len(stored) - length + 1) if np.array_equal(stored[s:s + length], batch[0])]
    assert starts, "the cropped file is not a window of its frames"
    assert np.all(batch[1, -2:] == script.PAD_VALUE) and not np.any(batch[1, :-2] == script.PAD_VALUE)
    first = data.batch(np.array([long_row]), length)  # no rng: the first frames
    assert np.array_equal(first[0], stored[:length])


def test_scored_ua_takes_the_arg_max_among_the_four_shared_emotions(script):
    probabilities = np.array([[0.1, 0.0, 0.0, 0.0, 0.9, 0.0],    # anger file, "fear" overall: anger among four
                              [0.0, 0.2, 0.3, 0.0, 0.0, 0.5],    # happiness file: sadness among four
                              [0.0, 0.0, 0.0, 0.0, 1.0, 0.0]])   # a fear file: not scored
    labels = np.array([0, 1, 4])
    assert script.scored_ua(probabilities, labels, CLASSES) == pytest.approx(0.5)
    assert script.all_ua(probabilities, labels, len(CLASSES)) == pytest.approx(1 / 3)


def test_fine_tune_grid_chooses_on_the_training_corpora_and_scores_the_probe_as_the_runner_would(
        script, frames_file, tmp_path):
    path, frames, labels, corpora, pooled, probes = frames_file
    out = tmp_path / "out"
    code = script.main(["run", f"--data={path}", f"--out={out}", "--weights=none",
                        f"--encoder_kwargs={json.dumps(ENCODER)}", "--fine_tune=1", "--learning_rates=1e-3",
                        "--checkpoints=1,2", "--batch_size=8", "--crop=16", "--eval_batch=16", "--corpora=emovo,emodb"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["pooled_check_max_abs"] < 1e-4  # the same random encoder as the fixture's
    assert sorted(results["chosen"]) == ["emodb", "emovo"] and results["stopped"] is None
    for test, table in results["candidates"].items():
        assert sorted(table) == sorted(["probe", "k=1 lr=0.001 epochs=1", "k=1 lr=0.001 epochs=2"])
        best = max(row["inner_ua"] for row in table.values())
        chosen = results["chosen"][test]
        assert table[chosen["candidate"]]["inner_ua"] == best == chosen["inner_ua"]
        assert chosen["test_ua"] == table[chosen["candidate"]]["test_ua"]
    # The probe's figure of every run, through the fine-tuning model, equals the regression on pooled features.
    for item in script.training_sets(tests=["emovo", "emodb"]):
        rows = np.flatnonzero(corpora == item["scored_on"])
        expected = script.scored_ua(frozen.probe_logits(probes[item["key"]], pooled[rows]), labels[rows], CLASSES)
        assert results["runs"][item["key"]]["scores"]["probe"][0] == pytest.approx(expected)
    markdown = (out / "results.md").read_text()
    assert "| test corpus | chosen on the training corpora |" in markdown and "not selections" in markdown


def test_a_budget_stops_between_runs_and_the_same_command_trains_only_what_is_missing(script, frames_file, tmp_path,
                                                                                     capsys):
    out = tmp_path / "out"
    argv = ["run", f"--data={frames_file[0]}", f"--out={out}", "--weights=none", f"--encoder_kwargs={json.dumps(ENCODER)}",
            "--fine_tune=1", "--learning_rates=1e-3,1e-2", "--checkpoints=1", "--batch_size=8", "--corpora=emovo"]
    assert script.main(argv + ["--budget_s=1e-9"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["stopped"].startswith("budget of 1e-09 s reached before test=emovo/train=emodb k=1 lr=0.001")
    assert list(results["runs"]) == ["test=emovo/train=emodb"]
    assert list(results["runs"]["test=emovo/train=emodb"]["scores"]) == ["probe"] and results["chosen"] == {}

    assert script.main(argv) == 0
    first = json.loads((out / "results.json").read_text())
    assert first["stopped"] is None and list(first["chosen"]) == ["emovo"]
    # As if killed during the last run: its entry is missing; everything else is taken as it is.
    stopped = json.loads((out / "results.json").read_text())
    last = stopped["runs"]["test=emovo/train=emodb+ravdess"]
    del last["seconds"]["k=1 lr=0.01"], last["scores"]["k=1 lr=0.01 epochs=1"]
    stopped["runs"]["test=emovo/train=emodb"]["seconds"]["k=1 lr=0.001"] = -1.0  # marks a run that is reused
    (out / "results.json").write_text(json.dumps(stopped))
    capsys.readouterr()
    assert script.main(argv) == 0
    assert "resuming: 5 fine-tuning runs found" in capsys.readouterr().out
    again = json.loads((out / "results.json").read_text())
    assert again["runs"]["test=emovo/train=emodb"]["seconds"]["k=1 lr=0.001"] == -1.0  # not trained again
    assert again["runs"]["test=emovo/train=emodb+ravdess"]["seconds"]["k=1 lr=0.01"] > 0  # trained again
    assert again["chosen"] == first["chosen"] and again["candidates"] == first["candidates"]

    assert script.main(argv + ["--seed=1", "--budget_s=1e-9"]) == 0  # other settings: from scratch
    assert "made with other data or settings; starting again" in capsys.readouterr().out


def test_the_run_step_trains_on_jax_without_tensorflow(frames_file, tmp_path):
    """What the GPU machine runs: Keras on JAX, `import tensorflow` failing; one test corpus, one epoch."""
    from conftest import ROOT
    from conftest import run_without_tensorflow

    out = tmp_path / "out"
    stdout = run_without_tensorflow(f"{ROOT}/experiments/gpu_encoder_fine_tune.py", [
        "run", f"--data={frames_file[0]}", f"--out={out}", "--weights=none", f"--encoder_kwargs={json.dumps(ENCODER)}",
        "--fine_tune=1", "--learning_rates=1e-3", "--checkpoints=1", "--batch_size=8", "--crop=16", "--corpora=emovo"])
    results = json.loads((out / "results.json").read_text())
    assert results["jax"] and list(results["chosen"]) == ["emovo"] and "test emovo: chosen" in stdout
    assert all("k=1 lr=0.001 epochs=1" in run["scores"] for run in results["runs"].values())


def test_the_padding_value_is_the_encoders(script):
    from keras_ser.layers.pooling import PAD_VALUE

    assert script.PAD_VALUE == PAD_VALUE
