"""Segmenting and resizing feature images."""

import numpy as np
import pytest
import tensorflow as tf

import tf_pipeline


@pytest.mark.parametrize("n_segments", [1, 2, 3, 4, 5])
def test_shapes_and_equal_contiguous_parts(n_segments):
    frames = 103
    image = np.random.default_rng(n_segments).standard_normal((60, frames, 3)).astype(np.float32)
    out = tf_pipeline.segment_and_resize(image, n_segments).numpy()
    assert out.shape == (n_segments, 227, 227, 3)
    length = frames // n_segments
    for i in range(n_segments):
        stop = (i + 1) * length if i < n_segments - 1 else frames  # the last absorbs the remainder
        reference = tf.image.resize(image[:, i * length : stop], (227, 227), method="bilinear").numpy()
        np.testing.assert_allclose(out[i], reference, atol=1e-5)


def test_custom_size():
    out = tf_pipeline.segment_and_resize(np.ones((60, 50, 3), np.float32), 2, size=(32, 48))
    assert out.shape == (2, 32, 48, 3)
    np.testing.assert_allclose(out.numpy(), 1.0, atol=1e-6)


def test_batched_equals_one_at_a_time():
    rng = np.random.default_rng(0)
    frames = [400, 151, 5, 37]
    images = np.zeros((4, 60, 400, 3), np.float32)
    for row, count in enumerate(frames):
        images[row, :, :count] = rng.standard_normal((60, count, 3))
    batched = tf_pipeline.batch_segment_and_resize(images, frames, 5).numpy()
    for row, count in enumerate(frames):
        single = tf_pipeline.segment_and_resize(images[row, :, :count], 5).numpy()
        np.testing.assert_allclose(batched[row], single, atol=1e-6)


@pytest.mark.parametrize("n_segments", [0, 6, 2.5, True])
def test_n_segments_outside_1_to_5(n_segments):
    with pytest.raises(ValueError, match=f"n_segments={n_segments!r}"):
        tf_pipeline.segment_and_resize(np.zeros((60, 20, 3), np.float32), n_segments)


def test_fewer_frames_than_segments_is_a_clear_error():
    with pytest.raises(ValueError, match="at least n_segments=4 frames .* Frames: 3"):
        tf_pipeline.segment_and_resize(np.zeros((60, 3, 3), np.float32), 4)


def test_fewer_frames_than_segments_in_graph():
    fn = tf.function(
        lambda x, n: tf_pipeline.batch_segment_and_resize(x, n, 3),
        input_signature=[tf.TensorSpec([None, 60, None, 3]), tf.TensorSpec([None], tf.int32)],
    )
    assert fn(np.zeros((1, 60, 3, 3), np.float32), [3]).shape == (1, 3, 227, 227, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least n_segments=3 frames"):
        fn(np.zeros((1, 60, 3, 3), np.float32), [2])


def test_bad_rank_names_the_shape():
    with pytest.raises(ValueError, match=r"\[n_mels, frames, channels\]. Received shape: \(60, 20\)"):
        tf_pipeline.segment_and_resize(np.zeros((60, 20), np.float32), 2)
