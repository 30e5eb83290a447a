"""Tests of skmfnet.datasets: data folder, MovieLens parsing, folds and downloads.

Everything runs offline.  The real MovieLens 100K files are read from the
folder named by ``SKMFNET_DATA`` (CI: ``../shared/data``), else from
``../shared/data`` next to the repository root; those tests are skipped only
when neither holds ``ml-100k/``.  Downloads are tested against an HTTP server on
127.0.0.1 serving zip archives built here from small hand-written fixtures in
each variant's format (no MovieLens data is copied).
"""

import hashlib
import io
import os
import re
import shutil
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import PredefinedSplit

from _data import REAL_HOME, needs_real_100k
from skmfnet.datasets import _base, _movielens, clear_data_home, fetch_movielens, get_data_home, make_ratings

COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
VARIANTS = ["100k", "1m", "10m", "20m", "25m", "latest-small"]
FOLDERS = {
    "100k": "ml-100k",
    "1m": "ml-1m",
    "10m": "ml-10M100K",
    "20m": "ml-20m",
    "25m": "ml-25m",
    "latest-small": "ml-latest-small",
}


# ---------------------------------------------------------------------------
# Where the real MovieLens 100K is
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_100k():
    return fetch_movielens("100k", data_home=REAL_HOME, download_if_missing=False)


def _read_pairs(path):
    table = pd.read_csv(path, sep="\t", header=None, names=COLUMNS)
    return set(zip(table.user_id.tolist(), table.item_id.tolist()))


def _snapshot(folder):
    return sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in Path(folder).rglob("*"))


# ---------------------------------------------------------------------------
# Hand-written fixtures, one per file format (not MovieLens data)
# ---------------------------------------------------------------------------

# user, item, rating, timestamp; and the canonical test fold of each row
_ROWS_100K = [
    (1, 1, 5, 874965758),
    (1, 2, 3, 876893171),
    (1, 3, 4, 878542960),
    (2, 1, 4, 888550871),
    (2, 4, 1, 888551131),
    (3, 2, 2, 889237455),
    (3, 3, 5, 889237269),
    (3, 4, 3, 889236139),
    (1, 4, 2, 875071561),
    (2, 3, 4, 888552084),
]
_FOLDS_100K = [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
]  # fmt: skip


def _flags(*names):
    return "|".join("1" if g in names else "0" for g in _GENRES)


def _tsv(rows):
    return "".join("\t".join(map(str, row)) + "\n" for row in rows)


def _fixture_files(variant):
    """{relative path: bytes} of a tiny data set in the variant's format."""
    if variant == "100k":
        files = {
            "u.data": _tsv(_ROWS_100K).encode(),
            "u.item": (
                f"1|Alpha Film (1995)|01-Jan-1995||http://example.org/a|{_flags('Animation', 'Comedy')}\n"
                f"2|Beta: The Sequel (1996)|05-Feb-1996||http://example.org/b|{_flags('Action')}\n"
                f"3|Misérables, Les (1995)|01-Jan-1995||http://example.org/c|{_flags('Drama', 'War')}\n"
                f"4|unknown||||{_flags('unknown')}\n"
            ).encode("latin-1"),
            "u.user": b"1|24|M|technician|85711\n2|53|F|other|94043\n3|33|M|writer|T8H1N\n",
            "u.genre": "".join(f"{g}|{k}\n" for k, g in enumerate(_GENRES)).encode() + b"\n",
            "README": b"Tiny test fixture in the MovieLens 100K format.\n",
        }
        for k in range(5):
            test = [r for r, f in zip(_ROWS_100K, _FOLDS_100K) if f == k]
            base = [r for r, f in zip(_ROWS_100K, _FOLDS_100K) if f != k]
            files[f"u{k + 1}.test"] = _tsv(test).encode()
            files[f"u{k + 1}.base"] = _tsv(base).encode()
        return files
    if variant == "1m":
        return {
            "ratings.dat": b"1::1193::5::978300760\n1::661::3::978302109\n"
            b"2::1193::4::978298413\n3::3408::1::978297039\n",
            "movies.dat": (
                "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
                "661::Star Wars: Episode IV - A New Hope (1977)::Action|Adventure|Sci-Fi\n"
                '3408::"Great Performances" Misérables (1998)::Musical\n'
            ).encode("latin-1"),
            "users.dat": b"1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n",
        }
    if variant == "10m":
        return {
            "ratings.dat": b"1::122::5::838985046\n1::185::4.5::838983525\n2::122::0.5::868245777\n",
            "movies.dat": (
                "122::Boomerang (1992)::Comedy|Romance\n185::Net, The: Zoë (1995)::Action|Thriller\n"
            ).encode(),
            "tags.dat": b"15::4973::excellent!::1215184630\n",
        }
    return {  # 20m, 25m, latest-small
        "ratings.csv": b"userId,movieId,rating,timestamp\n1,296,5.0,1147880044\n1,307,3.5,1147868828\n"
        b"2,296,0.5,1147868817\n3,11,4.0,964982224\n",
        "movies.csv": 'movieId,title,genres\n11,"American President, The (1995)",Comedy|Drama|Romance\n'
        "296,Pulp Fiction (1994),Comedy|Crime|Drama|Thriller\n"
        '307,"Three Colors: Blue (Trois couleurs: Bleu) (1993)",Drama\n'
        "999,Zoë's Film (2019),(no genres listed)\n".encode(),
    }


