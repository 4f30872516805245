"""openSMILE utterance-level functionals (IS09, IS10, ComParE 2016, eGeMAPS v02), cached on disk.

The paper's Table V baselines (Jiang, Fu & Tao 2019) classify the
INTERSPEECH challenge feature sets with an SVM:

- `"IS09"`: the INTERSPEECH 2009 Emotion Challenge set (Schuller et al.
  2009), 384 functionals: 16 low-level descriptors (zero-crossing rate, RMS
  energy, F0, harmonics-to-noise ratio, MFCC 1-12) and their deltas, times 12
  functionals. openSMILE configuration `is09-13/IS09_emotion.conf`.
- `"IS10"`: the INTERSPEECH 2010 Paralinguistic Challenge set (Schuller et
  al. 2010), 1582 functionals: 34 energy/spectral low-level descriptors and
  their deltas times 21 functionals, 4 pitch-based descriptors and their
  deltas times 19 functionals, plus the number of F0 onsets and the duration.
  openSMILE configuration `is09-13/IS10_paraling_compat.conf`, the one the
  `opensmile` package enumerates as `FeatureSet.IS10`: numerically
  compatible with the original IS10 set except jitter/shimmer (bugs fixed
  in openSMILE 2.1, as the configuration's header says).
- `"ComParE_2016"`: the INTERSPEECH 2013-2016 ComParE set (Schuller et al.
  2013; Eyben's thesis, 2016), 6373 functionals of 65 energy, spectral and
  voicing low-level descriptors and their deltas. openSMILE configuration
  `compare/ComParE_2016.conf`, `opensmile.FeatureSet.ComParE_2016`. Not in
  the paper's Table V.
- `"eGeMAPSv02"`: the extended Geneva Minimalistic Acoustic Parameter Set
  (Eyben et al. 2016), 88 functionals (frequency, energy/amplitude and
  spectral parameters and their statistics over voiced / unvoiced regions).
  openSMILE configuration `egemaps/v02/eGeMAPSv02.conf`,
  `opensmile.FeatureSet.eGeMAPSv02`. Not in the paper's Table V.

All configurations ship inside the `opensmile` Python package (audEERING);
`feature_set_info` reports the file used and its SHA-256. Audio is mixed down
to mono and resampled to 16 kHz by the package before extraction (EMO-DB is
already 16 kHz mono, so its features are those of the files as they are).

openSMILE runs in a child interpreter (`opensmile_worker.py`): its native
library aborts a process that imported TensorFlow before it, and
`import keras_ser` imports TensorFlow.
"""

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from keras_ser.baselines import dependencies
from keras_ser.checksums import file_fingerprint
from keras_ser.checksums import file_sha256
from tf_pipeline.atomic import write_atomic

SAMPLE_RATE = 16000

# name -> (member of opensmile.FeatureSet, its configuration file, number of functionals)
FEATURE_SETS = {
    "IS09": ("IS09", "is09-13/IS09_emotion.conf", 384),
    "IS10": ("IS10", "is09-13/IS10_paraling_compat.conf", 1582),
    "ComParE_2016": ("ComParE_2016", "compare/ComParE_2016.conf", 6373),
    "eGeMAPSv02": ("eGeMAPSv02", "egemaps/v02/eGeMAPSv02.conf", 88),
}
_CANONICAL = {name.upper(): name for name in FEATURE_SETS}
_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "opensmile_worker.py")

_CACHE_FORMAT = "keras_ser.baselines.functionals/1"


def check_feature_set(feature_set):
    """Returns the canonical name (e.g. "IS09", "ComParE_2016"; any case accepted) or raises a `ValueError`."""
    name = _CANONICAL.get(str(feature_set).upper())
    if name is None:
        raise ValueError(
            f"feature_set must be one of {sorted(FEATURE_SETS)}. Received: feature_set={feature_set!r}"
        )
    return name


