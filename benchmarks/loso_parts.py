"""The parts of a `fusion_stats` (or `encoder_stats`) / `probe` LOSO run on EMO-DB, the former way and the current way.

In one process, on `--files` EMO-DB utterances (evenly spread over the
corpus order, so every speaker keeps some; default all 535):

1. Extraction of the pooled features (GE2E speaker encoder and aisfx
   sound-effects CNN, shipped weights), every way after one untimed warm-up
   call on a few files, then round-robin over chunks of 32 files (shortest
   first; every way runs each chunk in turn, the first way rotating):
   - one file at a time through the compiled front end + encoders
     (`keras_ser.training.frozen.extract_features(..., batch_size=1)`, as
     `keras_ser.inference.predict_files` runs a file);
   - eager batches (the former `corpus_features`: the model's tf.data
     input, `features_model(inputs, training=False)` called eagerly, 16
     files a batch, shortest first);
   - compiled batches (`extract_features`, the current `corpus_features`)
     of each `--batch_sizes`, shortest first.
   Prints files/s, the ratio to one at a time and the largest difference
   of the features from one at a time.
2. The probe's fit (`fit_probe`) per outer fold on those features, the
   folds in LOSO order: the former search (every inner regression from
   scratch, in this process; `inner_search="refit"` with no fit kept
   between folds, `n_jobs=1`), the current one (`"refit"`, fits kept
   between folds, and in one process per core when the features are
   large, `probe_jobs`: the same numbers) and `"path"` (warm starts in the
   span of the rows). Prints seconds per fold,
   ratios and the chosen `C` of each.
3. The test-speaker pass of `--test_folds` folds: the whole model over the
   audio again (`model.predict`, the former way) against the head on the
   cached pooled features (`keras_ser.training.loso.fold_test_probabilities`).
4. Where the speech extra is installed (torch, resemblyzer, aisfx): the
   torch reference networks (resemblyzer's 3-layer LSTM on its Mel frames,
   and for `fusion_stats` aisfx's `EmbeddingNet` on its librosa spectrogram
   at 44.1 kHz), one file at a time, front ends included, on
   `--torch_files` of the files after 5 untimed ones (torch's CPU LSTM is
   slow, up to seconds, on the first calls at each new length); otherwise
   a note says it was skipped.

`--model=encoder_stats` times the GE2E encoder alone (the LSTMs, which
batching helps) instead of the fusion (whose sound-effects CNN is bound by
arithmetic); `--parts` runs some of the four parts only.

Times are printed, never asserted; with `--json PATH` the results are also
written as JSON. On a shared machine the ratios (measured in the same
process) mean more than the absolute times.

    python benchmarks/loso_parts.py --data_dir /data/emodb/wav --files 120
    python benchmarks/loso_parts.py --data_dir /data/emodb/wav --files 120 --model encoder_stats --parts extraction
    python benchmarks/loso_parts.py --data_dir /data/emodb/wav --json benchmarks/results/loso_parts_cpu.json
"""

import argparse
import dataclasses
import os
import sys
import time

import numpy as np

import host  # benchmarks/host.py: what results record of the machine and the command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a script from a checkout: make the repository importable
    sys.path.insert(0, ROOT)

