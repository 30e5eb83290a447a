"""Tables sharded over parameter servers: ``distribution="parameter_server"``.

For tables larger than one machine.  The engine is TensorFlow's
:class:`tf.distribute.experimental.ParameterServerStrategy`: the packed user
and item tables (``[factors | bias | optimizer state]`` per row, as in
:mod:`skmfnet._training._schedule`) are ``tf.Variable`` objects created in its scope with
a ``FixedShardsPartitioner``, so each parameter server holds a contiguous
shard of each table's rows (a ``ShardedVariable``) and no process holds a
whole table during training.  The chief (the process that calls ``fit``)
cuts every epoch into chunks of batches and schedules them on the workers
through :class:`tf.distribute.experimental.coordinator.ClusterCoordinator`;
a chunk, for each of its batches, reads the rows of the batch from the
servers, computes the compiled path's step (same objective, the gradients
of a row that occurs several times summed, LazyAdam's or SGD's rule on those
rows only, :class:`skmfnet._training._rules._Adam` / ``_SGD``) and writes the new rows
back.  After each epoch the chief reads the tables into the Keras model, so
callbacks, ``predict`` and pickling see an ordinary fitted model.

Why a hand-written loop: Keras 3.15's ``Model.fit`` has no
``ClusterCoordinator`` path (its trainer never mentions parameter servers),
and a Keras optimizer would read and write whole tables.

Why the chief probes the servers before it creates the strategy
(:func:`skmfnet._training._cluster.make_parameter_server_strategy`): the
strategy's constructor connects to every worker and parameter server with no
deadline (TensorFlow's ``context.ensure_initialized`` passes a timeout of 0,
"no timeout"), so a server that never starts would hang the chief.  Before
that, :func:`skmfnet._training._cluster.wait_for_servers` waits until every address of ``TF_CONFIG``
accepts a TCP connection, for ``SKMFNET_CLUSTER_TIMEOUT`` seconds at most,
and fails with the addresses that did not.  For the same reason the chief
fails, instead of waiting, when no batch finishes for that long
(:func:`_join`), and turns TensorFlow's errors of a lost server into one
that says so.

Semantics: parameter-server training is asynchronous.  Workers take chunks
as they become free and apply their updates without waiting for each other,
so a row may be read by one worker while another updates it; the step count
of Adam's bias correction is one shared counter.  Results therefore vary
from run to run (``random_state`` fixes the initialisation and the epochs'
shuffles, not the interleaving), and match a one-process fit within
tolerance, not exactly (``tests/test_distributed.py``).
"""

import threading
import time

import keras
import numpy as np
import tensorflow as tf

from ._cluster import TIMEOUT_VARIABLE, cluster_timeout, tensorflow_said
from ._rules import _SGD, _Adam, dot_tables, store_optimizer_state
from ._schedule import end_epoch, epoch_order

__all__ = ["CHUNK_BATCHES", "ClusterLost", "fit_parameter_server"]


class ClusterLost(RuntimeError):
    """Training stopped because parameter servers or workers stopped or became unreachable."""

#: Batches per scheduled chunk: one remote call trains this many batches, so
#: that the chief's scheduling and the transfer of the ratings are paid per
#: chunk, not per batch.
CHUNK_BATCHES = 16


def _join(coordinator, step, timeout):
    """``coordinator.join()``, but failing when no batch finishes for ``timeout`` seconds.

    TensorFlow's coordinator waits for a worker that stopped to come back (it
    expects preempted workers to be restarted), so with every worker gone
    ``join()`` would never return.  Progress is the shared step counter (one
    increment per batch, on a parameter server), read once a second.
    """
    last, since, checked = None, time.monotonic(), 0.0
    while not coordinator.done():  # raises the error of a failed chunk
        now = time.monotonic()
        if now - checked >= 1.0:
            checked = now
            current = int(step.read_value())
            if current != last:
                last, since = current, now
            elif now - since >= timeout:
                raise ClusterLost(
                    f"distribution='parameter_server': no batch finished for {timeout:g} s "
                    f"({TIMEOUT_VARIABLE}): every worker stopped or is unreachable. Restart the workers, then "
                    "the fit."
                )
        time.sleep(0.01)
    coordinator.join()


def _abandon(coordinator):
    """Let a coordinator whose cluster failed be finalized without waiting for the lost workers.

    TensorFlow's failure handler, once a worker is lost, holds its cluster
    lock while it waits, with no deadline, for the worker to come back
    (``update_server_def``); the coordinator's finalizer (``__del__`` ->
    ``stop()``) takes the same lock, so the process would hang when it exits
    after the error this module raises.  The handler's thread keeps the lock
    object it holds; ``stop()`` gets a fresh one.  (TensorFlow's private
    attributes: looked up, never assumed.)
    """
    handler = getattr(getattr(coordinator, "_cluster", None), "failure_handler", None)
    if handler is not None and hasattr(handler, "_cluster_update_lock"):
        handler._should_preemption_thread_run = False
        handler._cluster_update_lock = threading.Lock()


