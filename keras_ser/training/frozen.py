"""Recipes for the speech-encoder entries: a head trained on features extracted once.

With the encoder frozen, the pooled features of an utterance (the
`"pooled"` layer of `encoder_stats` / `encoder_sru`) never change, so they
are computed once per corpus (`corpus_features`, cached in memory and, when
asked, in a `.npz` file) and every fold trains only the head:

- `probe` (`encoder_stats`): the softmax is a multinomial logistic
  regression (scikit-learn, L-BFGS) on the standardised pooled features;
  its inverse L2 strength `C` is chosen by leave-one-speaker-out
  cross-validation over the training speakers (the test speaker is never
  seen; under leave-one-corpus-out, by leaving one training corpus out:
  `FoldData.groups`), then the regression is refitted on all training speakers and its
  weights become the model's `standardize` and `predictions` layers.
  With `fine_tune=k` the model then trains its top `k` LSTM layers and
  head from those weights over the training utterances' frames
  (`fine_tune_after_probe`: a linear probe, then fine-tuning).
- `frozen` (either entry): the head (`standardize` -> ... -> softmax) is
  trained with Adam on the cached features; with `validation="next"`, early
  stopping and the best epoch are chosen on a held-out training speaker.

With `TrainConfig.channel_copies`, both recipes also train on the features
of channel copies of the training utterances (`training_rows`; extracted
once per copy by `corpus_features(channel=...)`), which are never scored.
"""

import functools
import hashlib
import json
import os

import numpy as np

from keras_ser.checksums import file_fingerprint
from keras_ser.training import regressions
from keras_ser.training.channel_copies import heard_through
from keras_ser.training.regressions import fit_standardized
from keras_ser.training.regressions import predict_standardized
from keras_ser.training.regressions import ua
from tf_pipeline.atomic import write_atomic

# Inverse L2 strengths the probe's inner cross-validation chooses from.
PROBE_C_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0)
# The probe's regressions run in parallel processes (one per core, at most PROBE_MAX_JOBS) when its
# features hold at least this many values (rows x columns): an EMO-DB fold of the fusion (480 x 2560)
# does, the small corpora of the tests do not (starting the processes would cost more than it saves).
PROBE_PARALLEL_MIN_VALUES = 500_000
PROBE_MAX_JOBS = 8
_FEATURES = {}


def _store_key(config, feature_config, channel=None):
    """What pooled features depend on besides the audio: the model, its backbone and weights, the front end, and
    the channel copy (`(kind, draw)` of `keras_ser.training.channel_copies`) the audio was heard through."""
    identity = {
        "model": config.model,
        "n_segments": config.segments,
        "backbone": config.backbone,
        "backbone_weights": config.backbone_weights,
        "backbone_kwargs": config.backbone_kwargs,
        "feature_config": feature_config.to_dict(),
    }
    if channel is not None:
        identity["channel_copy"] = list(channel)
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_key(path):
    """A file as the store knows it: its path and the fingerprint of its bytes (`keras_ser.checksums.file_fingerprint`:
    size and digest). A file whose bytes changed is extracted again; one copied or unpacked again with the same
    bytes (a new modification time) is not."""
    return f"{path}|{file_fingerprint(path)}"


def _stale_keys(store, files):
    """Keys of `store` holding the paths of `files` with other bytes: older versions of files that have changed
    since, never read again (dropped before the store is saved)."""
    current = set(files)
    paths = {key.rsplit("|", 2)[0] for key in files}
    return [key for key in store if key not in current and key.rsplit("|", 2)[0] in paths]


def store_path(cache_dir, config, feature_config, channel=None):
    """The `.npz` feature store of a model and front end (and channel copy) in `cache_dir`."""
    return os.path.join(cache_dir, f"encoder_features_{_store_key(config, feature_config, channel)}.npz")


def _load_store(path):
    if not path or not os.path.exists(path):
        return {}
    with np.load(path) as data:
        return dict(zip(data["files"].tolist(), data["features"]))


def _save_store(path, store):
    files = sorted(store)
    write_atomic(path, lambda stream: np.savez(stream, files=np.array(files),
                                               features=np.stack([store[f] for f in files])))


