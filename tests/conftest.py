"""Shared test configuration: markers that skip without their dependency."""
from __future__ import annotations

import os

import numpy as np
import pytest

try:
    import torch  # noqa: F401
    HAVE_TORCH = True
except ImportError:  # parity tests are skipped, not failed, without PyTorch
    HAVE_TORCH = False


def _have_gpu() -> bool:
    try:
        import tinynn.cuda
        return tinynn.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    skip_parity = pytest.mark.skip(reason="PyTorch is not installed (pip install torch==2.13.0)")
    skip_cuda = pytest.mark.skip(reason="no CUDA GPU")
    gpu = None
    for item in items:
        # get_closest_marker, not `in item.keywords`: keywords also hold directory names (tests/kernels/cuda).
        if item.get_closest_marker("parity") and not HAVE_TORCH:
            item.add_marker(skip_parity)
        if item.get_closest_marker("cuda"):
            gpu = _have_gpu() if gpu is None else gpu
            if not gpu:
                item.add_marker(skip_cuda)


@pytest.fixture(autouse=True)
def _seed_everything():
    """Each test starts from the same seeds, so failures reproduce."""
    import tinynn as tn
    tn.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
