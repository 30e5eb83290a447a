"""The Keras network: embeddings of users and items, and how they interact.

:func:`build_network` is a pure function from vocabulary sizes and
hyperparameters to an uncompiled :class:`keras.Model`; it knows nothing about
raw ids, the global mean or scikit-learn.  Its single input is an int32 tensor
of shape ``(batch, 2)`` holding (user row, item row) as produced by
:class:`skmfnet._encoding.IdEncoder`; its output is the centred score
``r_hat - mu`` of shape ``(batch, 1)``.  With side information the input
has more columns after those two: the codes of each user feature, then of each
item feature (:mod:`skmfnet._features`), ``width`` columns per feature.

Two interactions are offered:

``"dot"``
    ``b_u + b_i + p_u . q_i`` -- classic biased matrix factorization.
``"concat"``
    ``[p_u, q_i, b_u, b_i]`` (``2K + 2`` wide) through ``Dense`` layers of
    ``hidden_layer_sizes`` and a final ``Dense(1)`` -- the tutorial's network.

Side information and implicit feedback change what ``p_u``, ``q_i``, ``b_u``
and ``b_i`` are, not how they meet:

* each user feature adds its own K-wide factor and 1-wide bias embedding
  (averaged over the labels of a multi-valued feature) to ``p_u`` and ``b_u``;
  item features likewise to ``q_i`` and ``b_i``;
* ``implicit`` adds the SVD++ term ``|N(u)|^-1/2 sum_{j in N(u)} y_j`` to
  ``p_u``, where ``N(u)`` is the set of items ``u`` rated in training
  (:class:`ImplicitFeedback`), and its item-side twin
  ``|N(i)|^-1/2 sum_{v in N(i)} z_v`` (``N(i)``: the users who rated ``i``) to
  ``q_i``: the same layer with the roles of users and items swapped.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from ._time import DRIFT_EXPONENT, TIME_STEPS

__all__ = ["build_network", "dot_tables", "score_rows", "RowL2Embedding", "FeatureEmbedding", "ImplicitFeedback",
           "TimeEffects"]

USER_FACTORS, ITEM_FACTORS = "user_factors", "item_factors"
USER_BIAS, ITEM_BIAS = "user_bias", "item_bias"
IMPLICIT = "implicit_feedback"
#: The item-side ("flipped") twin of the implicit term: ``|N(i)|^-1/2 sum_{v in N(i)} z_v`` added to ``q_i``.
ITEM_IMPLICIT = "item_implicit_feedback"
#: Koren's time-aware biases (:mod:`skmfnet._time`), added to ``b_i``.
TIME = "time_effects"
#: The sides of the implicit term for each value of the estimator's ``implicit`` parameter.
IMPLICIT_SIDES = {False: (), True: ("user",), "user": ("user",), "item": ("item",), "both": ("user", "item")}

#: Rows per call when scoring without gradients (large is cheap).
SCORE_BATCH = 1 << 16


def score_rows(model, rows):
    """The network's centred scores of ``rows``, as a 1-D numpy array.

    Calls the model eagerly on large chunks: no tf.function to trace
    (``keras.Model.predict`` would trace one per model and warn about
    retracing when many models predict in one process).
    """
    return np.concatenate(
        [
            keras.ops.convert_to_numpy(model(rows[start : start + SCORE_BATCH], training=False)).reshape(-1)
            for start in range(0, len(rows), SCORE_BATCH)
        ]
        or [np.zeros(0, dtype=np.float32)]
    )


def dot_tables(model):
    """The four tables of a dot network as float32 numpy arrays: {"user_factors": P, ..., "item_bias": (n + 1,)}."""
    tables = {}
    for name in (USER_FACTORS, ITEM_FACTORS, USER_BIAS, ITEM_BIAS):
        table = model.get_layer(name).embeddings.numpy()
        tables[name] = table[:, 0] if name in (USER_BIAS, ITEM_BIAS) else table
    return tables


@keras.saving.register_keras_serializable(package="skmfnet")
class RowL2Embedding(keras.layers.Embedding):
    """Embedding whose L2 penalty covers only the rows looked up in the batch.

    Adds ``row_alpha * mean over the batch of ||e_row||^2`` to the model's
    losses at each training step.  Summed over the embeddings of a rating this
    is the per-rating penalty of matrix factorization trained by SGD
    (``lambda * (||p_u||^2 + ||q_i||^2 + b_u^2 + b_i^2)`` for every observed
    rating), which Keras's ``embeddings_regularizer`` (a penalty on the whole
    table at every step) is not: the latter shrinks rarely seen rows as hard
    as frequent ones and scales with the number of steps per epoch.
    """

    def __init__(self, *args, row_alpha=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.row_alpha = float(row_alpha)

    def call(self, inputs):
        outputs = super().call(inputs)
        if self.row_alpha > 0:
            self.add_loss(self.row_alpha * ops.mean(ops.sum(ops.square(outputs), axis=-1)))
        return outputs

    def get_config(self):
        return {**super().get_config(), "row_alpha": self.row_alpha}


@keras.saving.register_keras_serializable(package="skmfnet")
class FeatureEmbedding(RowL2Embedding):
    """Mean embedding of the non-zero codes of one feature, ``(batch, width)`` -> ``(batch, dim)``.

    Code 0 (unknown label, missing value, padding of a multi-valued feature)
    contributes nothing: a row with no known label gets a zero vector.  The
    per-rating penalty (``row_alpha``) applies to the averaged vector, the
    vector that enters the prediction.
    """

    def call(self, inputs):
        looked_up = keras.layers.Embedding.call(self, inputs)  # (batch, width, dim)
        known = ops.expand_dims(ops.cast(inputs > 0, looked_up.dtype), -1)
        outputs = ops.sum(looked_up * known, axis=1) / ops.maximum(ops.sum(known, axis=1), 1.0)
        if self.row_alpha > 0:
            self.add_loss(self.row_alpha * ops.mean(ops.sum(ops.square(outputs), axis=-1)))
        return outputs


@keras.saving.register_keras_serializable(package="skmfnet")
class ImplicitFeedback(keras.layers.Layer):
    """SVD++'s implicit term of the batch's users: ``|N(u)|^-1/2 sum_{j in N(u)} y_j``.

    ``N(u)``, the items user ``u`` rated in training, is held as a CSR
    structure in two non-trainable int32 weights (``indptr`` over user rows,
    ``indices`` of item rows), so it is saved with the model.  Each call
    gathers the histories of the batch's distinct users only, so its cost is
    the number of training ratings of those users, not of all users.  The
    trainable table ``y`` has one K-wide row per item (row 0 for unknown items
    stays zero); ``row_alpha`` penalizes, per rating, the ``y`` row of the
    rated item.

    Called on ``(user_rows, item_rows)``; returns ``(batch, n_factors)``.
    The item-side twin is the same layer called on ``(item_rows, user_rows)``,
    with the users of every item as its history.
    """

    def __init__(self, n_users, n_items, n_pairs, n_factors, *, row_alpha=0.0,
                 embeddings_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.n_users, self.n_items, self.n_pairs = int(n_users), int(n_items), int(n_pairs)
        self.n_factors = int(n_factors)
        self.row_alpha = float(row_alpha)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, input_shape=None):
        self.y = self.add_weight(
            shape=(self.n_items, self.n_factors), initializer=self.embeddings_initializer, name="y"
        )
        self.indptr = self.add_weight(
            shape=(self.n_users + 1,), dtype="int32", initializer="zeros", trainable=False, name="indptr"
        )
        self.indices = self.add_weight(
            shape=(max(self.n_pairs, 1),), dtype="int32", initializer="zeros", trainable=False,
            name="indices",
        )
        self.built = True

    def set_history(self, indptr, indices):
        """Store N(u) for every user row (CSR arrays over ``n_users`` rows)."""
        self.indptr.assign(np.asarray(indptr, dtype=np.int32))
        indices = np.asarray(indices, dtype=np.int32)
        self.indices.assign(np.pad(indices, (0, max(self.n_pairs, 1) - len(indices))))

    def call(self, users, items):
        users = tf.cast(users, "int32")
        distinct, position = tf.unique(users)
        starts = tf.gather(self.indptr, distinct)
        lengths = tf.gather(self.indptr, distinct + 1) - starts
        owner = tf.repeat(tf.range(tf.size(distinct)), lengths)  # distinct user of each pair
        offset = tf.range(tf.reduce_sum(lengths)) - tf.repeat(tf.cumsum(lengths, exclusive=True), lengths)
        rated = tf.gather(self.indices, tf.gather(starts, owner) + offset)
        sums = tf.math.unsorted_segment_sum(tf.gather(self.y, rated), owner, tf.size(distinct))
        scale = tf.math.rsqrt(tf.maximum(tf.cast(lengths, sums.dtype), 1.0))
        implicit = tf.gather(sums * scale[:, None], position)
        if self.row_alpha > 0:
            y_i = tf.gather(self.y, tf.cast(items, "int32"))
            self.add_loss(self.row_alpha * tf.reduce_mean(tf.reduce_sum(tf.square(y_i), axis=-1)))
        return implicit

    def compute_output_shape(self, users_shape, items_shape=None):
        return (users_shape[0], self.n_factors)

    def get_config(self):
        return {
            **super().get_config(),
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_pairs": self.n_pairs,
            "n_factors": self.n_factors,
            "row_alpha": self.row_alpha,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }


@keras.saving.register_keras_serializable(package="skmfnet")
class TimeEffects(keras.layers.Layer):
    """timeSVD's biases of each rating's time: ``b_{i, Bin(t)} + a_u dev_u(t)`` (:mod:`skmfnet._time`).

    Trainable: ``item_bin_bias`` (one row of ``n_bins`` per item row) and
    ``user_drift`` (``a_u`` per user row), both starting at zero; not
    trainable: ``user_mean`` (``t_u``, set from the training ratings and saved
    with the model).  ``row_alpha`` penalizes, per rating, the squares of the
    bin bias and the drift it uses.  Code -1 (unknown time) gives 0.

    Called on ``(user_rows, item_rows, time_codes)``; returns ``(batch, 1)``.
    """

    def __init__(self, n_users, n_items, n_bins, *, row_alpha=0.0, **kwargs):
        super().__init__(**kwargs)
        self.n_users, self.n_items, self.n_bins = int(n_users), int(n_items), int(n_bins)
        self.row_alpha = float(row_alpha)

    def build(self, input_shape=None):
        self.item_bin_bias = self.add_weight(shape=(self.n_items, self.n_bins), initializer="zeros",
                                             name="item_bin_bias")
        self.user_drift = self.add_weight(shape=(self.n_users, 1), initializer="zeros", name="user_drift")
        self.user_mean = self.add_weight(shape=(self.n_users,), initializer="zeros", trainable=False,
                                         name="user_mean")
        self.built = True

    def call(self, users, items, codes):
        users, items, codes = tf.cast(users, "int32"), tf.cast(items, "int32"), tf.cast(codes, "int32")
        known = tf.cast(codes >= 0, self.item_bin_bias.dtype)
        fraction = tf.cast(tf.maximum(codes, 0), self.item_bin_bias.dtype) / TIME_STEPS
        bins = tf.minimum(tf.cast(fraction * self.n_bins, "int32"), self.n_bins - 1)
        bias = tf.gather_nd(self.item_bin_bias, tf.stack([items, bins], axis=1))
        delta = fraction - tf.gather(self.user_mean, users)
        drift = tf.gather(self.user_drift, users)[:, 0]
        if self.row_alpha > 0:
            self.add_loss(self.row_alpha * tf.reduce_mean(known * (tf.square(bias) + tf.square(drift))))
        effect = known * (bias + drift * tf.sign(delta) * tf.pow(tf.abs(delta), DRIFT_EXPONENT))
        return effect[:, None]

    def compute_output_shape(self, users_shape, items_shape=None, codes_shape=None):
        return (users_shape[0], 1)

    def get_config(self):
        return {**super().get_config(), "n_users": self.n_users, "n_items": self.n_items, "n_bins": self.n_bins,
                "row_alpha": self.row_alpha}


@keras.saving.register_keras_serializable(package="skmfnet")
class ZeroFirstRow(keras.initializers.Initializer):
    """Wrap an initializer and set row 0 (the unknown-id row) to zeros."""

    def __init__(self, initializer):
        self.initializer = keras.initializers.get(initializer)

    def __call__(self, shape, dtype=None):
        values = self.initializer(shape, dtype=dtype)
        mask = ops.expand_dims(ops.cast(ops.arange(shape[0]) > 0, values.dtype), -1)
        return values * mask

    def get_config(self):
        return {"initializer": keras.initializers.serialize(self.initializer)}


def _embedding(n_rows, width, *, name, alpha, regularization, initializer, feature=False):
    """One table with ``n_rows + 1`` rows (row 0 = unknown ids, kept at zero).

    ``feature=True`` gives a :class:`FeatureEmbedding` (masked mean over the
    codes of a feature).
    """
    initializer = ZeroFirstRow(initializer)
    cls = FeatureEmbedding if feature else RowL2Embedding
    if regularization == "table":
        return cls(
            n_rows + 1,
            width,
            embeddings_initializer=initializer,
            embeddings_regularizer=keras.regularizers.L2(alpha) if alpha > 0 else None,
            name=name,
        )
    return cls(n_rows + 1, width, embeddings_initializer=initializer, row_alpha=alpha, name=name)


def build_network(
    n_users,
    n_items,
    *,
    n_factors,
    interaction="dot",
    hidden_layer_sizes=(),
    activation="relu",
    alpha=0.0,
    alpha_bias=0.0,
    regularization="batch",
    init_std=None,
    user_features=(),
    item_features=(),
    implicit=None,
    alpha_implicit=0.0,
    item_implicit=None,
    time_effects=None,
    seed=None,
):
    """Build the (uncompiled) rating network.

    Parameters
    ----------
    n_users, n_items : int
        Number of known users and items; each table gets one more row (row 0)
        for unknown ids.  Row 0 starts at zero and, since no training rating
        maps to it, stays there.
    n_factors : int
        Width K of the user and item factor embeddings.
    interaction : {"dot", "concat"}
        How the user and item representations meet (see module docstring).
    hidden_layer_sizes : tuple of int
        Dense layers after the concatenation; must be empty for ``"dot"``.
    activation : str
        Activation of the hidden Dense layers (Keras name).
    alpha : float
        L2 strength on the two factor tables.
    alpha_bias : float
        L2 strength on the two bias tables.
    regularization : {"batch", "table"}
        ``"batch"``: per-rating penalty on the looked-up rows
        (:class:`RowL2Embedding`); ``"table"``: Keras ``embeddings_regularizer``
        on the whole tables at every step (the tutorial's ``l2()``).
    init_std : float or None
        Factors start as ``N(0, init_std^2)`` and biases at zero; None keeps
        Keras's default ``uniform(-0.05, 0.05)`` for all four tables (the
        tutorial).
    user_features, item_features : sequence of (name, n_labels, width)
        Side information: for each feature, its number of known labels (its
        tables get ``n_labels + 1`` rows, row 0 for code 0) and its number of
        code columns in the input.  The input columns follow the user and item
        rows in this order: user features, then item features.
    implicit : tuple (indptr, indices) or None
        The training items of every user row, as CSR arrays over
        ``n_users + 1`` rows of item rows; None for no implicit feedback term.
    alpha_implicit : float
        Per-rating L2 strength on the implicit-feedback row ``y_i`` of the
        rated item (and ``z_u`` of the rating user, with ``item_implicit``).
    item_implicit : tuple (indptr, indices) or None
        The item-side twin (Koren's "flipped" SVD++, as in Rendle, Zhang &
        Koren 2019): the training users of every item row, CSR arrays over
        ``n_items + 1`` rows of user rows; the layer ``item_implicit_feedback``
        adds ``|N(i)|^-1/2 sum_{v in N(i)} z_v`` to ``q_i``.  None: no such term.
    time_effects : tuple (n_bins, user_mean) or None
        Koren's time-aware biases (:class:`TimeEffects`, layer ``time_effects``,
        added to ``b_i``): the number of item time bins and ``t_u`` of every
        user row (or None, to be set later); the input's last column is then
        each rating's time code.  None: no time effects.
    seed : int or None
        Seed of every initializer.

    Returns
    -------
    keras.Model
        Input ``(batch, 2 + total feature width)`` int32 (user row, item row,
        feature codes); output ``(batch, 1)``.
    """
    if interaction == "dot" and hidden_layer_sizes:
        raise ValueError(
            f"hidden_layer_sizes must be empty when interaction='dot'; got {hidden_layer_sizes!r}. "
            "Use interaction='concat' for Dense layers."
        )
    def init(kind, offset):
        s = None if seed is None else seed + offset
        if init_std is None:
            return keras.initializers.RandomUniform(-0.05, 0.05, seed=s)
        if kind == "bias":
            return keras.initializers.Zeros()
        return keras.initializers.RandomNormal(0.0, init_std, seed=s)

    # Keras rejects numpy integers as table sizes (the tutorial's ``user_id.max() + 1``)
    n_users, n_items, n_factors = int(n_users), int(n_items), int(n_factors)
    factors = dict(alpha=alpha, regularization=regularization)
    biases = dict(alpha=alpha_bias, regularization=regularization)
    user_features, item_features = list(user_features), list(item_features)
    n_columns = 2 + sum(int(width) for _, _, width in user_features + item_features) + (time_effects is not None)
    rows = keras.Input(shape=(n_columns,), dtype="int32", name="user_item_rows")
    users, items = rows[:, 0], rows[:, 1]
    p_u = _embedding(n_users, n_factors, name=USER_FACTORS, initializer=init("factors", 0), **factors)(users)
    q_i = _embedding(n_items, n_factors, name=ITEM_FACTORS, initializer=init("factors", 1), **factors)(items)
    b_u = _embedding(n_users, 1, name=USER_BIAS, initializer=init("bias", 2), **biases)(users)
    b_i = _embedding(n_items, 1, name=ITEM_BIAS, initializer=init("bias", 3), **biases)(items)

    start = 2
    sides = {"user": [p_u, b_u], "item": [q_i, b_i]}
    for k, (side, (name, n_labels, width)) in enumerate(
        [("user", f) for f in user_features] + [("item", f) for f in item_features]
    ):
        codes = rows[:, start : start + int(width)]
        start += int(width)
        for part, (dim, kind, options) in enumerate(
            [(n_factors, "factors", factors), (1, "bias", biases)]
        ):
            layer = _embedding(
                int(n_labels), dim, name=f"{side}_feature_{k}_{kind}", feature=True,
                initializer=init(kind, 100 + 2 * k + part), **options,
            )
            sides[side][part] = sides[side][part] + layer(codes)
    (p_u, b_u), (q_i, b_i) = sides["user"], sides["item"]
    if time_effects is not None:
        n_bins, user_mean = time_effects
        layer = TimeEffects(n_users + 1, n_items + 1, n_bins, row_alpha=alpha_bias, name=TIME)
        b_i = b_i + layer(users, items, rows[:, -1])
        if user_mean is not None:
            layer.user_mean.assign(np.asarray(user_mean, dtype=np.float32))
    # SVD++'s term on p_u, its item-side twin on q_i: one layer, the roles of users and items swapped
    terms = {"user": (implicit, (n_users, n_items), (users, items), 4, IMPLICIT),
             "item": (item_implicit, (n_items, n_users), (items, users), 5, ITEM_IMPLICIT)}
    added = {}
    for side, (history, (n_owners, n_labels), (owners, labels), offset, name) in terms.items():
        if history is None:
            continue
        indptr, indices = history
        layer = ImplicitFeedback(
            n_owners + 1, n_labels + 1, len(indices), n_factors, row_alpha=alpha_implicit,
            embeddings_initializer=ZeroFirstRow(init("factors", offset)), name=name,
        )
        added[side] = layer(owners, labels)
        layer.set_history(indptr, indices)
    if "user" in added:
        p_u = p_u + added["user"]
    if "item" in added:
        q_i = q_i + added["item"]

    if interaction == "dot":
        dot = ops.sum(p_u * q_i, axis=-1, keepdims=True)
        output = keras.layers.Add(name="score")([dot, b_u, b_i])
    else:
        h = keras.layers.Concatenate(name="concat")([p_u, q_i, b_u, b_i])
        for k, width in enumerate(hidden_layer_sizes):
            h = keras.layers.Dense(
                width,
                activation=activation,
                kernel_initializer=keras.initializers.GlorotUniform(
                    seed=None if seed is None else seed + 1000 + k
                ),
                name=f"hidden_{k}",
            )(h)
        output = keras.layers.Dense(
            1,
            kernel_initializer=keras.initializers.GlorotUniform(
                seed=None if seed is None else seed + 2000
            ),
            name="score",
        )(h)
    return keras.Model(rows, output, name=f"mf_{interaction}")
