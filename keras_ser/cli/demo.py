"""The main job on the embedded default corpus, with no download and no data of your own.

Writes the synthetic speech-like corpus (4 speakers, 4 emotions) and prints
its feature summary.
"""

from keras_ser.cli import corpus_flags, features


def define_flags(flag_values):
    corpus_flags.define(flag_values)


def main(flag_values, positional):
    corpus = corpus_flags.load(flag_values)
    print(corpus.summary())
    features.print_feature_summary(corpus)
    return 0
