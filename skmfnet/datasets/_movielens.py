"""MovieLens rating data sets from GroupLens Research: fetch, parse, canonical folds.

Fetching (download, verify, extract into the data folder) is kept apart from
parsing (:func:`_load_movielens` reads an extracted folder), so that tests and
users with a local copy never touch the network.  Every load checks the
extracted files again: against their shipped SHA-256 sums where the package
has them (``ml-100k``; hashed once, then only ``stat``-ed, see
:func:`._base._verify_files`), and every rating against the scale the variant
documents.
"""

import csv
import logging
import numbers
import os
import shutil
import tempfile
import zipfile
from collections import namedtuple
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ._base import (
    RemoteFileMetadata,
    _fetch_remote,
    _file_stamp,
    _hash_file,
    _resolve_data_home,
    _verify_files,
    _write_checksum_cache,
    get_data_home,
)

__all__ = ["fetch_movielens"]

logger = logging.getLogger(__name__)

#: Where the archives are downloaded from: ``BASE_URL + "ml-100k.zip"``.  Read
#: at call time, so it can be pointed at a mirror (or a test server).
BASE_URL = "https://files.grouplens.org/datasets/movielens/"

_Variant = namedtuple("_Variant", ["archive", "folder", "title", "required", "scale"])

#: Rating scales as the READMEs of the variants document them: (lowest,
#: highest, step).  100K and 1M: whole stars 1..5; later releases: half stars.
_WHOLE_STARS = (1.0, 5.0, 1.0)
_HALF_STARS = (0.5, 5.0, 0.5)

_FOLD_FILES = tuple(f"u{k}.test" for k in range(1, 6))

#: Variant -> archive name, folder inside the archive (and in the data home),
#: display title, the files that must be present for the folder to count
#: as extracted, and the rating scale.
_VARIANTS = {
    "100k": _Variant(
        "ml-100k.zip", "ml-100k", "MovieLens 100K", ("u.data", "u.item", "u.user", *_FOLD_FILES), _WHOLE_STARS
    ),
    "1m": _Variant("ml-1m.zip", "ml-1m", "MovieLens 1M", ("ratings.dat", "movies.dat", "users.dat"), _WHOLE_STARS),
    "10m": _Variant("ml-10m.zip", "ml-10M100K", "MovieLens 10M", ("ratings.dat", "movies.dat"), _HALF_STARS),
    "20m": _Variant("ml-20m.zip", "ml-20m", "MovieLens 20M", ("ratings.csv", "movies.csv"), _HALF_STARS),
    "25m": _Variant("ml-25m.zip", "ml-25m", "MovieLens 25M", ("ratings.csv", "movies.csv"), _HALF_STARS),
    "latest-small": _Variant(
        "ml-latest-small.zip",
        "ml-latest-small",
        "MovieLens Latest Small",
        ("ratings.csv", "movies.csv"),
        _HALF_STARS,
    ),
}

#: MD5 checksums of the archives, as published by GroupLens next to them.
#: ``ml-latest-small.zip`` is regenerated from time to time and has no
#: published checksum, so it is the one archive downloaded unverified.
_ARCHIVE_MD5 = {
    "ml-100k.zip": "0e33842e24a9c977be4e0107933c0723",
    "ml-1m.zip": "c4d9eecfca2ab87c1945afe126590906",
    "ml-10m.zip": "ce571fd55effeba0271552578f2648bd",
    "ml-20m.zip": "cd245b17a1ae2cc31bb14903e1204af3",
    "ml-25m.zip": "6b51fb2759a8657d3bfcbfc42b592ada",
    "ml-latest-small.zip": None,
}

#: SHA-256 of files after extraction, checked before the folder is moved into
#: place and again on every load.  ``ml-100k``: every file of the archive but
#: its two helper scripts.
_EXTRACTED_SHA256 = {
    "ml-100k": {
        "README": "4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52",
        "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
        "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
        "u.info": "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b",
        "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
        "u.occupation": "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d",
        "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
        "u1.base": "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a",
        "u1.test": "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950",
        "u2.base": "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e",
        "u2.test": "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3",
        "u3.base": "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d",
        "u3.test": "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d",
        "u4.base": "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca",
        "u4.test": "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9",
        "u5.base": "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485",
        "u5.test": "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634",
        "ua.base": "67b5bcdb380c29f85d56a012ecd88612ae020f30a6730d117a334ee8203b91f2",
        "ua.test": "d0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42",
        "ub.base": "237254d253b6ad7de84f919d041055428646254f34ed8f562703c899430cd881",
        "ub.test": "d54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da",
    },
}

