"""Leave-one-speaker-out (LOSO) folds."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Fold:
    """One LOSO fold: a test speaker and the indices of each part.

    `train_indices` never contain the test speaker nor the validation
    speaker; `validation_indices` is empty when no validation speaker is held
    out.
    """

    test_speaker: str
    train_indices: np.ndarray
    test_indices: np.ndarray
    validation_speaker: str = None
    validation_indices: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))


def loso_folds(corpus, validation="none", speakers=None):
    """Leave-one-speaker-out folds of a corpus.

    For each test speaker, train on every other speaker. With
    `validation="next"`, the speaker after the test speaker (in sorted order,
    wrapping around) is held out of training for early stopping and model
    selection, so that no choice is ever made on the test speaker.

    Args:
        corpus: a `tf_pipeline.Corpus`.
        validation: `"none"` or `"next"`. Defaults to `"none"`.
        speakers: optional list of test speakers (a subset of
            `corpus.speakers`); defaults to all of them.

    Returns:
        A list of `Fold`, in the order of `speakers`.

    Example:

    >>> for fold in loso_folds(corpus, validation="next"):   # doctest: +SKIP
    ...     print(fold.test_speaker, len(fold.train_indices), len(fold.test_indices))
    """
    all_speakers = list(corpus.speakers)
    minimum = 3 if validation == "next" else 2
    if len(all_speakers) < minimum:
        raise ValueError(
            f"LOSO needs at least {minimum} speakers (validation={validation!r}). "
            f"Received a corpus with speakers: {all_speakers}"
        )
    if validation not in ("none", "next"):
        raise ValueError(f"validation must be 'none' or 'next'. Received: validation={validation!r}")
    if speakers is None:
        speakers = all_speakers
    else:
        speakers = [str(s) for s in speakers]
        if not speakers:
            raise ValueError("speakers is an empty list; give at least one test speaker or None for all")
        unknown = [s for s in speakers if s not in all_speakers]
        if unknown:
            raise ValueError(f"Unknown test speaker(s) {unknown}. The corpus has speakers: {all_speakers}")
    ids = corpus.speaker_ids
    folds = []
    for speaker in speakers:
        validation_speaker = None
        if validation == "next":
            validation_speaker = all_speakers[(all_speakers.index(speaker) + 1) % len(all_speakers)]
        test = np.flatnonzero(ids == speaker)
        held = np.flatnonzero(ids == validation_speaker) if validation_speaker else np.zeros(0, np.int64)
        train = np.flatnonzero((ids != speaker) & (ids != validation_speaker))
        folds.append(Fold(speaker, train, test, validation_speaker, held))
    return folds
