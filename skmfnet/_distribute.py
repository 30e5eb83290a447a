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

import tensorflow as tf

__all__ = ["DISTRIBUTIONS", "get_strategy", "skip_keras_symbolic_build"]

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


def skip_keras_symbolic_build(model, batch):
    """Build metrics and optimizer state from a local batch, before ``fit``.

    Keras 3.15's ``fit`` under a strategy first averages one distributed batch
    across replicas (``Trainer._maybe_symbolic_build``), which fails under
    ``MultiWorkerMirroredStrategy`` ("Attempt to convert a value (PerReplica
    ...)"), and consumes that batch.  The same build is done here, in the
    strategy's scope, from a batch of the local (not yet distributed) dataset;
    the model's own hook is then disabled.  Private Keras API: revisit when
    upgrading Keras.
    """
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
