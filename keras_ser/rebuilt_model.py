"""The base of keras-ser's functional models: the config is the constructor's arguments.

keras-hub style: a model's `get_config()` holds the arguments its
`__init__` takes, not the functional graph; `from_config` calls the
constructor again, and the weights load by path. This module holds the two
pieces every such model shares: the standard entries of the config (dtype
policy, name, trainable) and `from_config`, which turns serialized entries
back into objects (the dtype policy, and the nested models named in
`NESTED_MODELS`, e.g. a task's backbone).
"""

import keras


class RebuiltModel(keras.Model):
    """A functional `keras.Model` whose config is its constructor's arguments.

    Subclasses build their graph in `__init__`, return
    `{**self.base_config(), <their arguments>}` from `get_config()`, and list
    in `NESTED_MODELS` the arguments that are Keras models (serialized in the
    config with `keras.saving.serialize_keras_object`).

    Example:

    >>> class Tiny(RebuiltModel):
    ...     def __init__(self, units=2, **kwargs):
    ...         inputs = keras.Input((3,))
    ...         super().__init__(inputs, keras.layers.Dense(units)(inputs), **kwargs)
    ...         self.units = units
    ...     def get_config(self):
    ...         return {**self.base_config(), "units": self.units}
    >>> Tiny.from_config(Tiny(units=4, name="tiny").get_config()).units
    4
    """

    NESTED_MODELS = ()

    def base_config(self):
        """The entries every config holds: the dtype policy (serialized), name and trainable."""
        return {
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in cls.NESTED_MODELS:
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
