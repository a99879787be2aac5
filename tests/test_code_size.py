"""Every function and class in the package is short enough to read in one sitting.

Issue 24's bound: no function over 60 lines of code and no class over 300,
counting code only (docstrings, comments and blank lines not counted).
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "scratchgan"
MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 300
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING,
         tokenize.ENDMARKER}


def _docstring_lines(tree) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def code_lines_by_line(source: str) -> set[int]:
    """The line numbers that hold code: a token other than a comment, a newline or a docstring."""
    docstrings = _docstring_lines(ast.parse(source))
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in _SKIP:
            lines.update(line for line in range(token.start[0], token.end[0] + 1) if line not in docstrings)
    return lines


def oversized(root: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        code = code_lines_by_line(source)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
                n = sum(1 for line in code if node.lineno <= line <= node.end_lineno)
                if n > limit:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name}: {n} lines of code "
                                 f"(limit {limit})")
    return found


def test_no_function_or_class_is_too_long():
    assert oversized() == []


def test_the_count_sees_a_long_function(tmp_path):
    """The def line and 59 statements are 60 lines of code (allowed); one statement more is too long.
    Comments, blank lines and the docstring do not count."""
    package = tmp_path / "scratchgan"
    package.mkdir()

    def write(statements: int) -> list[str]:
        body = "\n\n".join(f"    x{i} = {i}  # a comment" for i in range(statements))
        (package / "f.py").write_text(f'def f():\n    """Doc\n\n    string."""\n    # only a comment\n{body}\n',
                                      encoding="utf-8")
        return oversized(package)

    assert write(59) == []
    found = write(60)
    assert len(found) == 1 and "f: 61 lines of code (limit 60)" in found[0], found
