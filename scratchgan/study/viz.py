"""Draw the graph the engine recorded: Graphviz DOT text, and SVG/PNG through Graphviz's ``dot``.

::

    dot = sg.viz.to_dot(loss, params=dict(D.named_parameters()))
    sg.viz.render(dot, "step.svg")          # or step.dot, without Graphviz

One box per op (its name, output shape and dtype), one per leaf that needs a
gradient (labelled with its parameter name when ``params`` names it), edges in
the direction the data flows (input -> op). Outputs have a double border.
Nodes recorded while a gradient's graph was built (``grad(...,
create_graph=True)``, as a gradient penalty does) are orange, and the ops
computed from that gradient alone (the penalty's norm, square, mean) pale
orange, together in a dashed box: that is the double-backprop part of a
WGAN-GP or R1 step, which the outer ``backward()`` differentiates again.

A graph can only be drawn before a ``backward()`` without ``retain_graph``
frees it; :func:`capture` draws it at that moment, so the step's own code need
not change (``scratchgan graph`` draws a run's training step that way).

Graphviz is optional: :func:`to_dot` needs nothing, :func:`render` writes the
``.dot`` file and says how to render it when the ``dot`` program is missing
(``apt install graphviz``).
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..autograd.engine import Freed, GradGraphParents, _mode, _topological_order, op_name
from ..autograd.tensor import Tensor

__all__ = ["Captured", "GraphvizMissing", "capture", "is_grad_graph_node", "render", "to_dot"]

# fill colours (ColorBrewer): outputs green, parameters blue, other leaves pale blue, the gradient's
# graph orange, what is computed from it alone pale orange, ordinary ops white, constants grey
_OUTPUT, _PARAM, _LEAF, _OP, _CONST = "#c7e9c0", "#9ecae1", "#deebf7", "#ffffff", "#f0f0f0"
_GRAD_GRAPH, _FROM_GRAD = "#fd8d3c", "#fdd0a2"
_CAPTION = ("orange: recorded by grad(create_graph=True), the gradient's own graph (double backprop); "
            "pale orange: computed from that gradient alone (a penalty)")
_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}


class GraphvizMissing(UserWarning):
    """:func:`render` wrote a ``.dot`` file instead of a picture: Graphviz's ``dot`` is not installed."""


# --------------------------------------------------------------------------- the graph walk


def _walk(roots, with_constants: bool):
    """Every tensor reachable from ``roots`` once, in discovery order, and the edges (parent, child).

    An iterative depth-first search (no recursion limit); a tensor used k
    times by one op gives k edges. Constants (inputs that need no gradient)
    are followed only when ``with_constants``.
    """
    nodes: dict[int, Tensor] = {}
    edges: list[tuple[Tensor, Tensor]] = []
    stack = list(reversed(roots))
    while stack:
        t = stack.pop()
        if id(t) in nodes:
            continue
        nodes[id(t)] = t
        parents = [p for p in t._parents if p.requires_grad or with_constants]
        edges.extend((p, t) for p in parents)
        stack.extend(reversed(parents))  # reversed: the first input is visited first
    return list(nodes.values()), edges


def is_grad_graph_node(t: Tensor) -> bool:
    """True for a node recorded while a gradient's graph was built (``create_graph=True``)."""
    return type(t._parents) is GradGraphParents


def _computed_from_gradient(roots, marked: set) -> set:
    """Ids of the ops whose every input that needs a gradient is in a gradient's graph or computed from it.

    In a penalty step these are the penalty's own ops (norm, square, mean,
    weight); the sum of loss and penalty has an input from outside and is not one.
    """
    found: set[int] = set()
    for t in _topological_order(roots):  # parents first, so each input is decided before its users
        inputs = [p for p in t._parents if p.requires_grad]
        if id(t) not in marked and inputs and all(id(p) in marked or id(p) in found for p in inputs):
            found.add(id(t))
    return found


# --------------------------------------------------------------------------- labels


def _quote(text: str) -> str:
    """A DOT string: backslashes and quotes escaped, lines joined by DOT's ``\\n``."""
    lines = text.split("\n")
    return '"' + "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"') for line in lines) + '"'


def _shape(t: Tensor) -> str:
    return f"({', '.join(str(n) for n in t.data.shape)}{',' if t.data.ndim == 1 else ''}) {t.data.dtype}"


def _ctx_text(ctx) -> str:
    if hasattr(ctx, "shape") and hasattr(ctx, "dtype"):  # an array a rule keeps (a mask, an index)
        return f"array{tuple(ctx.shape)} {ctx.dtype}"
    text = getattr(ctx, "__name__", None) or repr(ctx)
    return text if len(text) <= 40 else text[:37] + "..."


