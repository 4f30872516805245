#!/usr/bin/env python
"""Speaker adaptation at inference on EMO-DB LOSO: how many utterances of a speaker it needs.

USES THE TEST SPEAKER'S UNLABELLED AUDIO (the adapted rows). For each of the
10 leave-one-speaker-out folds, on the frozen encoder's pooled features of
`encoder_stats` (cached, `keras_ser.training.frozen.corpus_features`):

- reference: the `probe` recipe as shipped (global standardisation with the
  training speakers' statistics, `fit_probe` on raw pooled features);
- adapted: every training speaker standardised with its own mean and
  variance, `fit_probe` on that; the prior variance `v0` = the mean of the
  training speakers' variances; the shrinkage weight `k` of
  `keras_ser.adaptation.shrink_statistics` chosen by inner
  leave-one-speaker-out over the training speakers only (held-out training
  speaker adapted from 1 and 3 random utterances). At test, the test
  speaker's utterances are standardised with statistics of `n` of its
  utterances drawn at random (n in 1, 3, 10, all; `--draws` seeded draws;
  all utterances are then predicted, the drawn ones included), with the
  chosen `k` ("shrunk") and without shrinkage ("own variance"; with n = 1:
  the prior variance, i.e. centring only).

Pooled UA/WA over the 10 folds per draw, mean and std over draws, into a JSON
and a printed table.

    .venv/bin/python experiments/speaker_adaptation.py --out=runs/speaker_adaptation.json
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
DEFAULT_DATA_DIR = os.path.join(os.path.dirname(ROOT), "shared", "data", "emodb", "wav")
N_UTTERANCES = (1, 3, 10, "all")
PRIOR_WEIGHTS = (0.5, 1.0, 3.0, 10.0, 30.0)


def per_speaker(features, speakers):
    """`{speaker: (mean, variance)}` over each speaker's utterances (ddof 0)."""
    return {s: (features[speakers == s].mean(0), features[speakers == s].var(0)) for s in np.unique(speakers)}


def standardise_own(features, speakers):
    out = np.empty_like(features, dtype=np.float64)
    for s, (mean, var) in per_speaker(features, speakers).items():
        out[speakers == s] = (features[speakers == s] - mean) / np.sqrt(np.maximum(var, 1e-14))
    return out


def predict(probe, z):
    from keras_ser.adaptation import fold_probe

    kernel, bias = fold_probe(probe)
    return np.argmax(z @ kernel + bias, axis=1)


def adapted_z(features, draw, prior_var, weight):
    from keras_ser.adaptation import shrink_statistics

    mean, var = shrink_statistics(features[draw], prior_var, weight)
    return (features - mean) / np.sqrt(np.maximum(var, 1e-14))


def fit_lr(z, labels, c, num_classes, seed=0):
    """One probe at a fixed C (the inner choice of the shrinkage weight)."""
    from keras_ser.training.frozen import regression_weights
    from keras_ser.training.regressions import fit_standardized

    scaler, classifier = fit_standardized(z, labels, c, seed)
    kernel, bias = regression_weights(classifier, z.shape[1], num_classes)
    return {"mean": scaler.mean_, "variance": scaler.var_, "kernel": kernel, "bias": bias}


