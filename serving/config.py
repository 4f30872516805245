"""TF Serving configuration files: `models.config` and `batching.config`.

Both are text protos in the formats `tensorflow_model_server` reads:

- `--model_config_file=models.config`: a `tensorflow.serving.ModelServerConfig`
  (`model_config_list { config { name base_path model_platform
  model_version_policy version_labels } }`), built here with the official
  `tensorflow_serving.config.model_server_config_pb2` message, so a typo
  cannot produce a file the server rejects.
- `--batching_parameters_file=batching.config` (with `--enable_batching`): a
  `tensorflow.serving.BatchingParameters` (`max_batch_size { value: 32 }`,
  ...). That message is not in the tensorflow-serving-api wheel, so it is
  written and read as text here.

Version labels: `stable` is the version clients get by default, `canary` the
new one under trial (`/v1/models/<name>/labels/canary:predict`, or
`model_spec.version_label = "canary"`). TF Serving only accepts a label that
points at a version it serves, so the policy serves exactly the labelled
versions.

Example:

>>> text = models_config_text([ModelEntry("ser", "/models/ser", stable=1, canary=2)])
>>> print(text)                                                    # doctest: +ELLIPSIS
model_config_list {
  config {
    name: "ser"
    base_path: "/models/ser"
    model_platform: "tensorflow"
    model_version_policy {
      specific {
        versions: 1
        versions: 2
      }
    }
    version_labels {
      key: "canary"
      value: 2
    }
    version_labels {
      key: "stable"
      value: 1
    }
  }
}
<BLANKLINE>
"""

import dataclasses
import os
import re

from tf_pipeline.atomic import write_text_atomic

