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

from ._scoring import dot_scores, id_index, leave_out_seen, ranked_blocks, ranking_tables

__all__ = ["recommend", "seen_matrix", "seen_matrix_from_rows"]

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
        table = getattr(estimator, "item_item_", None)
        self.item_item = None
        if table is not None:  # the item-item term (skmfnet._item_item): B over some item rows, the weight of the rest
            self.item_item = (estimator.seen_, estimator.item_item_items_, table, estimator.item_item_weight_)
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
            from ._network import dot_tables

            model = estimator.model_
            tables = dot_tables(model)
            self.user_bias, self.item_bias = tables["user_bias"], tables["item_bias"]
            if estimator._plain_dot():
                self.kind = "dot"
                self.P, self.Q, self.user_bias, self.item_bias = ranking_tables(
                    tables, getattr(estimator, "user_selection_", None), getattr(estimator, "item_selection_", None)
                )
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
            out = self._network(user_rows)
        elif self.kind == "dot":
            out = dot_scores(self.mu, self.user_bias, self.item_bias, user_rows, self.P, self.Q)
        else:
            out = dot_scores(self.mu, self.user_bias, self.item_bias, user_rows)
        if self.item_item is None:
            return out
        from ._item_item import blend

        seen, items, table, weight = self.item_item
        return blend(out, seen[user_rows], items, table, weight, self.n_items, n_threads=1)

    def _network(self, user_rows):
        from ._network import score_rows

        n = self.n_items
        item_rows = np.arange(1, n + 1, dtype=np.int32)
        pairs = self.pair_inputs(
            np.repeat(np.asarray(user_rows, dtype=np.int32), n), np.tile(item_rows, len(user_rows))
        )
        out = score_rows(self.model, pairs).reshape(len(user_rows), n)
        return out.astype(np.float64) + self.mu


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
        return out if seen_csr is None else leave_out_seen(out, rows, seen_csr.indptr, seen_csr.indices)

    pos, rank, col, val = ranked_blocks(user_rows, scores, scorer.n_items, n, threaded=scorer.kind != "network")
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
    return id_index(users)
