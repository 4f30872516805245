"""The TensorFlow-free GPU path: feature file, numpy input pipeline, experiments/gpu_loso.py on JAX.

The GPU machines have Keras + JAX but neither TensorFlow nor matplotlib; the
child process here blocks both (`import` raises ImportError), as it would be
there. The arithmetic is `tf_pipeline.array_math`, run here with numpy and by
tf_pipeline with TensorFlow: the tests check that both give the same values.
"""

import importlib.util
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import tf_pipeline
from keras_ser.training import TrainConfig
from keras_ser.training import feature_file
from tf_pipeline import array_math
from tf_pipeline.array_math import NUMPY
from tf_pipeline.normalization import channel_stats
from tf_pipeline.tf_namespace import TF

from conftest import experiment_script
from conftest import run_without_tensorflow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_FLAGS = ["--epochs=1", "--batch_size=9", "--image_size=67", "--sru_units=8",
              '--backbone_kwargs={"filters": [4, 4, 4, 4, 4], "fc_units": 8}', "--workers=1", "--verbose=0"]


def _experiment(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "experiments", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def emodb_images(emodb_dir):
    """Feature images of 12 EMO-DB files of varied length (tf_pipeline)."""
    corpus = tf_pipeline.corpora.emodb(emodb_dir)
    frames = [(os.path.getsize(record.path), i) for i, record in enumerate(corpus.records)]
    chosen = [i for _, i in sorted(frames)[:: len(frames) // 12][:12]]  # shortest to longest
    return [image.numpy() for image, _, _ in tf_pipeline.feature_images(corpus, chosen)]


@pytest.fixture(scope="module")
def feature_files(synthetic_corpus, tmp_path_factory):
    """The synthetic corpus's feature file (float16 log-Mel, the default) and its float32 images."""
    gpu_features = _experiment("gpu_features")
    folder = tmp_path_factory.mktemp("gpu_data")
    images = gpu_features.compute_images(synthetic_corpus)
    path16 = str(folder / "synthetic.npz")
    path32 = str(folder / "synthetic32.npz")
    feature_file.save_feature_arrays(path16, synthetic_corpus, images)
    feature_file.save_feature_arrays(path32, synthetic_corpus, images, dtype="float32")
    return path16, path32, images


def _padded(images):
    frames = np.array([image.shape[1] for image in images])
    padded = np.zeros([len(images), images[0].shape[0], frames.max(), 3], np.float32)
    for row, image in enumerate(images):
        padded[row, :, : image.shape[1]] = image
    return padded, frames


@pytest.mark.parametrize("n_segments, size", [(1, (227, 227)), (3, (227, 227)), (5, (227, 227)), (2, (67, 50))])
def test_numpy_segments_equal_tf_pipeline_on_emodb(emodb_images, n_segments, size):
    padded, frames = _padded(emodb_images)
    expected = tf_pipeline.batch_segment_and_resize(padded, frames, n_segments, size).numpy()
    got = feature_file.batch_segments(emodb_images, n_segments, size)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(feature_file.batch_segments([emodb_images[3]], n_segments, size)[0],
                               tf_pipeline.segment_and_resize(emodb_images[3], n_segments, size).numpy(), atol=1e-5)


def test_numpy_deltas_and_frame_sequences_equal_tf_pipeline(emodb_images):
    for image in emodb_images[:4]:
        np.testing.assert_allclose(array_math.image_from_log_mel(NUMPY, image[..., 0].T), image, rtol=0, atol=1e-5)
    padded, _ = _padded(emodb_images[:3])
    expected = tf_pipeline.batch_frame_sequence(padded).numpy()
    np.testing.assert_array_equal(feature_file.frame_sequences(emodb_images[:3]), expected)


def test_numpy_segments_check_their_inputs():
    with pytest.raises(ValueError, match="n_segments=6"):
        feature_file.batch_segments([np.zeros([60, 50, 3])], 6)
    with pytest.raises(ValueError, match="at least n_segments=3 frames"):
        feature_file.batch_segments([np.zeros([60, 50, 3]), np.zeros([60, 2, 3])], 3)
    with pytest.raises(ValueError, match=r"same n_mels and channels. Received shapes: \[\(40, 9, 3\), \(60, 9, 3\)\]"):
        feature_file.batch_segments([np.zeros([60, 9, 3]), np.zeros([40, 9, 3])], 3)


def test_feature_file_round_trip(feature_files, synthetic_corpus):
    path16, path32, images = feature_files
    exact = feature_file.load_feature_arrays(path32)
    for got, want in zip(exact.images, images):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    small = feature_file.load_feature_arrays(path16)
    assert os.path.getsize(path16) < 0.6 * os.path.getsize(path32)
    for got, want in zip(small.images, images):
        np.testing.assert_allclose(got, want, rtol=0, atol=0.02)  # float16 log-Mel
    corpus = small.corpus
    assert corpus.name == synthetic_corpus.name and corpus.class_names == synthetic_corpus.class_names
    assert corpus.speakers == synthetic_corpus.speakers
    np.testing.assert_array_equal(corpus.labels, synthetic_corpus.labels)
    assert [r.path for r in corpus.records] == [os.path.basename(r.path) for r in synthetic_corpus.records]
    assert small.feature_config == tf_pipeline.FeatureConfig() and small.info["dtype"] == "float16"
    with pytest.raises(ValueError, match="not a keras-ser feature file"):
        np.savez(path16 + ".other.npz", x=np.zeros(3))
        feature_file.load_feature_arrays(path16 + ".other.npz")


def test_fold_data_statistics_from_training_speakers_only(feature_files, synthetic_corpus):
    _, path32, _ = feature_files
    data = feature_file.load_feature_arrays(path32)
    fold = tf_pipeline.loso_folds(data.corpus, validation="next")[0]
    fold_data = feature_file.make_fold_data(data, fold, TrainConfig(image_size=67, batch_size=5))
    expected = tf_pipeline.corpus_channel_stats(synthetic_corpus, fold.train_indices)
    np.testing.assert_allclose(fold_data.channel_stats[0], expected.mean, rtol=1e-5)
    np.testing.assert_allclose(fold_data.channel_stats[1], expected.std, rtol=1e-5)
    assert fold_data.labels["test"].tolist() == synthetic_corpus.labels[fold.test_indices].tolist()
    test = fold_data.dataset("test", training=False)
    inputs, labels = test[0]
    assert inputs.shape == (5, 3, 67, 67, 3) and labels.tolist() == fold_data.labels["test"][:5].tolist()
    segments = fold_data.segment_dataset("validation", training=False)
    x, y = segments[0]
    assert x.shape == (5, 67, 67, 3) and y.tolist() == [fold_data.labels["validation"][0]] * 3 + \
        [fold_data.labels["validation"][1]] * 2
    np.testing.assert_array_equal(x[:3], fold_data.dataset("validation", training=False)[0][0][0])


def test_fold_data_with_speaker_norm_equals_the_tf_data_path(feature_files, synthetic_corpus):
    from keras_ser.training import loso

    _, path32, _ = feature_files
    data = feature_file.load_feature_arrays(path32)
    fold = tf_pipeline.loso_folds(data.corpus, validation="next")[1]
    config = TrainConfig(image_size=67, batch_size=5, speaker_norm=True)
    gpu = feature_file.make_fold_data(data, fold, config)
    tf_data = loso.make_fold_data(synthetic_corpus, fold, config)
    for got, want in zip(gpu.channel_stats, tf_data.channel_stats):
        np.testing.assert_array_equal(got, want)  # the identity: the inputs are standardised per speaker
    for part in ("test", "validation"):
        inputs, labels = gpu.dataset(part, training=False)[0]
        expected_inputs, expected_labels = next(iter(tf_data.dataset(part, training=False)))
        np.testing.assert_array_equal(labels, expected_labels.numpy())
        np.testing.assert_allclose(inputs, expected_inputs.numpy(), rtol=0, atol=1e-4)
    # Each speaker's statistics of the arrays (numpy): what the checks below look at is which speakers have some.
    ids = data.corpus.speaker_ids
    stats = {speaker: channel_stats(data.images[i] for i in np.flatnonzero(ids == speaker)) for speaker in set(ids)}
    with pytest.raises(ValueError, match="the speaker of each of the 2 images. Received: None"):
        feature_file.ArrayDataset(data.images[:2], data.corpus.labels[:2], 3, speaker_stats=stats)
    with pytest.raises(ValueError, match=r"no statistics for speaker\(s\) \['unknown'\]"):
        feature_file.ArrayDataset(data.images[:2], data.corpus.labels[:2], 3, speakers=["unknown"] * 2,
                                  speaker_stats=stats)


def test_levers_give_the_same_values_in_numpy_and_in_a_tensorflow_graph():
    def draw(high):  # the same "random" numbers on both paths
        return (high * 2) // 3

    image = np.random.default_rng(0).standard_normal((60, 120, 3)).astype(np.float32)
    augment = array_math.Augment(time_masks=2, time_width=30, freq_masks=2, freq_width=10, jitter=0.2)
    graph = tf.function(lambda x, frames: augment(TF, x, frames, draw),
                        input_signature=[tf.TensorSpec([60, None, 3]), tf.TensorSpec([], tf.int32)])
    expected, expected_frames = graph(image, 120)
    got, frames = augment(NUMPY, image, 120, draw)
    assert int(frames) == int(expected_frames) and got.shape == tuple(expected.shape) and (got != image[:, :frames]).any()
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-6, atol=1e-6)

    inputs = np.random.default_rng(1).standard_normal((4, 2, 5, 5, 3)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]]
    lam, perm = np.array([0.1, 0.5, 0.9, 1.0], np.float32), np.array([2, 0, 3, 1])
    for got, want in zip(array_math.mix(NUMPY, inputs, labels, lam, perm), array_math.mix(TF, inputs, labels, lam, perm)):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)