def _write_fixture(data_home, variant):
    folder = Path(data_home) / FOLDERS[variant]
    folder.mkdir(parents=True)
    for name, content in _fixture_files(variant).items():
        (folder / name).write_bytes(content)
    return folder


def _zip_fixture(variant, files=None):
    files = _fixture_files(variant) if files is None else files
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(FOLDERS[variant] + "/", b"")
        for name, content in files.items():
            zf.writestr(f"{FOLDERS[variant]}/{name}", content)
    return buffer.getvalue()


def _archive_name(variant):
    return f"ml-{variant}.zip"


# ---------------------------------------------------------------------------
# Real MovieLens 100K
# ---------------------------------------------------------------------------


@needs_real_100k
def test_real_100k_ratings(real_100k):
    ratings = real_100k.ratings
    assert list(ratings.columns) == COLUMNS
    assert ratings.shape == (100_000, 4)
    assert ratings.user_id.nunique() == 943
    assert ratings.item_id.nunique() == 1682
    assert set(ratings.rating.unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert ratings.dtypes.to_dict() == {
        "user_id": np.int64,
        "item_id": np.int64,
        "rating": np.float32,
        "timestamp": np.int64,
    }
    # file order
    first = pd.read_csv(REAL_HOME / "ml-100k" / "u.data", sep="\t", header=None, nrows=3).to_numpy()
    np.testing.assert_array_equal(ratings.head(3).to_numpy(), first)


@needs_real_100k
def test_real_100k_tables_and_descr(real_100k):
    items = real_100k["items"]
    assert items is real_100k.movies
    assert len(items) == 1682 and items.item_id.is_unique
    assert items.title.str.len().gt(0).all()
    assert items.loc[items.item_id == 1, "title"].item() == "Toy Story (1995)"
    assert items.loc[items.item_id == 1, "genres"].item() == "Animation|Children's|Comedy"
    assert len(real_100k.users) == 943
    assert list(real_100k.users.columns) == ["user_id", "age", "gender", "occupation", "zip_code"]
    assert real_100k.variant == "100k"
    for text in ("100,000 ratings", "943 users", "1,682 movies", "Harper", "https://doi.org/10.1145/2827872"):
        assert text in real_100k.DESCR
    assert "redistribution" in real_100k.DESCR


@needs_real_100k
def test_real_100k_canonical_folds(real_100k):
    test_fold = real_100k.test_fold
    assert test_fold.shape == (100_000,)
    np.testing.assert_array_equal(np.bincount(test_fold), [20_000] * 5)
    pairs = list(zip(real_100k.ratings.user_id.tolist(), real_100k.ratings.item_id.tolist()))
    splits = list(PredefinedSplit(test_fold).split())
    assert len(splits) == 5
    for k, (train, test) in enumerate(splits, start=1):
        assert {pairs[i] for i in test} == _read_pairs(REAL_HOME / "ml-100k" / f"u{k}.test")
        assert {pairs[i] for i in train} == _read_pairs(REAL_HOME / "ml-100k" / f"u{k}.base")


@needs_real_100k
def test_real_100k_return_X_y_and_no_writes():
    before = _snapshot(REAL_HOME)
    X, y = fetch_movielens("100k", data_home=REAL_HOME, download_if_missing=False, return_X_y=True)
    assert list(X.columns) == ["user_id", "item_id"]
    assert y.name == "rating" and len(X) == len(y) == 100_000
    assert _snapshot(REAL_HOME) == before


# ---------------------------------------------------------------------------
# Verification of an extracted folder on every load
# ---------------------------------------------------------------------------


@pytest.fixture
def real_copy(tmp_path):
    """A writable copy of the real ml-100k folder; its parent is the data home."""
    folder = tmp_path / "ml-100k"
    shutil.copytree(REAL_HOME / "ml-100k", folder, copy_function=shutil.copyfile)
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


@pytest.fixture
def hashed(monkeypatch):
    """Names of the files hashed by the verification, in order."""
    names = []
    hash_file = _base._hash_file

    def counting(path, algorithm="sha256"):
        names.append(Path(path).name)
        return hash_file(path, algorithm)

    monkeypatch.setattr(_base, "_hash_file", counting)
    return names


def _replace_once(path, old, new):
    """Replace the first occurrence of ``old`` in the file (bytes or latin-1 text)."""
    old, new = (v.encode("latin-1") if isinstance(v, str) else v for v in (old, new))
    content = path.read_bytes()
    assert old in content
    path.write_bytes(content.replace(old, new, 1))


def _register_sums(monkeypatch, folder):
    """Ship the SHA-256 of the files now in a fixture ml-100k folder, as the real sums are shipped."""
    if Path(folder).name == "ml-100k":
        sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in Path(folder).iterdir()}
        monkeypatch.setitem(_movielens._EXTRACTED_SHA256, "ml-100k", sums)


