"""Side information (user_features / item_features) and implicit feedback (implicit=True)."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skmfnet import EmbeddingMFRegressor
from skmfnet._features import FeatureEncoder, first_rows_table, resolve_feature_columns
from skmfnet._network import IMPLICIT, ITEM_IMPLICIT, ImplicitFeedback

FAST = dict(n_factors=3, epochs=2, batch_size=32, random_state=0)
SIDE = dict(user_features=["group"], item_features=["tags"])


@pytest.fixture
def side_ratings():
    """Users of group "hi" rate everything 5, group "lo" rate 1; items carry tag lists."""
    rng = np.random.default_rng(0)
    n = 400
    users = rng.integers(0, 40, n)
    items = rng.integers(0, 15, n)
    group = np.where(users % 2 == 0, "hi", "lo")
    tags = [["a", "b"] if i % 3 == 0 else (["c"] if i % 3 == 1 else []) for i in items]
    X = pd.DataFrame({"user": users, "item": items, "group": group, "tags": tags})
    y = np.where(group == "hi", 5.0, 1.0)
    return X, y


# ------------------------------------------------------------------ encoding
def test_scalar_feature_codes_missing_and_unknown_are_zero():
    enc = FeatureEncoder("gender")
    codes = enc.fit_transform(np.array(["M", "F", None, "M", np.nan], dtype=object))
    assert codes.shape == (5, 1) and codes.dtype == np.int32
    assert codes[:, 0].tolist() == [1, 2, 0, 1, 0]
    assert not enc.multi_valued and enc.width == 1
    assert list(enc.classes_) == ["M", "F"]
    assert enc.transform(np.array(["F", "X", None], dtype=object))[:, 0].tolist() == [2, 0, 0]


def test_multi_valued_feature_is_padded_with_known_labels_first():
    enc = FeatureEncoder("genres")
    values = np.empty(3, dtype=object)
    values[:] = [["Drama", "War"], [], ("Comedy",)]
    codes = enc.fit_transform(values)
    assert enc.multi_valued and enc.width == 2
    assert codes.tolist() == [[1, 2], [0, 0], [3, 0]]
    new = np.empty(2, dtype=object)
    new[:] = [["Horror", "War", "Drama"], None]  # unknown label, longer list, missing
    assert enc.transform(new).tolist() == [[2, 1], [0, 0]]  # known labels in their order, cut at 2


def test_mixing_lists_and_scalars_is_an_error():
    values = np.empty(2, dtype=object)
    values[:] = [["a"], "b"]
    with pytest.raises(ValueError, match="'tags' mixes list-like values"):
        FeatureEncoder("tags").fit_transform(values)
    enc = FeatureEncoder("tags")
    enc.fit_transform(np.array(["a", "b"], dtype=object))
    with pytest.raises(ValueError, match="one label per row in fit; got list-like"):
        enc.transform(values)


def test_first_rows_table_keeps_first_occurrence():
    table = first_rows_table(np.array([2, 1, 2]), np.array([[7], [8], [9]]), n_rows=3)
    assert table[:, 0].tolist() == [0, 8, 7, 0]


class _Holder:
    def __init__(self, user_features=None, item_features=None, names=None):
        self.user_features, self.item_features = user_features, item_features
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)


@pytest.mark.parametrize(
    "holder, n_columns, message",
    [
        (_Holder(), 3, r"column\(s\) \[2\] are not named in user_features, item_features or time_column"),
        (_Holder(["age"], names=["u", "i", "age", "x"]), 4, r"\['x'\] are not named"),
        (_Holder(["age"], ["age"], names=["u", "i", "age"]), 3, "named more than once"),
        (_Holder(["age"]), 3, "X has no column names"),
        (_Holder(["nope"], names=["u", "i", "age"]), 3, "'nope', which is not in X"),
        (_Holder(["i"], names=["u", "i", "age"]), 3, "column 1 of X: columns 0 and 1 are the user"),
        (_Holder([1]), 3, "position in 2..2"),
        (_Holder("age", names=["u", "i", "age"]), 3, r"Use \['age'\] for a single column"),
        (_Holder([2.5]), 3, "got 2.5 of type float"),
    ],
)
def test_feature_column_errors_name_the_problem(holder, n_columns, message):
    with pytest.raises(ValueError, match=message):
        resolve_feature_columns(holder, n_columns)


def test_features_by_position_on_an_array():
    user, item = resolve_feature_columns(_Holder([3], [2]), 4)
    assert user == [("column 3", 3)] and item == [("column 2", 2)]


# ----------------------------------------------------------------- estimator
def test_features_predict_cold_start_users_from_their_features(side_ratings):
    X, y = side_ratings
    est = EmbeddingMFRegressor(n_factors=3, epochs=40, batch_size=64, learning_rate=0.05,
                               random_state=0, **SIDE).fit(X, y)
    assert est.n_features_in_ == 4
    assert [e.name for e in est.user_feature_encoders_] == ["group"]
    assert est.item_feature_encoders_[0].multi_valued
    new = pd.DataFrame({"user": [1000, 1001, 1002], "item": [0, 0, 0],
                        "group": ["hi", "lo", "unseen"], "tags": [["a"], ["a"], ["a"]]})
    hi, lo, unknown = est.predict(new)
    assert hi > unknown + 1.0 > lo + 2.0  # the group alone tells the new users apart
    plain = EmbeddingMFRegressor(n_factors=3, epochs=40, batch_size=64, learning_rate=0.05,
                                 random_state=0).fit(X[["user", "item"]], y)
    same = plain.predict(new[["user", "item"]])
    assert same[0] == same[1]  # without features, two unknown users are the same


def test_plain_input_still_rejects_extra_columns(side_ratings):
    X, y = side_ratings
    with pytest.raises(ValueError, match=r"\['group', 'tags'\] are not named in user_features"):
        EmbeddingMFRegressor(**FAST).fit(X, y)
    assert not hasattr(EmbeddingMFRegressor(**FAST), "model_")


def test_predict_needs_the_same_feature_columns(side_ratings):
    X, y = side_ratings
    est = EmbeddingMFRegressor(**FAST, **SIDE).fit(X, y)
    with pytest.raises(ValueError, match="seen at fit time, yet now missing:\n- group\n- tags"):
        est.predict(X[["user", "item"]])
    with pytest.raises(ValueError, match="'group' held one label per row in fit; got list-like"):
        est.predict(X.assign(group=X.tags))


def test_recommend_uses_the_features_stored_at_fit(side_ratings):
    X, y = side_ratings
    # recommend scores before clipping: compare with an unclipping model's predict
    est = EmbeddingMFRegressor(**FAST, **SIDE, clip_predictions=False).fit(X, y)
    recs = est.recommend([int(X.user[0])], n=3, exclude_seen=False)
    first = X.drop_duplicates("item").set_index("item")
    pairs = pd.DataFrame({"user": X.user[0], "item": recs["item"].to_numpy(),
                          "group": X.group[0], "tags": first.loc[recs["item"], "tags"].to_list()})
    np.testing.assert_allclose(recs["score"], est.predict(pairs), rtol=1e-5)


def test_early_stopping_and_validation_data_with_features(side_ratings):
    X, y = side_ratings
    est = EmbeddingMFRegressor(**{**FAST, "epochs": 3}, early_stopping=True, **SIDE).fit(X, y)
    assert len(est.history_["val_rmse"]) == 3
    est = EmbeddingMFRegressor(**FAST, **SIDE).fit(X[:300], y[:300], validation_data=(X[300:], y[300:]))
    assert len(est.history_["val_rmse"]) == 2


def test_grid_search_and_pipeline_with_features(side_ratings):
    X, y = side_ratings
    raw = X.assign(group=np.where(X.group == "hi", 30, 60)).rename(columns={"group": "age"})

    def age_groups(frame):  # a preprocessing step that buckets a continuous column
        return frame.assign(age=pd.cut(frame.age, [0, 40, 100]).astype(str))

    pipe = make_pipeline(
        FunctionTransformer(age_groups),
        EmbeddingMFRegressor(**FAST, user_features=["age"], item_features=["tags"]),
    )
    scores = cross_val_score(pipe, raw, y, cv=KFold(2, shuffle=True, random_state=0))
    assert np.all(np.isfinite(scores))
    search = GridSearchCV(
        EmbeddingMFRegressor(**FAST, **SIDE),
        {"implicit": [False, True], "item_features": [["tags"]]},
        cv=2,
    ).fit(X, y)
    assert search.best_params_["implicit"] in (False, True)
    assert search.best_estimator_.predict(X).shape == (len(y),)
    assert clone(search.best_estimator_).get_params()["user_features"] == ["group"]


# ---------------------------------------------------------- implicit feedback
def test_implicit_layer_computes_the_svdpp_term():
    # user row 1 rated items 1 and 2; user row 2 rated item 2; user row 0 nothing
    layer = ImplicitFeedback(3, 3, 3, 2, row_alpha=0.0)
    layer.build()
    layer.set_history(np.array([0, 0, 2, 3]), np.array([1, 2, 2]))
    y = np.array([[0, 0], [1, 2], [3, 5]], dtype="float32")
    layer.y.assign(y)
    out = np.asarray(layer(np.array([2, 1, 0, 1]), np.array([1, 1, 1, 2])))
    expected = np.array([y[2], (y[1] + y[2]) / np.sqrt(2), [0, 0], (y[1] + y[2]) / np.sqrt(2)])
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_implicit_history_is_the_training_pairs(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**FAST, implicit=True).fit(X, y)
    layer = est.model_.get_layer(IMPLICIT)
    indptr = np.asarray(layer.indptr.numpy())
    np.testing.assert_array_equal(indptr, est.seen_.indptr)
    np.testing.assert_array_equal(np.asarray(layer.indices.numpy())[: indptr[-1]], est.seen_.indices)
    plain = EmbeddingMFRegressor(**FAST).fit(X, y)
    assert not np.allclose(est.predict(X), plain.predict(X))
    nobody = pd.DataFrame({"user_id": ["nobody"], "item_id": ["nothing"]})
    with pytest.warns(UserWarning, match="None of the 1"):
        assert np.isclose(est.predict(nobody)[0], est.mu_)


def test_the_item_side_term_holds_the_users_of_each_item(tiny_ratings):
    """implicit="item" (Koren's flipped SVD++): N(i) is the training users of item i, and the term moves
    predictions; "both" has the two layers; an unknown implicit side is refused by name."""
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**FAST, implicit="item").fit(X, y)
    assert IMPLICIT not in {layer.name for layer in est.model_.layers}
    layer = est.model_.get_layer(ITEM_IMPLICIT)
    by_item = est.seen_.T.tocsr()
    by_item.sort_indices()
    indptr = np.asarray(layer.indptr.numpy())
    np.testing.assert_array_equal(indptr, by_item.indptr)
    np.testing.assert_array_equal(np.asarray(layer.indices.numpy())[: indptr[-1]], by_item.indices)
    assert layer.y.shape == (est.n_users_ + 1, FAST["n_factors"])
    assert not np.allclose(est.predict(X), EmbeddingMFRegressor(**FAST).fit(X, y).predict(X))
    both = EmbeddingMFRegressor(**FAST, implicit="both").fit(X, y)
    assert {IMPLICIT, ITEM_IMPLICIT} <= {layer.name for layer in both.model_.layers}
    with pytest.raises(ValueError, match="'implicit' parameter .* Got 'items' instead"):
        EmbeddingMFRegressor(**FAST, implicit="items").fit(X, y)


def test_implicit_adds_the_penalty_of_the_rated_items_rows():
    layer = ImplicitFeedback(2, 3, 1, 2, row_alpha=0.5)
    layer.build()
    layer.set_history(np.array([0, 0, 1]), np.array([1]))
    layer.y.assign(np.array([[0, 0], [1, 1], [2, 0]], dtype="float32"))
    layer(np.array([1, 1]), np.array([1, 2]))
    # mean over the batch of ||y_i||^2 = (2 + 4) / 2, times 0.5
    assert float(np.asarray(layer.losses[0])) == pytest.approx(1.5)


def test_side_information_and_implicit_survive_save_load_and_pickle(side_ratings, tmp_path):
    X, y = side_ratings
    est = EmbeddingMFRegressor(**FAST, **SIDE, implicit=True).fit(X, y)
    path = tmp_path / "model.skmf"
    est.save(path)
    loaded = EmbeddingMFRegressor.load(path)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    pd.testing.assert_frame_equal(loaded.recommend([0, 1], n=4), est.recommend([0, 1], n=4))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X), est.predict(X))


def test_same_seed_same_predictions_with_side_information(side_ratings):
    X, y = side_ratings
    a = EmbeddingMFRegressor(**FAST, **SIDE, implicit=True).fit(X, y).predict(X)
    b = EmbeddingMFRegressor(**FAST, **SIDE, implicit=True).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
