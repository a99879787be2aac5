"""First contact with a GPU in one command: the CuPy tests, the step benchmarks, a toy run, one report.

Usage::

    python benchmarks/gpu_first_contact.py                          # on a machine with an NVIDIA GPU and CuPy
    python benchmarks/gpu_first_contact.py --out $OUT/report.md     # the report (and its logs) somewhere else
    python benchmarks/gpu_first_contact.py --dry-run --out report.md   # every path on the CPU, under the CuPy stand-in

Nothing needs installing: every part runs in a child process of this Python
(``sys.executable``) with the repository first on ``PYTHONPATH``. The parts,
in the order they run, each with a time limit (a part that fails, hangs or
crashes is reported, and the next one runs):

1. **environment**: the device, the driver and CUDA versions, CuPy, PyTorch,
   NumPy and the other packages the parts use;
2. **update checks**: ``gan_step.py --check-only`` (scratchgan against the
   hand-written step, float64, both on CuPy) and ``dcgan_step.py
   --check-only`` (scratchgan on CuPy against PyTorch on CUDA, float64);
3. **GAN step** and 4. **DCGAN step**: ``gan_step.py`` and ``dcgan_step.py``
   with ``--backend cupy``: scratchgan eager and captured as a CUDA graph
   (:func:`scratchgan.accel.cuda_graph.capture`) against PyTorch CUDA eager and
   PyTorch's CUDA-graph replay, each variant in a worker process of its own,
   interleaved, the GPU synchronised before each clock reading;
5. **toy run**: ``scratchgan train --backend cupy --steps N`` (the default
   toy benchmark) into a temporary folder, with its speed and evaluation;
6. **CuPy tests**: ``python -m pytest -m gpu`` (the tests marked ``gpu``),
   last, in whatever the time budget has left (at least ``--tests-reserve``
   seconds are kept for it while the other parts run), on several workers when
   pytest-xdist is there.

The report (markdown) holds every figure: a summary table, then per part its
status, command, pass counts or timing tables, and for anything that failed
its error and the tail of its output. The whole output of each part is in
the folder beside the report (``<report>-logs/``).

``--dry-run`` runs the same parts under the CuPy stand-in
(``tests/cupy_standin`` first on the children's ``PYTHONPATH``) with tiny
sizes, a few steps and a small subset of the tests: it checks that every path
runs, not how fast (the stand-in is NumPy on the CPU; its timings mean
nothing). PyTorch's CUDA parts then show as "not run: no CUDA". The toy run
also reports the stand-in's transfer counts (``CUPY_STANDIN_REPORT``).

Exit status: 0 when every part passed or was not run, 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")
STANDIN = os.path.join(ROOT, "tests", "cupy_standin")
TAIL_LINES = 60
CLI = "import sys; from scratchgan.app.cli import main; sys.exit(main(sys.argv[1:]))"


# --------------------------------------------------------------------------- sizes


@dataclasses.dataclass
class Settings:
    """Sizes and time limits of one first contact (seconds unless said otherwise)."""

    gan_batches: tuple = (64, 256, 1024, 4096)
    gan_repeats: int = 5
    gan_seconds: float = 0.25
    dcgan_batches: tuple = (64, 256)
    dcgan_repeats: int = 5
    dcgan_seconds: float = 0.4
    pause: float = 0.05  # rest before each repetition (the CPU benchmarks use 0.2 against spinning OpenMP threads)
    calibration_steps: int | None = None  # the benchmarks' own defaults (10 GAN, 3 DCGAN) when None
    min_steps: int | None = None
    worker_timeout: float = 90.0  # one answer of a timing worker: its build, or its capture and calibration
    toy_steps: int = 1000
    pytest_args: tuple = ()  # tests to run (pytest's own arguments); all the tests marked gpu when empty
    pytest_workers: int = 4  # pytest-xdist workers when xdist is installed (0: one process)
    test_timeout: int = 120  # per test, when pytest-timeout is installed (0: none): one hung test costs only itself
    budget: float = 470.0  # the whole first contact, under 8 minutes
    tests_reserve: float = 150.0  # kept for the tests while the parts before them run
    timeouts: dict = dataclasses.field(default_factory=lambda: {
        "environment": 60, "gan check": 60, "dcgan check": 90, "gan step": 150, "dcgan step": 150, "toy run": 120,
        "tests": 300})


def dry_run_settings() -> Settings:
    """Tiny sizes for the stand-in: every path runs in well under a minute on two CPU cores."""
    return Settings(gan_batches=(8,), gan_repeats=1, gan_seconds=0.01, dcgan_batches=(4,), dcgan_repeats=1,
                    dcgan_seconds=0.01, pause=0.0, calibration_steps=1, min_steps=1, worker_timeout=120.0,
                    toy_steps=5, pytest_args=("tests/test_cuda_graph.py",), pytest_workers=0, test_timeout=0,
                    budget=600.0, tests_reserve=0.0,
                    timeouts={"environment": 60, "gan check": 120, "dcgan check": 120, "gan step": 180,
                              "dcgan step": 180, "toy run": 180, "tests": 180})


# --------------------------------------------------------------------------- running children


@dataclasses.dataclass
class Run:
    """What one child process did."""

    name: str
    command: list
    returncode: int | None = None  # None: timed out, or not started
    output: str = ""
    seconds: float = 0.0
    timed_out: bool = False
    limit: float = 0.0
    not_started: str | None = None  # why it did not start

    @property
    def status(self) -> str:
        if self.not_started:
            return f"not run: {self.not_started}"
        if self.timed_out:
            return f"timed out after {self.limit:.0f} s"
        return "passed" if self.returncode == 0 else f"failed (exit status {self.returncode})"

    def tail(self, lines=TAIL_LINES) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])


class Context:
    """Where the children run, with which environment, under which time budget; keeps their logs."""

    def __init__(self, dry_run: bool, settings: Settings, logs: str | None, work: str):
        self.dry_run, self.settings, self.logs, self.work = dry_run, settings, logs, work
        self.start = time.monotonic()
        self.reserved = 0.0  # seconds kept for the parts still to come
        self.facts: dict = {}  # what the environment part found (xdist, torch with CUDA, ...)

    def env(self, extra=None) -> dict:
        """The children's environment: the repository (and under --dry-run the stand-in) first on PYTHONPATH."""
        env = dict(os.environ)
        paths = ([STANDIN] if self.dry_run else []) + [ROOT]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"  # a child stopped at its time limit still leaves what it printed
        env.pop("CUPY_STANDIN_REPORT", None)
        env.update(extra or {})
        return env

    def time_left(self) -> float:
        return self.settings.budget - (time.monotonic() - self.start)

    def run(self, name, argv, extra_env=None, cwd=ROOT) -> Run:
        """Run one child with its time limit (the part's, cut to what the budget leaves), its output merged."""
        timeout = self.settings.timeouts.get(name, 120)
        left = self.time_left() - self.reserved
        run = Run(name, list(argv), limit=min(timeout, left))
        if left < min(timeout, 5):  # too little left for a start worth making
            run.not_started = f"out of the time budget ({self.settings.budget:.0f} s for the whole first contact)"
            return run
        started = time.monotonic()
        with tempfile.TemporaryFile(mode="w+b") as out:
            # a session of its own: at the time limit the whole group goes (the timing workers too)
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=self.env(extra_env), cwd=cwd, start_new_session=True)
            try:
                run.returncode = proc.wait(timeout=run.limit)
            except subprocess.TimeoutExpired:
                run.timed_out = True
                _kill_group(proc)
            run.seconds = time.monotonic() - started
            out.seek(0)
            run.output = out.read().decode(errors="replace")
        self._log(run)
        return run

    def _log(self, run: Run):
        if not self.logs:
            return
        os.makedirs(self.logs, exist_ok=True)
        path = os.path.join(self.logs, re.sub(r"[^A-Za-z0-9_.-]+", "_", run.name) + ".log")
        with open(path, "w") as f:
            f.write(f"$ {shown(run.command)}\n# {run.status}, {run.seconds:.1f} s\n\n{run.output}")


