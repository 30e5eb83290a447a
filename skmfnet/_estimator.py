"""EmbeddingMFRegressor: the scikit-learn estimator around the Keras network.

This is the only module of the package that imports scikeras.  scikeras 0.13
gives the estimator its shape (``fit`` -> ``_initialize`` -> build the model
-> ``_fit_keras_model``, the fitted ``model_``, pickling and deep copies of
fitted Keras models); the parts of it that do not fit rating data are
replaced here:

* ``_validate_data`` casts object/string X to float32, so non-numeric ids fail
  and numeric ids above 2**24 collide.  Ids are validated and encoded by
  :mod:`skmfnet._encoding` before scikeras sees them; scikeras only ever gets
  the int32 row indices, which pass through unchanged.
* ``_initialize`` reads ``get_metadata()`` from the *unfitted*
  ``feature_encoder`` property, so vocabulary sizes cannot reach the model that
  way.  The vocabularies are fitted before scikeras runs and the build
  function reads them from the fitted ``user_encoder_`` / ``item_encoder_``.
* it declares tags through the removed ``_more_tags`` and puts ``RegressorMixin``
  after ``BaseEstimator`` in its bases, so on scikit-learn >= 1.6 the regressor
  tags are never set and ``is_regressor`` is False.  ``__sklearn_tags__`` below
  sets them as ``RegressorMixin`` would.
* its ``get_params`` reads every attribute set in ``__init__`` plus routed
  ``**kwargs``; here parameters are exactly the ``__init__`` signature, as in
  scikit-learn, so ``clone`` and ``set_params`` behave as everywhere else.
* it builds and fits inside ``tensorflow_random_state``, which sets
  ``TF_DETERMINISTIC_OPS`` and so turns op determinism on for the rest of the
  process (see ``_build_keras_model``); here every random draw is seeded
  explicitly instead.
"""

import copy
import numbers

import keras
import numpy as np
from scikeras.wrappers import KerasRegressor
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import RegressorTags
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._encoding import check_sample_weight, validate_user_item, warn_if_no_id_known, weighted_mean
from ._mixins import RecommenderMixin, restore_on_failure
from ._network import IMPLICIT_SIDES, build_network, dot_tables, score_rows
from ._preparation import encode, fit_encoding, pair_inputs
from ._recommend import seen_matrix_from_rows
from ._scoring import fold_members, pair_scores
from ._time import user_mean_times
from ._training import compile_network, compiled_path_blockers, plan, train
from ._training._cluster import DISTRIBUTIONS, get_strategy



def _undo_scikeras_patches():
    """Give Keras back its own pickling, which scikeras's import replaces globally.

    ``import scikeras`` sets ``__reduce__`` on ``keras.Model``, ``Loss``,
    ``Metric`` and ``Optimizer`` (and ``Model.__deepcopy__``) for every Keras
    user of the process.  Keras 3 pickles and deep-copies these objects
    itself, so importing skmfnet removes those class attributes again (only
    where they are still scikeras's) and the package relies on Keras alone.
    """
    from scikeras import _saving_utils

    patched = {
        (keras.Model, "__reduce__"): _saving_utils.pack_keras_model,
        (keras.Model, "__deepcopy__"): _saving_utils.deepcopy_model,
        (keras.losses.Loss, "__reduce__"): _saving_utils.pack_keras_loss,
        (keras.metrics.Metric, "__reduce__"): _saving_utils.pack_keras_metric,
        (keras.optimizers.Optimizer, "__reduce__"): _saving_utils.pack_keras_optimizer,
    }
    for (cls, name), function in patched.items():
        if cls.__dict__.get(name) is function:
            delattr(cls, name)


_undo_scikeras_patches()

__all__ = ["EmbeddingMFRegressor", "TUTORIAL_PARAMS"]

#: Parameters that rebuild the tutorial's network exactly (see the class docstring).
TUTORIAL_PARAMS = dict(
    n_factors=200,
    interaction="concat",
    hidden_layer_sizes=(2048, 256),
    activation="linear",
    alpha=0.01,
    alpha_bias=0.01,
    regularization="table",
    init_std=None,
    optimizer="sgd",
    learning_rate=0.01,
    loss="rmse",
    epochs=65,
    batch_size=512,
    early_stopping=False,
    clip_predictions=False,
)

_OPTIMIZERS = {"adam", "lazy_adam", "sgd", "adagrad", "rmsprop", "adamw", "nadam", "gibbs"}


def _never(estimator):
    return False


