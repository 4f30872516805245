"""Leave-one-speaker-out (LOSO) and leave-one-corpus-out (LOCO) folds."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Fold:
    """One fold: what is held out for testing and the indices of each part.

    Under `protocol="loso"` `test_speaker` is the test speaker; under
    `protocol="loco"` it is the test corpus (a name of `Corpus.corpora`),
    whose every file is tested, so a fold file `fold_<test_speaker>.json` is
    named after the corpus. `train_indices` never contain what is tested
    nor the validation speaker; `validation_indices` is empty when no
    validation speaker is held out.
    """

    test_speaker: str
    train_indices: np.ndarray
    test_indices: np.ndarray
    validation_speaker: str = None
    validation_indices: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    protocol: str = "loso"


def _test_groups(requested, available, argument, what, available_are):
    """The test groups asked for (all of `available` for None), each one known; a ValueError names the others."""
    if requested is None:
        return list(available)
    requested = [str(name) for name in requested]
    if not requested:
        raise ValueError(f"{argument} is an empty list; give at least one {what} or None for all")
    unknown = [name for name in requested if name not in available]
    if unknown:
        plural = "es" if what.endswith("corpus") else "s"
        raise ValueError(f"Unknown {what}({plural}) {unknown}. {available_are}: {list(available)}")
    return requested


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
    speakers = _test_groups(speakers, all_speakers, "speakers", "test speaker", "The corpus has speakers")
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


def loco_folds(corpus, corpora=None, validation="none"):
    """Leave-one-corpus-out folds of a combined corpus (`tf_pipeline.corpora.combine`).

    For each test corpus, train on every speaker of the other corpora and
    test on every file of the test corpus. `Fold.test_speaker` holds the
    test corpus's name and `Fold.protocol` is `"loco"`.

    Args:
        corpus: a `tf_pipeline.Corpus` combined from at least 2 corpora.
        corpora: optional list of test corpora (a subset of
            `corpus.corpora`); defaults to all of them.
        validation: only `"none"`: no validation speaker is held out.

    Returns:
        A list of `Fold`, in the order of `corpora`.

    Raises:
        ValueError: a corpus that is not combined from 2 or more corpora,
            an unknown test corpus, or `validation` other than `"none"`.

    Example:

    >>> both = combine([emodb("/data/emodb/wav"), ravdess("/data/ravdess")])   # doctest: +SKIP
    >>> [(fold.test_speaker, len(fold.test_indices)) for fold in loco_folds(both)]   # doctest: +SKIP
    [('emodb', 535), ('ravdess', 1440)]
    """
    if validation != "none":
        raise ValueError(f"Leave-one-corpus-out holds out no validation speaker: validation must be 'none'. "
                         f"Received: validation={validation!r}")
    all_corpora = list(corpus.corpora)
    if len(all_corpora) < 2:
        raise ValueError(f"Leave-one-corpus-out needs a corpus combined from at least 2 corpora "
                         f"(tf_pipeline.corpora.combine). Received {corpus.name!r}, combined from {all_corpora}")
    corpora = _test_groups(corpora, all_corpora, "corpora", "test corpus", "The corpus is combined from")
    ids = corpus.corpus_ids
    return [Fold(name, np.flatnonzero(ids != name), np.flatnonzero(ids == name), protocol="loco") for name in corpora]
