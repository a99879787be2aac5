"""The reference GAN step written by hand, without autograd: the floor for scratchgan.

G: 100 -> 256 -> 256 -> 256 -> 784 (ReLU, tanh output); D: 784 -> 256 -> 256 ->
256 -> 1 (ReLU, logit output); non-saturating loss through the logits; Adam
with PyTorch's update. Weights are stored as (in, out), like scratchgan.nn.Linear.
Written once for NumPy and CuPy: ``xp`` is the array module.
"""

from __future__ import annotations

import numpy as np

G_SIZES = (100, 256, 256, 256, 784)
D_SIZES = (784, 256, 256, 256, 1)

# the parts of one step, in order; ``step(..., mark=f)`` calls ``f(phase)`` as each ends (step_phases.py)
PHASES = ("G forward (no grad)", "D forward + loss", "D backward", "D Adam", "G+D forward + loss",
          "G gradients", "G Adam")


def no_mark(phase: str) -> None:
    """The default ``mark``: the timed benchmark records nothing."""


def init_params(sizes, rng: np.random.Generator, dtype=np.float32) -> list[np.ndarray]:
    """PyTorch's Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b; [W1, b1, W2, b2, ...]."""
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        params.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
        params.append(rng.uniform(-bound, bound, (fan_out,)).astype(dtype))
    return params


def _forward(params, x, xp, tanh_out: bool):
    """Return the list of layer inputs plus the output: [x, h1, ..., out]."""
    hs = [x]
    n = len(params) // 2
    for i in range(n):
        a = hs[-1] @ params[2 * i]
        a += params[2 * i + 1]
        if i < n - 1:
            xp.maximum(a, 0, out=a)
        elif tanh_out:
            xp.tanh(a, out=a)
        hs.append(a)
    return hs


def _backward(params, hs, g, param_grads: bool, input_grad: bool, tanh_out: bool):
    """Backpropagate ``g`` (gradient w.r.t. the output) through an MLP forward's cache."""
    n = len(params) // 2
    grads = [None] * len(params)
    if tanh_out:
        out = hs[-1]
        g = g * (1 - out * out)
    for i in reversed(range(n)):
        if param_grads:
            grads[2 * i] = hs[i].T @ g
            grads[2 * i + 1] = g.sum(axis=0)
        if i > 0 or input_grad:
            g = g @ params[2 * i].T
            if i > 0:
                g *= hs[i] > 0
    return grads, g


def _sigmoid(xp, x):
    return 0.5 * (1 + xp.tanh(0.5 * x))


class Adam:
    """PyTorch's Adam (no weight decay, no amsgrad), over a list of arrays, in place."""

    def __init__(self, params, xp, lr=2e-4, betas=(0.5, 0.999), eps=1e-8):
        self.params, self.xp, self.lr, self.betas, self.eps = params, xp, lr, betas, eps
        self.m = [xp.zeros_like(p) for p in params]
        self.v = [xp.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads):
        b1, b2 = self.betas
        self.t += 1
        step_size = self.lr / (1 - b1**self.t)
        sqrt_bc2 = (1 - b2**self.t) ** 0.5
        xp = self.xp
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            denom = xp.sqrt(v) / sqrt_bc2 + self.eps
            p -= step_size * (m / denom)


class HandwrittenGAN:
    """One training step of the reference GAN, by hand."""

    def __init__(self, g_params, d_params, xp=np, lr=2e-4, betas=(0.5, 0.999)):
        self.xp = xp
        self.G = [xp.asarray(p).copy() for p in g_params]
        self.D = [xp.asarray(p).copy() for p in d_params]
        self.opt_g = Adam(self.G, xp, lr, betas)
        self.opt_d = Adam(self.D, xp, lr, betas)

    def step(self, real, z_d, z_g, mark=no_mark):
        xp = self.xp
        batch = real.shape[0]
        # --- discriminator: softplus(-D(x)) + softplus(D(G(z))), fake detached
        fake = _forward(self.G, z_d, xp, tanh_out=True)[-1]
        mark(PHASES[0])
        hs_r = _forward(self.D, real, xp, tanh_out=False)
        hs_f = _forward(self.D, fake, xp, tanh_out=False)
        g_r = (_sigmoid(xp, hs_r[-1]) - 1) / batch
        g_f = _sigmoid(xp, hs_f[-1]) / batch
        mark(PHASES[1])
        grads_r, _ = _backward(self.D, hs_r, g_r, True, False, False)
        grads_f, _ = _backward(self.D, hs_f, g_f, True, False, False)
        grads_d = [a + b for a, b in zip(grads_r, grads_f)]
        mark(PHASES[2])
        self.opt_d.step(grads_d)
        mark(PHASES[3])
        # --- generator: softplus(-D(G(z))), only G's gradients
        hs_g = _forward(self.G, z_g, xp, tanh_out=True)
        hs_d = _forward(self.D, hs_g[-1], xp, tanh_out=False)
        g_out = (_sigmoid(xp, hs_d[-1]) - 1) / batch
        mark(PHASES[4])
        _, g_fake = _backward(self.D, hs_d, g_out, False, True, False)
        grads_g, _ = _backward(self.G, hs_g, g_fake, True, False, True)
        mark(PHASES[5])
        self.opt_g.step(grads_g)
        mark(PHASES[6])

    def parameters(self):
        return self.G + self.D
