r"""Weight reparametrisations of a module: spectral normalisation (``torch.nn.utils.spectral_norm``).

:func:`spectral_norm` replaces a module's weight :math:`W` by
:math:`W / \sigma(W)`, where :math:`\sigma(W)` is the largest singular value of
:math:`W` seen as a matrix, estimated by power iteration (Miyato, Kataoka,
Koyama & Yoshida 2018, *Spectral Normalization for Generative Adversarial
Networks*, Algorithm 1). The semantics are PyTorch's
(``torch.nn.utils.spectral_norm``), so code and checkpoints written for it
carry over:

* the trained parameter becomes ``weight_orig`` (the same :class:`Parameter`
  object, so an optimizer built before the call keeps working); the
  singular-vector estimates ``weight_u`` (h,) and ``weight_v`` (w,) are
  buffers, saved in :meth:`~scratchgan.nn.Module.state_dict` and checkpoints;
* each forward call in training mode first runs ``n_power_iterations`` steps
  of power iteration on the arrays (nothing is recorded in the graph), writing
  ``weight_u`` and ``weight_v`` in place; in eval mode it runs none and uses
  the stored vectors;
* :math:`\sigma = u^\top W_{\text{mat}} v` is then differentiated with respect
  to :math:`W` with :math:`u` and :math:`v` held constant (the snapshot taken
  at this forward call), and ``module.weight`` is set to :math:`W/\sigma`, a
  plain tensor of the graph that the layer's own ``forward`` uses.

The matrix :math:`W_{\text{mat}}` (h, w) is the weight with axis ``dim``
moved first and the other axes flattened: PyTorch's ``reshape_weight_to_matrix``.
PyTorch's default ``dim`` is 0, except 1 for transposed convolutions, whose
weight is (in, out, kh, kw): the output channels are always the rows. Here
:class:`~scratchgan.nn.Linear` stores its weight as (in, out), the transpose of
PyTorch's, so its default ``dim`` is 1: the matrix is then (out, in) as in
PyTorch, and ``weight_u`` (out,) and ``weight_v`` (in,) have PyTorch's shapes
(a PyTorch ``weight_orig`` loads transposed, as every Linear weight does).

How it hooks in: scratchgan modules have no forward hooks, so the call gives
the instance a subclass of its own class (cached, same name) whose ``forward``
computes the normalised weight and then calls the layer's ``forward``.
``isinstance(m, nn.Linear)`` stays true; code that tests ``type(m) is Linear``
(the fused Linear+ReLU path of :class:`~scratchgan.nn.Sequential`) no longer
matches, which is what makes it call ``forward``. :func:`remove_spectral_norm`
undoes all of it.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from ..autograd.engine import no_grad
from ..ops import sum as _sum
from ..autograd.tensor import Tensor, as_tensor
from ..backend.validate import as_generator
from .conv import ConvTranspose2d
from .layers import Linear
from .module import Module, Parameter

__all__ = ["SpectralNorm", "remove_spectral_norm", "spectral_norm"]


def _normalize(x, eps: float):
    """``x / max(||x||_2, eps)``: ``torch.nn.functional.normalize`` of a vector (a new array).

    The norm is ``sqrt(sum(x * x))``, elementwise work and a reduction:
    ``cupy.linalg.norm`` calls cuBLAS (``cupy.dot``), which CuPy refuses
    while a CUDA graph is captured.
    """
    xp = backend.array_module(x)
    return x / xp.maximum(xp.sqrt((x * x).sum()), x.dtype.type(eps))  # a kernel argument, never uploaded


def _default_dim(module: Module) -> int:
    """The axis of the weight whose size is the number of output features (the matrix's rows)."""
    return 1 if isinstance(module, (Linear, ConvTranspose2d)) else 0


class SpectralNorm:
    r"""The state of one spectral normalisation: which weight, how many power iterations, eps, dim.

    Kept in the module's ``_spectral_norms`` dict under the weight's name (as
    PyTorch keeps its ``SpectralNorm`` forward pre-hook).

    Power iteration (one step, on host or device arrays, no graph)::

        v <- normalize(W_mat^T u),   u <- normalize(W_mat v),   normalize(x) = x / max(||x||, eps)

    then :math:`\sigma = u^\top W_{\text{mat}} v` and the weight is
    :math:`W / \sigma`. The derivative used for :math:`\sigma` is
    :math:`\partial\sigma/\partial W_{\text{mat}} = u v^\top` (u, v constants);
    it is built as ``sum(W * C)`` with ``C`` the outer product :math:`u v^\top`
    laid out like ``W``, one elementwise product and one sum, with no
    transposes of ``W`` in the graph.
    """

    def __init__(self, name: str = "weight", n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12):
        self.name = name
        self.n_power_iterations = n_power_iterations
        self.dim = dim
        self.eps = eps

    def matrix(self, weight):
        """``weight`` (an array) as the (h, w) matrix: axis ``dim`` first, the others flattened."""
        xp = backend.array_module(weight)
        if self.dim != 0:
            weight = xp.moveaxis(weight, self.dim, 0)
        return weight.reshape(weight.shape[0], -1)

    def _coefficients(self, weight, u, v):
        """The outer product ``u v^T`` laid out like ``weight``: ``sum(weight * C) = u^T W_mat v``."""
        xp = backend.array_module(weight)
        shape = list(weight.shape)
        moved = [shape[self.dim]] + shape[:self.dim] + shape[self.dim + 1:]
        c = xp.outer(u, v).reshape(moved)
        if self.dim != 0:
            c = xp.moveaxis(c, 0, self.dim)
        return xp.ascontiguousarray(c, dtype=weight.dtype)

    def power_iteration(self, module: Module) -> None:
        """Run ``n_power_iterations`` steps, writing ``<name>_u`` and ``<name>_v`` in place (no graph)."""
        w_mat = self.matrix(module._parameters[self.name + "_orig"].data)
        u, v = module._buffers[self.name + "_u"], module._buffers[self.name + "_v"]
        for _ in range(self.n_power_iterations):
            # in place, as PyTorch's normalize(..., out=v): the buffers keep their identity (optimizer-free state)
            # backend.matmul, not @: CuPy refuses cuBLAS during a CUDA-graph capture, backend.matmul does not
            v[...] = _normalize(backend.matmul(w_mat.T, u), self.eps)
            u[...] = _normalize(backend.matmul(w_mat, v), self.eps)

    def sigma(self, module: Module) -> Tensor:
        r""":math:`\sigma = u^\top W_{\text{mat}} v` as a 0-d tensor, differentiable in ``weight_orig`` only."""
        weight = module._parameters[self.name + "_orig"]
        u, v = module._buffers[self.name + "_u"], module._buffers[self.name + "_v"]
        # C is a fresh array: the graph keeps this forward's u, v even when a later forward updates the buffers
        # before backward (D(real), D(fake), then one backward), as PyTorch's clone() of u and v does
        return _sum(weight * as_tensor(self._coefficients(weight.data, u, v)))

    def compute_weight(self, module: Module, do_power_iteration: bool) -> Tensor:
        """``weight_orig / sigma``, after a power-iteration step when ``do_power_iteration``."""
        if do_power_iteration:
            self.power_iteration(module)
        return module._parameters[self.name + "_orig"] / self.sigma(module)

    def __call__(self, module: Module) -> None:
        """Set ``module.<name>`` for this forward call: one iteration in training mode, none in eval mode."""
        object.__setattr__(module, self.name, self.compute_weight(module, do_power_iteration=module.training))


class _SpectralNormed:
    """Mixin placed before a layer's class: compute the normalised weights, then the layer's forward."""

    def forward(self, *args, **kwargs):
        for fn in self._spectral_norms.values():
            fn(self)
        return super().forward(*args, **kwargs)

    def reset_parameters(self, rng=None) -> None:
        """The layer's initialisation, drawn into ``<name>_orig`` (the trained parameter)."""
        for name in self._spectral_norms:
            object.__setattr__(self, name, self._parameters[name + "_orig"])
        try:
            super().reset_parameters(rng)
        finally:
            with no_grad():
                for name, fn in self._spectral_norms.items():
                    object.__setattr__(self, name, fn.compute_weight(self, do_power_iteration=False))


_CLASSES: dict = {}


def _normed_class(cls: type) -> type:
    if issubclass(cls, _SpectralNormed):
        return cls
    if cls not in _CLASSES:
        # same name and docs: repr(), error messages and isinstance() see the layer the user built
        _CLASSES[cls] = type(cls.__name__, (_SpectralNormed, cls),
                             {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__})
    return _CLASSES[cls]


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: int | None = None, *, rng=None) -> Module:
    r"""Spectrally normalise the parameter ``name`` of ``module`` (Miyato et al. 2018); returns ``module``.

    .. math::

        \bar W = \frac{W}{\sigma(W)}, \qquad
        \sigma(W) = \max_{h \ne 0} \frac{\lVert W_{\text{mat}} h\rVert_2}{\lVert h\rVert_2}
        \approx \tilde u^\top W_{\text{mat}} \tilde v,

    with :math:`\tilde u, \tilde v` the power-iteration estimates of the top
    singular vectors, carried from one call to the next (one step per
    training-mode forward call is enough because W changes slowly). Gradient
    (u, v constant):

    .. math::

        \frac{\partial \bar W}{\partial W}\colon\ G \mapsto
        \frac{G}{\sigma} - \frac{\langle G, W\rangle}{\sigma^2}\, \tilde u \tilde v^\top .

    PyTorch's semantics (``torch.nn.utils.spectral_norm``): see the module
    docstring. ``weight_orig`` is the same Parameter object as the old
    ``weight``; ``weight_u`` and ``weight_v`` are buffers.

    Parameters
    ----------
    module : Module
        Any module with a floating Parameter ``name`` of at least 1 axis:
        :class:`~scratchgan.nn.Linear`, :class:`~scratchgan.nn.Conv2d`,
        :class:`~scratchgan.nn.ConvTranspose2d`, :class:`~scratchgan.nn.Embedding`, ...
    name : str
        The parameter's name.
    n_power_iterations : int
        Power-iteration steps per training-mode forward call (>= 1).
    eps : float
        Floor of the norms in the normalisations (> 0).
    dim : int, optional
        The axis of the weight that indexes the output features (the matrix's
        rows). Default: 1 for ``Linear`` (its (in, out) layout; the matrix is
        PyTorch's (out, in)) and ``ConvTranspose2d`` ((in, out, kh, kw), as
        PyTorch), 0 otherwise (``Conv2d``'s (out, in, kh, kw)).
    rng : numpy.random.Generator, int or None, keyword-only
        Source of the initial u and v (``N(0, I)``, normalised; u drawn first),
        drawn on the host; None: the global generator that
        :func:`scratchgan.manual_seed` reseeds (PyTorch draws them from its global generator).

    Returns
    -------
    Module
        ``module`` itself, now of a subclass of its class (same name).

    Raises
    ------
    RuntimeError
        When ``name`` is already spectrally normalised.
    ValueError
        When ``module`` has no parameter ``name``, or for bad ``n_power_iterations``, ``eps`` or ``dim``.

    Notes
    -----
    ``module.weight`` right after this call is the eval-mode normalised weight
    (detached); every forward call replaces it. Initialise weights *before*
    wrapping (or with the layer's ``reset_parameters()``, which writes into
    ``weight_orig``): writing into ``module.weight`` afterwards changes a
    temporary tensor, as in PyTorch.

    Examples
    --------
    >>> import scratchgan as sg
    >>> layer = sg.nn.utils.spectral_norm(sg.nn.Linear(20, 40, rng=0), rng=0)
    >>> sorted(layer.state_dict())
    ['bias', 'weight_orig', 'weight_u', 'weight_v']
    >>> layer.weight_u.shape, layer.weight_v.shape
    ((40,), (20,))
    """
    if not isinstance(module, Module):
        raise TypeError(f"spectral_norm: expected a Module, got {type(module).__name__}")
    if name in getattr(module, "_spectral_norms", {}):
        raise RuntimeError(f"Cannot register two spectral_norm hooks on the same parameter {name}")
    weight = module._parameters.get(name)
    if not isinstance(weight, Parameter):
        raise ValueError(f"spectral_norm: {type(module).__name__} has no parameter {name!r} "
                         f"(its parameters: {list(module._parameters)})")
    if weight.ndim < 1:
        raise ValueError(f"spectral_norm: parameter {name!r} is a scalar; it needs at least 1 axis")
    if isinstance(n_power_iterations, bool) or not isinstance(n_power_iterations, numbers.Integral) \
            or n_power_iterations <= 0:
        raise ValueError("spectral_norm: n_power_iterations must be a positive int, "
                         f"got {n_power_iterations!r}")
    if not isinstance(eps, numbers.Real) or not eps > 0 or not np.isfinite(eps):
        raise ValueError(f"spectral_norm: eps must be a finite number > 0, got {eps!r}")
    dim = _default_dim(module) if dim is None else dim
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or not -weight.ndim <= dim < weight.ndim:
        raise ValueError(f"spectral_norm: dim must be an axis of the {weight.shape} weight, got {dim!r}")
    fn = SpectralNorm(name, int(n_power_iterations), int(dim) % weight.ndim, float(eps))

    xp = backend.array_module(weight.data)
    h, w = fn.matrix(weight.data).shape
    gen = as_generator(rng, "spectral_norm")
    u = _normalize(xp.asarray(gen.standard_normal(h)).astype(weight.dtype), fn.eps)
    v = _normalize(xp.asarray(gen.standard_normal(w)).astype(weight.dtype), fn.eps)

    delattr(module, name)
    setattr(module, name + "_orig", weight)  # the same Parameter object, so optimizers keep it
    module.register_buffer(name + "_u", u)
    module.register_buffer(name + "_v", v)
    if "_spectral_norms" not in module.__dict__:
        object.__setattr__(module, "_spectral_norms", {})
    module._spectral_norms[name] = fn
    object.__setattr__(module, "__class__", _normed_class(type(module)))
    with no_grad():
        object.__setattr__(module, name, fn.compute_weight(module, do_power_iteration=False))
    return module


