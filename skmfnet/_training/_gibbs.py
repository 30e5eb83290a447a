"""``optimizer="gibbs"``: Bayesian matrix factorization by Gibbs sampling, its samples averaged into one dot model.

The model is the estimator's dot model, ``y = mu + b_u + b_i + p_u . q_i + noise``,
with the Bayesian treatment of Salakhutdinov & Mnih ("Bayesian Probabilistic
Matrix Factorization using Markov Chain Monte Carlo", ICML 2008) in the form
libFM's MCMC uses (Rendle, "Factorization Machines with libFM", 2012):

* noise precision ``tau`` with a Gamma(1, 1) prior;
* each side's rows ``[b, p_1 .. p_K]`` drawn from a normal prior of one mean
  ``m_d`` and precision ``lambda_d`` per dimension, with the conjugate
  Normal-Gamma hyperprior (``m_d ~ N(0, 1 / lambda_d)``, ``lambda_d ~ Gamma(1, 1)``).

where, with side information, ``[b_u, p_u]`` also holds the mean of the rows
of the user's labels of each user feature (and ``[b_i, q_i]`` of the item's),
as in the network (:mod:`skmfnet._network`); with ``implicit``, ``p_u`` also
holds SVD++'s term ``|N(u)|^-1/2 sum_{j in N(u)} y_j`` and ``q_i`` its item-side
twin, whose rows have priors of their own like every table's
(:class:`_ImplicitTable`); with ``time_column``, the score also holds
Koren's time-aware biases (:class:`_TimeTerms`).

A sweep draws, for each table of the user side in turn (the ids', then each
feature's, then the implicit term's), its hyperparameters given its rows and then its rows given
everything else: a ``K + 1``-dimensional Gaussian per row (its ratings'
outer products, solved for all rows at once; a multi-valued feature's
labels share ratings, so they are drawn one label at a time); then the item
side likewise, then the time effects, then ``tau``.  Nothing is tuned: the penalties are
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
model object; the sweep is a few numpy products over the encoded rows and
the rows' Gaussian draws, compiled in :mod:`skmfnet._training._gibbs_rows`.
"""

import numpy as np
import scipy.sparse as sp

from .._scoring import fold_members
from .._time import drift_and_bins
from ._gibbs_rows import draw_gaussian_rows, draw_implicit_rows, row_grams

__all__ = ["BURN_IN_FRACTION", "fit_gibbs", "kept_sweeps", "sample_tables"]

#: The implicit term's key in :func:`sample_tables`'s tables, and its item-side twin's.
IMPLICIT, ITEM_IMPLICIT = "implicit", "item_implicit"

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


def _csr_arrays(group):
    """``group``'s (indptr, indices, data) as the compiled loops take them (int64, int64, float64)."""
    return (group.indptr.astype(np.int64), group.indices.astype(np.int64),
            np.ascontiguousarray(group.data, dtype=np.float64))


def _grouped(table, n_rows, w, known_only):
    """A table's ratings grouped by its rows (``_grouping`` of its first codes, weighted by ``w``, zero for the
    unknown code 0 if ``known_only``) and their :func:`_csr_arrays`: built at the first sweep, kept in
    ``table.grouped`` for the same ``w``."""
    if table.grouped is None or table.grouped[0] is not w:
        rows = table.codes[:, 0]
        group = _grouping(rows, n_rows, w * (rows > 0) if known_only else w)
        table.grouped = (w, group, _csr_arrays(group))
    return table.grouped[1:]


def _draw_rows(group, other, residual, tau, prior_mean, prior_precision, rng, arrays=None):
    """A draw of every row of one side given the other side's ``[1, q]`` features (module docstring).

    ``group``: CSR (rows, ratings) of weights; each row's precision sums
    ``w x x^T`` over its ratings, plus the prior's.  Compiled:
    :func:`skmfnet._training._gibbs_rows.draw_gaussian_rows`, with one
    standard normal vector per row from ``rng``; ``arrays``: ``group``'s
    :func:`_csr_arrays` if already at hand.
    """
    normals = rng.standard_normal((group.shape[0], other.shape[1]))
    out = np.empty_like(normals)
    draw_gaussian_rows(*(arrays or _csr_arrays(group)), np.ascontiguousarray(other, dtype=np.float64),
                       np.ascontiguousarray(residual, dtype=np.float64), float(tau),
                       np.asarray(prior_mean, dtype=np.float64), np.asarray(prior_precision, dtype=np.float64),
                       normals, out)
    return out


