"""The evaluation protocols: data, splits, and one fit/predict measured.

* ``tutorial``: the tutorial's random 75/25 split (``train_test_split``,
  seeded), the tutorial network fitted with ``validation_data`` = the test
  part to record its learning curve; plus the learning curve of
  ``EmbeddingMFRegressor()`` defaults on u1.base with ``validation_data`` =
  u1.test.
* ``folds`` and ``peers``: the canonical MovieLens 100K folds u1..u5
  (``PredefinedSplit(bunch.test_fold)``); every model is fitted on uK.base
  and scored on uK.test, the same splits for every model of the run.  Models
  get the id columns only, except those declared with side information
  (:func:`side_information`: the user's age group, gender and occupation,
  the movie's genres and release-year group, all shipped with MovieLens).

* ``ranking``: the same folds; each model recommends 10 items to every test
  user (items rated in training left out) and is scored against the test
  items that user rated 4 or more: precision, recall, NDCG and hit rate at 10.
* ``temporal``: :class:`skmfnet.model_selection.TemporalSplit` on all the
  ratings (each user's latest 20% by timestamp as test), with the time of
  each rating as columns a model may use (:func:`temporal_split`).
* ``fold_in``: 50 users with at least 40 ratings are held out entirely
  (drawn with the repeat's seed); the defaults are fitted on everybody
  else's ratings, then each held user is folded in from the first 5, 10 or
  20 of their ratings in a random order, and scored on their ratings after
  the 20th: against the unknown-user fallback and a full refit with the
  same ratings (:func:`fold_in_scores`).

Everything here uses the package's public API only.
"""

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, root_mean_squared_error
from sklearn.model_selection import PredefinedSplit, train_test_split

from skmfnet.datasets import fetch_movielens
from skmfnet.metrics import hit_rate_at_k, ndcg_at_k, precision_at_k, recall_at_k, relevant_items

#: Ranking protocol: list length and smallest relevant test rating.
RANKING_K = 10
RANKING_THRESHOLD = 4.0


#: The id columns every model gets, and the side-information columns of :func:`side_information`.
ID_COLUMNS = ("user_id", "item_id")
USER_FEATURES = ("age_group", "gender", "occupation")
ITEM_FEATURES = ("genres", "year_group")
#: Each rating's time (Unix seconds), for the time effects (``time_column``).
TIME_COLUMN = "timestamp"
#: Age groups of MovieLens 1M's users.dat (under 18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+).
AGE_EDGES = [0, 18, 25, 35, 45, 50, 56, 200]
#: Release-year groups: decades up to 1990, then single years (most movies are from the 1990s).
YEAR_EDGES = [0, 1950, 1960, 1970, 1980, 1990, 1994, 1995, 1996, 1997, 1998, 3000]


def side_information(bunch):
    """Feature columns aligned with ``bunch.ratings``: who rated, what was rated.

    Categorical labels, as :class:`~skmfnet.EmbeddingMFRegressor`'s
    ``user_features``/``item_features`` take them: age and release year
    bucketed with ``pandas.cut`` (left-closed), gender and occupation as they
    are, genres as a list per movie (a multi-valued feature).  Movies without
    a release date get a missing year group, which the estimator ignores.
    """
    import pandas as pd

    users = bunch.users.assign(
        age_group=pd.cut(bunch.users["age"], AGE_EDGES, right=False).astype(str)
    )
    items = bunch["items"]
    year = pd.to_datetime(items["release_date"], format="%d-%b-%Y", errors="coerce").dt.year
    items = items.assign(
        genres=items["genres"].str.split("|"),
        year_group=pd.cut(year, YEAR_EDGES, right=False).astype(str).where(year.notna(), None),
    )
    frame = bunch.ratings[list(ID_COLUMNS)].merge(
        users[["user_id", *USER_FEATURES]], on="user_id", how="left"
    ).merge(items[["item_id", *ITEM_FEATURES]], on="item_id", how="left")
    return frame.drop(columns=list(ID_COLUMNS))


@dataclass
class Data:
    X: "object"  # DataFrame: raw user_id, item_id as users pass them, then the side information
    y: np.ndarray
    folds: list  # folds[k] = (train_idx, test_idx) of u{k+1}.base / u{k+1}.test
    path: str
    timestamps: np.ndarray = None  # Unix seconds of each rating


def load_movielens_100k(data_home=None):
    bunch = fetch_movielens("100k", data_home=data_home, verbose=False)
    X = bunch.ratings[list(ID_COLUMNS)].join(side_information(bunch)).assign(
        **{TIME_COLUMN: bunch.ratings["timestamp"].to_numpy()})
    y = bunch.ratings["rating"].to_numpy(dtype=np.float64)
    folds = list(PredefinedSplit(bunch.test_fold).split())
    return Data(X=X, y=y, folds=folds, path=bunch.path, timestamps=bunch.ratings["timestamp"].to_numpy())


def fold_split(data, fold):
    """(X_train, y_train, X_test, y_test) of canonical fold ``fold`` (1..5)."""
    train, test = data.folds[fold - 1]
    return data.X.iloc[train], data.y[train], data.X.iloc[test], data.y[test]


