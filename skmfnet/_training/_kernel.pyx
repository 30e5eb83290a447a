# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled epoch of the dot model: one implementation of the batch step and its rules.

Built ahead of time, by ``pip install`` (or ``python -m build``) with the
machine's C compiler, as scikit-learn, Surprise, implicit and LightFM ship
their loops: nothing compiles when a user fits.  Every CPU fit of the plain
dot model on the compiled path runs :func:`train` (single process at every
size, each worker of ``distribution="multi_worker"``); the schedule around
it (blocks, rounds, parts, threads) is :mod:`skmfnet._training._schedule`.

Why a loop of our own: neither TensorFlow nor Keras has a fused
sparse-embedding update on the CPU.  ``keras.Model.fit`` pays, per batch,
for the gradient of every layer and a separate gather and scatter of each
table and of each of its optimizer's moment tables; for biased matrix
factorization the step is a few lines of arithmetic on the batch's rows.

A batch of ``batch`` ratings (plus ``n_negatives`` sampled pairs when
training for ranking) is gathered, then three passes over its positions:

0. gather each rating's (user, item, rating, weight) from its shuffled
   position into the batch's arrays, in a loop of independent loads (so
   that many of their cache misses are in flight at once, where the
   scoring loop waited on each);
1. score each position from the tables as they were before the batch, and
   record, per row, its *owner*: the last position that holds it (the
   rows ``PREFETCH`` positions ahead are prefetched in the same loop, so
   that their memory latency overlaps the scoring);
2. sum each row's gradients (for Adagrad also their squares) at its owner,
   the user and the item row of a position in one loop that reads both
   rows once, with the penalty term of the loss;
3. apply the rule to each owner's row, in place.

(The kernel's first form prefetched the batch's rows in a loop of their
own before scoring them, and summed the user and the item side in two
loops: ``benchmarks/results/speed/speed_25m_kernel_first`` measured it; its
second read each rating at its shuffled position inside the scoring loop,
summed the loss's penalty in one running double and Adam's moments through
a double, in one portable build: ``speed_25m_kernel_second``; and
``benchmarks/results/speed/speed_25m_kernel`` this one, against Cornac and the
SGD ceiling.)

So a row that occurs several times in a batch gets the rule applied once,
to the sum of its gradients, as Keras's optimizers do for an embedding's
``IndexedSlices``.  The objective and the rules are those of the Keras
network the estimator compiles (tests compare the trajectories):

* loss: ``mean_j w_j e_j^2 + sum_f penalty_f * mean_j w_j (p_uf^2 + q_if^2)``
  over the ratings of the batch (``penalty = [alpha] * K + [alpha_bias]``,
  ``w`` the sample weights, all 1 without them);
* rules (``RULE_SGD``, ``RULE_ADAGRAD``, ``RULE_ADAM``): Keras's ``SGD``
  without momentum, Keras's ``Adagrad`` (an accumulator of the squares of
  every occurrence's gradient), :class:`skmfnet._optimizers.LazyAdam` (Adam
  on the batch's rows, bias correction of the global step ``t``);
* sampled pairs (``n_negatives``): the batch's users again, cyclically, each
  with an item drawn uniformly from rows ``1 .. n_items`` by SplitMix64 of
  ``(sample_seed, t)``, target ``negative_target``, weight
  ``negative_weight`` on their squared error, no penalty.  With selection
  tables (``sel_u``, ``sel_i``) they train those tables only, on the
  residual of the rating score (whose tables then learn from the ratings
  alone).

Tables are packed ``[factors | bias | optimizer state]`` float32 rows,
C-contiguous, updated in place.  The functions release the GIL: the
stratified schedule runs its cells on threads side by side (cells share no
row), and :func:`evaluate` splits held-out ratings among threads.  Threads
are the caller's (a ``ThreadPoolExecutor`` sized by ``n_jobs``), not
OpenMP's: the schedule already decides which cells may run at once, and
the threads a fit uses are then exactly those ``n_jobs`` allows.

