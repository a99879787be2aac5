"""scratchgan.study.viz: DOT export of recorded graphs with known node and edge counts, render, capture, `scratchgan graph`.

The DOT text is read back by a small parser written here (Graphviz is not
needed); where Graphviz's ``dot`` is installed the text is also rendered with it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings

import numpy as np
import pytest

import scratchgan as sg
from scratchgan.gan import losses
from scratchgan import nn, ops
from scratchgan.study import viz
from scratchgan.app.cli import main
from scratchgan.autograd.engine import _mode

# --------------------------------------------------------------------------- a small DOT parser

_TOKEN = re.compile(r'\s*(?:(->)|([{}\[\];=,])|"((?:[^"\\]|\\.)*)"|([A-Za-z0-9_.#+-]+))', re.S)


def _tokens(text: str) -> list:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"DOT: cannot read {text[pos:pos + 30]!r}")
        arrow, symbol, quoted, word = m.groups()
        if quoted is not None:
            out.append(("str", re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1), quoted)))
        else:
            out.append(("sym", arrow or symbol) if (arrow or symbol) else ("id", word))
        pos = m.end()
    return out


class Dot:
    """What a ``digraph`` declares: nodes (name -> attributes), edges, clusters (name -> node names), graph attributes."""

    def __init__(self, text: str):
        self.nodes, self.edges, self.clusters, self.graph = {}, [], {}, {}
        self._t, self._i = _tokens(text), 0
        self._expect("id", "digraph")
        if self._peek()[0] in ("id", "str"):
            self._i += 1
        self._block(None)
        if self._i != len(self._t):
            raise ValueError("DOT: text after the graph's closing brace")
        for a, b, _ in self.edges:
            if a not in self.nodes or b not in self.nodes:
                raise ValueError(f"DOT: edge {a} -> {b} between undeclared nodes")

    def _peek(self):
        return self._t[self._i] if self._i < len(self._t) else ("end", None)

    def _expect(self, kind, value=None):
        token = self._peek()
        if token[0] != kind or (value is not None and token[1] != value):
            raise ValueError(f"DOT: expected {value or kind}, got {token}")
        self._i += 1
        return token[1]

    def _id(self):
        kind, value = self._peek()
        if kind not in ("id", "str"):
            raise ValueError(f"DOT: expected an identifier, got {(kind, value)}")
        self._i += 1
        return value

    def _attributes(self) -> dict:
        attrs = {}
        if self._peek() != ("sym", "["):
            return attrs
        self._i += 1
        while self._peek() != ("sym", "]"):
            key = self._id()
            self._expect("sym", "=")
            attrs[key] = self._id()
            if self._peek() in (("sym", ","), ("sym", ";")):
                self._i += 1
        self._i += 1
        return attrs

    def _block(self, cluster):
        self._expect("sym", "{")
        while self._peek() != ("sym", "}"):
            if self._peek() == ("id", "subgraph"):
                self._i += 1
                name = self._id()
                self.clusters[name] = set()
                self._block(name)
            else:
                first = self._id()
                if first in ("graph", "node", "edge") and self._peek() == ("sym", "["):
                    self._attributes()
                elif self._peek() == ("sym", "="):
                    self._i += 1
                    self.graph[first] = self._id()
                elif self._peek() == ("sym", "->"):
                    chain = [first]
                    while self._peek() == ("sym", "->"):
                        self._i += 1
                        chain.append(self._id())
                    attrs = self._attributes()
                    self.edges.extend((a, b, attrs) for a, b in zip(chain, chain[1:]))
                else:
                    if first in self.nodes:
                        raise ValueError(f"DOT: node {first} declared twice")
                    self.nodes[first] = self._attributes()
                    if cluster is not None:
                        self.clusters[cluster].add(first)
            if self._peek() == ("sym", ";"):
                self._i += 1
        self._i += 1

    def label(self, name) -> str:
        return self.nodes[name]["label"]

    def named(self, first_line: str) -> list:
        return [n for n, a in self.nodes.items() if a["label"].split("\n")[0] == first_line]

    def filled(self, colour: str) -> set:
        return {n for n, a in self.nodes.items() if a.get("fillcolor") == colour}


def test_parser_reads_what_it_should_and_refuses_broken_text():
    d = Dot('digraph g { a [label="x\\ny \\"q\\""]; b; a -> b [style=dashed]; '
            'subgraph cluster_1 { c [label="c"]; } c -> a; label="t"; }')
    assert d.label("a") == 'x\ny "q"' and set(d.nodes) == {"a", "b", "c"} and d.clusters == {"cluster_1": {"c"}}
    assert d.edges == [("a", "b", {"style": "dashed"}), ("c", "a", {})] and d.graph == {"label": "t"}
    for broken in ("digraph { a -> }", "digraph { a [label=] }", "digraph { a; a; }", "digraph { a -> b; }",
                   "digraph { a; } extra"):
        with pytest.raises(ValueError):
            Dot(broken)


def _graphviz_accepts(text: str, tmp_path) -> None:
    """Render with Graphviz where it is installed (the parser above is the check without it)."""
    if shutil.which("dot") is None:
        return
    done = subprocess.run(["dot", "-Tsvg"], input=text.encode(), capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert b"<svg" in done.stdout


# --------------------------------------------------------------------------- graphs with known counts


def test_linear_layer_has_three_nodes_and_two_edges_toward_the_op(tmp_path):
    sg.manual_seed(0)
    layer = nn.Linear(3, 2)
    y = layer(sg.randn(4, 3))  # the input needs no gradient: a constant
    d = Dot(viz.to_dot(y, params=dict(layer.named_parameters())))
    assert len(d.nodes) == 3 and len(d.edges) == 2
    (op,) = d.named("linear")
    (w,), (b,) = d.named("weight"), d.named("bias")
    assert {(a, c) for a, c, _ in d.edges} == {(w, op), (b, op)}  # data flows from the parameters into the op
    assert d.label(op) == "linear\n(4, 2) float32" and d.label(w) == "weight\n(3, 2) float32"
    assert d.label(b) == "bias\n(2,) float32"
    assert d.nodes[op]["peripheries"] == "2"  # the output
    assert not d.clusters
    _graphviz_accepts(viz.to_dot(y), tmp_path)


def test_show_saved_adds_the_constant_input_and_the_ctx():
    layer = nn.Linear(3, 2)
    y = layer(sg.randn(4, 3))
    d = Dot(viz.to_dot(y, params=dict(layer.named_parameters()), show_saved=True))
    assert len(d.nodes) == 4 and len(d.edges) == 3
    (const,) = d.named("const")
    (op,) = d.named("linear")
    assert [(a, c, e.get("style")) for a, c, e in d.edges if a == const] == [(const, op, "dashed")]
    s = ops.sum(sg.randn(4, 3, requires_grad=True), axis=1)
    assert "saved: " in Dot(viz.to_dot(s, show_saved=True)).label("n0")  # sum keeps its axis
    assert "saved" not in Dot(viz.to_dot(s)).label("n0")


def test_unnamed_leaves_are_leaf_and_a_shared_input_is_one_node_with_one_edge_per_use(tmp_path):
    x = sg.randn(5, requires_grad=True)
    a = ops.exp(x)
    out = a * x + a  # x used by exp and mul, a by mul and add
    d = Dot(viz.to_dot(out))
    assert len(d.nodes) == 4 and len(d.edges) == 5
    (leaf,), (exp,), (mul,), (add,) = d.named("leaf"), d.named("exp"), d.named("mul"), d.named("add")
    assert sorted((a, c) for a, c, _ in d.edges) == sorted(
        [(leaf, exp), (exp, mul), (leaf, mul), (mul, add), (exp, add)])
    square = x * x  # the same tensor twice in one op: two edges
    d = Dot(viz.to_dot(square))
    assert len(d.nodes) == 2 and [(a, c) for a, c, _ in d.edges] == [("n1", "n0"), ("n1", "n0")]
    _graphviz_accepts(viz.to_dot(out), tmp_path)


def test_several_outputs_share_one_drawing():
    x = sg.randn(3, requires_grad=True)
    y = ops.exp(x)
    d = Dot(viz.to_dot(y * 2.0, y + 1.0))
    assert len(d.nodes) == 4 and len(d.edges) == 3  # x, exp, mul, add
    assert sum(a.get("peripheries") == "2" for a in d.nodes.values()) == 2


def _reachable(t) -> set:
    seen, stack = set(), [t]
    while stack:
        node = stack.pop()
        if id(node) not in seen and node.requires_grad:
            seen.add(id(node))
            stack.extend(node._parents)
    return seen


def test_gradient_penalty_step_marks_exactly_the_nodes_its_create_graph_recorded(tmp_path):
    sg.manual_seed(1)
    critic = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    real, fake = sg.randn(6, 2), sg.randn(6, 2)
    x = sg.randn(6, 2, requires_grad=True)
    out = critic(x)
    (gx,) = sg.grad(out.sum(), x, create_graph=True)
    penalty = ((ops.sqrt((gx * gx).sum(axis=1) + 1e-12) - 1.0) ** 2).mean()
    loss = losses.d_loss("wasserstein", critic(real), critic(fake)) + penalty
    text = viz.to_dot(loss, params=dict(critic.named_parameters()))
    d = Dot(text)
    # independently of the marker: what the gradient's graph holds that the forward did not
    recorded_by_grad = _reachable(gx) - _reachable(out)
    assert len(recorded_by_grad) > 0
    marked = d.filled("#fd8d3c")
    assert len(marked) == len(recorded_by_grad)
    assert d.clusters["cluster_grad_graph"] >= marked
    # the penalty's own ops (square, sum, + eps, sqrt, - 1, ** 2, mean as sum and product) are pale orange;
    # loss + penalty is not
    pale = d.filled("#fdd0a2")
    assert sorted(d.label(n).split("\n")[0] for n in pale) == [
        "add", "mul", "mul", "pow_scalar", "sqrt", "sub", "sum", "sum"]
    assert d.clusters["cluster_grad_graph"] == marked | pale
    (root,) = [n for n, a in d.nodes.items() if a.get("peripheries") == "2"]
    assert root not in marked | pale and d.label(root).startswith("add")
    assert "create_graph=True" in d.graph["label"]
    # and the count of a graph drawn by hand: all nodes = forward (3 critics) + gradient's graph + penalty + loss
    assert len(d.nodes) == len(_reachable(loss))
    _graphviz_accepts(text, tmp_path)


def test_known_r1_graph_of_a_linear_critic():
    """D(x) = x w + b: the R1 gradient's graph is transpose(w), then g @ w^T (2 nodes), then 5 penalty ops."""
    sg.manual_seed(2)
    critic = nn.Linear(3, 1)
    real = sg.randn(4, 3)
    loss = losses.r1_penalty(critic, real, 1.0)
    d = Dot(viz.to_dot(loss, params=dict(critic.named_parameters())))
    marked = d.filled("#fd8d3c")
    assert sorted(d.label(n).split("\n")[0] for n in marked) == ["matmul", "transpose"]
    pale = d.filled("#fdd0a2")
    (root,) = [n for n, a in d.nodes.items() if a.get("peripheries") == "2"]
    assert root in pale  # the penalty's last op is the output
    assert d.clusters["cluster_grad_graph"] == marked | pale
    assert set(d.nodes) == marked | pale | set(d.named("weight"))  # the bias has no path to the penalty
    assert len(d.edges) == len(d.nodes) + 1 - 1  # a chain, plus the squared gradient's two edges, less the root


