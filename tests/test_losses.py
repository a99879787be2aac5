"""Loss-by-loss checks of scratchgan.gan.losses (docs/losses.md cites these tests by name).

References are written here independently of the library (NumPy, float64).
GAN-theory properties (saturation, optimal discriminator, Wasserstein and the
end-to-end check) live in tests/test_gan_math.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scratchgan as sg
from scratchgan.gan import losses
from scratchgan import nn
from scratchgan.gan.losses import KINDS, bce_with_logits, clip_weights, d_loss, g_loss, gradient_penalty, r1_penalty, r2_penalty

F64 = "float64"


# --------------------------------------------------------------------------- references (float64, NumPy)


def ref_softplus(x):
    return np.logaddexp(0.0, x)


def ref_sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def ref_bce(x, z):
    """-z log sigma(x) - (1 - z) log(1 - sigma(x)), with log sigma(x) = -logaddexp(0, -x)."""
    x = np.asarray(x, np.float64)
    z = np.asarray(z, np.float64)
    return float(np.mean(z * np.logaddexp(0.0, -x) + (1.0 - z) * np.logaddexp(0.0, x)))


def ref_d_loss(kind, r, f):
    r, f = np.asarray(r, np.float64), np.asarray(f, np.float64)
    if kind in ("minimax", "ns"):
        # -[mean log D(x) + mean log(1 - D(G(z)))], straight from the definition (|logits| <= 8 here)
        return float(-(np.mean(np.log(ref_sigmoid(r))) + np.mean(np.log(1.0 - ref_sigmoid(f)))))
    if kind == "wasserstein":
        return float(f.mean() - r.mean())
    if kind == "lsgan":
        return float(0.5 * np.mean((r - 1) ** 2) + 0.5 * np.mean(f ** 2))
    return float(np.mean(np.maximum(0, 1 - r)) + np.mean(np.maximum(0, 1 + f)))


def ref_g_loss(kind, f):
    f = np.asarray(f, np.float64)
    if kind == "minimax":
        return float(np.mean(np.log(1.0 - ref_sigmoid(f))))
    if kind == "ns":
        return float(-np.mean(np.log(ref_sigmoid(f))))
    if kind == "lsgan":
        return float(0.5 * np.mean((f - 1) ** 2))
    return float(-f.mean())


def ref_d_grad(kind, r, f):
    """Analytic gradients of the discriminator loss w.r.t. the real and fake logits."""
    nr, nf = r.size, f.size
    if kind in ("minimax", "ns"):
        return -ref_sigmoid(-r) / nr, ref_sigmoid(f) / nf
    if kind == "wasserstein":
        return -np.ones_like(r) / nr, np.ones_like(f) / nf
    if kind == "lsgan":
        return (r - 1) / nr, f / nf
    return -(r < 1).astype(float) / nr, (f > -1).astype(float) / nf


def ref_g_grad(kind, f):
    n = f.size
    if kind == "minimax":
        return -ref_sigmoid(f) / n
    if kind == "ns":
        return -ref_sigmoid(-f) / n
    if kind == "lsgan":
        return (f - 1) / n
    return -np.ones_like(f) / n


def t64(a, requires_grad=False):
    return sg.Tensor(np.asarray(a, np.float64), dtype=F64, requires_grad=requires_grad)


def tanh_critic(W1, b1, w2, b2):
    """A smooth two-layer critic on raw tensors, flattening all non-batch axes."""
    def critic(x):
        h = sg.ops.tanh(x.reshape(x.shape[0], -1) @ W1 + b1)
        return h @ w2 + b2  # (N, 1)
    return critic


def critic_params(d, h, seed, dtype=F64):
    rng = np.random.default_rng(seed)
    return [
        sg.Tensor(rng.normal(size=(d, h)), dtype=dtype, requires_grad=True),
        sg.Tensor(rng.normal(size=(h,)) * 0.3, dtype=dtype, requires_grad=True),
        sg.Tensor(rng.normal(size=(h, 1)), dtype=dtype, requires_grad=True),
        sg.Tensor(rng.normal(size=(1,)) * 0.3, dtype=dtype, requires_grad=True),
    ]


def grad_norms_numpy(W1, b1, w2, x):
    """Per-sample ||grad_x critic(x)|| for the tanh critic, by hand (chain rule in NumPy)."""
    flat = x.reshape(x.shape[0], -1)
    h = np.tanh(flat @ W1 + b1)
    g = ((1 - h ** 2) * w2[:, 0]) @ W1.T  # (N, D)
    return np.sqrt((g ** 2).sum(axis=1))


logit_arrays = hnp.arrays(
    np.float64, hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=6),
    elements=st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False),
)


# --------------------------------------------------------------------------- bce_with_logits


@settings(deadline=None)
@given(x=logit_arrays, data=st.data(), dtype=st.sampled_from(["float32", "float64"]))
def test_bce_finite_and_matches_reference(x, data, dtype):
    """Value and gradient finite for logits in [-1e4, 1e4]; equal to the float64 reference."""
    z = data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(0, 1)))
    logits = sg.Tensor(x, dtype=dtype, requires_grad=True)
    xr = logits.numpy().astype(np.float64)  # the values actually fed (float32-rounded)
    zr = z.astype(dtype).astype(np.float64)  # targets are cast to the logits' dtype too
    loss = bce_with_logits(logits, z)
    (g,) = sg.grad(loss, logits)
    assert loss.dtype == np.dtype(dtype) and g.dtype == np.dtype(dtype) and g.shape == x.shape
    assert np.isfinite(loss.item()) and np.all(np.isfinite(g.numpy()))
    ref = ref_bce(xr, zr)
    ref_g = (ref_sigmoid(xr) - zr) / x.size
    if dtype == "float64":
        np.testing.assert_allclose(loss.item(), ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(g.numpy(), ref_g, rtol=1e-12, atol=1e-15)
    else:
        np.testing.assert_allclose(loss.item(), ref, rtol=2e-6, atol=1e-7)
        np.testing.assert_allclose(g.numpy(), ref_g, rtol=1e-5, atol=1e-7 / x.size)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_extreme_logits_exact(dtype):
    """At +-1e4 with hard labels the loss is 0 or 1e4 exactly, no overflow, no cancellation."""
    x = sg.Tensor([1e4, -1e4, 1e4, -1e4, 20.0], dtype=dtype, requires_grad=True)
    z = [1.0, 0.0, 0.0, 1.0, 1.0]
    loss = bce_with_logits(x, z)
    (g,) = sg.grad(loss, x)
    np.testing.assert_allclose(loss.item(), (2e4 + np.exp(-20.0)) / 5, rtol=1e-6)
    np.testing.assert_allclose(g.numpy(), np.array([0, 0, 1, -1, -np.exp(-20.0)]) / 5, rtol=1e-5, atol=1e-12)
    # the small loss of a confident correct logit keeps its digits (softplus(x) - x*z would give 0)
    small = bce_with_logits(sg.Tensor([20.0], dtype=dtype), [1.0]).item()
    np.testing.assert_allclose(small, np.log1p(np.exp(-20.0)), rtol=1e-5)


def test_bce_gradient_at_zero_logit():
    """At x = 0 (a zero-initialised last layer) the gradient is sigma(0) - z = 0.5 - z, no kink."""
    x = sg.Tensor([0.0, 0.0, 0.0], dtype=F64, requires_grad=True)
    (g,) = sg.grad(bce_with_logits(x, [1.0, 0.0, 0.25]), x)
    np.testing.assert_allclose(g.numpy(), np.array([-0.5, 0.5, 0.25]) / 3, rtol=1e-15)


def test_bce_shape_mismatch_raises():
    x = sg.Tensor(np.zeros((4, 1)))
    for targets in (np.ones(4), sg.Tensor(np.ones(4)), [1.0, 0.0, 1.0, 0.0]):
        with pytest.raises(ValueError, match=r"\(4,\).*\(4, 1\)"):
            bce_with_logits(x, targets)
    with pytest.raises(TypeError, match="logits"):
        bce_with_logits(np.zeros(3), 1.0)


@pytest.mark.parametrize("target", [1.0, 0.0, 0.25])
def test_bce_target_forms_agree(target):
    """A number (the fused path), a list, a float64 array (with float32 logits) and a Tensor give the same loss."""
    x = sg.Tensor([-1.5, 0.3, 2.0])
    ones = np.ones(3)
    values = [
        bce_with_logits(x, target).item(),
        bce_with_logits(x, [target] * 3).item(),
        bce_with_logits(x, target * ones).item(),
        bce_with_logits(x, sg.Tensor(target * ones)).item(),
        bce_with_logits(x, sg.Tensor(target * ones, dtype=F64)).item(),
    ]
    np.testing.assert_allclose(values, ref_bce(x.numpy(), target), rtol=1e-6)


def test_probability_bce_fails_where_logit_bce_does_not():
    """Tutorial pitfall: Sigmoid then BCE on probabilities. In float32 sigmoid(20) rounds to 1 and
    sigmoid(-120) to 0, so log gives -inf (loss inf) and the gradient is inf * 0 = NaN; from logits
    the loss is 20 and 120 and the gradient (sigma(x) - z) / N."""
    x = sg.Tensor([20.0, -120.0], requires_grad=True)
    z = np.array([0.0, 1.0], np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = sg.ops.sigmoid(x)
        naive = -(sg.ops.log(p) * z + sg.ops.log(1.0 - p) * (1.0 - z)).mean()
        (g_naive,) = sg.grad(naive, x)
    assert np.isinf(naive.item()) and np.all(np.isnan(g_naive.numpy()))
    loss = bce_with_logits(x, z)
    (g,) = sg.grad(loss, x)
    assert loss.item() == pytest.approx(70.0, rel=1e-6)
    np.testing.assert_allclose(g.numpy(), [0.5, -0.5], rtol=1e-6)


def test_bce_gradcheck():
    x = t64([[-2.0, 0.3], [1.7, -0.4]], requires_grad=True)
    z = t64([[0.0, 1.0], [0.2, 0.9]], requires_grad=True)
    assert sg.gradcheck(bce_with_logits, [x, z], rtol=1e-5)
    assert sg.gradgradcheck(bce_with_logits, [x, z], rtol=1e-5)


def test_bce_does_not_mutate_inputs():
    x_np = np.array([0.5, -3.0])
    z_np = np.array([1.0, 0.0])
    x = t64(x_np, requires_grad=True)
    bce_with_logits(x, z_np).backward()
    np.testing.assert_array_equal(x.numpy(), [0.5, -3.0])
    np.testing.assert_array_equal(z_np, [1.0, 0.0])


# --------------------------------------------------------------------------- d_loss / g_loss

# logits kept at least 1e-3 from the hinge kinks (r = 1, f = -1)
kink_free = st.floats(-8, 8).filter(lambda v: abs(abs(v) - 1) > 1e-3)
logit_vectors = hnp.arrays(np.float64, st.integers(1, 5), elements=kink_free)


@settings(deadline=None)
@given(kind=st.sampled_from(KINDS), r=logit_vectors, f=logit_vectors)
def test_d_loss_value_and_gradient(kind, r, f):
    """Each kind equals its formula; the gradient w.r.t. each logit equals the documented one."""
    rt, ft = t64(r, True), t64(f, True)
    loss = d_loss(kind, rt, ft)
    np.testing.assert_allclose(loss.item(), ref_d_loss(kind, r, f), rtol=1e-10, atol=1e-12)
    gr, gf = sg.grad(loss, [rt, ft])
    er, ef = ref_d_grad(kind, r, f)
    np.testing.assert_allclose(gr.numpy(), er, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gf.numpy(), ef, rtol=1e-10, atol=1e-15)


@settings(deadline=None)
@given(kind=st.sampled_from(KINDS), f=logit_vectors)
def test_g_loss_value_and_gradient(kind, f):
    ft = t64(f, True)
    loss = g_loss(kind, ft)
    np.testing.assert_allclose(loss.item(), ref_g_loss(kind, f), rtol=1e-10, atol=1e-12)
    (g,) = sg.grad(loss, ft)
    np.testing.assert_allclose(g.numpy(), ref_g_grad(kind, f), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
def test_adversarial_losses_gradcheck(kind):
    r = t64([[1.7], [-0.4], [0.3]], requires_grad=True)
    f = t64([[-2.2], [0.6]], requires_grad=True)
    assert sg.gradcheck(lambda r, f: d_loss(kind, r, f), [r, f])
    assert sg.gradcheck(lambda f: g_loss(kind, f), [f])
    if kind in ("minimax", "ns", "lsgan"):  # smooth: their second derivatives too
        assert sg.gradgradcheck(lambda r, f: d_loss(kind, r, f), [r, f])
        assert sg.gradgradcheck(lambda f: g_loss(kind, f), [f])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adversarial_losses_finite_at_extreme_logits(kind, dtype):
    """Checklist 1 for d_loss and g_loss: finite values and gradients at logits of +-1e4."""
    r = sg.Tensor([1e4, -1e4, 0.0], dtype=dtype, requires_grad=True)
    f = sg.Tensor([-1e4, 1e4, 3.0], dtype=dtype, requires_grad=True)
    for loss in (d_loss(kind, r, f), g_loss(kind, f)):
        grads = sg.grad(loss, [r, f], allow_unused=True)
        assert np.isfinite(loss.item())
        assert all(g is None or np.all(np.isfinite(g.numpy())) for g in grads)


@pytest.mark.parametrize("kind", KINDS)
def test_losses_float32_match_float64(kind):
    rng = np.random.default_rng(3)
    r, f = rng.normal(size=(16, 1)) * 3, rng.normal(size=(16, 1)) * 3
    for fn in (lambda a, b: d_loss(kind, a, b), lambda a, b: g_loss(kind, b)):
        v32 = fn(sg.Tensor(r), sg.Tensor(f)).item()
        v64 = fn(t64(r), t64(f)).item()
        np.testing.assert_allclose(v32, v64, rtol=1e-5, atol=1e-6)


def test_minimax_and_ns_discriminator_is_bce():
    r, f = t64([0.3, -1.2, 4.0]), t64([-0.7, 2.5])
    expected = bce_with_logits(r, 1.0).item() + bce_with_logits(f, 0.0).item()
    assert d_loss("minimax", r, f).item() == pytest.approx(expected, rel=1e-14)
    assert d_loss("ns", r, f).item() == pytest.approx(expected, rel=1e-14)


def test_label_smoothing():
    """One-sided: the real target becomes 1 - s, the fake target stays 0."""
    r, f = t64([0.3, -1.2, 4.0], True), t64([-0.7, 2.5], True)
    s = 0.1
    loss = d_loss("ns", r, f, label_smoothing=s)
    expected = ref_bce(r.numpy(), 1 - s) + ref_bce(f.numpy(), 0.0)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    gr, gf = sg.grad(loss, [r, f])
    np.testing.assert_allclose(gr.numpy(), (ref_sigmoid(r.numpy()) - (1 - s)) / 3, rtol=1e-12)
    np.testing.assert_allclose(gf.numpy(), ref_sigmoid(f.numpy()) / 2, rtol=1e-12)
    with pytest.raises(ValueError, match="minimax"):
        d_loss("wasserstein", r, f, label_smoothing=0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        d_loss("ns", r, f, label_smoothing=1.0)


def test_unknown_kind_raises_listing_kinds():
    x = t64([0.0])
    for call in (lambda: d_loss("wgan", x, x), lambda: g_loss("saturating", x)):
        with pytest.raises(ValueError) as info:
            call()
        for kind in KINDS:
            assert repr(kind) in str(info.value)


# --------------------------------------------------------------------------- gradient penalty, R1, R2


def test_gradient_penalty_matches_reference():
    """Per-sample norm over ALL non-batch axes of (N, 2, 3) inputs; weight * mean((norm - 1)^2)."""
    params = critic_params(6, 4, seed=1)
    critic = tanh_critic(*params)
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(5, 2, 3)), rng.normal(size=(5, 2, 3))
    alpha = rng.random(5)
    pen = gradient_penalty(critic, t64(real), t64(fake), weight=7.0, alpha=alpha)
    x_hat = alpha[:, None, None] * real + (1 - alpha[:, None, None]) * fake
    W1, b1, w2, _ = (p.numpy() for p in params)
    norms = np.sqrt(grad_norms_numpy(W1, b1, w2, x_hat) ** 2 + 1e-12)
    assert pen.shape == () and pen.dtype == np.float64
    assert pen.item() == pytest.approx(7.0 * np.mean((norms - 1) ** 2), rel=1e-12)
    one = gradient_penalty(critic, t64(real), t64(fake), weight=7.0, target=0.8, one_sided=True, alpha=alpha)
    assert one.item() == pytest.approx(7.0 * np.mean(np.maximum(norms - 0.8, 0) ** 2), rel=1e-12)


def test_gradient_penalty_alpha_draws():
    """alpha ~ U[0, 1], one per sample: a seed reproduces it; alpha = 1 puts x_hat on the real batch."""
    params = critic_params(3, 4, seed=4)
    critic = tanh_critic(*params)
    rng = np.random.default_rng(5)
    real, fake = t64(rng.normal(size=(6, 3))), t64(rng.normal(size=(6, 3)))
    a = gradient_penalty(critic, real, fake, rng=np.random.default_rng(9)).item()
    b = gradient_penalty(critic, real, fake, rng=np.random.default_rng(9)).item()
    c = gradient_penalty(critic, real, fake, alpha=np.random.default_rng(9).random((6, 1))).item()
    assert a == b == c
    at_real = gradient_penalty(critic, real, fake, alpha=1.0).item()
    at_real2 = gradient_penalty(critic, real, t64(rng.normal(size=(6, 3))), alpha=np.ones(6)).item()
    assert at_real == at_real2


def test_gradient_penalty_validation():
    critic = tanh_critic(*critic_params(3, 2, seed=0))
    real = t64(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(5, 3\)"):
        gradient_penalty(critic, real, t64(np.zeros((5, 3))))
    bad = np.zeros((4, 3))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        gradient_penalty(critic, real, t64(bad))
    with pytest.raises(ValueError, match="NaN"):
        r1_penalty(critic, t64(bad), 1.0)
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        gradient_penalty(critic, real, real, alpha=1.5)
    with pytest.raises(ValueError, match="alpha has shape"):
        gradient_penalty(critic, real, real, alpha=np.ones(3))
    with pytest.raises(ValueError, match=r"one score per sample.*\(4, 2\)"):
        gradient_penalty(lambda x: x[:, :2], real, real)
    with pytest.raises(TypeError, match="dtype"):
        gradient_penalty(critic, real, sg.Tensor(np.zeros((4, 3)), dtype="float32"))
    with pytest.raises(ValueError, match="weight"):
        gradient_penalty(critic, real, real, weight=-1.0)


def test_gradient_penalty_does_not_touch_inputs():
    """real and fake are detached: the penalty trains the critic, never the generator."""
    params = critic_params(3, 4, seed=6)
    real = t64(np.random.default_rng(0).normal(size=(4, 3)), requires_grad=True)
    fake = t64(np.random.default_rng(1).normal(size=(4, 3)), requires_grad=True)
    before = fake.numpy().copy()
    pen = gradient_penalty(tanh_critic(*params), real, fake, alpha=0.5)
    pen.backward()
    assert real.grad is None and fake.grad is None
    assert all(p.grad is not None for p in params[:3])
    np.testing.assert_array_equal(fake.numpy(), before)


def _penalty_inputs(seed=0, n=3, d=2, h=3):
    rng = np.random.default_rng(seed)
    params = critic_params(d, h, seed=seed + 10)
    return params, t64(rng.normal(size=(n, d))), t64(rng.normal(size=(n, d))), rng.random(n)


@pytest.mark.parametrize("one_sided", [False, True])
def test_gradient_penalty_gradcheck(one_sided):
    """First and second derivatives w.r.t. the critic's weights (a smooth tanh critic, float64)."""
    params, real, fake, alpha = _penalty_inputs()
    fn = lambda *p: gradient_penalty(tanh_critic(*p), real, fake, weight=3.0, target=0.5,  # noqa: E731
                                     one_sided=one_sided, alpha=alpha)
    assert fn(*params).item() > 0  # one-sided: some norms above the target, so it is not trivially 0
    assert sg.gradcheck(fn, params)
    assert sg.gradgradcheck(fn, params)


