"""Op trace and profile: where a training step's time goes, op by op.

::

    with sg.profile() as prof:
        train_step()
    print(prof.table(sort_by="time", top=20))

While a profile is on, the engine calls it at the end of every op (from
:func:`scratchgan.autograd.graph.make_result`) and around every backward rule (from
:func:`scratchgan.autograd.walk.run_backward`); it also wraps ``Optimizer.step`` and
``Optimizer.zero_grad``, as ``torch.profiler`` records ``Optimizer.step``. When
no profile is on, nothing of this runs: ``make_result`` reads one switch it
read before (``engine._mode.watch``, which anomaly mode also sets), and the
optimizers are the plain classes.

How the time is split
---------------------
An op has no hook at its start, only at its end, so a **forward op's time**
runs from the end of the previous event to the end of the op: its array work
plus the Python that led to it (a module's ``__call__``, argument checks). A
**backward rule** is timed exactly, from its call to its return; the ops it
runs inside are part of it. **autograd engine** is the rest of each backward
pass: the call of ``backward()``/``grad()``, ordering the graph, adding and
un-broadcasting gradients, accumulating ``.grad``. The optimizer's ``step``
and ``zero_grad`` have rows of their own, and so do the blocks you mark with
:meth:`Profile.record`. Time that ends at none of these (code between the last
op and an optimizer call, or before the profile closes) is the row
``(other python)``. The profiler's own bookkeeping is left out of every row,
so the rows add up to the step's time as it runs without the profile.

On CuPy the profile synchronises the device around every op and rule (only
while it is on), so that each op's kernels are inside its own time.

Phases: ``forward``; ``backward``; ``backward (create_graph)`` (a rule run
while recording the gradient's graph, as a gradient penalty's inner
``grad`` does); ``double backward`` (the rule of a node that was itself
recorded while a gradient's graph was built); ``engine``; ``optimizer``;
``record``; ``python``.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import namedtuple

from .. import backend
from ..autograd.engine import GradGraphParents, _mode, op_name

__all__ = ["OpEvent", "Profile", "profile"]

OpEvent = namedtuple("OpEvent", "name phase inputs outputs dtype backend seconds nbytes")
OpEvent.__doc__ = """One recorded event.

