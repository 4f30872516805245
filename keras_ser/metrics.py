"""Metrics of speech emotion recognition: unweighted accuracy (mean per-class recall).

SER papers report two accuracies: WA, the weighted (overall) accuracy, which
is `keras.metrics.SparseCategoricalAccuracy`, and UA, the unweighted accuracy:
the recall of each emotion averaged over the emotions, so that rare classes
count as much as frequent ones. UA must be computed over the whole evaluation
set (a mean of per-batch UAs is not the UA of the set), which is why
`UnweightedAccuracy` accumulates a confusion matrix across batches.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_ser")
class UnweightedAccuracy(keras.metrics.Metric):
    """Unweighted accuracy (UA): recall of each class, averaged over classes.

    Equal to `sklearn.metrics.balanced_accuracy_score` on all samples seen
    since the last `reset_state()` (in `fit` and `evaluate`: the epoch).
    Counts are accumulated in a `[num_classes, num_classes]` confusion-matrix
    variable (rows: true class, columns: predicted class), so the result is
    an epoch-level figure, not a mean of batch figures. Classes absent from
    the true labels seen so far are left out of the mean, as in sklearn.
    Written with `keras.ops`, so it runs on every backend and under `jit`.

    Args:
        num_classes: int. Number of classes (at least 2).
        sparse_y_true: bool. `y_true` holds integer class ids (`[batch]` or
            `[batch, 1]`); set `False` for one-hot labels. Defaults to `True`.
        name: str. Defaults to `"ua"`.
        dtype: dtype of the result. Defaults to `"float32"`.

    Example:

    >>> import numpy as np
    >>> metric = UnweightedAccuracy(num_classes=3)
    >>> y_true = np.array([0, 0, 0, 1, 2])
    >>> y_pred = np.eye(3)[[0, 0, 1, 1, 2]]          # one of three class-0 wrong
    >>> metric.update_state(y_true, y_pred)
    >>> round(float(metric.result()), 4)             # (2/3 + 1 + 1) / 3
    0.8889

    In `compile` (what `keras_ser.build_model` does):

    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
    ...               metrics=[keras.metrics.SparseCategoricalAccuracy(name="wa"),
    ...                        UnweightedAccuracy(num_classes=7)])  # doctest: +SKIP
    """

    def __init__(self, num_classes, sparse_y_true=True, name="ua", dtype="float32"):
        super().__init__(name=name, dtype=dtype)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                f"num_classes must be an integer of at least 2. Received: num_classes={num_classes!r}"
            )
        self.num_classes = num_classes
        self.sparse_y_true = bool(sparse_y_true)
        self.confusion_matrix = self.add_variable(
            shape=(num_classes, num_classes), initializer="zeros", dtype="float32",
            name="confusion_matrix",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds a batch: `y_true` class ids (or one-hot), `y_pred` scores `[batch, classes]`."""
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.convert_to_tensor(y_true)
        if self.sparse_y_true:
            true_ids = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        else:
            true_ids = ops.argmax(ops.reshape(y_true, (-1, self.num_classes)), axis=-1)
        pred_ids = ops.argmax(ops.reshape(y_pred, (-1, self.num_classes)), axis=-1)
        true_one_hot = ops.one_hot(true_ids, self.num_classes, dtype="float32")
        pred_one_hot = ops.one_hot(pred_ids, self.num_classes, dtype="float32")
        if sample_weight is not None:
            weights = ops.reshape(ops.cast(sample_weight, "float32"), (-1, 1))
            true_one_hot = true_one_hot * weights
        self.confusion_matrix.assign_add(ops.matmul(ops.transpose(true_one_hot), pred_one_hot))

    def result(self):
        """Mean recall over the classes that occur in the true labels (0 before any data)."""
        matrix = ops.convert_to_tensor(self.confusion_matrix)
        support = ops.sum(matrix, axis=1)
        present = ops.cast(support > 0, "float32")
        recall = ops.diagonal(matrix) / ops.maximum(support, 1.0)
        mean = ops.sum(recall * present) / ops.maximum(ops.sum(present), 1.0)
        return ops.cast(mean, self.dtype)

    def reset_state(self):
        self.confusion_matrix.assign(ops.zeros((self.num_classes, self.num_classes), "float32"))

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "sparse_y_true": self.sparse_y_true,
            "name": self.name,
            "dtype": self.dtype,
        }
