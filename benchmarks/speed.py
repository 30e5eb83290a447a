"""Speed and scale: skmfnet against Surprise and Cornac on one machine.

Protocols, each measured in one run so that ratios compare like with like:

* ``ml100k``: MovieLens 100K u1 -- fit seconds and test RMSE of
  ``EmbeddingMFRegressor()`` defaults (its first fit of the process, which
  traces and compiles the training epoch, then the same fit again, which is
  what every later fit costs), the former defaults (``FORMER_DEFAULTS``:
  Keras's dense Adam through ``keras.Model.fit``), Surprise ``SVD`` defaults
  and Cornac ``MF`` (its README configuration), and the ratios of fit
  times to Surprise SVD's; then the defaults' first fit in a new process,
  twice (each a new process: imports included, nothing compiled at run
  time since the kernel is built at install).
* ``search``: a model selection as users run it -- ``GridSearchCV`` over
  ``n_factors`` in ``SEARCH_GRID`` on the five canonical folds of MovieLens
  100K (u1..u5, ``PredefinedSplit``), refit on all ratings included, from a
  pandas DataFrame: skmfnet's defaults (the compiled path, whose epoch is
  traced once per process), the same search again in the same process, the
  former defaults (Keras Adam through ``keras.Model.fit``, which traces
  every fit anew), and Surprise's own ``GridSearchCV`` over ``SVD`` on the same
  folds (its ``Dataset`` built from the same DataFrame, inside the timing);
  wall seconds, the ratio to Surprise's, the chosen K and its mean CV RMSE.
  One job (``n_jobs=1``) for every library.  As in ``ml100k``, two more
  rows: the defaults' search in a new process, twice.
* ``readme_search``: the README example's search (``GridSearchCV`` over
  ``n_factors`` in ``README_GRID``, ``cv=3`` on u1.base, refit included),
  skmfnet's defaults with ``n_jobs=1``, ``n_jobs=2`` and ``n_jobs=2`` on
  joblib's threading backend, each in a new process, against Surprise's
  ``GridSearchCV(SVD)`` on the same folds.
* ``synthetic``: ratings with the shape of MovieLens 25M (162,000 users,
  59,000 items, long-tailed popularity) from
  :func:`skmfnet.datasets.make_ratings`.  For each library, with the same
  number of factors, in its own process (after an untimed warm-up fit on 2,000
  ratings that takes the one-time import and initialisation costs):
  end-to-end fit seconds from a pandas DataFrame (data preparation included)
  for ``--epochs`` epochs, seconds per
  epoch and ratings per second (from a second, one-epoch fit:
  ``(T(epochs) - T(1)) / (epochs - 1)``; where the defaults' ``"auto"``
  compares two (alpha, learning_rate) pairs on held-out ratings, the epochs
  are those both pairs trained, early stopping included, and an epoch's
  ratings are those not held out), peak resident memory of the process,
  prediction throughput (pairs per second) and RMSE on ``--test-ratings``
  further ratings of the same model (so that speed is not bought with
  accuracy).  skmfnet runs as ``skmfnet``: ``EmbeddingMFRegressor(n_factors=K)``
  with every other parameter at its default, its own number of epochs
  included (not ``--epochs``); ``skmfnet-sgd``: ``optimizer="sgd"``
  (``SKMFNET_SGD``) for ``--epochs``; ``skmfnet-adagrad``:
  ``optimizer="adagrad"`` (``SKMFNET_ADAGRAD``) for ``--epochs``; ``skmfnet-lazy4096``: the row-sparse
  configuration of earlier runs (``optimizer="lazy_adam"`` at the former
  defaults' learning rate and batch size) for ``--epochs``;
  ``skmfnet-1thread``: the defaults with ``n_jobs=1`` (one thread; the
  defaults use every usable core at this size);
  ``skmfnet-blockperthread``: the defaults with one block of users and of
  items per thread (through the private ``skmfnet._training._schedule.BLOCKS``, set to
  1), the schedule of the earliest runs; all six
  on the compiled path.  Beside them, the memory-traffic bound: the bytes an epoch must
  move per rating on the compiled path (its user and item rows with their
  optimizer state, read and written) against this machine's memory
  bandwidth, measured in the same run (numpy copies on every usable core).
* ``scaling``: ``distribution="multi_worker"`` on loopback: one process
  on one core (``taskset``, one TensorFlow thread, ``n_jobs=1``) against
  two worker processes on one core each, at ``SCALING_SIZES`` training
  ratings of the 25M id shape (:func:`skmfnet.datasets.make_ratings`,
  162,000 users, 59,000 items), ``EmbeddingMFRegressor(n_factors=32,
  **SCALING_PARAMS)`` (``alpha=0.03, learning_rate=0.002``, no early
  stopping: the pair ``"auto"`` keeps at this density, fixed, because
  ``"auto"`` chooses on held-out ratings in one process only; left to
  ``"auto"`` the two setups trained different models): seconds per epoch
  (``(T(10) - T(1)) / 9`` of each process, worker 0 for the pair, after an
  untimed one-epoch fit on the same data), throughput, test RMSE on 100,000 further
  ratings, and the bytes each worker sent per epoch through the exchange
  (counted by ``skmfnet._training._cluster.RowExchange``).
* ``tutorial``: seconds per epoch of the tutorial network against its
  arithmetic bound: FLOPs of its Dense layers per rating (forward and
  backward: 3 x 2 x weights) x ratings / this machine's measured float32
  matmul FLOP/s at the network's shapes (medians of three interleaved
  repetitions of both).
* ``cli``: seconds of the ``skmfnet`` command on a model file of the
  defaults fitted on u1.base (a plain dot model), each run a new process,
  median of three: ``predict`` of 4 pairs and of u1.test's 20,000 pairs,
  ``recommend`` of 10 items to one user, ``similar`` of 10 items to one;
  beside them, a new process that loads the estimator
  (``load_estimator``) and predicts the 4 pairs, what every command cost
  before the CLI read dot models as numpy tables.
* ``recommend``: seconds of ``recommend`` for 1,000 users (10 items each,
  training items left out) over 10,000 items, on
  ``make_ratings(5000, 10000, 500_000)``: the defaults, and the defaults
  with the item-item term over all 10,000 items (``item_item_alpha=300``,
  ``item_item_weight=0.1``, fixed: no "auto" search); best of three calls,
  with each fit's seconds beside.

Usage (from the repository root)::

    python benchmarks/speed.py                      # all protocols, 25M ratings
    python benchmarks/speed.py --n-ratings 5000000 --protocols synthetic

Results: ``benchmarks/results/speed/speed.{json,md}`` (``--output`` to change; the
committed runs of single protocols are folders beside them, e.g.
``--output benchmarks/results/speed/speed_25m_kernel``).
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.suite.peers import CornacRegressor, SurpriseRegressor  # noqa: E402
from benchmarks.suite.report import machine_info  # noqa: E402

PROTOCOLS = ("ml100k", "search", "readme_search", "synthetic", "tutorial", "scaling", "cli", "recommend")
#: cli: runs of each command (new processes), of which the median is reported
CLI_REPEATS = 3
#: scaling: training ratings of each run (the 25M id shape), factors, epochs
SCALING_SIZES = (400_000, 5_000_000)
SCALING_FACTORS = 32
SCALING_EPOCHS = 10
#: Fixed in both setups of ``scaling`` (module docstring).
SCALING_PARAMS = dict(alpha=0.03, learning_rate=0.002, early_stopping=False)
SEARCH_GRID = [8, 16, 32, 64, 128]
#: The README example's grid (``readme_search``).
README_GRID = [8, 32, 128]
LIBRARIES = ("skmfnet", "skmfnet-1thread", "skmfnet-blockperthread", "skmfnet-sgd", "skmfnet-adagrad",
             "skmfnet-lazy4096", "surprise", "cornac")
# skmfnet with plain SGD on the compiled path.  The batch loss is a mean, so
# the learning rate is large (per rating it is 2 * lr / batch_size); factors
# start at std 0.1 (SGD hardly moves away from the defaults' near-zero start).
# Chosen by test RMSE after 20 epochs on other data than the benchmark's:
# make_ratings(162_000, 59_000, 5_000_000, random_state=1), 90/10 split,
# among learning_rate 5-40, alpha 0.02-0.1 and init_std 0.001 or 0.1, with
# batches of 4096 (then the default; pinned since the default became 1024).
SKMFNET_SGD = dict(optimizer="sgd", learning_rate=30.0, init_std=0.1, alpha=0.05, batch_size=4096)
# skmfnet with Keras's Adagrad on the compiled path, at the defaults' batch
# size.  Its accumulators start at 0.1, so it first moves like SGD at
# learning_rate / sqrt(0.1).  Chosen as SKMFNET_SGD was, by validation RMSE after
# 20 epochs on make_ratings(162_000, 59_000, 5_000_000, random_state=1), 90/10:
# learning_rate 1, 3, 10 (10 diverged) with init_std 0.1 and alpha 0.05 (0.9668,
# 0.9410), and 3 with (init_std, alpha) (0.01, 0.02) and (0.1, 0.02) (0.9562,
# 0.9825); 0.1 with init_std 0.1 and the defaults' alpha: 1.1472.
SKMFNET_ADAGRAD = dict(optimizer="adagrad", learning_rate=3.0, init_std=0.1, alpha=0.05)
# the defaults before the row-sparse ones (Keras's dense Adam, keras.Model.fit)
FORMER_DEFAULTS = dict(optimizer="adam", learning_rate=0.01, batch_size=4096, init_std=0.001, epochs=8)
_FORMER_LABEL = "EmbeddingMFRegressor(**FORMER_DEFAULTS)"
CORNAC_README = dict(k=10, max_iter=25, learning_rate=0.01, lambda_reg=0.02, use_bias=True)


def _rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, dtype=float) - np.asarray(b, dtype=float)) ** 2)))


# --------------------------------------------------------------------- ml100k
_FIRST_FIT = "skmfnet EmbeddingMFRegressor() (first fit of the process)"
_NEW_PROCESS_COLD = "skmfnet EmbeddingMFRegressor(), first fit of a new process"
_NEW_PROCESS_WARM = "skmfnet EmbeddingMFRegressor(), first fit of a second new process"


def _u1():
    from sklearn.model_selection import PredefinedSplit

    from skmfnet.datasets import fetch_movielens

    data = fetch_movielens("100k")
    X, y = data.ratings[["user_id", "item_id"]], data.ratings["rating"]
    train, test = next(PredefinedSplit(data.test_fold).split())
    return X.iloc[train], y.iloc[train], X.iloc[test], y.iloc[test]


def _timed_fit(model, X, y, X_test, y_test):
    start = time.perf_counter()
    model.fit(X, y)
    fit_s = time.perf_counter() - start
    return {"fit_s": fit_s, "rmse": _rmse(model.predict(X_test), y_test)}


def _in_new_process(task, seed):
    """Run ``--ml100k-worker task`` in a new process; its JSON row."""
    out = subprocess.run([sys.executable, __file__, "--ml100k-worker", task, "--seed", str(seed)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ml100k_worker(args):
    """Run in a child process: the defaults' first u1 fit, or their first search; print JSON."""
    from skmfnet import EmbeddingMFRegressor

    if args.ml100k_worker == "fit":
        row = _timed_fit(EmbeddingMFRegressor(random_state=args.seed), *_u1())
    elif args.ml100k_worker == "search":
        row = _skmfnet_search(args.seed, {}, *_search_data())
    elif args.ml100k_worker == "readme2threads":  # n_jobs=2 on joblib's threading backend
        import joblib

        with joblib.parallel_config(backend="threading"):
            row = _skmfnet_search(args.seed, {}, *_readme_search_data(), grid=README_GRID, n_jobs=2)
    else:  # readme1, readme2: the README's search with n_jobs=1 or 2 (joblib's default backend, processes)
        row = _skmfnet_search(args.seed, {}, *_readme_search_data(), grid=README_GRID,
                              n_jobs=int(args.ml100k_worker[-1]))
    print(json.dumps(row))
    return 0


