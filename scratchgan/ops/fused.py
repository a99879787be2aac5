"""Fused ops: a chain of elementary ops computed as one graph node with one rule.

Each fused op gives the same values as the chain it replaces (the tests
compare them bit for bit) with fewer temporaries and graph nodes; they are
the hot paths of a GAN step:

* ``linear(x, W, b) = x @ W + b`` (every ``nn.Linear``);
* ``linear_relu(x, W, b) = relu(x @ W + b)`` (``nn.Sequential`` uses it for a
  ``Linear`` directly followed by a ``ReLU``);
* ``mean_softplus(a) = mean(softplus(a))`` (the whole of the non-saturating
  and minimax GAN losses).

When nothing is recorded (a plain first-order ``backward``), the rules work
on the raw arrays; with ``create_graph=True`` they are written with
differentiable ops, so double backprop goes through them. The op table
(``tests/op_specs.py``) checks the two paths against each other for every op.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..accel import kernels
from ..autograd.engine import binary_operands, is_grad_enabled, make_result, wrap_array
from ..autograd.tensor import Tensor
from .activation import _stable_sigmoid, _stable_softplus, relu, sigmoid
from .arith import add, matmul, mul
from .reduce import sum as sum_
from .shape import swapaxes


# --------------------------------------------------------------------------- linear, linear_relu


def _linear_grads_of_arrays(gd, x, w, needs):
    """First-order gradients of ``x @ w (+ b)`` for the upstream array ``gd``, on the arrays.

    Nothing is recorded, so the op plumbing is skipped: the same products
    as the differentiable path of :func:`linear_backward`.
    """
    grads = (wrap_array(backend.matmul(gd, w.T)) if needs[0] else None,
             wrap_array(backend.matmul(x.T, gd)) if needs[1] else None)
    if len(needs) == 3:
        grads += ((wrap_array(gd.sum(axis=0)) if needs[2] else None),)
    return grads


def linear_backward(g, out, needs):
    x, w = out._parents[0], out._parents[1]
    if not is_grad_enabled() and x.data.ndim == 2:
        # create_graph=True takes the differentiable path below, so double backprop is unchanged
        return _linear_grads_of_arrays(g.data, x.data, w.data, needs)
    gx = matmul(g, swapaxes(w, -1, -2)) if needs[0] else None
    gw = matmul(swapaxes(x, -1, -2), g) if needs[1] else None
    grads = (gx, gw)
    if len(needs) == 3:
        grads += ((sum_(g, axis=0) if needs[2] else None),)
    return grads


def linear(x, weight, bias=None) -> Tensor:
    """Affine map ``x @ weight + bias`` for a batch ``x`` of shape (N, in), as one op.

    Same values as ``matmul`` then ``add``, with one rule instead of two
    (the bias gradient is ``g.sum(axis=0)`` directly) and one temporary less:
    the fused form is the hot path of every MLP. ``weight`` is (in, out).
    """
    x, weight = binary_operands(x, weight, "linear")
    if x.ndim != 2 or weight.ndim != 2:
        out = matmul(x, weight)
        return out if bias is None else add(out, bias)
    if x.shape[1] != weight.shape[0]:
        raise ValueError(f"linear: input of shape {x.shape} does not fit a weight of shape {weight.shape} "
                         f"({x.shape[1]} != {weight.shape[0]})")
    data = backend.matmul(x.data, weight.data)
    if bias is None:
        return make_result(data, (x, weight), linear_backward)
    _, bias = binary_operands(x, bias, "linear")
    if bias.shape != (weight.shape[1],):
        raise ValueError(f"linear: bias has shape {bias.shape}, expected ({weight.shape[1]},)")
    data += bias.data  # the matmul's fresh output: adding in place is safe
    return make_result(data, (x, weight, bias), linear_backward)


def linear_relu_backward(g, out, needs):
    # relu(a) > 0 exactly where a > 0, so the op's output gives the mask: the pre-activation is not kept
    y = out.data
    if is_grad_enabled():
        return linear_backward(mul(g, y > 0), out, needs)
    # first order: on the arrays (one fused kernel for the masked gradient on the GPU)
    g_pre = g.data * (y > 0) if y.__class__ is np.ndarray else kernels.relu_grad(g.data, y)
    return _linear_grads_of_arrays(g_pre, out._parents[0].data, out._parents[1].data, needs)


def linear_relu(x, weight, bias) -> Tensor:
    """``relu(x @ weight + bias)`` for a batch ``x`` of shape (N, in), as one op.

    The same values and gradients as :func:`linear` followed by ``relu``
    (``nn.Sequential`` uses it for a ``Linear`` directly followed by a
    ``ReLU``). The pre-activation is the op's own temporary, so the ReLU is
    applied to it in place (one array and one graph node less per layer),
    and the rule takes the mask from the output. On CuPy the bias add and
    the ReLU are one kernel.
    """
    x, weight = binary_operands(x, weight, "linear_relu")
    _, bias = binary_operands(x, bias, "linear_relu")
    if x.ndim != 2 or weight.ndim != 2:
        return relu(linear(x, weight, bias))
    if x.shape[1] != weight.shape[0]:
        raise ValueError(f"linear_relu: input of shape {x.shape} does not fit a weight of shape {weight.shape} "
                         f"({x.shape[1]} != {weight.shape[0]})")
    if bias.shape != (weight.shape[1],):
        raise ValueError(f"linear_relu: bias has shape {bias.shape}, expected ({weight.shape[1]},)")
    data = backend.matmul(x.data, weight.data)
    if backend.array_module(data) is not np:
        kernels.bias_relu_(data, bias.data)
    else:
        data += bias.data
        np.maximum(data, 0, out=data)
    return make_result(data, (x, weight, bias), linear_relu_backward)



# --------------------------------------------------------------------------- mean_softplus


def mean_softplus_backward(g, out, needs):
    # d/da_i of (1/N) sum_j softplus(a_j) = sigma(a_i) / N, in the order of mean(softplus(a))'s own rules
    a = out._parents[0]
    scale = 1.0 / a.data.size
    if not is_grad_enabled():  # first-order: the same products on the arrays
        xp = backend.array_module(a.data)
        g_scaled = g.data * g.data.dtype.type(scale)  # a scalar argument: no host-to-device copy on CuPy
        return (wrap_array(g_scaled * _stable_sigmoid(xp, a.data)),)
    return (mul(mul(g, scale), sigmoid(a)),)


def mean_softplus(a: Tensor) -> Tensor:
    r"""``mean(softplus(a))`` over every element, as one op.

    .. math::

        L = \frac1N \sum_i \operatorname{softplus}(a_i), \qquad
        \frac{\partial L}{\partial a_i} = \frac{\sigma(a_i)}{N}.

    The same values and gradients, bit for bit, as ``mean(softplus(a))``
    (the stable softplus, then the sum times ``1/N``) with one graph node
    instead of three: it is the whole of the non-saturating and minimax GAN
    losses (:mod:`scratchgan.gan.losses`), so it runs three times per training
    step. Differentiable again (the rule uses ``sigmoid``).

    Raises
    ------
    TypeError
        For an integer or boolean ``a``.
    ValueError
        For an empty ``a`` (a mean over no elements is undefined).
    """
    x = a.data
    if x.dtype.kind != "f":
        raise TypeError(f"mean_softplus: expected a floating tensor (logits), got dtype {x.dtype}; "
                        "convert it with .float() or .double()")
    if x.size == 0:
        raise ValueError(f"mean_softplus: the input is empty (shape {a.shape}); a mean over no elements is undefined")
    xp = backend.array_module(x)
    values = _stable_softplus(xp, x)  # softplus's own formula, so the values match mean(softplus(a)) bit for bit
    total = values.sum(axis=tuple(range(x.ndim)))
    data = total * x.dtype.type(1.0 / x.size)  # as mean's mul by 1/N, in the input's dtype
    return make_result(data, (a,), mean_softplus_backward)


