"""The schedule around the compiled kernel: blocks, rounds, parts and threads of the dot model's fits.

:func:`fit_rows` trains the four embedding tables of a plain dot network
with :func:`skmfnet._training._kernel.train`, the one implementation of the
batch step (objective, summing repeated rows, the optimizer's rule), and
writes them back into the Keras model after every epoch that needs them,
so that callbacks (early stopping), ``predict``, pickling and model files
see an ordinary fitted Keras model.

One thread (``n_threads=1``): one block, the whole epoch in the order of
the Keras path's batches (the stateless shuffle of ``(seed, epoch)`` cut
into ``n // batch_size`` full batches, :func:`skmfnet._training._keras_fit.training_batches`),
so the two follow the same trajectory up to floating-point rounding (tested).

Several threads: two threads must not update the same rows at once, so
the tables are cut.  The users and the items are each split into ``p``
blocks balanced by their ratings, the ratings into the ``p x p`` (user
block, item block) cells, and every epoch runs ``p`` rounds; in round
``s`` the threads share out the ``p`` cells ``(a, (a + s) mod p)``: no two
share a user or an item, so each kernel call owns its rows and the rounds
need no locks and give the same result whatever the threads' timing (the
stratified schedule of DSGD, Gemulla et al., KDD 2011, "Large-scale matrix
factorization with distributed stochastic gradient descent").  Each cell's
``n_ab // batch_size`` full batches are drawn anew every epoch (a
Fisher-Yates shuffle of the kernel's :func:`~skmfnet._training._kernel.chunk_order`
per part) and trained in :data:`ROUND_CHUNKS` parts (at most ``p``,
:func:`round_passes`), so that an epoch goes
through the ``p`` rounds that many times (a row trained on one block of
the other side after another drifts towards the last; meeting them in
turn several times an epoch keeps most of one thread's accuracy).  ``p``
is :data:`BLOCKS` (4), halved while a cell would hold fewer than
:data:`CELL_BATCHES` batches, for Adam doubled up to :data:`MAX_BLOCKS` (16)
while every cell would still hold its :data:`ROUND_CHUNKS` parts of that
many (smaller cells keep their rows in the cache: from about 17 million
ratings at the default batch size), or the number of threads if that is more
(:func:`resolve_blocks`).  From two threads up to ``p`` the result does not
depend on the number of threads.  With ``distribution="multi_worker"``
each worker trains the cells of its own user block, and the workers
exchange blocks of rows between rounds (:class:`skmfnet._training._cluster.RowExchange`).

Every kernel call trains at most :data:`SLICE_BATCHES` batches, and the
threads look at a stop flag between calls: an interrupt (Ctrl-C) stops a
fit within a slice's time, and the estimator, which trains a copy, is left
as it was.
"""

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import keras
import numpy as np
import tensorflow as tf

from .._network import ITEM_BIAS, ITEM_FACTORS, SCORE_BATCH, USER_BIAS, USER_FACTORS
from . import _kernel as _portable_kernel
from ._rules import dot_tables, store_optimizer_state

__all__ = ["BLOCKS", "CELL_BATCHES", "MAX_BLOCKS", "ROUND_CHUNKS", "SLICE_BATCHES", "Blocks",
           "TrainingDivergedError", "end_epoch", "evaluate", "fit_rows", "resolve_blocks", "round_passes"]


def kernel_for_this_cpu():
    """The kernel build this CPU runs: x86-64-v3 (AVX2) where the CPU has those features, else the portable one.

    Both compute the same tables bit for bit (see :mod:`skmfnet._training._kernel`).
    """
    if _portable_kernel.cpu_supports_x86_64_v3():
        from . import _kernel_x86_64_v3

        return _kernel_x86_64_v3
    return _portable_kernel


_kernel = kernel_for_this_cpu()

#: Batches per kernel call at most: between calls a fit can be interrupted
#: (256 batches of 512 ratings take about 30 ms at 25 million ratings).
SLICE_BATCHES = 256


class TrainingDivergedError(ValueError):
    """Training produced a loss that is not finite: the model would predict NaN.

    Raised at the end of the first epoch whose loss is NaN or infinite, as
    scikit-learn's ``SGDRegressor`` raises on a floating-point overflow.
    """


