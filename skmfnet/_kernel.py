"""A fused, compiled loop over a cell's batches: the compiled path's rule on large data.

:mod:`skmfnet._rowfit` writes a batch's step as whole-batch TensorFlow ops
(gather the rows, score, sum the gradients of repeated rows, apply the
optimizer's rule, scatter) and lets XLA compile the epoch's loop.  XLA runs
those ops one after another, each a pass over the batch with its own
buffers, on one thread, and nothing fetches the next rows while the
current ones are computed: on tables far larger than the processor's caches
(MovieLens 25M's shape: 162,000 users and 59,000 items, each row with its
Adam moments 780 bytes at K=64) a step waits on memory most of the time.
Neither TensorFlow nor Keras has a fused sparse-embedding update on the
CPU, so this module writes the same step as one loop per batch, compiled by
numba (``nogil``: the stratified schedule's threads run it side by side):

* pass 1 scores each rating and records, per row, its owner (the last
  position of the batch that holds it), while the processor is asked to
  prefetch every cache line of the rows of the rating :data:`PREFETCH`
  positions ahead (the rows with their optimizer state, which the update
  reads at the end of the batch);
* pass 2 sums each row's gradients (and, for Adagrad, their squares) at its
  owner;
* pass 3 applies the rule (:class:`skmfnet._rowfit._Adam` and the others,
  the same arithmetic) to each owner's row in place, prefetching the rows
  :data:`PREFETCH` positions ahead again (a batch's rows with their state,
  1.6 MB at K=64, outgrow the processor's nearest caches).

The batches, the order of the ratings, the objective and the rule are those
of the XLA epoch (``run_epoch`` in :mod:`skmfnet._rowfit`), so the two
follow the same trajectory up to floating-point rounding (tested), and the
schedule around them (blocks, rounds, chunks, threads) is unchanged.  The
kernel does not sample pairs (``negative_ratio``) or train selection
tables; those fits keep the XLA epoch.  ``python benchmarks/speed.py``
measures what it gains.

numba is imported, and the loop compiled, on the first fit that uses it
(a few seconds); while skmfnet's cache of compiled programs is on
(:mod:`skmfnet._compile_cache`: not with ``SKMFNET_CACHE_DIR`` set and
empty) the compiled loop is kept in numba's own on-disk cache, and later
processes load it from there.
"""

import functools

import numpy as np

from . import _compile_cache

__all__ = ["RULES", "load", "train"]

#: Rule codes of the kernel, by the name of :mod:`skmfnet._rowfit`'s rule class.
RULES = {"SGD without momentum": 0, "Adagrad": 1, "LazyAdam": 2}

#: How many ratings ahead pass 1 prefetches the rows of.
PREFETCH = 8

def train(table_u, table_i, X, y, weights, order, n_steps, batch, penalty, hyper, rule, step, stride):
    """Train ``n_steps`` batches of ``batch`` ratings, in place; returns (mean loss, mean squared error).

    Parameters as the XLA epoch's: ``table_u``, ``table_i`` packed
    ``[factors | bias | state]`` float32 tables (C-contiguous, updated in
    place), ``X`` (n, 2) int32 local rows, ``y`` and ``weights`` float32
    (one weight stands for all), ``order`` the positions of the batches'
    ratings in ``X``, ``penalty`` (K + 1,) float32, ``hyper`` the rule's
    hyperparameters, ``rule`` a code of :data:`RULES`; batch ``s`` counts as
    optimizer step ``step + (s + 1) * stride``.
    """
    padded = np.zeros(4, np.float32)  # (the rules' one, two or four hyperparameters)
    padded[: len(hyper)] = hyper
    loss, squared = load()(table_u, table_i, X, y, weights, order, int(n_steps), int(batch), penalty, padded,
                              int(rule), int(step), int(stride), PREFETCH)
    return loss / max(n_steps, 1), squared / max(n_steps, 1)


