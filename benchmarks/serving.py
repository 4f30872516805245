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
"""

import argparse
import os
import platform
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


def _start_server(base_path, name):
    command = [sys.executable, "-c", "import sys; from keras_ser_cli.main import run; sys.exit(run())",
               "serve-local", f"--model_base_path={base_path}", f"--model_name={name}", "--port=0",
               "--rest_api_port=-1", "--max_batch_size=64"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
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


def _percentile(values, q):
    return float(np.percentile(np.asarray(values) * 1000.0, q)) if values else float("nan")


def _run_level(call_factory, contents, clients, requests):
    """`clients` threads send `requests` requests in all; returns (rps, latencies, errors)."""
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
                call(contents[index % len(contents)])
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=os.path.join(ROOT, "..", "shared", "data", "emodb", "wav"),
                        help="EMO-DB wav folder (default: ../shared/data/emodb/wav beside the repo)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny",
                        help="model built when --model is not given (default: tiny)")
    parser.add_argument("--model", help="a .keras model to export and serve instead of a preset")
    parser.add_argument("--requests", type=int, default=300, help="requests per concurrency level (default 300)")
    parser.add_argument("--clients", default="1,8,32", help="concurrency levels (default 1,8,32)")
    parser.add_argument("--seed", type=int, default=0, help="weights of the preset model (default 0)")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.clients.split(",")]

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import grpc
    import keras
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    import keras_ser
    from saved_models import export
    from tf_pipeline import corpora

    paths = corpora.emodb(args.data_dir).paths
    contents = [open(path, "rb").read() for path in paths]
    seconds = [(len(c) - 44) / 2 / 16000 for c in contents]

    workdir = tempfile.mkdtemp(prefix="keras_ser_bench_")
    process = None
    try:
        if args.model:
            model = keras.saving.load_model(args.model, compile=False)
            description = f"{args.model}"
        else:
            keras.utils.set_random_seed(args.seed)
            model = keras_ser.build_model(compile=False, class_names=EMOTIONS, **PRESETS[args.preset])
            description = f"preset {args.preset}"
        description += (f": {type(model).__name__}, {model.count_params() / 1e6:.2f} M parameters, "
                        f"input {tuple(model.input.shape[1:])}")
        start = time.perf_counter()
        version_dir = export(model, workdir, "ser")
        export_seconds = time.perf_counter() - start
        process, port = _start_server(os.path.join(workdir, "ser"), "ser")
        direct = tf.saved_model.load(version_dir).signatures["serve_wav"]

        def grpc_factory():
            stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))

            def call(data):
                request = predict_pb2.PredictRequest()
                request.model_spec.name = "ser"
                request.model_spec.signature_name = "serve_wav"
                request.inputs["audio_bytes"].dtype = tf.string.as_datatype_enum
                request.inputs["audio_bytes"].tensor_shape.dim.add().size = 1
                request.inputs["audio_bytes"].string_val.append(data)
                stub.Predict(request, 120.0)

            return call

        def direct_factory():
            return lambda data: direct(audio_bytes=tf.constant([data]))["probabilities"].numpy()

        for factory in (grpc_factory, direct_factory):  # warm both paths
            _run_level(factory, contents, 2, 8)

        rows, all_errors = [], []
        for clients in levels:
            server_rps, server_lat, server_err = _run_level(grpc_factory, contents, clients, args.requests)
            direct_rps, direct_lat, direct_err = _run_level(direct_factory, contents, clients, args.requests)
            all_errors += server_err + direct_err
            rows.append((clients, args.requests, server_rps, _percentile(server_lat, 50), _percentile(server_lat, 99),
                         len(server_err), direct_rps, _percentile(direct_lat, 50), _percentile(direct_lat, 99),
                         len(direct_err)))

        print(f"keras-ser serving benchmark: {description}")
        print(f"machine: {host.cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}, TensorFlow "
              f"{tf.__version__}; export took {export_seconds:.1f} s")
        print(f"requests: EMO-DB files, one 16-bit WAV per request through serve_wav ({len(contents)} files, "
              f"{np.mean(seconds):.2f} s mean, {max(seconds):.2f} s max), {args.requests} requests per level")
        print("server: keras-ser serve-local (gRPC, own process); direct: the loaded SavedModel's serve_wav "
              "called in the benchmark process\n")
        print("| clients | requests | server req/s | server p50 ms | server p99 ms | server errors | direct req/s "
              "| direct p50 ms | direct p99 ms | direct errors | overhead p50 ms | server/direct req/s |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for (clients, requests, s_rps, s50, s99, s_err, d_rps, d50, d99, d_err) in rows:
            print(f"| {clients} | {requests} | {s_rps:.1f} | {s50:.1f} | {s99:.1f} | {s_err} | {d_rps:.1f} | "
                  f"{d50:.1f} | {d99:.1f} | {d_err} | {s50 - d50:+.1f} | {s_rps / d_rps:.2f} |")
        if all_errors:
            print(f"\n{len(all_errors)} errors; first: {all_errors[0]}")
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
