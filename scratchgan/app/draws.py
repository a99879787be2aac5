"""Everything random that a training step draws, from one stream, in one fixed order.

The CPU draws from a ``numpy.random.Generator``; the GPU from a
:class:`~scratchgan.backend.device_rng.DeviceGenerator` (its numbers stay on
the device). Every draw is of the *global* batch (``batch_size`` rows, or
``batch_size / pack`` packs); data-parallel, each rank keeps its share of the
rows (``share``, ``pack_share``: :func:`~scratchgan.app.distributed.local_shares`),
so that the batches do not depend on the number of ranks. Both streams are
saved with the checkpoint: the order of the draws below is what makes a
resume exact.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd.tensor import Tensor, as_tensor
from ..gan import augment, auxiliary
from .data import DeviceBatches

__all__ = ["StepDraws"]


class StepDraws:
    """The draws of the training steps of one run.

    Parameters
    ----------
    config : TrainConfig
    data : Dataset
    rng : numpy.random.Generator
        The host stream (``[seed, 1]``).
    device_rng : DeviceGenerator or None
        The device stream of a GPU run (None on the CPU: ``rng`` draws).
    share, pack_share : slice
        This rank's rows of a global batch and of its packs.
    """

    def __init__(self, config, data, rng, device_rng=None, share=slice(None), pack_share=slice(None)):
        self.config, self.data, self.rng, self.device_rng = config, data, rng, device_rng
        self.share, self.pack_share = share, pack_share
        self.batches = None  # the training split on the device (DeviceBatches), uploaded at the first batch

    @property
    def source(self):
        """The stream the draws come from: the device's on the GPU, else the host's."""
        return self.rng if self.device_rng is None else self.device_rng

    def tensor(self, array) -> Tensor:
        """A host array as a tensor of the run's dtype on the active backend (cast on the host)."""
        return as_tensor(np.asarray(array, dtype=self.config.dtype))

    def _device_labels(self, array, high: int) -> Tensor:
        """Labels drawn on the device, vouched for (in [0, high) by construction: no range check reads them)."""
        t = as_tensor(array)
        backend.vouch_indices(t.data, high)
        return t

    def noise(self, n) -> Tensor:
        """G's noise ``z ~ N(0, I)``, (n, z_dim) of the global batch; this rank's rows."""
        dtype = np.dtype(self.config.dtype)
        if self.device_rng is not None:
            return as_tensor(self.device_rng.standard_normal((n, self.config.z_dim), dtype)[self.share])
        return self.tensor(self.rng.standard_normal((n, self.config.z_dim), dtype=dtype)[self.share])

    def real_batch(self) -> tuple[Tensor, Tensor]:
        """``(x, labels)``: a batch of the training split drawn with replacement, flattened; this rank's rows."""
        if self.device_rng is not None:
            if self.batches is None:  # the one upload of the data set
                self.batches = DeviceBatches(self.data, self.config.dtype, backend.xp)
            x, y = self.batches.sample(self.device_rng, self.config.batch_size)
            return as_tensor(x[self.share]), self._device_labels(y[self.share], self.data.num_classes)
        x, y = self.data.sample_batch(self.rng, self.config.batch_size)
        x, y = x[self.share], y[self.share]
        return self.tensor(x.reshape(len(x), -1)), as_tensor(np.asarray(y, dtype=np.int64))

    def fake_labels(self, n) -> Tensor | None:
        """The classes G is asked for, uniform over the classes (None unless the run is conditional: no draw)."""
        if not self.config.conditional:
            return None
        k = self.data.num_classes
        if self.device_rng is not None:
            return self._device_labels(self.device_rng.integers(0, k, n)[self.share], k)
        return as_tensor(np.asarray(self.rng.integers(0, k, n)[self.share], dtype=np.int64))

    def info_codes(self, n):
        """InfoGAN's codes of a global batch of ``n``, drawn after the noise (None for other runs: no draw)."""
        return auxiliary.draw_info_codes(self.source, n, self.config, self.share)

    def augmentation(self):
        """DiffAugment's :math:`T` for one batch (``--diffaugment``), or None when it is off (no draw).

        Draws the shifts and the cut squares of the global batch
        (:func:`scratchgan.gan.augment.draw_parameters`: four ``integers``
        draws), keeps this rank's rows, and returns :math:`T` as a function of
        the flat rows ``(n, H * W)`` that D takes.
        """
        c = self.config
        if not c.diffaugment:
            return None
        h, w = self.data.image_shape
        drawn = augment.draw_parameters(self.source, c.batch_size, h, w)
        mine = [(name, a[self.share], b[self.share]) for name, a, b in drawn]
        n = len(mine[0][1])
        T = augment.Augmentation(mine, (n, 1, h, w))

        def on_rows(x: Tensor) -> Tensor:
            return T(x.reshape(n, 1, h, w)).reshape(n, h * w)

        return on_rows

    def interpolation_factors(self) -> Tensor:
        """WGAN-GP's ``alpha ~ U[0, 1]``, one per pack of the global batch: (rows, 1); this rank's packs."""
        c = self.config
        rows = c.batch_size // c.pack
        if self.device_rng is None:
            return self.tensor(self.rng.uniform(size=(rows, 1)).astype(c.dtype)[self.pack_share])
        return as_tensor(self.device_rng.random((rows, 1), c.dtype)[self.pack_share])

    def perturbations(self, packed_shape) -> tuple:
        """DRAGAN's draws for the global batch, in ``dragan_penalty``'s own order: noise, then one alpha per row.

        ``packed_shape`` is the shape of this rank's packed real batch; the
        CPU draws in float64 (as it always has), the GPU in the run's dtype.
        """
        c = self.config
        rows = c.batch_size // c.pack
        dtype = np.float64 if self.device_rng is None else c.dtype
        noise = self.source.random((rows,) + tuple(packed_shape[1:]), dtype)[self.pack_share]
        alpha = self.source.random(rows, dtype)[self.pack_share]
        return noise, alpha
