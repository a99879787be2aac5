"""Time the reference GAN training step: scratchgan vs PyTorch vs hand-written.

The reference step (docs/performance.md): G 100-256-256-256-784 (ReLU, tanh),
D 784-256-256-256-1 (ReLU, logit), float32, non-saturating loss on logits,
Adam(2e-4, (0.5, 0.999)) for both; one D update on a real batch and a detached
fake batch, then one G update on fresh noise.

Variants, interleaved in one run (A, B, C, A, B, C, ...) so that the machine's
noise hits them alike:

* ``scratchgan``: the library through its public API only, written as a user
  would write the step (``sg.as_tensor`` on the input arrays, ``nn``,
  ``losses``, ``optim.Adam``, ``sg.grad``);
* ``torch``: the same model in PyTorch eager (skipped when torch is missing);
* ``handwritten``: the same step by hand without autograd (the floor);
* on CuPy also ``scratchgan-graph`` (the step captured as a CUDA graph) and
  ``torch-graph`` (PyTorch's CUDA-graph replay).

What a run measures: for each batch size, training steps per second of each
variant (milliseconds per step on CuPy), the median over ``--repeats``
repetitions of about ``--seconds`` each, every repetition after a few untimed
steps, the variants' order rotated between repetitions; the ratios scratchgan
/ torch and scratchgan / hand-written per repetition, their median and
quartiles; minor page faults per step; and, unless ``--no-memory``, each
variant's peak resident memory in a fresh process.

No process-wide tuning is applied: the script leaves glibc's malloc, the
BLAS/OpenMP thread counts and everything else about the process as a user's
program gets them. A run made with thread variables set in the environment
(e.g. ``OPENBLAS_NUM_THREADS=1``) says so in its header line.

Before timing, it checks in float64 that scratchgan and the hand-written step
compute the same update from the same weights and inputs.

Usage::

    python benchmarks/gan_step.py                       # NumPy, B = 64 256 1024
    python benchmarks/gan_step.py --backend cupy        # GPU, B = 64 256 1024 4096
    python benchmarks/gan_step.py --batch-sizes 64 --repeats 2 --no-memory   # a quick look, not a measurement
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import scratchgan as sg  # noqa: E402
from handwritten import D_SIZES, G_SIZES, PHASES, HandwrittenGAN, init_params, no_mark  # noqa: E402
from scratchgan import backend, cuda_graph, losses, nn, optim  # noqa: E402

LR, BETAS = 2e-4, (0.5, 0.999)


# --------------------------------------------------------------------------- the variants


def _load_linear_stack(module, params):
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    for layer, (w, b) in zip(linears, zip(params[0::2], params[1::2])):
        layer.weight.data[...] = backend.asarray(w)
        layer.bias.data[...] = backend.asarray(b)


class ScratchganGAN:
    """The reference step with scratchgan, as a user writes it (public API only)."""

    def __init__(self, g_params, d_params, dtype="float32", g_sizes=G_SIZES, d_sizes=D_SIZES):
        def mlp(sizes, out):
            layers = []
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
                layers.append(nn.Linear(a, b, dtype=dtype))
                layers.append(nn.ReLU() if i < len(sizes) - 2 else out)
            return nn.Sequential(*[m for m in layers if m is not None])

        self.G = mlp(g_sizes, nn.Tanh())
        self.D = mlp(d_sizes, None)
        _load_linear_stack(self.G, g_params)
        _load_linear_stack(self.D, d_params)
        self.opt_g = optim.Adam(self.G.parameters(), lr=LR, betas=BETAS)
        self.opt_d = optim.Adam(self.D.parameters(), lr=LR, betas=BETAS)

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
        g_params = list(self.G.parameters())
        # only G's gradients are needed: grad() walks the part of the graph that leads to them
        for p, g in zip(g_params, sg.grad(loss_g, g_params)):
            p.grad = g
        mark(PHASES[5])
        self.opt_g.step()
        mark(PHASES[6])

    def parameters(self):
        return [p.data for p in self.G.parameters()] + [p.data for p in self.D.parameters()]


class ScratchganGraphGAN:
    """The scratchgan step captured once as a CUDA graph (CuPy), fed through fixed input buffers."""

    def __init__(self, g_params, d_params, batch):
        self.model = ScratchganGAN(g_params, d_params)
        self.buffers = [sg.zeros((batch, 784)), sg.zeros((batch, 100)), sg.zeros((batch, 100))]
        self.captured = None

    def step(self, real, z_d, z_g):
        for buf, value in zip(self.buffers, (real, z_d, z_g)):
            buf.data[...] = value
        if self.captured is None:  # the warmup steps and the captured one are the first steps
            arrays = [b.data for b in self.buffers]
            self.captured = cuda_graph.capture(lambda: self.model.step(*arrays), warmup=3)
        else:
            self.captured()

    def parameters(self):
        return self.model.parameters()


class TorchGAN:
    """The reference step in PyTorch eager."""

    def __init__(self, g_params, d_params, device="cpu", dtype="float32"):
        import torch  # noqa: PLC0415

        self.torch = torch
        tdtype = getattr(torch, dtype)

        def mlp(params, tanh):
            layers = []
            n = len(params) // 2
            for i in range(n):
                w, b = params[2 * i], params[2 * i + 1]
                lin = torch.nn.Linear(*w.shape).to(device=device, dtype=tdtype)
                with torch.no_grad():
                    lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
                    lin.bias.copy_(torch.from_numpy(b))
                layers.append(lin)
                if i < n - 1:
                    layers.append(torch.nn.ReLU())
                elif tanh:
                    layers.append(torch.nn.Tanh())
            return torch.nn.Sequential(*layers)

        self.G = mlp(g_params, True)
        self.D = mlp(d_params, False)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=LR, betas=BETAS)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=LR, betas=BETAS)
        self.bce = torch.nn.BCEWithLogitsLoss()
        self.device = device

    def step(self, real, z_d, z_g):
        torch = self.torch
        with torch.no_grad():
            fake = self.G(z_d)
        self.opt_d.zero_grad(set_to_none=True)
        lr_, lf = self.D(real), self.D(fake)
        loss_d = self.bce(lr_, torch.ones_like(lr_)) + self.bce(lf, torch.zeros_like(lf))
        loss_d.backward()
        self.opt_d.step()
        self.opt_g.zero_grad(set_to_none=True)
        lg = self.D(self.G(z_g))
        self.bce(lg, torch.ones_like(lg)).backward()
        self.opt_g.step()

    def parameters(self):
        return [p.detach().cpu().numpy().T if p.ndim == 2 else p.detach().cpu().numpy()
                for p in list(self.G.parameters()) + list(self.D.parameters())]


class TorchGraphGAN(TorchGAN):
    """PyTorch's CUDA-graph replay of the same step (capturable Adam, static inputs), as its docs show."""

    def __init__(self, g_params, d_params, batch):
        super().__init__(g_params, d_params, device="cuda")
        torch = self.torch
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=LR, betas=BETAS, capturable=True)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=LR, betas=BETAS, capturable=True)
        self.static = [torch.zeros((batch, 784), device="cuda"), torch.zeros((batch, 100), device="cuda"),
                       torch.zeros((batch, 100), device="cuda")]
        self.graph = None

    def step(self, real, z_d, z_g):
        torch = self.torch
        for buf, value in zip(self.static, (real, z_d, z_g)):
            buf.copy_(value)
        if self.graph is None:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    TorchGAN.step(self, *self.static)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                TorchGAN.step(self, *self.static)
        self.graph.replay()


