"""skmfnet: neural matrix factorization as a scikit-learn regressor.

The estimators are imported lazily, so that ``skmfnet.datasets`` and the
baselines can be used without paying for TensorFlow's import.
"""

import os

__version__ = "0.1.0.dev0"

# TensorFlow's C++ start-up log (oneDNN notes, "Could not find cuda drivers",
# "failed call to cuInit" on every machine without a GPU) is off unless the
# user chose a level: set TF_CPP_MIN_LOG_LEVEL yourself (0: everything) to
# see it.  It must be set before TensorFlow's import, hence here, once.
# Errors that matter reach the caller as Python exceptions either way.  The
# lines TensorFlow writes before its logging starts are hidden where the
# package imports it (skmfnet._quiet), unless the user chose a level.
_TF_LOG_LEVEL_CHOSEN = "TF_CPP_MIN_LOG_LEVEL" in os.environ
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__all__ = [
    "BiasBaselineRegressor",
    "EmbeddingMFRegressor",
    "InvalidModelFileError",
    "MostPopularRanker",
    "TUTORIAL_PARAMS",
    "__version__",
    "load_estimator",
    "recommend",
    "save_estimator",
]

_LAZY = {
    "BiasBaselineRegressor": "._baselines",
    "EmbeddingMFRegressor": "._estimator",
    "MostPopularRanker": "._baselines",
    "TUTORIAL_PARAMS": "._estimator",
    "recommend": "._recommend",
    "save_estimator": "._persistence",
    "load_estimator": "._persistence",
    "InvalidModelFileError": "._persistence",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        from ._quiet import tensorflow_start_up_hidden

        with tensorflow_start_up_hidden():  # where the estimator's module imports TensorFlow
            module = importlib.import_module(_LAZY[name], __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
