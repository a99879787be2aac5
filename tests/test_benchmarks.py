"""The speed benchmark's correctness side: scratchgan's reference step against the hand-written one.

``benchmarks/gan_step.py`` times scratchgan against a hand-written NumPy step
(the floor). These tests check that the two compute the same thing, so that the
benchmark compares equal work: the gradients directly (Adam's update is nearly
blind to a gradient's scale, so comparing updates alone would miss a wrong 1/N),
the benchmark's own update check, and a short run of the script itself; and
that the benchmark scripts use scratchgan as a user can, through public names only.
"""

from __future__ import annotations

import ast
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import scratchgan as sg
from scratchgan.gan import losses

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
    # a separate process: the script as a user runs it, from the command line
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
    assert row["faults_scratchgan"] >= 0 and "page faults/step" in printed
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


# --------------------------------------------------------------------------- public API only

BENCHMARKS = os.path.dirname(gan_step.__file__)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _root_name(node):
    """The name an expression like ``a.b(c)[d].e`` starts from, or None."""
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _own_private_names(trees) -> set:
    """The underscore names the benchmark scripts define themselves (functions, classes, globals, ``self._x``)."""
    own = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Store):
                own.add(node.id if isinstance(node, ast.Name) else node.attr)
    return {n for n in own if _private(n)}


def private_scratchgan_uses(source: str, own_private=frozenset()) -> list[str]:
    """Where ``source`` reaches a private scratchgan name, as ``line: text`` entries.

    Flags imports of underscore names from scratchgan or of its underscore
    modules; ``x._y`` (or ``getattr(x, "_y")``) where ``x`` starts from a name
    bound to scratchgan; and ``x._y`` on anything else unless the benchmark
    scripts define ``_y`` themselves (``own_private``): an object a scratchgan
    call returned (a tensor, a module, an optimizer) has no other private names.
    """
    tree = ast.parse(source)
    bound, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "scratchgan":
                    bound.add(alias.asname or "scratchgan")
                    if any(_private(part) for part in alias.name.split(".")):
                        found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "scratchgan":
            if any(_private(part) for part in node.module.split(".")):
                found.append(f"{node.lineno}: from {node.module} import ...")
            for alias in node.names:
                bound.add(alias.asname or alias.name)
                if _private(alias.name):
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            obj, attr = node.value, node.attr
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            obj, attr = node.args[0], node.args[1].value
        else:
            continue
        if _private(attr) and (_root_name(obj) in bound or attr not in own_private):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_private_name_check_sees_what_it_should():
    assert private_scratchgan_uses("import scratchgan as sg\nt = sg.Tensor._wrap(a)\n")
    assert private_scratchgan_uses("from scratchgan import tensor\nt = tensor._to_array(a, None)\n")
    assert private_scratchgan_uses("from scratchgan.autograd.tensor import _to_array\n")
    assert private_scratchgan_uses("from scratchgan._impl import thing\n")
    assert private_scratchgan_uses("import scratchgan._impl\n")
    assert private_scratchgan_uses("import scratchgan as sg\nx = getattr(sg.Tensor, '_wrap')\n")
    assert private_scratchgan_uses("import scratchgan as sg\nt = sg.zeros(2)\nprint(t._parents)\n")
    # a name the benchmark code defines itself is its own business, unless reached through scratchgan
    assert not private_scratchgan_uses("class C:\n    def f(self):\n        self._last = 0\n", {"_last"})
    assert private_scratchgan_uses("import scratchgan as sg\nsg.nn._last\n", {"_last"})
    assert not private_scratchgan_uses("import scratchgan as sg\nt = sg.as_tensor(a)\nsg.__version__\n")


def test_benchmark_scripts_use_only_public_scratchgan_names():
    scripts = sorted(glob.glob(os.path.join(BENCHMARKS, "*.py")))
    assert os.path.join(BENCHMARKS, "gan_step.py") in scripts
    sources = {os.path.basename(p): open(p, encoding="utf-8").read() for p in scripts}
    own = _own_private_names(ast.parse(src) for src in sources.values())
    found = {name: hits for name, src in sources.items() if (hits := private_scratchgan_uses(src, own))}
    assert not found, f"benchmark scripts use private scratchgan names: {found}"


# --------------------------------------------------------------------------- the DCGAN step (dcgan_step.py)

import dcgan_step  # noqa: E402


