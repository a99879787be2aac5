"""The ``scratchgan`` command: train, sample, eval.

Bad arguments exit with status 2 and one line naming the option; so does
``train --out RUN`` when RUN already holds a run and neither ``--resume`` nor
``--overwrite`` is given (the line says what the run is and offers both), and
``train --resume --steps N`` with N below the steps the run has done.
Runtime failures (missing data, a bad checkpoint, an unwritable folder, a run
folder that another process is writing, a failed write) exit with status 1 and
one line, without a traceback.

The options of ``train`` are the fields of :class:`~scratchgan.app.config.TrainConfig`
(``--batch-size`` sets ``batch_size``): their choices come from
:data:`scratchgan.app.config.CHOICES` and each value is checked on parsing by
:func:`scratchgan.app.config.value_problem`, the checks :func:`~scratchgan.app.config.resolve`
applies to a config.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from .._version import __version__
from .config import CHOICES, DATASETS, TrainConfig, recipe_name, value_problem

_DEFAULTS = TrainConfig()


def _usage_line(prog: str, message: str) -> str:
    return f"{prog}: error: {message} (see {prog} --help)\n"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2
        self.exit(2, _usage_line(self.prog, message))


class _UsageError(Exception):
    """A bad argument found after parsing (it needs the run): one line, status 2, as argparse's errors."""


def _int_list(text: str) -> tuple:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 256,256, got {text!r}") from None


