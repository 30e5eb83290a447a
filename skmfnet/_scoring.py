"""Scores of a plain dot model from its numpy tables, and the n best of them.

The arithmetic that ``recommend``, ``similar_items``/``similar_users`` and
the command line's model reader share, written once::

    tables (mu, b_u, b_i, P, Q) --(dot_scores)--> scores --(leave_out_seen)--> --(ranked_blocks)--> top n

:class:`DotModel` holds the prediction state of a fitted plain dot model
(``interaction="dot"``, no side information, implicit term or time effects) as numpy
arrays, as :func:`skmfnet._persistence.read_dot_model` reads it from a model
file, and predicts, recommends and finds similar ids from it.  It exists so
that ``skmfnet predict``/``recommend``/``similar`` answer in well under a
second: a dot model's predictions are a few numpy products, while loading the
estimator imports scikit-learn and TensorFlow (the scikeras base class),
seconds before the first product.  Nothing here imports either.

The estimator computes the same numbers with the same functions: a plain
dot model's ``predict`` is :func:`pair_scores` of its tables (float64
arithmetic on the float32 weights), ``recommend`` scores with
:func:`dot_scores`, ``similar`` ranks cosines with :func:`cosine_ranked`.
"""

import numpy as np
import pandas as pd

__all__ = ["DotModel", "cosine_ranked", "dot_scores", "fold_members", "id_index", "leave_out_seen", "pair_scores",
           "ranked_blocks", "ranking_tables", "top_n"]

#: Scores computed per block of query rows: at most this many scores at once.
_BLOCK_SCORES = 1 << 21


