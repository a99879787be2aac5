"""Generic gradient tests, run for every op declared in ``tests/op_specs.py`` (float64).

First order, per op and drawn case: central differences against the engine's
vector-Jacobian product for a random upstream gradient, shapes and dtypes of
the gradients, no mutation, no shared memory, exact zeros for a zero upstream
gradient, identical results on a second (retained) backward, and the sum of k
contributions for a node used k times. Second order: ``gradgradcheck`` for
every op whose second derivative is nonzero, and the WGAN-GP penalty of a
2-layer MLP checked with respect to its weights and its input.

Accelerations (``scratchgan/accel/``): every op's forward and first- and
second-order gradients with accelerations on equal those of its definitions
(``sg.reference_mode()``), with the array cache on for every size too; every
registered acceleration names an op of the table and is called by it, and
reference mode turns each off.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchgan as sg
from scratchgan import backend as sgb
from scratchgan import ops
from scratchgan.accel import memory
from scratchgan.autograd import fastpath
from op_specs import SECOND_ORDER, SPECS, OpSpec, cases, table

EPS, ATOL, RTOL = 1e-6, 1e-5, 1e-3  # central differences in float64, PyTorch gradcheck's defaults


def leaves(arrays):
    return [sg.Tensor(a, dtype="float64", requires_grad=True) for a in arrays]


def host(t):
    return None if t is None else t.numpy()


def numerical_vjp(f, arrays, upstream):
    """Central differences of ``sum(f(*arrays) * upstream)``, one element at a time."""

    def value(arrs):
        with sg.no_grad():
            out = f(*[sg.Tensor(a, dtype="float64") for a in arrs])
        return float((out.numpy() * upstream).sum())

    grads = []
    for i, a in enumerate(arrays):
        g = np.zeros_like(a)
        for j in np.ndindex(a.shape):
            work = [x.copy() for x in arrays]
            work[i][j] = a[j] + EPS
            plus = value(work)
            work[i][j] = a[j] - EPS
            g[j] = (plus - value(work)) / (2 * EPS)
        grads.append(g)
    return grads


def shares_memory(x, y) -> bool:
    return bool(sgb.array_module(x).shares_memory(x, y))


@pytest.mark.parametrize("spec", SPECS, ids=repr)
@table
@given(data=st.data())
def test_first_order(backend, spec: OpSpec, data):
    case = data.draw(cases(spec), label="case")
    f = lambda *ts: case.call(spec, *ts)  # noqa: E731
    xs = leaves(case.arrays)
    out = f(*xs)
    upstream = np.random.default_rng(case.seed).standard_normal(out.shape)
    g_out = sg.Tensor(upstream, dtype="float64")
    before = [x.data.copy() for x in xs], g_out.data.copy()

    grads = sg.grad(out, xs, grad_outputs=g_out, retain_graph=True, allow_unused=True)

    # shape, dtype, backend of every gradient; inputs and upstream untouched
    for x, g in zip(xs, grads):
        assert g is not None and g.shape == x.shape and g.dtype == x.dtype and g.backend == backend
    for x, b in zip(xs, before[0]):
        assert (x.data == b).all()
    assert (g_out.data == before[1]).all()

    # no two gradients share memory, nor with an input or the upstream gradient
    arrays = [g.data for g in grads]
    for p, q in itertools.combinations(arrays, 2):
        assert not shares_memory(p, q)
    for g in arrays:
        assert not shares_memory(g, g_out.data)
        assert not any(shares_memory(g, x.data) for x in xs)

    # against central differences
    expected = numerical_vjp(f, case.arrays, upstream)
    for i, (g, e) in enumerate(zip(grads, expected)):
        np.testing.assert_allclose(host(g), e, rtol=RTOL, atol=ATOL, err_msg=f"{spec.name}: input {i}")

    # a second backward through the retained graph gives identical results
    again = sg.grad(out, xs, grad_outputs=g_out, retain_graph=True)
    for g, h in zip(grads, again):
        assert np.array_equal(host(g), host(h))

    # a zero upstream gradient gives exact zeros
    zeros = sg.grad(out, xs, grad_outputs=sg.zeros_like(out), retain_graph=True)
    for z in zeros:
        assert not host(z).any()

    # a node used k times gets the sum of k contributions
    k = data.draw(st.integers(2, 3), label="k")
    total = out
    for _ in range(k - 1):
        total = total + out
    summed = sg.grad(total, xs, grad_outputs=g_out)
    for g, s in zip(grads, summed):
        # atol on the scale of the upstream gradient and of the result: a rule with cancellation (batch norm's
        # g - mean(g) - ...) is not linear to the last bit; a lost contribution is off by a whole gradient
        expected = k * host(g)
        scale = max(np.abs(expected).max(initial=0), k * np.abs(upstream).max(initial=0))
        np.testing.assert_allclose(host(s), expected, rtol=1e-12, atol=max(1e-300, 1e-12 * scale))  # subnormals


@pytest.mark.parametrize("spec", SPECS, ids=repr)
@table
@given(data=st.data())
def test_forward_matches_reference(backend, spec: OpSpec, data):
    """The op's float64 forward equals an independent plain-NumPy forward (``OpSpec.reference``)."""
    case = data.draw(cases(spec), label="case")
    out = case.call(spec, *leaves(case.arrays))
    expected = np.asarray(spec.reference(*[a.copy() for a in case.arrays], **case.kwargs), dtype=np.float64)
    assert out.shape == expected.shape, f"{spec.name}: shape {out.shape}, reference {expected.shape}"
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-14, err_msg=spec.name)


