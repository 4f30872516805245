"""experiments/reproduce: grids, reading run folders, tables, paired tests, docs/results.md blocks, the leaderboard."""

import json
import os

import numpy as np
import pytest
from scipy import stats

from experiments.reproduce import cli
from experiments.reproduce import grids
from experiments.reproduce import leaderboard
from experiments.reproduce import markdown
from experiments.reproduce import protocols
from experiments.reproduce import refresh
from experiments.reproduce import runs
from keras_ser.training import scores
from keras_ser.training.config import TrainConfig
from tf_pipeline.atomic import write_json_atomic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ["anger", "boredom", "neutral"]
SPEAKERS = ["03", "08", "09", "10"]


def fake_predictions(speaker, correct, n=6, seed=0):
    """n utterances of speaker with `correct` of them right; labels cycle through the classes."""
    rng = np.random.default_rng(seed + int(speaker))
    labels = np.arange(n) % len(CLASSES)
    predicted = labels.copy()
    wrong = rng.choice(n, n - correct, replace=False)
    predicted[wrong] = (labels[wrong] + 1) % len(CLASSES)
    probabilities = np.full((n, len(CLASSES)), 0.1)
    probabilities[np.arange(n), predicted] = 0.8
    return labels, predicted, probabilities


def write_train_run(run_dir, corrects, config=None, speakers=SPEAKERS, seed=0, feature_config=None, history=None,
                    epochs_run=None):
    os.makedirs(run_dir, exist_ok=True)
    config = config or TrainConfig(**grids.PRESETS["cpu"]["base"]).to_dict()
    write_json_atomic(os.path.join(run_dir, "run.json"), {
        "config": config, "corpus": "emodb", "command": f"python -m experiments.reproduce --fake {run_dir[-6:]}",
        "feature_config": feature_config or {}, "class_names": CLASSES, "data_dir": None, "num_utterances": 24})
    for speaker, correct in zip(speakers, corrects):
        labels, predicted, probabilities = fake_predictions(speaker, correct, seed=seed)
        write_json_atomic(os.path.join(run_dir, f"fold_{speaker}.json"), {
            "test_speaker": speaker, "validation_speaker": None, "n_train": 18, "n_test": len(labels),
            "wa": scores.weighted_accuracy(labels, predicted),
            "ua": scores.unweighted_accuracy(labels, predicted, len(CLASSES)),
            "confusion": scores.confusion_matrix(labels, predicted, len(CLASSES)).tolist(),
            "class_names": CLASSES,
            "predictions": [{"path": f"{speaker}_{i}.wav", "label": int(l), "predicted": int(p),
                             "probabilities": pr.tolist()}
                            for i, (l, p, pr) in enumerate(zip(labels, predicted, probabilities))],
            "epochs_run": epochs_run or {"end_to_end": 7}, "best_epoch": {"end_to_end": 2}, "wall_time_s": 30.0,
            "history": history or {},
            "versions": {"platform": "Linux-x86_64", "cpu_count": 2, "tensorflow": "2.21.0", "keras_backend": "tensorflow",
                         "gpus": []}})


def write_baseline_run(run_dir, corrects, speaker_norm=False):
    """A run folder of experiments/baselines.py: the LOSO runner's layout (run.json + fold_<speaker>.json)."""
    os.makedirs(run_dir, exist_ok=True)
    feature_set, normalization = os.path.basename(run_dir).split("-")[1:]
    config = {"feature_set": feature_set.upper(), "normalization": normalization, "kernel": "linear",
              "c_grid": [0.001, 0.01, 0.1], "selection_metric": "ua"}
    write_json_atomic(os.path.join(run_dir, "run.json"), {
        "config": config, "corpus": "emodb", "class_names": CLASSES, "feature_config": {"dimension": 1582},
        "command": f"python experiments/baselines.py --feature_set={feature_set.upper()}", "speakers": SPEAKERS,
        "label": f"{feature_set.upper()} + linear SVM", "protocol": "openSMILE functionals, linear SVM.",
        "uses_test_speaker_audio": speaker_norm})
    for speaker, correct in zip(SPEAKERS, corrects):
        labels, predicted, probabilities = fake_predictions(speaker, correct, seed=7)
        write_json_atomic(os.path.join(run_dir, f"fold_{speaker}.json"), {
            "test_speaker": speaker, "validation_speaker": None, "n_train": 18, "n_validation": 0,
            "n_test": len(labels), "wa": scores.weighted_accuracy(labels, predicted),
            "ua": scores.unweighted_accuracy(labels, predicted, len(CLASSES)),
            "confusion": scores.confusion_matrix(labels, predicted, len(CLASSES)).tolist(), "class_names": CLASSES,
            "predictions": [{"path": f"{speaker}_{i}.wav", "label": int(l), "predicted": int(p),
                             "probabilities": np.eye(len(CLASSES))[p].tolist()}
                            for i, (l, p) in enumerate(zip(labels, predicted))],
            "epochs_run": {"svm": 1}, "best_epoch": {"svm": 1}, "history": {"svm": {"C": 0.01}},
            "wall_time_s": 1.0, "config": config, "versions": {"platform": "Linux", "cpu_count": 2}})


