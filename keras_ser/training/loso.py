"""The leave-one-speaker-out runner: resumable, one result file per fold.

For each test speaker: a fresh model, feature statistics from the training
speakers only, training (early stopping on a held-out training speaker when
`validation="next"`), evaluation on the test speaker. Each fold's result is
written atomically (temporary file + rename) as `fold_<speaker>.json`; a
second invocation with the same run directory skips the folds already there,
so an interrupted run loses at most the fold in progress.

The same runner evaluates leave-one-corpus-out (`protocol="loco"`, a corpus
combined by `tf_pipeline.corpora.combine`): each fold tests every file of
one corpus after training on the others (`fold_<corpus>.json`), and the
probe's inner cross-validation leaves one training corpus out.

`run_folds` is that loop on its own, for any system that can fit on a fold's
training speakers and predict its test speaker: `run_loso` drives it with the
Keras recipes, `keras_ser.baselines.run_loso` with the openSMILE + SVM
baselines, so every system writes the same run folder:

- `run.json`: what the run is (`config`, `corpus`, `class_names`,
  `feature_config`, `command`, `speakers`: every speaker of the corpus, or
  every corpus under leave-one-corpus-out, `uses_test_speaker_audio`,
  `evaluation`: `"loso"` or `"loco"`, `corpora`: the corpora read,
  `left_out`: files per class left out by `select_classes`); a system whose
  `config` the report cannot put in words adds `label` and `protocol` (a
  sentence).
- `fold_<speaker>.json`: `test_speaker` (the test corpus under
  leave-one-corpus-out), `validation_speaker`, `n_train`,
  `n_validation`, `n_test`, `wa`, `ua`, `confusion`, `class_names`,
  `predictions` (`path`, `label`, `predicted`, `probabilities`),
  `epochs_run`, `best_epoch`, `history`, `channel_stats`, `wall_time_s`,
  `config`, `feature_config`, `corpus`, `evaluation`, `train_corpora`,
  `versions`.
- `results.json`, `results.md`, `confusion.png`: `keras_ser.training.report`.
"""

import dataclasses
import functools
import json
import os
import platform
import sys
import time

import numpy as np

from keras_ser.adaptation import feature_moments
from keras_ser.training import report
from keras_ser.training import scores
from keras_ser.training.channel_copies import copy_keys
from keras_ser.training.config import ENCODER_RECIPES
from keras_ser.training.config import SPEAKER_GROUPS
from keras_ser.training.config import TrainConfig
from tf_pipeline.atomic import write_json_atomic

RUN_FILE = "run.json"
PROTOCOLS = ("loso", "loco")
# Identity entries a run folder written before they existed holds implicitly.
_IDENTITY_DEFAULTS = {"evaluation": "loso"}


def fold_path(run_dir, speaker):
    return os.path.join(run_dir, f"fold_{speaker}.json")


def fold_scores(labels, predicted, num_classes):
    """`wa`, `ua` and `confusion` of one fold's test predictions, as every fold file holds them."""
    return {
        "wa": scores.weighted_accuracy(labels, predicted),
        "ua": scores.unweighted_accuracy(labels, predicted, num_classes),
        "confusion": scores.confusion_matrix(labels, predicted, num_classes).tolist(),
    }


def versions():
    """Library versions and the machine, for result files."""
    import keras

    info = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["gpus"] = [device.name for device in tf.config.list_physical_devices("GPU")]
    except ImportError:
        pass
    if info["keras_backend"] == "jax":
        import jax

        info["jax"] = jax.__version__
        info.setdefault("gpus", [device.device_kind for device in jax.devices() if device.platform == "gpu"])
    return info


