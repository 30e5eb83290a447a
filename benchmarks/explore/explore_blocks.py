"""Exploration for #13: how many blocks a side should the compiled path's schedule use on two cores.

Not a benchmark row: per-epoch throughput of the defaults
(``EmbeddingMFRegressor(n_factors=64)``, every usable core) with the
number of blocks per side forced to each of ``--blocks`` (through the
private ``skmfnet._training._schedule.resolve_blocks``), beside the number that the
package's rule picks, on ratings of the 25M id shape drawn with another
seed than ``benchmarks/speed.py``'s (``make_ratings(162_000, 59_000, n,
n_factors=8, noise=0.8, rating_scale=(1, 5), random_state=1)``).  Each fit
runs 6 epochs; an epoch's time is the time between the ends of two
epochs (``skmfnet._training._schedule.end_epoch``), so the first epoch (with the
compilation) is left out and the figure is the median of the other five.
The block counts are interleaved and the whole sweep is repeated
(``--repeats``), so that a drift of the machine's speed falls on all of
them alike.  Why a script of its own: ``speed.py`` times whole fits
(``(T(E) - T(1)) / (E - 1)``), whose difference moved by up to 1.8x
between repetitions of the same setting on this machine.

Each fit also records the best held-out RMSE of the pairs ``"auto"``
compared (from a million ratings on: the estimator's own tenth of the
ratings, no test set), so that a faster schedule is seen to learn as well.

Usage: ``python benchmarks/explore/explore_blocks.py`` (about 6 minutes on
2 cores); writes ``benchmarks/results/explore/explore_blocks.json``.
"""

import argparse
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))

import skmfnet._training._dispatch  # noqa: E402
import skmfnet._training._schedule  # noqa: E402
from benchmarks.suite.report import machine_info  # noqa: E402
from skmfnet import EmbeddingMFRegressor  # noqa: E402
from skmfnet.datasets import make_ratings  # noqa: E402

EPOCHS = 6


@contextmanager
def epoch_stamps(**overrides):
    """The times at which the epochs of the fits inside end, with attributes of :mod:`skmfnet._training._schedule` overridden.

    Wraps ``skmfnet._training._schedule.end_epoch``; it and the overridden attributes are
    restored on leaving.
    """
    stamps = []
    saved = {name: getattr(skmfnet._training._schedule, name) for name in ("end_epoch", *overrides)}

    def stamped(*args, **kwargs):
        stamps.append(time.perf_counter())
        return saved["end_epoch"](*args, **kwargs)

    try:
        for name, value in {**overrides, "end_epoch": stamped}.items():
            setattr(skmfnet._training._schedule, name, value)
        yield stamps
    finally:
        for name, value in saved.items():
            setattr(skmfnet._training._schedule, name, value)


def fit_with_blocks(X, y, blocks, n_factors, **params):
    """One fit with ``blocks`` blocks a side (0: the rule's): (median ratings per second of epochs 2..EPOCHS,
    the best held-out RMSE of the pairs "auto" compared, or None below a million ratings).

    ``params``: the estimator's other parameters (``n_jobs``), defaults otherwise.  The held-out
    ratings are the estimator's own (a tenth of ``y``): no test set is read.
    """
    with epoch_stamps(**({"resolve_blocks": lambda *args, **kwargs: blocks} if blocks else {})) as stamps:
        model = EmbeddingMFRegressor(n_factors=n_factors, epochs=EPOCHS, random_state=0, **params).fit(X, y)
    results = getattr(model, "auto_results_", None)
    held_out = None if results is None else min(r["best_val_rmse"] for r in results)
    return len(y) / float(np.median(np.diff(stamps))), held_out


def rule_blocks(n_ratings):
    """The number of blocks a side that the package's rule picks for a fit of the defaults on every core."""
    threads = skmfnet._training._dispatch.resolve_threads(None, n_ratings)
    return skmfnet._training._schedule.resolve_blocks(threads, n_ratings, EmbeddingMFRegressor().batch_size,
                                                      finer=True)  # (the defaults' LazyAdam)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-ratings", default="2000000,5000000")
    parser.add_argument("--blocks", default="2,4,8,16")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n-factors", type=int, default=64)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "explore" / "explore_blocks.json"))
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.n_ratings.split(",")]
    counts = [int(p) for p in args.blocks.split(",")]
    command = "python benchmarks/explore/explore_blocks.py" + (f" {' '.join(argv)}" if argv else "")
    out = {"command": command, "machine": machine_info(), "n_factors": args.n_factors, "epochs": EPOCHS,
           "data": "make_ratings(162_000, 59_000, n, n_factors=8, noise=0.8, rating_scale=(1, 5), random_state=1)",
           "figure": "median ratings per second of epochs 2..6 of one fit", "results": {}}
    # a warm-up fit: the process's one-time costs in no timed epoch
    X, y = make_ratings(2_000, 1_000, 4_000, random_state=0, return_X_y=True)
    EmbeddingMFRegressor(n_factors=args.n_factors, epochs=1).fit(X, y)
    for n in sizes:
        X, y = make_ratings(162_000, 59_000, n, n_factors=8, noise=0.8, rating_scale=(1, 5), return_X_y=True,
                            random_state=1)
        runs = {p: [] for p in counts}
        held_out = {p: [] for p in counts}
        for _ in range(args.repeats):
            for p in counts:
                rate, rmse = fit_with_blocks(X, y, p, args.n_factors)
                runs[p].append(rate)
                held_out[p].append(rmse)
                print(f"{n:,} ratings, {p} blocks: {rate / 1e6:.2f} M ratings/s, held-out RMSE {rmse}", flush=True)
        out["results"][str(n)] = {
            "rule_blocks": rule_blocks(n),
            "ratings_per_s": {str(p): r for p, r in runs.items()},
            # the best held-out RMSE of the pairs "auto" compared after EPOCHS epochs (None below a million ratings)
            "held_out_rmse": {str(p): r for p, r in held_out.items()},
        }
    Path(args.output).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
