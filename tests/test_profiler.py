"""scratchgan.study.profiler: what `with sg.profile()` records, that its rows add up to the step's time, the table,
`scratchgan profile`, and that nothing of it stays on afterwards."""

from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np
import pytest

import scratchgan as sg
from scratchgan.gan import losses
from scratchgan import nn, ops, optim
from scratchgan.study import profiler
from scratchgan.app.cli import main
from scratchgan.autograd.engine import _mode

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def _by_phase(prof, phase):
    return [e for e in prof.events if e.phase == phase]


def test_forward_and_backward_events_of_a_known_graph():
    x = sg.randn(64, 8, requires_grad=True)
    w = sg.randn(8, requires_grad=True)
    with sg.profile() as prof:
        loss = (x * w).sum()
        loss.backward()
    forward = _by_phase(prof, "forward")
    assert [(e.name, e.inputs, e.outputs) for e in forward] == [
        ("mul", ((64, 8), (8,)), ((64, 8),)), ("sum", ((64, 8),), ((),))]
    assert [e.nbytes for e in forward] == [64 * 8 * 4, 4]
    assert {(e.dtype.name, e.backend) for e in forward} == {("float32", "numpy")}
    backward = _by_phase(prof, "backward")
    assert [(e.name, e.inputs, e.outputs, e.nbytes) for e in backward] == [
        ("sum", ((),), ((64, 8),), 64 * 8 * 4),
        ("mul", ((64, 8),), ((64, 8), (64, 8)), 2 * 64 * 8 * 4)]  # w's gradient before un-broadcasting
    assert [e.name for e in _by_phase(prof, "engine")] == ["autograd engine"]
    assert all(e.seconds >= 0 for e in prof.events)
    assert prof.total() <= prof.wall  # the bookkeeping is in no row


def test_a_gradient_penalty_step_shows_create_graph_and_double_backward():
    sg.manual_seed(0)
    critic = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    real = sg.randn(16, 2)
    with sg.profile() as prof:
        loss = losses.d_loss("ns", critic(real), critic(sg.randn(16, 2))) + losses.r1_penalty(critic, real, 1.0)
        loss.backward()
    phases = {e.phase for e in prof.events}
    assert {"forward", "backward", "backward (create_graph)", "double backward", "engine"} <= phases
    # the ops a rule runs while recording are part of the rule, not forward rows of their own
    assert not [e for e in _by_phase(prof, "forward") if e.name == "transpose"]
    double = {e.name for e in _by_phase(prof, "double backward")}
    assert "matmul" in double and "transpose" in double  # linear's input gradient is g @ w^T
    assert len(_by_phase(prof, "engine")) == 2  # R1's grad() and the step's backward()


def test_optimizer_rows_and_the_methods_restored():
    step, zero_grad = optim.Optimizer.step, optim.Optimizer.zero_grad
    layer = nn.Linear(4, 3)
    opt = optim.Adam(layer.parameters(), lr=1e-3)
    with sg.profile() as prof:
        opt.zero_grad()
        layer(sg.randn(5, 4)).sum().backward()
        opt.step()
    names = [e.name for e in prof.events]
    assert "Adam.step" in names and "Adam.zero_grad" in names
    assert {e.phase for e in prof.events if e.name.startswith("Adam.")} == {"optimizer"}
    assert optim.Optimizer.step is step and optim.Optimizer.zero_grad is zero_grad
    with sg.profile() as prof:
        start = time.perf_counter()
        opt.step()
        wall = time.perf_counter() - start
    (row,) = [e for e in prof.events if e.name == "Adam.step"]
    assert 0 < row.seconds <= wall  # the step's own time, once, without the profiler's bookkeeping
    with sg.profile(optimizers=False) as prof:
        opt.step()
    assert "Adam.step" not in [e.name for e in prof.events]


def test_record_gives_a_block_its_own_row():
    with sg.profile() as prof:
        with prof.record("sleep"):
            time.sleep(0.02)
        ops.exp(sg.randn(3))
    (row,) = [e for e in prof.events if e.name == "sleep"]
    assert row.phase == "record" and 0.015 < row.seconds < 1.0
    (exp,) = [e for e in prof.events if e.name == "exp"]
    assert exp.seconds < 0.015  # the sleep is not in the next op's time
    with sg.profile() as prof:
        time.sleep(0.02)  # in no op: the row (other python), not the block that follows
        with prof.record("empty"):
            pass
    (row,) = [e for e in prof.events if e.name == "empty"]
    assert row.seconds < 0.015
    assert sum(e.seconds for e in prof.events if e.name == "(other python)") > 0.015


def test_off_after_the_block_and_no_nesting():
    with sg.profile():
        with pytest.raises(RuntimeError, match="do not nest"):
            with sg.profile():
                pass
    assert _mode.observer is None and not _mode.watch
    with pytest.raises(ZeroDivisionError), sg.profile() as prof:
        (sg.randn(3, requires_grad=True) * 2.0).sum().backward()
        1 / 0
    assert _mode.observer is None and not _mode.watch and prof.wall is not None
    x = sg.randn(3, requires_grad=True)
    with sg.profile() as prof:
        pass
    (x * 2.0).sum().backward()  # after the block: nothing recorded
    assert [e.name for e in prof.events] == ["(other python)"]


