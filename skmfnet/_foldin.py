"""Fold-in: rows for users and items not seen in fit, without refitting.

Every rating passed pairs one new id with one known id.  The new ids join
the vocabularies after the known ones (known rows keep their numbers), the
network is rebuilt with the larger tables, every weight of the fitted
network is copied into it, and only the new rows are then learnt, so no
known pair's prediction changes.  Two ways to learn them:

**Closed form** (the plain dot model).  A new user's ratings of known items
determine the user's row ``[p_u | b_u]`` given the fixed item rows: the
training objective restricted to that row (squared errors of the user's
ratings plus the per-rating penalty, ``alpha * ||p_u||^2 + alpha_bias *
b_u^2`` for each of them, see :class:`skmfnet._network.RowL2Embedding`) is a
ridge regression::

    A = [q_i | 1] for the user's items,  t = r - mu - b_i
    [p_u | b_u] = (A^T A + n_u * diag(alpha, ..., alpha, alpha_bias))^-1 A^T t

and likewise a new item's row from its ratings by known users (``[p_u | 1]``
and ``t = r - mu - b_u``): the exact minimiser, in milliseconds.  Without
any penalty (``alpha_ = 0``), a row with fewer ratings than ``K + 1``
unknowns has many minimisers (the system is singular): the one of least
norm is taken (least squares, :func:`numpy.linalg.lstsq`).

**Gradient steps** (side information, implicit feedback, the ``concat``
network), where the new rows enter through feature tables, the implicit
term or Dense layers.  Starting from the rebuilt network's initial values,
``FOLD_IN_STEPS`` full-batch Adam steps (the fit's learning rate) minimise
the same objective on the fold-in ratings, with the gradient of every other
row and every other weight set to zero.  A new user's features are those of
their first fold-in rating (as ``fit`` does), and with implicit feedback
their items ``N(u)`` are their fold-in items; a new item joins no known
user's ``N(u)`` (that would change known predictions).  The item-side
term likewise: a new item's ``N(i)`` are its fold-in users, and a new user
joins no known item's ``N(i)``.

The fitted state grows in place (optimizer state is not carried over), and
the new pairs join ``seen_`` so that ``recommend`` leaves them out.  Save the
estimator afterwards to keep the new rows.

Refused before anything changes: new ids of another type than the model's
vocabulary (``"196"`` into integer ids would be a new user, never user
``196``), and ratings more than the width of the fitted rating range
beyond it (``1e30`` on a 1-5 scale would make the new rows overflow).
"""

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from ._encoding import IdEncoder, validate_user_item
from ._features import first_rows_table
from ._network import IMPLICIT, ITEM_BIAS, ITEM_FACTORS, ITEM_IMPLICIT, USER_BIAS, USER_FACTORS
from ._preparation import encode, id_rows
from ._recommend import seen_matrix_from_rows

__all__ = ["fold_in"]

#: Full-batch Adam steps of the gradient fold-in.
FOLD_IN_STEPS = 300


def fold_in(estimator, X, y):
    """Give rows to the new users and items of ``(X, y)``; see :meth:`EmbeddingMFRegressor.fold_in`."""
    check_is_fitted(estimator, "model_")
    users, items, extras, y = validate_user_item(estimator, X, y, reset=False, with_features=True)
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
    _check_scale(estimator, y)
    new = {"user": pd.unique(users[~known_user]), "item": pd.unique(items[~known_item])}
    for side, ids in new.items():
        _check_id_type(ids, getattr(estimator, f"{side}_encoder_").classes_, side)
    solved = None
    if estimator._plain_dot():
        solved = _closed_form(estimator, rows, {"user": (~known_user, users), "item": (~known_item, items)}, y, new)
    old_sizes = {"user": estimator.n_users_, "item": estimator.n_items_}
    estimator._n_train += len(y)  # ratings the model has learnt from (bounds N(u)'s pairs in model files)
    inputs = _grow(estimator, new, users, items, extras)
    if solved is not None:
        for side, (factors, bias) in (("user", (USER_FACTORS, USER_BIAS)), ("item", (ITEM_FACTORS, ITEM_BIAS))):
            start = old_sizes[side] + 1
            for name, values in ((factors, solved[side][:, :-1]), (bias, solved[side][:, -1:])):
                table = estimator.model_.get_layer(name).embeddings
                table.assign(np.vstack([table.numpy()[:start], values.astype(np.float32)]))
    else:
        _gradient_steps(estimator, inputs, (y - estimator.mu_).astype(np.float32), old_sizes)
    return estimator


