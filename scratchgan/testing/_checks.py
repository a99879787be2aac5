"""Property checks for a user's GAN losses, gradient penalties and differentiable functions.

Each check runs hypothesis on a few properties. A property that fails raises
:class:`PropertyFailed` (an ``AssertionError``) naming the property, what went
wrong and hypothesis's *shrunk* counterexample (the simplest input that still
fails). When every property holds, :func:`check_gradients` returns None and
:func:`check_gan_loss` / :func:`check_penalty` return a :class:`Report`, whose
informational entries (``status == "info"``) say, for instance, whether the
generator loss saturates; ``report.saturates`` holds that answer.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..autograd import random as _sg_random
from ..autograd.engine import grad
from ..autograd.gradcheck import gradcheck, gradgradcheck
from ..autograd.tensor import Tensor
from ..backend.validate import set_default_generator
from ._strategies import _count_pairs, batches, critics, logits

__all__ = ["PropertyFailed", "PropertyResult", "Report", "check_gan_loss", "check_gradients", "check_penalty"]

LOG4 = math.log(4.0)


# --------------------------------------------------------------------------- results


class PropertyFailed(AssertionError):
    """A property of a loss, penalty or gradient does not hold; the message names it and the counterexample.

    ``report`` holds the :class:`Report` of every property checked (for
    :func:`check_gradients`, of that one property).
    """

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


@dataclass
class PropertyResult:
    """One property: ``status`` is ``"held"``, ``"failed"``, ``"info"`` (informational) or ``"skipped"``."""

    name: str
    status: str
    detail: str = ""
    counterexample: str | None = None

    def __str__(self):
        line = f"{self.status.upper():8s}{self.name}"
        if self.detail:
            line += f": {self.detail}"
        if self.counterexample is not None:
            line += f"\n        counterexample (shrunk by hypothesis): {self.counterexample}"
        return line


@dataclass
class Report:
    """The properties a check ran, in order; ``saturates`` is set by :func:`check_gan_loss` when a g_loss is given."""

    subject: str
    results: list = field(default_factory=list)
    saturates: bool | None = None

    @property
    def failures(self):
        return [r for r in self.results if r.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failures

    def __getitem__(self, name):
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def __str__(self):
        lines = [f"{self.subject}:"] + [f"  {r}" for r in self.results]
        failed = len(self.failures)
        lines.append(f"  {failed} of {sum(r.status in ('held', 'failed') for r in self.results)} properties failed"
                     if failed else "  all properties held")
        return "\n".join(lines)


def _name(fn):
    """A readable name of a function, a partial (``d_loss('ns')``) or a callable object."""
    import functools  # noqa: PLC0415

    if isinstance(fn, functools.partial):
        args = ", ".join([repr(a) for a in fn.args] + [f"{k}={v!r}" for k, v in fn.keywords.items()])
        return f"{_name(fn.func)}({args})"
    return getattr(fn, "__name__", type(fn).__name__)


def _show(value):
    if isinstance(value, Tensor):
        value = value.numpy()
    if isinstance(value, np.ndarray):  # one line, every digit
        return " ".join(np.array_repr(value, precision=17, max_line_width=10_000).split())
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_show(v) for v in value)
        return f"({inner}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{inner}]"
    return repr(value)


def _hypothesis(body, strategies: dict, max_examples: int):
    """Run ``body(**drawn)`` under hypothesis; return None, or (exception, shrunk inputs as text)."""
    last = {}

    @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False, print_blob=False,
              verbosity=Verbosity.quiet, phases=(Phase.explicit, Phase.generate, Phase.shrink))
    @given(drawn=st.fixed_dictionaries(strategies))
    def run(drawn):
        last.clear()
        last.update(drawn)  # hypothesis replays the shrunk example last: this keeps it
        with np.errstate(all="ignore"):
            body(**drawn)

    try:
        run()
    except Exception as exc:  # noqa: BLE001 - a user's loss may raise anything; report it as the failure
        shown = ", ".join(f"{k}={_show(v)}" for k, v in last.items())
        return exc, shown
    return None


def _run_property(report, name, body, strategies, max_examples, detail=""):
    outcome = _hypothesis(body, strategies, max_examples)
    if outcome is None:
        report.results.append(PropertyResult(name, "held", detail))
        return True
    exc, shown = outcome
    why = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if not isinstance(exc, AssertionError) or not why:
        why = f"{type(exc).__name__}: {why}" if why else type(exc).__name__
    report.results.append(PropertyResult(name, "failed", why, shown))
    return False


def _finish(report, raise_on_failure):
    if raise_on_failure and report.failures:
        parts = [f"property {r.name!r} failed: {r.detail}\n    counterexample (shrunk by hypothesis): "
                 f"{r.counterexample}" for r in report.failures]
        raise PropertyFailed(f"{report.subject}: " + "\n".join(parts), report)
    return report


# --------------------------------------------------------------------------- helpers


def _t(a, dtype="float64", requires_grad=True):
    return Tensor(np.asarray(a), dtype=dtype, requires_grad=requires_grad)


def _scalar(out, who):
    if not isinstance(out, Tensor):
        raise AssertionError(f"{who} returned a {type(out).__name__}, not a Tensor")
    if out.size != 1:
        raise AssertionError(f"{who} returned shape {out.shape}; a loss must be a single number (reduce it)")
    return out


def _grads(out, inputs):
    if not out.requires_grad:
        return [np.zeros(x.shape) for x in inputs]
    gs = grad(out, list(inputs), allow_unused=True)
    return [np.zeros(x.shape) if g is None else g.numpy().astype(np.float64) for g, x in zip(gs, inputs)]


def _takes_two(fn) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def _fd_gradient_check(fn, arrays, names, who, eps=1e-6, atol=1e-5, rtol=1e-3, coarse=1e-3):
    """Compare fn's gradient with central differences, element by element, in float64.

    At a kink (hinge, relu) the engine's gradient is one of the one-sided
    derivatives, so a one-sided difference that agrees is accepted too. Where a
    value loses digits (``log(1 - sigmoid(x))`` at x = 18 keeps about 8), steps
    of ``eps`` differentiate rounding noise: an element is accepted when steps
    of ``coarse`` agree (the gradient is right; the value's precision is not
    what this property checks).
    """
    inputs = [_t(a) for a in arrays]
    out = _scalar(fn(*inputs), who)
    analytic = _grads(out, inputs)

    def value(k, j, step):
        work = [np.array(a, dtype=np.float64, copy=True) for a in arrays]
        work[k].reshape(-1)[j] += step
        return float(fn(*[_t(w, requires_grad=False) for w in work]).item())

    f0 = float(out.item())
    for k, a in enumerate(arrays):
        flat = analytic[k].reshape(-1)
        for j in range(np.asarray(a).size):
            g = float(flat[j])

            def differences(h):
                fp, fm = value(k, j, h), value(k, j, -h)
                return (fp - fm) / (2 * h), (fp - f0) / h, (f0 - fm) / h

            candidates = differences(eps)
            if not any(abs(g - c) <= atol + rtol * abs(c) for c in candidates + differences(coarse)):
                index = np.unravel_index(j, np.shape(a)) if np.ndim(a) else ()
                raise AssertionError(
                    f"the gradient of {who} with respect to {names[k]}{list(int(i) for i in index)} is {g!r}, "
                    f"finite differences give {candidates[0]!r} (one-sided: {candidates[1]!r}, {candidates[2]!r})")


# --------------------------------------------------------------------------- check_gradients


def _as_input(value):
    if isinstance(value, Tensor):
        return Tensor(value.numpy().astype(np.float64), dtype="float64", requires_grad=True)
    array = np.asarray(value)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"check_gradients: a strategy drew a {type(value).__name__}; draw arrays or Tensors")
    return Tensor(array.astype(np.float64), dtype="float64", requires_grad=True)


def check_gradients(fn, *strategies, second_order=False, max_examples=20, eps=1e-6, atol=1e-5, rtol=1e-3):
    """Run :func:`scratchgan.gradcheck` (and :func:`scratchgan.gradgradcheck`) on inputs drawn by hypothesis.

    Parameters
    ----------
    fn : callable
        ``fn(*inputs)`` returns a Tensor or a tuple of Tensors.
    *strategies
        One hypothesis strategy per input of ``fn``, drawing arrays (or Tensors):
        each is made a float64 leaf with ``requires_grad=True``.
    second_order : bool
        Also check the second derivatives (``gradgradcheck``).
    max_examples : int
        Examples hypothesis draws per property.

    Returns None when the gradients agree; raises :class:`PropertyFailed`
    naming the property (``gradient`` or ``second_order_gradient``), the first
    disagreeing element and the shrunk inputs.
    """
    if not strategies:
        raise TypeError("check_gradients: pass one strategy per input of fn, e.g. check_gradients(fn, logits())")
    report = Report(f"check_gradients({_name(fn)})")
    names = [f"x{i}" for i in range(len(strategies))]
    checks = [("gradient", gradcheck)] + ([("second_order_gradient", gradgradcheck)] if second_order else [])
    for name, checker in checks:
        def body(checker=checker, **drawn):
            inputs = [_as_input(drawn[n]) for n in names]
            checker(fn, inputs, eps=eps, atol=atol, rtol=rtol)

        _run_property(report, name, body, dict(zip(names, strategies)), max_examples)
        if report.failures:
            break
    _finish(report, True)
    return None


# --------------------------------------------------------------------------- check_gan_loss


def _generator_call(g_loss, two):
    """``call_g(fake_logits, real_logits)``: ``g_loss`` given the real logits only when it takes them."""
    def call_g(f, r):
        return g_loss(f, r) if two else g_loss(f)

    return call_g


def _check_finite_at_extreme_logits(report, d_loss, g_loss, call_g, two, max_examples):
    """``finite_at_extreme_logits[float64]`` and ``[float32]``: value and gradients finite up to +-1e4 and near 0."""
    for dtype in ("float64", "float32"):
        def finite(real_logits, fake_logits, dtype=dtype):
            r, f = _t(real_logits, dtype), _t(fake_logits, dtype)
            terms = [("d_loss(real_logits, fake_logits)", lambda: d_loss(r, f), [("real_logits", r), ("fake_logits", f)])]
            if g_loss is not None:
                r2, f2 = _t(real_logits, dtype), _t(fake_logits, dtype)
                args = [("fake_logits", f2)] + ([("real_logits", r2)] if two else [])
                terms.append(("g_loss(fake_logits)", lambda: call_g(f2, r2), args))
            for who, call, args in terms:
                out = _scalar(call(), who)
                v = float(np.asarray(out.numpy(), dtype=np.float64).reshape(-1)[0])
                if not np.isfinite(v):
                    raise AssertionError(f"{who} is {v} in {dtype}")
                for (name, _), g in zip(args, _grads(out, [t for _, t in args])):
                    bad = ~np.isfinite(g)
                    if bad.any():
                        i = tuple(int(k) for k in np.argwhere(bad)[0])
                        raise AssertionError(f"the gradient of {who} with respect to {name}{list(i)} is "
                                             f"{g[i]} in {dtype}")

        _run_property(report, f"finite_at_extreme_logits[{dtype}]", finite,
                      {"real_logits": logits(dtype=dtype), "fake_logits": logits(dtype=dtype)}, max_examples)


def _check_directions(report, d_loss, g_loss, call_g, max_examples):
    """Where the discriminator is wrong or undecided, each loss moves the way its player wants.

    ``d_loss_falls_as_real_logits_rise`` and ``d_loss_rises_as_fake_logits_rise``
    for real logits <= 0 <= fake logits; ``g_loss_falls_as_fake_logits_rise``
    for fake logits <= 0.
    """
    wrong_real = logits(extreme=False, min_value=-20.0, max_value=0.0)
    wrong_fake = logits(extreme=False, min_value=0.0, max_value=20.0)
    delta = st.floats(1e-2, 1.0)

    def falls_real(real_logits, fake_logits, delta):
        before = float(d_loss(_t(real_logits, requires_grad=False), _t(fake_logits, requires_grad=False)).item())
        after = float(d_loss(_t(real_logits + delta, requires_grad=False), _t(fake_logits, requires_grad=False)).item())
        if not after < before:
            raise AssertionError(f"raising every real logit by {delta!r} took d_loss from {before!r} to {after!r}; "
                                 "it must fall (the discriminator becomes more right)")

    def rises_fake(real_logits, fake_logits, delta):
        before = float(d_loss(_t(real_logits, requires_grad=False), _t(fake_logits, requires_grad=False)).item())
        after = float(d_loss(_t(real_logits, requires_grad=False), _t(fake_logits + delta, requires_grad=False)).item())
        if not after > before:
            raise AssertionError(f"raising every fake logit by {delta!r} took d_loss from {before!r} to {after!r}; "
                                 "it must rise (the discriminator becomes more wrong)")

    direction = {"real_logits": wrong_real, "fake_logits": wrong_fake, "delta": delta}
    _run_property(report, "d_loss_falls_as_real_logits_rise", falls_real, direction, max_examples)
    _run_property(report, "d_loss_rises_as_fake_logits_rise", rises_fake, direction, max_examples)

    if g_loss is not None:
        def g_falls(real_logits, fake_logits, delta):
            r = _t(real_logits, requires_grad=False)
            before = float(call_g(_t(fake_logits, requires_grad=False), r).item())
            after = float(call_g(_t(fake_logits + delta, requires_grad=False), r).item())
            if not after < before:
                raise AssertionError(f"raising every fake logit by {delta!r} took g_loss from {before!r} to "
                                     f"{after!r}; it must fall (the generator fools the discriminator more)")

        _run_property(report, "g_loss_falls_as_fake_logits_rise", g_falls,
                      {"real_logits": wrong_fake, "fake_logits": wrong_real, "delta": delta}, max_examples)


def _check_fd_gradients(report, d_loss, g_loss, call_g, two, max_examples):
    """``d_loss_gradient``, ``g_loss_gradient``: the engine's gradients against finite differences."""
    moderate = logits(extreme=False, min_value=-20.0, max_value=20.0)

    def d_gradient(real_logits, fake_logits):
        _fd_gradient_check(d_loss, [real_logits, fake_logits], ["real_logits", "fake_logits"], "d_loss")

    _run_property(report, "d_loss_gradient", d_gradient, {"real_logits": moderate, "fake_logits": moderate},
                  max_examples)
    if g_loss is not None:
        def g_gradient(real_logits, fake_logits):
            if two:
                _fd_gradient_check(call_g, [fake_logits, real_logits], ["fake_logits", "real_logits"], "g_loss")
            else:
                _fd_gradient_check(g_loss, [fake_logits], ["fake_logits"], "g_loss")

        _run_property(report, "g_loss_gradient", g_gradient, {"real_logits": moderate, "fake_logits": moderate},
                      max_examples)


