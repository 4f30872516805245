"""UnweightedAccuracy (UA) against sklearn's balanced accuracy, batch by batch and in evaluate()."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

import keras
from keras_ser.metrics import UnweightedAccuracy

# Partial batches predict classes they do not contain; sklearn warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")


def _scores(predicted, num_classes, rng):
    """Random probabilities whose argmax is `predicted`."""
    scores = rng.uniform(size=(len(predicted), num_classes))
    scores[np.arange(len(predicted)), predicted] += 1.0
    return (scores / scores.sum(axis=1, keepdims=True)).astype("float32")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accumulates_over_batches_like_balanced_accuracy(seed):
    rng = np.random.default_rng(seed)
    num_classes = 5
    y_true = rng.choice(num_classes, size=60, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    y_pred = np.where(rng.uniform(size=60) < 0.6, y_true, rng.integers(0, num_classes, 60))
    metric = UnweightedAccuracy(num_classes=num_classes)
    for start in range(0, 60, 16):  # uneven batches; the last has 12
        batch = slice(start, start + 16)
        metric.update_state(y_true[batch], _scores(y_pred[batch], num_classes, rng))
    expected = balanced_accuracy_score(y_true, y_pred)
    assert float(metric.result()) == pytest.approx(expected, abs=1e-6)
    # A mean of per-batch figures would differ: UA is an epoch-level figure.
    per_batch = np.mean([balanced_accuracy_score(y_true[s:s + 16], y_pred[s:s + 16]) for s in range(0, 60, 16)])
    assert abs(per_batch - expected) > 1e-3

    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_absent_classes_label_shapes_one_hot_and_sample_weights():
    rng = np.random.default_rng(3)
    y_true = np.array([0, 0, 1, 1, 1, 3])  # class 2 never occurs in y_true
    y_pred = np.array([0, 2, 1, 1, 0, 2])
    scores = _scores(y_pred, 4, rng)
    expected = balanced_accuracy_score(y_true, y_pred)  # sklearn drops absent classes too
    for labels in (y_true, y_true[:, None]):
        metric = UnweightedAccuracy(num_classes=4)
        metric.update_state(labels, scores)
        assert float(metric.result()) == pytest.approx(expected, abs=1e-6)
    one_hot = UnweightedAccuracy(num_classes=4, sparse_y_true=False)
    one_hot.update_state(np.eye(4)[y_true], scores)
    assert float(one_hot.result()) == pytest.approx(expected, abs=1e-6)

    weights = np.array([1.0, 2.0, 0.5, 1.0, 3.0, 1.0])
    weighted = UnweightedAccuracy(num_classes=4)
    weighted.update_state(y_true, scores, sample_weight=weights)
    assert float(weighted.result()) == pytest.approx(
        balanced_accuracy_score(y_true, y_pred, sample_weight=weights), abs=1e-6)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_in_evaluate_over_several_batches(jit_compile):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 6)).astype("float32")
    y = rng.integers(0, 3, size=50)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", jit_compile=jit_compile,
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="wa"), UnweightedAccuracy(3)])
    results = model.evaluate(x, y, batch_size=8, return_dict=True, verbose=0)
    predicted = np.argmax(model.predict(x, verbose=0), axis=-1)
    assert results["ua"] == pytest.approx(balanced_accuracy_score(y, predicted), abs=1e-6)
    assert results["wa"] == pytest.approx(np.mean(predicted == y), abs=1e-6)


def test_config_round_trip_and_bad_num_classes():
    metric = UnweightedAccuracy(num_classes=7, sparse_y_true=False, name="uar")
    config = metric.get_config()
    assert config == {"num_classes": 7, "sparse_y_true": False, "name": "uar", "dtype": "float32"}
    assert UnweightedAccuracy.from_config(config).get_config() == config
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(restored, UnweightedAccuracy)
    for bad in (1, 0, 2.0, None):
        with pytest.raises(ValueError, match=f"num_classes must be an integer of at least 2. Received: num_classes={bad!r}"):
            UnweightedAccuracy(num_classes=bad)
