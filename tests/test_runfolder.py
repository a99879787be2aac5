"""Run folders never lose work: no silent overwrite, one writer at a time, a failing disk survived.

Each case runs against the real code paths: the command line (in-process, or a
second real process for the lock), the Trainer API, and writes made to fail
halfway with ENOSPC through the seams ``checkpoint._write_npz`` and
``runlog._write_all``.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from scratchgan.app import checkpoint, runlog
from scratchgan.app.checkpoint import load_checkpoint
from scratchgan.app.cli import main
from scratchgan.app.config import ConfigError, TrainConfig
from scratchgan.app.train import ResumeStepsError, RunExistsError, RunWarning, SaveError, Trainer, TrainingError

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--g-hidden", "16", "--d-hidden", "16", "--z-dim", "4", "--batch-size", "32", "--quiet",
        "--eval-samples", "200", "--log-every", "1"]
POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and fcntl locks")


def tiny(**overrides) -> TrainConfig:
    base = dict(data="grid25", z_dim=4, g_hidden=(16,), d_hidden=(16,), batch_size=32, steps=6,
                log_every=1, sample_every=1000, checkpoint_every=1000, eval_samples=200, ema_decay=0.9)
    base.update(overrides)
    return TrainConfig(**base)


def run_cli(capsys, *args):
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder: Path) -> dict:
    """Every file of a folder (hidden ones too) and its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def metric_steps(folder: Path) -> list:
    return [json.loads(line)["step"] for line in (folder / "metrics.jsonl").read_text().splitlines()]


def env():
    return dict(os.environ, PYTHONPATH=str(ROOT))


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --------------------------------------------------------------------------- no silent overwrite


def test_retraining_into_a_used_folder_is_refused_and_touches_nothing(capsys, tmp_path):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--data", "ring8", "--steps", "5", "--out", run, *TINY)
    assert code == 0, err
    before = snapshot(run)
    assert {"checkpoint.npz", "metrics.jsonl", "config.json", "samples.png", "eval.json"} <= set(before)

    code, out, err = run_cli(capsys, "train", "--data", "grid25", "--steps", "5", "--out", run, *TINY)
    assert code == 2
    assert out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"{run} already holds a run (ring8, loss ns, step 5 of 5, finished)" in err
    for choice in ("--resume", "--overwrite", "another --out"):
        assert choice in err
    assert snapshot(run) == before  # byte-identical, and no file added or removed


def test_overwrite_replaces_the_old_run_and_only_its_files(capsys, tmp_path):
    run = tmp_path / "run"
    assert run_cli(capsys, "train", "--data", "ring8", "--steps", "5", "--out", run, *TINY)[0] == 0
    (run / "notes.txt").write_text("mine")
    code, out, err = run_cli(capsys, "train", "--data", "grid25", "--steps", "3", "--out", run, "--overwrite", *TINY)
    assert code == 0, err
    assert "overwriting the run in" in out and "ring8" in out
    assert load_checkpoint(run / "checkpoint.npz")["config"]["data"] == "grid25"
    assert metric_steps(run) == [1, 2, 3]  # the old run's lines are gone, not appended to
    assert json.loads((run / "eval.json").read_text())["data"] == "grid25"
    assert (run / "notes.txt").read_text() == "mine"  # not a run file: kept
    assert not (run / runlog.LOCK).exists()


