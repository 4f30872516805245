"""saved_models: versioned export, signatures, parity with model.predict, warmup, op audit, CLI."""

import json
import os

import numpy as np
import pytest

import exported_model
from conftest import tone
from conftest import wav_bytes
from tf_pipeline.padding import pad_waveforms


@pytest.fixture(scope="module")
def exported(emodb_dir):
    return exported_model.exported()


@pytest.fixture(scope="module")
def reference(exported, emodb_dir):
    paths = exported_model.emodb_paths(emodb_dir)
    return paths, exported_model.reference_probabilities(exported.model, paths)


# --- layout, versions, CLI ----------------------------------------------------


def test_export_layout(exported):
    assert sorted(os.listdir(exported.base_path)) == ["1"], "no temporary directory may be left behind"
    entries = set(os.listdir(exported.version_dir))
    assert {"saved_model.pb", "variables", "assets.extra"} <= entries
    extra = os.path.join(exported.version_dir, "assets.extra")
    assert sorted(os.listdir(extra)) == ["keras_ser.json", "labels.txt", "tf_serving_warmup_requests"]
    with open(os.path.join(extra, "labels.txt")) as handle:
        assert handle.read() == "W\nT\nF\nN\n"
    metadata = json.load(open(os.path.join(extra, "keras_ser.json")))
    assert metadata["class_names"] == exported_model.CLASS_NAMES
    assert metadata["n_segments"] == 2 and metadata["image_size"] == [67, 67]
    assert metadata["feature_config"] == exported.model.feature_config.to_dict()
    assert metadata["version"] == 1
    assert f"exported {exported.keras_path} to {exported.version_dir}" in exported.cli_output


def test_version_directory_protocol(tmp_path):
    from saved_models import list_versions
    from saved_models import next_version
    from saved_models import publish_version

    model_dir = str(tmp_path / "ser")
    seen = []

    def write(path, version):
        seen.append((os.path.basename(path), version))
        assert os.path.basename(path).startswith(f".tmp-{version}-")  # hidden: TF Serving ignores it
        os.makedirs(path)
        with open(os.path.join(path, "saved_model.pb"), "w") as handle:
            handle.write(f"v{version}")

    assert next_version(model_dir) == 1
    assert publish_version(model_dir, None, write) == os.path.join(model_dir, "1")
    assert publish_version(model_dir, None, write) == os.path.join(model_dir, "2")
    assert publish_version(model_dir, 7, write).endswith("7")
    assert list_versions(model_dir) == [1, 2, 7] and next_version(model_dir) == 8
    with pytest.raises(FileExistsError, match="Version 2 already exists.*overwrite"):
        publish_version(model_dir, 2, write)
    assert publish_version(model_dir, 2, write, overwrite=True).endswith("2")

    def broken(path, version):
        os.makedirs(path)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        publish_version(model_dir, None, broken)
    assert sorted(os.listdir(model_dir)) == ["1", "2", "7"], "a failed export leaves nothing behind"
    with pytest.raises(ValueError, match="version must be a positive integer"):
        publish_version(model_dir, 0, write)


def test_export_rejects_what_it_cannot_serve(tmp_path):
    import keras

    from saved_models import export

    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="needs a keras-ser model"):
        export(plain, str(tmp_path), "plain")
    with pytest.raises(ValueError, match="name must be"):
        export(plain, str(tmp_path), "a/b")
    assert not os.listdir(tmp_path)


def test_export_cli_errors(exported, capsys):
    from keras_ser_cli.main import run

    assert run(["keras-ser", "export", f"--model={exported.keras_path}", f"--export_root={exported.export_root}",
                "--name=ser", "--version=1"]) == 2
    assert "version 1 already exists" in capsys.readouterr().err
    assert run(["keras-ser", "export", "--model=/nonexistent.keras", "--export_root=x"]) == 2
    assert "--model file not found" in capsys.readouterr().err
    assert run(["keras-ser", "export", f"--model={exported.keras_path}"]) == 2
    assert "--export_root is required" in capsys.readouterr().err


# --- signatures -----------------------------------------------------------------


