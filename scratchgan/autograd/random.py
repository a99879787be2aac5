"""Random tensors from one global generator (``torch.manual_seed``, ``torch.randn``).

Values are drawn on the host with a :class:`numpy.random.Generator` and then
copied to the active backend, so a seed gives the same numbers on NumPy and
on CuPy (the same policy as the weight initializers). Pass ``generator=`` (a
Generator or an int seed, :func:`scratchgan.backend.validate.as_generator`) to draw
from a generator of your own instead of the global one.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from .tensor import DEFAULT_DTYPE, Tensor, _check_dtype, _shape_of
from ..backend.validate import as_generator, count, default_generator, set_default_generator

__all__ = ["default_generator", "manual_seed", "rand", "randint", "randn"]


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator: what :func:`randn`, :func:`rand`, :func:`randint` and every ``rng=None``
    argument (layers, initializers, data sampling, gradient penalties) draw from.

    ``manual_seed(0)`` and then building layers gives the same weights every
    time, as ``torch.manual_seed(0)`` does. Returns the new generator
    (``torch.manual_seed`` returns its generator too).
    """
    return set_default_generator(np.random.default_rng(count(seed, "seed", "manual_seed")))


def _draw(fill, size, dtype, generator, requires_grad: bool, who: str) -> Tensor:
    dtype = _check_dtype(dtype) if dtype is not None else DEFAULT_DTYPE
    gen = as_generator(generator, who, name="generator")
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
    gen = as_generator(generator, "randint", name="generator")
    shape = _shape_of((size,) if isinstance(size, (int, np.integer)) else tuple(size), "randint")
    return Tensor._wrap(backend.asarray(gen.integers(low, high, size=shape, dtype=np.int64)))
