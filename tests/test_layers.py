"""The package's layers: a module imports only from its own layer and the ones below.

The layers, lowest first, are the table in scratchgan/__init__.py's docstring
(and the README's). Every import statement counts, a function's deferred
import too: deferring an import hides a dependency, it does not remove it.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "scratchgan"

#: top-level entry of the package -> its layer (0 is the lowest)
LAYERS = {
    "backend": 0, "_version": 0,
    "autograd": 1,
    "ops": 2,
    "accel": 3,
    "nn": 4,
    "optim": 5,
    "gan": 6,
    "study": 7,
    "testing": 7,
    "app": 8,
    # the package's front door sees everything
    "__init__": 9, "__main__": 9, "_old_paths": 9,
}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """``(line, absolute module)`` for every scratchgan import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    this = module_name(path, root)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "scratchgan"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "scratchgan":
                continue
            if target == "scratchgan":  # from scratchgan import nn, __version__: a module, or the package's own name
                found += [(node.lineno, f"scratchgan.{a.name}" if is_entry(a.name, root) else "scratchgan")
                          for a in node.names]
            else:
                found.append((node.lineno, target))
    return found


def is_entry(name: str, root: Path = PACKAGE) -> bool:
    return (root / f"{name}.py").exists() or (root / name / "__init__.py").exists()


def layer_of(module: str) -> tuple[str, int]:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top not in LAYERS:
        raise AssertionError(f"{module}: not in a layer folder; add its folder to LAYERS (and to the README's table)")
    return top, LAYERS[top]


def violations(root: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name.startswith("test_"):
            continue
        here = module_name(path, root)
        here_top, here_layer = layer_of(here)
        for line, target in imported_modules(path, root):
            if target == "scratchgan":  # import scratchgan: the whole package
                target_top, target_layer = "__init__", LAYERS["__init__"]
            else:
                target_top, target_layer = layer_of(target)
            if target_layer > here_layer:
                found.append(f"{path.relative_to(root.parent)}:{line}: {here_top} (layer {here_layer}) imports "
                             f"{target} ({target_top}, layer {target_layer})")
    return found


def test_every_top_level_entry_is_in_a_layer():
    entries = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())}
    assert entries <= set(LAYERS), sorted(entries - set(LAYERS))


def test_no_layer_imports_a_higher_one():
    assert violations() == []


def test_the_check_sees_an_upward_import(tmp_path):
    """A copy of the package with one upward import planted in the autograd layer fails the check."""
    import shutil

    copy = tmp_path / "scratchgan"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    walk = copy / "autograd" / "engine.py"
    walk.write_text(walk.read_text(encoding="utf-8") + "\n\ndef _late():\n    from ..nn import Linear\n",
                    encoding="utf-8")
    found = violations(copy)
    assert len(found) == 1 and "autograd (layer 1) imports scratchgan.nn (nn, layer 4)" in found[0], found


@pytest.mark.parametrize("module", sorted({module_name(p) for p in PACKAGE.rglob("*.py")
                                           if not p.name.startswith(("test_", "__main__"))}))
def test_each_module_imports_on_its_own(module):
    """Each module imports in a fresh interpreter (no import order hides a cycle)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                          cwd=PACKAGE.parent, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_old_import_paths_give_the_modules_at_their_new_paths():
    """``import scratchgan.train`` (a path from before the layer folders) is scratchgan.app.train itself,
    and importing an old path changes none of the package's names (``sg.tensor``, ``sg.gradcheck`` stay the
    functions they are)."""
    import importlib

    import scratchgan as sg
    from scratchgan._old_paths import OLD_PATHS

    names = dict(vars(sg))
    for old, new in OLD_PATHS.items():
        assert importlib.import_module(old) is importlib.import_module(new), old
    changed = [name for name, value in names.items() if vars(sg).get(name) is not value]
    assert changed == []
    from scratchgan.engine import grad
    from scratchgan.autograd.engine import grad as new_grad

    assert grad is new_grad


def test_conventions_lists_every_moved_module():
    from scratchgan._old_paths import NOT_KEPT, OLD_PATHS

    text = (PACKAGE.parent / "docs" / "conventions.md").read_text(encoding="utf-8")
    missing = [old for old, new in OLD_PATHS.items() if old.count(".") == 1 and f"| `{old}` | `{new}` |" not in text]
    missing += [old for old, new in NOT_KEPT.items() if f"| `{old}` | `{new}`: **the old path does not resolve**" not in text]
    assert missing == []


def test_the_readme_table_gives_each_folder_its_layer():
    import re

    text = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    table = {folder: int(layer) for layer, folders in re.findall(r"^\| (\d) \| ([^|]+) \|", text, flags=re.M)
             for folder in re.findall(r"`([a-z_]+)/`", folders)}
    folders = {name: layer for name, layer in LAYERS.items() if (PACKAGE / name).is_dir()}
    assert table == folders
