"""The softmax ops, softmax cross-entropy, nn.CrossEntropyLoss and the ACGAN / InfoGAN losses.

docs/losses.md, "ACGAN and InfoGAN". Each loss is checked against an
independent formula (a direct NumPy loop over the rows, and PyTorch's
``cross_entropy`` / ``Normal.log_prob`` where torch is installed; those tests
skip cleanly without it), stays finite at extreme logits in float32 and
float64, and has its gradients checked against finite differences in float64,
first and second order. The op table (tests/op_specs.py) checks
``log_softmax``, ``softmax`` and ``softmax_cross_entropy`` like every other op.
"""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchgan as sg
from scratchgan.gan import losses
from scratchgan import nn, ops

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - the torch comparisons skip
    torch = F = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

LOG_2PI = np.log(2.0 * np.pi)


# --------------------------------------------------------------------------- independent references


def ce_loop(z, y) -> float:
    """Mean over rows of -log softmax(z_i)[y_i], one row at a time (np.logaddexp.reduce is the log-sum-exp)."""
    return float(np.mean([np.logaddexp.reduce(row) - row[t] for row, t in zip(np.asarray(z, np.float64), y)]))


def mi_loop(q=None, c=None, mu=None, s=None) -> float:
    """TF-GAN's mutual_information_penalty: minus the mean over the code groups of each group's mean log-likelihood."""
    groups = []
    if q is not None:
        groups.append(np.mean([row[k] - np.logaddexp.reduce(row) for row, k in zip(np.asarray(q, np.float64), c)]))
    if mu is not None:
        values = [-0.5 * (si - mi) ** 2 - 0.5 * LOG_2PI for si, mi in zip(np.ravel(s), np.ravel(mu))]
        groups.append(np.mean(values))
    return -float(np.mean(groups))


def t64(a, grad=True):
    return sg.Tensor(np.asarray(a, dtype=np.float64), dtype="float64", requires_grad=grad)


@st.composite
def logits_and_labels(draw, max_n=5, max_c=6, scale=10.0):
    n, c = draw(st.integers(1, max_n)), draw(st.integers(1, max_c))
    z = draw(hnp.arrays(np.float64, (n, c), elements=st.floats(-scale, scale)))
    y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    return z, y


extreme = st.one_of(st.floats(-1e4, 1e4), st.sampled_from([-1e4, 1e4, 0.0, 88.0, -88.0, 200.0]))


# --------------------------------------------------------------------------- softmax ops


@needs_torch
@given(data=st.data())
def test_log_softmax_and_softmax_match_torch(data):
    x = data.draw(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
                             elements=st.floats(-30, 30)), label="x")
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    for ours, theirs in ((ops.log_softmax, F.log_softmax), (ops.softmax, F.softmax)):
        a = t64(x)
        out = ours(a, axis=axis)
        tx = torch.tensor(x, requires_grad=True)
        expected = theirs(tx, dim=axis)
        np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-12, atol=1e-13)
        upstream = np.random.default_rng(0).standard_normal(x.shape)
        (g,) = sg.grad(out, [a], grad_outputs=t64(upstream, grad=False))
        (tg,) = torch.autograd.grad(expected, [tx], grad_outputs=torch.tensor(upstream))
        np.testing.assert_allclose(g.numpy(), tg.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log_softmax_is_finite_and_exact_at_extreme_logits(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4 + 1.0, -1e4 + 2.0], [89.0, 88.0, -200.0], [0.0, 0.0, 0.0]])
    x = sg.Tensor(z, dtype=dtype, requires_grad=True)
    logp = ops.log_softmax(x, axis=1)
    p = ops.softmax(x, axis=1)
    reference = z - np.logaddexp.reduce(z, axis=1, keepdims=True)
    assert logp.dtype == np.dtype(dtype) and np.all(np.isfinite(logp.numpy()))
    np.testing.assert_allclose(logp.numpy(), reference, rtol=1e-6 if dtype == "float32" else 1e-14, atol=1e-4)
    np.testing.assert_allclose(p.numpy().sum(axis=1), 1.0, rtol=1e-6)
    (g,) = sg.grad(ops.sum(logp[:, 0]), [x])
    assert np.all(np.isfinite(g.numpy()))


