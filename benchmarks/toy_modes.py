"""Toy mode-coverage benchmark: the default ``scratchgan train`` on grid25 or ring8, several seeds.

Each seed is one full run of :class:`scratchgan.app.train.Trainer` with the
:class:`~scratchgan.app.config.TrainConfig` defaults (plus ``--data`` and any
``--set`` overrides), exactly what ``scratchgan train --data DATA --seed S``
does. The score is the run's own final evaluation: 2,500 fresh samples from the
generator's EMA scored by :func:`scratchgan.gan.metrics.mode_coverage` (the
VEEGAN / PacGAN protocol: a sample is high quality within 3 std of its nearest
centre; a mode is captured when it is the nearest centre of at least one
high-quality sample; KL(q || uniform) of the high-quality samples per mode).

Prints one row per seed (modes, % high quality, KL, wall seconds, steps/s) and
the means, and writes everything as JSON.

Usage::

    python benchmarks/toy_modes.py                              # grid25, seeds 0..4, one run at a time
    python benchmarks/toy_modes.py --data ring8
    python benchmarks/toy_modes.py --seeds 0 1 --set steps=6000 --set r1=1.0 --jobs 2

Wall time is the whole run (building, training, checkpoints, pictures, final
evaluation). Time with ``--jobs 1`` (the default) on an otherwise idle machine;
``--jobs 2`` runs two single-threaded seeds side by side, for screening only.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: PacGAN (Lin et al. 2018), Table 1 / 2D mixture experiments, 10 trials: modes / % high quality / KL.
PUBLISHED = {
    "ring8": {"GAN": (6.3, 98.2, 0.45), "PacGAN4": (7.8, 95.9, 0.07)},
    "grid25": {"GAN": (17.3, 94.8, 0.70), "PacGAN4": (24.8, 93.6, 0.04)},
}
#: The goal of the "Training a GAN end to end" issue.
GOALS = {
    "grid25": "mean over seeds >= 24 modes and >= 90% high quality",
    "ring8": "every seed 8 modes and >= 95% high quality",
}


def goal_met(data: str, rows: list) -> bool | None:
    if data == "grid25":
        return statistics.mean(r["modes"] for r in rows) >= 24 and statistics.mean(r["hq"] for r in rows) >= 0.90
    if data == "ring8":
        return all(r["modes"] == 8 and r["hq"] >= 0.95 for r in rows)
    return None


def parse_set(items) -> dict:
    """``key=value`` pairs; values are Python literals when they parse as one (``(64,64)``, ``1e-3``), else strings."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        out[key.strip().replace("-", "_")] = value
    return out


def run_one(data: str, seed: int, overrides: dict, out: Path) -> dict:
    """One training run with the defaults; returns the row of the table."""
    from scratchgan.app.config import TrainConfig  # noqa: PLC0415
    from scratchgan.app.train import Trainer  # noqa: PLC0415

    start = time.perf_counter()
    trainer = Trainer(TrainConfig(data=data, seed=seed, **overrides), out, overwrite=True)  # a benchmark reruns its folders
    result = trainer.run(progress=False)
    wall = time.perf_counter() - start
    c = trainer.config
    return {"seed": seed, "modes": result["modes_captured"], "hq": result["high_quality_frac"],
            "kl": result["kl_uniform"], "wall_s": wall, "steps": c.steps, "steps_per_sec": c.steps / wall,
            "run": str(out), "config": c.to_dict()}


