"""Exploration for #35: what one exchange of ``distribution="multi_worker"`` costs, in wall and CPU time.

Not a benchmark row.  Two loopback worker processes, each on one core
(``taskset``, one TensorFlow thread), as in ``benchmarks/speed.py
--protocols scaling``, all-gather a float32 block of ``rows`` rows of
``3 (K + 1)`` columns (an item block with its factors, bias and Adam's two
moments, K=32 by default) through :class:`skmfnet._training._cluster.RowExchange`,
the compiled path's only communication, ``--repeats`` times after three
untimed ones.  Each worker reports the mean wall time and the mean CPU time
of its process (user + system, every thread: TensorFlow's transport
included) per all-gather.  CPU time close to the wall time means the
exchange keeps the worker's one core busy: overlapping it with training
on that core would gain little.

Usage: ``python benchmarks/explore/explore_exchange.py`` (about a minute on
2 cores); writes ``benchmarks/results/explore/explore_exchange.json``.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))

from benchmarks.speed import free_ports  # noqa: E402
from benchmarks.suite.report import machine_info  # noqa: E402


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(rows_list, width, repeats):
    """In a worker process: {rows: (mean wall s, mean CPU s)} of its all-gathers."""
    from skmfnet._training._cluster import RowExchange, get_strategy

    exchange = RowExchange(get_strategy("multi_worker"))
    out = {}
    for rows in rows_list:
        block = np.random.default_rng(exchange.index).random((rows, width), dtype=np.float32)
        for _ in range(3):
            exchange.all_gather(block)
        wall, cpu = time.perf_counter(), _cpu_seconds()
        for _ in range(repeats):
            exchange.all_gather(block)
        out[rows] = ((time.perf_counter() - wall) / repeats, (_cpu_seconds() - cpu) / repeats)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="2000,8000,29500", help="comma-separated rows of the block")
    parser.add_argument("--n-factors", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "explore" / "explore_exchange.json"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rows_list = [int(r) for r in args.rows.split(",") if r]
    width = 3 * (args.n_factors + 1)
    if args.worker:
        print(json.dumps(worker(rows_list, width, args.repeats)), flush=True)
        return 0
    command = "python benchmarks/explore/explore_exchange.py" + (f" {' '.join(argv)}" if argv else "")
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
    cores = sorted(os.sched_getaffinity(0))
    procs = [
        subprocess.Popen(
            ["taskset", "-c", str(cores[index % len(cores)]), sys.executable, __file__, "--worker",
             "--rows", args.rows, "--n-factors", str(args.n_factors), "--repeats", str(args.repeats)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(env, TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                                "task": {"type": "worker", "index": index}})))
        for index in range(2)
    ]
    outputs = [proc.communicate(timeout=600) for proc in procs]
    for proc, (_, err) in zip(procs, outputs):
        if proc.returncode:
            raise RuntimeError(f"exchange worker failed: {err[-3000:]}")
    measured = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    out = {"command": command, "machine": machine_info(), "n_factors": args.n_factors, "columns": width,
           "repeats": args.repeats,
           "figures": "per all-gather and worker: mean wall ms, mean CPU ms of the process, MB of the block sent",
           "results": {}}
    for rows in rows_list:
        out["results"][str(rows)] = {
            "block_mb": rows * width * 4 / 1e6,
            "wall_ms": [m[str(rows)][0] * 1e3 for m in measured],
            "cpu_ms": [m[str(rows)][1] * 1e3 for m in measured],
        }
        row = out["results"][str(rows)]
        print(f"{rows} rows ({row['block_mb']:.1f} MB): wall " + ", ".join(f"{v:.1f}" for v in row["wall_ms"])
              + " ms; CPU " + ", ".join(f"{v:.1f}" for v in row["cpu_ms"]) + " ms", flush=True)
    Path(args.output).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