def test_gradient_penalty_gradgradcheck_inputs():
    """Derivatives w.r.t. the evaluation points x_hat and the weights together (the code path after interpolation)."""
    params, real, _, _ = _penalty_inputs(seed=1)
    x = t64(real.numpy(), requires_grad=True)
    fn = lambda x, *p: losses._gp_at(tanh_critic(*p), x, 2.0, 1.0, False)  # noqa: E731
    assert sg.gradcheck(fn, [x, *params])
    assert sg.gradgradcheck(fn, [x, *params])


@pytest.mark.parametrize("which", ["r1", "r2"])
def test_r1_r2_gradcheck(which):
    params, real, fake, _ = _penalty_inputs(seed=2)
    penalty = r1_penalty if which == "r1" else r2_penalty
    data = real if which == "r1" else fake
    fn = lambda *p: penalty(tanh_critic(*p), data, 5.0)  # noqa: E731
    assert sg.gradcheck(fn, params)
    assert sg.gradgradcheck(fn, params)
    x = t64(data.numpy(), requires_grad=True)
    fx = lambda x, *p: losses._r_at(tanh_critic(*p), x, 5.0, which)  # noqa: E731
    assert sg.gradcheck(fx, [x, *params])
    assert sg.gradgradcheck(fx, [x, *params])


