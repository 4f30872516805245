"""Export a keras-ser model as a versioned SavedModel for TensorFlow Serving.

`export(model, export_root, name)` writes `<export_root>/<name>/<version>/`,
the layout TF Serving's `--model_base_path=<export_root>/<name>` polls. The
version is written into a hidden temporary directory beside it and renamed
into place, so a polling server never sees half a model.

Signatures (method `tensorflow/serving/predict`, core TF ops only):

- `serving_default`: `waveform` float32 `[batch, samples]` (mono, at the
  model's `feature_config.sample_rate`, zero-padded) and `num_samples` int32
  `[batch]` (the true length of each row). Padded rows give the same result
  as each row alone, so TF Serving's batcher may merge requests of
  different lengths.
- `serve_wav`: `audio_bytes` string `[batch]`, 16-bit PCM WAV of any rate
  (4 kHz to 192 kHz) and channel count, decoded, down-mixed and resampled in
  the graph.

- `serve_speaker` (only for speech-encoder models trained with per-speaker
  normalisation, `keras_ser.adaptation.is_speaker_normalized`):
  `audio_bytes` string `[batch]`, ALL utterances of ONE speaker, decoded as
  `serve_wav` does; the pooled features are standardised with the batch's
  own mean and variance (the variance shrunk toward the model's prior, the
  formula of `keras_ser.adapt`; one utterance: centring only) and the head
  predicts every row. Uses the speaker's unlabelled audio; the other
  signatures use the stored statistics.

All return `probabilities` float32 `[batch, classes]`, `class_id` int64
`[batch]`, `class_name` string `[batch]` and `classes` string `[batch,
classes]` (the class names in the order of `probabilities`, TF's
classification-output convention, so a client needs nothing but the
response to name every probability). Every output is batch-first, as TF
Serving's batcher requires. Audio is decoded by `tf_pipeline.batch_decode_wav`
and turned into the model's input by the model's own preprocessor
(`model.preprocessor.batch`, `keras_ser.models.preprocessor`), the one training
uses; the model standardises its features in its first layer, as in training.

Bad input fails the request with `InvalidArgumentError` and a message that
names the input and the row: an empty batch (0 rows), empty bytes, bytes
that are not WAV, truncated WAV, WAV that is not 16-bit PCM, audio shorter
than one frame (512 samples; 400 for the speech-encoder entries) or than
`n_segments` frames, digital silence (speech-encoder entries), NaN/Inf
samples, `num_samples` that disagrees with `waveform`, and audio longer than
`max_seconds` (30 s by default; the in-graph resampler's memory grows with
the length).

Beside the graph, `assets.extra/` holds `tf_serving_warmup_requests`
(replayed by TF Serving at load), `labels.txt` (one class name per line, in
`class_id` order) and `keras_ser.json` (feature config, segments, image
size, the model's preprocessor, class names, signatures).

Example:

>>> import keras_ser, saved_models
>>> model = keras_ser.build_model(n_segments=3, class_names=[...])      # doctest: +SKIP
>>> path = saved_models.export(model, "exports", "ser")               # doctest: +SKIP
>>> path                                                                    # doctest: +SKIP
'exports/ser/1'
"""

import datetime
import functools
import json
import os
import shutil
import uuid

from saved_models import audit
from saved_models import warmup
from saved_models.signatures import SERVE_SPEAKER
from saved_models.signatures import SERVE_WAV
from saved_models.signatures import SERVING_DEFAULT

OUTPUTS = ("probabilities", "class_id", "class_name", "classes")
LABELS_FILE = "labels.txt"
METADATA_FILE = "keras_ser.json"
DEFAULT_MAX_SECONDS = 30.0
# The WAV sample rates serve_wav accepts live in tf_pipeline.audio, with the
# in-graph WAV checks (`check_wav_bytes`); read on first use, so importing this
# module still does not import TensorFlow.
_FROM_AUDIO = ("MIN_SAMPLE_RATE", "MAX_SAMPLE_RATE")


