"""Grad modes and graph recording: how an op's result remembers where it came from.

An op computes its output array, then calls :func:`make_result`. If gradients
are enabled and any input requires a gradient, the output keeps

* ``_parents``: the input tensors, in order;
* ``_backward``: a plain module-level function ``rule(g, out, needs)`` that
  returns one gradient (a Tensor or None) per parent;
* ``_ctx``: whatever non-tensor data the rule needs (an axis, a shape, a mask),
  or None.

The rule receives the output itself, so it can reuse ``out`` (``exp``,
``tanh``) without a closure and without a reference cycle.

Rules are written with the engine's own differentiable ops. Run with gradients
disabled they are ordinary arithmetic; run with gradients enabled
(``create_graph=True``) they record a graph of the gradient, which can be
differentiated again: that is double backprop. The walk that runs the rules
is :mod:`scratchgan.autograd.walk`.

Watching it
-----------
The study tools hook in here, at no cost when they are off: ``make_result``
reads one switch, ``_mode.watch``. While a gradient's graph is recorded
(``create_graph=True``) its nodes get their parents as a
:class:`GradGraphParents` tuple, the mark :mod:`scratchgan.study.viz` draws;
while an observer is set (:mod:`scratchgan.study.profiler`,
``scratchgan.study.viz.capture``) it is told of every op.
"""

from __future__ import annotations

import functools

import numpy as np

from .. import backend
from .tensor import Tensor

class _Mode:
    """Global switches: is the graph recorded, is anomaly detection on, who watches the ops.

    ``watch`` is true while any of the last three is on: it is the one switch
    :func:`make_result` reads, so ops pay nothing for the study tools
    (``grad_graph``, ``observer``) when those are off.
    """

    grad_enabled = True
    reference = False  # only the op definitions run (scratchgan.autograd.fastpath)
    anomaly = False
    grad_graph = False  # run_backward is recording a gradient's graph (create_graph=True)
    observer = None  # scratchgan.study.profiler's or scratchgan.study.viz's hooks while one is on
    watch = False

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        object.__setattr__(self, "watch", bool(self.anomaly or self.grad_graph or self.observer is not None))


_mode = _Mode()


class GradGraphParents(tuple):
    """The ``_parents`` of a node recorded while a gradient's graph is built (``create_graph=True``).

    A tuple like any other; its type is the mark by which :mod:`scratchgan.study.viz`
    draws the double-backprop part of a graph apart and :mod:`scratchgan.study.profiler`
    names the backward of such a node. It lives exactly as long as the node's links.
    """

    __slots__ = ()


# --------------------------------------------------------------------------- grad mode


class _ModeSwitch:
    """Set one switch of ``_mode`` inside a ``with`` block (or a decorated function).

    Nested blocks restore the value that was in force before each of them.
    """

    def __init__(self, attribute: str, value: bool):
        self._attribute = attribute
        self._value = value
        self._saved: list[bool] = []

    def __enter__(self):
        self._saved.append(getattr(_mode, self._attribute))
        setattr(_mode, self._attribute, self._value)
        return self

    def __exit__(self, *exc):
        setattr(_mode, self._attribute, self._saved.pop())
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _ModeSwitch(self._attribute, self._value):
                return fn(*args, **kwargs)

        return wrapper


def no_grad() -> _ModeSwitch:
    """Disable graph recording (context manager, or decorator: ``@no_grad()``).

    Ops run inside record nothing, so they are cheaper and their results have
    ``requires_grad=False``.
    """
    return _ModeSwitch("grad_enabled", False)


def enable_grad() -> _ModeSwitch:
    """Enable graph recording (context manager or decorator)."""
    return _ModeSwitch("grad_enabled", True)


def set_grad_enabled(mode: bool) -> _ModeSwitch:
    """Context manager that enables or disables recording."""
    return _ModeSwitch("grad_enabled", bool(mode))


def is_grad_enabled() -> bool:
    """Return True when ops record a graph."""
    return _mode.grad_enabled


def detect_anomaly(enabled: bool = True) -> _ModeSwitch:
    """Raise at the first op whose forward or backward makes a NaN or Inf.

    Use as a context manager (or decorator). Each op's output and each
    gradient a rule returns is checked, so it is slow; the error names the op.
    """
    return _ModeSwitch("anomaly", bool(enabled))


def op_name(rule) -> str:
    """Name of the op a backward rule belongs to (``mul_backward`` -> ``mul``)."""
    return rule.__name__.removesuffix("_backward")


def _check_finite(array, where: str) -> None:
    if array.dtype.kind == "f" and not backend.host_scalar(backend.array_module(array).isfinite(array).all(),
                                                           "detect_anomaly's finiteness check"):
        raise FloatingPointError(f"anomaly detected: {where} produced NaN or Inf")



# --------------------------------------------------------------------------- op plumbing