def test_r1_r2_values():
    """gamma/2 * mean ||grad_x D||^2: for D(x) = x.w + b that is gamma/2 * ||w||^2 (Mescheder et al. 2018)."""
    w = t64([[0.6], [-0.8], [2.0]], requires_grad=True)
    b = t64([0.3], requires_grad=True)
    critic = lambda x: x @ w + b  # noqa: E731
    x = np.random.default_rng(0).normal(size=(5, 3))
    for penalty in (r1_penalty, r2_penalty):
        pen = penalty(critic, t64(x), 4.0)
        assert pen.item() == pytest.approx(2.0 * (0.36 + 0.64 + 4.0), rel=1e-14)
        (gw,) = sg.grad(pen, w)  # d/dw gamma/2 ||w||^2 = gamma w
        np.testing.assert_allclose(gw.numpy(), 4.0 * w.numpy(), rtol=1e-14)
    params = critic_params(3, 4, seed=8)
    W1, b1, w2, _ = (p.numpy() for p in params)
    pen = r1_penalty(tanh_critic(*params), t64(x), 3.0)
    assert pen.item() == pytest.approx(1.5 * np.mean(grad_norms_numpy(W1, b1, w2, x) ** 2), rel=1e-12)


def test_penalty_finite_when_input_gradient_is_zero():
    """The epsilon sits inside the sqrt: a critic with a zero input gradient gets finite gradients."""
    w = t64([[0.0], [0.0]], requires_grad=True)
    critic = lambda x: x @ w  # noqa: E731
    x = t64(np.ones((3, 2)))
    pen = gradient_penalty(critic, x, x, weight=10.0, alpha=0.5)
    assert pen.item() == pytest.approx(10.0 * (1e-6 - 1) ** 2, rel=1e-12)
    (gw,) = sg.grad(pen, w)
    assert np.all(np.isfinite(gw.numpy()))