def make_encoder_fold_data(corpus, fold, config, feature_config, cache_dir=None, log=None):
    """The `FoldData` of one fold for the speech-encoder entries.

    `dataset(part)` yields padded Mel power frames (the model's preprocessor);
    `features(part)` the frozen encoder's pooled features, computed once for
    the whole corpus (`keras_ser.training.frozen.corpus_features`); the
    recipes standardise them with training-speaker statistics only.

    With `config.speaker_norm` (uses the test speaker's unlabelled audio),
    `features(part)` are standardised per speaker with that speaker's own
    mean and variance over all its utterances (the test speaker's from its
    test audio); `test_speaker_stats` maps each test speaker to its (mean,
    std) and `channel_stats` are the first one's (the fold's model is
    adapted to it, as `keras_ser.adapt` would; with several test speakers,
    leave-one-corpus-out, `fold_test_probabilities` adapts the head to each
    in turn); `speaker_prior_variance` is the mean of the training
    speakers' variances (what an adaptable model stores,
    `keras_ser.adaptation`).

    `pooled_features(part)` are the encoder's pooled features as they are,
    what the model's head takes (`fold_test_probabilities`).

    With `config.channel_copies`, `copy_features(part)` are the features of
    each channel copy of the part's utterances (made once per corpus and
    copy, cached like the utterances' own: `corpus_features(channel=...)`);
    with `speaker_norm` too, each speaker's copies of one kind and draw are
    standardised with their own statistics (the speaker adapted to in that
    channel).
    """
    from keras_ser.training import frozen
    from keras_ser.training.fitting import FoldData

    parts = fold_parts(fold)
    speaker_ids = np.array([record.speaker for record in corpus.records])
    groups = inner_groups(corpus, fold, config.inner_folds)

    preprocessor = config.preprocessor(feature_config)

    def dataset(part, training):
        return preprocessor.dataset(corpus, parts[part], batch_size=config.batch_size, training=training,
                                    seed=config.seed)

    def raw_features():
        return frozen.corpus_features(corpus, config, feature_config, cache_dir=cache_dir, log=log)

    def pooled_features(part):
        return raw_features()[parts[part]]

    labels = {part: corpus.labels[indices] for part, indices in parts.items()}
    speakers = {part: speaker_ids[indices] for part, indices in parts.items()}
    copies = copy_keys(config.channel_copies, config.channel_draws)

    def copy_values(key):
        return frozen.corpus_features(corpus, config, feature_config, cache_dir=cache_dir, log=log, channel=key)

    if not config.speaker_norm:
        def features(part):
            return raw_features()[parts[part]]

        copy_features = None
        if copies:
            def copy_features(part):
                return [copy_values(key)[parts[part]] for key in copies]

        data = FoldData(dataset, labels, list(corpus.class_names), None, features=features, speakers=speakers,
                        groups=groups, copy_features=copy_features)
        data.pooled_features = pooled_features
        return data

    stats = {}

    def speaker_stats():
        if not stats:
            values = raw_features()
            used = {speaker_ids[i] for indices in parts.values() for i in indices}
            for speaker in used:
                stats[speaker] = feature_moments(values[speaker_ids == speaker])
        return stats

    def standardised(values, part, moments):
        values = values[parts[part]].astype(np.float64)
        out = np.empty_like(values)
        for speaker in set(speakers[part]):
            mean, variance = moments[speaker]
            rows = speakers[part] == speaker
            out[rows] = (values[rows] - mean) / np.sqrt(np.maximum(variance, 1e-14))
        return out.astype(np.float32)

    def features(part):
        return standardised(raw_features(), part, speaker_stats())

    copy_features = None
    if copies:
        # A speaker heard through a copy's channel is standardised with its own statistics in that channel, as a
        # test speaker is with its own (adapted in the channel it was recorded in).
        def copy_features(part):
            out = []
            for key in copies:
                values = copy_values(key)
                moments = {s: feature_moments(values[speaker_ids == s]) for s in set(speakers[part])}
                out.append(standardised(values, part, moments))
            return out

    test_stats = {}
    for speaker in dict.fromkeys(speakers["test"]):  # in order of appearance
        mean, variance = speaker_stats()[speaker]
        test_stats[speaker] = (mean.astype(np.float32), np.sqrt(variance).astype(np.float32))
    channel_stats = next(iter(test_stats.values()), None)
    data = FoldData(dataset, labels, list(corpus.class_names), channel_stats, features=features, speakers=speakers,
                    groups=groups, copy_features=copy_features)
    data.pooled_features = pooled_features
    data.test_speaker_stats = test_stats
    train_speakers = sorted(set(speakers["train"]))
    data.speaker_prior_variance = np.mean([speaker_stats()[s][1] for s in train_speakers], axis=0).astype(np.float32)
    return data