@pytest.fixture()
def fake_runs(tmp_path):
    root = str(tmp_path / "runs" / "cpu")
    baselines = str(tmp_path / "baselines")
    write_train_run(os.path.join(root, "cnn_sru_n3"), [5, 4, 6, 3])
    write_train_run(os.path.join(root, "cnn"), [3, 3, 4, 2])
    write_train_run(os.path.join(root, "sru"), [2, 3], speakers=["03", "08"])  # a subset of folds
    config = TrainConfig(**{**grids.PRESETS["cpu"]["base"], "speaker_norm": True}).to_dict()
    write_train_run(os.path.join(root, "lever_speaker_norm"), [6, 5, 6, 4], config=config)
    for n in (1, 2, 4, 5):
        write_train_run(os.path.join(root, f"cnn_sru_n{n}"), [4, 4, 5, 3], seed=n)
    write_baseline_run(os.path.join(baselines, "emodb-is09-train"), [4, 4, 5, 3])
    write_baseline_run(os.path.join(baselines, "emodb-is10-train"), [5, 5, 5, 4])
    write_baseline_run(os.path.join(baselines, "emodb-is10-speaker"), [6, 6, 6, 5], speaker_norm=True)
    return root, baselines


def test_load_run_reads_training_and_baseline_runs_into_the_same_scores(fake_runs):
    root, baselines = fake_runs
    run = runs.load_run(os.path.join(root, "cnn_sru_n3"))
    assert run.speakers == SPEAKERS and run.class_names == CLASSES and not run.uses_test_audio
    wa, ua, n = runs.pooled(run)
    assert n == 24 and wa == pytest.approx(18 / 24)
    labels = np.concatenate([run.folds[s]["labels"] for s in SPEAKERS])
    predicted = np.concatenate([run.folds[s]["predicted"] for s in SPEAKERS])
    assert ua == pytest.approx(scores.unweighted_accuracy(labels, predicted, 3))
    assert runs.fold_stats(run, "wa") == pytest.approx(
        (np.mean([5 / 6, 4 / 6, 1, 3 / 6]), np.std([5 / 6, 4 / 6, 1, 3 / 6], ddof=1)))
    baseline = runs.load_run(os.path.join(baselines, "emodb-is10-train"))
    assert baseline.speakers == SPEAKERS and runs.pooled(baseline)[0] == pytest.approx(19 / 24)
    assert runs.load_run(os.path.join(baselines, "emodb-is10-speaker")).uses_test_audio
    assert runs.load_run(os.path.join(root, "lever_speaker_norm")).uses_test_audio
    assert runs.load_run(os.path.join(root, "absent")) is None


def test_paired_test_is_scipy_ttest_rel_on_shared_folds(fake_runs):
    root, baselines = fake_runs
    a = runs.load_run(os.path.join(root, "cnn"))
    b = runs.load_run(os.path.join(root, "cnn_sru_n3"))
    test = runs.paired(a, b)
    expected = stats.ttest_rel([5 / 6, 4 / 6, 1, 3 / 6], [3 / 6, 3 / 6, 4 / 6, 2 / 6])
    assert test["speakers"] == SPEAKERS
    assert test["wa"]["t"] == pytest.approx(expected.statistic) and test["wa"]["p"] == pytest.approx(expected.pvalue)
    assert test["wa"]["difference"] == pytest.approx(np.mean([2, 1, 2, 1]) / 6)
    assert test["wa"]["pooled_a"] == pytest.approx(12 / 24) and test["wa"]["pooled_b"] == pytest.approx(18 / 24)
    # Only the folds both runs finished count; below two there is no test.
    sru = runs.load_run(os.path.join(root, "sru"))
    assert runs.paired(sru, b)["speakers"] == ["03", "08"]
    one = os.path.join(root, "one")
    write_train_run(one, [3], speakers=["03"])
    assert runs.paired(runs.load_run(one), b) is None
    # A baseline (experiments/baselines.py, the same layout) pairs with a training run.
    is10 = runs.load_run(os.path.join(baselines, "emodb-is10-train"))
    assert runs.paired(is10, b)["speakers"] == SPEAKERS


