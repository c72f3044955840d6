"""Fixtures of the simulator tests: the CPU reference kernels they compare against."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def cpu_reference():
    """``cpu_reference(op)``: the plain-NumPy ``reference`` kernel of ``op`` on the cpu."""
    from tinynn.backend import kernels

    def get(op: str):
        if "reference" not in kernels.available(op, "cpu"):
            pytest.skip(f"no cpu reference kernel registered for {op} yet")
        with kernels.use(op, "reference", device="cpu"):
            return kernels.get(op, "cpu")

    return get


@pytest.fixture
def rng():
    return np.random.default_rng(1234)

