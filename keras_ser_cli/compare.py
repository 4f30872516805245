"""Paired t-test over folds between two LOSO runs (as the paper's Table IV).

Compares WA and UA on the test speakers both runs finished.

Example:
    keras-ser compare runs/emodb_cnn runs/emodb_cnn_sru_n3
"""

import json

from keras_ser_cli.usage import UsageError

USAGE = "RUN_A RUN_B"


def define_flags(flag_values):
    from absl import flags

    flags.DEFINE_boolean("json", False, "Print JSON instead of the table.", flag_values=flag_values)


def main(flag_values, positional):
    from keras_ser.training.report import compare, compare_table

    if len(positional) != 2:
        raise UsageError(f"expected two run folders RUN_A RUN_B. Received: {positional}")
    try:
        result = compare(*positional)
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(str(error)) from None
    print(json.dumps(result, indent=1) if flag_values.json else compare_table(result))
    return 0
