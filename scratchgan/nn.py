"""Layers, the Module container and weight initializers (PyTorch-like names).

Everything here is built from the differentiable ops in :mod:`scratchgan.ops`,
so every layer is twice differentiable (what WGAN-GP and R1 penalties need).

Layout of ``Linear``
--------------------
``Linear.weight`` has shape ``(in_features, out_features)`` and the layer
computes ``y = x @ W + b``. PyTorch stores the transpose, ``(out, in)``, and
computes ``x @ W.T + b``. Keeping ``(in, out)`` means the forward pass is one
plain ``matmul`` with no transpose node in the graph, and the weight gradient
``x.T @ g`` is produced directly in the weight's own layout. To load a PyTorch
weight, pass ``weight.T`` (``load_state_dict`` hints at this when the two
shapes are transposes of each other). Fans are read accordingly:
``fan_in = shape[0]`` and ``fan_out = shape[1]``.

Randomness
----------
Initializers and :class:`Dropout` draw on the host with an explicit
:class:`numpy.random.Generator` and then copy the values to the parameter's
backend, so a seed gives the same weights on NumPy and on CuPy. Layers take
``rng``: a Generator, an int seed, or None (fresh OS entropy, not
reproducible). Several layers sharing one Generator draw in construction
order, which is what :func:`mlp` does.
"""

from __future__ import annotations

import math
from collections import OrderedDict, namedtuple

import numpy as np

from . import backend
from .ops import getitem, leaky_relu, linear, matmul, mean, mul, pow as pow_, relu, reshape, sigmoid, tanh
from .tensor import Tensor

__all__ = [
    "BatchNorm1d", "Dropout", "Embedding", "Identity", "IncompatibleKeys", "LayerNorm", "LeakyReLU", "Linear",
    "Module", "Parameter", "ReLU", "Sequential", "Sigmoid", "Tanh", "calculate_fans", "calculate_gain", "constant_",
    "dcgan_init_", "kaiming_normal_", "kaiming_uniform_", "mlp", "normal_", "ones_", "pytorch_linear_init_",
    "uniform_", "xavier_normal_", "xavier_uniform_", "zeros_",
]

LINEAR_INITS = ("pytorch", "xavier", "he", "dcgan")


# --------------------------------------------------------------------------- helpers


def _float_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"parameters must be float32 or float64, got dtype {dt}")
    return dt


def _positive_int(value, name: str, who: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")
    return int(value)


def _as_generator(rng) -> np.random.Generator:
    """A Generator from a Generator, an int seed, or None (fresh OS entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, got {type(rng).__name__}")


def _empty_param(shape: tuple, dtype) -> Parameter:
    """A zero-filled Parameter on the active backend (initializers fill it)."""
    return Parameter._wrap(backend.xp.zeros(shape, dtype=dtype)).requires_grad_(True)


def _host_copy(array) -> np.ndarray:
    out = backend.to_numpy(array)
    return out.copy() if out is array else out


# --------------------------------------------------------------------------- Parameter


class Parameter(Tensor):
    """A leaf tensor that a :class:`Module` registers as a learnable weight.

    Parameters
    ----------
    data : array_like or Tensor
        Copied. A NumPy or CuPy array stays on its own backend; other data goes
        to the active backend. Floating data becomes float32 unless ``dtype``
        says otherwise.
    requires_grad : bool
        True by default.
    dtype : str or numpy dtype, optional
        ``"float32"`` or ``"float64"``.
    """

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True, dtype=None):
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

    def children(self):
        """Yield the direct submodules, in registration order."""
        seen: set[int] = set()
        for module in self._modules.values():
            if id(module) not in seen:
                seen.add(id(module))
                yield module

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

    def zero_grad(self) -> None:
        """Set ``.grad`` of every parameter to None."""
        for p in self.parameters():
            p.grad = None

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
                    p.grad = Tensor._wrap(backend.to_backend(p.grad.data, name))
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


# --------------------------------------------------------------------------- initializers


def calculate_fans(shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight in this library's ``(in, out)`` layout.

    For 2-D ``(in, out)``: ``fan_in = in``, ``fan_out = out``. For more axes
    the last is the output axis and the others multiply into ``fan_in``.
    """
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a weight with at least 2 axes, got shape {shape}")
    return int(np.prod(shape[:-1])), int(shape[-1])


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """Recommended gain (as ``torch.nn.init.calculate_gain``).

    ``linear``/``sigmoid``: 1; ``tanh``: 5/3; ``relu``: sqrt(2);
    ``leaky_relu`` with slope ``a`` (default 0.01): sqrt(2 / (1 + a^2)).
    """
    if nonlinearity in ("linear", "identity", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        a = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + a * a))
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}; use linear, sigmoid, tanh, relu or leaky_relu")