def run_parallel(args, overrides: dict) -> list:
    """Each seed in its own single-threaded process, ``args.jobs`` at a time."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    pending, running, rows = list(args.seeds), [], []
    with tempfile.TemporaryDirectory() as tmp:
        while pending or running:
            while pending and len(running) < args.jobs:
                seed = pending.pop(0)
                path = Path(tmp) / f"seed{seed}.json"
                cmd = [sys.executable, __file__, "--data", args.data, "--seeds", str(seed), "--jobs", "1",
                       "--out", str(args.out), "--json", str(path), "--quiet"]
                for item in args.set or []:
                    cmd += ["--set", item]
                running.append((subprocess.Popen(cmd, env=env), path))
            time.sleep(0.2)
            for proc, path in list(running):
                if proc.poll() is not None:
                    running.remove((proc, path))
                    if proc.returncode:
                        raise SystemExit(f"a run failed (exit {proc.returncode}): see the output above")
                    rows.extend(json.loads(path.read_text())["runs"])
    return sorted(rows, key=lambda r: args.seeds.index(r["seed"]))


def print_table(data: str, rows: list, machine: dict, overrides: dict) -> None:
    changes = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "none"
    print(f"\n{data}: default config with changes: {changes}; {len(rows)} seed(s), {rows[0]['steps']} steps each "
          f"({machine['cpus']} CPUs, jobs {machine['jobs']})")
    print(f"{'seed':>6} {'modes':>6} {'% HQ':>7} {'KL':>7} {'wall s':>7} {'steps/s':>8}")
    for r in rows:
        print(f"{r['seed']:>6} {r['modes']:>6} {100 * r['hq']:>7.1f} {r['kl']:>7.3f} {r['wall_s']:>7.1f} "
              f"{r['steps_per_sec']:>8.0f}")
    mean = {k: statistics.mean(r[k] for r in rows) for k in ("modes", "hq", "kl", "wall_s", "steps_per_sec")}
    print(f"{'mean':>6} {mean['modes']:>6.1f} {100 * mean['hq']:>7.1f} {mean['kl']:>7.3f} {mean['wall_s']:>7.1f} "
          f"{mean['steps_per_sec']:>8.0f}")
    print(f"{'min':>6} {min(r['modes'] for r in rows):>6} {100 * min(r['hq'] for r in rows):>7.1f}")
    if data in PUBLISHED:
        ref = ", ".join(f"{k} {m} / {h} / {kl}" for k, (m, h, kl) in PUBLISHED[data].items())
        print(f"PacGAN paper (10 trials; modes / % HQ / KL): {ref}")
    met = goal_met(data, rows)
    if met is not None:
        print(f"goal ({GOALS[data]}): {'met' if met else 'NOT met'}")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="grid25", choices=("grid25", "ring8"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a TrainConfig field, e.g. --set steps=6000 --set g_hidden=(64,64); repeatable")
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side, single-threaded (screening only)")
    parser.add_argument("--out", type=Path, default=Path("runs/toy_modes"), help="folder of the run folders")
    parser.add_argument("--json", type=Path, default=None, help="results file (default OUT/toy_modes-DATA.json)")
    parser.add_argument("--quiet", action="store_true", help="no table")
    args = parser.parse_args(argv)
    overrides = parse_set(args.set)
    for key in ("data", "seed"):
        if key in overrides:
            raise SystemExit(f"use --{key}{'s' if key == 'seed' else ''}, not --set {key}=...")

    machine = {"cpus": os.cpu_count(), "jobs": args.jobs, "python": platform.python_version(),
               "platform": platform.platform(), "load_avg_at_start": os.getloadavg(),
               "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default")}
    if args.jobs > 1:
        rows = run_parallel(args, overrides)
    else:
        rows = []
        for seed in args.seeds:
            name = "-".join(f"{k}{v}" for k, v in sorted(overrides.items())).replace(" ", "")
            out = args.out / f"{args.data}{'-' + name if name else ''}-seed{seed}"
            rows.append(run_one(args.data, seed, overrides, out))
            if not args.quiet:
                r = rows[-1]
                print(f"seed {seed}: {r['modes']} modes, {100 * r['hq']:.1f}% HQ, KL {r['kl']:.3f}, "
                      f"{r['wall_s']:.1f} s", flush=True)
    report = {
        "data": args.data, "seeds": args.seeds, "overrides": overrides, "machine": machine,
        "command": "python benchmarks/toy_modes.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "runs": rows,
        "mean": {k: statistics.mean(r[k] for r in rows) for k in ("modes", "hq", "kl", "wall_s", "steps_per_sec")},
        "goal": GOALS.get(args.data), "goal_met": goal_met(args.data, rows),
        "published": PUBLISHED.get(args.data),
    }
    path = args.json or args.out / f"toy_modes-{args.data}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    if not args.quiet:
        print_table(args.data, rows, machine, overrides)
        print(f"results: {path}")
    return report


if __name__ == "__main__":
    main()
