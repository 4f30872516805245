"""How a run is described: its protocol sentence, the machine it ran on, the command that makes it.

The same wording serves the tables of docs/results.md and the entries of
docs/results.json.

>>> machine_label({"cpu_count": 2, "keras_backend": "tensorflow", "tensorflow": "2.21.0"})
'CPU, 2 cores (TF 2.21.0)'
>>> table_command("speech", "cpu", ["03"], ["03", "08"])
'python -m experiments.reproduce --table=speech --folds=03'
"""

import os
import re

from .grids import BASELINES
from .grids import ROOT

COMMAND = "python -m experiments.reproduce"  # from the repository root


def machine_label(versions):
    """E.g. `CPU, 2 cores (TF 2.21.0)` or `GPU NVIDIA H100 (jax)` from a fold's `versions`."""
    versions = versions or {}
    gpus = versions.get("gpus")
    backend = versions.get("keras_backend")
    if backend == "tensorflow" and versions.get("tensorflow"):
        library = f"TF {versions['tensorflow']}"
    elif backend == "jax" and versions.get("jax"):
        library = f"JAX {versions['jax']}"
    else:
        library = backend
    if gpus:
        return f"GPU {', '.join(str(g) for g in gpus)}" + (f" ({library})" if library else "")
    cores = versions.get("cpu_count", "?")
    return f"CPU, {cores} cores" + (f" ({library})" if library else "")


def protocol_text(config, feature_config=None, c_grid=None):
    """The protocol sentence of a run's config (`keras_ser.training.report.protocol_text`, as in each run's
    results.md); `c_grid`: the probe's C values as the run recorded them."""
    if config is None:
        return "see docs/baselines.md"
    from keras_ser.training.report import protocol_text as run_protocol

    return run_protocol(config, feature_config, c_grid)


def probe_choices(run):
    """` C chosen per fold: 1 (6 folds), 0.3 (4 folds).` for probe runs, '' otherwise."""
    chosen = [f["probe_c"] for f in run.folds.values() if f.get("probe_c") is not None]
    if not chosen:
        return ""
    counts = {c: chosen.count(c) for c in sorted(set(chosen), reverse=True)}
    text = " C chosen per fold: " + ", ".join(f"{c:g} ({n} fold{'s' if n > 1 else ''})"
                                              for c, n in counts.items()) + "."
    ranks = [f["probe_rank"] for f in run.folds.values() if f.get("probe_rank") is not None]
    if ranks:
        counts = {r: ranks.count(r) for r in sorted(set(ranks))}
        text += " Speaker-subspace rank chosen per fold: " + ", ".join(
            f"{r} ({n} fold{'s' if n > 1 else ''})" for r, n in counts.items()) + "."
    return text


def run_key(path):
    """A run folder as the leaderboard names it: relative to the repository when inside it."""
    path = os.path.abspath(path)
    inside = os.path.commonpath([path, ROOT]) == ROOT
    return os.path.relpath(path, ROOT) if inside else path


def public_command(command):
    """A command as the leaderboard shows it: the EMO-DB folder of the machine it ran on is a placeholder."""
    if not command:
        return command
    command = re.sub(r"--data_dir(=|\s+)\S+", r"--data_dir\1<EMO-DB wav folder>", command)
    return re.sub(r"--results(=|\s+)\S+", r"--results\1<scratch file>", command)  # where a run wrote its table


def table_command(table, preset, folds=None, all_speakers=None):
    """The command that trains (resumably) and reports a row of `table` on `folds`."""
    command = f"{COMMAND} --table={table}" + (f" --preset={preset}" if preset != "cpu" else "")
    if folds and (not all_speakers or sorted(folds) != sorted(all_speakers)):
        command += " --folds=" + ",".join(folds)
    return command


def baseline_command(run_name):
    """The experiments/baselines.py command of one baselines run folder (`emodb-<set>-<normalisation>`)."""
    _, feature_set, normalization = os.path.basename(run_name).split("-")
    feature_set = {name.lower(): name for name, _ in BASELINES}.get(feature_set, feature_set.upper())
    return (f"python experiments/baselines.py --data_dir=<EMO-DB wav folder> --feature_set={feature_set} "
            f"--normalization={normalization} --run_dir={run_key(os.path.dirname(run_name))}")


def baseline_protocol(row, run):
    """`<label>: <the run's protocol> C chosen per fold: ...` of an openSMILE baseline row; docs/baselines.md."""
    return f"{row.label}: {run.protocol or 'protocol not recorded.'}{probe_choices(run)} See docs/baselines.md."
