r"""Cross-corpus experiments on frozen fusion statistics: EMO-DB, RAVDESS and EMOVO.

Every system here is a probe (standardisation and a logistic regression) on
the frozen pooled statistics of `fusion_stats` (the GE2E speech encoder and
the sound-effects CNN) or `encoder_stats` (`--model`: the GE2E encoder
alone), on pooled features extracted once per corpus and front
end (`keras_ser.training.frozen.corpus_features`, cached), so each setting
costs one extraction and the probes cost seconds. What is measured:

- `emodb_to`: a probe trained on all of EMO-DB (7 classes, C by
  leave-one-speaker-out over EMO-DB) - what the EMO-DB presets do - scored
  on every file of RAVDESS and EMOVO over the four emotions all three share
  (arg-max among anger, happiness, sadness and neutral).
- `loco`: leave one corpus out over the shared classes: trained on every
  speaker of the other corpora, C chosen by leaving one *training corpus*
  out at a time; the test corpus is never seen.
- levers, each chosen on the training corpora only or marked as using the
  test corpus's unlabelled audio: corpus-balanced sample weights, and
  per-corpus / per-speaker standardisation (the test corpus's or speaker's
  own statistics: uses its unlabelled audio, a labelled row only).

Each grid writes fold files through the LOSO runner's resumable loop
(`keras_ser.training.loso.run_folds`: run.json, fold_<test>.json,
results.json, results.md) under `--run_root`, and one summary JSON
(`--summary`).

    python experiments/cross_corpus.py --emodb_dir=/data/emodb/wav \
        --ravdess_dir=/data/ravdess --emovo_dir=/data/emovo --front_end=speech
"""

import json
import os
import sys
import time

import numpy as np
from absl import app
from absl import flags

import training_side_levers
from make_preset import public_paths
from training_side_levers import scores

SHARED4 = ("anger", "happiness", "sadness", "neutral")
SHARED6 = SHARED4 + ("fear", "disgust")

FLAGS = flags.FLAGS
flags.DEFINE_string("emodb_dir", None, "EMO-DB wav folder.")
flags.DEFINE_string("ravdess_dir", None, "RAVDESS folder (Actor_01 .. Actor_24).")
flags.DEFINE_string("emovo_dir", None, "EMOVO folder (f1 .. m3).")
flags.DEFINE_enum("model", "fusion_stats", ["fusion_stats", "encoder_stats"],
                  "Whose pooled features: the fusion of both encoders, or the GE2E encoder alone (the loco_grid's "
                  "feature candidates need fusion_stats).")
flags.DEFINE_enum("front_end", "speech", ["speech", "none"], "The speech front end of the features.")
flags.DEFINE_float("trim_db", None, "With --front_end=speech: trimming threshold in dB (default the config's).")
flags.DEFINE_float("level_dbfs", None, "With --front_end=speech: RMS level in dBFS (default the config's).")
flags.DEFINE_string("cache_dir", "runs/cache", "Feature cache folder.")
flags.DEFINE_string("run_root", "runs/cross_corpus", "Folder of the run folders.")
flags.DEFINE_list("grids", ["emodb_to", "loco"],
                  "Grids to run: emodb_to, loco (the library's probe), loco_grid (features x corpus-balanced "
                  "weights x C chosen on the training corpora, and the adapted levers), loco_grid6 (the same over "
                  "the six emotions all three corpora have), loco_levers (GE2E statistics: training classes x the "
                  "inner choice of C, scored on the four shared emotions), loco_adaptation (GE2E statistics, six "
                  "emotions, per-speaker normalisation: each test speaker adapted from 1, 3, 10, 20 or all of its "
                  "unlabelled utterances; uses the test speakers' audio), loco_more_levers (GE2E statistics, six "
                  "emotions scored among the four: speed-perturbed training copies, pooling over speech frames only, "
                  "class-balanced weights; experiments/training_side_levers.py), loco_channel_levers (the same probe "
                  "with the training files also heard through a random equaliser and/or a synthetic room), "
                  "loco_unseen_channels (the runner's probe with and without channel copies, its test corpus as "
                  "recorded and through an equaliser, a room or a noise no training copy was drawn from), "
                  "loco_functionals (openSMILE eGeMAPS and ComParE functionals alone, beside the GE2E statistics, and "
                  "late fusion).")
flags.DEFINE_string("summary", None, "Summary JSON (default <run_root>/<model>/<front end>/summary.json).")
flags.DEFINE_list("leaderboard_runs", [],
                  "Instead of running grids: runner folders (keras-ser loso ...) whose results, one row per test "
                  "corpus (leave-one-corpus-out) or one row per run (leave-one-speaker-out), are merged into "
                  "--leaderboard with the rows of every summary under --run_root.")
flags.DEFINE_string("leaderboard", "docs/results.json", "The leaderboard JSON the rows are merged into.")
flags.DEFINE_bool("merge_leaderboard", False,
                  "Write the rows of every summary under --run_root (and of --leaderboard_runs) into --leaderboard "
                  "and exit, replacing the cross-corpus rows of the same runs and keeping the others (runs whose "
                  "folders this checkout lacks). Without it, --leaderboard_runs replaces every cross-corpus row.")
