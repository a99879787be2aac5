"""Time a DCGAN training step on 28x28 images: scratchgan vs PyTorch eager vs the matrix products alone.

The reference step (issue "Convolutional GANs end to end", item 6), float32:

* G: z (100) -> Linear(100, 128·7·7) -> BatchNorm1d -> ReLU -> (128, 7, 7)
  -> ConvTranspose2d(128, 64, 4, 2, 1) -> BatchNorm2d -> ReLU
  -> ConvTranspose2d(64, 1, 4, 2, 1) -> tanh;
* D: Conv2d(1, 64, 4, 2, 1) -> LeakyReLU(0.2) -> Conv2d(64, 128, 4, 2, 1)
  -> BatchNorm2d -> LeakyReLU(0.2) -> Flatten -> Linear(128·7·7, 1);
* non-saturating loss on logits, Adam(2e-4, (0.5, 0.999)) for both; one D
  update on a real batch and a detached fake batch (G run without gradients
  on noise ``z_d``; D's BatchNorm sees the two batches separately), then one G
  update on fresh noise ``z_g``. Every layer has PyTorch's default bias (the
  biases in front of a BatchNorm get a zero gradient in exact arithmetic).

Variants, interleaved in one run (A, B, C, A, B, C, ...), their order rotated
between repetitions, each in a worker process of its own that builds its model
once and times a repetition when the parent asks (so every variant has its own
heap, as a user's script has: glibc's malloc adapts its thresholds to the blocks
a process frees, and in one shared process the variants changed each other's
page faults and speed, e.g. PyTorch's own step from 7.4 to 5.6 steps/s at B = 64):

* ``scratchgan``: the library through its public API only, written as a user
  would write it (``sg.nn`` layers in ``nn.Sequential``, ``sg.losses``,
  ``sg.optim.Adam``; G's gradients through ``sg.grad``, as gan_step.py does);
* ``torch``: the same model in PyTorch eager, from the same initial weights
  (``loss.backward()`` for both updates, as a PyTorch user writes it: its G
  update also computes D's parameter gradients, which it never uses);
* ``floor``: the matrix products alone: every GEMM the step's convolutions
  and linears need (im2col-sized matrices, see :func:`gemm_shapes`), as
  ``matmul(a, b, out=c)`` on preallocated float32 arrays of the active
  backend. No im2col/col2im, no elementwise work, no BatchNorm, no Adam.

With ``--backend cupy`` scratchgan and the floor run on CuPy and the PyTorch
variant on CUDA (times are then given in milliseconds per step), joined by
two captured steps:

* ``scratchgan-graph``: the scratchgan step captured once as a CUDA graph with
  :func:`scratchgan.accel.cuda_graph.capture` (inputs written into persistent
  buffers) and replayed; a step the capture refuses shows as ``failed``, with
  the capture's reason on a ``failed:`` line;
* ``torch-graph``: PyTorch's CUDA-graph replay of its step (capturable Adam,
  static inputs, warm-up on a side stream, ``torch.cuda.graph``).

The PyTorch variants and the update check are reported "not run: no CUDA"
where PyTorch is missing or sees no GPU. Every clock reading follows a
synchronisation of the device.

What a run measures, per batch size (default 64 and 256): steps per second of
each variant, the median over ``--repeats`` repetitions of about
``--seconds`` each (each after a few untimed steps); the ratios of steps per
second scratchgan / torch (the target is >= 0.8) and scratchgan / floor per
repetition, with their median and quartiles; minor page faults per step;
unless ``--no-memory``, each variant's peak resident memory in a fresh
process (``--steps`` steps of that variant alone; the floor's holds the
operands of all its products at once, so it is no memory floor); the BLAS and
PyTorch thread counts the process got.

No process-wide tuning is applied (glibc malloc, BLAS/OpenMP thread counts:
as a user's program gets them); a run with thread variables set in the
environment says so in its header line.

Before timing, :func:`check_same_update` runs two steps of scratchgan and of
PyTorch in float64 from the same weights, batches and noise and asserts that
the gradients (D's after the D backward, G's after the G backward) and the
updated parameters and BatchNorm running statistics agree.

``--profile`` prints, instead of the timing table, where the scratchgan
step's time goes at each batch size: the median time of each phase of the
step, the self time of cProfile grouped by kind of work (the GEMMs, im2col /
col2im, the other array work, autograd and layer bookkeeping, Adam), and
cProfile's top entries by total and cumulative time.

Usage::

    python benchmarks/dcgan_step.py                         # NumPy, B = 64 256
    python benchmarks/dcgan_step.py --backend cupy          # GPU
    python benchmarks/dcgan_step.py --profile --batch-sizes 64
    python benchmarks/dcgan_step.py --batch-sizes 8 --repeats 1 --seconds 0.05 --no-memory   # a smoke run
    python benchmarks/dcgan_step.py --backend cupy --check-only     # only the float64 check, on the GPU

A variant that fails is shown as ``failed`` in the table, with its error on a
``failed:`` line below it, and the script then exits with status 1.
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import json
import os
import platform
import pstats
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import scratchgan as sg  # noqa: E402
from gan_step import (  # noqa: E402
    ScratchganGraphed, TorchGraphed, WorkerTimer, _faults_cell, _peak_rss_kb, _ratio_cell, _time_steps, heap_setting,
    report_problems, serve, speed_cell, thread_settings, time_batches, torch_status,
)
from handwritten import PHASES, no_mark  # noqa: E402
from scratchgan import backend, nn, optim
from scratchgan.gan import losses  # noqa: E402

LR, BETAS = 2e-4, (0.5, 0.999)
NZ, IMG = 100, 28
CH = (64, 128)  # feature maps: G's ConvTranspose2d and D's first Conv2d have 64, the 7x7 layers 128
FEAT = CH[1] * 7 * 7  # 6272


# --------------------------------------------------------------------------- the variants


def _grads_numpy(params):
    return [p.grad.numpy() if p.grad is not None else np.zeros(p.shape) for p in params]


class ScratchganDCGAN:
    """The reference DCGAN step with scratchgan, as a user writes it (public API only)."""

    def __init__(self, seed=0, dtype="float32", lr=LR):
        rng = np.random.default_rng(seed)  # the layers draw their initial values from it in order
        self.G = nn.Sequential(
            nn.Linear(NZ, FEAT, rng=rng, dtype=dtype), nn.BatchNorm1d(FEAT, dtype=dtype), nn.ReLU(),
            nn.Unflatten(1, (CH[1], 7, 7)),
            nn.ConvTranspose2d(CH[1], CH[0], 4, 2, 1, rng=rng, dtype=dtype), nn.BatchNorm2d(CH[0], dtype=dtype),
            nn.ReLU(),
            nn.ConvTranspose2d(CH[0], 1, 4, 2, 1, rng=rng, dtype=dtype), nn.Tanh(),
        )
        self.D = nn.Sequential(
            nn.Conv2d(1, CH[0], 4, 2, 1, rng=rng, dtype=dtype), nn.LeakyReLU(0.2),
            nn.Conv2d(CH[0], CH[1], 4, 2, 1, rng=rng, dtype=dtype), nn.BatchNorm2d(CH[1], dtype=dtype),
            nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(FEAT, 1, rng=rng, dtype=dtype),
        )
        self.opt_g = optim.Adam(self.G.parameters(), lr=lr, betas=BETAS)
        self.opt_d = optim.Adam(self.D.parameters(), lr=lr, betas=BETAS)
        self.g_params = list(self.G.parameters())

    def step(self, real, z_d, z_g, mark=no_mark):
        # the batches arrive as arrays of the active backend; as_tensor wraps them without a copy
        real, z_d, z_g = sg.as_tensor(real), sg.as_tensor(z_d), sg.as_tensor(z_g)
        with sg.no_grad():
            fake = self.G(z_d)
        mark(PHASES[0])
        self.opt_d.zero_grad()
        loss_d = losses.d_loss("ns", self.D(real), self.D(fake))
        mark(PHASES[1])
        loss_d.backward()
        mark(PHASES[2])
        self.opt_d.step()
        mark(PHASES[3])
        self.opt_g.zero_grad()
        loss_g = losses.g_loss("ns", self.D(self.G(z_g)))
        mark(PHASES[4])
        # only G's gradients are needed: grad() walks the part of the graph that leads to them
        for p, g in zip(self.g_params, sg.grad(loss_g, self.g_params)):
            p.grad = g
        mark(PHASES[5])
        self.opt_g.step()
        mark(PHASES[6])

    def state(self) -> dict:
        """``"G.0.weight" -> host array`` for every parameter and buffer, scratchgan's layouts."""
        out = {f"G.{k}": v for k, v in self.G.state_dict().items()}
        out.update({f"D.{k}": v for k, v in self.D.state_dict().items()})
        return out

    def d_grads(self):
        return _grads_numpy(self.D.parameters())

    def g_grads(self):
        return _grads_numpy(self.G.parameters())