_EDITS = [
    ("u.data", "196\t242\t3\t881250949", "196\t242\t9\t881250949"),
    ("u.item", "1|Toy Story (1995)|", "1|Toy Story (1996)|"),
    ("u.user", "1|24|M|technician|", "1|25|M|technician|"),
    ("u1.test", "1\t6\t5\t887431973", "1\t6\t1\t887431973"),
]
_EDIT_IDS = ["u.data-rating-9", "u.item-title", "u.user-age", "u1.test-rating"]


def _refused(name):
    return (
        rf"ml-100k/{re.escape(name)} does not match the SHA-256 checksum of the original file "
        rf"\([0-9a-f]{{64}}, expected [0-9a-f]{{64}}\): it was modified or damaged after the download\. "
        rf"Delete the folder .*ml-100k and call fetch_movielens\('100k'\) again"
    )


@needs_real_100k
@pytest.mark.parametrize("name, old, new", _EDITS, ids=_EDIT_IDS)
def test_edited_real_file_is_refused(real_copy, name, old, new):
    _replace_once(real_copy / name, old, new)  # same size
    with pytest.raises(OSError, match=_refused(name)):
        fetch_movielens("100k", data_home=real_copy.parent, download_if_missing=False)


@needs_real_100k
@pytest.mark.parametrize("keep_mtime", [False, True], ids=["edited", "edited-mtime-restored"])
def test_edit_after_a_verified_load_is_refused(real_copy, keep_mtime):
    fetch_movielens("100k", data_home=real_copy.parent, download_if_missing=False)
    path = real_copy / "u.data"
    stat = path.stat()
    _replace_once(path, "196\t242\t3\t", "196\t242\t9\t")
    if keep_mtime:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    with pytest.raises(OSError, match=_refused("u.data")):
        fetch_movielens("100k", data_home=real_copy.parent, download_if_missing=False)


