"""scratchgan.testing: the public kit of strategies and GAN-theory checks (docs/testing.md).

The kit must reject each classic bug with a named property and a shrunk
counterexample, accept every loss and penalty scratchgan ships, and run its
built-in suite against the installed package from outside the repository.
"""

from __future__ import annotations

import functools
import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

import scratchgan as sg
from scratchgan.gan import losses
from scratchgan import ops
from scratchgan.autograd.engine import make_result
from scratchgan.testing import EXTREME_LOGITS, Critic, PropertyFailed, Report, batches, check_gan_loss, check_gradients, check_penalty, critics, distributions, logits
from scratchgan.testing.builtin import CHECKS

# --------------------------------------------------------------------------- user losses, good and bad


def d_ok(real_logits, fake_logits):
    return ops.softplus(-real_logits).mean() + ops.softplus(fake_logits).mean()


def g_ok(fake_logits):
    return ops.softplus(-fake_logits).mean()


def g_naive(fake_logits):
    """-log(sigmoid(x)) written naively: sigmoid underflows to 0 at a large negative logit, log gives -inf."""
    return -ops.log(ops.sigmoid(fake_logits)).mean()


def d_naive_real(real_logits, fake_logits):
    return -ops.log(ops.sigmoid(real_logits)).mean() + ops.softplus(fake_logits).mean()


def d_fake_sign_flipped(real_logits, fake_logits):
    return ops.softplus(-real_logits).mean() - ops.softplus(fake_logits).mean()


def d_real_sign_flipped(real_logits, fake_logits):
    return ops.softplus(real_logits).mean() + ops.softplus(fake_logits).mean()


def _twice_softplus_backward(g, out, needs):
    return (g * ops.sigmoid(out._parents[0]) * 2.0,)  # wrong: d softplus / dx = sigmoid(x)


def bad_softplus(a):
    """A custom op made with make_result whose backward rule is off by a factor 2."""
    x = a.data
    return make_result(np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))), (a,), _twice_softplus_backward)


def d_custom_op(real_logits, fake_logits):
    return bad_softplus(-real_logits).mean() + bad_softplus(fake_logits).mean()


def _interpolates(real, fake, per_element):
    shape = real.shape if per_element else (real.shape[0], 1)
    a = sg.rand(*shape, dtype="float64")
    return (real * a + fake * (1.0 - a)).detach().requires_grad_(True)


def gp_batch_norm(critic, real, fake, weight=10.0):
    """The norm taken over the whole batch instead of per sample."""
    x = _interpolates(real, fake, per_element=False)
    (g,) = sg.grad(critic(x).sum(), x, create_graph=True)
    return (ops.sqrt((g * g).sum() + 1e-12) - 1.0) ** 2 * weight


def gp_per_element_alpha(critic, real, fake, weight=10.0):
    """Interpolation factors drawn per element instead of per sample."""
    x = _interpolates(real, fake, per_element=True)
    (g,) = sg.grad(critic(x).sum(), x, create_graph=True)
    return ((ops.sqrt((g * g).sum(axis=1) + 1e-12) - 1.0) ** 2).mean() * weight


def gp_ok(critic, real, fake, weight=10.0):
    x = _interpolates(real, fake, per_element=False)
    (g,) = sg.grad(critic(x).sum(), x, create_graph=True)
    return ((ops.sqrt((g * g).sum(axis=1) + 1e-12) - 1.0) ** 2).mean() * weight


def failure(call):
    with pytest.raises(PropertyFailed) as info:
        call()
    assert isinstance(info.value, AssertionError)
    return str(info.value), info.value.report


# --------------------------------------------------------------------------- rejections


def test_naive_log_sigmoid_rejected_at_large_negative_logit():
    message, report = failure(lambda: check_gan_loss(d_ok, g_naive))
    assert "property 'finite_at_extreme_logits[float64]' failed: g_loss(fake_logits) is inf in float64" in message
    assert "counterexample (shrunk by hypothesis): real_logits=array([0.]), fake_logits=array([-10000.])" in message
    assert report["finite_at_extreme_logits[float32]"].status == "failed"
    assert report["g_loss_gradient"].status == "held"  # the math is right; only the numerics fail
    message, _ = failure(lambda: check_gan_loss(d_naive_real))
    assert "d_loss(real_logits, fake_logits) is inf" in message and "real_logits=array([-10000.])" in message


def test_softplus_fix_accepted():
    report = check_gan_loss(d_ok, g_ok)
    assert isinstance(report, Report) and report.ok and report.saturates is False
    assert report["optimal_discriminator"].status == "held"


