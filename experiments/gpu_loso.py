#!/usr/bin/env python
"""Ten-fold LOSO of the paper's CNN+SRU on the GPU machine (Keras on JAX, no TensorFlow).

Reads the feature file `experiments/gpu_features.py` wrote (`.gpu_data/emodb.npz`)
and runs leave-one-speaker-out through the normal resumable LOSO runner
(`keras_ser.training.run_loso`), with the numpy input path of
`keras_ser.training.feature_file` instead of tf.data: nothing here imports
TensorFlow. Each configuration gets its own run folder under --run_root with
the usual files: `run.json`, `fold_<speaker>.json` per finished fold,
`results.json`, `results.md` (and `confusion.png` only where matplotlib is
installed; the GPU machines have none). `session_<UTC time>.json` and `summary.md`
in --run_root record this invocation: device, versions, feature file, timings.

Several configurations run in one invocation (--variants, or several
--n_segments), in order, within --budget_s seconds: before each fold the
script checks that the fold is expected to finish in time (the last fold's
time as estimate) and otherwise stops cleanly, writing the reports of what
finished. A second invocation with the same --run_root (or --resume_from a
copy of an earlier one) skips the finished folds.

Defaults are the paper's CNN+SRU (AlexNet caffe layout from scratch, N=3,
SRU 4096, batch 30) trained end to end for 30 epochs with Adam 1e-4 and no
validation speaker (docs/design.md, Reference calibration).

Examples (on the GPU machine, see docs/gpu.md and experiments/gpu_run.sh):

    python experiments/gpu_loso.py --budget_s=480
    python experiments/gpu_loso.py --variants='[{"name": "plain"}, {"name": "masks", "time_masks": 2,
        "freq_masks": 2}]' --folds=03,08 --budget_s=480
    python experiments/gpu_loso.py --recipe=paper --stage1_epochs=40 --stage2_epochs=30

Tiny CPU check (here, TensorFlow blocked as on the GPU machine):

    KERAS_BACKEND=jax .venv/bin/python experiments/gpu_loso.py --block_tensorflow --folds=03 --epochs=1 \\
        --image_size=67 --sru_units=8 --backbone_kwargs='{"filters": [4, 4, 4, 4, 4], "fc_units": 8}' \\
        --run_root=/tmp/gpu_check
"""

import argparse
import dataclasses
import json
import os
import platform
import shlex
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __package__ in (None, ""):  # run as a script from a checkout: make the repository importable
    sys.path.insert(0, ROOT)

# Jiang, Fu & Tao (2019), LOSO, WA / UA in %: CNN+SRU per N on EMO-DB (Table II); on CASIA, N = 5 only.
PAPER_TABLE_II = {1: (78.9, 76.1), 2: (78.2, 76.3), 3: (82.5, 80.6), 4: (77.5, 77.5), 5: (76.8, 73.3)}
PAPER_FIGURES = {"emodb": PAPER_TABLE_II, "casia": {5: (51.3, 51.3)}}


def paper_figure(corpus_name, model, n_segments):
    """The paper's WA / UA for the CNN+SRU at `n_segments` on `corpus_name`, or None (another model or corpus,
    or an N the paper does not report there).

    >>> paper_figure("emodb", "cnn_sru", 3), paper_figure("emovo", "cnn_sru", 3), paper_figure("casia", "cnn_sru", 3)
    ((82.5, 80.6), None, None)
    """
    return PAPER_FIGURES.get(corpus_name, {}).get(n_segments) if model == "cnn_sru" else None