# --------------------------------------------------------------------------- the environment

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def thread_settings() -> str:
    """How many BLAS/OpenMP threads the run was given, as the results should report it.

    The benchmarks set nothing themselves; this only says whether the caller did.
    """
    given = [f"{name}={os.environ[name]}" for name in THREAD_VARIABLES if name in os.environ]
    if not given:
        return "threads: library defaults"
    single = all(os.environ[name].strip() == "1" for name in THREAD_VARIABLES if name in os.environ)
    return "threads: " + " ".join(given) + (" (single-threaded run)" if single else "")


WARM_HEAP_ENV = "SCRATCHGAN_BENCH_WARM_HEAP"  # inherited by the memory workers


def heap_setting(warm: bool = False) -> str:
    """Apply ``--warm-heap`` (in this process and, through the environment, in its workers) and describe it.

    By default nothing is tuned: every variant runs as a script that uses the
    public API runs. With ``--warm-heap`` the whole process (every variant,
    PyTorch's too) runs as the ``scratchgan`` command runs its training:
    after :func:`scratchgan.process.keep_heap_warm`, which the command calls
    and the library never does on import.
    """
    if warm:
        os.environ[WARM_HEAP_ENV] = "1"
    if os.environ.get(WARM_HEAP_ENV) != "1":
        return "heap: glibc defaults (as a script using the public API)"
    from scratchgan.process import keep_heap_warm  # noqa: PLC0415

    applied = keep_heap_warm()
    return "heap: warm (scratchgan.process.keep_heap_warm, as the scratchgan command)" if applied else \
        "heap: --warm-heap asked, but this is not glibc (nothing changed)"