def _closed_form(estimator, rows, ratings, y, new):
    """``{side: (n_new, K + 1) [factors | bias]}``: each new row's exact minimiser (see the module docstring).

    ``ratings[side]`` = (mask of the ratings of new ``side`` ids, the raw ids of that side).
    """
    params = estimator.fitted_params_
    model = estimator.model_
    tables = {name: model.get_layer(name).embeddings.numpy().astype(np.float64)
              for name in (USER_FACTORS, USER_BIAS, ITEM_FACTORS, ITEM_BIAS)}
    centred = y - estimator.mu_
    penalty = np.array([estimator.alpha_] * tables[USER_FACTORS].shape[1] + [params["alpha_bias"]])
    solved = {}
    for side, other, (factors, bias) in (("user", 1, (ITEM_FACTORS, ITEM_BIAS)), ("item", 0, (USER_FACTORS, USER_BIAS))):
        is_new, ids = ratings[side]
        other_rows = rows[is_new, other]
        codes = pd.Index(new[side]).get_indexer(ids[is_new])
        out = np.zeros((len(new[side]), len(penalty)))
        for k in range(len(new[side])):
            mine = codes == k
            A = np.column_stack([tables[factors][other_rows[mine]], np.ones(mine.sum())])
            t = centred[is_new][mine] - tables[bias][other_rows[mine], 0]
            if estimator.alpha_ > 0:  # positive definite: the unique minimiser
                out[k] = np.linalg.solve(A.T @ A + mine.sum() * np.diag(penalty), A.T @ t)
            else:  # possibly singular: the minimiser of least norm (see the module docstring)
                system = np.vstack([A, np.diag(np.sqrt(mine.sum() * penalty))])
                out[k] = np.linalg.lstsq(system, np.concatenate([t, np.zeros(len(penalty))]), rcond=None)[0]
        solved[side] = out
    return solved


def _grow(estimator, new, users, items, extras):
    """Append the new ids to the fitted state; rebuild the network holding every fitted weight.

    Returns the network's input rows of the fold-in ratings.
    """
    old = estimator.model_
    old_sizes = {"user": estimator.n_users_, "item": estimator.n_items_}
    for side, ids in new.items():
        if not len(ids):
            continue
        # a new encoder, not the fitted one changed in place: a fold-in that
        # fails part-way leaves the estimator's objects as they were
        classes = getattr(estimator, f"{side}_encoder_").classes_
        encoder = IdEncoder()
        encoder.classes_ = classes.append(pd.Index(ids, dtype=classes.dtype if _same_kind(ids, classes) else object))
        setattr(estimator, f"{side}_encoder_", encoder)
        setattr(estimator, f"n_{side}s_", encoder.n_known)
        selection = getattr(estimator, f"{side}_selection_", None)
        if selection is not None:  # no sampled pairs for the new rows: the selection term is zero
            setattr(estimator, f"{side}_selection_",
                    np.vstack([selection, np.zeros((len(ids), selection.shape[1]), dtype=selection.dtype)]))
    inputs = encode(estimator, users, items, extras)
    for side, column, offset in (("user", 0, 2), ("item", 1, 2 + estimator.user_feature_codes_.shape[1])):
        codes = getattr(estimator, f"{side}_feature_codes_")
        width = codes.shape[1]
        table = first_rows_table(inputs[:, column], inputs[:, offset : offset + width], getattr(estimator, f"n_{side}s_"))
        table[: len(codes)] = codes  # known rows keep the codes of fit
        setattr(estimator, f"{side}_feature_codes_", table)
    names = {layer.name for layer in old.layers}
    estimator._implicit_history = {}
    rows = {"user": estimator.n_users_ + 1, "item": estimator.n_items_ + 1}
    for side, labels, name, owner, other in (("user", "item", IMPLICIT, 0, 1), ("item", "user", ITEM_IMPLICIT, 1, 0)):
        if name not in names:
            continue
        # N(u) of the new users (N(i) of the new items): their fold-in pairs; known rows' histories unchanged
        layer = old.get_layer(name)
        indptr = layer.indptr.numpy().astype(np.int64)
        shape = (rows[side], rows[labels])
        history = sp.csr_matrix((np.ones(indptr[-1]), layer.indices.numpy()[: indptr[-1]], indptr),
                                shape=(len(indptr) - 1, shape[1]))
        mine = inputs[:, owner] > old_sizes[side]
        added = sp.csr_matrix((np.ones(mine.sum()), (inputs[mine, owner], inputs[mine, other])), shape=shape)
        history.resize(*shape)
        combined = (history + added).tocsr()
        combined.sort_indices()
        estimator._implicit_history[side] = (combined.indptr, combined.indices)
    try:
        # the width of the fitted tables (n_factors * n_estimators when members were averaged)
        network = estimator._build_and_compile(n_factors=old.get_layer("user_factors").embeddings.shape[1])
    finally:
        estimator.__dict__.pop("_implicit_history", None)
    for layer in old.layers:
        if not layer.weights:
            continue
        target = network.get_layer(layer.name)
        for source, variable in zip(layer.weights, target.weights):
            values = source.numpy()
            if layer.name in (IMPLICIT, ITEM_IMPLICIT) and variable.path.endswith(("indptr", "indices")):
                continue  # set from the history above
            if values.shape != tuple(variable.shape):  # a per-id table: its new rows keep their initial values
                values = np.concatenate([values, variable.numpy()[len(values):]], axis=0)
            variable.assign(values)
    # a built optimizer (fresh state) is saved and loaded like that of a fitted model
    network.optimizer.build(network.trainable_variables)
    estimator.model_ = network
    if getattr(estimator, "seen_", None) is not None:
        seen = sp.csr_matrix(estimator.seen_)
        seen.resize(estimator.n_users_ + 1, estimator.n_items_ + 1)
        added = seen_matrix_from_rows(inputs[:, 0], inputs[:, 1], estimator.n_users_, estimator.n_items_)
        estimator.seen_ = (seen + added).astype(bool).tocsr()
    return inputs


