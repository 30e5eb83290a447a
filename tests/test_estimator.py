"""Behaviour of EmbeddingMFRegressor: ids, fallbacks, architectures, training."""

import keras
import numpy as np
import pandas as pd
import pytest

from skmfnet import TUTORIAL_PARAMS, EmbeddingMFRegressor
from skmfnet._training._keras_fit import root_mean_squared_error

FAST = dict(n_factors=3, epochs=2, batch_size=32, early_stopping=False, random_state=0)


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def test_fit_predict_shapes_and_dtype(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**FAST).fit(X, y)
    pred = est.predict(X)
    assert pred.shape == (len(y),)
    assert pred.dtype == np.float64
    assert np.all(np.isfinite(pred))
    assert est.n_features_in_ == 2
    assert list(est.feature_names_in_) == ["user_id", "item_id"]
    assert est.mu_ == pytest.approx(float(np.mean(y)))
    assert est.n_users_ == X["user_id"].nunique()
    assert est.n_items_ == X["item_id"].nunique()


def test_string_and_mixed_ids():
    X = [["alice", 10], ["alice", "ten"], ["bob", 10], ["carol", "ten"]]
    y = [5.0, 1.0, 4.0, 2.0]
    est = EmbeddingMFRegressor(**FAST).fit(X, y)
    assert est.n_users_ == 3
    assert est.n_items_ == 2  # 10 and "ten" are different items
    assert list(est.item_encoder_.classes_) == [10, "ten"]
    assert np.all(np.isfinite(est.predict(X)))


def test_tuple_ids_in_a_dataframe():
    X = pd.DataFrame({"user": [("site", 1), ("site", 2), ("site", 1)], "item": ["a", "a", "b"]})
    est = EmbeddingMFRegressor(**FAST).fit(X, [4.0, 3.0, 5.0])
    assert est.n_users_ == 2
    assert np.all(np.isfinite(est.predict(X)))


def test_large_numeric_string_ids_do_not_collide():
    # float32 cannot tell these apart (2**24 + 1 rounds to 2**24): scikeras's own
    # validation would make them one user.
    a, b = str(2**24), str(2**24 + 1)
    assert np.float32(a) == np.float32(b)
    X = np.array([[a, "x"], [b, "x"]] * 50, dtype=object)
    y = np.array([5.0, 1.0] * 50)
    est = EmbeddingMFRegressor(
        n_factors=2, epochs=60, batch_size=10, learning_rate=0.05, alpha=0.0,
        early_stopping=False, random_state=0,
    ).fit(X, y)
    assert est.n_users_ == 2
    pred = est.predict([[a, "x"], [b, "x"]])
    assert pred[0] > 4.0 and pred[1] < 2.0


def test_input_types_give_same_predictions(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**FAST).fit(X, y)
    from_frame = est.predict(X)
    assert np.array_equal(from_frame, est.predict(X.to_numpy()))
    assert np.array_equal(from_frame, est.predict(X.to_numpy().tolist()))


def test_prediction_is_per_row(tiny_ratings):
    # order and subset invariance, as scikit-learn's check_methods_* test on 2 columns
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**FAST).fit(X, y)
    full = est.predict(X)
    order = np.random.RandomState(0).permutation(len(y))
    np.testing.assert_allclose(est.predict(X.iloc[order]), full[order], rtol=1e-6)
    np.testing.assert_allclose(est.predict(X.iloc[:7]), full[:7], rtol=1e-6)


def test_predict_does_not_change_state(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**FAST).fit(X, y)
    before = {k: v for k, v in vars(est).items() if not k.startswith("_") and k != "model_"}
    weights = [w.copy() for w in est.model_.get_weights()]
    est.predict(X)
    after = {k: v for k, v in vars(est).items() if not k.startswith("_") and k != "model_"}
    assert before.keys() == after.keys()
    for w0, w1 in zip(weights, est.model_.get_weights()):
        np.testing.assert_array_equal(w0, w1)


def _weights(est, name):
    return est.model_.get_layer(name).embeddings.numpy()


