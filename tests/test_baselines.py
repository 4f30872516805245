"""The Table V baselines: openSMILE functionals, the LOSO SVM, its run directory and command.

Real EMO-DB files check the feature dimensions (IS09 384, IS10 1582,
ComParE_2016 6373, eGeMAPSv02 88); small
synthetic feature matrices check the evaluation protocol exactly: the scaler
is fitted on the training speakers only, model selection never sees the test
speaker, finished folds are not recomputed, and per-speaker normalisation is
named in every result that uses it. The run folder is the one every LOSO
system writes (`keras_ser.training.loso`), read by experiments/reproduce
like the Keras runs.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, tone, wav_bytes

pytest.importorskip("sklearn")

from keras_ser.baselines import svm  # noqa: E402
from keras_ser.baselines.config import BaselineConfig  # noqa: E402
from keras_ser.training.scores import confusion_matrix, scores_from_confusion, unweighted_accuracy  # noqa: E402
from tf_pipeline.corpora import Corpus, Record  # noqa: E402
from tf_pipeline.folds import loso_folds  # noqa: E402

FAST_GRID = (0.01, 1.0)
EMODB_FILES = ("03a01Fa.wav", "16b10Tb.wav")


def _synthetic_features(n_speakers=4, per_class=5, num_classes=3, dim=6, seed=0):
    """Learnable features: class means + a per-speaker offset + noise, with a Corpus for the folds."""
    rng = np.random.default_rng(seed)
    class_means = rng.normal(0.0, 3.0, (num_classes, dim))
    rows, records = [], []
    for s in range(n_speakers):
        speaker = f"s{s}"
        offset = rng.normal(0.0, 1.0, dim)
        for label in range(num_classes):
            for i in range(per_class):
                rows.append(class_means[label] + offset + rng.normal(0.0, 1.0, dim))
                records.append(Record(f"/nowhere/{speaker}_{label}_{i}.wav", label, speaker))
    corpus = Corpus("toy", tuple(records), tuple(f"class{k}" for k in range(num_classes)))
    return np.stack(rows), corpus


def _run(corpus, features, run_dir, normalization="train", speakers=None):
    return svm.run_loso(
        features,
        corpus.labels,
        corpus.speaker_ids,
        loso_folds(corpus, speakers=speakers),
        str(run_dir),
        BaselineConfig("IS09", normalization, c_grid=FAST_GRID),
        corpus.class_names,
        paths=corpus.paths,
    )


# -- metrics ---------------------------------------------------------------------------------------

def test_wa_ua_match_sklearn_and_skip_absent_classes():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    y_true = np.array([0, 0, 0, 1, 1, 3, 3, 3, 3])  # class 2 absent
    y_pred = np.array([0, 1, 0, 1, 2, 3, 3, 0, 3])
    wa, ua, recalls = scores_from_confusion(confusion_matrix(y_true, y_pred, 4))
    assert wa == pytest.approx(accuracy_score(y_true, y_pred))
    assert ua == pytest.approx((2 / 3 + 1 / 2 + 3 / 4) / 3)
    assert unweighted_accuracy(y_true, y_pred) == pytest.approx(ua)
    with pytest.warns(UserWarning):  # sklearn warns about the predicted class absent from y_true
        assert ua == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert recalls[2] is None


# -- features on real EMO-DB files -----------------------------------------------------------------

@pytest.mark.parametrize("feature_set,dimension",
                         [("IS09", 384), ("IS10", 1582), ("ComParE_2016", 6373), ("eGeMAPSv02", 88)])
def test_functionals_shape_and_cache(emodb_dir, tmp_path, monkeypatch, feature_set, dimension):
    pytest.importorskip("opensmile")
    # openSMILE's native library aborts a process that loaded TensorFlow first; extraction
    # runs in a child interpreter, so it must work here too.
    pytest.importorskip("tensorflow")
    from keras_ser.baselines import opensmile_features

    paths = [os.path.join(emodb_dir, name) for name in EMODB_FILES]
    first = opensmile_features.extract_functionals(paths, feature_set, cache_dir=tmp_path)
    assert first.features.shape == (2, dimension)
    assert first.features.dtype == np.float32 and np.isfinite(first.features).all()
    assert len(first.feature_names) == dimension
    assert not first.from_cache and os.path.isfile(first.cache_file)
    expected_config = {"IS09": "is09-13/IS09_emotion.conf", "IS10": "is09-13/IS10_paraling_compat.conf",
                       "ComParE_2016": "compare/ComParE_2016.conf", "eGeMAPSv02": "egemaps/v02/eGeMAPSv02.conf"}
    assert first.info["config_file"] == expected_config[feature_set]
    assert first.info["dimension"] == dimension and len(first.info["config_sha256"]) == 64

    def no_extraction(*args, **kwargs):
        raise AssertionError("openSMILE ran although the features are cached")

    monkeypatch.setattr(opensmile_features, "_extract", no_extraction)
    second = opensmile_features.extract_functionals(paths, feature_set.lower(), cache_dir=tmp_path)
    assert second.from_cache and second.cache_file == first.cache_file
    np.testing.assert_array_equal(second.features, first.features)
    assert second.feature_names == first.feature_names
    assert second.extraction_wall_time_s == first.extraction_wall_time_s
    # Another file list is another cache entry (and would run openSMILE).
    with pytest.raises(AssertionError, match="openSMILE ran"):
        opensmile_features.extract_functionals(paths[:1], feature_set, cache_dir=tmp_path)


def test_functionals_bad_input(tmp_path):
    pytest.importorskip("opensmile")
    from keras_ser.baselines.opensmile_features import extract_functionals

    short = tmp_path / "short.wav"
    short.write_bytes(wav_bytes(tone(seconds=0.005)))  # 80 samples: shorter than one analysis frame
    with pytest.raises(ValueError, match="short.wav"):
        extract_functionals([str(short)], "IS09")
    with pytest.raises(ValueError, match="feature_set must be one of"):
        extract_functionals([str(short)], "IS11")
    with pytest.raises(ValueError, match="paths is empty"):
        extract_functionals([], "IS09")
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        extract_functionals([str(tmp_path / "missing.wav")], "IS09")


# -- the evaluation protocol -----------------------------------------------------------------------

def test_scaler_is_fitted_on_training_speakers_only():
    features, corpus = _synthetic_features()
    speakers = corpus.speaker_ids
    features[speakers == "s0"] += 1e6  # the test speaker is far away from everyone else
    fold = loso_folds(corpus, speakers=["s0"])[0]
    out = svm.evaluate_fold(
        features, corpus.labels, speakers, fold, BaselineConfig("IS09", c_grid=FAST_GRID)
    )
    train_rows = features[fold.train_indices]
    np.testing.assert_allclose(out["scaler"]["mean"], train_rows.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["scaler"]["scale"], train_rows.std(axis=0), rtol=1e-12)
    assert np.abs(out["scaler"]["mean"]).max() < 100  # the 1e6 offset did not leak in
    assert out["scaler"]["n_rows"] == len(fold.train_indices)
    assert out["scaler"]["speakers"] == out["train_speakers"] == ["s1", "s2", "s3"]
    # C was chosen by leaving out each training speaker in turn, never the test speaker.
    for entry in out["model_selection"]["grid"]:
        assert sorted(entry["per_speaker"]) == ["s1", "s2", "s3"]
    assert out["chosen_C"] in FAST_GRID
    assert out["test_indices"] == fold.test_indices.tolist()


def test_per_speaker_normalisation_removes_speaker_offsets():
    features, corpus = _synthetic_features()
    speakers = corpus.speaker_ids
    features[:, 0] = 7.0  # a constant feature is centred, not divided by zero
    normalized = svm.per_speaker_standardize(features, speakers)
    for speaker in corpus.speakers:
        rows = normalized[speakers == speaker]
        np.testing.assert_allclose(rows.mean(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(rows[:, 1:].std(axis=0), 1.0, rtol=1e-12)
    assert np.all(normalized[:, 0] == 0.0)

    features[speakers == "s0"] += 1e6
    fold = loso_folds(corpus, speakers=["s0"])[0]
    config = BaselineConfig("IS09", "speaker", c_grid=FAST_GRID)
    out = svm.evaluate_fold(features, corpus.labels, speakers, fold, config)
    accuracy = np.mean(np.array(out["y_pred"]) == np.array(out["y_true"]))
    assert accuracy > 0.8  # the offset is gone for the test speaker too: that is what the option buys


def test_fold_checks():
    features, corpus = _synthetic_features(n_speakers=3)
    config = BaselineConfig("IS09", c_grid=FAST_GRID)
    held = loso_folds(corpus, validation="next")[0]
    with pytest.raises(ValueError, match="validation='none'"):
        svm.evaluate_fold(features, corpus.labels, corpus.speaker_ids, held, config)
    fold = loso_folds(corpus)[0]
    leaky = type(fold)(fold.test_speaker, np.arange(len(corpus)), fold.test_indices)
    with pytest.raises(ValueError, match="test speaker's utterances appear in the training"):
        svm.evaluate_fold(features, corpus.labels, corpus.speaker_ids, leaky, config)
    with pytest.raises(ValueError, match="normalization must be one of"):
        BaselineConfig("IS09", "test")


# -- run directory ---------------------------------------------------------------------------------

def test_run_writes_folds_and_resume_skips_finished_folds(tmp_path, monkeypatch):
    features, corpus = _synthetic_features()
    first = _run(corpus, features, tmp_path, speakers=["s0", "s1"])
    assert first.computed == ("s0", "s1") and first.skipped == ()
    results = json.loads((tmp_path / "results.json").read_text())
    assert not results["complete"] and results["speakers_missing"] == ["s2", "s3"]

    fold_file = tmp_path / "fold_s0.json"
    record = json.loads(fold_file.read_text())
    for key in ("wa", "ua", "confusion", "predictions", "history", "wall_time_s", "config", "channel_stats"):
        assert key in record
    assert record["history"]["svm"]["C"] in FAST_GRID
    assert record["config"] == BaselineConfig("IS09", c_grid=FAST_GRID).to_dict()
    assert len(record["predictions"]) == record["n_test"] == 15
    assert os.path.basename(record["predictions"][0]["path"]) == "s0_0_0.wav"
    before = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in tmp_path.glob("fold_*.json")}

    calls = []
    evaluate = svm.evaluate_fold

    def counting(*args, **kwargs):
        calls.append(args[3].test_speaker)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(svm, "evaluate_fold", counting)
    second = _run(corpus, features, tmp_path)  # all four folds asked for now
    assert calls == ["s2", "s3"]
    assert second.skipped == ("s0", "s1") and second.computed == ("s2", "s3")
    for path, (content, mtime) in before.items():
        assert path.read_bytes() == content and path.stat().st_mtime_ns == mtime

    third = _run(corpus, features, tmp_path)
    assert calls == ["s2", "s3"] and third.computed == ()
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["complete"] and results["speakers_done"] == ["s0", "s1", "s2", "s3"]
    assert results["pooled"]["n"] == len(corpus)
    assert results["mean"]["wa"] == pytest.approx(np.mean([f["wa"] for f in results["folds"]]))
    assert results["std_ddof"] == 1
    assert results["versions"]["scikit-learn"] and results["versions"]["machine"]
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp-")]

    # Another configuration or other features in the same directory are refused, not mixed in.
    with pytest.raises(ValueError, match="another config"):
        _run(corpus, features, tmp_path, normalization="speaker")
    with pytest.raises(ValueError, match="another data"):
        _run(corpus, features + 1.0, tmp_path)


def test_per_speaker_variant_is_labelled_everywhere(tmp_path):
    features, corpus = _synthetic_features(n_speakers=3)
    plain = _run(corpus, features, tmp_path / "train")
    assert plain.results["config"]["normalization"] == "train"
    assert plain.results["uses_test_speaker_audio"] is False
    assert "per-speaker" not in plain.results["label"]

    run = _run(corpus, features, tmp_path / "speaker", normalization="speaker")
    results = json.loads((tmp_path / "speaker" / "results.json").read_text())
    assert results["config"]["normalization"] == "speaker"
    assert results["uses_test_speaker_audio"] is True
    assert "per-speaker normalisation" in results["label"]
    assert "test speaker's unlabelled audio" in results["protocol"]
    assert results["config"]["normalization"] == "speaker"
    assert "uses the test speaker's unlabelled audio" in (tmp_path / "speaker" / "results.md").read_text()
    for speaker in run.computed:
        fold = json.loads((tmp_path / "speaker" / f"fold_{speaker}.json").read_text())
        assert fold["uses_test_speaker_audio"] is True and "per-speaker" in fold["label"]


# -- packaging and the command ---------------------------------------------------------------------

def test_package_imports_neither_tensorflow_nor_keras():
    # keras_ser/__init__.py (the model zoo) imports Keras; stand it in with a bare package so
    # that only what keras_ser.baselines itself imports is seen.
    code = (
        "import sys, types; "
        f"package = types.ModuleType('keras_ser'); package.__path__ = [{os.path.join(ROOT, 'keras_ser')!r}]; "
        "sys.modules['keras_ser'] = package; "
        "import keras_ser.baselines.svm, keras_ser.baselines.opensmile_features, keras_ser.baselines.config; "
        "heavy = [m for m in ('tensorflow', 'keras', 'opensmile', 'sklearn') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""  # opensmile and sklearn are imported on first use only


def test_missing_extra_names_the_install_command(monkeypatch):
    import importlib.util

    from keras_ser.baselines import dependencies, opensmile_features

    for name in ("sklearn", "sklearn.svm"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import sklearn.svm` fail
    with pytest.raises(ImportError, match=r"'scikit-learn'.*pip install 'keras-ser\[baselines\]'"):
        dependencies.require("sklearn.svm")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # as if opensmile were not installed
    with pytest.raises(ImportError, match=r"'opensmile'.*pip install 'keras-ser\[baselines\]'"):
        opensmile_features.extract_functionals([__file__], "IS09")


def test_command_help_and_bad_flags():
    script = os.path.join(ROOT, "experiments", "baselines.py")
    result = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for flag in ("--data_dir", "--feature_set", "--normalization", "--run_dir", "--folds"):
        assert flag in result.stdout
    result = subprocess.run(
        [sys.executable, script, "--data_dir=.", "--normalization=test"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "choose from train, speaker" in result.stderr


def test_command_end_to_end_on_synthetic_corpus(synthetic_corpus, tmp_path, capsys):
    pytest.importorskip("opensmile")
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    try:
        import baselines as command
    finally:
        sys.path.pop(0)
    data_dir = os.path.dirname(synthetic_corpus.paths[0])
    argv = [
        f"--data_dir={data_dir}",
        "--feature_set=IS09",
        "--normalization=train,speaker",
        f"--run_dir={tmp_path / 'runs'}",
        f"--cache_dir={tmp_path / 'cache'}",
        "--c_grid=0.01,1",
    ]
    assert command.main(argv) == 0
    for slug in ("emodb-is09-train", "emodb-is09-speaker"):
        results = json.loads((tmp_path / "runs" / slug / "results.json").read_text())
        assert results["complete"] and results["pooled"]["n"] == len(synthetic_corpus)
        assert results["provenance"]["features"]["config_file"] == "is09-13/IS09_emotion.conf"
        assert results["provenance"]["command"].endswith("--c_grid=0.01,1")
    summary = (tmp_path / "runs" / "summary.md").read_text()
    assert "speaker (uses test speaker audio)" in summary
    capsys.readouterr()
    assert command.main(argv) == 0  # everything resumed: features from the cache, no fold recomputed
    output = capsys.readouterr().out
    assert "from cache" in output and "0 computed now, 3 resumed" in output


# -- one run folder for every system ---------------------------------------------------------------

def test_baseline_run_folder_is_the_loso_runners_and_reproduce_reads_it(tmp_path):
    """The folder the Keras runner writes (run.json + fold_<speaker>.json), its progress lines and its resume;
    experiments/reproduce's loader gives the pooled WA/UA of the predictions themselves."""
    from sklearn.metrics import balanced_accuracy_score

    from keras_ser.training import report

    features, corpus = _synthetic_features()
    features = features + np.random.default_rng(1).normal(0.0, 4.0, features.shape)  # not separable: WA < 1
    config = BaselineConfig("IS09", c_grid=FAST_GRID)
    lines = []

    def run():
        return svm.run_loso(features, corpus.labels, corpus.speaker_ids, loso_folds(corpus), str(tmp_path), config,
                            corpus.class_names, paths=corpus.paths, log=lines.append,
                            provenance={"corpus": "toy", "command": "python experiments/baselines.py --toy"})

    first = run()
    speakers = list(corpus.speakers)
    assert set(os.listdir(tmp_path)) >= {"run.json", "results.json", "results.md"} | {
        f"fold_{s}.json" for s in speakers}
    assert not (tmp_path / "folds").exists() and not list(tmp_path.glob("fold-*.json"))
    keras_fold_keys = {"test_speaker", "validation_speaker", "n_train", "n_validation", "n_test", "wa", "ua",
                       "confusion", "class_names", "predictions", "epochs_run", "best_epoch", "history",
                       "channel_stats", "wall_time_s", "config", "feature_config", "corpus", "versions"}
    y_true, y_pred = [], []
    for speaker in speakers:
        fold = json.loads((tmp_path / f"fold_{speaker}.json").read_text())
        assert keras_fold_keys <= set(fold)
        assert {"path", "label", "predicted", "probabilities"} <= set(fold["predictions"][0])
        assert fold["history"]["svm"]["C"] in FAST_GRID and not fold["uses_test_speaker_audio"]
        y_true += [p["label"] for p in fold["predictions"]]
        y_pred += [p["predicted"] for p in fold["predictions"]]
    assert 0.3 < np.mean(np.array(y_true) == np.array(y_pred)) < 1.0
    run_json = json.loads((tmp_path / "run.json").read_text())
    assert run_json["config"] == config.to_dict() and run_json["protocol"] == config.protocol
    assert run_json["uses_test_speaker_audio"] is False and run_json["speakers"] == speakers
    # The report is the Keras runs' report, computed from the fold files alone.
    assert first.results == json.loads((tmp_path / "results.json").read_text()) == report.summarise(str(tmp_path))

    from experiments.reproduce import runs

    loaded = runs.load_run(str(tmp_path))
    wa, ua, n = runs.pooled(loaded)
    assert n == len(corpus) and loaded.speakers == speakers
    assert wa == pytest.approx(np.mean(np.array(y_true) == np.array(y_pred)))
    assert ua == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert (wa, ua) == pytest.approx((first.results["pooled"]["wa"], first.results["pooled"]["ua"]))
    assert loaded.folds["s0"]["probe_c"] in FAST_GRID and loaded.protocol == config.protocol
    assert not loaded.uses_test_audio and loaded.command == "python experiments/baselines.py --toy"
    assert runs.fold_stats(loaded, "ua")[0] == pytest.approx(first.results["mean"]["ua"])
    # The runner's progress lines, with the configuration's slug and the chosen C.
    assert lines[0] == "[is09-train] [fold 1/4] speaker s0: training on 45 utterances, testing on 15"
    assert lines[1].startswith("[is09-train] [fold 1/4] speaker s0: WA ") and ", C=" in lines[1]

    # Resumed: every fold is found done and skipped, nothing is rewritten.
    before = {path: path.stat().st_mtime_ns for path in tmp_path.glob("fold_*.json")}
    lines.clear()
    again = run()
    assert again.computed == () and again.skipped == tuple(speakers)
    assert len(lines) == 4 and all(line.endswith("; skipped") and "already done" in line for line in lines)
    assert {path: path.stat().st_mtime_ns for path in tmp_path.glob("fold_*.json")} == before
    assert again.results["pooled"] == first.results["pooled"]