def test_signatures_are_batch_first(exported):
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(exported.version_dir, "saved_model.pb"), "rb") as handle:
        saved_model.ParseFromString(handle.read())
    signatures = saved_model.meta_graphs[0].signature_def
    expected_inputs = {
        "serving_default": {"waveform": (1, [-1, -1]), "num_samples": (3, [-1])},  # DT_FLOAT, DT_INT32
        "serve_wav": {"audio_bytes": (7, [-1])},  # DT_STRING
    }
    for name, inputs in expected_inputs.items():
        signature = signatures[name]
        assert signature.method_name == "tensorflow/serving/predict"
        got = {alias: (info.dtype, [d.size for d in info.tensor_shape.dim]) for alias, info in signature.inputs.items()}
        assert got == inputs
        outputs = {alias: (info.dtype, [d.size for d in info.tensor_shape.dim])
                   for alias, info in signature.outputs.items()}
        assert outputs == {
            "probabilities": (1, [-1, 4]), "class_id": (9, [-1]), "class_name": (7, [-1]), "classes": (7, [-1, 4]),
        }


def test_op_audit(exported, tmp_path):
    import tensorflow as tf

    from saved_models import audit_ops
    from saved_models import check_ops
    from saved_models import saved_model_ops

    ops = saved_model_ops(exported.version_dir)
    assert {"DecodeWav", "RFFT", "Conv2D"} <= set(ops)
    assert audit_ops(exported.version_dir) == []

    class WithPython(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def serve(self, x):
            return {"y": tf.py_function(lambda v: v * 2, [x], tf.float32)}

    module = WithPython()
    tf.saved_model.save(module, str(tmp_path / "bad"), signatures={"serving_default": module.serve})
    problems = audit_ops(str(tmp_path / "bad"))
    assert any(p.startswith("EagerPyFunc: a Python callback") for p in problems), problems
    with pytest.raises(ValueError, match="TensorFlow Serving cannot run"):
        check_ops(str(tmp_path / "bad"))


# --- parity ---------------------------------------------------------------------


def test_parity_with_model_predict_on_emodb(exported, reference):
    """Both loaded signatures == model.predict on tf_pipeline features, real EMO-DB files, within 1e-5."""
    import tensorflow as tf

    import tf_pipeline

    paths, expected = reference
    assert np.ptp(expected[:, 0]) > 1e-3, "the files must give different probabilities for the test to mean much"
    contents = [open(path, "rb").read() for path in paths]
    wav = exported.loaded.signatures["serve_wav"](audio_bytes=tf.constant(contents))
    np.testing.assert_allclose(wav["probabilities"].numpy(), expected, atol=1e-5, rtol=0)

    waveforms, lengths = pad_waveforms([tf_pipeline.load_audio(path) for path in paths])
    padded = exported.loaded.signatures["serving_default"](waveform=tf.constant(waveforms),
                                                          num_samples=tf.constant(lengths))
    np.testing.assert_allclose(padded["probabilities"].numpy(), expected, atol=1e-5, rtol=0)

    for out in (wav, padded):
        class_id = out["class_id"].numpy()
        np.testing.assert_array_equal(class_id, expected.argmax(axis=1))
        assert [c.decode() for c in out["class_name"].numpy()] == [exported_model.CLASS_NAMES[i] for i in class_id]
        assert out["classes"].numpy().tolist() == [[c.encode() for c in exported_model.CLASS_NAMES]] * len(paths)


def test_loaded_export_holds_the_endpoints_and_variables_only(exported, reference):
    """`serve_wav` and `serving_default` are attributes of the loaded object too (as with keras.export), returning
    what the signatures return, beside the model's variables: the root holds those and nothing else."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    paths, expected = reference
    loaded = exported.loaded
    contents = tf.constant([open(path, "rb").read() for path in paths])
    np.testing.assert_allclose(loaded.serve_wav(contents)["probabilities"].numpy(), expected, atol=1e-5, rtol=0)
    assert [tuple(v.shape) for v in loaded.variables] == [tuple(v.shape) for v in exported.model.variables]
    np.testing.assert_array_equal(loaded.variables[0].numpy(), exported.model.variables[0].numpy())
    assert len(loaded.trainable_variables) == len(exported.model.trainable_variables) > 0
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(exported.version_dir, "saved_model.pb"), "rb") as handle:
        saved.ParseFromString(handle.read())
    root = saved.meta_graphs[0].object_graph_def.nodes[0]
    assert sorted(child.local_name for child in root.children) == [
        "non_trainable_variables", "serve_wav", "serving_default", "signatures", "trainable_variables", "variables"]


def test_padded_batch_equals_each_request_alone(exported, reference):
    """What TF Serving's batcher does (pad rows of different lengths) changes nothing."""
    import tensorflow as tf

    import tf_pipeline

    paths, _ = reference
    waveforms = [tf_pipeline.load_audio(path) for path in paths]
    serve = exported.loaded.signatures["serving_default"]
    batch, lengths = pad_waveforms(waveforms)
    batch[0, lengths[0]:] = 0.7  # the batcher's padding value is not ours to choose: it must not matter
    together = serve(waveform=tf.constant(batch), num_samples=tf.constant(lengths))["probabilities"].numpy()
    alone = np.concatenate([
        serve(waveform=tf.constant(w[None]), num_samples=tf.constant([len(w)], tf.int32))["probabilities"].numpy()
        for w in waveforms
    ])
    np.testing.assert_allclose(together, alone, atol=1e-6, rtol=0)


def test_serve_wav_resamples_and_downmixes(exported):
    """A 44.1 kHz stereo WAV through serve_wav == its tf_pipeline waveform through serving_default."""
    import tensorflow as tf

    import tf_pipeline

    stereo = np.stack([tone(1.3, rate=44100, frequency=220.0), tone(1.3, rate=44100, frequency=330.0, seed=1)], 1)
    contents = wav_bytes(stereo, rate=44100, channels=2)
    waveform = tf_pipeline.load_audio(contents)
    assert waveform.shape == (int(np.ceil(stereo.shape[0] * 16000 / 44100)),)
    signatures = exported.loaded.signatures
    from_wav = signatures["serve_wav"](audio_bytes=tf.constant([contents]))["probabilities"].numpy()
    from_waveform = signatures["serving_default"](waveform=tf.constant(waveform[None]),
                                                  num_samples=tf.constant([len(waveform)], tf.int32))
    np.testing.assert_allclose(from_wav, from_waveform["probabilities"].numpy(), atol=1e-5, rtol=0)


def test_empty_batch_is_refused_by_name(exported):
    """0 rows: InvalidArgumentError naming the input, before the model sees the batch (was a shape error)."""
    import tensorflow as tf

    from saved_models import serving_functions

    loaded = exported.loaded.signatures
    functions = serving_functions(exported.model)
    cases = [
        (lambda f: f["serve_wav"](audio_bytes=tf.constant([], tf.string)),
         r"audio_bytes has 0 rows; expected at least one WAV file"),
        (lambda f: f["serving_default"](waveform=tf.zeros([0, 16000]), num_samples=tf.zeros([0], tf.int32)),
         r"waveform has 0 rows; expected a batch of at least one waveform"),
        (lambda f: f["serving_default"](waveform=tf.zeros([0, 0]), num_samples=tf.zeros([0], tf.int32)),
         r"waveform has 0 rows"),
        # The empty batch is named first, before the num_samples mismatch.
        (lambda f: f["serving_default"](waveform=tf.zeros([0, 16000]), num_samples=tf.constant([16000])),
         r"waveform has 0 rows"),
    ]
    for signatures in (loaded, functions):
        for call, pattern in cases:
            with pytest.raises(tf.errors.InvalidArgumentError, match=pattern):
                call(signatures)
        out = signatures["serve_wav"](audio_bytes=tf.constant([wav_bytes(tone(1.0))]))
        assert out["probabilities"].shape == (1, 4)


@pytest.mark.parametrize("name", ["cnn", "sru"])
def test_serving_functions_other_zoo_models(name, emodb_dir):
    """The baselines export too: serving graph == model.predict on tf_pipeline features."""
    import tensorflow as tf

    import tf_pipeline
    from saved_models import serving_functions

    model = exported_model.tiny_model(name)
    paths = exported_model.emodb_paths(emodb_dir)[:3]
    expected = exported_model.reference_probabilities(model, paths)
    waveforms, lengths = pad_waveforms([tf_pipeline.load_audio(path) for path in paths])
    out = serving_functions(model)["serving_default"](tf.constant(waveforms), tf.constant(lengths))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5, rtol=0)


# --- warmup ---------------------------------------------------------------------


def test_warmup_records_cover_both_signatures(exported):
    import tensorflow as tf

    from saved_models import read_warmup_file

    logs = read_warmup_file(os.path.join(exported.version_dir, "assets.extra", "tf_serving_warmup_requests"))
    requests = [log.predict_log.request for log in logs]
    assert [(r.model_spec.signature_name, tf.make_ndarray(next(iter(r.inputs.values()))).shape[0])
            for r in requests] == [("serve_wav", 1), ("serve_wav", 2), ("serving_default", 1), ("serving_default", 2)]
    for request in requests:
        assert request.model_spec.name == "ser"
        inputs = {alias: tf.constant(tf.make_ndarray(proto)) for alias, proto in request.inputs.items()}
        out = exported.loaded.signatures[request.model_spec.signature_name](**inputs)
        assert np.all(np.isfinite(out["probabilities"].numpy()))