# --------------------------------------------------------------------------- inputs


class Inputs:
    """A pool of 'real' images and noise drawn in float32 on the active device."""

    def __init__(self, batch, xp, module_for, seed=0):
        rng = np.random.default_rng(seed)
        self.real = [module_for(rng.uniform(-1, 1, (batch, 784)).astype(np.float32)) for _ in range(4)]
        self.noise = [module_for(rng.standard_normal((batch, 100), dtype=np.float32)) for _ in range(8)]
        self.i = 0

    def next(self):
        i = self.i = self.i + 1
        return self.real[i % 4], self.noise[(2 * i) % 8], self.noise[(2 * i + 1) % 8]


def _make_variant(name, batch, use_gpu, seed=0):
    rng = np.random.default_rng(seed)
    g_params = init_params(G_SIZES, rng)
    d_params = init_params(D_SIZES, rng)
    if name == "handwritten":
        xp = backend.xp
        model = HandwrittenGAN(g_params, d_params, xp=xp, lr=LR, betas=BETAS)
        return model, Inputs(batch, xp, xp.asarray), backend.synchronize
    if name == "scratchgan":
        model = ScratchganGAN(g_params, d_params)
        return model, Inputs(batch, backend.xp, backend.xp.asarray), backend.synchronize
    if name == "scratchgan-graph":
        model = ScratchganGraphGAN(g_params, d_params, batch)
        return model, Inputs(batch, backend.xp, backend.xp.asarray), backend.synchronize
    if name in ("torch", "torch-graph"):
        import torch  # noqa: PLC0415

        device = "cuda" if use_gpu else "cpu"
        model = TorchGAN(g_params, d_params, device=device) if name == "torch" else TorchGraphGAN(g_params, d_params,
                                                                                                  batch)
        sync = torch.cuda.synchronize if use_gpu else (lambda: None)
        return model, Inputs(batch, None, lambda a: torch.from_numpy(a).to(device)), sync
    raise ValueError(name)


# --------------------------------------------------------------------------- correctness