def _json_arg(text, what):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"{what} is not valid JSON ({error}): {text!r}") from None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    io = parser.add_argument_group("data and run folders")
    io.add_argument("--data", default=os.path.join(ROOT, ".gpu_data", "emodb.npz"),
                    help="Feature file from experiments/gpu_features.py.")
    io.add_argument("--run_root", default=None,
                    help="Folder of the run folders (default: $OUT/runs when $OUT is set, else runs/gpu).")
    io.add_argument("--resume_from", default=None,
                    help="An earlier --run_root (e.g. fetched from a previous session): its run.json and fold "
                         "files are copied in first, so finished folds are skipped.")
    io.add_argument("--folds", default=None, help="Test speakers, comma-separated (default: all).")

    model = parser.add_argument_group("model (TrainConfig fields)")
    model.add_argument("--model", default="cnn_sru", choices=["cnn_sru", "cnn", "sru"])
    model.add_argument("--n_segments", default="3", help="N, or several (e.g. 1,3,5: one run per N).")
    model.add_argument("--backbone", default="alexnet")
    model.add_argument("--backbone_variant", default=None)
    model.add_argument("--backbone_weights", default=None)
    model.add_argument("--backbone_kwargs", default=None, type=lambda t: _json_arg(t, "--backbone_kwargs"),
                       help='JSON, e.g. {"filters": [4, 4, 4, 4, 4], "fc_units": 8} for a tiny check.')
    model.add_argument("--sru_units", type=int, default=4096)
    model.add_argument("--dropout", type=float, default=0.5)
    model.add_argument("--image_size", type=int, default=227)

    train = parser.add_argument_group("training (TrainConfig fields)")
    train.add_argument("--recipe", default="end_to_end", choices=["end_to_end", "paper"])
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--learning_rate", type=float, default=1e-4)
    train.add_argument("--stage1_epochs", type=int, default=400)
    train.add_argument("--stage1_learning_rate", type=float, default=1e-3)
    train.add_argument("--stage2_epochs", type=int, default=100)
    train.add_argument("--stage2_learning_rate", type=float, default=1e-3)
    train.add_argument("--stage2_dropout", type=float, default=0.0)
    train.add_argument("--batch_size", type=int, default=30)
    train.add_argument("--validation", default="none", choices=["none", "next"])
    train.add_argument("--patience", type=int, default=10)
    train.add_argument("--monitor", default="val_loss", choices=["val_loss", "val_ua"])
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--mixed_precision", default="none", choices=["none", "mixed_bfloat16", "mixed_float16"])

    levers = parser.add_argument_group("levers (off by default)")
    levers.add_argument("--time_masks", type=int, default=0)
    levers.add_argument("--time_width", type=int, default=20)
    levers.add_argument("--freq_masks", type=int, default=0)
    levers.add_argument("--freq_width", type=int, default=8)
    levers.add_argument("--jitter", type=float, default=0.0)
    levers.add_argument("--mixup_alpha", type=float, default=0.0)
    levers.add_argument("--label_smoothing", type=float, default=0.0)
    levers.add_argument("--speaker_norm", action="store_true",
                        help="Per-speaker normalisation (uses the test speaker's unlabelled audio; named in results).")

    session = parser.add_argument_group("session")
    session.add_argument("--variants", default=None, type=lambda t: _json_arg(t, "--variants"),
                         help='JSON list of TrainConfig overrides, each optionally with a "name"; one run '
                              'folder each (default: one run with the flags above).')
    session.add_argument("--order", default="config", choices=["config", "fold"],
                         help="config: every fold of a configuration before the next; fold: each fold for "
                              "every configuration in turn (paired folds when the budget cuts the session).")
    session.add_argument("--budget_s", type=float, default=None,
                         help="Stop cleanly (between folds) before this many seconds are exceeded.")
    session.add_argument("--fold_estimate_s", type=float, default=0.0,
                         help="Expected time of a fold before one has run in this invocation.")
    session.add_argument("--max_folds", type=int, default=None,
                         help="Stop cleanly after training this many folds in this invocation.")
    session.add_argument("--workers", type=int, default=4, help="Threads preparing batches (PyDataset).")
    session.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2], help="Keras output (2: a line per epoch).")
    session.add_argument("--jax_cache_dir", default=os.path.join("/tmp", "keras_ser_jax_cache"),
                         help="JAX persistent compilation cache (folds reuse compiled steps); '' disables it.")
    session.add_argument("--require_gpu", action="store_true",
                         help="Exit at once (status 3) when JAX sees no GPU, instead of training on the CPU.")
    session.add_argument("--block_tensorflow", action="store_true",
                         help="Make `import tensorflow` fail, as on the GPU machine (for checks elsewhere).")
    args = parser.parse_args(argv)
    try:
        args.n_segments = [int(n) for n in str(args.n_segments).split(",") if n.strip()]
    except ValueError:
        parser.error(f"--n_segments must be integers like 3 or 1,3,5. Received: {args.n_segments!r}")
    if not args.n_segments:
        parser.error("--n_segments is empty")
    if args.variants is not None and (not isinstance(args.variants, list) or not args.variants
                                      or not all(isinstance(v, dict) for v in args.variants)):
        parser.error("--variants must be a non-empty JSON list of objects")
    args.folds = [s.strip() for s in args.folds.split(",") if s.strip()] if args.folds else None
    return args