def test_epsilon_outside_sqrt_gives_nan_gradient():
    """The tutorial form sqrt(sum g^2) + eps has a NaN gradient at g = 0 (0 * inf): why eps goes inside."""
    w = t64([[0.0], [0.0]], requires_grad=True)
    x = t64(np.ones((3, 2)), requires_grad=True)
    (g,) = sg.grad((x @ w).sum(), x, create_graph=True)
    norms = sg.ops.sqrt((g * g).sum(axis=1)) + 1e-12  # epsilon outside
    with np.errstate(divide="ignore", invalid="ignore"):
        (gw,) = sg.grad(((norms - 1.0) ** 2).mean(), w)
    assert np.all(np.isnan(gw.numpy()))


def test_per_element_penalty_is_not_the_gradient_penalty():
    """A norm taken per element (no sum over features) is a different, wrong penalty."""
    w = t64([[0.6], [0.8]])  # ||w|| = 1: the true penalty is 0
    critic = lambda x: x @ w  # noqa: E731
    x = np.random.default_rng(0).normal(size=(4, 2))
    assert gradient_penalty(critic, t64(x), t64(x[::-1]), weight=10.0).item() == pytest.approx(0.0, abs=1e-10)
    xt = t64(x, requires_grad=True)
    (g,) = sg.grad(critic(xt).sum(), xt, create_graph=True)
    per_element = (((g * g + 1e-12) ** 0.5 - 1.0) ** 2).mean() * 10.0
    assert per_element.item() == pytest.approx(10.0 * np.mean([(0.6 - 1) ** 2, (0.8 - 1) ** 2]), rel=1e-6)


