"""Argument validators shared by every public function (one policy each).

Each validator checks one argument and returns it in the form the caller
uses (a Python ``int``/``float``, a ``numpy.dtype``, a Generator), or raises
with a message that starts with the caller's name (``who``) and names the
argument, so a user sees e.g. ``Linear: in_features must be a positive int,
got 0``.

The ``rng`` policy
------------------
Every function or layer that draws random numbers takes ``rng`` (or
``generator``) and reads it with :func:`as_generator`:

* a :class:`numpy.random.Generator` is used as it is (and advanced in place);
* an ``int`` seed (not a bool) gives ``np.random.default_rng(seed)``, a fresh
  generator: the same seed gives the same numbers;
* ``None`` means scratchgan's global generator,
  :func:`default_generator`, which
  :func:`scratchgan.manual_seed` reseeds: as with ``torch.manual_seed(0)``,
  seeding once and then building layers is reproducible;
* anything else (a ``RandomState``, a float, a string, ...) is a TypeError.

The global generator is looked up at call time (``manual_seed`` replaces the
object), so code that keeps a generator across calls should keep ``None``
and resolve it each time (as :class:`scratchgan.nn.Dropout` does).

Errors
------
Integer validators raise ValueError for anything that is not an integer in
range (also for a float or a bool), as the library always has; :func:`number`
raises TypeError for a non-number and ValueError for one out of range;
:func:`float_dtype` and :func:`as_generator` raise TypeError.
"""

from __future__ import annotations

import math

import numpy as np


class ConfigError(ValueError):
    """A configuration value is invalid (a training option, a model's architecture name, ...)."""


#: scratchgan's global generator: what ``rng=None`` means; :func:`scratchgan.manual_seed` replaces it
_global = np.random.default_rng()


def default_generator() -> np.random.Generator:
    """The global generator (what ``generator=None`` and ``rng=None`` draw from).

    :func:`scratchgan.manual_seed` replaces it, so look it up at each use rather than keeping it.
    """
    return _global


def set_default_generator(generator: np.random.Generator) -> np.random.Generator:
    """Make ``generator`` the global one (:func:`scratchgan.manual_seed` calls this) and return it."""
    global _global
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"set_default_generator: expected a numpy.random.Generator, got {type(generator).__name__}")
    _global = generator
    return generator

__all__ = ["as_generator", "boolean", "count", "float_dtype", "number", "positive_int"]


def _prefix(who: str | None) -> str:
    return f"{who}: " if who else ""


def as_generator(rng, who: str | None = None, *, name: str = "rng") -> np.random.Generator:
    """The Generator an ``rng`` argument stands for (see the module docstring for the policy).

    Parameters
    ----------
    rng : numpy.random.Generator, int or None
        A Generator (returned as it is), a non-negative int seed (a new
        ``np.random.default_rng(seed)``) or None (the global generator that
        :func:`scratchgan.manual_seed` reseeds, looked up now).
    who : str, optional
        The caller's name, for the error message.
    name : str
        The argument's name, for the error message (``"rng"``, ``"generator"``).

    Raises
    ------
    TypeError
        For any other type (a bool, a float, a legacy ``RandomState``, ...).
    ValueError
        For a negative seed.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return _global
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"{_prefix(who)}{name} seed must be a non-negative int, got {rng!r}")
        return np.random.default_rng(int(rng))
    raise TypeError(f"{_prefix(who)}{name} must be a numpy.random.Generator, an int seed or None (the global "
                    f"generator that scratchgan.manual_seed reseeds), got {type(rng).__name__}")


def _integer(value):
    """``value`` as a Python int if it is an int, a NumPy integer or a 0-d integer array (never a bool); else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iu":
        return int(value)
    return None


def positive_int(value, name: str, who: str | None = None) -> int:
    """``value`` (an int >= 1, or a NumPy integer) as a Python int; ValueError otherwise."""
    n = _integer(value)
    if n is None or n < 1:
        raise ValueError(f"{_prefix(who)}{name} must be a positive int, got {value!r}")
    return n


def count(value, name: str, who: str | None = None, minimum: int = 0) -> int:
    """``value`` (an int >= ``minimum``, a NumPy integer or a 0-d integer array) as a Python int.

    Raises ValueError otherwise (also for a float or a bool).
    """
    n = _integer(value)
    if n is None or n < minimum:
        what = "a non-negative int" if minimum == 0 else f"an int >= {minimum}"
        raise ValueError(f"{_prefix(who)}{name} must be {what}, got {value!r}")
    return n


def number(value, name: str, who: str | None = None, low: float | None = 0.0, high: float | None = None,
           *, low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number in ``[low, high]`` as a Python float.

    Parameters
    ----------
    value : int, float, NumPy scalar or 0-d array
    name, who : str
        For the error message.
    low, high : float or None
        Bounds (None: unbounded on that side); inclusive unless ``low_open``
        / ``high_open``.

    Raises
    ------
    TypeError
        For a non-number (a string, a bool, an array with more than one element, ...).
    ValueError
        For NaN, an infinity or a value out of range.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{_prefix(who)}{name} must be a real number, got {value!r}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or too_low or too_high:
        bounds = []
        if low is not None:
            bounds.append(f"> {low}" if low_open else f">= {low}")
        if high is not None:
            bounds.append(f"< {high}" if high_open else f"<= {high}")
        rule = " and ".join(bounds) if bounds else "finite"
        raise ValueError(f"{_prefix(who)}invalid {name} {value!r}; it must be {rule}")
    return value


def boolean(value, name: str, who: str | None = None) -> bool:
    """``value`` (a bool or NumPy bool) as a Python bool; TypeError otherwise (0 and 1 are not bools)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{_prefix(who)}{name} must be a bool, got {value!r}")
    return bool(value)


def float_dtype(dtype, who: str | None = None) -> np.dtype:
    """``dtype`` (a name, a NumPy type or dtype) as ``np.dtype(float32)`` or ``np.dtype(float64)``.

    None means the library's default, float32 (as ``dtype=None`` means PyTorch's
    default dtype). Raises TypeError for any other dtype (float16 included) or
    something that is no dtype.
    """
    if dtype is None:
        return np.dtype(np.float32)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{_prefix(who)}dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{_prefix(who)}parameters must be float32 or float64, got dtype {dt}")
    return dt
