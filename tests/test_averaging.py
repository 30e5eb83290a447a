"""n_estimators: several seeds of the plain dot model averaged into one dot model."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from skmfnet import EmbeddingMFRegressor, recommend
from skmfnet._network import dot_tables
from skmfnet._persistence import load_estimator, read_dot_model, save_estimator
from skmfnet.datasets import make_ratings

FAST = dict(n_factors=3, epochs=3, batch_size=64, clip_predictions=False)


@pytest.fixture(scope="module")
def ratings():
    return make_ratings(n_users=40, n_items=25, n_ratings=600, return_X_y=True, random_state=0)


@pytest.fixture(scope="module")
def averaged(ratings):
    X, y = ratings
    return EmbeddingMFRegressor(**FAST, n_estimators=3, random_state=7).fit(X, y)


def test_predictions_are_the_mean_of_the_members(ratings, averaged):
    X, y = ratings
    members = [EmbeddingMFRegressor(**FAST, random_state=7 + k).fit(X, y) for k in range(3)]
    queries = pd.concat([X, pd.DataFrame({"user_id": [10**6, 0], "item_id": [0, 10**6]})], ignore_index=True)
    expected = np.mean([m.predict(queries) for m in members], axis=0)
    np.testing.assert_allclose(averaged.predict(queries), expected, rtol=1e-5, atol=1e-6)
    assert dot_tables(averaged.model_)["user_factors"].shape == (averaged.n_users_ + 1, 3 * 3)
    assert averaged.mu_ == pytest.approx(np.mean([m.mu_ for m in members]))


def test_clipping_applies_to_the_mean(ratings):
    X, y = ratings
    est = EmbeddingMFRegressor(**{**FAST, "clip_predictions": True}, n_estimators=2, random_state=0).fit(X, y)
    unclipped = EmbeddingMFRegressor(**FAST, n_estimators=2, random_state=0).fit(X, y).predict(X)
    np.testing.assert_allclose(est.predict(X), np.clip(unclipped, *est.rating_range_), rtol=1e-6)


def test_files_recommend_similar_and_fold_in_serve_it(averaged, ratings, tmp_path):
    X, _ = ratings
    path = tmp_path / "m.skmf"
    save_estimator(averaged, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. Keras's "Skipping variable loading for optimizer"
        loaded = load_estimator(path)
    np.testing.assert_array_equal(loaded.predict(X), averaged.predict(X))
    light = read_dot_model(path)
    users, items = X["user_id"].to_numpy(), X["item_id"].to_numpy()
    np.testing.assert_array_equal(light.predict(users, items), averaged.predict(X))
    pd.testing.assert_frame_equal(light.recommend(users[:4], n=5), recommend(averaged, users[:4], n=5))
    assert len(averaged.similar_items(items[:1], n=3)) == 3
    folded = load_estimator(path)
    folded.fold_in(pd.DataFrame({"user_id": [10**6] * 3, "item_id": items[:3]}), [5.0, 4.0, 5.0])
    assert np.isfinite(folded.predict(pd.DataFrame({"user_id": [10**6], "item_id": [items[4]]}))).all()


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(implicit=True), "n_estimators=2 averages plain dot models.*implicit=True"),
        (dict(interaction="concat", hidden_layer_sizes=(4,)), "interaction='concat'"),
        (dict(negative_ratio=1.0), "negative_ratio=1.0"),
    ],
)
def test_other_models_are_refused(ratings, params, match):
    X, y = ratings
    with pytest.raises(ValueError, match=match):
        EmbeddingMFRegressor(**FAST, n_estimators=2, **params).fit(X, y)


@pytest.mark.parametrize("value", [0, -1, 1.5, "many"])
def test_bad_values_are_refused(ratings, value):
    X, y = ratings
    with pytest.raises(InvalidParameterError, match="n_estimators"):
        EmbeddingMFRegressor(**FAST, n_estimators=value).fit(X, y)
