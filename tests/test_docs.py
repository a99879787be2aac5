"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index):
    namespace = {"__name__": "readme_example"}
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), namespace)  # noqa: S102


def test_ci_runs_the_readme_test_command_exactly():
    """The README's second set-up command (install and test, the stand-in pass included) is .ci/run's last line."""
    commands = re.findall(r"```bash\n(.*?)\n```", README.read_text(), flags=re.S)
    ci = (README.parent / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert commands[1] == ci
    assert "PYTHONPATH=tests/cupy_standin python -m pytest -m gpu" in ci
