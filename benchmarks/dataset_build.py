"""Building tf.data pipelines: the mapped functions traced as written against converted by AutoGraph.

`tf_pipeline.make_dataset` maps its functions with
`tf_pipeline.dataset.map_without_autograph`; the reference maps them with
plain `Dataset.map`, which converts each function with AutoGraph before
tracing it. What is timed is the construction of a training dataset of a
small synthetic corpus (every `map` traces its function then): the first
one in a fresh process (AutoGraph's one-time set-up included) and the
median of `--builds` more. Each kind runs in its own Python process, the
two kinds alternating over `--rounds`; the last column checks that both
pipelines give the same first batch. Asserts nothing.

    python benchmarks/dataset_build.py
    python benchmarks/dataset_build.py --rounds 3 --json benchmarks/results/dataset_build_cpu.json
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time

import numpy as np

import host  # benchmarks/host.py: what results record of the machine and the command

KINDS = ("autograph", "as_written")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--builds", type=int, default=5, help="builds after the first, per process (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="processes of each kind (default: %(default)s)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--corpus_dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.builds < 1 or args.rounds < 1:
        parser.error(f"--builds and --rounds must be at least 1, got {args.builds} and {args.rounds}")
    return args


def child(kind, corpus_dir, builds):
    """One process: the first build, then `builds` more; prints one JSON line."""
    import tensorflow as tf

    import tf_pipeline
    from tf_pipeline import dataset

    if kind == "autograph":
        dataset.map_without_autograph = lambda data, fn, **kwargs: data.map(fn, **kwargs)
    corpus = tf_pipeline.corpora.synthetic(corpus_dir, n_speakers=3, per_class=2, emotions="WTN")
    times, first_batch = [], None
    for _ in range(1 + builds):
        start = time.perf_counter()
        data = dataset.make_dataset(corpus, n_segments=3, batch_size=4, training=True, image_size=(67, 67))
        times.append(time.perf_counter() - start)
        if first_batch is None:
            first_batch = float(tf.reduce_sum(next(iter(data))[0]))
    print(json.dumps({"first_s": times[0], "next_s": float(np.median(times[1:])), "checksum": first_batch}))


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.child:
        child(args.child, args.corpus_dir, args.builds)
        return 0
    results = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory() as corpus_dir:
        for index in range(args.rounds):
            for kind in (KINDS if index % 2 == 0 else KINDS[::-1]):
                out = subprocess.run([sys.executable, __file__, f"--child={kind}", f"--corpus_dir={corpus_dir}",
                                      f"--builds={args.builds}"], capture_output=True, text=True, check=True)
                results[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(f"round {index + 1} {kind}: {results[kind][-1]}", flush=True)
    rows = {kind: {"first_s": round(float(np.median([r["first_s"] for r in runs])), 3),
                   "next_s": round(float(np.median([r["next_s"] for r in runs])), 3),
                   "checksums": sorted({r["checksum"] for r in runs})}
            for kind, runs in results.items()}
    same = rows["autograph"]["checksums"] == rows["as_written"]["checksums"]
    print("\n| mapped functions | first build s | later builds s (median) |")
    print("|---|---:|---:|")
    for kind in KINDS:
        print(f"| {kind} | {rows[kind]['first_s']:.3f} | {rows[kind]['next_s']:.3f} |")
    ratios = {key: round(rows["autograph"][key] / rows["as_written"][key], 2) for key in ("first_s", "next_s")}
    print(f"| x (autograph / as written) | {ratios['first_s']:.2f} | {ratios['next_s']:.2f} |")
    print(f"same first batch: {same}")
    machine = host.machine_info()
    print(f"\nmachine: {host.machine_line(machine)}")
    if args.json:
        host.write_json(args.json, {"command": host.command_line("dataset_build.py", sys.argv[1:] if argv is None else argv),
                                    "machine": machine, "rows": rows, "x": ratios, "same_first_batch": same,
                                    "runs": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
