"""Where a training step's time goes: each phase of the reference step, scratchgan against hand-written.

Both steps call ``mark(phase)`` as each part ends (``handwritten.PHASES``:
the G forward without gradients, the D forwards and loss, D's backward, D's
Adam, the G step's forwards and loss, G's gradients, G's Adam). This script
times the gaps between marks over many steps, alternating the two variants,
and prints the median of each phase in milliseconds and the difference.

No process-wide tuning is applied (malloc, thread counts: as a user's program
gets them). The single-threaded variant below is the caller's choice, and the
output's first line says which thread settings the run had.

Usage::

    python benchmarks/step_phases.py --batch 64
    OPENBLAS_NUM_THREADS=1 python benchmarks/step_phases.py --batch 64    # single-threaded variant (steadier)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gan_step import ScratchganGAN, thread_settings  # noqa: E402
from handwritten import D_SIZES, G_SIZES, PHASES, HandwrittenGAN, init_params  # noqa: E402


class PhaseClock:
    """``mark(phase)`` records the time since the previous mark (or since :meth:`start`) under ``phase``."""

    def __init__(self):
        self.samples = {phase: [] for phase in PHASES}
        self._last = 0.0

    def start(self) -> None:
        self._last = time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self.samples[phase].append(now - self._last)
        self._last = now

    def medians_ms(self) -> dict:
        return {phase: statistics.median(times) * 1e3 for phase, times in self.samples.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=30, help="alternations of the two variants")
    parser.add_argument("--steps", type=int, default=50, help="steps per variant and alternation")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    g_params, d_params = init_params(G_SIZES, rng), init_params(D_SIZES, rng)
    models = {"scratchgan": ScratchganGAN(g_params, d_params), "handwritten": HandwrittenGAN(g_params, d_params)}
    inputs = (rng.uniform(-1, 1, (args.batch, D_SIZES[0])).astype(np.float32),
              rng.standard_normal((args.batch, G_SIZES[0]), dtype=np.float32),
              rng.standard_normal((args.batch, G_SIZES[0]), dtype=np.float32))
    clocks = {name: PhaseClock() for name in models}
    for rep in range(args.repeats + 1):  # the first round is warm-up
        for name, model in models.items():
            clock = clocks[name] if rep else PhaseClock()
            for _ in range(args.steps):
                clock.start()
                model.step(*inputs, mark=clock)
    ours, floor = clocks["scratchgan"].medians_ms(), clocks["handwritten"].medians_ms()
    print(f"batch {args.batch}, median ms per phase; {thread_settings()}")
    print(f"{'phase':22s} {'scratchgan':>10s} {'hand':>8s} {'diff':>8s}")
    for phase in PHASES:
        print(f"{phase:22s} {ours[phase]:10.3f} {floor[phase]:8.3f} {ours[phase] - floor[phase]:+8.3f}")
    total_ours, total_floor = sum(ours.values()), sum(floor.values())
    print(f"{'sum':22s} {total_ours:10.3f} {total_floor:8.3f} {total_ours - total_floor:+8.3f}")


if __name__ == "__main__":
    main()