def test_array_dataset_shuffles_by_seed_and_epoch_and_augments(feature_files):
    _, path32, _ = feature_files
    data = feature_file.load_feature_arrays(path32)
    images, labels = data.images, data.corpus.labels

    def make(**kwargs):
        return feature_file.ArrayDataset(images, labels, 3, n_segments=2, batch_size=len(labels), image_size=(20, 20),
                                   training=True, **kwargs)

    first, again = make(seed=1), make(seed=1)
    np.testing.assert_array_equal(first[0][1], again[0][1])
    order = first[0][1]
    first.on_epoch_end()
    assert sorted(first[0][1]) == sorted(order) and first[0][1].tolist() != order.tolist()
    assert make(seed=2)[0][1].tolist() != order.tolist()
    plain = feature_file.ArrayDataset(images, labels, 3, n_segments=2, batch_size=len(labels), image_size=(20, 20))
    np.testing.assert_array_equal(plain[0][1], labels)

    augment = array_math.Augment(time_masks=2, time_width=10, freq_masks=2, freq_width=5, jitter=0.2)
    rng = np.random.default_rng(0)

    def draw(high):
        return int(rng.integers(0, high))

    image = images[0]
    masked = array_math.spec_augment(NUMPY, image, draw, 2, 10, 2, 5)
    changed = (masked != image).any(axis=2)  # masked (mel, frame) cells: every channel set to its mean
    assert changed.any() and masked.shape == image.shape
    np.testing.assert_allclose(masked[changed], np.broadcast_to(image.mean(axis=(0, 1)), masked[changed].shape),
                               rtol=1e-5, atol=1e-6)
    cropped, frames = array_math.segment_jitter(NUMPY, image, image.shape[1], draw, 0.2)
    assert cropped.shape[1] == frames
    start = next(s for s in range(image.shape[1]) if np.array_equal(image[:, s], cropped[:, 0]))
    np.testing.assert_array_equal(image[:, start : start + cropped.shape[1]], cropped)
    assert cropped.shape[1] >= image.shape[1] * 0.6 - 1
    augmented = make(seed=1, augment=augment, mixup_alpha=0.2, label_mode="one_hot")
    x, y = augmented[0]
    assert x.shape == (len(labels), 2, 20, 20, 3) and y.shape == (len(labels), 3)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
    assert not np.allclose(x, first[0][0])
    np.testing.assert_array_equal(x, make(seed=1, augment=augment, mixup_alpha=0.2, label_mode="one_hot")[0][0])


