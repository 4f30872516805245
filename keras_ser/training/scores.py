"""WA, UA and confusion matrices from labels and predictions (numpy)."""

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
