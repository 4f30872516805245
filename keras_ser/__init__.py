"""keras-ser: speech emotion recognition models for Keras 3 (Jiang, Fu & Tao 2019 CNN+SRU and baselines).

The models live in one folder per family (`keras_ser.models`), each
registered by its class; `build_model` and `list_models` read that registry.
The model code uses `keras.ops` only (no TensorFlow import), so every model
runs on the TensorFlow, JAX and PyTorch backends.

Example:

>>> import keras_ser
>>> list(keras_ser.list_models())
['cnn_sru', 'cnn', 'sru', 'encoder_stats', 'encoder_sru', 'sfx_stats', 'fusion_stats']
>>> model = keras_ser.build_model(n_segments=3)                     # doctest: +SKIP
>>> keras_ser.set_channel_stats(model, train_mean, train_std)       # doctest: +SKIP
>>> model.fit(train_ds, validation_data=val_ds, epochs=30)          # doctest: +SKIP
"""

from keras_ser import backbones
from keras_ser import layers
from keras_ser import metrics
from keras_ser import models
from keras_ser import weights
from keras_ser.adaptation import adapt
from keras_ser.layers.standardization import get_channel_stats
from keras_ser.layers.standardization import set_channel_stats
from keras_ser.models import CNNClassifier
from keras_ser.models import CNNSRUClassifier
from keras_ser.models import EncoderSRUClassifier
from keras_ser.models import EncoderStatsClassifier
from keras_ser.models import FusionStatsClassifier
from keras_ser.models import SERTask
from keras_ser.models import SoundEffectsStatsClassifier
from keras_ser.models import SRUClassifier
from keras_ser.models import build_model
from keras_ser.models import list_models
from keras_ser.presets import from_preset
from keras_ser.presets import list_presets
from keras_ser.timeline import predict_timeline
from tf_pipeline.config import MAX_SEGMENTS

__version__ = "0.1.0"

__all__ = [
    "CNNClassifier",
    "CNNSRUClassifier",
    "EncoderSRUClassifier",
    "EncoderStatsClassifier",
    "FusionStatsClassifier",
    "MAX_SEGMENTS",
    "SERTask",
    "SRUClassifier",
    "SoundEffectsStatsClassifier",
    "adapt",
    "backbones",
    "build_model",
    "from_preset",
    "get_channel_stats",
    "layers",
    "list_models",
    "list_presets",
    "metrics",
    "models",
    "predict_timeline",
    "set_channel_stats",
    "weights",
]
