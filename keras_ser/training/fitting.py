"""What every training recipe shares: the fold's data, the result, and the pieces of a fit.

`FoldData` is how a recipe gets one fold's data, `TrainResult` what it
returns; `build_for` makes the fresh model a `TrainConfig` describes, with
the fold's statistics; `loss_and_metrics`, `fit_callbacks`, `summarise`
and `history_dict` are the loss, early stopping and record of each `fit`
(`keras_ser.training.recipes`, `keras_ser.training.frozen`).
"""

import contextlib
import dataclasses

import keras
import numpy as np

from keras_ser.layers.standardization import set_channel_stats
from keras_ser.metrics import UnweightedAccuracy
from keras_ser.models.registry import build_model


@dataclasses.dataclass
class FoldData:
    """How a recipe gets the data of one fold.

    Attributes:
        dataset: callable `(part, training) -> tf.data.Dataset` of
            `(inputs, labels)` batches, `part` in `"train"`, `"validation"`,
            `"test"`. `training=True` shuffles (and augments).
        labels: dict `part -> int numpy array` of the labels in dataset order
            (unshuffled).
        class_names: list of str.
        channel_stats: `(mean, std)` of the training speakers' features.
        segment_dataset: optional callable `(part, training) -> dataset` of
            single segments `[B, H, W, C]`, each labelled with its
            utterance's emotion (stage 1 of the paper recipe). None: made
            from `dataset` with tf.data.
        features: optional callable `part -> numpy array` of the frozen
            encoder's pooled features, in the order of `labels[part]` (the
            `probe` and `frozen` recipes).
        speakers: optional dict `part -> numpy array` of speaker ids in
            the order of `labels[part]`.
        groups: optional dict `part -> numpy array` of the groups of the
            inner cross-validation (the `probe` recipe leaves one out at a
            time), in the order of `labels[part]`. Defaults to `speakers`;
            under leave-one-corpus-out, each record's corpus
            (`keras_ser.training.loso.inner_groups`).
        copy_features: optional callable `part -> list of numpy arrays`:
            the pooled features of each channel copy of the part's
            utterances (`TrainConfig.channel_copies`), each in the order of
            `labels[part]`; the recipes add those of `"train"` to the
            training rows (`keras_ser.training.frozen.training_rows`).
    """

    dataset: object
    labels: dict
    class_names: list
    channel_stats: tuple
    segment_dataset: object = None
    features: object = None
    speakers: dict = None
    groups: dict = None
    copy_features: object = None

    def __post_init__(self):
        if self.groups is None:
            self.groups = self.speakers

    @property
    def has_validation(self):
        return len(self.labels.get("validation", ())) > 0


@dataclasses.dataclass
class TrainResult:
    """A trained model and the record of its training."""

    model: keras.Model
    epochs_run: dict
    best_epoch: dict
    history: dict


@contextlib.contextmanager
def precision_policy(name):
    """Sets the global Keras dtype policy (e.g. `"mixed_bfloat16"`) inside the block."""
    if not name:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model_for_config(config, class_names, feature_config=None, compile=False):
    """The fresh zoo model a `TrainConfig` describes (no statistics set)."""
    return build_model(
        num_classes=len(class_names),
        class_names=list(class_names),
        feature_config=feature_config,
        compile=compile,
        **config.model_kwargs(),
    )


def build_for(config, data, feature_config=None, compile=False):
    """The fresh zoo model a `TrainConfig` describes, with the fold's statistics set (when the data has them)."""
    model = build_model_for_config(config, data.class_names, feature_config, compile=compile)
    if data.channel_stats is not None:
        set_channel_stats(model, *data.channel_stats)
    return model


def loss_and_metrics(config, num_classes):
    """Cross-entropy and WA/UA metrics matching the labels the data yields."""
    if config.label_mode == "one_hot":
        return (keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                [keras.metrics.CategoricalAccuracy(name="wa"),
                 UnweightedAccuracy(num_classes=num_classes, sparse_y_true=False, name="ua")])
    return (keras.losses.SparseCategoricalCrossentropy(),
            [keras.metrics.SparseCategoricalAccuracy(name="wa"),
             UnweightedAccuracy(num_classes=num_classes, name="ua")])


def fit_callbacks(config, data, log_dir, stage):
    """TensorBoard logs under `log_dir/stage` (when given) and early stopping on `config.monitor` (with a
    validation speaker), restoring the best weights."""
    callbacks = []
    if log_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=f"{log_dir}/{stage}", write_graph=False))
    if data.has_validation:
        monitor = config.monitor
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor,
                mode="min" if monitor == "val_loss" else "max",
                patience=config.patience,
                restore_best_weights=True,
                verbose=0,
            )
        )
    return callbacks


def summarise(history, config, data):
    """`(epochs run, best epoch)` of a `fit` history: the best by `config.monitor` with a validation speaker,
    else the last."""
    epochs_run = len(history.history.get("loss", []))
    if data.has_validation and config.monitor in history.history:
        values = history.history[config.monitor]
        best = int(np.argmin(values) if config.monitor == "val_loss" else np.argmax(values)) + 1
    else:
        best = epochs_run
    return epochs_run, best


def history_dict(history):
    """A `fit` history as plain floats, for result files."""
    return {key: [float(v) for v in values] for key, values in history.history.items()}