def _target(tensor):
    if isinstance(tensor, Tensor):
        return tensor.data
    backend.array_module(tensor)
    return tensor


def _write(tensor, host: np.ndarray):
    """Copy host values into ``tensor`` (a Tensor or array) in place, on its backend; returns it."""
    target = _target(tensor)
    target[...] = backend.array_module(target).asarray(host.astype(target.dtype))
    return tensor


def _check_rng(rng, who: str) -> np.random.Generator:
    if rng is None:
        raise TypeError(f"{who}: pass rng, a numpy.random.Generator (e.g. np.random.default_rng(seed)) or an int seed")
    return _as_generator(rng)


def uniform_(tensor, rng, low: float = 0.0, high: float = 1.0):
    """Fill in place with ``U(low, high)`` drawn on the host by ``rng``."""
    rng = _check_rng(rng, "uniform_")
    return _write(tensor, rng.uniform(low, high, size=_target(tensor).shape))


def normal_(tensor, rng, mean: float = 0.0, std: float = 1.0):
    """Fill in place with ``N(mean, std^2)`` drawn on the host by ``rng``.

    The DCGAN initialization is ``normal_(w, rng, 0.0, 0.02)`` (Radford et al. 2016).
    """
    rng = _check_rng(rng, "normal_")
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    return _write(tensor, rng.normal(mean, std, size=_target(tensor).shape))


def constant_(tensor, value: float):
    """Fill in place with ``value``."""
    target = _target(tensor)
    target[...] = value
    return tensor


def zeros_(tensor):
    """Fill in place with zeros."""
    return constant_(tensor, 0.0)


