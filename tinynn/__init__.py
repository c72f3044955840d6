"""tinynn: a deep-learning engine written from scratch on NumPy, CuPy and Numba.

    import tinynn as tn
    x = tn.randn(3, requires_grad=True)
    (x * x).sum().backward()      # x.grad == 2 * x
"""
from . import backend
from .backend.device import device
from .backend.dtypes import (bool_ as bool, float16, float32, float64, get_default_dtype, half, double,
                             int32, int64, long, set_default_dtype, uint8)
from .backend.random import Generator, manual_seed, initial_seed, get_rng_state, set_rng_state

__version__ = "0.1.0"
