"""The `keras-ser` command: one entry point, one subcommand per job.

Flags are absl flags. Each subcommand owns its own `absl.flags.FlagValues`, so
`keras-ser SUBCOMMAND --help` lists exactly the flags of that subcommand.
Flag errors and bad arguments stop with one line on stderr and exit status
2, before any work starts.

Output: a subcommand prints its own progress and results, nothing else.
TensorFlow 2.21 writes C++ log lines to stderr while it is imported, before
TF_CPP_MIN_LOG_LEVEL can take effect (`WARNING: All log messages before
absl::InitializeLog() is called are written to STDERR`, `oneDNN custom
operations are on`, `Could not find cuda drivers`, and on a machine without a
GPU `E0000 ... failed call to cuInit: ... UNKNOWN ERROR (303)`; gRPC's C++
core logs the same way). The `keras-ser` command therefore passes its stderr
through a small filter process that drops those lines (TensorFlow's and
absl's `I`/`W`/`E` log-line format; `F` fatal lines and everything else pass,
tracebacks included), sets TF_CPP_MIN_LOG_LEVEL=3 unless it is set, and
silences Python warnings and the `tensorflow` / absl Python loggers below
ERROR. `--tf_log`, before or after the subcommand (`keras-ser --tf_log
predict ...` or `keras-ser predict --tf_log ...`), turns all of that off:
TensorFlow's log lines (at TF_CPP_MIN_LOG_LEVEL, 0 unless set) and the
Python warnings come back. Calling `run([...])` from Python (tests) leaves
the process's stderr, warnings and loggers alone.
"""

import atexit
import importlib
import inspect
import os
import subprocess
import sys
import textwrap

from absl import flags

from keras_ser_cli.usage import UsageError  # noqa: F401  (re-exported: what `run` turns into exit status 2)

TF_LOG_FLAG = "tf_log"
TF_LOG_HELP = ("Show TensorFlow's own log lines (C++ start-up and device messages, e.g. oneDNN and CUDA) and "
               "Python warnings from TensorFlow and Keras, which keras-ser hides by default. Also accepted "
               "before the subcommand: keras-ser --tf_log SUBCOMMAND ...")

# name -> (module, one-line summary). Modules are imported only when run, so
# `keras-ser --help` is instant and never imports TensorFlow.
SUBCOMMANDS = {
    "demo": ("keras_ser_cli.demo", "the main job on the embedded synthetic corpus: LOSO, train, export, predict"),
    "loso": ("keras_ser_cli.loso", "leave-one-speaker-out training and evaluation on a corpus"),
    "train": ("keras_ser_cli.train", "train one final model on every speaker of a corpus"),
    "predict": ("keras_ser_cli.predict", "emotion label and probabilities for audio files"),
    "evaluate": ("keras_ser_cli.evaluate", "score a model or preset on a labelled corpus over the emotions both share"),
    "compare": ("keras_ser_cli.compare", "paired t-test over folds between two LOSO runs"),
    "ensemble": ("keras_ser_cli.ensemble", "average the per-utterance probabilities of LOSO runs (e.g. N=1..5)"),
    "export": ("keras_ser_cli.export", "export a .keras model (or a shipped preset) as a versioned SavedModel for TF Serving, or as TFLite"),
    "serve-local": ("keras_ser_cli.serve_local", "development gRPC/REST server for exported models (not production)"),
    "features": ("keras_ser_cli.features", "feature summary of a corpus (log-Mel images, frames, statistics)"),
}


def _usage():
    lines = ["usage: keras-ser SUBCOMMAND [--flags] [ARGS]", "", "Speech emotion recognition with Keras: subcommands:"]
    width = max(map(len, SUBCOMMANDS))
    for name, (_, summary) in SUBCOMMANDS.items():
        lines.append(f"  {name:{width}s}  {summary}")
    lines += ["", "Global flags (before or after SUBCOMMAND):",
              f"  --[no]{TF_LOG_FLAG}  show TensorFlow's own log lines (C++ start-up and device messages, e.g.",
              "                oneDNN and CUDA) and Python warnings from TensorFlow and Keras (default: hidden)",
              "", "Run `keras-ser SUBCOMMAND --help` for the flags of one subcommand."]
    return "\n".join(lines)


def _help(name, module, flag_values):
    doc = textwrap.dedent(module.__doc__ or "").strip()
    text = flag_values.get_help(include_special_flags=False)
    return f"usage: keras-ser {name} [--flags]{' ' + module.USAGE if getattr(module, 'USAGE', '') else ''}\n\n{doc}\n\nflags:\n{text}"


def _tf_log_value(arg):
    """True/False for a `--tf_log` / `--notf_log` / `--tf_log=VALUE` argument, None for any other."""
    name, equals, value = arg.lstrip("-").partition("=")
    if not arg.startswith("-") or name not in (TF_LOG_FLAG, "no" + TF_LOG_FLAG):
        return None
    if name.startswith("no"):
        return False
    return not equals or value.lower() in ("1", "true", "t", "yes", "y")


def _tf_log_requested(args):
    """The last `--tf_log` setting among `args` (before a bare `--`); False when none."""
    requested = False
    for arg in args:
        if arg == "--":
            break
        value = _tf_log_value(arg)
        if value is not None:
            requested = value
    return requested