def check_same_update(seed=0, batch=32) -> float:
    """One step of scratchgan and of the hand-written code from the same state, in float64."""
    rng = np.random.default_rng(seed)
    g_params = init_params(G_SIZES, rng, np.float64)
    d_params = init_params(D_SIZES, rng, np.float64)
    real = rng.uniform(-1, 1, (batch, 784))
    z_d, z_g = rng.standard_normal((batch, 100)), rng.standard_normal((batch, 100))
    xp = backend.xp
    hand = HandwrittenGAN(g_params, d_params, xp=xp, lr=LR, betas=BETAS)
    ours = ScratchganGAN(g_params, d_params, dtype="float64")
    for _ in range(2):
        hand.step(xp.asarray(real), xp.asarray(z_d), xp.asarray(z_g))
        ours.step(xp.asarray(real), xp.asarray(z_d), xp.asarray(z_g))
    worst = 0.0
    before = g_params + d_params
    for p0, a, b in zip(before, hand.parameters(), ours.parameters()):
        da, db = backend.to_numpy(a) - p0, backend.to_numpy(b) - p0
        worst = max(worst, float(np.max(np.abs(da - db))) / LR)
    if not worst < 1e-6:
        raise SystemExit(f"scratchgan and the hand-written step disagree: max |update difference| = {worst:.3g} lr")
    return worst


# --------------------------------------------------------------------------- timing


def _time_steps(model, inputs, sync, steps, warmup=0, faults=None) -> float:
    """Steps per second over ``steps`` steps; appends page faults per step to ``faults``."""
    for _ in range(warmup):
        model.step(*inputs.next())
    sync()
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    for _ in range(steps):
        model.step(*inputs.next())
    sync()
    rate = steps / (time.perf_counter() - start)
    if faults is not None:
        faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before) / steps)
    return rate


def _quartiles(values) -> tuple[float, float]:
    """First and third quartiles (the median's own value when there are too few samples)."""
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def _ratio_cell(row, key, suffix="") -> str:
    """``median (q1-q3)`` of a per-repetition ratio, or nan when it was not measured."""
    if key not in row:
        return "nan"
    q1, q3 = row[f"{key}_quartiles"]
    return f"{row[key]:.2f}{suffix} ({q1:.2f}-{q3:.2f})"


def _faults_cell(row, variants) -> str:
    """Median minor page faults per step of each variant, ``a / b / c`` (``-`` where not measured)."""
    return " / ".join(f"{row[f'faults_{v}']:.0f}" if f"faults_{v}" in row else "-" for v in variants)


