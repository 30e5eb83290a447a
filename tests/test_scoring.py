"""A plain dot model read as numpy tables (read_dot_model, DotModel): the estimator's answers, without its imports."""

import io
import json
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pandas as pd
import pytest

from skmfnet import BiasBaselineRegressor, EmbeddingMFRegressor, recommend
from skmfnet._persistence import InvalidModelFileError, load_estimator, read_dot_model, save_estimator
from skmfnet.datasets import make_ratings

FAST = dict(n_factors=4, epochs=2, batch_size=64, random_state=0)


@pytest.fixture(scope="module")
def ratings():
    return make_ratings(n_users=30, n_items=20, n_ratings=300, return_X_y=True, random_state=0)


def string_ids(X):
    return X.assign(user_id="u" + X["user_id"].astype(str), item_id="i" + X["item_id"].astype(str))


@pytest.fixture(scope="module", params=["plain", "selection", "string-ids", "no-clip", "item-item", "averaged"])
def dot_file(request, ratings, tmp_path_factory):
    X, y = ratings
    params = dict(FAST)
    if request.param == "selection":
        params.update(negative_ratio=1.0, selection_factors=3)
    if request.param == "string-ids":
        X = string_ids(X)
    if request.param == "no-clip":
        params.update(clip_predictions=False)
    if request.param == "item-item":
        params.update(item_item_alpha=30.0, item_item_weight=0.3)
    if request.param == "averaged":
        params.update(n_estimators=2)
    est = EmbeddingMFRegressor(**params).fit(X, y)
    path = tmp_path_factory.mktemp("dot") / "model.skmf"
    save_estimator(est, path)
    return est, X, path


def test_predict_recommend_and_similar_equal_the_estimators(dot_file):
    est, X, path = dot_file
    model = read_dot_model(path)
    assert model is not None
    users, items = X.iloc[:, 0].to_numpy(), X.iloc[:, 1].to_numpy()
    # known pairs, then an unknown user, an unknown item and both
    unknown_user, unknown_item = ("nobody", "nothing") if users.dtype == object else (10**6, 10**6)
    users = np.r_[users, [unknown_user, users[0], unknown_user]]
    items = np.r_[items, [items[0], unknown_item, unknown_item]]
    expected = est.predict(pd.DataFrame({"user_id": users, "item_id": items}))
    np.testing.assert_array_equal(model.predict(users, items), expected)
    some_users = [users[0], users[5], unknown_user]
    for exclude_seen in (True, False):
        pd.testing.assert_frame_equal(
            model.recommend(some_users, n=5, exclude_seen=exclude_seen),
            recommend(est, some_users, n=5, exclude_seen=exclude_seen),
        )
    some_items = [items[0], items[3]]
    pd.testing.assert_frame_equal(model.similar(some_items, "item", n=4), est.similar_items(some_items, n=4))
    pd.testing.assert_frame_equal(model.similar([users[1]], "user", n=4), est.similar_users([users[1]], n=4))


@pytest.mark.parametrize(
    "params",
    [dict(implicit=True), dict(interaction="concat", hidden_layer_sizes=(4,)), dict(user_features=["group"])],
    ids=["implicit", "concat", "side-information"],
)
def test_other_networks_are_left_to_load_estimator(ratings, tmp_path, params):
    X, y = ratings
    if "user_features" in params:
        X = X.assign(group=np.where(X["user_id"].to_numpy() % 2 == 0, "a", "b"))
    path = tmp_path / "model.skmf"
    save_estimator(EmbeddingMFRegressor(**FAST, **params).fit(X, y), path)
    assert read_dot_model(path) is None
    assert load_estimator(path).predict(X).shape == (len(X),)


def test_the_reader_knows_the_estimators_parameters():
    """read_dot_model leaves files with other parameters (another version's) to load_estimator: the same list."""
    from skmfnet._persistence import _MF_PARAMETERS

    assert _MF_PARAMETERS == set(EmbeddingMFRegressor().get_params(deep=False))


def test_the_bias_baseline_is_left_to_load_estimator(ratings, tmp_path):
    X, y = ratings
    path = tmp_path / "model.skmf"
    save_estimator(BiasBaselineRegressor().fit(X, y), path)
    assert read_dot_model(path) is None


def rewrite_weights(src, dst, change):
    """Copy a model file, changing the HDF5 weights file inside its Keras archive with ``change(h5)``."""
    with zipfile.ZipFile(src) as outer:
        members = {name: outer.read(name) for name in outer.namelist()}
    with zipfile.ZipFile(io.BytesIO(members["model.keras"])) as inner:
        keras_members = {name: inner.read(name) for name in inner.namelist()}
    buffer = io.BytesIO(keras_members["model.weights.h5"])
    with h5py.File(buffer, "r+") as h5:
        change(h5)
    keras_members["model.weights.h5"] = buffer.getvalue()
    keras_archive = io.BytesIO()
    with zipfile.ZipFile(keras_archive, "w") as inner:
        for name, data in keras_members.items():
            inner.writestr(name, data)
    members["model.keras"] = keras_archive.getvalue()
    with zipfile.ZipFile(dst, "w") as outer:
        for name, data in members.items():
            outer.writestr(name, data)


@pytest.fixture(scope="module")
def plain_file(ratings, tmp_path_factory):
    X, y = ratings
    path = tmp_path_factory.mktemp("plain") / "model.skmf"
    save_estimator(EmbeddingMFRegressor(**FAST).fit(X, y), path)
    return path


def test_weights_under_another_layers_name_are_left_to_load_estimator(plain_file, tmp_path):
    """A weights file whose groups name other layers than the config's order gives: Keras's reading decides."""
    path = tmp_path / "renamed.skmf"
    rewrite_weights(plain_file, path, lambda h5: h5["layers/row_l2_embedding/vars"].attrs.modify("name", "item_factors"))
    assert read_dot_model(path) is None


