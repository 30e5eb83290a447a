"""The item-item term of ``recommend``: EASE's closed form, blended with the rating model's score.

With ``item_item_alpha`` set, an :class:`~skmfnet.EmbeddingMFRegressor`
ranks the items of user u by::

    score(u, i) = sum over the items j u rated in training of B[j, i]  +  w * rating score(u, i)

where ``B`` is EASE's item-item matrix (Steck, "Embarrassingly Shallow
Autoencoders for Sparse Data", WWW 2019) over the training pairs ``X``
(users x items, 1 where the user rated the item, whatever the rating)::

    P = (X^T X + alpha I)^-1,    B = -P / diag(P),    diag(B) = 0

and ``w = item_item_weight`` weighs the rating model's score (what
``recommend`` ranks by without the term).  EASE answers "which items go with
what this user chose", the rating model "how much would they like it": the
benchmark's relevant items need both.  ``predict`` is unchanged.

``B`` covers at most :data:`MAX_ITEMS` items, the most rated (ties: the
first seen in training): inverting ``X^T X + alpha I`` of that size holds
three 10,000 x 10,000 float64 arrays (2.4 GB) and took about half a minute on
2 cores; ranking 1,000 users over 10,000 items with the term is timed
against the same call without it in ``benchmarks/results/speed/speed_recommend``;
the other items get no item-item score.  ``"auto"`` chooses
``alpha`` from :data:`ALPHA_GRID` and ``w`` from :data:`WEIGHT_GRID` inside
``fit``, on held-out training ratings (:func:`choose`).

Written here rather than taken from a library: the closed form is a few
lines of numpy, and the packages that have it (Cornac) are no dependency of
skmfnet.
"""

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "ALPHA_GRID", "MAX_ITEMS", "WEIGHT_GRID", "blend", "choose", "covered_items", "fit_table", "gram", "scores",
]

#: Most items the item-item matrix covers (the most rated ones).
MAX_ITEMS = 10_000
#: ``item_item_alpha="auto"`` chooses among these.
ALPHA_GRID = (30.0, 100.0, 300.0, 1000.0, 3000.0)
#: ``item_item_weight="auto"`` chooses among these.
WEIGHT_GRID = (0.0, 0.03, 0.1, 0.3, 1.0)
#: "auto" on data with nothing to hold out (no user with MIN_RATINGS ratings, or no held-out
#: rating at least the mean): the middle of each grid.
FALLBACK_ALPHA, FALLBACK_WEIGHT = 300.0, 0.1
#: "auto": the fraction of each user's training ratings held out, from users with at least MIN_RATINGS.
HELD_OUT_FRACTION = 0.2
MIN_RATINGS = 5
#: "auto": most held-out users scored (a random sample beyond), and the list length scored (NDCG@K).
MAX_USERS = 2_000
K = 10


def covered_items(seen, max_items=MAX_ITEMS):
    """Item rows (ascending) of the ``max_items`` most rated items of ``seen`` (CSR, users x item rows)."""
    counts = np.bincount(seen.indices, minlength=seen.shape[1])
    counts[0] = 0  # the unknown-id row is no item
    order = np.argsort(-counts, kind="stable")[:max_items]
    return np.sort(order[counts[order] > 0]).astype(np.int64)


def gram(seen, items):
    """``X^T X`` (float64, dense) of the columns ``items`` of ``seen``: co-occurrence counts."""
    X = sp.csr_matrix(seen[:, items], dtype=np.float64)
    return (X.T @ X).toarray()


def fit_table(gram, alpha):
    """EASE's ``B`` (float32) from the co-occurrence counts ``gram`` and the penalty ``alpha``.

    Raises a ValueError naming ``item_item_alpha`` when ``alpha`` is too
    small for ``X^T X + alpha I`` to be inverted into finite float32 weights.
    """
    P = gram.copy()
    P[np.diag_indices_from(P)] += alpha
    problem = f"item_item_alpha={alpha!r} is too small for these ratings: X^T X + alpha I is "
    advice = "; use a larger penalty (the 'auto' grid starts at 30) or item_item_alpha='auto'."
    try:
        P = np.linalg.inv(P)
    except np.linalg.LinAlgError:
        raise ValueError(problem + "singular" + advice) from None
    with np.errstate(all="ignore"):
        B = (P / -np.diag(P)).astype(np.float32)
    B[np.diag_indices_from(B)] = 0.0
    if not np.isfinite(B).all():
        raise ValueError(problem + "too close to singular for finite weights" + advice)
    return B