def test_dcgan_update_check_passes_and_would_see_a_wrong_lr_or_gradient_scale(monkeypatch):
    pytest.importorskip("torch")
    worst = dcgan_step.check_same_update()
    assert worst["grad"] < dcgan_step.GRAD_TOLERANCE and worst["update"] < dcgan_step.UPDATE_TOLERANCE
    assert worst["running"] < dcgan_step.RUNNING_TOLERANCE
    original_init, original_step = dcgan_step.TorchDCGAN.__init__, dcgan_step.TorchDCGAN.step

    # a learning rate 1% off moves the update by ~1e-2 lr
    def lr_off_by_one_percent(self, state, device="cpu", dtype="float32", lr=dcgan_step.LR):
        original_init(self, state, device=device, dtype=dtype, lr=lr * 1.01)

    monkeypatch.setattr(dcgan_step.TorchDCGAN, "__init__", lr_off_by_one_percent)
    with pytest.raises(SystemExit, match="disagree.*update"):
        dcgan_step.check_same_update(steps=1)
    monkeypatch.setattr(dcgan_step.TorchDCGAN, "__init__", original_init)

    # a loss twice too large: Adam's update barely moves, the gradient comparison sees it
    def doubled_loss(self, real, z_d, z_g, mark=dcgan_step.no_mark):
        bce = self.bce
        self.bce = lambda x, t: 2 * bce(x, t)
        try:
            original_step(self, real, z_d, z_g, mark=mark)
        finally:
            self.bce = bce

    monkeypatch.setattr(dcgan_step.TorchDCGAN, "step", doubled_loss)
    with pytest.raises(SystemExit, match="disagree.*grad"):
        dcgan_step.check_same_update(steps=1)


def test_dcgan_floor_has_the_step_products():
    # D's second conv at B = 2: columns (2·7·7, 4·4·64) times the weight (1024, 128), three forwards
    shapes = {what: (m, k, n, count) for what, m, k, n, count in dcgan_step.gemm_shapes(2)}
    assert shapes["D Conv2 fwd (cols @ W)"] == (98, 1024, 128, 3)
    assert dcgan_step.gemm_flops(4) == 2 * dcgan_step.gemm_flops(2)  # every product is linear in the batch
    floor = dcgan_step.MatmulFloor(2, np)
    floor.step()
    assert len(floor.products) == len(dcgan_step.gemm_shapes(2))


