"""The compiled row-sparse training path of optimizer="lazy_adam" and "sgd" (skmfnet._rowfit)."""

import keras
import numpy as np
import pytest

from skmfnet import EmbeddingMFRegressor
from skmfnet._training import steps_per_epoch as _steps_per_epoch, training_batches as _training_batches
from skmfnet._network import build_network
from skmfnet._optimizers import LazyAdam
from skmfnet._rowfit import fit_rows
from skmfnet.datasets import make_ratings

LAZY = dict(n_factors=4, epochs=3, batch_size=64, optimizer="lazy_adam", random_state=0)


@pytest.fixture(scope="module")
def rows():
    X, y = make_ratings(n_users=60, n_items=40, n_ratings=1500, return_X_y=True, random_state=0)
    Xr = np.column_stack([X.user_id.factorize()[0] + 1, X.item_id.factorize()[0] + 1]).astype("int32")
    return Xr, (y - y.mean()).astype("float32")


OPTIMIZERS = {
    "lazy_adam": lambda: LazyAdam(learning_rate=0.01),
    "sgd": lambda: keras.optimizers.SGD(learning_rate=2.0),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_same_trajectory_as_keras_fit(rows, name):
    X, y = rows
    params = dict(n_factors=4, alpha=0.1, alpha_bias=0.01, init_std=0.1, seed=0)
    keras_model = build_network(X[:, 0].max(), X[:, 1].max(), **params)
    compiled = build_network(X[:, 0].max(), X[:, 1].max(), **params)
    keras_model.compile(
        optimizer=OPTIMIZERS[name](),
        loss="mean_squared_error",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    expected = keras_model.fit(
        _training_batches(X, y, batch_size=64, epochs=3, seed=5),
        epochs=3, steps_per_epoch=_steps_per_epoch(len(y), 64), verbose=0, shuffle=False,
    ).history
    history = fit_rows(compiled, X, y, optimizer=OPTIMIZERS[name](), epochs=3, batch_size=64,
                       alpha=0.1, alpha_bias=0.01, seed=5)
    assert history["loss"][-1] < history["loss"][0]  # it learns: the comparison is not of two idle runs
    for key in ("loss", "rmse"):
        np.testing.assert_allclose(history[key], expected[key], rtol=1e-5)
    for a, b in zip(keras_model.weights, compiled.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_estimator_takes_the_compiled_path_only_for_the_plain_dot_model(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**LAZY).fit(X, y)
    assert est._compiled_rows()
    assert set(est.history_) == {"loss", "rmse"} and len(est.history_["rmse"]) == 3
    # an integer learning rate is a valid Real (Keras alone would refuse it)
    assert EmbeddingMFRegressor(**{**LAZY, "optimizer": "sgd", "learning_rate": 2}).fit(X, y)._compiled_rows()
    for other in (dict(optimizer="adam"), dict(optimizer="adagrad"), dict(loss="rmse"), dict(implicit=True),
                  dict(regularization="table"), dict(interaction="concat")):
        assert not EmbeddingMFRegressor(**{**LAZY, **other}).fit(X, y)._compiled_rows()


def test_compiled_path_is_reproducible_and_pickles(tiny_ratings):
    import pickle

    X, y = tiny_ratings
    a = EmbeddingMFRegressor(**LAZY).fit(X, y)
    b = EmbeddingMFRegressor(**LAZY).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(a)).predict(X), a.predict(X))


def test_compiled_path_validation_and_early_stopping(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**LAZY).fit(X[:100], y[:100], validation_data=(X[100:], y[100:]))
    assert len(est.history_["val_rmse"]) == 3 and np.all(np.isfinite(est.history_["val_loss"]))
    # a large step on few ratings overfits at once: patience 1 stops early, best weights back
    est = EmbeddingMFRegressor(
        **{**LAZY, "epochs": 40, "learning_rate": 0.5, "alpha": 0.0, "n_factors": 8},
        early_stopping=True, n_iter_no_change=1,
    ).fit(X, y)
    val = est.history_["val_rmse"]
    assert len(val) < 40
    best = int(np.argmin(val))
    assert len(val) == best + 2  # stopped one epoch after the best


def test_optimizer_state_matches_keras_fit(rows):
    X, y = rows
    params = dict(n_factors=4, alpha=0.1, alpha_bias=0.01, init_std=0.1, seed=0)
    models = [build_network(X[:, 0].max(), X[:, 1].max(), **params) for _ in range(2)]
    for model in models:
        model.compile(optimizer=LazyAdam(learning_rate=0.01), loss="mean_squared_error")
    models[0].fit(_training_batches(X, y, batch_size=64, epochs=2, seed=1), epochs=2,
                  steps_per_epoch=_steps_per_epoch(len(y), 64), verbose=0, shuffle=False)
    fit_rows(models[1], X, y, optimizer=models[1].optimizer, epochs=2, batch_size=64, alpha=0.1,
             alpha_bias=0.01, seed=1)
    keras_opt, compiled_opt = (m.optimizer for m in models)
    assert int(keras_opt.iterations) == int(compiled_opt.iterations) == 2 * (len(y) // 64)
    for a, b in zip(keras_opt.variables, compiled_opt.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, err_msg=a.path)


def test_unsupported_optimizer_is_refused(rows):
    X, y = rows
    model = build_network(X[:, 0].max(), X[:, 1].max(), n_factors=4, seed=0)
    with pytest.raises(ValueError, match="optimizer: the compiled path implements LazyAdam and SGD"):
        fit_rows(model, X, y, optimizer=keras.optimizers.SGD(momentum=0.9), epochs=1, batch_size=64,
                 alpha=0.1, alpha_bias=0.01, seed=0)


def test_later_fits_of_a_search_do_not_trace_again(tiny_ratings):
    from sklearn.model_selection import GridSearchCV

    from skmfnet._rowfit import trace_count

    X, y = tiny_ratings
    EmbeddingMFRegressor(**LAZY).fit(X, y)  # the first fit of this configuration traces
    before = trace_count()
    search = GridSearchCV(EmbeddingMFRegressor(**LAZY), {"n_factors": [2, 4, 8]}, cv=3,
                          scoring="neg_root_mean_squared_error").fit(X, y)
    assert search.best_estimator_._compiled_rows()
    # nine candidate fits and the refit, on folds of other table sizes and K
    assert trace_count() == before


_FIT_SCRIPT = """
import json, sys
import numpy as np
from skmfnet import EmbeddingMFRegressor
from skmfnet.datasets import make_ratings
out = {}
for name in sys.argv[1:]:
    seed = {"a": 0, "b": 1}[name]
    X, y = make_ratings(n_users=40 + 10 * seed, n_items=30, n_ratings=900, return_X_y=True, random_state=seed)
    est = EmbeddingMFRegressor(n_factors=4 + 4 * seed, epochs=3, batch_size=64, optimizer="lazy_adam",
                               random_state=seed).fit(X, y)
    out[name] = est.predict(X).tolist()
print(json.dumps(out))
"""


def test_reused_compiled_epochs_leak_nothing_between_fits():
    # two fits in one process predict exactly what each fit alone predicts in a fresh process
    import json
    import subprocess
    import sys

    def run(*names):
        done = subprocess.run([sys.executable, "-c", _FIT_SCRIPT, *names], capture_output=True,
                              text=True, check=True, timeout=300)
        return json.loads(done.stdout.strip().splitlines()[-1])

    together = run("a", "b")
    assert together["a"] != together["b"]
    assert run("a")["a"] == together["a"]
    assert run("b")["b"] == together["b"]


@pytest.mark.parametrize(
    "params, compiled",
    [({}, True), ({"implicit": True}, False), ({"user_features": ["group"]}, False)],
    ids=["plain", "implicit", "side-information"],
)
def test_the_defaults_train_only_the_rows_of_each_batch_on_every_path(tiny_ratings, params, compiled):
    # with no optimizer named: the compiled path for the plain dot model,
    # keras.Model.fit with LazyAdam's row-sparse update (tested in
    # test_estimator.py) with side information or implicit feedback
    X, y = tiny_ratings
    X = X.assign(group=X["user_id"].astype(int) % 3) if "user_features" in params else X
    est = EmbeddingMFRegressor(n_factors=2, epochs=1, random_state=0, **params).fit(X, y)
    assert type(est.model_.optimizer) is LazyAdam
    assert est._compiled_rows() is compiled