def features_function(model):
    """`(waveforms, num_samples) -> pooled features` of a model, front end and encoders compiled together.

    On the TensorFlow backend: one `tf.function` with the input signature
    `([None, None] float32, [None] int32)`, traced once for every batch size
    and length; the front end (`model.preprocessor.batch`) and
    `model.features_model()` run in the same graph. Other backends: the
    front end, then `features_model.predict_on_batch`.

    Args:
        model: a speech-encoder zoo model (`keras_ser.models.speech_encoders.EncoderTask`).

    Returns:
        callable `(waveforms, num_samples) -> float32 numpy [batch, ...]` on
        zero-padded waveforms `[batch, max_samples]` and their true lengths.

    Example:

    >>> import keras_ser
    >>> model = keras_ser.build_model("encoder_stats", num_classes=3, backbone_weights="random",
    ...                               backbone_kwargs={"units": 8, "embedding_dim": 4})
    >>> waveforms = np.random.default_rng(0).uniform(-0.1, 0.1, (2, 16000)).astype("float32")
    >>> features_function(model)(waveforms, np.array([16000, 12000], np.int32)).shape
    (2, 48)
    """
    import keras

    features_model = model.features_model()
    preprocessor = model.preprocessor
    if keras.backend.backend() != "tensorflow":
        def eager(waveforms, num_samples):
            return np.asarray(features_model.predict_on_batch(preprocessor.batch(waveforms, num_samples)), np.float32)

        return eager
    import tensorflow as tf

    def call(waveforms, num_samples):
        return tf.cast(features_model(preprocessor.batch(waveforms, num_samples), training=False), tf.float32)

    compiled = tf.function(call, autograph=False, input_signature=[tf.TensorSpec([None, None], tf.float32),
                                                                   tf.TensorSpec([None], tf.int32)])
    return lambda waveforms, num_samples: np.asarray(compiled(waveforms, num_samples))


def length_order(corpus):
    """Record indices of `corpus` from the shortest file to the longest (file size; ties in corpus order).

    Consecutive batches of this order hold utterances of similar length, so
    a padded batch is little longer than its rows.
    """
    return np.argsort([os.path.getsize(record.path) for record in corpus.records], kind="stable")


def extract_features(model, corpus, indices=None, batch_size=16, log=None, log_every=100, function=None,
                     transform=None):
    """Pooled encoder features of `corpus` records, in padded batches through `features_function`.

    The waveforms are decoded and padded per batch by tf.data
    (`tf_pipeline.waveform_dataset`, in the order given); each batch runs
    through one compiled call (front end and encoders). The encoders mask
    the padding, so a row of a batch equals the utterance alone (within
    float32 round-off).

    Args:
        model: a speech-encoder zoo model.
        corpus: a `tf_pipeline.Corpus`.
        indices: record indices, in the order to run (None: all). Pass
            `length_order(corpus)` (or a subset of it in that order) for
            batches of similar lengths.
        batch_size: int >= 1. Utterances per call. Defaults to `16`.
        log: optional callable for progress lines (files done and files/s).
        log_every: int. Files between two progress lines. Defaults to `100`.
        function: optional `features_function(model)` made once by the
            caller and passed to every call: each new one is traced again
            (a second or more on 2 cores), which a caller running a corpus
            in chunks pays per chunk otherwise. None: made here.
        transform: optional callable `waveform -> waveform` (float32 numpy,
            the same length) applied to each decoded utterance before the
            front end, e.g. a channel copy
            (`keras_ser.training.channel_copies.heard_through`). None: the
            audio as read.

    Returns:
        float32 numpy array `[len(indices), ...]` in the order of `indices`.
    """
    import time

    import tf_pipeline

    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer. Received: batch_size={batch_size!r}")
    indices = np.arange(len(corpus)) if indices is None else np.asarray(indices)
    dataset = tf_pipeline.waveform_dataset(corpus, indices, lambda waveforms, num_samples: (waveforms, num_samples),
                                           model.preprocessor.feature_config, batch_size=int(batch_size))
    extract = function or features_function(model)
    start, done, logged, parts = time.perf_counter(), 0, 0, []
    for (waveforms, num_samples), _ in dataset:
        if transform is not None:
            waveforms, num_samples = np.array(waveforms), np.asarray(num_samples)
            for row, length in enumerate(num_samples):
                waveforms[row, :length] = transform(waveforms[row, :length])
        parts.append(extract(waveforms, num_samples))
        done += len(parts[-1])
        if log and (done - logged >= log_every or done == len(indices)):
            logged = done
            rate = done / (time.perf_counter() - start)
            log(f"encoder features: {done}/{len(indices)} utterances, {rate:.1f} files/s")
    return np.concatenate(parts)


