"""Random tensors from one global generator (``torch.manual_seed``, ``torch.randn``).

Values are drawn on the host with a :class:`numpy.random.Generator` and then
copied to the active backend, so a seed gives the same numbers on NumPy and
on CuPy (the same policy as the weight initializers). Pass ``generator=`` to
draw from a Generator of your own instead of the global one.
"""

from __future__ import annotations

import numpy as np

from . import backend
from .tensor import DEFAULT_DTYPE, Tensor, _check_dtype, _shape_of

_global = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator that :func:`randn`, :func:`rand` and :func:`randint` draw from.

    Returns the new generator (``torch.manual_seed`` returns its generator too).
    """
    global _global
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
    _global = np.random.default_rng(int(seed))
    return _global


def default_generator() -> np.random.Generator:
    """The global generator (what ``generator=None`` draws from)."""
    return _global


def _draw(fill, size, dtype, generator, requires_grad: bool, who: str) -> Tensor:
    dtype = _check_dtype(dtype) if dtype is not None else DEFAULT_DTYPE
    gen = _global if generator is None else generator
    if not isinstance(gen, np.random.Generator):
        raise TypeError(f"{who}: generator must be a numpy.random.Generator, got {type(gen).__name__}")
    values = fill(gen, _shape_of(size, who)).astype(dtype, copy=False)
    return Tensor._wrap(backend.asarray(values)).requires_grad_(requires_grad)


def randn(*size, dtype=None, generator=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples: ``randn(64, 100)`` or ``randn((64, 100))``; float32 by default."""
    return _draw(lambda g, s: g.standard_normal(s), size, dtype, generator, requires_grad, "randn")


def rand(*size, dtype=None, generator=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples on [0, 1): ``rand(64, 1)``; float32 by default."""
    return _draw(lambda g, s: g.random(s), size, dtype, generator, requires_grad, "rand")


def randint(low: int, high: int, size, *, generator=None) -> Tensor:
    """Integers uniform on [low, high) of shape ``size`` (int64), as ``torch.randint``."""
    if high <= low:
        raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
    gen = _global if generator is None else generator
    shape = _shape_of((size,) if isinstance(size, (int, np.integer)) else tuple(size), "randint")
    return Tensor._wrap(backend.asarray(gen.integers(low, high, size=shape, dtype=np.int64)))
