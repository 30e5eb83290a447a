"""Compiled, row-sparse training of the dot model: the fast path of ``"lazy_adam"``, ``"adagrad"`` and ``"sgd"``.

Keras's ``Model.fit`` pays, per step, for a generic graph: the gradient of
every layer, the optimizer's per-variable bookkeeping and the separate gather
and scatter of each table and of each of its moment tables.  For biased matrix
factorization all of that is a few lines of arithmetic on the rows of the
batch, so this module writes the step out by hand and compiles a whole epoch
with XLA (``tf.function(jit_compile=True)`` around a ``tf.while_loop`` over
the epoch's batches):

* each table is packed with its optimizer state, one row per id:
  ``[factors | bias | state]`` (Adam: first and second moments; Adagrad:
  its accumulator; SGD: none),
  so that a step is one gather and one scatter per side;
* the gradient of a row that occurs several times in the batch is summed
  (through a small int32 "owner" table: every occurrence of a row reads the
  same batch position, its owner), the optimizer's rule is applied to that
  sum, and only the owner is written back (the other occurrences are sent out
  of range, which XLA's scatter skips, on any device);
* the rules are those of the Keras optimizers the estimator compiles, for
  the rows in the batch only: :class:`skmfnet._optimizers.LazyAdam` (Adam
  with the bias correction of the global step), Adagrad and plain SGD (no
  momentum), whose sparse updates are Keras's own;
* the objective is the same as the Keras network's: mean squared error of
  the centred ratings plus, per rating, ``alpha * (||p_u||^2 + ||q_i||^2) +
  alpha_bias * (b_u^2 + b_i^2)`` averaged over the batch
  (:class:`skmfnet._network.RowL2Embedding`).

* with ``negative_ratio > 0`` (training for ranking), sampled (user, item)
  pairs join every batch as extra positions, drawn inside the compiled
  epoch with a stateless seed per step: the batch's users again, items
  uniform among the known ones, an imputed target and a weight on their
  squared error, no penalty.  With selection tables (``selection_factors``)
  the sampled pairs train those tables only, on the residual of the rating
  score, and the rating tables learn from the ratings alone.  Keras has no
  counterpart, so this part is tested on its own (``tests/test_ranking.py``);
* sample weights multiply each rating's squared error and per-rating
  penalty in its batch (all 1 without them).

Batches come from the same stateless shuffle as the Keras path (seed
``(seed, epoch)``, ``n // batch_size`` full batches), so the two paths follow
the same trajectory up to floating-point rounding.

From :data:`KERNEL_RATINGS` ratings on, fits without sampled pairs train
each call (a cell's part, or the whole epoch on one block) with the fused
numba loop of :mod:`skmfnet._kernel` instead of the XLA epoch: the same
batches, objective and rule in one loop per batch that prefetches the
rows it will need, on plain numpy tables (the schedule below is the same,
but for the order of a cell's part, which the loop's own generator
draws; and the held-out ratings of early stopping are scored by a
compiled loop on every thread: see :mod:`skmfnet._kernel` for what each
saves).

Several cores (``n_threads > 1``): XLA runs the epoch's loop on one thread,
and two threads cannot update the same rows at once (each compiled call
reads its tables when it starts and writes them back in place when it
ends: variables, passed by handle, so that no call copies them), so the
tables are cut instead.  The users and the
items are each split into ``p`` blocks balanced by their ratings, the
ratings into the ``p x p`` (user block, item block) cells, and every epoch
runs ``p`` rounds; in round ``s`` the threads share out the ``p`` cells
``(a, (a + s) mod p)``: no two share a user or an item, so each compiled
call owns its rows and the rounds need no locks and give the same result
whatever the threads' timing (the stratified schedule of DSGD, Gemulla et
al., KDD 2011, "Large-scale matrix factorization with distributed
stochastic gradient descent").  Same update rule, per batch of one cell;
each cell's ``n_ab // batch_size`` full batches are drawn
anew every epoch with its own stateless seed and trained in
:data:`ROUND_CHUNKS` parts, so that an epoch goes through the ``p`` rounds
that many times (a row trained on one block of the other side after
another drifts towards the last; meeting them in turn several times an
epoch keeps most of one thread's accuracy).  ``p`` is :data:`BLOCKS`
(4), halved while a cell would hold fewer than :data:`CELL_BATCHES`
batches, or the number of threads if that is more (:func:`resolve_blocks`):
a number measured on two cores, not derived from the tables' size (a rule
that cut the tables down to cache-sized cells, used before, was slower;
see :data:`BLOCKS`).  From
two threads up to ``p`` the result does not depend on the number of
threads.  Hogwild-style sharing (the
numba loop of ``../shared/tools/ceiling_sgd.py``) would need mutable
tables, which an XLA program does not have (the fused loop has them, but
sharing rows would make the result depend on the threads' timing).  After every epoch the
weights are written back into the Keras model's embedding variables, so
callbacks (early stopping), ``predict``, pickling and model files see an
ordinary fitted Keras model.
"""

import math
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import joblib
import keras
import numpy as np
import tensorflow as tf

from . import _compile_cache, _kernel
from ._network import ITEM_BIAS, ITEM_FACTORS, SCORE_BATCH, USER_BIAS, USER_FACTORS
from ._optimizers import LazyAdam

__all__ = ["AUTO_PARALLEL_RATINGS", "BLOCKS", "CELL_BATCHES", "COMPILED_OPTIMIZERS", "KERNEL_RATINGS", "Blocks",
           "dot_tables", "end_epoch", "fit_rows", "resolve_blocks", "resolve_threads", "ROUND_CHUNKS", "supports",
           "trace_count"]

#: The estimator's optimizer names whose Keras optimizers :func:`supports`
#: (the estimator checks names before any optimizer exists; a test keeps the two in step).
COMPILED_OPTIMIZERS = ("lazy_adam", "adagrad", "sgd")


def supports(optimizer):
    """Whether :func:`fit_rows` implements ``optimizer``'s update rule exactly."""
    return _rule_of(optimizer) is not None


def _rule_of(optimizer):
    """The rule class implementing ``optimizer`` exactly, or None."""
    if isinstance(optimizer, LazyAdam):
        return None if optimizer.amsgrad else _Adam
    if type(optimizer) is keras.optimizers.Adagrad:
        return _Adagrad
    if type(optimizer) is keras.optimizers.SGD and optimizer.momentum == 0:
        return _SGD
    return None