def _cross_entropy_family(report, d_loss, cross_entropy):
    """Whether ``d_loss`` is of the cross-entropy family: ``d_loss(0, 0) = log 4``, or as ``cross_entropy`` says.

    Detected (``cross_entropy=None``), the answer is reported as ``cross_entropy_family`` (info).
    """
    try:
        at_zero = float(d_loss(_t([0.0], requires_grad=False), _t([0.0], requires_grad=False)).item())
    except Exception as exc:  # noqa: BLE001
        at_zero = float("nan")
        zero_error = f"{type(exc).__name__}: {exc}"
    else:
        zero_error = None
    family = abs(at_zero - LOG4) <= 1e-9 if cross_entropy is None else bool(cross_entropy)
    if cross_entropy is None:
        report.results.append(PropertyResult(
            "cross_entropy_family", "info",
            (f"d_loss(0, 0) = {at_zero:.12g} = log 4 (V(D = 1/2) = -log 4): the optimal-discriminator property applies"
             if family else f"d_loss(0, 0) = {at_zero:.6g}, not log 4: not of the cross-entropy family, "
                            "the optimal-discriminator property is skipped")
            + (f" ({zero_error})" if zero_error else "")))
    return family


def _check_optimal_discriminator(report, d_loss, cross_entropy, max_examples):
    r"""``optimal_discriminator``, for the cross-entropy family: ``D* = p / (p + q)`` minimises ``d_loss``.

    On batches drawn with the frequencies of discrete p, q, the table
    discriminator ``D*`` has zero gradient and the value
    :math:`\log 4 - 2\,\mathrm{JSD}(p, q)`.
    """
    if not _cross_entropy_family(report, d_loss, cross_entropy):
        if cross_entropy is not None:
            report.results.append(PropertyResult("optimal_discriminator", "skipped", "cross_entropy=False"))
        return

    def optimal(counts):
        c_p, c_q = counts
        p, q = c_p / c_p.sum(), c_q / c_q.sum()
        table = _t(np.log(p / q))  # sigma(logit) = p / (p + q) = D*
        k = len(c_p)
        real = table[np.repeat(np.arange(k), c_p)]  # a real batch with p's frequencies
        fake = table[np.repeat(np.arange(k), c_q)]
        out = _scalar(d_loss(real, fake), "d_loss")
        m = 0.5 * (p + q)
        jsd = 0.5 * float(np.sum(p * np.log(p / m))) + 0.5 * float(np.sum(q * np.log(q / m)))
        expected = LOG4 - 2 * jsd
        if not abs(out.item() - expected) <= 1e-9 * max(1.0, abs(expected)):
            raise AssertionError(f"d_loss at D* = p/(p+q) is {out.item()!r}, expected log 4 - 2 JSD(p, q) = "
                                 f"{expected!r}")
        (g,) = _grads(out, [table])
        if not np.all(np.abs(g) <= 1e-9):
            raise AssertionError(f"the gradient of d_loss at D* = p/(p+q) is {g.tolist()}, not 0: D* does not "
                                 "minimise the loss")

    _run_property(report, "optimal_discriminator", optimal,
                  {"counts": _count_pairs(full_support=True)}, max_examples,
                  detail="D* = p/(p+q) minimises d_loss, with value log 4 - 2 JSD(p, q)")


