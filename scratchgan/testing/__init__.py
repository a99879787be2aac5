"""Property tests for your own GAN math: hypothesis strategies and ready GAN-theory checks.

``scratchgan.testing`` needs hypothesis (``pip install "scratchgan[test]"``).

Strategies (:mod:`hypothesis` strategies drawing NumPy arrays):
:func:`logits`, :func:`batches`, :func:`critics`, :func:`distributions`.

Checks, each raising :class:`PropertyFailed` (an ``AssertionError``) that
names the property and hypothesis's shrunk counterexample:

* :func:`check_gradients` - ``gradcheck``/``gradgradcheck`` over drawn inputs; returns None;
* :func:`check_gan_loss` - a discriminator/generator loss on logits; returns a :class:`Report`
  (``report.saturates`` says whether the generator loss saturates, an informational property);
* :func:`check_penalty` - a gradient penalty ``penalty(critic, real, fake)``; returns a :class:`Report`.

scratchgan's own losses and penalties pass through this kit in
``scratchgan/testing/test_builtin.py``; run them against the installed package with
``python -m pytest --pyargs scratchgan.testing`` or ``python -m scratchgan.testing``.
See ``docs/testing.md``.
"""

try:
    import hypothesis  # noqa: F401
except ImportError:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(
        'scratchgan.testing needs hypothesis, which is not installed: pip install "scratchgan[test]"'
    ) from None

from ._checks import PropertyFailed, PropertyResult, Report, check_gan_loss, check_gradients, check_penalty
from ._strategies import EXTREME_LOGITS, Critic, batches, critics, distributions, logits

__all__ = [
    "EXTREME_LOGITS", "Critic", "PropertyFailed", "PropertyResult", "Report", "batches", "check_gan_loss",
    "check_gradients", "check_penalty", "critics", "distributions", "logits",
]