def ones_(tensor):
    """Fill in place with ones."""
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor, rng, gain: float = 1.0):
    """Glorot/Xavier uniform (Glorot & Bengio 2010), in place.

    ``W ~ U(-a, a)`` with ``a = gain * sqrt(6 / (fan_in + fan_out))``, which
    gives ``Var(W) = gain^2 * 2 / (fan_in + fan_out)``.
    """
    fan_in, fan_out = calculate_fans(_target(tensor).shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _write(tensor, _check_rng(rng, "xavier_uniform_").uniform(-bound, bound, size=_target(tensor).shape))


def xavier_normal_(tensor, rng, gain: float = 1.0):
    """Glorot/Xavier normal, in place: ``W ~ N(0, std^2)``, ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = calculate_fans(_target(tensor).shape)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return _write(tensor, _check_rng(rng, "xavier_normal_").normal(0.0, std, size=_target(tensor).shape))


def _kaiming_std(shape, a, mode, nonlinearity) -> float:
    fan_in, fan_out = calculate_fans(shape)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor, rng, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """He/Kaiming uniform (He et al. 2015), in place.

    ``W ~ U(-b, b)`` with ``b = gain * sqrt(3 / fan)``, ``gain =
    calculate_gain(nonlinearity, a)`` and ``fan`` the fan-in (default) or
    fan-out; so ``std(W) = gain / sqrt(fan)``. With ``a = sqrt(5)`` this is
    PyTorch's Linear default, ``b = 1 / sqrt(fan_in)``.
    """
    bound = math.sqrt(3.0) * _kaiming_std(_target(tensor).shape, a, mode, nonlinearity)
    return _write(tensor, _check_rng(rng, "kaiming_uniform_").uniform(-bound, bound, size=_target(tensor).shape))


def kaiming_normal_(tensor, rng, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """He/Kaiming normal (He et al. 2015), in place: ``W ~ N(0, (gain / sqrt(fan))^2)``.

    With the defaults (``a = 0``) the gain is sqrt(2), the ReLU value.
    """
    std = _kaiming_std(_target(tensor).shape, a, mode, nonlinearity)
    return _write(tensor, _check_rng(rng, "kaiming_normal_").normal(0.0, std, size=_target(tensor).shape))


def pytorch_linear_init_(weight, bias, rng):
    """PyTorch's default Linear initialization, in place.

    PyTorch calls ``kaiming_uniform_(W, a=sqrt(5))``: gain ``sqrt(2/(1+5)) =
    sqrt(1/3)``, bound ``sqrt(1/3) * sqrt(3/fan_in) = 1/sqrt(fan_in)``. So
    ``W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` and the bias (when not None)
    ``b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``; the weight is drawn first.
    """
    rng = _check_rng(rng, "pytorch_linear_init_")
    fan_in, _ = calculate_fans(_target(weight).shape)
    bound = 1.0 / math.sqrt(fan_in)
    uniform_(weight, rng, -bound, bound)
    if bias is not None:
        uniform_(bias, rng, -bound, bound)
    return weight


def dcgan_init_(weight, bias, rng, std: float = 0.02):
    """DCGAN initialization (Radford et al. 2016), in place: ``W ~ N(0, 0.02^2)``, ``b = 0``."""
    normal_(weight, rng, 0.0, std)
    if bias is not None:
        zeros_(bias)
    return weight


def _init_linear(weight, bias, init: str, rng) -> None:
    if init == "pytorch":
        pytorch_linear_init_(weight, bias, rng)
        return
    if init == "xavier":
        xavier_uniform_(weight, rng)
    elif init == "he":
        kaiming_normal_(weight, rng, a=0.0, nonlinearity="relu")
    elif init == "dcgan":
        normal_(weight, rng, 0.0, 0.02)
    else:
        raise ValueError(f"unknown init {init!r}; choose one of {LINEAR_INITS}")
    if bias is not None:
        zeros_(bias)


# --------------------------------------------------------------------------- layers


class Linear(Module):
    """Affine map ``y = x @ W + b``.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the last axis of the input and of the output.
    bias : bool
        Add a learnable bias ``b`` of shape ``(out_features,)``.
    init : {"pytorch", "xavier", "he", "dcgan"}
        ``"pytorch"``: W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's
        default). ``"xavier"``: W ~ U(-a, a), a = sqrt(6/(fan_in+fan_out)),
        b = 0. ``"he"``: W ~ N(0, 2/fan_in), b = 0. ``"dcgan"``: W ~ N(0,
        0.02^2), b = 0.
    rng : numpy.random.Generator, int or None
        Source of the initial values (drawn on the host).
    dtype : {"float32", "float64"}

    Attributes
    ----------
    weight : Parameter
        Shape ``(in_features, out_features)``: the transpose of PyTorch's
        ``(out, in)`` layout, so the forward pass needs no transpose.
    bias : Parameter or None
        Shape ``(out_features,)``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init: str = "pytorch",
                 rng=None, dtype="float32"):
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features", "Linear")
        self.out_features = _positive_int(out_features, "out_features", "Linear")
        if init not in LINEAR_INITS:
            raise ValueError(f"Linear: unknown init {init!r}; choose one of {LINEAR_INITS}")
        dtype = _float_dtype(dtype)
        self.init = init
        self.weight = _empty_param((self.in_features, self.out_features), dtype)
        self.bias = _empty_param((self.out_features,), dtype) if bias else None
        self.reset_parameters(rng)

    def reset_parameters(self, rng=None) -> None:
        """Draw fresh values with this layer's ``init`` scheme."""
        _init_linear(self.weight, self.bias, self.init, _as_generator(rng))

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            x = Tensor(x, dtype=self.weight.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear: input's last axis has size {x.shape[-1] if x.ndim else None} (input shape {x.shape}) "
                f"but in_features is {self.in_features}"
            )
        if x.ndim == 2:
            return linear(x, self.weight, self.bias)  # one fused op on the hot path
        y = matmul(x, self.weight)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """Lookup table: integer indices -> rows of ``weight``.

    ``y[..., :] = weight[index[...], :]``; the gradient scatters back into the
    rows (a row used several times gets the sum of its gradients).

    Parameters
    ----------
    num_embeddings, embedding_dim : int
        ``weight`` has shape ``(num_embeddings, embedding_dim)``, initialized
        ``N(0, 1)`` as in PyTorch.
    rng : numpy.random.Generator, int or None
    dtype : {"float32", "float64"}
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, rng=None, dtype="float32"):
        super().__init__()
        self.num_embeddings = _positive_int(num_embeddings, "num_embeddings", "Embedding")
        self.embedding_dim = _positive_int(embedding_dim, "embedding_dim", "Embedding")
        self.weight = _empty_param((self.num_embeddings, self.embedding_dim), _float_dtype(dtype))
        normal_(self.weight, _as_generator(rng))

    def forward(self, indices) -> Tensor:
        """Rows for ``indices`` (a Tensor or array of ints, any shape): shape ``indices.shape + (dim,)``."""
        idx = indices.data if isinstance(indices, Tensor) else indices
        if not hasattr(idx, "dtype"):
            idx = np.asarray(idx)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"Embedding: indices must be integers, got dtype {idx.dtype}")
        idx = backend.array_module(self.weight.data).asarray(idx)
        if idx.size:
            low, high = int(idx.min()), int(idx.max())
            if low < 0 or high >= self.num_embeddings:
                bad = low if low < 0 else high
                raise IndexError(
                    f"Embedding: index {bad} is out of range for {self.num_embeddings} embeddings "
                    f"(valid 0..{self.num_embeddings - 1})"
                )
        return getitem(self.weight, idx)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class Sequential(Module):
    """Modules applied in order: ``Sequential(a, b)(x) == b(a(x))``.

    Submodules are named ``"0"``, ``"1"``, ...; the container supports
    ``len``, iteration, integer indexing and slicing (a slice is a new
    Sequential sharing the same modules).
    """

    def __init__(self, *modules: Module):
        super().__init__()
        for i, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: item {i} is a {type(module).__name__}, not a Module")
            setattr(self, str(i), module)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x

    def append(self, module: Module) -> Sequential:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*items[index])
        try:
            return items[index]
        except IndexError:
            raise IndexError(f"Sequential index {index} is out of range for {len(items)} modules") from None


class Identity(Module):
    """``y = x``."""

    def forward(self, x):
        return x


class ReLU(Module):
    """``y = max(x, 0)``."""

    def forward(self, x):
        return relu(x)


class LeakyReLU(Module):
    """``y = x`` for x > 0, ``negative_slope * x`` otherwise.

    The default slope is 0.2, the usual GAN value (PyTorch's default is 0.01).
    """

    def __init__(self, negative_slope: float = 0.2):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    """``y = tanh(x)``."""

    def forward(self, x):
        return tanh(x)


class Sigmoid(Module):
    """``y = 1 / (1 + exp(-x))`` (stable form)."""

    def forward(self, x):
        return sigmoid(x)


class Dropout(Module):
    """Inverted dropout.

    In training mode each element is kept with probability ``1 - p`` and
    scaled: ``y = x * m / (1 - p)``, ``m ~ Bernoulli(1 - p)``, so
    ``E[y] = x``; with ``p = 1`` the output is zero. In eval mode (or with
    ``p = 0``) ``y = x``, the same tensor.

    Parameters
    ----------
    p : float
        Drop probability in [0, 1].
    rng : numpy.random.Generator, int or None
        Source of the masks, drawn on the host (so NumPy and CuPy runs drop
        the same elements for the same seed).
    """

    def __init__(self, p: float = 0.5, rng=None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = float(p)
        self.rng = _as_generator(rng)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        scale = 0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p)
        keep = self.rng.random(x.shape) >= self.p
        mask = (keep * scale).astype(x.dtype)
        return mul(x, Tensor._wrap(backend.array_module(x.data).asarray(mask)))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _normalize(xc: Tensor, var: Tensor, eps: float) -> Tensor:
    return xc * pow_(var + eps, -0.5)


class LayerNorm(Module):
    """Layer normalization (Ba et al. 2016), per sample.

    Over the last ``len(normalized_shape)`` axes of each sample:

    .. math::

        \\mu = \\frac{1}{H} \\sum_i x_i, \\quad
        \\sigma^2 = \\frac{1}{H} \\sum_i (x_i - \\mu)^2, \\quad
        y_i = \\frac{x_i - \\mu}{\\sqrt{\\sigma^2 + \\epsilon}} \\, \\gamma_i + \\beta_i

    (biased variance, as PyTorch). Each sample is normalized by its own
    statistics, so samples never interact: safe in a WGAN-GP critic, whose
    penalty needs per-sample input gradients. Built from differentiable ops,
    so it is twice differentiable.

    Parameters
    ----------
    normalized_shape : int or tuple of int
        Trailing shape to normalize over.
    eps : float
    elementwise_affine : bool
        Learn ``gamma`` (``weight``, ones) and ``beta`` (``bias``, zeros).
    dtype : {"float32", "float64"}
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, dtype="float32"):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        self.normalized_shape = tuple(_positive_int(s, "normalized_shape", "LayerNorm") for s in shape)
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        dtype = _float_dtype(dtype)
        if self.elementwise_affine:
            self.weight = ones_(_empty_param(self.normalized_shape, dtype))
            self.bias = _empty_param(self.normalized_shape, dtype)
        else:
            self.weight = self.bias = None

    def forward(self, x: Tensor) -> Tensor:
        k = len(self.normalized_shape)
        if x.shape[x.ndim - k:] != self.normalized_shape or x.ndim < k:
            raise ValueError(
                f"LayerNorm: input shape {x.shape} does not end with normalized_shape {self.normalized_shape}"
            )
        axes = tuple(range(x.ndim - k, x.ndim))
        xc = x - mean(x, axis=axes, keepdims=True)
        y = _normalize(xc, mean(xc * xc, axis=axes, keepdims=True), self.eps)
        if self.elementwise_affine:
            y = y * self.weight + self.bias
        return y

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class BatchNorm1d(Module):
    """Batch normalization (Ioffe & Szegedy 2015) over ``(N, C)`` or ``(N, C, L)`` inputs.

    Training mode, per channel c over the batch (and length) axes, m values:

    .. math::

        \\mu_c = \\frac{1}{m} \\sum x, \\quad
        \\sigma_c^2 = \\frac{1}{m} \\sum (x - \\mu_c)^2, \\quad
        y = \\frac{x - \\mu_c}{\\sqrt{\\sigma_c^2 + \\epsilon}} \\gamma_c + \\beta_c

    and the running statistics (buffers, no gradient) are updated as PyTorch
    does, with the *unbiased* variance:

    .. math::

        \\hat\\mu \\leftarrow (1 - \\text{momentum}) \\hat\\mu + \\text{momentum} \\, \\mu_c, \\quad
        \\hat\\sigma^2 \\leftarrow (1 - \\text{momentum}) \\hat\\sigma^2
            + \\text{momentum} \\, \\frac{m}{m - 1} \\sigma_c^2

    Eval mode uses ``running_mean`` and ``running_var`` instead of the batch
    statistics. Batch statistics couple the samples of a batch, so do not use
    it in a WGAN-GP critic (use :class:`LayerNorm`). PyTorch's
    ``num_batches_tracked`` buffer is not kept (only needed for momentum=None).

    Parameters
    ----------
    num_features : int
        C.
    eps : float
    momentum : float
        In [0, 1].
    affine : bool
        Learn ``gamma`` (``weight``, ones) and ``beta`` (``bias``, zeros).
    dtype : {"float32", "float64"}
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                 dtype="float32"):
        super().__init__()
        self.num_features = _positive_int(num_features, "num_features", "BatchNorm1d")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm1d: momentum must be in [0, 1], got {momentum}")
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.affine = bool(affine)
        dtype = _float_dtype(dtype)
        if self.affine:
            self.weight = ones_(_empty_param((self.num_features,), dtype))
            self.bias = _empty_param((self.num_features,), dtype)
        else:
            self.weight = self.bias = None
        self.register_buffer("running_mean", backend.xp.zeros(self.num_features, dtype=dtype))
        self.register_buffer("running_var", backend.xp.ones(self.num_features, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        c = self.num_features
        if x.ndim not in (2, 3) or x.shape[1] != c:
            raise ValueError(f"BatchNorm1d: expected input of shape (N, {c}) or (N, {c}, L), got {x.shape}")
        axes = (0,) if x.ndim == 2 else (0, 2)
        shape = (1, c) if x.ndim == 2 else (1, c, 1)
        if self.training:
            m = x.size // c
            if m < 2:
                raise ValueError(
                    f"BatchNorm1d: expected more than 1 value per channel when training, got input shape {x.shape}"
                )
            mu = mean(x, axis=axes, keepdims=True)
            xc = x - mu
            var = mean(xc * xc, axis=axes, keepdims=True)
            y = _normalize(xc, var, self.eps)
            # running statistics: plain array arithmetic, never recorded
            mom = self.momentum
            rm, rv = self.running_mean, self.running_var
            rm *= 1.0 - mom
            rm += mom * mu.data.reshape(c)
            rv *= 1.0 - mom
            rv += (mom * m / (m - 1)) * var.data.reshape(c)
        else:
            xp = backend.array_module(x.data)
            rm = Tensor._wrap(self.running_mean.reshape(shape))
            inv = Tensor._wrap((1.0 / xp.sqrt(self.running_var + self.eps)).astype(x.dtype).reshape(shape))
            y = (x - rm) * inv
        if self.affine:
            if x.ndim == 2:
                y = y * self.weight + self.bias
            else:
                y = y * reshape(self.weight, shape) + reshape(self.bias, shape)
        return y

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


# --------------------------------------------------------------------------- mlp


_ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid, "identity": Identity}


def _make_activation(spec, negative_slope: float) -> Module | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {spec!r}; choose one of {sorted(_ACTIVATIONS)} or None")
        return LeakyReLU(negative_slope) if spec == "leaky_relu" else _ACTIVATIONS[spec]()
    if isinstance(spec, Module):
        return spec
    if callable(spec):
        module = spec()
        if not isinstance(module, Module):
            raise TypeError(f"activation factory returned a {type(module).__name__}, not a Module")
        return module
    raise TypeError(f"activation must be a name, a Module or a Module factory, got {type(spec).__name__}")


def mlp(sizes, activation="relu", out_activation=None, rng=None, init: str = "pytorch", dtype="float32",
        norm: str | None = None, bias: bool = True, negative_slope: float = 0.2) -> Sequential:
    """A multilayer perceptron: ``Linear -> [norm] -> activation`` per hidden layer, then ``Linear``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first: ``[2, 128, 128, 1]`` makes three Linear layers.
    activation : str, Module factory or None
        Hidden activation: ``"relu"``, ``"leaky_relu"`` (slope ``negative_slope``),
        ``"tanh"``, ``"sigmoid"``, ``"identity"``, or a zero-argument callable
        returning a Module (e.g. a class).
    out_activation : same, optional
        Applied after the last Linear (None: raw outputs / logits).
    rng : numpy.random.Generator, int or None
        One generator shared by the layers, drawn in order: same seed, same net.
    init : {"pytorch", "xavier", "he", "dcgan"}
        See :class:`Linear`.
    dtype : {"float32", "float64"}
    norm : {None, "layer", "batch"}
        Normalization after each hidden Linear (before the activation). Use
        ``"layer"``, not ``"batch"``, in a WGAN-GP critic.
    bias : bool
    negative_slope : float
        Slope for ``"leaky_relu"``.

    Returns
    -------
    Sequential
    """
    sizes = [_positive_int(s, "sizes", "mlp") for s in sizes]
    if len(sizes) < 2:
        raise ValueError(f"mlp: sizes needs at least an input and an output width, got {sizes}")
    if norm not in (None, "layer", "batch"):
        raise ValueError(f"mlp: norm must be None, 'layer' or 'batch', got {norm!r}")
    rng = _as_generator(rng)
    layers: list[Module] = []
    n = len(sizes) - 1
    for i in range(n):
        layers.append(Linear(sizes[i], sizes[i + 1], bias=bias, init=init, rng=rng, dtype=dtype))
        act = _make_activation(activation if i < n - 1 else out_activation, negative_slope)
        if i < n - 1 and norm is not None:
            width = sizes[i + 1]
            layers.append(LayerNorm(width, dtype=dtype) if norm == "layer" else BatchNorm1d(width, dtype=dtype))
        if act is not None:
            layers.append(act)
    return Sequential(*layers)
