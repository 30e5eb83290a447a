"""Exploration for #13: what the first fit of a process pays on MovieLens 100K u1.

Not a benchmark row: ``speed.py`` times whole fits (its ``ml100k`` rows);
this script splits the defaults' first fit of a new process, one with a
new, empty compile cache, into its parts, so that the one target of #13
that is not met (that fit at most as long as Surprise SVD's) can be
argued with figures.  Every run starts two new Python processes:

* ``xla``: with skmfnet's compile cache in a new, empty folder and
  TensorFlow's compiler log on (``TF_CPP_VMODULE=cpu_compiler=1``): Surprise
  SVD's fit of u1 (the process's first, from the same DataFrame), then
  ``EmbeddingMFRegressor(random_state=0)``'s first fit, each compiled call
  (an epoch) timed, then the same fit again.  From the log: XLA's own
  figure for compiling the epoch (its ``using JIT time`` line) and the
  number of kernels it generated code for (one ``LLVM verifier`` line
  each).  The first call less that compilation and less a compiled
  epoch (the median of the later calls) is TensorFlow's tracing of the
  epoch and its lowering to XLA.
* ``numba``: with skmfnet's cache off (numba's on-disk cache with it):
  ``import numba`` and the first call of the fused loop
  (:mod:`skmfnet._kernel`, which trains fits from 524,288 ratings) on
  u1's shapes, which compiles it: what the loop would add to a first fit
  if it trained small fits too.

Usage: ``python benchmarks/explore_first_fit.py --label NAME`` (about 30
seconds a run on 2 cores; ``--runs``, default 3); appends to
``benchmarks/results/explore_first_fit.json``.  ``--n-ratings N`` fits
synthetic ratings instead of u1 (for the tests).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: XLA's log line for the compilation of a program, and the one it writes per generated kernel.
_JIT = re.compile(r"Compiling \[[^\]]*run_epoch[^\]]*\] for CPU using JIT time: (\d+) ms")
_KERNEL = "Running LLVM verifier"


def _data(n_ratings):
    """(X, y) of u1.base, or ``n_ratings`` synthetic ratings."""
    if n_ratings:
        from skmfnet.datasets import make_ratings

        return make_ratings(300, 200, n_ratings, rating_scale=(1, 5), random_state=0, return_X_y=True)
    from benchmarks.speed import _u1

    X, y, _, _ = _u1()
    return X, y


def _child_xla(n_ratings):
    from benchmarks.peers import SurpriseRegressor
    from skmfnet import EmbeddingMFRegressor, _compile_cache

    X, y = _data(n_ratings)
    start = time.perf_counter()
    SurpriseRegressor("SVD", random_state=0).fit(X, y)
    surprise = time.perf_counter() - start
    calls = []
    call = _compile_cache.call

    def timed(*args, **kwargs):
        begin = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            calls.append(time.perf_counter() - begin)

    fits = []
    with mock.patch.object(_compile_cache, "call", timed):
        for _ in range(2):
            start = time.perf_counter()
            EmbeddingMFRegressor(random_state=0).fit(X, y)
            fits.append(time.perf_counter() - start)
            if len(fits) == 1:
                first_calls = list(calls)
    return {"surprise_fit_s": surprise, "first_fit_s": fits[0], "second_fit_s": fits[1],
            "first_call_s": first_calls[0], "later_call_s": statistics.median(first_calls[1:] or [0.0]),
            "calls_in_first_fit": len(first_calls)}


def _child_numba(n_ratings):
    import numpy as np

    X, y = _data(n_ratings)
    start = time.perf_counter()
    import numba  # noqa: F401

    imported = time.perf_counter() - start
    from skmfnet import _kernel, _rowfit

    # the defaults' shapes on these ratings: K=32 with Adam's two moments, tables of the bucketed rows
    width = 33
    n_users, n_items = int(np.asarray(X)[:, 0].max()) + 1, int(np.asarray(X)[:, 1].max()) + 1
    table_u = np.zeros((_rowfit._bucket(n_users), 3 * width), np.float32)
    table_i = np.zeros((_rowfit._bucket(n_items), 3 * width), np.float32)
    rows = np.stack([np.arange(len(y)) % n_users, np.arange(len(y)) % n_items], axis=1).astype(np.int32)
    order = np.arange(len(y), dtype=np.int32)
    start = time.perf_counter()
    _kernel.train(table_u, table_i, rows, np.zeros(len(y), np.float32), np.ones(1, np.float32), order,
                  len(y) // 1024, 1024, np.full(width, 0.05, np.float32),
                  np.array([0.005, 0.9, 0.999, 1e-7], np.float32), _kernel.RULES["LazyAdam"], 0, 1)
    return {"numba_import_s": imported, "numba_first_call_s": time.perf_counter() - start}


def _in_new_process(kind, n_ratings, cache):
    """Run ``--child kind`` with the compile cache ``cache`` ("" off) and the compiler log; (row, stderr)."""
    env = {**os.environ, "SKMFNET_CACHE_DIR": cache, "TF_CPP_MIN_LOG_LEVEL": "0",
           "TF_CPP_VMODULE": "cpu_compiler=1"}
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--n-ratings", str(n_ratings)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def one_run(n_ratings):
    """The figures of one run (two new processes)."""
    with tempfile.TemporaryDirectory() as cache:
        row, log = _in_new_process("xla", n_ratings, cache)
    compiled = [int(ms) for ms in _JIT.findall(log)]
    row["xla_compile_s"] = compiled[0] / 1000 if compiled else None
    row["xla_kernels"] = log.count(_KERNEL)
    if compiled:
        row["trace_and_lowering_s"] = row["first_call_s"] - row["xla_compile_s"] - row["later_call_s"]
    row["first_fit_over_surprise"] = row["first_fit_s"] / row["surprise_fit_s"]
    row.update(_in_new_process("numba", n_ratings, "")[0])
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", help="name of this run (say, the code's version)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--n-ratings", type=int, default=0, help="synthetic ratings instead of u1 (0: u1)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "explore_first_fit.json"))
    parser.add_argument("--child", choices=["xla", "numba"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps((_child_xla if args.child == "xla" else _child_numba)(args.n_ratings)))
        return 0
    if not args.label:
        parser.error("--label is required")
    from benchmarks.report import machine_info

    runs = [one_run(args.n_ratings) for _ in range(args.runs)]
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "skmfnet"], capture_output=True,
                           text=True).stdout
    output = Path(args.output)
    out = json.loads(output.read_text()) if output.exists() else {
        "script": "benchmarks/explore_first_fit.py", "figures": __doc__.split("Usage:")[0].strip(), "runs": []}
    out["runs"].append({"label": args.label, "command": "python benchmarks/explore_first_fit.py "
                        + " ".join(argv if argv is not None else sys.argv[1:]),
                        "commit": commit.strip(), "package_changed_since_commit": bool(dirty.strip()),
                        "data": f"{args.n_ratings} synthetic ratings" if args.n_ratings else "MovieLens 100K u1.base",
                        "machine": machine_info(), "runs": runs})
    print(json.dumps(runs, indent=1))
    output.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