class TorchDCGAN:
    """The reference DCGAN step in PyTorch eager, loaded from a scratchgan state (``ScratchganDCGAN.state()``)."""

    def __init__(self, state, device="cpu", dtype="float32", lr=LR):
        import torch  # noqa: PLC0415

        self.torch = torch
        tnn = torch.nn
        self.G = tnn.Sequential(
            tnn.Linear(NZ, FEAT), tnn.BatchNorm1d(FEAT), tnn.ReLU(), tnn.Unflatten(1, (CH[1], 7, 7)),
            tnn.ConvTranspose2d(CH[1], CH[0], 4, 2, 1), tnn.BatchNorm2d(CH[0]), tnn.ReLU(),
            tnn.ConvTranspose2d(CH[0], 1, 4, 2, 1), tnn.Tanh(),
        ).to(device=device, dtype=getattr(torch, dtype))
        self.D = tnn.Sequential(
            tnn.Conv2d(1, CH[0], 4, 2, 1), tnn.LeakyReLU(0.2), tnn.Conv2d(CH[0], CH[1], 4, 2, 1),
            tnn.BatchNorm2d(CH[1]), tnn.LeakyReLU(0.2), tnn.Flatten(), tnn.Linear(FEAT, 1),
        ).to(device=device, dtype=getattr(torch, dtype))
        with torch.no_grad():
            for prefix, net in (("G.", self.G), ("D.", self.D)):
                for name, t in list(net.named_parameters()) + list(net.named_buffers()):
                    if name.endswith("num_batches_tracked"):
                        continue  # PyTorch's own counter, only used with momentum=None
                    value = state[prefix + name]
                    if self._is_linear_weight(net, name):
                        value = value.T  # scratchgan's Linear.weight is (in, out), PyTorch's (out, in)
                    t.copy_(torch.from_numpy(np.ascontiguousarray(value)))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr, betas=BETAS)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr, betas=BETAS)
        self.bce = tnn.BCEWithLogitsLoss()

    def _is_linear_weight(self, net, name):
        module, attr = name.rsplit(".", 1)
        return attr == "weight" and isinstance(net.get_submodule(module), self.torch.nn.Linear)

    def step(self, real, z_d, z_g, mark=no_mark):
        torch = self.torch
        with torch.no_grad():
            fake = self.G(z_d)
        mark(PHASES[0])
        self.opt_d.zero_grad(set_to_none=True)
        lr_, lf = self.D(real), self.D(fake)
        loss_d = self.bce(lr_, torch.ones_like(lr_)) + self.bce(lf, torch.zeros_like(lf))
        mark(PHASES[1])
        loss_d.backward()
        mark(PHASES[2])
        self.opt_d.step()
        mark(PHASES[3])
        self.opt_g.zero_grad(set_to_none=True)
        lg = self.D(self.G(z_g))
        loss_g = self.bce(lg, torch.ones_like(lg))
        mark(PHASES[4])
        loss_g.backward()
        mark(PHASES[5])
        self.opt_g.step()
        mark(PHASES[6])

    def _numpy(self, net, name, t):
        a = t.detach().cpu().numpy().copy()
        return a.T if self._is_linear_weight(net, name) else a

    def state(self) -> dict:
        out = {}
        for prefix, net in (("G.", self.G), ("D.", self.D)):
            for name, t in list(net.named_parameters()) + list(net.named_buffers()):
                if not name.endswith("num_batches_tracked"):
                    out[prefix + name] = self._numpy(net, name, t)
        return out

    def _grads(self, net):
        return [self._numpy(net, n, p.grad) if p.grad is not None else np.zeros(tuple(p.shape))
                for n, p in net.named_parameters()]

    def d_grads(self):
        return self._grads(self.D)

    def g_grads(self):
        return self._grads(self.G)


