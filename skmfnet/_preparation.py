"""Validated ratings -> the network's int32 input rows, and the fitted state that repeats it.

The second step of the package's one-way flow::

    X --(validate_user_item)--> raw ids, feature columns
      --(this module)--> int32 rows (user row, item row, feature codes)
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
from ._features import FeatureEncoder, first_rows_table, resolve_feature_columns

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


def fit_encoding(estimator, users, items, extras):
    """Learn the vocabularies and feature codes of the training ratings.

    ``estimator`` provides ``user_features`` / ``item_features`` (and
    ``feature_names_in_`` for DataFrames) to find the feature columns.

    Returns
    -------
    encoding : Encoding
    rows : ndarray of int32, shape (n, 2 + total feature width)
        The network's input for the training ratings.
    """
    user_columns, item_columns = resolve_feature_columns(estimator, 2 + extras.shape[1])
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
    )
    rows = np.column_stack([user_rows, item_rows, user_codes, item_codes]).astype(np.int32)
    return encoding, rows


def id_rows(fitted, users, items):
    """``(n, 2)`` int32 (user row, item row) of raw ids; row 0 for unknown ids."""
    return np.column_stack([fitted.user_encoder_.transform(users), fitted.item_encoder_.transform(items)])


def encode(fitted, users, items, extras):
    """The network's input for raw ids and feature columns, from fitted state only."""
    return np.column_stack(
        [
            id_rows(fitted, users, items),
            _feature_codes(fitted.user_feature_encoders_, fitted.user_feature_columns_, extras, fit=False),
            _feature_codes(fitted.item_feature_encoders_, fitted.item_feature_columns_, extras, fit=False),
        ]
    ).astype(np.int32)


def pair_inputs(fitted, user_rows, item_rows):
    """The network's input for encoded rows, with the features stored at fit (for recommend)."""
    return np.column_stack(
        [
            user_rows,
            item_rows,
            fitted.user_feature_codes_[user_rows],
            fitted.item_feature_codes_[item_rows],
        ]
    ).astype(np.int32)


def _feature_codes(encoders, columns, extras, *, fit):
    """int32 codes of one side's feature columns, ``(n, total width)``."""
    codes = [
        encoder.fit_transform(extras[:, position - 2]) if fit else encoder.transform(extras[:, position - 2])
        for encoder, (_, position) in zip(encoders, columns)
    ]
    return np.hstack(codes) if codes else np.zeros((len(extras), 0), dtype=np.int32)
