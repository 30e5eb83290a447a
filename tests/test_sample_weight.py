"""sample_weight: weighted ratings in every estimator that predicts ratings, routed like scikit-learn's."""

import numpy as np
import pytest
import sklearn
from sklearn.model_selection import GridSearchCV, KFold, cross_validate

from skmfnet import BiasBaselineRegressor, EmbeddingMFRegressor
from skmfnet.datasets import make_ratings

#: One full batch per epoch: the step sums over every rating, so a rating of
#: weight k and k copies of it give the same gradient, hence the same model.
FULL_BATCH = dict(batch_size=100_000, epochs=5, learning_rate=0.05, n_factors=4, random_state=0)


@pytest.fixture(scope="module")
def ratings():
    frame = make_ratings(30, 20, 300, rating_scale=(1, 5), random_state=0)
    return frame[["user_id", "item_id"]], frame["rating"].to_numpy()


def _duplicated(X, y, weights):
    """Each rating repeated ``weight`` times (integer weights)."""
    index = np.repeat(np.arange(len(y)), weights.astype(int))
    return X.iloc[index], y[index]


def _weights(n, seed=0):
    return np.random.default_rng(seed).integers(0, 4, n).astype(float)  # 0, 1, 2 or 3 copies


def test_the_bias_baseline_with_integer_weights_is_the_baseline_of_the_repeated_ratings(ratings):
    X, y = ratings
    w = _weights(len(y))
    weighted = BiasBaselineRegressor().fit(X, y, sample_weight=w)
    repeated = BiasBaselineRegressor().fit(*_duplicated(X, y, w))
    assert weighted.mu_ == pytest.approx(repeated.mu_, abs=1e-12)
    np.testing.assert_array_equal(weighted.user_encoder_.classes_, repeated.user_encoder_.classes_)
    np.testing.assert_allclose(weighted.predict(X), repeated.predict(X), rtol=0, atol=1e-12)


@pytest.mark.parametrize("optimizer", ["lazy_adam", "sgd"])
def test_the_network_with_integer_weights_is_the_network_of_the_repeated_ratings(ratings, optimizer):
    X, y = ratings
    w = _weights(len(y))
    weighted = EmbeddingMFRegressor(**FULL_BATCH, optimizer=optimizer).fit(X, y, sample_weight=w)
    repeated = EmbeddingMFRegressor(**FULL_BATCH, optimizer=optimizer).fit(*_duplicated(X, y, w))
    assert weighted.mu_ == pytest.approx(repeated.mu_, abs=1e-12)
    np.testing.assert_allclose(weighted.predict(X), repeated.predict(X), rtol=0, atol=1e-5)
    # and the weights mattered: unweighted is another model
    plain = EmbeddingMFRegressor(**FULL_BATCH, optimizer=optimizer).fit(X, y)
    assert np.abs(plain.predict(X) - weighted.predict(X)).max() > 1e-3


def test_weights_are_relative_and_zero_drops_a_rating(ratings):
    X, y = ratings
    w = _weights(len(y), seed=1) + 1.0
    params = dict(n_factors=4, epochs=3, batch_size=64, random_state=0)  # mini-batches
    a = EmbeddingMFRegressor(**params).fit(X, y, sample_weight=w).predict(X)
    b = EmbeddingMFRegressor(**params).fit(X, y, sample_weight=7.5 * w).predict(X)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    zero = np.ones(len(y))
    zero[::5] = 0
    kept = zero > 0
    for make in (lambda: EmbeddingMFRegressor(**params), BiasBaselineRegressor):
        dropped = make().fit(X[kept], y[kept])
        weighted = make().fit(X, y, sample_weight=zero)
        np.testing.assert_allclose(weighted.predict(X), dropped.predict(X), rtol=0, atol=1e-6)
        assert weighted.seen_.nnz == dropped.seen_.nnz


def test_huge_finite_weights_give_the_model_of_their_relative_sizes(ratings):
    """Weights of 1e305 (finite, positive) overflowed the weighted mean: mu_ and every prediction NaN."""
    X, y = ratings
    w = _weights(len(y), seed=2) + 1.0
    params = dict(n_factors=4, epochs=3, batch_size=64, random_state=0)
    small = EmbeddingMFRegressor(**params).fit(X, y, sample_weight=w)
    huge = EmbeddingMFRegressor(**params).fit(X, y, sample_weight=1e305 * w)
    assert huge.mu_ == pytest.approx(small.mu_, rel=1e-12)
    np.testing.assert_allclose(huge.predict(X), small.predict(X), rtol=0, atol=1e-5)


