"""Optimizers that update only the embedding rows a batch touches.

Keras's ``Adam`` turns the sparse gradient of an embedding lookup (a
``tf.IndexedSlices`` holding only the looked-up rows) into a dense update of
the whole table and of both moment tables at every step.  With 160,000 users
and 60,000 items that dense work dwarfs the batch's own.  ``LazyAdam`` applies
Adam's update to the looked-up rows only (their moments are decayed when they
are next seen, as in TensorFlow Addons' ``LazyAdam`` and PyTorch's
``SparseAdam``); dense gradients (Dense layers) get plain Adam.
"""

import keras
import tensorflow as tf

__all__ = ["LazyAdam"]


@keras.saving.register_keras_serializable(package="skmfnet")
class LazyAdam(keras.optimizers.Adam):
    """Adam whose sparse (embedding) updates touch only the rows in the batch."""

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices) or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        # one row per distinct index: embedding gradients repeat rows that occur
        # several times in the batch
        rows, position = tf.unique(gradient.indices)
        grad = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), position, tf.shape(rows)[0])

        lr = tf.cast(learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))

        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * grad
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(grad)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        self.assign_sub(variable, tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))
