"""Relativistic losses "rsgan" and "rasgan" (Jolicoeur-Martineau 2018) of losses.d_loss / losses.g_loss.

docs/losses.md ("Relativistic losses") cites these tests by name. The
references are written here independently: plain Python loops over the logits
with ``math`` (float64), and the author's own formulas in PyTorch
(``BCEWithLogitsLoss`` as in her ``GAN_losses_iter.py``, loss_D 5 and 6),
skipped when torch is missing.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scratchgan as sg
from scratchgan.gan import losses
from scratchgan.gan.losses import d_loss, g_loss

F64 = "float64"


# --------------------------------------------------------------------------- references (Python loops, float64)


def _softplus(x: float) -> float:
    """log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|)."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def ref_rsgan_d(r, f) -> float:
    """-1/N sum_i log sigmoid(r_i - f_i): BCE(r - f, 1), the i-th real against the i-th fake."""
    return _mean(_softplus(-(ri - fi)) for ri, fi in zip(r, f))


def ref_rsgan_g(f, r) -> float:
    return _mean(_softplus(-(fi - ri)) for ri, fi in zip(r, f))


def ref_rasgan_d(r, f) -> float:
    """1/2 [-mean log sigmoid(r - mean f) - mean log(1 - sigmoid(f - mean r))] (the author's halving)."""
    mr, mf = _mean(r), _mean(f)
    return 0.5 * (_mean(_softplus(-(ri - mf)) for ri in r) + _mean(_softplus(fj - mr) for fj in f))


def ref_rasgan_g(f, r) -> float:
    mr, mf = _mean(r), _mean(f)
    return 0.5 * (_mean(_softplus(ri - mf) for ri in r) + _mean(_softplus(-(fj - mr)) for fj in f))


def ref_grads(kind, which, r, f):
    """The documented gradients (docs/losses.md) w.r.t. the real and the fake logits, loop by loop."""
    nr, nf = len(r), len(f)
    if kind == "rsgan":
        n = nr
        if which == "d":
            gr = [-_sigmoid(fi - ri) / n for ri, fi in zip(r, f)]
            return gr, [-g for g in gr]
        gf = [-_sigmoid(ri - fi) / n for ri, fi in zip(r, f)]
        return [-g for g in gf], gf
    mr, mf = _mean(r), _mean(f)
    a = [ri - mf for ri in r]
    b = [fj - mr for fj in f]
    if which == "d":
        s_b = _mean(_sigmoid(bj) for bj in b)
        s_na = _mean(_sigmoid(-ai) for ai in a)
        return ([-(_sigmoid(-ai) + s_b) / (2 * nr) for ai in a], [(_sigmoid(bj) + s_na) / (2 * nf) for bj in b])
    s_a = _mean(_sigmoid(ai) for ai in a)
    s_nb = _mean(_sigmoid(-bj) for bj in b)
    return ([(_sigmoid(ai) + s_nb) / (2 * nr) for ai in a], [-(_sigmoid(-bj) + s_a) / (2 * nf) for bj in b])


REF = {("rsgan", "d"): ref_rsgan_d, ("rsgan", "g"): lambda r, f: ref_rsgan_g(f, r),
       ("rasgan", "d"): ref_rasgan_d, ("rasgan", "g"): lambda r, f: ref_rasgan_g(f, r)}


def t64(a, requires_grad=True):
    return sg.Tensor(np.asarray(a, np.float64), dtype=F64, requires_grad=requires_grad)


def _value_and_grads(kind, which, r, f):
    rt, ft = t64(r), t64(f)
    out = d_loss(kind, rt, ft) if which == "d" else g_loss(kind, ft, rt)
    gr, gf = sg.grad(out, [rt, ft])
    return out.item(), gr.numpy(), gf.numpy()


logits = st.floats(-40, 40, allow_nan=False)


@st.composite
def logit_pairs(draw, same_size):
    n = draw(st.integers(1, 7))
    m = n if same_size else draw(st.integers(1, 7))
    r = draw(hnp.arrays(np.float64, n, elements=logits))
    f = draw(hnp.arrays(np.float64, m, elements=logits))
    return r, f


