"""The Keras network: embeddings of users and items, and how they interact.

:func:`build_network` is a pure function from vocabulary sizes and
hyperparameters to an uncompiled :class:`keras.Model`; it knows nothing about
raw ids, the global mean or scikit-learn.  Its single input is an int32 tensor
of shape ``(batch, 2)`` holding (user row, item row) as produced by
:class:`skmfnet._encoding.IdEncoder`; its output is the centred score
``r_hat - mu`` of shape ``(batch, 1)``.

Two interactions are offered:

``"dot"``
    ``b_u + b_i + p_u . q_i`` -- classic biased matrix factorization.
``"concat"``
    ``[p_u, q_i, b_u, b_i]`` (``2K + 2`` wide) through ``Dense`` layers of
    ``hidden_layer_sizes`` and a final ``Dense(1)`` -- the tutorial's network.
"""

import keras
from keras import ops

__all__ = ["build_network", "RowL2Embedding"]

USER_FACTORS, ITEM_FACTORS = "user_factors", "item_factors"
USER_BIAS, ITEM_BIAS = "user_bias", "item_bias"


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


def _embedding(n_rows, width, *, name, alpha, regularization, initializer):
    """One table with ``n_rows + 1`` rows (row 0 = unknown ids, kept at zero)."""
    initializer = ZeroFirstRow(initializer)
    if regularization == "table":
        return keras.layers.Embedding(
            n_rows + 1,
            width,
            embeddings_initializer=initializer,
            embeddings_regularizer=keras.regularizers.L2(alpha) if alpha > 0 else None,
            name=name,
        )
    return RowL2Embedding(
        n_rows + 1, width, embeddings_initializer=initializer, row_alpha=alpha, name=name
    )


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
    seed : int or None
        Seed of every initializer.

    Returns
    -------
    keras.Model
        Input ``(batch, 2)`` int32 (user row, item row); output ``(batch, 1)``.
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

    factors = dict(alpha=alpha, regularization=regularization)
    biases = dict(alpha=alpha_bias, regularization=regularization)
    rows = keras.Input(shape=(2,), dtype="int32", name="user_item_rows")
    users, items = rows[:, 0], rows[:, 1]
    p_u = _embedding(n_users, n_factors, name=USER_FACTORS, initializer=init("factors", 0), **factors)(users)
    q_i = _embedding(n_items, n_factors, name=ITEM_FACTORS, initializer=init("factors", 1), **factors)(items)
    b_u = _embedding(n_users, 1, name=USER_BIAS, initializer=init("bias", 2), **biases)(users)
    b_i = _embedding(n_items, 1, name=ITEM_BIAS, initializer=init("bias", 3), **biases)(items)

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
