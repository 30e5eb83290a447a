"""The compiled kernel and its schedule: the plain dot model with optimizer="lazy_adam", "adagrad" or "sgd" (skmfnet._training)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from skmfnet import EmbeddingMFRegressor
from skmfnet._estimator import _OPTIMIZERS
from skmfnet._network import build_network
from skmfnet._optimizers import LazyAdam
from skmfnet._training._keras_fit import compile_network, steps_per_epoch as _steps_per_epoch, training_batches as _training_batches
from skmfnet._training._rules import COMPILED_OPTIMIZERS, supports
from skmfnet._training._schedule import fit_rows
from skmfnet.datasets import make_ratings

LAZY = dict(n_factors=4, epochs=3, batch_size=64, optimizer="lazy_adam", random_state=0)


@pytest.fixture(scope="module")
def rows():
    X, y = make_ratings(n_users=60, n_items=40, n_ratings=1500, return_X_y=True, random_state=0)
    Xr = np.column_stack([X.user_id.factorize()[0] + 1, X.item_id.factorize()[0] + 1]).astype("int32")
    return Xr, (y - y.mean()).astype("float32")


OPTIMIZERS = {
    "lazy_adam": lambda: LazyAdam(learning_rate=0.01),
    "sgd": lambda: keras.optimizers.SGD(learning_rate=2.0),
    # Keras's dense Adagrad: its accumulators start at 0.1 (not zero) and
    # add the square of each occurrence's gradient (rows repeat in a batch)
    "adagrad": lambda: keras.optimizers.Adagrad(learning_rate=0.1),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_same_trajectory_as_keras_fit(rows, name):
    X, y = rows
    params = dict(n_factors=4, alpha=0.1, alpha_bias=0.01, init_std=0.1, seed=0)
    keras_model = build_network(X[:, 0].max(), X[:, 1].max(), **params)
    compiled = build_network(X[:, 0].max(), X[:, 1].max(), **params)
    keras_model.compile(
        optimizer=OPTIMIZERS[name](),
        loss="mean_squared_error",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    expected = keras_model.fit(
        _training_batches(X, y, batch_size=64, epochs=3, seed=5),
        epochs=3, steps_per_epoch=_steps_per_epoch(len(y), 64), verbose=0, shuffle=False,
    ).history
    history = fit_rows(compiled, X, y, optimizer=OPTIMIZERS[name](), epochs=3, batch_size=64,
                       alpha=0.1, alpha_bias=0.01, seed=5)
    assert history["loss"][-1] < history["loss"][0]  # it learns: the comparison is not of two idle runs
    for key in ("loss", "rmse"):
        np.testing.assert_allclose(history[key], expected[key], rtol=1e-5)
    for a, b in zip(keras_model.weights, compiled.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_estimator_takes_the_compiled_path_only_for_the_plain_dot_model(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**LAZY).fit(X, y)
    assert est.engine_ == "kernel"
    assert set(est.history_) == {"loss", "rmse"} and len(est.history_["rmse"]) == 3
    # an integer learning rate is a valid Real (Keras alone would refuse it)
    assert EmbeddingMFRegressor(**{**LAZY, "optimizer": "sgd", "learning_rate": 2}).fit(X, y).engine_ == "kernel"
    assert EmbeddingMFRegressor(**{**LAZY, "optimizer": "adagrad", "learning_rate": 0.1}).fit(X, y).engine_ == "kernel"
    for other in (dict(optimizer="adam"), dict(optimizer="rmsprop"), dict(loss="rmse"), dict(implicit=True),
                  dict(regularization="table"), dict(interaction="concat")):
        assert EmbeddingMFRegressor(**{**LAZY, **other}).fit(X, y).engine_ == "keras"


def test_compiled_path_is_reproducible_and_pickles(tiny_ratings):
    import pickle

    X, y = tiny_ratings
    a = EmbeddingMFRegressor(**LAZY).fit(X, y)
    b = EmbeddingMFRegressor(**LAZY).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(a)).predict(X), a.predict(X))


def test_compiled_path_validation_and_early_stopping(tiny_ratings):
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**LAZY).fit(X[:100], y[:100], validation_data=(X[100:], y[100:]))
    assert len(est.history_["val_rmse"]) == 3 and np.all(np.isfinite(est.history_["val_loss"]))
    # a large step on few ratings overfits at once: patience 1 stops early, best weights back
    est = EmbeddingMFRegressor(
        **{**LAZY, "epochs": 40, "learning_rate": 0.5, "alpha": 0.0, "n_factors": 8},
        early_stopping=True, n_iter_no_change=1,
    ).fit(X, y)
    val = est.history_["val_rmse"]
    assert len(val) < 40
    best = int(np.argmin(val))
    assert len(val) == best + 2  # stopped one epoch after the best


@pytest.mark.parametrize("name", ["lazy_adam", "adagrad"])
def test_optimizer_state_matches_keras_fit(rows, name):
    X, y = rows
    params = dict(n_factors=4, alpha=0.1, alpha_bias=0.01, init_std=0.1, seed=0)
    models = [build_network(X[:, 0].max(), X[:, 1].max(), **params) for _ in range(2)]
    for model in models:
        model.compile(optimizer=OPTIMIZERS[name](), loss="mean_squared_error")
    models[0].fit(_training_batches(X, y, batch_size=64, epochs=2, seed=1), epochs=2,
                  steps_per_epoch=_steps_per_epoch(len(y), 64), verbose=0, shuffle=False)
    fit_rows(models[1], X, y, optimizer=models[1].optimizer, epochs=2, batch_size=64, alpha=0.1,
             alpha_bias=0.01, seed=1)
    keras_opt, compiled_opt = (m.optimizer for m in models)
    assert int(keras_opt.iterations) == int(compiled_opt.iterations) == 2 * (len(y) // 64)
    for a, b in zip(keras_opt.variables, compiled_opt.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, err_msg=a.path)


def test_untrained_rows_keep_the_initial_adagrad_accumulator_on_blocks(rows):
    # row 0 (unknown ids) is in no block: it keeps Keras's initial value
    X, y = rows
    model = build_network(X[:, 0].max(), X[:, 1].max(), n_factors=4, seed=0)
    model.compile(optimizer=keras.optimizers.Adagrad(learning_rate=0.1, initial_accumulator_value=0.25),
                  loss="mean_squared_error")
    fit_rows(model, X, y, optimizer=model.optimizer, epochs=1, batch_size=64, alpha=0.1, alpha_bias=0.01, seed=1,
             n_threads=2)
    for accumulator in model.optimizer._accumulators:
        values = np.asarray(accumulator)
        np.testing.assert_array_equal(values[0], 0.25)
        assert np.all(values[1:] > 0.25)  # every other row was trained


def test_unsupported_optimizer_is_refused(rows):
    X, y = rows
    model = build_network(X[:, 0].max(), X[:, 1].max(), n_factors=4, seed=0)
    with pytest.raises(ValueError, match="optimizer: the compiled path implements LazyAdam, Adagrad and SGD"):
        fit_rows(model, X, y, optimizer=keras.optimizers.SGD(momentum=0.9), epochs=1, batch_size=64,
                 alpha=0.1, alpha_bias=0.01, seed=0)
    from skmfnet._training._rules import _SGD, _Adam, dot_tables

    # the parameter-server loop implements two of the three rules
    with pytest.raises(ValueError, match="optimizer: the parameter-server path implements LazyAdam and SGD without "
                                         "momentum, got <.*Adagrad"):
        dot_tables(model, keras.optimizers.Adagrad(), "the parameter-server path", rules=(_Adam, _SGD))


@pytest.mark.parametrize("name", sorted(_OPTIMIZERS - {"gibbs"}))  # (a sampler, no Keras optimizer: test_gibbs)
def test_compiled_optimizer_names_are_those_whose_rule_is_implemented(name):
    # the estimator decides by name (COMPILED_OPTIMIZERS), fit_rows by the optimizer (supports)
    model = compile_network(build_network(5, 5, n_factors=2, seed=0), optimizer=name, learning_rate=0.01,
                            loss="squared_error", n_train=10, batch_size=2)
    assert supports(model.optimizer) is (name in COMPILED_OPTIMIZERS)


@pytest.mark.parametrize(
    "params, compiled",
    [({}, True), ({"implicit": True}, False), ({"user_features": ["group"]}, False)],
    ids=["plain", "implicit", "side-information"],
)
def test_the_defaults_train_only_the_rows_of_each_batch_on_every_path(tiny_ratings, params, compiled):
    # with no optimizer named: the compiled path for the plain dot model,
    # keras.Model.fit with LazyAdam's row-sparse update (tested in
    # test_estimator.py) with side information or implicit feedback
    X, y = tiny_ratings
    X = X.assign(group=X["user_id"].astype(int) % 3) if "user_features" in params else X
    est = EmbeddingMFRegressor(n_factors=2, epochs=1, random_state=0, **params).fit(X, y)
    assert type(est.model_.optimizer) is LazyAdam
    assert (est.engine_ == "kernel") is compiled


# --------------------------------------------- several threads (n_jobs, the stratified schedule)
BLOCKED = dict(n_factors=8, epochs=4, batch_size=128, random_state=0)


@pytest.fixture(scope="module")
def larger_ratings():
    X, y = make_ratings(n_users=300, n_items=200, n_ratings=24_000, rating_scale=(1, 5), return_X_y=True,
                        random_state=4)
    return X.iloc[:20_000], y.iloc[:20_000], X.iloc[20_000:], y.iloc[20_000:]


def test_blocks_cut_rows_and_ratings_into_cells_that_share_no_row():
    from skmfnet._training._schedule import Blocks

    rng = np.random.default_rng(0)
    # power-law counts (a few popular rows, a long tail): the deal must still balance the cells
    def draw(rows):
        weights = 1.0 / np.arange(10, rows + 10) ** 0.8
        return rng.choice(np.arange(1, rows + 1), 30_000, p=weights / weights.sum())

    X = np.column_stack([draw(500), draw(300)]).astype(np.int32)
    blocks = Blocks(X, [501, 301], 3, batch=64)
    assert blocks.p == 3
    seen = np.zeros(len(X), int)
    sizes = []
    for (a, b), index in blocks.cells.items():
        X_c = blocks.local(X, index)
        assert blocks.sizes[a, b] == len(index)
        seen[index] += 1
        sizes.append(len(index))
        # local rows map back to the ratings' rows, inside their blocks
        np.testing.assert_array_equal(blocks.members[0][a][X_c[:, 0] - 1], X[index, 0])
        np.testing.assert_array_equal(blocks.members[1][b][X_c[:, 1] - 1], X[index, 1])
    assert (seen == 1).all()  # every rating in exactly one cell
    for side, rows in enumerate((501, 301)):  # every row but 0 in exactly one block
        assert sorted(np.concatenate(blocks.members[side]).tolist()) == list(range(1, rows))
    assert max(sizes) < 1.2 * min(sizes)
    # a round (a, (a + s) mod p) uses every user block and every item block once
    for s in range(3):
        assert sorted((a + s) % 3 for a in range(3)) == [0, 1, 2]


@pytest.mark.parametrize("p", [1, 3])
def test_cells_hold_12_bytes_per_rating_without_sample_weights(p):
    """Local rows (2 x int32) and the centred rating (float32); no tensor of n ones for the weights."""
    from skmfnet._training._schedule import Blocks

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(1, 501, 30_000), rng.integers(1, 301, 30_000)]).astype(np.int32)
    y = rng.normal(size=30_000).astype(np.float32)
    blocks = Blocks(X, [501, 301], p, batch=64)
    assert blocks.p == p
    arrays = blocks.arrays(X, y, None)
    assert sum(a.nbytes for a in arrays) == 12 * len(y) + 4  # (one weight, 1, for all)
    assert all(isinstance(a, np.ndarray) and a.flags.c_contiguous for a in arrays)
    weighted = Blocks(X, [501, 301], p, batch=64).arrays(X, y, np.full(len(y), 2.0, np.float32))
    assert weighted[2].shape == (len(y),)


def test_cells_are_the_ratings_of_their_offsets(larger_ratings):
    """Each cell reads exactly its own ratings, as local rows, from the shared tensors."""
    from skmfnet._training._schedule import Blocks

    rng = np.random.default_rng(1)
    X = np.column_stack([rng.integers(1, 501, 30_000), rng.integers(1, 301, 30_000)]).astype(np.int32)
    y = rng.normal(size=30_000).astype(np.float32)
    w = rng.uniform(size=30_000).astype(np.float32)
    blocks = Blocks(X, [501, 301], 3, batch=64)
    cells = dict(blocks.cells)
    X_t, y_t, w_t = blocks.arrays(X, y, w)
    for key, index in cells.items():
        part = slice(blocks.offsets[key], blocks.offsets[key] + blocks.sizes[key])
        np.testing.assert_array_equal(X_t[part], blocks.local(X, index))
        np.testing.assert_array_equal(y_t[part], y[index])
        np.testing.assert_array_equal(w_t[part], w[index])


def test_blocks_are_fewer_when_a_cell_would_hold_less_than_a_batch():
    from skmfnet._training._schedule import Blocks

    X = np.column_stack([np.arange(1, 401) % 40 + 1, np.arange(1, 401) % 30 + 1]).astype(np.int32)
    assert Blocks(X, [41, 31], 2, batch=64).p == 2  # about 100 ratings per cell
    assert Blocks(X, [41, 31], 2, batch=128).p == 1
    assert Blocks(X, [41, 31], 8, batch=20).p == 4


def test_threads_give_the_result_of_the_same_schedule_run_in_sequence(larger_ratings, monkeypatch):
    import skmfnet._training._schedule as rowfit

    X, y, X_test, _ = larger_ratings
    threaded = EmbeddingMFRegressor(**BLOCKED, n_jobs=2).fit(X, y)

    class InOrder:  # the same rounds, one cell after another on this thread
        def __init__(self, max_workers):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, function, jobs):
            return [function(job) for job in jobs]

    monkeypatch.setattr(rowfit, "ThreadPoolExecutor", InOrder)
    in_order = EmbeddingMFRegressor(**BLOCKED, n_jobs=2).fit(X, y)
    # no row is shared by two cells of a round: the threads' timing cannot matter
    np.testing.assert_array_equal(threaded.predict(X_test), in_order.predict(X_test))
    assert threaded.history_ == in_order.history_


@pytest.mark.parametrize("round_chunks, chunks", [(1, 1), (3, 2), (4, 2)])
def test_each_cell_is_trained_in_chunks_that_interleave_the_rounds(larger_ratings, monkeypatch, round_chunks, chunks):
    """Every epoch goes through the rounds ``ROUND_CHUNKS`` times, at most
    ``p`` (here 2), each time with another part of every cell: the parts are
    drawn anew each epoch and together hold each of the cell's full batches'
    ratings once."""
    import skmfnet._training._schedule as rowfit

    X, y, _, _ = larger_ratings
    calls = []
    original = rowfit.chunk_order

    def recording(n, stride, shift, start, stop, seed, offset):
        order = original(n, stride, shift, start, stop, seed, offset)
        calls.append((int(offset), int(n), int(start), int(stop), np.asarray(order)))
        return order

    monkeypatch.setattr(rowfit, "chunk_order", recording)
    monkeypatch.setattr(rowfit, "ROUND_CHUNKS", round_chunks)
    # parts of 12 batches or more (and still 2 x 2 cells: 4 x 4 would hold fewer than 12 batches each)
    monkeypatch.setattr(rowfit, "CELL_BATCHES", 12)
    EmbeddingMFRegressor(**BLOCKED, n_jobs=2).fit(X, y)  # 2 x 2 cells of about 39 batches
    p, batch, epochs = 2, BLOCKED["batch_size"], BLOCKED["epochs"]
    assert len(calls) == epochs * chunks * p * p
    cell_of = {offset: divmod(k, p) for k, offset in enumerate(sorted({call[0] for call in calls}))}
    assert len(cell_of) == p * p
    parts = {}
    for r in range(len(calls) // p):
        epoch, (c, s) = divmod(r, chunks * p)[0], divmod(r % (chunks * p), p)
        rounds = calls[r * p: (r + 1) * p]  # (a round's cells run side by side: in any order)
        assert {cell_of[call[0]] for call in rounds} == {(a, (a + s) % p) for a in range(p)}
        for offset, n, start, stop, order in rounds:
            steps = n // batch
            assert (start, stop) == (steps * c // chunks * batch, steps * (c + 1) // chunks * batch)
            assert len(order) == stop - start
            parts.setdefault((epoch, offset), []).append(order[: stop - start])
    for (epoch, offset), chunk_orders in parts.items():
        n = next(call[1] for call in calls if call[0] == offset)
        taken = np.concatenate(chunk_orders)
        assert len(taken) == n // batch * batch and len(np.unique(taken)) == len(taken)
        assert taken.min() >= offset and taken.max() < offset + n
        if epoch:  # another order every epoch
            assert not np.array_equal(taken, np.concatenate(parts[0, offset]))


def test_blocks_are_four_a_side_from_two_threads_on_and_more_where_every_cell_keeps_its_four_parts():
    from skmfnet._training._schedule import resolve_blocks

    # (with the XLA epoch, 16 blocks a side were slower at 25 million ratings,
    # benchmarks/results/explore/explore_blocks_25m.json; on the kernel faster,
    # explore_blocks_25m_kernel.json)
    assert resolve_blocks(1, 25_000_000, 1024, finer=True) == 1  # one thread: the Keras path's batches
    # Adam's fits (finer): up to 16 blocks, where every cell keeps 4 parts of 16 batches
    assert resolve_blocks(2, 25_000_000, 1024, finer=True) == 16
    assert resolve_blocks(3, 25_000_000, 1024, finer=True) == 16  # not a multiple of the threads
    assert resolve_blocks(2, 16_777_216, 1024, finer=True) == 16  # 16 x 16 cells of 64 batches each
    assert resolve_blocks(2, 16_777_215, 1024, finer=True) == 8  # ... one rating fewer
    assert resolve_blocks(2, 4_194_304, 1024, finer=True) == 8
    assert resolve_blocks(2, 4_194_303, 1024, finer=True) == 4
    assert resolve_blocks(4, 2_000_000, 1024, finer=True) == 4
    # SGD's and Adagrad's: 4 (a row's step grows with its repeats in a batch)
    assert resolve_blocks(2, 25_000_000, 1024) == 4
    assert resolve_blocks(4, 25_000_000, 1024) == 4
    assert resolve_blocks(32, 25_000_000, 1024) == 32  # at least one block per thread
    assert resolve_blocks(2, 262_144, 1024) == 4  # 4 x 4 cells of 16 batches each
    assert resolve_blocks(2, 262_143, 1024) == 2  # ... one rating fewer: 2 x 2 cells
    assert resolve_blocks(2, 20_000, 1024) == 2  # (too few for 2 x 2 cells: Blocks lowers p)


def test_an_epoch_passes_through_the_rounds_once_per_block_a_side_up_to_four():
    """Two blocks a side (two multi_worker workers) make two passes an epoch, four blocks and more four;
    fewer where a part would hold fewer than 16 batches."""
    from skmfnet._training._schedule import round_passes

    assert [round_passes(p, 1000) for p in (1, 2, 3, 4, 8, 16)] == [1, 2, 3, 4, 4, 4]
    assert round_passes(4, 47) == 2  # parts of 16 batches at least
    assert round_passes(2, 15) == 1


def _block_rule(monkeypatch, **constants):
    """skmfnet._training._schedule with the block rule's constants set for this test (``BLOCKS=...``)."""
    import skmfnet._training._schedule as schedule

    for name, value in constants.items():
        monkeypatch.setattr(schedule, name, value)
    return schedule