def _report_generator_saturation(report, call_g):
    """``generator_saturation`` (info) and ``report.saturates``: does dg_loss/dlogit vanish at logit -30?

    Left unset when either slope (at logit 0 or -30) is not finite: the other properties report why.
    """
    slopes = []
    for f in (0.0, -30.0):
        ft, rt = _t([f]), _t([0.0], requires_grad=False)
        try:
            with np.errstate(all="ignore"):
                slopes.append(float(_grads(_scalar(call_g(ft, rt), "g_loss"), [ft])[0][0]))
        except Exception:  # noqa: BLE001 - reported by the other properties
            slopes.append(float("nan"))
    g0, g30 = slopes
    if np.isfinite(g0) and np.isfinite(g30):
        report.saturates = bool(abs(g30) <= 1e-6 * max(abs(g0), 1e-300))
        report.results.append(PropertyResult(
            "generator_saturation", "info",
            f"dg_loss/dlogit is {g0:.3g} at logit 0 and {g30:.3g} at logit -30: "
            + ("the generator loss SATURATES when the discriminator wins (its gradient vanishes; "
               "the non-saturating loss keeps a full-size gradient there)" if report.saturates
               else "it does not saturate when the discriminator wins")))


def check_gan_loss(d_loss, g_loss=None, *, max_examples=30, cross_entropy=None, g_takes_real=None,
                   raise_on_failure=True):
    """Check a GAN loss written on logits: ``d_loss(real_logits, fake_logits)`` and ``g_loss(fake_logits)``.

    ``g_loss`` may also take the real logits, ``g_loss(fake_logits, real_logits)``
    (detected from its signature; force it with ``g_takes_real``). Both must
    return a single-number Tensor to minimise.

    Properties (names as reported):

    ``finite_at_extreme_logits[float64]``, ``...[float32]``
        Value and gradients finite for logits up to +-1e4 and near 0.
    ``d_loss_falls_as_real_logits_rise``, ``d_loss_rises_as_fake_logits_rise``
        Where the discriminator is wrong or undecided (real logits <= 0 <= fake
        logits), raising every real logit by delta lowers ``d_loss`` and raising every
        fake logit raises it.
    ``g_loss_falls_as_fake_logits_rise``
        For fake logits <= 0 (the discriminator rejects the fakes).
    ``d_loss_gradient``, ``g_loss_gradient``
        The engine's gradients against finite differences (float64, logits in [-20, 20]).
    ``cross_entropy_family`` (info), ``optimal_discriminator``
        When ``d_loss(0, 0) = log 4`` (``V(D=1/2) = -log 4``: the cross-entropy
        family; or ``cross_entropy=True``), the loss on batches drawn with the
        frequencies of discrete p, q is minimised by the table discriminator
        ``D* = p / (p + q)``: zero gradient there and the value ``log 4 - 2 JSD(p, q)``.
    ``generator_saturation`` (info)
        Whether the generator's gradient vanishes when the discriminator wins
        (logit -30): true for the minimax loss, reported, not a failure.

    Returns
    -------
    Report
        With ``report.saturates`` (None without ``g_loss``).

    Raises
    ------
    PropertyFailed
        When a property fails (unless ``raise_on_failure=False``), naming each
        failed property and its shrunk counterexample.
    """
    report = Report(f"check_gan_loss({_name(d_loss)}" + (f", {_name(g_loss)})" if g_loss is not None else ")"))
    two = _takes_two(g_loss) if (g_loss is not None and g_takes_real is None) else bool(g_takes_real)
    call_g = _generator_call(g_loss, two)
    _check_finite_at_extreme_logits(report, d_loss, g_loss, call_g, two, max_examples)
    _check_directions(report, d_loss, g_loss, call_g, max_examples)
    _check_fd_gradients(report, d_loss, g_loss, call_g, two, max_examples)
    _check_optimal_discriminator(report, d_loss, cross_entropy, max_examples)
    if g_loss is not None:
        _report_generator_saturation(report, call_g)
    return _finish(report, raise_on_failure)


