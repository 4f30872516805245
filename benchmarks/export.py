"""Writing a SavedModel: `saved_models.export`'s save against `keras.export.ExportArchive`'s, same process.

Both write the same signatures (`serving_default`, `serve_wav`) of the
same model, built by `saved_models.export.serving_functions`:

- **archive** (the reference, what `saved_models.export` wrote with before):
  `keras.export.ExportArchive`, the model tracked, each signature added as
  its Python function and input signature, `write_out`;
- **direct**: `tf.saved_model.save` of `saved_models.export`'s root object
  (the signature functions and the model's variables, laid out as the
  archive lays them out).

Each write gets fresh signature functions (nothing traced before), the two
alternate within each of `--rounds` rounds, and every figure is wall time
of the write alone (no warmup records, no op audit), with the number of
functions TensorFlow traced during it and the ratio archive / direct. The
last column is the largest difference between the two SavedModels'
`serve_wav` probabilities on a few EMO-DB files (or synthetic speech
without `--data_dir`). Asserts nothing.

    python benchmarks/export.py --presets encoder_stats_emodb,fusion_stats_emodb --rounds 3
    python benchmarks/export.py --data_dir /data/emodb/wav --json benchmarks/results/export_cpu.json
"""

import argparse
import glob
import json
import os
import sys
import tempfile
import time

import numpy as np

import host  # benchmarks/host.py: what results record of the machine and the command


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="encoder_stats_emodb,fusion_stats_emodb",
                        help="comma-separated shipped presets to export (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="writes of each kind per preset (default: %(default)s)")
    parser.add_argument("--data_dir", default=None,
                        help="EMO-DB WAV folder for the comparison of the outputs (default: synthetic speech)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    return args


class TraceCounter:
    """Counts the outermost functions TensorFlow traces (nested traces belong to their caller)."""

    def __init__(self):
        from tensorflow.python.framework import func_graph

        self.count, self._depth, self._module = 0, 0, func_graph
        original = func_graph.func_graph_from_py_func

        def counted(*args, **kwargs):
            self._depth += 1
            try:
                return original(*args, **kwargs)
            finally:
                self._depth -= 1
                self.count += self._depth == 0

        func_graph.func_graph_from_py_func = counted


def write_archive(model, path):
    import keras

    from saved_models.export import serving_functions

    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, function in serving_functions(model).items():
        archive.add_endpoint(name, function.python_function, input_signature=list(function.input_signature))
    archive.write_out(path, verbose=False)


def write_direct(model, path):
    import tensorflow as tf

    from saved_models.export import saved_model_root
    from saved_models.export import serving_functions

    functions = serving_functions(model)
    tf.saved_model.save(saved_model_root(model, functions), path, signatures=functions)


WRITERS = {"archive": write_archive, "direct": write_direct}


def wav_batch(data_dir):
    import tensorflow as tf

    if data_dir:
        paths = sorted(glob.glob(os.path.join(data_dir, "*.wav")))[:4]
        if not paths:
            sys.exit(f"--data_dir {data_dir!r} holds no .wav files")
        return tf.constant([open(path, "rb").read() for path in paths])
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    voiced = (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(t.size))
    return tf.stack([tf.audio.encode_wav(voiced.astype(np.float32)[:, None], 16000)])


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import tensorflow as tf

    import keras_ser

    counter = TraceCounter()
    wavs = wav_batch(args.data_dir)
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for preset in [name.strip() for name in args.presets.split(",") if name.strip()]:
            model = keras_ser.from_preset(preset)
            times = {kind: [] for kind in WRITERS}
            traces = {kind: [] for kind in WRITERS}
            paths = {}
            for index in range(args.rounds):
                kinds = list(WRITERS) if index % 2 == 0 else list(WRITERS)[::-1]
                for kind in kinds:
                    path = os.path.join(root, f"{preset}-{kind}-{index}")
                    before, start = counter.count, time.perf_counter()
                    WRITERS[kind](model, path)
                    times[kind].append(time.perf_counter() - start)
                    traces[kind].append(counter.count - before)
                    paths[kind] = path
            outputs = {kind: tf.saved_model.load(paths[kind]).signatures["serve_wav"](audio_bytes=wavs)["probabilities"]
                       for kind in WRITERS}
            row = {
                "preset": preset,
                "archive_s": round(float(np.median(times["archive"])), 2),
                "direct_s": round(float(np.median(times["direct"])), 2),
                "archive_traces": traces["archive"][-1],
                "direct_traces": traces["direct"][-1],
                "saved_model_pb_bytes": {kind: os.path.getsize(os.path.join(paths[kind], "saved_model.pb"))
                                         for kind in WRITERS},
                "max_abs_diff": float(np.max(np.abs(outputs["archive"].numpy() - outputs["direct"].numpy()))),
                "all_s": {kind: [round(t, 2) for t in times[kind]] for kind in WRITERS},
            }
            row["x"] = round(row["archive_s"] / row["direct_s"], 2)
            rows.append(row)

    print("\n| preset | archive s | direct s | x | traced functions, archive / direct | max |diff| |")
    print("|---|---:|---:|---:|---|---:|")
    for row in rows:
        print(f"| {row['preset']} | {row['archive_s']:.2f} | {row['direct_s']:.2f} | {row['x']:.2f} | "
              f"{row['archive_traces']} / {row['direct_traces']} | {row['max_abs_diff']:.1e} |")
    machine = host.machine_info()
    print(f"\nmachine: {host.machine_line(machine)}")
    if args.json:
        host.write_json(args.json, {
            "command": host.command_line("export.py", sys.argv[1:] if argv is None else argv),
            "machine": machine,
            "rounds": args.rounds,
            "rows": rows,
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())
