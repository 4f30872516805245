"""The two inputs of the fused speech-encoder model, from one batch of waveforms.

`keras_ser`'s `fusion_stats` entry runs two pretrained encoders side by side,
each on its own front end: the GE2E speaker encoder on Mel power frames
(`mel_power`) and the sound-effects CNN on its log-Mel
(`sound_effects_mel`). `FusionFeatureConfig` holds both settings
and `batch_fusion_inputs` computes both from the same waveforms, as a dict
keyed by the model's input names, after the speech front end
(`FusionFeatureConfig.front_end`) when the config holds one.
"""

import tensorflow as tf

from keras_ser.models.speech_encoders.config import FusionFeatureConfig
from keras_ser.models.speech_encoders.mel_power import batch_mel_frames
from keras_ser.models.speech_encoders.mel_power import check_rows
from keras_ser.models.speech_encoders.sound_effects_mel import batch_sfx_mel
from tf_pipeline.features import check_waveform
from tf_pipeline.front_end import apply_front_end

INPUT_NAMES = ("mel_frames", "sfx_mel")


def batch_fusion_inputs(waveforms, num_samples, config=None):
    """Both encoders' inputs of zero-padded waveforms: `{"mel_frames": ..., "sfx_mel": ...}`.

    Args:
        waveforms: float32 `[batch, max_samples]` at `config.sample_rate`.
        num_samples: int `[batch]`, the true length of each row.
        config: `FusionFeatureConfig` or its dict.

    Returns:
        dict of float32 tensors: `"mel_frames"` `[batch, frames, 40]`
        (`mel_power.batch_mel_frames`) and `"sfx_mel"` `[batch, frames',
        96]` (`sound_effects_mel.batch_sfx_mel`), each padded with -1.

    Raises:
        ValueError (eagerly) or InvalidArgumentError (in a graph): what
        either front end refuses (too short, NaN or Inf, digital silence).

    Example:

    >>> import tensorflow as tf
    >>> inputs = batch_fusion_inputs(tf.random.uniform([2, 16000], -0.1, 0.1), [16000, 8000])
    >>> inputs["mel_frames"].shape, inputs["sfx_mel"].shape
    (TensorShape([2, 101, 40]), TensorShape([2, 44, 96]))
    """
    config = FusionFeatureConfig.coerce(config, "config")
    if config.front_end is not None:
        # Once, on the shared waveforms (the sub-configs hold no front end).
        waveforms = check_waveform(waveforms, "waveforms")
        num_samples = tf.cast(num_samples, tf.int32)
        waveforms = waveforms * tf.sequence_mask(num_samples, tf.shape(waveforms)[1], dtype=tf.float32)
        checks = check_rows(waveforms, num_samples, config.mel_frames, "every waveform of the batch")
        with tf.control_dependencies(checks):
            waveforms = tf.identity(waveforms)
        waveforms, num_samples = apply_front_end(waveforms, num_samples, config.front_end, config.sample_rate,
                                                 config.min_samples)
    return {
        "mel_frames": batch_mel_frames(waveforms, num_samples, config.mel_frames)[0],
        "sfx_mel": batch_sfx_mel(waveforms, num_samples, config.sfx_mel)[0],
    }