def run(argv=None):
    """Console entry point (`keras-ser`). Returns the exit status.

    With `argv=None` (the `keras-ser` command, `python -m keras_ser_cli`) it
    owns the process: TensorFlow's log lines and Python warnings are hidden
    unless `--tf_log` is given (module docstring). With an explicit `argv`
    (calls from Python) only TF_CPP_MIN_LOG_LEVEL is defaulted to 3.
    """
    console = argv is None
    argv = list(sys.argv if argv is None else argv)
    # Global flags (`keras-ser --tf_log SUBCOMMAND ...`) go to the subcommand, which defines them too.
    leading = []
    while len(argv) > 1 and _tf_log_value(argv[1]) is not None:
        leading.append(argv.pop(1))
    argv[2:2] = leading if len(argv) > 1 else []
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if len(argv) >= 2 else 2
    name = argv[1]
    if name not in SUBCOMMANDS:
        print(f"keras-ser: unknown subcommand {name!r}; expected one of: {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    # Before the subcommand's module (and TensorFlow) is imported.
    tf_log = _tf_log_requested(argv[2:])
    quiet_tensorflow(tf_log=tf_log, filter_stderr=console and not tf_log, python=console)
    module = importlib.import_module(SUBCOMMANDS[name][0])
    flag_values = flags.FlagValues()
    module.define_flags(flag_values)
    flags.DEFINE_boolean(TF_LOG_FLAG, False, TF_LOG_HELP, flag_values=flag_values)
    rest = argv[2:]
    if any(arg in ("-h", "--help", "--helpfull") for arg in rest):
        print(_help(name, module, flag_values))
        return 0
    try:
        positional = flag_values([f"keras-ser {name}"] + rest)[1:]
    except flags.Error as error:
        print(f"keras-ser {name}: error: {error}", file=sys.stderr)
        return 2
    # The command as typed (a run records it), also when `argv` comes from Python rather than sys.argv.
    context = {"command": " ".join(["keras-ser", name] + rest)}
    accepted = inspect.signature(module.main).parameters
    try:
        return module.main(flag_values, positional, **{k: v for k, v in context.items() if k in accepted}) or 0
    except UsageError as error:
        print(f"keras-ser {name}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nkeras-ser {name}: interrupted; finished work is kept (re-run to resume)", file=sys.stderr)
        return 130


def quiet_tensorflow(tf_log=False, filter_stderr=False, python=False):
    """Hides TensorFlow's log output, or shows it all with `tf_log=True` (`--tf_log`).

    Args:
        tf_log: bool. Show everything: TF_CPP_MIN_LOG_LEVEL defaults to 0 and
            nothing is filtered or silenced. Defaults to `False`.
        filter_stderr: bool. Pass file descriptor 2 through `filter_stderr()`,
            which drops TensorFlow's / absl's C++ log lines (the ones printed
            before TF_CPP_MIN_LOG_LEVEL takes effect). Defaults to `False`.
        python: bool. Silence Python warnings (unless `-W` / PYTHONWARNINGS
            set filters) and the `tensorflow` and absl loggers below ERROR.
            Defaults to `False`.
    """
    if tf_log:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if python:
        import logging
        import warnings

        from absl import logging as absl_logging

        if not sys.warnoptions:
            warnings.simplefilter("ignore")
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        absl_logging.set_verbosity(absl_logging.ERROR)
    if filter_stderr:
        filter_stderr_lines()


# The stderr filter, run by `python -S -E -c`: drops the lines of TensorFlow's
# and absl's C++ log format at severity I, W and E (`I0000 00:00:1795993483.99
# 21028 port.cc:153] ...`, the older `2025-09-17 14:44:05.157831: E
# external/...cc:32] ...`), absl's notice that it was not initialised, and the
# second line of TensorFlow's CPU-feature message; passes everything else. A
# partial line is passed on when no more bytes follow within 0.2 s.
_FILTER_SOURCE = r"""
import os, re, select
DROP = re.compile(
    rb"(?:[IWE]\d{4} \d\d:\d\d:[\d.]+ +\d+ [^\s\]]+:\d+\] "
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] [^\s\]]+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags)")
broken = False
def out(data):
    global broken
    while data and not broken:
        try:
            data = data[os.write(1, data):]
        except InterruptedError:
            continue
        except OSError:
            broken = True
pending = b""
while True:
    if pending and not select.select([0], [], [], 0.2)[0]:
        out(pending)
        pending = b""
    try:
        chunk = os.read(0, 65536)
    except InterruptedError:
        continue
    if not chunk:
        break
    *lines, pending = (pending + chunk).split(b"\n")
    out(b"".join(line + b"\n" for line in lines if not DROP.match(line)))
if pending and not DROP.match(pending):
    out(pending)
"""


def filter_stderr_lines():
    """Routes this process's stderr (file descriptor 2) through the log-line filter.

    The filter is a child process (so a line written just before a crash is
    still delivered) in its own session (so Ctrl-C reaches only this
    process). At exit, file descriptor 2 is restored and the filter is given
    up to 5 s to finish. Does nothing where it cannot (no fd 2, not POSIX).
    """
    if os.name != "posix":
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return
    read_end, write_end = os.pipe()
    try:
        child = subprocess.Popen([sys.executable, "-S", "-E", "-c", _FILTER_SOURCE], stdin=read_end, stdout=saved,
                                 stderr=saved, start_new_session=True)
    except OSError:
        for fd in (read_end, write_end, saved):
            os.close(fd)
        return
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)

    def restore():
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)  # closes the pipe: the filter reads the rest, then EOF
        os.close(saved)
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:  # a child of ours still holds the pipe: it drains on its own
            pass

    atexit.register(restore)
