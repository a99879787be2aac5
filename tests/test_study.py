"""docs/study.md runs as written: its Python blocks in one session, its shell blocks with this
installation's `scratchgan`, in order, in an empty folder. ```text blocks are output and are not run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

STUDY = Path(__file__).resolve().parents[1] / "docs" / "study.md"
BLOCKS = [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w+)\n(.*?)```", STUDY.read_text(), flags=re.S)]


def test_every_block_is_python_shell_or_output():
    kinds = [kind for kind, _ in BLOCKS]
    assert set(kinds) <= {"python", "bash", "text"}
    assert kinds.count("python") >= 10 and kinds.count("bash") >= 2


@pytest.fixture
def quiet_warnings():
    import warnings  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # viz.render's note when Graphviz is missing is part of the tour
        yield


def test_the_tour_runs_as_written(tmp_path, monkeypatch, quiet_warnings, capsys):
    monkeypatch.chdir(tmp_path)
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    namespace = {"__name__": "study"}
    for index, (kind, code) in enumerate(BLOCKS):
        where = f"docs/study.md block {index} ({kind})"
        if kind == "python":
            exec(compile(code, where, "exec"), namespace)  # noqa: S102
        elif kind == "bash":
            done = subprocess.run(["bash", "-e", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  check=False)
            assert done.returncode == 0, f"{where} failed:\n{done.stdout}\n{done.stderr}"
    out = capsys.readouterr().out
    # what the tour tells the reader to look at is there
    assert [g.create_graph for g in namespace["cap"].graphs] == [True, False]
    assert namespace["report"].saturates
    assert "gradient mismatch" in out and "True True" in out
    assert (tmp_path / "d-step.svg").exists() or (tmp_path / "d-step.dot").exists()
    assert (tmp_path / "r1.svg").exists() or (tmp_path / "r1.dot").exists()