def check_finite(logs, epoch):
    """Raise :class:`TrainingDivergedError` when the epoch's ``loss`` is not finite."""
    loss = logs.get("loss")
    if loss is not None and not math.isfinite(loss):
        raise TrainingDivergedError(
            f"training diverged in epoch {epoch + 1}: its loss is {loss}, and every prediction would be NaN. "
            "Lower learning_rate, raise alpha, or check y (and sample_weight) for extreme values."
        )


def _affine(n, seed):
    """(stride, shift) of the permutation ``k -> (k * stride + shift) mod n`` drawn from ``seed``.

    ``stride`` is coprime to ``n``, so the map is a permutation of 0 .. n - 1.
    """
    rng = np.random.default_rng(seed)
    while True:
        stride = int(rng.integers(1, max(n, 2)))
        if math.gcd(stride, n) == 1:
            return stride, int(rng.integers(0, n))


def chunk_order(n, stride, shift, start, stop, seed, offset):
    """Positions ``start .. stop - 1`` of a cell's permutation ``k -> (k * stride + shift) mod n``, shuffled, plus ``offset``.

    The chunks of one epoch partition the cell's ``n`` ratings without
    holding a permutation of all of them (an epoch's chunks are trained
    rounds apart); each chunk's positions are then shuffled by the kernel's
    generator (Fisher-Yates with SplitMix64) seeded with the two integers of
    ``seed``.
    """
    mask = (1 << 64) - 1
    out = np.empty(stop - start, np.int32)
    _kernel.chunk_order(out, n, stride, shift, start, seed[0] & mask, seed[1] & mask, offset)
    return out


