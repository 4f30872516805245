"""Simple Recurrent Unit: the cell (one step) and the fast layer (a whole sequence).

Lei, Zhang, Wang, Dai & Artzi, "Simple Recurrent Units for Highly
Parallelizable Recurrence" (2017, arXiv:1709.02755v1), the version used by
Jiang, Fu & Tao (2019), Eq. 3-7:

    x~_t = W x_t
    f_t  = sigmoid(W_f x_t + b_f)
    c_t  = f_t * c_{t-1} + (1 - f_t) * x~_t
    r_t  = sigmoid(W_r x_t + b_r)
    h_t  = r_t * g(c_t) + (1 - r_t) * x_t          (g = tanh)

No gate looks at `c_{t-1}` or `h_{t-1}` (the later SRU versions add such
terms; this one does not), so the three projections of every time step are
one matrix product and only the element-wise recurrence of `c` is sequential.

When the input width differs from `units`, the highway term `(1 - r_t) * x_t`
cannot add `x_t` itself; as in the reference implementation, a fourth learned
projection `W_h x_t` (no bias) takes its place.

Weights, shared by `SRUCell` and `SRU` so that either can load the other's:
- `kernel`: `[input_dim, k * units]`, the columns of `W`, `W_f`, `W_r` (and
  `W_h` when `input_dim != units`, so `k` is 3 or 4), in that order.
- `bias`: `[2 * units]`, `b_f` then `b_r`.
"""

import keras
from keras import ops
from keras import tree


def _num_projections(input_dim, units):
    return 3 if input_dim == units else 4


def _check_units(units):
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise ValueError(f"units must be a positive integer. Received: units={units!r}")


