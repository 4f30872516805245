r"""Cross-corpus experiments on frozen fusion statistics: EMO-DB, RAVDESS and EMOVO.

Every system here is the `fusion_stats` probe (the GE2E speech encoder and
the sound-effects CNN, frozen; mean + std statistics; standardisation and a
logistic regression) on pooled features extracted once per corpus and front
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

SHARED4 = ("anger", "happiness", "sadness", "neutral")

FLAGS = flags.FLAGS
flags.DEFINE_string("emodb_dir", None, "EMO-DB wav folder.")
flags.DEFINE_string("ravdess_dir", None, "RAVDESS folder (Actor_01 .. Actor_24).")
flags.DEFINE_string("emovo_dir", None, "EMOVO folder (f1 .. m3).")
flags.DEFINE_enum("front_end", "speech", ["speech", "none"], "The speech front end of the features.")
flags.DEFINE_float("trim_db", None, "With --front_end=speech: trimming threshold in dB (default the config's).")
flags.DEFINE_float("level_dbfs", None, "With --front_end=speech: RMS level in dBFS (default the config's).")
flags.DEFINE_string("cache_dir", "runs/cache", "Feature cache folder.")
flags.DEFINE_string("run_root", "runs/cross_corpus", "Folder of the run folders.")
flags.DEFINE_list("grids", ["emodb_to", "loco"], "Grids to run: emodb_to, loco, loco_levers.")
flags.DEFINE_string("summary", None, "Summary JSON (default <run_root>/<front end>/summary.json).")


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
    from tf_pipeline.config import FusionFeatureConfig
    from tf_pipeline.corpora import to_shared_vocabulary

    config = TrainConfig(model="fusion_stats", recipe="probe", validation="none")
    feature_config = FusionFeatureConfig(front_end=front_end)
    out = {}
    for name, corpus in corpora_by_name.items():
        start = time.time()
        features = frozen.corpus_features(corpus, config, feature_config, cache_dir=FLAGS.cache_dir, log=log)
        shared = to_shared_vocabulary(corpus)
        labels = np.array([shared.class_names[r.label] for r in shared.records])
        out[name] = (features, labels, np.array([r.speaker for r in corpus.records]), corpus.paths)
        log(f"{name}: {features.shape} features ready ({time.time() - start:.0f} s)")
    return out


def scores(true, predicted, classes):
    """WA, UA and per-class recall over `classes` (names)."""
    true, predicted = np.asarray(true), np.asarray(predicted)
    recall = {c: float(np.mean(predicted[true == c] == c)) for c in classes if np.any(true == c)}
    return {"wa": float(np.mean(true == predicted)), "ua": float(np.mean(list(recall.values()))), "recall": recall}


def probe_predict(probe, features):
    z = (features - probe["mean"]) / np.sqrt(np.maximum(probe["variance"], 1e-12))
    if "basis" in probe:
        z = z - (z @ probe["basis"]) @ probe["basis"].T
    return z @ probe["kernel"] + probe["bias"]


def fit(features, labels, groups, classes, weights=None):
    from keras_ser.training.frozen import fit_probe

    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for c in labels])
    return fit_probe(features, y, groups, len(classes), sample_weight=weights) if weights is not None else \
        fit_probe(features, y, groups, len(classes))


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
        logits = probe_predict(probe, x[keep])[:, shared]
        predicted = np.array(SHARED4)[np.argmax(logits, axis=1)]
        results[name] = scores(y[keep], predicted, SHARED4)
        log(f"EMO-DB probe -> {name}: UA {results[name]['ua']:.3f} WA {results[name]['wa']:.3f} "
            f"recall {json.dumps({k: round(v, 3) for k, v in results[name]['recall'].items()})}")
    return {"C": probe["C"], "results": results}


def loco(data, lever="none", classes=SHARED4, log=print):
    """Leave one corpus out over `classes`; C by leaving one training corpus out."""
    names = list(data)
    rows = {n: np.isin(data[n][1], classes) for n in names}
    per_corpus = {}
    for test in names:
        start = time.time()
        train = [n for n in names if n != test]
        x = np.concatenate([data[n][0][rows[n]] for n in train])
        y = np.concatenate([data[n][1][rows[n]] for n in train])
        groups = np.concatenate([np.full(int(rows[n].sum()), n) for n in train])
        speakers = np.concatenate([np.char.add(f"{n}.", data[n][2][rows[n]].astype(str)) for n in train])
        x_test, y_test = data[test][0][rows[test]], data[test][1][rows[test]]
        weights = None
        if lever == "corpus_standardized":  # uses the test corpus's unlabelled audio
            x = standardized_per(x, groups)
            x_test = standardized_per(x_test, np.zeros(len(x_test)))
        elif lever == "speaker_standardized":  # uses each test speaker's unlabelled audio
            x = standardized_per(x, speakers)
            x_test = standardized_per(x_test, data[test][2][rows[test]])
        elif lever == "corpus_balanced":
            counts = {n: int(np.sum(groups == n)) for n in train}
            weights = np.array([len(groups) / (len(train) * counts[g]) for g in groups])
        probe = fit(x, y, groups, list(classes), weights)
        predicted = np.array(classes)[np.argmax(probe_predict(probe, x_test), axis=1)]
        result = scores(y_test, predicted, classes)
        per_corpus[test] = fold_record(test, train, classes, "leave-one-corpus-out", result, len(x), len(x_test),
                                       time.time() - start, lever, {"C": probe["C"], "inner_ua": probe["inner_ua"]})
        log(f"LOCO [{lever}] test {test}: UA {result['ua']:.3f} WA {result['wa']:.3f} C={probe['C']} "
            f"({time.time() - start:.0f} s)")
    return per_corpus


def main(argv):
    del argv
    front_end = front_end_config()
    name = front_end_name(front_end)
    data = extract(read_corpora(), front_end)
    summary_path = FLAGS.summary or os.path.join(FLAGS.run_root, name, "summary.json")
    os.makedirs(os.path.dirname(summary_path), exist_ok=True)
    summary = {}
    if os.path.exists(summary_path):
        with open(summary_path) as handle:
            summary = json.load(handle)
    summary.update({"front_end": None if front_end is None else front_end.to_dict(),
                    "command": " ".join(sys.argv)})
    if "emodb_to" in FLAGS.grids and "emodb" in data:
        summary["emodb_to"] = emodb_to(data)
    if "loco" in FLAGS.grids:
        summary["loco"] = loco(data)
    if "loco_levers" in FLAGS.grids:
        for lever in ("corpus_balanced", "corpus_standardized", "speaker_standardized"):
            summary[f"loco_{lever}"] = loco(data, lever)
    from keras_ser.training.atomic import write_json_atomic

    write_json_atomic(summary_path, summary)
    print(f"summary: {summary_path}")


if __name__ == "__main__":
    app.run(main)
