"""GAN-theory properties of scratchgan.gan.losses (docs/losses.md cites these tests by name).

* saturation of the minimax generator loss versus the non-saturating one;
* the optimal discriminator D* = p_data / (p_data + p_g) and V(D*) = -log 4 + 2 JSD
  (Goodfellow et al. 2014, Proposition 1 and Theorem 1), checked on discrete
  distributions drawn by hypothesis;
* Wasserstein critic loss and the gradient penalty of a linear critic in closed form,
  and why the penalty needs create_graph;
* a tiny end-to-end check: a linear discriminator separates two 1-D Gaussians.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scratchgan as sg
from scratchgan import nn, optim
from scratchgan.gan.losses import bce_with_logits, d_loss, g_loss, gradient_penalty

F64 = "float64"


def t64(a, requires_grad=False):
    return sg.Tensor(np.asarray(a, np.float64), dtype=F64, requires_grad=requires_grad)


# --------------------------------------------------------------------------- saturation


@settings(deadline=None)
@given(
    f=st.floats(-1e4, -20.0),
    n=st.integers(1, 8),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_minimax_generator_saturates_ns_does_not(f, n, dtype):
    """As D(G(z)) -> 0 (logit -> -inf) the minimax generator gradient vanishes; the NS one stays near -1/N."""
    logits = sg.Tensor(np.full(n, f), dtype=dtype, requires_grad=True)
    (g_mm,) = sg.grad(g_loss("minimax", logits), logits)
    (g_ns,) = sg.grad(g_loss("ns", logits), logits)
    sigma = np.exp(f)  # sigma(f) for f <= -20, to 1e-9 relative
    assert np.all(np.isfinite(g_mm.numpy())) and np.all(np.isfinite(g_ns.numpy()))
    assert np.all(np.abs(g_mm.numpy()) <= 1.01 * sigma / n + 1e-45)  # <= 2e-9 / N: no learning signal
    np.testing.assert_allclose(g_ns.numpy(), -1.0 / n, rtol=1e-6)  # full-size signal


def test_minimax_gradient_shrinks_as_discriminator_wins():
    """Along logits -1, -5, -10, -20 the minimax gradient falls like sigma(f); the NS one tends to -1/N."""
    mm, ns = [], []
    for f in (-1.0, -5.0, -10.0, -20.0):
        x = t64([f], requires_grad=True)
        mm.append(sg.grad(g_loss("minimax", x), x)[0].item())
        x = t64([f], requires_grad=True)
        ns.append(sg.grad(g_loss("ns", x), x)[0].item())
    assert all(abs(a) > abs(b) for a, b in zip(mm, mm[1:]))
    np.testing.assert_allclose(mm, -1 / (1 + np.exp(-np.array([-1.0, -5.0, -10.0, -20.0]))), rtol=1e-12)
    assert ns[-1] == pytest.approx(-1.0, rel=1e-8) and all(g < -0.7 for g in ns)


# --------------------------------------------------------------------------- optimal discriminator

@st.composite
def two_distributions(draw):
    """Two distributions on k points; every point has mass under at least one of them.

    Each point is in both supports, only in p_data's or only in p_g's, so disjoint
    and partly overlapping supports are drawn as well as overlapping ones.
    """
    k = draw(st.integers(2, 6))
    where = np.array(draw(st.lists(st.sampled_from(["both", "data", "g"]), min_size=k, max_size=k)))
    wa = np.array(draw(st.lists(st.floats(0.01, 1.0), min_size=k, max_size=k)))
    wb = np.array(draw(st.lists(st.floats(0.01, 1.0), min_size=k, max_size=k)))
    a, b = wa * (where != "g"), wb * (where != "data")
    if a.sum() == 0:
        a[0] = wa[0]
    if b.sum() == 0:
        b[0] = wb[0]
    return a / a.sum(), b / b.sum()


def value_fn(d, p_data, p_g):
    """V(D) = sum p_data log D + sum p_g log(1 - D), with 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 * log 0 is masked out by the where
        return float(np.sum(np.where(p_data > 0, p_data * np.log(d), 0.0))
                     + np.sum(np.where(p_g > 0, p_g * np.log1p(-d), 0.0)))


def jsd(p, q):
    """Jensen-Shannon divergence in nats, written from its definition via the mixture m."""
    m = 0.5 * (p + q)

    def kl(a, b):
        mask = a > 0
        return float(np.sum(a[mask] * (np.log(a[mask]) - np.log(b[mask]))))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


@settings(deadline=None)
@given(pq=two_distributions(), seed=st.integers(0, 2**32 - 1))
def test_optimal_discriminator_maximises_value(pq, seed):
    """D* = p_data / (p_data + p_g) beats random perturbations, and grad V(D*) = 0 where 0 < D* < 1."""
    p_data, p_g = pq
    d_star = p_data / (p_data + p_g)
    v_star = value_fn(d_star, p_data, p_g)
    rng = np.random.default_rng(seed)
    for scale in (1e-3, 1e-1, 1.0):
        for _ in range(5):
            d = np.clip(d_star + rng.normal(scale=scale, size=d_star.shape), 1e-12, 1 - 1e-12)
            assert value_fn(d, p_data, p_g) <= v_star + 1e-12
    inner = (d_star > 0) & (d_star < 1)
    if inner.any():
        d = t64(d_star[inner], requires_grad=True)
        v = (t64(p_data[inner]) * sg.ops.log(d)).sum() + (t64(p_g[inner]) * sg.ops.log(1.0 - d)).sum()
        (g,) = sg.grad(v, d)
        np.testing.assert_allclose(g.numpy(), 0.0, atol=1e-12)