def _grams(arrays, other):
    """Per row of a group (its :func:`_csr_arrays`), ``sum w x x^T`` over its ratings' ``other`` rows (compiled)."""
    gram = np.empty((len(arrays[0]) - 1, other.shape[1], other.shape[1]))
    row_grams(*arrays, np.ascontiguousarray(other, dtype=np.float64), gram)
    return gram


def _contribution(table, codes):
    """Per rating, the mean of ``table``'s rows of its known codes: shape (n, dims).

    Row 0 of every table (the unknown id, the missing label) is zero, so the
    codes 0 add nothing to the sum and count for nothing in the mean.
    """
    if codes.shape[1] == 1:
        return table[codes[:, 0]]
    return table[codes].sum(axis=1) / np.maximum((codes > 0).sum(axis=1), 1)[:, None]


def _row_dot(a, x):
    """``a[:, 0] + a[:, 1:] . x[:, 1:]`` per row (``x[:, 0]`` is 1): a side's share of the score."""
    return np.einsum("nd,nd->n", a, x)


class _Table:
    """One sampled table: a side's ids (``codes`` of one column) or one of its features (several for multi-valued)."""

    def __init__(self, name, side, n_rows, codes, dims):
        self.name, self.side, self.codes = name, side, codes
        self.table = np.zeros((n_rows, dims))
        self.grouped = None  # (weights, CSR arrays of the rows' ratings): the same at every sweep
        self.labels = None  # multi-valued: (rating positions, averaging weights) of each label, drawn in turn
        if codes.shape[1] > 1:
            known = codes > 0
            share = known / np.maximum(known.sum(axis=1), 1)[:, None]
            by_label = sp.csr_matrix((share[known], (codes[known], np.nonzero(known)[0])), shape=(n_rows, len(codes)))
            by_label.sum_duplicates()
            self.labels = [(by_label.indices[by_label.indptr[l] : by_label.indptr[l + 1]],
                            by_label.data[by_label.indptr[l] : by_label.indptr[l + 1]]) for l in range(n_rows)]

    def draw(self, x, target, contribution, w, tau, rng):
        """Draw the table given the other side's ``x`` and ``target`` (the rating less every other table's share)."""
        prior_mean, prior_precision = _draw_hyper(self.table[1:], rng)
        if self.labels is None:  # one code per rating: rows independent given the rest, drawn at once
            group, arrays = _grouped(self, len(self.table), w, known_only=True)
            self.table[:] = _draw_rows(group, x, target, tau, prior_mean, prior_precision, rng, arrays)
        else:  # several codes per rating: one label at a time, the others' shares as they stand
            contribution = contribution.copy()
            for label in range(1, len(self.table)):
                at, share = self.labels[label]
                if not len(at):  # a label no training rating has: a draw from the prior
                    self.table[label] = prior_mean + rng.standard_normal(len(prior_mean)) / np.sqrt(prior_precision)
                    continue
                old = self.table[label].copy()
                own = share[:, None] * x[at]
                rest = target[at] - _row_dot(contribution[at], x[at]) + own @ old
                group = sp.csr_matrix(w[at][None, :])
                self.table[label] = _draw_rows(group, own, rest, tau, prior_mean, prior_precision, rng)[0]
                contribution[at] += share[:, None] * (self.table[label] - old)
        self.table[0] = 0.0  # the unknown id, the missing label
        return self.contribution(self.codes)

    def contribution(self, codes):
        """Per rating (``codes``: its codes of this table), the table's share: see :func:`_contribution`."""
        return _contribution(self.table, codes)