#: :func:`scores`: floats of a block of the output (users x columns) that should stay in one core's cache
#: (1 MB of float32: a core's L2 on the machine of the committed runs), and the fewest columns per block
#: (``B``'s rows are read in segments of a block's width).
BLOCK_FLOATS = 1 << 18
MIN_BLOCK_COLUMNS = 256


def scores(seen_rows, items, table, n_items, n_threads=None):
    """The item-item scores of users (their CSR rows of ``seen``) against item rows 1..n_items, float64.

    ``table``: ``B`` over the item rows ``items``.  Each user's score of item
    i sums the rows of ``B`` of the items the user rated
    (:func:`skmfnet._row_sums.sum_rows`, which reads ``B`` once per call,
    on ``n_threads`` threads, each its own columns; None: as many as the
    process may use); items outside ``items`` score 0.  (``recommend``
    calls it on one thread per block of users, blocks side by side.)
    """
    from concurrent.futures import ThreadPoolExecutor

    from ._row_sums import sum_rows
    from ._training._dispatch import usable_cores

    whole = len(items) == n_items  # every item: a slice
    columns = seen_rows[:, 1:] if whole else seen_rows[:, items]
    by_item = sp.csr_matrix(columns.T)  # for each row of B, the users who rated its item
    indptr = by_item.indptr.astype(np.int32, copy=False)
    indices = by_item.indices.astype(np.int32, copy=False)
    table = np.ascontiguousarray(table, dtype=np.float32)  # (no copy for a fitted or loaded B)
    width = table.shape[1]
    sums = np.zeros((seen_rows.shape[0], width), dtype=np.float32)
    block = max(MIN_BLOCK_COLUMNS, BLOCK_FLOATS // max(1, seen_rows.shape[0]))
    threads = usable_cores() if n_threads is None else n_threads
    bounds = np.linspace(0, width, max(1, min(threads, -(-width // block))) + 1).astype(np.int64)
    if len(bounds) <= 2:
        sum_rows(indptr, indices, table, sums, 0, width, block)
    else:
        with ThreadPoolExecutor(max_workers=len(bounds) - 1) as pool:
            for done in [pool.submit(sum_rows, indptr, indices, table, sums, a, b, block)
                         for a, b in zip(bounds[:-1], bounds[1:])]:
                done.result()
    if whole:
        return sums.astype(np.float64)
    out = np.zeros((seen_rows.shape[0], n_items))
    out[:, items - 1] = sums
    return out


def blend(rating_scores, seen_rows, items, table, weight, n_items, n_threads=None):
    """What ``recommend`` ranks by with the term: ``weight * rating_scores`` plus the item-item scores."""
    return weight * rating_scores + scores(seen_rows, items, table, n_items, n_threads)


def _held_out(users, rng):
    """Boolean mask: HELD_OUT_FRACTION of each user's ratings, for users with at least MIN_RATINGS."""
    codes = pd.factorize(users)[0]  # any hashable ids, mixed types included
    order = np.lexsort((rng.random(len(codes)), codes))
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.empty(len(codes), dtype=np.int64)
    position[order] = np.arange(len(codes)) - starts[codes[order]]
    share = np.where(counts >= MIN_RATINGS, np.floor(HELD_OUT_FRACTION * counts), 0)
    return position < share[codes]


def _ndcg(score, relevant):
    """Mean NDCG@K of the rows of ``score`` (seen items at -inf) against the boolean matrix ``relevant``."""
    from ._scoring import top_n
    from .metrics import _ndcg_rows

    cols, _ = top_n(score, K)
    return float(np.mean(_ndcg_rows(np.take_along_axis(relevant, cols, axis=1), relevant.sum(axis=1), K)))


def choose(estimator, X, y, sample_weight, alphas, weights):
    """``(alpha, weight, results)``: the pair of best NDCG@10 on held-out training ratings.

    HELD_OUT_FRACTION of the ratings of each user with at least MIN_RATINGS
    are held out (seeded by ``random_state``); the estimator's rating model
    (a clone, without the term) and EASE are fitted on the rest; relevant
    are the held-out items rated at least the rest's mean rating; each
    (alpha, weight) ranks, for at most MAX_USERS such users, the items they
    did not rate in the rest, and is scored by NDCG@10 as
    :func:`skmfnet.metrics.ndcg_at_k` scores it.  ``alphas`` and ``weights``
    hold one value each when the user fixed it.  With nothing to hold out or
    rank against, the middle of each grid (:data:`FALLBACK_ALPHA`,
    :data:`FALLBACK_WEIGHT`, or the value the user fixed) and no results.
    """
    from sklearn.base import clone
    from sklearn.utils import _safe_indexing, check_random_state

    from ._recommend import _Scorer
    from ._scoring import leave_out_seen

    rng = check_random_state(estimator.random_state)
    seed = int(rng.randint(np.iinfo(np.int32).max))
    if not hasattr(X, "iloc") and not hasattr(X, "__array__"):
        X = np.asarray(X, dtype=object)  # a list of rows: ids of any type, kept as they are
    users = np.asarray(_safe_indexing(X, 0, axis=1))
    held = _held_out(users, np.random.default_rng(seed))
    fallback = (alphas[0] if len(alphas) == 1 else FALLBACK_ALPHA,
                weights[0] if len(weights) == 1 else FALLBACK_WEIGHT, [])
    if not held.any():
        return fallback
    keep = np.flatnonzero(~held)
    rest = clone(estimator).set_params(item_item_alpha=None, verbose=0)
    rest.fit(_safe_indexing(X, keep), np.asarray(y)[keep],
             sample_weight=None if sample_weight is None else np.asarray(sample_weight)[keep])
    out = np.flatnonzero(held)
    X_out, y_out = _safe_indexing(X, out), np.asarray(y, dtype=np.float64)[out]
    user_rows = rest.user_encoder_.transform(np.asarray(_safe_indexing(X_out, 0, axis=1)))
    item_rows = rest.item_encoder_.transform(np.asarray(_safe_indexing(X_out, 1, axis=1)))
    liked = (user_rows > 0) & (item_rows > 0) & (y_out >= rest.mu_)
    query = np.unique(user_rows[liked])
    if len(query) == 0:  # no held-out rating at least the mean: nothing to rank against
        return fallback
    if len(query) > MAX_USERS:
        query = np.sort(np.random.default_rng(seed).choice(query, MAX_USERS, replace=False))
    n_items = rest.n_items_
    relevant = np.zeros((len(query), n_items), dtype=bool)
    position = np.searchsorted(query, user_rows[liked])
    found = query[np.minimum(position, len(query) - 1)] == user_rows[liked]
    relevant[position[found], item_rows[liked][found] - 1] = True
    seen_rows = rest.seen_[query]
    rating_score = leave_out_seen(_Scorer(rest)(query), query, rest.seen_.indptr, rest.seen_.indices)
    items = covered_items(rest.seen_)
    counts = gram(rest.seen_, items)
    best, results = None, []
    for alpha in alphas:
        item_score = scores(seen_rows, items, fit_table(counts, alpha), n_items)
        for weight in weights:
            ndcg = _ndcg(item_score + weight * rating_score if weight else
                         np.where(np.isinf(rating_score), -np.inf, item_score), relevant)
            results.append({"alpha": float(alpha), "weight": float(weight), "ndcg_at_10": ndcg})
            if best is None or ndcg > best[0]:
                best = (ndcg, alpha, weight)
    return float(best[1]), float(best[2]), results
