"""Wall time of a whole LOSO evaluation: the speech-encoder probe against IS10 + linear SVM.

Runs, one after the other in one process, the same leave-one-speaker-out
folds of EMO-DB with two systems, each from a cold start:

(a) `encoder_stats` / `probe`: `keras_ser.training.loso.run_loso` with
    `TrainConfig(model="encoder_stats", recipe="probe", validation="none",
    batch_size=16)` in a fresh temporary run folder. Nothing is cached
    beforehand: the process has never computed encoder features (the
    in-memory cache of `keras_ser.training.frozen` is cleared) and no
    `.npz` feature cache is used, so the time holds building the model,
    loading the shipped encoder weights, the Mel frames and encoder
    features of every utterance, per fold the probe's inner
    leave-one-speaker-out choice of C and the test predictions (the
    exported model's path: Mel frames -> encoder -> head), and the report.
(b) openSMILE IS10 functionals + linear SVM, as `experiments/baselines.py
    --feature_set=IS10 --normalization=train`: openSMILE extraction of
    every utterance into a fresh, empty cache folder (so the features are
    computed, not read), then `keras_ser.baselines.run_loso` (per fold C
    by inner leave-one-speaker-out, refit, test) in a fresh run folder.

TensorFlow and Keras are imported before either clock starts (the import
time is printed apart). Prints per system the folds, wall seconds, seconds
per fold, the seconds of feature extraction inside them, the CPU seconds
(user + system, this process and its finished children), pooled UA/WA, the
ratio (a)/(b) of wall times (and of CPU seconds, which other processes on a
shared machine change less), the machine line, and whether (a) is under the
bar of 10 minutes for the 10 folds with extraction included. Times are printed,
never asserted. With `--json PATH` the table is also written as JSON.

    python benchmarks/loso_speed.py --data_dir /data/emodb/wav \\
        --json benchmarks/results/loso_speed_cpu.json
    python benchmarks/loso_speed.py --data_dir /data/emodb/wav --folds 03,08
"""

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time

import host  # benchmarks/host.py: what results record of the machine and the command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a script from a checkout: make the repository importable
    sys.path.insert(0, ROOT)

BAR_SECONDS = 600.0  # the bar: the encoder's 10-fold LOSO, extraction included, in 10 minutes
ENCODER_CONFIG = dict(model="encoder_stats", recipe="probe", validation="none", batch_size=16)
SYSTEMS = ("encoder", "is10_svm")
LABELS = {"encoder": "encoder_stats + probe (GE2E, frozen)", "is10_svm": "openSMILE IS10 + linear SVM"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="EMO-DB wav folder (e.g. /data/emodb/wav)")
    parser.add_argument("--folds", default="all",
                        help="test speakers, comma-separated (e.g. 03,08), or 'all' (default: all 10)")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma-separated, run in this order (default: {','.join(SYSTEMS)}); "
                             "the ratio needs both")
    parser.add_argument("--extract_workers", type=int, default=1,
                        help="files openSMILE processes in parallel (default 1, experiments/baselines.py's)")
    parser.add_argument("--svm_jobs", type=int, default=1,
                        help="parallel SVM fits in model selection (default 1, experiments/baselines.py's)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary run and cache folders (their path is printed)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the table as JSON to PATH")
    args = parser.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or not systems:
        parser.error(f"--systems: unknown {unknown}; choose from {', '.join(SYSTEMS)}")
    args.systems = list(dict.fromkeys(systems))
    return args


