"""The benchmarks' reference steps give the same gradients with the accelerations on and on the definitions alone.

``benchmarks/gan_step.py``'s MLP GAN step and ``benchmarks/dcgan_step.py``'s
DCGAN step (the 28x28 networks of docs/training.md: BatchNorm, transposed
convolutions, NS loss, Adam), as a user writes them, in float64: two steps
with every acceleration of ``scratchgan/accel`` on, and two inside
``sg.reference_mode()`` from the same weights and batches. Issue 24 asks for a
relative 1e-9 or bitwise; the MLP step is bitwise (the same products), the
DCGAN step differs in the last bits (the chunked convolutions sum in another
order), so a relative 1e-9 there, norm-wise per array (``||a - b|| / ||b||``):
element by element, a gradient that is a nearly cancelling sum (a conv bias
before batch norm, zero in exact arithmetic; batch norm's scale) is rounding
noise in relative terms.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import scratchgan as sg

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import dcgan_step  # noqa: E402
import gan_step  # noqa: E402
from handwritten import D_SIZES, G_SIZES, init_params  # noqa: E402


def _batches(shape_real, nz, batch, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.uniform(-1, 1, (batch, *shape_real)), rng.standard_normal((batch, nz)), rng.standard_normal((batch, nz)))
            for _ in range(2)]


def _grads(module):
    return [p.grad.numpy().copy() for p in module.parameters()]


def _run(make, batches, reference: bool):
    model = make()
    with sg.reference_mode(reference):
        for real, z_d, z_g in batches:
            model.step(real, z_d, z_g)
    return _grads(model.D) + _grads(model.G), [p.numpy().copy() for p in model.D.parameters()] + \
        [p.numpy().copy() for p in model.G.parameters()]


def _compare(make, batches, rtol):
    (fast_grads, fast_params), (ref_grads, ref_params) = _run(make, batches, False), _run(make, batches, True)
    assert len(fast_grads) == len(ref_grads) > 4
    worst = []
    for a, b in zip(fast_grads + fast_params, ref_grads + ref_params):
        if rtol == 0:
            np.testing.assert_array_equal(a, b)
        elif np.linalg.norm(b) < 1e-12:  # zero in exact arithmetic (a conv bias before batch norm): noise both ways
            assert np.linalg.norm(a) < 1e-12
        else:  # norm-wise: a sum that nearly cancels (batch norm's) is off in more digits than the whole array
            error = np.linalg.norm(a - b) / np.linalg.norm(b)
            worst.append(error)
            assert error <= rtol, f"relative error {error:.3g} (norm-wise) for an array of shape {b.shape}"
    print(f"largest norm-wise relative difference: {max(worst, default=0.0):.3g}")


def test_mlp_reference_step_is_bitwise_the_accelerated_one():
    rng = np.random.default_rng(0)
    g_params = [p.astype(np.float64) for p in init_params(G_SIZES, rng)]
    d_params = [p.astype(np.float64) for p in init_params(D_SIZES, rng)]
    batches = _batches((G_SIZES[-1],), G_SIZES[0], batch=16)
    _compare(lambda: gan_step.ScratchganGAN(g_params, d_params, dtype="float64"), batches, rtol=0)


@pytest.mark.parametrize("batch", [8, 40])  # 40: several chunks in the accelerated convolutions
def test_dcgan_reference_step_matches_the_accelerated_one(batch, monkeypatch):
    from scratchgan.accel import conv as accel_conv

    monkeypatch.setattr(accel_conv, "_CHUNK_ELEMENTS", 1 << 14)  # small chunks: the chunk loops run several times
    batches = _batches((1, dcgan_step.IMG, dcgan_step.IMG), dcgan_step.NZ, batch=batch)
    _compare(lambda: dcgan_step.ScratchganDCGAN(seed=0, dtype="float64"), batches, rtol=1e-9)
