"""The engine's fixed cost per training step: the reference step on tiny layers.

With widths 4-8 and a batch of 4 the arithmetic is negligible, so the time of
one step is what the code costs around it: op plumbing, the graph walk, the
optimizer's per-parameter calls. scratchgan and the hand-written step (the
same step without autograd, ``benchmarks/handwritten.py``) are interleaved;
the medians over the repetitions are printed in milliseconds per step. No
process-wide tuning is applied (malloc, thread counts: as a user's program gets
them); the output says which thread settings the run had.

Usage::

    python benchmarks/fixed_cost.py            # 15 repetitions of 500 steps each
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
from handwritten import HandwrittenGAN, init_params  # noqa: E402

G_TINY, D_TINY = (4, 8, 8, 8, 6), (6, 8, 8, 8, 1)
BATCH = 4


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=500, help="steps per repetition")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    g_params, d_params = init_params(G_TINY, rng), init_params(D_TINY, rng)
    models = {"scratchgan": ScratchganGAN(g_params, d_params, g_sizes=G_TINY, d_sizes=D_TINY),
              "handwritten": HandwrittenGAN(g_params, d_params)}
    inputs = (rng.standard_normal((BATCH, D_TINY[0]), dtype=np.float32),
              rng.standard_normal((BATCH, G_TINY[0]), dtype=np.float32),
              rng.standard_normal((BATCH, G_TINY[0]), dtype=np.float32))
    ms = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, model in models.items():
            for _ in range(args.steps // 10):  # warm-up
                model.step(*inputs)
            start = time.perf_counter()
            for _ in range(args.steps):
                model.step(*inputs)
            ms[name].append((time.perf_counter() - start) / args.steps * 1e3)
    sg_ms, hand_ms = statistics.median(ms["scratchgan"]), statistics.median(ms["handwritten"])
    print(f"fixed cost per step (widths {G_TINY} / {D_TINY}, batch {BATCH}): "
          f"scratchgan {sg_ms:.3f} ms, hand-written {hand_ms:.3f} ms, difference {sg_ms - hand_ms:.3f} ms; "
          f"{thread_settings()}")


if __name__ == "__main__":
    main()
