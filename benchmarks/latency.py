"""Single-utterance `serve_wav` latency: the speech-encoder model against the CNN+SRU.

Exports three models with `saved_models.export` into a temporary folder,
loads each SavedModel back with `tf.saved_model.load`, and calls its
`serve_wav` signature with one real EMO-DB file per call (16-bit WAV bytes,
batch 1: decoding, resampling, features and the network, all in the graph):

- `encoder_stats`: `keras_ser.build_model("encoder_stats")`, the frozen GE2E
  speaker encoder (its shipped weights) over 40-band Mel power frames, mean
  and std of its 3 LSTM layers, a softmax head (random weights);
- `fusion_stats`: the GE2E encoder and the aisfx sound-effects CNN side by
  side (both shipped weights), each on its own in-graph front end, their
  statistics concatenated, a softmax head (random weights);
- `cnn_sru_paper`: the paper's CNN+SRU, as `benchmarks/serving.py
  --preset=paper` builds it: N=3 segments, Caffe AlexNet at 227x227, SRU of
  4096 units (107 M parameters), random weights;
- `cnn_sru_tiny`: `benchmarks/serving.py --preset=tiny`: N=2, a narrow
  AlexNet at 67x67, SRU of 16 units, random weights.

Random weights cost the same time as trained ones. The files are `--files`
EMO-DB utterances taken at evenly spaced quantiles of duration (shortest to
longest). Each model is first warmed up (`--warmup` calls), then the timed
calls run round-robin: one file to every model in turn, then the next
file, `--calls` calls per model in all, so that load from other processes
falls on every model alike. A call's time includes building the input
tensor and reading the probabilities back. Prints p50/p90/mean/max latency
in ms per model and the ratios of p50 and p90 to the encoder model's; with
`--json PATH` also writes them as JSON. Times are printed, never asserted.

    python benchmarks/latency.py --data_dir /data/emodb/wav --json benchmarks/results/latency_cpu.json
    python benchmarks/latency.py --data_dir /data/emodb/wav --models encoder_stats,cnn_sru_tiny --calls 60
"""

import argparse
import gc
import importlib.util
import os
import shutil
import sys
import tempfile
import time
import wave

import numpy as np

import host  # benchmarks/host.py: what results record of the machine and the command

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:  # run as a script from a checkout: make the repository importable
    sys.path.insert(0, ROOT)

MODELS = ("encoder_stats", "fusion_stats", "cnn_sru_paper", "cnn_sru_tiny")
REFERENCE = "encoder_stats"


def _serving_benchmark():
    """benchmarks/serving.py as a module (its PRESETS and EMOTIONS: the same models as there)."""
    spec = importlib.util.spec_from_file_location("keras_ser_benchmarks_serving", os.path.join(HERE, "serving.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="EMO-DB wav folder (e.g. /data/emodb/wav)")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated, from {', '.join(MODELS)} (default: all four; the ratios are "
                             f"against {REFERENCE} when it is among them)")
    parser.add_argument("--files", type=int, default=10,
                        help="EMO-DB files used, at evenly spaced quantiles of duration (default 10)")
    parser.add_argument("--calls", type=int, default=30, help="timed calls per model (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per model first (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the table as JSON to PATH")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        parser.error(f"--models: unknown {unknown}; choose from {', '.join(MODELS)}")
    args.models = list(dict.fromkeys(models))
    if args.files < 1 or args.calls < 1 or args.warmup < 0:
        parser.error("--files and --calls must be at least 1, --warmup at least 0")
    return args


def _folder_mb(path):
    total = 0
    for folder, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(folder, name)) for name in files)
    return total / 1e6