def _kill_group(proc):
    """Stop a timed-out child and everything it started (its own process group), by its id."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def shown(argv) -> str:
    """A command as the report shows it: ``python`` for this interpreter, paths relative to the repository.

    The command line of ``scratchgan`` (run through its ``main``, so that
    nothing needs installing) shows as ``scratchgan``; the environment probe
    by its name.
    """
    if argv[1:3] == ["-c", CLI]:
        return shlex.join(["scratchgan", *argv[3:]])
    if argv[1:3] == ["-c", PROBE]:
        return "python -c <the environment probe, PROBE in benchmarks/gpu_first_contact.py>"
    words = ["python" if a == sys.executable else os.path.relpath(a, ROOT) if os.path.isabs(a) and
             a.startswith(ROOT) else a for a in argv]
    return shlex.join(words)


def python(*args) -> list:
    return [sys.executable, *map(str, args)]


# --------------------------------------------------------------------------- report pieces


@dataclasses.dataclass
class Section:
    """One part of the report."""

    title: str
    status: str = "not run"
    seconds: float = 0.0
    headline: str = ""
    body: list = dataclasses.field(default_factory=list)  # markdown lines

    @property
    def ok(self) -> bool:
        return self.status.startswith(("passed", "not run"))


def code_block(text: str) -> list:
    return ["```", text.replace("```", "'''"), "```"]


def table(header, rows) -> list:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]


def describe_run(run: Run, show_tail: bool | None = None) -> list:
    """The command, its status and time, and (for a failure, or when asked) the tail of its output."""
    lines = [f"`{shown(run.command)}`: **{run.status}**" + (f", {run.seconds:.1f} s" if not run.not_started else "")]
    if show_tail if show_tail is not None else (run.returncode != 0 and not run.not_started):
        lines += ["", "Last lines of its output:", ""] + code_block(run.tail())
    return lines


def lines_starting(text, prefixes) -> list:
    return [line for line in text.splitlines() if line.startswith(prefixes)]


# --------------------------------------------------------------------------- the parts

TITLES = {
    "environment": "Environment",
    "checks": "Update checks on the device (float64)",
    "gan step": "GAN step (gan_step.py --backend cupy)",
    "dcgan step": "DCGAN step (dcgan_step.py --backend cupy)",
    "toy run": "Toy run (scratchgan train --backend cupy)",
    "tests": "CuPy tests (pytest -m gpu)",
}

PROBE = r'''
import importlib, importlib.metadata as md, json, os, platform, shutil, subprocess, sys
info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
def attempt(key, fn):
    try:
        info[key] = fn()
    except Exception as exc:
        info[key] = f"unavailable ({type(exc).__name__}: {exc})"
def device_properties(cupy):
    p = cupy.cuda.runtime.getDeviceProperties(0)
    name = p["name"].decode() if isinstance(p["name"], bytes) else p["name"]
    return f"{name}, {p['totalGlobalMem'] / 2**30:.1f} GiB, compute capability {p['major']}.{p['minor']}, " \
           f"{p['multiProcessorCount']} multiprocessors"
import numpy
info["numpy"] = numpy.__version__
try:
    import cupy
    info["cupy"] = cupy.__version__
    info["cupy is the stand-in"] = hasattr(cupy, "standin")
    attempt("GPU (CuPy)", lambda: device_properties(cupy))
    attempt("GPUs visible", lambda: cupy.cuda.runtime.getDeviceCount())
    attempt("CUDA runtime", lambda: cupy.cuda.runtime.runtimeGetVersion())
    attempt("CUDA driver", lambda: cupy.cuda.runtime.driverGetVersion())
    attempt("cuDNN (CuPy)", lambda: importlib.import_module("cupy.cuda.cudnn").getVersion())
except Exception as exc:
    info["cupy"] = f"not importable ({type(exc).__name__}: {exc})"
try:
    import torch
    info["torch"] = torch.__version__
    info["torch CUDA build"] = torch.version.cuda
    info["torch sees CUDA"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        attempt("GPU (torch)", lambda: torch.cuda.get_device_name(0))
        attempt("cuDNN (torch)", lambda: torch.backends.cudnn.version())
except Exception as exc:
    info["torch"] = f"not importable ({type(exc).__name__}: {exc})"
    info["torch sees CUDA"] = False
for name in ("scipy", "matplotlib", "tqdm", "pytest", "hypothesis", "pytest-xdist", "pytest-timeout", "mpi4py"):
    try:
        info[name] = md.version(name)
    except md.PackageNotFoundError:
        info[name] = None
try:
    import scratchgan
    info["scratchgan"] = os.path.dirname(scratchgan.__file__)
    info["scratchgan.cupy_available()"] = scratchgan.cupy_available()
except Exception as exc:
    info["scratchgan"] = f"not importable ({type(exc).__name__}: {exc})"
if shutil.which("nvidia-smi"):
    attempt("nvidia-smi", lambda: subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
        capture_output=True, text=True, timeout=20).stdout.strip())
print("PROBE " + json.dumps(info))
'''


def part_environment(ctx: Context) -> Section:
    section = Section(TITLES["environment"])
    run = ctx.run("environment", python("-c", PROBE))
    section.status, section.seconds = run.status, run.seconds
    found = [line[len("PROBE "):] for line in run.output.splitlines() if line.startswith("PROBE ")]
    if not found:
        section.body = describe_run(run, show_tail=True)
        return section
    info = json.loads(found[-1])
    ctx.facts.update(info)
    gpu = info.get("GPU (CuPy)", "")
    if info.get("cupy is the stand-in"):
        gpu = "the CuPy stand-in (tests/cupy_standin: NumPy on the CPU)"
    section.headline = f"{gpu}; cupy {info.get('cupy')}; torch {info.get('torch')}"
    section.body = describe_run(run) + [""] + table(["what", "value"], [(k, v) for k, v in info.items()])
    return section


def _checked(run: Run) -> str:
    """The status of a --check-only run: "not run: <why>" when it said so and stopped cleanly, else the run's."""
    said = lines_starting(run.output, ("check:", "not run:"))
    if run.returncode == 0 and said and said[-1].startswith("not run:"):
        return said[-1]
    return run.status


