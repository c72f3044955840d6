"""cupyx of the fake CuPy: scatter_add."""
import numpy as _np

from cupy import _lenient_unwrap, _strict_unwrap, ndarray


def scatter_add(a, slices, value):
    if not isinstance(a, ndarray):
        raise TypeError("cupyx.scatter_add: a must be a cupy array")
    _np.add.at(a._a, _lenient_unwrap(slices), _strict_unwrap(value, "cupyx.scatter_add"))
