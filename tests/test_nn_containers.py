"""ModuleList, ModuleDict, Sequential's list operations and Module's registration methods, as in PyTorch.

The expected names are PyTorch's documented behaviour, written out by hand
(list containers renumber after an insertion or a deletion, dict containers
keep insertion order); where torch is installed the same sequence of
operations is also run on torch.nn and the state_dict names compared.
"""

from __future__ import annotations

import numpy as np
import pytest

import scratchgan as sg
from scratchgan import nn


def _list_ops(nn_mod, make):
    """One sequence of list edits, written once for scratchgan.nn and torch.nn; returns the state_dict names."""
    a, b, c, d, e = (make(nn_mod, i) for i in range(5))
    layers = nn_mod.ModuleList([a, b])
    layers.append(c)                 # a b c
    layers.insert(1, d)              # a d b c
    del layers[0]                    # d b c  (renumbered)
    layers[-1] = e                   # d b e
    layers.extend([a])               # d b e a
    popped = layers.pop(1)           # d e a
    assert popped is b
    layers += nn_mod.ModuleList([c])  # d e a c
    return list(layers.state_dict()), [id(m) for m in layers], [id(m) for m in (d, e, a, c)]


def _linear(nn_mod, i):
    return nn_mod.Linear(i + 1, 1)


def test_module_list_edits_renumber_as_pytorch(backend):
    names, ids, expected_ids = _list_ops(nn, _linear)
    assert ids == expected_ids
    assert names == [f"{i}.{p}" for i in range(4) for p in ("weight", "bias")]


def test_module_list_matches_torch(backend):
    torch = pytest.importorskip("torch")
    ours, _, _ = _list_ops(nn, _linear)
    theirs, _, _ = _list_ops(torch.nn, _linear)
    assert ours == theirs


def test_module_list_registers_its_modules_with_the_owner(backend):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(nn.Linear(2, 2, rng=i) for i in range(3))

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return x

    net = Net()
    params = list(net.parameters())
    assert len(params) == 6
    opt = sg.optim.SGD(net.parameters(), lr=0.1)
    x = sg.tensor(np.ones((4, 2), dtype=np.float32))
    net(x).sum().backward()
    before = [p.data.copy() for p in params]
    opt.step()
    assert all(not np.array_equal(p.data, q) for p, q in zip(params, before))  # every block was trained
    net.eval()
    assert all(not m.training for m in net.blocks)
    assert list(net.state_dict())[:2] == ["blocks.0.weight", "blocks.0.bias"]
    sliced = net.blocks[1:]
    assert type(sliced) is nn.ModuleList and list(sliced) == list(net.blocks)[1:]
    with pytest.raises(NotImplementedError):
        net.blocks(x)


def test_module_list_errors_say_what_was_wrong(backend):
    layers = nn.ModuleList([nn.ReLU()])
    with pytest.raises(IndexError, match="index 3 is out of range for 1 modules"):
        layers[3]
    with pytest.raises(IndexError, match="out of range"):
        del layers[-2]
    with pytest.raises(TypeError, match="expected a Module, got int"):
        layers.append(3)
    with pytest.raises(TypeError, match="expected a Module, got list"):
        layers[0] = [nn.ReLU()]
    with pytest.raises(TypeError, match="indices must be integers or slices, not str"):
        layers["0"]
    with pytest.raises(TypeError, match="iterable of Modules, got Linear"):
        layers.extend(nn.Linear(1, 1))  # a single module, not a list of them
    with pytest.raises(IndexError, match="pop from an empty ModuleList"):
        nn.ModuleList().pop()
    assert len(layers) == 1  # nothing was lost by the refused edits


def _sequential_ops(nn_mod):
    seq = nn_mod.Sequential(nn_mod.Linear(2, 3), nn_mod.ReLU(), nn_mod.Linear(3, 4), nn_mod.Tanh())
    seq[0] = nn_mod.Linear(2, 3, bias=False)  # replaced in place: keeps its name
    del seq[1]                                # Linear Linear Tanh: renumbered
    seq.insert(1, nn_mod.Linear(3, 3))        # Linear Linear Linear Tanh
    seq.append(nn_mod.Linear(4, 1))
    seq.pop(3)                                # the Tanh
    return seq, list(seq.state_dict())


def test_sequential_list_edits_as_pytorch(backend):
    seq, names = _sequential_ops(nn)
    assert names == ["0.weight", "1.weight", "1.bias", "2.weight", "2.bias", "3.weight", "3.bias"]
    x = sg.tensor(np.ones((5, 2), dtype=np.float32))
    out = seq(x)  # the edited chain still runs: 2 -> 3 -> 3 -> 4 -> 1
    assert out.shape == (5, 1)
    expected = x.data
    for layer in seq:
        expected = layer(sg.tensor(expected)).data
    np.testing.assert_array_equal(out.numpy(), sg.backend.to_numpy(expected))


def test_sequential_matches_torch(backend):
    torch = pytest.importorskip("torch")
    assert _sequential_ops(nn)[1] == _sequential_ops(torch.nn)[1]


