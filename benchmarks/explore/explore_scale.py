"""Exploration for #13 item 3: which settings would make the defaults accurate at the 25M shape.

Not a benchmark row: data of the 25M shape's *density* (ratings per user and
per item) at a tenth of its users and items, drawn with another seed than
``benchmarks/speed.py``'s (``make_ratings(16_200, 5_900, 2_750_000,
n_factors=8, noise=0.8, random_state=1)``); the first 2.5M ratings train,
the last 250K are scored after every epoch (``validation_data``), so each
configuration gives its whole validation curve.  K=64, every other
parameter at its default.

Usage: ``python benchmarks/explore/explore_scale.py`` (about 7 minutes on 2
cores); writes ``benchmarks/results/explore/explore_scale.json``.

``python benchmarks/explore/explore_scale.py --part small`` asks whether it is the
scale or the data: the same generator at MovieLens 100K's shape (943 users,
1,682 items, 100,000 ratings; ``random_state=1``, first 90,000 fit, last
10,000 scored), the same configurations; writes
``benchmarks/results/explore/explore_scale_small.json`` (about a minute).

``python benchmarks/explore/explore_scale.py --part density`` asks how the best
``alpha`` moves with the ratings per row: the 25M shape's tenth (16,200
users, 5,900 items) at four numbers of ratings, 350,000 to 2,750,000
(about 20 to 155 per user, 55 to 425 per item; ``random_state=1``, the
last tenth scored), ``alpha`` in 0.1, 0.05, 0.03, 0.02 at
``learning_rate=0.002``, 20 epochs, the best epoch's validation RMSE;
writes ``benchmarks/results/explore/explore_scale_density.json`` (about 10 minutes).

``python benchmarks/explore/explore_scale.py --part ml100k`` checks the candidate
that the synthetic parts favour (``alpha=0.05, learning_rate=0.002``)
against the defaults on real MovieLens 100K *training* ratings only: on
each of u1.base .. u5.base, a random 10% (``random_state=0``) is held out
and scored after every epoch; the test folds are not read.  Writes
``benchmarks/results/explore/explore_scale_ml100k.json`` (about a minute).
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))

from skmfnet import EmbeddingMFRegressor  # noqa: E402
from skmfnet.datasets import make_ratings  # noqa: E402

CONFIGS = [
    {},
    {"learning_rate": 0.002},
    {"learning_rate": 0.001},
    {"alpha": 0.03},
    {"alpha": 0.03, "learning_rate": 0.002},
    {"alpha": 0.05, "learning_rate": 0.002},
    {"alpha": 0.05, "learning_rate": 0.001},
    {"alpha": 0.03, "learning_rate": 0.001},
]
EPOCHS = 20


def main(small=False):
    shape = (943, 1_682, 100_000) if small else (16_200, 5_900, 2_750_000)
    X, y = make_ratings(*shape, n_factors=8, noise=0.8, rating_scale=(1, 5), return_X_y=True, random_state=1)
    n = 90_000 if small else 2_500_000
    X_fit, y_fit, X_val, y_val = X.iloc[:n], y.iloc[:n], X.iloc[n:], y.iloc[n:]
    rows = []
    for params in CONFIGS:
        start = time.perf_counter()
        est = EmbeddingMFRegressor(n_factors=64, epochs=EPOCHS, random_state=0, **params)
        est.fit(X_fit, y_fit, validation_data=(X_val, y_val))
        curve = est.history_["val_rmse"]
        rows.append({"params": params, "val_rmse_by_epoch": curve, "at_10_epochs": curve[9],
                     "best_epoch": int(min(range(len(curve)), key=curve.__getitem__)) + 1,
                     "best_val_rmse": min(curve), "seconds": time.perf_counter() - start})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "val_rmse_by_epoch"}), flush=True)
    out = {"command": "python benchmarks/explore/explore_scale.py" + (" --part small" if small else ""),
           "n_factors": 64, "epochs": EPOCHS,
           "data": f"make_ratings({shape[0]:_}, {shape[1]:_}, {shape[2]:_}, n_factors=8, noise=0.8, "
                   f"rating_scale=(1, 5), random_state=1); first {n:,} fit, the rest validation",
           "results": rows}
    name = "explore_scale_small.json" if small else "explore_scale.json"
    (ROOT / "benchmarks" / "results" / "explore" / name).write_text(json.dumps(out, indent=1))


DENSITY_SIZES = (350_000, 700_000, 1_400_000, 2_750_000)
DENSITY_ALPHAS = (0.1, 0.05, 0.03, 0.02)


def density():
    rows = []
    for size in DENSITY_SIZES:
        X, y = make_ratings(16_200, 5_900, size, n_factors=8, noise=0.8, rating_scale=(1, 5), return_X_y=True,
                            random_state=1)
        n = size * 9 // 10
        X_fit, y_fit, X_val, y_val = X.iloc[:n], y.iloc[:n], X.iloc[n:], y.iloc[n:]
        per_user = n / X_fit["user_id"].nunique()
        per_item = n / X_fit["item_id"].nunique()
        for alpha in DENSITY_ALPHAS:
            start = time.perf_counter()
            est = EmbeddingMFRegressor(n_factors=64, epochs=EPOCHS, random_state=0, alpha=alpha, learning_rate=0.002)
            est.fit(X_fit, y_fit, validation_data=(X_val, y_val))
            curve = est.history_["val_rmse"]
            rows.append({"n_ratings": size, "ratings_per_user": per_user, "ratings_per_item": per_item,
                         "alpha": alpha, "val_rmse_by_epoch": curve,
                         "best_epoch": int(min(range(len(curve)), key=curve.__getitem__)) + 1,
                         "best_val_rmse": min(curve), "seconds": time.perf_counter() - start})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "val_rmse_by_epoch"}), flush=True)
    best = {}
    for row in rows:
        if row["n_ratings"] not in best or row["best_val_rmse"] < best[row["n_ratings"]]["best_val_rmse"]:
            best[row["n_ratings"]] = row
    out = {"command": "python benchmarks/explore/explore_scale.py --part density", "n_factors": 64, "epochs": EPOCHS,
           "data": "make_ratings(16_200, 5_900, n, n_factors=8, noise=0.8, rating_scale=(1, 5), random_state=1) "
                   f"for n in {list(DENSITY_SIZES)}; first 90% fit, the rest validation",
           "fixed": {"learning_rate": 0.002}, "results": rows,
           "best_alpha_by_n_ratings": {str(k): v["alpha"] for k, v in best.items()}}
    (ROOT / "benchmarks" / "results" / "explore" / "explore_scale_density.json").write_text(json.dumps(out, indent=1))


ML100K_CONFIGS = [{}, {"alpha": 0.05, "learning_rate": 0.002}]


def ml100k():
    import numpy as np
    from sklearn.model_selection import PredefinedSplit, train_test_split

    from skmfnet.datasets import fetch_movielens

    data = fetch_movielens("100k")
    X, y = data.ratings[["user_id", "item_id"]], data.ratings["rating"]
    rows = []
    for fold, (base, _) in enumerate(PredefinedSplit(data.test_fold).split(), start=1):  # the test part unread
        fit, val = train_test_split(base, test_size=0.1, random_state=0)
        for params in ML100K_CONFIGS:
            est = EmbeddingMFRegressor(epochs=EPOCHS, random_state=0, **params)
            est.fit(X.iloc[fit], y.iloc[fit], validation_data=(X.iloc[val], y.iloc[val]))
            curve = est.history_["val_rmse"]
            rows.append({"fold": f"u{fold}.base", "params": params, "val_rmse_by_epoch": curve,
                         "at_10_epochs": curve[9], "best_epoch": int(np.argmin(curve)) + 1,
                         "best_val_rmse": min(curve)})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "val_rmse_by_epoch"}), flush=True)
    means = {json.dumps(params): {"at_10_epochs": float(np.mean([r["at_10_epochs"] for r in rows
                                                                   if r["params"] == params])),
                                  "best": float(np.mean([r["best_val_rmse"] for r in rows if r["params"] == params]))}
             for params in ML100K_CONFIGS}
    out = {"command": "python benchmarks/explore/explore_scale.py --part ml100k", "epochs": EPOCHS,
           "data": "MovieLens 100K u1.base .. u5.base, each split 90/10 (train_test_split, random_state=0); "
                   "the test folds are not read", "results": rows, "means": means}
    (ROOT / "benchmarks" / "results" / "explore" / "explore_scale_ml100k.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["small", "density", "ml100k"],
                        help="another question than the 25M density's (see above); default: that one")
    part = parser.parse_args().part
    if part == "ml100k":
        ml100k()
    elif part == "density":
        density()
    else:
        main(small=part == "small")
