"""`SERTask`, the base of every keras-ser model: a head on a backbone, with what inference needs.

Every model is a registered functional `keras.Model` subclass (keras-hub
"task" style) that carries, saved with it in `.keras` files: `class_names`,
`feature_config` (its front end's settings), `n_segments`, and the training
speakers' feature statistics in its `"standardize"` layer (see
`keras_ser.set_channel_stats`). A subclass that sets `NAME` is registered in
`keras_ser.models.registry` as it is defined, with everything else the
library needs to know of it in class attributes (listed on `SERTask`).

Mixed precision: build under a global policy such as `"mixed_bfloat16"`
(or pass `dtype`); the input standardisation and the softmax head stay in
float32 (`float32_if_mixed`), everything else computes in the policy's
dtype.
"""

import keras

from keras_ser.metrics import UnweightedAccuracy
from keras_ser.models import registry
from keras_ser.models.checks import resolve_class_names
from keras_ser.rebuilt_model import RebuiltModel

# Compile defaults: Adam at 1e-4 is the optimiser of this project's reference
# calibration of the end-to-end CNN+SRU (docs/design.md, Reference calibration).
DEFAULT_LEARNING_RATE = 1e-4


def float32_if_mixed(dtype):
    """float32 under a mixed-precision policy, else `dtype`.

    For the layers that stay in float32 under mixed precision: the input
    standardisation (raw log-Mel values need the mantissa) and the softmax
    head (as Keras advises).

    Example:

    >>> float32_if_mixed("mixed_bfloat16"), float32_if_mixed(None)
    ('float32', None)
    """
    policy = keras.dtype_policies.get(dtype) if dtype is not None else keras.config.dtype_policy()
    return "float32" if policy.compute_dtype in ("float16", "bfloat16") else dtype


