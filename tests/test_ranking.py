"""Training for ranking (sampled unobserved pairs) and the most-popular ranker."""

import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from skmfnet import EmbeddingMFRegressor, MostPopularRanker
from skmfnet._persistence import InvalidModelFileError

N_CLUSTERS, USERS_PER_CLUSTER, ITEMS_PER_CLUSTER = 4, 25, 30


@pytest.fixture(scope="module")
def clustered_ratings():
    """Users who rate only the items of their own cluster, with ratings unrelated to the item.

    Which items a user chooses is all there is to learn: the ratings (3, 4
    or 5 at random) say nothing about the items.  Four ratings per user are
    held out.
    """
    rng = np.random.default_rng(0)
    rows = []
    for u in range(N_CLUSTERS * USERS_PER_CLUSTER):
        cluster = u % N_CLUSTERS
        items = rng.choice(ITEMS_PER_CLUSTER, 16, replace=False) + ITEMS_PER_CLUSTER * cluster
        rows += [(f"u{u}", f"i{i}", float(rng.integers(3, 6))) for i in items]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])
    held_out = frame.groupby("user_id").head(4).index
    train = frame.drop(held_out)
    return train[["user_id", "item_id"]], train["rating"].to_numpy()


def _share_in_own_cluster(recommendations):
    user = recommendations["user"].str[1:].astype(int)
    item = recommendations["item"].str[1:].astype(int)
    return float(np.mean(user % N_CLUSTERS == item // ITEMS_PER_CLUSTER))


LEARNS = dict(n_factors=8, epochs=50, batch_size=64, learning_rate=0.02, alpha=0.01, random_state=0)


def test_sampled_pairs_teach_which_items_users_choose(clustered_ratings):
    X, y = clustered_ratings
    rating_only = EmbeddingMFRegressor(**LEARNS).fit(X, y)
    ranking = EmbeddingMFRegressor(**LEARNS, negative_ratio=3.0, negative_rating=0.0).fit(X, y)
    # the rating-only model cannot tell the clusters apart (a quarter of its
    # lists is in the user's cluster, as by chance); the sampled pairs teach it
    assert _share_in_own_cluster(rating_only.recommend(n=10)) < 0.5
    assert _share_in_own_cluster(ranking.recommend(n=10)) > 0.9


def test_sampled_pairs_of_zero_weight_leave_the_rating_objective_unchanged(clustered_ratings):
    # plain SGD: a zero weight gives the sampled pairs a zero gradient, so the
    # trajectory is that of the rating-only objective (with LazyAdam their rows
    # would still move, by their moments)
    X, y = clustered_ratings
    params = dict(n_factors=4, epochs=3, batch_size=64, optimizer="sgd", learning_rate=5.0, init_std=0.1,
                  random_state=0)
    plain = EmbeddingMFRegressor(**params).fit(X, y)
    weightless = EmbeddingMFRegressor(**params, negative_ratio=2.0, negative_weight=0.0).fit(X, y)
    weighted = EmbeddingMFRegressor(**params, negative_ratio=2.0, negative_weight=1.0).fit(X, y)
    np.testing.assert_allclose(weightless.predict(X), plain.predict(X), rtol=0, atol=1e-6)
    assert np.abs(weighted.predict(X) - plain.predict(X)).max() > 0.01


def test_sampled_pairs_pull_predictions_towards_the_imputed_rating(clustered_ratings):
    X, y = clustered_ratings
    params = dict(LEARNS, epochs=10, clip_predictions=False)
    low = EmbeddingMFRegressor(**params, negative_ratio=1.0, negative_rating=1.0).fit(X, y)
    high = EmbeddingMFRegressor(**params, negative_ratio=1.0, negative_rating=5.0).fit(X, y)
    # every (user, item) pair, most of them unobserved
    pairs = pd.DataFrame(
        [(u, i) for u in X["user_id"].unique()[:20] for i in X["item_id"].unique()], columns=["user_id", "item_id"]
    )
    assert low.predict(pairs).mean() < 3.0 < high.predict(pairs).mean()


def test_same_seed_same_predictions_with_sampled_pairs(clustered_ratings):
    X, y = clustered_ratings
    params = dict(n_factors=4, epochs=2, negative_ratio=1.5, random_state=3)
    a = EmbeddingMFRegressor(**params).fit(X, y).predict(X)
    b = EmbeddingMFRegressor(**params).fit(X, y).predict(X)
    c = EmbeddingMFRegressor(**dict(params, random_state=4)).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    "params, named",
    [
        (dict(implicit=True), "implicit=True"),
        (dict(optimizer="adam"), "optimizer='adam'"),
        (dict(interaction="concat", hidden_layer_sizes=(4,)), "interaction='concat'"),
        (dict(loss="rmse"), "loss='rmse'"),
        (dict(regularization="table"), "regularization='table'"),
    ],
)
def test_sampled_pairs_need_the_compiled_path(clustered_ratings, params, named):
    X, y = clustered_ratings
    with pytest.raises(ValueError, match=rf"negative_ratio=1\.0 trains on the compiled path only.*got .*{named}"):
        EmbeddingMFRegressor(negative_ratio=1.0, epochs=1, **params).fit(X, y)


@pytest.mark.parametrize("selection_factors", [0, 2])
def test_sampled_pairs_train_with_adagrad_on_the_compiled_path(clustered_ratings, selection_factors):
    X, y = clustered_ratings
    est = EmbeddingMFRegressor(optimizer="adagrad", learning_rate=1.0, negative_ratio=1.0, epochs=2, n_factors=4,
                               selection_factors=selection_factors, random_state=0).fit(X, y)
    assert est.engine_ == "kernel"
    assert np.all(np.isfinite(est.predict(X))) and np.all(np.diff(est.history_["loss"]) < 0)


@pytest.mark.parametrize(
    "params, name",
    [(dict(negative_ratio=-1.0), "negative_ratio"), (dict(negative_weight=-0.5), "negative_weight"),
     (dict(negative_rating="low"), "negative_rating"),
     (dict(negative_ratio=1.0, selection_factors=-1), "selection_factors"),
     (dict(negative_ratio=1.0, selection_factors=2.5), "selection_factors")],
)
def test_bad_ranking_parameters_are_refused_by_name(clustered_ratings, params, name):
    X, y = clustered_ratings
    with pytest.raises(ValueError, match=f"'{name}' parameter of EmbeddingMFRegressor must be"):
        EmbeddingMFRegressor(epochs=1, **params).fit(X, y)


# ------------------------------------------------------- the selection term
SELECTION = dict(negative_ratio=3.0, negative_rating=0.0, selection_factors=8)


def test_a_selection_term_leaves_the_rating_network_as_without_sampled_pairs(clustered_ratings):
    X, y = clustered_ratings
    rating_only = EmbeddingMFRegressor(**LEARNS).fit(X, y)
    both = EmbeddingMFRegressor(**LEARNS, **SELECTION).fit(X, y)
    for a, b in zip(both.model_.get_weights(), rating_only.model_.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    np.testing.assert_allclose(both.predict(X), rating_only.predict(X), rtol=0, atol=1e-6)
    assert both.history_["rmse"] == pytest.approx(rating_only.history_["rmse"], abs=1e-6)
    assert rating_only.user_selection_ is None and rating_only.item_selection_ is None
    assert both.user_selection_.shape == (both.n_users_ + 1, 9)
    assert both.item_selection_.shape == (both.n_items_ + 1, 9)
    assert not both.user_selection_[0].any() and not both.item_selection_[0].any()  # unknown ids


def test_a_selection_term_teaches_recommend_which_items_users_choose(clustered_ratings):
    X, y = clustered_ratings
    rating_only = EmbeddingMFRegressor(**LEARNS).fit(X, y)
    both = EmbeddingMFRegressor(**LEARNS, **SELECTION).fit(X, y)
    assert _share_in_own_cluster(rating_only.recommend(n=10)) < 0.5
    assert _share_in_own_cluster(both.recommend(n=10)) > 0.9


def test_recommend_ranks_by_the_predicted_rating_plus_the_selection_term(clustered_ratings):
    X, y = clustered_ratings
    est = EmbeddingMFRegressor(**dict(LEARNS, epochs=3), **SELECTION, clip_predictions=False).fit(X, y)
    users, items = X["user_id"].unique()[:3], X["item_id"].unique()
    recs = est.recommend(list(users), n=5, exclude_seen=False)
    S, T = est.user_selection_, est.item_selection_
    u_rows, i_rows = est.user_encoder_.transform(users), est.item_encoder_.transform(items)
    for user, u in zip(users, u_rows):
        pairs = pd.DataFrame({"user_id": user, "item_id": items})
        brute = est.predict(pairs) + T[i_rows, :-1] @ S[u, :-1] + S[u, -1] + T[i_rows, -1]
        top = items[np.argsort(-brute, kind="stable")[:5]]
        assert recs[recs.user == user]["item"].tolist() == top.tolist()
        np.testing.assert_allclose(recs[recs.user == user]["score"], np.sort(brute)[::-1][:5], rtol=1e-5)


def test_a_selection_term_needs_sampled_pairs(clustered_ratings):
    X, y = clustered_ratings
    with pytest.raises(ValueError, match=r"selection_factors=4 .* needs negative_ratio > 0; got negative_ratio=0"):
        EmbeddingMFRegressor(selection_factors=4, epochs=1).fit(X, y)


def test_a_selection_term_saves_and_loads(clustered_ratings, tmp_path):
    X, y = clustered_ratings
    est = EmbeddingMFRegressor(n_factors=4, epochs=2, random_state=0, **SELECTION).fit(X, y)
    est.save(tmp_path / "both.skmf")
    loaded = EmbeddingMFRegressor.load(tmp_path / "both.skmf")
    np.testing.assert_array_equal(loaded.item_selection_, est.item_selection_)
    pd.testing.assert_frame_equal(loaded.recommend(n=5), est.recommend(n=5))
    # a file whose parameters need the selection term but that lacks it is refused
    with zipfile.ZipFile(tmp_path / "both.skmf") as src, zipfile.ZipFile(tmp_path / "bad.skmf", "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "arrays.npz":
                with zipfile.ZipFile(io.BytesIO(data)) as npz:
                    buffer = io.BytesIO()
                    with zipfile.ZipFile(buffer, "w") as out:
                        for member in npz.infolist():
                            if "selection" not in member.filename:
                                out.writestr(member, npz.read(member))
                    data = buffer.getvalue()
            dst.writestr(info, data)
    with pytest.raises(InvalidModelFileError, match="no user_selection, which selection_factors=8 needs"):
        EmbeddingMFRegressor.load(tmp_path / "bad.skmf")


# ------------------------------------------------------------ MostPopularRanker
def test_most_popular_ranker_recommends_the_most_rated_unseen_items():
    X = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c", "c", "d"], "item_id": [1, 2, 1, 3, 1, 3, 4]})
    ranker = MostPopularRanker().fit(X)
    np.testing.assert_array_equal(ranker.item_counts_, [0, 3, 1, 2, 1])  # row 0: unknown items
    recs = ranker.recommend(["a", "d", "nobody"], n=2)
    assert recs[recs.user == "a"]["item"].tolist() == [3, 4]  # 1 and 2 were seen
    assert recs[recs.user == "d"]["item"].tolist() == [1, 3]
    assert recs[recs.user == "nobody"]["item"].tolist() == [1, 3]
    np.testing.assert_array_equal(ranker.predict(pd.DataFrame({"user_id": ["a", "z"], "item_id": [3, 99]})), [2, 0])


def test_most_popular_ranker_takes_ratings_like_the_other_estimators():
    X = [["a", 1], ["b", 1], ["b", 2]]
    with_y = MostPopularRanker().fit(X, [5, 1, 3])
    np.testing.assert_array_equal(with_y.item_counts_, MostPopularRanker().fit(X).item_counts_)
    with pytest.raises(ValueError, match="NaN"):
        MostPopularRanker().fit(X, [5, np.nan, 3])
    with pytest.raises(ValueError, match="2 columns"):
        MostPopularRanker().fit([["a", 1, 0]])



def test_a_ranking_model_saves_and_loads_with_its_parameters(clustered_ratings, tmp_path):
    X, y = clustered_ratings
    est = EmbeddingMFRegressor(n_factors=4, epochs=2, negative_ratio=2.0, negative_rating=0.5,
                               negative_weight=0.3, random_state=0).fit(X, y)
    est.save(tmp_path / "ranking.skmf")
    loaded = EmbeddingMFRegressor.load(tmp_path / "ranking.skmf")
    assert {k: loaded.get_params()[k] for k in ("negative_ratio", "negative_rating", "negative_weight")} == {
        "negative_ratio": 2.0, "negative_rating": 0.5, "negative_weight": 0.3}
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    pd.testing.assert_frame_equal(loaded.recommend(n=5), est.recommend(n=5))
