"""TensorFlow Lite against the SavedModel: size on disk and latency per utterance.

For each model (`--models`), exports a SavedModel (`saved_models.export`)
and a `.tflite` file (`saved_models.export_tflite`) into a temporary folder,
then times one utterance per call on the same inputs: 16 kHz float32
waveforms of `--files` real EMO-DB files at evenly spaced quantiles of
duration (decoded once, before timing: both runtimes take a waveform):

- `saved_model`: `tf.saved_model.load(...).signatures["serving_default"]`
  with `waveform` `[1, samples]` and `num_samples` `[1]` (TensorFlow's own
  thread pools);
- `tflite_Nt`: `tf.lite.Interpreter(model_path, num_threads=N)` for each N
  in `--tflite_threads`, per call `resize_tensor_input([1, samples])`,
  `allocate_tensors()`, `set_tensor`, `invoke()`, `get_tensor` (what an
  application does for utterances of different lengths).

Models: `encoder_stats_emodb` (`keras_ser.from_preset("encoder_stats_emodb")`,
the shipped trained model: the pretrained GE2E encoder's 3 LSTM layers over
Mel power frames, statistics pooling, the logistic-regression head trained
on EMO-DB; the network of `build_model("encoder_stats")`) and `cnn_sru_tiny`
(the tiny CNN+SRU of `benchmarks/serving.py --preset=tiny`, random weights,
which cost the same time as trained ones).

After `--warmup` untimed calls per runtime, `--rounds` rounds run: in each,
every file goes to every runtime in turn (round-robin, so load from other
processes falls on all alike). Prints size, p50/p90/mean latency and the
ratios of the TFLite rows to the SavedModel's, plus the largest difference
of probabilities between the two; with `--json PATH` also writes them.
Times are printed, never asserted.

    python benchmarks/tflite.py --data_dir /data/emodb/wav --json benchmarks/results/tflite_cpu.json
"""

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np

import host  # benchmarks/host.py: what results record of the machine and the command

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:  # run as a script from a checkout: make the repository importable
    sys.path.insert(0, ROOT)

MODELS = ("encoder_stats_emodb", "cnn_sru_tiny")
EMOTIONS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]
TINY = dict(n_segments=2, num_classes=7, sru_units=16, image_size=67,
            backbone_kwargs={"filters": (8, 8, 8, 8, 8), "fc_units": 16})  # benchmarks/serving.py's "tiny"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="EMO-DB wav folder (e.g. /data/emodb/wav)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--files", type=int, default=20,
                        help="EMO-DB files, at evenly spaced quantiles of duration (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the files (default 3)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per runtime first (default 3)")
    parser.add_argument("--tflite_threads", default="1,2",
                        help="comma-separated num_threads of the TFLite interpreter (default 1,2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or [m for m in models if m not in MODELS]:
        parser.error(f"--models: choose from {', '.join(MODELS)}")
    args.models = list(dict.fromkeys(models))
    try:
        args.tflite_threads = [int(t) for t in args.tflite_threads.split(",") if t.strip()]
    except ValueError:
        parser.error("--tflite_threads: comma-separated integers")
    if not args.tflite_threads or min(args.tflite_threads) < 1:
        parser.error("--tflite_threads: at least one value, each at least 1")
    if args.files < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("--files and --rounds must be at least 1, --warmup at least 0")
    return args


def _folder_bytes(path, skip=()):
    total = 0
    for folder, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d not in skip]
        total += sum(os.path.getsize(os.path.join(folder, name)) for name in files)
    return total


def build(name, seed):
    import keras

    import keras_ser

    keras.utils.set_random_seed(seed)
    if name == "encoder_stats_emodb":
        return keras_ser.from_preset(name, compile=False)
    return keras_ser.build_model(compile=False, class_names=EMOTIONS, **TINY)


class SavedModelRunner:
    def __init__(self, version_dir):
        import tensorflow as tf

        self._tf = tf
        self.function = tf.saved_model.load(version_dir).signatures["serving_default"]

    def __call__(self, waveform):
        tf = self._tf
        outputs = self.function(waveform=tf.constant(waveform[None]),
                                num_samples=tf.constant([waveform.shape[0]], tf.int32))
        return outputs["probabilities"].numpy()[0]


