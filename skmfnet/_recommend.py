"""Top-N recommendation from a fitted rating estimator.

For each user, every item known to the estimator is scored at once (a batched
matrix product, or batched calls of the network) and the ``n`` best are kept::

    raw user ids --(user_encoder_)--> rows --(scores over all items)--> top n --(item_encoder_)--> raw item ids

What a score is depends on the estimator:

* :class:`~skmfnet.EmbeddingMFRegressor` with ``interaction="dot"``:
  ``mu + b_u + b_i + p_u . q_i``, computed with numpy from the embedding
  tables of the fitted network, plus the selection term ``s_u . t_i + c_u +
  c_i`` when it has one (``selection_factors > 0``: how likely the user is
  to choose the item, learnt from sampled unobserved pairs);
* :class:`~skmfnet.EmbeddingMFRegressor` with ``interaction="concat"``: the
  network's output for (user, every item), in batches, plus ``mu``;
* :class:`~skmfnet.BiasBaselineRegressor`: ``mu + b_u + b_i``;
* :class:`~skmfnet.MostPopularRanker`: the item's count of training ratings.

Scores are the predicted ratings *before* clipping to the training range
(clipping would tie every item above the top of the scale).  A user not seen
in ``fit`` is scored as ``predict`` scores it, with the zero embeddings of the
unknown-id row: ``mu + b_i`` for ``interaction="dot"`` and the bias baseline,
so items are ranked by their bias (a popularity-like ranking), and the
network's output for a zero user vector with ``interaction="concat"``.  The
ranking is the same for every unknown user.

"Seen" items -- the (user, item) pairs of the training data -- are left out by
default.  They are held in a boolean :class:`scipy.sparse.csr_matrix` of shape
``(n_users_ + 1, n_items_ + 1)`` indexed by encoder rows (row and column 0 are
the unknown-id rows and stay empty), built by :func:`seen_matrix`.  Fitted
estimators store it as ``seen_``; ``recommend`` also accepts it, or the raw
training pairs, through its ``seen`` argument.
"""

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils._param_validation import Interval, validate_params
from sklearn.utils.validation import check_is_fitted

__all__ = ["recommend", "seen_matrix", "seen_matrix_from_rows"]

#: Scores computed per block of users: at most this many (user, item) scores at once.
_BLOCK_SCORES = 1 << 21


def seen_matrix_from_rows(user_rows, item_rows, n_users, n_items):
    """Boolean CSR matrix of the (user row, item row) pairs given.

    Parameters
    ----------
    user_rows, item_rows : array-like of int of shape (n_pairs,)
        Encoder rows (``1..n_users`` and ``1..n_items``; 0 for unknown ids).
    n_users, n_items : int
        Number of known users and items.

    Returns
    -------
    seen : scipy.sparse.csr_matrix of bool, shape (n_users + 1, n_items + 1)
        ``seen[u, i]`` is True when the pair ``(u, i)`` occurs at least once.
        Pairs with an unknown side (row 0) are dropped.

    Examples
    --------
    >>> from skmfnet._recommend import seen_matrix_from_rows
    >>> seen = seen_matrix_from_rows([1, 1, 2, 0], [2, 1, 2, 1], n_users=2, n_items=2)
    >>> seen.toarray().astype(int)
    array([[0, 0, 0],
           [0, 1, 1],
           [0, 0, 1]])
    """
    user_rows = np.asarray(user_rows, dtype=np.int64).reshape(-1)
    item_rows = np.asarray(item_rows, dtype=np.int64).reshape(-1)
    keep = (user_rows > 0) & (item_rows > 0)
    user_rows, item_rows = user_rows[keep], item_rows[keep]
    seen = sp.csr_matrix(
        (np.ones(len(user_rows), dtype=bool), (user_rows, item_rows)),
        shape=(n_users + 1, n_items + 1),
    )
    seen.sum_duplicates()  # boolean "or" of the duplicates; sorted indices
    return seen


