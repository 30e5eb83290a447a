"""Raw user/item ids -> contiguous embedding rows, and the input checks around it.

This is the first step of the one-way flow of the package::

    raw ids --(IdEncoder)--> row indices --(network)--> centred scores --(+ mu)--> ratings

Row 0 of every embedding table is reserved for ids that were not seen during
``fit``; known ids get rows ``1 .. n_known``.  Keeping the reserved row means the
network never sees an out-of-range index, and the estimators can tell unknown
ids apart (index 0) to apply their documented fallback.
"""

import numbers
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils.validation import _check_sample_weight, validate_data

__all__ = ["IdEncoder", "UNKNOWN_INDEX", "check_sample_weight", "validate_user_item", "warn_if_no_id_known",
           "weighted_mean"]

#: Embedding row used for ids not seen in ``fit``.
UNKNOWN_INDEX = 0

_COLUMN_NAMES = ("user id", "item id")


class IdEncoder:
    """Map hashable raw ids to rows ``1..n_known``; unseen ids map to row 0.

    Ids are compared by value and hash, as pandas does: ``"42"`` and ``42`` are
    two different ids, ``42`` and ``42.0`` are the same one.  Vocabularies are
    kept in order of first appearance, so no ordering between ids is needed
    (mixed types such as strings and tuples work).
    """

    def fit(self, ids):
        self.fit_transform(ids)
        return self

    @property
    def n_known(self):
        """Number of ids seen in fit (the table has ``n_known + 1`` rows)."""
        return len(self.classes_)

    def transform(self, ids):
        """Row indices as int32; ``UNKNOWN_INDEX`` for ids not seen in fit."""
        rows = self.classes_.get_indexer(np.asarray(ids))
        return (rows + 1).astype(np.int32, copy=False)

    def fit_transform(self, ids):
        """Fit, and return the rows of ``ids`` (from pandas's factorization, no second lookup)."""
        codes, uniques = pd.factorize(np.asarray(ids), sort=False)
        self.classes_ = pd.Index(uniques)
        return (codes + 1).astype(np.int32, copy=False)


def _check_column(values, position):
    """Reject missing or non-finite ids in one column; return it as 1-D array."""
    name = _COLUMN_NAMES[position]
    missing = pd.isna(values)
    if values.dtype.kind == "f":
        missing = missing | ~np.isfinite(values)
    elif values.dtype.kind == "O":
        # floats hidden in object columns (e.g. a DataFrame of mixed types)
        missing = missing | np.fromiter(
            (isinstance(v, numbers.Real) and not np.isfinite(v) for v in values),
            dtype=bool,
            count=len(values),
        )
    if missing.any():
        rows = np.flatnonzero(missing)
        raise ValueError(
            f"X contains missing or non-finite {name}s (NaN, inf or None) in column "
            f"{position}, at {len(rows)} row(s) starting with rows {rows[:5].tolist()}; "
            f"every rating needs a {name}: drop or fill those rows first."
        )
    return values


