"""BiasBaselineRegressor: references, unknown ids, string ids, errors, Surprise parity."""

import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from skmfnet import BiasBaselineRegressor
from skmfnet.datasets import make_ratings

X_OK = [[1, 10], [2, 10], [1, 11]]
Y_OK = [4.0, 3.0, 5.0]


@pytest.fixture
def ratings():
    X, y = make_ratings(n_users=30, n_items=20, n_ratings=300, return_X_y=True, random_state=0)
    return np.asarray(X), np.asarray(y, dtype=np.float64)


def als_reference(X, y, reg_user, reg_item, n_iter):
    """Surprise's ``baseline_als``, written as its plain Python loops over ids."""
    users, items = list(X[:, 0]), list(X[:, 1])
    mu = float(np.mean(y))
    bu = {u: 0.0 for u in users}
    bi = {i: 0.0 for i in items}
    for _ in range(n_iter):
        for i in bi:
            rows = [k for k in range(len(y)) if items[k] == i]
            bi[i] = sum(y[k] - mu - bu[users[k]] for k in rows) / (reg_item + len(rows))
        for u in bu:
            rows = [k for k in range(len(y)) if users[k] == u]
            bu[u] = sum(y[k] - mu - bi[items[k]] for k in rows) / (reg_user + len(rows))
    return mu, bu, bi


def ridge_solution(X, y, reg_user, reg_item):
    """The exact minimiser: ridge regression of y - mu on one-hot users and items."""
    user_ids, u = np.unique(X[:, 0], return_inverse=True)
    item_ids, i = np.unique(X[:, 1], return_inverse=True)
    design = np.zeros((len(y), len(user_ids) + len(item_ids)))
    design[np.arange(len(y)), u] = 1
    design[np.arange(len(y)), len(user_ids) + i] = 1
    penalty = np.diag([reg_user] * len(user_ids) + [reg_item] * len(item_ids))
    mu = np.mean(y)
    coef = np.linalg.solve(design.T @ design + penalty, design.T @ (y - mu))
    return mu, dict(zip(user_ids, coef[: len(user_ids)])), dict(zip(item_ids, coef[len(user_ids) :]))


def bias_of(encoder, table, ident):
    return table[encoder.transform([ident])[0]]


@pytest.mark.parametrize("reg_user, reg_item, n_iter", [(15.0, 10.0, 10), (2.0, 0.5, 3), (0.0, 0.0, 1)])
def test_matches_als_reference(ratings, reg_user, reg_item, n_iter):
    X, y = ratings
    est = BiasBaselineRegressor(reg_user=reg_user, reg_item=reg_item, n_iter=n_iter).fit(X, y)
    mu, bu, bi = als_reference(X, y, reg_user, reg_item, n_iter)
    assert est.mu_ == pytest.approx(mu)
    for u, b in bu.items():
        assert bias_of(est.user_encoder_, est.user_bias_, u) == pytest.approx(b, abs=1e-12)
    for i, b in bi.items():
        assert bias_of(est.item_encoder_, est.item_bias_, i) == pytest.approx(b, abs=1e-12)
    expected = np.clip([mu + bu[u] + bi[i] for u, i in X], y.min(), y.max())
    np.testing.assert_allclose(est.predict(X), expected, atol=1e-12)


def test_converges_to_the_closed_form_minimiser(ratings):
    X, y = ratings
    est = BiasBaselineRegressor(reg_user=3.0, reg_item=2.0, n_iter=300).fit(X, y)
    mu, bu, bi = ridge_solution(X, y, 3.0, 2.0)
    got_u = [bias_of(est.user_encoder_, est.user_bias_, u) for u in bu]
    got_i = [bias_of(est.item_encoder_, est.item_bias_, i) for i in bi]
    np.testing.assert_allclose(got_u, list(bu.values()), atol=1e-8)
    np.testing.assert_allclose(got_i, list(bi.values()), atol=1e-8)


def test_fitted_attributes(ratings):
    X, y = ratings
    frame = pd.DataFrame(X, columns=["user_id", "item_id"])
    est = BiasBaselineRegressor().fit(frame, y)
    assert est.n_users_ == len(np.unique(X[:, 0]))
    assert est.n_items_ == len(np.unique(X[:, 1]))
    assert est.user_bias_.shape == (est.n_users_ + 1,)
    assert est.item_bias_.shape == (est.n_items_ + 1,)
    assert est.user_bias_[0] == 0.0 and est.item_bias_[0] == 0.0
    assert est.rating_range_ == (float(y.min()), float(y.max()))
    assert est.n_features_in_ == 2
    assert list(est.feature_names_in_) == ["user_id", "item_id"]
    assert est.predict(frame).dtype == np.float64


def test_unknown_ids_fall_back_to_mean_plus_known_bias(ratings):
    X, y = ratings
    est = BiasBaselineRegressor(clip_predictions=False).fit(X, y)
    user, item = X[0]
    b_u = bias_of(est.user_encoder_, est.user_bias_, user)
    b_i = bias_of(est.item_encoder_, est.item_bias_, item)
    pred = est.predict([[user, item], [-1, item], [user, -1], [-1, -2]])
    np.testing.assert_allclose(pred, [est.mu_ + b_u + b_i, est.mu_ + b_i, est.mu_ + b_u, est.mu_])