class SERTask(RebuiltModel):
    """Base class of the keras-ser task models (a head on a backbone, with metadata).

    Holds what inference needs, saved with the model: `class_names`,
    `feature_config`, `n_segments`; owns the compile defaults (`compile()`
    with no arguments gives the recipe of `build_model`) and gives the
    model's preprocessor (`model.preprocessor`). Subclasses build their
    functional graph in `__init__` and call `super().__init__(inputs=...,
    outputs=..., ...)`.

    A subclass that sets `NAME` is a zoo entry: it is registered
    (`keras_ser.models.registry`) when it is defined, and these class
    attributes say the rest, once:

    - `NAME`: str, the name `build_model` and `list_models` know it by.
    - `DESCRIPTION`: str, one line for `list_models()`.
    - `PREPROCESSOR`: its front end, a
      `keras_ser.models.preprocessor.Preprocessor` subclass (the input
      layout, the feature config class, the TensorFlow work).
    - `SEGMENTED`: `"n"` (takes `n_segments`, 1..5), `1` (one segment) or
      None (no segments).
    - `RECIPES`: the `keras_ser.training` recipes that train it.
    - `BUILD_OPTIONS`: the `TrainConfig` fields its `build_model` call
      takes (`TrainConfig.model_kwargs`).
    - `DEFAULT_BACKBONE`, `DEFAULT_SRU_UNITS`: the values a `TrainConfig`
      names for it when they are left None (None: no default).
    - `TFLITE_SUPPORTED`: whether `saved_models.export_tflite` converts it.
    - `from_options(**options)`: a classmethod that builds the model from
      `build_model`'s arguments.

    Example:

    >>> import keras_ser
    >>> model = keras_ser.build_model("sru", num_classes=3, sru_units=8,
    ...                               class_names=["anger", "neutral", "sadness"])
    >>> isinstance(model, SERTask), model.class_names, model.n_segments
    (True, ['anger', 'neutral', 'sadness'], None)
    >>> model.feature_config.n_mels, type(model.optimizer).__name__
    (60, 'Adam')
    >>> type(model).NAME, type(model).PREPROCESSOR.LAYOUT
    ('sru', 'frames')
    """

    NAME = None
    DESCRIPTION = ""
    PREPROCESSOR = None
    SEGMENTED = None
    RECIPES = ("end_to_end",)
    BUILD_OPTIONS = ("dropout",)
    DEFAULT_BACKBONE = None
    DEFAULT_SRU_UNITS = None
    TFLITE_SUPPORTED = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("NAME") is not None:
            registry.register(cls)

    def __init__(
        self,
        inputs,
        outputs,
        class_names=None,
        feature_config=None,
        n_segments=None,
        **kwargs,
    ):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        num_classes = self.outputs[0].shape[-1]
        self._class_names = resolve_class_names(class_names, num_classes)
        self._feature_config = self.PREPROCESSOR.CONFIG_CLASS.coerce(feature_config)
        self._n_segments = n_segments

    @classmethod
    def from_options(cls, **options):
        """Builds the model from `keras_ser.build_model`'s arguments (each zoo entry defines it)."""
        raise NotImplementedError(f"{cls.__name__} does not say how build_model builds it: define from_options")

    @classmethod
    def input_segments(cls, n_segments=None):
        """The segments the model is built with for `n_segments` (None: 3), by `SEGMENTED`.

        Example:

        >>> import keras_ser
        >>> keras_ser.CNNClassifier.input_segments(3), keras_ser.EncoderSRUClassifier.input_segments(None)
        (1, 3)
        """
        return {"n": 3 if n_segments is None else n_segments, 1: 1, None: None}[cls.SEGMENTED]

    @property
    def class_names(self):
        """List of str: the label of each output unit, in order."""
        return list(self._class_names)

    @property
    def num_classes(self):
        """int: number of classes (outputs of the softmax)."""
        return len(self._class_names)

    @property
    def feature_config(self):
        """The feature config (`PREPROCESSOR.CONFIG_CLASS`) of the features the model was trained on."""
        return self._feature_config

    @property
    def n_segments(self):
        """int or None: segments per utterance (`None` for frame-level models)."""
        return self._n_segments

    @property
    def preprocessor(self):
        """The `PREPROCESSOR` that turns audio into this model's input.

        Built from what the model saves with itself (feature config,
        segments, image size); its TensorFlow work imports TensorFlow on
        first use.
        """
        return self.PREPROCESSOR.for_model(self)

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """Configures training; `"auto"` arguments take the keras-ser defaults.

        Defaults: `keras.optimizers.Adam(learning_rate=1e-4)` (the optimiser
        of the project's reference calibration of the end-to-end CNN+SRU,
        docs/design.md), sparse categorical cross-entropy on the softmax output,
        and the metrics WA (`SparseCategoricalAccuracy` named `"wa"`) and UA
        (`keras_ser.metrics.UnweightedAccuracy` named `"ua"`).

        Args:
            optimizer: `"auto"` or any Keras optimizer (instance or name).
            loss: `"auto"` or any Keras loss.
            metrics: `"auto"` or a list of Keras metrics.
            **kwargs: passed to `keras.Model.compile` (`jit_compile`, ...).

        Example:

        >>> model.compile()                                              # doctest: +SKIP
        >>> model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9))  # doctest: +SKIP
        """
        if isinstance(optimizer, str) and optimizer == "auto":
            optimizer = keras.optimizers.Adam(learning_rate=DEFAULT_LEARNING_RATE)
        if isinstance(loss, str) and loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy()
        if isinstance(metrics, str) and metrics == "auto":
            metrics = [
                keras.metrics.SparseCategoricalAccuracy(name="wa"),
                UnweightedAccuracy(num_classes=self.num_classes, name="ua"),
            ]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        """Re-compiles a loaded model as it was saved (optimizer, loss, metrics)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if hasattr(self, "optimizer") and self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        # Not chained to the functional config: the graph is rebuilt from the
        # constructor arguments (keras-hub style), the weights loaded by path.
        return {
            "class_names": list(self._class_names),
            "feature_config": self._feature_config.to_dict(),
            **self.base_config(),
        }