def _node_attributes(t: Tensor, names: dict, roots: set, show_saved: bool, from_gradient: set) -> dict:
    if isinstance(t._backward, Freed):  # a backward freed it: only its op's name is left
        label, fill, shape = f"{op_name(t._backward)} (freed)\n{_shape(t)}", _OP, "box"
    elif t._backward is not None:
        label, fill, shape = f"{op_name(t._backward)}\n{_shape(t)}", _OP, "box"
        if show_saved and t._ctx is not None:
            label += f"\nsaved: {_ctx_text(t._ctx)}"
        if is_grad_graph_node(t):
            fill = _GRAD_GRAPH
        elif id(t) in from_gradient:
            fill = _FROM_GRAD
    elif t.requires_grad:
        name = names.get(id(t))
        label, fill, shape = f"{name or 'leaf'}\n{_shape(t)}", _PARAM if name else _LEAF, "box"
    else:
        value = f" {t.data.reshape(()).item():.4g}" if t.data.size == 1 and t.data.dtype.kind in "fiub" else ""
        label, fill, shape = f"const{value}\n{_shape(t)}", _CONST, "ellipse"
    attributes = {"label": _quote(label), "shape": shape, "style": '"rounded,filled"', "fillcolor": f'"{fill}"'}
    if shape == "ellipse":
        attributes.update(style="filled", fontsize="9")
    if id(t) in roots:  # a double border; green unless its colour already says more
        attributes.update(peripheries="2")
        if fill == _OP:
            attributes.update(fillcolor=f'"{_OUTPUT}"')
    return attributes


def _statement(name: str, attributes: dict) -> str:
    return f"  {name} [{', '.join(f'{k}={v}' for k, v in attributes.items())}];"


# --------------------------------------------------------------------------- DOT


def _names_of(params) -> dict:
    if params is None:
        return {}
    items = params.items() if hasattr(params, "items") else params
    return {id(t): str(name) for name, t in items}