@keras.saving.register_keras_serializable(package="keras_ser")
class SRUCell(keras.layers.Layer):
    """One step of the Simple Recurrent Unit (Lei et al. 2017, Eq. 3-7).

    Follows the Keras RNN-cell contract: `state_size`, `output_size`,
    weights created in `build`, and `call(inputs, states) -> (h, [c])`, so
    `keras.layers.RNN(SRUCell(units))` runs it over time. For speed use
    `keras_ser.layers.SRU`, which computes the same function with one matrix
    product for all time steps.

    The state is the memory cell `c` only (`h_{t-1}` is not needed by the
    2017 SRU). When the input width differs from `units`, the highway term
    uses a learned projection `W_h x_t` (a fourth block of `kernel`) instead
    of `x_t`, as the reference implementation does.

    Masking caveat: on the JAX backend, `keras.layers.RNN` (with
    `unroll=False`) fills the outputs of masked steps with `states[0]`,
    assuming it is the previous output; for this cell it is `c`, not `h`.
    The TensorFlow and PyTorch loops are not affected. For masked sequences
    on JAX use `keras_ser.layers.SRU`, which is right on every backend.

    Args:
        units: int. Width of `c` and `h`.
        activation: activation `g` applied to `c_t`. Defaults to `"tanh"`.
        kernel_initializer: initializer of `kernel`
            (`[input_dim, k * units]`). Defaults to `"glorot_uniform"`.
        bias_initializer: initializer of `bias` (`[2 * units]`: `b_f` then
            `b_r`). Defaults to `"zeros"`.
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> layer = keras.layers.RNN(SRUCell(8))
    >>> tuple(layer(np.zeros((2, 5, 8), "float32")).shape)
    (2, 8)
    """

    def __init__(
        self,
        units,
        activation="tanh",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_units(units)
        self.units = units
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        input_dim = input_shape[-1]
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_dim, _num_projections(input_dim, self.units) * self.units),
            initializer=self.kernel_initializer,
        )
        self.bias = self.add_weight(
            name="bias", shape=(2 * self.units,), initializer=self.bias_initializer
        )

    def call(self, inputs, states, training=None):
        c_prev = states[0] if tree.is_nested(states) else states
        projections = ops.split(ops.matmul(inputs, self.kernel), self.kernel.shape[-1] // self.units, axis=-1)
        x_tilde, f_pre, r_pre = projections[:3]
        highway = projections[3] if len(projections) == 4 else inputs
        b_f, b_r = ops.split(ops.cast(self.bias, inputs.dtype), 2)
        f = ops.sigmoid(f_pre + b_f)
        r = ops.sigmoid(r_pre + b_r)
        c = f * c_prev + (1.0 - f) * x_tilde
        h = r * self.activation(c) + (1.0 - r) * highway
        new_states = [c] if tree.is_nested(states) else c
        return h, new_states

    def get_config(self):
        config = {
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
        return {**super().get_config(), **config}


class _SRUMemoryCell(keras.layers.Layer):
    """The sequential part of the SRU: `c_t = f_t * c_{t-1} + u_t`, nothing else.

    Input per step: `[f_t | u_t]` (2 * units) with `u_t = (1 - f_t) * x~_t`,
    computed beforehand for all steps. State and output: `c_t`.
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units
        self.output_size = units

    def call(self, inputs, states, training=None):
        f, u = ops.split(inputs, 2, axis=-1)
        c = f * states[0] + u
        return c, [c]


class _SRUMaskedStepCell(keras.layers.Layer):
    """One element-wise SRU step that also emits `h_t`, for masked sequences.

    Input per step: `[f_t | u_t | r_t | highway_t]` (4 * units). Output:
    `h_t`. States: `[h, c]`, with `h` first because Keras' JAX RNN loop
    repeats `states[0]` as the output of a masked step (the TensorFlow and
    PyTorch loops keep the previous output themselves); carrying `h` makes
    masking right on every backend.
    """

    def __init__(self, units, activation, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = activation
        self.state_size = [units, units]
        self.output_size = units

    def call(self, inputs, states, training=None):
        f, u, r, highway = ops.split(inputs, 4, axis=-1)
        c = f * states[1] + u
        h = r * self.activation(c) + (1.0 - r) * highway
        return h, [h, c]


@keras.saving.register_keras_serializable(package="keras_ser")
class SRU(keras.layers.Layer):
    """Simple Recurrent Unit over a whole sequence, in its fast form.

    Computes exactly what `keras.layers.RNN(SRUCell(units))` computes (same
    weights, same masking semantics) but faster: the projections of all time
    steps, and both gates, are computed for the whole sequence at once (a
    single matrix product `[batch * time, input_dim] x [input_dim,
    k * units]`); only the element-wise recurrence
    `c_t = f_t * c_{t-1} + (1 - f_t) * x~_t` runs step by step, and
    `h_t = r_t * tanh(c_t) + (1 - r_t) * x_t` is then computed for all steps
    at once (with a mask, `h_t` is computed inside the loop, so that masked
    steps can repeat the previous output). The step loop is Keras' own RNN
    loop (`keras.layers.RNN` over an element-wise cell without weights), so a
    static or dynamic (`None`) time axis, masking, `unroll` and `jit` (XLA on
    TensorFlow, JAX, PyTorch) work as for Keras' LSTM and GRU.

    Masking follows Keras' RNN layers: at a masked step the memory cell is
    carried over unchanged and the output repeats the previous output (zeros
    before the first unmasked step); with `return_sequences=False` the
    output is that of the last unmasked step.

    Args:
        units: int. Width of `c` and `h`.
        return_sequences: bool. Return `h` for every step
            (`[batch, time, units]`) instead of the last one
            (`[batch, units]`). Defaults to `False`.
        return_state: bool. Also return the final memory cell `c`
            (`[batch, units]`). Defaults to `False`.
        activation: activation `g` applied to `c_t`. Defaults to `"tanh"`.
        kernel_initializer: initializer of `kernel`. Defaults to
            `"glorot_uniform"`.
        bias_initializer: initializer of `bias` (`b_f` then `b_r`).
            Defaults to `"zeros"`.
        unroll: bool. Unroll the step loop (static time axis only; faster
            for very short sequences, more memory), as in `keras.layers.RNN`.
            Defaults to `False`.
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        sequences: `[batch, time, input_dim]` tensor.
        initial_state: optional initial memory cell `[batch, units]` (or a
            one-element list of it). Defaults to zeros.
        mask: optional boolean `[batch, time]`, `True` for real steps.
        training: unused; accepted for API symmetry.

    Example:

    >>> import numpy as np
    >>> sru = SRU(16, return_sequences=True)
    >>> tuple(sru(np.zeros((2, 7, 8), "float32")).shape)
    (2, 7, 16)
    >>> cell_layer = keras.layers.RNN(SRUCell(16), return_sequences=True)
    >>> _ = cell_layer(np.zeros((2, 7, 8), "float32"))
    >>> cell_layer.set_weights(sru.get_weights())   # same weights, same outputs
    """

    def __init__(
        self,
        units,
        return_sequences=False,
        return_state=False,
        activation="tanh",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        unroll=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_units(units)
        self.units = units
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.unroll = bool(unroll)
        self.supports_masking = True
        self.input_spec = keras.layers.InputSpec(ndim=3)
        # The step loops have no weights: Keras' RNN loop (static or dynamic
        # time, masks, unroll, jit on every backend) over element-wise cells.
        self.memory_loop = keras.layers.RNN(
            _SRUMemoryCell(units, dtype=self.dtype_policy),
            return_sequences=self.return_sequences,
            unroll=self.unroll,
            dtype=self.dtype_policy,
            name="memory_loop",
        )
        self.masked_loop = keras.layers.RNN(
            _SRUMaskedStepCell(units, self.activation, dtype=self.dtype_policy),
            return_sequences=self.return_sequences,
            return_state=True,
            unroll=self.unroll,
            dtype=self.dtype_policy,
            name="masked_loop",
        )

    def build(self, sequences_shape, initial_state_shape=None):
        input_dim = sequences_shape[-1]
        if input_dim is None:
            raise ValueError(
                "SRU needs a known feature dimension. "
                f"Received: input shape {tuple(sequences_shape)}"
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_dim, _num_projections(input_dim, self.units) * self.units),
            initializer=self.kernel_initializer,
        )
        self.bias = self.add_weight(
            name="bias", shape=(2 * self.units,), initializer=self.bias_initializer
        )
        batch, time = sequences_shape[0], sequences_shape[1]
        self.memory_loop.build((batch, time, 2 * self.units))
        self.masked_loop.build((batch, time, 4 * self.units))

    def call(self, sequences, initial_state=None, mask=None, training=None):
        # One matrix product for every projection of every time step.
        projections = ops.matmul(sequences, ops.cast(self.kernel, sequences.dtype))
        projections = ops.split(projections, self.kernel.shape[-1] // self.units, axis=-1)
        x_tilde, f_pre, r_pre = projections[:3]
        highway = projections[3] if len(projections) == 4 else sequences
        b_f, b_r = ops.split(ops.cast(self.bias, sequences.dtype), 2)
        f = ops.sigmoid(f_pre + b_f)
        r = ops.sigmoid(r_pre + b_r)
        u = (1.0 - f) * x_tilde  # c_t = f_t * c_{t-1} + u_t
        if initial_state is not None:
            c0 = initial_state[0] if tree.is_nested(initial_state) else initial_state
            c0 = ops.cast(c0, sequences.dtype)

        if mask is None:
            # Only c_t = f_t * c_{t-1} + u_t runs step by step; h for all steps at once.
            c = self.memory_loop(
                ops.concatenate([f, u], axis=-1),
                initial_state=None if initial_state is None else [c0],
            )
            if self.return_sequences:  # c: [batch, time, units]
                c_last = c[:, -1]
                output = r * self.activation(c) + (1.0 - r) * highway
            else:  # c: [batch, units], the last step's
                c_last = c
                output = r[:, -1] * self.activation(c_last) + (1.0 - r[:, -1]) * highway[:, -1]
        else:
            # Masked steps keep c and repeat the previous h: h is computed in the loop.
            output, _, c_last = self.masked_loop(
                ops.concatenate([f, u, r, highway], axis=-1),
                initial_state=None if initial_state is None else [ops.zeros_like(c0), c0],
                mask=mask,
            )
        if self.return_state:
            return output, c_last
        return output

    def compute_mask(self, sequences, mask=None):
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask, None]
        return output_mask

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, time = sequences_shape[0], sequences_shape[1]
        output_shape = (batch, time, self.units) if self.return_sequences else (batch, self.units)
        if self.return_state:
            return output_shape, (batch, self.units)
        return output_shape

    def get_config(self):
        config = {
            "units": self.units,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "activation": keras.activations.serialize(self.activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "unroll": self.unroll,
        }
        return {**super().get_config(), **config}