def pair_scores(mu, tables, user_rows, item_rows):
    """``mu + b_u + b_i + p_u . q_i`` of the pairs (user_rows[k], item_rows[k]), float64.

    ``tables``: ``user_factors``, ``item_factors`` of shape (n + 1, K) and
    ``user_bias``, ``item_bias`` of shape (n + 1,) (float32 or float64; the
    rows used are computed in float64).  Row 0, the unknown-id row, is zero.
    The pairs are scored in blocks of at most :data:`_BLOCK_SCORES` factors
    a side: their gathered float64 rows stay a few megabytes whatever the
    number of pairs (all at once, a million pairs at K=64 took 1 GB).
    """
    f64 = np.float64
    user_rows, item_rows = np.asarray(user_rows), np.asarray(item_rows)
    P, Q = tables["user_factors"], tables["item_factors"]
    out = np.empty(len(user_rows), dtype=f64)
    step = max(1, _BLOCK_SCORES // max(P.shape[1], 1))
    for start in range(0, len(user_rows), step):
        u, i = user_rows[start: start + step], item_rows[start: start + step]
        out[start: start + step] = (mu + tables["user_bias"][u].astype(f64) + tables["item_bias"][i].astype(f64)
                                    + np.einsum("ij,ij->i", P[u].astype(f64), Q[i].astype(f64)))
    return out


def fold_members(factors, biases):
    """The average of dot models as one dot model: ``(factors, bias)`` of one side, float32.

    ``factors``: each member's factor table of the side (same rows); ``biases``:
    each member's bias vector.  The members' factors go side by side, each
    scaled by ``1 / sqrt(n)``, and their biases are averaged, so that
    ``b_u + b_i + p_u . q_i`` of the result is the mean of the members'
    (``n_estimators``' seeds, ``optimizer="gibbs"``'s samples).
    """
    scale = np.float32(1.0 / np.sqrt(len(factors)))
    return (np.hstack(factors).astype(np.float32) * scale,
            np.mean(biases, axis=0).astype(np.float32))


def ranking_tables(tables, user_selection=None, item_selection=None):
    """``(P, Q, b_u, b_i)`` in float64 that ``recommend`` scores a dot model with.

    ``tables`` as :func:`pair_scores` takes them; with a selection term
    (``[factors | bias]`` per row), its factors are appended to ``P`` and
    ``Q`` and its biases added: ``+ s_u . t_i + c_u + c_i``.
    """
    f64 = np.float64
    P, Q = tables["user_factors"].astype(f64), tables["item_factors"].astype(f64)
    user_bias, item_bias = tables["user_bias"].astype(f64), tables["item_bias"].astype(f64)
    if item_selection is not None:
        S, T = np.asarray(user_selection, dtype=f64), np.asarray(item_selection, dtype=f64)
        P, Q = np.concatenate([P, S[:, :-1]], axis=1), np.concatenate([Q, T[:, :-1]], axis=1)
        user_bias, item_bias = user_bias + S[:, -1], item_bias + T[:, -1]
    return P, Q, user_bias, item_bias


def dot_scores(mu, user_bias, item_bias, user_rows, P=None, Q=None):
    """``mu + b_u + b_i (+ p_u . q_i)`` of user rows against every known item, float64.

    Returns shape (len(user_rows), n_items): column j is item row j + 1 (row
    0, the unknown-id row, is no item).  Without ``P`` and ``Q``, the biases
    alone (the bias baseline).  Unknown users (row 0) need no special case:
    their rows of every table are zero.
    """
    items = slice(1, None)
    scores = mu + user_bias[user_rows, None] + item_bias[None, items]
    if P is not None:
        scores += P[user_rows] @ Q[items].T
    return scores


def leave_out_seen(scores, user_rows, indptr, indices):
    """Set to -inf, in place, the score of every (user row, item row) pair of the CSR ``(indptr, indices)``."""
    starts, ends = indptr[user_rows], indptr[np.asarray(user_rows) + 1]
    lengths = ends - starts
    if not lengths.sum():
        return scores
    r = np.repeat(np.arange(len(user_rows)), lengths)
    positions = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    c = np.asarray(indices, dtype=np.int64)[positions] - 1  # item row -> score column
    keep = c >= 0
    scores[r[keep], c[keep]] = -np.inf
    return scores


def top_n(scores, n):
    """Column indices of the n largest finite scores per row, best first.

    Returns (columns, values) of shape (n_rows, min(n, n_columns)); rows with
    fewer finite scores are padded with -inf values (dropped by the caller).
    Ties are broken by the lower column, at the cut too: the result equals
    the first n columns of a stable sort of ``-scores``.  NaN scores count as
    -inf.

    ``np.argpartition`` keeps the n largest in linear time but picks
    arbitrary members of a tie that straddles the cut; in the rows where
    that happens (more than n scores at least the n-th largest), the kept
    columns are chosen again by value: every column above the n-th largest
    score, then the lowest columns equal to it until there are n.
    """
    n_rows, n_columns = scores.shape
    n = min(n, n_columns)
    if np.isnan(scores).any():
        scores = np.where(np.isnan(scores), -np.inf, scores)
    if n < n_columns:
        cols = np.argpartition(-scores, n - 1, axis=1)[:, :n]
        boundary = np.take_along_axis(scores, cols, axis=1).min(axis=1, keepdims=True)
        straddle = np.flatnonzero((scores >= boundary).sum(axis=1) > n)
        if len(straddle):
            sub, cut = scores[straddle], boundary[straddle]
            above, at = sub > cut, sub == cut
            needed = n - above.sum(axis=1, keepdims=True)  # columns equal to the cut still to take
            keep = above | (at & (np.cumsum(at, axis=1, dtype=np.int32) <= needed))
            cols[straddle] = np.nonzero(keep)[1].reshape(len(straddle), n)
    else:
        cols = np.broadcast_to(np.arange(n_columns), scores.shape).copy()
    values = np.take_along_axis(scores, cols, axis=1)
    order = np.lexsort((cols, -values), axis=1)  # by score descending, then column
    return np.take_along_axis(cols, order, axis=1), np.take_along_axis(values, order, axis=1)


def ranked_blocks(query_rows, score, n_columns, n, threaded=False):
    """The ``n`` best columns of every query row, scored block by block.

    ``score(rows)`` returns the float64 scores of a block of query rows
    against all ``n_columns`` columns (-inf: left out); blocks hold at most
    ``_BLOCK_SCORES`` scores.  Returns (query position, rank from 1, column,
    score), one entry per kept (query, column), queries in order and ranks
    ascending; left-out columns never appear.

    ``threaded``: ``score`` is numpy or compiled code that may run on
    several threads at once; blocks are then scored and ranked side by side
    on as many threads as the process may use (numpy's products, partition
    and the item-item sums release the GIL).
    """
    block = max(1, _BLOCK_SCORES // max(n_columns, 1))
    starts = range(0, len(query_rows), block)

    def ranked(start):
        cols, vals = top_n(score(query_rows[start : start + block]), n)
        keep = np.isfinite(vals)  # left-out columns sort last, as -inf
        return np.nonzero(keep)[0] + start, np.cumsum(keep, axis=1)[keep], cols[keep], vals[keep]

    threads = _usable_cores() if threaded and len(starts) > 1 else 1
    if threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(threads, len(starts))) as pool:
            parts = list(pool.map(ranked, starts))
    else:
        parts = [ranked(start) for start in starts]
    return tuple(
        np.concatenate([p[k] for p in parts]).astype(np.int64 if k < 3 else np.float64)
        if parts else np.empty(0, dtype=np.int64 if k < 3 else np.float64)
        for k in range(4)
    )


def _usable_cores():
    """:func:`skmfnet._training._dispatch.usable_cores` (imported only here: it imports joblib)."""
    from ._training._dispatch import usable_cores

    return usable_cores()


def cosine_ranked(vectors, query_rows, n):
    """The ``n`` rows most similar by cosine to each query row (itself left out), as :func:`ranked_blocks`.

    ``vectors`` holds the known rows 1..n (column j of the result is row
    j + 1); ``query_rows`` are rows from 1.  A zero vector is similar to
    nothing (cosine 0).
    """
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors / np.where(norms > 0, norms, 1.0)[:, None]

    def scores(query):
        out = unit[query - 1] @ unit.T
        out[np.arange(len(query)), query - 1] = -np.inf  # not itself
        return out

    return ranked_blocks(query_rows, scores, len(unit), n, threaded=True)


def id_index(ids):
    """Requested ids (one id or array-like) as a duplicate-free Index, in the order given."""
    if np.ndim(ids) == 0:
        ids = [ids]
    if hasattr(ids, "__array__"):
        values = np.asarray(ids).reshape(-1)
    else:
        ids = list(ids)
        values = np.empty(len(ids), dtype=object)  # keep ints and strings as they are
        values[:] = ids
    return pd.Index(pd.unique(values))


class DotModel:
    """The prediction state of a fitted plain dot model, as numpy arrays.

    Built by :func:`skmfnet._persistence.read_dot_model` from a model file
    (every array checked there); the command line predicts, recommends and
    finds similar ids with it without loading the estimator.  The results
    are those of :meth:`EmbeddingMFRegressor.predict`, :func:`skmfnet.recommend`
    and ``similar_items``/``similar_users`` of the same file, to float32
    rounding for ``predict``.

    Parameters
    ----------
    user_ids, item_ids : pandas.Index
        The vocabularies: the id of row r is ``ids[r - 1]``.
    mu : float
    rating_range : (float, float)
    clip_predictions : bool
    user_factors, item_factors : ndarray of shape (n + 1, K)
    user_bias, item_bias : ndarray of shape (n + 1,)
    user_selection, item_selection : ndarray of shape (n + 1, S + 1) or None
        The selection term (``selection_factors``): its factors, then its bias.
    seen : (indptr, indices) or None
        The training pairs in CSR form over (user row, item row).
    item_item : (items, B, weight) or None
        The item-item term of ``recommend`` (:mod:`skmfnet._item_item`): the
        item rows ``B`` covers, ``B``, and the weight of the rating score.
    feature_names : list of str or None
        The column names of ``X`` in fit (``feature_names_in_``).
    """

    def __init__(self, *, user_ids, item_ids, mu, rating_range, clip_predictions, user_factors,
                 item_factors, user_bias, item_bias, user_selection=None, item_selection=None,
                 seen=None, feature_names=None, item_item=None):
        self.ids = {"user": user_ids, "item": item_ids}
        self.mu = float(mu)
        self.rating_range = rating_range
        self.clip_predictions = clip_predictions
        self.tables = {"user_factors": user_factors, "item_factors": item_factors,
                       "user_bias": user_bias, "item_bias": item_bias}
        self.selection = (user_selection, item_selection)
        self.seen = seen
        self.feature_names = feature_names
        self.item_item = item_item

    def rows(self, side, ids):
        """Rows of raw ids (0 for ids not seen in fit), as ``IdEncoder.transform`` gives them."""
        return (self.ids[side].get_indexer(np.asarray(ids)) + 1).astype(np.int64)

    def predict(self, users, items):
        """Predicted ratings of the pairs (users[k], items[k]), float64, clipped as the estimator clips them."""
        y = pair_scores(self.mu, self.tables, self.rows("user", users), self.rows("item", items))
        if self.clip_predictions:
            np.clip(y, *self.rating_range, out=y)
        return y

    def recommend(self, users, n=10, exclude_seen=True):
        """As :func:`skmfnet.recommend`: a DataFrame of user, rank, item, score."""
        users = id_index(users)
        user_rows = self.rows("user", users)
        P, Q, user_bias, item_bias = ranking_tables(self.tables, *self.selection)
        if (exclude_seen or self.item_item is not None) and self.seen is None:
            raise ValueError("the model holds no training pairs, so the items each user rated are unknown")
        item_item = None
        if self.item_item is not None:  # + the item-item term (scipy: only for a model that has one)
            import scipy.sparse as sp

            from ._item_item import blend

            items, table, weight = self.item_item
            indptr, indices = self.seen
            seen = sp.csr_matrix((np.ones(len(indices), dtype=bool), indices, indptr),
                                 shape=(len(indptr) - 1, len(Q)))
            item_item = (seen, items, table, weight)

        def scores(rows):
            out = dot_scores(self.mu, user_bias, item_bias, rows, P, Q)
            if item_item is not None:
                seen, items, table, weight = item_item
                out = blend(out, seen[rows], items, table, weight, len(Q) - 1, n_threads=1)
            return leave_out_seen(out, rows, *self.seen) if exclude_seen else out

        pos, rank, col, val = ranked_blocks(user_rows, scores, len(Q) - 1, n, threaded=True)
        return pd.DataFrame(
            {"user": users.take(pos), "rank": rank, "item": self.ids["item"].take(col), "score": val}
        )

    def similar(self, ids, side, n=10):
        """As ``similar_items`` (``side="item"``) or ``similar_users``; ids must be known."""
        ids = id_index(ids)
        rows = self.rows(side, ids)
        if (rows == 0).any():
            raise ValueError(f"{side}s not seen in fit have no learned factors: {list(ids[rows == 0][:5])}")
        pos, rank, col, val = cosine_ranked(self.tables[f"{side}_factors"][1:].astype(np.float64), rows, n)
        return pd.DataFrame(
            {side: ids.take(pos), "rank": rank, f"similar_{side}": self.ids[side].take(col), "similarity": val}
        )
