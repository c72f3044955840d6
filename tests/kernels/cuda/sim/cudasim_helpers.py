"""Helpers shared by the simulator tests (imported by name: the tests are not a package)."""
from __future__ import annotations

import os

import numpy as np

IN_SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
SKIP_REASON = "needs NUMBA_ENABLE_CUDASIM=1 (tests/kernels/cuda/test_cudasim_subprocess.py runs it)"


def assert_close(actual, expected, dtype, what: str):
    """float64 must agree to rounding; float32 to a few ulps of the summed magnitudes."""
    tolerance = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 2e-5}[np.dtype(dtype)]
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=tolerance, atol=tolerance,
                               err_msg=what)
