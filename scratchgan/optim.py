"""Optimizers: SGD (with momentum / Nesterov), Adam and RMSprop.

The update rules are the ones the PyTorch documentation gives for
``torch.optim`` (and the order of operations follows PyTorch's own
implementation). ``g`` is a parameter's gradient, ``p`` the parameter and
``t`` the number of updates that parameter has received, counting this one.

Each :meth:`Optimizer.step` writes ``p.data`` in place with plain array
arithmetic: nothing is recorded in the autograd graph (raw arrays never are),
the parameters keep their identity, and the per-parameter work is a handful
of array calls with the scalar factors (bias corrections, ``lr / (1 -
beta1^t)``) computed as Python floats. Parameters whose ``.grad`` is None are
skipped (their state, including their own step count ``t``, is untouched),
as in PyTorch.

State round trip
----------------
:meth:`Optimizer.state_dict` returns a nested dict whose keys are strings
without ``"/"`` and whose leaves are host NumPy arrays or Python scalars,
which :mod:`scratchgan.checkpoint` can store::

    {"type": "Adam", "step": 12, "num_params": 6,
     "hyper": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-08, "weight_decay": 0.0},
     "state": {"0": {"step": 12, "exp_avg": array, "exp_avg_sq": array}, ...}}

Saving after k steps, loading into a fresh optimizer over parameters with
the same values and running n - k more steps gives bitwise the same
parameters as n steps straight.
"""

from __future__ import annotations

import math

import numpy as np

from . import backend, kernels
from .tensor import Tensor

__all__ = ["SGD", "Adam", "Optimizer", "RMSprop"]


