"""EmbeddingMFRegressor inside scikit-learn's machinery: clone, search, pipelines, pickle."""

import copy
import pickle

import numpy as np
import pytest
from sklearn.base import clone, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import VotingRegressor
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.utils import get_tags

from skmfnet import EmbeddingMFRegressor

FAST = dict(n_factors=3, epochs=2, batch_size=32, early_stopping=False, random_state=0)


def test_is_a_regressor():
    est = EmbeddingMFRegressor()
    assert is_regressor(est)
    tags = get_tags(est)
    assert tags.estimator_type == "regressor"
    assert tags.target_tags.required


def test_get_params_is_the_init_signature():
    params = EmbeddingMFRegressor().get_params()
    for name in ("n_factors", "hidden_layer_sizes", "activation", "epochs", "batch_size",
                 "random_state", "verbose"):
        assert name in params
    # scikeras's own knobs are not parameters of this estimator
    assert not {"model", "build_fn", "warm_start", "callbacks", "metrics"} & set(params)


def test_set_params_and_clone():
    est = EmbeddingMFRegressor(n_factors=7)
    assert est.set_params(n_factors=9, hidden_layer_sizes=(4,)) is est
    assert est.get_params()["n_factors"] == 9
    cloned = clone(est)
    assert cloned.get_params() == est.get_params()
    with pytest.raises(ValueError, match="Invalid parameter 'n_factor'"):
        est.set_params(n_factor=3)


def test_clone_of_fitted_estimator_is_unfitted(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**FAST).fit(X, y)
    assert not hasattr(clone(est), "model_")


def test_pickle_round_trip_gives_identical_predictions(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**FAST).fit(X, y)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict(X), est.predict(X))
    np.testing.assert_array_equal(copy.deepcopy(est).predict(X), est.predict(X))
    # unknown ids still fall back the same way after the round trip
    pairs = [["new user", X.iloc[0, 1]], [X.iloc[0, 0], "new item"]]
    np.testing.assert_array_equal(restored.predict(pairs), est.predict(pairs))


def test_pickle_of_tutorial_style_network(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(
        **{**FAST, "interaction": "concat", "hidden_layer_sizes": (8,), "loss": "rmse",
           "regularization": "table"}
    ).fit(X, y)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X), est.predict(X))


def test_pipeline_with_column_selection(tiny_ratings):
    X, y = tiny_ratings
    frame = X.assign(timestamp=np.arange(len(X)))
    pipe = Pipeline([
        ("select", ColumnTransformer([("ids", "passthrough", ["user_id", "item_id"])])),
        ("mf", EmbeddingMFRegressor(**FAST)),
    ])
    pipe.fit(frame, y)
    direct = EmbeddingMFRegressor(**FAST).fit(X, y)
    np.testing.assert_allclose(pipe.predict(frame), direct.predict(X), rtol=1e-6)
    assert pipe.score(frame, y) == pytest.approx(direct.score(X, y))


def test_cross_val_score_and_cross_validate(tiny_ratings):
    X, y = tiny_ratings
    cv = KFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(EmbeddingMFRegressor(**FAST), X, y, cv=cv,
                             scoring="neg_root_mean_squared_error")
    assert scores.shape == (3,) and np.all(np.isfinite(scores)) and np.all(scores < 0)
    result = cross_validate(EmbeddingMFRegressor(**FAST), X, y, cv=cv,
                            scoring=["neg_root_mean_squared_error", "neg_mean_absolute_error"],
                            return_estimator=True)
    assert len(result["estimator"]) == 3
    assert np.all(np.isfinite(result["test_neg_mean_absolute_error"]))


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_over_n_factors(low_rank_ratings, n_jobs):
    X, y, _, _ = low_rank_ratings
    X, y = X[:3000], y[:3000]
    base = EmbeddingMFRegressor(epochs=3, batch_size=256, early_stopping=False, random_state=0)
    search = GridSearchCV(base, {"n_factors": [1, 4]}, cv=2,
                          scoring="neg_root_mean_squared_error", n_jobs=n_jobs)
    search.fit(X, y)
    # every candidate's fold scores are those of that candidate fitted alone on
    # the same folds, so n_factors reached the estimator
    for k, params in enumerate(search.cv_results_["params"]):
        alone = cross_val_score(clone(base).set_params(**params), X, y, cv=2,
                                scoring="neg_root_mean_squared_error")
        folds = [search.cv_results_[f"split{f}_test_score"][k] for f in range(2)]
        np.testing.assert_allclose(folds, alone, rtol=1e-6)
    assert search.cv_results_["mean_test_score"][0] != search.cv_results_["mean_test_score"][1]
    best = int(np.argmax(search.cv_results_["mean_test_score"]))
    assert search.best_params_ == search.cv_results_["params"][best]
    # the refit is a fit of the best candidate on all the data
    alone = clone(base).set_params(**search.best_params_).fit(X, y)
    assert search.best_estimator_.model_.get_layer("user_factors").embeddings.shape[1] == search.best_params_["n_factors"]
    np.testing.assert_allclose(search.predict(X), alone.predict(X), rtol=1e-6)


def test_grid_search_results_do_not_depend_on_n_jobs(low_rank_ratings):
    X, y, _, _ = low_rank_ratings
    X, y = X[:2000], y[:2000]
    base = EmbeddingMFRegressor(epochs=2, batch_size=256, early_stopping=False, random_state=0)
    grid = {"n_factors": [1, 4]}
    kwargs = dict(cv=2, scoring="neg_root_mean_squared_error")
    seq = GridSearchCV(base, grid, n_jobs=1, **kwargs).fit(X, y)
    par = GridSearchCV(base, grid, n_jobs=2, **kwargs).fit(X, y)
    np.testing.assert_allclose(seq.cv_results_["mean_test_score"],
                               par.cv_results_["mean_test_score"], rtol=1e-5)
    # on joblib's threading backend (documented for short searches: no worker imports TensorFlow),
    # the fits run side by side in one process and still give the same scores
    import joblib

    with joblib.parallel_config(backend="threading"):
        threads = GridSearchCV(base, grid, n_jobs=2, **kwargs).fit(X, y)
    np.testing.assert_allclose(seq.cv_results_["mean_test_score"],
                               threads.cv_results_["mean_test_score"], rtol=1e-5)


def test_voting_regressor(tiny_ratings):
    X, y = tiny_ratings
    vote = VotingRegressor([("mf", EmbeddingMFRegressor(**FAST)), ("mean", DummyRegressor())])
    vote.fit(X, y)
    mf = vote.named_estimators_["mf"].predict(X)
    np.testing.assert_allclose(vote.predict(X), (mf + np.mean(y)) / 2, rtol=1e-6)


def test_keras_pickles_models_without_scikeras_patches(tiny_ratings):
    # scikeras's import replaces keras.Model.__reduce__ (and more) globally;
    # importing skmfnet gives Keras its own back, and pickling still works
    import pickle

    import keras
    import scikeras._saving_utils as patches

    assert keras.Model.__dict__.get("__reduce__") is not patches.pack_keras_model
    assert keras.Model.__dict__.get("__deepcopy__") is not patches.deepcopy_model
    assert keras.optimizers.Optimizer.__dict__.get("__reduce__") is not patches.pack_keras_optimizer
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(n_factors=2, epochs=2, random_state=0).fit(X, y)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X), est.predict(X))
    np.testing.assert_array_equal(copy.deepcopy(est).predict(X), est.predict(X))
