"""SRU: golden values against a numpy evaluation of Eq. 3-7, cell == fast layer, masking, saving."""

import numpy as np
import pytest

import keras
from keras_ser.layers import SRU
from keras_ser.layers import SRUCell


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_sru(x, kernel, bias, units, mask=None, c0=None):
    """Plain numpy SRU (Lei et al. 2017, Eq. 3-7), step by step.

    Returns (h for every step [batch, time, units], final c). Masked steps keep
    c and repeat the previous output (zeros before the first real step).
    """
    batch, time, input_dim = x.shape
    w, w_f, w_r = kernel[:, :units], kernel[:, units:2 * units], kernel[:, 2 * units:3 * units]
    w_h = kernel[:, 3 * units:] if kernel.shape[1] == 4 * units else None
    b_f, b_r = bias[:units], bias[units:]
    c = np.zeros((batch, units)) if c0 is None else c0.astype(np.float64)
    previous_h = np.zeros((batch, units))
    outputs = []
    for t in range(time):
        x_t = x[:, t].astype(np.float64)
        x_tilde = x_t @ w                                   # Eq. 3
        f = _sigmoid(x_t @ w_f + b_f)                       # Eq. 4
        new_c = f * c + (1 - f) * x_tilde                   # Eq. 5
        r = _sigmoid(x_t @ w_r + b_r)                       # Eq. 6
        highway = x_t if w_h is None else x_t @ w_h
        h = r * np.tanh(new_c) + (1 - r) * highway          # Eq. 7
        if mask is not None:
            keep = mask[:, t:t + 1]
            new_c = np.where(keep, new_c, c)
            h = np.where(keep, h, previous_h)
        c, previous_h = new_c, h
        outputs.append(h)
    return np.stack(outputs, axis=1), c


def _random_weights(layer, seed):
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.get_weights()])


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("input_dim,units", [(6, 6), (5, 7)], ids=["highway_x", "highway_projection"])
def test_golden_values_against_numpy_eq_3_to_7(input_dim, units):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, input_dim)).astype("float32")
    sru = SRU(units, return_sequences=True, return_state=True)
    sru.build((None, None, input_dim))
    _random_weights(sru, seed=1)
    kernel, bias = sru.get_weights()
    assert kernel.shape == (input_dim, (3 if input_dim == units else 4) * units)
    assert bias.shape == (2 * units,)

    expected_h, expected_c = numpy_sru(x, kernel, bias, units)
    h, c = sru(x)
    np.testing.assert_allclose(_numpy(h), expected_h, atol=1e-5)
    np.testing.assert_allclose(_numpy(c), expected_c, atol=1e-5)

    cell_rnn = keras.layers.RNN(SRUCell(units), return_sequences=True)
    cell_rnn.build((None, None, input_dim))
    cell_rnn.set_weights([kernel, bias])
    np.testing.assert_allclose(_numpy(cell_rnn(x)), expected_h, atol=1e-5)


def test_cell_is_one_step_of_eq_3_to_7():
    rng = np.random.default_rng(2)
    cell = SRUCell(4)
    cell.build((None, 4))
    _random_weights(cell, seed=3)
    x = rng.normal(size=(2, 4)).astype("float32")
    c_prev = rng.normal(size=(2, 4)).astype("float32")
    h, states = cell(x, [c_prev])
    expected_h, expected_c = numpy_sru(x[:, None], *cell.get_weights(), 4, c0=c_prev)
    np.testing.assert_allclose(_numpy(h), expected_h[:, 0], atol=1e-5)
    np.testing.assert_allclose(_numpy(states[0]), expected_c, atol=1e-5)
    assert cell.state_size == 4 and cell.output_size == 4
    # A bare state tensor (not a list) comes back bare, like Keras' own cells.
    h_bare, c_bare = cell(x, c_prev)
    np.testing.assert_allclose(_numpy(c_bare), expected_c, atol=1e-5)


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("input_dim,units", [(8, 8), (6, 5)])
def test_fast_layer_equals_rnn_of_cell_with_shared_weights_and_masks(return_sequences, input_dim, units):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 7, input_dim)).astype("float32")
    mask = np.ones((4, 7), bool)
    mask[0, 5:] = False          # trailing padding
    mask[1, :2] = False          # leading masked steps
    mask[2, 3] = False           # a hole
    sru = SRU(units, return_sequences=return_sequences, return_state=True)
    rnn = keras.layers.RNN(SRUCell(units), return_sequences=return_sequences, return_state=True)
    sru.build((None, None, input_dim))
    rnn.build((None, None, input_dim))
    _random_weights(sru, seed=5)
    rnn.set_weights(sru.get_weights())
    c0 = rng.normal(size=(4, units)).astype("float32")
    for kwargs in ({}, {"mask": mask}, {"initial_state": [c0]}, {"mask": mask, "initial_state": [c0]}):
        if "mask" in kwargs and keras.backend.backend() == "jax":
            continue  # Keras' JAX RNN loop outputs states[0] (c) at masked steps: see SRUCell.
        fast_out, fast_c = sru(x, **kwargs)
        cell_out, cell_c = rnn(x, **kwargs)
        np.testing.assert_allclose(_numpy(fast_out), _numpy(cell_out), atol=1e-5, err_msg=str(list(kwargs)))
        np.testing.assert_allclose(_numpy(fast_c), _numpy(cell_c), atol=1e-5, err_msg=str(list(kwargs)))
    # And both against numpy, with the mask.
    expected_h, expected_c = numpy_sru(x, *sru.get_weights(), units, mask=mask)
    fast_out, fast_c = sru(x, mask=mask)
    expected = expected_h if return_sequences else expected_h[:, -1]
    np.testing.assert_allclose(_numpy(fast_out), expected, atol=1e-5)
    np.testing.assert_allclose(_numpy(fast_c), expected_c, atol=1e-5)


