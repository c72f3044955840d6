"""The cpu kernels are registered under the expected names, fast one first, and
``kernels.use`` switches which one runs."""
from __future__ import annotations

import pytest

from tinynn.backend import kernels
from tinynn.kernels.cpu import attention, conv

FAST = {
    "conv2d_forward": "numba", "conv2d_backward_input": "numba", "conv2d_backward_weight": "numba",
    "max_pool2d_forward": "numba", "max_pool2d_backward": "numba", "avg_pool2d_forward": "numba",
    "avg_pool2d_backward": "numba", "adaptive_avg_pool2d_forward": "numba", "adaptive_avg_pool2d_backward": "numba",
    "adaptive_max_pool2d_forward": "numba", "attention_forward": "blocked", "attention_backward": "blocked",
}


@pytest.mark.parametrize("op", sorted(FAST))
def test_fast_implementation_is_the_default(op):
    assert kernels.available(op, "cpu") == [FAST[op], "reference"]


def test_use_switches_the_implementation_and_restores_it():
    assert kernels.get("conv2d_forward") is conv.conv2d_forward_numba
    with kernels.use("conv2d_forward", "reference"):
        assert kernels.get("conv2d_forward") is conv.conv2d_forward_reference
        assert kernels.get("conv2d_backward_input") is conv.conv2d_backward_input_numba  # other ops unaffected
    assert kernels.get("conv2d_forward") is conv.conv2d_forward_numba
    with kernels.use("attention_forward", "reference"):
        assert kernels.get("attention_forward") is attention.attention_forward_reference


def test_use_rejects_unknown_names():
    with pytest.raises(ValueError, match="no implementation 'fortran'"):
        with kernels.use("conv2d_forward", "fortran"):
            pass

