"""Convolution layers: Conv2d and ConvTranspose2d (PyTorch's arguments, layouts and initialisation).

Both wrap the ops of :mod:`scratchgan.ops.conv`, so they are twice
differentiable (a WGAN-GP or R1 penalty through a conv critic). Unlike
:class:`~scratchgan.nn.Linear`, the weights keep PyTorch's layouts, so a
PyTorch ``state_dict`` loads as it is:

* ``Conv2d.weight``: (out_channels, in_channels, kh, kw);
* ``ConvTranspose2d.weight``: (in_channels, out_channels, kh, kw).
"""

from __future__ import annotations

import math

from ..ops import conv2d, conv_transpose2d
from ..ops.conv import _pair
from ..autograd.tensor import Tensor
from ..backend.validate import as_generator, float_dtype, positive_int
from .init import normal_, uniform_, zeros_
from .module import LINEAR_INITS, Module, _empty_param


def _init_conv(weight, bias, init: str, rng, fan_in: int, fan_out: int, who: str) -> None:
    """Fill a conv weight and bias in place with the ``init`` scheme, given PyTorch's fans."""
    if init == "pytorch":
        # kaiming_uniform_(W, a=sqrt(5)): bound = sqrt(1/3) * sqrt(3 / fan_in) = 1 / sqrt(fan_in); bias the same
        bound = 1.0 / math.sqrt(fan_in)
        uniform_(weight, -bound, bound, rng=rng)
        if bias is not None:
            uniform_(bias, -bound, bound, rng=rng)
        return
    if init == "xavier":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        uniform_(weight, -bound, bound, rng=rng)
    elif init == "he":
        normal_(weight, 0.0, math.sqrt(2.0 / fan_in), rng=rng)
    elif init == "dcgan":
        normal_(weight, 0.0, 0.02, rng=rng)
    else:
        raise ValueError(f"{who}: unknown init {init!r}; choose one of {LINEAR_INITS}")
    if bias is not None:
        zeros_(bias)


def _as_input(x, layer) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x, dtype=layer.weight.dtype)


class _ConvNd(Module):
    """What Conv2d and ConvTranspose2d share: arguments, parameters, initialisation, repr."""

    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, output_padding, bias, init, rng,
                 dtype):
        super().__init__()
        who = type(self).__name__
        self.in_channels = positive_int(in_channels, "in_channels", who)
        self.out_channels = positive_int(out_channels, "out_channels", who)
        self.kernel_size = _pair(kernel_size, "kernel_size", who, 1)
        self.stride = _pair(stride, "stride", who, 1)
        self.padding = _pair(padding, "padding", who, 0)
        self.output_padding = _pair(output_padding, "output_padding", who, 0)
        if self.output_padding[0] >= self.stride[0] or self.output_padding[1] >= self.stride[1]:
            raise ValueError(f"{who}: output_padding {self.output_padding} must be smaller than the stride "
                             f"{self.stride}")
        if init not in LINEAR_INITS:
            raise ValueError(f"{who}: unknown init {init!r}; choose one of {LINEAR_INITS}")
        self.init = init
        dtype = float_dtype(dtype, who)
        kh, kw = self.kernel_size
        first, second = ((self.in_channels, self.out_channels) if self._transposed
                         else (self.out_channels, self.in_channels))
        self.weight = _empty_param((first, second, kh, kw), dtype)
        self.bias = _empty_param((self.out_channels,), dtype) if bias else None
        self.reset_parameters(rng)

    def reset_parameters(self, rng=None) -> None:
        """Draw fresh values with this layer's ``init`` scheme.

        PyTorch's fans of a weight (a, b, kh, kw) are ``fan_in = b·kh·kw`` and
        ``fan_out = a·kh·kw`` for both layers: for ConvTranspose2d, whose
        weight is (in, out, kh, kw), that makes ``fan_in = out_channels·kh·kw``
        (PyTorch's choice, kept so that the initial values have its scale).
        """
        _, b, kh, kw = self.weight.shape
        a = self.weight.shape[0]
        who = type(self).__name__
        _init_conv(self.weight, self.bias, self.init, as_generator(rng, who), b * kh * kw, a * kh * kw, who)

    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected input of shape (N, {self.in_channels}, H, W), "
                             f"got {x.shape}")

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
             f"padding={self.padding}")
        if self._transposed and self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv2d(_ConvNd):
    """2-D convolution layer over NCHW batches (see :func:`scratchgan.ops.conv2d`).

    ``y = conv2d(x, weight, bias, stride, padding)``, output side
    ``(H + 2 padding - kernel) // stride + 1``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride : int or (int, int)
    padding : int or (int, int)
        Zeros on both sides of each spatial axis.
    bias : bool
    init : {"pytorch", "xavier", "he", "dcgan"}
        ``"pytorch"`` (PyTorch's default): ``kaiming_uniform_(a=sqrt(5))``,
        i.e. W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and b from the same
        range, with ``fan_in = in_channels·kh·kw``. ``"xavier"``: W ~ U(-a, a),
        a = sqrt(6/(fan_in+fan_out)), b = 0. ``"he"``: W ~ N(0, 2/fan_in),
        b = 0. ``"dcgan"``: W ~ N(0, 0.02^2), b = 0 (Radford et al. 2016).
    rng : numpy.random.Generator, int or None
        Source of the initial values (drawn on the host); None: the global
        generator that :func:`scratchgan.manual_seed` reseeds.
    dtype : {"float32", "float64"}

    Attributes
    ----------
    weight : Parameter
        Shape (out_channels, in_channels, kh, kw), PyTorch's layout.
    bias : Parameter or None
        Shape (out_channels,).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True,
                 init: str = "pytorch", rng=None, dtype="float32"):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, 0, bias, init, rng, dtype)

    def forward(self, x) -> Tensor:
        x = _as_input(x, self)
        self._check_input(x)
        return conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution layer (see :func:`scratchgan.ops.conv_transpose2d`).

    Output side ``(H - 1) stride - 2 padding + kernel + output_padding``; with
    kernel 4, stride 2 and padding 1 it doubles the side (DCGAN's generator).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride : int or (int, int)
    padding : int or (int, int)
    output_padding : int or (int, int)
        Smaller than the stride.
    bias : bool
    init : {"pytorch", "xavier", "he", "dcgan"}
        As :class:`Conv2d`, with PyTorch's fans of the (in, out, kh, kw)
        weight: ``fan_in = out_channels·kh·kw``.
    rng : numpy.random.Generator, int or None
    dtype : {"float32", "float64"}

    Attributes
    ----------
    weight : Parameter
        Shape (in_channels, out_channels, kh, kw), PyTorch's layout.
    bias : Parameter or None
        Shape (out_channels,).
    """

    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 bias: bool = True, init: str = "pytorch", rng=None, dtype="float32"):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding, bias, init, rng,
                         dtype)

    def forward(self, x) -> Tensor:
        x = _as_input(x, self)
        self._check_input(x)
        return conv_transpose2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                                output_padding=self.output_padding)
