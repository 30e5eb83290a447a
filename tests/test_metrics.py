"""Ranking metrics against hand computations and brute force, and the ranking scorer."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import ndcg_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.utils._param_validation import InvalidParameterError

from skmfnet import BiasBaselineRegressor
from skmfnet._recommend import recommend
from skmfnet.datasets import make_ratings
from skmfnet.metrics import (
    hit_rate_at_k,
    make_ranking_scorer,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    relevant_items,
)

METRICS = {"precision": precision_at_k, "recall": recall_at_k, "ndcg": ndcg_at_k, "hit_rate": hit_rate_at_k}

# Two users, k = 3.  u1: hits at ranks 1 and 3, 4 relevant items; u2: one hit at rank 2, 1 relevant.
RECS = {"u1": ["a", "b", "c", "d"], "u2": ["x", "y", "z"]}
REL = {"u1": {"a", "c", "e", "f"}, "u2": {"y"}}
D = [1 / math.log2(r + 1) for r in range(1, 5)]  # discounts of ranks 1..4
HAND = {
    "precision": (2 / 3 + 1 / 3) / 2,
    "recall": (2 / 4 + 1 / 1) / 2,
    "hit_rate": 1.0,
    "ndcg": ((D[0] + D[2]) / (D[0] + D[1] + D[2]) + D[1] / D[0]) / 2,
}


@pytest.mark.parametrize("name", list(METRICS))
def test_hand_computed(name):
    assert METRICS[name](RECS, REL, k=3) == pytest.approx(HAND[name])


def brute_force(name, recs, rel, k):
    """The definitions, one user at a time, in plain Python."""
    values = []
    for user, relevant in rel.items():
        if not relevant:
            continue
        top = recs.get(user, [])[:k]
        hits = [item in relevant for item in top]
        if name == "precision":
            values.append(sum(hits) / k)
        elif name == "recall":
            values.append(sum(hits) / len(relevant))
        elif name == "hit_rate":
            values.append(float(any(hits)))
        else:
            dcg = sum(1 / math.log2(r + 2) for r, hit in enumerate(hits) if hit)
            idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(relevant))))
            values.append(dcg / idcg)
    return sum(values) / len(values) if values else float("nan")


def random_case(seed, n_users=30, n_items=25):
    rng = np.random.RandomState(seed)
    recs, rel = {}, {}
    for u in range(n_users):
        if rng.rand() < 0.9:
            recs[u] = rng.permutation(n_items)[: rng.randint(0, 12)].tolist()
        if rng.rand() < 0.85:
            rel[u] = set(rng.choice(n_items, size=rng.randint(0, 8), replace=False).tolist())
    return recs, rel


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 3, 10])
@pytest.mark.parametrize("name", list(METRICS))
def test_random_cases_match_brute_force(name, k, seed):
    recs, rel = random_case(seed)
    assert METRICS[name](recs, rel, k=k) == pytest.approx(brute_force(name, recs, rel, k), abs=1e-12)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_ndcg_matches_scikit_learn(k):
    """Binary-relevance NDCG@k per user equals sklearn.metrics.ndcg_score on full score vectors."""
    recs, rel = random_case(7, n_users=12, n_items=15)
    # users with a full list: sklearn ranks every item, so a shorter list would be padded
    users = [u for u in rel if rel[u] and len(recs.get(u, [])) >= k]
    assert len(users) >= 3
    per_user = []
    for u in users:
        y_true = np.zeros((1, 15))
        y_true[0, list(rel[u])] = 1
        y_score = np.zeros((1, 15))
        for rank, item in enumerate(recs[u][:k]):
            y_score[0, item] = 100 - rank  # recommended items first, in order
        for item in range(15):
            if y_score[0, item] == 0:
                y_score[0, item] = -item - 1  # distinct, below every recommended item
        # only the top k count, so the order of the others does not matter
        per_user.append(ndcg_score(y_true, y_score, k=k))
    ours = ndcg_at_k({u: recs[u] for u in users}, {u: rel[u] for u in users}, k=k)
    assert ours == pytest.approx(np.mean(per_user))


def test_users_without_relevant_items_are_skipped_and_missing_lists_score_zero():
    recs = {"a": ["x"], "b": ["y"]}
    assert precision_at_k(recs, {"a": {"x"}, "b": set()}, k=1) == 1.0  # b skipped
    assert precision_at_k(recs, {"a": {"x"}, "c": {"x"}}, k=1) == 0.5  # c has no list
    assert math.isnan(recall_at_k(recs, {}, k=1))
    assert math.isnan(ndcg_at_k(recs, {"a": set()}, k=1))


def test_precision_divides_by_k_even_for_short_lists():
    assert precision_at_k({"a": ["x"]}, {"a": {"x"}}, k=4) == 0.25


def test_dataframe_inputs_equal_dict_inputs():
    frame = pd.DataFrame(
        {"user": ["u1"] * 4 + ["u2"] * 3, "rank": [4, 2, 3, 1, 1, 2, 3], "item": ["d", "b", "c", "a", "x", "y", "z"]}
    )
    relevant = pd.DataFrame({"user": ["u1", "u1", "u1", "u1", "u2"], "item": ["a", "c", "e", "f", "y"]})
    for name, metric in METRICS.items():
        assert metric(frame, relevant, k=3) == pytest.approx(HAND[name])


def test_relevant_items():
    X = pd.DataFrame({"user_id": [1, 1, 2, 3, 3], "item_id": [10, 11, 10, 12, 13]})
    y = [5.0, 3.0, 4.0, 1.0, 4.5]
    assert relevant_items(X, y, threshold=4) == {1: {10}, 2: {10}, 3: {13}}
    assert relevant_items(X) == {1: {10, 11}, 2: {10}, 3: {12, 13}}
    with pytest.raises(ValueError, match="threshold requires"):
        relevant_items(X, threshold=4)
    with pytest.raises(ValueError, match="same length"):
        relevant_items(X, [1, 2], threshold=4)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: precision_at_k(RECS, REL, k=0), InvalidParameterError, "'k' parameter"),
        (lambda: ndcg_at_k([["a"]], REL), TypeError, "recommendations must be"),
        (lambda: recall_at_k(RECS, [("u1", "a")]), TypeError, "relevant must be"),
        (lambda: hit_rate_at_k(pd.DataFrame({"u": [1]}), REL), ValueError, "columns user and item"),
        (lambda: make_ranking_scorer("map"), InvalidParameterError, "'metric' parameter"),
        (lambda: make_ranking_scorer("ndcg", k=0), InvalidParameterError, "'k' parameter"),
    ],
    ids=["k-zero", "recs-list", "relevant-list", "recs-columns", "scorer-metric", "scorer-k"],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------ scorers
BiasWithSeen = BiasBaselineRegressor  # fit stores the training pairs as seen_


@pytest.fixture(scope="module")
def split():
    X, y = make_ratings(40, 30, 600, rating_scale=(1, 5), return_X_y=True, random_state=0)
    test = np.random.RandomState(0).rand(len(y)) < 0.25
    return X[~test], y[~test], X[test], y[test]


@pytest.mark.parametrize("name", list(METRICS))
def test_scorer_equals_recommend_then_metric(split, name):
    X_train, y_train, X_test, y_test = split
    est = BiasWithSeen().fit(X_train, y_train)
    scorer = make_ranking_scorer(name, k=5, threshold=4)
    relevant = relevant_items(X_test, y_test, threshold=4)
    recs = recommend(est, list(relevant), n=5, seen=X_train)
    expected = brute_force(name, {u: g["item"].tolist() for u, g in recs.groupby("user")}, relevant, 5)
    assert scorer(est, X_test, y_test) == pytest.approx(expected)


def test_scorer_excludes_training_items(split):
    X_train, y_train, _, _ = split
    est = BiasWithSeen().fit(X_train, y_train)
    # scored on the training pairs themselves: excluded, so nothing can be hit
    assert make_ranking_scorer("hit_rate", k=5, threshold=None)(est, X_train, y_train) == 0.0
    included = make_ranking_scorer("hit_rate", k=5, threshold=None, exclude_seen=False)
    assert included(est, X_train, y_train) > 0.5


def test_scorer_without_relevant_ratings_is_nan(split):
    X_train, y_train, X_test, y_test = split
    est = BiasWithSeen().fit(X_train, y_train)
    assert math.isnan(make_ranking_scorer("ndcg", threshold=6)(est, X_test, y_test))


def test_scorer_needs_seen_pairs(split):
    X_train, y_train, X_test, y_test = split
    est = BiasBaselineRegressor().fit(X_train, y_train)
    est.seen_ = None
    with pytest.raises(ValueError, match="seen_"):
        make_ranking_scorer("ndcg")(est, X_test, y_test)


def test_scorer_in_grid_search_and_cross_val_score(split):
    X_train, y_train, _, _ = split
    scoring = {
        "ndcg@5": make_ranking_scorer("ndcg", k=5),
        "precision@5": make_ranking_scorer("precision", k=5),
        "rmse": "neg_root_mean_squared_error",
    }
    cv = KFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(
        BiasWithSeen(), {"reg_item": [0.0, 5.0, 50.0]}, scoring=scoring, refit="ndcg@5", cv=cv
    ).fit(X_train, y_train)
    for name in ("ndcg@5", "precision@5"):
        scores = search.cv_results_[f"mean_test_{name}"]
        assert np.all((scores >= 0) & (scores <= 1)), scores
    assert search.best_params_["reg_item"] in (0.0, 5.0, 50.0)
    scores = cross_val_score(BiasWithSeen(), X_train, y_train, cv=cv, scoring=make_ranking_scorer("recall", 5))
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