def inner_groups(corpus, fold, inner_folds="auto"):
    """`part -> group ids` of the inner cross-validation (the `probe` recipe's choice of `C`).

    Args:
        corpus: the `Corpus` of the run.
        fold: its `Fold`.
        inner_folds: `"auto"`: the speakers under leave-one-speaker-out;
            under leave-one-corpus-out the corpus of each record, so that a
            choice is made by leaving one training corpus out (with a single
            training corpus, its speakers). `"speakers"`: the speakers.
            `"speaker_groups"`: the training speakers, sorted, dealt
            round-robin into `SPEAKER_GROUPS` groups (`"speakers 1/5"`, ...;
            fewer when there are fewer speakers), so that each group holds
            speakers of every training corpus. Test and validation records
            keep their speaker ids.

    Returns:
        dict `{"train", "validation", "test"} -> numpy array`.

    Example:

    >>> from tf_pipeline.folds import loso_folds
    >>> corpus = tf_pipeline.corpora.emodb(emodb_dir)                       # doctest: +SKIP
    >>> groups = inner_groups(corpus, loso_folds(corpus)[0], "speaker_groups")  # doctest: +SKIP
    >>> sorted(set(groups["train"]))                                        # doctest: +SKIP
    ['speakers 1/5', 'speakers 2/5', 'speakers 3/5', 'speakers 4/5', 'speakers 5/5']
    """
    parts = fold_parts(fold)
    ids = corpus.speaker_ids
    if inner_folds == "auto" and fold.protocol == "loco" and len(set(corpus.corpus_ids[fold.train_indices])) > 1:
        ids = corpus.corpus_ids
    elif inner_folds == "speaker_groups":
        train_speakers = sorted(set(ids[fold.train_indices]))
        count = min(SPEAKER_GROUPS, len(train_speakers))
        group = {speaker: f"speakers {i % count + 1}/{count}" for i, speaker in enumerate(train_speakers)}
        ids = np.array([group.get(speaker, speaker) for speaker in ids])
    elif inner_folds not in ("auto", "speakers"):
        raise ValueError(f"inner_folds must be 'auto', 'speakers' or 'speaker_groups'. Received: "
                         f"inner_folds={inner_folds!r}")
    return {part: ids[indices] for part, indices in parts.items()}


def train_corpora(corpus, fold):
    """The corpora a fold trains on, in the order of `corpus.corpora` (`[corpus.name]` for one corpus)."""
    used = set(corpus.corpus_ids[fold.train_indices])
    return [name for name in (corpus.corpora or (corpus.name,)) if name in used]


def fold_parts(fold):
    """`{"train", "validation", "test"} -> record indices` of a fold."""
    return {"train": fold.train_indices, "validation": fold.validation_indices, "test": fold.test_indices}


def build_fold_data(corpus, fold, config, stats_of, dataset, segment_dataset=None):
    """The `FoldData` of one fold of a model trained end to end, whatever computes its features.

    The one statement of the evaluation rule: channel statistics come from
    `fold.train_indices` only, and the model's `standardize` layer gets
    them; with `config.speaker_norm`, every speaker of the fold is
    standardised with its own statistics instead (the test speaker's from
    its unlabelled audio) and the model's layer is the identity. Used by
    `make_fold_data` (tf.data) and `keras_ser.training.feature_file`
    (numpy, no TensorFlow). An input without channel statistics
    (`stats_of` returns None) gives `channel_stats=None`.

    Args:
        corpus: the `Corpus`.
        fold: a `tf_pipeline.folds.Fold` of it.
        config: a `TrainConfig`.
        stats_of: callable `record indices -> ChannelStats` of their feature
            images, or None when the input has none
            (`Preprocessor.channel_stats`).
        dataset: callable `(indices, training, speaker_stats) -> dataset`
            (`speaker_stats`: dict `speaker -> ChannelStats`, or None).
        segment_dataset: optional callable of the same form giving single
            segments (stage 1 of the paper recipe).

    Returns:
        A `FoldData`.
    """
    from keras_ser.training.fitting import FoldData
    from tf_pipeline.normalization import IDENTITY

    parts = fold_parts(fold)
    speaker_stats = None
    if config.speaker_norm:
        ids = corpus.speaker_ids
        used = sorted({ids[i] for indices in parts.values() for i in indices})
        speaker_stats = {speaker: stats_of(np.flatnonzero(ids == speaker)) for speaker in used}
        stats = IDENTITY
    else:
        stats = stats_of(fold.train_indices)

    def part_dataset(make):
        return None if make is None else lambda part, training: make(parts[part], training, speaker_stats)

    labels = {part: corpus.labels[indices] for part, indices in parts.items()}
    channel_stats = None if stats is None else (np.array(stats.mean), np.array(stats.std))
    return FoldData(part_dataset(dataset), labels, list(corpus.class_names), channel_stats,
                    segment_dataset=part_dataset(segment_dataset))