@pytest.mark.parametrize("spec", SPECS, ids=repr)
@table
@given(data=st.data())
def test_first_order_gradient_equals_recorded_gradient(backend, spec: OpSpec, data):
    """One definition per derivative: a rule's first-order acceleration and the recorded rule agree.

    Several rules (matmul, linear, linear_relu, relu, leaky_relu, mean_softplus,
    batch_norm, reshape, the convolutions) have a first-order backward on the
    raw arrays (``rule.fast``, registered in ``scratchgan/accel/``) that a plain
    ``backward`` runs; ``create_graph=True`` runs the rule itself. Finite
    differences check the first (test above); the second is what double
    backprop (WGAN-GP, R1) differentiates, and ``gradgradcheck`` cannot see
    a wrong factor in it (the numerical
    second derivative is taken of that same wrong first derivative). So every
    op's two paths are compared here: bit for bit where the arithmetic is the
    same, to ``spec.paths_rtol`` where it differs.
    """
    case = data.draw(cases(spec), label="case")
    xs = leaves(case.arrays)
    out = case.call(spec, *xs)
    upstream = sg.Tensor(np.random.default_rng(case.seed).standard_normal(out.shape), dtype="float64")
    plain = sg.grad(out, xs, grad_outputs=upstream, retain_graph=True, allow_unused=True)
    recorded = sg.grad(out, xs, grad_outputs=upstream, create_graph=True, allow_unused=True)
    for i, (p, r) in enumerate(zip(plain, recorded)):
        assert (p is None) == (r is None), f"{spec.name}: input {i}"
        if p is None:
            continue
        if spec.paths_rtol == 0.0:
            np.testing.assert_array_equal(host(p), host(r), err_msg=f"{spec.name}: input {i}")
        else:
            np.testing.assert_allclose(host(p), host(r), rtol=spec.paths_rtol, atol=1e-300,
                                       err_msg=f"{spec.name}: input {i}")


# --------------------------------------------------------------------------- accelerations against definitions


def _forward_and_gradients(spec: OpSpec, case, upstream, directions):
    """The op's output, its first-order gradients (a plain ``grad``) and, for a second-order op, the gradient
    of ``sum_i <grad_i, directions_i>`` (through ``create_graph=True``), as host arrays (None: no gradient)."""
    xs = leaves(case.arrays)
    out = case.call(spec, *xs)
    g_out = sg.Tensor(upstream, dtype="float64")
    first = sg.grad(out, xs, grad_outputs=g_out, retain_graph=True, allow_unused=True)
    second = []
    if spec.second_order:
        recorded = sg.grad(out, xs, grad_outputs=g_out, create_graph=True, allow_unused=True)
        terms = [(g * sg.Tensor(d, dtype="float64")).sum() for g, d in zip(recorded, directions)
                 if g is not None and g.requires_grad]
        if terms:
            total = terms[0]
            for t in terms[1:]:
                total = total + t
            second = sg.grad(total, xs, allow_unused=True)
    return [out.numpy()] + [host(g) for g in first] + [host(g) for g in second]