flags.DEFINE_list("score_among", [],
                  "With --leaderboard_runs: a runner folder whose classes include these (and more) gets, per test "
                  "corpus, a second row scored among these classes only (arg-max of its probabilities among them, "
                  "files of other classes left out), e.g. a six-emotion probe on the four shared emotions.")


def front_end_config():
    from tf_pipeline.config import FrontEndConfig

    if FLAGS.front_end == "none":
        return None
    defaults = FrontEndConfig()
    return FrontEndConfig(trim_db=defaults.trim_db if FLAGS.trim_db is None else (FLAGS.trim_db or None),
                          level_dbfs=defaults.level_dbfs if FLAGS.level_dbfs is None else (FLAGS.level_dbfs or None))


def front_end_name(front_end):
    if front_end is None:
        return "none"
    return f"trim{front_end.trim_db}_level{front_end.level_dbfs}"


def read_corpora():
    from tf_pipeline import corpora

    found = {}
    for name, data_dir in (("emodb", FLAGS.emodb_dir), ("ravdess", FLAGS.ravdess_dir), ("emovo", FLAGS.emovo_dir)):
        if data_dir:
            found[name] = corpora.READERS[name](data_dir)
    if len(found) < 2:
        raise app.UsageError("Give at least two of --emodb_dir, --ravdess_dir, --emovo_dir")
    return found


def extract(corpora_by_name, front_end, log=print):
    """`{name: (features, shared label names, speakers, paths)}`, features extracted once per corpus."""
    from keras_ser.training import frozen
    from keras_ser.training.config import TrainConfig
    from keras_ser.models.speech_encoders.config import FusionFeatureConfig
    from keras_ser.models.speech_encoders.config import MelFramesConfig
    from tf_pipeline.corpora import to_shared_vocabulary

    config = TrainConfig(model=FLAGS.model, recipe="probe", validation="none")
    if FLAGS.model == "fusion_stats":
        feature_config = FusionFeatureConfig(front_end=front_end)
    else:
        feature_config = MelFramesConfig(front_end=front_end)
    out = {}
    for name, corpus in corpora_by_name.items():
        start = time.time()
        features = frozen.corpus_features(corpus, config, feature_config, cache_dir=FLAGS.cache_dir, log=log)
        shared = to_shared_vocabulary(corpus)
        labels = np.array([shared.class_names[r.label] for r in shared.records])
        out[name] = (features, labels, np.array([r.speaker for r in corpus.records]), corpus.paths)
        log(f"{name}: {features.shape} features ready ({time.time() - start:.0f} s)")
    return out


def fit(features, labels, groups, classes):
    from keras_ser.training.frozen import fit_probe

    index = {c: i for i, c in enumerate(classes)}
    return fit_probe(features, np.array([index[c] for c in labels]), groups, len(classes))


def standardized_per(features, keys):
    out = np.empty_like(features, dtype=np.float64)
    for key in np.unique(keys):
        rows = keys == key
        own = features[rows].astype(np.float64)
        out[rows] = (own - own.mean(0)) / np.sqrt(np.maximum(own.var(0), 1e-12))
    return out.astype(np.float32)


def fold_record(test, train_corpora, classes, protocol, result, n_train, n_test, wall, lever, extra=None):
    return {"test_speaker": test, "validation_speaker": None, "n_train": int(n_train), "n_validation": 0,
            "n_test": int(n_test), "wa": result["wa"], "ua": result["ua"], "recall": result["recall"],
            "class_names": list(classes), "protocol": protocol, "train_corpora": list(train_corpora),
            "lever": lever, "wall_time_s": round(wall, 2), **(extra or {})}


def emodb_to(data, log=print):
    """Probe on all of EMO-DB (its 7 classes), scored on the other corpora over the 4 shared emotions."""
    from keras_ser.training.frozen import probe_logits

    features, labels, speakers, _ = data["emodb"]
    classes = sorted(set(labels), key=list(labels).index)
    start = time.time()
    probe = fit(features, labels, speakers, classes)
    log(f"EMO-DB probe: C={probe['C']} ({time.time() - start:.0f} s)")
    results = {}
    shared = [classes.index(c) for c in SHARED4]
    for name in data:
        if name == "emodb":
            continue
        x, y, _, _ = data[name]
        keep = np.isin(y, SHARED4)
        logits = probe_logits(probe, x[keep])[:, shared]
        predicted = np.array(SHARED4)[np.argmax(logits, axis=1)]
        results[name] = scores(y[keep], predicted, SHARED4)
        log(f"EMO-DB probe -> {name}: UA {results[name]['ua']:.3f} WA {results[name]['wa']:.3f} "
            f"recall {json.dumps({k: round(v, 3) for k, v in results[name]['recall'].items()})}")
    return {"C": probe["C"], "results": results}


# Inverse L2 strengths of the lever grids (the probe's grid reaches up to 10; these corpora chose the small end).
LEVER_C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
ENCODER_COLUMNS = 1536  # the GE2E statistics: the first columns of fusion_stats's pooled features (== encoder_stats)
CANDIDATES = {
    # name: (columns, corpus-balanced weights)
    "fusion": (None, False),
    "encoder": (ENCODER_COLUMNS, False),
    "fusion_balanced": (None, True),
    "encoder_balanced": (ENCODER_COLUMNS, True),
}
# Levers that use the test corpus's (or test speaker's) unlabelled audio: shown, never chosen.
ADAPTED = ("corpus_standardized", "speaker_standardized")


