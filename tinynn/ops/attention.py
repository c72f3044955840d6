"""``scaled_dot_product_attention`` as a differentiable op (PyTorch's signature and semantics).

    attention(q, k, v) = softmax(q @ k^T * scale + mask) @ v

The forward and backward passes are fused kernels (``attention_forward`` /
``attention_backward`` in ``tinynn.backend.kernels``): the softmax probabilities are
never stored; backward recomputes them from the saved row log-sum-exp.

Double backward (``create_graph=True``) differentiates the same maths written with
ordinary tinynn ops instead (``_attention_composite``), so higher-order gradients
are exact too, at the cost of materialising the probabilities.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..autograd import Function, enable_grad, grad as autograd_grad, is_grad_enabled
from ..backend import kernels
from ..backend.device import device_of_array
from ..backend.random import default_generator
from . import _common


def _kernel(op: str, array):
    return kernels.get(op, device_of_array(array))


class ScaledDotProductAttention(Function):
    """(out, lse) = fused attention; ``mask`` and ``dropout_mask`` are constant arrays (or None)."""

    @staticmethod
    def forward(ctx, q, k, v, mask, is_causal, scale, dropout_mask):
        out, lse = _kernel("attention_forward", q)(q, k, v, mask, is_causal, scale, dropout_mask)
        ctx.save_for_backward(q, k, v, out)
        ctx.lse, ctx.mask, ctx.is_causal, ctx.scale, ctx.dropout_mask = lse, mask, is_causal, scale, dropout_mask
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, grad_out, _grad_lse):
        q, k, v, out = ctx.saved_tensors
        wanted = [t for t, needed in zip((q, k, v), ctx.needs_input_grad[:3]) if needed]
        if is_grad_enabled():  # create_graph=True: differentiate ordinary ops so the result is differentiable
            with enable_grad():
                composite = _attention_composite(q, k, v, ctx.mask, ctx.is_causal, ctx.scale, ctx.dropout_mask)
                grads = iter(autograd_grad(composite, wanted, grad_out, create_graph=True))
            return tuple(next(grads) if needed else None for needed in ctx.needs_input_grad[:3]) + (None,) * 4
        # dq, dk, dv from the fused kernel (formulas in tinynn/kernels/cpu/attention.py)
        grad_q, grad_k, grad_v = _kernel("attention_backward", q.data)(
            grad_out.data, q.data, k.data, v.data, out.data, ctx.lse, ctx.mask, ctx.is_causal, ctx.scale,
            ctx.dropout_mask)
        grads = tuple(g if needed else None for g, needed in zip((grad_q, grad_k, grad_v), ctx.needs_input_grad[:3]))
        return grads + (None,) * 4


def _attention_composite(q, k, v, mask, is_causal, scale, dropout_mask):
    """The same attention with tinynn ops (for double backward). Fully masked rows give 0, like the kernel."""
    xp = q.xp
    L, S = q.shape[-2], k.shape[-2]
    additive = xp.zeros((L, S), dtype=q.dtype) if mask is None else mask.astype(q.dtype, copy=False)
    if is_causal:
        additive = xp.where(xp.triu(xp.ones((L, S), dtype=bool), 1), -xp.inf, additive)
    blocked = xp.isneginf(additive)
    row_alive = ~xp.all(blocked, axis=-1, keepdims=True)
    # -inf -> a large finite negative: exp() still gives exactly 0, and a fully masked row stays finite
    finite = xp.where(blocked, xp.finfo(q.dtype).min / 2, additive)
    scores = (q @ k.transpose(-2, -1)) * scale + _constant(finite, q)
    probs = scores.softmax(-1) * _constant(row_alive.astype(q.dtype), q)
    if dropout_mask is not None:
        probs = probs * _constant(dropout_mask, q)
    return probs @ v


def _constant(array, like):
    return type(like)._make(array, like.device)


def _as_additive_mask(attn_mask, q, L: int, S: int):
    """A bool mask (True = attend) or a float mask (added to the scores) as a raw additive array."""
    if attn_mask is None:
        return None
    mask = attn_mask.data if _common.is_tensor(attn_mask) else q.xp.asarray(attn_mask)
    try:
        np.broadcast_shapes(mask.shape, (*q.shape[:-2], L, S))
    except ValueError:
        raise ValueError(f"scaled_dot_product_attention: attn_mask of shape {tuple(mask.shape)} does not broadcast "
                         f"to the attention scores' shape {(*q.shape[:-2], L, S)}") from None
    if mask.dtype == np.bool_:
        zero = q.xp.zeros((), dtype=q.dtype)
        return q.xp.where(mask, zero, q.xp.asarray(-np.inf, dtype=q.dtype))
    if mask.dtype.kind != "f":
        raise TypeError(f"scaled_dot_product_attention: attn_mask must be bool or floating, got {mask.dtype}")
    return mask.astype(q.dtype, copy=False)


def _repeat_heads(t, heads: int):
    """Grouped-query attention: repeat each of t's key/value heads (dim -3) to ``heads`` heads."""
    groups = heads // t.shape[-3]
    index = t.xp.arange(heads) // groups
    return t[(Ellipsis, index, slice(None), slice(None))]


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: Optional[float] = None, enable_gqa: bool = False):
    """softmax(query @ key^T * scale + attn_mask) @ value, over any leading batch dims.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev). ``attn_mask``: bool
    (True = may attend) or float (added), broadcastable to (..., L, S). ``is_causal``: query i
    sees keys j <= i. ``dropout_p`` drops probabilities (always, as in PyTorch's functional form).
    ``scale`` defaults to 1/sqrt(E).
    """
    op = "scaled_dot_product_attention"
    q, k, v = query, key, value
    for name, t in (("query", q), ("key", k), ("value", v)):
        if t.ndim < 2:
            raise ValueError(f"{op}: {name} must have at least 2 dims (..., seq, features), got shape {tuple(t.shape)}")
        if t.dtype.kind != "f":
            raise TypeError(f"{op}: {name} must be floating, got {t.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"{op}: expected query, key and value to have the same dtype, got {q.dtype}, {k.dtype}, "
                        f"{v.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"{op}: query's feature size {q.shape[-1]} != key's {k.shape[-1]} "
                         f"(query {tuple(q.shape)}, key {tuple(k.shape)})")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"{op}: key and value must have the same sequence length, got key {tuple(k.shape)}, "
                         f"value {tuple(v.shape)}")
    if enable_gqa and q.ndim >= 3 and k.shape[-3] != q.shape[-3]:
        if q.shape[-3] % k.shape[-3] or k.shape[-3] != v.shape[-3]:
            raise ValueError(f"{op}: with enable_gqa the query heads ({q.shape[-3]}) must be a multiple of the "
                             f"key/value heads ({k.shape[-3]}, {v.shape[-3]})")
        k, v = _repeat_heads(k, q.shape[-3]), _repeat_heads(v, q.shape[-3])
    try:
        batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ValueError(f"{op}: batch dims of query {tuple(q.shape)}, key {tuple(k.shape)} and value "
                         f"{tuple(v.shape)} do not broadcast") from None
    if is_causal and attn_mask is not None:
        raise ValueError(f"{op}: explicit attn_mask should not be set when is_causal=True")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op}: dropout_p must be in [0, 1], got {dropout_p}")
    L, S = q.shape[-2], k.shape[-2]
    mask = _as_additive_mask(attn_mask, q, L, S)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    dropout_mask = None
    if dropout_p > 0.0:
        shape = (*np.broadcast_shapes(batch, mask.shape[:-2] if mask is not None else ()), L, S)
        if dropout_p == 1.0:
            dropout_mask = q.xp.zeros(shape, dtype=q.dtype)
        else:
            keep = default_generator(q.device).bernoulli(shape, 1.0 - dropout_p, q.dtype)
            dropout_mask = keep * q.dtype.type(1.0 / (1.0 - dropout_p))
    out, _ = ScaledDotProductAttention.apply(q, k, v, mask, bool(is_causal), scale, dropout_mask)
    return out


__all__ = ["scaled_dot_product_attention", "ScaledDotProductAttention"]