def test_predictions_are_clipped_to_the_training_range():
    X = [[1, 1], [1, 2], [2, 1], [2, 2], [3, 3]]
    y = [5.0, 5.0, 5.0, 4.0, 1.0]
    clipped = BiasBaselineRegressor(reg_user=0.0, reg_item=0.0, n_iter=50).fit(X, y)
    raw = clone(clipped).set_params(clip_predictions=False).fit(X, y)
    assert raw.predict([[1, 1]])[0] > 5.0  # the unregularized biases overshoot
    assert clipped.predict([[1, 1]])[0] == 5.0
    assert np.all((clipped.predict(X) >= 1.0) & (clipped.predict(X) <= 5.0))


def test_string_and_mixed_ids():
    X = [["alice", 10], ["alice", "ten"], ["bob", 10], ["carol", "ten"]]
    y = [5.0, 1.0, 4.0, 2.0]
    est = BiasBaselineRegressor().fit(X, y)
    assert est.n_users_ == 3
    assert est.n_items_ == 2  # 10 and "ten" are different items
    assert list(est.item_encoder_.classes_) == [10, "ten"]
    # numeric and string spellings of an id are different ids: "10" is unknown
    assert est.predict([["alice", "10"]])[0] == pytest.approx(est.mu_ + est.user_bias_[1])


def test_string_ids_give_the_same_model_as_int_ids(ratings):
    X, y = ratings
    as_int = BiasBaselineRegressor().fit(X, y).predict(X)
    as_str = BiasBaselineRegressor().fit(X.astype(str), y).predict(X.astype(str))
    np.testing.assert_allclose(as_int, as_str)


def test_predictions_do_not_depend_on_row_order_or_batch(ratings):
    X, y = ratings
    est = BiasBaselineRegressor().fit(X, y)
    full = est.predict(X)
    order = np.random.RandomState(0).permutation(len(y))
    np.testing.assert_array_equal(est.predict(X[order]), full[order])
    np.testing.assert_array_equal(np.concatenate([est.predict(X[:7]), est.predict(X[7:])]), full)
    # the fit does not depend on the order of the ratings either
    refit = BiasBaselineRegressor().fit(X[order], y[order])
    np.testing.assert_allclose(refit.predict(X), full, atol=1e-12)


def test_pickle_round_trip(ratings):
    X, y = ratings
    est = BiasBaselineRegressor().fit(X, y)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X), est.predict(X))


def test_import_does_not_load_tensorflow():
    code = (
        "import sys; from skmfnet import BiasBaselineRegressor; "
        "assert not any(m.split('.')[0] in {'tensorflow', 'keras', 'scikeras'} for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "X, y, match",
    [
        pytest.param(X_OK, [4.0, np.nan, 5.0], "y contains NaN", id="nan-in-y"),
        pytest.param(X_OK, [4.0, np.inf, 5.0], "y contains infinity", id="inf-in-y"),
        pytest.param([[1, 10], [None, 10], [1, 11]], Y_OK, "missing or non-finite user ids", id="none-user"),
        pytest.param([[1, 10], [2, np.inf], [1, 11]], Y_OK, "missing or non-finite item ids", id="inf-item"),
        pytest.param([[1, 10], [2, np.nan], [1, 11]], Y_OK, "missing or non-finite item ids", id="nan-item"),
        pytest.param([[1, 10, 0], [2, 10, 0], [1, 11, 0]], Y_OK, "exactly 2 columns .* got 3", id="3-columns"),
        pytest.param(np.empty((0, 2)), [], "0 sample", id="empty"),
        pytest.param(X_OK, [4.0, 3.0], "inconsistent numbers of samples", id="length-mismatch"),
    ],
)
def test_bad_fit_input(X, y, match):
    est = BiasBaselineRegressor()
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)
    with pytest.raises(NotFittedError):
        est.predict(X_OK)


@pytest.mark.parametrize(
    "params, match",
    [
        pytest.param({"reg_user": -1.0}, "'reg_user' parameter .* must be a float in the range", id="reg_user"),
        pytest.param({"n_iter": 0}, "'n_iter' parameter .* must be an int in the range", id="n_iter"),
        pytest.param({"clip_predictions": "yes"}, "'clip_predictions' parameter", id="clip"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        BiasBaselineRegressor(**params).fit(X_OK, Y_OK)


def test_predict_before_fit():
    with pytest.raises(NotFittedError, match="not fitted"):
        BiasBaselineRegressor().predict(X_OK)


def test_predict_checks_columns():
    est = BiasBaselineRegressor().fit(X_OK, Y_OK)
    with pytest.raises(ValueError, match="exactly 2 columns .* got 3|X has 3 features"):
        est.predict([[1, 10, 0]])


def test_equals_surprise_baseline_only(ratings):
    surprise = pytest.importorskip("surprise")
    X, y = ratings
    rng = np.random.RandomState(0)
    test = rng.rand(len(y)) < 0.2
    frame = pd.DataFrame({"user": X[~test, 0], "item": X[~test, 1], "rating": y[~test]})
    reader = surprise.Reader(rating_scale=(y[~test].min(), y[~test].max()))
    trainset = surprise.Dataset.load_from_df(frame, reader).build_full_trainset()
    algo = surprise.BaselineOnly(
        bsl_options={"method": "als", "reg_u": 15, "reg_i": 10, "n_epochs": 10}, verbose=False
    ).fit(trainset)
    # unknown ids too: Surprise gives them bias 0 as well
    pairs = np.vstack([X[test], [[-1, X[0, 1]], [X[0, 0], -1], [-1, -1]]])
    expected = [algo.predict(u, i).est for u, i in pairs]
    ours = BiasBaselineRegressor().fit(X[~test], y[~test]).predict(pairs)
    np.testing.assert_allclose(ours, expected, atol=1e-10)
