"""TensorFlow's start-up lines, hidden unless the user asks for them.

TensorFlow's C++ libraries write a few lines to standard error while they
load (oneDNN notes, "Could not find cuda drivers", "failed call to cuInit"
on machines without a GPU), some of them before absl's logging starts, so
that ``TF_CPP_MIN_LOG_LEVEL`` does not silence them.  Hence a file
descriptor redirection around the import, the one thing Python's logging
cannot do; the lines that are not TensorFlow's log records are written
back.  The package hides them where it imports TensorFlow (the lazy
imports of :mod:`skmfnet`, loading a network's model file, the command
line) unless the user set ``TF_CPP_MIN_LOG_LEVEL`` (or the command line's
``--verbose``).
"""

import contextlib
import os
import re
import sys
import tempfile

__all__ = ["NATIVE_LOG_LINE", "tensorflow_start_up_hidden"]

#: A line of TensorFlow's C++ logging (absl format), or absl's notice that precedes it.
NATIVE_LOG_LINE = re.compile(
    r"(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] .*)"
)


@contextlib.contextmanager
def tensorflow_start_up_hidden(enabled=None):
    """Hide the lines TensorFlow's C++ libraries write to stderr while they load.

    Some are written before absl's logging is initialised (e.g. "Could not
    find cuda drivers"), so ``TF_CPP_MIN_LOG_LEVEL`` does not apply to them.
    While the block runs, file descriptor 2 goes to a temporary file; then
    every line of it that is not in TensorFlow's log format is written back
    to ``sys.stderr``.  Nothing is done when TensorFlow is already imported.

    ``enabled``: None means "unless the user chose a TensorFlow log level"
    (``TF_CPP_MIN_LOG_LEVEL`` set before skmfnet's import).
    """
    if enabled is None:
        from . import _TF_LOG_LEVEL_CHOSEN

        enabled = not _TF_LOG_LEVEL_CHOSEN
    if not enabled or "tensorflow" in sys.modules:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no file descriptor 2
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept, in_record = [], False
            for line in captured.read().decode("utf-8", "replace").splitlines():
                # a record may run over several lines: drop those up to the next record
                if NATIVE_LOG_LINE.fullmatch(line):
                    in_record = True
                elif not (in_record and not line.startswith(("Traceback", "skmfnet"))):
                    in_record = False
                    kept.append(line)
            if kept:
                print("\n".join(kept), file=sys.stderr)
