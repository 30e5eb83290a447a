"""Everything that turns encoded rows into trained tables: :func:`plan`, then :func:`train`.

The data reaching this package are already encoded (int32 network rows,
see :mod:`skmfnet._preparation`) and centred on ``mu``; what leaves it is a
fitted ``keras.Model`` and its per-epoch history.  The estimator decides
nothing about training beyond calling :func:`plan` once, then
:func:`compile_network` and :func:`train` with the plan.

Modules (arrows point one way: ``_rules`` -> ``_dispatch``, ``_kernel``;
``_schedule`` -> ``_kernel``, ``_rules``; ``_parameter_server`` ->
``_schedule``, ``_cluster``; ``_cluster`` imports no engine):

``_dispatch``
    :func:`plan`: engine, threads, "auto" candidates, decided once (no
    TensorFlow: this package imports the engines when :func:`train` runs).
``_auto``
    what ``alpha="auto"``, ``learning_rate="auto"`` and ``early_stopping="auto"`` mean.
``_kernel`` (compiled, Cython)
    the dot model's batch step and its rules: the one implementation
    (``_kernel_x86_64_v3``: the same source built for AVX2 CPUs, which
    ``_schedule`` runs where the CPU has those features).
``_rules``
    the Keras optimizers the kernel implements, and the dot model's tables in a Keras model.
``_schedule``
    blocks, rounds, parts and threads around the kernel; validation and the end of an epoch.
``_keras_fit``
    ``keras.Model.fit`` and the multi-worker loop of the other networks.
``_cluster``
    strategies, ``TF_CONFIG``, timeouts, the row exchange of multi-worker fits.
``_parameter_server``
    tables sharded over parameter servers.
``_gibbs``
    ``optimizer="gibbs"``: Gibbs sampling of the dot model, its samples averaged.
``_gibbs_rows`` (compiled, Cython)
    the sampler's loops: each side's rows drawn from their Gaussians, an implicit term's rows each given the others.
"""

import numpy as np

from ._dispatch import Plan, compiled_path_blockers, plan

__all__ = ["Plan", "TrainingDivergedError", "compile_network", "compiled_path_blockers", "plan", "train"]


def __getattr__(name):
    # TensorFlow is imported by the engines, not by this package: reading a
    # model file (its ``engine``, see skmfnet._persistence) needs _dispatch only
    if name == "compile_network":
        from ._keras_fit import compile_network

        return compile_network
    if name == "TrainingDivergedError":
        from ._schedule import TrainingDivergedError

        return TrainingDivergedError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def train(model, X, y, *, plan, epochs, batch_size, seed, alpha, alpha_bias, negatives=(0, 0.0, 0.0),
          selection=None, weights=None, validation=None, callbacks=(), verbose=0, prepared=None):
    """Train a compiled network on encoded rows ``X`` and centred ratings ``y`` with the engine of ``plan``.

    Parameters
    ----------
    plan : Plan
        From :func:`plan`.
    negatives : tuple (n_per_batch, centred_rating, weight)
        Sampled unobserved pairs per batch (kernel only; see
        :func:`skmfnet._training._schedule.fit_rows`).
    selection : list [S, T] of float32 ndarrays, or None
        Selection tables trained by the sampled pairs, updated in place (kernel only).
    weights : ndarray of shape (n,) or None
        Per-rating weights, mean 1: the kernel multiplies each rating's
        terms in its batch by them; the other engines draw each epoch's
        ratings in proportion to them (:func:`training_batches`).
    validation : tuple (X_val, y_val) or None
        Encoded, centred ratings evaluated after each epoch.
    callbacks : list of keras.callbacks.Callback
    prepared : dict or None
        Shared by kernel fits on the same ratings (see :func:`fit_rows`).

    Returns
    -------
    history : dict of list of float
        Per epoch ``loss`` and ``rmse``, plus ``val_loss`` and ``val_rmse``
        with validation.
    shards : dict or None
        With ``"parameter_server"``, the ``(device, rows)`` of each table's shards.
    """
    from ._cluster import RowExchange, get_strategy
    from ._keras_fit import fit_keras, fit_multi_worker, steps_per_epoch, training_batches
    from ._schedule import fit_rows

    if seed is None:
        seed = int(np.random.randint(2**31 - 1))
    if plan.engine != "kernel" and (negatives[0] or selection is not None):
        raise ValueError("sampled unobserved pairs and selection tables train on the compiled kernel only")
    if plan.engine == "gibbs":
        from ._gibbs import fit_gibbs

        n_factors, n_samples, init_std, features = plan.gibbs
        return fit_gibbs(model, X, y, n_factors=n_factors, n_samples=n_samples, init_std=init_std, sweeps=epochs,
                         seed=seed, features=features, weights=weights, validation=validation,
                         verbose=verbose), None
    if plan.engine == "parameter_server":
        from ._parameter_server import fit_parameter_server

        return fit_parameter_server(
            model, X, y, strategy=get_strategy("parameter_server"), optimizer=model.optimizer, epochs=epochs,
            batch_size=batch_size, alpha=alpha, alpha_bias=alpha_bias, seed=seed, weights=weights,
            validation=validation, callbacks=callbacks, verbose=verbose,
        )
    if plan.engine == "keras_multi_worker":
        history = fit_multi_worker(
            model,
            training_batches(X, y, batch_size=batch_size, epochs=epochs, seed=seed, weights=weights),
            epochs=epochs,
            steps_per_epoch=steps_per_epoch(len(y), batch_size),
            global_batch_size=min(batch_size, len(y)),
            verbose=verbose,
        )
        return history, None
    if plan.engine == "kernel":
        history = fit_rows(
            model, X, y, optimizer=model.optimizer, epochs=epochs, batch_size=batch_size, alpha=alpha,
            alpha_bias=alpha_bias, seed=seed, negatives=negatives, selection=selection, weights=weights,
            validation=validation, callbacks=callbacks, verbose=verbose, n_threads=plan.n_threads,
            exchange=RowExchange(get_strategy("multi_worker")) if plan.multi_worker else None, prepared=prepared,
        )
        return history, None
    history = fit_keras(model, X, y, epochs=epochs, batch_size=batch_size, seed=seed, weights=weights,
                        validation=validation, callbacks=callbacks, verbose=verbose)
    return history, None
