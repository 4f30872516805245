"""Predicting emotions of audio files with a trained keras-ser model.

Uses the model's own stored configuration (feature settings, segments,
image size, class names), so callers pass nothing but files.
"""

import os

import numpy as np


def model_inputs(model, waveform):
    """The model input of one mono waveform (`[1, ...]` numpy), by the model's preprocessor.

    E.g. `segments` models get `[1, N, H, W, 3]`, the frame-level `sru`
    model `[1, frames, 3 * n_mels]`, `encoder_stats` `[1, frames, n_mels]` Mel
    power frames (`keras_ser.models.preprocessor`).
    """
    return model.preprocessor(waveform)


def predictor(model):
    """`inputs -> probabilities` (float32 numpy) of a model, compiled once for every input length.

    On the TensorFlow backend: one `tf.function` with the input signature
    `[None] + the model's input shape`, traced once however the batch size and
    the number of frames vary from file to file (`model.predict` on files of
    different lengths traces again, and TensorFlow warns about retracing).
    Other backends: `model.predict_on_batch`.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return lambda inputs: np.asarray(model.predict_on_batch(inputs), np.float32)
    import tensorflow as tf

    def call(inputs):
        return tf.cast(model(inputs, training=False), tf.float32)

    try:
        spec = tf.TensorSpec([None] + list(model.input.shape[1:]), tf.as_dtype(model.input.dtype))
    except (AttributeError, ValueError):  # a model without a symbolic input: relax shapes as they come
        return tf.function(call, autograph=False, reduce_retracing=True)
    return tf.function(call, autograph=False, input_signature=[spec])


def predict_files(model, paths, on_file=None):
    """Label and class probabilities for each file; unreadable files do not stop the others.

    Args:
        model: a keras-ser model (e.g. `keras.saving.load_model("m.keras")`).
        paths: audio file paths.
        on_file: optional callable `(files done, result)`, called after each
            file (e.g. to show progress over a long list).

    Returns:
        A list, one dict per path in order: `{"file", "label", "class_id",
        "probabilities": {class name: p}}`, or `{"file", "error"}` when the
        file cannot be read or is too short.

    Example:

    >>> model = keras.saving.load_model("emodb_cnn_sru.keras")       # doctest: +SKIP
    >>> predict_files(model, ["03a01Fa.wav"])[0]["label"]            # doctest: +SKIP
    'happiness'
    """
    import tensorflow as tf

    import tf_pipeline

    predict = predictor(model)  # compiled once for all the files
    results = []
    for path in paths:
        try:
            waveform = tf_pipeline.load_audio(path, model.feature_config)
            inputs = model_inputs(model, waveform)
        except (ValueError, tf.errors.InvalidArgumentError) as error:
            results.append({"file": path, "error": str(error).splitlines()[0]})
        else:
            probabilities = np.asarray(predict(inputs))[0]
            class_id = int(np.argmax(probabilities))
            results.append({
                "file": path,
                "label": model.class_names[class_id],
                "class_id": class_id,
                "probabilities": {name: float(p) for name, p in zip(model.class_names, probabilities)},
            })
        if on_file is not None:
            on_file(len(results), results[-1])
    return results


def format_table(results, class_names):
    """A fixed-width table of `predict_files` results."""
    width = max([len(os.path.basename(r["file"])) for r in results] + [4])
    header = f"{'file':{width}s}  {'label':12s} " + " ".join(f"{name[:9]:>9s}" for name in class_names)
    lines = [header]
    for result in results:
        name = os.path.basename(result["file"])
        if "error" in result:
            lines.append(f"{name:{width}s}  ERROR: {result['error']}")
            continue
        probabilities = " ".join(f"{result['probabilities'][c]:9.3f}" for c in class_names)
        lines.append(f"{name:{width}s}  {result['label']:12s} {probabilities}")
    return "\n".join(lines)
