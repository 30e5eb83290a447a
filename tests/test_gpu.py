"""The same code on a GPU: skipped where TensorFlow sees none (as in CI).

Nothing in the estimator names a device: TensorFlow places the variables on
its default device, a GPU when it sees one.  The plain dot model with
``"lazy_adam"`` or ``"sgd"`` trains on the compiled kernel, on the CPU, and
its tables are then copied to those variables; ``"adam"`` trains with
``keras.Model.fit`` on the GPU.  These tests check that placement and that a
GPU fit predicts what a CPU fit does (same seed; cuBLAS sums in other orders,
hence the tolerance).
"""

import numpy as np
import pytest
import tensorflow as tf

from skmfnet import EmbeddingMFRegressor

pytestmark = pytest.mark.skipif(
    not tf.config.list_physical_devices("GPU"), reason="no GPU visible to TensorFlow"
)


@pytest.mark.parametrize("optimizer", ["adam", "lazy_adam", "sgd"])
def test_fit_on_the_gpu_matches_the_cpu(tiny_ratings, optimizer):
    X, y = tiny_ratings
    params = dict(n_factors=4, epochs=2, batch_size=64, optimizer=optimizer, random_state=0)
    if optimizer == "sgd":
        params.update(learning_rate=5.0, init_std=0.1)
    on_gpu = EmbeddingMFRegressor(**params).fit(X, y)
    assert all("GPU" in w.value.device.upper() for w in on_gpu.model_.weights)
    with tf.device("/CPU:0"):
        on_cpu = EmbeddingMFRegressor(**params).fit(X, y)
    np.testing.assert_allclose(on_gpu.predict(X), on_cpu.predict(X), atol=1e-3)