def test_budget_decision():
    gpu_loso = _experiment("gpu_loso")
    times = {"a": [50.0, 40.0], "b": []}
    assert gpu_loso.fold_estimate(times, "a", 0) == 40.0
    assert gpu_loso.fold_estimate(times, "b", 0) == 50.0
    assert gpu_loso.fold_estimate({"b": []}, "b", 7.0) == 7.0
    assert gpu_loso.next_fold_fits(400, 50, 480) and not gpu_loso.next_fold_fits(440, 50, 480)
    assert gpu_loso.next_fold_fits(10_000, 50, None)


def test_the_summary_sets_the_paper_figure_beside_its_own_corpus_only():
    gpu_loso = _experiment("gpu_loso")
    assert gpu_loso.paper_figure("emodb", "cnn_sru", 3) == (82.5, 80.6)
    assert gpu_loso.paper_figure("casia", "cnn_sru", 5) == (51.3, 51.3)
    assert gpu_loso.paper_figure("casia", "cnn_sru", 3) is None  # the paper reports N = 5 there
    assert gpu_loso.paper_figure("emovo", "cnn_sru", 3) is None and gpu_loso.paper_figure("emodb", "cnn", 3) is None
    rows = [{"name": "r", "model": "cnn_sru", "n_segments": 3, "folds_done": 0, "folds_total": 6}]
    session = {"command": "c", "device": {}, "versions": {}, "data": {"file": "f", "sha256": "0" * 64},
               "wall_time_s": 1.0, "budget_s": None, "stopped": False}
    assert "| r | 0/6 | | | | - | |" in gpu_loso._markdown_summary(rows, session, "emovo")
    assert "| r | 0/6 | | | | 82.5 / 80.6 (3) | |" in gpu_loso._markdown_summary(rows, session, "emodb")


