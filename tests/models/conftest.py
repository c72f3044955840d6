"""Fixtures for the model tests."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn


@pytest.fixture
def fixed_images():
    rng = np.random.default_rng(0)
    def make(n=4, c=1, h=28, w=28, classes=10):
        x = tn.from_numpy(rng.standard_normal((n, c, h, w)).astype(np.float32))
        y = tn.from_numpy(rng.integers(0, classes, n).astype(np.int64))
        return x, y
    return make