def run_ml100k(seed):
    from skmfnet import EmbeddingMFRegressor

    X, y, X_test, y_test = _u1()
    # a process's first fit pays TensorFlow's one-time costs (its first Keras
    # network); then the same fit again, which is what every later fit costs
    models = {
        _FIRST_FIT: EmbeddingMFRegressor(random_state=seed),
        "skmfnet EmbeddingMFRegressor(), again in the same process": EmbeddingMFRegressor(random_state=seed),
        f"skmfnet {_FORMER_LABEL}": EmbeddingMFRegressor(random_state=seed, **FORMER_DEFAULTS),
        "Surprise SVD()": SurpriseRegressor("SVD", random_state=seed),
        "Cornac MF (README config)": CornacRegressor("MF", params=CORNAC_README, seed=seed),
    }
    rows = {name: _timed_fit(model, X, y, X_test, y_test) for name, model in models.items()}
    # first fits of new processes: what a user's next script costs
    rows[_NEW_PROCESS_COLD] = _in_new_process("fit", seed)
    rows[_NEW_PROCESS_WARM] = _in_new_process("fit", seed)
    reference = rows["Surprise SVD()"]["fit_s"]
    for row in rows.values():
        row["fit_time_vs_surprise"] = row["fit_s"] / reference
    return rows