def _fit_lr(x, y, c, weights=None, seed=0):
    from keras_ser.training.regressions import fit_standardized
    from keras_ser.training.regressions import predict_standardized

    fitted = fit_standardized(x, y, c, seed=seed, sample_weight=weights, max_iter=3000)
    return lambda z: predict_standardized(fitted, z)


def _balanced_weights(groups):
    names, counts = np.unique(groups, return_counts=True)
    share = dict(zip(names, len(groups) / (len(names) * counts)))
    return np.array([share[g] for g in groups])


def _part(data, names, classes, columns, lever):
    """Features, labels, corpus of each row and speakers of `names`, over `classes`, with a lever's normalisation."""
    xs, ys, gs = [], [], []
    for name in names:
        x, y, speakers, _ = data[name]
        keep = np.isin(y, classes)
        x = x[keep] if columns is None else x[keep][:, :columns]
        if lever == "corpus_standardized":
            x = standardized_per(x, np.zeros(len(x)))
        elif lever == "speaker_standardized":
            x = standardized_per(x, speakers[keep])
        xs.append(x), ys.append(y[keep]), gs.append(np.full(int(keep.sum()), name))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(gs)


def _speakers_of(data, names, classes):
    """`<corpus>.<speaker>` of the rows `_part(data, names, classes, ...)` returns, in its order."""
    return np.concatenate([np.array([f"{name}.{s}" for s in data[name][2][np.isin(data[name][1], classes)]])
                           for name in names])


def _inner_scores(data, train, classes, columns, balanced, lever):
    """`{C: mean UA}` of leaving one training corpus out (train on the rest, test on it)."""
    by_c = {c: [] for c in LEVER_C_GRID}
    for held in train:
        rest = [n for n in train if n != held]
        x, y, g = _part(data, rest, classes, columns, lever)
        x_held, y_held, _ = _part(data, [held], classes, columns, lever)
        for c in LEVER_C_GRID:
            predict = _fit_lr(x, y, c, _balanced_weights(g) if balanced and len(rest) > 1 else None)
            by_c[c].append(scores(y_held, predict(x_held), classes)["ua"])
    return {c: float(np.mean(v)) for c, v in by_c.items()}


def loco_grid(data, classes=SHARED4, log=print):
    """Every candidate and lever, each with C chosen by leaving one training corpus out; and the nested choice.

    For each test corpus, the candidates (features x corpus-balanced weights)
    are scored by the same inner leave-one-training-corpus-out as C; the
    best (candidate, C) on the training corpora is the `chosen` row. The
    adapted levers (per-corpus / per-speaker standardisation with the test
    audio's own statistics) are shown for each feature set, never chosen.
    """
    names = list(data)
    rows = {}
    for test in names:
        train = [n for n in names if n != test]
        inner = {}
        for name, (columns, balanced) in CANDIDATES.items():
            start = time.time()
            inner[name] = _inner_scores(data, train, classes, columns, balanced, None)
            best_c = max(LEVER_C_GRID, key=lambda c: (inner[name][c], -c))
            x, y, g = _part(data, train, classes, columns, None)
            x_test, y_test, _ = _part(data, [test], classes, columns, None)
            predict = _fit_lr(x, y, best_c, _balanced_weights(g) if balanced else None)
            result = scores(y_test, predict(x_test), classes)
            rows.setdefault(name, {})[test] = fold_record(
                test, train, classes, "leave-one-corpus-out", result, len(x), len(x_test), time.time() - start, name,
                {"C": best_c, "inner_ua": {str(c): round(v, 4) for c, v in inner[name].items()}})
            log(f"LOCO [{name}] test {test}: UA {result['ua']:.3f} WA {result['wa']:.3f} C={best_c} "
                f"inner {max(inner[name].values()):.3f}")
        chosen = max(((name, c) for name in CANDIDATES for c in LEVER_C_GRID),
                     key=lambda key: (inner[key[0]][key[1]], -key[1]))
        record = dict(rows[chosen[0]][test])
        if record["C"] != chosen[1]:
            raise AssertionError("the chosen C is the candidate's own best")
        record["lever"] = f"chosen on the training corpora: {chosen[0]}"
        rows.setdefault("chosen", {})[test] = record
        log(f"LOCO [chosen: {chosen[0]}, C={chosen[1]}] test {test}: UA {record['ua']:.3f}")
        for lever in ADAPTED:
            for feature, columns in (("fusion", None), ("encoder", ENCODER_COLUMNS)):
                start = time.time()
                scores_c = _inner_scores(data, train, classes, columns, False, lever)
                best_c = max(LEVER_C_GRID, key=lambda c: (scores_c[c], -c))
                x, y, _ = _part(data, train, classes, columns, lever)
                x_test, y_test, _ = _part(data, [test], classes, columns, lever)
                result = scores(y_test, _fit_lr(x, y, best_c)(x_test), classes)
                key = f"{feature}_{lever}"
                rows.setdefault(key, {})[test] = fold_record(
                    test, train, classes, "leave-one-corpus-out", result, len(x), len(x_test), time.time() - start,
                    key, {"C": best_c, "uses_test_audio": "corpus" if lever == "corpus_standardized" else "speaker"})
                log(f"LOCO [{key}] test {test}: UA {result['ua']:.3f} WA {result['wa']:.3f} C={best_c}")
    return rows