def part_checks(ctx: Context) -> Section:
    section = Section(TITLES["checks"])
    statuses = []
    for name, script in (("gan check", "gan_step.py"), ("dcgan check", "dcgan_step.py")):
        run = ctx.run(name, python(os.path.join(BENCHMARKS, script), "--backend", "cupy", "--check-only"))
        status = _checked(run)
        section.body += [f"- `{shown(run.command)}`: **{status}**, {run.seconds:.1f} s"]
        section.body += [f"  - {line}" for line in lines_starting(run.output, ("check:",))]
        if not status.startswith(("passed", "not run")):
            section.body += ["", "Last lines of its output:", ""] + code_block(run.tail()) + [""]
        statuses.append(f"{script}: {status}")
        section.seconds += run.seconds
    failed = [s for s in statuses if not s.split(": ", 1)[1].startswith(("passed", "not run"))]
    section.status = "failed: " + "; ".join(failed) if failed else (
        "passed" if any(s.split(": ", 1)[1] == "passed" for s in statuses) else "not run")
    section.headline = "; ".join(statuses)
    return section


def _rows(run: Run, json_path: str) -> list:
    """The result rows of a benchmark: its --json file, or (stopped early) the rows it printed so far."""
    try:
        with open(json_path) as f:
            return json.load(f)["rows"]
    except (OSError, ValueError, KeyError):
        rows = []
        for line in run.output.splitlines():
            if line.startswith('{"batch"'):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
        return rows


