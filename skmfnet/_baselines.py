"""BiasBaselineRegressor: global mean plus regularized user and item biases.

Pure numpy and scikit-learn: importing this module does not import
TensorFlow, Keras or scikeras, so the baseline is cheap to load and fit.
"""

import copy
import numbers

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils import RegressorTags
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._encoding import IdEncoder, check_sample_weight, validate_user_item, warn_if_no_id_known, weighted_mean
from ._mixins import RecommenderMixin, restore_on_failure
from ._recommend import seen_matrix_from_rows

__all__ = ["BiasBaselineRegressor", "MostPopularRanker"]


def _fit_ids(estimator, users, items):
    """Fit the id vocabularies: set ``user_encoder_``, ``item_encoder_``,
    ``n_users_``, ``n_items_`` and ``seen_``; return the encoded rows."""
    user_encoder, item_encoder = IdEncoder(), IdEncoder()
    user_rows = user_encoder.fit_transform(users)
    item_rows = item_encoder.fit_transform(items)
    estimator.user_encoder_ = user_encoder
    estimator.item_encoder_ = item_encoder
    estimator.n_users_ = user_encoder.n_known
    estimator.n_items_ = item_encoder.n_known
    estimator.seen_ = seen_matrix_from_rows(user_rows, item_rows, estimator.n_users_, estimator.n_items_)
    return user_rows, item_rows