def build(name, seed, serving_benchmark):
    import keras

    import keras_ser

    keras.utils.set_random_seed(seed)
    emotions = serving_benchmark.EMOTIONS
    if name in ("encoder_stats", "fusion_stats"):
        return keras_ser.build_model(name, class_names=emotions, compile=False)
    preset = serving_benchmark.PRESETS[name.rsplit("_", 1)[1]]
    return keras_ser.build_model(compile=False, class_names=emotions, **preset)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    from saved_models import export
    from tf_pipeline import corpora

    serving_benchmark = _serving_benchmark()
    corpus = corpora.emodb(args.data_dir)
    sizes = np.array([os.path.getsize(path) for path in corpus.paths])
    order = np.argsort(sizes, kind="stable")
    picks = [int(order[min(len(order) - 1, int((i + 0.5) / args.files * len(order)))]) for i in range(args.files)]
    paths = [corpus.paths[i] for i in picks]
    contents = [open(path, "rb").read() for path in paths]
    seconds = []
    for path in paths:
        with wave.open(path) as handle:
            seconds.append(handle.getnframes() / handle.getframerate())

    workdir = tempfile.mkdtemp(prefix="keras_ser_latency_")
    described, functions = {}, {}
    try:
        for name in args.models:
            model = build(name, args.seed, serving_benchmark)
            start = time.perf_counter()
            version_dir = export(model, workdir, name)
            export_s = time.perf_counter() - start
            described[name] = {
                "model": name,
                "class": type(model).__name__,
                "parameters": int(model.count_params()),
                # One input, or a dict of them (fusion_stats): name -> shape.
                "input_shape": {key: [None if d is None else int(d) for d in tensor.shape]
                                for key, tensor in (model.input.items() if isinstance(model.input, dict)
                                                    else [(model.input.name, model.input)])},
                "export_s": round(export_s, 1),
                "saved_model_mb": round(_folder_mb(version_dir), 1),
            }
            del model
            keras.backend.clear_session()
            gc.collect()
            start = time.perf_counter()
            loaded = tf.saved_model.load(version_dir)
            described[name]["load_s"] = round(time.perf_counter() - start, 1)
            functions[name] = (loaded, loaded.signatures["serve_wav"])
            print(f"{name}: {described[name]['class']}, {described[name]['parameters'] / 1e6:.2f} M parameters, "
                  f"exported in {export_s:.1f} s ({described[name]['saved_model_mb']:.0f} MB), "
                  f"loaded in {described[name]['load_s']:.1f} s", flush=True)

        def call(name, data):
            start = time.perf_counter()
            functions[name][1](audio_bytes=tf.constant([data]))["probabilities"].numpy()
            return time.perf_counter() - start

        warmup = {name: [] for name in args.models}
        for i in range(args.warmup):
            for name in args.models:
                warmup[name].append(call(name, contents[i % len(contents)]))
        latencies = {name: [] for name in args.models}
        per_file = {name: [[] for _ in contents] for name in args.models}
        load_before = host.loadavg()
        start = time.perf_counter()
        for i in range(args.calls):
            for name in args.models:
                elapsed = call(name, contents[i % len(contents)])
                latencies[name].append(elapsed)
                per_file[name][i % len(contents)].append(elapsed)
        timed_wall = time.perf_counter() - start
        load_after = host.loadavg()
    finally:
        functions.clear()
        shutil.rmtree(workdir, ignore_errors=True)

    rows = []
    for name in args.models:
        ms = np.asarray(latencies[name]) * 1000.0
        rows.append({
            **described[name],
            "calls": len(ms),
            "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p90_ms": round(float(np.percentile(ms, 90)), 1),
            "mean_ms": round(float(ms.mean()), 1),
            "min_ms": round(float(ms.min()), 1),
            "max_ms": round(float(ms.max()), 1),
            "warmup_ms": [round(1000.0 * value, 1) for value in warmup[name]],
            "median_ms_per_file": [round(1000.0 * float(np.median(values)), 1) if values else None
                                   for values in per_file[name]],
        })
    reference = next((row for row in rows if row["model"] == REFERENCE), None)
    for row in rows:
        row["p50_ratio_to_encoder"] = round(row["p50_ms"] / reference["p50_ms"], 2) if reference else None
        row["p90_ratio_to_encoder"] = round(row["p90_ms"] / reference["p90_ms"], 2) if reference else None

    machine = host.machine_info()
    print(f"\nmachine: {host.machine_line(machine)}; load average {load_before} -> {load_after} over the timed calls")
    print(f"requests: serve_wav, batch 1, {len(contents)} EMO-DB files at duration quantiles "
          f"({min(seconds):.2f}-{max(seconds):.2f} s, mean {np.mean(seconds):.2f} s), {args.warmup} warm-up and "
          f"{args.calls} timed calls per model, round-robin over the models ({timed_wall:.1f} s)\n")
    print("| model | parameters | p50 ms | p90 ms | mean ms | max ms | p50 / encoder | p90 / encoder |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        ratio50 = "-" if row["p50_ratio_to_encoder"] is None else f"{row['p50_ratio_to_encoder']:.2f}"
        ratio90 = "-" if row["p90_ratio_to_encoder"] is None else f"{row['p90_ratio_to_encoder']:.2f}"
        print(f"| {row['model']} | {row['parameters'] / 1e6:.2f} M | {row['p50_ms']:.1f} | {row['p90_ms']:.1f} | "
              f"{row['mean_ms']:.1f} | {row['max_ms']:.1f} | {ratio50} | {ratio90} |")

    if args.json:
        payload = {
            "benchmark": "latency",
            "command": host.command_line("latency.py", sys.argv[1:] if argv is None else argv),
            "data_dir": "DATA_DIR in the command: the EMO-DB wav folder (its path is not recorded)",
            "signature": "serve_wav",
            "batch": 1,
            "files": [os.path.basename(path) for path in paths],
            "file_seconds": [round(value, 3) for value in seconds],
            "warmup_calls": args.warmup,
            "timed_calls": args.calls,
            "seed": args.seed,
            "machine": machine,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "timed_wall_s": round(timed_wall, 1),
            "rows": rows,
        }
        host.write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
