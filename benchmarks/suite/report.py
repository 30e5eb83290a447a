"""What a run leaves behind: results.json, results.md, rmse.png, learning_curves.png."""

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from benchmarks.suite.models import WEIGHT_SWEEP_PREFIX

LIBRARIES = {
    "numpy": "numpy",
    "pandas": "pandas",
    "scikit-learn": "scikit-learn",
    "scipy": "scipy",
    "tensorflow": "tensorflow",
    "keras": "keras",
    "scikeras": "scikeras",
    "surprise": "scikit-surprise",
    "cornac": "cornac",
    "implicit": "implicit",
    "matplotlib": "matplotlib",
    "tqdm": "tqdm",
}


def _fold_in_section(entry):
    """The fold_in protocol's table: RMSE of the held-out users' later ratings, three ways."""
    repeats = entry["repeats"]
    seeds = ", ".join(str(r["seed"]) for r in repeats)
    lines = [
        "## New users without refitting: fold_in",
        "",
        f"{entry['n_held_users']} users with at least {entry['min_ratings']} ratings held out entirely "
        f"(seeds {seeds}, one draw each); {entry['label']} fitted on everybody else's ratings; each held "
        "user then gets the first n of their ratings (random order), and every method is scored on "
        f"their ratings after the {max(entry['given'])}th (the same ratings for every n). Mean ± sample "
        f"std over the {len(repeats)} draws.",
        "",
        "| Method | Ratings per new user | RMSE | Seconds |",
        "|---|---|---|---|",
    ]
    rows = [("Unknown-user fallback (mu + b_i), fit without them", "0", "unknown")]
    for n in entry["given"]:
        rows.append(("`fold_in` (closed form, every other row unchanged)", str(n), f"fold_in_{n}"))
        rows.append(("Full refit with those ratings", str(n), f"refit_{n}"))
    for label, n, key in rows:
        rmse = [r[key]["rmse"] for r in repeats]
        secs = [r[key]["seconds"] for r in repeats]
        std = lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else None  # noqa: E731
        lines.append(f"| {label} | {n} | {_pm(float(np.mean(rmse)), std(rmse))} | "
                     f"{_pm(float(np.mean(secs)), std(secs), digits=3)} |")
    lines.append("")
    return lines


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _ram_gib():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine_info():
    """CPU, cores, RAM, OS, Python and library versions (GPUs if TensorFlow is loaded)."""
    versions = {}
    for name, dist in LIBRARIES.items():
        try:
            versions[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[name] = None
    import skmfnet

    versions["skmfnet"] = skmfnet.__version__
    info = {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
    }
    if "tensorflow" in sys.modules:
        info["tensorflow_gpus"] = [
            d.name for d in sys.modules["tensorflow"].config.list_physical_devices("GPU")
        ]
    return info


def write_json(results, path):
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------


def _pm(mean, std, digits=4):
    if mean is None:
        return ""
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def _choice(params):
    """``name=value, ...`` of chosen parameters, a dict value (a model's ``params``) spelled out."""
    flat = {}
    for key, value in params.items():
        flat.update(value if isinstance(value, dict) else {key: value})
    return ", ".join(f"{key}={value!r}" for key, value in flat.items())


def _secs(mean, std):
    if mean is None:
        return ""
    digits = 1 if mean >= 10 else 2 if mean >= 0.1 else 3
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def markdown(results, published):
    m = results["machine"]
    lines = [
        "# skmfnet benchmark on MovieLens 100K",
        "",
        f"Command: `{results['command']}`  ",
        f"Started {results['started']}, wall time {results['wall_seconds']:.0f} s"
        + (" (**--quick**: reduced settings, not comparable with full results)" if results["settings"]["quick"] else "")
        + ".  ",
        f"Machine: {m['cpu_model']}, {m['cpu_count']} cores ({m['cpus_usable']} usable), "
        f"{m['ram_gib']} GiB RAM, {m['os']}, Python {m['python']}"
        + (f", GPUs: {', '.join(m['tensorflow_gpus']) or 'none'}" if "tensorflow_gpus" in m else "")
        + ".  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + ".",
        "",
    ]
    cv = {**results["protocols"].get("folds", {}), **results["protocols"].get("peers", {})}
    if cv:
        folds = ", ".join(f"u{k}" for k in results["settings"]["folds"])
        lines += [
            f"## Canonical folds ({folds}): every model on the same splits",
            "",
            "Mean ± sample std over folds (fit on uK.base, scored on uK.test). Seconds are wall-clock "
            "on the machine above. *Published* RMSEs are the libraries' own figures, **not measured "
            "here** (other folds and machines).",
            "",
            "| Model | Name | RMSE | MAE | Fit s | Predict s | Published RMSE (not measured here) |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, entry in sorted(cv.items(), key=lambda kv: kv[1]["rmse_mean"]):
            pub = entry.get("published_rmse")
            lines.append(
                f"| {entry['label']} | `{name}` | {_pm(entry['rmse_mean'], entry['rmse_std'])} | "
                f"{_pm(entry['mae_mean'], entry['mae_std'])} | "
                f"{_secs(entry['fit_seconds_mean'], entry['fit_seconds_std'])} | "
                f"{_secs(entry['predict_seconds_mean'], entry['predict_seconds_std'])} | "
                + (f"{pub:.3f} ({entry['published_source']})" if pub else "")
                + " |"
            )
        for name, grid in cv.items():
            if not any("best_params" in fold for fold in grid["per_fold"]):
                continue
            lines += [
                "",
                f"`{name}`: grid search (inner CV on each training fold only), chosen parameters:",
                "",
            ]
            for fold in grid["per_fold"]:
                lines.append(
                    f"- u{fold['fold']}: {fold.get('best_params')} "
                    f"(inner-CV RMSE {fold.get('best_inner_rmse', float('nan')):.4f})"
                )
        unknown = results.get("unknown_ids", {})
        if unknown:
            lines += [
                "",
                "Notes:",
                "",
                "- Test ratings with an id unseen in the training fold: "
                + "; ".join(
                    f"u{k}: {u['unknown_any']} of {u['n_test']} "
                    f"({u['unknown_user']} user, {u['unknown_item']} item)"
                    for k, u in unknown.items()
                )
                + ". Each model predicts them with its own fallback:",
            ]
            by_fallback = {}
            for name, entry in cv.items():
                by_fallback.setdefault(entry["fallback"], []).append(f"`{name}`")
            lines += [f"  - {', '.join(names)}: {text}" for text, names in by_fallback.items()]
        lines += [
            "- GridSearchCV's fit time includes its inner cross-validation and the refit.",
            "- Keras models: train RMSE in the learning curves is Keras's running average over "
            "each epoch's batches, as in the tutorial's plot.",
            "",
        ]
    ablations = results["protocols"].get("ablations")
    if ablations:
        base = ablations.get("abl_defaults", {}).get("rmse_mean")
        lines += [
            "## Ablations: the defaults with one change",
            "",
            "Same folds; each row changes one thing of `EmbeddingMFRegressor()` defaults.",
            "",
            "| Change | RMSE | vs defaults | Fit s |",
            "|---|---|---|---|",
        ]
        for name, entry in sorted(ablations.items(), key=lambda kv: kv[1]["rmse_mean"]):
            delta = f"{entry['rmse_mean'] - base:+.4f}" if base is not None else ""
            lines.append(
                f"| {entry['label']} | {_pm(entry['rmse_mean'], entry['rmse_std'])} | {delta} | "
                f"{_secs(entry['fit_seconds_mean'], entry['fit_seconds_std'])} |"
            )
        lines.append("")
    ranking = results["protocols"].get("ranking")
    if ranking:
        lines += [
            "## Ranking: top-10 recommendations",
            "",
            "Same folds. Each model recommends 10 items to every test user, leaving out the "
            "items the user rated in training; relevant = the user's test ratings >= 4. Means "
            "over the users with a relevant item, then over folds.",
            "",
            "| Model | Name | Precision@10 | Recall@10 | NDCG@10 | Hit rate@10 | RMSE | Fit s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, entry in sorted(ranking.items(), key=lambda kv: -kv[1]["ndcg_at_10_mean"]):
            rmse = _pm(entry["rmse_mean"], entry["rmse_std"]) if "rmse_mean" in entry else "n/a (ranks only)"
            lines.append(
                f"| {entry['label']} | `{name}` | "
                + " | ".join(
                    _pm(entry[f"{m}_at_10_mean"], entry[f"{m}_at_10_std"])
                    for m in ("precision", "recall", "ndcg", "hit_rate")
                )
                + f" | {rmse} | {entry['fit_seconds_mean']:.2f} |"
            )
        lines.append("")
        for name, entry in ranking.items():
            if not any("best_params" in fold for fold in entry["per_fold"]):
                continue
            lines += [
                f"`{name}`: tuned inside fit on a holdout of each training fold (the grid in its label; "
                "fit s counts the search and the final fit), chosen parameters:",
                "",
            ]
            for fold in entry["per_fold"]:
                lines.append(
                    f"- u{fold['fold']}: {_choice(fold['best_params'])} (validation NDCG@10 "
                    f"{fold['best_val_ndcg_at_10']:.4f} on {fold['n_holdout']} held-out ratings; "
                    f"final fit {fold['refit_seconds']:.2f} s)"
                )
            lines.append("")
        sweep = {name: entry for name, entry in ranking.items() if name.startswith(WEIGHT_SWEEP_PREFIX)}
        if sweep:
            lines += [
                "### One network for both: the weight of the sampled pairs",
                "",
                "`negative_ratio=3.0, negative_rating=0.0` and the defaults otherwise, without a selection "
                "term: the weight of the sampled pairs trades RMSE for NDCG@10 (weights fixed beforehand).",
                "",
                "| negative_weight | NDCG@10 | RMSE |",
                "|---|---|---|",
            ]
            for name, entry in sorted(sweep.items(), key=lambda kv: float(kv[0][len(WEIGHT_SWEEP_PREFIX):])):
                lines.append(
                    f"| {name[len(WEIGHT_SWEEP_PREFIX):]} | "
                    f"{_pm(entry['ndcg_at_10_mean'], entry['ndcg_at_10_std'])} | "
                    f"{_pm(entry['rmse_mean'], entry['rmse_std'])} |"
                )
            lines.append("")
    temporal = results["protocols"].get("temporal")
    if temporal:
        lines += [
            "## Temporal split: each user's latest ratings",
            "",
            "`skmfnet.model_selection.TemporalSplit(0.2)` on all the ratings: each user's latest 20% "
            f"(by timestamp) as test, {next(iter(temporal.values()))['n_test']} test ratings.",
            "",
            "| Model | RMSE | MAE | Fit s |",
            "|---|---|---|---|",
        ]
        for entry in temporal.values():
            lines.append(f"| {entry['label']} | {entry['rmse']:.4f} | {entry['mae']:.4f} | {entry['fit_seconds']:.2f} |")
        lines.append("")
    fold_in = results["protocols"].get("fold_in")
    if fold_in:
        lines += _fold_in_section(fold_in)
    tut = results["protocols"].get("tutorial")
    if tut:
        lines += [
            "## Tutorial protocol",
            "",
            f"{tut['split']}.",
            "",
            "| Model | Test RMSE | Test MAE | Fit s | Published |",
            "|---|---|---|---|---|",
        ]
        for name, entry in tut["models"].items():
            pub = entry.get("published_rmse")
            lines.append(
                f"| {entry['label']} | {entry['rmse']:.4f} | {entry['mae']:.4f} | "
                f"{entry['fit_seconds']:.1f} | "
                + (f"{pub:.3f} (printed by the tutorial, not measured here)" if pub else "")
                + " |"
            )
        lines += ["", "Learning curves: `learning_curves.png`.", ""]
    lines += [
        "## Published figures (not measured here)",
        "",
        "| Model | RMSE | Protocol | Source |",
        "|---|---|---|---|",
    ]
    lines += [f"| {p['model']} | {p['rmse']:.3f} | {p['protocol']} | {p['source']} |" for p in published]
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Charts
# ---------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_rmse(results, path):
    cv = {**results["protocols"].get("folds", {}), **results["protocols"].get("peers", {})}
    if not cv:
        return False
    plt = _pyplot()
    entries = sorted(cv.items(), key=lambda kv: -kv[1]["rmse_mean"])
    labels = [e["label"] for _, e in entries]
    means = [e["rmse_mean"] for _, e in entries]
    stds = [e["rmse_std"] or 0.0 for _, e in entries]
    colors = ["tab:blue" if e["protocol"] == "folds" else "tab:gray" for _, e in entries]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(entries) + 2.0))
    y = range(len(entries))
    # points, not bars: the axis does not start at 0
    for i, (m, s, c) in enumerate(zip(means, stds, colors)):
        ax.errorbar(m, i, xerr=s, fmt="o", color=c, capsize=4)
    ax.plot([], [], "o", color="tab:blue", label="skmfnet / scikit-learn (measured)")
    ax.plot([], [], "o", color="tab:gray", label="peer libraries (measured)")
    pubs = [(i, e["published_rmse"]) for i, (_, e) in enumerate(entries) if e.get("published_rmse")]
    if pubs:
        ax.plot([p for _, p in pubs], [i for i, _ in pubs], "kx", label="published (not measured here)")
    fig.legend(loc="lower center", ncol=3, fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    ax.set_yticks(list(y), labels, fontsize=8)
    low = min([m - s for m, s in zip(means, stds)] + [p for _, p in pubs])
    high = max([m + s for m, s in zip(means, stds)] + [p for _, p in pubs])
    ax.set_xlim(max(0.0, low - 0.03), high + 0.03)
    folds = ", ".join(f"u{k}" for k in results["settings"]["folds"])
    ax.set_xlabel(f"test RMSE, mean ± std over folds ({folds})")
    ax.set_title("MovieLens 100K" + (" (--quick)" if results["settings"]["quick"] else ""))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_learning_curves(curves, path, *, published=None, quick=False):
    if not curves:
        return False
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4), squeeze=False)
    for ax, (title, curve) in zip(axes[0], curves.items()):
        epochs = range(1, len(curve["rmse"]) + 1)
        ax.plot(epochs, curve["rmse"], label="train RMSE (running, per epoch)")
        if "val_rmse" in curve:
            ax.plot(epochs, curve["val_rmse"], label="test RMSE")
        if published and curve.get("published_rmse"):
            ax.axhline(curve["published_rmse"], color="k", ls=":", label="tutorial's printed test RMSE")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("RMSE")
        ax.set_title(title + (" (--quick)" if quick else ""), fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
