"""TensorFlow distribution strategies for ``EmbeddingMFRegressor(distribution=...)``.

Training on several devices or machines is TensorFlow's job
(:mod:`tf.distribute`); this module only maps the estimator's plain string
parameter to a strategy object.  Strategies are created once per process and
reused: TensorFlow allows only one ``MultiWorkerMirroredStrategy`` per
process, and it must exist before the process runs its first TensorFlow
operation.

No engine lives here: the plain dot model's workers run the compiled
kernel's schedule (:mod:`skmfnet._training._schedule`) and exchange blocks
of rows through :class:`RowExchange` (the strategy's all-gather
collective); other networks train through
:func:`skmfnet._training._keras_fit.fit_multi_worker`; the parameter
servers' loop is :mod:`skmfnet._training._parameter_server`.  This module
only turns ``TF_CONFIG`` and the estimator's ``distribution`` into a
strategy, with the timeouts that keep a lost worker from hanging the others.
"""

import json
import os
import socket
import time

import numpy as np
import tensorflow as tf

__all__ = ["DISTRIBUTIONS", "RowExchange", "check_addresses", "cluster_timeout", "get_strategy", "host_and_port",
           "make_parameter_server_strategy", "tensorflow_said", "wait_for_servers"]

#: Accepted values of the ``distribution`` parameter (None: no strategy).
DISTRIBUTIONS = ("mirrored", "multi_worker", "parameter_server")

_strategies = {}
_failed_start = []  # the error of a strategy that could not start (TensorFlow cannot retry in one process)

#: Environment variable: seconds a worker waits for the others, to start and at
#: every exchange, before it fails with an error instead of hanging.
TIMEOUT_VARIABLE = "SKMFNET_CLUSTER_TIMEOUT"
#: Its default.
DEFAULT_TIMEOUT_S = 600.0
#: Its largest value, a week: TensorFlow stores it in milliseconds in integer
#: protobuf fields, which a value such as 1e30 overflows.
MAX_TIMEOUT_S = 7 * 24 * 3600.0


def cluster_timeout():
    """Seconds to wait for the other workers (``SKMFNET_CLUSTER_TIMEOUT``, default 600, at most a week)."""
    value = os.environ.get(TIMEOUT_VARIABLE)
    if value is None:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds <= MAX_TIMEOUT_S:
        raise ValueError(f"{TIMEOUT_VARIABLE} must be a positive number of seconds, at most {MAX_TIMEOUT_S:.0f} "
                         f"(a week); got {value!r}.")
    return seconds


def host_and_port(address):
    """``(host, port)`` of a TF_CONFIG address ``"host:port"`` (``"[::1]:2222"`` too), or None if it is not one.

    The port must be an integer from 1 to 65535.
    """
    host, _, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
    host = host.strip("[]")
    ok = host and port.isascii() and port.isdigit() and 0 < int(port) < 65536  # not int('²')
    return (host, int(port)) if ok else None


def check_addresses(cluster, distribution):
    """Refuse an address of ``cluster`` (TF_CONFIG's) that :func:`host_and_port` does not read.

    Left to TensorFlow, such an address is either refused with TensorFlow's
    own parse error (``InvalidArgumentError``) or never connects, which the
    modes report after ``SKMFNET_CLUSTER_TIMEOUT`` seconds (10 minutes by
    default) as a server that never started.
    """
    for job, addresses in cluster.items():
        for address in addresses if isinstance(addresses, list) else [addresses]:
            if host_and_port(address) is None:
                raise ValueError(
                    f"distribution={distribution!r}: every address of TF_CONFIG's cluster must be "
                    f"'host:port' with a port from 1 to 65535; got {address!r} in {job!r}."
                )


def tensorflow_said(error):
    """``"TensorFlow said: <error type>: <first line>"``, the tail of the errors that wrap a TensorFlow error."""
    lines = str(error).splitlines()
    return f"TensorFlow said: {type(error).__name__}: {lines[0] if lines else ''}"


