"""Exploration for #13: does the stratified schedule of several threads cost accuracy, and what wins it back.

Not a benchmark row.  In ``benchmarks/results/speed/speed_25m`` the defaults
reached a test RMSE of 0.8323 on four blocks a side (two threads) and 0.8266
on one thread, in the same run.  This script trains the pair that "auto"
keeps at that size (``alpha=0.03, learning_rate=0.002``, K=64) for a fixed
number of epochs and records the RMSE on 100,000 further ratings of the same
model after every epoch, on data drawn with another seed than
``benchmarks/speed.py``'s (``make_ratings(162_000, 59_000, n + 100_000,
n_factors=8, noise=0.8, rating_scale=(1, 5), random_state=1)``, the last
100,000 held out), for:

* ``1 thread``: one block, the Keras path's batches;
* ``p blocks, c chunks``: two threads on the schedule of ``p`` blocks a side
  (``--blocks``, 4 by default; 2 is also the schedule of two
  ``distribution="multi_worker"`` workers, whose result it equals), each
  cell's epoch cut into ``c`` calls (``skmfnet._training._schedule.ROUND_CHUNKS``,
  forced here), so that the rounds go through the item blocks ``c`` times
  an epoch.

An epoch's time is the time between the ends of two epochs
(``skmfnet._training._schedule.end_epoch``); the figure is the median of epochs 2 on.

Usage: ``python benchmarks/explore/explore_schedule.py`` (about 15 minutes
on 2 cores at 25 million ratings); writes
``benchmarks/results/explore/explore_schedule.json``.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))

from benchmarks.explore.explore_blocks import epoch_stamps  # noqa: E402
from benchmarks.suite.report import machine_info  # noqa: E402
from skmfnet import EmbeddingMFRegressor  # noqa: E402
from skmfnet.datasets import make_ratings  # noqa: E402

PAIR = {"alpha": 0.03, "learning_rate": 0.002}


def forced_passes(chunks):
    """``skmfnet._training._schedule.round_passes`` with ``chunks`` passes wherever the cells hold them.

    Not capped at the blocks a side, as the package's rule is: the sweep
    measures what that cap gives up.
    """
    import skmfnet._training._schedule as schedule

    return lambda p, fewest_steps: 1 if p == 1 else max(1, min(chunks, fewest_steps // schedule.CELL_BATCHES))


def curve(X, y, X_test, y_test, n_jobs, chunks, epochs, n_factors, blocks=4):
    """(test RMSE after each epoch, median seconds per epoch from the second) of one fit."""
    est = EmbeddingMFRegressor(n_factors=n_factors, epochs=epochs, random_state=0, n_jobs=n_jobs,
                               early_stopping=False, **PAIR)
    forced = {"ROUND_CHUNKS": chunks, "round_passes": forced_passes(chunks)}
    if n_jobs > 1:  # (one thread trains one block)
        forced["resolve_blocks"] = lambda *args, **kwargs: blocks
    with epoch_stamps(**forced) as stamps:
        est.fit(X, y, validation_data=(X_test, y_test))
    return [float(v) for v in est.history_["val_rmse"]], float(np.median(np.diff(stamps)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-ratings", type=int, default=25_000_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--chunks", default="1,4,16", help="chunks per cell to try")
    parser.add_argument("--blocks", type=int, default=4, help="blocks a side of the threads' schedule")
    parser.add_argument("--n-factors", type=int, default=64)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "explore" / "explore_schedule.json"))
    args = parser.parse_args(argv)
    command = "python benchmarks/explore/explore_schedule.py" + (f" {' '.join(argv)}" if argv else "")
    n = args.n_ratings
    out = {"command": command, "machine": machine_info(), "n_factors": args.n_factors, "epochs": args.epochs,
           "params": PAIR,
           "data": "make_ratings(162_000, 59_000, n + 100_000, n_factors=8, noise=0.8, rating_scale=(1, 5), "
                   "random_state=1); the last 100,000 are the test ratings",
           "n_ratings": n, "figures": "test RMSE after each epoch; median seconds per epoch from the second",
           "results": {}}
    X, y = make_ratings(162_000, 59_000, n + 100_000, n_factors=8, noise=0.8, rating_scale=(1, 5),
                        return_X_y=True, random_state=1)
    X_test, y_test = X.iloc[n:], y.iloc[n:]
    X, y = X.iloc[:n], y.iloc[:n]
    # a warm-up fit: the process's one-time costs in no timed epoch
    EmbeddingMFRegressor(n_factors=args.n_factors, epochs=1).fit(X.iloc[:4000], y.iloc[:4000])
    runs = [("1 thread", 1, 1)] + [(f"{args.blocks} blocks, {c} chunks", 2, c)
                                   for c in map(int, args.chunks.split(","))]
    for name, n_jobs, chunks in runs:
        rmse, epoch_s = curve(X, y, X_test, y_test, n_jobs, chunks, args.epochs, args.n_factors, args.blocks)
        out["results"][name] = {"test_rmse": rmse, "best": min(rmse), "best_epoch": int(np.argmin(rmse)) + 1,
                                "epoch_s": epoch_s}
        print(f"{name}: best {min(rmse):.4f} at epoch {int(np.argmin(rmse)) + 1}, {epoch_s:.1f} s/epoch; "
              + " ".join(f"{v:.4f}" for v in rmse), flush=True)
        Path(args.output).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