def to_dot(*tensors: Tensor, params=None, show_saved: bool = False, title: str | None = None) -> str:
    """Graphviz DOT text of the graph that produced ``tensors``.

    Parameters
    ----------
    *tensors : Tensor
        The outputs to draw from (a loss, or several tensors that share a graph).
    params : dict or iterable of (name, Tensor), optional
        Names for leaves, e.g. ``dict(model.named_parameters())``; other
        leaves that need a gradient are labelled ``leaf``.
    show_saved : bool
        Also draw what each node keeps for its backward besides its graph
        inputs: its constant inputs (grey ellipses, dashed edges) and its
        ``_ctx`` (an axis, a shape, a mask), as a line of the op's label.
    title : str, optional
        A caption under the graph.

    Returns
    -------
    str
        ``digraph`` text: one node per op and per leaf, edges from each
        input to the op that uses it (once per use). Nodes recorded while a
        gradient's graph was built (``create_graph=True``) are orange, the
        ops computed from such a gradient alone (a penalty's norm, square,
        mean) pale orange, and both are grouped in ``subgraph
        cluster_grad_graph``.

    Examples
    --------
    >>> import scratchgan as sg
    >>> w = sg.randn(3, 2, requires_grad=True)
    >>> dot = sg.viz.to_dot((sg.randn(4, 3) @ w).sum(), params={"w": w})
    >>> dot.count("->"), dot.count("label=")
    (2, 3)
    """
    if not tensors or not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError("to_dot: pass one or more Tensors (the outputs to draw from)")
    nodes, edges = _walk(tensors, with_constants=show_saved)
    ids = {id(t): f"n{i}" for i, t in enumerate(nodes)}
    names, roots = _names_of(params), {id(t) for t in tensors}
    marked = {id(t) for t in nodes if is_grad_graph_node(t)}
    from_gradient = _computed_from_gradient(tensors, marked) if marked else set()
    in_box = marked | from_gradient

    def statement(t):
        return _statement(ids[id(t)], _node_attributes(t, names, roots, show_saved, from_gradient))

    lines = ["digraph scratchgan {",
             '  graph [rankdir=TB, fontname="Helvetica", fontsize=11];',
             '  node [fontname="Helvetica", fontsize=10, height=0.3];',
             '  edge [arrowsize=0.6, color="#525252"];']
    caption = [title] if title else []
    if marked:
        caption.append(_CAPTION)
        lines.append("  subgraph cluster_grad_graph {")
        lines.append(f'    label={_quote("double backprop: the gradient of grad(create_graph=True)")}; '
                     'style=dashed; color="#e6550d"; fontcolor="#a63603";')
        lines.extend("  " + statement(t) for t in nodes if id(t) in in_box)
        lines.append("  }")
    lines.extend(statement(t) for t in nodes if id(t) not in in_box)
    for parent, child in edges:
        style = "" if parent.requires_grad else ' [style=dashed, color="#969696"]'
        lines.append(f"  {ids[id(parent)]} -> {ids[id(child)]}{style};")
    if caption:
        lines.append(f"  label={_quote(chr(10).join(caption))}; labelloc=b;")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot_text: str, path) -> Path:
    """Write ``dot_text`` as a picture (``.svg``, ``.png``, ``.pdf``) with Graphviz, or as ``.dot``.

    Parameters
    ----------
    dot_text : str
        What :func:`to_dot` returns.
    path : str or Path
        The file to write; its suffix picks the format. A ``.dot`` (or
        ``.gv``) path is written as text.

    Returns
    -------
    Path
        The file written: ``path``, or ``path`` with the suffix ``.dot`` when
        Graphviz's ``dot`` program is not installed (a :class:`GraphvizMissing`
        warning then says how to render it).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".dot", ".gv"):
        path.write_text(dot_text)
        return path
    if suffix not in _FORMATS:
        raise ValueError(f"render: unknown picture format {path.suffix!r}; use .svg, .png, .pdf or .dot")
    program = shutil.which("dot")
    if program is None:
        dot_path = path.with_suffix(".dot")
        dot_path.write_text(dot_text)
        warnings.warn(f"Graphviz's dot program is not installed (apt install graphviz): wrote {dot_path}; render "
                      f"it with: dot -T{_FORMATS[suffix]} {dot_path} -o {path}", GraphvizMissing, stacklevel=2)
        return dot_path
    done = subprocess.run([program, f"-T{_FORMATS[suffix]}", "-o", str(path)], input=dot_text.encode(),
                          capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"dot failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()}")
    return path


# --------------------------------------------------------------------------- capture


@dataclass
class Captured:
    """The graph of one backward pass, drawn as it started.

    Attributes
    ----------
    dot : str
        Its DOT text (see :func:`to_dot`).
    create_graph : bool
        Whether that pass recorded the gradient's graph (a penalty's inner ``grad``).
    nodes : int
        How many nodes it had.
    """

    dot: str
    create_graph: bool
    nodes: int


class capture:  # noqa: N801 - used as a function: ``with sg.viz.capture() as graphs``
    """Draw the graph of every backward pass that runs inside a ``with`` block, before it is freed.

    Parameters
    ----------
    params, show_saved, title
        As for :func:`to_dot`.

    Attributes
    ----------
    graphs : list of Captured
        One per backward pass (``backward()`` or ``grad()``), in order. In a
        discriminator step with a gradient penalty the penalty's inner
        ``grad(create_graph=True)`` comes first, then the step's
        ``backward()``, whose graph holds the first one's.

    Examples
    --------
    >>> import scratchgan as sg
    >>> x = sg.randn(4, 3, requires_grad=True)
    >>> with sg.viz.capture() as cap:
    ...     (x * x).sum().backward()
    >>> [g.nodes for g in cap.graphs]
    [3]
    """

    def __init__(self, params=None, show_saved: bool = False, title: str | None = None):
        self._params, self._show_saved, self._title = params, show_saved, title
        self.graphs: list[Captured] = []

    @property
    def last(self) -> Captured:
        """The last pass that did not build a gradient's graph: a step's own ``backward()``."""
        outer = [g for g in self.graphs if not g.create_graph]
        if not outer:
            raise LookupError("no backward pass (without create_graph) ran inside the capture")
        return outer[-1]

    def __enter__(self) -> capture:
        if _mode.observer is not None:
            raise RuntimeError("a capture (or a profile) is already on; they do not nest")
        _mode.observer = self
        return self

    def __exit__(self, *exc) -> bool:
        _mode.observer = None
        return False

    # the engine's hooks (see scratchgan.study.profiler for the other observer)
    def on_op(self, out, parents, rule) -> None:
        pass

    def backward_begin(self, roots, create_graph: bool) -> None:
        nodes, _ = _walk(roots, with_constants=self._show_saved)
        dot = to_dot(*roots, params=self._params, show_saved=self._show_saved, title=self._title)
        self.graphs.append(Captured(dot, bool(create_graph), len(nodes)))

    def run_rule(self, rule, g, node, needs, create_graph: bool):
        return rule(g, node, needs)

    def backward_end(self) -> None:
        pass
