#!/usr/bin/env python
"""Trains a shipped preset: the configuration of a finished LOSO run, fitted on every speaker.

The preset is the same configuration the LOSO run evaluated (its `run.json`
holds the `TrainConfig` and the feature config), trained by
`keras_ser.training.train_final` on all speakers of the corpus (no test
speaker is left: the LOSO run is its honest estimate). It is written to
`keras_ser/presets/<name>/` (`preset.json` + `head.npz`); the backbone's
weights are not copied (they ship once, with the backbone). `preset.json`
records the LOSO figures of the run (pooled and per fold), the command of
the run and this command.

    .venv/bin/python experiments/make_preset.py --data_dir=/data/emodb/wav \\
        --loso_run=runs/reproduce/cpu/encoder_stats_probe --name=encoder_stats_emodb

Several corpora combine (`--corpus=emodb,ravdess,emovo` with one folder
each in `--data_dir`, `--classes` to choose the emotions; the run is then a
leave-one-corpus-out run), and `--score_on` stores the preset's figures on
other corpora, over the emotions it shares with each, in `preset.json`
(`cross_corpus`). The licences of the training corpora go into its
`license` entry.
"""

import argparse
import dataclasses
import json
import os
import re
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MODEL_DESCRIPTION = {
    "encoder_stats": "Frozen GE2E speech encoder + statistics pooling of its three LSTM layers + logistic regression",
    "fusion_stats": ("Frozen GE2E speech encoder and aisfx sound-effects CNN side by side + statistics pooling of "
                     "the encoder's three LSTM layers and the CNN's top block + logistic regression"),
}
# The emotions every corpus here has, and the scale of the cross-corpus figures.
FOUR_EMOTIONS = ("anger", "happiness", "sadness", "neutral")
CORPUS_NAMES = {"emodb": "EMO-DB", "ravdess": "RAVDESS", "emovo": "EMOVO", "casia": "CASIA"}
# What a preset trained on each corpus must say about it.
CORPUS_LICENCES = {
    "emodb": "EMO-DB (Berlin Database of Emotional Speech, Burkhardt et al. 2005), free for research",
    "ravdess": ("RAVDESS (Livingstone & Russo 2018), CC BY-NC-SA 4.0: attribution, non-commercial use only, "
                "share-alike; this preset's head is derived from it and carries that licence"),
    "emovo": "EMOVO (Costantini et al. 2014), distributed by its authors for research",
}


def public_paths(command):
    """A command with the corpus folders written as /data/<corpus>/...: where they lie here is nobody else's business."""
    return re.sub(r"/[^\s,=]*?/data/", "/data/", command)


def _placeholder(corpus_name):
    return "/data/emodb/wav" if corpus_name == "emodb" else f"/data/{corpus_name}"


def describe(model, corpus, speaker_norm=False, levers=()):
    """The preset's one-line description: the model, the corpora, speakers and emotions it was trained on, and any
    training levers (`TrainConfig.levers()` of a config without per-speaker normalisation, e.g. channel copies);
    `speaker_norm` adds how to adapt the preset to a speaker."""
    names = corpus.corpora or (corpus.name,)
    where = " + ".join(CORPUS_NAMES.get(name, name) for name in names)
    adapted = ""
    if speaker_norm:
        adapted = ("; every speaker standardised with its own statistics: adapt it to a speaker before predicting "
                   "(keras_ser.adapt, keras-ser predict --adapt_speaker, the serve_speaker signature)")
    extra = "".join(f"; {lever}" for lever in levers)
    return (f"{MODEL_DESCRIPTION[model]}, trained on all {len(corpus.speakers)} speakers of {where} "
            f"({len(corpus.class_names)} emotions: {', '.join(corpus.class_names)}){extra}{adapted}")


def licence(model, corpus):
    names = corpus.corpora or (corpus.name,)
    return ("GE2E encoder weights: resemblyzer package, Apache-2.0 (see NOTICE). "
            + ("Sound-effects CNN weights: aisfx package, CC BY 4.0, Ma & Lerch (see NOTICE). "
               if model in ("sfx_stats", "fusion_stats") else "")
            + "Head trained by keras-ser on " + "; ".join(CORPUS_LICENCES.get(name, name) for name in names) + ".")


