"""Bad input: clear errors naming the argument, and no half-fitted estimator."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

from skmfnet import BiasBaselineRegressor, EmbeddingMFRegressor

FAST = dict(n_factors=2, epochs=1, batch_size=16, early_stopping=False, random_state=0)
X_OK = [[1, 10], [2, 10], [1, 11]]
Y_OK = [4.0, 3.0, 5.0]


def fitted():
    return EmbeddingMFRegressor(**FAST).fit(X_OK, Y_OK)


@pytest.mark.parametrize(
    "X, y, match",
    [
        pytest.param(X_OK, [4.0, np.nan, 5.0], "y contains NaN", id="nan-in-y"),
        pytest.param(X_OK, [4.0, np.inf, 5.0], "y contains infinity", id="inf-in-y"),
        pytest.param([[1, 10], [None, 10], [1, 11]], Y_OK, "missing or non-finite user ids", id="none-user"),
        pytest.param([[1, 10], [2, np.nan], [1, 11]], Y_OK, "missing or non-finite item ids", id="nan-item"),
        pytest.param([[1, 10], [2, np.inf], [1, 11]], Y_OK, "missing or non-finite item ids", id="inf-item"),
        pytest.param([[1, 10, 0], [2, 10, 0], [1, 11, 0]], Y_OK, r"X has 3 columns but column\(s\) \[2\] are not named", id="3-columns"),
        pytest.param([[1], [2], [1]], Y_OK, "at least 2 columns .* got 1", id="1-column"),
        pytest.param(np.empty((0, 2)), [], "0 sample", id="empty"),
        pytest.param(X_OK, [4.0, 3.0], "inconsistent numbers of samples", id="length-mismatch"),
        pytest.param([1, 2, 3], Y_OK, "Expected 2D array", id="1d-X"),
        pytest.param(X_OK, None, "requires y to be passed", id="y-none"),
        pytest.param(X_OK, ["a", "b", "c"], "could not convert", id="string-y"),
    ],
)
def test_bad_fit_input(X, y, match):
    est = EmbeddingMFRegressor(**FAST)
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)
    with pytest.raises(NotFittedError):
        est.predict(X_OK)


def test_sparse_X_is_rejected():
    with pytest.raises(TypeError, match="[Ss]parse"):
        EmbeddingMFRegressor(**FAST).fit(sp.csr_matrix(np.array(X_OK)), Y_OK)


ESTIMATORS = [
    pytest.param(lambda: EmbeddingMFRegressor(**FAST), id="mf"),
    pytest.param(lambda: BiasBaselineRegressor(), id="baseline"),
]


@pytest.mark.parametrize("make", ESTIMATORS)
def test_failed_refit_on_bad_input_keeps_the_previous_model(make):
    est = make().fit(X_OK, Y_OK)
    before = est.predict(X_OK)
    fitted = {k: v for k, v in vars(est).items() if k.endswith("_")}
    with pytest.raises(ValueError, match="exactly 2 columns|not named"):
        est.fit([[1, 10, 0]], [4.0])
    with pytest.raises(ValueError, match="y contains"):
        est.fit(X_OK, [4.0, None, 5.0])
    assert {k: v for k, v in vars(est).items() if k.endswith("_")}.keys() == fitted.keys()
    assert all(getattr(est, k) is v for k, v in fitted.items())
    np.testing.assert_array_equal(est.predict(X_OK), before)


def test_failed_refit_during_training_keeps_the_previous_model(monkeypatch):
    import skmfnet._estimator as module

    est = EmbeddingMFRegressor(**FAST).fit(X_OK, Y_OK)
    before = est.predict(X_OK)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        est.fit([[5, 50], [6, 50]], [1.0, 2.0])
    assert est.n_users_ == 2
    np.testing.assert_array_equal(est.predict(X_OK), before)


@pytest.mark.parametrize("make", ESTIMATORS)
@pytest.mark.parametrize(
    "y", [[4.0, None, 5.0], np.array([4.0, None, 5.0], dtype=object)], ids=["list", "object-array"]
)
def test_none_in_y_is_refused_like_nan(make, y):
    est = make()
    with pytest.raises(ValueError, match=r"y contains missing or non-finite ratings .* rows \[1\]"):
        est.fit(X_OK, y)
    with pytest.raises(NotFittedError):
        est.predict(X_OK)


def test_predict_before_fit():
    with pytest.raises(NotFittedError, match="not fitted"):
        EmbeddingMFRegressor().predict(X_OK)


@pytest.mark.parametrize(
    "X, error, match",
    [
        pytest.param([[1, 10, 3]], ValueError, "3 features, but EmbeddingMFRegressor is expecting 2", id="3-columns"),
        pytest.param([[None, 10]], ValueError, "missing or non-finite user ids", id="none-user"),
        pytest.param(np.empty((0, 2)), ValueError, "0 sample", id="empty"),
    ],
)
def test_bad_predict_input(X, error, match):
    est = fitted()
    with pytest.raises(error, match=match):
        est.predict(X)


@pytest.mark.parametrize(
    "params, match",
    [
        pytest.param({"n_factors": 0}, "'n_factors' parameter .* Got 0", id="n_factors"),
        pytest.param({"interaction": "cosine"}, "'interaction' parameter .* Got 'cosine'", id="interaction"),
        pytest.param({"regularization": "l1"}, "'regularization' parameter", id="regularization"),
        pytest.param({"optimizer": "lbfgs"}, "'optimizer' parameter .* Got 'lbfgs'", id="optimizer"),
        pytest.param({"learning_rate": -1.0}, "'learning_rate' parameter", id="learning_rate"),
        pytest.param({"learning_rate": "fast"}, "'learning_rate' parameter .*'auto'.* Got 'fast'", id="learning_rate-str"),
        pytest.param({"alpha": "strong"}, "'alpha' parameter .*'auto'.* Got 'strong'", id="alpha-str"),
        pytest.param({"early_stopping": "yes"}, "'early_stopping' parameter .*'auto'.* Got 'yes'", id="early_stopping-str"),
        pytest.param({"validation_fraction": 1.0}, "'validation_fraction' parameter", id="validation_fraction"),
        pytest.param({"loss": "mae"}, "'loss' parameter .* Got 'mae'", id="loss"),
        pytest.param({"hidden_layer_sizes": (8,)}, r"hidden_layer_sizes must be \(\) when interaction='dot'", id="dot-hidden"),
        pytest.param(
            {"interaction": "concat", "hidden_layer_sizes": (8, 0)},
            "hidden_layer_sizes must contain positive integers; got \\(8, 0\\)",
            id="zero-width",
        ),
    ],
)
def test_bad_parameters(params, match):
    est = EmbeddingMFRegressor(**{**FAST, **params})
    with pytest.raises(ValueError, match=match):
        est.fit(X_OK, Y_OK)
    assert not hasattr(est, "model_")


def test_early_stopping_needs_two_ratings():
    with pytest.raises(ValueError, match="early_stopping=True needs at least 2 ratings"):
        EmbeddingMFRegressor(**{**FAST, "early_stopping": True}).fit([[1, 2]], [3.0])


def test_bad_validation_data():
    with pytest.raises(ValueError, match="exactly 2 columns|3 features"):
        EmbeddingMFRegressor(**FAST).fit(X_OK, Y_OK, validation_data=([[1, 2, 3]], [1.0]))
