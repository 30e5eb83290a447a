"""Charts: drawn on the Agg backend, returned and never shown."""

import json
import sys

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from skmfnet import EmbeddingMFRegressor  # noqa: E402
from skmfnet.plotting import plot_benchmark, plot_learning_curve  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def entry(label, protocol, rmse_mean, rmse_std, published=None):
    """One model of a benchmark results.json (benchmarks/suite/report.py's layout)."""
    return {
        "label": label, "protocol": protocol, "rmse_mean": rmse_mean, "rmse_std": rmse_std,
        "mae_mean": rmse_mean * 0.8, "mae_std": rmse_std, "published_rmse": published,
        "published_source": "README" if published else None, "n_folds": 5, "per_fold": [],
    }


RESULTS = {
    "settings": {"quick": False, "folds": [1, 2, 3, 4, 5]},
    "protocols": {
        "folds": {
            "dummy": entry("Global mean", "folds", 1.154, 0.003),
            "bias": entry("BiasBaselineRegressor", "folds", 0.960, 0.004),
            "mf_default": entry("EmbeddingMFRegressor()", "folds", 0.911, None),
        },
        "peers": {"surprise_svd": entry("Surprise SVD", "peers", 0.951, 0.004, published=0.934)},
        "tutorial": {"models": {}},
    },
}


def test_learning_curve_from_a_fitted_estimator(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(n_factors=2, epochs=3, batch_size=32, random_state=0)
    est.fit(X, y, validation_data=(X.iloc[:30], y.iloc[:30]))
    fig = plot_learning_curve(est)
    (ax,) = fig.axes
    train, val = ax.get_lines()
    assert train.get_label() == "train" and val.get_label() == "validation"
    np.testing.assert_allclose(train.get_ydata(), est.history_["rmse"])
    np.testing.assert_allclose(val.get_ydata(), est.history_["val_rmse"])
    assert train.get_xdata().tolist() == [1, 2, 3]
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "RMSE"


def test_learning_curve_without_validation_and_on_given_axes():
    fig, (left, right) = plt.subplots(1, 2)
    assert plot_learning_curve({"rmse": [1.0, 0.9]}, ax=right) is fig
    assert len(right.get_lines()) == 1 and not left.get_lines()


def test_learning_curve_from_a_benchmark_entry():
    curve = {"note": "...", "history": {"rmse": [1.1, 1.0], "val_rmse": [1.2, 1.1]}}
    assert len(plot_learning_curve(curve).axes[0].get_lines()) == 2


@pytest.mark.parametrize(
    "arg, match",
    [(EmbeddingMFRegressor(), "needs a fitted EmbeddingMFRegressor"), ({"loss": [1.0]}, "keys \\['loss'\\]")],
    ids=["unfitted", "no-rmse"],
)
def test_learning_curve_errors(arg, match):
    with pytest.raises(ValueError, match=match):
        plot_learning_curve(arg)


def labels(fig):
    return [t.get_text() for t in fig.axes[0].get_yticklabels()]


def test_benchmark_from_results_dict_and_file(tmp_path):
    fig = plot_benchmark(RESULTS)
    # worst at the bottom (y = 0), best at the top
    assert labels(fig) == ["Global mean", "BiasBaselineRegressor", "Surprise SVD", "EmbeddingMFRegressor()"]
    ax = fig.axes[0]
    crosses = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert len(crosses) == 1 and crosses[0].get_xdata().tolist() == [0.934]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RESULTS))
    assert labels(plot_benchmark(path)) == labels(fig)
    assert labels(plot_benchmark(str(path))) == labels(fig)


def test_benchmark_from_dataframe_on_given_axes():
    frame = pd.DataFrame({"model": ["a", "b"], "rmse_mean": [0.9, 1.0], "rmse_std": [0.01, np.nan]})
    fig, ax = plt.subplots()
    assert plot_benchmark(frame, ax=ax) is fig
    assert labels(fig) == ["b", "a"]
    assert plot_benchmark(frame.drop(columns="rmse_std")).axes


@pytest.mark.parametrize(
    "results, error, match",
    [
        (pd.DataFrame({"name": ["a"], "rmse": [1.0]}), ValueError, "missing \\['model', 'rmse_mean'\\]"),
        ({"protocols": {"tutorial": {}}}, ValueError, "no cross-validated models"),
        ([1, 2], TypeError, "results must be"),
    ],
    ids=["columns", "no-folds", "list"],
)
def test_benchmark_errors(results, error, match):
    with pytest.raises(error, match=match):
        plot_benchmark(results)


def test_missing_matplotlib_names_the_plot_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import fails
    with pytest.raises(ImportError, match='skmfnet\\[plot\\]'):
        plot_learning_curve({"rmse": [1.0]})
    with pytest.raises(ImportError, match='skmfnet\\[plot\\]'):
        plot_benchmark(RESULTS)
