"""Devices and the array module behind each one.

A tensor's device decides which array library holds its data: NumPy on the cpu,
CuPy on cuda. CuPy is optional, so it is imported only when a cuda device is used.
"""
from __future__ import annotations

import numpy as np


class device:
    """A device a tensor lives on: ``device('cpu')``, ``device('cuda')``, ``device('cuda:1')``."""

    __slots__ = ("type", "index")

    def __init__(self, type: "str | device", index: int | None = None):
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        if not isinstance(type, str):
            raise TypeError(f"device: expected a string like 'cpu' or 'cuda:0', got {type!r}")
        if ":" in type:
            type, _, idx = type.partition(":")
            if not idx.isdigit():
                raise ValueError(f"device: invalid device string {type + ':' + idx!r}")
            index = int(idx)
        if type not in ("cpu", "cuda"):
            raise ValueError(f"device: unknown device type {type!r} (expected 'cpu' or 'cuda')")
        if type == "cuda" and index is None:
            index = 0
        self.type = type
        self.index = index

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"


CPU = device("cpu")


def as_device(d: "str | device | None") -> device:
    """Turn 'cpu' / 'cuda:0' / device / None (= cpu) into a device."""
    if d is None:
        return CPU
    return d if isinstance(d, device) else device(d)


def cupy_module():
    """Import CuPy, or say in one line what to install."""
    try:
        import cupy
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "cuda tensors need CuPy: pip install 'tinynn[cuda]' (cupy-cuda13x or cupy-cuda12x)"
        ) from e
    return cupy


def array_module_for(dev: device):
    """The array module (numpy or cupy) that holds data for ``dev``."""
    if dev.type == "cpu":
        return np
    return cupy_module()


def device_of_array(array) -> device:
    """The device an array lives on: cpu for NumPy arrays, cuda:N for CuPy arrays."""
    if isinstance(array, np.ndarray) or np.isscalar(array):
        return CPU
    dev = getattr(array, "device", None)
    if dev is not None and type(array).__module__.startswith("cupy"):
        return device("cuda", getattr(dev, "id", 0))
    return CPU


def get_array_module(x):
    """NumPy or CuPy: the module for a Tensor, a NumPy array or a CuPy array."""
    dev = getattr(x, "_device", None)  # a tinynn Tensor
    if dev is not None:
        return array_module_for(dev)
    if type(x).__module__.startswith("cupy"):
        return cupy_module()
    return np
