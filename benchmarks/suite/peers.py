"""Other libraries behind the same ``fit(X, y)`` / ``predict(X)`` calls.

Benchmark-only adapters (the package never imports them): ``X`` holds raw
user and item ids in two columns, as for the package's estimators, ``y`` the
ratings.  Each adapter keeps its library's own behaviour for ids unseen in
training and counts how often it was needed (``n_fallbacks_``, set by the last
``predict``):

* Surprise: ``algo.predict(uid, iid)`` as Surprise users call it.  Algorithms
  with biases (SVD, SVD++, BaselineOnly, KNNBaseline's baseline part) add the
  terms of whichever side is known to the global mean; when an algorithm
  cannot estimate at all it raises ``PredictionImpossible`` internally and
  Surprise returns ``default_prediction()``, the global mean.  Predictions are
  clipped to the rating scale (here the training range).
* Cornac: ``model.rate(user_idx, item_idx)``.  For ``MF``, an unknown user
  with a known item gets ``mu + b_i``; an unknown item raises
  ``ScoreException`` internally and Cornac returns ``default_score()``, the
  global mean.  Predictions are clipped to the training range.

The ranking adapters (:class:`CornacRanker`, :class:`ImplicitALSRanker`)
answer ``recommend(users, n)`` instead of ``predict``, with one rule shared by
both (:func:`_top_n`): every item known to the model is scored for the user,
the items the user rated in training are left out, the ``n`` best follow in
order, and a user unknown to the model gets no list.
"""

import inspect

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["CornacRanker", "CornacRegressor", "ImplicitALSRanker", "SurpriseRegressor"]


def _ids_and_ratings(X, y=None):
    X = X.to_numpy() if hasattr(X, "to_numpy") else np.asarray(X, dtype=object)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X must have exactly 2 columns (user id, item id); got shape {X.shape}.")
    users, items = X[:, 0].tolist(), X[:, 1].tolist()  # Python scalars: hash like the training ids
    if y is None:
        return users, items
    return users, items, np.asarray(y, dtype=np.float64)


def _fit_cornac(name, params, seed, X, y, verbose=False, binary=False):
    """A fitted ``cornac.models.<name>`` and the ``cornac.data.Dataset`` it was fitted on.

    ``binary=True`` gives Cornac 1.0 for every training pair instead of its rating.
    """
    import cornac

    users, items, y = _ids_and_ratings(X, y)
    if binary:
        y = np.ones_like(y)
    train = cornac.data.Dataset.from_uir(list(zip(users, items, y.tolist())), seed=seed)
    model = getattr(cornac.models, name)(**dict(params or {}), seed=seed, verbose=bool(verbose))
    model.fit(train)
    return model, train


def _top_n(users, uid_map, score, seen, item_ids, n, exclude_seen):
    """The ranking adapters' ``recommend``: (DataFrame user, rank, item, score; unknown users).

    ``score(u)`` gives the scores of every known item for user index ``u``,
    ``seen`` (CSR, users x items in the model's indices) the training pairs,
    ``item_ids`` the raw id of each item index.  Ties keep the lower item index
    (a stable sort); a user missing from ``uid_map`` gets no row and is counted.
    """
    rows, unknown = [], 0
    for user in users:
        if user not in uid_map:
            unknown += 1
            continue
        u = uid_map[user]
        scores = np.array(score(u), dtype=np.float64).reshape(-1)
        if exclude_seen:
            scores[seen[u].indices] = -np.inf
        top = np.argsort(-scores, kind="stable")[:n]
        top = top[np.isfinite(scores[top])]
        rows += [(user, rank + 1, item_ids[i], scores[i]) for rank, i in enumerate(top)]
    return pd.DataFrame(rows, columns=["user", "rank", "item", "score"]), unknown


