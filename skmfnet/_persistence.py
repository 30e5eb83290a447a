"""Model files that are safe to load: a versioned zip of JSON, numpy arrays and a Keras archive.

Unlike a pickle, loading a model file executes no code from the file:

* ``skmfnet.json`` (read with :func:`json.loads`) holds the format name and
  version, the skmfnet version that wrote it, the estimator's class name and
  ``get_params()``, and the fitted state that is not an array: ``mu_``,
  ``rating_range_``, ``history_``, ``n_features_in_``, ``feature_names_in_``
  and both id vocabularies, each id a JSON value of its own type (int, float
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
  item), read with ``allow_pickle=False``.

A file is written to a temporary file in the destination folder, flushed to
disk and renamed over the destination in one step, so an interrupted save
never leaves a half-written model behind.
"""

import io
import json
import numbers
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

__all__ = ["FORMAT_VERSION", "InvalidModelFileError", "load_estimator", "save_estimator"]

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
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidModelFileError(f"the {side} vocabulary has an unusable dtype: {exc}") from None
    if not index.is_unique:
        raise InvalidModelFileError(f"the {side} vocabulary has duplicate ids")
    return index


# ------------------------------------------------------------------- params
def _encode_params(estimator):
    params = {}
    for name, value in estimator.get_params(deep=False).items():
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
    return {k: tuple(v) if isinstance(defaults[k], tuple) and isinstance(v, list) else v for k, v in params.items()}


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

    Raises
    ------
    TypeError
        If the estimator is of another type.
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.
    ValueError
        If an id is not an int, float or str (e.g. a tuple), or a parameter
        is not JSON.

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
    check_is_fitted(estimator, ["user_encoder_", "item_encoder_", "mu_"])
    from . import __version__

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
        },
    }
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
            arrays[f"{side}_feature_codes"] = getattr(estimator, f"{side}_feature_codes_").astype(np.int32)
    if name == "BiasBaselineRegressor":
        arrays["user_bias"] = np.asarray(estimator.user_bias_, dtype=np.float64)
        arrays["item_bias"] = np.asarray(estimator.item_bias_, dtype=np.float64)
    seen = getattr(estimator, "seen_", None)
    if seen is not None:
        seen = sp.csr_matrix(seen)
        arrays["seen_indptr"] = seen.indptr.astype(np.int64)
        arrays["seen_indices"] = seen.indices.astype(np.int64)

    path = Path(os.fspath(path))
    with tempfile.TemporaryDirectory() as workdir:
        keras_file = None
        if name == "EmbeddingMFRegressor":
            keras_file = Path(workdir) / _KERAS
            estimator.model_.save(keras_file)
        _write_atomically(path, meta, arrays, keras_file)


def _feature_encoders(estimator):
    return list(getattr(estimator, "user_feature_encoders_", [])) + list(
        getattr(estimator, "item_feature_encoders_", [])
    )


def _restore_features(estimator, fitted, arrays, n_users, n_items):
    """Feature encoders and code tables (empty for files without side information)."""
    from ._encoding import IdEncoder
    from ._features import FeatureEncoder

    for side, n in (("user", n_users), ("item", n_items)):
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
        width = sum(e.width for e in encoders)
        codes = arrays.get(f"{side}_feature_codes", np.zeros((n + 1, 0), dtype=np.int32))
        if codes.shape != (n + 1, width) or codes.dtype.kind not in "iu":
            raise InvalidModelFileError(f"the {side} feature codes do not match the vocabulary")
        bounds = np.repeat([e.n_known for e in encoders], [e.width for e in encoders])
        if codes.size and ((codes < 0) | (codes > bounds)).any():
            raise InvalidModelFileError(f"the {side} feature codes are out of range")
        setattr(estimator, f"{side}_feature_encoders_", encoders)
        setattr(estimator, f"{side}_feature_codes_", codes.astype(np.int32))