@pytest.mark.parametrize("loss, prop", [
    (d_fake_sign_flipped, "d_loss_rises_as_fake_logits_rise"),
    (d_real_sign_flipped, "d_loss_falls_as_real_logits_rise"),
])
def test_sign_flipped_term_rejected(loss, prop):
    message, report = failure(lambda: check_gan_loss(loss))
    assert f"property '{prop}' failed" in message
    assert "counterexample (shrunk by hypothesis): real_logits=array([0.]), fake_logits=array([0.])" in message
    assert report[prop].counterexample.endswith("delta=1.0")


def test_custom_op_with_wrong_backward_rejected():
    message, _ = failure(lambda: check_gradients(lambda x: bad_softplus(x).sum(), logits()))
    assert "property 'gradient' failed: gradient mismatch for input 0" in message
    assert "counterexample (shrunk by hypothesis): x0=array([0.])" in message
    message, report = failure(lambda: check_gan_loss(d_custom_op))
    assert "property 'd_loss_gradient' failed: the gradient of d_loss with respect to real_logits[0] is -1.0" in message
    assert "real_logits=array([0.]), fake_logits=array([0.])" in message
    assert [r.name for r in report.failures] == ["d_loss_gradient"]


def test_generator_loss_with_wrong_backward_rejected():
    """A right d_loss with a g_loss of one argument whose custom op's backward is off by 2."""
    message, report = failure(lambda: check_gan_loss(lambda r, f: losses.d_loss("ns", r, f),
                                                     lambda f: bad_softplus(-f).mean()))
    assert "property 'g_loss_gradient' failed: the gradient of g_loss with respect to fake_logits[0]" in message
    assert [r.name for r in report.failures] == ["g_loss_gradient"]


def test_whole_batch_norm_rejected():
    message, report = failure(lambda: check_penalty(gp_batch_norm))
    assert "property 'per_sample_independence' failed: the penalty of the batch is" in message
    assert "critic_and_batch=(Critic(coupled=False," in message
    assert report["linear_critic"].status == "failed"  # ||G|| grows with the batch size
    assert report["interpolation_per_sample"].status == "held"


def test_per_element_interpolation_rejected():
    message, report = failure(lambda: check_penalty(gp_per_element_alpha))
    assert "property 'interpolation_per_sample' failed" in message
    assert "real_fake=(array([[0., 0.]]), array([[1., 1.]]))" in message  # the shrunk pair
    assert [r.name for r in report.failures] == ["interpolation_per_sample"]


def test_penalty_without_create_graph_rejected():
    def no_graph(critic, real, fake):
        x = _interpolates(real, fake, per_element=False)
        (g,) = sg.grad(critic(x).sum(), x)  # create_graph=False: a constant
        return ((ops.sqrt((g * g).sum(axis=1) + 1e-12) - 1.0) ** 2).mean() * 10.0

    message, _ = failure(lambda: check_penalty(no_graph))
    assert "property 'critic_weight_gradient' failed" in message


def test_wrong_closed_form_is_reported():
    message, _ = failure(lambda: check_penalty(gp_ok, linear_value=lambda n: (n - 1.0) ** 2))
    assert "property 'linear_critic' failed: for a linear critic with ||w||" in message


# --------------------------------------------------------------------------- acceptance


@pytest.mark.parametrize("name", list(CHECKS))
def test_every_shipped_loss_and_penalty_accepted(name):
    assert CHECKS[name]().ok


def test_minimax_saturation_is_information_not_failure():
    report = check_gan_loss(functools.partial(losses.d_loss, "minimax"), functools.partial(losses.g_loss, "minimax"))
    assert report.ok and report.saturates is True
    info = report["generator_saturation"]
    assert info.status == "info" and "SATURATES" in info.detail
    assert report["cross_entropy_family"].status == "info"


def test_hand_written_penalty_accepted_and_check_gradients_returns_none():
    assert check_penalty(gp_ok, linear_value=lambda n: 10.0 * (n - 1.0) ** 2).ok
    assert check_gradients(lambda x: ops.tanh(x) * x, logits(extreme=False, min_value=-5, max_value=5),
                           second_order=True, max_examples=10) is None


def test_check_gan_loss_without_raising_and_g_with_real_logits():
    report = check_gan_loss(d_fake_sign_flipped, raise_on_failure=False)
    assert not report.ok and "FAILED  d_loss_rises_as_fake_logits_rise" in str(report)
    seen = []

    def g_two(fake_logits, real_logits):
        seen.append(real_logits.shape)
        return g_ok(fake_logits)

    assert check_gan_loss(d_ok, g_two, max_examples=5).ok and seen


