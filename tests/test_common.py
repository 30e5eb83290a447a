"""scikit-learn's estimator checks on every estimator of the package.

Most of scikit-learn's checks fit on generic float matrices of 3 to 10
columns.  A rating estimator takes exactly two columns (user id, item id), so
those checks fail at input validation with a clear error; each is listed below
with its reason.  What they would test on two-column data (pickling, NaN/inf
rejection, order and subset invariance of predictions, dtype handling, ...) is
tested directly in the other test files.

An expected failure must fail, and for its stated reason: each one is run
under ``pytest.raises`` matching the error it is expected to end with, so a
check that starts passing, or fails for another reason, fails this test (a
plain ``xfail`` would hide both).
"""

import re

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmfnet import BiasBaselineRegressor, EmbeddingMFRegressor

FAST = dict(n_factors=2, epochs=2, batch_size=64, early_stopping=False, random_state=0)

_TWO_COLUMNS = (
    "feeds X with {} columns; X must be exactly 2 columns (user id, item id), "
    "and the error says so"
)
TWO_COLUMN_CHECKS = {
    "check_fit_score_takes_y": "3",
    "check_dont_overwrite_parameters": "3",
    "check_n_features_in_after_fitting": "4",
    "check_positive_only_tag_during_fit": "4",
    "check_estimators_dtypes": "5",
    "check_dtype_object": "10",
    "check_pipeline_consistency": "3",
    "check_estimators_nan_inf": "3 (NaN/inf ids are rejected: see test_errors.py, test_baselines.py)",
    "check_estimators_pickle": "3 (pickling: test_sklearn_integration.py, test_baselines.py)",
    "check_f_contiguous_array_estimator": "3",
    "check_regressors_train": "10",
    "check_regressor_data_not_an_array": "10",
    "check_regressors_no_decision_function": "4",
    "check_supervised_y_2d": "3",
    "check_regressors_int": "10",
    "check_methods_sample_order_invariance": "3 (tested in test_estimator.py)",
    "check_methods_subset_invariance": "3 (tested in test_estimator.py)",
    "check_fit2d_1sample": "10",
    "check_fit2d_1feature": "1",
    "check_dict_unchanged": "3",
    "check_fit2d_predict1d": "3",
    "check_sample_weights_list": "3 (sample weights: test_sample_weight.py)",
    "check_sample_weight_equivalence_on_dense_data": (
        "30 (integer weights equal repeated ratings: test_sample_weight.py)"
    ),
}
SCIKERAS_CHECKS = {
    "check_mixin_order": (
        "scikeras's KerasRegressor puts RegressorMixin after BaseEstimator in its bases; "
        "the regressor tags are set explicitly in __sklearn_tags__ instead"
    ),
    "check_estimator_tags_renamed": (
        "scikeras's BaseWrapper (a base class) still defines the removed _more_tags; "
        "EmbeddingMFRegressor declares __sklearn_tags__"
    ),
}
TWO_COLUMN_FAILURES = {check: _TWO_COLUMNS.format(n) for check, n in TWO_COLUMN_CHECKS.items()}


#: The baseline checks X's columns before the weights; EmbeddingMFRegressor
#: (whose extra columns may be side information) checks the weights first and
#: passes this check.
BASELINE_ONLY = {
    "check_all_zero_sample_weights_error": _TWO_COLUMNS.format("20 (all-zero weights: test_sample_weight.py)"),
}


def expected_failed_checks(estimator):
    if isinstance(estimator, EmbeddingMFRegressor):
        return {**TWO_COLUMN_FAILURES, **SCIKERAS_CHECKS}
    return {**TWO_COLUMN_FAILURES, **BASELINE_ONLY}


#: The error each expected failure ends with.
_TWO_COLUMN_ERROR = (ValueError, r"X must have (exactly|at least) 2 columns|X has \d+ columns but column")
_EXPECTED_ERRORS = {
    "check_mixin_order": (AssertionError, "RegressorMixin comes before/left side of BaseEstimator"),
    "check_estimator_tags_renamed": (TypeError, "has defined either `_more_tags`"),
}


def _check_name(check):
    while hasattr(check, "func"):
        check = check.func
    return check.__name__


@parametrize_with_checks([EmbeddingMFRegressor(**FAST), BiasBaselineRegressor()])
def test_sklearn_compatible(estimator, check):
    name = _check_name(check)
    if name not in expected_failed_checks(estimator):
        check(estimator)
        return
    error, match = _EXPECTED_ERRORS.get(name, _TWO_COLUMN_ERROR)
    # some checks re-raise the estimator's error inside their own AssertionError:
    # the stated reason may be anywhere in the chain of exceptions
    with pytest.raises((error, AssertionError)) as info:
        check(estimator)
    chain, exc = [], info.value
    while exc is not None and len(chain) < 10:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert any(isinstance(e, error) and re.search(match, str(e)) for e in chain), (
        f"{name} failed, but not for the stated reason ({match!r}): {chain!r}"
    )
