"""``cupy.random``: cuRAND underneath, so refused while a stream captures.

cupy_backends/cuda/libs/curand.pyx (v13.6) sets the stream on each call
with the same check as cuBLAS ("calling cuRAND API during stream capture is
currently unsupported"). Values come from a NumPy generator seeded by
:func:`seed`; they are not CuPy's streams (XORWOW / Philox), only numbers of
the right distribution, shape and dtype.
"""

from __future__ import annotations

import numpy as np

from . import _array, _device

_gen = [np.random.default_rng()]


def _refuse():
    if _device.capturing_state() is not None:
        raise NotImplementedError("calling cuRAND API during stream capture is currently unsupported")


def _draw(fill, size, dtype=None):
    _refuse()
    values = np.asarray(fill(_gen[0]))
    if dtype is not None:
        values = values.astype(dtype)
    _device.count("launches")
    return _array.wrap(_device.track(np.ascontiguousarray(values)))


def seed(seed=None):
    _gen[0] = np.random.default_rng(seed)


def standard_normal(size=None, dtype=float):
    return _draw(lambda g: g.standard_normal(size), size, dtype)


def normal(loc=0.0, scale=1.0, size=None, dtype=float):
    return _draw(lambda g: g.normal(loc, scale, size), size, dtype)


def random(size=None, dtype=float):
    return _draw(lambda g: g.random(size), size, dtype)


random_sample = rand_ = random


def rand(*size, dtype=float):
    return _draw(lambda g: g.random(size), size, dtype)


def randn(*size, dtype=float):
    return _draw(lambda g: g.standard_normal(size), size, dtype)


def uniform(low=0.0, high=1.0, size=None, dtype=float):
    return _draw(lambda g: g.uniform(low, high, size), size, dtype)


def randint(low, high=None, size=None, dtype=int):
    return _draw(lambda g: g.integers(low, high, size), size, dtype)


def permutation(n):
    return _draw(lambda g: g.permutation(n), None)


class RandomState:
    def __init__(self, seed=None):
        self._g = np.random.default_rng(seed)

    def _draw(self, fill, dtype=None):
        _refuse()
        values = np.asarray(fill(self._g))
        if dtype is not None:
            values = values.astype(dtype)
        _device.count("launches")
        return _array.wrap(_device.track(np.ascontiguousarray(values)))

    def standard_normal(self, size=None, dtype=float):
        return self._draw(lambda g: g.standard_normal(size), dtype)

    def normal(self, loc=0.0, scale=1.0, size=None, dtype=float):
        return self._draw(lambda g: g.normal(loc, scale, size), dtype)

    def random_sample(self, size=None, dtype=float):
        return self._draw(lambda g: g.random(size), dtype)

    def uniform(self, low=0.0, high=1.0, size=None, dtype=float):
        return self._draw(lambda g: g.uniform(low, high, size), dtype)

    def randint(self, low, high=None, size=None, dtype=int):
        return self._draw(lambda g: g.integers(low, high, size), dtype)


class Generator(RandomState):
    def random(self, size=None, dtype=float):
        return self.random_sample(size, dtype)

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        return self._draw(lambda g: g.integers(low, high, size, endpoint=endpoint), dtype)


def default_rng(seed=None):
    return Generator(seed)


def get_random_state():
    return RandomState()
