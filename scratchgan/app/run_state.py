"""A Trainer's state as a checkpoint tree, and back; what a resume checks before it loads anything."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

from .checkpoint import CheckpointError, load_checkpoint
from .config import ConfigError, TrainConfig, step_fitted_changes
from .runfolder import CHECKPOINT, RunWarning, file_signature

__all__ = ["ResumeStepsError", "check_resume_steps", "load_trainer_state", "read_run", "trainer_state"]


class ResumeStepsError(ConfigError):
    """A resume asked for fewer steps in total than its run has done (``done``, ``asked``): it cannot shorten a run."""

    def __init__(self, message: str, done: int, asked: int):
        super().__init__(message)
        self.done, self.asked = done, asked


def trainer_state(trainer) -> dict:
    """The checkpoint tree of a Trainer: config, step, RNG streams, networks (EMA copy too) and optimisers."""
    tree = {
        "config": trainer.config.to_dict(),
        "step": trainer.step,
        "rng": {"json": json.dumps(trainer.rng.bit_generator.state)},  # PCG64's 128-bit integers: JSON keeps them
        "G": trainer.G.state_dict(),
        "D": trainer.D.state_dict(),
        "opt_g": trainer.opt_g.state_dict(),
        "opt_d": trainer.opt_d.state_dict(),
    }
    if trainer.G_ema is not None:
        tree["G_ema"] = trainer.G_ema.state_dict()
    if trainer.device_rng is not None:
        tree["device_rng"] = {"json": trainer.device_rng.to_json()}
    return tree


def load_trainer_state(trainer, tree: dict, source="checkpoint") -> None:
    """Restore networks, optimisers, RNG and step from a checkpoint tree (in place)."""
    try:
        trainer.G.load_state_dict(tree["G"])
        trainer.D.load_state_dict(tree["D"])
        if trainer.G_ema is not None:
            trainer.G_ema.load_state_dict(tree["G_ema"])
        trainer.opt_g.load_state_dict(tree["opt_g"])
        trainer.opt_d.load_state_dict(tree["opt_d"])
        trainer.rng.bit_generator.state = json.loads(tree["rng"]["json"])
        # a checkpoint of a CPU run has no device stream: the GPU then goes on with the seed's fresh one
        if trainer.device_rng is not None and "device_rng" in tree:
            trainer.device_rng.set_state(json.loads(tree["device_rng"]["json"]))
        trainer.step = int(tree["step"])
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(
            f"{source} does not match this configuration ({exc}); start a new run folder or fix the options"
        ) from None


def _checkpoint_step(tree: dict) -> int | None:
    """The step of a checkpoint tree, or None when it has none (:func:`load_trainer_state` then says what is wrong)."""
    try:
        return int(tree["step"])
    except (KeyError, TypeError, ValueError):
        return None


def read_run(out_dir, mode: str, steps, overrides: dict, comm=None):
    """``(config, tree, signature)`` of the run in ``out_dir``, with ``steps`` and ``overrides`` applied.

    Data-parallel, rank 0 reads the checkpoint and the others get its config
    (their ``tree`` and ``signature`` are None). A resume first checks
    ``steps`` (:func:`check_resume_steps`).
    """
    path = Path(out_dir) / CHECKPOINT
    reader = comm is None or comm.rank == 0
    signature = tree = None
    if reader:
        signature = file_signature(path)  # before loading: a replacement in between is then noticed, not missed
        tree = load_checkpoint(path)
        if "config" not in tree:
            raise CheckpointError(f"{path}: not a scratchgan training checkpoint (no config); start a new run")
    saved, done = (tree["config"], _checkpoint_step(tree)) if reader else (None, None)
    if comm is not None:
        saved, done = comm.bcast_object((saved, done) if reader else None)
    config = TrainConfig.from_dict(saved)
    if mode == "resume" and steps is not None and done is not None:
        check_resume_steps(config, out_dir, done, steps, warn=reader)
    changes = {k: v for k, v in overrides.items() if v is not None}
    if steps is not None:
        changes["steps"] = steps
    if changes:
        config = dataclasses.replace(config, **changes)
    return config, tree, signature


def check_resume_steps(config: TrainConfig, out_dir, done: int, steps: int, warn: bool) -> None:
    """A resume of the run ``config`` at step ``done`` up to ``steps``: refuse fewer steps, say what more changes."""
    if steps < done:
        raise ResumeStepsError(
            f"cannot resume {out_dir} to {steps} steps: its run has done {done} already (of the {config.steps} it "
            f"was planned for), and a resume only continues a run; ask for {done} steps or more, or start a new run "
            f"of {steps} steps (--overwrite, or another --out)", done, steps)
    changes = step_fitted_changes(config, steps)
    if done == 0:  # nothing trained yet: the decay starts afresh at the new horizon, as a straight run's does
        changes.pop("lr_horizon", None)
    if not (changes and warn):
        return
    parts = []
    if "lr_horizon" in changes:
        old, new = changes["lr_horizon"]
        was, now = config.lr_g * (1 - (done - 1) / old), config.lr_g * (1 - done / new)
        parts.append(f"the learning-rate decay now ends at step {new} instead of {old} (lr_g {was:.2g} at step "
                     f"{done}, {now:.2g} at step {done + 1})")
    if "ema_decay" in changes:
        kept, straight = changes["ema_decay"]
        parts.append(f"G's EMA keeps the decay {kept:.3g} fitted to {config.steps} steps (a {steps}-step run "
                     f"has {straight:.3g})")
    warnings.warn(f"extending the run from {config.steps} to {steps} steps: {', and '.join(parts)}; the result "
                  f"differs from a straight {steps}-step run (for that, start a new run with --steps {steps})",
                  RunWarning, stacklevel=5)
