"""Where the real MovieLens 100K files are, for the tests that read them.

The folder named by ``SKMFNET_DATA`` (CI: ``../shared/data``; relative paths
are tried from the working directory, then from the repository root), else
``../shared/data`` next to the repository root.  Tests that need the files
are skipped, with the paths tried, only when none holds ``ml-100k/``.
"""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _find():
    candidates = []
    env = os.environ.get("SKMFNET_DATA")
    if env:
        candidates += [Path(env).expanduser(), REPO_ROOT / Path(env).expanduser()]
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for candidate in candidates:
        if (candidate / "ml-100k" / "u.data").is_file():
            return candidate.resolve(), candidates
    return None, candidates


#: The data folder holding ml-100k/, or None.
REAL_HOME, _TRIED = _find()

needs_real_100k = pytest.mark.skipif(
    REAL_HOME is None,
    reason="MovieLens 100K not found: set SKMFNET_DATA to a folder holding ml-100k/ "
    f"(tried {', '.join(map(str, _TRIED))})",
)