def corpus_features(corpus, config, feature_config, cache_dir=None, batch_size=16, log=None, channel=None):
    """Pooled encoder features of every utterance of `corpus`, computed once.

    The features do not depend on labels (the encoder is frozen and the
    pooling has no weights), so sharing them between folds leaks nothing.
    They are computed shortest file first, `batch_size` at a time
    (`extract_features`: front end and encoders in one compiled call per
    batch), and kept in memory per file and, with `cache_dir`, in a
    `.npz` feature store.

    Args:
        corpus: a `tf_pipeline.Corpus`.
        config: the `TrainConfig` (model, segments, backbone and weights).
        feature_config: its feature config (e.g. `MelFramesConfig`).
        cache_dir: str or None. Folder of the feature stores that survive
            the process: one `.npz` per model and feature settings, holding
            the features of every file it has met (keyed by path and the
            fingerprint of its bytes, `keras_ser.checksums.file_fingerprint`),
            so that another subset or combination of the same files, a run
            interrupted during extraction, or the corpus copied or unpacked
            again in place computes only what is missing. The rows of an
            older version of a file (other bytes) are dropped when it is
            extracted again.
        batch_size: int. Utterances per encoder batch. Defaults to `16`.
        log: optional callable for progress lines.
        channel: optional `(kind, draw)`: the features of every utterance's
            channel copy (`keras_ser.training.channel_copies.heard_through`)
            instead of the utterance's own, made in memory while extracting
            and stored apart (their own `.npz`). None: the audio as read.

    Returns:
        float32 numpy array `[utterances, ...]` in corpus order.

    Example:

    >>> corpus = tf_pipeline.corpora.emodb("/data/emodb/wav")                           # doctest: +SKIP
    >>> config = TrainConfig(model="fusion_stats", recipe="probe")                      # doctest: +SKIP
    >>> corpus_features(corpus, config, feature_config_for(config), log=print).shape   # doctest: +SKIP
    (535, 2560)
    """
    from keras_ser.training.fitting import build_model_for_config

    key = _store_key(config, feature_config, channel)
    store = _FEATURES.setdefault(key, {})
    path = store_path(cache_dir, config, feature_config, channel) if cache_dir else None
    transform = None if channel is None else functools.partial(
        heard_through, kind=channel[0], draw=channel[1], sample_rate=feature_config.sample_rate)
    files = [_file_key(record.path) for record in corpus.records]
    if path and any(f not in store for f in files):
        store.update({f: row for f, row in _load_store(path).items() if f not in store})
    missing = np.array([i for i, f in enumerate(files) if f not in store], np.int64)
    if len(missing):
        for key in _stale_keys(store, files):  # a file changed since: its old features go
            del store[key]
        model = build_model_for_config(config, list(corpus.class_names), feature_config)
        order = length_order(corpus)
        order = order[np.isin(order, missing)]
        if log and len(missing) < len(files):
            log(f"encoder features: {len(files) - len(missing)} of {len(files)} utterances found in the cache")
        if log and channel is not None:
            log(f"encoder features of channel copy {channel[0]} draw {channel[1]}")
        # In chunks, each saved at once: an interrupted extraction resumes where it stopped.
        chunk = max(int(batch_size), 256) if path else len(order)
        function = features_function(model)  # traced once for every chunk
        for begin in range(0, len(order), chunk):
            part = order[begin:begin + chunk]
            part_log = log
            if log and len(order) > chunk:
                def part_log(line, begin=begin):
                    return log(f"{line} (files {begin + 1}-{begin + len(part)} of {len(order)})")
            features = extract_features(model, corpus, part, batch_size=batch_size, log=part_log, function=function,
                                        transform=transform)
            store.update(zip((files[i] for i in part), features))
            if path:
                _save_store(path, store)
        if log:
            log(f"encoder features of {len(missing)} utterances extracted ({features.shape[1:]} each)")
    return np.stack([store[f] for f in files])


def remember_features(corpus, config, feature_config, features, channel=None):
    """Puts pooled features computed elsewhere into the in-process store `corpus_features` reads.

    For features of every record of `corpus` already in hand (a benchmark
    that timed their extraction, say): `corpus_features` with the same
    `config`, `feature_config` and `channel` then returns them without
    running the encoders. Nothing is written to a feature store on disk.

    Args:
        corpus: a `tf_pipeline.Corpus`.
        config: the `TrainConfig` the features belong to.
        feature_config: its feature config.
        features: array `[utterances, ...]` in corpus order.
        channel: optional `(kind, draw)` of a channel copy (`corpus_features`).

    Example:

    >>> remember_features(corpus, config, feature_config, features)                    # doctest: +SKIP
    >>> np.array_equal(corpus_features(corpus, config, feature_config), features)      # doctest: +SKIP
    True
    """
    if len(features) != len(corpus.records):
        raise ValueError(f"features must hold one row per record of the corpus ({len(corpus.records)}). "
                         f"Received: {len(features)} rows")
    store = _FEATURES.setdefault(_store_key(config, feature_config, channel), {})
    store.update(zip((_file_key(record.path) for record in corpus.records), np.asarray(features)))