class _Adam:
    """LazyAdam's rule on the batch's rows; state ``[m | v]``; hyperparameters ``[lr, beta_1, beta_2, epsilon]``.

    Every rule has ``slots`` (state columns per weight column), ``initial``
    (the state of a row before training), ``squares`` (whether ``apply``
    needs the sum of the squares of a row's gradients, one per occurrence in
    the batch, besides their sum), ``hyper``, ``apply`` and ``store``.
    """

    name = "LazyAdam"
    slots = 2
    squares = False

    @staticmethod
    def initial(optimizer):
        return 0.0

    @staticmethod
    def hyper(optimizer):
        return [float(optimizer.learning_rate), float(optimizer.beta_1), float(optimizer.beta_2),
                float(optimizer.epsilon)]

    @staticmethod
    def apply(weights, state, g, step, hyper, squares=None):
        lr, beta_1, beta_2, epsilon = tf.unstack(hyper, num=4)
        t = tf.cast(step, tf.float32)
        m, v = tf.split(state, 2, axis=1)
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        rate = lr * tf.sqrt(1 - tf.pow(beta_2, t)) / (1 - tf.pow(beta_1, t))
        return tf.concat([weights - rate * m / (tf.sqrt(v) + epsilon), m, v], axis=1)

    @staticmethod
    def store(optimizer, index, read, columns, width):
        # read(start, stop): those columns of the state, every row: one
        # variable's worth at a time, never the whole state
        optimizer._momentums[index].assign(read(columns.start, columns.stop))
        optimizer._velocities[index].assign(read(width + columns.start, width + columns.stop))


class _SGD:
    """Plain gradient descent (Keras ``SGD`` without momentum); no state; hyperparameters ``[lr]``."""

    name = "SGD without momentum"
    slots = 0
    squares = False

    @staticmethod
    def initial(optimizer):
        return 0.0

    @staticmethod
    def hyper(optimizer):
        return [float(optimizer.learning_rate)]

    @staticmethod
    def apply(weights, state, g, step, hyper, squares=None):
        return weights - hyper[0] * g

    @staticmethod
    def store(optimizer, index, read, columns, width):
        pass


class _Adagrad:
    """Keras's ``Adagrad`` on the batch's rows; state ``[accumulator]``; hyperparameters ``[lr, epsilon]``.

    Keras receives an embedding's gradient as one slice per occurrence of a
    row in the batch and squares each slice before adding it to the
    accumulator; the update is the summed gradient over the root of the new
    accumulator.  A row the batch does not touch has a zero gradient, which
    changes neither its accumulator nor its weights, so this row-sparse rule
    is Keras's dense one exactly (unlike Adam's, whose moments decay).
    """

    name = "Adagrad"
    slots = 1
    squares = True

    @staticmethod
    def initial(optimizer):
        return float(optimizer.initial_accumulator_value)

    @staticmethod
    def hyper(optimizer):
        return [float(optimizer.learning_rate), float(optimizer.epsilon)]

    @staticmethod
    def apply(weights, state, g, step, hyper, squares=None):
        lr, epsilon = tf.unstack(hyper, num=2)
        accumulator = state + squares
        return tf.concat([weights - lr * g / tf.sqrt(accumulator + epsilon), accumulator], axis=1)

    @staticmethod
    def store(optimizer, index, read, columns, width):
        optimizer._accumulators[index].assign(read(columns.start, columns.stop))


# compiled epochs are kept on disk for later processes (before this process first compiles)
_compile_cache.enable()

#: Traced epochs of this process, one per (rule, batch size): every other
#: size (K, table rows, ratings, steps) and every hyperparameter is an
#: argument, so later fits reuse the trace (see :func:`trace_count`).
_EPOCHS = {}
_TRACES = {"epoch": 0, "order": 0}


def trace_count():
    """How many times this process traced the compiled epoch or the shuffle (for tests)."""
    return dict(_TRACES)


def _bucket(n_rows):
    """Rows of a packed table: ``n_rows`` rounded up to 1024 times a power of two.

    XLA compiles one program per distinct input shape; rounding the table
    sizes lets fits on other folds or subsets (a few ids more or less) run
    the program compiled for the first.  The extra rows are never gathered
    (no id maps to them) and at most double the packed tables.
    """
    return 1024 << max(0, math.ceil(math.log2(max(n_rows, 1) / 1024)))


def _epoch_function(rule, batch, n_negatives, selection, fresh=False):
    """The traced epoch of this configuration; ``fresh``: trace a new one in its place."""
    key = (rule, batch, n_negatives, selection)
    if fresh or key not in _EPOCHS:
        _EPOCHS[key] = _compile_epoch(rule, batch, n_negatives, selection)
    return _EPOCHS[key]


