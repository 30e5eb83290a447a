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
  prefetch the cache lines of the weights of the rows of the rating
  :data:`PREFETCH` positions ahead;
* pass 2 sums each row's gradients (and, for Adagrad, their squares) at its
  owner;
* pass 3 applies the rule (:class:`skmfnet._rowfit._Adam` and the others,
  the same arithmetic) to each owner's row in place, prefetching the whole
  rows (weights and optimizer state) :data:`PREFETCH` positions ahead.
  Pass 1 once prefetched the state too, which a batch's rows (1.6 MB at
  K=64 with Adam's moments) pushed out of the nearest caches before pass 3
  used it: fetched once, late, the loop took 6.3 s of thread time per
  epoch at 25 million ratings instead of 6.7 to 6.9, and the epoch 3.6 to
  3.7 s instead of 3.8 to 4.0 (``benchmarks/results/explore_epoch.json``).

The batches, the order of the ratings, the objective and the rule are those
of the XLA epoch (``run_epoch`` in :mod:`skmfnet._rowfit`), so the two
follow the same trajectory up to floating-point rounding (tested), and the
schedule around them (blocks, rounds, chunks, threads) is unchanged.  The
kernel does not sample pairs (``negative_ratio``) or train selection
tables; those fits keep the XLA epoch.  ``python benchmarks/speed.py``
measures what it gains.

Two smaller loops serve the same fits, for the work around the epoch that
had become a large share of it once the epoch was fast.  At 25 million
ratings of the defaults (``python benchmarks/explore_epoch.py``,
``benchmarks/results/explore_epoch.json``) TensorFlow's shuffles of the
cells' parts took about 0.5 s of thread time in an epoch of 5.0 to 5.2 s
(and slowed the loop beside them: its thread time fell from 7.6 s to 6.7
to 7.2 s without them), numpy's scoring of the held-out ratings about 0.57 s on one
thread while the other waited; with these two loops the epoch took 3.7 to
4.0 s:

* :func:`chunk_order` draws the order of a cell's part (Fisher-Yates with
  SplitMix64, without the global lock): so on blocks, the fused loop's
  fits take other batches than the XLA epoch's for the same seed (the
  same in distribution, tested; the parity tests give both the same
  orders);
* :func:`evaluate` scores held-out ratings and sums the squared norms of
  their rows in one pass, split among the fit's threads.