# The second round of levers, on the GE2E statistics: which classes the probe is trained on (always scored
# among the four shared emotions), and how C is chosen when only two corpora are there to choose on.
TRAINING_CLASSES = {"shared4": SHARED4, "shared6": SHARED6, "every": None}  # None: every class the corpora have
INNER_SCHEMES = ("corpora", "speakers5")
AVERAGED_C = (1e-4, 1e-3, 1e-2)


def _fit_scores(x, y, c):
    """A standardised regression's `x -> logits` over the shared four emotions (columns in SHARED4 order)."""
    from keras_ser.training.regressions import fit_standardized

    scaler, classifier = fit_standardized(x, y, c, max_iter=3000)
    columns = [list(classifier.classes_).index(name) for name in SHARED4]
    weights = classifier.coef_[columns] / scaler.scale_[None, :]
    bias = classifier.intercept_[columns] - weights @ scaler.mean_
    return weights, bias


def _among_shared4(fitted, x):
    weights, bias = fitted
    return np.array(SHARED4)[np.argmax(x @ weights.T + bias, axis=1)]


def _inner_ua(x, y, corpus, speakers, scheme):
    """`{C: mean UA over the four shared emotions}` of an inner scheme on the training rows only.

    `corpora`: train on one training corpus, score the other (each way);
    `speakers5`: five folds of whole training speakers, every corpus in each.
    """
    from sklearn.model_selection import GroupKFold

    if scheme == "corpora":
        splits = [(corpus != held, corpus == held) for held in np.unique(corpus)]
    else:
        splits = [(np.isin(np.arange(len(y)), train), np.isin(np.arange(len(y)), held))
                  for train, held in GroupKFold(5).split(x, y, speakers)]
    by_c = {c: [] for c in LEVER_C_GRID}
    for train, held in splits:
        held = held & np.isin(y, SHARED4)
        for c in LEVER_C_GRID:
            fitted = _fit_scores(x[train], y[train], c)
            by_c[c].append(scores(y[held], _among_shared4(fitted, x[held]), SHARED4)["ua"])
    return {c: float(np.mean(v)) for c, v in by_c.items()}


def loco_levers(data, log=print):
    """Leave one corpus out on the GE2E statistics: training classes x the inner choice of C.

    Every row is scored on the four shared emotions of the test corpus
    (arg-max among them). `shared4`, `shared6`, `every`: the probe is
    trained on the training corpora's files of those four emotions, of the
    six all three corpora have, or of every class they have (boredom, calm,
    surprise too). C is chosen on the training corpora only, by one of two
    inner schemes (`_inner_ua`). The `averaged_C` rows average the logits
    of the regressions at C = 1e-4, 1e-3 and 1e-2 (one linear layer, no
    choice): that range was read off the first exploration, which had seen
    the test corpora, so these rows are marked `explored` and never chosen.
    """
    every = tuple(sorted({str(label) for _, labels, _, _ in data.values() for label in labels}))
    names = list(data)
    rows = {}
    for test in names:
        train = [n for n in names if n != test]
        x_test, y_test, _ = _part(data, [test], SHARED4, ENCODER_COLUMNS, None)
        for set_name, classes in TRAINING_CLASSES.items():
            x, y, corpus = _part(data, train, classes or every, ENCODER_COLUMNS, None)
            speakers = _speakers_of(data, train, classes or every)
            fits = {}
            for scheme in INNER_SCHEMES:
                start = time.time()
                inner = _inner_ua(x, y, corpus, speakers, scheme)
                best_c = max(LEVER_C_GRID, key=lambda c: (inner[c], -c))
                fits.setdefault(best_c, _fit_scores(x, y, best_c))
                result = scores(y_test, _among_shared4(fits[best_c], x_test), SHARED4)
                key = f"encoder_{set_name}_C_by_{scheme}"
                rows.setdefault(key, {})[test] = fold_record(
                    test, train, SHARED4, "leave-one-corpus-out", result, len(x), len(x_test), time.time() - start,
                    key, {"C": best_c, "inner_ua": {str(c): round(v, 4) for c, v in inner.items()},
                          "training_classes": list(classes or every)})
                log(f"LOCO [{key}] test {test}: UA {result['ua']:.3f} C={best_c}")
            start = time.time()
            averaged = [fits.get(c) or _fit_scores(x, y, c) for c in AVERAGED_C]
            mean_fit = (np.mean([w for w, _ in averaged], axis=0), np.mean([b for _, b in averaged], axis=0))
            result = scores(y_test, _among_shared4(mean_fit, x_test), SHARED4)
            key = f"encoder_{set_name}_averaged_C"
            rows.setdefault(key, {})[test] = fold_record(
                test, train, SHARED4, "leave-one-corpus-out", result, len(x), len(x_test), time.time() - start, key,
                {"C": list(AVERAGED_C), "explored": "the C range was read off results that had seen the test corpora",
                 "training_classes": list(classes or every)})
            log(f"LOCO [{key}] test {test}: UA {result['ua']:.3f} (explored)")
    return rows


ADAPTATION_UTTERANCES = (1, 3, 10, 20, "all")
ADAPTATION_DRAWS = 5


