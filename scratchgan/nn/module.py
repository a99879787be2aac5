"""The Module container and Parameter (PyTorch-like names and behaviour).

See :mod:`scratchgan.nn` for the layout and randomness conventions.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend
from ..autograd.tensor import Tensor, as_tensor
from ..backend.validate import as_generator, float_dtype, positive_int

LINEAR_INITS = ("pytorch", "xavier", "he", "dcgan")

# --------------------------------------------------------------------------- helpers

# The validators live in scratchgan.backend.validate; these old private names stay for code that still imports them.
_float_dtype = float_dtype
_positive_int = positive_int
_as_generator = as_generator


def _reset_grad(p: Tensor, set_to_none: bool) -> None:
    """``p.grad = None``, or zero it (in place where that is safe); shared with the optimizers' zero_grad."""
    g = p.grad
    if set_to_none or g is None:
        p.grad = None
        return
    data = g.data
    if g.requires_grad or getattr(data, "base", None) is not None or not getattr(data.flags, "writeable", True):
        p.grad = as_tensor(backend.array_module(data).zeros_like(data))
    else:
        data.fill(0)


def _empty_param(shape: tuple, dtype) -> Parameter:
    """A zero-filled Parameter on the active backend (initializers fill it)."""
    return Parameter(backend.xp.zeros(shape, dtype=dtype))


def _host_copy(array) -> np.ndarray:
    out = backend.to_numpy(array)
    return out.copy() if out is array else out


# --------------------------------------------------------------------------- Parameter


class Parameter(Tensor):
    """A leaf tensor that a :class:`Module` registers as a learnable weight.

    Parameters
    ----------
    data : array_like or Tensor
        Copied. A CuPy array stays on the GPU; anything else (a NumPy array
        included) goes to the active backend. An array or tensor keeps its
        dtype, which must be float32 or float64; Python floats become float32
        (the rules of :class:`scratchgan.Tensor`).
    requires_grad : bool
        True by default.
    dtype : str or numpy dtype, keyword-only, optional
        ``"float32"`` or ``"float64"``, to convert while copying.
    """

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True, *, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        if not isinstance(data, np.ndarray) and hasattr(data, "__cuda_array_interface__"):
            data = backend.to_numpy(data)  # a device array: copy through the host, then back
            super().__init__(data, requires_grad=requires_grad, dtype=dtype)
            self.data = backend.to_backend(self.data, "cupy")
        else:
            super().__init__(data, requires_grad=requires_grad, dtype=dtype)
        if self.data.dtype.kind != "f":
            raise TypeError(f"a Parameter must be floating (float32 or float64), got dtype {self.data.dtype}")

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype}, backend={self.backend})"


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])
IncompatibleKeys.__doc__ = "What :meth:`Module.load_state_dict` did not match (empty lists when all did)."


# --------------------------------------------------------------------------- Module


def _check_name(module, name, what: str) -> None:
    """Refuse a registration name that the dotted paths of state_dict could not hold."""
    if not isinstance(name, str):
        raise TypeError(f"{type(module).__name__}: a {what} name must be a str, got {type(name).__name__}")
    if name == "" or "." in name:
        raise KeyError(f"{type(module).__name__}: invalid {what} name {name!r}: it must be non-empty and "
                       "contain no '.' (dots separate the levels of state_dict names)")


