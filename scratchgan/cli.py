"""The ``scratchgan`` command: train, sample, eval.

Bad arguments exit with status 2 and one line; runtime failures (missing
data, a bad checkpoint, an unwritable folder) exit with status 1 and one
line, without a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from . import __version__
from .config import ACTIVATIONS, LOSSES, LR_DECAYS, RECIPES, TrainConfig

_DEFAULTS = TrainConfig()


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_list(text: str) -> tuple:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 256,256, got {text!r}") from None
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive layer widths such as 256,256, got {text!r}")
    return sizes


def _float_pair(text: str) -> tuple:
    try:
        a, b = (float(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers such as 0.5,0.999, got {text!r}") from None
    return a, b


def _add_train_options(p: argparse.ArgumentParser) -> None:
    d = _DEFAULTS
    g = p.add_argument_group("data")
    g.add_argument("--data", default=d.data, help="ring8, grid25, mnist, fashion-mnist, mnist5k, digits (default %(default)s)")
    g.add_argument("--data-path", default=None, help="folder or .npz for mnist/fashion-mnist (or set SCRATCHGAN_DATA)")
    g = p.add_argument_group("objective")
    g.add_argument("--loss", choices=LOSSES, default=d.loss, help="default %(default)s")
    g.add_argument("--recipe", choices=RECIPES, default=d.recipe,
                   help="where unset optimiser options come from: 'paper' (the loss's paper recipe), 'toy' (the "
                        "tuned 2-D benchmark recipe, ns only: Adam 2e-3/4e-3, betas 0.5,0.9, R1 0.3, linear lr decay) "
                        "or 'auto' (toy for ns on ring8/grid25, paper otherwise; default)")
    g.add_argument("--r1", type=float, default=d.r1,
                   help="R1 penalty weight gamma on real data (0 = off; default: the recipe's, 0.3 toy, 0 paper)")
    g.add_argument("--pack", type=int, default=d.pack,
                   help="PacGAN packing: D judges this many samples at once (1 = plain GAN; default %(default)s)")
    g.add_argument("--penalty-weight", type=float, help="WGAN-GP lambda (default 10)")
    g.add_argument("--clip-value", type=float, help="WGAN weight clipping c (default 0.01)")
    g = p.add_argument_group("networks")
    g.add_argument("--z-dim", type=int, default=d.z_dim)
    g.add_argument("--g-hidden", type=_int_list, default=d.g_hidden, help="e.g. 256,256,256")
    g.add_argument("--d-hidden", type=_int_list, default=d.d_hidden, help="e.g. 256,256,256")
    g.add_argument("--g-activation", choices=ACTIVATIONS, default=d.g_activation)
    g.add_argument("--d-activation", choices=ACTIVATIONS, default=d.d_activation)
    g.add_argument("--conditional", action="store_true", help="class-conditional GAN (label embeddings)")
    g.add_argument("--embed-dim", type=int, default=d.embed_dim)
    g = p.add_argument_group("optimisation")
    g.add_argument("--steps", type=int, default=d.steps, help="total generator steps (default %(default)s)")
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--optimizer", choices=("adam", "rmsprop", "sgd"), help="default: the recipe's")
    g.add_argument("--lr-g", type=float, help="generator learning rate (default: the recipe's)")
    g.add_argument("--lr-d", type=float,
                   help="discriminator learning rate (TTUR when it differs; default: the recipe's)")
    g.add_argument("--betas", type=_float_pair, help="Adam betas, e.g. 0.5,0.999 (default: the recipe's)")
    g.add_argument("--n-critic", type=int, help="D updates per G update (default: the recipe's)")
    g.add_argument("--lr-decay", choices=LR_DECAYS, default=d.lr_decay,
                   help="learning-rate schedule of both nets: 'none' (constant) or 'linear' (to 0 at --lr-decay-steps; "
                        "default: the recipe's, linear toy, none paper)")
    g.add_argument("--lr-decay-steps", type=int, default=d.lr_decay_steps,
                   help="step at which the linear decay reaches 0, at least --steps (default: the recipe's, 12000 "
                        "toy; paper: --steps); for a short toy run set it to --steps")
    g.add_argument("--ema-decay", type=float, default=d.ema_decay, help="generator EMA decay (0 = off)")
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--backend", choices=("numpy", "cupy"), default=None, help="default: SCRATCHGAN_BACKEND or numpy")
    g.add_argument("--dtype", choices=("float32", "float64"), default=d.dtype)
    g.add_argument("--out", type=Path, default=None, help="run folder (default runs/DATA-LOSS)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out up to --steps total steps")
    g.add_argument("--log-every", type=int, default=d.log_every)
    g.add_argument("--sample-every", type=int, default=d.sample_every)
    g.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    g.add_argument("--eval-samples", type=int, default=d.eval_samples)
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="scratchgan", description="GANs from scratch on a NumPy/CuPy autograd engine.")
    parser.add_argument("--version", action="version", version=f"scratchgan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,sample,eval}", parser_class=_Parser)
    train = sub.add_parser("train", help="train a GAN (no options: grid25, about a minute on 2 cores)",
                           description="Train a GAN. With no options: the grid25 toy benchmark.")
    _add_train_options(train)
    sample = sub.add_parser("sample", help="draw samples from a trained run into a .npy file")
    sample.add_argument("--run", type=Path, required=True, help="the run folder")
    sample.add_argument("-n", type=int, default=1000, help="number of samples")
    sample.add_argument("--out", type=Path, required=True, help="output .npy file")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--label", type=int, default=None, help="class label (conditional runs)")
    ev = sub.add_parser("eval", help="evaluate a trained run and print JSON")
    ev.add_argument("--run", type=Path, required=True, help="the run folder")
    ev.add_argument("-n", type=int, default=None, help="number of samples (default: the run's eval_samples)")
    return parser


def _config_from_args(args) -> TrainConfig:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    if args.backend is None:
        from . import backend  # noqa: PLC0415

        values["backend"] = backend.get_backend()
    return TrainConfig(**values)


def _train(args) -> int:
    from .train import Trainer  # noqa: PLC0415 - keeps --help fast

    out = args.out or Path("runs") / f"{args.data}-{args.loss}"
    if args.resume:
        trainer = Trainer.resume(out, steps=args.steps)
        print(f"resuming {out} at step {trainer.step} of {trainer.config.steps}")
    else:
        trainer = Trainer(_config_from_args(args), out)
    c = trainer.config
    print(f"training {c.loss} on {c.data}: {c.steps} steps, batch {c.batch_size}, backend {c.backend}, run folder {out}")
    try:
        result = trainer.run(progress=False if args.quiet else None)
    except KeyboardInterrupt:
        print(f"\ninterrupted at step {trainer.step}: checkpoint saved in {out / 'checkpoint.npz'} "
              f"(continue with: scratchgan train --resume --out {out} --steps {c.steps})")
        return 130
    print(json.dumps(result, indent=1))
    print(f"pictures: {out / 'samples.png'}, {out / 'losses.png'}; metrics: {out / 'metrics.jsonl'}, {out / 'eval.json'}")
    return 0


def _load_run(run: Path):
    from .train import Trainer  # noqa: PLC0415

    if not (run / "checkpoint.npz").exists():
        from .checkpoint import CheckpointError  # noqa: PLC0415

        raise CheckpointError(f"no checkpoint.npz in {run}; train first with: scratchgan train --out {run}")
    return Trainer.resume(run)


def _sample(args) -> int:
    if args.n <= 0:
        raise ValueError(f"-n must be positive, got {args.n}")
    if args.out.suffix != ".npy":
        raise ValueError(f"--out must end in .npy, got {args.out}")
    trainer = _load_run(args.run)
    x = trainer.sample(args.n, labels=args.label, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, x)
    print(f"wrote {x.shape} samples to {args.out}")
    return 0


def _eval(args) -> int:
    trainer = _load_run(args.run)
    if args.n is not None:
        if args.n <= 0:
            raise ValueError(f"-n must be positive, got {args.n}")
        trainer.config = dataclasses.replace(trainer.config, eval_samples=args.n)
    print(json.dumps(trainer.evaluate(), indent=1))
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

    try:
        return {"train": _train, "sample": _sample, "eval": _eval}[args.command](args)
    except (DataError, CheckpointError, ConfigError, ValueError, OSError, RuntimeError) as exc:
        print(f"scratchgan: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
