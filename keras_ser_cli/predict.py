"""Emotion label and per-class probabilities for audio files.

With --model, a saved .keras model predicts locally; with --preset, a
trained model shipped with keras-ser does (no training, no download: see
`keras_ser.list_presets()`); with --server, a TensorFlow Serving server (or
`keras-ser serve-local`) does, over gRPC. A
file that cannot be read is reported by name and the others are still
predicted; the exit status is 1 when any file failed.

With --timeline_dir (--model or --preset), each file of any length is read in
chunks and predicted window by window (--window_s every --hop_s, the model's
own features): DIR/<file stem>.csv (start_s, end_s, one column per class) and
DIR/<file stem>.png (the probabilities over time), and one summary line per
file (`keras_ser.predict_timeline`).

With --adapt_speaker (--model or --preset), the files are ONE speaker's utterances: the
model's pooled features are standardised with the statistics of these files
(`keras_ser.adapt`; the model must have been trained with per-speaker
normalisation), and the first line says so. This uses that speaker's
unlabelled audio.

Examples:
    keras-ser predict --model=emodb.keras 03a01Fa.wav 03a01Wa.wav
    keras-ser predict --preset=encoder_stats_emodb recording.wav
    keras-ser predict --server=localhost:8500 --model_name=ser --json *.wav
    keras-ser predict --preset=encoder_stats_emodb --window_s=3 --hop_s=1 --timeline_dir=out long.wav
    keras-ser predict --adapt_speaker --model=speaker_norm.keras call_*.wav
    keras-ser predict --adapt_speaker --preset=encoder_stats_multilingual_adaptive speaker_07/*.wav
"""

import json

from keras_ser_cli.usage import UsageError

USAGE = "FILE [FILE ...]"


def define_flags(flag_values):
    from absl import flags

    flags.DEFINE_string("model", None, "A .keras model saved by keras-ser (train, demo).", flag_values=flag_values)
    flags.DEFINE_string("preset", None, "A trained model shipped with keras-ser, instead of --model "
                        "(keras_ser.list_presets(): encoder_stats_emodb, the 7 EMO-DB emotions).",
                        flag_values=flag_values)
    flags.DEFINE_string("server", None, "host:port of a TF Serving gRPC endpoint, instead of --model.",
                        flag_values=flag_values)
    flags.DEFINE_string("model_name", "ser", "Model name on the server (--server).", flag_values=flag_values)
    flags.DEFINE_boolean("json", False, "Print JSON (one object per file) instead of a table.",
                         flag_values=flag_values)
    flags.DEFINE_string("timeline_dir", None, "Timeline mode (--model or --preset): predict every --window_s window "
                        "every --hop_s of each file (any length, read in chunks) and write DIR/<file stem>.csv "
                        "(start_s, end_s, one column per class) and DIR/<file stem>.png; one summary line per file.",
                        flag_values=flag_values)
    flags.DEFINE_float("window_s", 3.0, "Timeline window length in seconds (--timeline_dir).", flag_values=flag_values)
    flags.DEFINE_float("hop_s", 1.0, "Seconds between timeline window starts (--timeline_dir).",
                       flag_values=flag_values)
    flags.DEFINE_boolean("adapt_speaker", False, "Treat the files as ONE speaker's utterances and standardise the "
                         "model's features with their statistics (keras_ser.adapt; --model trained with per-speaker "
                         "normalisation). Uses that speaker's unlabelled audio.", flag_values=flag_values)


def main(flag_values, positional):
    if not positional:
        raise UsageError("no audio files given; usage: keras-ser predict --model=M.keras FILE [FILE ...]")
    if sum(bool(v) for v in (flag_values.model, flag_values.preset, flag_values.server)) != 1:
        raise UsageError("give exactly one of --model=M.keras, --preset=NAME or --server=host:port")
    if flag_values.timeline_dir and flag_values.server:
        raise UsageError("--timeline_dir predicts locally: give --model=M.keras or --preset=NAME, not --server")
    if flag_values.adapt_speaker and (flag_values.server or flag_values.timeline_dir):
        raise UsageError("--adapt_speaker predicts locally with --model (not --server or --timeline_dir); "
                         "a server's serve_speaker signature does the same")
    if flag_values.timeline_dir:
        for name in ("window_s", "hop_s"):
            if not flag_values[name].value > 0:
                raise UsageError(f"--{name} must be a positive number of seconds; received {flag_values[name].value}")
    if flag_values.server:
        from serving.client import predict_with_server

        results = predict_with_server(flag_values.server, positional, model_name=flag_values.model_name)
        class_names = next((list(r["probabilities"]) for r in results if "probabilities" in r), [])
    else:
        from keras_ser.inference import predict_files
        from keras_ser_cli import model_flags

        model, source = model_flags.load(flag_values)
        if flag_values.timeline_dir:
            return _timelines(model, positional, flag_values)
        if flag_values.adapt_speaker:
            return _adapted(model, positional, flag_values)
        note_if_adaptable(model, source)
        results = predict_files(model, positional)
        class_names = model.class_names
    from keras_ser.inference import format_table

    print(json.dumps(results, indent=1) if flag_values.json else format_table(results, class_names))
    return 1 if any("error" in result for result in results) else 0