def loco_adaptation(data, log=print):
    """Leave one corpus out with per-speaker normalisation: each test speaker adapted from n of its utterances.

    USES EACH TEST SPEAKER'S UNLABELLED AUDIO. The GE2E statistics of the
    training corpora's files of the six emotions all three corpora have,
    each training speaker standardised with its own mean and variance, the
    library's probe on them (`fit_probe`, C chosen by leaving one training
    corpus out: what `keras-ser loso --speaker_norm` fits). At test, each
    speaker of the test corpus is standardised with the statistics of `n`
    of its utterances drawn at random from its files of the six emotions
    (unlabelled: any emotion), the variance shrunk toward the training
    speakers' mean variance with `keras_ser.adapt`'s default prior weight
    (`shrink_statistics`); then its files of the four shared emotions are
    scored, arg-max among the four. `ADAPTATION_DRAWS` seeded draws per
    `n` (one for `"all"`); the rows give the mean UA and each draw's.
    """
    from keras_ser.adaptation import DEFAULT_PRIOR_WEIGHT
    from keras_ser.adaptation import feature_moments
    from keras_ser.adaptation import shrink_statistics
    from keras_ser.training.frozen import probe_logits

    names = list(data)
    rng = np.random.default_rng(0)
    rows = {}
    for test in names:
        start = time.time()
        train = [n for n in names if n != test]
        x, y, corpus = _part(data, train, SHARED6, ENCODER_COLUMNS, None)
        speakers = _speakers_of(data, train, SHARED6)
        # The prior variance an adaptable model stores: the mean of the training speakers' own variances.
        prior = np.mean([feature_moments(x[speakers == s])[1] for s in np.unique(speakers)], axis=0)
        probe = fit(standardized_per(x, speakers), y, corpus, list(SHARED6))
        fit_s = time.time() - start
        x6, y6, _ = _part(data, [test], SHARED6, ENCODER_COLUMNS, None)
        test_speakers = _speakers_of(data, [test], SHARED6)
        scored = np.isin(y6, SHARED4)
        for n in ADAPTATION_UTTERANCES:
            start = time.time()
            results = []
            for _ in range(1 if n == "all" else ADAPTATION_DRAWS):
                predicted = np.empty(len(y6), dtype=object)
                for speaker in np.unique(test_speakers):
                    own = test_speakers == speaker
                    values = x6[own]
                    draw = (np.arange(len(values)) if n == "all"
                            else rng.choice(len(values), size=min(n, len(values)), replace=False))
                    mean, variance = shrink_statistics(values[draw], prior, DEFAULT_PRIOR_WEIGHT)
                    z = (values - mean) / np.sqrt(np.maximum(variance, 1e-14))
                    logits = probe_logits(probe, z)[:, :len(SHARED4)]  # SHARED6 begins with the four
                    predicted[own] = np.array(SHARED4)[np.argmax(logits, axis=1)]
                results.append(scores(y6[scored], predicted[scored], SHARED4))
            result = {"wa": float(np.mean([r["wa"] for r in results])),
                      "ua": float(np.mean([r["ua"] for r in results])),
                      "recall": {c: float(np.mean([r["recall"][c] for r in results])) for c in results[0]["recall"]}}
            key = f"encoder_shared6_speaker_adapted_n{n}"
            rows.setdefault(key, {})[test] = fold_record(
                test, train, SHARED4, "leave-one-corpus-out", result, len(x), int(scored.sum()),
                fit_s + time.time() - start, key,
                {"C": probe["C"], "inner_ua": probe["inner_ua"], "training_classes": list(SHARED6),
                 "uses_test_audio": "speaker", "adaptation_utterances": n, "prior_weight": DEFAULT_PRIOR_WEIGHT,
                 "ua_draws": [round(r["ua"], 4) for r in results]})
            log(f"LOCO [{key}] test {test}: UA {result['ua']:.3f} (draws {[round(r['ua'], 3) for r in results]}) "
                f"C={probe['C']}")
    return rows


def training_side_grid(front_end, grid, log=print):
    """A grid of `training_side_levers` (`loco_more_levers`, `loco_channel_levers`, `loco_unseen_channels` or
    `loco_functionals`), as fold records."""
    from keras_ser.models.speech_encoders.config import MelFramesConfig

    corpora_by_name = read_corpora()
    rows = {}
    run_levers = getattr(training_side_levers, grid)
    for lever, folds in run_levers(corpora_by_name, MelFramesConfig(front_end=front_end), FLAGS.cache_dir,
                                   log=log).items():
        for test, fold in folds.items():
            train = [n for n in corpora_by_name if n != test]
            rows.setdefault(lever, {})[test] = fold_record(
                test, train, SHARED4, "leave-one-corpus-out", fold, fold["n_train"], fold["n_test"], fold["wall"],
                lever, {"C": fold["C"], "inner_ua": fold["inner_ua"], "training_classes": list(SHARED6),
                        **({"variant": fold["variant"]} if "variant" in fold else {})})
    return rows


