"""What the benchmarks record about the machine and the command (shared by the scripts here).

Benchmarks run as scripts (`python benchmarks/NAME.py`), so this folder is on
`sys.path` and they import this module as `host`.
"""

import json
import os
import platform
import shlex


def cpu_name():
    """The CPU model from /proc/cpuinfo, or what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def loadavg():
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def command_line(script, argv):
    """`python benchmarks/SCRIPT ARGS` with the corpus folder written as DATA_DIR (result files name no local paths).

    A word holding spaces (a `--server` entry of benchmarks/serving.py) is shell-quoted.
    """
    words, skip = ["python", f"benchmarks/{script}"], False
    for word in argv:
        if skip:
            words.append("DATA_DIR")
            skip = False
        elif word == "--data_dir":
            words.append(word)
            skip = True
        elif word.startswith("--data_dir="):
            words.append("--data_dir=DATA_DIR")
        else:
            words.append(shlex.quote(word) if any(c.isspace() for c in word) else word)
    return " ".join(words)


def machine_info():
    """What a result records of the machine: architecture, CPU, cores, Python, TensorFlow, Keras, GPUs."""
    import keras
    import tensorflow as tf

    return {
        "machine": platform.machine(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "gpus": [device.name for device in tf.config.list_physical_devices("GPU")],
    }


def machine_line(info):
    """One printed line of `machine_info()`."""
    return (f"{info['machine']}, {info['cpu_count']} cores ({info['cpu']}), {info['platform']}; "
            f"Python {info['python']}, TensorFlow {info['tensorflow']}, Keras {info['keras']} "
            f"({info['keras_backend']}), GPUs: {len(info['gpus'])}")


def write_json(path, payload):
    """Writes a benchmark's result JSON (folders created) and says where."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")
    print(f"\nwritten {path}")