def test_unknown_ids_fall_back_to_mean_plus_known_bias(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**{**FAST, "clip_predictions": False}).fit(X, y)
    user, item = X.iloc[0]
    u_row = est.user_encoder_.transform([user])[0]
    i_row = est.item_encoder_.transform([item])[0]
    b_u = _weights(est, "user_bias")[u_row, 0]
    b_i = _weights(est, "item_bias")[i_row, 0]
    pred = est.predict([[user, "new item"], ["new user", item], ["new user", "new item"]])
    np.testing.assert_allclose(pred, [est.mu_ + b_u, est.mu_ + b_i, est.mu_], rtol=1e-6)


def test_unknown_item_in_concat_network_feeds_zeros(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(
        **{**FAST, "clip_predictions": False}, interaction="concat", hidden_layer_sizes=(8,)
    ).fit(X, y)
    user = X.iloc[0, 0]
    u_row = est.user_encoder_.transform([user])[0]
    k = est.n_factors
    h = np.concatenate([_weights(est, "user_factors")[u_row], np.zeros(k),
                        _weights(est, "user_bias")[u_row], np.zeros(1)])
    W1, c1 = est.model_.get_layer("hidden_0").get_weights()
    W2, c2 = est.model_.get_layer("score").get_weights()
    expected = est.mu_ + (np.maximum(h @ W1 + c1, 0) @ W2 + c2)[0]
    np.testing.assert_allclose(est.predict([[user, "new item"]]), [expected], rtol=1e-5)


def test_unknown_ids_are_clipped_like_everything_else(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**FAST).fit(X, y + 100)
    with pytest.warns(UserWarning, match="None of the 1"):
        pred = est.predict([["nobody", "nothing"]])
    assert est.rating_range_[0] <= pred[0] <= est.rating_range_[1]


def test_classic_mf_is_dot_product_plus_biases(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**{**FAST, "clip_predictions": False}).fit(X, y)
    assert not [l for l in est.model_.layers if isinstance(l, keras.layers.Dense)]
    rows = np.column_stack([est.user_encoder_.transform(X["user_id"]), est.item_encoder_.transform(X["item_id"])])
    P = est.model_.get_layer("user_factors").embeddings.numpy()
    Q = est.model_.get_layer("item_factors").embeddings.numpy()
    bu = est.model_.get_layer("user_bias").embeddings.numpy()[:, 0]
    bi = est.model_.get_layer("item_bias").embeddings.numpy()[:, 0]
    u, i = rows[:, 0], rows[:, 1]
    expected = est.mu_ + bu[u] + bi[i] + np.sum(P[u] * Q[i], axis=1)
    np.testing.assert_allclose(est.predict(X), expected, rtol=1e-5)


def test_tutorial_network_is_reachable_by_parameters(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**{**TUTORIAL_PARAMS, "epochs": 1}).fit(X, y)
    model = est.model_
    assert model.get_layer("concat").output.shape[-1] == 2 * 200 + 2
    dense = [l for l in model.layers if isinstance(l, keras.layers.Dense)]
    assert [l.units for l in dense] == [2048, 256, 1]
    assert all(l.activation is keras.activations.linear for l in dense)
    for name in ("user_factors", "item_factors", "user_bias", "item_bias"):
        layer = model.get_layer(name)
        assert isinstance(layer.embeddings_regularizer, keras.regularizers.L2)
        assert layer.embeddings_regularizer.l2 == pytest.approx(0.01)
    assert model.get_layer("user_factors").output_dim == 200
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert model.loss is root_mean_squared_error
    assert (TUTORIAL_PARAMS["epochs"], TUTORIAL_PARAMS["batch_size"]) == (65, 512)


def test_mf_learns_low_rank_ratings_and_beats_tutorial_network(low_rank_ratings):
    X_train, y_train, X_test, y_test = low_rank_ratings
    mf = EmbeddingMFRegressor(
        n_factors=8, epochs=60, batch_size=256, learning_rate=0.01, alpha=0.02,
        early_stopping=True, n_iter_no_change=5, random_state=0,
    ).fit(X_train, y_train)
    mf_rmse = rmse(mf.predict(X_test), y_test)
    baseline = rmse(np.full(len(y_test), y_train.mean()), y_test)
    # noise is 0.3: a learned low-rank model gets near it, the global mean is far from it
    assert mf_rmse < 0.45, mf_rmse
    assert baseline > 1.0
    tutorial = EmbeddingMFRegressor(**{**TUTORIAL_PARAMS, "epochs": 15}, random_state=0)
    tutorial.fit(X_train, y_train)
    tutorial_rmse = rmse(tutorial.predict(X_test), y_test)
    # the tutorial's linear stack is additive in user and item: no interaction to learn
    assert mf_rmse < tutorial_rmse - 0.2, (mf_rmse, tutorial_rmse)


def test_same_random_state_gives_identical_predictions(tiny_ratings):
    X, y = tiny_ratings
    params = dict(FAST, early_stopping=True, epochs=3)
    a = EmbeddingMFRegressor(**params).fit(X, y).predict(X)
    b = EmbeddingMFRegressor(**params).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    c = EmbeddingMFRegressor(**{**params, "random_state": 1}).fit(X, y).predict(X)
    assert not np.array_equal(a, c)


def test_random_state_instance_is_accepted(tiny_ratings):
    X, y = tiny_ratings
    rs = np.random.RandomState(3)
    state = rs.get_state()[1].copy()
    a = EmbeddingMFRegressor(**{**FAST, "random_state": rs}).fit(X, y).predict(X)
    # the caller's generator is not advanced, so the same instance gives the same fit
    np.testing.assert_array_equal(rs.get_state()[1], state)
    b = EmbeddingMFRegressor(**{**FAST, "random_state": rs}).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)


