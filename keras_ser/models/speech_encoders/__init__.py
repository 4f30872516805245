"""The speech-encoder family: pretrained speech networks, frozen, their statistics and a softmax.

Zoo entries (trained by the `probe` and `frozen` recipes on features
extracted once, `keras_ser.training.frozen`):

- `encoder_stats` (`EncoderStatsClassifier`): the GE2E speaker encoder,
  mean and standard deviation over time of each LSTM layer's frames.
- `encoder_sru` (`EncoderSRUClassifier`): the encoder's frames cut into N
  segments, mean and std of each, the paper's SRU over the segments.
- `sfx_stats` (`SoundEffectsStatsClassifier`): the aisfx sound-effects CNN,
  mean and std of its top block.
- `fusion_stats` (`FusionStatsClassifier`): both encoders side by side,
  their statistics concatenated.

The family in this folder:

- backbones: `speaker_encoder.py` (GE2E, `SpeakerEncoder`; by name in
  `backbones.py`), `sound_effects_encoder.py` (aisfx, `SoundEffectsEncoder`);
  their weights ship in `keras_ser/weights/data/` with their converters in
  `keras_ser.weights`;
- front ends, in TensorFlow ops: `mel_power.py` (the GE2E encoder's Mel
  power frames), `sound_effects_mel.py` (the aisfx CNN's log-Mel),
  `fusion_inputs.py` (both), their settings in `config.py`
  (`MelFramesConfig`, `SoundEffectsMelConfig`, `FusionFeatureConfig`), and
  the preprocessors that use them (`preprocessor.py`);
- tasks: `encoder_task.py` (the shared base and parts),
  `encoder_stats_classifier.py`, `encoder_sru_classifier.py`,
  `sound_effects_stats_classifier.py`, `fusion_stats_classifier.py`;
- presets: `encoder_stats_emodb`, `encoder_stats_multilingual`,
  `encoder_stats_multilingual_adaptive` and `fusion_stats_emodb` (`keras_ser.list_presets()`, data in
  `keras_ser/presets/`).

The TensorFlow front-end modules are not imported here (the models build
and run without TensorFlow); import them by path, e.g.
`from keras_ser.models.speech_encoders.mel_power import batch_mel_frames`.

Example:

>>> from keras_ser.models import speech_encoders
>>> speech_encoders.FusionStatsClassifier.PREPROCESSOR.LAYOUT, speech_encoders.MelFramesConfig().n_mels
('fusion', 40)
"""

# The task classes first, in the zoo's order (a class registers itself when defined).
from keras_ser.models.speech_encoders.encoder_stats_classifier import EncoderStatsClassifier  # isort: skip
from keras_ser.models.speech_encoders.encoder_sru_classifier import EncoderSRUClassifier  # isort: skip
from keras_ser.models.speech_encoders.sound_effects_stats_classifier import SoundEffectsStatsClassifier  # isort: skip
from keras_ser.models.speech_encoders.fusion_stats_classifier import FusionStatsClassifier  # isort: skip
from keras_ser.models.speech_encoders.backbones import SPEECH_BACKBONES
from keras_ser.models.speech_encoders.backbones import get_speech_backbone_factory
from keras_ser.models.speech_encoders.config import FusionFeatureConfig
from keras_ser.models.speech_encoders.config import MelFramesConfig
from keras_ser.models.speech_encoders.config import SoundEffectsMelConfig
from keras_ser.models.speech_encoders.encoder_task import EncoderTask
from keras_ser.models.speech_encoders.encoder_task import StatisticsHeadTask
from keras_ser.models.speech_encoders.preprocessor import FusionPreprocessor
from keras_ser.models.speech_encoders.preprocessor import MelFramesPreprocessor
from keras_ser.models.speech_encoders.preprocessor import SoundEffectsMelPreprocessor
from keras_ser.models.speech_encoders.sound_effects_encoder import SoundEffectsEncoder
from keras_ser.models.speech_encoders.sound_effects_encoder import sound_effects_encoder
from keras_ser.models.speech_encoders.speaker_encoder import SpeakerEncoder
from keras_ser.models.speech_encoders.speaker_encoder import speaker_encoder

__all__ = [
    "EncoderSRUClassifier",
    "EncoderStatsClassifier",
    "EncoderTask",
    "FusionFeatureConfig",
    "FusionPreprocessor",
    "FusionStatsClassifier",
    "MelFramesConfig",
    "MelFramesPreprocessor",
    "SPEECH_BACKBONES",
    "SoundEffectsEncoder",
    "SoundEffectsMelConfig",
    "SoundEffectsMelPreprocessor",
    "SoundEffectsStatsClassifier",
    "SpeakerEncoder",
    "StatisticsHeadTask",
    "get_speech_backbone_factory",
    "sound_effects_encoder",
    "speaker_encoder",
]
