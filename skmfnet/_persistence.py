"""Model files that are safe to load: a versioned zip of JSON, numpy arrays and a Keras archive.

Unlike a pickle, loading a model file executes no code from the file:

* ``skmfnet.json`` (read with :func:`json.loads`) holds the format name and
  version, the skmfnet version that wrote it, the estimator's class name and
  ``get_params()``, and the fitted state that is not an array: ``mu_``,
  ``rating_range_``, ``history_``, ``n_features_in_``, ``feature_names_in_``,
  ``alpha_``, ``learning_rate_``, ``auto_results_``, ``engine_``, and both id
  vocabularies, each id a JSON value of its own type (int, float
  or str) plus the pandas dtype of the vocabulary; with side information, the
  labels of every feature the same way (format version 2);
* ``model.keras`` (:class:`~skmfnet.EmbeddingMFRegressor` only) is the network
  as saved by :meth:`keras.Model.save`, read with
  ``keras.saving.load_model(..., safe_mode=True)``, which refuses ``Lambda``
  layers and any other serialized Python code; the network's custom layers
  are registered under the ``skmfnet`` package name;
* ``arrays.npz`` holds numeric arrays (the biases of
  :class:`~skmfnet.BiasBaselineRegressor`, the ``seen_`` matrix of training
  pairs when the estimator has one, the feature codes of every known user and
  item), read from their ``.npy`` headers and data: object arrays (pickles)
  are refused.

A file is written to a temporary file in the destination folder, flushed to
disk and renamed over the destination in one step, so an interrupted save
never leaves a half-written model behind.  A destination that is not a
regular file (a FIFO, a device, a link to one) is refused rather than
replaced; a link to a regular file keeps its link and its target is
replaced.  A model that loading would refuse (NaN or infinite weights,
``mu_`` or history, as a fit that diverged leaves them) is refused before
anything is written.

A crafted file must not exhaust memory either, and neither Keras nor numpy
checks a size before allocating it: ``keras.saving.load_model`` builds every
layer (allocating its tables) from the config before reading a weight, and
numpy allocates the shape an array header declares before reading its data.
So :func:`load_estimator` checks by hand, before either is called:

* every zip member's declared uncompressed size against a cap, and reads it
  bounded by that cap: ``skmfnet.json`` has a fixed generous cap; the others
  are capped by what the vocabularies and parameters of ``skmfnet.json``
  need;
* ``skmfnet.json``: at most 10,000 lists and objects (counted in the text,
  outside strings, before parsing: vocabularies are flat lists), no
  ``NaN``/``Infinity``, no nesting deeper than the parser allows; parameters
  pass the estimator's ``_parameter_constraints``; ``mu``, ``alpha`` and the
  rating range finite numbers (an integer too large for a float refused),
  the range not inverted; ``history`` an object of at most 64 lists of at
  most ``epochs`` finite numbers;
* every ``.npy`` header in ``arrays.npz`` (dtype, shape) against the
  vocabulary sizes, before its data is read; float arrays finite; row 0 of
  the selection term (the row of unknown ids) zero;
* ``config.json`` of ``model.keras``: each layer's declared sizes (Embedding
  ``input_dim``/``output_dim``, ImplicitFeedback ``n_users``/``n_items``/
  ``n_pairs``/``n_factors``, Dense ``units`` and input width, the input
  width) equal what the vocabularies and parameters need, for every entry
  (Keras builds unconnected layers too; a name used twice is refused), and
  no layer is foreign to a skmfnet network; the weights file is no larger
  than those shapes need and not too small to hold them, and holds its data
  itself (soft and external links, external and virtual datasets, which
  would read other files of the machine, are refused).  After loading, every
  weight is finite.

:func:`read_dot_model` reads a plain dot model's tables from the same file
with h5py, after the same checks, without importing TensorFlow or
scikit-learn (the command line's fast path, :mod:`skmfnet._scoring`);
scikit-learn and scipy are imported inside the functions that need them so
that importing this module stays light.

Anything else is refused with :class:`InvalidModelFileError`.
"""

import errno
import io
import json
import numbers
import os
import re
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["FORMAT_VERSION", "InvalidModelFileError", "load_estimator", "read_dot_model", "save_estimator"]

#: Version of the model file format written by :func:`save_estimator`.
#: Version 2 adds side information; models without it are still written as version 1.
FORMAT_VERSION = 2
_FORMAT_NAME = "skmfnet-model"
_META, _KERAS, _ARRAYS = "skmfnet.json", "model.keras", "arrays.npz"
_ESTIMATORS = {
    "EmbeddingMFRegressor": "._estimator",
    "BiasBaselineRegressor": "._baselines",
}


class InvalidModelFileError(ValueError):
    """The file is not a skmfnet model file, is damaged, or needs a newer skmfnet.

    A subclass of :class:`ValueError`.  A missing or unreadable file raises
    :class:`OSError` (e.g. :class:`FileNotFoundError`) instead.
    """


# ---------------------------------------------------------------------- ids
_ID_KINDS = "iufO"  # integer, unsigned, float, object (str or mixed) vocabularies


def _encode_ids(index, side):
    """A vocabulary as {"dtype": ..., "values": [...]}, each id a JSON int, float or str."""
    values = []
    for value in index:
        if isinstance(value, (bool, np.bool_)):
            kind = None
        elif isinstance(value, numbers.Integral):
            kind = int
        elif isinstance(value, numbers.Real):
            kind = float
        elif isinstance(value, str):
            kind = str
        else:
            kind = None
        if kind is None:
            raise ValueError(
                f"Cannot save a model whose {side} ids include {value!r} of type "
                f"{type(value).__name__}: model files store ids as int, float or str. Map the ids "
                "to one of those types before fitting, or save with pickle (load only trusted "
                "pickle files)."
            )
        values.append(kind(value))
    return {"dtype": str(index.dtype), "values": values}


def _decode_ids(entry, side):
    if not isinstance(entry, dict) or not isinstance(entry.get("values"), list):
        raise InvalidModelFileError(f"the {side} vocabulary is missing or malformed")
    values = entry["values"]
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float, str))]
    if bad:
        raise InvalidModelFileError(f"the {side} vocabulary holds an id of type {type(bad[0]).__name__}")
    try:
        dtype = pd.api.types.pandas_dtype(entry.get("dtype"))
        if not (dtype.kind in _ID_KINDS or isinstance(dtype, pd.StringDtype)):
            raise TypeError(dtype)
        index = pd.Index(values, dtype=dtype)
    except (TypeError, ValueError, OverflowError, NotImplementedError) as exc:  # e.g. float16
        raise InvalidModelFileError(f"the {side} vocabulary has an unusable dtype: {exc}") from None
    if not index.is_unique:
        raise InvalidModelFileError(f"the {side} vocabulary has duplicate ids")
    return index


# ------------------------------------------------------------------- params
def _encode_params(estimator):
    params = {}
    # the parameters of the fit that made the model, not any set_params since
    for name, value in estimator.fitted_params_.items():
        if name == "random_state" and isinstance(value, np.random.RandomState):
            value = None  # only seeds fitting; documented in save_estimator
        if isinstance(value, tuple):
            value = list(value)
        if not _is_json_value(value):
            raise ValueError(
                f"Cannot save parameter {name}={value!r} of {type(estimator).__name__}: model "
                "files store parameters as JSON (None, bool, int, float, str and lists of them)."
            )
        params[name] = value.item() if isinstance(value, np.generic) else value
    return params


def _is_json_value(value):
    if value is None or isinstance(value, (bool, str, numbers.Integral, numbers.Real)):
        return True
    return isinstance(value, list) and all(_is_json_value(v) for v in value)


