"""The kernel registry: which implementation runs a hot op on each device.

Hot ops (convolution, pooling, attention, ...) have several implementations of
the same function on raw arrays: a plain NumPy ``reference``, a fast ``numba``
one on the cpu, ``numba_cuda`` / ``cupy`` ones on cuda. Kernel modules register
them here; ops ask for the one to run with ``get(op, device)``.

    tn.backend.kernels.available("conv2d_forward")        # ['reference', 'numba']
    with tn.backend.kernels.use("conv2d_forward", "reference"):
        ...                                                # run the reference
"""
from __future__ import annotations

import contextlib
import importlib
import threading
from typing import Callable

# (op, device type) -> {name: (priority, fn)}
_registry: dict[tuple[str, str], dict[str, tuple[int, Callable]]] = {}
_overrides = threading.local()
_loaded: set[str] = set()

# The modules whose import registers each device's kernels.
_KERNEL_PACKAGES = {"cpu": "tinynn.kernels.cpu", "cuda": "tinynn.kernels.cuda"}


def register(op: str, name: str, device: str = "cpu", priority: int = 0):
    """Decorator: register ``fn`` as implementation ``name`` of ``op`` on ``device``.

    The implementation with the highest priority is the default.
    """

    def decorator(fn: Callable) -> Callable:
        _registry.setdefault((op, device), {})[name] = (priority, fn)
        return fn

    return decorator


def _device_type(device) -> str:
    return getattr(device, "type", None) or str(device).split(":")[0]


def _ensure_loaded(device_type: str) -> None:
    if device_type not in _loaded:
        _loaded.add(device_type)
        importlib.import_module(_KERNEL_PACKAGES[device_type])


def available(op: str, device="cpu") -> list[str]:
    """Names of the implementations of ``op`` on ``device``, default first."""
    dtype = _device_type(device)
    _ensure_loaded(dtype)
    impls = _registry.get((op, dtype), {})
    return [name for name, _ in sorted(impls.items(), key=lambda kv: -kv[1][0])]


def get(op: str, device="cpu") -> Callable:
    """The implementation of ``op`` to run on ``device``: the one selected by
    ``use()`` if any, otherwise the highest-priority one."""
    dtype = _device_type(device)
    _ensure_loaded(dtype)
    impls = _registry.get((op, dtype))
    if not impls:
        raise NotImplementedError(f"no kernel registered for op {op!r} on {dtype}")
    chosen = getattr(_overrides, "selection", {}).get((op, dtype))
    if chosen is not None:
        return impls[chosen][1]
    return max(impls.values(), key=lambda pf: pf[0])[1]


@contextlib.contextmanager
def use(op: str, name: str, device="cpu"):
    """Within the block, run implementation ``name`` of ``op`` on ``device``."""
    dtype = _device_type(device)
    names = available(op, dtype)
    if name not in names:
        raise ValueError(f"kernels.use: op {op!r} on {dtype} has no implementation {name!r} (has {names})")
    selection = getattr(_overrides, "selection", None)
    if selection is None:
        selection = _overrides.selection = {}
    previous = selection.get((op, dtype))
    selection[(op, dtype)] = name
    try:
        yield
    finally:
        if previous is None:
            selection.pop((op, dtype), None)
        else:
            selection[(op, dtype)] = previous
