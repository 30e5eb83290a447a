"""Training for ranking (sampled unobserved pairs) and the most-popular ranker."""

import numpy as np
import pandas as pd
import pytest

from skmfnet import EmbeddingMFRegressor, MostPopularRanker

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


@pytest.mark.parametrize(
    "params, name",
    [(dict(negative_ratio=-1.0), "negative_ratio"), (dict(negative_weight=-0.5), "negative_weight"),
     (dict(negative_rating="low"), "negative_rating")],
)
def test_bad_ranking_parameters_are_refused_by_name(clustered_ratings, params, name):
    X, y = clustered_ratings
    with pytest.raises(ValueError, match=f"'{name}' parameter of EmbeddingMFRegressor must be"):
        EmbeddingMFRegressor(epochs=1, **params).fit(X, y)


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