def make_fold_data(corpus, fold, config, feature_config=None, cache_dir=None, log=None):
    """Builds the `FoldData` of one fold from a corpus with the model's preprocessor (`build_fold_data`).

    Recipes on frozen encoders' features (`config.uses_encoder`) get
    `make_encoder_fold_data`; `cache_dir` and `log` reach its feature
    extraction: the folder of the feature stores and a callable for
    progress lines.
    """
    if config.uses_encoder:
        return make_encoder_fold_data(corpus, fold, config, feature_config, cache_dir=cache_dir, log=log)
    import tensorflow as tf

    augment = config.augment()
    options = tf.data.Options()
    if config.strategy == "multi_worker":
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    preprocessor = config.preprocessor(feature_config)

    def stats_of(indices):
        return preprocessor.channel_stats(corpus, indices)

    def dataset(indices, training, speaker_stats):
        return preprocessor.dataset(
            corpus,
            indices,
            batch_size=config.batch_size,
            training=training,
            seed=config.seed,
            augment=augment,
            speaker_stats=speaker_stats,
            label_mode=config.label_mode,
            mixup_alpha=config.mixup_alpha,
        ).with_options(options)

    return build_fold_data(corpus, fold, config, stats_of, dataset)


def feature_config_for(config, feature_config=None):
    """The feature config a `TrainConfig`'s model reads (`TrainConfig.feature_config`: its preprocessor's
    `CONFIG_CLASS`, e.g. `MelFramesConfig` for `encoder_stats`, `FeatureConfig` for `cnn_sru`), defaults when
    `feature_config` is None."""
    return config.feature_config(feature_config)


def _absolute_data_dir(corpus, data_dir):
    if not data_dir:
        return None
    if corpus.corpora:  # one folder per corpus, comma-separated
        folders = data_dir.split(",") if isinstance(data_dir, str) else list(data_dir)
        return ",".join(os.path.abspath(folder.strip()) if folder.strip() else "" for folder in folders)
    return os.path.abspath(data_dir)


def _run_identity(corpus, config, feature_config, data_dir, protocol="loso"):
    return {
        "config": config.to_dict(),
        "corpus": corpus.name,
        "data_dir": _absolute_data_dir(corpus, data_dir),
        "class_names": list(corpus.class_names),
        "num_utterances": len(corpus),
        "feature_config": feature_config.to_dict(),
        "evaluation": protocol,
    }


def _check_run_dir(run_dir, identity):
    path = os.path.join(run_dir, RUN_FILE)
    if os.path.exists(path):
        with open(path) as handle:
            stored = json.load(handle)
        # Fields added to TrainConfig since the run started take their defaults.
        stored["config"] = TrainConfig.from_dict(stored.get("config", {})).to_dict()
        differences = [
            f"{key}: {stored.get(key, _IDENTITY_DEFAULTS.get(key))!r} (stored) vs {value!r} (now)"
            for key, value in identity.items()
            if stored.get(key, _IDENTITY_DEFAULTS.get(key)) != value
        ]
        if differences:
            raise ValueError(
                f"{run_dir} holds a run with another configuration; use a new --run_dir or the same settings. "
                + "; ".join(differences)
            )
    return path


