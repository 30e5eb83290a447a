"""Beyond one machine: tf.distribute training and Dask-backed hyperparameter search.

Both tests run on this machine only, over loopback, and clean up every process
they start.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
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


def _start_workers(procs, arguments):
    """Start two processes of ``multi_worker_fit.py`` on loopback (``arguments(index)`` each, output
    unbuffered), appended to ``procs`` as they start, so that the caller's cleanup sees every one."""
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    for index in range(2):
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}),
            TF_CPP_MIN_LOG_LEVEL="2", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
        )
        procs.append(subprocess.Popen(
            [sys.executable, "-u", str(SCRIPTS / "multi_worker_fit.py")] + arguments(index),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))


def _kill_all(procs):
    """Kill and reap every process of ``procs`` still running (a test's cleanup)."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def _kill_mid_fit(watched, victims, line_prefix, *, timeout):
    """Once ``watched`` prints a line starting with ``line_prefix``, kill ``victims``; return the rest of
    ``watched``'s output and the seconds it took to exit after the kill."""
    lines = []
    for line in watched.stdout:
        lines.append(line)
        if line.startswith(line_prefix):
            break
    assert lines and lines[-1].startswith(line_prefix), "".join(lines)[-3000:]
    for victim in victims:
        victim.kill()
        victim.wait()
    killed_at = time.monotonic()
    rest = watched.communicate(timeout=timeout)[0]
    return rest, time.monotonic() - killed_at


def _rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", [None, "weighted", "early_stopping"], ids=["plain", "sample_weight", "early_stopping"])
def test_multi_worker_training_on_loopback(tmp_path, mode):
    weighted = mode == "weighted"
    procs = []
    try:
        _start_workers(procs, lambda index: [str(tmp_path / f"worker{index}.npz")] + ([mode] if mode else []))
        outputs = [p.communicate(timeout=100)[0] for p in procs]
    finally:
        _kill_all(procs)
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
    procs = []
    try:
        _start_workers(procs, lambda index: [str(tmp_path / "unused.npz"), "endless"])
        survivor, victim = procs
        # once training has started on both (the epochs need both workers)
        rest, waited = _kill_mid_fit(survivor, [victim], "Epoch 2/", timeout=180)
    finally:
        _kill_all(procs)
    assert survivor.returncode != 0
    assert "could not exchange rows with the other workers" in rest, rest[-3000:]
    assert waited < 180


@pytest.mark.timeout(120)
@pytest.mark.parametrize("index", [0, 1], ids=["leader-waits", "follower-waits"])
def test_a_worker_that_never_starts_makes_the_others_fail_with_a_clear_error(tmp_path, index):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]  # the other one is never started
    env = dict(os.environ, SKMFNET_CLUSTER_TIMEOUT="5", TF_CPP_MIN_LOG_LEVEL="2",
               TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-u", str(SCRIPTS / "multi_worker_fit.py"), str(tmp_path / "out.npz")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output = proc.communicate(timeout=90)[0]
    finally:
        _kill_all([proc])
    waited = time.monotonic() - started
    assert proc.returncode != 0
    assert f"not every worker of TF_CONFIG started within 5 s (SKMFNET_CLUSTER_TIMEOUT); this is worker {index}" \
        in output, output[-3000:]
    assert waited < 90
    assert not (tmp_path / "out.npz").exists()


@pytest.mark.parametrize("value", ["0", "-3", "soon", "inf", "nan", "1e30", "604801"])
def test_the_cluster_timeout_must_be_a_positive_number(monkeypatch, value):
    """At most a week: 1e30 s overflowed TensorFlow's millisecond protobuf fields (a raw "Value out of range")."""
    from skmfnet._training import _cluster as _distribute

    monkeypatch.setenv("SKMFNET_CLUSTER_TIMEOUT", value)
    with pytest.raises(ValueError, match=f"SKMFNET_CLUSTER_TIMEOUT must be a positive number of seconds, at most 604800 "
                       f"\\(a week\\); got '{value}'"):
        _distribute.cluster_timeout()


@pytest.mark.parametrize("config", ["{not json", json.dumps({"cluster": {"worker": []}, "task": {"type": "worker",
                                                                                                "index": 0}}),
                                    json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}})],
                         ids=["not-json", "no-workers", "index-out-of-range"])
