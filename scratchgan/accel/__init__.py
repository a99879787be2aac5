"""Accelerations (layer 3): faster ways to compute what the ops in :mod:`scratchgan.ops` define.

Nothing here changes a result's meaning. Each module registers its
accelerations with :mod:`scratchgan.autograd.fastpath` against the definition
they replace (``register_forward`` / ``register_backward``), and the op table
(``tests/op_specs.py``) checks each against that definition. With
``SCRATCHGAN_REFERENCE=1`` (or ``scratchgan.reference_mode()``) none of them
runs. Importing this package registers them all (``import scratchgan`` does).
"""

from . import array_cache, cupy_kernels, first_order  # the ops except the convolutions (issue 24)
from . import conv  # noqa: F401 - the convolutions: chunked column products, transposed conv by phases