def test_penalty_randomness_is_restored():
    sg.manual_seed(123)
    np.random.seed(7)
    expected_sg, expected_np = sg.rand(3).numpy(), np.random.random(3)
    sg.manual_seed(123)
    np.random.seed(7)
    check_penalty(gp_ok, max_examples=3)
    np.testing.assert_array_equal(sg.rand(3).numpy(), expected_sg)
    np.testing.assert_array_equal(np.random.random(3), expected_np)


# --------------------------------------------------------------------------- strategies


@settings(max_examples=30)
@given(x=logits(shape=(2, 3)), y=logits(dtype="float32", extreme=False, min_value=-1, max_value=1))
def test_logits_strategy(x, y):
    assert x.shape == (2, 3) and x.dtype == np.float64 and np.all(np.abs(x) <= 1e4)
    assert y.dtype == np.float32 and np.all(np.abs(y) <= 1)


def test_extreme_logits_are_drawn():
    seen = set()

    @settings(max_examples=60, derandomize=True)
    @given(x=logits())
    def collect(x):
        seen.update(float(v) for v in x)

    collect()
    assert {1e4, -1e4} & seen and 0.0 in seen and -1e4 in EXTREME_LOGITS


@settings(max_examples=20)
@given(pq=distributions(), counts=distributions(full_support=True, counts=True), rp=batches(pair=True))
def test_distribution_and_batch_strategies(pq, counts, rp):
    p, q = pq
    assert p.shape == q.shape and np.isclose(p.sum(), 1) and np.isclose(q.sum(), 1)
    assert np.all((p + q) > 0)
    assert np.all(counts[0] >= 1) and np.all(counts[1] >= 1)
    assert rp[0].shape == rp[1].shape and rp[0].ndim == 2


@settings(max_examples=10)
@given(plain=critics(in_features=3), coupled=critics(in_features=3, coupled=True))
def test_critic_strategy_and_batch_coupling(plain, coupled):
    x = sg.Tensor(np.linspace(-1, 1, 12).reshape(4, 3), dtype="float64")
    assert isinstance(plain, Critic) and plain(x).shape == (4, 1)
    assert all(p.requires_grad and p.dtype == np.float64 for p in plain.parameters())
    # without coupling a sample's score does not depend on the batch; with it, it does
    np.testing.assert_allclose(plain(x[:1]).numpy(), plain(x).numpy()[:1])
    # a coupled critic centres its hidden layer over the batch: a lone sample always scores b2
    assert coupled.coupled and coupled(x[:1]).item() == pytest.approx(coupled.b2.item())


def test_missing_hypothesis_is_a_clear_import_error(monkeypatch):
    for name in [m for m in sys.modules if m == "scratchgan.testing" or m.startswith("scratchgan.testing.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    with pytest.raises(ImportError, match=r'pip install "scratchgan\[test\]"'):
        importlib.import_module("scratchgan.testing")


# --------------------------------------------------------------------------- outside the repository


def test_run_all_prints_each_report_and_says_whether_all_held(monkeypatch):
    from scratchgan.testing import builtin

    monkeypatch.setattr(builtin, "CHECKS", {
        "good": lambda: check_penalty(gp_ok, max_examples=3),
        "bad": lambda: check_gan_loss(d_fake_sign_flipped, max_examples=5),
    })
    lines = []
    assert builtin.run_all(out=lines.append) is False
    text = "\n".join(lines)
    assert "check_penalty(gp_ok):" in text and "bad: FAILED" in text and "d_loss_rises_as_fake_logits_rise" in text
    assert lines[-1] == "scratchgan.testing: some built-in checks FAILED"


def test_builtin_suite_runs_against_installed_package(tmp_path):
    """The documented command, from a folder outside the repository."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYPOTHESIS_PROFILE")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "scratchgan.testing", "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(CHECKS)} passed" in result.stdout
    repo = Path(__file__).resolve().parents[1]
    assert not (tmp_path / ".pytest_cache").exists() and str(tmp_path) != str(repo)


# --------------------------------------------------------------------------- docs/testing.md


def test_docs_examples_run_and_print_what_the_docs_show(capsys):
    """Every python block of docs/testing.md runs (in order, one namespace); a text block after one is its output."""
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "testing.md").read_text()
    blocks = re.findall(r"```(python|text)\n(.*?)```", doc, flags=re.S)
    namespace = {"__name__": "docs_testing"}
    shown = 0
    for i, (lang, code) in enumerate(blocks):
        if lang != "python":
            continue
        capsys.readouterr()
        exec(compile(code, f"docs/testing.md python block {i}", "exec"), namespace)  # noqa: S102
        out = capsys.readouterr().out
        if i + 1 < len(blocks) and blocks[i + 1][0] == "text":
            assert out.strip() == blocks[i + 1][1].strip(), f"block {i}"
            shown += 1
    assert shown == 4
