"""TF Serving's REST JSON tensor format (`json_tensor.cc`), both ways.

Requests (`POST /v1/models/<name>:predict`):

- row format: `{"signature_name": "serve_wav", "instances": [...]}`, one
  element per batch row; with several inputs each element is an object
  `{"waveform": [...], "num_samples": 16000}`;
- columnar format: `{"inputs": {"waveform": [[...]], "num_samples": [...]}}`
  (or the bare value when the signature has one input).

Binary strings are objects `{"b64": "<base64>"}` (the `audio_bytes` input).
Responses: `{"predictions": [...]}` for the row format (one object per row
with every output, or the bare values when there is one output) and
`{"outputs": {...}}` for the columnar format; string outputs whose alias
ends in `_bytes` come back as `{"b64": ...}`, other strings as text.
Errors: `{"error": "<message>"}`.
"""

import base64
import binascii
import json
import math

import numpy as np

from serving.errors import invalid


def _np_dtype(tf_dtype):
    import tensorflow as tf

    return object if tf_dtype == tf.string else tf_dtype.as_numpy_dtype


def _scalar(value, tf_dtype, where):
    import tensorflow as tf

    if tf_dtype == tf.string:
        if isinstance(value, dict):
            if set(value) != {"b64"} or not isinstance(value["b64"], str):
                raise invalid(f"{where}: a binary value must be an object with the single key 'b64' "
                              f"holding base64 text. Received keys: {sorted(value)}")
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise invalid(f"{where}: JSON Value not formatted correctly for base64 data: "
                              f"{value['b64'][:40]!r}") from None
        if isinstance(value, str):
            return value.encode("utf-8")
        raise invalid(f"{where}: JSON Value: {json.dumps(value)[:60]} not of expected type: string")
    if tf_dtype == tf.bool:
        if isinstance(value, bool):
            return value
        raise invalid(f"{where}: JSON Value: {json.dumps(value)[:60]} not of expected type: bool")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity") and tf_dtype.is_floating:
            return float(value.replace("Infinity", "inf"))
        raise invalid(f"{where}: JSON Value: {json.dumps(value)[:60]} not of expected type: {tf_dtype.name}")
    if tf_dtype.is_integer:
        if isinstance(value, float) and not value.is_integer():
            raise invalid(f"{where}: JSON Value: {value} not of expected type: {tf_dtype.name}")
        low, high = tf_dtype.min, tf_dtype.max
        if not low <= value <= high:
            raise invalid(f"{where}: JSON Value: {value} out of range for {tf_dtype.name}")
        return int(value)
    return value


def _to_array(value, tf_dtype, where):
    """A nested JSON list -> numpy array of the signature's dtype (rectangular or an error)."""
    import tensorflow as tf

    if tf_dtype != tf.string and tf_dtype != tf.bool:
        # Fast path for plain numbers (a waveform is thousands of them).
        try:
            raw = np.array(value)
        except ValueError:  # ragged rows: the slow path names the problem
            raw = None
        if raw is not None and raw.dtype.kind in "iuf":
            if tf_dtype.is_integer:
                if raw.dtype.kind == "f" and not np.all(np.mod(raw, 1) == 0):
                    raise invalid(f"{where}: JSON Value not of expected type: {tf_dtype.name} (fractional numbers)")
                if raw.size and (raw.min() < tf_dtype.min or raw.max() > tf_dtype.max):
                    raise invalid(f"{where}: JSON Value out of range for {tf_dtype.name}")
            return raw.astype(tf_dtype.as_numpy_dtype), tf_dtype

    def shape_of(v):
        if isinstance(v, list):
            if not v:
                return (0,)
            first = shape_of(v[0])
            for item in v[1:]:
                if shape_of(item) != first:
                    raise invalid(f"{where}: Expecting tensor size: {len(v[0]) if isinstance(v[0], list) else 1} "
                                  f"but got {len(item) if isinstance(item, list) else 1}: every row must have the "
                                  "same shape (pad variable-length inputs)")
            return (len(v),) + first
        return ()

    shape = shape_of(value)
    flat = []

    def walk(v):
        if isinstance(v, list):
            for item in v:
                walk(item)
        else:
            flat.append(_scalar(v, tf_dtype, where))

    walk(value)
    array = np.empty(len(flat), dtype=_np_dtype(tf_dtype))
    array[:] = flat
    return array.reshape(shape), tf_dtype