#: Genre names of MovieLens 100K in flag order, used when ``u.genre`` is absent.
_ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)  # fmt: skip

RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
# float32 holds every MovieLens rating (whole or half stars) exactly, at half
# the memory of float64, and is what Keras computes in.
_RATING_DTYPES = {"user_id": np.int64, "item_id": np.int64, "rating": np.float32, "timestamp": np.int64}

_CITATION = (
    "F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context.\n"
    "ACM Transactions on Interactive Intelligent Systems (TiiS) 5, 4, Article 19.\n"
    "https://doi.org/10.1145/2827872"
)


def _archive_remote(variant):
    """Url, archive name and MD5 checksum of a variant's archive."""
    archive = _VARIANTS[variant].archive
    return RemoteFileMetadata(archive, BASE_URL + archive, _ARCHIVE_MD5[archive], "md5")


def _missing_files(folder, required):
    """Names in ``required`` that are not files in ``folder``."""
    folder = Path(folder)
    return [name for name in required if not (folder / name).is_file()]


# ----------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------


def _first_line(path, encoding="latin-1"):
    with open(path, "rb") as f:
        return f.readline().decode(encoding).rstrip("\r\n")


def _check_fields(path, sep, n_fields, *, encoding="latin-1"):
    """Fail early when the first line of ``path`` does not have ``n_fields``."""
    line = _first_line(path, encoding)
    found = len(line.split(sep))
    if found != n_fields:
        raise ValueError(
            f"{path} is not in the expected format: its first line should have {n_fields} "
            f"{sep!r}-separated fields; got {found} in {line[:200]!r}."
        )


def _read_csv(path, **kwargs):
    """``pd.read_csv`` with the C engine, naming the file in parse errors."""
    try:
        return pd.read_csv(path, engine="c", na_filter=False, **kwargs)
    except ValueError as exc:  # includes pandas.errors.ParserError
        raise ValueError(f"Could not parse {path}: {exc}") from exc


def _read_ratings_tab(path):
    """Tab-separated ``user item rating timestamp`` without header (100K)."""
    _check_fields(path, "\t", 4)
    return _read_csv(path, sep="\t", header=None, names=RATING_COLUMNS, dtype=_RATING_DTYPES)


def _read_ratings_dat(path):
    """``user::item::rating::timestamp`` without header (1M, 10M).

    The C engine takes single-character separators only, so the file is read
    with ``sep=':'`` and every other (empty) column is dropped: about 40 times
    faster than the Python engine with ``sep='::'``.
    """
    _check_fields(path, "::", 4)
    names = ["user_id", "_1", "item_id", "_2", "rating", "_3", "timestamp"]
    return _read_csv(path, sep=":", header=None, names=names, usecols=RATING_COLUMNS, dtype=_RATING_DTYPES)


def _read_ratings_csv(path):
    """``ratings.csv`` with header ``userId,movieId,rating,timestamp`` (20M, 25M, latest)."""
    expected = "userId,movieId,rating,timestamp"
    header = _first_line(path, "utf-8-sig")
    if header != expected:
        raise ValueError(
            f"{path} is not in the expected format: its header should be {expected!r}; got {header[:200]!r}."
        )
    return _read_csv(path, sep=",", header=0, names=RATING_COLUMNS, dtype=_RATING_DTYPES)


def _read_dat_table(path, columns):
    """Small ``::``-separated table, split in Python (titles may hold ':' or '"').

    Decoded as UTF-8 when valid, else as latin-1 (the encoding of MovieLens 1M).
    """
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        fields = line.split("::")
        if len(fields) != len(columns):
            raise ValueError(
                f"{path} is not in the expected format: line {number} should have {len(columns)} "
                f"'::'-separated fields ({', '.join(columns)}); got {len(fields)} in {line[:200]!r}."
            )
        rows.append(fields)
    return pd.DataFrame(rows, columns=columns)


