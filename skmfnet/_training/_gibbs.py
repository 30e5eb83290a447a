"""``optimizer="gibbs"``: Bayesian matrix factorization by Gibbs sampling, its samples averaged into one dot model.

The model is the estimator's plain dot model, ``y = mu + b_u + b_i + p_u . q_i + noise``,
with the Bayesian treatment of Salakhutdinov & Mnih ("Bayesian Probabilistic
Matrix Factorization using Markov Chain Monte Carlo", ICML 2008) in the form
libFM's MCMC uses (Rendle, "Factorization Machines with libFM", 2012):

* noise precision ``tau`` with a Gamma(1, 1) prior;
* each side's rows ``[b, p_1 .. p_K]`` drawn from a normal prior of one mean
  ``m_d`` and precision ``lambda_d`` per dimension, with the conjugate
  Normal-Gamma hyperprior (``m_d ~ N(0, 1 / lambda_d)``, ``lambda_d ~ Gamma(1, 1)``).

A sweep draws each side's hyperparameters given its rows, then every user
row given the item rows (a ``K + 1``-dimensional Gaussian per user: its
ratings' outer products, solved for all users at once), then every item row
given the user rows, then ``tau``.  Nothing is tuned: the penalties are
sampled, which is what Rendle, Zhang & Koren (2019) found worth 0.009 RMSE
on MovieLens 10M against SGD with its penalty searched.

The prediction is the average of ``mu + b_u + b_i + p_u . q_i`` over
``n_samples`` sweeps taken evenly after a burn-in (the first
:data:`BURN_IN_FRACTION` of the sweeps).  That average is itself a dot model:
the kept samples' factor tables side by side, each scaled by
``1 / sqrt(n_samples)``, and the mean of their biases.  So a sampled model
predicts, recommends, folds in, saves and loads as any dot model of
``n_factors * n_samples`` factors (what ``n_estimators`` does with seeds).

Sample weights ``w`` multiply each rating's precision (``tau * w``), as an
integer weight counts the rating that many times.

Written here rather than taken from a library: the samplers that exist
(libFM, myFM, PyMC models) are no dependency of skmfnet and train their own
model object; the sweep is a few numpy products over the encoded rows.
"""

import numpy as np
import scipy.sparse as sp

__all__ = ["BURN_IN_FRACTION", "fit_gibbs", "kept_sweeps", "sample_tables"]

#: The sweeps before the first kept sample: this fraction of ``epochs`` (at least one).
BURN_IN_FRACTION = 0.2
#: Gamma(shape, rate) prior of the noise precision and of each dimension's prior precision.
PRIOR_SHAPE, PRIOR_RATE = 1.0, 1.0


def kept_sweeps(sweeps, n_samples):
    """The sweeps (from 0) whose samples are averaged: ``n_samples`` spread evenly after the burn-in, the last included.

    Raises a ValueError when there are fewer sweeps after the burn-in than samples to keep.
    """
    burn = max(1, int(BURN_IN_FRACTION * sweeps))
    if sweeps - burn < n_samples:
        raise ValueError(
            f"optimizer='gibbs' keeps n_estimators={n_samples} samples from the sweeps after the burn-in "
            f"(the first {BURN_IN_FRACTION:.0%} of epochs, at least 1); epochs={sweeps} leaves {sweeps - burn}. "
            f"Use epochs >= {int(np.ceil((n_samples + 1) / (1 - BURN_IN_FRACTION)))} or fewer n_estimators."
        )
    return np.round(np.linspace(sweeps - 1, burn, n_samples)).astype(np.int64)[::-1]


def _grouping(rows, n_rows, weights):
    """Sparse (n_rows, n_ratings) matrix summing each row's ratings, weighted."""
    return sp.csr_matrix((weights, (rows, np.arange(len(rows)))), shape=(n_rows, len(rows)))


def _draw_hyper(table, rng):
    """Per-dimension prior mean and precision of a side's rows (Normal-Gamma posterior draw)."""
    n = len(table)
    mean = table.mean(axis=0)
    spread = ((table - mean) ** 2).sum(axis=0)
    shape = PRIOR_SHAPE + (n + 1) / 2
    rate = PRIOR_RATE + 0.5 * (spread + n * mean**2 / (n + 1))
    precision = rng.gamma(shape, 1.0 / rate)
    return rng.normal(n * mean / (n + 1), 1.0 / np.sqrt((n + 1) * precision)), precision


def _draw_rows(group, other, residual, tau, prior_mean, prior_precision, rng):
    """A draw of every row of one side given the other side's ``[1, q]`` features (module docstring)."""
    n_rows, dims = group.shape[0], other.shape[1]
    gram = np.empty((n_rows, dims, dims))
    for d in range(dims):  # sum over each row's ratings of x x^T, one column at a time (nnz x dims memory)
        gram[:, :, d] = group @ (other * other[:, d : d + 1])
    precision = tau * gram
    precision[:, np.arange(dims), np.arange(dims)] += prior_precision
    rhs = tau * (group @ (other * residual[:, None])) + prior_precision * prior_mean
    lower = np.linalg.cholesky(precision)
    mean = np.linalg.solve(precision, rhs[..., None])[..., 0]
    noise = np.linalg.solve(np.swapaxes(lower, 1, 2), rng.standard_normal((n_rows, dims))[..., None])[..., 0]
    return mean + noise