Two builds of this one source: this module, for every CPU of its
architecture, and on x86-64 :mod:`skmfnet._training._kernel_x86_64_v3`,
compiled for x86-64-v3 (AVX2's eight-wide float arithmetic), which
:mod:`skmfnet._training._schedule` runs where :func:`cpu_supports_x86_64_v3`
holds: the CPU is asked at run time, so a wheel built on one machine
runs on any other.  Both are built with ``-ffp-contract=off`` (no fused
multiply-adds), so the two compute every value alike and train the same
tables, bit for bit (tested).
"""

from libc.math cimport pow, sqrt, sqrtf
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from libc.stdint cimport uint64_t, int64_t

import numpy as np

cdef extern from *:
    """
    static inline void skmf_prefetch(const void *p) {
    #if defined(__GNUC__) || defined(__clang__)
        __builtin_prefetch(p, 1, 3);
    #endif
    }
    """
    void skmf_prefetch(const void *p) nogil

cdef extern from *:
    """
    static int skmf_x86_64_v3(void) {
    #if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
        __builtin_cpu_init();
        return __builtin_cpu_supports("x86-64-v3") != 0;
    #elif (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi")
            && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c");
    #else
        return 0;
    #endif
    }
    """
    int skmf_x86_64_v3() nogil

cdef enum:
    SGD = 0
    ADAGRAD = 1
    ADAM = 2
    AHEAD = 8
    GATHER_AHEAD = 32

#: Rule codes (:mod:`skmfnet._training._rules` gives each rule class its own).
RULE_SGD = SGD
RULE_ADAGRAD = ADAGRAD
RULE_ADAM = ADAM

#: How many positions ahead passes 1 and 3 prefetch the rows of.
PREFETCH = AHEAD


cdef inline void prefetch_row(float *table, Py_ssize_t row, Py_ssize_t width, Py_ssize_t columns) noexcept nogil:
    cdef float *start = table + row * width
    cdef Py_ssize_t c
    for c in range(0, columns, 16):  # (16 float32 per 64-byte cache line)
        skmf_prefetch(start + c)
    skmf_prefetch(start + columns - 1)


cdef inline uint64_t mix(uint64_t z) noexcept nogil:
    """SplitMix64's output function (Steele, Lea and Flood 2014): a bijection of uint64 that scrambles every bit."""
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline uint64_t seeded(uint64_t seed_0, uint64_t seed_1) noexcept nogil:
    """A SplitMix64 state scrambled from both seeds (seeds one apart must not give streams one draw apart)."""
    return mix(mix(seed_0 + <uint64_t>0x9E3779B97F4A7C15ULL) ^ seed_1)


cdef inline Py_ssize_t below(uint64_t *state, Py_ssize_t k) noexcept nogil:
    """A uniform integer in 0 .. k - 1 (k < 2**31): the top 32 bits scaled (Lemire's multiply-shift)."""
    state[0] += <uint64_t>0x9E3779B97F4A7C15ULL
    return <Py_ssize_t>(((mix(state[0]) >> 32) * <uint64_t>k) >> 32)


cdef inline void apply_rule(float *row, const float *g, const float *g2, Py_ssize_t K1, int rule,
                            float h0, float h1, float h2, float h3, float rate) noexcept nogil:
    """The rule on one row ``[weights (K1) | state]`` with the summed gradient ``g`` (``g2``: summed squares)."""
    cdef Py_ssize_t f
    cdef float a, m, v
    cdef float c1 = 1 - h1, c2 = 1 - h2  # (float32 throughout, as LazyAdam's TensorFlow ops)
    if rule == SGD:  # w -= lr * g
        for f in range(K1):
            row[f] -= h0 * g[f]
    elif rule == ADAGRAD:  # accumulator += squares; w -= lr * g / sqrt(accumulator + epsilon)
        for f in range(K1):
            a = row[K1 + f] + g2[f]
            row[K1 + f] = a
            row[f] -= h0 * g[f] / sqrtf(a + h1)
    else:  # Adam, the bias correction folded into rate
        for f in range(K1):
            m = h1 * row[K1 + f] + c1 * g[f]
            v = h2 * row[2 * K1 + f] + c2 * (g[f] * g[f])
            row[K1 + f] = m
            row[2 * K1 + f] = v
            row[f] -= rate * m / (sqrtf(v) + h3)


cdef inline float dot(const float *a, const float *b, Py_ssize_t K) noexcept nogil:
    cdef float s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t f = 0
    while f + 4 <= K:  # (four sums: the compiler may vectorize without reordering a single sum)
        s0 += a[f] * b[f]
        s1 += a[f + 1] * b[f + 1]
        s2 += a[f + 2] * b[f + 2]
        s3 += a[f + 3] * b[f + 3]
        f += 4
    while f < K:
        s0 += a[f] * b[f]
        f += 1
    return (s0 + s1) + (s2 + s3)


cdef struct Side:
    float *table          # packed rows [weights (K1) | state], ``width`` floats each
    Py_ssize_t width
    Py_ssize_t K1         # factors and bias
    int *owner            # per table row: the last position of the batch holding it
    float *grad           # per position: summed gradient (K1), at owners
    float *sq             # per position: summed squares (Adagrad), at owners


cdef int side_init(Side *side, float[:, ::1] table, Py_ssize_t K1, Py_ssize_t positions, bint squares) noexcept nogil:
    side.table = &table[0, 0]
    side.width = table.shape[1]
    side.K1 = K1
    side.owner = <int *>malloc(table.shape[0] * sizeof(int))
    side.grad = <float *>malloc(positions * K1 * sizeof(float))
    side.sq = <float *>malloc((positions * K1 if squares else 1) * sizeof(float))
    return side.owner != NULL and side.grad != NULL and side.sq != NULL


cdef void side_free(Side *side) noexcept nogil:
    free(side.owner)
    free(side.grad)
    free(side.sq)


cdef double accumulate(Side *su, Side *si, const int *users, const int *items, Py_ssize_t count,
                       const float *coef, const float *shrink, const float *weight, const float *penalty,
                       bint squares) noexcept nogil:
    """Pass 2 for a pair of tables: each position's gradients summed at its rows' owners; returns the penalty sum.

    Position j's gradient on its user row is ``coef_j [q, 1] + shrink_j
    penalty * [p, b_u]`` (``q`` the item row's factors, both rows as before
    the batch), and symmetrically on its item row; one loop reads both rows
    once.  The returned sum is ``sum_j weight_j penalty . (p^2 + q^2)``
    (``weight`` NULL: not computed).
    """
    cdef Py_ssize_t j, f, K1 = su.K1, K = K1 - 1
    cdef int a, b
    cdef float *p
    cdef float *q
    cdef float *gu
    cdef float *gi
    cdef float *gu2
    cdef float *gi2
    cdef float c, h, pf, qf, x, z
    cdef double penalised = 0
    for j in range(count):
        if su.owner[users[j]] == j:
            memset(su.grad + j * K1, 0, K1 * sizeof(float))
            if squares:
                memset(su.sq + j * K1, 0, K1 * sizeof(float))
        if si.owner[items[j]] == j:
            memset(si.grad + j * K1, 0, K1 * sizeof(float))
            if squares:
                memset(si.sq + j * K1, 0, K1 * sizeof(float))
    for j in range(count):
        a = su.owner[users[j]]
        b = si.owner[items[j]]
        p = su.table + users[j] * su.width
        q = si.table + items[j] * si.width
        gu = su.grad + a * K1
        gi = si.grad + b * K1
        c = coef[j]
        h = shrink[j]
        if squares:
            gu2 = su.sq + a * K1
            gi2 = si.sq + b * K1
            for f in range(K):
                pf = p[f]
                qf = q[f]
                x = c * qf + h * penalty[f] * pf
                z = c * pf + h * penalty[f] * qf
                gu[f] += x
                gi[f] += z
                gu2[f] += x * x
                gi2[f] += z * z
            x = c + h * penalty[K] * p[K]
            z = c + h * penalty[K] * q[K]
            gu[K] += x
            gi[K] += z
            gu2[K] += x * x
            gi2[K] += z * z
        else:
            for f in range(K):
                pf = p[f]
                qf = q[f]
                gu[f] += c * qf + h * penalty[f] * pf
                gi[f] += c * pf + h * penalty[f] * qf
            gu[K] += c + h * penalty[K] * p[K]
            gi[K] += c + h * penalty[K] * q[K]
        if weight != NULL and weight[j] != 0:
            penalised += weight[j] * (penalty_sum(p, penalty, K1) + penalty_sum(q, penalty, K1))
    return penalised


cdef void apply_owners(Side *side, const int *rows, Py_ssize_t count, int rule, float h0, float h1, float h2,
                       float h3, float rate, bint squares) noexcept nogil:
    """Pass 3 for one table: the rule on each owner's row (the whole rows prefetched ahead)."""
    cdef Py_ssize_t j, K1 = side.K1
    for j in range(count):
        if j + AHEAD < count:
            prefetch_row(side.table, rows[j + AHEAD], side.width, side.width)
        if side.owner[rows[j]] == j:
            apply_rule(side.table + rows[j] * side.width, side.grad + j * K1,
                       side.sq + j * K1 if squares else side.sq, K1, rule, h0, h1, h2, h3, rate)


cdef double penalty_sum(const float *row, const float *penalty, Py_ssize_t K1) noexcept nogil:
    """``sum_f penalty_f row_f^2`` in eight float32 lanes (one running double sum waited on each addition)."""
    cdef float s[8]
    cdef Py_ssize_t f = 0, lane
    for lane in range(8):
        s[lane] = 0
    while f + 8 <= K1:
        for lane in range(8):
            s[lane] += penalty[f + lane] * row[f + lane] * row[f + lane]
        f += 8
    while f < K1:
        s[0] += penalty[f] * row[f] * row[f]
        f += 1
    return <double>(((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])))


