"""The rank side of tests/test_distributed.py: run as ``mpiexec -n 2 python tests/distributed_worker.py MODE OUT``.

Modes:

* ``suite``: the communicator's collectives, then the equivalence cases
  (:data:`CASES`, float64, trained with ``train_step``) and one full
  ``Trainer.run``; every rank writes ``OUT/rank{r}.json`` and, per case,
  ``OUT/{case}-rank{r}.npz`` (the weights, samples and records after the
  steps). The test compares them with one process that trains the same
  config on the same seed.
* ``die``: rank 1 raises in the middle of training; the exception hook that
  :class:`~scratchgan.app.distributed.Communicator` installs must abort the job.
* ``mismatch``: rank 1 is started with another learning rate; it must stop
  the job with a message naming the option.
* ``nccl``: the collectives and the ``suite`` equivalence case ``toy`` on
  CuPy arrays over NCCL (one rank: one GPU, or the CuPy stand-in; two ranks:
  a machine with two GPUs).

Every draw of the trainer is of the global batch from the shared stream, so
``CASES`` with the same seed in one process is the reference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import scratchgan as sg
import scratchgan.app.train as train_module
from scratchgan.app.config import TrainConfig
from scratchgan.app.distributed import Communicator, DistributedError
from scratchgan.app.train import Trainer

COMMON = dict(dtype="float64", batch_size=16, log_every=1, checkpoint_every=1000, sample_every=1000, eval_samples=100)
#: name -> (config fields, steps). Together they cover the draws and loss terms of the trainer: the toy
#: recipe (NS loss, R1, EMA, linear decay, Adam), WGAN-GP with PacGAN packs of 2 (interpolation factors per
#: pack), 2 critic steps and labels (conditional), plain SGD with the hinge loss (SGD is not invariant to
#: the gradient's scale, as Adam nearly is: a sum instead of a mean shows at once), and the rest below.
CASES = {
    "toy": (dict(COMMON, steps=6, ema_decay=0.9), 6),
    "wgan-gp-pack": (dict(COMMON, loss="wgan-gp", pack=2, n_critic=2, conditional=True, steps=4), 4),
    "sgd-hinge": (dict(COMMON, loss="hinge", optimizer="sgd", lr_g=0.05, lr_d=0.05, steps=6), 6),
    # the relativistic loss pairs real and fake samples (G draws a real batch too); spectral normalisation keeps
    # power-iteration vectors as buffers
    "rsgan-sn": (dict(COMMON, loss="rsgan", spectral_norm=True, steps=4), 4),
    # the auxiliary heads: ACGAN's classifier on labels, InfoGAN's codes drawn for the global batch
    "acgan": (dict(COMMON, aux="acgan", steps=3), 3),
    "infogan": (dict(COMMON, aux="infogan", info_categories=3, info_continuous=1, steps=3), 3),
}
SAMPLES = 64


def case_config(name: str, **changes) -> TrainConfig:
    return TrainConfig(**{**CASES[name][0], **changes})


def train_case(trainer: Trainer, steps: int) -> dict:
    """Train ``steps`` steps; the weights, the samples (fixed noise) and the records, as arrays.

    Data-parallel, ``digests`` also holds a digest of every rank's weights after every step.
    """
    records, digests = [], []
    for _ in range(steps):
        records.append(train_module.host_record(trainer.train_step(with_norms=True)))  # GPU: 0-d arrays -> floats
        if trainer.comm is not None:
            digests.append(trainer.comm.digest(p.data for net in (trainer.G, trainer.D) for p in net.parameters()))
    out = {f"{net}/{k}": v for net in ("G", "D", "G_ema") if getattr(trainer, net) is not None
           for k, v in getattr(trainer, net).state_dict().items()}
    out["samples"] = trainer.sample(SAMPLES, seed=0)
    for key in records[0]:  # the losses (auxiliary ones too), mean outputs and gradient norms
        if not key.startswith("lr_"):
            out[f"record/{key}"] = np.array([r[key] for r in records])
    if digests:
        out["digests"] = np.array(digests)
    return out


def perturbed_builds(monkeypatch_rank: int, comm: Communicator):
    """On rank ``monkeypatch_rank``, networks whose initial weights differ (as on a machine whose NumPy drew
    others): the start-up broadcast must make them rank 0's."""
    if comm.rank != monkeypatch_rank:
        return
    for name in ("build_generator", "build_discriminator"):
        original = getattr(train_module, name)

        def build(config, data, rng, _original=original):
            net = _original(config, data, rng)
            with sg.no_grad():
                for p in net.parameters():
                    p.data += 0.01
            return net

        setattr(train_module, name, build)


