"""The Tensor class and the functions that create tensors.

A :class:`Tensor` holds one NumPy or CuPy array and, when it was made by a
recorded op, the links of the graph (``_parents``, ``_backward``, ``_ctx``).
The engine that records and walks the graph is :mod:`scratchgan.autograd.engine`; the
ops are in :mod:`scratchgan.ops`.

Dtypes
------
An array or a tensor keeps its floating dtype (float32 or float64), as in
PyTorch and NumPy; Python numbers and lists of them become float32 (PyTorch's
default). Other floating dtypes (float16, longdouble) are refused with an
error rather than converted silently.
"""

from __future__ import annotations

import numpy as np

from .. import backend

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
DEFAULT_DTYPE = np.dtype(np.float32)

# dtype names as attributes, as ``torch.float32``: ``sg.full((n,), 1.0, dtype=sg.float32)``
float32, float64, int64, bool_ = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.bool_)

# --------------------------------------------------------------------------- Tensor


class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    Parameters
    ----------
    data : array_like or Tensor
        Copied onto the active backend (a CuPy array given while NumPy is
        active is copied to the host). An array or tensor keeps its dtype;
        Python numbers and lists become float32 if they hold floats, int64 or
        bool otherwise.
    requires_grad : bool, keyword-only
        Record ops on this tensor so that gradients reach it.
    dtype : str or numpy dtype, keyword-only, optional
        ``"float32"``, ``"float64"``, or an integer or bool dtype for data that
        carries no gradient. Overrides the dtype of ``data``.

    Attributes
    ----------
    data : numpy.ndarray or cupy.ndarray
        The values.
    grad : Tensor or None
        Gradient accumulated by :meth:`backward`.
    requires_grad : bool
        Whether gradients flow to this tensor.

    Raises
    ------
    TypeError
        For a dtype other than float32, float64, integer or bool (float16 is
        refused, not rounded), or ``requires_grad=True`` on non-floating data.
    """

    __slots__ = ("data", "grad", "requires_grad", "_parents", "_backward", "_ctx", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operators

    def __init__(self, data, *, requires_grad: bool = False, dtype=None):
        self.data = _to_array(data, dtype, copy=True)  # never alias the caller's array
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(
                f"only floating tensors can require gradients, got dtype {self.data.dtype}; "
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
        return None if self._backward is None else _engine.op_name(self._backward)

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
        return bool(backend.host_scalar(self.data, "bool() of a tensor"))

    # ---- conversion
    def numpy(self) -> np.ndarray:
        """Return the values as a host NumPy array (a copy when on the GPU)."""
        return backend.to_host(self.data, "Tensor.numpy()")

    def item(self):
        """Return the value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return backend.host_scalar(self.data.reshape(()), "Tensor.item()")

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

    # ---- in place
    def fill_(self, value) -> Tensor:
        """Fill with ``value`` in place and return self (PyTorch's ``fill_``).

        For tensors outside the recorded graph (labels, buffers) or under
        :func:`scratchgan.no_grad` (an initializer): writing into a tensor
        that requires grad while recording raises, as in PyTorch. There is no
        version counter, so do not overwrite values that a recorded op has
        saved for its backward.
        """
        if self.requires_grad and _engine.is_grad_enabled():
            raise RuntimeError(f"fill_: a tensor that requires grad (shape {self.shape}) cannot be written in place "
                               "while the graph is recorded; do it inside scratchgan.no_grad(), or detach() first")
        self.data[...] = value
        return self

    def zero_(self) -> Tensor:
        """Fill with zeros in place and return self."""
        return self.fill_(0)

    # ---- autograd
    def backward(self, gradient=None, retain_graph: bool | None = None, create_graph: bool = False,
                 inputs=None) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires it.

        PyTorch's ``Tensor.backward`` signature and meaning.

        Parameters
        ----------
        gradient : Tensor or array_like, optional
            The upstream gradient, of this tensor's shape and dtype. Only a
            tensor with one element may omit it (it is then 1).
        retain_graph : bool, optional
            Keep the graph so that backward can run through it again; defaults
            to ``create_graph``.
        create_graph : bool
            Record the backward pass itself so that the gradients can be
            differentiated again (double backprop).
        inputs : Tensor or sequence of Tensor, optional
            Accumulate only into these leaves' ``.grad`` (all leaves if None).
        """
        if retain_graph is None:
            retain_graph = create_graph
        if inputs is not None:
            inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
            grads = _engine.grad(self, inputs, None if gradient is None else [gradient], retain_graph=retain_graph,
                                 create_graph=create_graph, allow_unused=True)
            for leaf, g in zip(inputs, grads):
                if g is not None:
                    leaf.grad = g if leaf.grad is None else leaf.grad + g
            return
        _engine.run_backward([self], [gradient], inputs=None, retain_graph=retain_graph, create_graph=create_graph)

    def any(self):
        return bool(backend.host_scalar(self.data.any(), "Tensor.any()"))

    def all(self):
        return bool(backend.host_scalar(self.data.all(), "Tensor.all()"))



# --------------------------------------------------------------------------- creation


def _check_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind not in "fiub":
        raise TypeError(f"unsupported dtype {dtype}; use float32, float64, an integer or bool dtype")
    if dtype.kind == "f" and dtype not in _FLOAT_DTYPES:
        raise TypeError(f"unsupported float dtype {dtype}; use float32 or float64 (convert with .astype first)")
    return dtype


def _to_array(data, dtype, copy: bool):
    """``data`` as an array of the active backend, under the dtype policy of :class:`Tensor`."""
    given_array = isinstance(data, Tensor) or hasattr(data, "dtype")  # an array, a tensor or a NumPy scalar
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        dtype = _check_dtype(dtype)
    array = backend.asarray(data)
    kind = array.dtype.kind
    if kind not in "fiub":
        raise TypeError(f"cannot make a Tensor from data of dtype {array.dtype}; give numbers, or a float, "
                        "integer or bool array")
    if dtype is None:
        if kind != "f":
            dtype = array.dtype
        elif not given_array:
            dtype = DEFAULT_DTYPE  # Python floats: float32, as in PyTorch
        else:
            dtype = _check_dtype(array.dtype)  # an array keeps its float dtype; float16 is refused
    if not copy and array.dtype == dtype:
        return array
    return array.astype(dtype, copy=True)


def tensor(data, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (``torch.tensor``'s signature).

    Same dtype rules as :class:`Tensor`: an array or tensor keeps its dtype,
    Python floats become float32.
    """
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def as_tensor(data, *, dtype=None) -> Tensor:
    """``data`` as a tensor, without a copy where possible (``torch.as_tensor``).

    A Tensor of the requested dtype is returned as it is; an array of the
    active backend and of the requested dtype is wrapped without copying, so
    the tensor and the array share memory (writing into one changes the
    other). Anything else is converted as by :class:`Tensor`. The result
    does not require a gradient unless ``data`` is a tensor that does.
    """
    if isinstance(data, Tensor) and (dtype is None or np.dtype(dtype) == data.dtype):
        return data
    return Tensor._wrap(_to_array(data, dtype, copy=False))


