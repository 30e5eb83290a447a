"""Exploration for #13 item 3: which settings would make the defaults accurate at the 25M shape.

Not a benchmark row: data of the 25M shape's *density* (ratings per user and
per item) at a tenth of its users and items, drawn with another seed than
``benchmarks/speed.py``'s (``make_ratings(16_200, 5_900, 2_750_000,
n_factors=8, noise=0.8, random_state=1)``); the first 2.5M ratings train,
the last 250K are scored after every epoch (``validation_data``), so each
configuration gives its whole validation curve.  K=64, every other
parameter at its default.

Usage: ``python benchmarks/explore_scale.py`` (about 7 minutes on 2 cores);
writes ``benchmarks/results/explore_scale.json``.

``python benchmarks/explore_scale.py --part small`` asks whether it is the
scale or the data: the same generator at MovieLens 100K's shape (943 users,
1,682 items, 100,000 ratings; ``random_state=1``, first 90,000 fit, last
10,000 scored), the same configurations; writes
``benchmarks/results/explore_scale_small.json`` (about a minute).
"""

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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
    out = {"command": "python benchmarks/explore_scale.py" + (" --part small" if small else ""),
           "n_factors": 64, "epochs": EPOCHS,
           "data": f"make_ratings({shape[0]:_}, {shape[1]:_}, {shape[2]:_}, n_factors=8, noise=0.8, "
                   f"rating_scale=(1, 5), random_state=1); first {n:,} fit, the rest validation",
           "results": rows}
    name = "explore_scale_small.json" if small else "explore_scale.json"
    (ROOT / "benchmarks" / "results" / name).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(small=sys.argv[1:] == ["--part", "small"])
