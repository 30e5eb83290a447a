"""Exploration for #13: how fast XLA moves the compiled step's rows, beside the whole step.

Not a benchmark row.  ``speed.py``'s memory-traffic bound divides the bytes
an epoch must move by the speed of streaming copies, but an epoch reads and
writes its rows at random.  This script measures, on one thread, the part
of the defaults' step that no arithmetic can remove: for each rating,
gather its user row and its item row, packed as the compiled path packs
them (``3 * (K + 1)`` floats with Adam's moments), and scatter them back
changed, in one XLA-compiled ``tf.while_loop`` over batches of 1024, as
the compiled epoch does (``skmfnet._rowfit``):

* on tables of MovieLens 25M's id shape (162,000 users, 59,000 items,
  rounded up as the compiled path rounds them), which do not fit in the
  processor's cache;
* on tables of 2,048 rows a side, which do;

beside the defaults' whole compiled epoch on one thread
(``EmbeddingMFRegressor(n_factors=64, n_jobs=1)``, median of epochs 2..6,
timed as ``explore_blocks.py`` times them) on other-seed ratings of the
25M id shape.  Rates are the best of three calls.

Usage: ``python benchmarks/explore_step.py`` (about half a minute on 2 cores);
writes ``benchmarks/results/explore_step.json``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.explore_blocks import epoch_throughput  # noqa: E402
from benchmarks.report import machine_info  # noqa: E402
from skmfnet._rowfit import _bucket  # noqa: E402
from skmfnet.datasets import make_ratings  # noqa: E402

BATCH = 1024


def row_traffic(n_users, n_items, width, steps, seed=0):
    """Ratings per second of gathering and scattering back one user row and one item row per rating."""
    rng = np.random.default_rng(seed)
    users = tf.constant(rng.integers(1, n_users + 1, size=steps * BATCH), tf.int32)
    items = tf.constant(rng.integers(1, n_items + 1, size=steps * BATCH), tf.int32)
    tables = [tf.Variable(tf.zeros([_bucket(n + 1), width])) for n in (n_users, n_items)]

    @tf.function(jit_compile=True, autograph=False)
    def run():
        def body(s, table_u, table_i):
            u, i = tf.slice(users, [s * BATCH], [BATCH]), tf.slice(items, [s * BATCH], [BATCH])
            table_u = tf.tensor_scatter_nd_update(table_u, u[:, None], tf.gather(table_u, u) * 0.5 + 1.0)
            table_i = tf.tensor_scatter_nd_update(table_i, i[:, None], tf.gather(table_i, i) * 0.5 + 1.0)
            return s + 1, table_u, table_i

        _, table_u, table_i = tf.while_loop(lambda s, *_: s < steps, body,
                                            (tf.constant(0), tables[0].read_value(), tables[1].read_value()))
        tables[0].assign(table_u)
        tables[1].assign(table_i)

    run()  # compiles
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return steps * BATCH / min(seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="162000,59000", help="users,items of the large tables and the ratings")
    parser.add_argument("--n-ratings", type=int, default=2_000_000, help="ratings of the whole-step fit")
    parser.add_argument("--steps", type=int, default=2000, help="batches of the row-traffic loops")
    parser.add_argument("--n-factors", type=int, default=64)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "explore_step.json"))
    args = parser.parse_args(argv)
    n_users, n_items = (int(n) for n in args.shape.split(","))
    width = 3 * (args.n_factors + 1)  # [factors | bias | m | v]
    command = "python benchmarks/explore_step.py" + (f" {' '.join(argv)}" if argv else "")
    out = {"command": command, "machine": machine_info(), "n_factors": args.n_factors, "row_floats": width,
           "batch": BATCH, "figure": "ratings per second, one thread", "results": {}}
    results = out["results"]
    results["rows_only_large_tables"] = row_traffic(n_users, n_items, width, args.steps)
    results["rows_only_cached_tables"] = row_traffic(2_047, 2_047, width, args.steps)
    X, y = make_ratings(n_users, n_items, args.n_ratings, n_factors=8, noise=0.8, rating_scale=(1, 5),
                        return_X_y=True, random_state=1)
    results["whole_step_defaults"] = epoch_throughput(X, y, 0, args.n_factors, n_jobs=1)
    results["whole_step_data"] = (f"make_ratings({n_users}, {n_items}, {args.n_ratings}, n_factors=8, noise=0.8, "
                                  "rating_scale=(1, 5), random_state=1)")
    for name, rate in results.items():
        if isinstance(rate, float):
            print(f"{name}: {rate / 1e6:.2f} M ratings/s", flush=True)
    Path(args.output).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
