"""`TrainConfig.jit_compile`: its default follows the committed measurement, and every recipe compiles with it.

The measurement is `benchmarks/jit_compile.py`, stored in
`benchmarks/results/jit_compile_cpu.json` (docs/performance.md).
"""

import json
import os

import keras
import numpy as np
import pytest

from keras_ser.training import TrainConfig
from keras_ser.training import recipes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT = os.path.join(ROOT, "benchmarks", "results", "jit_compile_cpu.json")
TINY_SRU = dict(model="sru", sru_units=8, epochs=1, batch_size=4)


@pytest.fixture(scope="module")
def measurement():
    with open(RESULT) as handle:
        return json.load(handle)


def _cpu_only_tensorflow():
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not [device for device in tf.config.list_physical_devices() if device.device_type != "CPU"]


def test_the_stored_recommendation_follows_its_own_table(measurement):
    rows = measurement["rows"]
    slower = sum(row["ratio"] > 1 for row in rows)
    assert measurement["xla_slower_for"] == slower and measurement["models"] == len(rows)
    assert measurement["recommended_xla"] == (not slower > len(rows) / 2)
    expected = "auto" if measurement["auto_resolves_to"] == measurement["recommended_xla"] else \
        measurement["recommended_xla"]
    assert measurement["recommended_default"] == expected
    for row in rows:  # both settings took effect, so the ratio compares XLA with no XLA
        assert row["xla_effective"] and not row["no_xla_effective"], row["model"]
        assert row["ratio"] == pytest.approx(row["xla_s_per_step"] / row["no_xla_s_per_step"], abs=0.01)


def test_default_is_the_measured_recommendation(measurement):
    assert TrainConfig().jit_compile == measurement["recommended_default"]


def test_bad_values_raise_and_good_ones_round_trip():
    for bad in ("yes", "True", 1, 0, None, 1.0):
        with pytest.raises(ValueError, match=r"jit_compile=" + repr(bad).replace(".", r"\.")):
            TrainConfig(jit_compile=bad)
    for good in (True, False, "auto"):
        config = TrainConfig(jit_compile=good)
        assert TrainConfig.from_dict(json.loads(config.to_json())) == config
    # A config stored before the field existed reads back with the default.
    stored = TrainConfig().to_dict()
    del stored["jit_compile"]
    assert TrainConfig.from_dict(stored) == TrainConfig()


def _tiny_fold(num_classes=3, utterances=4, frames=10, features=180, seed=0):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(utterances, frames, features)).astype(np.float32)
    y = rng.integers(0, num_classes, size=utterances)

    def dataset(part, training):
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(4)

    return recipes.FoldData(dataset=dataset, labels={"train": y, "test": y},
                            class_names=[f"c{i}" for i in range(num_classes)],
                            channel_stats=(np.zeros(3, np.float32), np.ones(3, np.float32)))


@pytest.fixture
def compile_calls(monkeypatch):
    """The `jit_compile` argument of every `keras.Model.compile` call ("missing" when not passed)."""
    calls = []
    original = keras.Model.compile

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("jit_compile", "missing"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "compile", spy)
    return calls


@pytest.mark.parametrize("jit_compile", [True, False, "auto"])
def test_end_to_end_recipe_compiles_with_the_config_value(jit_compile, compile_calls, measurement):
    keras.utils.set_random_seed(0)
    config = TrainConfig(jit_compile=jit_compile, **TINY_SRU)
    result = recipes.train(config, _tiny_fold(), verbose=0)
    assert compile_calls == [jit_compile]
    if jit_compile != "auto":
        assert result.model.jit_compile is jit_compile
    elif _cpu_only_tensorflow():  # the kind of machine measured: "auto" must give what the measurement recommends
        assert result.model.jit_compile == measurement["recommended_xla"]


def test_paper_recipe_passes_the_config_value_to_every_compile(compile_calls):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 2, 67, 67, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 0])
    data = recipes.FoldData(dataset=lambda part, training: tf.data.Dataset.from_tensor_slices((x, y)).batch(4),
                            labels={"train": y, "test": y}, class_names=["a", "b", "c"],
                            channel_stats=(np.zeros(3, np.float32), np.ones(3, np.float32)))
    config = TrainConfig(recipe="paper", n_segments=2, image_size=67, sru_units=8, stage1_epochs=1, stage2_epochs=1,
                         batch_size=4, backbone_kwargs={"filters": [4, 4, 4, 4, 4], "fc_units": 8}, jit_compile=False)
    recipes.train(config, data, verbose=0)
    assert compile_calls == [False, False, False]  # stage 1, stage 2, the assembled model


@pytest.mark.skipif("frozen" not in recipes.RECIPES, reason="no frozen recipe in this checkout")
def test_frozen_recipe_compiles_the_head_with_the_config_value(compile_calls):
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    config = TrainConfig(model="encoder_stats", recipe="frozen", backbone_weights="random",
                         backbone_kwargs={"units": 4, "embedding_dim": 4}, epochs=1, batch_size=4, jit_compile=False)
    features = rng.normal(size=(len(y), 2 * 4 * 3)).astype(np.float32)  # mean and std of 3 LSTM layers of 4 units
    data = recipes.FoldData(dataset=None, labels={"train": y, "test": y}, class_names=["a", "b", "c"],
                            channel_stats=None, features=lambda part: features)
    recipes.train(config, data, verbose=0)
    assert compile_calls == [False]
