"""Tensor, graph recording and the reverse-mode engine.

How the graph is recorded
-------------------------
An op computes its output array, then calls :func:`make_result`. If gradients
are enabled and any input requires a gradient, the output keeps

* ``_parents``: the input tensors, in order;
* ``_backward``: a plain module-level function ``rule(g, out, needs)`` that
  returns one gradient (a Tensor or None) per parent;
* ``_ctx``: whatever non-tensor data the rule needs (an axis, a shape).

The rule receives the output itself, so it can reuse ``out`` (``exp``,
``tanh``) without a closure and without a reference cycle.

Rules are written with the engine's own differentiable ops. Run with gradients
disabled they are ordinary arithmetic; run with gradients enabled
(``create_graph=True``) they record a graph of the gradient, which can be
differentiated again: that is double backprop, with one definition per rule.

How backward walks it
---------------------
:func:`_topological_order` visits the graph iteratively (no recursion limit)
and lists nodes parents-first. The engine walks that list backwards, so every
node has received all its gradient contributions (which add up) before its
rule runs. Broadcasting is undone centrally in :func:`_unbroadcast`: a rule
may return a gradient of the broadcast shape and never deals with it.
"""

from __future__ import annotations

import functools

import numpy as np

from . import backend

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
DEFAULT_DTYPE = np.dtype(np.float32)


class _Mode:
    """Global switches: is the graph recorded, is anomaly detection on."""

    grad_enabled = True
    anomaly = False


_mode = _Mode()


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
    if array.dtype.kind == "f" and not bool(backend.array_module(array).isfinite(array).all()):
        raise FloatingPointError(f"anomaly detected: {where} produced NaN or Inf")


# --------------------------------------------------------------------------- Tensor


class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    Parameters
    ----------
    data : array_like or Tensor
        Copied onto the active backend. Floating data becomes float32 unless
        ``dtype`` says otherwise; integer and boolean data keep their kind
        (labels, indices).
    requires_grad : bool
        Record ops on this tensor so that gradients reach it.
    dtype : str or numpy dtype, optional
        ``"float32"`` (the default for floating data) or ``"float64"``; an
        integer or bool dtype for data that carries no gradient.

    Attributes
    ----------
    data : numpy.ndarray or cupy.ndarray
        The values.
    grad : Tensor or None
        Gradient accumulated by :meth:`backward`.
    requires_grad : bool
        Whether gradients flow to this tensor.
    """

    __slots__ = ("data", "grad", "requires_grad", "_parents", "_backward", "_ctx", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operators

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype.kind not in "fiub":
                raise TypeError(f"unsupported dtype {dtype}; use float32, float64, an integer or bool dtype")
            if dtype.kind == "f" and dtype not in _FLOAT_DTYPES:
                raise TypeError(f"unsupported float dtype {dtype}; use float32 or float64")
        array = backend.asarray(data)
        kind = array.dtype.kind
        if kind not in "fiub":
            raise TypeError(f"cannot make a Tensor from data of dtype {array.dtype}")
        if dtype is None:
            dtype = DEFAULT_DTYPE if kind == "f" else array.dtype
        self.data = array.astype(dtype, copy=True)  # never alias the caller's array
        if requires_grad and dtype.kind != "f":
            raise TypeError(
                f"only floating tensors can require gradients, got dtype {dtype}; "
                "pass dtype='float32' or 'float64'"
            )
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._parents = ()
        self._backward = None
        self._ctx = None

    @classmethod
    def _wrap(cls, array) -> Tensor:
        """Wrap a backend array without copying or checks (internal)."""
        t = object.__new__(cls)
        t.data = array
        t.grad = None
        t.requires_grad = False
        t._parents = ()
        t._backward = None
        t._ctx = None
        return t

    # ---- properties
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def backend(self) -> str:
        """``"numpy"`` or ``"cupy"``: where this tensor's data lives."""
        return backend.backend_of(self.data)

    @property
    def is_leaf(self) -> bool:
        """True for tensors not made by a recorded op."""
        return self._backward is None

    @property
    def grad_fn(self) -> str | None:
        """Name of the op that made this tensor, or None for a leaf."""
        return None if self._backward is None else op_name(self._backward)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __repr__(self) -> str:
        extra = f", grad_fn={self.grad_fn}" if self.grad_fn else (", requires_grad=True" if self.requires_grad else "")
        return f"Tensor({backend.to_numpy(self.data)!r}{extra})"

    __hash__ = object.__hash__  # == is elementwise, identity stays hashable

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError("the truth value of a tensor with more than one element is ambiguous; use .any()/.all()")
        return bool(self.data)

    # ---- conversion
    def numpy(self) -> np.ndarray:
        """Return the values as a host NumPy array (a copy when on the GPU)."""
        return backend.to_numpy(self.data)

    def item(self):
        """Return the value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self) -> Tensor:
        """A tensor sharing this one's data, cut from the graph."""
        return Tensor._wrap(self.data)

    def to_backend(self, name: str) -> Tensor:
        """A copy of this tensor (a new leaf) on backend ``name``."""
        data = backend.to_backend(self.data, name)
        if data is self.data:  # already there: still a copy, as promised
            data = data.copy()
        return Tensor._wrap(data).requires_grad_(self.requires_grad)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place (leaf tensors only); returns self."""
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require gradients, got dtype {self.dtype}")
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("requires_grad can only be turned off on leaf tensors; use .detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self) -> None:
        self.grad = None

    # ---- autograd
    def backward(self, grad=None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires it.

        Parameters
        ----------
        grad : Tensor or array_like, optional
            The upstream gradient, of this tensor's shape. Only a tensor with
            one element may omit it (it is then 1).
        retain_graph : bool
            Keep the graph so that backward can run through it again.
        create_graph : bool
            Record the backward pass itself so that the gradients can be
            differentiated again (double backprop).
        """
        run_backward([self], [grad], inputs=None, retain_graph=retain_graph or create_graph, create_graph=create_graph)


    # ---- operators (NumPy-style broadcasting); the ops live in scratchgan.ops
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __neg__(self):
        return _ops.neg(self)

    def __pow__(self, other):
        return _ops.pow(self, other)

    def __rpow__(self, other):
        return _ops.pow(other, self)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __getitem__(self, index):
        return _ops.getitem(self, index)

    def __lt__(self, other):
        return _ops.lt(self, other)

    def __le__(self, other):
        return _ops.le(self, other)

    def __gt__(self, other):
        return _ops.gt(self, other)

    def __ge__(self, other):
        return _ops.ge(self, other)

    def __eq__(self, other):
        return _ops.eq(self, other)

    def __ne__(self, other):
        return _ops.ne(self, other)

    # ---- methods mirroring the functions in scratchgan.ops
    def exp(self):
        return _ops.exp(self)

    def log(self):
        return _ops.log(self)

    def sqrt(self):
        return _ops.sqrt(self)

    def abs(self):
        return _ops.abs(self)

    def tanh(self):
        return _ops.tanh(self)

    def sigmoid(self):
        return _ops.sigmoid(self)

    def relu(self):
        return _ops.relu(self)

    def sum(self, axis=None, keepdims=False):
        return _ops.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return _ops.mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return _ops.max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return _ops.min(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape):
        return _ops.reshape(self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)

    def transpose(self, *axes):
        return _ops.transpose(self, axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else (axes or None))

    @property
    def T(self):
        return _ops.transpose(self)

    def clip(self, min=None, max=None):  # noqa: A002
        return _ops.clip(self, min, max)

    def astype(self, dtype):
        return _ops.astype(self, dtype)

    def float(self):
        """Cast to float32 (differentiable)."""
        return _ops.astype(self, np.float32)

    def double(self):
        """Cast to float64 (differentiable)."""
        return _ops.astype(self, np.float64)

    def any(self):
        return bool(self.data.any())

    def all(self):
        return bool(self.data.all())



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
    if _mode.anomaly:
        _check_finite(data, f"op '{op_name(rule)}' (forward)")
    return out


