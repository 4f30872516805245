"""The preprocessor of a zoo model: audio in, exactly what that model takes out.

Which model takes what is stated once, on the model classes
(`INPUT_LAYOUT`, `SEGMENTED`; see `keras_ser.zoo.model_input`); a
`Preprocessor` turns it into TensorFlow work with the `tf_pipeline`
functions, the same ones everywhere:

| layout       | model input                                   | zoo entries                  |
| ------------ | --------------------------------------------- | ---------------------------- |
| `segments`   | `[B, N, H, W, 3]` feature-image segments       | `cnn_sru`, `cnn` (N = 1)     |
| `frames`     | `[B, T, 3 * n_mels]` log-Mel + deltas per frame | `sru`                        |
| `mel_frames` | `[B, T, n_mels]` Mel power frames, -1 padding  | `encoder_stats`, `encoder_sru` |
| `sfx_mel`    | `[B, T, 96]` sound-effects log-Mel, -1 padding | `sfx_stats`                  |
| `fusion`     | dict of both: `mel_frames`, `sfx_mel`          | `fusion_stats`               |

Every model carries its preprocessor (`model.preprocessor`, built from what
the model saves with itself: layout, feature config, segments, image size),
and the training datasets (`Preprocessor.dataset`), `keras_ser.inference`
and the SavedModel signatures (`Preprocessor.batch`) all go through it, so
training, prediction and serving compute the same input.

The preprocessor is TensorFlow code; models import it on first use of
`model.preprocessor`, so they still build and run on JAX or PyTorch
without TensorFlow.
"""

import numpy as np

from tf_pipeline.config import FeatureConfig
from tf_pipeline.config import FusionFeatureConfig
from tf_pipeline.config import MelFramesConfig
from tf_pipeline.config import SoundEffectsMelConfig

LAYOUTS = ("segments", "frames", "mel_frames", "sfx_mel", "fusion")
# The feature config of each layout.
CONFIG_CLASSES = {
    "segments": FeatureConfig,
    "frames": FeatureConfig,
    "mel_frames": MelFramesConfig,
    "sfx_mel": SoundEffectsMelConfig,
    "fusion": FusionFeatureConfig,
}


