#!/usr/bin/env python
"""The paper's Table V baselines: openSMILE functionals + linear SVM, LOSO.

IS09 and IS10 (the paper's Table V) and, beyond the paper, ComParE_2016 and
eGeMAPSv02. For every feature set and normalisation asked for, runs
leave-one-speaker-out over the corpus (every speaker once the test speaker)
through the LOSO runner of the Keras models (`keras_ser.training.loso`), so
each configuration's run directory under --run_dir has their layout:

    <run_dir>/<corpus>-<feature set>-<normalization>/
        run.json             configuration, data fingerprint, label, protocol, command
        fold_<speaker>.json  one per finished fold (WA, UA, confusion matrix,
                             predictions, chosen C, scaler stats, time)
        results.json, results.md    per fold, pooled, mean/std, versions, machine
    <run_dir>/summary.md     every configuration in <run_dir>, next to the paper

Runs resume: a fold whose file exists is skipped, and features are cached
(--cache_dir), so re-running the same command only finishes what is missing.

Per fold, the features are standardised with statistics of the training
speakers only and C is chosen by leave-one-speaker-out over the training
speakers; the test speaker is used for nothing but the final prediction.
`--normalization=speaker` is the labelled exception: each speaker,
the test speaker included, is standardised with its own mean/std.

Examples (the runs of docs/baselines.md):

    .venv/bin/python experiments/baselines.py --data_dir=/data/emodb/wav \\
        --feature_set=IS09,IS10 --normalization=train,speaker \\
        --run_dir=runs/baselines --cache_dir=runs/feature_cache
    .venv/bin/python experiments/baselines.py --data_dir=/data/emodb/wav \\
        --feature_set=ComParE_2016,eGeMAPSv02 --run_dir=runs/baselines --cache_dir=runs/feature_cache

Needs the baselines extra: pip install 'keras-ser[baselines]'.
"""

import argparse
import glob
import json
import os
import shlex
import sys
import time

if __package__ in (None, ""):  # run as a script from a checkout: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Jiang, Fu & Tao (2019), Table V: EMO-DB, leave-one-speaker-out, WA / UA in %.
PAPER_TABLE_V = {"IS09": (75.5, 74.0), "IS10": (78.1, 76.7)}

# keras_ser.baselines.FEATURE_SETS, named here so that --help needs no import of keras_ser (Keras).
FEATURE_SETS = ("IS09", "IS10", "ComParE_2016", "eGeMAPSv02")
CORPORA = ("emodb", "casia", "ravdess", "emovo")
NORMALIZATIONS = ("train", "speaker")  # checked again by BaselineConfig
DEFAULT_CACHE_DIR = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "keras_ser", "opensmile"
)


def _choices(value, allowed, what):
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"{what}: give at least one of {', '.join(allowed)}")
    canonical = {option.lower(): option for option in allowed}
    unknown = [item for item in items if item.lower() not in canonical]
    if unknown:
        raise argparse.ArgumentTypeError(f"{what}: unknown {unknown}; choose from {', '.join(allowed)}")
    return list(dict.fromkeys(canonical[item.lower()] for item in items))


