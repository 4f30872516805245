"""Training one final model on every speaker of a corpus."""

import numpy as np

from keras_ser.training.config import TrainConfig


def train_final(corpus, config, feature_config=None, log_dir=None, verbose=1, cache_dir=None):
    """Trains one model on all speakers (no test speaker), ready to save or export.

    With `config.speaker_norm` (speech-encoder entries only) every training
    speaker is standardised with its own statistics and the model is left
    adaptable: `keras_ser.adapt(model, waveforms)`, the `serve_speaker`
    signature or `keras-ser predict --adapt_speaker` give it a speaker's
    statistics at inference.

    With `config.validation="next"` the last speaker (in sorted order) is held
    out for early stopping; otherwise every utterance trains for
    `config.epochs` (a good value is the best epoch of a LOSO run of the same
    configuration). Feature statistics come from the training utterances.
    On corpora joined by `tf_pipeline.corpora.combine`, the `probe` recipe
    chooses its `C` by leaving one corpus out at a time (as a
    leave-one-corpus-out run of the same configuration does).

    Args:
        corpus: a `tf_pipeline.Corpus`.
        config: a `TrainConfig` or its dict.
        feature_config: the feature config (or its dict); None: the model's
            defaults.
        log_dir: optional folder of TensorBoard logs.
        verbose: Keras progress output.
        cache_dir: optional feature-store folder of the recipes on frozen
            features (`keras_ser.training.frozen.corpus_features`): the
            features, and those of any channel copies, of a LOSO run with
            the same `--feature_cache` are read back instead of extracted.

    Returns:
        A `TrainResult`; `result.model` carries class names, the feature
        configuration and the statistics.

    Example:

    >>> result = train_final(corpus, TrainConfig(epochs=20))     # doctest: +SKIP
    >>> result.model.save("emodb_cnn_sru.keras")                 # doctest: +SKIP
    """
    import keras

    from keras_ser.training import distribute, recipes
    from keras_ser.training.loso import feature_config_for
    from keras_ser.training.loso import make_fold_data
    from tf_pipeline.folds import Fold

    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_dict(config)
    feature_config = feature_config_for(config, feature_config)
    distribute.get_strategy(config.strategy)  # before any TensorFlow op (multi-worker needs it)
    speakers = corpus.speaker_ids
    if config.validation == "next":
        held = corpus.speakers[-1]
        fold = Fold(None, np.flatnonzero(speakers != held), np.zeros(0, np.int64), held, np.flatnonzero(speakers == held))
    else:
        # Several corpora: the probe's C is chosen by leaving one corpus out, as in their evaluation.
        fold = Fold(None, np.arange(len(corpus)), np.zeros(0, np.int64),
                    protocol="loco" if len(corpus.corpora) > 1 else "loso")
    keras.utils.set_random_seed(config.seed)
    if config.speaker_norm and not config.uses_encoder:
        raise ValueError("speaker_norm needs each test speaker's audio at inference; a final CNN or SRU model for "
                         "serving cannot use it. Train the final model without speaker_norm (the speech-encoder "
                         "entries can: their final model is adaptable, see keras_ser.adapt).")
    data = make_fold_data(corpus, fold, config, feature_config, cache_dir=cache_dir)
    return recipes.train(config, data, feature_config=feature_config, log_dir=log_dir, verbose=verbose)