class _ImplicitTable:
    """SVD++'s implicit term, ``|N(u)|^-1/2 sum_{j in N(u)} y_j`` added to the factors of each rating's user.

    ``history``: CSR (user rows, item rows) of the training pairs, ``N(u)``
    per user row.  The table holds one ``[0, y_j]`` row per item row (the
    term has no bias; row 0, the unknown item, stays zero).

    The rows ``y_j`` share ratings (every rating of every user who rated
    ``j``), so they are drawn one at a time, each given the others (a Gibbs
    step per row), without going back to the ratings: with ``G_u`` the
    weighted sum of ``q_i q_i^T`` over ``u``'s ratings and ``g_u`` that of
    ``q_i e_ui`` (``e`` the residuals), ``y_j``'s conditional has precision
    ``Lambda + tau sum_u c_u^2 G_u`` and linear term
    ``Lambda m + tau sum_u c_u (g_u + c_u G_u y_j)`` over the users ``u`` who
    rated ``j`` (``c_u = |N(u)|^-1/2``), and a new draw moves ``g_u`` by
    ``-c_u G_u (y_j' - y_j)``.  A sweep costs ``K^2`` per training pair,
    as Rendle's relation blocks do (libFM, "Scaling factorization machines
    to relational data", VLDB 2013) for the same features.

    The item-side twin (``|N(i)|^-1/2 sum_{v in N(i)} z_v`` added to ``q_i``)
    is the same table with users and items swapped: ``history`` over item
    rows of user rows, ``codes`` each rating's item row, ``x`` the users'.
    """

    def __init__(self, name, side, history, n_labels, codes, dims):
        self.name, self.side, self.codes = name, side, codes  # codes: (n, 1), each rating's user (item) row
        counts = np.diff(history.indptr)
        scale = np.repeat(1.0 / np.sqrt(np.maximum(counts, 1)), counts)
        self.history = sp.csr_matrix((scale, history.indices, history.indptr), shape=(history.shape[0], n_labels))
        by_label = self.history.T.tocsr()  # the owners of each row, as the compiled loop takes them
        self.by_label = (by_label.indptr.astype(np.int64), by_label.indices.astype(np.int32),
                         by_label.data.astype(np.float64))
        self.table = np.zeros((n_labels, dims))
        self.grouped = None  # as _Table's

    def contribution(self, codes):
        """Per rating (``codes``: its user row, its item row for the twin), the term's ``[0, sum]`` row."""
        return (self.history @ self.table)[codes[:, 0]]

    def draw(self, x, target, contribution, w, tau, rng):
        """Draw the table given the other side's ``x`` and ``target`` (the rating less every other table's share)."""
        factors = x[:, 1:]
        group, arrays = _grouped(self, self.history.shape[0], w, known_only=False)
        gram = _grams(arrays, factors)
        g = group @ (factors * (target - _row_dot(contribution, x))[:, None])
        prior_mean, prior_precision = _draw_hyper(self.table[1:, 1:], rng)
        y = np.ascontiguousarray(self.table[:, 1:])
        draw_implicit_rows(*self.by_label, gram, np.ascontiguousarray(g), y, float(tau), prior_mean,
                           prior_precision, rng.standard_normal(y.shape))
        self.table[:, 1:] = y
        return self.contribution(self.codes)


class _TimeTerms:
    """Koren's time-aware biases ``b_{i, Bin(t)} + a_u dev_u(t)`` (:mod:`skmfnet._time`), sampled.

    Every bin bias and every drift is a scalar with a Gaussian conditional
    given the rest (one regression on its ratings' residuals, with ``dev_u(t)``
    as the drift's covariate); each of the two tables has a Normal-Gamma prior
    of its own.  Rows of unknown ids (row 0) stay zero.
    """

    def __init__(self, users, items, codes, user_mean, n_bins, n_users, n_items):
        self.user_mean, self.n_bins = np.asarray(user_mean, dtype=np.float64), int(n_bins)
        self.bin_bias = np.zeros((n_items + 1, self.n_bins))
        self.user_drift = np.zeros(n_users + 1)
        # the training ratings' covariates, the same at every sweep
        self.users = users
        self.drift, bins, self.known = drift_and_bins(users, codes, self.user_mean, self.n_bins)
        self.cells = items * self.n_bins + bins  # each rating's entry of bin_bias, flattened

    def training_share(self):
        """Per training rating, the time terms' part of the score (0 for an unknown time)."""
        return self.known * (self.bin_bias.reshape(-1)[self.cells] + self.user_drift[self.users] * self.drift)

    def share(self, users, items, codes):
        """Per rating, the time terms' part of the score (0 for an unknown time)."""
        drift, bins, known = drift_and_bins(users, codes, self.user_mean, self.n_bins)
        return known * (self.bin_bias[items, bins] + self.user_drift[users] * drift)

    def draw(self, residual, w, tau, rng):
        """Draw both tables given ``residual``: the ratings less everything but the time terms."""
        weight = w * self.known
        flat = self.bin_bias.reshape(-1)
        e = residual - self.known * self.user_drift[self.users] * self.drift
        flat[:] = _draw_scalars(flat, self.cells, weight, np.ones(len(e)), e, tau, first=self.n_bins, rng=rng)
        e = residual - self.known * flat[self.cells]
        self.user_drift[:] = _draw_scalars(self.user_drift, self.users, weight, self.drift, e, tau, first=1, rng=rng)


