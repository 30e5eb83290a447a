"""Exploration for #37 items 2-4: the item-item term on data other than the canonical folds.

The ranking protocol scores the rows on MovieLens 100K's five folds.  A
rule that holds only there does not count, so the same rows, with the same
settings (chosen inside ``fit`` or fixed beforehand, nothing tuned here),
are scored on three other kinds of data:

* ``ml100k_temporal``: each user's latest 20% of ML-100K's ratings as test
  (:class:`skmfnet.model_selection.TemporalSplit`, the protocol's temporal
  split): the future, not a random sample of the past;
* ``ml100k_users_a`` and ``ml100k_users_b``: ML-100K's users split at random
  in two halves (seeded), each half a smaller data set of its own, with 20%
  of each user's ratings held out at random (users with 5 or more);
* ``synthetic_popularity``: ``make_ratings(3000, 2000, 150_000,
  popularity_exponent=1.2, rating_scale=(1, 5))``, whose users choose items
  by popularity alone (the ratings come from latent factors): a planted
  popularity bias, split as the halves are.

Rows: most popular, EASE and iALS tuned inside fit (``rank_ease``,
``rank_ials``), the sampled-pairs configuration (``NEGATIVES_PARAMS``), the
defaults with a selection term (``SELECTION_PARAMS``), and the defaults with
the item-item term chosen inside fit (``ITEM_ITEM_PARAMS``).  Scores: NDCG@10 and
precision@10 as the protocol computes them (relevant = test rating >= 4,
training items left out), RMSE where the row predicts ratings, fit seconds.

Usage: ``python benchmarks/explore/explore_item_item.py`` (about 10 minutes
on 2 cores); writes ``benchmarks/results/explore/explore_item_item.json``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))

from benchmarks.suite import models as M  # noqa: E402
from benchmarks.suite import protocols as P  # noqa: E402
from benchmarks.suite.report import machine_info  # noqa: E402
from benchmarks.suite.search import holdout_split  # noqa: E402

ROWS = ("rank_popular", "rank_ease", "rank_ials", "rank_mf_negatives", "rank_mf_both", "rank_mf_item_item")
SYNTHETIC = dict(n_users=3000, n_items=2000, n_ratings=150_000, popularity_exponent=1.2, rating_scale=(1, 5))


def _random_split(X, y, seed):
    held = holdout_split(X, test_size=0.2, min_ratings=5, random_state=seed)
    return X[~held].reset_index(drop=True), y[~held], X[held].reset_index(drop=True), y[held]


def datasets(seed, time=False):
    """Name -> (X_train, y_train, X_test, y_test).

    ``time=True``: X also has the ratings' ``timestamp`` column, and the
    synthetic ratings, which have no times, are left out.
    """
    from skmfnet.datasets import make_ratings

    columns = list(P.ID_COLUMNS) + ([P.TIME_COLUMN] if time else [])
    data = P.load_movielens_100k()
    out = {"ml100k_temporal": P.columns(P.temporal_split(data), columns)}
    ratings = data.X[columns].assign(rating=data.y)
    users = ratings["user_id"].unique()
    half = set(np.random.default_rng(seed).permutation(users)[: len(users) // 2])
    for name, mask in (("ml100k_users_a", ratings["user_id"].isin(half)),
                       ("ml100k_users_b", ~ratings["user_id"].isin(half))):
        part = ratings[mask].reset_index(drop=True)
        out[name] = _random_split(part[columns], part["rating"], seed)
    if not time:
        synthetic = make_ratings(**SYNTHETIC, random_state=seed)
        out["synthetic_popularity"] = _random_split(synthetic[list(P.ID_COLUMNS)], synthetic["rating"], seed)
    return {name: (X, np.asarray(y, dtype=np.float64), X_test, np.asarray(y_test, dtype=np.float64))
            for name, (X, y, X_test, y_test) in out.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="the splits' and the models' seed")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated among {ROWS}")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "explore" /
                        "explore_item_item.json")
    args = parser.parse_args(argv)
    rows = [r for r in args.rows.split(",") if r]
    results = {"command": "python benchmarks/explore/explore_item_item.py " + " ".join(argv or sys.argv[1:]),
               "machine": machine_info(), "synthetic": SYNTHETIC, "data": {}}
    start = time.perf_counter()
    for name, (X, y, X_test, y_test) in datasets(args.seed).items():
        scores = results["data"][name] = {"n_train": len(y), "n_test": len(y_test), "rows": {}}
        for row in rows:
            model = M.MODELS[row].make(args.seed)
            fitted = time.perf_counter()
            model.fit(X, y)
            entry = {"fit_seconds": time.perf_counter() - fitted, **P.ranking_scores(model, X_test, y_test)}
            if M.MODELS[row].rates:
                entry["rmse"] = float(np.sqrt(np.mean((model.predict(X_test) - np.asarray(y_test)) ** 2)))
            for attribute in ("item_item_alpha_", "item_item_weight_", "best_params_"):
                if getattr(model, attribute, None) is not None:
                    entry[attribute.rstrip("_")] = getattr(model, attribute)
            scores["rows"][row] = entry
            print(f"{name} {row}: NDCG@10 {entry['ndcg_at_10']:.4f}, fit {entry['fit_seconds']:.1f} s", flush=True)
    results["wall_seconds"] = time.perf_counter() - start
    table = pd.DataFrame({name: {row: e["ndcg_at_10"] for row, e in d["rows"].items()}
                          for name, d in results["data"].items()})
    results["ndcg_at_10_table"] = table.round(4).to_dict()
    print(table.round(4).to_string())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
