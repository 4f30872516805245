"""Scoring a trained model on another corpus, over the emotions both share.

A model trained on one corpus (its class names in the shared vocabulary of
`tf_pipeline.emotion_vocabulary`, e.g. EMO-DB's seven) meets a corpus with
other classes (RAVDESS's eight). `shared_classes` are the emotions of both;
`score_on_corpus` keeps the files of those classes and takes, for each file,
the arg-max of the model's probabilities among them, so that the model is
neither rewarded nor punished for classes the other corpus does not have.
"""

import numpy as np

from keras_ser.training.scores import confusion_matrix


def in_shared_names(corpus):
    """`corpus` with its classes under the shared emotion names (`tf_pipeline.emotion_vocabulary`).

    A corpus with an emotion map (EMO-DB, CASIA, RAVDESS, EMOVO, synthetic)
    goes through it (`tf_pipeline.corpora.to_shared_vocabulary`). Corpora
    combined by `combine` already use the shared names, and so may a corpus
    of your own (a folder or a CSV whose labels are "anger", "sadness",
    ...): those are taken as they are.

    Raises:
        ValueError: a corpus without a map has a class that is not a shared
            name (listed, with the shared names).

    Example:

    >>> import dataclasses, tempfile, tf_pipeline
    >>> corpus = tf_pipeline.corpora.synthetic(tempfile.mkdtemp(), n_speakers=2, per_class=1, emotions="WT")
    >>> in_shared_names(dataclasses.replace(corpus, name="mine")).class_names
    ('anger', 'sadness')
    """
    from tf_pipeline.corpora import to_shared_vocabulary
    from tf_pipeline.emotion_vocabulary import EMOTION_MAPS
    from tf_pipeline.emotion_vocabulary import SHARED_EMOTIONS

    if corpus.name in EMOTION_MAPS and not corpus.corpora:
        return to_shared_vocabulary(corpus)
    other = [name for name in corpus.class_names if name not in SHARED_EMOTIONS]
    if other:
        raise ValueError(f"{corpus.name}: class(es) {other} are not shared emotion names and no emotion map of "
                         f"this corpus says which they are; name the classes from {list(SHARED_EMOTIONS)} (or map "
                         "them with tf_pipeline.corpora.to_shared_vocabulary(corpus, emotion_map))")
    return to_shared_vocabulary(corpus, {name: name for name in corpus.class_names})


def shared_classes(model_classes, corpus, classes=None):
    """The emotions of both the model and `corpus` (shared names), in the model's order.

    Args:
        model_classes: the model's class names (shared vocabulary).
        corpus: a `tf_pipeline.Corpus` (native or shared names).
        classes: optional list of shared names to keep (a subset of both).

    Raises:
        ValueError: `classes` names an emotion one of the two lacks, or the
            two share fewer than two emotions.

    Example:

    >>> import tempfile, tf_pipeline
    >>> corpus = tf_pipeline.corpora.synthetic(tempfile.mkdtemp(), n_speakers=2, per_class=1, emotions="WTFN")
    >>> shared_classes(["anger", "calm", "sadness", "neutral"], corpus)
    ['anger', 'sadness', 'neutral']
    """
    names = list(in_shared_names(corpus).class_names)
    both = [name for name in model_classes if name in names]
    if classes is not None:
        missing = [name for name in classes if name not in both]
        if missing:
            raise ValueError(f"classes {missing} are not emotions of both the model ({list(model_classes)}) and "
                             f"{corpus.name} ({names}). Received: classes={list(classes)}")
        both = [name for name in model_classes if name in classes]
    if len(both) < 2:
        raise ValueError(f"The model ({list(model_classes)}) and {corpus.name} ({names}) share fewer than two "
                         f"emotions: {both}")
    return both


def score_probabilities(probabilities, model_classes, corpus, classes=None):
    """WA, UA and per-class recall of a model's probabilities for every file of `corpus`, over the shared emotions.

    Args:
        probabilities: float array `[len(corpus), len(model_classes)]`.
        model_classes: the model's class names (shared vocabulary).
        corpus: the `tf_pipeline.Corpus` the rows belong to (its order).
        classes: optional subset of the shared emotions to score.

    Returns:
        dict: `corpus`, `classes`, `n` (files scored), `left_out` (files of
        other classes), `wa`, `ua` (percent), `recall` (percent per class)
        and `confusion` (counts, rows true and columns predicted, over
        `classes`).

    Example:

    >>> import tempfile, tf_pipeline
    >>> corpus = tf_pipeline.corpora.synthetic(tempfile.mkdtemp(), n_speakers=2, per_class=1, emotions="WT")
    >>> probabilities = np.eye(2)[corpus.labels]     # always right
    >>> scores = score_probabilities(probabilities, ["anger", "sadness"], corpus)
    >>> scores["ua"], scores["confusion"]
    (100.0, [[2, 0], [0, 2]])
    """
    probabilities = np.asarray(probabilities)
    if probabilities.shape != (len(corpus), len(model_classes)):
        raise ValueError(f"probabilities must have shape [{len(corpus)}, {len(model_classes)}] (files of "
                         f"{corpus.name}, model classes). Received shape: {probabilities.shape}")
    both = shared_classes(model_classes, corpus, classes)
    shared = in_shared_names(corpus)
    truth = np.array([shared.class_names[record.label] for record in shared.records])
    keep = np.isin(truth, both)
    columns = [list(model_classes).index(name) for name in both]
    predicted = np.array(both)[np.argmax(probabilities[keep][:, columns], axis=1)]
    truth = truth[keep]
    recall = {name: round(100 * float(np.mean(predicted[truth == name] == name)), 2)
              for name in both if np.any(truth == name)}
    confusion = confusion_matrix([both.index(name) for name in truth], [both.index(name) for name in predicted],
                                 len(both))
    return {"corpus": corpus.name, "classes": both, "n": int(keep.sum()), "left_out": int((~keep).sum()),
            "wa": round(100 * float(np.mean(predicted == truth)), 2),
            "ua": round(float(np.mean(list(recall.values()))), 2), "recall": recall, "confusion": confusion.tolist()}
