"""A trained model or a shipped preset scored on a labelled corpus of your own.

Every file of the corpus is predicted from its audio (the model's own front
end and features, as `keras-ser predict` does), and the predictions are
scored over the emotions the model and the corpus share, in the shared
emotion names (`tf_pipeline.emotion_vocabulary`: RAVDESS "angry" is
"anger", EMOVO "joy" is "happiness"; "calm" is not "neutral"): files of
other classes are left out and counted, and each file's prediction is the
arg-max of the model's probabilities among the shared emotions, so the
model is neither rewarded nor punished for classes the corpus lacks. The
model never trains here: this is the figure a preset reaches on speech it
has not heard.

Prints the scores (UA = mean recall over the scored emotions, WA =
accuracy), the recall of each emotion and the confusion matrix; `--json`
prints them as JSON, `--out=FILE` also writes that JSON (with every file's
prediction), `--plot=FILE.png` the confusion matrix as a picture. A file that cannot be read is named and left out of the
scores; the exit status is then 1.

With `--adapt_speaker` (a preset or model trained with per-speaker
normalisation, e.g. `encoder_stats_multilingual_adaptive`), each speaker of
the corpus is adapted from all of its own files first (`keras_ser.adapt`):
that uses each speaker's unlabelled audio, and the output says so.

Examples:
    keras-ser evaluate --preset=encoder_stats_multilingual --corpus=dir --data_dir=/data/my_corpus
    keras-ser evaluate --preset=encoder_stats_emodb --corpus=ravdess --data_dir=/data/ravdess \\
        --classes=anger,happiness,sadness,neutral --out=ravdess_scores.json
    keras-ser evaluate --model=emodb.keras --corpus=csv --data_dir=labels.csv --json
    keras-ser evaluate --preset=encoder_stats_multilingual_adaptive --adapt_speaker --corpus=emovo \\
        --data_dir=/data/emovo
"""

import json
import sys
import time

from keras_ser_cli import corpus_flags
from keras_ser_cli import model_flags
from keras_ser_cli.usage import UsageError

PROGRESS_EVERY = 100  # files between progress lines (stderr)


def define_flags(flag_values):
    from absl import flags

    flags.DEFINE_string("model", None, "A .keras model saved by keras-ser (train, demo).", flag_values=flag_values)
    flags.DEFINE_string("preset", None, "A trained model shipped with keras-ser, instead of --model "
                        "(keras_ser.list_presets()).", flag_values=flag_values)
    corpus_flags.define(flag_values, default_corpus=None)
    flags.DEFINE_boolean("adapt_speaker", False, "Adapt the model to each speaker of the corpus from all of that "
                         "speaker's files before predicting them (models trained with per-speaker normalisation; "
                         "uses each speaker's unlabelled audio).", flag_values=flag_values)
    flags.DEFINE_boolean("json", False, "Print JSON instead of the tables.", flag_values=flag_values)
    flags.DEFINE_string("out", None, "Also write the JSON, with every file's prediction, to this file.",
                        flag_values=flag_values)
    flags.DEFINE_string("plot", None, "Also draw the confusion matrix (rows normalised) into this PNG.",
                        flag_values=flag_values)


def main(flag_values, positional):
    if positional:
        raise UsageError(f"evaluate reads the files of --corpus; it takes no file arguments. Received: {positional}")
    if bool(flag_values.model) == bool(flag_values.preset):
        raise UsageError("give exactly one of --model=M.keras or --preset=NAME")
    if not flag_values.corpus:
        raise UsageError("--corpus is required (e.g. --corpus=dir --data_dir=/data/my_corpus)")
    model, source = model_flags.load(flag_values)
    if flag_values.adapt_speaker:
        from keras_ser_cli.predict import check_adaptable

        check_adaptable(model, f"the {source}")
    corpus = corpus_flags.load(flag_values)
    print(corpus.summary(), file=sys.stderr)
    from keras_ser.training.cross_corpus import shared_classes

    try:
        shared_classes(list(model.class_names), corpus)  # before any prediction: do the two share emotions?
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not flag_values.adapt_speaker:
        from keras_ser_cli.predict import note_if_adaptable

        note_if_adaptable(model, source)
    result = evaluate(model, corpus, adapt_speaker=flag_values.adapt_speaker, log=_stderr)
    result["model"] = source
    if flag_values.out:
        from tf_pipeline.atomic import write_json_atomic

        write_json_atomic(flag_values.out, result)
    summary = {key: value for key, value in result.items() if key != "predictions"}
    print(json.dumps(summary, indent=1) if flag_values.json else format_result(result))
    if flag_values.out:
        print(f"written {flag_values.out}", file=sys.stderr)
    if flag_values.plot:
        from keras_ser.training.report import plot_confusion

        plot_confusion({"confusion": result["confusion"], "class_names": result["classes"],
                        "pooled": {"wa": result["wa"] / 100, "ua": result["ua"] / 100}}, flag_values.plot,
                       title=f"{source} on {result['corpus']}")
        print(f"written {flag_values.plot}", file=sys.stderr)
    return 1 if result["unreadable"] else 0


def _stderr(line):
    print(line, file=sys.stderr, flush=True)


