"""Training the network: compile it, pick one of the three training loops, run it.

The data reaching this module are already encoded (int32 network rows, see
:mod:`skmfnet._preparation`) and centred on ``mu``; what leaves it is a
fitted ``keras.Model`` and its per-epoch history.  The estimator decides
nothing about training beyond calling :func:`compile_network` and
:func:`train` with its fitted hyperparameters.

The three loops, in the order :func:`train` tries them:

the compiled row-sparse path
    :func:`skmfnet._rowfit.fit_rows` for the plain dot model with an optimizer
    whose rule it implements exactly (:func:`uses_compiled_path`), on one
    machine or, with ``distribution="multi_worker"``, one block of the
    stratified schedule per worker.
``distribution="parameter_server"``
    :func:`skmfnet._parameter_server.fit_parameter_server`: the plain dot
    model's tables sharded over parameter servers, chunks of batches
    scheduled on the workers.
``distribution="multi_worker"``, other networks
    :func:`skmfnet._distribute.fit_multi_worker`: the tf.distribute guide's
    custom loop (Keras 3.15's ``Model.fit`` cannot train under
    ``MultiWorkerMirroredStrategy``).
``keras.Model.fit``
    everything else, on the shuffled batches of :func:`training_batches`.

All three see the same batches: epoch ``e`` is the stateless shuffle of
seed ``(seed, e)`` cut into ``n // batch_size`` full batches.
"""

import keras
import numpy as np
import tensorflow as tf

from ._distribute import RowExchange, fit_multi_worker, get_strategy
from ._network import SCORE_BATCH
from ._optimizers import LazyAdam
from ._rowfit import fit_rows, resolve_threads, supports

__all__ = [
    "compile_network",
    "root_mean_squared_error",
    "steps_per_epoch",
    "train",
    "training_batches",
    "uses_compiled_path",
]


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
    # about 8 s instead of under 4 s: benchmarks/results/speed.md before this
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


def uses_compiled_path(model, *, plain_dot, regularization, loss, distribution):
    """Whether :func:`train` takes the compiled row-sparse path (:mod:`skmfnet._rowfit`)."""
    return (
        plain_dot
        and supports(model.optimizer)
        and regularization == "batch"
        and loss == "squared_error"
        and distribution in (None, "multi_worker")
    )


def train(
    model,
    X,
    y,
    *,
    epochs,
    batch_size,
    seed,
    compiled_path,
    alpha,
    alpha_bias,
    negatives=(0, 0.0, 0.0),
    selection=None,
    weights=None,
    multi_worker=False,
    validation=None,
    callbacks=(),
    verbose=0,
    n_jobs=None,
    parameter_server=False,
    layout=None,
    prepared=None,
):
    """Train a compiled network on encoded rows ``X`` and centred ratings ``y``.

    Parameters
    ----------
    compiled_path : bool
        Take :func:`skmfnet._rowfit.fit_rows` (see :func:`uses_compiled_path`).
    negatives : tuple (n_per_batch, centred_rating, weight)
        Sampled unobserved pairs per batch (compiled path only; see
        :func:`skmfnet._rowfit.fit_rows`).
    selection : list [S, T] of float32 ndarrays, or None
        Selection tables trained by the sampled pairs, updated in place
        (compiled path only; see :func:`skmfnet._rowfit.fit_rows`).
    weights : ndarray of shape (n,) or None
        Per-rating weights, mean 1: on the compiled path they multiply each
        rating's terms in its batch (:func:`skmfnet._rowfit.fit_rows`); on
        the others each epoch draws its ratings in proportion to them
        (:func:`training_batches`).
    multi_worker : bool
        The model was built under a ``MultiWorkerMirroredStrategy``.
    validation : tuple (X_val, y_val) or None
        Encoded, centred ratings evaluated after each epoch.
    callbacks : list of keras.callbacks.Callback
    n_jobs : int or None
        Threads of the compiled path (:func:`skmfnet._rowfit.resolve_threads`).
    parameter_server : bool
        Train the plain dot model's tables sharded over the parameter servers
        of ``TF_CONFIG`` (:mod:`skmfnet._parameter_server`).
    layout : dict or None
        With ``parameter_server``, filled with the ``(device, rows)`` of each
        table's shards.
    prepared : dict or None
        Shared by compiled-path fits on the same ratings (see
        :func:`skmfnet._rowfit.fit_rows`).

    Returns
    -------
    history : dict of list of float
        Per epoch ``loss`` and ``rmse``, plus ``val_loss`` and ``val_rmse``
        with validation.
    """
    if seed is None:
        seed = int(np.random.randint(2**31 - 1))
    steps = steps_per_epoch(len(y), batch_size)
    if not compiled_path and (negatives[0] or selection is not None):
        raise ValueError("sampled unobserved pairs and selection tables train on the compiled path only")
    if parameter_server:
        from ._parameter_server import fit_parameter_server

        history, shards = fit_parameter_server(
            model, X, y, strategy=get_strategy("parameter_server"), optimizer=model.optimizer, epochs=epochs,
            batch_size=batch_size, alpha=alpha, alpha_bias=alpha_bias, seed=seed, weights=weights,
            validation=validation, callbacks=callbacks, verbose=verbose,
        )
        if layout is not None:
            layout.update(shards)
        return history
    if multi_worker and not compiled_path:
        return fit_multi_worker(
            model,
            training_batches(X, y, batch_size=batch_size, epochs=epochs, seed=seed, weights=weights),
            epochs=epochs,
            steps_per_epoch=steps,
            global_batch_size=min(batch_size, len(y)),
            verbose=verbose,
        )
    if compiled_path:
        return fit_rows(
            model,
            X,
            y,
            optimizer=model.optimizer,
            epochs=epochs,
            batch_size=batch_size,
            alpha=alpha,
            alpha_bias=alpha_bias,
            seed=seed,
            negatives=negatives,
            selection=selection,
            weights=weights,
            validation=validation,
            callbacks=callbacks,
            verbose=verbose,
            n_threads=resolve_threads(n_jobs, len(y)),
            exchange=RowExchange(get_strategy("multi_worker")) if multi_worker else None,
            prepared=prepared,
        )
    history = model.fit(
        training_batches(X, y, batch_size=batch_size, epochs=epochs, seed=seed, weights=weights),
        epochs=epochs,
        steps_per_epoch=steps,
        verbose=verbose,
        callbacks=list(callbacks),
        validation_data=None
        if validation is None
        else tf.data.Dataset.from_tensor_slices(validation).batch(SCORE_BATCH),
        shuffle=False,  # the pipeline shuffles
    )
    return {key: [float(v) for v in values] for key, values in history.history.items()}
