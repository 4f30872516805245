"""The speech backbones of the `encoder_stats` and `encoder_sru` entries, by name: `SPEECH_BACKBONES`.

`SPEECH_BACKBONES` maps a speech-encoder name to a factory
`factory(variant, weights, **kwargs) -> keras.Model` (Mel frames in, frame
sequences and an embedding out). The sound-effects CNN
(`SoundEffectsEncoder`) is not in it: its input is not the Mel power
frames those entries feed; `sfx_stats` and `fusion_stats` build it
themselves.

Example:

>>> sorted(SPEECH_BACKBONES)
['speaker_encoder']
>>> encoder = get_speech_backbone_factory("speaker_encoder")(None, "random", units=8)
>>> encoder.output["lstm_3"].shape
(None, None, 8)
"""

from keras_ser.models.speech_encoders.speaker_encoder import speaker_encoder


def speaker_encoder_backbone(variant=None, weights=None, **kwargs):
    """The GE2E `SpeakerEncoder`; weights None = pretrained ("resemblyzer"), "random" = none."""
    if variant is not None:
        raise ValueError(f"The speaker encoder has no variants. Received: variant={variant!r}")
    if weights is None:
        weights = "resemblyzer"
    return speaker_encoder(None if weights == "random" else weights, **kwargs)


SPEECH_BACKBONES = {
    "speaker_encoder": speaker_encoder_backbone,
}


def get_speech_backbone_factory(name):
    """Returns the speech-encoder factory registered as `name`; a `ValueError` lists the known names."""
    if name not in SPEECH_BACKBONES:
        raise ValueError(
            f"Unknown speech backbone. Expected one of {sorted(SPEECH_BACKBONES)}. Received: backbone={name!r}"
        )
    return SPEECH_BACKBONES[name]


def build_speech_backbone(name, variant, weights, backbone_kwargs=None):
    """The speech backbone `name` built by its factory."""
    return get_speech_backbone_factory(name)(variant, weights, **(backbone_kwargs or {}))
