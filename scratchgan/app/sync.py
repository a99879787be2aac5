"""Data-parallel glue of the Trainer (docs/distributed.md): every rank starts alike and averages its gradients.

``comm`` is a :class:`~scratchgan.app.distributed.Communicator` or None (one
process: every function here is then a no-op).
"""

from __future__ import annotations

import numpy as np

from .config import ConfigError

__all__ = ["average_gradients", "gpu_losses_across_ranks", "start_from_rank0"]


def start_from_rank0(trainer) -> None:
    """Every rank takes rank 0's state (weights, buffers, optimisers, RNG, step), once.

    The ranks build the same networks from the same seed anyway; this makes
    it so whatever differs between machines, and checks that every rank
    was started with rank 0's options.
    """
    comm = trainer.comm
    if comm is None:
        return
    tree = comm.bcast_object(trainer.state() if comm.rank == 0 else None)
    if comm.rank != 0:
        mine, theirs = trainer.config.to_dict(), tree["config"]
        differ = sorted(k for k in mine if k != "data_path" and mine[k] != theirs.get(k))
        if differ:
            raise ConfigError(f"rank {comm.rank} was started with other options than rank 0: "
                              + ", ".join(f"{k} {mine[k]!r} here, {theirs.get(k)!r} on rank 0" for k in differ))
        trainer.load_state(tree, source="rank 0's state")


def average_gradients(comm, params, record: dict) -> dict:
    """The global batch's mean gradient of ``params`` (and mean record) on every rank, one allreduce."""
    if comm is None:
        return record
    return comm.allreduce_gradients(params, record)


def gpu_losses_across_ranks(comm, first_bad, record):
    """On the GPU: the first bad step of any rank, and the record's losses averaged over the ranks.

    On the CPU :meth:`~scratchgan.app.distributed.Communicator.allreduce_gradients`
    averages the losses with the gradients at each update; on the GPU
    they stay on the device until logged, so the ranks exchange them
    here, on the steps that check (the same steps on every rank), and all
    stop together when any rank's loss was not finite.
    """
    keys = [k for k in (record or {}) if k.startswith(("d_", "g_"))]  # the losses and mean outputs
    everyone = comm.allgather_object((int(first_bad), [record[k] for k in keys]))
    bad = [b for b, _ in everyone if b >= 0]
    if record is not None:
        means = [float(np.mean([values[i] for _, values in everyone])) for i in range(len(keys))]
        record = {**record, **dict(zip(keys, means))}
    return (min(bad) if bad else -1), record