class SurpriseRegressor(RegressorMixin, BaseEstimator):
    """A Surprise algorithm as a scikit-learn regressor on raw (user, item) ids.

    Parameters
    ----------
    algorithm : str
        Name of a class of ``surprise`` (``"SVD"``, ``"SVDpp"``,
        ``"KNNBaseline"``, ``"BaselineOnly"``, ...).
    params : dict or None
        Keyword arguments of the algorithm (None: Surprise's defaults).
    random_state : int or None
        Passed to algorithms that take one.
    verbose : bool
        Passed to the algorithm (Surprise's ``BaselineOnly`` and KNN
        algorithms print by default; the adapter silences them).
    """

    def __init__(self, algorithm="SVD", params=None, random_state=None, verbose=False):
        self.algorithm = algorithm
        self.params = params
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X, y):
        import surprise

        users, items, y = _ids_and_ratings(X, y)
        cls = getattr(surprise, self.algorithm)
        kwargs = dict(self.params or {})
        accepted = inspect.signature(cls.__init__).parameters
        if "random_state" in accepted:
            kwargs.setdefault("random_state", self.random_state)
        if "verbose" in accepted:
            kwargs.setdefault("verbose", bool(self.verbose))
        frame = pd.DataFrame({"user": users, "item": items, "rating": y})
        reader = surprise.Reader(rating_scale=(float(y.min()), float(y.max())))
        trainset = surprise.Dataset.load_from_df(frame, reader).build_full_trainset()
        self.algo_ = cls(**kwargs).fit(trainset)
        return self

    def predict(self, X):
        check_is_fitted(self, "algo_")
        users, items = _ids_and_ratings(X)
        predictions = [self.algo_.predict(u, i) for u, i in zip(users, items)]
        trainset = self.algo_.trainset
        # pairs with an unknown id (Surprise's own fallback produced their estimate)
        known_users = {trainset.to_raw_uid(u) for u in trainset.all_users()}
        known_items = {trainset.to_raw_iid(i) for i in trainset.all_items()}
        self.n_fallbacks_ = int(
            sum(u not in known_users or i not in known_items for u, i in zip(users, items))
        )
        self.n_impossible_ = int(sum(bool(p.details.get("was_impossible")) for p in predictions))
        return np.array([p.est for p in predictions], dtype=np.float64)


class CornacRegressor(RegressorMixin, BaseEstimator):
    """A Cornac rating model as a scikit-learn regressor on raw (user, item) ids.

    Parameters
    ----------
    model : str
        Name of a class of ``cornac.models`` (``"MF"``, ...).
    params : dict or None
        Keyword arguments of the model (None: Cornac's defaults).
    seed : int or None
        The model's ``seed`` (and the ``cornac.data.Dataset``'s).
    verbose : bool
        The model's ``verbose`` (a tqdm bar over epochs).
    """

    def __init__(self, model="MF", params=None, seed=None, verbose=False):
        self.model = model
        self.params = params
        self.seed = seed
        self.verbose = verbose

    def fit(self, X, y):
        self.model_, _ = _fit_cornac(self.model, self.params, self.seed, X, y, self.verbose)
        return self

    def predict(self, X):
        check_is_fitted(self, "model_")
        users, items = _ids_and_ratings(X)
        uid_map, iid_map = self.model_.uid_map, self.model_.iid_map
        # -1 is never a known index: Cornac's own unknown-id handling applies
        u_idx = [uid_map.get(u, -1) for u in users]
        i_idx = [iid_map.get(i, -1) for i in items]
        self.n_fallbacks_ = int(sum(u < 0 or i < 0 for u, i in zip(u_idx, i_idx)))
        rate = self.model_.rate
        return np.array([rate(u, i) for u, i in zip(u_idx, i_idx)], dtype=np.float64).reshape(-1)


