"""Rating data sets: MovieLens fetchers and a synthetic generator."""

from ._synthetic import make_ratings

__all__ = ["make_ratings"]