class BiasBaselineRegressor(RecommenderMixin, RegressorMixin, BaseEstimator):
    r"""Baseline rating predictor: global mean plus user and item biases.

    Predicts

    .. math:: \hat r_{ui} = \mu + b_u + b_i

    where :math:`\mu` is the mean training rating and the biases minimise the
    L2-regularized squared error

    .. math::

        \sum_{(u, i) \in R} w_{ui} (r_{ui} - \mu - b_u - b_i)^2
        + \lambda_u \sum_u b_u^2 + \lambda_i \sum_i b_i^2 ,

    with weights :math:`w_{ui}` = ``sample_weight`` (1 by default; then
    :math:`\mu` is the weighted mean).

    This is the baseline predictor of Koren (2010), "Factor in the
    neighbors", and of Surprise's ``BaselineOnly``.  The biases are fitted by
    alternating least squares as Surprise does (``bsl_options={"method":
    "als"}``): each sweep sets every item bias to its exact minimiser given the
    user biases, then every user bias given the item biases,

    .. math::

        b_i \leftarrow \frac{\sum_{u \in R(i)} w_{ui} (r_{ui} - \mu - b_u)}{\lambda_i + \sum_{u \in R(i)} w_{ui}},
        \qquad
        b_u \leftarrow \frac{\sum_{i \in R(u)} w_{ui} (r_{ui} - \mu - b_i)}{\lambda_u + \sum_{i \in R(u)} w_{ui}},

    starting from zero biases.  The defaults (``reg_user=15``,
    ``reg_item=10``, ``n_iter=10``) are Surprise's ALS defaults (``reg_u``,
    ``reg_i``, ``n_epochs``), so with the same data both give the same
    predictions.  Each sweep is two ``np.bincount`` calls; the sweeps converge
    to the unique minimiser of the objective above (raise ``n_iter`` to get
    closer to it).

    **Ids.**  ``X`` has two columns, user id then item id, of any hashable
    type (ints, strings, ...), as for
    :class:`~skmfnet.EmbeddingMFRegressor`.

    **Unknown ids.**  A user or item not seen in ``fit`` has bias 0: an
    unknown user gets :math:`\mu + b_i`, an unknown item :math:`\mu + b_u`,
    and both unknown :math:`\mu` (then clipped like every prediction).  This
    never raises and never gives NaN.

    Parameters
    ----------
    reg_user : float, default=15.0
        L2 regularization :math:`\lambda_u` of the user biases (Surprise's
        ``reg_u``).
    reg_item : float, default=10.0
        L2 regularization :math:`\lambda_i` of the item biases (Surprise's
        ``reg_i``).
    n_iter : int, default=10
        Number of ALS sweeps (items, then users) (Surprise's ``n_epochs``).
    clip_predictions : bool, default=True
        Clip predictions to the range of the training ratings.

    Attributes
    ----------
    mu_ : float
        Mean training rating.
    user_bias_ : ndarray of shape (``n_users_ + 1``,)
        User biases indexed by encoder row: ``user_bias_[0]`` (unknown users)
        is 0, the bias of user ``u`` is
        ``user_bias_[user_encoder_.transform([u])[0]]``.
    item_bias_ : ndarray of shape (``n_items_ + 1``,)
        Item biases, indexed likewise.
    user_encoder_, item_encoder_ : IdEncoder
        Vocabularies of the ids seen in fit (``user_encoder_.classes_`` lists
        the known user ids; known ids have rows ``1 .. n``).
    n_users_, n_items_ : int
        Number of known users and items.
    seen_ : scipy.sparse.csr_matrix of bool
        The training (user, item) pairs, in encoder rows, of shape
        ``(n_users_ + 1, n_items_ + 1)``; :meth:`recommend` leaves them out.
    rating_range_ : tuple of float
        (min, max) of the training ratings, the clipping range.
    fitted_params_ : dict
        The parameters of the fit that produced this model
        (``get_params()`` then): ``predict``, ``recommend`` and ``save`` read
        these, so ``set_params`` takes effect at the next fit.
    n_features_in_ : int
        Always 2.
    feature_names_in_ : ndarray of str
        Column names of ``X`` when it was a DataFrame with string column names.

    See Also
    --------
    sklearn.dummy.DummyRegressor : The global-mean baseline (no biases).
    skmfnet.EmbeddingMFRegressor : Adds user-item interaction (latent factors).

    References
    ----------
    Y. Koren. Factor in the neighbors: scalable and accurate collaborative
    filtering. ACM TKDD 4(1), 2010.  https://doi.org/10.1145/1644873.1644874

    Examples
    --------
    >>> from skmfnet import BiasBaselineRegressor
    >>> X = [["alice", "matrix"], ["alice", "amelie"], ["bob", "matrix"], ["carol", "amelie"]]
    >>> y = [5, 3, 4, 2]
    >>> est = BiasBaselineRegressor(reg_user=1.0, reg_item=1.0).fit(X, y)
    >>> est.mu_
    3.5
    >>> est.predict([["bob", "amelie"], ["dave", "matrix"], ["dave", "tron"]]).round(3)
    array([2.827, 4.055, 3.5  ])
    """

    _parameter_constraints = {
        "reg_user": [Interval(numbers.Real, 0, None, closed="left")],
        "reg_item": [Interval(numbers.Real, 0, None, closed="left")],
        "n_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "clip_predictions": ["boolean"],
    }

    def __init__(self, *, reg_user=15.0, reg_item=10.0, n_iter=10, clip_predictions=True):
        self.reg_user = reg_user
        self.reg_item = reg_item
        self.n_iter = n_iter
        self.clip_predictions = clip_predictions

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags = RegressorTags()
        tags.target_tags.required = True
        tags.input_tags.string = True  # ids may be strings
        tags.input_tags.categorical = True  # ids are labels, not magnitudes
        return tags

    def fit(self, X, y, sample_weight=None):
        """Learn the id vocabularies, the mean rating and the biases.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_ratings, 2)
            User id in column 0, item id in column 1 (any hashable labels).
        y : array-like of shape (n_ratings,)
            Ratings.
        sample_weight : array-like of shape (n_ratings,), default=None
            Non-negative weight of each rating's squared error: an integer
            weight counts as that many copies of the rating, a weight of 0
            drops it (its ids are then unknown unless other ratings have
            them).  None: every weight 1.  Routed by scikit-learn's
            ``cross_validate`` and searches like any fit parameter.

        Returns
        -------
        self : BiasBaselineRegressor
        """
        # a fit that fails leaves the estimator as it was (fitted or not)
        with restore_on_failure(self):
            return self._fit(X, y, sample_weight)

    @_fit_context(prefer_skip_nested_validation=True)
    def _fit(self, X, y, sample_weight):
        users, items, y = validate_user_item(self, X, y, reset=True)
        weights, keep = check_sample_weight(sample_weight, len(y))
        users, items, y, weights = users[keep], items[keep], y[keep], weights[keep]
        if not np.isfinite(np.sum(weights)):  # they count against reg_user and reg_item: not rescalable
            raise ValueError(
                "sample_weight: the weights sum to more than a float64 holds; divide them by a constant "
                "(and reg_user, reg_item by the same) to fit the same model."
            )
        self.fitted_params_ = copy.deepcopy(self.get_params(deep=False))
        user_rows, item_rows = _fit_ids(self, users, items)
        n_user_rows, n_item_rows = self.n_users_ + 1, self.n_items_ + 1

        mu = weighted_mean(y, weights)
        residual = y - mu
        # Denominators lambda + sum of weights (|R(.)| unweighted); row 0
        # (unknown ids) has no rating and stays 0.
        user_denom = self.reg_user + np.bincount(user_rows, weights=weights, minlength=n_user_rows)
        item_denom = self.reg_item + np.bincount(item_rows, weights=weights, minlength=n_item_rows)
        user_denom[0] = item_denom[0] = 1.0  # numerator is 0 there; avoid 0/0 when reg is 0
        user_bias = np.zeros(n_user_rows)
        for _ in range(self.n_iter):
            item_bias = (
                np.bincount(item_rows, weights=weights * (residual - user_bias[user_rows]), minlength=n_item_rows)
                / item_denom
            )
            user_bias = (
                np.bincount(user_rows, weights=weights * (residual - item_bias[item_rows]), minlength=n_user_rows)
                / user_denom
            )

        self.mu_ = mu
        self.user_bias_ = user_bias
        self.item_bias_ = item_bias
        self.rating_range_ = (float(np.min(y)), float(np.max(y)))
        return self

    def predict(self, X):
        """Predict ratings.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_pairs, 2)
            User id in column 0, item id in column 1.

        Returns
        -------
        y_pred : ndarray of shape (n_pairs,), float64
            ``mu_ + b_u + b_i``, with bias 0 for unknown ids, clipped to
            ``rating_range_`` when ``clip_predictions`` was True in fit.  When
            no user and no item of ``X`` was seen in fit, a ``UserWarning``
            says so (most often ids of another type).
        """
        check_is_fitted(self, "user_bias_")
        users, items = validate_user_item(self, X, reset=False)
        user_rows, item_rows = self.user_encoder_.transform(users), self.item_encoder_.transform(items)
        warn_if_no_id_known(user_rows, item_rows, self.user_encoder_, self.item_encoder_, users, items)
        y_pred = self.mu_ + self.user_bias_[user_rows] + self.item_bias_[item_rows]
        if self.fitted_params_["clip_predictions"]:
            np.clip(y_pred, *self.rating_range_, out=y_pred)
        return y_pred


