"""skmfnet.model_selection.TemporalSplit: each user's latest ratings held out."""

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score

from skmfnet import BiasBaselineRegressor
from skmfnet.datasets import make_ratings
from skmfnet.model_selection import TemporalSplit


@pytest.fixture(scope="module")
def timed():
    frame = make_ratings(40, 25, 500, rating_scale=(1, 5), random_state=0)
    times = np.random.default_rng(0).permutation(len(frame)) * 1000  # distinct, in no order
    return frame[["user_id", "item_id"]], frame["rating"].to_numpy(), times


@pytest.mark.parametrize("test_size", [0.1, 0.2, 0.5])
def test_each_user_keeps_their_earliest_ratings_and_tests_on_their_latest(timed, test_size):
    X, _, times = timed
    (train, test), = TemporalSplit(test_size).split(X, groups=times)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(X)
    users = X["user_id"].to_numpy()
    for user in np.unique(users):
        mine = np.flatnonzero(users == user)
        held = np.intersect1d(mine, test)
        n = len(mine)
        assert len(held) == min(int(np.ceil(test_size * n)), n - 1)
        kept = np.intersect1d(mine, train)
        assert len(kept) >= 1
        if len(held):
            assert times[held].min() > times[kept].max()


def test_ties_are_broken_by_the_order_of_the_rows():
    X = pd.DataFrame({"user_id": ["a"] * 4, "item_id": [1, 2, 3, 4]})
    (train, test), = TemporalSplit(0.5).split(X, groups=[7, 7, 7, 7])
    assert train.tolist() == [0, 1] and test.tolist() == [2, 3]
    (train, test), = TemporalSplit(0.5).split(X, groups=pd.to_datetime(["2020-01-02", "2020-01-01"] * 2))
    assert test.tolist() == [0, 2]  # the two latest datetimes, in row order


def test_it_is_a_cross_validator_for_cross_val_score_and_searches(timed):
    X, y, times = timed
    cv = TemporalSplit(0.2)
    scores = cross_val_score(BiasBaselineRegressor(), X, y, groups=times, cv=cv,
                             scoring="neg_root_mean_squared_error")
    (train, test), = cv.split(X, groups=times)
    manual = BiasBaselineRegressor().fit(X.iloc[train], y[train]).predict(X.iloc[test])
    assert scores[0] == pytest.approx(-np.sqrt(np.mean((manual - y[test]) ** 2)), rel=1e-12)
    search = GridSearchCV(BiasBaselineRegressor(), {"reg_user": [1.0, 15.0]}, cv=cv).fit(X, y, groups=times)
    assert search.n_splits_ == 1 and cv.get_n_splits() == 1


@pytest.mark.parametrize(
    "test_size, groups, match",
    [
        (0.2, None, "TemporalSplit needs the time of each rating, passed as groups"),
        (0.2, "short", r"groups \(the timestamps\) has 3 values; X has 500 rows"),
        (0.2, "nan", r"groups \(the timestamps\) has 1 missing values, starting at row 4"),
        (1.0, "ok", r"test_size must be a number in \(0, 1\); got 1.0"),
        (0, "ok", r"test_size must be a number in \(0, 1\); got 0"),
    ],
)
def test_bad_arguments_are_refused_by_name(timed, test_size, groups, match):
    X, _, times = timed
    values = {None: None, "short": times[:3], "nan": np.where(np.arange(len(times)) == 4, np.nan, times),
              "ok": times}[groups]
    with pytest.raises(ValueError, match=match):
        next(TemporalSplit(test_size).split(X, groups=values))


# ------------------------------------------------------ hardening (issue 36)
@pytest.mark.parametrize(
    "X, groups, match",
    [
        ([["a", 1], ["a", 2], ["a", 3]], ["9", "10", "8"],
         r"groups \(the timestamps\) must be numbers or datetimes; got str values such as '9'"),
        ([["a", 1], ["a", 2], ["a", 3]], [9, "10", 8],
         r"groups \(the timestamps\) must be numbers or datetimes; got str values such as '10'"),
        ([["a", 1], [np.nan, 2], ["b", 3]], [1, 2, 3],
         r"X has 1 missing user id\(s\) \(NaN or None\) in column 0, starting at row 1"),
        (["a", "b", "c"], [1, 2, 3], "Expected 2D array, got 1D array"),
    ],
    ids=["text-times", "mixed-times", "nan-user", "1-d-X"],
)
def test_bad_times_and_users_are_refused(X, groups, match):
    with pytest.raises(ValueError, match=match):
        next(TemporalSplit(0.5).split(X, groups=groups))


def test_datetimes_and_numbers_of_an_object_array_are_times():
    X = [["a", 1], ["a", 2], ["a", 3]]
    times = np.array([pd.Timestamp("2020-01-03"), pd.Timestamp("2020-01-01"), pd.Timestamp("2020-01-02")], dtype=object)
    train, test = next(TemporalSplit(0.3).split(X, groups=times))
    assert test.tolist() == [0]
    train, test = next(TemporalSplit(0.3).split(X, groups=np.array([9, 10, 8], dtype=object)))
    assert test.tolist() == [1]