def _decode_params(cls, params):
    """A new estimator with the saved parameters, validated as fit would validate them."""
    if not isinstance(params, dict):
        raise InvalidModelFileError("the estimator parameters are missing")
    defaults = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise InvalidModelFileError(
            f"parameters {unknown} are unknown to {cls.__name__} in this version of skmfnet; "
            "the file was probably written by a newer version: upgrade skmfnet"
        )
    # parameters whose default is a tuple were stored as JSON lists
    params = {k: tuple(v) if isinstance(defaults[k], tuple) and isinstance(v, list) else v for k, v in params.items()}
    from sklearn.utils._param_validation import InvalidParameterError

    estimator = cls(**params)
    try:
        estimator._validate_params()  # scikit-learn's parameter constraints, as fit checks them
    except InvalidParameterError as exc:
        raise InvalidModelFileError(f"its parameters are invalid: {exc}") from None
    estimator.fitted_params_ = estimator.get_params(deep=False)
    sizes = params.get("hidden_layer_sizes", ())
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sizes):
        raise InvalidModelFileError(f"hidden_layer_sizes is {list(sizes)!r}; expected positive integers")
    return estimator


# --------------------------------------------------------------------- save
def save_estimator(estimator, path):
    """Save a fitted estimator to a model file that is safe to load.

    The file is a zip archive (format version :data:`FORMAT_VERSION`; see
    :mod:`skmfnet._persistence`): JSON for the parameters, vocabularies and
    other fitted values, the Keras archive of the network, and numpy arrays.
    It is written atomically: to a temporary file in the same folder, then
    renamed over ``path``, so a failed save leaves any previous file intact
    and nothing half-written.

    Parameters
    ----------
    estimator : fitted EmbeddingMFRegressor or BiasBaselineRegressor
        A ``random_state`` given as a :class:`numpy.random.RandomState`
        instance is saved as None (it only seeds fitting).
    path : str or path-like
        Destination file (conventionally ``*.skmf``); its folder must exist.
        A symbolic link to a regular file is kept and its target replaced.

    Raises
    ------
    TypeError
        If the estimator is of another type.
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.
    ValueError
        If an id is not an int, float or str (e.g. a tuple), a parameter
        is not JSON, the model holds NaN or infinite values that
        :func:`load_estimator` would refuse (weights, ``mu_``, biases,
        history: a fit that diverged), or ``path`` is not a regular file (a
        FIFO, a device, a link to one).  Nothing is written then.
    OSError
        If the file cannot be written: :class:`FileNotFoundError` when its
        folder does not exist, :class:`IsADirectoryError` when ``path`` is a
        folder; the message names ``path``.

    See Also
    --------
    load_estimator : Read the file back.

    Examples
    --------
    >>> import os, tempfile
    >>> from skmfnet import BiasBaselineRegressor
    >>> from skmfnet._persistence import load_estimator, save_estimator
    >>> X, y = [["alice", 1], ["bob", 2], ["bob", 1]], [4.0, 3.0, 5.0]
    >>> est = BiasBaselineRegressor().fit(X, y)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     save_estimator(est, os.path.join(tmp, "model.skmf"))
    ...     loaded = load_estimator(os.path.join(tmp, "model.skmf"))
    >>> bool((loaded.predict(X) == est.predict(X)).all())
    True
    """
    name = type(estimator).__name__
    if name not in _ESTIMATORS:
        raise TypeError(
            f"save_estimator saves EmbeddingMFRegressor and BiasBaselineRegressor; got {name}."
        )
    import scipy.sparse as sp
    from sklearn.utils.validation import check_is_fitted

    from . import __version__

    check_is_fitted(estimator, ["user_encoder_", "item_encoder_", "mu_"])

    feature_names = getattr(estimator, "feature_names_in_", None)
    meta = {
        "format": _FORMAT_NAME,
        "format_version": 2 if _feature_encoders(estimator) else 1,
        "skmfnet_version": __version__,
        "estimator": name,
        "params": _encode_params(estimator),
        "fitted": {
            "mu": float(estimator.mu_),
            "rating_range": [float(v) for v in estimator.rating_range_],
            "n_features_in": int(estimator.n_features_in_),
            "feature_names_in": None if feature_names is None else [str(v) for v in feature_names],
            "user_ids": _encode_ids(estimator.user_encoder_.classes_, "user"),
            "item_ids": _encode_ids(estimator.item_encoder_.classes_, "item"),
            "history": getattr(estimator, "history_", None),
            "n_train": getattr(estimator, "_n_train", None),
            # what alpha="auto" and learning_rate="auto" resolved to (EmbeddingMFRegressor)
            "alpha": getattr(estimator, "alpha_", None),
            "learning_rate": getattr(estimator, "learning_rate_", None),
            "auto_results": getattr(estimator, "auto_results_", None),
            # the engine that trained it (EmbeddingMFRegressor, see skmfnet._training._dispatch)
            "engine": getattr(estimator, "engine_", None),
        },
    }
    if getattr(estimator, "time_range_", None) is not None:  # the time effects' training period (skmfnet._time)
        meta["fitted"]["time_range"] = [float(v) for v in estimator.time_range_]
    if getattr(estimator, "item_item_", None) is not None:  # the item-item term (skmfnet._item_item)
        meta["fitted"].update(
            item_item_alpha=estimator.item_item_alpha_, item_item_weight=estimator.item_item_weight_,
            item_item_size=len(estimator.item_item_items_), item_item_results=estimator.item_item_results_,
        )
    arrays = {}
    if _feature_encoders(estimator):
        for side in ("user", "item"):
            meta["fitted"][f"{side}_features"] = [
                {
                    "name": str(encoder.name),
                    "multi_valued": encoder.multi_valued,
                    "width": encoder.width,
                    "labels": _encode_ids(encoder.encoder.classes_, f"{side} feature {encoder.name!r}"),
                }
                for encoder in getattr(estimator, f"{side}_feature_encoders_")
            ]
            if getattr(estimator, f"{side}_feature_encoders_"):  # a side without features has no codes
                arrays[f"{side}_feature_codes"] = getattr(estimator, f"{side}_feature_codes_").astype(np.int32)
    if getattr(estimator, "item_item_", None) is not None:
        arrays["item_item_items"] = np.asarray(estimator.item_item_items_, dtype=np.int64)
        arrays["item_item"] = np.asarray(estimator.item_item_, dtype=np.float32)
    if getattr(estimator, "item_selection_", None) is not None:
        arrays["user_selection"] = np.asarray(estimator.user_selection_, dtype=np.float32)
        arrays["item_selection"] = np.asarray(estimator.item_selection_, dtype=np.float32)
    if name == "BiasBaselineRegressor":
        arrays["user_bias"] = np.asarray(estimator.user_bias_, dtype=np.float64)
        arrays["item_bias"] = np.asarray(estimator.item_bias_, dtype=np.float64)
    seen = getattr(estimator, "seen_", None)
    if seen is not None:
        seen = sp.csr_matrix(seen)
        arrays["seen_indptr"] = seen.indptr.astype(np.int64)
        arrays["seen_indices"] = seen.indices.astype(np.int64)

    _check_saveable(estimator, meta, arrays)
    path = regular_destination(path)
    with tempfile.TemporaryDirectory() as workdir:
        keras_file = None
        if name == "EmbeddingMFRegressor":
            keras_file = Path(workdir) / _KERAS
            estimator.model_.save(keras_file)
        _write_atomically(path, meta, arrays, keras_file)


def _check_saveable(estimator, meta, arrays):
    """Refuse, before anything is written, a model that :func:`load_estimator` would refuse.

    A fit that diverged leaves NaN or infinite numbers (``mu_``, the
    network's weights, the biases, the history): such a file could not be
    loaded, and writing it would replace a good file at the same path.
    """
    name = type(estimator).__name__
    advice = "the training probably diverged: fit again with a lower learning_rate"
    # the tables first: what makes every prediction NaN
    model = getattr(estimator, "model_", None)
    for weight in [] if model is None else model.weights:
        if not np.isfinite(np.asarray(weight.numpy())).all():
            raise ValueError(
                f"Cannot save this {name}: its network's weight {weight.path} is not finite (NaN or "
                f"infinite values); {advice}."
            )
    for key, values in arrays.items():
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise ValueError(f"Cannot save this {name}: its {key}_ is not finite (NaN or infinite values); {advice}.")
    fitted = meta["fitted"]
    try:
        probe = type(estimator)()  # the loader's checks set attributes: on a stand-in
        probe.set_params(**{k: v for k, v in meta["params"].items() if k.endswith("_features") or k == "time_column"})
        probe.fitted_params_ = meta["params"]
        _restore_numbers(probe, fitted)
        if name == "EmbeddingMFRegressor":
            _restore_resolved(probe, json.loads(json.dumps(fitted)))
        _check_history(fitted["history"], meta["params"].get("epochs"))
    except (InvalidModelFileError, OverflowError) as exc:
        # the loader's messages name the file's fields; here they are the estimator's attributes
        message = re.sub(r"^(mu|rating_range|history|alpha|learning_rate|auto_results)\b", r"\1_", str(exc))
        raise ValueError(f"Cannot save this {name}: its {message}; {advice}.") from None


