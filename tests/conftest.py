

import numpy as np
import pytest

from skmfnet.datasets import make_ratings


@pytest.fixture
def low_rank_ratings():
    """Train/test ratings drawn from a rank-3 model with noise 0.3 (the best reachable RMSE)."""
    X, y = make_ratings(
        n_users=200, n_items=150, n_ratings=12_000, n_factors=3, noise=0.3,
        popularity_exponent=0.3, return_X_y=True, random_state=0,
    )
    rng = np.random.RandomState(1)
    test = rng.rand(len(y)) < 0.2
    return X[~test], y[~test], X[test], y[test]


@pytest.fixture
def tiny_ratings():
    X, y = make_ratings(n_users=20, n_items=15, n_ratings=150, return_X_y=True, random_state=0)
    return X, y