def _compile_epoch(rule, batch, n_negatives, selection):
    # K is read from the tables' shape: one trace serves every n_factors, and
    # XLA, which sees the concrete shapes, compiles one program per K and bucket.
    # ``n_negatives`` sampled unobserved pairs join each batch (0: none, and
    # the step is exactly the rating-only one).  With ``selection``, the
    # sampled pairs train the selection tables (``sel_u``, ``sel_i``) only,
    # and the rating tables see the ratings alone.
    table = tf.TensorSpec([], tf.resource)  # a packed table's variable
    size = batch + n_negatives  # positions of a step: the ratings, then the sampled pairs
    rating_size = batch if selection else size  # positions that train the rating tables

    def update(table, owners, rows, state, gradient, step, hyper, width, size):
        index = rows[:, None]
        # one occurrence of each row in the batch owns it (whichever write of
        # the scatter wins): the gradients of all its occurrences are summed
        # there, and only the owner is written back (the others' indices are
        # out of range, which the scatter skips).  ``owners`` is carried from
        # step to step: entries of other rows are stale but never read.
        positions = tf.range(size)
        owners = tf.tensor_scatter_nd_update(owners, index, positions)
        segment = tf.gather(owners, rows)
        # at an owner's position, the sum of its row's gradients (elsewhere
        # zero, and never written back)
        g = tf.math.unsorted_segment_sum(gradient, segment, size)
        squares = tf.math.unsorted_segment_sum(gradient * gradient, segment, size) if rule.squares else None
        new = rule.apply(*tf.split(state, [width, -1], axis=1), g, step, hyper, squares)
        skip = tf.shape(table, out_type=tf.int32)[0]
        table = tf.tensor_scatter_nd_update(table, tf.where((segment == positions)[:, None], index, skip), new)
        return table, owners

    @tf.function(
        jit_compile=True,
        # no Python control flow depends on tensors here (the loop is an
        # explicit tf.while_loop), so AutoGraph's source transformation,
        # about half of the first fit's time on MovieLens 100K, is skipped
        autograph=False,
        # the packed tables are variables, passed by handle and updated in
        # place: XLA writes the epoch's result into the variable's own buffer
        # (a tensor argument would be copied into a new buffer by every call)
        input_signature=[
            table, table,
            tf.TensorSpec([None, 2], tf.int32), tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.int64),
            tf.TensorSpec([2], tf.float32), tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int64),
            table, table, tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.int32),
        ],
    )
    def run_epoch(handle_u, handle_i, X, y, order, penalty, hyper, step, negative, n_items, seed,
                  handle_su, handle_si, sel_penalty, weights, stride, n_ratings):
        """One epoch; ``negative`` = [centred imputed rating, weight] of the
        sampled pairs, whose items are drawn from rows 1 .. ``n_items`` with
        the stateless seed (``seed``, 2**62 + step): never the seed of an
        epoch's shuffle, (``seed``, epoch).  ``sel_u``, ``sel_i`` (packed
        like the rating tables, ``sel_penalty`` wide) are the selection
        tables (placeholders, returned unchanged, without ``selection``).
        ``weights``: each rating's weight on its squared error and penalty,
        or one weight (1) for every rating.
        ``step`` (Adam's bias correction, the sampling seeds) advances by
        ``stride`` per batch: the number of cells trained side by side, whose
        batches count as interleaved.  ``X``, ``y``, ``weights`` hold the
        ratings of every cell; ``order`` is this cell's ``n_ratings``
        positions in them, shuffled, padded to one length for all cells (the
        padding is never read), so that every cell of a fit runs one XLA
        program: XLA compiles one per distinct input shape."""
        _TRACES["epoch"] += 1  # Python: runs only when TensorFlow traces
        table_u, table_i, sel_u, sel_i = (tf.raw_ops.ReadVariableOp(resource=handle, dtype=tf.float32)
                                          for handle in (handle_u, handle_i, handle_su, handle_si))
        width = tf.shape(penalty)[0]  # factors and bias
        K = width - 1
        steps = tf.maximum(1, n_ratings // batch)

        # the epoch's ratings are gathered batch by batch: no shuffled copy of
        # the whole training set
        sel_width = tf.shape(sel_penalty)[0]
        K_s = sel_width - 1

        def head(x, n):
            """The first ``n`` positions of ``x``: ``x`` itself when that is all of it (no op to trace)."""
            return x if n == size else x[:n]

        def body(s, step, table_u, table_i, sel_u, sel_i, owners, total_loss, total_squared):
            index = tf.slice(order, [s * batch], [batch])
            users, items = tf.unstack(tf.gather(X, index), num=2, axis=1)
            target = tf.gather(y, index)
            # the ratings' weights; without sample_weight ``weights`` is the
            # single weight 1 (no tensor of n ones), which the clipped index reads
            w = tf.gather(weights, tf.minimum(index, tf.shape(weights)[0] - 1))
            if n_negatives:
                # the batch's users again (cyclically), each with an item drawn
                # uniformly among the known ones: most such pairs are unobserved
                sampled = tf.random.stateless_uniform(
                    [n_negatives], tf.stack([seed, step + (1 << 62)]), 1, n_items + 1, tf.int32
                )
                users = tf.concat([users, tf.gather(users, tf.range(n_negatives) % batch)], axis=0)
                items = tf.concat([items, sampled], axis=0)
                target = tf.concat([target, tf.fill([n_negatives], negative[0])], axis=0)
            state_u, state_i = tf.gather(table_u, users), tf.gather(table_i, items)
            # (tf.split rather than slices: one op each to trace, not four)
            U, V = tf.split(state_u, [width, -1], axis=1)[0], tf.split(state_i, [width, -1], axis=1)[0]
            (U_f, U_b), (V_f, V_b) = tf.split(U, [K, 1], axis=1), tf.split(V, [K, 1], axis=1)
            score = tf.reduce_sum(U_f * V_f, axis=1) + tf.squeeze(U_b, 1) + tf.squeeze(V_b, 1)
            error = score - target
            # the per-rating penalty applies to the ratings only
            U_r, V_r, error_r = head(U, batch), head(V, batch), head(error, batch)
            w_r = w[:, None]
            squared = tf.reduce_mean(w * error_r * error_r)
            loss = (
                squared
                + tf.reduce_sum(tf.reduce_mean(w_r * U_r * U_r, axis=0) * penalty)
                + tf.reduce_sum(tf.reduce_mean(w_r * V_r * V_r, axis=0) * penalty)
            )
            # (position's weight on its squared error, and on its rows' penalty)
            if n_negatives:
                weight = tf.concat([w, tf.fill([n_negatives], negative[1])], axis=0)
                keep = tf.concat([w_r, tf.zeros([n_negatives, 1])], axis=0)
                negatives_loss = negative[1] * tf.reduce_sum(error[batch:] * error[batch:]) / batch
            if n_negatives and not selection:
                loss += negatives_loss
                weighted, shrink_U, shrink_V = weight * error, keep * penalty * U, keep * penalty * V
            else:  # the rating tables learn from the ratings alone
                weighted, shrink_U, shrink_V = w * error_r, w_r * penalty * U_r, w_r * penalty * V_r
            ones = tf.ones_like(weighted[:, None])
            grad_U = (2.0 / batch) * (weighted[:, None] * tf.concat([head(V_f, rating_size), ones], axis=1) + shrink_U)
            grad_V = (2.0 / batch) * (weighted[:, None] * tf.concat([head(U_f, rating_size), ones], axis=1) + shrink_V)
            step = step + stride
            owners_u, owners_i, owners_su, owners_si = owners
            table_u, owners_u = update(table_u, owners_u, head(users, rating_size), head(state_u, rating_size), grad_U,
                                       step, hyper, width, rating_size)
            table_i, owners_i = update(table_i, owners_i, head(items, rating_size), head(state_i, rating_size), grad_V,
                                       step, hyper, width, rating_size)
            if selection:
                # selection score = rating score (held fixed here) + the
                # selection tables' own biased dot product; its target is the
                # same as the rating score's: the rating of a rated pair, the
                # imputed rating of a sampled one
                sel_state_u, sel_state_i = tf.gather(sel_u, users), tf.gather(sel_i, items)
                S, T = sel_state_u[:, :sel_width], sel_state_i[:, :sel_width]
                sel_error = score + tf.reduce_sum(S[:, :K_s] * T[:, :K_s], axis=1) + S[:, K_s] + T[:, K_s] - target
                S_r, T_r = S[:batch], T[:batch]
                loss += (
                    tf.reduce_mean(w * sel_error[:batch] * sel_error[:batch])
                    + negative[1] * tf.reduce_sum(sel_error[batch:] * sel_error[batch:]) / batch
                    + tf.reduce_sum(tf.reduce_mean(w_r * S_r * S_r, axis=0) * sel_penalty)
                    + tf.reduce_sum(tf.reduce_mean(w_r * T_r * T_r, axis=0) * sel_penalty)
                )
                sel_weighted = (weight * sel_error)[:, None]
                sel_ones = tf.ones_like(sel_weighted)
                grad_S = (2.0 / batch) * (sel_weighted * tf.concat([T[:, :K_s], sel_ones], axis=1)
                                          + keep * sel_penalty * S)
                grad_T = (2.0 / batch) * (sel_weighted * tf.concat([S[:, :K_s], sel_ones], axis=1)
                                          + keep * sel_penalty * T)
                sel_u, owners_su = update(sel_u, owners_su, users, sel_state_u, grad_S, step, hyper, sel_width, size)
                sel_i, owners_si = update(sel_i, owners_si, items, sel_state_i, grad_T, step, hyper, sel_width, size)
            owners = (owners_u, owners_i, owners_su, owners_si)
            return s + 1, step, table_u, table_i, sel_u, sel_i, owners, total_loss + loss, total_squared + squared

        zero = tf.constant(0.0)
        owners = tuple(tf.zeros(tf.shape(table)[:1], tf.int32) for table in (table_u, table_i, sel_u, sel_i))
        _, step, table_u, table_i, sel_u, sel_i, _, total_loss, total_squared = tf.while_loop(
            lambda s, *_: s < steps, body, (tf.constant(0), step, table_u, table_i, sel_u, sel_i, owners, zero, zero)
        )
        for handle, value in ((handle_u, table_u), (handle_i, table_i)) + (
                ((handle_su, sel_u), (handle_si, sel_i)) if selection else ()):
            tf.raw_ops.AssignVariableOp(resource=handle, value=value)
        n_steps = tf.cast(steps, tf.float32)
        return step, total_loss / n_steps, total_squared / n_steps

    return run_epoch


# StatelessShuffle has no XLA kernel: shuffle outside the compiled epoch
@tf.function(input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([2], tf.int64), tf.TensorSpec([], tf.int32),
                              tf.TensorSpec([], tf.int32)], autograph=False)
