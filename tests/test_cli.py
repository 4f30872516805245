"""The keras-ser command: help, one-line flag errors, resumable LOSO (kill -9), predict."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import tone, wav_bytes

KERAS_SER = [sys.executable, "-m", "keras_ser_cli"]
TINY_FLAGS = [
    "--corpus=synthetic", "--synthetic_speakers=3", "--synthetic_per_class=3", "--synthetic_emotions=WTN",
    "--model=cnn_sru", "--n_segments=2", "--image_size=67", "--sru_units=8", "--epochs=2", "--batch_size=9",
    '--backbone_kwargs={"filters": [4, 4, 4, 4, 4], "fc_units": 8}', "--verbose=0",
]


def run(args, **kwargs):
    """The real console command, in a subprocess."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(KERAS_SER + args, capture_output=True, text=True, env=env, timeout=600, **kwargs)


class Completed:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_here(args, capsys):
    """The same entry point (`keras_ser_cli.main.run`) in this process: no interpreter start-up."""
    from keras_ser_cli.main import run as entry

    capsys.readouterr()
    code = entry(["keras-ser"] + args)
    out = capsys.readouterr()
    return Completed(code, out.out, out.err)


def test_help_lists_subcommands_and_flags(capsys):
    out = run(["--help"])
    assert out.returncode == 0
    for name in ("demo", "loso", "train", "predict", "compare", "export", "serve-local"):
        assert name in out.stdout
    # A subcommand's help imports its module (and TensorFlow): in this process, the same entry point.
    out = run_here(["loso", "--help"], capsys)
    assert out.returncode == 0
    for flag in ("--corpus", "--n_segments", "--recipe", "--folds", "--run_dir", "--validation", "--strategy"):
        assert flag in out.stdout
    assert "Segments per utterance" in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--corpus=timit"], "flag --corpus=timit: value should be one of"),
        (["--corpus=synthetic", "--n_segments=7"], "--n_segments must be between 1 and 5. Received: --n_segments=7"),
        (["--corpus=emodb", "--data_dir={empty}"], "no .wav files found"),
        (["--corpus=synthetic", "--folds="], "--folds is empty"),
        (["--corpus=emodb"], "--data_dir is required with --corpus=emodb"),
        (["--corpus=synthetic", "--backbone_kwargs={oops"], "--backbone_kwargs is not valid JSON"),
    ],
)
def test_bad_flags_stop_with_one_line_before_any_work(tmp_path, capsys, args, message):
    args = [arg.replace("{empty}", str(tmp_path)) for arg in args]
    run_dir = tmp_path / "run"
    out = run_here(["loso", f"--run_dir={run_dir}", f"--data_dir={tmp_path / 'syn'}"] + args
              if "--data_dir" not in " ".join(args) and "emodb" not in " ".join(args)
              else ["loso", f"--run_dir={run_dir}"] + args, capsys)
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("keras-ser loso: error:")]
    assert len(errors) == 1 and message in errors[0], out.stderr
    assert "Traceback" not in out.stderr
    assert not run_dir.exists()


def test_unknown_subcommand(capsys):
    out = run_here(["fit"], capsys)
    assert out.returncode == 2 and "unknown subcommand 'fit'" in out.stderr


@pytest.mark.slow
def test_loso_resumes_after_kill_9_without_retraining_finished_folds(tmp_path, capsys):
    run_dir = tmp_path / "run"
    # The frame-level SRU: the quickest fold of the zoo; resuming does not depend on the model.
    flags = [flag for flag in TINY_FLAGS if not flag.startswith(("--model", "--n_segments", "--image_size",
                                                                 "--backbone_kwargs"))] + ["--model=sru"]
    args = ["loso", f"--data_dir={tmp_path / 'syn'}", f"--run_dir={run_dir}"] + flags
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(KERAS_SER + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    first = run_dir / "fold_01.json"
    deadline = time.time() + 300
    while not first.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert first.exists(), "the first fold never finished"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = sorted(path.name for path in run_dir.glob("fold_*.json"))
    assert finished and "fold_03.json" not in finished  # killed mid-run
    snapshot = {name: ((run_dir / name).read_bytes(), (run_dir / name).stat().st_mtime_ns) for name in finished}

    # The rerun in this process (no second interpreter start-up): it reads what the killed process left.
    out = run_here(args, capsys)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in finished:
        assert f"speaker {name[5:7]}: already done" in out.stdout
        assert ((run_dir / name).read_bytes(), (run_dir / name).stat().st_mtime_ns) == snapshot[name]
    assert sorted(path.name for path in run_dir.glob("fold_*.json")) == ["fold_01.json", "fold_02.json", "fold_03.json"]
    assert not list(run_dir.glob("*.tmp*"))
    results = json.loads((run_dir / "results.json").read_text())
    assert [fold["test_speaker"] for fold in results["folds"]] == ["01", "02", "03"]
    assert results["pooled"]["n"] == 27
    assert (run_dir / "confusion.png").exists() and (run_dir / "results.md").exists()
    assert list((run_dir / "tensorboard").iterdir())

    # Same command again: nothing to train, the same report.
    again = run_here(args, capsys)
    assert again.returncode == 0
    assert json.loads((run_dir / "results.json").read_text()) == results
    # Another configuration in the same run folder is refused in one line.
    other = run_here(args + ["--epochs=3"], capsys)
    assert other.returncode == 2 and "holds a run with another configuration" in other.stderr


def test_predict_reports_unreadable_files_and_predicts_the_rest(tmp_path, capsys):
    import keras_ser

    model = keras_ser.build_model(n_segments=2, num_classes=3, sru_units=8, image_size=67, class_names=["a", "b", "c"],
                                  backbone_kwargs={"filters": (4, 4, 4, 4, 4), "fc_units": 8})
    path = tmp_path / "m.keras"
    model.save(path)
    good = tmp_path / "good.wav"
    good.write_bytes(wav_bytes(tone(1.0)))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 10)
    short = tmp_path / "short.wav"
    short.write_bytes(wav_bytes(tone(0.01)))
    out = run_here(["predict", f"--model={path}", "--json", str(good), str(bad), str(short)], capsys)
    assert out.returncode == 1, out.stderr[-2000:]
    results = json.loads(out.stdout)
    assert [r["file"] for r in results] == [str(good), str(bad), str(short)]
    assert results[0]["label"] in ("a", "b", "c")
    assert sum(results[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert "not readable audio" in results[1]["error"]
    assert "too short" in results[2]["error"]
    table = run_here(["predict", f"--model={path}", str(good), str(bad)], capsys)
    assert "bad.wav" in table.stdout and "ERROR" in table.stdout
    assert run_here(["predict", str(good)], capsys).returncode == 2