@settings(deadline=None)
@given(pq=two_distributions())
def test_optimal_discriminator_value_is_jsd(pq):
    """V(D*) = -log 4 + 2 JSD(p_data || p_g), and 0 <= JSD <= log 2."""
    p_data, p_g = pq
    d_star = p_data / (p_data + p_g)
    j = jsd(p_data, p_g)
    assert -1e-12 <= j <= np.log(2) + 1e-12
    assert value_fn(d_star, p_data, p_g) == pytest.approx(-np.log(4) + 2 * j, abs=1e-12)


def test_optimal_discriminator_extremes():
    """Equal distributions: D* = 1/2 and V = -log 4; disjoint supports: JSD = log 2 and V = 0."""
    p = np.array([0.2, 0.3, 0.5])
    assert value_fn(np.full(3, 0.5), p, p) == pytest.approx(-np.log(4), rel=1e-14)
    a, b = np.array([0.5, 0.5, 0.0, 0.0]), np.array([0.0, 0.0, 0.25, 0.75])
    assert jsd(a, b) == pytest.approx(np.log(2), rel=1e-14)
    assert value_fn(a / (a + b), a, b) == pytest.approx(0.0, abs=1e-14)


@settings(deadline=None)
@given(
    counts=st.integers(2, 5).flatmap(lambda k: st.tuples(
        st.lists(st.integers(1, 5), min_size=k, max_size=k), st.lists(st.integers(1, 5), min_size=k, max_size=k))),
)
def test_d_loss_is_minimised_by_optimal_discriminator(counts):
    """The library's minimax d_loss on samples is -V(D): a table discriminator with logits
    log(p_data / p_g) (i.e. D = D*) has zero gradient and loss log 4 - 2 JSD."""
    c_data, c_g = np.array(counts[0], float), np.array(counts[1], float)
    p_data, p_g = c_data / c_data.sum(), c_g / c_g.sum()
    k = len(c_data)
    real_idx = np.repeat(np.arange(k), c_data.astype(int))  # a real batch with these frequencies
    fake_idx = np.repeat(np.arange(k), c_g.astype(int))
    logits = t64(np.log(p_data / p_g), requires_grad=True)  # sigma(logit) = D*
    loss = d_loss("minimax", logits[real_idx], logits[fake_idx])
    assert loss.item() == pytest.approx(np.log(4) - 2 * jsd(p_data, p_g), abs=1e-12)
    (g,) = sg.grad(loss, logits)
    np.testing.assert_allclose(g.numpy(), 0.0, atol=1e-12)


# --------------------------------------------------------------------------- Wasserstein


@settings(deadline=None)
@given(
    r=hnp.arrays(np.float64, st.integers(1, 8), elements=st.floats(-1e3, 1e3)),
    f=hnp.arrays(np.float64, st.integers(1, 8), elements=st.floats(-1e3, 1e3)),
)
def test_wasserstein_critic_loss_is_mean_difference(r, f):
    """critic loss == mean(f(fake)) - mean(f(real)); generator loss == -mean(f(fake))."""
    assert d_loss("wasserstein", t64(r), t64(f)).item() == pytest.approx(f.mean() - r.mean(), rel=1e-12, abs=1e-9)
    assert g_loss("wasserstein", t64(f)).item() == pytest.approx(-f.mean(), rel=1e-12, abs=1e-12)


_w_vectors = hnp.arrays(np.float64, st.integers(1, 5), elements=st.floats(-3, 3)).filter(
    lambda w: np.linalg.norm(w) > 0.05)


@settings(deadline=None)
@given(
    w=_w_vectors,
    n=st.integers(1, 6),
    weight=st.floats(0.1, 20.0),
    seed=st.integers(0, 2**32 - 1),
    one_sided=st.booleans(),
)
def test_gradient_penalty_linear_critic_analytic(w, n, weight, seed, one_sided):
    """For f(x) = x.w + b every input gradient is w: penalty = weight * (||w|| - 1)^2 (one-sided:
    weight * relu(||w|| - 1)^2), whatever the data and alpha; its gradient w.r.t. w is
    2 weight (||w|| - 1) w / ||w||, and b gets none."""
    rng = np.random.default_rng(seed)
    wt = t64(w.reshape(-1, 1), requires_grad=True)
    b = t64([0.7], requires_grad=True)
    critic = lambda x: x @ wt + b  # noqa: E731
    real, fake = rng.normal(size=(n, w.size)), rng.normal(size=(n, w.size)) * 3
    norm = np.linalg.norm(w)
    excess = max(norm - 1, 0.0) if one_sided else norm - 1
    pen = gradient_penalty(critic, t64(real), t64(fake), weight=weight, one_sided=one_sided, rng=rng)
    assert pen.item() == pytest.approx(weight * excess ** 2, rel=1e-9, abs=1e-12)
    gw, gb = sg.grad(pen, [wt, b], allow_unused=True)
    assert gb is None
    # atol covers the 1e-12 inside the root: sqrt(||w||^2 + 1e-12) - ||w|| <= 5e-13 / ||w||
    np.testing.assert_allclose(gw.numpy()[:, 0], 2 * weight * excess * w / norm, rtol=1e-9, atol=1e-9)


