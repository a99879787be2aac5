"""The optimizers' common part: parameter groups, per-parameter state, the state round trip.

An optimizer (:mod:`scratchgan.optim.optimizers`) is this base class plus an
update rule of one parameter (:mod:`scratchgan.optim.rules`) and the list of
its hyperparameters. :meth:`Optimizer.step` applies the rule to every
parameter that has a gradient, group by group, writing ``p.data`` in place:
nothing is recorded in the autograd graph, and the parameters keep their
identity. Parameters whose ``.grad`` is None are skipped (their state,
including their own step count, is untouched), as in PyTorch.

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

import numpy as np

from .. import backend
from ..autograd.engine import enable_grad
from ..autograd.tensor import Tensor
from ..backend.validate import count, number
from ..nn.module import _reset_grad

__all__ = ["Optimizer"]

_MISSING = object()

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
    """A parameter group: a plain dict to its user (PyTorch's), which tells its companion of each write.

    ``companion`` is None, or an object that an acceleration keeps with the
    group (:mod:`scratchgan.accel.optim_kernels`: the group's learning rate in
    GPU memory, which a captured CUDA graph reads). Its ``written(group)`` is
    called after every write into the group, so that a new ``"lr"`` reaches
    the graph's next replay too.
    """

    companion = None  # a class default: also what a group that copy or pickle is rebuilding has

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        if self.companion is not None:
            self.companion.written(self)

    def update(self, *args, **kwargs):
        super().update(*args, **kwargs)
        if self.companion is not None:
            self.companion.written(self)

    def __ior__(self, other):
        self.update(other)
        return self


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

    #: the update of one parameter, ``rule(p, g, state, **hyperparameters)``: one of :mod:`.rules`
    _rule = None

    def _step(self) -> None:
        """One update of every parameter that has a gradient."""
        self.step_count += 1
        for group, hyper, start in self._groups():
            self._update_group(group, hyper, self._updates(group, start))

    def _update_group(self, group, hyper: dict, updates) -> None:
        """The rule on each ``(index, p, g, state)`` of a group (Adam hands the group to its definition instead)."""
        rule = self._rule
        for _, p, g, state in updates:
            rule(p, g, state, **hyper)

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
        The gradient is the parameter's own ``.grad`` array: each rule adds
        its weight decay with :func:`scratchgan.optim.rules.l2_decayed`.
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
        state_dict = self._checked_layout(state_dict, who)
        new_hyper = self._loaded_hyper(state_dict["param_groups"], who)
        params = self.params
        new_state: list[dict] = [{} for _ in params]
        for key, st in dict(state_dict["state"]).items():
            i = self._state_index(key, len(params), who)
            new_state[i] = self._loaded_entry(key, st, params[i], i, who)
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

    def _checked_layout(self, state_dict, who: str) -> dict:
        """The state dict in today's format, its keys and optimizer type checked."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"{who}: expected a dict, got {type(state_dict).__name__}")
        if set(state_dict) == {"type", "step", "num_params", "hyper", "state"}:
            state_dict = self._upgrade_state_dict(state_dict)
        required = {"type", "step", "state", "param_groups"}
        if set(state_dict) != required:
            raise ValueError(f"{who}: keys {sorted(state_dict)} do not match the expected {sorted(required)}")
        if state_dict["type"] != type(self).__name__:
            raise ValueError(f"{who}: the state is for a {state_dict['type']} optimizer, not {type(self).__name__}")
        return state_dict

    def _loaded_hyper(self, saved_groups, who: str) -> list[dict]:
        """Each saved group's hyperparameters, validated, once its parameters are found to match this optimizer's."""
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
        n = len(self.params)
        if indices != list(range(n)):
            raise ValueError(f"{who}: the groups' 'params' must number the parameters 0..{n - 1} in "
                             f"order, got {indices}")
        return new_hyper

    @staticmethod
    def _state_index(key, n: int, who: str) -> int:
        """The parameter index a ``"state"`` key names (``"3"`` -> 3), checked to be in ``0..n-1``."""
        try:
            i = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"{who}: state key {key!r} is not a parameter index") from None
        if str(i) != str(key) or not 0 <= i < n:
            raise ValueError(f"{who}: state key {key!r} is not an index in 0..{n - 1}")
        return i

    def _loaded_entry(self, key, st, p: Tensor, i: int, who: str) -> dict:
        """Parameter ``i``'s saved state, checked and copied onto its backend in its dtype."""
        required_keys = set(self._required_state_keys)
        allowed = required_keys | set(self._all_state_keys)
        if not required_keys <= set(st) <= allowed:
            raise ValueError(f"{who}: state of parameter {i} has keys {sorted(st)}; it needs "
                             f"{sorted(required_keys)} and may also hold {sorted(allowed - required_keys)}")
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
        return entry

    def __repr__(self) -> str:
        def hyper(group):
            return ", ".join(f"{k}={group.get(k)}" for k in self._hyper_keys)

        if len(self.param_groups) == 1:
            groups = hyper(self.param_groups[0])
        else:
            groups = "; ".join(f"group {i}: {hyper(g)}" for i, g in enumerate(self.param_groups))
        return f"{type(self).__name__}({groups}; {len(self.state)} params, step {self.step_count})"
