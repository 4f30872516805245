"""Averages the per-utterance probabilities of several LOSO runs into a new run.

Typical use: the paper's N = 1..5 runs of the same corpus, ensembled. Only
folds finished in every run count. The output folder gets fold files and the
usual report (results.json, results.md, confusion.png), so `keras-ser
compare` works on it.

Example:
    keras-ser ensemble --run_dir=runs/emodb_ensemble runs/emodb_n1 runs/emodb_n2 runs/emodb_n3
"""

from keras_ser_cli.usage import UsageError

USAGE = "RUN [RUN ...]"


def define_flags(flag_values):
    from absl import flags

    flags.DEFINE_string("run_dir", None, "Output run folder (required).", flag_values=flag_values)


def main(flag_values, positional):
    from keras_ser.training.report import ensemble

    if not flag_values.run_dir:
        raise UsageError("--run_dir (the output folder) is required")
    if len(positional) < 2:
        raise UsageError(f"give at least two run folders to ensemble. Received: {positional}")
    try:
        ensemble(positional, flag_values.run_dir)
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(str(error)) from None
    return 0
