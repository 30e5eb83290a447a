"""Time effects: each rating's time, read from a column of ``X``, as timeSVD's biases use it.

Koren ("Collaborative filtering with temporal dynamics", KDD 2009) lets the
biases move with the time ``t`` of the rating::

    b_u + a_u dev_u(t) + b_i + b_{i, Bin(t)}
    dev_u(t) = sign(t - t_u) |t - t_u| ** DRIFT_EXPONENT

``a_u`` a learned drift per user, ``t_u`` the mean time of the user's
training ratings, ``b_{i, Bin(t)}`` a learned bias per item and time bin
(``time_bins`` bins of equal width over the training period).  Koren's
exponent, 0.4, is fixed.

Times are measured in fractions of the training period ``[t_min, t_max]``,
so the column may hold Unix seconds, days or datetimes alike (only the
drift's scale depends on the unit, and this removes it).  The network's
int32 input carries each rating's time as a code from 0 (``t_min``) to
:data:`TIME_STEPS` (``t_max``).  Outside ``fit``: a time before or after the
training period is clipped to it (the first or the last bin, the drift of
that moment); an unknown time (None, NaN, NaT) is the code -1 and gets no
time effect; ``recommend`` and ``similar_*``, which have no times, score as
of ``t_max``.

Written here rather than taken from a library: no scikit-learn or Keras
piece bins a time column per item or computes per-user drifts; it is a few
numpy lines on the validated column.
"""

import numbers

import numpy as np
import pandas as pd

__all__ = ["DRIFT_EXPONENT", "TIME_STEPS", "drift_and_bins", "fit_time_range", "time_codes", "time_values",
           "user_mean_times"]

#: Codes of the training period (0: its first moment, TIME_STEPS: its last); -1: unknown.
TIME_STEPS = 2**20
#: Koren's exponent of the user drift ``sign(dt) |dt| ** 0.4``.
DRIFT_EXPONENT = 0.4


def time_values(column, name):
    """The times of a column of ``X`` as float64 (datetimes in seconds); None/NaN/NaT are NaN.

    Raises a ValueError naming the column for values that are neither numbers
    nor datetimes (strings, lists, booleans, ...).
    """
    values = pd.Series(np.asarray(column, dtype=object))
    known = values[values.notna()]
    if len(known) and all(isinstance(v, (pd.Timestamp, np.datetime64)) for v in known):
        elapsed = pd.to_datetime(values, utc=True) - pd.Timestamp(0, tz="UTC")
        return elapsed.dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan)
    bad = [v for v in known if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.number))]
    if bad:
        raise ValueError(
            f"time_column {name!r} must hold numbers (e.g. Unix seconds) or datetimes, one per rating; got "
            f"{bad[0]!r} of type {type(bad[0]).__name__}."
        )
    return values.to_numpy(dtype=np.float64)


def fit_time_range(times, name):
    """``(t_min, t_max)`` of the training ratings' times; every one must be known and finite."""
    finite = np.isfinite(times)
    if not finite.all():
        at = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"time_column {name!r} must give every training rating a finite time; got {float(times[at])!r} at "
            f"row {at} ({int((~finite).sum())} of {len(times)} rows). Drop or fill those ratings."
        )
    return float(times.min()), float(times.max())


def time_codes(times, time_range):
    """int32 codes of times: the training period in :data:`TIME_STEPS` steps, clipped to it; -1 where unknown."""
    low, high = time_range
    span = high - low if high > low else 1.0
    with np.errstate(invalid="ignore"):
        fraction = np.clip((np.asarray(times, dtype=np.float64) - low) / span, 0.0, 1.0)
    codes = np.rint(np.nan_to_num(fraction, nan=0.0) * TIME_STEPS).astype(np.int32)
    codes[~np.isfinite(times)] = -1
    return codes


def user_mean_times(user_rows, codes, n_users):
    """``t_u`` of every user row (from 0; row 0, unknown users: 0), in fractions of the training period."""
    known = codes >= 0
    counts = np.bincount(user_rows[known], minlength=n_users + 1)
    sums = np.bincount(user_rows[known], weights=codes[known] / TIME_STEPS, minlength=n_users + 1)
    return (sums / np.maximum(counts, 1)).astype(np.float32)


def drift_and_bins(user_rows, codes, user_mean, n_bins):
    """Per rating: ``dev_u(t)``, the time bin, and whether the time is known (numpy, as the network computes them)."""
    known = codes >= 0
    fraction = np.maximum(codes, 0) / TIME_STEPS
    bins = np.minimum((fraction * n_bins).astype(np.int64), n_bins - 1)
    delta = fraction - user_mean[user_rows]
    drift = np.sign(delta) * np.abs(delta) ** DRIFT_EXPONENT
    return np.where(known, drift, 0.0), bins, known