def fold_test_probabilities(config, data, model):
    """Class probabilities of a fold's test part from its trained model.

    For the recipes that train on frozen pooled features (`probe`,
    `frozen`), when `data` holds them (`pooled_features`,
    `make_encoder_fold_data`), the model's head (`model.head_model()`: the
    same layers and weights as after `"pooled"` in the model) runs on the
    test part's pooled features, computed once for the corpus, instead of
    the whole model running the encoders over the audio again. Otherwise
    (and after `fine_tune`, which changed the encoder) `model.predict` on
    `data.dataset("test")`.

    Args:
        config: the fold's `TrainConfig`.
        data: its `FoldData`.
        model: the trained model.

    Returns:
        float numpy array `[test utterances, num_classes]`, in the order of
        `data.labels["test"]`.
    """
    pooled_features = getattr(data, "pooled_features", None)
    test_stats = getattr(data, "test_speaker_stats", None) or {}
    if config.speaker_norm and len(test_stats) > 1:
        return _per_speaker_test_probabilities(config, data, model, test_stats)
    if config.recipe in ENCODER_RECIPES and pooled_features is not None and not config.fine_tune:
        return np.asarray(model.head_model()(pooled_features("test"), training=False))
    # Models trained end to end, and a fine-tuned encoder (its pooled features are no longer the cached ones).
    return model.predict(data.dataset("test", training=False), verbose=0)


def _per_speaker_test_probabilities(config, data, model, test_stats):
    """The test part's probabilities with the head adapted to each test speaker in turn.

    A fold with several test speakers (leave-one-corpus-out) under
    `speaker_norm`: each speaker's pooled features go through the head with
    its `"standardize"` layer holding that speaker's own statistics (what
    `keras_ser.adapt` gives a user for one speaker). The layer is left as
    the fold data found it (the first test speaker's statistics).
    """
    pooled = np.asarray(data.pooled_features("test"))  # the frozen encoder's (speaker_norm excludes fine_tune)
    standardize = model.get_layer("standardize")
    kept = [np.array(weight) for weight in standardize.get_weights()]
    head = model.head_model()
    speakers = data.speakers["test"]
    probabilities = None
    try:
        for speaker, (mean, std) in test_stats.items():
            rows = speakers == speaker
            standardize.mean.assign(mean)
            standardize.variance.assign(np.square(std))
            out = np.asarray(head(pooled[rows], training=False))
            if probabilities is None:
                probabilities = np.zeros((len(speakers), out.shape[1]), out.dtype)
            probabilities[rows] = out
    finally:
        standardize.set_weights(kept)
    return probabilities


def run_fold(corpus, fold, config, feature_config, log_dir=None, verbose=1, fold_data=None):
    """Trains and evaluates one fold.

    `fold_data` is a callable `(corpus, fold, config, feature_config) ->
    FoldData`; the default, `make_fold_data`, builds tf.data pipelines with
    tf_pipeline (`keras_ser.training.feature_file.fold_data_fn` needs no TensorFlow).

    Returns:
        `(result, model)`: the fold's result dict (not written) and the
        trained model.
    """
    import keras

    from keras_ser.training import recipes

    keras.utils.set_random_seed(config.seed)
    start = time.time()
    data = (fold_data or make_fold_data)(corpus, fold, config, feature_config)
    result = recipes.train(config, data, feature_config=feature_config, log_dir=log_dir, verbose=verbose)
    probabilities = fold_test_probabilities(config, data, result.model)
    labels = data.labels["test"]
    predicted = np.argmax(probabilities, axis=1)
    return {
        "test_speaker": fold.test_speaker,
        "validation_speaker": fold.validation_speaker,
        "n_train": int(len(fold.train_indices)),
        "n_validation": int(len(fold.validation_indices)),
        "n_test": int(len(fold.test_indices)),
        **fold_scores(labels, predicted, len(corpus.class_names)),
        "class_names": list(corpus.class_names),
        "predictions": [
            {
                "path": corpus.records[index].path,
                "label": int(label),
                "predicted": int(guess),
                "probabilities": [round(float(p), 6) for p in probs],
            }
            for index, label, guess, probs in zip(fold.test_indices, labels, predicted, probabilities)
        ],
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "channel_stats": None if data.channel_stats is None else {
            "mean": data.channel_stats[0].tolist(), "std": data.channel_stats[1].tolist()},
        "wall_time_s": round(time.time() - start, 2),
        "config": config.to_dict(),
        "feature_config": feature_config.to_dict(),
        "corpus": corpus.name,
        "evaluation": fold.protocol,
        "train_corpora": train_corpora(corpus, fold),
        "versions": versions(),
    }, result.model