def external_link(target):
    def change(h5):
        del h5["layers/row_l2_embedding_2/vars/0"]
        h5["layers/row_l2_embedding_2/vars/0"] = h5py.ExternalLink(str(target), "/data")
    return change


@pytest.mark.parametrize("reader", [read_dot_model, load_estimator], ids=["read_dot_model", "load_estimator"])
def test_weights_that_read_another_file_are_refused(plain_file, tmp_path, reader):
    """An external link would make Keras (or h5py) read another file of this machine into the model."""
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5["data"] = np.full((31, 1), 7.0, dtype=np.float32)  # the user_bias shape: loadable
    path = tmp_path / "bad.skmf"
    rewrite_weights(plain_file, path, external_link(other))
    with pytest.raises(InvalidModelFileError, match="user_bias.*link|row_l2_embedding_2/vars/0 is a link"):
        reader(path)


def nan_bias(h5):
    h5["layers/row_l2_embedding_3/vars/0"][3, 0] = np.nan


def wrong_shape(h5):
    del h5["layers/row_l2_embedding/vars/0"]
    h5["layers/row_l2_embedding/vars/0"] = np.zeros((5, 4), dtype=np.float32)


@pytest.mark.parametrize(
    "change, match",
    [
        (nan_bias, "item_bias is not finite"),
        (wrong_shape, r"user_factors.*shape \(5, 4\).*expected.*\(31, 4\)"),
    ],
    ids=["nan-table", "wrong-shape"],
)
def test_crafted_weights_are_refused(plain_file, tmp_path, change, match):
    path = tmp_path / "bad.skmf"
    rewrite_weights(plain_file, path, change)
    with pytest.raises(InvalidModelFileError, match=match):
        read_dot_model(path)


@pytest.fixture(scope="module", params=["plain", "item-item, averaged, from the command line"])
def cli_file(request, plain_file, ratings, tmp_path_factory):
    if request.param == "plain":
        return plain_file
    from skmfnet.cli import main

    X, y = ratings
    folder = tmp_path_factory.mktemp("cli_item_item")
    X.assign(rating=y).to_csv(folder / "ratings.csv", index=False)
    path = folder / "model.skmf"
    assert main(["fit", str(folder / "ratings.csv"), "-m", str(path), "-q", "--epochs", "2", "--n-factors", "4",
                 "--n-estimators", "2", "--item-item-alpha", "auto", "--random-state", "0"]) == 0
    return path


def test_cli_answers_for_a_dot_model_without_importing_tensorflow_or_scikit_learn(cli_file, ratings, tmp_path):
    """predict, recommend and similar on a dot model's file read numpy tables: no TensorFlow, no scikit-learn."""
    X, _ = ratings
    pairs = tmp_path / "pairs.csv"
    X.head(5).to_csv(pairs, index=False)
    user, item = str(X.iloc[0, 0]), str(X.iloc[0, 1])
    for command in (
        ["predict", str(cli_file), str(pairs)],
        ["recommend", str(cli_file), "--user", user, "-n", "3"],
        ["similar", str(cli_file), "--item", item, "-n", "3"],
    ):
        code = (
            "import json, sys\n"
            "from skmfnet.cli import main\n"
            f"status = main({command!r})\n"
            "print(json.dumps([status, 'tensorflow' in sys.modules, 'sklearn' in sys.modules]), file=sys.stderr)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=120)
        status, tensorflow, sklearn = json.loads(result.stderr.strip().splitlines()[-1])
        assert (status, tensorflow, sklearn) == (0, False, False), (command, result.stderr)
        assert len(result.stdout.strip().splitlines()) > 1, command


def test_blocks_ranked_on_threads_equal_blocks_ranked_in_turn(monkeypatch):
    """ranked_blocks(threaded=True) returns what the serial loop returns, in the same order."""
    import skmfnet._scoring as scoring

    monkeypatch.setattr(scoring, "_BLOCK_SCORES", 30)  # 3 query rows per block: 7 blocks
    monkeypatch.setattr(scoring, "_usable_cores", lambda: 3)
    rng = np.random.default_rng(0)
    table = rng.standard_normal((20, 10))
    table[table < -1.5] = -np.inf  # left out

    def score(rows):
        return table[rows]

    query = rng.permutation(20)
    serial = scoring.ranked_blocks(query, score, 10, 4)
    threaded = scoring.ranked_blocks(query, score, 10, 4, threaded=True)
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)
    assert len(np.unique(serial[0])) == 20


def test_pair_scores_gather_a_block_of_rows_at_a_time_whatever_the_number_of_pairs():
    """300,000 pairs at K=64: the float64 rows gathered all at once took 300 MB; in blocks a few MB."""
    import tracemalloc

    from skmfnet._scoring import pair_scores

    rng = np.random.default_rng(0)
    tables = {"user_factors": rng.normal(size=(500, 64)).astype(np.float32),
              "item_factors": rng.normal(size=(300, 64)).astype(np.float32),
              "user_bias": rng.normal(size=500).astype(np.float32),
              "item_bias": rng.normal(size=300).astype(np.float32)}
    users, items = rng.integers(0, 500, 300_000), rng.integers(0, 300, 300_000)
    tracemalloc.start()
    try:
        got = pair_scores(3.5, tables, users, items)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20  # (the result itself: 2.4 MB)
    f64 = np.float64
    expected = (3.5 + tables["user_bias"][users].astype(f64) + tables["item_bias"][items].astype(f64)
                + np.einsum("ij,ij->i", tables["user_factors"][users].astype(f64),
                            tables["item_factors"][items].astype(f64)))
    np.testing.assert_array_equal(got, expected)
