"""Exploration for #13 item 3: a per-rating penalty that weakens as a row's ratings grow.

Not a benchmark row, and not a feature of the package: the question is
whether "regularization that scales with the data" in the form
``alpha * (100 / n_row) ** gamma`` per rating (``n_row``: the training
ratings of that user or item; ``gamma=0`` is the package's penalty) would
let one set of defaults serve both MovieLens 100K and the 25M shape's
density, where the best constant ``alpha`` differs
(``explore_scale.py --part density`` and ``--part ml100k``).

The package has no such option, so this script builds one for the run: it
copies :mod:`skmfnet._rowfit`'s source with three lines changed (each
rating's penalty terms multiplied by its user's and its item's scale) and
makes the estimator train with that copy.  The replacements are checked,
so the script stops with an error once ``_rowfit`` no longer has those
lines.  One thread (``n_jobs=1``): the scales are indexed by the network's
rows, which are the compiled path's rows with one block only.

Both parts score held-out *training* ratings after every epoch:

* ``--part ml100k``: u1.base .. u5.base, a random 10% of each held out
  (``train_test_split``, ``random_state=0``, as ``explore_scale.py --part
  ml100k``); the test folds are not read.  Default n_factors.
* ``--part synthetic``: ``make_ratings(16_200, 5_900, 2_750_000,
  n_factors=8, noise=0.8, rating_scale=(1, 5), random_state=1)``, first
  2.5M fit, last 250K scored (as ``explore_scale.py``), K=64.

Usage: ``python benchmarks/explore_frequency.py --part ml100k`` (about 2
minutes) and ``--part synthetic`` (about 10 minutes); each writes
``benchmarks/results/explore_frequency_<part>.json``.
"""

import json
import sys
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import skmfnet._rowfit  # noqa: E402
import skmfnet._training  # noqa: E402
from skmfnet import EmbeddingMFRegressor  # noqa: E402

EPOCHS = 20
CONFIGS = [
    {"gamma": 0.0},
    {"gamma": 0.5},
    {"gamma": 0.5, "learning_rate": 0.002},
    {"gamma": 0.5, "alpha": 0.2, "learning_rate": 0.002},
    {"gamma": 0.75},
    {"gamma": 0.75, "alpha": 0.2},
    {"gamma": 0.75, "learning_rate": 0.002},
    {"gamma": 1.0, "alpha": 0.3},
]

# (line of skmfnet/_rowfit.py, its replacement)
PATCHES = [
    ("            state_u, state_i = tf.gather(table_u, users), tf.gather(table_i, items)\n",
     "            state_u, state_i = tf.gather(table_u, users), tf.gather(table_i, items)\n"
     "            su_r, si_r = tf.gather(SCALE[0], users)[:, None], tf.gather(SCALE[1], items)[:, None]\n"),
    ("                + tf.reduce_sum(tf.reduce_mean(w_r * U_r * U_r, axis=0) * penalty)\n"
     "                + tf.reduce_sum(tf.reduce_mean(w_r * V_r * V_r, axis=0) * penalty)\n",
     "                + tf.reduce_sum(tf.reduce_mean(su_r * w_r * U_r * U_r, axis=0) * penalty)\n"
     "                + tf.reduce_sum(tf.reduce_mean(si_r * w_r * V_r * V_r, axis=0) * penalty)\n"),
    ("                weighted, shrink_U, shrink_V = w * error_r, w_r * penalty * U_r, w_r * penalty * V_r\n",
     "                weighted, shrink_U, shrink_V = (w * error_r, su_r * w_r * penalty * U_r,\n"
     "                                                si_r * w_r * penalty * V_r)\n"),
    # a trace of its own (the scales are read when tracing), the scales from this fit's ratings
    ("    configuration = (rule, batch, int(n_negatives), selection is not None)\n",
     "    global SCALE\n"
     "    configuration = (rule, batch, int(n_negatives), selection is not None)\n"
     "    own_epoch = _compile_epoch(*configuration)\n"
     "\n"
     "    def _epoch_function(*_, fresh=False):\n"
     "        return own_epoch\n"
     "\n"
     "    SCALE = [_row_scale(np.asarray(X)[:, side], int(table.shape[0]))\n"
     "             for side, table in enumerate((model.get_layer(USER_FACTORS).embeddings,\n"
     "                                           model.get_layer(ITEM_FACTORS).embeddings))]\n"),
]
HELPERS = '''
GAMMA = 0.0
SCALE = None


def _row_scale(rows, n_rows):
    counts = np.bincount(rows, minlength=_bucket(n_rows)).astype(np.float64)
    return tf.constant(np.where(counts > 0, (100.0 / np.maximum(counts, 1)) ** GAMMA, 1.0).astype(np.float32))
'''


