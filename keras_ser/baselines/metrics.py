"""WA and UA, the two accuracies of speech emotion recognition, in numpy.

WA (weighted accuracy) is the overall accuracy; UA (unweighted accuracy) the
recall of each class averaged over the classes, so that rare emotions count
as much as frequent ones. Same definitions as `keras_ser.metrics` (which
needs Keras) and `sklearn.metrics.balanced_accuracy_score`.
"""

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes):
    """Counts `[num_classes, num_classes]`: rows the true class, columns the predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return matrix


def scores_from_confusion(matrix):
    """WA, UA and per-class recall of a confusion matrix (rows true, columns predicted).

    WA is the overall accuracy; UA the mean recall over the classes that occur
    in the true labels (a class absent from them has no recall and is left out,
    as `sklearn.metrics.balanced_accuracy_score` and
    `keras_ser.metrics.UnweightedAccuracy` do).

    Returns:
        `(wa, ua, recalls)`, recalls a list with `None` for absent classes.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    support = matrix.sum(axis=1)
    present = support > 0
    if not present.any():
        raise ValueError("the confusion matrix is empty: no true labels")
    recalls = np.zeros(len(support))
    recalls[present] = np.diag(matrix)[present] / support[present]
    wa = float(np.trace(matrix) / support.sum())
    ua = float(recalls[present].mean())
    return wa, ua, [float(r) if p else None for r, p in zip(recalls, present)]


def unweighted_accuracy(y_true, y_pred):
    """UA: recall per class averaged over the classes present in `y_true`."""
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    num_classes = int(max(y_true.max(), y_pred.max())) + 1
    return scores_from_confusion(confusion_matrix(y_true, y_pred, num_classes))[1]