def _draw_scalars(table, index, w, x, e, tau, *, first, rng):
    """Each entry of ``table`` given the ratings it enters as ``table[index] * x`` (residuals ``e``); from ``first``."""
    prior_mean, prior_precision = _draw_hyper(table[first:, None], rng)
    precision = prior_precision + tau * np.bincount(index, weights=w * x * x, minlength=len(table))
    rhs = prior_precision * prior_mean + tau * np.bincount(index, weights=w * x * e, minlength=len(table))
    out = rhs / precision + rng.standard_normal(len(table)) / np.sqrt(precision)
    out[:first] = 0.0
    return out


def sample_tables(X, y, *, n_users, n_items, n_factors, n_samples, sweeps, seed, init_std=0.01, weights=None,
                  features=(), implicit=None, item_implicit=None, time=None, validation=None, verbose=0,
                  on_sweep=None):
    """Gibbs sweeps over the encoded ratings; returns (tables, history).

    Parameters
    ----------
    X : int ndarray of shape (n, 2 + feature columns)
        Encoded user and item rows (from 1; row 0 is the unknown id and
        stays zero), then the codes of each feature (``features``).
    y : ndarray of shape (n,)
        Ratings minus ``mu``.
    n_samples : int
        Samples averaged (:func:`kept_sweeps`).
    weights : ndarray of shape (n,) or None
        Per-rating weights (mean 1).
    features : sequence of (side, n_labels, width)
        Side information as :func:`skmfnet._network.build_network` takes it
        (user features, then item features, in the columns' order): each adds
        to its side's ``[b, p]`` the mean of its labels' rows, drawn like the
        ids' rows (a multi-valued feature's labels one at a time).
    implicit : tuple (indptr, indices) or None
        ``N(u)`` of SVD++'s implicit term (CSR over the ``n_users + 1`` user
        rows, of item rows), as the network's implicit layer holds it; None:
        no implicit term.  Drawn by :class:`_ImplicitTable`.
    item_implicit : tuple (indptr, indices) or None
        ``N(i)`` of its item-side twin (over the ``n_items + 1`` item rows,
        of user rows), as the network's ``item_implicit_feedback`` layer holds it.
    time : tuple (n_bins, user_mean) or None
        Koren's time-aware biases (:class:`_TimeTerms`), with ``X``'s last
        column each rating's time code, as the network's ``time_effects``
        layer takes them; None: none.
    validation : tuple (X_val, y_val) or None
        Encoded, centred ratings: ``val_rmse`` of the average of the samples
        kept so far (of the current sample before the first is kept).
    on_sweep : callable or None
        Called with the sweep (from 0) after each; may raise to stop.

    Returns
    -------
    tables : dict
        Per table of the network (``user_factors``, ``user_bias``,
        ``item_factors``, ``item_bias``, then ``{side}_feature_{k}_factors``
        and ``_bias``): the kept samples' factors side by side, each scaled by
        ``1 / sqrt(n_samples)`` (float32, ``n_factors * n_samples`` wide), and
        their mean bias (float32, one column); with ``implicit``, also
        ``implicit`` (``item_implicit``): the kept samples' ``y`` (``z``) side
        by side, scaled so; with ``time``, ``item_bin_bias`` and
        ``user_drift``: the kept samples' mean.
    history : dict of list of float
        Per sweep ``loss`` (weighted mean squared error of the sweep's sample on
        the training ratings) and ``rmse`` (its root), and ``val_rmse``.
    """
    from ._schedule import TrainingDivergedError

    rng = np.random.default_rng(seed)
    X = np.asarray(X)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    dims = n_factors + 1  # [bias, factors]

    def layout(rows):
        """(name, side, n_rows, codes) of every table, for encoded rows."""
        out = [("user", "user", n_users + 1, rows[:, 0:1]), ("item", "item", n_items + 1, rows[:, 1:2])]
        start = 2
        for k, (side, n_labels, width) in enumerate(features):
            out.append((f"{side}_feature_{k}", side, int(n_labels) + 1, rows[:, start : start + int(width)]))
            start += int(width)
        return out

    tables = [_Table(name, side, n_rows, codes.astype(np.int64), dims) for name, side, n_rows, codes in layout(X)]
    implicit_terms = [(name, side, column, arrays, shape) for name, side, column, arrays, shape in (
        (IMPLICIT, "user", 0, implicit, (n_users + 1, n_items + 1)),
        (ITEM_IMPLICIT, "item", 1, item_implicit, (n_items + 1, n_users + 1))) if arrays is not None]
    for name, side, column, (indptr, indices), shape in implicit_terms:
        history = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=shape)
        tables.append(_ImplicitTable(name, side, history, shape[1], X[:, column : column + 1].astype(np.int64), dims))
    for t in tables[:2]:  # the ids' factors start small and random (biases and features at zero)
        t.table[1:, 1:] = rng.normal(0.0, init_std, (len(t.table) - 1, n_factors))
    shares = {t.name: t.contribution(t.codes) for t in tables}
    times, time_share = None, np.zeros(len(y))
    if time is not None:
        times = _TimeTerms(X[:, 0].astype(np.int64), X[:, 1].astype(np.int64), X[:, -1].astype(np.int64), time[1],
                           time[0], n_users, n_items)
        kept_time = {"item_bin_bias": [], "user_drift": []}
    tau = 1.0
    keep = set(kept_sweeps(sweeps, n_samples).tolist())
    kept = {t.name: [] for t in tables}
    history = {"loss": [], "rmse": []}
    if validation is not None:
        history["val_rmse"] = []
        val_codes = [codes.astype(np.int64) for _, _, _, codes in layout(np.asarray(validation[0]))]
        val_codes += [np.asarray(validation[0])[:, column : column + 1].astype(np.int64)
                      for _, _, column, _, _ in implicit_terms]
        val_y, val_sum = np.asarray(validation[1], dtype=np.float64), None
        val_rows = np.asarray(validation[0]).astype(np.int64)

    def side_total(side, share_of):
        """The sum of the side's tables' shares (read only: a side of one table gives its share itself)."""
        first, *more = (share_of[t.name] for t in tables if t.side == side)
        return sum(more, first) if more else first

    def score(share_of):
        user, item = side_total("user", share_of), side_total("item", share_of)
        return _row_dot(user, np.column_stack([np.ones(len(item)), item[:, 1:]])) + item[:, 0]

    for sweep in range(sweeps):
        for side, other in (("user", "item"), ("item", "user")):
            total = side_total(other, shares)
            x = np.column_stack([np.ones(len(y)), total[:, 1:]])
            target = y - total[:, 0] - time_share
            own = side_total(side, shares)
            side_tables = [t for t in tables if t.side == side]
            if len(side_tables) == 1:  # the rest of the side is nothing: no product with x to subtract
                t = side_tables[0]
                shares[t.name] = t.draw(x, target, shares[t.name], w, tau, rng)
                continue
            for t in side_tables:
                rest = own - shares[t.name]
                shares[t.name] = t.draw(x, target - _row_dot(rest, x), shares[t.name], w, tau, rng)
                own = rest + shares[t.name]
        base = score(shares)
        if times is not None:
            times.draw(y - base, w, tau, rng)
            time_share = times.training_share()
        error = y - base - time_share
        squared = float(np.sum(w * error**2))
        if not (np.isfinite(squared) and all(np.isfinite(t.table).all() for t in tables)):
            raise TrainingDivergedError(
                f"optimizer='gibbs': sweep {sweep + 1} drew non-finite values (ratings far off any usual scale?)"
            )
        tau = rng.gamma(PRIOR_SHAPE + w.sum() / 2, 1.0 / (PRIOR_RATE + squared / 2))
        history["loss"].append(squared / w.sum())
        history["rmse"].append(float(np.sqrt(squared / w.sum())))
        if sweep in keep:
            for t in tables:
                kept[t.name].append(t.table.copy())
            if times is not None:
                kept_time["item_bin_bias"].append(times.bin_bias.copy())
                kept_time["user_drift"].append(times.user_drift[:, None].copy())
        if validation is not None:
            current = score({t.name: t.contribution(codes) for t, codes in zip(tables, val_codes)})
            if times is not None:
                current = current + times.share(val_rows[:, 0], val_rows[:, 1], val_rows[:, -1])
            if sweep in keep:
                val_sum = current if val_sum is None else val_sum + current
            average = current if val_sum is None else val_sum / len(kept["user"])
            history["val_rmse"].append(float(np.sqrt(np.mean((average - val_y) ** 2))))
        if verbose:
            line = f"sweep {sweep + 1}/{sweeps}: rmse {history['rmse'][-1]:.4f}"
            print(line + (f", val_rmse {history['val_rmse'][-1]:.4f}" if validation is not None else ""))
        if on_sweep is not None:
            on_sweep(sweep)
    out = {}
    for t in tables:
        factors, bias = fold_members([s[:, 1:] for s in kept[t.name]], [s[:, 0] for s in kept[t.name]])
        if t.name in (IMPLICIT, ITEM_IMPLICIT):
            out[t.name] = factors
        else:
            out[f"{t.name}_factors"], out[f"{t.name}_bias"] = factors, bias
    if times is not None:
        out.update({name: np.mean(samples, axis=0).astype(np.float32) for name, samples in kept_time.items()})
    return out, history


