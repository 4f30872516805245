"""experiments/cross_corpus.py's leave-one-corpus-out levers: C is chosen on the training corpora only."""

import numpy as np
import pytest

from conftest import experiment_script


@pytest.fixture(scope="module")
def cross_corpus():
    with experiment_script("cross_corpus") as module:
        yield module


def _corpora(seed=0):
    """Three small corpora `{name: (features, shared labels, speakers, paths)}`; one has an extra class."""
    rng = np.random.default_rng(seed)
    classes = ["anger", "happiness", "sadness", "neutral", "fear", "disgust"]
    centres = rng.normal(size=(8, 12))
    data = {}
    for index, name in enumerate(("a", "b", "c")):
        own = classes + (["calm"] if name == "b" else [])
        labels = np.repeat(own, 10)
        speakers = np.tile(np.arange(5), len(labels) // 5).astype(str)
        shift = rng.normal(scale=0.5, size=12)  # each corpus's own offset
        features = np.stack([centres[[*classes, "calm"].index(label)] for label in labels])
        features = (features + shift + rng.normal(scale=1.0, size=features.shape)).astype(np.float32)
        data[name] = (features, labels, speakers, [f"{name}/{i}.wav" for i in range(len(labels))])
    return data


@pytest.fixture(scope="module")
def rows(cross_corpus):
    return cross_corpus.loco_levers(_corpora(), log=lambda line: None)


def test_levers_choose_c_without_the_test_corpus(cross_corpus, rows):
    data = _corpora()
    assert set(rows) == {f"encoder_{s}_{k}" for s in ("shared4", "shared6", "every")
                         for k in ("C_by_corpora", "C_by_speakers5", "averaged_C")}
    for key, folds in rows.items():
        assert set(folds) == {"a", "b", "c"}
        for test, fold in folds.items():
            assert fold["class_names"] == list(cross_corpus.SHARED4) and fold["n_test"] == 40
            assert fold["train_corpora"] == [n for n in "abc" if n != test]
            assert 0.0 <= fold["ua"] <= 1.0
            assert bool(fold.get("explored")) == key.endswith("averaged_C")
    assert rows["encoder_every_C_by_corpora"]["a"]["training_classes"][:3] == ["anger", "calm", "disgust"]
    assert rows["encoder_shared4_C_by_corpora"]["a"]["n_train"] == 80
    assert rows["encoder_shared6_C_by_corpora"]["a"]["n_train"] == 120
    assert rows["encoder_every_C_by_corpora"]["a"]["n_train"] == 130
    # The test corpus's labels shuffled: every choice of C stays, the scores on it move.
    shuffled = dict(data)
    features, labels, speakers, paths = data["c"]
    shuffled["c"] = (features, np.random.default_rng(1).permutation(labels), speakers, paths)
    again = cross_corpus.loco_levers(shuffled, log=lambda line: None)
    for key in rows:
        assert again[key]["c"]["C"] == rows[key]["c"]["C"]
        if "inner_ua" in rows[key]["c"]:
            assert again[key]["c"]["inner_ua"] == rows[key]["c"]["inner_ua"]
    assert any(again[key]["c"]["ua"] != rows[key]["c"]["ua"] for key in rows)


def test_lever_rows_reach_the_leaderboard_with_their_protocol(cross_corpus, rows, tmp_path):
    import json

    summary = {"front_end": {"trim_db": 30.0, "level_dbfs": -18.0}, "command": "python experiments/cross_corpus.py",
               "loco_levers": rows}
    path = tmp_path / "fusion_stats" / "trim30_level-18" / "summary.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(summary))
    rows = cross_corpus._summary_rows(str(path))
    assert len(rows) == 27
    averaged = [r for r in rows if "averaged_C" in r["run"]]
    assert len(averaged) == 9 and all("read off results that had seen the test" in r["explored"] for r in averaged)
    assert not any(r.get("explored") for r in rows if r not in averaged)
    speakers = next(r for r in rows if r["run"].endswith("encoder_shared6_C_by_speakers5/b"))
    assert speakers["system"].startswith("GE2E statistics encoder_shared6_C_by_speakers5, front end trim + level")
    assert "six emotions all three corpora have" in speakers["protocol"]
    assert "five folds of whole training speakers" in speakers["protocol"]


def test_a_wider_run_scored_among_fewer_classes():
    from keras_ser.training.report import scores_among

    fold = {"test_speaker": "emovo", "class_names": ["anger", "fear", "sadness"], "predictions": [
        {"label": 0, "probabilities": [0.2, 0.7, 0.1]},   # fear wins overall, anger among (anger, sadness)
        {"label": 2, "probabilities": [0.3, 0.4, 0.3]},   # a tie among the two: the first (anger)
        {"label": 2, "probabilities": [0.1, 0.3, 0.6]},
        {"label": 1, "probabilities": [0.1, 0.8, 0.1]},   # fear: left out
    ]}
    scored = scores_among(fold, ["anger", "sadness"])
    assert scored["n"] == 3 and scored["recall"] == {"anger": 1.0, "sadness": 0.5}
    assert scored["ua"] == 0.75 and scored["wa"] == 2 / 3
    with pytest.raises(ValueError, match=r"emovo: the run has no class \['disgust'\]; it has \['anger', 'fear', "
                                         r"'sadness'\]"):
        scores_among(fold, ["anger", "disgust"])


def test_speaker_adaptation_rows_use_only_each_test_speakers_own_files(cross_corpus):
    data = _corpora()
    quiet = {"log": lambda line: None}
    rows = cross_corpus.loco_adaptation(data, **quiet)
    assert set(rows) == {f"encoder_shared6_speaker_adapted_n{n}" for n in (1, 3, 10, 20, "all")}
    for key, folds in rows.items():
        for test, fold in folds.items():
            assert fold["uses_test_audio"] == "speaker" and fold["training_classes"] == list(cross_corpus.SHARED6)
            assert fold["n_test"] == 40 and fold["n_train"] == 120 and fold["class_names"] == list(cross_corpus.SHARED4)
            assert len(fold["ua_draws"]) == (1 if key.endswith("nall") else cross_corpus.ADAPTATION_DRAWS)
            assert fold["ua"] == pytest.approx(np.mean(fold["ua_draws"]), abs=1e-4)
    # The test corpus's labels shuffled: C and the inner scores stay (chosen on the training corpora).
    features, labels, speakers, paths = data["c"]
    shuffled = {**data, "c": (features, np.random.default_rng(1).permutation(labels), speakers, paths)}
    again = cross_corpus.loco_adaptation(shuffled, **quiet)
    for key in rows:
        assert again[key]["c"]["C"] == rows[key]["c"]["C"]
        assert again[key]["c"]["inner_ua"] == rows[key]["c"]["inner_ua"]
    # One test speaker's files moved by an offset of their own: each speaker is centred on its own files only,
    # so every row of that test corpus scores the same (same draws, same seed), and the other corpora's rows too.
    moved = features.copy()
    moved[speakers == "0"] += 5.0
    shifted = cross_corpus.loco_adaptation({**data, "c": (moved, labels, speakers, paths)}, **quiet)
    for key in rows:
        assert shifted[key]["c"]["ua_draws"] == pytest.approx(rows[key]["c"]["ua_draws"], abs=1e-6)
    # Without adaptation the same offset moves the scores: the property above is the adaptation's.
    plain = cross_corpus.loco({**data, "c": (moved, labels, speakers, paths)}, log=lambda line: None)
    assert plain["c"]["ua"] != cross_corpus.loco(data, log=lambda line: None)["c"]["ua"]


def test_speaker_adaptation_rows_reach_the_leaderboard_marked(cross_corpus, tmp_path):
    import json

    rows = cross_corpus.loco_adaptation(_corpora(), log=lambda line: None)
    path = tmp_path / "encoder_stats" / "trim30_level-18" / "summary.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"front_end": {"trim_db": 30.0, "level_dbfs": -18.0}, "command": "python x.py",
                                "loco_adaptation": rows}))
    board = cross_corpus._summary_rows(str(path))
    assert len(board) == 15 and all(row["uses_test_speaker_audio"] for row in board)
    twenty = next(row for row in board if row["run"].endswith("speaker_adapted_n20/b"))
    assert "20 of its files drawn at random (mean of 5 draws)" in twenty["protocol"]
    assert twenty["protocol"].endswith("uses the test speaker's unlabelled audio")