INNER_SEARCHES = ("refit", "path")
# Inner-fold regressions already fitted (`_refit_fits`), each kept until it is used once more.
_INNER_FITS = {}


def _check_inner_search(inner_search):
    if inner_search not in INNER_SEARCHES:
        raise ValueError(f"inner_search must be one of {INNER_SEARCHES}. Received: inner_search={inner_search!r}")


def regression_weights(classifier, dim, num_classes, scaler=None):
    """`(kernel [dim, num_classes], bias)`: a fitted scikit-learn logistic regression as a softmax layer's weights.

    The columns follow the class ids the regression was fitted on
    (`classifier.classes_`); a class absent from its training rows gets bias
    -1e9 (never predicted). A regression on two classes holds one row of
    weights (the second class's log-odds against the first): the first
    class gets logit 0, so that the softmax of the two logits is the
    regression's own probability. With `scaler` (a fitted `StandardScaler`)
    its standardisation is folded in, so the weights apply to raw features.

    Args:
        classifier: a fitted `sklearn.linear_model.LogisticRegression`.
        dim: int. Feature dimension.
        num_classes: int. Columns of the kernel (every class of the task).
        scaler: optional fitted `sklearn.preprocessing.StandardScaler`.

    Example:

    >>> from sklearn.linear_model import LogisticRegression
    >>> x = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([1, 1, 3, 3])
    >>> classifier = LogisticRegression().fit(x, y)
    >>> kernel, bias = regression_weights(classifier, 1, 4)
    >>> logits = x @ kernel + bias
    >>> logits.argmax(axis=1).tolist()
    [1, 1, 3, 3]
    >>> bool(np.allclose(np.exp(logits[:, 3]) / np.exp(logits[:, [1, 3]]).sum(axis=1),
    ...                  classifier.predict_proba(x)[:, 1], atol=1e-6))
    True
    """
    coef, intercept = classifier.coef_, classifier.intercept_
    if len(classifier.classes_) == 2:
        coef = np.concatenate([np.zeros_like(coef), coef])
        intercept = np.concatenate([np.zeros_like(intercept), intercept])
    if scaler is not None:
        coef = coef / np.sqrt(scaler.var_)
        intercept = intercept - coef @ scaler.mean_
    kernel = np.zeros((dim, num_classes), np.float32)
    bias = np.full(num_classes, -1e9, np.float32)
    kernel[:, classifier.classes_] = coef.T
    bias[classifier.classes_] = intercept
    return kernel, bias


def _refit_fits(features, labels, splits, c_grid, seed, n_jobs):
    """`{(inner fold, C): (scaler, classifier)}`, each fitted from scratch on the fold's training rows.

    A fit is found again (not recomputed) when the same rows and labels come
    back with the same `C` and seed: in leave-one-speaker-out with inner
    leave-one-speaker-out, the inner fold of test speaker A that holds out
    B trains on the same rows as the inner fold of test speaker B that
    holds out A. The fits are deterministic, so the result is the same
    either way; a fit found is dropped from the store.
    """
    from joblib import Parallel
    from joblib import delayed

    keys, missing = {}, []
    for fold, (train, _) in enumerate(splits):
        digest = hashlib.sha256(np.ascontiguousarray(features[train]).tobytes())
        digest.update(np.ascontiguousarray(labels[train]).tobytes())
        for c in c_grid:
            keys[(fold, c)] = (digest.hexdigest(), repr(float(c)), seed)
            if keys[(fold, c)] not in _INNER_FITS:
                missing.append((fold, c))
    fitted = Parallel(n_jobs=n_jobs)(delayed(regressions.fit_rows)(features, labels, splits[fold][0], c, seed)
                                     for fold, c in missing)
    found = {key: _INNER_FITS.pop(keys[key]) for key in keys if key not in missing}
    for key, fit in zip(missing, fitted):
        _INNER_FITS[keys[key]] = fit
    return {**found, **dict(zip(missing, fitted))}


def probe_jobs(features, n_jobs=None):
    """Processes for a probe's regressions: `n_jobs` when given, else one per core when the features are large.

    Each regression runs single-threaded (its BLAS limited to one thread),
    so on a machine with several cores the inner folds gain from running
    side by side; the result does not depend on it.

    Example:

    >>> probe_jobs(np.zeros((100, 50)))  # small: in this process
    1
    >>> probe_jobs(np.zeros((100, 50)), n_jobs=3)
    3
    """
    if n_jobs is not None:
        return n_jobs
    if np.size(features) < PROBE_PARALLEL_MIN_VALUES:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, PROBE_MAX_JOBS))


