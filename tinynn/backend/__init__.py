"""The backend layer: devices and their array modules, dtypes, RNG, kernel registry."""
from . import kernels
from .memory import tune_malloc
from .device import array_module_for, as_device, device, device_of_array, get_array_module
from .dtypes import get_default_dtype, set_default_dtype
from .random import Generator, default_generator, manual_seed

tune_malloc()  # reuse freed memory across training steps (see backend/memory.py)

__all__ = [
    "kernels", "device", "as_device", "array_module_for", "device_of_array", "get_array_module",
    "get_default_dtype", "set_default_dtype", "Generator", "default_generator", "manual_seed",
]