def _read_genre_names(folder):
    path = Path(folder) / "u.genre"
    if not path.is_file():
        return list(_ML100K_GENRES)
    pairs = []
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.strip():
            name, index = line.rsplit("|", 1)
            pairs.append((int(index), name))
    return [name for _, name in sorted(pairs)]


def _read_items_100k(folder):
    path = Path(folder) / "u.item"
    genres = _read_genre_names(folder)
    flags = [f"_genre_{k}" for k in range(len(genres))]
    names = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *flags]
    _check_fields(path, "|", len(names))
    table = _read_csv(
        path,
        sep="|",
        header=None,
        names=names,
        encoding="latin-1",
        quoting=csv.QUOTE_NONE,
        dtype={"item_id": np.int64, **{c: str for c in names[1:5]}, **{c: np.int8 for c in flags}},
    )
    mask = table[flags].to_numpy() == 1
    table["genres"] = ["|".join(g for g, on in zip(genres, row) if on) for row in mask]
    return table[["item_id", "title", "genres", "release_date", "video_release_date", "imdb_url"]]


def _read_users_100k(folder):
    path = Path(folder) / "u.user"
    names = ["user_id", "age", "gender", "occupation", "zip_code"]
    _check_fields(path, "|", len(names))
    dtype = {"user_id": np.int64, "age": np.int64, "gender": str, "occupation": str, "zip_code": str}
    return _read_csv(path, sep="|", header=None, names=names, encoding="latin-1", quoting=csv.QUOTE_NONE, dtype=dtype)


def _read_movies_dat(path):
    table = _read_dat_table(path, ["item_id", "title", "genres"])
    return table.astype({"item_id": np.int64, "title": str, "genres": str})


def _read_users_dat(path):
    table = _read_dat_table(path, ["user_id", "gender", "age", "occupation", "zip_code"])
    table = table.astype({"user_id": np.int64, "gender": str, "age": np.int64, "occupation": np.int64, "zip_code": str})
    return table[["user_id", "age", "gender", "occupation", "zip_code"]]


def _read_movies_csv(path):
    table = _read_csv(path, header=0, encoding="utf-8-sig", dtype={"movieId": np.int64, "title": str, "genres": str})
    if list(table.columns) != ["movieId", "title", "genres"]:
        raise ValueError(
            f"{path} is not in the expected format: its header should be 'movieId,title,genres'; "
            f"got {','.join(map(str, table.columns))!r}."
        )
    return table.rename(columns={"movieId": "item_id"})


def _pair_keys(frame):
    """One int64 per (user_id, item_id) pair; ids are below 2**31 in MovieLens."""
    users = frame["user_id"].to_numpy(np.int64)
    items = frame["item_id"].to_numpy(np.int64)
    return (users << 32) | items


def _pair_at(frame, position):
    return int(frame["user_id"].iloc[position]), int(frame["item_id"].iloc[position])


def _canonical_folds_100k(folder, ratings):
    """Fold ``k`` (0..4) of each rating: the rating is in ``u{k+1}.test``."""
    index = pd.Index(_pair_keys(ratings))
    if not index.is_unique:
        raise ValueError(f"{Path(folder) / 'u.data'} has duplicate (user_id, item_id) pairs; folds cannot be matched.")
    test_fold = np.full(len(ratings), -1, dtype=np.int64)
    for k, name in enumerate(_FOLD_FILES):
        fold = _read_ratings_tab(Path(folder) / name)
        positions = index.get_indexer(_pair_keys(fold))
        if (positions < 0).any():
            user, item = _pair_at(fold, int(np.argmax(positions < 0)))
            raise ValueError(
                f"{Path(folder) / name} has (user_id, item_id) = ({user}, {item}), which is not in u.data."
            )
        if (test_fold[positions] != -1).any():
            user, item = _pair_at(fold, int(np.argmax(test_fold[positions] != -1)))
            raise ValueError(
                f"{Path(folder) / name} and an earlier u*.test file both hold (user_id, item_id) = "
                f"({user}, {item}); the canonical test sets must be disjoint."
            )
        test_fold[positions] = k
    if (test_fold < 0).any():
        raise ValueError(
            f"{int((test_fold < 0).sum())} rating(s) of {Path(folder) / 'u.data'} are in none of "
            f"{', '.join(_FOLD_FILES)}; the canonical test sets must cover u.data."
        )
    return test_fold


