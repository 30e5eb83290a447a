r"""Ranking metrics for top-N recommendation, and scorers for model selection.

Rating estimators are usually compared by RMSE on held-out ratings; what a
recommender shows, though, is a ranked list.  The metrics here compare the
top ``k`` items recommended to each user with the items that user found
*relevant* in held-out data (typically: rated at least ``threshold``).

For a user :math:`u` with recommended list :math:`L_u` (best first, cut at
:math:`k`) and relevant set :math:`R_u \neq \emptyset`, with
:math:`h_u = |L_u \cap R_u|` hits:

======================  ==================================================================
``precision_at_k``      :math:`h_u / k` (a list shorter than :math:`k` still divides by :math:`k`)
``recall_at_k``         :math:`h_u / |R_u|`
``hit_rate_at_k``       :math:`1` if :math:`h_u > 0` else :math:`0`
``ndcg_at_k``           :math:`\mathrm{DCG}_u / \mathrm{IDCG}_u` with binary gains:
                        :math:`\mathrm{DCG}_u = \sum_{r=1}^{k} [L_u(r) \in R_u] / \log_2(r + 1)`,
                        :math:`\mathrm{IDCG}_u = \sum_{r=1}^{\min(k, |R_u|)} 1 / \log_2(r + 1)`
======================  ==================================================================

Each metric is the mean over the users with at least one relevant item
(users with none are left out, as their score is undefined); a user with
relevant items but no recommendation scores 0.  When no user has a relevant
item the result is NaN.

:func:`make_ranking_scorer` turns a metric into a scorer for
:class:`~sklearn.model_selection.GridSearchCV` and
:func:`~sklearn.model_selection.cross_validate`: it recommends ``k`` items to
each test user with :func:`skmfnet._recommend.recommend` (leaving out the
items rated in training) and scores them against the test ratings of at
least ``threshold``.
"""

import numbers

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

__all__ = [
    "hit_rate_at_k",
    "make_ranking_scorer",
    "ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
    "relevant_items",
]


# ------------------------------------------------------------------ inputs
def relevant_items(X, y=None, *, threshold=None):
    """Relevant items of each user, from held-out ratings.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_ratings, 2)
        User id in column 0, item id in column 1.
    y : array-like of shape (n_ratings,), default=None
        Ratings.  With ``threshold``, only pairs rated at least
        ``threshold`` are relevant; None makes every pair relevant.
    threshold : float, default=None
        Smallest relevant rating.  Requires ``y``.

    Returns
    -------
    relevant : dict
        ``{user id: set of item ids}``, users in order of first appearance;
        users with no relevant item are absent.

    Examples
    --------
    >>> from skmfnet.metrics import relevant_items
    >>> relevant_items([[1, "a"], [1, "b"], [2, "a"]], [5, 2, 4], threshold=4)
    {1: {'a'}, 2: {'a'}}
    """
    users, items = _columns(X, "X")
    if threshold is not None:
        if y is None:
            raise ValueError("threshold requires the ratings y.")
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if len(y) != len(users):
            raise ValueError(f"X and y must have the same length; got {len(users)} and {len(y)}.")
        keep = y >= threshold
        users, items = users[keep], items[keep]
    relevant = {}
    for user, item in zip(users.tolist(), items.tolist()):
        relevant.setdefault(user, set()).add(item)
    return relevant


def _columns(X, name):
    if hasattr(X, "iloc"):
        if X.shape[1] < 2:
            raise ValueError(f"{name} must have 2 columns (user id, item id); got {X.shape[1]}.")
        return X.iloc[:, 0].to_numpy(), X.iloc[:, 1].to_numpy()
    if not hasattr(X, "__array__"):
        X = np.array(X, dtype=object)  # keep ints and strings as they are
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"{name} must be of shape (n, 2) (user id, item id); got shape {X.shape}.")
    return X[:, 0], X[:, 1]


def _lists(recommendations):
    """{user: [items, best first]} from a recommend() DataFrame or a mapping."""
    if isinstance(recommendations, pd.DataFrame):
        missing = {"user", "item"} - set(recommendations.columns)
        if missing:
            raise ValueError(
                "recommendations as a DataFrame needs the columns user and item (and rank), as "
                f"returned by recommend; missing {sorted(missing)}."
            )
        frame = recommendations
        if "rank" in frame.columns:
            frame = frame.sort_values("rank", kind="stable")
        lists = {}
        for user, item in zip(frame["user"].tolist(), frame["item"].tolist()):
            lists.setdefault(user, []).append(item)
        return lists
    if hasattr(recommendations, "items"):
        return {user: list(items) for user, items in recommendations.items()}
    raise TypeError(
        "recommendations must be the DataFrame returned by recommend or a dict "
        f"{{user: [items, best first]}}; got {type(recommendations).__name__}."
    )