def _write_atomically(path, meta, arrays, keras_file):
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(_META, json.dumps(meta, indent=1))
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
    :mod:`json`, arrays are read with ``allow_pickle=False`` and the Keras
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
        format version than this skmfnet reads (the message says to upgrade).
    OSError
        If the file cannot be read (:class:`FileNotFoundError` when missing).

    See Also
    --------
    save_estimator : Write the file.
    """
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
                return _load_archive(archive, path)
        except InvalidModelFileError as exc:
            raise InvalidModelFileError(f"{path} is not a valid skmfnet model file: {exc}") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, KeyError, ValueError) as exc:
            raise InvalidModelFileError(
                f"{path} is not a valid skmfnet model file (truncated, damaged or another kind "
                f"of file): {exc}"
            ) from None


def _load_archive(archive, path):
    try:
        meta = json.loads(archive.read(_META).decode("utf-8"))
    except KeyError:
        raise InvalidModelFileError(f"it has no {_META}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidModelFileError(f"{_META} is not valid JSON ({exc})") from None
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
    name = meta.get("estimator")
    if name not in _ESTIMATORS:
        raise InvalidModelFileError(f"unknown estimator {name!r}")
    import importlib

    cls = getattr(importlib.import_module(_ESTIMATORS[name], __package__), name)
    estimator = cls(**_decode_params(cls, meta.get("params")))
    fitted = meta.get("fitted")
    if not isinstance(fitted, dict):
        raise InvalidModelFileError("the fitted state is missing")

    from ._encoding import IdEncoder

    for side in ("user", "item"):
        encoder = IdEncoder()
        encoder.classes_ = _decode_ids(fitted.get(f"{side}_ids"), side)
        setattr(estimator, f"{side}_encoder_", encoder)
    n_users, n_items = estimator.user_encoder_.n_known, estimator.item_encoder_.n_known
    estimator.n_users_, estimator.n_items_ = n_users, n_items
    estimator.mu_ = _number(fitted.get("mu"), "mu")
    rating_range = fitted.get("rating_range")
    if not isinstance(rating_range, list) or len(rating_range) != 2:
        raise InvalidModelFileError("rating_range is missing or malformed")
    estimator.rating_range_ = tuple(_number(v, "rating_range") for v in rating_range)
    estimator.n_features_in_ = int(_number(fitted.get("n_features_in"), "n_features_in"))
    if fitted.get("feature_names_in") is not None:
        estimator.feature_names_in_ = np.asarray(fitted["feature_names_in"], dtype=object)

    arrays = _read_arrays(archive) if _ARRAYS in archive.namelist() else {}
    if name == "BiasBaselineRegressor":
        for side, n in (("user", n_users), ("item", n_items)):
            values = arrays.get(f"{side}_bias")
            if values is None or values.shape != (n + 1,) or values.dtype.kind != "f":
                raise InvalidModelFileError(f"{side}_bias is missing or does not match the vocabulary")
            setattr(estimator, f"{side}_bias_", values.astype(np.float64))
    else:
        _restore_features(estimator, fitted, arrays, n_users, n_items)
        _restore_network(estimator, archive, fitted, n_users, n_items)
    if "seen_indptr" in arrays:
        estimator.seen_ = _seen_from_arrays(arrays, n_users, n_items)
    return estimator


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidModelFileError(f"{what} is missing or not a number")
    return float(value)


def _read_arrays(archive):
    with np.load(io.BytesIO(archive.read(_ARRAYS)), allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def _seen_from_arrays(arrays, n_users, n_items):
    indptr, indices = arrays.get("seen_indptr"), arrays.get("seen_indices")
    if indices is None or indptr.shape != (n_users + 2,) or indptr.dtype.kind not in "iu":
        raise InvalidModelFileError("the seen matrix does not match the vocabulary")
    seen = sp.csr_matrix(
        (np.ones(len(indices), dtype=bool), indices, indptr), shape=(n_users + 1, n_items + 1)
    )
    seen.check_format(full_check=True)  # ValueError on out-of-range indices
    return seen


def _restore_network(estimator, archive, fitted, n_users, n_items):
    import keras

    from ._network import ITEM_BIAS, USER_BIAS

    if _KERAS not in archive.namelist():
        raise InvalidModelFileError(f"it has no {_KERAS}")
    with tempfile.TemporaryDirectory() as workdir:
        keras_path = Path(workdir) / _KERAS
        keras_path.write_bytes(archive.read(_KERAS))
        try:
            model = keras.saving.load_model(keras_path, safe_mode=True)
        except Exception as exc:  # Keras raises many types for damaged archives
            raise InvalidModelFileError(
                f"its Keras network could not be loaded in safe mode ({type(exc).__name__}: {exc})"
            ) from None
    try:
        shapes = (
            model.get_layer(USER_BIAS).embeddings.shape[0],
            model.get_layer(ITEM_BIAS).embeddings.shape[0],
        )
    except (ValueError, AttributeError):
        raise InvalidModelFileError("its Keras network is not a skmfnet network") from None
    if tuple(shapes) != (n_users + 1, n_items + 1):
        raise InvalidModelFileError(
            f"its network has {shapes} embedding rows, but the vocabularies need "
            f"{(n_users + 1, n_items + 1)}"
        )
    width = 2 + sum(e.width for e in _feature_encoders(estimator))
    if tuple(model.inputs[0].shape[1:]) != (width,):
        raise InvalidModelFileError(
            f"its network takes {tuple(model.inputs[0].shape[1:])} input columns, but the "
            f"vocabularies and features need {width}"
        )
    estimator.model_ = model
    history = fitted.get("history")
    estimator.history_ = history if isinstance(history, dict) else {}
    n_train = fitted.get("n_train")
    estimator._n_train = int(n_train) if isinstance(n_train, int) else 1
    # scikeras's bookkeeping of a fitted KerasRegressor (not used by predict)
    random_state = estimator.random_state
    estimator._random_state = random_state if isinstance(random_state, numbers.Integral) else None
    estimator.target_encoder_ = estimator.target_encoder.fit(np.zeros(1, dtype=np.float32))
    estimator.feature_encoder_ = estimator.feature_encoder.fit(np.zeros((1, 2), dtype=np.int32))
    estimator.n_outputs_ = estimator.n_outputs_expected_ = 1
    estimator._initialize_callbacks()
