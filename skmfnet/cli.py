"""The ``skmfnet`` command: fetch data, fit, predict and recommend from the shell.

A thin layer over the public API::

    skmfnet fetch 100k --output ratings.csv          # fetch_movielens("100k")
    skmfnet fit ratings.csv --model model.skmf       # EmbeddingMFRegressor().fit + save
    skmfnet predict model.skmf pairs.csv > predictions.csv
    skmfnet recommend model.skmf --user 42 -n 10
    skmfnet similar model.skmf --item 50 -n 10      # est.similar_items([50], n=10)

Tables are CSV (``.tsv``: tab-separated; ``--sep`` names another
separator, e.g. ``--sep tab``) or Parquet (``.parquet``, needs pyarrow); the
user, item and rating columns are found by name (``--user-col`` etc., else
the usual names such as ``user_id``/``item_id``/``rating``), or, with
``--no-header`` (files such as MovieLens' ``u.data``), by position: user
id, item id, then rating.
``fit`` reads ratings with pandas' default type inference; ``predict`` reads
the id columns of its pairs as text and converts them to the types of the
model's ids, as ``recommend`` does with ``--user``.  Results go to standard
output as CSV unless ``--output`` names a file; progress and messages go to
standard error (``--quiet`` silences them; ``--verbose`` adds TensorFlow's
own start-up messages, hidden otherwise).

The arguments are parsed before anything imports TensorFlow, so that its
logging is configured (``TF_CPP_MIN_LOG_LEVEL``) before it starts.
``predict``, ``recommend`` and ``similar`` on a plain dot model (the
defaults) import neither TensorFlow nor scikit-learn: they read the model
file's tables with numpy (:func:`skmfnet._persistence.read_dot_model`) and
answer in well under a second; other models are loaded as estimators.

Argument and file errors are reported before TensorFlow is imported; ``fit``
checks that the model file can be written, and that the factor tables fit in
the machine's memory, before it trains.  Outputs are written to regular files
only (never over a FIFO or a device).

Exit status: 0 on success, 2 on a usage or input error (missing file or
column, bad number or id, damaged model file, output that cannot be
written, a fit that diverged or ran out of memory), reported as one line on
standard error without a traceback, 130 when interrupted.
"""

import argparse
import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

from ._quiet import tensorflow_start_up_hidden

__all__ = ["main"]

_USER_COLUMNS = ("user_id", "user", "userId", "userid", "user id")
_ITEM_COLUMNS = ("item_id", "item", "itemId", "movie_id", "movieId", "itemid", "item id")
_RATING_COLUMNS = ("rating", "ratings", "score", "stars")
_PREDICT_CHUNK = 100_000
_RECOMMEND_CHUNK = 1_000


