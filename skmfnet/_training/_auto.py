"""What ``alpha="auto"``, ``learning_rate="auto"`` and ``early_stopping="auto"`` mean.

One set of numbers does not serve every data set.  ``alpha=0.1`` with
``learning_rate=0.005`` was chosen on MovieLens 100K's training ratings: every
weaker ``alpha`` lost at least 0.003 of validation RMSE there, even at its
best epoch (``benchmarks/results/tuning/tune_defaults.json``).  On synthetic data of
the MovieLens 25M density (other seeds and sizes than the benchmark's), the
same pair stops 0.04 short of what ``alpha=0.03, learning_rate=0.002``
reaches by its sixth epoch, and ratings of every density from 350,000 to
2,750,000 preferred ``alpha`` 0.03 to 0.05 with that learning rate
(``benchmarks/results/explore/explore_scale.json``, ``explore_scale_density.json``).
No rule on the size or the density of the data separates the two cases
(MovieLens 100K is denser than the synthetic 350,000 ratings that prefer the
weaker penalty), so on large data the estimator measures instead: it trains
both pairs with early stopping on the same held-out ratings and keeps the
model that predicts them better.

That costs a second training run and a tenth of the ratings, which is why
it happens only on large fits, as scikit-learn's
``HistGradientBoostingRegressor`` turns ``early_stopping="auto"`` on only
above 10,000 samples: from :data:`AUTO_SELECTION_RATINGS` training ratings
on, where a search by the user over ``alpha`` and ``learning_rate`` is
expensive, and only on the compiled path without distribution (the plain dot
model with ``"lazy_adam"``, ``"adagrad"`` or ``"sgd"``), whose epochs are
cheap.  Below it, and whenever the user sets ``alpha`` or ``learning_rate``,
nothing is held out and the small-data pair is used: fits on MovieLens 100K
are exactly those of ``alpha=0.1, learning_rate=0.005, early_stopping=False``.
"""

__all__ = ["AUTO_SELECTION_RATINGS", "CANDIDATES", "SMALL_DATA", "resolve_auto"]

#: Training ratings from which the "auto" parameters select on held-out ratings.
AUTO_SELECTION_RATINGS = 1_000_000

#: (alpha, learning_rate) of "auto" below :data:`AUTO_SELECTION_RATINGS`.
SMALL_DATA = {"alpha": 0.1, "learning_rate": 0.005}

#: The pairs compared on held-out ratings from :data:`AUTO_SELECTION_RATINGS` on:
#: MovieLens 100K's, then the one the synthetic data of every density preferred.
CANDIDATES = (SMALL_DATA, {"alpha": 0.03, "learning_rate": 0.002})


def resolve_auto(params, n_ratings, compiled_path):
    """The (alpha, learning_rate) pairs to train, and whether to stop early.

    Parameters
    ----------
    params : dict
        The estimator's ``get_params(deep=False)``.
    n_ratings : int
        Training ratings given to fit (after dropping zero weights).
    compiled_path : bool
        Whether the parameters take the compiled path.

    Returns
    -------
    candidates : list of dict
        ``{"alpha": float, "learning_rate": float}`` to train, in order; more
        than one only when they are to be compared on held-out ratings.
    early_stopping : bool
    """
    select = (
        params["alpha"] == "auto"
        and params["learning_rate"] == "auto"
        and params["early_stopping"] in ("auto", True)
        and compiled_path
        and params["distribution"] is None
        and n_ratings >= AUTO_SELECTION_RATINGS
    )
    if select:
        return [dict(pair) for pair in CANDIDATES], True
    pair = {name: SMALL_DATA[name] if params[name] == "auto" else params[name] for name in SMALL_DATA}
    early_stopping = params["early_stopping"]
    return [pair], False if early_stopping == "auto" else bool(early_stopping)