def gemm_shapes(batch: int) -> list[tuple[str, int, int, int, int]]:
    """Every matrix product of one step, ``(what, m, k, n, count)`` for ``count`` products (m, k) @ (k, n).

    im2col-sized: a convolution with kernel 4, stride 2, padding 1 over an
    (N, C, H, W) input is the product of its columns (N·OH·OW, 16·C) with the
    weight (16·C, O); a transposed one is the product of its input rows
    (N·H·W, C_in) with the weight (C_in, 16·C_out), whose columns col2im then
    sums. Counts: G's forward twice (the fakes for D, then the G update), D's
    forward three times (real, fake, G's fakes), D's weight gradients twice
    (the D update), D's input gradients through its two upper layers three
    times and into the image once (the G update's path to G), G's backward once
    (its first Linear needs no input gradient). This is the minimum the step
    needs; PyTorch's ``backward()`` in the G update also computes D's weight
    gradients once more.
    """
    b, p14, p7 = batch, batch * 14 * 14, batch * 7 * 7
    c0, c1 = CH
    return [
        # G forward, x2
        ("G Linear fwd", b, NZ, FEAT, 2),
        ("G ConvT1 fwd (rows @ W)", p7, c1, 16 * c0, 2),
        ("G ConvT2 fwd (rows @ W)", p14, c0, 16 * 1, 2),
        # D forward, x3
        ("D Conv1 fwd (cols @ W)", p14, 16 * 1, c0, 3),
        ("D Conv2 fwd (cols @ W)", p7, 16 * c0, c1, 3),
        ("D Linear fwd", b, FEAT, 1, 3),
        # D weight gradients, x2 (the D update)
        ("D Linear dW", FEAT, b, 1, 2),
        ("D Conv2 dW (g^T @ cols)", c1, p7, 16 * c0, 2),
        ("D Conv1 dW (g^T @ cols)", c0, p14, 16 * 1, 2),
        # D input gradients: x3 through the upper layers, x1 into the image (the G update)
        ("D Linear dx", b, 1, FEAT, 3),
        ("D Conv2 dx (g @ W^T, col2im)", p7, c1, 16 * c0, 3),
        ("D Conv1 dx (g @ W^T, col2im)", p14, c0, 16 * 1, 1),
        # G backward, x1
        ("G ConvT2 dx (cols(g) @ W^T)", p14, 16 * 1, c0, 1),
        ("G ConvT2 dW (x^T @ cols(g))", c0, p14, 16 * 1, 1),
        ("G ConvT1 dx (cols(g) @ W^T)", p7, 16 * c0, c1, 1),
        ("G ConvT1 dW (x^T @ cols(g))", c1, p7, 16 * c0, 1),
        ("G Linear dW", NZ, b, FEAT, 1),
    ]


