"""Synthetic explicit-feedback ratings from a seeded low-rank model."""

import numbers

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params

__all__ = ["make_ratings"]


@validate_params(
    {
        "n_users": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_items": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_ratings": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_factors": [Interval(numbers.Integral, 1, None, closed="left")],
        "noise": [Interval(numbers.Real, 0, None, closed="left")],
        "popularity_exponent": [Interval(numbers.Real, 0, None, closed="left")],
        "mean": [numbers.Real],
        "rating_scale": [tuple, None],
        "return_X_y": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_ratings(
    n_users=1000,
    n_items=500,
    n_ratings=20_000,
    *,
    n_factors=5,
    noise=0.5,
    popularity_exponent=1.0,
    mean=3.5,
    rating_scale=None,
    return_X_y=False,
    random_state=None,
):
    """Generate ratings from a low-rank model plus Gaussian noise.

    Each rating is ``mean + b_u + b_i + p_u . q_i + e`` with user and item
    biases ``b ~ N(0, 0.3^2)``, factor vectors of ``n_factors`` entries whose
    dot product has unit variance, and noise ``e ~ N(0, noise^2)``.  Which users
    rate which items follows a long-tailed (Zipf-like) popularity: the ``k``-th
    most active user and the ``k``-th most popular item are drawn with
    probability proportional to ``1 / k**popularity_exponent``, as in real
    rating data.  Every (user, item) pair occurs at most once.

    The best possible RMSE on held-out ratings is ``noise`` (when
    ``rating_scale`` is None).

    Parameters
    ----------
    n_users, n_items : int
        Number of distinct user and item ids that may occur (ids are
        ``0 .. n_users - 1`` and ``0 .. n_items - 1``; rarely drawn ones may be
        absent from the result).
    n_ratings : int
        Number of ratings; at most ``n_users * n_items``.
    n_factors : int, default=5
        Rank of the interaction part.
    noise : float, default=0.5
        Standard deviation of the Gaussian noise.
    popularity_exponent : float, default=1.0
        Zipf exponent of user activity and item popularity; 0 is uniform.
    mean : float, default=3.5
        Global mean rating.
    rating_scale : tuple (low, high) or None, default=None
        If given, ratings are rounded to whole numbers and clipped into
        ``[low, high]``, as star ratings are.
    return_X_y : bool, default=False
        If True, return ``(X, y)`` with ``X`` the ``(user_id, item_id)``
        DataFrame and ``y`` the ratings, instead of one DataFrame.
    random_state : int, RandomState instance or None, default=None
        Seed for reproducible data.

    Returns
    -------
    ratings : DataFrame with columns ``user_id``, ``item_id``, ``rating``
        Or ``(X, y)`` when ``return_X_y`` is True.

    Examples
    --------
    >>> from skmfnet.datasets import make_ratings
    >>> ratings = make_ratings(50, 40, 600, random_state=0)
    >>> ratings.shape
    (600, 3)
    >>> list(ratings.columns)
    ['user_id', 'item_id', 'rating']
    """
    if n_ratings > n_users * n_items:
        raise ValueError(
            f"n_ratings must be at most n_users * n_items = {n_users * n_items}; got {n_ratings}."
        )
    if rating_scale is not None and (len(rating_scale) != 2 or rating_scale[0] >= rating_scale[1]):
        raise ValueError(f"rating_scale must be a (low, high) pair with low < high; got {rating_scale!r}.")
    rng = check_random_state(random_state)

    def popularity(n):
        weights = 1.0 / np.arange(1, n + 1) ** popularity_exponent
        order = rng.permutation(n)  # which id is the k-th most popular
        p = np.empty(n)
        p[order] = weights / weights.sum()
        return p

    p_user, p_item = popularity(n_users), popularity(n_items)
    # Draw pairs, keep the first occurrence of each, top up until n_ratings distinct pairs.
    # Near saturation (dense small matrices), fall back to uniform draws so this terminates.
    codes = np.empty(0, dtype=np.int64)
    for attempt in range(100):
        missing = n_ratings - len(codes)
        if missing <= 0:
            break
        batch = int(missing * 1.2) + 16
        if attempt < 10:
            u = rng.choice(n_users, size=batch, p=p_user)
            i = rng.choice(n_items, size=batch, p=p_item)
        else:
            u = rng.randint(n_users, size=batch)
            i = rng.randint(n_items, size=batch)
        new = u.astype(np.int64) * n_items + i
        codes = np.concatenate([codes, new])
        _, first = np.unique(codes, return_index=True)
        codes = codes[np.sort(first)]
    else:  # pragma: no cover - only for n_ratings extremely close to n_users * n_items
        rest = np.setdiff1d(np.arange(n_users * n_items, dtype=np.int64), codes)
        codes = np.concatenate([codes, rng.permutation(rest)])
    codes = codes[:n_ratings]
    users, items = np.divmod(codes, n_items)

    user_bias = rng.normal(0.0, 0.3, n_users)
    item_bias = rng.normal(0.0, 0.3, n_items)
    scale = n_factors**-0.25  # so that p_u . q_i has unit variance
    P = rng.normal(0.0, scale, (n_users, n_factors))
    Q = rng.normal(0.0, scale, (n_items, n_factors))
    rating = mean + user_bias[users] + item_bias[items] + rng.normal(0.0, noise, n_ratings)
    for start in range(0, n_ratings, 1 << 20):  # chunks keep memory flat at 25M ratings
        chunk = slice(start, start + (1 << 20))
        rating[chunk] += np.einsum("ij,ij->i", P[users[chunk]], Q[items[chunk]])
    if rating_scale is not None:
        rating = np.clip(np.rint(rating), *rating_scale)

    X = pd.DataFrame({"user_id": users, "item_id": items})
    y = pd.Series(rating, name="rating")
    if return_X_y:
        return X, y
    return X.assign(rating=y)
