"""The model zoo: one folder per model family, and the registry their task classes fill.

- `keras_ser.models.cnn_sru`: the paper's CNN+SRU and its CNN and SRU
  baselines on the log-Mel image (`cnn_sru`, `cnn`, `sru`).
- `keras_ser.models.speech_encoders`: pretrained speech encoders, frozen,
  with statistics heads (`encoder_stats`, `encoder_sru`, `sfx_stats`,
  `fusion_stats`).

Each family holds its backbones, its front ends (the TensorFlow work from a
waveform to its input, `Preprocessor` subclasses), its task classes and its
presets. A task class registers itself when defined
(`keras_ser.models.registry`); `build_model` and `list_models` read the
registry, as do the preprocessor, the training configuration, the run
reports, the TFLite export and the command line. A new family is a new
folder (or any module that defines a `SERTask` subclass with a `NAME`): no
other file changes.

Example:

>>> import keras_ser
>>> list(keras_ser.models.list_models())[:3]
['cnn_sru', 'cnn', 'sru']
"""

from keras_ser.models import registry
from keras_ser.models.cnn_sru import CNNClassifier
from keras_ser.models.cnn_sru import CNNSRUClassifier
from keras_ser.models.cnn_sru import SRUClassifier
from keras_ser.models.preprocessor import Preprocessor
from keras_ser.models.registry import build_model
from keras_ser.models.registry import list_models
from keras_ser.models.speech_encoders import EncoderSRUClassifier
from keras_ser.models.speech_encoders import EncoderStatsClassifier
from keras_ser.models.speech_encoders import FusionStatsClassifier
from keras_ser.models.speech_encoders import SoundEffectsStatsClassifier
from keras_ser.models.task import SERTask

__all__ = [
    "CNNClassifier",
    "CNNSRUClassifier",
    "EncoderSRUClassifier",
    "EncoderStatsClassifier",
    "FusionStatsClassifier",
    "Preprocessor",
    "SERTask",
    "SRUClassifier",
    "SoundEffectsStatsClassifier",
    "build_model",
    "list_models",
    "registry",
]
