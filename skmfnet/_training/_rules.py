"""The update rules the compiled epoch implements, and the dot model's tables in a Keras model.

Each rule class names a Keras optimizer whose rule :mod:`skmfnet._training._kernel`
implements exactly for the rows of a batch (:func:`rule_of` says which):
its state columns per weight column (``slots``), the state of an untrained
row (``initial``), its hyperparameters as the kernel reads them
(``hyper``, ``code``), and how its state is copied back into the Keras
optimizer (``store``).  ``apply`` is the same rule as TensorFlow ops, for
the parameter-server loop (:mod:`skmfnet._training._parameter_server`),
whose tables live on the servers; ``tests/test_kernel.py`` checks that the
two agree.
"""

import keras
import tensorflow as tf

from .._network import ITEM_BIAS, ITEM_FACTORS, USER_BIAS, USER_FACTORS
from .._optimizers import LazyAdam
from ._dispatch import COMPILED_OPTIMIZERS
from ._kernel import RULE_ADAGRAD, RULE_ADAM, RULE_SGD

__all__ = ["COMPILED_OPTIMIZERS", "dot_tables", "rule_of", "store_optimizer_state", "supports"]


def supports(optimizer):
    """Whether :func:`fit_rows` implements ``optimizer``'s update rule exactly."""
    return rule_of(optimizer) is not None


def rule_of(optimizer):
    """The rule class implementing ``optimizer`` exactly, or None."""
    if isinstance(optimizer, LazyAdam):
        return None if optimizer.amsgrad else _Adam
    if type(optimizer) is keras.optimizers.Adagrad:
        return _Adagrad
    if type(optimizer) is keras.optimizers.SGD and optimizer.momentum == 0:
        return _SGD
    return None


class _Adam:
    """LazyAdam's rule on the batch's rows; state ``[m | v]``; hyperparameters ``[lr, beta_1, beta_2, epsilon]``.

    Every rule has ``code`` (the kernel's), ``slots`` (state columns per
    weight column), ``initial`` (the state of a row before training),
    ``squares`` (whether ``apply`` needs the sum of the squares of a row's
    gradients, one per occurrence in the batch, besides their sum),
    ``hyper``, ``apply`` and ``store``.
    """

    name = "LazyAdam"
    code = RULE_ADAM
    slots = 2
    #: whether a row's step keeps its size however many times the row repeats
    #: in a batch (its summed gradient is divided by the root of its own
    #: second moment): the schedule may then cut the tables finer
    scale_free = True
    squares = False

    @staticmethod
    def initial(optimizer):
        return 0.0

    @staticmethod
    def hyper(optimizer):
        return [float(optimizer.learning_rate), float(optimizer.beta_1), float(optimizer.beta_2),
                float(optimizer.epsilon)]

    @staticmethod
    def apply(weights, state, g, step, hyper, squares=None):
        lr, beta_1, beta_2, epsilon = tf.unstack(hyper, num=4)
        t = tf.cast(step, tf.float32)
        m, v = tf.split(state, 2, axis=1)
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * tf.square(g)
        rate = lr * tf.sqrt(1 - tf.pow(beta_2, t)) / (1 - tf.pow(beta_1, t))
        return tf.concat([weights - rate * m / (tf.sqrt(v) + epsilon), m, v], axis=1)

    @staticmethod
    def store(optimizer, index, read, columns, width):
        # read(start, stop): those columns of the state, every row: one
        # variable's worth at a time, never the whole state
        optimizer._momentums[index].assign(read(columns.start, columns.stop))
        optimizer._velocities[index].assign(read(width + columns.start, width + columns.stop))