def _floats(value):
    try:
        return [float(item) for item in value.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers. Received: {value!r}") from None


def build_parser():
    parser = argparse.ArgumentParser(
        prog="experiments/baselines.py",
        description=(
            "openSMILE IS09/IS10 (the paper's Table V), ComParE_2016 or eGeMAPSv02 functionals + linear SVM "
            "under leave-one-speaker-out. "
            "One resumable run directory per feature set and normalisation."
        ),
        epilog=(
            "Example: experiments/baselines.py --data_dir=/data/emodb/wav --feature_set=IS09,IS10 "
            "--normalization=train,speaker --run_dir=runs/baselines"
        ),
    )
    parser.add_argument("--data_dir", required=True,
                        help="corpus folder (EMO-DB: the wav/ folder or its parent); with several corpora one folder "
                             "per corpus, comma-separated in the same order")
    parser.add_argument("--corpus", default="emodb", type=lambda v: _choices(v, CORPORA, "--corpus"),
                        help=f"corpus reader, one of {', '.join(CORPORA)}, or a comma-separated list of them, "
                             "combined under the shared emotion names (tf_pipeline.corpora.combine) "
                             "(default: %(default)s)")
    parser.add_argument("--classes", default=None, type=lambda v: [name.strip() for name in v.split(",")],
                        help="classes to keep, comma-separated (tf_pipeline.corpora.select_classes; default: all)")
    parser.add_argument(
        "--feature_set",
        default=["IS09", "IS10"],
        type=lambda v: _choices(v, FEATURE_SETS, "--feature_set"),
        help=(
            "comma-separated: IS09 (384 functionals), IS10 (1582), ComParE_2016 (6373), eGeMAPSv02 (88) "
            "(default: IS09,IS10)"
        ),
    )
    parser.add_argument(
        "--normalization",
        default=["train"],
        type=lambda v: _choices(v, NORMALIZATIONS, "--normalization"),
        help=(
            "comma-separated: 'train' = standardisation fitted on the training speakers only (default); "
            "'speaker' = every speaker standardised with its own mean/std, which uses the test speaker's "
            "unlabelled audio and is labelled so in every result"
        ),
    )
    parser.add_argument(
        "--run_dir",
        default="runs/baselines",
        help="root folder; each configuration goes to <run_dir>/<corpus>-<set>-<normalization> (default: %(default)s)",
    )
    parser.add_argument(
        "--folds",
        default="all",
        help="test speakers to run, comma-separated (e.g. 03,08), or 'all' (default: %(default)s)",
    )
    parser.add_argument(
        "--cache_dir",
        default=DEFAULT_CACHE_DIR,
        help="folder of the openSMILE feature cache (.npz); 'none' disables it (default: %(default)s)",
    )
    parser.add_argument(
        "--c_grid",
        default=None,
        type=_floats,
        help=(
            "comma-separated SVM costs tried by the inner leave-one-speaker-out model selection "
            "(default: BaselineConfig's grid, 1e-5,1e-4,...,10)"
        ),
    )
    parser.add_argument(
        "--selection_metric",
        default="ua",
        choices=("ua", "wa"),
        help="what the inner cross-validation maximises when choosing C (default: %(default)s)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="parallel SVM fits in model selection (default: 1)")
    parser.add_argument(
        "--extract_workers", type=int, default=1, help="files openSMILE processes in parallel (default: 1)"
    )
    return parser


def _paper_cell(feature_set, corpus_name):
    if corpus_name != "emodb" or feature_set not in PAPER_TABLE_V:
        return "", ""
    wa, ua = PAPER_TABLE_V[feature_set]
    return f"{wa:.1f}", f"{ua:.1f}"


def _percent(value):
    return "n/a" if value is None else f"{100 * value:.1f}"


def _mean_std(mean, std, folds):
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if folds > 1 else f"{100 * mean:.1f}"


def summary_markdown(run_root):
    """A table of every baseline run's `results.json` under `run_root`, with the paper's figures beside them."""
    runs = []
    for path in glob.glob(os.path.join(run_root, "*", "results.json")):
        with open(path, encoding="utf-8") as handle:
            results = json.load(handle)
        if "feature_set" in results.get("config", {}):  # an openSMILE baseline's run folder
            runs.append((path, results))
    # corpus, feature set, then the standard protocol before the per-speaker variant
    runs.sort(key=lambda run: (run[1]["corpus"], run[1]["config"]["feature_set"],
                               run[1]["uses_test_speaker_audio"], run[0]))
    rows = []
    for path, results in runs:
        config, pooled, mean, std = results["config"], results["pooled"], results["mean"], results["std"]
        paper_wa, paper_ua = _paper_cell(config["feature_set"], results["corpus"])
        done = len(results["speakers_done"])
        total = done + len(results.get("speakers_missing", []))
        rows.append(
            f"| {results['corpus']} | {config['feature_set']} | {config['normalization']}"
            f"{' (uses test speaker audio)' if results['uses_test_speaker_audio'] else ''} | {done}/{total} | "
            f"{_percent(pooled['wa'])} | {_percent(pooled['ua'])} | {_mean_std(mean['wa'], std['wa'], done)} | "
            f"{_mean_std(mean['ua'], std['ua'], done)} | {paper_wa} | {paper_ua} | {results['wall_time_s']:.0f} | "
            f"{os.path.basename(os.path.dirname(path))} |"
        )
    header = [
        "# openSMILE functionals + SVM, leave-one-speaker-out",
        "",
        "WA = overall accuracy, UA = mean per-class recall, in %. Pooled over all test utterances; "
        "mean ± sample std over folds. Paper: Jiang, Fu & Tao (2019), Table V (EMO-DB).",
        "",
        "| corpus | features | normalisation | folds | WA pooled | UA pooled | WA mean ± std | UA mean ± std | "
        "paper WA | paper UA | SVM time (s) | run |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    return "\n".join(header + rows) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    # Imported after parsing, so that --help and argument errors come back at once.
    from keras_ser.baselines import opensmile_features, svm
    from tf_pipeline import atomic
    from keras_ser.baselines.config import BaselineConfig
    from tf_pipeline import corpora
    from tf_pipeline.folds import loso_folds

    try:
        corpus = corpora.read(args.corpus, args.data_dir, classes=args.classes)
        speakers = None if args.folds.strip().lower() == "all" else [s.strip() for s in args.folds.split(",") if s.strip()]
        folds = loso_folds(corpus, validation="none", speakers=speakers)
        grid = {} if args.c_grid is None else {"c_grid": tuple(args.c_grid)}
        configs = [
            BaselineConfig(
                feature_set=feature_set,
                normalization=normalization,
                selection_metric=args.selection_metric,
                **grid,
            )
            for feature_set in args.feature_set
            for normalization in args.normalization
        ]
    except (ValueError, corpora.CorpusError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    cache_dir = None if args.cache_dir.lower() == "none" else args.cache_dir
    script = os.path.relpath(os.path.abspath(__file__)) if os.path.exists(__file__) else "baselines.py"
    command = "python " + shlex.join([script] + argv)
    print(corpus.summary(), flush=True)

    def log(message):
        print(message, flush=True)

    functionals = {}
    for config in configs:
        if config.feature_set not in functionals:
            start = time.perf_counter()
            functionals[config.feature_set] = opensmile_features.extract_functionals(
                corpus.paths, config.feature_set, cache_dir=cache_dir, num_workers=args.extract_workers
            )
            found = functionals[config.feature_set]
            source = f"cache {found.cache_file}" if found.from_cache else "openSMILE"
            log(
                f"{config.feature_set}: {found.features.shape[0]} x {found.features.shape[1]} functionals "
                f"from {source} in {time.perf_counter() - start:.1f} s"
            )
        found = functionals[config.feature_set]
        provenance = {
            "corpus": corpus.name,
            "data_dir": ",".join(os.path.abspath(folder) for folder in args.data_dir.split(",")),
            "command": command,
            "features": {
                **found.info,
                "cache_file": found.cache_file,
                "extraction_wall_time_s": found.extraction_wall_time_s,
            },
        }
        run_dir = os.path.join(args.run_dir, f"{corpus.name}-{config.slug}")
        log(f"== {config.label} -> {run_dir}")
        try:
            run = svm.run_loso(
                found.features,
                corpus.labels,
                corpus.speaker_ids,
                folds,
                run_dir,
                config,
                corpus.class_names,
                paths=corpus.paths,
                provenance=provenance,
                n_jobs=args.jobs,
                log=log,
            )
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        pooled = run.results["pooled"]
        log(
            f"   pooled WA {100 * pooled['wa']:.1f} UA {100 * pooled['ua']:.1f} over {pooled['n']} utterances, "
            f"{len(run.results['speakers_done'])} folds ({len(run.computed)} computed now, {len(run.skipped)} resumed)"
        )
    summary = summary_markdown(args.run_dir)
    atomic.write_text_atomic(os.path.join(args.run_dir, "summary.md"), summary)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