DEFAULT_BATCHING = {
    # Upper bound of a merged batch, and of one request's batch.
    "max_batch_size": 32,
    # How long the batcher waits to fill a batch (microseconds): 2 ms.
    "batch_timeout_micros": 2000,
    # Queue depth in batches before new requests get UNAVAILABLE.
    "max_enqueued_batches": 100,
    # Threads running batches; one GPU is kept busy by a few.
    "num_batch_threads": 4,
}
DEFAULT_ALLOWED_BATCH_SIZES = (1, 2, 4, 8, 16, 32)


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One served model: its name, base path and versions.

    Args:
        name: str. The model name clients use.
        base_path: str. Folder of numeric version directories, as the
            server sees it (inside a container: the mounted path).
        stable: int or None. Version labelled `stable`.
        canary: int or None. Version labelled `canary`.
        latest: int. With no label, serve the `latest` highest versions.
            Defaults to `1`.
    """

    name: str
    base_path: str
    stable: int = None
    canary: int = None
    latest: int = 1

    def __post_init__(self):
        if not self.name or not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.name):
            raise ValueError(f"name must be letters, digits, '_', '-' or '.'. Received: name={self.name!r}")
        for label in ("stable", "canary"):
            value = getattr(self, label)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{label} must be a version number or None. Received: {label}={value!r}")
        if self.canary is not None and self.stable is None:
            raise ValueError(f"A canary needs a stable version beside it. Received: canary={self.canary}, stable=None")
        if isinstance(self.latest, bool) or not isinstance(self.latest, int) or self.latest < 1:
            raise ValueError(f"latest must be a positive integer. Received: latest={self.latest!r}")

    @property
    def labels(self):
        """dict label -> version."""
        return {label: v for label, v in (("stable", self.stable), ("canary", self.canary)) if v is not None}


def model_server_config(entries):
    """A `ModelServerConfig` proto for `entries` (list of `ModelEntry`)."""
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    names = set()
    for entry in entries:
        if entry.name in names:
            raise ValueError(f"Model names must be unique. Received {entry.name!r} twice")
        names.add(entry.name)
        model = config.model_config_list.config.add()
        model.name = entry.name
        model.base_path = entry.base_path
        model.model_platform = "tensorflow"
        labels = entry.labels
        if labels:
            model.model_version_policy.specific.versions.extend(sorted(set(labels.values())))
            for label, version in sorted(labels.items()):
                model.version_labels[label] = version
        else:
            model.model_version_policy.latest.num_versions = entry.latest
    return config


def models_config_text(entries):
    """The text of a `models.config` for `entries`."""
    from google.protobuf import text_format

    return text_format.MessageToString(model_server_config(entries))


def write_models_config(path, entries, header=None):
    """Writes a `models.config` (to a temporary file renamed into place: the
    server may poll it with `--model_config_file_poll_wait_seconds`).
    `header`: text written first as `#` comment lines."""
    write_text_atomic(path, _comment(header) + models_config_text(entries))
    return path


def read_models_config(path):
    """Parses a `models.config` into a `ModelServerConfig` (ValueError with the parser's message if bad)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ValueError(f"Error parsing text-format tensorflow.serving.ModelServerConfig in {path}: {error}") from None
    return config


def batching_config_text(max_batch_size=None, batch_timeout_micros=None, max_enqueued_batches=None,
                         num_batch_threads=None, allowed_batch_sizes=None, pad_variable_length_inputs=True):
    """The text of a `batching.config` (`BatchingParameters`).

    `pad_variable_length_inputs: true` lets the batcher merge `waveform`
    rows of different lengths (it pads them; the signature ignores samples
    past `num_samples`). `allowed_batch_sizes` must end at `max_batch_size`.
    Defaults: `DEFAULT_BATCHING` and `DEFAULT_ALLOWED_BATCH_SIZES` (a batch
    of up to 32 utterances, 2 ms to fill it).
    """
    values = dict(DEFAULT_BATCHING)
    for key, value in (("max_batch_size", max_batch_size), ("batch_timeout_micros", batch_timeout_micros),
                       ("max_enqueued_batches", max_enqueued_batches), ("num_batch_threads", num_batch_threads)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "batch_timeout_micros" else 1):
                raise ValueError(f"{key} must be a positive integer. Received: {key}={value!r}")
            values[key] = value
    if allowed_batch_sizes is None:
        allowed_batch_sizes = [s for s in DEFAULT_ALLOWED_BATCH_SIZES if s < values["max_batch_size"]]
        allowed_batch_sizes.append(values["max_batch_size"])
    allowed_batch_sizes = list(allowed_batch_sizes)
    if allowed_batch_sizes:
        if sorted(set(allowed_batch_sizes)) != allowed_batch_sizes or allowed_batch_sizes[-1] != values["max_batch_size"]:
            raise ValueError(
                "allowed_batch_sizes must increase and end at max_batch_size="
                f"{values['max_batch_size']}. Received: {allowed_batch_sizes}"
            )
    lines = [f"{key} {{ value: {value} }}" for key, value in values.items()]
    lines += [f"allowed_batch_sizes: {size}" for size in allowed_batch_sizes]
    lines.append(f"pad_variable_length_inputs: {'true' if pad_variable_length_inputs else 'false'}")
    return "\n".join(lines) + "\n"


def write_batching_config(path, header=None, **kwargs):
    """Writes a `batching.config` (see `batching_config_text`); `header` as `#` comments."""
    write_text_atomic(path, _comment(header) + batching_config_text(**kwargs))
    return path


def _comment(header):
    if not header:
        return ""
    return "".join(f"# {line}".rstrip() + "\n" for line in header.strip().splitlines())


_WRAPPED = re.compile(r"^\s*(\w+)\s*\{\s*value\s*:\s*(\d+)\s*\}\s*$")
_SCALAR = re.compile(r"^\s*(\w+)\s*:\s*(\w+)\s*$")


def read_batching_config(path):
    """Parses a `batching.config` into a dict (`max_batch_size` -> int, ...)."""
    result = {"allowed_batch_sizes": []}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.split("#", 1)[0]
            if not line.strip():
                continue
            wrapped = _WRAPPED.match(line)
            scalar = _SCALAR.match(line)
            if wrapped:
                result[wrapped.group(1)] = int(wrapped.group(2))
            elif scalar and scalar.group(1) == "allowed_batch_sizes":
                result["allowed_batch_sizes"].append(int(scalar.group(2)))
            elif scalar:
                value = scalar.group(2)
                result[scalar.group(1)] = value == "true" if value in ("true", "false") else value
            else:
                raise ValueError(f"Error parsing text-format tensorflow.serving.BatchingParameters in {path}, "
                                 f"line {number}: {line.strip()!r}")
    return result


def main(argv=None):
    """`python -m serving.config`: writes models.config and batching.config."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m serving.config",
        description="Write TF Serving's models.config (model, base path, stable/canary labels) and "
                    "batching.config for keras-ser exports.")
    parser.add_argument("--name", default="ser", help="model name (default: ser)")
    parser.add_argument("--base_path", default="/models/ser",
                        help="base path as the server sees it (default: /models/ser, the compose mount)")
    parser.add_argument("--stable", type=int, help="version labelled stable")
    parser.add_argument("--canary", type=int, help="version labelled canary (needs --stable)")
    parser.add_argument("--max_batch_size", type=int, default=DEFAULT_BATCHING["max_batch_size"])
    parser.add_argument("--batch_timeout_micros", type=int, default=DEFAULT_BATCHING["batch_timeout_micros"])
    parser.add_argument("--num_batch_threads", type=int, default=DEFAULT_BATCHING["num_batch_threads"])
    parser.add_argument("--out_dir", default=".", help="where to write the two files (default: .)")
    args = parser.parse_args(argv)
    try:
        entry = ModelEntry(args.name, args.base_path, stable=args.stable, canary=args.canary)
        command = " ".join(["python -m serving.config"] + list(argv if argv is not None else __import__("sys").argv[1:]))
        models = write_models_config(os.path.join(args.out_dir, "models.config"), [entry],
                                     header=f"Generated by: {command}\nTF Serving --model_config_file "
                                            "(tensorflow.serving.ModelServerConfig, text format).")
        batching = write_batching_config(
            os.path.join(args.out_dir, "batching.config"),
            header=f"Generated by: {command}\nTF Serving --batching_parameters_file (with --enable_batching).",
            max_batch_size=args.max_batch_size, batch_timeout_micros=args.batch_timeout_micros,
            num_batch_threads=args.num_batch_threads)
    except ValueError as error:
        parser.error(str(error))
    print(f"wrote {models} and {batching}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