def _refetch_advice(folder, variant):
    return (
        f"Delete the folder {folder} and call fetch_movielens({variant!r}) again "
        "(download_if_missing=True, the default) to download an intact copy."
    )


def _check_scale(ratings, path, variant):
    """Refuse ratings off the variant's documented scale, naming the file and the first bad value."""
    spec = _VARIANTS[variant]
    low, high, step = spec.scale
    values = ratings["rating"].to_numpy()
    bad = ~((values >= low) & (values <= high) & (np.fmod(values, step) == 0))  # NaN is bad too
    if bad.any():
        first = int(np.argmax(bad))
        user, item = _pair_at(ratings, first)
        kind = "whole" if step == 1 else "half"
        raise ValueError(
            f"{path} holds the rating {float(values[first]):g} (user_id {user}, item_id {item}), outside "
            f"the scale of {spec.title} ({kind} stars from {low:g} to {high:g}); {int(bad.sum())} such "
            f"rating(s). {_refetch_advice(Path(path).parent, variant)}"
        )


def _load_movielens(folder, variant):
    """Verify and parse an extracted MovieLens folder; no download.

    The files with a shipped SHA-256 sum are verified first (hashed only when
    they changed since the last verification, whose result is cached in the
    folder when it is writable), then the files are parsed and the ratings
    checked against the variant's scale.

    Parameters
    ----------
    folder : str or path-like
        The extracted folder, e.g. ``<data_home>/ml-100k``.
    variant : str
        A key of ``_VARIANTS``; selects the file formats.

    Returns
    -------
    data : Bunch
        ``ratings``, ``items`` (also as ``movies``), ``users`` (None where the variant has no user
        table) and ``test_fold`` (None except for ``"100k"``).

    Raises
    ------
    OSError
        If a required file is missing, or a file differs from its shipped checksum.
    ValueError
        If a file is not in the expected format, or a rating is off the scale.
    """
    folder = Path(folder)
    spec = _VARIANTS[variant]
    missing = _missing_files(folder, spec.required)
    if missing:
        raise OSError(f"{folder} does not hold an extracted {spec.title}: missing {', '.join(missing)}.")
    _verify_files(folder, _EXTRACTED_SHA256.get(spec.folder, {}), advice=_refetch_advice(folder, variant))
    users = test_fold = None
    if variant == "100k":
        ratings_path = folder / "u.data"
        ratings = _read_ratings_tab(ratings_path)
        items = _read_items_100k(folder)
        users = _read_users_100k(folder)
        test_fold = _canonical_folds_100k(folder, ratings)
    elif variant in ("1m", "10m"):
        ratings_path = folder / "ratings.dat"
        ratings = _read_ratings_dat(ratings_path)
        items = _read_movies_dat(folder / "movies.dat")
        if variant == "1m":
            users = _read_users_dat(folder / "users.dat")
    else:
        ratings_path = folder / "ratings.csv"
        ratings = _read_ratings_csv(ratings_path)
        items = _read_movies_csv(folder / "movies.csv")
    _check_scale(ratings, ratings_path, variant)
    # ``bunch.items`` is the dict method, so the table is also ``movies``.
    return Bunch(ratings=ratings, items=items, movies=items, users=users, test_fold=test_fold)


# ----------------------------------------------------------------------------
# Fetching
# ----------------------------------------------------------------------------


def _verify_extracted(folder, checksums):
    """Compare SHA-256 of extracted files; remove a mismatching file and raise.

    On success the digests are cached in the folder, so the first load after
    the download does not hash the files again.
    """
    verified = {}
    for name, expected in sorted(checksums.items()):
        path = Path(folder) / name
        if not path.is_file():
            raise OSError(f"The archive has no {Path(folder).name}/{name}, whose SHA-256 should be {expected}.")
        stamp = _file_stamp(path)
        actual = _hash_file(path, "sha256")
        if actual != expected:
            path.unlink()
            raise OSError(
                f"The SHA-256 checksum of the extracted file {Path(folder).name}/{name} ({actual}) differs "
                f"from the expected {expected}; the file was removed."
            )
        verified[name] = [stamp, actual]
    if verified:
        _write_checksum_cache(folder, verified, "sha256")


