"""One worker of the multi-worker test: fit with distribution="multi_worker".

Usage: python multi_worker_fit.py OUTPUT.npz [weighted|early_stopping|endless]   (TF_CONFIG set by the caller)
With "weighted", the fit gets ``sample_weight=weights()``; with
"early_stopping", ``EARLY_STOPPING_PARAMS``; with "endless",
it trains for ever, printing a line per epoch (the test kills a worker).
Writes the worker's final weights, its predictions on the held-out ratings
and the pickled fitted estimator.
"""

import pickle
import sys

import numpy as np

from skmfnet import EmbeddingMFRegressor
from skmfnet.datasets import make_ratings

# Shared with the test: same data, seed and global batch on every worker.
DATA = dict(n_users=300, n_items=200, n_ratings=8000, n_factors=3, noise=0.3, random_state=0)
PARAMS = dict(n_factors=8, epochs=10, batch_size=256, learning_rate=0.02, random_state=0)
#: With sample weights: Keras's Adam, so that the single-process reference
#: trains through keras.Model.fit on the same weighted batches as the workers
#: (the compiled path weights each rating's terms instead).
WEIGHTED_PARAMS = dict(PARAMS, optimizer="adam")
#: Early stopping (validation after every epoch): the compiled path only.
EARLY_STOPPING_PARAMS = dict(PARAMS, early_stopping=True, n_iter_no_change=1, epochs=30)


def data():
    X, y = make_ratings(**DATA, return_X_y=True)
    return X[:6000], y[:6000], X[6000:], y[6000:]


def weights():
    """Sample weights of the training ratings: the users of even id count 5 times."""
    X_train, _, _, _ = data()
    return np.where(X_train["user_id"].to_numpy() % 2 == 0, 5.0, 1.0)


if __name__ == "__main__":
    X_train, y_train, X_test, y_test = data()
    weighted = sys.argv[2:] == ["weighted"]
    params = {"weighted": WEIGHTED_PARAMS, "early_stopping": EARLY_STOPPING_PARAMS}.get("".join(sys.argv[2:]), PARAMS)
    if sys.argv[2:] == ["endless"]:
        EmbeddingMFRegressor(**dict(PARAMS, epochs=100_000), verbose=1, distribution="multi_worker").fit(
            X_train, y_train)
    est = EmbeddingMFRegressor(**params, distribution="multi_worker")
    est.fit(X_train, y_train, sample_weight=weights() if weighted else None)
    weights = {f"w{k}": w for k, w in enumerate(est.model_.get_weights())}
    pickled = np.frombuffer(pickle.dumps(est), dtype=np.uint8)
    np.savez(sys.argv[1], prediction=est.predict(X_test), pickled=pickled, epochs=len(est.history_["rmse"]),
             **weights)