def gemm_flops(batch: int) -> int:
    return sum(2 * m * k * n * count for _, m, k, n, count in gemm_shapes(batch))


class MatmulFloor:
    """The step's GEMMs alone (:func:`gemm_shapes`), ``matmul(a, b, out=c)`` on preallocated float32 arrays."""

    def __init__(self, batch, xp, seed=0):
        rng = np.random.default_rng(seed)
        self.xp = xp
        self.products = []
        for _, m, k, n, count in gemm_shapes(batch):
            a = xp.asarray(rng.standard_normal((m, k), dtype=np.float32))
            b = xp.asarray(rng.standard_normal((k, n), dtype=np.float32))
            self.products.append((a, b, xp.empty((m, n), dtype=np.float32), count))

    def step(self, *_inputs):
        matmul = self.xp.matmul
        for a, b, c, count in self.products:
            for _ in range(count):
                matmul(a, b, out=c)


# --------------------------------------------------------------------------- inputs


class Inputs:
    """A pool of 'real' images (B, 1, 28, 28) in [-1, 1] and of noise (B, 100), float32, on the variant's device."""

    def __init__(self, batch, to_device, seed=0):
        rng = np.random.default_rng(seed)
        self.real = [to_device(rng.uniform(-1, 1, (batch, 1, IMG, IMG)).astype(np.float32)) for _ in range(4)]
        self.noise = [to_device(rng.standard_normal((batch, NZ), dtype=np.float32)) for _ in range(8)]
        self.i = 0

    def next(self):
        i = self.i = self.i + 1
        return self.real[i % 4], self.noise[(2 * i) % 8], self.noise[(2 * i + 1) % 8]


VARIANTS = ("scratchgan", "torch", "floor")
GPU_VARIANTS = ("scratchgan", "torch", "floor", "scratchgan-graph", "torch-graph")  # --backend cupy
TORCH_VARIANTS = ("torch", "torch-graph")