def loco(data, classes=SHARED4, log=print):
    """Leave one corpus out over `classes` with the library's probe (`fit_probe`): C by leaving one training corpus out."""
    from keras_ser.training.frozen import probe_logits

    names = list(data)
    rows = {n: np.isin(data[n][1], classes) for n in names}
    per_corpus = {}
    for test in names:
        start = time.time()
        train = [n for n in names if n != test]
        x = np.concatenate([data[n][0][rows[n]] for n in train])
        y = np.concatenate([data[n][1][rows[n]] for n in train])
        groups = np.concatenate([np.full(int(rows[n].sum()), n) for n in train])
        x_test, y_test = data[test][0][rows[test]], data[test][1][rows[test]]
        probe = fit(x, y, groups, list(classes))
        predicted = np.array(classes)[np.argmax(probe_logits(probe, x_test), axis=1)]
        result = scores(y_test, predicted, classes)
        per_corpus[test] = fold_record(test, train, classes, "leave-one-corpus-out", result, len(x), len(x_test),
                                       time.time() - start, "probe", {"C": probe["C"], "inner_ua": probe["inner_ua"]})
        log(f"LOCO [probe] test {test}: UA {result['ua']:.3f} WA {result['wa']:.3f} C={probe['C']} "
            f"({time.time() - start:.0f} s)")
    return per_corpus


MACHINE = "CPU, 2 cores (TF 2.21.0)"


def _run_rows(run_dir):
    """Leaderboard rows of a runner folder: one per test corpus under leave-one-corpus-out, else one."""
    from keras_ser.training import report

    from reproduce.protocols import machine_label  # experiments/reproduce/: the leaderboard's machine wording

    summary = report.summarise(run_dir)
    config, front_end = summary["config"], summary["feature_config"].get("front_end")
    model = config.get("model") or f"openSMILE {config['feature_set']} + linear SVM"
    versions = None
    if summary["folds"]:  # the machine the folds ran on, as the first fold recorded it
        with open(os.path.join(run_dir, f"fold_{summary['folds'][0]['test_speaker']}.json")) as handle:
            versions = json.load(handle).get("versions")
    base = {"table": "cross_corpus", "tables": ["cross_corpus"], "run": run_dir, "preset": None, "paper": None,
            "uses_test_speaker_audio": bool(summary["uses_test_speaker_audio"]),
            "command": public_paths(summary["command"]),
            "machine": machine_label(versions) if versions else MACHINE, "source": "run folder",
            "classes": list(summary["class_names"]), "front_end": front_end, "model": model}
    recipe = config.get("recipe", "probe")
    if "model" in config and recipe not in ("probe", "frozen"):  # a network trained on the folds (e.g. on a GPU)
        epochs = config.get("epochs")
        base["system"] = (f"{model} ({recipe} recipe, {epochs} epoch{'' if epochs == 1 else 's'}), front end "
                          f"{'trim + level' if front_end else 'none'}, leave-one-speaker-out")
        if summary.get("evaluation") == "loco":
            raise ValueError(f"{run_dir}: leaderboard rows of a trained network under leave-one-corpus-out are not "
                             "written yet; only its leave-one-speaker-out runs are")
        return [{**base, "corpus": summary["corpus"], "train_corpora": [summary["corpus"]],
                 "protocol": "leave-one-speaker-out within the corpus; "
                             + report.protocol_text(config, summary["feature_config"]),
                 "n_utterances": summary["pooled"]["n"], "ua_pooled": round(100 * summary["pooled"]["ua"], 2),
                 "wa_pooled": round(100 * summary["pooled"]["wa"], 2), "ua_mean": round(100 * summary["mean"]["ua"], 2),
                 "ua_std": round(100 * summary["std"]["ua"], 2),
                 "folds": [fold["test_speaker"] for fold in summary["folds"]]}]
    system = model if "model" not in config else f"{model} probe, front end {'trim + level' if front_end else 'none'}"
    if config.get("speaker_subspace"):
        system += f", speaker subspace of rank <= {config['speaker_subspace']}"
    if config.get("inner_folds", "auto") != "auto":
        system += f", inner folds: {config['inner_folds']}"
    if config.get("channel_copies"):
        draws = config.get("channel_draws", 1)
        system += (f", trained with channel copies ({' + '.join(config['channel_copies'])}, {draws} "
                   f"draw{'s' if draws != 1 else ''} each)")
    if config.get("fine_tune"):
        system += (f", then the top {config['fine_tune']} LSTM layer(s) fine-tuned ({config['epochs']} epochs, "
                   f"lr {config['learning_rate']:g})")
    loco = summary.get("evaluation") == "loco"
    inner = {"auto": "C chosen by leaving one training corpus out" if loco else
             "C chosen by leave-one-speaker-out over the training speakers",
             "speakers": "C chosen by leaving one training speaker out",
             "speaker_groups": "C chosen by leaving out one of five groups of whole training speakers"}[
        config.get("inner_folds", "auto")]
    if loco:
        if len(summary["class_names"]) != len(SHARED4):
            system += f", {len(summary['class_names'])} classes"
        rows = []
        among = [c for c in FLAGS.score_among]
        for fold in summary["folds"]:
            row = {**base, "run": f"{run_dir}#{fold['test_speaker']}", "system": f"{system}, leave-one-corpus-out",
                   "corpus": fold["test_speaker"], "train_corpora": fold["train_corpora"],
                   "protocol": f"leave-one-corpus-out: trained on every speaker of the other corpora, {inner}",
                   "n_utterances": fold["n_test"], "ua_pooled": round(100 * fold["ua"], 2),
                   "wa_pooled": round(100 * fold["wa"], 2), "folds": [fold["test_speaker"]]}
            rows.append(row)
            if among and set(among) < set(summary["class_names"]):
                with open(os.path.join(run_dir, f"fold_{fold['test_speaker']}.json")) as handle:
                    scored = report.scores_among(json.load(handle), among)
                rows.append({**row, "run": f"{row['run']}/among_{len(among)}", "classes": among,
                             "system": f"{system}, scored among {', '.join(among)}, leave-one-corpus-out",
                             "protocol": row["protocol"] + f"; arg-max among {', '.join(among)}",
                             "n_utterances": scored["n"], "ua_pooled": round(100 * scored["ua"], 2),
                             "wa_pooled": round(100 * scored["wa"], 2)})
        return rows
    return [{**base, "system": f"{system}, leave-one-speaker-out", "corpus": summary["corpus"],
             "train_corpora": [summary["corpus"]],
             "protocol": f"leave-one-speaker-out within the corpus, {inner}", "n_utterances": summary["pooled"]["n"],
             "ua_pooled": round(100 * summary["pooled"]["ua"], 2), "wa_pooled": round(100 * summary["pooled"]["wa"], 2),
             "ua_mean": round(100 * summary["mean"]["ua"], 2), "ua_std": round(100 * summary["std"]["ua"], 2),
             "folds": [fold["test_speaker"] for fold in summary["folds"]]}]


