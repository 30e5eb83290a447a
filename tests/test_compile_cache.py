"""The compiled epochs kept on disk (skmfnet._compile_cache): later processes load them, damage costs a recompile.

Each test runs fits in fresh Python processes: TensorFlow reads its XLA
flags once per process, when it first compiles.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from skmfnet import _compile_cache

FIT = textwrap.dedent("""
    import json, warnings
    warnings.simplefilter("always")
    from skmfnet import EmbeddingMFRegressor, _compile_cache
    from skmfnet.datasets import make_ratings
    X, y = make_ratings(n_users=30, n_items=20, n_ratings=400, return_X_y=True, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        model = EmbeddingMFRegressor(n_factors=4, epochs=2, batch_size=64, random_state=0, n_jobs=1).fit(X, y)
    print(json.dumps({"predictions": model.predict(X[:20]).tolist(),
                      "directory": str(_compile_cache.enabled_directory()),
                      "warnings": [str(w.message) for w in caught]}))
""")


def _fit_in_new_process(**environment):
    env = {key: value for key, value in os.environ.items()
           if key not in ("SKMFNET_CACHE_DIR", "TF_XLA_FLAGS", "XDG_CACHE_HOME", "SKMFNET_XLA_CACHE_SET")}
    env.update(environment)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    done = subprocess.run([sys.executable, "-c", FIT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _entries(folder):
    return sorted(path for path in folder.rglob("xla_compile_cache*") if path.is_file())


def test_a_later_process_loads_the_epoch_an_earlier_one_compiled(tmp_path):
    first = _fit_in_new_process(SKMFNET_CACHE_DIR=str(tmp_path))
    entries = _entries(tmp_path)
    assert entries, "the first process kept no compiled epoch"
    assert all(entry.parent.name.startswith("xla-tf") for entry in entries)
    stamps = {entry: (entry.stat().st_ino, entry.stat().st_mtime_ns) for entry in entries}

    second = _fit_in_new_process(SKMFNET_CACHE_DIR=str(tmp_path))
    # the entry was loaded, not compiled and written again (TensorFlow writes
    # a new file and renames it over the old one after every compilation)
    assert _entries(tmp_path) == entries
    assert {entry: (entry.stat().st_ino, entry.stat().st_mtime_ns) for entry in entries} == stamps
    np.testing.assert_array_equal(second["predictions"], first["predictions"])
    assert second["warnings"] == []


@pytest.mark.parametrize("damage", [b"", b"\x00garbage" * 50], ids=["emptied", "overwritten"])
def test_a_damaged_entry_is_cleared_and_the_epoch_compiled_again(tmp_path, damage):
    first = _fit_in_new_process(SKMFNET_CACHE_DIR=str(tmp_path))
    entries = _entries(tmp_path)
    for entry in entries:
        entry.write_bytes(damage)

    second = _fit_in_new_process(SKMFNET_CACHE_DIR=str(tmp_path))
    np.testing.assert_array_equal(second["predictions"], first["predictions"])
    assert any("compile cache" in message and "cleared" in message for message in second["warnings"])
    # compiled again (by a newly traced function, whose entry has another
    # name) and kept: the damaged entries are gone, whole ones written
    assert _entries(tmp_path) and all(entry.stat().st_size > 1000 for entry in _entries(tmp_path))
    third = _fit_in_new_process(SKMFNET_CACHE_DIR=str(tmp_path))
    np.testing.assert_array_equal(third["predictions"], first["predictions"])
    assert third["warnings"] == []


def test_an_empty_cache_dir_turns_the_cache_off(tmp_path):
    result = _fit_in_new_process(SKMFNET_CACHE_DIR="", XDG_CACHE_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path))
    assert result["directory"] == "None"
    assert _entries(tmp_path) == []


def test_the_default_folder_is_under_xdg_cache_home(tmp_path):
    _fit_in_new_process(XDG_CACHE_HOME=str(tmp_path))
    entries = _entries(tmp_path)
    assert entries and all(entry.parent.parent == tmp_path / "skmfnet" for entry in entries)


def test_a_cache_folder_named_in_tf_xla_flags_is_left_alone(tmp_path):
    mine, ours = tmp_path / "mine", tmp_path / "ours"
    result = _fit_in_new_process(SKMFNET_CACHE_DIR=str(ours),
                                 TF_XLA_FLAGS=f"--tf_xla_persistent_cache_directory={mine}")
    assert result["directory"] == "None"
    assert _entries(mine) and not ours.exists()


def test_an_unusable_cache_folder_leaves_the_cache_off(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = _fit_in_new_process(SKMFNET_CACHE_DIR=str(blocker / "cache"))
    assert result["directory"] == "None"
    assert result["warnings"] == []


@pytest.mark.parametrize(
    "environment, expected",
    [({"SKMFNET_CACHE_DIR": "/somewhere/cache"}, "/somewhere/cache"),
     ({"XDG_CACHE_HOME": "/xdg"}, "/xdg/skmfnet"),
     ({"HOME": "/home/someone"}, "/home/someone/.cache/skmfnet")],
    ids=["SKMFNET_CACHE_DIR", "XDG_CACHE_HOME", "home"],
)
def test_cache_directory_follows_the_environment(monkeypatch, environment, expected):
    for key in ("SKMFNET_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(key, raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    directory = _compile_cache.cache_directory()
    assert str(directory.parent) == expected
    assert directory.name.startswith("xla-tf")


def test_cache_directory_is_none_when_turned_off(monkeypatch):
    monkeypatch.setenv("SKMFNET_CACHE_DIR", " ")
    assert _compile_cache.cache_directory() is None


def test_clear_deletes_tensorflows_entries_only(tmp_path):
    (tmp_path / "xla_compile_cache__1__2__XLA_CPU_JIT.pb").write_bytes(b"x")
    (tmp_path / "xla_compile_cache__1__2__XLA_CPU_JIT.pb.tmp123").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("kept")
    assert _compile_cache.clear(tmp_path) == 2
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_a_child_process_manages_the_cache_it_inherits(tmp_path):
    """TF_XLA_FLAGS as skmfnet set it in a parent (joblib workers inherit it): a damaged entry is still recovered."""
    _fit_in_new_process(SKMFNET_CACHE_DIR=str(tmp_path))
    (entry,) = _entries(tmp_path)
    entry.write_bytes(b"")
    result = _fit_in_new_process(SKMFNET_CACHE_DIR=str(tmp_path), SKMFNET_XLA_CACHE_SET=str(entry.parent),
                                 TF_XLA_FLAGS=f"--tf_xla_persistent_cache_directory={entry.parent}")
    assert result["directory"] == str(entry.parent)
    assert any("cleared" in message for message in result["warnings"])


@pytest.mark.parametrize("child", ["elsewhere", ""], ids=["another folder", "off"])
def test_a_child_process_chooses_its_own_cache(tmp_path, child):
    """A child inherits skmfnet's flag from its parent, but its own SKMFNET_CACHE_DIR decides."""
    parent = tmp_path / "parent" / "xla-tf-x"
    result = _fit_in_new_process(SKMFNET_CACHE_DIR=str(tmp_path / child) if child else "",
                                 SKMFNET_XLA_CACHE_SET=str(parent),
                                 TF_XLA_FLAGS=f"--tf_xla_persistent_cache_directory={parent}")
    assert not parent.exists()
    if child:
        assert result["directory"].startswith(str(tmp_path / child)) and _entries(tmp_path / child)
    else:
        assert result["directory"] == "None" and _entries(tmp_path) == []


def test_no_home_folder_means_no_cache(monkeypatch):
    """Some containers have no home folder: importing skmfnet must not fail over a cache."""
    for key in ("SKMFNET_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(key, raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(_compile_cache.Path, "home", staticmethod(no_home))
    assert _compile_cache.cache_directory() is None


def test_a_folder_with_too_little_room_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setattr(_compile_cache, "MIN_FREE_BYTES", 1 << 62)
    usable, why = _compile_cache._usable(tmp_path / "cache")
    assert not usable and "bytes free" in why


def test_a_folder_whose_path_holds_whitespace_is_not_used(tmp_path):
    """TF_XLA_FLAGS splits on whitespace: such a path cannot be passed to TensorFlow."""
    usable, why = _compile_cache._usable(tmp_path / "my cache")
    assert not usable and "whitespace" in why
    assert not (tmp_path / "my cache").exists()
