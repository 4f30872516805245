"""Atomic file writes: a temporary file beside the target, then `os.replace`.

A reader (or a resumed run) sees either the old file or the complete new
one, never a half-written file, even if the writer is killed. Every file the
packages write for later reading goes through these functions: run folders
(the LOSO runner's fold and report files, the openSMILE baselines'), feature
caches and stores, the synthetic corpus, TFLite models and serving configs.

Example:

>>> import json, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "scores.json")
>>> write_json_atomic(path, {"ua": 0.8})
>>> json.load(open(path))
{'ua': 0.8}
"""

import json
import os
import tempfile


def _default_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path, write):
    """Calls `write(binary_stream)` on a temporary file beside `path`, then renames it into place."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, _default_mode())  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text_atomic(path, text):
    """Writes `text` (UTF-8) to `path` atomically."""
    write_atomic(path, lambda stream: stream.write(text.encode("utf-8")))


def write_json_atomic(path, value):
    """Writes `value` as indented JSON (keys sorted) to `path` atomically."""
    write_text_atomic(path, json.dumps(value, indent=1, sort_keys=True) + "\n")
