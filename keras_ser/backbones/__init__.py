"""Backbones of keras-ser: headless image -> feature-vector models, speech encoders, and their registries.

`BACKBONES` maps a backbone name to a factory
`factory(variant, weights, image_size, dropout, **kwargs) -> keras.Model`
(a functional model from `[image_size, image_size, 3]` images to a feature
vector `[batch, features]`). `keras_ser.build_model(backbone=name, ...)`
looks names up here; a new backbone is one entry (or one call to
`register_backbone`).

`SPEECH_BACKBONES` maps a speech-encoder name to a factory
`factory(variant, weights, **kwargs) -> keras.Model` (Mel frames in, frame
sequences and an embedding out); the zoo's `encoder_*` entries use it.

`SoundEffectsEncoder` / `sound_effects_encoder` (the aisfx sound-effects CNN,
normalised log-Mel frames in, per-block frame sequences and an embedding
out) is exported here but not registered in `SPEECH_BACKBONES`: its input
is not the Mel power frames the `encoder_*` entries feed.

Example:

>>> from keras_ser import backbones
>>> sorted(backbones.BACKBONES)
['alexnet', 'efficientnet_lite0']
>>> sorted(backbones.SPEECH_BACKBONES)
['speaker_encoder']
>>> factory = backbones.get_backbone_factory("alexnet")
>>> model = factory("caffe", None, 67, 0.5, filters=(8, 8, 8, 8, 8), fc_units=16)
>>> model.output.shape
(None, 16)
"""

from keras_ser.backbones.alexnet import AlexNet
from keras_ser.backbones.alexnet import alexnet_backbone
from keras_ser.backbones.speaker_encoder import SpeakerEncoder
from keras_ser.backbones.speaker_encoder import speaker_encoder
from keras_ser.backbones.sound_effects_encoder import SoundEffectsEncoder
from keras_ser.backbones.sound_effects_encoder import sound_effects_encoder


def _efficientnet_lite0(variant=None, weights=None, image_size=224, dropout=0.2, **kwargs):
    """EfficientNet-Lite0 (`keras_ser.backbones.efficientnet_lite.efficientnet_lite0`), imported on use."""
    from keras_ser.backbones.efficientnet_lite import efficientnet_lite0

    return efficientnet_lite0(
        variant=variant, weights=weights, image_size=image_size, dropout=dropout, **kwargs
    )


BACKBONES = {
    "alexnet": alexnet_backbone,
    "efficientnet_lite0": _efficientnet_lite0,
}


def _speaker_encoder(variant=None, weights=None, **kwargs):
    """The GE2E `SpeakerEncoder`; weights None = pretrained ("resemblyzer"), "random" = none."""
    if variant is not None:
        raise ValueError(f"The speaker encoder has no variants. Received: variant={variant!r}")
    if weights is None:
        weights = "resemblyzer"
    return speaker_encoder(None if weights == "random" else weights, **kwargs)


SPEECH_BACKBONES = {
    "speaker_encoder": _speaker_encoder,
}


def get_speech_backbone_factory(name):
    """Returns the speech-encoder factory registered as `name`; a `ValueError` lists the known names.

    Example:

    >>> encoder = get_speech_backbone_factory("speaker_encoder")(None, "random", units=8)
    >>> encoder.output["lstm_3"].shape
    (None, None, 8)
    """
    if name not in SPEECH_BACKBONES:
        raise ValueError(
            f"Unknown speech backbone. Expected one of {sorted(SPEECH_BACKBONES)}. Received: backbone={name!r}"
        )
    return SPEECH_BACKBONES[name]


def register_backbone(name, factory):
    """Adds a backbone factory to `BACKBONES` under `name`.

    Args:
        name: str. The name `build_model(backbone=...)` will accept.
        factory: callable `factory(variant, weights, image_size, dropout,
            **kwargs)` returning a functional `keras.Model` from images to
            a feature vector.

    Example:

    >>> register_backbone("alexnet_torchvision",
    ...     lambda variant, weights, image_size, dropout, **kw:
    ...         alexnet_backbone("torchvision", weights, image_size, dropout, **kw))
    >>> "alexnet_torchvision" in BACKBONES
    True
    >>> del BACKBONES["alexnet_torchvision"]
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string. Received: name={name!r}")
    if not callable(factory):
        raise ValueError(f"factory must be callable. Received: factory={factory!r}")
    BACKBONES[name] = factory


def get_backbone_factory(name):
    """Returns the factory registered as `name`; a `ValueError` lists the known names.

    Example:

    >>> get_backbone_factory("alexnet") is alexnet_backbone
    True
    """
    if name not in BACKBONES:
        raise ValueError(
            f"Unknown backbone. Expected one of {sorted(BACKBONES)}. Received: backbone={name!r}"
        )
    return BACKBONES[name]


__all__ = [
    "AlexNet",
    "BACKBONES",
    "SPEECH_BACKBONES",
    "SpeakerEncoder",
    "alexnet_backbone",
    "get_backbone_factory",
    "get_speech_backbone_factory",
    "register_backbone",
    "speaker_encoder",
    "SoundEffectsEncoder",
    "sound_effects_encoder",
]