def _epoch_order(n, seed, offset, size):
    """``offset + 0 .. n - 1`` in the stateless shuffle of ``seed``, padded with zeros to ``size``."""
    _TRACES["order"] += 1
    order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=seed) + offset
    return tf.pad(order, [[0, size - n]])


def _affine(n, seed):
    """(stride, shift) of the permutation ``k -> (k * stride + shift) mod n`` drawn from ``seed``.

    ``stride`` is coprime to ``n``, so the map is a permutation of 0 .. n - 1.
    """
    rng = np.random.default_rng(seed)
    while True:
        stride = int(rng.integers(1, max(n, 2)))
        if math.gcd(stride, n) == 1:
            return stride, int(rng.integers(0, n))


@tf.function(input_signature=[tf.TensorSpec([], tf.int64)] * 5 + [tf.TensorSpec([2], tf.int64)]
             + [tf.TensorSpec([], tf.int32)] * 2, autograph=False)
def _chunk_order(n, stride, shift, start, stop, seed, offset, size):
    """Positions ``start .. stop - 1`` of a cell's permutation ``k -> (k * stride + shift) mod n``, shuffled.

    The chunks of one epoch partition the cell's ``n`` ratings without
    holding a permutation of all of them (an epoch's chunks are trained
    rounds apart); each chunk's positions are then shuffled with ``seed``.
    ``offset`` is added and the result padded with zeros to ``size``.
    """
    _TRACES["order"] += 1
    positions = (tf.range(start, stop) * stride + shift) % n
    order = tf.cast(tf.random.experimental.stateless_shuffle(positions, seed=seed), tf.int32) + offset
    return tf.pad(order, [[0, size - tf.cast(stop - start, tf.int32)]])