# --------------------------------------------------------------------------- check_penalty


class _SeededCalls:
    """Reseed scratchgan's and NumPy's global generators before each call; restore both afterwards.

    A penalty that draws its interpolation factors from either is then the same
    function at every call, as finite differences need.
    """

    def __init__(self, seed=0):
        self.seed = seed

    def __enter__(self):
        self._sg = _sg_random.default_generator()
        self._np = np.random.get_state()
        return self

    def reseed(self):
        _sg_random.manual_seed(self.seed)
        np.random.seed(self.seed)

    def __exit__(self, *exc):
        set_default_generator(self._sg)
        np.random.set_state(self._np)
        return False


def _diagonal_critic(x):
    """``0.5 * sum_j (x_j - mean_j x)^2``: its input gradient ``x - mean(x)`` is 0 wherever all coordinates are equal."""
    d = x - x.mean(axis=1, keepdims=True)
    return (d * d).sum(axis=1, keepdims=True) * 0.5


def _linear_critic(w, b):
    wt, bt = _t(np.asarray(w).reshape(-1, 1)), _t([b])
    return lambda x: x @ wt + bt


@st.composite
def _critic_and_batch(draw, min_n=1, max_n=5, coupled=False):
    critic = draw(critics(coupled=coupled))
    n = draw(st.integers(min_n, max_n))
    x = draw(hnp.arrays(np.float64, (n, critic.in_features), elements=st.floats(-2, 2)))
    return critic, x


