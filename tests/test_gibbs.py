"""optimizer="gibbs": Bayesian matrix factorization by Gibbs sampling, its samples averaged into one dot model."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from skmfnet import EmbeddingMFRegressor
from skmfnet._persistence import load_estimator, read_dot_model
from skmfnet._training._gibbs import _draw_rows, _ImplicitTable, kept_sweeps, sample_tables
from skmfnet.datasets import make_ratings

GIBBS = dict(optimizer="gibbs", n_factors=3, epochs=30, n_estimators=4, random_state=0)


@pytest.fixture(scope="module")
def ratings():
    return make_ratings(n_users=60, n_items=40, n_ratings=1500, rating_scale=(1, 5), return_X_y=True,
                        random_state=0)


def test_the_kept_sweeps_are_spread_after_the_burn_in_and_end_with_the_last():
    np.testing.assert_array_equal(kept_sweeps(100, 5), [20, 40, 60, 79, 99])
    np.testing.assert_array_equal(kept_sweeps(10, 1), [9])
    with pytest.raises(ValueError, match=r"n_estimators=9 .*epochs=10 leaves 8.*epochs >= 13"):
        kept_sweeps(10, 9)


def test_a_row_is_drawn_from_its_gaussian_posterior():
    """Mean (A^-1 (tau X^T r + Lambda m)) and covariance (A^-1) of many draws of rows with the same ratings."""
    rng = np.random.default_rng(0)
    n_rows, per_row, dims = 20000, 4, 3
    features = np.tile(rng.normal(size=(per_row, dims)), (n_rows, 1))
    residual = np.tile(rng.normal(size=per_row), n_rows)
    group = sp.csr_matrix((np.ones(n_rows * per_row), (np.repeat(np.arange(n_rows), per_row),
                                                       np.arange(n_rows * per_row))))
    tau, prior_mean, prior_precision = 2.0, np.array([0.5, -1.0, 0.0]), np.array([1.0, 3.0, 0.5])
    draws = _draw_rows(group, features, residual, tau, prior_mean, prior_precision, rng)
    A = tau * features[:per_row].T @ features[:per_row] + np.diag(prior_precision)
    covariance = np.linalg.inv(A)
    mean = covariance @ (tau * features[:per_row].T @ residual[:per_row] + prior_precision * prior_mean)
    np.testing.assert_allclose(draws.mean(axis=0), mean, atol=4 * np.sqrt(np.diag(covariance) / n_rows).max())
    np.testing.assert_allclose(np.cov(draws.T), covariance, atol=0.05 * np.abs(covariance).max())


def test_sampling_learns_a_planted_low_rank_model_better_than_the_biases():
    rng = np.random.default_rng(1)
    n_users, n_items, k = 80, 60, 2
    U, V = rng.normal(size=(n_users, k)), rng.normal(size=(n_items, k))
    pairs = np.array([(u, i) for u in range(n_users) for i in range(n_items)])
    rng.shuffle(pairs)
    y = np.einsum("ij,ij->i", U[pairs[:, 0]], V[pairs[:, 1]]) + rng.normal(0, 0.3, len(pairs))
    train, test = pairs[:2400], pairs[2400:]
    X = pd.DataFrame(train, columns=["user_id", "item_id"])
    X_test = pd.DataFrame(test, columns=["user_id", "item_id"])
    params = dict(n_factors=2, epochs=60, n_estimators=10, random_state=0, clip_predictions=False)
    est = EmbeddingMFRegressor(optimizer="gibbs", **params).fit(X, y[:2400])
    rmse = np.sqrt(np.mean((est.predict(X_test) - y[2400:]) ** 2))
    spread = np.std(y[2400:])
    assert est.engine_ == "gibbs"
    assert rmse < 0.3 * spread  # the biases alone explain next to nothing of a zero-mean product
    assert est.history_["rmse"][-1] < 0.6 and len(est.history_["rmse"]) == 60


def test_the_model_is_a_dot_model_of_n_factors_times_n_estimators(ratings):
    X, y = ratings
    est = EmbeddingMFRegressor(**GIBBS).fit(X, y)
    assert est.model_.get_layer("user_factors").embeddings.shape == (est.n_users_ + 1, 12)
    assert est._plain_dot()
    top = est.recommend(X["user_id"].iloc[:2].tolist(), n=3, exclude_seen=False)  # (users here rated every item)
    assert len(top) == 6 and top["score"].notna().all()


def test_a_weight_of_two_is_the_rating_twice():
    """In the sampler, a rating of weight 2 is the same evidence as the rating given twice."""
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(1, 21, 300), rng.integers(1, 16, 300)])
    y = rng.normal(0, 1, 300)
    weights = np.ones(300)
    weights[:40] = 2.0
    common = dict(n_users=20, n_items=15, n_factors=2, n_samples=3, sweeps=10, seed=0)
    weighted, _ = sample_tables(X, y, weights=weights, **common)
    copied, _ = sample_tables(np.vstack([X, X[:40]]), np.r_[y, y[:40]], **common)
    for name in weighted:
        np.testing.assert_allclose(weighted[name], copied[name], rtol=1e-4, atol=1e-5)


def test_the_estimators_weights_are_relative_as_on_the_other_engines(ratings):
    """fit scales sample_weight to mean 1: constant weights are no weights; others change the model."""
    X, y = ratings
    plain = EmbeddingMFRegressor(**GIBBS).fit(X, y)
    constant = EmbeddingMFRegressor(**GIBBS).fit(X, y, sample_weight=np.full(len(y), 3.0))
    np.testing.assert_allclose(constant.predict(X), plain.predict(X), rtol=1e-6)
    weights = np.where(np.arange(len(y)) < 300, 5.0, 1.0)
    assert not np.allclose(EmbeddingMFRegressor(**GIBBS).fit(X, y, sample_weight=weights).predict(X), plain.predict(X))


def test_validation_reports_the_average_of_the_samples_kept(ratings):
    X, y = ratings
    # history_ scores the network's output, unclipped, as on the other engines
    est = EmbeddingMFRegressor(**GIBBS, clip_predictions=False).fit(X.iloc[:1200], y[:1200],
                                                                   validation_data=(X.iloc[1200:], y[1200:]))
    assert len(est.history_["val_rmse"]) == 30
    final = np.sqrt(np.mean((est.predict(X.iloc[1200:]) - y[1200:]) ** 2))
    assert est.history_["val_rmse"][-1] == pytest.approx(final, rel=1e-4)
    assert est.history_["val_rmse"][0] != pytest.approx(final, rel=1e-4)


def test_round_trip_and_the_command_line_reader(ratings, tmp_path):
    X, y = ratings
    est = EmbeddingMFRegressor(**GIBBS).fit(X, y)
    path = tmp_path / "gibbs.skmf"
    est.save(path)
    back = load_estimator(path)
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    assert back.engine_ == "gibbs" and back.get_params()["optimizer"] == "gibbs"
    model = read_dot_model(path)
    assert model is not None
    np.testing.assert_allclose(model.predict(X["user_id"].iloc[:20], X["item_id"].iloc[:20]), est.predict(X.iloc[:20]),
                               rtol=1e-6)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(interaction="concat", hidden_layer_sizes=(4,)), "interaction='concat'"),
        (dict(early_stopping=True), "early_stopping=True"),
        (dict(negative_ratio=1.0), "negative_ratio=1.0"),
        (dict(loss="rmse"), "loss='rmse'"),
        (dict(epochs=4), "n_estimators=4 .*epochs=4"),
    ],
)
def test_what_gibbs_cannot_sample_is_refused_by_name(ratings, params, match):
    X, y = ratings
    est = EmbeddingMFRegressor(**{**GIBBS, **params})
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)
    assert not hasattr(est, "model_")


def test_ratings_far_off_any_scale_stop_with_a_clear_error():
    X = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [1, 2, 1, 3, 2]})
    y = np.array([1e200, -1e200, 1e200, -1e200, 1e200])
    with pytest.raises(ValueError, match="gibbs.*sweep 1"):
        sample_tables(X.to_numpy(), y, n_users=3, n_items=3, n_factors=2, n_samples=1, sweeps=5, seed=0)


def _with_features(n_users=50, n_items=30, n=1200, seed=0):
    """Ratings with a single-valued user feature and a multi-valued item feature that both move the rating."""
    rng = np.random.default_rng(seed)
    group = {u: "a" if u % 2 else "b" for u in range(n_users)}
    tags = {i: ["x", "y"][: 1 + i % 2] + (["z"] if i % 3 == 0 else []) for i in range(n_items)}
    users, items = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    y = (3.0 + np.where([group[u] == "a" for u in users], 0.8, -0.8) + np.array([0.5 * ("z" in tags[i]) for i in items])
         + rng.normal(0, 0.3, n))
    X = pd.DataFrame({"user_id": users, "item_id": items, "group": [group[u] for u in users],
                      "tags": [tags[i] for i in items]})
    return X, y


def test_side_information_is_sampled_and_serves_users_never_seen():
    X, y = _with_features()
    est = EmbeddingMFRegressor(**{**GIBBS, "epochs": 40}, user_features=["group"], item_features=["tags"],
                               clip_predictions=False).fit(X, y)
    assert est.engine_ == "gibbs"
    assert est.model_.get_layer("user_feature_0_factors").embeddings.shape[1] == 12  # 3 factors x 4 samples
    new = pd.DataFrame({"user_id": [10**6, 10**6 + 1], "item_id": [X["item_id"][0]] * 2, "group": ["a", "b"],
                        "tags": [["x"], ["x"]]})
    a, b = est.predict(new)
    assert a - b == pytest.approx(1.6, abs=0.4)  # the planted group effect, from the feature alone


def test_with_side_information_the_network_predicts_the_average_of_the_samples():
    """val_rmse (the samples' average, computed by the sampler) equals the folded network's RMSE."""
    X, y = _with_features(seed=1)
    est = EmbeddingMFRegressor(**GIBBS, user_features=["group"], item_features=["tags"], clip_predictions=False)
    est.fit(X.iloc[:1000], y[:1000], validation_data=(X.iloc[1000:], y[1000:]))
    final = np.sqrt(np.mean((est.predict(X.iloc[1000:]) - y[1000:]) ** 2))
    assert est.history_["val_rmse"][-1] == pytest.approx(final, rel=1e-4)


def test_a_sampled_model_with_side_information_saves_loads_and_folds_in(tmp_path):
    X, y = _with_features(seed=2)
    est = EmbeddingMFRegressor(**GIBBS, user_features=["group"], item_features=["tags"]).fit(X, y)
    path = tmp_path / "side.skmf"
    est.save(path)
    loaded = load_estimator(path)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    assert read_dot_model(path) is None  # side information: the estimator, not the light reader
    new = pd.DataFrame({"user_id": [10**6] * 3, "item_id": X["item_id"][:3], "group": ["a"] * 3,
                        "tags": [["x"]] * 3})
    loaded.fold_in(new, [5.0, 4.0, 5.0])
    assert np.isfinite(loaded.predict(new)).all()


def test_an_implicit_row_is_drawn_from_its_gaussian_posterior_given_the_others(monkeypatch):
    """y_j's draw, computed from the users' sums G_u and g_u, against the posterior written from the ratings.

    Two users rated item 1 (and user 2 also item 2); with the others fixed, y_1
    enters each rating (u, i) of those users as c_u y_1 . q_i, so its posterior
    is the Gaussian of a regression of the residuals on c_u q_i.
    """
    rng = np.random.default_rng(0)
    k, tau = 2, 1.5
    users = np.array([1, 1, 1, 2, 2])  # user rows of the five ratings (their items' rows: x below)
    history = sp.csr_matrix((np.ones(3), ([1, 2, 2], [1, 1, 2])), shape=(3, 5))  # N(1)={1}, N(2)={1,2}
    x = np.column_stack([np.ones(5), rng.normal(size=(5, k))])  # [1, q_i] per rating
    target = rng.normal(size=5)
    n_draws = 20000
    draws = np.empty((n_draws, k))
    table = _ImplicitTable("implicit", "user", history, 5, users[:, None], k + 1)
    table.table[2, 1:] = [0.3, -0.2]  # y_2, held fixed
    contribution = table.contribution(table.codes)
    # hyperparameters fixed: the draw below reads them from _draw_hyper, replaced for the test
    prior_mean, prior_precision = np.array([0.1, -0.4]), np.array([2.0, 0.5])
    monkeypatch.setattr("skmfnet._training._gibbs._draw_hyper", lambda table, rng: (prior_mean, prior_precision))
    for n in range(n_draws):
        table.table[1, 1:] = 0.0
        table.table[3:, 1:] = 0.0
        table.draw(x, target, contribution, np.ones(5), tau, rng)
        draws[n] = table.table[1, 1:]
        table.table[2, 1:] = [0.3, -0.2]
    c = np.where(users == 1, 1.0, 1 / np.sqrt(2))  # |N(u)|^-1/2
    design = c[:, None] * x[:, 1:]  # d(score)/d(y_1) per rating
    residual = target - (users == 2) * c * (x[:, 1:] @ np.array([0.3, -0.2]))  # less y_2's share (y_1 = 0)
    A = tau * design.T @ design + np.diag(prior_precision)
    covariance = np.linalg.inv(A)
    mean = covariance @ (tau * design.T @ residual + prior_precision * prior_mean)
    np.testing.assert_allclose(draws.mean(axis=0), mean, atol=4 * np.sqrt(np.diag(covariance) / n_draws).max())
    np.testing.assert_allclose(np.cov(draws.T), covariance, atol=0.05 * np.abs(covariance).max())


def _with_taste(n_users=60, n_items=40, n=1500, seed=0):
    """Ratings that depend on which items a user rated: users who rated item 0 rate every item 1 higher."""
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    fans = set(users[items == 0])
    y = 3.0 + np.where([u in fans for u in users], 0.7, -0.7) + rng.normal(0, 0.3, n)
    return pd.DataFrame({"user_id": users, "item_id": items}), y


@pytest.mark.parametrize("implicit", [True, "item", "both"])
def test_the_implicit_term_is_sampled_and_the_network_predicts_the_average(implicit):
    """Before: optimizer='gibbs' refused implicit=True.  Now y (and the item side's z) is sampled; val_rmse (the
    sampler's own average) equals the folded network's RMSE, and each term is really used (its table is not zero)."""
    X, y = _with_taste()
    est = EmbeddingMFRegressor(**GIBBS, implicit=implicit, clip_predictions=False)
    est.fit(X.iloc[:1200], y[:1200], validation_data=(X.iloc[1200:], y[1200:]))
    assert est.engine_ == "gibbs"
    layers = {"implicit_feedback": est.n_items_, "item_implicit_feedback": est.n_users_}
    sides = {True: ["implicit_feedback"], "item": ["item_implicit_feedback"], "both": list(layers)}[implicit]
    assert {layer.name for layer in est.model_.layers} & set(layers) == set(sides)
    for name in sides:
        table = est.model_.get_layer(name).y.numpy()
        assert table.shape == (layers[name] + 1, 12) and np.abs(table[1:]).max() > 0
        np.testing.assert_array_equal(table[0], 0)
    final = np.sqrt(np.mean((est.predict(X.iloc[1200:]) - y[1200:]) ** 2))
    assert est.history_["val_rmse"][-1] == pytest.approx(final, rel=1e-4)


def test_a_sampled_model_with_the_implicit_terms_saves_loads_and_folds_in(tmp_path):
    X, y = _with_taste(seed=3)
    est = EmbeddingMFRegressor(**GIBBS, implicit="both").fit(X, y)
    path = tmp_path / "implicit.skmf"
    est.save(path)
    loaded = load_estimator(path)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    new = pd.DataFrame({"user_id": [10**6] * 3, "item_id": X["item_id"][:3]})
    loaded.fold_in(new, [5.0, 4.0, 5.0])
    assert np.isfinite(loaded.predict(new)).all()
    top = loaded.recommend([10**6], n=3)
    assert len(top) == 3 and top["score"].notna().all()


def _reference_rows(indptr, owners, weights, gram, g, y, tau, prior_mean, prior_precision, normals):
    """The compiled loop in numpy, row by row (the form it replaced)."""
    for row in range(1, len(y)):
        users, c = owners[indptr[row]:indptr[row + 1]], weights[indptr[row]:indptr[row + 1]]
        if not len(users):
            y[row] = prior_mean + normals[row] / np.sqrt(prior_precision)
            continue
        grams = gram[users]
        summed = np.tensordot(c * c, grams, axes=1)
        precision = tau * summed + np.diag(prior_precision)
        rhs = tau * (c @ g[users] + summed @ y[row]) + prior_precision * prior_mean
        lower = np.linalg.cholesky(precision)
        new = np.linalg.solve(precision, rhs) + np.linalg.solve(lower.T, normals[row])
        g[users] -= c[:, None] * (grams @ (new - y[row]))
        y[row] = new


def test_the_compiled_implicit_loop_is_the_numpy_one():
    from skmfnet._training._gibbs_rows import draw_implicit_rows

    rng = np.random.default_rng(3)
    n_owners, n_rows, k = 12, 9, 4
    pairs = sp.random(n_rows, n_owners, density=0.4, format="csr", random_state=4, data_rvs=lambda n: rng.uniform(
        0.2, 1.0, n))
    pairs[5] = 0  # a row no owner holds: drawn from the prior
    pairs.eliminate_zeros()
    factors = rng.normal(size=(n_owners, 6, k))
    gram = np.einsum("oni,onj->oij", factors, factors)
    g, y = rng.normal(size=(n_owners, k)), rng.normal(size=(n_rows, k))
    args = (2.0, rng.normal(size=k), rng.uniform(0.5, 2, k), rng.standard_normal((n_rows, k)))
    expected_g, expected_y = g.copy(), y.copy()
    _reference_rows(pairs.indptr, pairs.indices, pairs.data, gram, expected_g, expected_y, *args)
    draw_implicit_rows(pairs.indptr.astype(np.int64), pairs.indices.astype(np.int32), pairs.data, gram, g, y, *args)
    np.testing.assert_allclose(y, expected_y, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g, expected_g, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="an owner is outside gram and g"):
        bad = pairs.indices.astype(np.int32).copy()
        bad[0] = n_owners
        draw_implicit_rows(pairs.indptr.astype(np.int64), bad, pairs.data, gram, g, y, *args)
    with pytest.raises(ValueError, match="gram must be"):
        draw_implicit_rows(pairs.indptr.astype(np.int64), pairs.indices.astype(np.int32), pairs.data,
                           np.ascontiguousarray(gram[:, :2]), g, y, *args)


def test_the_compiled_row_draws_are_the_numpy_ones():
    """draw_gaussian_rows and row_grams against the numpy form they replaced (a gathered product per row, then
    batched solves), on the same normals; a row without ratings is drawn from the prior; bad arrays are refused."""
    from skmfnet._training._gibbs_rows import draw_gaussian_rows, row_grams

    rng = np.random.default_rng(5)
    n_ratings, n_rows, k = 300, 12, 4
    rows = rng.integers(0, n_rows - 1, n_ratings)  # the last row has no rating
    group = sp.csr_matrix((rng.uniform(0.0, 2.0, n_ratings), (rows, np.arange(n_ratings))), shape=(n_rows, n_ratings))
    x, residual = rng.normal(size=(n_ratings, k)), rng.normal(size=n_ratings)
    tau, prior_mean, prior_precision = 1.7, rng.normal(size=k), rng.uniform(0.5, 2.0, k)
    normals = rng.standard_normal((n_rows, k))
    gram = np.zeros((n_rows, k, k))
    for row in range(n_rows):
        at, w = group.indices[group.indptr[row]:group.indptr[row + 1]], group.data[group.indptr[row]:group.indptr[row + 1]]
        gram[row] = (w[:, None] * x[at]).T @ x[at]
    precision = tau * gram + np.diag(prior_precision)
    rhs = tau * (group @ (x * residual[:, None])) + prior_precision * prior_mean
    lower = np.linalg.cholesky(precision)
    expected = (np.linalg.solve(precision, rhs[..., None])[..., 0]
                + np.linalg.solve(np.swapaxes(lower, 1, 2), normals[..., None])[..., 0])
    arrays = (group.indptr.astype(np.int64), group.indices.astype(np.int64), group.data)
    out = np.empty((n_rows, k))
    draw_gaussian_rows(*arrays, x, residual, tau, prior_mean, prior_precision, normals, out)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out[-1], prior_mean + normals[-1] / np.sqrt(prior_precision), rtol=1e-12)
    grams = np.empty((n_rows, k, k))
    row_grams(*arrays, x, grams)
    np.testing.assert_allclose(grams, gram, rtol=1e-12, atol=1e-12)
    bad = arrays[1].copy()
    bad[3] = n_ratings
    with pytest.raises(ValueError, match="an index is outside x"):
        draw_gaussian_rows(arrays[0], bad, arrays[2], x, residual, tau, prior_mean, prior_precision, normals, out)
    with pytest.raises(ValueError, match="indptr must not decrease"):
        row_grams(np.r_[0, arrays[0][1:][::-1]], arrays[1], arrays[2], x, grams)
    with pytest.raises(ValueError, match="residual needs one entry per row of x"):
        draw_gaussian_rows(*arrays, x, residual[:-1], tau, prior_mean, prior_precision, normals, out)
    with pytest.raises(ValueError, match="out must be"):
        row_grams(*arrays, x, grams[:, :2].copy())


def test_a_weight_of_two_is_the_rating_twice_for_the_implicit_terms_and_the_time_effects():
    """The implicit rows' sums and the time terms' regressions weigh ratings as the ids' rows do."""
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.integers(1, 21, 300), rng.integers(1, 16, 300), rng.integers(0, 1000, 300)])
    y = rng.normal(0, 1, 300)
    weights = np.ones(300)
    weights[:40] = 2.0
    pairs = sp.csr_matrix((np.ones(300), (X[:, 0], X[:, 1])), shape=(21, 16))
    pairs.data[:] = 1.0
    by_item = pairs.T.tocsr()
    user_mean = np.bincount(X[:, 0], X[:, 2] / 1000, 21) / np.maximum(np.bincount(X[:, 0], minlength=21), 1)
    common = dict(n_users=20, n_items=15, n_factors=2, n_samples=3, sweeps=10, seed=0,
                  implicit=(pairs.indptr, pairs.indices), item_implicit=(by_item.indptr, by_item.indices),
                  time=(3, user_mean))
    weighted, _ = sample_tables(X, y, weights=weights, **common)
    copied, _ = sample_tables(np.vstack([X, X[:40]]), np.r_[y, y[:40]], **common)
    assert {"implicit", "item_implicit", "item_bin_bias", "user_drift"} <= set(weighted)
    for name in weighted:
        np.testing.assert_allclose(weighted[name], copied[name], rtol=1e-4, atol=1e-5)