def wrap_array(data) -> Tensor:
    """Wrap an array computed outside the graph (a rule's first-order fast path) as a Tensor.

    NumPy returns a scalar, not a 0-d array, for arithmetic on 0-d arrays;
    a Tensor always holds an array.
    """
    if data.__class__ is not np.ndarray and isinstance(data, np.generic):
        data = np.asarray(data)
    return Tensor._wrap(data)


def make_result(data, parents: tuple, rule, ctx=None) -> Tensor:
    """Wrap an op's output and record it in the graph when that is needed.

    Parameters
    ----------
    data : array
        The op's output.
    parents : tuple of Tensor
        The op's tensor inputs.
    rule : callable
        ``rule(g, out, needs) -> tuple`` of one gradient (or None) per parent.
    ctx : object, optional
        Non-tensor data for the rule.
    """
    if data.__class__ is not np.ndarray and isinstance(data, np.generic):
        data = np.asarray(data)  # NumPy turns 0-d results into scalars
    out = object.__new__(Tensor)
    out.data = data
    out.grad = None
    out._ctx = ctx
    record = False
    if _mode.grad_enabled:
        for p in parents:
            if p.requires_grad:
                record = True
                break
    out.requires_grad = record
    if record:
        out._parents = parents
        out._backward = rule
    else:
        out._parents = ()
        out._backward = None
    if _mode.watch:
        _watch(out, parents, rule)
    return out


def _watch(out: Tensor, parents: tuple, rule) -> None:
    """The slow path of :func:`make_result`, taken only while anomaly mode, create_graph or an observer is on."""
    if _mode.grad_graph and out.requires_grad:
        out._parents = GradGraphParents(parents)
    if _mode.anomaly:
        _check_finite(out.data, f"op '{op_name(rule)}' (forward)")
    if _mode.observer is not None:
        _mode.observer.on_op(out, parents, rule)


def as_operand(value, like: Tensor, op: str) -> Tensor:
    """Turn a Python number or raw array into a constant Tensor matching ``like``.

    Python numbers take ``like``'s dtype. Raw arrays are constants: boolean
    ones keep their dtype, others are cast to ``like``'s floating dtype unless
    that would lose precision (a float64 array with a float32 tensor).
    """
    ref = like.data
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        # a NumPy scalar (np.float32(0.5), an element of a host array) counts as the Python number it holds:
        # CuPy would copy it to the device (xp.asarray), which a captured CUDA graph cannot do
        value = value.item()
    if isinstance(value, (bool, int, float)):
        dtype = ref.dtype if ref.dtype.kind == "f" else None
        xp = backend.array_module(ref)
        if xp is not np:
            # a fill kernel, not a host-to-device copy: safe inside a captured CUDA graph
            return Tensor._wrap(xp.full((), value, dtype=dtype if dtype is not None else np.asarray(value).dtype))
        return Tensor._wrap(xp.asarray(value, dtype=dtype))
    xp = backend.array_module(ref)
    array = value if hasattr(value, "dtype") else np.asarray(value)
    if isinstance(array, np.ndarray) and xp is not np and array.ndim > 0:
        raise TypeError(f"{op}: cannot mix a numpy array with a cupy tensor; wrap it with Tensor(...) first")
    array = xp.asarray(array)
    if array.dtype.kind == "b" or ref.dtype.kind != "f":
        return Tensor._wrap(array)
    if array.dtype.kind == "f" and array.dtype.itemsize > ref.dtype.itemsize:
        raise TypeError(
            f"{op}: a {array.dtype} array with a {ref.dtype} tensor would lose precision; "
            f"cast one of them (e.g. Tensor(array, dtype='{ref.dtype}'))"
        )
    return Tensor._wrap(array.astype(ref.dtype, copy=False))


def binary_operands(a, b, op: str) -> tuple[Tensor, Tensor]:
    """Check and convert the two inputs of a binary op."""
    if not isinstance(a, Tensor):
        if not isinstance(b, Tensor):
            raise TypeError(f"{op}: expected at least one Tensor, got {type(a).__name__} and {type(b).__name__}")
        a = as_operand(a, b, op)
    elif not isinstance(b, Tensor):
        b = as_operand(b, a, op)
    ad, bd = a.data, b.data
    if ad.__class__ is not bd.__class__:
        backend.check_same_backend(ad, bd, op)
    if ad.dtype is not bd.dtype and ad.dtype != bd.dtype:
        ka, kb = ad.dtype.kind, bd.dtype.kind
        if ka == "f" and kb == "f":
            raise TypeError(
                f"{op}: cannot mix {ad.dtype} and {bd.dtype} tensors; convert one with "
                ".float() or .double() so that no precision is lost silently"
            )
        if ka == "f" and kb in "iu":
            b = Tensor._wrap(bd.astype(ad.dtype))
        elif kb == "f" and ka in "iu":
            a = Tensor._wrap(ad.astype(bd.dtype))
    return a, b