class Module:
    """Base class of layers and networks.

    Assigning a :class:`Parameter` or a :class:`Module` to an attribute
    registers it (in assignment order) so that :meth:`parameters`,
    :meth:`state_dict` and friends find it. Arrays registered with
    :meth:`register_buffer` (BatchNorm's running statistics) are saved in
    :meth:`state_dict` but are not trained. Subclasses call
    ``super().__init__()`` first and implement :meth:`forward`.

    Attributes
    ----------
    training : bool
        Mode flag read by :class:`Dropout` and :class:`BatchNorm1d`; set with
        :meth:`train` / :meth:`eval`.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration
    def _registries(self):
        d = self.__dict__
        if "_parameters" not in d:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        return d["_parameters"], d["_buffers"], d["_modules"]

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, (Parameter, Module)) or name in self.__dict__.get("_parameters", ()) \
                or name in self.__dict__.get("_modules", ()) or name in self.__dict__.get("_buffers", ()):
            params, buffers, modules = self._registries()
            if isinstance(value, Parameter):
                buffers.pop(name, None)
                modules.pop(name, None)
                params[name] = value
            elif isinstance(value, Module):
                params.pop(name, None)
                buffers.pop(name, None)
                modules[name] = value
            elif name in params:
                if value is not None:
                    raise TypeError(
                        f"cannot assign a {type(value).__name__} to parameter {name!r} of {type(self).__name__}: "
                        "assign a Parameter (or None to remove it), or write values in place into .data"
                    )
                del params[name]
            elif name in modules:
                if value is not None:
                    raise TypeError(
                        f"cannot assign a {type(value).__name__} to submodule {name!r} of {type(self).__name__}: "
                        "assign a Module (or None to remove it)"
                    )
                del modules[name]
            elif value is None:
                del buffers[name]
            else:
                backend.array_module(value)  # raises TypeError for non-arrays
                buffers[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for registry in self._registries():
            registry.pop(name, None)
        object.__delattr__(self, name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as the submodule ``name`` (PyTorch's ``add_module``).

        The same as ``setattr(self, name, module)`` for a valid name; names that
        are not strings, are empty or contain a dot are refused, since the
        dotted paths of :meth:`state_dict` could not tell them apart. None
        removes a submodule of that name and leaves the attribute None.
        """
        self._register_slot(name, module, "submodule", Module, "add_module")

    register_module = add_module

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` as the parameter ``name`` (PyTorch's ``register_parameter``; None removes it)."""
        self._register_slot(name, param, "parameter", Parameter, "register_parameter",
                            " (wrap an array or tensor in nn.Parameter)")

    def _register_slot(self, name, value, kind: str, expected: type, method: str, hint: str = "") -> None:
        """add_module / register_parameter: check the name and the value, then register (None removes)."""
        _check_name(self, name, kind)
        if value is not None and not isinstance(value, expected):
            raise TypeError(f"{type(self).__name__}.{method}: {name!r} must be a {expected.__name__} or None, "
                            f"got {type(value).__name__}{hint}")
        params, buffers, modules = self._registries()
        own = params if kind == "parameter" else modules
        for what, registry in (("parameter", params), ("buffer", buffers), ("submodule", modules)):
            if registry is not own and name in registry:
                raise KeyError(f"{type(self).__name__}: {name!r} is already a {what}")
        if value is None:
            own.pop(name, None)
            object.__setattr__(self, name, None)
            return
        setattr(self, name, value)

    def register_buffer(self, name: str, array) -> None:
        """Register a NumPy/CuPy array saved in :meth:`state_dict` but not trained."""
        backend.array_module(array)
        params, buffers, modules = self._registries()
        if name in params or name in modules:
            raise KeyError(f"{type(self).__name__}: {name!r} is already a parameter or submodule")
        buffers[name] = array
        object.__setattr__(self, name, array)

    # ---- traversal
    def named_modules(self, prefix: str = ""):
        """Yield ``(dotted_name, module)`` for this module and all below it, each once."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [((f"{name}.{k}" if name else k), m) for k, m in module._modules.items()]
            stack.extend(reversed(children))

    def modules(self):
        """Yield this module and every module below it (pre-order, each once)."""
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        """Yield ``(name, module)`` for the direct submodules, in registration order, each once."""
        seen: set[int] = set()
        for name, module in self._modules.items():
            if id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        """Yield the direct submodules, in registration order."""
        for _, module in self.named_children():
            yield module

    def apply(self, fn) -> Module:
        """Call ``fn(module)`` on every submodule, children first, then on self; returns self.

        PyTorch's ``Module.apply``, the usual way to run a custom initializer:
        ``model.apply(init_fn)``.
        """
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def named_parameters(self, prefix: str = ""):
        """Yield ``(dotted_name, Parameter)``, e.g. ``("net.0.weight", W)``; a shared one once."""
        seen: set[int] = set()
        for mname, module in self.named_modules(prefix):
            for pname, p in module._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self):
        """Yield every Parameter once, in registration order (pass to an optimizer)."""
        for _, p in self.named_parameters():
            yield p

    def get_submodule(self, target: str) -> Module:
        """The submodule at the dotted path ``target`` (``""`` is self), as PyTorch's ``get_submodule``."""
        module = self
        if target == "":
            return module
        walked = []
        for part in target.split("."):
            child = module._modules.get(part)
            if child is None:
                where = ".".join(walked) or "the top module"
                raise AttributeError(f"{type(self).__name__}.get_submodule({target!r}): {where} "
                                     f"({type(module).__name__}) has no submodule {part!r}; "
                                     f"it has {list(module._modules) or 'none'}")
            walked.append(part)
            module = child
        return module

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at the dotted path ``target`` (``"net.0.weight"``)."""
        path, _, name = target.rpartition(".")
        module = self.get_submodule(path)
        if name not in module._parameters:
            raise AttributeError(f"{type(self).__name__}.get_parameter({target!r}): {type(module).__name__} has "
                                 f"no parameter {name!r}; it has {list(module._parameters) or 'none'}")
        return module._parameters[name]

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Set ``requires_grad`` of every parameter in place; returns self.

        The PyTorch way to freeze a network, e.g. D while G is updated:
        gradients then stop at D's input and D's own are not computed.
        """
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def buffers(self):
        """Yield every registered buffer (the arrays of :meth:`named_buffers`)."""
        for _, b in self.named_buffers():
            yield b

    def named_buffers(self, prefix: str = ""):
        """Yield ``(dotted_name, array)`` for every registered buffer."""
        for mname, module in self.named_modules(prefix):
            for bname, b in module._buffers.items():
                yield (f"{mname}.{bname}" if mname else bname), b

    def _state_slots(self, prefix: str = "", out=None) -> OrderedDict:
        """name -> (module, attribute, kind) for every saved value, in state_dict order."""
        out = OrderedDict() if out is None else out
        for name in self._parameters:
            out[prefix + name] = (self, name, "parameter")
        for name in self._buffers:
            out[prefix + name] = (self, name, "buffer")
        for name, module in self._modules.items():
            module._state_slots(f"{prefix}{name}.", out)
        return out

    @staticmethod
    def _slot_array(module, attribute, kind):
        return module._parameters[attribute].data if kind == "parameter" else module._buffers[attribute]

    # ---- state
    def state_dict(self) -> OrderedDict:
        """Return ``name -> host NumPy array`` (a copy) for every parameter and buffer.

        Names are dotted paths (``"net.0.weight"``, ``"1.running_mean"``).
        The arrays are copies: changing them does not change the module.
        """
        return OrderedDict((name, _host_copy(self._slot_array(*slot))) for name, slot in self._state_slots().items())

    def load_state_dict(self, state, strict: bool = True) -> IncompatibleKeys:
        """Copy values from ``state`` into the parameters and buffers, in place.

        Every parameter keeps its identity (so an optimizer holding it stays
        valid), its dtype and its backend: values are cast and moved to match.
        Nothing is written unless every check passes.

        Parameters
        ----------
        state : mapping
            ``name -> array`` (NumPy, CuPy or Tensor), e.g. from :meth:`state_dict`.
        strict : bool
            When True, keys missing from ``state`` and keys ``state`` has but the
            module lacks are errors; when False they are returned.

        Returns
        -------
        IncompatibleKeys
            ``(missing_keys, unexpected_keys)``.

        Raises
        ------
        ValueError
            Naming every missing or unexpected key (strict mode) and every key
            whose shape differs (always), with both shapes.
        TypeError
            For a value that is not a numeric array.
        """
        if not hasattr(state, "keys"):
            raise TypeError(f"load_state_dict expects a mapping of name -> array, got {type(state).__name__}")
        slots = self._state_slots()
        missing = [k for k in slots if k not in state]
        unexpected = [k for k in state if k not in slots]
        values, mismatched = {}, []
        for name, slot in slots.items():
            if name not in state:
                continue
            value = state[name]
            if isinstance(value, Tensor):
                value = value.data
            if not isinstance(value, np.ndarray) and hasattr(value, "__cuda_array_interface__"):
                value = backend.to_numpy(value)
            value = np.asarray(value)
            if value.dtype.kind not in "biuf":
                raise TypeError(
                    f"load_state_dict: value for {name!r} has dtype {value.dtype}; expected a numeric array"
                )
            target = self._slot_array(*slot)
            if value.shape != target.shape:
                hint = ""
                if value.ndim == 2 and value.shape[::-1] == target.shape:
                    hint = (" (transposed: a PyTorch (out, in) Linear weight? "
                            "this Linear stores (in, out); load weight.T)")
                mismatched.append(f"{name!r}: state has shape {value.shape}, module has {target.shape}{hint}")
            values[name] = value
        problems = []
        if strict and missing:
            problems.append(f"missing keys (in the module, not in the state): {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys (in the state, not in the module): {unexpected}")
        if mismatched:
            problems.append("shape mismatch: " + "; ".join(mismatched))
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__} failed:\n  " + "\n  ".join(problems))
        for name, value in values.items():
            target = self._slot_array(*slots[name])
            target[...] = backend.array_module(target).asarray(value.astype(target.dtype, copy=False))
        return IncompatibleKeys(missing, unexpected)

    # ---- modes, gradients, devices
    def train(self, mode: bool = True) -> Module:
        """Set ``training`` on this module and every submodule; returns self."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Same as ``train(False)``: Dropout is the identity, BatchNorm uses running stats."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of every parameter (``torch.nn.Module.zero_grad``).

        With ``set_to_none=True`` (the default, as in PyTorch) ``.grad`` becomes
        None; with False every existing gradient becomes zeros of its shape and
        dtype, written in place when it is a plain array of its own (a gradient
        that is a view, read-only or part of a graph is replaced by a fresh zero
        array, detached); a None gradient stays None.
        """
        for p in self.parameters():
            _reset_grad(p, set_to_none)

    def to_backend(self, name: str) -> Module:
        """Move every parameter (and its gradient) and buffer to backend ``name``, in place.

        Parameters keep their identity, so an optimizer keeps working on them;
        its state arrays are not moved, though: create optimizers after moving,
        or afterwards run ``opt.load_state_dict(opt.state_dict())``, which puts
        the state on each parameter's backend.
        """
        if name not in backend.BACKENDS:
            raise ValueError(f"unknown backend {name!r}; choose one of {backend.BACKENDS}")
        for module in self.modules():
            for p in module._parameters.values():
                p.data = backend.to_backend(p.data, name)
                if p.grad is not None:
                    p.grad = as_tensor(backend.to_backend(p.grad.data, name))
            for bname, b in list(module._buffers.items()):
                moved = backend.to_backend(b, name)
                module._buffers[bname] = moved
                object.__setattr__(module, bname, moved)
        return self

    # ---- calling and printing
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr."""
        return ""

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        lines = [head]
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        return "\n".join(lines) + "\n)"
