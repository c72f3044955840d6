"""Output-size arithmetic shared by the convolution and pooling kernels.

These are PyTorch's formulas; the CUDA kernels may import them too (they are
plain Python on ints, no arrays).
"""
from __future__ import annotations


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Length of a convolution's output along one axis.

    out = floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1
    """
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pool_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """Length of a max/avg pooling output along one axis (PyTorch's ``pooling_output_shape``).

    With ``ceil_mode`` the division rounds up, but the last window must still start
    inside the input or its left padding.
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def adaptive_window(index: int, in_size: int, out_size: int) -> tuple[int, int]:
    """``[start, end)`` of output cell ``index`` of an adaptive pooling (PyTorch's rule).

    start = floor(index * in / out), end = ceil((index + 1) * in / out)
    """
    start = (index * in_size) // out_size
    end = -((-(index + 1) * in_size) // out_size)
    return start, end


def check_pair(name: str, value) -> tuple[int, int]:
    """Kernels take every geometry argument as an ``(int, int)`` tuple."""
    if len(value) != 2:
        raise ValueError(f"{name} must be a pair of ints, got {value!r}")
    return int(value[0]), int(value[1])


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


__all__ = ["conv_output_size", "pool_output_size", "adaptive_window", "check_pair", "ceil_div"]