def feature_set_info(feature_set):
    """What a feature set is, exactly: configuration file, its hash, dimension, versions.

    Args:
        feature_set: a key of `FEATURE_SETS` (`"IS09"`, `"IS10"`, `"ComParE_2016"`, `"eGeMAPSv02"`).

    Returns:
        A JSON-ready dict with `feature_set`, `opensmile_feature_set` (the
        `opensmile.FeatureSet` member), `config_file` (relative to the
        package's config folder), `config_sha256`, `dimension`,
        `sampling_rate` and `opensmile_version`.

    Example:

    >>> feature_set_info("IS10")["dimension"]   # doctest: +SKIP
    1582
    """
    feature_set = check_feature_set(feature_set)
    member, config_file, dimension = FEATURE_SETS[feature_set]
    config_path = os.path.join(dependencies.package_dir("opensmile"), "core", "config", *config_file.split("/"))
    return {
        "feature_set": feature_set,
        "opensmile_feature_set": f"FeatureSet.{member}",
        "config_file": config_file,
        "config_sha256": file_sha256(config_path),
        "dimension": dimension,
        "level": "functionals",
        "sampling_rate": SAMPLE_RATE,
        "opensmile_version": dependencies.version("opensmile"),
    }


@dataclasses.dataclass(frozen=True)
class Functionals:
    """Utterance-level functionals of a list of files.

    Attributes:
        features: float32 array `[len(paths), dimension]`, one row per path, in order.
        feature_names: tuple of str, openSMILE's column names.
        paths: tuple of str, the files (absolute paths).
        info: dict from `feature_set_info` (configuration file, hash, versions).
        cache_file: str or None, the `.npz` the features were read from or written to.
        from_cache: bool, whether they were read from `cache_file`.
        extraction_wall_time_s: float, seconds openSMILE took when the
            features were computed (read from the cache with them).
    """

    features: np.ndarray
    feature_names: tuple
    paths: tuple
    info: dict
    cache_file: str = None
    from_cache: bool = False
    extraction_wall_time_s: float = None

    @property
    def feature_set(self):
        return self.info["feature_set"]


def _cache_key(paths, info):
    """Key of a feature cache: the files (path and the fingerprint of its bytes) and the exact configuration."""
    files = [[path, file_fingerprint(path)] for path in paths]
    payload = json.dumps(
        {"format": _CACHE_FORMAT, "info": info, "files": files}, sort_keys=True
    ).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()


def _read_cache(cache_file, paths, info):
    """The cached features, or None when the file is missing or does not match."""
    if not os.path.isfile(cache_file):
        return None
    try:
        with np.load(cache_file, allow_pickle=False) as data:
            if (
                str(data["format"]) != _CACHE_FORMAT
                or json.loads(str(data["info"])) != info
                or [str(p) for p in data["paths"]] != list(paths)
            ):
                return None
            names = tuple(str(name) for name in data["feature_names"])
            return data["features"], names, float(data["extraction_wall_time_s"])
    except (OSError, ValueError, KeyError):
        return None


def _run_worker(paths, feature_set, num_workers):
    """openSMILE's output for `paths`, computed in a child interpreter (see the module docstring)."""
    member, config_file, _ = FEATURE_SETS[feature_set]
    with tempfile.TemporaryDirectory(prefix="keras_ser_opensmile_") as folder:
        output = os.path.join(folder, "functionals.npz")
        request = {
            "feature_set": member,
            "paths": list(paths),
            "sampling_rate": SAMPLE_RATE,
            "num_workers": int(num_workers),
            "output": output,
        }
        # -P: do not put the worker's folder (this package) on sys.path.
        done = subprocess.run(
            [sys.executable, "-P", _WORKER], input=json.dumps(request), capture_output=True, text=True
        )
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            reason = lines[-1] if lines else f"exit status {done.returncode}"
            raise ValueError(f"openSMILE {feature_set} extraction failed on {len(paths)} file(s): {reason}")
        with np.load(output, allow_pickle=False) as data:
            config_path = str(data["config_path"])
            if not config_path.replace(os.sep, "/").endswith(config_file):
                raise RuntimeError(f"openSMILE used {config_path} for {feature_set}, expected {config_file}")
            files = [str(path) for path in data["files"]]
            return data["features"], tuple(str(name) for name in data["feature_names"]), files


