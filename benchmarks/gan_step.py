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
* on CuPy also ``scratchgan-graph`` (the step captured as a CUDA graph with
  :func:`scratchgan.accel.cuda_graph.capture`) and ``torch-graph`` (PyTorch's
  CUDA-graph replay with capturable Adam and static inputs); the PyTorch
  variants then run on CUDA and are reported "not run: no CUDA" where PyTorch
  is missing or sees no GPU.

On the CPU the variants share this process (as the tables in
docs/performance.md were measured); on CuPy each runs in a worker process of
its own (the parent asks it for "n steps" and reads the time back), so that a
variant that fails, a refused capture say, is reported as failed in the table
while the others go on, and the two libraries' memory pools and streams do not
meet in one process. The GPU is synchronised before each clock reading.

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
    python benchmarks/gan_step.py --backend cupy --check-only   # only the float64 update check

A variant that fails is shown as ``failed`` in the table, with its error on a
``failed:`` line below it, and the script then exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import select
import statistics
import subprocess
import sys
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import scratchgan as sg  # noqa: E402
from handwritten import D_SIZES, G_SIZES, PHASES, HandwrittenGAN, init_params, no_mark  # noqa: E402
from scratchgan import backend, nn, optim
from scratchgan.accel import cuda_graph
from scratchgan.gan import losses  # noqa: E402

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


class ScratchganGraphed:
    """A scratchgan step captured once as a CUDA graph (:func:`scratchgan.accel.cuda_graph.capture`) and replayed.

    As the capture's docstring asks: the inputs live in persistent buffers
    (``sg.zeros`` tensors) that each call writes the new batch into, device to
    device; the first call runs ``warmup`` eager steps, records one step and
    replays it; every later call is one replay.

    Parameters
    ----------
    model : object
        Has ``step(*arrays)``, the eager step (``ScratchganGAN``, ``ScratchganDCGAN``).
    shapes : list of tuple
        The shapes of the step's float32 inputs, in order.
    """

    def __init__(self, model, shapes, warmup=3):
        self.model = model
        self.buffers = [sg.zeros(shape) for shape in shapes]
        self.warmup = warmup
        self.captured = None

    def step(self, *inputs, mark=no_mark):
        for buf, value in zip(self.buffers, inputs):
            buf.data[...] = value
        if self.captured is None:  # the warm-up steps and the capture are the first call's
            arrays = [b.data for b in self.buffers]
            self.captured = cuda_graph.capture(lambda: self.model.step(*arrays), warmup=self.warmup)
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