def _run_gpu_loso(args):
    return run_without_tensorflow(os.path.join(ROOT, "experiments", "gpu_loso.py"), args)


def test_gpu_loso_runs_on_jax_without_tensorflow_and_resumes(feature_files, tmp_path):
    path16, _, _ = feature_files
    run_root = tmp_path / "runs"
    common = [f"--data={path16}", f"--run_root={run_root}", "--folds=01,02", f"--jax_cache_dir={tmp_path / 'jax'}",
              *TINY_FLAGS]
    out = _run_gpu_loso(common + ["--max_folds=1"])
    run_dir = run_root / "synthetic_cnn_sru_e2e_n3_e1"
    assert (run_dir / "fold_01.json").exists() and not (run_dir / "fold_02.json").exists()
    assert "--max_folds=1 folds trained; stopping here" in out
    assert "confusion.png not written: matplotlib is not installed" in out
    assert not (run_dir / "confusion.png").exists() and not (run_dir / "tensorboard").exists()
    first = json.loads((run_dir / "results.json").read_text())
    assert [fold["test_speaker"] for fold in first["folds"]] == ["01"]
    fold_01 = (run_dir / "fold_01.json").read_text()
    fold = json.loads(fold_01)
    assert fold["versions"]["keras_backend"] == "jax" and "tensorflow" not in fold["versions"]
    assert fold["config"]["sru_units"] == 8 and fold["n_test"] == len(fold["predictions"]) == 12

    out = _run_gpu_loso(common)
    assert "already done" in out and "speaker 02: WA" in out and "speaker 01: WA" not in out
    assert (run_dir / "fold_01.json").read_text() == fold_01  # not retrained
    results = json.loads((run_dir / "results.json").read_text())
    assert [fold["test_speaker"] for fold in results["folds"]] == ["01", "02"] and results["pooled"]["n"] == 24
    assert (run_dir / "results.md").exists() and (run_root / "summary.md").exists()
    sessions = sorted(run_root.glob("session_*.json"))
    assert sessions and json.loads(sessions[-1].read_text())["runs"][0]["folds_done"] == 2

    # Its leaderboard row (experiments/cross_corpus.py --leaderboard_runs) names the network, its recipe and the
    # machine the folds ran on, not the probe's wording.
    board = tmp_path / "results.json"
    board.write_text("[]")
    with experiment_script("cross_corpus") as cross_corpus:
        (row,) = cross_corpus.write_leaderboard(str(board), str(tmp_path / "no_summaries"), [str(run_dir)], merge=True)
    assert row["system"] == "cnn_sru (end_to_end recipe, 1 epoch), front end none, leave-one-speaker-out"
    assert row["machine"].startswith("CPU, ") and row["machine"].endswith(f"(JAX {fold['versions']['jax']})")
    assert "probe" not in row["protocol"] and "SRU 8 units" in row["protocol"]
    assert row["ua_pooled"] == round(100 * results["pooled"]["ua"], 2) and row["folds"] == ["01", "02"]
    assert json.loads(board.read_text()) == [row]


@pytest.mark.parametrize("path", ["keras_ser/training/feature_file.py", "tf_pipeline/array_math.py",
                                  "experiments/gpu_loso.py"])
def test_gpu_modules_import_no_tensorflow(path):
    import ast

    tf_modules = {"tensorflow", "tf_pipeline.audio", "tf_pipeline.features", "tf_pipeline.segments",
                  "tf_pipeline.dataset", "tf_pipeline.augment"}
    imported = set()
    for node in ast.walk(ast.parse(open(os.path.join(ROOT, path)).read())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    assert not {name for name in imported if name.split(".")[0] == "tensorflow" or name in tf_modules}