class UsageError(Exception):
    """A user error: reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (no usage block) and exit with status 2."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ------------------------------------------------------------------ helpers
def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def _non_negative_int(text):
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; got {text!r}")
    return value


def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}") from None


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0; got {text!r}")
    return value


def _positive_float(text):
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0; got {text!r}")
    return value


def _auto_or_positive_float(text):
    """--item-item-alpha: "auto" or a number > 0."""
    return "auto" if text == "auto" else _positive_float(text)


_SEPARATORS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "space": " "}


def _separator(text):
    """--sep: a separator, or its name (tab, comma, semicolon, space; ``\\t`` as typed in a shell)."""
    sep = _SEPARATORS.get(text, text)
    if not sep:
        raise argparse.ArgumentTypeError("expected a separator such as tab, ',' or '::'; got ''")
    return sep


def _read_table(path, text_columns=False, sep=None, names=None):
    """The table at ``path``; with ``text_columns``, CSV and TSV columns are read as text.

    As text, only empty cells are missing values (NaN); ``NA`` or ``null``
    stay ids.  Parquet columns keep the types stored in the file.  ``sep``:
    the separator (default: tab for ``.tsv``, else comma); ``names``: the
    file has no header, and its first columns are given these names.
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise UsageError(f"file not found: {path}")
    if path.is_dir():
        raise UsageError(f"{path} is a folder, not a file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            try:
                return pd.read_parquet(path)
            except ImportError:
                raise UsageError(
                    f"reading Parquet files such as {path} needs pyarrow: pip install pyarrow"
                ) from None
        options = dict(sep=sep or ("\t" if suffix == ".tsv" else ","))
        if len(options["sep"]) > 1:  # e.g. MovieLens 1M's "::": pandas reads it with its Python engine
            options["engine"] = "python"
        if names is not None:
            options["header"] = None
        if text_columns:
            options.update(dtype=str, keep_default_na=False, na_values=[""])
        frame = pd.read_csv(path, **options)
        if names is not None:
            frame.columns = list(names[: frame.shape[1]]) + [f"column_{i}" for i in range(len(names), frame.shape[1])]
        return frame
    except UsageError:
        raise
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise UsageError(f"cannot read {path}: {_one_line(exc)}") from None


def _column(frame, requested, candidates, what, path, option):
    if requested is not None:
        if requested not in frame.columns:
            raise UsageError(
                f"{path} has no column {requested!r} ({option}); its columns are {list(frame.columns)}"
            )
        return requested
    for name in candidates:
        if name in frame.columns:
            return name
    lowered = {str(c).lower(): c for c in frame.columns}
    for name in candidates:
        if name.lower() in lowered:
            return lowered[name.lower()]
    hint = _layout_hint(frame)
    raise UsageError(
        f"{path} has no {what} column (looked for {', '.join(candidates[:3])}); its columns are "
        f"{list(frame.columns)}: " + (hint or f"name it with {option}")
    )


def _layout_hint(frame):
    """What to pass when the header shows another separator or no header at all ("" if neither)."""
    header = [str(c) for c in frame.columns]
    names = {"\t": "tab", ";": "';'", "|": "'|'", "::": "'::'"}
    sep = next((sep for sep in names if len(header) == 1 and sep in header[0]), None)
    cells = header[0].split(sep) if sep else header

    def is_number(text):
        try:
            float(text)
        except ValueError:
            return False
        return True

    headerless = all(is_number(cell.strip()) for cell in cells)
    hints = []
    if sep:
        hints.append(f"the file looks {'tab' if sep == chr(9) else names[sep]}-separated: pass --sep {names[sep]}")
    if headerless:
        hints.append(
            "its first line looks like data (no header): pass --no-header to take the columns "
            "by position (user id and item id first)"
        )
    return "; ".join(hints)


def _check_output(output, what="", probe=False):
    """Fail early, before the work, when ``output`` cannot be written.

    Refused: a folder, a file in no folder, and anything that is not a
    regular file (a FIFO, a device, a link to one), which the atomic rename
    of the write would replace.  With ``probe``, a temporary file is created
    and removed in the destination folder, so that a folder without write
    permission fails now rather than after a long fit.
    """
    if output is None:
        return
    from ._persistence import regular_destination

    path = Path(output)
    if path.is_dir():
        raise UsageError(f"cannot write {what}{path}: it is a folder")
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {what}{path}: folder {path.parent} does not exist")
    try:
        destination = regular_destination(path)
    except ValueError as exc:
        raise UsageError(_one_line(exc).replace("cannot write ", f"cannot write {what}", 1)) from None
    if probe:
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
        except OSError as exc:
            raise UsageError(f"cannot write {what}{path}: {_os_error(exc)}") from None
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _os_error(exc):
    """The reason of an OSError without its errno and file name: 'Permission denied'."""
    return exc.strerror or _one_line(exc)


def _write_table(frame, output):
    """CSV to stdout, or atomically to ``output`` (CSV, TSV or Parquet by suffix)."""
    if output is None:
        frame.to_csv(sys.stdout, index=False, lineterminator="\n")
        sys.stdout.flush()
        return
    from ._persistence import regular_destination

    path = Path(output)
    _check_output(path)
    try:
        destination = regular_destination(path)  # a link's target; a FIFO or device is refused
    except ValueError as exc:
        raise UsageError(_one_line(exc)) from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {_os_error(exc)}") from None
    os.close(fd)
    try:
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            try:
                frame.to_parquet(tmp, index=False)
            except ImportError:
                raise UsageError("writing Parquet files needs pyarrow: pip install pyarrow") from None
        else:
            frame.to_csv(tmp, index=False, sep="\t" if suffix == ".tsv" else ",", lineterminator="\n")
        os.replace(tmp, destination)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise UsageError(f"cannot write {path}: {_os_error(exc)}") from None
        raise


def _cell(value):
    """A table cell as a message shows it: its text, or "nothing" when empty."""
    if value is None or (isinstance(value, float) and value != value):
        return "nothing"
    return repr(value.item() if hasattr(value, "item") else value)


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_model_file(path):
    """Fail early (before any heavy import) when the model file is missing or a folder."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"model file not found: {path}")
    if path.is_dir():
        raise UsageError(f"model file {path} is a folder")


def _load_model(path, args):
    """The model of ``path``: a plain dot model as numpy tables, read in a fraction of a second, else the estimator.

    Both behind :class:`_Model`: a dot model's predictions are a few numpy
    products (:mod:`skmfnet._scoring`), and loading the estimator imports
    scikit-learn and TensorFlow first, seconds that every command would pay.
    """
    from ._persistence import InvalidModelFileError, load_estimator, read_dot_model

    path = Path(path)
    _check_model_file(path)
    try:
        dot_model = read_dot_model(path)
        if dot_model is not None:
            return _Model(dot_model)
        with tensorflow_start_up_hidden(not args.verbose):  # a network's model file imports TensorFlow
            return _Model(load_estimator(path))
    except InvalidModelFileError as exc:
        raise UsageError(_one_line(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot read model file {path}: {_os_error(exc)}") from None
    except Exception as exc:  # a damaged file can fail in ways load_estimator does not anticipate
        raise UsageError(
            f"{path} is not a valid skmfnet model file: {type(exc).__name__}: {_one_line(exc)}"
        ) from None


class _Model:
    """What the commands ask of a model file, from a :class:`~skmfnet._scoring.DotModel` or an estimator."""

    def __init__(self, model):
        from ._scoring import DotModel

        self.model = model
        self.light = isinstance(model, DotModel)
        self.kind = "EmbeddingMFRegressor" if self.light else type(model).__name__
        self.feature_names = model.feature_names if self.light else getattr(model, "feature_names_in_", None)
        self.has_seen = (model.seen if self.light else getattr(model, "seen_", None)) is not None
        self.has_factors = self.light or hasattr(model, "similar_items")

    def ids(self, side):
        return self.model.ids[side] if self.light else getattr(self.model, f"{side}_encoder_").classes_

    def predict(self, users, items):
        if self.light:
            return self.model.predict(users, items)
        import numpy as np
        import pandas as pd

        names = self.feature_names
        X = pd.DataFrame(dict(zip([0, 1] if names is None else list(names), (users, items))))
        with warnings.catch_warnings():  # "no id seen in fit": the command says it in its own terms
            warnings.simplefilter("ignore", UserWarning)
            return self.model.predict(X.to_numpy() if names is None else X).astype(np.float64)

    def recommend(self, users, n, exclude_seen):
        if self.light:
            return self.model.recommend(users, n=n, exclude_seen=exclude_seen)
        from ._recommend import recommend

        return recommend(self.model, users, n=n, exclude_seen=exclude_seen)

    def similar(self, ids, side, n):
        if self.light:
            return self.model.similar(ids, side, n=n)
        return (self.model.similar_items if side == "item" else self.model.similar_users)(ids, n=n)


def _log(args, message):
    if not args.quiet:
        print(message, file=sys.stderr)


def _progress(args, **kwargs):
    from tqdm.auto import tqdm

    # disable=None: no bar when stderr is not a terminal (logs, pipes, CI)
    return tqdm(disable=True if args.quiet else None, file=sys.stderr, **kwargs)


# ----------------------------------------------------------------- commands
def _fetch(args):
    from .datasets import fetch_movielens

    _check_output(args.output)
    try:
        data = fetch_movielens(
            args.variant,
            data_home=args.data_home,
            download_if_missing=not args.no_download,
            verbose=not args.quiet,
        )
    except (OSError, ValueError) as exc:
        raise UsageError(_one_line(exc)) from None
    ratings = data.ratings
    _log(
        args,
        f"MovieLens {args.variant}: {len(ratings):,} ratings by {ratings['user_id'].nunique():,} users "
        f"on {ratings['item_id'].nunique():,} items, in {data.path}",
    )
    if args.output is not None:
        _write_table(ratings, args.output)
        _log(args, f"wrote {args.output}")
    return 0


_MF_OPTIONS = {
    "n_factors": "--n-factors",
    "epochs": "--epochs",
    "learning_rate": "--learning-rate",
    "alpha": "--alpha",
    "batch_size": "--batch-size",
    "negative_ratio": "--negative-ratio",
    "selection_factors": "--selection-factors",
    "n_estimators": "--n-estimators",
    "item_item_alpha": "--item-item-alpha",
}


#: Copies of each factor table a fit holds at once: the weights, two optimizer slots, a gradient.
_TABLE_COPIES = 4


def _check_table_memory(args, X):
    """Refuse, before anything is allocated, factor tables larger than the machine's memory."""
    if args.n_factors is None:  # the default (32) is small
        return
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: the fit reports it
        return
    n_users, n_items = (X.iloc[:, i].nunique() for i in (0, 1))
    width = args.n_factors * (args.n_estimators or 1) + 1 + (args.selection_factors or 0)
    needed = _TABLE_COPIES * 4 * (n_users + n_items + 2) * width  # float32
    if needed > memory:
        raise UsageError(
            f"--n-factors {args.n_factors}: the factor tables of {n_users:,} users and {n_items:,} items "
            f"would need {needed / 2**30:,.1f} GiB (weights and optimizer state), more than this "
            f"machine's {memory / 2**30:,.1f} GiB of memory; choose fewer factors"
        )


def _cli_terms(message):
    """An estimator's message with its parameter names as this command's options (learning_rate -> --learning-rate)."""
    for name, option in _MF_OPTIONS.items():
        if name == "epochs":  # also a plain word ("after 3 epochs")
            continue
        message = re.sub(rf"(?<![\w-]){name}(?!\w)", option, message)
    return message


def _is_out_of_memory(exc):
    return isinstance(exc, MemoryError) or type(exc).__name__ == "ResourceExhaustedError"


def _fit(args):
    import numpy as np
    import pandas as pd

    _check_output(args.model, what="model file ", probe=True)
    names = ("user_id", "item_id", "rating") if args.no_header else None
    frame = _read_table(args.data, sep=args.sep, names=names)
    columns = [
        _column(frame, args.user_col, _USER_COLUMNS, "user id", args.data, "--user-col"),
        _column(frame, args.item_col, _ITEM_COLUMNS, "item id", args.data, "--item-col"),
        _column(frame, args.rating_col, _RATING_COLUMNS, "rating", args.data, "--rating-col"),
    ]
    if len(set(columns)) < 3:
        raise UsageError(f"the user, item and rating columns must differ; got {columns}")
    X = frame[columns[:2]]
    y = pd.to_numeric(frame[columns[2]], errors="coerce")
    bad = np.flatnonzero(~np.isfinite(y.to_numpy(dtype=np.float64, na_value=np.nan)))
    first_line = 1 if args.no_header else 2  # the line of the file holding row 0
    if len(bad):
        raise UsageError(
            f"column {columns[2]!r} of {args.data} must hold numbers; row {bad[0] + first_line} (line of "
            f"the file) holds {_cell(frame[columns[2]].iloc[bad[0]])} ({len(bad)} such row(s))"
        )
    if len(frame) == 0:
        raise UsageError(f"{args.data} holds no ratings")
    mf_params = {k: getattr(args, k) for k in _MF_OPTIONS if getattr(args, k) is not None}
    if args.estimator == "mf":
        _check_table_memory(args, X)
    if args.estimator == "bias":
        from ._baselines import BiasBaselineRegressor

        if mf_params:
            raise UsageError(
                f"{', '.join(_MF_OPTIONS[k] for k in mf_params)} apply to --estimator mf only"
            )
        estimator = BiasBaselineRegressor()
    else:
        with tensorflow_start_up_hidden(not args.verbose):
            from ._estimator import EmbeddingMFRegressor

        verbose = 0 if args.quiet else (1 if sys.stderr.isatty() else 2)
        estimator = EmbeddingMFRegressor(random_state=args.random_state, verbose=verbose, **mf_params)
    _log(args, f"fitting {type(estimator).__name__} on {len(y):,} ratings from {args.data}")
    try:
        # Keras prints its progress on stdout: keep stdout for data
        with contextlib.redirect_stdout(sys.stderr):
            estimator.fit(X, y.to_numpy(dtype=np.float64))
    except ValueError as exc:  # invalid ids, parameters out of range, a fit that diverged
        raise UsageError(_cli_terms(_one_line(exc))) from None
    except Exception as exc:  # TensorFlow's ResourceExhaustedError is no MemoryError
        if not _is_out_of_memory(exc):
            raise
        raise UsageError(
            f"out of memory while fitting ({type(exc).__name__}: {_one_line(exc)[:200]}); choose a "
            "smaller --n-factors or --batch-size"
        ) from None
    from ._persistence import save_estimator

    try:
        save_estimator(estimator, args.model)
    except OSError as exc:
        raise UsageError(f"cannot write model file {args.model}: {_os_error(exc)}") from None
    except ValueError as exc:  # ids of an unsupported type, a model that is not finite
        raise UsageError(_cli_terms(_one_line(exc))) from None
    _log(args, f"wrote {args.model}")
    return 0


def _predict(args):
    import numpy as np
    import pandas as pd

    _check_output(args.output)
    _check_model_file(args.model)
    # the pairs before the model: their errors come before TensorFlow's import
    names = ("user_id", "item_id") if args.no_header else None
    frame = _read_table(args.pairs, text_columns=True, sep=args.sep, names=names)
    columns = [
        _column(frame, args.user_col, _USER_COLUMNS, "user id", args.pairs, "--user-col"),
        _column(frame, args.item_col, _ITEM_COLUMNS, "item id", args.pairs, "--item-col"),
    ]
    if columns[0] == columns[1]:
        raise UsageError(f"the user and item columns must differ; got {columns}")
    model = _load_model(args.model, args)
    # the file's ids as the model types its ids: "007" stays "007" for string ids, is 7 for integers
    parquet = Path(args.pairs).suffix.lower() in (".parquet", ".pq")
    first_line = 1 if parquet or args.no_header else 2  # the row or line of the file holding row 0
    users, items = (
        _ids_like(
            frame[column],
            model.ids(side),
            side,
            lambda i, column=column: f"{'row' if parquet else 'line'} {i + first_line} of "
            f"{args.pairs}, column {column!r}",
        )
        for side, column in zip(("user", "item"), columns)
    )
    # predict checks column names against those of fit; the file's may differ
    names = model.feature_names
    if names is not None and np.ndim(names) != 1:
        raise UsageError(f"{args.model} is not a valid skmfnet model file: feature_names_in {names!r} is not a list")
    predictions = np.empty(len(users))
    try:
        with _progress(args, total=len(users), unit="pair", desc="predict") as bar:
            for start in range(0, len(users), _PREDICT_CHUNK):
                chunk = slice(start, start + _PREDICT_CHUNK)
                predictions[chunk] = model.predict(users[chunk], items[chunk])
                bar.update(len(users[chunk]))
    except ValueError as exc:  # missing ids
        raise UsageError(_one_line(exc)) from None
    except TypeError as exc:  # a model file whose fitted state is damaged
        raise UsageError(f"cannot predict with {args.model}: {type(exc).__name__}: {_one_line(exc)}") from None
    known = pd.Index(model.ids("user")).get_indexer(users) >= 0
    known |= pd.Index(model.ids("item")).get_indexer(items) >= 0
    if len(users) and not known.any():
        _log(args, f"warning: no user and no item of {args.pairs} was seen in fit: every prediction is "
                   "the fallback for unknown ids (the mean rating)")
    _write_table(frame[columns].assign(prediction=predictions), args.output)
    return 0


_INTEGER = re.compile(r"\s*[+-]?\d+\s*")


def _ids_like(values, classes, side, where):
    """The ids ``values`` (a Series, of text when read from CSV) typed as the model's ``classes``.

    Integer vocabularies take integers only (``"007"`` is 7; ``"abc"`` or
    ``"2.5"`` is an error naming the place ``where(i)`` of the first one);
    float vocabularies take numbers; string vocabularies take the text as
    it is.  A vocabulary mixing types (possible through the Python API) gets,
    for each value, the first of its text, integer and float readings that is
    a known id.  Missing values (empty cells) are an error.
    """
    import numpy as np
    import pandas as pd

    def fail(bad, reason):
        rows = np.flatnonzero(np.asarray(bad))
        count = f"{len(rows)} such value{'s' if len(rows) > 1 else ''}"
        raise UsageError(f"{where(rows[0])}: {reason(values.iloc[rows[0]])} ({count})")

    missing = values.isna().to_numpy()
    if missing.any():
        fail(missing, lambda v: f"the {side} id is missing")
    kind = classes.dtype.kind
    if kind in "iu":
        if values.dtype.kind in "iu":
            return values.to_numpy()
        text = values.astype(str)
        integer = text.str.fullmatch(_INTEGER).to_numpy(dtype=bool)
        if not integer.all():
            fail(~integer, lambda v: f"{v!r} is not an integer, and the model's {side} ids are integers")
        try:
            return np.array([int(t) for t in text], dtype=classes.dtype)
        except OverflowError:
            fail(np.ones(len(text), dtype=bool), lambda v: f"an id is out of the range of the model's {side} ids")
    if kind == "f":
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(numbers).any():
            fail(np.isnan(numbers), lambda v: f"{v!r} is not a number, and the model's {side} ids are numbers")
        return numbers
    text = values.astype(str).to_numpy(dtype=object)
    if all(isinstance(c, str) for c in classes):
        return text
    known = set(classes)

    def reading(t):
        candidates = [t]
        for convert in (int, float):
            with contextlib.suppress(ValueError):
                candidates.append(convert(t))
        return next((c for c in candidates if c in known), t)

    readings = {t: reading(t) for t in pd.unique(text)}
    out = np.empty(len(text), dtype=object)
    out[:] = [readings[t] for t in text]
    return out


def _user_ids(model, texts):
    """Convert --user strings to ids of the type of the model's user vocabulary."""
    import pandas as pd

    ids = _ids_like(pd.Series(texts, dtype=object), model.ids("user"), "user", lambda i: "--user")
    return ids.tolist()  # Python scalars: their repr in messages is the id as typed


def _recommend(args):
    import pandas as pd

    _check_output(args.output)
    model = _load_model(args.model, args)
    if args.all_users:
        users = list(model.ids("user"))
    else:
        users = _user_ids(model, args.user)
        known = set(model.ids("user"))
        for user in users:
            if user not in known:
                _log(
                    args,
                    f"warning: user {user!r} is not in the training data: recommending the items "
                    "with the highest mu + b_i (popularity-like), the same for every unknown user",
                )
    exclude_seen = not args.include_seen
    if exclude_seen and not model.has_seen:
        raise UsageError(
            f"{args.model} holds no training pairs, so rated items cannot be left out: pass "
            "--include-seen, or refit the model with 'skmfnet fit'"
        )
    parts = []
    try:
        with _progress(args, total=len(users), unit="user", desc="recommend") as bar:
            for start in range(0, len(users), _RECOMMEND_CHUNK):
                chunk = users[start : start + _RECOMMEND_CHUNK]
                parts.append(model.recommend(chunk, n=args.n, exclude_seen=exclude_seen))
                bar.update(len(chunk))
    except (ValueError, TypeError) as exc:  # a model file whose fitted state is damaged
        raise UsageError(f"cannot recommend with {args.model}: {type(exc).__name__}: {_one_line(exc)}") from None
    _write_table(pd.concat(parts, ignore_index=True), args.output)
    return 0


def _similar(args):
    import pandas as pd

    _check_output(args.output)
    model = _load_model(args.model, args)
    if not model.has_factors:
        raise UsageError(
            f"{args.model} holds a {model.kind}, which has no factors to compare: "
            "'skmfnet similar' needs a model fitted with --estimator mf"
        )
    side, texts = ("item", args.item) if args.item else ("user", args.user)
    option = f"--{side}"
    classes = model.ids(side)
    ids = _ids_like(pd.Series(texts, dtype=object), classes, side, lambda i: option).tolist()
    unknown = [i for i, row in zip(ids, pd.Index(classes).get_indexer(ids)) if row < 0]
    if unknown:
        shown = unknown[:5] + (["..."] if len(unknown) > 5 else [])
        raise UsageError(
            f"{option}: {side}s: {len(unknown)} of the {len(ids)} ids given were not seen in fit, and an "
            f"unknown {side} has no learned factors to compare: {shown}. Pass {side} ids of the ratings "
            "the model was fitted on"
        )
    try:
        table = model.similar(ids, side, args.n)
    except ValueError as exc:
        raise UsageError(f"{option}: {_one_line(exc)}") from None
    _write_table(table, args.output)
    return 0


# ------------------------------------------------------------------- parser
def _global_options(parser, default):
    """-q and --verbose, accepted before the command and after it.

    The command's copies default to ``argparse.SUPPRESS`` so that, when not
    given after the command, they do not overwrite what was given before it.
    """
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="no progress bars or messages")
    parser.add_argument(
        "--verbose", action="store_true", default=default,
        help="also TensorFlow's start-up messages (hidden by default) and debug messages",
    )