def test_batchnorm_critic_breaks_gradient_penalty():
    """With batch norm the critic's outputs sum to a constant, so grad(sum) is ~0 for every sample:
    the 'per-sample' gradients are wrong and the penalty just reads weight * (0 - 1)^2."""
    w = t64([[1.5], [-2.0]], requires_grad=True)

    def bn_critic(x):  # normalise each feature over the batch, then a linear layer
        mu = x.mean(axis=0, keepdims=True)
        c = x - mu
        var = (c * c).mean(axis=0, keepdims=True)
        return (c / sg.ops.sqrt(var + 1e-5)) @ w

    rng = np.random.default_rng(0)
    real, fake = t64(rng.normal(size=(8, 2))), t64(rng.normal(size=(8, 2)) + 3.0)
    pen = gradient_penalty(bn_critic, real, fake, weight=10.0, alpha=rng.random(8))
    assert pen.item() == pytest.approx(10.0, rel=1e-4)  # true per-sample norms are ~||w|| / std = far from 0
    no_bn = gradient_penalty(lambda x: x @ w, real, fake, weight=10.0, alpha=0.5)
    assert no_bn.item() == pytest.approx(10.0 * (2.5 - 1) ** 2, rel=1e-9)


def test_penalty_under_no_grad():
    """Evaluating a penalty under no_grad gives the same value and records nothing."""
    params, real, fake, alpha = _penalty_inputs(seed=3)
    critic = tanh_critic(*params)
    with_graph = gradient_penalty(critic, real, fake, alpha=alpha)
    with sg.no_grad():
        without = gradient_penalty(critic, real, fake, alpha=alpha)
        r1 = r1_penalty(critic, real, 2.0)
    assert with_graph.requires_grad and not without.requires_grad and not r1.requires_grad
    assert without.item() == with_graph.item()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_penalties_dtype(dtype):
    """float32 data and weights give float32 penalties close to the float64 ones."""
    params = critic_params(3, 4, seed=5, dtype=dtype)
    rng = np.random.default_rng(7)
    real, fake = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    alpha = rng.random(6)
    values = []
    for pen in (gradient_penalty(tanh_critic(*params), sg.Tensor(real, dtype=dtype), sg.Tensor(fake, dtype=dtype),
                                 alpha=alpha),
                r1_penalty(tanh_critic(*params), sg.Tensor(real, dtype=dtype), 2.0)):
        assert pen.dtype == np.dtype(dtype)
        grads = sg.grad(pen, params[:3])
        assert all(g.dtype == np.dtype(dtype) for g in grads)
        values.append(pen.item())
    if dtype == "float32":  # raw arrays become float32 tensors, as with sg.Tensor(array)
        from_arrays = gradient_penalty(tanh_critic(*params), real, fake, alpha=alpha)
        assert from_arrays.dtype == np.float32 and from_arrays.item() == values[0]
    p64 = critic_params(3, 4, seed=5)
    ref = [gradient_penalty(tanh_critic(*p64), t64(real), t64(fake), alpha=alpha).item(),
           r1_penalty(tanh_critic(*p64), t64(real), 2.0).item()]
    np.testing.assert_allclose(values, ref, rtol=1e-5)


