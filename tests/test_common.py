"""scikit-learn's estimator checks on every estimator of the package.

Most of scikit-learn's checks fit on generic float matrices of 3 to 10
columns.  A rating estimator takes exactly two columns (user id, item id), so
those checks fail at input validation with a clear error; each is listed below
with its reason.  What they would test on two-column data (pickling, NaN/inf
rejection, order and subset invariance of predictions, dtype handling, ...) is
tested directly in the other test files.
"""

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


def expected_failed_checks(estimator):
    if isinstance(estimator, EmbeddingMFRegressor):
        return {**TWO_COLUMN_FAILURES, **SCIKERAS_CHECKS}
    return TWO_COLUMN_FAILURES


@parametrize_with_checks(
    [EmbeddingMFRegressor(**FAST), BiasBaselineRegressor()],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