@dataclasses.dataclass(frozen=True)
class LosoProgress:
    """What `run_folds` did: the report it wrote, the test speakers computed now and those found done."""

    report: dict
    computed: tuple
    skipped: tuple


def run_folds(run_dir, folds, fit_fold, run_record, check=None, log=print, print_report=True, note=None):
    """The resumable leave-one-speaker-out loop of every system: one fold file per finished fold, then the report.

    Writes `run.json` (`run_record`), then, fold by fold, skips a fold whose
    `fold_<speaker>.json` exists (a finished fold of this run: the file is
    written atomically) and otherwise calls `fit_fold(fold)` and writes what it
    returns as that file at once; last, `keras_ser.training.report.write_report`.

    Args:
        run_dir: str, the run folder (created when missing).
        folds: sequence of `tf_pipeline.folds.Fold`, in the order to run.
        fit_fold: callable `fold -> dict`, the content of the fold's file:
            fits on the fold's training speakers only and predicts its test
            speaker (the keys are listed in this module's docstring).
        run_record: dict, the content of `run.json`.
        check: optional callable `() -> None` that raises a `ValueError` when
            `run_dir` holds another run; called before anything is written.
        log: callable for the progress lines, or None.
        print_report: bool. Pass `log` to `write_report` too (which logs the
            whole results.md). Defaults to `True`.
        note: optional callable `result -> str`, appended to a finished fold's line.

    Returns:
        A `LosoProgress`.
    """
    log = log or (lambda text: None)
    os.makedirs(run_dir, exist_ok=True)
    if check is not None:
        check()
    write_json_atomic(os.path.join(run_dir, RUN_FILE), run_record)
    computed, skipped = [], []
    for number, fold in enumerate(folds, start=1):
        path = fold_path(run_dir, fold.test_speaker)
        tested = "corpus" if getattr(fold, "protocol", "loso") == "loco" else "speaker"
        prefix = f"[fold {number}/{len(folds)}] {tested} {fold.test_speaker}"
        if os.path.exists(path):
            with open(path) as handle:
                done = json.load(handle)
            log(f"{prefix}: already done (WA {done['wa']:.3f}, UA {done['ua']:.3f}); skipped")
            skipped.append(fold.test_speaker)
            continue
        held = f", validation speaker {fold.validation_speaker}" if fold.validation_speaker else ""
        log(f"{prefix}: training on {len(fold.train_indices)} utterances{held}, testing on {len(fold.test_indices)}")
        result = fit_fold(fold)
        write_json_atomic(path, result)
        computed.append(fold.test_speaker)
        log(f"{prefix}: WA {result['wa']:.3f}, UA {result['ua']:.3f} ({result['wall_time_s']:.0f} s)"
            + (note(result) if note else ""))
    summary = report.write_report(run_dir, log=log if print_report else None)
    return LosoProgress(summary, tuple(computed), tuple(skipped))