def test_softmax_ops_errors_are_clear():
    with pytest.raises(ValueError, match="0-d"):
        ops.log_softmax(sg.Tensor(1.0))
    with pytest.raises(ValueError, match=r"axis 2 is out of range for a tensor of shape \(2, 3\)"):
        ops.softmax(sg.zeros((2, 3)), axis=2)
    with pytest.raises(TypeError, match="floating"):
        ops.log_softmax(sg.Tensor(np.arange(3)))
    with pytest.raises(TypeError, match="one int"):
        ops.softmax(sg.zeros((2, 3)), axis=(0, 1))


def test_tensor_methods_call_the_ops():
    x = t64([[1.0, 2.0], [3.0, 5.0]], grad=False)
    np.testing.assert_array_equal(x.log_softmax(axis=0).numpy(), ops.log_softmax(x, axis=0).numpy())
    np.testing.assert_array_equal(x.softmax().numpy(), ops.softmax(x, axis=-1).numpy())


# --------------------------------------------------------------------------- softmax cross-entropy


@given(case=logits_and_labels(scale=50.0))
def test_cross_entropy_matches_the_loop(case):
    z, y = case
    assert losses.softmax_cross_entropy(t64(z), y).item() == pytest.approx(ce_loop(z, y), rel=1e-12, abs=1e-12)


@needs_torch
@given(case=logits_and_labels(scale=50.0), reduction=st.sampled_from(["mean", "sum", "none"]))
def test_cross_entropy_matches_torch(case, reduction):
    z, y = case
    a = t64(z)
    out = losses.softmax_cross_entropy(a, y, reduction=reduction)
    tz = torch.tensor(z, requires_grad=True)
    expected = F.cross_entropy(tz, torch.tensor(y), reduction=reduction)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    ops.sum(out).backward()
    expected.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), tz.grad.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@given(data=st.data())
def test_cross_entropy_finite_and_right_at_extreme_logits(dtype, data):
    n, c = data.draw(st.integers(1, 4), label="n"), data.draw(st.integers(2, 5), label="c")
    z = data.draw(hnp.arrays(np.float64, (n, c), elements=extreme), label="z")
    y = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)), label="y")
    zc = z.astype(dtype).astype(np.float64)  # the values the op sees
    x = sg.Tensor(z, dtype=dtype, requires_grad=True)
    loss = losses.softmax_cross_entropy(x, y)
    loss.backward()
    assert np.isfinite(loss.item()) and np.all(np.isfinite(x.grad.numpy()))
    tol = 1e-5 if dtype == "float32" else 1e-12
    assert loss.item() == pytest.approx(ce_loop(zc, y), rel=tol, abs=tol * max(1.0, np.abs(zc).max()))
    p = np.exp(zc - np.logaddexp.reduce(zc, axis=1, keepdims=True))
    np.testing.assert_allclose(x.grad.numpy(), (p - np.eye(c)[y]) / n, atol=1e-6 if dtype == "float32" else 1e-14)


def test_cross_entropy_gradcheck_first_and_second_order():
    rng = np.random.default_rng(0)
    z = t64(rng.standard_normal((4, 3)) * 2)
    y = np.array([0, 2, 2, 1])
    for reduction in ("mean", "sum", "none"):
        fn = lambda a, r=reduction: losses.softmax_cross_entropy(a, y, reduction=r)  # noqa: E731
        assert sg.gradcheck(fn, [z]) and sg.gradgradcheck(fn, [z])


@pytest.mark.parametrize(("logits", "labels", "error", "match"), [
    (np.zeros(3), [0], ValueError, r"shape \(N, C\).*got shape \(3,\)"),
    (np.zeros((2, 3)), [0, 1, 2], ValueError, r"must have shape \(2,\).*got shape \(3,\)"),
    (np.zeros((2, 3)), [[0], [1]], ValueError, r"must have shape \(2,\).*got shape \(2, 1\)"),
    (np.zeros((2, 3)), [0, 3], ValueError, r"must lie in \[0, 2\].*found 0..3"),
    (np.zeros((2, 3)), [-1, 0], ValueError, r"must lie in \[0, 2\]"),
    (np.zeros((2, 3)), [0.0, 1.0], TypeError, "integer class indices"),
    (np.zeros((0, 3)), np.zeros(0, np.int64), ValueError, "empty"),
])
def test_cross_entropy_shape_errors_are_clear(logits, labels, error, match):
    with pytest.raises(error, match=match):
        losses.softmax_cross_entropy(t64(logits), labels)


def test_cross_entropy_rejects_unknown_reduction_and_integer_logits():
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.softmax_cross_entropy(t64(np.zeros((1, 2))), [0], reduction="avg")
    with pytest.raises(TypeError, match="floating"):
        losses.softmax_cross_entropy(sg.Tensor(np.zeros((1, 2), np.int64)), [0])


