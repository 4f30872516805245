"""The paper's tables on EMO-DB under leave-one-speaker-out: one command per table.

Each `--table` runs its grid of configurations through the normal resumable
LOSO runner (`keras_ser.training.run_loso`; one run folder per configuration
under --run_root, one `fold_<speaker>.json` per finished fold, so a second
invocation only trains what is missing), then refreshes `docs/results.md`:
our numbers next to the paper's (Jiang, Fu & Tao 2019), with the protocol of
every row, the folds it covers, the machine it ran on and paired t-tests.

Tables:

    II        CNN+SRU for N = 1..5 segments, and the ensemble over N (mean of
              the per-utterance probabilities of the five runs).
    III       CNN alone (one segment), SRU alone (frame features), CNN+SRU (N=3).
    V         openSMILE functionals + linear SVM: IS09 / IS10 (the paper's,
              standardised on the training speakers and per speaker),
              ComParE_2016 and eGeMAPSv02 (training speakers only). Their run
              folders (--baselines_dir, the LOSO runner's layout) are made by
              experiments/baselines.py, which this runs for any fold missing
              (not with --features: openSMILE reads the WAV files).
    levers    each lever on vs off on the same folds: SpecAugment masks,
              segment jitter, mixup, label smoothing; per-speaker
              normalisation (uses the test speaker's unlabelled audio) as a
              separately labelled variant.
    imagenet  EfficientNet-Lite0 with ImageNet weights, frozen (paper recipe,
              stage1_epochs=0: only SRU + softmax train on its features), vs
              the same network with random weights frozen (control), vs the
              AlexNet CNN+SRU trained end to end.
    speech    a pretrained speech encoder (GE2E speaker encoder, weights
              shipped with keras-ser, frozen): mean + std of its LSTM
              layers' frames with a logistic-regression probe (C chosen by
              leave-one-speaker-out over the training speakers), on raw
              audio and with the encoder's -30 dBFS volume normalisation;
              its frames in N=3 segments under an SRU head trained with
              Adam; against IS10 + SVM, the CNN+SRU (N=3) and the frozen
              ImageNet EfficientNet-Lite0 rows of the preset: paired
              t-tests, per-class recall and time per fold. Its encoder rows
              are TrainConfigs of their own (not the preset's CNN base) and
              need the WAV files (skipped with --features).
    IV        paired t-tests between the main configurations (trains what
              its pairs need and is missing, except the N=1..5 ensemble).
    all       every table above, in that order.

Presets scale the protocol (`--folds`, `--epochs`, `--override` scale it further):

    cpu    a small AlexNet (filters 16-32-48-48-32, FC 128) on 67x67 segments,
           SRU 64, end_to_end Adam 1e-3, batch 16, up to 20 epochs with early
           stopping on the next training speaker (val_loss, patience 5);
           EfficientNet-Lite0 rows at 112x112, SRU 256. Fits 2 CPU cores.
    paper  the paper's sizes: AlexNet (caffe layout) on 227x227 segments, SRU
           4096, dropout 0.5, batch 30, end_to_end Adam 1e-4 for 30 epochs, last
           epoch kept (docs/design.md, Reference calibration, and the default
           of experiments/gpu_loso.py); EfficientNet-Lite0 rows at 224x224,
           frozen and fine-tuned. A GPU job.

The LOSO rules hold for every row: the test speaker is never in training, in
the feature statistics or in model selection (early stopping, when on, watches
the next training speaker). Only the per-speaker normalisation rows (the
`speaker_norm` lever, the baselines' `speaker` normalisation) use the test
speaker's unlabelled audio, and they say so wherever they appear.

Besides the Markdown, every refresh writes a machine-readable leaderboard next
to it (`docs/results.json`: one object per system with pooled and per-fold
WA / UA, folds, command, machine and protocol). Entries are keyed by run
folder: a refresh replaces the entries of the run folders it finds and keeps
the others, and a generated block of docs/results.md is not replaced when that
would turn a row with results into "not run" (run folders are not kept in git,
so a checkout may lack them; --overwrite_blocks rewrites it anyway). The
leaderboard is the source of its entries: without a results.json, a refresh
starts a new one with the run folders it finds. Its ranking (the `leaderboard`
block of docs/results.md) leaves out the entries that use the test speaker's
audio or a setting chosen on the test folds.

Run from the repository root. Examples:

    .venv/bin/python -m experiments.reproduce --table=III --preset=cpu
    .venv/bin/python -m experiments.reproduce --table=levers --folds=03,08,09,11,13
    .venv/bin/python -m experiments.reproduce --table=III --rows=cnn_sru_n3   # one row of a table
    .venv/bin/python -m experiments.reproduce --table=speech --folds=03
    .venv/bin/python -m experiments.reproduce --table=all --report_only      # refresh docs/results.md
    .venv/bin/python -m experiments.reproduce --table=II --preset=paper --print_device_command

On a machine without TensorFlow (a GPU machine with Keras on JAX), --features
reads the `.npz` of experiments/gpu_features.py (numpy input pipeline,
`keras_ser.training.feature_file`) instead of decoding the WAV files with tf.data;
--print_device_command prints the whole device command (docs/gpu.md).
"""

