"""DRAGAN's penalty (Kodali et al. 2017), losses.dragan_penalty, and the trainer's --dragan.

docs/losses.md ("DRAGAN") cites these tests by name. The reference is a
per-sample loop with the critic's input gradient worked out by hand (NumPy,
float64), reproducing the documented draws (epsilon of real's shape, then one
alpha per sample, from the same seed); the authors' notebook formula is also
run in PyTorch when it is installed.
"""

from __future__ import annotations

import numpy as np
import pytest

import scratchgan as sg
from scratchgan.gan import losses
from scratchgan.gan.losses import dragan_penalty

F64 = "float64"


def critic_params(d, h, seed):
    rng = np.random.default_rng(seed)
    return [sg.Tensor(rng.normal(size=s) * scale, dtype=F64, requires_grad=True)
            for s, scale in (((d, h), 1.0), ((h,), 0.3), ((h, 1), 1.0), ((1,), 0.3))]


def tanh_critic(W1, b1, w2, b2):
    def critic(x):
        h = sg.ops.tanh(x.reshape(x.shape[0], -1) @ W1 + b1)
        return h @ w2 + b2
    return critic


def ref_dragan(params, x, seed, weight=10.0, k=1.0, alpha=None):
    """Kodali et al.'s penalty, sample by sample: x_hat_i = x_i + alpha_i 0.5 std(x) eps_i, (||grad|| - k)^2 mean."""
    W1, b1, w2, _ = (p.numpy() for p in params)
    gen = np.random.default_rng(seed)
    eps = gen.random(x.shape)
    a = gen.random(len(x)) if alpha is None else np.broadcast_to(np.asarray(alpha, float), (len(x),))
    std = x.std()  # NumPy's population std of every value of the batch, as minibatch.std() in their code
    terms = []
    for i in range(len(x)):
        point = (x[i] + a[i] * 0.5 * std * eps[i]).reshape(-1)
        h = np.tanh(point @ W1 + b1)
        g = ((1 - h ** 2) * w2[:, 0]) @ W1.T  # d critic / d point, by hand
        terms.append((np.sqrt(np.sum(g ** 2) + 1e-12) - k) ** 2)  # the documented epsilon inside the root
    return weight * float(np.mean(terms))


@pytest.mark.parametrize("shape", [(5, 3), (4, 2, 3), (1, 4)])
def test_matches_per_sample_loop(shape):
    params = critic_params(int(np.prod(shape[1:])), 6, seed=0)
    x = np.random.default_rng(1).normal(0, 2, shape)
    value = dragan_penalty(tanh_critic(*params), sg.Tensor(x, dtype=F64), rng=7).item()
    assert value == pytest.approx(ref_dragan(params, x, seed=7), rel=1e-12)
    fixed = dragan_penalty(tanh_critic(*params), sg.Tensor(x, dtype=F64), rng=7, alpha=1.0).item()
    assert fixed == pytest.approx(ref_dragan(params, x, seed=7, alpha=1.0), rel=1e-12)


def test_norm_is_per_sample_not_of_the_whole_batch():
    """Samples with different input gradients: the mean of per-sample (n_i - 1)^2, not (||g_batch|| - 1)^2."""
    params = critic_params(3, 5, seed=2)
    x = np.random.default_rng(3).normal(0, 1.5, (6, 3))
    critic = tanh_critic(*params)
    whole = dragan_penalty(critic, sg.Tensor(x, dtype=F64), alpha=0.0).item()
    singles = [dragan_penalty(critic, sg.Tensor(x[i:i + 1], dtype=F64), alpha=0.0).item() for i in range(len(x))]
    assert whole == pytest.approx(float(np.mean(singles)), rel=1e-12)
    assert whole == pytest.approx(ref_dragan(params, x, seed=0, alpha=0.0), rel=1e-12)


def test_perturbation_std_of_whole_batch_and_alpha_per_sample():
    """The points: x + alpha_i * 0.5 * std(all values) * eps_ij with eps in [0, 1], one alpha per sample."""
    x = np.array([[0.0, 10.0], [1.0, 10.5], [2.0, 9.0]])  # per-feature stds 0.82 and 0.62, overall 4.6
    seen = []

    def critic(points):
        seen.append(points.numpy().copy())
        return points.sum(axis=1)

    dragan_penalty(critic, sg.Tensor(x, dtype=F64), rng=3)
    gen = np.random.default_rng(3)
    eps, alpha = gen.random(x.shape), gen.random(3)
    expected = x + alpha[:, None] * 0.5 * x.std() * eps
    np.testing.assert_allclose(seen[0], expected, rtol=1e-14)
    step = seen[0] - x
    assert (step >= 0).all() and (step <= 0.5 * x.std()).all()


def test_linear_critic_closed_form():
    """critic(x) = x.w + b: the input gradient is w at every point, so P = lambda (||w|| - k)^2, whatever the noise."""
    w = sg.Tensor([[3.0], [-4.0]], dtype=F64, requires_grad=True)
    critic = lambda x: x @ w  # noqa: E731
    x = np.random.default_rng(0).normal(size=(7, 2))
    for seed in (0, 1):
        p = dragan_penalty(critic, sg.Tensor(x, dtype=F64), weight=2.0, k=1.5, rng=seed)
        assert p.item() == pytest.approx(2.0 * (5.0 - 1.5) ** 2, rel=1e-12)
    (gw,) = sg.grad(p, [w])  # 2 lambda (||w|| - k) w / ||w||
    np.testing.assert_allclose(gw.numpy(), 2 * 2.0 * 3.5 * np.array([[3.0], [-4.0]]) / 5.0, rtol=1e-12)


