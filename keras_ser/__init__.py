"""keras-ser: speech emotion recognition models for Keras 3 (Jiang, Fu & Tao 2019 CNN+SRU and baselines)."""

__version__ = "0.1.0"
