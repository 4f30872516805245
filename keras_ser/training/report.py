"""Reports of LOSO runs: results.json, results.md, confusion.png, and paired t-tests.

A leave-one-corpus-out run (`evaluation: "loco"` in its `run.json`) is
reported the same way, one row per test corpus.

Everything here is computed from the fold files alone, so a resumed run
writes the same report as an uninterrupted one.
"""

import glob
import json
import os

import numpy as np

from keras_ser.training import scores
from keras_ser.training.channel_copies import describe as describe_copies
from keras_ser.training.config import ENCODER_RECIPES
from keras_ser.training.config import SPEAKER_GROUPS
from keras_ser.training.config import TrainConfig
from tf_pipeline.atomic import write_json_atomic
from tf_pipeline.atomic import write_text_atomic


def load_folds(run_dir):
    """The fold result dicts of a run directory, sorted by test speaker."""
    folds = []
    for path in sorted(glob.glob(os.path.join(run_dir, "fold_*.json"))):
        with open(path) as handle:
            folds.append(json.load(handle))
    return folds


def scores_among(fold, classes):
    """WA, UA and recall of one fold's predictions over some of its classes (arg-max among them).

    How a probe trained on more classes (say six emotions) is scored on the
    classes another model or corpus has (say four): files of the other
    classes are left out, and each remaining file's prediction is the
    class of `classes` with the highest probability.

    Args:
        fold: a fold result dict (`fold_<test>.json`: `test_speaker`,
            `class_names`, `predictions` with `label` and `probabilities`).
        classes: class names, each one of the fold's.

    Returns:
        dict with `wa`, `ua`, `recall` (`{class: recall}`) and `n` (files scored).

    Example:

    >>> fold = {"test_speaker": "emovo", "class_names": ["anger", "fear", "sadness"], "predictions": [
    ...     {"label": 0, "probabilities": [0.2, 0.7, 0.1]}, {"label": 2, "probabilities": [0.1, 0.3, 0.6]}]}
    >>> scores_among(fold, ["anger", "sadness"])["ua"]
    1.0
    """
    names = list(fold["class_names"])
    missing = [name for name in classes if name not in names]
    if missing:
        raise ValueError(f"{fold['test_speaker']}: the run has no class {missing}; it has {names}")
    columns = [names.index(name) for name in classes]
    rows = [row for row in fold["predictions"] if names[row["label"]] in classes]
    if not rows:
        raise ValueError(f"{fold['test_speaker']}: no test file of the classes {list(classes)}")
    labels = [classes.index(names[row["label"]]) for row in rows]
    predicted = [int(np.argmax(np.asarray(row["probabilities"])[columns])) for row in rows]
    wa, ua, recalls = scores.scores_from_confusion(scores.confusion_matrix(labels, predicted, len(classes)))
    return {"wa": wa, "ua": ua, "n": len(rows),
            "recall": {name: recall for name, recall in zip(classes, recalls) if recall is not None}}