#: With every array from the cache the values of each elementwise op are the same, but a cached output takes
#: its first operand's memory layout where NumPy's own picks one from both operands (a broadcast gradient):
#: a later sum over a broadcast axis then adds in another order, a few ulps apart.
CACHE_LAYOUT_RTOL = 1e-12


def assert_same_arrays(got, want, rtol: float, what: str, gradient_rtol: float | None = None):
    """Bit for bit (``rtol == 0``), else within ``rtol`` of the largest value; same dtype and shape.

    ``got[0]`` and ``want[0]`` are the forward; ``gradient_rtol`` (default ``rtol``) is for the rest.
    """
    assert len(got) == len(want), what
    for i, (p, r) in enumerate(zip(got, want)):
        assert (p is None) == (r is None), f"{what}: array {i}"
        if p is None:
            continue
        assert p.dtype == r.dtype and p.shape == r.shape, f"{what}: array {i}"
        tol = rtol if i == 0 or gradient_rtol is None else gradient_rtol
        if tol == 0.0:
            np.testing.assert_array_equal(p, r, err_msg=f"{what}: array {i}")
        else:
            scale = np.abs(r).max(initial=0.0)
            np.testing.assert_allclose(p, r, rtol=tol, atol=max(1e-300, tol * scale), err_msg=f"{what}: array {i}")


@pytest.mark.parametrize("spec", SPECS, ids=repr)
@table
@given(data=st.data())
def test_accelerated_equals_reference_mode(backend, spec: OpSpec, data, monkeypatch):
    """Every acceleration against its definition: forward, first and second order, with accelerations on
    (the array cache at its threshold, then for every size) and in reference mode (the definitions only).

    Bit for bit where the arithmetic is the same; to ``spec.reference_rtol`` of the largest value where it
    differs (batch norm's first-order backward works on the forward's saved ``x_hat`` in another order of
    operations: 1e-9; the convolutions' accelerated CPU path sums in another order: 1e-12). With every
    array from the cache, the forward still bit for bit and the gradients to :data:`CACHE_LAYOUT_RTOL`.
    """
    case = data.draw(cases(spec), label="case")
    with sg.no_grad():
        shape = case.call(spec, *leaves(case.arrays)).shape
    rng = np.random.default_rng(case.seed)
    upstream = rng.standard_normal(shape)
    directions = [rng.standard_normal(a.shape) for a in case.arrays]
    with sg.reference_mode():
        want = _forward_and_gradients(spec, case, upstream, directions)
    got = _forward_and_gradients(spec, case, upstream, directions)
    assert_same_arrays(got, want, spec.reference_rtol, f"{spec.name} (array cache at its threshold)")
    with monkeypatch.context() as patch:  # the small arrays of the table through the cache too
        patch.setattr(memory, "MIN_BYTES", 0)
        got = _forward_and_gradients(spec, case, upstream, directions)
    assert_same_arrays(got, want, spec.reference_rtol, f"{spec.name} (every array from the cache)",
                       gradient_rtol=max(spec.reference_rtol, CACHE_LAYOUT_RTOL))


def specs_of(op: str) -> list:
    """The specs that run the op(s) a registration names: "name" or "a/b/c"; "pow" also runs pow_scalar."""
    parts = op.split("/")
    return [s for s in SPECS if any(s.name == p or s.name.startswith(p + "_") for p in parts)]


#: The registered accelerations of ops (a definition in scratchgan/ops/); the others (the optimizers') are
#: checked by their own layer's tests.
OP_ACCELERATIONS = [e for e in fastpath.REGISTRY if e.definition.__module__.startswith("scratchgan.ops.")]


def test_every_acceleration_names_ops_of_the_table():
    """So that test_accelerated_equals_reference_mode checks each (conv's registrations included)."""
    assert OP_ACCELERATIONS, "import scratchgan registers the accelerations (scratchgan/accel/__init__.py)"
    for entry in OP_ACCELERATIONS:
        for part in entry.op.split("/"):
            assert specs_of(part), f"{entry.where} registers a {entry.kind} for {part!r}, which is not in op_specs.SPECS"
        assert entry.kind in ("forward", "backward")


