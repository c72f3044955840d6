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
from .tensor import Tensor
from . import autograd
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .creation import (arange, as_tensor, bernoulli, empty, empty_like, eye, from_numpy, full, full_like, linspace,
                       multinomial, ones, ones_like, rand, rand_like, randint, randint_like, randn, randn_like,
                       randperm, tensor, zeros, zeros_like)
from .ops import *  # noqa: F401,F403  (tn.add, tn.matmul, tn.cat, ...)
from .ops import abs, all, any, max, min, pow, round, sum  # noqa: F401  (shadow the builtins on purpose)

is_tensor = lambda obj: isinstance(obj, Tensor)  # noqa: E731

__version__ = "0.1.0"

from .serialization import load, save  # noqa: E402
from . import cuda, datasets, nn, optim, transforms, utils  # noqa: E402,F401