# --------------------------------------------------------------------------- nn.CrossEntropyLoss


def _torch_like_case(shape, seed, probabilities=False, ignore=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3
    c = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0], *shape[2:])
    if probabilities:
        t = rng.dirichlet(np.ones(c), size=int(np.prod(tshape, dtype=int))).reshape(*tshape, c)
        return x, np.moveaxis(t, -1, 0 if len(shape) == 1 else 1)
    y = np.asarray(rng.integers(0, c, tshape))
    if ignore and y.size > 1:
        y.flat[0] = -100
    return x, y


@needs_torch
@pytest.mark.parametrize("shape", [(5,), (4, 5), (3, 5, 2, 2)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("target", ["index", "ignored", "probabilities"])
def test_cross_entropy_loss_module_matches_torch(shape, reduction, label_smoothing, target):
    x, t = _torch_like_case(shape, 1, probabilities=target == "probabilities", ignore=target == "ignored")
    a = t64(x)
    out = nn.CrossEntropyLoss(reduction=reduction, label_smoothing=label_smoothing)(a, t)
    tx = torch.tensor(x, requires_grad=True)
    expected = torch.nn.CrossEntropyLoss(reduction=reduction, label_smoothing=label_smoothing)(tx, torch.tensor(t))
    assert out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    ops.sum(out).backward()
    expected.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_cross_entropy_loss_module_errors_are_clear():
    x = t64(np.zeros((2, 3)))
    with pytest.raises(NotImplementedError, match="weight"):
        nn.CrossEntropyLoss(weight=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"index targets must have shape \(2,\)"):
        nn.CrossEntropyLoss()(x, np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match=r"probability targets must have the input's shape \(2, 3\)"):
        nn.CrossEntropyLoss()(x, np.zeros((2,)))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 2\].*found 5"):
        nn.CrossEntropyLoss()(x, np.array([0, 5]))
    assert np.isnan(nn.CrossEntropyLoss(ignore_index=1)(x, np.array([1, 1])).item())  # every element ignored


# --------------------------------------------------------------------------- ACGAN


@st.composite
def acgan_case(draw):
    c = draw(st.integers(2, 5))
    n, m = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    real = draw(hnp.arrays(np.float64, (n, c), elements=st.floats(-20, 20)))
    fake = draw(hnp.arrays(np.float64, (m, c), elements=st.floats(-20, 20)))
    y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    y_fake = draw(hnp.arrays(np.int64, (m,), elements=st.integers(0, c - 1)))
    return real, fake, y, y_fake


@given(case=acgan_case())
def test_acgan_losses_match_their_formulas(case):
    """D: CE on real + CE on fake (TF-GAN's acgan_discriminator_loss); G: CE on fake (acgan_generator_loss)."""
    real, fake, y, y_fake = case
    d = losses.acgan_discriminator_loss(t64(real), t64(fake), y, y_fake).item()
    assert d == pytest.approx(ce_loop(real, y) + ce_loop(fake, y_fake), rel=1e-12, abs=1e-12)
    g = losses.acgan_generator_loss(t64(fake), y_fake).item()
    assert g == pytest.approx(ce_loop(fake, y_fake), rel=1e-12, abs=1e-12)
    if len(fake) == len(real):  # TF-GAN's form: one label batch for both
        shared = losses.acgan_discriminator_loss(t64(real), t64(fake), y).item()
        assert shared == pytest.approx(ce_loop(real, y) + ce_loop(fake, y), rel=1e-12, abs=1e-12)


@needs_torch
@given(case=acgan_case())
def test_acgan_losses_match_torch(case):
    real, fake, y, y_fake = case
    r, f = t64(real), t64(fake)
    ours = losses.acgan_discriminator_loss(r, f, y, y_fake)
    tr, tf = torch.tensor(real, requires_grad=True), torch.tensor(fake, requires_grad=True)
    theirs = F.cross_entropy(tr, torch.tensor(y)) + F.cross_entropy(tf, torch.tensor(y_fake))
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-12, abs=1e-12)
    ours.backward()
    theirs.backward()
    np.testing.assert_allclose(r.grad.numpy(), tr.grad.numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(f.grad.numpy(), tf.grad.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@given(data=st.data())
def test_acgan_losses_finite_at_extreme_logits(dtype, data):
    n, c = data.draw(st.integers(1, 4), label="n"), data.draw(st.integers(2, 5), label="c")
    real = sg.Tensor(data.draw(hnp.arrays(np.float64, (n, c), elements=extreme)), dtype=dtype, requires_grad=True)
    fake = sg.Tensor(data.draw(hnp.arrays(np.float64, (n, c), elements=extreme)), dtype=dtype, requires_grad=True)
    y = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)), label="y")
    total = losses.acgan_discriminator_loss(real, fake, y) + losses.acgan_generator_loss(fake, y)
    total.backward()
    assert total.dtype == np.dtype(dtype) and np.isfinite(total.item())
    assert np.all(np.isfinite(real.grad.numpy())) and np.all(np.isfinite(fake.grad.numpy()))