cdef double score_negatives(Side *su, Side *si, int *users, int *items, float *score, float *target,
                           float *weight, float *coef, float *shrink, Py_ssize_t batch, Py_ssize_t size,
                           Py_ssize_t rating_size, uint64_t sample_seed, int64_t t, Py_ssize_t n_items,
                           float negative_target, float negative_weight, float scale) noexcept nogil:
    """Pass 1 for the sampled pairs (positions ``batch .. size - 1``): each rating's user with a uniform item.

    Returns their weighted squared error; they carry no penalty (``weight`` 0).
    """
    cdef Py_ssize_t j, K = su.K1 - 1
    cdef uint64_t state = seeded(sample_seed, <uint64_t>t + (<uint64_t>1 << 62))
    cdef int u, i
    cdef const float *pu
    cdef const float *qi
    cdef float e
    cdef double loss = 0
    for j in range(batch, size):
        u = users[(j - batch) % batch]
        i = 1 + <int>below(&state, n_items)
        users[j] = u
        items[j] = i
        pu = su.table + u * su.width
        qi = si.table + i * si.width
        score[j] = pu[K] + qi[K] + dot(pu, qi, K)
        e = score[j] - negative_target
        loss += negative_weight * e * e
        target[j] = negative_target
        weight[j] = 0
        coef[j] = scale * negative_weight * e
        shrink[j] = 0
        if j < rating_size:
            su.owner[u] = j
            si.owner[i] = j
    return loss


