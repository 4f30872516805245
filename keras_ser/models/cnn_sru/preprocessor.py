"""The front ends of the CNN+SRU family: the paper's log-Mel feature image, as segments or as frames.

Both compute the 3-channel image of `tf_pipeline.features` (log-Mel, delta,
delta-delta; `tf_pipeline.config.FeatureConfig`), then:

- `LogMelSegmentsPreprocessor` (layout `segments`, `cnn_sru` and `cnn`):
  the image cut into N equal segments along time, each resized to
  `image_size` (`tf_pipeline.segment_and_resize`): `[B, N, H, W, 3]`.
- `LogMelFramesPreprocessor` (layout `frames`, `sru`): one vector per 10 ms
  frame, `[log-Mel | delta | delta-delta]`, zero past each row's frames:
  `[B, T, 3 * n_mels]`.

Both have the training levers of `tf_pipeline.make_dataset` (SpecAugment,
jitter, mixup, soft labels, per-speaker statistics) and the channel
statistics of the model's `standardize` layer
(`tf_pipeline.corpus_channel_stats`).
"""

from keras_ser.models.preprocessor import Preprocessor
from tf_pipeline.config import DEFAULT_SIZE
from tf_pipeline.config import FeatureConfig
from tf_pipeline.config import check_n_segments


class LogMelPreprocessor(Preprocessor):
    """Base of the two log-Mel front ends: their dataset, statistics and TFLite check."""

    CONFIG_CLASS = FeatureConfig

    @property
    def min_samples(self):
        """int: samples for one frame per segment (`FeatureConfig.min_samples(n_segments)`)."""
        return self.feature_config.min_samples(self.n_segments or 1)

    def dataset(self, corpus, indices=None, batch_size=30, training=False, seed=0, augment=None,
                speaker_stats=None, label_mode="int", mixup_alpha=0.0, cache=True):
        """`tf_pipeline.make_dataset` of this layout, with its training levers."""
        import tf_pipeline

        return tf_pipeline.make_dataset(
            corpus, indices, n_segments=self.n_segments or 1, batch_size=batch_size, training=training,
            config=self.feature_config, image_size=self.image_size or DEFAULT_SIZE, output=self.LAYOUT, cache=cache,
            seed=seed, augment=augment, speaker_stats=speaker_stats, label_mode=label_mode, mixup_alpha=mixup_alpha)

    def channel_stats(self, corpus, indices):
        """Mean and std of each channel of the feature images of `corpus` records (`ChannelStats`)."""
        import tf_pipeline

        return tf_pipeline.corpus_channel_stats(corpus, indices, self.feature_config)

    def tflite_batch_function(self):
        """`batch` itself: its FFT is TFLite's built-in `RFFT2D`, which takes power-of-two lengths only."""
        n_fft = self.feature_config.n_fft
        if n_fft & (n_fft - 1):
            raise ValueError(
                f"TFLite export needs a power-of-two n_fft for the log-Mel features (TFLite's built-in FFT takes "
                f"only those). Received: n_fft={n_fft}"
            )
        return self.batch


class LogMelSegmentsPreprocessor(LogMelPreprocessor):
    """The feature image cut into N segments, each resized: `[B, N, H, W, 3]` (`cnn_sru`, `cnn`).

    Args:
        feature_config: `tf_pipeline.config.FeatureConfig`, its dict, or None.
        n_segments: int in 1..5.
        image_size: `(height, width)` of each segment. Defaults to `(227, 227)`.

    Example:

    >>> import numpy as np
    >>> preprocessor = LogMelSegmentsPreprocessor(n_segments=2, image_size=(67, 67))
    >>> preprocessor(np.random.uniform(-0.1, 0.1, 16000).astype("float32")).shape
    (1, 2, 67, 67, 3)
    """

    LAYOUT = "segments"

    def __init__(self, feature_config=None, n_segments=None, image_size=None):
        self.feature_config = self.CONFIG_CLASS.coerce(feature_config)
        self.n_segments = check_n_segments(n_segments)
        self.image_size = tuple(int(s) for s in (image_size or DEFAULT_SIZE))

    @classmethod
    def for_model(cls, model):
        return cls(model.feature_config, model.n_segments, tuple(int(s) for s in model.input.shape[2:4]))

    @classmethod
    def for_options(cls, feature_config=None, n_segments=None, image_size=None):
        return cls(feature_config, n_segments, None if image_size is None else (image_size, image_size))

    def batch(self, waveforms, num_samples):
        import tf_pipeline

        images, num_frames = tf_pipeline.batch_feature_image(waveforms, num_samples, self.feature_config)
        return tf_pipeline.batch_segment_and_resize(images, num_frames, self.n_segments, self.image_size)


class LogMelFramesPreprocessor(LogMelPreprocessor):
    """One `[log-Mel | delta | delta-delta]` vector per frame, zero past each row: `[B, T, 3 * n_mels]` (`sru`).

    Args:
        feature_config: `tf_pipeline.config.FeatureConfig`, its dict, or None.

    Example:

    >>> import numpy as np
    >>> LogMelFramesPreprocessor()(np.random.uniform(-0.1, 0.1, 16000).astype("float32")).shape
    (1, 97, 180)
    """

    LAYOUT = "frames"

    def batch(self, waveforms, num_samples):
        import tf_pipeline

        images, _ = tf_pipeline.batch_feature_image(waveforms, num_samples, self.feature_config)
        return tf_pipeline.batch_frame_sequence(images)  # zero past each row's frames