def note_if_adaptable(model, source):
    """A model trained with per-speaker normalisation, used without --adapt_speaker: say on stderr what that means
    (`source`: how the command names the model, e.g. "preset encoder_stats_multilingual_adaptive")."""
    import sys

    from keras_ser.adaptation import is_speaker_normalized
    from keras_ser.models.speech_encoders.encoder_task import EncoderTask

    if isinstance(model, EncoderTask) and is_speaker_normalized(model):
        print(f"note: the {source} was trained with per-speaker normalisation; without --adapt_speaker its "
              "features are not centred on any speaker and its predictions are far less accurate. Give it ten or "
              "more files of one speaker with --adapt_speaker.", file=sys.stderr)


def check_adaptable(model, source):
    """A UsageError unless `model` is a speech-encoder model trained with per-speaker normalisation (what
    `--adapt_speaker` needs); `source` names it in the message, e.g. "--preset NAME"."""
    from keras_ser.adaptation import is_speaker_normalized
    from keras_ser.models.speech_encoders.encoder_task import EncoderTask

    if not isinstance(model, EncoderTask) or not is_speaker_normalized(model):
        raise UsageError(f"--adapt_speaker needs a speech-encoder model trained with per-speaker normalisation; "
                         f"{source} was not (its 'standardize' layer holds global statistics)")


def adapt_to_files(model, paths):
    """`(adapted model, readable paths, {unreadable path: reason})`: `keras_ser.adapt` on the readable files as
    one speaker's; the model is None when no file is readable. An adaptation that fails is a UsageError."""
    import tensorflow as tf

    import tf_pipeline
    from keras_ser.adaptation import adapt

    waveforms, readable, failed = [], [], {}
    for path in paths:
        try:
            waveforms.append(tf_pipeline.load_audio(path, model.feature_config))
            readable.append(path)
        except (ValueError, tf.errors.InvalidArgumentError) as error:
            failed[path] = str(error).splitlines()[0]
    if not readable:
        return None, readable, failed
    try:
        return adapt(model, waveforms), readable, failed
    except (ValueError, tf.errors.InvalidArgumentError) as error:
        raise UsageError(f"--adapt_speaker: {str(error).splitlines()[0]}") from None


def _adapted(model, paths, flag_values):
    """--adapt_speaker: adapt to the readable files (one speaker), predict them; 1 when any file failed."""
    from keras_ser.inference import format_table
    from keras_ser.inference import predict_files

    check_adaptable(model, f"--preset {flag_values.preset}" if flag_values.preset else f"--model {flag_values.model}")
    adapted, readable, failed = adapt_to_files(model, paths)
    by_path = dict(zip(readable, predict_files(adapted, readable))) if readable else {}
    results = [by_path[path] if path in by_path else {"file": path, "error": failed[path]} for path in paths]
    line = (f"speaker adaptation: the predictions use the statistics of these {len(readable)} file(s) "
            f"as one speaker (its unlabelled audio)")
    if flag_values.json:
        print(json.dumps({"adapt_speaker": {"files": len(readable), "note": line}, "results": results}, indent=1))
    else:
        print(line)
        print(format_table(results, model.class_names))
    return 1 if failed else 0


def _timelines(model, paths, flag_values):
    """Timeline mode: CSV + PNG per file, one summary (or error) line per file; 1 when any file failed."""
    import os

    import tensorflow as tf

    from keras_ser.timeline import format_summary
    from keras_ser.timeline import plot_timeline
    from keras_ser.timeline import predict_timeline
    from keras_ser.timeline import window_predictor
    from keras_ser.timeline import write_csv

    os.makedirs(flag_values.timeline_dir, exist_ok=True)
    predict = window_predictor(model)  # traced once for all the files
    summaries, stems = [], set()
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        unique, count = stem, 1
        while unique in stems:  # same name in two folders: a.csv, a_2.csv
            count += 1
            unique = f"{stem}_{count}"
        stems.add(unique)
        try:
            timeline = predict_timeline(model, path, flag_values.window_s, flag_values.hop_s, _predict=predict)
        except (ValueError, tf.errors.InvalidArgumentError) as error:
            message = str(error).splitlines()[0]
            summaries.append({"file": path, "error": message})
            if not flag_values.json:
                print(f"{path}: ERROR: {message}")
            continue
        base = os.path.join(flag_values.timeline_dir, unique)
        summary = timeline.summary()
        summary["csv"] = write_csv(timeline, base + ".csv")
        summary["png"] = plot_timeline(timeline, base + ".png", title=os.path.basename(path))
        summaries.append(summary)
        if not flag_values.json:
            print(format_summary(summary))
    if flag_values.json:
        print(json.dumps(summaries, indent=1))
    return 1 if any("error" in summary for summary in summaries) else 0