# ------------------------------------------------------------------------ cli
def run_cli(seed):
    """The ``skmfnet`` command's seconds on a dot model's file (module docstring)."""
    from skmfnet import EmbeddingMFRegressor, save_estimator

    X, y, X_test, _ = _u1()
    script = Path(sys.executable).with_name("skmfnet")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "skmfnet.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        model, four, many = Path(tmp) / "model.skmf", Path(tmp) / "four.csv", Path(tmp) / "u1test.csv"
        save_estimator(EmbeddingMFRegressor(random_state=seed).fit(X, y), model)
        X_test.head(4).to_csv(four, index=False)
        X_test.to_csv(many, index=False)
        user, item = str(X_test.iloc[0, 0]), str(X_test.iloc[0, 1])
        load = ("import pandas as pd, sys; from skmfnet import load_estimator; "
                "print(load_estimator(sys.argv[1]).predict(pd.read_csv(sys.argv[2])))")
        runs = {
            "skmfnet predict (4 pairs)": command + ["predict", str(model), str(four)],
            f"skmfnet predict ({len(X_test):,} pairs of u1.test)": command + ["predict", str(model), str(many)],
            "skmfnet recommend (1 user, 10 items)": command + ["recommend", str(model), "--user", user],
            "skmfnet similar (1 item, 10 items)": command + ["similar", str(model), "--item", item],
            "load_estimator + predict (4 pairs), for reference": [sys.executable, "-c", load, str(model), str(four)],
        }
        rows = {}
        for name, argv in runs.items():
            seconds = []
            for _ in range(CLI_REPEATS):
                start = time.perf_counter()
                subprocess.run(argv, capture_output=True, check=True)
                seconds.append(time.perf_counter() - start)
            rows[name] = {"median_s": float(np.median(seconds)), "runs_s": seconds}
    return {"model": "EmbeddingMFRegressor() fitted on u1.base", "repeats": CLI_REPEATS, "commands": rows}


# ------------------------------------------------------------------ recommend
def run_recommend(seed, repeats=3):
    """Seconds of recommend for 1,000 users over 10,000 items (module docstring)."""
    from skmfnet import EmbeddingMFRegressor
    from skmfnet.datasets import make_ratings

    X, y = make_ratings(5000, 10_000, 500_000, rating_scale=(1, 5), return_X_y=True, random_state=seed)
    users = X["user_id"].drop_duplicates().head(1000).tolist()
    rows = {}
    for name, params in (("EmbeddingMFRegressor()", {}),
                         ("EmbeddingMFRegressor(item_item_alpha=300, item_item_weight=0.1)",
                          dict(item_item_alpha=300.0, item_item_weight=0.1))):
        start = time.perf_counter()
        est = EmbeddingMFRegressor(random_state=seed, **params).fit(X, y)
        fit_s = time.perf_counter() - start
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            est.recommend(users, n=10)
            seconds.append(time.perf_counter() - start)
        rows[name] = {"fit_s": fit_s, "recommend_s": min(seconds), "runs_s": seconds,
                      "items_covered": None if est.item_item_ is None else len(est.item_item_items_)}
    return {"n_users": 1000, "n_items": int(X["item_id"].nunique()), "n_ratings": len(y), "rows": rows}


# --------------------------------------------------------------------- search
class _SurpriseFolds:
    """Surprise's cross-validation iterator protocol (``split(data)``) over given index folds."""

    def __init__(self, folds):
        self.folds = folds

    def get_n_folds(self):
        return len(self.folds)

    def split(self, data):
        raw = data.raw_ratings
        for train, test in self.folds:
            yield (data.construct_trainset([raw[i] for i in train]),
                   data.construct_testset([raw[i] for i in test]))


def _search_data():
    from sklearn.model_selection import PredefinedSplit

    from skmfnet.datasets import fetch_movielens

    data = fetch_movielens("100k")
    frame = data.ratings[["user_id", "item_id", "rating"]]
    return frame, list(PredefinedSplit(data.test_fold).split())


def _readme_search_data():
    """u1.base and the 3 folds of the README's ``GridSearchCV(..., cv=3)`` on it (``KFold(3)``, unshuffled)."""
    from sklearn.model_selection import KFold

    X, y, _, _ = _u1()
    frame = X.assign(rating=y.to_numpy()).reset_index(drop=True)
    return frame, list(KFold(3).split(frame))


