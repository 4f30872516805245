"""Serving throughput: the development server against the SavedModel called directly.

Exports a model (a tiny CNN+SRU by default, `--preset=paper` for the full
network with random weights, or `--model=M.keras`), starts
`keras-ser serve-local` on it in a subprocess (port 0, so its gRPC server
does not share a Python interpreter with the clients), and sends real EMO-DB
files (16-bit WAV bytes, one file per request, the `serve_wav` signature)
from 1, 8 and 32 concurrent clients, each on its own gRPC channel, for a
fixed number of requests per level. For the same files and concurrency it
then calls the loaded SavedModel's `serve_wav` signature directly in this
process. Prints requests per second, p50/p99 latency and errors for both,
and the server's overhead (p50 difference, throughput ratio). Asserts
nothing; errors must be zero (they are printed with their messages).

    python benchmarks/serving.py --data_dir /data/emodb/wav
    python benchmarks/serving.py --preset=paper --requests=100

With `--server LABEL=FLAGS` (repeatable) it starts one server per entry
instead, each with those extra `serve-local` flags (words `env:NAME=VALUE`
set an environment variable of that server's process, e.g.
`env:TF_ENABLE_ONEDNN_OPTS=0`), all loaded before any is timed; at each
concurrency level the servers are timed one after the other, so the other
jobs of a shared machine weigh on them alike. The first server is the
reference: each row prints the ratios of requests/s and of p50 / p99
against it at the same level, and the CPU time (user + system, all
threads) each server process spent per answered request: unlike wall
time it hardly depends on what else runs on the machine, so on a shared
machine its ratio is the steadier measure of what batching saves (2
cores / CPU per request is the most a quiet 2-core machine could
serve). `--rounds=R` splits each level into R
rounds, every server timed once per round (the first rotating), so a
change of load during a level falls on all of them. `--direct` adds the direct calls. Batching
statistics (`Batched ...` lines) are printed when a server stops.
`--keras_preset=NAME` serves a trained model shipped with keras-ser
(`keras_ser.from_preset`), `--json` writes the result.

    python benchmarks/serving.py --data_dir /data/emodb/wav --keras_preset=fusion_stats_emodb \
        --requests=96 --server unbatched= --server batched=--enable_batching
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

import host  # benchmarks/host.py: what results record of the machine and the command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = {
    "tiny": dict(n_segments=2, num_classes=7, sru_units=16, image_size=67,
                 backbone_kwargs={"filters": (8, 8, 8, 8, 8), "fc_units": 16}),
    "paper": dict(n_segments=3, num_classes=7),  # AlexNet 227x227, SRU 4096: 107 M parameters
}
EMOTIONS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]


def _parse_server(text):
    """`LABEL=FLAGS` -> (label, flags, env)."""
    label, _, rest = text.partition("=")
    if not label:
        raise SystemExit(f"--server must be LABEL=FLAGS (FLAGS may be empty). Received: {text!r}")
    flags, env = [], {}
    for word in rest.split():
        if word.startswith("env:"):
            key, _, value = word[4:].partition("=")
            env[key] = value
        else:
            flags.append(word)
    return label, flags, env


def _start_server(base_path, name, flags=(), env=None):
    command = [sys.executable, "-c", "import sys; from keras_ser_cli.main import run; sys.exit(run())",
               "serve-local", f"--model_base_path={base_path}", f"--model_name={name}", "--port=0",
               "--rest_api_port=-1", "--max_batch_size=64", "--file_system_poll_wait_seconds=0", *flags]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
                               env={**os.environ, **(env or {})})
    text = ""
    for line in process.stdout:
        text += line
        if line.startswith("keras-ser serve-local is a development server"):
            break
    match = re.search(r"Running gRPC ModelServer at 127\.0\.0\.1:(\d+)", text)
    if not match:
        process.kill()
        raise RuntimeError(f"the server did not start:\n{text}")
    return process, int(match.group(1))


def _cpu_seconds(pid):
    """User + system CPU seconds of a process and its threads so far (Linux /proc), or None."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values, q):
    return float(np.percentile(np.asarray(values) * 1000.0, q)) if values else float("nan")


def _run_level(call_factory, contents, clients, requests, offset=0):
    """`clients` threads send `requests` requests in all (files from `offset` on); returns (rps, latencies, errors)."""
    latencies, errors = [], []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker():
        call = call_factory()
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            start = time.perf_counter()
            try:
                call(contents[(offset + index) % len(contents)])
            except Exception as error:  # noqa: BLE001 - counted and printed, never raised
                with lock:
                    errors.append(str(error).splitlines()[0][:200])
                continue
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return len(latencies) / wall, latencies, errors