def test_history_records_rmse_per_epoch(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**{**FAST, "epochs": 4}).fit(X, y)
    assert set(est.history_) == {"loss", "rmse"}
    assert len(est.history_["rmse"]) == 4
    val = EmbeddingMFRegressor(**{**FAST, "epochs": 4}).fit(X, y, validation_data=(X[:20], y[:20]))
    assert set(val.history_) == {"loss", "rmse", "val_loss", "val_rmse"}
    assert len(val.history_["val_rmse"]) == 4


def test_history_rmse_matches_predictions_on_validation_data(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**{**FAST, "clip_predictions": False})
    est.fit(X, y, validation_data=(X, y))
    assert est.history_["val_rmse"][-1] == pytest.approx(rmse(est.predict(X), y), rel=1e-4)


def test_early_stopping_holds_out_validation_and_stops(low_rank_ratings):
    from sklearn.model_selection import train_test_split

    X, y, _, _ = low_rank_ratings
    est = EmbeddingMFRegressor(
        n_factors=4, epochs=200, batch_size=512, learning_rate=0.05, alpha=0.0,
        early_stopping=True, validation_fraction=0.2, n_iter_no_change=2, random_state=0,
        clip_predictions=False,
    ).fit(X, y)
    val_rmse = est.history_["val_rmse"]
    assert len(val_rmse) < 200
    # the returned model is the best epoch's: its RMSE on the held-out ratings
    # (the estimator's own split) is the best of the history, not the last one
    _, val = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0)
    returned = rmse(est.predict(X.iloc[val]), np.asarray(y)[val])
    assert returned == pytest.approx(min(val_rmse), rel=1e-5)
    assert min(val_rmse) < val_rmse[-1]


def test_clip_predictions(tiny_ratings):
    X, y = tiny_ratings
    lo, hi = float(np.min(y)), float(np.max(y))
    est = EmbeddingMFRegressor(**{**FAST, "learning_rate": 0.5, "epochs": 5}).fit(X, y)
    pred = est.predict(X)
    assert pred.min() >= lo and pred.max() <= hi
    assert est.rating_range_ == (lo, hi)


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "rmsprop"])
def test_optimizers(tiny_ratings, optimizer):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**{**FAST, "optimizer": optimizer}).fit(X, y)
    assert est.model_.optimizer.__class__.__name__.lower() == optimizer


def test_table_regularization_and_keras_default_init(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**{**FAST, "regularization": "table", "init_std": None}).fit(X, y)
    assert isinstance(est.model_.get_layer("user_factors").embeddings_regularizer, keras.regularizers.L2)
    assert np.all(np.isfinite(est.predict(X)))


