"""The backward walk: the chain rule, node by node, children before parents.

:func:`_topological_order` visits the graph iteratively (no recursion limit)
and lists nodes parents-first. :func:`run_backward` walks that list backwards,
so every node has received all its gradient contributions (which add up)
before its rule runs: that loop is the whole algorithm. Its helpers each do
one thing: :func:`_prune` keeps only the part of the graph that leads to the
inputs :func:`grad` asks for, :func:`_accumulate` passes a rule's gradients on
to the parents (undoing broadcasting centrally in :func:`_unbroadcast`, so a
rule may return a gradient of the broadcast shape), :func:`_hand_to_leaf`
gives a finished gradient to a leaf's ``.grad`` (never an array someone else
holds), :func:`_free` drops a node's links once its rule has run (its rule
becomes a :class:`Freed` marker, which raises if a second walk calls it), and
:class:`_BackwardPass` sets the grad modes for the pass and tells the study
tools (:mod:`scratchgan.study.profiler`, :mod:`scratchgan.study.viz`) it runs.
"""

from __future__ import annotations

from .. import backend
from .graph import _check_finite, _mode, as_operand, op_name, wrap_array
from .tensor import Tensor


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
    order = _topological_order(_requiring_grad(roots))
    needed = _prune(order, inputs)  # None: every node
    wanted = None if inputs is None else {id(t) for t in inputs}
    results = None if inputs is None else {}  # grad()'s answers: id(input) -> its gradient
    pending = _root_gradients(roots, grads, create_graph)  # id(node) -> its gradient so far
    handed: set[int] = set()  # arrays already given to a leaf: never give one twice
    with _BackwardPass(roots, create_graph) as watch:
        for node in reversed(order):  # children first: a node's gradient is complete when it is reached
            g = pending.pop(id(node), None)
            if g is None or needed is not None and id(node) not in needed:
                continue
            rule = node._backward
            if rule is None or wanted is not None and id(node) in wanted:
                _hand_to_leaf(node, g, results, handed, create_graph)
                if rule is None:
                    continue
            parents = node._parents
            needs = (tuple([p.requires_grad for p in parents]) if needed is None
                     else tuple([p.requires_grad and id(p) in needed for p in parents]))
            # the rule, or the first-order backward that scratchgan.accel registered for it (rule.fast)
            run = rule if create_graph or _mode.reference else getattr(rule, "fast", rule)
            parent_grads = (run(g, node, needs) if watch.observer is None
                            else watch.observer.run_rule(run, g, node, needs, create_graph))
            _accumulate(pending, node, parent_grads, needs, create_graph, watch.anomaly)
            if not retain_graph:
                _free(node)
    return None if inputs is None else _input_gradients(inputs, results, allow_unused)


def _requiring_grad(roots):
    for r in roots:
        if not r.requires_grad:
            raise RuntimeError(
                "element does not require grad and has no grad_fn: nothing in its graph requires a gradient "
                "(was it computed under no_grad(), or from detached tensors?)"
            )
    return roots


def _prune(order: list, inputs) -> set | None:
    """The ids of the nodes that lead to ``inputs`` (the inputs themselves included); None for no ``inputs``.

    ``order`` lists parents first, so one pass suffices: a node is needed
    when it is an input or when one of its parents is needed.
    """
    if inputs is None:
        return None
    input_ids = {id(t) for t in inputs}
    needed: set[int] = set()
    for node in order:
        if id(node) in input_ids:
            needed.add(id(node))
            continue
        for p in node._parents:
            if id(p) in needed:
                needed.add(id(node))
                break
    return needed


def _root_gradients(roots, grads, create_graph: bool) -> dict:
    """The walk's starting point: each root's upstream gradient (summed when a root appears twice)."""
    pending: dict[int, Tensor] = {}
    for r, g in zip(roots, grads):
        g = _root_gradient(r, g)
        # a copy, so that no leaf gradient ever aliases the caller's array
        g = Tensor._wrap(g.data.copy()) if not create_graph else g
        pending[id(r)] = g if id(r) not in pending else pending[id(r)] + g
    return pending


