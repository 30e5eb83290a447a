"""The README's example runs as written (on the MovieLens 100K files the dataset tests use)."""

import re
from pathlib import Path

from _data import REAL_HOME, needs_real_100k


@needs_real_100k
def test_readme_example_runs(monkeypatch, capsys):
    monkeypatch.setenv("SKMFNET_DATA", str(REAL_HOME))
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    code = re.search(r"## Example\n\n```python\n(.*?)```", readme, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    best, score = capsys.readouterr().out.rsplit("}", 1)
    assert "n_factors" in best
    assert -1.0 < float(score) < -0.85  # -RMSE on u1.test
