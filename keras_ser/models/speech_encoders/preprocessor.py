"""The front ends of the speech-encoder family: each encoder's own frames, or both at once.

- `MelFramesPreprocessor` (layout `mel_frames`; `encoder_stats`,
  `encoder_sru`): the GE2E encoder's Mel power frames (`mel_power`),
  `[B, T, 40]`, padded with -1.
- `SoundEffectsMelPreprocessor` (layout `sfx_mel`; `sfx_stats`): the aisfx
  CNN's log-Mel (`sound_effects_mel`), `[B, T, 96]`, padded with -1.
- `FusionPreprocessor` (layout `fusion`; `fusion_stats`): both, as a dict
  keyed by the model's input names (`fusion_inputs`).

Their recipes train on features extracted once, so none has training
levers. The TensorFlow modules are imported inside the methods.
"""

from keras_ser.models.preprocessor import Preprocessor
from keras_ser.models.speech_encoders.config import FusionFeatureConfig
from keras_ser.models.speech_encoders.config import MelFramesConfig
from keras_ser.models.speech_encoders.config import SoundEffectsMelConfig


class MelFramesPreprocessor(Preprocessor):
    """Mel power frames of the GE2E speaker encoder: `[B, T, n_mels]`, padded with -1.

    Args:
        feature_config: `MelFramesConfig`, its dict, or None.

    Example:

    >>> import numpy as np
    >>> MelFramesPreprocessor()(np.random.uniform(-0.1, 0.1, 16000).astype("float32")).shape
    (1, 101, 40)
    """

    LAYOUT = "mel_frames"
    CONFIG_CLASS = MelFramesConfig
    REJECTS_SILENCE = True

    def batch(self, waveforms, num_samples):
        from keras_ser.models.speech_encoders import mel_power

        return mel_power.batch_mel_frames(waveforms, num_samples, self.feature_config)[0]

    def dataset(self, corpus, indices=None, batch_size=30, training=False, seed=0, augment=None,
                speaker_stats=None, label_mode="int", mixup_alpha=0.0, cache=True):
        """`mel_power.mel_frames_dataset`: frames per utterance, cached, padded per batch."""
        from keras_ser.models.speech_encoders import mel_power

        self.check_levers(augment, speaker_stats, label_mode, mixup_alpha)
        return mel_power.mel_frames_dataset(corpus, indices, self.feature_config, batch_size=batch_size,
                                            training=training, seed=seed, cache=cache)

    def tflite_batch_function(self):
        """`mel_power.tflite_mel_frames`: the spectrum as a DFT matrix product (TFLite's FFT takes 2^k only)."""
        from keras_ser.models.speech_encoders import mel_power

        config = self.feature_config
        return lambda waveform, num_samples: mel_power.tflite_mel_frames(waveform, num_samples, config)


class SoundEffectsMelPreprocessor(Preprocessor):
    """The sound-effects CNN's log-Mel: `[B, T, 96]`, padded with -1.

    Args:
        feature_config: `SoundEffectsMelConfig`, its dict, or None.

    Example:

    >>> import numpy as np
    >>> SoundEffectsMelPreprocessor()(np.random.uniform(-0.1, 0.1, 16000).astype("float32")).shape
    (1, 44, 96)
    """

    LAYOUT = "sfx_mel"
    CONFIG_CLASS = SoundEffectsMelConfig

    def batch(self, waveforms, num_samples):
        from keras_ser.models.speech_encoders import sound_effects_mel

        return sound_effects_mel.batch_sfx_mel(waveforms, num_samples, self.feature_config)[0]


class FusionPreprocessor(Preprocessor):
    """Both encoders' inputs of the same audio: `{"mel_frames": [B, T, 40], "sfx_mel": [B, T', 96]}`.

    Args:
        feature_config: `FusionFeatureConfig`, its dict, or None.

    Example:

    >>> import numpy as np
    >>> inputs = FusionPreprocessor()(np.random.uniform(-0.1, 0.1, 16000).astype("float32"))
    >>> inputs["mel_frames"].shape, inputs["sfx_mel"].shape
    ((1, 101, 40), (1, 44, 96))
    """

    LAYOUT = "fusion"
    CONFIG_CLASS = FusionFeatureConfig
    REJECTS_SILENCE = True

    def batch(self, waveforms, num_samples):
        from keras_ser.models.speech_encoders import fusion_inputs

        return fusion_inputs.batch_fusion_inputs(waveforms, num_samples, self.feature_config)
