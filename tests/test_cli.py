"""The skmfnet command, end to end in a temporary folder on small synthetic ratings."""

import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _data import REAL_HOME, REPO_ROOT, needs_real_100k
from skmfnet._persistence import load_estimator
from skmfnet._recommend import recommend
from skmfnet.cli import main
from skmfnet.datasets import make_ratings

MF = ["--n-factors", "3", "--epochs", "2", "--batch-size", "64", "--random-state", "0"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    ratings = make_ratings(30, 20, 300, rating_scale=(1, 5), random_state=0)
    ratings.to_csv(folder / "ratings.csv", index=False)
    pairs = make_ratings(35, 22, 40, random_state=1)[["user_id", "item_id"]]  # some unknown ids
    pairs.to_csv(folder / "pairs.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def mf_model(workdir):
    path = workdir / "mf.skmf"
    assert main(["fit", str(workdir / "ratings.csv"), "--model", str(path), "--quiet", *MF]) == 0
    return path


@pytest.fixture(scope="module")
def bias_model(workdir):
    path = workdir / "bias.skmf"
    assert main(["fit", str(workdir / "ratings.csv"), "-m", str(path), "--estimator", "bias", "-q"]) == 0
    return path


def read_csv(text):
    return pd.read_csv(io.StringIO(text))


def test_fit_writes_a_model_with_the_training_pairs(workdir, mf_model, capsys):
    est = load_estimator(mf_model)
    assert type(est).__name__ == "EmbeddingMFRegressor"
    assert (est.n_factors, est.epochs, est.random_state) == (3, 2, 0)
    ratings = pd.read_csv(workdir / "ratings.csv")
    assert est.seen_.nnz == len(ratings)
    assert est.mu_ == pytest.approx(ratings["rating"].mean())


def test_fit_reports_progress_unless_quiet(workdir, capsys):
    args = ["fit", str(workdir / "ratings.csv"), "--model", str(workdir / "b.skmf"), "--estimator", "bias"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "fitting BiasBaselineRegressor on 300 ratings" in captured.err
    assert main([*args, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_keras_progress_goes_to_stderr(workdir, capsys):
    args = ["fit", str(workdir / "ratings.csv"), "-m", str(workdir / "p.skmf"), "--n-factors", "2", "--epochs", "1"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout stays free for data
    assert "rmse:" in captured.err and "wrote" in captured.err  # one line per epoch


def test_predict_to_stdout(workdir, mf_model, capsys):
    assert main(["predict", str(mf_model), str(workdir / "pairs.csv"), "-q"]) == 0
    out = read_csv(capsys.readouterr().out)
    pairs = pd.read_csv(workdir / "pairs.csv")
    assert list(out.columns) == ["user_id", "item_id", "prediction"]
    pd.testing.assert_frame_equal(out[["user_id", "item_id"]], pairs)
    expected = load_estimator(mf_model).predict(pairs)
    np.testing.assert_array_equal(out["prediction"].to_numpy(), expected)  # CSV floats round-trip


@pytest.mark.parametrize("model", ["mf_model", "bias_model"])
def test_predict_warns_in_its_own_terms_when_no_id_is_known(tmp_path, model, request, capsys):
    pairs = tmp_path / "strangers.csv"
    pd.DataFrame({"user_id": [900, 901], "item_id": [800, 801]}).to_csv(pairs, index=False)
    assert main(["predict", str(request.getfixturevalue(model)), str(pairs)]) == 0
    err = capsys.readouterr().err
    assert "warning: no user and no item of" in err and "UserWarning" not in err


def test_predict_to_file_with_other_column_names(workdir, bias_model, capsys, monkeypatch):
    import skmfnet.cli

    monkeypatch.setattr(skmfnet.cli, "_PREDICT_CHUNK", 7)  # several chunks
    pairs = pd.read_csv(workdir / "pairs.csv").rename(columns={"user_id": "who", "item_id": "what"})
    pairs.to_csv(workdir / "renamed.tsv", sep="\t", index=False)
    out_path = workdir / "predictions.csv"
    args = ["predict", str(bias_model), str(workdir / "renamed.tsv"), "--user-col", "who",
            "--item-col", "what", "-o", str(out_path), "-q"]
    assert main(args) == 0
    assert capsys.readouterr().out == ""
    out = pd.read_csv(out_path)
    assert list(out.columns) == ["who", "what", "prediction"]
    expected = load_estimator(bias_model).predict(pd.read_csv(workdir / "pairs.csv"))
    np.testing.assert_array_equal(out["prediction"].to_numpy(), expected)


def test_recommend_matches_the_api(workdir, mf_model, capsys):
    assert main(["recommend", str(mf_model), "--user", "3", "--user", "7", "-n", "4", "-q"]) == 0
    out = read_csv(capsys.readouterr().out)
    est = load_estimator(mf_model)
    expected = recommend(est, [3, 7], n=4)
    assert list(out.columns) == ["user", "rank", "item", "score"]
    assert out[["user", "rank", "item"]].values.tolist() == expected[["user", "rank", "item"]].values.tolist()
    np.testing.assert_array_equal(out["score"].to_numpy(), expected["score"].to_numpy())
    ratings = pd.read_csv(workdir / "ratings.csv")
    rated = set(map(tuple, ratings[["user_id", "item_id"]].to_numpy().tolist()))
    assert not rated & set(map(tuple, out[["user", "item"]].to_numpy().tolist()))


def test_similar_matches_the_api(mf_model, capsys):
    assert main(["similar", str(mf_model), "--item", "3", "--item", "5", "-n", "4", "-q"]) == 0
    out = read_csv(capsys.readouterr().out)
    expected = load_estimator(mf_model).similar_items([3, 5], n=4)
    assert list(out.columns) == ["item", "rank", "similar_item", "similarity"]
    assert out[["item", "rank", "similar_item"]].values.tolist() == expected[
        ["item", "rank", "similar_item"]].values.tolist()
    np.testing.assert_allclose(out["similarity"], expected["similarity"], rtol=1e-12)
    assert main(["similar", str(mf_model), "--user", "3", "-n", "2", "-q"]) == 0
    assert read_csv(capsys.readouterr().out).columns.tolist() == ["user", "rank", "similar_user", "similarity"]


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--item", "999"], r"--item: items: 1 of the 1 ids given were not seen in fit"),
        (["--item", "abc"], r"--item: 'abc' is not an integer"),
        (["-n", "0", "--item", "3"], r"-n: expected a positive integer"),
        ([], r"one of the arguments --item/-i --user/-u is required"),
    ],
)
def test_similar_refuses_bad_input_in_one_line(mf_model, capsys, argv, match):
    assert main(["similar", str(mf_model), *argv, "-q"]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert err.count("\n") == 1


def test_similar_needs_factors(bias_model, capsys):
    assert main(["similar", str(bias_model), "--item", "3", "-q"]) == 2
    assert "has no factors to compare" in capsys.readouterr().err


def test_recommend_all_users_include_seen_and_unknown_user(workdir, bias_model, capsys):
    assert main(["recommend", str(bias_model), "--all-users", "-n", "2", "--include-seen", "-q"]) == 0
    out = read_csv(capsys.readouterr().out)
    est = load_estimator(bias_model)
    assert out["user"].unique().tolist() == est.user_encoder_.classes_.tolist()
    assert (out.groupby("user").size() == 2).all()
    assert main(["recommend", str(bias_model), "--user", "12345", "-n", "3"]) == 0
    captured = capsys.readouterr()
    assert "user 12345 is not in the training data" in captured.err
    assert len(read_csv(captured.out)) == 3


def _fit_bias_model(tmp_path, ratings):
    """A bias model fitted by the CLI on ``ratings`` (written as r.csv); its path."""
    ratings.to_csv(tmp_path / "r.csv", index=False)
    model = tmp_path / "m.skmf"
    assert main(["fit", str(tmp_path / "r.csv"), "-m", str(model), "--estimator", "bias", "-q"]) == 0
    return model


def test_recommend_with_string_ids(tmp_path, capsys):
    ratings = pd.DataFrame(
        {"user": ["u1", "u1", "u2", "42"], "item": ["a", "b", "a", "c"], "rating": [5, 3, 4, 2]}
    )
    model = _fit_bias_model(tmp_path, ratings)
    assert main(["recommend", str(model), "-u", "u2", "-u", "42", "-n", "5", "-q"]) == 0
    out = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype=str)
    assert out["user"].tolist() == ["u2", "u2", "42", "42"]
    assert set(out.loc[out["user"] == "u2", "item"]) == {"b", "c"}


@pytest.mark.skipif(
    pytest.importorskip("importlib").util.find_spec("pyarrow") is None, reason="pyarrow not installed"
)
def test_parquet_input(workdir, tmp_path, capsys):
    pd.read_csv(workdir / "ratings.csv").to_parquet(tmp_path / "ratings.parquet")
    model = tmp_path / "m.skmf"
    assert main(["fit", str(tmp_path / "ratings.parquet"), "-m", str(model), "--estimator", "bias", "-q"]) == 0
    assert load_estimator(model).n_users_ > 0


def test_fetch(tmp_path, capsys):
    # offline: a data folder without MovieLens and --no-download is a user error
    assert main(["fetch", "100k", "--data-home", str(tmp_path), "--no-download"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("skmfnet: error: MovieLens 100K is not in the data folder")
    assert err.count("\n") == 1


@needs_real_100k
def test_fetch_real_100k_to_csv(tmp_path, capsys):
    out = tmp_path / "ml.csv"
    assert main(["fetch", "100k", "--data-home", str(REAL_HOME), "--no-download", "-o", str(out)]) == 0
    assert "100,000 ratings by 943 users on 1,682 items" in capsys.readouterr().err
    ratings = pd.read_csv(out)
    assert list(ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert len(ratings) == 100_000


# --------------------------------------------------------------- user errors
def _rewrite_model(source, target, change):
    """Copy a model file, applying ``change`` to its JSON metadata."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for name in zin.namelist():
            content = zin.read(name)
            if name.endswith(".json"):
                meta = json.loads(content)
                change(meta)
                content = json.dumps(meta).encode()
            zout.writestr(name, content)


@pytest.fixture(scope="module")
def damaged_models(workdir, bias_model):
    """Model files whose metadata is well-formed JSON with values the loader does not expect."""
    _rewrite_model(bias_model, workdir / "overflow.skmf", lambda m: m["fitted"].update(n_features_in=1e400))
    _rewrite_model(bias_model, workdir / "names.skmf", lambda m: m["fitted"].update(feature_names_in=5))
    return workdir


@pytest.fixture(scope="module")
def bad_files(workdir):
    (workdir / "empty.csv").write_text("")
    (workdir / "text.csv").write_text("user_id,item_id,rating\n1,2,good\n3,4,5\n")
    (workdir / "nan_ids.csv").write_text("user_id,item_id,rating\n1,2,4\n,4,5\n")
    (workdir / "garbage.skmf").write_bytes(b"\x00\x01 not a model")
    (workdir / "binary.csv").write_bytes(b"\xff\xfe\x00\x00\xd8\x00garbage\x00\n\xff")
    return workdir


@pytest.mark.parametrize(
    "args, match",
    [
        (["fit", "{d}/missing.csv", "-m", "{d}/m.skmf"], "file not found: .*missing.csv"),
        (["fit", "{d}", "-m", "{d}/m.skmf"], "is a folder"),
        (["fit", "{d}/empty.csv", "-m", "{d}/m.skmf"], "empty.csv is empty"),
        (["fit", "{d}/ratings.csv", "-m", "{d}/m.skmf", "--rating-col", "stars"], "no column 'stars'"),
        (["fit", "{d}/pairs.csv", "-m", "{d}/m.skmf"], "no rating column .*--rating-col"),
        (["fit", "{d}/text.csv", "-m", "{d}/m.skmf"], "must hold numbers; row 2 .*'good'"),
        (["fit", "{d}/nan_ids.csv", "-m", "{d}/m.skmf", "--estimator", "bias"], "missing or non-finite user ids"),
        (["fit", "{d}/ratings.csv", "-m", "{d}/m.skmf", "--epochs", "two"], "--epochs: expected a positive integer"),
        (["fit", "{d}/ratings.csv", "-m", "{d}/m.skmf", "--n-factors", "0"], "--n-factors: expected a positive"),
        (["fit", "{d}/ratings.csv", "-m", "{d}/m.skmf", "--alpha", "-1"], "--alpha: expected a finite number"),
        (["fit", "{d}/ratings.csv", "-m", "{d}/m.skmf", "--negative-ratio", "-2"],
         "--negative-ratio: expected a finite number"),
        (["fit", "{d}/ratings.csv", "-m", "{d}/m.skmf", "--selection-factors", "-1"],
         "--selection-factors: expected an integer >= 0"),
        (["fit", "{d}/ratings.csv", "-m", "{d}/m.skmf", "--estimator", "bias", "--epochs", "3"],
         "--epochs apply to --estimator mf only"),
        (["fit", "{d}/ratings.csv", "-m", "{d}/no/such/folder/m.skmf", "--estimator", "bias"],
         "cannot write model file .*folder .* does not exist"),
        (["fit", "{d}/ratings.csv"], "required: --model"),
        (["predict", "{d}/missing.skmf", "{d}/pairs.csv"], "model file not found"),
        (["predict", "{d}/garbage.skmf", "{d}/pairs.csv"], "not a valid skmfnet model file"),
        (["predict", "{d}/ratings.csv", "{d}/pairs.csv"], "not a valid skmfnet model file"),
        (["predict", "{d}/bias.skmf", "{d}/missing.csv"], "file not found"),
        (["predict", "{d}/bias.skmf", "{d}/binary.csv"], "cannot read .*binary.csv"),
        (["predict", "{d}/bias.skmf", "{d}/pairs.csv", "--item-col", "movie"], "no column 'movie'"),
        (["recommend", "{d}/bias.skmf", "--user", "abc"], "--user: 'abc' is not an integer, and the model's user ids"),
        (["recommend", "{d}/bias.skmf", "--user", "1", "-n", "ten"], "argument -n: expected a positive integer"),
        (["recommend", "{d}/bias.skmf"], "one of the arguments --user/-u --all-users is required"),
        (["recommend", "{d}/garbage.skmf", "--user", "1"], "not a valid skmfnet model file"),
        (["predict", "{d}/bias.skmf", "{d}/pairs.csv", "-o", "{d}"], "cannot write .*: it is a folder"),
        (["recommend", "{d}/bias.skmf", "-u", "1", "--output", "{d}"], "cannot write .*: it is a folder"),
        (["fit", "{d}/ratings.csv", "-m", "{d}", "--estimator", "bias"], "cannot write model file .*: it is a folder"),
        (["predict", "{d}/overflow.skmf", "{d}/pairs.csv"], "overflow.skmf is not a valid skmfnet model file"),
        (["predict", "{d}/names.skmf", "{d}/pairs.csv"], "names.skmf"),
        (["recommend", "{d}/overflow.skmf", "--all-users"], "overflow.skmf is not a valid skmfnet model file"),
        (["-q", "--verbose", "recommend", "{d}/bias.skmf", "-u", "1"], "--quiet and --verbose"),
        (["fetch", "200k"], "invalid choice: '200k'"),
        (["train", "x"], "invalid choice: 'train'"),
        ([], "required: COMMAND"),
    ],
    ids=lambda v: None if isinstance(v, list) else v[:30],
)
def test_user_errors_exit_2_with_one_line(bad_files, damaged_models, capsys, args, match):
    args = [a.format(d=bad_files) for a in args]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = [line for line in captured.err.splitlines() if "error" in line]
    assert len(errors) == 1 and captured.err.endswith(errors[0] + "\n"), captured.err
    assert errors[0].startswith("skmfnet: error: "), captured.err
    assert re.search(match, errors[0]), captured.err
    assert "Traceback" not in captured.err


def test_model_without_training_pairs(tmp_path, workdir, capsys):
    from skmfnet import BiasBaselineRegressor
    from skmfnet._persistence import save_estimator

    ratings = pd.read_csv(workdir / "ratings.csv")
    est = BiasBaselineRegressor().fit(ratings[["user_id", "item_id"]], ratings["rating"])
    est.seen_ = None
    save_estimator(est, tmp_path / "m.skmf")
    assert main(["recommend", str(tmp_path / "m.skmf"), "--user", "1"]) == 2
    assert "--include-seen" in capsys.readouterr().err
    assert main(["recommend", str(tmp_path / "m.skmf"), "--user", "1", "--include-seen", "-q"]) == 0


def test_help_and_version(capsys):
    assert main(["--help"]) == 0
    assert "fetch" in capsys.readouterr().out
    assert main(["recommend", "--help"]) == 0
    assert "--include-seen" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("skmfnet ")


def test_python_dash_m_in_a_subprocess(workdir, bias_model):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run(
        [sys.executable, "-m", "skmfnet.cli", "recommend", str(bias_model), "--user", "3", "-n", "3"],
        capture_output=True, text=True, env=env, cwd=workdir, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    out = read_csv(run.stdout)
    assert out["user"].tolist() == [3, 3, 3] and out["rank"].tolist() == [1, 2, 3]
    bad = subprocess.run(
        [sys.executable, "-m", "skmfnet.cli", "predict", "missing.skmf", "pairs.csv"],
        capture_output=True, text=True, env=env, cwd=workdir, timeout=300,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "skmfnet: error: model file not found: missing.skmf"


def test_unwritable_output_folder(tmp_path, workdir, bias_model, capsys):
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # root writes into read-only folders
        if not Path("/sys").is_dir():
            pytest.skip("running as root, and no /sys to stand for a folder nobody may write")
        folder = Path("/sys")
    else:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
    out = folder / "predictions.csv"
    assert main(["predict", str(bias_model), str(workdir / "pairs.csv"), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"skmfnet: error: cannot write {re.escape(str(out))}: Permission denied\n", err), err
    assert not out.exists()


# ------------------------------------------------------------ global options
@pytest.mark.parametrize(
    "where", ["before", "after"], ids=["before-the-command", "after-the-command"]
)
def test_quiet_before_or_after_the_command(workdir, capsys, where):
    command = ["fit", str(workdir / "ratings.csv"), "-m", str(workdir / "q.skmf"), "--estimator", "bias"]
    args = ["-q", *command] if where == "before" else [*command, "-q"]
    assert main(args) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "where", ["before", "after"], ids=["before-the-command", "after-the-command"]
)
def test_verbose_before_or_after_the_command(workdir, bias_model, capsys, where):
    command = ["recommend", str(bias_model), "-u", "3", "-n", "2"]
    args = ["--verbose", *command] if where == "before" else [*command, "--verbose"]
    assert main(args) == 0
    assert len(read_csv(capsys.readouterr().out)) == 2


_TF_LOG = re.compile(
    r"^([IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl)|cuInit|tensorflow|absl", re.M
)


def test_no_tensorflow_start_up_logs(workdir):
    """Fit and predict with the network in fresh processes: TensorFlow's logging stays hidden."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    model = workdir / "tf-quiet.skmf"
    fit = subprocess.run(
        [sys.executable, "-m", "skmfnet.cli", "fit", str(workdir / "ratings.csv"), "-m", str(model), *MF],
        capture_output=True, text=True, env=env, cwd=workdir, timeout=300,
    )
    assert fit.returncode == 0, fit.stderr
    assert "fitting EmbeddingMFRegressor" in fit.stderr and "wrote" in fit.stderr  # our own messages
    assert not _TF_LOG.search(fit.stderr), fit.stderr
    predict = subprocess.run(
        [sys.executable, "-m", "skmfnet.cli", "predict", str(model), str(workdir / "pairs.csv")],
        capture_output=True, text=True, env=env, cwd=workdir, timeout=300,
    )
    assert predict.returncode == 0, predict.stderr
    assert predict.stderr == ""
    assert len(read_csv(predict.stdout)) == 40


# ---------------------------------------------------- ids typed as the model's
def test_predict_keeps_string_ids_that_look_like_numbers(tmp_path, capsys):
    ratings = pd.DataFrame(
        {"user_id": ["007", "007", "042", "u9"], "item_id": ["01", "02", "01", "x3"], "rating": [5, 2, 4, 1]}
    )
    model = _fit_bias_model(tmp_path, ratings)
    est = load_estimator(model)
    assert est.user_encoder_.classes_.tolist() == ["007", "042", "u9"]
    assert est.item_encoder_.classes_.tolist() == ["01", "02", "x3"]
    (tmp_path / "pairs.csv").write_text("user_id,item_id\n007,02\n042,x3\n7,1\n")
    assert main(["predict", str(model), str(tmp_path / "pairs.csv"), "-q"]) == 0
    out = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype={"user_id": str, "item_id": str})
    assert out[["user_id", "item_id"]].values.tolist() == [["007", "02"], ["042", "x3"], ["7", "1"]]
    pairs = pd.DataFrame({"user_id": ["007", "042", "7"], "item_id": ["02", "x3", "1"]})
    np.testing.assert_array_equal(out["prediction"].to_numpy(), est.predict(pairs))
    unknown = est.predict(pd.DataFrame({"user_id": ["nobody"], "item_id": ["nothing"]}))[0]
    assert out["prediction"].iloc[0] != unknown  # "007" is the known user, not 7


def test_predict_with_integer_ids_reads_leading_zeros_as_integers(workdir, bias_model, tmp_path, capsys):
    (tmp_path / "pairs.csv").write_text("user_id,item_id\n003,007\n+4,5\n")
    assert main(["predict", str(bias_model), str(tmp_path / "pairs.csv"), "-q"]) == 0
    out = read_csv(capsys.readouterr().out)
    expected = load_estimator(bias_model).predict(pd.DataFrame({"user_id": [3, 4], "item_id": [7, 5]}))
    np.testing.assert_array_equal(out["prediction"].to_numpy(), expected)


@pytest.mark.parametrize(
    "content, match",
    [
        ("user_id,item_id\n3,7\nabc,5\n", r"line 3 of .*odd\.csv, column 'user_id': 'abc' is not an integer, "
         r"and the model's user ids are integers \(1 such value\)"),
        ("user_id,item_id\n3,7\n4,x1\n5,2.5\n", r"line 3 of .*odd\.csv, column 'item_id': 'x1' is not an integer, "
         r"and the model's item ids are integers \(2 such values\)"),
        ("user_id,item_id\n3,7\n,5\n", r"line 3 of .*odd\.csv, column 'user_id': the user id is missing"),
    ],
    ids=["non-numeric-user", "non-integer-items", "empty-user"],
)
def test_predict_with_integer_ids_refuses_other_ids(bias_model, tmp_path, capsys, content, match):
    (tmp_path / "odd.csv").write_text(content)
    assert main(["predict", str(bias_model), str(tmp_path / "odd.csv"), "-q"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.fullmatch(r"skmfnet: error: " + match + r"[^\n]*\n", captured.err), captured.err


def test_fit_for_ranking_from_the_command_line(workdir):
    path = workdir / "ranking.skmf"
    assert main(["fit", str(workdir / "ratings.csv"), "--model", str(path), "--quiet", *MF,
                 "--negative-ratio", "2"]) == 0
    model = load_estimator(path)
    assert model.get_params()["negative_ratio"] == 2.0


def test_fit_with_the_item_item_term_and_averaged_seeds_from_the_command_line(workdir, tmp_path, capsys):
    path = tmp_path / "ii.skmf"
    assert main(["fit", str(workdir / "ratings.csv"), "-m", str(path), "-q", *MF, "--n-estimators", "2",
                 "--item-item-alpha", "auto"]) == 0
    est = load_estimator(path)
    assert est.n_estimators == 2 and est.item_item_alpha_ > 0
    user = est.user_encoder_.classes_[0]
    assert main(["recommend", str(path), "--user", str(user), "-n", "3", "-q"]) == 0
    out = read_csv(capsys.readouterr().out)
    pd.testing.assert_frame_equal(out, est.recommend([user], n=3), check_dtype=False)
    assert main(["fit", str(workdir / "ratings.csv"), "-m", str(path), "--item-item-alpha", "lots"]) == 2
    assert "--item-item-alpha" in capsys.readouterr().err


def test_fit_with_a_selection_term_from_the_command_line(workdir):
    path = workdir / "both.skmf"
    assert main(["fit", str(workdir / "ratings.csv"), "--model", str(path), "--quiet", *MF,
                 "--negative-ratio", "2", "--selection-factors", "3"]) == 0
    model = load_estimator(path)
    assert model.get_params()["selection_factors"] == 3
    assert model.item_selection_.shape == (model.n_items_ + 1, 4)


# ------------------------------------------------------ hardening (issue 36)
def one_error_line(capsys):
    """The single error line of a command that exited with status 2 (asserting it is alone)."""
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err, captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("skmfnet: error: "), captured.err
    return lines[0]


@pytest.fixture(scope="module")
def u_data(workdir):
    """Ratings as MovieLens 100K's u.data holds them: tab-separated, no header, a timestamp column."""
    ratings = make_ratings(30, 20, 300, rating_scale=(1, 5), random_state=0)
    path = workdir / "u.data"
    ratings.assign(timestamp=881250949).to_csv(path, sep="\t", header=False, index=False)
    return path


def test_a_tab_separated_headerless_file_gets_a_hint_naming_the_options(u_data, capsys):
    assert main(["fit", str(u_data), "-m", str(u_data.parent / "u.skmf"), "--estimator", "bias", "-q"]) == 2
    line = one_error_line(capsys)
    assert re.search(r"looks tab-separated.*--sep tab", line), line
    assert re.search(r"no header.*--no-header", line), line


def test_sep_and_no_header_read_movielens_u_data(u_data, capsys):
    model = u_data.parent / "u.skmf"
    args = ["fit", str(u_data), "-m", str(model), "--estimator", "bias", "-q", "--sep", "tab", "--no-header"]
    assert main(args) == 0
    est = load_estimator(model)
    assert est.n_users_ == pd.read_csv(u_data, sep="\t", header=None)[0].nunique()
    pairs = u_data.parent / "u_pairs.data"
    pd.read_csv(u_data, sep="\t", header=None).iloc[:5, :2].to_csv(pairs, sep="\t", header=False, index=False)
    assert main(["predict", str(model), str(pairs), "--sep", "\\t", "--no-header", "-q"]) == 0
    assert len(read_csv(capsys.readouterr().out)) == 5


def test_a_headerless_csv_gets_a_hint(workdir, tmp_path, capsys):
    path = tmp_path / "ratings.csv"
    pd.read_csv(workdir / "ratings.csv").to_csv(path, header=False, index=False)
    assert main(["fit", str(path), "-m", str(tmp_path / "m.skmf"), "--estimator", "bias", "-q"]) == 2
    line = one_error_line(capsys)
    assert "--no-header" in line and "--sep" not in line, line


def test_similar_with_an_unknown_item_speaks_in_cli_terms(mf_model, capsys):
    assert main(["similar", str(mf_model), "--item", "999", "-q"]) == 2
    line = one_error_line(capsys)
    assert "--item" in line and "999" in line and "not seen in fit" in line
    assert "encoder" not in line and "classes_" not in line, line


def test_a_diverging_fit_writes_no_model_and_keeps_the_old_one(workdir, tmp_path, capsys):
    model = tmp_path / "m.skmf"
    assert main(["fit", str(workdir / "ratings.csv"), "-m", str(model), "-q", *MF]) == 0
    before = model.read_bytes()
    assert main(["fit", str(workdir / "ratings.csv"), "-m", str(model), "-q", *MF, "--learning-rate", "1e30"]) == 2
    line = one_error_line(capsys)
    assert re.search(r"not finite|diverge", line) and "--learning-rate" in line, line
    assert model.read_bytes() == before


@pytest.fixture
def no_training(monkeypatch):
    from skmfnet import _baselines, _estimator

    def fail(*args, **kwargs):
        pytest.fail("the command trained before refusing its arguments")

    monkeypatch.setattr(_estimator.EmbeddingMFRegressor, "fit", fail)
    monkeypatch.setattr(_baselines.BiasBaselineRegressor, "fit", fail)


def test_factor_tables_larger_than_memory_are_refused_before_training(workdir, tmp_path, capsys, no_training):
    args = ["fit", str(workdir / "ratings.csv"), "-m", str(tmp_path / "m.skmf"), "-q", "--n-factors", str(10**12)]
    assert main(args) == 2
    line = one_error_line(capsys)
    assert re.search(r"--n-factors 1000000000000: .*30 users and 20 items.*GiB.*memory", line), line
    assert not (tmp_path / "m.skmf").exists()


def test_out_of_memory_during_fit_is_one_line(workdir, tmp_path, capsys, monkeypatch):
    from skmfnet import _baselines

    def exhausted(*args, **kwargs):
        raise MemoryError("Unable to allocate 52.3 GiB for an array")

    monkeypatch.setattr(_baselines.BiasBaselineRegressor, "fit", exhausted)
    assert main(["fit", str(workdir / "ratings.csv"), "-m", str(tmp_path / "m.skmf"), "--estimator", "bias"]) == 2
    captured = capsys.readouterr()
    assert "out of memory" in captured.err.splitlines()[-1] and "Traceback" not in captured.err


def test_model_into_an_unwritable_folder_fails_before_training(tmp_path, workdir, capsys, no_training):
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # root writes into read-only folders
        if not Path("/sys").is_dir():
            pytest.skip("running as root, and no /sys to stand for a folder nobody may write")
        folder = Path("/sys")
    else:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
    model = folder / "m.skmf"
    assert main(["fit", str(workdir / "ratings.csv"), "-m", str(model), "--estimator", "bias", "-q"]) == 2
    line = one_error_line(capsys)
    assert line == f"skmfnet: error: cannot write model file {model}: Permission denied", line


@pytest.mark.parametrize("target", ["fifo", "link-to-device"])
def test_output_never_replaces_a_non_regular_file(workdir, bias_model, tmp_path, capsys, target):
    import stat

    out = tmp_path / "out.csv"
    if target == "fifo":
        os.mkfifo(out)
    else:
        out.symlink_to(os.devnull)
    assert main(["predict", str(bias_model), str(workdir / "pairs.csv"), "-o", str(out), "-q"]) == 2
    line = one_error_line(capsys)
    assert re.search(r"cannot write .*out.csv: it (is|points to) a (FIFO|character device).*not a regular file", line)
    mode = out.lstat().st_mode
    assert stat.S_ISFIFO(mode) if target == "fifo" else out.is_symlink()


def test_input_errors_are_reported_before_tensorflow_is_imported(mf_model, workdir):
    code = (
        "import sys\nfrom skmfnet.cli import main\n"
        f"status = main(['predict', {str(mf_model)!r}, {str(workdir / 'missing.csv')!r}])\n"
        "print(status, 'tensorflow' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert "file not found" in done.stderr


def test_predict_without_header_names_the_line_of_a_bad_id(bias_model, tmp_path, capsys):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("1\t2\nabc\t3\n")
    assert main(["predict", str(bias_model), str(pairs), "--no-header", "-q"]) == 2
    line = one_error_line(capsys)
    assert re.search(r"line 2 of .*pairs.tsv", line), line