@needs_real_100k
def test_intact_copy_is_hashed_once(real_copy, hashed, real_100k):
    data = fetch_movielens("100k", data_home=real_copy.parent, download_if_missing=False)
    pd.testing.assert_frame_equal(data.ratings, real_100k.ratings)
    assert sorted(hashed) == sorted(_movielens._EXTRACTED_SHA256["ml-100k"])  # every shipped sum, once
    hashed.clear()
    again = fetch_movielens("100k", data_home=real_copy.parent, download_if_missing=False)
    assert hashed == []  # only stat() of each file
    pd.testing.assert_frame_equal(again.ratings, real_100k.ratings)
    _replace_once(real_copy / "u.item", "1|Toy Story (1995)|", "1|Toy Story (1996)|")
    with pytest.raises(OSError, match=_refused("u.item")):
        fetch_movielens("100k", data_home=real_copy.parent, download_if_missing=False)
    assert hashed == ["u.item"]  # only the changed file


@needs_real_100k
def test_read_only_folder_is_verified_without_writing(real_copy, hashed):
    real_copy.chmod(0o555)
    before = _snapshot(real_copy)
    try:
        for _ in range(2):
            hashed.clear()
            fetch_movielens("100k", data_home=real_copy.parent, download_if_missing=False)
            assert sorted(hashed) == sorted(_movielens._EXTRACTED_SHA256["ml-100k"])
    finally:
        real_copy.chmod(0o755)
    assert _snapshot(real_copy) == before


@pytest.mark.parametrize(
    "variant, name, old, new, value, scale",
    [
        ("100k", "u.data", "1\t1\t5\t", "1\t1\t9\t", "9", "whole stars from 1 to 5"),
        ("1m", "ratings.dat", "1::1193::5::", "1::1193::0::", "0", "whole stars from 1 to 5"),
        ("1m", "ratings.dat", "1::661::3::", "1::661::3.5::", "3.5", "whole stars from 1 to 5"),
        ("10m", "ratings.dat", "1::185::4.5::", "1::185::5.5::", "5.5", "half stars from 0.5 to 5"),
        ("10m", "ratings.dat", "1::185::4.5::", "1::185::4.25::", "4.25", "half stars from 0.5 to 5"),
        ("25m", "ratings.csv", "1,307,3.5,", "1,307,-1,", "-1", "half stars from 0.5 to 5"),
        ("latest-small", "ratings.csv", "1,307,3.5,", "1,307,0,", "0", "half stars from 0.5 to 5"),
    ],
    ids=["100k-9", "1m-0", "1m-half-star", "10m-5.5", "10m-quarter-star", "25m-negative", "latest-small-0"],
)
def test_rating_outside_the_scale_is_refused(tmp_path, monkeypatch, variant, name, old, new, value, scale):
    folder = _write_fixture(tmp_path, variant)
    _replace_once(folder / name, old, new)
    _register_sums(monkeypatch, folder)  # 100k: the checksums pass, the scale check does not
    match = (
        rf"{re.escape(name)} holds the rating {re.escape(value)} \(user_id 1, item_id \d+\), outside the "
        rf"scale of MovieLens {variant.upper() if variant != 'latest-small' else 'Latest Small'} "
        rf"\({scale}\)"
    )
    with pytest.raises(ValueError, match=match):
        fetch_movielens(variant, data_home=tmp_path, download_if_missing=False)


# ---------------------------------------------------------------------------
# Parsing each format
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_parse_fixture_common(tmp_path, monkeypatch, variant):
    _register_sums(monkeypatch, _write_fixture(tmp_path, variant))
    before = _snapshot(tmp_path)
    data = fetch_movielens(variant, data_home=tmp_path, download_if_missing=False)
    after = _snapshot(tmp_path)
    written = {Path(path).name for path, _, _ in set(after) - set(before) if Path(path).is_file()}
    assert written == ({_base.CHECKSUM_CACHE} if variant == "100k" else set())  # nothing but the cache
    ratings = data.ratings
    assert list(ratings.columns) == COLUMNS
    assert [ratings[c].dtype for c in COLUMNS] == [np.int64, np.int64, np.float32, np.int64]
    assert list(data["items"].columns[:3]) == ["item_id", "title", "genres"]
    assert data.path == str(tmp_path / FOLDERS[variant])
    assert (data.users is not None) == (variant in ("100k", "1m"))
    assert (data.test_fold is not None) == (variant == "100k")
    assert f"{len(ratings)} ratings" in data.DESCR
    X, y = fetch_movielens(variant, data_home=tmp_path, download_if_missing=False, return_X_y=True)
    assert _snapshot(tmp_path) == after  # a second load writes nothing
    pd.testing.assert_frame_equal(X, ratings[["user_id", "item_id"]])
    pd.testing.assert_series_equal(y, ratings["rating"])


