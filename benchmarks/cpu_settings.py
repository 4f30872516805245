"""TensorFlow CPU settings on the fusion model: oneDNN, thread pools, XLA, mixed precision.

What each setting does to the two places where `fusion_stats` (the shipped
preset `fusion_stats_emodb`: GE2E speaker encoder and aisfx sound-effects
CNN, both front ends in the graph) spends CPU time:

- **serving**: the exported SavedModel's `serve_wav` signature
  (`saved_models.export`, loaded with `tf.saved_model.load`), called with
  one WAV file at a time, then with the same files in batches of
  `--batch` files of similar length (what the development server's
  batching runs);
- **extraction**: the pooled features of the same files in padded batches
  of 16, shortest first, through one compiled call per batch (front end
  and encoders: what `keras_ser.training.frozen.extract_features` runs;
  written out here so the XLA row can add `jit_compile=True`).

Each setting runs in its own Python process (thread pools and
`TF_ENABLE_ONEDNN_OPTS` are fixed when TensorFlow starts); the settings run
one after the other, `--rounds` times, so the other jobs of a shared
machine weigh on all of them. Every figure is files per second after one
untimed warm-up call, and its ratio to the `default` setting of the same
round; the last columns are the largest difference of the probabilities
and of the features from `default` (a setting that changes the numbers
says so there). Asserts nothing.

Settings: `default` (TensorFlow's: oneDNN on, one intra-op thread per core,
inter-op pool sized by TensorFlow); `onednn_off` (`TF_ENABLE_ONEDNN_OPTS=0`);
`intra1_inter1`, `intra1_inter2`, `intra2_inter1` (`tf.config.threading`);
`xla` (extraction: the encoders compiled with `jit_compile=True`, the
front ends as usual, since XLA cannot compile them: their shapes are
computed from `num_samples`; each new batch shape is compiled again, the
first in the warm-up column; serving is not run: the signature's front
end and WAV decoder are not XLA-compilable either, and every request
length would be a new shape); `bf16` (`keras.mixed_precision` policy
`mixed_bfloat16` for the extraction model; serving not run: the export is
float32).

`--parts` instead times where a request's CPU time goes, on one core
(one intra-op and one inter-op thread): the speech front end + GE2E
encoder and the sound-effects front end + CNN, each alone, on the
preset's own front ends of equal-length random audio (`--seconds`, default
the EMO-DB mean 2.8 s), at batch 1 and at `--batch`, in ms of one core per
utterance, with the arithmetic of each encoder (multiply-adds x 2).

    python benchmarks/cpu_settings.py --data_dir /data/emodb/wav --files 48
    python benchmarks/cpu_settings.py --data_dir /data/emodb/wav --settings default,intra1_inter2 --rounds 2
    python benchmarks/cpu_settings.py --data_dir /data/emodb/wav --parts
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import host  # benchmarks/host.py: what results record of the machine and the command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a script from a checkout: make the repository importable
    sys.path.insert(0, ROOT)

PRESET = "fusion_stats_emodb"
SETTINGS = {
    # name: (environment, (intra, inter) threads or None, extraction jit_compile, Keras dtype policy, serving run)
    "default": ({}, None, False, None, True),
    "onednn_off": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, None, False, None, True),
    "intra1_inter1": ({}, (1, 1), False, None, True),
    "intra1_inter2": ({}, (1, 2), False, None, True),
    "intra2_inter1": ({}, (2, 1), False, None, True),
    "xla": ({}, None, True, None, False),
    "bf16": ({}, None, False, "mixed_bfloat16", False),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="EMO-DB wav folder (e.g. /data/emodb/wav)")
    parser.add_argument("--files", type=int, default=48, help="EMO-DB files, a fixed random choice (default 48)")
    parser.add_argument("--batch", type=int, default=8, help="files per serving batch (default 8)")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, of {', '.join(SETTINGS)} "
                        "(default: all; default is always run first)")
    parser.add_argument("--rounds", type=int, default=1, help="times every setting runs (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="choice of files (default 0)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--parts", action="store_true", help="time the two encoders on one core instead")
    parser.add_argument("--seconds", type=float, default=2.8, help="utterance length of --parts (default 2.8)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--export_dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.settings.split(",") if n.strip()]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown settings {unknown}; expected some of {list(SETTINGS)}")
    args.settings = ["default"] + [n for n in names if n != "default"]
    if args.files < 1 or args.batch < 1 or args.rounds < 1:
        parser.error("--files, --batch and --rounds must be positive")
    return args


def _files(data_dir, count, seed):
    from tf_pipeline import corpora

    corpus = corpora.emodb(data_dir)
    chosen = np.sort(np.random.default_rng(seed).choice(len(corpus), min(count, len(corpus)), replace=False))
    return corpus, chosen


def _child(args):
    """One setting, in this process: the timings and outputs, written to `args.out` (.npz + .json)."""
    environment, threads, jit_compile, policy, serving = SETTINGS[args.child]
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads[0])
        tf.config.threading.set_inter_op_parallelism_threads(threads[1])
    import dataclasses

    import keras

    import keras_ser
    import tf_pipeline
    from keras_ser.training import frozen

    corpus, chosen = _files(args.data_dir, args.files, args.seed)
    paths = [corpus.records[i].path for i in chosen]
    result, arrays = {"setting": args.child}, {}

    if serving:
        signature = tf.saved_model.load(args.export_dir).signatures["serve_wav"]
        contents = [open(path, "rb").read() for path in paths]
        signature(audio_bytes=tf.constant(contents[:1]))
        start = time.perf_counter()
        alone = [signature(audio_bytes=tf.constant([c]))["probabilities"].numpy() for c in contents]
        result["serving_one_fps"] = len(contents) / (time.perf_counter() - start)
        order = np.argsort([len(c) for c in contents], kind="stable")
        batches = [order[i:i + args.batch] for i in range(0, len(order), args.batch)]
        signature(audio_bytes=tf.constant([contents[i] for i in batches[0]]))
        start = time.perf_counter()
        batched = np.zeros((len(contents), alone[0].shape[1]), np.float32)
        for rows in batches:
            batched[rows] = signature(audio_bytes=tf.constant([contents[i] for i in rows]))["probabilities"].numpy()
        result["serving_batch_fps"] = len(contents) / (time.perf_counter() - start)
        arrays["probabilities"] = np.concatenate(alone)
        result["batched_vs_alone"] = float(np.abs(batched - arrays["probabilities"]).max())

    if policy:
        keras.mixed_precision.set_global_policy(policy)
    model = keras_ser.from_preset(PRESET, compile=False)
    features_model = model.features_model()
    preprocessor = model.preprocessor

    specs = [tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)]
    if jit_compile:
        # XLA cannot compile the front ends (shapes computed from num_samples: "Input 1 to node `range` with
        # op Range must be a compile-time constant"), so they run as usual and the encoders under XLA.
        front_end = tf.function(preprocessor.batch, autograph=False, input_signature=specs)
        encoders = tf.function(lambda inputs: tf.cast(features_model(inputs, training=False), tf.float32),
                               autograph=False, jit_compile=True)

        def compiled(waveforms, num_samples):
            return encoders(front_end(waveforms, num_samples))
    else:
        def call(waveforms, num_samples):
            return tf.cast(features_model(preprocessor.batch(waveforms, num_samples), training=False), tf.float32)

        compiled = tf.function(call, autograph=False, input_signature=specs)
    subset = dataclasses.replace(corpus, records=tuple(corpus.records[i] for i in chosen))
    order = frozen.length_order(subset)
    dataset = tf_pipeline.waveform_dataset(subset, order, lambda w, n: (w, n), preprocessor.feature_config,
                                           batch_size=16)
    batches = [(w, n) for (w, n), _ in dataset]
    start = time.perf_counter()
    compiled(*batches[0])  # warm-up (and, for XLA, the first shape's compilation)
    result["extraction_warmup_s"] = time.perf_counter() - start
    start = time.perf_counter()
    parts = [np.asarray(compiled(w, n)) for w, n in batches]
    result["extraction_fps"] = len(order) / (time.perf_counter() - start)
    features = np.zeros((len(order), parts[0].shape[1]), np.float32)
    features[order] = np.concatenate(parts)
    arrays["features"] = features
    np.savez(args.out + ".npz", **arrays)
    with open(args.out + ".json", "w") as handle:
        json.dump(result, handle)
    return 0


def _encoder_flops(model, samples):
    """Multiply-adds x 2 of each encoder for one utterance (convolutions and LSTM matrix products only)."""
    import keras
    import tensorflow as tf

    inputs = model.preprocessor.batch(tf.random.uniform([1, samples], -0.3, 0.3), tf.constant([samples]))
    frames_speech, frames_sfx = int(inputs["mel_frames"].shape[1]), int(inputs["sfx_mel"].shape[1])
    speaker = 0
    for layer in model.get_layer("speaker_encoder").layers:
        if isinstance(layer, keras.layers.LSTM):
            speaker += 2 * frames_speech * (layer.cell.kernel.shape[0] + layer.units) * 4 * layer.units
    sfx, time_steps, width = 0, frames_sfx, model.get_layer("sound_effects_encoder").n_mels
    for layer in model.get_layer("sound_effects_encoder").layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel = layer.kernel.shape
            sfx += 2 * time_steps * width * kernel[0] * kernel[1] * kernel[2] * kernel[3]
        elif isinstance(layer, keras.layers.MaxPooling2D):
            time_steps, width = time_steps // 2, width // 2
    return speaker, sfx


def _parts(args, argv):
    """Per-utterance CPU time of each encoder (front end included) on one core, at batch 1 and `--batch`."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras_ser

    model = keras_ser.from_preset(PRESET, compile=False)
    config = model.preprocessor.feature_config
    specs = [tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)]
    speaker, sfx = model.get_layer("speaker_encoder"), model.get_layer("sound_effects_encoder")

    def speech(waveforms, num_samples):
        return speaker(model.preprocessor.batch(waveforms, num_samples)["mel_frames"])["lstm_3"]

    def effects(waveforms, num_samples):
        return sfx(model.preprocessor.batch(waveforms, num_samples)["sfx_mel"])["block_4"]

    def whole(waveforms, num_samples):
        return model(model.preprocessor.batch(waveforms, num_samples), training=False)

    samples = int(args.seconds * config.sample_rate)
    rng = np.random.default_rng(args.seed)
    flops = _encoder_flops(model, samples)
    print(f"keras-ser fusion parts: preset {PRESET}, random audio of {args.seconds:g} s, one core (1 intra-op and "
          f"1 inter-op thread); ms of that core per utterance, median of 3 timings\n")
    rows = []
    print(f"| part | GFLOP per utterance | batch 1 ms | batch {args.batch} ms | batch {args.batch} / batch 1 |")
    print("|---|---:|---:|---:|---:|")
    for name, function, gflop in (("speech front end + GE2E LSTMs", speech, flops[0] / 1e9),
                                  ("sound-effects front end + CNN", effects, flops[1] / 1e9),
                                  ("whole model (both, the head)", whole, sum(flops) / 1e9)):
        compiled = tf.function(function, autograph=False, input_signature=specs)
        per_row = {}
        for batch in (1, args.batch):
            waveforms = tf.constant(rng.uniform(-0.3, 0.3, (batch, samples)).astype("float32"))
            lengths = tf.fill([batch], samples)
            compiled(waveforms, lengths)
            times = []
            for _ in range(3):
                start = time.perf_counter()
                compiled(waveforms, lengths)
                times.append((time.perf_counter() - start) / batch)
            per_row[batch] = 1000 * float(np.median(times))
        print(f"| {name} | {gflop:.2f} | {per_row[1]:.1f} | {per_row[args.batch]:.1f} | "
              f"{per_row[args.batch] / per_row[1]:.2f} |")
        rows.append({"part": name, "gflop": gflop, "ms_batch_1": per_row[1],
                     f"ms_batch_{args.batch}": per_row[args.batch]})
    info = host.machine_info()
    print(f"\nmachine: {host.machine_line(info)}; load average {host.loadavg()}")
    if args.json:
        host.write_json(args.json, {"command": host.command_line("cpu_settings.py", argv or sys.argv[1:]),
                                    "machine": info, "loadavg": host.loadavg(), "seconds": args.seconds, "parts": rows})
    return 0


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return _child(args)
    if args.parts:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        return _parts(args, argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras_ser
    from saved_models import export

    workdir = tempfile.mkdtemp(prefix="keras_ser_cpu_settings_")
    start = time.perf_counter()
    export_dir = export(keras_ser.from_preset(PRESET, compile=False), workdir, "fusion")
    print(f"exported {PRESET} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    rows, reference = [], {}
    for round_index in range(args.rounds):
        for name in args.settings:
            environment = SETTINGS[name][0]
            out = os.path.join(workdir, f"{name}_{round_index}")
            command = [sys.executable, os.path.abspath(__file__), "--child", name, "--data_dir", args.data_dir,
                       "--files", str(args.files), "--batch", str(args.batch), "--seed", str(args.seed),
                       "--export_dir", export_dir, "--out", out]
            start = time.perf_counter()
            completed = subprocess.run(command, env={**os.environ, **environment}, cwd=ROOT, capture_output=True,
                                       text=True)
            if completed.returncode != 0:
                print(f"{name}: failed\n{completed.stderr[-2000:]}", file=sys.stderr)
                continue
            with open(out + ".json") as handle:
                row = json.load(handle)
            arrays = dict(np.load(out + ".npz"))
            row.update(round=round_index + 1, process_s=time.perf_counter() - start, loadavg=host.loadavg())
            if name == "default":
                reference = {"row": row, **arrays}
            for key in ("serving_one_fps", "serving_batch_fps", "extraction_fps"):
                if key in row and key in reference["row"]:
                    row[key.replace("_fps", "_ratio")] = row[key] / reference["row"][key]
            for key in ("probabilities", "features"):
                if key in arrays and key in reference:
                    row[f"{key}_diff"] = float(np.abs(arrays[key] - reference[key]).max())
            if "serving_one_fps" in reference["row"] and "serving_batch_fps" in row:
                row["batch_vs_default_one"] = row["serving_batch_fps"] / reference["row"]["serving_one_fps"]
            rows.append(row)
            print(f"  round {round_index + 1} {name}: {row}", file=sys.stderr, flush=True)

    info = host.machine_info()
    print(f"keras-ser CPU settings benchmark: preset {PRESET}, {args.files} EMO-DB files (seed {args.seed}), "
          f"serving batches of {args.batch}, extraction batches of 16, {args.rounds} round(s)")
    print(f"machine: {host.machine_line(info)}; load average {host.loadavg()} at the end\n")

    def cell(row, key, digits=1):
        return f"{row[key]:.{digits}f}" if key in row else "-"

    print("| round | setting | serving one at a time files/s | x default | serving batches files/s | x default "
          "| x default one at a time | extraction files/s | x default | extraction warm-up s | max diff probabilities "
          "| max diff features |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        diff_p = f"{row['probabilities_diff']:.1e}" if "probabilities_diff" in row else "-"
        diff_f = f"{row['features_diff']:.1e}" if "features_diff" in row else "-"
        print(f"| {row['round']} | {row['setting']} | {cell(row, 'serving_one_fps')} "
              f"| {cell(row, 'serving_one_ratio', 2)} "
              f"| {cell(row, 'serving_batch_fps')} | {cell(row, 'serving_batch_ratio', 2)} "
              f"| {cell(row, 'batch_vs_default_one', 2)} | {cell(row, 'extraction_fps')} "
              f"| {cell(row, 'extraction_ratio', 2)} | {cell(row, 'extraction_warmup_s')} | {diff_p} | {diff_f} |")
    if args.rounds > 1:
        print(f"\nmedian over the {args.rounds} rounds of each ratio to the same round's default\n")
        print("| setting | serving one at a time | serving batches | batches x default one at a time | extraction |")
        print("|---|---:|---:|---:|---:|")
        for name in args.settings:
            mine = [row for row in rows if row["setting"] == name]

            def median(key):
                values = [row[key] for row in mine if key in row]
                return f"{np.median(values):.2f}" if values else "-"

            print(f"| {name} | {median('serving_one_ratio')} | {median('serving_batch_ratio')} "
                  f"| {median('batch_vs_default_one')} | {median('extraction_ratio')} |")
    if args.json:
        host.write_json(args.json, {"command": host.command_line("cpu_settings.py", argv or sys.argv[1:]),
                                    "machine": info, "rows": rows})
    import shutil

    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