def test_tables_show_ours_next_to_the_paper_and_label_test_speaker_audio(fake_runs, tmp_path):
    root, baselines = fake_runs
    results = str(tmp_path / "results.md")
    text = refresh.write_results(results, list(grids.TABLES), "cpu", root, SPEAKERS, baselines)
    assert text.startswith("# Reproducing Jiang, Fu & Tao (2019)")
    # Table II: N=3 (the reference) with the paper's 82.5 / 80.6; pooled WA 75.0 of 24 utterances, all 4 folds.
    block = text[text.index("<!-- reproduce:begin table=II runs=cpu -->"):text.index("<!-- reproduce:end table=II runs=cpu -->")]
    n3 = next(line for line in block.splitlines() if line.startswith("| CNN+SRU, N=3"))
    assert "| all 4 | **75.0** |" in n3 and "| 82.5 / 80.6 |" in n3 and "CPU, 2 cores (TF 2.21.0)" in n3
    n1 = next(line for line in block.splitlines() if line.startswith("| CNN+SRU, N=1"))
    assert "| 78.9 / 76.1 |" in n1
    assert "ensemble over N" in block and "not run" in block  # the ensemble is built by main, not here
    assert "Protocols:" in block  # protocol text comes from each run's config
    assert "Adam lr 0.001 up to 20 epochs, batch 16, early stopping on the next training speaker" in block
    # Table III: the SRU ran 2 folds; its Δ vs the reference is on those 2 folds only.
    block = text[text.index("table=III runs=cpu -->"):text.index("<!-- reproduce:end table=III")]
    sru = next(line for line in block.splitlines() if line.startswith("| SRU alone"))
    assert "| 2: 03,08 |" in sru and "(2 folds)" in sru and "| 64.2 / 61.5 |" in sru
    # Table V reads the baselines; per-speaker normalisation is labelled; IS09 per-speaker is absent.
    block = text[text.index("table=V runs=cpu -->"):text.index("<!-- reproduce:end table=V")]
    assert "| openSMILE IS10 + linear SVM, standardised on the training speakers | all 4 | **79.2** |" in block
    speaker = next(line for line in block.splitlines() if "IS10 + linear SVM, PER-SPEAKER" in line)
    assert "[uses test-speaker audio]" in speaker
    assert next(line for line in block.splitlines() if "IS09 + linear SVM, PER-SPEAKER" in line).count("not run") == 1
    # Levers: speaker_norm labelled; the others not run yet, with the command that makes them.
    block = text[text.index("table=levers runs=cpu -->"):text.index("<!-- reproduce:end table=levers")]
    assert "PER-SPEAKER NORMALISATION" in block and "[uses test-speaker audio]" in block
    assert "`python -m experiments.reproduce --table=levers --preset=cpu`" in block
    # Table IV: cnn vs cnn_sru_n3 with scipy's p.
    block = text[text.index("table=IV runs=cpu -->"):text.index("<!-- reproduce:end table=IV")]
    expected = stats.ttest_rel([5 / 6, 4 / 6, 1, 3 / 6], [3 / 6, 3 / 6, 4 / 6, 2 / 6])
    row = next(line for line in block.splitlines() if line.startswith("| cnn | cnn_sru_n3 |"))
    assert f"| {expected.statistic:.2f} | {expected.pvalue:.3f} |" in row
    assert any(line.startswith("| IS09+SVM | IS10+SVM | 4 |") for line in block.splitlines())
    assert any(line.startswith("| cnn_sru_n3 | ensemble_n1-5 | < 2 |") for line in block.splitlines())


def test_results_md_keeps_hand_written_text_and_replaces_blocks(tmp_path):
    path = str(tmp_path / "results.md")
    markdown.update_results_md(path, {"table=II runs=cpu": "first\n"})
    with open(path, "a") as handle:
        handle.write("\n## Analysis written by hand\n\nkeep me\n")
    markdown.update_results_md(path, {"table=II runs=cpu": "second\n", "table=III runs=cpu": "third\n"})
    text = open(path).read()
    assert "first" not in text and "second" in text and "third" in text and "keep me" in text
    assert text.index("second") < text.index("keep me") < text.index("third")
    again = markdown.update_results_md(path, {"table=II runs=cpu": "second\n", "table=III runs=cpu": "third\n"})
    assert again == text  # idempotent


def test_report_only_builds_the_ensemble_over_n_and_logs_nothing_trained(fake_runs, tmp_path, capsys):
    root, baselines = fake_runs
    results = str(tmp_path / "results.md")
    wavs = tmp_path / "wav"
    wavs.mkdir()
    for speaker in SPEAKERS:
        (wavs / f"{speaker}a01Wa.wav").write_bytes(b"")
    assert cli.main(["--table=II", "--report_only", f"--run_root={root}", f"--results={results}",
                           f"--baselines_dir={baselines}", f"--data_dir={wavs}"]) == 0
    ensemble = runs.load_run(os.path.join(root, "ensemble_n1-5"))
    assert ensemble.speakers == SPEAKERS
    text = open(results).read()
    assert "| ensemble over N = 1..5 (mean probabilities) | all 4 |" in text
    assert not os.path.exists(os.path.join(root, "invocations.jsonl"))  # nothing ran


