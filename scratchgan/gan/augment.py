r"""DiffAugment: the same differentiable augmentation of every image D sees (Zhao et al. 2020).

"Differentiable Augmentation for Data-Efficient GAN Training" trains D on
:math:`T(x)` and :math:`T(G(z))`, with fresh random draws of :math:`T` for
each batch, in D's update *and* in G's: since :math:`T` is differentiable,
G's gradient flows back through it,

.. math::

    L_D = \mathbb E_x[f(D(T(x)))] + \mathbb E_z[g(D(T(G(z))))],
    \qquad L_G = \mathbb E_z[h(D(T(G(z))))].

D sees more varied images than the data set holds and cannot memorise it,
while G is still asked for un-augmented images. The two transforms of the
authors' ``DiffAugment_pytorch.py`` for grey images, applied in the order of
``policy``; both are linear in the image, so the gradient (and the second
derivative, zero) come from the ops they are made of:

* ``"translation"`` (ratio :math:`r = 1/8`): image :math:`n` is shifted by
  integers :math:`(s_n, t_n)`, each uniform in :math:`[-\rho_H, \rho_H]` and
  :math:`[-\rho_W, \rho_W]` with :math:`\rho_H = \lfloor rH + \tfrac12 \rfloor`,
  and the pixels shifted in from outside are 0:

  .. math:: T(x)_{n,c,i,j} = x_{n,c,\,i+s_n,\,j+t_n}\ \text{if}\ 0 \le i+s_n < H,\ 0 \le j+t_n < W,\ \text{else } 0.

  A gather (:func:`scratchgan.ops.getitem` with an index array) times a 0/1
  mask; its gradient is the transposed map, a scatter-add of the masked
  upstream gradient.
* ``"cutout"`` (ratio :math:`r = 1/2`): a square of sides
  :math:`h_c = \lfloor rH + \tfrac12 \rfloor`, :math:`w_c = \lfloor rW + \tfrac12 \rfloor`
  around a random pixel :math:`(u_n, v_n)` is set to 0, clipped at the border:
  :math:`T(x) = m \odot x` with the constant mask, the same for every channel,

  .. math::

      m_{n,i,j} = 0 \ \text{if}\ a_n \le i < a_n + h_c \ \text{and}\ b_n \le j < b_n + w_c,
      \ \text{else } 1, \qquad a_n = u_n - \lfloor h_c / 2 \rfloor,\ b_n = v_n - \lfloor w_c / 2 \rfloor.

  The centre :math:`u_n` is uniform on :math:`[0, H]` for an even side and on
  :math:`[0, H)` for an odd one (:math:`v_n` alike), as in the authors' code.

The random numbers, per batch of :math:`N` images and in this order for each
transform of the policy: translation :math:`s` then :math:`t`; cutout
:math:`u` then :math:`v`; each ``rng.integers(low, high, N)``. The draws are
of the whole batch and the map :math:`T` is fixed once drawn
(:class:`Augmentation`): the trainer applies it again to take R1's gradient
through it, and a data-parallel rank keeps its rows of the global draws.
"""

from __future__ import annotations

import numpy as np

from .. import backend, ops
from ..autograd.tensor import Tensor, as_tensor
from ..backend.device_rng import DeviceGenerator
from ..backend.validate import as_generator

__all__ = ["CUTOUT_RATIO", "POLICIES", "TRANSLATION_RATIO", "Augmentation", "diff_augment", "draw_parameters"]

#: The transforms, by name, in the authors' vocabulary ("color" is not implemented: scratchgan's images are grey).
POLICIES = ("translation", "cutout")
TRANSLATION_RATIO = 1 / 8  # the largest shift, as a fraction of the side
CUTOUT_RATIO = 1 / 2  # the side of the cut square, as a fraction of the image's


def _policy(policy) -> tuple[str, ...]:
    names = (policy,) if isinstance(policy, str) else tuple(policy)
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"diff_augment: unknown policy {unknown}; choose from {', '.join(POLICIES)}")
    return names


def _side(size: int, ratio: float) -> int:
    """``round(size * ratio)``, halves up, as ``int(size * ratio + 0.5)`` in the authors' code."""
    return int(size * ratio + 0.5)


def draw_parameters(rng, n: int, height: int, width: int, policy=POLICIES) -> list[tuple[str, object, object]]:
    """The random numbers of :math:`T` for ``n`` images: ``[(name, rows, cols), ...]`` in the policy's order.

    ``rows``/``cols`` are int64 arrays of ``n``: the shifts :math:`(s, t)` of
    ``"translation"``, the centres :math:`(u, v)` of ``"cutout"``, drawn with
    ``rng.integers`` (a ``numpy.random.Generator``: host arrays; a
    :class:`~scratchgan.backend.device_rng.DeviceGenerator`: device arrays).
    """
    drawn = []
    for name in _policy(policy):
        if name == "translation":
            sh, sw = _side(height, TRANSLATION_RATIO), _side(width, TRANSLATION_RATIO)
            drawn.append((name, rng.integers(-sh, sh + 1, n), rng.integers(-sw, sw + 1, n)))
        else:
            ch, cw = _side(height, CUTOUT_RATIO), _side(width, CUTOUT_RATIO)
            drawn.append((name, rng.integers(0, height + 1 - ch % 2, n), rng.integers(0, width + 1 - cw % 2, n)))
    return drawn


