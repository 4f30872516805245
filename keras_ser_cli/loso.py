"""Leave-one-speaker-out (or leave-one-corpus-out) training and evaluation.

For every test speaker (or those of --folds): a fresh model, feature
statistics from the training speakers only, training, evaluation on the test
speaker. Each finished fold is saved at once in --run_dir; running the same
command again resumes, skipping finished folds. The report (results.json,
results.md, confusion.png, tensorboard/) is written at the end.

With --protocol=loco and several corpora (--corpus=emodb,ravdess,emovo), each
fold tests every file of one corpus after training on the others (--folds
names corpora); the probe chooses C by leaving one training corpus out.

Examples:
    keras-ser loso --corpus=emodb --data_dir=/data/emodb/wav --n_segments=3 \\
        --recipe=paper --validation=next --folds=03,08 --run_dir=runs/emodb_paper
    keras-ser loso --corpus=emodb --data_dir=/data/emodb/wav --model=encoder_stats --recipe=probe
    keras-ser loso --corpus=emodb,ravdess,emovo --data_dir=/data/emodb/wav,/data/ravdess,/data/emovo \\
        --classes=anger,happiness,sadness,neutral --model=encoder_stats --recipe=probe --protocol=loco
    keras-ser loso --corpus=synthetic --model=cnn --epochs=5 --image_size=67 \\
        --backbone_kwargs='{"filters": [8, 16, 16, 16, 16], "fc_units": 64}'
"""

import os

from keras_ser_cli import corpus_flags, train_flags
from keras_ser_cli.usage import UsageError


def define_flags(flag_values):
    from absl import flags

    corpus_flags.define(flag_values, default_corpus="emodb")
    train_flags.define(flag_values)
    flags.DEFINE_list("folds", None, "Test speakers to run, comma-separated (default: every speaker); the test "
                      "corpora with --protocol=loco.", flag_values=flag_values)
    flags.DEFINE_enum("protocol", "loso", ["loso", "loco"],
                      "loso: leave one speaker out; loco: leave one corpus out (several --corpus names; "
                      "--validation=none).", flag_values=flag_values)
    train_flags.define_feature_cache(flag_values)
    flags.DEFINE_string("run_dir", None, "Run folder (default: runs/<corpus>_<model>_<recipe>_n<N>).",
                        flag_values=flag_values)
    flags.DEFINE_enum("verbose", "1", ["0", "1", "2"], "Keras output: 1 progress bars, 2 a line per epoch, 0 none.",
                      flag_values=flag_values)


def parse_folds(flag_values):
    folds = flag_values.folds
    if folds is not None and not [speaker for speaker in folds if speaker.strip()]:
        raise UsageError("--folds is empty; give test speakers like --folds=03,08 or leave it out for all")
    return [speaker.strip() for speaker in folds if speaker.strip()] if folds is not None else None


def main(flag_values, positional, command=None):
    from keras_ser.training import run_loso

    config = train_flags.config_from(flag_values)
    folds = parse_folds(flag_values)
    loco = flag_values.protocol == "loco"
    if loco and config.validation != "none":
        raise UsageError(f"--protocol=loco holds out no validation speaker; use --validation=none. "
                         f"Received: --validation={config.validation}")
    corpus = corpus_flags.load(flag_values)
    if loco and len(corpus.corpora) < 2:
        raise UsageError(f"--protocol=loco needs several corpora, e.g. --corpus=emodb,ravdess,emovo. "
                         f"Received: --corpus={flag_values.corpus}")
    if folds:
        available = corpus.corpora if loco else corpus.speakers
        unknown = [speaker for speaker in folds if speaker not in available]
        if unknown:
            raise UsageError(f"--folds names unknown {'corpora' if loco else 'speakers'} {unknown}; "
                             f"{corpus.name} has {list(available)}")
    run_dir = flag_values.run_dir or os.path.join(
        "runs", f"{corpus.name}_{config.model}_{config.recipe}" + (f"_n{config.segments}" if config.segments else "")
        + ("_loco" if loco else ""))
    print(corpus.summary())
    print(f"run folder: {run_dir}")
    try:
        run_loso(corpus, config, run_dir, speakers=folds, data_dir=flag_values.data_dir,
                 feature_config=train_flags.feature_config_from(flag_values, config),
                 verbose=int(flag_values.verbose), command=command,
                 protocol=flag_values.protocol, feature_cache=flag_values.feature_cache)
    except ValueError as error:
        if "holds a run with another configuration" in str(error):
            raise UsageError(str(error)) from None
        raise
    print(f"report: {os.path.join(run_dir, 'results.md')}, {os.path.join(run_dir, 'results.json')}, "
          f"{os.path.join(run_dir, 'confusion.png')}")
    return 0