def test_gradient_penalty_with_nn_critic():
    """Works with an nn.Sequential critic; gradcheck and gradgradcheck w.r.t. its parameters (float64)."""
    rng = np.random.default_rng(0)
    critic = nn.Sequential(nn.Linear(2, 3, rng=rng, dtype=F64), nn.Tanh(), nn.Linear(3, 1, rng=rng, dtype=F64))
    params = list(critic.parameters())
    real, fake, alpha = t64(rng.normal(size=(3, 2))), t64(rng.normal(size=(3, 2))), rng.random(3)
    fn = lambda *_: gradient_penalty(critic, real, fake, weight=2.0, alpha=alpha)  # noqa: E731
    assert sg.gradcheck(fn, params)
    assert sg.gradgradcheck(fn, params)
    fn_r1 = lambda *_: r1_penalty(critic, real, 3.0)  # noqa: E731
    assert sg.gradcheck(fn_r1, params)
    assert sg.gradgradcheck(fn_r1, params)


# --------------------------------------------------------------------------- weight clipping


class _Bag:
    def __init__(self, tensors):
        self._tensors = tensors

    def parameters(self):
        return iter(self._tensors)


@settings(deadline=None)
@given(
    arrays=st.lists(hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=4),
                               elements=st.floats(-1e3, 1e3)), min_size=1, max_size=4),
    c=st.floats(1e-3, 10.0),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_clip_weights_bounds(arrays, c, dtype):
    """Every parameter ends in [-c, c]; values inside are untouched; the arrays are modified in place."""
    params = [sg.Tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    buffers = [p.data for p in params]
    originals = [p.numpy().copy() for p in params]
    clip_weights(_Bag(params), c)
    bound = np.asarray(c, dtype=dtype)
    for p, buf, orig in zip(params, buffers, originals):
        assert p.data is buf
        assert np.all(np.abs(p.numpy()) <= bound)
        np.testing.assert_array_equal(p.numpy(), np.clip(orig, -bound, bound))


def test_clip_weights_on_module():
    """An nn module's parameters all end in [-c, c] (in place: the module sees the new values)."""
    critic = nn.Sequential(nn.Linear(3, 8, rng=0), nn.LeakyReLU(0.2), nn.Linear(8, 1, rng=1))
    for p in critic.parameters():
        p.data *= 10
    clip_weights(critic, 0.01)
    for p in critic.parameters():
        assert np.all(np.abs(p.numpy()) <= np.float32(0.01))
        assert np.any(np.abs(p.numpy()) == np.float32(0.01))


def test_clip_weights_errors_and_iterables():
    p = sg.Tensor([5.0, -5.0, 0.1])
    clip_weights([p], 0.5)
    np.testing.assert_allclose(p.numpy(), [0.5, -0.5, 0.1], rtol=1e-7)
    for c in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="c must be"):
            clip_weights([p], c)
    with pytest.raises(TypeError, match="not a Tensor"):
        clip_weights([np.zeros(2)], 1.0)


