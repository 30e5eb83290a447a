"""Top-N recommendation: checked against scoring every (user, item) pair with predict."""

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

from skmfnet import BiasBaselineRegressor, EmbeddingMFRegressor
from skmfnet._recommend import recommend, seen_matrix, seen_matrix_from_rows
from skmfnet.datasets import make_ratings

FAST = dict(n_factors=3, epochs=2, batch_size=64, random_state=0, clip_predictions=False)


@pytest.fixture(scope="module")
def ratings():
    X, y = make_ratings(n_users=25, n_items=18, n_ratings=250, return_X_y=True, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def fitted(ratings):
    X, y = ratings
    return {
        "dot": EmbeddingMFRegressor(**FAST).fit(X, y),
        "concat": EmbeddingMFRegressor(interaction="concat", hidden_layer_sizes=(4,), **FAST).fit(X, y),
        "bias": BiasBaselineRegressor(reg_user=2.0, reg_item=2.0, clip_predictions=False).fit(X, y),
    }


def brute_force(estimator, users, n, seen_pairs):
    """Predict every (user, known item) pair, drop the seen ones, sort: the expected top n."""
    items = np.asarray(estimator.item_encoder_.classes_)
    seen = set(map(tuple, np.asarray(seen_pairs).tolist())) if seen_pairs is not None else set()
    expected = {}
    for user in users:
        pairs = pd.DataFrame({"user_id": [user] * len(items), "item_id": items})
        scores = estimator.predict(pairs)
        ranked = [
            (item, score)
            for item, score in sorted(zip(items.tolist(), scores.tolist()), key=lambda t: -t[1])
            if (user, item) not in seen
        ]
        expected[user] = ranked[:n]
    return expected


def as_lists(recommendations):
    out = {}
    for row in recommendations.itertuples(index=False):
        out.setdefault(row.user, []).append((row.item, row.score))
    return out


@pytest.mark.parametrize("kind", ["dot", "concat", "bias"])
def test_matches_brute_force(fitted, ratings, kind):
    X, _ = ratings
    est = fitted[kind]
    users = [0, 3, 7, 12, 999]  # 999: unknown user
    got = recommend(est, users, n=5, seen=X)
    assert list(got.columns) == ["user", "rank", "item", "score"]
    assert got["score"].dtype == np.float64
    expected = brute_force(est, users, 5, X.to_numpy())
    got_lists = as_lists(got)
    assert list(got_lists) == users
    for user in users:
        assert [i for i, _ in got_lists[user]] == [i for i, _ in expected[user]], user
        np.testing.assert_allclose(
            [s for _, s in got_lists[user]], [s for _, s in expected[user]], rtol=1e-6
        )
        ranks = got.loc[got["user"] == user, "rank"].tolist()
        assert ranks == list(range(1, len(ranks) + 1))


@pytest.mark.parametrize("kind", ["dot", "concat", "bias"])
def test_unknown_users_all_get_the_same_list(fitted, kind):
    got = recommend(fitted[kind], [-1, -2], n=4, exclude_seen=False)
    first, second = (got[got["user"] == u] for u in (-1, -2))
    assert first["item"].tolist() == second["item"].tolist()
    np.testing.assert_array_equal(first["score"], second["score"])


@pytest.mark.parametrize("kind", ["dot", "bias"])
def test_unknown_users_are_ranked_by_mu_plus_item_bias(fitted, kind):
    est = fitted[kind]
    first = recommend(est, -1, n=4, exclude_seen=False)
    if kind == "bias":
        item_bias = est.item_bias_
    else:
        item_bias = est.model_.get_layer("item_bias").embeddings.numpy()[:, 0].astype(np.float64)
    rows = est.item_encoder_.transform(first["item"].to_numpy())
    np.testing.assert_allclose(first["score"], est.mu_ + item_bias[rows])
    best = np.argsort(-item_bias[1:], kind="stable")[:4] + 1
    assert rows.tolist() == best.tolist()


def test_dot_scores_are_the_factor_formula(fitted):
    est = fitted["dot"]
    P = est.model_.get_layer("user_factors").embeddings.numpy().astype(np.float64)
    Q = est.model_.get_layer("item_factors").embeddings.numpy().astype(np.float64)
    bu = est.model_.get_layer("user_bias").embeddings.numpy()[:, 0].astype(np.float64)
    bi = est.model_.get_layer("item_bias").embeddings.numpy()[:, 0].astype(np.float64)
    user = est.user_encoder_.classes_[4]
    got = recommend(est, user, n=est.n_items_, exclude_seen=False)
    u = est.user_encoder_.transform([user])[0]
    full = est.mu_ + bu[u] + bi[1:] + P[u] @ Q[1:].T
    order = np.argsort(-full, kind="stable")
    assert got["item"].tolist() == est.item_encoder_.classes_[order].tolist()
    np.testing.assert_allclose(got["score"], full[order], rtol=1e-12)


def test_seen_items_are_left_out_and_included_on_request(fitted, ratings):
    X, _ = ratings
    est = fitted["bias"]
    user = X["user_id"].value_counts().index[0]
    rated = set(X.loc[X["user_id"] == user, "item_id"])
    excluded = recommend(est, user, n=est.n_items_, seen=X)
    assert not rated & set(excluded["item"])
    assert len(excluded) == est.n_items_ - len(rated)
    everything = recommend(est, user, n=est.n_items_, exclude_seen=False)
    assert set(everything["item"]) == set(est.item_encoder_.classes_)


def test_seen_forms_agree(fitted, ratings):
    X, _ = ratings
    est = fitted["bias"]
    from_pairs = recommend(est, None, n=3, seen=X)
    from_matrix = recommend(est, None, n=3, seen=seen_matrix(est, X))
    from_list = recommend(est, None, n=3, seen=X.to_numpy().tolist())
    pd.testing.assert_frame_equal(from_pairs, from_matrix)
    pd.testing.assert_frame_equal(from_pairs, from_list)
    # every known user, in vocabulary order, except those who rated every item
    n_rated = X.groupby("user_id")["item_id"].nunique()
    expected_users = [u for u in est.user_encoder_.classes_ if n_rated[u] < est.n_items_]
    assert from_pairs["user"].unique().tolist() == expected_users


def test_seen_attribute_is_used(ratings):
    X, y = ratings
    est = BiasBaselineRegressor().fit(X, y)
    if getattr(est, "seen_", None) is None:
        est.seen_ = seen_matrix(est, X)  # until fit stores it
    pd.testing.assert_frame_equal(recommend(est, [0, 1], n=4), recommend(est, [0, 1], n=4, seen=X))


def test_missing_seen_is_an_error(ratings):
    X, y = ratings
    est = BiasBaselineRegressor().fit(X, y)
    est.seen_ = None
    with pytest.raises(ValueError, match="no seen_ attribute.*seen=X_train"):
        recommend(est, [0])
    assert len(recommend(est, [0], n=2, exclude_seen=False)) == 2


def test_fewer_items_left_than_n():
    X = [["a", "x"], ["a", "y"], ["a", "z"], ["b", "x"]]
    est = BiasBaselineRegressor().fit(X, [4, 3, 2, 5])
    got = recommend(est, ["a", "b"], n=10, seen=X)
    assert got["user"].tolist() == ["b", "b"]  # "a" rated everything
    assert got["rank"].tolist() == [1, 2]
    assert set(got["item"]) == {"y", "z"}


def test_users_argument_forms(fitted):
    est = fitted["bias"]
    one = recommend(est, 3, n=2, exclude_seen=False)
    assert one["user"].tolist() == [3, 3]
    dup = recommend(est, [3, 5, 3], n=2, exclude_seen=False)
    assert dup["user"].tolist() == [3, 3, 5, 5]
    arr = recommend(est, np.array([5, 3]), n=2, exclude_seen=False)
    assert arr["user"].tolist() == [5, 5, 3, 3]
    assert recommend(est, [], n=2, exclude_seen=False).shape == (0, 4)


def test_string_and_mixed_ids():
    X = [["alice", 1], ["alice", "b"], ["bob", 1], ["carol", 2.5]]
    est = BiasBaselineRegressor(reg_user=1.0, reg_item=1.0).fit(X, [5, 3, 4, 2])
    got = recommend(est, ["bob", "carol"], n=3, seen=X)
    assert got["user"].tolist() == ["bob", "bob", "carol", "carol"]
    items = got["item"].tolist()
    assert set(items[:2]) == {"b", 2.5} and set(items[2:]) == {1, "b"}


def test_search_is_unwrapped(ratings):
    X, y = ratings
    search = GridSearchCV(BiasBaselineRegressor(), {"reg_item": [1.0, 5.0]}, cv=2).fit(X, y)
    pd.testing.assert_frame_equal(
        recommend(search, [0, 1], n=3, seen=X),
        recommend(search.best_estimator_, [0, 1], n=3, seen=X),
    )


def test_large_n_scores_in_blocks(fitted, ratings, monkeypatch):
    import skmfnet._scoring as module

    X, _ = ratings
    est = fitted["dot"]
    whole = recommend(est, None, n=4, seen=X)
    monkeypatch.setattr(module, "_BLOCK_SCORES", 20)  # one user per block
    pd.testing.assert_frame_equal(recommend(est, None, n=4, seen=X), whole)


def test_seen_matrix_from_rows():
    seen = seen_matrix_from_rows([1, 1, 2, 2, 0], [2, 2, 1, 0, 1], 2, 3)
    assert seen.shape == (3, 4)
    assert seen.dtype == bool
    assert seen.toarray().astype(int).tolist() == [[0, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0]]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n=0), InvalidParameterError, "'n' parameter"),
        (dict(n=2.5), InvalidParameterError, "'n' parameter"),
        (dict(seen=np.zeros((3, 3))), ValueError, "shape \\(n_pairs, 2\\)"),
        (dict(seen="scipy"), ValueError, "shape"),
    ],
    ids=["n-zero", "n-float", "seen-3-columns", "seen-string"],
)
def test_bad_arguments(fitted, kwargs, error, match):
    with pytest.raises(error, match=match):
        recommend(fitted["bias"], [0], **kwargs)