def _one_case(spec: OpSpec):
    """A small deterministic case of ``spec`` with no empty input."""
    from hypothesis import HealthCheck, find, settings
    return find(cases(spec), lambda c: all(a.size > 0 for a in c.arrays),
                settings=settings(database=None, derandomize=True, max_examples=500,
                                  suppress_health_check=list(HealthCheck)))


@pytest.mark.parametrize("entry", OP_ACCELERATIONS, ids=lambda e: f"{e.op}-{e.kind}-{e.fast.__name__}")
def test_reference_mode_turns_each_acceleration_off(entry, monkeypatch, accelerations_on):
    """Each registered function runs when its ops run (forward, backward, double backward), except in
    reference mode; with the array cache on for every size, so that its branches are the ones taken."""
    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return entry.fast(*args, **kwargs)

    if entry.kind == "forward":
        monkeypatch.setitem(fastpath._forward, entry.definition, counting)
    else:
        monkeypatch.setattr(entry.definition, "fast", counting)
    monkeypatch.setattr(memory, "MIN_BYTES", 0)
    runs = [(spec, _one_case(spec)) for spec in specs_of(entry.op)]
    assert runs
    for spec, case in runs:
        rng = np.random.default_rng(case.seed)
        with sg.no_grad():
            shape = case.call(spec, *leaves(case.arrays)).shape
        directions = [rng.standard_normal(a.shape) for a in case.arrays]
        calls.clear()
        with sg.reference_mode():
            _forward_and_gradients(spec, case, rng.standard_normal(shape), directions)
        assert not calls, f"{entry.fast.__qualname__} ran in reference mode ({spec.name})"
    for spec, case in runs:
        with sg.no_grad():
            shape = case.call(spec, *leaves(case.arrays)).shape
        _forward_and_gradients(spec, case, np.ones(shape), [np.ones(a.shape) for a in case.arrays])
    assert calls, f"{entry.fast.__qualname__} never ran for {[s.name for s, _ in runs]}"


BINARY = [s for s in SPECS if s.shapes in ("broadcast", "matmul") and s.arity == 2]


