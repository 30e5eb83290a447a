"""The engines of every network the compiled kernel does not train: ``keras.Model.fit`` and the multi-worker loop.

Concat networks, side information, implicit feedback, other optimizers and
losses train here, on the shuffled batches of :func:`training_batches`
(the kernel's one-thread schedule draws the same batches, so the two paths
follow the same trajectory where both apply).  Under
``distribution="multi_worker"`` such networks train through
:func:`fit_multi_worker`, the tf.distribute guide's custom loop (Keras
3.15's ``Model.fit`` cannot train under ``MultiWorkerMirroredStrategy``).

Batch size semantics of :func:`fit_multi_worker`: ``batch_size`` is the
*global* batch.  Every step, each of the ``num_replicas_in_sync`` replicas
(devices, over all workers) takes ``batch_size / num_replicas_in_sync``
ratings of it; gradients are averaged across replicas, so one step is the
same update as on one device with the same global batch.
"""

import keras
import numpy as np
import tensorflow as tf

from .._network import SCORE_BATCH
from .._optimizers import LazyAdam
from ._schedule import check_finite

__all__ = ["DivergenceCheck", "compile_network", "fit_keras", "fit_multi_worker", "root_mean_squared_error",
           "steps_per_epoch", "training_batches"]


@keras.saving.register_keras_serializable(package="skmfnet")
def root_mean_squared_error(y_true, y_pred):
    """The tutorial's loss: square root of the batch's mean squared error."""
    y_true = keras.ops.cast(y_true, y_pred.dtype)
    return keras.ops.sqrt(keras.ops.mean(keras.ops.square(y_pred - y_true)))


