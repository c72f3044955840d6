"""cupy.lib.stride_tricks of the fake CuPy."""
import numpy as _np

from .. import _wrap, ndarray


def as_strided(x, shape=None, strides=None):
    if not isinstance(x, ndarray):
        raise TypeError("cupy.lib.stride_tricks.as_strided: expected a cupy array")
    return _wrap(_np.lib.stride_tricks.as_strided(x._a, shape=shape, strides=strides))
