"""The CNN+SRU family: Jiang, Fu & Tao (2019) and its two baselines, on the paper's log-Mel image.

Zoo entries:

- `cnn_sru` (`CNNSRUClassifier`): each of N segments of the feature image
  goes through the CNN (`TimeDistributed` backbone, AlexNet by default); the
  FC7 vectors are the steps of an SRU; a softmax on the last SRU output.
- `cnn` (`CNNClassifier`): the paper's CNN baseline, the CNN alone on one
  segment (the whole utterance image), softmax on FC7.
- `sru` (`SRUClassifier`): the paper's SRU baseline, the SRU alone over
  frame-level features of variable length (zero-padded frames masked).

The family in this folder:

- backbones: `alexnet.py` (the paper's Caffe AlexNet and torchvision's
  layout), `efficientnet_lite.py` (EfficientNet-Lite0), by name in
  `backbones.py` (`BACKBONES`);
- front ends: `preprocessor.py`, the log-Mel / delta / delta-delta image of
  `tf_pipeline` (`tf_pipeline.config.FeatureConfig`) as N resized segments
  (layout `segments`) or as frames (layout `frames`);
- tasks: `cnn_sru_classifier.py`, `cnn_classifier.py`, `sru_classifier.py`.

It ships no preset (no trained CNN+SRU reaches the speech encoders' figures
here, docs/results.md); the weight converters of its backbones are in
`keras_ser.weights`.

Example:

>>> from keras_ser.models import cnn_sru
>>> cnn_sru.CNNSRUClassifier.NAME, cnn_sru.CNNClassifier.SEGMENTED, cnn_sru.SRUClassifier.PREPROCESSOR.LAYOUT
('cnn_sru', 1, 'frames')
"""

# The task classes first, in the zoo's order (a class registers itself when defined).
from keras_ser.models.cnn_sru.cnn_sru_classifier import CNNSRUClassifier  # isort: skip
from keras_ser.models.cnn_sru.cnn_classifier import CNNClassifier  # isort: skip
from keras_ser.models.cnn_sru.sru_classifier import SRUClassifier  # isort: skip
from keras_ser.models.cnn_sru.alexnet import AlexNet
from keras_ser.models.cnn_sru.alexnet import alexnet_backbone
from keras_ser.models.cnn_sru.backbones import BACKBONES
from keras_ser.models.cnn_sru.backbones import get_backbone_factory
from keras_ser.models.cnn_sru.backbones import register_backbone
from keras_ser.models.cnn_sru.preprocessor import LogMelFramesPreprocessor
from keras_ser.models.cnn_sru.preprocessor import LogMelSegmentsPreprocessor

__all__ = [
    "AlexNet",
    "BACKBONES",
    "CNNClassifier",
    "CNNSRUClassifier",
    "LogMelFramesPreprocessor",
    "LogMelSegmentsPreprocessor",
    "SRUClassifier",
    "alexnet_backbone",
    "get_backbone_factory",
    "register_backbone",
]
