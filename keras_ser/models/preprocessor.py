"""`Preprocessor`, the base of the front ends: audio in, exactly what one model takes out.

Each model family defines a `Preprocessor` subclass per input layout it
feeds (keras-hub's preprocessor, for audio), and each task class names its
own (`SERTask.PREPROCESSOR`). The registered layouts
(`keras_ser.models.registry.preprocessor_classes()`):

| layout       | model input                                     | family                                            |
| ------------ | ----------------------------------------------- | ------------------------------------------------- |
| `segments`   | `[B, N, H, W, 3]` feature-image segments         | `cnn_sru` (`cnn_sru`, `cnn` with N = 1)            |
| `frames`     | `[B, T, 3 * n_mels]` log-Mel + deltas per frame   | `cnn_sru` (`sru`)                                  |
| `mel_frames` | `[B, T, n_mels]` Mel power frames, -1 padding    | `speech_encoders` (`encoder_stats`, `encoder_sru`) |
| `sfx_mel`    | `[B, T, 96]` sound-effects log-Mel, -1 padding   | `speech_encoders` (`sfx_stats`)                    |
| `fusion`     | dict of both: `mel_frames`, `sfx_mel`            | `speech_encoders` (`fusion_stats`)                 |

Every model carries its preprocessor (`model.preprocessor`, built from what
the model saves with itself: feature config, segments, image size), and the
training datasets (`Preprocessor.dataset`), `keras_ser.inference`, the
SavedModel signatures and the TFLite graph (`Preprocessor.batch`) all go
through it, so training, prediction and serving compute the same input.

A subclass sets `LAYOUT` (the name stored in exports) and `CONFIG_CLASS`
(its feature config, a `tf_pipeline.config.DictConfig`) and defines
`batch`; the base gives the rest: a tf.data pipeline of padded waveforms
through `batch` (`dataset`), one-waveform calls, the config round trip.
Preprocessors are TensorFlow code, imported inside their methods, so the
models still build and run on JAX or PyTorch without TensorFlow.
"""

import numpy as np

from keras_ser.models import registry