def test_gradcheck_first_and_second_order():
    """w.r.t. the critic's weights (the penalty's purpose; a second derivative of the critic), float64."""
    params = critic_params(3, 4, seed=5)
    x = sg.Tensor(np.random.default_rng(6).normal(size=(4, 3)), dtype=F64)
    fn = lambda *ps: dragan_penalty(tanh_critic(*ps), x, rng=11)  # noqa: E731 - an int seed: the same draws each call
    assert sg.gradcheck(fn, params)
    assert sg.gradgradcheck(fn, params)


def test_match_authors_notebook_in_torch():
    """kodalinaveen3/DRAGAN: X_p = X + 0.5 X.std() U; interpolates = X + alpha (X_p - X); mean (||grad|| - 1)^2."""
    torch = pytest.importorskip("torch")
    params = critic_params(4, 5, seed=8)
    x = np.random.default_rng(9).normal(size=(6, 4))
    ours = dragan_penalty(tanh_critic(*params), sg.Tensor(x, dtype=F64), rng=4)
    ours_grads = sg.grad(ours, params[:3])  # the penalty does not depend on the output bias
    gen = np.random.default_rng(4)
    eps, alpha = gen.random(x.shape), gen.random((6, 1))
    tp = [torch.tensor(p.numpy(), requires_grad=True) for p in params]
    X = torch.tensor(x)
    X_p = X + 0.5 * X.std(unbiased=False) * torch.tensor(eps)
    interpolates = (X + torch.tensor(alpha) * (X_p - X)).requires_grad_(True)
    out = torch.tanh(interpolates @ tp[0] + tp[1]) @ tp[2] + tp[3]
    (g,) = torch.autograd.grad(out.sum(), interpolates, create_graph=True)
    slopes = torch.sqrt((g ** 2).sum(dim=1))
    expected = 10.0 * ((slopes - 1.0) ** 2).mean()
    assert ours.item() == pytest.approx(expected.item(), rel=1e-12)
    for a, b in zip(ours_grads, torch.autograd.grad(expected, tp[:3])):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-14)


def test_rng_policy_and_fixed_draws():
    params = critic_params(2, 3, seed=0)
    critic = tanh_critic(*params)
    x = sg.Tensor(np.random.default_rng(0).normal(size=(5, 2)), dtype=F64)
    assert dragan_penalty(critic, x, rng=1).item() == dragan_penalty(critic, x, rng=1).item()
    assert dragan_penalty(critic, x, rng=1).item() != dragan_penalty(critic, x, rng=2).item()
    sg.manual_seed(3)
    a = dragan_penalty(critic, x).item()
    sg.manual_seed(3)
    assert dragan_penalty(critic, x).item() == a
    gen = np.random.default_rng(1)
    noise, alpha = gen.random((5, 2)), gen.random(5)
    assert dragan_penalty(critic, x, noise=noise, alpha=alpha).item() == dragan_penalty(critic, x, rng=1).item()


def test_validation_and_no_grad():
    critic = tanh_critic(*critic_params(2, 3, seed=0))
    x = np.random.default_rng(0).normal(size=(3, 2))
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        dragan_penalty(critic, x, weight=-1.0)
    with pytest.raises(ValueError, match="alpha must lie in"):
        dragan_penalty(critic, x, alpha=1.5)
    with pytest.raises(ValueError, match="alpha has shape"):
        dragan_penalty(critic, x, alpha=np.ones(2))
    with pytest.raises(ValueError, match="noise has shape"):
        dragan_penalty(critic, x, noise=np.ones((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        dragan_penalty(critic, np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match="dragan_penalty: critic"):
        dragan_penalty(lambda t: t, x)
    with sg.no_grad():
        p = dragan_penalty(critic, sg.Tensor(x, dtype=F64), rng=0)
    assert not p.requires_grad and np.isfinite(p.item())
    critic32 = tanh_critic(*(p.float() for p in critic_params(2, 3, seed=0)))
    assert dragan_penalty(critic32, x.astype(np.float32), rng=0).dtype == np.float32


# --------------------------------------------------------------------------- in the trainer


def test_trainer_option(tmp_path):
    from scratchgan.app.config import TrainConfig
    from scratchgan.gan.models import critic_norm
    from scratchgan.app.train import Trainer

    config = TrainConfig(data="grid25", loss="ns", z_dim=4, g_hidden=(16,), d_hidden=(16,), batch_size=32, steps=3,
                         dragan=10.0, r1=0.0, log_every=1, sample_every=1000, checkpoint_every=1000,
                         eval_samples=200, ema_decay=0.0)
    assert critic_norm(config) == "layer"  # a per-sample penalty: no batch norm in a DCGAN critic
    calls = []
    original = losses.dragan_penalty

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append((kwargs["weight"], out.item()))
        return out

    import unittest.mock

    with unittest.mock.patch.object(losses, "dragan_penalty", spy):
        trainer = Trainer(config, tmp_path / "run")
        trainer.run(progress=False)
    assert trainer.step == 3 and len(calls) == 3 and all(w == 10.0 and np.isfinite(v) for w, v in calls)