class _SGD:
    """Plain gradient descent (Keras ``SGD`` without momentum); no state; hyperparameters ``[lr]``."""

    name = "SGD without momentum"
    code = RULE_SGD
    scale_free = False  # (see _Adam.scale_free)
    slots = 0
    squares = False

    @staticmethod
    def initial(optimizer):
        return 0.0

    @staticmethod
    def hyper(optimizer):
        return [float(optimizer.learning_rate)]

    @staticmethod
    def apply(weights, state, g, step, hyper, squares=None):
        return weights - hyper[0] * g

    @staticmethod
    def store(optimizer, index, read, columns, width):
        pass


class _Adagrad:
    """Keras's ``Adagrad`` on the batch's rows; state ``[accumulator]``; hyperparameters ``[lr, epsilon]``.

    Keras receives an embedding's gradient as one slice per occurrence of a
    row in the batch and squares each slice before adding it to the
    accumulator; the update is the summed gradient over the root of the new
    accumulator.  A row the batch does not touch has a zero gradient, which
    changes neither its accumulator nor its weights, so this row-sparse rule
    is Keras's dense one exactly (unlike Adam's, whose moments decay).
    """

    name = "Adagrad"
    code = RULE_ADAGRAD
    scale_free = False  # (see _Adam.scale_free)
    slots = 1
    squares = True

    @staticmethod
    def initial(optimizer):
        return float(optimizer.initial_accumulator_value)

    @staticmethod
    def hyper(optimizer):
        return [float(optimizer.learning_rate), float(optimizer.epsilon)]

    @staticmethod
    def apply(weights, state, g, step, hyper, squares=None):
        lr, epsilon = tf.unstack(hyper, num=2)
        accumulator = state + squares
        return tf.concat([weights - lr * g / tf.sqrt(accumulator + epsilon), accumulator], axis=1)

    @staticmethod
    def store(optimizer, index, read, columns, width):
        optimizer._accumulators[index].assign(read(columns.start, columns.stop))


# compiled epochs are kept on disk for later processes (before this process first compiles)


def dot_tables(model, optimizer, path, rules=(_Adam, _Adagrad, _SGD)):
    """The four embedding variables of a dot network, its K, and the rule of ``optimizer``.

    Shared by the loops that train the tables by hand (the kernel's schedule
    and :mod:`skmfnet._training._parameter_server`, which implements
    ``rules``); ``path``
    names the loop in the error for an optimizer whose rule they do not
    implement.
    """
    rule = rule_of(optimizer)
    if rule not in rules:
        names = " and ".join(", ".join(implemented.name for implemented in rules).rsplit(", ", 1))
        raise ValueError(f"optimizer: {path} implements {names}, got {optimizer!r}")
    variables = tuple(model.get_layer(name).embeddings for name in (USER_FACTORS, USER_BIAS, ITEM_FACTORS, ITEM_BIAS))
    return variables, int(variables[0].shape[1]), rule


def store_optimizer_state(model, rule, read, step, K):
    """Copy the optimizer's state (moments, step count) into the model's optimizer.

    The compiled Keras model then holds the optimizer state it would have
    after ``Model.fit`` (saved with it, and ready to continue training).
    Moments are those of the last epoch, also when early stopping restored
    earlier weights (as with ``Model.fit``).  ``read(side, start, stop)``:
    columns ``start:stop`` of the optimizer state of a side's rows (0:
    users, 1: items), one per network row; read one variable at a time, so
    that the packed rows are never copied out whole (weights and moments:
    about 170 MB at 25 million ratings and K=64).
    """
    optimizer = model.optimizer
    variables = {v.path.split("/")[0]: v for v in model.trainable_variables}
    optimizer.build(model.trainable_variables)
    layout = {
        USER_FACTORS: (0, slice(0, K)), USER_BIAS: (0, slice(K, K + 1)),
        ITEM_FACTORS: (1, slice(0, K)), ITEM_BIAS: (1, slice(K, K + 1)),
    }
    width = K + 1
    for name, (side, columns) in layout.items():
        rule.store(optimizer, optimizer._get_variable_index(variables[name]),
                   lambda start, stop: read(side, start, stop), columns, width)
    optimizer.iterations.assign(step)