def _cpu_seconds():
    """User + system CPU seconds of this process and of its finished children (the openSMILE worker)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_encoder(corpus, speakers, data_dir, workdir):
    """(a): the encoder probe's LOSO from a cold start; returns a result row."""
    from keras_ser.training import frozen
    from keras_ser.training import loso
    from keras_ser.training.config import TrainConfig

    frozen._FEATURES.clear()  # no features computed before the clock starts
    extraction = []
    original = frozen.corpus_features

    def timed_corpus_features(*args, **kwargs):  # the same call, timed when it computes
        cold = not frozen._FEATURES
        start = time.perf_counter()
        result = original(*args, **kwargs)
        if cold:
            extraction.append(time.perf_counter() - start)
        return result

    run_dir = os.path.join(workdir, "encoder_probe")
    config = TrainConfig(**ENCODER_CONFIG)
    lines = []
    frozen.corpus_features = timed_corpus_features
    try:
        start = time.perf_counter()
        report = loso.run_loso(corpus, config, run_dir, speakers=speakers, data_dir=data_dir, verbose=0,
                               command="benchmarks/loso_speed.py", log=lines.append, tensorboard=False)
        wall = time.perf_counter() - start
    finally:
        frozen.corpus_features = original
    folds = report["folds"]
    return {
        "system": "encoder",
        "label": LABELS["encoder"],
        "config": config.to_dict(),
        "folds": len(folds),
        "speakers": [fold["test_speaker"] for fold in folds],
        "wall_s": round(wall, 2),
        "s_per_fold": round(wall / len(folds), 2),
        "extraction_s": round(sum(extraction), 2),
        "extraction_note": "encoder features of every utterance (inside the first fold)",
        "fold_wall_s": [fold.get("wall_time_s") for fold in folds],
        "pooled_ua": report["pooled"]["ua"],
        "pooled_wa": report["pooled"]["wa"],
        "mean_ua": report["mean"]["ua"],
        "mean_wa": report["mean"]["wa"],
        "chosen_C": [((fold.get("history") or {}).get("probe") or {}).get("C") for fold in _fold_files(run_dir, folds)],
    }


def _fold_files(run_dir, folds):
    from keras_ser.training.loso import fold_path

    records = []
    for fold in folds:
        with open(fold_path(run_dir, fold["test_speaker"])) as handle:
            records.append(json.load(handle))
    return records


