"""`keras-ser` prints its own output only: TensorFlow's log lines and warnings stay hidden unless --tf_log.

The subprocess tests run the real command the way a new user's shell would
(no TF_CPP_MIN_LOG_LEVEL, TF_ENABLE_ONEDNN_OPTS or PYTHONWARNINGS set), on a
machine without a GPU: TensorFlow 2.21 then prints `oneDNN custom operations
are on`, `Could not find cuda drivers` and `E0000 ... failed call to cuInit`
unless the command hides them.
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import exported_model
from conftest import ROOT

KERAS_SER = [sys.executable, "-m", "keras_ser_cli"]
FILES = ["03a01Fa.wav", "03a01Nc.wav"]  # happiness, neutral (two utterances the preset was trained on)
NOISE = ("oneDNN", "cuda", "cuInit", "E0000", "retracing", "WARNING: All log messages")
# A TensorFlow / absl C++ log line (`I0000 00:00:1795993483.996804   21028 port.cc:153] ...`).
LOG_LINE = re.compile(r"^[IWE]\d{4} [\d:.]+ +\d+ \S+:\d+\] ", re.M)


def _keras_ser(args):
    env = {key: value for key, value in os.environ.items()
           if key not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "PYTHONWARNINGS")}
    return subprocess.run(KERAS_SER + args, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)


def _assert_quiet(stderr):
    found = [word for word in NOISE if word in stderr]
    assert not found and not LOG_LINE.search(stderr), f"noise on stderr ({found}):\n{stderr[-3000:]}"


def test_predict_and_help_print_only_their_own_output(emodb_dir):
    paths = [os.path.join(emodb_dir, name) for name in FILES]
    quiet = _keras_ser(["predict", "--preset=encoder_stats_emodb"] + paths)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    _assert_quiet(quiet.stderr)
    rows = [line.split() for line in quiet.stdout.splitlines()]
    assert rows[0][:2] == ["file", "label"] and [row[:2] for row in rows[1:]] == [
        ["03a01Fa.wav", "happiness"], ["03a01Nc.wav", "neutral"]], quiet.stdout

    help_text = _keras_ser(["demo", "--help"])
    assert help_text.returncode == 0 and help_text.stdout.startswith("usage: keras-ser demo")
    assert "--[no]tf_log" in help_text.stdout
    _assert_quiet(help_text.stderr)

    # --tf_log (here before the subcommand) brings TensorFlow's lines back, and changes nothing else.
    loud = _keras_ser(["--tf_log", "predict", "--preset=encoder_stats_emodb"] + paths)
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert LOG_LINE.search(loud.stderr), f"--tf_log shows no TensorFlow log line:\n{loud.stderr[-3000:]}"
    assert "retracing" not in loud.stderr
    assert loud.stdout == quiet.stdout


def test_tf_log_flag_before_or_after_the_subcommand(capsys, monkeypatch):
    from keras_ser_cli.main import _tf_log_requested
    from keras_ser_cli.main import run

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")  # run() only defaults it: keep this process's setting
    assert _tf_log_requested(["predict", "--tf_log"]) is True
    assert _tf_log_requested(["predict", "--tf_log", "--notf_log"]) is False
    assert _tf_log_requested(["predict", "--tf_log=false"]) is False
    assert _tf_log_requested(["predict", "--", "--tf_log"]) is False
    for args in (["--tf_log", "predict"], ["predict", "--tf_log"], ["--notf_log", "predict"]):
        capsys.readouterr()
        assert run(["keras-ser"] + args + ["--model=/nonexistent.keras", "a.wav"]) == 2
        assert "--model file not found" in capsys.readouterr().err, args
    assert run(["keras-ser", "predict", "--tf_log=maybe", "a.wav"]) == 2
    assert "flag --tf_log=maybe" in capsys.readouterr().err
    assert run(["keras-ser", "--tf_log"]) == 2 and "usage: keras-ser" in capsys.readouterr().out
    assert run(["keras-ser", "--help"]) == 0 and "--[no]tf_log" in capsys.readouterr().out


def test_stderr_filter_drops_only_log_lines():
    """The filter process: TensorFlow's / absl's I, W, E lines go; F lines, tracebacks and partial lines stay."""
    from keras_ser_cli.main import _FILTER_SOURCE

    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1795993483.996804   21028 port.cc:153] oneDNN custom operations are on. You may see ...",
        "I0000 00:00:1795993484.000001   21028 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU "
        "will not be used.",
        "I0000 00:00:1795993484.1   21028 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use ...",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
        "appropriate compiler flags.",
        "E0000 00:00:1795993486.6 28447 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed "
        "call to cuInit: UNKNOWN ERROR (303)",
        "E0000 00:00:1795993488.6 28447 util.cc:131] oneDNN supports DT_BOOL only on platforms with AVX-512.",
        "W1114 09:32:22.280168   13509 fork_posix.cc:71] Other threads are currently calling into gRPC",
        "2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not find cuda",
    ]
    kept = [
        "keras-ser predict: error: --model file not found: m.keras",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "F0000 00:00:1795993488.6 28447 check.cc:1] Check failed: fatal lines are kept",
        "E is for emotion; I0000 in the middle of a line is not a log line",
    ]
    stream = "\n".join(noise[:3] + kept[:2] + noise[3:6] + kept[2:] + noise[6:]) + "\npartial line without newline"
    out = subprocess.run([sys.executable, "-S", "-E", "-c", _FILTER_SOURCE], input=stream.encode(),
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode() == "\n".join(kept) + "\npartial line without newline"


@pytest.mark.parametrize("name", ["encoder_stats_emodb", "sru", "cnn_sru"])
def test_predict_files_compiles_once(name, emodb_dir, monkeypatch):
    """Files of different lengths: one trace of the model function, and model.predict's probabilities."""
    import keras_ser
    import tf_pipeline
    from keras_ser import inference

    model = keras_ser.from_preset(name) if name in keras_ser.list_presets() else exported_model.tiny_model(name)
    paths = exported_model.emodb_paths(emodb_dir)[:4]  # 1.9 s to 5.3 s
    built = []
    real = inference.predictor
    monkeypatch.setattr(inference, "predictor", lambda m: built.append(real(m)) or built[-1])
    results = inference.predict_files(model, paths)
    assert len(built) == 1
    if hasattr(built[0], "experimental_get_tracing_count"):  # the TensorFlow backend
        assert built[0].experimental_get_tracing_count() == 1
    expected = [np.asarray(model.predict(inference.model_inputs(model, tf_pipeline.load_audio(p, model.feature_config)),
                                         verbose=0))[0] for p in paths]
    got = [list(result["probabilities"].values()) for result in results]
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
