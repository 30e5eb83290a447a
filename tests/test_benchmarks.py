"""The benchmark suite (benchmarks/run.py): CLI errors, and --quick end to end.

The end-to-end test runs ``benchmarks/run.py --quick`` exactly as CI does, in
a subprocess writing to a temporary folder (about 25 s on 2 cores, TensorFlow's
import included).  It needs the real MovieLens 100K, found as in
``test_datasets.py`` (``SKMFNET_DATA``, else ``../shared/data`` next to the
repository root), and the benchmark extra (Surprise, Cornac, matplotlib).
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys

import pytest
from _data import REAL_HOME, REPO_ROOT, needs_real_100k

RUN = REPO_ROOT / "benchmarks" / "run.py"
QUICK_MODELS = {
    "folds": {"dummy", "bias", "mf_default", "mf_grid", "mf_side_implicit"},
    "peers": {"surprise_baselineonly", "surprise_svd", "cornac_mf"},
}
# documents that cite files of benchmarks/ (paths from the repository root; in
# benchmarks/README.md also results/... from benchmarks/)
CITING_DOCUMENTS = ["README.md", "benchmarks/README.md", *sorted(
    p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "docs").glob("*.rst")
)]
# "<commit>:benchmarks/x.py" (as `git show` takes it) names a file of an older
# commit, a removed script: not looked for in the checkout
BENCHMARKS_PATH = re.compile(r"(?<![\w./-])(?:([0-9a-f]{7,40}):)?(benchmarks/[\w./*-]*)")
RESULTS_PATH = re.compile(r"(?<![\w./-])(results/[\w./*-]*)")


def run_suite(*args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, str(RUN), *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "args, match",
    [
        pytest.param(["--models", "dummy,nope"], "unknown model 'nope'; choose from: dummy", id="model"),
        pytest.param(["--protocols", "folds,xval"], "unknown protocol 'xval'", id="protocol"),
        pytest.param(["--folds", "0,6"], "invalid folds '0,6'", id="folds"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args, match):
    import re

    done = run_suite(*args, timeout=60)
    assert done.returncode == 2
    assert re.search(match, done.stderr), done.stderr


def test_help_lists_protocols_and_models():
    done = run_suite("--help", timeout=60)
    assert done.returncode == 0
    for name in ["tutorial", "folds", "peers", "mf_tutorial", "mf_classic", "surprise_svdpp", "cornac_mf"]:
        assert name in done.stdout


@needs_real_100k
def test_quick_run_end_to_end(tmp_path):
    for module in ("surprise", "cornac", "matplotlib"):
        pytest.importorskip(module)
    done = run_suite("--quick", "--output", str(tmp_path), env={"SKMFNET_DATA": str(REAL_HOME)})
    assert done.returncode == 0, done.stderr[-3000:]

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["command"].startswith("python benchmarks/run.py --quick --output")
    assert results["settings"]["quick"] is True
    assert results["settings"]["folds"] == [1]
    machine = results["machine"]
    for key in ("cpu_model", "cpu_count", "ram_gib", "os", "python"):
        assert key in machine
    for library in ("numpy", "pandas", "scikit-learn", "tensorflow", "keras", "scikeras", "surprise", "cornac", "skmfnet"):
        assert machine["versions"][library]

    for protocol, names in QUICK_MODELS.items():
        assert set(results["protocols"][protocol]) == names
        for name in names:
            entry = results["protocols"][protocol][name]
            assert math.isfinite(entry["rmse_mean"]) and 0.5 < entry["rmse_mean"] < 1.5, name
            assert [fold["fold"] for fold in entry["per_fold"]] == [1]
    assert results["protocols"]["folds"]["mf_grid"]["per_fold"][0]["best_params"]
    # the side-information model ran, configured with the MovieLens feature columns
    assert results["protocols"]["folds"]["mf_side_implicit"]["params"]["user_features"] == [
        "age_group", "gender", "occupation"
    ]
    # the baseline and Surprise's BaselineOnly are the same algorithm
    assert results["protocols"]["folds"]["bias"]["rmse_mean"] == pytest.approx(
        results["protocols"]["peers"]["surprise_baselineonly"]["rmse_mean"], abs=1e-6
    )

    tutorial = results["protocols"]["tutorial"]["models"]["mf_tutorial"]
    assert tutorial["published_rmse"] == 0.944 and math.isfinite(tutorial["rmse"])
    curve = results["learning_curves"]["tutorial"]["history"]
    assert len(curve["rmse"]) == len(curve["val_rmse"]) == 2
    assert len(results["learning_curves"]["mf_default_u1"]["history"]["val_rmse"]) >= 1

    temporal = results["protocols"]["temporal"]
    assert set(temporal) == {"temporal_bias", "temporal_mf_default", "temporal_mf_time"}
    assert all(math.isfinite(entry["rmse"]) for entry in temporal.values())
    assert temporal["temporal_mf_time"]["params"]["item_features"] == ["item_time_bin"]

    fold_in = results["protocols"]["fold_in"]
    assert [r["seed"] for r in fold_in["repeats"]] == [0]  # --quick: one draw
    for key in ("unknown", "fold_in_5", "refit_5", "fold_in_20", "refit_20"):
        assert math.isfinite(fold_in["repeats"][0][key]["rmse"]), key

    for name in ("results.md", "rmse.png", "learning_curves.png"):
        assert (tmp_path / name).stat().st_size > 0
    table = (tmp_path / "results.md").read_text()
    assert "not measured here" in table and "GLocal-K" in table
    assert "## New users without refitting: fold_in" in table
    assert "## Temporal split: each user's latest ratings" in table


def test_speed_synthetic_protocol_end_to_end(tmp_path):
    """benchmarks/speed.py's synthetic protocol, tiny: every library fits, predicts and is scored."""
    for module in ("surprise", "cornac"):
        pytest.importorskip(module)
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "speed.py"), "--protocols", "synthetic",
         "--n-ratings", "4000", "--test-ratings", "1000", "--epochs", "2", "--output", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "speed.json").read_text())
    synthetic = results["synthetic"]
    assert synthetic["n_ratings"] == 4000 and synthetic["test_ratings"] == 1000
    assert set(synthetic["libraries"]) == {"skmfnet", "skmfnet-1thread", "skmfnet-blockperthread", "skmfnet-sgd",
                                           "skmfnet-adagrad", "skmfnet-lazy4096", "surprise", "cornac"}
    # the plain defaults train for their own number of epochs, the others for --epochs
    from skmfnet import EmbeddingMFRegressor

    assert synthetic["libraries"]["skmfnet"]["epochs"] == EmbeddingMFRegressor().epochs
    assert synthetic["libraries"]["skmfnet-1thread"]["epochs"] == EmbeddingMFRegressor().epochs
    assert synthetic["libraries"]["skmfnet-blockperthread"]["epochs"] == EmbeddingMFRegressor().epochs
    assert synthetic["bound_ratings_per_s"]["sgd"] == pytest.approx(3 * synthetic["bound_ratings_per_s"]["adam"])
    assert synthetic["bound_ratings_per_s"]["sgd"] == pytest.approx(2 * synthetic["bound_ratings_per_s"]["adagrad"])
    assert synthetic["libraries"]["skmfnet-sgd"]["epochs"] == 2
    for library, r in synthetic["libraries"].items():
        assert r["fit_s"] > 0 and r["predict_pairs_per_s"] > 0 and r["peak_rss_gib"] > 0, library
        # ratings on a 1-5 scale: any fitted model is far below the scale's width
        assert 0.3 < r["test_rmse"] < 2.0, library
    table = (tmp_path / "speed.md").read_text()
    assert "| skmfnet-sgd |" in table and "Epoch throughput / Surprise" in table
    assert "Memory-traffic bound of the compiled path" in table


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 or shutil.which("taskset") is None,
                    reason="the scaling protocol pins processes to cores 0 and 1 with taskset")