def fit_gibbs(model, X, y, *, n_factors, n_samples, init_std, sweeps, seed, features=(), weights=None,
              validation=None, verbose=0):
    """:func:`sample_tables` for a compiled dot model, whose tables then hold the average; returns the history.

    The estimator builds the model's factor tables ``n_factors * n_samples``
    wide; ``features`` as :func:`sample_tables` (and the network) take them.
    With an implicit layer (either side), its ``N(u)`` (``N(i)``) is the
    term's history and its ``y`` receives the average.
    """
    from .._network import IMPLICIT as IMPLICIT_LAYER
    from .._network import ITEM_IMPLICIT as ITEM_IMPLICIT_LAYER
    from .._network import TIME as TIME_LAYER

    width = model.get_layer("user_factors").embeddings.shape[1]
    if n_factors * n_samples != width:
        raise ValueError(f"the network's factor tables are {width} wide, not n_factors * n_estimators")
    layers = {layer.name: layer for layer in model.layers}
    key_of = {IMPLICIT_LAYER: IMPLICIT, ITEM_IMPLICIT_LAYER: ITEM_IMPLICIT}
    histories = {}
    for name, key in key_of.items():
        if name in layers:
            indptr = layers[name].indptr.numpy().astype(np.int64)
            histories[key] = (indptr, layers[name].indices.numpy()[: indptr[-1]].astype(np.int64))
    time = None
    if TIME_LAYER in layers:
        time = (layers[TIME_LAYER].n_bins, layers[TIME_LAYER].user_mean.numpy())
    tables, history = sample_tables(
        X, y, n_users=model.get_layer("user_factors").embeddings.shape[0] - 1,
        n_items=model.get_layer("item_factors").embeddings.shape[0] - 1, n_factors=n_factors,
        n_samples=n_samples, sweeps=sweeps, seed=seed, init_std=init_std, weights=weights, features=features,
        implicit=histories.get(IMPLICIT), item_implicit=histories.get(ITEM_IMPLICIT), time=time,
        validation=validation, verbose=verbose,
    )
    for name, table in tables.items():
        if name in (IMPLICIT, ITEM_IMPLICIT):
            layers[{key: layer for layer, key in key_of.items()}[name]].y.assign(table)
        elif name in ("item_bin_bias", "user_drift"):
            getattr(layers[TIME_LAYER], name).assign(table)
        else:
            model.get_layer(name).embeddings.assign(table if table.ndim == 2 else table[:, None])
    return history