def _compile():
    """The numba loop (imported here: ``import skmfnet`` does not pay for numba)."""
    import numba
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic
    def prefetch(typingctx, array, index):
        """Ask the processor to fetch ``array.flat[index]``'s cache line (LLVM's ``llvm.prefetch``)."""
        def codegen(context, builder, signature, args):
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            pointer = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(8).as_pointer())
            i32 = ir.IntType(32)
            function = builder.module.declare_intrinsic(
                "llvm.prefetch", [pointer.type], ir.FunctionType(ir.VoidType(), [pointer.type, i32, i32, i32]))
            # (write, high locality, data cache)
            builder.call(function, [pointer, i32(1), i32(3), i32(1)])
            return context.get_dummy_value()

        return types.void(array, types.intp), codegen

    @numba.njit(inline="always")
    def prefetch_row(flat, row, width):
        """Prefetch every cache line (16 float32) of row ``row`` of a table of ``width`` columns, seen flat."""
        for c in range(0, width, 16):
            prefetch(flat, row * width + c)

    # error_model="numpy": no Python-style ZeroDivisionError branch, which
    # keeps the rule's loops vectorized; fastmath: the dot product's sum may
    # be reordered (the results differ from XLA's by rounding only)
    options = dict(nogil=True, fastmath=True, error_model="numpy")

    def jit(function):
        """``function`` compiled, kept in numba's on-disk cache where skmfnet's own cache is on."""
        if _compile_cache.enabled_directory() is not None:
            try:
                return numba.njit(cache=True, **options)(function)
            except RuntimeError:  # numba found no folder it can write its cache in
                pass
        return numba.njit(**options)(function)

    @numba.njit(inline="always", **options)
    def apply(row, g, g2, K1, rule, h0, h1, h2, h3, rate):
        if rule == 0:  # SGD: w -= lr * g
            for f in range(K1):
                row[f] -= h0 * g[f]
        elif rule == 1:  # Adagrad: accumulator += squares; w -= lr * g / sqrt(accumulator + epsilon)
            for f in range(K1):
                a = row[K1 + f] + g2[f]
                row[K1 + f] = a
                row[f] -= h0 * g[f] / np.sqrt(a + h1)
        else:  # Adam with the bias correction folded into rate
            for f in range(K1):
                m = h1 * row[K1 + f] + (np.float32(1) - h1) * g[f]
                v = h2 * row[2 * K1 + f] + (np.float32(1) - h2) * g[f] * g[f]
                row[K1 + f] = m
                row[2 * K1 + f] = v
                row[f] -= rate * m / (np.sqrt(v) + h3)

    @jit
    def run(table_u, table_i, X, y, weights, order, n_steps, batch, penalty, hyper, rule, step, stride, ahead):
        K1 = penalty.shape[0]
        K = K1 - 1
        width_u, width_i = table_u.shape[1], table_i.shape[1]
        flat_u, flat_i = table_u.reshape(-1), table_i.reshape(-1)
        n_weights = weights.shape[0]
        # owner: the last position of the batch that holds the row
        owner_u, owner_i = np.empty(table_u.shape[0], np.int32), np.empty(table_i.shape[0], np.int32)
        grad_u, grad_i = np.empty((batch, K1), np.float32), np.empty((batch, K1), np.float32)
        squares = rule == 1
        sq_u = np.empty((batch if squares else 1, K1), np.float32)
        sq_i = np.empty((batch if squares else 1, K1), np.float32)
        users, items = np.empty(batch, np.int32), np.empty(batch, np.int32)
        error, weight = np.empty(batch, np.float32), np.empty(batch, np.float32)
        scale = np.float32(2.0 / batch)
        h0, h1, h2, h3 = hyper[0], hyper[1], hyper[2], hyper[3]
        end = n_steps * batch
        total_loss, total_squared = 0.0, 0.0
        for s in range(n_steps):
            base = s * batch
            # pass 1: scores, errors, owners; the rows ``ahead`` ratings on are prefetched
            squared, penalised = 0.0, 0.0
            for j in range(batch):
                if base + j + ahead < end:
                    r = order[base + j + ahead]
                    prefetch_row(flat_u, X[r, 0], width_u)
                    prefetch_row(flat_i, X[r, 1], width_i)
                r = order[base + j]
                u, i = X[r, 0], X[r, 1]
                w = weights[min(r, n_weights - 1)]
                users[j], items[j], weight[j] = u, i, w
                score = table_u[u, K] + table_i[i, K]
                for f in range(K):
                    score += table_u[u, f] * table_i[i, f]
                e = score - y[r]
                squared += w * e * e
                error[j] = scale * w * e
                owner_u[u] = j
                owner_i[i] = j
            # pass 2: each row's gradients (and their squares) summed at its owner
            for j in range(batch):
                if owner_u[users[j]] == j:
                    grad_u[j, :] = 0
                    if squares:
                        sq_u[j, :] = 0
                if owner_i[items[j]] == j:
                    grad_i[j, :] = 0
                    if squares:
                        sq_i[j, :] = 0
            for j in range(batch):
                u, i = users[j], items[j]
                a, b = owner_u[u], owner_i[i]
                e, shrink = error[j], scale * weight[j]
                norms = penalty[K] * (table_u[u, K] * table_u[u, K] + table_i[i, K] * table_i[i, K])
                for f in range(K):
                    p, q = table_u[u, f], table_i[i, f]
                    norms += penalty[f] * (p * p + q * q)
                    gu = e * q + shrink * penalty[f] * p
                    gi = e * p + shrink * penalty[f] * q
                    grad_u[a, f] += gu
                    grad_i[b, f] += gi
                    if squares:
                        sq_u[a, f] += gu * gu
                        sq_i[b, f] += gi * gi
                gu = e + shrink * penalty[K] * table_u[u, K]  # the biases
                gi = e + shrink * penalty[K] * table_i[i, K]
                grad_u[a, K] += gu
                grad_i[b, K] += gi
                if squares:
                    sq_u[a, K] += gu * gu
                    sq_i[b, K] += gi * gi
                penalised += weight[j] * norms
            total_squared += squared / batch
            total_loss += (squared + penalised) / batch
            # pass 3: the rule, on each owner's row (prefetched again: the
            # batch's rows with their state outgrow the nearest caches)
            t = step + (s + 1) * stride
            rate = np.float32(h0 * np.sqrt(1.0 - h2 ** t) / (1.0 - h1 ** t)) if rule == 2 else h0
            for j in range(batch):
                if j + ahead < batch:
                    prefetch_row(flat_u, users[j + ahead], width_u)
                    prefetch_row(flat_i, items[j + ahead], width_i)
                u, i = users[j], items[j]
                if owner_u[u] == j:
                    apply(table_u[u], grad_u[j], sq_u[j if squares else 0], K1, rule, h0, h1, h2, h3, rate)
                if owner_i[i] == j:
                    apply(table_i[i], grad_i[j], sq_i[j if squares else 0], K1, rule, h0, h1, h2, h3, rate)
        return total_loss, total_squared

    return run


#: The compiled loop: compiled (or read from numba's cache) on the first call.
load = functools.cache(_compile)