def test_parse_100k_fixture(tmp_path, monkeypatch):
    _register_sums(monkeypatch, _write_fixture(tmp_path, "100k"))
    data = fetch_movielens("100k", data_home=tmp_path, download_if_missing=False)
    np.testing.assert_array_equal(data.ratings.to_numpy(), np.array(_ROWS_100K))
    items = data["items"].set_index("item_id")
    assert items.loc[3, "title"] == "Misérables, Les (1995)"  # latin-1
    assert items.loc[1, "genres"] == "Animation|Comedy"
    assert items.loc[4, "genres"] == "unknown" and items.loc[4, "release_date"] == ""
    assert data.users.zip_code.tolist() == ["85711", "94043", "T8H1N"]
    assert data.users.age.tolist() == [24, 53, 33]
    np.testing.assert_array_equal(data.test_fold, _FOLDS_100K)
    for k, (train, test) in enumerate(PredefinedSplit(data.test_fold).split(), start=1):
        folder = tmp_path / "ml-100k"
        assert set(zip(data.ratings.user_id[test], data.ratings.item_id[test])) == _read_pairs(folder / f"u{k}.test")
        assert set(zip(data.ratings.user_id[train], data.ratings.item_id[train])) == _read_pairs(folder / f"u{k}.base")


def test_parse_100k_without_u_genre_uses_builtin_names(tmp_path, monkeypatch):
    folder = _write_fixture(tmp_path, "100k")
    _register_sums(monkeypatch, folder)
    (folder / "u.genre").unlink()  # a file with a sum may be absent when not required
    data = fetch_movielens("100k", data_home=tmp_path, download_if_missing=False)
    assert data["items"].genres.tolist() == ["Animation|Comedy", "Action", "Drama|War", "unknown"]


def test_parse_1m_fixture(tmp_path):
    _write_fixture(tmp_path, "1m")
    data = fetch_movielens("1m", data_home=tmp_path, download_if_missing=False)
    assert data.ratings.user_id.tolist() == [1, 1, 2, 3]
    assert data.ratings.rating.tolist() == [5, 3, 4, 1]
    assert data.ratings.timestamp.tolist()[0] == 978300760
    titles = dict(zip(data.movies.item_id, data.movies.title))
    assert titles[661] == "Star Wars: Episode IV - A New Hope (1977)"  # ':' inside a '::' file
    assert titles[3408] == '"Great Performances" Misérables (1998)'  # quotes kept, latin-1 decoded
    assert data.movies.genres.tolist()[1] == "Action|Adventure|Sci-Fi"
    assert data.users.to_dict("list") == {
        "user_id": [1, 2, 3],
        "age": [1, 56, 25],
        "gender": ["F", "M", "M"],
        "occupation": [10, 16, 15],
        "zip_code": ["48067", "70072", "55117"],
    }


def test_parse_10m_fixture_half_stars(tmp_path):
    _write_fixture(tmp_path, "10m")
    data = fetch_movielens("10m", data_home=tmp_path, download_if_missing=False)
    assert data.ratings.rating.tolist() == [5.0, 4.5, 0.5]
    assert data.movies.title.tolist() == ["Boomerang (1992)", "Net, The: Zoë (1995)"]  # UTF-8
    assert "half stars" in data.DESCR


@pytest.mark.parametrize("variant", ["20m", "25m", "latest-small"])
def test_parse_csv_fixture(tmp_path, variant):
    _write_fixture(tmp_path, variant)
    data = fetch_movielens(variant, data_home=tmp_path, download_if_missing=False)
    assert data.ratings.to_dict("list") == {
        "user_id": [1, 1, 2, 3],
        "item_id": [296, 307, 296, 11],
        "rating": [5.0, 3.5, 0.5, 4.0],
        "timestamp": [1147880044, 1147868828, 1147868817, 964982224],
    }
    assert data.movies.title.tolist()[0] == "American President, The (1995)"
    assert data.movies.title.tolist()[3] == "Zoë's Film (2019)"
    assert data.movies.genres.tolist()[3] == "(no genres listed)"