def _relevant_sets(relevant):
    if isinstance(relevant, pd.DataFrame):
        if {"user", "item"} <= set(relevant.columns):
            relevant = relevant[["user", "item"]]
        return relevant_items(relevant)
    if hasattr(relevant, "items"):
        return {user: set(items) for user, items in relevant.items()}
    raise TypeError(
        "relevant must be a dict {user: items} (see relevant_items) or a DataFrame of "
        f"(user, item) pairs; got {type(relevant).__name__}."
    )


# ----------------------------------------------------------------- metrics
def _per_user(recommendations, relevant, k, gain):
    """Mean over users with relevant items of gain(hits, list, relevant set, k)."""
    lists = _lists(recommendations)
    scores = []
    for user, rel in _relevant_sets(relevant).items():
        if not rel:
            continue
        top = lists.get(user, [])[:k]
        hits = np.fromiter((item in rel for item in top), dtype=bool, count=len(top))
        scores.append(gain(hits, rel, k))
    return float(np.mean(scores)) if scores else float("nan")


_PARAMS = {
    "recommendations": "no_validation",
    "relevant": "no_validation",
    "k": [Interval(numbers.Integral, 1, None, closed="left")],
}


@validate_params(_PARAMS, prefer_skip_nested_validation=True)
def precision_at_k(recommendations, relevant, k=10):
    """Share of the top ``k`` recommendations that are relevant, averaged over users.

    Parameters
    ----------
    recommendations : DataFrame or dict
        The output of :func:`~skmfnet._recommend.recommend` (columns
        ``user``, ``rank``, ``item``), or ``{user: [items, best first]}``.
    relevant : dict or DataFrame
        ``{user: set of relevant items}`` (see :func:`relevant_items`), or a
        DataFrame of relevant (``user``, ``item``) pairs.
    k : int, default=10
        Length of the list scored.

    Returns
    -------
    score : float
        In [0, 1]; NaN when no user has a relevant item.

    Examples
    --------
    >>> from skmfnet.metrics import precision_at_k
    >>> precision_at_k({"u": ["a", "b", "c"]}, {"u": {"a", "c", "z"}}, k=2)
    0.5
    """
    return _per_user(recommendations, relevant, k, lambda hits, rel, k: hits.sum() / k)


@validate_params(_PARAMS, prefer_skip_nested_validation=True)
def recall_at_k(recommendations, relevant, k=10):
    """Share of each user's relevant items found in the top ``k``, averaged over users.

    Parameters
    ----------
    recommendations : DataFrame or dict
        As in :func:`precision_at_k`.
    relevant : dict or DataFrame
        As in :func:`precision_at_k`.
    k : int, default=10
        Length of the list scored.

    Returns
    -------
    score : float
        In [0, 1]; NaN when no user has a relevant item.

    Examples
    --------
    >>> from skmfnet.metrics import recall_at_k
    >>> round(recall_at_k({"u": ["a", "b", "c"]}, {"u": {"a", "c", "z"}}, k=2), 4)
    0.3333
    """
    return _per_user(recommendations, relevant, k, lambda hits, rel, k: hits.sum() / len(rel))


@validate_params(_PARAMS, prefer_skip_nested_validation=True)
def hit_rate_at_k(recommendations, relevant, k=10):
    """Share of users with at least one relevant item in their top ``k``.

    Parameters
    ----------
    recommendations : DataFrame or dict
        As in :func:`precision_at_k`.
    relevant : dict or DataFrame
        As in :func:`precision_at_k`.
    k : int, default=10
        Length of the list scored.

    Returns
    -------
    score : float
        In [0, 1]; NaN when no user has a relevant item.

    Examples
    --------
    >>> from skmfnet.metrics import hit_rate_at_k
    >>> hit_rate_at_k({"u": ["a", "b"], "v": ["a"]}, {"u": {"b"}, "v": {"b"}}, k=2)
    0.5
    """
    return _per_user(recommendations, relevant, k, lambda hits, rel, k: float(hits.any()))


def _ndcg_rows(hits, n_relevant, k):
    """NDCG@k of lists given as a boolean matrix of hits (rows: lists, best first) and their relevant counts.

    The arithmetic of :func:`ndcg_at_k`, vectorised over lists (``n_relevant`` >= 1).
    """
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    hits = np.asarray(hits, dtype=bool)[:, :k]
    dcg = (hits * discounts[: hits.shape[1]]).sum(axis=1)
    return dcg / np.cumsum(discounts)[np.minimum(n_relevant, k) - 1]


