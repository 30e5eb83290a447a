"""What every rating estimator of the package offers beyond fit/predict."""

import contextlib

__all__ = ["RecommenderMixin", "restore_on_failure"]


@contextlib.contextmanager
def restore_on_failure(estimator):
    """Put back the estimator's attributes if the block raises.

    A fit that fails (bad input, or an error or interruption during training)
    then leaves the estimator exactly as before the call: still fitted with
    its previous model, or still unfitted.  Only the attribute bindings are
    restored; fitted objects are replaced by ``fit``, never mutated in place.
    """
    saved = dict(vars(estimator))
    try:
        yield
    except BaseException:
        vars(estimator).clear()
        vars(estimator).update(saved)
        raise


class RecommenderMixin:
    """Top-N recommendation and safe model files for a fitted rating estimator.

    The estimator provides ``user_encoder_``, ``item_encoder_``, ``mu_`` and
    ``seen_`` (the training pairs, see :func:`skmfnet.recommend`).
    """

    def recommend(self, users=None, n=10, *, exclude_seen=True, seen=None):
        """Top-``n`` items per user, as a DataFrame (user, rank, item, score).

        See :func:`skmfnet.recommend`; ``exclude_seen`` leaves out the (user,
        item) pairs of the training data.
        """
        from ._recommend import recommend

        return recommend(self, users, n, exclude_seen=exclude_seen, seen=seen)

    def save(self, path):
        """Write a versioned model file that executes no code on load.

        See :func:`skmfnet.save_estimator`.
        """
        from ._persistence import save_estimator

        save_estimator(self, path)

    @classmethod
    def load(cls, path):
        """Read a model file written by :meth:`save`.

        See :func:`skmfnet.load_estimator`.
        """
        from ._persistence import load_estimator

        estimator = load_estimator(path)
        if not isinstance(estimator, cls):
            raise TypeError(
                f"{path} holds a {type(estimator).__name__}, not a {cls.__name__}; "
                "use skmfnet.load_estimator to load any model file."
            )
        return estimator
