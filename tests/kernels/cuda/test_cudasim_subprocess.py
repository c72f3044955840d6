"""Runs the CUDA-simulator tests (tests/kernels/cuda/sim) in their own process.

``NUMBA_ENABLE_CUDASIM=1`` must be set before Numba is imported, so those tests
cannot share this process; they skip themselves here and run in the child. To
run them directly: ``NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim tests/kernels/cuda/sim``.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

SIM_TESTS = Path(__file__).parent / "sim"
REPO_ROOT = Path(__file__).parents[3]


@pytest.mark.cudasim
def test_cuda_kernels_pass_under_the_simulator():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        pytest.skip("this process is the simulator: the sim tests run here directly")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cudasim", "-p", "no:cacheprovider", str(SIM_TESTS)]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    report = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, f"simulator tests failed:\n{report}"
    assert " passed" in result.stdout and " failed" not in result.stdout, report
