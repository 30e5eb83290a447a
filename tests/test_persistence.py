"""Model files: exact round trips, atomic writes, and refusal of anything that is not one."""

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression

from skmfnet import BiasBaselineRegressor, EmbeddingMFRegressor
from skmfnet._persistence import FORMAT_VERSION, InvalidModelFileError, load_estimator, read_dot_model, save_estimator
from skmfnet._recommend import recommend, seen_matrix
from skmfnet.datasets import make_ratings

FAST = dict(n_factors=3, epochs=2, batch_size=64, random_state=0)


def read_like_the_cli(path):
    """What the command line reads: a plain dot model as numpy tables, anything else as the estimator."""
    model = read_dot_model(path)
    return load_estimator(path) if model is None else model


@pytest.fixture(params=[load_estimator, read_like_the_cli], ids=["load_estimator", "read_dot_model"])
def read(request):
    """Every damaged or crafted file is refused by both readers of model files."""
    return request.param


@pytest.fixture(scope="module")
def ratings():
    return make_ratings(n_users=25, n_items=18, n_ratings=250, return_X_y=True, random_state=0)


@pytest.fixture(scope="module")
def models(ratings):
    X, y = ratings
    X_val, y_val = X.iloc[:40], y.iloc[:40]
    return {
        "dot": EmbeddingMFRegressor(**FAST).fit(X, y, validation_data=(X_val, y_val)),
        "concat-table": EmbeddingMFRegressor(
            interaction="concat", hidden_layer_sizes=(4, 3), activation="linear",
            regularization="table", init_std=None, loss="rmse", optimizer="sgd", **FAST
        ).fit(X, y),
        "lazy-adam": EmbeddingMFRegressor(optimizer="lazy_adam", **FAST).fit(X, y),
        "implicit": EmbeddingMFRegressor(implicit=True, **FAST).fit(X, y),
        "implicit-both": EmbeddingMFRegressor(implicit="both", **FAST).fit(X, y),
        "side-information": EmbeddingMFRegressor(
            user_features=["group"], item_features=["tags"], **FAST
        ).fit(with_features(X), y),
        "bias": BiasBaselineRegressor(reg_user=3.0).fit(X, y),
    }


def with_features(X):
    """X with a single-valued user feature and a multi-valued item feature."""
    items = X["item_id"].to_numpy()
    tags = [["a", "b"] if i % 3 == 0 else (["c"] if i % 3 == 1 else []) for i in items]
    return X.assign(group=np.where(X["user_id"].to_numpy() % 2 == 0, "hi", "lo"), tags=tags)


def queries(X):
    """Training pairs plus pairs with an unknown user, an unknown item, and both."""
    extra = pd.DataFrame({"user_id": [999, 0, 999], "item_id": [0, 999, 998]})
    if "tags" in X:
        extra = with_features(extra)
    return pd.concat([X, extra], ignore_index=True)


@pytest.mark.parametrize("kind", ["dot", "concat-table", "lazy-adam", "implicit", "implicit-both", "side-information",
                                  "bias"])
def test_round_trip_gives_identical_predictions(models, ratings, tmp_path, kind):
    X, _ = ratings
    if kind == "side-information":
        X = with_features(X)
    est = models[kind]
    path = tmp_path / "model.skmf"
    save_estimator(est, path)
    loaded = load_estimator(path)
    assert type(loaded) is type(est)
    np.testing.assert_array_equal(loaded.predict(queries(X)), est.predict(queries(X)))
    assert loaded.get_params() == est.get_params()
    assert set(vars(loaded)) == set(vars(est))  # the same fitted attributes, nothing missing
    assert loaded.mu_ == est.mu_ and loaded.rating_range_ == est.rating_range_
    pd.testing.assert_index_equal(loaded.user_encoder_.classes_, est.user_encoder_.classes_)
    pd.testing.assert_index_equal(loaded.item_encoder_.classes_, est.item_encoder_.classes_)
    np.testing.assert_array_equal(loaded.feature_names_in_, est.feature_names_in_)
    if kind != "bias":
        assert loaded.history_ == est.history_
        for a, b in zip(loaded.model_.get_weights(), est.model_.get_weights()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["dot", "bias"])
def test_loaded_estimator_pickles_clones_and_refits(models, ratings, tmp_path, kind):
    X, y = ratings
    save_estimator(models[kind], tmp_path / "m.skmf")
    loaded = load_estimator(tmp_path / "m.skmf")
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(loaded)).predict(X), models[kind].predict(X))
    refit = clone(loaded).fit(X, y)
    np.testing.assert_allclose(refit.predict(X), models[kind].predict(X), rtol=1e-5)