MODELS = ("fusion_stats", "encoder_stats")
PARTS = ("extraction", "probe", "test_pass", "torch")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="EMO-DB wav folder (e.g. /data/emodb/wav)")
    parser.add_argument("--files", type=int, default=0, help="utterances used, spread over the corpus (default: all)")
    parser.add_argument("--batch_sizes", default="8,16,32", help="compiled batch sizes timed (default 8,16,32)")
    parser.add_argument("--folds", type=int, default=0, help="outer folds of the probe timing (default: all)")
    parser.add_argument("--test_folds", type=int, default=2, help="folds of the test-pass timing (default 2)")
    parser.add_argument("--torch_files", type=int, default=30,
                        help="files of the torch reference timing, spread over the subset (default 30)")
    parser.add_argument("--model", default="fusion_stats", choices=MODELS,
                        help="whose pooled features: both encoders, or the GE2E encoder alone (default fusion_stats)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated parts to run, of {','.join(PARTS)} (default all; the probe and the "
                             "test pass use the extracted features)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    args.parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown or not args.parts:
        parser.error(f"--parts must name some of {', '.join(PARTS)}. Received: {args.parts}")
    try:
        args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    except ValueError:
        parser.error(f"--batch_sizes must be comma-separated integers. Received: {args.batch_sizes!r}")
    if not args.batch_sizes or min(args.batch_sizes) < 1 or args.files < 0:
        parser.error(f"--batch_sizes and --files must be positive. Received: {args.batch_sizes}, {args.files}")
    return args


def subset(corpus, files):
    """`files` records spread evenly over the corpus order (all when `files` is 0 or too large)."""
    if not files or files >= len(corpus):
        return corpus
    rows = np.unique(np.linspace(0, len(corpus) - 1, files).round().astype(int))
    return dataclasses.replace(corpus, records=tuple(corpus.records[i] for i in rows))


def _eager_batches(model, corpus, order, batch_size=16):
    """The former `corpus_features` loop: the model's tf.data input, the features model called eagerly."""
    features_model = model.features_model()
    dataset = model.preprocessor.dataset(corpus, order, batch_size=batch_size, cache=False)
    return np.concatenate([np.asarray(features_model(inputs, training=False)) for inputs, _ in dataset])


def time_extraction(model, corpus, batch_sizes, chunk=32):
    """Every way over the same files, round-robin by chunks of `chunk` files (shortest first).

    Each chunk runs every way in turn, the first way rotating from chunk to
    chunk, so that load from other processes falls on every way alike.
    """
    from keras_ser.training import frozen

    order = frozen.length_order(corpus)
    # One compiled function for every way and chunk (traced once: its input signature takes any batch and length).
    function = frozen.features_function(model)
    ways = [("one at a time, compiled",
             lambda o: frozen.extract_features(model, corpus, o, batch_size=1, function=function)),
            ("eager batches of 16 (former)", lambda o: _eager_batches(model, corpus, o))]
    ways += [(f"compiled batches of {b} (current)",
              lambda o, b=b: frozen.extract_features(model, corpus, o, batch_size=b, function=function))
             for b in batch_sizes]
    for _, run in ways:
        run(order[: min(4, len(order))])  # tracing, first calls
    seconds, parts = np.zeros(len(ways)), [[] for _ in ways]
    for number, begin in enumerate(range(0, len(order), chunk)):
        rows = order[begin:begin + chunk]
        for k in np.roll(np.arange(len(ways)), -number):
            start = time.perf_counter()
            parts[k].append(ways[k][1](rows))
            seconds[k] += time.perf_counter() - start
    reference = np.concatenate(parts[0])
    results = []
    for (label, _), spent, features in zip(ways, seconds, parts):
        features = np.concatenate(features)
        results.append({"way": label, "files": len(order), "seconds": round(spent, 2),
                        "files_per_s": round(len(order) / spent, 2), "ratio": round(seconds[0] / spent, 2),
                        "max_abs_diff": float(np.abs(features - reference).max())})
        print(f"   {label}: {len(order) / spent:.1f} files/s", flush=True)
    result = np.empty_like(reference)
    result[order] = np.concatenate(parts[-1])
    return results, result


def time_probe(features, corpus, folds):
    from keras_ser.training import frozen

    labels, speakers = corpus.labels, corpus.speaker_ids
    rows = []
    frozen._INNER_FITS.clear()
    for speaker in corpus.speakers[: folds or None]:
        train = speakers != speaker
        args = (features[train], labels[train], speakers[train], len(corpus.class_names))
        kept = dict(frozen._INNER_FITS)
        frozen._INNER_FITS.clear()  # the former way: nothing kept
        start = time.perf_counter()
        former = frozen.fit_probe(*args, n_jobs=1)  # the former search ran in this process
        former_s = time.perf_counter() - start
        frozen._INNER_FITS.clear()
        frozen._INNER_FITS.update(kept)
        start = time.perf_counter()
        current = frozen.fit_probe(*args)
        current_s = time.perf_counter() - start
        start = time.perf_counter()
        path = frozen.fit_probe(*args, inner_search="path")
        path_s = time.perf_counter() - start
        rows.append({"test_speaker": speaker, "former_s": round(former_s, 2), "current_s": round(current_s, 2),
                     "path_s": round(path_s, 2), "current_ratio": round(former_s / current_s, 2),
                     "path_ratio": round(former_s / path_s, 2), "C_former": former["C"], "C_current": current["C"],
                     "C_path": path["C"], "same_weights": bool(np.array_equal(former["kernel"], current["kernel"]))})
        print(f"   fold {speaker}: {former_s:.1f} s former, {current_s:.1f} s current, {path_s:.1f} s path", flush=True)
    return rows


def time_test_pass(corpus, config, feature_config, folds):
    import keras

    from keras_ser.training import loso
    from keras_ser.training import recipes
    from tf_pipeline.folds import loso_folds

    rows = []
    for fold in loso_folds(corpus, validation="none")[:folds]:
        keras.utils.set_random_seed(config.seed)
        data = loso.make_fold_data(corpus, fold, config, feature_config)
        model = recipes.train(config, data, feature_config=feature_config, verbose=0).model
        start = time.perf_counter()
        whole = model.predict(data.dataset("test", training=False), verbose=0)
        whole_s = time.perf_counter() - start
        start = time.perf_counter()
        head = loso.fold_test_probabilities(config, data, model)
        head_s = time.perf_counter() - start
        rows.append({"test_speaker": fold.test_speaker, "files": len(fold.test_indices),
                     "whole_model_s": round(whole_s, 2),
                     "head_s": round(head_s, 3), "ratio": round(whole_s / head_s, 1),
                     "max_abs_diff": float(np.abs(whole - head).max())})
        print(f"   fold {fold.test_speaker}: {whole_s:.2f} s whole model, {head_s:.3f} s head", flush=True)
    return rows


def time_torch_reference(corpus, with_sound_effects=True):
    """resemblyzer's LSTM (and aisfx's CNN) in torch, one file at a time, their own front ends; None when missing."""
    try:
        import resemblyzer
        import soundfile
        import torch
        from aisfx.models.cnn2d import EmbeddingNet
        from aisfx.preprocessing import spectrogram_normalize
        from aisfx.spectrogram.spectrogram_librosa import compute_spectrogram
    except ImportError as error:
        print(f"   skipped: the speech extra is not installed ({error})")
        return None
    from keras_ser.weights import sound_effects_encoder as encoder_weights

    voice_encoder = resemblyzer.VoiceEncoder("cpu", verbose=False)
    state = encoder_weights.load_torch_checkpoint(encoder_weights.aisfx_checkpoint_path())
    network = EmbeddingNet("max", 3, 1, 64)
    network.load_state_dict({key[len("embedding_net."):]: value for key, value in state.items()
                             if key.startswith("embedding_net.")})
    network.eval()

    def one(path):
        audio, _ = soundfile.read(path, dtype="float32")
        mel = resemblyzer.wav_to_mel_spectrogram(audio)
        spec = None
        if with_sound_effects:
            spec = compute_spectrogram(path, sr=44100.0, block_size=2048, hop_size=1024, n_mels=96, f_min=0.0,
                                       f_max=22050.0)
            spec = np.ascontiguousarray(spectrogram_normalize(spec).T, dtype=np.float32)
        with torch.no_grad():
            voice_encoder.lstm(torch.from_numpy(mel[None]))
            if with_sound_effects:
                network(torch.from_numpy(spec[None]))

    for record in corpus.records[:5]:  # torch's first calls are slow (seconds each), later ones not
        one(record.path)
    start = time.perf_counter()
    for record in corpus.records:
        one(record.path)
    seconds = time.perf_counter() - start
    networks = "torch reference networks" if with_sound_effects else "torch reference LSTM (resemblyzer)"
    row = {"way": f"{networks}, one at a time (librosa front ends)", "files": len(corpus),
           "seconds": round(seconds, 2), "files_per_s": round(len(corpus) / seconds, 2),
           "torch_threads": torch.get_num_threads()}
    print(f"   {row['files_per_s']:.1f} files/s", flush=True)
    return row


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_ser.training import frozen
    from keras_ser.training.config import TrainConfig
    from keras_ser.training.loso import feature_config_for
    from keras_ser.training.recipes import build_model_for_config
    from tf_pipeline import corpora

    corpus = subset(corpora.emodb(args.data_dir), args.files)
    config = TrainConfig(model=args.model, recipe="probe", validation="none")
    feature_config = feature_config_for(config)
    machine = host.machine_info()
    print(f"{corpus.name}: {len(corpus)} utterances, {len(corpus.speakers)} speakers; {args.model}, probe")
    print(f"machine: {host.machine_line(machine)}; load average {host.loadavg()}", flush=True)

    print("== 1. extraction of the pooled features", flush=True)
    model = build_model_for_config(config, list(corpus.class_names), feature_config)
    if "extraction" in args.parts:
        extraction, features = time_extraction(model, corpus, args.batch_sizes)
    else:
        print("   (not timed: --parts)", flush=True)
        extraction, features = [], None
        if {"probe", "test_pass"} & set(args.parts):
            features = frozen.extract_features(model, corpus, frozen.length_order(corpus))
            restored = np.empty_like(features)
            restored[frozen.length_order(corpus)] = features
            features = restored
    if features is not None:
        frozen.remember_features(corpus, config, feature_config, features)  # the test pass reads them from there
    probe, test_pass, torch_row = [], [], None
    if "probe" in args.parts:
        print("== 2. the probe's fit per outer fold", flush=True)
        probe = time_probe(features.astype(np.float64), corpus, args.folds)
    if "test_pass" in args.parts:
        print("== 3. the test-speaker pass", flush=True)
        test_pass = time_test_pass(corpus, config, feature_config, args.test_folds)
    if "torch" in args.parts:
        print("== 4. torch reference networks", flush=True)
        torch_row = time_torch_reference(subset(corpus, args.torch_files), args.model == "fusion_stats")

    if extraction:
        print()
        print("| extraction | files | files/s | x one at a time | max abs diff |")
        print("|---|---:|---:|---:|---:|")
        for row in extraction + ([torch_row] if torch_row else []):
            ratio = row["files_per_s"] / extraction[0]["files_per_s"]
            diff = f"{row['max_abs_diff']:.1e}" if "max_abs_diff" in row else "-"
            print(f"| {row['way']} | {row['files']} | {row['files_per_s']:.1f} | {ratio:.2f} | {diff} |")
    if probe:
        print()
        print("| probe fold | former s | current s (fits kept) | x | path s | x | C former / current / path |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for row in probe:
            print(f"| {row['test_speaker']} | {row['former_s']:.1f} | {row['current_s']:.1f} | "
                  f"{row['current_ratio']:.2f} | {row['path_s']:.1f} | {row['path_ratio']:.2f} | "
                  f"{row['C_former']} / {row['C_current']} / {row['C_path']} |")
        total = {key: sum(row[key] for row in probe) for key in ("former_s", "current_s", "path_s")}
        print(f"| all | {total['former_s']:.1f} | {total['current_s']:.1f} | "
              f"{total['former_s'] / total['current_s']:.2f} | "
              f"{total['path_s']:.1f} | {total['former_s'] / total['path_s']:.2f} | |")
    if test_pass:
        print()
        print("| test pass fold | files | whole model s (former) | head s (current) | x | max abs diff |")
        print("|---|---:|---:|---:|---:|---:|")
        for row in test_pass:
            print(f"| {row['test_speaker']} | {row['files']} | {row['whole_model_s']:.2f} | {row['head_s']:.3f} | "
                  f"{row['ratio']:.0f} | {row['max_abs_diff']:.1e} |")
    if torch_row and not extraction:
        print(f"\n{torch_row['way']}: {torch_row['files_per_s']:.1f} files/s")
    if args.json:
        host.write_json(args.json, {
            "benchmark": "loso_parts",
            "command": host.command_line("loso_parts.py", sys.argv[1:] if argv is None else argv),
            "data_dir": "DATA_DIR in the command: the EMO-DB wav folder (its path is not recorded)",
            "model": args.model, "parts": args.parts,
            "n_utterances": len(corpus), "machine": machine, "loadavg_after": host.loadavg(),
            "extraction": extraction, "torch_reference": torch_row, "probe": probe, "test_pass": test_pass})
    return 0


if __name__ == "__main__":
    sys.exit(main())