def test_acgan_losses_gradcheck_first_and_second_order():
    rng = np.random.default_rng(1)
    real, fake = t64(rng.standard_normal((3, 4)) * 2), t64(rng.standard_normal((5, 4)) * 2)
    y, y_fake = np.array([0, 3, 1]), np.array([2, 2, 0, 1, 3])
    d = lambda r, f: losses.acgan_discriminator_loss(r, f, y, y_fake)  # noqa: E731
    g = lambda f: losses.acgan_generator_loss(f, y_fake)  # noqa: E731
    assert sg.gradcheck(d, [real, fake]) and sg.gradgradcheck(d, [real, fake])
    assert sg.gradcheck(g, [fake]) and sg.gradgradcheck(g, [fake])
    # the gradient of each term is (softmax - onehot) / its own batch size
    real.grad = fake.grad = None
    d(real, fake).backward()
    p = np.exp(ops.log_softmax(real, axis=1).numpy())
    np.testing.assert_allclose(real.grad.numpy(), (p - np.eye(4)[y]) / 3, atol=1e-14)


def test_acgan_shape_errors_are_clear():
    r, f = t64(np.zeros((2, 3))), t64(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"same number of classes; got shapes \(2, 3\) and \(2, 4\)"):
        losses.acgan_discriminator_loss(r, f, [0, 1])
    with pytest.raises(ValueError, match=r"real_class_logits must have shape \(N, C\)"):
        losses.acgan_discriminator_loss(t64(np.zeros(3)), r, [0, 1])
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        losses.acgan_discriminator_loss(r, r, [0, 1], [0, 1, 2])
    with pytest.raises(TypeError, match="must be a Tensor of logits"):
        losses.acgan_generator_loss(np.zeros((2, 3)), [0, 1])


# --------------------------------------------------------------------------- InfoGAN


def test_mutual_information_penalty_reproduces_tfgans_test_case():
    """TF-GAN's MutualInformationPenaltyTest: Categorical(logits=[1, 2]) at 1, Normal(0, 1) at 2 -> 1.61610.

    TF-GAN reduces the list of the two groups' log-likelihoods with
    SUM_BY_NONZERO_WEIGHTS, i.e. their mean: -(log softmax([1, 2])[1] + log N(2; 0, 1)) / 2.
    """
    value = losses.mutual_information_penalty(t64([[1.0, 2.0]]), [1], t64([[0.0]]), [[2.0]]).item()
    assert value == pytest.approx(1.61610, abs=5e-6)
    assert value == pytest.approx((np.log1p(np.exp(-1.0)) + 2.0 + 0.5 * LOG_2PI) / 2, rel=1e-14)


@st.composite
def info_case(draw):
    n = draw(st.integers(1, 5))
    groups = draw(st.sampled_from(["both", "categorical", "continuous"]))
    q = c = mu = s = None
    if groups != "continuous":
        k = draw(st.integers(2, 6))
        q = draw(hnp.arrays(np.float64, (n, k), elements=st.floats(-20, 20)))
        c = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    if groups != "categorical":
        d = draw(st.integers(1, 3))
        mu = draw(hnp.arrays(np.float64, (n, d), elements=st.floats(-5, 5)))
        s = draw(hnp.arrays(np.float64, (n, d), elements=st.floats(-1, 1)))
    return q, c, mu, s


def _mi(q, c, mu, s, dtype="float64", grad=True):
    qt = None if q is None else sg.Tensor(q, dtype=dtype, requires_grad=grad)
    mt = None if mu is None else sg.Tensor(mu, dtype=dtype, requires_grad=grad)
    return losses.mutual_information_penalty(qt, c, mt, s), qt, mt


@given(case=info_case())
def test_mutual_information_penalty_matches_the_loop(case):
    q, c, mu, s = case
    value = _mi(q, c, mu, s)[0].item()
    assert value == pytest.approx(mi_loop(q, c, mu, s), rel=1e-12, abs=1e-12)