def test_no_marks_without_create_graph_and_after_a_first_order_grad():
    x = sg.randn(3, requires_grad=True)
    y = ops.tanh(x)
    (g,) = sg.grad(y.sum(), x, retain_graph=True)  # first order: g records nothing
    assert not g.requires_grad
    d = Dot(viz.to_dot(y))
    assert not d.clusters and not d.filled("#fd8d3c") and "label" not in d.graph
    assert not _mode.grad_graph and not _mode.watch  # the engine's switches are back off


def test_a_freed_graph_is_named_and_a_bad_argument_refused():
    x = sg.randn(3, requires_grad=True)
    y = (x * 2.0).sum()
    y.backward()
    d = Dot(viz.to_dot(y))
    assert len(d.nodes) == 1 and d.label("n0").startswith("sum (freed)")
    with pytest.raises(TypeError):
        viz.to_dot(np.zeros(3))
    with pytest.raises(TypeError):
        viz.to_dot()


# --------------------------------------------------------------------------- render and capture


def test_render_without_graphviz_writes_dot_and_says_how(tmp_path, monkeypatch):
    text = viz.to_dot(ops.exp(sg.randn(2, requires_grad=True)))
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    with pytest.warns(viz.GraphvizMissing, match=r"dot -Tsvg .*step\.dot -o .*step\.svg"):
        written = viz.render(text, tmp_path / "step.svg")
    assert written == tmp_path / "step.dot" and written.read_text() == text
    assert viz.render(text, tmp_path / "g.dot").read_text() == text
    with pytest.raises(ValueError, match="unknown picture format"):
        viz.render(text, tmp_path / "g.jpeg")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_render_with_graphviz_writes_svg_and_png(tmp_path):
    text = viz.to_dot(ops.exp(sg.randn(2, requires_grad=True)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert viz.render(text, tmp_path / "g.svg").read_text().lstrip().startswith("<?xml")
        assert viz.render(text, tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def test_capture_draws_each_backward_before_it_frees_the_graph():
    sg.manual_seed(3)
    critic = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    real = sg.randn(8, 2)
    with viz.capture(params=dict(critic.named_parameters()), title="step") as cap:
        loss = losses.d_loss("ns", critic(real), critic(sg.randn(8, 2))) + losses.r1_penalty(critic, real, 1.0)
        loss.backward()
    assert [g.create_graph for g in cap.graphs] == [True, False]  # R1's inner grad, then the step's backward
    d = Dot(cap.last.dot)
    assert len(d.nodes) == cap.last.nodes and d.filled("#fd8d3c") and "step" in d.graph["label"]
    assert d.named("0.weight") and _mode.observer is None and not _mode.watch
    assert Dot(viz.to_dot(loss)).label("n0").startswith("add (freed)")  # the graph is gone now
    with viz.capture() as empty:
        pass
    with pytest.raises(LookupError):
        empty.last
    with viz.capture(), pytest.raises(RuntimeError, match="do not nest"):
        with viz.capture():
            pass


# --------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A run folder with the default toy configuration (R1 on), small networks, saved untrained."""
    from scratchgan.app.config import TrainConfig  # noqa: PLC0415
    from scratchgan.app.train import Trainer  # noqa: PLC0415

    out = tmp_path_factory.mktemp("runs") / "toy"
    Trainer(TrainConfig(g_hidden=(8,), d_hidden=(8, 8), z_dim=4, batch_size=16, steps=10), out).save()
    return out


def test_graph_command_draws_the_r1_step(toy_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)  # as on a machine without Graphviz
    assert main(["graph", "--run", str(toy_run), "--out", str(tmp_path / "d.svg")]) == 0
    out, err = capsys.readouterr()
    assert "d.dot" in out and "apt install graphviz" in err and "dot -Tsvg" in err
    d = Dot((tmp_path / "d.dot").read_text())
    assert d.filled("#fd8d3c") and "R1 0.3" in d.graph["label"] and "discriminator" in d.graph["label"]
    assert d.named("D.net.0.weight") and d.named("D.net.0.bias")  # parameters by their names in the trainer
    assert main(["graph", "--run", str(toy_run), "--which", "g", "--out", str(tmp_path / "g.dot")]) == 0
    g = Dot((tmp_path / "g.dot").read_text())
    labels = [a["label"].split("\n")[0] for a in g.nodes.values()]
    assert not g.filled("#fd8d3c") and any(lbl.startswith("G.") for lbl in labels)
    # the G step's grad() walks to G's parameters through D's weights: D's are drawn, unnamed D leaves none
    assert any(lbl.startswith("D.") for lbl in labels)


def test_graph_command_without_a_run_is_one_line(tmp_path, capsys):
    assert main(["graph", "--run", str(tmp_path / "none"), "--out", str(tmp_path / "x.svg")]) == 1
    _, err = capsys.readouterr()
    assert err.startswith("scratchgan: error:") and len(err.strip().splitlines()) == 1