#: What a path that is not a regular file is, by its ``stat`` mode.
_FILE_KINDS = (
    (stat.S_ISDIR, "folder"),
    (stat.S_ISFIFO, "FIFO (named pipe)"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
)


def regular_destination(path):
    """The regular file to replace for ``path``: itself, or the file a symbolic link there names.

    Files are written by renaming a temporary file over their destination,
    which would replace a FIFO, a device node or a symbolic link by a
    regular file: a destination that is not a regular file (followed
    through symbolic links) is refused with a :class:`ValueError` (a folder
    with :class:`IsADirectoryError`), and a link to a regular file is kept,
    its target replaced.
    """
    path = Path(os.fspath(path))
    try:
        mode = path.stat().st_mode  # follows symbolic links
    except OSError:  # missing (or unreadable): nothing to protect, the write reports the rest
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        kind = next((kind for test, kind in _FILE_KINDS if test(mode)), "special file")
        message = (
            f"cannot write {path}: it {'points to' if path.is_symlink() else 'is'} a {kind}, not a "
            "regular file; model files and tables are written only to regular files"
        )
        if kind == "folder":
            raise IsADirectoryError(errno.EISDIR, message)
        raise ValueError(message)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _feature_encoders(estimator):
    return list(getattr(estimator, "user_feature_encoders_", [])) + list(
        getattr(estimator, "item_feature_encoders_", [])
    )


def _write_atomically(path, meta, arrays, keras_file):
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # named after the destination, not the temporary file
        if not path.parent.is_dir():
            raise FileNotFoundError(
                errno.ENOENT, f"cannot write {path}: folder {path.parent} does not exist"
            ) from None
        raise type(exc)(exc.errno, f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                # compact: the vocabularies take about 8 bytes per numeric id
                archive.writestr(_META, json.dumps(meta, separators=(",", ":")))
                if keras_file is not None:
                    archive.write(keras_file, _KERAS)
                if arrays:
                    buffer = io.BytesIO()
                    np.savez(buffer, **arrays)
                    archive.writestr(_ARRAYS, buffer.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _new_file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _new_file_mode(path):
    """Keep an existing file's permissions; otherwise those open() would give (0o666 & ~umask)."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


# --------------------------------------------------------------------- load
def load_estimator(path):
    """Load an estimator saved by :func:`save_estimator`.

    Reading executes no code from the file: JSON is parsed with
    :mod:`json`, arrays from their ``.npy`` headers (object arrays refused) and the Keras
    network with ``keras.saving.load_model(..., safe_mode=True)``.
    Predictions of the loaded estimator equal those of the saved one exactly.

    Parameters
    ----------
    path : str or path-like
        A model file.

    Returns
    -------
    estimator : EmbeddingMFRegressor or BiasBaselineRegressor
        Fitted, with the saved parameters and fitted attributes.

    Raises
    ------
    InvalidModelFileError
        (a :class:`ValueError`) If the file is not a skmfnet model file (for
        example a pickle), is truncated or damaged, or was written in a newer
        format version than this skmfnet reads (the message says to upgrade),
        or declares sizes, numbers or parameters that its vocabularies and
        this skmfnet do not allow (checked before anything is allocated).
    OSError
        If the file cannot be read (:class:`FileNotFoundError` when missing).

    See Also
    --------
    save_estimator : Write the file.
    """
    return _read_model_file(path, _load_archive)


def _read_model_file(path, read):
    """``read(archive, path)`` of the model file at ``path``, its failures as :class:`InvalidModelFileError`."""
    path = Path(os.fspath(path))
    with open(path, "rb") as f:  # OSError (FileNotFoundError, IsADirectoryError, ...) as is
        head = f.read(4)
        f.seek(0)
        if head[:1] == b"\x80":
            raise InvalidModelFileError(
                f"{path} is not a skmfnet model file: it looks like a pickle. load_estimator reads "
                "only files written by save_estimator; unpickle only files you trust."
            )
        try:
            with zipfile.ZipFile(f) as archive:
                return read(archive, path)
        except InvalidModelFileError as exc:
            raise InvalidModelFileError(f"{path} is not a valid skmfnet model file: {exc}") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, KeyError, ValueError,
                OverflowError, NotImplementedError) as exc:
            raise InvalidModelFileError(
                f"{path} is not a valid skmfnet model file (truncated, damaged or another kind "
                f"of file): {exc}"
            ) from None


def _read_header(archive):
    """``skmfnet.json``, parsed once its size and structure are checked, of a format this skmfnet reads."""
    data = _read_member(archive, _META, _MAX_META_BYTES)
    _check_structure(data, _META)
    meta = _parse_json(data, _META)
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT_NAME:
        raise InvalidModelFileError(f"{_META} does not declare format {_FORMAT_NAME!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidModelFileError(f"format_version {version!r} is not a positive integer")
    if version > FORMAT_VERSION:
        raise InvalidModelFileError(
            f"it has format version {version}, written by skmfnet {meta.get('skmfnet_version')}; "
            f"this skmfnet reads versions up to {FORMAT_VERSION}: upgrade skmfnet to load it"
        )
    if meta.get("estimator") not in _ESTIMATORS:
        raise InvalidModelFileError(f"unknown estimator {meta.get('estimator')!r}")
    return meta


def _load_archive(archive, path):
    meta = _read_header(archive)
    name = meta["estimator"]

    import importlib

    from ._quiet import tensorflow_start_up_hidden

    with tensorflow_start_up_hidden():  # EmbeddingMFRegressor's module imports TensorFlow
        cls = getattr(importlib.import_module(_ESTIMATORS[name], __package__), name)
    estimator = _decode_params(cls, meta.get("params"))
    fitted = meta.get("fitted")
    if not isinstance(fitted, dict):
        raise InvalidModelFileError("the fitted state is missing")
    fitted["history"] = _check_history(fitted.get("history"), estimator.fitted_params_.get("epochs"))

    from ._encoding import IdEncoder

    for side in ("user", "item"):
        encoder = IdEncoder()
        encoder.classes_ = _decode_ids(fitted.get(f"{side}_ids"), side)
        setattr(estimator, f"{side}_encoder_", encoder)
    n_users, n_items = estimator.user_encoder_.n_known, estimator.item_encoder_.n_known
    estimator.n_users_, estimator.n_items_ = n_users, n_items
    _restore_numbers(estimator, fitted)

    features = {} if name == "BiasBaselineRegressor" else _decode_features(fitted)
    selection_factors = getattr(estimator, "selection_factors", 0)
    item_item = _item_item_size(estimator, fitted, n_items)
    expected = _expected_arrays(name, features, n_users, n_items, selection_factors, item_item)
    arrays = _read_arrays(archive, expected) if _ARRAYS in archive.namelist() else {}
    if name == "EmbeddingMFRegressor":
        _restore_resolved(estimator, fitted)
        _restore_item_item(estimator, fitted, arrays, item_item)
        selection = _selection_arrays(arrays, selection_factors)
        estimator.user_selection_, estimator.item_selection_ = selection or (None, None)
    if name == "BiasBaselineRegressor":
        for side in ("user", "item"):
            if f"{side}_bias" not in arrays:
                raise InvalidModelFileError(f"{_ARRAYS} has no {side}_bias")
            setattr(estimator, f"{side}_bias_", arrays[f"{side}_bias"].astype(np.float64))
    else:
        _restore_features(estimator, features, arrays, n_users, n_items)
        _restore_time(estimator, fitted)
        _restore_network(estimator, archive, fitted, n_users, n_items)
    if "seen_indptr" in arrays:
        estimator.seen_ = _seen_from_arrays(arrays, n_users, n_items)
    return estimator


# ---------------------------------------------- a dot model, read light
#: Parameters of a plain dot model (b_u + b_i + p_u . q_i of four tables), as read_dot_model reads them.
_PLAIN_DOT = {"interaction": "dot", "implicit": False, "user_features": None, "item_features": None,
              "time_column": None}
#: EmbeddingMFRegressor's parameters (a test keeps them equal to its get_params()): a file with
#: others was written by another version, and load_estimator says so.
_MF_PARAMETERS = frozenset({
    "activation", "alpha", "alpha_bias", "alpha_implicit", "batch_size", "clip_predictions", "distribution",
    "early_stopping", "epochs", "hidden_layer_sizes", "implicit", "init_std", "interaction", "item_features",
    "learning_rate", "loss", "n_factors", "n_iter_no_change", "n_jobs", "negative_rating", "negative_ratio",
    "negative_weight", "optimizer", "random_state", "regularization", "selection_factors", "user_features",
    "validation_fraction", "verbose", "item_item_alpha", "item_item_weight", "n_estimators", "time_column",
    "time_bins",
})


def read_dot_model(path):
    """The prediction state of a plain dot model's file, read without TensorFlow or scikit-learn.

    What ``skmfnet predict``, ``recommend`` and ``similar`` use to answer
    in well under a second (see :mod:`skmfnet._scoring`).  The file is
    checked as :func:`load_estimator` checks it: member sizes before
    reading, ``skmfnet.json``'s structure, format version, vocabularies,
    numbers and history, every array header, the network's declared layers,
    and every table read finite.  The parameters that prediction does not
    read are left to :func:`load_estimator`, which validates them against
    the estimator's constraints.

    Parameters
    ----------
    path : str or path-like
        A model file.

    Returns
    -------
    model : skmfnet._scoring.DotModel or None
        None when the file holds anything else than an
        :class:`~skmfnet.EmbeddingMFRegressor` with ``interaction="dot"``
        and neither side information, implicit feedback nor time effects (averaged
        members, the selection term and the item-item term are read), or
        parameters
        this reader does not check (load it with :func:`load_estimator`,
        which also gives the error a damaged file deserves).

    Raises
    ------
    InvalidModelFileError
        As :func:`load_estimator`.
    OSError
        If the file cannot be read.
    """
    return _read_model_file(path, _read_dot_archive)


def _read_dot_archive(archive, path):
    from types import SimpleNamespace

    from ._scoring import DotModel

    meta = _read_header(archive)
    params, fitted = meta.get("params"), meta.get("fitted")
    if meta["estimator"] != "EmbeddingMFRegressor" or not isinstance(params, dict) or not isinstance(fitted, dict):
        return None
    plain = all(params.get(k) == v and type(params.get(k)) is type(v) for k, v in _PLAIN_DOT.items())
    if set(params) != _MF_PARAMETERS or not plain:
        return None
    if fitted.get("user_features") or fitted.get("item_features"):
        return None

    def count(name, low):
        value = params.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= low else None

    k, selection_factors, epochs = count("n_factors", 1), count("selection_factors", 0), count("epochs", 1)
    members, clip = count("n_estimators", 1), params.get("clip_predictions")
    if None in (k, selection_factors, epochs, members) or not isinstance(clip, bool):
        return None  # load_estimator names what is wrong
    k *= members  # averaged members' factors side by side
    alpha = params.get("item_item_alpha")
    if not (alpha is None or alpha == "auto" or _is_positive_number(alpha)):
        return None
    # what the checks below read of an estimator: its parameters (hidden layers only serve "concat")
    model = SimpleNamespace(
        **{**params, "hidden_layer_sizes": ()}, fitted_params_=params,
        user_feature_encoders_=[], item_feature_encoders_=[],
    )
    _check_history(fitted.get("history"), epochs)
    ids = {side: _decode_ids(fitted.get(f"{side}_ids"), side) for side in ("user", "item")}
    n_users, n_items = len(ids["user"]), len(ids["item"])
    model.n_items_ = n_items
    _restore_numbers(model, fitted)
    _restore_resolved(model, fitted)
    item_item = _item_item_size(model, fitted, n_items)
    expected = _expected_arrays("EmbeddingMFRegressor", {}, n_users, n_items, selection_factors, item_item)
    arrays = _read_arrays(archive, expected) if _ARRAYS in archive.namelist() else {}
    selection = _selection_arrays(arrays, selection_factors) or (None, None)
    _restore_item_item(model, fitted, arrays, item_item)
    _, config, weights = _read_keras_archive(archive, model, n_users, n_items, fitted.get("n_train"))
    tables = _dot_tables(weights, config, {"user": n_users, "item": n_items}, k)
    if tables is None:
        return None
    return DotModel(
        user_ids=ids["user"], item_ids=ids["item"], mu=model.mu_, rating_range=model.rating_range_,
        clip_predictions=clip, **tables, user_selection=selection[0], item_selection=selection[1],
        seen=_seen_arrays(arrays, n_items), feature_names=getattr(model, "feature_names_in_", None),
        item_item=None if model.item_item_ is None else (
            model.item_item_items_, model.item_item_, model.item_item_weight_),
    )


def _is_positive_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")


def _snake_case(name):
    """A layer class's name as Keras names its group in a weights file (``keras.src.utils.naming``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _dot_tables(weights, config, sizes, k):
    """The four tables of a dot network from its HDF5 weights (checked), read with h5py; None if laid out otherwise.

    Keras stores the weights of the i-th layer of a class in the group
    ``layers/<class in snake case>[_i]``, in the order of the network's
    layers, and names the layer in the group's ``vars`` attribute: both must
    agree with the config, else the layout is one this reader does not
    know, and None sends the file to :func:`load_estimator`.
    """
    import h5py

    groups, used = {}, {}
    for entry in config["config"]["layers"]:
        base = _snake_case(entry["class_name"])
        used[base] = used.get(base, -1) + 1
        groups[entry["name"]] = base if used[base] == 0 else f"{base}_{used[base]}"
    tables = {}
    try:
        with h5py.File(io.BytesIO(weights), "r") as h5:
            for side, n in sizes.items():
                for kind, width in (("factors", k), ("bias", 1)):
                    name = f"{side}_{kind}"
                    where = f"layers/{groups[name]}/vars"
                    group = h5.get(where)
                    if not isinstance(group, h5py.Group) or group.attrs.get("name") != name:
                        return None
                    dataset = group.get("0")
                    if not isinstance(dataset, h5py.Dataset):
                        return None
                    if dataset.shape != (n + 1, width) or dataset.dtype.kind != "f" or dataset.dtype.itemsize > 8:
                        raise InvalidModelFileError(
                            f"{_KERAS}: the weights of {name!r} are {dataset.dtype} of shape {dataset.shape}; "
                            f"expected floats of shape {(n + 1, width)}"
                        )
                    table = dataset[()]
                    if not np.isfinite(table).all():
                        raise InvalidModelFileError(
                            f"its network's weight {name} is not finite (it holds NaN or infinite values)"
                        )
                    tables[name] = table if kind == "factors" else table[:, 0]
    except OSError as exc:  # h5py's error for a damaged HDF5 file
        raise InvalidModelFileError(f"{_KERAS}/{_KERAS_WEIGHTS} cannot be read ({exc})") from None
    return tables


# ------------------------------------------------- checks before allocating
# Keras builds every layer of a saved network (allocating its tables) before
# it reads a single weight, and numpy allocates the shape an array header
# declares before reading its data: neither checks sizes against anything.
# So every size a file declares is checked here, by hand, against what the
# vocabularies and parameters of skmfnet.json need, before either is called.

#: Most bytes skmfnet.json may inflate to: the ids of millions of users and items
#: (about 8 million numeric ids of 7 digits), and what Python's json parses in a
#: few seconds and under 1 GB whatever the text (64 MB of "0.5," is 16 million floats).
_MAX_META_BYTES = 64 * 2**20
#: Most bytes the Keras archive's config.json and metadata.json may inflate to.
_MAX_KERAS_CONFIG_BYTES = 4 * 2**20
#: Allowance for the fixed overhead of a member (zip, npy and HDF5 headers).
_SLACK = 2**20
#: Keras weights stored per network weight: the weight, optimizer slots, 8 bytes each at most.
_BYTES_PER_WEIGHT = 4 * 8
_KERAS_CONFIG, _KERAS_METADATA, _KERAS_WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
#: Layers of a skmfnet network that hold no weights (operations on tensors).
_WEIGHTLESS_LAYERS = {"InputLayer", "GetItem", "Add", "Multiply", "Sum", "Concatenate"}
_EMBEDDING_LAYERS = {"RowL2Embedding", "FeatureEmbedding", "Embedding"}


def _read_member(archive, name, limit, label=None):
    """The bytes of a zip member, refused unread if its header declares more than ``limit``.

    The read itself is bounded too (``zipfile`` stops at the declared size and
    checks the CRC), so a member cannot inflate past ``limit`` either way.
    """
    label = label or name
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise InvalidModelFileError(f"it has no {label}") from None
    _check_member_size(info, limit, label)
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise InvalidModelFileError(f"{label} inflates to more than {limit} bytes")
    return data


def _check_member_size(info, limit, label):
    if info.file_size > limit:
        raise InvalidModelFileError(
            f"{label} declares {info.file_size} bytes uncompressed; its vocabularies and "
            f"parameters need at most {limit}"
        )


#: Most lists and objects skmfnet.json may hold: a few per parameter, feature and
#: auto_results entry (vocabularies are flat lists).  Each costs about 60 bytes
#: of memory for 2 bytes of text ("[]"), so they are counted before parsing.
_MAX_META_CONTAINERS = 10_000
#: Most entries of the history (Keras records 2 to 4: loss, rmse, val_loss, val_rmse).
_MAX_HISTORY_KEYS = 64
#: Every byte but the quote and the opening brackets (deleted to count structure).
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[{')


def _check_structure(data, label):
    """Refuse JSON text holding more than ``_MAX_META_CONTAINERS`` lists and objects, unparsed.

    A few hundred kilobytes of compressed ``[]`` would otherwise parse into
    tens of millions of empty lists (gigabytes) before any field is checked.
    """
    count = data.count(b"[") + data.count(b"{")
    if count > _MAX_META_CONTAINERS:
        # brackets inside strings (ids such as "[1]") are no structure: count those outside,
        # vectorised (a Python loop or a regex over millions of strings would be slow or large)
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")  # escaped backslashes, then quotes
        codes = np.frombuffer(data.translate(None, _NOT_STRUCTURE), dtype=np.uint8)
        quotes = codes == ord('"')
        inside = np.bitwise_xor.accumulate(quotes)  # after an odd number of quotes: in a string
        count = int(np.count_nonzero(~inside & ~quotes))
    if count > _MAX_META_CONTAINERS:
        raise InvalidModelFileError(
            f"{label} holds {count} lists and objects; expected at most {_MAX_META_CONTAINERS} "
            "(vocabularies are flat lists)"
        )


def _check_history(history, epochs):
    """The training history: null, or an object of at most ``epochs`` finite numbers per entry."""
    if history is None:
        return {}
    if not isinstance(history, dict):
        raise InvalidModelFileError(
            f"history is a {_json_type(history)}; expected an object of lists of numbers (one per epoch)"
        )
    if len(history) > _MAX_HISTORY_KEYS:
        raise InvalidModelFileError(f"history has {len(history)} entries; expected at most {_MAX_HISTORY_KEYS}")
    limit = epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else 0
    if limit == 0 and any(history.values()):
        raise InvalidModelFileError("history has values, but this estimator records no history (no epochs)")
    checked = {}
    for key, values in history.items():
        where = f"history's {key!r}"
        if not isinstance(values, list):
            raise InvalidModelFileError(f"{where} is a {_json_type(values)}; expected a list of numbers")
        if len(values) > limit:
            raise InvalidModelFileError(f"{where} has {len(values)} values; expected at most {limit} (epochs)")
        bad = next((v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))), None)
        if bad is not None:
            raise InvalidModelFileError(f"{where} holds {bad!r}; expected numbers")
        checked[key] = [_number(v, where) for v in values]
    return checked


def _json_type(value):
    return {dict: "object", list: "list", str: "str", bool: "bool", type(None): "null"}.get(type(value), "number")


def _refuse_constant(name):
    raise InvalidModelFileError(f"holds the constant {name}; numbers must be finite")


def _parse_json(data, label):
    """JSON without NaN or Infinity; too deep nesting is refused, not a RecursionError."""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except InvalidModelFileError as exc:
        raise InvalidModelFileError(f"{label} {exc}") from None
    except RecursionError:
        raise InvalidModelFileError(
            f"{label} is nested deeper than the JSON parser allows; model files nest a few levels"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidModelFileError(f"{label} is not valid JSON ({exc})") from None


def _restore_numbers(estimator, fitted):
    """``mu_``, ``rating_range_``, ``n_features_in_``, ``feature_names_in_``: finite and consistent."""
    estimator.mu_ = _number(fitted.get("mu"), "mu")
    rating_range = fitted.get("rating_range")
    if not isinstance(rating_range, list) or len(rating_range) != 2:
        raise InvalidModelFileError(f"rating_range is {rating_range!r}; expected [lowest, highest]")
    low, high = (_number(v, "rating_range") for v in rating_range)
    if low > high:
        raise InvalidModelFileError(
            f"rating_range {rating_range} is inverted; expected [lowest, highest] with low <= high"
        )
    estimator.rating_range_ = (low, high)
    n_features = fitted.get("n_features_in")
    if not isinstance(n_features, int) or isinstance(n_features, bool) or n_features < 2:
        raise InvalidModelFileError(f"n_features_in is {n_features!r}; expected an integer >= 2")
    # the two ids, each feature column named once and the time column (fit refuses any other column)
    expected = 2 + sum(len(getattr(estimator, f"{side}_features", None) or ()) for side in ("user", "item"))
    expected += getattr(estimator, "time_column", None) is not None
    if n_features != expected:
        raise InvalidModelFileError(
            f"n_features_in is {n_features}; expected {expected} (user id, item id and the feature "
            "and time columns its parameters name)"
        )
    estimator.n_features_in_ = n_features
    names = fitted.get("feature_names_in")
    if names is not None:
        if not isinstance(names, list) or len(names) != n_features or not all(isinstance(v, str) for v in names):
            raise InvalidModelFileError(
                f"feature_names_in is malformed; expected {n_features} strings (n_features_in)"
            )
        estimator.feature_names_in_ = np.asarray(names, dtype=object)
    n_train = fitted.get("n_train")
    if n_train is not None and (not isinstance(n_train, int) or isinstance(n_train, bool) or n_train < 1):
        raise InvalidModelFileError(f"n_train is {n_train!r}; expected a positive integer or null")


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidModelFileError(f"{what} is missing or not a number")
    try:
        value = float(value)  # json gives floats that may be inf, and ints of any size
    except OverflowError:
        raise InvalidModelFileError(f"{what} is an integer too large for a float; expected a finite number") from None
    if not np.isfinite(value):
        raise InvalidModelFileError(f"{what} is {value}; expected a finite number")
    return value


def _restore_resolved(estimator, fitted):
    """``alpha_`` and ``learning_rate_`` (stored, or in files from before "auto" the parameters), ``auto_results_``."""
    for name, positive in (("alpha", False), ("learning_rate", True)):
        value = fitted.get(name)
        if value is None:
            value = estimator.fitted_params_[name]
            if value == "auto":
                raise InvalidModelFileError(f"{name} is 'auto' and the fitted state has no {name}")
        value = _number(value, name)
        if value < 0 or (positive and value == 0):
            raise InvalidModelFileError(f"{name} is {value}; expected a number {'> 0' if positive else '>= 0'}")
        setattr(estimator, f"{name}_", value)
    results = fitted.get("auto_results")
    if results is not None:
        keys = {"alpha", "learning_rate", "best_val_rmse", "best_epoch", "epochs"}
        if not isinstance(results, list) or not 1 <= len(results) <= _MAX_AUTO_RESULTS or not all(
            isinstance(entry, dict) and set(entry) == keys for entry in results
        ):
            raise InvalidModelFileError(
                f"auto_results is malformed; expected null or a list of at most {_MAX_AUTO_RESULTS} "
                f"objects with the keys {sorted(keys)}"
            )
        for entry in results:
            for key in ("alpha", "learning_rate", "best_val_rmse"):
                entry[key] = _number(entry[key], f"auto_results' {key}")
            for key in ("best_epoch", "epochs"):
                if not isinstance(entry[key], int) or isinstance(entry[key], bool) or entry[key] < 1:
                    raise InvalidModelFileError(f"auto_results' {key} is {entry[key]!r}; expected a positive integer")
    estimator.auto_results_ = results
    engine = fitted.get("engine")
    if engine is not None:  # files from before engine_ have none
        from ._training._dispatch import ENGINES

        if engine not in ENGINES:
            raise InvalidModelFileError(f"engine is {engine!r}; expected null or one of {list(ENGINES)}")
        estimator.engine_ = engine


#: Most (alpha, learning_rate) pairs a file's auto_results may list.
_MAX_AUTO_RESULTS = 16


def _decode_features(fitted):
    """Feature encoders of each side (empty lists for files without side information)."""
    from ._encoding import IdEncoder
    from ._features import FeatureEncoder

    features = {}
    for side in ("user", "item"):
        entries = fitted.get(f"{side}_features", [])
        if not isinstance(entries, list):
            raise InvalidModelFileError(f"{side}_features is malformed")
        encoders = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise InvalidModelFileError(f"a {side} feature is malformed")
            width = entry.get("width")
            if not isinstance(width, int) or isinstance(width, bool) or width < 1:
                raise InvalidModelFileError(f"{side} feature {entry['name']!r} has no valid width")
            encoder = FeatureEncoder(entry["name"])
            encoder.multi_valued = bool(entry.get("multi_valued"))
            encoder.width = width
            encoder.encoder = IdEncoder()
            encoder.encoder.classes_ = _decode_ids(entry.get("labels"), f"{side} feature")
            encoders.append(encoder)
        features[side] = encoders
    return features


def _item_item_size(estimator, fitted, n_items):
    """Items the item-item term covers (None without one), checked against the vocabulary before any read."""
    if getattr(estimator, "item_item_alpha", None) is None:
        return None
    from ._item_item import MAX_ITEMS

    size = fitted.get("item_item_size")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= min(n_items, MAX_ITEMS):
        raise InvalidModelFileError(
            f"item_item_size is {size!r}; expected an integer from 0 to {min(n_items, MAX_ITEMS)} "
            "(the items of the vocabulary the item-item term covers)"
        )
    return size


def _restore_item_item(estimator, fitted, arrays, size):
    """``item_item_`` and its attributes (None without the term)."""
    estimator.item_item_ = estimator.item_item_items_ = estimator.item_item_results_ = None
    estimator.item_item_alpha_ = estimator.item_item_weight_ = None
    if size is None:
        return
    for key in ("item_item_items", "item_item"):
        if key not in arrays:
            raise InvalidModelFileError(f"{_ARRAYS} has no {key}, which item_item_alpha needs")
    items = arrays["item_item_items"].astype(np.int64)
    if len(items) and (items[0] < 1 or items[-1] > estimator.n_items_ or (np.diff(items) <= 0).any()):
        raise InvalidModelFileError(
            f"{_ARRAYS}: item_item_items are not increasing item rows of 1..{estimator.n_items_}"
        )
    estimator.item_item_items_, estimator.item_item_ = items, arrays["item_item"].astype(np.float32)
    alpha, weight = (_number(fitted.get(f"item_item_{k}"), f"item_item_{k}") for k in ("alpha", "weight"))
    if alpha <= 0 or weight < 0:
        raise InvalidModelFileError(
            f"item_item_alpha {alpha} and item_item_weight {weight}: expected a number > 0 and one >= 0"
        )
    estimator.item_item_alpha_, estimator.item_item_weight_ = alpha, weight
    results = fitted.get("item_item_results")
    if results is not None:
        keys = {"alpha", "weight", "ndcg_at_10"}
        if not isinstance(results, list) or len(results) > _MAX_ITEM_ITEM_RESULTS or not all(
            isinstance(entry, dict) and set(entry) == keys for entry in results
        ):
            raise InvalidModelFileError(
                f"item_item_results is malformed; expected null or a list of at most {_MAX_ITEM_ITEM_RESULTS} "
                f"objects with the keys {sorted(keys)}"
            )
        results = [{k: _number(v, f"item_item_results' {k}") for k, v in entry.items()} for entry in results]
    estimator.item_item_results_ = results


#: Most (alpha, weight) pairs a file's item_item_results may list (skmfnet._item_item's grids: 25).
_MAX_ITEM_ITEM_RESULTS = 64


def _expected_arrays(name, features, n_users, n_items, selection_factors=0, item_item=None):
    """Name -> (shape, dtype kinds) of every array the file may hold.

    A shape ``(None, bound)`` is one-dimensional with at most ``bound`` entries.
    """
    expected = {
        "seen_indptr": ((n_users + 2,), "iu"),
        "seen_indices": ((None, (n_users + 1) * (n_items + 1)), "iu"),
    }
    if name == "BiasBaselineRegressor":
        expected["user_bias"] = ((n_users + 1,), "f")
        expected["item_bias"] = ((n_items + 1,), "f")
    for side, n in (("user", n_users), ("item", n_items)):
        if selection_factors:
            expected[f"{side}_selection"] = ((n + 1, selection_factors + 1), "f")
        if features.get(side):
            expected[f"{side}_feature_codes"] = ((n + 1, sum(e.width for e in features[side])), "iu")
    if item_item is not None:
        expected["item_item_items"] = ((item_item,), "iu")
        expected["item_item"] = ((item_item, item_item), "f")
    return expected


def _npy_limit(shape):
    """Bytes an .npy member of ``shape`` may take: 8-byte items plus its header."""
    n = shape[1] if shape[0] is None else int(np.prod(shape, dtype=object))
    return 8 * n + 4096


def _read_arrays(archive, expected):
    """The arrays of arrays.npz, each header checked against ``expected`` before its data is read."""
    data = _read_member(archive, _ARRAYS, sum(_npy_limit(s) for s, _ in expected.values()) + _SLACK)
    arrays = {}
    with zipfile.ZipFile(io.BytesIO(data)) as npz:
        for info in npz.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            label = f"{_ARRAYS}: {key}"
            if key not in expected or key in arrays:
                raise InvalidModelFileError(
                    f"{_ARRAYS} holds an unexpected member {info.filename!r}; expected "
                    f"{sorted(k + '.npy' for k in expected)}"
                )
            shape, kinds = expected[key]
            _check_member_size(info, _npy_limit(shape), label)
            with npz.open(info) as member:
                arrays[key] = _read_npy(member, shape, kinds, label)
    return arrays


def _read_npy(member, expected_shape, kinds, label):
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise InvalidModelFileError(f"{label} has npy format version {version}; expected 1.0 or 2.0")
    if dtype.hasobject or dtype.kind not in kinds or dtype.itemsize > 8 or dtype.fields:
        raise InvalidModelFileError(
            f"{label} has dtype {dtype}; expected {'floats' if kinds == 'f' else 'integers'} of at most 8 bytes"
        )
    if expected_shape[0] is None:
        if len(shape) != 1 or not 0 <= shape[0] <= expected_shape[1]:
            raise InvalidModelFileError(
                f"{label} has shape {shape}; expected one dimension of at most {expected_shape[1]} "
                "entries for these vocabularies"
            )
    elif tuple(shape) != tuple(expected_shape):
        raise InvalidModelFileError(f"{label} has shape {shape}, expected {expected_shape} for these vocabularies")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    data = member.read(nbytes + 1)
    if len(data) != nbytes:
        raise InvalidModelFileError(f"{label} holds {len(data)} bytes of data; its shape needs {nbytes}")
    values = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")
    if kinds == "f" and not np.isfinite(values).all():
        raise InvalidModelFileError(f"{label} is not finite (it holds NaN or infinite values)")
    return values.copy()


def _restore_features(estimator, features, arrays, n_users, n_items):
    """Feature encoders and code tables (empty for files without side information)."""
    for side, n in (("user", n_users), ("item", n_items)):
        encoders = features[side]
        width = sum(e.width for e in encoders)
        codes = arrays.get(f"{side}_feature_codes", np.zeros((n + 1, 0), dtype=np.int32))
        if codes.shape != (n + 1, width):
            raise InvalidModelFileError(f"the {side} feature codes do not match the vocabulary")
        bounds = np.repeat([e.n_known for e in encoders], [e.width for e in encoders])
        if codes.size and ((codes < 0) | (codes > bounds)).any():
            raise InvalidModelFileError(f"the {side} feature codes are out of range")
        setattr(estimator, f"{side}_feature_encoders_", encoders)
        setattr(estimator, f"{side}_feature_codes_", codes.astype(np.int32))
    from ._features import resolve_feature_columns

    try:
        columns = resolve_feature_columns(estimator, estimator.n_features_in_)
    except ValueError as exc:
        raise InvalidModelFileError(f"its feature parameters do not match its columns: {exc}") from None
    for side, side_columns in zip(("user", "item"), columns):
        names = [e.name for e in getattr(estimator, f"{side}_feature_encoders_")]
        if [str(name) for name, _ in side_columns] != [str(n) for n in names]:
            raise InvalidModelFileError(
                f"its {side}_features name columns {[n for n, _ in side_columns]}, but its "
                f"feature encoders are for {names}"
            )
        setattr(estimator, f"{side}_feature_columns_", list(side_columns))


def _restore_time(estimator, fitted):
    """``time_column_`` (resolved from the parameters) and ``time_range_``: two finite numbers, in order."""
    from ._features import resolve_time_column

    time_range = fitted.get("time_range")
    if getattr(estimator, "time_column", None) is None:
        if time_range is not None:
            raise InvalidModelFileError("time_range is given, but time_column is None")
        estimator.time_column_ = estimator.time_range_ = None
        return
    if not isinstance(time_range, list) or len(time_range) != 2:
        raise InvalidModelFileError(f"time_range is {time_range!r}; expected [t_min, t_max] with time_column")
    low, high = (_number(v, "time_range") for v in time_range)
    if not low <= high:
        raise InvalidModelFileError(f"time_range is {time_range!r}; expected t_min <= t_max")
    try:
        estimator.time_column_ = resolve_time_column(estimator, estimator.n_features_in_)
    except ValueError as exc:
        raise InvalidModelFileError(f"its time_column does not match its columns: {exc}") from None
    estimator.time_range_ = (low, high)


def _selection_arrays(arrays, selection_factors):
    """The selection term's (user, item) tables as float32, None without one; row 0 must be zero."""
    if not selection_factors:
        return None
    tables = []
    for side in ("user", "item"):
        if f"{side}_selection" not in arrays:
            raise InvalidModelFileError(
                f"{_ARRAYS} has no {side}_selection, which selection_factors={selection_factors} needs"
            )
        selection = arrays[f"{side}_selection"]
        if selection[0].any():
            raise InvalidModelFileError(
                f"{_ARRAYS}: {side}_selection's row 0 (the row of unknown {side}s) is not zero; "
                "it must be zero"
            )
        tables.append(selection.astype(np.float32))
    return tuple(tables)


def _seen_arrays(arrays, n_items):
    """The training pairs' CSR ``(indptr, indices)`` (None when the file has none), checked as CSR."""
    if "seen_indptr" not in arrays:
        return None
    indptr, indices = arrays["seen_indptr"].astype(np.int64), arrays.get("seen_indices")
    if indices is None:
        raise InvalidModelFileError(f"{_ARRAYS} has seen_indptr but no seen_indices")
    indices = indices.astype(np.int64)
    if indptr[0] != 0 or indptr[-1] != len(indices) or (np.diff(indptr) < 0).any():
        raise InvalidModelFileError(f"{_ARRAYS}: seen_indptr is not the row pointer of seen_indices")
    if len(indices) and not 0 <= indices.min() <= indices.max() <= n_items:
        raise InvalidModelFileError(f"{_ARRAYS}: seen_indices holds item rows out of 0..{n_items}")
    return indptr, indices


def _seen_from_arrays(arrays, n_users, n_items):
    import scipy.sparse as sp

    indptr, indices = _seen_arrays(arrays, n_items)
    return sp.csr_matrix((np.ones(len(indices), dtype=bool), indices, indptr), shape=(n_users + 1, n_items + 1))


def _network_layers(estimator, n_users, n_items, n_train):
    """What each weighted layer of the network must declare, from vocabularies and parameters.

    Returns name -> (layer classes, {config field: expected value}); an
    expected value ``(None, bound)`` is an integer from 0 to ``bound``.
    A Dense layer's ``input_width`` is the last entry of its build input shape.
    """
    k = estimator.n_factors * getattr(estimator, "n_estimators", 1)  # averaged members: side by side
    layers = {}
    for side, n in (("user", n_users), ("item", n_items)):
        layers[f"{side}_factors"] = (_EMBEDDING_LAYERS, {"input_dim": n + 1, "output_dim": k})
        layers[f"{side}_bias"] = (_EMBEDDING_LAYERS, {"input_dim": n + 1, "output_dim": 1})
    encoders = [("user", e) for e in estimator.user_feature_encoders_]
    encoders += [("item", e) for e in estimator.item_feature_encoders_]
    for index, (side, encoder) in enumerate(encoders):
        for kind, dim in (("factors", k), ("bias", 1)):
            layers[f"{side}_feature_{index}_{kind}"] = (
                _EMBEDDING_LAYERS, {"input_dim": encoder.n_known + 1, "output_dim": dim}
            )
    pairs = (n_users + 1) * (n_items + 1)
    if estimator.implicit:  # (the network's module, TensorFlow with it, only for a model that loads it anyway)
        from ._network import IMPLICIT, IMPLICIT_SIDES, ITEM_IMPLICIT
    for side in IMPLICIT_SIDES.get(estimator.implicit, ()) if estimator.implicit else ():
        # the item-side twin: the same layer with users and items swapped
        owners, labels = (n_users, n_items) if side == "user" else (n_items, n_users)
        layers[IMPLICIT if side == "user" else ITEM_IMPLICIT] = (
            {"ImplicitFeedback"},
            {"n_users": owners + 1, "n_items": labels + 1, "n_factors": k,
             "n_pairs": (None, pairs if n_train is None else min(pairs, n_train))},
        )
    if getattr(estimator, "time_column", None) is not None:
        layers["time_effects"] = ({"TimeEffects"}, {"n_users": n_users + 1, "n_items": n_items + 1,
                                                    "n_bins": estimator.time_bins})
    if estimator.interaction == "concat":
        widths = [2 * k + 2, *estimator.hidden_layer_sizes, 1]
        names = [f"hidden_{i}" for i in range(len(widths) - 2)] + ["score"]
        for name, width_in, width_out in zip(names, widths, widths[1:]):
            layers[name] = ({"Dense"}, {"units": width_out, "input_width": width_in})
    return layers


def _n_weights(layers, pairs=True):
    """Weights of the network ``layers`` describes (``pairs=False``: without implicit feedback's pairs)."""
    total = 0
    for _, fields in layers.values():
        if "input_dim" in fields:
            total += fields["input_dim"] * fields["output_dim"]
        elif "units" in fields:
            total += (fields["input_width"] + 1) * fields["units"]
        elif "n_bins" in fields:  # time effects: item_bin_bias, user_drift, user_mean
            total += fields["n_items"] * fields["n_bins"] + 2 * fields["n_users"]
        else:  # implicit feedback: y, indptr, indices
            total += fields["n_items"] * fields["n_factors"] + fields["n_users"] + (fields["n_pairs"][1] + 1) * pairs
    return total


def _check_keras_config(config, layers, n_columns):
    """Every layer of the Keras config declares the sizes ``layers`` expects, and no other layer."""
    where = f"{_KERAS}/{_KERAS_CONFIG}"
    try:
        entries = config["config"]["layers"]
        if config["class_name"] != "Functional" or not isinstance(entries, list):
            raise TypeError
        if not all(isinstance(entry, dict) and isinstance(entry["config"], dict) for entry in entries):
            raise TypeError
        names = [entry["name"] for entry in entries]
        classes = [entry["class_name"] for entry in entries]
    except (KeyError, TypeError):
        raise InvalidModelFileError(f"{where} does not describe a Keras functional network") from None
    # every entry is checked: Keras builds (allocates) each one, connected or not
    seen = set()
    for entry, name, cls in zip(entries, names, classes):
        if not isinstance(name, str):
            raise InvalidModelFileError(f"{where}: a layer's name is {name!r}; expected a string")
        if name in seen:
            raise InvalidModelFileError(
                f"{where}: layer name {name!r} appears twice; a network's layers have distinct names"
            )
        seen.add(name)
        config = entry["config"]
        if name in layers:
            allowed, fields = layers[name]
            if cls not in allowed:
                raise InvalidModelFileError(f"{where}: layer {name!r} is a {cls}; expected {sorted(allowed)}")
            for field, expected in fields.items():
                if field == "input_width":
                    shape = (entry.get("build_config") or {}).get("input_shape")
                    value = shape[-1] if isinstance(shape, list) and shape else shape
                    field = "input width"
                else:
                    value = config.get(field)
                _check_declared(where, name, field, value, expected)
        elif cls == "InputLayer":
            shape = config.get("batch_shape")
            if shape != [None, n_columns]:
                raise InvalidModelFileError(
                    f"{where}: input {name!r} declares batch_shape {shape!r}; expected [None, {n_columns}] "
                    "(user row, item row, feature codes and, with time_column, the time code)"
                )
        elif cls not in _WEIGHTLESS_LAYERS:
            raise InvalidModelFileError(
                f"{where}: layer {name!r} of class {cls} is not part of a skmfnet network"
            )
    missing = sorted(set(layers) - seen)
    if missing:
        raise InvalidModelFileError(f"{where} lacks the layers {missing} that these parameters need")


def _check_declared(where, name, field, value, expected):
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(expected, tuple):
        if not is_int or not 0 <= value <= expected[1]:
            raise InvalidModelFileError(
                f"{where}: layer {name!r} declares {field} {value!r}; expected at most {expected[1]} "
                f"for the vocabularies of {_META}"
            )
    elif not is_int or value != expected:
        raise InvalidModelFileError(
            f"{where}: layer {name!r} declares {field} {value!r}; expected {expected} from the "
            f"vocabularies and parameters of {_META}"
        )


def _read_keras_archive(archive, estimator, n_users, n_items, n_train):
    """The bytes of model.keras, once every size it declares is checked."""
    layers = _network_layers(estimator, n_users, n_items, n_train)
    weights_limit = _BYTES_PER_WEIGHT * _n_weights(layers) + _SLACK
    data = _read_member(archive, _KERAS, weights_limit + 2 * _MAX_KERAS_CONFIG_BYTES + _SLACK)
    try:
        inner = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise InvalidModelFileError(f"{_KERAS} is not a Keras archive ({exc})") from None
    with inner:
        limits = {
            _KERAS_CONFIG: _MAX_KERAS_CONFIG_BYTES,
            _KERAS_METADATA: _MAX_KERAS_CONFIG_BYTES,
            _KERAS_WEIGHTS: weights_limit,
        }
        for info in inner.infolist():
            if info.filename not in limits:
                raise InvalidModelFileError(
                    f"{_KERAS} holds an unexpected member {info.filename!r}; expected {sorted(limits)}"
                )
            _check_member_size(info, limits[info.filename], f"{_KERAS}/{info.filename}")
        # Keras stores every weight uncompressed, 2 bytes at least: a smaller file cannot hold them
        needed = 2 * _n_weights(layers, pairs=False)
        if _KERAS_WEIGHTS not in inner.namelist() or inner.getinfo(_KERAS_WEIGHTS).file_size < needed:
            raise InvalidModelFileError(
                f"{_KERAS}/{_KERAS_WEIGHTS} is missing or smaller than the {needed} bytes that the "
                f"{_n_weights(layers, pairs=False)} weights of these vocabularies and parameters need"
            )
        where = f"{_KERAS}/{_KERAS_CONFIG}"
        config = _parse_json(_read_member(inner, _KERAS_CONFIG, _MAX_KERAS_CONFIG_BYTES, where), where)
        weights = inner.read(_KERAS_WEIGHTS)  # its size is checked above
    n_columns = 2 + sum(e.width for e in _feature_encoders(estimator)) + (estimator.time_column is not None)
    _check_keras_config(config, layers, n_columns)
    _check_self_contained(weights)
    return data, config, weights


def _check_self_contained(weights):
    """Refuse an HDF5 weights file that would read other files: soft or external links, external or virtual data."""
    import h5py

    def walk(group):
        for name in group:
            if not isinstance(group.get(name, getlink=True), h5py.HardLink):
                raise InvalidModelFileError(
                    f"{_KERAS}/{_KERAS_WEIGHTS}: {group.name.rstrip('/')}/{name} is a link; weights are stored "
                    "in the file"
                )
            item = group[name]
            if isinstance(item, h5py.Group):
                walk(item)
            elif isinstance(item, h5py.Dataset) and (item.external or item.is_virtual):
                raise InvalidModelFileError(
                    f"{_KERAS}/{_KERAS_WEIGHTS}: {item.name} reads its data from other files; weights are "
                    "stored in the file"
                )

    try:
        with h5py.File(io.BytesIO(weights), "r") as h5:
            walk(h5)
    except OSError as exc:  # h5py's error for a damaged HDF5 file
        raise InvalidModelFileError(f"{_KERAS}/{_KERAS_WEIGHTS} cannot be read ({exc})") from None


def _restore_network(estimator, archive, fitted, n_users, n_items):
    import keras

    data, _, _ = _read_keras_archive(archive, estimator, n_users, n_items, fitted.get("n_train"))
    with tempfile.TemporaryDirectory() as workdir:
        keras_path = Path(workdir) / _KERAS
        keras_path.write_bytes(data)
        try:
            model = keras.saving.load_model(keras_path, safe_mode=True)
        except Exception as exc:  # Keras raises many types for damaged archives
            raise InvalidModelFileError(
                f"its Keras network could not be loaded in safe mode ({type(exc).__name__}: {exc})"
            ) from None
    for weight in model.weights:
        if not np.isfinite(keras.ops.convert_to_numpy(weight)).all():
            raise InvalidModelFileError(
                f"its network's weight {weight.path} is not finite (it holds NaN or infinite values)"
            )
    estimator.model_ = model
    estimator.history_ = fitted["history"]  # checked by _check_history
    n_train = fitted.get("n_train")
    estimator._n_train = n_train if isinstance(n_train, int) else 1
    # scikeras's bookkeeping of a fitted KerasRegressor (not used by predict)
    random_state = estimator.random_state
    estimator._random_state = random_state if isinstance(random_state, numbers.Integral) else None
    estimator.target_encoder_ = estimator.target_encoder.fit(np.zeros(1, dtype=np.float32))
    estimator.feature_encoder_ = estimator.feature_encoder.fit(np.zeros((1, 2), dtype=np.int32))
    estimator.n_outputs_ = estimator.n_outputs_expected_ = 1
    estimator._initialize_callbacks()