def _float_pair(text: str) -> tuple:
    try:
        a, b = (float(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers such as 0.5,0.999, got {text!r}") from None
    return a, b


def _dataset_name(text: str) -> str:
    """Dataset names as :func:`scratchgan.app.data.load_dataset` reads them: any case, ``_`` for ``-``."""
    return text.strip().lower().replace("_", "-")


def _checked(parse, field: str):
    """An argparse type: ``parse`` the text, then check the value as the config field ``field``.

    argparse prefixes the message with the option (``argument --seed: must be >= 0, got -1``).
    """
    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {parse.__name__} value: {text!r}") from None
        problem = value_problem(field, value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    convert.field = field
    return convert


def _at_least(minimum: int):
    """An argparse type: an int >= ``minimum``."""
    def convert(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return convert


def _option(group, flag: str, parse=None, **kwargs) -> None:
    """Add the option of the config field that ``flag`` names (``--batch-size``: ``batch_size``).

    Its choices come from :data:`~scratchgan.app.config.CHOICES`; a ``parse``
    function (``int``, ``float``, ...) makes its type, whose value is checked
    with :func:`~scratchgan.app.config.value_problem`.
    """
    dest = flag.lstrip("-").replace("-", "_")
    if dest in CHOICES:
        kwargs["choices"] = CHOICES[dest]
    if parse is not None:
        kwargs["type"] = _checked(parse, dest)
    group.add_argument(flag, **kwargs)


def _add_train_options(p: argparse.ArgumentParser) -> None:
    """The options of ``train``, in the groups ``--help`` shows: one function per group."""
    _add_data_options(p.add_argument_group("data"))
    _add_objective_options(p.add_argument_group("objective"))
    _add_network_options(p.add_argument_group("networks"))
    _add_optimisation_options(p.add_argument_group("optimisation"))
    _add_run_options(p.add_argument_group("run"))


def _add_data_options(g) -> None:
    """The dataset and where it lies."""
    d = _DEFAULTS
    _option(g, "--data", _dataset_name, default=d.data, metavar="DATA",
            help=f"{', '.join(DATASETS)} (default %(default)s)")
    g.add_argument("--data-path", default=None, help="folder or .npz for mnist/fashion-mnist (or set SCRATCHGAN_DATA)")


def _add_objective_options(g) -> None:
    """The loss, its recipe, the penalties and regularisers, and the auxiliary heads."""
    d = _DEFAULTS
    _option(g, "--loss", default=d.loss, help="default %(default)s")
    _option(g, "--recipe", default=d.recipe,
            help="where unset options come from: 'paper' (the loss's paper recipe), 'toy' (the "
                 "tuned 2-D benchmark recipe, ns only: Adam 2e-3/4e-3, betas 0.5,0.9, R1 0.3, linear lr decay), "
                 "'image' (DCGAN networks, z-dim 100, batch 64, a 20-minute step count, the loss's paper "
                 "optimiser; Adam 8e-4 for ns) or 'auto' (image for image data, toy for ns on ring8/grid25, paper otherwise; default)")
    _option(g, "--r1", float, default=d.r1,
            help="R1 penalty weight gamma on real data (0 = off; default: the recipe's, 0.3 toy, 0 paper)")
    _option(g, "--label-smoothing", float, default=d.label_smoothing,
            help="one-sided label smoothing s: D's target on real data is 1 - s (Salimans et al. 2016; gan and ns "
                 "losses; 0 = off; default: the recipe's)")
    _option(g, "--pack", int, default=d.pack,
            help="PacGAN packing: D judges this many samples at once (1 = plain GAN; default %(default)s)")
    _option(g, "--penalty-weight", float, help="WGAN-GP lambda (default 10)")
    _option(g, "--dragan", float, default=d.dragan,
            help="DRAGAN penalty weight lambda: (||grad D|| - 1)^2 at points perturbed around the real data "
                 "(Kodali et al. 2017 use 10; 0 = off; default %(default)s)")
    _option(g, "--clip-value", float, help="WGAN weight clipping c (default 0.01)")
    _option(g, "--aux", default=d.aux,
            help="an auxiliary head on D: 'acgan' (Odena et al. 2017: D also classifies real and fake images, G is "
                 "class-conditional; labelled data), 'infogan' (Chen et al. 2016: G also takes a categorical and "
                 "continuous codes that a Q head on D predicts; no labels) or 'none' (default %(default)s)")
    _option(g, "--aux-weight", float, default=d.aux_weight,
            help="weight of the ACGAN classification losses / the InfoGAN mutual-information penalty, added to "
                 "both G's and D's loss (default %(default)s)")
    _option(g, "--info-categories", int, default=d.info_categories,
            help="InfoGAN: categories of the one-hot code (0 = none; default %(default)s)")
    _option(g, "--info-continuous", int, default=d.info_continuous,
            help="InfoGAN: continuous codes, uniform on [-1, 1] (0 = none; default %(default)s)")
    g.add_argument("--diffaugment", action="store_true",
                   help="DiffAugment (Zhao et al. 2020): D sees every real and fake image randomly shifted (up to "
                        "1/8 of the side) and with a square of half the side cut out, in D's and G's updates; meant "
                        "for small data sets (images only)")


def _add_network_options(g) -> None:
    """G's and D's architecture."""
    d = _DEFAULTS
    _option(g, "--arch", default=d.arch,
            help="mlp or dcgan (convolutional, images with sides divisible by 4; default: the recipe's, dcgan "
                 "for images, mlp otherwise)")
    _option(g, "--g-fc", int, default=d.g_fc,
            help="dcgan only: width of a fully connected hidden layer at G's input, before the first feature map "
                 "(0 = none, the reference DCGAN; default: the recipe's, 256 for images)")
    _option(g, "--d-fc", int, default=d.d_fc,
            help="dcgan only: width of a fully connected hidden layer between D's convolutions and its output "
                 "(0 = none, the reference DCGAN; default: the recipe's, 256 for images)")
    _option(g, "--z-dim", int, default=d.z_dim, help="noise dimension (default: the recipe's, 100 image, 16 otherwise)")
    _option(g, "--g-hidden", _int_list, default=d.g_hidden, help="MLP only, e.g. 256,256,256")
    _option(g, "--d-hidden", _int_list, default=d.d_hidden, help="MLP only, e.g. 256,256,256")
    _option(g, "--g-activation", default=d.g_activation)
    _option(g, "--d-activation", default=d.d_activation)
    g.add_argument("--conditional", action="store_true",
                   help="class-conditional GAN (label embeddings; dcgan: a projection discriminator)")
    g.add_argument("--spectral-norm", action="store_true",
                   help="SNGAN: spectral normalisation of every Linear/Conv layer of D, and no batch norm in D "
                        "(use with --loss hinge: SNGAN's recipe)")
    _option(g, "--embed-dim", int, default=d.embed_dim)


def _add_optimisation_options(g) -> None:
    """Steps, batch, optimiser, learning rates and their schedule, the generator's EMA."""
    d = _DEFAULTS
    _option(g, "--steps", int, default=d.steps,
            help="total generator steps (default: the recipe's, 12000 toy and paper, 4000 image)")
    _option(g, "--batch-size", int, default=d.batch_size, help="default: the recipe's, 128 toy and paper, 64 image")
    _option(g, "--optimizer", help="default: the recipe's")
    _option(g, "--lr-g", float, help="generator learning rate (default: the recipe's)")
    _option(g, "--lr-d", float, help="discriminator learning rate (TTUR when it differs; default: the recipe's)")
    _option(g, "--betas", _float_pair, help="Adam betas, e.g. 0.5,0.999 (default: the recipe's)")
    _option(g, "--n-critic", int, help="D updates per G update (default: the recipe's)")
    _option(g, "--lr-decay", default=d.lr_decay,
            help="learning-rate schedule of both nets: 'none' (constant) or 'linear' (to 0 at --lr-decay-steps; "
                 "default: the recipe's, linear toy, none paper)")
    _option(g, "--lr-decay-steps", int, default=d.lr_decay_steps,
            help="step at which the linear decay reaches 0, at least --steps (default: the run's --steps, "
                 "fixed when it starts and saved with the run)")
    _option(g, "--ema-decay", float, default=d.ema_decay, help="generator EMA decay (0 = off; default: the recipe's, 0.999 toy and paper, 0.99 image)")


def _add_run_options(g) -> None:
    """Seed and device, the run folder (new, resumed or overwritten), logging and distributed training."""
    d = _DEFAULTS
    _option(g, "--seed", int, default=d.seed)
    _option(g, "--backend", default=None, help="default: SCRATCHGAN_BACKEND or numpy")
    _option(g, "--dtype", default=d.dtype)
    g.add_argument("--out", type=Path, default=None,
                   help="run folder (default: a new one, runs/DATA-LOSS, then runs/DATA-LOSS-2, ...); a folder that "
                        "holds a run is refused unless --resume or --overwrite is given")
    once = g.add_mutually_exclusive_group()
    once.add_argument("--resume", action="store_true",
                      help="continue the run in --out up to --steps total steps (default: the run's own; fewer than it "
                           "has done is an error, more than it was planned for says what that changes)")
    once.add_argument("--overwrite", action="store_true",
                      help="replace the run in --out: its checkpoint, metrics, pictures and evaluation are removed "
                           "(once the folder's lock is held)")
    _option(g, "--log-every", int, default=d.log_every)
    _option(g, "--sample-every", int, default=d.sample_every)
    _option(g, "--checkpoint-every", int, default=d.checkpoint_every)
    _option(g, "--eval-samples", int, default=d.eval_samples)
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--distributed", action="store_true",
                   help="data-parallel training over the ranks of `mpiexec -n N` (MPI; NCCL on GPUs with --backend "
                        "cupy): --batch-size is the global batch, split into N equal shares; rank 0 writes the run "
                        "folder (needs pip install \"scratchgan[mpi]\"; docs/distributed.md)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="scratchgan", description="GANs from scratch on a NumPy/CuPy autograd engine.")
    parser.add_argument("--version", action="version", version=f"scratchgan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,sample,eval,check-loss,graph,profile}", parser_class=_Parser)
    train = sub.add_parser("train", help="train a GAN (no options: grid25, about a minute on 2 cores)",
                           description="Train a GAN. With no options: the grid25 toy benchmark; with --data "
                                       "mnist, fashion-mnist, mnist5k or digits: a DCGAN (the image recipe).")
    _add_train_options(train)
    sample = sub.add_parser("sample", help="draw samples from a trained run into a .npy file")
    sample.add_argument("--run", type=Path, required=True, help="the run folder")
    sample.add_argument("-n", type=_at_least(1), default=1000, help="number of samples")
    sample.add_argument("--out", type=Path, required=True, help="output .npy file")
    sample.add_argument("--seed", type=_checked(int, "seed"), default=0)
    sample.add_argument("--label", type=int, default=None,
                        help="class label, 0 to C-1 (conditional runs of C classes)")
    ev = sub.add_parser("eval", help="evaluate a trained run and print JSON")
    ev.add_argument("--run", type=Path, required=True, help="the run folder")
    ev.add_argument("-n", type=_at_least(2), default=None, help="number of samples (default: the run's eval_samples)")
    check = sub.add_parser(
        "check-loss", help="check your own GAN loss or gradient penalty with scratchgan.testing's properties",
        description="Import FILE.py:NAME and check it with scratchgan.testing: a discriminator loss "
                    "NAME(real_logits, fake_logits) (--kind loss, with --g a generator loss in the same file) or a "
                    "gradient penalty NAME(critic, real, fake) (--kind penalty). Prints each property (held, "
                    "failed with hypothesis's shrunk counterexample, or information such as saturation); "
                    "exit status 1 when one fails. Needs hypothesis (pip install \"scratchgan[test]\"); "
                    "see docs/testing.md.")
    check.add_argument("target", metavar="FILE.py:NAME", help="the file and the function's name in it")
    check.add_argument("--g", metavar="NAME", default=None,
                       help="a generator loss NAME(fake_logits) (or NAME(fake_logits, real_logits)) in the same file")
    check.add_argument("--kind", choices=("loss", "penalty"), default="loss", help="default %(default)s")
    check.add_argument("--max-examples", type=_at_least(1), default=None,
                       help="examples per property (default: 30 for a loss, 20 for a penalty)")
    _add_study_commands(sub)
    return parser


def _add_study_commands(sub) -> None:
    """``graph`` and ``profile``: the study tools (scratchgan.study.viz, scratchgan.study.profiler) on a run's configuration."""
    graph = sub.add_parser(
        "graph", help="draw the graph of one training step of a run (SVG/PNG with Graphviz, else .dot)",
        description="Run one discriminator (--which d) or generator (--which g) step of the run's configuration, "
                    "penalties included, on an in-memory copy (the run is not changed), and draw the graph its "
                    "backward walks (scratchgan.study.viz): ops, parameters by name, and the part recorded by "
                    "grad(create_graph=True) for a gradient penalty or R1 in orange. Without Graphviz's dot "
                    "program (apt install graphviz) it writes the .dot file and says how to render it.")
    graph.add_argument("--run", type=Path, required=True, help="the run folder")
    graph.add_argument("--out", type=Path, required=True, help="picture to write: .svg, .png, .pdf or .dot")
    graph.add_argument("--which", choices=("d", "g"), default="d",
                       help="the discriminator's or the generator's step (default %(default)s)")
    graph.add_argument("--show-saved", action="store_true",
                       help="also draw what each node keeps for its backward (constant inputs, axes, masks)")
    prof = sub.add_parser(
        "profile", help="time every op of a run's training step and print a table (scratchgan.study.profiler)",
        description="Run one warm-up step and then --steps training steps of the run's configuration on an "
                    "in-memory copy (the run is not changed) under sg.profile(), and print the time of each "
                    "op, backward rule, optimizer call and the autograd engine, grouped by op and shape.")
    prof.add_argument("--run", type=Path, required=True, help="the run folder")
    prof.add_argument("--steps", type=_at_least(1), default=20, help="profiled steps (default %(default)s)")
    prof.add_argument("--top", type=_at_least(1), default=20, help="lines of the table (default %(default)s)")
    prof.add_argument("--sort", choices=("time", "calls", "mean", "bytes", "name"), default="time",
                      help="order of the lines (default %(default)s)")
    prof.add_argument("--group-by", choices=("shape", "op"), default="shape",
                      help="one line per op and shape, or per op (default %(default)s)")


def _config_from_args(args) -> TrainConfig:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    if args.backend is None:
        from .. import backend  # noqa: PLC0415

        values["backend"] = backend.get_backend()
    return TrainConfig(**values)


def _new_run_folder(data: str, loss: str) -> Path:
    """The first of runs/DATA-LOSS, runs/DATA-LOSS-2, ... that does not exist, created (so two runs never share it)."""
    base = Path("runs") / f"{data}-{loss}"
    base.parent.mkdir(parents=True, exist_ok=True)
    for i in itertools.count(1):
        folder = base if i == 1 else base.with_name(f"{base.name}-{i}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder


def _refuse_run(out: Path, summary: str) -> int:
    """One line: what the run in ``out`` is, and the three ways on (status 2, as a bad argument)."""
    resume = "continue it with --resume, " if (out / "checkpoint.npz").is_file() else ""
    print(f"scratchgan: error: {out} already holds a run ({summary}); {resume}replace it with --overwrite, "
          "or choose another --out", file=sys.stderr)
    return 2


def _show_run_warning(message, category, filename, lineno, file=None, line=None):
    print(f"scratchgan: warning: {message}", file=sys.stderr)


def _train(args, comm=None, ready=None) -> int:
    """``train``; data-parallel, rank 0 runs this with ``comm`` and calls ``ready(out)`` once it holds the folder."""
    if getattr(args, "distributed", False) and comm is None:
        return _train_distributed(args)
    from .checkpoint import CheckpointError  # noqa: PLC0415 - keeps --help fast
    from .train import ResumeStepsError, RunExistsError, RunWarning, Trainer, lock_run_folder, run_summary

    if args.resume:
        if args.out is None:
            raise _UsageError("argument --resume: needs --out RUN, the folder of the run to continue")
        out, created = args.out, False
        if not (out / "checkpoint.npz").is_file():
            raise CheckpointError(f"nothing to resume in {out}: no checkpoint.npz there; start a run with: "
                                  f"scratchgan train --out {out}")
    elif args.out is None:
        out, created = _new_run_folder(args.data, args.loss), True
    else:
        out, created = args.out, not args.out.exists()
        summary = run_summary(out)
        if summary is not None and not args.overwrite:
            return _refuse_run(out, summary)  # before the lock: the folder is left untouched
    try:
        with lock_run_folder(out) as lock, warnings.catch_warnings():
            warnings.simplefilter("always", RunWarning)
            warnings.showwarning = _show_run_warning
            if lock.note:
                print(f"scratchgan: {lock.note}", file=sys.stderr)
            if ready is not None:
                ready(out)  # data-parallel: the other ranks start with this run folder
            if args.resume:
                try:
                    trainer = Trainer.resume(out, steps=args.steps, lock=lock, comm=comm)
                except ResumeStepsError as exc:  # fewer steps than done: a bad --steps (nothing was written)
                    raise _UsageError(f"argument --steps: {exc}") from None
                print(f"resuming {out} at step {trainer.step} of {trainer.config.steps}")
            else:
                summary = run_summary(out) if args.overwrite else None
                trainer = Trainer(_config_from_args(args), out, overwrite=args.overwrite, lock=lock, comm=comm)
                if summary is not None:
                    print(f"overwriting the run in {out} ({summary}): its checkpoint, metrics, pictures and "
                          "evaluation are replaced")
            return _run_training(trainer, out, args)
    except RunExistsError as exc:  # the folder was used between the first look and the lock
        return _refuse_run(out, exc.summary)
    except BaseException:
        if created:  # a start that failed leaves no empty folder behind (the lock has removed its file)
            try:
                out.rmdir()
            except OSError:  # not empty: keep it
                pass
        raise


def _run_training(trainer, out: Path, args) -> int:
    c = trainer.config
    print(plan_line(trainer, out), flush=True)
    try:
        result = trainer.run(progress=False if args.quiet else None)
    except KeyboardInterrupt:
        print(f"\ninterrupted at step {trainer.step}: checkpoint saved in {out / 'checkpoint.npz'} "
              f"(continue with: scratchgan train --resume --out {out} --steps {c.steps})")
        return 130
    print(json.dumps(result, indent=1))
    print(f"pictures: {out / 'samples.png'}, {out / 'losses.png'}; metrics: {out / 'metrics.jsonl'}, {out / 'eval.json'}")
    return 0


def plan_line(trainer, out) -> str:
    """One line saying what the run will do and how long its training should take (measured on a copy)."""
    c = trainer.config
    left = max(c.steps - trainer.step, 0)
    seconds_per_step = trainer.measure_step_time() if left > 0 else 0.0
    total = seconds_per_step * left
    duration = f"{total / 60:.1f} min" if total >= 60 else f"{total:.0f} s"
    comm = getattr(trainer, "comm", None)
    ranks = "" if comm is None else f" ({comm.size} ranks of {c.batch_size // comm.size}, {comm.transport})"
    aux = "" if getattr(c, "aux", "none") == "none" else f" with {c.aux}"
    return (f"plan: {c.arch} {c.loss} GAN{aux} on {c.data} (recipe {recipe_name(c)}): {left} of {c.steps} steps of "
            f"batch {c.batch_size}{ranks}, about {duration} of training ({seconds_per_step:.3g} s/step measured on "
            f"this machine) plus the evaluation; backend {c.backend}, run folder {out}")


_ERRORS_IN_ONE_LINE = ("DataError", "CheckpointError", "ConfigError", "DistributedError")


def _abort_job(comm, exc: BaseException) -> None:
    """Data-parallel: report this rank's error and stop every rank (MPI_Abort), so none is left waiting."""
    who = "" if comm.rank == 0 else f" (rank {comm.rank} of {comm.size})"
    if not (type(exc).__name__ in _ERRORS_IN_ONE_LINE or isinstance(exc, (ValueError, OSError, RuntimeError))):
        import traceback  # noqa: PLC0415

        traceback.print_exception(type(exc), exc, exc.__traceback__)
    print(f"scratchgan: error{who}: {type(exc).__name__ + ': ' if isinstance(exc, KeyboardInterrupt) else ''}{exc}; "
          f"stopping all {comm.size} ranks", file=sys.stderr)
    comm.abort(1)


def _train_distributed(args) -> int:
    """``train --distributed`` under ``mpiexec -n N``: data-parallel training (docs/distributed.md).

    Rank 0 runs the command as one process does (run folder, lock, messages,
    files) and, once it holds the folder, tells the other ranks, which then
    train with it and write nothing. A rank that fails from then on reports
    its error and aborts the job (MPI_Abort), so no rank waits forever; before
    that, rank 0's exit status reaches the others and they stop quietly.
    """
    from .config import ConfigError, resolve  # noqa: PLC0415
    from .distributed import Communicator, local_shares  # noqa: PLC0415 - imports mpi4py
    from .train import Trainer  # noqa: PLC0415

    comm = Communicator(backend=args.backend)
    if not args.resume:  # the same checks on every rank: rank 0 says what is wrong, all stop
        try:
            c = resolve(_config_from_args(args))
        except ConfigError as exc:
            if comm.rank == 0:
                print(f"scratchgan: error: {exc}", file=sys.stderr)
            return 1
        try:
            local_shares(c, comm.rank, comm.size)  # the batch's split over the ranks, options that cannot split
        except ConfigError as exc:
            if comm.rank == 0:
                print(_usage_line("scratchgan train", str(exc)), end="", file=sys.stderr)
            return 2
    if comm.rank == 0:
        sent = []

        def ready(out):
            comm.bcast_object(str(out))
            sent.append(out)

        try:
            code = _train(args, comm, ready)
        except BaseException as exc:
            if not sent:
                comm.bcast_object(1)  # the others stop quietly; main() reports the error
                raise
            _abort_job(comm, exc)
        if not sent:
            comm.bcast_object(code)
        elif code not in (0, 130):  # stopped after the others started (the message is printed): stop them too
            comm.abort(code)
        return code
    out = comm.bcast_object(None)  # rank 0's run folder, or its exit status when it stopped before training
    if isinstance(out, int):
        return out
    try:
        out = Path(out)
        if args.resume:
            trainer = Trainer.resume(out, steps=args.steps, comm=comm)
        else:
            trainer = Trainer(_config_from_args(args), out, overwrite=args.overwrite, comm=comm)
        plan_line(trainer, out)  # rank 0 prints it; its measure of the step time is collective
        try:
            trainer.run(progress=False)
        except KeyboardInterrupt:  # every rank stops at the same step (rank 0 saved the checkpoint)
            return 130
    except BaseException as exc:  # noqa: BLE001 - whatever it is, the other ranks must not wait for this one
        _abort_job(comm, exc)
    return 0


def _load_run(run: Path):
    from .train import Trainer  # noqa: PLC0415

    if not (run / "checkpoint.npz").exists():
        from .checkpoint import CheckpointError  # noqa: PLC0415

        raise CheckpointError(f"no checkpoint.npz in {run}; train first with: scratchgan train --out {run}")
    return Trainer.load(run)  # reads only: no lock, nothing written


def _sample(args) -> int:
    if args.out.suffix != ".npy":
        raise ValueError(f"--out must end in .npy, got {args.out}")
    trainer = _load_run(args.run)
    k = trainer.data.num_classes
    if args.label is not None and trainer.config.conditional and not 0 <= args.label < k:
        raise _UsageError(f"argument --label: must be a class of this run, 0 to {k - 1} ({trainer.data.name} has "
                          f"{k} classes), got {args.label}")
    x = trainer.sample(args.n, labels=args.label, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, x)
    print(f"wrote {x.shape} samples to {args.out}")
    return 0


def _eval(args) -> int:
    trainer = _load_run(args.run)
    if args.n is not None:
        trainer.config = dataclasses.replace(trainer.config, eval_samples=args.n)
    print(json.dumps(trainer.evaluate(), indent=1))
    return 0


def _load_function(path: Path, name: str, option: str):
    """Import ``path`` as a module (without touching sys.modules) and return its callable ``name``."""
    import importlib.util  # noqa: PLC0415

    if not path.is_file():
        raise _UsageError(f"argument {option}: no such file: {path}")
    spec = importlib.util.spec_from_file_location(f"_scratchgan_check_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's file: report it in one line
        raise RuntimeError(f"importing {path} failed: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise _UsageError(f"argument {option}: {path} has no function {name!r} (it has: {', '.join(found) or 'none'})")
    return fn


def _check_loss(args) -> int:
    try:
        from .. import testing  # noqa: PLC0415 - needs hypothesis
    except ImportError as exc:
        raise RuntimeError(str(exc)) from None
    file, sep, name = args.target.rpartition(":")
    if not sep or not file or not name:
        raise _UsageError(f"argument FILE.py:NAME: expected a file and a function name such as losses.py:d_loss, "
                          f"got {args.target!r}")
    path = Path(file)
    fn = _load_function(path, name, "FILE.py:NAME")
    if args.kind == "penalty":
        if args.g is not None:
            raise _UsageError("argument --g: a generator loss goes with --kind loss, not --kind penalty")
        report = testing.check_penalty(fn, max_examples=args.max_examples or 20, raise_on_failure=False)
    else:
        g = _load_function(path, args.g, "--g") if args.g is not None else None
        report = testing.check_gan_loss(fn, g, max_examples=args.max_examples or 30, raise_on_failure=False)
    print(report)
    return 0 if report.ok else 1


def _step_description(trainer, run: Path) -> str:
    c = trainer.config
    penalties = [f"R1 {c.r1:g}"] if c.r1 > 0 else []
    if c.loss == "wgan-gp":
        penalties.append(f"gradient penalty {c.penalty_weight:g}")
    if getattr(c, "dragan", 0) > 0:
        penalties.append(f"DRAGAN {c.dragan:g}")
    return (f"{c.arch} {c.loss} GAN on {c.data}, batch {c.batch_size}{''.join(', ' + p for p in penalties)}, "
            f"backend {c.backend} ({run})")


def _graph(args) -> int:
    from ..study import viz  # noqa: PLC0415

    trainer = _load_run(args.run)
    params = {f"D.{n}": p for n, p in trainer.D.named_parameters()}
    params.update({f"G.{n}": p for n, p in trainer.G.named_parameters()})
    which = "discriminator" if args.which == "d" else "generator"
    title = f"one {which} step: {_step_description(trainer, args.run)}"
    # the step's own backward() frees its graph: capture draws it as that backward starts
    with viz.capture(params=params, show_saved=args.show_saved, title=title) as cap:
        trainer.d_update() if args.which == "d" else trainer.g_update()
    graph = cap.last
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", viz.GraphvizMissing)
        written = viz.render(graph.dot, args.out)
    for w in caught:
        if issubclass(w.category, viz.GraphvizMissing):
            print(f"scratchgan: {w.message}", file=sys.stderr)
    print(f"wrote the graph of one {which} step ({graph.nodes} nodes) to {written}")
    return 0


def _profile(args) -> int:
    from ..study.profiler import profile  # noqa: PLC0415

    trainer = _load_run(args.run)
    trainer.train_step(with_norms=False)  # warm-up: first-call allocations and optimizer state stay out of the table
    with profile() as prof:
        for _ in range(args.steps):
            trainer.train_step(with_norms=False)
    print(f"{args.steps} training steps of {_step_description(trainer, args.run)}: "
          f"{prof.wall / args.steps * 1e3:.2f} ms per step under the profiler")
    print(prof.table(sort_by=args.sort, top=args.top, group_by=args.group_by))
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from .checkpoint import CheckpointError  # noqa: PLC0415
    from .config import ConfigError  # noqa: PLC0415
    from .data import DataError  # noqa: PLC0415

    from .process import keep_heap_warm  # noqa: PLC0415

    keep_heap_warm()  # this command owns its process (see scratchgan/app/process.py); the library never does this
    try:
        return {"train": _train, "sample": _sample, "eval": _eval, "check-loss": _check_loss, "graph": _graph,
                "profile": _profile}[args.command](args)
    except _UsageError as exc:
        prog = f"{parser.prog} {args.command}"
        print(_usage_line(prog, str(exc)), end="", file=sys.stderr)
        return 2
    except (DataError, CheckpointError, ConfigError, ValueError, OSError, RuntimeError) as exc:
        print(f"scratchgan: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