def cross_corpus_scores(model, config, feature_config, score_on, cache_dir=None, log=print):
    """The preset's figures on other corpora: over anger, happiness, sadness and neutral, and over every emotion it shares with each.

    The pooled features of each corpus are extracted with the preset's own
    front end and encoders (`corpus_features`, cached) and read by its head,
    which is what the whole model computes from the audio.
    """
    import tf_pipeline
    from keras_ser.training.cross_corpus import score_probabilities
    from keras_ser.training.frozen import corpus_features

    scores = {}
    for name, data_dir in score_on:
        corpus = tf_pipeline.corpora.READERS[name](data_dir)
        features = corpus_features(corpus, config, feature_config, cache_dir=cache_dir, log=log)
        probabilities = np.asarray(model.head_model()(features))
        scores[name] = {}
        for key, classes in (("four_emotions", FOUR_EMOTIONS), ("shared_emotions", None)):
            classes = classes if classes is None or set(classes) <= set(model.class_names) else None
            result = score_probabilities(probabilities, list(model.class_names), corpus, classes)
            scores[name][key] = result
            log(f"{name}: UA {result['ua']} / WA {result['wa']} over {result['classes']} ({result['n']} files)")
    return scores


def loso_summary(run_dir, among=None):
    """The LOSO figures a preset records, from a finished run folder.

    With `among` (class names), also each fold's figures scored among those
    classes alone (`keras_ser.training.report.scores_among`), under `among`.
    """
    from keras_ser.training import report

    summary = report.summarise(run_dir)
    extra = {}
    if among:
        per_fold = []
        for fold in report.load_folds(run_dir):
            scored = report.scores_among(fold, among)
            per_fold.append({"speaker": fold["test_speaker"], "ua": round(100 * scored["ua"], 2),
                             "wa": round(100 * scored["wa"], 2), "n": scored["n"],
                             "recall": {k: round(100 * v, 2) for k, v in scored["recall"].items()}})
        extra["among"] = {"classes": list(among), "per_fold": per_fold,
                          "ua_mean": round(float(np.mean([f["ua"] for f in per_fold])), 2)}
    return {
        "run": os.path.basename(os.path.normpath(run_dir)),
        "corpus": summary["corpus"],
        "folds": [fold["test_speaker"] for fold in summary["folds"]],
        "ua_pooled": round(100 * summary["pooled"]["ua"], 2),
        "wa_pooled": round(100 * summary["pooled"]["wa"], 2),
        "ua_mean": round(100 * summary["mean"]["ua"], 2),
        "ua_std": round(100 * summary["std"]["ua"], 2),
        "per_fold": [{"speaker": f["test_speaker"], "wa": round(100 * f["wa"], 2), "ua": round(100 * f["ua"], 2)}
                     for f in summary["folds"]],
        "uses_test_speaker_audio": bool(summary["config"].get("speaker_norm")),
        "command": public_paths(summary["command"]),
        "machine": {key: summary["versions"].get(key) for key in ("machine", "cpu_count", "tensorflow", "keras")},
        **extra,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True,
                        help="The corpus folder; with several corpora one folder per corpus, comma-separated.")
    parser.add_argument("--corpus", default="emodb",
                        help="Corpus reader, or a comma-separated list combined under the shared emotion names "
                             "(default: emodb).")
    parser.add_argument("--classes", default=None, help="Classes to train on, comma-separated (default: all).")
    parser.add_argument("--loso_run", required=True,
                        help="A finished LOSO (or leave-one-corpus-out) run folder of the configuration.")
    parser.add_argument("--score_on", default="",
                        help="Corpora to score the preset on, over the emotions each shares with it: "
                             "comma-separated name=folder pairs, e.g. ravdess=/data/ravdess,emovo=/data/emovo.")
    parser.add_argument("--cache_dir", default=None,
                        help="Feature cache folder of the frozen-feature recipes: the training features (and those of "
                             "channel copies) of a run with the same --feature_cache are read back, and --score_on's "
                             "corpora cached (default: none).")
    parser.add_argument("--score_among", default="",
                        help="Also store the held-out figures of --loso_run scored among these classes alone "
                             "(comma-separated; arg-max of the probabilities among them), e.g. a six-emotion "
                             "preset's figures on the four emotions of the four-emotion presets.")
    parser.add_argument("--name", required=True, help="Preset name (folder under keras_ser/presets/).")
    parser.add_argument("--root", default=None, help="Presets folder (default: the package's).")
    args = parser.parse_args(argv)

    import tf_pipeline
    from keras_ser import presets
    from keras_ser.training import train_final
    from keras_ser.training.config import TrainConfig

    with open(os.path.join(args.loso_run, "run.json")) as handle:
        run = json.load(handle)
    config = TrainConfig.from_dict(run["config"])
    if config.model not in MODEL_DESCRIPTION:
        raise SystemExit(f"make_preset.py ships presets of {sorted(MODEL_DESCRIPTION)}; the run trained {config.model!r}")
    if config.fine_tune:
        raise SystemExit(f"a preset stores its head only, on the shipped encoder; the run fine-tuned "
                         f"{config.fine_tune} encoder layer(s) (fine_tune={config.fine_tune}): save the model "
                         "itself (keras-ser train --output=M.keras) instead")
    score_on = [tuple(pair.split("=", 1)) for pair in args.score_on.split(",") if pair]
    if any(len(pair) != 2 for pair in score_on):
        raise SystemExit(f"--score_on takes name=folder pairs. Received: {args.score_on!r}")
    loso = loso_summary(args.loso_run, [c for c in args.score_among.split(",") if c])
    if len(loso["folds"]) < 2:
        raise SystemExit(f"{args.loso_run} has {len(loso['folds'])} finished fold(s); finish the LOSO run first")
    classes = args.classes.split(",") if args.classes else None
    corpus = tf_pipeline.corpora.read(args.corpus, args.data_dir, classes)
    if list(corpus.class_names) != run["class_names"]:
        raise SystemExit(f"{args.loso_run} evaluated the classes {run['class_names']}; --corpus/--classes give "
                         f"{list(corpus.class_names)}")
    start = time.time()
    result = train_final(corpus, config, feature_config=run["feature_config"], verbose=0, cache_dir=args.cache_dir)
    wall = round(time.time() - start, 1)
    feature_config = result.model.feature_config
    build_args = config.model_kwargs()
    metadata = {
        "build_args": build_args,
        "train_config": config.to_dict(),
        "trained_on": {"corpus": corpus.name, "corpora": list(corpus.corpora or (corpus.name,)),
                       "speakers": list(corpus.speakers), "utterances": len(corpus),
                       "left_out": dict(corpus.left_out or {})},
        "training": {"history": result.history, "wall_time_s": wall},
        "loso": loso,
        # The corpus folders as /data/<corpus>: where they lie on this machine is nobody else's business.
        "command": "python experiments/make_preset.py " + " ".join(
            f"--{key}={value}" for key, value in (
                ("corpus", args.corpus), ("data_dir", ",".join(_placeholder(n) for n in args.corpus.split(","))),
                ("classes", args.classes), ("loso_run", args.loso_run), ("score_among", args.score_among),
                ("score_on", ",".join(f"{n}={_placeholder(n)}" for n, _ in score_on)), ("cache_dir", args.cache_dir),
                ("name", args.name))
            if value),
        "license": licence(config.model, corpus),
    }
    if score_on:
        metadata["cross_corpus"] = cross_corpus_scores(result.model, config, feature_config, score_on,
                                                       cache_dir=args.cache_dir)
    description = describe(config.model, corpus, config.speaker_norm,
                           dataclasses.replace(config, speaker_norm=False).levers())
    folder = presets.save_preset(result.model, args.name, description, metadata, root=args.root or presets.PRESETS_DIR)
    print(f"preset {args.name} written to {folder} (held-out UA {loso['ua_pooled']} / WA {loso['wa_pooled']} over "
          f"{len(loso['folds'])} folds; trained on {len(corpus)} utterances in {wall:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
