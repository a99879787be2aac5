"""Shared test configuration: hypothesis profiles and the ``backend`` fixture.

Hypothesis profiles, picked with the environment variable ``HYPOTHESIS_PROFILE``:

* ``ci`` (default): 50 examples per property, derandomized, so a run is fast and
  repeatable;
* ``intense``: 500 random examples per property, for nightly or pre-release runs
  (``HYPOTHESIS_PROFILE=intense python -m pytest tests/test_ops.py``).

The ``backend`` fixture runs a test on NumPy always and on CuPy only when
``scratchgan.cupy_available()`` (it is skipped otherwise), and restores the
NumPy backend afterwards.

The ``gpu`` marker: a test that runs on the cupy backend. Its ``cupy`` param
of the ``backend`` fixture, and a test skipped with ``not cupy_available()``
for a reason naming CuPy or a GPU, get it automatically. The CI's second
pass runs only these, on the CuPy stand-in::

    PYTHONPATH=tests/cupy_standin python -m pytest -m gpu
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import scratchgan as sg

# The backend fixture is function-scoped on purpose (one backend for all the
# examples of a test), which is what this health check warns about.
_SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

settings.register_profile("ci", max_examples=50, deadline=None, derandomize=True, suppress_health_check=_SUPPRESS)
settings.register_profile("intense", max_examples=500, deadline=None, suppress_health_check=_SUPPRESS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: runs on the cupy backend (a GPU, or the CuPy stand-in in CI)")


def _needs_cupy(item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("backend") == "cupy":
        return True
    for mark in item.iter_markers("skipif"):
        reason = mark.kwargs.get("reason", "")
        condition = mark.args[0] if mark.args else None
        if ("cupy" in reason.lower() or "gpu" in reason.lower()) and condition is (not sg.cupy_available()):
            return True
    return False


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _needs_cupy(item):
            item.add_marker(pytest.mark.gpu)


@pytest.fixture(params=["numpy", "cupy"])
def backend(request):
    """The name of the active backend for this test; restores NumPy afterwards."""
    name = request.param
    if name == "cupy" and not sg.cupy_available():
        pytest.skip("CuPy with a visible GPU is not available")
    sg.set_backend(name)
    try:
        yield name
    finally:
        sg.set_backend("numpy")


@pytest.fixture
def cupy():
    """The cupy module (CuPy, or its stand-in in CI) with the cupy backend active; NumPy restored afterwards."""
    if not sg.cupy_available():
        pytest.skip("needs CuPy and a GPU (or the CuPy stand-in)")
    sg.set_backend("cupy")
    try:
        yield sg.backend._import_cupy()
    finally:
        sg.set_backend("numpy")


@pytest.fixture
def accelerations_on():
    """The test runs with scratchgan's accelerations on, also under ``SCRATCHGAN_REFERENCE=1``: for the tests
    of the accelerations themselves (that they run, that they use the array cache), which switch reference mode
    on where they need it."""
    import scratchgan as sg

    with sg.reference_mode(False):
        yield
