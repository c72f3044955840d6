"""Flatten parameters into one vector and back."""
from __future__ import annotations

from ...tensor import Tensor
from ... import ops


def parameters_to_vector(parameters) -> Tensor:
    """All parameters, flattened and concatenated (differentiable)."""
    parameters = list(parameters)
    if not parameters:
        raise ValueError("parameters_to_vector: got no parameters")
    device = parameters[0].device
    for p in parameters:
        if p.device != device:
            raise TypeError(f"parameters_to_vector: found parameters on {device} and {p.device}")
    return ops.cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters) -> None:
    """Copy slices of ``vec`` into the parameters' data, in order."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected vec to be a Tensor, got {type(vec).__name__}")
    parameters = list(parameters)
    total = sum(p.numel() for p in parameters)
    if vec.ndim != 1 or vec.numel() != total:
        raise ValueError(f"vector_to_parameters: vec has shape {tuple(vec.shape)}, but the parameters hold "
                         f"{total} elements")
    offset = 0
    for p in parameters:
        n = p.numel()
        p.data = vec.data[offset:offset + n].reshape(p.shape).astype(p.dtype, copy=True)
        offset += n