def _accumulate(pending: dict, node: Tensor, parent_grads, needs: tuple, create_graph: bool, anomaly: bool) -> None:
    """Add each parent's gradient from ``node``'s rule to what the parent has received so far."""
    for parent, pg, need in zip(node._parents, parent_grads, needs):
        if not need or pg is None:
            continue
        if pg.data.shape != parent.data.shape:
            pg = _unbroadcast(pg, parent.data.shape)
        if anomaly:
            _check_finite(pg.data, f"op '{op_name(node._backward)}' (backward)")
        previous = pending.get(id(parent))
        if previous is None:
            pending[id(parent)] = pg
        elif create_graph:
            pending[id(parent)] = previous + pg  # recorded: the sum is part of the gradient's graph
        else:  # nothing to record: a new array (never in place, ``previous`` may be another's gradient)
            pending[id(parent)] = wrap_array(previous.data + pg.data)


def _hand_to_leaf(node: Tensor, g: Tensor, results: dict | None, handed: set, create_graph: bool) -> None:
    """Give a finished gradient to a leaf's ``.grad`` (added to what it holds), or to ``results`` for grad().

    A first-order gradient may be a view of another array, or an array
    already given to another leaf (a rule may return one array for two
    parents): such a one is copied, so that no two ``.grad`` share memory.
    """
    if not create_graph and (g.data.base is not None or id(g.data) in handed):
        g = Tensor._wrap(g.data.copy())
    handed.add(id(g.data))
    if results is not None:
        results[id(node)] = g
    else:  # never in place: the existing .grad may be someone else's array too
        node.grad = g if node.grad is None else node.grad + g


def _input_gradients(inputs, results: dict, allow_unused: bool) -> tuple:
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


class Freed:
    """What a node's ``_backward`` becomes once a backward pass has run it and freed its saved values.

    It keeps only the op's name (``__name__``, as the rule had it, so that
    :func:`~scratchgan.autograd.graph.op_name` names the op); calling it, as
    a second walk through the node would, raises the error that says what to do.
    """

    __slots__ = ("__name__",)

    def __init__(self, rule):
        self.__name__ = rule.__name__

    def __call__(self, g, out, needs):
        raise RuntimeError(
            f"trying to backward through the graph a second time (op '{op_name(self)}'): its saved values "
            "were freed after the first backward; pass retain_graph=True to the first backward()/grad() call"
        )


_freed_markers: dict = {}  # rule -> its Freed marker (one per rule, shared by every node it freed)


def _free(node: Tensor) -> None:
    """Drop what ``node`` keeps for its rule (its saved values and its links to the parents)."""
    rule = node._backward
    marker = _freed_markers.get(rule)
    if marker is None:
        marker = _freed_markers[rule] = Freed(rule)
    node._backward = marker
    node._parents = ()
    node._ctx = None


class _BackwardPass:
    """The modes a backward pass runs under (set on entry, restored on exit), and its observer's hooks.

    Inside, recording is on exactly when the pass builds a gradient's graph
    (``create_graph``); anomaly mode is off for the rules' inner ops, whose
    results the walk checks itself under the name of the op being
    differentiated (``self.anomaly``); ``self.observer`` (the profiler, or
    viz's capture) is told that the pass begins, before anything is freed,
    and ends.
    """

    __slots__ = ("roots", "create_graph", "observer", "anomaly", "saved")

    def __init__(self, roots, create_graph: bool):
        self.roots, self.create_graph = roots, create_graph

    def __enter__(self):
        self.observer = _mode.observer
        if self.observer is not None:  # viz.capture draws the graph here
            self.observer.backward_begin(self.roots, self.create_graph)
        self.anomaly = _mode.anomaly
        self.saved = (_mode.grad_enabled, _mode.grad_graph)
        _mode.grad_enabled = _mode.grad_graph = self.create_graph
        _mode.anomaly = False
        return self

    def __exit__(self, *exc):
        _mode.grad_enabled, _mode.grad_graph = self.saved
        _mode.anomaly = self.anomaly
        if self.observer is not None:
            self.observer.backward_end()
        return False


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