def fit_parameter_server(
    model,
    X,
    y,
    *,
    strategy,
    optimizer,
    epochs,
    batch_size,
    alpha,
    alpha_bias,
    seed,
    weights=None,
    validation=None,
    callbacks=(),
    verbose=0,
):
    """Train the four embedding tables of a dot network on the cluster of ``strategy``.

    Arguments as :func:`skmfnet._training._schedule.fit_rows`.  Returns ``(history,
    layout)``: the per-epoch history and, per table (``"user"``,
    ``"item"``), the ``(device, rows)`` of each of its shards.
    """
    # (Adagrad's rule, which needs its gradients' squares, is the compiled path's only)
    (P, b_u, Q, b_i), K, rule = dot_tables(model, optimizer, "the parameter-server path", rules=(_Adam, _SGD))
    width = K + 1
    n = len(y)
    batch = min(batch_size, n)
    steps = max(1, n // batch)
    X = np.asarray(X, dtype=np.int32)
    y = np.asarray(y, dtype=np.float32)
    weights = np.ones(n, np.float32) if weights is None else np.asarray(weights, dtype=np.float32)

    def packed(factors, bias):
        table = np.zeros((factors.shape[0], width * (1 + rule.slots)), dtype=np.float32)
        table[:, :K], table[:, K:width] = np.asarray(factors), np.asarray(bias)
        return table

    with strategy.scope():
        table_u = tf.Variable(packed(P, b_u), name="user_table")
        table_i = tf.Variable(packed(Q, b_i), name="item_table")
        step = tf.Variable(0, dtype=tf.int64, name="step")
    layout = {side: [(v.device, int(v.shape[0])) for v in table.variables]
              for side, table in (("user", table_u), ("item", table_i))}
    penalty = tf.constant([alpha] * K + [alpha_bias], tf.float32)
    hyper = tf.constant(rule.hyper(optimizer), tf.float32)

    def update(table, rows, state, gradient, t):
        # the gradients of a row's occurrences are summed and applied once
        unique, position = tf.unique(rows)
        g = tf.math.unsorted_segment_sum(gradient, position, tf.size(unique))
        first = tf.math.unsorted_segment_min(tf.range(tf.size(rows)), position, tf.size(unique))
        current = tf.gather(state, first)
        new = rule.apply(current[:, :width], current[:, width:], g, t, hyper)
        table.scatter_update(tf.IndexedSlices(new, unique))

    @tf.function(autograph=False)
    def train_chunk(X_c, y_c, w_c):
        def body(s, total_loss, total_squared):
            users, items = X_c[s * batch:(s + 1) * batch, 0], X_c[s * batch:(s + 1) * batch, 1]
            target, w = y_c[s * batch:(s + 1) * batch], w_c[s * batch:(s + 1) * batch]
            state_u = tf.nn.embedding_lookup(table_u, users)
            state_i = tf.nn.embedding_lookup(table_i, items)
            U, V = state_u[:, :width], state_i[:, :width]
            error = tf.reduce_sum(U[:, :K] * V[:, :K], axis=1) + U[:, K] + V[:, K] - target
            squared = tf.reduce_mean(w * error * error)
            loss = (squared + tf.reduce_sum(tf.reduce_mean(w[:, None] * U * U, axis=0) * penalty)
                    + tf.reduce_sum(tf.reduce_mean(w[:, None] * V * V, axis=0) * penalty))
            ones = tf.ones_like(error[:, None])
            weighted = (w * error)[:, None]
            grad_U = (2.0 / batch) * (weighted * tf.concat([V[:, :K], ones], axis=1) + w[:, None] * penalty * U)
            grad_V = (2.0 / batch) * (weighted * tf.concat([U[:, :K], ones], axis=1) + w[:, None] * penalty * V)
            t = step.assign_add(1)
            update(table_u, users, state_u, grad_U, t)
            update(table_i, items, state_i, grad_V, t)
            return s + 1, total_loss + loss, total_squared + squared

        n_batches = tf.shape(y_c)[0] // batch
        zero = tf.constant(0.0)
        _, total_loss, total_squared = tf.while_loop(lambda s, *_: s < n_batches, body, (tf.constant(0), zero, zero))
        return tf.stack([total_loss, total_squared])

    coordinator = tf.distribute.experimental.coordinator.ClusterCoordinator(strategy)
    timeout = cluster_timeout()
    callback_list = keras.callbacks.CallbackList(list(callbacks), model=model)
    model.stop_training = False
    callback_list.on_train_begin()
    history = {}
    for epoch in range(epochs):
        # the same batches as the other paths: the stateless shuffle of (seed, epoch)
        order = epoch_order(n, seed, epoch)[: steps * batch]
        chunk = CHUNK_BATCHES * batch
        try:
            results = [
                coordinator.schedule(train_chunk,
                                     args=(tf.constant(X[part]), tf.constant(y[part]), tf.constant(weights[part])))
                for part in (order[start:start + chunk] for start in range(0, len(order), chunk))
            ]
            _join(coordinator, step, timeout)
            sums = np.sum([r.fetch() for r in results], axis=0)
            for table, (factors, bias) in ((table_u, (P, b_u)), (table_i, (Q, b_i))):
                values = tf.concat(table.variables, axis=0)  # the shards, read from the servers
                factors.assign(values[:, :K])
                bias.assign(values[:, K:width])
        except ClusterLost:
            _abandon(coordinator)
            raise
        except tf.errors.OpError as error:
            _abandon(coordinator)
            raise ClusterLost(
                "distribution='parameter_server': training stopped: a parameter server or worker stopped, was "
                f"killed or is unreachable. Restart the servers, then the fit. {tensorflow_said(error)}"
            ) from error
        logs = {"loss": float(sums[0]) / steps, "rmse": float(np.sqrt(sums[1] / steps))}
        if end_epoch(model, epoch, epochs, logs, history, callback_list, validation=validation, alpha=alpha,
                     alpha_bias=alpha_bias, verbose=verbose):
            break
    callback_list.on_train_end()
    if optimizer is getattr(model, "optimizer", None):
        tables = [tf.concat(table.variables, axis=0) for table in (table_u, table_i)]
        store_optimizer_state(model, rule, lambda side, start, stop: tables[side][:, width + start:width + stop],
                               step.read_value(), K)
    return history, layout