def _ndcg(hits, rel, k):
    return float(_ndcg_rows(hits[None, :], np.array([len(rel)]), k)[0])


@validate_params(_PARAMS, prefer_skip_nested_validation=True)
def ndcg_at_k(recommendations, relevant, k=10):
    r"""Normalised discounted cumulative gain of the top ``k``, binary relevance.

    A hit at rank :math:`r` gains :math:`1 / \log_2(r + 1)`; the sum is
    divided by that of an ideal list (all relevant items first).

    Parameters
    ----------
    recommendations : DataFrame or dict
        As in :func:`precision_at_k`.
    relevant : dict or DataFrame
        As in :func:`precision_at_k`.
    k : int, default=10
        Length of the list scored.

    Returns
    -------
    score : float
        In [0, 1]; NaN when no user has a relevant item.

    Examples
    --------
    >>> from skmfnet.metrics import ndcg_at_k
    >>> round(ndcg_at_k({"u": ["x", "a"]}, {"u": {"a"}}, k=2), 4)  # 1/log2(3)
    0.6309
    """
    return _per_user(recommendations, relevant, k, _ndcg)


_METRICS = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "hit_rate": hit_rate_at_k,
}


# ----------------------------------------------------------------- scorers
class _RankingScorer:
    """Callable ``scorer(estimator, X, y)`` (picklable, for n_jobs > 1)."""

    def __init__(self, metric, k, threshold, exclude_seen):
        self.metric = metric
        self.k = k
        self.threshold = threshold
        self.exclude_seen = exclude_seen

    def __call__(self, estimator, X, y):
        from ._recommend import recommend

        relevant = relevant_items(X, y, threshold=self.threshold)
        if not relevant:
            return float("nan")
        recommendations = recommend(
            estimator, list(relevant), n=self.k, exclude_seen=self.exclude_seen
        )
        metric = _METRICS[self.metric] if isinstance(self.metric, str) else self.metric
        return metric(recommendations, relevant, k=self.k)

    def __repr__(self):
        name = self.metric if isinstance(self.metric, str) else getattr(self.metric, "__name__", self.metric)
        return (
            f"make_ranking_scorer({name!r}, k={self.k}, threshold={self.threshold}, "
            f"exclude_seen={self.exclude_seen})"
        )


@validate_params(
    {
        "metric": [StrOptions(set(_METRICS)), callable],
        "k": [Interval(numbers.Integral, 1, None, closed="left")],
        "threshold": [numbers.Real, None],
        "exclude_seen": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def make_ranking_scorer(metric="ndcg", k=10, *, threshold=4.0, exclude_seen=True):
    """Make a scorer that rates an estimator by the ranking quality of its recommendations.

    The scorer is a callable ``scorer(estimator, X_test, y_test)``, as
    :class:`~sklearn.model_selection.GridSearchCV`'s ``scoring`` accepts
    (alone or in a dict of scorers).  For the users of ``X_test`` with at
    least one rating ``>= threshold``, it recommends ``k`` items with
    :func:`skmfnet._recommend.recommend` and returns the metric of those
    lists against the items rated ``>= threshold`` in ``X_test``.  Greater
    is better.

    With ``exclude_seen`` (the default, the usual protocol) the items each
    user rated in training are not recommended; they come from the fitted
    estimator's ``seen_`` attribute.

    Parameters
    ----------
    metric : {"ndcg", "precision", "recall", "hit_rate"} or callable, default="ndcg"
        :func:`ndcg_at_k`, :func:`precision_at_k`, :func:`recall_at_k`,
        :func:`hit_rate_at_k`, or a function with their signature
        ``metric(recommendations, relevant, k=k)``.
    k : int, default=10
        Length of the recommended lists.
    threshold : float or None, default=4.0
        Smallest relevant test rating (4 on a 1-5 star scale); None makes
        every test pair relevant.
    exclude_seen : bool, default=True
        Do not recommend the items each user rated in training.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float``; NaN when no test rating is
        relevant.

    Examples
    --------
    >>> from skmfnet.metrics import make_ranking_scorer
    >>> make_ranking_scorer("precision", k=5)
    make_ranking_scorer('precision', k=5, threshold=4.0, exclude_seen=True)

    In a search (``seen_`` is set by ``fit``)::

        GridSearchCV(EmbeddingMFRegressor(), {"n_factors": [16, 32]},
                     scoring={"ndcg@10": make_ranking_scorer("ndcg", 10),
                              "rmse": "neg_root_mean_squared_error"},
                     refit="ndcg@10")
    """
    return _RankingScorer(metric, k, threshold, exclude_seen)