def steps_per_epoch(n_ratings, batch_size):
    """Full batches per epoch (at least one: a batch of all ratings when there are fewer)."""
    return max(1, n_ratings // batch_size)


def training_batches(X, y, *, batch_size, epochs, seed, weights=None):
    """Shuffled full batches for ``epochs`` epochs, as one tf.data pipeline.

    Epoch ``e`` is a permutation of the ratings drawn with the stateless seed
    ``(seed, e)``, cut into ``n // batch_size`` full batches (the remainder,
    different every epoch, is left out).  Equal batch shapes mean the training
    step is traced once; the per-epoch work is one shuffle op and one gather per
    batch, with no Python per batch and no global random state.

    With ``weights`` (mean 1, one per rating), epoch ``e`` instead holds
    each rating ``w`` times when its weight ``w`` is an integer, else
    ``floor(w)`` or ``floor(w) + 1`` times (stochastic rounding, mean ``w``,
    drawn with the seed ``(seed, 2**40 + e)``), shuffled: every term of a
    rating, its squared error and its per-rating penalty alike, then counts
    ``w`` times per epoch in expectation, and integer weights are repeated
    ratings exactly.  The epoch keeps ``n // batch_size`` batches (its list
    is cycled if rounding left it short).  This is how the paths that train
    through ``keras.Model.fit`` or the multi-worker loop, which only see
    batches, honour sample weights.
    """
    X, y = tf.constant(X), tf.constant(y)
    n = int(y.shape[0])
    steps = steps_per_epoch(n, batch_size)
    batch_size = min(batch_size, n)
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        whole, fraction = tf.constant(np.floor(weights).astype(np.int32)), tf.constant(weights - np.floor(weights))

    def epoch_batches(epoch):
        if weights is None:
            order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([seed, epoch]))
        else:
            # the rounding's seed, (seed, 2**40 + e), is never an epoch's shuffle seed
            rounding = tf.stack([tf.constant(seed, tf.int64), epoch + (1 << 40)])
            extra = tf.random.stateless_uniform([n], seed=rounding, dtype=tf.float64) < fraction
            copies = tf.repeat(tf.range(n), whole + tf.cast(extra, tf.int32))
            order = tf.random.experimental.stateless_shuffle(copies, seed=tf.stack([seed, epoch]))
            order = tf.tile(order, [1 + (steps * batch_size) // tf.maximum(tf.size(order), 1)])
        return tf.data.Dataset.from_tensor_slices(tf.reshape(order[: steps * batch_size], (steps, batch_size)))

    batches = tf.data.Dataset.range(epochs).flat_map(epoch_batches)
    batches = batches.map(lambda idx: (tf.gather(X, idx), tf.gather(y, idx)))
    # tf.data's autotuner off: on 2 cores it left the training step on one
    # core for whole epochs in some fits (the tutorial network's epoch took
    # about 8 s instead of under 4 s: benchmarks/results/speed/speed.md before this
    # change, speed_tutorial/ after it)
    options = tf.data.Options()
    options.autotune.enabled = False
    return batches.prefetch(tf.data.AUTOTUNE).with_options(options)


def compile_network(model, *, optimizer, learning_rate, loss, n_train, batch_size):
    """Compile ``model`` with the named optimizer and loss, a whole epoch per execution."""
    # Keras refuses an integer learning rate (learning_rate=5 is a valid Real here)
    learning_rate = float(learning_rate)
    if optimizer == "lazy_adam":
        optimizer = LazyAdam(learning_rate=learning_rate)
    else:
        optimizer = keras.optimizers.get({"class_name": optimizer, "config": {"learning_rate": learning_rate}})
    model.compile(
        optimizer=optimizer,
        loss=root_mean_squared_error if loss == "rmse" else "mean_squared_error",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
        # a whole epoch per call of the compiled step: no Python between batches
        steps_per_execution=steps_per_epoch(n_train, batch_size),
    )
    return model


def fit_multi_worker(model, batches, *, epochs, steps_per_epoch, global_batch_size, verbose=0):
    """Train ``model`` on ``batches`` under its ``MultiWorkerMirroredStrategy``.

    Keras 3.15's ``Model.fit`` cannot train under this strategy (its per-step
    metric reduction fails on scalars across workers, tensorflow/tensorflow
    issue 72388), so this is the training loop of the tf.distribute guide:
    every worker runs one replica step on its share of each global batch,
    gradients are summed across replicas by the optimizer, and the loss is
    scaled so that the update is that of the global batch's mean squared error
    plus the per-rating penalties.

    Returns the per-epoch history ``{"loss": [...], "rmse": [...]}``.
    """
    strategy = model.distribute_strategy
    optimizer = model.optimizer
    with strategy.scope():
        optimizer.build(model.trainable_variables)
    iterator = iter(strategy.experimental_distribute_dataset(batches))

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            squared_error = tf.square(tf.squeeze(model(x, training=True), -1) - y)
            loss = tf.nn.compute_average_loss(squared_error, global_batch_size=global_batch_size)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return tf.reduce_sum(squared_error), loss

    @tf.function
    def train_epoch(iterator):
        total_squared_error = tf.constant(0.0)
        total_loss = tf.constant(0.0)
        for _ in tf.range(steps_per_epoch):
            squared_error, loss = strategy.run(replica_step, args=next(iterator))
            total_squared_error += strategy.reduce("SUM", squared_error, axis=None)
            total_loss += strategy.reduce("SUM", loss, axis=None)
        return total_squared_error, total_loss

    history = {"loss": [], "rmse": []}
    progress = keras.utils.Progbar(epochs, verbose=verbose) if verbose else None
    for epoch in range(epochs):
        squared_error, loss = train_epoch(iterator)
        check_finite({"loss": float(loss)}, epoch)
        history["loss"].append(float(loss) / steps_per_epoch)
        history["rmse"].append(float(np.sqrt(float(squared_error) / (steps_per_epoch * global_batch_size))))
        if progress is not None:
            progress.update(epoch + 1, [("loss", history["loss"][-1]), ("rmse", history["rmse"][-1])])
    return history


class DivergenceCheck(keras.callbacks.Callback):
    """Raise :class:`skmfnet._training._schedule.TrainingDivergedError` at the end of an epoch whose loss is not finite."""

    def on_epoch_end(self, epoch, logs=None):
        check_finite(logs or {}, epoch)


def fit_keras(model, X, y, *, epochs, batch_size, seed, weights=None, validation=None, callbacks=(), verbose=0):
    """``model.fit`` on the shuffled batches of :func:`training_batches`; returns the history as a dict."""
    history = model.fit(
        training_batches(X, y, batch_size=batch_size, epochs=epochs, seed=seed, weights=weights),
        epochs=epochs,
        steps_per_epoch=steps_per_epoch(len(y), batch_size),
        verbose=verbose,
        callbacks=[DivergenceCheck(), *callbacks],
        validation_data=None
        if validation is None
        else tf.data.Dataset.from_tensor_slices(validation).batch(SCORE_BATCH),
        shuffle=False,  # the pipeline shuffles
    )
    return {key: [float(v) for v in values] for key, values in history.history.items()}