class EmbeddingMFRegressor(RecommenderMixin, KerasRegressor):
    r"""Matrix factorization as a Keras network, as a scikit-learn regressor.

    Predicts the rating of an (user, item) pair from learned embeddings.  With
    the default ``interaction="dot"`` it is biased matrix factorization:

    .. math:: \hat r_{ui} = \mu + b_u + b_i + p_u^\top q_i

    where :math:`\mu` is the mean training rating, :math:`b_u, b_i` are learned
    biases and :math:`p_u, q_i` learned factor vectors of length ``n_factors``.
    The network is trained on :math:`r - \mu` with Adam to minimise the
    squared error plus, for each rating, ``alpha`` times the squared norms of
    :math:`p_u, q_i` and ``alpha_bias`` times :math:`b_u^2 + b_i^2`
    (``regularization="batch"``).  The default optimizer, ``"lazy_adam"``,
    updates only the embedding rows of each batch, so an epoch costs the
    same whatever the size of the tables; for the plain dot model it runs as
    one compiled loop per epoch, traced once per process.  The defaults (K=32,
    factors initialised with a standard deviation of 0.01, ``alpha=0.1``,
    learning rate 0.005, batches of 1024, 10 epochs) were chosen on
    MovieLens 100K training ratings (``benchmarks/tuning/tune_defaults.py``;
    ``docs/accuracy.rst``); from a million ratings on, ``"auto"`` also tries
    ``alpha=0.03`` with learning rate 0.002 and keeps the better of the two
    on held-out ratings (see ``alpha``).

    With ``interaction="concat"``, :math:`[p_u, q_i, b_u, b_i]` (``2K + 2``
    wide) goes through ``Dense`` layers of ``hidden_layer_sizes`` and a final
    ``Dense(1)``.  With ``activation="linear"`` that stack is a single affine
    map, so the prediction is *additive* in user and item
    (:math:`\mu + f(u) + g(i)`): there is no user-item interaction at all, and
    the model can do no better than a bias baseline.  This is the network of
    the tutorial the package started from, whose reported test RMSE of 0.944
    on MovieLens 100K is that of a bias-only model.  ``TUTORIAL_PARAMS``
    rebuilds it exactly::

        EmbeddingMFRegressor(**TUTORIAL_PARAMS)
        # n_factors=200, interaction="concat", hidden_layer_sizes=(2048, 256),
        # activation="linear", alpha=0.01, alpha_bias=0.01, regularization="table",
        # init_std=None, optimizer="sgd", learning_rate=0.01, loss="rmse",
        # epochs=65, batch_size=512, early_stopping=False,
        # clip_predictions=False

    Classic MF is ``interaction="dot"`` with no hidden layer (the default).

    **Ids.**  ``X`` has two columns, user id then item id.  Ids are labels of
    any hashable type (ints, strings, ...), not necessarily contiguous; they
    are mapped to embedding rows in ``fit``.  ``"42"`` and ``42`` are different
    ids.

    **Side information.**  ``X`` may carry more columns after the two ids,
    each describing the user (``user_features``) or the item
    (``item_features``): an age group, an occupation, a release year, or a
    list of genres per row (a multi-valued feature: list-likes of labels, for
    example ``movies.genres.str.split("|")``).  Every feature is categorical
    and gets its own factor and bias embeddings, added to the user's (or
    item's), averaged over the labels of a multi-valued feature:

    .. math:: p_u \leftarrow p_u + \sum_f e_f(x_{u,f}), \qquad
              b_u \leftarrow b_u + \sum_f c_f(x_{u,f})

    and the same for :math:`q_i, b_i`, with the same per-rating penalties
    ``alpha`` and ``alpha_bias``.  Labels not seen in ``fit`` and missing
    values (None, NaN) contribute nothing; a user unknown to ``fit`` whose
    features are known is thus predicted from them (cold start).  Continuous
    values are labels like any other: bucket them first (``pandas.cut``).
    Without these parameters ``X`` must have exactly two columns.

    **Implicit feedback.**  ``implicit=True`` adds SVD++'s term
    :math:`|N(u)|^{-1/2} \sum_{j \in N(u)} y_j` to :math:`p_u`, where
    :math:`N(u)` is the set of items ``u`` rated in the training data and
    :math:`y_j` a learned K-vector per item (penalty ``alpha_implicit`` per
    rating on :math:`y_i` of the rated item).  ``implicit="item"`` adds its
    item-side twin (Koren's "flipped" SVD++, as in Rendle, Zhang & Koren
    2019), :math:`|N(i)|^{-1/2} \sum_{v \in N(i)} z_v` to :math:`q_i`, where
    :math:`N(i)` is the set of users who rated ``i`` in the training data;
    ``implicit="both"`` adds the two (``True`` is ``"user"``).  Each step
    gathers the training histories of the batch's users (items), so a step
    costs more the more ratings those users (items) have.

    **Time effects.**  ``time_column`` names a column of ``X`` holding each
    rating's time (numbers such as Unix seconds, or datetimes) and adds
    Koren's time-aware biases (timeSVD, KDD 2009) to :math:`b_i`:
    :math:`b_{i,\mathrm{Bin}(t)} + a_u \, \mathrm{sign}(t - t_u) |t - t_u|^{0.4}`,
    an item bias per time bin (``time_bins`` bins of equal width over the
    training period) and a drift :math:`a_u` per user around the mean time
    :math:`t_u` of the user's training ratings, time measured in fractions
    of the training period (so the unit does not matter), both penalized
    per rating by ``alpha_bias``.  Every training rating needs a finite
    time.  When predicting, a time outside the training period counts as
    its first or last moment, and an unknown time (None, NaN, NaT) adds no
    time effect; :meth:`recommend` and ``similar_*`` score as of the end of
    the training period; fold-in rows get no time effect of their own (see
    :mod:`skmfnet._time`).

    **Unknown ids.**  A user or item that did not occur in ``fit`` is mapped
    to a reserved embedding row that is zero and stays zero in training (no
    training rating uses it).  With ``interaction="dot"`` the prediction is
    therefore the global mean plus the bias of whichever side is known:
    :math:`\mu + b_i` for an unknown user, :math:`\mu + b_u` for an unknown
    item, :math:`\mu` when both are unknown.  With ``"concat"`` the network
    is evaluated with zero vectors on the unknown side (for the tutorial's
    linear network, :math:`\mu + f(u) + c` for an unknown item).  Predictions
    are then clipped like every other; this never raises and never gives NaN.

    Parameters
    ----------
    n_factors : int, default=32
        Number of latent factors K of the user and item embeddings.
    interaction : {"dot", "concat"}, default="dot"
        ``"dot"``: biased MF, ``b_u + b_i + p_u . q_i``.  ``"concat"``: the
        four embeddings concatenated and passed through the Dense layers.
    hidden_layer_sizes : tuple of int, default=()
        Widths of the hidden Dense layers of ``interaction="concat"`` (``()``
        means ``Dense(1)`` directly on the concatenation).  Must be empty for
        ``"dot"``.
    activation : str, default="relu"
        Activation of the hidden layers, any Keras activation name
        (``"linear"`` for the tutorial).
    alpha : float or "auto", default="auto"
        L2 regularization strength on the factor embeddings ``p_u``, ``q_i``.
        ``"auto"`` (with ``learning_rate="auto"``): 0.1 (and learning rate
        0.005), chosen on MovieLens 100K; from 1,000,000 training ratings on,
        for the plain dot model with ``"lazy_adam"``, ``"adagrad"`` or
        ``"sgd"`` and no ``distribution``, fit holds out
        ``validation_fraction`` of the ratings (or uses ``validation_data``),
        trains that pair and ``alpha=0.03, learning_rate=0.002`` (what
        larger synthetic data preferred), each with early stopping, and keeps
        the model with the lower held-out RMSE.  ``alpha_`` and
        ``learning_rate_`` are the values used; the "Regularization on
        larger data" section of the user guide has the evidence.
    alpha_bias : float, default=0.01
        L2 regularization strength on the bias embeddings ``b_u``, ``b_i``.
    regularization : {"batch", "table"}, default="batch"
        ``"batch"`` penalizes, per rating, only the embedding rows used by the
        batch (``alpha * (||p_u||^2 + ||q_i||^2) + alpha_bias * (b_u^2 + b_i^2)``
        averaged over the batch), as SGD matrix factorization does.  ``"table"`` adds
        ``alpha * ||W||^2`` of each whole table to every step's loss (Keras's
        ``embeddings_regularizer``, as in the tutorial); its effect grows with
        the number of steps per epoch and hits rare ids as hard as frequent ones.
    init_std : float or None, default=0.01
        Standard deviation of the normal initialization of the factors; biases
        start at zero.  None uses Keras's default ``uniform(-0.05, 0.05)`` for
        all four tables (the tutorial).
    user_features, item_features : list of str or int, default=None
        Columns of ``X`` after the two ids that describe the user (the item):
        column names when ``X`` is a DataFrame, or positions (2, 3, ...).
        Every column after the ids must be named in exactly one of the two.
        None: no side information (``X`` has 2 columns).
    implicit : bool or {"user", "item", "both"}, default=False
        Add SVD++'s implicit feedback term to the user factors (``True`` or
        ``"user"``), its item-side twin to the item factors (``"item"``), or
        both (see above).
    alpha_implicit : float, default=0.5
        Per-rating L2 strength on the implicit-feedback vector :math:`y_i`
        of the rated item (and :math:`z_u` of the rating user).  Used only
        with ``implicit``; unused with ``optimizer="gibbs"``.
    time_column : str, int or None, default=None
        The column of ``X`` (name, or position after the ids) holding each
        rating's time, for the time effects (see above); it is neither a user
        nor an item feature.  None: no time effects.
    time_bins : int, default=30
        Number of item time bins over the training period (Koren's 30).
        Used only with ``time_column``.
    optimizer : {"lazy_adam", "adam", "sgd", "adagrad", "rmsprop", "adamw", "nadam", "gibbs"}, default="lazy_adam"
        Optimizer, by name.  ``"lazy_adam"`` is Adam that updates only the
        embedding rows present in each batch (and their moments), where
        Keras's ``"adam"`` updates whole tables densely every step (its
        moments decay rows the batch did not touch), which makes an epoch
        cost grow with the number of users and items.  For the plain dot model
        (``interaction="dot"``, ``regularization="batch"``,
        ``loss="squared_error"``, no side information, implicit feedback or
        distribution), ``"lazy_adam"``, ``"adagrad"`` and ``"sgd"`` train
        through a compiled row-sparse loop (built at install) with the same
        update rule and batches as ``keras.Model.fit``; every other
        configuration trains with ``keras.Model.fit``.

        ``"gibbs"`` is no optimizer but Bayesian matrix factorization
        (Salakhutdinov & Mnih 2008, as libFM's MCMC): ``epochs`` Gibbs
        sweeps over the dot model (with its side information, implicit
        terms and time effects, if any), with the penalties, the prior means
        and the noise sampled, not tuned (``alpha``, ``alpha_bias``,
        ``learning_rate``, ``batch_size``, ``early_stopping`` and ``n_jobs``
        are unused);
        the model is the average of ``n_estimators`` samples taken evenly
        after the first 20% of the sweeps, folded into one dot model of
        ``n_factors * n_estimators`` factors as ``n_estimators`` folds seeds
        (see :mod:`skmfnet._training._gibbs`).  Needs ``epochs`` large
        enough for the samples kept (e.g. ``epochs=100, n_estimators=32``).
    learning_rate : float or "auto", default="auto"
        Learning rate of the optimizer.  ``"auto"``: see ``alpha``; 0.005
        unless both are ``"auto"`` on large data.
    loss : {"squared_error", "rmse"}, default="squared_error"
        Training loss per batch: mean squared error, or its square root (the
        tutorial's).  ``history_`` always reports RMSE.
    epochs : int, default=10
        Maximum number of passes over the training data.
    batch_size : int, default=1024
        Ratings per gradient step.  Each epoch reshuffles the training ratings
        and runs ``n // batch_size`` full batches (one batch of all ratings when
        there are fewer than ``batch_size``); the at most ``batch_size - 1``
        ratings left over are different ones every epoch.  Equal batch shapes
        let TensorFlow trace the training step once.
    early_stopping : bool or "auto", default="auto"
        Hold out ``validation_fraction`` of the training ratings and stop when
        their RMSE has not improved for ``n_iter_no_change`` epochs, restoring
        the best epoch's weights.  ``"auto"``: only when ``alpha`` and
        ``learning_rate`` are compared on held-out ratings (see ``alpha``),
        else off.
    validation_fraction : float, default=0.1
        Share of the training ratings held out for early stopping.  Used only
        when early stopping is on and no ``validation_data`` is given.
    n_iter_no_change : int, default=3
        Patience of early stopping, in epochs.
    clip_predictions : bool, default=True
        Clip predictions to the range of the training ratings.
    negative_ratio : float, default=0.0
        Train for ranking as well as rating: every batch of ``batch_size``
        ratings is joined by ``round(negative_ratio * batch_size)`` sampled
        pairs, each user of the batch in turn with an item drawn uniformly
        among the known items, fresh at every step.  Most are pairs the user
        did not rate; the model learns that they would be rated
        ``negative_rating``, with ``negative_weight`` times a rating's
        weight in the loss (no penalty).  A model trained on the observed
        ratings alone learns nothing about which items people choose to rate
        and ranks obscure items with a few high ratings on top; the sampled
        pairs teach it (Steck, KDD 2010, "Training and testing of
        recommender systems on data missing not at random").  The trade-off
        with RMSE is in the "Ranking vs rating" section of the user guide.
        0 (the default) is the rating-only objective.  Needs the compiled
        path: ``interaction="dot"``, ``regularization="batch"``,
        ``loss="squared_error"``, ``optimizer`` ``"lazy_adam"``, ``"adagrad"`` or ``"sgd"``,
        no side information, implicit feedback or distribution.
    negative_rating : float or None, default=None
        The rating imputed to the sampled pairs; None: the lowest training
        rating.  Used only when ``negative_ratio > 0``.
    negative_weight : float, default=1.0
        Weight of a sampled pair's squared error relative to a rating's.
        Used only when ``negative_ratio > 0``.
    selection_factors : int, default=0
        With ``negative_ratio > 0``: 0 (the default) trains the rating
        network itself on the sampled pairs (best lists, poor RMSE); a
        positive number keeps the rating network trained on the ratings
        alone (``predict`` is exactly that of ``negative_ratio=0``) and
        trains a separate selection term of this many factors on the ratings
        and the sampled pairs, which :meth:`recommend` adds to the predicted
        rating: ``r_hat(u, i) + s_u . t_i + c_u + c_i`` (what a user would
        rate, plus how likely they are to choose the item at all).  Both
        fitted in one model, on the same batches.
    n_estimators : int, default=1
        Rating models fitted with different seeds and averaged (the plain
        dot model: ``interaction="dot"``, no side information, implicit
        term or sampled pairs, one process).  The average of dot models is
        a dot model: the fitted network's factor tables are the members'
        side by side, each scaled by ``1 / sqrt(n_estimators)``, and its
        biases and ``mu_`` the members' means, so that it predicts the mean
        of the members' predictions (then clipped) and serves ``predict``,
        ``recommend``, ``similar_items``, ``fold_in`` and model files like
        any dot model of ``n_factors * n_estimators`` factors.  Member k is
        fitted with ``random_state + k`` (an int ``random_state``; None:
        unseeded) and the ``alpha_`` and ``learning_rate_`` the first chose.
        Costs ``n_estimators`` fits.  With ``optimizer="gibbs"``: the
        number of posterior samples averaged, from one chain (side
        information allowed; see ``optimizer``).
    item_item_alpha : float, "auto" or None, default=None
        None (the default): :meth:`recommend` ranks by the rating model
        alone.  A number > 0 adds an item-item term to its ranking, EASE's
        closed form (Steck 2019) over the training pairs with this L2
        penalty: ``sum over the items j u rated of B[j, i] + w * score``,
        ``w = item_item_weight`` and ``score`` what recommend ranks by
        without the term (see :mod:`skmfnet._item_item`).  ``predict`` is
        unchanged.  "auto" chooses it inside ``fit`` among 30, 100, 300,
        1000 and 3000 by NDCG@10 on held-out training ratings (20% of each
        user's, for users with 5 or more; relevant: rated at least the mean),
        at the cost of a second fit of the rating model on the rest; with
        nothing to hold out (no user with 5 ratings), 300 and a weight of
        0.1, the middles of the grids.  The term covers the 10,000 most
        rated items at most.
    item_item_weight : float >= 0 or "auto", default="auto"
        With ``item_item_alpha``: the weight ``w`` of the rating model's
        score against the item-item term; "auto" chooses it among 0, 0.03,
        0.1, 0.3 and 1 as ``item_item_alpha="auto"`` chooses (jointly with
        it when both are "auto").
    distribution : {"mirrored", "multi_worker", "parameter_server"} or None, default=None
        Train with a :mod:`tf.distribute` strategy: ``"mirrored"``
        (``MirroredStrategy``: all local GPUs, or the CPU),
        ``"multi_worker"`` (``MultiWorkerMirroredStrategy``, the cluster read
        from the ``TF_CONFIG`` environment variable; run the same program, with
        the same data and an integer ``random_state``, on every worker; the
        plain dot model trains one block of users per worker and exchanges
        blocks of rows, other networks all-reduce whole gradients with
        ``batch_size`` the global batch) or ``"parameter_server"``
        (``ParameterServerStrategy``: the plain dot model's tables sharded
        over the parameter servers of ``TF_CONFIG``, fit called in its
        chief, training asynchronous).  The fitted estimator pickles and
        predicts without the cluster.  See the "Scaling out" page of the
        documentation.
    n_jobs : int or None, default=None
        Threads of the compiled path (the plain dot model with
        ``"lazy_adam"``, ``"adagrad"`` or ``"sgd"``; other configurations ignore it).
        With several threads the users and the items are each cut into
        ``p`` blocks and every epoch trains the ``p x p`` (user block, item
        block) cells in ``p`` rounds of ``p`` cells that share no user and
        no item (DSGD's stratified schedule), shared out among the threads,
        in 4 passes with another part of every cell each (fewer where a part
        would hold fewer than 16 batches): the same update rule on another
        order of the ratings, and the same result whatever the threads'
        timing.  ``p`` is 4, halved while a
        cell would hold fewer than 16 batches, or the number of threads if
        that is more; so from two threads up to ``p`` the number of threads
        does not change the result.  None: every usable core from 524,288
        training ratings on, else one thread (an epoch on fewer ratings
        takes milliseconds); -1:
        every usable core.  Usable cores: all of them, or ``OMP_NUM_THREADS``
        where that is set, as joblib sets it in the workers of a
        ``GridSearchCV(n_jobs=...)``, so a search's workers share the cores
        instead of each taking them all (for a search of seconds, joblib's
        threading backend avoids the workers' TensorFlow import: see
        "Hyperparameter search on one machine" in the scaling guide); 1: one thread and one block, whose batches are
        exactly those of the ``keras.Model.fit`` path.  ``p`` is lowered
        until every cell holds one batch.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialization, the shuffling and the validation split.  On
        CPU, the same integer gives identical predictions from two fits.
    verbose : int, default=0
        Keras's verbosity during fit: 0 silent, 1 progress bar, 2 one line per
        epoch.

    Attributes
    ----------
    mu_ : float
        Mean training rating, subtracted from the targets and added back.
    rating_range_ : tuple of float
        (min, max) of the training ratings, the clipping range.
    user_encoder_, item_encoder_ : IdEncoder
        Vocabularies of the ids seen in fit; ``user_encoder_.classes_`` lists
        the known user ids.
    fitted_params_ : dict
        The parameters of the fit that produced this model
        (``get_params()`` then): ``predict``, ``recommend`` and ``save`` read
        these, so ``set_params`` takes effect at the next fit.
    alpha_, learning_rate_ : float
        The ``alpha`` and ``learning_rate`` the model was trained with:
        the parameters, or what ``"auto"`` resolved to.
    auto_results_ : list of dict or None
        When ``"auto"`` compared pairs on held-out ratings, one dict per
        pair in training order: ``alpha``, ``learning_rate``,
        ``best_val_rmse``, ``best_epoch`` and ``epochs`` (trained, early
        stopping included); else None.
    user_feature_columns_, item_feature_columns_ : list of (str, int)
        Name and position in ``X`` of each feature column (empty without side
        information).
    user_feature_encoders_, item_feature_encoders_ : list of FeatureEncoder
        One per feature column (empty without side information);
        ``encoder.classes_`` of each lists the labels seen in fit.
    time_column_ : tuple (str, int) or None
        Name and position in ``X`` of the ``time_column``; None without one.
    time_range_ : tuple of float or None
        ``(t_min, t_max)`` of the training ratings' times (seconds for
        datetimes), the period the time effects span; None without them.
    user_feature_codes_, item_feature_codes_ : ndarray of int32
        Feature codes of every known user (item) row, from its first rating
        in fit, of shape ``(n_users_ + 1, total width)``; used by
        :meth:`recommend`, which has ids but no feature columns.
    n_users_, n_items_ : int
        Number of known users and items.
    user_selection_, item_selection_ : ndarray of float32 or None
        The selection term's ``[factors | bias]`` per user (item) row, of
        shape ``(n_users_ + 1, selection_factors + 1)`` (row 0, unknown ids:
        zero); None when ``selection_factors=0``.
    seen_ : scipy.sparse.csr_matrix of bool
        The training (user, item) pairs, in encoder rows, of shape
        ``(n_users_ + 1, n_items_ + 1)``; :meth:`recommend` leaves them out.
    item_item_ : ndarray of float32 of shape (m, m) or None
        EASE's item-item matrix over the item rows ``item_item_items_``
        (the m most rated items); None without ``item_item_alpha``.
    item_item_items_ : ndarray of int64 of shape (m,) or None
        The item rows (ascending) that ``item_item_`` covers.
    item_item_alpha_, item_item_weight_ : float or None
        The penalty and weight in use ("auto" resolved).
    item_item_results_ : list of dict or None
        With "auto": held-out NDCG@10 (``ndcg_at_10``) of every
        (``alpha``, ``weight``) compared.
    model_ : keras.Model
        The fitted network (input: int32 (user row, item row); output: the
        centred rating).
    engine_ : str
        What trained it, decided once per fit from the parameters:
        ``"kernel"`` (the compiled kernel: the plain dot model with
        ``"lazy_adam"``, ``"adagrad"`` or ``"sgd"``, one machine or
        ``"multi_worker"``), ``"parameter_server"``, ``"keras_multi_worker"``
        or ``"keras"`` (``keras.Model.fit``), as ``Ridge`` records ``solver_``.
        Saved in model files (absent from files written before it existed).
    history_ : dict of list
        Per epoch: ``"loss"`` (training objective, regularization included),
        ``"rmse"`` (training RMSE of the centred ratings, averaged over the
        epoch's batches), and ``"val_loss"``/``"val_rmse"`` when a validation
        set is used.  The tutorial's learning-curve plot is
        ``plt.plot(est.history_["rmse"]); plt.plot(est.history_["val_rmse"])``.
    table_shards_ : dict
        Only after a fit with ``distribution="parameter_server"``: for the
        ``"user"`` and ``"item"`` tables, the ``(device, rows)`` of each
        shard, in row order (where the tables lived during training).
    n_features_in_ : int
        Number of columns of ``X``: 2 plus the feature columns.
    feature_names_in_ : ndarray of str
        Column names of ``X`` when it was a DataFrame with string column names.

    See Also
    --------
    sklearn.dummy.DummyRegressor : The global-mean baseline.

    Examples
    --------
    >>> from skmfnet import EmbeddingMFRegressor
    >>> X = [["alice", "matrix"], ["alice", "amelie"], ["bob", "matrix"], ["carol", "amelie"]]
    >>> y = [5, 3, 4, 2]
    >>> est = EmbeddingMFRegressor(n_factors=4, epochs=2, early_stopping=False,
    ...                            random_state=0).fit(X, y)
    >>> est.predict([["bob", "amelie"], ["dave", "matrix"]]).shape
    (2,)
    """

    _parameter_constraints = {
        "n_factors": [Interval(numbers.Integral, 1, None, closed="left")],
        "interaction": [StrOptions({"dot", "concat"})],
        "hidden_layer_sizes": [tuple, list],
        "activation": [str],
        "alpha": [Interval(numbers.Real, 0, None, closed="left"), StrOptions({"auto"})],
        "alpha_bias": [Interval(numbers.Real, 0, None, closed="left")],
        "regularization": [StrOptions({"batch", "table"})],
        "init_std": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "optimizer": [StrOptions(_OPTIMIZERS)],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "loss": [StrOptions({"squared_error", "rmse"})],
        "epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "clip_predictions": ["boolean"],
        "user_features": [list, tuple, None],
        "item_features": [list, tuple, None],
        "implicit": ["boolean", StrOptions({"user", "item", "both"})],
        "alpha_implicit": [Interval(numbers.Real, 0, None, closed="left")],
        "time_column": [str, Interval(numbers.Integral, 2, None, closed="left"), None],
        "time_bins": [Interval(numbers.Integral, 1, None, closed="left")],
        "negative_ratio": [Interval(numbers.Real, 0, None, closed="left")],
        "negative_rating": [numbers.Real, None],
        "negative_weight": [Interval(numbers.Real, 0, None, closed="left")],
        "selection_factors": [Interval(numbers.Integral, 0, None, closed="left")],
        "n_estimators": [Interval(numbers.Integral, 1, None, closed="left")],
        "item_item_alpha": [Interval(numbers.Real, 0, None, closed="neither"), StrOptions({"auto"}), None],
        "item_item_weight": [Interval(numbers.Real, 0, None, closed="left"), StrOptions({"auto"})],
        "distribution": [StrOptions(set(DISTRIBUTIONS)), None],
        "n_jobs": [numbers.Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # scikeras reads these as attributes; they are not parameters of this estimator.
    model = None
    build_fn = None
    warm_start = False

    def __init__(
        self,
        *,
        n_factors=32,
        interaction="dot",
        hidden_layer_sizes=(),
        activation="relu",
        alpha="auto",
        alpha_bias=0.01,
        regularization="batch",
        init_std=0.01,
        optimizer="lazy_adam",
        learning_rate="auto",
        loss="squared_error",
        epochs=10,
        batch_size=1024,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=3,
        clip_predictions=True,
        user_features=None,
        item_features=None,
        implicit=False,
        alpha_implicit=0.5,
        time_column=None,
        time_bins=30,
        negative_ratio=0.0,
        negative_rating=None,
        negative_weight=1.0,
        selection_factors=0,
        n_estimators=1,
        item_item_alpha=None,
        item_item_weight="auto",
        distribution=None,
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.n_factors = n_factors
        self.interaction = interaction
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.alpha_bias = alpha_bias
        self.regularization = regularization
        self.init_std = init_std
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.loss = loss
        self.epochs = epochs
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.clip_predictions = clip_predictions
        self.user_features = user_features
        self.item_features = item_features
        self.implicit = implicit
        self.alpha_implicit = alpha_implicit
        self.time_column = time_column
        self.time_bins = time_bins
        self.negative_ratio = negative_ratio
        self.negative_rating = negative_rating
        self.negative_weight = negative_weight
        self.selection_factors = selection_factors
        self.n_estimators = n_estimators
        self.item_item_alpha = item_item_alpha
        self.item_item_weight = item_item_weight
        self.distribution = distribution
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    # BaseWrapper.score would come first in the MRO; use scikit-learn's R^2 score.
    score = RegressorMixin.score

    # Parameters are the __init__ signature, as in scikit-learn (scikeras reads __dict__).
    _get_param_names = BaseEstimator.__dict__["_get_param_names"]
    set_params = BaseEstimator.set_params  # scikeras's suggests adding unknown names to __init__
    __repr__ = BaseEstimator.__repr__

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"
        tags.regressor_tags = RegressorTags()
        tags.target_tags.required = True
        tags.input_tags.string = True  # ids may be strings
        tags.input_tags.categorical = True  # ids are labels, not magnitudes
        tags.non_deterministic = self.random_state is None
        return tags

    # ------------------------------------------------------------------ fit
    def fit(self, X, y, sample_weight=None, *, validation_data=None):
        """Learn the id vocabularies, the mean rating and the network.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_ratings, 2 + n_feature_columns)
            User id in column 0, item id in column 1 (any hashable labels),
            then the columns named in ``user_features`` and ``item_features``.
        y : array-like of shape (n_ratings,)
            Ratings.
        sample_weight : array-like of shape (n_ratings,), default=None
            Non-negative weight of each rating's squared error and of its
            per-rating penalty in the loss, scaled to mean 1, so that an
            integer weight counts as that many copies of the rating; a
            weight of 0 drops the rating (its ids are then unknown unless
            other ratings have them); ``mu_`` is the weighted mean.  On the
            compiled path (the plain dot model with ``"lazy_adam"``,
            ``"adagrad"`` or ``"sgd"``) the weights multiply each rating's terms in its batch;
            on the others (``keras.Model.fit``, multi-worker) each epoch
            draws its ratings with replacement in proportion to the weights,
            the same objective in expectation.  Routed by scikit-learn's
            ``cross_validate`` and searches like any fit parameter.
        validation_data : tuple (X_val, y_val), optional
            Ratings to evaluate after every epoch (``history_["val_rmse"]``),
            as Keras's ``validation_data``.  When given, it is also what early
            stopping monitors, and no training rating is held out.

        Returns
        -------
        self : EmbeddingMFRegressor

        Raises
        ------
        ValueError
            For invalid parameters, ``X``, ``y`` or ``sample_weight``, each
            naming what it got and what it expects; and when training
            diverges (a loss that is not finite, e.g. a ``learning_rate``
            far too large or ratings far off the usual scale), at the end of
            the first such epoch, naming it, instead of returning a model
            whose predictions are NaN.  The estimator is then left as it was.
        """
        # a fit that fails, for bad input or during training, leaves the
        # estimator as it was: still fitted with its previous model, or unfitted
        with restore_on_failure(self):
            self._fit_ratings(X, y, sample_weight, validation_data)
            if self.n_estimators > 1 and self.optimizer != "gibbs":  # (gibbs: n_estimators samples, averaged)
                self._average_members(X, y, sample_weight, validation_data)
            self._fit_item_item(X, y, sample_weight)
            return self

    def _average_members(self, X, y, sample_weight, validation_data):
        """Fit ``n_estimators - 1`` more members and make the network their average (see ``n_estimators``)."""
        from sklearn.base import clone

        members = [self]
        for k in range(1, self.n_estimators):
            seed = None if self.random_state is None else self._seed() + k
            member = clone(self).set_params(n_estimators=1, item_item_alpha=None, random_state=seed, verbose=0,
                                            alpha=self.alpha_, learning_rate=self.learning_rate_)
            members.append(member.fit(X, y, sample_weight=sample_weight, validation_data=validation_data))
        tables = {name: [] for name in ("user_factors", "item_factors", "user_bias", "item_bias")}
        for member in members:  # each member's rows in this estimator's vocabularies (0: an id it never saw)
            own = dot_tables(member.model_)
            for side in ("user", "item"):
                encoder = getattr(self, f"{side}_encoder_")
                rows = np.r_[0, getattr(member, f"{side}_encoder_").transform(encoder.classes_)]
                tables[f"{side}_factors"].append(own[f"{side}_factors"][rows])
                tables[f"{side}_bias"].append(own[f"{side}_bias"][rows])
        model = self._build_and_compile(n_factors=self.fitted_params_["n_factors"] * self.n_estimators)
        for side in ("user", "item"):
            factors, bias = fold_members(tables[f"{side}_factors"], tables[f"{side}_bias"])
            model.get_layer(f"{side}_factors").embeddings.assign(factors)
            model.get_layer(f"{side}_bias").embeddings.assign(bias[:, None])
        model.optimizer.build(model.trainable_variables)  # its (zero) state, as a trained network's file has
        self.model_ = model
        self.mu_ = float(np.mean([member.mu_ for member in members]))

    def _fit_item_item(self, X, y, sample_weight):
        """``item_item_`` and its attributes (see :mod:`skmfnet._item_item`), after the rating model."""
        from ._item_item import ALPHA_GRID, WEIGHT_GRID, choose, covered_items, fit_table, gram

        alpha, weight = self.item_item_alpha, self.item_item_weight
        self.item_item_ = self.item_item_items_ = self.item_item_results_ = None
        self.item_item_alpha_ = self.item_item_weight_ = None
        if alpha is None:
            return
        if "auto" in (alpha, weight):
            alphas = ALPHA_GRID if alpha == "auto" else (alpha,)
            weights = WEIGHT_GRID if weight == "auto" else (weight,)
            alpha, weight, self.item_item_results_ = choose(self, X, y, sample_weight, alphas, weights)
            if self.verbose:
                print(f"item_item_alpha={alpha}, item_item_weight={weight}: the best held-out NDCG@10")
        self.item_item_items_ = covered_items(self.seen_)
        self.item_item_ = fit_table(gram(self.seen_, self.item_item_items_), alpha)
        self.item_item_alpha_, self.item_item_weight_ = float(alpha), float(weight)

    def _fit_ratings(self, X, y, sample_weight, validation_data):
        self._validate_params()
        self._check_combinations(validation_data)
        rows, target, fit_kwargs, candidates, early_stopping = self._prepare_fit(
            X, y, sample_weight, validation_data
        )
        self._early_stopping = early_stopping
        self._prepared = {}  # the candidates train on the same ratings: one copy of their blocks
        best, results = None, []
        for pair in candidates:  # one, unless "auto" compares pairs on held-out ratings (see _auto)
            self.alpha_, self.learning_rate_ = float(pair["alpha"]), float(pair["learning_rate"])
            super().fit(rows, target, **fit_kwargs)
            if len(candidates) > 1:
                curve = self.history_["val_rmse"]
                score = min(curve)
                results.append({"alpha": self.alpha_, "learning_rate": self.learning_rate_,
                                "best_val_rmse": score, "best_epoch": curve.index(score) + 1, "epochs": len(curve)})
                if best is None or score < best[0]:
                    best = (score, dict(vars(self)))
                if self.verbose:
                    print(f"alpha={self.alpha_}, learning_rate={self.learning_rate_}: "
                          f"best held-out RMSE {score:.4f} after epoch {curve.index(score) + 1}")
        if best is not None:  # the fitted state of the better pair (each fit replaced, never mutated it)
            vars(self).clear()
            vars(self).update(best[1])
        self.auto_results_ = results or None
        del self._implicit_history  # now in the network's weights
        del self._user_mean_times
        del self._train_weights
        del self._early_stopping
        del self._prepared
        del self._plan
        return self

    def _prepare_fit(self, X, y, sample_weight, validation_data):
        """Validate, hold out, encode: the fitted state before training, and what training needs.

        Returns ``(rows, centred ratings, keyword arguments of KerasRegressor.fit,
        (alpha, learning_rate) pairs, early stopping)``.  Raw ids are let go
        as soon as they are encoded (at 25 million ratings each copy of the
        two id columns is 400 MB).
        """
        users, items, extras, y = validate_user_item(self, X, y, reset=True, with_features=True)
        weights = None  # no sample_weight: no array of n ones (200 MB at 25 million ratings)
        if sample_weight is not None:
            weights, keep = check_sample_weight(sample_weight, len(y))
            users, items, extras, y, weights = users[keep], items[keep], extras[keep], y[keep], weights[keep]
        params = self.get_params(deep=False)
        self._plan = plan(params, len(y))
        candidates, early_stopping = self._plan.candidates, self._plan.early_stopping

        held_out = validation_data is None and early_stopping
        if held_out:
            if len(y) < 2:
                raise ValueError(
                    f"early_stopping=True needs at least 2 ratings to hold out a validation set; "
                    f"got {len(y)}. Set early_stopping=False."
                )
            train_part, val_part = train_test_split(
                np.arange(len(y)),
                test_size=self.validation_fraction,
                random_state=self._seed(),
            )
            validation = (users[val_part], items[val_part], extras[val_part], y[val_part])
            users, items, extras, y = users[train_part], items[train_part], extras[train_part], y[train_part]
            weights = None if weights is None else weights[train_part]
            del train_part, val_part
        elif validation_data is not None:
            X_val, y_val = validation_data
            validation = validate_user_item(self, X_val, y_val, reset=False, with_features=True)
        else:
            validation = None

        # fitted state: the parameters of this fit, its engine, then the encoding
        self.fitted_params_ = copy.deepcopy(params)
        self.engine_ = self._plan.engine
        encoding, rows = fit_encoding(self, users, items, extras)
        del users, items, extras
        for name, value in encoding._asdict().items():
            setattr(self, name, value)
        if self._plan.engine == "gibbs":  # the features' columns, as the network reads them
            features = [(side, e.n_known, e.width) for side in ("user", "item")
                        for e in getattr(self, f"{side}_feature_encoders_")]
            self._plan = self._plan._replace(gibbs=self._plan.gibbs[:3] + (features,))
        self.mu_ = weighted_mean(y, weights)
        self._train_weights = None
        if sample_weight is not None:
            # scaled to mean 1 (their largest to 1 first, so that no sum overflows):
            # an integer weight counts as that many copies of the rating
            relative = weights / np.max(weights)
            self._train_weights = (relative / relative.mean()).astype(np.float32)
        self._n_train = len(y)
        self.rating_range_ = (float(np.min(y)), float(np.max(y)))
        target = (y - self.mu_).astype(np.float32)
        del y, weights

        fit_kwargs = {}
        if validation is not None:
            val_users, val_items, val_extras, val_y = validation
            del validation
            fit_kwargs["validation_data"] = (
                encode(self, val_users, val_items, val_extras),
                (val_y - self.mu_).astype(np.float32),
            )
            del val_users, val_items, val_extras, val_y

        if not held_out or self.implicit:
            training_pairs = seen_matrix_from_rows(rows[:, 0], rows[:, 1], self.n_users_, self.n_items_)
        if held_out:  # pairs held out for early stopping are seen too (pairs with new ids are dropped)
            val_rows = fit_kwargs["validation_data"][0]
            self.seen_ = seen_matrix_from_rows(
                np.concatenate([rows[:, 0], val_rows[:, 0]]), np.concatenate([rows[:, 1], val_rows[:, 1]]),
                self.n_users_, self.n_items_,
            )
        else:
            self.seen_ = training_pairs
        # N(u) (N(i)) of the implicit term: the training pairs only (not the held-out ones)
        self._implicit_history = {}
        for side in IMPLICIT_SIDES[self.implicit]:
            pairs = training_pairs if side == "user" else training_pairs.T.tocsr()
            pairs.sort_indices()
            self._implicit_history[side] = (pairs.indptr, pairs.indices)
        # t_u of every user row, for the time effects' drift (the training ratings' time codes)
        self._user_mean_times = None if self.time_column_ is None else user_mean_times(
            rows[:, 0], rows[:, -1], self.n_users_)
        return rows, target, fit_kwargs, candidates, early_stopping

    def _present(self, *conditions):
        """Which of these conditions the parameters meet, each as the errors name it ("implicit=True", ...)."""
        named = {
            "concat": ("interaction='concat'", self.interaction != "dot"),
            "implicit": (f"implicit={self.implicit!r}", bool(self.implicit)),
            "user_features": ("user_features", self.user_features),
            "item_features": ("item_features", self.item_features),
            "time": (f"time_column={self.time_column!r}", self.time_column is not None),
            "loss": (f"loss={self.loss!r}", self.loss != "squared_error"),
            "negatives": (f"negative_ratio={self.negative_ratio!r}", self.negative_ratio > 0),
            "early_stopping": ("early_stopping=True", self.early_stopping is True),
            "distribution": (f"distribution={self.distribution!r}", self.distribution is not None),
        }
        return [named[c][0] for c in conditions if named[c][1]]

    def _check_gibbs(self):
        """``optimizer="gibbs"`` samples the dot model (side information, implicit terms, time effects) on one machine."""
        from ._training._gibbs import kept_sweeps

        unsupported = self._present("concat", "loss", "negatives", "early_stopping", "distribution")
        if unsupported:
            raise ValueError(
                "optimizer='gibbs' samples the dot model (interaction='dot', loss='squared_error', side "
                "information, implicit terms and time effects allowed; no sampled pairs, no early stopping, one "
                "process); got "
                f"{', '.join(unsupported)}."
            )
        kept_sweeps(self.epochs, self.n_estimators)  # enough sweeps for the samples kept (or a ValueError)

    def _check_combinations(self, validation_data):
        """Refuse parameter combinations that ``_parameter_constraints`` cannot express."""
        if self.interaction == "dot" and len(self.hidden_layer_sizes) > 0:
            raise ValueError(
                "hidden_layer_sizes must be () when interaction='dot'; got "
                f"{tuple(self.hidden_layer_sizes)!r}. Use interaction='concat' for hidden layers."
            )
        bad = [w for w in self.hidden_layer_sizes if not isinstance(w, numbers.Integral) or w < 1]
        if bad:
            raise ValueError(
                f"hidden_layer_sizes must contain positive integers; got {tuple(self.hidden_layer_sizes)!r}."
            )
        if self.n_jobs == 0:
            raise ValueError(
                "n_jobs must be a positive number of threads, a negative number counted from the "
                "number of cores (-1: all), or None; got 0."
            )
        if self.selection_factors > 0 and self.negative_ratio == 0:
            raise ValueError(
                f"selection_factors={self.selection_factors!r} is a term trained on sampled pairs: it "
                "needs negative_ratio > 0; got negative_ratio=0. Set negative_ratio (e.g. 3.0) or "
                "selection_factors=0."
            )
        if self.negative_ratio > 0:
            self._require_compiled_path(f"negative_ratio={self.negative_ratio!r}", "Set negative_ratio=0")
        if self.n_estimators > 1 and self.optimizer != "gibbs":  # (gibbs: samples, see _check_gibbs)
            blockers = self._present("concat", "implicit", "user_features", "item_features", "time", "negatives",
                                     "distribution")
            if blockers:
                raise ValueError(
                    f"n_estimators={self.n_estimators!r} averages plain dot models (interaction='dot', no "
                    "side information, implicit term, time effects or sampled pairs, one process); got "
                    f"{', '.join(blockers)}. Set n_estimators=1."
                )

        if self.optimizer == "gibbs":
            self._check_gibbs()
        if self.distribution == "parameter_server":
            # (its loop implements LazyAdam's and SGD's rules, not Adagrad's)
            unsupported = self._compiled_path_blockers(self.get_params(deep=False)) + (
                [f"negative_ratio={self.negative_ratio!r}"] if self.negative_ratio else []) + (
                ["optimizer='adagrad'"] if self.optimizer == "adagrad" else [])
            if unsupported:
                raise ValueError(
                    "distribution='parameter_server' trains the plain dot model: interaction='dot', "
                    "regularization='batch', loss='squared_error', optimizer 'lazy_adam' or 'sgd', no "
                    "user_features, item_features, implicit feedback or sampled pairs (negative_ratio=0); "
                    f"got {', '.join(unsupported)}."
                )
        if self.distribution == "multi_worker":
            compiled = not self._compiled_path_blockers(self.get_params(deep=False))
            if self._seed() is None:
                raise ValueError(
                    "distribution='multi_worker' needs an integer random_state, the same on "
                    "every worker, so that all workers shuffle the ratings identically; got None."
                )
            unsupported = [
                f"{name}={value!r}"
                for name, value, bad in [
                    ("loss", self.loss, self.loss != "squared_error"),
                    ("early_stopping", self.early_stopping,
                     self.early_stopping != "auto" and bool(self.early_stopping) and not compiled),
                    ("validation_data", "given", validation_data is not None and not compiled),
                ]
                if bad
            ]
            if unsupported:
                raise ValueError(
                    "distribution='multi_worker' trains with loss='squared_error', and without "
                    "early stopping or validation_data outside the compiled path (the plain dot "
                    f"model with optimizer 'lazy_adam', 'adagrad' or 'sgd'); got {', '.join(unsupported)}."
                )

    @staticmethod
    def _compiled_path_blockers(params):
        """The parameters in ``params`` that keep a fit off the compiled kernel, as "name=value"."""
        return compiled_path_blockers(params)

    def _require_compiled_path(self, what, remedy):
        """Refuse ``what`` unless the parameters take the compiled path (:mod:`skmfnet._training._schedule`)."""
        unsupported = self._compiled_path_blockers(self.get_params(deep=False))
        if unsupported:
            raise ValueError(
                f"{what} trains on the compiled path only: interaction='dot', regularization='batch', "
                "loss='squared_error', optimizer 'lazy_adam', 'adagrad' or 'sgd', no user_features, item_features "
                f"or implicit feedback, distribution None or 'multi_worker'; got {', '.join(unsupported)}. "
                f"{remedy} for this model."
            )

    def _seed(self):
        """An int seed derived from random_state (None stays None)."""
        if self.random_state is None:
            return None
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state)
        # a RandomState: draw from a copy, so that the caller's generator is not advanced
        copy = np.random.RandomState()
        copy.set_state(self.random_state.get_state())
        return int(copy.randint(2**31 - 1))

    # scikeras hooks (called by KerasRegressor.fit, so during fit) ------------
    def _validate_data(self, X=None, y=None, reset=False, y_numeric=False):
        # Ids were validated and encoded before scikeras sees them (see module docstring).
        return X, y

    def _check_model_compatibility(self, y):
        # scikeras compares ``loss`` with Keras loss names; here ``loss`` is this
        # estimator's own option and the network always has one output.
        pass

    def _keras_build_fn(self):
        if self.distribution is None:
            return self._build_and_compile()
        strategy = get_strategy(self.distribution)  # created before any other TensorFlow operation
        if self.distribution == "parameter_server" or (
            self.distribution == "multi_worker" and not self._compiled_path_blockers(self.fitted_params_)
        ):
            # these loops train tables of their own (local, or sharded over the
            # servers) and write them into an ordinary model: no mirrored variables
            return self._build_and_compile()
        with strategy.scope():
            return self._build_and_compile()

    def _build_and_compile(self, n_factors=None):
        """The compiled network of the fitted parameters and vocabularies (fit, and fold_in).

        ``n_factors``: the width of the factor tables when not the parameter's
        (fold_in of averaged members: ``n_factors * n_estimators``).
        """
        params = self.fitted_params_
        gibbs = params["optimizer"] == "gibbs"  # its samples' tables side by side; no Keras optimizer trains them
        if n_factors is None:
            n_factors = params["n_factors"] * (params["n_estimators"] if gibbs else 1)
        model = build_network(
            self.n_users_,
            self.n_items_,
            n_factors=n_factors,
            interaction=params["interaction"],
            hidden_layer_sizes=tuple(params["hidden_layer_sizes"]),
            activation=params["activation"],
            alpha=self.alpha_,
            alpha_bias=params["alpha_bias"],
            regularization=params["regularization"],
            init_std=params["init_std"],
            user_features=[(e.name, e.n_known, e.width) for e in self.user_feature_encoders_],
            item_features=[(e.name, e.n_known, e.width) for e in self.item_feature_encoders_],
            implicit=getattr(self, "_implicit_history", {}).get("user"),  # set during fit (and fold_in) only
            item_implicit=getattr(self, "_implicit_history", {}).get("item"),
            alpha_implicit=params["alpha_implicit"],
            time_effects=None if getattr(self, "time_column_", None) is None else (
                params["time_bins"], getattr(self, "_user_mean_times", None)),  # t_u: set during fit only
            seed=self._seed(),
        )
        return compile_network(
            model,
            optimizer="sgd" if gibbs else params["optimizer"],
            learning_rate=self.learning_rate_,
            loss=params["loss"],
            n_train=self._n_train,
            batch_size=params["batch_size"],
        )

    def _build_keras_model(self):
        # scikeras would build (and fit) inside ``tensorflow_random_state``, which
        # sets TF_DETERMINISTIC_OPS: TensorFlow caches that variable the first
        # time it reads it, so op determinism stays on for the rest of the
        # process (later unseeded fits then fail with "Random ops require a
        # seed", and XLA is refused).  Here the initializers and the shuffling
        # are seeded explicitly and no global random state is touched.
        return self._keras_build_fn()

    def _fit_keras_model(self, X, y, sample_weight, warm_start, epochs, initial_epoch, **kwargs):
        self.history_, layout = train(
            self.model_,
            X,
            y,
            plan=self._plan,
            epochs=epochs,
            batch_size=self.batch_size,
            seed=self._seed(),
            alpha=self.alpha_,
            alpha_bias=self.fitted_params_["alpha_bias"],
            negatives=self._negatives(len(y)),
            selection=self._selection_tables(),
            weights=self._train_weights,
            prepared=getattr(self, "_prepared", None),
            validation=kwargs.pop("validation_data", None),
            callbacks=self._fit_callbacks,
            verbose=self.verbose,
        )
        for callback in self._fit_callbacks:  # its best weights are the model's now: no second copy
            if isinstance(callback, keras.callbacks.EarlyStopping):
                callback.best_weights = None
        if layout is not None:
            self.table_shards_ = layout
        elif hasattr(self, "table_shards_"):  # from an earlier fit on parameter servers
            del self.table_shards_

    def _negatives(self, n_train):
        """(sampled pairs per batch, their centred rating, their weight) of this fit."""
        params = self.fitted_params_
        if params["negative_ratio"] == 0:
            return (0, 0.0, 0.0)
        batch = min(params["batch_size"], n_train)
        rating = self.rating_range_[0] if params["negative_rating"] is None else params["negative_rating"]
        return (max(1, round(params["negative_ratio"] * batch)), float(rating) - self.mu_,
                float(params["negative_weight"]))

    def _selection_tables(self):
        """Initial selection tables of this fit (None without a selection term), set as fitted state.

        Factors drawn like the network's (normal, ``init_std``, seeded by
        ``random_state``), biases and row 0 (unknown ids) zero; trained in
        place by :func:`skmfnet._training.train`.
        """
        params = self.fitted_params_
        self.user_selection_ = self.item_selection_ = None
        if params["selection_factors"] == 0:
            return None
        seed = self._seed()
        rng = np.random.default_rng(None if seed is None else [seed, 0x5E1EC7])
        std = 0.05 if params["init_std"] is None else params["init_std"]  # None: Keras's scale
        tables = []
        for n in (self.n_users_, self.n_items_):
            table = np.zeros((n + 1, params["selection_factors"] + 1), dtype=np.float32)
            table[1:, :-1] = rng.normal(0.0, std, (n, params["selection_factors"]))
            tables.append(table)
        self.user_selection_, self.item_selection_ = tables
        return tables

    def _initialize_callbacks(self):
        callbacks = []
        # (a loaded model file also initializes them: it trains no more, _early_stopping is unset)
        if getattr(self, "_early_stopping", False):
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_rmse",
                    mode="min",
                    patience=self.fitted_params_["n_iter_no_change"],
                    restore_best_weights=True,
                )
            )
        self._fit_callbacks = callbacks
        self._predict_callbacks = []

    # --------------------------------------------- predict (fitted state only)
    def _plain_dot(self):
        """Whether the fitted network is ``b_u + b_i + p_u . q_i`` of its four tables alone."""
        params = self.fitted_params_
        return params["interaction"] == "dot" and not (
            params["implicit"] or self.user_feature_encoders_ or self.item_feature_encoders_
            or getattr(self, "time_column_", None) is not None
        )

    def _pair_inputs(self, user_rows, item_rows):
        """The network's input for encoded rows, with the features stored at fit."""
        return pair_inputs(self, user_rows, item_rows)

    def predict(self, X):
        """Predict ratings.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_pairs, 2 + n_feature_columns)
            User id in column 0, item id in column 1, then the feature columns
            given in fit.

        Returns
        -------
        y_pred : ndarray of shape (n_pairs,), float64
            Predicted ratings; unknown ids fall back as described in the class
            docstring.  When no user and no item of ``X`` was seen in fit, a
            ``UserWarning`` says so (most often ids of another type).
        """
        check_is_fitted(self, "model_")
        users, items, extras = validate_user_item(self, X, reset=False, with_features=True)
        rows = encode(self, users, items, extras)
        warn_if_no_id_known(rows[:, 0], rows[:, 1], self.user_encoder_, self.item_encoder_, users, items)
        # unknown ids are row 0, whose embeddings are zero (see the class docstring)
        if self._plain_dot():  # numpy on the tables: the arithmetic of recommend and the CLI's reader
            y_pred = pair_scores(self.mu_, dot_tables(self.model_), rows[:, 0], rows[:, 1])
        else:
            y_pred = score_rows(self.model_, rows).astype(np.float64) + self.mu_
        if self.fitted_params_["clip_predictions"]:
            np.clip(y_pred, *self.rating_range_, out=y_pred)
        return y_pred

    def fold_in(self, X, y):
        """Give rows to users (or items) not seen in fit, from their ratings, without refitting.

        For the plain dot model, each new user's factors and bias are the
        exact minimiser of the training objective for that row with every
        other row held fixed (a ridge regression against the known items'
        factors, closed form); likewise each new item's against the known
        users'.  With side information, implicit feedback or the ``concat``
        network, full-batch Adam steps on the new rows alone minimise the
        same objective (a new user's features are those of their first
        rating here).  Nothing else changes: known pairs predict exactly as
        before.  The new ids join the vocabularies (and their pairs
        ``seen_``), so ``predict``, ``recommend`` and ``save`` treat them
        like ids seen in fit.  This is not ``partial_fit``: ratings between
        known users and items are refused, not learnt.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_ratings, 2 + n_feature_columns)
            (user id, item id) pairs, then the feature columns of fit; in
            each pair exactly one of the two ids is new (a new user's
            ratings of known items, or a new item's ratings by known users).
        y : array-like of shape (n_ratings,)
            Their ratings.

        Returns
        -------
        self : EmbeddingMFRegressor

        Raises
        ------
        ValueError
            For a rating whose user and item are both known (or both new);
            an id of another type than the model's ids of that side (``"196"``
            for a model of integer ids: it would become a new string id);
            a rating outside the model's ``rating_range_`` by more than its
            width (a rating on another scale would give rows the model's
            scale cannot hold); or invalid ``X``/``y`` (as in fit).  The
            estimator is then left as it was.  (With ``alpha=0`` and
            ``alpha_bias=0`` a new row with fewer ratings than factors is the
            least-norm least-squares solution, not an error.)

        Examples
        --------
        >>> from skmfnet import EmbeddingMFRegressor
        >>> X = [["ann", "a"], ["ann", "b"], ["bob", "a"], ["bob", "c"]]
        >>> est = EmbeddingMFRegressor(n_factors=2, epochs=1, random_state=0).fit(X, [5, 3, 4, 2])
        >>> est = est.fold_in([["cid", "a"], ["cid", "c"]], [5, 1])
        >>> est.n_users_, "cid" in est.user_encoder_.classes_
        (3, True)
        """
        from ._foldin import fold_in

        with restore_on_failure(self):
            return fold_in(self, X, y)

    def similar_items(self, items, n=10):
        """The ``n`` known items most similar to each of ``items``, by cosine of their factors.

        Parameters
        ----------
        items : id or array-like of ids
            Raw item ids seen in fit (duplicates ignored, first kept).
        n : int, default=10
            Neighbours per item (fewer when fewer other items are known).

        Returns
        -------
        similar : pandas.DataFrame
            One row per (item, neighbour), items in the order given, with
            columns ``item``, ``rank`` (1 = most similar), ``similar_item``
            and ``similarity`` (cosine, in [-1, 1]).  The vectors compared
            are the items' factors ``q_i`` as the network uses them (with
            the mean factors of their feature labels under side
            information); the item itself is left out.

        Raises
        ------
        ValueError
            If an id was not seen in fit (an unknown item has no learned
            factors): the message lists them.

        Examples
        --------
        >>> from skmfnet import EmbeddingMFRegressor
        >>> X = [["ann", "a"], ["ann", "b"], ["bob", "a"], ["bob", "b"], ["cid", "c"], ["cid", "d"]]
        >>> est = EmbeddingMFRegressor(n_factors=2, epochs=1, random_state=0).fit(X, [5, 5, 4, 4, 1, 2])
        >>> list(est.similar_items("a", n=2).columns)
        ['item', 'rank', 'similar_item', 'similarity']
        """
        from ._similar import similar

        return similar(self, items, "item", n)

    def similar_users(self, users, n=10):
        """The ``n`` known users most similar to each of ``users``, by cosine of their factors.

        As :meth:`similar_items`, for users: columns ``user``, ``rank``,
        ``similar_user``, ``similarity``; the vectors are ``p_u`` as the
        network uses them (with the mean factors of their feature labels and
        SVD++'s implicit term when the model has them).
        """
        from ._similar import similar

        return similar(self, users, "user", n)

    # scikeras methods that bypass the id encoding are not offered.
    @available_if(_never)
    def partial_fit(self, X, y, sample_weight=None, **kwargs):  # pragma: no cover
        raise NotImplementedError

    @available_if(_never)
    def initialize(self, X, y=None):  # pragma: no cover
        raise NotImplementedError