@pytest.mark.parametrize(
    "variant, name, content, match",
    [
        ("100k", "u.data", b"1\t2\t3\t4\t5\n", r"u\.data.*4 '\\t'-separated fields; got 5"),
        ("100k", "u.data", b"1\t2\tfive\t4\n", r"Could not parse .*u\.data"),
        ("1m", "ratings.dat", b"1,2,3,4\n", r"ratings\.dat.*4 '::'-separated fields; got 1"),
        ("1m", "movies.dat", b"1::Title\n", r"movies\.dat.*line 1 should have 3"),
        ("25m", "ratings.csv", b"user,item,rating,timestamp\n1,2,3,4\n", r"ratings\.csv.*header should be"),
        ("25m", "movies.csv", b"id,name,genres\n1,A,B\n", r"movies\.csv.*header should be"),
    ],
    ids=["100k-extra-field", "100k-not-a-number", "1m-commas", "1m-movies", "csv-header", "csv-movies"],
)
def test_parse_bad_format(tmp_path, monkeypatch, variant, name, content, match):
    folder = _write_fixture(tmp_path, variant)
    (folder / name).write_bytes(content)
    _register_sums(monkeypatch, folder)  # 100k: get past the checksums to the parser
    with pytest.raises(ValueError, match=match):
        fetch_movielens(variant, data_home=tmp_path, download_if_missing=False)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"u2.test": _tsv(_ROWS_100K[:2])}, r"u2\.test and an earlier u\*\.test file both hold .*\(1, 1\)"),
        ({"u5.test": _tsv(_ROWS_100K[4:5])}, r"1 rating\(s\) of .*u\.data are in none of"),
        ({"u3.test": "9\t9\t1\t1\n"}, r"u3\.test has \(user_id, item_id\) = \(9, 9\), which is not in u\.data"),
    ],
    ids=["overlap", "not-covering", "unknown-pair"],
)
def test_100k_fold_errors(tmp_path, monkeypatch, change, match):
    folder = _write_fixture(tmp_path, "100k")
    for name, text in change.items():
        (folder / name).write_text(text)
    _register_sums(monkeypatch, folder)
    with pytest.raises(ValueError, match=match):
        fetch_movielens("100k", data_home=tmp_path, download_if_missing=False)


# ---------------------------------------------------------------------------
# Arguments, data folder
# ---------------------------------------------------------------------------


def test_missing_data_without_download(tmp_path):
    home = tmp_path / "not-there"
    with pytest.raises(OSError, match=r"ml-1m.*lacks ratings\.dat.*download_if_missing=False"):
        fetch_movielens("1m", data_home=home, download_if_missing=False)
    assert not home.exists()  # nothing created


def test_incomplete_folder_counts_as_missing(tmp_path):
    (_write_fixture(tmp_path, "100k") / "u3.test").unlink()
    with pytest.raises(OSError, match=r"lacks u3\.test"):
        fetch_movielens("100k", data_home=tmp_path, download_if_missing=False)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"variant": "100K"},
            r"(?=.*'variant' parameter of fetch_movielens must be a str among)"
            + "".join(f"(?=.*'{v}')" for v in VARIANTS)
            + r"(?=.*Got '100K')",
        ),
        ({"variant": "1m", "n_retries": -1}, r"'n_retries' parameter .* Got -1"),
        ({"variant": "1m", "delay": -0.5}, r"'delay' parameter .* Got -0.5"),
    ],
    ids=["variant", "n_retries", "delay"],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fetch_movielens(data_home=tmp_path, download_if_missing=False, **kwargs)


def test_get_data_home_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SKMFNET_DATA", raising=False)
    assert get_data_home() == str(tmp_path / "home" / "skmfnet_data")
    monkeypatch.setenv("SKMFNET_DATA", str(tmp_path / "from-env"))
    assert get_data_home() == str(tmp_path / "from-env")
    assert get_data_home(tmp_path / "from-arg") == str(tmp_path / "from-arg")
    for name in ("home/skmfnet_data", "from-env", "from-arg"):
        assert (tmp_path / name).is_dir()  # created


