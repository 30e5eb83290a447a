"""time_column: Koren's time-aware biases (an item bias per time bin, a drift per user)."""

import numpy as np
import pandas as pd
import pytest

from skmfnet import EmbeddingMFRegressor
from skmfnet._network import TIME, dot_tables
from skmfnet._persistence import load_estimator
from skmfnet._scoring import pair_scores
from skmfnet._time import TIME_STEPS, drift_and_bins, fit_time_range, time_codes, time_values

FAST = dict(n_factors=3, epochs=3, batch_size=64, random_state=0, clip_predictions=False)
GIBBS = dict(optimizer="gibbs", n_factors=3, epochs=30, n_estimators=4, random_state=0, clip_predictions=False)


def _drifting(n_users=40, n_items=30, n=3000, seed=0):
    """Ratings whose item biases jump halfway through the period: half the items up, half down."""
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    t = np.sort(rng.uniform(0, 200 * 86400, n)) + 8.8e8  # Unix seconds over 200 days
    late = t > np.median(t)
    y = 3.5 + np.where(items % 2 == 0, 1.0, -1.0) * np.where(late, 0.6, -0.6) + rng.normal(0, 0.3, n)
    return pd.DataFrame({"user_id": users, "item_id": items, "when": t}), y


def test_time_values_read_numbers_and_datetimes_and_refuse_the_rest():
    np.testing.assert_array_equal(time_values(np.array([1, 2.5, None], dtype=object), "t"), [1, 2.5, np.nan])
    stamps = pd.to_datetime(["1970-01-01 00:00:10", None]).to_numpy(dtype=object)
    np.testing.assert_array_equal(time_values(stamps, "t"), [10.0, np.nan])
    with pytest.raises(ValueError, match=r"time_column 'when' must hold numbers .* got 'monday' of type str"):
        time_values(np.array([1, "monday"], dtype=object), "when")
    with pytest.raises(ValueError, match="time_column 'when' must hold numbers .* got True"):
        time_values(np.array([True, 1], dtype=object), "when")


def test_the_training_times_must_be_known_and_finite():
    with pytest.raises(ValueError, match=r"time_column 'when' must give every training rating a finite time; "
                                         r"got nan at row 1 \(2 of 3 rows\)"):
        fit_time_range(np.array([1.0, np.nan, np.inf]), "when")
    assert fit_time_range(np.array([5.0, 1.0, 3.0]), "when") == (1.0, 5.0)


def test_codes_span_the_training_period_clip_outside_it_and_mark_unknown_times():
    codes = time_codes(np.array([0.0, 5.0, 10.0, -3.0, 99.0, np.nan]), (0.0, 10.0))
    np.testing.assert_array_equal(codes, [0, TIME_STEPS // 2, TIME_STEPS, 0, TIME_STEPS, -1])
    np.testing.assert_array_equal(time_codes(np.array([4.0, 4.0]), (4.0, 4.0)), [0, 0])  # one moment: no span
    drift, bins, known = drift_and_bins(np.array([1, 1, 1]), codes[[0, 2, 5]], np.array([0.0, 0.5], "float32"), 4)
    np.testing.assert_allclose(drift, [-(0.5**0.4), 0.5**0.4, 0.0])
    np.testing.assert_array_equal(bins, [0, 3, 0])
    np.testing.assert_array_equal(known, [True, True, False])


@pytest.mark.parametrize("params", [{**FAST, "epochs": 30}, GIBBS], ids=["keras", "gibbs"])
def test_time_effects_learn_biases_that_move_with_time(params):
    """Before: time_column was no parameter.  An item bias that jumps mid-period is learnt on both engines."""
    X, y = _drifting()
    train, test = np.arange(len(y)) % 5 != 0, np.arange(len(y)) % 5 == 0
    plain = EmbeddingMFRegressor(**params)
    timed = EmbeddingMFRegressor(**params, time_column="when", time_bins=4)
    rmse = {}
    for name, est in (("plain", plain), ("timed", timed)):
        columns = ["user_id", "item_id"] + (["when"] if name == "timed" else [])
        est.fit(X[columns][train], y[train])
        rmse[name] = np.sqrt(np.mean((est.predict(X[columns][test]) - y[test]) ** 2))
    assert rmse["timed"] < 0.6 * rmse["plain"]  # the jump (0.6 either way) is most of the spread left
    assert timed.time_column_ == ("when", 2) and timed.time_range_ == (X["when"][train].min(), X["when"][train].max())
    assert timed.model_.get_layer(TIME).item_bin_bias.shape == (timed.n_items_ + 1, 4)


@pytest.mark.parametrize("params", [FAST, GIBBS], ids=["keras", "gibbs"])
def test_unknown_and_out_of_period_times(params):
    """An unknown time adds no time effect (the dot model's own score); times outside the period are clipped."""
    X, y = _drifting(seed=1)
    est = EmbeddingMFRegressor(**params, time_column="when", time_bins=4).fit(X, y)
    rows = X.iloc[:5].assign(when=np.nan)
    users, items = est.user_encoder_.transform(rows["user_id"]), est.item_encoder_.transform(rows["item_id"])
    np.testing.assert_allclose(est.predict(rows), pair_scores(est.mu_, dot_tables(est.model_), users, items),
                               rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="missing:\n- when"):
        est.predict(X[["user_id", "item_id"]])  # the time column missing
    late, last = X.iloc[:5].assign(when=X["when"].max() + 1e9), X.iloc[:5].assign(when=X["when"].max())
    np.testing.assert_array_equal(est.predict(late), est.predict(last))
    assert not np.allclose(est.predict(last), est.predict(rows))
    top = est.recommend(X["user_id"].iloc[:2].tolist(), n=3, exclude_seen=False)  # as of the period's end
    assert len(top) == 6 and top["score"].notna().all()


def test_time_effects_save_load_and_fold_in(tmp_path):
    X, y = _drifting(seed=2)
    est = EmbeddingMFRegressor(**GIBBS, time_column="when", implicit="both").fit(X, y)
    path = tmp_path / "time.skmf"
    est.save(path)
    loaded = load_estimator(path)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    assert loaded.time_column_ == est.time_column_ and loaded.time_range_ == est.time_range_
    new = pd.DataFrame({"user_id": [10**6] * 3, "item_id": X["item_id"][:3], "when": X["when"][:3]})
    loaded.fold_in(new, [5.0, 4.0, 5.0])
    assert np.isfinite(loaded.predict(new)).all()
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))  # known pairs unchanged


