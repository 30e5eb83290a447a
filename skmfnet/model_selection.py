"""Splitters for rating data: scikit-learn cross-validators that know users and time.

A random split of ratings lets a model learn from a user's future to predict
their past.  :class:`TemporalSplit` holds out each user's *latest* ratings
instead, the question a deployed recommender answers ("what will they rate
next?").  It is a scikit-learn cross-validator, so it goes wherever ``cv=``
does (:func:`~sklearn.model_selection.cross_val_score`,
:class:`~sklearn.model_selection.GridSearchCV`, ...).

Each rating's time comes in through ``groups``, the argument scikit-learn
already passes from ``cross_val_score(..., groups=...)`` and
``search.fit(..., groups=...)`` to the splitter (as for ``GroupKFold``),
because ``X`` holds only what the estimator reads.
"""

import numbers

import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils.validation import check_array

__all__ = ["TemporalSplit"]

#: What pandas infers for times that sort as times: numbers, datetimes, durations.
_TIME_TYPES = {"integer", "floating", "mixed-integer-float", "decimal", "datetime64", "datetime", "date",
               "timedelta64", "timedelta", "empty"}


def _times(groups):
    """``groups`` as a Series of numbers or datetimes; text (which would sort as text) is refused."""
    # a list as objects: numpy would turn [9, "10"] into text, hiding the mix
    values = np.asarray(groups) if hasattr(groups, "__array__") else np.asarray(groups, dtype=object)
    if values.ndim != 1:
        raise ValueError(f"groups (the timestamps) must be one-dimensional; got shape {values.shape}.")
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred not in _TIME_TYPES:
        bad = next((v for v in values.ravel() if isinstance(v, (str, bytes, bool, np.bool_))), None)
        bad = bad.item() if isinstance(bad, np.generic) else bad
        got = f"{type(bad).__name__} values such as {bad!r}" if bad is not None else f"{inferred} values"
        raise ValueError(
            f"groups (the timestamps) must be numbers or datetimes; got {got}. Text would sort as "
            "text ('10' before '9'): convert them first, e.g. with pandas.to_numeric or pandas.to_datetime."
        )
    times = pd.Series(values)
    if values.dtype == object and not times.isna().all():
        times = pd.Series(pd.to_numeric(values) if "time" not in inferred and inferred != "date"
                          else pd.to_datetime(values))
    return times


class TemporalSplit(BaseCrossValidator):
    """Hold out each user's latest ratings: one temporal train/test split.

    For every user, the ratings are ordered by time (ties: by their order in
    ``X``) and the last ``ceil(test_size * n_u)`` go to the test set, keeping
    at least one in the training set (a user with a single rating is
    training only).  Every user of the test set is then known to the model,
    and every test rating is later than that user's training ratings.

    Parameters
    ----------
    test_size : float, default=0.2
        Share of each user's ratings held out, in (0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> from skmfnet.model_selection import TemporalSplit
    >>> X = [["ann", "a"], ["ann", "b"], ["ann", "c"], ["bob", "a"], ["bob", "c"]]
    >>> times = [30, 10, 20, 5, 1]
    >>> [(train.tolist(), test.tolist()) for train, test in TemporalSplit(0.3).split(X, groups=times)]
    [([1, 2, 4], [0, 3])]
    """

    def __init__(self, test_size=0.2):
        self.test_size = test_size

    def get_n_splits(self, X=None, y=None, groups=None):
        """One split."""
        return 1

    def split(self, X, y=None, groups=None):
        """Indices of the training and test ratings.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_ratings, n_columns)
            User id in column 0 (as the estimators take it).
        y : ignored
        groups : array-like of shape (n_ratings,)
            The time of each rating: numbers (e.g. Unix seconds) or
            datetimes.  Required.

        Yields
        ------
        train, test : ndarray of int
        """
        if not (isinstance(self.test_size, numbers.Real) and 0 < self.test_size < 1):
            raise ValueError(f"test_size must be a number in (0, 1); got {self.test_size!r}.")
        if hasattr(X, "iloc") and hasattr(X, "columns"):  # a DataFrame: its user column as it is
            users = check_array(X.iloc[:, :1], dtype=None, ensure_all_finite=False)[:, 0]
        else:  # object, so that numpy does not turn ids of mixed types into strings
            users = check_array(X if hasattr(X, "__array__") else np.asarray(X, dtype=object),
                                dtype=None, ensure_all_finite=False)[:, 0]
        missing = pd.isna(users)
        if missing.any():
            raise ValueError(
                f"X has {int(missing.sum())} missing user id(s) (NaN or None) in column 0, starting at row "
                f"{int(np.flatnonzero(missing)[0])}; every rating needs a user id: drop or fill those rows first."
            )
        if groups is None:
            raise ValueError(
                "TemporalSplit needs the time of each rating, passed as groups: e.g. "
                "cross_val_score(est, X, y, groups=timestamps, cv=TemporalSplit()); got groups=None."
            )
        times = _times(groups)
        if len(times) != len(users):
            raise ValueError(f"groups (the timestamps) has {len(times)} values; X has {len(users)} rows.")
        if times.isna().any():
            raise ValueError(
                f"groups (the timestamps) has {int(times.isna().sum())} missing values, starting at row "
                f"{int(np.flatnonzero(times.isna())[0])}; every rating needs a time."
            )
        frame = pd.DataFrame({"user": pd.factorize(users)[0], "time": times})
        ordered = frame.sort_values(["user", "time"], kind="stable")
        size = ordered.groupby("user")["user"].transform("size").to_numpy()
        n_test = np.minimum(np.ceil(self.test_size * size).astype(int), size - 1)
        rank = ordered.groupby("user").cumcount().to_numpy()  # 0 = earliest
        is_test = np.zeros(len(users), dtype=bool)
        is_test[ordered.index.to_numpy()] = rank >= size - n_test
        yield np.flatnonzero(~is_test), np.flatnonzero(is_test)

    def _iter_test_indices(self, X=None, y=None, groups=None):  # pragma: no cover (split is overridden)
        for _, test in self.split(X, y, groups):
            yield test

    def __repr__(self):
        return f"TemporalSplit(test_size={self.test_size!r})"