def test_data_home_from_env_used_by_fetch(tmp_path, monkeypatch):
    _write_fixture(tmp_path, "latest-small")
    monkeypatch.setenv("SKMFNET_DATA", str(tmp_path))
    assert len(fetch_movielens("latest-small", download_if_missing=False).ratings) == 4


def test_clear_data_home(tmp_path, monkeypatch):
    home = tmp_path / "data"
    _write_fixture(home, "1m")
    clear_data_home(home)
    assert not home.exists()
    monkeypatch.setenv("SKMFNET_DATA", str(home))
    get_data_home()
    clear_data_home()
    assert not home.exists()
    clear_data_home(home)  # already gone: no error


def test_make_ratings_still_exported():
    assert make_ratings(5, 4, 10, random_state=0).shape == (10, 3)


# ---------------------------------------------------------------------------
# Downloads against a local HTTP server
# ---------------------------------------------------------------------------


class _Server:
    """Files served over HTTP on 127.0.0.1; ``truncate[path] = n`` cuts the first n responses short."""

    def __init__(self):
        self.files = {}
        self.truncate = {}
        self.requests = []
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                state.requests.append(self.path)
                name = self.path.rsplit("/", 1)[-1]
                if name not in state.files:
                    self.send_error(404)
                    return
                body = state.files[name]
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if state.truncate.get(name, 0) > 0:
                    state.truncate[name] -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True  # drop the connection mid-file
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/datasets/movielens/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()
        self.closed = False

    def close(self):
        if not self.closed:
            self.closed = True
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


@pytest.fixture
def server(monkeypatch):
    srv = _Server()
    monkeypatch.setattr(_movielens, "BASE_URL", srv.url)
    yield srv
    srv.close()


def _serve(server, monkeypatch, variant, files=None, md5=True):
    """Serve the fixture archive of ``variant``; register its checksums."""
    files = _fixture_files(variant) if files is None else files
    body = _zip_fixture(variant, files)
    server.files[_archive_name(variant)] = body
    if variant != "latest-small":  # the one archive without a published checksum
        checksum = hashlib.md5(body).hexdigest() if md5 is True else md5
        monkeypatch.setitem(_movielens._ARCHIVE_MD5, _archive_name(variant), checksum)
    if variant == "100k":
        sums = {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}
        monkeypatch.setitem(_movielens._EXTRACTED_SHA256, "ml-100k", sums)
    return body


@pytest.mark.parametrize("variant", VARIANTS)
def test_download_success(tmp_path, server, monkeypatch, hashed, variant):
    _serve(server, monkeypatch, variant)
    home = tmp_path / "home"
    data = fetch_movielens(variant, data_home=home, delay=0)
    assert hashed == []  # the download verified the files and cached their checksums: not hashed again
    assert server.requests == [f"/datasets/movielens/{_archive_name(variant)}"]
    assert sorted(p.name for p in home.iterdir()) == [FOLDERS[variant]]  # no archive, no temp files
    cache = [_base.CHECKSUM_CACHE] if variant == "100k" else []
    assert sorted(p.name for p in (home / FOLDERS[variant]).iterdir()) == sorted([*_fixture_files(variant), *cache])
    _write_fixture(tmp_path / "local", variant)  # the fixture files, whose sums _serve registered
    expected = fetch_movielens(variant, data_home=tmp_path / "local", download_if_missing=False)
    pd.testing.assert_frame_equal(data.ratings, expected.ratings)
    pd.testing.assert_frame_equal(data["items"], expected["items"])


def test_download_then_cache_without_network(tmp_path, server, monkeypatch):
    _serve(server, monkeypatch, "1m")
    first = fetch_movielens("1m", data_home=tmp_path, delay=0)
    server.close()  # from now on any network access fails
    again = fetch_movielens("1m", data_home=tmp_path, n_retries=0)
    pd.testing.assert_frame_equal(first.ratings, again.ratings)
    assert len(server.requests) == 1