def patched_rowfit():
    """A copy of :mod:`skmfnet._rowfit` with the per-row penalty scale (module docstring)."""
    source = Path(skmfnet._rowfit.__file__).read_text()
    for old, new in PATCHES:
        if source.count(old) != 1:
            raise RuntimeError(f"skmfnet/_rowfit.py changed: this exploration cannot patch {old.strip()!r}")
        source = source.replace(old, new)
    module = types.ModuleType("rowfit_frequency")
    module.__dict__["__package__"] = "skmfnet"
    exec(compile(source + HELPERS, "rowfit_frequency", "exec"), module.__dict__)
    return module


def _curves(params, datasets, fixed):
    curves = []
    for X_fit, y_fit, X_val, y_val in datasets:
        est = EmbeddingMFRegressor(epochs=EPOCHS, random_state=0, n_jobs=1, **fixed, **params)
        est.fit(X_fit, y_fit, validation_data=(X_val, y_val))
        curves.append(est.history_["val_rmse"])
    return np.mean(curves, axis=0)


def main(part):
    rowfit = patched_rowfit()
    skmfnet._training.fit_rows = rowfit.fit_rows
    if part == "ml100k":
        from sklearn.model_selection import PredefinedSplit, train_test_split

        from skmfnet.datasets import fetch_movielens

        data = fetch_movielens("100k")
        X, y = data.ratings[["user_id", "item_id"]], data.ratings["rating"]
        datasets = []
        for base, _ in PredefinedSplit(data.test_fold).split():  # the test part unread
            fit, val = train_test_split(base, test_size=0.1, random_state=0)
            datasets.append((X.iloc[fit], y.iloc[fit], X.iloc[val], y.iloc[val]))
        fixed, description = {}, ("MovieLens 100K u1.base .. u5.base, each split 90/10 (train_test_split, "
                                       "random_state=0); the test folds are not read; curves averaged over the five")
    elif part == "synthetic":
        from skmfnet.datasets import make_ratings

        X, y = make_ratings(16_200, 5_900, 2_750_000, n_factors=8, noise=0.8, rating_scale=(1, 5),
                            return_X_y=True, random_state=1)
        n = 2_500_000
        datasets = [(X.iloc[:n], y.iloc[:n], X.iloc[n:], y.iloc[n:])]
        fixed, description = {"n_factors": 64}, ("make_ratings(16_200, 5_900, 2_750_000, n_factors=8, "
                                                 "noise=0.8, rating_scale=(1, 5), random_state=1); first "
                                                 "2,500,000 fit, the rest validation; K=64")
    else:
        raise SystemExit(f"--part must be ml100k or synthetic, got {part!r}")
    rows = []
    for config in CONFIGS:
        params = dict(config)
        rowfit.GAMMA = params.pop("gamma")
        start = time.perf_counter()
        curve = _curves(params, datasets, fixed)
        rows.append({"gamma": rowfit.GAMMA, "params": params, "val_rmse_by_epoch": curve.tolist(),
                     "at_10_epochs": float(curve[9]), "best_epoch": int(np.argmin(curve)) + 1,
                     "best_val_rmse": float(curve.min()), "seconds": time.perf_counter() - start})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "val_rmse_by_epoch"}), flush=True)
    out = {"command": f"python benchmarks/explore_frequency.py --part {part}", "epochs": EPOCHS,
           "penalty": "alpha * (100 / n_row) ** gamma per rating, for the user's and the item's rows "
                      "(gamma=0: the package's); every other parameter at its default",
           "data": description, "results": rows}
    (ROOT / "benchmarks" / "results" / f"explore_frequency_{part}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--part":
        raise SystemExit("usage: python benchmarks/explore_frequency.py --part {ml100k,synthetic}")
    main(sys.argv[2])