def fit_probe(features, labels, groups, num_classes, c_grid=PROBE_C_GRID, seed=0, inner_search="refit", n_jobs=None,
              scored=None):
    """Standardisation + multinomial logistic regression, `C` by leave-one-group-out CV.

    Every inner fold (one group held out) scores every `C` by the UA on the
    held-out group; the best mean UA wins (ties: the smaller `C`, the
    stronger regulariser); the regression is then refitted from scratch on
    all rows with that `C`.

    Args:
        features: float array `[n, d]` of the training speakers.
        labels: int array `[n]`.
        groups: array `[n]` of the inner folds' groups: speaker ids, or corpus names under
            leave-one-corpus-out.
        num_classes: int.
        c_grid: inverse L2 strengths to choose from.
        seed: int.
        inner_search: how the inner folds fit their regressions.
            `"refit"` (default): standardisation and a regression from
            scratch for every inner fold and `C`; a fit already made in this
            process on the same rows, labels, `C` and seed is used again
            (leave-one-speaker-out meets each pair of speakers twice), so
            the result is the same as fitting every time. `"path"`: the
            standardisation once per inner fold, the rows in the span of
            its training rows (an exact change of coordinates when
            `n < d`), the `C` values smallest first, each L-BFGS run
            warm-started from the previous solution: several times faster,
            the same optima within L-BFGS's tolerance, but where the inner
            UA is nearly flat in `C` the stopping points differ enough to
            choose another `C`.
        n_jobs: int or None. Regressions fitted in parallel (joblib
            processes); the result does not depend on it. None: one per
            core for features of `PROBE_PARALLEL_MIN_VALUES` values or
            more, else 1 (`probe_jobs`). Defaults to `None`.
        scored: optional bool array `[n]`: the rows an inner fold scores
            when its group is held out (every row trains when its group is
            not). False for rows that train but are never scored, e.g. the
            channel copies of the training utterances
            (`keras_ser.training.channel_copies`). None: every row.

    Returns:
        dict with `mean`, `variance` (`[d]`), `kernel` (`[d, num_classes]`),
        `bias` (`[num_classes]`), `C` and `inner_ua` (mean UA of the inner
        folds for each `C`).

    Example:

    >>> rng = np.random.default_rng(0)
    >>> y = np.tile([0, 1], 30); s = np.repeat([0, 1, 2], 20)
    >>> x = rng.normal(size=(60, 8)); x[:, 0] += 2.0 * y
    >>> probe = fit_probe(x, y, s, 2, c_grid=(0.01, 1.0))
    >>> probe["kernel"].shape, probe["C"] in (0.01, 1.0)
    ((8, 2), True)
    """
    from joblib import Parallel
    from joblib import delayed
    from sklearn.model_selection import LeaveOneGroupOut

    _check_inner_search(inner_search)
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    c_grid = tuple(c_grid)
    n_jobs = probe_jobs(features, n_jobs)
    splits = list(LeaveOneGroupOut().split(features, labels, groups))
    if scored is not None:
        scored = np.asarray(scored, bool)
        if scored.shape != labels.shape:
            raise ValueError(f"scored must hold one bool per row ({labels.shape}). Received: shape {scored.shape}")
        splits = [(train, held_out[scored[held_out]]) for train, held_out in splits]
        if any(len(held_out) == 0 for _, held_out in splits):
            raise ValueError("every inner group needs scored rows; a group holds only rows with scored=False")
    if inner_search == "refit":
        fits = _refit_fits(features, labels, splits, c_grid, seed, n_jobs)
        scores = np.array([[ua(labels[held_out], predict_standardized(fits[(fold, c)], features[held_out]))
                            for c in c_grid]
                           for fold, (_, held_out) in enumerate(splits)])
    else:
        scores = np.array(Parallel(n_jobs=n_jobs)(
            delayed(regressions.path_scores)(features[train], labels[train], features[held_out], labels[held_out],
                                             c_grid, seed)
            for train, held_out in splits))
    inner_ua = {c: float(np.mean(scores[:, k])) for k, c in enumerate(c_grid)}  # scores: [folds, len(c_grid)]
    best_c = max(c_grid, key=lambda c: (inner_ua[c], -c))  # ties: the stronger regulariser
    scaler, classifier = fit_standardized(features, labels, best_c, seed)
    kernel, bias = regression_weights(classifier, features.shape[1], num_classes)
    return {"mean": scaler.mean_, "variance": scaler.var_, "kernel": kernel, "bias": bias, "C": best_c,
            "inner_ua": {str(c): round(v, 4) for c, v in inner_ua.items()}}


