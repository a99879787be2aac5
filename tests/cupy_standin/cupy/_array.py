"""The stand-in's array type and the machinery that runs NumPy on its buffers as kernels.

A :class:`ndarray` holds a NumPy array (``_a``), its device buffer, which no
code outside this package should see. Every function runs NumPy on the
buffers through :func:`call`: a result that is a view of an input is
metadata only (no launch, as CuPy's views); any other result is a kernel's
output, whose computation is a launch (:func:`scratchgan's` counters, and,
during a capture, a recorded closure that writes into a buffer allocated now
and filled only when the graph is launched).

Rules taken from CuPy (each cites the file; versions 13.6 and 14.0, which
agree on all of them):

* ``numpy.asarray(x)`` / ``__array__`` raise TypeError
  (cupy/_core/core.pyx, ``_ndarray_base.__array__``);
* ufuncs and routines refuse NumPy arrays as operands: "Unsupported type"
  (cupy/_core/_kernel.pyx, ``_preprocess_arg``); Python and NumPy scalars
  are kernel arguments (no transfer);
* reductions return 0-d arrays, never scalars (cupy/_core/_reduction.pyx);
* integer array indices wrap around instead of raising
  (cupy/_core/_routines_indexing.pyx, ``_take`` with ``mode='wrap'``; the
  documented difference "Out-of-bounds indices" in docs/source/user_guide/difference.rst);
* elementwise outputs are C-contiguous (``_get_out_args`` in _kernel.pyx
  allocates ``ndarray(shape, dtype)``);
* boolean-mask indexing and ``nonzero`` need the count on the host
  (a synchronising copy; cupy/_core/_routines_indexing.pyx, ``_prepare_mask_indexing_single``).
"""

from __future__ import annotations

import numpy as np

from . import _device as dev


def _unsupported(x):
    # cupy/_core/_kernel.pyx (v13.6) _preprocess_arg: 'Unsupported type %s'
    return TypeError(f"Unsupported type {type(x)}")


def unwrap(x):
    """The NumPy buffers behind ``x`` (arrays, and lists or tuples of them); NumPy arrays are refused."""
    if x.__class__ is ndarray:
        return x._a
    if x is None or x.__class__ in (int, float, bool, str, slice):
        return x
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        raise _unsupported(x)
    if isinstance(x, (list, tuple)):
        return type(x)(unwrap(v) for v in x)
    return x


def _buffers(values, found):
    for v in values:
        if isinstance(v, ndarray):
            found.append(v._a)
        elif isinstance(v, (list, tuple)):
            _buffers(v, found)
    return found


def wrap(a: np.ndarray) -> ndarray:
    out = object.__new__(ndarray)
    out._a = a
    return out


