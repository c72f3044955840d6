"""How the CUDA kernels get their arrays and are launched, on a GPU and in the simulator.

The kernels in this package run in two worlds:

* on a GPU, every array is a CuPy array: outputs are allocated with CuPy (so they
  come from CuPy's memory pool), GEMMs go to cuBLAS through ``cupy.matmul``, and
  Numba kernels are launched on CuPy's current stream;
* under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, used by the tests on
  machines without a GPU), every array is a NumPy array, the "GEMMs" are NumPy
  matmuls and the kernels run as Python threads.

Kernel wrappers never branch on the world themselves: they ask ``array_module(x)``
for ``numpy``/``cupy`` and launch with ``launch`` / ``launch_elementwise``.
Nothing here compiles or touches the driver at import time.
"""
from __future__ import annotations

import math
import os

import numpy as np

# Threads per block for one-thread-per-element kernels on a GPU.
GPU_THREADS_PER_BLOCK = 256
# Grid-stride kernels need no more blocks than this to fill any current GPU.
GPU_MAX_BLOCKS = 65535
# The simulator runs every thread as a Python thread (milliseconds each), so the
# grid-stride kernels are launched with a handful of threads that loop instead.
SIMULATOR_THREADS = 8


def is_simulator() -> bool:
    """True when Numba's CUDA simulator is on (it must be set before numba is imported)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


def numba_cuda():
    """``numba.cuda``, imported on first use."""
    from numba import cuda

    return cuda


def array_module(x):
    """``cupy`` for CuPy arrays; ``numpy`` for NumPy arrays, which are accepted only in the simulator."""
    if type(x).__module__.startswith("cupy"):
        import cupy

        return cupy
    if isinstance(x, np.ndarray):
        if not is_simulator():
            raise TypeError(
                "cuda kernels take CuPy arrays; NumPy arrays are accepted only under "
                "Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
            )
        return np
    raise TypeError(f"cuda kernels take CuPy arrays, got {type(x).__name__}")


def _kernel_argument(arg):
    """Under the simulator, read-only NumPy arrays (broadcast views) are copied to a
    simulated device array: the simulator would otherwise try to copy them back."""
    if is_simulator() and isinstance(arg, np.ndarray) and not arg.flags.writeable:
        return numba_cuda().to_device(arg)
    return arg


_external_streams: dict = {}


def _current_stream(cupy, device_id: int):
    """CuPy's current stream on ``device_id``, wrapped for Numba (so kernels are ordered with CuPy's work)."""
    pointer = cupy.cuda.get_current_stream().ptr
    stream = _external_streams.get((device_id, pointer))
    if stream is None:
        stream = _external_streams[(device_id, pointer)] = numba_cuda().external_stream(pointer)
    return stream


def launch(kernel, blocks, threads, *args) -> None:
    """Launch ``kernel[blocks, threads](*args)`` on CuPy's current device and stream (or in the simulator)."""
    args = tuple(_kernel_argument(a) for a in args)
    if is_simulator():
        kernel[blocks, threads](*args)
        return
    import cupy

    device_id = cupy.cuda.Device().id
    with numba_cuda().gpus[device_id]:  # Numba's current device follows CuPy's (multi-GPU)
        kernel[blocks, threads, _current_stream(cupy, device_id)](*args)


def launch_elementwise(kernel, count: int, *args) -> None:
    """Launch a grid-stride kernel that handles ``count`` independent items.

    The kernel loops ``for i in range(cuda.grid(1), count, cuda.gridsize(1))``, so
    any grid covers all items; the grid is sized for the GPU, or kept tiny in the
    simulator.
    """
    if count <= 0:
        return
    if is_simulator():
        blocks, threads = 1, min(count, SIMULATOR_THREADS)
    else:
        threads = GPU_THREADS_PER_BLOCK
        blocks = min(math.ceil(count / threads), GPU_MAX_BLOCKS)
    launch(kernel, blocks, threads, *args)
