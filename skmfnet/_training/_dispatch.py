"""Which engine trains a fit, on how many threads, with which "auto" candidates: decided once, by :func:`plan`.

The engines, by what the parameters ask for:

``"kernel"``
    The plain dot model (``interaction="dot"``, ``regularization="batch"``,
    ``loss="squared_error"``, an optimizer of :data:`COMPILED_OPTIMIZERS`,
    no side information or implicit feedback), on one machine or with
    ``distribution="multi_worker"``: the compiled kernel and its schedule
    (:mod:`skmfnet._training._schedule`).
``"parameter_server"``
    ``distribution="parameter_server"`` (the plain dot model only; the
    estimator refuses the rest): :mod:`skmfnet._training._parameter_server`.
``"keras_multi_worker"``
    Other networks under ``distribution="multi_worker"``:
    :func:`skmfnet._training._keras_fit.fit_multi_worker`.
``"gibbs"``
    ``optimizer="gibbs"`` (the dot model, side information allowed, on one
    machine; the estimator refuses the rest): Gibbs sampling, its samples averaged
    (:mod:`skmfnet._training._gibbs`).
``"keras"``
    Everything else: ``keras.Model.fit`` (:func:`skmfnet._training._keras_fit.fit_keras`).

The estimator records the decision as ``engine_``, as scikit-learn's
``Ridge`` records ``solver_``.

Threads (:func:`resolve_threads`): ``n_jobs=None`` uses one thread below
:data:`AUTO_PARALLEL_RATINGS` ratings (an epoch takes milliseconds there)
and every core the process may use from there on; a negative ``n_jobs``
counts from that number as joblib does.  The number of cores a process may
use is :func:`joblib.cpu_count`, lowered to ``OMP_NUM_THREADS`` where that
is set: joblib sets it in its workers (``GridSearchCV(n_jobs=2)`` on two
cores gives each worker one), as OpenMP libraries read it, so a search's
workers do not start more threads than the cores they share.
"""

import os
from typing import NamedTuple

import joblib

from ._auto import resolve_auto

__all__ = ["AUTO_PARALLEL_RATINGS", "COMPILED_OPTIMIZERS", "ENGINES", "Plan", "compiled_path_blockers", "plan",
           "resolve_threads", "usable_cores"]

#: The optimizers the kernel implements, by name: decided before any Keras
#: optimizer exists (their rules: :mod:`skmfnet._training._rules`, whose
#: ``supports`` a test keeps in step with these names).
COMPILED_OPTIMIZERS = ("lazy_adam", "adagrad", "sgd")

#: The engines :func:`plan` chooses from (module docstring).
ENGINES = ("kernel", "parameter_server", "keras_multi_worker", "gibbs", "keras")

#: ``n_jobs=None`` trains on every usable core from this many ratings on
#: (below it an epoch takes milliseconds and one thread is as fast).
AUTO_PARALLEL_RATINGS = 1 << 19


class Plan(NamedTuple):
    """What :func:`plan` decided for a fit."""

    #: one of :data:`ENGINES`
    engine: str
    #: threads of the kernel (1 for the other engines)
    n_threads: int
    #: ``{"alpha": ..., "learning_rate": ...}`` pairs to train, in order (see :mod:`skmfnet._training._auto`)
    candidates: list
    #: whether to stop early on held-out ratings
    early_stopping: bool
    #: ``distribution="multi_worker"``: the kernel's workers exchange blocks of rows
    multi_worker: bool
    #: ``"gibbs"``: (factors per sample, samples averaged, standard deviation of the initial factors,
    #: side information as (side, n_labels, width): filled in by the estimator once its encoders exist)
    gibbs: tuple = None


def compiled_path_blockers(params):
    """The parameters in ``params`` that keep a fit off the compiled kernel, as "name=value".

    ``distribution="parameter_server"`` is not one of them: its loop trains
    the same plain dot model (with the servers' own engine).
    """
    return [
        f"{name}={params[name]!r}"
        for name, ok in [
            ("interaction", params["interaction"] == "dot"),
            ("regularization", params["regularization"] == "batch"),
            ("loss", params["loss"] == "squared_error"),
            ("optimizer", params["optimizer"] in COMPILED_OPTIMIZERS),
            ("user_features", not params["user_features"]),
            ("item_features", not params["item_features"]),
            ("implicit", not params["implicit"]),
            ("time_column", params.get("time_column") is None),
            ("distribution", params["distribution"] in (None, "multi_worker", "parameter_server")),
        ]
        if not ok
    ]


def plan(params, n_ratings):
    """The :class:`Plan` of a fit of ``n_ratings`` training ratings with the estimator's ``params``."""
    distribution = params["distribution"]
    if params["optimizer"] == "gibbs":  # nothing to tune or stop (alpha_, learning_rate_: recorded, unused)
        candidates, _ = resolve_auto(params, n_ratings, compiled_path=False)
        std = 0.01 if params["init_std"] is None else params["init_std"]
        return Plan("gibbs", 1, candidates, False, False, (params["n_factors"], params["n_estimators"], std, ()))
    if distribution == "parameter_server":
        engine = "parameter_server"
    elif not compiled_path_blockers(params):
        engine = "kernel"
    elif distribution == "multi_worker":
        engine = "keras_multi_worker"
    else:
        engine = "keras"
    candidates, early_stopping = resolve_auto(params, n_ratings, compiled_path=engine == "kernel")
    n_threads = resolve_threads(params["n_jobs"], n_ratings) if engine == "kernel" else 1
    return Plan(engine, n_threads, candidates, early_stopping, distribution == "multi_worker")


def usable_cores():
    """Cores this process may use: :func:`joblib.cpu_count`, at most ``OMP_NUM_THREADS`` where that is set."""
    cores = joblib.cpu_count()
    try:
        limit = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return cores
    return max(1, min(cores, limit))


def resolve_threads(n_jobs, n_ratings):
    """Threads of a fit of ``n_ratings`` (module docstring)."""
    cores = usable_cores()
    if n_jobs is None:
        return cores if n_ratings >= AUTO_PARALLEL_RATINGS else 1
    if n_jobs < 0:
        return max(1, cores + 1 + n_jobs)
    return int(n_jobs)