BASE_FIELDS = ("model", "backbone", "backbone_variant", "backbone_weights", "backbone_kwargs", "sru_units", "dropout",
               "image_size", "recipe", "epochs", "learning_rate", "stage1_epochs", "stage1_learning_rate",
               "stage2_epochs", "stage2_learning_rate", "stage2_dropout", "batch_size", "validation", "patience",
               "monitor", "seed", "time_masks", "time_width", "freq_masks", "freq_width", "jitter", "mixup_alpha",
               "label_smoothing", "speaker_norm")


def default_name(corpus_name, config):
    """A run folder name that says what differs from the reference run."""
    parts = [corpus_name, config.model, "e2e" if config.recipe == "end_to_end" else "paper"]
    if config.model == "cnn_sru":
        parts.append(f"n{config.n_segments}")
    if config.recipe == "end_to_end":
        parts.append(f"e{config.epochs}")
    else:
        parts.append(f"s{config.stage1_epochs}-{config.stage2_epochs}")
    if config.validation == "next":
        parts.append("val")
    if config.mixed_precision:
        parts.append("bf16" if "bfloat16" in config.mixed_precision else "fp16")
    if config.time_masks or config.freq_masks:
        parts.append(f"masks{config.time_masks}x{config.time_width}-{config.freq_masks}x{config.freq_width}")
    short_names = (("jitter", "jit"), ("mixup_alpha", "mix"), ("label_smoothing", "ls"), ("stage2_dropout", "fd"))
    for field, short in short_names:
        if getattr(config, field):
            parts.append(f"{short}{getattr(config, field)}")
    if config.speaker_norm:
        parts.append("SPKNORM")
    if config.seed:
        parts.append(f"seed{config.seed}")
    return "_".join(parts)


