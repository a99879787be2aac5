"""scratchgan's own losses and penalties, run through the testing kit.

``CHECKS`` maps a name to a function that runs one check and returns its
:class:`~scratchgan.testing.Report` (raising :class:`~scratchgan.testing.PropertyFailed`
on a failure). ``test_builtin.py`` turns each into a pytest test
(``python -m pytest --pyargs scratchgan.testing``); ``python -m scratchgan.testing``
runs them without pytest.
"""

from __future__ import annotations

import functools

from ..gan import losses
from ._checks import PropertyFailed, _name, check_gan_loss, check_penalty

__all__ = ["CHECKS", "run_all"]

GP_WEIGHT = 10.0
R_WEIGHT = 2.0


def _common_prefix(fn):
    """``fn(a, b)`` on the first ``min(len(a), len(b))`` logits of each: RSGAN pairs logits index by index, and the
    kit draws the two batches' sizes independently (the dropped logits get a zero gradient, which is right)."""
    def paired(a, b):
        n = min(a.shape[0], b.shape[0])
        return fn(a[:n], b[:n])

    paired.__name__ = f"{_name(fn)}[paired prefix]"
    return paired


def _gan_loss(kind):
    def run(max_examples=30):
        d = functools.partial(losses.d_loss, kind)
        g = functools.partial(losses.g_loss, kind)
        if kind == "rsgan":
            d, g = _common_prefix(d), _common_prefix(g)
        report = check_gan_loss(d, g, max_examples=max_examples)
        # informational, but pinned for scratchgan's own losses: only the minimax generator loss saturates
        if report.saturates != (kind == "minimax"):
            raise PropertyFailed(f"g_loss({kind!r}): saturates is {report.saturates}, expected {kind == 'minimax'}",
                                 report)
        family = report["cross_entropy_family"].detail.startswith("d_loss(0, 0) = 1.386")
        if family != (kind in ("minimax", "ns")):
            raise PropertyFailed(f"d_loss({kind!r}): detected as cross-entropy family: {family}", report)
        return report

    return run


def _gp(one_sided):
    def run(max_examples=20):
        penalty = functools.partial(losses.gradient_penalty, weight=GP_WEIGHT, one_sided=one_sided)
        closed = (lambda n: GP_WEIGHT * max(n - 1.0, 0.0) ** 2) if one_sided else (lambda n: GP_WEIGHT * (n - 1.0) ** 2)
        return check_penalty(penalty, linear_value=closed, max_examples=max_examples)

    return run


def _dragan(max_examples=20):
    # with alpha=0 the points are the real samples themselves: the kit's per-sample properties hold exactly (the
    # perturbation's scale, one std of the whole batch, couples the samples); tests/test_dragan.py checks the rest
    def dragan(critic, real, fake):
        return losses.dragan_penalty(critic, real, weight=GP_WEIGHT, alpha=0.0)

    return check_penalty(dragan, linear_value=lambda n: GP_WEIGHT * (n - 1.0) ** 2, max_examples=max_examples)


def _r1(max_examples=20):
    def r1(critic, real, fake):
        return losses.r1_penalty(critic, real, R_WEIGHT)

    return check_penalty(r1, linear_value=lambda n: R_WEIGHT / 2 * n * n, max_examples=max_examples)


def _r2(max_examples=20):
    def r2(critic, real, fake):
        return losses.r2_penalty(critic, fake, R_WEIGHT)

    return check_penalty(r2, linear_value=lambda n: R_WEIGHT / 2 * n * n, max_examples=max_examples)


CHECKS = {
    **{f"gan_loss[{kind}]": _gan_loss(kind) for kind in losses.ALL_KINDS},
    "gradient_penalty": _gp(False),
    "gradient_penalty[one_sided]": _gp(True),
    "dragan_penalty[unperturbed]": _dragan,
    "r1_penalty": _r1,
    "r2_penalty": _r2,
}


def run_all(out=print) -> bool:
    """Run every check, print its report; True when all hold."""
    ok = True
    for name, check in CHECKS.items():
        try:
            report = check()
        except PropertyFailed as exc:
            ok = False
            out(f"{name}: FAILED\n{exc}")
        else:
            out(str(report))
    out("scratchgan.testing: every built-in check held" if ok else "scratchgan.testing: some built-in checks FAILED")
    return ok