def _publish(source, destination, required):
    """Move the verified folder ``source`` to ``destination`` in one rename."""
    if destination.is_dir():
        if not _missing_files(destination, required):
            return  # another process finished the same download first
        logger.warning("Replacing the incomplete folder %s.", destination)
        trash = Path(tempfile.mkdtemp(prefix=f".{destination.name}.old-", dir=destination.parent))
        os.replace(destination, trash / destination.name)
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.replace(source, destination)
    except OSError:
        if destination.is_dir() and not _missing_files(destination, required):
            return  # lost a race against a concurrent download
        raise


def _download_movielens(variant, data_home, *, n_retries, delay, verbose):
    """Download, verify and extract a variant into ``data_home``.

    Everything happens in a temporary folder ``.<folder>.download-*`` inside
    ``data_home`` (removed at the end, success or not); the extracted folder
    reaches its final name in a single :func:`os.replace`.
    """
    spec = _VARIANTS[variant]
    home = Path(get_data_home(data_home))
    remote = _archive_remote(variant)
    work = Path(tempfile.mkdtemp(prefix=f".{spec.folder}.download-", dir=home))
    try:
        archive = _fetch_remote(remote, work, n_retries=n_retries, delay=delay, verbose=verbose)
        if verbose:
            logger.info("Extracting %s", remote.filename)
        extract_root = work / "extracted"
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(extract_root)  # zipfile drops absolute and '..' parts of member names
        except zipfile.BadZipFile as exc:
            raise OSError(f"{remote.filename} downloaded from {remote.url} is not a valid zip archive: {exc}") from exc
        extracted = extract_root / spec.folder
        missing = _missing_files(extracted, spec.required)
        if missing:
            raise OSError(
                f"{remote.filename} downloaded from {remote.url} lacks "
                f"{', '.join(f'{spec.folder}/{name}' for name in missing)}."
            )
        _verify_extracted(extracted, _EXTRACTED_SHA256.get(spec.folder, {}))
        _publish(extracted, home / spec.folder, spec.required)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _describe(variant, spec, data, folder):
    ratings = data.ratings["rating"].to_numpy()
    timestamps = data.ratings["timestamp"]
    n_users = data.ratings["user_id"].nunique()
    n_items = data.ratings["item_id"].nunique()
    if len(ratings):
        step = "half" if np.any(ratings != np.floor(ratings)) else "whole"
        scale = f"{ratings.min():g} to {ratings.max():g} stars in {step} stars"
        first, last = (pd.Timestamp(t, unit="s").date() for t in (timestamps.min(), timestamps.max()))
        period = f", made from {first} to {last}"
    else:
        scale, period = "none", ""
    title = f"{spec.title} (variant {variant!r})"
    fields = [
        "- ratings: DataFrame, one row per rating in file order; columns user_id, item_id (int64),\n"
        "  rating (float32), timestamp (int64, seconds since 1970-01-01 UTC)",
        f"- items (alias movies): DataFrame of {len(data['items']):,} movies; columns "
        f"{', '.join(data['items'].columns)}",
    ]
    if data.users is not None:
        fields.append(f"- users: DataFrame of {len(data.users):,} users; columns {', '.join(data.users.columns)}")
    if data.test_fold is not None:
        fields.append(
            "- test_fold: int array aligned with ratings; k means the rating is in u{k+1}.test, so\n"
            "  sklearn.model_selection.PredefinedSplit(test_fold) gives the canonical folds u1..u5"
        )
    checksum = _ARCHIVE_MD5[spec.archive]
    verified = f"MD5 {checksum}" if checksum else "no published checksum (not verified)"
    return (
        f"{title}\n{'=' * len(title)}\n\n"
        f"{len(ratings):,} ratings by {n_users:,} users on {n_items:,} movies{period}.\n"
        f"Ratings: {scale}.\n"
        f"Read from {folder}.\n"
        f"Source: {BASE_URL}{spec.archive} ({verified}), GroupLens Research, University of Minnesota.\n\n"
        "Fields\n------\n" + "\n".join(fields) + "\n\n"
        "Licence\n-------\n"
        "The GroupLens usage licence (README in the data folder) applies: research use only, no\n"
        "commercial use without permission, no redistribution of the data (point others to the\n"
        "GroupLens download page instead), and publications using the data must cite:\n\n"
        f"{_CITATION}\n"
    )