class Preprocessor:
    """Turns audio into the input of one zoo model (keras-hub's preprocessor, for audio).

    Args:
        layout: `"segments"`, `"frames"` or `"mel_frames"` (see the module
            docstring).
        feature_config: `FeatureConfig` (segments, frames) or
            `MelFramesConfig` (mel_frames), or its dict, or None for the
            layout's defaults.
        n_segments: int in 1..5 for `"segments"`; None otherwise.
        image_size: `(height, width)` of each segment for `"segments"`.
            Defaults to `(227, 227)`.

    Example:

    >>> import keras_ser
    >>> model = keras_ser.build_model("sru", sru_units=8, compile=False)
    >>> model.preprocessor.layout
    'frames'
    >>> model.preprocessor(np.random.uniform(-0.1, 0.1, 16000).astype("float32")).shape
    (1, 97, 180)
    """

    def __init__(self, layout, feature_config=None, n_segments=None, image_size=None):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}. Received: layout={layout!r}")
        config_class = CONFIG_CLASSES[layout]
        if feature_config is None:
            feature_config = config_class()
        elif isinstance(feature_config, (dict, config_class)):
            feature_config = config_class.from_dict(feature_config)
        else:
            raise ValueError(f"feature_config of a {layout!r} preprocessor must be a {config_class.__name__} or its "
                             f"dict. Received: {type(feature_config).__name__}")
        if layout == "segments":
            from keras_ser.zoo import _check_segments

            _check_segments(n_segments)
            image_size = tuple(int(s) for s in (image_size or (227, 227)))
        elif n_segments is not None or image_size is not None:
            raise ValueError(f"A {layout!r} preprocessor cuts no segments. Received: n_segments={n_segments!r}, "
                             f"image_size={image_size!r}")
        self.layout = layout
        self.feature_config = feature_config
        self.n_segments = n_segments
        self.image_size = image_size

    @classmethod
    def for_model(cls, model):
        """The preprocessor of a keras-ser model (`keras_ser.SERTask`)."""
        layout = model.INPUT_LAYOUT
        if layout == "segments":
            return cls(layout, model.feature_config, model.n_segments, tuple(int(s) for s in model.input.shape[2:4]))
        return cls(layout, model.feature_config)

    @classmethod
    def for_train_config(cls, config, feature_config=None):
        """The preprocessor of the model a `TrainConfig` describes."""
        from keras_ser.zoo import model_input

        layout, n_segments = model_input(config.model, config.n_segments)
        if layout == "segments":
            return cls(layout, feature_config, n_segments, (config.image_size, config.image_size))
        return cls(layout, feature_config)

    def batch(self, waveforms, num_samples):
        """Model input of zero-padded waveforms (TensorFlow; runs in graphs and SavedModels).

        Args:
            waveforms: float32 `[batch, max_samples]` at the config's rate.
            num_samples: int `[batch]`, the true length of each row.

        Returns:
            The model input: a float32 tensor, or for `"fusion"` a dict of
            them (see the module docstring).
        """
        import tf_pipeline

        if self.layout == "mel_frames":
            return tf_pipeline.batch_mel_frames(waveforms, num_samples, self.feature_config)[0]
        if self.layout == "sfx_mel":
            return tf_pipeline.batch_sfx_mel(waveforms, num_samples, self.feature_config)[0]
        if self.layout == "fusion":
            return tf_pipeline.batch_fusion_inputs(waveforms, num_samples, self.feature_config)
        images, num_frames = tf_pipeline.batch_feature_image(waveforms, num_samples, self.feature_config)
        if self.layout == "frames":
            return tf_pipeline.batch_frame_sequence(images)  # zero past each row's frames
        return tf_pipeline.batch_segment_and_resize(images, num_frames, self.n_segments, self.image_size)

    def __call__(self, waveform):
        """Model input of one mono waveform, as a numpy batch of one (`[1, ...]`)."""
        waveform = np.asarray(waveform, np.float32)
        if waveform.ndim != 1:
            raise ValueError(f"waveform must be a mono signal of shape [samples]. Received shape: {waveform.shape}")
        inputs = self.batch(waveform[None], [waveform.shape[0]])
        if isinstance(inputs, dict):
            return {name: np.asarray(value) for name, value in inputs.items()}
        return np.asarray(inputs)

    def dataset(self, corpus, indices=None, batch_size=30, training=False, seed=0, augment=None,
                speaker_stats=None, label_mode="int", mixup_alpha=0.0, cache=True):
        """A batched tf.data pipeline of `(model input, labels)` over `corpus` records.

        Arguments as `tf_pipeline.make_dataset` (segments, frames; with the
        training levers) or `tf_pipeline.mel_frames_dataset` (mel_frames).
        The speech-encoder layouts (mel_frames, sfx_mel, fusion) have no
        levers: asking for one is an error; sfx_mel and fusion batches are
        computed from padded waveforms (`tf_pipeline.waveform_dataset`, no
        cache).
        """
        import tf_pipeline

        if self.layout in ("mel_frames", "sfx_mel", "fusion"):
            if augment is not None or speaker_stats is not None or mixup_alpha or label_mode != "int":
                raise ValueError(f"The {self.layout} input has no augmentation, per-speaker statistics, mixup or "
                                 "soft labels (the speech-encoder recipes train on features extracted once)")
        if self.layout == "mel_frames":
            return tf_pipeline.mel_frames_dataset(corpus, indices, self.feature_config, batch_size=batch_size,
                                                  training=training, seed=seed, cache=cache)
        if self.layout in ("sfx_mel", "fusion"):
            return tf_pipeline.waveform_dataset(corpus, indices, self.batch, self.feature_config,
                                                batch_size=batch_size, training=training, seed=seed)
        return tf_pipeline.make_dataset(
            corpus, indices, n_segments=self.n_segments or 1, batch_size=batch_size, training=training,
            config=self.feature_config, image_size=self.image_size or (227, 227), output=self.layout, cache=cache,
            seed=seed, augment=augment, speaker_stats=speaker_stats, label_mode=label_mode, mixup_alpha=mixup_alpha)

    def get_config(self):
        return {
            "layout": self.layout,
            "feature_config": self.feature_config.to_dict(),
            "n_segments": self.n_segments,
            "image_size": list(self.image_size) if self.image_size else None,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, Preprocessor) and self.get_config() == other.get_config()

    def __repr__(self):
        return f"Preprocessor({self.get_config()})"