def as_operand(value, like: Tensor, op: str) -> Tensor:
    """Turn a Python number or raw array into a constant Tensor matching ``like``.

    Python numbers take ``like``'s dtype. Raw arrays are constants: boolean
    ones keep their dtype, others are cast to ``like``'s floating dtype unless
    that would lose precision (a float64 array with a float32 tensor).
    """
    ref = like.data
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
    from .ops import reshape, sum as sum_  # noqa: PLC0415 - ops import this module

    g_shape = g.data.shape
    extra = len(g_shape) - len(shape)
    axes = list(range(extra))  # leading axes that broadcasting added
    for i, size in enumerate(shape):
        if extra < 0 or size != 1 and size != g_shape[extra + i]:  # not a broadcast of ``shape``: a wrong rule
            raise RuntimeError(f"internal error: gradient of shape {g_shape} for an input of shape {shape}")
        if size != g_shape[extra + i]:  # a size-1 axis that broadcasting stretched
            axes.append(extra + i)
    if axes:
        g = sum_(g, axis=tuple(axes))
    if g.shape != shape:
        g = reshape(g, shape)
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
    saved_mode = _mode.grad_enabled
    anomaly = _mode.anomaly
    _mode.grad_enabled = create_graph
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
            parent_grads = rule(g, node, needs)
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
        _mode.grad_enabled = saved_mode
        _mode.anomaly = anomaly

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


def grad(outputs, inputs, grad_outputs=None, create_graph=False, retain_graph=None, allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned (not accumulated).

    Parameters
    ----------
    outputs : Tensor or sequence of Tensor
    inputs : Tensor or sequence of Tensor
    grad_outputs : Tensor or sequence, optional
        Upstream gradients, one per output; None means 1 for one-element outputs.
    create_graph : bool
        Record the backward pass so the returned gradients can be
        differentiated again (needed for gradient penalties).
    retain_graph : bool, optional
        Keep the graph for another backward; defaults to ``create_graph``.
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


# --------------------------------------------------------------------------- constructors


def tensor(data, requires_grad=False, dtype=None) -> Tensor:
    """Same as ``Tensor(data, requires_grad, dtype)``."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def zeros(shape, dtype=None, requires_grad=False) -> Tensor:
    dtype = np.dtype(dtype) if dtype is not None else DEFAULT_DTYPE
    return Tensor._wrap(backend.xp.zeros(shape, dtype=dtype)).requires_grad_(requires_grad)


def ones(shape, dtype=None, requires_grad=False) -> Tensor:
    dtype = np.dtype(dtype) if dtype is not None else DEFAULT_DTYPE
    return Tensor._wrap(backend.xp.ones(shape, dtype=dtype)).requires_grad_(requires_grad)


def zeros_like(t: Tensor, requires_grad=False) -> Tensor:
    return Tensor._wrap(backend.array_module(t.data).zeros_like(t.data)).requires_grad_(requires_grad)


def ones_like(t: Tensor, requires_grad=False) -> Tensor:
    return Tensor._wrap(backend.array_module(t.data).ones_like(t.data)).requires_grad_(requires_grad)


from . import ops as _ops  # noqa: E402 - the ops import Tensor from this module