@pytest.mark.parametrize(
    "X",
    [
        [["alice", "matrix"], ["bob", "amelie"], ["alice", "amelie"]],
        [[1.5, 10], [2.5, 20], [1.5, 20]],
        [["alice", 1], [7, "b"], [2.5, 1]],
        [[np.int64(3), np.float32(1.5)], [np.int64(4), np.float32(2.5)], [np.int64(3), np.float32(2.5)]],
    ],
    ids=["strings", "floats", "mixed", "numpy-scalars"],
)
def test_id_types_round_trip(tmp_path, X):
    est = BiasBaselineRegressor().fit(X, [4.0, 2.0, 3.0])
    save_estimator(est, tmp_path / "m.skmf")
    loaded = load_estimator(tmp_path / "m.skmf")
    pd.testing.assert_index_equal(loaded.user_encoder_.classes_, est.user_encoder_.classes_)
    pd.testing.assert_index_equal(loaded.item_encoder_.classes_, est.item_encoder_.classes_)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


def test_int_and_float_ids_keep_their_json_types(tmp_path):
    est = BiasBaselineRegressor().fit([[1, 2.0], ["1", 3.5]], [1.0, 2.0])
    save_estimator(est, tmp_path / "m.skmf")
    with zipfile.ZipFile(tmp_path / "m.skmf") as archive:
        meta = json.loads(archive.read("skmfnet.json"))
    # models without side information are written as version 1, readable by older skmfnet
    assert meta["format"] == "skmfnet-model" and meta["format_version"] == 1
    assert meta["fitted"]["user_ids"]["values"] == [1, "1"]
    assert [type(v) for v in meta["fitted"]["user_ids"]["values"]] == [int, str]
    assert [type(v) for v in meta["fitted"]["item_ids"]["values"]] == [float, float]


def test_seen_pairs_round_trip(models, ratings, tmp_path):
    X, y = ratings
    est = BiasBaselineRegressor().fit(X, y)
    est.seen_ = seen_matrix(est, X)
    save_estimator(est, tmp_path / "m.skmf")
    loaded = load_estimator(tmp_path / "m.skmf")
    assert (loaded.seen_ != est.seen_).nnz == 0
    pd.testing.assert_frame_equal(recommend(loaded, None, n=3), recommend(est, None, n=3))


def test_unsupported_ids_and_estimators_are_refused(tmp_path):
    est = BiasBaselineRegressor().fit(np.array([[(1, 2), "a"], [(3, 4), "b"]], dtype=object), [1.0, 2.0])
    with pytest.raises(ValueError, match="user ids include \\(1, 2\\) of type tuple.*int, float or str"):
        save_estimator(est, tmp_path / "m.skmf")
    est = BiasBaselineRegressor().fit([[True, "a"], [False, "b"]], [1.0, 2.0])
    with pytest.raises(ValueError, match="of type bool"):
        save_estimator(est, tmp_path / "m.skmf")
    with pytest.raises(NotFittedError):
        save_estimator(BiasBaselineRegressor(), tmp_path / "m.skmf")
    with pytest.raises(TypeError, match="got LinearRegression"):
        save_estimator(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), tmp_path / "m.skmf")
    assert list(tmp_path.iterdir()) == []


def test_random_state_instance_is_saved_as_none(ratings, tmp_path):
    X, y = ratings
    est = EmbeddingMFRegressor(n_factors=2, epochs=1, random_state=np.random.RandomState(0)).fit(X, y)
    save_estimator(est, tmp_path / "m.skmf")
    loaded = load_estimator(tmp_path / "m.skmf")
    assert loaded.random_state is None
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


