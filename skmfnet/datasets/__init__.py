"""Rating data sets: MovieLens fetchers and a synthetic generator."""

from ._base import clear_data_home, get_data_home
from ._movielens import fetch_movielens
from ._synthetic import make_ratings

__all__ = ["clear_data_home", "fetch_movielens", "get_data_home", "make_ratings"]
