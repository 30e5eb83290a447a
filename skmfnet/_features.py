"""Side information: extra columns of ``X`` that describe the user or the item.

A rating estimator reads ``X`` as user id, item id, then optionally more
columns, each named in the estimator's ``user_features`` or ``item_features``
parameter (by column name for a DataFrame, or by position).  Every feature is
categorical:

* a scalar column (``"M"``, ``"technician"``, an age bucket, a year) is one
  label per rating;
* a multi-valued column holds a list-like of labels per rating (a list, tuple,
  set or array, e.g. ``movies.genres.str.split("|")``).

Each feature gets its own :class:`FeatureEncoder`, which maps labels to codes
``1..n`` and everything else (labels not seen in ``fit``, missing values,
padding) to code 0.  A feature becomes ``width`` int32 columns of codes: 1 for
a scalar feature, the longest list seen in ``fit`` for a multi-valued one.
The network (:mod:`skmfnet._network`) receives these columns after the user
and item rows and averages the embeddings of a feature's non-zero codes.
"""

import numbers

import numpy as np
import pandas as pd

from ._encoding import UNKNOWN_INDEX, IdEncoder

__all__ = ["FeatureEncoder", "resolve_feature_columns", "resolve_time_column", "first_rows_table"]


def _is_list_like(value):
    return isinstance(value, (list, tuple, set, frozenset, np.ndarray, pd.Series))


def _is_missing(value):
    """None, NaN or pd.NA (what pandas's factorization leaves out)."""
    return not _is_list_like(value) and bool(pd.isna(value))


class FeatureEncoder:
    """Labels of one feature column -> int32 codes of shape ``(n, width)``.

    Attributes (after ``fit_transform``)
    ------------------------------------
    multi_valued : bool
        Whether the column held list-likes of labels.
    width : int
        Codes per row: 1, or the longest list seen in fit (at least 1).
    encoder : IdEncoder
        The labels seen in fit (``encoder.classes_``); code 0 is "none".
    """

    def __init__(self, name):
        self.name = name

    @property
    def n_known(self):
        """Number of labels seen in fit."""
        return self.encoder.n_known

    @property
    def classes_(self):
        """The labels seen in fit, in order of first appearance (label k has code k + 1)."""
        return self.encoder.classes_

    def fit_transform(self, values):
        values = np.asarray(values, dtype=object)
        kinds = np.fromiter((_is_list_like(v) for v in values), dtype=bool, count=len(values))
        if kinds.any() and not kinds.all():
            scalars = [v for v in values[~kinds] if not _is_missing(v)]
            if scalars:
                raise ValueError(
                    f"Feature column {self.name!r} mixes list-like values (a multi-valued feature) "
                    f"with scalar values such as {scalars[0]!r}; use lists in every row (an empty "
                    "list for none) or scalars in every row."
                )
        self.multi_valued = bool(kinds.any())
        self.encoder = IdEncoder()
        if not self.multi_valued:
            self.width = 1
            # pandas's factorization leaves None, NaN and pd.NA out: code 0
            return self.encoder.fit_transform(values).reshape(-1, 1)
        lengths, flat = _flatten(values)
        self.width = max(1, int(lengths.max(initial=0)))
        return _pad(self.encoder.fit_transform(flat), lengths, self.width)

    def transform(self, values):
        values = np.asarray(values, dtype=object)
        if not self.multi_valued:
            if any(_is_list_like(v) for v in values):
                raise ValueError(
                    f"Feature column {self.name!r} held one label per row in fit; got list-like "
                    "values."
                )
            return self.encoder.transform(values).reshape(-1, 1)
        bad = [v for v in values if not _is_list_like(v) and not _is_missing(v)]
        if bad:
            raise ValueError(
                f"Feature column {self.name!r} held lists of labels in fit; got the scalar {bad[0]!r}."
            )
        lengths, flat = _flatten(values)
        return _pad(self.encoder.transform(flat), lengths, self.width)


def _flatten(values):
    lists = [[] if _is_missing(v) else list(v) for v in values]
    lengths = np.fromiter((len(v) for v in lists), dtype=np.int64, count=len(lists))
    flat = np.empty(int(lengths.sum()), dtype=object)
    flat[:] = [label for labels in lists for label in labels]
    return lengths, flat