def test_unknown_row_stays_zero_during_training(tiny_ratings):
    X, y = tiny_ratings
    for reg in ("batch", "table"):
        est = EmbeddingMFRegressor(**{**FAST, "regularization": reg}).fit(X, y)
        for name in ("user_factors", "item_factors", "user_bias", "item_bias"):
            assert not est.model_.get_layer(name).embeddings.numpy()[0].any()


def test_works_on_dataframe_with_other_column_names():
    frame = pd.DataFrame({"who": ["a", "b", "a"], "what": [1, 1, 2]})
    est = EmbeddingMFRegressor(**FAST).fit(frame, [4, 3, 5])
    assert list(est.feature_names_in_) == ["who", "what"]
    assert est.predict(frame).shape == (3,)


def test_lazy_adam_updates_only_the_rows_in_the_batch():
    import tensorflow as tf

    from skmfnet._optimizers import LazyAdam

    table = keras.Variable(np.ones((5, 2), dtype="float32"))
    optimizer = LazyAdam(learning_rate=0.1)
    optimizer.build([table])
    # rows 1 and 3 looked up, row 3 twice: its gradient is the sum of both
    grad = tf.IndexedSlices(tf.constant([[1.0, 1.0], [2.0, 2.0], [1.0, 1.0]]), tf.constant([1, 3, 3]))
    optimizer.apply_gradients([(grad, table)])
    after = table.numpy()
    np.testing.assert_array_equal(after[[0, 2, 4]], 1.0)  # untouched rows, untouched moments
    # first Adam step moves each touched coordinate by the learning rate
    np.testing.assert_allclose(after[[1, 3]], 0.9, rtol=1e-4)
    m = optimizer._momentums[0].numpy()
    np.testing.assert_allclose(m[3], 0.1 * 3.0, rtol=1e-6)
    assert not m[[0, 2, 4]].any()


def test_lazy_adam_estimator_fits_and_pickles(tiny_ratings):
    import pickle

    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**{**FAST, "optimizer": "lazy_adam"}).fit(X, y)
    assert est.model_.optimizer.__class__.__name__ == "LazyAdam"
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X), est.predict(X))


def test_int_ids_keep_their_type_beside_a_float_feature():
    # a float feature column (a year with NaN) made the whole X float64: int ids
    # became floats and ids above 2**53 merged into one
    big = 2**53
    X = pd.DataFrame({
        "user": np.array([big, big + 1, big, big + 1], dtype=np.int64),
        "item": [1, 1, 2, 2],
        "year": [1990.0, np.nan, 1990.0, np.nan],
    })
    est = EmbeddingMFRegressor(**FAST, user_features=["year"]).fit(X, [5.0, 1.0, 4.0, 2.0])
    assert est.n_users_ == 2
    assert est.user_encoder_.classes_.dtype == np.int64
    assert est.item_encoder_.classes_.dtype == np.int64
    assert list(est.user_encoder_.classes_) == [big, big + 1]


def test_each_id_column_keeps_its_own_dtype():
    X = pd.DataFrame({"user": ["007", "008", "007"], "item": [3, 4, 4]})
    est = EmbeddingMFRegressor(**FAST).fit(X, [4.0, 3.0, 5.0])
    assert list(est.user_encoder_.classes_) == ["007", "008"]
    assert est.item_encoder_.classes_.dtype == np.int64


def test_predict_warns_when_no_id_is_known(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**FAST).fit(X, y)
    strings = X.astype(str)
    with pytest.warns(UserWarning, match=r"None of the \d+ \(user, item\) pairs .* dtypes \(object, object\)"):
        pred = est.predict(strings)
    np.testing.assert_allclose(pred, est.mu_)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.predict(X)  # known ids: no warning


def test_predict_and_recommend_read_fitted_state_only(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**{**FAST, "interaction": "concat", "learning_rate": 0.5}).fit(X, y)
    pred, top = est.predict(X), est.recommend(n=5)
    # set_params after fit changes nothing until the next fit
    est.set_params(interaction="dot", clip_predictions=not est.clip_predictions,
                   user_features=["nothing"], implicit=True)
    np.testing.assert_array_equal(est.predict(X), pred)
    pd.testing.assert_frame_equal(est.recommend(n=5), top)
    assert est.fitted_params_["interaction"] == "concat"
