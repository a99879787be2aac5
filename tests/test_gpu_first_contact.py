"""benchmarks/gpu_first_contact.py: the one-command first contact with a GPU, checked on the CPU.

The dry run (``--dry-run``) runs every part under the CuPy stand-in, in child
processes that put ``tests/cupy_standin`` first on their path, so these tests
belong to the ordinary NumPy pass (they are not marked ``gpu``). The other
tests give the script parts that fail, hang or raise, and check that each is
reported as such and that the parts after it still run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import gpu_first_contact as fc  # noqa: E402

SECTIONS = ("Environment", "Update checks on the device (float64)", "GAN step (gan_step.py --backend cupy)",
            "DCGAN step (dcgan_step.py --backend cupy)", "Toy run (scratchgan train --backend cupy)",
            "CuPy tests (pytest -m gpu)")


def _torch_has_cuda() -> bool:
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """One dry run for the module: (exit status, the report's text, the report's path, the printed output)."""
    out = tmp_path_factory.mktemp("first_contact") / "report.md"
    done = subprocess.run([sys.executable, fc.__file__, "--dry-run", "--out", str(out)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert out.exists(), f"no report written (exit status {done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.returncode, out.read_text(), out, done.stdout


def test_dry_run_report_has_every_section_in_order(dry_run):
    returncode, report, _, printed = dry_run
    assert returncode in (0, 1), printed  # 1: a part failed, which the report says; anything else is a crash
    assert report.startswith("# GPU first contact\n") and "DRY RUN under the CuPy stand-in" in report
    assert "error in gpu_first_contact.py itself" not in report  # the script's own code ran through every part
    positions = [report.index(f"## {i}. {title}\n") for i, title in enumerate(SECTIONS, 1)]
    assert positions == sorted(positions)
    summary = report.split("## Summary", 1)[1].split("## 1.", 1)[0]
    assert [line.split(" | ")[0].lstrip("| ") for line in summary.splitlines() if line.startswith("| ")][1:] \
        == list(SECTIONS)
    for title in SECTIONS:  # the console says what became of each part, as it goes
        assert f"{title}: " in printed


def test_dry_run_ran_on_the_standin_and_reports_each_part(dry_run):
    _, report, _, _ = dry_run
    environment = report.split("## 1. Environment", 1)[1].split("## 2.", 1)[0]
    assert "| cupy is the stand-in | True |" in environment and "| numpy |" in environment
    # each benchmark printed its table, with every variant in it (a failed one as "failed", not a crash)
    gan = report.split("## 3. ", 1)[1].split("## 4. ", 1)[0]
    assert "| B | scratchgan ms | handwritten ms | torch ms | scratchgan-graph ms | torch-graph ms" in gan
    assert "\n| 8 | " in gan
    dcgan = report.split("## 4. ", 1)[1].split("## 5. ", 1)[0]
    assert "| B | scratchgan ms | torch ms | floor (GEMMs) ms" in dcgan and "\n| 4 | " in dcgan
    toy = report.split("## 5. ", 1)[1].split("## 6. ", 1)[0]
    assert "scratchgan train --backend cupy --steps 5 " in toy
    assert "CuPy stand-in counts for the whole run" in toy and "| device_to_host |" in toy
    tests = report.split("## 6. ", 1)[1]
    assert "python -m pytest -m gpu" in tests


def test_dry_run_reports_pytorch_cuda_parts_as_not_run(dry_run):
    if _torch_has_cuda():
        pytest.skip("this machine's PyTorch sees a CUDA device: its parts run")
    _, report, _, _ = dry_run
    checks = report.split("## 2. ", 1)[1].split("## 3. ", 1)[0]
    assert "dcgan_step.py --backend cupy --check-only`: **not run: the PyTorch reference and the update check: " \
        "no CUDA" in checks
    for number in (3, 4):
        part = report.split(f"## {number}. ", 1)[1].split(f"## {number + 1}. ", 1)[0]
        assert "not run: torch: no CUDA" in part and "not run: torch-graph: no CUDA" in part
        row = next(line for line in part.splitlines() if line.startswith("| 8 |") or line.startswith("| 4 |"))
        assert "not run" in row


def test_dry_run_keeps_each_parts_whole_output(dry_run):
    _, report, out, _ = dry_run
    logs = out.parent / "report-logs"
    assert sorted(p.name for p in logs.iterdir()) == sorted(
        ["environment.log", "gan_check.log", "dcgan_check.log", "gan_step.log", "dcgan_step.log", "toy_run.log",
         "tests.log"])
    assert "report-logs/" in report
    assert (logs / "gan_step.log").read_text().startswith("$ python benchmarks/gan_step.py --backend cupy")


# --------------------------------------------------------------------------- parts that fail, hang or raise


def _context(tmp_path, **timeouts):
    settings = fc.Settings(budget=120.0, tests_reserve=0.0, timeouts=timeouts)
    return fc.Context(dry_run=False, settings=settings, logs=str(tmp_path / "logs"), work=str(tmp_path))


def _part(name, argv):
    def part(ctx):
        run = ctx.run(name, argv)
        return fc.Section(name, status=run.status, seconds=run.seconds, body=fc.describe_run(run))
    return part


def test_a_failing_hanging_or_broken_part_is_reported_and_the_next_part_runs(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    hang = ("import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', 'import time; "
            f"time.sleep(60)']); open({str(pid_file)!r}, 'w').write(str(child.pid)); print('waiting', flush=True); "
            "time.sleep(60)")

    def broken(ctx):
        raise RuntimeError("a bug in the script itself")

    parts = (("fails", _part("fails", fc.python("-c", "import sys; print('it broke here'); sys.exit(3)"))),
             ("hangs", _part("hangs", fc.python("-c", hang))),
             ("broken", broken),
             ("passes", _part("passes", fc.python("-c", "print('fine')"))))
    ctx = _context(tmp_path, fails=30, hangs=3, passes=30)
    started = time.monotonic()
    sections = fc.run_parts(ctx, parts)
    assert time.monotonic() - started < 30  # the hanging part was stopped at its limit
    assert [s.status for s in sections] == ["failed (exit status 3)", "timed out after 3 s",
                                            "error in gpu_first_contact.py itself", "passed"]
    assert [s.ok for s in sections] == [False, False, False, True]
    report = fc.render(sections, ctx, ["--fake"])
    assert "it broke here" in report  # a failure's tail is in the report
    assert "waiting" in report  # so is what a timed-out part printed before it was stopped
    assert "RuntimeError: a bug in the script itself" in report
    # the timed-out part's own children were stopped with it (its process group)
    grandchild = int(pid_file.read_text())
    for _ in range(50):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the timed-out part's child {grandchild} is still running")
    log = (tmp_path / "logs" / "fails.log").read_text()
    assert log.startswith("$ python -c ") and "\n# failed (exit status 3), " in log and "it broke here" in log


def test_a_part_that_the_budget_cannot_fit_is_not_run(tmp_path, monkeypatch):
    ctx = _context(tmp_path, first=30, tests=30)
    ctx.settings.budget = 40.0
    ctx.settings.tests_reserve = 20.0
    parts = (("first", _part("first", fc.python("-c", "print(1)"))),
             ("tests", _part("tests", fc.python("-c", "print(2)"))))
    limits = []
    original = fc.Context.run

    def spy(self, name, argv, **kw):
        run = original(self, name, argv, **kw)
        limits.append(run.limit)
        return run

    monkeypatch.setattr(fc.Context, "run", spy)
    sections = fc.run_parts(ctx, parts)
    assert limits[0] <= 40.0 - 20.0  # the first part could not eat the time kept for the tests
    assert [s.status for s in sections] == ["passed", "passed"]
    ctx.settings.budget = 1.0  # nothing fits any more
    late = fc.run_parts(ctx, parts[:1])
    assert late[0].status.startswith("not run: out of the time budget") and late[0].ok


def test_children_get_the_repository_and_under_dry_run_the_standin_first_on_their_path(tmp_path):
    ctx = _context(tmp_path)
    paths = ctx.env()["PYTHONPATH"].split(os.pathsep)
    assert paths[0] == fc.ROOT and fc.STANDIN not in paths
    ctx.dry_run = True
    paths = ctx.env({"X": "1"})["PYTHONPATH"].split(os.pathsep)
    assert paths[:2] == [fc.STANDIN, fc.ROOT]
    assert os.path.isfile(os.path.join(fc.STANDIN, "cupy", "__init__.py"))


def test_pytest_junit_summary_counts_failures_and_skips(tmp_path):
    xml = tmp_path / "t.xml"
    xml.write_text('<testsuites><testsuite name="pytest" tests="3">'
                   '<testcase classname="tests.test_a" name="test_ok" time="0.5"/>'
                   '<testcase classname="tests.test_a" name="test_bad" time="1.5">'
                   '<failure message="assert 1 == 2">trace line 1\ntrace line 2</failure></testcase>'
                   '<testcase classname="tests.test_b" name="test_skip" time="0.0"><skipped message="no"/></testcase>'
                   '</testsuite></testsuites>')
    found = fc._junit(str(xml))
    assert found["tests"] == 3 and found["skipped"] == 1
    assert found["failed"] == [("tests.test_a::test_bad", "failure", "assert 1 == 2", "trace line 1\ntrace line 2")]
    assert found["slowest"][0] == (1.5, "tests.test_a::test_bad")
    assert fc._junit(str(tmp_path / "missing.xml")) is None


def test_a_benchmark_whose_variant_failed_shows_its_table_and_names_the_variant(tmp_path, monkeypatch):
    printed = "\n".join([
        "machine: x86_64, 16 cores; backend cupy",
        '{"batch": 64, "scratchgan": 500.0, "failed": {"scratchgan-graph": "RuntimeError: capture refused"}}',
        "| B | scratchgan ms | scratchgan-graph ms |", "|---|---|---|", "| 64 | 2.00 | failed |",
        "not run: torch: no CUDA (PyTorch is not installed)",
        "failed: scratchgan-graph at B = 64: RuntimeError: capture refused"])
    ctx = _context(tmp_path)

    def fake_run(name, argv, **kw):
        return fc.Run(name, argv, returncode=1, output=printed, seconds=2.0, limit=10)

    monkeypatch.setattr(ctx, "run", fake_run)
    section = fc.part_gan_step(ctx)
    assert section.status == "finished; failed variants: scratchgan-graph" and not section.ok
    body = "\n".join(section.body)
    assert "| 64 | 2.00 | failed |" in body and "- failed: scratchgan-graph at B = 64: RuntimeError" in body
    assert "- not run: torch: no CUDA" in body and "Last lines of its output" not in body
    assert section.headline.startswith("B = 64: scratchgan 2 ms, torch not run, scratchgan-graph failed")

    # stopped by its time limit before the table: the rows it printed are kept
    def timed_out(name, argv, **kw):
        return fc.Run(name, argv, output=printed.split("\n| B")[0], seconds=10.0, timed_out=True, limit=10)

    monkeypatch.setattr(ctx, "run", timed_out)
    section = fc.part_gan_step(ctx)
    body = "\n".join(section.body)
    assert section.status == "timed out after 10 s" and "Rows it finished before it stopped" in body
    assert '"batch": 64' in body and "Last lines of its output" in body


def test_an_update_check_that_disagrees_fails_the_part_with_its_message(tmp_path, monkeypatch):
    ctx = _context(tmp_path)
    said = {"gan check": (1, "SystemExit: scratchgan and the hand-written step disagree: 3e-2 lr"),
            "dcgan check": (0, "not run: the PyTorch reference and the update check: no CUDA (PyTorch is missing)")}

    def fake_run(name, argv, **kw):
        return fc.Run(name, argv, returncode=said[name][0], output=said[name][1], seconds=1.0, limit=10)

    monkeypatch.setattr(ctx, "run", fake_run)
    section = fc.part_checks(ctx)
    assert section.status == "failed: gan_step.py: failed (exit status 1)" and not section.ok
    body = "\n".join(section.body)
    assert "disagree: 3e-2 lr" in body and "dcgan_step.py: not run: the PyTorch reference" in section.headline
    said["gan check"] = (0, "check: scratchgan and hand-written updates agree in float64 (max difference 1e-11 x lr)")
    section = fc.part_checks(ctx)
    assert section.status == "passed"
    assert "  - check: scratchgan and hand-written updates agree in float64 (max difference 1e-11 x lr)" in section.body
