"""Data folder and verified, atomic downloads shared by the dataset fetchers.

The data folder is chosen as in :mod:`sklearn.datasets`: the ``data_home``
argument, else the ``SKMFNET_DATA`` environment variable, else
``~/skmfnet_data``.

Downloads are streamed in chunks into a temporary file next to their
destination, checked against a published checksum, and only then renamed into
place with :func:`os.replace`, so an interrupted or corrupt download never
leaves a file under its final name.

Extracted files are checked again on every load by :func:`_verify_files`:
each file is hashed once, and its size, modification time and change time
are remembered in a small cache file in its folder, so that later loads only
``stat`` the files and hash again only the ones that changed.
"""

import hashlib
import http.client
import json
import logging
import os
import shutil
import tempfile
import time
from collections import namedtuple
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from sklearn.utils._param_validation import validate_params
from tqdm import tqdm

__all__ = ["RemoteFileMetadata", "clear_data_home", "get_data_home"]

logger = logging.getLogger(__name__)

#: Environment variable naming the data folder when ``data_home`` is None.
DATA_HOME_ENV = "SKMFNET_DATA"

#: Folder name, inside the user's home, used when neither is given.
DEFAULT_DATA_HOME = os.path.join("~", "skmfnet_data")

RemoteFileMetadata = namedtuple(
    "RemoteFileMetadata", ["filename", "url", "checksum", "algorithm"], defaults=("sha256",)
)
RemoteFileMetadata.__doc__ = """Where a remote file lives and how to verify it.

Parameters
----------
filename : str
    Name the file gets in the destination folder.
url : str
    Where to download it from.
checksum : str or None
    Expected hex digest; None skips verification (only for files whose
    publisher gives no checksum).
algorithm : str, default="sha256"
    Name of the :mod:`hashlib` algorithm the checksum was computed with.
"""

# Chunk size of streamed downloads and of file hashing.
_CHUNK_SIZE = 1 << 20
# Downloads smaller than this never show a progress bar.
_PROGRESS_MIN_BYTES = 5 << 20
# HTTP status codes worth retrying: timeouts, rate limiting and server errors.
_RETRY_HTTP_CODES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Seconds a connection may stay silent before the attempt counts as failed.
_TIMEOUT = 60.0
_USER_AGENT = "skmfnet-dataset-fetcher"


def _resolve_data_home(data_home=None):
    """Path of the data folder, without creating it."""
    if data_home is None:
        data_home = os.environ.get(DATA_HOME_ENV) or DEFAULT_DATA_HOME
    return Path(os.path.expanduser(os.fspath(data_home)))


@validate_params({"data_home": [str, os.PathLike, None]}, prefer_skip_nested_validation=True)
def get_data_home(data_home=None):
    """Return the path of the skmfnet data folder, creating it if needed.

    Fetchers such as :func:`fetch_movielens` keep downloaded data sets there so
    that they are downloaded only once.  The folder is, in order of
    precedence, the ``data_home`` argument, the ``SKMFNET_DATA`` environment
    variable, or ``~/skmfnet_data``.  ``~`` is expanded to the user's home.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The data folder.  If None, use ``SKMFNET_DATA`` or ``~/skmfnet_data``.

    Returns
    -------
    data_home : str
        The path of the data folder, which exists on return.

    See Also
    --------
    clear_data_home : Delete the data folder and everything in it.

    Examples
    --------
    >>> import os, tempfile
    >>> from skmfnet.datasets import get_data_home
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = get_data_home(os.path.join(tmp, "skmfnet_data"))
    ...     os.path.isdir(path)
    True
    """
    path = _resolve_data_home(data_home)
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


@validate_params({"data_home": [str, os.PathLike, None]}, prefer_skip_nested_validation=True)
def clear_data_home(data_home=None):
    """Delete the skmfnet data folder and everything in it.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The data folder, chosen as in :func:`get_data_home`.

    See Also
    --------
    get_data_home : Where the data folder is.

    Examples
    --------
    >>> import os, tempfile
    >>> from skmfnet.datasets import clear_data_home, get_data_home
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = get_data_home(os.path.join(tmp, "skmfnet_data"))
    ...     clear_data_home(path)
    ...     os.path.exists(path)
    False
    """
    path = _resolve_data_home(data_home)
    if path.exists():
        shutil.rmtree(path)


def _hash_file(path, algorithm="sha256"):
    """Hex digest of the file at ``path``, read in chunks."""
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_SIZE):
            hasher.update(chunk)
    return hasher.hexdigest()


