"""Cost of a training step of the image recipe's networks against the reference DCGAN's.

The image recipe adds fully connected hidden layers to the DCGAN networks
(``g_fc``, ``d_fc``: 256 each; docs/training.md). This script times one
``Trainer.train_step`` (a D update and a G update, as ``scratchgan train``
runs them) for the reference networks and for the recipe's variants, on
Fashion-MNIST (``apt install dataset-fashion-mnist``) or on any image set
``--data`` names, interleaving the variants in rounds so that a change in the
machine's load hits all of them alike. It prints the median and quartiles of
the per-round means and each variant's ratio to the reference of the same run.

Usage::

    python benchmarks/dcgan_variants.py                   # 9 rounds of 15 steps each
    python benchmarks/dcgan_variants.py --rounds 3 --steps 5 --data mnist5k   # quicker
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scratchgan.app.config import TrainConfig  # noqa: E402
from scratchgan.app.train import Trainer  # noqa: E402

#: name -> the TrainConfig fields that differ from the image recipe
VARIANTS = {
    "reference (g_fc 0, d_fc 0)": dict(g_fc=0, d_fc=0),
    "recipe (g_fc 256, d_fc 256)": {},
    "g_fc 256 only": dict(d_fc=0),
    "d_fc 256 only": dict(g_fc=0),
}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--data-path", default=None, help="a local file for --data (as scratchgan train --data-path)")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--steps", type=int, default=15, help="steps per variant per round")
    args = p.parse_args(argv)
    trainers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, fields) in enumerate(VARIANTS.items()):
            config = TrainConfig(data=args.data, data_path=args.data_path, steps=10**9, **fields)
            trainers[name] = Trainer(config, Path(tmp) / str(i))
            trainers[name].train_step(with_norms=False)  # warm-up: first-call allocations
        times = {name: [] for name in trainers}
        for _ in range(args.rounds):
            for name, trainer in trainers.items():
                start = time.perf_counter()
                for _ in range(args.steps):
                    trainer.train_step(with_norms=False)
                times[name].append((time.perf_counter() - start) / args.steps)
    reference = float(np.median(times[next(iter(VARIANTS))]))
    print(f"DCGAN training step on {args.data}, batch {trainers[name].config.batch_size}: "
          f"{args.rounds} rounds x {args.steps} steps, median (quartiles) of the per-round means")
    print("| variant | ms / step | vs reference |\n|---|---|---|")
    for name, values in times.items():
        q1, median, q3 = (1000 * v for v in np.percentile(values, [25, 50, 75]))
        print(f"| {name} | {median:.1f} ({q1:.1f}-{q3:.1f}) | {median / 1000 / reference:.2f}x |")


if __name__ == "__main__":
    main()