def _penalty_without_create_graph(critic, real, fake, weight, alpha):
    """A test-local copy of the penalty with the common bug: the inner gradient without create_graph."""
    a = alpha.reshape(-1, 1)
    x_hat = t64(a * real + (1 - a) * fake, requires_grad=True)
    (g,) = sg.grad(critic(x_hat).sum(), x_hat)  # create_graph=False: g is a constant
    norms = sg.ops.sqrt((g * g).sum(axis=1) + 1e-12)
    return ((norms - 1.0) ** 2).mean() * weight


def test_gradient_penalty_reaches_critic_weights():
    """With create_graph the penalty adds 2 weight (||w|| - 1) w / ||w|| to the critic's gradient;
    the same penalty computed without it adds nothing (it is a constant)."""
    w_np = np.array([[1.2], [-1.6]])  # ||w|| = 2
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(6, 2)) + 2, rng.normal(size=(6, 2))
    alpha = rng.random(6)
    weight = 10.0
    grads = {}
    for name in ("library", "no_create_graph"):
        w = t64(w_np, requires_grad=True)
        b = t64([0.1], requires_grad=True)
        critic = lambda x, w=w, b=b: x @ w + b  # noqa: E731
        adv = d_loss("wasserstein", critic(t64(real)), critic(t64(fake)))
        if name == "library":
            pen = gradient_penalty(critic, t64(real), t64(fake), weight=weight, alpha=alpha)
            assert pen.requires_grad
        else:
            pen = _penalty_without_create_graph(critic, real, fake, weight, alpha)
            assert not pen.requires_grad
        assert pen.item() == pytest.approx(weight * (2 - 1) ** 2, rel=1e-9)
        (adv + pen).backward()
        grads[name] = w.grad.numpy()[:, 0]
    adv_grad = fake.mean(axis=0) - real.mean(axis=0)  # d(mean f(fake) - mean f(real))/dw
    np.testing.assert_allclose(grads["no_create_graph"], adv_grad, rtol=1e-12)
    analytic = 2 * weight * (2 - 1) * w_np[:, 0] / 2
    np.testing.assert_allclose(grads["library"], adv_grad + analytic, rtol=1e-9)


# --------------------------------------------------------------------------- end to end

TRAIN_SEED = 0


def _gaussians(rng, n):
    """Balanced two-class data: real ~ N(2, 0.5), fake ~ N(-2, 0.5); shape (2n, 1), labels (2n, 1)."""
    x = np.concatenate([rng.normal(2.0, 0.5, size=(n, 1)), rng.normal(-2.0, 0.5, size=(n, 1))])
    z = np.concatenate([np.ones((n, 1)), np.zeros((n, 1))])
    return x, z


def _accuracy(disc, rng, n=1000):
    x, z = _gaussians(rng, n)
    with sg.no_grad():
        logits = disc(sg.Tensor(x, dtype="float32")).numpy()
    return float(np.mean((logits > 0) == (z > 0.5)))


def _zero_linear():
    disc = nn.Linear(1, 1, rng=np.random.default_rng(TRAIN_SEED))
    for p in disc.parameters():  # start from D = 1/2 everywhere, so accuracy starts at chance
        nn.zeros_(p)
    return disc


def test_linear_discriminator_untrained_is_at_chance():
    """Before training (zero weights, logit 0) the discriminator is at 50%, so the metric can move."""
    disc = _zero_linear()
    acc = _accuracy(disc, np.random.default_rng(1))
    assert acc == pytest.approx(0.5, abs=0.05)
    x, z = _gaussians(np.random.default_rng(2), 64)
    assert bce_with_logits(disc(sg.Tensor(x, dtype="float32")), z).item() == pytest.approx(np.log(2), rel=1e-6)


def test_linear_discriminator_separates_gaussians():
    """nn.Linear(1, 1) trained with optim.SGD and bce_with_logits on N(-2, 0.5) vs N(2, 0.5)
    reaches > 95% accuracy on fresh samples."""
    disc = _zero_linear()
    opt = optim.SGD(list(disc.parameters()), lr=0.5)
    rng = np.random.default_rng(TRAIN_SEED)
    losses = []
    for _ in range(100):
        x, z = _gaussians(rng, 64)
        opt.zero_grad()
        loss = bce_with_logits(disc(sg.Tensor(x, dtype="float32")), z)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 < losses[0]
    assert _accuracy(disc, np.random.default_rng(123)) > 0.95