def test_dynamic_time_axis_unroll_and_masking_from_a_masking_layer():
    rng = np.random.default_rng(6)
    inputs = keras.Input(shape=(None, 6))
    masked = keras.layers.Masking(0.0)(inputs)
    sru = SRU(5, return_sequences=True)
    model = keras.Model(inputs, sru(masked))
    _random_weights(sru, seed=7)
    for time in (3, 9):
        x = rng.normal(size=(2, time, 6)).astype("float32")
        x[1, time - 2:] = 0.0
        out = _numpy(model(x))
        assert out.shape == (2, time, 5)
        expected, _ = numpy_sru(x, *sru.get_weights(), 5, mask=np.any(x != 0, axis=-1))
        np.testing.assert_allclose(out, expected, atol=1e-5)

    unrolled = SRU(5, return_sequences=True, unroll=True)
    x = rng.normal(size=(2, 4, 6)).astype("float32")
    unrolled.build(x.shape)
    unrolled.set_weights(sru.get_weights())
    np.testing.assert_allclose(_numpy(unrolled(x)), _numpy(sru(x)), atol=1e-6)


def test_output_shapes_and_mask_propagation():
    sru = SRU(3, return_sequences=False)
    assert sru.compute_output_shape((2, 5, 4)) == (2, 3)
    assert SRU(3, return_sequences=True).compute_output_shape((2, None, 4)) == (2, None, 3)
    assert SRU(3, return_state=True).compute_output_shape((2, 5, 4)) == ((2, 3), (2, 3))
    inputs = keras.Input(shape=(None, 4))
    x = keras.layers.Masking()(inputs)
    assert SRU(3, return_sequences=True)(x)._keras_mask is not None


def test_get_config_round_trip():
    cell = SRUCell(6, activation="relu", kernel_initializer="orthogonal", bias_initializer="ones", name="c")
    assert SRUCell.from_config(cell.get_config()).get_config() == cell.get_config()
    sru = SRU(
        6, return_sequences=True, return_state=True, activation="relu",
        kernel_initializer="orthogonal", bias_initializer="ones", unroll=True, name="s",
    )
    config = sru.get_config()
    assert config["units"] == 6 and config["return_sequences"] and config["return_state"] and config["unroll"]
    assert SRU.from_config(config).get_config() == config
    # Registered: plain keras deserialisation finds the class.
    restored = keras.layers.deserialize(keras.layers.serialize(sru))
    assert isinstance(restored, SRU) and restored.get_config() == config


def test_keras_save_and_load_give_identical_outputs(tmp_path):
    rng = np.random.default_rng(8)
    inputs = keras.Input(shape=(None, 6))
    fast = SRU(4, return_sequences=True, name="fast")(inputs)
    cell = keras.layers.RNN(SRUCell(4), name="cell")(fast)
    model = keras.Model(inputs, cell)
    for layer in model.layers[1:]:
        _random_weights(layer, seed=9)
    x = rng.normal(size=(2, 5, 6)).astype("float32")
    path = tmp_path / "sru.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(_numpy(restored(x)), _numpy(model(x)))
    assert isinstance(restored.get_layer("fast"), SRU)
    assert isinstance(restored.get_layer("cell").cell, SRUCell)


def test_fit_under_jit_with_dynamic_time_and_mask():
    """XLA (TensorFlow) / jit: training with a None time axis and padding works."""
    rng = np.random.default_rng(10)
    inputs = keras.Input(shape=(None, 6))
    x = keras.layers.Masking(0.0)(inputs)
    x = SRU(8)(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  jit_compile=True)
    # The traced graph has a None time axis (the Input's); XLA compiles it per length.
    data = rng.normal(size=(8, 5, 6)).astype("float32")
    data[::2, 3:] = 0.0
    labels = (data[:, 0, 0] > 0).astype("int32")
    history = model.fit(data, labels, epochs=3, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize("units", [0, -3, 2.5, True, "8"])
def test_bad_units_raise(units):
    with pytest.raises(ValueError, match="units must be a positive integer. Received: units="):
        SRU(units)
    with pytest.raises(ValueError, match="Received: units="):
        SRUCell(units)