``inputs`` and ``outputs`` are tuples of shapes (None for a gradient not
computed); ``dtype`` a NumPy dtype or None; ``backend`` ``"numpy"``,
``"cupy"`` or None; ``seconds`` its wall time; ``nbytes`` the bytes of its
output (of the gradients it returned, for a rule).
"""

ENGINE = "autograd engine"
OTHER = "(other python)"

_SORT_KEYS = {
    "time": lambda row: -row["seconds"],
    "calls": lambda row: -row["calls"],
    "mean": lambda row: -row["seconds"] / row["calls"],
    "bytes": lambda row: -row["nbytes"],
    "name": lambda row: (row["name"], row["phase"]),
}

_clock = time.perf_counter


class Profile:
    """A record of every op, rule and optimizer call run while it is on (a context manager).

    Parameters
    ----------
    optimizers : bool
        Give ``Optimizer.step`` and ``zero_grad`` rows of their own (the
        methods are wrapped while the profile is on and restored after).

    Attributes
    ----------
    wall : float or None
        Seconds between entering and leaving the ``with`` block (the
        profiler's bookkeeping included).
    """

    def __init__(self, *, optimizers: bool = True):
        self._optimizers = optimizers
        self._raw: list[tuple] = []
        self._restore: list[tuple] = []
        self._depth = 0  # > 0 inside a backward pass: ops there belong to a rule or to the engine
        self._engine = 0.0  # the current backward pass's own time so far
        self._sync = None
        self._start = self._last = 0.0
        self.wall = None

    # ---- the context manager
    def __enter__(self) -> Profile:
        if _mode.observer is not None:
            raise RuntimeError("a profile (or a viz.capture) is already on; they do not nest")
        # only the device needs waiting for; on NumPy an op is done when it returns
        self._sync = backend.synchronize if backend.get_backend() == "cupy" else None
        if self._optimizers:
            self._wrap_optimizers()
        self._synchronize()
        self._start = self._last = _clock()
        _mode.observer = self
        return self

    def __exit__(self, *exc) -> bool:
        _mode.observer = None
        self._synchronize()
        now = _clock()
        self._add(OTHER, "python", (), (), None, None, now - self._last, 0)
        self.wall = now - self._start
        for cls, name, original in reversed(self._restore):
            setattr(cls, name, original)
        self._restore.clear()
        self._depth = 0
        return False

    def _synchronize(self) -> None:
        if self._sync is not None:
            self._sync()

    def _add(self, name, phase, inputs, outputs, dtype, array_type, seconds, nbytes) -> None:
        self._raw.append((name, phase, inputs, outputs, dtype, array_type, seconds, nbytes))

    # ---- the engine's hooks (scratchgan.autograd.engine calls these while the profile is on)
    def on_op(self, out, parents, rule) -> None:
        """The end of an op: its time runs from the end of the previous event."""
        if self._depth:
            return
        self._synchronize()
        now = _clock()
        data = out.data
        # names and shapes only: keeping the tensors would keep a whole run's activations alive
        self._raw.append((rule, "forward", tuple([p.data.shape for p in parents]), (data.shape,), data.dtype,
                          type(data), now - self._last, data.nbytes))
        self._last = _clock()  # the bookkeeping above belongs to no op

    def backward_begin(self, roots, create_graph: bool) -> None:
        """A backward pass starts: the time since the last event (the call, the ordering) is the engine's."""
        self._depth += 1
        if self._depth == 1:
            self._synchronize()
            self._engine = _clock() - self._last
            self._last = _clock()

    def run_rule(self, rule, g, node, needs, create_graph: bool):
        """Run and time one backward rule (the engine's own work since the last rule goes to ``engine``)."""
        if self._depth != 1:  # a backward inside a rule: part of that rule's time
            return rule(g, node, needs)
        self._synchronize()
        start = _clock()
        self._engine += start - self._last
        phase = "double backward" if type(node._parents) is GradGraphParents else "backward"
        if create_graph:
            phase += " (create_graph)"
        start = _clock()
        grads = rule(g, node, needs)
        self._synchronize()
        seconds = _clock() - start
        shapes = tuple([None if pg is None else pg.data.shape for pg in grads])
        nbytes = sum([pg.data.nbytes for pg in grads if pg is not None])
        data = g.data
        # named after the op's rule (node._backward), whichever of its backwards ran (rule.fast or the rule)
        self._raw.append((node._backward, phase, (data.shape,), shapes, data.dtype, type(data), seconds, nbytes))
        self._last = _clock()
        return grads

    def backward_end(self) -> None:
        """A backward pass ends: its engine time becomes one event."""
        self._depth -= 1
        if self._depth == 0:
            self._synchronize()
            self._engine += _clock() - self._last
            self._add(ENGINE, "engine", (), (), None, None, self._engine, 0)
            self._last = _clock()

    # ---- regions: optimizer calls and record()
    def _region_begin(self) -> None:
        self._synchronize()
        now = _clock()
        if not self._depth:
            self._add(OTHER, "python", (), (), None, None, now - self._last, 0)
        self._last = _clock()

    def _region_end(self, name: str, phase: str) -> None:
        self._synchronize()
        now = _clock()
        if not self._depth:
            self._add(name, phase, (), (), None, None, now - self._last, 0)
        self._last = _clock()

    @contextlib.contextmanager
    def record(self, name: str):
        """Give the block's own time (what its ops do not take) a row ``name``, as ``torch.profiler.record_function``.

        Examples
        --------
        >>> with sg.profile() as prof:               # doctest: +SKIP
        ...     with prof.record("sample batch"):
        ...         real = sample()
        """
        if _mode.observer is not self:  # outside the profile's block: nothing to record
            yield
            return
        self._region_begin()
        try:
            yield
        finally:
            self._region_end(name, "record")

    def _wrap_optimizers(self) -> None:
        from ..optim.optimizers import Optimizer  # noqa: PLC0415 - the engine's layer does not import optim at load

        classes, todo = [], [Optimizer]
        while todo:
            cls = todo.pop()
            classes.append(cls)
            todo.extend(cls.__subclasses__())
        for cls in classes:
            for name in ("step", "zero_grad"):
                if name in cls.__dict__:
                    original = cls.__dict__[name]
                    setattr(cls, name, self._timed_method(original, name))
                    self._restore.append((cls, name, original))

    def _timed_method(self, method, name: str):
        profile = self

        @functools.wraps(method)
        def timed(optimizer, *args, **kwargs):
            if _mode.observer is not profile:
                return method(optimizer, *args, **kwargs)
            profile._region_begin()
            try:
                return method(optimizer, *args, **kwargs)
            finally:
                profile._region_end(f"{type(optimizer).__name__}.{name}", "optimizer")

        return timed

    # ---- results
    @property
    def events(self) -> list[OpEvent]:
        """Every event in the order it ended (an ``OpEvent`` each)."""
        return [self._event(raw) for raw in self._raw]

    @staticmethod
    def _event(raw) -> OpEvent:
        name, phase, inputs, outputs, dtype, array_type, seconds, nbytes = raw
        if not isinstance(name, str):
            name = op_name(name)
        backend_name = None if array_type is None else array_type.__module__.split(".")[0]
        return OpEvent(name, phase, inputs, outputs, dtype, backend_name, seconds, nbytes)

    def total(self, *, include_python: bool = True) -> float:
        """Seconds in all events (without ``(other python)`` when ``include_python`` is False)."""
        return sum(raw[6] for raw in self._raw if include_python or raw[1] != "python")

    def key_averages(self, group_by: str = "shape") -> list[dict]:
        """Events grouped by op, phase and (``group_by="shape"``) shapes; one dict per group.

        Each dict has ``name``, ``phase``, ``inputs``, ``outputs`` (None when
        grouped by ``"op"``), ``calls``, ``seconds`` (total), ``nbytes``
        (total) and ``dtypes`` and ``backends`` (sets), in order of first
        appearance.
        """
        if group_by not in ("shape", "op"):
            raise ValueError(f"group_by must be 'shape' or 'op', got {group_by!r}")
        groups: dict[tuple, dict] = {}
        for event in self.events:
            shapes = (event.inputs, event.outputs) if group_by == "shape" else (None, None)
            key = (event.name, event.phase) + shapes
            row = groups.get(key)
            if row is None:
                row = groups[key] = {"name": event.name, "phase": event.phase, "inputs": shapes[0],
                                     "outputs": shapes[1], "calls": 0, "seconds": 0.0, "nbytes": 0,
                                     "dtypes": set(), "backends": set()}
            row["calls"] += 1
            row["seconds"] += event.seconds
            row["nbytes"] += event.nbytes
            if event.dtype is not None:
                row["dtypes"].add(str(event.dtype))
            if event.backend is not None:
                row["backends"].add(event.backend)
        return list(groups.values())

    def table(self, sort_by: str = "time", top: int | None = 20, group_by: str = "shape") -> str:
        """A summary, one line per op, phase and shape (as ``key_averages().table()`` in PyTorch).

        Parameters
        ----------
        sort_by : {"time", "calls", "mean", "bytes", "name"}
        top : int or None
            Lines shown (None: all); the footer counts the rest.
        group_by : {"shape", "op"}
            ``"op"`` folds the shapes of an op into one line.

        Returns
        -------
        str
        """
        if sort_by not in _SORT_KEYS:
            raise ValueError(f"sort_by must be one of {', '.join(_SORT_KEYS)}, got {sort_by!r}")
        rows = sorted(self.key_averages(group_by), key=_SORT_KEYS[sort_by])
        total = self.total()
        shown = rows if top is None else rows[:top]
        header = ("op", "phase", "inputs -> outputs", "calls", "total ms", "%", "mean us", "out MB")
        lines = [header] + [_row_cells(row, total) for row in shown]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        text = [_join(line, widths) for line in lines]
        text.insert(1, "-" * len(text[0]))
        backends = sorted(set().union(*[row["backends"] for row in rows])) if rows else []
        dtypes = sorted(set().union(*[row["dtypes"] for row in rows])) if rows else []
        if top is not None and len(rows) > top:
            text.append(f"... {len(rows) - top} more lines ({sum(r['seconds'] for r in rows[top:]) * 1e3:.3f} ms)")
        text.append(f"{len(self._raw)} events; rows add up to {total * 1e3:.3f} ms, "
                    f"ops and optimizer {self.total(include_python=False) * 1e3:.3f} ms; wall time in the profile "
                    f"{(self.wall or 0.0) * 1e3:.3f} ms (the profiler's own bookkeeping is in no row); "
                    f"backend {', '.join(backends) or '-'}, dtype {', '.join(dtypes) or '-'}")
        return "\n".join(text)

    def __repr__(self) -> str:
        return f"<Profile of {len(self._raw)} events, {self.total() * 1e3:.3f} ms>"


def profile(*, optimizers: bool = True) -> Profile:
    """Record every op, backward rule and optimizer call run inside a ``with`` block.

    Parameters
    ----------
    optimizers : bool
        Give ``Optimizer.step`` and ``zero_grad`` rows of their own.

    Returns
    -------
    Profile
        Use it as a context manager; then ``prof.table()``, ``prof.events``,
        ``prof.key_averages()``, ``prof.total()``, ``prof.wall``.

    Examples
    --------
    >>> import scratchgan as sg
    >>> x = sg.randn(64, 8, requires_grad=True)
    >>> with sg.profile() as prof:
    ...     (x * x).sum().backward()
    >>> sorted({e.name for e in prof.events} - {"autograd engine", "(other python)"})
    ['mul', 'sum']
    """
    return Profile(optimizers=optimizers)


# --------------------------------------------------------------------------- formatting


def _shape_text(shape) -> str:
    if shape is None:
        return "-"
    return "x".join(str(n) for n in shape) if shape else "()"


def _shapes_text(inputs, outputs) -> str:
    if inputs is None:
        return ""
    if not inputs and not outputs:
        return ""
    text = f"{', '.join(_shape_text(s) for s in inputs)} -> {', '.join(_shape_text(s) for s in outputs)}"
    return text if len(text) <= 48 else text[:45] + "..."


def _row_cells(row: dict, total: float) -> tuple:
    seconds = row["seconds"]
    share = 100.0 * seconds / total if total > 0 else 0.0
    return (row["name"], row["phase"], _shapes_text(row["inputs"], row["outputs"]), str(row["calls"]),
            f"{seconds * 1e3:.3f}", f"{share:.1f}", f"{seconds / row['calls'] * 1e6:.1f}",
            f"{row['nbytes'] / 1e6:.2f}" if row["inputs"] or row["outputs"] or row["nbytes"] else "")


def _join(cells, widths) -> str:
    # text columns to the left, numbers to the right
    left = 3
    parts = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))]
    return "  ".join(parts).rstrip()