def _peak_rss_mb(variant, batch, steps, backend_name) -> float | None:
    """Peak resident memory of a fresh process that runs ``steps`` steps of one variant."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", variant, "--batch-sizes", str(batch),
           "--steps", str(steps), "--backend", backend_name]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def _peak_rss_kb() -> int:
    """This process's peak resident set size.

    VmHWM belongs to the process image; ru_maxrss would not do: on Linux a
    child inherits its parent's peak across fork and exec.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _worker(variant, batch, steps, use_gpu):
    model, inputs, sync = _make_variant(variant, batch, use_gpu)
    _time_steps(model, inputs, sync, steps)
    print(json.dumps({"peak_rss_mb": _peak_rss_kb() / 1024}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--repeats", type=int, default=7, help="timed repetitions per variant (median reported)")
    parser.add_argument("--seconds", type=float, default=0.6, help="approximate length of one repetition")
    parser.add_argument("--steps", type=int, default=30, help="steps for the peak-memory workers")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--warm-heap", action="store_true",
                        help="run every variant as the scratchgan command runs (scratchgan.process.keep_heap_warm)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    heap = heap_setting(args.warm_heap)

    sg.set_backend(args.backend)
    use_gpu = args.backend == "cupy"
    if args.worker:
        return _worker(args.worker, args.batch_sizes[0], args.steps, use_gpu)
    batch_sizes = args.batch_sizes or ([64, 256, 1024, 4096] if use_gpu else [64, 256, 1024])

    variants = ["scratchgan", "handwritten"] + (["scratchgan-graph"] if use_gpu else [])
    try:
        import torch  # noqa: PLC0415

        variants.append("torch")
        if use_gpu:
            variants.append("torch-graph")
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
        print("note: torch is not installed; the PyTorch reference is skipped (pip install torch)")

    worst = check_same_update()
    print(f"check: scratchgan and hand-written updates agree in float64 (max difference {worst:.2e} x lr)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}; "
          f"numpy {np.__version__}; torch {torch_version}; backend {args.backend}; {thread_settings()}; {heap}")

    results = []
    for batch in batch_sizes:
        models = {v: _make_variant(v, batch, use_gpu) for v in variants}
        # calibrate the number of steps per repetition on the slowest variant, after warm-up
        rates = {v: _time_steps(*models[v], steps=10, warmup=5) for v in variants}
        steps = max(5, int(args.seconds * min(rates.values())))
        samples = {v: [] for v in variants}
        faults = {v: [] for v in variants}
        for rep in range(args.repeats):
            # rotate the order, so that no variant always runs right after the same other one
            # (PyTorch's OpenMP workers keep spinning for a while after its step returns)
            for v in variants[rep % len(variants):] + variants[:rep % len(variants)]:
                time.sleep(0.2)
                # a few untimed steps first: after the pause, caches and clocks are cold for everyone
                samples[v].append(_time_steps(*models[v], steps=steps, warmup=max(2, steps // 5), faults=faults[v]))
        row = {"batch": batch, "steps_per_rep": steps}
        for v in variants:
            row[v] = statistics.median(samples[v])
            row[f"faults_{v}"] = statistics.median(faults[v])
        # ratios per interleaved pair, then their median and quartiles (the spread the noise leaves)
        pairs = [("vs_torch", "scratchgan", "torch"), ("vs_handwritten", "scratchgan", "handwritten"),
                 ("graph_vs_torch_graph", "scratchgan-graph", "torch-graph")]
        for key, a, b in pairs:
            if a in variants and b in variants:
                ratios = [x / y for x, y in zip(samples[a], samples[b])]
                row[key] = statistics.median(ratios)
                row[f"{key}_quartiles"] = _quartiles(ratios)
        if not args.no_memory:
            for v in variants:
                row[f"rss_{v}"] = _peak_rss_mb(v, batch, args.steps, args.backend)
        results.append(row)
        print(json.dumps(row), flush=True)

    print()
    if use_gpu:  # milliseconds per step, as GPU figures are usually given, and the captured variants
        header = ("| B | scratchgan ms | handwritten ms | torch ms | scratchgan-graph ms | torch-graph ms "
                  "| vs torch (quartiles) | graph vs torch-graph (quartiles) |")
        print(header)
        print("|" + "---|" * (header.count("|") - 1))
        for r in results:
            ms = [1e3 / r[v] if v in r else float("nan")
                  for v in ("scratchgan", "handwritten", "torch", "scratchgan-graph", "torch-graph")]
            print(f"| {r['batch']} | " + " | ".join(f"{x:.2f}" for x in ms)
                  + f" | {_ratio_cell(r, 'vs_torch', 'x')} | {_ratio_cell(r, 'graph_vs_torch_graph', 'x')} |")
    else:
        header = ("| B | scratchgan steps/s | handwritten steps/s | torch steps/s | vs torch (quartiles) "
                  "| vs handwritten (quartiles) | page faults/step (sg / hand / torch) |")
        if not args.no_memory:
            header += " peak RSS MB (sg / hand / torch) |"
        print(header)
        print("|" + "---|" * (header.count("|") - 1))
        for r in results:
            line = (f"| {r['batch']} | {r['scratchgan']:.1f} | {r['handwritten']:.1f} | "
                    f"{r.get('torch', float('nan')):.1f} | {_ratio_cell(r, 'vs_torch', 'x')} | "
                    f"{_ratio_cell(r, 'vs_handwritten')} | {_faults_cell(r, ('scratchgan', 'handwritten', 'torch'))} |")
            if not args.no_memory:
                rss = [r.get(f"rss_{v}") for v in ("scratchgan", "handwritten", "torch")]
                line += " " + " / ".join("-" if x is None else f"{x:.0f}" for x in rss) + " |"
            print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": args.backend, "torch": torch_version, "numpy": np.__version__,
                       "threads": thread_settings(), "heap": heap, "rows": results}, f, indent=1)


if __name__ == "__main__":
    main()
