"""A tiny exported keras-ser model and a development server on it, shared by the
export and serving tests: built once per test process (functools.cache), removed at exit.

The model is the paper's CNN+SRU at toy size (2 segments of 67x67, AlexNet
with 8 filters per conv, SRU of 16 units, 4 classes) with the channel
statistics of a few real EMO-DB utterances, so its probabilities differ
from file to file.
"""

import atexit
import functools
import os
import shutil
import tempfile

import numpy as np

from conftest import EMODB_DIR

CLASS_NAMES = ["W", "T", "F", "N"]
TINY = dict(num_classes=4, class_names=CLASS_NAMES, sru_units=16, image_size=67,
            backbone_kwargs={"filters": (8, 8, 8, 8, 8), "fc_units": 16})
# Six real EMO-DB files: six speakers, five emotions, 1.9 s to 5.3 s.
EMODB_FILES = ["03a01Fa.wav", "08b03Lc.wav", "10b03Tb.wav", "12b03La.wav", "14a05Aa.wav", "15b03Tc.wav"]
MODEL_NAME = "ser"


def emodb_paths(emodb_dir=EMODB_DIR):
    return [os.path.join(emodb_dir, name) for name in EMODB_FILES]


def tiny_model(name="cnn_sru", seed=1):
    """A tiny zoo model with EMO-DB channel statistics in its `standardize` layer."""
    import keras

    import keras_ser

    keras.utils.set_random_seed(seed)
    kwargs = dict(TINY)
    if name == "cnn_sru":
        kwargs["n_segments"] = 2
    elif name == "cnn":
        kwargs.pop("sru_units")
    else:
        for key in ("image_size", "backbone_kwargs"):
            kwargs.pop(key)
    model = keras_ser.build_model(name, compile=False, **kwargs)
    keras_ser.set_channel_stats(model, [-6.0, 0.0, 0.0], [3.0, 0.5, 0.3])
    return model


def reference_probabilities(model, paths):
    """`model.predict` on tf_pipeline features, one file at a time (the parity reference)."""
    import tf_pipeline

    config = model.feature_config
    rows = []
    for path in paths:
        image = tf_pipeline.feature_image(tf_pipeline.load_audio(path, config), config)
        if model.n_segments is None:
            frames = np.transpose(image.numpy(), [1, 2, 0]).reshape(1, -1, 3 * config.n_mels)
            inputs = frames
        else:
            size = tuple(int(s) for s in model.input.shape[2:4])
            inputs = tf_pipeline.segment_and_resize(image, model.n_segments, size)[None]
        rows.append(np.asarray(model.predict(inputs, verbose=0))[0])
    return np.stack(rows)


class Exported:
    def __init__(self, model, root, keras_path, export_root, cli_output):
        self.model = model
        self.root = root
        self.keras_path = keras_path
        self.export_root = export_root
        self.base_path = os.path.join(export_root, MODEL_NAME)
        self.version_dir = os.path.join(self.base_path, "1")
        self.cli_output = cli_output

    @functools.cached_property
    def loaded(self):
        import tensorflow as tf

        return tf.saved_model.load(self.version_dir)


@functools.cache
def exported():
    """The tiny model, saved as .keras and exported with `keras-ser export` to <tmp>/exports/ser/1."""
    import contextlib
    import io

    from keras_ser_cli.main import run

    root = tempfile.mkdtemp(prefix="keras_ser_serving_")
    atexit.register(shutil.rmtree, root, True)
    model = tiny_model()
    keras_path = os.path.join(root, "tiny.keras")
    model.save(keras_path)
    export_root = os.path.join(root, "exports")
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        status = run(["keras-ser", "export", f"--model={keras_path}", f"--export_root={export_root}",
                      f"--name={MODEL_NAME}"])
    assert status == 0, output.getvalue()
    return Exported(model, root, keras_path, export_root, output.getvalue())


@functools.cache
def dev_server():
    """A DevServer on the export (ports 0, no polling), stopped at exit."""
    from serving.server import DevServer

    server = DevServer.for_model(MODEL_NAME, exported().base_path, max_batch_size=64, port=0, rest_api_port=0,
                                 poll_seconds=0).start()
    atexit.register(server.stop, 0)
    return server