def probe_logits(probe, features, epsilon=1e-12):
    """The logits a `fit_probe` result gives `features` `[n, d]`: standardised with its mean and variance (each
    variance at least `epsilon`), then its kernel and bias (what the model's `standardize` and `predictions`
    layers compute, in float64).

    Example:

    >>> rng = np.random.default_rng(0)
    >>> y = np.tile([0, 1], 30); s = np.repeat([0, 1, 2], 20)
    >>> x = rng.normal(size=(60, 8)); x[:, 0] += 2.0 * y
    >>> probe = fit_probe(x, y, s, 2, c_grid=(1.0,))
    >>> float(np.mean(probe_logits(probe, x).argmax(axis=1) == y)) > 0.8
    True
    """
    z = (features - probe["mean"]) / np.sqrt(np.maximum(probe["variance"], epsilon))
    return z @ probe["kernel"] + probe["bias"]


def fit_speaker_subspace(features, labels, speakers, rank):
    """The directions in which the speakers' mean features differ (nuisance attribute projection).

    Each speaker's mean is the average of its class means (so that speakers
    with different emotion mixes are compared on equal terms); the
    principal directions of those means around their average, in the
    standardised feature space, span the subspace.

    Args:
        features: float array `[n, d]`, already standardised.
        labels: int array `[n]`.
        speakers: array `[n]` of speaker ids (the training speakers only).
        rank: int >= 0. Directions wanted; at most one fewer than the
            number of speakers are found, the other columns stay zero.

    Returns:
        float32 `[d, rank]` with orthonormal (or zero) columns.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(40, 5)); s = np.repeat([0, 1, 2, 3], 10); y = np.tile([0, 1], 20)
    >>> x[:, 0] += 5 * s                       # speakers differ along feature 0
    >>> basis = fit_speaker_subspace(x, y, s, 1)
    >>> int(np.argmax(np.abs(basis[:, 0])))
    0
    """
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    speakers = np.asarray(speakers)
    means = []
    for speaker in np.unique(speakers):
        own = speakers == speaker
        means.append(np.mean([features[own & (labels == c)].mean(axis=0) for c in np.unique(labels[own])], axis=0))
    means = np.asarray(means)
    means -= means.mean(axis=0)
    basis = np.zeros((features.shape[1], rank), np.float32)
    if rank:
        _, singular, directions = np.linalg.svd(means, full_matrices=False)
        found = min(rank, int(np.sum(singular > 1e-8 * max(singular.max(), 1e-30))))
        basis[:, :found] = directions[:found].T
    return basis


def _standardized(train, other, epsilon=1e-12):
    mean, variance = train.mean(axis=0), train.var(axis=0)
    scale = np.sqrt(variance + epsilon)
    return (train - mean) / scale, [(x - mean) / scale for x in other], mean, variance


def _project(x, basis):
    return x - (x @ basis) @ basis.T


def subspace_ranks(largest):
    """The ranks the probe chooses from for `speaker_subspace=largest`: 0, 2, 4, ... up to it."""
    return tuple(sorted({0, *range(2, largest + 1, 2), largest})) if largest else (0,)


