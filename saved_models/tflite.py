"""Export a keras-ser model as one TensorFlow Lite file: waveform in, probabilities out.

`export_tflite(model, export_root, name)` writes `<export_root>/<name>.tflite`
(beside the SavedModel folder `<export_root>/<name>/` of `saved_models.export`,
which it does not touch) and `<export_root>/<name>.tflite.json` (class names
in output order, sample rate, accepted lengths, the op list). Each is written
to a hidden temporary file and renamed into place.

The model has one signature, `serving_default`:

- input `waveform`: float32 `[1, samples]`, one utterance, mono, at the
  model's `feature_config.sample_rate` (16 kHz), samples in [-1, 1]. No WAV
  decoding and no resampling happen inside (that is `serve_wav` of the
  SavedModel); resize the input to each utterance's length
  (`Interpreter.resize_tensor_input(index, [1, samples])`, then
  `allocate_tensors()`).
- output `probabilities`: float32 `[1, classes]`, in the order of
  `class_names` in the JSON file (`labels` of the SavedModel).

The models that convert are those whose class says so
(`TFLITE_SUPPORTED`: `cnn_sru`, `cnn`, `sru`, `encoder_stats`,
`encoder_sru`). The features are in the graph: the model's own
preprocessor in TFLite built-in ops (`Preprocessor.tflite_batch_function`):
for the log-Mel layouts `batch` itself (their 512-point FFT is TFLite's
built-in `RFFT2D`), for the Mel power frames of the speech encoders the same
frames with the power spectrum as a matrix product with a precomputed
windowed DFT basis instead of `tf.signal.rfft`
(`keras_ser.models.speech_encoders.mel_power.tflite_mel_frames`), because
`RFFT2D` takes power-of-two lengths only and the encoder's window is 400
samples. A model's Keras LSTMs are computed by `_chunked_lstm` (the same
LSTM, 32 steps per loop iteration: the plain Keras loop converts to a TFLite
loop whose time grows with the square of the length). The weights are
constants in the file; the model holds no TFLite variables, so every
`invoke()` is independent of the ones before.
On real EMO-DB files the probabilities match the SavedModel's
`serving_default` within 1e-4 (measured: 1e-7; tests/test_tflite.py).

Every op is a TFLite built-in (`TFLITE_BUILTINS` only; no Flex / select TF
ops, so the plain TFLite runtime runs it): `tflite_ops(path)` lists them and
`export_tflite` refuses to write a file holding any other op or any TFLite
variable (state that would carry over from one `invoke()` to the next).

Bad input. TFLite has no assertion op (the converter drops `tf.debugging`
asserts), so the checks of the SavedModel are made of shape math here: a
bad waveform makes `interpreter.invoke()` raise `RuntimeError` (TFLite's
message names a `GATHER` node that "failed to invoke"; the kernel logs
"gather index out of bounds"). That happens for a batch other than one row;
fewer than `min_samples` samples (one 400-sample window for the encoder
entries, `n_fft + (n_segments - 1) * hop` for the log-Mel ones: 512 for `sru`
and `cnn`); more than `max_seconds` (30 s by default); NaN or Inf samples;
and, for the encoder entries, digital silence (every sample 0), the same
conditions the SavedModel rejects. `run_tflite` checks them in Python first
and raises `ValueError` with a readable message. Samples outside [-1, 1] are
not checked (as in the SavedModel).

Example:

>>> import keras_ser, saved_models
>>> model = keras_ser.from_preset("encoder_stats_emodb")                  # doctest: +SKIP
>>> path = saved_models.export_tflite(model, "exports", "ser")             # doctest: +SKIP
>>> path                                                                       # doctest: +SKIP
'exports/ser.tflite'
>>> interpreter = tf.lite.Interpreter(model_path=path)                        # doctest: +SKIP
>>> saved_models.run_tflite(interpreter, waveform)    # float32 [samples] at 16 kHz  # doctest: +SKIP
array([0.02, 0.01, ...], dtype=float32)
"""

import datetime
import json
import os

import numpy as np

from saved_models.signatures import SERVING_DEFAULT
from tf_pipeline.atomic import write_atomic
from tf_pipeline.atomic import write_text_atomic

