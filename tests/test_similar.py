"""similar_items / similar_users: cosine neighbours of the learned factors."""

import numpy as np
import pandas as pd
import pytest

from skmfnet import EmbeddingMFRegressor
from skmfnet._similar import factor_vectors

N_CLUSTERS, USERS_PER_CLUSTER, ITEMS_PER_CLUSTER = 3, 20, 12


@pytest.fixture(scope="module")
def planted():
    """Users love the items of their own cluster (5) and dislike the others (1).

    Each user rates a random half of all items, so every item is rated by
    users of every cluster and only its cluster explains its ratings.
    """
    rng = np.random.default_rng(0)
    n_items = N_CLUSTERS * ITEMS_PER_CLUSTER
    rows = []
    for u in range(N_CLUSTERS * USERS_PER_CLUSTER):
        for i in rng.choice(n_items, n_items // 2, replace=False):
            rows.append((f"u{u}", f"i{i}", 5.0 if u % N_CLUSTERS == i // ITEMS_PER_CLUSTER else 1.0))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])
    X, y = frame[["user_id", "item_id"]], frame["rating"].to_numpy()
    est = EmbeddingMFRegressor(n_factors=8, epochs=40, batch_size=64, learning_rate=0.02, alpha=0.01,
                               random_state=0).fit(X, y)
    return X, y, est


def _cluster_of_item(ids):
    return pd.Series(ids).str[1:].astype(int).to_numpy() // ITEMS_PER_CLUSTER


def _cluster_of_user(ids):
    return pd.Series(ids).str[1:].astype(int).to_numpy() % N_CLUSTERS


def test_the_neighbours_of_an_item_are_the_items_of_its_planted_cluster(planted):
    _, _, est = planted
    items = [f"i{i}" for i in range(N_CLUSTERS * ITEMS_PER_CLUSTER)]
    near = est.similar_items(items, n=ITEMS_PER_CLUSTER - 1)  # as many as its cluster has
    assert list(near.columns) == ["item", "rank", "similar_item", "similarity"]
    assert len(near) == len(items) * (ITEMS_PER_CLUSTER - 1)
    same = _cluster_of_item(near["item"]) == _cluster_of_item(near["similar_item"])
    assert same.mean() > 0.95
    assert (near["item"] != near["similar_item"]).all()  # never itself


def test_the_neighbours_of_a_user_are_the_users_of_its_planted_cluster(planted):
    _, _, est = planted
    near = est.similar_users(["u0", "u1", "u2"], n=5)
    assert list(near.columns) == ["user", "rank", "similar_user", "similarity"]
    assert (_cluster_of_user(near["user"]) == _cluster_of_user(near["similar_user"])).all()


def test_similarities_are_the_cosines_of_the_item_factors_best_first(planted):
    _, _, est = planted
    Q = est.model_.get_layer("item_factors").get_weights()[0].astype(np.float64)
    near = est.similar_items(["i5", "i20"], n=4)
    for item, group in near.groupby("item", sort=False):
        q = Q[est.item_encoder_.transform([item])[0]]
        others = Q[est.item_encoder_.transform(list(group["similar_item"]))]
        cosines = others @ q / (np.linalg.norm(others, axis=1) * np.linalg.norm(q))
        np.testing.assert_allclose(group["similarity"], cosines, rtol=1e-6)
        assert group["rank"].tolist() == [1, 2, 3, 4]
        assert np.all(np.diff(group["similarity"]) <= 0)
        # nothing left out is more similar than the last one kept
        rest = np.delete(np.arange(1, len(Q)), est.item_encoder_.transform([item])[0] - 1)
        all_cos = Q[rest] @ q / (np.linalg.norm(Q[rest], axis=1) * np.linalg.norm(q))
        assert np.sort(all_cos)[-4] == pytest.approx(group["similarity"].iloc[-1], rel=1e-6)


def test_a_request_for_more_neighbours_than_there_are_gets_every_other_item(planted):
    _, _, est = planted
    near = est.similar_items("i0", n=1000)
    assert len(near) == est.n_items_ - 1 and set(near["similar_item"]) == set(est.item_encoder_.classes_) - {"i0"}


def test_unknown_ids_are_refused_by_name(planted):
    _, _, est = planted
    with pytest.raises(ValueError, match=r"items: 2 of the 3 ids given were not seen in fit.*\['nope', 'never'\]"):
        est.similar_items(["i0", "nope", "never"])
    with pytest.raises(ValueError, match=r"users: 1 of the 1 ids given were not seen in fit"):
        est.similar_users("nobody")
    with pytest.raises(ValueError, match="'n' parameter"):
        est.similar_items("i0", n=0)


@pytest.mark.parametrize("implicit", [True, "both"])
def test_the_vectors_compared_are_those_the_network_multiplies(implicit):
    # side information on both sides and SVD++'s implicit term (with "both" its item-side twin in q_i):
    # the network's centred output is p_u . q_i + b_u + b_i with the same vectors
    rng = np.random.default_rng(1)
    n = 300
    X = pd.DataFrame({"user": rng.integers(0, 30, n), "item": rng.integers(0, 20, n)})
    X["group"] = np.array(["a", "b", "c"])[X["user"] % 3]  # one label per user, as similar_users sees it
    X["genres"] = [["x", "y"] if i % 2 else ["z"] for i in X["item"]]
    y = rng.integers(1, 6, n).astype(float)
    est = EmbeddingMFRegressor(n_factors=4, epochs=2, user_features=["group"], item_features=["genres"],
                               implicit=implicit, clip_predictions=False, random_state=0).fit(X, y)
    P, Q = factor_vectors(est, "user"), factor_vectors(est, "item")
    b_u, b_i = factor_vectors(est, "user", "bias")[:, 0], factor_vectors(est, "item", "bias")[:, 0]
    u, i = est.user_encoder_.transform(X["user"]), est.item_encoder_.transform(X["item"])
    expected = est.mu_ + np.sum(P[u] * Q[i], axis=1) + b_u[u] + b_i[i]
    np.testing.assert_allclose(est.predict(X), expected, rtol=0, atol=1e-5)
    near = est.similar_users(X["user"].iloc[0], n=3)
    assert len(near) == 3
