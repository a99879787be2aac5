"""The reverse-mode engine, in two modules: recording the graph, and walking it backwards.

* :mod:`scratchgan.autograd.graph`: the grad modes (``no_grad``,
  ``detect_anomaly``, ...), :func:`make_result` (how an op's output records
  its parents and its backward rule) and the conversion of an op's operands;
* :mod:`scratchgan.autograd.walk`: :func:`run_backward`, the chain rule over
  the recorded graph, and :func:`grad`.

This module gathers both under the one name the ops import
(``from ..autograd.engine import make_result``).
"""

from __future__ import annotations

from .graph import (GradGraphParents, _check_finite, _mode, _Mode, _ModeSwitch, _watch, as_operand, binary_operands,
                    detect_anomaly, enable_grad, is_grad_enabled, make_result, no_grad, op_name, set_grad_enabled,
                    wrap_array)
from .walk import Freed, _free, _prune, _root_gradient, _topological_order, _unbroadcast, grad, run_backward

__all__ = ["Freed", "GradGraphParents", "_Mode", "_ModeSwitch", "_check_finite", "_free", "_mode", "_prune",
           "_root_gradient", "_topological_order", "_unbroadcast", "_watch", "as_operand", "binary_operands",
           "detect_anomaly", "enable_grad", "grad", "is_grad_enabled", "make_result", "no_grad", "op_name",
           "run_backward", "set_grad_enabled", "wrap_array"]