def validate_user_item(estimator, X, y="no_validation", *, reset, with_features=False):
    """Validate ``X`` (and ``y``) for a rating estimator.

    Uses scikit-learn's :func:`~sklearn.utils.validation.validate_data` (which
    records ``n_features_in_`` and ``feature_names_in_`` when ``reset`` is
    true), with ``dtype=None`` so that string and other non-numeric ids are kept
    as they are instead of being cast to float.

    With ``with_features=True``, ``X`` may have more than two columns (side
    information, see :mod:`skmfnet._features`) and they are returned as well.

    Returns
    -------
    users, items : ndarray of shape (n_samples,)
    extras : ndarray of shape (n_samples, n_columns - 2), only with ``with_features``
    y : ndarray of shape (n_samples,) of float64, only when ``y`` is given
        (``y=None`` is an error: "requires y to be passed").
    """
    common = dict(
        reset=reset,
        dtype=None,
        ensure_all_finite=False,  # ids are checked per column below, y is checked as numeric
        ensure_min_samples=1,
        accept_sparse=False,
    )
    # a DataFrame's columns keep their own dtypes: validate_data makes one array
    # of their common type (a float feature column would turn int ids into
    # floats, merging ids above 2**53), so the columns are taken from the frame
    frame = X if hasattr(X, "iloc") and hasattr(X, "columns") else None
    if not (hasattr(X, "__array__") or hasattr(X, "iloc") or sp.issparse(X)):
        # a plain list: numpy would turn [["alice", 1]] into strings, and 1 into "1"
        X = np.array(X, dtype=object)
    predicting = isinstance(y, str) and y == "no_validation"
    if predicting:
        X = validate_data(estimator, X, **common)
    else:
        # validate_data rejects y=None, NaN/inf in y and a length mismatch with X
        X, y = validate_data(estimator, X, y, y_numeric=True, multi_output=False, **common)
        y = _check_ratings(y)
    if X.shape[1] != 2 and not (with_features and X.shape[1] > 2):
        expected = "at least 2 columns (user id, item id, then features)" if with_features else (
            "exactly 2 columns (user id, item id)"
        )
        raise ValueError(f"X must have {expected}; got {X.shape[1]} column(s) with shape {X.shape}.")
    if frame is not None:
        users, items = frame.iloc[:, 0].to_numpy(), frame.iloc[:, 1].to_numpy()
        extras = frame.iloc[:, 2:].to_numpy(dtype=object)
    else:
        users, items, extras = X[:, 0], X[:, 1], X[:, 2:]
    users = _check_column(users, 0)
    items = _check_column(items, 1)
    out = (users, items) + ((extras,) if with_features else ())
    return out if predicting else out + (y,)


def _check_ratings(y):
    """``y`` as float64, refusing what scikit-learn's finite check misses.

    ``validate_data`` checks numeric dtypes for NaN and infinity, but an object
    array holding ``None`` passes it and becomes NaN in the cast.
    """
    y = np.asarray(y, dtype=np.float64)
    bad = ~np.isfinite(y)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"y contains missing or non-finite ratings (NaN, inf or None) at {len(rows)} "
            f"row(s) starting with rows {rows[:5].tolist()}; every rating must be a finite "
            "number: drop or fill those rows first."
        )
    return y


def check_sample_weight(sample_weight, n_ratings):
    """Validated weights (float64) and the mask of the ratings to keep (weight > 0).

    scikit-learn's check refuses a wrong length, NaN, infinity and negative
    weights, naming ``sample_weight``.  A weight of 0 drops the rating: the
    fit is then the fit without it (vocabularies, mean and training alike).
    None: every weight 1.
    """
    if sample_weight is None:
        return np.ones(n_ratings), np.ones(n_ratings, dtype=bool)
    weights = _check_sample_weight(sample_weight, np.empty((n_ratings, 0)), dtype=np.float64,
                                   ensure_non_negative=True)
    return weights, weights > 0  # scikit-learn refuses all-zero weights


def weighted_mean(values, weights):
    """The mean of ``values`` weighted by ``weights`` (None: unweighted), with the weights rescaled first.

    Dividing them by their largest keeps the sums finite for any finite
    weights (``np.average`` of weights of 1e305 overflows to NaN); the mean
    does not depend on their scale.
    """
    if weights is None:
        return float(np.mean(values))
    return float(np.average(values, weights=weights / np.max(weights)))


def warn_if_no_id_known(user_rows, item_rows, user_encoder, item_encoder, users, items):
    """Warn when not one id of ``X`` was seen in fit: most likely ids of another type.

    Every prediction is then the fallback of unknown ids, which is rarely what
    the caller meant (e.g. string ids against a model fitted on integers).
    """
    if len(user_rows) == 0 or (user_rows != UNKNOWN_INDEX).any() or (item_rows != UNKNOWN_INDEX).any():
        return
    types = ""
    kinds = [(np.asarray(users).dtype, user_encoder.classes_.dtype), (np.asarray(items).dtype, item_encoder.classes_.dtype)]
    if any(given.kind != fitted.kind for given, fitted in kinds):
        types = (
            f" X's id columns have dtypes ({kinds[0][0]}, {kinds[1][0]}) but the ids seen in fit "
            f"have ({kinds[0][1]}, {kinds[1][1]}): \"42\" and 42 are different ids."
        )
    warnings.warn(
        f"None of the {len(user_rows)} (user, item) pairs of X has a user or an item seen in "
        f"fit; every prediction is the fallback for unknown ids.{types}",
        UserWarning,
        stacklevel=3,
    )
