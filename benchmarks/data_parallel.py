"""Data-parallel training on this machine: 1 process against 2 MPI ranks, and the model of many machines.

For each model (``mlp``: the default toy job, grid25, batch 128; ``dcgan``:
the image recipe on Fashion-MNIST, batch 64) and each number of ranks (1: a
plain process, as ``scratchgan train`` runs; 2: ``mpiexec -n 2``, as
``scratchgan train --distributed`` runs), the script times whole training
steps (``Trainer.train_step``, the global batch split over the ranks) and
prints:

* steps/s and samples/s (global batch x steps/s), the median over the
  repetitions, for one process on every core (as a user runs it), one process
  on one thread (the per-core baseline) and 2 ranks; the variants are
  interleaved because the machine may be shared;
* the time per step spent in the allreduce (``Communicator.allreduce_seconds``:
  the reduction itself, waiting for the slower rank included) and the bytes of
  the buffers reduced per step (every gradient, packed, plus the step's losses;
  one buffer per network update: ``n_critic + 1`` per step);
* the model of many machines: the compute time of one step at each rank's
  share of the batch, measured here on one thread, plus a ring allreduce,
  ``2 (N-1)/N * bytes / bandwidth + 2 (N-1) * latency`` per buffer, on a
  10 Gbit/s and a 100 Gbit/s network, the best N and the speed-up it gives;
  and the allreduce alone on NVLink, whose GPUs' step time is not measured
  here (docs/distributed.md).

Each rank gets ``cores / N`` BLAS threads (``--threads-per-rank``; set the
variables yourself to override); the output says what the run had. Nothing
else is tuned.

Usage::

    python benchmarks/data_parallel.py                       # both models, 5 repetitions
    python benchmarks/data_parallel.py --models mlp --repeats 3 --json dp.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scratchgan.app.config import TrainConfig  # noqa: E402
from scratchgan.app.train import Trainer  # noqa: E402

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: model -> (config, timed steps, warm-up steps)
MODELS = {
    "mlp": (dict(data="grid25"), 300, 20),
    "dcgan": (dict(data="fashion-mnist"), 12, 2),
}
#: link -> (bandwidth in bytes/s, latency per message in s). 10 Gbit/s Ethernet with TCP; 100 Gbit/s with RDMA
#: (InfiniBand / RoCE); NVLink 4 between the GPUs of one H100/H200 node, NCCL's bus bandwidth (~360 GB/s of the
#: link's 450 GB/s per direction) and its small-message latency.
LINKS = {
    "10 Gbit/s": (10e9 / 8, 30e-6),
    "100 Gbit/s": (100e9 / 8, 5e-6),
    "NVLink": (360e9, 10e-6),
}
RANKS_MODELLED = (1, 2, 4, 8, 16, 32)


def ring_seconds(nbytes: float, n: int, bandwidth: float, latency: float) -> float:
    """Ring allreduce of ``nbytes`` over ``n`` ranks: 2 (n-1) steps, each sending 1/n of the buffer."""
    return 0.0 if n == 1 else 2 * (n - 1) / n * nbytes / bandwidth + 2 * (n - 1) * latency


def thread_settings() -> str:
    given = [f"{name}={os.environ[name]}" for name in THREAD_VARIABLES if name in os.environ]
    return "threads: " + (" ".join(given) if given else "library defaults")


# --------------------------------------------------------------------------- one process or one rank


def worker(args) -> None:
    """Time ``args.steps`` steps of ``args.model`` on ``args.ranks`` ranks (or at ``args.batch`` on one process)."""
    comm = None
    if args.ranks > 1:
        from scratchgan.app.distributed import Communicator  # noqa: PLC0415 - imports mpi4py

        comm = Communicator()
    fields, steps, warmup = MODELS[args.model]
    steps = args.steps or steps
    config = TrainConfig(**fields, **({"batch_size": args.batch} if args.batch else {}))
    folder = tempfile.mkdtemp(prefix="dp-bench-")
    try:
        trainer = Trainer(config, folder, comm=comm)
        for _ in range(warmup):
            trainer.train_step(with_norms=False)
        if comm is not None:
            comm.barrier()
            comm.reset_counters()
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step(with_norms=False)
        if comm is not None:
            comm.barrier()
        seconds = (time.perf_counter() - start) / steps
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    c = trainer.config
    row = {"model": args.model, "ranks": args.ranks, "batch": c.batch_size, "steps": steps,
           "seconds_per_step": seconds, "updates_per_step": c.n_critic + 1,
           "parameters": sum(p.data.size for net in (trainer.G, trainer.D) for p in net.parameters()),
           "threads": thread_settings()}
    if comm is not None:
        row.update(allreduce_seconds_per_step=comm.allreduce_seconds / steps,
                   bytes_per_step=comm.allreduce_bytes / steps, transport=comm.transport)
        # the reduction alone, every rank ready (after a barrier): the transport's cost without the wait for a
        # slower rank that the in-step figure includes; both networks' buffers, as one step reduces them
        alone = []
        for _ in range(30):
            comm.reset_counters()
            for net in (trainer.D, trainer.G):
                comm.barrier()
                comm.allreduce_gradients(net.parameters())
            alone.append(comm.allreduce_seconds)
        row["allreduce_alone_seconds_per_step"] = statistics.median(alone)
    if comm is None or comm.rank == 0:
        print("RESULT " + json.dumps(row), flush=True)


# --------------------------------------------------------------------------- the launcher


def run_worker(model: str, ranks: int, threads: int, steps: int | None = None, batch: int | None = None) -> dict:
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env.setdefault(name, str(threads))
    cmd = [sys.executable, __file__, "--worker", "--model", model, "--ranks", str(ranks)]
    cmd += ["--steps", str(steps)] if steps else []
    cmd += ["--batch", str(batch)] if batch else []
    if ranks > 1:
        mpiexec = shutil.which("mpiexec", path=os.pathsep.join([os.path.dirname(sys.executable), env["PATH"]]))
        if mpiexec is None:
            sys.exit("mpiexec not found: pip install \"scratchgan[mpi]\"")
        cmd = [mpiexec, "-n", str(ranks), *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1][len("RESULT "):])


def variants(cores: int, threads_per_rank: int | None) -> list[tuple[str, int, int]]:
    """(name, ranks, BLAS threads per rank): one process as a user runs it (all cores), one process on one
    thread (the per-core baseline), and 2 ranks sharing the cores."""
    if threads_per_rank:
        return [("1", 1, threads_per_rank), ("2", 2, threads_per_rank)]
    out = [("1", 1, cores)]
    if cores > 1:
        out.append(("1x1", 1, 1))
    return out + [("2", 2, max(cores // 2, 1))]


def measure(model: str, repeats: int, cores: int, threads_per_rank: int | None, steps: int | None = None) -> dict:
    plan = variants(cores, threads_per_rank)
    rows = {name: [] for name, _, _ in plan}
    for _ in range(repeats):  # interleaved: A, B, C, A, B, C, ...
        for name, n, threads in plan:
            rows[name].append(run_worker(model, n, threads, steps=steps))
    out = {}
    for name, runs in rows.items():
        first = runs[0]
        med = statistics.median(r["seconds_per_step"] for r in runs)
        entry = {**first, "seconds_per_step": med, "steps_per_sec": 1 / med, "samples_per_sec": first["batch"] / med,
                 "all_seconds_per_step": [r["seconds_per_step"] for r in runs]}
        if first["ranks"] > 1:
            for key in ("allreduce_seconds_per_step", "allreduce_alone_seconds_per_step"):
                entry[key] = statistics.median(r[key] for r in runs)
        out[name] = entry
    return out


def compute_at_shares(model: str, batch: int) -> dict:
    """One-thread step time of one process at each rank's share ``batch / N`` (the compute side of the model)."""
    shares = {}
    for n in RANKS_MODELLED:
        if batch % n == 0:
            steps = max(MODELS[model][1] // 2, 6)
            shares[n] = run_worker(model, 1, 1, steps=steps, batch=batch // n)["seconds_per_step"]
    return shares


def model_table(model: str, shares: dict, nbytes: float, updates: int) -> list[str]:
    """Modelled step of N CPU ranks on each network (compute measured here, allreduce modelled), and the
    allreduce alone on NVLink (a GPU's compute time per step was not measured here)."""
    networks = [link for link in LINKS if link != "NVLink"]
    lines = [f"| {model}: N | compute/step (1 thread, batch/N) | "
             + " | ".join(f"{link}: allreduce/step, modelled speed-up" for link in networks)
             + " | NVLink: allreduce/step |", "|---|---|" + "---|" * (len(networks) + 1)]
    best = {}
    for n, compute in shares.items():
        cells = []
        for link in networks:
            comm = updates * ring_seconds(nbytes / updates, n, *LINKS[link])
            speedup = shares[1] / (compute + comm)
            cells.append(f"{comm * 1e3:.3f} ms, {speedup:.2f}x")
            if speedup > best.get(link, (0, 0))[1]:
                best[link] = (n, speedup)
        nvlink = updates * ring_seconds(nbytes / updates, n, *LINKS["NVLink"])
        lines.append(f"| {n} | {compute * 1e3:.2f} ms | " + " | ".join(cells) + f" | {nvlink * 1e3:.3f} ms |")
    lines.append("best N: " + "; ".join(f"{link} N={n} ({s:.2f}x)" for link, (n, s) in best.items()))
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="mlp,dcgan", help="comma-separated: mlp, dcgan")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads-per-rank", type=int, default=None,
                        help="BLAS threads of each rank (default: cores / ranks; variables already set win)")
    parser.add_argument("--no-model", action="store_true", help="skip the compute-at-shares measures of the model")
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="mlp", help=argparse.SUPPRESS)
    parser.add_argument("--ranks", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per run (default: 300 mlp, 12 dcgan)")
    parser.add_argument("--batch", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return
    cores = os.cpu_count() or 1
    report = {"cores": cores, "threads": thread_settings(), "models": {}}
    print(f"{cores} cores; {thread_settings()} in the launcher; each rank gets "
          f"{args.threads_per_rank or 'cores / ranks'} BLAS thread(s) unless the variables are set")
    print("in-step allreduce: the reduction's time in the step, waiting for the slower rank included; (alone): "
          "the same buffers reduced after a barrier")
    print("| model | ranks | batch (per rank) | threads/rank | steps/s | samples/s | allreduce ms/step (alone) | "
          "bytes/step | vs 1 process | vs 1 process, 1 thread |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        rows = measure(model, args.repeats, cores, args.threads_per_rank, args.steps)
        report["models"][model] = {"rows": rows}
        for r in rows.values():
            n = r["ranks"]
            ar = (f"{r['allreduce_seconds_per_step'] * 1e3:.3f} ({r['allreduce_alone_seconds_per_step'] * 1e3:.3f})"
                  if n > 1 else "-")
            nbytes = f"{r['bytes_per_step'] / 1e3:,.0f} kB" if n > 1 else "-"
            threads = r["threads"].split("=")[-1] if "=" in r["threads"] else "default"
            print(f"| {model} | {n} | {r['batch']} ({r['batch'] // n}) | {threads} | {r['steps_per_sec']:.1f} | "
                  f"{r['samples_per_sec']:,.0f} | {ar} | {nbytes} | "
                  f"{rows['1']['seconds_per_step'] / r['seconds_per_step']:.2f}x | "
                  f"{(rows.get('1x1') or rows['1'])['seconds_per_step'] / r['seconds_per_step']:.2f}x |", flush=True)
    if not args.no_model:
        for model, entry in report["models"].items():
            two = entry["rows"]["2"]
            shares = compute_at_shares(model, two["batch"])
            entry["compute_at_shares"] = shares
            print()
            print(f"model of N ranks for {model}: {two['bytes_per_step'] / 1e3:,.0f} kB in {two['updates_per_step']} "
                  f"allreduces per step ({two['parameters']:,} parameters)")
            for line in model_table(model, shares, two["bytes_per_step"], two["updates_per_step"]):
                print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