class TFLiteRunner:
    def __init__(self, path, threads):
        import tensorflow as tf

        with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice (LiteRT)
            warnings.simplefilter("ignore")
            self.interpreter = tf.lite.Interpreter(model_path=path, num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]

    def __call__(self, waveform):
        interpreter = self.interpreter
        interpreter.resize_tensor_input(self.input, [1, waveform.shape[0]])
        interpreter.allocate_tensors()
        interpreter.set_tensor(self.input, waveform[None])
        interpreter.invoke()
        return interpreter.get_tensor(self.output)[0].copy()


def _stats(seconds):
    ms = np.asarray(seconds) * 1000.0
    return {
        "calls": int(ms.size),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p90_ms": round(float(np.percentile(ms, 90)), 1),
        "mean_ms": round(float(ms.mean()), 1),
        "min_ms": round(float(ms.min()), 1),
        "max_ms": round(float(ms.max()), 1),
    }


def run_model(name, args, waveforms, workdir):
    import keras

    from saved_models import export
    from saved_models import export_tflite
    from saved_models import tflite_ops

    model = build(name, args.seed)
    parameters = int(model.count_params())
    start = time.perf_counter()
    version_dir = export(model, workdir, name)
    saved_model_export_s = time.perf_counter() - start
    start = time.perf_counter()
    tflite_path = export_tflite(model, workdir, name)
    tflite_export_s = time.perf_counter() - start
    del model
    keras.backend.clear_session()
    gc.collect()
    ops = tflite_ops(tflite_path)
    sizes = {
        "saved_model": _folder_bytes(version_dir),
        # The graph and variables alone (no warmup records, labels or metadata in assets.extra/).
        "saved_model_graph_and_variables": _folder_bytes(version_dir, skip=("assets.extra",)),
        "tflite": os.path.getsize(tflite_path),
    }
    runners = {}
    start = time.perf_counter()
    runners["saved_model"] = SavedModelRunner(version_dir)
    load_s = {"saved_model": time.perf_counter() - start}
    for threads in args.tflite_threads:
        key = f"tflite_{threads}t"
        start = time.perf_counter()
        runners[key] = TFLiteRunner(tflite_path, threads)
        load_s[key] = time.perf_counter() - start

    first_ms = {key: round(1000.0 * _timed(runner, waveforms[0])[1], 1) for key, runner in runners.items()}
    for i in range(1, args.warmup):
        for runner in runners.values():
            runner(waveforms[i % len(waveforms)])
    latencies = {key: [] for key in runners}
    per_file = {key: [[] for _ in waveforms] for key in runners}
    worst = 0.0
    load_before = host.loadavg()
    start = time.perf_counter()
    for _ in range(args.rounds):
        for index, waveform in enumerate(waveforms):
            outputs = {}
            for key, runner in runners.items():
                outputs[key], elapsed = _timed(runner, waveform)
                latencies[key].append(elapsed)
                per_file[key][index].append(elapsed)
            for key, output in outputs.items():
                worst = max(worst, float(np.abs(output - outputs["saved_model"]).max()))
    timed_wall = time.perf_counter() - start
    load_after = host.loadavg()
    runners.clear()

    rows = []
    reference = None
    for key in latencies:
        row = {"runtime": key, "size_bytes": sizes["tflite" if key.startswith("tflite") else "saved_model"],
               "load_s": round(load_s[key], 2), "first_call_ms": first_ms[key], **_stats(latencies[key]),
               "median_ms_per_file": [round(1000.0 * float(np.median(v)), 1) for v in per_file[key]]}
        reference = reference or row
        row["size_ratio_to_saved_model"] = round(row["size_bytes"] / reference["size_bytes"], 3)
        row["p50_ratio_to_saved_model"] = round(row["p50_ms"] / reference["p50_ms"], 2)
        row["p90_ratio_to_saved_model"] = round(row["p90_ms"] / reference["p90_ms"], 2)
        rows.append(row)
    return {
        "model": name,
        "parameters": parameters,
        "export_s": {"saved_model": round(saved_model_export_s, 1), "tflite": round(tflite_export_s, 1)},
        "sizes_bytes": sizes,
        "tflite_ops": ops,
        "max_abs_probability_difference": float(f"{worst:.3g}"),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "timed_wall_s": round(timed_wall, 1),
        "rows": rows,
    }