def _configure_coordination(config, timeout):
    """Configure TensorFlow's coordination service as ``MultiWorkerMirroredStrategy`` would, plus a deadline.

    The strategy configures it itself when it is not configured yet, but with
    TensorFlow's defaults, under which the first worker waits for a worker
    that never starts with no deadline that we could observe (inside the
    strategy's constructor, deaf to SIGTERM).  Here every worker registers at
    a barrier that times out after ``timeout`` seconds, so that the
    constructor raises ``DeadlineExceededError`` on every worker that did
    start.  TensorFlow's configuration call and proto are not public API: if
    they move, the strategy configures the service its own way (no deadline)
    rather than failing.
    """
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    try:
        from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    except ImportError:  # pragma: no cover - another TensorFlow layout
        return
    ctx = context.context()
    if ctx.coordination_service is not None:
        return
    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(config["cluster"][job]))
            for job in ("chief", "worker") if config["cluster"].get(job)]
    ctx.configure_coordination_service(
        service_type="standalone", service_leader=multi_worker_util.coordination_leader(config["cluster"]),
        coordinated_jobs=jobs, cluster_register_timeout_in_ms=int(timeout * 1000),
    )
    ctx.coordination_service.cluster_register_with_barrier = True


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
            check_addresses(parsed["cluster"], distribution)
            timeout = cluster_timeout()
            if _failed_start:
                raise RuntimeError(_failed_start[0])
            try:
                _configure_coordination(parsed, timeout)
                _strategies[distribution] = tf.distribute.MultiWorkerMirroredStrategy()
            except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError) as error:  # a worker never joined
                _failed_start.append(
                    f"distribution='multi_worker': not every worker of TF_CONFIG started within {timeout:g} s "
                    f"({TIMEOUT_VARIABLE}); this is worker {parsed['task']['index']} of "
                    f"{parsed['cluster']['worker']}. Start every worker named in TF_CONFIG, then restart this "
                    f"process (TensorFlow cannot set up a cluster twice in one process). {tensorflow_said(error)}"
                )
                raise RuntimeError(_failed_start[0]) from error
            except RuntimeError as error:  # TensorFlow's context was initialised first
                raise RuntimeError(
                    "distribution='multi_worker' must create TensorFlow's "
                    "MultiWorkerMirroredStrategy before the process runs any other "
                    "TensorFlow operation; fit the estimator first thing in the worker "
                    f"program. TensorFlow said: {error}"
                ) from error
        elif distribution == "parameter_server":
            _strategies[distribution] = make_parameter_server_strategy()
        else:  # pragma: no cover - guarded by the estimator's parameter validation
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS} or None; got {distribution!r}.")
    return _strategies[distribution]


class RowExchange:
    """All-gather of equally shaped tensors across the workers of a ``MultiWorkerMirroredStrategy``.

    The only communication of the compiled path's multi-worker training
    (:func:`skmfnet._training._schedule.fit_rows`): blocks of table rows, through the
    strategy's collective ``all_gather`` (one replica per worker), with a
    timeout (:func:`cluster_timeout`) so that a worker that died makes the others fail.
    """

    _gathers = {}  # per strategy: one traced function per process (retraced per shape)
    #: Bytes this process has contributed to all-gathers (what it sends each
    #: peer), for the scaling benchmark.
    sent_bytes = 0

    def __init__(self, strategy, timeout_seconds=None):
        timeout_seconds = cluster_timeout() if timeout_seconds is None else timeout_seconds
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
        """Every worker's ``x`` (a NumPy array), in worker order: a list of ``size`` arrays, views of one."""
        RowExchange.sent_bytes += x.nbytes
        try:
            gathered = self.strategy.experimental_local_results(self._gather(tf.constant(x)))[0].numpy()
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
                tf.errors.AbortedError, tf.errors.InternalError) as error:
            raise RuntimeError(
                f"distribution='multi_worker': worker {self.index} of {self.size} could not exchange "
                "rows with the other workers: one of them stopped, was killed or is unreachable. "
                f"Restart the fit on every worker. {tensorflow_said(error)}"
            ) from error
        return np.split(gathered, self.size)


def make_parameter_server_strategy():
    """The ``ParameterServerStrategy`` of the cluster in ``TF_CONFIG``, for its chief.

    Every table is split into as many shards as there are parameter servers.
    """
    config = os.environ.get("TF_CONFIG")
    try:
        parsed = json.loads(config) if config else None
        cluster, task = parsed["cluster"], parsed["task"]
        n_ps, n_workers, task_type = len(cluster.get("ps", [])), len(cluster.get("worker", [])), task["type"]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(
            "distribution='parameter_server' reads the cluster from the TF_CONFIG environment variable: "
            'a JSON object {"cluster": {"chief": [...], "worker": [...], "ps": [...]}, '
            f'"task": {{"type": "chief", "index": 0}}}}; got {config!r}.'
        ) from error
    if task_type != "chief" or n_ps < 1 or n_workers < 1:
        raise ValueError(
            "distribution='parameter_server' fits in the chief of a cluster with at least one worker "
            "and one parameter server (the others run tf.distribute.Server(...).join()); got task type "
            f"{task_type!r}, {n_workers} worker(s), {n_ps} parameter server(s) in TF_CONFIG."
        )
    check_addresses(cluster, "parameter_server")
    wait_for_servers(cluster, cluster_timeout())
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    partitioner = tf.distribute.experimental.partitioners.FixedShardsPartitioner(num_shards=n_ps)
    return tf.distribute.experimental.ParameterServerStrategy(resolver, variable_partitioner=partitioner)


def wait_for_servers(cluster, timeout):
    """Wait until every worker and parameter server of ``cluster`` accepts connections, ``timeout`` s at most."""
    waiting = [address for job in ("worker", "ps") for address in cluster.get(job, [])]
    deadline = time.monotonic() + timeout
    while True:
        for address in list(waiting):
            try:  # the addresses passed check_addresses
                with socket.create_connection(host_and_port(address), timeout=1.0):
                    waiting.remove(address)
            except OSError:
                pass
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"distribution='parameter_server': {waiting} of TF_CONFIG did not accept connections within "
                f"{timeout:g} s ({TIMEOUT_VARIABLE}). Start every worker and parameter server named in "
                "TF_CONFIG (each runs tf.distribute.Server(...).join()) before the chief fits."
            )
        time.sleep(0.2)
