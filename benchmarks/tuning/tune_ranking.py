"""How the ranking configurations of the benchmark were chosen, on MovieLens 100K training ratings only.

Every candidate (``EmbeddingMFRegressor`` with sampled unobserved pairs,
``negative_ratio > 0``, and the peers Cornac BPR and WMF) is fitted, for
each canonical fold of ``FOLDS``, on 90% of ``uK.base``
(``train_test_split(..., random_state=K)``) and scores the top-10 lists of
every user against the other 10% (relevant: rated 4 or more; the items of
the 90% left out), as the benchmark's ranking protocol scores ``uK.test``;
the skmfnet rows also record the RMSE on the same 10%.  Three choices:

* ``ranking``: the skmfnet configuration of ``GRID`` with the best mean NDCG@10;
* ``both``: among ``GRID_BOTH`` (the row-sparse defaults plus a light weight
  on the sampled pairs), the best NDCG@10 whose validation RMSE is within
  ``BOTH_RMSE_SLACK`` of the rating-only defaults' on the same splits;
* each peer: the best of its grid (``PEER_GRIDS``), which starts from the
  configuration measured before tuning (BPR: k=50, 200 iterations, learning
  rate 0.01, lambda 0.01; WMF: Cornac's defaults, k=50);
* ``selection`` (``--part selection``, run later and merged into the same
  file): the defaults plus a selection term (``GRID_SELECTION``); the choice
  is the best NDCG@10 among the candidates whose fit takes at most
  ``SELECTION_TIME_BUDGET`` times the rating-only defaults' fit, timed in
  the same run after one warm-up fit of each (so that no candidate's time
  holds the process's first compilation).  Its rating network is the
  defaults', so its RMSE is theirs.

No ``uK.test`` rating is scored here; the caveat is that ``u1.base`` holds
the test ratings of u2..u5 (and so on), so one configuration for all five
folds is mildly optimistic for the benchmark, for skmfnet and the peers
alike.

Usage: ``python benchmarks/tuning/tune_ranking.py`` (about 20 minutes on 2
cores); writes ``benchmarks/results/tuning/tune_ranking.json``.
``python benchmarks/tuning/tune_ranking.py --part selection`` (about 5 minutes)
re-measures the defaults and most-popular and adds the ``selection_*`` keys.
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

from benchmarks.suite.peers import CornacRanker  # noqa: E402
from skmfnet import EmbeddingMFRegressor, MostPopularRanker  # noqa: E402
from skmfnet.datasets import fetch_movielens  # noqa: E402
from skmfnet.metrics import ndcg_at_k, relevant_items  # noqa: E402

GRID = dict(negative_ratio=[3.0, 6.0, 12.0], negative_rating=[None, 0.0], epochs=[30, 60], n_factors=[32, 64])
GRID_BOTH = dict(negative_ratio=[1.0, 3.0], negative_weight=[0.03, 0.1, 0.3], negative_rating=[None, 0.0])
BOTH_RMSE_SLACK = 0.01
GRID_SELECTION = dict(negative_ratio=[1.0, 3.0, 6.0], selection_factors=[32, 64], negative_rating=[None, 0.0],
                      epochs=[10, 20])
SELECTION_TIME_BUDGET = 3.0
PEER_GRIDS = {
    "BPR": dict(k=[50, 100], max_iter=[200, 400], learning_rate=[0.01, 0.05], lambda_reg=[0.01, 0.001]),
    "WMF": dict(k=[50, 100], max_iter=[100, 300], lambda_u=[0.01, 0.1], lambda_v=[0.01, 0.1]),
}
FOLDS = (1, 2)


def _splits():
    data = fetch_movielens("100k")
    X, y = data.ratings[["user_id", "item_id"]], data.ratings["rating"].to_numpy()
    folds = list(PredefinedSplit(data.test_fold).split())
    for k in FOLDS:
        train, _ = folds[k - 1]
        fit_part, val_part = train_test_split(train, test_size=0.1, random_state=k)
        yield X.iloc[fit_part], y[fit_part], X.iloc[val_part], y[val_part]


def _score(make, splits, rates):
    ndcgs, rmses = [], []
    start = time.perf_counter()
    for X_fit, y_fit, X_val, y_val in splits:
        est = make().fit(X_fit, y_fit)
        relevant = relevant_items(X_val, y_val, threshold=4.0)
        ndcgs.append(ndcg_at_k(est.recommend(list(relevant), n=10), relevant, k=10))
        if rates:
            rmses.append(float(np.sqrt(np.mean((est.predict(X_val) - y_val) ** 2))))
    row = {"val_ndcg_at_10": float(np.mean(ndcgs)), "seconds": time.perf_counter() - start}
    if rates:
        row["val_rmse"] = float(np.mean(rmses))
    return row


def _search(grid, make, splits, rates, label):
    rows = []
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values))
        rows.append({**params, **_score(lambda: make(params), splits, rates)})
        print(label, json.dumps(rows[-1]), flush=True)
    return sorted(rows, key=lambda r: -r["val_ndcg_at_10"])


def _selection_part(splits, path):
    out = json.loads(path.read_text())
    # warm-up: one short fit of every compiled program the timed fits run
    # (XLA compiles one per batch shape and table width)
    _score(lambda: EmbeddingMFRegressor(random_state=0, epochs=1), splits[:1], True)
    for ratio, factors in itertools.product(GRID_SELECTION["negative_ratio"], GRID_SELECTION["selection_factors"]):
        _score(lambda: EmbeddingMFRegressor(random_state=0, epochs=1, negative_ratio=ratio, selection_factors=factors),
               splits[:1], False)
    defaults = _score(lambda: EmbeddingMFRegressor(random_state=0), splits, True)
    rows = _search(GRID_SELECTION, lambda p: EmbeddingMFRegressor(random_state=0, **p), splits, True, "selection")
    budget = SELECTION_TIME_BUDGET * defaults["seconds"]
    out.update({
        "selection_command": "python benchmarks/tuning/tune_ranking.py --part selection",
        "grid_selection": GRID_SELECTION,
        "selection_time_budget": SELECTION_TIME_BUDGET,
        "selection_defaults": defaults,
        "selection_most_popular": _score(MostPopularRanker, splits, False),
        "selection": rows,
        "selection_choice": next((r for r in rows if r["seconds"] <= budget), None),
    })
    path.write_text(json.dumps(out, indent=1))
    print("defaults:", defaults, "\nselection:", out["selection_choice"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["selection"], help="only the selection term's search, merged into the file")
    args = parser.parse_args(argv)
    splits = list(_splits())
    path = ROOT / "benchmarks" / "results" / "tuning" / "tune_ranking.json"
    if args.part == "selection":
        return _selection_part(splits, path)
    out = {"command": "python benchmarks/tuning/tune_ranking.py", "folds": FOLDS, "grid": GRID, "grid_both": GRID_BOTH,
           "both_rmse_slack": BOTH_RMSE_SLACK, "peer_grids": PEER_GRIDS}
    out["defaults"] = _score(lambda: EmbeddingMFRegressor(random_state=0), splits, True)
    out["most_popular"] = _score(MostPopularRanker, splits, False)
    out["ranking"] = _search(GRID, lambda p: EmbeddingMFRegressor(random_state=0, **p), splits, True, "ranking")
    both = _search(GRID_BOTH, lambda p: EmbeddingMFRegressor(random_state=0, **p), splits, True, "both")
    out["both"] = both
    limit = out["defaults"]["val_rmse"] + BOTH_RMSE_SLACK
    out["both_choice"] = next((r for r in both if r["val_rmse"] <= limit), None)
    out["peers"] = {
        model: _search(grid, lambda p, model=model: CornacRanker(model, p, seed=0), splits, False, model)
        for model, grid in PEER_GRIDS.items()
    }
    path.write_text(json.dumps(out, indent=1))
    print("ranking:", out["ranking"][0], "\nboth:", out["both_choice"],
          "\npeers:", {m: rows[0] for m, rows in out["peers"].items()})


if __name__ == "__main__":
    main()