def test_speed_scaling_protocol_end_to_end(tmp_path):
    """benchmarks/speed.py's scaling protocol, tiny: one process, then two workers on loopback."""
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "speed.py"), "--protocols", "scaling",
         "--scaling-sizes", "20000", "--output", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    row = json.loads((tmp_path / "speed.json").read_text())["scaling"]["sizes"]["20000"]
    single, pair = row["one_process_one_core"], row["two_workers_one_core_each"]
    assert single["sent_bytes_per_epoch"] == 0  # alone: nothing exchanged
    # the two workers exchanged item blocks every round, and hold the same model
    assert pair[0]["sent_bytes_per_epoch"] > 0 and pair[0]["test_rmse"] == pair[1]["test_rmse"]
    # (no assertion on "speedup": on 20,000 ratings it is timing noise, negative on a busy machine)
    assert "2 workers x 1 core" in (tmp_path / "speed.md").read_text()


def test_explore_blocks_forces_each_block_count_and_writes_its_figures(tmp_path, monkeypatch):
    import skmfnet._training._schedule

    monkeypatch.syspath_prepend(str(REPO_ROOT))
    from benchmarks.explore import explore_blocks

    seen = []
    blocks = skmfnet._training._schedule.Blocks

    class Recorded(blocks):
        def __init__(self, X, n_rows, p, batch):
            seen.append(p)
            super().__init__(X, n_rows, p, batch)

    monkeypatch.setattr(skmfnet._training._schedule, "Blocks", Recorded)
    # "auto" compares its pairs on held-out ratings from 10,000 ratings on here (a million in the package)
    monkeypatch.setattr(skmfnet._training._auto, "AUTO_SELECTION_RATINGS", 10_000)
    original = (skmfnet._training._schedule.resolve_blocks, skmfnet._training._schedule.end_epoch)
    out = tmp_path / "blocks.json"
    assert explore_blocks.main(["--n-ratings", "20000", "--blocks", "2,3", "--repeats", "1", "--n-factors", "4",
                                "--output", str(out)]) == 0
    assert seen[-2:] == [2, 3]  # (the warm-up fit came first, with the rule's own)
    result = json.loads(out.read_text())["results"]["20000"]
    assert set(result["ratings_per_s"]) == {"2", "3"}
    assert all(len(r) == 1 and r[0] > 0 for r in result["ratings_per_s"].values())
    # each fit's best held-out RMSE of the pairs compared
    assert set(result["held_out_rmse"]) == {"2", "3"}
    assert all(len(r) == 1 and 0 < r[0] < 2 for r in result["held_out_rmse"].values())
    # the package's own rule and epoch end are back after the sweep
    assert (skmfnet._training._schedule.resolve_blocks, skmfnet._training._schedule.end_epoch) == original