@pytest.mark.parametrize("spec", BINARY, ids=repr)
@table
@given(data=st.data())
def test_input_fed_to_both_operands(backend, spec: OpSpec, data):
    """f(x, x): x gets the sum of the gradients for each operand (ties included for maximum/minimum)."""
    case = data.draw(cases(spec), label="case")
    x_array = case.arrays[1] if spec.name == "div" else case.arrays[0]  # div: a nonzero denominator
    if spec.name == "matmul":
        x_array = np.random.default_rng(case.seed).standard_normal((3, 3))
    case.arrays = [x_array, x_array.copy()]
    if spec.name == "where":
        case.kwargs["cond"] = np.random.default_rng(case.seed).random(x_array.shape) < 0.5
    x = sg.Tensor(x_array, dtype="float64", requires_grad=True)
    out = case.call(spec, x, x)
    upstream = np.random.default_rng(case.seed).standard_normal(out.shape)
    (gx,) = sg.grad(out, [x], grad_outputs=sg.Tensor(upstream, dtype="float64"))
    a, b = leaves(case.arrays)
    ga, gb = sg.grad(case.call(spec, a, b), [a, b], grad_outputs=sg.Tensor(upstream, dtype="float64"))
    np.testing.assert_allclose(gx.numpy(), ga.numpy() + gb.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("spec", SECOND_ORDER, ids=repr)
@table
@given(data=st.data())
def test_second_order(backend, spec: OpSpec, data):
    case = data.draw(cases(spec, max_side=3, max_dims=3), label="case")
    xs = leaves(case.arrays)
    assert sg.gradgradcheck(lambda *ts: case.call(spec, *ts), xs, eps=EPS, atol=ATOL, rtol=RTOL, seed=case.seed % 1000)


# --------------------------------------------------------------------------- WGAN-GP shape


def gradient_penalty(x, w1, b1, w2, b2, act):
    """mean((||grad_x D(x)||_2 - 1)^2) for D(x) = act(x W1 + b1) W2 + b2."""
    critic = ops.matmul(act(ops.matmul(x, w1) + b1), w2) + b2
    (gx,) = sg.grad(critic.sum(), [x], create_graph=True)
    norm = ops.sqrt((gx * gx).sum(axis=1) + 1e-12)
    return ((norm - 1.0) ** 2).mean()


@pytest.mark.parametrize("act", [ops.tanh, ops.softplus], ids=["tanh", "softplus"])
def test_gradient_penalty_gradcheck(backend, act):
    rng = np.random.default_rng(0)
    shapes = {"x": (4, 3), "w1": (3, 5), "b1": (5,), "w2": (5, 1), "b2": (1,)}
    params = [sg.Tensor(rng.standard_normal(s), dtype="float64", requires_grad=True) for s in shapes.values()]
    fn = lambda x, w1, b1, w2, b2: gradient_penalty(x, w1, b1, w2, b2, act)  # noqa: E731
    assert sg.gradcheck(fn, params, eps=EPS, atol=ATOL, rtol=RTOL)
    # the penalty's gradient reaches the input and every weight but the output bias (D's slope ignores b2)
    *grads, g_b2 = sg.grad(fn(*params), params, allow_unused=True)
    assert all(np.abs(g.numpy()).sum() > 0 for g in grads) and g_b2 is None


def test_matmul_vector_cases(backend):
    """1-D operands follow NumPy: a row vector on the left, a column on the right, 0-d for two vectors."""
    rng = np.random.default_rng(1)
    for sa, sb in [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((4, 2, 3), (3,)), ((3,), (4, 3, 2))]:
        a, b = leaves([rng.standard_normal(sa), rng.standard_normal(sb)])
        out = ops.matmul(a, b)
        np.testing.assert_allclose(out.numpy(), a.numpy() @ b.numpy(), rtol=1e-12)
        assert sg.gradcheck(ops.matmul, [a, b])


def test_getitem_repeated_indices_add_up(backend):
    x = sg.Tensor(np.arange(4.0), dtype="float64", requires_grad=True)
    (x[[0, 0, 3, 0]] * sg.Tensor([1.0, 2.0, 3.0, 4.0], dtype="float64")).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [7.0, 0.0, 0.0, 3.0])
    y = sg.Tensor(np.ones((2, 3)), dtype="float64", requires_grad=True)
    assert sg.gradgradcheck(lambda y: y[np.array([1, 1]), 1:] * y[0, 1:], [y])  # indexing twice differentiable


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(), (1,), (7,), (64, 1), (3, 4, 5)])
def test_mean_softplus_is_mean_of_softplus_bit_for_bit(backend, dtype, shape):
    """The fused GAN-loss op gives the bits of mean(softplus(x)), value and gradient, with one node."""
    rng = np.random.default_rng(3)
    values = rng.standard_normal(shape) * 8  # both tails: softplus ~ x and softplus ~ e^x
    x1, x2 = sg.Tensor(values, dtype=dtype, requires_grad=True), sg.Tensor(values, dtype=dtype, requires_grad=True)
    fused, plain = ops.mean_softplus(x1), ops.mean(ops.softplus(x2))
    assert fused.grad_fn == "mean_softplus" and fused._parents == (x1,)
    assert fused.shape == () and fused.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(fused.numpy(), plain.numpy())
    (fused * 3.0).backward()
    (plain * 3.0).backward()
    assert x1.grad.backend == backend and x1.grad.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(x1.grad.numpy(), x2.grad.numpy())


def test_mean_softplus_rejects_empty_and_integer_input():
    with pytest.raises(ValueError, match="empty"):
        ops.mean_softplus(sg.Tensor(np.zeros((0, 1))))
    with pytest.raises(TypeError, match=r"floating tensor.*\.float\(\)"):
        ops.mean_softplus(sg.Tensor(np.arange(3)))


def test_gradients_of_0d_tensors_are_arrays():
    """NumPy makes scalars of 0-d arithmetic; the engine's array fast paths must still hand out arrays."""
    x = sg.Tensor(2.0, dtype="float64", requires_grad=True)
    (ops.relu(x) * 3.0 + ops.relu(x) + ops.mean_softplus(x)).backward()  # two contributions summed
    assert isinstance(x.grad.data, np.ndarray) and x.grad.shape == ()
    assert x.grad.item() == pytest.approx(4.0 + 1.0 / (1.0 + np.exp(-2.0)), rel=1e-12)
    x.grad.data[...] = 0.0  # an array can be written in place; a NumPy scalar cannot
    assert isinstance((x > 1.0).data, np.ndarray)
