"""Optimizers: SGD (with momentum / Nesterov), Adam and RMSprop, with PyTorch's parameter groups.

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

Parameter groups
----------------
As in PyTorch, ``params`` is either an iterable of tensors or an iterable of
dicts, each a *parameter group*: ``{"params": [...], "lr": 1e-4, ...}``.
A group's hyperparameters default to the constructor's (``opt.defaults``);
``opt.param_groups`` is the list of groups, plain dicts a user may edit
between steps (``for g in opt.param_groups: g["lr"] = 0.1`` changes the next
step; the values are checked then). :meth:`Optimizer.add_param_group` adds a
group. A parameter may belong to one group only. The hyperparameter names are
PyTorch's (``betas`` for Adam); a name the optimizer does not know is an error.

State round trip
----------------
:meth:`Optimizer.state_dict` follows PyTorch's structure, with string keys
(no ``"/"``) and leaves that are host NumPy arrays or Python scalars, which
:mod:`scratchgan.app.checkpoint` can store::

    {"type": "Adam", "step": 12,
     "state": {"0": {"step": 12, "exp_avg": array, "exp_avg_sq": array}, ...},
     "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0.0,
                       "params": [0, 1, 2, 3]}, ...]}

Parameters are numbered ``0..n-1`` across the groups in order (as PyTorch
does); ``"state"`` holds an entry for each parameter that has been updated,
``"step"`` counts :meth:`Optimizer.step` calls. Each group's hyperparameters
are saved, so a learning rate a schedule changed comes back exactly. Saving
after k steps, loading into a fresh optimizer over parameters with the same
values and running n - k more steps gives bitwise the same parameters as n
steps straight. The format before parameter groups (``"hyper"`` and
``"num_params"`` instead of ``"param_groups"``) still loads.
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..accel import kernels
from ..autograd.engine import enable_grad
from ..nn.module import _reset_grad
from ..autograd.tensor import Tensor
from ..backend.validate import boolean, count, number

__all__ = ["SGD", "Adam", "Optimizer", "RMSprop"]

_MISSING = object()


def _l2_decayed(g, p, weight_decay: float):
    """The gradient with L2 weight decay: ``g + weight_decay * p``, in a new array (``g`` itself when 0).

    The one place the optimizers' array code adds weight decay (as PyTorch's
    optimisers do, before the update rule); the parameter's ``.grad`` is never
    modified. Adam's fused CuPy kernel adds the same term inside the kernel
    (:func:`scratchgan.accel.kernels.adam_update`), checked bitwise against this
    path by the kernel's NumPy reference.
    """
    return g + weight_decay * p if weight_decay != 0 else g


def _host(value) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, (np.ndarray, np.generic)):
        return np.asarray(value)
    if hasattr(value, "__cuda_array_interface__"):
        return backend.to_numpy(value)
    raise TypeError(f"expected an array, got {type(value).__name__}")


def _snapshot(value):
    """A value to compare with later (lists as tuples: a list can change in place)."""
    return tuple(value) if isinstance(value, list) else value


class _ParamGroup(dict):
    """A parameter group: a plain dict to its user (PyTorch's), with one addition.

    Adam on CuPy reads a group's learning rate from a one-element device array
    (so that a captured CUDA graph sees changes); a new ``"lr"`` written into the
    group is copied there at once, so it reaches the graph's next replay too.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._device_lr = None  # (device array, the lr it holds), made by Adam's first CuPy step

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        if key == "lr":
            self._sync_device_lr()

    def update(self, *args, **kwargs):
        super().update(*args, **kwargs)
        self._sync_device_lr()

    def __ior__(self, other):
        self.update(other)
        return self

    def _sync_device_lr(self) -> None:
        current = getattr(self, "_device_lr", None)  # absent while copy/pickle rebuild the group
        if current is None:
            return
        try:
            lr = number(self.get("lr"), "lr")
        except (TypeError, ValueError):
            return  # not written: the next step() reports the bad value, a replay keeps the last good one
        if lr != current[1]:
            current[0].fill(lr)
            self._device_lr = (current[0], lr)


class Optimizer:
    """Base class: parameter groups, per-parameter state and the state round trip.

    Parameters
    ----------
    params : iterable of Tensor, or iterable of dict
        Leaf floating tensors (e.g. ``model.parameters()``), each at most
        once; or parameter groups, dicts with a ``"params"`` entry (a tensor
        or an iterable of tensors) and any of the optimizer's hyperparameters.
    defaults : dict
        The constructor's hyperparameters: what a group does not set.

    Attributes
    ----------
    param_groups : list of dict
        One dict per group: ``"params"`` (a list of tensors) and every
        hyperparameter, read at every :meth:`step` (so edits take effect at
        the next step).
    defaults : dict
        The constructor's hyperparameters.
    state : list of dict
        Per-parameter state, in the order of the parameters across the groups
        (e.g. ``{"step": 3, "exp_avg": ..., "exp_avg_sq": ...}``), empty until
        the parameter's first update.
    step_count : int
        Number of :meth:`step` calls.
    """

    _hyper_keys: tuple = ()  # the hyperparameters, in PyTorch's order
    _required_state_keys: tuple = ()  # entries every non-empty per-parameter state holds
    _all_state_keys: tuple = ()  # every entry a state may hold (some only under some hyperparameters)

    def __init__(self, params, defaults: dict):
        who = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(f"{who}: params must be an iterable of Tensors (e.g. model.parameters()) or of "
                            "parameter groups (dicts), got a single Tensor; wrap it in a list")
        if isinstance(params, dict):
            raise TypeError(f"{who}: params must be an iterable of Tensors or of parameter groups (dicts), got one "
                            "dict; wrap the group in a list")
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{who}: params must be an ordered collection (a list), not a set: a set's order "
                            "changes from run to run, and the state is matched to the parameters by position")
        self.defaults: dict = self._check_hyper(dict(defaults), who)
        self.param_groups: list[dict] = []
        self.state: list[dict] = []
        self.step_count: int = 0
        self._scratch: dict = {}  # per-parameter work buffers (not state: never saved)
        self._checked: dict = {}  # group index -> (group, snapshot of its values, validated values)
        groups = list(params)
        if not groups:
            raise ValueError(f"{who}: got an empty parameter list")
        are_dicts = [isinstance(g, dict) for g in groups]
        if not any(are_dicts):
            groups = [{"params": groups}]
        elif not all(are_dicts):
            raise TypeError(f"{who}: params mixes Tensors and parameter groups (dicts); give a list of one kind")
        for group in groups:
            self.add_param_group(group)

    # ---- to be provided by subclasses
    def _check_hyper(self, hyper: dict, who: str) -> dict:
        """Validate a full set of hyperparameters; return them as Python scalars, in ``_hyper_keys`` order."""
        raise NotImplementedError

    def _step(self) -> None:
        """One update of every parameter that has a gradient."""
        raise NotImplementedError

    # ---- parameter groups
    @property
    def params(self) -> list:
        """Every parameter, across the groups in order (the numbering of :attr:`state` and of the state dict)."""
        return [p for group in self.param_groups for p in group["params"]]

    def add_param_group(self, param_group: dict) -> None:
        """Add a parameter group (``torch.optim.Optimizer.add_param_group``).

        Parameters
        ----------
        param_group : dict
            ``"params"``: a tensor or an iterable of tensors, none of them in
            another group; any hyperparameter of this optimizer (the others
            come from :attr:`defaults`).

        Raises
        ------
        TypeError
            For a group that is not a dict, a parameter that is not a floating
            Tensor, or a set of parameters (unordered).
        ValueError
            For a group without ``"params"``, an unknown hyperparameter, an
            invalid value, a parameter that is not a leaf, or one already in a
            group (this one or another).
        """
        gi = len(self.param_groups)
        who = f"{type(self).__name__}: parameter group {gi}"
        if not isinstance(param_group, dict):
            raise TypeError(f"{who} must be a dict with a 'params' entry, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{who} has no 'params' entry (the tensors it holds)")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{who}: 'params' must be an ordered collection (a list), not a set")
        else:
            try:
                params = list(params)
            except TypeError:
                raise TypeError(f"{who}: 'params' must be a Tensor or an iterable of Tensors, "
                                f"got {type(params).__name__}") from None
        unknown = sorted(set(param_group) - {"params"} - set(self._hyper_keys), key=str)
        if unknown:
            raise ValueError(f"{who}: unknown hyperparameter(s) {unknown}; {type(self).__name__} takes "
                             f"{list(self._hyper_keys)}")
        taken = {id(p) for group in self.param_groups for p in group["params"]}
        seen: set = set()
        for j, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{who}: parameter {j} is a {type(p).__name__}, not a Tensor")
            if p.dtype.kind != "f":
                raise TypeError(f"{who}: parameter {j} has dtype {p.dtype}; only floating tensors")
            if not p.is_leaf:
                raise ValueError(f"{who}: parameter {j} is not a leaf tensor (it was computed by an op)")
            if id(p) in seen:
                raise ValueError(f"{who}: parameter {j} appears more than once")
            if id(p) in taken:
                raise ValueError(f"{who}: parameter {j} appears in more than one parameter group")
            seen.add(id(p))
        hyper = self._check_hyper({k: param_group.get(k, self.defaults[k]) for k in self._hyper_keys}, who)
        group = _ParamGroup(params=params)
        group.update(hyper)
        self.param_groups.append(group)
        self.state.extend({} for _ in params)

    def _hyper(self, gi: int, group) -> dict:
        """Group ``gi``'s hyperparameters, validated (again only when they changed since the last step)."""
        # the size too: a key added by hand (a typo such as "learning_rate") is then reported
        snapshot = (len(group),) + tuple(_snapshot(group.get(k, _MISSING)) for k in self._hyper_keys)
        cached = self._checked.get(gi)
        if cached is not None and cached[0] is group:
            try:
                if cached[1] == snapshot:
                    return cached[2]
            except (TypeError, ValueError):  # e.g. an array put in a group: compare fails, check it below
                pass
        who = f"{type(self).__name__}: param_groups[{gi}]"
        missing = [k for k, v in zip(self._hyper_keys, snapshot[1:]) if v is _MISSING]
        if missing:
            raise ValueError(f"{who} has no {missing}")
        unknown = sorted(set(group) - {"params"} - set(self._hyper_keys), key=str)
        if unknown:
            raise ValueError(f"{who}: unknown hyperparameter(s) {unknown}; {type(self).__name__} takes "
                             f"{list(self._hyper_keys)}")
        hyper = self._check_hyper({k: group[k] for k in self._hyper_keys}, who)
        self._checked[gi] = (group, snapshot, hyper)
        return hyper

    def _groups(self):
        """Yield ``(group, validated hyperparameters, index of its first parameter)`` for every group."""
        start = 0
        for gi, group in enumerate(self.param_groups):
            if not isinstance(group, _ParamGroup):
                if not isinstance(group, dict) or "params" not in group:
                    raise TypeError(f"{type(self).__name__}: param_groups[{gi}] is not a parameter group "
                                    "(a dict with 'params'); add groups with add_param_group")
                group = self.param_groups[gi] = _ParamGroup(group)
            h = self._hyper(gi, group)
            yield group, h, start
            start += len(group["params"])
        if start != len(self.state):
            raise RuntimeError(f"{type(self).__name__}: the parameter groups now hold {start} parameters, but "
                               f"the optimizer was given {len(self.state)}; add parameters with add_param_group")

    def _single_group(self) -> dict:
        if len(self.param_groups) != 1:
            raise ValueError(f"{type(self).__name__} has {len(self.param_groups)} parameter groups, each with its "
                             "own lr; read or set opt.param_groups[i]['lr'] instead of opt.lr")
        return self.param_groups[0]

    @property
    def lr(self) -> float:
        """The learning rate of the one parameter group (settable, validated).

        With several groups this is an error: use ``param_groups[i]["lr"]``.
        """
        return self._single_group()["lr"]

    @lr.setter
    def lr(self, value) -> None:
        group = self._single_group()
        group["lr"] = number(value, "lr", type(self).__name__)

    # ---- steps
    def step(self, closure=None):
        """One update of every parameter that has a gradient (``torch.optim.Optimizer.step``).

        ``closure``, when given, is called first with gradients enabled (it
        should clear the gradients, compute the loss, call backward and return
        the loss), and its result is returned, as in PyTorch.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._step()
        return loss

    def _updates(self, group, start: int):
        """Yield ``(index, param array, grad array, state)`` for every parameter of ``group`` with a gradient.

        ``index`` counts across the groups (``start`` is the group's first).
        The gradient is the parameter's own ``.grad`` array: each optimizer
        adds its weight decay with :func:`_l2_decayed`.
        """
        state = self.state
        for i, p in enumerate(group["params"], start):
            if p.grad is None:
                continue
            yield i, p.data, p.grad.data, state[i]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of every parameter (``torch.optim.Optimizer.zero_grad``).

        With ``set_to_none=True`` (the default, as in PyTorch) ``.grad``
        becomes None; with False each existing gradient becomes zeros of its
        shape and dtype (in place where it is a plain array of its own).
        """
        for group in self.param_groups:
            for p in group["params"]:
                _reset_grad(p, set_to_none)

    # ---- state round trip
    def state_dict(self) -> dict:
        """A nested dict of host NumPy arrays (copies) and Python scalars; see the module docstring."""
        state = {}
        for i, st in enumerate(self.state):
            if st:
                state[str(i)] = {k: (v if isinstance(v, (int, float)) else np.array(backend.to_numpy(v), copy=True))
                                 for k, v in st.items()}
        groups = []
        index = 0
        for group, h, _ in self._groups():
            n = len(group["params"])
            groups.append({**h, "params": list(range(index, index + n))})
            index += n
        return {"type": type(self).__name__, "step": self.step_count, "state": state, "param_groups": groups}

    def _upgrade_state_dict(self, state_dict: dict) -> dict:
        """The state-dict format from before parameter groups (``hyper``, ``num_params``) in today's."""
        who = f"{type(self).__name__}.load_state_dict"
        n = count(state_dict["num_params"], "num_params", who)
        hyper = dict(state_dict["hyper"])
        return {"type": state_dict["type"], "step": state_dict["step"], "state": state_dict["state"],
                "param_groups": [{**self._upgrade_hyper(hyper), "params": list(range(n))}]}

    def _upgrade_hyper(self, hyper: dict) -> dict:
        return hyper

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the groups' hyperparameters, step counts and per-parameter state (copied).

        The groups must hold as many parameters as those saved, in the same
        order (as in PyTorch). Arrays are copied onto each parameter's backend
        in its dtype. Nothing changes unless every check passes.

        Raises
        ------
        ValueError
            For another optimizer type, another number of groups or of
            parameters in a group, missing or unknown keys or hyperparameters,
            an invalid hyperparameter, or a state array whose shape is not its
            parameter's (both shapes named).
        """
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict):
            raise TypeError(f"{who}: expected a dict, got {type(state_dict).__name__}")
        if set(state_dict) == {"type", "step", "num_params", "hyper", "state"}:
            state_dict = self._upgrade_state_dict(state_dict)
        required = {"type", "step", "state", "param_groups"}
        if set(state_dict) != required:
            raise ValueError(f"{who}: keys {sorted(state_dict)} do not match the expected {sorted(required)}")
        if state_dict["type"] != type(self).__name__:
            raise ValueError(f"{who}: the state is for a {state_dict['type']} optimizer, not {type(self).__name__}")
        saved_groups = state_dict["param_groups"]
        if not isinstance(saved_groups, (list, tuple)):
            raise TypeError(f"{who}: param_groups must be a list, got {type(saved_groups).__name__}")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{who}: the state has {len(saved_groups)} parameter groups, this optimizer has "
                             f"{len(self.param_groups)}")
        new_hyper, indices = [], []
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, dict) or "params" not in saved:
                raise ValueError(f"{who}: param_groups[{gi}] must be a dict with 'params'")
            ids = [count(v, f"param_groups[{gi}]['params'] entry", who) for v in saved["params"]]
            if len(ids) != len(group["params"]):
                raise ValueError(f"{who}: parameter group {gi} has {len(ids)} parameters in the state, "
                                 f"{len(group['params'])} in this optimizer")
            indices.extend(ids)
            keys = set(saved) - {"params"}
            if keys != set(self._hyper_keys):
                raise ValueError(f"{who}: hyperparameters {sorted(keys)} of param_groups[{gi}] do not match the "
                                 f"expected {sorted(self._hyper_keys)}")
            hyper = {k: (saved[k].item() if isinstance(saved[k], (np.ndarray, np.generic)) else saved[k])
                     for k in self._hyper_keys}
            new_hyper.append(self._check_hyper(hyper, f"{who}: param_groups[{gi}]"))
        params = self.params
        if indices != list(range(len(params))):
            raise ValueError(f"{who}: the groups' 'params' must number the parameters 0..{len(params) - 1} in "
                             f"order, got {indices}")
        required_keys = set(self._required_state_keys)
        allowed = required_keys | set(self._all_state_keys)
        new_state: list[dict] = [{} for _ in params]
        for key, st in dict(state_dict["state"]).items():
            try:
                i = int(key)
            except (TypeError, ValueError):
                raise ValueError(f"{who}: state key {key!r} is not a parameter index") from None
            if str(i) != str(key) or not 0 <= i < len(params):
                raise ValueError(f"{who}: state key {key!r} is not an index in 0..{len(params) - 1}")
            if not required_keys <= set(st) <= allowed:
                raise ValueError(f"{who}: state of parameter {i} has keys {sorted(st)}; it needs "
                                 f"{sorted(required_keys)} and may also hold {sorted(allowed - required_keys)}")
            p = params[i]
            xp = backend.array_module(p.data)
            entry = {}
            for name, value in st.items():
                if name == "step":
                    entry[name] = count(value, f"state['{key}']['step']", who)
                    continue
                host = _host(value)
                if host.shape != p.shape:
                    raise ValueError(f"{who}: state['{key}']['{name}'] has shape {host.shape}, "
                                     f"but parameter {i} has shape {p.shape}")
                if host.dtype.kind not in "iuf":
                    raise TypeError(f"{who}: state['{key}']['{name}'] has dtype {host.dtype}")
                entry[name] = xp.array(host, dtype=p.dtype)  # a copy, never aliasing the caller's array
            new_state[i] = entry
        step_count = count(state_dict["step"], "step", who)
        groups = []
        for group, hyper in zip(self.param_groups, new_hyper):
            new = _ParamGroup(params=list(group["params"]))
            new.update(hyper)
            groups.append(new)
        self.param_groups = groups
        self.state = new_state
        self.step_count = step_count
        self._checked = {}

    def __repr__(self) -> str:
        def hyper(group):
            return ", ".join(f"{k}={group.get(k)}" for k in self._hyper_keys)

        if len(self.param_groups) == 1:
            groups = hyper(self.param_groups[0])
        else:
            groups = "; ".join(f"group {i}: {hyper(g)}" for i, g in enumerate(self.param_groups))
        return f"{type(self).__name__}({groups}; {len(self.state)} params, step {self.step_count})"


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
    params : iterable of Tensor, or iterable of dict (parameter groups)
    lr : float
        ``gamma`` >= 0 (1e-3 by default, as in PyTorch).
    momentum : float
        ``mu`` >= 0.
    dampening : float
        ``tau`` >= 0 (PyTorch's; 0 by default).
    weight_decay : float
        ``lambda`` >= 0 (L2 penalty added to the gradient).
    nesterov : bool
        Needs ``momentum > 0`` and ``dampening == 0``.

    The arguments come in ``torch.optim.SGD``'s order, and a group may set
    any of ``lr``, ``momentum``, ``dampening``, ``weight_decay``, ``nesterov``.
    """

    _hyper_keys = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
    _required_state_keys = ("momentum_buffer",)
    _all_state_keys = ("momentum_buffer",)

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov})

    def _check_hyper(self, h, who):
        out = {"lr": number(h["lr"], "lr", who), "momentum": number(h["momentum"], "momentum", who),
               "dampening": number(h["dampening"], "dampening", who),
               "weight_decay": number(h["weight_decay"], "weight_decay", who),
               "nesterov": boolean(h["nesterov"], "nesterov", who)}
        if out["nesterov"] and (out["momentum"] <= 0 or out["dampening"] != 0):
            raise ValueError(f"{who}: Nesterov momentum requires momentum > 0 and dampening == 0")
        return out

    def _step(self) -> None:
        self.step_count += 1
        for group, h, start in self._groups():
            lr, mu, damp, wd, nesterov = h["lr"], h["momentum"], h["dampening"], h["weight_decay"], h["nesterov"]
            for _, x, g, st in self._updates(group, start):
                g = _l2_decayed(g, x, wd)
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
    params : iterable of Tensor, or iterable of dict (parameter groups)
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
    The state keys are ``step``, ``exp_avg`` (m) and ``exp_avg_sq`` (v), and
    a group's hyperparameters ``lr``, ``betas``, ``eps``, ``weight_decay``,
    as in PyTorch.
    """

    _hyper_keys = ("lr", "betas", "eps", "weight_decay")
    _required_state_keys = ("step", "exp_avg", "exp_avg_sq")
    _all_state_keys = ("step", "exp_avg", "exp_avg_sq")

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    def _check_hyper(self, h, who):
        betas = h["betas"]
        if isinstance(betas, np.ndarray):
            betas = betas.tolist()
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"{who}: betas must be a pair (beta1, beta2), got {betas!r}") from None
        return {"lr": number(h["lr"], "lr", who),
                "betas": (number(beta1, "beta1 (betas[0])", who, 0.0, 1.0, high_open=True),
                          number(beta2, "beta2 (betas[1])", who, 0.0, 1.0, high_open=True)),
                "eps": number(h["eps"], "eps", who),
                "weight_decay": number(h["weight_decay"], "weight_decay", who)}

    def _upgrade_hyper(self, hyper: dict) -> dict:
        if "beta1" in hyper and "beta2" in hyper:  # the names before parameter groups
            hyper = dict(hyper)
            hyper["betas"] = (hyper.pop("beta1"), hyper.pop("beta2"))
        return hyper

    def _step(self) -> None:
        """One update of every parameter that has a gradient.

        On CuPy each parameter takes one fused kernel (:func:`scratchgan.accel.kernels.adam_update`)
        that reads ``t`` and its group's ``lr`` from device memory, so the step can be captured
        in a CUDA graph (:mod:`scratchgan.accel.cuda_graph`) and replayed with the right bias corrections.
        """
        self.step_count += 1
        for group, h, start in self._groups():
            lr, (b1, b2), eps, wd = h["lr"], h["betas"], h["eps"], h["weight_decay"]
            one_minus_b1, one_minus_b2 = 1.0 - b1, 1.0 - b2
            for i, x, g, st in self._updates(group, start):
                xp = backend.array_module(x)
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = xp.zeros_like(x)
                    st["exp_avg_sq"] = xp.zeros_like(x)
                t = st["step"] = st["step"] + 1
                m, v = st["exp_avg"], st["exp_avg_sq"]
                if xp is not np:
                    kernels.adam_update(x, g, m, v, self._device_step(i, t, xp), self._device_lr_array(group, lr, xp),
                                        b1, b2, eps, wd)
                    continue
                g = _l2_decayed(g, x, wd)
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

    @staticmethod
    def _device_lr_array(group: _ParamGroup, lr: float, xp):
        """The group's learning rate as a one-element device array.

        The array lives with the group: writing ``group["lr"]`` (or ``opt.lr``)
        fills it at once, so the new value reaches a captured CUDA graph's next
        replay; an eager step refills it when it is out of date.
        """
        current = getattr(group, "_device_lr", None)
        if current is None:
            current = group._device_lr = (xp.full((1,), lr, dtype=xp.float64), lr)
        elif current[1] != lr:
            current[0].fill(lr)
            current = group._device_lr = (current[0], lr)
        return current[0]

    def state_dict(self) -> dict:
        # after graph replays the host step counts are behind: the GPU holds the true ones
        counters = {i: c for i, c in self.__dict__.get("_device_steps", {}).items() if self.state[i]}
        if counters:  # one read for all of them
            xp = backend.array_module(next(iter(counters.values())))
            values = backend.to_host(xp.concatenate(list(counters.values())), "Adam.state_dict's step counts")
            for i, value in zip(counters, values.tolist()):
                self.state[i]["step"] = int(round(value))
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
    params : iterable of Tensor, or iterable of dict (parameter groups)
    lr : float
        ``gamma`` >= 0.
    alpha : float
        Smoothing constant in [0, 1].
    eps : float
        >= 0.
    weight_decay : float
        ``lambda`` >= 0.
    momentum : float
        ``mu`` >= 0.
    centered : bool
        Normalize by an estimate of the variance instead of the second moment.

    Notes
    -----
    The arguments come in ``torch.optim.RMSprop``'s order. State keys:
    ``step``, ``square_avg`` (v), ``momentum_buffer`` (when momentum > 0) and
    ``grad_avg`` (when centered), as in PyTorch.
    """

    _hyper_keys = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")
    _required_state_keys = ("step", "square_avg")
    _all_state_keys = ("step", "square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False):
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
                                  "momentum": momentum, "centered": centered})

    def _check_hyper(self, h, who):
        return {"lr": number(h["lr"], "lr", who), "alpha": number(h["alpha"], "alpha", who, 0.0, 1.0),
                "eps": number(h["eps"], "eps", who), "weight_decay": number(h["weight_decay"], "weight_decay", who),
                "momentum": number(h["momentum"], "momentum", who),
                "centered": boolean(h["centered"], "centered", who)}

    def _step(self) -> None:
        self.step_count += 1
        for group, h, start in self._groups():
            lr, alpha, eps, mu = h["lr"], h["alpha"], h["eps"], h["momentum"]
            wd, centered = h["weight_decay"], h["centered"]
            one_minus_alpha = 1.0 - alpha
            for _, x, g, st in self._updates(group, start):
                g = _l2_decayed(g, x, wd)
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
