"""The zoo on other Keras backends: JAX and PyTorch give the TensorFlow outputs, with TensorFlow blocked.

The GPU machines have Keras + JAX but no TensorFlow, so the child processes
here make `import tensorflow` fail, as it would there.
"""

import ast
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import keras
import keras_ser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One tiny instance per zoo entry; both AlexNet layouts and a grouped caffe network.
MODELS = {
    "cnn_sru": {"name": "cnn_sru", "n_segments": 2, "num_classes": 4, "sru_units": 16, "image_size": 67,
                "backbone_kwargs": {"filters": [8, 8, 8, 8, 8], "fc_units": 16}},
    "cnn": {"name": "cnn", "num_classes": 3, "image_size": 67, "backbone_variant": "torchvision",
            "backbone_kwargs": {"filters": [8, 8, 8, 8, 8], "fc_units": 16}},
    "sru": {"name": "sru", "num_classes": 4, "sru_units": 16},
    # The speech-encoder entries with the shipped pretrained GE2E weights (1.4 M parameters).
    "encoder_stats": {"name": "encoder_stats", "num_classes": 4},
    "encoder_sru": {"name": "encoder_sru", "n_segments": 2, "num_classes": 3, "sru_units": 16},
}
# Per-feature statistics of the encoder entries' `standardize` layer (pooled features).
ENCODER_STATS = {"encoder_stats": 1536, "encoder_sru": 1536}

CHILD = r'''
import json, sys, time

sys.modules["tensorflow"] = None  # `import tensorflow` now fails, as on the GPU machines.
start = time.time()

import numpy as np
import keras
import keras_ser

workdir = sys.argv[1]
specs = json.load(open(f"{workdir}/specs.json"))
inputs = np.load(f"{workdir}/inputs.npz")
outputs = {"backend": keras.backend.backend()}
for key, spec in specs.items():
    model = keras_ser.build_model(**spec)
    model.load_weights(f"{workdir}/{key}.weights.h5")
    outputs[key] = model.predict(inputs[key], verbose=0)
    if key == "sru":  # A dynamic time axis: the frame-level model at another length.
        outputs["sru_short"] = model.predict(inputs["sru"][:, :7], verbose=0)
    # Training runs too (the grouped caffe convolutions included), under jit where the backend has it.
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(inputs[key], np.arange(len(inputs[key])) % spec["num_classes"], epochs=2, verbose=0)
    outputs[key + "_loss"] = np.array(history.history["loss"])
outputs["tensorflow_imported"] = np.array(sys.modules.get("tensorflow") is not None)
print(f"{keras.backend.backend()}: {time.time() - start:.1f} s")
np.savez(f"{workdir}/outputs.npz", **outputs)
'''


@pytest.fixture(scope="module")
def tensorflow_reference(tmp_path_factory):
    """Weights, inputs and TensorFlow-backend outputs of every zoo entry, written to files."""
    assert keras.backend.backend() == "tensorflow"
    workdir = tmp_path_factory.mktemp("backends")
    rng = np.random.default_rng(0)
    inputs, outputs = {}, {}
    for key, spec in MODELS.items():
        model = keras_ser.build_model(**spec)
        if key in ENCODER_STATS:
            width = ENCODER_STATS[key]
            keras_ser.set_channel_stats(model, rng.normal(size=width) * 0.1, rng.uniform(0.05, 0.3, size=width))
        else:
            keras_ser.set_channel_stats(model, [-4.0, 0.2, 0.0], [3.0, 0.5, 0.25])
        if key == "sru":
            x = (rng.normal(size=(3, 10, 180)) * 3.0 - 4.0).astype("float32")
            x[1, 6:] = 0.0  # padding
        elif key in ENCODER_STATS:
            x = rng.gamma(0.5, 0.2, size=(3, 40, 40)).astype("float32")  # Mel power frames
            x[1, 25:] = -1.0  # padding
        else:
            x = (rng.normal(size=(3, *model.input.shape[1:])) * 3.0 - 4.0).astype("float32")
        inputs[key] = x
        outputs[key] = model.predict(x, verbose=0)
        if key == "sru":  # A dynamic time axis: the frame-level model at another length.
            outputs["sru_short"] = model.predict(x[:, :7], verbose=0)
        model.save_weights(workdir / f"{key}.weights.h5")
    np.savez(workdir / "inputs.npz", **inputs)
    (workdir / "specs.json").write_text(json.dumps(MODELS))
    return workdir, outputs


def _run_child(backend, workdir):
    # XLA's CPU code generation at -O0: the same numbers, a fraction of the compile time
    # (JAX compiles every new random-initialiser shape; ~25 s for an AlexNet at -O2 here).
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="",
               JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_backend_optimization_level=0")
    result = subprocess.run([sys.executable, "-c", CHILD, str(workdir)], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return dict(np.load(workdir / "outputs.npz"))


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_zoo_on_other_backends_matches_tensorflow(backend, tensorflow_reference):
    pytest.importorskip(backend)
    workdir, expected = tensorflow_reference
    got = _run_child(backend, workdir)
    assert str(got["backend"]) == backend
    assert not bool(got["tensorflow_imported"])
    for key in list(MODELS) + ["sru_short"]:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-4, err_msg=key)
    for key in MODELS:
        assert np.isfinite(got[key + "_loss"]).all(), key


# Modules of the model zoo; none may import TensorFlow (keras.ops only). The front ends are TensorFlow code
# (the preprocessors, which import it inside their methods, and the modules they use).
FRONT_ENDS = ("preprocessor.py", "mel_power.py", "sound_effects_mel.py", "fusion_inputs.py")
ZOO_MODULES = [
    "keras_ser/__init__.py", "keras_ser/metrics.py", "keras_ser/models/__init__.py", "keras_ser/models/registry.py",
    "keras_ser/models/checks.py", "keras_ser/models/task.py",
    "keras_ser/layers/__init__.py", "keras_ser/layers/sru.py", "keras_ser/layers/lrn.py",
    "keras_ser/layers/standardization.py", "keras_ser/backbones/__init__.py",
    "keras_ser/weights/__init__.py", "keras_ser/weights/alexnet.py",
    # Every module of the two model families but their front ends.
    *sorted(str(path.relative_to(ROOT)) for family in ("cnn_sru", "speech_encoders")
            for path in (pathlib.Path(ROOT) / "keras_ser/models" / family).glob("*.py") if path.name not in FRONT_ENDS),
    "keras_ser/weights/speaker_encoder.py", "keras_ser/layers/pooling.py", "keras_ser/presets/__init__.py",
]


@pytest.mark.parametrize("path", ZOO_MODULES)
def test_zoo_modules_do_not_import_tensorflow(path):
    tree = ast.parse(open(os.path.join(ROOT, path)).read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not [name for name in imported if name.split(".")[0] == "tensorflow"]
    # tf_pipeline is TensorFlow code; only its pure-Python config may be used.
    assert not [name for name in imported if name.startswith("tf_pipeline") and name != "tf_pipeline.config"]
