#!/usr/bin/env python
"""A speaker-invariance lever without the test speaker's audio: nearest-training-speaker normalisation.

Per-speaker standardisation with the test speaker's own unlabelled audio
helps a lot on EMO-DB (docs/speech_encoder.md, speaker adaptation), but
needs that audio. This script tries the nearest thing that does not: each
utterance is standardised with the statistics of the `k` training speakers
whose average voice is nearest to it. "Voice" is the speaker-encoder part of
the pooled features (the GE2E network was trained to tell speakers apart);
the statistics standardise all pooled features of the chosen model. Training
utterances use the nearest *other* training speakers (their own speaker is
never available at test time either), so training and test see the same
transformation. Then the usual probe (`keras_ser.training.frozen.fit_probe`,
C chosen by leave-one-speaker-out over the training speakers). Every statistic
comes from the training speakers of the fold; nothing is chosen on the test
speaker, and every `k` asked for is reported (none is picked). `k` itself is
not chosen on the training speakers, so its values are compared on the test
folds only: the leaderboard marks these rows `chosen_on_test_folds` and does
not rank them.

    .venv/bin/python experiments/nearest_speaker_norm.py --data_dir=/data/emodb/wav --model=fusion_stats \\
        --k=0,2,4 --reference_run=runs/reproduce/cpu/encoder_stats_probe --json=runs/nearest_speaker_norm.json

With `--leaderboard=docs/results.json` each `k > 0` becomes an entry of the
leaderboard (replacing its previous entry); `--report_only` writes those
entries from an existing `--json` without computing anything.

`k=0` is the plain probe on the same features. Each `k > 0` gets paired
t-tests over the folds (`keras_ser.training.report.paired_ttest`, per-fold WA
and UA) against `k=0` and, with `--reference_run`, against that finished
LOSO run folder (e.g. the GE2E probe of `python -m experiments.reproduce --table=speech`).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# The speaker encoder's pooled statistics come first in both encoder_stats and fusion_stats features.
VOICE_FEATURES = 1536


def nearest_speaker_normalised(features, voices, speakers, train, k):
    """`features` standardised per utterance with the statistics of its `k` nearest training speakers.

    Args:
        features: float `[n, d]`, every utterance of the corpus.
        voices: float `[n, v]`, the features that locate a voice.
        speakers: `[n]` speaker ids.
        train: bool `[n]`, the fold's training utterances (the only source of statistics).
        k: int >= 1.
    """
    pool = sorted(set(speakers[train]))
    floor = 0.1 * features[train].std(axis=0) + 1e-8  # speakers with a nearly constant feature
    means = np.stack([features[speakers == s].mean(axis=0) for s in pool])
    stds = np.stack([features[speakers == s].std(axis=0) for s in pool]) + floor
    scale = voices[train].std(axis=0) + 1e-8
    centres = np.stack([voices[speakers == s].mean(axis=0) for s in pool]) / scale
    distances = np.linalg.norm(voices[:, None, :] / scale - centres[None], axis=-1)  # [n, speakers]
    distances[np.asarray(speakers)[:, None] == np.asarray(pool)[None, :]] = np.inf  # never one's own speaker
    nearest = np.argsort(distances, axis=1)[:, :k]
    return (features - means[nearest].mean(axis=1)) / stds[nearest].mean(axis=1)


def reference_folds(run_dir):
    """Per-fold WA and UA of a finished LOSO run folder (`fold_<speaker>.json`)."""
    import glob

    folds = {"wa": {}, "ua": {}}
    for path in glob.glob(os.path.join(run_dir, "fold_*.json")):
        with open(path) as handle:
            fold = json.load(handle)
        folds["wa"][fold["test_speaker"]], folds["ua"][fold["test_speaker"]] = fold["wa"], fold["ua"]
    return folds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="EMO-DB wav folder.")
    parser.add_argument("--model", default="fusion_stats", choices=["encoder_stats", "fusion_stats"])
    parser.add_argument("--k", default="0,2,4", help="Comma-separated numbers of nearest speakers (0: none).")
    parser.add_argument("--cache_dir", default=os.path.join(ROOT, "runs", "feature_cache"))
    parser.add_argument("--reference_run", default=None, help="A finished LOSO run folder to t-test against.")
    parser.add_argument("--json", default=None, help="Write the results here as JSON.")
    parser.add_argument("--leaderboard", default=None, help="Add the k > 0 rows to this results.json leaderboard.")
    parser.add_argument("--report_only", action="store_true",
                        help="Compute nothing: write the --leaderboard entries from the existing --json.")
    args = parser.parse_args(argv)
    if args.report_only:
        if not (args.json and args.leaderboard):
            parser.error("--report_only needs --json (the results to read) and --leaderboard")
        with open(args.json) as handle:
            stored = json.load(handle)
        write_leaderboard(args.leaderboard, stored["model"], stored["results"], stored["command"])
        return 0

    import tf_pipeline
    from keras_ser.training import scores
    from keras_ser.training.report import paired_ttest
    from keras_ser.training.config import TrainConfig
    from keras_ser.training.frozen import corpus_features
    from keras_ser.training.frozen import fit_probe
    from keras_ser.training.frozen import probe_logits
    from keras_ser.training.loso import feature_config_for

    corpus = tf_pipeline.corpora.emodb(args.data_dir)
    config = TrainConfig(model=args.model, recipe="probe", validation="none", batch_size=16)
    features = corpus_features(corpus, config, feature_config_for(config), cache_dir=args.cache_dir).astype(np.float64)
    labels = np.asarray(corpus.labels)
    speakers = np.array([record.speaker for record in corpus.records])
    voices = features[:, :VOICE_FEATURES]
    results = {}
    for k in (int(value) for value in args.k.split(",")):
        start = time.time()
        predicted = np.empty_like(labels)
        per_fold = {"wa": {}, "ua": {}}
        for speaker in sorted(set(speakers)):
            train, test = speakers != speaker, speakers == speaker
            x = features if k == 0 else nearest_speaker_normalised(features, voices, speakers, train, k)
            probe = fit_probe(x[train], labels[train], speakers[train], corpus.num_classes)
            predicted[test] = np.argmax(probe_logits(probe, x[test], epsilon=1e-14), axis=1)
            per_fold["wa"][speaker] = scores.weighted_accuracy(labels[test], predicted[test])
            per_fold["ua"][speaker] = scores.unweighted_accuracy(labels[test], predicted[test], corpus.num_classes)
        results[f"k={k}"] = {"wa": scores.weighted_accuracy(labels, predicted),
                             "ua": scores.unweighted_accuracy(labels, predicted, corpus.num_classes),
                             "per_fold": per_fold, "seconds": round(time.time() - start, 1)}
        print(f"{args.model} k={k}: UA {100 * results[f'k={k}']['ua']:.1f}  WA {100 * results[f'k={k}']['wa']:.1f}"
              f"  ({results[f'k={k}']['seconds']:.0f} s)", flush=True)
    references = {"k=0": results.get("k=0", {}).get("per_fold")}
    if args.reference_run:
        references[os.path.basename(os.path.normpath(args.reference_run))] = reference_folds(args.reference_run)
    for name, result in results.items():
        if name == "k=0":
            continue
        result["ttests"] = {}
        for reference, folds in references.items():
            if not folds:
                continue
            speakers = sorted(set(folds["ua"]) & set(result["per_fold"]["ua"]))
            result["ttests"][reference] = {
                metric: paired_ttest([folds[metric][s] for s in speakers], [result["per_fold"][metric][s] for s in speakers])
                for metric in ("wa", "ua")}
            test = result["ttests"][reference]
            print(f"{name} vs {reference} over {len(speakers)} folds: WA {100 * test['wa']['difference']:+.1f} "
                  f"(p {test['wa']['p']:.3f}), UA {100 * test['ua']['difference']:+.1f} (p {test['ua']['p']:.3f})")
    command = " ".join(["python", "experiments/nearest_speaker_norm.py"] + sys.argv[1:])
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"model": args.model, "command": command, "results": results}, handle, indent=1)
    if args.leaderboard:
        write_leaderboard(args.leaderboard, args.model, results, command)
    return 0


def test_fold_choice(ks):
    """Why the rows of the values `ks` of k count as chosen on the test folds (the leaderboard's reason)."""
    return (f"k is not chosen on the training speakers: the values run (k = {', '.join(str(k) for k in ks)}) are "
            "compared on the test folds only, and ranking them would pick k there")


def write_leaderboard(path, model, results, command):
    """Replaces (or adds) this script's rows in a `docs/results.json` leaderboard (and its ranking block in the
    results.md beside it); every row is marked chosen on the test folds, none is ranked."""
    import platform

    from experiments.reproduce import leaderboard  # the leaderboard's format, merge and writer
    from experiments.reproduce import protocols

    ks = [int(name.split("=")[1]) for name in results if name != "k=0"]
    new = []
    for name, result in results.items():
        if name == "k=0":
            continue
        k = int(name.split("=")[1])
        folds = sorted(result["per_fold"]["ua"])
        ua, wa = [result["per_fold"]["ua"][s] for s in folds], [result["per_fold"]["wa"][s] for s in folds]
        new.append({
            "system": f"{model}, probe, nearest-training-speaker normalisation (k={k})",
            "table": "speech", "tables": ["speech"],
            "run": f"experiments/nearest_speaker_norm.py {model} k={k}",
            "corpus": "emodb", "preset": None, "folds": folds, "n_utterances": 535,
            "wa_pooled": round(100 * result["wa"], 2), "ua_pooled": round(100 * result["ua"], 2),
            "wa_mean": round(100 * float(np.mean(wa)), 2), "wa_std": round(100 * float(np.std(wa, ddof=1)), 2),
            "ua_mean": round(100 * float(np.mean(ua)), 2), "ua_std": round(100 * float(np.std(ua, ddof=1)), 2),
            "per_fold": [{"speaker": s, "wa": round(100 * result["per_fold"]["wa"][s], 2),
                          "ua": round(100 * result["per_fold"]["ua"][s], 2)} for s in folds],
            "ttests": {ref: {m: {key: round(t[m][key], 4) for key in ("difference", "t", "p")} for m in ("wa", "ua")}
                       for ref, t in result.get("ttests", {}).items()},
            "paper": None, "uses_test_speaker_audio": False,
            "chosen_on_test_folds": True, "chosen_on_test_folds_reason": test_fold_choice(ks),
            "command": protocols.public_command(command),
            "machine": f"CPU, {os.cpu_count()} cores ({platform.machine()})",
            "protocol": (f"each utterance standardised with the mean pooled-feature statistics of its {k} nearest "
                         "training speakers (nearest by the GE2E part of the features; training utterances: their "
                         "nearest other training speakers), then the probe of encoder_stats (C chosen by "
                         "leave-one-speaker-out over the training speakers); k fixed, not chosen."),
            "source": "experiments/nearest_speaker_norm.py",
        })
    leaderboard.write(path, leaderboard.merge(leaderboard.load(path), new))


if __name__ == "__main__":
    sys.exit(main())
