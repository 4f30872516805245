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
    """The protocol sentence of a run's config (as in each run's results.md)."""
    if config is None:
        return "see docs/baselines.md"
    from keras_ser.training.config import encoder_models

    if config.get("model") in encoder_models():
        return encoder_protocol_text(config, feature_config, c_grid)
    from keras_ser.training.report import _protocol

    return _protocol(config).removeprefix("Protocol: ")


def encoder_protocol_text(config, feature_config=None, c_grid=None):
    """The protocol sentence of a speech-encoder run (`encoder_stats` / `encoder_sru`); `c_grid`: the probe's
    C values as the run recorded them (default: the current `keras_ser.training.frozen.PROBE_C_GRID`)."""
    if c_grid is None:
        from keras_ser.training.frozen import PROBE_C_GRID as c_grid

    features = feature_config or {}
    if config["model"] == "fusion_stats":
        features = features.get("mel_frames") or {}
    volume = features.get("volume_dbfs")
    audio = ("raw audio (no volume normalisation)" if volume is None else
             f"each utterance raised to {volume:g} dBFS RMS (never lowered) before the spectrum, in the graph")
    frames = (f"{features.get('n_mels', 40)}-band Mel power frames ({features.get('n_fft', 400)}-sample window every "
              f"{features.get('hop_length', 160)} samples at {features.get('sample_rate', 16000)} Hz)")
    encoder = f"GE2E speaker encoder (3 LSTM layers of 256 units, offline weights, frozen) over {frames}, {audio}"
    sfx = ("aisfx sound-effects CNN (4 blocks of two 3x3 convolutions, 64-512 channels, offline weights CC BY 4.0, "
           "frozen) over 96-band HTK log-Mel (46.4 ms Hann window every 23.2 ms at 16 kHz, peak-normalised audio)")
    if config["model"] == "sfx_stats":
        encoder, pooling = sfx, "mean and std over time of the top block's frames (1024 features)"
    elif config["model"] == "fusion_stats":
        encoder = f"{encoder}, and the {sfx}"
        pooling = ("mean and std over time of each LSTM layer's frames and of the CNN's top block, concatenated "
                   "(1536 + 1024 = 2560 features)")
    elif config["model"] == "encoder_stats":
        pooling = "mean and std over time of each layer's frames (1536 features)"
    else:
        pooling = (f"each layer's frames cut in N={config['n_segments']} segments, mean and std per segment "
                   f"(1536 features each), dropout {config['dropout']}, SRU {config['sru_units']} units over the "
                   "segments")
    if config["recipe"] == "probe":
        grid = ", ".join(f"{c:g}" for c in sorted(c_grid))
        training = ("features standardised on the training speakers, multinomial logistic regression (L-BFGS), "
                    f"C from {{{grid}}} chosen by leave-one-speaker-out over the training speakers (mean UA), "
                    "then refitted on all of them")
        if config.get("speaker_subspace"):
            from keras_ser.training.frozen import subspace_ranks

            ranks = ", ".join(str(r) for r in subspace_ranks(config["speaker_subspace"]))
            training += (f"; before the regression, the speaker subspace (principal directions of the training "
                         f"speakers' class-balanced mean features) is projected out, its rank from {{{ranks}}} "
                         "chosen together with C in the same inner leave-one-speaker-out")
    else:
        validation = ("early stopping on the next training speaker "
                      f"({config['monitor']}, patience {config['patience']}, best epoch restored)"
                      if config["validation"] == "next" else "no validation speaker, last epoch kept")
        training = (f"softmax head trained on the features extracted once, Adam lr {config['learning_rate']:g} up to "
                    f"{config['epochs']} epochs, batch {config['batch_size']}, {validation}")
    return f"{encoder}; {pooling}; {training}; seed {config['seed']}."


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