def _dict_ops(nn_mod):
    heads = nn_mod.ModuleDict({"real": nn_mod.Linear(2, 1)})
    heads["cls"] = nn_mod.Linear(2, 10)
    heads.update([("code", nn_mod.Linear(2, 3)), ("real", nn_mod.Linear(2, 1, bias=False))])  # replaces "real"
    popped = heads.pop("cls")
    assert popped.out_features == 10 and "cls" not in heads
    return list(heads), list(heads.state_dict()), len(heads)


def test_module_dict_as_pytorch(backend):
    keys, names, size = _dict_ops(nn)
    assert keys == ["real", "code"]  # a replaced key keeps its place, as in a dict
    assert names == ["real.weight", "code.weight", "code.bias"]
    assert size == 2


def test_module_dict_matches_torch(backend):
    torch = pytest.importorskip("torch")
    assert _dict_ops(nn) == _dict_ops(torch.nn)


def test_module_dict_views_and_errors(backend):
    a, b = nn.Linear(1, 1), nn.ReLU()
    d = nn.ModuleDict([("a", a), ("b", b)])
    assert d.keys() == ["a", "b"] and d.values() == [a, b] and d.items() == [("a", a), ("b", b)]
    assert d["b"] is b
    with pytest.raises(KeyError, match=r"no key 'c'; its keys are \['a', 'b'\]"):
        d["c"]
    with pytest.raises(KeyError, match="contain no '.'"):
        d["x.y"] = nn.ReLU()
    with pytest.raises(KeyError, match="would hide the ModuleDict attribute"):
        d["items"] = nn.ReLU()
    with pytest.raises(TypeError, match="not a \\(key, Module\\) pair"):
        d.update(["ab"])
    with pytest.raises(TypeError, match="expected a Module, got float"):
        d["c"] = 1.0
    assert list(d) == ["a", "b"]  # the refused entries changed nothing
    d.clear()
    assert len(d) == 0 and list(d.parameters()) == []


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 3, rng=0), nn.BatchNorm1d(3))
        self.add_module("head", nn.Linear(3, 1, rng=1))
        self.register_parameter("scale", nn.Parameter(np.ones(1, dtype=np.float32)))

    def forward(self, x):
        return self.head(self.body(x)) * self.scale


def test_registration_and_lookup_methods(backend):
    net = _Net()
    assert [name for name, _ in net.named_children()] == ["body", "head"]
    assert list(net.state_dict()) == ["scale", "body.0.weight", "body.0.bias", "body.1.weight", "body.1.bias",
                                      "body.1.running_mean", "body.1.running_var", "head.weight", "head.bias"]
    assert net.get_submodule("body.1") is net.body[1]
    assert net.get_submodule("") is net
    assert net.get_parameter("head.bias") is net.head.bias
    assert net.get_parameter("scale") is net.scale
    assert len(list(net.buffers())) == 2
    with pytest.raises(AttributeError, match=r"body \(Sequential\) has no submodule '7'"):
        net.get_submodule("body.7")
    with pytest.raises(AttributeError, match="has no parameter 'gain'"):
        net.get_parameter("head.gain")
    with pytest.raises(KeyError, match="contain no '.'"):
        net.add_module("a.b", nn.ReLU())
    with pytest.raises(TypeError, match="must be a Parameter or None, got ndarray"):
        net.register_parameter("offset", np.zeros(1))
    with pytest.raises(KeyError, match="'scale' is already a parameter"):
        net.add_module("scale", nn.ReLU())
    net.add_module("head", None)
    assert net.head is None and [name for name, _ in net.named_children()] == ["body"]
    net.register_module("head", nn.Linear(3, 1))
    assert [name for name, _ in net.named_children()] == ["body", "head"]


def test_registration_matches_torch(backend):
    torch = pytest.importorskip("torch")

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
            self.add_module("head", torch.nn.Linear(3, 1))
            self.register_parameter("scale", torch.nn.Parameter(torch.ones(1)))

    theirs = [k for k in TorchNet().state_dict() if not k.endswith("num_batches_tracked")]
    assert list(_Net().state_dict()) == theirs  # scratchgan keeps no num_batches_tracked (see BatchNorm1d)


def test_requires_grad_freezes_a_network(backend):
    """D frozen with requires_grad_(False): G's gradient still flows through D, D's own is not computed."""
    rng = np.random.default_rng(0)
    G = nn.Linear(3, 2, rng=1, dtype="float64")
    D = nn.Sequential(nn.Linear(2, 4, rng=2, dtype="float64"), nn.Tanh(), nn.Linear(4, 1, rng=3, dtype="float64"))
    z = sg.tensor(rng.standard_normal((5, 3)))
    assert D.requires_grad_(False) is D
    D(G(z)).sum().backward()
    assert all(p.grad is None for p in D.parameters())
    # G's gradient against the closed form: d/dW sum(D(zW + b)) = z^T (1 w2^T * (1 - h^2)) W1^T
    W1, b1, W2 = D[0].weight.numpy(), D[0].bias.numpy(), D[2].weight.numpy()
    h = np.tanh((z.numpy() @ G.weight.numpy() + G.bias.numpy()) @ W1 + b1)
    upstream = ((1 - h ** 2) * W2[:, 0]) @ W1.T
    np.testing.assert_allclose(G.weight.grad.numpy(), z.numpy().T @ upstream, rtol=1e-12)
    D.requires_grad_()
    D(G(z)).sum().backward()
    assert all(p.grad is not None for p in D.parameters())