def _tensorflow_chunk_order(n, stride, shift, start, stop, seed, offset, size=None):
    """:func:`_chunk_order` of Python integers (``size`` None: unpadded); the arguments of :func:`skmfnet._kernel.chunk_order`."""
    return _chunk_order(*(tf.constant(v, tf.int64) for v in (n, stride, shift, start, stop)),
                        tf.constant(seed, tf.int64), tf.constant(offset, tf.int32),
                        tf.constant(stop - start if size is None else size, tf.int32))


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
    negatives=(0, 0.0, 0.0),
    selection=None,
    weights=None,
    validation=None,
    callbacks=(),
    verbose=0,
    n_threads=1,
    exchange=None,
    prepared=None,
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
    negatives : tuple (n_per_batch, centred_rating, weight)
        ``n_per_batch`` sampled pairs join every batch: each user of the batch
        in turn with an item drawn uniformly among the known items (an
        unobserved pair but for the few the user rated), whose target is
        ``centred_rating`` and whose squared error counts ``weight`` times a
        rating's in the batch's loss (no per-rating penalty).  0: the
        rating-only objective, exactly.
    selection : list [S, T] of float32 ndarrays, or None
        Selection tables, ``[factors | bias]`` per user row (``S``) and item
        row (``T``), updated in place.  With them, the sampled pairs train
        these tables only: the selection score ``r_hat(u, i) + s_u . t_i +
        c_u + c_i`` (the rating score held fixed) is fitted to the ratings
        and the imputed rating of the sampled pairs, while the rating tables
        learn from the ratings alone, exactly as without sampled pairs.
        Needs ``negatives``.
    weights : ndarray of shape (n,) or None
        Weight of each rating's squared error and per-rating penalty in its
        batch's loss (the caller scales them to mean 1, so that an integer
        weight counts as that many copies of the rating); None: all 1.
    optimizer : keras.optimizers.Optimizer
        Its rule and hyperparameters (:func:`supports` must hold).  When it
        is the model's optimizer, its state (moments, step count) is set at
        the end to what ``Model.fit`` would have left.
    validation : tuple (X_val, y_val) or None
        Evaluated after each epoch (``val_loss``, ``val_rmse``).
    callbacks : list of keras.callbacks.Callback
        Called at the end of each epoch with the epoch's logs (early stopping
        works as with ``Model.fit``).
    n_threads : int
        Threads.  With more than one, the blocks per side of the stratified
        schedule are :func:`resolve_blocks`'s (module docstring), lowered
        until every cell holds a batch.  1: one thread and one block, the
        Keras path's batches exactly.
    exchange : skmfnet._distribute.RowExchange or None
        Train as worker ``exchange.index`` of ``exchange.size`` (every worker
        runs this function on the same data): the schedule of
        ``exchange.size`` blocks, of which this worker trains the cells of its
        user block, one per round; after each round the workers all-gather
        the item blocks they trained (the next round's cells need them), and
        the user blocks when the weights are read (validation, callbacks,
        the end).  The result is that of the same schedule on threads in one
        process.  With fewer ratings than a batch per cell of one block per
        worker, every worker trains alone on one thread (the same result
        everywhere, no gain).
    prepared : dict or None
        Shared by fits on the same ``X``, ``y`` and ``weights`` (the pairs
        that ``"auto"`` compares): the first fills it with its blocks and
        the ratings' tensors, the next ones of the same schedule reuse them
        instead of building and holding a second copy (the local rows and
        ratings, 12 bytes per rating, plus their numpy staging).

    Returns
    -------
    history : dict of list of float
        ``loss`` and ``rmse`` per epoch (means over the epoch's batches, as
        Keras reports them), and ``val_loss`` / ``val_rmse`` with validation.
    """
    (P, b_u, Q, b_i), K, rule = dot_tables(model, optimizer, "the compiled path")
    width = K + 1
    n = len(y)
    batch = min(batch_size, n)
    n_negatives, negative_target, negative_weight = negatives
    if selection is not None and not n_negatives:
        raise ValueError("selection tables are trained by sampled pairs: negatives must be given")
    configuration = (rule, batch, int(n_negatives), selection is not None)
    negative = tf.constant([negative_target, negative_weight], tf.float32)

    X = np.asarray(X, dtype=np.int32)
    n_rows = [int(P.shape[0]), int(Q.shape[0])]
    if exchange is None:
        wanted = resolve_blocks(n_threads, n, batch)
    else:
        wanted = exchange.size
    # large fits of ratings alone train with the fused numba loop (skmfnet._kernel)
    fused = exchange is None and not n_negatives and n >= KERNEL_RATINGS
    key = (wanted, batch, tuple(n_rows), exchange is None, fused)
    if prepared is not None and prepared.get("key") == key:
        blocks, (X_t, y_t, w_t) = prepared["blocks"], prepared["tensors"]
    else:
        blocks = Blocks(X, n_rows, wanted, batch)
        if exchange is not None and 1 < blocks.p < exchange.size:  # one block per worker, or none
            blocks = Blocks(X, n_rows, 1, batch)
        X_t, y_t, w_t = blocks.tensors(X, y, weights, as_numpy=fused)
        if prepared is not None:
            prepared.clear()
            prepared.update(key=key, blocks=blocks, tensors=(X_t, y_t, w_t))
    p = blocks.p
    distributed = exchange is not None and p > 1
    mine = [exchange.index] if distributed else list(range(p))  # the user blocks trained here
    # each cell's epoch is trained in ``chunks`` calls of about as many
    # batches each, round by round, so that a row meets the other side's
    # blocks in turn several times an epoch (see :data:`ROUND_CHUNKS`)
    fewest = min(blocks.steps(*cell) for cell in blocks.sizes)
    chunks = 1 if p == 1 else max(1, min(ROUND_CHUNKS, fewest // CELL_BATCHES))
    bounds = {cell: [blocks.steps(*cell) * c // chunks for c in range(chunks + 1)] for cell in blocks.sizes}

    def part_steps(a, b, c):
        """Batches of part ``c`` of cell (a, b)."""
        return bounds[a, b][c + 1] - bounds[a, b][c]

    order_size = tf.constant(max(blocks.sizes.values()) if p == 1 else
                             batch * max(part_steps(*cell, c) for cell in bounds for c in range(chunks)), tf.int32)

    # the packed tables of each side, one per block: [factors | bias | state]
    # (variables, which the compiled epoch updates in place; numpy arrays for the fused loop)
    initial = rule.initial(optimizer)
    tables = [(list if fused else _variables)(blocks.pack(side, np.concatenate([np.asarray(f), np.asarray(b)], axis=1),
                                                          rule.slots, initial))
              for side, (f, b) in enumerate(((P, b_u), (Q, b_i)))]
    if selection is None:  # placeholders, read but never written (one per side: XLA takes a variable once)
        sel_tables, sel_penalty = [_variables([tf.zeros([1, 1])]) * p for _ in range(2)], tf.zeros([1])
    else:
        sel_tables = [_variables(blocks.pack(side, table, rule.slots, initial)) for side, table in enumerate(selection)]
        K_s = selection[0].shape[1] - 1
        sel_penalty = tf.constant([alpha] * K_s + [alpha_bias], tf.float32)
    penalty = tf.constant([alpha] * K + [alpha_bias], tf.float32)
    hyper = tf.constant(rule.hyper(optimizer), tf.float32)
    step = tf.constant(0, tf.int64)
    if fused:  # (the loop's own forms of the same settings, once per fit)
        fused_settings = (penalty.numpy(), hyper.numpy(), _kernel.RULES[rule.name])

    def train_cell(epoch, a, b, step, c):
        # the round's p cells count as interleaved batches: cell a takes the
        # steps start + a + 1, start + a + 1 + p, ... (start + 1, + 2, ... with one block)
        if p == 1:
            n_ab = tf.constant(blocks.sizes[a, b], tf.int32)
            order = _epoch_order(n_ab, tf.constant(blocks.order_seed(seed, epoch, a, b), tf.int64),
                                 tf.constant(blocks.offsets[a, b], tf.int32), order_size)
        else:  # chunk c of the cell's permutation of this epoch: its batches bounds[c] .. bounds[c + 1]
            start, stop = bounds[a, b][c] * batch, bounds[a, b][c + 1] * batch
            n_ab = tf.constant(stop - start, tf.int32)
            cell_seed = blocks.order_seed(seed, epoch, a, b)
            stride, shift = _affine(blocks.sizes[a, b], cell_seed)
            # each part's shuffle has a seed of its own: 2**56 + ..., where the cells' are 2**50 + ...
            part_seed = [cell_seed[0], cell_seed[1] * chunks + c + (1 << 56)]
            if fused:  # (drawn by the loop's own generator: skmfnet._kernel.chunk_order)
                order = _kernel.chunk_order(blocks.sizes[a, b], stride, shift, start, stop, part_seed,
                                            blocks.offsets[a, b])
            else:
                order = _tensorflow_chunk_order(blocks.sizes[a, b], stride, shift, start, stop, part_seed,
                                                blocks.offsets[a, b], order_size)
        if fused:
            loss, squared = _kernel.train(tables[0][a], tables[1][b], X_t, y_t, w_t, np.asarray(order),
                                          max(1, int(n_ab) // batch), batch, *fused_settings, int(step), p)
            return None, loss, squared
        return _compile_cache.call(
            _epoch_function(*configuration),
            tables[0][a].handle, tables[1][b].handle, X_t, y_t, order, penalty, hyper, step, negative,
            tf.constant(blocks.n_members(1, b), tf.int32),  # sampled items: the cell's rows 1 .. n
            tf.constant(blocks.sample_seed(seed, a, b), tf.int64),
            sel_tables[0][a].handle, sel_tables[1][b].handle, sel_penalty, w_t, tf.constant(p, tf.int64), n_ab,
            again=lambda: _epoch_function(*configuration, fresh=True),
        )

    callback_list = keras.callbacks.CallbackList(list(callbacks), model=model)
    model.stop_training = False
    callback_list.on_train_begin()
    history = {}
    def share(side, s):
        """All-gather the blocks of ``side`` this worker trained in round ``s`` (users: its own)."""
        for side_tables in (tables[side], sel_tables[side]) if selection is not None else (tables[side],):
            for j, block in enumerate(exchange.all_gather(side_tables[(exchange.index + s * side) % p].read_value())):
                side_tables[(j + s * side) % p].assign(block)

    threads = min(n_threads, len(mine))  # (a round's cells shared out among them)
    with ThreadPoolExecutor(max_workers=threads) if threads > 1 else nullcontext() as pool:
        for epoch in range(epochs):
            sums = np.zeros(2)  # the epoch's loss and squared error, summed over its batches
            total_steps = 0
            for c, s in ((c, s) for c in range(chunks) for s in range(p)):
                # the round's cells share no user and no item: no locks
                jobs = [(epoch, a, (a + s) % p, step + a, c) for a in mine]
                results = list(pool.map(lambda j: train_cell(*j), jobs)) if pool else [train_cell(*j) for j in jobs]
                for (_, a, b, _, _), (_, loss, squared) in zip(jobs, results):
                    sums += np.array([float(loss), float(squared)]) * part_steps(a, b, c)
                if distributed:  # the next round's cells need the item blocks trained in this one
                    share(1, s)
                round_steps = sum(part_steps(a, (a + s) % p, c) for a in range(p))
                total_steps += round_steps
                step = step + round_steps  # Keras's count: every batch trained
            # the weights are read after every epoch with validation or
            # callbacks, else after the last: only then do workers share their users
            last = epoch == epochs - 1
            if distributed:
                sums = np.sum([x.numpy() for x in exchange.all_gather(tf.constant(sums[None], tf.float64))], axis=0)[0]
                if validation is not None or callbacks or last:
                    share(0, 0)
            if validation is not None or callbacks or last:
                for side, (factors, bias) in enumerate(((P, b_u), (Q, b_i))):
                    values = blocks.unpack(side, tables[side], width)
                    factors.assign(values[:, :K])
                    bias.assign(values[:, K:])
            # Keras's RMSE metric is over all the epoch's ratings: with full batches
            # of equal size, the square root of the mean of the batch MSEs
            logs = {"loss": sums[0] / total_steps, "rmse": math.sqrt(sums[1] / total_steps)}
            if end_epoch(model, epoch, epochs, logs, history, callback_list, validation=validation, alpha=alpha,
                         alpha_bias=alpha_bias, verbose=verbose, compiled=threads if fused else 0):
                break
    callback_list.on_train_end()
    if selection is not None:
        for side, array in enumerate(selection):
            array[1:] = blocks.unpack(side, sel_tables[side], array.shape[1])[1:]
    if optimizer is getattr(model, "optimizer", None):
        _store_optimizer_state(model, rule, lambda side, start, stop: blocks.unpack(
            side, tables[side], width + stop, start=width + start, fill=initial), step, K)
    return history


def _variables(tensors):
    """Each tensor (or array) as a variable (not trainable: only the compiled epoch writes it)."""
    return [tf.Variable(tensor, trainable=False) for tensor in tensors]


def dot_tables(model, optimizer, path, rules=(_Adam, _Adagrad, _SGD)):
    """The four embedding variables of a dot network, its K, and the rule of ``optimizer``.

    Shared by the loops that train the tables by hand (this module's and
    :mod:`skmfnet._parameter_server`, which implements ``rules``); ``path``
    names the loop in the error for an optimizer whose rule they do not
    implement.
    """
    rule = _rule_of(optimizer)
    if rule not in rules:
        names = " and ".join(", ".join(implemented.name for implemented in rules).rsplit(", ", 1))
        raise ValueError(f"optimizer: {path} implements {names}, got {optimizer!r}")
    variables = tuple(model.get_layer(name).embeddings for name in (USER_FACTORS, USER_BIAS, ITEM_FACTORS, ITEM_BIAS))
    return variables, int(variables[0].shape[1]), rule


#: ``n_jobs=None`` trains on every usable core from this many ratings on
#: (below it an epoch takes milliseconds and one thread is as fast).
AUTO_PARALLEL_RATINGS = 1 << 19

#: Fits of at least this many ratings (and no sampled pairs, in one
#: process) train with the fused numba loop of :mod:`skmfnet._kernel`
#: instead of the XLA epoch: the sizes where an epoch waits on memory,
#: and where numba's one-time compilation (a few seconds, then cached on
#: disk) is small beside a fit.  Smaller fits, a search's many folds on
#: MovieLens 100K among them, keep the XLA epoch and its traces.
KERNEL_RATINGS = 1 << 19

#: With several threads, each side is cut into this many blocks (or one per
#: thread where the threads are more).  Measured, with the XLA epoch
#: (before the fused loop of :data:`KERNEL_RATINGS`), on this project's
#: 2-core machine with per-epoch medians of
#: the defaults at K=64 on ratings of MovieLens 25M's id shape (``python
#: benchmarks/explore_blocks.py``, two interleaved sweeps; M ratings per
#: second per epoch):
#:
#: ============  ==========  ==========  ==========  ==========
#: ratings       2 blocks    4 blocks    8 blocks    16 blocks
#: ============  ==========  ==========  ==========  ==========
#: 2 million     2.50, 2.10  1.92, 1.96  1.63, 1.45  1.15, 1.30
#: 5 million     1.92, 2.04  2.06, 2.17  2.01, 1.94  1.49, 1.85
#: 25 million    2.49, 2.30  2.76, 2.71              2.28, 2.40
#: ============  ==========  ==========  ==========  ==========
#:
#: (``benchmarks/results/explore_blocks.json`` and
#: ``explore_blocks_25m.json``).  Four blocks were the fastest at 25 million
#: ratings (1.11 and 1.18 times two) and at 5 million (1.07 and 1.06 times),
#: but not at 2 million, where two (one per thread) were 1.30 and 1.07 times
#: as fast; the rule used before (cells cut until their rows fit in 16 MiB,
#: for the cache: 8 blocks at 2 million ratings, 16 at 5 and 25 million)
#: was slower than four everywhere.  A fixed number rather than one block
#: per thread also keeps the result the same for every ``n_jobs`` from 2 up
#: to ``BLOCKS``.  With the fused loop, at 25 million ratings (``--blocks
#: 2,4``, ``explore_blocks_25m_fused.json``): 2 blocks 4.88 and 3.31, 4
#: blocks 4.10 and 3.94: no clear difference within the machine's drift.
BLOCKS = 4

#: ... as long as every cell keeps at least this many batches per epoch (a
#: compiled call per cell and round: a few batches each cost more in calls
#: than the threads save).
CELL_BATCHES = 16

#: Every epoch of the stratified schedule goes through its ``p`` rounds this
#: many times, each time with another part of every cell (at most each
#: cell's batches): a row meets the other side's blocks in turn four times
#: an epoch instead of once.  Trained cell after cell, a row drifts towards
#: the block it last met; at 25 million ratings of MovieLens 25M's id shape
#: (another seed than the benchmark's; K=64, ``alpha=0.03``,
#: ``learning_rate=0.002``, 10 epochs) the best test RMSE was, on four
#: blocks a side (``python benchmarks/explore_schedule.py --chunks
#: 1,2,4,8``, ``benchmarks/results/explore_schedule.json``):
#:
#: ==========  ==========  ==========  ==========  ==========
#: 1 thread    1 chunk     2 chunks    4 chunks    8 chunks
#: ==========  ==========  ==========  ==========  ==========
#: 0.8613      0.8716      0.8652      0.8626      0.8614
#: ==========  ==========  ==========  ==========  ==========
#:
#: with epochs of 10.7 s for one chunk and 12.0 to 12.6 s for more (one
#: fit each).  At 5 million ratings too (``--n-ratings 5000000 --chunks
#: 1,2,4``, ``explore_schedule_5m.json``): one thread 0.9217, four blocks
#: in 1, 2, 4 chunks 0.9282, 0.9236, 0.9222, with epochs of 2.5, 2.5 and
#: 2.7 s.  Four: most of the accuracy of one thread, for some time per
#: epoch (the threads meet 4 times as often).  Fewer where a
#: part would hold fewer than :data:`CELL_BATCHES` batches (on small data a
#: part of a batch or two gains nothing and costs a call).
ROUND_CHUNKS = 4


def resolve_blocks(n_threads, n_ratings, batch):
    """Blocks per side of a fit on ``n_threads`` threads: see the module docstring.

    :data:`BLOCKS`, halved while a cell (of ``n_ratings`` in ``p x p``
    cells) would hold fewer than :data:`CELL_BATCHES` batches of ``batch``
    ratings, or one per thread where the threads are more.  So the number
    of threads changes the schedule (and the result) only where it exceeds
    that.  One thread: one block (the Keras path's batches).
    """
    if n_threads <= 1:
        return 1
    p = 1
    while p < BLOCKS and (2 * p) ** 2 * CELL_BATCHES * batch <= n_ratings:
        p *= 2
    return max(p, n_threads)


def resolve_threads(n_jobs, n_ratings):
    """Threads of a fit of ``n_ratings``: see :func:`fit_rows`'s ``n_threads``.

    ``None``: every usable core when there are at least
    :data:`AUTO_PARALLEL_RATINGS` ratings, else 1; a negative ``n_jobs``
    counts from the number of cores as in joblib (-1: all, -2: all but one).
    """
    cores = joblib.cpu_count()
    if n_jobs is None:
        return cores if n_ratings >= AUTO_PARALLEL_RATINGS else 1
    if n_jobs < 0:
        return max(1, cores + 1 + n_jobs)
    return int(n_jobs)


class Blocks:
    """The rows of both sides cut into ``p`` blocks each, and the ratings into the ``p x p`` cells.

    Rows are dealt to blocks in decreasing order of their ratings, snaking
    (0, 1, ..., p-1, p-1, ..., 0, 0, ...), so that the blocks, and so the
    cells, hold about as many ratings each.  Block ``a`` of a side holds its
    rows at local rows 1 .. n_a (row 0 is never trained: it stands for
    unknown ids); with ``p == 1`` local rows are the network's rows.  ``p``
    is lowered until every cell holds at least one batch of ratings.
    """

    def __init__(self, X, n_rows, p, batch):
        p = max(1, min(p, min(n_rows) - 1))
        while True:
            self.block, self.local_rows, self.members = [], [], []
            for side, rows in enumerate(n_rows):
                block = np.zeros(rows, np.int32)
                if p > 1:
                    counts = np.bincount(X[:, side], minlength=rows)
                    dealt = np.argsort(-counts[1:], kind="stable") + 1
                    snake = np.concatenate([np.arange(p), np.arange(p)[::-1]])
                    block[dealt] = snake[np.arange(len(dealt)) % (2 * p)]
                local = np.zeros(rows, np.int32)
                members = []
                for a in range(p):
                    rows_a = np.flatnonzero(block == a)
                    rows_a = rows_a[rows_a > 0]
                    local[rows_a] = np.arange(1, len(rows_a) + 1)
                    members.append(rows_a)
                self.block.append(block)
                self.local_rows.append(local)
                self.members.append(members)
            if p == 1:
                break
            # each rating's cell, in place: 4 bytes per rating at most beside X
            cell = self.block[0][X[:, 0]]
            cell *= p
            cell += self.block[1][X[:, 1]]
            sizes = np.bincount(cell, minlength=p * p)
            if sizes.min() >= batch:
                break
            p -= 1
        self.p = p
        self.batch = batch
        self.n_rows = list(n_rows)
        #: ratings of each cell: their positions in X (None: all, with one block)
        self.cells = {(0, 0): None} if p == 1 else {}
        self.sizes = {(0, 0): len(X)} if p == 1 else {}
        #: where each cell's ratings start in :meth:`tensors`
        self.offsets = {(0, 0): 0} if p == 1 else {}
        if p > 1:
            start = 0
            for a in range(p):
                for b in range(p):
                    self.cells[a, b] = np.flatnonzero(cell == a * p + b).astype(np.int32)
                    self.sizes[a, b] = int(sizes[a * p + b])
                    self.offsets[a, b] = start
                    start += self.sizes[a, b]
            del cell
        # one table shape per side: XLA compiles one program for every block
        self._rows = [_bucket(1 + max(len(m) for m in members)) for members in self.members]

    def local(self, X, index):
        """The cell's ratings ``X[index]`` (network rows) as local rows of their blocks."""
        return np.stack([self.local_rows[0][X[index, 0]], self.local_rows[1][X[index, 1]]], axis=1)

    def tensors(self, X, y, weights, as_numpy=False):
        """(local rows, ratings, weights) of every cell as three tensors; the cells' positions are dropped.

        Cell (a, b) holds positions ``offsets[a, b]`` .. ``+ sizes[a, b]``:
        one tensor for all cells, so that every cell's compiled call sees the
        same shapes (one XLA program per fit, not one per cell).  Without
        weights, one weight (1) stands for all.  Each array is gathered into
        numpy first, then copied into its tensor; the numpy copy is dropped
        before the next array is gathered.  ``as_numpy``: numpy arrays
        instead of tensors (for :mod:`skmfnet._kernel`).
        """
        cells = [self.cells.pop(key) for key in list(self.cells)]
        constant = np.ascontiguousarray if as_numpy else tf.constant
        one = np.ones(1, np.float32) if as_numpy else tf.ones([1])
        if cells == [None]:  # one block: the network's rows, in their order
            return (constant(X), constant(np.asarray(y, dtype=np.float32)),
                    one if weights is None else constant(np.asarray(weights, dtype=np.float32)))

        def grouped(take, shape, dtype):
            out = np.empty(shape, dtype=dtype)
            start = 0
            for index in cells:
                out[start: start + len(index)] = take(index)
                start += len(index)
            return out if as_numpy else tf.constant(out)

        n = len(X)
        return (grouped(lambda index: self.local(X, index), (n, 2), np.int32),
                grouped(lambda index: y[index], n, np.float32),
                one if weights is None else grouped(lambda index: weights[index], n, np.float32))

    def steps(self, a, b):
        """Batches of cell (a, b) per epoch (those of the compiled epoch on its ratings)."""
        return max(1, self.sizes[a, b] // self.batch)

    def n_members(self, side, a):
        """Rows of block ``a`` of ``side`` (its local rows are 1 .. n)."""
        return len(self.members[side][a])

    def order_seed(self, seed, epoch, a, b):
        """Stateless seed of cell (a, b)'s shuffle in ``epoch``: ``(seed, epoch)`` with one block."""
        return [seed, epoch] if self.p == 1 else [seed, (1 << 50) + (epoch * self.p + a) * self.p + b]

    def sample_seed(self, seed, a, b):
        """Seed of cell (a, b)'s sampled items (``seed`` with one block)."""
        return seed if self.p == 1 else seed + ((a * self.p + b + 1) << 32)

    def pack(self, side, weights, slots, initial=0.0):
        """Block tables ``[weights | optimizer state (all ``initial``)]`` of a side's full ``weights``.

        Yields them one at a time, as numpy arrays, so that a caller that
        copies each into a variable holds one block beside the variables.
        """
        for members in self.members[side]:
            table = np.zeros((self._rows[side], weights.shape[1] * (1 + slots)), dtype=np.float32)
            table[:, weights.shape[1]:] = initial
            table[1: len(members) + 1, : weights.shape[1]] = weights[members]
            yield table

    def unpack(self, side, tables, stop, start=0, fill=0.0):
        """Columns ``start:stop`` of a side's trained rows, one per network row (row 0: ``fill``).

        With one block, a slice of its table (no copy beyond the slice's);
        else the blocks' rows gathered back into network order.
        """
        if self.p == 1:
            return tables[0][: self.n_rows[side], start:stop]
        out = np.full((self.n_rows[side], stop - start), fill, dtype=np.float32)
        for members, table in zip(self.members[side], tables):
            out[members] = table[1: len(members) + 1, start:stop]
        return out


def end_epoch(model, epoch, epochs, logs, history, callback_list, *, validation, alpha, alpha_bias, verbose,
              compiled=0):
    """Validation, history, progress line and callbacks after an epoch whose weights are in ``model``.

    Returns whether training stops (a callback such as early stopping set
    ``model.stop_training``).  ``compiled``: threads of the validation's
    compiled scoring (:func:`_evaluate`); 0: numpy.
    """
    if validation is not None:
        logs.update(_evaluate(model, *validation, alpha=alpha, alpha_bias=alpha_bias, compiled=compiled))
    for key, value in logs.items():
        history.setdefault(key, []).append(value)
    if verbose:
        print(f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
    callback_list.on_epoch_end(epoch, logs)
    return model.stop_training


def _store_optimizer_state(model, rule, read, step, K):
    """Copy the optimizer's state (moments, step count) into the model's optimizer.

    The compiled Keras model then holds the optimizer state it would have
    after ``Model.fit`` (saved with it, and ready to continue training).
    Moments are those of the last epoch, also when early stopping restored
    earlier weights (as with ``Model.fit``).  ``read(side, start, stop)``:
    columns ``start:stop`` of the optimizer state of a side's rows (0:
    users, 1: items), one per network row; read one variable at a time, so
    that the packed rows are never copied out whole (weights and moments:
    about 170 MB at 25 million ratings and K=64).
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
        rule.store(optimizer, optimizer._get_variable_index(variables[name]),
                   lambda start, stop: read(side, start, stop), columns, width)
    optimizer.iterations.assign(step)


def _evaluate(model, X, y, *, alpha, alpha_bias, compiled=0):
    """val_rmse and val_loss (MSE plus the per-rating penalty, as Keras's evaluate).

    The network is the plain dot model, so its scores are computed from its
    four tables here, in chunks of :data:`SCORE_BATCH` ratings, and each
    row's squared norm once per row: calling the network on every chunk,
    and squaring every validation rating's gathered rows, cost a large share
    of an epoch when millions of ratings are held out, and gathered all
    their rows at once (2.5 million x 64 x 4 bytes per side at 25 million).
    ``compiled``: with that many threads (at least 1), by
    :func:`skmfnet._kernel.evaluate` instead, in one pass over the ratings
    (the fused loop's fits: numpy's gathers took about a ninth of an
    epoch at 25 million ratings, the other threads idle meanwhile; see
    :mod:`skmfnet._kernel`).
    """
    X = np.asarray(X, dtype=np.int32)
    y = np.asarray(y, dtype=np.float64)
    P, b_u, Q, b_i = (
        model.get_layer(name).embeddings.numpy() for name in (USER_FACTORS, USER_BIAS, ITEM_FACTORS, ITEM_BIAS)
    )
    users, items = X[:, 0], X[:, 1]
    if compiled:
        squared, norm_p, norm_q, bias_u, bias_i = _kernel.evaluate(
            P, b_u, Q, b_i, np.ascontiguousarray(users), np.ascontiguousarray(items), y, n_threads=compiled)
        n = max(len(y), 1)
        mse = squared / n
        penalty = (alpha * (norm_p + norm_q) + alpha_bias * (bias_u + bias_i)) / n
        return {"val_loss": mse + penalty, "val_rmse": math.sqrt(mse)}
    pred = np.empty(len(y), dtype=np.float32)
    for start in range(0, len(y), SCORE_BATCH):
        u, i = users[start : start + SCORE_BATCH], items[start : start + SCORE_BATCH]
        pred[start : start + SCORE_BATCH] = b_u[u, 0] + b_i[i, 0] + np.einsum("ij,ij->i", P[u], Q[i])
    mse = float(np.mean((pred - y) ** 2))
    penalty = alpha * (
        np.mean(np.sum(P**2, axis=1)[users]) + np.mean(np.sum(Q**2, axis=1)[items])
    ) + alpha_bias * (np.mean(b_u[users, 0] ** 2) + np.mean(b_i[items, 0] ** 2))
    return {"val_loss": mse + float(penalty), "val_rmse": math.sqrt(mse)}