@pytest.mark.parametrize("optimizer, blocks", [("lazy_adam", 4), ("adagrad", 2), ("sgd", 2)])
def test_only_adams_fits_cut_the_tables_beyond_blocks(larger_ratings, monkeypatch, optimizer, blocks):
    """A row's SGD (or Adagrad) step grows with its repeats in a batch, which finer cells raise: they keep BLOCKS."""
    X, y, _, _ = larger_ratings
    # 24,000 ratings in batches of 128: 4 x 4 cells of 11 batches, 4 parts of 2 and more
    schedule = _block_rule(monkeypatch, BLOCKS=2, MAX_BLOCKS=4, CELL_BATCHES=2)
    seen = []
    original = schedule.Blocks

    class Recorded(original):
        def __init__(self, X, n_rows, p, batch):
            super().__init__(X, n_rows, p, batch)
            seen.append(self.p)

    monkeypatch.setattr(schedule, "Blocks", Recorded)
    EmbeddingMFRegressor(**{**BLOCKED, "epochs": 1}, optimizer=optimizer, n_jobs=2).fit(X, y)
    assert seen == [blocks]


def test_the_number_of_threads_does_not_change_the_result(larger_ratings, monkeypatch):
    """Threads share out the cells of the rule's blocks: 2, 3 or 4 threads, one schedule."""
    X, y, X_test, _ = larger_ratings
    schedule = _block_rule(monkeypatch, BLOCKS=8, MAX_BLOCKS=8, CELL_BATCHES=1)  # 8 blocks a side
    kernel = schedule._kernel  # (the build this CPU runs)
    calls = []
    original = kernel.train
    monkeypatch.setattr(kernel, "train", lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    two = EmbeddingMFRegressor(**BLOCKED, n_jobs=2).fit(X, y)
    per_fit = len(calls)
    assert per_fit > 0 and per_fit % (BLOCKED["epochs"] * 8 * 8) == 0  # every cell, in as many chunks
    for n_jobs in (3, 4):
        other = EmbeddingMFRegressor(**BLOCKED, n_jobs=n_jobs).fit(X, y)
        np.testing.assert_array_equal(two.predict(X_test), other.predict(X_test))
        assert two.history_ == other.history_
    assert len(calls) == 3 * per_fit


def test_threads_learn_as_well_as_one_thread(larger_ratings):
    from sklearn.metrics import root_mean_squared_error

    X, y, X_test, y_test = larger_ratings
    # 10 epochs: near convergence (after 4 epochs two trajectories of either
    # kind differ by up to 0.05 depending on the seed)
    one, two = (EmbeddingMFRegressor(**{**BLOCKED, "epochs": 10}, n_jobs=n).fit(X, y) for n in (1, 2))
    # another order of the ratings: another trajectory
    assert not np.allclose(one.predict(X_test), two.predict(X_test))
    rmse = [root_mean_squared_error(y_test, est.predict(X_test)) for est in (one, two)]
    baseline = root_mean_squared_error(y_test, np.full(len(y_test), y.mean()))
    assert rmse[1] < baseline - 0.05
    assert abs(rmse[1] - rmse[0]) < 0.01
    # the optimizer counted every batch of every cell: about one thread's count
    # (each of the 4 cells drops its last partial batch)
    assert 0 <= int(one.model_.optimizer.iterations) - int(two.model_.optimizer.iterations) <= 10 * 3


def test_threads_with_sampled_pairs_selection_and_early_stopping(larger_ratings):
    X, y, X_test, _ = larger_ratings
    params = dict(BLOCKED, n_jobs=2, negative_ratio=1.0, selection_factors=4, early_stopping=True,
                  n_iter_no_change=1, epochs=6)
    first, second = (EmbeddingMFRegressor(**params).fit(X, y) for _ in range(2))
    np.testing.assert_array_equal(first.predict(X_test), second.predict(X_test))
    np.testing.assert_array_equal(first.user_selection_, second.user_selection_)
    # the selection tables were trained on every block (their biases start at zero)
    assert (first.item_selection_[1:, -1] != 0).mean() > 0.9
    assert (first.user_selection_[1:, -1] != 0).mean() > 0.9
    assert "val_rmse" in first.history_


def test_threads_fall_back_to_one_on_small_data(tiny_ratings):
    X, y = tiny_ratings
    one = EmbeddingMFRegressor(**LAZY, n_jobs=1).fit(X, y)
    many = EmbeddingMFRegressor(**LAZY, n_jobs=4).fit(X, y)  # no cell would hold a batch
    np.testing.assert_array_equal(one.predict(X), many.predict(X))


def test_n_jobs_resolution(monkeypatch):
    import joblib

    from skmfnet._training._dispatch import AUTO_PARALLEL_RATINGS, resolve_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(joblib, "cpu_count", lambda: 4)
    assert resolve_threads(None, AUTO_PARALLEL_RATINGS - 1) == 1
    assert resolve_threads(None, AUTO_PARALLEL_RATINGS) == 4
    assert resolve_threads(-1, 10) == 4
    assert resolve_threads(-2, 10) == 3
    assert resolve_threads(-9, 10) == 1
    assert resolve_threads(3, 10) == 3
    # inside a joblib worker (joblib sets OMP_NUM_THREADS there: cores // n_jobs), as OpenMP libraries do
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert resolve_threads(None, AUTO_PARALLEL_RATINGS) == 2
    assert resolve_threads(-1, 10) == 2
    assert resolve_threads(3, 10) == 3  # (a number the user gave is theirs)


def test_kernel_threads_inside_a_search_worker_follow_joblibs_limit():
    """GridSearchCV(n_jobs=2) on two cores: each worker's fits get one thread, not all the cores."""
    from joblib import Parallel, delayed

    from skmfnet._training._dispatch import AUTO_PARALLEL_RATINGS, resolve_threads

    inner = Parallel(n_jobs=2, backend="loky")(delayed(resolve_threads)(None, AUTO_PARALLEL_RATINGS) for _ in range(2))
    import joblib

    assert inner == [max(1, joblib.cpu_count() // 2)] * 2


@pytest.mark.parametrize("n_jobs, match", [(0, "n_jobs must be a positive number of threads.*got 0"),
                                           (1.5, "The 'n_jobs' parameter"), ("2", "The 'n_jobs' parameter")],
                         ids=["zero", "float", "string"])
def test_bad_n_jobs_is_refused(tiny_ratings, n_jobs, match):
    X, y = tiny_ratings
    with pytest.raises(ValueError, match=match):
        EmbeddingMFRegressor(**LAZY, n_jobs=n_jobs).fit(X, y)


def test_a_worker_without_a_block_of_its_own_trains_alone():
    """Three workers, but cells of a batch only for two blocks: every worker trains the one-block schedule."""
    X, y = make_ratings(n_users=300, n_items=200, n_ratings=20_000, return_X_y=True, random_state=4)
    Xr = np.column_stack([X.user_id.factorize()[0] + 1, X.item_id.factorize()[0] + 1]).astype("int32")
    yr = (y - y.mean()).to_numpy().astype("float32")
    from skmfnet._training._schedule import Blocks

    assert Blocks(Xr, [Xr[:, 0].max() + 1, Xr[:, 1].max() + 1], 3, batch=3000).p == 2

    class ThirdOfThree:  # the exchange of worker 2 of 3; one block means nothing to exchange
        index, size = 2, 3

        def all_gather(self, x):
            raise AssertionError("a worker training alone exchanges nothing")

    fits = []
    for exchange in (ThirdOfThree(), None):
        model = build_network(Xr[:, 0].max(), Xr[:, 1].max(), n_factors=4, seed=0)
        fit_rows(model, Xr, yr, optimizer=LazyAdam(learning_rate=0.01), epochs=2, batch_size=3000, alpha=0.1,
                 alpha_bias=0.01, seed=0, exchange=exchange)
        fits.append(model.get_weights())
    for a, b in zip(*fits):
        np.testing.assert_array_equal(a, b)


def test_unpack_reads_any_column_range_of_the_blocks():
    from skmfnet._training._schedule import Blocks

    rng = np.random.default_rng(1)
    X = np.column_stack([rng.integers(1, 501, 30_000), rng.integers(1, 301, 30_000)]).astype(np.int32)
    full = rng.normal(size=(501, 12)).astype(np.float32)
    full[0] = 0
    for p in (1, 2):
        blocks = Blocks(X, [501, 301], p, batch=64)
        assert blocks.p == p
        tables = list(blocks.pack(0, full, 0))
        np.testing.assert_array_equal(np.asarray(blocks.unpack(0, tables, 12)), full)
        np.testing.assert_array_equal(np.asarray(blocks.unpack(0, tables, 9, start=4)), full[:, 4:9])


def test_the_optimizer_state_is_copied_out_one_variable_at_a_time(monkeypatch):
    """At the end of a fit, the moments reach the optimizer one variable at a time.

    With two threads the blocks' rows are gathered into a new array per
    read: the reads after training are each at most one variable wide
    (K columns), never every row's packed columns at once (3 (K + 1):
    weights and both moments, about 170 MB at 25 million ratings and K=64).
    """
    import skmfnet._training._schedule as rowfit

    K = 16
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(1, 2_001, 40_000), rng.integers(1, 301, 40_000)]).astype(np.int32)
    y = rng.normal(size=40_000).astype(np.float32)
    model = build_network(2_000, 300, n_factors=K, alpha=0.1, alpha_bias=0.01, seed=0)
    model.compile(optimizer=LazyAdam(learning_rate=0.01), loss="mean_squared_error")
    widths, ended = [], []
    unpack = rowfit.Blocks.unpack

    def recorded(self, side, tables, stop, start=0, fill=0.0):
        if ended:
            widths.append(stop - start)
        return unpack(self, side, tables, stop, start=start, fill=fill)

    class EndOfTraining(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            ended.append(True)

    monkeypatch.setattr(rowfit.Blocks, "unpack", recorded)
    fit_rows(model, X, y, optimizer=model.optimizer, epochs=1, batch_size=256, alpha=0.1, alpha_bias=0.01,
             seed=0, callbacks=[EndOfTraining()], n_threads=2)
    assert widths and max(widths) <= K
    # and what was read is the state: the trained rows have moments, row 0 (unknown ids) none
    moments = model.optimizer._momentums[0].numpy()
    assert np.abs(moments[1:]).sum() > 0 and not moments[0].any()


# --------------------------------------------- the kernel's generator and scoring
def test_the_kernel_shuffles_each_part_of_a_cell_by_its_seed():
    """skmfnet._training._schedule.chunk_order: the part's positions of the cell's permutation, plus the offset, shuffled;
    the same for the same seed, another for either integer of the seed one apart, and every position equally likely."""
    from scipy.stats import chisquare

    from skmfnet._training._schedule import chunk_order

    n, stride, shift, start, stop, offset = 1000, 7, 3, 100, 600, 10
    order = chunk_order(n, stride, shift, start, stop, [5, 9], offset)
    assert order.dtype == np.int32 and order.shape == (stop - start,)
    np.testing.assert_array_equal(np.sort(order), np.sort((np.arange(start, stop) * stride + shift) % n + offset))
    np.testing.assert_array_equal(order, chunk_order(n, stride, shift, start, stop, [5, 9], offset))
    for other in ([6, 9], [5, 10], [4, 9]):
        assert np.mean(order != chunk_order(n, stride, shift, start, stop, other, offset)) > 0.9
    # where position 0 of a part of 10 goes, over 20,000 seeds (fixed: the test is deterministic)
    where = [int(np.flatnonzero(chunk_order(10, 1, 0, 0, 10, [7, seed], 0) == 0)[0]) for seed in range(20_000)]
    assert chisquare(np.bincount(where, minlength=10)).pvalue > 0.001


@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_validation_scores_are_numpys(rows, threads):
    """Kernel fits score their held-out ratings with skmfnet._training._kernel.evaluate: numpy's val_loss and val_rmse."""
    from skmfnet._training._schedule import evaluate as _evaluate

    X, y = rows
    model = build_network(X[:, 0].max(), X[:, 1].max(), n_factors=4, alpha=0.1, alpha_bias=0.01, init_std=0.1, seed=0)
    rng = np.random.default_rng(0)
    for layer in ("user_bias", "item_bias"):  # (biases start at zero)
        embeddings = model.get_layer(layer).embeddings
        embeddings.assign(rng.normal(0, 0.3, embeddings.shape).astype(np.float32))
    expected = _evaluate(model, X, y, alpha=0.1, alpha_bias=0.01)
    got = _evaluate(model, X, y, alpha=0.1, alpha_bias=0.01, compiled=threads)
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-6)


def test_kernel_fits_score_their_validation_compiled(tiny_ratings, monkeypatch):
    from skmfnet._training._schedule import _kernel as kernel  # (the build this CPU runs)

    X, y = tiny_ratings
    calls = []
    evaluate = kernel.evaluate
    monkeypatch.setattr(kernel, "evaluate", lambda *args, **kwargs: calls.append(1) or evaluate(*args, **kwargs))
    history = EmbeddingMFRegressor(**LAZY, early_stopping=True).fit(X, y).history_
    assert len(calls) == len(history["val_rmse"]) > 0


# --------------------------------------------- the two builds of the kernel
def _v3_kernel():
    import skmfnet._training._kernel as portable

    if not portable.cpu_supports_x86_64_v3():  # (False on every other architecture)
        pytest.skip("the x86-64-v3 build of the kernel runs on x86-64 CPUs with AVX2 only")
    import skmfnet._training._kernel_x86_64_v3 as v3

    return portable, v3


def test_fits_run_the_x86_64_v3_build_where_the_cpu_has_its_features():
    import skmfnet._training._schedule as schedule

    _, v3 = _v3_kernel()
    assert schedule._kernel is v3


@pytest.mark.parametrize("rule", [0, 1, 2], ids=["sgd", "adagrad", "adam"])
@pytest.mark.parametrize("extras", ["ratings", "weighted", "sampled_pairs", "selection"])
def test_the_x86_64_v3_build_trains_the_same_tables_bit_for_bit(rule, extras):
    """Wider vectors, no fused multiply-adds: every rule, with weights, sampled pairs and selection tables."""
    portable, v3 = _v3_kernel()
    rng = np.random.default_rng(rule)
    K, n, batch, slots = 37, 3000, 64, (0, 1, 2)[rule]  # (K odd: the loops' tails too)
    width = (K + 1) * (1 + slots)
    X = np.column_stack([rng.integers(1, 80, n), rng.integers(1, 50, n)]).astype(np.int32)
    y = rng.normal(0, 1, n).astype(np.float32)
    weights = rng.uniform(0, 2, n).astype(np.float32) if extras == "weighted" else np.ones(1, np.float32)
    order = rng.permutation(n).astype(np.int32)
    penalty = np.array([0.05] * K + [0.01], np.float32)
    hyper = np.array([[0.5, 0, 0, 0], [0.1, 1e-7, 0, 0], [0.01, 0.9, 0.999, 1e-7]][rule], np.float32)
    sampled = dict(n_negatives=16, negative_target=-1.0, negative_weight=0.5, n_items=49, sample_seed=7)
    kwargs = {"ratings": {}, "weighted": {}, "sampled_pairs": sampled}.get(extras, sampled)
    start = [rng.normal(0, 0.3, (rows, width)).astype(np.float32) for rows in (81, 51)]
    sel_start = [rng.normal(0, 0.3, (rows, 5 * (1 + slots))).astype(np.float32) for rows in (81, 51)]
    for table in start + sel_start:
        table[:, table.shape[1] // (1 + slots):] = np.abs(table[:, table.shape[1] // (1 + slots):]) + 0.1
    results = []
    for build in (portable, v3):
        tables = [table.copy() for table in start]
        more = dict(kwargs)
        if extras == "selection":
            more.update(sel_u=sel_start[0].copy(), sel_i=sel_start[1].copy(),
                        sel_penalty=np.array([0.05] * 4 + [0.01], np.float32))
        sums = build.train(*tables, X, y, weights, order, n // batch, batch, penalty, hyper, rule, 0, 1, **more)
        results.append((tables, sums, [more[k] for k in ("sel_u", "sel_i") if k in more]))
    (tables_a, sums_a, sel_a), (tables_b, sums_b, sel_b) = results
    assert not np.array_equal(tables_a[0], start[0])  # (they trained)
    for a, b in zip(tables_a + sel_a, tables_b + sel_b):
        np.testing.assert_array_equal(a, b)
    assert sums_a == sums_b
    P, Q = tables_a[0][:, :K], tables_a[1][:, :K]
    b_u, b_i = tables_a[0][:, K:K + 1], tables_a[1][:, K:K + 1]
    args = (np.ascontiguousarray(P), np.ascontiguousarray(b_u), np.ascontiguousarray(Q), np.ascontiguousarray(b_i),
            np.ascontiguousarray(X[:, 0]), np.ascontiguousarray(X[:, 1]), y.astype(np.float64), 0, n)
    assert portable.evaluate(*args) == v3.evaluate(*args)


# --------------------------------------------- one definition of each rule, divergence, interrupts
@pytest.mark.parametrize("name", ["lazy_adam", "adagrad", "sgd"])
def test_the_parameter_servers_rule_is_the_kernels(name):
    """The parameter-server loop applies rule.apply (TensorFlow ops); the kernel its C form: one step, same rows."""
    import skmfnet._training._kernel as kernel
    from skmfnet._training._rules import rule_of

    optimizer = {"lazy_adam": LazyAdam(learning_rate=0.01), "adagrad": keras.optimizers.Adagrad(learning_rate=0.1),
                 "sgd": keras.optimizers.SGD(learning_rate=0.5)}[name]
    rule = rule_of(optimizer)
    K, batch, rng = 3, 4, np.random.default_rng(0)
    width = K + 1
    tables = [rng.normal(0, 0.3, (6, width * (1 + rule.slots))).astype(np.float32) for _ in range(2)]
    for table in tables:
        table[:, width:] = np.abs(table[:, width:]) + 0.1  # (a state Adagrad and Adam can take)
    X = np.array([[1, 2], [3, 3], [1, 5], [4, 1]], np.int32)  # user 1 twice: its gradients are summed
    y = rng.normal(size=batch).astype(np.float32)
    penalty = np.array([0.1] * K + [0.01], np.float32)
    hyper = np.zeros(4, np.float32)
    hyper[: len(rule.hyper(optimizer))] = rule.hyper(optimizer)
    before = [table.copy() for table in tables]
    kernel.train(tables[0], tables[1], X, y, np.ones(1, np.float32), np.arange(batch, dtype=np.int32), 1, batch,
                 penalty, hyper, rule.code, 6, 1)
    # the same step by hand, with the rule's TensorFlow form
    U, V = before[0][X[:, 0], :width], before[1][X[:, 1], :width]
    error = np.sum(U[:, :K] * V[:, :K], axis=1) + U[:, K] + V[:, K] - y
    ones = np.ones((batch, 1), np.float32)
    grads = [(2.0 / batch) * (error[:, None] * np.hstack([V[:, :K], ones]) + penalty * U),
             (2.0 / batch) * (error[:, None] * np.hstack([U[:, :K], ones]) + penalty * V)]
    for side in range(2):
        rows = X[:, side]
        for row in np.unique(rows):
            mine = rows == row
            g, squares = grads[side][mine].sum(axis=0)[None], (grads[side][mine] ** 2).sum(axis=0)[None]
            state = before[side][row: row + 1]
            expected = rule.apply(tf.constant(state[:, :width]), tf.constant(state[:, width:]), tf.constant(g),
                                  tf.constant(7, tf.int64), tf.constant(rule.hyper(optimizer), tf.float32),
                                  tf.constant(squares))
            np.testing.assert_allclose(tables[side][row], np.asarray(expected)[0], rtol=1e-5, atol=1e-6)
        untouched = np.setdiff1d(np.arange(6), rows)
        np.testing.assert_array_equal(tables[side][untouched], before[side][untouched])


def test_the_kernels_adam_moments_are_lazy_adams_float32_arithmetic_bit_for_bit():
    """m and v as LazyAdam's TensorFlow ops compute them, in float32: no intermediate double (which rounds otherwise).

    The gradients are reproduced here in the kernel's own float32 order
    (each row once in the batch, K=3), so both sides start from the same bits.
    """
    import skmfnet._training._kernel as kernel
    from skmfnet._training._rules import rule_of

    optimizer = LazyAdam(learning_rate=0.01)
    rule = rule_of(optimizer)
    K, batch, rng = 3, 4, np.random.default_rng(1)
    width = K + 1
    f32 = np.float32
    tables = [rng.normal(0, 0.3, (5, 3 * width)).astype(f32) for _ in range(2)]
    for table in tables:
        table[:, width:] = np.abs(table[:, width:]) + 0.1
    X = np.array([[1, 2], [2, 4], [3, 1], [4, 3]], np.int32)  # every row once
    y = rng.normal(size=batch).astype(f32)
    penalty = np.array([0.1] * K + [0.01], f32)
    hyper = np.array(rule.hyper(optimizer), f32)
    before = [table.copy() for table in tables]
    kernel.train(tables[0], tables[1], X, y, np.ones(1, f32), np.arange(batch, dtype=np.int32), 1, batch,
                 penalty, hyper, rule.code, 6, 1)
    scale = f32(2.0 / batch)
    for j, (u, i) in enumerate(X):
        p, q = before[0][u, :width], before[1][i, :width]
        dot = f32(0)
        for f in range(K):
            dot = f32(dot + p[f] * q[f])
        c = f32(scale * f32(f32(f32(p[K] + q[K]) + dot) - y[j]))
        for side, (row, mine, other) in enumerate(((u, p, q), (i, q, p))):
            g = np.array([f32(c * other[f]) + f32(scale * penalty[f]) * mine[f] for f in range(K)]
                         + [c + f32(scale * penalty[K]) * mine[K]], f32)[None]
            state = before[side][row: row + 1]
            expected = np.asarray(rule.apply(tf.constant(state[:, :width]), tf.constant(state[:, width:]),
                                             tf.constant(g), tf.constant(7, tf.int64),
                                             tf.constant(hyper), None))[0]
            np.testing.assert_array_equal(tables[side][row, width:], expected[width:])  # m and v
            np.testing.assert_allclose(tables[side][row, :width], expected[:width], rtol=1e-6)


@pytest.mark.parametrize("params", [dict(optimizer="sgd", learning_rate=1e6), dict(optimizer="sgd", learning_rate=1e6,
                                    interaction="concat", hidden_layer_sizes=(4,))], ids=["kernel", "keras"])
def test_training_that_diverges_raises_and_leaves_the_estimator_as_it_was(tiny_ratings, params):
    from skmfnet._training import TrainingDivergedError

    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**{**LAZY, **params})
    with pytest.raises(TrainingDivergedError, match=r"training diverged in epoch \d+: its loss is (nan|inf).*"
                                                    "Lower learning_rate"):
        est.fit(X, y)
    assert not hasattr(est, "model_") and not hasattr(est, "mu_")
    assert issubclass(TrainingDivergedError, ValueError)


def test_a_huge_rating_is_a_divergence_not_a_nan_model(tiny_ratings):
    from skmfnet._training import TrainingDivergedError

    X, y = tiny_ratings
    y = np.asarray(y, dtype=float).copy()
    y[0] = 1e300
    with pytest.raises(TrainingDivergedError):
        EmbeddingMFRegressor(**LAZY).fit(X, y)


def test_an_interrupt_during_a_kernel_fit_stops_it_and_leaves_the_estimator_as_before(tiny_ratings, monkeypatch):
    """Ctrl-C (KeyboardInterrupt) raised while the threads train: it propagates, the threads stop at their
    next slice (no further kernel call starts), and the estimator keeps its previous model."""
    import skmfnet._training._schedule as schedule

    kernel = schedule._kernel  # (the build this CPU runs)
    X, y = tiny_ratings
    est = EmbeddingMFRegressor(**LAZY).fit(X, y)
    before = est.predict(X)
    monkeypatch.setattr(schedule, "SLICE_BATCHES", 1)  # a kernel call per batch
    calls, original = [], kernel.train

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(kernel, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        est.set_params(n_jobs=2, n_factors=6).fit(X, y)
    assert len(calls) <= 4  # the other thread finished at most the slice it was in
    np.testing.assert_array_equal(est.predict(X), before)
    assert est.model_.get_layer("user_factors").embeddings.shape[1] == LAZY["n_factors"]


@pytest.mark.parametrize("params, engine", [
    ({}, "kernel"),
    ({"optimizer": "adagrad"}, "kernel"),
    ({"distribution": "multi_worker"}, "kernel"),
    ({"distribution": "parameter_server"}, "parameter_server"),
    ({"interaction": "concat", "hidden_layer_sizes": (4,), "distribution": "multi_worker"}, "keras_multi_worker"),
    ({"optimizer": "adam"}, "keras"),
    ({"implicit": True}, "keras"),
    ({"distribution": "mirrored"}, "keras"),
], ids=["defaults", "adagrad", "multi-worker", "parameter-server", "concat-multi-worker", "adam", "implicit",
        "mirrored"])
def test_one_plan_decides_the_engine_and_its_threads(params, engine, monkeypatch):
    import joblib

    from skmfnet._training import plan
    from skmfnet._training._dispatch import AUTO_PARALLEL_RATINGS

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(joblib, "cpu_count", lambda: 4)
    decided = plan(EmbeddingMFRegressor(**params).get_params(deep=False), AUTO_PARALLEL_RATINGS)
    assert decided.engine == engine
    assert decided.n_threads == (4 if engine == "kernel" else 1)
    assert decided.multi_worker is (params.get("distribution") == "multi_worker")