def _input_shapes(batch):
    return [(batch, 1, IMG, IMG), (batch, NZ), (batch, NZ)]


def _make_variant(name, batch, use_gpu, seed=0):
    xp = backend.xp
    if name == "scratchgan":
        return ScratchganDCGAN(seed), Inputs(batch, xp.asarray), backend.synchronize
    if name == "scratchgan-graph":
        model = ScratchganGraphed(ScratchganDCGAN(seed), _input_shapes(batch))
        return model, Inputs(batch, xp.asarray), backend.synchronize
    if name == "floor":
        return MatmulFloor(batch, xp), Inputs(batch, xp.asarray), backend.synchronize
    if name in TORCH_VARIANTS:
        import torch  # noqa: PLC0415

        device = "cuda" if use_gpu else "cpu"
        state = ScratchganDCGAN(seed).state()  # the same initial weights as the scratchgan variant
        model = TorchDCGAN(state, device=device)
        if name == "torch-graph":
            model = TorchGraphed(model, _input_shapes(batch))
        sync = torch.cuda.synchronize if use_gpu else (lambda: None)
        return model, Inputs(batch, lambda a: torch.from_numpy(a).to(device)), sync
    raise ValueError(name)


# --------------------------------------------------------------------------- correctness


GRAD_TOLERANCE = 1e-9  # max |difference| / the largest gradient of that network, float64
UPDATE_TOLERANCE = 1e-6  # max |difference of the parameter changes| / lr
# max |difference| / (|torch's value| + 1e-3) of the BatchNorm running statistics. The second step's
# batch statistics come from weights that already differ by up to UPDATE_TOLERANCE * lr (Adam divides
# near-zero gradients by their own size), which moves a running mean of ~1e-3 by ~1e-9 relative; a
# wrong momentum or variance correction is off by 1e-2 or more.
RUNNING_TOLERANCE = 1e-7


def check_same_update(seed=0, batch=8, steps=2, use_gpu=False) -> dict:
    """Two steps of scratchgan and of PyTorch from the same weights, batches and noise, in float64.

    Compares, at each step, D's gradients after the D backward and G's after
    the G backward (relative to the largest gradient of that network: Adam's
    update is nearly blind to a gradient's scale, so comparing updates alone
    would miss a wrong factor); and after the steps, every parameter's change
    (in units of lr) and the BatchNorm running statistics. Raises SystemExit
    naming the worst entry when they disagree; returns the worst differences.
    """
    import torch  # noqa: PLC0415

    rng = np.random.default_rng(seed + 1)
    real = rng.uniform(-1, 1, (batch, 1, IMG, IMG))
    z_d, z_g = rng.standard_normal((batch, NZ)), rng.standard_normal((batch, NZ))
    ours = ScratchganDCGAN(seed, dtype="float64")
    before = ours.state()
    device = "cuda" if use_gpu else "cpu"
    theirs = TorchDCGAN(before, device=device, dtype="float64")
    d_names = [f"D.{n}" for n, _ in ours.D.named_parameters()]
    g_names = [f"G.{n}" for n, _ in ours.G.named_parameters()]

    def recorder(model, grads):
        def mark(phase):
            if phase == PHASES[2]:
                grads["D"] = model.d_grads()
            elif phase == PHASES[5]:
                grads["G"] = model.g_grads()
        return mark

    worst = {"grad": (0.0, ""), "update": (0.0, ""), "running": (0.0, "")}

    def note(kind, value, where):
        if not value <= worst[kind][0]:  # NaN counts as the worst
            worst[kind] = (value, where)

    xp = backend.xp
    for step in range(steps):
        g_ours, g_theirs = {}, {}
        ours.step(xp.asarray(real), xp.asarray(z_d), xp.asarray(z_g), mark=recorder(ours, g_ours))
        theirs.step(*(torch.from_numpy(a).to(device) for a in (real, z_d, z_g)), mark=recorder(theirs, g_theirs))
        for net, names in (("D", d_names), ("G", g_names)):
            scale = max(float(np.max(np.abs(g))) for g in g_theirs[net])
            for name, a, b in zip(names, g_ours[net], g_theirs[net]):
                note("grad", float(np.max(np.abs(a - b))) / scale, f"{name} gradient, step {step + 1}")
    after_ours, after_theirs = ours.state(), theirs.state()
    for name, p0 in before.items():
        a, b = after_ours[name], after_theirs[name]
        if "running_" in name:
            note("running", float(np.max(np.abs(a - b) / (np.abs(b) + 1e-3))), name)
        else:
            note("update", float(np.max(np.abs((a - p0) - (b - p0)))) / LR, name)
    bad = [f"{kind} {value:.3g} at {where}" for kind, (value, where), limit in
           zip(worst, worst.values(), (GRAD_TOLERANCE, UPDATE_TOLERANCE, RUNNING_TOLERANCE)) if not value < limit]
    if bad:
        raise SystemExit("scratchgan and PyTorch disagree on the DCGAN step (float64): " + "; ".join(bad))
    return {kind: value for kind, (value, _) in worst.items()}