@pytest.mark.parametrize(
    "params, X_change, match",
    [
        (dict(time_column="when"), dict(when=["x"] * 3), "time_column 'when' must hold numbers"),
        (dict(time_column="when"), dict(when=[1.0, None, 2.0]), "time_column 'when' must give every training"),
        (dict(time_column="nowhen"), {}, "time_column names column 'nowhen', which is not in X"),
        (dict(time_column="when", user_features=["when"]), {}, "time_column names column 'when', which "
                                                               "user_features or item_features name too"),
        ({}, {}, r"column\(s\) \['when'\] are not named in user_features, item_features or time_column"),
        (dict(time_column="when", n_estimators=2), {}, "n_estimators=2 averages .*time_column='when'"),
        (dict(time_column="when", time_bins=0), {}, "'time_bins' parameter"),
    ],
)
def test_bad_time_columns_are_refused_by_name(params, X_change, match):
    X = pd.DataFrame({"user_id": [1, 2, 3], "item_id": [1, 1, 2], "when": [1.0, 2.0, 3.0]}).assign(**X_change)
    est = EmbeddingMFRegressor(**FAST, **params)
    with pytest.raises(ValueError, match=match):
        est.fit(X, [3.0, 4.0, 5.0])
    assert not hasattr(est, "model_")


def test_the_new_options_are_searched_by_gridsearchcv():
    """implicit's strings and the time options clone and search like every parameter."""
    from sklearn.model_selection import GridSearchCV, KFold

    X, y = _drifting(n=900, seed=4)
    search = GridSearchCV(EmbeddingMFRegressor(**{**GIBBS, "epochs": 10, "n_estimators": 2}, time_column="when"),
                          {"implicit": [False, "both"], "time_bins": [1, 4]}, cv=KFold(2, shuffle=True, random_state=0),
                          scoring="neg_root_mean_squared_error", error_score="raise").fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_params_["time_bins"] == 4  # the planted jump needs more than one bin
    assert search.best_estimator_.model_.get_layer(TIME).n_bins == 4


def test_the_command_line_recommends_with_a_time_model_and_names_the_missing_column(tmp_path, capsys):
    from skmfnet.cli import main

    X, y = _drifting(seed=5)
    path = tmp_path / "time.skmf"
    EmbeddingMFRegressor(**FAST, time_column="when").fit(X, y).save(path)
    assert main(["recommend", str(path), "--user", str(X["user_id"][0]), "-n", "3", "-q"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 4  # the header and three items
    X[["user_id", "item_id"]].head(3).to_csv(tmp_path / "pairs.csv", index=False)
    assert main(["predict", str(path), str(tmp_path / "pairs.csv"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "missing:" in err and "when" in err