def tutorial_split(data, seed, *, test_size, subsample=None):
    """The tutorial's random split, optionally on a random share of the ratings."""
    index = np.arange(len(data.y))
    if subsample is not None:
        index, _ = train_test_split(index, train_size=subsample, random_state=seed)
    train, test = train_test_split(index, test_size=test_size, random_state=seed)
    return data.X.iloc[train], data.y[train], data.X.iloc[test], data.y[test]


def columns(split, names):
    """The (X_train, y_train, X_test, y_test) split with only the columns ``names`` of X."""
    X_train, y_train, X_test, y_test = split
    return X_train[list(names)], y_train, X_test[list(names)], y_test


def unknown_counts(X_train, X_test):
    """Test ratings whose user, item, or either was not in training."""
    users = ~X_test["user_id"].isin(X_train["user_id"]).to_numpy()
    items = ~X_test["item_id"].isin(X_train["item_id"]).to_numpy()
    return {
        "n_test": int(len(X_test)),
        "unknown_user": int(users.sum()),
        "unknown_item": int(items.sum()),
        "unknown_any": int((users | items).sum()),
    }


def _jsonable(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return repr(value)  # JSON has no NaN/inf
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)


def describe_params(estimator):
    """The estimator's parameters, JSON-ready (nested estimators as repr)."""
    return _jsonable(estimator.get_params(deep=False))


def fit_and_score(estimator, X_train, y_train, X_test, y_test, *, validation=False):
    """Fit, predict, and measure; ``validation=True`` passes the test part as
    ``validation_data`` (learning curves only: early stopping then watches it)."""
    fit_kwargs = {"validation_data": (X_test, y_test)} if validation else {}
    start = time.perf_counter()
    estimator.fit(X_train, y_train, **fit_kwargs)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    y_pred = estimator.predict(X_test)
    predict_seconds = time.perf_counter() - start
    result = {
        "rmse": float(root_mean_squared_error(y_test, y_pred)),
        "mae": float(mean_absolute_error(y_test, y_pred)),
        "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
        "n_train": int(len(y_train)),
        "n_test": int(len(y_test)),
    }
    if hasattr(estimator, "best_params_"):
        result["best_params"] = _jsonable(estimator.best_params_)
        result["best_inner_rmse"] = float(-estimator.best_score_)
    if hasattr(estimator, "history_"):
        result["history"] = {k: [float(v) for v in vals] for k, vals in estimator.history_.items()}
        result["epochs_run"] = len(next(iter(estimator.history_.values()), []))
    if hasattr(estimator, "best_estimator_") and hasattr(estimator.best_estimator_, "history_"):
        result["epochs_run"] = len(estimator.best_estimator_.history_.get("loss", []))
    if hasattr(estimator, "n_fallbacks_"):
        result["n_fallbacks"] = int(estimator.n_fallbacks_)
    return result