class TorchGraphed:
    """A PyTorch step replayed as a CUDA graph, by PyTorch's own recipe ("whole-network capture").

    The model's two Adams are replaced by capturable ones
    (``torch.optim.Adam(..., capturable=True)``: step counts and bias
    corrections stay on the GPU); each call copies its inputs into static
    tensors; the first call runs ``warmup`` steps on a side stream, records one
    step with ``torch.cuda.graph`` and replays it; every later call is one
    replay.

    Parameters
    ----------
    model : object
        A PyTorch step on CUDA with ``torch``, ``G``, ``D``, ``opt_g``, ``opt_d``
        and ``step(*tensors)`` (``TorchGAN``, ``TorchDCGAN``).
    shapes : list of tuple
        The shapes of the step's float32 inputs, in order.
    """

    def __init__(self, model, shapes, lr=LR, warmup=3):
        torch = self.torch = model.torch
        model.opt_g = torch.optim.Adam(model.G.parameters(), lr=lr, betas=BETAS, capturable=True)
        model.opt_d = torch.optim.Adam(model.D.parameters(), lr=lr, betas=BETAS, capturable=True)
        self.model = model
        self.static = [torch.empty(shape, device="cuda") for shape in shapes]
        self.warmup = warmup
        self.graph = None

    def step(self, *inputs, mark=no_mark):
        for buf, value in zip(self.static, inputs):
            buf.copy_(value)
        if self.graph is None:
            self._capture()
        self.graph.replay()

    def _capture(self):
        torch = self.torch
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # the warm-up builds Adam's state and cuBLAS's workspace off the capture
            for _ in range(self.warmup):
                self.model.step(*self.static)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.model.step(*self.static)


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
    after :func:`scratchgan.app.process.keep_heap_warm`, which the command calls
    and the library never does on import.
    """
    if warm:
        os.environ[WARM_HEAP_ENV] = "1"
    if os.environ.get(WARM_HEAP_ENV) != "1":
        return "heap: glibc defaults (as a script using the public API)"
    from scratchgan.app.process import keep_heap_warm  # noqa: PLC0415

    applied = keep_heap_warm()
    return "heap: warm (scratchgan.app.process.keep_heap_warm, as the scratchgan command)" if applied else \
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
    shapes = [(batch, G_SIZES[-1]), (batch, G_SIZES[0]), (batch, G_SIZES[0])]
    if name == "scratchgan-graph":
        model = ScratchganGraphed(ScratchganGAN(g_params, d_params), shapes)
        return model, Inputs(batch, backend.xp, backend.xp.asarray), backend.synchronize
    if name in ("torch", "torch-graph"):
        import torch  # noqa: PLC0415

        device = "cuda" if use_gpu else "cpu"
        model = TorchGAN(g_params, d_params, device=device)
        if name == "torch-graph":
            model = TorchGraphed(model, shapes)
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


# --------------------------------------------------------------------------- variants that may fail


class VariantFailed(Exception):
    """A variant could not build or time its step; the message is its error (its traceback is on stderr)."""


def _error_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")


class InProcessTimer:
    """One variant built and timed in this process (the CPU default, as docs/performance.md was measured)."""

    def __init__(self, variant, make_variant, use_gpu):
        self.variant, self.make_variant, self.use_gpu = variant, make_variant, use_gpu
        self.made = None
        self.threads = ""

    def prepare(self, batch):
        """Build the variant at this batch size; a failure is raised by :meth:`wait_prepared`."""
        self.made, self.failure = None, None  # the previous batch's model goes first
        try:
            self.made = self.make_variant(self.variant, batch, self.use_gpu)
        except Exception as exc:  # noqa: BLE001 - any failure of a variant is a result to report
            traceback.print_exc()
            self.failure = VariantFailed(_error_line(exc))

    def wait_prepared(self):
        if self.failure is not None:
            raise self.failure

    def time(self, steps, warmup) -> tuple[float, float]:
        """Steps per second and page faults per step of one repetition."""
        faults = []
        try:
            rate = _time_steps(*self.made, steps=steps, warmup=warmup, faults=faults)
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            self.made = None
            raise VariantFailed(_error_line(exc)) from exc
        return rate, faults[0]

    def close(self):
        self.made = None


class _LineReader:
    """Lines from a pipe, each read with a time limit (``select``), so that a hung worker cannot hang the parent."""

    def __init__(self, fd):
        self.fd, self.buffer = fd, b""

    def readline(self, timeout) -> str | None:
        """The next line; ``""`` at end of input; None when none came within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not select.select([self.fd], [], [], left)[0]:
                continue
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                line, self.buffer = self.buffer, b""
                return line.decode()
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode() + "\n"


class WorkerTimer:
    """One variant in a worker process of its own (:func:`serve`), built and timed when the parent asks.

    The worker's stderr is the parent's, so its tracebacks show in the
    parent's output. A worker that reports an error, stops, or does not answer
    within ``timeout`` seconds raises :class:`VariantFailed`; the next
    :meth:`prepare` starts a fresh worker. With ``fresh_per_batch`` every
    batch size gets a fresh worker (a heap of its own, as on the CPU); else one
    worker serves them all (on a GPU: its context and compiled kernels stay).
    """

    def __init__(self, script, variant, backend_name, timeout=300.0, fresh_per_batch=False):
        self.script, self.variant, self.backend_name, self.timeout = script, variant, backend_name, timeout
        self.fresh_per_batch = fresh_per_batch
        self.proc = None
        self.threads = ""

    def _start(self):
        cmd = [sys.executable, self.script, "--serve", self.variant, "--backend", self.backend_name]
        # the environment carries --warm-heap (heap_setting) and PYTHONPATH
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lines = _LineReader(self.proc.stdout.fileno())

    def _send(self, request):
        if self.proc is None:
            self._start()
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker is gone; the answer's end of input says so

    def _answer(self) -> dict:
        while True:
            line = self.lines.readline(self.timeout)
            if line is None:
                self._stop()
                raise VariantFailed(f"the {self.variant} worker gave no answer within {self.timeout:g} s (stopped)")
            try:
                answer = json.loads(line) if line.strip() else None
            except ValueError:  # something the worker printed before it took stdout over: pass it on
                sys.stderr.write(line)
                continue
            break
        if not isinstance(answer, dict) or "error" in answer:
            status = self._stop()
            raise VariantFailed(answer["error"] if answer else
                                f"the {self.variant} worker stopped (exit status {status}); its error is above")
        return answer

    def prepare(self, batch):
        """Ask the worker to build the variant at this batch size (the answer is read by :meth:`wait_prepared`)."""
        if self.fresh_per_batch:
            self._stop()
        self._send({"build": batch})

    def wait_prepared(self):
        self.threads = self._answer().get("threads", "")

    def time(self, steps, warmup) -> tuple[float, float]:
        """Steps per second and page faults per step of one repetition."""
        self._send({"steps": steps, "warmup": warmup})
        answer = self._answer()
        return answer["rate"], answer["faults"]

    def _stop(self):
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def close(self):
        self._stop()


