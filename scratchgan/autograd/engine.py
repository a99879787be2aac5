"""The reverse-mode engine: grad modes, graph recording and the backward walk.

How the graph is recorded
-------------------------
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
differentiated again: that is double backprop. A few hot rules (matmul,
linear, relu, ...) take a shortcut on the raw arrays when nothing is
recorded; the op table (``tests/op_specs.py``) checks every op's first-order
gradient against its recorded (``create_graph=True``) gradient, so the two
paths cannot drift apart.

How backward walks it
---------------------
:func:`_topological_order` visits the graph iteratively (no recursion limit)
and lists nodes parents-first. The engine walks that list backwards, so every
node has received all its gradient contributions (which add up) before its
rule runs. Broadcasting is undone centrally in :func:`_unbroadcast`: a rule
may return a gradient of the broadcast shape and never deals with it.

Watching it
-----------
The study tools hook in here, at no cost when they are off: ``make_result``
reads one switch, ``_mode.watch``, as it read ``_mode.anomaly`` before. While
a gradient's graph is recorded (``create_graph=True``) its nodes get their
parents as a :class:`GradGraphParents` tuple, the mark :mod:`scratchgan.study.viz`
draws; while an observer is set (:mod:`scratchgan.study.profiler`,
``scratchgan.study.viz.capture``) it is told of every op, of each backward pass
and of each rule it runs.
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


# --------------------------------------------------------------------------- backward engine


def _freed_backward(g, out, needs):  # pragma: no cover - never called, only compared
    raise AssertionError


def _topological_order(roots) -> list[Tensor]:
    """Every node reachable from ``roots`` that requires grad, parents first.

    Iterative post-order depth-first search (each node is pushed once), so a
    graph of any depth is fine.
    """
    order: list[Tensor] = []
    visited: set[int] = set()
    for root in roots:
        if not root.requires_grad or id(root) in visited:
            continue
        visited.add(id(root))
        stack = [(root, iter(root._parents))]
        while stack:
            node, parents = stack[-1]
            for parent in parents:
                if parent.requires_grad and id(parent) not in visited:
                    visited.add(id(parent))
                    if not parent._parents:  # a leaf has nothing below it: placed at once
                        order.append(parent)
                        continue
                    stack.append((parent, iter(parent._parents)))
                    break
            else:  # every parent is placed: the node follows them
                stack.pop()
                order.append(node)
    return order


def _unbroadcast(g: Tensor, shape: tuple) -> Tensor:
    """Sum a gradient of a broadcast shape back to the input's ``shape``."""
    g_shape = g.data.shape
    extra = len(g_shape) - len(shape)
    axes = list(range(extra))  # leading axes that broadcasting added
    for i, size in enumerate(shape):
        if extra < 0 or size != 1 and size != g_shape[extra + i]:  # not a broadcast of ``shape``: a wrong rule
            raise RuntimeError(f"internal error: gradient of shape {g_shape} for an input of shape {shape}")
        if size != g_shape[extra + i]:  # a size-1 axis that broadcasting stretched
            axes.append(extra + i)
    if axes:
        g = g.sum(axis=tuple(axes))  # the ops' sum and reshape, through the Tensor's methods (a layer above)
    if g.shape != shape:
        g = g.reshape(shape)
    return g


def _root_gradient(root: Tensor, grad) -> Tensor:
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs; this output has shape {root.shape}: "
                "pass grad= (the upstream gradient, same shape) or reduce it first (e.g. .sum())"
            )
        return Tensor._wrap(backend.array_module(root.data).ones_like(root.data))
    if not isinstance(grad, Tensor):
        grad = as_operand(grad, root, "backward")
    if grad.shape != root.shape:
        raise ValueError(f"backward: grad has shape {grad.shape} but the output has shape {root.shape}")
    if grad.dtype != root.dtype:
        raise TypeError(f"backward: grad has dtype {grad.dtype} but the output has dtype {root.dtype}")
    backend.check_same_backend(root.data, grad.data, "backward")
    return grad