def _shape_of(size, who: str) -> tuple:
    """``zeros(2, 3)``, ``zeros((2, 3))`` and ``zeros([2, 3])`` all mean shape (2, 3)."""
    if len(size) == 1 and not isinstance(size[0], (int, np.integer)):
        size = size[0]
    try:
        shape = tuple(int(s) for s in size)
    except TypeError:
        raise TypeError(f"{who}: size must be ints or one sequence of ints, got {size!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"{who}: negative dimension in size {shape}")
    return shape


def _filled(fill: str, size, dtype, requires_grad: bool, who: str) -> Tensor:
    dtype = _check_dtype(dtype) if dtype is not None else DEFAULT_DTYPE
    array = getattr(backend.xp, fill)(_shape_of(size, who), dtype=dtype)
    return Tensor._wrap(array).requires_grad_(requires_grad)


def zeros(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``; float32 unless ``dtype`` says otherwise."""
    return _filled("zeros", size, dtype, requires_grad, "zeros")


def ones(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones: ``ones(2, 3)`` or ``ones((2, 3))``; float32 unless ``dtype`` says otherwise."""
    return _filled("ones", size, dtype, requires_grad, "ones")


def full(size, fill_value, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value`` (``torch.full``); float32 unless ``dtype`` says otherwise."""
    dtype = _check_dtype(dtype) if dtype is not None else DEFAULT_DTYPE
    shape = _shape_of((size,) if isinstance(size, (int, np.integer)) else tuple(size), "full")
    return Tensor._wrap(backend.xp.full(shape, fill_value, dtype=dtype)).requires_grad_(requires_grad)


def _like(fill: str, t: Tensor, dtype, requires_grad: bool) -> Tensor:
    dtype = _check_dtype(dtype) if dtype is not None else t.dtype
    array = getattr(backend.array_module(t.data), fill)(t.data, dtype=dtype)
    return Tensor._wrap(array).requires_grad_(requires_grad)


def zeros_like(t: Tensor, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """Zeros of ``t``'s shape, dtype and backend."""
    return _like("zeros_like", t, dtype, requires_grad)


def ones_like(t: Tensor, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """Ones of ``t``'s shape, dtype and backend."""
    return _like("ones_like", t, dtype, requires_grad)


from . import engine as _engine  # noqa: E402 - the engine imports Tensor from this module
