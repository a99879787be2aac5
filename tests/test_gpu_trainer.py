"""The trainer on the cupy backend (a GPU, or the CuPy stand-in in CI): every kind of step, and its transfers.

A GPU step must copy nothing to or from the host unless the loop logs
(issue 23): noise, labels, batch indices and penalty factors are drawn on
the device (scratchgan.backend.device_rng), the data set is uploaded once, the
record stays on the device. These tests count the transfers with the
stand-in's counters (``cupy.standin``; on a real GPU those checks are
skipped and the rest runs), train each architecture, loss, auxiliary head
and penalty a few steps, sample and evaluate, resume exactly, and capture
the step as a CUDA graph.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import scratchgan as sg
from scratchgan import backend
from scratchgan.accel import cuda_graph
from scratchgan.app.checkpoint import load_checkpoint
from scratchgan.app.config import TrainConfig
from scratchgan.app.train import Trainer, TrainingError, host_record

from test_train import assert_bitwise_equal, write_tiny_mnist

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not sg.cupy_available(), reason="CuPy with a visible GPU is not available")]

IMAGES = dict(data="mnist", arch="mlp")
# one of each: architecture, loss, auxiliary head, penalty, conditioning, packing (tiny: a step is milliseconds)
STEPS = {
    "ns": dict(loss="ns"),  # the toy recipe: R1 and the linear decay
    "gan": dict(loss="gan", label_smoothing=0.1),
    "wgan": dict(loss="wgan", n_critic=2),
    "wgan-gp": dict(loss="wgan-gp", n_critic=2),
    "lsgan": dict(loss="lsgan"),
    "hinge": dict(loss="hinge"),
    "rsgan": dict(loss="rsgan"),
    "rasgan": dict(loss="rasgan"),
    "r1": dict(loss="hinge", r1=1.0),
    "dragan": dict(loss="ns", recipe="paper", dragan=1.0),
    "pack": dict(loss="wgan-gp", pack=2, n_critic=1),
    "conditional": dict(IMAGES, loss="lsgan", conditional=True, embed_dim=3),
    "acgan": dict(IMAGES, aux="acgan"),
    "infogan": dict(IMAGES, aux="infogan"),
    "dcgan": dict(data="mnist", arch="dcgan", conditional=True, embed_dim=3),
    "dcgan-wgan-gp": dict(data="mnist", arch="dcgan", loss="wgan-gp", n_critic=1),
}


def config(tmp_path, **overrides) -> TrainConfig:
    base = dict(data="grid25", z_dim=4, g_hidden=(16,), d_hidden=(16,), batch_size=8, steps=4, log_every=1,
                sample_every=1000, checkpoint_every=1000, eval_samples=64, ema_decay=0.9, backend="cupy")
    base.update(overrides)
    if base["data"] == "mnist" and "data_path" not in base:
        folder = tmp_path / "data"
        folder.mkdir(exist_ok=True)
        base["data_path"] = str(write_tiny_mnist(folder))
    return TrainConfig(**base)


def transfers(cupy, fn):
    """``(fn(), {"device_to_host": n, "host_to_device": m})`` as the stand-in counted them (None on a real GPU)."""
    standin = getattr(cupy, "standin", None)
    if standin is None:
        return fn(), None
    standin.reset()
    result = fn()
    counts = standin.counts()
    return result, {k: counts[k] for k in ("device_to_host", "host_to_device")}


@pytest.mark.parametrize("case", list(STEPS))
def test_each_step_trains_on_the_device_and_copies_nothing_unless_it_logs(tmp_path, cupy, case):
    trainer = Trainer(config(tmp_path, **STEPS[case]), tmp_path / "run")
    assert trainer.device_rng is not None
    before = [p.data.copy() for p in trainer.G.parameters()]
    trainer.train_step(with_norms=True)  # the first step uploads the data set and makes the optimizer state
    record, counts = transfers(cupy, lambda: trainer.train_step(with_norms=False))
    if counts is not None:
        assert counts == {"device_to_host": 0, "host_to_device": 0}, f"a step that does not log copied: {counts}"
    assert all(isinstance(record[k], cupy.ndarray) for k in ("d_loss", "d_real", "d_fake", "g_loss"))
    # a logging step: the norms summed on the device, the record read back in one transfer
    record, counts = transfers(cupy, lambda: host_record(trainer.train_step(with_norms=True)))
    if counts is not None:
        assert counts == {"device_to_host": 1, "host_to_device": 0}, counts
    assert all(isinstance(v, float) and np.isfinite(v) for v in record.values()), record
    assert record["grad_norm_d"] > 0 and record["grad_norm_g"] > 0
    assert (set(record) >= {"d_aux", "g_aux"}) == (trainer.config.aux != "none")
    after = [p.data for p in trainer.G.parameters()]
    assert any(not np.array_equal(cupy.asnumpy(a), cupy.asnumpy(b)) for a, b in zip(after, before))


def test_the_penalties_check_their_inputs_with_one_read_each_unless_told_not_to(cupy):
    from scratchgan.gan import losses  # noqa: PLC0415

    def critic(x):
        return (x * x).sum(axis=1)

    real, fake = sg.randn(6, 3), sg.randn(6, 3)
    alpha, noise = sg.rand(6), sg.rand(6, 3)
    calls = {
        "r1": lambda check: losses.r1_penalty(critic, real, 1.0, check_inputs=check),
        "gp": lambda check: losses.gradient_penalty(critic, real, fake, alpha=alpha, check_inputs=check),
        "dragan": lambda check: losses.dragan_penalty(critic, real, noise=noise, alpha=alpha, check_inputs=check),
    }
    reads = {"r1": 1, "gp": 3, "dragan": 3}  # real (and fake), alpha (and noise): one read each
    for name, call in calls.items():
        checked, counts = transfers(cupy, lambda: call(True))
        unchecked, quiet = transfers(cupy, lambda: call(False))
        assert checked.item() == unchecked.item()
        if counts is not None:
            assert counts["device_to_host"] == reads[name], (name, counts)
            assert quiet["device_to_host"] == 0, (name, quiet)
    bad = sg.tensor(cupy.asnumpy(real.data) * np.array([1.0, np.nan, 1.0], dtype=np.float32))
    with pytest.raises(ValueError, match="contains 6 NaN and 0 Inf"):
        losses.r1_penalty(critic, bad, 1.0)
    assert np.isnan(losses.r1_penalty(critic, bad, 1.0, check_inputs=False).item())


def test_the_grad_norm_is_the_cpu_formula(tmp_path, cupy):
    trainer = Trainer(config(tmp_path), tmp_path / "run")
    record = host_record(trainer.train_step(with_norms=True))
    grads = [cupy.asnumpy(p.grad.data).astype(np.float64) for p in trainer.D.parameters()]
    assert record["grad_norm_d"] == pytest.approx(np.sqrt(sum((g ** 2).sum() for g in grads)), rel=1e-12)


def test_the_data_set_is_uploaded_once_and_batches_are_gathered_on_the_device(tmp_path, cupy):
    trainer = Trainer(config(tmp_path, **IMAGES, conditional=True, embed_dim=3), tmp_path / "run")
    _, first = transfers(cupy, trainer._real_batch)
    x, y = trainer._real_batch()
    batches = trainer._batches
    assert isinstance(x.data, cupy.ndarray) and isinstance(y.data, cupy.ndarray)
    assert backend.vouched_high(y.data) == trainer.data.num_classes  # drawn in range: no check reads them back
    # every row is a row of the training split, with its own label
    rows, labels = cupy.asnumpy(x.data), cupy.asnumpy(y.data)
    table = trainer.data.x_train.reshape(len(trainer.data.x_train), -1)
    for row, label in zip(rows, labels):
        (index,) = np.flatnonzero((table == row).all(axis=1))[:1]
        assert trainer.data.y_train[index] == label
    _, again = transfers(cupy, trainer._real_batch)
    assert trainer._batches is batches
    if first is not None:
        assert first == {"device_to_host": 0, "host_to_device": 2}  # the images and the labels, once
        assert again == {"device_to_host": 0, "host_to_device": 0}


def test_sample_and_evaluate_on_the_device(tmp_path, cupy):
    toy = Trainer(config(tmp_path, steps=3), tmp_path / "toy")
    result = toy.run(progress=False)
    assert result["step"] == 3 and "modes_captured" in result
    assert toy.sample(5).shape == (5, 2) and isinstance(toy.sample(5), np.ndarray)
    images = Trainer(config(tmp_path, **IMAGES, conditional=True, embed_dim=3, steps=2), tmp_path / "images")
    images.train_step()
    x = images.sample(4, labels=[0, 1, 2, 0], seed=3)
    assert x.shape == (4, 8, 8) and np.all(np.abs(x) <= 1)
    with pytest.raises(ValueError, match="labels must be integers in"):
        images.sample(2, labels=[0, 10])


@pytest.mark.parametrize("case", ["ns", "wgan-gp", "dragan", "conditional", "infogan"])
def test_resume_on_the_device_is_bitwise_exact(tmp_path, cupy, case):
    """k steps + checkpoint + resume == the straight run: the device stream's counter is in the checkpoint."""
    overrides = dict(STEPS[case], steps=4, checkpoint_every=2)
    straight = Trainer(config(tmp_path, **overrides), tmp_path / "straight")
    straight.run(progress=False)

    def stop_at_2(record):
        if record["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(config(tmp_path, **overrides), tmp_path / "split").run(progress=False, on_log=stop_at_2)
    Trainer.resume(tmp_path / "split").run(progress=False)
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.npz")
    b = load_checkpoint(tmp_path / "split" / "checkpoint.npz")
    assert a["step"] == b["step"] == 4
    assert a["device_rng"] == b["device_rng"] and json.loads(a["device_rng"]["json"])["counter"] > 0
    assert_bitwise_equal(a, b)


def _run_transfers(cupy, tmp_path, steps: int) -> int:
    c = config(tmp_path, steps=steps, log_every=50, sample_every=50, checkpoint_every=50, eval_samples=200)
    trainer = Trainer(c, tmp_path / f"run{steps}")
    _, counts = transfers(cupy, lambda: trainer.run(progress=False))
    return counts["device_to_host"]


def test_more_steps_cost_no_more_reads_unless_they_log(tmp_path, cupy):
    """Two runs that differ only in their length (50 and 75 steps; logs, pictures, checkpoints every 50).

    The longer run logs once more (its last step): one read of the record.
    Its checkpoints and pictures are as many (at 50, and at the end), and
    so are the evaluation's reads. A read in every step would add 25.
    """
    if getattr(cupy, "standin", None) is None:
        pytest.skip("counts transfers with the CuPy stand-in")
    short, longer = _run_transfers(cupy, tmp_path, 50), _run_transfers(cupy, tmp_path, 75)
    assert longer - short <= 5, f"device-to-host transfers: {short} in 50 steps, {longer} in 75"


def test_a_nan_loss_stops_the_device_run_at_the_next_check_and_names_its_step(tmp_path, cupy, monkeypatch):
    trainer = Trainer(config(tmp_path, steps=10, log_every=5, checkpoint_every=2), tmp_path / "run")
    original = Trainer.d_update

    def poisoned(self):
        record = original(self)
        if self.step == 2:  # the third step: a NaN loss, noticed when the run checkpoints after the fourth
            record["d_loss"] = record["d_loss"] * float("nan")
        return record

    monkeypatch.setattr(Trainer, "d_update", poisoned)
    message = r"NaN or Inf at step 3 \(found at step 4.* last good checkpoint \(step 2\)"
    with pytest.raises(TrainingError, match=message):
        trainer.run(progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz")["step"] == 2


def test_ctrl_c_does_not_save_a_diverged_device_run(tmp_path, cupy, monkeypatch):
    trainer = Trainer(config(tmp_path, steps=10, log_every=10, checkpoint_every=10), tmp_path / "run")
    original = Trainer.d_update

    def poisoned(self):
        if self.step == 3:
            raise KeyboardInterrupt  # Ctrl-C in the fourth step, before any check
        record = original(self)
        if self.step == 1:  # the second step's loss is NaN
            record["d_loss"] = record["d_loss"] * float("nan")
        return record

    monkeypatch.setattr(Trainer, "d_update", poisoned)
    with pytest.raises(TrainingError, match=r"NaN or Inf at step 2 .*no checkpoint was saved"):
        trainer.run(progress=False)
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


class RankZeroOfTwo:
    """A data-parallel communicator stand-in: this process is rank 0 of 2, and the other rank's reports are made up.

    The other rank logs every loss 2 higher, and reports ``other_first_bad``
    as the first step whose loss it found not finite (-1: none). Gradients
    are left as they are (as if the other rank's were the same).
    """

    rank, size = 0, 2

    def __init__(self, other_first_bad=-1):
        self.other_first_bad, self.sent = other_first_bad, []

    def bcast_object(self, obj, root=0):
        return obj

    def allreduce_gradients(self, params, record=None):
        return record

    def allgather_object(self, obj):
        self.sent.append(obj)
        first_bad, values = obj
        return [obj, (self.other_first_bad, [v + 2 for v in values])]

    def any(self, flag):
        return flag

    def check_parameters_agree(self, *modules):
        pass


def test_data_parallel_on_the_device_logs_the_ranks_mean_losses(tmp_path, cupy):
    comm = RankZeroOfTwo()
    trainer = Trainer(config(tmp_path, steps=3, log_every=3), tmp_path / "run", comm=comm)
    logged = []
    trainer.run(progress=False, on_log=logged.append)
    (first_bad, mine), = comm.sent  # one exchange: the logging step's (the only step that checks)
    assert first_bad == -1
    keys = ["d_loss", "d_real", "d_fake", "g_loss"]
    assert [logged[0][k] for k in keys] == pytest.approx([v + 1 for v in mine])


def test_data_parallel_on_the_device_stops_every_rank_when_one_diverges(tmp_path, cupy):
    trainer = Trainer(config(tmp_path, steps=4, log_every=2), tmp_path / "run", comm=RankZeroOfTwo(other_first_bad=1))
    with pytest.raises(TrainingError, match=r"NaN or Inf at step 1 \(found at step 2"):
        trainer.run(progress=False)


# --------------------------------------------------------------------------- CUDA graphs

CAPTURED = ["gan", "wgan", "wgan-gp", "hinge", "rasgan", "r1", "dragan", "pack", "conditional", "acgan", "infogan",
            "dcgan", "dcgan-wgan-gp"]


@pytest.mark.parametrize("case", CAPTURED)
def test_a_captured_step_replays_what_eager_steps_do(tmp_path, cupy, case, accelerations_on):
    """warmup + capture + replays == as many eager steps, bit for bit (the device stream advances in the graph)."""
    c = config(tmp_path, **STEPS[case], lr_decay="none")
    graphed, eager = Trainer(c, tmp_path / "graphed"), Trainer(c, tmp_path / "eager")
    captured = cuda_graph.capture(lambda: graphed.train_step(with_norms=False), warmup=2)
    for _ in range(2):
        record = captured()
    for _ in range(4):  # the warm-up step, the rehearsal, two replays (recording a capture runs nothing)
        expected = eager.train_step(with_norms=False)
    assert float(record["g_loss"]) == float(expected["g_loss"])
    a, b = graphed.state(), eager.state()
    assert a["device_rng"] == b["device_rng"]
    assert_bitwise_equal({k: v for k, v in a.items() if k != "step"}, {k: v for k, v in b.items() if k != "step"})


def test_a_step_with_a_decaying_learning_rate_is_refused_before_the_capture(tmp_path, cupy):
    trainer = Trainer(config(tmp_path), tmp_path / "run")  # the toy recipe decays the rate linearly
    assert trainer.config.lr_decay == "linear"
    with pytest.raises(backend.CaptureError, match=r"lr_decay='linear'.*--lr-decay none"):
        cuda_graph.capture(lambda: trainer.train_step(with_norms=False), warmup=1)