def _extract(paths, feature_set, num_workers):
    features, names, files = _run_worker(paths, feature_set, num_workers)
    if files != list(paths):
        raise RuntimeError(
            f"openSMILE returned {len(files)} rows for {len(paths)} files, or in another order"
        )
    dimension = FEATURE_SETS[feature_set][2]
    if features.shape[1] != dimension:
        raise RuntimeError(
            f"openSMILE {feature_set} gave {features.shape[1]} functionals, expected {dimension}"
        )
    bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
    if bad.size:
        shown = ", ".join(paths[i] for i in bad[:10]) + (f" ... and {bad.size - 10} more" if bad.size > 10 else "")
        raise ValueError(
            f"openSMILE {feature_set} gave NaN or infinite functionals for {bad.size} of {len(paths)} "
            f"file(s) (audio too short for the 40 ms analysis frames?): {shown}"
        )
    return features, names


def extract_functionals(paths, feature_set="IS09", cache_dir=None, num_workers=1):
    """openSMILE IS09 (384-d), IS10 (1582-d), ComParE_2016 (6373-d) or eGeMAPSv02 (88-d) functionals of audio files.

    One row per file, computed by the `opensmile` package's built-in
    `FeatureSet` configuration of that name at the functionals
    level (see the module docstring for the exact files). With `cache_dir`,
    the matrix is saved to `<cache_dir>/<feature_set>-<key>.npz`, the key
    hashing the file list (path, size and digest of each file's bytes), the configuration
    file's SHA-256 and the openSMILE version; a later call with the same
    files reads it back instead of running openSMILE.

    Args:
        paths: sequence of audio file paths (WAV, FLAC, ...; any rate, any
            channels: mixed down to mono, resampled to 16 kHz).
        feature_set: a key of `FEATURE_SETS` (any case). Defaults to `"IS09"`.
        cache_dir: optional folder for the `.npz` cache. Defaults to `None`
            (no cache).
        num_workers: int, files processed in parallel by openSMILE.
            Defaults to `1`.

    Returns:
        A `Functionals` (`.features` is `[len(paths), dimension]` float32).

    Raises:
        ValueError: an empty `paths`, an unknown feature set, a file that
            cannot be decoded (the message names it) or whose functionals are
            not finite (too short).
        FileNotFoundError: a path that is not a file.
        ImportError: openSMILE is not installed (names the extra to install).

    Example:

    >>> functionals = extract_functionals(["03a01Fa.wav"], "IS10")   # doctest: +SKIP
    >>> functionals.features.shape                                   # doctest: +SKIP
    (1, 1582)
    """
    feature_set = check_feature_set(feature_set)
    paths = tuple(os.path.abspath(str(path)) for path in paths)
    if not paths:
        raise ValueError("paths is empty; give at least one audio file")
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} audio file(s) not found, e.g. {missing[:3]}")
    info = feature_set_info(feature_set)
    cache_file = None
    if cache_dir is not None:
        key = _cache_key(paths, info)
        cache_file = os.path.join(os.path.abspath(os.path.expanduser(cache_dir)), f"{feature_set}-{key[:24]}.npz")
        cached = _read_cache(cache_file, paths, info)
        if cached is not None:
            features, names, seconds = cached
            return Functionals(features, names, paths, info, cache_file, True, seconds)
    start = time.perf_counter()
    features, names = _extract(paths, feature_set, num_workers)
    seconds = round(time.perf_counter() - start, 3)
    if cache_file is not None:
        arrays = {
            "format": np.array(_CACHE_FORMAT),
            "info": np.array(json.dumps(info, sort_keys=True)),
            "paths": np.array(paths),
            "feature_names": np.array(names),
            "features": features,
            "extraction_wall_time_s": np.array(seconds),
        }
        write_atomic(cache_file, lambda stream: np.savez(stream, **arrays))
    return Functionals(features, names, paths, info, cache_file, False, seconds)
