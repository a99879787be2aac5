"""Time the same scratchgan step from two source trees: has a change moved the speed?

A refactor should not: issue 24 asks for the new/old median ratio within
0.95-1.05. Each tree's step runs in a worker process of its own (the tree's
own benchmark script, with that tree first on ``PYTHONPATH``), the two are
interleaved in rounds with a rotated order, and the table gives the median
and quartiles of the per-round ratio new/old, both taken in the same run::

    git worktree add /tmp/before <commit>
    python benchmarks/compare_trees.py --baseline /tmp/before --step gan --batch-sizes 64 256
    python benchmarks/compare_trees.py --baseline /tmp/before --step dcgan --batch-sizes 64 256

The step is the ``scratchgan`` variant of ``benchmarks/gan_step.py`` (the
reference MLP GAN step) or ``benchmarks/dcgan_step.py`` (the reference DCGAN
step), written with the public API as a user's script would be; no
process-wide tuning is applied.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gan_step  # noqa: E402 - the shared timing machinery of this folder

SCRIPTS = {"gan": "gan_step.py", "dcgan": "dcgan_step.py"}


class TreeTimer(gan_step.WorkerTimer):
    """A worker serving the ``scratchgan`` variant from the benchmark script and package of one tree."""

    def __init__(self, tree: Path, step: str, timeout: float):
        super().__init__(str(tree / "benchmarks" / SCRIPTS[step]), "scratchgan", "numpy", timeout=timeout,
                         fresh_per_batch=True)
        self.tree = tree

    def _start(self):
        saved = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = str(self.tree)  # this tree's scratchgan, not an installed one
        try:
            super()._start()
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH")
            else:
                os.environ["PYTHONPATH"] = saved


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the old tree (a git worktree of the commit)")
    parser.add_argument("--candidate", type=Path, default=HERE.parent, help="the new tree (default: this one)")
    parser.add_argument("--step", choices=sorted(SCRIPTS), default="gan")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=2.0, help="approximate length of one repetition")
    parser.add_argument("--pause", type=float, default=0.2)
    parser.add_argument("--worker-timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores; {gan_step.thread_settings()}; step: {args.step}")
    print(f"new: {args.candidate.resolve()}\nold: {args.baseline.resolve()}\n")
    print("| B | new steps/s | old steps/s | new/old, median of rounds | quartiles |")
    print("|---|---|---|---|---|")
    failed = 0
    for batch in args.batch_sizes:
        timers = {"new": TreeTimer(args.candidate.resolve(), args.step, args.worker_timeout),
                  "old": TreeTimer(args.baseline.resolve(), args.step, args.worker_timeout)}
        try:
            samples, _, problems, _ = gan_step.time_interleaved(timers, batch, args.repeats, args.seconds,
                                                                pause=args.pause)
        finally:
            for timer in timers.values():
                timer.close()
        if problems:
            print(f"| {batch} | failed: {problems} | | | |")
            failed = 1
            continue
        ratios = [a / b for a, b in zip(samples["new"], samples["old"])]
        low, high = gan_step._quartiles(ratios)
        print(f"| {batch} | {statistics.median(samples['new']):.2f} | {statistics.median(samples['old']):.2f} | "
              f"{statistics.median(ratios):.3f} | {low:.3f}-{high:.3f} |", flush=True)
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
