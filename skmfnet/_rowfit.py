"""Compiled, row-sparse training of the dot model: the fast path of ``optimizer="lazy_adam"`` and ``"sgd"``.

Keras's ``Model.fit`` pays, per step, for a generic graph: the gradient of
every layer, the optimizer's per-variable bookkeeping and the separate gather
and scatter of each table and of each of its moment tables.  For biased matrix
factorization all of that is a few lines of arithmetic on the rows of the
batch, so this module writes the step out by hand and compiles a whole epoch
with XLA (``tf.function(jit_compile=True)`` around a ``tf.while_loop`` over
the epoch's batches):

* each table is packed with its optimizer state, one row per id:
  ``[factors | bias | state]`` (Adam: first and second moments; SGD: none),
  so that a step is one gather and one scatter per side;
* the gradient of a row that occurs several times in the batch is summed
  (through a small int32 "owner" table: every occurrence of a row reads the
  same batch position, its owner), the optimizer's rule is applied to that
  sum, and only the owner is written back (the other occurrences are sent out
  of range, which XLA's scatter skips, on any device);
* the rules are those of the Keras optimizers the estimator compiles, for
  the rows in the batch only: :class:`skmfnet._optimizers.LazyAdam` (Adam
  with the bias correction of the global step) and plain SGD (no momentum),
  whose sparse update is Keras's own;
* the objective is the same as the Keras network's: mean squared error of
  the centred ratings plus, per rating, ``alpha * (||p_u||^2 + ||q_i||^2) +
  alpha_bias * (b_u^2 + b_i^2)`` averaged over the batch
  (:class:`skmfnet._network.RowL2Embedding`).

Batches come from the same stateless shuffle as the Keras path (seed
``(seed, epoch)``, ``n // batch_size`` full batches), so the two paths follow
the same trajectory up to floating-point rounding.  After every epoch the
weights are written back into the Keras model's embedding variables, so
callbacks (early stopping), ``predict``, pickling and model files see an
ordinary fitted Keras model.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from ._network import ITEM_BIAS, ITEM_FACTORS, USER_BIAS, USER_FACTORS, score_rows
from ._optimizers import LazyAdam

__all__ = ["fit_rows", "supports"]


def supports(optimizer):
    """Whether :func:`fit_rows` implements ``optimizer``'s update rule exactly."""
    if isinstance(optimizer, LazyAdam):
        return not optimizer.amsgrad
    return type(optimizer) is keras.optimizers.SGD and optimizer.momentum == 0


class _Adam:
    """LazyAdam's rule on the batch's rows; state ``[m | v]``."""

    def __init__(self, optimizer, width):
        self.width = width
        self.slots = 2
        self.lr = float(optimizer.learning_rate)
        self.beta_1, self.beta_2 = float(optimizer.beta_1), float(optimizer.beta_2)
        self.epsilon = float(optimizer.epsilon)

    def apply(self, weights, state, g, step):
        w, t = self.width, tf.cast(step, tf.float32)
        m = self.beta_1 * state[:, :w] + (1 - self.beta_1) * g
        v = self.beta_2 * state[:, w:] + (1 - self.beta_2) * g * g
        rate = self.lr * tf.sqrt(1 - tf.pow(self.beta_2, t)) / (1 - tf.pow(self.beta_1, t))
        return tf.concat([weights - rate * m / (tf.sqrt(v) + self.epsilon), m, v], axis=1)

    def store(self, optimizer, index, state, columns):
        w = self.width
        optimizer._momentums[index].assign(state[:, :w][:, columns])
        optimizer._velocities[index].assign(state[:, w:][:, columns])


class _SGD:
    """Plain gradient descent (Keras ``SGD`` without momentum); no state."""

    def __init__(self, optimizer, width):
        self.slots = 0
        self.lr = float(optimizer.learning_rate)

    def apply(self, weights, state, g, step):
        return weights - self.lr * g

    def store(self, optimizer, index, state, columns):
        pass