SUFFIX = ".tflite"
METADATA_SUFFIX = ".tflite.json"
INPUT = "waveform"
OUTPUT = "probabilities"
# Ops outside TFLITE_BUILTINS the exported graph may hold. None: the whole
# graph (features, network, input checks) converts to built-ins.
SELECT_OPS = ()
# Unrolled LSTM steps per loop iteration (`_chunked_lstm`).
LSTM_CHUNK = 32
_FLOAT32_MAX = float(np.finfo(np.float32).max)


# --------------------------------------------------------------------------
# The graph
# --------------------------------------------------------------------------


def _require(ok, lengths):
    """`lengths` (int32 `[1]`) unchanged, read through a GATHER that is out of bounds unless `ok`.

    TFLite drops assertion ops; an out-of-bounds GATHER index fails
    `invoke()` instead, and its result feeds the features, so the converter
    cannot remove it.
    """
    import tensorflow as tf

    index = tf.reshape(tf.cast(tf.logical_not(ok), tf.int32), [1])
    return lengths + tf.gather(tf.zeros([1], tf.int32), index)


def _has_lstm(model):
    """Whether `model` holds a Keras LSTM layer, in nested models too (the graph `_chunked_lstm` replaces)."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.LSTM):
            return True
        if isinstance(layer, keras.Model) and _has_lstm(layer):
            return True
    return False


def _replaceable_lstm(layer):
    """A Keras LSTM that `_chunked_lstm` computes exactly (standard gates, forward, stateless, float32)."""
    import keras

    cell = getattr(layer, "cell", None)
    return (
        isinstance(layer, keras.layers.LSTM)
        and cell.activation is keras.activations.tanh
        and cell.recurrent_activation is keras.activations.sigmoid
        and cell.use_bias
        and not layer.go_backwards
        and not layer.stateful
        and layer.compute_dtype == "float32"
    )


def _chunked_lstm(layer):
    """`layer` (a Keras LSTM) over one utterance, as a loop over chunks of `LSTM_CHUNK` unrolled steps.

    Keras' LSTM is a while loop of one step per frame that appends each
    output to a TensorArray; TFLite lowers that array to a tensor the loop
    copies whole at every step, so the time grows with the square of the
    length (30 s of audio, `encoder_stats`: 2.4 s on 2 CPU cores; chunked,
    0.6 s, as long as the SavedModel takes). This computes the same LSTM (Keras'
    gate order i, f, c, o; sigmoid gates, tanh cell; the same sums in the same
    order) with the input projection of every frame in one matrix product and
    `LSTM_CHUNK` steps per loop iteration, which divides those copies by
    `LSTM_CHUNK`. The sequence is zero-padded to whole chunks; the padded
    steps come after the real ones and are cut off (an LSTM is causal).

    TFLite's fused UNIDIRECTIONAL_SEQUENCE_LSTM op would be linear in time,
    but it keeps its state in TFLite variable tensors: a second `invoke()`
    without `reset_all_variables()` starts from the previous utterance's
    state (wrong probabilities, silently), so it is not used.
    """
    import tensorflow as tf

    cell = layer.cell
    units = cell.units

    def step(z_input, h, c, recurrent_kernel, bias):
        z = z_input + tf.matmul(h, recurrent_kernel) + bias
        i, f, g, o = tf.split(z, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(c), c

    def call(inputs, **kwargs):
        # A Keras mask (`kwargs` or the tensor's) is left out: a one-utterance batch has no padded frames.
        kernel, recurrent_kernel, bias = (tf.convert_to_tensor(w) for w in
                                          (cell.kernel, cell.recurrent_kernel, cell.bias))
        steps = tf.shape(inputs)[1]
        chunks = (steps + LSTM_CHUNK - 1) // LSTM_CHUNK
        padded = tf.pad(inputs[0], [[0, chunks * LSTM_CHUNK - steps], [0, 0]])
        projected = tf.reshape(tf.matmul(padded, kernel), [chunks, LSTM_CHUNK, 4 * units])
        zeros = tf.zeros([1, units], tf.float32)

        def body(index, h, c, outputs):
            z_inputs = projected[index]
            hs = []
            for k in range(LSTM_CHUNK):
                h, c = step(z_inputs[k:k + 1], h, c, recurrent_kernel, bias)
                hs.append(h)
            return index + 1, h, c, outputs.write(index, tf.concat(hs, 0))

        outputs = tf.TensorArray(tf.float32, size=chunks, element_shape=[LSTM_CHUNK, units])
        _, _, _, outputs = tf.while_loop(lambda index, *_: index < chunks, body, (0, zeros, zeros, outputs))
        sequence = tf.reshape(outputs.stack(), [-1, units])[:steps][None]
        last = sequence[:, -1]
        output = sequence if layer.return_sequences else last
        if not layer.return_state:
            return output
        # The final c, by a plain loop over the real steps: the converter drops it when nothing
        # reads it (the zoo models read the sequences only).
        _, _, c = tf.while_loop(
            lambda index, *_: index < steps,
            lambda index, h, c: (index + 1, *step(tf.matmul(tf.gather(inputs[0], [index]), kernel), h, c,
                                                  recurrent_kernel, bias)),
            (0, zeros, zeros))
        return output, last, c

    return call


def _call_with_chunked_lstms(model, inputs):
    """`model(inputs)` (inference) with its Keras LSTM layers, nested models included, as `_chunked_lstm`.

    Walks the functional graph as `keras.Model.call` does (Keras 3's private
    `Functional._run_through_graph`; tests/test_tflite.py notices if a Keras
    release changes it). For one-utterance batches only (the replacements
    ignore Keras masks).
    """
    from keras.src.models.functional import Functional

    def operation_fn(operation):
        if _replaceable_lstm(operation):
            return _chunked_lstm(operation)
        if isinstance(operation, Functional):
            return lambda x, **kwargs: run(operation, x)
        return operation

    def run(functional, x):
        outputs = functional._run_through_graph(functional._standardize_inputs(x), operation_fn=operation_fn)
        return outputs[0] if isinstance(outputs, (list, tuple)) and len(outputs) == 1 else outputs

    return run(model, inputs)


def tflite_function(model, max_seconds=30.0):
    """The function `export_tflite` converts, a `tf.function` of `waveform` float32 `[1, samples]`.

    Returns `{"probabilities": float32 [1, classes]}`. Useful to compare the
    TensorFlow graph with the converted one.

    Args:
        model: a keras-ser model (`keras_ser.SERTask`).
        max_seconds: float or None. Longest accepted audio. Defaults to `30.0`.

    Example:

    >>> fn = tflite_function(model)                                           # doctest: +SKIP
    >>> fn(tf.random.uniform([1, 16000], -0.1, 0.1))["probabilities"].shape   # doctest: +SKIP
    TensorShape([1, 7])
    """
    import keras
    import tensorflow as tf

    from keras_ser.models import registry
    from saved_models.export import check_model

    check_model(model)
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive or None. Received: max_seconds={max_seconds!r}")
    preprocessor = model.preprocessor
    config = model.feature_config
    if not type(model).TFLITE_SUPPORTED:
        raise ValueError(
            f"TFLite export covers {', '.join(registry.names(lambda task: task.TFLITE_SUPPORTED))}. Received: a "
            f"{model.name!r} model, input layout {preprocessor.layout!r}; export it as a SavedModel "
            "(saved_models.export)"
        )
    to_inputs = preprocessor.tflite_batch_function()  # a ValueError for settings that cannot convert
    # A one-utterance batch has no padded frames: the LSTMs can ignore masks (`_chunked_lstm`).
    chunked_lstms = _has_lstm(model)
    min_samples = preprocessor.min_samples
    max_samples = None if max_seconds is None else int(max_seconds * config.sample_rate)
    # The weights, read now. The graph reads them as constants (a Keras
    # StatelessScope): no variables reach the converter, which would keep
    # those read inside while loops as uninitialised TFLite variables.
    weights = [(variable, keras.ops.convert_to_numpy(variable)) for variable in model.variables]

    def call_model(inputs, chunked_lstms):
        mapping = [(variable, tf.constant(value)) for variable, value in weights]
        with keras.StatelessScope(state_mapping=mapping):
            if chunked_lstms:
                outputs = _call_with_chunked_lstms(model, inputs)
            else:
                outputs = model(inputs, training=False)
        return {OUTPUT: tf.cast(outputs, tf.float32)}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([1, None], tf.float32, name=INPUT)])
    def predict(waveform):
        lengths = tf.shape(waveform)[1:2]
        # One row: the converter takes the batch dimension as 1 (the signature's),
        # but the element count is computed when the model runs.
        ok = tf.logical_and(tf.equal(tf.size(waveform, out_type=tf.int32), lengths[0]), lengths[0] >= min_samples)
        if max_samples is not None:
            ok = tf.logical_and(ok, lengths[0] <= max_samples)
        # NaN and Inf fail `<=` against the largest float.
        ok = tf.logical_and(ok, tf.reduce_all(tf.abs(waveform) <= _FLOAT32_MAX))
        if preprocessor.REJECTS_SILENCE:
            ok = tf.logical_and(ok, tf.reduce_max(tf.abs(waveform)) > 0.0)  # digital silence
        lengths = _require(ok, lengths)
        return call_model(to_inputs(waveform, lengths), chunked_lstms=chunked_lstms)

    return predict


# --------------------------------------------------------------------------
# Conversion and ops
# --------------------------------------------------------------------------


def convert(model, max_seconds=30.0):
    """The `.tflite` bytes of a keras-ser model (`tflite_function`, built-in ops only)."""
    import tensorflow as tf

    function = tflite_function(model, max_seconds=max_seconds)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def tflite_ops(model):
    """The ops of a `.tflite` model, every subgraph (while-loop bodies included).

    Args:
        model: the path of a `.tflite` file, or its bytes.

    Returns:
        dict `{"builtin": sorted names, "select": sorted Flex op names,
        "custom": sorted other custom op names}`.

    Example:

    >>> tflite_ops("exports/ser.tflite")["select"]                           # doctest: +SKIP
    []
    """
    from tensorflow.lite.python import schema_py_generated as schema

    if isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as handle:
            model = handle.read()
    flatbuffer = schema.Model.GetRootAsModel(bytearray(model), 0)
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    used = set()
    for s in range(flatbuffer.SubgraphsLength()):
        subgraph = flatbuffer.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            used.add(subgraph.Operators(o).OpcodeIndex())
    ops = {"builtin": set(), "select": set(), "custom": set()}
    for index in used:
        code = flatbuffer.OperatorCodes(index)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if names.get(builtin) == "CUSTOM":
            custom = code.CustomCode().decode()
            if custom.startswith("Flex"):
                ops["select"].add(custom[len("Flex"):])
            else:
                ops["custom"].add(custom)
        else:
            ops["builtin"].add(names.get(builtin, str(builtin)))
    return {kind: sorted(values) for kind, values in ops.items()}


def _variable_tensors(content):
    """Names of the variable tensors of a `.tflite` model (TFLite state kept between invocations)."""
    from tensorflow.lite.python import schema_py_generated as schema

    flatbuffer = schema.Model.GetRootAsModel(bytearray(content), 0)
    names = []
    for s in range(flatbuffer.SubgraphsLength()):
        subgraph = flatbuffer.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            if tensor.IsVariable() or tensor.Type() == schema.TensorType.RESOURCE:
                names.append(tensor.Name().decode())
    return names


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------


def _metadata(model, name, max_seconds, ops, size):
    import keras_ser

    config = model.feature_config
    return {
        "name": name,
        "model": model.name,
        "class_names": model.class_names,
        "signature": SERVING_DEFAULT,
        "inputs": {INPUT: "float32 [1, samples], mono, at sample_rate, samples in [-1, 1]"},
        "outputs": {OUTPUT: "float32 [1, classes], in class_names order"},
        "sample_rate": config.sample_rate,
        "min_samples": model.preprocessor.min_samples,
        "max_samples": None if max_seconds is None else int(max_seconds * config.sample_rate),
        "rejects_silence": model.preprocessor.REJECTS_SILENCE,
        "preprocessor": model.preprocessor.get_config(),
        "ops": ops,
        "size_bytes": size,
        "keras_ser_version": keras_ser.__version__,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def export_tflite(model, export_root, name, max_seconds=30.0, overwrite=False):
    """Exports a keras-ser model to `<export_root>/<name>.tflite` (and `<name>.tflite.json`).

    Converts `tflite_function(model)` (see the module docstring) with
    built-in TFLite ops only, checks the op list, and writes both files
    through temporary files renamed into place.

    Args:
        model: a keras-ser model (any zoo entry; the log-Mel ones need a
            power-of-two `n_fft`, which the paper's 512 is), or the path
            of a `.keras` file holding one.
        export_root: str. Folder of exported models (created if missing).
        name: str. File name without the suffix (the SavedModel's model name).
        max_seconds: float or None. Longest audio accepted. Defaults to `30.0`.
        overwrite: bool. Replace an existing `<name>.tflite`. Defaults to
            `False` (an existing file is a `FileExistsError`).

    Returns:
        str, the path of the `.tflite` file.

    Raises:
        ValueError: not a keras-ser model, bad name, or the converted graph
            holds ops other than TFLite built-ins.
        FileExistsError: the file exists and `overwrite` is False.

    Example:

    >>> export_tflite(model, "exports", "ser")                               # doctest: +SKIP
    'exports/ser.tflite'
    """
    from saved_models.export import check_name
    from saved_models.export import load_model

    check_name(name)
    export_root = os.fspath(export_root)
    path = os.path.join(export_root, name + SUFFIX)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (keras-ser export --overwrite) to "
                              "replace it")
    model = load_model(model)
    content = convert(model, max_seconds=max_seconds)
    ops = tflite_ops(content)
    extra = [f"Flex{op}" for op in ops["select"] if op not in SELECT_OPS] + ops["custom"]
    if extra:
        raise ValueError(f"The TFLite graph holds ops outside TFLITE_BUILTINS: {', '.join(extra)}")
    variables = _variable_tensors(content)
    if variables:
        raise ValueError(f"The TFLite graph holds {len(variables)} variable tensor(s) ({', '.join(variables[:3])}): "
                         "state that would carry over from one invoke() to the next")
    os.makedirs(export_root, exist_ok=True)
    metadata = _metadata(model, name, max_seconds, ops, len(content))
    write_text_atomic(os.path.join(export_root, name + METADATA_SUFFIX), json.dumps(metadata, indent=2) + "\n")
    write_atomic(path, lambda stream: stream.write(content))
    return path


def read_tflite_metadata(path):
    """The JSON written beside a `.tflite` export (class names, sample rate, lengths, ops)."""
    base = path[:-len(SUFFIX)] if path.endswith(SUFFIX) else path
    with open(base + METADATA_SUFFIX, encoding="utf-8") as handle:
        return json.load(handle)


# --------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------


def check_waveform(waveform, metadata):
    """Raises ValueError (with the reason) for a waveform the TFLite model would refuse at `invoke()`."""
    waveform = np.asarray(waveform)
    if waveform.ndim != 1:
        raise ValueError(f"waveform must be mono, shape [samples]. Received shape: {waveform.shape}")
    samples = waveform.shape[0]
    rate = metadata["sample_rate"]
    if samples < metadata["min_samples"]:
        raise ValueError(f"waveform is too short: {samples} samples; at least {metadata['min_samples']} "
                         f"({metadata['min_samples'] / rate * 1000:.1f} ms at {rate} Hz) are needed")
    if metadata["max_samples"] is not None and samples > metadata["max_samples"]:
        raise ValueError(f"waveform is too long: {samples} samples; at most {metadata['max_samples']} "
                         f"({metadata['max_samples'] / rate:g} s at {rate} Hz) are accepted (split longer recordings)")
    if not np.all(np.isfinite(waveform)):
        raise ValueError("waveform contains NaN or Inf samples; expected finite samples in [-1, 1]")
    if metadata["rejects_silence"] and not np.any(waveform):
        raise ValueError("waveform is silent (every sample is 0); expected speech")


def run_tflite(interpreter, waveform, metadata=None):
    """Class probabilities of one waveform from a loaded TFLite model.

    Args:
        interpreter: a `tf.lite.Interpreter` on an `export_tflite` file.
        waveform: float `[samples]`, mono, at the model's sample rate.
        metadata: dict from `read_tflite_metadata`, or None. With it the
            waveform is checked first (`check_waveform`: ValueError with
            the reason, instead of TFLite's RuntimeError).

    Returns:
        float32 numpy `[classes]`.
    """
    waveform = np.asarray(waveform, np.float32)
    if metadata is not None:
        check_waveform(waveform, metadata)
    elif waveform.ndim != 1:
        raise ValueError(f"waveform must be mono, shape [samples]. Received shape: {waveform.shape}")
    runner = interpreter.get_signature_runner(SERVING_DEFAULT)
    return runner(**{INPUT: waveform[None]})[OUTPUT][0]
