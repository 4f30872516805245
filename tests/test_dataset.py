"""The tf.data pipeline and per-channel statistics."""

import numpy as np
import pytest
import tensorflow as tf

import tf_pipeline
from tf_pipeline.normalization import ChannelStats, channel_stats


def test_segments_dataset_matches_direct_features(synthetic_corpus):
    corpus = synthetic_corpus
    indices = np.array([0, 5, 9])
    dataset = tf_pipeline.make_dataset(corpus, indices, n_segments=2, batch_size=3, image_size=(32, 40))
    (segments, labels), = list(dataset)
    assert segments.shape == (3, 2, 32, 40, 3)
    assert labels.numpy().tolist() == corpus.labels[indices].tolist()
    for row, index in enumerate(indices):
        image = tf_pipeline.feature_image(tf_pipeline.load_audio(corpus.records[index].path))
        expected = tf_pipeline.segment_and_resize(image, 2, size=(32, 40))
        np.testing.assert_allclose(segments[row].numpy(), expected.numpy(), atol=1e-4)


def test_training_shuffles_deterministically_per_seed(synthetic_corpus):
    def labels(seed):
        dataset = tf_pipeline.make_dataset(synthetic_corpus, None, 1, batch_size=36, training=True, seed=seed,
                                           image_size=(8, 8))
        return [next(iter(dataset))[1].numpy().tolist() for _ in range(1)][0]

    first = labels(1)
    assert labels(1) == first
    assert labels(2) != first
    assert sorted(first) == sorted(synthetic_corpus.labels.tolist())


def test_frames_output_layout(synthetic_corpus):
    dataset = tf_pipeline.make_dataset(synthetic_corpus, [0, 1], batch_size=2, output="frames")
    frames, _ = next(iter(dataset))
    image = tf_pipeline.feature_image(tf_pipeline.load_audio(synthetic_corpus.records[1].path)).numpy()
    n = image.shape[1]
    assert frames.shape[2] == 180
    np.testing.assert_allclose(frames[1, :n, :60].numpy(), image[..., 0].T, atol=1e-4)
    np.testing.assert_allclose(frames[1, :n, 60:120].numpy(), image[..., 1].T, atol=1e-4)
    assert not np.any(frames[1, n:].numpy())


def test_augment_only_when_training(synthetic_corpus):
    calls = []

    def augment(image, frames):
        calls.append(1)  # traced once when used
        return image * 0.0, frames

    evaluation = tf_pipeline.make_dataset(synthetic_corpus, [0], 1, batch_size=1, augment=augment, image_size=(8, 8))
    assert np.any(next(iter(evaluation))[0].numpy())
    training = tf_pipeline.make_dataset(synthetic_corpus, [0], 1, batch_size=1, training=True, augment=augment,
                                        image_size=(8, 8))
    assert not np.any(next(iter(training))[0].numpy())
    assert calls


def test_bad_arguments(synthetic_corpus):
    with pytest.raises(ValueError, match="n_segments=7"):
        tf_pipeline.make_dataset(synthetic_corpus, None, 7)
    with pytest.raises(ValueError, match="batch_size=0"):
        tf_pipeline.make_dataset(synthetic_corpus, None, 3, batch_size=0)
    with pytest.raises(ValueError, match="output='spectrogram'"):
        tf_pipeline.make_dataset(synthetic_corpus, None, 3, output="spectrogram")
    with pytest.raises(ValueError, match="max 999"):
        tf_pipeline.make_dataset(synthetic_corpus, [0, 999], 3)


def test_channel_stats_streams_exactly():
    rng = np.random.default_rng(0)
    images = [rng.standard_normal((60, n, 3)) * [1, 2, 3] + [5, 0, -1] for n in (10, 40, 7)]
    stats = channel_stats(images)
    stacked = np.concatenate([image.reshape(-1, 3) for image in images])
    np.testing.assert_allclose(stats.mean, stacked.mean(0), rtol=1e-10)
    np.testing.assert_allclose(stats.std, stacked.std(0), rtol=1e-8)
    assert stats.count == stacked.shape[0]
    assert ChannelStats.from_dict(stats.to_dict()) == stats
    padded = np.zeros((60, 50, 3))
    padded[:, :10] = images[0]
    assert channel_stats([(padded, 10)]) == channel_stats([images[0]])


def test_corpus_channel_stats_only_see_given_indices(synthetic_corpus):
    corpus = synthetic_corpus
    first = np.flatnonzero(corpus.speaker_ids == corpus.speakers[0])
    rest = np.flatnonzero(corpus.speaker_ids != corpus.speakers[0])
    direct = channel_stats(
        tf_pipeline.feature_image(tf_pipeline.load_audio(corpus.records[i].path)).numpy() for i in rest
    )
    computed = tf_pipeline.corpus_channel_stats(corpus, rest)
    np.testing.assert_allclose(computed.mean, direct.mean, rtol=1e-5)
    assert computed.count == direct.count
    assert tf_pipeline.corpus_channel_stats(corpus, first).mean != computed.mean


def test_empty_channel_stats_is_an_error():
    with pytest.raises(ValueError, match="at least one non-empty image"):
        channel_stats([])


def test_datasets_share_one_traced_feature_function_per_setting(synthetic_corpus, emovo_dir):
    """Datasets of one feature config call one traced function (traced once), another config gets its own; FLAC
    files (read by soundfile inside that function) give the features of the audio read directly."""
    from tf_pipeline.dataset import feature_image_function

    corpus = synthetic_corpus
    paths = [record.path for record in corpus.records]
    config = tf_pipeline.FeatureConfig(n_mels=44)  # a setting of this test alone: nothing traced it before
    to_image = feature_image_function(paths, config)
    for indices in ([0, 1], [2, 3, 4], [5]):
        assert len(list(tf_pipeline.feature_images(corpus, indices, config))) == len(indices)
        tf_pipeline.make_dataset(corpus, indices, n_segments=2, batch_size=2, config=config, image_size=(16, 16))
    assert feature_image_function(paths[:1], config) is to_image and to_image.experimental_get_tracing_count() == 1
    other = feature_image_function(paths, tf_pipeline.FeatureConfig(n_mels=45))
    assert other is not to_image

    flac = tf_pipeline.corpora.emovo(emovo_dir)
    indices = [0, 250]
    assert all(flac.records[i].path.endswith(".flac") for i in indices)
    images = [image.numpy() for image, _, _ in tf_pipeline.feature_images(flac, indices, config)]
    for image, index in zip(images, indices):
        expected = tf_pipeline.feature_image(tf_pipeline.load_audio(flac.records[index].path, config), config)
        np.testing.assert_allclose(image, expected.numpy(), atol=1e-5)


def test_map_without_autograph_traces_the_function_as_written():
    """The mapped function is not converted: its result is right, and Python control flow on a tensor (which
    AutoGraph would have rewritten into a graph conditional) is an error at trace time."""
    from tf_pipeline.dataset import map_without_autograph

    data = tf.data.Dataset.range(4)
    assert [int(x) for x in map_without_autograph(data, lambda x: 3 * x, num_parallel_calls=2)] == [0, 3, 6, 9]

    def branchy(x):
        if x > 1:  # a tensor as a Python bool
            return x
        return -x

    assert [int(x) for x in data.map(branchy)] == [0, -1, 2, 3]  # AutoGraph's rewrite, for contrast
    with pytest.raises(TypeError, match="bool"):
        map_without_autograph(data, branchy)
