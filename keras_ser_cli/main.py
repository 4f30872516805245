"""The `keras-ser` command: one entry point, one subcommand per job.

Flags are absl flags. Each subcommand owns its own `absl.flags.FlagValues`, so
`keras-ser SUBCOMMAND --help` lists exactly the flags of that subcommand.
Flag errors and bad arguments stop with one line on stderr and exit status
2, before any work starts.
"""

import importlib
import os
import sys
import textwrap

from absl import flags

# name -> (module, one-line summary). Modules are imported only when run, so
# `keras-ser --help` is instant and never imports TensorFlow.
SUBCOMMANDS = {
    "demo": ("keras_ser_cli.demo", "the main job on the embedded synthetic corpus: LOSO, train, export, predict"),
    "loso": ("keras_ser_cli.loso", "leave-one-speaker-out training and evaluation on a corpus"),
    "train": ("keras_ser_cli.train", "train one final model on every speaker of a corpus"),
    "predict": ("keras_ser_cli.predict", "emotion label and probabilities for audio files"),
    "compare": ("keras_ser_cli.compare", "paired t-test over folds between two LOSO runs"),
    "ensemble": ("keras_ser_cli.ensemble", "average the per-utterance probabilities of LOSO runs (e.g. N=1..5)"),
    "export": ("keras_ser_cli.export", "export a .keras model as a versioned SavedModel for TF Serving"),
    "serve-local": ("keras_ser_cli.serve_local", "development gRPC/REST server for exported models (not production)"),
    "features": ("keras_ser_cli.features", "feature summary of a corpus (log-Mel images, frames, statistics)"),
}


class UsageError(Exception):
    """A bad flag value or argument: printed as one line, exit status 2."""


def _usage():
    lines = ["usage: keras-ser SUBCOMMAND [--flags] [ARGS]", "", "Speech emotion recognition with Keras: subcommands:"]
    width = max(map(len, SUBCOMMANDS))
    for name, (_, summary) in SUBCOMMANDS.items():
        lines.append(f"  {name:{width}s}  {summary}")
    lines += ["", "Run `keras-ser SUBCOMMAND --help` for the flags of one subcommand."]
    return "\n".join(lines)


def _help(name, module, flag_values):
    doc = textwrap.dedent(module.__doc__ or "").strip()
    text = flag_values.get_help(include_special_flags=False)
    return f"usage: keras-ser {name} [--flags]{' ' + module.USAGE if getattr(module, 'USAGE', '') else ''}\n\n{doc}\n\nflags:\n{text}"


def run(argv=None):
    """Console entry point (`keras-ser`). Returns the exit status."""
    argv = list(sys.argv if argv is None else argv)
    quiet_tensorflow()
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if len(argv) >= 2 else 2
    name = argv[1]
    if name not in SUBCOMMANDS:
        print(f"keras-ser: unknown subcommand {name!r}; expected one of: {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    flag_values = flags.FlagValues()
    module.define_flags(flag_values)
    rest = argv[2:]
    if any(arg in ("-h", "--help", "--helpfull") for arg in rest):
        print(_help(name, module, flag_values))
        return 0
    try:
        positional = flag_values([f"keras-ser {name}"] + rest)[1:]
    except flags.Error as error:
        print(f"keras-ser {name}: error: {error}", file=sys.stderr)
        return 2
    try:
        return module.main(flag_values, positional) or 0
    except UsageError as error:
        print(f"keras-ser {name}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nkeras-ser {name}: interrupted; finished work is kept (re-run to resume)", file=sys.stderr)
        return 130


def quiet_tensorflow():
    """Silences TensorFlow's C++ start-up logging for console commands
    (set TF_CPP_MIN_LOG_LEVEL=0 to see it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