@needs_torch
@given(case=info_case())
def test_mutual_information_penalty_matches_torch(case):
    q, c, mu, s = case
    ours, qt, mt = _mi(q, c, mu, s)
    groups, leaves = [], []
    if q is not None:
        tq = torch.tensor(q, requires_grad=True)
        groups.append(torch.distributions.Categorical(logits=tq).log_prob(torch.tensor(c)).mean())
        leaves.append((qt, tq))
    if mu is not None:
        tm = torch.tensor(mu, requires_grad=True)
        groups.append(torch.distributions.Normal(tm, torch.ones_like(tm)).log_prob(torch.tensor(s)).mean())
        leaves.append((mt, tm))
    theirs = -torch.stack(groups).mean()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-12, abs=1e-12)
    ours.backward()
    theirs.backward()
    for a, b in leaves:
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_mutual_information_penalty_gradients():
    """First and second order against finite differences; the closed forms (p - e_c)/(KN) and -(s - mu)/(KNd)."""
    rng = np.random.default_rng(2)
    q, mu = t64(rng.standard_normal((4, 5)) * 2), t64(rng.standard_normal((4, 2)))
    c, s = np.array([0, 4, 4, 2]), rng.uniform(-1, 1, (4, 2))
    fn = lambda a, b: losses.mutual_information_penalty(a, c, b, s)  # noqa: E731
    assert sg.gradcheck(fn, [q, mu]) and sg.gradgradcheck(fn, [q, mu])
    fn(q, mu).backward()
    p = np.exp(ops.log_softmax(q, axis=1).numpy())
    np.testing.assert_allclose(q.grad.numpy(), (p - np.eye(5)[c]) / (2 * 4), atol=1e-14)
    np.testing.assert_allclose(mu.grad.numpy(), -(s - mu.numpy()) / (2 * 4 * 2), atol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@given(data=st.data())
def test_mutual_information_penalty_finite_at_extreme_logits(dtype, data):
    n, k = data.draw(st.integers(1, 4), label="n"), data.draw(st.integers(2, 5), label="k")
    q = data.draw(hnp.arrays(np.float64, (n, k), elements=extreme), label="q")
    mu = data.draw(hnp.arrays(np.float64, (n, 2), elements=extreme), label="mu")
    c = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)), label="c")
    s = np.random.default_rng(0).uniform(-1, 1, (n, 2))
    value, qt, mt = _mi(q, c, mu, s, dtype=dtype)
    value.backward()
    assert value.dtype == np.dtype(dtype) and np.isfinite(value.item())
    assert np.all(np.isfinite(qt.grad.numpy())) and np.all(np.isfinite(mt.grad.numpy()))
    qc, mc = q.astype(dtype).astype(np.float64), mu.astype(dtype).astype(np.float64)
    expected = mi_loop(qc, c, mc, s.astype(dtype).astype(np.float64))
    assert value.item() == pytest.approx(expected, rel=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({}, ValueError, "no codes given"),
    ({"categorical_logits": t64(np.zeros((2, 3)))}, ValueError, "give both categorical_logits and categorical_codes"),
    ({"continuous_codes": np.zeros((2, 2))}, ValueError, "give both continuous_means and continuous_codes"),
    ({"continuous_means": t64(np.zeros((2, 2))), "continuous_codes": np.zeros((2, 3))}, ValueError,
     r"continuous_codes have shape \(2, 3\) but continuous_means have shape \(2, 2\)"),
    ({"continuous_means": t64(np.zeros(2)), "continuous_codes": np.zeros(2)}, ValueError, r"shape \(N, d\)"),
    ({"categorical_logits": t64(np.zeros((2, 3))), "categorical_codes": [0, 1],
      "continuous_means": t64(np.zeros((3, 1))), "continuous_codes": np.zeros((3, 1))}, ValueError, "same batch"),
    ({"categorical_logits": t64(np.zeros((2, 3))), "categorical_codes": [0, 3]}, ValueError, r"\[0, 2\]"),
])
def test_mutual_information_penalty_errors_are_clear(kwargs, error, match):
    with pytest.raises(error, match=match):
        losses.mutual_information_penalty(**kwargs)


def test_continuous_codes_are_constants():
    """The codes G was given get no gradient: the penalty trains Q's prediction (and G through Q's input)."""
    mu, s = t64(np.zeros((2, 1))), t64(np.array([[0.5], [-0.5]]))
    losses.mutual_information_penalty(continuous_means=mu, continuous_codes=s).backward()
    assert s.grad is None and mu.grad is not None