def _skmfnet_search(seed, params, frame, folds, grid=SEARCH_GRID, n_jobs=1):
    from sklearn.model_selection import GridSearchCV

    from skmfnet import EmbeddingMFRegressor

    X, y = frame[["user_id", "item_id"]], frame["rating"]
    search = GridSearchCV(EmbeddingMFRegressor(random_state=seed, **params), {"n_factors": grid},
                          cv=folds, scoring="neg_root_mean_squared_error", refit=True, n_jobs=n_jobs)
    start = time.perf_counter()
    search.fit(X, y)
    return {"wall_s": time.perf_counter() - start, "best_n_factors": search.best_params_["n_factors"],
            "best_cv_rmse": -float(search.best_score_)}


def run_search(seed):
    import surprise

    frame, folds = _search_data()
    rows = {}
    for name, params in (("skmfnet EmbeddingMFRegressor() (first search of the process)", {}),
                         ("skmfnet EmbeddingMFRegressor(), the same search again in the process", {}),
                         (f"skmfnet {_FORMER_LABEL} (keras.Model.fit)", FORMER_DEFAULTS)):
        rows[name] = _skmfnet_search(seed, params, frame, folds)
    # first searches of new processes
    rows["skmfnet EmbeddingMFRegressor(), first search of a new process"] = _in_new_process("search", seed)
    rows["skmfnet EmbeddingMFRegressor(), first search of a second new process"] = _in_new_process("search", seed)
    start = time.perf_counter()
    dataset = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(1, 5)))
    search = surprise.model_selection.GridSearchCV(
        surprise.SVD, {"n_factors": SEARCH_GRID, "random_state": [seed]}, measures=["rmse"],
        cv=_SurpriseFolds(folds), refit=True, n_jobs=1)
    search.fit(dataset)
    rows["Surprise GridSearchCV(SVD)"] = {"wall_s": time.perf_counter() - start,
                                          "best_n_factors": search.best_params["rmse"]["n_factors"],
                                          "best_cv_rmse": float(search.best_score["rmse"])}
    reference = rows["Surprise GridSearchCV(SVD)"]["wall_s"]
    for row in rows.values():
        row["wall_vs_surprise"] = row["wall_s"] / reference
    return {"grid": SEARCH_GRID, "folds": "u1..u5", "libraries": rows}


def _surprise_search(seed, frame, folds, grid):
    import surprise

    start = time.perf_counter()
    dataset = surprise.Dataset.load_from_df(frame[["user_id", "item_id", "rating"]],
                                            surprise.Reader(rating_scale=(1, 5)))
    search = surprise.model_selection.GridSearchCV(
        surprise.SVD, {"n_factors": grid, "random_state": [seed]}, measures=["rmse"],
        cv=_SurpriseFolds(folds), refit=True, n_jobs=1)
    search.fit(dataset)
    return {"wall_s": time.perf_counter() - start, "best_n_factors": search.best_params["rmse"]["n_factors"],
            "best_cv_rmse": float(search.best_score["rmse"])}


def run_readme_search(seed):
    """The README's example search: ``GridSearchCV`` over ``README_GRID`` with ``cv=3`` on u1.base.

    skmfnet's rows each run in a new process (imports excluded, nothing
    cached from an earlier fit): ``n_jobs=1``, then ``n_jobs=2`` (joblib's
    worker processes started, and TensorFlow imported in them, inside the
    timing), then ``n_jobs=2`` on joblib's threading backend (the kernel
    releases the GIL); Surprise's ``GridSearchCV(SVD)`` on the same folds
    and grid.
    """
    rows = {"skmfnet EmbeddingMFRegressor(), GridSearchCV(n_jobs=1), new process": _in_new_process("readme1", seed),
            "skmfnet EmbeddingMFRegressor(), GridSearchCV(n_jobs=2), new process": _in_new_process("readme2", seed),
            "skmfnet EmbeddingMFRegressor(), GridSearchCV(n_jobs=2) with joblib.parallel_config(backend='threading'), "
            "new process": _in_new_process("readme2threads", seed)}
    rows["Surprise GridSearchCV(SVD)"] = _surprise_search(seed, *_readme_search_data(), README_GRID)
    reference = rows["Surprise GridSearchCV(SVD)"]["wall_s"]
    for row in rows.values():
        row["wall_vs_surprise"] = row["wall_s"] / reference
    return {"grid": README_GRID, "folds": "KFold(3) of u1.base", "libraries": rows}


# ------------------------------------------------------------------ synthetic
def _full_epochs(library, epochs):
    """Epochs of the timed fit: the defaults' own for the three rows of the defaults, else ``--epochs``."""
    if library in ("skmfnet", "skmfnet-1thread", "skmfnet-blockperthread"):
        from skmfnet import EmbeddingMFRegressor

        return EmbeddingMFRegressor().epochs
    return epochs


def _make_estimator(library, n_factors, epochs, seed):
    if library == "skmfnet":
        from skmfnet import EmbeddingMFRegressor

        return EmbeddingMFRegressor(n_factors=n_factors, epochs=epochs, random_state=seed)
    if library == "skmfnet-1thread":
        from skmfnet import EmbeddingMFRegressor

        return EmbeddingMFRegressor(n_factors=n_factors, epochs=epochs, random_state=seed, n_jobs=1)
    if library == "skmfnet-blockperthread":
        import skmfnet._training._schedule
        from skmfnet import EmbeddingMFRegressor

        skmfnet._training._schedule.BLOCKS = 1  # (this library's own process)
        return EmbeddingMFRegressor(n_factors=n_factors, epochs=epochs, random_state=seed)
    if library == "skmfnet-lazy4096":
        from skmfnet import EmbeddingMFRegressor

        return EmbeddingMFRegressor(n_factors=n_factors, epochs=epochs, optimizer="lazy_adam", learning_rate=0.01,
                                    batch_size=4096, init_std=0.001, random_state=seed)
    if library == "skmfnet-sgd":
        from skmfnet import EmbeddingMFRegressor

        return EmbeddingMFRegressor(n_factors=n_factors, epochs=epochs, random_state=seed, **SKMFNET_SGD)
    if library == "skmfnet-adagrad":
        from skmfnet import EmbeddingMFRegressor

        return EmbeddingMFRegressor(n_factors=n_factors, epochs=epochs, random_state=seed, **SKMFNET_ADAGRAD)
    if library == "surprise":
        return SurpriseRegressor("SVD", params={"n_factors": n_factors, "n_epochs": epochs}, random_state=seed)
    return CornacRegressor("MF", params={**CORNAC_README, "k": n_factors, "max_iter": epochs}, seed=seed)