def _parser():
    from . import __version__

    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, default=argparse.SUPPRESS)

    parser = _Parser(
        prog="skmfnet",
        description="Neural matrix factorization for rating data: fetch, fit, predict, recommend.",
        epilog="Run 'skmfnet COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"skmfnet {__version__}")
    _global_options(parser, default=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    fetch = commands.add_parser(
        "fetch", parents=[common], help="download (or find) a MovieLens data set",
        description="Download a MovieLens data set into the data folder, checksum-verified "
        "(or find it there), and optionally write its ratings to a file.",
    )
    fetch.add_argument("variant", choices=["100k", "1m", "10m", "20m", "25m", "latest-small"])
    fetch.add_argument("--data-home", help="data folder (default: $SKMFNET_DATA or ~/skmfnet_data)")
    fetch.add_argument("--output", "-o", help="write the ratings to this CSV, TSV or Parquet file")
    fetch.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    fetch.set_defaults(run=_fetch)

    fit = commands.add_parser(
        "fit", parents=[common], help="fit a model on a ratings file and save it",
        description="Fit an estimator on (user, item, rating) rows of a CSV, TSV or Parquet "
        "file and save it as a model file (safe to load; see skmfnet.load_estimator).",
    )
    fit.add_argument("data", help="ratings file (.csv, .tsv, .parquet)")
    fit.add_argument("--model", "-m", required=True, help="model file to write (e.g. model.skmf)")
    fit.add_argument("--estimator", choices=["mf", "bias"], default="mf",
                     help="mf: EmbeddingMFRegressor (default); bias: BiasBaselineRegressor")
    _id_columns(fit)
    fit.add_argument("--rating-col", help="rating column (default: rating, score, ...)")
    _layout_options(fit, "user id, item id, rating")
    fit.add_argument("--n-factors", type=_positive_int, help="latent factors K (default 32)")
    fit.add_argument("--epochs", type=_positive_int, help="passes over the data (default 10)")
    fit.add_argument("--learning-rate", type=_positive_float,
                     help="learning rate (default auto: 0.005, or chosen with --alpha on held-out ratings "
                     "from 1,000,000 ratings on)")
    fit.add_argument("--alpha", type=_non_negative_float,
                     help="L2 on the factors (default auto: 0.1, or chosen with --learning-rate on held-out "
                     "ratings from 1,000,000 ratings on)")
    fit.add_argument("--batch-size", type=_positive_int, help="ratings per step (default 1024)")
    fit.add_argument("--negative-ratio", type=_non_negative_float,
                     help="sampled unobserved pairs per rating: train for ranking (default 0: ratings only)")
    fit.add_argument("--selection-factors", type=_non_negative_int,
                     help="with --negative-ratio: a separate selection term of this many factors for "
                     "recommend, the rating model trained on ratings alone (default 0: none)")
    fit.add_argument("--n-estimators", type=_positive_int,
                     help="seeds averaged into one model (default 1; see n_estimators)")
    fit.add_argument("--item-item-alpha", type=_auto_or_positive_float, metavar="ALPHA",
                     help="'auto' or a number > 0: recommend adds an item-item term (EASE) to the rating "
                     "score, its penalty and weight chosen in fit on held-out ratings with 'auto' "
                     "(default: none)")
    fit.add_argument("--random-state", type=_int, help="seed, for reproducible fits")
    fit.set_defaults(run=_fit)

    predict = commands.add_parser(
        "predict", parents=[common], help="predict ratings of (user, item) pairs",
        description="Predict the rating of every (user, item) row of a file; writes the pairs "
        "and a 'prediction' column as CSV.",
    )
    predict.add_argument("model", help="model file written by 'skmfnet fit'")
    predict.add_argument("pairs", help="file of (user, item) pairs (.csv, .tsv, .parquet)")
    _id_columns(predict)
    _layout_options(predict, "user id, item id")
    predict.add_argument("--output", "-o", help="write to this file instead of standard output")
    predict.set_defaults(run=_predict)

    rec = commands.add_parser(
        "recommend", parents=[common], help="top-N items for users",
        description="Recommend the n items of highest predicted rating to each user, leaving "
        "out the items the user rated in training; writes user, rank, item, score as CSV.",
    )
    rec.add_argument("model", help="model file written by 'skmfnet fit'")
    who = rec.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", "-u", action="append", metavar="ID",
                     help="user id (repeat for several users)")
    who.add_argument("--all-users", action="store_true", help="every user of the training data")
    rec.add_argument("-n", type=_positive_int, default=10, help="items per user (default 10)")
    rec.add_argument("--include-seen", action="store_true",
                     help="also recommend items the user rated in training")
    rec.add_argument("--output", "-o", help="write to this file instead of standard output")
    rec.set_defaults(run=_recommend)

    sim = commands.add_parser(
        "similar", parents=[common], help="most similar items or users",
        description="The n items (or users) most similar to each one given, by cosine of the "
        "learned factors; writes item, rank, similar_item, similarity (or the same for users) as CSV.",
    )
    sim.add_argument("model", help="model file written by 'skmfnet fit' (--estimator mf)")
    what = sim.add_mutually_exclusive_group(required=True)
    what.add_argument("--item", "-i", action="append", metavar="ID", help="item id (repeat for several)")
    what.add_argument("--user", "-u", action="append", metavar="ID", help="user id (repeat for several)")
    sim.add_argument("-n", type=_positive_int, default=10, help="neighbours per id (default 10)")
    sim.add_argument("--output", "-o", help="write to this file instead of standard output")
    sim.set_defaults(run=_similar)
    return parser


def _layout_options(parser, order):
    parser.add_argument(
        "--sep", type=_separator, metavar="SEP",
        help="column separator: tab, comma, semicolon, space or any text such as '::' "
        "(default: tab for .tsv, else comma)",
    )
    parser.add_argument(
        "--no-header", action="store_true",
        help=f"the file has no header line: its columns are, in order, {order} "
        "(e.g. MovieLens 100K's u.data with --sep tab)",
    )


def _id_columns(parser):
    parser.add_argument("--user-col", help="user id column (default: user_id, user, userId, ...)")
    parser.add_argument("--item-col", help="item id column (default: item_id, item, movieId, ...)")


def main(argv=None):
    """Run the ``skmfnet`` command line; return its exit status.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success, 2 on a usage or input error (one line on stderr), 130
        when interrupted.
    """
    try:
        try:
            # parsed before anything imports TensorFlow (the commands import it when they need it)
            args = _parser().parse_args(argv)
        except SystemExit as exc:  # --help, --version
            return exc.code if isinstance(exc.code, int) else 0
        if args.quiet and args.verbose:
            raise UsageError("--quiet and --verbose exclude each other")
        if not args.verbose:
            # before TensorFlow starts: its C++ logging (INFO to ERROR, including the "failed
            # call to cuInit" of machines without a GPU) is off; an explicit setting is kept
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with _logging_to_stderr(level=None if args.quiet else logging.DEBUG if args.verbose else logging.INFO):
            return args.run(args)
    except UsageError as exc:
        print(f"skmfnet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("skmfnet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): not an error of ours
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


class _StderrHandler(logging.Handler):
    """Log records as bare lines on the current ``sys.stderr``."""

    def emit(self, record):
        print(self.format(record), file=sys.stderr)


#: Python loggers of TensorFlow and absl: only errors unless --verbose.
_QUIET_LOGGERS = ("tensorflow", "absl")


@contextlib.contextmanager
def _logging_to_stderr(level):
    """While a command runs: the package's messages from ``level`` on, on stderr (None: none).

    Below DEBUG (that is, without --verbose), TensorFlow's and absl's Python
    loggers are limited to errors.
    """
    saved = {name: logging.getLogger(name).level for name in ("skmfnet", *_QUIET_LOGGERS)}
    logger = logging.getLogger("skmfnet")
    handler = _StderrHandler()
    if level is not None:
        logger.addHandler(handler)
        logger.setLevel(level)
    if level != logging.DEBUG:
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        for name, old in saved.items():
            logging.getLogger(name).setLevel(old)


if __name__ == "__main__":
    sys.exit(main())
