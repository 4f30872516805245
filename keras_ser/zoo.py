"""The zoo's former module path, kept only for `experiments/reproduce.py` until that runner reads the registry.

The zoo is `keras_ser.models` (one folder per family, `keras_ser.models.registry`);
`keras_ser.build_model` and `keras_ser.list_models` are its entry points. This
module answers the one name the experiment runner still imports from here,
`ENCODER_MODELS` (the models trained on features extracted once, read from the
registry), and the two entry points. Nothing in the packages imports it; delete
it once `experiments/` stops importing it.
"""

from keras_ser.models.registry import build_model
from keras_ser.models.registry import list_models
from keras_ser.training.config import encoder_models

__all__ = ["ENCODER_MODELS", "build_model", "list_models"]


def __getattr__(name):
    if name == "ENCODER_MODELS":
        return tuple(encoder_models())
    raise AttributeError(f"module 'keras_ser.zoo' has no attribute {name!r}")