def seen_matrix(estimator, X):
    """Boolean CSR matrix of the raw (user, item) pairs ``X`` in the estimator's rows.

    Parameters
    ----------
    estimator : fitted estimator
        Any estimator with ``user_encoder_`` and ``item_encoder_``
        (:class:`~skmfnet.EmbeddingMFRegressor`,
        :class:`~skmfnet.BiasBaselineRegressor`).
    X : array-like or DataFrame of shape (n_pairs, 2)
        User id in column 0, item id in column 1, typically the training data.

    Returns
    -------
    seen : scipy.sparse.csr_matrix of bool, shape (n_users + 1, n_items + 1)
        In encoder rows, with ``n_users = estimator.n_users_`` (see
        :func:`seen_matrix_from_rows`); pairs with an id unknown to the
        estimator are dropped.
    """
    users, items = _pairs(X)
    return seen_matrix_from_rows(
        estimator.user_encoder_.transform(users),
        estimator.item_encoder_.transform(items),
        estimator.user_encoder_.n_known,
        estimator.item_encoder_.n_known,
    )


def _pairs(X):
    """Raw user and item id columns of a 2-column array-like or DataFrame."""
    if hasattr(X, "iloc"):
        if X.shape[1] != 2:
            raise ValueError(f"seen must have exactly 2 columns (user id, item id); got {X.shape[1]}.")
        return X.iloc[:, 0].to_numpy(), X.iloc[:, 1].to_numpy()
    if not hasattr(X, "__array__"):
        X = np.array(X, dtype=object)  # keep ints and strings as they are
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(
            f"seen must be of shape (n_pairs, 2) (user id, item id); got shape {X.shape}."
        )
    return X[:, 0], X[:, 1]


def _unwrap(estimator):
    """The fitted rating estimator inside a search (``best_estimator_``)."""
    inner = getattr(estimator, "best_estimator_", None)
    return estimator if inner is None else inner


def _resolve_seen(estimator, seen):
    """The seen matrix as CSR of the estimator's shape, from ``seen`` or ``seen_``."""
    shape = (estimator.user_encoder_.n_known + 1, estimator.item_encoder_.n_known + 1)
    if seen is None:
        seen = getattr(estimator, "seen_", None)
        if seen is None:
            raise ValueError(
                f"{type(estimator).__name__} has no seen_ attribute, so the items each user rated "
                "in training are unknown. Pass seen=X_train (the training (user, item) pairs) or "
                "seen=seen_matrix(estimator, X_train), or exclude_seen=False."
            )
    if sp.issparse(seen):
        if seen.shape != shape:
            raise ValueError(
                f"seen as a sparse matrix must have shape (n_users_ + 1, n_items_ + 1) = {shape}; "
                f"got {seen.shape}."
            )
        return sp.csr_matrix(seen)
    return seen_matrix(estimator, seen)