cdef double score_selection(Side *ssu, Side *ssi, const int *users, const int *items, const float *score,
                            const float *target, const float *weight, float *sel_coef, Py_ssize_t batch,
                            Py_ssize_t size, float negative_weight, const float *sel_penalty,
                            float scale) noexcept nogil:
    """Pass 1 for the selection tables: every position's residual of the rating score; returns their loss."""
    cdef Py_ssize_t j, K1s = ssu.K1, Ks = K1s - 1
    cdef int u, i
    cdef const float *ps
    cdef const float *pt
    cdef float w, e
    cdef double loss = 0
    for j in range(size):
        u = users[j]
        i = items[j]
        ps = ssu.table + u * ssu.width
        pt = ssi.table + i * ssi.width
        w = weight[j] if j < batch else negative_weight
        e = score[j] + dot(ps, pt, Ks) + ps[Ks] + pt[Ks] - target[j]
        loss += w * e * e
        if j < batch:
            loss += w * (penalty_sum(ps, sel_penalty, K1s) + penalty_sum(pt, sel_penalty, K1s))
        sel_coef[j] = scale * w * e
        ssu.owner[u] = j
        ssi.owner[i] = j
    return loss


def train(float[:, ::1] table_u, float[:, ::1] table_i, const int[:, ::1] X, const float[::1] y,
          const float[::1] weights, const int[::1] order, Py_ssize_t n_steps, Py_ssize_t batch,
          const float[::1] penalty, const float[::1] hyper, int rule, int64_t step, int64_t stride,
          Py_ssize_t n_negatives=0, float negative_target=0, float negative_weight=0, Py_ssize_t n_items=0,
          uint64_t sample_seed=0, float[:, ::1] sel_u=None, float[:, ::1] sel_i=None,
          const float[::1] sel_penalty=None):
    """Train ``n_steps`` batches of ``batch`` ratings, in place; returns the sums over them of (loss, squared error).

    Parameters
    ----------
    table_u, table_i : float32 arrays (rows, K1 * (1 + slots)), C-contiguous
        Packed ``[factors | bias | optimizer state]`` rows (the rule's
        ``slots`` state columns per weight column), updated in place.
    X : int32 array (n, 2)
        (user row, item row) of every rating, rows of these tables.
    y, weights : float32 arrays
        Centred ratings; their weights (one weight stands for all).
    order : int32 array
        Positions in ``X`` of the batches' ratings, ``n_steps * batch`` of them at least.
    penalty : float32 array (K1,)
        ``[alpha] * K + [alpha_bias]``.
    hyper : float32 array (4,)
        The rule's hyperparameters (SGD ``[lr]``, Adagrad ``[lr, epsilon]``,
        Adam ``[lr, beta_1, beta_2, epsilon]``), padded.
    rule : int
        :data:`RULE_SGD`, :data:`RULE_ADAGRAD` or :data:`RULE_ADAM`.
    step, stride : int
        Batch ``s`` is optimizer step ``t = step + (s + 1) * stride``.
    n_negatives, negative_target, negative_weight, n_items, sample_seed
        Sampled pairs per batch (see the module docstring).
    sel_u, sel_i, sel_penalty
        Selection tables, packed like the rating tables, and their penalty.
    """
    cdef Py_ssize_t K1 = penalty.shape[0], K = K1 - 1
    cdef Py_ssize_t n_weights = weights.shape[0]
    cdef bint selection = sel_u is not None
    cdef bint squares = rule == ADAGRAD
    cdef Py_ssize_t size = batch + n_negatives
    cdef Py_ssize_t rating_size = batch if selection else size
    cdef Py_ssize_t K1s = sel_penalty.shape[0] if selection else 1
    if table_u.shape[1] < K1 or table_i.shape[1] < K1 or table_i.shape[1] != table_u.shape[1]:
        raise ValueError("table_u and table_i must be packed alike, with at least len(penalty) columns")
    if n_steps > 0 and order.shape[0] < n_steps * batch:
        raise ValueError(f"order must hold n_steps * batch = {n_steps * batch} positions; got {order.shape[0]}")
    if n_negatives and n_items < 1:
        raise ValueError(f"sampled pairs need n_items >= 1; got {n_items}")
    if hyper.shape[0] < 4:
        raise ValueError(f"hyper must hold 4 values; got {hyper.shape[0]}")
    cdef Side su, si, ssu, ssi
    cdef int *users = <int *>malloc(size * sizeof(int))
    cdef int *items = <int *>malloc(size * sizeof(int))
    cdef float *coef = <float *>malloc(size * sizeof(float))
    cdef float *shrink = <float *>malloc(size * sizeof(float))
    cdef float *sel_coef = <float *>malloc(size * sizeof(float))
    cdef float *score = <float *>malloc(size * sizeof(float))
    cdef float *weight = <float *>malloc(size * sizeof(float))
    cdef float *target = <float *>malloc(size * sizeof(float))
    cdef bint ok = users != NULL and items != NULL and coef != NULL and shrink != NULL and sel_coef != NULL \
        and score != NULL and weight != NULL and target != NULL
    memset(&su, 0, sizeof(Side)); memset(&si, 0, sizeof(Side))
    memset(&ssu, 0, sizeof(Side)); memset(&ssi, 0, sizeof(Side))
    ok = ok and side_init(&su, table_u, K1, rating_size, squares) and side_init(&si, table_i, K1, rating_size, squares)
    if selection:
        ok = ok and side_init(&ssu, sel_u, K1s, size, squares) and side_init(&ssi, sel_i, K1s, size, squares)
    cdef double total_loss = 0, total_squared = 0, squared, penalised, negatives_loss, sel_loss
    cdef Py_ssize_t s, j, r
    cdef int u, i
    cdef float w, e, rate, scale = 2.0 / batch
    cdef float h0 = hyper[0], h1 = hyper[1], h2 = hyper[2], h3 = hyper[3]
    cdef int64_t t
    cdef const float *pu
    cdef const float *qi
    if ok:
        with nogil:
            for s in range(n_steps):
                t = step + (s + 1) * stride
                squared = 0
                penalised = 0
                negatives_loss = 0
                sel_loss = 0
                # pass 0: the batch's ratings gathered from their shuffled positions, in a
                # loop of independent loads (many misses in flight at once)
                for j in range(batch):
                    if j + GATHER_AHEAD < batch:
                        r = order[s * batch + j + GATHER_AHEAD]
                        skmf_prefetch(&X[r, 0])
                        skmf_prefetch(&y[r])
                        if r < n_weights:
                            skmf_prefetch(&weights[r])
                    r = order[s * batch + j]
                    users[j] = X[r, 0]
                    items[j] = X[r, 1]
                    target[j] = y[r]
                    weight[j] = weights[r if r < n_weights else n_weights - 1]
                # pass 1: scores, errors and owners of the ratings, the rows AHEAD
                # positions on prefetched meanwhile (their weights: pass 3 fetches the state)
                for j in range(batch):
                    if j + AHEAD < batch:
                        prefetch_row(su.table, users[j + AHEAD], su.width, K1)
                        prefetch_row(si.table, items[j + AHEAD], si.width, K1)
                    u = users[j]
                    i = items[j]
                    pu = su.table + u * su.width
                    qi = si.table + i * si.width
                    score[j] = pu[K] + qi[K] + dot(pu, qi, K)
                    w = weight[j]
                    e = score[j] - target[j]
                    squared += w * e * e
                    coef[j] = scale * w * e
                    shrink[j] = scale * w
                    su.owner[u] = j
                    si.owner[i] = j
                if n_negatives:
                    negatives_loss = score_negatives(&su, &si, users, items, score, target, weight, coef, shrink,
                                                     batch, size, rating_size, sample_seed, t, n_items,
                                                     negative_target, negative_weight, scale)
                if selection:
                    sel_loss = score_selection(&ssu, &ssi, users, items, score, target, weight, sel_coef, batch,
                                               size, negative_weight, &sel_penalty[0], scale)
                # pass 2: each row's gradients summed at its owner (all from the tables
                # before the batch), and the ratings' penalty
                penalised = accumulate(&su, &si, users, items, rating_size, coef, shrink, weight, &penalty[0],
                                       squares)
                if selection:
                    accumulate(&ssu, &ssi, users, items, size, sel_coef, shrink, NULL, &sel_penalty[0], squares)
                total_squared += squared / batch
                total_loss += (squared + penalised + sel_loss) / batch
                if not selection:
                    total_loss += negatives_loss / batch
                # pass 3: the rule on each owner's row
                rate = h0
                if rule == ADAM:
                    rate = <float>(h0 * sqrt(1.0 - pow(h2, <double>t)) / (1.0 - pow(h1, <double>t)))
                apply_owners(&su, users, rating_size, rule, h0, h1, h2, h3, rate, squares)
                apply_owners(&si, items, rating_size, rule, h0, h1, h2, h3, rate, squares)
                if selection:
                    apply_owners(&ssu, users, size, rule, h0, h1, h2, h3, rate, squares)
                    apply_owners(&ssi, items, size, rule, h0, h1, h2, h3, rate, squares)
    side_free(&su); side_free(&si); side_free(&ssu); side_free(&ssi)
    free(users); free(items); free(coef); free(shrink); free(sel_coef); free(score); free(weight); free(target)
    if not ok:
        raise MemoryError("the compiled epoch could not allocate its batch buffers")
    return total_loss, total_squared


