"""Layers of keras-ser: the SRU, local response normalisation, channel standardisation."""

from keras_ser.layers.lrn import LocalResponseNormalization
from keras_ser.layers.sru import SRU
from keras_ser.layers.sru import SRUCell
from keras_ser.layers.standardization import ChannelStandardization
from keras_ser.layers.standardization import get_channel_stats
from keras_ser.layers.standardization import set_channel_stats

__all__ = [
    "ChannelStandardization",
    "LocalResponseNormalization",
    "SRU",
    "SRUCell",
    "get_channel_stats",
    "set_channel_stats",
]
