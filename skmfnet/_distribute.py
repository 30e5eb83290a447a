"""TensorFlow distribution strategies for ``EmbeddingMFRegressor(distribution=...)``.

Training on several devices or machines is TensorFlow's job
(:mod:`tf.distribute`); this module only maps the estimator's plain string
parameter to a strategy object.  Strategies are created once per process and
reused: TensorFlow allows only one ``MultiWorkerMirroredStrategy`` per
process, and it must exist before the process runs its first TensorFlow
operation.

Batch size semantics: ``batch_size`` is the *global* batch.  Every step, each
of the ``num_replicas_in_sync`` replicas (devices, over all workers) takes
``batch_size / num_replicas_in_sync`` ratings of it; gradients are averaged
across replicas, so one step is the same update as on one device with the same
global batch.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

__all__ = ["DISTRIBUTIONS", "fit_multi_worker", "get_strategy"]

#: Accepted values of the ``distribution`` parameter (None: no strategy).
DISTRIBUTIONS = ("mirrored", "multi_worker")

_strategies = {}


def get_strategy(distribution):
    """The process-wide strategy for ``distribution`` ("mirrored" or "multi_worker")."""
    if distribution not in _strategies:
        if distribution == "mirrored":
            _strategies[distribution] = tf.distribute.MirroredStrategy()
        elif distribution == "multi_worker":
            if "TF_CONFIG" not in os.environ:
                raise ValueError(
                    "distribution='multi_worker' reads the cluster from the TF_CONFIG "
                    "environment variable, which is not set. Set it on every worker, e.g. "
                    + json.dumps({"cluster": {"worker": ["host1:12345", "host2:12345"]},
                                  "task": {"type": "worker", "index": 0}})
                )
            try:
                _strategies[distribution] = tf.distribute.MultiWorkerMirroredStrategy()
            except RuntimeError as error:  # TensorFlow's context was initialised first
                raise RuntimeError(
                    "distribution='multi_worker' must create TensorFlow's "
                    "MultiWorkerMirroredStrategy before the process runs any other "
                    "TensorFlow operation; fit the estimator first thing in the worker "
                    f"program. TensorFlow said: {error}"
                ) from error
        else:  # pragma: no cover - guarded by the estimator's parameter validation
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS} or None; got {distribution!r}.")
    return _strategies[distribution]



def fit_multi_worker(model, batches, *, epochs, steps_per_epoch, global_batch_size, verbose=0):
    """Train ``model`` on ``batches`` under its ``MultiWorkerMirroredStrategy``.

    Keras 3.15's ``Model.fit`` cannot train under this strategy (its per-step
    metric reduction fails on scalars across workers, tensorflow/tensorflow
    issue 72388), so this is the training loop of the tf.distribute guide:
    every worker runs one replica step on its share of each global batch,
    gradients are summed across replicas by the optimizer, and the loss is
    scaled so that the update is that of the global batch's mean squared error
    plus the per-rating penalties.

    Returns the per-epoch history ``{"loss": [...], "rmse": [...]}``.
    """
    strategy = model.distribute_strategy
    optimizer = model.optimizer
    with strategy.scope():
        optimizer.build(model.trainable_variables)
    iterator = iter(strategy.experimental_distribute_dataset(batches))

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            squared_error = tf.square(tf.squeeze(model(x, training=True), -1) - y)
            loss = tf.nn.compute_average_loss(squared_error, global_batch_size=global_batch_size)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return tf.reduce_sum(squared_error), loss

    @tf.function
    def train_epoch(iterator):
        total_squared_error = tf.constant(0.0)
        total_loss = tf.constant(0.0)
        for _ in tf.range(steps_per_epoch):
            squared_error, loss = strategy.run(replica_step, args=next(iterator))
            total_squared_error += strategy.reduce("SUM", squared_error, axis=None)
            total_loss += strategy.reduce("SUM", loss, axis=None)
        return total_squared_error, total_loss

    history = {"loss": [], "rmse": []}
    progress = keras.utils.Progbar(epochs, verbose=verbose) if verbose else None
    for epoch in range(epochs):
        squared_error, loss = train_epoch(iterator)
        history["loss"].append(float(loss) / steps_per_epoch)
        history["rmse"].append(float(np.sqrt(float(squared_error) / (steps_per_epoch * global_batch_size))))
        if progress is not None:
            progress.update(epoch + 1, [("loss", history["loss"][-1]), ("rmse", history["rmse"][-1])])
    return history