def fit_probe_projected(features, labels, groups, num_classes, ranks, c_grid=PROBE_C_GRID, seed=0, speakers=None):
    """`fit_probe` behind a speaker-subspace projection; rank and `C` chosen together.

    For every inner fold (one group left out: a training speaker, or a
    training corpus under leave-one-corpus-out) the standardisation and the
    subspace are fitted on the inner training rows only, then every
    `(rank, C)` pair is scored on the held-out group; the best mean UA wins
    (ties: the smaller rank, then the stronger regulariser). Refitted on all
    training rows, the model is `standardize` (`mean`, `variance`) ->
    projection (`basis`, `[d, max(ranks)]`, zero columns past the chosen
    rank) -> softmax (`kernel`, `bias`, the regression's own scaler folded
    in).

    Args:
        features, labels, groups, num_classes, c_grid, seed: as `fit_probe`.
        ranks: the subspace ranks to choose from (`subspace_ranks`).
        speakers: array `[n]` of the speaker of each row, whose class-balanced
            means span the subspace (`fit_speaker_subspace`). Defaults to
            `groups`; give it when the groups are not speakers (corpora
            under leave-one-corpus-out), so that the subspace is still the
            speakers' and not the corpora's.

    Returns:
        dict with `mean`, `variance`, `basis`, `rank`, `kernel`, `bias`,
        `C` and `inner_ua` (keys `"<rank>/<C>"`).
    """
    from sklearn.model_selection import LeaveOneGroupOut

    features = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    speakers = groups if speakers is None else np.asarray(speakers)
    if speakers.shape != groups.shape:
        raise ValueError(f"speakers must give one speaker per row ({groups.shape[0]} rows). "
                         f"Received: speakers of shape {speakers.shape}")
    largest = max(ranks)
    scores = {(rank, c): [] for rank in ranks for c in c_grid}
    for train, held_out in LeaveOneGroupOut().split(features, labels, groups):
        x_train, (x_held,), _, _ = _standardized(features[train], [features[held_out]])
        full = fit_speaker_subspace(x_train, labels[train], speakers[train], largest)
        for rank in ranks:
            basis = full[:, :rank]
            p_train, p_held = _project(x_train, basis), _project(x_held, basis)
            for c in c_grid:
                fitted = fit_standardized(p_train, labels[train], c, seed)
                scores[(rank, c)].append(ua(labels[held_out], predict_standardized(fitted, p_held)))
    inner_ua = {key: float(np.mean(value)) for key, value in scores.items()}
    rank, best_c = max(inner_ua, key=lambda key: (inner_ua[key], -key[0], -key[1]))
    x_all, _, mean, variance = _standardized(features, [])
    basis = fit_speaker_subspace(x_all, labels, speakers, largest)
    basis[:, rank:] = 0.0
    projected = _project(x_all, basis)
    scaler, classifier = fit_standardized(projected, labels, best_c, seed)
    kernel, bias = regression_weights(classifier, features.shape[1], num_classes, scaler)
    return {"mean": mean, "variance": variance, "basis": basis, "rank": int(rank), "kernel": kernel, "bias": bias,
            "C": best_c, "inner_ua": {f"{r}/{c}": round(v, 4) for (r, c), v in inner_ua.items()}}


def training_rows(data):
    """`(features, labels, groups, scored)`: the rows a head on frozen features trains on.

    The training part's utterances, then, with channel copies
    (`data.copy_features`), the rows of each copy with its utterance's label
    and group; `scored` is True for the utterances' own rows and False for
    the copies' (which train and are never scored).
    """
    features, labels = data.features("train"), data.labels["train"]
    groups = None if data.groups is None else data.groups["train"]  # the frozen recipe needs none
    copies = data.copy_features("train") if data.copy_features is not None else []
    times = 1 + len(copies)
    scored = np.arange(len(labels) * times) < len(labels)
    if not copies:
        return features, labels, groups, scored
    return (np.concatenate([features, *copies]), np.tile(labels, times),
            None if groups is None else np.tile(groups, times), scored)


def set_probe_weights(model, probe):
    """Writes a `fit_probe` result into a model's `standardize` and `predictions` layers."""
    standardize = model.get_layer("standardize")
    standardize.mean.assign(np.asarray(probe["mean"], np.float32))
    standardize.variance.assign(np.asarray(probe["variance"], np.float32))
    predictions = model.get_layer("predictions")
    predictions.kernel.assign(probe["kernel"])
    predictions.bias.assign(probe["bias"])
    if "basis" in probe:
        model.get_layer("speaker_projection").basis.assign(np.asarray(probe["basis"], np.float32))


def train_probe(config, data, feature_config=None, log_dir=None, verbose=1):
    """The `probe` recipe: logistic regression on frozen pooled features (see module docstring); with
    `config.fine_tune`, followed by `fine_tune_after_probe`."""
    from keras_ser.training.fitting import TrainResult
    from keras_ser.training.fitting import build_for

    model = build_for(config, data, feature_config)
    if config.speaker_subspace:
        if config.speaker_norm:
            raise ValueError("speaker_subspace and speaker_norm are two answers to the same problem; choose one")
        probe = fit_probe_projected(data.features("train"), data.labels["train"], data.groups["train"],
                                    len(data.class_names), subspace_ranks(config.speaker_subspace), seed=config.seed,
                                    speakers=None if data.speakers is None else data.speakers["train"])
    else:
        features, labels, groups, scored = training_rows(data)
        probe = fit_probe(features, labels, groups, len(data.class_names), seed=config.seed, scored=scored)
    if config.speaker_norm:
        # Features standardised per speaker: the probe's scaler is folded into
        # `predictions`; `standardize` holds the fold's test speaker (adapted,
        # `make_encoder_fold_data`) or, without one, the adaptable state.
        from keras_ser.adaptation import set_speaker_normalized_probe

        stats = data.channel_stats
        set_speaker_normalized_probe(model, probe, data.speaker_prior_variance,
                                     mean=None if stats is None else stats[0],
                                     variance=None if stats is None else np.square(stats[1]))
    else:
        set_probe_weights(model, probe)
    chosen = {"C": probe["C"], **({"rank": probe["rank"]} if "rank" in probe else {})}
    held_out = sorted({str(group) for group in data.groups["train"]})
    if verbose:
        rank = f", speaker subspace rank {probe['rank']}" if "rank" in probe else ""
        print(f"probe: C={probe['C']}{rank} chosen by leaving out each of {held_out} in turn "
              f"(inner UA {probe['inner_ua']})")
    epochs_run, history = {"probe": 1}, {"probe": {**chosen, "inner_ua": probe["inner_ua"], "inner_groups": held_out}}
    if config.fine_tune:
        epochs_run["fine_tune"], history["fine_tune"] = fine_tune_after_probe(model, config, data, log_dir, verbose)
    return TrainResult(model, epochs_run, dict(epochs_run), history)


