"""TensorFlow distribution strategies for ``EmbeddingMFRegressor(distribution=...)``.

Training on several devices or machines is TensorFlow's job
(:mod:`tf.distribute`); this module only maps the estimator's plain string
parameter to a strategy object.  Strategies are created once per process and
reused: TensorFlow allows only one ``MultiWorkerMirroredStrategy`` per
process, and it must exist before the process runs its first TensorFlow
operation.

Two multi-worker loops: the compiled path's (the plain dot model with
``"lazy_adam"`` or ``"sgd"``) trains the stratified schedule of
:mod:`skmfnet._rowfit` with one worker per block and exchanges only blocks of
rows, through :class:`RowExchange` (the strategy's all-gather collective);
every other network trains through :func:`fit_multi_worker`, which
all-reduces whole-table gradients every step.

Batch size semantics of :func:`fit_multi_worker`: ``batch_size`` is the *global* batch.  Every step, each
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

__all__ = ["DISTRIBUTIONS", "RowExchange", "fit_multi_worker", "get_strategy"]

#: Accepted values of the ``distribution`` parameter (None: no strategy).
DISTRIBUTIONS = ("mirrored", "multi_worker", "parameter_server")

_strategies = {}


def get_strategy(distribution):
    """The process-wide strategy for ``distribution`` (one of :data:`DISTRIBUTIONS`)."""
    if distribution not in _strategies:
        if distribution == "mirrored":
            _strategies[distribution] = tf.distribute.MirroredStrategy()
        elif distribution == "multi_worker":
            example = json.dumps({"cluster": {"worker": ["host1:12345", "host2:12345"]},
                                  "task": {"type": "worker", "index": 0}})
            if "TF_CONFIG" not in os.environ:
                raise ValueError(
                    "distribution='multi_worker' reads the cluster from the TF_CONFIG "
                    f"environment variable, which is not set. Set it on every worker, e.g. {example}"
                )
            config = os.environ["TF_CONFIG"]
            try:
                parsed = json.loads(config)
                workers, task = parsed["cluster"]["worker"], parsed["task"]
                valid = (isinstance(workers, list) and workers and task["type"] in ("worker", "chief")
                         and isinstance(task["index"], int) and 0 <= task["index"] < len(workers))
            except (ValueError, KeyError, TypeError):
                valid = False
            if not valid:
                raise ValueError(
                    "distribution='multi_worker': TF_CONFIG must be a JSON object naming the workers and "
                    f"this process's index among them, e.g. {example}; got {config!r}."
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
        elif distribution == "parameter_server":
            from ._parameter_server import make_strategy

            _strategies[distribution] = make_strategy()
        else:  # pragma: no cover - guarded by the estimator's parameter validation
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS} or None; got {distribution!r}.")
    return _strategies[distribution]


#: Seconds a collective of :class:`RowExchange` waits for the other workers
#: before it fails (a dead worker), instead of hanging.
EXCHANGE_TIMEOUT_S = 600.0


class RowExchange:
    """All-gather of equally shaped tensors across the workers of a ``MultiWorkerMirroredStrategy``.

    The only communication of the compiled path's multi-worker training
    (:func:`skmfnet._rowfit.fit_rows`): blocks of table rows, through the
    strategy's collective ``all_gather`` (one replica per worker), with a
    timeout so that a worker that died makes the others fail.
    """

    _gathers = {}  # per strategy: one traced function per process (retraced per shape)
    #: Bytes this process has contributed to all-gathers (what it sends each
    #: peer), for the scaling benchmark.
    sent_bytes = 0

    def __init__(self, strategy, timeout_seconds=EXCHANGE_TIMEOUT_S):
        self.strategy = strategy
        self.index = int(strategy.cluster_resolver.task_id)
        self.size = int(strategy.num_replicas_in_sync)
        key = (id(strategy), timeout_seconds)
        if key not in self._gathers:
            options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_seconds)

            def replica(x):
                # a tensor of the replica (the captured input alone has no
                # destination device for the collective)
                return tf.distribute.get_replica_context().all_gather(tf.identity(x), axis=0, options=options)

            self._gathers[key] = tf.function(lambda x: strategy.run(replica, args=(x,)))
        self._gather = self._gathers[key]

    def all_gather(self, x):
        """Every worker's ``x``, in worker order (a list of ``size`` tensors)."""
        RowExchange.sent_bytes += int(x.shape.num_elements()) * x.dtype.size
        try:
            gathered = self.strategy.experimental_local_results(self._gather(x))[0]
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
                tf.errors.AbortedError, tf.errors.InternalError) as error:
            raise RuntimeError(
                f"distribution='multi_worker': worker {self.index} of {self.size} could not exchange "
                "rows with the other workers: one of them stopped, was killed or is unreachable. "
                "Restart the fit on every worker. TensorFlow said: "
                f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            ) from error
        return tf.split(gathered, self.size, axis=0)



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