class CornacRanker(BaseEstimator):
    """A Cornac ranking model (``BPR``, ``WMF``, ``EASE``, ...) with ``recommend`` on raw ids.

    Trained on the training (user, item, rating) triples in a
    ``cornac.data.Dataset``: BPR reads only which pairs were observed, while
    WMF (its targets) and EASE (the user's row it scores with) read the
    stored values, the ratings themselves unless ``binary=True``.
    :meth:`recommend` scores every known item for a user with Cornac's
    ``model.score(user_idx)`` and leaves out the items the user rated in
    training, as the package's ``recommend`` does; a user unknown to the
    model gets no list (Cornac cannot score one), counted in
    ``n_unknown_users_``.

    Parameters
    ----------
    model : str
        Name of a class of ``cornac.models``.
    params : dict or None
        Keyword arguments of the model.
    seed : int or None
        The model's ``seed`` (and the ``cornac.data.Dataset``'s).
    binary : bool
        Give Cornac 1.0 for every training pair instead of its rating (every
        training rating a positive): with ``EASE``, Steck's model of a
        binary matrix.
    """

    def __init__(self, model="BPR", params=None, seed=None, binary=False):
        self.model = model
        self.params = params
        self.seed = seed
        self.binary = binary

    def fit(self, X, y):
        self.model_, train = _fit_cornac(self.model, self.params, self.seed, X, y, binary=self.binary)
        self.seen_ = train.csr_matrix.astype(bool).tocsr()
        self.item_ids_ = np.empty(len(train.iid_map), dtype=object)
        for raw, idx in train.iid_map.items():
            self.item_ids_[idx] = raw
        return self

    def recommend(self, users, n=10, *, exclude_seen=True):
        check_is_fitted(self, "model_")
        frame, self.n_unknown_users_ = _top_n(
            users, self.model_.uid_map, self.model_.score, self.seen_, self.item_ids_, n, exclude_seen
        )
        return frame


class ImplicitALSRanker(BaseEstimator):
    """``implicit``'s ``AlternatingLeastSquares`` (iALS) with ``recommend`` on raw ids.

    Every training (user, item) pair is a positive of confidence ``alpha``
    (the binary users x items CSR matrix that ``implicit`` 0.7's
    ``fit(user_items)`` takes, scaled by ``alpha`` inside ``implicit``),
    every other pair a zero of confidence 1 (Hu, Koren & Volinsky 2008).
    :meth:`recommend` scores every item as ``user_factors[u] @
    item_factors.T`` and leaves out the user's training items, by the same
    rule as :class:`CornacRanker` (not ``implicit``'s own ``recommend``, so
    that ties and unknown users are handled alike); a user unknown to the
    model gets no list, counted in ``n_unknown_users_``.

    Fitted on the CPU, ``num_threads`` OpenMP threads (0: one per core), with
    BLAS held to one thread during the fit as ``implicit`` asks.

    Parameters
    ----------
    factors, regularization, alpha, iterations : int, float, float, int
        ``implicit.als.AlternatingLeastSquares``'s (its defaults).
    random_state : int or None
        Seeds the initial factors.
    num_threads : int
        ``implicit``'s ``num_threads`` (0: every core).
    """

    def __init__(self, factors=100, regularization=0.01, alpha=1.0, iterations=15, random_state=None,
                 num_threads=0):
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state
        self.num_threads = num_threads

    def fit(self, X, y=None):
        import scipy.sparse as sp
        from implicit.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        users, items = _ids_and_ratings(X)
        user_index, user_ids = pd.factorize(pd.Series(users, dtype=object))
        item_index, item_ids = pd.factorize(pd.Series(items, dtype=object))
        self.item_ids_ = np.asarray(item_ids, dtype=object)
        self.uid_map_ = {raw: idx for idx, raw in enumerate(user_ids)}
        ones = np.ones(len(user_index), dtype=np.float32)
        shape = (len(user_ids), len(self.item_ids_))
        user_items = sp.csr_matrix((ones, (user_index, item_index)), shape=shape)
        user_items.sum_duplicates()
        user_items.data[:] = 1.0  # a pair rated twice is one positive
        self.seen_ = user_items.astype(bool)
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                iterations=self.iterations, random_state=self.random_state, num_threads=self.num_threads,
                use_gpu=False,
            )
            model.fit(user_items, show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors)
        self.item_factors_ = np.asarray(model.item_factors)
        return self

    def recommend(self, users, n=10, *, exclude_seen=True):
        check_is_fitted(self, "user_factors_")
        frame, self.n_unknown_users_ = _top_n(
            users, self.uid_map_, lambda u: self.item_factors_ @ self.user_factors_[u], self.seen_,
            self.item_ids_, n, exclude_seen,
        )
        return frame