def run_loso(
    corpus,
    config,
    run_dir,
    speakers=None,
    feature_config=None,
    data_dir=None,
    verbose=1,
    command=None,
    log=print,
    fold_data=None,
    tensorboard=True,
    protocol="loso",
    feature_cache=None,
):
    """Runs (or resumes) a LOSO (or leave-one-corpus-out) evaluation and writes its report.

    Args:
        corpus: a `tf_pipeline.Corpus` (combined from several corpora with
            `tf_pipeline.corpora.combine` for `protocol="loco"`).
        config: a `TrainConfig`.
        run_dir: folder of the run: `run.json`, `fold_<speaker>.json` (or
            `fold_<corpus>.json`) per finished fold, `results.json`,
            `results.md`, `confusion.png` and `tensorboard/`.
        speakers: test speakers to run (default: all); the test corpora
            under `protocol="loco"`.
        feature_config: `tf_pipeline.FeatureConfig` (default: the paper's).
        data_dir: the corpus folder, recorded in the results.
        verbose: Keras progress output (1 bars, 2 one line per epoch, 0 none).
        command: the command line, recorded in the results.
        log: callable for progress lines.
        fold_data: callable `(corpus, fold, config, feature_config) ->
            FoldData` (default: `make_fold_data`, tf_pipeline). Without
            TensorFlow: `keras_ser.training.feature_file.fold_data_fn(arrays)`.
        feature_cache: str or None. With the default `fold_data`, the folder
            of the speech-encoder entries' feature stores
            (`keras_ser.training.frozen.corpus_features`): files extracted
            once are read back by later runs, other subsets and combinations
            of corpora, and an interrupted extraction resumes.
        tensorboard: bool. Write `tensorboard/` logs (Keras' TensorBoard
            callback needs TensorFlow). Defaults to `True`.
        protocol: `"loso"` (leave one speaker out) or `"loco"` (leave one
            corpus out: `tf_pipeline.folds.loco_folds`; model selection on
            the training corpora only, `config.validation` must be
            `"none"`). Defaults to `"loso"`.

    Returns:
        The report dict (as written to `results.json`).

    Raises:
        ValueError: an unknown `protocol`, `protocol="loco"` on a corpus not
            combined from 2 or more corpora or with `validation="next"`, or a
            `run_dir` that holds another run.

    Example:

    >>> corpus = tf_pipeline.corpora.emodb("/data/emodb/wav")         # doctest: +SKIP
    >>> config = TrainConfig(epochs=30, validation="next")              # doctest: +SKIP
    >>> report = run_loso(corpus, config, "runs/emodb_n3", speakers=["03", "08"])  # doctest: +SKIP
    >>> both = tf_pipeline.corpora.read("emodb,ravdess", "/data/emodb/wav,/data/ravdess")  # doctest: +SKIP
    >>> probe = TrainConfig(model="encoder_stats", recipe="probe")                        # doctest: +SKIP
    >>> report = run_loso(both, probe, "runs/loco", protocol="loco")                      # doctest: +SKIP
    """
    import keras

    from tf_pipeline.folds import loco_folds
    from tf_pipeline.folds import loso_folds

    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}. Received: protocol={protocol!r}")

    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_dict(config)
    feature_config = feature_config_for(config, feature_config)
    from keras_ser.training import distribute

    distribute.get_strategy(config.strategy)  # before any TensorFlow op (multi-worker needs it)
    os.makedirs(run_dir, exist_ok=True)
    if protocol == "loco":
        folds = loco_folds(corpus, corpora=speakers, validation=config.validation)
    else:
        folds = loso_folds(corpus, validation=config.validation, speakers=speakers)
    identity = _run_identity(corpus, config, feature_config, data_dir, protocol)
    _check_run_dir(run_dir, identity)
    record = {**identity, "command": command or " ".join(sys.argv),
              "speakers": list(corpus.corpora if protocol == "loco" else corpus.speakers),
              "uses_test_speaker_audio": bool(config.speaker_norm),
              "corpora": list(corpus.corpora or (corpus.name,)), "left_out": dict(corpus.left_out)}

    if fold_data is None:
        fold_data = functools.partial(make_fold_data, cache_dir=feature_cache, log=log)

    def fit_fold(fold):
        log_dir = os.path.join(run_dir, "tensorboard", f"fold_{fold.test_speaker}") if tensorboard else None
        result, _ = run_fold(corpus, fold, config, feature_config, log_dir=log_dir, verbose=verbose,
                             fold_data=fold_data)
        keras.backend.clear_session()
        return result

    return run_folds(run_dir, folds, fit_fold, record, log=log).report
