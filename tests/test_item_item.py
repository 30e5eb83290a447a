"""The item-item term of recommend (item_item_alpha, item_item_weight): EASE's closed form, blended, chosen in fit."""

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.utils._param_validation import InvalidParameterError

from skmfnet import EmbeddingMFRegressor, recommend
from skmfnet._item_item import ALPHA_GRID, WEIGHT_GRID, covered_items, fit_table, gram
from skmfnet._persistence import InvalidModelFileError, load_estimator, read_dot_model, save_estimator
from skmfnet.datasets import make_ratings

FAST = dict(n_factors=4, epochs=2, batch_size=64, random_state=0)


@pytest.fixture(scope="module")
def ratings():
    return make_ratings(n_users=40, n_items=25, n_ratings=500, return_X_y=True, random_state=0)


def test_the_table_is_eases_closed_form():
    rng = np.random.default_rng(0)
    X = (rng.random((30, 8)) < 0.4).astype(np.float64)
    seen = sp.csr_matrix(np.hstack([np.zeros((30, 1)), X]))  # column 0: the unknown-id row
    items = covered_items(seen)
    B = fit_table(gram(seen, items), 7.0)
    P = np.linalg.inv(X[:, items - 1].T @ X[:, items - 1] + 7.0 * np.eye(len(items)))
    expected = np.eye(len(items)) - P / np.diag(P)  # Steck (2019), eq. 8
    np.testing.assert_allclose(B, expected, atol=1e-6)
    assert not np.diag(B).any()


def test_the_most_rated_items_are_covered():
    seen = sp.csr_matrix(np.array([[0, 1, 1, 0, 1], [0, 1, 0, 0, 1], [0, 0, 1, 0, 1]], dtype=bool))
    np.testing.assert_array_equal(covered_items(seen), [1, 2, 4])  # item row 3 was never rated
    np.testing.assert_array_equal(covered_items(seen, max_items=2), [1, 4])  # 4 (3 ratings), then 1 (first of ties)


def test_an_item_always_chosen_with_another_is_recommended_with_it():
    """Item "b" goes with "a" in every training list: a user who has "a" gets "b" first."""
    rng = np.random.default_rng(1)
    rows = []
    for user in range(60):
        others = rng.choice([f"x{k}" for k in range(12)], size=3, replace=False).tolist()
        rows += [(user, item) for item in (["a", "b"] if user < 30 else []) + others]
    rows.append((99, "a"))
    X = pd.DataFrame(rows, columns=["user_id", "item_id"])
    y = np.full(len(X), 4.0)
    est = EmbeddingMFRegressor(**FAST, item_item_alpha=1.0, item_item_weight=0.0).fit(X, y)
    assert est.recommend([99], n=1)["item"].tolist() == ["b"]


def test_recommend_adds_the_weighted_rating_score_and_predict_is_unchanged(ratings):
    X, y = ratings
    plain = EmbeddingMFRegressor(**FAST).fit(X, y)
    est = EmbeddingMFRegressor(**FAST, item_item_alpha=20.0, item_item_weight=0.5).fit(X, y)
    np.testing.assert_array_equal(est.predict(X), plain.predict(X))
    users = est.user_encoder_.classes_[:5]
    got = recommend(est, users, n=est.n_items_, exclude_seen=False)
    rating = recommend(plain, users, n=est.n_items_, exclude_seen=False)
    seen = est.seen_[est.user_encoder_.transform(users)].toarray()[:, 1:].astype(np.float64)
    B = np.zeros((est.n_items_, est.n_items_))
    rows = est.item_item_items_ - 1
    B[np.ix_(rows, rows)] = est.item_item_
    for k, user in enumerate(users):
        expected = 0.5 * rating[rating["user"] == user].set_index("item")["score"]
        expected += pd.Series(seen[k] @ B, index=est.item_encoder_.classes_)
        mine = got[got["user"] == user].set_index("item")["score"]
        np.testing.assert_allclose(mine.to_numpy(), expected.loc[mine.index].to_numpy(), rtol=1e-5, atol=1e-6)
        assert mine.is_monotonic_decreasing


def test_auto_chooses_the_best_held_out_pair_of_the_grids(ratings):
    X, y = ratings
    est = EmbeddingMFRegressor(**FAST, item_item_alpha="auto").fit(X, y)
    results = est.item_item_results_
    assert [(r["alpha"], r["weight"]) for r in results] == [(a, w) for a in ALPHA_GRID for w in WEIGHT_GRID]
    best = max(results, key=lambda r: r["ndcg_at_10"])  # the first of equal scores, as choose keeps it
    assert (est.item_item_alpha_, est.item_item_weight_) == (best["alpha"], best["weight"])
    assert all(0 <= r["ndcg_at_10"] <= 1 for r in results)
    fixed = EmbeddingMFRegressor(**FAST, item_item_alpha="auto", item_item_weight=0.1).fit(X, y)
    assert {r["weight"] for r in fixed.item_item_results_} == {0.1}
    assert EmbeddingMFRegressor(**FAST, item_item_alpha=50.0).fit(X, y).item_item_results_ is not None