class _Scorer:
    """Scores of blocks of user rows against every known item (columns = item rows 1..n)."""

    def __init__(self, estimator):
        if hasattr(estimator, "item_counts_"):  # MostPopularRanker: the same scores for every user
            self.mu = 0.0
            self.kind = "bias"
            self.item_bias = np.asarray(estimator.item_counts_, dtype=np.float64)
            self.user_bias = np.zeros(estimator.n_users_ + 1)
            self.n_items = len(self.item_bias) - 1
            return
        self.mu = float(estimator.mu_)
        if hasattr(estimator, "user_bias_") and hasattr(estimator, "item_bias_"):
            self.kind = "bias"
            self.user_bias = np.asarray(estimator.user_bias_, dtype=np.float64)
            self.item_bias = np.asarray(estimator.item_bias_, dtype=np.float64)
        elif hasattr(estimator, "model_"):
            model = estimator.model_
            from ._network import ITEM_BIAS, ITEM_FACTORS, USER_BIAS, USER_FACTORS

            def table(name):
                return np.asarray(model.get_layer(name).embeddings.numpy(), dtype=np.float64)

            self.user_bias = table(USER_BIAS)[:, 0]
            self.item_bias = table(ITEM_BIAS)[:, 0]
            if estimator._plain_dot():
                self.kind = "dot"
                self.P = table(USER_FACTORS)
                self.Q = table(ITEM_FACTORS)
                selection = getattr(estimator, "item_selection_", None)
                if selection is not None:
                    # the selection term: + s_u . t_i + c_u + c_i
                    S = np.asarray(estimator.user_selection_, dtype=np.float64)
                    T = np.asarray(selection, dtype=np.float64)
                    self.P = np.concatenate([self.P, S[:, :-1]], axis=1)
                    self.Q = np.concatenate([self.Q, T[:, :-1]], axis=1)
                    self.user_bias = self.user_bias + S[:, -1]
                    self.item_bias = self.item_bias + T[:, -1]
            else:
                # side information and implicit feedback live in the network
                self.kind = "network"
                self.model = model
                self.pair_inputs = estimator._pair_inputs
        else:
            raise TypeError(
                f"recommend supports EmbeddingMFRegressor and BiasBaselineRegressor (or a search "
                f"whose best_estimator_ is one); got {type(estimator).__name__}."
            )
        self.n_items = len(self.item_bias) - 1

    def __call__(self, user_rows):
        """Float64 scores of shape (len(user_rows), n_items) (column j = item row j + 1).

        Unknown users (row 0) need no special case: their rows of every table
        are zero, as in ``predict``.
        """
        if self.kind == "network":
            return self._network(user_rows)
        items = slice(1, None)
        scores = self.mu + self.user_bias[user_rows, None] + self.item_bias[None, items]
        if self.kind == "dot":
            scores += self.P[user_rows] @ self.Q[items].T
        return scores

    def _network(self, user_rows):
        from ._network import score_rows

        n = self.n_items
        item_rows = np.arange(1, n + 1, dtype=np.int32)
        pairs = self.pair_inputs(
            np.repeat(np.asarray(user_rows, dtype=np.int32), n), np.tile(item_rows, len(user_rows))
        )
        out = score_rows(self.model, pairs).reshape(len(user_rows), n)
        return out.astype(np.float64) + self.mu


def _top_n(scores, n):
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