# --------------------------------------------------------------------------- threads, memory


def _openblas_threads() -> int | None:
    """The thread count of the OpenBLAS that NumPy loaded (read through its own getter), or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        if "numpy" not in path and "scipy_openblas" not in path:
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                       "scipy_openblas_get_num_threads", "openblas_get_num_threads"):
            getter = getattr(lib, symbol, None)
            if getter is not None:
                getter.restype = ctypes.c_int
                return int(getter())
    return None


def threads_in_use() -> str:
    """The thread counts the libraries chose (nothing is set here): NumPy's BLAS, PyTorch's intra-op pool."""
    parts = [f"numpy BLAS {_openblas_threads() or '?'}"]
    torch = sys.modules.get("torch")  # only where this process uses it: a scratchgan worker never imports it
    if torch is not None:
        parts.append(f"torch intra-op {torch.get_num_threads()}")
    try:
        with open("/proc/self/status") as f:
            parts += [f"process threads {line.split()[1]}" for line in f if line.startswith("Threads:")]
    except OSError:
        pass
    return ", ".join(parts) + f" ({os.cpu_count()} cores)"


def _peak_rss_mb(variant, batch, steps, backend_name) -> float | None:
    """Peak resident memory of a fresh process that runs ``steps`` steps of one variant."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", variant, "--batch-sizes", str(batch),
           "--steps", str(steps), "--backend", backend_name]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def _worker(variant, batch, steps, use_gpu):
    model, inputs, sync = _make_variant(variant, batch, use_gpu)
    _time_steps(model, inputs, sync, steps)
    print(json.dumps({"peak_rss_mb": _peak_rss_kb() / 1024}))


# --------------------------------------------------------------------------- the profile


def _family(func) -> str:
    """The kind of work a profiled Python function stands for, from its file and name."""
    path, _, name = func
    path = path.replace("\\", "/")
    if "/scratchgan/" not in path:
        return "benchmark code, NumPy's Python-level wrappers"
    rel = path.split("/scratchgan/", 1)[1]
    if rel == "backend/__init__.py" and name == "matmul":
        return "GEMMs (backend.matmul)"
    if rel in ("ops/conv.py", "accel/conv.py"):  # the definitions, and their acceleration (the default)
        if name == "_transpose_conv_by_adds":
            return "transposed conv by slice-adds (few output channels): its GEMM + col2im"
        if name == "_transpose_conv_by_phases":
            return "transposed conv by phases: its GEMMs + the phases' im2col and copies"
        if name == "col2im":
            return "transposed conv's col2im (definition, reference mode)"
        if name in ("im2col", "_column_chunks", "windows"):
            return "im2col"
        if name == "_column_products":
            return "GEMMs of conv2d / conv2d_weight (one per chunk of samples)"
        if name == "_matmul_into":  # NumPy's matmul into a chunk's buffer: every chunked product's GEMM
            return "GEMMs of the conv chunks (matmul into scratch buffers)"
        return "conv ops: the rest (weight reshapes, checks)"
    if rel.startswith("optim/"):
        return "Adam"
    if rel.startswith("ops/"):
        return "other ops (elementwise, reductions, BatchNorm arithmetic, losses)"
    if rel.startswith("autograd/"):
        return "autograd engine (graph, backward walk, grad accumulation)"
    if rel.startswith("nn/"):
        return "layers (nn: forward glue, BatchNorm, shape checks)"
    if rel.startswith("gan/losses/"):
        return "other ops (elementwise, reductions, BatchNorm arithmetic, losses)"
    return f"scratchgan/{rel}"