import argparse
import dataclasses
import datetime
import glob
import json
import os
import platform
import shlex
import sys
import time

from .grids import DEFAULT_BASELINES
from .grids import DEFAULT_DATA_DIR
from .grids import DEFAULT_RESULTS
from .grids import PRESETS
from .grids import ROOT
from .grids import TABLES
from .grids import baselines_of
from .grids import grid
from .grids import make_config
from .grids import row_names
from .grids import run_root_name
from .protocols import COMMAND
from .protocols import machine_label
from .refresh import write_results


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True, choices=TABLES + ("all",), help="Which table's grid to run.")
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="Protocol size (default: cpu).")
    parser.add_argument("--folds", default=None,
                        help="Test speakers, comma-separated (default: all). Use the same subset for every table "
                             "so that comparisons are paired.")
    parser.add_argument("--epochs", type=int, default=None,
                        help="Epochs of every row (end_to_end, frozen: epochs; paper recipe: stage2_epochs). "
                             "Changes the run folder (e.g. runs/reproduce/cpu_epochs3).")
    parser.add_argument("--override", default=None,
                        help='JSON dict of TrainConfig fields for every row, e.g. \'{"patience": 3}\'. Changes the '
                             "run folder.")
    parser.add_argument("--data_dir", default=DEFAULT_DATA_DIR, help="EMO-DB wav folder (tf.data input path).")
    parser.add_argument("--features", default=None,
                        help="Feature .npz of experiments/gpu_features.py: numpy input path, no TensorFlow "
                             "(the GPU machines).")
    parser.add_argument("--run_root", default=None, help="Folder of the run folders (default: runs/reproduce/<preset>"
                        "[_<overrides>]).")
    parser.add_argument("--baselines_dir", default=DEFAULT_BASELINES, help="Run folders of experiments/baselines.py.")
    parser.add_argument("--results", default=DEFAULT_RESULTS,
                        help="Markdown file to refresh ('' = none); the leaderboard goes next to it (.json).")
    parser.add_argument("--rows", default=None,
                        help="Train (and ensemble) only these rows of the tables, comma-separated run folder names "
                             "(e.g. cnn_sru_n3); the report still shows every row.")
    parser.add_argument("--report_only", action="store_true",
                        help="Train nothing; refresh the tables (and the results.json next to them) only.")
    parser.add_argument("--overwrite_blocks", action="store_true",
                        help="Rewrite the tables' blocks even where a row with results would become 'not run' "
                             "(by default such a block is kept: its run folders may just be missing here).")
    parser.add_argument("--order", default="config", choices=["config", "fold"],
                        help="config: every fold of a row before the next row; fold: each fold for every row in turn.")
    parser.add_argument("--budget_s", type=float, default=None,
                        help="Stop cleanly between folds before this many seconds (the last fold's time as estimate).")
    parser.add_argument("--max_folds", type=int, default=None, help="Stop after training this many folds.")
    parser.add_argument("--workers", type=int, default=4, help="--features only: threads preparing batches.")
    parser.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2], help="Keras output (2: a line per epoch).")
    parser.add_argument("--tensorboard", action="store_true", help="Write TensorBoard logs (tf.data path only).")
    parser.add_argument("--dry_run", action="store_true", help="Print the configurations and exit.")
    parser.add_argument("--print_device_command", action="store_true",
                        help="Print the device command (docs/gpu.md) that runs this invocation on a GPU machine, "
                             "and exit.")
    args = parser.parse_args(argv)
    args.folds = [s.strip() for s in args.folds.split(",") if s.strip()] if args.folds else None
    args.rows = [s.strip() for s in args.rows.split(",") if s.strip()] if args.rows else None
    if args.rows:
        tables = list(TABLES) if args.table == "all" else [args.table]
        known = row_names(tables, args.preset, args.baselines_dir)
        unknown = [name for name in args.rows if name not in known]
        if unknown:
            parser.error(f"--rows names rows that --table={args.table} does not have: {unknown}; "
                         f"it has {sorted(set(known))}")
    overrides = {}
    if args.override:
        try:
            overrides = json.loads(args.override)
        except json.JSONDecodeError as error:
            parser.error(f"--override is not valid JSON ({error}): {args.override!r}")
        if not isinstance(overrides, dict):
            parser.error(f"--override must be a JSON object. Received: {args.override!r}")
    if args.epochs is not None:
        if args.epochs < 1:
            parser.error(f"--epochs must be >= 1. Received: {args.epochs}")
        overrides["epochs"] = args.epochs
    args.global_overrides = overrides
    args.run_root = args.run_root or os.path.join(ROOT, "runs", "reproduce",
                                                  run_root_name(args.preset, overrides))
    return args


