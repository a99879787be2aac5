"""The bookkeeping of a training run: its lock, metrics file, progress bar and Ctrl-C flag.

* :class:`RunLock`: one writer per run folder (``run.lock``, an
  ``fcntl.flock`` lock that dies with its process, holding the PID and host);
* the metrics file (``metrics.jsonl``): one JSON record per logged step,
  appended as training goes (:func:`append_jsonl`, :func:`read_jsonl`), cut
  back to the checkpoint's step on resume (:func:`truncate_metrics`);
* :func:`atomic_path` and :func:`write_text_atomic`: a file is replaced only
  once its new content is complete (a temporary file, then ``os.replace``);
* :func:`check_writable`: the run folder can be written, checked before any
  work is done;
* :func:`progress_bar`: a tqdm bar on a terminal, nothing in logs;
* :class:`InterruptFlag`: SIGINT becomes a flag checked between steps.

Nothing here knows of the engine or of the networks.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import secrets
import signal
import socket
import sys
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["LOCK", "METRICS", "InterruptFlag", "RunLock", "RunLockedError", "append_jsonl", "atomic_path",
           "check_writable", "progress_bar", "read_jsonl", "remove_temp_files", "truncate_metrics",
           "write_text_atomic"]

#: The metrics file of a run folder.
METRICS = "metrics.jsonl"
#: The lock file of a run folder (present while a writer holds it, or left by one that was killed).
LOCK = "run.lock"
_TMP_SUFFIX = ".tmp"
#: flock's errors on file systems without locks (some network file systems): the lock falls back to the PID check.
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


# --------------------------------------------------------------------------- the writer's lock


class RunLockedError(RuntimeError):
    """Another process holds the lock of a run folder."""


def _host() -> str:
    return socket.gethostname()


def _pid_alive(pid) -> bool:
    """Whether a process ``pid`` exists on this host (True when unsure)."""
    if not isinstance(pid, int) or pid <= 0:  # kill(0) and kill(-n) would signal process groups
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, under another user
        return True
    try:  # Linux: a killed process that nobody has reaped yet (a zombie) is gone too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _describe_holder(record: dict | None) -> str:
    if not record:
        return "a process that has not recorded itself yet"
    text = f"PID {record.get('pid', '?')} on host {record.get('host', '?')}"
    if record.get("started"):
        text += f" since {record['started']}"
    if record.get("command"):
        text += f": {record['command']}"
    return text


class RunLock:
    """One writer per run folder: an exclusive ``fcntl.flock`` on ``FOLDER/run.lock``.

    Why ``flock`` rather than ``O_CREAT | O_EXCL``: the kernel drops the lock
    when its process ends, however it ends (SIGKILL, a crash, a power cut of
    the process), so there is no stale lock to judge; an ``O_EXCL`` file
    outlives a killed process and must be judged by its PID, which can be
    reused. The file holds the holder's PID, host, start time and command
    (JSON), so a refused writer can be told who holds the folder. A file left
    by a killed process names a dead PID and holds no lock: it is taken over
    and :attr:`note` says so.

    On a file system without locks (``flock`` fails with ENOLCK, EOPNOTSUPP,
    ...) or without ``fcntl`` (Windows) the lock falls back to that PID
    check: the folder is refused while its file names a live process on this
    host or any process on another host, and taken over when it names a dead
    one (best effort: two writers starting in the same instant can both win).

    The lock belongs to one open file: a second ``RunLock`` on the same
    folder is refused even in the same process. Child processes started
    with ``subprocess`` do not inherit it; a ``fork`` without ``exec`` does
    (the lock then lasts until both have closed it).

    Use it as a context manager, or call :meth:`acquire` and :meth:`release`.
    The file is removed on release.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        #: A line about a stale lock that :meth:`acquire` took over (None when there was none).
        self.note: str | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> dict | None:
        """The record in the lock file (``pid``, ``host``, ``started``, ``command``), or None."""
        try:
            text = self.path.read_text()
        except OSError:
            return None
        try:
            record = json.loads(text)
        except ValueError:
            return None
        return record if isinstance(record, dict) else None

    def acquire(self) -> RunLock:
        """Take the lock (creating the folder if needed) or raise :class:`RunLockedError` naming its holder.

        Other failures (the folder cannot be created or written) raise ``OSError``.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                locked = self._flock(fd)
            except BaseException:
                os.close(fd)
                raise
            if not locked:  # no file locks here: judge the recorded holder by its PID
                self._check_holder_by_pid()
                break
            # the holder we waited on may have removed the file between our open and our flock:
            # then we lock a file that is no longer the lock file, and must start again
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd = fd
        previous = self.holder()
        self.note = None
        if previous:
            alive = previous.get("host") == _host() and _pid_alive(previous.get("pid"))
            why = "holds no lock any more" if alive else "no longer exists"
            self.note = (f"note: took over the stale lock of {self.folder}, whose writer {why} "
                         f"({_describe_holder(previous)})")
        record = {"pid": os.getpid(), "host": _host(),
                  "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                  "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else ""}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(record) + "\n").encode())
        return self

    def _flock(self, fd) -> bool:
        """Lock ``fd``; False when this file system has no locks; RunLockedError when another holds it."""
        if fcntl is None:  # pragma: no cover - Windows
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._refusal() from None
        except OSError as exc:
            if exc.errno in _NO_LOCKS:
                return False
            raise
        return True

    def _check_holder_by_pid(self) -> None:
        record = self.holder()
        if not record or record.get("pid") == os.getpid() and record.get("host") == _host():
            return
        if record.get("host") != _host() or _pid_alive(record.get("pid")):
            raise self._refusal(record)

    def _refusal(self, record=None) -> RunLockedError:
        for _ in range(20):  # a holder that has just taken the lock writes its record a moment later
            record = record or self.holder()
            if record:
                break
            time.sleep(0.01)
        return RunLockedError(f"run folder {self.folder} is being written by another process "
                              f"({_describe_holder(record)}); one writer at a time: wait for it to finish or stop it, "
                              "or choose another folder")

    def release(self) -> None:
        """Remove the lock file and drop the lock (nothing when it is not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            # remove before unlocking: a waiter that locks the removed file sees it is gone and starts again
            if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                os.unlink(self.path)
        except OSError:
            pass
        finally:
            os.close(fd)  # drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc) -> bool:
        self.release()
        return False

    def __del__(self):
        fd = getattr(self, "_fd", None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


# --------------------------------------------------------------------------- files


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path next to ``path`` to write to; on success it replaces ``path``, on failure it is removed.

    ``with atomic_path(p) as tmp: write(tmp)``: a write that fails halfway
    (a full disk, a lost permission) leaves the previous ``path`` as it was.
    The temporary name is ``.NAME.RANDOM.tmp`` (see :func:`remove_temp_files`).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}{_TMP_SUFFIX}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_text_atomic(path, text: str) -> None:
    """Replace ``path``'s content by ``text`` all at once (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def remove_temp_files(folder, names) -> list:
    """Remove the temporary files that killed writes of ``folder/NAME`` left (``.NAME.*.tmp``); returns them.

    Only call it while holding the folder's :class:`RunLock`: it would delete another writer's file in progress.
    """
    removed = []
    for name in names:
        for tmp in Path(folder).glob(f".{name}.*{_TMP_SUFFIX}"):
            try:
                tmp.unlink()
                removed.append(tmp)
            except FileNotFoundError:
                pass
    return removed


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and write (then delete) a probe file in it; raises ``OSError`` if it cannot.

    The probe's name is unique, so that two processes checking the same folder do not delete each other's.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".write-test.{os.getpid()}.{secrets.token_hex(4)}"
    probe.write_text("ok")
    probe.unlink()


def _write_all(f, data: bytes) -> None:
    """Write ``data`` to the unbuffered file ``f`` (a seam for tests that simulate a failing write)."""
    view = memoryview(data)
    while view:
        view = view[f.write(view):]


def append_jsonl(path: Path, record: dict) -> None:
    """Append ``record`` to ``path`` as one JSON line, all or nothing.

    The file is unbuffered, so a write that fails halfway (a full disk) is
    known at once and cut back off: the file keeps its complete lines only,
    and the ``OSError`` is raised.
    """
    line = (json.dumps(record) + "\n").encode()
    with open(path, "ab", buffering=0) as f:
        start = f.seek(0, os.SEEK_END)
        try:
            _write_all(f, line)
        except BaseException:
            try:
                f.truncate(start)  # freeing bytes works on a full disk
            except OSError:
                pass  # then read_jsonl skips the cut last line
            raise


def _parse_lines(text: str, path) -> list:
    """The records of a JSON-lines text; a last line cut off by a failed or killed append is skipped."""
    lines = text.split("\n")
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:  # no newline after it: an append that never finished
                break
            raise ValueError(f"{path}: line {i + 1} is not JSON: {line[:80]!r}") from None
    return records


def read_jsonl(path: Path) -> list:
    """Every record of a JSON-lines file (``[]`` when it does not exist; a cut-off last line is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    return _parse_lines(path.read_text(), path)


def truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop the records written after ``step`` (the checkpoint's) so that none appear twice.

    The file is rewritten atomically (:func:`write_text_atomic`); a last line
    cut off by a failed append goes too.
    """
    path = Path(path)
    if not path.exists():
        return
    records = [r for r in read_jsonl(path) if r.get("step", 0) <= step]
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records))


def progress_bar(start: int, total: int, enabled: bool | None):
    """A tqdm bar from ``start`` to ``total`` steps, or None.

    ``enabled``: False gives None; True always a bar; None a bar on a
    terminal only, nothing in logs and CI (tqdm's ``disable=None``).
    """
    if enabled is False:
        return None
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(total=total, initial=start, unit="step", disable=None if enabled is None else not enabled,
                dynamic_ncols=True, leave=False)


class InterruptFlag:
    """Turn SIGINT into a flag checked between steps, so a step never stops halfway.

    A context manager: inside it, Ctrl-C sets :attr:`raised` and a second
    Ctrl-C raises ``KeyboardInterrupt`` at once; the previous handler comes
    back on exit. Outside the main thread signals are left alone.
    """

    def __init__(self):
        self.raised = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.raised:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.raised = True

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False