# --------------------------------------------------------------------------- CuPy backend


@pytest.mark.skipif(not sg.cupy_available(), reason="CuPy with a visible GPU is not available")
def test_losses_match_on_cupy_backend():
    """Values on the CuPy backend equal the NumPy ones within float32 tolerance."""
    rng = np.random.default_rng(0)
    r, f = rng.normal(size=(32, 1)) * 4, rng.normal(size=(32, 1)) * 4
    z = rng.random((32, 1))

    def on(backend_name, a):
        return sg.Tensor(a, dtype="float32").to_backend(backend_name)  # the critic's dtype

    for name in ("numpy", "cupy"):
        assert on(name, r).backend == name
    checks = [lambda b: bce_with_logits(on(b, r), z)]
    for kind in KINDS:
        checks.append(lambda b, k=kind: d_loss(k, on(b, r), on(b, f)))
        checks.append(lambda b, k=kind: g_loss(k, on(b, f)))
    for fn in checks:
        np.testing.assert_allclose(fn("cupy").item(), fn("numpy").item(), rtol=1e-5, atol=1e-6)

    real, fake, alpha = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)), rng.random(6)
    values = {}
    for name in ("numpy", "cupy"):
        params = [p.to_backend(name) for p in critic_params(3, 4, seed=1, dtype="float32")]
        critic = tanh_critic(*params)
        gp = gradient_penalty(critic, on(name, real), on(name, fake), alpha=alpha)
        (gw,) = sg.grad(gp, params[0])
        r1 = r1_penalty(critic, on(name, real), 2.0)
        clip_weights(params, 0.1)
        values[name] = (gp.item(), gw.numpy(), r1.item(), params[0].numpy())
    for a, b in zip(values["numpy"], values["cupy"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
