"""The speed benchmark's correctness side: scratchgan's reference step against the hand-written one.

``benchmarks/gan_step.py`` times scratchgan against a hand-written NumPy step
(the floor). These tests check that the two compute the same thing, so that the
benchmark compares equal work: the gradients directly (Adam's update is nearly
blind to a gradient's scale, so comparing updates alone would miss a wrong 1/N),
the benchmark's own update check, and a short run of the script itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import scratchgan as sg
from scratchgan import losses

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import gan_step  # noqa: E402
import handwritten as hw  # noqa: E402

BATCH = 16


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture
def setting():
    rng = np.random.default_rng(7)
    g_params = hw.init_params(hw.G_SIZES, rng, np.float64)
    d_params = hw.init_params(hw.D_SIZES, rng, np.float64)
    real = rng.uniform(-1, 1, (BATCH, 784))
    z_d, z_g = rng.standard_normal((BATCH, 100)), rng.standard_normal((BATCH, 100))
    return g_params, d_params, real, z_d, z_g


def test_discriminator_gradients_equal_the_hand_derived_ones(setting):
    g_params, d_params, real, z_d, z_g = setting
    fake = hw._forward(g_params, z_d, np, tanh_out=True)[-1]
    hs_r = hw._forward(d_params, real, np, tanh_out=False)
    hs_f = hw._forward(d_params, fake, np, tanh_out=False)
    grads_r, _ = hw._backward(d_params, hs_r, (_sigmoid(hs_r[-1]) - 1) / BATCH, True, False, False)
    grads_f, _ = hw._backward(d_params, hs_f, _sigmoid(hs_f[-1]) / BATCH, True, False, False)
    expected = [a + b for a, b in zip(grads_r, grads_f)]

    ours = gan_step.ScratchganGAN(g_params, d_params, dtype="float64")
    with sg.no_grad():
        fake_t = ours.G(sg.Tensor(z_d, dtype="float64"))
    losses.d_loss("ns", ours.D(sg.Tensor(real, dtype="float64")), ours.D(fake_t)).backward()
    got = [p.grad.numpy() for p in ours.D.parameters()]
    assert [g.shape for g in got] == [e.shape for e in expected]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-14)


def test_generator_gradients_equal_the_hand_derived_ones(setting):
    g_params, d_params, _, _, z_g = setting
    hs_g = hw._forward(g_params, z_g, np, tanh_out=True)
    hs_d = hw._forward(d_params, hs_g[-1], np, tanh_out=False)
    _, g_fake = hw._backward(d_params, hs_d, (_sigmoid(hs_d[-1]) - 1) / BATCH, False, True, False)
    expected, _ = hw._backward(g_params, hs_g, g_fake, True, False, True)

    ours = gan_step.ScratchganGAN(g_params, d_params, dtype="float64")
    g_list = list(ours.G.parameters())
    got = sg.grad(losses.g_loss("ns", ours.D(ours.G(sg.Tensor(z_g, dtype="float64")))), g_list)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-10, atol=1e-14)


def test_benchmark_update_check_passes_and_would_see_a_different_update():
    assert gan_step.check_same_update() < 1e-6
    # the check is not vacuous: a learning rate 1% off moves the update by ~1e-2 lr
    original = gan_step.HandwrittenGAN.__init__

    def off_by_one_percent(self, g_params, d_params, xp=np, lr=2e-4, betas=(0.5, 0.999)):
        original(self, g_params, d_params, xp=xp, lr=lr * 1.01, betas=betas)

    gan_step.HandwrittenGAN.__init__ = off_by_one_percent
    try:
        with pytest.raises(SystemExit, match="disagree"):
            gan_step.check_same_update()
    finally:
        gan_step.HandwrittenGAN.__init__ = original


def test_quartiles_of_the_per_repetition_ratios():
    assert gan_step._quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 4.0)
    assert gan_step._quartiles([0.9]) == (0.9, 0.9)
    row = {"vs_torch": 1.25, "vs_torch_quartiles": (1.2, 1.3)}
    assert gan_step._ratio_cell(row, "vs_torch", "x") == "1.25x (1.20-1.30)"
    assert gan_step._ratio_cell(row, "vs_handwritten") == "nan"


def test_benchmark_script_runs_and_writes_its_table(tmp_path):
    # a separate process: the script pins glibc's malloc thresholds for its whole process
    out = tmp_path / "perf.json"
    args = ["--batch-sizes", "8", "--repeats", "2", "--seconds", "0.01", "--no-memory", "--json", str(out)]
    done = subprocess.run([sys.executable, gan_step.__file__, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    printed = done.stdout
    assert "| 8 |" in printed and "check: scratchgan and hand-written updates agree" in printed
    rows = json.loads(out.read_text())["rows"]
    assert [r["batch"] for r in rows] == [8]
    row = rows[0]
    assert row["scratchgan"] > 0 and row["handwritten"] > 0
    q1, q3 = row["vs_handwritten_quartiles"]
    assert q1 <= row["vs_handwritten"] <= q3


def test_fixed_cost_script_runs():
    script = os.path.join(os.path.dirname(gan_step.__file__), "fixed_cost.py")
    done = subprocess.run([sys.executable, script, "--repeats", "1", "--steps", "20"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "fixed cost per step" in done.stdout and "scratchgan" in done.stdout


def test_step_phases_script_times_every_phase():
    script = os.path.join(os.path.dirname(gan_step.__file__), "step_phases.py")
    done = subprocess.run([sys.executable, script, "--batch", "8", "--repeats", "1", "--steps", "3"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for phase in hw.PHASES:  # every mark was reached in both steps
        assert phase in done.stdout