class Preprocessor:
    """Turns audio into the input of one model (keras-hub's preprocessor, for audio).

    Args:
        feature_config: the `CONFIG_CLASS` instance, its dict, or None for
            its defaults.
        n_segments, image_size: for the layouts that cut segments
            (`segments`); None otherwise.

    Example:

    >>> import keras_ser
    >>> model = keras_ser.build_model("sru", sru_units=8, compile=False)
    >>> model.preprocessor.layout
    'frames'
    >>> model.preprocessor(np.random.uniform(-0.1, 0.1, 16000).astype("float32")).shape
    (1, 97, 180)
    >>> Preprocessor.from_layout("frames") == model.preprocessor
    True
    """

    LAYOUT = None
    CONFIG_CLASS = None
    # Digital silence (every sample 0) is refused (the TFLite export checks it too).
    REJECTS_SILENCE = False

    def __init__(self, feature_config=None, n_segments=None, image_size=None):
        if n_segments is not None or image_size is not None:
            raise ValueError(f"A {self.LAYOUT!r} preprocessor cuts no segments. Received: n_segments={n_segments!r}, "
                             f"image_size={image_size!r}")
        self.feature_config = self.CONFIG_CLASS.coerce(feature_config)
        self.n_segments = None
        self.image_size = None

    @property
    def layout(self):
        """str: the name of the input layout (stored in exported models)."""
        return self.LAYOUT

    @classmethod
    def from_layout(cls, layout, feature_config=None, n_segments=None, image_size=None):
        """The preprocessor of a registered layout (`keras_ser.models.registry.preprocessor_classes()`).

        Example:

        >>> Preprocessor.from_layout("images")
        Traceback (most recent call last):
        ...
        ValueError: layout must be one of ('segments', 'frames', 'mel_frames', 'sfx_mel', 'fusion'). Received: layout='images'
        """
        classes = registry.preprocessor_classes()
        if layout not in classes:
            raise ValueError(f"layout must be one of {tuple(classes)}. Received: layout={layout!r}")
        return classes[layout](feature_config, n_segments, image_size)

    @classmethod
    def for_model(cls, model):
        """The preprocessor of a keras-ser model (`keras_ser.SERTask`), from what it saves with itself."""
        return cls(model.feature_config)

    @classmethod
    def for_options(cls, feature_config=None, n_segments=None, image_size=None):
        """The preprocessor of the model `build_model` makes with these options (`TrainConfig.preprocessor`)."""
        return cls(feature_config)

    @property
    def min_samples(self):
        """int: the fewest samples a waveform must have."""
        return self.feature_config.min_samples

    def batch(self, waveforms, num_samples):
        """Model input of zero-padded waveforms (TensorFlow; runs in graphs and SavedModels).

        Args:
            waveforms: float32 `[batch, max_samples]` at the config's rate.
            num_samples: int `[batch]`, the true length of each row.

        Returns:
            The model input: a float32 tensor, or a dict of them keyed by
            the model's input names.
        """
        raise NotImplementedError(f"{type(self).__name__} must define batch(waveforms, num_samples)")

    def tflite_batch_function(self):
        """`(waveform [1, samples], num_samples [1]) -> model input` in TFLite built-in ops only.

        `saved_models.export_tflite` converts it. Defaults to `batch`; a
        front end with an op TFLite lacks replaces it, or raises ValueError
        when its settings cannot convert.
        """
        return self.batch

    def __call__(self, waveform):
        """Model input of one mono waveform, as a numpy batch of one (`[1, ...]`)."""
        waveform = np.asarray(waveform, np.float32)
        if waveform.ndim != 1:
            raise ValueError(f"waveform must be a mono signal of shape [samples]. Received shape: {waveform.shape}")
        inputs = self.batch(waveform[None], [waveform.shape[0]])
        if isinstance(inputs, dict):
            return {name: np.asarray(value) for name, value in inputs.items()}
        return np.asarray(inputs)

    def check_levers(self, augment=None, speaker_stats=None, label_mode="int", mixup_alpha=0.0):
        """Raises ValueError for a training lever this input does not have (the base: none of them)."""
        if augment is not None or speaker_stats is not None or mixup_alpha or label_mode != "int":
            raise ValueError(f"The {self.LAYOUT} input has no augmentation, per-speaker statistics, mixup or soft "
                             "labels (its recipes train on features extracted once)")

    def dataset(self, corpus, indices=None, batch_size=30, training=False, seed=0, augment=None,
                speaker_stats=None, label_mode="int", mixup_alpha=0.0, cache=True):
        """A batched tf.data pipeline of `(model input, labels)` over `corpus` records.

        The base: waveforms padded per batch, then `batch`
        (`tf_pipeline.waveform_dataset`; no cache, no training levers:
        asking for one is an error). Layouts with levers or a cache
        (`segments`, `frames`, `mel_frames`) define their own.
        """
        import tf_pipeline

        self.check_levers(augment, speaker_stats, label_mode, mixup_alpha)
        return tf_pipeline.waveform_dataset(corpus, indices, self.batch, self.feature_config, batch_size=batch_size,
                                            training=training, seed=seed)

    def channel_stats(self, corpus, indices):
        """Per-channel statistics of the features of `corpus` records, for the model's `standardize` layer.

        The training runner sets a fresh model's statistics from the
        training speakers' (`keras_ser.training.loso.make_fold_data`).
        Returns a `tf_pipeline.normalization.ChannelStats`, or None (the
        base: the input has no such statistics).
        """
        return None

    def get_config(self):
        return {
            "layout": self.LAYOUT,
            "feature_config": self.feature_config.to_dict(),
            "n_segments": self.n_segments,
            "image_size": list(self.image_size) if self.image_size else None,
        }

    @classmethod
    def from_config(cls, config):
        return cls.from_layout(**config)

    def __eq__(self, other):
        return type(other) is type(self) and self.get_config() == other.get_config()

    def __repr__(self):
        return f"{type(self).__name__}({self.get_config()})"
