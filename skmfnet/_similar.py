"""Similar items and users: nearest neighbours by cosine of the learned factors.

The vectors compared are those that meet in the network's interaction, so
that two items are similar when the model treats them alike:

* ``q_i``, the item's factor row, plus the mean factor rows of its feature
  labels when the model has item side information, plus the item-side
  implicit term ``|N(i)|^-1/2 sum_{v in N(i)} z_v`` when it has it;
* ``p_u``, the user's factor row, plus the mean factor rows of its feature
  labels, plus SVD++'s implicit term ``|N(u)|^-1/2 sum_{j in N(u)} y_j``
  when the model has them.

They are computed with numpy from the fitted network's tables (the same
arithmetic as :mod:`skmfnet._network`), then every known row is scored
against the queries block by block, the query itself left out, and the
``n`` most similar kept by :func:`skmfnet._scoring.cosine_ranked`, as
``recommend`` keeps its ``n`` best items (ties: the row seen first in
training).
Biases do not enter: they say how high an item is rated, not what it is like.
"""

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import check_is_fitted

from ._network import IMPLICIT, ITEM_BIAS, ITEM_FACTORS, ITEM_IMPLICIT, USER_BIAS, USER_FACTORS
from ._scoring import cosine_ranked, id_index

__all__ = ["factor_vectors", "similar"]

_SIDES = ("user", "item")


def factor_vectors(estimator, side, kind="factors"):
    """``p_u`` (``side="user"``) or ``q_i`` of every row as the network computes them, float64 (n + 1, K).

    ``kind="bias"`` gives ``b_u`` or ``b_i`` the same way, shape (n + 1, 1)
    (feature biases included; the implicit term has none).  Row 0 (unknown
    ids) holds the unknown-id row of each table: zero.
    """
    model = estimator.model_
    tables = {("user", "factors"): USER_FACTORS, ("item", "factors"): ITEM_FACTORS,
              ("user", "bias"): USER_BIAS, ("item", "bias"): ITEM_BIAS}
    vectors = np.asarray(model.get_layer(tables[side, kind]).embeddings.numpy(), dtype=np.float64)
    encoders = getattr(estimator, f"{side}_feature_encoders_")
    codes = getattr(estimator, f"{side}_feature_codes_")
    # feature layers are numbered over the user features, then the item features
    first = 0 if side == "user" else len(estimator.user_feature_encoders_)
    start = 0
    for k, encoder in enumerate(encoders):
        table = model.get_layer(f"{side}_feature_{first + k}_{kind}").embeddings.numpy().astype(np.float64)
        block = codes[:, start : start + encoder.width]
        start += encoder.width
        known = block > 0  # code 0: unknown label, missing value, padding
        summed = (table[block] * known[..., None]).sum(axis=1)
        vectors = vectors + summed / np.maximum(known.sum(axis=1), 1)[:, None]
    implicit = {"user": IMPLICIT, "item": ITEM_IMPLICIT}[side]
    if kind == "factors" and implicit in {layer.name for layer in model.layers}:
        layer = model.get_layer(implicit)
        indptr = layer.indptr.numpy().astype(np.int64)
        indices = layer.indices.numpy()[: indptr[-1]].astype(np.int64)
        history = sp.csr_matrix(
            (np.ones(len(indices)), indices, indptr), shape=(len(indptr) - 1, layer.n_items)
        )
        lengths = np.diff(indptr)
        vectors = vectors + (history @ layer.y.numpy().astype(np.float64)) / np.sqrt(np.maximum(lengths, 1))[:, None]
    return vectors


@validate_params(
    {
        "estimator": "no_validation",
        "ids": "no_validation",
        "side": [StrOptions(set(_SIDES))],
        "n": [Interval(numbers.Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def similar(estimator, ids, side, n=10):
    """The ``n`` known ``side`` ids most similar to each of ``ids``, by cosine.

    Returns a DataFrame with columns ``side``, ``rank``, ``similar_<side>``,
    ``similarity`` (see :meth:`skmfnet.EmbeddingMFRegressor.similar_items`).
    """
    check_is_fitted(estimator, "model_")
    encoder = getattr(estimator, f"{side}_encoder_")
    ids = id_index(ids)
    rows = encoder.transform(np.asarray(ids)).astype(np.int64)
    unknown = ids[rows == 0]
    if len(unknown):
        shown = list(unknown[:5]) + (["..."] if len(unknown) > 5 else [])
        raise ValueError(
            f"{side}s: {len(unknown)} of the {len(ids)} ids given were not seen in fit, and an unknown "
            f"{side} has no learned factors to compare: {shown}. Pass ids from "
            f"{side}_encoder_.classes_."
        )
    pos, rank, col, val = cosine_ranked(factor_vectors(estimator, side)[1:], rows, n)  # column j = row j + 1
    return pd.DataFrame(
        {
            side: ids.take(pos),
            "rank": rank,
            f"similar_{side}": encoder.classes_.take(col),
            "similarity": val,
        }
    )
