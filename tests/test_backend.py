"""Backend selection: set_backend/get_backend, errors, the environment variable, host copies."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import scratchgan as sg


def test_default_and_set_backend():
    assert sg.get_backend() == "numpy"
    sg.set_backend("numpy")
    assert sg.get_backend() == "numpy"
    assert sg.Tensor([1.0]).backend == "numpy"


def test_unknown_backend():
    with pytest.raises(ValueError, match=r"unknown backend 'torch'; choose one of \('numpy', 'cupy'\)"):
        sg.set_backend("torch")
    assert sg.get_backend() == "numpy"


@pytest.mark.skipif(sg.cupy_available(), reason="CuPy is available here")
def test_cupy_missing_says_how_to_install():
    with pytest.raises(RuntimeError, match=r"backend 'cupy'.*pip install scratchgan\[cuda12\]"):
        sg.set_backend("cupy")
    assert sg.get_backend() == "numpy"


@pytest.mark.skipif(not sg.cupy_available(), reason="needs CuPy and a GPU")
def test_cupy_round_trip():
    try:
        sg.set_backend("cupy")
        x = sg.Tensor([1.0, 2.0], dtype="float64", requires_grad=True)
        assert x.backend == "cupy"
        (x * x).sum().backward()
        assert isinstance(x.grad.numpy(), np.ndarray)
        assert x.to_backend("numpy").backend == "numpy"
    finally:
        sg.set_backend("numpy")


def _python(code: str, backend: str):
    env = {**os.environ, "SCRATCHGAN_BACKEND": backend}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


def test_environment_variable_read_at_import():
    result = _python("import scratchgan as sg; print(sg.get_backend(), sg.Tensor([1.0]).backend)", " NumPy ")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["numpy", "numpy"]


def test_environment_variable_bad_name():
    result = _python("import scratchgan", "tensorflow")
    assert result.returncode != 0
    assert "ValueError: unknown backend 'tensorflow'" in result.stderr


def test_numpy_returns_a_host_array(backend):
    x = sg.Tensor([[1.0, 2.0]], dtype="float64")
    host = x.numpy()
    assert type(host) is np.ndarray and host.dtype == np.float64
    np.testing.assert_array_equal(host, [[1.0, 2.0]])
    assert type((x.sum()).numpy()) is np.ndarray  # 0-d results too
    assert x.backend == backend


def test_no_other_module_imports_cupy():
    root = os.path.join(os.path.dirname(__file__), "..", "scratchgan")
    offenders = []
    backend_module = os.path.normpath(os.path.join(root, "backend", "__init__.py"))
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.normpath(os.path.join(folder, name))
            if name.endswith(".py") and path != backend_module:
                with open(path, encoding="utf-8") as f:
                    if any(line.lstrip().startswith(("import cupy", "from cupy")) for line in f):
                        offenders.append(os.path.relpath(path, root))
    assert offenders == []


@pytest.mark.skipif(not sg.cupy_available(), reason="needs CuPy and a GPU")
def test_array_module_knows_cupy_arrays_before_set_backend(monkeypatch):
    """A CuPy array made by the user before scratchgan imported CuPy is still a CuPy array (fault 7 of issue 23)."""
    import cupy

    from scratchgan import backend

    monkeypatch.setattr(backend, "_cupy", None)  # as in a fresh process that never called set_backend("cupy")
    x = cupy.zeros(3)
    assert backend.array_module(x) is cupy
    assert backend.backend_of(x) == "cupy"
    with pytest.raises(TypeError, match="expected a numpy or cupy array, got list"):
        backend.array_module([1.0])
