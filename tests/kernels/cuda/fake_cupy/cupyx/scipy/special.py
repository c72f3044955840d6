"""cupyx.scipy.special of the fake CuPy: erf."""
import math

import numpy as _np

from cupy import _wrap, ndarray

_erf = _np.vectorize(math.erf, otypes=[_np.float64])


def erf(x):
    if not isinstance(x, ndarray):
        raise TypeError("cupyx.scipy.special.erf: expected a cupy array")
    return _wrap(_erf(x._a).astype(x.dtype))