def __getattr__(name):
    if name not in _FROM_AUDIO:
        raise AttributeError(f"module 'saved_models.export' has no attribute {name!r}")
    from tf_pipeline import audio

    return getattr(audio, name)


# --------------------------------------------------------------------------
# Version directories
# --------------------------------------------------------------------------


def list_versions(model_dir):
    """Sorted integer versions under `model_dir` (numeric directory names, as TF Serving reads them)."""
    if not os.path.isdir(model_dir):
        return []
    versions = []
    for entry in os.listdir(model_dir):
        if entry.isdigit() and os.path.isdir(os.path.join(model_dir, entry)):
            versions.append(int(entry))
    return sorted(versions)


def next_version(model_dir):
    """1 + the highest version under `model_dir`, or 1 when there is none."""
    versions = list_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def check_name(name):
    """Raises ValueError unless `name` can be a model directory and TF Serving model name."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or os.sep in name:
        raise ValueError(
            "name must be a non-empty model name without path separators (it becomes a directory "
            f"under export_root and the TF Serving model name). Received: name={name!r}"
        )
    if name.startswith("."):
        raise ValueError(f"name must not start with '.' (hidden directories are temporary exports). Received: name={name!r}")


def _check_version(version):
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer or None. Received: version={version!r}")


def publish_version(model_dir, version, write, overwrite=False):
    """Writes a version through `write(tmp_dir)` and renames it into place.

    The directory protocol of `export`, usable on its own: `write` fills a
    fresh hidden directory `model_dir/.tmp-<version>-<id>`; only when it
    returns is that directory renamed to `model_dir/<version>`. On any error
    the temporary directory is removed and nothing appears under
    `model_dir`.

    Args:
        model_dir: str. `<export_root>/<name>`, created if missing.
        version: int >= 1, or None for `next_version(model_dir)`.
        write: callable `(path, version) -> None` writing the SavedModel
            of `version` into `path`.
        overwrite: bool. Replace an existing version (renamed away first,
            deleted after the new one is in place). Defaults to `False`:
            an existing version is an error.

    Returns:
        str, the path of the version directory.

    Raises:
        FileExistsError: the version exists and `overwrite` is False.
    """
    os.makedirs(model_dir, exist_ok=True)
    if version is None:
        version = next_version(model_dir)
    _check_version(version)
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final) and not overwrite:
        raise FileExistsError(
            f"Version {version} already exists at {final}; pass overwrite=True (keras-ser export "
            "--overwrite) to replace it, or leave the version out to write the next one"
        )
    token = uuid.uuid4().hex[:8]
    tmp = os.path.join(model_dir, f".tmp-{version}-{token}")
    try:
        write(tmp, version)
        if os.path.exists(final):
            if not overwrite:  # appeared while we were writing
                raise FileExistsError(f"Version {version} appeared at {final} while exporting; not replaced")
            old = os.path.join(model_dir, f".old-{version}-{token}")
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(tmp, final)
            except OSError as error:  # another exporter took this version first
                raise FileExistsError(f"Version {version} appeared at {final} while exporting: {error}") from None
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return final


# --------------------------------------------------------------------------
# Serving functions (TensorFlow graph)
# --------------------------------------------------------------------------


def check_model(model):
    """Raises ValueError unless `model` is a keras-ser model (`keras_ser.SERTask`, already loaded)."""
    import keras_ser

    if isinstance(model, (str, os.PathLike)):
        raise TypeError("internal: load the model before building serving functions")
    if not isinstance(model, keras_ser.SERTask):
        raise ValueError(
            "export needs a keras-ser model (keras_ser.SERTask: it carries class_names and "
            f"feature_config). Received: {type(model).__name__}"
        )


def load_model(model):
    """A keras-ser model, loaded when `model` is the path of a `.keras` file (checked by `check_model`)."""
    if isinstance(model, (str, os.PathLike)):
        import keras

        import keras_ser  # noqa: F401  (registers the custom objects)

        path = os.fspath(model)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No model file at {path!r}")
        model = keras.saving.load_model(path, compile=False)
    check_model(model)
    return model


def _first_failing(ok):
    """Index of the first False in a bool vector (its length when all are True)."""
    import tensorflow as tf

    flags = tf.concat([tf.cast(ok, tf.int32), [0]], axis=0)
    return tf.argmin(flags, output_type=tf.int32)


def _at(values, index):
    """values[index], or 0 past the end (for messages of an all-good batch)."""
    import tensorflow as tf

    padded = tf.concat([values, tf.zeros([1], values.dtype)], axis=0)
    return padded[index]


def _assert_rows(ok, template, *values):
    """An Assert on a per-row condition whose message names the first bad row.

    `template` is formatted (`tf.strings.format`, `{}` placeholders) with the
    row index, then each of `values` (vectors) at that row.
    """
    import tensorflow as tf

    row = _first_failing(ok)
    message = tf.strings.format(template, [row] + [_at(v, row) for v in values])
    return tf.debugging.Assert(tf.reduce_all(ok), [message], name="check_input")


def _outputs(probabilities, class_names):
    """The response of every signature: probabilities, class_id, class_name, classes (batch first)."""
    import tensorflow as tf

    class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
    return {
        "probabilities": probabilities,
        "class_id": class_id,
        "class_name": tf.gather(class_names, class_id),
        "classes": tf.tile(class_names[None, :], [tf.shape(probabilities)[0], 1]),
    }


def _decode_checked_wavs(audio_bytes, config, max_seconds, empty_message):
    """WAV bytes `[batch]` -> `(waveforms, num_samples)`, after the batch and every row pass their checks."""
    import tensorflow as tf

    import tf_pipeline
    from tf_pipeline.audio import check_wav_bytes

    not_empty = tf.debugging.Assert(tf.shape(audio_bytes)[0] > 0, [empty_message], name="check_batch_size")
    with tf.control_dependencies([not_empty]):
        audio_bytes = tf.identity(audio_bytes)
    rows = tf.range(tf.shape(audio_bytes)[0])
    checked = tf.map_fn(
        lambda args: check_wav_bytes(args[0], args[1], config, max_seconds),
        (audio_bytes, rows),
        fn_output_signature=tf.int64,
    )
    with tf.control_dependencies([checked]):
        audio_bytes = tf.identity(audio_bytes)
    return tf_pipeline.batch_decode_wav(audio_bytes, config)


def serving_functions(model, max_seconds=DEFAULT_MAX_SECONDS):
    """The two serving functions of a model, as `tf.function`s with input signatures.

    What `export` saves; useful on its own to run the serving graph without
    writing it (tests, notebooks).

    Args:
        model: a keras-ser model (`keras_ser.SERTask`): any zoo entry.
        max_seconds: float or None. Longest accepted audio, in seconds.
            Defaults to `30.0`; None accepts any length.

    Returns:
        dict `{"serving_default": fn(waveform, num_samples), "serve_wav": fn(audio_bytes)}`,
        plus `"serve_speaker": fn(audio_bytes)` for a speaker-normalised
        speech-encoder model (see the module docstring). Each returns the dict of outputs `probabilities`, `class_id`,
        `class_name`, `classes`.

    Example:

    >>> fns = serving_functions(model)                                   # doctest: +SKIP
    >>> fns["serve_wav"](tf.constant([open("03a01Fa.wav", "rb").read()]))["class_name"]  # doctest: +SKIP
    """
    import tensorflow as tf

    check_model(model)
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive or None. Received: max_seconds={max_seconds!r}")
    config = model.feature_config
    # The model's own preprocessor: the features of training, in the graph.
    preprocessor = model.preprocessor
    class_names = tf.constant(model.class_names)
    max_samples = None if max_seconds is None else int(max_seconds * config.sample_rate)

    def predict(waveforms, num_samples):
        probabilities = tf.cast(model(preprocessor.batch(waveforms, num_samples), training=False), tf.float32)
        return _outputs(probabilities, class_names)

    @functools.partial(tf.function, autograph=False, input_signature=[
        tf.TensorSpec([None, None], tf.float32, name="waveform"),
        tf.TensorSpec([None], tf.int32, name="num_samples"),
    ])
    def serving_default(waveform, num_samples):
        rows = tf.shape(waveform)[0]
        width = tf.shape(waveform)[1]
        # First: an empty batch (nothing else can be checked, and the model would fail on it).
        not_empty = tf.debugging.Assert(
            rows > 0, ["waveform has 0 rows; expected a batch of at least one waveform"], name="check_batch_size")
        with tf.control_dependencies([not_empty]):
            waveform = tf.identity(waveform)
            same_batch = tf.debugging.Assert(
                tf.equal(tf.shape(num_samples)[0], rows),
                [tf.strings.format("num_samples must hold one length per row of waveform: waveform has {} rows, "
                                   "num_samples {} entries", [rows, tf.shape(num_samples)[0]])],
                name="check_batch",
            )
        with tf.control_dependencies([same_batch]):
            lengths = tf.identity(num_samples)
        # One check after the other, so the message names the first problem.
        with tf.control_dependencies([_assert_rows(lengths >= 0, "num_samples[{}] = {} is negative", lengths)]):
            lengths = tf.identity(lengths)
        with tf.control_dependencies([_assert_rows(
            lengths <= width,
            "num_samples[{}] = {} exceeds the {} samples of its waveform row",
            lengths, tf.fill(tf.shape(lengths), width),
        )]):
            lengths = tf.identity(lengths)
        if max_samples is not None:
            with tf.control_dependencies([_assert_rows(
                lengths <= max_samples,
                f"waveform[{{}}] is too long: {{}} samples; at most {max_seconds:g} s ({max_samples} samples at "
                f"{config.sample_rate} Hz) are accepted (split longer recordings)",
                lengths,
            )]):
                lengths = tf.identity(lengths)
        return predict(waveform, lengths)

    @functools.partial(tf.function, autograph=False,
                       input_signature=[tf.TensorSpec([None], tf.string, name="audio_bytes")])
    def serve_wav(audio_bytes):
        waveforms, num_samples = _decode_checked_wavs(
            audio_bytes, config, max_seconds, "audio_bytes has 0 rows; expected at least one WAV file")
        return predict(waveforms, num_samples)

    functions = {SERVING_DEFAULT: serving_default, SERVE_WAV: serve_wav}
    if _speaker_normalized(model):
        functions[SERVE_SPEAKER] = _serve_speaker(model, max_seconds)
    return functions


def _speaker_normalized(model):
    from keras_ser.adaptation import is_speaker_normalized
    from keras_ser.models.speech_encoders.encoder_task import EncoderTask

    return isinstance(model, EncoderTask) and is_speaker_normalized(model)


def _serve_speaker(model, max_seconds):
    """The `serve_speaker` function: one speaker's utterances, standardised with their own statistics."""
    import keras
    import tensorflow as tf

    from keras_ser.adaptation import DEFAULT_PRIOR_WEIGHT
    from keras_ser.adaptation import shrunk_variance

    config = model.feature_config
    preprocessor = model.preprocessor
    class_names = tf.constant(model.class_names)
    features_model = model.features_model()
    standardize = model.get_layer("standardize")
    head = [model.get_layer(name) for name in model.HEAD_LAYERS[1:]]
    weight = float(DEFAULT_PRIOR_WEIGHT)

    @functools.partial(tf.function, autograph=False,
                       input_signature=[tf.TensorSpec([None], tf.string, name="audio_bytes")])
    def serve_speaker(audio_bytes):
        waveforms, num_samples = _decode_checked_wavs(
            audio_bytes, config, max_seconds, "audio_bytes has 0 rows; expected at least one WAV file of the speaker")
        pooled = tf.cast(features_model(preprocessor.batch(waveforms, num_samples), training=False), tf.float64)
        axes = list(range(len(pooled.shape) - 1))
        n = tf.cast(tf.reduce_prod(tf.shape(pooled)[:-1]), tf.float64)
        mean = tf.reduce_mean(pooled, axis=axes)
        variance = tf.reduce_mean(tf.square(pooled - mean), axis=axes)
        variance = shrunk_variance(variance, n, tf.cast(standardize.variance, tf.float64), weight)
        # As ChannelStandardization, in float32 with the statistics rounded as adapt stores them.
        mean32, variance32 = tf.cast(mean, tf.float32), tf.cast(variance, tf.float32)
        x = tf.cast(pooled, tf.float32)
        x = (x - mean32) / tf.maximum(tf.sqrt(variance32), standardize.epsilon)
        for layer in head:
            x = layer(x, training=False) if isinstance(layer, keras.layers.Dropout) else layer(x)
        return _outputs(tf.cast(x, tf.float32), class_names)

    return serve_speaker


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------