def _number(name: str, value, who: str, low: float = 0.0, high: float | None = None,
            high_open: bool = False) -> float:
    """Check that ``low <= value <= high`` (or ``< high``) and return it as a Python float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{who}: {name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < low or (high is not None and (value >= high if high_open else value > high)):
        upper = "" if high is None else (f" and < {high}" if high_open else f" and <= {high}")
        raise ValueError(f"{who}: invalid {name} {value!r}; it must be >= {low}{upper}")
    return value


def _count(name: str, value, who: str) -> int:
    """A non-negative integer from an int, a NumPy integer or a 0-d integer array."""
    arr = np.asarray(value)
    if arr.ndim != 0 or arr.dtype.kind not in "iu" or int(arr) < 0:
        raise ValueError(f"{who}: {name} must be a non-negative int, got {value!r}")
    return int(arr)


def _host(value) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, (np.ndarray, np.generic)):
        return np.asarray(value)
    if hasattr(value, "__cuda_array_interface__"):
        return backend.to_numpy(value)
    raise TypeError(f"expected an array, got {type(value).__name__}")


class Optimizer:
    """Base class: a list of parameters, their per-parameter state and hyperparameters.

    Parameters
    ----------
    params : iterable of Tensor
        Leaf floating tensors, e.g. ``model.parameters()``; each at most once.
    hyper : dict
        Hyperparameters, Python scalars, read at every :meth:`step` (so
        ``opt.lr = 1e-4`` or ``opt.hyper["lr"] = 1e-4`` takes effect at once).

    Attributes
    ----------
    params : list of Tensor
    hyper : dict
    state : list of dict
        Per-parameter state (e.g. ``{"step": 3, "exp_avg": ..., "exp_avg_sq": ...}``),
        empty until the parameter's first update.
    step_count : int
        Number of :meth:`step` calls.
    """

    def __init__(self, params, hyper: dict):
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors (e.g. model.parameters()), "
                            "got a single Tensor; wrap it in a list")
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        seen = set()
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameter {i} is a {type(p).__name__}, not a Tensor")
            if p.dtype.kind != "f":
                raise TypeError(f"{type(self).__name__}: parameter {i} has dtype {p.dtype}; only floating tensors")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: parameter {i} is not a leaf tensor "
                                 "(it was computed by an op)")
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: parameter {i} appears more than once")
            seen.add(id(p))
        self.params: list[Tensor] = params
        self.hyper: dict = self._check_hyper(dict(hyper))
        self.state: list[dict] = [{} for _ in params]
        self.step_count: int = 0
        self._scratch: dict = {}  # per-parameter work buffers (not state: never saved)

    # ---- to be provided by subclasses
    def _check_hyper(self, hyper: dict) -> dict:
        """Validate hyperparameters; return them as Python scalars."""
        raise NotImplementedError

    _required_state_keys: tuple = ()  # entries every non-empty per-parameter state holds
    _all_state_keys: tuple = ()  # every entry a state may hold (some only under some hyperparameters)

    def step(self) -> None:
        raise NotImplementedError

    # ---- common
    @property
    def lr(self) -> float:
        """The learning rate (settable, validated)."""
        return self.hyper["lr"]

    @lr.setter
    def lr(self, value) -> None:
        self.hyper["lr"] = _number("lr", value, type(self).__name__)

    def _updates(self, weight_decay: float = 0.0):
        """Yield ``(index, param array, grad array, state)`` for every parameter with a gradient.

        The L2 weight decay is added to the gradient here (``g + wd * p``, as PyTorch's
        optimisers do), into a new array: the parameter's ``.grad`` is never modified.
        """
        for i, (p, st) in enumerate(zip(self.params, self.state)):
            if p.grad is None:
                continue
            x, g = p.data, p.grad.data
            if weight_decay != 0:
                g = g + weight_decay * x
            yield i, x, g, st

    def zero_grad(self) -> None:
        """Set ``.grad`` of every parameter to None."""
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict:
        """A nested dict of host NumPy arrays (copies) and Python scalars; see the module docstring."""
        state = {}
        for i, st in enumerate(self.state):
            if st:
                state[str(i)] = {k: (v if isinstance(v, (int, float)) else np.array(backend.to_numpy(v), copy=True))
                                 for k, v in st.items()}
        return {"type": type(self).__name__, "step": self.step_count, "num_params": len(self.params),
                "hyper": dict(self.hyper), "state": state}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters, step counts and per-parameter state (copied).

        Arrays are copied onto each parameter's backend in its dtype. Nothing
        changes unless every check passes.

        Raises
        ------
        ValueError
            For another optimizer type, another number of parameters, missing
            or unknown keys, or a state array whose shape is not its
            parameter's (both shapes named).
        """
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict):
            raise TypeError(f"{who}: expected a dict, got {type(state_dict).__name__}")
        required = {"type", "step", "num_params", "hyper", "state"}
        if set(state_dict) != required:
            raise ValueError(f"{who}: keys {sorted(state_dict)} do not match the expected {sorted(required)}")
        if state_dict["type"] != type(self).__name__:
            raise ValueError(f"{who}: the state is for a {state_dict['type']} optimizer, not {type(self).__name__}")
        n = _count("num_params", state_dict["num_params"], who)
        if n != len(self.params):
            raise ValueError(f"{who}: the state is for {n} parameters, this optimizer has {len(self.params)}")
        hyper = dict(state_dict["hyper"])
        if set(hyper) != set(self.hyper):
            raise ValueError(f"{who}: hyperparameters {sorted(hyper)} do not match the expected {sorted(self.hyper)}")
        hyper = self._check_hyper({k: (v.item() if isinstance(v, (np.ndarray, np.generic)) else v)
                                   for k, v in hyper.items()})
        required_keys = set(self._required_state_keys)
        allowed = required_keys | set(self._all_state_keys)
        new_state: list[dict] = [{} for _ in self.params]
        for key, st in dict(state_dict["state"]).items():
            try:
                i = int(key)
            except (TypeError, ValueError):
                raise ValueError(f"{who}: state key {key!r} is not a parameter index") from None
            if str(i) != str(key) or not 0 <= i < len(self.params):
                raise ValueError(f"{who}: state key {key!r} is not an index in 0..{len(self.params) - 1}")
            if not required_keys <= set(st) <= allowed:
                raise ValueError(f"{who}: state of parameter {i} has keys {sorted(st)}; it needs "
                                 f"{sorted(required_keys)} and may also hold {sorted(allowed - required_keys)}")
            p = self.params[i]
            xp = backend.array_module(p.data)
            entry = {}
            for name, value in st.items():
                if name == "step":
                    entry[name] = _count(f"state['{key}']['step']", value, who)
                    continue
                host = _host(value)
                if host.shape != p.shape:
                    raise ValueError(f"{who}: state['{key}']['{name}'] has shape {host.shape}, "
                                     f"but parameter {i} has shape {p.shape}")
                if host.dtype.kind not in "iuf":
                    raise TypeError(f"{who}: state['{key}']['{name}'] has dtype {host.dtype}")
                entry[name] = xp.array(host, dtype=p.dtype)  # a copy, never aliasing the caller's array
            new_state[i] = entry
        self.hyper = hyper
        self.state = new_state
        self.step_count = _count("step", state_dict["step"], who)

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({hyper}; {len(self.params)} params, step {self.step_count})"


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum, Nesterov and weight decay.

    As documented for ``torch.optim.SGD``, per step:

    .. math::

        g &\\leftarrow g + \\lambda p                      && \\text{(weight decay } \\lambda \\ne 0) \\\\
        b &\\leftarrow g \\text{ at the first step, else } \\mu b + (1 - \\tau) g
                                                          && \\text{(momentum } \\mu \\ne 0) \\\\
        g &\\leftarrow g + \\mu b \\text{ (Nesterov) or } b \\\\
        p &\\leftarrow p - \\gamma g

    Parameters
    ----------
    params : iterable of Tensor
    lr : float
        ``gamma`` >= 0.
    momentum : float
        ``mu`` >= 0.
    nesterov : bool
        Needs ``momentum > 0`` and ``dampening == 0``.
    weight_decay : float
        ``lambda`` >= 0 (L2 penalty added to the gradient).
    dampening : float
        ``tau`` >= 0 (PyTorch's; 0 by default).
    """

    _required_state_keys = ("momentum_buffer",)
    _all_state_keys = ("momentum_buffer",)

    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, dampening: float = 0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov})

    def _check_hyper(self, h):
        who = "SGD"
        out = {"lr": _number("lr", h["lr"], who), "momentum": _number("momentum", h["momentum"], who),
               "dampening": _number("dampening", h["dampening"], who),
               "weight_decay": _number("weight_decay", h["weight_decay"], who)}
        if not isinstance(h["nesterov"], (bool, np.bool_)):
            raise TypeError(f"SGD: nesterov must be a bool, got {h['nesterov']!r}")
        out["nesterov"] = bool(h["nesterov"])
        if out["nesterov"] and (out["momentum"] <= 0 or out["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires momentum > 0 and dampening == 0")
        return out

    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        h = self.hyper
        lr, mu, damp, wd, nesterov = h["lr"], h["momentum"], h["dampening"], h["weight_decay"], h["nesterov"]
        self.step_count += 1
        for _, x, g, st in self._updates(wd):
            if mu != 0:
                buf = st.get("momentum_buffer")
                if buf is None:
                    buf = st["momentum_buffer"] = g.copy()
                else:
                    buf *= mu
                    buf += g if damp == 0 else (1.0 - damp) * g
                g = g + mu * buf if nesterov else buf
            x -= lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction; ``weight_decay`` is L2 (not AdamW).

    As documented for ``torch.optim.Adam``, at the parameter's step ``t``:

    .. math::

        g &\\leftarrow g + \\lambda p  \\qquad (\\lambda \\ne 0) \\\\
        m &\\leftarrow \\beta_1 m + (1 - \\beta_1) g \\\\
        v &\\leftarrow \\beta_2 v + (1 - \\beta_2) g^2 \\\\
        \\hat m &= m / (1 - \\beta_1^t), \\quad \\hat v = v / (1 - \\beta_2^t) \\\\
        p &\\leftarrow p - \\gamma \\, \\hat m / (\\sqrt{\\hat v} + \\epsilon)

    computed as PyTorch does: ``denom = sqrt(v) / sqrt(1 - beta2^t) + eps``,
    ``p -= (lr / (1 - beta1^t)) * m / denom``. At ``t = 1`` the update is
    ``-lr * g / (|g| + eps)``, about ``-lr * sign(g)``.

    Parameters
    ----------
    params : iterable of Tensor
    lr : float
        ``gamma`` >= 0.
    betas : (float, float)
        Each in [0, 1).
    eps : float
        >= 0.
    weight_decay : float
        ``lambda`` >= 0.

    Notes
    -----
    The state keys are ``step``, ``exp_avg`` (m) and ``exp_avg_sq`` (v), as in
    PyTorch; the hyperparameters are stored as ``beta1`` and ``beta2``.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}") from None
        super().__init__(params, {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps,
                                  "weight_decay": weight_decay})

    def _check_hyper(self, h):
        who = "Adam"
        return {"lr": _number("lr", h["lr"], who),
                "beta1": _number("beta1 (betas[0])", h["beta1"], who, 0.0, 1.0, high_open=True),
                "beta2": _number("beta2 (betas[1])", h["beta2"], who, 0.0, 1.0, high_open=True),
                "eps": _number("eps", h["eps"], who),
                "weight_decay": _number("weight_decay", h["weight_decay"], who)}

    @property
    def betas(self) -> tuple:
        return self.hyper["beta1"], self.hyper["beta2"]

    _required_state_keys = ("step", "exp_avg", "exp_avg_sq")
    _all_state_keys = ("step", "exp_avg", "exp_avg_sq")

    def step(self) -> None:
        """One update of every parameter that has a gradient.

        On CuPy each parameter takes one fused kernel (:func:`scratchgan.kernels.adam_update`)
        that reads ``t`` and ``lr`` from device memory, so the step can be captured in a
        CUDA graph (:mod:`scratchgan.cuda_graph`) and replayed with the right bias corrections.
        """
        h = self.hyper
        lr, b1, b2, eps, wd = h["lr"], h["beta1"], h["beta2"], h["eps"], h["weight_decay"]
        one_minus_b1, one_minus_b2 = 1.0 - b1, 1.0 - b2
        self.step_count += 1
        for i, x, g, st in self._updates():
            xp = backend.array_module(x)
            if not st:
                st["step"] = 0
                st["exp_avg"] = xp.zeros_like(x)
                st["exp_avg_sq"] = xp.zeros_like(x)
            t = st["step"] = st["step"] + 1
            m, v = st["exp_avg"], st["exp_avg_sq"]
            if xp is not np:
                kernels.adam_update(x, g, m, v, self._device_step(i, t, xp), self._device_lr_array(xp),
                                    b1, b2, eps, wd)
                continue
            if wd != 0:
                g = g + wd * x
            # every intermediate goes through one scratch buffer: no allocation per step
            tmp = self._scratch.get(i)
            if tmp is None or tmp.shape != x.shape or tmp.dtype != x.dtype:
                tmp = self._scratch[i] = xp.empty_like(x)
            m *= b1
            xp.multiply(g, one_minus_b1, out=tmp)
            m += tmp
            v *= b2
            xp.multiply(g, g, out=tmp)
            tmp *= one_minus_b2
            v += tmp
            bias_correction1 = 1.0 - b1 ** t
            bias_correction2_sqrt = math.sqrt(1.0 - b2 ** t)
            denom = xp.sqrt(v, out=tmp)
            denom /= bias_correction2_sqrt
            denom += eps
            update = xp.divide(m, denom, out=tmp)
            update *= lr / bias_correction1
            x -= update

    # ---- device-side counters (CuPy): what a replayed CUDA graph must see change
    def _device_step(self, i: int, t: int, xp):
        """Parameter ``i``'s step count on the GPU, advanced by one (a kernel, so replays advance it too)."""
        steps = self.__dict__.setdefault("_device_steps", {})
        counter = steps.get(i)
        if counter is None:
            counter = steps[i] = xp.full((1,), t - 1, dtype=xp.float64)
        counter += 1
        return counter

    def _device_lr_array(self, xp):
        """The learning rate as a one-element device array, refreshed when ``lr`` changed."""
        lr = self.hyper["lr"]
        current = self.__dict__.get("_device_lr")
        if current is None or current[1] != lr:
            self._device_lr = (xp.full((1,), lr, dtype=xp.float64), lr)
        return self._device_lr[0]

    @property
    def lr(self) -> float:
        """The learning rate (settable, validated).

        On CuPy the new value is also written to the device copy the fused
        kernel reads, so it reaches a captured CUDA graph's next replay.
        """
        return self.hyper["lr"]

    @lr.setter
    def lr(self, value) -> None:
        self.hyper["lr"] = _number("lr", value, type(self).__name__)
        current = self.__dict__.get("_device_lr")
        if current is not None:
            current[0].fill(self.hyper["lr"])
            self._device_lr = (current[0], self.hyper["lr"])

    def state_dict(self) -> dict:
        # after graph replays the host step counts are behind: the GPU holds the true ones
        for i, counter in self.__dict__.get("_device_steps", {}).items():
            if self.state[i]:
                self.state[i]["step"] = int(round(float(counter[0])))
        return super().state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.__dict__.pop("_device_steps", None)  # rebuilt from the loaded counts at the next step


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), as documented for ``torch.optim.RMSprop``.

    .. math::

        g &\\leftarrow g + \\lambda p  \\qquad (\\lambda \\ne 0) \\\\
        v &\\leftarrow \\alpha v + (1 - \\alpha) g^2 \\\\
        \\tilde v &= v - \\bar g^2, \\ \\bar g \\leftarrow \\alpha \\bar g + (1 - \\alpha) g
            \\quad \\text{(centered), else } \\tilde v = v \\\\
        b &\\leftarrow \\mu b + g / (\\sqrt{\\tilde v} + \\epsilon), \\quad p \\leftarrow p - \\gamma b
            \\quad (\\mu > 0, \\ b_0 = 0) \\\\
        p &\\leftarrow p - \\gamma g / (\\sqrt{\\tilde v} + \\epsilon) \\quad (\\mu = 0)

    Parameters
    ----------
    params : iterable of Tensor
    lr : float
        ``gamma`` >= 0.
    alpha : float
        Smoothing constant in [0, 1].
    eps : float
        >= 0.
    momentum : float
        ``mu`` >= 0.
    weight_decay : float
        ``lambda`` >= 0.
    centered : bool
        Normalize by an estimate of the variance instead of the second moment.

    Notes
    -----
    State keys: ``step``, ``square_avg`` (v), ``momentum_buffer`` (when
    momentum > 0) and ``grad_avg`` (when centered), as in PyTorch.
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
                 weight_decay: float = 0.0, centered: bool = False):
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, "momentum": momentum,
                                  "weight_decay": weight_decay, "centered": centered})

    def _check_hyper(self, h):
        who = "RMSprop"
        if not isinstance(h["centered"], (bool, np.bool_)):
            raise TypeError(f"RMSprop: centered must be a bool, got {h['centered']!r}")
        return {"lr": _number("lr", h["lr"], who), "alpha": _number("alpha", h["alpha"], who, 0.0, 1.0),
                "eps": _number("eps", h["eps"], who), "momentum": _number("momentum", h["momentum"], who),
                "weight_decay": _number("weight_decay", h["weight_decay"], who), "centered": bool(h["centered"])}

    _required_state_keys = ("step", "square_avg")
    _all_state_keys = ("step", "square_avg", "momentum_buffer", "grad_avg")

    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        h = self.hyper
        lr, alpha, eps, mu = h["lr"], h["alpha"], h["eps"], h["momentum"]
        wd, centered = h["weight_decay"], h["centered"]
        one_minus_alpha = 1.0 - alpha
        self.step_count += 1
        for _, x, g, st in self._updates(wd):
            xp = backend.array_module(x)
            if not st:
                st["step"] = 0
                st["square_avg"] = xp.zeros_like(x)
            st["step"] += 1
            v = st["square_avg"]
            v *= alpha
            v += one_minus_alpha * (g * g)
            if centered:
                ga = st.get("grad_avg")
                if ga is None:
                    ga = st["grad_avg"] = xp.zeros_like(x)
                ga *= alpha
                ga += one_minus_alpha * g
                denom = xp.sqrt(v - ga * ga)
            else:
                denom = xp.sqrt(v)
            denom += eps
            if mu > 0:
                buf = st.get("momentum_buffer")
                if buf is None:
                    buf = st["momentum_buffer"] = xp.zeros_like(x)
                buf *= mu
                buf += g / denom
                x -= lr * buf
            else:
                update = g / denom
                update *= lr
                x -= update
