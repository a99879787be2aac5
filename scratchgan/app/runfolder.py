"""A run's folder: which files it holds, its lock, and writes that never lose work.

The outputs of a run, in its folder: ``config.json``, ``metrics.jsonl``,
``checkpoint.npz``, ``samples.png``, ``losses.png`` and ``eval.json``
(:data:`RUN_FILES`). The folder never loses work (docs/training.md, "The run
folder"): a new run refuses a folder that holds one (:class:`RunExistsError`)
unless told to overwrite it; a run writes only while holding the folder's
:class:`~scratchgan.app.runlog.RunLock` (:meth:`RunFolder.writing`); every
file is replaced atomically or appended whole, and a write that fails stops
the run with a :class:`SaveError` naming the last safe step.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import warnings
from pathlib import Path

from . import runlog
from .checkpoint import CheckpointError, load_checkpoint
from .runlog import METRICS

__all__ = ["CHECKPOINT", "RUN_FILES", "RunExistsError", "RunFolder", "RunWarning", "SaveError", "TrainingError",
           "file_signature", "lock_run_folder", "os_reason", "run_summary"]

CHECKPOINT = "checkpoint.npz"
#: The files of a run in its folder: a folder holding any of them holds a run; ``overwrite`` removes them (and
#: nothing else), the checkpoint last.
RUN_FILES = ("eval.json", "samples.png", "losses.png", "config.json", METRICS, CHECKPOINT)


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, an unusable output folder)."""


class RunExistsError(TrainingError):
    """A new run was pointed at a folder that already holds one (see :func:`run_summary`)."""

    def __init__(self, folder, summary: str, message: str):
        super().__init__(message)
        self.folder, self.summary = Path(folder), summary
        self.resumable = (self.folder / CHECKPOINT).is_file()


class SaveError(TrainingError):
    """Writing a file of the run failed (a full disk, a lost permission): the run stopped.

    ``path`` is the file, ``step`` the step the run had reached, ``safe_step``
    the step of the last good checkpoint on disk (None when none was saved).
    """

    def __init__(self, message: str, path, step: int, safe_step: int | None):
        super().__init__(message)
        self.path, self.step, self.safe_step = Path(path), step, safe_step


class RunWarning(UserWarning):
    """Something of a run went wrong without stopping it (a picture that could not be written, a stale lock)."""


def run_summary(out_dir) -> str | None:
    """A few words on the run that ``out_dir`` holds (data set, loss, step), or None when it holds none.

    A folder holds a run when any of :data:`RUN_FILES` is in it. The step is
    the checkpoint's (the step a resume starts from); ``finished`` means
    ``eval.json`` was written.
    """
    folder = Path(out_dir)
    if not any((folder / name).is_file() for name in RUN_FILES):
        return None
    config, step, unreadable = {}, None, False
    path = folder / CHECKPOINT
    if path.is_file():
        try:
            tree = load_checkpoint(path)
            step, config = int(tree["step"]), tree.get("config") or {}
        except (CheckpointError, KeyError, TypeError, ValueError):
            unreadable = True
    if not isinstance(config, dict) or not config:
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            config = {}
    config = config if isinstance(config, dict) else {}
    text = f"{config.get('data', 'unknown data')}, loss {config.get('loss', 'unknown')}, "
    if unreadable:
        text += "an unreadable checkpoint"
    elif step is None:
        text += "no checkpoint yet"
    else:
        text += f"step {step}" + (f" of {config['steps']}" if config.get("steps") else "")
    if (folder / "eval.json").is_file():
        text += ", finished"
    return text


def lock_run_folder(out_dir) -> runlog.RunLock:
    """Take the writer's lock of a run folder (created if missing); see :class:`~scratchgan.app.runlog.RunLock`.

    Raises :class:`~scratchgan.app.runlog.RunLockedError` when another process
    holds it and :class:`TrainingError` when the folder cannot be written.
    """
    lock = runlog.RunLock(out_dir)
    try:
        return lock.acquire()
    except OSError as exc:
        raise TrainingError(f"cannot write to the output folder {out_dir}: {exc.strerror or exc}; "
                            "choose another with --out") from None


def file_signature(path: Path):
    """What changes when a file is replaced or rewritten (None when it does not exist)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def os_reason(exc: OSError) -> str:
    """An ``OSError`` in a few words, with its errno's name (``No space left on device [ENOSPC]``)."""
    name = errno.errorcode.get(exc.errno) if exc.errno else None
    return f"{exc.strerror or exc}" + (f" [{name}]" if name else "")