def serve(make_variant, variant, use_gpu, describe=lambda: "") -> int:
    """A timing worker: one variant in its own process, doing what the parent writes on stdin, one line each.

    ``{"build": batch}`` builds the variant at that batch size (the previous
    one is dropped first) and is answered ``{"built": batch, "threads": ...}``;
    ``{"steps": s, "warmup": w}`` times a repetition and is answered
    ``{"rate": steps/s, "faults": page faults per step}``. On an error the
    answer is ``{"error": "Type: message"}`` (the traceback goes to stderr) and
    the worker exits with status 1; end of input ends it with status 0.
    Anything else that writes to stdout (a library's print) is sent to stderr,
    so that the answers stay readable.
    """
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    made = None
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if "build" in request:
                made = None
                made = make_variant(variant, request["build"], use_gpu)
                answer = {"built": request["build"], "threads": describe()}
            else:
                faults = []
                rate = _time_steps(*made, steps=request["steps"], warmup=request["warmup"], faults=faults)
                answer = {"rate": rate, "faults": faults[0]}
        except Exception as exc:  # noqa: BLE001 - the parent reports it; this process may be in a bad state
            traceback.print_exc()
            answers.write(json.dumps({"error": _error_line(exc)}) + "\n")
            return 1
        answers.write(json.dumps(answer) + "\n")
    return 0


