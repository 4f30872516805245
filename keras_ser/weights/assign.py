"""All-or-nothing assignment of named arrays to a model's layers (the converted-weight loaders share it)."""


def assign_checked(model, layer_names, arrays, what, problems=()):
    """Assigns `arrays["<layer>/<variable>"]` to the variables of `layer_names`, or nothing at all.

    Every variable of the named layers needs an array of its shape, and
    every array a variable; otherwise a `ValueError` names each problem and
    no variable changes.

    Args:
        model: a Keras model.
        layer_names: the layers whose variables are assigned.
        arrays: dict `"layer/variable" -> array`.
        what: str, how the error message names the weights (e.g.
            `"Speaker-encoder weights from x.npz"`).
        problems: problems found earlier (e.g. a wrong file format), reported
            with the others.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="dense")])
    >>> assign_checked(model, ["dense"], {"dense/kernel": np.ones((2, 1)), "dense/bias": np.zeros(1)}, "weights")
    >>> model.get_layer("dense").kernel.numpy().ravel().tolist()
    [1.0, 1.0]
    """
    problems = list(problems)
    pending, expected = [], set()
    for layer_name in layer_names:
        for variable in model.get_layer(layer_name).weights:
            key = f"{layer_name}/{variable.name}"
            expected.add(key)
            if key not in arrays:
                problems.append(f"{key}: missing")
            elif tuple(arrays[key].shape) != tuple(variable.shape):
                problems.append(f"{key}: shape {tuple(arrays[key].shape)}, expected {tuple(variable.shape)}")
            else:
                pending.append((variable, arrays[key]))
    extra = sorted(set(arrays) - expected)
    if extra:
        problems.append(f"unexpected arrays {extra}")
    if problems:
        raise ValueError(f"{what} do not fit this encoder: " + "; ".join(problems))
    for variable, value in pending:
        variable.assign(value)
