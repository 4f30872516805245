"""A model family defined in this test module alone reaches the whole library, no library file touched.

The family: a front end of four statistics of the waveform (log energy, log
mean absolute value, log energy of the first difference, zero-crossing
rate, over each row's real samples, in TensorFlow ops), its feature config,
and a softmax on them. Defining its task class registers it; from there
`keras_ser.build_model`, `keras_ser.list_models`, `model.preprocessor` on a
real WAV file, the `.keras` round trip, the command line's model choices, a
leave-one-speaker-out fold of the training runner (its report line too) and
a SavedModel export work for it as for the shipped families. The fixture
takes it out of the registry again, so the rest of the suite sees the zoo
as shipped.
"""

import dataclasses
import os

import numpy as np
import pytest

import keras
import keras_ser
import tf_pipeline
from keras_ser.models import registry
from keras_ser.models.preprocessor import Preprocessor
from keras_ser.models.task import SERTask
from tf_pipeline.config import DictConfig

NAME = "wave_stats"
EMODB_FILE = "03a01Fa.wav"


def _define_family():
    """The family: a feature config, its front end and a task class (registered as the class is defined)."""

    @dataclasses.dataclass(frozen=True)
    class WaveStatsConfig(DictConfig):
        sample_rate: int = 16000
        min_samples: int = 160
        floor: float = 1e-8

    class WaveStatsPreprocessor(Preprocessor):
        LAYOUT = "wave_stats"
        CONFIG_CLASS = WaveStatsConfig

        def batch(self, waveforms, num_samples):
            import tensorflow as tf

            config = self.feature_config
            waveforms = tf.convert_to_tensor(waveforms, tf.float32)
            num_samples = tf.cast(num_samples, tf.int32)
            mask = tf.sequence_mask(num_samples, tf.shape(waveforms)[1], dtype=tf.float32)
            count = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
            x = waveforms * mask
            difference = (x[:, 1:] - x[:, :-1]) * mask[:, 1:]
            crossings = tf.cast(x[:, 1:] * x[:, :-1] < 0, tf.float32) * mask[:, 1:]
            return tf.stack([
                tf.math.log(tf.reduce_sum(tf.square(x), axis=1) / count + config.floor),
                tf.math.log(tf.reduce_sum(tf.abs(x), axis=1) / count + config.floor),
                tf.math.log(tf.reduce_sum(tf.square(difference), axis=1) / count + config.floor),
                tf.reduce_sum(crossings, axis=1) / count,
            ], axis=1)

    @keras.saving.register_keras_serializable(package="test_registry")
    class WaveStatsClassifier(SERTask):
        """A softmax on four waveform statistics."""

        NAME = NAME
        DESCRIPTION = "Test family: four statistics of the waveform, a softmax."
        PREPROCESSOR = WaveStatsPreprocessor
        RECIPES = ("end_to_end",)
        BUILD_OPTIONS = ("dropout",)

        def __init__(self, num_classes=7, dropout=0.0, class_names=None, feature_config=None, dtype=None,
                     name=NAME, **kwargs):
            inputs = keras.Input(shape=(4,), name="wave_stats")
            x = keras.layers.BatchNormalization(dtype=dtype, name="normalize")(inputs)
            x = keras.layers.Dropout(dropout, dtype=dtype, name="dropout")(x)
            outputs = keras.layers.Dense(num_classes, activation="softmax", dtype=dtype, name="predictions")(x)
            super().__init__(inputs=inputs, outputs=outputs, class_names=class_names, feature_config=feature_config,
                             dtype=dtype, name=name, **kwargs)
            self.dropout = dropout

        @classmethod
        def from_options(cls, num_classes, class_names, feature_config, dropout, **unused):
            return cls(num_classes=num_classes, dropout=dropout, class_names=class_names,
                       feature_config=feature_config)

        def get_config(self):
            return {**super().get_config(), "num_classes": self.num_classes, "dropout": self.dropout}

    return WaveStatsClassifier


@pytest.fixture(scope="module")
def family():
    shipped = keras_ser.list_models()
    assert NAME not in shipped
    task_class = _define_family()
    yield task_class
    registry.unregister(NAME)
    assert keras_ser.list_models() == shipped


def test_defining_the_class_registers_the_family(family):
    assert keras_ser.list_models()[NAME] == "Test family: four statistics of the waveform, a softmax."
    assert list(keras_ser.list_models())[-1] == NAME
    assert registry.get(NAME) is family
    assert registry.preprocessor_classes()["wave_stats"] is family.PREPROCESSOR
    # The same name again, from another class, is refused.
    with pytest.raises(ValueError, match="A model named 'wave_stats' is registered already"):
        type("Impostor", (family,), {"NAME": NAME, "__module__": "elsewhere"})
    assert registry.get(NAME) is family