def _owner(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _is_view(result: np.ndarray, inputs) -> bool:
    # a fresh allocation never overlaps an input's memory: overlapping bounds mean a view
    return any(np.may_share_memory(result, buf) for buf in inputs)


def adopt(result, inputs, recompute, c_order=False):
    """Turn what NumPy computed into the stand-in's result: views, new buffers (a launch), or host values."""
    if isinstance(result, np.generic):
        result = np.asarray(result)  # a reduction's 0-d array, not a scalar
    elif isinstance(result, np.ndarray) and _is_view(result, inputs):
        return wrap(result)
    if isinstance(result, np.ndarray):
        if dev.capturing_state() is None:
            if result.base is not None or (c_order and not result.flags.c_contiguous):
                # a view of NumPy's temporary: the device buffer is an allocation of its own (pointers into it
                # must find it, as cuBLAS through ctypes and NCCL look them up)
                result = np.array(result, order="C" if c_order or not result.flags.f_contiguous else "F")
            dev.count("launches")
            return wrap(dev.track(result))
        buf = dev.allocate(result.shape, result.dtype)
        dev.launch(lambda: np.copyto(buf, recompute(), casting="unsafe"))
        return wrap(buf)
    if isinstance(result, (tuple, list)) and any(isinstance(r, (np.ndarray, np.generic)) for r in result):
        parts = []
        for i, r in enumerate(result):
            parts.append(adopt(r, inputs, (lambda i=i: recompute()[i]), c_order))
        return type(result)(parts)
    return result


def call(fn, args=(), kwargs=None, *, c_order=False):
    """Run the NumPy function ``fn`` on the buffers of ``args`` as the device would (see the module docstring)."""
    kwargs = kwargs or {}
    out = kwargs.get("out")
    np_args = unwrap(args)
    np_kwargs = {k: unwrap(v) for k, v in kwargs.items()}
    if out is not None:  # in place into the given output(s): one launch, nothing to allocate
        dev.launch(lambda: fn(*np_args, **np_kwargs))
        return out
    inputs = _buffers(args, [])
    if kwargs:
        _buffers(kwargs.values(), inputs)
    if dev.capturing_state() is None:
        result = fn(*np_args, **np_kwargs)
    else:
        with np.errstate(all="ignore"):  # during a capture the inputs hold garbage: this only finds the shape
            result = fn(*np_args, **np_kwargs)
    return adopt(result, inputs, lambda: fn(*np_args, **np_kwargs), c_order)


# --------------------------------------------------------------------------- indexing

def _index_parts(key, ndim):
    """``key`` as a tuple with the Ellipsis expanded, and the axis each part consumes (None: none)."""
    if not isinstance(key, tuple):
        key = (key,)
    consumed = sum(1 for k in key if k is not None and k is not Ellipsis
                   and not (isinstance(k, (ndarray, np.ndarray)) and k.dtype == bool))
    consumed += sum(k.ndim - 1 for k in key if isinstance(k, (ndarray, np.ndarray)) and k.dtype == bool)
    parts = []
    for k in key:
        if k is Ellipsis:
            parts.extend([slice(None)] * (ndim - consumed))
        else:
            parts.append(k)
    axes, axis = [], 0
    for k in parts:
        if k is None:
            axes.append(None)
        else:
            axes.append(axis)
            axis += k.ndim if isinstance(k, (ndarray, np.ndarray)) and k.dtype == bool else 1
    return parts, axes


def index_key(key, shape):
    """``(make_key, advanced)``: a function building the NumPy key at run time, and whether it has index arrays.

    Index arrays on the device are read when the kernel runs (in a replay:
    their values then), and wrap around their axis (CuPy's rule). Host
    index arrays and lists are uploaded first (counted); boolean masks need
    their count on the host.
    """
    parts, axes = _index_parts(key, len(shape))
    builders, advanced = [], False
    for k, axis in zip(parts, axes):
        if isinstance(k, (list, np.ndarray)) and not isinstance(k, ndarray):
            arr = np.array(k)
            if arr.dtype.kind in "iub":
                dev.host_to_device("an index array given from the host")
                k = wrap(dev.track(arr.copy()))
            else:
                builders.append(lambda k=k: k)
                continue
        if isinstance(k, ndarray):
            advanced = True
            if k.dtype == bool:
                # the number of True values decides the shape: read back at once
                dev.device_to_host("boolean-mask indexing (the mask's count)")
                dev.synchronize("boolean-mask indexing")
                host = np.nonzero(k._a)
                for h in host:
                    builders.append(lambda h=h: h)
                continue
            if k.dtype.kind not in "iu":
                raise IndexError("arrays used as indices must be of integer (or boolean) type")
            size = shape[axis]
            buf = k._a
            builders.append(lambda buf=buf, size=size: np.mod(buf, size) if size else buf)
        else:
            builders.append(lambda k=k: k)
    return (lambda: tuple(b() for b in builders)), advanced


# --------------------------------------------------------------------------- the array

class _Flags:
    def __init__(self, a):
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = a.flags.owndata

    def __getitem__(self, name):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[name]


class MemoryPointer:
    """``ndarray.data``: the device address (here the address of the NumPy buffer)."""

    def __init__(self, ptr):
        self.ptr = ptr

    def __int__(self):
        return self.ptr


def _binary(ufunc_name, reflected=False):
    def method(self, other):
        from . import _ufuncs  # noqa: PLC0415

        u = getattr(_ufuncs, ufunc_name)
        return u(other, self) if reflected else u(self, other)
    return method


def _inplace(ufunc_name):
    def method(self, other):
        from . import _ufuncs  # noqa: PLC0415

        getattr(_ufuncs, ufunc_name)(self, other, out=self)
        return self
    return method


class ndarray:
    """A device array: not a ``numpy.ndarray``; its values reach the host only through explicit copies."""

    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100  # NumPy's binary operators defer to ours (which then refuse NumPy operands)
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the stand-in makes arrays from a shape and dtype only")
        self._a = dev.allocate(shape, dtype, order)

    # ---- metadata (on the host, free)
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: _Flags(self._a))
    T = property(lambda self: wrap(self._a.T))
    base = property(lambda self: None if self._a.base is None else wrap(_owner(self._a)))
    data = property(lambda self: MemoryPointer(self._a.__array_interface__["data"][0]))

    @property
    def device(self):
        from .cuda import Device  # noqa: PLC0415

        return Device(0)

    @property
    def __cuda_array_interface__(self):
        iface = dict(self._a.__array_interface__)
        iface["version"] = 3
        iface.pop("descr", None)
        return iface

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    # ---- the host, reached only explicitly (cupy/_core/core.pyx: __array__ raises; get() copies)
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def get(self, stream=None, order="C", out=None, blocking=True):
        dev.device_to_host("ndarray.get (cudaMemcpy device to host)")
        host = np.array(self._a, order=order if order != "A" else "K")
        if out is not None:
            out[...] = host
            return out
        return host

    def item(self):
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        dev.device_to_host("ndarray.item")
        return self._a.item()

    def tolist(self):
        dev.device_to_host("ndarray.tolist")
        return self._a.tolist()

    def _scalar(self, kind):
        if self.size != 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous."
                             if kind is bool else "only size-1 arrays can be converted to Python scalars")
        dev.device_to_host(f"{kind.__name__}() of a device array")
        return kind(self._a.reshape(()).item())

    __float__ = lambda self: self._scalar(float)  # noqa: E731
    __int__ = lambda self: self._scalar(int)  # noqa: E731
    __bool__ = lambda self: self._scalar(bool)  # noqa: E731
    __complex__ = lambda self: self._scalar(complex)  # noqa: E731

    def __repr__(self):
        dev.device_to_host("repr of a device array")
        return repr(self._a).replace("array(", "array(", 1)

    def __str__(self):
        dev.device_to_host("str of a device array")
        return str(self._a)

    def __format__(self, spec):
        dev.device_to_host("format() of a device array")
        return format(self._a[()] if self.ndim == 0 else self._a, spec)

    def __reduce__(self):  # pickling copies to the host, as CuPy's does
        return (_from_host, (self.get(),))

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    # ---- NumPy's dispatch protocols (CuPy implements both: cupy/_core/core.pyx)
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from . import _ufuncs  # noqa: PLC0415

        for x in inputs:
            if isinstance(x, np.ndarray):
                raise _unsupported(x)
        mine = getattr(_ufuncs, ufunc.__name__, None)
        if mine is None:
            return NotImplemented
        return getattr(mine, method)(*inputs, **kwargs) if method != "__call__" else mine(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        import cupy  # noqa: PLC0415

        mine = getattr(cupy, func.__name__, None)
        if mine is None or not callable(mine):
            return NotImplemented
        return mine(*args, **kwargs)

    # ---- indexing
    def __getitem__(self, key):
        make_key, advanced = index_key(key, self.shape)
        a = self._a
        if not advanced:  # a view: host metadata only (IndexError for a bad int, as CuPy)
            view = a[make_key() + (Ellipsis,)]  # with an Ellipsis, NumPy gives a 0-d view, not a scalar, as CuPy
            return wrap(view)
        return call(lambda: a[make_key()], ())

    def __setitem__(self, key, value):
        make_key, _ = index_key(key, self.shape)
        target = self._a
        if isinstance(value, ndarray):
            source = value._a
        elif isinstance(value, (np.ndarray, list, tuple)):
            dev.host_to_device("copying a host array into a device array")
            source = np.array(value)  # copied now, as cudaMemcpy from pageable memory is
        else:
            source = value
        dev.launch(lambda: target.__setitem__(make_key(), source))

    # ---- arithmetic (through the stand-in's ufuncs, with their operand rules)
    __add__, __radd__, __iadd__ = _binary("add"), _binary("add", True), _inplace("add")
    __sub__, __rsub__, __isub__ = _binary("subtract"), _binary("subtract", True), _inplace("subtract")
    __mul__, __rmul__, __imul__ = _binary("multiply"), _binary("multiply", True), _inplace("multiply")
    __truediv__, __rtruediv__, __itruediv__ = _binary("true_divide"), _binary("true_divide", True), _inplace("true_divide")
    __floordiv__, __rfloordiv__, __ifloordiv__ = (_binary("floor_divide"), _binary("floor_divide", True),
                                                  _inplace("floor_divide"))
    __mod__, __rmod__, __imod__ = _binary("remainder"), _binary("remainder", True), _inplace("remainder")
    __pow__, __rpow__, __ipow__ = _binary("power"), _binary("power", True), _inplace("power")
    __and__, __rand__, __iand__ = _binary("bitwise_and"), _binary("bitwise_and", True), _inplace("bitwise_and")
    __or__, __ror__, __ior__ = _binary("bitwise_or"), _binary("bitwise_or", True), _inplace("bitwise_or")
    __xor__, __rxor__, __ixor__ = _binary("bitwise_xor"), _binary("bitwise_xor", True), _inplace("bitwise_xor")
    __lshift__, __rlshift__, __ilshift__ = _binary("left_shift"), _binary("left_shift", True), _inplace("left_shift")
    __rshift__, __rrshift__, __irshift__ = (_binary("right_shift"), _binary("right_shift", True),
                                            _inplace("right_shift"))
    __lt__, __le__, __gt__, __ge__ = _binary("less"), _binary("less_equal"), _binary("greater"), _binary("greater_equal")
    __eq__, __ne__ = _binary("equal"), _binary("not_equal")

    def __neg__(self):
        from . import _ufuncs  # noqa: PLC0415

        return _ufuncs.negative(self)

    def __pos__(self):
        return self.copy()

    def __abs__(self):
        from . import _ufuncs  # noqa: PLC0415

        return _ufuncs.absolute(self)

    def __invert__(self):
        from . import _ufuncs  # noqa: PLC0415

        return _ufuncs.invert(self)

    def __matmul__(self, other):
        import cupy  # noqa: PLC0415

        return cupy.matmul(self, other)

    def __rmatmul__(self, other):
        import cupy  # noqa: PLC0415

        return cupy.matmul(other, self)

    def dot(self, other, out=None):
        import cupy  # noqa: PLC0415

        return cupy.dot(self, other, out=out)

    # ---- methods with CuPy's own meaning
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        return call(lambda a: a.astype(dtype, order="C" if order == "K" else order), (self,))

    def copy(self, order="C"):
        return call(lambda a: a.copy(order=order), (self,))

    def fill(self, value):
        if isinstance(value, np.ndarray):
            raise _unsupported(value)
        target = self._a
        if isinstance(value, ndarray):
            source = value._a
            dev.launch(lambda: np.copyto(target, source))
        else:
            dev.launch(lambda: target.fill(value))

    def view(self, dtype=None):
        return wrap(self._a.view(dtype) if dtype is not None else self._a.view())

    def __getattr__(self, name):
        # the rest of NumPy's methods (sum, reshape, transpose, max, ...) as kernels or views
        method = getattr(np.ndarray, name, None)
        if method is None or not callable(method) or name.startswith("__"):
            raise AttributeError(f"'cupy.ndarray' object has no attribute '{name}'")
        return lambda *args, **kwargs: call(method, (self, *args), kwargs)


def _from_host(host):
    from . import asarray  # noqa: PLC0415

    return asarray(host)
