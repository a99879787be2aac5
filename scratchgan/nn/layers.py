"""Layers: Linear, Embedding, Sequential, activations, Flatten, Unflatten, Dropout, LayerNorm, BatchNorm1d/2d, mlp().

The convolution layers are in :mod:`scratchgan.nn.conv`.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..backend.device_rng import DeviceGenerator
from ..ops.norm import batch_norm_with_stats
from ..ops.shape import getitem_unchecked, index_range_violation
from ..ops import leaky_relu, linear, linear_relu, matmul, mean, mul, pow as pow_, relu, reshape, sigmoid, tanh
from ..autograd.tensor import Tensor, as_tensor
from .init import _init_linear, normal_, ones_
from ..backend.validate import as_generator, float_dtype, positive_int
from .container import _ListOps
from .module import LINEAR_INITS, Module, _empty_param

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
        Source of the initial values (drawn on the host); None: the global
        generator that :func:`scratchgan.manual_seed` reseeds (see
        :func:`scratchgan.backend.validate.as_generator`).
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
        self.in_features = positive_int(in_features, "in_features", "Linear")
        self.out_features = positive_int(out_features, "out_features", "Linear")
        if init not in LINEAR_INITS:
            raise ValueError(f"Linear: unknown init {init!r}; choose one of {LINEAR_INITS}")
        dtype = float_dtype(dtype, "Linear")
        self.init = init
        self.weight = _empty_param((self.in_features, self.out_features), dtype)
        self.bias = _empty_param((self.out_features,), dtype) if bias else None
        self.reset_parameters(rng)

    def reset_parameters(self, rng=None) -> None:
        """Draw fresh values with this layer's ``init`` scheme."""
        _init_linear(self.weight, self.bias, self.init, as_generator(rng, "Linear"))

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
        self.num_embeddings = positive_int(num_embeddings, "num_embeddings", "Embedding")
        self.embedding_dim = positive_int(embedding_dim, "embedding_dim", "Embedding")
        self.weight = _empty_param((self.num_embeddings, self.embedding_dim), float_dtype(dtype, "Embedding"))
        normal_(self.weight, rng=as_generator(rng, "Embedding"))

    def forward(self, indices) -> Tensor:
        """Rows for ``indices`` (a Tensor or array of ints, any shape): shape ``indices.shape + (dim,)``."""
        idx = indices.data if isinstance(indices, Tensor) else indices
        if not hasattr(idx, "dtype"):
            idx = np.asarray(idx)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"Embedding: indices must be integers, got dtype {idx.dtype}")
        # one check, on the host for host indices (before the upload), else on the device with one small read
        # (none for indices vouched for with backend.vouch_indices): CuPy would wrap a bad index silently
        found = index_range_violation([(idx, self.num_embeddings)], "Embedding", negative=False)
        if found is not None:
            raise IndexError(f"Embedding: index {found[0]} is out of range for {self.num_embeddings} embeddings "
                             f"(valid 0..{self.num_embeddings - 1})")
        return getitem_unchecked(self.weight, backend.array_module(self.weight.data).asarray(idx))

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class Sequential(_ListOps, Module):
    """Modules applied in order: ``Sequential(a, b)(x) == b(a(x))``.

    Submodules are named ``"0"``, ``"1"``, ...; the container supports the
    list operations of :class:`~scratchgan.nn.ModuleList` (``len``,
    iteration, indexing, assignment ``seq[i] = m``, ``del``, ``append``,
    ``extend``, ``insert``, ``pop``), renumbering after an insertion or a
    deletion as PyTorch does. A slice is a new Sequential sharing the same
    modules.
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

    @classmethod
    def _of(cls, modules: list) -> Sequential:
        return cls(*modules)


class Identity(Module):
    """``y = x``."""

    def forward(self, x):
        return x


class ReLU(Module):
    """``y = max(x, 0)``.

    ``inplace`` is accepted for PyTorch compatibility and ignored: every op
    here makes a new array (the fused ``linear_relu`` already avoids the copy).
    """

    def __init__(self, inplace: bool = False):
        super().__init__()

    def forward(self, x):
        return relu(x)


class LeakyReLU(Module):
    """``y = x`` for x > 0, ``negative_slope * x`` otherwise.

    The default slope is PyTorch's, 0.01, the same as :func:`scratchgan.ops.leaky_relu`;
    GAN discriminators usually pass 0.2 (DCGAN), as the trainer's models do.
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):  # inplace: accepted, ignored (see ReLU)
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


