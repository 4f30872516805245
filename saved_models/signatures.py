"""The names of the signatures an exported keras-ser SavedModel serves.

- `serving_default` (`SERVING_DEFAULT`): `waveform` float32 `[batch,
  samples]` (mono, the model's sample rate, zero-padded) and `num_samples`
  int32 `[batch]`. The TFLite file has one signature under the same name.
- `serve_wav` (`SERVE_WAV`): `audio_bytes` string `[batch]`, one 16-bit PCM
  WAV file per row (any supported rate, mono or stereo).
- `serve_speaker` (`SERVE_SPEAKER`): `audio_bytes` of one speaker's files,
  normalised with that speaker's statistics; only in exports of models
  trained with per-speaker normalisation.

Every signature returns the same outputs (`saved_models.OUTPUTS`). This
module imports nothing, so clients use the names without TensorFlow.

Example:

>>> from saved_models.signatures import SERVE_WAV, SIGNATURES
>>> SERVE_WAV in SIGNATURES
True
"""

SERVING_DEFAULT = "serving_default"
SERVE_WAV = "serve_wav"
SERVE_SPEAKER = "serve_speaker"
# The signatures every export has.
SIGNATURES = (SERVING_DEFAULT, SERVE_WAV)
