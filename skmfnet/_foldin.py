"""Fold-in: rows for users and items not seen in fit, without refitting.

A new user's ratings of known items determine the user's row of the dot
model, ``[p_u | b_u]``, given the fixed item rows: the training objective
restricted to that row (squared errors of the user's ratings plus the
per-rating penalty, ``alpha * ||p_u||^2 + alpha_bias * b_u^2`` for each of
them, see :class:`skmfnet._network.RowL2Embedding`) is a ridge regression,
solved in closed form::

    A = [q_i | 1] for the user's items,  t = r - mu - b_i
    [p_u | b_u] = (A^T A + n_u * diag(alpha, ..., alpha, alpha_bias))^-1 A^T t

and likewise a new item's row from its ratings by known users (with
``[p_u | 1]`` and ``t = r - mu - b_u``).  Every other row stays exactly as
fitted, so no known pair's prediction changes.  This is the exact minimiser
for the new row, where a few gradient steps would only approach it; it
needs the plain dot model (for side information, implicit feedback or the
``concat`` network the new rows enter non-linearly or through other tables,
and :func:`fold_in` refuses them).

The estimator's fitted state grows in place: the id vocabularies gain the
new ids (after the known ones, so known rows keep their numbers), the
network is rebuilt with the larger tables (the optimizer state of fit is
not carried over), and the new pairs join ``seen_`` so that ``recommend``
leaves them out.  Save the estimator afterwards to keep the new rows.
"""

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from ._encoding import validate_user_item
from ._network import ITEM_BIAS, ITEM_FACTORS, USER_BIAS, USER_FACTORS
from ._preparation import id_rows
from ._recommend import seen_matrix_from_rows

__all__ = ["fold_in"]


def fold_in(estimator, X, y):
    """Give rows to the new users and items of ``(X, y)``; see :meth:`EmbeddingMFRegressor.fold_in`."""
    check_is_fitted(estimator, "model_")
    if not estimator._plain_dot():
        params = estimator.fitted_params_
        raise ValueError(
            "fold_in solves new rows in closed form for the plain dot model (interaction='dot', no "
            f"user_features, item_features or implicit feedback); this model has interaction="
            f"{params['interaction']!r}, user_features={params['user_features']!r}, item_features="
            f"{params['item_features']!r}, implicit={params['implicit']!r}. Refit with fit to learn "
            "from these ratings."
        )
    users, items, y = validate_user_item(estimator, X, y, reset=False)
    rows = id_rows(estimator, users, items)
    known_user, known_item = rows[:, 0] > 0, rows[:, 1] > 0
    for mask, what in (
        (known_user & known_item, "a known user and a known item: fold_in learns only rows for ids "
                                  "not seen in fit, so these ratings would be ignored. Refit with fit "
                                  "to learn from them"),
        (~known_user & ~known_item, "a new user and a new item: neither has a row to solve the other "
                                    "against. Fold in the user's ratings of known items, or the "
                                    "item's ratings by known users"),
    ):
        if mask.any():
            first = int(np.flatnonzero(mask)[0])
            raise ValueError(
                f"X: {int(mask.sum())} of the {len(y)} ratings pair {what}; the first is row {first}, "
                f"(user {_scalar(users[first])!r}, item {_scalar(items[first])!r})."
            )
    params = estimator.fitted_params_
    model = estimator.model_
    tables = {name: model.get_layer(name).embeddings.numpy() for name in (USER_FACTORS, USER_BIAS,
                                                                        ITEM_FACTORS, ITEM_BIAS)}
    centred = y - estimator.mu_
    penalty = np.array([params["alpha"]] * int(tables[USER_FACTORS].shape[1]) + [params["alpha_bias"]])
    new_rows = {}
    for side, new, other in (("user", ~known_user, 1), ("item", ~known_item, 0)):
        ids = users[new] if side == "user" else items[new]
        other_rows = rows[new, other]
        factors = tables[ITEM_FACTORS if side == "user" else USER_FACTORS].astype(np.float64)
        bias = tables[ITEM_BIAS if side == "user" else USER_BIAS][:, 0].astype(np.float64)
        codes, uniques = pd.factorize(ids, sort=False)
        solved = np.zeros((len(uniques), len(penalty)))
        for k in range(len(uniques)):
            mine = codes == k
            A = np.column_stack([factors[other_rows[mine]], np.ones(mine.sum())])
            t = centred[new][mine] - bias[other_rows[mine]]
            solved[k] = np.linalg.solve(A.T @ A + mine.sum() * np.diag(penalty), A.T @ t)
        new_rows[side] = (uniques, solved)
    _grow(estimator, new_rows, users, items)
    return estimator