#: Cache of the checksums of a folder's verified files, kept in that folder.
CHECKSUM_CACHE = ".skmfnet-checksums.json"
_CHECKSUM_CACHE_VERSION = 1


def _file_stamp(path):
    """What must stay the same for a verified file to count as unchanged.

    The change time (``st_ctime_ns``) is updated by the system on every
    write and cannot be set back, unlike the modification time.
    """
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _read_checksum_cache(folder, algorithm):
    """{file name: [stamp, digest]} from the cache file of ``folder``; {} if absent or unusable."""
    try:
        with open(Path(folder) / CHECKSUM_CACHE, encoding="utf-8") as f:
            cache = json.load(f)
    except (OSError, ValueError):
        return {}
    if (
        not isinstance(cache, dict)
        or cache.get("version") != _CHECKSUM_CACHE_VERSION
        or cache.get("algorithm") != algorithm
        or not isinstance(cache.get("files"), dict)
    ):
        return {}
    return cache["files"]


def _writable(folder):
    """Whether ``folder`` may be written to: permitted, and not marked read-only.

    A folder whose permission bits allow no writing (``chmod a-w``) counts as
    read-only even for a user, such as root, whom the system would let write.
    """
    try:
        mode = os.stat(folder).st_mode
    except OSError:
        return False
    return bool(mode & 0o222) and os.access(folder, os.W_OK)


def _write_checksum_cache(folder, files, algorithm):
    """Replace the cache file of ``folder`` atomically; silently skipped when it cannot be written."""
    folder = Path(folder)
    if not _writable(folder):
        logger.debug("%s is read-only: its checksums are not cached.", folder)
        return
    content = {"version": _CHECKSUM_CACHE_VERSION, "algorithm": algorithm, "files": files}
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{CHECKSUM_CACHE}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        logger.debug("Could not cache the checksums of %s: %s", folder, exc)
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(content, f, indent=0, sort_keys=True)
        os.replace(tmp, folder / CHECKSUM_CACHE)
    except OSError as exc:
        _unlink_quietly(tmp)
        logger.debug("Could not cache the checksums of %s: %s", folder, exc)


def _display_name(algorithm):
    """``"sha256"`` -> ``"SHA-256"``, ``"md5"`` -> ``"MD5"``."""
    name = algorithm.upper()
    return f"SHA-{name[3:]}" if name.startswith("SHA") and name[3:].isdigit() else name