def test_new_feature_sets_are_accepted_and_named_everywhere():
    from keras_ser.baselines.opensmile_features import FEATURE_SETS, check_feature_set

    for name, dimension in (("ComParE_2016", 6373), ("eGeMAPSv02", 88)):
        for spelling in (name, name.lower(), name.upper()):
            assert BaselineConfig(spelling).feature_set == name
        assert FEATURE_SETS[name][2] == dimension
        config = BaselineConfig(name)
        assert config.slug == f"{name.lower()}-train" and f"{dimension} features" in config.protocol
        assert check_feature_set(name) == name
    with pytest.raises(ValueError, match="feature_set must be one of"):
        BaselineConfig("ComParE_2013")
    # The command and experiments/reproduce's Table V know them too.
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    try:
        import baselines as command
    finally:
        sys.path.pop(0)
    assert set(command.FEATURE_SETS) == set(FEATURE_SETS)
    assert command.build_parser().parse_args(["--data_dir=.", "--feature_set=compare_2016,EGEMAPSV02"]).feature_set \
        == ["ComParE_2016", "eGeMAPSv02"]
    from experiments.reproduce import grids
    from experiments.reproduce import protocols

    rows = {os.path.basename(row.name): row for row in grids.table_rows("V", "cpu", "/b")}
    assert rows["emodb-compare_2016-train"].baseline == ("ComParE_2016", "train")
    assert rows["emodb-egemapsv02-train"].label.startswith("openSMILE eGeMAPSv02 + linear SVM, standardised")
    assert "--feature_set=ComParE_2016 --normalization=train" in protocols.baseline_command(
        "/b/emodb-compare_2016-train")
    assert {"emodb-compare_2016-train", "emodb-egemapsv02-train"} <= set(grids.row_names(["V"], "cpu", "/b"))


