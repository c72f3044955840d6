"""``tn.cuda``: is there a GPU, how many, wait for it, seed it (PyTorch's ``torch.cuda``).

CuPy is optional: without it (or without a GPU and driver) ``is_available()`` is
False and ``device_count()`` is 0, and neither ever raises; seeding is then a
no-op, as in PyTorch. Install with ``pip install 'tinynn[cuda]'``.
"""
from __future__ import annotations

from .backend.device import cupy_module, device
from .backend.random import default_generator

__all__ = ["is_available", "device_count", "current_device", "synchronize", "manual_seed", "manual_seed_all",
           "empty_cache"]


def _cupy_or_none():
    try:
        import cupy
    except Exception:  # not installed, or its CUDA libraries are missing
        return None
    return cupy


def device_count() -> int:
    """Number of visible CUDA GPUs (0 without CuPy or a driver)."""
    cupy = _cupy_or_none()
    if cupy is None:
        return 0
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no driver, no device
        return 0


def is_available() -> bool:
    """True when CuPy is installed and a CUDA GPU can be used; never raises."""
    return device_count() > 0


def _require_gpu(what: str):
    if not is_available():
        raise RuntimeError(f"tn.cuda.{what}: no CUDA GPU is available "
                           "(needs a GPU, its driver and CuPy: pip install 'tinynn[cuda]')")
    return cupy_module()


def current_device() -> int:
    """Index of CuPy's current GPU."""
    return int(_require_gpu("current_device").cuda.runtime.getDevice())


def synchronize(device_index: "int | str | device | None" = None) -> None:
    """Wait until every kernel queued on the GPU (all streams) has finished."""
    cupy = _require_gpu("synchronize")
    with cupy.cuda.Device(_index(device_index)):
        cupy.cuda.Device().synchronize()


def manual_seed(seed: int) -> None:
    """Seed the default generator of the current GPU; silently ignored without a GPU."""
    if is_available():
        default_generator(device("cuda", current_device())).manual_seed(int(seed))


def manual_seed_all(seed: int) -> None:
    """Seed the default generators of every GPU; silently ignored without a GPU."""
    for index in range(device_count()):
        default_generator(device("cuda", index)).manual_seed(int(seed))


def empty_cache() -> None:
    """Return the unused blocks of CuPy's memory pools to the driver."""
    cupy = _cupy_or_none()
    if cupy is not None and is_available():
        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()


def _index(device_index) -> int:
    if device_index is None:
        return current_device()
    if isinstance(device_index, int):
        return device_index
    return device(device_index).index or 0
