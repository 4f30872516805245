"""A training loop for `tf.distribute.MultiWorkerMirroredStrategy`.

Keras 3's `model.fit` does not run under a multi-worker strategy (its data
adapter hands `PerReplica` values to the train step: keras-team/keras#20585,
open as of Keras 3.15), while a loop written with `strategy.run`, a
`tf.GradientTape` and the Keras optimizer does: the optimizer all-reduces the
gradients across workers, so every worker ends with the same weights. This
module is that loop, used by the recipes when `strategy="multi_worker"`.
"""

import numpy as np


class _History:
    def __init__(self):
        self.history = {}

    def add(self, **values):
        for key, value in values.items():
            self.history.setdefault(key, []).append(float(value))


def fit(model, strategy, train, epochs, validation=None, patience=None, verbose=1, log=print):
    """Trains a compiled model with a custom distributed loop.

    The loss is the model's compiled loss object (per example, averaged over the
    global batch with `tf.nn.compute_average_loss`); the optimizer is the
    model's. With `validation`, the validation loss is computed after every
    epoch, training stops after `patience` epochs without improvement and the
    best epoch's weights are restored (as `EarlyStopping(restore_best_weights=True)`).

    Args:
        model: a compiled Keras model built under `strategy.scope()`.
        strategy: the `tf.distribute` strategy.
        train: a batched `tf.data.Dataset` of `(inputs, labels)`.
        epochs: int.
        validation: optional batched dataset of `(inputs, labels)`.
        patience: early-stopping patience in epochs (with `validation`).
        verbose: 0 silent, otherwise one line per epoch.
        log: callable for the epoch lines.

    Returns:
        An object with a Keras-like `history` dict (`loss`, `val_loss`).
    """
    import tensorflow as tf

    # The compiled loss, per example (averaged over the global batch below).
    loss_object = model.loss.__class__.from_config({**model.loss.get_config(), "reduction": "none"})
    optimizer = model.optimizer

    def train_replica(batch):
        inputs, labels = batch
        with tf.GradientTape() as tape:
            per_example = loss_object(labels, model(inputs, training=True))
            loss = tf.nn.compute_average_loss(per_example)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return tf.reduce_sum(per_example), tf.cast(tf.size(per_example), tf.float32)

    def eval_replica(batch):
        inputs, labels = batch
        per_example = loss_object(labels, model(inputs, training=False))
        return tf.reduce_sum(per_example), tf.cast(tf.size(per_example), tf.float32)

    def reduced(replica_fn):
        @tf.function
        def step(batch):
            total, count = strategy.run(replica_fn, args=(batch,))
            return strategy.reduce("SUM", total, axis=None), strategy.reduce("SUM", count, axis=None)

        return step

    train_step, eval_step = reduced(train_replica), reduced(eval_replica)
    train_dist = strategy.experimental_distribute_dataset(train)
    val_dist = strategy.experimental_distribute_dataset(validation) if validation is not None else None

    def mean_loss(step, dataset):
        total = count = 0.0
        for batch in dataset:
            batch_total, batch_count = step(batch)
            total += float(batch_total)
            count += float(batch_count)
        return total / max(count, 1.0)

    history = _History()
    best, best_weights, waited = np.inf, None, 0
    for epoch in range(1, epochs + 1):
        values = {"loss": mean_loss(train_step, train_dist)}
        if val_dist is not None:
            values["val_loss"] = mean_loss(eval_step, val_dist)
        history.add(**values)
        if verbose:
            log(f"Epoch {epoch}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in values.items()))
        if val_dist is not None:
            if values["val_loss"] < best:
                best, best_weights, waited = values["val_loss"], model.get_weights(), 0
            else:
                waited += 1
                if patience is not None and waited >= patience:
                    break
    if best_weights is not None:
        model.set_weights(best_weights)
    return history