def test_download_checksum_mismatch(tmp_path, server, monkeypatch):
    body = _serve(server, monkeypatch, "1m", md5="0" * 32)
    actual = hashlib.md5(body).hexdigest()
    match = (
        rf"MD5 checksum of the downloaded file ml-1m\.zip \({actual}\) differs from the expected 0{{32}}; "
        "the file was removed"
    )
    with pytest.raises(OSError, match=match):
        fetch_movielens("1m", data_home=tmp_path, delay=0)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OSError, match="download_if_missing=False"):
        fetch_movielens("1m", data_home=tmp_path, download_if_missing=False)


def test_download_extracted_sha256_mismatch(tmp_path, server, monkeypatch):
    _serve(server, monkeypatch, "100k")
    wrong = "f" * 64
    monkeypatch.setitem(_movielens._EXTRACTED_SHA256["ml-100k"], "u.data", wrong)
    actual = hashlib.sha256(_fixture_files("100k")["u.data"]).hexdigest()
    match = rf"extracted file ml-100k/u\.data \({actual}\) differs from the expected {wrong}"
    with pytest.raises(OSError, match=match):
        fetch_movielens("100k", data_home=tmp_path, delay=0)
    assert list(tmp_path.iterdir()) == []


def test_download_connection_dropped(tmp_path, server, monkeypatch):
    _serve(server, monkeypatch, "25m")
    server.truncate[_archive_name("25m")] = 100
    with pytest.raises(OSError, match=r"ml-25m\.zip failed after 3 attempt\(s\); last error: IncompleteRead") as info:
        fetch_movielens("25m", data_home=tmp_path, n_retries=2, delay=0)
    assert len(server.requests) == 3
    assert info.value.__cause__ is not None
    assert list(tmp_path.iterdir()) == []  # no half archive, no half folder, no temp files
    with pytest.raises(OSError, match="download_if_missing=False"):
        fetch_movielens("25m", data_home=tmp_path, download_if_missing=False)


def test_download_retry_then_success(tmp_path, server, monkeypatch):
    _serve(server, monkeypatch, "10m")
    server.truncate[_archive_name("10m")] = 1
    data = fetch_movielens("10m", data_home=tmp_path, n_retries=1, delay=0)
    assert len(server.requests) == 2
    assert data.ratings.rating.tolist() == [5.0, 4.5, 0.5]


def test_download_http_404_is_not_retried(tmp_path, server):
    with pytest.raises(OSError, match=r"ml-20m\.zip failed with HTTP status 404"):
        fetch_movielens("20m", data_home=tmp_path, n_retries=3, delay=0)
    assert len(server.requests) == 1
    assert list(tmp_path.iterdir()) == []


def test_download_unreachable_server(tmp_path, server):
    server.close()
    with pytest.raises(OSError, match=r"failed after 2 attempt\(s\); last error: URLError"):
        fetch_movielens("1m", data_home=tmp_path, n_retries=1, delay=0)
    assert list(tmp_path.iterdir()) == []


def test_download_unverified_archive_that_is_not_a_zip(tmp_path, server):
    server.files["ml-latest-small.zip"] = b"<html>not a zip</html>"
    with pytest.raises(OSError, match=r"ml-latest-small\.zip downloaded from .* is not a valid zip archive"):
        fetch_movielens("latest-small", data_home=tmp_path, delay=0)
    assert list(tmp_path.iterdir()) == []


def test_download_archive_without_expected_files(tmp_path, server, monkeypatch):
    files = _fixture_files("1m")
    del files["users.dat"]
    _serve(server, monkeypatch, "1m", files=files)
    with pytest.raises(OSError, match=r"ml-1m\.zip downloaded from .* lacks ml-1m/users\.dat"):
        fetch_movielens("1m", data_home=tmp_path, delay=0)
    assert list(tmp_path.iterdir()) == []


def test_download_replaces_incomplete_folder(tmp_path, server, monkeypatch):
    _serve(server, monkeypatch, "1m")
    partial = tmp_path / "ml-1m"
    partial.mkdir()
    (partial / "ratings.dat").write_bytes(b"garbage")
    data = fetch_movielens("1m", data_home=tmp_path, delay=0)
    assert len(data.ratings) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-1m"]