def ranked_blocks(query_rows, score, n_columns, n):
    """The ``n`` best columns of every query row, scored block by block.

    ``score(rows)`` returns the float64 scores of a block of query rows
    against all ``n_columns`` columns (-inf: left out); blocks hold at most
    ``_BLOCK_SCORES`` scores.  Returns (query position, rank from 1, column,
    score), one entry per kept (query, column), queries in order and ranks
    ascending; left-out columns never appear.
    """
    block = max(1, _BLOCK_SCORES // max(n_columns, 1))
    parts = []
    for start in range(0, len(query_rows), block):
        cols, vals = _top_n(score(query_rows[start : start + block]), n)
        keep = np.isfinite(vals)  # left-out columns sort last, as -inf
        parts.append((np.nonzero(keep)[0] + start, np.cumsum(keep, axis=1)[keep], cols[keep], vals[keep]))
    return tuple(
        np.concatenate([p[k] for p in parts]).astype(np.int64 if k < 3 else np.float64)
        if parts else np.empty(0, dtype=np.int64 if k < 3 else np.float64)
        for k in range(4)
    )


@validate_params(
    {
        "estimator": "no_validation",
        "users": "no_validation",
        "n": [Interval(numbers.Integral, 1, None, closed="left")],
        "exclude_seen": ["boolean"],
        "seen": "no_validation",
    },
    prefer_skip_nested_validation=True,
)
def recommend(estimator, users=None, n=10, *, exclude_seen=True, seen=None):
    """Top-``n`` items for each user, by predicted rating (plus the selection term, if any).

    Every item known to the estimator is scored for every requested user in
    one vectorised pass (see :mod:`skmfnet._recommend` for what a score is),
    the items a user rated in training are left out (``exclude_seen``), and
    the ``n`` best remaining items are returned, best first.

    Parameters
    ----------
    estimator : fitted EmbeddingMFRegressor or BiasBaselineRegressor
        Or a fitted search (e.g. :class:`~sklearn.model_selection.GridSearchCV`)
        whose ``best_estimator_`` is one.
    users : id or array-like of ids, default=None
        Raw user ids, as in column 0 of the training ``X``.  Duplicates are
        ignored (first occurrence kept).  None means every user seen in fit.
        A user not seen in fit is scored as ``predict`` scores unknown users:
        with ``interaction="dot"`` and for the bias baseline, the items of
        highest ``mu + b_i`` (a popularity-like ranking); with
        ``interaction="concat"``, the network's output for a zero user vector.
    n : int, default=10
        Number of items per user.  Fewer are returned when fewer items are
        left after excluding the seen ones.
    exclude_seen : bool, default=True
        Leave out the items each user rated in training.
    seen : array-like of shape (n_pairs, 2), sparse matrix or None, default=None
        The training (user, item) pairs to exclude: raw id pairs (e.g. the
        training ``X``), or a boolean sparse matrix of shape
        ``(n_users_ + 1, n_items_ + 1)`` in encoder rows as built by
        :func:`seen_matrix`.  None uses the estimator's ``seen_`` attribute
        (the pairs of its training data, stored by ``fit``).  Ignored when
        ``exclude_seen`` is False.

    Returns
    -------
    recommendations : pandas.DataFrame
        Long format, one row per (user, recommended item), users in the order
        given and ranks ascending, with columns ``user`` (raw id), ``rank``
        (1 = best), ``item`` (raw id) and ``score`` (predicted rating before
        clipping, float64; for an ``EmbeddingMFRegressor`` with
        ``selection_factors > 0``, plus its selection term).  Equal scores are ranked by the order in which
        the items first appeared in the training data.

    Raises
    ------
    ValueError
        If ``exclude_seen`` is True but no seen pairs are available.

    Examples
    --------
    >>> from skmfnet import BiasBaselineRegressor
    >>> from skmfnet._recommend import recommend
    >>> X = [["alice", "matrix"], ["alice", "amelie"], ["bob", "matrix"], ["carol", "tron"]]
    >>> y = [5, 3, 4, 2]
    >>> est = BiasBaselineRegressor(reg_user=1.0, reg_item=1.0).fit(X, y)
    >>> recommend(est, ["bob", "dave"], n=2, seen=X).round(3)
       user  rank    item  score
    0   bob     1  amelie  3.071
    1   bob     2    tron  2.952
    2  dave     1  matrix  4.095
    3  dave     2  amelie  3.119
    """
    estimator = _unwrap(estimator)
    check_is_fitted(estimator, ["user_encoder_", "item_encoder_"])
    users = _user_index(estimator, users)
    user_rows = estimator.user_encoder_.transform(np.asarray(users)).astype(np.int64)
    seen_csr = _resolve_seen(estimator, seen) if exclude_seen else None

    scorer = _Scorer(estimator)

    def scores(rows):
        out = scorer(rows)
        if seen_csr is not None:
            sub = seen_csr[rows]
            r = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
            c = sub.indices.astype(np.int64) - 1  # item row -> score column
            out[r[c >= 0], c[c >= 0]] = -np.inf
        return out

    pos, rank, col, val = ranked_blocks(user_rows, scores, scorer.n_items, n)
    return pd.DataFrame(
        {
            "user": users.take(pos),
            "rank": rank,
            "item": estimator.item_encoder_.classes_.take(col),
            "score": val,
        }
    )


def _user_index(estimator, users):
    """Requested users as a duplicate-free Index, in the order given."""
    if users is None:
        return pd.Index(estimator.user_encoder_.classes_)
    return _id_index(users)


def _id_index(users):
    """Requested ids (one id or array-like) as a duplicate-free Index, in the order given."""
    if np.ndim(users) == 0:
        users = [users]
    if hasattr(users, "__array__"):
        values = np.asarray(users).reshape(-1)
    else:
        users = list(users)
        values = np.empty(len(users), dtype=object)  # keep ints and strings as they are
        values[:] = users
    return pd.Index(pd.unique(values))
