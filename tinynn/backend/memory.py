"""Keep freed memory for reuse instead of handing it back to the OS after every op.

NumPy allocates every array with ``malloc``. For blocks above a threshold (128 KiB
to start with) glibc maps fresh pages from the OS and unmaps them again on ``free``,
so every large temporary of every training step costs page faults and zeroing when
it is first written. A training step allocates the same sizes over and over, so
keeping those pages for the next step (what PyTorch's caching allocators do) is much
faster: about a third of a LeNet-5 training step on 2 cores was spent this way.

``tune_malloc()`` asks glibc to serve blocks up to 256 MiB from its heap and to give
memory back only when 1 GiB lies free at its top. It runs when tinynn is imported,
on glibc systems only; set ``TINYNN_MALLOC_TUNING=0`` to leave malloc alone.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024


def tune_malloc() -> bool:
    """Apply the thresholds above; True if glibc accepted them."""
    if os.environ.get("TINYNN_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