def test_the_bias_baseline_refuses_weights_whose_sum_overflows(ratings):
    """Its weights count against reg_user and reg_item, so they cannot be rescaled: a clear error, no NaN model."""
    X, y = ratings
    est = BiasBaselineRegressor()
    with pytest.raises(ValueError, match=r"sample_weight: the weights sum to more than a float64 holds.*divide them"):
        est.fit(X, y, sample_weight=np.full(len(y), 1e307))
    assert not hasattr(est, "mu_")


@pytest.mark.parametrize("make", [BiasBaselineRegressor, lambda: EmbeddingMFRegressor(epochs=1)],
                         ids=["bias", "mf"])
@pytest.mark.parametrize(
    "weights, match",
    [
        (lambda n: -np.ones(n), "Negative values in data passed to `sample_weight`"),
        (lambda n: np.where(np.arange(n) == 3, np.nan, 1.0), "sample_weight contains NaN"),
        (lambda n: np.ones(n - 1), r"sample_weight.shape == \(\d+,\), expected"),
        (lambda n: np.zeros(n), "Sample weights must contain at least one non-zero number"),
    ],
    ids=["negative", "nan", "length", "all-zero"],
)
def test_bad_weights_are_refused_naming_sample_weight(ratings, make, weights, match):
    X, y = ratings
    est = make()
    with pytest.raises(ValueError, match=match):
        est.fit(X, y, sample_weight=weights(len(y)))
    assert not hasattr(est, "mu_")  # nothing half-fitted


def test_weighted_epochs_repeat_each_rating_as_often_as_its_weight():
    from skmfnet._training._keras_fit import training_batches

    X, y = np.zeros((4, 2), dtype=np.int32), np.arange(4, dtype=np.float32)
    # integer weights (mean 1): every epoch holds each rating exactly that many times
    for batch_y in (b for _, b in training_batches(X, y, batch_size=4, epochs=5, seed=0,
                                                   weights=np.array([0.0, 1.0, 2.0, 1.0]))):
        assert sorted(batch_y.numpy().astype(int)) == [1, 2, 2, 3]
    # fractional weights: stochastic rounding, right on average
    weights = np.array([0.5, 1.5, 0.25, 1.75])
    drawn = np.concatenate([b.numpy() for _, b in training_batches(X, y, batch_size=4, epochs=2000, seed=0,
                                                                    weights=weights)]).astype(int)
    np.testing.assert_allclose(np.bincount(drawn, minlength=4) / len(drawn), weights / 4, atol=0.02)


@pytest.mark.parametrize(
    "params",
    [dict(interaction="concat", hidden_layer_sizes=(16,)), dict(implicit=True), dict(optimizer="adam")],
    ids=["concat", "implicit", "dense-adam"],
)
def test_the_paths_through_keras_fit_honour_the_weights(ratings, params):
    # ratings of one half of the users count ten times: the weighted model fits
    # them more closely, relative to the other half, than the unweighted one
    X, y = ratings
    heavy = (X["user_id"].to_numpy() % 2) == 0
    common = dict(n_factors=8, epochs=30, batch_size=32, learning_rate=0.01, random_state=0, **params)

    def gap(est):
        error = (est.predict(X) - y) ** 2
        return np.sqrt(error[heavy].mean()) - np.sqrt(error[~heavy].mean())

    weighted = EmbeddingMFRegressor(**common).fit(X, y, sample_weight=np.where(heavy, 10.0, 1.0))
    plain = EmbeddingMFRegressor(**common).fit(X, y)
    assert gap(weighted) < gap(plain) - 0.05


def test_searches_and_cross_validation_route_sample_weight(ratings):
    X, y = ratings
    w = _weights(len(y), seed=2) + 1.0
    cv = KFold(3, shuffle=True, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        est = BiasBaselineRegressor().set_fit_request(sample_weight=True).set_score_request(sample_weight=False)
        scores = cross_validate(est, X, y, cv=cv, params={"sample_weight": w}, return_estimator=True)
        for (train, _), fitted in zip(cv.split(X), scores["estimator"]):
            manual = BiasBaselineRegressor().fit(X.iloc[train], y[train], sample_weight=w[train])
            np.testing.assert_array_equal(fitted.user_bias_, manual.user_bias_)
        mf = EmbeddingMFRegressor(n_factors=2, epochs=2, random_state=0)
        mf.set_fit_request(sample_weight=True).set_score_request(sample_weight=False)
        search = GridSearchCV(mf, {"n_factors": [2, 3]}, cv=cv).fit(X, y, sample_weight=w)
        refit = EmbeddingMFRegressor(n_factors=search.best_params_["n_factors"], epochs=2, random_state=0)
        np.testing.assert_allclose(search.predict(X), refit.fit(X, y, sample_weight=w).predict(X), rtol=0, atol=1e-6)
        assert np.abs(search.predict(X) - refit.fit(X, y).predict(X)).max() > 1e-4
