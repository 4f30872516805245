"""Training levers: SpecAugment masks, segment jitter, mixup, per-speaker normalisation."""

import numpy as np
import pytest
import tensorflow as tf

import tf_pipeline
from tf_pipeline import augment
from keras_ser.training import TrainConfig


def test_spec_augment_masks_bands_with_the_channel_mean():
    tf.random.set_seed(1)
    image = tf.random.normal([60, 200, 3]) + [5.0, 0.0, -1.0]
    masked, frames = augment.spec_augment(image, 200, time_masks=2, time_width=30, freq_masks=2, freq_width=10)
    masked = masked.numpy()
    assert int(frames) == 200
    changed = ~np.isclose(masked, image.numpy())
    assert changed.any()
    fill = image.numpy().mean(axis=(0, 1))
    np.testing.assert_allclose(masked[changed.any(axis=2)], np.broadcast_to(fill, masked[changed.any(axis=2)].shape),
                               rtol=1e-5)
    # Masked cells form whole rows (Mel bands) or whole columns (frames).
    cells = changed.any(axis=2)
    rows, columns = cells.all(axis=1), cells.all(axis=0)
    np.testing.assert_array_equal(cells, rows[:, None] | columns[None, :])
    assert rows.sum() <= 20 and columns.sum() <= 60


def test_segment_jitter_is_a_contiguous_crop():
    image = tf.reshape(tf.range(60 * 100, dtype=tf.float32), [60, 100, 1])
    for seed in range(5):
        tf.random.set_seed(seed)
        cropped, frames = augment.segment_jitter(image, 100, fraction=0.2)
        frames = int(frames)
        assert 60 <= frames <= 100 and cropped.shape[1] == frames
        start = int(cropped[0, 0, 0])
        np.testing.assert_array_equal(cropped.numpy(), image.numpy()[:, start:start + frames])
    short, frames = augment.segment_jitter(tf.zeros([60, 6, 3]), 6, fraction=0.4, min_frames=5)
    assert int(frames) >= 5


def test_mixup_mixes_inputs_and_labels_alike():
    tf.random.set_seed(0)
    inputs = tf.one_hot([0, 1, 2, 3], 4) * 10.0
    mixed, soft = augment.mixup(inputs, tf.constant([0, 1, 2, 3]), 4, alpha=0.4)
    np.testing.assert_allclose(soft.numpy().sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(mixed.numpy() / 10.0, soft.numpy(), rtol=1e-5, atol=1e-6)


def test_make_augment_off_and_bad_values():
    assert augment.make_augment() is None
    with pytest.raises(ValueError, match="jitter=0.7"):
        augment.make_augment(jitter=0.7)
    with pytest.raises(ValueError, match="time_masks=-1"):
        augment.make_augment(time_masks=-1)


def test_speaker_norm_standardises_each_speaker_with_its_own_statistics(synthetic_corpus):
    corpus = synthetic_corpus
    stats = tf_pipeline.speaker_channel_stats(corpus)
    assert set(stats) == set(corpus.speakers)
    dataset = tf_pipeline.make_dataset(corpus, None, batch_size=64, output="images", speaker_stats=stats)
    (images, frames), labels = next(iter(dataset))
    ids = corpus.speaker_ids
    for speaker in corpus.speakers:
        rows = np.flatnonzero(ids == speaker)
        values = np.concatenate([images[row, :, : frames[row]].numpy().reshape(-1, 3) for row in rows])
        np.testing.assert_allclose(values.mean(axis=0), 0.0, atol=1e-3)
        np.testing.assert_allclose(values.std(axis=0), 1.0, atol=1e-3)
    with pytest.raises(ValueError, match="no statistics for speaker"):
        tf_pipeline.make_dataset(corpus, None, speaker_stats={corpus.speakers[0]: stats[corpus.speakers[0]]})


def test_one_hot_labels_and_lever_names():
    config = TrainConfig(label_smoothing=0.1, speaker_norm=True, time_masks=2)
    assert config.label_mode == "one_hot"
    assert any("PER-SPEAKER NORMALISATION" in lever for lever in config.levers())
    assert TrainConfig().levers() == [] and TrainConfig().augment() is None
    with pytest.raises(ValueError, match="label_smoothing=1.0"):
        TrainConfig(label_smoothing=1.0)
