"""Validated ratings -> the network's int32 input rows, and the fitted state that repeats it.

The second step of the package's one-way flow::

    X --(validate_user_item)--> raw ids, feature columns
      --(this module)--> int32 rows (user row, item row, feature codes[, time code])
      --(network)--> centred scores

:func:`fit_encoding` learns everything the encoding needs from the training
ratings and returns it as :class:`Encoding`, whose fields become the
estimator's fitted attributes (``user_encoder_``, ``user_feature_columns_``,
...).  :func:`encode` and :func:`pair_inputs` then read only those fitted
attributes, never the estimator's parameters, so ``set_params`` after ``fit``
cannot change what ``predict`` or ``recommend`` compute.
"""

from typing import NamedTuple

import numpy as np

from ._encoding import IdEncoder
from ._features import FeatureEncoder, first_rows_table, resolve_feature_columns, resolve_time_column
from ._time import TIME_STEPS, fit_time_range, time_codes, time_values

__all__ = ["Encoding", "encode", "fit_encoding", "pair_inputs"]


class Encoding(NamedTuple):
    """The fitted state of the encoding; each field is a fitted attribute of the estimator."""

    user_encoder_: IdEncoder
    item_encoder_: IdEncoder
    n_users_: int
    n_items_: int
    user_feature_columns_: list  # (name, position in X) of each user feature
    item_feature_columns_: list
    user_feature_encoders_: list  # FeatureEncoder per user feature
    item_feature_encoders_: list
    user_feature_codes_: np.ndarray  # codes of each user row's first training rating
    item_feature_codes_: np.ndarray
    time_column_: tuple  # (name, position in X) of the time_column, or None
    time_range_: tuple  # (t_min, t_max) of the training ratings' times, or None


def fit_encoding(estimator, users, items, extras):
    """Learn the vocabularies and feature codes of the training ratings.

    ``estimator`` provides ``user_features`` / ``item_features`` (and
    ``feature_names_in_`` for DataFrames) to find the feature columns.

    Returns
    -------
    encoding : Encoding
    rows : ndarray of int32, shape (n, 2 + total feature width [+ 1])
        The network's input for the training ratings; with a ``time_column``,
        the last column is each rating's time code (:mod:`skmfnet._time`).
    """
    user_columns, item_columns = resolve_feature_columns(estimator, 2 + extras.shape[1])
    time_column = resolve_time_column(estimator, 2 + extras.shape[1])
    time_range = None
    if time_column is not None:
        times = time_values(extras[:, time_column[1] - 2], time_column[0])
        time_range = fit_time_range(times, time_column[0])
    user_encoder, item_encoder = IdEncoder(), IdEncoder()
    user_rows = user_encoder.fit_transform(users)
    item_rows = item_encoder.fit_transform(items)
    user_feature_encoders = [FeatureEncoder(name) for name, _ in user_columns]
    item_feature_encoders = [FeatureEncoder(name) for name, _ in item_columns]
    user_codes = _feature_codes(user_feature_encoders, user_columns, extras, fit=True)
    item_codes = _feature_codes(item_feature_encoders, item_columns, extras, fit=True)
    encoding = Encoding(
        user_encoder_=user_encoder,
        item_encoder_=item_encoder,
        n_users_=user_encoder.n_known,
        n_items_=item_encoder.n_known,
        user_feature_columns_=list(user_columns),
        item_feature_columns_=list(item_columns),
        user_feature_encoders_=user_feature_encoders,
        item_feature_encoders_=item_feature_encoders,
        user_feature_codes_=first_rows_table(user_rows, user_codes, user_encoder.n_known),
        item_feature_codes_=first_rows_table(item_rows, item_codes, item_encoder.n_known),
        time_column_=time_column,
        time_range_=time_range,
    )
    rows = [user_rows, item_rows, user_codes, item_codes]
    if time_column is not None:
        rows.append(time_codes(times, time_range))
    return encoding, np.column_stack(rows).astype(np.int32)


def id_rows(fitted, users, items):
    """``(n, 2)`` int32 (user row, item row) of raw ids; row 0 for unknown ids."""
    return np.column_stack([fitted.user_encoder_.transform(users), fitted.item_encoder_.transform(items)])


def encode(fitted, users, items, extras):
    """The network's input for raw ids and feature columns, from fitted state only."""
    columns = [
        id_rows(fitted, users, items),
        _feature_codes(fitted.user_feature_encoders_, fitted.user_feature_columns_, extras, fit=False),
        _feature_codes(fitted.item_feature_encoders_, fitted.item_feature_columns_, extras, fit=False),
    ]
    time_column = getattr(fitted, "time_column_", None)  # (absent from estimators fitted before it existed)
    if time_column is not None:
        name, position = time_column
        columns.append(time_codes(time_values(extras[:, position - 2], name), fitted.time_range_)[:, None])
    return np.column_stack(columns).astype(np.int32)


def pair_inputs(fitted, user_rows, item_rows):
    """The network's input for encoded rows, with the features stored at fit (for recommend).

    With a ``time_column``, as of the end of the training period (there is no time to read).
    """
    columns = [user_rows, item_rows, fitted.user_feature_codes_[user_rows], fitted.item_feature_codes_[item_rows]]
    if getattr(fitted, "time_column_", None) is not None:
        columns.append(np.full(len(user_rows), TIME_STEPS))
    return np.column_stack(columns).astype(np.int32)


def _feature_codes(encoders, columns, extras, *, fit):
    """int32 codes of one side's feature columns, ``(n, total width)``."""
    codes = [
        encoder.fit_transform(extras[:, position - 2]) if fit else encoder.transform(extras[:, position - 2])
        for encoder, (_, position) in zip(encoders, columns)
    ]
    return np.hstack(codes) if codes else np.zeros((len(extras), 0), dtype=np.int32)