def test_dcgan_benchmark_script_runs_and_writes_its_table(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "dcgan.json"
    args = ["--batch-sizes", "4", "--repeats", "1", "--seconds", "0.01", "--no-memory", "--json", str(out)]
    done = subprocess.run([sys.executable, dcgan_step.__file__, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    printed = done.stdout
    assert "check: scratchgan and PyTorch DCGAN updates agree" in printed and "| 4 |" in printed
    assert "threads in use: scratchgan: numpy BLAS" in printed and "page faults/step" in printed
    row = json.loads(out.read_text())["rows"][0]
    assert row["batch"] == 4 and row["scratchgan"] > 0 and row["torch"] > 0 and row["floor"] > 0
    for key in ("vs_torch", "vs_floor"):
        q1, q3 = row[f"{key}_quartiles"]
        assert q1 <= row[key] <= q3


def test_dcgan_profile_says_where_the_time_goes():
    args = ["--profile", "--batch-sizes", "4", "--steps", "2", "--no-check", "--top", "5"]
    done = subprocess.run([sys.executable, dcgan_step.__file__, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for text in ("GEMMs (backend.matmul)", "im2col", "transposed conv", "by tottime", "by cumulative", *hw.PHASES):
        assert text in done.stdout


# --------------------------------------------------------------------------- the recipe's networks (dcgan_variants.py)


def test_dcgan_variants_script_times_every_variant(tmp_path, capsys, monkeypatch):
    import dcgan_variants

    monkeypatch.setenv("SCRATCHGAN_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 8, 8)).astype(np.uint8)
    y = np.arange(40) % 10
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    dcgan_variants.main(["--data", "mnist", "--data-path", str(tmp_path / "mnist.npz"), "--rounds", "2",
                         "--steps", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "ms" not in line]
    assert [row.split(" | ")[0].lstrip("| ") for row in rows] == list(dcgan_variants.VARIANTS)
    assert rows[0].endswith("| 1.00x |")  # the reference against itself


# --------------------------------------------------------------------------- variants that fail (gan_step)


class _FakeTimer:
    """A timer whose variant runs at ``rate`` steps/s, or fails when built or at its ``fail_at``-th timing."""

    def __init__(self, rate, fail_build=False, fail_at=None):
        self.rate, self.fail_build, self.fail_at, self.timed, self.threads = rate, fail_build, fail_at, 0, ""

    def prepare(self, batch):
        self.batch = batch

    def wait_prepared(self):
        if self.fail_build:
            raise gan_step.VariantFailed("RuntimeError: cuda_graph.capture: the step could not be captured")

    def time(self, steps, warmup):
        self.timed += 1
        if self.timed == self.fail_at:
            raise gan_step.VariantFailed("ValueError: replay went wrong")
        return self.rate, 0.0


def test_a_variant_that_fails_is_reported_as_failed_and_the_others_are_timed(capsys):
    timers = {"scratchgan": _FakeTimer(100.0), "scratchgan-graph": _FakeTimer(300.0, fail_build=True),
              "handwritten": _FakeTimer(50.0, fail_at=3), "torch": _FakeTimer(80.0)}
    samples, faults, failed, steps = gan_step.time_interleaved(timers, 8, repeats=3, seconds=0.2, pause=0.0)
    assert set(failed) == {"scratchgan-graph", "handwritten"}  # one at its build, one in its second repetition
    assert "could not be captured" in failed["scratchgan-graph"] and "replay went wrong" in failed["handwritten"]
    assert set(samples) == {"scratchgan", "torch"} and all(len(s) == 3 for s in samples.values())
    assert timers["scratchgan-graph"].timed == 0 and timers["handwritten"].timed == 3  # no timing after a failure
    assert steps == int(0.2 * 50.0)  # sized on the slowest variant that built (the graph's 300 steps/s is out)

    pairs = [("vs_torch", "scratchgan", "torch"), ("vs_handwritten", "scratchgan", "handwritten")]
    row = gan_step.summarise({"batch": 8}, samples, faults, pairs)
    row["failed"] = failed
    row["not_run"] = {"torch-graph": "no CUDA (PyTorch is not installed)"}
    assert row["vs_torch"] == pytest.approx(1.25) and "vs_handwritten" not in row
    assert [gan_step.speed_cell(row, v, per_ms=True) for v in ("scratchgan", "handwritten", "torch-graph")] \
        == ["10.00", "failed", "not run"]
    capsys.readouterr()
    assert gan_step.report_problems([row], row["not_run"]) == 1  # the script's exit status
    printed = capsys.readouterr().out.splitlines()
    assert "not run: torch-graph: no CUDA (PyTorch is not installed)" in printed
    assert any(line.startswith("failed: scratchgan-graph at B = 8: RuntimeError: cuda_graph.capture")
               for line in printed)
    assert gan_step.report_problems([{"batch": 8}], {}) == 0


def test_worker_timer_times_a_variant_in_its_own_process_and_reports_one_that_fails():
    good = gan_step.WorkerTimer(gan_step.__file__, "handwritten", "numpy", timeout=120)
    bad = gan_step.WorkerTimer(gan_step.__file__, "no-such-variant", "numpy", timeout=120)
    try:
        for timer in (good, bad):  # both build at once
            timer.prepare(4)
        good.wait_prepared()
        with pytest.raises(gan_step.VariantFailed, match="ValueError: no-such-variant"):
            bad.wait_prepared()
        assert bad.proc is None  # the failed worker is gone; a later prepare() would start a fresh one
        rate, faults = good.time(steps=2, warmup=1)
        assert rate > 0 and faults >= 0
        pid = good.proc.pid
        good.prepare(8)  # another batch size, same worker
        good.wait_prepared()
        assert good.time(steps=1, warmup=0)[0] > 0 and good.proc.pid == pid
        good.fresh_per_batch = True  # as dcgan_step.py on the CPU: a fresh heap for each batch size
        good.prepare(4)
        good.wait_prepared()
        assert good.proc.pid != pid
    finally:
        good.close()
        bad.close()


def test_line_reader_gives_up_at_its_time_limit():
    read_end, write_end = os.pipe()
    try:
        lines = gan_step._LineReader(read_end)
        assert lines.readline(0.05) is None  # nothing came: the caller decides the worker hangs
        os.write(write_end, b'{"rate": 1}\n{"ra')
        assert lines.readline(1.0) == '{"rate": 1}\n'
        assert lines.readline(0.05) is None  # half a line is no answer
        os.write(write_end, b'te": 2}\n')
        assert lines.readline(1.0) == '{"rate": 2}\n'
        os.close(write_end)
        write_end = None
        assert lines.readline(1.0) == ""  # end of input: the worker stopped
    finally:
        os.close(read_end)
        if write_end is not None:
            os.close(write_end)


def test_compare_trees_times_two_trees_and_reports_their_ratio(tmp_path):
    """The tree compared with a copy of itself in which the step is made slower: the ratio shows it."""
    import shutil

    root = os.path.dirname(BENCHMARKS)
    slow = tmp_path / "slow"
    shutil.copytree(root, slow, ignore=shutil.ignore_patterns(".git", "__pycache__", "docs", "tests", "*.egg-info"))
    script = slow / "benchmarks" / "gan_step.py"
    text = script.read_text(encoding="utf-8")
    # the copy's scratchgan variant sleeps 20 ms per step: about half the speed of a fast tiny step or less
    text = text.replace("    def step(self, real, z_d, z_g, mark=no_mark):\n",
                        "    def step(self, real, z_d, z_g, mark=no_mark):\n        import time; time.sleep(0.02)\n", 1)
    script.write_text(text, encoding="utf-8")
    args = [sys.executable, os.path.join(BENCHMARKS, "compare_trees.py"), "--baseline", str(slow), "--step", "gan",
            "--batch-sizes", "4", "--repeats", "2", "--seconds", "0.2", "--pause", "0"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    row = [line for line in done.stdout.splitlines() if line.startswith("| 4 |")]
    assert len(row) == 1, done.stdout
    ratio = float(row[0].split("|")[4])
    assert ratio > 1.5, done.stdout  # the unchanged tree is faster than the slowed copy
