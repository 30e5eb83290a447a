"""``alpha``, ``learning_rate`` and ``early_stopping`` left at "auto" (skmfnet._training._auto).

Large fits are simulated by lowering ``AUTO_SELECTION_RATINGS``: the rule is
the same at any threshold, and a test cannot afford a million ratings.
"""

import numpy as np
import pytest

import skmfnet._training._auto
from skmfnet import EmbeddingMFRegressor
from skmfnet._persistence import load_estimator, save_estimator
from skmfnet.datasets import make_ratings

FAST = dict(n_factors=8, epochs=6, batch_size=64, random_state=0)


@pytest.fixture(scope="module")
def ratings():
    return make_ratings(n_users=60, n_items=40, n_ratings=2_000, n_factors=3, return_X_y=True, random_state=3)


@pytest.fixture
def large(monkeypatch):
    """Every fit of at least 100 ratings counts as large."""
    monkeypatch.setattr(skmfnet._training._auto, "AUTO_SELECTION_RATINGS", 100)


def best_held_out_rmse(est):
    return min(est.history_["val_rmse"])


def test_below_the_threshold_auto_is_the_small_data_pair_without_holding_out(ratings):
    X, y = ratings
    auto = EmbeddingMFRegressor(**FAST).fit(X, y)
    explicit = EmbeddingMFRegressor(alpha=0.1, learning_rate=0.005, early_stopping=False, **FAST).fit(X, y)
    assert (auto.alpha_, auto.learning_rate_) == (0.1, 0.005)
    assert "val_rmse" not in auto.history_  # nothing held out
    np.testing.assert_array_equal(auto.predict(X), explicit.predict(X))


@pytest.mark.parametrize("order", [1, -1], ids=["small-data-pair-first", "large-data-pair-first"])
def test_on_large_data_auto_keeps_the_pair_with_the_lower_held_out_rmse(ratings, large, monkeypatch, order):
    X, y = ratings
    monkeypatch.setattr(skmfnet._training._auto, "CANDIDATES", skmfnet._training._auto.CANDIDATES[::order])
    auto = EmbeddingMFRegressor(**FAST).fit(X, y)
    # each pair alone, on the same held-out ratings (the split is seeded by random_state)
    alone = [
        EmbeddingMFRegressor(early_stopping=True, **pair, **FAST).fit(X, y) for pair in skmfnet._training._auto.CANDIDATES
    ]
    scores = [best_held_out_rmse(est) for est in alone]
    assert scores[0] != scores[1]  # the comparison decides something
    winner = alone[int(np.argmin(scores))]
    assert (auto.alpha_, auto.learning_rate_) == (winner.alpha_, winner.learning_rate_)
    assert auto.history_ == winner.history_
    np.testing.assert_array_equal(auto.predict(X), winner.predict(X))
    assert auto.get_params()["alpha"] == auto.fitted_params_["alpha"] == "auto"
    assert auto.auto_results_ == [
        {"alpha": est.alpha_, "learning_rate": est.learning_rate_, "best_val_rmse": score,
         "best_epoch": est.history_["val_rmse"].index(score) + 1, "epochs": len(est.history_["val_rmse"])}
        for est, score in zip(alone, scores)
    ]


@pytest.mark.parametrize(
    "data, expected",
    [
        (dict(n_users=60, n_items=40, n_ratings=2_000, n_factors=3, random_state=3), (0.1, 0.005)),
        (dict(n_users=200, n_items=100, n_ratings=12_000, n_factors=4, noise=0.8, random_state=1), (0.03, 0.002)),
    ],
    ids=["33-ratings-per-user", "60-ratings-per-user"],
)
def test_either_pair_can_win(large, data, expected):
    X, y = make_ratings(**data, return_X_y=True)
    est = EmbeddingMFRegressor(n_factors=16, epochs=10, batch_size=64, random_state=0).fit(X, y)
    assert (est.alpha_, est.learning_rate_) == expected


