"""The chief of the parameter-server test: fit with distribution="parameter_server".

Usage: python parameter_server_fit.py OUTPUT.npz [endless]   (TF_CONFIG of the chief set by the caller;
the workers and parameter servers run ``python parameter_server_fit.py --serve``)
With "endless", it trains for ever, printing a line per epoch (the test kills a server).
Writes the chief's predictions on the held-out ratings, the tables' shard
layout (JSON) and the pickled fitted estimator.
"""

import json
import os
import pickle
import sys

import numpy as np

#: Shared with the test: the data of the multi-worker test, its parameters.
from multi_worker_fit import PARAMS, data  # noqa: E402

if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:  # a worker or parameter server: TensorFlow's own server
        import tensorflow as tf

        config = json.loads(os.environ["TF_CONFIG"])
        server = tf.distribute.Server(
            tf.train.ClusterSpec(config["cluster"]), job_name=config["task"]["type"],
            task_index=config["task"]["index"], protocol="grpc", start=True,
        )
        server.join()
    from skmfnet import EmbeddingMFRegressor

    X_train, y_train, X_test, y_test = data()
    if sys.argv[2:] == ["endless"]:
        EmbeddingMFRegressor(**dict(PARAMS, epochs=100_000), verbose=1, distribution="parameter_server").fit(
            X_train, y_train)
    est = EmbeddingMFRegressor(**PARAMS, distribution="parameter_server").fit(X_train, y_train)
    pickled = np.frombuffer(pickle.dumps(est), dtype=np.uint8)
    np.savez(sys.argv[1], prediction=est.predict(X_test), pickled=pickled,
             layout=json.dumps(est.table_shards_), n_users=est.n_users_, n_items=est.n_items_)
