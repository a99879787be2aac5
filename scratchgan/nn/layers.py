"""Layers: Linear, Embedding, Sequential, activations, Dropout, LayerNorm, BatchNorm1d, and mlp()."""

from __future__ import annotations

import numpy as np

from .. import backend
from ..ops import getitem, leaky_relu, linear, linear_relu, matmul, mean, mul, pow as pow_, relu, reshape, sigmoid, tanh
from ..tensor import Tensor, as_tensor
from .init import _init_linear, normal_, ones_
from .module import LINEAR_INITS, Module, _as_generator, _empty_param, _float_dtype, _positive_int

# --------------------------------------------------------------------------- layers


class Linear(Module):
    """Affine map ``y = x @ W + b``.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the last axis of the input and of the output.
    bias : bool
        Add a learnable bias ``b`` of shape ``(out_features,)``.
    init : {"pytorch", "xavier", "he", "dcgan"}
        ``"pytorch"``: W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's
        default). ``"xavier"``: W ~ U(-a, a), a = sqrt(6/(fan_in+fan_out)),
        b = 0. ``"he"``: W ~ N(0, 2/fan_in), b = 0. ``"dcgan"``: W ~ N(0,
        0.02^2), b = 0.
    rng : numpy.random.Generator, int or None
        Source of the initial values (drawn on the host).
    dtype : {"float32", "float64"}

    Attributes
    ----------
    weight : Parameter
        Shape ``(in_features, out_features)``: the transpose of PyTorch's
        ``(out, in)`` layout, so the forward pass needs no transpose.
    bias : Parameter or None
        Shape ``(out_features,)``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init: str = "pytorch",
                 rng=None, dtype="float32"):
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features", "Linear")
        self.out_features = _positive_int(out_features, "out_features", "Linear")
        if init not in LINEAR_INITS:
            raise ValueError(f"Linear: unknown init {init!r}; choose one of {LINEAR_INITS}")
        dtype = _float_dtype(dtype)
        self.init = init
        self.weight = _empty_param((self.in_features, self.out_features), dtype)
        self.bias = _empty_param((self.out_features,), dtype) if bias else None
        self.reset_parameters(rng)

    def reset_parameters(self, rng=None) -> None:
        """Draw fresh values with this layer's ``init`` scheme."""
        _init_linear(self.weight, self.bias, self.init, _as_generator(rng))

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            x = Tensor(x, dtype=self.weight.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear: input's last axis has size {x.shape[-1] if x.ndim else None} (input shape {x.shape}) "
                f"but in_features is {self.in_features}"
            )
        if x.ndim == 2:
            return linear(x, self.weight, self.bias)  # one fused op on the hot path
        y = matmul(x, self.weight)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """Lookup table: integer indices -> rows of ``weight``.

    ``y[..., :] = weight[index[...], :]``; the gradient scatters back into the
    rows (a row used several times gets the sum of its gradients).

    Parameters
    ----------
    num_embeddings, embedding_dim : int
        ``weight`` has shape ``(num_embeddings, embedding_dim)``, initialized
        ``N(0, 1)`` as in PyTorch.
    rng : numpy.random.Generator, int or None
    dtype : {"float32", "float64"}
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, rng=None, dtype="float32"):
        super().__init__()
        self.num_embeddings = _positive_int(num_embeddings, "num_embeddings", "Embedding")
        self.embedding_dim = _positive_int(embedding_dim, "embedding_dim", "Embedding")
        self.weight = _empty_param((self.num_embeddings, self.embedding_dim), _float_dtype(dtype))
        normal_(self.weight, _as_generator(rng))

    def forward(self, indices) -> Tensor:
        """Rows for ``indices`` (a Tensor or array of ints, any shape): shape ``indices.shape + (dim,)``."""
        idx = indices.data if isinstance(indices, Tensor) else indices
        if not hasattr(idx, "dtype"):
            idx = np.asarray(idx)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"Embedding: indices must be integers, got dtype {idx.dtype}")
        idx = backend.array_module(self.weight.data).asarray(idx)
        if idx.size:
            low, high = int(idx.min()), int(idx.max())
            if low < 0 or high >= self.num_embeddings:
                bad = low if low < 0 else high
                raise IndexError(
                    f"Embedding: index {bad} is out of range for {self.num_embeddings} embeddings "
                    f"(valid 0..{self.num_embeddings - 1})"
                )
        return getitem(self.weight, idx)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class Sequential(Module):
    """Modules applied in order: ``Sequential(a, b)(x) == b(a(x))``.

    Submodules are named ``"0"``, ``"1"``, ...; the container supports
    ``len``, iteration, integer indexing and slicing (a slice is a new
    Sequential sharing the same modules).
    """

    def __init__(self, *modules: Module):
        super().__init__()
        for i, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: item {i} is a {type(module).__name__}, not a Module")
            setattr(self, str(i), module)

    def forward(self, x):
        modules = list(self._modules.values())
        i, n = 0, len(modules)
        while i < n:
            module = modules[i]
            # Linear directly followed by ReLU: one fused op (same values and gradients, one array less)
            if (i + 1 < n and type(module) is Linear and type(modules[i + 1]) is ReLU and module.bias is not None
                    and isinstance(x, Tensor) and x.ndim == 2 and x.shape[1] == module.in_features):
                x = linear_relu(x, module.weight, module.bias)
                i += 2
                continue
            x = module(x)
            i += 1
        return x

    def append(self, module: Module) -> Sequential:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*items[index])
        try:
            return items[index]
        except IndexError:
            raise IndexError(f"Sequential index {index} is out of range for {len(items)} modules") from None


class Identity(Module):
    """``y = x``."""

    def forward(self, x):
        return x


class ReLU(Module):
    """``y = max(x, 0)``."""

    def forward(self, x):
        return relu(x)


class LeakyReLU(Module):
    """``y = x`` for x > 0, ``negative_slope * x`` otherwise.

    The default slope is PyTorch's, 0.01, the same as :func:`scratchgan.ops.leaky_relu`;
    GAN discriminators usually pass 0.2 (DCGAN), as the trainer's models do.
    """

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    """``y = tanh(x)``."""

    def forward(self, x):
        return tanh(x)


class Sigmoid(Module):
    """``y = 1 / (1 + exp(-x))`` (stable form)."""

    def forward(self, x):
        return sigmoid(x)


class Dropout(Module):
    """Inverted dropout.

    In training mode each element is kept with probability ``1 - p`` and
    scaled: ``y = x * m / (1 - p)``, ``m ~ Bernoulli(1 - p)``, so
    ``E[y] = x``; with ``p = 1`` the output is zero. In eval mode (or with
    ``p = 0``) ``y = x``, the same tensor.

    Parameters
    ----------
    p : float
        Drop probability in [0, 1].
    rng : numpy.random.Generator, int or None
        Source of the masks, drawn on the host (so NumPy and CuPy runs drop
        the same elements for the same seed).
    """

    def __init__(self, p: float = 0.5, rng=None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = float(p)
        self.rng = _as_generator(rng)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        scale = 0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p)
        keep = self.rng.random(x.shape) >= self.p
        mask = (keep * scale).astype(x.dtype)
        return mul(x, as_tensor(backend.array_module(x.data).asarray(mask)))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _normalize(xc: Tensor, var: Tensor, eps: float) -> Tensor:
    return xc * pow_(var + eps, -0.5)


class LayerNorm(Module):
    """Layer normalization (Ba et al. 2016), per sample.

    Over the last ``len(normalized_shape)`` axes of each sample:

    .. math::

        \\mu = \\frac{1}{H} \\sum_i x_i, \\quad
        \\sigma^2 = \\frac{1}{H} \\sum_i (x_i - \\mu)^2, \\quad
        y_i = \\frac{x_i - \\mu}{\\sqrt{\\sigma^2 + \\epsilon}} \\, \\gamma_i + \\beta_i

    (biased variance, as PyTorch). Each sample is normalized by its own
    statistics, so samples never interact: safe in a WGAN-GP critic, whose
    penalty needs per-sample input gradients. Built from differentiable ops,
    so it is twice differentiable.

    Parameters
    ----------
    normalized_shape : int or tuple of int
        Trailing shape to normalize over.
    eps : float
    elementwise_affine : bool
        Learn ``gamma`` (``weight``, ones) and ``beta`` (``bias``, zeros).
    dtype : {"float32", "float64"}
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, dtype="float32"):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        self.normalized_shape = tuple(_positive_int(s, "normalized_shape", "LayerNorm") for s in shape)
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        dtype = _float_dtype(dtype)
        if self.elementwise_affine:
            self.weight = ones_(_empty_param(self.normalized_shape, dtype))
            self.bias = _empty_param(self.normalized_shape, dtype)
        else:
            self.weight = self.bias = None

    def forward(self, x: Tensor) -> Tensor:
        k = len(self.normalized_shape)
        if x.shape[x.ndim - k:] != self.normalized_shape or x.ndim < k:
            raise ValueError(
                f"LayerNorm: input shape {x.shape} does not end with normalized_shape {self.normalized_shape}"
            )
        axes = tuple(range(x.ndim - k, x.ndim))
        xc = x - mean(x, axis=axes, keepdims=True)
        y = _normalize(xc, mean(xc * xc, axis=axes, keepdims=True), self.eps)
        if self.elementwise_affine:
            y = y * self.weight + self.bias
        return y

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class BatchNorm1d(Module):
    """Batch normalization (Ioffe & Szegedy 2015) over ``(N, C)`` or ``(N, C, L)`` inputs.

    Training mode, per channel c over the batch (and length) axes, m values:

    .. math::

        \\mu_c = \\frac{1}{m} \\sum x, \\quad
        \\sigma_c^2 = \\frac{1}{m} \\sum (x - \\mu_c)^2, \\quad
        y = \\frac{x - \\mu_c}{\\sqrt{\\sigma_c^2 + \\epsilon}} \\gamma_c + \\beta_c

    and the running statistics (buffers, no gradient) are updated as PyTorch
    does, with the *unbiased* variance:

    .. math::

        \\hat\\mu \\leftarrow (1 - \\text{momentum}) \\hat\\mu + \\text{momentum} \\, \\mu_c, \\quad
        \\hat\\sigma^2 \\leftarrow (1 - \\text{momentum}) \\hat\\sigma^2
            + \\text{momentum} \\, \\frac{m}{m - 1} \\sigma_c^2

    Eval mode uses ``running_mean`` and ``running_var`` instead of the batch
    statistics. Batch statistics couple the samples of a batch, so do not use
    it in a WGAN-GP critic (use :class:`LayerNorm`). PyTorch's
    ``num_batches_tracked`` buffer is not kept (only needed for momentum=None).

    Parameters
    ----------
    num_features : int
        C.
    eps : float
    momentum : float
        In [0, 1].
    affine : bool
        Learn ``gamma`` (``weight``, ones) and ``beta`` (``bias``, zeros).
    dtype : {"float32", "float64"}
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                 dtype="float32"):
        super().__init__()
        self.num_features = _positive_int(num_features, "num_features", "BatchNorm1d")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm1d: momentum must be in [0, 1], got {momentum}")
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.affine = bool(affine)
        dtype = _float_dtype(dtype)
        if self.affine:
            self.weight = ones_(_empty_param((self.num_features,), dtype))
            self.bias = _empty_param((self.num_features,), dtype)
        else:
            self.weight = self.bias = None
        self.register_buffer("running_mean", backend.xp.zeros(self.num_features, dtype=dtype))
        self.register_buffer("running_var", backend.xp.ones(self.num_features, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        c = self.num_features
        if x.ndim not in (2, 3) or x.shape[1] != c:
            raise ValueError(f"BatchNorm1d: expected input of shape (N, {c}) or (N, {c}, L), got {x.shape}")
        axes = (0,) if x.ndim == 2 else (0, 2)
        shape = (1, c) if x.ndim == 2 else (1, c, 1)
        if self.training:
            m = x.size // c
            if m < 2:
                raise ValueError(
                    f"BatchNorm1d: expected more than 1 value per channel when training, got input shape {x.shape}"
                )
            mu = mean(x, axis=axes, keepdims=True)
            xc = x - mu
            var = mean(xc * xc, axis=axes, keepdims=True)
            y = _normalize(xc, var, self.eps)
            # running statistics: plain array arithmetic, never recorded
            mom = self.momentum
            rm, rv = self.running_mean, self.running_var
            rm *= 1.0 - mom
            rm += mom * mu.data.reshape(c)
            rv *= 1.0 - mom
            rv += (mom * m / (m - 1)) * var.data.reshape(c)
        else:
            xp = backend.array_module(x.data)
            rm = as_tensor(self.running_mean.reshape(shape))
            inv = as_tensor((1.0 / xp.sqrt(self.running_var + self.eps)).astype(x.dtype).reshape(shape))
            y = (x - rm) * inv
        if self.affine:
            if x.ndim == 2:
                y = y * self.weight + self.bias
            else:
                y = y * reshape(self.weight, shape) + reshape(self.bias, shape)
        return y

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


# --------------------------------------------------------------------------- mlp


_ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid, "identity": Identity}


def _make_activation(spec, negative_slope: float) -> Module | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {spec!r}; choose one of {sorted(_ACTIVATIONS)} or None")
        return LeakyReLU(negative_slope) if spec == "leaky_relu" else _ACTIVATIONS[spec]()
    if isinstance(spec, Module):
        return spec
    if callable(spec):
        module = spec()
        if not isinstance(module, Module):
            raise TypeError(f"activation factory returned a {type(module).__name__}, not a Module")
        return module
    raise TypeError(f"activation must be a name, a Module or a Module factory, got {type(spec).__name__}")


def mlp(sizes, activation="relu", out_activation=None, rng=None, init: str = "pytorch", dtype="float32",
        norm: str | None = None, bias: bool = True, negative_slope: float = 0.01) -> Sequential:
    """A multilayer perceptron: ``Linear -> [norm] -> activation`` per hidden layer, then ``Linear``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first: ``[2, 128, 128, 1]`` makes three Linear layers.
    activation : str, Module factory or None
        Hidden activation: ``"relu"``, ``"leaky_relu"`` (slope ``negative_slope``),
        ``"tanh"``, ``"sigmoid"``, ``"identity"``, or a zero-argument callable
        returning a Module (e.g. a class).
    out_activation : same, optional
        Applied after the last Linear (None: raw outputs / logits).
    rng : numpy.random.Generator, int or None
        One generator shared by the layers, drawn in order: same seed, same net.
    init : {"pytorch", "xavier", "he", "dcgan"}
        See :class:`Linear`.
    dtype : {"float32", "float64"}
    norm : {None, "layer", "batch"}
        Normalization after each hidden Linear (before the activation). Use
        ``"layer"``, not ``"batch"``, in a WGAN-GP critic.
    bias : bool
    negative_slope : float
        Slope for ``"leaky_relu"``.

    Returns
    -------
    Sequential
    """
    sizes = [_positive_int(s, "sizes", "mlp") for s in sizes]
    if len(sizes) < 2:
        raise ValueError(f"mlp: sizes needs at least an input and an output width, got {sizes}")
    if norm not in (None, "layer", "batch"):
        raise ValueError(f"mlp: norm must be None, 'layer' or 'batch', got {norm!r}")
    rng = _as_generator(rng)
    layers: list[Module] = []
    n = len(sizes) - 1
    for i in range(n):
        layers.append(Linear(sizes[i], sizes[i + 1], bias=bias, init=init, rng=rng, dtype=dtype))
        act = _make_activation(activation if i < n - 1 else out_activation, negative_slope)
        if i < n - 1 and norm is not None:
            width = sizes[i + 1]
            layers.append(LayerNorm(width, dtype=dtype) if norm == "layer" else BatchNorm1d(width, dtype=dtype))
        if act is not None:
            layers.append(act)
    return Sequential(*layers)
