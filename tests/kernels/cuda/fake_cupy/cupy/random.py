"""cupy.random of the fake CuPy: a RandomState returning fake device arrays."""
from __future__ import annotations

import numpy as _np


class RandomState:
    def __init__(self, seed=None):
        self._state = _np.random.RandomState(None if seed is None else seed % (2**32))

    def __getattr__(self, name):
        from . import _wrap
        method = getattr(self._state, name)

        def call(*args, **kwargs):
            return _wrap(_np.asarray(method(*args, **kwargs)))
        return call