def _gradient_steps(estimator, inputs, target, old_sizes):
    """Full-batch Adam on the new rows only (see the module docstring)."""
    import keras
    import tensorflow as tf

    model = estimator.model_
    # each per-id table and the first of its new rows (the rest are frozen)
    tables = [(model.get_layer(name).embeddings, old_sizes[side] + 1)
              for side, names in (("user", (USER_FACTORS, USER_BIAS)), ("item", (ITEM_FACTORS, ITEM_BIAS)))
              for name in names]
    if IMPLICIT in {layer.name for layer in model.layers}:
        tables.append((model.get_layer(IMPLICIT).y, old_sizes["item"] + 1))  # the implicit term's item table
    variables, masks = [], []
    for variable, first in tables:
        if first < variable.shape[0]:  # the table has new rows
            variables.append(variable)
            masks.append(tf.constant((np.arange(variable.shape[0]) >= first).astype(np.float32)[:, None]))
    optimizer = keras.optimizers.Adam(learning_rate=estimator.learning_rate_)
    x, t = tf.constant(inputs), tf.constant(target)

    @tf.function(autograph=False)
    def step():
        with tf.GradientTape() as tape:
            prediction = tf.reshape(model(x, training=True), [-1])
            loss = tf.reduce_mean(tf.square(prediction - t)) + tf.add_n([0.0] + list(model.losses))
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(
            [(tf.convert_to_tensor(g) * m, v) for g, m, v in zip(gradients, masks, variables) if g is not None]
        )

    for _ in range(FOLD_IN_STEPS):
        step()


def _check_scale(estimator, y):
    """Refuse ratings beyond the fitted rating range by more than its width (at least 1)."""
    low, high = estimator.rating_range_
    width = max(high - low, 1.0)
    outside = (y < low - width) | (y > high + width)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"y: rating {float(y[first])!r} at row {first} is outside the model's rating range [{low}, {high}] "
            f"by more than its width ({int(outside.sum())} such rating(s)); fold_in takes ratings from "
            f"{low - width} to {high + width}. Ratings on another scale need a new fit."
        )


def _vocabulary_type(classes):
    """What ids ``classes`` holds: "integers", "numbers", "strings", or None (mixed types)."""
    if classes.dtype.kind in "iu":
        return "integers"
    if classes.dtype.kind == "f":
        return "numbers"
    if isinstance(classes.dtype, pd.StringDtype) or pd.api.types.infer_dtype(classes, skipna=False) == "string":
        return "strings"
    return None


def _check_id_type(ids, classes, side):
    """Refuse new ids of another type than the vocabulary's (mixed vocabularies take any)."""
    expected = _vocabulary_type(classes)
    accepts = {
        "integers": lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)),
        "numbers": lambda v: isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)),
        "strings": lambda v: isinstance(v, str),
    }.get(expected)
    if accepts is None:
        return
    bad = next((_scalar(v) for v in ids if not accepts(v)), None)
    if bad is not None:
        raise ValueError(
            f"X: {side} id {bad!r} is a {type(bad).__name__}, but the model's {side} ids are {expected} "
            f"({classes.dtype}): an id of another type is a new id, never the known one it may look "
            f"like ('196' is not 196). Convert the {side} ids to the type of those of fit."
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