def _pad(codes, lengths, width):
    """Codes of each row's labels, known ones first, cut or padded with 0 to ``width``."""
    n = len(lengths)
    rows = np.repeat(np.arange(n), lengths)
    # known labels first within each row, so that cutting at ``width`` keeps them
    order = np.lexsort((codes == UNKNOWN_INDEX, rows))
    rows, codes = rows[order], codes[order]
    starts = np.cumsum(lengths) - lengths
    position = np.arange(len(rows)) - np.repeat(starts, lengths)
    keep = position < width
    out = np.zeros((n, width), dtype=np.int32)
    out[rows[keep], position[keep]] = codes[keep]
    return out


def _resolve_column(param, entry, names, n_columns):
    """``(name, position)`` of one column named by ``param`` (a name or a position after the ids)."""
    if isinstance(entry, numbers.Integral) and not isinstance(entry, bool):
        position = int(entry)
        if not 2 <= position < n_columns:
            raise ValueError(
                f"{param} names column position {position}, but X has {n_columns} "
                f"columns and positions 0 and 1 are the user and item ids; expected a "
                f"position in 2..{n_columns - 1}."
            )
        return (names[position] if names is not None else f"column {position}"), position
    if isinstance(entry, str):
        if names is None:
            raise ValueError(
                f"{param} names column {entry!r}, but X has no column names; pass X as a "
                "pandas DataFrame or name columns by position."
            )
        if entry not in names:
            raise ValueError(f"{param} names column {entry!r}, which is not in X; X has columns {names}.")
        position = names.index(entry)
        if position < 2:
            raise ValueError(
                f"{param} names column {entry!r}, which is column {position} of X: columns "
                "0 and 1 are the user and item ids, feature columns come after them."
            )
        return entry, position
    raise ValueError(
        f"{param} must hold column names (str) or positions (int); got {entry!r} of "
        f"type {type(entry).__name__}."
    )


def _column_names(estimator):
    names = getattr(estimator, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def resolve_time_column(estimator, n_columns):
    """``(name, position)`` of the ``time_column`` of a validated ``X``, or None without one."""
    if estimator.time_column is None:
        return None
    return _resolve_column("time_column", estimator.time_column, _column_names(estimator), n_columns)


def resolve_feature_columns(estimator, n_columns):
    """Positions of the user and item feature columns of a validated ``X``.

    ``user_features`` / ``item_features`` name columns by position (int) or,
    when the estimator was fitted on a DataFrame (``feature_names_in_``), by
    name.  Columns 0 and 1 are the ids; every other column must be named
    exactly once (the ``time_column``, where the estimator has one, included).

    Returns
    -------
    user_columns, item_columns : list of (name, position)
    """
    names = _column_names(estimator)
    resolved = {}
    for side in ("user", "item"):
        param = f"{side}_features"
        spec = getattr(estimator, param)
        if spec is None:
            spec = []
        if isinstance(spec, (str, numbers.Integral)):
            raise ValueError(
                f"{param} must be a list of column names or positions; got {spec!r}. "
                f"Use [{spec!r}] for a single column."
            )
        resolved[side] = [_resolve_column(param, entry, names, n_columns) for entry in spec]
    positions = [p for side in resolved.values() for _, p in side]
    time = resolve_time_column(estimator, n_columns) if hasattr(estimator, "time_column") else None
    duplicated = sorted({p for p in positions if positions.count(p) > 1})
    if duplicated:
        raise ValueError(
            f"Column(s) at position(s) {duplicated} are named more than once in user_features and "
            "item_features; each column describes either the user or the item, once."
        )
    if time is not None and time[1] in positions:
        raise ValueError(
            f"time_column names column {time[0]!r}, which user_features or item_features name too; "
            "the time of a rating is no feature of its user or item: name it once, in time_column."
        )
    unnamed = sorted(set(range(2, n_columns)) - set(positions) - ({time[1]} if time else set()))
    if unnamed:
        described = [names[p] for p in unnamed] if names is not None else unnamed
        raise ValueError(
            f"X has {n_columns} columns but column(s) {described} are not named in user_features, "
            "item_features or time_column; X must have exactly 2 columns (user id, item id) plus the "
            "columns those parameters name."
        )
    return resolved["user"], resolved["item"]


def first_rows_table(rows, codes, n_rows):
    """``(n_rows + 1, width)`` table: for each row index, the codes of its first occurrence.

    Row 0 (unknown ids) and rows that never occur are all zeros.
    """
    table = np.zeros((n_rows + 1, codes.shape[1]), dtype=np.int32)
    # assigning in reverse order leaves each row's first occurrence in place
    table[rows[::-1]] = codes[::-1]
    table[UNKNOWN_INDEX] = 0
    return table