def saved_model_root(model, functions):
    """The object `tf.saved_model.save` writes: the serving functions and the model's variables, nothing else.

    The attributes of `keras.export.ExportArchive`'s root (`variables`,
    `trainable_variables`, `non_trainable_variables`, one attribute per
    signature), so `tf.saved_model.load(path).serve_wav(...)` works as well
    as `.signatures["serve_wav"]`. Built here rather than with the archive
    because every signature is then traced once, inside the save: the
    archive traces each endpoint once more beforehand to list its variables
    (the save keys its traces apart from those), and tracking the Keras model
    itself traces the model's call a further time for a default signature
    nothing here uses. Saving takes less than half the time (`python
    benchmarks/export.py`).
    """
    import tensorflow as tf

    root = tf.__internal__.tracking.AutoTrackable()
    root.variables = list(model.variables)
    root.trainable_variables = list(model.trainable_variables)
    root.non_trainable_variables = list(model.non_trainable_variables)
    for signature, function in functions.items():
        setattr(root, signature, function)
    return root


def _warmup_audio(warmup_files, config):
    if not warmup_files:
        return warmup.synthetic_audio(config.sample_rate)
    import tf_pipeline

    wavs, waveforms = [], []
    for path in list(warmup_files)[:4]:
        with open(path, "rb") as handle:
            wavs.append(handle.read())
        waveforms.append(tf_pipeline.load_audio(path, config))
    return wavs, waveforms