def test_multi_worker_refuses_a_malformed_tf_config(monkeypatch, config):
    from skmfnet._training import _cluster as _distribute

    monkeypatch.setenv("TF_CONFIG", config)
    monkeypatch.setattr(_distribute, "_strategies", {})
    with pytest.raises(ValueError, match="TF_CONFIG must be a JSON object naming the workers.*got"):
        _distribute.get_strategy("multi_worker")


BAD_ADDRESSES = ["localhost:abc", "localhost", "localhost:0", "localhost:70000", ":2222", 2222, "localhost:\u00b2"]


@pytest.mark.parametrize("address", BAD_ADDRESSES, ids=str)
def test_a_bad_address_in_tf_config_is_refused_at_once(monkeypatch, address):
    """Not after SKMFNET_CLUSTER_TIMEOUT seconds as a server that never started, on either mode."""
    from skmfnet._training import _cluster as _distribute
    from skmfnet._training._cluster import make_parameter_server_strategy as make_strategy

    monkeypatch.setenv("SKMFNET_CLUSTER_TIMEOUT", "2")
    monkeypatch.setattr(_distribute, "_strategies", {})
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1", address]},
                                                "task": {"type": "worker", "index": 0}}))
    expected = f"every address of TF_CONFIG's cluster must be 'host:port' with a port from 1 to 65535; got {address!r}"
    with pytest.raises(ValueError, match=re.escape("distribution='multi_worker': " + expected) + " in 'worker'"):
        _distribute.get_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"],
                                                            "ps": [address]},
                                                "task": {"type": "chief", "index": 0}}))
    with pytest.raises(ValueError, match=re.escape("distribution='parameter_server': " + expected) + " in 'ps'"):
        make_strategy()


def test_parameter_server_refuses_a_cluster_that_is_not_an_object(monkeypatch):
    from skmfnet._training._cluster import make_parameter_server_strategy as make_strategy

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": [], "task": {"type": "chief", "index": 0}}))
    with pytest.raises(ValueError, match="reads the cluster from the TF_CONFIG .* got '\\{\"cluster\": \\[\\]"):
        make_strategy()


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


def _start_parameter_server_cluster(procs, chief_arguments, **env):
    """A chief (``parameter_server_fit.py chief_arguments``, output unbuffered and piped), 2 workers and
    2 parameter servers on loopback, appended to ``procs`` (the chief first) as they start, so that the
    caller's cleanup sees every one.  ``env``: more environment variables for all five."""
    names = ["chief"] + ["worker"] * 2 + ["ps"] * 2
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(len(names))]
    cluster = {"chief": addresses[:1], "worker": addresses[1:3], "ps": addresses[3:]}
    for k, name in enumerate(names):
        index = k - names.index(name)
        # TensorFlow's default thread pools: with one inter-op thread, a
        # server's remote reads wait on the thread that would serve them
        task_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **env,
                        TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": name, "index": index}}))
        args = chief_arguments if name == "chief" else ["--serve"]
        procs.append(subprocess.Popen([sys.executable, "-u", str(SCRIPTS / "parameter_server_fit.py")] + args,
                                      env=task_env, stdout=subprocess.PIPE if name == "chief" else subprocess.DEVNULL,
                                      stderr=subprocess.STDOUT, text=True))


@pytest.mark.timeout(180)
def test_parameter_server_training_shards_the_tables_on_loopback(tmp_path):
    """A chief, 2 workers and 2 parameter servers, each its own process, over loopback."""
    import pickle

    procs = []
    try:
        _start_parameter_server_cluster(procs, [str(tmp_path / "chief.npz")])
        chief_output = procs[0].communicate(timeout=150)[0]
    finally:
        _kill_all(procs)
    assert procs[0].returncode == 0, chief_output[-3000:]

    result = np.load(tmp_path / "chief.npz")
    layout = json.loads(str(result["layout"]))
    # each table in two shards, one per parameter server, none on the chief or a worker
    for side, n in (("user", int(result["n_users"])), ("item", int(result["n_items"]))):
        devices = [device for device, _ in layout[side]]
        rows = [rows for _, rows in layout[side]]
        assert [d.split("/device")[0] for d in devices] == ["/job:ps/replica:0/task:0", "/job:ps/replica:0/task:1"]
        assert sum(rows) == n + 1 and abs(rows[0] - rows[1]) <= 1

    X_train, y_train, X_test, y_test = multi_worker_fit.data()
    single = EmbeddingMFRegressor(**multi_worker_fit.PARAMS, n_jobs=1).fit(X_train, y_train)
    single_rmse = _rmse(single.predict(X_test), y_test)
    sharded_rmse = _rmse(result["prediction"], y_test)
    # asynchronous updates: close to the one-process fit, not equal to it
    assert abs(sharded_rmse - single_rmse) < RMSE_TOLERANCE, (sharded_rmse, single_rmse)
    assert sharded_rmse < _rmse(np.full(len(y_test), y_train.mean()), y_test) - 0.2
    restored = pickle.loads(result["pickled"].tobytes())  # predicts here, without the cluster
    np.testing.assert_allclose(restored.predict(X_test), result["prediction"], rtol=1e-6)


