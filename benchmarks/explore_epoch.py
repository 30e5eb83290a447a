"""Exploration for #13: where an epoch of the defaults' large fits spends its time.

Not a benchmark row: one fit of the defaults (``EmbeddingMFRegressor(n_factors=64,
epochs=--epochs, random_state=0)``: ``"auto"`` compares two pairs, each
with early stopping on held-out ratings) on ratings of MovieLens 25M's id
shape drawn with another seed than ``benchmarks/speed.py``'s
(``make_ratings(162_000, 59_000, n, n_factors=8, noise=0.8, rating_scale=(1,
5), random_state=1)``), with the package's private functions wrapped by
timers: the training loop (``skmfnet._kernel.train``), the orders of the
batches (``skmfnet._kernel.chunk_order`` where the package has it,
TensorFlow's ``skmfnet._rowfit._chunk_order`` and ``_epoch_order``), the
scoring of the held-out ratings (``skmfnet._rowfit._evaluate``), copying
the trained rows out of the blocks (``Blocks.unpack``) and the rest of the
end of an epoch (``skmfnet._rowfit.end_epoch``: early stopping keeping the
best weights).  Each part's figure is its seconds per epoch summed over
the threads that ran it (the loop and the orders run on every thread at
once, the rest on one while the others wait); the epoch's wall time is
the median time between the ends of two epochs.  A warm-up fit compiles
everything first (run with ``SKMFNET_CACHE_DIR=`` set empty, the figures
then hold no compilation).  Why a script of its own: ``speed.py`` times
whole fits, not their parts.

Usage: ``python benchmarks/explore_epoch.py --label NAME`` (about 2
minutes on 2 cores at 25 million ratings); appends a run to
``benchmarks/results/explore_epoch.json``.
"""

import argparse
import collections
import json
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import skmfnet._kernel  # noqa: E402
import skmfnet._rowfit  # noqa: E402
from benchmarks.report import machine_info  # noqa: E402
from benchmarks.speed import _ratings_per_epoch  # noqa: E402
from skmfnet import EmbeddingMFRegressor  # noqa: E402
from skmfnet.datasets import make_ratings  # noqa: E402

#: (module, attribute, part) of the timed functions; those a version of the package lacks are skipped.
TIMED = [
    (skmfnet._kernel, "train", "loop"),
    (skmfnet._kernel, "chunk_order", "orders"),
    (skmfnet._rowfit, "_chunk_order", "orders"),
    (skmfnet._rowfit, "_epoch_order", "orders"),
    (skmfnet._rowfit, "_evaluate", "validation"),
    (skmfnet._rowfit.Blocks, "unpack", "unpack"),
    (skmfnet._rowfit, "end_epoch", "end of epoch"),
]


def timed_fit(X, y, epochs):
    """Seconds per epoch of each part (summed over threads) and the median epoch's wall time of one fit."""
    seconds = collections.Counter()
    stamps = []
    lock = threading.Lock()

    def timer(function, part):
        def timed(*args, **kwargs):
            if part == "end of epoch":
                stamps.append(time.perf_counter())
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                with lock:
                    seconds[part] += time.perf_counter() - start

        return timed

    with ExitStack() as stack:
        for owner, name, part in TIMED:
            if hasattr(owner, name):
                stack.enter_context(mock.patch.object(owner, name, timer(getattr(owner, name), part)))
        start = time.perf_counter()
        model = EmbeddingMFRegressor(n_factors=64, epochs=epochs, random_state=0).fit(X, y)
        fit_s = time.perf_counter() - start
    n_epochs = len(stamps)
    # (the end of an epoch holds the validation: only the rest is reported under its name)
    seconds["end of epoch"] -= seconds["validation"]
    epoch_s = float(np.median(np.diff(stamps)))
    trained = _ratings_per_epoch(model, len(y))
    return {
        "fit_s": fit_s,
        "epochs_trained": n_epochs,
        "median_epoch_s": epoch_s,
        "ratings_per_epoch": trained,
        "ratings_per_s": trained / epoch_s,
        "thread_s_per_epoch": {part: s / n_epochs for part, s in sorted(seconds.items())},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True, help="name of this run (say, the code's version)")
    parser.add_argument("--n-ratings", type=int, default=25_000_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "explore_epoch.json"))
    args = parser.parse_args(argv)
    output = Path(args.output)
    # a warm-up fit on the fused loop's threads with validation: everything compiled before the timed fit
    X, y = make_ratings(30_000, 10_000, 600_000, random_state=0, return_X_y=True)
    EmbeddingMFRegressor(n_factors=64, epochs=1, early_stopping=True).fit(X, y)
    X, y = make_ratings(162_000, 59_000, args.n_ratings, n_factors=8, noise=0.8, rating_scale=(1, 5),
                        return_X_y=True, random_state=1)
    run = timed_fit(X, y, args.epochs)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "skmfnet"], capture_output=True,
                           text=True).stdout
    # (read just before writing: runs append one after another)
    out = json.loads(output.read_text()) if output.exists() else {
        "script": "benchmarks/explore_epoch.py", "figures": __doc__.split("Usage:")[0].strip(), "runs": []}
    out["runs"].append({"label": args.label, "command": "python benchmarks/explore_epoch.py "
                        + " ".join(argv if argv is not None else sys.argv[1:]),
                        "commit": commit.strip(), "package_changed_since_commit": bool(dirty.strip()),
                        "n_ratings": args.n_ratings, "machine": machine_info(), **run})
    print(json.dumps(run, indent=1))
    output.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
