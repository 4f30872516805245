"""WA, UA and confusion matrices from labels and predictions (numpy): the one implementation.

WA (weighted accuracy) is the overall accuracy; UA (unweighted accuracy) the
recall of each class averaged over the classes present in the true labels,
so that rare emotions count as much as frequent ones. Same definitions as
`keras_ser.metrics.UnweightedAccuracy` (the Keras metric) and
`sklearn.metrics.balanced_accuracy_score`. The LOSO runner and the openSMILE
baselines both score with these functions.
"""

import numpy as np


def confusion_matrix(labels, predictions, num_classes):
    """`[num_classes, num_classes]` counts; rows are true classes, columns predicted."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def weighted_accuracy(labels, predictions):
    """WA: the share of utterances classified correctly (overall accuracy)."""
    labels = np.asarray(labels)
    return float(np.mean(labels == np.asarray(predictions))) if labels.size else float("nan")


def unweighted_accuracy(labels, predictions, num_classes=None):
    """UA: mean per-class recall over the classes present in `labels`.

    Equals `sklearn.metrics.balanced_accuracy_score(labels, predictions)`.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if not labels.size:
        return float("nan")
    num_classes = num_classes or int(max(labels.max(), np.max(predictions)) + 1)
    matrix = confusion_matrix(labels, predictions, num_classes)
    support = matrix.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(matrix)[present] / support[present]))


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
