"""Summarises a corpus and its feature images.

Reads the corpus, computes the 3-channel log-Mel feature image of every
utterance with tf_pipeline (the same code the models and the serving
signatures use), and prints the corpus's classes and speakers, the frames
per utterance, and the per-channel statistics.

Example:
    keras-ser features --corpus=emodb --data_dir=/data/emodb/wav
"""

import time

import numpy as np

from keras_ser_cli import corpus_flags


def define_flags(flag_values):
    corpus_flags.define(flag_values)


def main(flag_values, positional):
    corpus = corpus_flags.load(flag_values)
    print(corpus.summary())
    print_feature_summary(corpus)
    return 0


def print_feature_summary(corpus):
    """Computes every feature image and prints frames and channel statistics."""
    import tf_pipeline
    from tf_pipeline.normalization import channel_stats

    config = tf_pipeline.FeatureConfig()
    start = time.perf_counter()
    frames, images = [], []
    for image, count, _ in tf_pipeline.feature_images(corpus):
        frames.append(int(count))
        images.append(image.numpy())
    elapsed = time.perf_counter() - start
    stats = channel_stats(images)
    frames = np.array(frames)
    print(f"feature image per utterance: [{config.n_mels} Mel bands, frames, 3 channels "
          f"(log-Mel, delta, delta-delta)]; {config.win_length / config.sample_rate * 1000:.0f} ms Hamming window, "
          f"{config.hop_length / config.sample_rate * 1000:.0f} ms hop")
    print(f"frames per utterance: min {frames.min()}, median {int(np.median(frames))}, max {frames.max()} "
          f"(total {frames.sum() / 100:.0f} s of audio)")
    for name, mean, std in zip(("log-Mel", "delta", "delta-delta"), stats.mean, stats.std):
        print(f"  {name:12s} mean {mean:9.4f}  std {std:8.4f}")
    print(f"computed {len(frames)} feature images in {elapsed:.1f} s ({len(frames) / elapsed:.0f} utterances/s)")