def _timed(runner, waveform):
    start = time.perf_counter()
    output = runner(waveform)
    return output, time.perf_counter() - start


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    import tf_pipeline
    from tf_pipeline import corpora

    corpus = corpora.emodb(args.data_dir)
    sizes = np.array([os.path.getsize(path) for path in corpus.paths])
    order = np.argsort(sizes, kind="stable")
    picks = [int(order[min(len(order) - 1, int((i + 0.5) / args.files * len(order)))]) for i in range(args.files)]
    paths = [corpus.paths[i] for i in picks]
    # Both zoo layouts read 16 kHz mono (MelFramesConfig and FeatureConfig).
    waveforms = [np.asarray(tf_pipeline.load_audio(path), np.float32) for path in paths]
    seconds = [w.shape[0] / 16000.0 for w in waveforms]

    results = []
    workdir = tempfile.mkdtemp(prefix="keras_ser_tflite_")
    try:
        for name in args.models:
            result = run_model(name, args, waveforms, workdir)
            results.append(result)
            print(f"{name}: {result['parameters'] / 1e6:.2f} M parameters; exported in "
                  f"{result['export_s']['saved_model']:.1f} s (SavedModel) / {result['export_s']['tflite']:.1f} s "
                  f"(TFLite); TFLite ops: {len(result['tflite_ops']['builtin'])} built-in, select: "
                  f"{', '.join(result['tflite_ops']['select']) or 'none'}; largest |TFLite - SavedModel| "
                  f"probability difference {result['max_abs_probability_difference']:.2g}; sizes: .tflite "
                  f"{result['sizes_bytes']['tflite'] / 1e6:.2f} MB, SavedModel {result['sizes_bytes']['saved_model'] / 1e6:.2f} "
                  f"MB ({result['sizes_bytes']['saved_model_graph_and_variables'] / 1e6:.2f} MB without assets.extra/)",
                  flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    machine = host.machine_info()
    print(f"\nmachine: {host.machine_line(machine)}")
    print(f"inputs: 16 kHz float32 waveforms, batch 1, {len(waveforms)} EMO-DB files at duration quantiles "
          f"({min(seconds):.2f}-{max(seconds):.2f} s, mean {np.mean(seconds):.2f} s); {args.warmup} warm-up calls, "
          f"then {args.rounds} rounds over the files, round-robin over the runtimes\n")
    print("| model | runtime | size MB | size / SavedModel | p50 ms | p90 ms | mean ms | p50 / SavedModel | "
          "p90 / SavedModel | first call ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for result in results:
        for row in result["rows"]:
            print(f"| {result['model']} | {row['runtime']} | {row['size_bytes'] / 1e6:.2f} | "
                  f"{row['size_ratio_to_saved_model']:.2f} | {row['p50_ms']:.1f} | {row['p90_ms']:.1f} | "
                  f"{row['mean_ms']:.1f} | {row['p50_ratio_to_saved_model']:.2f} | "
                  f"{row['p90_ratio_to_saved_model']:.2f} | {row['first_call_ms']:.0f} |")

    if args.json:
        payload = {
            "benchmark": "tflite",
            "command": host.command_line("tflite.py", sys.argv[1:] if argv is None else argv),
            "data_dir": "DATA_DIR in the command: the EMO-DB wav folder (its path is not recorded)",
            "input": "waveform float32 [1, samples] at 16 kHz (SavedModel: serving_default with num_samples)",
            "size_note": "saved_model: the whole version folder (assets.extra/ with warmup records included); "
                         "sizes_bytes.saved_model_graph_and_variables leaves assets.extra/ out",
            "files": [os.path.basename(path) for path in paths],
            "file_seconds": [round(value, 3) for value in seconds],
            "warmup_calls": args.warmup,
            "rounds": args.rounds,
            "tflite_threads": args.tflite_threads,
            "seed": args.seed,
            "machine": machine,
            "models": results,
        }
        host.write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