def test_auto_on_data_too_small_to_hold_out_from_takes_the_middle_of_each_grid():
    """No user has 5 ratings: nothing is held out, no error, the documented constants."""
    from skmfnet._item_item import FALLBACK_ALPHA, FALLBACK_WEIGHT

    X = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 3, 3], "item_id": ["a", "b", "b", "c", "a", "c", "d"]})
    y = [5.0, 4.0, 3.0, 5.0, 1.0, 2.0, 4.0]
    est = EmbeddingMFRegressor(**FAST, item_item_alpha="auto").fit(X, y)
    chosen = (est.item_item_alpha_, est.item_item_weight_, est.item_item_results_)
    assert chosen == (FALLBACK_ALPHA, FALLBACK_WEIGHT, [])
    assert (FALLBACK_ALPHA, FALLBACK_WEIGHT) == (ALPHA_GRID[len(ALPHA_GRID) // 2], WEIGHT_GRID[len(WEIGHT_GRID) // 2])
    fixed = EmbeddingMFRegressor(**FAST, item_item_alpha="auto", item_item_weight=0.5).fit(X, y)
    assert fixed.item_item_weight_ == 0.5
    assert len(est.recommend([1], n=2)) == 2


def test_auto_takes_lists_of_rows_with_ids_of_mixed_types():
    rng = np.random.default_rng(3)
    users = [f"u{k}" if k % 2 else k for k in range(30)]
    rows = [[user, item] for user in users for item in rng.choice(12, size=6, replace=False).tolist()]
    y = rng.integers(1, 6, size=len(rows)).astype(float)
    est = EmbeddingMFRegressor(**FAST, item_item_alpha="auto").fit(rows, y)
    assert len(est.item_item_results_) == len(ALPHA_GRID) * len(WEIGHT_GRID)
    assert len(est.recommend(["u1", 2], n=3)) == 6


def test_without_the_term_nothing_is_fitted(ratings):
    X, y = ratings
    est = EmbeddingMFRegressor(**FAST).fit(X, y)
    assert est.item_item_ is None and est.item_item_alpha_ is None


@pytest.mark.parametrize(
    "params", [dict(item_item_alpha=0.0), dict(item_item_alpha=-1.0), dict(item_item_alpha="big"),
               dict(item_item_alpha=10.0, item_item_weight=-0.1)],
)
def test_bad_parameters_are_refused(ratings, params):
    X, y = ratings
    with pytest.raises(InvalidParameterError, match="item_item_"):
        EmbeddingMFRegressor(**FAST, **params).fit(X, y)


@pytest.mark.parametrize("alpha", [1e-300])
def test_a_penalty_too_small_to_invert_is_a_clear_error_and_leaves_the_estimator(ratings, alpha):
    X, y = ratings
    est = EmbeddingMFRegressor(**FAST).fit(X, y)
    before = est.predict(X)
    with pytest.raises(ValueError, match=r"item_item_alpha=1e-.* is too small for these ratings.*'auto'"):
        est.set_params(item_item_alpha=alpha).fit(X, y)
    np.testing.assert_array_equal(est.predict(X), before)
    assert est.item_item_ is None


@pytest.fixture(scope="module")
def saved(ratings, tmp_path_factory):
    X, y = ratings
    est = EmbeddingMFRegressor(**FAST, item_item_alpha="auto").fit(X, y)
    path = tmp_path_factory.mktemp("item_item") / "model.skmf"
    save_estimator(est, path)
    return est, path


def test_round_trip(saved):
    est, path = saved
    loaded = load_estimator(path)
    users = est.user_encoder_.classes_
    pd.testing.assert_frame_equal(recommend(loaded, users, n=5), recommend(est, users, n=5))
    assert loaded.item_item_results_ == est.item_item_results_
    light = read_dot_model(path)  # the command line's reader serves the term too
    pd.testing.assert_frame_equal(light.recommend(users, n=5), recommend(est, users, n=5))
    pd.testing.assert_frame_equal(light.recommend(users[:3], n=5, exclude_seen=False),
                                  recommend(est, users[:3], n=5, exclude_seen=False))


def rewritten(path, tmp_path, change_meta=None, arrays=None):
    """A copy of the model file with its JSON changed, or arrays.npz replaced."""
    import io

    out = tmp_path / "bad.skmf"
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(out, "w") as new:
        for name in old.namelist():
            data = old.read(name)
            if name == "skmfnet.json" and change_meta:
                meta = json.loads(data)
                change_meta(meta["fitted"])
                data = json.dumps(meta).encode()
            if name == "arrays.npz" and arrays:
                current = dict(np.load(io.BytesIO(data)))
                current.update(arrays)
                buffer = io.BytesIO()
                np.savez(buffer, **current)
                data = buffer.getvalue()
            new.writestr(name, data)
    return out


@pytest.mark.parametrize(
    "change, arrays, match",
    [
        (lambda f: f.update(item_item_size=10**6), None, "item_item_size is 1000000"),
        (lambda f: f.update(item_item_size="all"), None, "item_item_size is 'all'"),
        (None, {"item_item_items": np.arange(10**3, 10**3 + 25)}, "item_item_items are not increasing item rows"),
        (None, {"item_item": np.full((25, 25), np.nan, dtype=np.float32)}, "item_item is not finite"),
        (lambda f: f.update(item_item_weight=-1), None, "item_item_weight -1.0"),
        (lambda f: f.update(item_item_results=[{"alpha": 1}]), None, "item_item_results is malformed"),
    ],
    ids=["size-huge", "size-text", "items-out-of-range", "nan-table", "negative-weight", "results-malformed"],
)
def test_crafted_files_are_refused(saved, tmp_path, change, arrays, match):
    _, path = saved
    with pytest.raises(InvalidModelFileError, match=match):
        load_estimator(rewritten(path, tmp_path, change, arrays))


def test_a_folded_in_user_is_ranked_with_the_item_item_term_of_their_ratings(ratings):
    X, y = ratings
    est = EmbeddingMFRegressor(**FAST, item_item_alpha=20.0, item_item_weight=0.0).fit(X, y)
    items = est.item_encoder_.classes_[:3].tolist()
    est.fold_in(pd.DataFrame({"user_id": [10**6] * 3, "item_id": items}), [5.0, 4.0, 5.0])
    got = est.recommend([10**6], n=est.n_items_)
    rows = est.item_encoder_.transform(items)
    B = np.zeros((est.n_items_ + 1, est.n_items_ + 1))
    B[np.ix_(est.item_item_items_, est.item_item_items_)] = est.item_item_
    expected = pd.Series(B[rows].sum(axis=0)[1:], index=est.item_encoder_.classes_)
    assert not set(got["item"]) & set(items)  # their ratings are seen: left out
    np.testing.assert_allclose(got["score"].to_numpy(), expected.loc[got["item"]].to_numpy(), atol=1e-6)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("covered", ["every item", "some items"])
def test_the_item_item_sums_equal_the_dense_product(monkeypatch, n_threads, covered):
    """The compiled sums (by rows of B, in blocks of columns, on threads) equal X @ B, float32 rounding aside."""
    import skmfnet._item_item as item_item

    monkeypatch.setattr(item_item, "BLOCK_FLOATS", 64)  # many column blocks, several per thread
    monkeypatch.setattr(item_item, "MIN_BLOCK_COLUMNS", 3)
    rng = np.random.default_rng(3)
    n_items = 40
    X = rng.random((25, n_items)) < 0.3
    X[4] = False  # a user with no item
    seen = sp.csr_matrix(np.hstack([np.zeros((25, 1), dtype=bool), X]))
    items = np.arange(1, n_items + 1) if covered == "every item" else np.sort(rng.choice(np.arange(1, n_items + 1), 29,
                                                                                         replace=False))
    table = rng.standard_normal((len(items), len(items))).astype(np.float32)
    got = item_item.scores(seen, items, table, n_items, n_threads=n_threads)
    expected = np.zeros((25, n_items))
    expected[:, items - 1] = X[:, items - 1].astype(np.float64) @ table.astype(np.float64)
    assert got.dtype == np.float64 and got.shape == (25, n_items)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert not got[4].any()


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(indices=np.array([0, 9], dtype=np.int32)), "not a row of out"),
        (dict(indices=np.array([0, -1], dtype=np.int32)), "not a row of out"),
        (dict(indptr=np.array([0, 2, 1, 2], dtype=np.int32)), "decreases"),
        (dict(indptr=np.array([0, 1, 2, 5], dtype=np.int32)), "does not fit"),
        (dict(indptr=np.array([0, 1, 2], dtype=np.int32)), "disagree in shape"),
        (dict(out=np.zeros((2, 4), dtype=np.float32)), "disagree in shape"),
        (dict(start=2, stop=4), r"0 <= start <= stop <= 3"),
        (dict(block=0), "block >= 1"),
    ],
)
def test_the_compiled_sums_refuse_what_would_read_outside_their_arrays(change, match):
    from skmfnet._row_sums import sum_rows

    args = dict(indptr=np.array([0, 1, 2, 2], dtype=np.int32), indices=np.array([0, 1], dtype=np.int32),
                table=np.ones((3, 3), dtype=np.float32), out=np.zeros((2, 3), dtype=np.float32), start=0, stop=3,
                block=2)
    args.update(change)
    with pytest.raises(ValueError, match=match):
        sum_rows(**args)
