"""Quiet by default: a new process that imports skmfnet, fits, saves and loads writes nothing on stderr."""

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _env(**changes):
    """This process's environment with the checkout first on the path (and ``changes``; None removes)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env

SCRIPT = """
import sys
from skmfnet import EmbeddingMFRegressor, load_estimator
from skmfnet.datasets import make_ratings

frame = make_ratings(50, 40, 600, random_state=0)
X, y = frame[["user_id", "item_id"]], frame["rating"]
if sys.argv[1] == "fit":
    EmbeddingMFRegressor(epochs=2, random_state=0).fit(X, y).save(sys.argv[2])
else:
    print(load_estimator(sys.argv[2]).predict(X.iloc[:3]).shape)
"""


def _run(env, *args):
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_importing_fitting_and_loading_print_nothing_on_stderr(tmp_path):
    """TensorFlow's start-up lines (some written before its logging starts) are hidden unless asked for."""
    env = _env(TF_CPP_MIN_LOG_LEVEL=None)
    model = str(tmp_path / "m.skmf")
    fit = _run(env, "fit", model)
    assert fit.returncode == 0, fit.stderr
    assert fit.stderr == ""
    load = _run(env, "load", model)  # a new process: loading imports TensorFlow there
    assert load.returncode == 0, load.stderr
    assert load.stdout.strip() == "(3,)"
    assert load.stderr == ""


def test_the_training_plan_and_model_files_import_no_tensorflow():
    """plan() and reading a model file's fields need no engine: skmfnet._training imports its engines lazily."""
    code = ("import sys; import skmfnet._training, skmfnet._training._dispatch, skmfnet._persistence; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    env = _env()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_every_training_module_imports_alone():
    """No import circle: each module of skmfnet._training imports first in a new interpreter."""
    modules = ["_auto", "_dispatch", "_rules", "_schedule", "_keras_fit", "_cluster", "_parameter_server"]
    code = "import importlib, sys; importlib.import_module('skmfnet._training.' + sys.argv[1])"
    env = _env()
    for module in modules:
        done = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True, env=env,
                              timeout=300)
        assert done.returncode == 0, (module, done.stderr[-2000:])