def test_build_model_and_the_preprocessor_on_a_real_wav(family, emodb_dir, tmp_path):
    model = keras_ser.build_model(NAME, num_classes=3, class_names=["anger", "neutral", "sadness"], dropout=0.1)
    assert isinstance(model, family) and model.dropout == 0.1 and type(model.optimizer).__name__ == "Adam"
    preprocessor = model.preprocessor
    assert preprocessor.layout == "wave_stats" and preprocessor == Preprocessor.from_layout("wave_stats")
    waveform = np.asarray(tf_pipeline.load_audio(os.path.join(emodb_dir, EMODB_FILE), model.feature_config))
    inputs = preprocessor(waveform)
    assert inputs.shape == (1, 4) and np.all(np.isfinite(inputs))
    np.testing.assert_allclose(inputs[0, 0], np.log(np.mean(waveform.astype(np.float64) ** 2) + 1e-8), rtol=1e-4)
    probabilities = model.predict(inputs, verbose=0)
    assert probabilities.shape == (1, 3) and probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    # The padded batch of the serving graph gives each row what it gives alone.
    batch = np.zeros((2, len(waveform)), np.float32)
    batch[0], batch[1, :8000] = waveform, waveform[:8000]
    np.testing.assert_allclose(np.asarray(preprocessor.batch(batch, [len(waveform), 8000]))[1],
                               preprocessor(waveform[:8000])[0], rtol=1e-5)
    # Saved and loaded with its config and its front end.
    path = str(tmp_path / "wave_stats.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert loaded.preprocessor == preprocessor and loaded.class_names == model.class_names
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), probabilities, atol=1e-6)
    # Unknown options of the zoo are checked at the door as for every model.
    with pytest.raises(ValueError, match="leave n_segments=None. Received: n_segments=3"):
        keras_ser.build_model(NAME, n_segments=3)
    with pytest.raises(ValueError, match=r"speaker_subspace is an option of \['encoder_stats', 'fusion_stats', 'sfx_stats'\]"):
        keras_ser.build_model(NAME, speaker_subspace=2)


def test_command_line_and_train_config_know_it(family):
    from absl import flags

    from keras_ser.training.config import TrainConfig
    from keras_ser_cli import train_flags

    values = flags.FlagValues()
    train_flags.define(values)
    values(["prog", f"--model={NAME}", "--epochs=2"])
    config = train_flags.config_from(values)
    assert config == TrainConfig(model=NAME, epochs=2)
    assert config.model_kwargs() == {"name": NAME, "dropout": 0.5}
    assert config.preprocessor() == family.PREPROCESSOR() and config.output == "wave_stats"
    with pytest.raises(ValueError, match=r"the 'wave_stats' model trains with a recipe in \('end_to_end',\)"):
        TrainConfig(model=NAME, recipe="paper")


def test_one_leave_one_speaker_out_fold(family, synthetic_corpus, tmp_path):
    from keras_ser.training import run_loso
    from keras_ser.training.config import TrainConfig

    config = TrainConfig(model=NAME, epochs=3, batch_size=6, learning_rate=1e-2)
    speaker = synthetic_corpus.speakers[0]
    report = run_loso(synthetic_corpus, config, str(tmp_path / "run"), speakers=[speaker], verbose=0,
                      tensorboard=False)
    assert [fold["test_speaker"] for fold in report["folds"]] == [speaker]
    fold = report["folds"][0]
    assert fold["n_test"] == int(np.sum(synthetic_corpus.speaker_ids == speaker)) and 0 <= fold["ua"] <= 1
    with open(tmp_path / "run" / "results.md", encoding="utf-8") as handle:
        text = handle.read()
    assert "dropout 0.5, Adam lr 0.01 up to 3 epochs, batch 6" in text


def test_export_loads_back_and_serves(family, emodb_dir, tmp_path):
    import tensorflow as tf

    import saved_models

    model = keras_ser.build_model(NAME, num_classes=3, class_names=["anger", "neutral", "sadness"], compile=False)
    path = saved_models.export(model, str(tmp_path), "wave_stats")
    loaded = tf.saved_model.load(path)
    assert sorted(loaded.signatures) == ["serve_wav", "serving_default"]
    wav = os.path.join(emodb_dir, EMODB_FILE)
    with open(wav, "rb") as handle:
        outputs = loaded.signatures["serve_wav"](audio_bytes=tf.constant([handle.read()]))
    expected = model.predict(model.preprocessor(np.asarray(tf_pipeline.load_audio(wav, model.feature_config))),
                             verbose=0)
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)
    assert outputs["class_name"].numpy()[0].decode() == model.class_names[int(np.argmax(expected))]
    assert saved_models.read_labels(path) == model.class_names