def run_is10_svm(corpus, folds, data_dir, workdir, extract_workers, svm_jobs):
    """(b): openSMILE IS10 + linear SVM LOSO, extraction into a fresh cache; returns a result row."""
    from keras_ser.baselines import opensmile_features
    from keras_ser.baselines import svm
    from keras_ser.baselines.config import BaselineConfig

    config = BaselineConfig(feature_set="IS10", normalization="train")
    cache_dir = os.path.join(workdir, "opensmile_cache")
    os.makedirs(cache_dir)
    start = time.perf_counter()
    functionals = opensmile_features.extract_functionals(corpus.paths, config.feature_set, cache_dir=cache_dir,
                                                         num_workers=extract_workers)
    extraction = time.perf_counter() - start
    if functionals.from_cache:  # cannot happen with a fresh folder; never time a warm cache
        raise RuntimeError(f"openSMILE features came from a cache ({functionals.cache_file})")
    provenance = {"corpus": corpus.name, "data_dir": os.path.abspath(data_dir),
                  "command": "benchmarks/loso_speed.py", "features": dict(functionals.info)}
    run = svm.run_loso(functionals.features, corpus.labels, corpus.speaker_ids, folds,
                       os.path.join(workdir, "is10_svm"), config, corpus.class_names, paths=corpus.paths,
                       provenance=provenance, n_jobs=svm_jobs)
    wall = time.perf_counter() - start
    results = run.results
    fold_records = results.get("folds") or []
    return {
        "system": "is10_svm",
        "label": LABELS["is10_svm"],
        "config": config.to_dict(),
        "folds": len(run.computed),
        "speakers": list(run.computed),
        "wall_s": round(wall, 2),
        "s_per_fold": round(wall / len(run.computed), 2),
        "extraction_s": round(extraction, 2),
        "extraction_note": f"openSMILE IS10 of every utterance ({extract_workers} worker(s)), fresh cache folder",
        "fold_wall_s": [record.get("wall_time_s") for record in fold_records] if fold_records else None,
        "pooled_ua": results["pooled"]["ua"],
        "pooled_wa": results["pooled"]["wa"],
        "mean_ua": results["mean"]["ua"],
        "mean_wa": results["mean"]["wa"],
        "chosen_C": [record["history"]["svm"]["C"] for record in _fold_files(run.run_dir, fold_records)],
        "svm_jobs": svm_jobs,
    }


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    start = time.perf_counter()
    import keras
    import tensorflow as tf

    import keras_ser  # noqa: F401 - imported before the clocks start, as TensorFlow and Keras
    from tf_pipeline import corpora
    from tf_pipeline.folds import loso_folds
    import_s = time.perf_counter() - start

    corpus = corpora.emodb(args.data_dir)
    speakers = None if args.folds.strip().lower() == "all" else [s.strip() for s in args.folds.split(",") if s.strip()]
    folds = loso_folds(corpus, validation="none", speakers=speakers)
    speakers = [fold.test_speaker for fold in folds]
    machine = host.machine_info()
    machine_line = host.machine_line(machine)
    print(f"{corpus.name}: {len(corpus)} utterances, {len(corpus.speakers)} speakers; folds: {','.join(speakers)}",
          flush=True)
    print(f"machine: {machine_line}", flush=True)
    print(f"imports (TensorFlow, Keras, keras_ser; outside both clocks): {import_s:.1f} s", flush=True)

    workdir = tempfile.mkdtemp(prefix="keras_ser_loso_speed_")
    rows = []
    try:
        for system in args.systems:
            load_before = host.loadavg()
            cpu_before = _cpu_seconds()
            print(f"== {LABELS[system]}: running {len(folds)} folds in {workdir} ...", flush=True)
            if system == "encoder":
                row = run_encoder(corpus, speakers, args.data_dir, workdir)
            else:
                row = run_is10_svm(corpus, folds, args.data_dir, workdir, args.extract_workers, args.svm_jobs)
            row["cpu_s"] = round(_cpu_seconds() - cpu_before, 2)
            row["cpu_s_per_wall_s"] = round(row["cpu_s"] / row["wall_s"], 2)
            row["loadavg_before"] = load_before
            row["loadavg_after"] = host.loadavg()
            rows.append(row)
            print(f"   {row['wall_s']:.1f} s ({row['extraction_s']:.1f} s extraction; {row['cpu_s']:.0f} CPU s), pooled UA "
                  f"{100 * row['pooled_ua']:.1f} WA {100 * row['pooled_wa']:.1f}; load average "
                  f"{row['loadavg_before']} -> {row['loadavg_after']}", flush=True)
    finally:
        if args.keep:
            print(f"run and cache folders kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    by_system = {row["system"]: row for row in rows}
    ratio = cpu_ratio = None
    if "encoder" in by_system and "is10_svm" in by_system:
        ratio = by_system["encoder"]["wall_s"] / by_system["is10_svm"]["wall_s"]
        cpu_ratio = by_system["encoder"]["cpu_s"] / by_system["is10_svm"]["cpu_s"]

    print()
    print("| system | folds | wall s | s / fold | extraction s | CPU s | pooled UA % | pooled WA % | wall / IS10+SVM |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        versus = by_system.get("is10_svm")
        cell = f"{row['wall_s'] / versus['wall_s']:.2f}" if versus else "-"
        print(f"| {row['label']} | {row['folds']} | {row['wall_s']:.1f} | {row['s_per_fold']:.1f} | "
              f"{row['extraction_s']:.1f} | {row['cpu_s']:.0f} | {100 * row['pooled_ua']:.1f} | {100 * row['pooled_wa']:.1f} | {cell} |")
    if ratio is not None:
        print(f"\nratio (a)/(b), encoder LOSO wall / IS10+SVM LOSO wall: {ratio:.2f} "
              f"(CPU seconds: {cpu_ratio:.2f}; other processes on the machine change the wall ratio more)")
    bar = None
    if "encoder" in by_system:
        encoder = by_system["encoder"]
        under = encoder["wall_s"] <= BAR_SECONDS
        bar = {"seconds": BAR_SECONDS, "folds": 10, "measured_s": encoder["wall_s"],
               "measured_folds": encoder["folds"], "under_bar": under if encoder["folds"] == 10 else None}
        if encoder["folds"] == 10:
            print(f"bar: encoder LOSO, 10 folds with extraction, within {BAR_SECONDS / 60:.0f} min: "
                  f"{'yes' if under else 'NO'} ({encoder['wall_s'] / 60:.1f} min)")
        else:
            print(f"bar ({BAR_SECONDS / 60:.0f} min for 10 folds with extraction): not judged, "
                  f"{encoder['folds']} fold(s) ran ({encoder['wall_s'] / 60:.1f} min)")

    if args.json:
        payload = {
            "benchmark": "loso_speed",
            "command": host.command_line("loso_speed.py", sys.argv[1:] if argv is None else argv),
            "data_dir": "DATA_DIR in the command: the EMO-DB wav folder (its path is not recorded)",
            "corpus": corpus.name,
            "n_utterances": len(corpus),
            "speakers": speakers,
            "machine": machine,
            "import_s": round(import_s, 2),
            "rows": rows,
            "ratio_encoder_over_is10_svm": None if ratio is None else round(ratio, 3),
            "cpu_ratio_encoder_over_is10_svm": None if cpu_ratio is None else round(cpu_ratio, 3),
            "bar": bar,
        }
        host.write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