# --------------------------------------------------------------------------- against the loops


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(losses.RELATIVISTIC_KINDS), which=st.sampled_from("dg"), data=st.data())
def test_values_and_gradients_match_loops(kind, which, data):
    r, f = data.draw(logit_pairs(same_size=kind == "rsgan"))
    value, gr, gf = _value_and_grads(kind, which, r, f)
    assert value == pytest.approx(REF[kind, which](list(r), list(f)), rel=1e-12, abs=1e-14)
    er, ef = ref_grads(kind, which, list(r), list(f))
    np.testing.assert_allclose(gr, er, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gf, ef, rtol=1e-10, atol=1e-15)


def test_scaling_at_zero_logits():
    """Both equal log 2 when D cannot tell (the author's code); the summed RaSGAN of the paper would be log 4."""
    z = [0.0, 0.0, 0.0]
    for kind in losses.RELATIVISTIC_KINDS:
        assert d_loss(kind, t64(z), t64(z)).item() == pytest.approx(math.log(2), rel=1e-15)
        assert g_loss(kind, t64(z), t64(z)).item() == pytest.approx(math.log(2), rel=1e-15)


def test_rsgan_pairs_by_index_not_all_pairs():
    """Swapping two fakes changes RSGAN's value: it pairs r_i with f_i (an all-pairs mean would not change)."""
    r, f = [3.0, -1.0], [2.0, -4.0]
    paired = d_loss("rsgan", t64(r), t64(f)).item()
    swapped = d_loss("rsgan", t64(r), t64(f[::-1])).item()
    assert paired == pytest.approx(ref_rsgan_d(r, f), rel=1e-14)
    assert swapped == pytest.approx(ref_rsgan_d(r, f[::-1]), rel=1e-14)
    assert abs(paired - swapped) > 0.1


def test_rasgan_takes_batches_of_different_sizes():
    r, f = [0.5, 1.5, -2.0], [0.3, -0.1]
    assert d_loss("rasgan", t64(r), t64(f)).item() == pytest.approx(ref_rasgan_d(r, f), rel=1e-14)
    assert g_loss("rasgan", t64(f), t64(r)).item() == pytest.approx(ref_rasgan_g(f, r), rel=1e-14)


# --------------------------------------------------------------------------- against the author's formulas in torch


