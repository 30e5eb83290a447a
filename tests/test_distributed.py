"""Beyond one machine: tf.distribute training and Dask-backed hyperparameter search.

Both tests run on this machine only, over loopback, and clean up every process
they start.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skmfnet import EmbeddingMFRegressor

SCRIPTS = Path(__file__).parent / "scripts"
sys.path.insert(0, str(SCRIPTS))
import multi_worker_fit  # noqa: E402

#: How far the distributed fit's test RMSE may be from the single-process one.
#: Same data, seed and global batch; the difference is the order of float sums
#: in the all-reduce and how the global batch is split across the two workers.
RMSE_TOLERANCE = 0.02


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", [None, "weighted", "early_stopping"], ids=["plain", "sample_weight", "early_stopping"])
def test_multi_worker_training_on_loopback(tmp_path, mode):
    weighted = mode == "weighted"
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs = []
    try:
        for index in range(2):
            env = dict(
                os.environ,
                TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}),
                TF_CPP_MIN_LOG_LEVEL="2",
                TF_NUM_INTRAOP_THREADS="1",
                TF_NUM_INTEROP_THREADS="1",
            )
            procs.append(subprocess.Popen(
                [sys.executable, str(SCRIPTS / "multi_worker_fit.py"), str(tmp_path / f"worker{index}.npz")]
                + ([mode] if mode else []),
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            ))
        outputs = [p.communicate(timeout=100)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]

    results = [np.load(tmp_path / f"worker{index}.npz") for index in range(2)]
    weight_names = [k for k in results[0].files if k.startswith("w")]
    assert weight_names
    for name in weight_names:  # mirrored variables: both workers hold the same weights
        np.testing.assert_allclose(results[0][name], results[1][name], rtol=1e-6, atol=1e-7)

    X_train, y_train, X_test, y_test = multi_worker_fit.data()
    sample_weight = multi_worker_fit.weights() if weighted else None
    params = {"weighted": multi_worker_fit.WEIGHTED_PARAMS,
              "early_stopping": multi_worker_fit.EARLY_STOPPING_PARAMS}.get(mode, multi_worker_fit.PARAMS)
    single = EmbeddingMFRegressor(**params).fit(X_train, y_train, sample_weight=sample_weight)
    single_rmse = _rmse(single.predict(X_test), y_test)
    distributed_rmse = _rmse(results[0]["prediction"], y_test)
    assert abs(distributed_rmse - single_rmse) < RMSE_TOLERANCE, (distributed_rmse, single_rmse)
    if not weighted:
        # the compiled path: one block of users per worker, the schedule that
        # two threads train in one process, and so its result
        threads = EmbeddingMFRegressor(**params, n_jobs=2).fit(X_train, y_train)
        assert not np.allclose(threads.predict(X_test), single.predict(X_test))  # another schedule than one thread's
        np.testing.assert_allclose(results[0]["prediction"], threads.predict(X_test), rtol=1e-5)
        # early stopping, as in one process: same epochs run, best weights restored
        assert int(results[0]["epochs"]) == int(results[1]["epochs"]) == len(threads.history_["rmse"])
        if mode == "early_stopping":
            assert len(threads.history_["rmse"]) < params["epochs"]
    if weighted:  # the workers honoured the weights: closer to the weighted fit than to the unweighted one
        unweighted = EmbeddingMFRegressor(**params).fit(X_train, y_train).predict(X_test)
        assert _rmse(results[0]["prediction"], single.predict(X_test)) < _rmse(results[0]["prediction"], unweighted)
    # the fitted estimator pickles and predicts here, without the cluster
    import pickle

    restored = pickle.loads(results[0]["pickled"].tobytes())
    np.testing.assert_allclose(restored.predict(X_test), results[0]["prediction"], rtol=1e-6)
    # and it learned something: far better than the global mean
    assert distributed_rmse < _rmse(np.full(len(y_test), y_train.mean()), y_test) - 0.2


@pytest.mark.timeout(240)
def test_a_worker_killed_mid_fit_makes_the_other_fail_with_a_clear_error(tmp_path):
    import time

    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs = []
    try:
        for index in range(2):
            env = dict(
                os.environ,
                TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}),
                TF_CPP_MIN_LOG_LEVEL="2", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
            )
            procs.append(subprocess.Popen(
                [sys.executable, "-u", str(SCRIPTS / "multi_worker_fit.py"), str(tmp_path / "unused.npz"), "endless"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            ))
        survivor, victim = procs
        lines = []
        for line in survivor.stdout:  # training has started on both: the epochs need both workers
            lines.append(line)
            if line.startswith("Epoch 2/"):
                break
        assert lines and lines[-1].startswith("Epoch 2/"), "".join(lines)[-3000:]
        victim.kill()
        victim.wait()
        killed_at = time.monotonic()
        rest = survivor.communicate(timeout=180)[0]
        waited = time.monotonic() - killed_at
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert survivor.returncode != 0
    assert "could not exchange rows with the other workers" in rest, rest[-3000:]
    assert waited < 180


def test_multi_worker_needs_a_seed(tiny_ratings):
    X, y = tiny_ratings
    with pytest.raises(ValueError, match="needs an integer random_state"):
        EmbeddingMFRegressor(distribution="multi_worker").fit(X, y)


def test_mirrored_strategy_matches_plain_fit_and_pickles(tiny_ratings):
    import pickle

    X, y = tiny_ratings
    params = dict(n_factors=3, epochs=3, batch_size=32, random_state=0)
    mirrored = EmbeddingMFRegressor(**params, distribution="mirrored").fit(X, y)
    plain = EmbeddingMFRegressor(**params).fit(X, y)
    np.testing.assert_allclose(mirrored.predict(X), plain.predict(X), rtol=1e-5)
    restored = pickle.loads(pickle.dumps(mirrored))
    np.testing.assert_array_equal(restored.predict(X), mirrored.predict(X))


@pytest.mark.timeout(120)
def test_grid_search_on_a_dask_cluster_matches_sequential(low_rank_ratings):
    distributed = pytest.importorskip("distributed")
    import joblib
    from sklearn.model_selection import GridSearchCV

    X, y, _, _ = low_rank_ratings
    X, y = X[:3000], y[:3000]
    base = EmbeddingMFRegressor(epochs=4, batch_size=256, learning_rate=0.02, random_state=0)
    grid = {"n_factors": [1, 8]}
    search = dict(cv=2, scoring="neg_root_mean_squared_error")
    sequential = GridSearchCV(base, grid, **search).fit(X, y)

    # one TensorFlow thread per worker so that 2 workers do not oversubscribe 2 cores
    env = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        host="127.0.0.1", env=env,
    ) as cluster, distributed.Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        with joblib.parallel_backend("dask"):
            on_cluster = GridSearchCV(base, grid, n_jobs=-1, **search).fit(X, y)
    assert on_cluster.best_params_ == sequential.best_params_
    np.testing.assert_allclose(
        on_cluster.cv_results_["mean_test_score"], sequential.cv_results_["mean_test_score"], rtol=1e-5
    )


@pytest.mark.parametrize(
    "params, fit_kwargs, match",
    [
        pytest.param({"loss": "rmse"}, {}, "got loss='rmse'", id="rmse-loss"),
        pytest.param({"early_stopping": True, "optimizer": "adam"}, {}, "got early_stopping=True",
                     id="early-stopping"),
        pytest.param({"interaction": "concat"}, {"validation": True}, "got validation_data='given'",
                     id="validation-data"),
    ],
)
def test_multi_worker_rejects_what_its_loop_does_not_do(tiny_ratings, params, fit_kwargs, match):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(distribution="multi_worker", random_state=0, **params)
    kwargs = {"validation_data": (X, y)} if fit_kwargs else {}
    with pytest.raises(ValueError, match=match):
        est.fit(X, y, **kwargs)
