"""Tuning a ranker on its training ratings only: a holdout of each user's ratings.

:class:`HoldoutRankingSearch` is how the ranking protocol tunes the peers
that have settings a ranking user would tune (EASE's lambda, iALS's factors,
regularization and confidence): inside ``fit``, so each training fold
(``uK.base``) picks its own settings and never sees ``uK.test``.  The rule:

1. :func:`holdout_split`: a random ``test_size`` share of each user's
   training ratings (users with at least ``min_ratings``; the others stay
   whole) is held out, as ``uK.test`` is a random share of the ratings;
2. every point of ``param_grid`` is fitted on the rest and scored as the
   ranking protocol scores a test fold
   (:func:`benchmarks.suite.protocols.ranking_scores`: top-10 lists with the
   fit part's items left out, relevant = held-out ratings of 4 or more,
   ``skmfnet.metrics.ndcg_at_k``);
3. the best validation NDCG@10 wins (the first in grid order on a tie), and
   is refitted on every training rating.
"""

import time

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import ParameterGrid
from sklearn.utils.validation import check_is_fitted

__all__ = ["HoldoutRankingSearch", "holdout_split"]


def holdout_split(X, test_size=0.2, min_ratings=5, random_state=None):
    """Boolean mask of the held-out ratings: a random share of each user's.

    A user with ``n >= min_ratings`` ratings in ``X`` (user id in column 0)
    has ``max(1, round(test_size * n))`` of them held out, drawn at random;
    a user with fewer has none held out.
    """
    users = X.iloc[:, 0] if hasattr(X, "iloc") else pd.Series(np.asarray(X, dtype=object)[:, 0])
    codes, _ = pd.factorize(users)
    counts = np.bincount(codes)
    n_held = np.where(counts >= min_ratings, np.maximum(1, np.rint(test_size * counts)), 0)
    order = np.random.default_rng(random_state).permutation(len(codes))
    position = np.empty(len(codes), dtype=np.int64)
    position[order] = pd.Series(codes[order]).groupby(codes[order]).cumcount().to_numpy()
    return position < n_held[codes]


class HoldoutRankingSearch(BaseEstimator):
    """Grid search of a ranker on a holdout of its training ratings, refitted on all of them.

    Parameters
    ----------
    estimator : ranker
        ``fit(X, y)`` and ``recommend(users, n)`` on raw ids (the adapters of
        ``benchmarks/suite/peers.py``).
    param_grid : dict
        Parameter name -> list of values (``sklearn.model_selection.ParameterGrid``).
    test_size : float
        Share of each user's ratings held out.
    min_ratings : int
        Users with fewer training ratings have none held out.
    random_state : int or None
        Seeds the holdout.

    Attributes
    ----------
    best_params_ : dict
        The chosen grid point.
    best_score_ : float
        Its validation NDCG@10.
    grid_scores_ : list of dict
        Every grid point with its ``val_ndcg_at_10`` and ``fit_seconds``, in grid order.
    best_estimator_ : ranker
        ``estimator`` with ``best_params_``, fitted on every training rating.
    refit_seconds_ : float
        The seconds of that last fit alone.
    n_holdout_ : int
        Ratings held out.
    """

    def __init__(self, estimator, param_grid, *, test_size=0.2, min_ratings=5, random_state=None):
        self.estimator = estimator
        self.param_grid = param_grid
        self.test_size = test_size
        self.min_ratings = min_ratings
        self.random_state = random_state

    def fit(self, X, y):
        from benchmarks.suite.protocols import RANKING_K, ranking_scores

        y = np.asarray(y, dtype=np.float64)
        held = holdout_split(X, self.test_size, self.min_ratings, self.random_state)
        X_fit, y_fit, X_val, y_val = X[~held], y[~held], X[held], y[held]
        self.grid_scores_ = []
        for params in ParameterGrid(self.param_grid):
            start = time.perf_counter()
            candidate = clone(self.estimator).set_params(**params).fit(X_fit, y_fit)
            seconds = time.perf_counter() - start
            ndcg = ranking_scores(candidate, X_val, y_val)[f"ndcg_at_{RANKING_K}"]
            self.grid_scores_.append({**params, f"val_ndcg_at_{RANKING_K}": ndcg, "fit_seconds": seconds})
        scores = np.array([row[f"val_ndcg_at_{RANKING_K}"] for row in self.grid_scores_], dtype=np.float64)
        best = int(np.argmax(np.where(np.isnan(scores), -np.inf, scores)))  # the first of equals
        self.best_params_ = dict(ParameterGrid(self.param_grid)[best])
        self.best_score_ = float(scores[best])
        self.n_holdout_ = int(held.sum())
        start = time.perf_counter()
        self.best_estimator_ = clone(self.estimator).set_params(**self.best_params_).fit(X, y)
        self.refit_seconds_ = time.perf_counter() - start
        return self

    def recommend(self, users, n=10, *, exclude_seen=True):
        check_is_fitted(self, "best_estimator_")
        frame = self.best_estimator_.recommend(users, n=n, exclude_seen=exclude_seen)
        self.n_unknown_users_ = getattr(self.best_estimator_, "n_unknown_users_", 0)
        return frame