def test_reproduce_table_v_runs_a_missing_baseline_row(synthetic_corpus, tmp_path, monkeypatch, capsys):
    pytest.importorskip("opensmile")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # experiments/baselines.py's feature cache
    from experiments.reproduce import cli

    data_dir = os.path.dirname(synthetic_corpus.paths[0])
    baselines_dir, results = tmp_path / "baselines", tmp_path / "results.md"
    argv = ["--table=V", "--rows=emodb-egemapsv02-train", f"--data_dir={data_dir}", f"--baselines_dir={baselines_dir}",
            f"--run_root={tmp_path / 'runs'}", f"--results={results}"]
    assert cli.main(argv) == 0
    run_dir = baselines_dir / "emodb-egemapsv02-train"
    assert sorted(p.name for p in run_dir.glob("fold_*.json")) == [f"fold_{s}.json" for s in synthetic_corpus.speakers]
    assert json.loads((run_dir / "run.json").read_text())["command"].startswith(
        "python experiments/baselines.py --data_dir=")
    row = next(line for line in results.read_text().splitlines()
               if line.startswith("| openSMILE eGeMAPSv02 + linear SVM, standardised on the training speakers |"))
    assert f"| all {len(synthetic_corpus.speakers)} |" in row and "CPU" in row
    assert not (tmp_path / "runs" / "cnn_sru_n3").exists()  # --rows: the reference row was not trained
    capsys.readouterr()
    assert cli.main(argv) == 0  # resumed
    assert "0 computed now, 3 resumed" in capsys.readouterr().out
