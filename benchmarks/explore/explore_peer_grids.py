"""Exploration for #37 item 1: where the ranking peers' grids (EASE, iALS) should lie.

Not a benchmark row: wider grids than the ranking protocol's ``rank_ease``
and ``rank_ials`` (``EASE_GRID``, ``IALS_GRID`` of
``benchmarks/suite/models.py``), scored by the rule those rows tune by
(:class:`benchmarks.suite.search.HoldoutRankingSearch`: 20% of each user's
training ratings held out, NDCG@10 of the top-10 lists against the held-out
ratings of 4 or more) on u1.base and u2.base, training ratings only (the
test folds are not read).  EASE: ``lamb`` with Cornac's default ``posB=True``
(negative weights set to 0) and Steck's ``posB=False``; iALS: ``factors``,
``regularization`` (implicit's usual 0.01 up to 100) and ``alpha``.  Each
grid point's NDCG@10, per fold and their mean, best first.

Usage: ``python benchmarks/explore/explore_peer_grids.py`` (about 3 minutes
on 2 cores); writes ``benchmarks/results/explore/explore_peer_grids.json``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))

from benchmarks.suite import models as M  # noqa: E402
from benchmarks.suite import protocols as P  # noqa: E402
from benchmarks.suite.peers import CornacRanker, ImplicitALSRanker  # noqa: E402

FOLDS = (1, 2)
EASE_WIDE = {"lamb": [20, 50, 100, 200, 500, 1000, 2000, 5000], "posB": [False, True]}
IALS_WIDE = {"factors": [32, 64, 128], "regularization": [0.01, 0.1, 1.0, 10.0, 30.0, 100.0],
             "alpha": [1.0, 3.0, 10.0, 40.0]}


def _rows(search_by_fold, keys):
    """One row per grid point: its parameters, NDCG@10 per fold and their mean, best first."""
    rows = []
    for i, point in enumerate(next(iter(search_by_fold.values())).grid_scores_):
        scores = {f"u{k}": s.grid_scores_[i]["val_ndcg_at_10"] for k, s in search_by_fold.items()}
        rows.append({**{key: point[key] for key in keys}, **scores,
                     "mean_val_ndcg_at_10": sum(scores.values()) / len(scores)})
    return sorted(rows, key=lambda r: -r["mean_val_ndcg_at_10"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="the holdout's and the models' seed")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "explore" /
                        "explore_peer_grids.json")
    args = parser.parse_args(argv)
    data = P.load_movielens_100k()
    ease, ials = {}, {}
    start = time.perf_counter()
    for k in FOLDS:
        X, y, _, _ = P.columns(P.fold_split(data, k), P.ID_COLUMNS)
        ease_grid = {"params": [dict(lamb=lamb, posB=posB) for posB in EASE_WIDE["posB"]
                                for lamb in EASE_WIDE["lamb"]]}
        ease[k] = M.make_holdout_search(CornacRanker("EASE", seed=args.seed, binary=True), ease_grid,
                                        args.seed).fit(X, y)
        for row in ease[k].grid_scores_:
            row.update(row.pop("params"))
        ials[k] = M.make_holdout_search(ImplicitALSRanker(random_state=args.seed), IALS_WIDE, args.seed).fit(X, y)
        print(f"u{k}: EASE {ease[k].best_params_}, iALS {ials[k].best_params_}", flush=True)
    out = {
        "command": "python benchmarks/explore/explore_peer_grids.py",
        "note": "holdouts of u1.base and u2.base (training ratings only), scored as HoldoutRankingSearch scores: "
                "20% of each user's ratings held out (users with 5 or more), NDCG@10 against the held-out "
                "ratings >= 4; every point fitted on the other 80%",
        "folds": list(FOLDS),
        "seed": args.seed,
        "seconds": time.perf_counter() - start,
        "benchmark_grids": {"rank_ease": M.EASE_GRID, "rank_ials": M.IALS_GRID},
        "ease_grid": EASE_WIDE,
        "ease": _rows(ease, ["lamb", "posB"]),
        "ials_grid": IALS_WIDE,
        "ials": _rows(ials, list(IALS_WIDE)),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1))
    print("EASE:", out["ease"][:3], "\niALS:", out["ials"][:3])
    return 0


if __name__ == "__main__":
    sys.exit(main())
