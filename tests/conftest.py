"""Shared fixtures: the real EMO-DB, RAVDESS and EMOVO folders, WAV writers, the synthetic corpus."""

import contextlib
import gc
import importlib
import io
import os
import subprocess
import sys
import wave

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMODB_DIR = os.environ.get("KERAS_SER_EMODB", os.path.join(ROOT, "..", "shared", "data", "emodb", "wav"))
RAVDESS_DIR = os.environ.get("KERAS_SER_RAVDESS", os.path.join(ROOT, "..", "shared", "data", "ravdess"))
EMOVO_DIR = os.environ.get("KERAS_SER_EMOVO", os.path.join(ROOT, "..", "shared", "data", "emovo"))


BLOCKED_RUN = r'''
import importlib.abc, runpy, sys

class Blocked(importlib.abc.MetaPathFinder):
    """`import tensorflow` / `import matplotlib` fail, as on the GPU machines."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "matplotlib"):
            raise ImportError(f"{name} is blocked in this test (the GPU machines have none)")
        return None

sys.meta_path.insert(0, Blocked())
script = sys.argv[1]
sys.argv = sys.argv[1:]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "matplotlib") and sys.modules[m])
    print("LEAKED_MODULES", leaked)
'''


def run_without_tensorflow(script, args, timeout=300):
    """Runs `script` with `args` in a fresh Python on Keras's JAX backend (CPU) where `import tensorflow` and
    `import matplotlib` fail, as on the GPU machines; asserts it exits 0 and imported neither. Returns its stdout."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "OUT")}
    env.update(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="", PYTHONPATH=ROOT,
               XLA_FLAGS="--xla_backend_optimization_level=0", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", BLOCKED_RUN, script, *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "LEAKED_MODULES []" in result.stdout
    return result.stdout


@contextlib.contextmanager
def experiment_script(name):
    """`experiments/<name>.py` imported as a module, with `experiments/` on `sys.path` while the block runs
    (as when the script runs: its sibling modules import by name, some of them inside functions)."""
    folder = os.path.join(ROOT, "experiments")
    sys.path.insert(0, folder)
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(folder)


def _corpus_dir(path, name, variable):
    """`path` when it is a folder; else a skip, or a failure when KERAS_SER_REQUIRE_DATA=1 (CI)."""
    if not os.path.isdir(path):
        message = f"{name} not found at {path} (set {variable})"
        if os.environ.get("KERAS_SER_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


# The longest tests (`--durations` of the whole suite on 2 cores, longest first), collected first. pytest-xdist
# hands tests out in collection order, so a long test collected late keeps one worker busy after the other has
# run out of tests; started first, the short ones fill in around them. The rest keep their order. None of these
# needs an expensive module fixture, which the rest of its module would then build a second time: test_tflite,
# whose fixture exports the speech encoder, stays together.
LONGEST_FIRST = (
    "tests/test_reproduce.py::test_help_and_tiny_end_to_end_run",
    "tests/test_notebook.py::test_quickstart_notebook_executes",
    "tests/test_multi_worker.py::test_two_workers_end_with_identical_weights",
    "tests/test_gpu_path.py::test_gpu_loso_runs_on_jax_without_tensorflow_and_resumes",
    "tests/test_cli.py::test_loso_resumes_after_kill_9_without_retraining_finished_folds",
    "tests/test_backends.py::test_zoo_on_other_backends_matches_tensorflow[jax]",
    "tests/test_quiet_cli.py::test_predict_and_help_print_only_their_own_output",
    "tests/test_fusion.py::test_exported_fusion_model_matches_predict_and_refuses_bad_audio",
    "tests/test_front_end.py::test_the_signatures_and_a_timeline_run_the_same_front_end",
    "tests/test_efficientnet.py::test_imagenet_lite0_same_logits_on_jax",
    "tests/test_speech_encoder.py::test_probe_and_frozen_recipes_through_the_loso_runner",
    "tests/test_training.py::test_paper_recipe_trains_both_stages_and_assembles_one_model",
    "tests/test_presets.py::test_export_cli_with_preset[fusion_stats_emodb]",
    "tests/test_frozen.py::test_test_pass_on_cached_features_equals_the_whole_model[fusion_stats-probe]",
)


def pytest_configure(config):
    """One OpenMP / OpenBLAS thread per process, unless set outside (`OMP_NUM_THREADS`).

    Set before pytest-xdist starts its workers, so they and every process a test starts (the other backends'
    children, the killed LOSO run, the notebook's kernel) inherit it. Two workers share two cores: the idle
    threads of PyTorch's and OpenBLAS's pools spin while they wait, taking the core from the process beside
    them. Measured (tests/test_backends.py, two runs each, one other busy process on the machine): the JAX
    child 34-45 s and the PyTorch child 20-38 s with the default, 18-20 s and 10 s with one thread.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(items):
    """`LONGEST_FIRST` at the front, in that order (a stable sort: every other test keeps its place)."""
    rank = {nodeid: index for index, nodeid in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid, len(rank)))