def _verify_files(folder, checksums, *, algorithm="sha256", advice=""):
    """Check the files of ``folder`` against ``checksums``, hashing only what changed.

    A file whose size, modification time and change time equal those cached
    when it last matched the same expected digest is not read again; any
    other file is hashed, and the cache (:data:`CHECKSUM_CACHE` in
    ``folder``) is rewritten when something changed and the folder is
    writable.  Names of ``checksums`` that are not files of ``folder`` are
    skipped: the caller decides which files are required.

    Parameters
    ----------
    folder : str or path-like
        The folder holding the files.
    checksums : dict of str to str
        File name -> expected hex digest.
    algorithm : str, default="sha256"
        Name of the :mod:`hashlib` algorithm of the digests.
    advice : str, default=""
        Appended to the error message: how to get an intact copy.

    Raises
    ------
    OSError
        If a file differs from its checksum; the message names the file and
        both digests.  The file is left in place.
    """
    folder = Path(folder)
    cached = _read_checksum_cache(folder, algorithm)
    verified = {}
    for name, expected in sorted(checksums.items()):
        path = folder / name
        try:
            stamp = _file_stamp(path)  # before reading: a change while hashing shows next time
        except FileNotFoundError:
            continue
        if cached.get(name) == [stamp, expected]:
            verified[name] = cached[name]
            continue
        actual = _hash_file(path, algorithm)
        if actual != expected:
            raise OSError(
                f"{folder.name}/{name} does not match the {_display_name(algorithm)} checksum of the original "
                f"file ({actual}, expected {expected}): it was modified or damaged after the download. "
                f"{advice}".rstrip()
            )
        verified[name] = [stamp, actual]
    if verified != cached:
        _write_checksum_cache(folder, verified, algorithm)


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _stream_to_file(url, path, *, hasher, desc, verbose):
    """One download attempt of ``url`` into ``path``; returns the hex digest.

    Raises :class:`http.client.IncompleteRead` when the server closes the
    connection before sending the announced ``Content-Length`` (urllib itself
    does not check this on chunked reads).
    """
    request = Request(url, headers={"User-Agent": _USER_AGENT})
    with urlopen(request, timeout=_TIMEOUT) as response, open(path, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length is not None and length.strip().isdigit() else None
        show = verbose and total is not None and total >= _PROGRESS_MIN_BYTES
        received = 0
        # disable=None lets tqdm hide the bar when stderr is not a terminal.
        with tqdm(
            total=total,
            desc=desc,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=None if show else True,
            leave=False,
        ) as bar:
            while chunk := response.read(_CHUNK_SIZE):
                out.write(chunk)
                hasher.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if total is not None and received < total:
            raise http.client.IncompleteRead(b"", total - received)
    return hasher.hexdigest()


def _fetch_remote(remote, dirname, *, n_retries=3, delay=1.0, verbose=True):
    """Download ``remote`` into ``dirname``, verified and atomically.

    The file is streamed into a temporary file ``.<filename>.part-*`` inside
    ``dirname``, its checksum is compared with ``remote.checksum``, and only
    then is it renamed to ``dirname / remote.filename`` with :func:`os.replace`.
    On any failure, including an interrupt, the temporary file is removed.  If
    the destination already exists and matches the checksum, it is returned
    without touching the network.

    Network errors (:class:`~urllib.error.URLError`, :class:`ConnectionError`,
    :class:`TimeoutError`, incomplete reads and other
    :class:`http.client.HTTPException`, and HTTP status codes 408, 425, 429 and
    5xx) are retried ``n_retries`` times, ``delay`` seconds apart; other HTTP
    errors (such as 404) are not.

    Parameters
    ----------
    remote : RemoteFileMetadata
        Url, file name, checksum and checksum algorithm.
    dirname : str or path-like
        Existing folder to save the file in.
    n_retries : int, default=3
        Number of retries after a failed attempt.
    delay : float, default=1.0
        Seconds to wait between attempts.
    verbose : bool, default=True
        Log progress and show a progress bar for files of known size over
        5 MiB when stderr is a terminal.

    Returns
    -------
    path : pathlib.Path
        The verified file.

    Raises
    ------
    OSError
        If every attempt failed (the last error is chained as ``__cause__``),
        or if the checksum of the downloaded file differs from the expected
        one; the message then names the file and both checksums, and the file
        is removed.
    """
    folder = Path(dirname)
    destination = folder / remote.filename
    if destination.exists():
        if remote.checksum is None or _hash_file(destination, remote.algorithm) == remote.checksum:
            return destination
        logger.warning("%s does not match its %s checksum: downloading it again.", destination, remote.algorithm)

    fd, part_name = tempfile.mkstemp(prefix=f".{remote.filename}.part-", dir=folder)
    os.close(fd)
    part = Path(part_name)
    try:
        for attempt in range(n_retries + 1):
            try:
                if verbose:
                    logger.info("Downloading %s to %s", remote.url, destination)
                digest = _stream_to_file(
                    remote.url, part, hasher=hashlib.new(remote.algorithm), desc=remote.filename, verbose=verbose
                )
                break
            except HTTPError as exc:
                if exc.code not in _RETRY_HTTP_CODES:
                    raise OSError(
                        f"Downloading {remote.url} failed with HTTP status {exc.code} ({exc.reason})."
                    ) from exc
                error = exc
            except (URLError, ConnectionError, TimeoutError, http.client.HTTPException) as exc:
                error = exc
            if attempt < n_retries:
                logger.warning(
                    "Downloading %s failed (%r); retrying in %g s (%d of %d retries left).",
                    remote.url,
                    error,
                    delay,
                    n_retries - attempt,
                    n_retries,
                )
                time.sleep(delay)
        else:
            raise OSError(
                f"Downloading {remote.url} failed after {n_retries + 1} attempt(s); last error: {error!r}. "
                "Check the network connection, or pass a larger n_retries or delay."
            ) from error

        if remote.checksum is not None and digest != remote.checksum:
            raise OSError(
                f"The {remote.algorithm.upper()} checksum of the downloaded file {remote.filename} ({digest}) "
                f"differs from the expected {remote.checksum}; the file was removed. "
                f"It may have been corrupted in transit, or {remote.url} may have changed."
            )
        os.replace(part, destination)
    except BaseException:
        _unlink_quietly(part)
        raise
    if remote.checksum is None:
        logger.info("%s has no published checksum: its integrity was not verified.", remote.filename)
    return destination
