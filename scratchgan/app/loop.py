"""The run loop of a Trainer: steps, logging, checkpoints, pictures, Ctrl-C, the NaN check and the final evaluation.

:meth:`~scratchgan.app.train.Trainer.run` calls :func:`run` with the run
folder's lock held. The CPU checks every step's losses for NaN or Inf; the
GPU notes on the device the first step whose losses were not finite and reads
that note back only before something is logged or written
(:func:`checked`), so that a step that does not log copies nothing from the
device.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from .. import backend
from . import runlog, sync
from .runfolder import CHECKPOINT, RunWarning, TrainingError, os_reason

__all__ = ["checked", "run", "save_checkpoint", "save_pictures_or_warn", "verify_finite"]


def read_record(record: dict, extra, what: str = "the record of a logged training step") -> tuple[dict, list]:
    """``(record as floats, the values of the 0-d device arrays extra)``, all read back in one transfer."""
    keys = [k for k, v in record.items() if not isinstance(v, (int, float, np.number))]
    arrays = [record[k] for k in keys] + list(extra)
    if not arrays:
        return dict(record), []
    xp = backend.array_module(arrays[0])
    values = backend.to_host(xp.stack([a.astype(np.float64) for a in arrays]), what).tolist()
    return {**record, **dict(zip(keys, values))}, values[len(keys):]


def run(trainer, progress, on_log) -> dict:
    """Train up to ``config.steps`` total steps, checkpointing and drawing on the way; the final evaluation."""
    c, folder = trainer.config, trainer._folder
    folder.write_start(c.to_dict(), trainer.step)
    bar = runlog.progress_bar(trainer.step, c.steps, progress if folder.writer else False)
    clock = [time.perf_counter(), trainer.step]  # when and at which step the loop last logged
    interrupted = runlog.InterruptFlag()
    try:
        with interrupted:
            while trainer.step < c.steps:
                _one_step(trainer, bar, clock, on_log)
                # data-parallel: all ranks stop at the same step when any of them was interrupted
                if interrupted.raised if trainer.comm is None else trainer.comm.any(interrupted.raised):
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        if trainer._on_device:
            verify_finite(trainer)  # the CPU checked every step; the GPU checks before it writes
        save_checkpoint(trainer)
        raise
    finally:
        if bar is not None:
            bar.close()
    return _finish(trainer)


def _one_step(trainer, bar, clock, on_log) -> None:
    """One training step, then its record logged, a checkpoint and the pictures when they are due."""
    c = trainer.config
    log_now = (trainer.step + 1) % c.log_every == 0 or trainer.step + 1 == c.steps
    record = trainer.train_step(with_norms=log_now)
    # the GPU checks the losses (a read back) only before something is written or logged
    writes = log_now or trainer.step % c.checkpoint_every == 0 or trainer.step % c.sample_every == 0
    record = checked(trainer, record, read=log_now, check=writes)
    if bar is not None:
        bar.update(1)
        if not trainer._on_device or log_now:  # the GPU's losses are on the host on logged steps
            bar.set_postfix(d=f"{record['d_loss']:.3f}", g=f"{record['g_loss']:.3f}", refresh=False)
    if log_now:
        now = time.perf_counter()
        record["steps_per_sec"] = (trainer.step - clock[1]) / max(now - clock[0], 1e-9)
        clock[:] = now, trainer.step
        record = {"step": trainer.step, **record}
        trainer._folder.append_metrics(record)
        if on_log is not None:
            on_log(record)
    if trainer.step % c.checkpoint_every == 0:
        save_checkpoint(trainer)
    if trainer.step % c.sample_every == 0:
        save_pictures_or_warn(trainer)


def _finish(trainer) -> dict:
    """The last checkpoint and pictures, then the evaluation (rank 0's, on every rank), written to eval.json."""
    save_checkpoint(trainer)
    save_pictures_or_warn(trainer)
    if not trainer._folder.writer:  # data-parallel rank > 0: rank 0 evaluates; every rank returns its result
        return trainer.comm.bcast_object(None)
    result = trainer.evaluate()
    trainer._folder.write_eval(result, trainer.step)
    return result if trainer.comm is None else trainer.comm.bcast_object(result)


def save_checkpoint(trainer) -> None:
    """Save the checkpoint in the run folder, or stop the run with a SaveError naming the last safe step."""
    if trainer.comm is not None:  # data-parallel: the ranks must hold the same weights (else stop, clearly)
        trainer.comm.check_parameters_agree(trainer.G, trainer.D)
    try:
        trainer.save()
    except OSError as exc:
        folder = trainer._folder
        raise folder.save_error("the checkpoint", folder.path / CHECKPOINT, exc, trainer.step) from exc


def save_pictures_or_warn(trainer) -> None:
    """The pictures, or a warning: a picture that cannot be written does not stop the run."""
    try:
        trainer.save_pictures()
    except OSError as exc:
        warnings.warn(f"could not write the pictures in {trainer.out_dir} at step {trainer.step}: {os_reason(exc)}; "
                      "training goes on (the previous pictures are kept; a resume needs only the checkpoint "
                      "and the metrics)", RunWarning, stacklevel=5)


def checked(trainer, record: dict, read: bool, check: bool) -> dict:
    """Raise :class:`TrainingError` when a loss of the step is NaN or Inf; returns the record.

    The CPU checks every step. The GPU notes on the device the first
    step whose losses were not finite, and reads that note back only when
    ``check`` (a step that logs or writes: no checkpoint, picture or
    metrics line is made of a diverged run, :func:`verify_finite`); with
    ``read`` the record is read back too, in the same transfer, and
    returned as floats.
    """
    if not trainer._on_device:
        if not all(math.isfinite(record[k]) for k in ("d_loss", "g_loss")):
            _diverged(trainer, trainer.step, f"d_loss={record['d_loss']}, g_loss={record['g_loss']}")
        return record
    xp = backend.xp
    if trainer._first_bad is None:
        trainer._first_bad = xp.full((), -1, dtype=np.int64)
    finite = xp.isfinite(record["d_loss"]) & xp.isfinite(record["g_loss"])
    trainer._first_bad = xp.where(~finite & (trainer._first_bad < 0), trainer.step, trainer._first_bad)
    if read:
        return verify_finite(trainer, record)
    if check:
        verify_finite(trainer)
    return record


def verify_finite(trainer, record: dict | None = None) -> dict | None:
    """GPU: raise :class:`TrainingError` when the losses of a step so far were not finite.

    One read back: of the note :func:`checked` keeps on the device, and
    of ``record`` (returned as floats) when one is given.
    """
    if trainer._first_bad is None:  # no step yet
        return record
    if record is not None:
        record, (first_bad,) = read_record(record, [trainer._first_bad])
    else:
        first_bad = backend.host_scalar(trainer._first_bad, "the trainer's check for a NaN or Inf loss")
    if trainer.comm is not None:  # data-parallel: every rank decides on every rank's losses
        first_bad, record = sync.gpu_losses_across_ranks(trainer.comm, first_bad, record)
    if first_bad >= 0:
        now = "" if record is None else f"; at step {trainer.step}: d_loss={record['d_loss']}, " \
                                        f"g_loss={record['g_loss']}"
        _diverged(trainer, int(first_bad), f"found at step {trainer.step}: the GPU checks the losses when the run "
                                           f"logs or writes{now}")
    return record


def _diverged(trainer, step: int, detail: str):
    saved, out = trainer._folder.saved_step, trainer.out_dir
    kept = (f"no checkpoint was saved before it in {out}" if saved is None
            else f"the last good checkpoint (step {saved}) in {out} is kept")
    raise TrainingError(f"loss became NaN or Inf at step {step} ({detail}); {kept}; try a lower learning rate "
                        "or another loss")