def pytest_collection_finish(session):
    """What collection imported (TensorFlow, Keras, scikit-learn: about a million objects) leaves the collector.

    `gc.freeze()` moves every object alive now into a generation that collections no longer scan; those
    objects live for the whole process anyway. Each full collection (Keras's `clear_session` runs one per
    LOSO fold, and the interpreter runs its own) then scans only what the tests made. Measured over the
    README's test command with a scratch plugin timing the collector through `gc.callbacks`: the two
    workers spent 14.2 and 16.6 s of CPU in collections before (30 full ones each, about 0.45 s apiece),
    10.9 and 14.7 s after (41 and 57 full ones: with fewer long-lived objects counted, full collections
    come more often, each cheaper).
    """
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session")
def emodb_dir():
    """The real EMO-DB WAV folder. CI sets KERAS_SER_REQUIRE_DATA=1, so a missing
    folder fails there instead of skipping."""
    return _corpus_dir(EMODB_DIR, "EMO-DB", "KERAS_SER_EMODB")


@pytest.fixture(scope="session")
def ravdess_dir():
    """The real RAVDESS speech folder (Actor_01 .. Actor_24), like `emodb_dir`."""
    return _corpus_dir(RAVDESS_DIR, "RAVDESS", "KERAS_SER_RAVDESS")


@pytest.fixture(scope="session")
def emovo_dir():
    """The real EMOVO folder (f1 .. m3), like `emodb_dir`."""
    return _corpus_dir(EMOVO_DIR, "EMOVO", "KERAS_SER_EMOVO")


def wav_bytes(samples, rate=16000, channels=1, sampwidth=2):
    """PCM WAV bytes from float samples in [-1, 1] ([n] or [n, channels])."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim == 1:
        samples = samples[:, None]
    assert samples.shape[1] == channels
    if sampwidth == 1:
        pcm = np.clip(np.round(samples * 127 + 128), 0, 255).astype(np.uint8)
    elif sampwidth == 2:
        pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    elif sampwidth == 3:
        ints = np.clip(np.round(samples * 8388607), -8388608, 8388607).astype("<i4")
        pcm = ints.view(np.uint8).reshape(-1, 4)[:, :3]
    else:
        raise ValueError(sampwidth)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(sampwidth)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())
    return buffer.getvalue()


def tone(seconds=1.0, rate=16000, frequency=440.0, amplitude=0.3, seed=0):
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (amplitude * np.sin(2 * np.pi * frequency * t) + 0.01 * noise).astype(np.float32)


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory):
    """A small synthetic corpus: 3 speakers x 3 emotions x 4 utterances."""
    from tf_pipeline import corpora

    return corpora.synthetic(str(tmp_path_factory.mktemp("synthetic")), n_speakers=3, per_class=4, emotions="WTN")


def compiled_call(fn):
    """`fn(inputs, training=False)` in one `tf.function`, its shapes relaxed after the first trace.

    For a Keras model (or its `features_model()`) called on one utterance at a
    time: the eager call runs a speech encoder's LSTM step by step, seconds per
    utterance on 2 cores, while the traced call is the same computation on
    the same single input.
    """
    import tensorflow as tf

    return tf.function(lambda inputs: fn(inputs, training=False), reduce_retracing=True)