@st.composite
def _diagonal_pairs(draw):
    n, d = draw(st.integers(1, 4)), draw(st.integers(2, 4))
    a = np.array(draw(st.lists(st.floats(-2, 2), min_size=n, max_size=n)))
    gap = np.array(draw(st.lists(st.floats(0.5, 2) | st.floats(-2, -0.5), min_size=n, max_size=n)))
    return np.repeat(a[:, None], d, axis=1), np.repeat((a + gap)[:, None], d, axis=1)


def _value(penalty, critic, real, fake, calls, who="penalty(critic, real, fake)"):
    calls.reseed()
    out = _scalar(penalty(critic, _t(real, requires_grad=False), _t(fake, requires_grad=False)), who)
    return float(out.item())


def _close(a, b, rtol=1e-7, atol=1e-10):
    return abs(a - b) <= atol + rtol * max(abs(a), abs(b))


def check_penalty(penalty, *, max_examples=20, linear_value=None, gradient_examples=None, raise_on_failure=True):
    """Check a gradient penalty with the call shape of :func:`scratchgan.gan.losses.gradient_penalty`.

    ``penalty(critic, real, fake)`` returns a single-number Tensor; ``critic(x)``
    maps float64 ``(N, D)`` batches to ``(N, 1)`` scores. Bind other arguments
    first (``functools.partial(losses.gradient_penalty, weight=10)``; for R1:
    ``lambda critic, real, fake: r1_penalty(critic, real, 1.0)``). Random
    interpolation factors must come from scratchgan's or NumPy's global
    generator: both are reseeded before each call (and restored afterwards).

    Properties (names as reported):

    ``per_sample_independence``
        For a critic without batch coupling and ``real == fake`` (so that the
        interpolation does not matter), the penalty of a batch equals the mean
        of the penalties of its single samples (catches a norm over the whole batch).
    ``interpolation_per_sample``
        With ``real_i`` and ``fake_i`` on the diagonal (all coordinates equal)
        every per-sample interpolate stays there, where the critic
        ``0.5 * sum_j (x_j - mean x)^2`` has zero input gradient: the penalty
        must equal its value with ``fake = real`` (catches factors drawn per element).
    ``linear_critic``
        For ``critic(x) = x.w + b`` the input gradient is ``w`` everywhere: the
        penalty must not depend on the batch (size or values), and must equal
        ``linear_value(||w||)`` when that closed form is given (WGAN-GP:
        ``lambda n: 10 * (n - 1) ** 2``; R1 with weight gamma: ``lambda n: gamma / 2 * n ** 2``).
    ``critic_weight_gradient``
        The penalty's gradient with respect to the critic's weights (a second
        derivative of the critic) against finite differences (``gradcheck``).

    Returns a :class:`Report`; raises :class:`PropertyFailed` on a failure
    (unless ``raise_on_failure=False``).
    """
    report = Report(f"check_penalty({_name(penalty)})")
    with _SeededCalls() as calls:
        def independent(critic_and_batch):
            critic, x = critic_and_batch
            whole = _value(penalty, critic, x, x, calls)
            singles = [_value(penalty, critic, x[i:i + 1], x[i:i + 1], calls) for i in range(len(x))]
            if not _close(whole, float(np.mean(singles))):
                raise AssertionError(f"the penalty of the batch is {whole!r} but the mean of its single-sample "
                                     f"penalties is {float(np.mean(singles))!r} ({singles}); a gradient penalty is a "
                                     "mean of per-sample terms (norm over each sample, not the batch)")

        _run_property(report, "per_sample_independence", independent,
                      {"critic_and_batch": _critic_and_batch(min_n=2)}, max_examples)

        def per_sample(real_fake):
            real, fake = real_fake
            mixed = _value(penalty, _diagonal_critic, real, fake, calls)
            at_real = _value(penalty, _diagonal_critic, real, real, calls)
            if not _close(mixed, at_real, rtol=1e-6, atol=1e-9):
                raise AssertionError(
                    f"with real_i and fake_i on the diagonal the penalty is {mixed!r}, but {at_real!r} with fake = real: "
                    "the interpolates left the segments between real_i and fake_i (one factor per sample, "
                    "broadcast over its features, keeps them on it)")

        _run_property(report, "interpolation_per_sample", per_sample, {"real_fake": _diagonal_pairs()}, max_examples)

        w_vectors = st.integers(1, 4).flatmap(lambda d: hnp.arrays(np.float64, d, elements=st.floats(-3, 3))).filter(
            lambda w: np.linalg.norm(w) > 0.05)

        def linear(w, b, first, second):
            critic = _linear_critic(w, b)
            d = len(w)
            p1 = _value(penalty, critic, *_fit(first, d), calls)
            p2 = _value(penalty, critic, *_fit(second, d), calls)
            if not _close(p1, p2, rtol=1e-6, atol=1e-9):
                raise AssertionError(f"for a linear critic (input gradient w everywhere) the penalty is {p1!r} on the "
                                     f"first batch pair and {p2!r} on the second; it must depend on w only")
            if linear_value is not None:
                expected = float(linear_value(float(np.linalg.norm(w))))
                if not _close(p1, expected, rtol=1e-6, atol=1e-9):
                    raise AssertionError(f"for a linear critic with ||w|| = {np.linalg.norm(w)!r} the penalty is "
                                         f"{p1!r}, the closed form gives {expected!r}")

        pairs = batches(features=4, pair=True)
        _run_property(report, "linear_critic", linear,
                      {"w": w_vectors, "b": st.floats(-2, 2), "first": pairs, "second": pairs}, max_examples)

        def weights(critic_and_batch):
            critic, x = critic_and_batch

            def fn(*params):
                calls.reseed()
                return penalty(critic, _t(x, requires_grad=False), _t(x, requires_grad=False))

            gradcheck(fn, critic.parameters())

        _run_property(report, "critic_weight_gradient", weights,
                      {"critic_and_batch": _critic_and_batch(max_n=3)},
                      gradient_examples if gradient_examples is not None else max(3, max_examples // 4),
                      detail="second order: the penalty's gradient w.r.t. the critic's weights")
    return _finish(report, raise_on_failure)


def _fit(pair, d):
    """A (real, fake) pair of 4-feature batches cut or tiled to d features."""
    real, fake = pair
    return real[:, :d], fake[:, :d]