def _epochs_trained(model, epochs):
    """Epochs the fit of ``model`` (for ``epochs``) trained: with "auto" comparing pairs, every pair's.

    (A one-epoch fit then trains each pair for one epoch, so the difference
    of the two fits' times still counts whole epochs.)
    """
    results = getattr(model, "auto_results_", None)
    return epochs if results is None else sum(r["epochs"] for r in results)


def _per_epoch(fit_s, one_epoch_fit_s, epochs_trained, one_epoch_trained):
    """Seconds per epoch: the difference of the two fits' times over that of their epochs trained."""
    return (fit_s - one_epoch_fit_s) / max(epochs_trained - one_epoch_trained, 1)


def _ratings_per_epoch(model, n_ratings):
    """Ratings an epoch trains on: all, or those not held out when "auto" compared pairs."""
    if getattr(model, "auto_results_", None) is None:
        return n_ratings
    return n_ratings - math.ceil(model.validation_fraction * n_ratings)  # train_test_split's test size


def _worker(args):
    """Run in a child process: fit one library on the saved data, print JSON."""
    arrays = np.load(args.data)
    X = pd.DataFrame({"user_id": arrays["users"], "item_id": arrays["items"]})
    y = pd.Series(arrays["ratings"])
    X, X_test, y, y_test = X.iloc[: args.n_ratings], X.iloc[args.n_ratings :], y.iloc[: args.n_ratings], y.iloc[args.n_ratings :]
    # untimed warm-up on a slice: the process's one-time costs (library imports,
    # TensorFlow's initialisation) are not part of any timed fit
    _make_estimator(args.library, args.n_factors, 1, args.seed).fit(X.iloc[:2000], y.iloc[:2000])
    times = {}
    full = _full_epochs(args.library, args.epochs)
    trained = {}
    for epochs in (full, 1):
        start = time.perf_counter()
        fitted = _make_estimator(args.library, args.n_factors, epochs, args.seed).fit(X, y)
        times[epochs] = time.perf_counter() - start
        trained[epochs] = _epochs_trained(fitted, epochs)
        if epochs == full:
            model = fitted
        del fitted
    start = time.perf_counter()
    predictions = model.predict(X_test)
    predict_s = time.perf_counter() - start
    per_epoch = _per_epoch(times[full], times[1], trained[full], trained[1])
    n_train = _ratings_per_epoch(model, len(y))
    print(json.dumps({
        "epochs": full,
        "epochs_trained": trained[full],
        "one_epoch_fit_epochs_trained": trained[1],
        "ratings_per_epoch": n_train,
        "auto_results": getattr(model, "auto_results_", None),
        "fit_s": times[full],
        "one_epoch_fit_s": times[1],
        "epoch_s": per_epoch,
        "ratings_per_s": n_train / per_epoch if per_epoch > 0 else None,
        "predict_pairs_per_s": len(X_test) / predict_s,
        "test_rmse": _rmse(predictions, y_test),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }))


def _memory_bandwidth(gib=0.5, repeats=5):
    """Bytes per second that numpy copies move (read + write) on every usable core at once."""
    from concurrent.futures import ThreadPoolExecutor

    cores = len(os.sched_getaffinity(0))
    n = int(gib * 2**30) // 8
    pairs = [(np.ones(n), np.empty(n)) for _ in range(cores)]
    best = 0.0
    with ThreadPoolExecutor(cores) as pool:  # numpy releases the GIL while it copies
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(lambda pair: np.copyto(pair[1], pair[0]), pairs))
            best = max(best, 2 * 8 * n * cores / (time.perf_counter() - start))
    return best


def _bytes_per_rating(n_factors):
    """Bytes the compiled path moves per rating: both rows with their state, read and written."""
    row = 2 * 2 * (n_factors + 1) * 4  # the user's and the item's, read and written, without state
    return {"adam": 3 * row, "adagrad": 2 * row, "sgd": row}


def run_synthetic(args):
    from skmfnet.datasets import make_ratings

    # the ratings after the first n_ratings are the test set: pairs are drawn
    # independently, so they are a random sample of the same model's ratings
    X, y = make_ratings(
        162_000, 59_000, args.n_ratings + args.test_ratings, n_factors=8, noise=0.8, rating_scale=(1, 5),
        return_X_y=True, random_state=args.seed,
    )
    # copies far larger than the caches (smaller for the test suite's tiny runs)
    bandwidth = _memory_bandwidth(gib=0.5 if args.n_ratings >= 1_000_000 else 0.0625)
    results = {"n_ratings": args.n_ratings, "n_users": 162_000, "n_items": 59_000,
               "n_factors": args.n_factors, "epochs": args.epochs, "test_ratings": args.test_ratings,
               "memory_bandwidth_bytes_per_s": bandwidth,
               "bytes_per_rating": _bytes_per_rating(args.n_factors),
               "bound_ratings_per_s": {rule: bandwidth / b for rule, b in _bytes_per_rating(args.n_factors).items()},
               "libraries": {}}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ratings.npz")
        np.savez(path, users=X["user_id"].to_numpy(), items=X["item_id"].to_numpy(), ratings=y.to_numpy())
        del X, y
        for library in args.libraries:
            print(f"synthetic: {library} ...", file=sys.stderr, flush=True)
            out = subprocess.run(
                [sys.executable, __file__, "--worker", "--library", library, "--data", path,
                 "--n-factors", str(args.n_factors), "--epochs", str(args.epochs),
                 "--seed", str(args.seed), "--n-ratings", str(args.n_ratings)],
                capture_output=True, text=True, check=True,
            )
            results["libraries"][library] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