def _ms(row, variant) -> str:
    if variant in row:
        return f"{1e3 / row[variant]:.3g} ms"
    return "failed" if variant in row.get("failed", {}) else "not run"


def part_benchmark(ctx: Context, name: str, title: str, script: str, batches, repeats, seconds) -> Section:
    section = Section(title)
    out = os.path.join(ctx.work, f"{name.replace(' ', '_')}.json")
    s = ctx.settings
    argv = python(os.path.join(BENCHMARKS, script), "--backend", "cupy", "--no-check", "--no-memory",
                  "--batch-sizes", *batches, "--repeats", repeats, "--seconds", seconds, "--pause", s.pause,
                  "--worker-timeout", s.worker_timeout, "--json", out)
    if s.calibration_steps is not None:
        argv += ["--calibration-steps", str(s.calibration_steps), "--min-steps", str(s.min_steps)]
    run = ctx.run(name, argv)
    rows = _rows(run, out)
    table_lines = lines_starting(run.output, ("|",))
    failures = lines_starting(run.output, ("failed:",))
    section.seconds = run.seconds
    if run.returncode == 1 and table_lines:
        failed = sorted({v for r in rows for v in r.get("failed", {})})
        section.status = f"finished; failed variants: {', '.join(failed)}"
    else:
        section.status = run.status
    section.body = describe_run(run, show_tail=not run.not_started and run.returncode not in (0, 1)
                                or (run.returncode == 1 and not table_lines))
    section.body += [""] + lines_starting(run.output, ("machine:",))
    if table_lines:
        section.body += ["", "Milliseconds per step (median of the repetitions; ratios are of steps per second, "
                         "per interleaved repetition, median and quartiles; > 1 means scratchgan is faster):", ""]
        section.body += table_lines
    elif rows:
        section.body += ["", "Rows it finished before it stopped:", ""] + code_block(
            "\n".join(json.dumps(r) for r in rows))
    problems = lines_starting(run.output, ("not run:",)) + failures
    if problems:
        section.body += [""] + [f"- {line}" for line in problems]
    if rows:
        first = rows[0]
        variants = ("scratchgan", "torch", "scratchgan-graph", "torch-graph")
        section.headline = f"B = {first['batch']}: " + ", ".join(f"{v} {_ms(first, v)}" for v in variants)
    return section