def test_match_author_code_in_torch():
    torch = pytest.importorskip("torch")
    bce = torch.nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(0)
    for n in (1, 4, 9):
        r, f = rng.normal(0, 3, n), rng.normal(0, 3, n)
        tr, tf = torch.tensor(r, requires_grad=True), torch.tensor(f, requires_grad=True)
        one, zero = torch.ones(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
        reference = {
            ("rsgan", "d"): lambda: bce(tr - tf, one),
            ("rsgan", "g"): lambda: bce(tf - tr, one),
            ("rasgan", "d"): lambda: (bce(tr - torch.mean(tf), one) + bce(tf - torch.mean(tr), zero)) / 2,
            ("rasgan", "g"): lambda: (bce(tr - torch.mean(tf), zero) + bce(tf - torch.mean(tr), one)) / 2,
        }
        for (kind, which), fn in reference.items():
            out = fn()
            er, ef = torch.autograd.grad(out, [tr, tf])
            value, gr, gf = _value_and_grads(kind, which, r, f)
            assert value == pytest.approx(out.item(), rel=1e-12), (kind, which, n)
            np.testing.assert_allclose(gr, er.numpy(), rtol=1e-10, atol=1e-15)
            np.testing.assert_allclose(gf, ef.numpy(), rtol=1e-10, atol=1e-15)


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize("kind", losses.RELATIVISTIC_KINDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_finite_at_extreme_logits(kind, dtype):
    """Differences of +-2e4 (logits of +-1e4) stay finite: the stable softplus, never log(sigmoid)."""
    r = np.array([1e4, -1e4, 0.0, 30.0, -1e4], dtype)
    f = np.array([-1e4, 1e4, 1e-30, -100.0, -1e4], dtype)
    for which in "dg":
        rt, ft = sg.Tensor(r, requires_grad=True), sg.Tensor(f, requires_grad=True)
        out = d_loss(kind, rt, ft) if which == "d" else g_loss(kind, ft, rt)
        grads = sg.grad(out, [rt, ft])
        assert out.dtype == np.dtype(dtype)
        assert np.isfinite(out.item()), (kind, which)
        assert all(np.isfinite(g.numpy()).all() for g in grads), (kind, which)
    # a confidently wrong discriminator costs about the logit gap (no rounding to 0 or inf)
    assert d_loss("rsgan", sg.Tensor(np.array([-1e4], dtype)), sg.Tensor(np.array([1e4], dtype))).item() == \
        pytest.approx(2e4, rel=1e-6)


@pytest.mark.parametrize("kind", losses.RELATIVISTIC_KINDS)
def test_gradcheck_first_and_second_order(kind):
    rng = np.random.default_rng(1)
    r, f = t64(rng.normal(0, 2, 5)), t64(rng.normal(0, 2, 5))
    assert sg.gradcheck(lambda a, b: d_loss(kind, a, b), [r, f])
    assert sg.gradcheck(lambda a, b: g_loss(kind, b, a), [r, f])
    assert sg.gradgradcheck(lambda a, b: d_loss(kind, a, b), [r, f])
    assert sg.gradgradcheck(lambda a, b: g_loss(kind, b, a), [r, f])


@pytest.mark.parametrize("kind", losses.RELATIVISTIC_KINDS)
def test_float32_matches_float64(kind):
    rng = np.random.default_rng(2)
    r, f = rng.normal(0, 5, 8), rng.normal(0, 5, 8)
    for fn in (lambda a, b: d_loss(kind, a, b), lambda a, b: g_loss(kind, b, a)):
        lo = fn(sg.Tensor(r.astype(np.float32)), sg.Tensor(f.astype(np.float32))).item()
        hi = fn(t64(r, False), t64(f, False)).item()
        assert lo == pytest.approx(hi, rel=1e-5)


def test_errors():
    r, f = t64([0.1, 0.2]), t64([0.3, 0.4])
    with pytest.raises(TypeError, match=r"g_loss\('rsgan'\) needs real_logits"):
        g_loss("rsgan", f)
    with pytest.raises(TypeError, match=r"g_loss\('rasgan'\) needs real_logits"):
        g_loss("rasgan", f)
    with pytest.raises(ValueError, match=r"shape \(2,\) but fake_logits have shape \(3,\)"):
        d_loss("rsgan", r, t64([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="same shape"):
        g_loss("rsgan", t64([[1.0], [2.0]]), r)
    with pytest.raises(ValueError, match="label_smoothing applies"):
        d_loss("rasgan", r, f, label_smoothing=0.1)
    with pytest.raises(ValueError) as info:
        d_loss("relativistic", r, f)
    for kind in losses.ALL_KINDS:
        assert repr(kind) in str(info.value)


# --------------------------------------------------------------------------- in the trainer


def _tiny(**overrides):
    from scratchgan.app.config import TrainConfig

    base = dict(data="grid25", z_dim=4, g_hidden=(16,), d_hidden=(16,), batch_size=32, steps=3,
                log_every=1, sample_every=1000, checkpoint_every=1000, eval_samples=200, ema_decay=0.0)
    base.update(overrides)
    return TrainConfig(**base)


@pytest.mark.parametrize("loss", ["rsgan", "rasgan"])
def test_trainer_runs_them_and_the_generator_step_sees_a_real_batch(tmp_path, monkeypatch, loss):
    from scratchgan.app.config import resolve
    from scratchgan.app.train import Trainer

    config = resolve(_tiny(loss=loss))  # the author's recipe: Adam 2e-4, betas (0.5, 0.999), one D step
    assert (config.optimizer, config.lr_g, config.lr_d, tuple(config.betas), config.n_critic) == \
        ("adam", 2e-4, 2e-4, (0.5, 0.999), 1)
    seen = []
    original = losses.g_loss

    def spy(kind, fake_logits, real_logits=None):
        seen.append((kind, real_logits))
        return original(kind, fake_logits, real_logits)

    monkeypatch.setattr(losses, "g_loss", spy)
    trainer = Trainer(_tiny(loss=loss), tmp_path / loss)
    trainer.run(progress=False)
    assert trainer.step == 3 and len(seen) == 3
    for kind, real_logits in seen:
        assert kind == loss and real_logits is not None and real_logits.shape == (32,)
        assert not real_logits.requires_grad  # D on the real batch is a constant for G