# -------------------------------------------------------------------- scaling
def _scaling_worker(args):
    """Run in a child process (one of the pair, or alone): fit, time, score; print JSON."""
    from skmfnet import EmbeddingMFRegressor
    from skmfnet._training._cluster import RowExchange

    arrays = np.load(args.data)
    X = pd.DataFrame({"user_id": arrays["users"], "item_id": arrays["items"]})
    y = pd.Series(arrays["ratings"])
    n = args.n_ratings
    X, X_test, y, y_test = X.iloc[:n], X.iloc[n:], y.iloc[:n], y.iloc[n:]
    alone = "TF_CONFIG" not in os.environ
    # the same objective in both setups: the "auto" choice of (alpha,
    # learning_rate) on held-out ratings is the single process's only, so
    # the pair that "auto" keeps at this density is fixed, on every rating
    params = dict(n_factors=SCALING_FACTORS, random_state=args.seed, **SCALING_PARAMS,
                  **({"n_jobs": 1} if alone else {"distribution": "multi_worker"}))
    # untimed: one epoch on the same data first, so that neither timed fit
    # includes the process's one-time costs (TensorFlow's, the strategy's start)
    EmbeddingMFRegressor(epochs=1, **params).fit(X, y)
    times, sent = {}, {}
    for epochs in (SCALING_EPOCHS, 1):
        before = RowExchange.sent_bytes
        start = time.perf_counter()
        fitted = EmbeddingMFRegressor(epochs=epochs, **params).fit(X, y)
        times[epochs] = time.perf_counter() - start
        sent[epochs] = RowExchange.sent_bytes - before
        if epochs == SCALING_EPOCHS:
            rmse = _rmse(fitted.predict(X_test), y_test)
            steps = int(fitted.model_.optimizer.iterations) // epochs
    epoch_s = (times[SCALING_EPOCHS] - times[1]) / (SCALING_EPOCHS - 1)
    print(json.dumps({"fit_s": times[SCALING_EPOCHS], "one_epoch_fit_s": times[1], "epoch_s": epoch_s,
                      "ratings_per_s": n / epoch_s, "test_rmse": rmse, "steps_per_epoch": steps,
                      "sent_bytes_per_epoch": (sent[SCALING_EPOCHS] - sent[1]) / (SCALING_EPOCHS - 1)}))


