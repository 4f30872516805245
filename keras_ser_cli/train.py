"""Trains one final model on every speaker of a corpus and saves it as .keras.

There is no test speaker: evaluate the same configuration with `keras-ser
loso` first, and use its best epoch for --epochs (or --validation=next to
hold out the last speaker for early stopping). The saved model carries its
class names, feature configuration and the training statistics.

Example:
    keras-ser train --corpus=emodb --data_dir=/data/emodb/wav --epochs=20 --output=emodb.keras
"""

import os

from keras_ser_cli import corpus_flags, train_flags
from keras_ser_cli.usage import UsageError


def define_flags(flag_values):
    from absl import flags

    corpus_flags.define(flag_values, default_corpus="emodb")
    train_flags.define(flag_values)
    train_flags.define_feature_cache(flag_values)
    flags.DEFINE_string("output", None, "Where to save the model (.keras). Default: <corpus>_<model>.keras.",
                        flag_values=flag_values)
    flags.DEFINE_enum("verbose", "1", ["0", "1", "2"], "Keras output: 1 progress bars, 2 a line per epoch, 0 none.",
                      flag_values=flag_values)


def main(flag_values, positional):
    from keras_ser.training import distribute, train_final

    config = train_flags.config_from(flag_values)
    output = flag_values.output
    if output and not output.endswith(".keras"):
        raise UsageError(f"--output must end in .keras. Received: --output={output}")
    corpus = corpus_flags.load(flag_values)
    output = output or f"{corpus.name}_{config.model}.keras"
    print(corpus.summary())
    result = train_final(corpus, config, feature_config=train_flags.feature_config_from(flag_values, config),
                         verbose=int(flag_values.verbose), cache_dir=flag_values.feature_cache)
    if distribute.is_chief():
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        result.model.save(output)
        print(f"saved {output} (epochs run: {result.epochs_run})")
    return 0