@pytest.mark.parametrize(
    "params, expected",
    [
        (dict(alpha=0.05), (0.05, 0.005)),
        (dict(learning_rate=0.01), (0.1, 0.01)),
        (dict(early_stopping=False), (0.1, 0.005)),
        (dict(interaction="concat"), (0.1, 0.005)),
        (dict(optimizer="adam"), (0.1, 0.005)),
    ],
    ids=["alpha-set", "learning_rate-set", "no-early-stopping", "concat", "keras-path"],
)
def test_on_large_data_auto_compares_nothing_when_a_parameter_is_set_or_the_path_is_not_compiled(
    ratings, large, params, expected
):
    X, y = ratings
    est = EmbeddingMFRegressor(**{**FAST, "epochs": 2}, **params).fit(X, y)
    assert (est.alpha_, est.learning_rate_) == expected
    assert "val_rmse" not in est.history_
    assert est.auto_results_ is None


def test_explicit_early_stopping_with_auto_pairs_selects_on_large_data(ratings, large):
    X, y = ratings
    est = EmbeddingMFRegressor(early_stopping=True, **FAST).fit(X, y)
    small = EmbeddingMFRegressor(early_stopping=True, **skmfnet._training._auto.SMALL_DATA, **FAST).fit(X, y)
    other = EmbeddingMFRegressor(early_stopping=True, **skmfnet._training._auto.CANDIDATES[1], **FAST).fit(X, y)
    assert len(est.auto_results_) == 2  # compared (on this data the small-data pair alone would score the same)
    assert best_held_out_rmse(est) == min(best_held_out_rmse(small), best_held_out_rmse(other))


def test_selection_on_given_validation_data(ratings, large):
    X, y = ratings
    X_val, y_val = X.iloc[:300], y.iloc[:300]
    X_fit, y_fit = X.iloc[300:], y.iloc[300:]
    est = EmbeddingMFRegressor(**FAST).fit(X_fit, y_fit, validation_data=(X_val, y_val))
    alone = [
        EmbeddingMFRegressor(early_stopping=True, **pair, **FAST).fit(X_fit, y_fit, validation_data=(X_val, y_val))
        for pair in skmfnet._training._auto.CANDIDATES
    ]
    winner = min(alone, key=best_held_out_rmse)
    assert len(est.auto_results_) == 2
    np.testing.assert_array_equal(est.predict(X), winner.predict(X))


def test_the_resolved_pair_survives_saving_and_drives_fold_in(ratings, large, tmp_path):
    X, y = ratings
    est = EmbeddingMFRegressor(**FAST).fit(X, y)
    path = tmp_path / "auto.skmf"
    save_estimator(est, path)
    loaded = load_estimator(path)
    assert (loaded.alpha_, loaded.learning_rate_) == (est.alpha_, est.learning_rate_)
    assert loaded.auto_results_ == est.auto_results_ and len(est.auto_results_) == 2
    assert loaded.get_params()["alpha"] == "auto"
    new = X.iloc[:30].assign(user_id=-1)
    np.testing.assert_allclose(loaded.fold_in(new, y.iloc[:30]).predict(new), est.fold_in(new, y.iloc[:30]).predict(new))


def test_the_pairs_share_their_blocks_and_tensors_and_train_as_each_alone(ratings, large):
    # two threads, 2 blocks a side: the second pair reuses the first's cells (skmfnet._rowfit's ``prepared``)
    X, y = ratings
    params = {**FAST, "batch_size": 16, "n_jobs": 2}
    auto = EmbeddingMFRegressor(**params).fit(X, y)
    for pair, result in zip(skmfnet._training._auto.CANDIDATES, auto.auto_results_):
        alone = EmbeddingMFRegressor(early_stopping=True, **pair, **params).fit(X, y)
        assert result["best_val_rmse"] == best_held_out_rmse(alone)
        if (alone.alpha_, alone.learning_rate_) == (auto.alpha_, auto.learning_rate_):
            np.testing.assert_array_equal(auto.predict(X), alone.predict(X))
