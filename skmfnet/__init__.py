"""skmfnet: neural matrix factorization as a scikit-learn regressor."""

from ._estimator import TUTORIAL_PARAMS, EmbeddingMFRegressor

__version__ = "0.1.0.dev0"

__all__ = ["EmbeddingMFRegressor", "TUTORIAL_PARAMS", "__version__"]