def _metadata(model, name, version, max_seconds):
    import keras_ser

    return {
        "name": name,
        "version": version,
        "model": model.name,
        "class_names": model.class_names,
        "n_segments": model.n_segments,
        "input_layout": model.preprocessor.layout,
        "image_size": model.preprocessor.get_config()["image_size"],
        "preprocessor": model.preprocessor.get_config(),
        "feature_config": model.feature_config.to_dict(),
        "max_seconds": max_seconds,
        "signatures": {
            SERVING_DEFAULT: {"inputs": {"waveform": "float32 [batch, samples]", "num_samples": "int32 [batch]"}},
            SERVE_WAV: {"inputs": {"audio_bytes": "string [batch] (16-bit PCM WAV)"}},
            **({SERVE_SPEAKER: {"inputs": {"audio_bytes": "string [batch] (16-bit PCM WAV), all of ONE speaker"},
                                "uses_speaker_audio": True}} if _speaker_normalized(model) else {}),
        },
        "speaker_normalized": _speaker_normalized(model),
        "outputs": {"probabilities": "float32 [batch, classes]", "class_id": "int64 [batch]",
                    "class_name": "string [batch]", "classes": "string [batch, classes]"},
        "keras_ser_version": keras_ser.__version__,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def export(model, export_root, name, version=None, overwrite=False, warmup_files=None,
           max_seconds=DEFAULT_MAX_SECONDS, verbose=False):
    """Exports a keras-ser model to `<export_root>/<name>/<version>/` for TF Serving.

    Writes the signatures (`serving_default` and `serve_wav`, see the module
    docstring) and the variables they read with `tf.saved_model.save` into a
    temporary directory,
    adds `assets.extra/` (warmup records, `labels.txt`, `keras_ser.json`),
    audits the graph (core TF ops only) and renames it into place.

    Args:
        model: a keras-ser model (any registered zoo model,
            `keras_ser.list_models()`), or the path of a `.keras` file
            holding one.
        export_root: str. Folder of exported models.
        name: str. Model name: the directory under `export_root` and the
            `model_name` TF Serving serves it as.
        version: int >= 1 or None. None writes 1 + the highest existing
            version (1 for a new model). Defaults to `None`.
        overwrite: bool. Replace an existing version. Defaults to `False`
            (an existing version is a `FileExistsError`).
        warmup_files: list of 16-bit PCM WAV paths (up to 4 are used) for
            the warmup records, or None for short synthetic speech-like
            audio. Defaults to `None`.
        max_seconds: float or None. Longest audio the signatures accept.
            Defaults to `30.0`.
        verbose: bool. Print the written signatures and their inputs. Defaults to `False`.

    Returns:
        str, the path of the written version directory.

    Raises:
        ValueError: not a keras-ser model, bad name or version, or the graph
            holds ops TF Serving cannot run.
        FileExistsError: the version exists and `overwrite` is False.

    Example:

    >>> path = export(model, "exports", "ser")                        # doctest: +SKIP
    >>> sorted(os.listdir(path))                                          # doctest: +SKIP
    ['assets', 'assets.extra', 'fingerprint.pb', 'saved_model.pb', 'variables']
    """
    import tensorflow as tf

    check_name(name)
    if version is not None:
        _check_version(version)
    model = load_model(model)
    functions = serving_functions(model, max_seconds=max_seconds)
    wavs, waveforms = _warmup_audio(warmup_files, model.feature_config)
    model_dir = os.path.join(os.fspath(export_root), name)

    def write(path, written_version):
        tf.saved_model.save(saved_model_root(model, functions), path, signatures=functions)
        if verbose:
            print(f"Saved {path}: signatures " + ", ".join(
                f"{signature}({', '.join(spec.name for spec in functions[signature].input_signature)})"
                for signature in functions))
        audit.check_ops(path)
        extra = os.path.join(path, warmup.ASSETS_EXTRA)
        os.makedirs(extra, exist_ok=True)
        requests = warmup.warmup_requests(name, wavs, waveforms, SERVE_WAV, SERVING_DEFAULT)
        warmup.write_warmup_file(os.path.join(extra, warmup.WARMUP_FILE), requests)
        with open(os.path.join(extra, LABELS_FILE), "w", encoding="utf-8") as handle:
            handle.write("".join(f"{label}\n" for label in model.class_names))
        with open(os.path.join(extra, METADATA_FILE), "w", encoding="utf-8") as handle:
            json.dump(_metadata(model, name, written_version, max_seconds), handle, indent=2)
            handle.write("\n")

    return publish_version(model_dir, version, write, overwrite=overwrite)


def read_metadata(version_dir):
    """What `export` wrote about an exported version (`assets.extra/keras_ser.json`): classes, signatures, config."""
    with open(os.path.join(version_dir, warmup.ASSETS_EXTRA, METADATA_FILE), encoding="utf-8") as handle:
        return json.load(handle)


def read_labels(version_dir):
    """The class names of an exported version (`assets.extra/labels.txt`), in `class_id` order."""
    with open(os.path.join(version_dir, warmup.ASSETS_EXTRA, LABELS_FILE), encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle if line.rstrip("\n")]