def part_gan_step(ctx: Context) -> Section:
    s = ctx.settings
    return part_benchmark(ctx, "gan step", TITLES["gan step"], "gan_step.py",
                          s.gan_batches, s.gan_repeats, s.gan_seconds)


def part_dcgan_step(ctx: Context) -> Section:
    s = ctx.settings
    return part_benchmark(ctx, "dcgan step", TITLES["dcgan step"], "dcgan_step.py",
                          s.dcgan_batches, s.dcgan_repeats, s.dcgan_seconds)


def _read_jsonl(path) -> list:
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return []


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _scalars(tree, prefix="") -> list:
    """``(key, value)`` for every number, string or bool in a JSON tree, keys joined with dots."""
    if isinstance(tree, dict):
        return [kv for k, v in tree.items() for kv in _scalars(v, f"{prefix}{k}.")]
    if isinstance(tree, (int, float, str, bool)) or tree is None:
        return [(prefix.rstrip("."), f"{tree:.4g}" if isinstance(tree, float) else tree)]
    return []  # lists (per-mode counts and the like) stay in eval.json


def part_toy_run(ctx: Context) -> Section:
    section = Section(TITLES["toy run"])
    run_dir = os.path.join(ctx.work, "toy-run")
    counts = os.path.join(ctx.work, "standin-counts.json")
    extra = {"CUPY_STANDIN_REPORT": counts} if ctx.dry_run else {}
    argv = python("-c", CLI, "train", "--backend", "cupy", "--steps", ctx.settings.toy_steps, "--out", run_dir,
                  "--quiet")
    run = ctx.run("toy run", argv, extra_env=extra, cwd=ctx.work)
    section.status, section.seconds = run.status, run.seconds
    section.body = describe_run(run) + [""] + [f"- {line}" for line in lines_starting(run.output, ("plan:",))]
    metrics = _read_jsonl(os.path.join(run_dir, "metrics.jsonl"))
    if metrics:
        last = metrics[-1]
        speeds = sorted(m["steps_per_sec"] for m in metrics if "steps_per_sec" in m)
        median = speeds[len(speeds) // 2] if speeds else float("nan")
        section.body += ["", "Training (metrics.jsonl):", ""] + table(
            ["steps done", "logged records", "steps/s (median of the log intervals)", "last d_loss", "last g_loss"],
            [(last.get("step"), len(metrics), f"{median:.1f}", f"{last.get('d_loss', float('nan')):.4g}",
              f"{last.get('g_loss', float('nan')):.4g}")])
        section.headline = f"{last.get('step')} steps, {median:.1f} steps/s"
    evaluation = _read_json(os.path.join(run_dir, "eval.json"))
    if evaluation:
        section.body += ["", "Evaluation (eval.json):", ""] + table(["what", "value"], _scalars(evaluation)[:30])
    standin = _read_json(counts) if ctx.dry_run else None
    if standin:
        section.body += ["", "CuPy stand-in counts for the whole run (CUPY_STANDIN_REPORT):", ""] + table(
            list(standin), [list(standin.values())])
        section.headline = "; ".join(filter(None, [section.headline, f"{standin.get('device_to_host', '?')} "
                                                   "device-to-host transfers (stand-in)"]))
    return section


def _junit(path) -> dict | None:
    """Counts, failures and the slowest tests from pytest's JUnit XML, or None when it has none."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    cases = list(root.iter("testcase"))
    result = {"tests": len(cases), "failed": [], "skipped": 0, "slowest": []}
    for case in cases:
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        result["slowest"].append((float(case.get("time", 0) or 0), name))
        for tag in ("failure", "error"):
            found = case.find(tag)
            if found is not None:
                result["failed"].append((name, tag, found.get("message", ""), found.text or ""))
        if case.find("skipped") is not None:
            result["skipped"] += 1
    result["slowest"].sort(reverse=True)
    return result


def part_tests(ctx: Context) -> Section:
    section = Section(TITLES["tests"])
    s = ctx.settings
    junit = os.path.join(ctx.work, "tests.xml")
    argv = python("-m", "pytest", "-m", "gpu", "-p", "no:cacheprovider", "--junitxml", junit, *s.pytest_args)
    if s.pytest_workers and ctx.facts.get("pytest-xdist"):
        argv += ["-n", str(s.pytest_workers)]
    if s.test_timeout and ctx.facts.get("pytest-timeout"):  # else a hung test costs the part its JUnit file
        argv += ["--timeout", str(s.test_timeout)]
    run = ctx.run("tests", argv)
    section.seconds = run.seconds
    summary = [line for line in run.output.splitlines() if re.search(r"\d+ (passed|failed|error|skipped)", line)]
    found = _junit(junit)
    section.status = run.status
    if run.returncode == 5:
        section.status = "failed: no test collected (exit status 5)"
    section.body = describe_run(run, show_tail=not run.not_started and (run.returncode != 0 or found is None))
    if found:
        failed = len(found["failed"])
        passed = found["tests"] - failed - found["skipped"]
        section.headline = f"{passed} passed, {failed} failed, {found['skipped']} skipped"
        if ctx.dry_run and s.pytest_args:
            section.headline += f" (dry run: only {' '.join(s.pytest_args)})"
        section.body += ["", f"pytest's summary: `{summary[-1].strip('= ')}`" if summary else ""]
        section.body += [""] + table(["tests", "passed", "failed or errors", "skipped", "seconds"],
                                     [(found["tests"], passed, failed, found["skipped"], f"{run.seconds:.1f}")])
        section.body += ["", "Slowest tests:", ""] + [f"- {t:.2f} s {name}" for t, name in found["slowest"][:5]]
        if failed:
            section.body += ["", f"Failures ({failed}; the first 25 with the end of their report):", ""]
            for name, tag, message, text in found["failed"][:25]:
                section.body += [f"- **{name}** ({tag}): {message[:300]}", ""]
                section.body += code_block("\n".join(text.rstrip().splitlines()[-15:]))
    return section


PARTS = (  # (name, the part); the tests run last, in whatever time the budget has left
    ("environment", part_environment),
    ("checks", part_checks),
    ("gan step", part_gan_step),
    ("dcgan step", part_dcgan_step),
    ("toy run", part_toy_run),
    ("tests", part_tests),
)


def run_parts(ctx: Context, parts=PARTS) -> list:
    """Run the parts in order; a part that raises becomes a failed section, and the next one runs."""
    sections = []
    for i, (name, part) in enumerate(parts):
        later = [n for n, _ in parts[i + 1:]]
        ctx.reserved = ctx.settings.tests_reserve if "tests" in later else 0.0
        started = time.monotonic()
        try:
            section = part(ctx)
        except Exception:  # noqa: BLE001 - a bug here must not cost the other parts their results
            section = Section(TITLES.get(name, name), status="error in gpu_first_contact.py itself",
                              seconds=time.monotonic() - started, body=code_block(traceback.format_exc()))
        print(f"[{time.monotonic() - ctx.start:6.1f} s] {section.title}: {section.status}", flush=True)
        sections.append(section)
    return sections


# --------------------------------------------------------------------------- the report


def render(sections, ctx: Context, argv) -> str:
    total = time.monotonic() - ctx.start
    lines = ["# GPU first contact", ""]
    if ctx.dry_run:
        lines += ["**DRY RUN under the CuPy stand-in (NumPy on the CPU): it checks that every path runs; "
                  "its timings mean nothing.**", ""]
    lines += [f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
              f"- command: `{shown([sys.executable, os.path.abspath(__file__), *argv])}`",
              f"- host: {platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs, "
              f"python {platform.python_version()}",
              f"- device: {ctx.facts.get('GPU (CuPy)', 'unknown')}",
              f"- total: {total:.1f} s (budget {ctx.settings.budget:.0f} s)"]
    if ctx.logs:
        lines.append(f"- whole outputs: `{os.path.relpath(ctx.logs, os.path.dirname(ctx.logs) or '.')}/`, "
                     "beside this report")
    lines += ["", "## Summary", ""]
    lines += table(["part", "status", "seconds", "figures"],
                   [(s.title, s.status, f"{s.seconds:.1f}", s.headline) for s in sections])
    for i, s in enumerate(sections, 1):
        lines += ["", f"## {i}. {s.title}", "", f"Status: **{s.status}** ({s.seconds:.1f} s)", ""] + s.body
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="run every part under the CuPy stand-in (tests/cupy_standin) with tiny sizes")
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "gpu_first_contact.md"),
                        help="the report (markdown); the parts' whole outputs go to <report>-logs/ beside it")
    parser.add_argument("--no-logs", action="store_true", help="keep only the report")
    parser.add_argument("--toy-steps", type=int, help="steps of the toy run (default 1000; 20 with --dry-run)")
    parser.add_argument("--pytest-args", help="the tests to run, as pytest arguments in one string "
                                              "(default: every test marked gpu; with --dry-run a small subset)")
    parser.add_argument("--pytest-workers", type=int, help="pytest-xdist workers where installed (0 = none; default 4)")
    parser.add_argument("--budget", type=float, help="seconds for the whole first contact (default 470)")
    args = parser.parse_args(argv)

    settings = dry_run_settings() if args.dry_run else Settings()
    if args.toy_steps is not None:
        settings.toy_steps = args.toy_steps
    if args.pytest_args is not None:
        settings.pytest_args = tuple(shlex.split(args.pytest_args))
    if args.pytest_workers is not None:
        settings.pytest_workers = args.pytest_workers
    if args.budget is not None:
        settings.budget = args.budget
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    logs = None if args.no_logs else os.path.splitext(out)[0] + "-logs"
    with tempfile.TemporaryDirectory(prefix="gpu_first_contact-") as work:
        ctx = Context(args.dry_run, settings, logs, work)
        sections = run_parts(ctx)
        report = render(sections, ctx, sys.argv[1:] if argv is None else argv)
    with open(out, "w") as f:
        f.write(report)
    print(f"report: {out}")
    return 0 if all(s.ok for s in sections) else 1


if __name__ == "__main__":
    sys.exit(main())
