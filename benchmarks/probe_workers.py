"""The probe's worker processes: what starting them costs a LOSO run's first parallel fit.

`keras_ser.training.frozen.fit_probe(n_jobs=2)` on random features of an
EMO-DB fold's shape (480 x 2560, 8 speakers, 6 classes, two values of C),
twice in one fresh process: the first call starts joblib's workers, the
second finds them started (the reference). Also reported: the resident
memory of a worker and whether it imported TensorFlow (it does when the fit
functions reach it by reference: `keras_ser.training.regressions` sends
them by value). Each `--rounds` is a new process. Asserts nothing.

    python benchmarks/probe_workers.py --rounds 3
"""

import argparse
import json
import subprocess
import sys
import time

import numpy as np

import host  # benchmarks/host.py: what results record of the machine and the command


def child():
    from joblib import Parallel
    from joblib import delayed

    from keras_ser.training import frozen

    rng = np.random.default_rng(0)
    labels, groups = np.tile(np.arange(6), 80), np.repeat(np.arange(8), 60)
    features = rng.normal(size=(480, 2560))
    features[:, :6] += 2 * np.eye(6)[labels]
    times = []
    for _ in range(2):
        frozen._INNER_FITS.clear()
        start = time.perf_counter()
        probe = frozen.fit_probe(features, labels, groups, 6, c_grid=(0.01, 1.0), n_jobs=2)
        times.append(time.perf_counter() - start)

    def worker_state():
        import sys

        # The resident set now (ru_maxrss would carry the forking parent's peak across exec on Linux).
        with open("/proc/self/status") as handle:
            rss_kb = next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
        return "tensorflow" in sys.modules, rss_kb / 1024

    states = Parallel(n_jobs=2)(delayed(worker_state)() for _ in range(2))
    print(json.dumps({"first_s": times[0], "second_s": times[1], "C": probe["C"],
                      "worker_imported_tensorflow": any(s[0] for s in states),
                      "worker_rss_mb": max(s[1] for s in states)}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes (default: %(default)s)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.child:
        child()
        return 0
    runs = []
    for index in range(args.rounds):
        out = subprocess.run([sys.executable, __file__, "--child"], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"round {index + 1}: {runs[-1]}", flush=True)
    first, second = (float(np.median([run[key] for run in runs])) for key in ("first_s", "second_s"))
    print("\n| first fit (starts the workers) s | second fit s | x | worker imported TensorFlow | worker resident MB |")
    print("|---:|---:|---:|---|---:|")
    print(f"| {first:.2f} | {second:.2f} | {first / second:.2f} | {any(r['worker_imported_tensorflow'] for r in runs)} "
          f"| {max(r['worker_rss_mb'] for r in runs):.0f} |")
    machine = host.machine_info()
    print(f"\nmachine: {host.machine_line(machine)}")
    if args.json:
        host.write_json(args.json, {"command": host.command_line("probe_workers.py", sys.argv[1:] if argv is None else argv),
                                    "machine": machine, "runs": runs, "first_s": first, "second_s": second})
    return 0


if __name__ == "__main__":
    sys.exit(main())
