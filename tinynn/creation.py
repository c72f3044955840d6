"""Creating tensors: ``tensor``, ``zeros``, ``randn``, ... (PyTorch's names and arguments)."""
from __future__ import annotations

import numpy as np

from .backend.device import CPU, array_module_for, as_device, device_of_array
from .backend.dtypes import as_dtype, get_default_dtype, infer_dtype
from .backend.random import default_generator
from .ops._common import shape_arg
from .tensor import Tensor


def _to_array(data, dtype, device):
    """Copy ``data`` (nested lists, scalars, NumPy/CuPy arrays, tensors) into a new array
    of ``dtype`` on ``device``."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is None:
        dtype = infer_dtype(data)
    if device.type == "cpu":
        if hasattr(data, "get") and not isinstance(data, np.ndarray):  # a CuPy array
            data = data.get()
        return np.array(data, dtype=dtype)
    xp = array_module_for(device)
    with xp.cuda.Device(device.index or 0):
        return xp.array(data, dtype=dtype)


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data``."""
    dev = as_device(device) if device is not None else (
        data.device if isinstance(data, Tensor) else device_of_array(data))
    t = Tensor._make(_to_array(data, as_dtype(dtype), dev), dev)
    return t.requires_grad_(requires_grad) if requires_grad else t


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like ``tensor`` but shares memory when no copy is needed."""
    if isinstance(data, Tensor):
        return data.to(device or data.device, dtype or data.dtype) if (device or dtype) else data
    dev = as_device(device) if device is not None else device_of_array(data)
    if isinstance(data, np.ndarray) and dev.type == "cpu" and (dtype is None or as_dtype(dtype) == data.dtype):
        return Tensor._make(data, dev)
    return tensor(data, dtype=dtype, device=dev)


def from_numpy(array: np.ndarray) -> Tensor:
    """A cpu tensor sharing memory with ``array``."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray, got {type(array).__name__}")
    return Tensor._make(array, CPU)


def _filled(fill, size, dtype, device, requires_grad, default_dtype=None):
    dev = as_device(device)
    dtype = as_dtype(dtype) or default_dtype or get_default_dtype()
    xp = array_module_for(dev)
    t = Tensor._make(fill(xp, shape_arg(size), dtype), dev)
    return t.requires_grad_(True) if requires_grad else t


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _filled(lambda xp, s, d: xp.zeros(s, dtype=d), size, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _filled(lambda xp, s, d: xp.ones(s, dtype=d), size, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _filled(lambda xp, s, d: xp.empty(s, dtype=d), size, dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if dtype is None:
        dtype = infer_dtype(fill_value)
    return _filled(lambda xp, s, d: xp.full(s, fill_value, dtype=d), (size,) if isinstance(size, int) else size,
                   dtype, device, requires_grad)


def _like(fn, t, dtype, device, requires_grad, *args):
    return fn(t.shape, *args, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return _like(zeros, t, dtype, device, requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    return _like(ones, t, dtype, device, requires_grad)


def empty_like(t, dtype=None, device=None, requires_grad=False):
    return _like(empty, t, dtype, device, requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_int = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if is_int else get_default_dtype()
    dev = as_device(device)
    t = Tensor._make(array_module_for(dev).arange(start, end, step).astype(as_dtype(dtype)), dev)
    return t.requires_grad_(True) if requires_grad else t


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dev = as_device(device)
    data = array_module_for(dev).linspace(start, end, steps).astype(as_dtype(dtype) or get_default_dtype())
    t = Tensor._make(data, dev)
    return t.requires_grad_(True) if requires_grad else t


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dev = as_device(device)
    t = Tensor._make(array_module_for(dev).eye(n, m, dtype=as_dtype(dtype) or get_default_dtype()), dev)
    return t.requires_grad_(True) if requires_grad else t


def _random(sample, size, dtype, device, requires_grad, generator):
    dev = as_device(device)
    gen = generator or default_generator(dev)
    dtype = as_dtype(dtype) or get_default_dtype()
    t = Tensor._make(sample(gen, shape_arg(size), dtype), dev)
    return t.requires_grad_(True) if requires_grad else t


def rand(*size, dtype=None, device=None, requires_grad: bool = False, generator=None) -> Tensor:
    """Uniform samples in [0, 1)."""
    return _random(lambda g, s, d: g.uniform(s, d), size, dtype, device, requires_grad, generator)


def randn(*size, dtype=None, device=None, requires_grad: bool = False, generator=None) -> Tensor:
    """Standard normal samples."""
    return _random(lambda g, s, d: g.normal(s, d), size, dtype, device, requires_grad, generator)


def randint(low, high=None, size=(), dtype=None, device=None, generator=None) -> Tensor:
    """Integers in [low, high): ``randint(high, size)`` or ``randint(low, high, size)``, as PyTorch."""
    if isinstance(high, (tuple, list)):  # randint(high, size)
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    dev = as_device(device)
    gen = generator or default_generator(dev)
    dtype = as_dtype(dtype) or np.dtype(np.int64)
    values = gen.integers(low, high, tuple(size), dtype=dtype if dtype.kind in "iu" else np.int64)
    return Tensor._make(values if values.dtype == dtype else values.astype(dtype), dev)


def randperm(n: int, dtype=None, device=None, generator=None) -> Tensor:
    dev = as_device(device)
    gen = generator or default_generator(dev)
    return Tensor._make(gen.permutation(n).astype(as_dtype(dtype) or np.int64), dev)


def rand_like(t, dtype=None, device=None, requires_grad=False):
    return rand(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def randn_like(t, dtype=None, device=None, requires_grad=False):
    return randn(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def randint_like(t, low, high=None, dtype=None, device=None):
    return randint(low, high, t.shape, dtype=dtype or t.dtype, device=device or t.device)


def bernoulli(p: Tensor, generator=None) -> Tensor:
    gen = generator or default_generator(p.device)
    return Tensor._make((gen.uniform(p.shape, p.dtype) < p.data).astype(p.dtype), p.device)


def multinomial(probs: Tensor, num_samples: int, replacement: bool = False, generator=None) -> Tensor:
    """Sample category indices from each row of (unnormalised) ``probs``."""
    gen = generator or default_generator(probs.device)
    p = probs.numpy().astype(np.float64)
    rows = p.reshape(-1, p.shape[-1])
    rows = rows / rows.sum(axis=1, keepdims=True)
    draws = num_samples if replacement else rows.shape[1]
    u = gen.uniform((rows.shape[0], draws), np.float64)
    u = u.get() if hasattr(u, "get") else u  # uniforms from a cuda generator come to the host
    if replacement:  # inverse CDF: the first category whose cumulative probability exceeds u
        cdf = np.cumsum(rows, axis=1)
        out = (cdf[:, None, :] <= u[:, :, None] * cdf[:, -1:, None]).sum(axis=-1)
    else:  # Gumbel top-k: sampling without replacement
        keys = np.log(np.maximum(rows, 1e-300)) - np.log(-np.log(u))
        out = np.argsort(-keys, axis=1)[:, :num_samples]
    out = np.minimum(out, p.shape[-1] - 1)
    return tensor(out.reshape(p.shape[:-1] + (num_samples,)), device=probs.device)