def _grow(estimator, new_rows, users, items):
    """Append the new ids and rows to the fitted state and rebuild the network."""
    model = estimator.model_
    weights = {name: model.get_layer(name).embeddings.numpy() for name in (USER_FACTORS, USER_BIAS,
                                                                         ITEM_FACTORS, ITEM_BIAS)}
    seen = sp.csr_matrix(estimator.seen_) if getattr(estimator, "seen_", None) is not None else None
    for side, (factors, bias) in (("user", (USER_FACTORS, USER_BIAS)), ("item", (ITEM_FACTORS, ITEM_BIAS))):
        uniques, solved = new_rows[side]
        if not len(uniques):
            continue
        encoder = getattr(estimator, f"{side}_encoder_")
        # known ids keep their rows; the new ones follow, in order of appearance
        encoder.classes_ = encoder.classes_.append(pd.Index(uniques, dtype=encoder.classes_.dtype
                                                             if _same_kind(uniques, encoder.classes_) else object))
        weights[factors] = np.vstack([weights[factors], solved[:, :-1].astype(np.float32)])
        weights[bias] = np.vstack([weights[bias], solved[:, -1:].astype(np.float32)])
        n = encoder.n_known
        setattr(estimator, f"n_{side}s_", n)
        codes = getattr(estimator, f"{side}_feature_codes_")
        setattr(estimator, f"{side}_feature_codes_",
                np.vstack([codes, np.zeros((len(uniques), codes.shape[1]), dtype=codes.dtype)]))
        selection = getattr(estimator, f"{side}_selection_", None)
        if selection is not None:  # no sampled pairs for the new rows: the selection term is zero
            setattr(estimator, f"{side}_selection_",
                    np.vstack([selection, np.zeros((len(uniques), selection.shape[1]), dtype=selection.dtype)]))
    network = estimator._build_and_compile()
    for name, table in weights.items():
        network.get_layer(name).embeddings.assign(table)
    # a built optimizer (fresh state) is saved and loaded like that of a fitted model
    network.optimizer.build(network.trainable_variables)
    estimator.model_ = network
    if seen is not None:
        rows = id_rows(estimator, users, items)
        old = seen.tocoo()
        new = seen_matrix_from_rows(rows[:, 0], rows[:, 1], estimator.n_users_, estimator.n_items_).tocoo()
        estimator.seen_ = sp.csr_matrix(
            (np.ones(len(old.row) + len(new.row), dtype=bool),
             (np.concatenate([old.row, new.row]), np.concatenate([old.col, new.col]))),
            shape=(estimator.n_users_ + 1, estimator.n_items_ + 1),
        )


def _same_kind(values, classes):
    """Whether ``values`` can join ``classes`` without changing its dtype (ints to an int vocabulary)."""
    values = np.asarray(values)
    kind = classes.dtype.kind
    if kind in "iu":
        return values.dtype.kind in "iu" or all(isinstance(v, (int, np.integer)) for v in values.ravel())
    if kind == "f":
        return values.dtype.kind in "iuf"
    return False


def _scalar(value):
    """A numpy scalar as the Python value it holds (its repr is then the id as typed)."""
    return value.item() if isinstance(value, np.generic) else value
