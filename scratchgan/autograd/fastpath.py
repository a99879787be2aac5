"""Where an op's definition meets its acceleration, and the switch that turns every acceleration off.

An op in :mod:`scratchgan.ops` is written once, as its math: a forward on
arrays and a backward rule built from differentiable ops (the *definition*).
A faster way to compute the same thing lives in :mod:`scratchgan.accel` and
is registered here against the definition it replaces:

* **forward**: ``register_forward(definition, fast, op=...)``. The op calls
  ``fast_or(definition)(...)``, which is ``fast`` unless reference mode is on.
  ``fast`` takes the definition's arguments and returns the same array (the
  same values; bit for bit where it does the same arithmetic); it may call
  the definition itself for the cases it does not speed up.
* **first-order backward**: ``register_backward(rule, fast, op=...)`` sets
  ``rule.fast`` (PyTorch calls such a backward *once differentiable*). The
  backward walk calls ``rule.fast`` instead of ``rule`` when it records no
  graph of the gradient (``create_graph=False``): ``fast`` may then work on
  raw arrays, since nobody will differentiate what it does. With
  ``create_graph=True`` the rule itself runs, so double backprop always
  goes through the definition.

**Reference mode** runs the whole library on the definitions alone:
``SCRATCHGAN_REFERENCE=1`` in the environment (read at import) or, for a
block, ``with scratchgan.reference_mode():``. The op table
(``tests/op_specs.py``) runs every op in both modes and compares them, and
:data:`REGISTRY` lists what is registered, so that the tests can check that
every acceleration is exercised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .engine import _mode, _ModeSwitch

__all__ = ["REGISTRY", "Acceleration", "fast_or", "reference_mode", "register_backward", "register_forward"]

#: The environment variable that turns reference mode on for the whole process ("1"), read at import.
ENV_VAR = "SCRATCHGAN_REFERENCE"


@dataclass(frozen=True)
class Acceleration:
    """One registration: ``fast`` computes what ``definition`` defines, for the op named ``op``."""

    op: str
    kind: str  # "forward" or "backward"
    definition: object
    fast: object
    where: str  # the module that registered it


#: Every registered acceleration, in registration order.
REGISTRY: list[Acceleration] = []

_forward: dict = {}  # definition -> fast


def _reference_from_environment() -> bool:
    setting = os.environ.get(ENV_VAR, "").strip()
    if setting not in ("", "0", "1"):
        raise ValueError(f"{ENV_VAR} must be 1 (definitions only) or 0 / unset (accelerations on), not {setting!r}")
    return setting == "1"


_mode.reference = _reference_from_environment()


def reference_mode(enabled: bool = True) -> _ModeSwitch:
    """Run on the op definitions alone, every acceleration off (context manager or decorator)."""
    return _ModeSwitch("reference", bool(enabled))


def is_reference_mode() -> bool:
    """True while only the definitions run."""
    return _mode.reference


def fast_or(definition):
    """The acceleration registered for ``definition``, or ``definition`` itself (none, or reference mode)."""
    if _mode.reference:
        return definition
    return _forward.get(definition, definition)


def _check(definition, fast, op: str) -> None:
    if not callable(definition) or not callable(fast):
        raise TypeError(f"register {op!r}: the definition and its acceleration must be callables")
    if fast is definition:
        raise ValueError(f"register {op!r}: an acceleration must be a different function from its definition")


def register_forward(definition, fast, *, op: str) -> None:
    """Compute ``definition``'s arrays with ``fast`` outside reference mode (one acceleration per definition)."""
    _check(definition, fast, op)
    if definition in _forward:
        raise ValueError(f"register {op!r}: {definition.__qualname__} already has an acceleration "
                         f"({_forward[definition].__qualname__})")
    _forward[definition] = fast
    REGISTRY.append(Acceleration(op, "forward", definition, fast, fast.__module__))


def register_backward(rule, fast, *, op: str) -> None:
    """Set ``rule.fast``: the walk's first-order (``create_graph=False``) backward for ``rule``."""
    _check(rule, fast, op)
    if getattr(rule, "fast", None) is not None:
        raise ValueError(f"register {op!r}: {rule.__qualname__} already has a first-order backward "
                         f"({rule.fast.__qualname__})")
    rule.fast = fast
    REGISTRY.append(Acceleration(op, "backward", rule, fast, fast.__module__))