def free_ports(n):
    """``n`` TCP ports of 127.0.0.1 free a moment ago (for loopback workers)."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


def run_scaling(args):
    from skmfnet.datasets import make_ratings

    results = {"n_factors": SCALING_FACTORS, "epochs": SCALING_EPOCHS, "test_ratings": 100_000, "sizes": {},
               "cores": sorted(os.sched_getaffinity(0))}
    one_thread = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.scaling_sizes:
            X, y = make_ratings(162_000, 59_000, n + 100_000, n_factors=8, noise=0.8, rating_scale=(1, 5),
                                return_X_y=True, random_state=args.seed)
            path = os.path.join(tmp, f"ratings{n}.npz")
            np.savez(path, users=X["user_id"].to_numpy(), items=X["item_id"].to_numpy(), ratings=y.to_numpy())
            del X, y
            command = [sys.executable, __file__, "--scaling-worker", "--data", path, "--seed", str(args.seed),
                       "--n-ratings", str(n)]
            print(f"scaling: {n:,} ratings, one process ...", file=sys.stderr, flush=True)
            alone = subprocess.run(["taskset", "-c", "0"] + command, capture_output=True, text=True, check=True,
                                   env=dict(os.environ, **one_thread))
            workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
            print(f"scaling: {n:,} ratings, two workers ...", file=sys.stderr, flush=True)
            procs = [
                subprocess.Popen(
                    ["taskset", "-c", str(index)] + command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    env=dict(os.environ, **one_thread, TF_CONFIG=json.dumps(
                        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})),
                )
                for index in range(2)
            ]
            outputs = [proc.communicate(timeout=3600) for proc in procs]
            for proc, (out, err) in zip(procs, outputs):
                if proc.returncode:
                    raise RuntimeError(f"scaling worker failed: {err[-3000:]}")
            pair = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
            single = json.loads(alone.stdout.strip().splitlines()[-1])
            results["sizes"][str(n)] = {
                "one_process_one_core": single, "two_workers_one_core_each": pair,
                "speedup": single["epoch_s"] / pair[0]["epoch_s"],
                "rmse_difference": pair[0]["test_rmse"] - single["test_rmse"],
            }
    return results


# ------------------------------------------------------------------- tutorial
def _matmul_flops_per_s(batch):
    import tensorflow as tf

    shapes = [(402, 2048), (2048, 256)]
    a = [tf.random.normal((batch, k)) for k, _ in shapes]
    w = [tf.random.normal(s) for s in shapes]
    run = tf.function(lambda: [tf.matmul(x, m) for x, m in zip(a, w)])
    run()
    n = 50
    start = time.perf_counter()
    for _ in range(n):
        [r.numpy() for r in run()]
    seconds = (time.perf_counter() - start) / n
    return sum(2 * batch * k * m for k, m in shapes) / seconds


def run_tutorial(seed, epochs=2, repeats=3):
    """Seconds per epoch against the bound, each measured ``repeats`` times, interleaved.

    Single measurements vary on this shared machine; the medians are
    reported, with every repetition in the JSON.
    """
    from skmfnet import TUTORIAL_PARAMS, EmbeddingMFRegressor
    from skmfnet.datasets import fetch_movielens
    from sklearn.model_selection import train_test_split

    data = fetch_movielens("100k")
    X, y = data.ratings[["user_id", "item_id"]], data.ratings["rating"]
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.25, random_state=seed)
    weights = 402 * 2048 + 2048 * 256 + 256
    flops_per_rating = 3 * 2 * weights  # forward 2 per weight, backward twice that
    rates, epoch_times = [], []
    for _ in range(repeats):
        rates.append(_matmul_flops_per_s(TUTORIAL_PARAMS["batch_size"]))
        times = {}
        for n in (1, 1 + epochs):
            start = time.perf_counter()
            EmbeddingMFRegressor(**{**TUTORIAL_PARAMS, "epochs": n}, random_state=seed).fit(X_train, y_train)
            times[n] = time.perf_counter() - start
        epoch_times.append((times[1 + epochs] - times[1]) / epochs)
    rate, epoch_s = float(np.median(rates)), float(np.median(epoch_times))
    bound = flops_per_rating * len(y_train) / rate
    return {"ratings": len(y_train), "flops_per_rating": flops_per_rating,
            "matmul_flops_per_s": rate, "bound_epoch_s": bound, "epoch_s": epoch_s,
            "epoch_s_over_bound": epoch_s / bound, "repeats": {"matmul_flops_per_s": rates, "epoch_s": epoch_times}}


# ---------------------------------------------------------------------- report
def markdown(results):
    lines = ["# skmfnet speed benchmark", "", f"Command: `{results['command']}`  ",
             "Machine: {cpu_model}, {cpus_usable} usable cores, {ram_gib} GiB RAM, {os}, Python {python}  ".format(**results["machine"]),
             "Versions: " + ", ".join(f"{k} {v}" for k, v in results["machine"]["versions"].items() if v), ""]
    if "ml100k" in results:
        lines += ["## MovieLens 100K, u1 (fit on u1.base, RMSE on u1.test)", "",
                  "| Model | Fit s | RMSE | Fit time / Surprise SVD's |", "|---|---|---|---|"]
        for name, r in results["ml100k"].items():
            lines.append(f"| {name} | {r['fit_s']:.2f} | {r['rmse']:.4f} | {r['fit_time_vs_surprise']:.2f} |")
        lines.append("")
    if "search" in results:
        r = results["search"]
        lines += [f"## Model selection: GridSearchCV over n_factors {r['grid']} on {r['folds']} "
                  "(MovieLens 100K), refit included, one job", "",
                  "| Search | Wall s | Wall / Surprise's | Chosen K | Its mean CV RMSE |", "|---|---|---|---|---|"]
        for name, row in r["libraries"].items():
            lines.append(f"| {name} | {row['wall_s']:.1f} | {row['wall_vs_surprise']:.2f} | "
                         f"{row['best_n_factors']} | {row['best_cv_rmse']:.4f} |")
        lines.append("")
    if "readme_search" in results:
        r = results["readme_search"]
        lines += [f"## The README's search: GridSearchCV over n_factors {r['grid']}, {r['folds']}, refit included", "",
                  "| Search | Wall s | Wall / Surprise's | Chosen K | Its mean CV RMSE |", "|---|---|---|---|---|"]
        for name, row in r["libraries"].items():
            lines.append(f"| {name} | {row['wall_s']:.1f} | {row['wall_vs_surprise']:.2f} | "
                         f"{row['best_n_factors']} | {row['best_cv_rmse']:.4f} |")
        lines.append("")
    if "synthetic" in results:
        s = results["synthetic"]
        lines += [f"## Synthetic ratings: {s['n_ratings']:,} ratings, {s['n_users']:,} users, "
                  f"{s['n_items']:,} items, K={s['n_factors']}, {s['epochs']} epochs "
                  "(skmfnet: the defaults' own)", "",
                  f"Test RMSE on {s['test_ratings']:,} further ratings of the same model. Ratios: "
                  "throughput per epoch and predictions per second over Surprise's, "
                  "end-to-end fit time over Cornac's.", "",
                  "| Library | Epochs | End-to-end fit s | s / epoch | M ratings / s / epoch | Peak RSS GiB "
                  "| M predictions / s | Test RMSE | Epoch throughput / Surprise | Fit time / Cornac "
                  "| Predictions / Surprise |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        libs = s["libraries"]

        def ratio(lib, key, ref):
            if ref not in libs or not libs[lib].get(key) or not libs[ref].get(key):
                return "n/a"
            return f"{libs[lib][key] / libs[ref][key]:.2f}"

        for lib, r in libs.items():
            rps = r["ratings_per_s"] / 1e6 if r["ratings_per_s"] else float("nan")
            rmse = f"{r['test_rmse']:.4f}" if "test_rmse" in r else "n/a"
            epochs = r.get("epochs", s["epochs"])
            if r.get("epochs_trained", epochs) != epochs:  # "auto" compared pairs: every pair's epochs
                epochs = f"{epochs} ({' + '.join(str(a['epochs']) for a in r['auto_results'])} trained)"
            lines.append(f"| {lib} | {epochs} | {r['fit_s']:.1f} | {r['epoch_s']:.2f} | {rps:.2f} | "
                         f"{r['peak_rss_gib']:.2f} | {r['predict_pairs_per_s'] / 1e6:.3f} | {rmse} | "
                         f"{ratio(lib, 'ratings_per_s', 'surprise')} | {ratio(lib, 'fit_s', 'cornac')} | "
                         f"{ratio(lib, 'predict_pairs_per_s', 'surprise')} |")
        lines.append("")
        if "bound_ratings_per_s" in s:
            b, bound = s["bytes_per_rating"], s["bound_ratings_per_s"]
            rules = [r for r in ("adam", "adagrad", "sgd") if r in b]  # (results of earlier runs: no adagrad)
            what = {"adam": "with Adam's moments (skmfnet, skmfnet-1thread, skmfnet-blockperthread)",
                    "adagrad": "with Adagrad's accumulator", "sgd": "with SGD (the user and item rows, read and written)"}
            lines += ["Memory-traffic bound of the compiled path: "
                      + ", ".join(f"{b[r]:,} bytes per rating {what[r]}" for r in rules)
                      + f" at {s['memory_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s (numpy copies on every usable core, "
                      f"measured in this run): at most "
                      + ", ".join(f"{bound[r] / 1e6:.1f}" for r in rules) + " M ratings / s per epoch.", ""]
    if "scaling" in results:
        r = results["scaling"]
        lines += [f"## Scaling out: 1 process on 1 core vs 2 workers on 1 core each (loopback), "
                  f"K={r['n_factors']}, {r['epochs']} epochs", "",
                  "Ratings of the 25M id shape (162,000 users, 59,000 items); test RMSE on "
                  f"{r['test_ratings']:,} further ratings. Sent: bytes each worker sent through the exchange "
                  "per epoch (row blocks and loss sums), and per training step.", "",
                  "| Ratings | Setup | s / epoch | M ratings / s / epoch | Speedup | Test RMSE | Sent MB / epoch "
                  "| Sent KB / step |", "|---|---|---|---|---|---|---|---|"]
        for n, row in r["sizes"].items():
            single, pair = row["one_process_one_core"], row["two_workers_one_core_each"][0]
            lines.append(f"| {int(n):,} | 1 process x 1 core | {single['epoch_s']:.2f} | "
                         f"{single['ratings_per_s'] / 1e6:.2f} | 1.00 | {single['test_rmse']:.4f} | 0 | 0 |")
            lines.append(f"| {int(n):,} | 2 workers x 1 core | {pair['epoch_s']:.2f} | "
                         f"{pair['ratings_per_s'] / 1e6:.2f} | {row['speedup']:.2f} | {pair['test_rmse']:.4f} | "
                         f"{pair['sent_bytes_per_epoch'] / 1e6:.1f} | "
                         f"{pair['sent_bytes_per_epoch'] / pair['steps_per_epoch'] / 1e3:.1f} |")
        lines.append("")
    if "cli" in results:
        c = results["cli"]
        lines += [f"## The command line on a dot model ({c['model']}): seconds, new process each, "
                  f"median of {c['repeats']}", "", "| Command | Median s | Runs s |", "|---|---|---|"]
        for name, row in c["commands"].items():
            lines.append(f"| {name} | {row['median_s']:.2f} | {', '.join(f'{v:.2f}' for v in row['runs_s'])} |")
        lines.append("")
    if "recommend" in results:
        r = results["recommend"]
        lines += [f"## recommend: {r['n_users']:,} users, 10 items each, over {r['n_items']:,} items "
                  f"({r['n_ratings']:,} training ratings), best of {len(next(iter(r['rows'].values()))['runs_s'])}",
                  "", "| Model | recommend s | Fit s |", "|---|---|---|"]
        for name, row in r["rows"].items():
            lines.append(f"| {name} | {row['recommend_s']:.3f} | {row['fit_s']:.1f} |")
        lines.append("")
    if "tutorial" in results:
        t = results["tutorial"]
        lines += ["## Tutorial network vs its arithmetic bound", "",
                  f"{t['ratings']:,} ratings x {t['flops_per_rating'] / 1e6:.2f} MFLOP (Dense layers, "
                  f"forward + backward) / {t['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s measured = "
                  f"**{t['bound_epoch_s']:.2f} s** per epoch at best; measured **{t['epoch_s']:.2f} s** "
                  f"per epoch ({t['epoch_s_over_bound']:.2f}x the bound). Medians of "
                  f"{len(t['repeats']['epoch_s'])} interleaved repetitions; per epoch: "
                  + ", ".join(f"{v:.2f} s" for v in t["repeats"]["epoch_s"]) + ".", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocols", default=",".join(PROTOCOLS), help=f"comma-separated among {PROTOCOLS}")
    parser.add_argument("--libraries", default=",".join(LIBRARIES), help=f"synthetic: among {LIBRARIES}")
    parser.add_argument("--n-ratings", type=int, default=25_000_000)
    parser.add_argument("--n-factors", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--test-ratings", type=int, default=1_000_000,
                        help="synthetic: held-out ratings for RMSE and prediction throughput")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scaling-sizes", default=",".join(map(str, SCALING_SIZES)),
                        help="scaling: comma-separated training ratings of each run")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "speed"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scaling-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ml100k-worker", choices=("fit", "search", "readme1", "readme2", "readme2threads"), help=argparse.SUPPRESS)
    parser.add_argument("--library", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import importlib

    from skmfnet._quiet import tensorflow_start_up_hidden

    with tensorflow_start_up_hidden():  # TensorFlow's start-up lines hidden, as the package's own imports do
        importlib.import_module("tensorflow")
    if args.ml100k_worker:
        return _ml100k_worker(args)
    if args.worker:
        return _worker(args)
    if args.scaling_worker:
        return _scaling_worker(args)
    args.protocols = [p for p in args.protocols.split(",") if p]
    args.scaling_sizes = [int(n) for n in args.scaling_sizes.split(",") if n]
    args.libraries = [lib for lib in args.libraries.split(",") if lib]
    for value, allowed, name in ((args.protocols, PROTOCOLS, "--protocols"), (args.libraries, LIBRARIES, "--libraries")):
        bad = sorted(set(value) - set(allowed))
        if bad:
            parser.error(f"{name}: unknown {bad}; choose among {list(allowed)}")

    results = {"command": "python benchmarks/speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "machine": machine_info()}
    if "ml100k" in args.protocols:
        results["ml100k"] = run_ml100k(args.seed)
    if "search" in args.protocols:
        results["search"] = run_search(args.seed)
    if "readme_search" in args.protocols:
        results["readme_search"] = run_readme_search(args.seed)
    if "synthetic" in args.protocols:
        results["synthetic"] = run_synthetic(args)
    if "tutorial" in args.protocols:
        results["tutorial"] = run_tutorial(args.seed)
    if "scaling" in args.protocols:
        results["scaling"] = run_scaling(args)
    if "cli" in args.protocols:
        results["cli"] = run_cli(args.seed)
    if "recommend" in args.protocols:
        results["recommend"] = run_recommend(args.seed)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(results, indent=2, default=float))
    (out / "speed.md").write_text(markdown(results) + "\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