numba is imported, and the loop compiled, on the first fit that uses it
(a few seconds); while skmfnet's cache of compiled programs is on
(:mod:`skmfnet._compile_cache`: not with ``SKMFNET_CACHE_DIR`` set and
empty) the compiled loop is kept in numba's own on-disk cache, and later
processes load it from there.
"""

import functools
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np

from . import _compile_cache

__all__ = ["RULES", "chunk_order", "evaluate", "load", "train"]

#: Rule codes of the kernel, by the name of :mod:`skmfnet._rowfit`'s rule class.
RULES = {"SGD without momentum": 0, "Adagrad": 1, "LazyAdam": 2}

#: How many ratings ahead passes 1 and 3 prefetch the rows of.
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
    loss, squared = load().run(table_u, table_i, X, y, weights, order, int(n_steps), int(batch), penalty, padded,
                               int(rule), int(step), int(stride), PREFETCH)
    return loss / max(n_steps, 1), squared / max(n_steps, 1)


def chunk_order(n, stride, shift, start, stop, seed, offset):
    """Positions ``start .. stop - 1`` of a cell's permutation ``k -> (k * stride + shift) mod n``, shuffled, plus ``offset``.

    What :func:`skmfnet._rowfit._chunk_order` gives the XLA epoch, drawn
    here instead of by TensorFlow's ``stateless_shuffle`` (see the module
    docstring; a call per cell and round): a Fisher-Yates shuffle driven by
    SplitMix64 seeded with the two integers of ``seed``.  Another generator
    than TensorFlow's, so another order for the same seed: the fused
    loop's fits on blocks do not follow the XLA epoch's batch for batch,
    only in distribution (``int32``, ``stop - start`` positions, unpadded).
    """
    mask = (1 << 64) - 1
    out = np.empty(stop - start, np.int32)
    load().order(out, int(n), int(stride), int(shift), int(start), np.uint64(seed[0] & mask),
                 np.uint64(seed[1] & mask), int(offset))
    return out


def evaluate(P, b_u, Q, b_i, users, items, y, n_threads=1):
    """Sums over the ratings of (squared error, ``|p_u|^2``, ``|q_i|^2``, ``b_u^2``, ``b_i^2``), float64.

    The plain dot model's scores ``b_u + b_i + p_u . q_i`` of the rows
    ``users``, ``items`` (int32) against ``y`` (float64), with the squared
    norms of the rows read for them (the per-rating penalty), in one pass,
    the ratings split among ``n_threads`` threads: the validation of every
    epoch of a large fit (:func:`skmfnet._rowfit._evaluate`), which numpy
    gathers row by row into copies on one thread.
    """
    run = load().evaluate
    n, n_threads = len(y), max(n_threads, 1)
    if n_threads == 1:
        return run(P, b_u, Q, b_i, users, items, y, 0, n, PREFETCH)
    bounds = [n * t // n_threads for t in range(n_threads + 1)]
    parts = list(zip(bounds[:-1], bounds[1:]))
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        sums = list(pool.map(lambda part: run(P, b_u, Q, b_i, users, items, y, *part, PREFETCH), parts))
    return tuple(float(sum(values)) for values in zip(*sums))


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
    def prefetch_row(flat, row, width, columns):
        """Prefetch the cache lines (16 float32 each) of the first ``columns`` of row ``row`` of a table of ``width`` columns, seen flat."""
        start = row * width
        for c in range(0, columns, 16):
            prefetch(flat, start + c)
        prefetch(flat, start + columns - 1)  # (a row need not start on a line: its last one)

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
                if base + j + ahead < end:  # (the weights only: pass 3 fetches the state)
                    r = order[base + j + ahead]
                    prefetch_row(flat_u, X[r, 0], width_u, K1)
                    prefetch_row(flat_i, X[r, 1], width_i, K1)
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
            # pass 3: the rule, on each owner's row (the whole row prefetched)
            t = step + (s + 1) * stride
            rate = np.float32(h0 * np.sqrt(1.0 - h2 ** t) / (1.0 - h1 ** t)) if rule == 2 else h0
            for j in range(batch):
                if j + ahead < batch:
                    prefetch_row(flat_u, users[j + ahead], width_u, width_u)
                    prefetch_row(flat_i, items[j + ahead], width_i, width_i)
                u, i = users[j], items[j]
                if owner_u[u] == j:
                    apply(table_u[u], grad_u[j], sq_u[j if squares else 0], K1, rule, h0, h1, h2, h3, rate)
                if owner_i[i] == j:
                    apply(table_i[i], grad_i[j], sq_i[j if squares else 0], K1, rule, h0, h1, h2, h3, rate)
        return total_loss, total_squared

    @numba.njit(inline="always")
    def mix(z):
        """SplitMix64's output function (Steele, Lea and Flood 2014): a bijection of uint64 that scrambles every bit.

        Every constant is uint64: numba turns arithmetic of signed and
        unsigned integers into float64.
        """
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))

    @jit
    def order(out, n, stride, shift, start, seed_0, seed_1, offset):
        # SplitMix64 from a state scrambled from both seeds (seeds one apart
        # must not give the same stream one draw apart)
        golden = np.uint64(0x9E3779B97F4A7C15)
        state = mix(mix(seed_0 + golden) ^ seed_1)
        m = out.shape[0]
        for k in range(m):
            out[k] = ((start + k) * stride + shift) % n + offset
        for k in range(m - 1, 0, -1):  # Fisher-Yates: k swaps with a uniform j in 0 .. k
            state += golden
            z = mix(state)
            # the top 32 bits scaled to 0 .. k (Lemire's multiply-shift; k < 2**31)
            j = np.intp(((z >> np.uint64(32)) * np.uint64(k + 1)) >> np.uint64(32))
            out[k], out[j] = out[j], out[k]

    @jit
    def evaluate(P, b_u, Q, b_i, users, items, y, lo, hi, ahead):
        K = P.shape[1]
        flat_p, flat_q = P.reshape(-1), Q.reshape(-1)
        squared, norm_p, norm_q, bias_u, bias_i = 0.0, 0.0, 0.0, 0.0, 0.0
        for r in range(lo, hi):
            if r + ahead < hi:
                prefetch_row(flat_p, users[r + ahead], K, K)
                prefetch_row(flat_q, items[r + ahead], K, K)
            u, i = users[r], items[r]
            score, pp, qq = b_u[u, 0] + b_i[i, 0], np.float32(0), np.float32(0)
            for f in range(K):
                p, q = P[u, f], Q[i, f]
                score += p * q
                pp += p * p
                qq += q * q
            e = score - y[r]
            squared += e * e
            norm_p += pp
            norm_q += qq
            bias_u += b_u[u, 0] * b_u[u, 0]
            bias_i += b_i[i, 0] * b_i[i, 0]
        return squared, norm_p, norm_q, bias_u, bias_i

    return SimpleNamespace(run=run, order=order, evaluate=evaluate)


#: The compiled functions (``run``: the loop; ``order``, ``evaluate``):
#: compiled (or read from numba's cache) on the first call of each.
load = functools.cache(_compile)