def test_table_groups_sorts_and_cuts():
    x = sg.randn(32, 4, requires_grad=True)
    with sg.profile() as prof:
        for n in (8, 8, 16):
            (ops.exp(sg.randn(n, 4)) * 2.0).sum()
        (x * x).sum().backward()
    rows = prof.key_averages()
    exp_rows = [r for r in rows if r["name"] == "exp"]
    assert sorted(r["calls"] for r in exp_rows) == [1, 2]  # grouped by shape
    assert [r["calls"] for r in prof.key_averages(group_by="op") if r["name"] == "exp"] == [3]
    text = prof.table(top=3)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["op", "phase", "inputs"] and set(lines[1]) == {"-"}
    slowest = sorted(prof.key_averages(), key=lambda r: -r["seconds"])[:3]
    assert [line.split()[0] for line in lines[2:5]] == [r["name"].split()[0] for r in slowest]
    assert "more lines" in lines[5] and "rows add up to" in lines[-1]
    by_name = prof.table(sort_by="name", top=None).splitlines()[2:-1]
    assert [line.split()[0] for line in by_name] == sorted(line.split()[0] for line in by_name)
    with pytest.raises(ValueError, match="sort_by"):
        prof.table(sort_by="speed")
    with pytest.raises(ValueError, match="group_by"):
        prof.key_averages(group_by="dtype")


def _reference_step():
    sys.path.insert(0, BENCHMARKS)
    try:
        from gan_step import ScratchganGAN  # noqa: PLC0415
        from handwritten import D_SIZES, G_SIZES, init_params  # noqa: PLC0415
    finally:
        sys.path.remove(BENCHMARKS)
    rng = np.random.default_rng(0)
    model = ScratchganGAN(init_params(G_SIZES, rng), init_params(D_SIZES, rng))

    def batch():
        return (rng.standard_normal((64, 784), dtype=np.float32), rng.standard_normal((64, 100), dtype=np.float32),
                rng.standard_normal((64, 100), dtype=np.float32))

    return model, batch


def test_rows_add_up_to_the_wall_time_of_the_reference_step():
    """The reference step of docs/performance.md (B = 64): the ops', the engine's and Adam's rows sum to within
    10% of the step's wall time measured around the profiled step (the same step, so the machine's noise hits
    both); the median ratio of five steps is judged. Against the unprofiled steps the sum is printed only: on a
    shared machine two steps differ by more than 10%."""
    model, batch = _reference_step()
    for _ in range(3):
        model.step(*batch())
    pairs, plain = [], []
    for _ in range(5):
        b = batch()
        start = time.perf_counter()
        model.step(*b)
        plain.append(time.perf_counter() - start)
        b = batch()
        start = time.perf_counter()
        with sg.profile() as prof:
            model.step(*b)
        wall = time.perf_counter() - start
        pairs.append((wall, prof.total(include_python=False), prof))
    names = {e.name for e in pairs[-1][2].events}
    assert {"linear_relu", "linear", "mean_softplus", "Adam.step", "autograd engine"} <= names
    ratio = statistics.median(accounted / wall for wall, accounted, _ in pairs)
    print(f"reference step: rows / wall {ratio:.3f} (median of 5); rows {min(p[1] for p in pairs) * 1e3:.2f} ms, "
          f"wall {min(p[0] for p in pairs) * 1e3:.2f} ms (best); unprofiled steps best {min(plain) * 1e3:.2f} ms")
    assert 0.9 <= ratio <= 1.1


@pytest.mark.skipif(not sg.cupy_available(), reason="needs CuPy and a GPU")
def test_cupy_profile_synchronises_and_names_the_backend():
    sg.set_backend("cupy")
    try:
        x = sg.randn(256, 256, requires_grad=True)
        with sg.profile() as prof:
            (x @ x).sum().backward()
        assert prof._sync is not None
        assert {e.backend for e in prof.events if e.backend} == {"cupy"}
        assert 0.5 * prof.wall <= prof.total() <= prof.wall
    finally:
        sg.set_backend("numpy")


def test_numpy_profile_does_not_synchronise():
    with sg.profile() as prof:
        ops.exp(sg.randn(3))
    assert prof._sync is None


def test_profile_command_prints_the_table(tmp_path, capsys):
    from scratchgan.app.config import TrainConfig  # noqa: PLC0415
    from scratchgan.app.train import Trainer  # noqa: PLC0415

    run = tmp_path / "toy"
    Trainer(TrainConfig(g_hidden=(8,), d_hidden=(8,), z_dim=4, batch_size=16, steps=10), run).save()
    before = (run / "checkpoint.npz").read_bytes()
    assert main(["profile", "--run", str(run), "--steps", "2", "--top", "50"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("2 training steps of mlp ns GAN on grid25, batch 16, R1 0.3")
    for fragment in ("linear", "forward", "double backward", "Adam.step", "autograd engine", "rows add up to"):
        assert fragment in out
    assert (run / "checkpoint.npz").read_bytes() == before  # the run is only read
    with pytest.raises(SystemExit) as exit_:
        main(["profile", "--run", str(run), "--steps", "0"])
    assert exit_.value.code == 2
    assert "--steps: must be >= 1" in capsys.readouterr().err


def test_lazy_names():
    assert sg.profile is profiler.profile
    assert "profile" in dir(sg) and "viz" in dir(sg)