def cpu_supports_x86_64_v3():
    """Whether this CPU runs code built for x86-64-v3 (AVX2, FMA, BMI2, ...): the features GCC or Clang report."""
    return bool(skmf_x86_64_v3())


def chunk_order(int[::1] out, int64_t n, int64_t stride, int64_t shift, int64_t start, uint64_t seed_0,
                uint64_t seed_1, int offset):
    """Fill ``out`` with positions ``start .. start + len(out) - 1`` of ``k -> (k * stride + shift) mod n``, shuffled, plus ``offset``.

    Fisher-Yates driven by SplitMix64 seeded with ``(seed_0, seed_1)``.
    """
    cdef Py_ssize_t m = out.shape[0], k, j
    cdef int swap
    cdef uint64_t state = seeded(seed_0, seed_1)
    with nogil:
        for k in range(m):
            out[k] = <int>(((start + k) * stride + shift) % n + offset)
        for k in range(m - 1, 0, -1):  # k swaps with a uniform j in 0 .. k
            j = below(&state, k + 1)
            swap = out[k]
            out[k] = out[j]
            out[j] = swap


def evaluate(const float[:, ::1] P, const float[:, ::1] b_u, const float[:, ::1] Q, const float[:, ::1] b_i,
             const int[::1] users, const int[::1] items, const double[::1] y, Py_ssize_t lo, Py_ssize_t hi):
    """Sums over ratings ``lo .. hi - 1`` of (squared error, ``|p_u|^2``, ``|q_i|^2``, ``b_u^2``, ``b_i^2``), float64.

    The plain dot model's scores ``b_u + b_i + p_u . q_i`` against ``y``,
    with the squared norms of the rows read for them (the per-rating
    penalty of ``val_loss``), in one pass without the GIL.
    """
    cdef Py_ssize_t K = P.shape[1], r
    cdef double squared = 0, norm_p = 0, norm_q = 0, bias_u = 0, bias_i = 0, e
    cdef int u, i
    cdef const float *p
    cdef const float *q
    if K == 0 or hi <= lo:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    with nogil:
        for r in range(lo, hi):
            if r + AHEAD < hi:
                skmf_prefetch(&P[users[r + AHEAD], 0])
                skmf_prefetch(&Q[items[r + AHEAD], 0])
            u, i = users[r], items[r]
            p = &P[u, 0]
            q = &Q[i, 0]
            e = b_u[u, 0] + b_i[i, 0] + dot(p, q, K) - y[r]
            squared += e * e
            norm_p += dot(p, p, K)
            norm_q += dot(q, q, K)
            bias_u += b_u[u, 0] * b_u[u, 0]
            bias_i += b_i[i, 0] * b_i[i, 0]
    return squared, norm_p, norm_q, bias_u, bias_i