def fit_rows(
    model,
    X,
    y,
    *,
    optimizer,
    epochs,
    batch_size,
    alpha,
    alpha_bias,
    seed,
    validation=None,
    callbacks=(),
    verbose=0,
):
    """Train the four embedding tables of a dot network, compiled.

    Parameters
    ----------
    model : keras.Model
        A network of :func:`skmfnet._network.build_network` with
        ``interaction="dot"``, ``regularization="batch"`` and no side
        information or implicit feedback.
    X : ndarray of int32, shape (n, 2)
        (user row, item row) of each training rating.
    y : ndarray of float32, shape (n,)
        Centred ratings.
    optimizer : keras.optimizers.Optimizer
        Its rule and hyperparameters (:func:`supports` must hold).  When it
        is the model's optimizer, its state (moments, step count) is set at
        the end to what ``Model.fit`` would have left.
    validation : tuple (X_val, y_val) or None
        Evaluated after each epoch (``val_loss``, ``val_rmse``).
    callbacks : list of keras.callbacks.Callback
        Called at the end of each epoch with the epoch's logs (early stopping
        works as with ``Model.fit``).

    Returns
    -------
    history : dict of list of float
        ``loss`` and ``rmse`` per epoch (means over the epoch's batches, as
        Keras reports them), and ``val_loss`` / ``val_rmse`` with validation.
    """
    if not supports(optimizer):
        raise ValueError(f"optimizer: the compiled path implements LazyAdam and SGD without momentum, got {optimizer!r}")
    P, b_u, Q, b_i = (model.get_layer(name).embeddings for name in (USER_FACTORS, USER_BIAS, ITEM_FACTORS, ITEM_BIAS))
    K = int(P.shape[1])
    width = K + 1  # factors and bias
    rule = (_Adam if isinstance(optimizer, LazyAdam) else _SGD)(optimizer, width)

    def packed(factors, bias):
        weights = tf.concat([tf.convert_to_tensor(factors), tf.convert_to_tensor(bias)], axis=1)
        return tf.Variable(tf.concat([weights] + [tf.zeros_like(weights)] * rule.slots, axis=1))

    tables = [packed(P, b_u), packed(Q, b_i)]
    owners = [tf.Variable(tf.zeros((int(t.shape[0]),), tf.int32)) for t in tables]
    penalty = tf.constant([alpha] * K + [alpha_bias], tf.float32)
    step = tf.Variable(0, dtype=tf.int64)
    X = tf.constant(np.asarray(X, dtype=np.int32))
    y = tf.constant(np.asarray(y, dtype=np.float32))
    n = int(y.shape[0])
    batch = min(batch_size, n)
    steps = max(1, n // batch)

    def update(side, rows, state, gradient):
        index = rows[:, None]
        # one occurrence of each row in the batch owns it (whichever write of
        # the scatter wins): the gradients of all its occurrences are summed
        # there, and only the owner is written back (the others' indices are
        # out of range, which the scatter skips)
        positions = tf.range(batch)
        owners[side].scatter_nd_update(index, positions)
        segment = tf.gather(owners[side], rows)
        g = tf.gather(tf.math.unsorted_segment_sum(gradient, segment, batch), segment)
        new = rule.apply(state[:, :width], state[:, width:], g, step)
        skip = tf.shape(tables[side], out_type=tf.int32)[0]
        tables[side].scatter_nd_update(tf.where((segment == positions)[:, None], index, skip), new)

    @tf.function(jit_compile=True)
    def run_epoch(X, y, order):
        # the epoch's ratings are gathered batch by batch: no shuffled copy of
        # the whole training set (X and y are arguments, not constants of the program)
        def body(s, total_loss, total_squared):
            index = tf.slice(order, [s * batch], [batch])
            pairs = tf.gather(X, index)
            users, items, target = pairs[:, 0], pairs[:, 1], tf.gather(y, index)
            state_u, state_i = tf.gather(tables[0], users), tf.gather(tables[1], items)
            U, V = state_u[:, :width], state_i[:, :width]
            error = tf.reduce_sum(U[:, :K] * V[:, :K], axis=1) + U[:, K] + V[:, K] - target
            squared = tf.reduce_mean(error * error)
            loss = (
                squared
                + tf.reduce_sum(tf.reduce_mean(U * U, axis=0) * penalty)
                + tf.reduce_sum(tf.reduce_mean(V * V, axis=0) * penalty)
            )
            ones = tf.ones_like(error[:, None])
            grad_U = (2.0 / batch) * (error[:, None] * tf.concat([V[:, :K], ones], axis=1) + penalty * U)
            grad_V = (2.0 / batch) * (error[:, None] * tf.concat([U[:, :K], ones], axis=1) + penalty * V)
            step.assign_add(1)
            update(0, users, state_u, grad_U)
            update(1, items, state_i, grad_V)
            return s + 1, total_loss + loss, total_squared + squared

        zero = tf.constant(0.0)
        _, total_loss, total_squared = tf.while_loop(
            lambda s, *_: s < steps, body, (tf.constant(0), zero, zero)
        )
        return total_loss / steps, total_squared / steps

    @tf.function  # StatelessShuffle has no XLA kernel: shuffle outside the compiled epoch
    def epoch_order(epoch):
        return tf.random.experimental.stateless_shuffle(
            tf.range(n), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
        )

    callback_list = keras.callbacks.CallbackList(list(callbacks), model=model)
    model.stop_training = False
    callback_list.on_train_begin()
    history = {}
    for epoch in range(epochs):
        loss, squared = run_epoch(X, y, epoch_order(tf.constant(epoch, tf.int64)))
        for table, (factors, bias) in zip(tables, ((P, b_u), (Q, b_i))):
            factors.assign(table[:, :K])
            bias.assign(table[:, K:width])
        # Keras's RMSE metric is over all the epoch's ratings: with full batches
        # of equal size, the square root of the mean of the batch MSEs
        logs = {"loss": float(loss), "rmse": math.sqrt(float(squared))}
        if validation is not None:
            logs.update(_evaluate(model, *validation, alpha=alpha, alpha_bias=alpha_bias))
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end()
    if optimizer is getattr(model, "optimizer", None):
        _store_optimizer_state(model, rule, tables, step, K)
    return history


def _store_optimizer_state(model, rule, tables, step, K):
    """Copy the optimizer's state (moments, step count) into the model's optimizer.

    The compiled Keras model then holds the optimizer state it would have
    after ``Model.fit`` (saved with it, and ready to continue training).
    Moments are those of the last epoch, also when early stopping restored
    earlier weights (as with ``Model.fit``).
    """
    optimizer = model.optimizer
    variables = {v.path.split("/")[0]: v for v in model.trainable_variables}
    optimizer.build(model.trainable_variables)
    layout = {
        USER_FACTORS: (0, slice(0, K)), USER_BIAS: (0, slice(K, K + 1)),
        ITEM_FACTORS: (1, slice(0, K)), ITEM_BIAS: (1, slice(K, K + 1)),
    }
    width = K + 1
    for name, (side, columns) in layout.items():
        rule.store(optimizer, optimizer._get_variable_index(variables[name]), tables[side][:, width:], columns)
    optimizer.iterations.assign(step)


def _evaluate(model, X, y, *, alpha, alpha_bias):
    """val_rmse and val_loss (MSE plus the per-rating penalty, as Keras's evaluate)."""
    X = np.asarray(X, dtype=np.int32)
    y = np.asarray(y, dtype=np.float64)
    pred = score_rows(model, X)
    mse = float(np.mean((pred - y) ** 2))
    tables = {
        name: model.get_layer(name).embeddings.numpy()
        for name in (USER_FACTORS, USER_BIAS, ITEM_FACTORS, ITEM_BIAS)
    }
    users, items = X[:, 0], X[:, 1]
    penalty = alpha * (
        np.mean(np.sum(tables[USER_FACTORS][users] ** 2, axis=1))
        + np.mean(np.sum(tables[ITEM_FACTORS][items] ** 2, axis=1))
    ) + alpha_bias * (np.mean(tables[USER_BIAS][users, 0] ** 2) + np.mean(tables[ITEM_BIAS][items, 0] ** 2))
    return {"val_loss": mse + float(penalty), "val_rmse": math.sqrt(mse)}
