"""fold_in: rows for new users and items without refitting."""

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from skmfnet import EmbeddingMFRegressor

N_CLUSTERS, USERS_PER_CLUSTER, ITEMS_PER_CLUSTER = 3, 20, 12
PARAMS = dict(n_factors=8, epochs=40, batch_size=64, learning_rate=0.02, alpha=0.01, random_state=0)


@pytest.fixture(scope="module")
def planted():
    """Users love their cluster's items (5), dislike the others (1); users u0..u5 are held out."""
    rng = np.random.default_rng(0)
    n_items = N_CLUSTERS * ITEMS_PER_CLUSTER
    rows = []
    for u in range(N_CLUSTERS * USERS_PER_CLUSTER):
        for i in rng.choice(n_items, 24, replace=False):
            rows.append((u, i, 5.0 if u % N_CLUSTERS == i // ITEMS_PER_CLUSTER else 1.0))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])
    held = frame["user_id"] < 6
    return frame[~held], frame[held]


@pytest.fixture
def fitted(planted):
    train, _ = planted
    return EmbeddingMFRegressor(**PARAMS).fit(train[["user_id", "item_id"]], train["rating"])


def _rmse(est, frame):
    return float(np.sqrt(np.mean((est.predict(frame[["user_id", "item_id"]]) - frame["rating"]) ** 2)))


def test_folded_in_users_are_predicted_from_a_few_ratings_and_nothing_else_changes(planted, fitted):
    train, held = planted
    given, rest = held.groupby("user_id").head(8), held.drop(held.groupby("user_id").head(8).index)
    unknown_rmse = _rmse(fitted, rest)  # the fallback for unknown users: mu + b_i
    known = fitted.predict(train[["user_id", "item_id"]])
    fitted.fold_in(given[["user_id", "item_id"]], given["rating"])
    np.testing.assert_array_equal(fitted.predict(train[["user_id", "item_id"]]), known)
    assert _rmse(fitted, rest) < 0.5 * unknown_rmse
    assert fitted.n_users_ == train["user_id"].nunique() + 6
    assert fitted.user_encoder_.classes_.dtype == np.int64  # integer ids stay integers
    # the folded-in ratings count as seen: recommend leaves them out
    recs = fitted.recommend([0], n=100)
    assert not set(recs["item"]) & set(given.loc[given["user_id"] == 0, "item_id"])


def test_a_folded_in_row_minimises_the_training_objective_for_that_row(planted, fitted):
    _, held = planted
    ratings = held[held["user_id"] == 3]
    fitted.fold_in(ratings[["user_id", "item_id"]], ratings["rating"])
    layer = {name: fitted.model_.get_layer(name).get_weights()[0].astype(np.float64)
             for name in ("user_factors", "user_bias", "item_factors", "item_bias")}
    u = fitted.user_encoder_.transform([3])[0]
    items = fitted.item_encoder_.transform(ratings["item_id"])
    x = np.concatenate([layer["user_factors"][u], layer["user_bias"][u]])
    A = np.column_stack([layer["item_factors"][items], np.ones(len(items))])
    t = ratings["rating"].to_numpy() - fitted.mu_ - layer["item_bias"][items, 0]
    penalty = len(items) * np.array([PARAMS["alpha"]] * PARAMS["n_factors"] + [0.01])  # alpha_bias default
    gradient = 2 * A.T @ (A @ x - t) + 2 * penalty * x
    assert np.abs(gradient).max() < 1e-4
    # and it is a minimum: any step away raises the objective
    objective = lambda v: np.sum((A @ v - t) ** 2) + np.sum(penalty * v * v)  # noqa: E731
    rng = np.random.default_rng(0)
    assert all(objective(x + 0.01 * rng.normal(size=len(x))) > objective(x) for _ in range(20))


def test_new_items_fold_in_from_known_users(planted, fitted):
    train, _ = planted
    # item 99, new: loved by cluster 0, disliked by the others
    raters = train["user_id"].unique()[:30]
    new = pd.DataFrame({"user_id": raters, "item_id": 99})
    fitted.fold_in(new, np.where(raters % N_CLUSTERS == 0, 5.0, 1.0))
    others = pd.DataFrame({"user_id": train["user_id"].unique()[30:], "item_id": 99})
    predicted = fitted.predict(others)
    truth = np.where(others["user_id"] % N_CLUSTERS == 0, 5.0, 1.0)
    assert np.sqrt(np.mean((predicted - truth) ** 2)) < 1.0
    assert 99 in set(fitted.similar_items(0, n=100)["similar_item"])


def test_fold_in_survives_save_and_load(planted, fitted, tmp_path):
    train, held = planted
    fitted.save(tmp_path / "before.skmf")
    loaded = EmbeddingMFRegressor.load(tmp_path / "before.skmf")
    loaded.fold_in(held[["user_id", "item_id"]], held["rating"])
    fitted.fold_in(held[["user_id", "item_id"]], held["rating"])
    np.testing.assert_allclose(loaded.predict(held[["user_id", "item_id"]]),
                               fitted.predict(held[["user_id", "item_id"]]), rtol=0, atol=1e-6)
    loaded.save(tmp_path / "after.skmf")
    again = EmbeddingMFRegressor.load(tmp_path / "after.skmf")
    np.testing.assert_array_equal(again.predict(held[["user_id", "item_id"]]),
                                  loaded.predict(held[["user_id", "item_id"]]))


@pytest.mark.parametrize(
    "pairs, match",
    [
        ([(6, 0)], r"X: 1 of the 1 ratings pair a known user and a known item.*\(user 6, item 0\)"),
        ([(0, 0), (1000, 1000)], r"X: 1 of the 2 ratings pair a new user and a new item.*row 1"),
    ],
    ids=["known-known", "new-new"],
)
def test_fold_in_refuses_pairs_it_cannot_learn(fitted, pairs, match):
    n_users, model = fitted.n_users_, fitted.model_
    with pytest.raises(ValueError, match=match):
        fitted.fold_in(pd.DataFrame(pairs, columns=["user_id", "item_id"]), [4.0] * len(pairs))
    assert fitted.n_users_ == n_users and fitted.model_ is model  # left as it was


def test_fold_in_refuses_bad_input(planted, fitted):
    _, held = planted
    X = held[["user_id", "item_id"]]
    with pytest.raises(ValueError, match="NaN"):
        fitted.fold_in(X, np.where(np.arange(len(X)) == 2, np.nan, 4.0))
    with pytest.raises(ValueError, match="requires y"):
        fitted.fold_in(X, None)
    with pytest.raises(NotFittedError):
        EmbeddingMFRegressor().fold_in(X, held["rating"])
    with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\).*minimum of 1 is required"):
        fitted.fold_in(X.iloc[:0], held["rating"].iloc[:0])


@pytest.mark.parametrize(
    "params",
    [dict(implicit=True), dict(implicit="both"), dict(user_features=["segment"]),
     dict(interaction="concat", hidden_layer_sizes=(16,), optimizer="adam", learning_rate=0.01)],
    ids=["implicit", "implicit-both", "side-information", "concat"],
)
def test_other_networks_fold_in_by_gradient_steps_on_the_new_rows_only(planted, params, tmp_path):
    train, held = planted
    segment = lambda frame: frame.assign(segment=frame["user_id"] % 2)  # noqa: E731
    train, held = segment(train), segment(held)
    columns = ["user_id", "item_id"] + (["segment"] if "user_features" in params else [])
    est = EmbeddingMFRegressor(**{**PARAMS, **params}).fit(train[columns], train["rating"])
    given = held.groupby("user_id").head(12)
    rest = held.drop(given.index)
    before_known, before_new = est.predict(train[columns]), est.predict(rest[columns])
    est.fold_in(given[columns], given["rating"])
    np.testing.assert_array_equal(est.predict(train[columns]), before_known)  # nothing else moved
    rmse = lambda pred: float(np.sqrt(np.mean((pred - rest["rating"]) ** 2)))  # noqa: E731
    assert rmse(est.predict(rest[columns])) < 0.8 * rmse(before_new)
    assert est.n_users_ == train["user_id"].nunique() + 6
    est.save(tmp_path / "folded.skmf")
    loaded = EmbeddingMFRegressor.load(tmp_path / "folded.skmf")
    np.testing.assert_array_equal(loaded.predict(rest[columns]), est.predict(rest[columns]))


def test_a_fold_in_that_fails_part_way_leaves_the_estimator_as_it_was(planted, fitted, monkeypatch):
    train, held = planted
    X = train[["user_id", "item_id"]]
    before = fitted.predict(X)
    classes = fitted.user_encoder_.classes_.copy()

    def broken(*args, **kwargs):
        raise RuntimeError("interrupted")

    from skmfnet import _foldin

    monkeypatch.setattr(_foldin, "seen_matrix_from_rows", broken)  # fails after the vocabularies grew
    with pytest.raises(RuntimeError, match="interrupted"):
        fitted.fold_in(held[["user_id", "item_id"]], held["rating"])
    pd.testing.assert_index_equal(fitted.user_encoder_.classes_, classes)
    assert fitted.n_users_ == len(classes)
    np.testing.assert_array_equal(fitted.predict(X), before)
    assert fitted.seen_.shape == (len(classes) + 1, fitted.n_items_ + 1)


# ------------------------------------------------------ hardening (issue 36)
@pytest.mark.parametrize(
    "X, match",
    [
        ([["196", 0]], r"X: user id '196' is a str, but the model's user ids are integers \(int64\)"),
        ([[0.5, 0]], r"X: user id 0.5 is a float, but the model's user ids are integers"),
        ([[10, "a"]], r"X: item id 'a' is a str, but the model's item ids are integers"),
    ],
    ids=["str-into-int", "float-into-int", "str-item"],
)
def test_fold_in_refuses_ids_of_another_type(fitted, X, match):
    classes = fitted.user_encoder_.classes_
    with pytest.raises(ValueError, match=match):
        fitted.fold_in(np.array(X, dtype=object), [4.0] * len(X))
    assert fitted.user_encoder_.classes_ is classes  # left as it was
    assert fitted.user_encoder_.classes_.dtype == np.int64


def test_fold_in_takes_new_string_ids_into_a_string_vocabulary():
    X = [["ann", "a"], ["ann", "b"], ["bob", "a"], ["bob", "c"]]
    est = EmbeddingMFRegressor(n_factors=2, epochs=1, random_state=0).fit(X, [5, 3, 4, 2])
    with pytest.raises(ValueError, match=r"user id 7 is a int, but the model's user ids are strings"):
        est.fold_in(np.array([[7, "a"]], dtype=object), [4.0])
    est.fold_in([["cid", "a"]], [4.0])
    assert "cid" in est.user_encoder_.classes_


@pytest.mark.parametrize("rating", [1e300, 1e30, -1e6], ids=["1e300", "1e30", "-1e6"])
@pytest.mark.parametrize("params", [{}, dict(implicit=True)], ids=["closed-form", "gradient"])
def test_fold_in_refuses_off_scale_ratings(planted, rating, params):
    train, _ = planted
    est = EmbeddingMFRegressor(**{**PARAMS, "epochs": 2, **params}).fit(train[["user_id", "item_id"]], train["rating"])
    model = est.model_
    with pytest.raises(ValueError, match=r"y: rating .* at row 1 is outside .* rating range \[1.0, 5.0\]"):
        est.fold_in([[1000, 0], [1000, 1]], [4.0, rating])
    assert est.model_ is model and 1000 not in est.user_encoder_.classes_


def test_fold_in_without_any_penalty_takes_the_least_squares_row(planted):
    train, _ = planted
    est = EmbeddingMFRegressor(**{**PARAMS, "epochs": 2, "alpha": 0.0, "alpha_bias": 0.0})
    est.fit(train[["user_id", "item_id"]], train["rating"])
    # one rating for K + 1 = 9 unknowns: singular normal equations; the smallest row that fits it exactly
    est.fold_in([[1000, 3]], [4.0])
    assert est.predict([[1000, 3]])[0] == pytest.approx(4.0, abs=1e-4)
    row = est.user_encoder_.transform([1000])[0]
    factors = est.model_.get_layer("user_factors").get_weights()[0][row]
    assert np.isfinite(factors).all() and np.abs(factors).max() < 100
