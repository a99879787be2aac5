"""Shared test configuration: hypothesis profiles and the ``backend`` fixture.

Hypothesis profiles, picked with the environment variable ``HYPOTHESIS_PROFILE``:

* ``ci`` (default): 50 examples per property, derandomized, so a run is fast and
  repeatable;
* ``intense``: 500 random examples per property, for nightly or pre-release runs
  (``HYPOTHESIS_PROFILE=intense python -m pytest tests/test_ops.py``).

The ``backend`` fixture runs a test on NumPy always and on CuPy only when
``scratchgan.cupy_available()`` (it is skipped otherwise), and restores the
NumPy backend afterwards.
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
