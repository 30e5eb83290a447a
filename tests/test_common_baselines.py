"""scikit-learn's estimator checks on BiasBaselineRegressor.

Same reasoning as ``test_common.py``: many checks fit on generic float
matrices of 1 or 3 to 10 columns, which a rating estimator rejects with a
clear error because X must have exactly two columns (user id, item id).  Each
such check is listed with its reason; what it would test on two-column data is
tested directly in ``test_baselines.py``.
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skmfnet import BiasBaselineRegressor

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
    "check_estimators_nan_inf": "3 (NaN ids and y are rejected: see test_baselines.py)",
    "check_estimators_pickle": "3 (pickling is tested in test_baselines.py)",
    "check_f_contiguous_array_estimator": "3",
    "check_regressors_train": "10",
    "check_regressor_data_not_an_array": "10",
    "check_regressors_no_decision_function": "4",
    "check_supervised_y_2d": "3",
    "check_regressors_int": "10",
    "check_methods_sample_order_invariance": "3",
    "check_methods_subset_invariance": "3",
    "check_fit2d_1sample": "10",
    "check_fit2d_1feature": "1",
    "check_dict_unchanged": "3",
    "check_fit2d_predict1d": "3",
}
EXPECTED_FAILED = {check: _TWO_COLUMNS.format(n) for check, n in TWO_COLUMN_CHECKS.items()}


@parametrize_with_checks(
    [BiasBaselineRegressor()],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
