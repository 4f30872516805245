#!/usr/bin/env python
"""What the speech encoder's original preprocessing is worth on EMO-DB (LOSO, UA pooled).

The `resemblyzer` package prepares audio for its GE2E encoder in two steps:
volume normalisation to -30 dBFS (increase only) and trimming of long
silences with the WebRTC voice activity detector. keras-ser computes the
encoder's input in-graph (`keras_ser.models.speech_encoders.mel_power`): the volume step has an
in-graph twin (`MelFramesConfig(volume_dbfs=-30.0)`), the VAD trimming does
not (WebRTC's detector is C code, not TensorFlow ops). This script measures
what each step changes, with everything else fixed: the same frozen encoder
(`keras_ser.build_model("encoder_stats")`), the same pooled features (mean +
std of each LSTM layer), the same logistic-regression probe with C chosen by
leave-one-speaker-out on the training speakers (`keras_ser.training.frozen.
fit_probe`), all 10 EMO-DB folds:

    raw          the waveform as decoded (keras-ser's default)
    volume       in-graph volume normalisation to -30 dBFS
    package      the package's own `preprocess_wav` (volume + VAD trimming),
                 run outside the graph, then the same Mel frames

    .venv/bin/python experiments/encoder_preprocessing.py --data_dir=/data/emodb/wav --json=runs/preprocessing.json

Needs `pip install "keras-ser[speech]"` (resemblyzer) for the `package` variant.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def pooled_features(model, mel_sequences, batch_size=16):
    """The encoder model's pooled features of a list of `[frames, 40]` arrays, in order."""
    from keras_ser.models.speech_encoders import mel_power

    features_model = model.features_model()
    order = np.argsort([len(m) for m in mel_sequences], kind="stable")
    out = np.empty((len(mel_sequences), features_model.output.shape[-1]), np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = mel_power.pad_mel_frames([mel_sequences[i] for i in rows])
        out[rows] = np.asarray(features_model(batch, training=False))
    return out


def loso_probe(features, labels, speakers, num_classes):
    """Pooled WA / UA and per-fold UA of the probe over every speaker."""
    from keras_ser.training import scores
    from keras_ser.training.frozen import fit_probe
    from keras_ser.training.frozen import probe_logits

    predicted = np.empty_like(labels)
    per_fold = {}
    for speaker in sorted(set(speakers)):
        train, test = speakers != speaker, speakers == speaker
        probe = fit_probe(features[train], labels[train], speakers[train], num_classes)
        predicted[test] = np.argmax(probe_logits(probe, features[test], epsilon=1e-14), axis=1)
        per_fold[speaker] = scores.unweighted_accuracy(labels[test], predicted[test], num_classes)
    return {"wa": scores.weighted_accuracy(labels, predicted),
            "ua": scores.unweighted_accuracy(labels, predicted, num_classes), "per_fold_ua": per_fold}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="EMO-DB wav folder.")
    parser.add_argument("--variants", default="raw,volume,package", help="Comma-separated variants to run.")
    parser.add_argument("--json", default=None, help="Write the results here as JSON.")
    args = parser.parse_args(argv)

    import keras_ser
    import tf_pipeline
    from keras_ser.models.speech_encoders import mel_power
    from keras_ser.models.speech_encoders.config import MelFramesConfig

    corpus = tf_pipeline.corpora.emodb(args.data_dir)
    labels = np.asarray(corpus.labels)
    speakers = np.array([record.speaker for record in corpus.records])
    waveforms = [np.asarray(tf_pipeline.load_audio(record.path)) for record in corpus.records]
    model = keras_ser.build_model("encoder_stats", num_classes=corpus.num_classes, compile=False)
    results = {}
    for variant in args.variants.split(","):
        start = time.time()
        if variant == "raw":
            mels = [mel_power.mel_frames(w).numpy() for w in waveforms]
        elif variant == "volume":
            config = MelFramesConfig(volume_dbfs=-30.0)
            mels = [mel_power.mel_frames(w, config).numpy() for w in waveforms]
        elif variant == "package":
            from resemblyzer import preprocess_wav

            mels = [mel_power.mel_frames(preprocess_wav(w)).numpy() for w in waveforms]
        else:
            raise SystemExit(f"unknown variant {variant!r}; expected raw, volume or package")
        frames = int(sum(len(m) for m in mels))
        result = loso_probe(pooled_features(model, mels), labels, speakers, corpus.num_classes)
        result.update(frames=frames, seconds=round(time.time() - start, 1))
        results[variant] = result
        print(f"{variant:8s} UA {100 * result['ua']:.1f}  WA {100 * result['wa']:.1f}  ({frames} frames, "
              f"{result['seconds']:.0f} s)", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
