"""The compiled epochs kept on disk, so that a new process does not compile them again.

XLA compiles the compiled path's epoch (:mod:`skmfnet._rowfit`) once per
process and input shape; on MovieLens 100K that is over a third of a first
fit's time (``benchmarks/results/speed_search``: 0.88 s in a new process
with an empty cache, 0.50 s with a filled one), paid again by every new
Python process (a script, a notebook kernel, each worker of a process-based
search).  TensorFlow can keep the compiled
programs on disk and load them in later processes: its
``--tf_xla_persistent_cache_directory`` flag, read from the ``TF_XLA_FLAGS``
environment variable when the process first compiles with XLA.  It has no
Python API and no default location, and an entry that cannot be read (a
damaged file) or written (a full disk) fails the operation that compiles,
so this module is written here rather than taken from a library:

* :func:`enable` (run when :mod:`skmfnet._rowfit` is imported) turns the flag
  on for a folder of its own: ``SKMFNET_CACHE_DIR`` if set (empty: the cache
  is off), else ``$XDG_CACHE_HOME/skmfnet``, else ``~/.cache/skmfnet``;
  inside it a subfolder named after TensorFlow's version and this processor
  (its architecture and instruction-set flags), so that a home folder shared
  by different machines never loads code compiled for another processor.
  Nothing is changed when ``TF_XLA_FLAGS`` already names a cache folder of
  the user's own (one that skmfnet set in a process that started this one
  is chosen again from this process's settings), when the folder cannot be created or written, when it has
  less than :data:`MIN_FREE_BYTES` free, or when its path holds whitespace
  (which ``TF_XLA_FLAGS`` cannot carry);
* :func:`call` runs a compiled function; if it fails while the cache is on,
  the cache's entries are deleted and the call is made once more, with a
  newly traced function (TensorFlow remembers a failed compilation for the
  function that failed), which compiles from scratch.  TensorFlow loads
  an entry, or compiles and writes one, before the program runs, so the
  second call finds its inputs (the tables' variables included) as the
  first did.

TensorFlow checks that an entry's key and program equal the one it compiles
before using it, and writes each entry to a temporary file that it then
renames, so that processes sharing the folder never read a partial entry.
An entry is about 300 KB (one per distinct program: training rule, batch
size, number of factors and table-size bucket).
"""

import hashlib
import logging
import os
import platform
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

__all__ = ["MIN_FREE_BYTES", "cache_directory", "call", "clear", "enable", "enabled_directory"]

logger = logging.getLogger(__name__)

#: the cache is not turned on for a folder with less free space than this
MIN_FREE_BYTES = 256 << 20
_FLAG = "--tf_xla_persistent_cache_directory"
#: the folder :func:`enable` put in ``TF_XLA_FLAGS`` (child processes inherit both variables)
_INHERITED = "SKMFNET_XLA_CACHE_SET"
#: TensorFlow's entries and its temporary files: its default prefix
_ENTRY_PATTERN = "xla_compile_cache*"
_STATE = {"directory": None}
_LOCK = threading.Lock()


def _machine_tag():
    """TensorFlow's version and a short hash of this processor's architecture and instruction sets."""
    import tensorflow as tf

    features = platform.machine() + platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(("flags", "Features")):  # x86, ARM
                    features += line
                    break
    except OSError:  # not Linux: the architecture and processor name only
        pass
    features += os.environ.get("XLA_FLAGS", "")  # code generation options
    digest = hashlib.sha256(features.encode()).hexdigest()[:12]
    return f"xla-tf{tf.__version__}-{digest}"


def cache_directory():
    """The folder :func:`enable` would use; None when ``SKMFNET_CACHE_DIR`` is set and empty, or there is no home."""
    configured = os.environ.get("SKMFNET_CACHE_DIR")
    if configured is not None:
        if not configured.strip():
            return None
        base = Path(configured).expanduser()
    elif os.environ.get("XDG_CACHE_HOME"):
        base = Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "skmfnet"
    else:
        try:
            base = Path.home() / ".cache" / "skmfnet"
        except (RuntimeError, KeyError, OSError):  # no home folder (some containers): no cache
            return None
    return (base / _machine_tag()).absolute()


def _usable(directory):
    """Whether ``directory`` can be created, written, has room, and can travel in ``TF_XLA_FLAGS``; why not."""
    if any(character.isspace() for character in str(directory)):
        return False, "its path holds whitespace"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe"):
            pass
        free = shutil.disk_usage(directory).free
    except OSError as error:
        return False, str(error)
    if free < MIN_FREE_BYTES:
        return False, f"{free} bytes free, fewer than {MIN_FREE_BYTES}"
    return True, ""


def enable():
    """Turn TensorFlow's persistent XLA cache on for :func:`cache_directory`; return the folder, or None.

    Has an effect only before the process first compiles with XLA (TensorFlow
    reads ``TF_XLA_FLAGS`` once).
    """
    with _LOCK:
        if _STATE["directory"] is not None:
            return _STATE["directory"]
        flags = os.environ.get("TF_XLA_FLAGS", "")
        # the flag skmfnet set in a process that started this one (a joblib
        # worker of a search, a benchmark's worker inherit the environment):
        # chosen again here, from this process's own settings
        inherited = os.environ.pop(_INHERITED, None)
        if inherited is not None:
            flags = " ".join(part for part in flags.split() if part != f"{_FLAG}={inherited}")
            os.environ["TF_XLA_FLAGS"] = flags
        if _FLAG in flags:
            logger.debug("TF_XLA_FLAGS already names a compile cache: left as it is")
            return None
        directory = cache_directory()
        if directory is None:
            return None
        usable, why = _usable(directory)
        if not usable:
            logger.debug("compiled epochs are not kept on disk: %s: %s", directory, why)
            return None
        os.environ["TF_XLA_FLAGS"] = f"{flags} {_FLAG}={directory}".strip()
        os.environ[_INHERITED] = str(directory)
        _STATE["directory"] = directory
        return directory


def enabled_directory():
    """The folder :func:`enable` turned the cache on for, or None."""
    return _STATE["directory"]


def clear(directory):
    """Delete the cache's entries (and TensorFlow's temporary files) in ``directory``; return how many."""
    removed = 0
    for path in Path(directory).glob(_ENTRY_PATTERN):
        try:
            path.unlink()
            removed += 1
        except OSError:  # gone already (another thread), or not ours to delete
            pass
    return removed


def call(function, *args, again=None):
    """``function(*args)``; on failure with the cache on, clear the cache and call ``again()(*args)``.

    ``again`` returns a new function equal to ``function``: TensorFlow
    remembers a failed compilation for the function that failed, so the call
    after clearing needs another one (None: ``function`` itself).
    """
    import tensorflow as tf

    try:
        return function(*args)
    except tf.errors.OpError as error:
        directory = _STATE["directory"]
        if directory is None:
            raise
        clear(directory)
        warnings.warn(
            f"a compiled epoch failed ({type(error).__name__}: {error.message.splitlines()[0][:300]}); the compile "
            f"cache in {directory} was cleared and the epoch is compiled again.  Set SKMFNET_CACHE_DIR to an empty "
            "string to turn the cache off.",
            RuntimeWarning,
            stacklevel=3,
        )
    return (function if again is None else again())(*args)
