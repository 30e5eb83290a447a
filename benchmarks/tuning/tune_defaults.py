"""How the defaults of ``EmbeddingMFRegressor`` were chosen, on MovieLens 100K training ratings only.

The defaults are the best configuration and epoch count of this search
(``optimizer="lazy_adam"``, the compiled row-sparse path): at the time of
the search the defaults were Keras's dense Adam (``FORMER_DEFAULTS`` in
``benchmarks/suite/models.py``), and "every other parameter at its default" below
means ``n_factors=32``, ``alpha_bias=0.01`` and the rest of the
non-optimizer parameters, unchanged since.

For each configuration of ``GRID`` (``optimizer="lazy_adam"``, K=32, every
other parameter at its default) and each canonical fold u1..u5, fit on 90% of
``uK.base`` (``train_test_split(..., random_state=K)``) for ``EPOCHS`` epochs
and record the RMSE on the other 10% after every epoch
(``validation_data``: unclipped predictions).  The choice is the
configuration and epoch count with the lowest validation RMSE averaged over
the five folds.  No ``uK.test`` rating is scored here; the caveat is that
``u1.base`` holds the test ratings of u2..u5 (and so on), so choosing one
configuration for all five folds is mildly optimistic for the benchmark's
test RMSE.

Usage: ``python benchmarks/tuning/tune_defaults.py`` (about 10 minutes on 2
cores); writes ``benchmarks/results/tuning/tune_defaults.json``.
"""

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import PredefinedSplit, train_test_split

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))

from skmfnet import EmbeddingMFRegressor  # noqa: E402
from skmfnet.datasets import fetch_movielens  # noqa: E402

GRID = dict(learning_rate=[0.005, 0.01, 0.02], alpha=[0.02, 0.05, 0.1, 0.2], batch_size=[1024, 4096],
            init_std=[0.001, 0.01])
EPOCHS = 40


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    data = fetch_movielens("100k")
    X, y = data.ratings[["user_id", "item_id"]], data.ratings["rating"].to_numpy()
    folds = list(PredefinedSplit(data.test_fold).split())
    results = []
    for values in itertools.product(*GRID.values()):
        params = dict(zip(GRID, values))
        curves = []
        start = time.perf_counter()
        for k, (train, _) in enumerate(folds):
            fit_part, val_part = train_test_split(train, test_size=0.1, random_state=k)
            est = EmbeddingMFRegressor(optimizer="lazy_adam", epochs=EPOCHS, random_state=0, **params)
            est.fit(X.iloc[fit_part], y[fit_part], validation_data=(X.iloc[val_part], y[val_part]))
            curves.append(est.history_["val_rmse"])
        mean = np.mean(curves, axis=0)
        best = int(np.argmin(mean))
        results.append({**params, "best_epochs": best + 1, "best_val_rmse": float(mean[best]),
                        "val_rmse_by_epoch": mean.tolist(), "seconds": time.perf_counter() - start})
        print(json.dumps({k: v for k, v in results[-1].items() if k != "val_rmse_by_epoch"}), flush=True)
    results.sort(key=lambda r: r["best_val_rmse"])
    out = ROOT / "benchmarks" / "results" / "tuning" / "tune_defaults.json"
    out.write_text(json.dumps({"command": "python benchmarks/tuning/tune_defaults.py", "grid": GRID, "epochs": EPOCHS,
                               "results": results}, indent=1))
    print("best:", {k: v for k, v in results[0].items() if k != "val_rmse_by_epoch"})


if __name__ == "__main__":
    main()