def _stop(process):
    """Terminates a server; returns what it printed after its ready lines (the batching statistics)."""
    process.terminate()
    try:
        rest, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        rest, _ = process.communicate()
    return rest or ""


def _grpc_factory(port, name, signature="serve_wav"):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    def factory():
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))

        def call(data):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = name
            request.model_spec.signature_name = signature
            request.inputs["audio_bytes"].dtype = tf.string.as_datatype_enum
            request.inputs["audio_bytes"].tensor_shape.dim.add().size = 1
            request.inputs["audio_bytes"].string_val.append(data)
            stub.Predict(request, 300.0)

        return call

    return factory


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=os.path.join(ROOT, "..", "shared", "data", "emodb", "wav"),
                        help="EMO-DB wav folder (default: ../shared/data/emodb/wav beside the repo)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny",
                        help="model built when --model is not given (default: tiny)")
    parser.add_argument("--model", help="a .keras model to export and serve instead of a preset")
    parser.add_argument("--keras_preset", help="a trained model shipped with keras-ser (keras_ser.list_presets(), "
                        "e.g. fusion_stats_emodb) to export and serve instead of --preset")
    parser.add_argument("--requests", type=int, default=300, help="requests per concurrency level (default 300)")
    parser.add_argument("--clients", default="1,8,32", help="concurrency levels (default 1,8,32)")
    parser.add_argument("--rounds", type=int, default=1, help="split each level's requests into this many rounds, "
                        "every path timed once per round, the first one rotating (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="weights of the preset model and the order of the files "
                        "(default 0)")
    parser.add_argument("--server", action="append", default=[], metavar="LABEL=FLAGS",
                        help="a server to time, with extra serve-local flags and env:NAME=VALUE words (repeatable; "
                        "the first is the reference of the ratios). Default: one server without extra flags, "
                        "and --direct")
    parser.add_argument("--direct", action="store_true", help="also time the SavedModel called in this process "
                        "(always on without --server)")
    parser.add_argument("--json", help="write the result to this JSON file")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.clients.split(",")]
    servers = [_parse_server(text) for text in args.server] or [("server", [], {})]
    direct_too = args.direct or not args.server

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    import keras_ser
    from saved_models import export
    from tf_pipeline import corpora

    paths = corpora.emodb(args.data_dir).paths
    # A fixed random order: every level and server gets the same requests, spread over the corpus's lengths.
    paths = [paths[i] for i in np.random.default_rng(args.seed).permutation(len(paths))]
    contents = [open(path, "rb").read() for path in paths]
    seconds = [(len(c) - 44) / 2 / 16000 for c in contents]

    workdir = tempfile.mkdtemp(prefix="keras_ser_bench_")
    processes = []
    try:
        if args.keras_preset:
            model = keras_ser.from_preset(args.keras_preset, compile=False)
            description = f"keras-ser preset {args.keras_preset}"
        elif args.model:
            model = keras.saving.load_model(args.model, compile=False)
            description = f"{args.model}"
        else:
            keras.utils.set_random_seed(args.seed)
            model = keras_ser.build_model(compile=False, class_names=EMOTIONS, **PRESETS[args.preset])
            description = f"preset {args.preset}"
        description += (f": {type(model).__name__}, {model.count_params() / 1e6:.2f} M parameters, input "
                        + ", ".join(f"{tuple(t.shape[1:])}" for t in model.inputs))
        start = time.perf_counter()
        version_dir = export(model, workdir, "ser")
        export_seconds = time.perf_counter() - start
        del model
        ports = []
        for label, flags, env in servers:
            process, port = _start_server(os.path.join(workdir, "ser"), "ser", flags, env)
            processes.append(process)
            ports.append(port)
        factories = [(label, _grpc_factory(port, "ser")) for (label, _, _), port in zip(servers, ports)]
        pids = {label: process.pid for (label, _, _), process in zip(servers, processes)}
        if direct_too:
            direct = tf.saved_model.load(version_dir).signatures["serve_wav"]

            def direct_factory():
                return lambda data: direct(audio_bytes=tf.constant([data]))["probabilities"].numpy()

            factories.append(("direct", direct_factory))

        for _, factory in factories:  # warm every path
            _run_level(factory, contents, 2, 8)

        results = []
        per_round = [args.requests // args.rounds + (r < args.requests % args.rounds) for r in range(args.rounds)]
        for clients in levels:
            timed = {label: ([], [], 0.0, 0.0) for label, _ in factories}
            for round_index, count in enumerate(per_round):
                # Each round times every path in turn, the first one rotating.
                for k in range(len(factories)):
                    label, factory = factories[(k + round_index) % len(factories)]
                    cpu = _cpu_seconds(pids[label]) if label in pids else None
                    start = time.perf_counter()
                    _, latencies, errors = _run_level(factory, contents, clients, count, sum(per_round[:round_index]))
                    wall = time.perf_counter() - start
                    cpu = _cpu_seconds(pids[label]) - cpu if cpu is not None else float("nan")
                    lat, err, walls, cpus = timed[label]
                    timed[label] = (lat + latencies, err + errors, walls + wall, cpus + cpu)
            for label, _ in factories:
                latencies, errors, wall, cpu = timed[label]
                results.append({"label": label, "clients": clients, "requests": args.requests,
                                "rps": len(latencies) / wall, "p50_ms": _percentile(latencies, 50),
                                "p99_ms": _percentile(latencies, 99), "errors": len(errors),
                                "first_error": errors[0] if errors else None, "loadavg": host.loadavg(),
                                "server_cpu_ms": 1000.0 * cpu / max(len(latencies), 1)})
                print(f"  {label}, {clients} clients: {results[-1]['rps']:.1f} req/s, "
                      f"p50 {results[-1]['p50_ms']:.0f} ms", file=sys.stderr, flush=True)
        tails = {}
        for (label, _, _), process in zip(servers, processes):
            tails[label] = [line for line in _stop(process).splitlines() if line.startswith("Batched")]
        processes = []

        info = host.machine_info()
        print(f"keras-ser serving benchmark: {description}")
        print(f"machine: {host.machine_line(info)}; load average {host.loadavg()} at the end; export took "
              f"{export_seconds:.1f} s")
        print(f"requests: EMO-DB files in a fixed random order (seed {args.seed}), one 16-bit WAV per request "
              f"through serve_wav ({len(contents)} files, {np.mean(seconds):.2f} s mean, {max(seconds):.2f} s max), "
              f"{args.requests} requests per level and path in {args.rounds} round(s); load average at the end of "
              f"each level: {', '.join(str(r['loadavg'][0]) for r in results[::len(factories)])}")
        for label, flags, env in servers:
            words = [f"env:{k}={v}" for k, v in env.items()] + flags
            print(f"server {label}: keras-ser serve-local {' '.join(words) or '(no extra flags)'} (gRPC, own process)")
            for line in tails[label]:
                print(f"  {line}")
        if direct_too:
            print("direct: the loaded SavedModel's serve_wav called in the benchmark process")
        reference = factories[0][0]
        print(f"\nratios against {reference} at the same level\n")
        print("| clients | requests | path | req/s | p50 ms | p99 ms | errors | server CPU ms / request | req/s ratio "
              "| p50 ratio | p99 ratio | CPU / request ratio |")
        print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        by_level = {}
        for row in results:
            by_level.setdefault(row["clients"], {})[row["label"]] = row
        for row in results:
            ref = by_level[row["clients"]][reference]
            row.update(rps_ratio=row["rps"] / ref["rps"], p50_ratio=row["p50_ms"] / ref["p50_ms"],
                       p99_ratio=row["p99_ms"] / ref["p99_ms"], cpu_ratio=row["server_cpu_ms"] / ref["server_cpu_ms"])
            print(f"| {row['clients']} | {row['requests']} | {row['label']} | {row['rps']:.1f} | {row['p50_ms']:.1f} | "
                  f"{row['p99_ms']:.1f} | {row['errors']} | {row['server_cpu_ms']:.1f} | {row['rps_ratio']:.2f} | "
                  f"{row['p50_ratio']:.2f} | {row['p99_ratio']:.2f} | {row['cpu_ratio']:.2f} |")
        errors = [row for row in results if row["errors"]]
        if errors:
            print(f"\nerrors: {sum(r['errors'] for r in errors)}; first: {errors[0]['first_error']}")
        if args.json:
            host.write_json(args.json, {
                "command": host.command_line("serving.py", argv if argv is not None else sys.argv[1:]),
                "machine": info, "loadavg_end": host.loadavg(), "model": description,
                "servers": [{"label": label, "flags": flags, "env": env, "batching": tails[label]}
                            for label, flags, env in servers],
                "results": results,
            })
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
