"""Sphinx configuration of the skmfnet documentation.

Build (warnings are errors)::

    python -m sphinx -W -b html docs docs/_build/html
"""

import os
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import skmfnet  # noqa: E402

project = "skmfnet"
author = "skmfnet developers"
copyright = "skmfnet developers"
release = skmfnet.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
default_role = "literal"

# --- autodoc / autosummary / numpydoc ----------------------------------------
autosummary_generate = True  # stubs go to docs/api/generated/ (not committed)
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False  # the class template lists the methods
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# --- cross-references (offline builds warn only through -W on our own pages) --
intersphinx_mapping = {}
if os.environ.get("SKMFNET_DOCS_INTERSPHINX"):
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "scipy": ("https://docs.scipy.org/doc/scipy", None),
        "pandas": ("https://pandas.pydata.org/docs", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "matplotlib": ("https://matplotlib.org/stable", None),
        "keras": ("https://keras.io/api", None),
    }
nitpicky = False

# --- HTML ------------------------------------------------------------------
try:
    import pydata_sphinx_theme  # noqa: F401

    html_theme = "pydata_sphinx_theme"
    html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
except ImportError:  # the docs extra installs it; alabaster ships with Sphinx
    html_theme = "alabaster"
html_title = f"skmfnet {release}"
html_static_path = []


# --- pages that depend on files outside docs/ ---------------------------------
# benchmarks/results/: suite/ (benchmarks/run.py), speed/ (benchmarks/speed.py), tuning/, explore/
BENCHMARK_RESULTS = Path(os.environ.get("SKMFNET_BENCHMARK_RESULTS", ROOT / "benchmarks" / "results"))


def _benchmark_results_rst():
    """The benchmark page's results section: the committed results.md if any, else how to make it."""
    markdown = BENCHMARK_RESULTS / "suite" / "results.md"
    chart = BENCHMARK_RESULTS / "suite" / "rmse.png"
    if not markdown.is_file():
        return (
            "No full benchmark results are in this checkout yet "
            "(``benchmarks/results/suite/results.md``). Run ``python benchmarks/run.py`` from the "
            "repository root to produce them: the table, a JSON of every figure and the charts "
            "are written to ``benchmarks/results/suite/``.\n"
        )
    text = (
        "The table below is ``benchmarks/results/suite/results.md`` as committed, written by the run "
        "it describes (command, machine and library versions at its top).\n\n"
    )
    if chart.is_file():
        text += f".. image:: /{os.path.relpath(chart, DOCS)}\n   :alt: Test RMSE by model\n\n"
    text += f".. literalinclude:: /{os.path.relpath(markdown, DOCS)}\n   :language: markdown\n"
    # runs committed beside the full run
    for extra, title in [
        (BENCHMARK_RESULTS / "speed" / "speed.md", "Speed and scale (``benchmarks/speed.py``)"),
        (BENCHMARK_RESULTS / "speed" / "speed_25m" / "speed.md", "Scale: 25 million ratings"),
    ]:
        if extra.is_file():
            text += f"\n{title}\n{'~' * len(title)}\n\n"
            text += f".. literalinclude:: /{os.path.relpath(extra, DOCS)}\n   :language: markdown\n"
    return text


def _public_or_private(name, private_module):
    """``skmfnet.NAME`` once the package exports it, else its defining module."""
    return f"skmfnet.{name}" if name in getattr(skmfnet, "_LAZY", {}) or name in vars(skmfnet) else f"{private_module}.{name}"


def _source_read(app, docname, source):
    if docname == "benchmarks":
        source[0] = source[0].replace("@BENCHMARK_RESULTS@", _benchmark_results_rst())
    if docname == "api":
        directives = []
        for name, module, kind in [
            ("recommend", "skmfnet._recommend", "autofunction"),
            ("save_estimator", "skmfnet._persistence", "autofunction"),
            ("load_estimator", "skmfnet._persistence", "autofunction"),
            ("InvalidModelFileError", "skmfnet._persistence", "autoexception"),
        ]:
            directives.append(f".. {kind}:: {_public_or_private(name, module)}\n")
        source[0] = source[0].replace("@RECOMMEND_AND_FILES@", "\n".join(directives))


_SKLEARN_ROLE = re.compile(r":(?:ref|term):`([^`<]*?)(?:\s*<([^`>]*)>)?`")


def _sklearn_docstring(app, what, name, obj, options, lines):
    """Docstrings inherited from scikit-learn cite its glossary and labels: keep their text."""
    module = getattr(obj, "__module__", "") or ""
    if module.startswith("sklearn"):
        lines[:] = [_SKLEARN_ROLE.sub(lambda m: f"*{m.group(1).strip() or m.group(2)}*", line) for line in lines]


_FIELD = re.compile(r"^(\s*[\w*][\w, *]* : )(.*)$")
_TRAILING_UNDERSCORE = re.compile(r"(?<![\\`])\b([A-Za-z]\w*?)_(?=[\s,)+\]]|$)")


def _escape_attribute_names(app, what, name, obj, options, lines):
    """In numpydoc "name : type" lines, ``n_users_`` in the type would be a link target: escape it."""
    for k, line in enumerate(lines):
        match = _FIELD.match(line)
        if match and "`" not in match.group(2):
            lines[k] = match.group(1) + _TRAILING_UNDERSCORE.sub(r"\1\\_", match.group(2))


#: scikeras methods that EmbeddingMFRegressor disables (they would bypass the id encoding)
_DISABLED = {"initialize", "partial_fit"}


def _skip_member(app, what, name, obj, skip, options):
    """Leave out scikit-learn's metadata-routing setters (set_fit_request, ...) and disabled methods."""
    if re.fullmatch(r"set_\w+_request", name) or name in _DISABLED:
        return True
    return None


def setup(app):
    app.connect("source-read", _source_read)
    app.connect("autodoc-process-docstring", _sklearn_docstring)
    app.connect("autodoc-process-docstring", _escape_attribute_names, priority=100)  # before numpydoc
    app.connect("autodoc-skip-member", _skip_member)