def epoch_order(n, seed, epoch):
    """The Keras path's order of an epoch: ``0 .. n - 1`` in TensorFlow's stateless shuffle of ``(seed, epoch)``."""
    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int32), seed=[seed, epoch]).numpy()


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
    """Train the four embedding tables of a dot network with the compiled kernel.

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
        Its rule and hyperparameters (:func:`skmfnet._training._rules.supports`
        must hold).  When it is the model's optimizer, its state (moments,
        step count) is set at the end to what ``Model.fit`` would have left.
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
    exchange : skmfnet._training._cluster.RowExchange or None
        Train as worker ``exchange.index`` of ``exchange.size`` (every worker
        runs this function on the same data): the schedule of
        ``exchange.size`` blocks, of which this worker trains the cells of its
        user block, one per round, on its ``n_threads`` (at most 1 cell at a
        time); after each round the workers all-gather the item blocks they
        trained (the next round's cells need them), and the user blocks when
        the weights are read (validation, callbacks, the end).  The result
        is that of the same schedule on threads in one process.  With fewer
        ratings than a batch per cell of one block per worker, every worker
        trains alone on one thread (the same result everywhere, no gain).
    prepared : dict or None
        Shared by fits on the same ``X``, ``y`` and ``weights`` (the pairs
        that ``"auto"`` compares): the first fills it with its blocks and
        the ratings' arrays, the next ones of the same schedule reuse them
        instead of building and holding a second copy.

    Returns
    -------
    history : dict of list of float
        ``loss`` and ``rmse`` per epoch (means over the epoch's batches, as
        Keras reports them), and ``val_loss`` / ``val_rmse`` with validation.

    Raises
    ------
    TrainingDivergedError
        When an epoch's loss is not finite.
    """
    (P, b_u, Q, b_i), K, rule = dot_tables(model, optimizer, "the compiled path")
    width = K + 1
    n = len(y)
    batch = min(batch_size, n)
    n_negatives, negative_target, negative_weight = negatives
    if selection is not None and not n_negatives:
        raise ValueError("selection tables are trained by sampled pairs: negatives must be given")

    X = np.asarray(X, dtype=np.int32)
    n_rows = [int(P.shape[0]), int(Q.shape[0])]
    wanted = resolve_blocks(n_threads, n, batch, finer=rule.scale_free) if exchange is None else exchange.size
    key = (wanted, batch, tuple(n_rows), exchange is None)
    if prepared is not None and prepared.get("key") == key:
        blocks, (X_c, y_c, w_c) = prepared["blocks"], prepared["arrays"]
    else:
        blocks = Blocks(X, n_rows, wanted, batch)
        if exchange is not None and 1 < blocks.p < exchange.size:  # one block per worker, or none
            blocks = Blocks(X, n_rows, 1, batch)
        X_c, y_c, w_c = blocks.arrays(X, y, weights)
        if prepared is not None:
            prepared.clear()
            prepared.update(key=key, blocks=blocks, arrays=(X_c, y_c, w_c))
    p = blocks.p
    distributed = exchange is not None and p > 1
    mine = [exchange.index] if distributed else list(range(p))  # the user blocks trained here
    # each cell's epoch is trained in ``chunks`` parts of about as many
    # batches each, round by round, so that a row meets the other side's
    # blocks in turn several times an epoch (see :data:`ROUND_CHUNKS`)
    chunks = round_passes(p, min(blocks.steps(*cell) for cell in blocks.sizes))
    bounds = {cell: [blocks.steps(*cell) * c // chunks for c in range(chunks + 1)] for cell in blocks.sizes}

    def part_steps(a, b, c):
        """Batches of part ``c`` of cell (a, b)."""
        return bounds[a, b][c + 1] - bounds[a, b][c]

    # the packed tables of each side, one per block: [factors | bias | state]
    initial = rule.initial(optimizer)
    tables = [list(blocks.pack(side, np.concatenate([np.asarray(f), np.asarray(b)], axis=1), rule.slots, initial))
              for side, (f, b) in enumerate(((P, b_u), (Q, b_i)))]
    sel_tables = [[None] * p, [None] * p]
    sel_penalty = None
    if selection is not None:
        sel_tables = [list(blocks.pack(side, table, rule.slots, initial)) for side, table in enumerate(selection)]
        sel_penalty = np.array([alpha] * (selection[0].shape[1] - 1) + [alpha_bias], np.float32)
    penalty = np.array([alpha] * K + [alpha_bias], np.float32)
    hyper = np.zeros(4, np.float32)
    hyper[: len(rule.hyper(optimizer))] = rule.hyper(optimizer)
    stop = threading.Event()  # set on an interrupt: the threads finish their slice and return

    def train_cell(epoch, a, b, step, c):
        """Part ``c`` of cell (a, b) in ``epoch``; returns the sums of its batches' (loss, squared error).

        The round's cells count as interleaved batches: cell ``a`` takes the
        steps ``step + 1, step + 1 + p, ...`` with ``step`` its start.
        """
        if p == 1:
            order = epoch_order(blocks.sizes[a, b], seed, epoch)
            n_steps = blocks.steps(a, b)
        else:  # part c of the cell's permutation of this epoch: its batches bounds[c] .. bounds[c + 1]
            start, stop_ = bounds[a, b][c] * batch, bounds[a, b][c + 1] * batch
            cell_seed = blocks.order_seed(seed, epoch, a, b)
            stride, shift = _affine(blocks.sizes[a, b], cell_seed)
            # each part's shuffle has a seed of its own: 2**56 + ..., where the cells' are 2**50 + ...
            part_seed = [cell_seed[0], cell_seed[1] * chunks + c + (1 << 56)]
            order = chunk_order(blocks.sizes[a, b], stride, shift, start, stop_, part_seed, blocks.offsets[a, b])
            n_steps = part_steps(a, b, c)
        sums = np.zeros(2)
        for first in range(0, n_steps, SLICE_BATCHES):
            if stop.is_set():
                break
            count = min(SLICE_BATCHES, n_steps - first)
            sums += _kernel.train(
                tables[0][a], tables[1][b], X_c, y_c, w_c, order[first * batch: (first + count) * batch], count,
                batch, penalty, hyper, rule.code, step + first * p, p,
                n_negatives=int(n_negatives), negative_target=negative_target, negative_weight=negative_weight,
                n_items=blocks.n_members(1, b), sample_seed=blocks.sample_seed(seed, a, b) & ((1 << 64) - 1),
                sel_u=sel_tables[0][a], sel_i=sel_tables[1][b], sel_penalty=sel_penalty)
        return sums

    def share(side, s):
        """All-gather the blocks of ``side`` this worker trained in round ``s`` (users: its own)."""
        for side_tables in (tables[side], sel_tables[side]) if selection is not None else (tables[side],):
            gathered = exchange.all_gather(side_tables[(exchange.index + s * side) % p])
            for j, block in enumerate(gathered):
                if j != exchange.index:  # (its own block is already here)
                    side_tables[(j + s * side) % p][...] = block

    callback_list = keras.callbacks.CallbackList(list(callbacks), model=model)
    model.stop_training = False
    callback_list.on_train_begin()
    history = {}
    step = 0
    threads = max(1, min(n_threads, len(mine)))  # (a round's cells shared out among them)
    with ThreadPoolExecutor(max_workers=threads) if threads > 1 else nullcontext() as pool:
        try:
            for epoch in range(epochs):
                sums = np.zeros(2)  # the epoch's loss and squared error, summed over its batches
                total_steps = 0
                for c, s in ((c, s) for c in range(chunks) for s in range(p)):
                    # the round's cells share no user and no item: no locks
                    jobs = [(epoch, a, (a + s) % p, step + a, c) for a in mine]
                    results = pool.map(lambda j: train_cell(*j), jobs) if pool else (train_cell(*j) for j in jobs)
                    for result in results:
                        sums += result
                    if distributed:  # the next round's cells need the item blocks trained in this one
                        share(1, s)
                    round_steps = sum(part_steps(a, (a + s) % p, c) for a in range(p))
                    total_steps += round_steps
                    step += round_steps  # Keras's count: every batch trained
                # the weights are read after every epoch with validation or
                # callbacks, else after the last: only then do workers share their users
                last = epoch == epochs - 1
                if distributed:
                    sums = np.sum(exchange.all_gather(sums[None]), axis=0)[0]
                    if validation is not None or callbacks or last:
                        share(0, 0)
                if validation is not None or callbacks or last:
                    for side, (factors, bias) in enumerate(((P, b_u), (Q, b_i))):
                        values = blocks.unpack(side, tables[side], width)
                        factors.assign(values[:, :K])
                        bias.assign(values[:, K:])
                # Keras's RMSE metric is over all the epoch's ratings: with full batches
                # of equal size, the square root of the mean of the batch MSEs
                logs = {"loss": sums[0] / total_steps, "rmse": math.sqrt(max(sums[1], 0.0) / total_steps)
                        if math.isfinite(sums[1]) else float("nan")}
                if end_epoch(model, epoch, epochs, logs, history, callback_list, validation=validation,
                             alpha=alpha, alpha_bias=alpha_bias, verbose=verbose, compiled=threads):
                    break
        except BaseException:
            stop.set()  # the threads stop at their next slice; the pool waits for them
            raise
    callback_list.on_train_end()
    if selection is not None:
        for side, array in enumerate(selection):
            array[1:] = blocks.unpack(side, sel_tables[side], array.shape[1])[1:]
    if optimizer is getattr(model, "optimizer", None):
        store_optimizer_state(model, rule, lambda side, start, stop: blocks.unpack(
            side, tables[side], width + stop, start=width + start, fill=initial), step, K)
    return history


def _evaluate_compiled(P, b_u, Q, b_i, users, items, y, n_threads=1):
    """:func:`skmfnet._training._kernel.evaluate` of all the ratings, split among ``n_threads`` threads."""
    n, n_threads = len(y), max(n_threads, 1)
    P, b_u, Q, b_i = (np.ascontiguousarray(a, dtype=np.float32) for a in (P, b_u, Q, b_i))
    y = np.ascontiguousarray(y, dtype=np.float64)
    if n_threads == 1:
        return _kernel.evaluate(P, b_u, Q, b_i, users, items, y, 0, n)
    bounds = [n * t // n_threads for t in range(n_threads + 1)]
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        sums = list(pool.map(lambda part: _kernel.evaluate(P, b_u, Q, b_i, users, items, y, *part),
                             zip(bounds[:-1], bounds[1:])))
    return tuple(float(sum(values)) for values in zip(*sums))


#: With several threads, each side is cut into this many blocks (or one per
#: thread where the threads are more).  Measured, with the XLA epoch
#: that preceded the compiled kernel, on this project's
#: 2-core machine with per-epoch medians of
#: the defaults at K=64 on ratings of MovieLens 25M's id shape (``python
#: benchmarks/explore/explore_blocks.py``, two interleaved sweeps; M ratings per
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
#: (``benchmarks/results/explore/explore_blocks.json`` and
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

#: Beyond :data:`BLOCKS`, LazyAdam's fits double the blocks a side up to
#: this many while every cell still holds :data:`ROUND_CHUNKS` parts of
#: :data:`CELL_BATCHES` batches: smaller cells keep their rows (with Adam's
#: moments) in the cache the threads share.  On the kernel at 25 million
#: ratings, 16 blocks were faster than 4 and 8 at the best held-out RMSE
#: (32 faster still, less accurate); cells too small for their four parts
#: lost accuracy at 2 and 5 million
#: (``python benchmarks/explore/explore_blocks.py``, results in
#: ``benchmarks/results/explore/explore_blocks_25m_kernel.json`` and
#: ``explore_blocks_kernel.json``; figures in ``docs/scaling.rst``).  Not
#: for SGD or Adagrad: their steps grow with a row's repeats in a batch,
#: which finer cells raise (the speed benchmark's SGD settings diverged at
#: 25 million ratings on 8 blocks a side).
MAX_BLOCKS = 16

#: Every epoch of the stratified schedule goes through its ``p`` rounds this
#: many times, each time with another part of every cell (at most each
#: cell's batches): a row meets the other side's blocks in turn four times
#: an epoch instead of once.  Trained cell after cell, a row drifts towards
#: the block it last met; at 25 million ratings of MovieLens 25M's id shape
#: (another seed than the benchmark's; K=64, ``alpha=0.03``,
#: ``learning_rate=0.002``, 10 epochs) the best test RMSE was, on four
#: blocks a side (``python benchmarks/explore/explore_schedule.py --chunks
#: 1,2,4,8``, ``benchmarks/results/explore/explore_schedule.json``):
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
#: part of a batch or two gains nothing and costs a call), and no more than
#: ``p`` (:func:`round_passes`).
ROUND_CHUNKS = 4


def round_passes(p, fewest_steps):
    """Passes of an epoch through the ``p`` rounds: :data:`ROUND_CHUNKS`, at most ``p``.

    And at most one per :data:`CELL_BATCHES` batches of the smallest cell
    (``fewest_steps`` batches); one block, one pass.

    At most ``p``: with fewer blocks a row meets fewer blocks of the other
    side, and fewer passes keep the accuracy.  On two blocks a side, at 5
    million ratings of the 25M id shape (another seed than the
    benchmark's; K=32, ``alpha=0.03``, ``learning_rate=0.002``, 10 epochs;
    ``python benchmarks/explore/explore_schedule.py --n-ratings 5000000
    --blocks 2 --chunks 1,2,4 --n-factors 32``,
    ``benchmarks/results/explore/explore_schedule_2blocks_5m.json``) the
    best test RMSE was 0.9207 on one thread, 0.9241 in one pass, 0.9213 in
    two and 0.9214 in four, where four blocks a side needed four
    (:data:`ROUND_CHUNKS`).  Two blocks a side are the schedule of two
    ``distribution="multi_worker"`` workers, which exchange an item block
    after every round: two passes halve what they send.
    """
    return 1 if p == 1 else max(1, min(ROUND_CHUNKS, p, fewest_steps // CELL_BATCHES))


def resolve_blocks(n_threads, n_ratings, batch, finer=False):
    """Blocks per side of a fit on ``n_threads`` threads: see the module docstring.

    :data:`BLOCKS`, halved while a cell (of ``n_ratings`` in ``p x p``
    cells) would hold fewer than :data:`CELL_BATCHES` batches of ``batch``
    ratings, and, with ``finer`` (a rule whose steps do not grow with a
    row's repeats in a batch: Adam's), doubled up to :data:`MAX_BLOCKS`
    while every cell would still hold :data:`ROUND_CHUNKS` parts of that
    many; or one per thread where the threads are more.  So the number of
    threads changes the schedule (and the result) only where it exceeds
    that.  One thread: one block (the Keras path's batches).
    """
    if n_threads <= 1:
        return 1
    p = 1
    while p < BLOCKS and (2 * p) ** 2 * CELL_BATCHES * batch <= n_ratings:
        p *= 2
    while finer and BLOCKS <= p < MAX_BLOCKS and (2 * p) ** 2 * ROUND_CHUNKS * CELL_BATCHES * batch <= n_ratings:
        p *= 2
    return max(p, n_threads)


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
        #: where each cell's ratings start in :meth:`arrays`
        self.offsets = {(0, 0): 0} if p == 1 else {}
        if p > 1:
            start = 0
            for a in range(p):
                # the ratings of user block a, then cut by item block (a stable sort keeps
                # each cell's positions increasing): one pass over the ratings per user
                # block, where one per cell cost p times as many
                mine = np.flatnonzero((cell >= a * p) & (cell < (a + 1) * p))
                item_block = (cell[mine] - a * p).astype(np.int16)
                mine = mine[np.argsort(item_block, kind="stable")].astype(np.int32)
                cut = np.concatenate([[0], np.cumsum(sizes[a * p: (a + 1) * p])])
                for b in range(p):
                    self.cells[a, b] = mine[cut[b]: cut[b + 1]]
                    self.sizes[a, b] = int(sizes[a * p + b])
                    self.offsets[a, b] = start
                    start += self.sizes[a, b]
            del cell
        # rows of a block's table: row 0 (unknown ids) and its members
        self._rows = [1 + max(len(m) for m in members) for members in self.members]

    def local(self, X, index):
        """The cell's ratings ``X[index]`` (network rows) as local rows of their blocks."""
        return np.stack([self.local_rows[0][X[index, 0]], self.local_rows[1][X[index, 1]]], axis=1)

    def arrays(self, X, y, weights):
        """(local rows, ratings, weights) of every cell as three arrays; the cells' positions are dropped.

        Cell (a, b) holds positions ``offsets[a, b]`` .. ``+ sizes[a, b]``.
        Without weights, one weight (1) stands for all.
        """
        cells = [self.cells.pop(key) for key in list(self.cells)]
        constant = np.ascontiguousarray
        one = np.ones(1, np.float32)
        if cells == [None]:  # one block: the network's rows, in their order
            return (constant(X), constant(np.asarray(y, dtype=np.float32)),
                    one if weights is None else constant(np.asarray(weights, dtype=np.float32)))

        def grouped(take, shape, dtype):
            out = np.empty(shape, dtype=dtype)
            start = 0
            for index in cells:
                out[start: start + len(index)] = take(index)
                start += len(index)
            return out

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

        Yields them one at a time, as C-contiguous numpy arrays (what the
        kernel trains in place).
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
    compiled scoring (:func:`evaluate`); 0: numpy.  A loss that is not
    finite (training diverged) raises :class:`TrainingDivergedError`.
    """
    check_finite(logs, epoch)
    if validation is not None:
        logs.update(evaluate(model, *validation, alpha=alpha, alpha_bias=alpha_bias, compiled=compiled))
    for key, value in logs.items():
        history.setdefault(key, []).append(value)
    if verbose:
        print(f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
    callback_list.on_epoch_end(epoch, logs)
    return model.stop_training


def evaluate(model, X, y, *, alpha, alpha_bias, compiled=0):
    """val_rmse and val_loss (MSE plus the per-rating penalty, as Keras's evaluate).

    The network is the plain dot model, so its scores are computed from its
    four tables here, in chunks of :data:`SCORE_BATCH` ratings, and each
    row's squared norm once per row: calling the network on every chunk,
    and squaring every validation rating's gathered rows, cost a large share
    of an epoch when millions of ratings are held out, and gathered all
    their rows at once (2.5 million x 64 x 4 bytes per side at 25 million).
    ``compiled``: with that many threads (at least 1), by
    :func:`skmfnet._training._kernel.evaluate` instead, in one pass over the
    ratings split among the threads (numpy's gathers took about a ninth of
    an epoch at 25 million ratings, the other threads idle meanwhile).
    """
    X = np.asarray(X, dtype=np.int32)
    y = np.asarray(y, dtype=np.float64)
    P, b_u, Q, b_i = (
        model.get_layer(name).embeddings.numpy() for name in (USER_FACTORS, USER_BIAS, ITEM_FACTORS, ITEM_BIAS)
    )
    users, items = X[:, 0], X[:, 1]
    if compiled:
        squared, norm_p, norm_q, bias_u, bias_i = _evaluate_compiled(
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