def _summary_rows(path):
    """Leaderboard rows of a summary: the EMO-DB probe on the other corpora, and every LOCO grid row."""
    with open(path) as handle:
        summary = json.load(handle)
    model = path.split(os.sep)[-3]
    front_end = summary.get("front_end")
    fe = "none" if front_end is None else ("trim only" if front_end.get("level_dbfs") is None else "trim + level")
    commands = summary.get("commands", {})
    base = {"table": "cross_corpus", "tables": ["cross_corpus"], "run": os.path.dirname(path), "preset": None,
            "paper": None, "command": public_paths(commands.get("emodb_to", summary["command"])), "machine": MACHINE,
            "source": "summary",
            "front_end": front_end, "model": model}
    rows = []
    for corpus, result in summary.get("emodb_to", {}).get("results", {}).items():
        rows.append({**base, "run": f"{base['run']}#emodb_to/{corpus}",
                     "system": f"{model} probe trained on EMO-DB (7 classes), front end {fe}",
                     "corpus": corpus, "train_corpora": ["emodb"], "classes": list(SHARED4),
                     "protocol": "cross-corpus: trained on every EMO-DB speaker, every file of the test corpus of "
                                 "the four emotions scored, arg-max among those four",
                     "uses_test_speaker_audio": False, "ua_pooled": round(100 * result["ua"], 2),
                     "wa_pooled": round(100 * result["wa"], 2),
                     "per_class_recall": {k: round(100 * v, 2) for k, v in result["recall"].items()}})
    for grid in ("loco", "loco_grid", "loco_levers", "loco_adaptation", "loco_more_levers", "loco_channel_levers",
                 "loco_unseen_channels", "loco_functionals"):
        levers = {"probe": summary[grid]} if grid == "loco" and grid in summary else summary.get(grid, {})
        for lever, folds in levers.items():
            for corpus, fold in folds.items():
                adapted = fold.get("uses_test_audio")
                features = {"loco": model, "loco_grid": "fusion_stats features", "loco_levers": "GE2E statistics",
                            "loco_adaptation": "GE2E statistics", "loco_more_levers": "GE2E statistics",
                            "loco_channel_levers": "GE2E statistics", "loco_unseen_channels": "GE2E statistics",
                            "loco_functionals": "openSMILE functionals"}[grid]
                row = {**base, "run": f"{base['run']}#{grid}/{lever}/{corpus}",
                       "command": public_paths(commands.get(grid, summary["command"])),
                       "system": f"{features} {'probe' if grid == 'loco' else lever}, front end {fe}, "
                                 "leave-one-corpus-out",
                       "corpus": corpus, "train_corpora": fold["train_corpora"], "classes": fold["class_names"],
                       "protocol": _lever_protocol(grid, lever, adapted),
                       "uses_test_speaker_audio": bool(adapted), "ua_pooled": round(100 * fold["ua"], 2),
                       "wa_pooled": round(100 * fold["wa"], 2), "n_utterances": fold["n_test"]}
                if fold.get("explored"):  # not a selection on the training corpora alone: say so in the row
                    row["explored"] = fold["explored"]
                if fold.get("variant"):  # a lever chosen among variants on the training corpora: which one
                    row["chosen_variant"] = fold["variant"]
                rows.append(row)
    return rows