def choose_weight(features, labels, speakers, c, num_classes, rng, draws):
    """The shrinkage weight with the best mean UA over inner folds (training speakers only), n in 1 and 3."""
    from keras_ser.training import scores

    ua = {w: [] for w in PRIOR_WEIGHTS}
    for held in np.unique(speakers):
        train = speakers != held
        prior = np.mean([v for _, v in per_speaker(features[train], speakers[train]).values()], axis=0)
        probe = fit_lr(standardise_own(features[train], speakers[train]), labels[train], c, num_classes)
        x, y = features[~train], labels[~train]
        for n in (1, 3):
            for _ in range(draws):
                draw = rng.choice(len(x), size=min(n, len(x)), replace=False)
                for w in PRIOR_WEIGHTS:
                    ua[w].append(scores.unweighted_accuracy(y, predict(probe, adapted_z(x, draw, prior, w)),
                                                            num_classes))
    means = {w: float(np.mean(v)) for w, v in ua.items()}
    return max(PRIOR_WEIGHTS, key=lambda w: (means[w], -w)), means


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=DEFAULT_DATA_DIR, help="EMO-DB wav folder.")
    parser.add_argument("--cache_dir", default=os.path.join(ROOT, "runs", "feature_cache"),
                        help="Pooled-feature cache (corpus_features).")
    parser.add_argument("--draws", type=int, default=10, help="Random draws of the adaptation utterances per n.")
    parser.add_argument("--inner_draws", type=int, default=3, help="Draws per n when choosing the weight.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speakers", default=None, help="Comma-separated test speakers (default: all).")
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "speaker_adaptation.json"))
    args = parser.parse_args(argv)

    import tf_pipeline
    from keras_ser.training import frozen
    from keras_ser.training import scores
    from keras_ser.training.config import TrainConfig
    from keras_ser.models.speech_encoders.config import MelFramesConfig

    start = time.time()
    corpus = tf_pipeline.corpora.READERS["emodb"](args.data_dir)
    config = TrainConfig(model="encoder_stats", recipe="probe")
    features = frozen.corpus_features(corpus, config, MelFramesConfig(), cache_dir=args.cache_dir, log=print)
    features = np.asarray(features, np.float64)
    labels = np.asarray(corpus.labels)
    speakers = np.array([r.speaker for r in corpus.records])
    num_classes = len(corpus.class_names)
    test_speakers = args.speakers.split(",") if args.speakers else list(corpus.speakers)
    rng = np.random.default_rng(args.seed)

    reference_pred = {}
    adapted = {}  # (variant, n) -> list over draws of {speaker: predictions}
    folds = []
    for speaker in test_speakers:
        t0 = time.time()
        train, test = speakers != speaker, speakers == speaker
        ref_probe = frozen.fit_probe(features[train], labels[train], speakers[train], num_classes)
        reference_pred[speaker] = predict(ref_probe, features[test])
        z_train = standardise_own(features[train], speakers[train])
        probe = frozen.fit_probe(z_train, labels[train], speakers[train], num_classes)
        prior = np.mean([v for _, v in per_speaker(features[train], speakers[train]).values()], axis=0)
        weight, inner = choose_weight(features[train], labels[train], speakers[train], probe["C"], num_classes,
                                      rng, args.inner_draws)
        x = features[test]
        for n in N_UTTERANCES:
            for d in range(1 if n == "all" else args.draws):
                draw = np.arange(len(x)) if n == "all" else rng.choice(len(x), size=min(n, len(x)), replace=False)
                for variant, w in (("shrunk", weight), ("own", 1e12 if n == 1 else 0.0)):
                    # own variance; n = 1: the prior variance (weight -> infinity), i.e. centring only
                    key = (variant, str(n))
                    adapted.setdefault(key, [{} for _ in range(1 if n == "all" else args.draws)])
                    adapted[key][d][speaker] = predict(probe, adapted_z(x, draw, prior, w))
        folds.append({"test_speaker": speaker, "C_reference": ref_probe["C"], "C_adapted": probe["C"],
                      "prior_weight": weight, "inner_ua_by_weight": {str(k): round(v, 4) for k, v in inner.items()},
                      "seconds": round(time.time() - t0, 1)})
        print(f"fold {speaker}: C ref {ref_probe['C']} adapted {probe['C']}, prior weight {weight} "
              f"({time.time() - t0:.0f} s)", flush=True)

    def pooled(preds):
        y = np.concatenate([labels[speakers == s] for s in test_speakers])
        p = np.concatenate([preds[s] for s in test_speakers])
        return scores.unweighted_accuracy(y, p, num_classes), scores.weighted_accuracy(y, p)

    ua, wa = pooled(reference_pred)
    rows = [{"system": "global standardisation (probe as shipped, no test audio)", "n": 0, "variant": "reference",
             "ua": round(100 * ua, 2), "wa": round(100 * wa, 2), "ua_std": 0.0, "draws": 1}]
    for (variant, n), draws in adapted.items():
        values = np.array([pooled(p) for p in draws]) * 100
        rows.append({"system": f"per-speaker, {variant}", "n": n, "variant": variant,
                     "ua": round(float(values[:, 0].mean()), 2), "wa": round(float(values[:, 1].mean()), 2),
                     "ua_std": round(float(values[:, 0].std()), 2), "wa_std": round(float(values[:, 1].std()), 2),
                     "draws": len(draws)})
    result = {
        "uses_test_speaker_audio": True,
        "rows": rows,
        "folds": folds,
        "command": "python experiments/speaker_adaptation.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version()},
        "wall_time_s": round(time.time() - start, 1),
        "speakers": test_speakers,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=1)
    print(f"{'system':40s} {'n':>4s} {'UA':>13s} {'WA':>13s}")
    for row in rows:
        print(f"{row['system']:40s} {str(row['n']):>4s} {row['ua']:6.2f}±{row['ua_std']:<5.2f} "
              f"{row['wa']:6.2f}±{row.get('wa_std', 0.0):<5.2f}")
    print(f"written {args.out} ({result['wall_time_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