def test_grid_configs_levers_and_overrides():
    trains, ensembles = grids.grid(["II", "III", "levers", "imagenet", "IV"], "cpu", {})
    names = [train.name for train in trains]
    assert len(names) == len(set(names)) == 15 and [row.name for row in ensembles] == ["ensemble_n1-5"]
    configs = {train.name: train.config for train in trains}
    base = configs["cnn_sru_n3"].to_dict()
    assert base["validation"] == "next" and base["image_size"] == 67 and base["recipe"] == "end_to_end"
    for lever, (_, overrides) in grids.LEVERS.items():
        changed = {k: v for k, v in configs[f"lever_{lever}"].to_dict().items() if base[k] != v}
        assert changed == {k: v for k, v in overrides.items() if base[k] != v}, lever
    frozen = configs["effnet_imagenet_frozen"]
    assert frozen.recipe == "paper" and frozen.stage1_epochs == 0 and frozen.backbone_weights == "imagenet"
    control = configs["effnet_random_frozen"]
    assert control.backbone_weights is None and {
        k for k, v in control.to_dict().items() if frozen.to_dict()[k] != v} == {"backbone_weights"}
    regularised = configs["effnet_imagenet_frozen_fd"]
    assert {k for k, v in regularised.to_dict().items() if frozen.to_dict()[k] != v} == {"stage2_dropout"}
    assert configs["cnn"].model == "cnn" and configs["sru"].model == "sru"
    # --epochs scales every row: end_to_end epochs, the paper recipe's stage 2; the run folder says so.
    scaled = _configs(grids.grid(["imagenet"], "cpu", {"epochs": 2})[0])
    assert scaled["cnn_sru_n3"].epochs == 2 and scaled["effnet_imagenet_frozen"].stage2_epochs == 2
    assert scaled["effnet_imagenet_frozen"].stage1_epochs == 0
    tiny = _configs(grids.grid(["imagenet"], "cpu", {"backbone_kwargs": {"filters": [4] * 5, "fc_units": 8}})[0])
    assert tiny["cnn_sru_n3"].backbone_kwargs == {"filters": [4] * 5, "fc_units": 8}
    assert tiny["effnet_imagenet_frozen"].backbone_kwargs is None  # AlexNet widths stay off EfficientNet
    assert grids.run_root_name("cpu", {}) == "cpu"
    assert grids.run_root_name("cpu", {"epochs": 2, "patience": 1}) == "cpu_epochs2_patience1"
    paper = _configs(grids.grid(["II", "imagenet"], "paper", {})[0])
    assert paper["cnn_sru_n3"].image_size == 227 and paper["cnn_sru_n3"].sru_units == 4096
    assert paper["effnet_imagenet_finetune"].stage1_epochs == 40


def _configs(trains):
    return {train.name: train.config for train in trains}


