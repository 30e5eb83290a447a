"""Charts: learning curves of a fitted network, RMSE of a benchmark run.

matplotlib is optional (``pip install "skmfnet[plot]"``); it is imported when
a function is called.  Every function draws on ``ax`` when given, else on a
new figure, and returns the :class:`~matplotlib.figure.Figure` without showing
it: call ``fig.savefig(...)`` or ``plt.show()`` yourself.
"""

import json
import os

import numpy as np
import pandas as pd

__all__ = ["plot_benchmark", "plot_learning_curve"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "skmfnet.plotting needs matplotlib, which is not installed: "
            'pip install "skmfnet[plot]" (or pip install matplotlib).'
        ) from exc
    return plt


def _figure_and_axes(ax, figsize):
    if ax is None:
        fig, ax = _pyplot().subplots(figsize=figsize)
        return fig, ax
    _pyplot()  # same error message when matplotlib is missing
    return ax.figure, ax


def plot_learning_curve(estimator, ax=None):
    """Plot training and validation RMSE per epoch (the tutorial's plot).

    Draws ``history_["rmse"]`` (training RMSE, Keras's running average over
    each epoch's batches) and, when present, ``history_["val_rmse"]`` (RMSE on
    the validation ratings: ``validation_data`` or the share held out for
    early stopping).

    Parameters
    ----------
    estimator : fitted EmbeddingMFRegressor or dict
        An estimator with ``history_``, a history dict with the same keys, or
        a dict holding one under ``"history"`` (e.g. an entry of the
        ``learning_curves`` of a benchmark's ``results.json``).
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; None makes a new figure.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure drawn on (not shown).

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If there is no history with an ``"rmse"`` entry.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmfnet.plotting import plot_learning_curve
    >>> fig = plot_learning_curve({"rmse": [1.1, 0.95, 0.9], "val_rmse": [1.0, 0.97, 0.96]})
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['train', 'validation']
    """
    if isinstance(estimator, dict):
        # a benchmark's learning-curve entry nests the history under "history"
        history = estimator["history"] if isinstance(estimator.get("history"), dict) else estimator
    else:
        history = getattr(estimator, "history_", None)
    if not history or "rmse" not in history:
        raise ValueError(
            f"plot_learning_curve needs a fitted EmbeddingMFRegressor (with history_) or a "
            f"history dict with an 'rmse' entry; got {type(estimator).__name__}"
            + ("" if history is None else f" with keys {sorted(history)}")
            + "."
        )
    fig, ax = _figure_and_axes(ax, (6, 4))
    from matplotlib.ticker import MaxNLocator

    epochs = np.arange(1, len(history["rmse"]) + 1)
    ax.plot(epochs, history["rmse"], marker="o", label="train")
    if history.get("val_rmse"):
        ax.plot(np.arange(1, len(history["val_rmse"]) + 1), history["val_rmse"], marker="o", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("RMSE")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def _benchmark_frame(results):
    """DataFrame (model, rmse_mean, rmse_std[, published_rmse, group]) from any accepted input."""
    if isinstance(results, (str, os.PathLike)):
        with open(results, encoding="utf-8") as f:
            results = json.load(f)
    if isinstance(results, pd.DataFrame):
        missing = {"model", "rmse_mean"} - set(results.columns)
        if missing:
            raise ValueError(
                f"results as a DataFrame needs the columns model, rmse_mean (and rmse_std); "
                f"missing {sorted(missing)}."
            )
        frame = results.copy()
    elif isinstance(results, dict) and "protocols" in results:
        protocols = results["protocols"]
        rows = []
        for protocol in ("folds", "peers"):
            for name, entry in protocols.get(protocol, {}).items():
                rows.append(
                    {
                        "model": entry.get("label", name),
                        "rmse_mean": entry["rmse_mean"],
                        "rmse_std": entry.get("rmse_std"),
                        "published_rmse": entry.get("published_rmse"),
                        "group": protocol,
                    }
                )
        if not rows:
            raise ValueError(
                "results has no cross-validated models (protocols 'folds' or 'peers'); run the "
                "benchmark with --protocols folds."
            )
        frame = pd.DataFrame(rows)
    else:
        raise TypeError(
            "results must be a benchmark results dict (results.json), the path of that file, or a "
            f"DataFrame with columns model, rmse_mean, rmse_std; got {type(results).__name__}."
        )
    for column in ("rmse_std", "published_rmse"):
        if column not in frame:
            frame[column] = np.nan
    frame["rmse_std"] = pd.to_numeric(frame["rmse_std"]).fillna(0.0)
    frame["published_rmse"] = pd.to_numeric(frame["published_rmse"])
    if "group" not in frame:
        frame["group"] = "folds"
    return frame.sort_values("rmse_mean", ascending=False, kind="stable").reset_index(drop=True)


def plot_benchmark(results, ax=None):
    """Plot test RMSE by model, mean with one standard deviation over folds.

    Models are sorted from best (top) to worst (bottom); the axis does not
    start at zero, so they are drawn as points with error bars rather than
    bars.  Published figures, when the results carry them, are drawn as
    crosses: they were not measured in the run.

    Parameters
    ----------
    results : dict, str, path-like or DataFrame
        The contents of a benchmark's ``results.json`` (``python
        benchmarks/run.py`` writes it), its path, or a DataFrame with columns
        ``model``, ``rmse_mean`` and ``rmse_std`` (optional
        ``published_rmse``).
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; None makes a new figure.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure drawn on (not shown).

    Raises
    ------
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> from skmfnet.plotting import plot_benchmark
    >>> results = pd.DataFrame({"model": ["global mean", "bias", "MF"],
    ...                         "rmse_mean": [1.15, 0.96, 0.91], "rmse_std": [0.01, 0.01, 0.01]})
    >>> fig = plot_benchmark(results)
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['global mean', 'bias', 'MF']
    """
    frame = _benchmark_frame(results)
    new_figure = ax is None
    fig, ax = _figure_and_axes(ax, (8, 0.45 * len(frame) + 1.6))
    colors = {"folds": "tab:blue", "peers": "tab:gray"}
    y = np.arange(len(frame))
    for group, part in frame.groupby("group", sort=False):
        label = "skmfnet / scikit-learn" if group == "folds" else "peer libraries"
        ax.errorbar(
            part["rmse_mean"], part.index, xerr=part["rmse_std"], fmt="o", capsize=4,
            color=colors.get(group), label=label if frame["group"].nunique() > 1 else None,
        )
    published = frame["published_rmse"].notna()
    if published.any():
        ax.plot(frame.loc[published, "published_rmse"], y[published], "kx", label="published (not measured)")
    ax.set_yticks(y, frame["model"].astype(str))
    ax.set_xlabel("test RMSE (mean ± std over folds)")
    ax.grid(axis="x", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    if new_figure:
        fig.tight_layout()
    return fig