def test_parameter_server_refuses_what_it_does_not_train_and_a_bad_cluster(tiny_ratings, monkeypatch):
    X, y = tiny_ratings
    with pytest.raises(ValueError, match="distribution='parameter_server' trains the plain dot model.*"
                                         "got interaction='concat'"):
        EmbeddingMFRegressor(distribution="parameter_server", interaction="concat").fit(X, y)
    with pytest.raises(ValueError, match="got negative_ratio=1.0"):
        EmbeddingMFRegressor(distribution="parameter_server", negative_ratio=1.0).fit(X, y)
    # (Adagrad takes the compiled path on one machine, not the parameter-server loop)
    with pytest.raises(ValueError, match="optimizer 'lazy_adam' or 'sgd'.*got optimizer='adagrad'"):
        EmbeddingMFRegressor(distribution="parameter_server", optimizer="adagrad").fit(X, y)
    from skmfnet._training._cluster import make_parameter_server_strategy as make_strategy

    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="reads the cluster from the TF_CONFIG .* got '\\{not json'"):
        make_strategy()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"], "ps": ["b:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    with pytest.raises(ValueError, match="fits in the chief .* got task type 'worker', 1 worker"):
        make_strategy()


@pytest.mark.timeout(120)
def test_parameter_server_chief_fails_clearly_when_a_server_never_starts(tmp_path):
    """A worker and one of two parameter servers run; the other server is never started."""
    chief, worker, ps0, ps1 = (f"127.0.0.1:{port}" for port in _free_ports(4))
    cluster = {"chief": [chief], "worker": [worker], "ps": [ps0, ps1]}
    procs = []
    try:
        for name, index in (("worker", 0), ("ps", 0)):
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                       TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": name, "index": index}}))
            procs.append(subprocess.Popen([sys.executable, str(SCRIPTS / "parameter_server_fit.py"), "--serve"],
                                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", SKMFNET_CLUSTER_TIMEOUT="20",
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}}))
        started = time.monotonic()
        procs.append(subprocess.Popen([sys.executable, str(SCRIPTS / "parameter_server_fit.py"),
                                       str(tmp_path / "chief.npz")],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        output = procs[-1].communicate(timeout=100)[0]
        waited = time.monotonic() - started
    finally:
        _kill_all(procs)
    assert procs[-1].returncode != 0
    # only the missing server is named: the running ones were found
    assert f"distribution='parameter_server': ['{ps1}'] of TF_CONFIG did not accept connections within 20 s" \
        in output, output[-3000:]
    assert waited < 100
    assert not (tmp_path / "chief.npz").exists()


@pytest.mark.timeout(200)
@pytest.mark.parametrize("victims", ["ps", "workers"], ids=["a-parameter-server", "every-worker"])
def test_parameter_server_chief_fails_clearly_when_servers_die_mid_fit(victims):
    """Kill one parameter server, or both workers (TensorFlow's coordinator would wait for them for ever)."""
    procs = []
    try:
        _start_parameter_server_cluster(procs, ["unused.npz", "endless"], SKMFNET_CLUSTER_TIMEOUT="10")
        chief = procs[0]
        rest, waited = _kill_mid_fit(chief, procs[4:] if victims == "ps" else procs[1:3], "Epoch 3/", timeout=120)
    finally:
        _kill_all(procs)
    assert chief.returncode != 0
    expected = {"ps": "training stopped: a parameter server or worker stopped, was killed or is unreachable",
                "workers": "no batch finished for 10 s (SKMFNET_CLUSTER_TIMEOUT): every worker stopped"}[victims]
    assert expected in rest, rest[-3000:]
    assert waited < 120