def configurations(args, corpus_name):
    """`[(name, TrainConfig)]` the flags and --variants describe."""
    from keras_ser.training.config import TrainConfig

    base = {field: getattr(args, field) for field in BASE_FIELDS}
    base["mixed_precision"] = None if args.mixed_precision == "none" else args.mixed_precision
    runs = []
    for n in args.n_segments:
        for variant in args.variants or [{}]:
            overrides = dict(variant)
            name = overrides.pop("name", None)
            config = TrainConfig.from_dict({**base, "n_segments": n, **overrides})
            name = name or default_name(corpus_name, config)
            if len(args.n_segments) > 1 and variant.get("name"):
                name = f"{name}_n{n}"
            runs.append((name, config))
    names = [name for name, _ in runs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SystemExit(f"error: two configurations share the run folder name(s) {duplicates}; give each a \"name\"")
    return runs


def fold_estimate(fold_times, name, default):
    """Expected seconds of the next fold of run `name`: its last fold's time in this
    invocation, else the slowest fold of any run so far, else `default`."""
    if fold_times.get(name):
        return fold_times[name][-1]
    every = [t for times in fold_times.values() for t in times]
    return max(every) if every else default


def next_fold_fits(elapsed, estimate, budget_s):
    """True when a fold expected to take `estimate` seconds ends within the budget."""
    return budget_s is None or elapsed + estimate <= budget_s


def copy_finished(source_root, run_root, log):
    """Copies run.json and fold files of every run folder under `source_root` that are missing in `run_root`."""
    copied = 0
    for name in sorted(os.listdir(source_root)):
        source = os.path.join(source_root, name)
        if not os.path.isfile(os.path.join(source, "run.json")):
            continue
        target = os.path.join(run_root, name)
        os.makedirs(target, exist_ok=True)
        for file in sorted(os.listdir(source)):
            if (file == "run.json" or (file.startswith("fold_") and file.endswith(".json"))) and not os.path.exists(
                    os.path.join(target, file)):
                shutil.copy2(os.path.join(source, file), os.path.join(target, file))
                copied += file != "run.json"
    log(f"resume: copied {copied} finished fold file(s) from {source_root}")


def device_info():
    import jax

    return {"backend": jax.default_backend(),
            "devices": [f"{device.platform}:{device.device_kind}" for device in jax.devices()],
            "jax": jax.__version__}


def _markdown_summary(rows, session, corpus_name):
    lines = [
        "# GPU LOSO session",
        "",
        f"Command: `{session['command']}`",
        "",
        f"Device: {', '.join(session['device'].get('devices', []))}; Keras {session['versions'].get('keras')} on "
        f"{session['versions'].get('keras_backend')}; features {session['data']['file']} "
        f"(sha256 {session['data']['sha256'][:12]}).",
        f"Wall time {session['wall_time_s']:.0f} s" + (f" of a {session['budget_s']:.0f} s budget" if session['budget_s']
                                                         else "") + (" (stopped early: budget)" if session['stopped'] else "") + ".",
        "",
        "| Run | Folds | Pooled WA % | Pooled UA % | Mean UA % | Paper WA / UA (N) | s / fold |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        paper = paper_figure(corpus_name, row["model"], row["n_segments"])
        paper = f"{paper[0]} / {paper[1]} ({row['n_segments']})" if paper else "-"
        if row["folds_done"]:
            lines.append(f"| {row['name']} | {row['folds_done']}/{row['folds_total']} | {100 * row['wa']:.1f} | "
                         f"{100 * row['ua']:.1f} | {100 * row['mean_ua']:.1f} | {paper} | {row['s_per_fold']:.0f} |")
        else:
            lines.append(f"| {row['name']} | 0/{row['folds_total']} | | | | {paper} | |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    if args.block_tensorflow:
        sys.modules["tensorflow"] = None  # `import tensorflow` fails from here on, as on the GPU machine
    os.environ.setdefault("KERAS_BACKEND", "jax")
    start = time.time()
    command = "python experiments/gpu_loso.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))

    def log(text):
        print(f"[{time.time() - start:7.1f} s] {text}", flush=True)

    if args.jax_cache_dir and os.environ["KERAS_BACKEND"] == "jax":
        import jax

        jax.config.update("jax_compilation_cache_dir", args.jax_cache_dir)

    import keras

    from keras_ser.checksums import file_sha256
    from keras_ser.training import feature_file
    from keras_ser.training import loso
    from keras_ser.training import report
    from tf_pipeline.atomic import write_json_atomic
    from tf_pipeline.atomic import write_text_atomic
    from tf_pipeline.folds import loso_folds

    if not os.path.isfile(args.data):
        raise SystemExit(f"error: feature file {args.data} not found; make it with experiments/gpu_features.py "
                         "(on a machine with TensorFlow) and carry .gpu_data")
    data = feature_file.load_feature_arrays(args.data)
    corpus = data.corpus
    log(f"{corpus.summary()}; features {args.data} ({os.path.getsize(args.data) / 2**20:.1f} MiB, "
        f"{data.info.get('dtype')} {data.info.get('store')}), loaded in {time.time() - start:.1f} s")
    device = device_info() if keras.backend.backend() == "jax" else {"backend": keras.backend.backend()}
    log(f"Keras {keras.__version__} on {keras.backend.backend()}; devices: {device.get('devices')}")
    if args.require_gpu and device.get("backend") != "gpu":
        log(f"error: --require_gpu, but the Keras/JAX backend runs on {device.get('backend')!r}; not training")
        return 3
    if "tensorflow" in sys.modules and sys.modules["tensorflow"] is not None:
        log("note: TensorFlow is imported in this process (it is not needed here)")

    runs = configurations(args, corpus.name)
    speakers = args.folds or list(corpus.speakers)
    unknown = [s for s in speakers if s not in corpus.speakers]
    if unknown:
        raise SystemExit(f"error: --folds names unknown speakers {unknown}; {corpus.name} has {list(corpus.speakers)}")
    run_root = args.run_root or (os.path.join(os.environ["OUT"], "runs") if os.environ.get("OUT") else
                                 os.path.join(ROOT, "runs", "gpu"))
    os.makedirs(run_root, exist_ok=True)
    if args.resume_from:
        copy_finished(args.resume_from, run_root, log)
    log(f"run root {run_root}; {len(runs)} configuration(s) x {len(speakers)} fold(s); budget "
        + (f"{args.budget_s:.0f} s" if args.budget_s else "none"))
    for name, config in runs:
        log(f"  {name}: {config.to_json()}")

    fold_data = feature_file.fold_data_fn(data, workers=args.workers)
    fold_times = {name: [] for name, _ in runs}
    stopped = False
    if args.order == "config":
        schedule = [(name, config, speaker) for name, config in runs for speaker in speakers]
    else:
        schedule = [(name, config, speaker) for speaker in speakers for name, config in runs]
    seen_reports = set()
    current = ["[fold 1/1]"]

    def run_log(text):
        # run_loso logs progress lines and, after every fold, the whole report: print the report once, at the end.
        if "\n" in text:
            return
        if text.startswith("confusion.png not written"):
            if text in seen_reports:
                return
            seen_reports.add(text)
        log(text.replace("[fold 1/1]", current[0], 1))

    position = {}
    for name, config, speaker in schedule:
        run_dir = os.path.join(run_root, name)
        position[name] = position.get(name, 0) + 1
        current[0] = f"[{name} {position[name]}/{len(speakers)}]"
        done = os.path.exists(loso.fold_path(run_dir, speaker))
        if not done:
            trained = sum(len(times) for times in fold_times.values())
            if args.max_folds is not None and trained >= args.max_folds:
                log(f"--max_folds={args.max_folds} folds trained; stopping here (rerun to resume)")
                stopped = True
                break
            estimate = fold_estimate(fold_times, name, args.fold_estimate_s)
            elapsed = time.time() - start
            if not next_fold_fits(elapsed, estimate, args.budget_s):
                log(f"budget: {elapsed:.0f} s used, next fold ({name}, speaker {speaker}) expected to take "
                    f"{estimate:.0f} s; {args.budget_s:.0f} s budget; stopping here (rerun to resume)")
                stopped = True
                break
        fold_start = time.time()
        loso.run_loso(corpus, config, run_dir, speakers=[speaker], feature_config=data.feature_config,
                      verbose=args.verbose, command=command, log=run_log, fold_data=fold_data, tensorboard=False)
        if not done:
            fold_times[name].append(time.time() - fold_start)

    rows = []
    all_folds = [loso_folds(corpus, validation=config.validation, speakers=speakers) for _, config in runs]
    for (name, config), folds in zip(runs, all_folds):
        run_dir = os.path.join(run_root, name)
        finished = report.load_folds(run_dir) if os.path.isdir(run_dir) else []
        finished = [fold for fold in finished if fold["test_speaker"] in speakers]
        row = {"name": name, "model": config.model, "n_segments": config.n_segments, "folds_total": len(folds),
               "folds_done": len(finished), "folds_run_now": len(fold_times[name]),
               "fold_times_s": [round(t, 1) for t in fold_times[name]]}
        if finished:
            summary = report.write_report(run_dir, log=None)
            row.update(wa=summary["pooled"]["wa"], ua=summary["pooled"]["ua"], mean_ua=summary["mean"]["ua"],
                       s_per_fold=summary["wall_time_s"] / len(summary["folds"]))
            print(report.markdown(summary), flush=True)
        rows.append(row)

    session = {
        "command": command,
        "argv": sys.argv if argv is None else list(argv),
        "device": device,
        "versions": loso.versions(),
        "python": platform.python_version(),
        "data": {"file": os.path.basename(args.data), "bytes": os.path.getsize(args.data),
                 "sha256": file_sha256(args.data), "info": data.info},
        "budget_s": args.budget_s,
        "stopped": stopped,
        "runs": rows,
        "configs": {name: dataclasses.asdict(config) for name, config in runs},
        "wall_time_s": round(time.time() - start, 1),
    }
    write_json_atomic(os.path.join(run_root, time.strftime("session_%Y%m%d-%H%M%S.json", time.gmtime(start))), session)
    text = _markdown_summary(rows, session, corpus.name)
    write_text_atomic(os.path.join(run_root, "summary.md"), text)
    print(text, flush=True)
    log(f"total {time.time() - start:.1f} s; " + ("stopped by the budget; rerun (or --resume_from) to finish"
                                                  if stopped else "all scheduled folds finished"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
