"""The backbones of keras-ser by name: the public namespace of every family's backbones.

Each backbone lives in its model family's folder (`keras_ser.models.*`);
this module gathers the public names:

- image backbones of the CNN+SRU family (`keras_ser.models.cnn_sru`):
  `AlexNet`, `alexnet_backbone`, EfficientNet-Lite0 (its module
  `keras_ser.models.cnn_sru.efficientnet_lite`, imported on first use), and
  `BACKBONES`, the factories `build_model(backbone=...)` looks up;
- speech encoders (`keras_ser.models.speech_encoders`): `SpeakerEncoder`
  (GE2E; `SPEECH_BACKBONES` for the `encoder_*` entries) and
  `SoundEffectsEncoder` (aisfx).

Example:

>>> from keras_ser import backbones
>>> sorted(backbones.BACKBONES), sorted(backbones.SPEECH_BACKBONES)
(['alexnet', 'efficientnet_lite0'], ['speaker_encoder'])
>>> factory = backbones.get_backbone_factory("alexnet")
>>> model = factory("caffe", None, 67, 0.5, filters=(8, 8, 8, 8, 8), fc_units=16)
>>> model.output.shape
(None, 16)
"""

from keras_ser.models.cnn_sru.alexnet import AlexNet
from keras_ser.models.cnn_sru.alexnet import alexnet_backbone
from keras_ser.models.cnn_sru.backbones import BACKBONES
from keras_ser.models.cnn_sru.backbones import get_backbone_factory
from keras_ser.models.cnn_sru.backbones import register_backbone
from keras_ser.models.speech_encoders.backbones import SPEECH_BACKBONES
from keras_ser.models.speech_encoders.backbones import get_speech_backbone_factory
from keras_ser.models.speech_encoders.sound_effects_encoder import SoundEffectsEncoder
from keras_ser.models.speech_encoders.sound_effects_encoder import sound_effects_encoder
from keras_ser.models.speech_encoders.speaker_encoder import SpeakerEncoder
from keras_ser.models.speech_encoders.speaker_encoder import speaker_encoder

__all__ = [
    "AlexNet",
    "BACKBONES",
    "SPEECH_BACKBONES",
    "SoundEffectsEncoder",
    "SpeakerEncoder",
    "alexnet_backbone",
    "get_backbone_factory",
    "get_speech_backbone_factory",
    "register_backbone",
    "sound_effects_encoder",
    "speaker_encoder",
]