def test_device_command_fits_the_device_tool():
    command = cli.device_command(["--table=II", "--preset=paper", "--print_device_command", "--results=x"])
    assert "--print_device_command" not in command and "--results=x" not in command
    assert "--features=.gpu_data/emodb.npz" in command and "KERAS_BACKEND=jax" in command
    assert "--table=II --preset=paper" in command and len(command) <= 2000
    assert "python3 -m experiments.reproduce --table=II" in command
    # The package runs as `python -m experiments.reproduce` from the repository root.
    import subprocess
    import sys

    argv = ["--table=II", "--preset=paper", "--print_device_command"]
    printed = subprocess.run([sys.executable, "-m", "experiments.reproduce"] + argv, cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    assert printed == cli.device_command(argv) + "\n"


def test_help_and_tiny_end_to_end_run(tmp_path, synthetic_corpus, monkeypatch):
    """A tiny table III on the synthetic corpus (EMO-DB file names) through the real runner, then resumed."""
    import keras

    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(["--help"])
    assert exit_info.value.code == 0
    data_dir = os.path.dirname(synthetic_corpus.records[0].path)
    root, results = str(tmp_path / "runs"), str(tmp_path / "results.md")
    tiny = json.dumps({"backbone_kwargs": {"filters": [4, 4, 4, 4, 4], "fc_units": 8}, "sru_units": 8, "patience": 1,
                       "image_size": 99})
    argv = ["--table=III", f"--data_dir={data_dir}", "--folds=01,02", "--epochs=1", f"--override={tiny}",
            f"--run_root={root}", f"--results={results}", "--verbose=0"]
    assert cli.main(argv) == 0
    for name in ("cnn_sru_n3", "cnn", "sru"):
        assert {"fold_01.json", "fold_02.json", "run.json"} <= set(os.listdir(os.path.join(root, name)))
        fold = json.load(open(os.path.join(root, name, "fold_01.json")))
        assert fold["config"]["epochs"] == 1 and fold["config"]["validation"] == "next"
        assert fold["validation_speaker"] not in (None, "01")
    text = open(results).read()
    assert "| CNN+SRU, N=3 (ref) | 2: 01,02 |" in text and "### Commands that ran" in text
    log = [json.loads(line) for line in open(os.path.join(root, "invocations.jsonl"))]
    assert log[0]["folds_trained"] == 6 and "--table=III" in log[0]["command"]
    assert cli.main(argv) == 0  # resumed: nothing left to train
    log = [json.loads(line) for line in open(os.path.join(root, "invocations.jsonl"))]
    assert log[1]["folds_trained"] == 0


def write_speech_runs(root):
    """Fake run folders of the speech table's encoder rows (probe on raw audio and at -30 dBFS, SRU head)."""
    probe = TrainConfig(**grids.SPEECH_PROBE).to_dict()
    history = {"probe": {"C": 0.3, "inner_ua": {"0.3": 0.8}}}
    write_train_run(os.path.join(root, "encoder_stats_probe"), [6, 5, 6, 5], config=probe, history=history,
                    epochs_run={"probe": 1}, feature_config={"sample_rate": 16000, "n_mels": 40, "volume_dbfs": None})
    write_train_run(os.path.join(root, "encoder_stats_probe_vol30"), [6, 5, 5, 5], config=probe, history=history,
                    epochs_run={"probe": 1}, feature_config={"sample_rate": 16000, "n_mels": 40, "volume_dbfs": -30.0})
    write_train_run(os.path.join(root, "encoder_sru_frozen"), [5, 5], speakers=["03", "08"],
                    config=TrainConfig(**grids.SPEECH_SRU).to_dict(), epochs_run={"frozen": 12})


def _block(text, key):
    return text[text.index(f"<!-- reproduce:begin {key} -->"):text.index(f"<!-- reproduce:end {key} -->")]


def test_speech_rows_are_configs_of_their_own_with_feature_overrides():
    trains, ensembles = grids.grid(["speech"], "cpu", {})
    by_name = {train.name: train for train in trains}
    assert list(by_name) == ["encoder_stats_probe", "encoder_stats_probe_vol30", "encoder_sru_frozen",
                             "sfx_stats_probe", "fusion_stats_probe", "fusion_stats_subspace", "cnn_sru_n3",
                             "effnet_imagenet_frozen", "effnet_imagenet_frozen_fd"]
    assert [row.members for row in ensembles] == [("encoder_stats_probe", "sfx_stats_probe")]
    # Not the preset's CNN base: exactly the row's fields on TrainConfig's defaults.
    assert by_name["encoder_stats_probe"].config == TrainConfig(**grids.SPEECH_PROBE)
    assert by_name["encoder_stats_probe"].config.image_size == TrainConfig().image_size
    assert by_name["encoder_stats_probe"].features is None
    assert by_name["encoder_stats_probe_vol30"].config == by_name["encoder_stats_probe"].config
    assert by_name["encoder_stats_probe_vol30"].features == {"volume_dbfs": -30.0}
    sru = by_name["encoder_sru_frozen"].config
    assert (sru.model, sru.recipe, sru.n_segments, sru.epochs, sru.batch_size, sru.sru_units) == (
        "encoder_sru", "frozen", 3, 60, 32, 256)
    assert by_name["cnn_sru_n3"].config == grids.make_config("cpu", {})  # the CNN row stays the preset's
    # The second backbone and the fusion: the probe of the reference on other models; the lever is one field.
    fusion, lever = by_name["fusion_stats_probe"].config, by_name["fusion_stats_subspace"].config
    assert (fusion.model, fusion.recipe, fusion.speaker_subspace) == ("fusion_stats", "probe", 0)
    assert lever == TrainConfig(**{**grids.SPEECH_PROBE, "model": "fusion_stats", "speaker_subspace": 4})
    assert by_name["sfx_stats_probe"].config.backbone == "sound_effects_encoder"
    # --epochs reaches the SRU head; the preset's AlexNet widths stay off the encoder rows.
    scaled = {t.name: t.config for t in grids.grid(["speech"], "cpu", {"epochs": 2, "backbone_kwargs": {
        "filters": [4] * 5, "fc_units": 8}})[0]}
    assert scaled["encoder_sru_frozen"].epochs == 2 and scaled["encoder_stats_probe"].backbone_kwargs is None
    # --rows keeps the named rows only.
    only = grids.grid(["speech"], "cpu", {}, only=["encoder_stats_probe"])[0]
    assert [train.name for train in only] == ["encoder_stats_probe"]
    assert cli.parse_args(["--table=III", "--rows=cnn_sru_n3"]).rows == ["cnn_sru_n3"]
    with pytest.raises(SystemExit):
        cli.parse_args(["--table=III", "--rows=encoder_stats_probe"])


def test_speech_table_with_t_tests_per_class_recall_and_missing_rows(fake_runs, tmp_path):
    root, baselines = fake_runs
    write_speech_runs(root)
    results = str(tmp_path / "results.md")
    text = refresh.write_results(results, ["speech"], "cpu", root, SPEAKERS, baselines)
    block = _block(text, "table=speech runs=cpu")
    assert "### Pretrained speech encoder (GE2E, offline weights)" in block
    lines = block.splitlines()
    reference = next(line for line in lines if line.startswith("| GE2E encoder, mean + std of each layer (1536-d)"))
    assert "(ref)" in reference and "| all 4 | **91.7** |" in reference
    is10 = next(line for line in lines if line.startswith("| openSMILE IS10 + linear SVM"))
    assert "| 78.1 / 76.7 |" in is10 and "| all 4 | **79.2** |" in is10
    cnn = next(line for line in lines if line.startswith("| AlexNet CNN+SRU (N=3)"))
    assert "| 82.5 / 80.6 |" in cnn
    assert any(line.startswith("| EfficientNet-Lite0, ImageNet weights, frozen (SRU") and "not run" in line
               for line in lines)
    missing = next(line for line in lines if line.startswith("Not run yet: "))
    assert missing.startswith("Not run yet: `sfx_stats_probe`, `fusion_stats_probe`, `fusion_stats_subspace`, ")
    assert "`effnet_imagenet_frozen`, `effnet_imagenet_frozen_fd`" in missing
    # Paired t-tests against the reference (scipy), IS10 first; the SRU head ran 2 folds.
    expected = stats.ttest_rel([6 / 6, 5 / 6, 6 / 6, 5 / 6], [5 / 6, 5 / 6, 5 / 6, 4 / 6])
    row = next(line for line in lines if line.startswith("| IS10+SVM | encoder_stats_probe | 4 |"))
    assert f"| {expected.statistic:.2f} | {expected.pvalue:.3f} |" in row
    assert any(line.startswith("| encoder_stats_probe | encoder_sru_frozen | 2 |") for line in lines)
    assert any(line.startswith("| effnet_imagenet_frozen | encoder_stats_probe | < 2 |") for line in lines)
    # Per-class recall: a column per class, pooled over the folds; UA is their mean.
    assert "| system | folds | anger | boredom | neutral | UA |" in block
    run = runs.load_run(os.path.join(root, "encoder_stats_probe"))
    recall = runs.per_class_recall(run)
    assert sum(r for r, _ in recall.values()) / 3 == pytest.approx(runs.pooled(run)[1])
    recall_row = next(line for line in lines if line.startswith("| GE2E encoder, mean + std of each layer (1536-d)")
                      and "| all 4 | " + " | ".join(markdown.pct(recall[c][0]) for c in CLASSES) in line)
    assert recall_row.endswith(f"| {markdown.pct(runs.pooled(run)[1])} |")
    # Protocols: the encoder's text, the feature-config override, the probe's C per fold; no epochs for the probe.
    assert "- `encoder_stats_probe_vol30` (feature config `{\"volume_dbfs\": -30.0}`): GE2E speaker encoder" in block
    assert "raised to -30 dBFS RMS" in block and "raw audio (no volume normalisation)" in block
    assert "C chosen per fold: 0.3 (4 folds)." in block
    assert "SRU 256 units over the segments" in block and "Adam lr 0.001 up to 60 epochs, batch 32" in block
    assert "| 91.7 ± " in reference and reference.split("|")[10].strip() == ""  # epochs column empty
    assert "Goal: UA >= 80.6" in block


def test_results_json_has_the_required_keys_marks_test_speaker_audio_and_merges(fake_runs, tmp_path):
    root, baselines = fake_runs
    write_speech_runs(root)
    results = str(tmp_path / "docs" / "results.md")
    refresh.write_results(results, list(grids.TABLES), "cpu", root, SPEAKERS, baselines)
    path = str(tmp_path / "docs" / "results.json")
    entries = json.load(open(path))
    by_run = {entry["run"]: entry for entry in entries}
    assert len(by_run) == len(entries)  # one entry per run folder, even when several tables show it
    for entry in entries:
        assert set(leaderboard.REQUIRED_KEYS) <= set(entry), entry["run"]
        assert entry["corpus"] == "emodb" and entry["source"] == "run folder"
    n3 = by_run[os.path.join(root, "cnn_sru_n3")]
    assert n3["wa_pooled"] == 75.0 and n3["folds"] == SPEAKERS and n3["table"] == "II"
    assert n3["tables"] == ["II", "III", "V", "levers", "imagenet", "speech"]
    assert n3["per_fold"][1] == {"speaker": "08", "wa": round(100 * 4 / 6, 2), "ua": n3["per_fold"][1]["ua"]}
    assert n3["command"].startswith("python -m experiments.reproduce") and "CPU, 2 cores" in n3["machine"]
    assert "SRU 64 units" in n3["protocol"] and n3["paper"] == {"wa": 82.5, "ua": 80.6}
    assert not n3["uses_test_speaker_audio"]
    assert by_run[os.path.join(root, "lever_speaker_norm")]["uses_test_speaker_audio"] is True
    assert by_run[os.path.join(baselines, "emodb-is10-speaker")]["uses_test_speaker_audio"] is True
    assert by_run[os.path.join(baselines, "emodb-is10-train")]["uses_test_speaker_audio"] is False
    probe = by_run[os.path.join(root, "encoder_stats_probe_vol30")]
    assert probe["table"] == "speech" and '{"volume_dbfs": -30.0}' in probe["protocol"]
    assert probe["per_class_recall"].keys() == set(CLASSES) and probe["preset"] is None
    # Merge: a refresh replaces the entries of the run folders it finds and keeps the others.
    entries.append({**n3, "run": "runs/elsewhere/kept", "system": "an older system"})
    cnn_ua = by_run[os.path.join(root, "cnn")]["ua_pooled"]
    by_run[os.path.join(root, "cnn")]["ua_pooled"] = -1.0
    with open(path, "w") as handle:
        json.dump(entries, handle)
    import shutil

    shutil.rmtree(os.path.join(root, "sru"))  # its run folder is gone: keep its entry and its Table III row
    text = refresh.write_results(results, ["III"], "cpu", root, SPEAKERS, baselines)
    merged = {entry["run"]: entry for entry in json.load(open(path))}
    assert merged["runs/elsewhere/kept"]["system"] == "an older system"
    assert merged[os.path.join(root, "cnn")]["ua_pooled"] == cnn_ua  # replaced from its run folder
    assert merged[os.path.join(root, "sru")]["folds"] == ["03", "08"]
    assert "| SRU alone (frame-level log-Mel + deltas, 180-d) | 2: 03,08 |" in _block(text, "table=III runs=cpu")


def test_without_results_json_a_refresh_starts_a_new_leaderboard_from_the_run_folders(fake_runs, tmp_path):
    """results.json is the source of its entries: nothing is read back from the Markdown."""
    root, baselines = fake_runs
    results = str(tmp_path / "results.md")
    messages = []
    refresh.write_results(results, list(grids.TABLES), "cpu", root, SPEAKERS, baselines, log=messages.append)
    assert any("results.json does not exist: a new leaderboard" in message for message in messages)
    fresh = {entry["run"]: entry for entry in json.load(open(str(tmp_path / "results.json")))}
    assert set(fresh) == {protocols.run_key(os.path.join(root, name)) for name in os.listdir(root)} | {
        protocols.run_key(os.path.join(baselines, name)) for name in os.listdir(baselines)}
    for run, entry in fresh.items():
        assert set(leaderboard.REQUIRED_KEYS) <= set(entry) and entry["source"] == "run folder"
        assert len(entry["per_fold"]) == len(entry["folds"]) and entry["machine"].startswith("CPU, 2 cores")
        assert entry["command"].startswith(("python -m experiments.reproduce", "python experiments/baselines.py"))
    speaker = next(e for run, e in fresh.items() if run.endswith("lever_speaker_norm"))
    assert speaker["uses_test_speaker_audio"] is True and "PER-SPEAKER NORMALISATION" in speaker["system"]
    assert next(e for run, e in fresh.items() if run.endswith("emodb-is10-speaker"))["uses_test_speaker_audio"]
    # Deleted, the file is not seeded from the blocks of the Markdown (which still show every row): a run
    # folder gone here has no entry in the new leaderboard, the others have the same entries as before.
    import shutil

    os.remove(str(tmp_path / "results.json"))
    shutil.rmtree(os.path.join(root, "cnn"))
    text = refresh.write_results(results, ["II"], "cpu", root, SPEAKERS, baselines)
    assert "| CNN alone (one segment) | all 4 |" in text  # Table III's block as the first refresh wrote it
    kept = {entry["run"]: entry for entry in json.load(open(str(tmp_path / "results.json")))}
    assert protocols.run_key(os.path.join(root, "cnn")) not in kept
    assert kept == {run: entry for run, entry in fresh.items() if not run.endswith(os.sep + "cnn")}
    # A file that is not a list of entries is refused with what it holds.
    with open(str(tmp_path / "results.json"), "w") as handle:
        json.dump({"run": "x"}, handle)
    with pytest.raises(ValueError, match="must hold a JSON list of leaderboard entries.*Received: a dict"):
        refresh.write_results(results, ["II"], "cpu", root, SPEAKERS, baselines)


def test_a_refresh_never_turns_a_row_with_results_into_not_run(tmp_path):
    path = str(tmp_path / "results.md")
    table = "| configuration | folds | WA |\n|---|---|---:|\n| a | all 10 | **50.0** |\n| b | {b} | |\n"
    markdown.update_results_md(path, {"table=II runs=cpu": table.format(b="all 10")})
    messages = []
    text = markdown.update_results_md(path, {"table=II runs=cpu": table.format(b="not run")}, log=messages.append)
    assert "| b | all 10 |" in text and "not run" not in text and "'b'" in messages[0]
    text = markdown.update_results_md(path, {"table=II runs=cpu": table.replace("50.0", "51.0").format(b="all 10")})
    assert "**51.0**" in text  # new results replace the old ones
    text = markdown.update_results_md(path, {"table=II runs=cpu": table.format(b="not run")}, protect=False)
    assert "| b | not run |" in text  # --overwrite_blocks
    # The invocation log keeps the lines of commands whose run folders this checkout lacks.
    old = "### Commands\n\n| started (UTC) | command |\n|---|---|\n| 2026-01-01 10:00 | `a` |\n"
    new = "### Commands\n\n| started (UTC) | command |\n|---|---|\n| 2026-02-01 10:00 | `b` |\n"
    merged = markdown.merge_invocations(old, new)
    assert merged.index("`a`") < merged.index("`b`") and merged.startswith("### Commands\n\n| started (UTC) |")


# -- the leaderboard's ranking ---------------------------------------------------------------------

EMODB = list(grids.EMODB_SPEAKERS)


def _entry(run, ua, **fields):
    return {"system": f"system {run}", "run": run, "table": "speech", "corpus": "emodb", "folds": EMODB,
            "ua_pooled": ua, "wa_pooled": ua + 1.0, "uses_test_speaker_audio": False, **fields}


def test_ranking_leaves_out_test_fold_choices_test_speaker_audio_and_other_protocols():
    entries = [
        _entry("honest", 80.0, ua_mean=79.0, ua_std=5.0),
        _entry("chosen", 90.0, chosen_on_test_folds=True, chosen_on_test_folds_reason="k picked on the test folds"),
        _entry("audio", 95.0, uses_test_speaker_audio=True),
        _entry("five_folds", 99.0, folds=EMODB[:5]),
        _entry("four_classes", 98.0, classes=["anger", "happiness", "sadness", "neutral"]),
        _entry("loco", 97.0, folds=["emodb"]),  # leave-one-corpus-out: another protocol
        _entry("ravdess", 96.0, corpus="ravdess", folds=["01", "02"]),
        _entry("better", 85.0),
        _entry("flag_false", 82.0, chosen_on_test_folds=False),
    ]
    ranked, others = leaderboard.ranking(entries)
    assert [entry["run"] for entry in ranked] == ["better", "flag_false", "honest"]
    assert [(entry["run"], why) for entry, why in others] == [
        ("chosen", "chosen on the test folds: k picked on the test folds"),
        ("audio", "uses the test speaker's unlabelled audio"),
        ("five_folds", "5 of the 10 folds"),
        ("four_classes", "4 of the 7 classes")]
    text = leaderboard.ranking_markdown(entries)
    ranked_part, others_part = text.split("Not ranked")
    assert "| 1 | system better | **85.0** | 86.0 |  | speech | `better` |" in ranked_part
    assert "| 3 | system honest | **80.0** | 81.0 | 79.0 ± 5.0 |" in ranked_part
    for run in ("chosen", "audio", "five_folds", "four_classes", "loco", "ravdess"):
        assert f"`{run}`" not in ranked_part, run
    chosen = next(line for line in others_part.splitlines() if "`chosen`" in line)
    assert "| all 10 | **[chosen on the test folds]** k picked on the test folds |" in chosen
    assert "**[uses test-speaker audio]**" in next(line for line in others_part.splitlines() if "`audio`" in line)
    assert "| 5: 03,08,09,10,11 | 5 of the 10 folds |" in others_part
    assert "`loco`" not in text and "`ravdess`" not in text


def test_the_leaderboard_ranks_no_row_chosen_on_the_test_folds():
    """docs/results.json marks the rows whose setting was chosen on the test folds, and neither the ranking nor
    the Markdown of docs/results.md (in step with the file) ranks them."""
    entries = leaderboard.load(os.path.join(ROOT, "docs", "results.json"))
    nearest = [entry for entry in entries if entry["source"] == "experiments/nearest_speaker_norm.py"]
    assert {entry["run"].split()[-1] for entry in nearest} == {"k=2", "k=4"}
    for entry in nearest:
        assert entry["chosen_on_test_folds"] is True and "test folds" in entry["chosen_on_test_folds_reason"]
    ranked, others = leaderboard.ranking(entries)
    assert ranked and not [entry["run"] for entry in ranked
                           if entry.get("chosen_on_test_folds") or entry.get("uses_test_speaker_audio")]
    flagged = {entry["run"] for entry in entries if entry.get("chosen_on_test_folds")}
    assert flagged == {entry["run"] for entry, why in others if why.startswith("chosen on the test folds")}
    best = max(entry["ua_pooled"] for entry in nearest)
    assert all(entry["ua_pooled"] < best for entry in ranked)  # the k = 2 row (85.39) would top the ranking
    with open(os.path.join(ROOT, "docs", "results.md")) as handle:
        text = handle.read()
    assert markdown.existing_block(os.path.join(ROOT, "docs", "results.md"), leaderboard.BLOCK).strip() == (
        leaderboard.ranking_markdown(entries).strip())
    ranked_part = text[text.index("<!-- reproduce:begin leaderboard -->"):text.index("Not ranked (")]
    assert "nearest-training-speaker" not in ranked_part


def test_nearest_speaker_rows_are_written_marked_and_unranked(tmp_path):
    from experiments import nearest_speaker_norm

    rng = np.random.default_rng(0)

    def result(ua):
        per_fold = {"wa": {s: ua + rng.uniform(-0.05, 0.05) for s in EMODB},
                    "ua": {s: ua + rng.uniform(-0.05, 0.05) for s in EMODB}}
        return {"wa": ua + 0.01, "ua": ua, "per_fold": per_fold}

    path = str(tmp_path / "results.json")
    markdown.update_results_md(str(tmp_path / "results.md"), {"table=II runs=cpu": "kept\n"})
    write_json_atomic(path, [_entry("runs/honest", 80.0)])
    results = {"k=0": result(0.8), "k=2": result(0.9), "k=4": result(0.7)}
    nearest_speaker_norm.write_leaderboard(path, "fusion_stats", results, "python experiments/nearest_speaker_norm.py "
                                           "--data_dir=/data/emodb/wav --k=0,2,4")
    entries = leaderboard.load(path)
    assert [entry["run"] for entry in entries] == ["runs/honest", "experiments/nearest_speaker_norm.py fusion_stats k=2",
                                                   "experiments/nearest_speaker_norm.py fusion_stats k=4"]
    for entry in entries[1:]:
        assert entry["chosen_on_test_folds"] is True and "k = 2, 4" in entry["chosen_on_test_folds_reason"]
        assert entry["command"].endswith("--data_dir=<EMO-DB wav folder> --k=0,2,4")
    assert entries[1]["ua_pooled"] == 90.0
    ranked, _ = leaderboard.ranking(entries)
    assert [entry["run"] for entry in ranked] == ["runs/honest"]
    # The Markdown beside the leaderboard gets its ranking block; the rest of it is kept.
    text = open(str(tmp_path / "results.md")).read()
    assert "kept" in text and "| 1 | system runs/honest |" in text
    assert "| fusion_stats, probe, nearest-training-speaker normalisation (k=2) | 90.0 |" in text


@pytest.mark.parametrize("module", ["grids", "protocols", "markdown", "leaderboard"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"experiments.reproduce.{module}"))
    assert result.attempted > 0 and result.failed == 0
