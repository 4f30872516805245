"""Training recipes: `end_to_end` and the paper's two stages, and `train`, which runs any recipe.

The recipes on frozen encoders' features (`probe`, `frozen`) are in
`keras_ser.training.frozen`; what they all share is in
`keras_ser.training.fitting`.

A recipe takes a `TrainConfig` and `FoldData` (datasets of one fold) and
returns a trained model plus what happened (epochs run, best epoch, history).
Early stopping and the choice of the best epoch only ever look at the
validation speaker; with `validation="none"` the weights after the last
epoch are kept.
"""

import dataclasses

import keras

from keras_ser.layers.standardization import ChannelStandardization
from keras_ser.layers.standardization import set_channel_stats
from keras_ser.metrics import UnweightedAccuracy
from keras_ser.training import distribute
from keras_ser.training import frozen
from keras_ser.training import multi_worker
from keras_ser.training.fitting import FoldData  # noqa: F401  (re-exported: the recipes' argument)
from keras_ser.training.fitting import TrainResult
from keras_ser.training.fitting import build_for
from keras_ser.training.fitting import build_model_for_config  # noqa: F401  (re-exported)
from keras_ser.training.fitting import fit_callbacks
from keras_ser.training.fitting import history_dict
from keras_ser.training.fitting import loss_and_metrics
from keras_ser.training.fitting import precision_policy
from keras_ser.training.fitting import summarise


def train_end_to_end(config, data, feature_config=None, log_dir=None, verbose=1):
    """`model.fit` of the whole network (Adam at `config.learning_rate`).

    Under `strategy="multi_worker"` a custom distributed loop replaces
    `model.fit` (`keras_ser.training.multi_worker`), early stopping on the
    validation loss.

    Returns:
        A `TrainResult`.
    """
    strategy = distribute.get_strategy(config.strategy)
    with precision_policy(config.mixed_precision), strategy.scope():
        model = build_for(config, data, feature_config)
        loss, metrics = loss_and_metrics(config, len(data.class_names))
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate), loss=loss,
                      metrics=metrics, jit_compile=config.jit_compile)
    validation = data.dataset("validation", training=False) if data.has_validation else None
    if config.strategy == "multi_worker":
        # Keras 3's fit does not run under MultiWorkerMirroredStrategy (see multi_worker.py).
        history = multi_worker.fit(model, strategy, data.dataset("train", training=True), config.epochs,
                                   validation=validation, patience=config.patience, verbose=verbose)
    else:
        history = model.fit(
            data.dataset("train", training=True),
            validation_data=validation,
            epochs=config.epochs,
            shuffle=False,  # the dataset shuffles itself, reshuffled every epoch
            callbacks=fit_callbacks(config, data, log_dir, "end_to_end"),
            verbose=verbose,
        )
    epochs_run, best = summarise(history, config, data)
    return TrainResult(model, {"end_to_end": epochs_run}, {"end_to_end": best}, {"end_to_end": history_dict(history)})