def evaluate(model, corpus, adapt_speaker=False, log=None):
    """Predicts every file of `corpus` with `model` and scores it over the emotions both share.

    Args:
        model: a keras-ser model (a preset, or a loaded `.keras` model).
        corpus: a `tf_pipeline.Corpus` (one reader's, or corpora combined).
        adapt_speaker: bool. Adapt the model to each speaker from all of its
            files first (`keras_ser.adapt`; uses their unlabelled audio).
        log: optional callable for progress lines.

    Returns:
        dict: what `keras_ser.training.cross_corpus.score_probabilities`
        returns (`classes`, `n`, `wa`, `ua`, `recall`, `confusion`;
        `left_out` also counts the files `select_classes` left out of
        `corpus`), plus `unreadable` (`{path: reason}`), `uses_test_speaker_audio` and
        `predictions` (one dict per readable file: `file`, `speaker`,
        `label` (true, shared name), `probabilities`).

    Example:

    >>> import keras_ser, tf_pipeline
    >>> corpus = tf_pipeline.corpora.ravdess("/data/ravdess")                    # doctest: +SKIP
    >>> evaluate(keras_ser.from_preset("encoder_stats_emodb"), corpus)["ua"]     # doctest: +SKIP
    60.8
    """
    import numpy as np

    from keras_ser.inference import predict_files
    from keras_ser.training.cross_corpus import in_shared_names
    from keras_ser.training.cross_corpus import score_probabilities

    start = time.time()
    paths = corpus.paths
    by_path = {}
    groups = _speaker_groups(corpus) if adapt_speaker else [("", list(range(len(paths))))]
    done = [0]

    def progress(_, result):
        done[0] += 1
        if log and len(paths) > PROGRESS_EVERY and (done[0] % PROGRESS_EVERY == 0 or done[0] == len(paths)):
            log(f"predicted {done[0]} of {len(paths)} files ({time.time() - start:.0f} s)")

    for speaker, indices in groups:
        predicting = model if not adapt_speaker else _adapted(model, [paths[i] for i in indices], speaker, log)
        by_path.update((r["file"], r) for r in predict_files(predicting, [paths[i] for i in indices], progress))
    unreadable = {path: by_path[path]["error"] for path in paths if "error" in by_path[path]}
    readable = [i for i, path in enumerate(paths) if path not in unreadable]
    if not readable:
        raise UsageError(f"no file of {corpus.name} could be read; e.g. {paths[0]}: {unreadable[paths[0]]}")
    scored = corpus.subset(readable)
    names = list(model.class_names)
    probabilities = np.array([[by_path[paths[i]]["probabilities"][name] for name in names] for i in readable])
    result = score_probabilities(probabilities, names, scored)
    result["left_out"] += sum(count for _, count in corpus.left_out)  # and those `--classes` left out
    shared = in_shared_names(scored)
    truth = [shared.class_names[record.label] for record in shared.records]
    result.update(unreadable=unreadable, uses_test_speaker_audio=bool(adapt_speaker),
                  seconds=round(time.time() - start, 1),
                  predictions=[{"file": paths[i], "speaker": corpus.records[i].speaker, "label": label,
                                "probabilities": by_path[paths[i]]["probabilities"]}
                               for i, label in zip(readable, truth)])
    return result


def _speaker_groups(corpus):
    """`[(speaker, record indices)]` in speaker order."""
    speakers = corpus.speaker_ids
    return [(speaker, [i for i, s in enumerate(speakers) if s == speaker]) for speaker in corpus.speakers]


def _adapted(model, paths, speaker, log):
    """The model adapted to one speaker from its readable files (`keras_ser.adapt`); the model itself when none
    is readable (`predict_files` names the unreadable ones)."""
    from keras_ser_cli.predict import adapt_to_files

    adapted, readable, _ = adapt_to_files(model, paths)
    if adapted is None:
        return model
    if log:
        log(f"speaker {speaker}: adapted from its {len(readable)} file(s)")
    return adapted


def format_result(result):
    """The scores, the recall of each emotion and the confusion matrix, as text."""
    classes = result["classes"]
    lines = [f"{result['model']} on {result['corpus']}: UA {result['ua']:.1f} / WA {result['wa']:.1f} over "
             f"{len(classes)} emotions ({', '.join(classes)}; chance UA {100 / len(classes):.1f}), {result['n']} files"
             + (f", {result['left_out']} of other classes left out" if result["left_out"] else "")]
    if result["uses_test_speaker_audio"]:
        lines.append("each speaker adapted from all of its files: uses each speaker's unlabelled audio")
    if result["unreadable"]:
        lines.append(f"{len(result['unreadable'])} file(s) could not be read and are not scored:")
        lines += [f"  {path}: {reason}" for path, reason in result["unreadable"].items()]
    corner = "true \\ predicted"
    width = max(len(name) for name in classes + [corner])
    lines += ["", "recall per emotion (%):"]
    lines += [f"  {name:{width}s} {result['recall'][name]:6.1f}" for name in classes if name in result["recall"]]
    lines += ["", "confusion (rows true, columns predicted):",
              f"  {corner:{width}s} " + " ".join(f"{name[:9]:>9s}" for name in classes)]
    for name, row in zip(classes, result["confusion"]):
        lines.append(f"  {name:{width}s} " + " ".join(f"{count:9d}" for count in row))
    return "\n".join(lines)