# ----------------------------------------------------------- atomic writes
def test_failed_save_leaves_no_file_and_keeps_the_old_one(models, tmp_path, monkeypatch):
    import skmfnet._persistence as persistence

    path = tmp_path / "m.skmf"
    save_estimator(models["bias"], path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(persistence.np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        save_estimator(models["bias"], path)
    assert path.read_bytes() == before
    with pytest.raises(OSError, match="disk full"):
        save_estimator(models["bias"], tmp_path / "new.skmf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.skmf"]  # no temporary file left


def test_save_into_missing_folder(models, tmp_path):
    with pytest.raises(FileNotFoundError):
        save_estimator(models["bias"], tmp_path / "missing" / "m.skmf")


# ----------------------------------------------------------- bad files
def rewrite(src, dst, *, meta=None, drop=(), replace=None):
    """Copy a model file, changing its JSON or members."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for name in old.namelist():
            if name in drop:
                continue
            data = old.read(name)
            if name == "skmfnet.json" and meta is not None:
                data = json.dumps(meta(json.loads(data))).encode()
            if replace and name in replace:
                data = replace[name]
            new.writestr(name, data)


@pytest.fixture
def saved(models, tmp_path):
    path = tmp_path / "good.skmf"
    save_estimator(models["dot"], path)
    return path


def newer(meta):
    meta["format_version"] = FORMAT_VERSION + 1
    return meta


def unknown_param(meta):
    meta["params"]["n_layers"] = 3
    return meta


def bad_ids(meta):
    meta["fitted"]["user_ids"]["values"][0] = [1, 2]
    return meta


def other_format(meta):
    meta["format"] = "something-else"
    return meta


def fewer_users(meta):
    meta["fitted"]["user_ids"]["values"].pop()
    return meta


def bad_dtype(meta):
    meta["fitted"]["item_ids"]["dtype"] = "datetime64[ns]"
    return meta


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(meta=newer), f"format version {FORMAT_VERSION + 1}.*upgrade skmfnet"),
        (dict(meta=unknown_param), "n_layers.*unknown.*upgrade"),
        (dict(meta=bad_ids), "user vocabulary holds an id of type list"),
        (dict(meta=other_format), "does not declare format"),
        (dict(meta=fewer_users), r"shape \(27,\), expected \(26,\)|input_dim 26; expected 25"),
        (dict(meta=bad_dtype), "unusable dtype"),
        (dict(drop=("skmfnet.json",)), "no skmfnet.json"),
        (dict(drop=("model.keras",)), "no model.keras"),
        (dict(replace={"skmfnet.json": b"{not json"}), "not valid JSON"),
        (dict(replace={"model.keras": b"PK\x03\x04 broken"}), "model.keras is not a Keras archive"),
    ],
    ids=["newer-version", "unknown-param", "bad-id", "other-format", "vocabulary-mismatch",
         "bad-dtype", "no-json", "no-network", "bad-json", "bad-network"],
)
def test_damaged_files_are_refused(read, saved, tmp_path, change, match):
    path = tmp_path / "bad.skmf"
    rewrite(saved, path, **change)
    with pytest.raises(InvalidModelFileError, match=match):
        read(path)


def test_files_from_before_auto_take_the_resolved_values_from_their_parameters(saved, tmp_path):
    def before_auto(meta):  # the parameters were numbers, and the fitted state had no alpha
        meta["params"].update(alpha=0.2, learning_rate=0.01)
        meta["fitted"] = {k: v for k, v in meta["fitted"].items() if k not in ("alpha", "learning_rate")}
        return meta

    path = tmp_path / "older.skmf"
    rewrite(saved, path, meta=before_auto)
    loaded = load_estimator(path)
    assert (loaded.alpha_, loaded.learning_rate_) == (0.2, 0.01)


def test_truncated_file(read, saved, tmp_path):
    data = saved.read_bytes()
    for size in (0, 10, len(data) // 2, len(data) - 10):
        path = tmp_path / "truncated.skmf"
        path.write_bytes(data[:size])
        with pytest.raises(InvalidModelFileError, match="not a valid skmfnet model file"):
            read(path)


def test_corrupted_member_fails_its_checksum(read, saved, tmp_path):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as archive:
        info = archive.getinfo("skmfnet.json")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 5] ^= 0xFF  # flip bits inside the compressed JSON
    path = tmp_path / "flipped.skmf"
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidModelFileError):
        read(path)


def test_other_files_are_refused(read, models, tmp_path):
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps(models["bias"]))
    with pytest.raises(InvalidModelFileError, match="looks like a pickle.*trust"):
        read(pickled)
    text = tmp_path / "ratings.csv"
    text.write_text("user,item,rating\n1,2,3\n")
    with pytest.raises(InvalidModelFileError, match="not a valid skmfnet model file"):
        read(text)
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(InvalidModelFileError, match="no skmfnet.json"):
        read(other_zip)
    with pytest.raises(FileNotFoundError):
        read(tmp_path / "missing.skmf")
    with pytest.raises(IsADirectoryError):
        read(tmp_path)


def test_lambda_layer_is_refused_by_safe_mode(read, saved, tmp_path):
    """A network with serialized Python code (a Lambda layer) is never deserialized."""
    import keras

    rows = keras.Input(shape=(2,), dtype="int32")
    out = keras.layers.Lambda(lambda t: keras.ops.cast(t[:, :1], "float32") * 0 + 1)(rows)
    evil = keras.Model(rows, out)
    keras_path = tmp_path / "evil.keras"
    evil.save(keras_path)
    path = tmp_path / "evil.skmf"
    rewrite(saved, path, replace={"model.keras": keras_path.read_bytes()})
    with pytest.raises(InvalidModelFileError, match="class Lambda is not part of a skmfnet network"):
        read(path)


def test_save_is_a_zip_with_documented_members(saved):
    with zipfile.ZipFile(saved) as archive:
        assert archive.namelist()[0] == "skmfnet.json"
        assert set(archive.namelist()) <= {"skmfnet.json", "model.keras", "arrays.npz"}
        meta = json.loads(archive.read("skmfnet.json"))
        np.load(io.BytesIO(archive.read("arrays.npz")), allow_pickle=False) if "arrays.npz" in archive.namelist() else None
    assert meta["estimator"] == "EmbeddingMFRegressor"
    assert {"mu", "rating_range", "user_ids", "item_ids", "history"} <= set(meta["fitted"])
    import skmfnet

    assert meta["skmfnet_version"] == skmfnet.__version__
    assert os.access(saved, os.R_OK)


# ------------------------------------------- crafted files (sizes, numbers)
# Each file is refused from what it declares, before numpy or Keras allocates
# the sizes it declares: keras.saving.load_model is never called for them.
def saved_as(models, tmp_path, kind):
    path = tmp_path / f"{kind}.skmf"
    save_estimator(models[kind], path)
    return path


def edit_json_text(old, new):
    """Replace text in skmfnet.json (for constants json.dumps would not write)."""
    def change(data):
        text = json.dumps(json.loads(data), indent=1)
        assert old in text
        return text.replace(old, new, 1).encode()
    return change


def overflowing_rating_range(data):
    """A rating range whose high end, 1e999, json parses as inf (not a NaN/Infinity constant)."""
    meta = json.loads(data)
    meta["fitted"]["rating_range"] = [1.0, 12345.5]
    return json.dumps(meta).replace("12345.5", "1e999").encode()


def rewrite_keras(src, dst, change_config):
    """Copy a model file, changing the config.json of its Keras archive."""
    with zipfile.ZipFile(src) as old:
        inner = old.read("model.keras")
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(inner)) as old, zipfile.ZipFile(buffer, "w") as new:
        for info in old.infolist():
            data = old.read(info.filename)
            if info.filename == "config.json":
                config = json.loads(data)
                change_config(config)
                data = json.dumps(config).encode()
            new.writestr(info.filename, data)
    rewrite(src, dst, replace={"model.keras": buffer.getvalue()})


def keras_layers(config):
    return {layer["name"]: layer for layer in config["config"]["layers"]}


def set_layer(name, **values):
    def change(config):
        layer = keras_layers(config)[name]
        for key, value in values.items():
            if key == "input_shape":
                layer["build_config"]["input_shape"] = value
            else:
                layer["config"][key] = value
    return change


def npz_bytes(arrays, declared_shapes=None):
    """An npz of ``arrays``; ``declared_shapes`` changes the shape some headers declare (not the data)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, value in arrays.items():
            value = np.asarray(value)
            member = io.BytesIO()
            header = np.lib.format.header_data_from_array_1_0(value)
            header["shape"] = (declared_shapes or {}).get(key, value.shape)
            np.lib.format.write_array_header_1_0(member, header)
            member.write(value.tobytes() if value.dtype != object else b"")
            archive.writestr(f"{key}.npy", member.getvalue())
    return buffer.getvalue()


def bias_arrays(est, **changes):
    arrays = {"user_bias": est.user_bias_, "item_bias": est.item_bias_,
              "seen_indptr": est.seen_.indptr.astype(np.int64),
              "seen_indices": est.seen_.indices.astype(np.int64)}
    arrays.update(changes)
    return arrays


def declare_size(path, member, size):
    """Make the central directory declare ``size`` uncompressed bytes for ``member`` (data unchanged)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        start = archive.start_dir
    position = start
    while data[position : position + 4] == b"PK\x01\x02":
        n, m, k = (int.from_bytes(data[position + o : position + o + 2], "little") for o in (28, 30, 32))
        if data[position + 46 : position + 46 + n].decode() == member:
            data[position + 24 : position + 28] = size.to_bytes(4, "little")
        position += 46 + n + m + k
    path.write_bytes(bytes(data))


@pytest.fixture
def keras_never_loads(monkeypatch):
    import keras

    def fail(*args, **kwargs):
        pytest.fail("keras.saving.load_model was called on a file whose declared sizes are wrong")

    monkeypatch.setattr(keras.saving, "load_model", fail)


@pytest.mark.parametrize(
    "kind, change, match",
    [
        ("dot", dict(replace={"skmfnet.json": b"[" * 5_000 + b"]" * 5_000}), "skmfnet.json.*nested deeper"),
        ("dot", dict(replace={"skmfnet.json": b'{"format": NaN}'}), "skmfnet.json.*NaN.*finite"),
        ("dot", dict(edit=edit_json_text('"mu": ', '"mu": NaN, "x": ')), "NaN.*finite"),
        ("dot", dict(edit=edit_json_text('"mu": ', '"mu": Infinity, "x": ')), "Infinity.*finite"),
        ("dot", dict(edit=edit_json_text('"mu": ', '"mu": 1e999, "x": ')), "mu is inf.*finite"),
        ("bias", dict(edit=overflowing_rating_range), "rating_range is inf.*finite"),
        ("bias", dict(meta=lambda m: {**m, "fitted": {**m["fitted"], "rating_range": [5.0, 1.0]}}),
         r"rating_range \[5.0, 1.0\].*low.*high"),
        ("dot", dict(meta=lambda m: {**m, "params": {**m["params"], "n_factors": "lots"}}),
         "parameter.*n_factors.*'lots'"),
        ("dot", dict(meta=lambda m: {**m, "params": {**m["params"], "epochs": -1}}), "parameter.*epochs.*-1"),
        ("bias", dict(meta=lambda m: {**m, "params": {**m["params"], "n_iter": 2.5}}), "parameter.*n_iter"),
        ("dot", dict(meta=lambda m: {**m, "fitted": {**m["fitted"], "n_features_in": 1e300}}),
         "n_features_in"),
        ("bias", dict(meta=fewer_users), r"user_bias.*shape \(26,\).*expected \(25,\)"),
        ("dot", dict(meta=lambda m: {**m, "fitted": {**m["fitted"], "alpha": -1}}),
         r"alpha is -1.0; expected a number >= 0"),
        ("dot", dict(meta=lambda m: {**m, "fitted": {**m["fitted"], "learning_rate": 0}}),
         r"learning_rate is 0.0; expected a number > 0"),
        ("dot", dict(meta=lambda m: {**m, "fitted": {**m["fitted"], "alpha": "lots"}}),
         "alpha is missing or not a number"),
        ("dot", dict(meta=lambda m: {**m, "fitted": {k: v for k, v in m["fitted"].items() if k != "alpha"}}),
         "alpha is 'auto' and the fitted state has no alpha"),
        ("dot", dict(meta=lambda m: {**m, "fitted": {**m["fitted"], "auto_results": [{"alpha": 0.1}]}}),
         "auto_results is malformed"),
        ("dot", dict(meta=lambda m: {**m, "fitted": {**m["fitted"], "auto_results": [
            {"alpha": 0.1, "learning_rate": 0.005, "best_val_rmse": 0.9, "best_epoch": 0, "epochs": 3}]}}),
         "auto_results' best_epoch is 0; expected a positive integer"),
    ],
    ids=["deep-json", "nan-constant", "mu-nan", "mu-infinity", "mu-overflow", "infinite-rating-range",
         "inverted-rating-range", "n_factors-lots", "negative-epochs", "fractional-n_iter",
         "huge-n_features_in", "bias-vocabulary-mismatch", "negative-alpha", "zero-learning-rate",
         "alpha-lots", "auto-alpha-unresolved", "auto-results-malformed", "auto-results-epoch-0"],
)
def test_crafted_metadata_is_refused(read, models, tmp_path, kind, change, match):
    path, good = tmp_path / "bad.skmf", saved_as(models, tmp_path, kind)
    if "edit" in change:
        with zipfile.ZipFile(good) as archive:
            change = dict(replace={"skmfnet.json": change["edit"](archive.read("skmfnet.json"))})
    rewrite(good, path, **change)
    with pytest.raises(InvalidModelFileError, match=match):
        read(path)


@pytest.mark.parametrize(
    "kind, change, match",
    [
        ("dot", set_layer("user_bias", input_dim=10**8), "user_bias.*input_dim 100000000.*expected 26"),
        ("dot", set_layer("user_factors", input_dim=10**8, output_dim=10**8), "user_factors.*100000000"),
        ("dot", set_layer("item_factors", output_dim=10**6), "item_factors.*output_dim 1000000.*expected 3"),
        ("implicit", set_layer("implicit_feedback", n_pairs=10**12), "implicit_feedback.*n_pairs 1000000000000"),
        ("implicit", set_layer("implicit_feedback", n_factors=10**7), "implicit_feedback.*n_factors 10000000"),
        ("concat-table", set_layer("hidden_0", units=10**6), "hidden_0.*units 1000000.*expected 4"),
        ("concat-table", set_layer("hidden_0", input_shape=[None, 10**8]), "hidden_0.*input.*100000000.*expected 8"),
        ("side-information", set_layer("item_feature_1_factors", input_dim=10**8),
         "item_feature_1_factors.*input_dim 100000000.*expected 4"),
        ("dot", set_layer("user_item_rows", batch_shape=[None, 10**9]), "user_item_rows.*1000000000.*expected.*2"),
        ("dot", lambda config: config["config"]["layers"].append(
            {"module": "keras.layers", "class_name": "Dense", "registered_name": None, "name": "extra",
             "config": {"name": "extra", "units": 10**5}, "build_config": {"input_shape": [None, 10**5]},
             "inbound_nodes": []}),
         "extra.*not part of a skmfnet network"),
    ],
    ids=["embedding-input_dim-1e8", "embedding-both-dims", "embedding-output_dim", "implicit-n_pairs",
         "implicit-n_factors", "dense-units", "dense-input-width", "feature-table", "input-width",
         "extra-layer"],
)
def test_absurd_keras_sizes_are_refused_before_keras_loads(read, models, tmp_path, keras_never_loads, kind, change, match):
    path = tmp_path / "bad.skmf"
    rewrite_keras(saved_as(models, tmp_path, kind), path, change)
    with pytest.raises(InvalidModelFileError, match=match):
        read(path)


@pytest.mark.parametrize(
    "arrays, match",
    [
        (dict(declared={"user_bias": (10**12,)}), r"user_bias.*shape \(1000000000000,\).*expected \(26,\)"),
        (dict(declared={"seen_indices": (10**12,)}), r"seen_indices.*shape \(1000000000000,\)"),
        (dict(changes={"user_bias": np.zeros(26, dtype=object)}), "user_bias.*dtype"),
        (dict(changes={"item_bias": np.full(19, np.nan)}), "item_bias.*not finite"),
    ],
    ids=["npz-shape-1e12", "npz-seen-shape-1e12", "npz-object-array", "npz-nan-bias"],
)
def test_crafted_arrays_are_refused_before_reading(read, models, tmp_path, arrays, match):
    est = models["bias"]
    data = npz_bytes(bias_arrays(est, **arrays.get("changes", {})), arrays.get("declared"))
    path = tmp_path / "bad.skmf"
    rewrite(saved_as(models, tmp_path, "bias"), path, replace={"arrays.npz": data})
    with pytest.raises(InvalidModelFileError, match=match):
        read(path)


def test_network_with_nan_weights_is_refused(read, models, tmp_path):
    import keras

    model = keras.models.clone_model(models["dot"].model_)
    model.set_weights([np.full_like(w, np.nan) for w in models["dot"].model_.get_weights()])
    model.save(tmp_path / "nan.keras")
    path = tmp_path / "bad.skmf"
    rewrite(saved_as(models, tmp_path, "dot"), path, replace={"model.keras": (tmp_path / "nan.keras").read_bytes()})
    with pytest.raises(InvalidModelFileError, match="user_factors.*not finite"):
        read(path)


@pytest.mark.parametrize("member", ["skmfnet.json", "model.keras", "arrays.npz"])
def test_member_declaring_more_than_its_cap_is_refused_unread(read, models, tmp_path, member, monkeypatch):
    """A member whose header declares 4 GB is refused from the header, whatever its data."""
    path = tmp_path / "bad.skmf"
    rewrite(saved_as(models, tmp_path, "implicit"), path)
    declare_size(path, member, 4_000_000_000)

    def no_read(*args, **kwargs):
        pytest.fail("a member larger than its cap was read")

    monkeypatch.setattr(zipfile.ZipFile, "read", no_read)
    with pytest.raises(InvalidModelFileError, match=f"{member} declares 4000000000 bytes.*at most"):
        read(path)


def test_zip_bomb_is_refused_before_inflating(read, models, tmp_path):
    """A model.keras that truly inflates to 64 MB (64 KB on disk): far more than the network needs."""
    path = tmp_path / "bomb.skmf"
    with zipfile.ZipFile(saved_as(models, tmp_path, "dot")) as archive:
        real = archive.read("model.keras")
    rewrite(saved_as(models, tmp_path, "dot"), path, replace={"model.keras": real + bytes(64 * 2**20)})
    rewritten = tmp_path / "bomb-deflated.skmf"
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(rewritten, "w", zipfile.ZIP_DEFLATED) as new:
        for name in old.namelist():
            new.writestr(name, old.read(name))
    assert rewritten.stat().st_size < 2**20
    with pytest.raises(InvalidModelFileError, match="model.keras declares [0-9]+ bytes.*at most"):
        read(rewritten)


def test_save_after_set_params_writes_the_fitted_model(tmp_path, tiny_ratings):
    # save reads fitted state: set_params after fit must not reach the file
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(n_factors=3, epochs=2, random_state=0).fit(X, y)
    est.set_params(n_factors=7, clip_predictions=False)
    est.save(tmp_path / "m.skmf")
    loaded = EmbeddingMFRegressor.load(tmp_path / "m.skmf")
    assert loaded.get_params()["n_factors"] == 3
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


@pytest.mark.parametrize("side", ["user", "item"])
def test_side_information_on_one_side_only_round_trips(tmp_path, side):
    # the codes of the side without features used to be written, and then
    # refused on load as an unexpected member
    X = pd.DataFrame({"user": [1, 2, 3, 1, 2], "item": [1, 1, 2, 2, 3], "label": ["a", "b", "a", "a", "c"]})
    est = EmbeddingMFRegressor(**{f"{side}_features": ["label"]}, n_factors=2, epochs=1, random_state=0)
    est.fit(X, [1.0, 2.0, 3.0, 4.0, 5.0])
    est.save(tmp_path / "one_side.skmf")
    loaded = EmbeddingMFRegressor.load(tmp_path / "one_side.skmf")
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


# ------------------------------------------- hardening (issue 36)
def shadowing_user_bias(config):
    """A second, unconnected layer named user_bias before the real one, declaring 400,000,000 rows."""
    layers = config["config"]["layers"]
    real = keras_layers(config)["user_bias"]
    fake = json.loads(json.dumps(real))
    fake["config"]["input_dim"] = 400_000_000
    fake["inbound_nodes"] = []
    layers.insert(0, fake)


def test_every_layer_of_the_config_is_checked_not_only_the_last_of_each_name(read, models, tmp_path, keras_never_loads):
    path = tmp_path / "shadow.skmf"
    rewrite_keras(saved_as(models, tmp_path, "dot"), path, shadowing_user_bias)
    with pytest.raises(InvalidModelFileError, match="user_bias.*(twice|400000000)"):
        read(path)


def set_history(history):
    return dict(meta=lambda m: {**m, "fitted": {**m["fitted"], "history": history}})


@pytest.mark.parametrize(
    "change, match",
    [
        (set_history({"loss": [[]] * 200_000}), "skmfnet.json holds 2000[0-9][0-9] lists and objects"),
        (set_history({"loss": [0.5] * 3}), r"history's 'loss' has 3 values; expected at most 2 \(epochs\)"),
        (set_history({"loss": "abc"}), "history's 'loss' is a str; expected a list of numbers"),
        (set_history([1, 2]), "history is a list; expected an object"),
        (set_history({"loss": [True, 0.5]}), "history's 'loss' holds True"),
        (set_history({f"k{i}": [] for i in range(1000)}), "history has 1000 entries; expected at most"),
        (dict(edit=edit_json_text('"history": {', '"history": {"x": [' + "[]," * 100_000 + '[]], ')),
         r"skmfnet.json holds 1000[0-9][0-9] lists and objects; expected at most"),
    ],
    ids=["nested-lists", "longer-than-epochs", "string", "list", "bool", "many-keys", "bracket-flood"],
)
def test_history_is_validated(read, models, tmp_path, change, match):
    path, good = tmp_path / "bad.skmf", saved_as(models, tmp_path, "dot")
    if "edit" in change:
        with zipfile.ZipFile(good) as archive:
            change = dict(replace={"skmfnet.json": change["edit"](archive.read("skmfnet.json"))})
    rewrite(good, path, **change)
    with pytest.raises(InvalidModelFileError, match=match):
        read(path)


def test_brackets_inside_string_ids_are_not_counted_as_structure(tmp_path):
    ids = [f"[{i}]" + '"\\{[' * 3 + ("\\" if i % 2 else "") for i in range(30_000)]  # escapes too
    est = BiasBaselineRegressor().fit([[u, 1] for u in ids], np.ones(len(ids)))
    save_estimator(est, tmp_path / "m.skmf")
    pd.testing.assert_index_equal(load_estimator(tmp_path / "m.skmf").user_encoder_.classes_, est.user_encoder_.classes_)


HUGE = "1" + "0" * 400


def with_huge_integer(field, template="HUGE"):
    """skmfnet.json with ``fitted[field]`` set to ``template``, its "HUGE" the integer 10**400."""
    def change(data):
        meta = json.loads(data)
        meta["fitted"][field] = "PLACEHOLDER"
        return json.dumps(meta).replace('"PLACEHOLDER"', template.replace("HUGE", HUGE)).encode()
    return change


@pytest.mark.parametrize(
    "kind, field, template, match",
    [
        ("dot", "mu", "HUGE", "mu is an integer too large"),
        ("dot", "alpha", "HUGE", "alpha is an integer too large"),
        ("bias", "rating_range", "[HUGE, 5.0]", "rating_range is an integer too large"),
        ("dot", "auto_results",
         '[{"alpha": HUGE, "learning_rate": 0.005, "best_val_rmse": 0.9, "best_epoch": 1, "epochs": 2}]',
         "auto_results' alpha is an integer too large"),
    ],
    ids=["mu", "alpha", "rating_range", "auto_results"],
)
def test_huge_json_integers_are_refused(read, models, tmp_path, kind, field, template, match):
    good = saved_as(models, tmp_path, kind)
    with zipfile.ZipFile(good) as archive:
        text = with_huge_integer(field, template)(archive.read("skmfnet.json"))
    path = tmp_path / "bad.skmf"
    rewrite(good, path, replace={"skmfnet.json": text})
    with pytest.raises(InvalidModelFileError, match=match):
        read(path)


@pytest.mark.parametrize("kind", ["dot", "side-information", "bias"])
def test_n_features_in_must_match_the_feature_parameters(read, models, tmp_path, kind):
    """A huge n_features_in used to reach range(2, n_features_in) in the loader (memory exhausted)."""
    good = saved_as(models, tmp_path, kind)
    expected = 4 if kind == "side-information" else 2
    path = tmp_path / "bad.skmf"
    with zipfile.ZipFile(good) as archive:
        text = with_huge_integer("n_features_in", "100000000000000000000")(archive.read("skmfnet.json"))
    rewrite(good, path, replace={"skmfnet.json": text})
    with pytest.raises(InvalidModelFileError, match=f"n_features_in is 100000000000000000000; expected {expected}"):
        read(path)


def test_float16_vocabulary_is_refused(read, models, tmp_path):
    path = tmp_path / "bad.skmf"
    rewrite(saved_as(models, tmp_path, "bias"), path,
            meta=lambda m: {**m, "fitted": {**m["fitted"], "item_ids": {**m["fitted"]["item_ids"], "dtype": "float16"}}})
    with pytest.raises(InvalidModelFileError, match="item vocabulary has an unusable dtype"):
        read(path)


@pytest.fixture(scope="module")
def selection_model(ratings):
    X, y = ratings
    return EmbeddingMFRegressor(negative_ratio=1.0, selection_factors=2, **FAST).fit(X, y)


def test_nonzero_unknown_row_of_the_selection_term_is_refused(read, selection_model, tmp_path):
    good = tmp_path / "good.skmf"
    save_estimator(selection_model, good)
    with zipfile.ZipFile(good) as archive:
        arrays = dict(np.load(io.BytesIO(archive.read("arrays.npz"))))
    arrays["user_selection"] = arrays["user_selection"].copy()
    arrays["user_selection"][0] = 1.0
    path = tmp_path / "bad.skmf"
    rewrite(good, path, replace={"arrays.npz": npz_bytes(arrays)})
    with pytest.raises(InvalidModelFileError, match="user_selection.*row 0.*unknown.*zero"):
        read(path)


# save refuses what load would refuse, and writes only to regular files
def nan_weights(est):
    est.model_.set_weights([np.full_like(w, np.nan) for w in est.model_.get_weights()])


@pytest.mark.parametrize(
    "kind, spoil, match",
    [
        ("dot", nan_weights, "user_factors.*not finite.*diverged"),
        ("dot", lambda est: setattr(est, "mu_", float("nan")), "mu_ is nan"),
        ("bias", lambda est: est.user_bias_.__setitem__(1, np.inf), "user_bias_ is not finite"),
        ("dot", lambda est: est.history_.__setitem__("loss", [float("nan")]), "history_.*nan"),
    ],
    ids=["nan-weights", "nan-mu", "inf-bias", "nan-history"],
)
def test_save_refuses_a_model_load_would_refuse_and_keeps_the_good_file(models, tmp_path, kind, spoil, match):
    path = saved_as(models, tmp_path, kind)
    before = path.read_bytes()
    est = load_estimator(path)
    spoil(est)
    with pytest.raises(ValueError, match=match):
        save_estimator(est, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_save_never_replaces_a_fifo(models, tmp_path):
    import stat

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"fifo.*is a FIFO.*not a regular file"):
        save_estimator(models["bias"], fifo)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_save_never_replaces_a_link_to_a_device(models, tmp_path):
    link = tmp_path / "null.skmf"
    link.symlink_to(os.devnull)
    with pytest.raises(ValueError, match="null.skmf.*character device.*not a regular file"):
        save_estimator(models["bias"], link)
    assert link.is_symlink()


def test_save_through_a_link_to_a_regular_file_writes_the_file(models, tmp_path):
    target = tmp_path / "real.skmf"
    target.write_bytes(b"old")
    link = tmp_path / "link.skmf"
    link.symlink_to(target)
    save_estimator(models["bias"], link)
    assert link.is_symlink()
    assert load_estimator(target).mu_ == models["bias"].mu_


def test_save_into_missing_folder_names_the_path_given(models, tmp_path):
    path = tmp_path / "missing" / "m.skmf"
    with pytest.raises(FileNotFoundError) as info:
        save_estimator(models["bias"], path)
    assert str(path) in str(info.value) and ".tmp" not in str(info.value)


def test_engine_round_trips_and_a_foreign_engine_is_refused(read, models, tmp_path):
    est = models["dot"]
    path = saved_as(models, tmp_path, "dot")
    assert load_estimator(path).engine_ == est.engine_
    bad = tmp_path / "bad.skmf"
    rewrite(path, bad, meta=lambda m: {**m, "fitted": {**m["fitted"], "engine": "os.system"}})
    with pytest.raises(InvalidModelFileError, match="engine is 'os.system'; expected null or one of"):
        read(bad)


def test_a_flood_of_numbers_in_the_metadata_is_refused_unparsed(read, models, tmp_path, monkeypatch):
    """skmfnet.json inflating past its cap (here 65 MB of "0.5,", 200 KB compressed) is never parsed."""
    import skmfnet._persistence as persistence

    good = saved_as(models, tmp_path, "bias")
    with zipfile.ZipFile(good) as archive:
        meta = json.loads(archive.read("skmfnet.json"))
    meta["fitted"]["history"] = "PLACEHOLDER"
    flood = '{"loss": [' + "0.5," * (65 * 2**20 // 4) + "0.5]}"
    text = json.dumps(meta).replace('"PLACEHOLDER"', flood).encode()
    path = tmp_path / "bad.skmf"
    with zipfile.ZipFile(good) as old, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as new:
        for name in old.namelist():
            new.writestr(name, text if name == "skmfnet.json" else old.read(name))
    del text, flood
    monkeypatch.setattr(persistence, "_parse_json", lambda *a: pytest.fail("parsed a member over its cap"))
    with pytest.raises(InvalidModelFileError, match=r"skmfnet.json declares \d+ bytes uncompressed"):
        read(path)


def test_history_of_an_estimator_without_epochs_is_refused(read, models, tmp_path):
    path = tmp_path / "bad.skmf"
    rewrite(saved_as(models, tmp_path, "bias"), path, **set_history({"loss": [0.5]}))
    with pytest.raises(InvalidModelFileError, match="history has values, but this estimator records no history"):
        read(path)