def test_merged_leaderboard_keeps_the_rows_of_runs_this_checkout_lacks(cross_corpus, tmp_path):
    import json

    run_root = tmp_path / "runs"
    summary = run_root / "encoder_stats" / "trim30_level-18" / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"front_end": {"trim_db": 30.0, "level_dbfs": -18.0}, "command": "python x.py",
                                   "loco": cross_corpus.loco(_corpora(), log=lambda line: None)}))
    new_runs = [row["run"] for row in cross_corpus._summary_rows(str(summary))]
    assert len(new_runs) == 3
    assert not any("chosen_variant" in row for row in cross_corpus._summary_rows(str(summary)))
    old = [{"run": "runs/reproduce/cpu/cnn_sru_n3", "table": "III", "ua_pooled": 50.0},
           {"run": "runs/cross_corpus/fusion_stats/none#loco/probe/a", "table": "cross_corpus", "ua_pooled": 40.0},
           {"run": new_runs[0], "table": "cross_corpus", "ua_pooled": -1.0}]
    board_path = tmp_path / "results.json"
    for merge, expected_runs in ((True, [old[0]["run"], old[1]["run"]] + new_runs),
                                 (False, [old[0]["run"]] + new_runs)):
        board_path.write_text(json.dumps(old))
        cross_corpus.write_leaderboard(str(board_path), str(run_root), merge=merge)
        board = json.loads(board_path.read_text())
        assert [row["run"] for row in board] == expected_runs, merge
        assert all(row["ua_pooled"] >= 0 for row in board)  # the stale row of a run found here is replaced