def _segment_dataset(dataset, num_segments, batch_size, shuffle, seed):
    """`[B, N, H, W, C]` utterance batches -> batches of single segments, each
    labelled with its utterance's emotion (stage 1 of the paper).

    `num_segments` is the total number of segments (utterances x N).
    """
    import tensorflow as tf

    from tf_pipeline.dataset import map_without_autograph

    def flatten(segments, labels):
        shape = tf.shape(segments)
        images = tf.reshape(segments, tf.concat([[shape[0] * shape[1]], shape[2:]], 0))
        return images, tf.repeat(labels, shape[1], axis=0)

    segments = map_without_autograph(dataset, flatten).unbatch()
    if shuffle:
        segments = segments.shuffle(2048, seed=seed, reshuffle_each_iteration=True)
    batches = -(-num_segments // batch_size)
    segments = segments.batch(batch_size).apply(tf.data.experimental.assert_cardinality(batches))
    return segments.prefetch(tf.data.AUTOTUNE)


def train_paper(config, data, feature_config=None, log_dir=None, verbose=1):
    """The paper's two stages.

    Stage 1 fine-tunes the CNN on single segments labelled with their
    utterance's emotion (a softmax on the CNN features; SGD at
    `config.stage1_learning_rate`, momentum `config.stage1_momentum`).
    Stage 2 extracts the CNN features (FC7 for AlexNet) of every segment
    once, in inference mode, and trains the SRU and softmax on those
    sequences (Adam at `config.stage2_learning_rate`, dropout
    `config.stage2_dropout` on those features). The two trained parts
    are then one `CNNSRUClassifier`, evaluated end to end.

    With `config.stage1_epochs=0` stage 1 is skipped: the backbone keeps
    the weights it was built with (frozen; ImageNet weights, or random ones
    as a control) and only the SRU + softmax are trained on its features.

    Returns:
        A `TrainResult` with `epochs_run` and `best_epoch` per stage.
    """
    strategy = distribute.get_strategy(config.strategy)
    num_classes = len(data.class_names)
    with precision_policy(config.mixed_precision), strategy.scope():
        model = build_for(config, data, feature_config)
        backbone = model.backbone
        # === Stage 1 model: one segment -> CNN -> softmax ===
        image = keras.Input(shape=tuple(backbone.input.shape[1:]), name="segment")
        standardize = ChannelStandardization(name="standardize")
        stage1 = keras.Model(
            image,
            keras.layers.Dense(num_classes, activation="softmax", name="segment_predictions")(
                backbone(standardize(image))
            ),
            name="stage1_cnn",
        )
        set_channel_stats(stage1, *data.channel_stats)
        loss, metrics = loss_and_metrics(config, num_classes)
        stage1.compile(
            optimizer=keras.optimizers.SGD(config.stage1_learning_rate, momentum=config.stage1_momentum),
            loss=loss,
            metrics=metrics[:1],
            jit_compile=config.jit_compile,
        )

    def segments(part, training):
        if data.segment_dataset is not None:
            return data.segment_dataset(part, training)
        return _segment_dataset(data.dataset(part, training=training), config.n_segments * len(data.labels[part]),
                                config.batch_size, training, config.seed)

    if config.stage1_epochs:
        history1 = stage1.fit(
            segments("train", True),
            validation_data=segments("validation", False) if data.has_validation else None,
            epochs=config.stage1_epochs,
            shuffle=False,  # the dataset shuffles itself
            callbacks=fit_callbacks(_loss_monitor(config), data, log_dir, "stage1"),
            verbose=verbose,
        )
        epochs1, best1 = summarise(history1, _loss_monitor(config), data)
        history1 = history_dict(history1)
    else:  # frozen backbone: no stage 1
        epochs1, best1, history1 = 0, 0, {}

    # === Stage 2: features once, then SRU + softmax on the sequences ===
    features_model = keras.Model(model.input, model.get_layer("backbone").output, name="segment_features")
    features = {
        part: features_model.predict(data.dataset(part, training=False), verbose=0)
        for part in ("train", "validation")
        if part == "train" or data.has_validation
    }
    with precision_policy(config.mixed_precision), strategy.scope():
        sequence = keras.Input(shape=features["train"].shape[1:], name="segment_features")
        sru = model.get_layer("sru").__class__.from_config(model.get_layer("sru").get_config())
        head_out = model.get_layer("predictions").__class__.from_config(model.get_layer("predictions").get_config())
        inputs = sequence
        if config.stage2_dropout:  # training only: the assembled model carries no extra layer
            inputs = keras.layers.Dropout(config.stage2_dropout, seed=config.seed, name="feature_dropout")(sequence)
        head = keras.Model(sequence, head_out(sru(inputs)), name="stage2_sru")
        head.compile(
            optimizer=keras.optimizers.Adam(config.stage2_learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=[
                keras.metrics.SparseCategoricalAccuracy(name="wa"),
                UnweightedAccuracy(num_classes=num_classes, name="ua"),
            ],
            jit_compile=config.jit_compile,
        )
    history2 = head.fit(
        features["train"],
        data.labels["train"],
        batch_size=config.batch_size,
        validation_data=(features["validation"], data.labels["validation"]) if data.has_validation else None,
        epochs=config.stage2_epochs,
        shuffle=True,
        callbacks=fit_callbacks(config, data, log_dir, "stage2"),
        verbose=verbose,
    )
    epochs2, best2 = summarise(history2, config, data)
    model.get_layer("sru").set_weights(sru.get_weights())
    model.get_layer("predictions").set_weights(head_out.get_weights())
    model.compile(optimizer=keras.optimizers.Adam(config.stage2_learning_rate), jit_compile=config.jit_compile)
    return TrainResult(
        model,
        {"stage1": epochs1, "stage2": epochs2},
        {"stage1": best1, "stage2": best2},
        {"stage1": history1, "stage2": history_dict(history2)},
    )


def _loss_monitor(config):
    # Stage 1 has no UA metric (segment-level); it always monitors the validation loss.
    return dataclasses.replace(config, monitor="val_loss")


RECIPES = {"end_to_end": train_end_to_end, "paper": train_paper, "probe": frozen.train_probe,
           "frozen": frozen.train_frozen}


def train(config, data, feature_config=None, log_dir=None, verbose=1):
    """Trains with the recipe `config.recipe` names. Returns a `TrainResult`."""
    return RECIPES[config.recipe](config, data, feature_config=feature_config, log_dir=log_dir, verbose=verbose)
