"""Process-wide settings that only an application may choose: the ``scratchgan`` command calls them.

A library must not change how the whole process behaves when it is
imported, so ``import scratchgan`` changes nothing here. The ``scratchgan``
command owns its process and calls :func:`keep_heap_warm` before it trains;
a script that runs its own training loop may call it too.
"""

from __future__ import annotations

import ctypes
import sys

#: glibc's ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: 32 MB is glibc's largest mmap threshold on 64-bit systems; 1 GB of free heap top is kept before trimming.
MMAP_THRESHOLD, TRIM_THRESHOLD = 32 << 20, 1 << 30


def keep_heap_warm() -> bool:
    """Stop glibc from returning large freed blocks to the kernel between training steps.

    By default glibc serves blocks above a *dynamic* threshold with ``mmap``
    and gives them back with ``munmap``, and trims the top of the heap when
    more than twice that threshold is free. A training step allocates and
    frees the same large arrays (activations, im2col columns, gradients) every
    time, so each step can pay thousands of page faults to get the memory
    back (measured: 10,000-35,000 faults per DCGAN step at B = 64-256,
    30-390 ms of system time, against none with the thresholds fixed; the
    library's own array cache, :mod:`scratchgan.accel.memory`, now avoids most of
    them for the arrays of its hot ops). Fixing
    the mmap threshold at 32 MB and the trim threshold at 1 GB keeps the
    freed memory in the process for the next step; the cost is that the
    process's resident memory does not shrink after a peak (at most the peak
    it already reached).

    Returns
    -------
    bool
        True where the settings were applied (Linux with glibc), False
        elsewhere (nothing is changed).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: no mallopt
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