class RunFolder:
    """The folder of one run, as its Trainer writes it.

    Parameters
    ----------
    out_dir : path
    mode : str
        "new" (refuse a folder that holds a run), "overwrite" (remove the old
        run's :data:`RUN_FILES` at the first write), "resume" (the folder's
        run is ours: refuse to write when another process replaced its
        checkpoint) or "read" (write nothing).
    lock : RunLock, optional
        The folder's lock, already held by the caller; without it
        :meth:`writing` takes one for the time it writes.
    writer : bool
        False on the ranks > 0 of a data-parallel run: they write nothing.
    """

    def __init__(self, out_dir, mode: str, lock: runlog.RunLock | None = None, writer: bool = True):
        self.path, self.mode, self.lock, self.writer = Path(out_dir), mode, lock, writer
        self.active_lock = None
        self.saved_step = None  # the step of the checkpoint on disk that this run wrote or loaded
        self.checkpoint_signature = None  # that file's (inode, size, mtime), to notice another writer
        if lock is not None and Path(os.path.abspath(lock.folder)) != Path(os.path.abspath(self.path)):
            raise ValueError(f"the lock is for {lock.folder}, not for the run folder {self.path}")
        if mode == "new" and writer:
            self.refuse_existing_run()
        if mode != "read" and writer:
            try:
                runlog.check_writable(self.path)
            except OSError as exc:
                raise TrainingError(f"cannot write to the output folder {self.path}: {exc.strerror or exc}; "
                                    "choose another with --out") from None

    def refuse_existing_run(self) -> None:
        """Raise :class:`RunExistsError` when the folder holds a run."""
        summary = run_summary(self.path)
        if summary is None:
            return
        out = str(self.path)
        resume = f"continue it with Trainer.resume({out!r}), " if (self.path / CHECKPOINT).is_file() else ""
        raise RunExistsError(self.path, summary,
                             f"{out} already holds a run ({summary}); {resume}replace it with "
                             f"Trainer(config, {out!r}, overwrite=True), or choose another folder")

    @contextlib.contextmanager
    def writing(self):
        """Hold the folder's lock (the caller's, or one taken here) and claim the folder while writing into it.

        Nested uses (a save inside a run) reuse the outer one. The lock
        taken here is released on the way out, however the block ends.
        """
        if self.mode == "read":
            raise TrainingError(f"this Trainer reads the run in {self.path} (Trainer.load) and writes nothing; "
                                "use Trainer.resume to continue it")
        if self.active_lock is not None or not self.writer:  # nested; or a data-parallel rank > 0 (no files)
            yield
            return
        lock = self.lock if self.lock is not None and self.lock.held else lock_run_folder(self.path)
        own = lock is not self.lock
        if own and lock.note:
            warnings.warn(lock.note, RunWarning, stacklevel=4)
        self.active_lock = lock
        try:
            self._claim()
            yield
        finally:
            self.active_lock = None
            if own:
                lock.release()

    def _claim(self) -> None:
        """With the lock held: refuse another run, remove the run being overwritten, or check ours is unchanged."""
        runlog.remove_temp_files(self.path, RUN_FILES)  # left by writes that were killed; nobody else writes
        if self.mode == "new":
            self.refuse_existing_run()  # again: the folder may have been used since the constructor looked
        elif self.mode == "overwrite":
            for name in RUN_FILES:  # the checkpoint last: a removal that fails keeps what matters most
                try:
                    (self.path / name).unlink(missing_ok=True)
                except OSError as exc:
                    raise TrainingError(f"cannot remove the old run's {name} from {self.path} to overwrite it: "
                                        f"{os_reason(exc)}") from None
        elif file_signature(self.path / CHECKPOINT) != self.checkpoint_signature:
            raise TrainingError(f"the checkpoint in {self.path} changed since this Trainer loaded or wrote it "
                                "(another process wrote it); load it again with Trainer.resume")
        self.mode = "resume"  # from now on the folder's run is this one

    def saved(self, step: int) -> None:
        """Note that the checkpoint on disk now holds ``step`` (and, on the writer, its signature)."""
        self.saved_step = step
        if self.writer:
            self.checkpoint_signature = file_signature(self.path / CHECKPOINT)

    def save_error(self, what: str, path, exc: OSError, step: int) -> SaveError:
        """The error that stops a run whose write of ``what`` failed at ``step``, naming the last safe step."""
        safe = self.saved_step
        if safe is None:
            advice = "no checkpoint was saved yet, so no step is safe: free some space or choose another folder, " \
                     "and start again"
        else:
            advice = (f"the last good checkpoint, {self.path / CHECKPOINT}, is intact and holds step {safe}: "
                      f"step {safe} is safe; free some space, then continue with: scratchgan train --resume "
                      f"--out {self.path}")
        return SaveError(f"could not write {what} {path} at step {step}: {os_reason(exc)}; {advice}",
                         path, step, safe)

    def write_start(self, config_dict: dict, step: int) -> None:
        """At the start of a run: ``config.json``, and the metrics cut back to ``step`` (a resume's)."""
        if not self.writer:  # data-parallel: rank 0 alone writes the run's files
            return
        try:
            runlog.write_text_atomic(self.path / "config.json", json.dumps(config_dict, indent=1) + "\n")
        except OSError as exc:
            raise self.save_error("the config", self.path / "config.json", exc, step) from exc
        try:
            runlog.truncate_metrics(self.path / METRICS, step)
        except OSError as exc:
            raise self.save_error("the metrics file", self.path / METRICS, exc, step) from exc

    def append_metrics(self, record: dict) -> None:
        """One line of ``metrics.jsonl``; a failed append stops the run (the file keeps its complete lines)."""
        try:
            if self.writer:
                runlog.append_jsonl(self.path / METRICS, record)
        except OSError as exc:
            raise self.save_error("the metrics file", self.path / METRICS, exc, record["step"]) from exc

    def write_eval(self, result: dict, step: int) -> None:
        """``eval.json``; a failed write only warns (the checkpoint holds the finished run)."""
        try:
            runlog.write_text_atomic(self.path / "eval.json", json.dumps(result, indent=1) + "\n")
        except OSError as exc:
            warnings.warn(f"could not write {self.path / 'eval.json'}: {os_reason(exc)}; the run is complete "
                          f"(checkpoint at step {step}) and `scratchgan eval --run {self.path}` prints the "
                          "evaluation again", RunWarning, stacklevel=5)