def _lever_protocol(grid, lever, adapted):
    if grid in ("loco_more_levers", "loco_channel_levers", "loco_unseen_channels", "loco_functionals"):
        return training_side_levers.lever_protocol(lever)
    if grid == "loco_adaptation":
        n = lever.rsplit("_n", 1)[1]
        which = ("all of its files" if n == "all"
                 else f"{n} of its files drawn at random (mean of {ADAPTATION_DRAWS} draws)")
        return ("leave-one-corpus-out; trained on the six emotions all three corpora have, each training speaker "
                "standardised with its own statistics, C chosen by leaving one training corpus out; each test speaker "
                f"standardised with the statistics of {which} (unlabelled; keras_ser.adapt's shrinkage), scored among "
                "the four shared emotions; uses the test speaker's unlabelled audio")
    if grid != "loco_levers":
        return ("leave-one-corpus-out, C chosen by leaving one training corpus out"
                + (f"; uses the test {adapted}'s unlabelled audio" if adapted else ""))
    trained = {"shared4": "the four shared emotions", "shared6": "the six emotions all three corpora have",
               "every": "every class of the training corpora"}[lever.split("_")[1]]
    if lever.endswith("averaged_C"):
        chosen = f"logits averaged over C = {', '.join(f'{c:g}' for c in AVERAGED_C)} (range read off the test corpora)"
    elif lever.endswith("corpora"):
        chosen = "C chosen by leaving one training corpus out"
    else:
        chosen = "C chosen by five folds of whole training speakers"
    return (f"leave-one-corpus-out; trained on {trained} of the training corpora, scored among the four shared "
            f"emotions; {chosen}")


GRID_KEYS = ("emodb_to", "loco", "loco_grid", "loco_grid6", "loco_levers", "loco_adaptation", "loco_more_levers",
             "loco_channel_levers", "loco_unseen_channels", "loco_functionals")


def write_leaderboard(path, run_root, runner_runs=(), merge=False):
    """Writes the cross-corpus rows into the leaderboard `path` (`"table": "cross_corpus"`; `run` unique per row)
    and refreshes the ranking block of the results.md beside it.

    The rows are those of the runner folders `runner_runs`
    (`--leaderboard_runs`) and of every summary under `run_root`. With
    `merge=False` they replace every cross-corpus row of the leaderboard;
    with `merge=True` (`--merge_leaderboard`) only the rows of the same runs,
    the others staying as they are. Returns the rows written.
    """
    import glob

    from reproduce import leaderboard  # experiments/reproduce/: the leaderboard's reader and writer

    rows = [row for run in runner_runs for row in _run_rows(run)]
    for summary in sorted(glob.glob(os.path.join(run_root, "*", "*", "summary.json"))):
        rows.extend(_summary_rows(summary))
    old = leaderboard.load(path)
    if merge:
        board = leaderboard.merge(old, rows)
    else:
        board = [row for row in old if row.get("table") != "cross_corpus"] + rows
    leaderboard.write(path, board)
    print(f"{len(rows)} cross-corpus rows written to {path}"
          + (f" ({len(board) - len(old)} new, the rest replacing rows of the same runs)" if merge else ""))
    return rows


def main(argv):
    del argv
    if FLAGS.leaderboard_runs or FLAGS.merge_leaderboard:
        write_leaderboard(FLAGS.leaderboard, FLAGS.run_root, FLAGS.leaderboard_runs, merge=FLAGS.merge_leaderboard)
        return None
    front_end = front_end_config()
    name = front_end_name(front_end)
    data = extract(read_corpora(), front_end)
    summary_path = FLAGS.summary or os.path.join(FLAGS.run_root, FLAGS.model, name, "summary.json")
    os.makedirs(os.path.dirname(summary_path), exist_ok=True)
    summary = {}
    if os.path.exists(summary_path):
        with open(summary_path) as handle:
            summary = json.load(handle)
    command = " ".join(sys.argv)
    # Grids of a summary written before it kept a command per grid were made by its last command.
    for grid in GRID_KEYS:
        if grid in summary and "command" in summary:
            summary.setdefault("commands", {}).setdefault(grid, summary["command"])
    summary.update({"front_end": None if front_end is None else front_end.to_dict(), "command": command})
    # Each grid keeps the command that made it (a later run of other grids updates the same summary).
    summary.setdefault("commands", {}).update({grid: command for grid in FLAGS.grids})
    if "emodb_to" in FLAGS.grids and "emodb" in data:
        summary["emodb_to"] = emodb_to(data)
    if "loco" in FLAGS.grids:
        summary["loco"] = loco(data)
    if "loco_grid" in FLAGS.grids:
        summary["loco_grid"] = loco_grid(data)
    if "loco_grid6" in FLAGS.grids:
        summary["loco_grid6"] = loco_grid(data, SHARED6)
    if "loco_levers" in FLAGS.grids:
        summary["loco_levers"] = loco_levers(data)
    if "loco_adaptation" in FLAGS.grids:
        summary["loco_adaptation"] = loco_adaptation(data)
    if "loco_more_levers" in FLAGS.grids:
        summary["loco_more_levers"] = training_side_grid(front_end, "loco_more_levers")
    if "loco_channel_levers" in FLAGS.grids:
        summary["loco_channel_levers"] = training_side_grid(front_end, "loco_channel_levers")
    if "loco_unseen_channels" in FLAGS.grids:
        summary["loco_unseen_channels"] = training_side_grid(front_end, "loco_unseen_channels")
    if "loco_functionals" in FLAGS.grids:
        summary["loco_functionals"] = training_side_grid(front_end, "loco_functionals")
    from tf_pipeline.atomic import write_json_atomic

    write_json_atomic(summary_path, summary)
    print(f"summary: {summary_path}")


if __name__ == "__main__":
    app.run(main)