def test_explore_schedule_forces_each_number_of_parts_and_records_the_curves(tmp_path, monkeypatch):
    import skmfnet._training._schedule

    monkeypatch.syspath_prepend(str(REPO_ROOT))
    from benchmarks.explore import explore_schedule

    round_passes = skmfnet._training._schedule.round_passes
    # 40,000 ratings in batches of 1024: 2 x 2 cells of about 9 batches, in parts of 3 or more
    monkeypatch.setattr(skmfnet._training._schedule, "CELL_BATCHES", 3)
    parts = []
    chunk_order = skmfnet._training._schedule.chunk_order

    def recorded(*args):
        parts.append(skmfnet._training._schedule.ROUND_CHUNKS)
        return chunk_order(*args)

    monkeypatch.setattr(skmfnet._training._schedule, "chunk_order", recorded)
    out = tmp_path / "schedule.json"
    assert explore_schedule.main(["--n-ratings", "40000", "--epochs", "2", "--chunks", "1,3", "--n-factors", "4",
                                  "--blocks", "2", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert list(result["results"]) == ["1 thread", "2 blocks, 1 chunks", "2 blocks, 3 chunks"]
    for row in result["results"].values():
        assert len(row["test_rmse"]) == 2 and row["best"] == min(row["test_rmse"]) and row["epoch_s"] > 0
    # (one thread draws no parts) 2 x 2 cells, in 1 and then 3 parts, for 2 epochs: another trajectory
    # (3 parts on 2 blocks a side: the sweep lifts the package's cap of one pass per block)
    assert parts == [1] * 2 * 4 + [3] * 2 * 4 * 3
    assert result["results"]["2 blocks, 1 chunks"]["test_rmse"] != result["results"]["2 blocks, 3 chunks"]["test_rmse"]
    assert skmfnet._training._schedule.ROUND_CHUNKS == 4  # the package's own number and rule are back
    assert skmfnet._training._schedule.round_passes is round_passes


def test_speed_worker_counts_the_epochs_of_each_fit_when_auto_compares_pairs(tmp_path, monkeypatch, capsys):
    """The one-epoch fit trains each pair one epoch: the per-epoch time divides by the epochs' difference."""
    import argparse

    import numpy as np

    import skmfnet._training._auto
    from skmfnet.datasets import make_ratings

    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    try:
        import speed
    finally:
        sys.path.remove(str(REPO_ROOT / "benchmarks"))
    monkeypatch.setattr(skmfnet._training._auto, "AUTO_SELECTION_RATINGS", 1000)  # every fit here compares
    X, y = make_ratings(n_users=50, n_items=40, n_ratings=1600, return_X_y=True, random_state=0)
    data = tmp_path / "ratings.npz"
    np.savez(data, users=X["user_id"].to_numpy(), items=X["item_id"].to_numpy(), ratings=y.to_numpy())
    speed._worker(argparse.Namespace(data=str(data), n_ratings=1500, library="skmfnet", n_factors=4, epochs=3, seed=0))
    row = json.loads(capsys.readouterr().out)
    assert row["one_epoch_fit_epochs_trained"] == 2  # one epoch of each pair
    assert row["epochs_trained"] == sum(pair["epochs"] for pair in row["auto_results"])
    assert row["epoch_s"] == pytest.approx(
        (row["fit_s"] - row["one_epoch_fit_s"]) / (row["epochs_trained"] - 2)
    )
    assert row["ratings_per_epoch"] == 1500 - 150


def test_every_benchmarks_path_in_docs_resolves():
    """Every benchmarks/... path that the README, the docs and benchmarks/README.md cite exists."""
    # the git-ignored output folders (--quick, subsets) exist only after a run
    ignored = {line.strip().rstrip("/") for line in (REPO_ROOT / ".gitignore").read_text().splitlines()}
    missing = []
    for name in CITING_DOCUMENTS:
        for number, line in enumerate((REPO_ROOT / name).read_text().splitlines(), 1):
            cited = [(REPO_ROOT, m.group(2)) for m in BENCHMARKS_PATH.finditer(line) if not m.group(1)]
            if name == "benchmarks/README.md":
                cited += [(REPO_ROOT / "benchmarks", m.group(1)) for m in RESULTS_PATH.finditer(line)]
            for base, path in cited:
                path = path.rstrip(".,")
                if (base / path).relative_to(REPO_ROOT).as_posix().rstrip("/") in ignored:
                    continue
                if not (any(base.glob(path)) if "*" in path else (base / path).exists()):
                    missing.append(f"{name}:{number}: {path}")
    assert not missing, "paths cited but not in the checkout:\n" + "\n".join(missing)


@needs_real_100k
def test_explore_defaults_reports_each_configuration_against_the_defaults_time(tmp_path, monkeypatch):
    """Every configuration is fitted on each held-out split and summarized by its mean RMSE and its fit time over
    the defaults'; the best within the time bound is the lowest RMSE among those within it."""
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    monkeypatch.setenv("SKMFNET_DATA", str(REAL_HOME))
    from benchmarks.explore import explore_defaults

    small = [("defaults", "defaults", {"epochs": 2}), ("family", "K=4", {"n_factors": 4, "epochs": 2}),
             ("sampler", "gibbs", {"optimizer": "gibbs", "n_factors": 2, "epochs": 5, "n_estimators": 2})]
    monkeypatch.setattr(explore_defaults, "candidates", lambda: iter(small))
    out = tmp_path / "defaults.json"
    explore_defaults.main(["--folds", "1", "--output", str(out)])
    result = json.loads(out.read_text())
    assert [row["label"] for row in result["rows"]] == ["defaults", "K=4", "gibbs"]
    summary = result["summary"]
    assert summary["defaults"]["time_ratio"] == 1.0
    for label, entry in summary.items():
        row = next(r for r in result["rows"] if r["label"] == label)
        assert entry["mean_held_out_rmse"] == row["held_out_rmse"] and entry["mean_fit_s"] == row["fit_s"]
        assert entry["time_ratio"] == pytest.approx(row["fit_s"] / summary["defaults"]["mean_fit_s"])
    within = {label: e["mean_held_out_rmse"] for label, e in summary.items() if e["time_ratio"] <= 1.5}
    assert list(result["best_within_time_bound"]) == [min(within, key=within.get)]
    assert list(result["best_overall"]) == [min(summary, key=lambda label: summary[label]["mean_held_out_rmse"])]


@pytest.mark.timeout(300)
def test_explore_exchange_times_the_all_gather_of_two_loopback_workers(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    from benchmarks.explore import explore_exchange

    out = tmp_path / "exchange.json"
    assert explore_exchange.main(["--rows", "50,120", "--n-factors", "3", "--repeats", "2", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["columns"] == 12 and list(result["results"]) == ["50", "120"]
    for rows, row in result["results"].items():
        assert row["block_mb"] == int(rows) * 12 * 4 / 1e6
        assert len(row["wall_ms"]) == len(row["cpu_ms"]) == 2  # one figure per worker
        assert all(v > 0 for v in row["wall_ms"] + row["cpu_ms"])