def collectives(comm: Communicator) -> dict:
    r, n = comm.rank, comm.size
    found = {"rank": r, "size": n}
    # allreduce_gradients: the mean of the ranks' gradients, in place, and the record's mean
    a = sg.Tensor(np.zeros((2, 3)), requires_grad=True)
    b = sg.Tensor(np.zeros(4), requires_grad=True)
    skipped = sg.Tensor(np.zeros(1), requires_grad=True)
    a.grad = sg.Tensor(np.arange(6.0).reshape(2, 3) * (r + 1))
    b.grad = sg.Tensor(np.full(4, 10.0 * r))
    record = comm.allreduce_gradients([a, skipped, b], {"loss": float(r), "name": "kept"})
    found["mean_a"] = a.grad.numpy().tolist()
    found["mean_b"] = b.grad.numpy().tolist()
    found["skipped_grad"] = skipped.grad is None
    found["record"] = record
    found["bytes"], found["calls"] = comm.allreduce_bytes, comm.allreduce_calls
    # a record value kept on the device (a one-element Tensor or array) is averaged there, and stays a Tensor
    kept = comm.allreduce_gradients([], {"d_loss": sg.Tensor(np.array(2.0 * r)), "count": 3})
    found["device_record"] = [type(kept["d_loss"]).__name__, float(kept["d_loss"].item()), kept["count"]]
    # broadcast_module / broadcast_optimizer: rank 0's values everywhere
    net = sg.nn.Sequential(sg.nn.Linear(3, 4, rng=r), sg.nn.BatchNorm1d(4))
    opt = sg.optim.Adam(list(net.parameters()), lr=1e-3 * (r + 1))
    for p in net.parameters():
        p.grad = sg.Tensor(np.ones(p.shape, dtype=p.dtype))
    opt.step()
    net[1].running_mean[...] = r
    comm.broadcast_module(net)
    comm.broadcast_optimizer(opt)
    found["weights"] = net[0].weight.numpy().tolist()
    found["running_mean"] = net[1].running_mean.tolist()
    found["lr"] = opt.lr
    found["exp_avg"] = opt.state_dict()["state"]["0"]["exp_avg"].tolist()
    # any(): one rank's flag is every rank's decision
    found["any"] = [comm.any(r == n - 1), comm.any(False)]
    # check_parameters_agree: passes on equal weights, names the rank whose differ
    comm.check_parameters_agree(net)
    if r == n - 1:
        net[0].weight.data[:1, :1] += 1e-3
    try:
        comm.check_parameters_agree(net)
        found["disagreement"] = None
    except DistributedError as exc:
        found["disagreement"] = str(exc)
    return found


def suite(out: Path) -> None:
    comm = Communicator()
    found = {"collectives": collectives(comm), "transport": comm.transport}
    perturbed_builds(1, comm)
    digests = {}
    for name, (_, steps) in CASES.items():
        trainer = Trainer(case_config(name), out / name, comm=comm)
        arrays = train_case(trainer, steps)
        np.savez(out / f"{name}-rank{comm.rank}.npz", **arrays)
        digests[name] = [str(d) for d in arrays["digests"]]
    found["digests"] = digests
    # a whole run: rank 0 writes the folder; rank 1 is given a folder of its own, which must never appear
    folder = out / ("run" if comm.rank == 0 else "run-of-rank-1-never-written")
    trainer = Trainer(case_config("toy", steps=3, checkpoint_every=2), folder, comm=comm)
    found["run_result"] = trainer.run(progress=False)
    found["run_step"] = trainer.step
    (out / f"rank{comm.rank}.json").write_text(json.dumps(found))


def die(out: Path) -> None:
    comm = Communicator()
    trainer = Trainer(case_config("toy", steps=50), out / "run", comm=comm)
    if comm.rank == 1:
        original = trainer.g_update

        def g_update():
            if trainer.step == 2:
                raise RuntimeError("rank 1 fails on purpose at step 2")
            return original()

        trainer.g_update = g_update
    trainer.run(progress=False)


def mismatch(out: Path) -> None:
    comm = Communicator()
    Trainer(case_config("toy", lr_g=1e-3 if comm.rank == 1 else None), out / "run", comm=comm).run(progress=False)


def nccl(out: Path) -> None:
    comm = Communicator(backend="cupy")
    sg.set_backend("cupy")
    found = {"transport": comm.transport, "device": comm.device, "collectives": collectives(comm)}
    trainer = Trainer(case_config("toy", backend="cupy"), out / "toy", comm=comm)
    arrays = train_case(trainer, CASES["toy"][1])
    np.savez(out / f"toy-rank{comm.rank}.npz", **arrays)
    (out / f"rank{comm.rank}.json").write_text(json.dumps(found))


if __name__ == "__main__":
    mode, folder = sys.argv[1], Path(sys.argv[2])
    {"suite": suite, "die": die, "mismatch": mismatch, "nccl": nccl}[mode](folder)