def parse_request(body, signature_inputs):
    """Parses a :predict body.

    Args:
        body: bytes or str, the request body.
        signature_inputs: callable `(signature_name) -> dict alias -> tf.DType`
            (raises the server's error for an unknown model or signature).

    Returns:
        `(signature_name, inputs, row_format)`: inputs is a dict
        `alias -> (numpy array, tf.DType)`.
    """
    try:
        request = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as error:
        raise invalid(f"JSON Parse error: {error}") from None
    if not isinstance(request, dict):
        raise invalid("JSON Value: the request body must be a JSON object")
    signature_name = request.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise invalid("'signature_name' key must be a string value.")
    if ("instances" in request) == ("inputs" in request):
        raise invalid("Missing 'inputs' or 'instances' key" if "instances" not in request else
                      "Not formatted correctly expecting only one of 'inputs' or 'instances' keys exists")
    dtypes = signature_inputs(signature_name)
    names = sorted(dtypes)
    if "instances" in request:
        instances = request["instances"]
        if not isinstance(instances, list):
            raise invalid("Expecting 'instances' to be a list/array")
        columns = {name: [] for name in names}
        for index, instance in enumerate(instances):
            named = isinstance(instance, dict) and not (set(instance) == {"b64"})
            if len(names) > 1 and not named:
                raise invalid(f"Expecting object with keys {names} at 'instances'[{index}]: the signature has "
                              f"{len(names)} inputs")
            if named:
                if sorted(instance) != names:
                    raise invalid(f"Failed to process element: {index} of 'instances' list. JSON object: keys "
                                  f"{sorted(instance)} do not match the signature inputs {names}")
                for name in names:
                    columns[name].append(instance[name])
            else:
                columns[names[0]].append(instance)
        inputs = {name: _to_array(column, dtypes[name], f"'instances' input '{name}'")
                  for name, column in columns.items()}
        return signature_name, inputs, True
    given = request["inputs"]
    if isinstance(given, dict) and not set(given) == {"b64"}:
        if sorted(given) != names:
            missing, extra = sorted(set(names) - set(given)), sorted(set(given) - set(names))
            raise invalid(f"input size does not match signature: {len(given)}!={len(names)} len({{{','.join(sorted(given))}}}) "
                          f"!= len({{{','.join(names)}}}). Sent extra: {{{','.join(extra)}}}. Missing but required: "
                          f"{{{','.join(missing)}}}.")
        inputs = {name: _to_array(given[name], dtypes[name], f"'inputs' input '{name}'") for name in names}
    else:
        if len(names) != 1:
            raise invalid(f"Expecting an object with keys {names} at 'inputs': the signature has {len(names)} inputs")
        inputs = {names[0]: _to_array(given, dtypes[names[0]], f"'inputs' input '{names[0]}'")}
    return signature_name, inputs, False


def _json_value(array, alias):
    array = np.asarray(array)
    if array.dtype.kind in "OSU":
        def convert(v):
            v = v if isinstance(v, bytes) else str(v).encode("utf-8")
            if alias.endswith("_bytes"):
                return {"b64": base64.b64encode(v).decode("ascii")}
            return v.decode("utf-8", errors="replace")
        return np.vectorize(convert, otypes=[object])(array).tolist() if array.size else array.tolist()
    if array.dtype.kind == "f":
        values = array.astype(np.float64).tolist()
        return _replace_nonfinite(values)
    return array.tolist()


def _replace_nonfinite(values):
    if isinstance(values, list):
        return [_replace_nonfinite(v) for v in values]
    if isinstance(values, float) and not math.isfinite(values):
        return "NaN" if math.isnan(values) else ("Infinity" if values > 0 else "-Infinity")
    return values


def format_response(outputs, row_format):
    """The JSON object of a :predict response for `outputs` (alias -> numpy array)."""
    if row_format:
        sizes = {alias: np.asarray(v).shape[0] if np.asarray(v).ndim else None for alias, v in outputs.items()}
        if len(set(sizes.values())) != 1 or None in sizes.values():
            raise invalid(f"Tensors of the output have inconsistent batch sizes {sizes}; use the columnar "
                          "'inputs' format")
        columns = {alias: _json_value(value, alias) for alias, value in outputs.items()}
        if len(columns) == 1:
            return {"predictions": next(iter(columns.values()))}
        rows = next(iter(sizes.values()))
        return {"predictions": [{alias: columns[alias][i] for alias in sorted(columns)} for i in range(rows)]}
    columns = {alias: _json_value(value, alias) for alias, value in outputs.items()}
    if len(columns) == 1:
        return {"outputs": next(iter(columns.values()))}
    return {"outputs": columns}