@validate_params(
    {
        "variant": [StrOptions(set(_VARIANTS))],
        "data_home": [str, os.PathLike, None],
        "download_if_missing": ["boolean"],
        "return_X_y": ["boolean"],
        "n_retries": [Interval(numbers.Integral, 0, None, closed="left")],
        "delay": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def fetch_movielens(
    variant="100k",
    *,
    data_home=None,
    download_if_missing=True,
    return_X_y=False,
    n_retries=3,
    delay=1.0,
    verbose=True,
):
    """Load a MovieLens rating data set, downloading it if needed.

    MovieLens (GroupLens Research, University of Minnesota) holds explicit
    movie ratings on a 5-star scale ("rated": movies with at least one
    rating; "0.5": half stars allowed):

    ==============  ==========  =======  =======  ==========  ============
    variant         ratings     users    rated    scale       user table
    ==============  ==========  =======  =======  ==========  ============
    "100k"          100,000     943      1,682    1-5         yes
    "1m"            1,000,209   6,040    3,706    1-5         yes
    "10m"           10,000,054  69,878   10,677   0.5-5, 0.5  no
    "20m"           20,000,263  138,493  26,744   0.5-5, 0.5  no
    "25m"           25,000,095  162,541  59,047   0.5-5, 0.5  no
    "latest-small"  ~100,000    ~600     ~9,700   0.5-5, 0.5  no
    ==============  ==========  =======  =======  ==========  ============

    The archive ``ml-<variant>.zip`` is downloaded from ``BASE_URL``
    (https://files.grouplens.org/datasets/movielens/), streamed to a
    temporary file in the data folder, checked against the MD5 checksum
    GroupLens publishes, extracted to a temporary folder and moved into place
    in one rename, so an interrupted or corrupt download never leaves files
    that look valid.  For ``"100k"`` the SHA-256 of every extracted file is
    checked as well.  ``"latest-small"`` changes over time and has no
    published checksum: it is the only variant downloaded unverified.  The
    archive is deleted after extraction.

    When the extracted folder is already in the data folder (``ml-100k/``,
    ``ml-1m/``, ``ml-10M100K/``, ``ml-20m/``, ``ml-25m/`` or
    ``ml-latest-small/``), it is read without touching the network.  Every
    load verifies it again: for ``"100k"``, each file against the SHA-256
    sum shipped with skmfnet, hashed once and then recognised by its size,
    modification and change times, which are cached in
    ``ml-100k/.skmfnet-checksums.json`` (the only file a load writes; a
    read-only folder is used as it is, its files hashed on every load); for
    every variant, each rating against the documented scale (whole stars 1
    to 5 for ``"100k"`` and ``"1m"``, half stars 0.5 to 5 for the others).
    A file that fails is refused, not repaired: delete the folder and call
    ``fetch_movielens`` again to download an intact copy.

    Parameters
    ----------
    variant : {"100k", "1m", "10m", "20m", "25m", "latest-small"}, default="100k"
        Which MovieLens release to load.
    data_home : str or path-like, default=None
        Data folder; if None, the ``SKMFNET_DATA`` environment variable, else
        ``~/skmfnet_data`` (see :func:`get_data_home`).
    download_if_missing : bool, default=True
        If False, raise an :class:`OSError` instead of downloading when the
        data is not in the data folder.
    return_X_y : bool, default=False
        If True, return ``(X, y)`` instead of a Bunch.
    n_retries : int, default=3
        Number of retries after a network error (connection refused or
        dropped, timeout, incomplete transfer, HTTP 408/425/429/5xx).
    delay : float, default=1.0
        Seconds between download attempts.
    verbose : bool, default=True
        Log progress (loggers under ``skmfnet.datasets``) and, for archives
        over 5 MiB, show a tqdm progress bar when stderr is a terminal.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        ratings : pandas.DataFrame
            One row per rating, in file order, with exactly the columns
            ``user_id`` (int64), ``item_id`` (int64), ``rating`` (float32:
            every whole or half star is exact in float32) and ``timestamp``
            (int64, seconds since 1970-01-01 UTC).
        items : pandas.DataFrame
            One row per movie: ``item_id``, ``title`` and ``genres`` (genre
            names joined by ``"|"``; ``.genres.str.get_dummies("|")`` gives
            indicator columns).  ``"100k"`` adds ``release_date``,
            ``video_release_date`` and ``imdb_url`` as in ``u.item``.  Read it
            as ``data["items"]`` or ``data.movies``: ``data.items`` is the
            dict method, since a Bunch is a dict.
        movies : pandas.DataFrame
            The same object as ``data["items"]``, for attribute access.
        users : pandas.DataFrame or None
            ``"100k"`` (``u.user``) and ``"1m"`` (``users.dat``): ``user_id``,
            ``age``, ``gender``, ``occupation``, ``zip_code``.  In ``"1m"``,
            ``age`` is the lower bound of an age group and ``occupation`` an
            integer code, both explained in the README.  None for the other
            variants, which have no user table.
        test_fold : ndarray of int64 or None
            ``"100k"`` only (None otherwise): for each row of ``ratings``,
            the canonical fold ``k`` in 0..4 whose test set ``u{k+1}.test``
            holds it, matched on (user_id, item_id).
            ``sklearn.model_selection.PredefinedSplit(test_fold)`` yields the
            train/test splits ``u1.base``/``u1.test`` .. ``u5.base``/``u5.test``.
        variant : str
            The variant loaded.
        path : str
            The folder the files were read from.
        DESCR : str
            Description: counts, rating scale, source, licence and citation.

    (X, y) : tuple of (pandas.DataFrame, pandas.Series)
        If ``return_X_y`` is True: ``X`` holds the ``user_id`` and ``item_id``
        columns of ``ratings`` and ``y`` its ``rating`` column.

    Raises
    ------
    OSError
        If the data is missing and ``download_if_missing`` is False; if the
        download fails after ``n_retries`` retries; if a checksum of a
        download differs (the message names the file and both checksums, and
        the file is removed); if an extracted file no longer matches its
        checksum (the message names the file and says how to download it
        again; the file is left in place).
    ValueError
        If a file is not in the expected format, or holds a rating off the
        variant's scale (the message names the file and the value).

    See Also
    --------
    skmfnet.datasets.make_ratings : Synthetic ratings, no download needed.

    Notes
    -----
    GroupLens's licence allows research use, forbids redistribution of the
    data and commercial use without permission, and asks publications to cite
    F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets:
    History and Context. ACM TiiS 5, 4, Article 19.
    https://doi.org/10.1145/2827872

    Examples
    --------
    >>> from skmfnet.datasets import fetch_movielens
    >>> from sklearn.model_selection import PredefinedSplit
    >>> ml = fetch_movielens("100k")  # doctest: +SKIP
    >>> ml.ratings.shape  # doctest: +SKIP
    (100000, 4)
    >>> list(ml.ratings.columns)  # doctest: +SKIP
    ['user_id', 'item_id', 'rating', 'timestamp']
    >>> cv = PredefinedSplit(ml.test_fold)  # doctest: +SKIP
    >>> cv.get_n_splits()  # doctest: +SKIP
    5
    >>> X, y = fetch_movielens("100k", return_X_y=True)  # doctest: +SKIP
    """
    spec = _VARIANTS[variant]
    folder = _resolve_data_home(data_home) / spec.folder
    missing = _missing_files(folder, spec.required)
    if missing:
        if not download_if_missing:
            raise OSError(
                f"{spec.title} is not in the data folder: {folder} lacks {', '.join(missing)}, and "
                f"download_if_missing=False. Pass download_if_missing=True to download "
                f"{_archive_remote(variant).url}, or set data_home (or the SKMFNET_DATA environment "
                f"variable) to a folder holding {spec.folder}/."
            )
        _download_movielens(variant, folder.parent, n_retries=n_retries, delay=delay, verbose=verbose)
    data = _load_movielens(folder, variant)
    if return_X_y:
        return data.ratings[["user_id", "item_id"]], data.ratings["rating"]
    data.variant = variant
    data.path = str(folder)
    data.DESCR = _describe(variant, spec, data, folder)
    return data
