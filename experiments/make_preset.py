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
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

DESCRIPTION = {
    "encoder_stats": ("Frozen GE2E speech encoder + statistics pooling of its three LSTM layers + logistic "
                      "regression, trained on all ten EMO-DB speakers (7 emotions)"),
    "fusion_stats": ("Frozen GE2E speech encoder and aisfx sound-effects CNN side by side + statistics pooling of "
                     "the encoder's three LSTM layers and the CNN's top block + logistic regression, trained on all "
                     "ten EMO-DB speakers (7 emotions)"),
}


def loso_summary(run_dir):
    """The LOSO figures a preset records, from a finished run folder."""
    from keras_ser.training import report

    summary = report.summarise(run_dir)
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
        "command": summary["command"],
        "machine": {key: summary["versions"].get(key) for key in ("machine", "cpu_count", "tensorflow", "keras")},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="The corpus folder (EMO-DB wav folder).")
    parser.add_argument("--corpus", default="emodb", help="Corpus reader (default: emodb).")
    parser.add_argument("--loso_run", required=True, help="A finished LOSO run folder of the configuration.")
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
    if config.model not in DESCRIPTION:
        raise SystemExit(f"make_preset.py ships presets of {sorted(DESCRIPTION)}; the run trained {config.model!r}")
    loso = loso_summary(args.loso_run)
    if len(loso["folds"]) < 2:
        raise SystemExit(f"{args.loso_run} has {len(loso['folds'])} finished fold(s); finish the LOSO run first")
    corpus = tf_pipeline.corpora.READERS[args.corpus](args.data_dir)
    start = time.time()
    result = train_final(corpus, config, feature_config=run["feature_config"], verbose=0)
    build_args = config.model_kwargs()
    metadata = {
        "build_args": build_args,
        "train_config": config.to_dict(),
        "trained_on": {"corpus": corpus.name, "speakers": list(corpus.speakers), "utterances": len(corpus)},
        "training": {"history": result.history, "wall_time_s": round(time.time() - start, 1)},
        "loso": loso,
        "command": "python experiments/make_preset.py " + " ".join(
            f"--{key}={value}" for key, value in (("data_dir", "/data/emodb/wav"), ("loso_run", args.loso_run),
                                                   ("name", args.name))),
        "license": ("GE2E encoder weights: resemblyzer package, Apache-2.0 (see NOTICE). "
                    + ("Sound-effects CNN weights: aisfx package, CC BY 4.0, Ma & Lerch (see NOTICE). "
                       if config.model in ("sfx_stats", "fusion_stats") else "")
                    + "Head trained by keras-ser on EMO-DB."),
    }
    folder = presets.save_preset(result.model, args.name, DESCRIPTION[config.model], metadata,
                                 root=args.root or presets.PRESETS_DIR)
    print(f"preset {args.name} written to {folder} (LOSO UA {loso['ua_pooled']} / WA {loso['wa_pooled']} over "
          f"{len(loso['folds'])} folds; trained on {len(corpus)} utterances in {time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