def summarize(per_fold):
    """Mean and sample std (ddof=1; None for a single fold) of every figure."""
    summary = {}
    keys = [key for key in ("rmse", "mae", "fit_seconds", "predict_seconds") if key in per_fold[0]]
    keys += [key for key in per_fold[0] if key.endswith(f"_at_{RANKING_K}")]
    for key in keys:
        values = np.array([fold[key] for fold in per_fold], dtype=float)
        summary[f"{key}_mean"] = float(values.mean())
        summary[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else None
    summary["n_folds"] = len(per_fold)
    return summary


def ranking_scores(estimator, X_test, y_test):
    """Top-10 ranking metrics of a fitted estimator on a test fold.

    The estimator's own ``recommend(users, n)`` (the package's estimators,
    :class:`~skmfnet.MostPopularRanker`, the peers' adapters) gives each test
    user's list, training items left out; for the package's estimators this
    is what :func:`skmfnet.metrics.make_ranking_scorer` computes.
    """
    relevant = relevant_items(X_test, y_test, threshold=RANKING_THRESHOLD)
    recommendations = estimator.recommend(list(relevant), n=RANKING_K)
    metrics = {"precision": precision_at_k, "recall": recall_at_k, "ndcg": ndcg_at_k, "hit_rate": hit_rate_at_k}
    return {f"{name}_at_{RANKING_K}": float(metric(recommendations, relevant, k=RANKING_K))
            for name, metric in metrics.items()}


def fit_and_rank(estimator, X_train, y_train, X_test, y_test):
    """Fit a ranker (no rating predictions) and measure its fit time; ranking scores are added by the caller.

    A ranker tuned inside ``fit`` (:class:`benchmarks.suite.search.HoldoutRankingSearch`)
    adds its choice: ``best_params``, its validation NDCG@10, every grid
    point's, and the seconds of the final fit alone (``fit_seconds`` counts
    the search and that fit).
    """
    start = time.perf_counter()
    estimator.fit(X_train, y_train)
    result = {"fit_seconds": time.perf_counter() - start, "n_train": int(len(y_train)), "n_test": int(len(y_test))}
    if hasattr(estimator, "grid_scores_"):
        result.update(
            best_params=_jsonable(estimator.best_params_),
            best_val_ndcg_at_10=float(estimator.best_score_),
            refit_seconds=float(estimator.refit_seconds_),
            n_holdout=int(estimator.n_holdout_),
            grid_scores=_jsonable(estimator.grid_scores_),
        )
    return result


# ------------------------------------------------------------------ fold-in
#: Ratings given to fold_in per held-out user, and the users held out per repeat.
FOLD_IN_GIVEN = (5, 10, 20)
FOLD_IN_USERS = 50
#: Held-out users are drawn among those with at least this many ratings, so
#: that every one has ratings left to score after the largest ``given``.
FOLD_IN_MIN_RATINGS = 40


def fold_in_split(data, seed):
    """Hold out ``FOLD_IN_USERS`` users entirely; a random order of each one's ratings.

    Returns (X_train, y_train, X_held, y_held, position): ``position`` is the
    rank of each held rating in its user's random order (0 = first given).
    Held ratings of items absent from the training part are dropped (no row
    to fold in against, and no other model knows them either).
    """
    X, y = data.X[list(ID_COLUMNS)], data.y
    counts = X["user_id"].value_counts()
    eligible = np.sort(counts[counts >= FOLD_IN_MIN_RATINGS].index.to_numpy())
    rng = np.random.default_rng(seed)
    held_users = rng.choice(eligible, FOLD_IN_USERS, replace=False)
    held = X["user_id"].isin(held_users).to_numpy()
    X_train, y_train = X[~held], y[~held]
    known_item = X["item_id"].isin(X_train["item_id"]).to_numpy()
    X_held, y_held = X[held & known_item], y[held & known_item]
    shuffled = rng.permutation(len(X_held))
    position = np.empty(len(X_held), dtype=np.int64)
    position[shuffled] = X_held.iloc[shuffled].groupby("user_id").cumcount().to_numpy()
    return X_train, y_train, X_held, y_held, position


def fold_in_scores(make, data, seed):
    """RMSE on each held user's ratings after its first ``max(FOLD_IN_GIVEN)``, three ways.

    * ``unknown``: the model fitted without the held users (their fallback, mu + b_i);
    * ``fold_in_<n>``: that model after ``fold_in`` of each user's first n ratings
      (on a copy, so every n starts from the same fit);
    * ``refit_<n>``: a new fit on the training part plus those n ratings per user.
    Each with its seconds (fit, fold_in or refit).
    """
    import pickle

    X_train, y_train, X_held, y_held, position = fold_in_split(data, seed)
    scored = position >= max(FOLD_IN_GIVEN)

    def rmse(estimator):
        return float(np.sqrt(np.mean((estimator.predict(X_held[scored]) - y_held[scored]) ** 2)))

    start = time.perf_counter()
    base = make(seed).fit(X_train, y_train)
    out = {"seed": seed, "n_held_users": FOLD_IN_USERS, "n_scored": int(scored.sum()),
           "unknown": {"rmse": rmse(base), "seconds": time.perf_counter() - start}}
    frozen = pickle.dumps(base)
    for n in FOLD_IN_GIVEN:
        given = position < n
        model = pickle.loads(frozen)
        start = time.perf_counter()
        model.fold_in(X_held[given], y_held[given])
        out[f"fold_in_{n}"] = {"rmse": rmse(model), "seconds": time.perf_counter() - start}
        start = time.perf_counter()
        refit = make(seed).fit(pd.concat([X_train, X_held[given]]), np.concatenate([y_train, y_held[given]]))
        out[f"refit_{n}"] = {"rmse": rmse(refit), "seconds": time.perf_counter() - start}
    return out


# ------------------------------------------------------------------ temporal
TEMPORAL_TEST_SIZE = 0.2
#: Width of a time bin (30 days): ML-100K's ratings span about seven months.
TIME_BIN_SECONDS = 30 * 24 * 3600
TIME_COLUMNS = ("time_bin", "item_time_bin")


def temporal_split(data):
    """(X_train, y_train, X_test, y_test) of ``TemporalSplit(TEMPORAL_TEST_SIZE)``.

    X gains two columns computed from each rating's own time, known when the
    rating is predicted (as timeSVD++ uses it): ``time_bin``, the 30-day bin
    since the first rating, and ``item_time_bin``, the label "item@bin", whose
    bias and factors let an item's bias drift from bin to bin (timeSVD++'s
    ``b_i + b_{i,Bin(t)}``) when given as an item feature.
    """
    from skmfnet.model_selection import TemporalSplit

    bins = (data.timestamps - data.timestamps.min()) // TIME_BIN_SECONDS
    X = data.X.assign(
        time_bin=bins.astype(str),
        item_time_bin=data.X["item_id"].astype(str) + "@" + pd.Series(bins, index=data.X.index).astype(str),
    )
    (train, test), = TemporalSplit(TEMPORAL_TEST_SIZE).split(X, groups=data.timestamps)
    return X.iloc[train], data.y[train], X.iloc[test], data.y[test]