def remove_spectral_norm(module: Module, name: str = "weight") -> Module:
    """Undo :func:`spectral_norm`: ``name`` becomes a plain Parameter holding ``weight_orig / sigma``.

    As PyTorch's ``remove_spectral_norm``, the kept value is the eval-mode one
    (the stored u and v, no further power iteration). The Parameter is the
    same object as ``weight_orig``, its values replaced in place (so an
    optimizer holding it keeps working); ``weight_u`` and ``weight_v`` are
    dropped. Returns ``module``.

    Raises
    ------
    ValueError
        When ``name`` of ``module`` is not spectrally normalised.
    """
    fns = module.__dict__.get("_spectral_norms", {})
    if name not in fns:
        raise ValueError(f"spectral_norm of {name!r} not found in {type(module).__name__}")
    fn = fns.pop(name)
    with no_grad():
        value = fn.compute_weight(module, do_power_iteration=False).data
    weight = module._parameters[name + "_orig"]
    weight.data[...] = value
    object.__delattr__(module, name)
    delattr(module, name + "_u")
    delattr(module, name + "_v")
    delattr(module, name + "_orig")
    setattr(module, name, weight)
    if not fns:
        object.__delattr__(module, "_spectral_norms")
        base = [c for c in type(module).__mro__[1:] if not issubclass(c, _SpectralNormed)][0]
        object.__setattr__(module, "__class__", base)
    return module
