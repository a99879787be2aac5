"""Layers, the Module container and weight initializers (PyTorch-like names).

Everything here is built from the differentiable ops in :mod:`scratchgan.ops`,
so every layer is twice differentiable (what WGAN-GP and R1 penalties need).

Layout of ``Linear``
--------------------
``Linear.weight`` has shape ``(in_features, out_features)`` and the layer
computes ``y = x @ W + b``. PyTorch stores the transpose, ``(out, in)``, and
computes ``x @ W.T + b``. Keeping ``(in, out)`` means the forward pass is one
plain ``matmul`` with no transpose node in the graph, and the weight gradient
``x.T @ g`` is produced directly in the weight's own layout. To load a PyTorch
weight, pass ``weight.T`` (``load_state_dict`` hints at this when the two
shapes are transposes of each other). Fans are read accordingly:
``fan_in = shape[0]`` and ``fan_out = shape[1]``.

The convolution layers (:mod:`scratchgan.nn.conv`) keep PyTorch's weight layouts:
``Conv2d.weight`` is ``(out, in, kh, kw)`` and ``ConvTranspose2d.weight`` is
``(in, out, kh, kw)``, so PyTorch's conv weights load as they are.

Randomness
----------
Initializers and :class:`Dropout` draw on the host with an explicit
:class:`numpy.random.Generator` and then copy the values to the parameter's
backend, so a seed gives the same weights on NumPy and on CuPy. Layers take
``rng``: a Generator, an int seed, or None for scratchgan's global
generator, which ``scratchgan.manual_seed(s)`` reseeds (so ``sg.manual_seed(0)``
then building a model is reproducible, as in PyTorch). Several layers sharing
one Generator draw in construction order, which is what :func:`mlp` does.
"""

from .init import calculate_fans, calculate_gain, constant_, dcgan_init_, kaiming_normal_, kaiming_uniform_, normal_, ones_, pytorch_linear_init_, uniform_, xavier_normal_, xavier_uniform_, zeros_
from .container import ModuleDict, ModuleList
from .conv import Conv2d, ConvTranspose2d
from .layers import BatchNorm1d, BatchNorm2d, Dropout, Embedding, Flatten, Identity, LayerNorm, LeakyReLU, Linear, ReLU, Sequential, Sigmoid, Tanh, Unflatten, mlp
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from .module import LINEAR_INITS, IncompatibleKeys, Module, Parameter
from . import functional, utils  # nn.functional and nn.utils.spectral_norm, as in torch.nn


__all__ = [
    "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "MSELoss",
    "BatchNorm2d", "Conv2d", "ConvTranspose2d", "Flatten", "Unflatten",
    "BatchNorm1d", "Dropout", "Embedding", "Identity", "IncompatibleKeys", "LINEAR_INITS", "LayerNorm", "LeakyReLU", "Linear",
    "Module", "ModuleDict", "ModuleList", "Parameter", "ReLU", "Sequential", "Sigmoid", "Tanh", "calculate_fans",
    "calculate_gain", "constant_",
    "dcgan_init_", "kaiming_normal_", "kaiming_uniform_", "mlp", "normal_", "ones_", "pytorch_linear_init_",
    "uniform_", "utils", "xavier_normal_", "xavier_uniform_", "zeros_",
]