def family_times(stats: pstats.Stats) -> dict:
    """Self time per family: each Python function's own time plus that of the C functions it calls directly.

    cProfile books the time of a C function (NumPy's ufuncs, ``reshape``,
    ``@`` only when called as ``matmul``) to the C function itself; here it is
    handed to its callers, in the proportion cProfile recorded per caller, so
    that an array copy inside im2col counts as im2col's.
    """
    own = {}
    for func, (_, _, tt, _, callers) in stats.stats.items():
        if func[0] == "~" and callers:  # a built-in: split its time among its callers
            total = sum(edge[2] for edge in callers.values()) or 1.0
            for caller, edge in callers.items():
                own[caller] = own.get(caller, 0.0) + tt * edge[2] / total
        else:
            own[func] = own.get(func, 0.0) + tt
    families = {}
    for func, t in own.items():
        families[_family(func)] = families.get(_family(func), 0.0) + t
    return families


def profile(batch, steps, top, use_gpu, with_torch=True):
    """Print where the scratchgan step's time goes at one batch size (and PyTorch's phases beside it)."""
    from step_phases import PhaseClock  # noqa: PLC0415

    names = ["scratchgan"] + (["torch"] if with_torch else [])
    made = {name: _make_variant(name, batch, use_gpu) for name in names}
    clocks = {name: PhaseClock() for name in names}
    for rep in range(3):  # alternate the variants; the first round is warm-up
        for name in names:
            model, inputs, sync = made[name]
            clock = clocks[name] if rep else PhaseClock()
            for _ in range(steps if rep else 3):
                clock.start()
                model.step(*inputs.next(), mark=clock)
            sync()
    model, inputs, sync = made["scratchgan"]
    phases = {name: clocks[name].medians_ms() for name in names}
    total = {name: sum(phases[name].values()) for name in names}
    print(f"\n== DCGAN step, B = {batch}: median ms per phase over {2 * steps} steps"
          + (" [GPU: host-side times, no synchronisation per phase]" if use_gpu else ""))
    print(f"  {'phase':22s} " + " ".join(f"{name:>17s}" for name in names))
    for phase in PHASES + ("sum",):
        cells = [(phases[name][phase], 100 * phases[name][phase] / total[name]) if phase != "sum"
                 else (total[name], 100.0) for name in names]
        print(f"  {phase:22s} " + " ".join(f"{ms:9.2f} ({pct:4.1f}%)" for ms, pct in cells))
    floor_model = MatmulFloor(batch, backend.xp)
    floor_model.step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        floor_model.step()
    sync()
    floor_ms = (time.perf_counter() - start) / steps * 1e3
    print(f"  the step's GEMMs alone (floor): {floor_ms:.2f} ms, {gemm_flops(batch) / 1e9:.2f} GFLOP "
          f"({gemm_flops(batch) / floor_ms / 1e6:.1f} GFLOP/s)")

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        model.step(*inputs.next())
    sync()
    prof.disable()
    stats = pstats.Stats(prof)
    families = family_times(stats)
    whole = sum(families.values())
    print(f"\n  cProfile self time by kind of work, ms per step (profiled: {whole / steps * 1e3:.2f} ms per step; "
          "a C call's time is booked to its caller)")
    for name, t in sorted(families.items(), key=lambda kv: -kv[1]):
        print(f"  {t / steps * 1e3:8.2f} ms  {100 * t / whole:5.1f}%  {name}")
    for key in ("tottime", "cumulative"):
        print(f"\n  top {top} by {key} ({steps} steps):")
        stats.sort_stats(key).print_stats(top)


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--repeats", type=int, default=7, help="timed repetitions per variant (median reported)")
    parser.add_argument("--seconds", type=float, default=1.0, help="approximate length of one repetition")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds of rest before each repetition")
    parser.add_argument("--calibration-steps", type=int, default=3,
                        help="timed steps (after half as many untimed) that size a repetition")
    parser.add_argument("--min-steps", type=int, default=3, help="the fewest timed steps in a repetition")
    parser.add_argument("--steps", type=int, default=20, help="steps for the peak-memory workers and the profile")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    parser.add_argument("--no-check", action="store_true", help="skip the float64 update check (needs torch)")
    parser.add_argument("--check-only", action="store_true", help="run the float64 update check and stop")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the timing run, print where the scratchgan step's time goes")
    parser.add_argument("--top", type=int, default=25, help="cProfile entries listed with --profile")
    parser.add_argument("--worker-timeout", type=float, default=300.0,
                        help="seconds a timing worker may take to answer before its variant counts as failed")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--warm-heap", action="store_true",
                        help="run every variant as the scratchgan command runs (scratchgan.app.process.keep_heap_warm)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    heap = heap_setting(args.warm_heap)
    sg.set_backend(args.backend)
    use_gpu = args.backend == "cupy"
    if args.worker:
        return _worker(args.worker, args.batch_sizes[0], args.steps, use_gpu)
    if args.serve:
        return serve(_make_variant, args.serve, use_gpu, describe=threads_in_use)

    torch_version, torch_missing = torch_status(use_gpu)
    if torch_missing:
        print(f"not run: the PyTorch reference and the update check: {torch_missing}")
    if torch_missing is None and not args.no_check:
        worst = check_same_update(use_gpu=use_gpu)
        print(f"check: scratchgan and PyTorch DCGAN updates agree in float64 over 2 steps (max gradient difference "
              f"{worst['grad']:.1e} of the largest, max update difference {worst['update']:.1e} x lr, "
              f"running statistics {worst['running']:.1e})")
    if args.check_only:
        return 0
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python "
          f"{platform.python_version()}; numpy {np.__version__}; torch {torch_version}; backend {args.backend}; "
          f"{thread_settings()}; {heap}", flush=True)

    if args.profile:
        for batch in args.batch_sizes:
            profile(batch, args.steps, args.top, use_gpu, with_torch=torch_missing is None)
        return 0

    shown = GPU_VARIANTS if use_gpu else VARIANTS
    not_run = {v: torch_missing for v in shown if v in TORCH_VARIANTS and torch_missing} if use_gpu else {}
    variants = [v for v in shown if v not in TORCH_VARIANTS or torch_missing is None]
    # each variant in a worker process of its own, timed when asked; on the CPU a fresh one per batch size
    timers = {v: WorkerTimer(os.path.abspath(__file__), v, args.backend, args.worker_timeout,
                             fresh_per_batch=not use_gpu) for v in variants}
    pairs = [("vs_torch", "scratchgan", "torch"), ("vs_floor", "scratchgan", "floor"),
             ("graph_vs_torch_graph", "scratchgan-graph", "torch-graph"),
             ("graph_vs_eager", "scratchgan-graph", "scratchgan")]
    def describe(batch, failed):
        return {"gflop_per_step": gemm_flops(batch) / 1e9,
                "threads": "; ".join(f"{v}: {timers[v].threads}" for v in variants if v not in failed)}

    results = time_batches(timers, args.batch_sizes, args, pairs, not_run, variants, describe, _peak_rss_mb)

    print(f"\nthreads in use: {results[-1]['threads'] if results else threads_in_use()}")
    unit = "ms" if use_gpu else "steps/s"
    header = (f"| B | scratchgan {unit} | torch {unit} | floor (GEMMs) {unit} | sg / torch (quartiles) "
              "| sg / floor (quartiles) | page faults/step (sg / torch / floor) |")
    if use_gpu:
        header += (f" scratchgan-graph {unit} | torch-graph {unit} | graph vs torch-graph (quartiles) "
                   "| graph vs eager (quartiles) |")
    if not args.no_memory:
        header += " peak RSS MB (sg / torch / floor) |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in results:
        line = (f"| {r['batch']} | " + " | ".join(speed_cell(r, v, use_gpu) for v in VARIANTS)
                + f" | {_ratio_cell(r, 'vs_torch', 'x')} | {_ratio_cell(r, 'vs_floor')}"
                + f" | {_faults_cell(r, VARIANTS)} |")
        if use_gpu:
            line += (" " + " | ".join(speed_cell(r, v, use_gpu) for v in ("scratchgan-graph", "torch-graph"))
                     + f" | {_ratio_cell(r, 'graph_vs_torch_graph', 'x')} | {_ratio_cell(r, 'graph_vs_eager', 'x')} |")
        if not args.no_memory:
            rss = [r.get(f"rss_{v}") for v in VARIANTS]
            line += " " + " / ".join("-" if x is None else f"{x:.0f}" for x in rss) + " |"
        print(line)
    status = report_problems(results, not_run)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": args.backend, "torch": torch_version, "numpy": np.__version__,
                       "thread_settings": thread_settings(), "heap": heap, "not_run": not_run, "rows": results},
                      f, indent=1)
    return status


if __name__ == "__main__":
    sys.exit(main())
