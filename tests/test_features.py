"""Log-Mel and delta features: librosa parity on the real EMO-DB, shapes, errors."""

import glob
import os

import librosa
import numpy as np
import pytest
import soundfile
import tensorflow as tf

import tf_pipeline
from tf_pipeline import FeatureConfig


def librosa_log_mel(y):
    mel = librosa.feature.melspectrogram(
        y=y, sr=16000, n_fft=512, win_length=400, hop_length=160, window="hamming",
        center=False, power=2.0, n_mels=60, fmin=0, fmax=8000,
    )
    return np.log(mel + 1e-6).T


def test_mel_filterbank_equals_librosa():
    ours = tf_pipeline.mel_filterbank(FeatureConfig())
    reference = librosa.filters.mel(sr=16000, n_fft=512, n_mels=60, fmin=0, fmax=8000).T
    np.testing.assert_allclose(ours, reference, atol=1e-7, rtol=1e-5)


def test_librosa_parity_on_every_emodb_file(emodb_dir):
    """log_mel within 1e-3 and deltas within 1e-4 of librosa, for all 535 files."""
    paths = sorted(glob.glob(os.path.join(emodb_dir, "*.wav")))
    assert len(paths) == 535
    log_mel = tf.function(lambda w: tf_pipeline.log_mel(w), input_signature=[tf.TensorSpec([None], tf.float32)])
    delta = tf.function(lambda x: tf_pipeline.deltas(x), input_signature=[tf.TensorSpec([None, 60], tf.float32)])
    worst_mel = worst_delta = 0.0
    for path in paths:
        y, rate = soundfile.read(path, dtype="float32")
        assert rate == 16000
        reference = librosa_log_mel(y)
        ours = log_mel(y).numpy()
        assert ours.shape == reference.shape, path
        worst_mel = max(worst_mel, float(np.abs(ours - reference).max()))
        reference_delta = librosa.feature.delta(reference, width=5, mode="nearest", axis=0)
        worst_delta = max(worst_delta, float(np.abs(delta(reference).numpy() - reference_delta).max()))
    assert worst_mel < 1e-3
    assert worst_delta < 1e-4


def test_deltas_hand_computed():
    x = tf.constant([[0.0], [1.0], [4.0], [9.0], [16.0]])
    # N=2, edges replicated: padded [0,0,0,1,4,9,16,16,16]
    expected = np.array([(1 * (1 - 0) + 2 * (4 - 0)) / 10, (1 * (4 - 0) + 2 * (9 - 0)) / 10,
                         (1 * (9 - 1) + 2 * (16 - 0)) / 10, (1 * (16 - 4) + 2 * (16 - 1)) / 10,
                         (1 * (16 - 9) + 2 * (16 - 4)) / 10])
    np.testing.assert_allclose(tf_pipeline.deltas(x)[:, 0].numpy(), expected, rtol=1e-6)


def test_deltas_rejects_bad_width():
    with pytest.raises(ValueError, match="n=0"):
        tf_pipeline.deltas(tf.zeros([4, 2]), n=0)


def test_feature_image_channels_are_mel_delta_delta2():
    y = np.random.default_rng(1).uniform(-0.5, 0.5, 8000).astype(np.float32)
    image = tf_pipeline.feature_image(y).numpy()
    mel = tf_pipeline.log_mel(y).numpy()
    assert image.shape == (60, mel.shape[0], 3)
    np.testing.assert_allclose(image[..., 0], mel.T, atol=1e-6)
    d1 = tf_pipeline.deltas(mel).numpy()
    np.testing.assert_allclose(image[..., 1], d1.T, atol=1e-6)
    np.testing.assert_allclose(image[..., 2], tf_pipeline.deltas(d1).numpy().T, atol=1e-6)


@pytest.mark.parametrize("samples, frames", [(512, 1), (671, 1), (672, 2), (16000, 97)])
def test_frame_count(samples, frames):
    assert tf_pipeline.log_mel(np.zeros(samples, np.float32)).shape == (frames, 60)
    assert FeatureConfig().num_frames(samples) == frames


def test_batched_features_equal_one_at_a_time():
    rng = np.random.default_rng(2)
    lengths = [16000, 5000, 512, 9999]
    batch = np.zeros([len(lengths), max(lengths)], np.float32)
    for row, length in enumerate(lengths):
        batch[row, :length] = rng.uniform(-0.5, 0.5, length)
    # Garbage past each row's length must not change its features.
    batch[1, 5000:] = 0.9
    images, frames = tf_pipeline.batch_feature_image(batch, lengths)
    for row, length in enumerate(lengths):
        single = tf_pipeline.feature_image(batch[row, :length]).numpy()
        assert frames[row] == single.shape[1]
        np.testing.assert_allclose(images[row, :, : frames[row]].numpy(), single, atol=1e-5)
        assert not np.any(images[row, :, frames[row]:].numpy())


def test_too_short_waveform_is_a_clear_error():
    with pytest.raises(ValueError, match=r"too short: at least 512 samples .* Received samples: 100"):
        tf_pipeline.log_mel(np.zeros(100, np.float32))


def test_too_short_in_graph_raises_invalid_argument():
    fn = tf.function(lambda w: tf_pipeline.feature_image(w), input_signature=[tf.TensorSpec([None], tf.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="too short"):
        fn(np.zeros(10, np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_a_clear_error(bad):
    y = np.zeros(2000, np.float32)
    y[700] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        tf_pipeline.feature_image(y)
    fn = tf.function(lambda w: tf_pipeline.feature_image(w), input_signature=[tf.TensorSpec([None], tf.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
        fn(y)


def test_integer_waveform_is_rejected():
    with pytest.raises(ValueError, match="float waveform"):
        tf_pipeline.log_mel(np.zeros(1000, np.int16))


def test_stereo_waveform_is_rejected_with_shape():
    with pytest.raises(ValueError, match=r"mono signal .* \(1000, 2\)"):
        tf_pipeline.log_mel(np.zeros((1000, 2), np.float32))


def test_frame_sequence_layout_is_channel_major():
    image = tf_pipeline.feature_image(np.random.default_rng(3).uniform(-0.3, 0.3, 4000).astype(np.float32)).numpy()
    frames = tf_pipeline.batch_frame_sequence(image[None]).numpy()[0]
    assert frames.shape == (image.shape[1], 180)
    np.testing.assert_array_equal(frames[:, :60], image[..., 0].T)
    np.testing.assert_array_equal(frames[:, 120:], image[..., 2].T)
