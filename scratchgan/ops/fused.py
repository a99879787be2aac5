"""Fused ops: a chain of elementary ops computed as one graph node with one rule.

Each fused op gives the same values as the chain it replaces (the tests
compare them bit for bit) with fewer temporaries and graph nodes; they are
the hot paths of a GAN step:

* ``linear(x, W, b) = x @ W + b`` (every ``nn.Linear``);
* ``linear_relu(x, W, b) = relu(x @ W + b)`` (``nn.Sequential`` uses it for a
  ``Linear`` directly followed by a ``ReLU``);
* ``mean_softplus(a) = mean(softplus(a))`` (the whole of the non-saturating
  and minimax GAN losses).

Each rule is one body of differentiable ops, so double backprop goes
through it. The accelerations registered against them
(:mod:`scratchgan.autograd.fastpath`): a plain first-order ``backward`` of each
works on the raw arrays (``scratchgan/accel/first_order.py``), and on CuPy
``linear_relu``'s bias add and ReLU are one fused kernel
(``scratchgan/accel/cupy_kernels.py``). The op table (``tests/op_specs.py``)
checks each against the definition here; ``SCRATCHGAN_REFERENCE=1`` turns
them off.
"""

from __future__ import annotations

from .. import backend
from ..autograd.engine import binary_operands, make_result
from ..autograd.fastpath import fast_or
from ..autograd.tensor import Tensor
from .activation import relu, sigmoid, stable_softplus
from .arith import add, matmul, mul
from .reduce import sum as sum_
from .shape import swapaxes


# --------------------------------------------------------------------------- linear, linear_relu


def linear_backward(g, out, needs):
    # d(x @ w + b) = g @ w^T for x, x^T @ g for w, the sum of g over the batch for b
    x, w = out._parents[0], out._parents[1]
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
    return linear_backward(mul(g, out.data > 0), out, needs)


def linear_relu_forward(x, weight, bias):
    """``max(x @ weight + bias, 0)`` on arrays, the bias add and the ReLU in place on the product."""
    y = backend.matmul(x, weight)
    y += bias  # the matmul's fresh output: adding in place is safe
    return backend.array_module(y).maximum(y, 0, out=y)


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
    data = fast_or(linear_relu_forward)(x.data, weight.data, bias.data)
    return make_result(data, (x, weight, bias), linear_relu_backward)


# --------------------------------------------------------------------------- mean_softplus


def mean_softplus_backward(g, out, needs):
    # d/da_i of (1/N) sum_j softplus(a_j) = sigma(a_i) / N, in the order of mean(softplus(a))'s own rules
    a = out._parents[0]
    return (mul(mul(g, 1.0 / a.data.size), sigmoid(a)),)


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
    values = stable_softplus(xp, x)  # softplus's own formula, so the values match mean(softplus(a)) bit for bit
    total = values.sum(axis=tuple(range(x.ndim)))
    data = total * x.dtype.type(1.0 / x.size)  # as mean's mul by 1/N, in the input's dtype
    return make_result(data, (a,), mean_softplus_backward)