def device_command(argv):
    """The `run` tool command that runs these arguments on a GPU machine (Keras on JAX)."""
    keep = [a for a in argv if not a.startswith(("--print_device_command", "--run_root", "--features", "--results"))]
    return ('python3 -m pip install -q --no-index --no-deps --no-compile --target .site .whl/*.whl && '
            'PYTHONPATH=$PWD/.site:$PWD KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false '
            'python3 -m experiments.reproduce ' + " ".join(shlex.quote(a) for a in keep)
            + ' --features=.gpu_data/emodb.npz --run_root=$OUT/reproduce --results=$OUT/results.md '
            '--budget_s=480 --order=fold 2>&1 | tee $OUT/reproduce.log')


def run_baseline(row, data_dir, folds=None):
    """Runs the missing folds of one openSMILE baseline row with experiments/baselines.py (same runner, same run
    folder as calling that script); returns the number of folds it computed."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("baselines_command", os.path.join(ROOT, "experiments",
                                                                                     "baselines.py"))
    command = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(command)
    feature_set, normalization = row.baseline
    argv = [f"--data_dir={data_dir}", f"--feature_set={feature_set}", f"--normalization={normalization}",
            f"--run_dir={os.path.dirname(row.name)}"] + ([f"--folds={','.join(folds)}"] if folds else [])
    before = len(glob.glob(os.path.join(row.name, "fold_*.json")))
    if command.main(argv) != 0:
        raise SystemExit(f"error: experiments/baselines.py {' '.join(argv)} failed")
    return len(glob.glob(os.path.join(row.name, "fold_*.json"))) - before


def load_corpus(args):
    """`(corpus, feature_config, fold_data)`: tf.data from WAV files, or numpy arrays from --features."""
    if args.features:
        from keras_ser.training import feature_file

        data = feature_file.load_feature_arrays(args.features)
        return data.corpus, data.feature_config, feature_file.fold_data_fn(data, workers=args.workers)
    from tf_pipeline import corpora

    return corpora.emodb(args.data_dir), None, None


def machine_now():
    import keras

    from keras_ser.training.loso import versions

    return machine_label(versions()) + f", {platform.machine()}, keras {keras.__version__} ({keras.backend.backend()})"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.features:
        os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports Keras: no TensorFlow needed
    tables = list(TABLES) if args.table == "all" else [args.table]
    if args.print_device_command:
        print(device_command(argv))
        return 0
    start = time.time()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    command = f"{COMMAND} " + " ".join(shlex.quote(a) for a in argv)

    def log(text):
        print(f"[{time.time() - start:7.1f} s] {text}", flush=True)

    trains, ensembles = grid(tables, args.preset, args.global_overrides, args.baselines_dir, only=args.rows)
    log(f"tables {', '.join(tables)}; preset {args.preset}; run root {args.run_root}; {len(trains)} training "
        f"row(s), {len(ensembles)} ensemble(s)")
    base = make_config(args.preset, {}, args.global_overrides).to_dict()
    log(f"  base: {json.dumps(base, sort_keys=True)}")
    for train in trains:
        if train.row.standalone:  # a TrainConfig of its own: its changes from TrainConfig's defaults
            from keras_ser.training.config import TrainConfig

            reference, prefix = {f.name: f.default for f in dataclasses.fields(TrainConfig)}, "own config, "
        else:
            reference, prefix = base, ""
        changed = {key: value for key, value in train.config.to_dict().items() if reference.get(key) != value}
        features = f", feature config {json.dumps(train.features, sort_keys=True)}" if train.features else ""
        log(f"  {train.name}: {prefix}{json.dumps(changed, sort_keys=True)}{features}")
    baselines = baselines_of(tables, args.preset, args.baselines_dir, only=args.rows)
    for row in baselines:
        log(f"  {os.path.basename(row.name)}: openSMILE {row.baseline[0]} + linear SVM, normalisation "
            f"{row.baseline[1]} (experiments/baselines.py, run folder {row.name})")
    if args.dry_run:
        return 0

    trained = 0
    all_speakers = None
    if not args.report_only:
        from keras_ser.training import loso

        corpus, feature_config, fold_data = load_corpus(args)
        all_speakers = list(corpus.speakers)
        speakers = args.folds or all_speakers
        unknown = [s for s in speakers if s not in corpus.speakers]
        if unknown:
            raise SystemExit(f"error: --folds names unknown speakers {unknown}; {corpus.name} has {all_speakers}")
        os.makedirs(args.run_root, exist_ok=True)
        if args.features:  # the .npz holds log-Mel images, not the Mel power frames the speech encoder reads
            skipped = [t.name for t in trains if t.config.uses_encoder]
            if skipped:
                log(f"skipped (the speech encoder reads the WAV files; run without --features): {', '.join(skipped)}")
            trains = [t for t in trains if not t.config.uses_encoder]
        if args.order == "config":
            schedule = [(t, s) for t in trains for s in speakers]
        else:
            schedule = [(t, s) for s in speakers for t in trains]
        last_fold_s, stopped = None, False

        def run_log(text):
            if "\n" not in text and not text.startswith("confusion.png not written"):
                log(text)

        for train, speaker in schedule:
            name, config = train.name, train.config
            run_dir = os.path.join(args.run_root, name)
            if os.path.exists(loso.fold_path(run_dir, speaker)):
                continue
            if args.max_folds is not None and trained >= args.max_folds:
                log(f"--max_folds={args.max_folds} reached; stopping (rerun to resume)")
                stopped = True
                break
            elapsed = time.time() - start
            if args.budget_s is not None and last_fold_s is not None and elapsed + last_fold_s > args.budget_s:
                log(f"budget: {elapsed:.0f} s used, next fold expected to take {last_fold_s:.0f} s of "
                    f"{args.budget_s:.0f} s; stopping (rerun to resume)")
                stopped = True
                break
            log(f"{name}: fold {speaker}")
            fold_start = time.time()
            loso.run_loso(corpus, config, run_dir, speakers=[speaker],
                          feature_config=train.features if train.features is not None else feature_config,
                          data_dir=None if args.features else args.data_dir, verbose=args.verbose, command=command,
                          log=run_log, fold_data=fold_data, tensorboard=args.tensorboard and not args.features)
            last_fold_s = time.time() - fold_start
            trained += 1  # run_loso clears the Keras session after each fold it trains

        # The openSMILE baseline rows: openSMILE reads the WAV files, so not with --features.
        for row in baselines if not stopped else []:
            if args.features:
                log(f"skipped {os.path.basename(row.name)} (openSMILE reads the WAV files; run without --features)")
                continue
            try:
                trained += run_baseline(row, args.data_dir, args.folds)
            except ImportError as error:  # the baselines extra is not installed
                log(f"skipped {os.path.basename(row.name)}: {error}")

    from keras_ser.training import report

    for row in ensembles:
        members = [os.path.join(args.run_root, m) for m in row.members]
        finished = [set(os.path.basename(p)[5:-5] for p in glob.glob(os.path.join(m, "fold_*.json"))) for m in members]
        if all(finished) and set.intersection(*finished):
            report.ensemble(members, os.path.join(args.run_root, row.name), log=None)
            log(f"{row.name}: ensemble of {len(members)} runs over {len(set.intersection(*finished))} fold(s)")
        else:
            log(f"{row.name}: not built (a member has no finished fold)")

    wall = time.time() - start
    if not args.report_only:
        item = {"started": started, "command": command, "folds_trained": trained, "wall_time_s": round(wall, 1),
                "machine": machine_now()}
        with open(os.path.join(args.run_root, "invocations.jsonl"), "a") as handle:
            handle.write(json.dumps(item) + "\n")
    if all_speakers is None:
        all_speakers = _speakers_of(args)
    if args.results:
        write_results(args.results, tables, args.preset, args.run_root, all_speakers, args.baselines_dir, log=log,
                      protect=not args.overwrite_blocks)
        log(f"refreshed {args.results} and {os.path.splitext(args.results)[0]}.json")
    log(f"done: {trained} fold(s) trained in {wall:.0f} s")
    return 0


def _speakers_of(args):
    """The corpus's speakers without loading audio (file names), for 'all N' fold labels."""
    if args.features:
        import numpy as np

        with np.load(args.features, allow_pickle=False) as data:
            return sorted({str(s) for s in data["speakers"]}) if "speakers" in data.files else None
    files = glob.glob(os.path.join(args.data_dir, "*.wav"))
    return sorted({os.path.basename(f)[:2] for f in files}) or None