def test_resume_and_overwrite_exclude_each_other(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--resume", "--overwrite", "--out", tmp_path / "r", *TINY)
    assert code == 2 and "not allowed with argument" in err


def test_default_folder_increments(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "train", "--steps", "2", *TINY)
    assert code == 0, err
    first = Path("runs") / "grid25-ns"
    assert f"run folder {first}" in out
    before = snapshot(first)
    code, out, err = run_cli(capsys, "train", "--steps", "2", *TINY)
    assert code == 0, err
    assert f"run folder {Path('runs') / 'grid25-ns-2'}" in out
    code, out, err = run_cli(capsys, "train", "--steps", "2", *TINY)
    assert f"run folder {Path('runs') / 'grid25-ns-3'}" in out
    assert snapshot(first) == before
    assert sorted(p.name for p in Path("runs").iterdir()) == ["grid25-ns", "grid25-ns-2", "grid25-ns-3"]
    # a start that fails leaves no empty folder behind
    code, _, err = run_cli(capsys, "train", "--data", "mnist", "--data-path", tmp_path / "nowhere", *TINY)
    assert code == 1 and not (Path("runs") / "mnist-ns").exists()


def test_python_api_refuses_a_used_folder_unless_told(tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(steps=3), run).run(progress=False)
    before = snapshot(run)
    with pytest.raises(RunExistsError, match=r"already holds a run \(grid25, loss ns, step 3 of 3, finished\); "
                                             r"continue it with Trainer.resume"):
        Trainer(tiny(steps=3, seed=1), run)
    assert snapshot(run) == before
    # the check is made again under the lock: a folder used after the constructor looked is refused too
    late = tmp_path / "late"
    waiting = Trainer(tiny(steps=2), late)
    Trainer(tiny(steps=2, seed=5), late).run(progress=False)
    used = snapshot(late)
    with pytest.raises(RunExistsError):
        waiting.run(progress=False)
    assert snapshot(late) == used
    # overwrite=True replaces it; resume continues it
    Trainer(tiny(steps=2, seed=1), run, overwrite=True).run(progress=False)
    assert load_checkpoint(run / "checkpoint.npz")["step"] == 2 and metric_steps(run) == [1, 2]
    resumed = Trainer.resume(run, steps=4)
    resumed.run(progress=False)
    assert metric_steps(run) == [1, 2, 3, 4]
    # a Trainer may run again after an interruption: the folder's run is its own
    resumed.config = dataclasses.replace(resumed.config, steps=5)
    resumed.run(progress=False)
    assert load_checkpoint(run / "checkpoint.npz")["step"] == 5


def test_resume_refuses_a_checkpoint_another_process_wrote_since(tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(steps=2, checkpoint_every=1), run).run(progress=False)
    stale = Trainer.resume(run, steps=4)
    Trainer.resume(run, steps=3).run(progress=False)
    ahead = snapshot(run)["checkpoint.npz"]
    with pytest.raises(TrainingError, match="changed since this Trainer loaded"):
        stale.run(progress=False)
    assert (run / "checkpoint.npz").read_bytes() == ahead


def test_resume_past_the_planned_steps_says_once_what_it_changes(capsys, tmp_path):
    """24 steps, then --resume --steps 48: one line, both counts, the decay and the EMA fitted to 24 steps."""
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--out", run, "--steps", "24", *TINY)  # toy recipe: linear decay
    assert code == 0 and "warning" not in err, err
    assert load_checkpoint(run / "checkpoint.npz")["config"]["ema_decay"] == 0.5  # 1 - 12/24, the recipe's cap
    code, out, err = run_cli(capsys, "train", "--resume", "--out", run, "--steps", "48", *TINY)
    assert code == 0, err
    lines = [line for line in err.splitlines() if "extending" in line]
    assert lines == [line for line in err.splitlines() if line.strip()] and len(lines) == 1, err
    assert lines[0].startswith("scratchgan: warning: extending the run from 24 to 48 steps: the learning-rate "
                               "decay now ends at step 48 instead of 24 (lr_g 8.3e-05 at step 24, 0.001 at step 25)")
    assert "G's EMA keeps the decay 0.5 fitted to 24 steps (a 48-step run has 0.75)" in lines[0]
    assert lines[0].endswith("the result differs from a straight 48-step run (for that, start a new run with "
                             "--steps 48)")
    assert "resuming" in out and load_checkpoint(run / "checkpoint.npz")["step"] == 48
    # the run is now planned for 48: resuming it there again (to evaluate) says nothing
    code, _, err = run_cli(capsys, "train", "--resume", "--out", run, "--steps", "48", *TINY)
    assert code == 0 and err == "", err


def test_python_resume_past_the_planned_steps_warns_once_and_only_when_something_was_fitted(tmp_path):
    Trainer(tiny(steps=4), tmp_path / "toy").run(progress=False)  # linear decay over 4 steps; the EMA (0.9) is given
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trainer.resume(tmp_path / "toy", steps=8)
    assert [str(w.message) for w in caught] == [
        "extending the run from 4 to 8 steps: the learning-rate decay now ends at step 8 instead of 4 (lr_g 0.0005 "
        "at step 4, 0.001 at step 5); the result differs from a straight 8-step run (for that, start a new run "
        "with --steps 8)"]
    assert caught[0].category is RunWarning and caught[0].filename == __file__
    # the extension is the straight run's continuation, and nothing is said: a constant rate and a given EMA; a
    # decay planned to end at the new steps already; a run that has not trained yet (a checkpoint at step 0)
    Trainer(tiny(steps=4, lr_decay="none"), tmp_path / "flat").run(progress=False)
    Trainer(tiny(steps=4, lr_decay_steps=8), tmp_path / "planned").run(progress=False)
    Trainer(tiny(steps=4), tmp_path / "unstarted").save()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer.resume(tmp_path / "flat", steps=8)
        Trainer.resume(tmp_path / "planned", steps=8)
        Trainer.resume(tmp_path / "unstarted", steps=8)
        Trainer.resume(tmp_path / "toy", steps=4)  # its own steps: nothing to say either


def test_resume_to_fewer_steps_than_done_is_refused_and_changes_nothing(capsys, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(steps=4), run).run(progress=False)
    before = snapshot(run)
    with pytest.raises(ResumeStepsError, match=r"cannot resume .* to 3 steps: its run has done 4 already .*"
                                               r"ask for 4 steps or more, or start a new run") as caught:
        Trainer.resume(run, steps=3)
    assert (caught.value.done, caught.value.asked) == (4, 3) and isinstance(caught.value, ConfigError)
    assert snapshot(run) == before
    code, out, err = run_cli(capsys, "train", "--resume", "--out", run, "--steps", "2", *TINY)
    assert code == 2 and out == "", out
    assert err.startswith("scratchgan train: error: argument --steps: cannot resume ") and err.count("\n") == 1
    assert "to 2 steps: its run has done 4 already (of the 4 it was planned for)" in err
    assert snapshot(run) == before  # checkpoint, metrics, config, pictures, evaluation: byte for byte
    # as many steps as done: nothing to train, the run is evaluated again
    code, out, err = run_cli(capsys, "train", "--resume", "--out", run, "--steps", "4", *TINY)
    assert code == 0 and err == "" and "resuming" in out and "0 of 4 steps" in out
    assert load_checkpoint(run / "checkpoint.npz")["step"] == 4


# --------------------------------------------------------------------------- one writer at a time


_HOLDER = textwrap.dedent("""
    import sys
    from scratchgan.app.runlog import RunLock
    with RunLock(sys.argv[1]):
        print("held", flush=True)
        sys.stdin.read()  # until the test closes our stdin
""")


@POSIX
def test_lock_held_by_another_process_is_refused_naming_it(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path / "run")], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env())
    try:
        assert child.stdout.readline().strip() == "held"
        lock = runlog.RunLock(tmp_path / "run")
        with pytest.raises(runlog.RunLockedError, match=f"PID {child.pid} on host {socket.gethostname()}"):
            lock.acquire()
        assert not lock.held
    finally:
        child.stdin.close()  # the child leaves its `with` block: released, file removed
        child.wait(timeout=30)
    assert child.returncode == 0
    with runlog.RunLock(tmp_path / "run") as lock:  # no stale file to judge, so no note
        assert lock.held and lock.note is None
        record = json.loads(lock.path.read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    assert not lock.path.exists()


def test_lock_is_one_per_folder_within_a_process_and_released_on_errors(tmp_path):
    first = runlog.RunLock(tmp_path).acquire()
    with pytest.raises(runlog.RunLockedError, match=f"PID {os.getpid()}"):
        runlog.RunLock(tmp_path).acquire()
    first.release()
    with pytest.raises(ZeroDivisionError):
        with runlog.RunLock(tmp_path):
            1 / 0
    assert not (tmp_path / runlog.LOCK).exists()
    runlog.RunLock(tmp_path).acquire().release()


@POSIX
def test_second_concurrent_training_is_refused_then_sigkill_leaves_a_lock_that_is_taken_over(capsys, tmp_path):
    """A real training process holds the folder: a second writer is refused, readers are not; SIGKILL frees it."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "scratchgan.app.cli", "train", "--out", str(run), "--steps", "1000000",
                             "--checkpoint-every", "5", *TINY], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env())
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (run / "checkpoint.npz").exists():
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        for extra in (["--resume"], ["--overwrite"]):
            code, out, err = run_cli(capsys, "train", "--out", run, "--steps", "3", *extra, *TINY)
            assert code == 1, out + err
            assert f"is being written by another process (PID {proc.pid} on host {socket.gethostname()}" in err
            assert len(err.strip().splitlines()) == 1
        # sample and eval only read: they take no lock and run while it trains
        code, _, err = run_cli(capsys, "sample", "--run", run, "-n", "5", "--out", tmp_path / "s.npy")
        assert code == 0, err
    finally:
        proc.kill()  # SIGKILL: no handler runs, the lock file stays behind
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert json.loads((run / runlog.LOCK).read_text())["pid"] == proc.pid
    step = load_checkpoint(run / "checkpoint.npz")["step"]
    code, out, err = run_cli(capsys, "train", "--resume", "--out", run, "--steps", str(step + 2), *TINY)
    assert code == 0, err
    assert f"took over the stale lock of {run}, whose writer no longer exists (PID {proc.pid}" in err
    assert load_checkpoint(run / "checkpoint.npz")["step"] == step + 2
    assert not (run / runlog.LOCK).exists()


def test_stale_lock_file_naming_a_dead_pid_is_taken_over(capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    pid = dead_pid()
    (run / runlog.LOCK).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "yesterday",
                                               "command": "scratchgan train"}) + "\n")
    code, _, err = run_cli(capsys, "train", "--out", run, "--steps", "2", *TINY)
    assert code == 0, err
    assert f"took over the stale lock of {run}, whose writer no longer exists (PID {pid} on host" in err
    assert not (run / runlog.LOCK).exists()  # released at the end


def test_lock_without_file_locks_falls_back_to_the_pid(tmp_path, monkeypatch):
    monkeypatch.setattr(runlog, "fcntl", None)  # as on Windows or a file system without locks
    folder = tmp_path / "run"
    folder.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / runlog.LOCK).write_text(json.dumps({"pid": live.pid, "host": socket.gethostname()}))
        with pytest.raises(runlog.RunLockedError, match=f"PID {live.pid}"):
            runlog.RunLock(folder).acquire()
        (folder / runlog.LOCK).write_text(json.dumps({"pid": live.pid, "host": "elsewhere"}))
        with pytest.raises(runlog.RunLockedError, match="on host elsewhere"):
            runlog.RunLock(folder).acquire()
    finally:
        live.kill()
        live.wait()
    (folder / runlog.LOCK).write_text(json.dumps({"pid": live.pid, "host": socket.gethostname()}))
    with runlog.RunLock(folder) as lock:
        assert "no longer exists" in lock.note


def test_sample_and_eval_take_no_lock_and_need_no_write_access(capsys, tmp_path, monkeypatch):
    run = tmp_path / "run"
    assert run_cli(capsys, "train", "--steps", "2", "--out", run, *TINY)[0] == 0
    before = snapshot(run)

    def no_writes(folder):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(runlog, "check_writable", no_writes)
    with runlog.RunLock(run):  # a writer holds the folder
        code, _, err = run_cli(capsys, "eval", "--run", run, "-n", "50")
        assert code == 0, err
        code, _, err = run_cli(capsys, "sample", "--run", run, "-n", "3", "--out", tmp_path / "s.npy")
        assert code == 0, err
    assert snapshot(run) == before
    reader = Trainer.load(run)
    with pytest.raises(TrainingError, match="writes nothing"):
        reader.run(progress=False)


# --------------------------------------------------------------------------- a full or failing disk


class _HalfThenFull:
    """A file whose writes stop with ENOSPC after ``limit`` bytes (the bytes before it are written)."""

    def __init__(self, f, limit):
        self._f, self._left = f, limit

    def write(self, data):
        data = bytes(data)
        if len(data) >= self._left:
            self._f.write(data[: self._left])
            raise OSError(errno.ENOSPC, "No space left on device")
        self._left -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)


def test_failed_checkpoint_save_keeps_the_previous_one_and_names_the_safe_step(tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(tiny(steps=10, checkpoint_every=2), run)
    real_write = checkpoint._write_npz

    def write(f, arrays):
        if trainer.step == 6:  # the third save runs out of space halfway
            size = sum(a.nbytes for a in arrays.values())
            return real_write(_HalfThenFull(f, size // 2), arrays)
        return real_write(f, arrays)

    monkeypatch.setattr(checkpoint, "_write_npz", write)
    with pytest.raises(SaveError) as info:
        trainer.run(progress=False)
    message = str(info.value)
    assert f"could not write the checkpoint {run / 'checkpoint.npz'} at step 6: No space left on device" in message
    assert "step 4 is safe" in message and f"scratchgan train --resume --out {run}" in message
    assert info.value.safe_step == 4
    assert load_checkpoint(run / "checkpoint.npz")["step"] == 4  # the previous checkpoint, loadable
    assert metric_steps(run) == [1, 2, 3, 4, 5, 6]  # intact: every line complete
    # no temporary file left, and the lock released
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.npz", "config.json", "metrics.jsonl"]
    monkeypatch.undo()
    Trainer.resume(run).run(progress=False)  # the safe step continues
    assert load_checkpoint(run / "checkpoint.npz")["step"] == 10
    assert metric_steps(run) == list(range(1, 11))


def test_failed_checkpoint_is_one_line_from_the_command(capsys, tmp_path, monkeypatch):
    def full(f, arrays):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "_write_npz", full)
    code, _, err = run_cli(capsys, "train", "--steps", "3", "--out", tmp_path / "run", *TINY)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "could not write the checkpoint" in err and "no checkpoint was saved yet, so no step is safe" in err


def test_failed_metrics_append_keeps_complete_lines_and_stops(tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(tiny(steps=10, checkpoint_every=2), run)
    real = runlog._write_all

    def write_all(f, data):
        if trainer.step == 5:
            real(f, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(f, data)

    monkeypatch.setattr(runlog, "_write_all", write_all)
    with pytest.raises(SaveError, match=r"could not write the metrics file .* at step 5: No space left on device.*"
                                        r"step 4 is safe"):
        trainer.run(progress=False)
    assert (run / "metrics.jsonl").read_text().endswith("\n")  # the half line was cut off
    assert metric_steps(run) == [1, 2, 3, 4]
    assert load_checkpoint(run / "checkpoint.npz")["step"] == 4


def test_metrics_with_a_cut_last_line_still_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "d_lo')  # an append killed halfway
    assert [r["step"] for r in runlog.read_jsonl(path)] == [1, 2]
    runlog.truncate_metrics(path, 2)
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n'
    path.write_text('{"step": 1}\n{"st\n{"step": 3}\n')  # damage in the middle is not hidden
    with pytest.raises(ValueError, match="line 2"):
        runlog.read_jsonl(path)


def test_failed_picture_warns_and_the_run_goes_on(tmp_path, monkeypatch):
    from scratchgan.app import plots

    def denied(path, *args, **kwargs):
        Path(path).write_bytes(b"half a png")
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(plots, "save_toy_scatter", denied)
    run = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = Trainer(tiny(steps=4, sample_every=2), run).run(progress=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, RunWarning)]
    assert len(messages) == 3 and "could not write the pictures" in messages[0] and "Permission denied" in messages[0]
    assert result["step"] == 4 and load_checkpoint(run / "checkpoint.npz")["step"] == 4
    assert not (run / "samples.png").exists()
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # the half-written picture was removed


def test_failed_picture_keeps_the_previous_one(tmp_path, monkeypatch):
    from scratchgan.app import plots

    run = tmp_path / "run"
    trainer = Trainer(tiny(steps=2), run)
    trainer.run(progress=False)
    before = (run / "samples.png").read_bytes()
    real = plots.save_toy_scatter

    def half(path, *args, **kwargs):
        real(path, *args, **kwargs)
        with open(path, "r+b") as f:
            f.truncate(100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(plots, "save_toy_scatter", half)
    with pytest.raises(OSError):
        trainer.save_pictures()
    assert (run / "samples.png").read_bytes() == before
