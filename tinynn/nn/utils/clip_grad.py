"""Gradient clipping, in place on ``p.grad`` (outside autograd)."""
from __future__ import annotations

import math

from ...tensor import Tensor


def _grads(parameters) -> list:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def get_total_norm(tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> Tensor:
    """The ``norm_type``-norm of all tensors together, as if concatenated into one vector."""
    from ...creation import tensor
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if not tensors:
        return tensor(0.0)
    norm_type = float(norm_type)
    xp = tensors[0].xp
    if math.isinf(norm_type):
        total = max(float(xp.abs(t.data).max()) if t.numel() else 0.0 for t in tensors)
    else:
        total = sum(float((xp.abs(t.data.astype(xp.float64)) ** norm_type).sum()) for t in tensors) ** (1 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
                           "so it cannot be clipped. To disable this error and scale the gradients by the "
                           "non-finite norm anyway, set `error_if_nonfinite=False`")
    return Tensor._make(xp.asarray(total, dtype=tensors[0].dtype), tensors[0].device)


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach=None) -> Tensor:
    """Scale all gradients by min(1, max_norm / (total_norm + 1e-6)); returns the total norm (before clipping)."""
    grads = _grads(parameters)
    if not grads:
        from ...creation import tensor
        return tensor(0.0)
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    clip_coef = float(max_norm) / (float(total.item()) + 1e-6)
    if clip_coef < 1.0:
        for g in grads:
            g.data *= g.dtype.type(clip_coef)
    return total


clip_grad_norm = clip_grad_norm_


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient element into [-clip_value, clip_value]."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        g.xp.clip(g.data, -clip_value, clip_value, out=g.data)