def test_seen_sparse_of_wrong_shape(fitted):
    import scipy.sparse as sp

    with pytest.raises(ValueError, match="must have shape"):
        recommend(fitted["bias"], [0], seen=sp.csr_matrix((2, 2), dtype=bool))


def test_unfitted_and_unsupported_estimators(ratings):
    X, y = ratings
    with pytest.raises(NotFittedError):
        recommend(BiasBaselineRegressor(), [0], exclude_seen=False)
    with pytest.raises(NotFittedError):
        recommend(LinearRegression().fit(X, y), [0], exclude_seen=False)


# ------------------------------------------------------------------ tie-break
def stable_top_n(scores, n):
    """Reference: columns of a stable sort of -scores (ties by the lower column), finite scores only."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    values = np.take_along_axis(scores, order, axis=1)
    return [(o[np.isfinite(v)].tolist(), v[np.isfinite(v)].tolist()) for o, v in zip(order, values)]


@pytest.mark.parametrize(
    "n_values, excluded",
    [(2, 0.0), (3, 0.0), (5, 0.3), (1, 0.5)],
    ids=["two-values", "three-values", "five-values-some-excluded", "one-value-half-excluded"],
)
def test_top_n_breaks_ties_by_the_lower_column(n_values, excluded):
    from skmfnet._scoring import top_n as _top_n

    rng = np.random.RandomState(n_values)
    for trial in range(200):
        n_rows, n_columns = rng.randint(1, 6), rng.randint(1, 40)
        scores = rng.randint(n_values, size=(n_rows, n_columns)).astype(np.float64)
        scores[rng.rand(n_rows, n_columns) < excluded] = -np.inf  # seen items
        n = rng.randint(1, n_columns + 3)
        cols, vals = _top_n(scores, n)
        keep = np.isfinite(vals)
        got = [(c[k].tolist(), v[k].tolist()) for c, v, k in zip(cols, vals, keep)]
        assert got == stable_top_n(scores, n), (trial, scores, n)


def test_recommend_ties_follow_the_training_order(monkeypatch):
    import skmfnet._scoring as module

    rng = np.random.RandomState(0)
    X = pd.DataFrame({"user_id": np.repeat(np.arange(20), 10), "item_id": rng.randint(300, size=200)})
    est = BiasBaselineRegressor().fit(X, rng.randint(1, 6, size=200))
    n_items = est.n_items_
    est.item_bias_ = np.r_[0.0, rng.randint(6, size=n_items) / 4]  # heavy ties, exact in float64
    scores = est.mu_ + est.user_bias_[1:, None] + est.item_bias_[None, 1:]
    items = est.item_encoder_.classes_.to_numpy()
    for block in (1 << 21, 3 * n_items):  # one block, and blocks of 3 users
        monkeypatch.setattr(module, "_BLOCK_SCORES", block)
        for n in (3, 10, 40):
            got = recommend(est, None, n=n, exclude_seen=False)
            for row, user in enumerate(est.user_encoder_.classes_):
                expected = items[np.argsort(-scores[row], kind="stable")[:n]]
                assert got.loc[got["user"] == user, "item"].tolist() == expected.tolist(), (block, n, user)
