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


def _reading_path_rows():
    rows = re.findall(r"^\|[^|]*\| `scratchgan/([^`]+)` \| ([\d, -]+) \| ([^|]+) \| (\d+) \|$", STUDY.read_text(),
                      flags=re.M)
    return [(path, [tuple(int(v) for v in part.split("-")) for part in ranges.split(", ")], what, int(count))
            for path, ranges, what, count in rows]


def test_the_reading_path_names_real_definitions_and_counts_their_lines():
    """Each range of docs/study.md's reading path starts where a definition starts and ends where one ends,
    every name in backticks it gives is defined in its ranges, and its lines of code are counted right."""
    import ast

    from test_code_size import PACKAGE, code_lines_by_line

    rows = _reading_path_rows()
    assert len(rows) >= 12
    total = 0
    for path, ranges, what, stated in rows:
        source = (PACKAGE / path).read_text(encoding="utf-8")
        starts, ends, names = set(), set(), {}
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                start = min([d.lineno for d in node.decorator_list] + [node.lineno])
                starts.add(start)
                ends.add(node.end_lineno)
                names.setdefault(node.name, []).append(start)
        for a, b in ranges:
            assert a in starts and b in ends, f"{path} {a}-{b} does not begin and end with definitions"
        for name in re.findall(r"`(?:\w+\.)?(\w+)`", what):
            if name in names:  # a function or class named in the row lies in one of its ranges
                assert any(a <= line <= b for line in names[name] for a, b in ranges), f"{path}: {name}"
        code = code_lines_by_line(source)
        counted = sum(1 for line in code if any(a <= line <= b for a, b in ranges))
        assert counted == stated, f"{path}: {stated} lines of code stated, {counted} counted"
        total += counted
    said = re.search(r"(\d+) lines of code in all", STUDY.read_text())
    assert said and int(said.group(1)) == total
    assert total <= 1000