class MostPopularRanker(BaseEstimator):
    """Recommends the items with the most training ratings: the ranking baseline.

    Every user gets the same list, the most rated items first, minus the
    items that user rated (:meth:`recommend`).  It is what a ranking model
    has to beat: on MovieLens 100K it outranks rating predictors trained on
    the observed ratings alone (``docs/user_guide.rst``, "Ranking vs
    rating").  Like Cornac's ``MostPop``, the score of an item is its number
    of training ratings, whatever their values.

    Not a rating predictor: :meth:`predict` returns the score (a count), so
    it has no ``score`` method; rate it with a ranking scorer
    (:func:`skmfnet.metrics.make_ranking_scorer`), which calls
    :meth:`recommend`.

    Attributes
    ----------
    item_counts_ : ndarray of shape (``n_items_ + 1``,)
        Training ratings per item, indexed by encoder row (row 0, unknown
        items, is 0).
    user_encoder_, item_encoder_ : IdEncoder
        Vocabularies of the ids seen in fit.
    n_users_, n_items_ : int
        Number of known users and items.
    seen_ : scipy.sparse.csr_matrix of bool
        The training (user, item) pairs, which :meth:`recommend` leaves out.
    n_features_in_ : int
        Always 2.
    feature_names_in_ : ndarray of str
        Column names of ``X`` when it was a DataFrame with string column names.

    Examples
    --------
    >>> from skmfnet import MostPopularRanker
    >>> X = [["alice", "matrix"], ["bob", "matrix"], ["bob", "amelie"], ["carol", "tron"]]
    >>> MostPopularRanker().fit(X).recommend(["alice", "dave"], n=2)
        user  rank    item  score
    0  alice     1  amelie    1.0
    1  alice     2    tron    1.0
    2   dave     1  matrix    2.0
    3   dave     2  amelie    1.0
    """

    _parameter_constraints = {}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        return tags

    def fit(self, X, y=None):
        """Count the training ratings of every item.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_ratings, 2)
            User id in column 0, item id in column 1 (any hashable labels).
        y : array-like of shape (n_ratings,), default=None
            Ratings: validated like the other estimators' when given, not used.

        Returns
        -------
        self : MostPopularRanker
        """
        with restore_on_failure(self):
            return self._fit(X, y)

    @_fit_context(prefer_skip_nested_validation=True)
    def _fit(self, X, y):
        if y is None:
            users, items = validate_user_item(self, X, reset=True)
        else:
            users, items, _ = validate_user_item(self, X, y, reset=True)
        _, item_rows = _fit_ids(self, users, items)
        self.item_counts_ = np.bincount(item_rows, minlength=self.n_items_ + 1).astype(np.float64)
        return self

    def predict(self, X):
        """The score of each pair's item: its number of training ratings (0 if unknown).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_pairs, 2)
            User id in column 0, item id in column 1.

        Returns
        -------
        scores : ndarray of shape (n_pairs,), float64
        """
        check_is_fitted(self, "item_counts_")
        _, items = validate_user_item(self, X, reset=False)
        return self.item_counts_[self.item_encoder_.transform(items)]

    def recommend(self, users=None, n=10, *, exclude_seen=True, seen=None):
        """Top-``n`` items per user, as a DataFrame (user, rank, item, score).

        See :func:`skmfnet.recommend`: the score is the item's count of
        training ratings, ties broken by the order in which items first
        appeared in the training data.
        """
        from ._recommend import recommend

        return recommend(self, users, n, exclude_seen=exclude_seen, seen=seen)
