"""The ranking protocol's tuned peers (issue 37): EASE, iALS and the holdout search that tunes them.

The adapters of ``benchmarks/suite/peers.py`` and the search of
``benchmarks/suite/search.py`` on small synthetic data (``make_ratings``)
and on planted cases whose answer is known; EASE is also compared with its
closed form (Steck 2019) in numpy.  The end-to-end check runs
``benchmarks/run.py`` on the real MovieLens 100K, one fold.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from _data import REAL_HOME, REPO_ROOT, needs_real_100k

from skmfnet.datasets import make_ratings

pytest.importorskip("cornac")
pytest.importorskip("implicit")

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.suite import models as M  # noqa: E402
from benchmarks.suite import protocols as P  # noqa: E402
from benchmarks.suite import report as R  # noqa: E402
from benchmarks.suite.peers import CornacRanker, ImplicitALSRanker  # noqa: E402
from benchmarks.suite.search import HoldoutRankingSearch, holdout_split  # noqa: E402

RANKERS = [
    pytest.param(lambda: CornacRanker("EASE", dict(lamb=10.0, posB=False), seed=0, binary=True), id="ease"),
    pytest.param(lambda: ImplicitALSRanker(factors=8, regularization=1.0, random_state=0, num_threads=1), id="ials"),
]


@pytest.fixture(scope="module")
def ratings():
    return make_ratings(n_users=80, n_items=120, n_ratings=2400, return_X_y=True, random_state=0)


def _dense_binary(X):
    """The binary users x items matrix of X, with its user and item ids."""
    users, items = np.unique(X["user_id"]), np.unique(X["item_id"])
    matrix = np.zeros((len(users), len(items)))
    matrix[np.searchsorted(users, X["user_id"]), np.searchsorted(items, X["item_id"])] = 1.0
    return matrix, users, items


@pytest.mark.parametrize("make", RANKERS)
def test_rankers_leave_out_training_items_and_respect_n(ratings, make):
    X, y = ratings
    model = make().fit(X, y)
    users = list(pd.unique(X["user_id"]))[:20]
    lists = model.recommend(users + ["nobody"], n=7)
    assert list(lists.columns) == ["user", "rank", "item", "score"]
    assert set(lists["user"]) == set(users)  # every known user has a list, the unknown one none
    assert model.n_unknown_users_ == 1
    seen = set(zip(X["user_id"], X["item_id"]))
    n_left = X["item_id"].nunique() - X["user_id"].value_counts()
    assert (n_left[users] < 7).any() and (n_left[users] >= 7).any()  # (both cases are tested)
    for user, rows in lists.groupby("user", sort=False):
        assert list(rows["rank"]) == list(range(1, min(7, n_left[user]) + 1))
        assert not {(user, item) for item in rows["item"]} & seen
        assert rows["item"].is_unique
        assert (np.diff(rows["score"].to_numpy()) <= 0).all()  # best first
    # with the training items kept, a user's list may hold them
    assert len(model.recommend(users[:1], n=200, exclude_seen=False)) == X["item_id"].nunique()


@pytest.mark.parametrize("make", RANKERS)
def test_rankers_return_fewer_items_when_fewer_are_left(make):
    # user 0 rated 4 of the 5 items: one is left to recommend
    X = pd.DataFrame({"user_id": [0, 0, 0, 0, 1, 1, 2], "item_id": [1, 2, 3, 4, 1, 5, 2]})
    model = make().fit(X, np.full(len(X), 4.0))
    lists = model.recommend([0], n=10)
    assert list(lists["item"]) == [5]


def test_ease_equals_its_closed_form_on_the_binary_matrix(ratings):
    """Scores are x_u B with B = -P / diag(P), P = (X^T X + lambda I)^-1, diag(B) = 0 (Steck 2019)."""
    X, y = ratings
    lamb = 25.0
    model = CornacRanker("EASE", dict(lamb=lamb, posB=False), seed=0, binary=True).fit(X, y)
    matrix, users, items = _dense_binary(X)
    inverse = np.linalg.inv(matrix.T @ matrix + lamb * np.eye(len(items)))
    weights = inverse / -np.diag(inverse)
    np.fill_diagonal(weights, 0.0)
    user = users[3]
    expected = pd.Series(matrix[3] @ weights, index=items)
    lists = model.recommend([user], n=len(items), exclude_seen=False)
    np.testing.assert_allclose(lists["score"], expected[lists["item"]].to_numpy(), atol=1e-8)


def test_binary_ranker_ignores_the_rating_values(ratings):
    X, y = ratings
    fitted = [CornacRanker("EASE", dict(lamb=10.0, posB=False), seed=0, binary=True).fit(X, ratings_)
              for ratings_ in (y, np.full(len(y), 3.0))]
    users = list(pd.unique(X["user_id"]))[:10]
    first, second = (model.recommend(users, n=5) for model in fitted)
    pd.testing.assert_frame_equal(first, second)
    # without binary, Cornac's EASE reads the ratings (the same ratings for all: another scale, same order)
    raw = CornacRanker("EASE", dict(lamb=10.0, posB=False), seed=0).fit(X, y).recommend(users, n=5)
    assert not raw["score"].equals(first["score"])


def test_ease_recommends_the_item_that_always_comes_with_one_the_user_has():
    # items "A" and "B" are rated together by 30 users (each with other random items);
    # the test user has "A" and not "B": "B" comes first
    rng = np.random.default_rng(0)
    rows = []
    for user in range(60):
        rows += [(user, f"i{item}") for item in rng.choice(40, size=6, replace=False)]
        if user < 30:
            rows += [(user, "A"), (user, "B")]
    rows += [("new", "A"), ("new", "i0"), ("new", "i1")]
    X = pd.DataFrame(rows, columns=["user_id", "item_id"])
    model = CornacRanker("EASE", dict(lamb=5.0, posB=False), seed=0, binary=True).fit(X, np.ones(len(X)))
    assert model.recommend(["new"], n=1)["item"].tolist() == ["B"]


def test_ials_recommends_within_the_users_group():
    # two groups of users, each rating only its own half of the items: a user of group 0
    # with a few of its half gets only items of that half
    rng = np.random.default_rng(0)
    rows = []
    for user in range(80):
        half = user % 2
        items = rng.choice(np.arange(20) + 20 * half, size=8, replace=False)
        rows += [(user, int(item)) for item in items]
    X = pd.DataFrame(rows, columns=["user_id", "item_id"])
    model = ImplicitALSRanker(factors=4, regularization=0.1, alpha=3.0, random_state=0, num_threads=1)
    model.fit(X, np.ones(len(X)))
    for user in (0, 2, 4):
        assert (model.recommend([user], n=5)["item"] < 20).all()
    assert (model.recommend([1], n=5)["item"] >= 20).all()


def test_ials_is_seeded(ratings):
    X, y = ratings
    users = list(pd.unique(X["user_id"]))[:10]
    lists = [ImplicitALSRanker(factors=8, random_state=3, num_threads=1).fit(X, y).recommend(users, n=5)
             for _ in range(2)]
    pd.testing.assert_frame_equal(*lists)


def test_holdout_split_holds_a_share_of_each_users_ratings():
    X = pd.DataFrame({"user_id": np.repeat([1, 2, 3], [10, 20, 4]), "item_id": np.arange(34)})
    held = holdout_split(X, test_size=0.2, min_ratings=5, random_state=0)
    counts = pd.Series(held).groupby(X["user_id"].to_numpy()).sum()
    assert counts.to_dict() == {1: 2, 2: 4, 3: 0}  # user 3 has fewer than min_ratings
    assert (held == holdout_split(X, test_size=0.2, min_ratings=5, random_state=0)).all()
    assert (held != holdout_split(X, test_size=0.2, min_ratings=5, random_state=1)).any()


def test_search_picks_a_grid_point_and_refits_it_on_every_rating(ratings):
    X, y = ratings
    grid = {"regularization": [0.1, 10.0], "alpha": [1.0, 3.0]}
    search = HoldoutRankingSearch(ImplicitALSRanker(factors=8, random_state=0, num_threads=1), grid, random_state=0)
    search.fit(X, y)
    assert len(search.grid_scores_) == 4
    scores = [row["val_ndcg_at_10"] for row in search.grid_scores_]
    assert search.best_score_ == max(scores)
    best_row = search.grid_scores_[scores.index(max(scores))]
    assert search.best_params_ == {k: best_row[k] for k in grid}
    assert search.best_params_["regularization"] in grid["regularization"]
    # the final model has the chosen parameters and every training pair
    assert search.best_estimator_.get_params()["regularization"] == search.best_params_["regularization"]
    assert search.best_estimator_.seen_.nnz == len(X)
    assert 0 < search.n_holdout_ < len(X)
    users = list(pd.unique(X["user_id"]))[:5]
    lists = search.recommend(users + ["nobody"], n=3)
    assert set(lists["user"]) == set(users) and lists.groupby("user").size().max() == 3
    assert search.n_unknown_users_ == 1


def test_search_scores_the_holdout_as_the_protocol_scores_a_test_fold(ratings):
    X, y = ratings
    grid = {"params": [dict(lamb=10.0, posB=False)]}
    estimator = CornacRanker("EASE", seed=0, binary=True)
    search = HoldoutRankingSearch(estimator, grid, random_state=5).fit(X, y)
    held = holdout_split(X, 0.2, 5, random_state=5)
    by_hand = CornacRanker("EASE", dict(lamb=10.0, posB=False), seed=0, binary=True).fit(X[~held], y[~held])
    assert search.best_score_ == P.ranking_scores(by_hand, X[held], y[held])["ndcg_at_10"]


def test_the_fold_records_the_choice_and_the_report_lists_it(ratings):
    X, y = ratings
    search = M.build("rank_ials", 0, quick=True).set_params(estimator__num_threads=1)
    result = P.fit_and_rank(search, X, y, X.iloc[:50], y[:50])
    assert result["best_params"] == search.best_params_
    assert set(result["best_params"]) == set(M.QUICK_IALS_GRID)
    assert len(result["grid_scores"]) == 4 and result["refit_seconds"] <= result["fit_seconds"]
    json.dumps(result)  # results.json takes it as it is
    result.update(P.ranking_scores(search, X.iloc[:50], y[:50]), fold=1)
    entry = {"label": "iALS", "params": P.describe_params(search), **P.summarize([result]), "per_fold": [result]}
    machine = dict(cpu_model="cpu", cpu_count=1, cpus_usable=1, ram_gib=1, os="os", python="3", versions={})
    results = {"protocols": {"ranking": {"rank_ials": entry}}, "command": "x", "started": "now", "wall_seconds": 1.0,
               "settings": {"quick": True, "folds": [1]}, "machine": machine}
    text = R.markdown(results, [])
    chosen = ", ".join(f"{k}={v!r}" for k, v in search.best_params_.items())
    assert f"- u1: {chosen} (validation NDCG@10 {search.best_score_:.4f}" in text


@pytest.mark.parametrize("name, grid", [("rank_ease", M.EASE_GRID), ("rank_ials", M.IALS_GRID)])
def test_rows_are_ranking_rows_with_their_grid(name, grid):
    spec = M.MODELS[name]
    assert spec.protocol == "ranking" and not spec.rates
    search = M.build(name, 7)
    assert search.random_state == 7 and search.test_size == M.HOLDOUT_TEST_SIZE
    values = [v for v in grid.values()][0]
    assert all(f"{v:g}" in spec.label for v in values)  # the label states the grid
    if name == "rank_ease":
        assert [p["lamb"] for p in search.param_grid["params"]] == grid["lamb"]
        assert search.estimator.binary and search.estimator.seed == 7
    else:
        assert search.param_grid == grid and search.estimator.random_state == 7


@needs_real_100k
def test_run_ranks_with_the_tuned_peers_on_one_fold(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "run.py"), "--quick", "--protocols", "ranking",
         "--models", "rank_ease,rank_ials", "--output", str(tmp_path)],
        cwd=REPO_ROOT, env={**os.environ, "SKMFNET_DATA": str(REAL_HOME)},
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranking = json.loads((tmp_path / "results.json").read_text())["protocols"]["ranking"]
    assert set(ranking) == {"rank_ease", "rank_ials"}
    for name, entry in ranking.items():
        fold = entry["per_fold"][0]
        assert fold["fold"] == 1 and 0.0 < fold["ndcg_at_10"] <= 1.0, name
        assert math.isfinite(fold["best_val_ndcg_at_10"]) and fold["best_params"], name
    assert ranking["rank_ials"]["params"]["param_grid"] == M.QUICK_IALS_GRID
    table = (tmp_path / "results.md").read_text()
    assert "`rank_ease`: tuned inside fit" in table and "| `rank_ials` |" in table