def summarise(run_dir):
    """The report dict of a run: per fold, pooled, mean and std over folds.

    Also `uses_test_speaker_audio`, `speakers_done` and, when `run.json` lists
    the corpus's `speakers`, `speakers_missing` and `complete`; `label`,
    `protocol` and `provenance` are copied from `run.json` where it has them.
    `evaluation` is `"loso"` or `"loco"` (leave-one-corpus-out: the
    "speakers" are the test corpora); `corpora` and `left_out` (files per
    class left out by `tf_pipeline.corpora.select_classes`) come from
    `run.json`, each fold's `train_corpora` from its file, where present.
    """
    folds = load_folds(run_dir)
    if not folds:
        raise ValueError(f"{run_dir}: no finished folds (fold_*.json) to report")
    with open(os.path.join(run_dir, "run.json")) as handle:
        run = json.load(handle)
    class_names = folds[0]["class_names"]
    labels = np.concatenate([[p["label"] for p in fold["predictions"]] for fold in folds])
    predicted = np.concatenate([[p["predicted"] for p in fold["predictions"]] for fold in folds])
    was = np.array([fold["wa"] for fold in folds])
    uas = np.array([fold["ua"] for fold in folds])
    confusion = scores.confusion_matrix(labels, predicted, len(class_names))
    done = [fold["test_speaker"] for fold in folds]
    summary = {
        "corpus": run["corpus"],
        "ensemble_of": run.get("ensemble_of"),
        "data_dir": run.get("data_dir"),
        "command": run.get("command"),
        "config": run["config"],
        "feature_config": run["feature_config"],
        "class_names": class_names,
        "folds": [
            {
                **{key: fold[key]
                   for key in ("test_speaker", "validation_speaker", "n_train", "n_test", "wa", "ua",
                               "epochs_run", "best_epoch", "wall_time_s")},
                **({"train_corpora": fold["train_corpora"]} if "train_corpora" in fold else {}),
            }
            for fold in folds
        ],
        "pooled": {
            "n": int(labels.size),
            "wa": scores.weighted_accuracy(labels, predicted),
            "ua": scores.unweighted_accuracy(labels, predicted, len(class_names)),
        },
        "mean": {"wa": float(was.mean()), "ua": float(uas.mean())},
        "std": {"wa": float(was.std(ddof=1)) if len(folds) > 1 else 0.0,
                "ua": float(uas.std(ddof=1)) if len(folds) > 1 else 0.0},
        "std_ddof": 1,
        "confusion": confusion.tolist(),
        "wall_time_s": round(sum(fold["wall_time_s"] for fold in folds), 1),
        "versions": folds[-1].get("versions", {}),
        "uses_test_speaker_audio": bool(run.get("uses_test_speaker_audio", run["config"].get("speaker_norm", False))),
        "speakers_done": done,
        "evaluation": run.get("evaluation", "loso"),
    }
    for key in ("corpora", "left_out"):
        if key in run:
            summary[key] = run[key]
    if run.get("speakers") is not None:  # every speaker of the corpus: which folds are still to run
        summary["speakers_missing"] = [speaker for speaker in run["speakers"] if speaker not in done]
        summary["complete"] = not summary["speakers_missing"]
    for key in ("label", "protocol", "provenance"):  # what a system whose config protocol_text cannot word says of itself
        if key in run:
            summary[key] = run[key]
    return summary