def sample_tables(X, y, *, n_users, n_items, n_factors, n_samples, sweeps, seed, init_std=0.01, weights=None,
                  validation=None, verbose=0, on_sweep=None):
    """Gibbs sweeps over the encoded ratings; returns (tables, history).

    Parameters
    ----------
    X : int ndarray of shape (n, 2)
        Encoded user and item rows (from 1; row 0 is the unknown id and stays zero).
    y : ndarray of shape (n,)
        Ratings minus ``mu``.
    n_samples : int
        Samples averaged (:func:`kept_sweeps`).
    weights : ndarray of shape (n,) or None
        Per-rating weights (mean 1).
    validation : tuple (X_val, y_val) or None
        Encoded, centred ratings: ``val_rmse`` of the average of the samples
        kept so far (of the current sample before the first is kept).
    on_sweep : callable or None
        Called with the sweep (from 0) after each; may raise to stop.

    Returns
    -------
    tables : dict
        ``user_factors`` (n_users + 1, n_factors * n_samples), ``item_factors``,
        ``user_bias`` (n_users + 1,), ``item_bias``: float32, as the dot model's
        layers hold them.
    history : dict of list of float
        Per sweep ``loss`` (weighted mean squared error of the sweep's sample on
        the training ratings) and ``rmse`` (its root), and ``val_rmse``.
    """
    from ._schedule import TrainingDivergedError

    rng = np.random.default_rng(seed)
    users, items = X[:, 0].astype(np.int64), X[:, 1].astype(np.int64)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    by_user, by_item = _grouping(users, n_users + 1, w), _grouping(items, n_items + 1, w)
    dims = n_factors + 1  # [bias, factors]
    P, Q = np.zeros((n_users + 1, dims)), np.zeros((n_items + 1, dims))
    P[1:, 1:] = rng.normal(0.0, init_std, (n_users, n_factors))
    Q[1:, 1:] = rng.normal(0.0, init_std, (n_items, n_factors))
    tau = 1.0
    keep = set(kept_sweeps(sweeps, n_samples).tolist())
    kept = {"user_factors": [], "item_factors": [], "user_bias": [], "item_bias": []}
    history = {"loss": [], "rmse": []}
    if validation is not None:
        history["val_rmse"] = []
        val_users, val_items = (np.asarray(validation[0][:, k], dtype=np.int64) for k in (0, 1))
        val_y, val_sum = np.asarray(validation[1], dtype=np.float64), None
    for sweep in range(sweeps):
        for table, group, other_table, rows, others in ((P, by_user, Q, users, items), (Q, by_item, P, items, users)):
            prior_mean, prior_precision = _draw_hyper(table[1:], rng)
            features = np.column_stack([np.ones(len(y)), other_table[others, 1:]])
            table[:] = _draw_rows(group, features, y - other_table[others, 0], tau, prior_mean, prior_precision, rng)
            table[0] = 0.0  # the unknown id
        error = y - (P[users, 0] + Q[items, 0] + np.einsum("ij,ij->i", P[users, 1:], Q[items, 1:]))
        squared = float(np.sum(w * error**2))
        if not (np.isfinite(squared) and np.isfinite(P).all() and np.isfinite(Q).all()):
            raise TrainingDivergedError(
                f"optimizer='gibbs': sweep {sweep + 1} drew non-finite values (ratings far off any usual scale?)"
            )
        tau = rng.gamma(PRIOR_SHAPE + w.sum() / 2, 1.0 / (PRIOR_RATE + squared / 2))
        history["loss"].append(squared / w.sum())
        history["rmse"].append(float(np.sqrt(squared / w.sum())))
        if sweep in keep:
            kept["user_factors"].append(P[:, 1:].astype(np.float32))
            kept["item_factors"].append(Q[:, 1:].astype(np.float32))
            kept["user_bias"].append(P[:, 0].copy())
            kept["item_bias"].append(Q[:, 0].copy())
        if validation is not None:
            current = P[val_users, 0] + Q[val_items, 0] + np.einsum("ij,ij->i", P[val_users, 1:], Q[val_items, 1:])
            if sweep in keep:
                val_sum = current if val_sum is None else val_sum + current
            average = current if val_sum is None else val_sum / len(kept["user_bias"])
            history["val_rmse"].append(float(np.sqrt(np.mean((average - val_y) ** 2))))
        if verbose:
            line = f"sweep {sweep + 1}/{sweeps}: rmse {history['rmse'][-1]:.4f}"
            print(line + (f", val_rmse {history['val_rmse'][-1]:.4f}" if validation is not None else ""))
        if on_sweep is not None:
            on_sweep(sweep)
    scale = np.float32(1.0 / np.sqrt(n_samples))
    tables = {
        "user_factors": np.hstack(kept["user_factors"]) * scale,
        "item_factors": np.hstack(kept["item_factors"]) * scale,
        "user_bias": np.mean(kept["user_bias"], axis=0).astype(np.float32),
        "item_bias": np.mean(kept["item_bias"], axis=0).astype(np.float32),
    }
    return tables, history


def fit_gibbs(model, X, y, *, n_factors, n_samples, init_std, sweeps, seed, weights=None, validation=None,
              verbose=0):
    """:func:`sample_tables` for a compiled dot model, whose four tables then hold the average; returns the history.

    The estimator builds the model's factor tables ``n_factors * n_samples`` wide.
    """
    layers = {name: model.get_layer(name) for name in ("user_factors", "item_factors", "user_bias", "item_bias")}
    n_users, width = layers["user_factors"].embeddings.shape
    n_items = layers["item_factors"].embeddings.shape[0]
    if n_factors * n_samples != width:
        raise ValueError(f"the network's factor tables are {width} wide, not n_factors * n_estimators")
    tables, history = sample_tables(
        np.asarray(X), y, n_users=n_users - 1, n_items=n_items - 1, n_factors=n_factors, n_samples=n_samples,
        sweeps=sweeps, seed=seed, init_std=init_std, weights=weights, validation=validation, verbose=verbose,
    )
    for name, layer in layers.items():
        table = tables[name]
        layer.embeddings.assign(table if table.ndim == 2 else table[:, None])
    return history
