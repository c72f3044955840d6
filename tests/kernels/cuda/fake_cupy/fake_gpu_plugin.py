"""pytest plugin (``-p fake_gpu_plugin``, with this folder on PYTHONPATH): a fake GPU.

With the fake ``cupy`` of this folder importable, tinynn believes a GPU is there and
runs its "cuda" code paths on NumPy-backed fake device arrays. The Numba CUDA
kernels cannot run on them (no GPU, not the simulator): ops that have a ``cupy``
implementation (made of CuPy calls only) run it on the fake arrays, and the others
are bridged to the cpu reference kernel: arrays are copied to the host, computed
there, and copied back. What remains on the "GPU" is everything else: the tensor, the
autograd engine, the ops, layers, optimizers and checkpoints, which is what this
run checks for NumPy-only code.
"""
from __future__ import annotations

import cupy
import numpy as np


def _to_host(value):
    if isinstance(value, cupy.ndarray):
        return value.get()
    if isinstance(value, (tuple, list)):
        return type(value)(_to_host(v) for v in value)
    return value


def _to_device(value):
    if isinstance(value, np.ndarray):
        return cupy.asarray(value)
    if isinstance(value, tuple):
        return tuple(_to_device(v) for v in value)
    return value


def _bridge(cpu_kernel):
    def run_on_host(*args):
        return _to_device(cpu_kernel(*(_to_host(a) for a in args)))
    return run_on_host


def pytest_configure(config):
    from tinynn.backend import kernels

    kernels.available("conv2d_forward", "cuda")  # import both kernel packages
    kernels.available("conv2d_forward", "cpu")
    for (op, device), implementations in list(kernels._registry.items()):
        if device != "cpu" or "reference" not in implementations or op.startswith("optim_"):
            continue
        on_cuda = kernels._registry.get((op, "cuda"), {})
        if "cupy" in on_cuda:
            kernels.register(op, "fake_gpu", device="cuda", priority=1000)(on_cuda["cupy"][1])
        else:
            kernels.register(op, "fake_gpu", device="cuda", priority=1000)(_bridge(implementations["reference"][1]))