def markdown(summary):
    """The human-readable table of a report."""
    config = summary["config"]
    loco = summary.get("evaluation") == "loco"
    evaluation = "Leave-one-corpus-out" if loco else "LOSO"
    if summary.get("label"):
        title = f"# {evaluation} on {summary['corpus']}: {summary['label']}"
        protocol = f"Protocol: {summary['protocol']}"
    else:
        title = f"# {evaluation} on {summary['corpus']}: {config['model']} ({config['recipe']} recipe)"
        protocol = "Protocol: " + protocol_text(config, summary.get("feature_config"), loco=loco)
    if loco:
        protocol += " Each fold tests every file of one corpus after training on the other corpora."
    if summary.get("left_out"):
        left = ", ".join(f"{name} {count}" for name, count in summary["left_out"].items())
        protocol += (f" Classes {', '.join(summary['class_names'])}; left out "
                     f"{sum(summary['left_out'].values())} files of other classes ({left}).")
    if summary.get("ensemble_of"):
        title = f"# {evaluation} on {summary['corpus']}: ensemble of {len(summary['ensemble_of'])} runs"
        protocol = ("Mean of the per-utterance probabilities of: " + ", ".join(summary["ensemble_of"])
                    + f". First run's protocol: {protocol}")
    lines = [
        title,
        "",
        f"Command: `{summary['command']}`",
        "",
        protocol,
        "",
        f"| Test {'corpus' if loco else 'speaker'} | Utterances | WA % | UA % | Epochs (best) | Time s |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for fold in summary["folds"]:
        epochs = ", ".join(f"{stage} {run} ({fold['best_epoch'][stage]})" for stage, run in fold["epochs_run"].items())
        lines.append(
            f"| {fold['test_speaker']} | {fold['n_test']} | {100 * fold['wa']:.1f} | {100 * fold['ua']:.1f} "
            f"| {epochs} | {fold['wall_time_s']:.0f} |"
        )
    pooled, mean, std = summary["pooled"], summary["mean"], summary["std"]
    lines += [
        f"| **pooled** | {pooled['n']} | **{100 * pooled['wa']:.1f}** | **{100 * pooled['ua']:.1f}** | | "
        f"{summary['wall_time_s']:.0f} |",
        f"| mean ± std over {len(summary['folds'])} folds | | {100 * mean['wa']:.1f} ± {100 * std['wa']:.1f} "
        f"| {100 * mean['ua']:.1f} ± {100 * std['ua']:.1f} | | |",
        "",
        "Confusion (pooled; rows true, columns predicted):",
        "",
        "| | " + " | ".join(summary["class_names"]) + " |",
        "|---|" + "---:|" * len(summary["class_names"]),
    ]
    for name, row in zip(summary["class_names"], summary["confusion"]):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    versions = summary.get("versions", {})
    if "keras" in versions or not versions:
        libraries = (f"Keras {versions.get('keras', '?')} ({versions.get('keras_backend', '?')}), "
                     f"TensorFlow {versions.get('tensorflow', '-')}")
    else:  # a system without Keras (the openSMILE baselines): the libraries it recorded
        libraries = ", ".join(f"{name} {versions[name]}" for name in ("python", "numpy", "scipy", "scikit-learn",
                                                                      "opensmile") if versions.get(name))
    lines += [
        "",
        f"Machine: {versions.get('platform', '?')}, {versions.get('cpu_count', '?')} CPUs, "
        f"GPUs: {versions.get('gpus') or 'none'}; {libraries}.",
    ]
    return "\n".join(lines) + "\n"


def _task(config):
    """The registered task class of a run's model (imported on use: the models import Keras, and the baselines,
    which write reports too, do not)."""
    from keras_ser.models import registry

    return registry.get(config["model"])


def _encoder_protocol(config, feature_config=None, c_grid=None, loco=False):
    """The protocol sentence of the speech-encoder entries (frozen encoder, head on pooled features)."""
    from keras_ser.training.frozen import PROBE_C_GRID
    from keras_ser.training.frozen import subspace_ranks

    task = _task(config)
    pooling = task.PROTOCOL_POOLING.format(**config)
    held_out = "leave-one-corpus-out" if loco else "leave-one-speaker-out"
    inner = f"{held_out} over the training {'corpora' if loco else 'speakers'}"
    inner_folds = config.get("inner_folds", "auto")
    if inner_folds == "speakers":
        held_out = inner = "leave-one-speaker-out over the training speakers" + (" of every training corpus"
                                                                               if loco else "")
    elif inner_folds == "speaker_groups":
        held_out = inner = (f"leaving out each of {SPEAKER_GROUPS} groups of whole training speakers (sorted, dealt "
                            "round-robin)")
    if config["recipe"] == "probe":
        grid = ", ".join(f"{c:g}" for c in sorted(c_grid or PROBE_C_GRID))
        training = (f"features standardised on the training {'corpora' if loco else 'speakers'}, multinomial "
                    f"logistic regression (L-BFGS), C from {{{grid}}} chosen by {inner} (mean UA), then refitted "
                    "on all of them")
        if config.get("fine_tune"):
            layers = f"{config['fine_tune']} LSTM layer{'s' if config['fine_tune'] > 1 else ''}"
            training += (f"; then the encoder's top {layers} and the head trained from the regression's weights "
                         f"over the training utterances, Adam lr {config['learning_rate']:g}, {config['epochs']} "
                         f"epochs, batch {config['batch_size']}, last epoch kept")
        if config.get("speaker_subspace"):
            ranks = ", ".join(str(r) for r in subspace_ranks(config["speaker_subspace"]))
            training += (f"; before the regression, the speaker subspace (principal directions of the training "
                         f"speakers' class-balanced mean features) is projected out, its rank from {{{ranks}}} "
                         f"chosen together with C in the same inner {held_out}")
    else:
        validation = ("early stopping on the next training speaker "
                      f"({config['monitor']}, patience {config['patience']}, best epoch restored)"
                      if config["validation"] == "next" else "no validation speaker, last epoch kept")
        training = (f"softmax head trained on the features extracted once, Adam lr {config['learning_rate']:g} up to "
                    f"{config['epochs']} epochs, batch {config['batch_size']}, {validation}")
    if config.get("channel_copies"):
        copies = describe_copies(config["channel_copies"], config.get("channel_draws", 1))
        training += (f"; {copies}, their features trained on with the utterance's label and never scored"
                     + (" (C chosen on the utterances themselves)" if config["recipe"] == "probe" else ""))
    encoder = task.protocol_encoder(feature_config)
    if config.get("fine_tune"):
        encoder = encoder.replace(", frozen)", f", top {config['fine_tune']} fine-tuned after the probe)")
    if config.get("backbone_weights"):
        encoder += f" (weights {config['backbone_weights']})"
    return f"{encoder}; {pooling}; {training}; seed {config['seed']}."


def protocol_text(config, feature_config=None, c_grid=None, loco=False):
    """The protocol sentence of a run: its model, features, training and model selection, in words.

    What it says of the model comes from its registered class; the run
    reports (results.md of every run) and docs/results.md word runs with it.

    Args:
        config: the run's `TrainConfig` as a dict (`run.json`'s `config`).
        feature_config: the run's feature config as a dict, or None (the
            speech-encoder entries then describe their default input).
        c_grid: the `C` values the probe chose from (default: the current
            `keras_ser.training.frozen.PROBE_C_GRID`).
        loco: bool. Leave-one-corpus-out: the probe's inner folds leave out
            training corpora.

    Example:

    >>> from keras_ser.training.config import TrainConfig
    >>> protocol_text(TrainConfig(model="sru", sru_units=8, epochs=2).to_dict())[:40]
    'SRU 8 units, dropout 0.5, Adam lr 0.0001'
    """
    if config["recipe"] in ENCODER_RECIPES:
        return _encoder_protocol(config, feature_config, c_grid, loco)
    task = _task(config)
    weights = config.get("backbone_weights") or "random init (no pretrained weights)"
    frozen = config["recipe"] == "paper" and config.get("stage1_epochs") == 0
    if config["recipe"] == "paper":
        stage1 = ("no stage 1 (backbone frozen as built), " if frozen else
                  f"stage 1 SGD lr {config['stage1_learning_rate']} up to {config['stage1_epochs']} epochs, ")
        training = (stage1 + f"stage 2 Adam lr {config['stage2_learning_rate']} up to {config['stage2_epochs']} epochs"
                    + (f", feature dropout {config['stage2_dropout']}" if config.get("stage2_dropout") else ""))
    else:
        training = f"Adam lr {config['learning_rate']} up to {config['epochs']} epochs"
    validation = ("early stopping on the next training speaker "
                  f"({config['monitor']}, patience {config['patience']})"
                  if config["validation"] == "next" else "no validation speaker, last epoch kept")
    backbone = "" if "backbone" not in task.BUILD_OPTIONS else (
        f"backbone {config['backbone']}{' ' + config['backbone_variant'] if config.get('backbone_variant') else ''} "
        f"({weights}), "
        f"N={task.input_segments(config['n_segments'])}, image {config['image_size']}px"
        + (f", backbone_kwargs {config['backbone_kwargs']}" if config.get("backbone_kwargs") else "") + ", ")
    levers = TrainConfig.from_dict(config).levers()
    # The backbone's dropout acts only where it trains.
    network = [f"SRU {config['sru_units']} units"] if "sru_units" in task.BUILD_OPTIONS else []
    network += [] if frozen else [f"dropout {config['dropout']}"]
    return (f"{backbone}{', '.join(network + [training])}, "
            f"batch {config['batch_size']}, {validation}, seed {config['seed']}"
            + (f", {config['mixed_precision']}" if config.get("mixed_precision") else "")
            + (f"; levers: {'; '.join(levers)}" if levers else "; no augmentation") + ".")


def plot_confusion(summary, path, title=None):
    """Saves the row-normalised pooled confusion matrix with class names.

    `summary` holds `confusion`, `class_names` and `pooled` (`wa`, `ua` in
    [0, 1]), and for the default title `corpus`, `config` and `evaluation`
    (a run's `summarise`); `title` replaces that title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.array(summary["confusion"], dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    names = summary["class_names"]
    size = 1.2 + 0.75 * len(names)
    figure, axis = plt.subplots(figsize=(size + 1.5, size))
    image = axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axis.set_yticks(range(len(names)), names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            axis.text(j, i, f"{normalised[i, j]:.2f}", ha="center", va="center",
                      color="white" if normalised[i, j] > 0.5 else "black", fontsize=8)
    pooled = summary["pooled"]
    if title is None:
        name = summary["config"].get("model") or summary.get("label")
        evaluation = "LOCO" if summary.get("evaluation") == "loco" else "LOSO"
        title = f"{summary['corpus']} {evaluation}, {name}"
    axis.set_title(f"{title}: WA {100 * pooled['wa']:.1f} / UA {100 * pooled['ua']:.1f}", fontsize=10)
    figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(run_dir, log=print):
    """Writes results.json, results.md and confusion.png (when matplotlib is installed); returns the report dict."""
    summary = summarise(run_dir)
    write_json_atomic(os.path.join(run_dir, "results.json"), summary)
    text = markdown(summary)
    write_text_atomic(os.path.join(run_dir, "results.md"), text)
    try:
        import matplotlib  # noqa: F401  (optional: the GPU machines have none)
    except ImportError:
        if log:
            log("confusion.png not written: matplotlib is not installed")
    else:
        plot_confusion(summary, os.path.join(run_dir, "confusion.png"))
    if log:
        log(text)
    return summary


def compare(run_a, run_b):
    """Paired t-test over the folds two runs share, for WA and UA.

    Returns:
        A dict with the shared speakers, per-fold values and, per metric,
        the means, the mean difference (B - A), t and the two-sided p-value
        (`paired_ttest`).
    """
    folds_a = {fold["test_speaker"]: fold for fold in load_folds(run_a)}
    folds_b = {fold["test_speaker"]: fold for fold in load_folds(run_b)}
    shared = sorted(set(folds_a) & set(folds_b))
    if len(shared) < 2:
        raise ValueError(
            f"A paired t-test needs at least 2 folds present in both runs. Received shared folds: {shared} "
            f"({run_a}: {sorted(folds_a)}, {run_b}: {sorted(folds_b)})"
        )
    result = {"run_a": run_a, "run_b": run_b, "speakers": shared, "metrics": {}}
    for metric in ("wa", "ua"):
        result["metrics"][metric] = paired_ttest([folds_a[s][metric] for s in shared],
                                                 [folds_b[s][metric] for s in shared])
    return result


def paired_ttest(a, b):
    """Paired t-test of per-fold values `b` against `a` (same folds, same order): the one implementation.

    Returns:
        dict: `a`, `b` (lists), `mean_a`, `mean_b`, `difference` (mean of
        `b - a`), `t` and the two-sided `p` (`scipy.stats.ttest_rel(b, a)`;
        0 and 1 when the two are equal).

    Example:

    >>> round(paired_ttest([0.5, 0.6, 0.7], [0.6, 0.8, 0.9])["difference"], 3)
    0.167
    """
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if np.allclose(a, b):
        t, p = 0.0, 1.0
    else:
        test = stats.ttest_rel(b, a)
        t, p = float(test.statistic), float(test.pvalue)
    return {"a": a.tolist(), "b": b.tolist(), "mean_a": float(a.mean()), "mean_b": float(b.mean()),
            "difference": float((b - a).mean()), "t": t, "p": p}


def compare_table(result):
    """The paired t-test as a table in the style of the paper's Table IV."""
    lines = [
        f"Paired t-test over {len(result['speakers'])} folds ({', '.join(result['speakers'])})",
        f"A = {result['run_a']}",
        f"B = {result['run_b']}",
        "",
        f"{'metric':8s} {'A %':>7s} {'B %':>7s} {'B-A':>7s} {'t':>8s} {'p':>8s}  significant (p<0.05)",
    ]
    for metric, values in result["metrics"].items():
        lines.append(
            f"{metric.upper():8s} {100 * values['mean_a']:7.1f} {100 * values['mean_b']:7.1f} "
            f"{100 * values['difference']:+7.1f} {values['t']:8.3f} {values['p']:8.4f}  "
            f"{'yes' if values['p'] < 0.05 else 'no'}"
        )
    lines += ["", f"{'speaker':8s} " + " ".join(f"{m.upper() + ' A':>7s} {m.upper() + ' B':>7s}" for m in result["metrics"])]
    for index, speaker in enumerate(result["speakers"]):
        lines.append(f"{speaker:8s} " + " ".join(
            f"{100 * v['a'][index]:7.1f} {100 * v['b'][index]:7.1f}" for v in result["metrics"].values()))
    return "\n".join(lines)


def ensemble(run_dirs, out_dir, log=print):
    """Averages the per-utterance probabilities of several LOSO runs.

    Only folds finished in every run count; every run must hold the same
    test utterances per fold (e.g. the same corpus run with N = 1..5). The
    result is a run folder of its own (fold files and the usual report).

    Returns:
        The report dict.

    Example:

    >>> ensemble(["runs/n1", "runs/n2", "runs/n3"], "runs/ensemble_n123")   # doctest: +SKIP
    """
    if len(run_dirs) < 2:
        raise ValueError(f"An ensemble needs at least 2 runs. Received: {list(run_dirs)}")
    runs = [{fold["test_speaker"]: fold for fold in load_folds(run_dir)} for run_dir in run_dirs]
    shared = sorted(set.intersection(*(set(run) for run in runs)))
    if not shared:
        raise ValueError(f"No fold is finished in all of {list(run_dirs)}")
    with open(os.path.join(run_dirs[0], "run.json")) as handle:
        first = json.load(handle)
    os.makedirs(out_dir, exist_ok=True)
    write_json_atomic(os.path.join(out_dir, "run.json"), {
        **first, "ensemble_of": [os.path.abspath(r) for r in run_dirs],
        "command": "ensemble of " + ", ".join(run_dirs)})
    for speaker in shared:
        folds = [run[speaker] for run in runs]
        paths = [[p["path"] for p in fold["predictions"]] for fold in folds]
        if any(p != paths[0] for p in paths):
            raise ValueError(f"Fold {speaker}: the runs hold different test utterances; they cannot be averaged")
        probabilities = np.mean([[p["probabilities"] for p in fold["predictions"]] for fold in folds], axis=0)
        labels = np.array([p["label"] for p in folds[0]["predictions"]])
        predicted = probabilities.argmax(axis=1)
        num_classes = len(folds[0]["class_names"])
        write_json_atomic(os.path.join(out_dir, f"fold_{speaker}.json"), {
            **{key: folds[0][key] for key in ("test_speaker", "validation_speaker", "n_train", "n_test", "class_names")},
            "wa": scores.weighted_accuracy(labels, predicted),
            "ua": scores.unweighted_accuracy(labels, predicted, num_classes),
            "confusion": scores.confusion_matrix(labels, predicted, num_classes).tolist(),
            "predictions": [{"path": path, "label": int(label), "predicted": int(guess),
                             "probabilities": [round(float(p), 6) for p in probs]}
                            for path, label, guess, probs in zip(paths[0], labels, predicted, probabilities)],
            "epochs_run": {f"run{i + 1}": sum(f["epochs_run"].values()) for i, f in enumerate(folds)},
            "best_epoch": {f"run{i + 1}": sum(f["best_epoch"].values()) for i, f in enumerate(folds)},
            "wall_time_s": round(sum(f["wall_time_s"] for f in folds), 2),
            "versions": folds[0].get("versions", {}),
        })
    return write_report(out_dir, log=log)