class Augmentation:
    r"""One drawn :math:`T`: ``T(x) = mask * x.reshape(-1)[index]`` for images of ``shape`` (N, C, H, W).

    ``index`` (N, C, H, W) says which input pixel each output pixel reads (None:
    itself), ``mask`` (N, 1, H, W) zeroes the pixels shifted in from outside and
    the cut squares (None: no zero). Built with the array module of the drawn
    numbers, then moved to the module of the images it is applied to; an index
    built on the device is vouched for (in range by construction), so applying
    it reads nothing back.

    Parameters
    ----------
    parameters : list
        :func:`draw_parameters`' result for ``N`` images.
    shape : tuple of int
        (N, C, H, W).
    """

    def __init__(self, parameters, shape):
        self.shape = n, c, h, w = tuple(int(s) for s in shape)
        xp = backend.array_module(parameters[0][1]) if parameters else np
        rows = xp.arange(h).reshape(1, 1, h, 1)
        cols = xp.arange(w).reshape(1, 1, 1, w)
        src_r, src_c, mask = None, None, None  # the pixel each output pixel reads, (N, 1, H, W) each; 0/1 mask
        for name, a, b in parameters:
            a, b = a.reshape(n, 1, 1, 1), b.reshape(n, 1, 1, 1)
            if name == "translation":  # output (i, j) reads (i + s, j + t) of the image so far
                r, q = rows + a, cols + b
                inside = (r >= 0) & (r < h) & (q >= 0) & (q < w)
                r, q = xp.clip(r, 0, h - 1), xp.clip(q, 0, w - 1)  # any pixel: the mask zeroes them
                flat = (r * w + q).reshape(n, 1, h * w)  # where each output pixel reads, in the image so far
                if src_r is None:
                    src_r, src_c = xp.broadcast_to(r, (n, 1, h, w)), xp.broadcast_to(q, (n, 1, h, w))
                else:  # compose: read where the earlier transforms read
                    src_r = xp.take_along_axis(src_r.reshape(n, 1, h * w), flat, 2).reshape(n, 1, h, w)
                    src_c = xp.take_along_axis(src_c.reshape(n, 1, h * w), flat, 2).reshape(n, 1, h, w)
                if mask is not None:  # an earlier cut moves with the image
                    mask = xp.take_along_axis(mask.reshape(n, 1, h * w), flat, 2).reshape(n, 1, h, w)
                mask = inside if mask is None else mask & inside
            else:  # cutout: rows u - ch//2 .. u - ch//2 + ch - 1, columns alike (clipped by the comparison)
                ch, cw = _side(h, CUTOUT_RATIO), _side(w, CUTOUT_RATIO)
                top, left = a - ch // 2, b - cw // 2
                cut = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
                mask = ~cut if mask is None else mask & ~cut
        self.index = None
        if src_r is not None:  # flat positions in x.reshape(-1): ((n * C + c) * H + row) * W + col
            image = xp.arange(n).reshape(n, 1, 1, 1) * c + xp.arange(c).reshape(1, c, 1, 1)
            self.index = ((image * h + src_r) * w + src_c).astype(np.int64)
        self.mask = mask

    def _on(self, xp, array):
        """``array`` on ``xp``'s side (an upload or a read happens only when the draws were on the other)."""
        if array is None or backend.array_module(array) is xp:
            return array
        return xp.asarray(array) if xp is not np else backend.to_host(array, "Augmentation")

    def __call__(self, x: Tensor) -> Tensor:
        """:math:`T(x)` for a Tensor of ``shape``; differentiable (a gather and a product with a constant)."""
        x = as_tensor(x)
        if tuple(x.shape) != self.shape:
            raise ValueError(f"Augmentation: drawn for images of shape {self.shape}, got {tuple(x.shape)}")
        xp = backend.array_module(x.data)
        self.index, self.mask = self._on(xp, self.index), self._on(xp, self.mask)
        y = x
        if self.index is not None:
            if xp is not np:
                backend.vouch_indices(self.index, x.size)
            y = ops.getitem(ops.reshape(x, (-1,)), self.index)
        if self.mask is not None:
            y = ops.mul(y, as_tensor(self.mask.astype(x.dtype)))
        return y


def diff_augment(x: Tensor, policy=POLICIES, rng=None) -> Tensor:
    r"""DiffAugment's :math:`T(x)` of a batch of images, with fresh random draws (see the module docstring).

    Parameters
    ----------
    x : Tensor
        Images (N, C, H, W), on either backend.
    policy : str or sequence of str
        The transforms in the order applied: ``"translation"`` (shifts of up
        to 1/8 of the side, zero padding) and ``"cutout"`` (a zeroed square of
        half the side), both by default.
    rng : numpy.random.Generator, int, None or DeviceGenerator
        Where the draws come from (:func:`~scratchgan.backend.validate.as_generator`:
        an int seed gives the same :math:`T` every time); a
        :class:`~scratchgan.backend.device_rng.DeviceGenerator` draws on the
        device, where its arrays live.

    Returns
    -------
    Tensor
        :math:`T(x)`, of the shape of ``x``; linear in ``x``, so its gradient is
        the transposed map: :math:`\partial L / \partial x = T^\top(\partial L / \partial T(x))`.
    """
    x = as_tensor(x)
    if x.ndim != 4:
        raise ValueError(f"diff_augment: expected images (N, C, H, W), got shape {tuple(x.shape)}")
    if not isinstance(rng, DeviceGenerator):
        rng = as_generator(rng, "diff_augment")
    n, _, h, w = x.shape
    return Augmentation(draw_parameters(rng, n, h, w, policy), x.shape)(x)