def time_interleaved(timers, batch, repeats, seconds, calibrate=(10, 5), min_steps=5, pause=0.2) -> tuple:
    """Time the variants at one batch size, interleaved, each repetition in a rotated order.

    Every timer builds its variant first; the steps per repetition are
    calibrated on the slowest variant (``calibrate`` = (steps, warm-up steps)),
    so that a repetition lasts about ``seconds``; each repetition is preceded
    by ``pause`` seconds of rest and a few untimed steps. A variant that fails
    is dropped from the rest of the batch size, with its samples.

    Returns
    -------
    samples, faults : dict
        Variant -> steps per second / page faults per step, one per repetition.
    failed : dict
        Variant -> its error message.
    steps : int
        Timed steps per repetition.
    """
    variants, failed = list(timers), {}

    def attempt(v, action):
        try:
            return action()
        except VariantFailed as exc:
            failed[v] = str(exc)
            print(f"{v} at B = {batch} failed: {exc}", file=sys.stderr, flush=True)
            return None

    for v in variants:
        timers[v].prepare(batch)
    for v in variants:  # the workers build in parallel
        attempt(v, timers[v].wait_prepared)
    rates = {}
    for v in variants:
        if v not in failed:
            answer = attempt(v, lambda v=v: timers[v].time(steps=calibrate[0], warmup=calibrate[1]))
            if answer is not None:
                rates[v] = answer[0]
    steps = max(min_steps, int(seconds * min(rates.values()))) if rates else 0
    samples = {v: [] for v in variants}
    faults = {v: [] for v in variants}
    for rep in range(repeats if rates else 0):
        # rotate the order, so that no variant always runs right after the same other one
        # (PyTorch's OpenMP workers keep spinning for a while after its step returns)
        for v in variants[rep % len(variants):] + variants[:rep % len(variants)]:
            if v in failed:
                continue
            time.sleep(pause)
            # a few untimed steps first: after the pause, caches and clocks are cold for everyone
            answer = attempt(v, lambda v=v: timers[v].time(steps=steps, warmup=max(2, steps // 5)))
            if answer is not None:
                samples[v].append(answer[0])
                faults[v].append(answer[1])
    for v in failed:
        samples.pop(v), faults.pop(v)
    return samples, faults, failed, steps


def summarise(row, samples, faults, pairs) -> dict:
    """Fill ``row`` with each variant's median and each pair's per-repetition ratio (median, quartiles)."""
    for v in samples:
        row[v] = statistics.median(samples[v])
        row[f"faults_{v}"] = statistics.median(faults[v])
    for key, a, b in pairs:
        if a in samples and b in samples:
            ratios = [x / y for x, y in zip(samples[a], samples[b])]
            row[key] = statistics.median(ratios)
            row[f"{key}_quartiles"] = _quartiles(ratios)
    return row


def torch_status(use_gpu) -> tuple[str | None, str | None]:
    """PyTorch's version (None when missing) and why its variants cannot run here (None when they can)."""
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return None, "no CUDA (PyTorch is not installed)" if use_gpu else "PyTorch is not installed (pip install torch)"
    if use_gpu and not torch.cuda.is_available():
        return torch.__version__, f"no CUDA (torch {torch.__version__} sees no CUDA device)"
    return torch.__version__, None


def speed_cell(row, variant, per_ms, failed_word="failed", digits=2) -> str:
    """A variant's median speed (ms per step when ``per_ms``, else steps/s), or why there is none."""
    if variant in row:
        return f"{1e3 / row[variant] if per_ms else row[variant]:.{digits}f}"
    if variant in row.get("failed", {}):
        return failed_word
    return "not run" if variant in row.get("not_run", {}) else "nan"


def report_problems(results, not_run) -> int:
    """Print the ``not run:`` and ``failed:`` lines below a table; the exit status (1 when a variant failed)."""
    for variant, why in not_run.items():
        print(f"not run: {variant}: {why}")
    failures = [(r["batch"], v, msg) for r in results for v, msg in r.get("failed", {}).items()]
    for batch, variant, message in failures:
        print(f"failed: {variant} at B = {batch}: {message}")
    return 1 if failures else 0


def time_batches(timers, batch_sizes, args, pairs, not_run, variants, describe=lambda batch, failed: {},
                 peak_rss=None) -> list:
    """One row per batch size (printed as a JSON line): the variants timed interleaved, their ratios, the
    failed and not-run variants, and peak memory unless ``--no-memory``; the timers are closed at the end.

    ``describe(batch, failed)`` adds the script's own fields to a row, ``peak_rss(variant, batch, steps,
    backend)`` measures a variant's memory (default: this script's). Shared by gan_step.py and dcgan_step.py.
    """
    peak_rss = peak_rss or _peak_rss_mb
    results = []
    try:
        for batch in batch_sizes:
            calibration = (args.calibration_steps, (args.calibration_steps + 1) // 2)  # (timed, untimed first)
            samples, faults, failed, steps = time_interleaved(timers, batch, args.repeats, args.seconds, calibration,
                                                              min_steps=args.min_steps, pause=args.pause)
            row = summarise({"batch": batch, "steps_per_rep": steps, **describe(batch, failed)}, samples, faults,
                            pairs)
            if failed:
                row["failed"] = failed
            if not_run:
                row["not_run"] = not_run
            if not args.no_memory:
                for v in variants:
                    row[f"rss_{v}"] = peak_rss(v, batch, args.steps, args.backend)
            results.append(row)
            print(json.dumps(row), flush=True)
    finally:
        for timer in timers.values():
            timer.close()
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--repeats", type=int, default=7, help="timed repetitions per variant (median reported)")
    parser.add_argument("--seconds", type=float, default=0.6, help="approximate length of one repetition")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds of rest before each repetition")
    parser.add_argument("--calibration-steps", type=int, default=10,
                        help="timed steps (after half as many untimed) that size a repetition")
    parser.add_argument("--min-steps", type=int, default=5, help="the fewest timed steps in a repetition")
    parser.add_argument("--steps", type=int, default=30, help="steps for the peak-memory workers")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    parser.add_argument("--no-check", action="store_true", help="skip the float64 update check")
    parser.add_argument("--check-only", action="store_true", help="run the float64 update check and stop")
    parser.add_argument("--worker-timeout", type=float, default=300.0,
                        help="seconds a timing worker (CuPy) may take to answer before its variant counts as failed")
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
        return serve(_make_variant, args.serve, use_gpu)
    batch_sizes = args.batch_sizes or ([64, 256, 1024, 4096] if use_gpu else [64, 256, 1024])

    variants = ["scratchgan", "handwritten"] + (["scratchgan-graph"] if use_gpu else [])
    torch_variants = ["torch"] + (["torch-graph"] if use_gpu else [])
    torch_version, torch_missing = torch_status(use_gpu)
    not_run = {}
    if torch_missing is None:
        variants += torch_variants
    elif use_gpu:
        not_run = dict.fromkeys(torch_variants, torch_missing)
    else:
        print(f"note: the PyTorch reference is skipped: {torch_missing}")

    if not args.no_check:
        worst = check_same_update()
        print(f"check: scratchgan and hand-written updates agree in float64 (max difference {worst:.2e} x lr)")
    if args.check_only:
        return 0
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}; "
          f"numpy {np.__version__}; torch {torch_version}; backend {args.backend}; {thread_settings()}; {heap}",
          flush=True)

    # on the GPU each variant in a process of its own: a failed capture cannot take the others with it
    timers = {v: WorkerTimer(os.path.abspath(__file__), v, args.backend, args.worker_timeout) if use_gpu
              else InProcessTimer(v, _make_variant, use_gpu) for v in variants}
    pairs = [("vs_torch", "scratchgan", "torch"), ("vs_handwritten", "scratchgan", "handwritten"),
             ("graph_vs_torch_graph", "scratchgan-graph", "torch-graph"),
             ("graph_vs_eager", "scratchgan-graph", "scratchgan")]
    results = time_batches(timers, batch_sizes, args, pairs, not_run, variants)

    print()
    if use_gpu:  # milliseconds per step, as GPU figures are usually given, and the captured variants
        header = ("| B | scratchgan ms | handwritten ms | torch ms | scratchgan-graph ms | torch-graph ms "
                  "| vs torch (quartiles) | graph vs torch-graph (quartiles) | graph vs eager (quartiles) |")
        print(header)
        print("|" + "---|" * (header.count("|") - 1))
        for r in results:
            ms = [speed_cell(r, v, per_ms=True)
                  for v in ("scratchgan", "handwritten", "torch", "scratchgan-graph", "torch-graph")]
            print(f"| {r['batch']} | " + " | ".join(ms)
                  + f" | {_ratio_cell(r, 'vs_torch', 'x')} | {_ratio_cell(r, 'graph_vs_torch_graph', 'x')}"
                  + f" | {_ratio_cell(r, 'graph_vs_eager', 'x')} |")
    else:
        header = ("| B | scratchgan steps/s | handwritten steps/s | torch steps/s | vs torch (quartiles) "
                  "| vs handwritten (quartiles) | page faults/step (sg / hand / torch) |")
        if not args.no_memory:
            header += " peak RSS MB (sg / hand / torch) |"
        print(header)
        print("|" + "---|" * (header.count("|") - 1))
        for r in results:
            cells = [speed_cell(r, v, per_ms=False, digits=1) for v in ("scratchgan", "handwritten", "torch")]
            line = (f"| {r['batch']} | " + " | ".join(cells) + f" | {_ratio_cell(r, 'vs_torch', 'x')} | "
                    f"{_ratio_cell(r, 'vs_handwritten')} | {_faults_cell(r, ('scratchgan', 'handwritten', 'torch'))} |")
            if not args.no_memory:
                rss = [r.get(f"rss_{v}") for v in ("scratchgan", "handwritten", "torch")]
                line += " " + " / ".join("-" if x is None else f"{x:.0f}" for x in rss) + " |"
            print(line)
    status = report_problems(results, not_run)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": args.backend, "torch": torch_version, "numpy": np.__version__,
                       "threads": thread_settings(), "heap": heap, "not_run": not_run, "rows": results}, f, indent=1)
    return status


if __name__ == "__main__":
    sys.exit(main())