def run_backward(roots, grads, inputs=None, retain_graph=False, create_graph=False, allow_unused=False):
    """The engine behind :meth:`Tensor.backward` and :func:`grad`.

    With ``inputs=None`` gradients accumulate into ``.grad`` of every leaf;
    otherwise the gradients of ``inputs`` are returned (``.grad`` untouched)
    and only the part of the graph between roots and inputs is walked.
    """
    for r in roots:
        if not r.requires_grad:
            raise RuntimeError(
                "element does not require grad and has no grad_fn: nothing in its graph requires a gradient "
                "(was it computed under no_grad(), or from detached tensors?)"
            )
    order = _topological_order(roots)
    needed = None
    if inputs is not None:
        input_ids = {id(t) for t in inputs}
        needed = set()
        for node in order:
            if id(node) in input_ids:
                needed.add(id(node))
                continue
            for p in node._parents:
                if id(p) in needed:
                    needed.add(id(node))
                    break

    pending: dict[int, Tensor] = {}
    for r, g in zip(roots, grads):
        g = _root_gradient(r, g)
        # a copy, so that no leaf gradient ever aliases the caller's array
        g = Tensor._wrap(g.data.copy()) if not create_graph else g
        pending[id(r)] = g if id(r) not in pending else pending[id(r)] + g

    results: dict[int, Tensor] = {}
    handed: set[int] = set()  # arrays already given to a leaf: never give one twice
    observer = _mode.observer
    if observer is not None:  # before anything is freed: viz.capture draws the graph here
        observer.backward_begin(roots, create_graph)
    saved_mode, saved_grad_graph = _mode.grad_enabled, _mode.grad_graph
    anomaly = _mode.anomaly
    _mode.grad_enabled = _mode.grad_graph = create_graph
    _mode.anomaly = False  # a rule's inner ops are checked below, under the name of the op being differentiated
    try:
        for node in reversed(order):
            g = pending.pop(id(node), None)
            if g is None or (needed is not None and id(node) not in needed):
                continue
            rule = node._backward
            is_input = needed is not None and id(node) in input_ids
            if rule is None or is_input:
                if not create_graph and (g.data.base is not None or id(g.data) in handed):
                    g = Tensor._wrap(g.data.copy())
                handed.add(id(g.data))
                if needed is None:
                    node.grad = g if node.grad is None else _accumulate(node.grad, g)
                else:
                    results[id(node)] = g
                if rule is None:
                    continue
            if rule is _freed_backward:
                raise RuntimeError(
                    f"trying to backward through the graph a second time (op '{op_name(node._ctx)}'): its saved values "
                    "were freed after the first backward; pass retain_graph=True to the first backward()/grad() call"
                )
            parents = node._parents
            if needed is None:
                needs = tuple([p.requires_grad for p in parents])
            else:
                needs = tuple([p.requires_grad and id(p) in needed for p in parents])
            # the rule, or the first-order backward that scratchgan.accel registered for it (rule.fast)
            run = rule if create_graph or _mode.reference else getattr(rule, "fast", rule)
            if observer is None:
                parent_grads = run(g, node, needs)
            else:  # the profiler times the rule
                parent_grads = observer.run_rule(run, g, node, needs, create_graph)
            for parent, pg, need in zip(parents, parent_grads, needs):
                if not need or pg is None:
                    continue
                if pg.data.shape != parent.data.shape:
                    pg = _unbroadcast(pg, parent.data.shape)
                if anomaly:
                    _check_finite(pg.data, f"op '{op_name(rule)}' (backward)")
                previous = pending.get(id(parent))
                if previous is None:
                    pending[id(parent)] = pg
                elif create_graph:
                    pending[id(parent)] = previous + pg  # recorded: the sum is part of the gradient's graph
                else:  # nothing to record: a new array (never in place, ``previous`` may be another's gradient)
                    pending[id(parent)] = wrap_array(previous.data + pg.data)
            if not retain_graph:
                node._ctx = rule  # kept only to name the op if someone backwards through it again
                node._parents = ()
                node._backward = _freed_backward
    finally:
        _mode.grad_enabled, _mode.grad_graph = saved_mode, saved_grad_graph
        _mode.anomaly = anomaly
        if observer is not None:
            observer.backward_end()

    if inputs is None:
        return None
    out = []
    for i, t in enumerate(inputs):
        g = results.get(id(t))
        if g is None and not allow_unused:
            raise RuntimeError(
                f"input {i} (shape {t.shape}) is not used in the graph of the outputs; "
                "pass allow_unused=True to get None for it"
            )
        out.append(g)
    return tuple(out)


def _accumulate(existing: Tensor, g: Tensor) -> Tensor:
    """Sum into an existing ``.grad`` without touching either array in place."""
    return existing + g


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned (not accumulated).

    ``torch.autograd.grad``'s signature and argument order.

    Parameters
    ----------
    outputs : Tensor or sequence of Tensor
    inputs : Tensor or sequence of Tensor
    grad_outputs : Tensor or sequence, optional
        Upstream gradients, one per output; None means 1 for one-element outputs.
    retain_graph : bool, optional
        Keep the graph for another backward; defaults to ``create_graph``.
    create_graph : bool
        Record the backward pass so the returned gradients can be
        differentiated again (needed for gradient penalties).
    allow_unused : bool
        Return None for inputs that the outputs do not depend on instead of
        raising.

    Returns
    -------
    tuple of Tensor
        One gradient per input, each of that input's shape.
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor) or not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(f"grad: input {i} does not require grad; create it with requires_grad=True")
    if retain_graph is None:
        retain_graph = create_graph
    return run_backward(outputs, grad_outputs, inputs=inputs, retain_graph=retain_graph,
                        create_graph=create_graph, allow_unused=allow_unused)