def fine_tune_after_probe(model, config, data, log_dir=None, verbose=1):
    """Trains the model's trainable layers (its top `config.fine_tune` LSTM layers and the head) from the probe.

    The second stage of a linear probe followed by fine-tuning: the head
    starts from the regression's weights (`set_probe_weights`), the
    standardisation keeps the training speakers' statistics, and the whole
    model runs over the training utterances' frames (`data.dataset`,
    shuffled) with Adam at `config.learning_rate` for `config.epochs`
    epochs; the weights after the last epoch are kept (no validation
    speaker: the probe recipe has none).

    Returns:
        `(epochs run, history dict)`.
    """
    import keras

    from keras_ser.training.fitting import fit_callbacks
    from keras_ser.training.fitting import history_dict
    from keras_ser.training.fitting import loss_and_metrics

    loss, metrics = loss_and_metrics(config, len(data.class_names))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate), loss=loss, metrics=metrics,
                  jit_compile=config.jit_compile)
    history = model.fit(data.dataset("train", training=True), epochs=config.epochs, shuffle=False,
                        callbacks=fit_callbacks(config, data, log_dir, "fine_tune"), verbose=verbose)
    return len(history.history.get("loss", [])), history_dict(history)


def train_frozen(config, data, feature_config=None, log_dir=None, verbose=1):
    """The `frozen` recipe: the head alone, fitted with Adam on cached pooled features."""
    import keras

    from keras_ser.training.fitting import TrainResult
    from keras_ser.training.fitting import build_for
    from keras_ser.training.fitting import fit_callbacks
    from keras_ser.training.fitting import history_dict
    from keras_ser.training.fitting import loss_and_metrics
    from keras_ser.training.fitting import summarise

    model = build_for(config, data, feature_config)
    train_x, labels, _, _ = training_rows(data)
    axes = tuple(range(train_x.ndim - 1))
    # With speaker_norm the features are standardised per speaker already: the head trains behind an identity.
    mean, variance = train_x.mean(axis=axes), train_x.var(axis=axes)
    if config.speaker_norm:
        mean, variance = np.zeros_like(mean), np.ones_like(variance)
    model.get_layer("standardize").mean.assign(mean.astype(np.float32))
    model.get_layer("standardize").variance.assign(variance.astype(np.float32))
    head = model.head_model()
    loss, metrics = loss_and_metrics(config, len(data.class_names))
    head.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate), loss=loss, metrics=metrics,
                 jit_compile=config.jit_compile)
    if config.label_mode == "one_hot":
        labels = keras.utils.to_categorical(labels, len(data.class_names))
    validation = None
    if data.has_validation:
        val_labels = data.labels["validation"]
        if config.label_mode == "one_hot":
            val_labels = keras.utils.to_categorical(val_labels, len(data.class_names))
        validation = (data.features("validation"), val_labels)
    history = head.fit(train_x, labels, validation_data=validation, epochs=config.epochs,
                       batch_size=config.batch_size, shuffle=True,
                       callbacks=fit_callbacks(config, data, log_dir, "frozen"), verbose=verbose)
    epochs_run, best = summarise(history, config, data)
    if config.speaker_norm:  # the test speaker's statistics (adapted), or the adaptable state without one
        standardize = model.get_layer("standardize")
        if data.channel_stats is not None:
            standardize.mean.assign(np.asarray(data.channel_stats[0], np.float32))
            standardize.variance.assign(np.square(np.asarray(data.channel_stats[1], np.float32)))
        else:
            standardize.mean.assign(np.zeros(standardize.mean.shape, np.float32))
            standardize.variance.assign(np.asarray(data.speaker_prior_variance, np.float32))
    return TrainResult(model, {"frozen": epochs_run}, {"frozen": best}, {"frozen": history_dict(history)})