class Flatten(Module):
    """Merge axes ``start_dim..end_dim`` into one (PyTorch's ``nn.Flatten``): ``(N, C, H, W) -> (N, C·H·W)``.

    A reshape, so the gradient is the reshape back. Negative dims count from
    the end. The order of the merged values is C order (NCHW), as in PyTorch,
    whatever the memory layout of the input (a conv output's channels-last
    view is copied into that order).
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x: Tensor) -> Tensor:
        ndim = max(x.ndim, 1)
        start, end = self.start_dim, self.end_dim
        start, end = start + ndim if start < 0 else start, end + ndim if end < 0 else end
        if not (0 <= start < ndim and 0 <= end < ndim) or start > end:
            raise ValueError(f"Flatten: start_dim={self.start_dim}, end_dim={self.end_dim} do not select axes "
                             f"of an input of shape {x.shape}")
        shape = x.shape[:start] + (int(np.prod(x.shape[start:end + 1])),) + x.shape[end + 1:]
        return reshape(x, shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split axis ``dim`` into ``unflattened_size`` (PyTorch's ``nn.Unflatten``): ``(N, C·H·W) -> (N, C, H, W)``.

    ``unflattened_size`` is a tuple of ints whose product is the axis's size
    (one entry may be -1). A reshape, so the gradient is the reshape back.
    """

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        self.dim = int(dim)
        self.unflattened_size = tuple(int(v) for v in unflattened_size)
        if not self.unflattened_size or any(v < 1 and v != -1 for v in self.unflattened_size) \
                or self.unflattened_size.count(-1) > 1:
            raise ValueError(f"Unflatten: unflattened_size must be positive ints (one may be -1), "
                             f"got {unflattened_size!r}")

    def forward(self, x: Tensor) -> Tensor:
        dim = self.dim + x.ndim if self.dim < 0 else self.dim
        if not 0 <= dim < x.ndim:
            raise ValueError(f"Unflatten: dim {self.dim} is out of range for an input of shape {x.shape}")
        sizes = self.unflattened_size
        known = int(np.prod([v for v in sizes if v != -1]))
        size = x.shape[dim]
        if (-1 in sizes and size % known) or (-1 not in sizes and known != size):
            raise ValueError(f"Unflatten: axis {dim} of size {size} (input shape {x.shape}) cannot be split "
                             f"into {sizes}")
        return reshape(x, x.shape[:dim] + sizes + x.shape[dim + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


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
    rng : numpy.random.Generator, int, DeviceGenerator or None
        Source of the masks. A host generator (or a seed) draws them on the
        host, so NumPy and CuPy runs drop the same elements for the same seed;
        the mask is then uploaded at each call on CuPy, which a captured CUDA
        graph cannot do (refused there). A
        :class:`scratchgan.backend.device_rng.DeviceGenerator` draws them where the
        tensor lives, with no transfer (capturable). None: the global host
        generator (:func:`scratchgan.manual_seed`), looked up at each call.
    """

    def __init__(self, p: float = 0.5, rng=None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = float(p)
        # None stays None: the global generator is looked up at each forward (manual_seed replaces it)
        self.rng = rng if rng is None or isinstance(rng, DeviceGenerator) else as_generator(rng, "Dropout")

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        scale = 0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p)
        if isinstance(self.rng, DeviceGenerator):  # drawn on the device: no transfer
            keep = self.rng.random(x.shape, x.dtype) >= self.p
            return mul(x, as_tensor((keep * scale).astype(x.dtype)))
        backend._refuse_during_capture(
            "Dropout in training mode", "uploads a mask drawn on the host (give it "
            "rng=scratchgan.backend.device_rng.DeviceGenerator(seed) to draw on the device, or use eval mode)")
        keep = as_generator(self.rng, "Dropout").random(x.shape) >= self.p
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
        self.normalized_shape = tuple(positive_int(s, "normalized_shape", "LayerNorm") for s in shape)
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        dtype = float_dtype(dtype, "LayerNorm")
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


class _BatchNorm(Module):
    """The body of :class:`BatchNorm1d` and :class:`BatchNorm2d`: per-channel statistics over every other axis.

    A subclass sets ``_NDIMS`` (the input ranks it accepts) and ``_SHAPES``
    (how its error message names them).
    """

    _NDIMS: tuple = ()
    _SHAPES = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                 dtype="float32"):
        super().__init__()
        self.num_features = positive_int(num_features, "num_features", type(self).__name__)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{type(self).__name__}: momentum must be in [0, 1], got {momentum}")
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.affine = bool(affine)
        dtype = float_dtype(dtype, type(self).__name__)
        if self.affine:
            self.weight = ones_(_empty_param((self.num_features,), dtype))
            self.bias = _empty_param((self.num_features,), dtype)
        else:
            self.weight = self.bias = None
        self.register_buffer("running_mean", backend.xp.zeros(self.num_features, dtype=dtype))
        self.register_buffer("running_var", backend.xp.ones(self.num_features, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        c = self.num_features
        if x.ndim not in self._NDIMS or x.shape[1] != c:
            who, expected = type(self).__name__, self._SHAPES.format(c=c)
            raise ValueError(f"{who}: expected input of shape {expected}, got {x.shape}")
        if self.training:
            m = x.size // c
            if m < 2:
                raise ValueError(
                    f"{type(self).__name__}: expected more than 1 value per channel when training, "
                    f"got input shape {x.shape}"
                )
            # one op (ops/norm.py): the normalization and the affine map, with the batch's statistics
            y, mu, var = batch_norm_with_stats(x, self.weight, self.bias, self.eps)
            # running statistics: plain array arithmetic, never recorded
            mom = self.momentum
            rm, rv = self.running_mean, self.running_var
            rm *= 1.0 - mom
            rm += mom * mu
            rv *= 1.0 - mom
            rv += (mom * m / (m - 1)) * var
            return y
        # eval mode: the running statistics, constants of the graph
        shape = (1, c) + (1,) * (x.ndim - 2)
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


class BatchNorm1d(_BatchNorm):
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

    _NDIMS = (2, 3)
    _SHAPES = "(N, {c}) or (N, {c}, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization over ``(N, C, H, W)`` inputs: per channel, over the batch and both spatial axes.

    The same computation as :class:`BatchNorm1d` (same formulas, running
    statistics with the unbiased variance as PyTorch, eval mode with the
    running statistics), with the ``m = N·H·W`` values of a channel. It keeps
    the input's memory layout (a conv output's channels-last view stays one).
    Do not use it in a WGAN-GP critic (batch statistics couple the samples).

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

    _NDIMS = (4,)
    _SHAPES = "(N, {c}, H, W)"


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
    sizes = [positive_int(s, "sizes", "mlp") for s in sizes]
    if len(sizes) < 2:
        raise ValueError(f"mlp: sizes needs at least an input and an output width, got {sizes}")
    if norm not in (None, "layer", "batch"):
        raise ValueError(f"mlp: norm must be None, 'layer' or 'batch', got {norm!r}")
    rng = as_generator(rng, "mlp")
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
