"""Scaled dot-product attention kernels (fused softmax) on raw NumPy arrays.

    scores = q @ k^T * scale + mask        (B, H, L, S); causal: j > i masked to -inf
    lse    = logsumexp(scores, axis=-1)    (B, H, L), saved for the backward pass
    P      = exp(scores - lse)             the softmax, recomputed in backward, never stored
    out    = (P * dropout_mask) @ v        (B, H, L, Ev)

Backward, with D the dropout mask and delta = rowsum(dO * out) (= rowsum(P * dP)):
    dv = (P * D)^T @ dO
    dP = (dO @ v^T) * D
    dS = P * (dP - delta)                  the softmax Jacobian-vector product
    dq = dS @ k * scale,   dk = dS^T @ q * scale

Leading dimensions are any broadcast-compatible batch dims (usually (B, H)); ``mask``
and ``dropout_mask`` broadcast to (..., L, S). A row whose scores are all -inf (fully
masked) yields zeros, not NaN, and lse = -inf (as PyTorch does).

``reference`` (priority 0) materialises the whole score matrix. ``blocked``
(priority 10) processes query rows in blocks so that at most about ``BLOCK_ELEMENTS``
scores exist at once, and works in place on each block; the matmuls go through
BLAS either way. (A Numba softmax was not needed: the exponentials are one in-place
NumPy pass per block, and the GEMMs dominate.)
"""
from __future__ import annotations

import numpy as np

from tinynn.backend.kernels import register

# Scores alive at once in the blocked kernels: 2**18 floats = 1 MiB in float32, the L2 size here,
# so the softmax passes over a block stay in cache. Measured (float32, 1 BLAS thread, CPU ms) at
# 4x4x512x32: 2**16 -> fwd 26.8 / bwd 55.6, 2**18 -> 20.3 / 36.3, 2**20 -> 22.8 / 38.1.
BLOCK_ELEMENTS = 1 << 18


def _swap(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


def _rows(a, start: int, stop: int):
    """Rows [start, stop) of a (..., L, S)-broadcastable array (None and row-broadcast arrays pass through)."""
    if a is None or a.ndim < 2 or a.shape[-2] == 1:
        return a
    return a[..., start:stop, :]


def _masked_scores(q, k, mask, is_causal, scale, row_start=0):
    """q @ k^T * scale + mask, with -inf above the causal diagonal (row i sees keys j <= i)."""
    scores = np.matmul(q, _swap(k))
    scores *= scale
    if mask is not None:
        scores = _combine(scores, mask, np.add)
    if is_causal:
        rows = np.arange(row_start, row_start + q.shape[-2])[:, None]
        future = np.arange(k.shape[-2])[None, :] > rows
        scores[..., future] = -np.inf
    return scores


def _combine(a: np.ndarray, b: np.ndarray, ufunc) -> np.ndarray:
    """ufunc(a, b), in place into ``a`` when the result has a's shape and dtype (it usually does)."""
    if np.broadcast_shapes(a.shape, b.shape) == a.shape and np.can_cast(b.dtype, a.dtype, "same_kind"):
        return ufunc(a, b, out=a)
    return ufunc(a, b)


def _safe_lse(lse: np.ndarray) -> np.ndarray:
    """lse with fully masked rows (-inf) replaced by 0, so exp(scores - lse) is 0 there, not NaN."""
    return np.where(np.isneginf(lse), 0, lse)


def _logsumexp(scores: np.ndarray) -> np.ndarray:
    peak = np.max(scores, axis=-1, keepdims=True)
    peak = np.where(np.isneginf(peak), 0, peak)
    with np.errstate(divide="ignore"):
        return (np.log(np.sum(np.exp(scores - peak), axis=-1, keepdims=True)) + peak)[..., 0]


def _softmax_in_place(scores: np.ndarray):
    """Overwrite scores with softmax(scores) along the last axis, with one exp pass; return
    (probs, lse). Fully masked rows (all -inf) become zeros with lse = -inf."""
    peak = np.max(scores, axis=-1, keepdims=True)
    peak[np.isneginf(peak)] = 0
    scores -= peak
    probs = np.exp(scores, out=scores)
    total = np.sum(probs, axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        lse = (np.log(total) + peak)[..., 0]
    total[total == 0] = 1
    probs /= total
    return probs, lse


def _batch_shape(q, k, v, mask, dropout_mask):
    shapes = [q.shape[:-2], k.shape[:-2], v.shape[:-2]]
    shapes += [m.shape[:-2] for m in (mask, dropout_mask) if m is not None and m.ndim > 2]
    return np.broadcast_shapes(*shapes)


def _as_mask(mask, dtype):
    return None if mask is None else np.asarray(mask, dtype=dtype)


# --------------------------------------------------------------------------------------
# reference
# --------------------------------------------------------------------------------------

@register("attention_forward", "reference", priority=0)
def attention_forward_reference(q, k, v, mask, is_causal, scale, dropout_mask):
    scores = _masked_scores(q, k, _as_mask(mask, q.dtype), is_causal, scale)
    lse = _logsumexp(scores)
    probs = np.exp(scores - _safe_lse(lse)[..., None])
    if dropout_mask is not None:
        probs = probs * dropout_mask
    return np.matmul(probs, v), lse


@register("attention_backward", "reference", priority=0)
def attention_backward_reference(grad_out, q, k, v, out, lse, mask, is_causal, scale, dropout_mask):
    scores = _masked_scores(q, k, _as_mask(mask, q.dtype), is_causal, scale)
    probs = np.exp(scores - _safe_lse(lse)[..., None])
    kept = probs if dropout_mask is None else probs * dropout_mask
    grad_v = np.matmul(_swap(kept), grad_out)
    grad_probs = np.matmul(grad_out, _swap(v))
    if dropout_mask is not None:
        grad_probs = grad_probs * dropout_mask
    delta = np.sum(grad_out * out, axis=-1, keepdims=True)
    grad_scores = probs * (grad_probs - delta)
    grad_q = np.matmul(grad_scores, k) * scale
    grad_k = np.matmul(_swap(grad_scores), q) * scale
    return _reduce_to(grad_q, q.shape), _reduce_to(grad_k, k.shape), _reduce_to(grad_v, v.shape)


def _reduce_to(grad: np.ndarray, shape) -> np.ndarray:
    """Sum a gradient over the batch dims that were broadcast (e.g. k shared across heads)."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra))) if extra else grad
    axes = tuple(i for i, (g, s) in enumerate(zip(grad.shape, shape)) if s == 1 and g != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


# --------------------------------------------------------------------------------------
# blocked: query rows in blocks, in place
# --------------------------------------------------------------------------------------

def _block_rows(q, k, v, mask, dropout_mask) -> int:
    batch = int(np.prod(_batch_shape(q, k, v, mask, dropout_mask), dtype=np.int64))
    return max(1, BLOCK_ELEMENTS // max(1, batch * k.shape[-2]))


@register("attention_forward", "blocked", priority=10)
def attention_forward_blocked(q, k, v, mask, is_causal, scale, dropout_mask):
    mask = _as_mask(mask, q.dtype)
    batch = _batch_shape(q, k, v, mask, dropout_mask)
    L = q.shape[-2]
    out = np.empty((*batch, L, v.shape[-1]), dtype=np.result_type(q, k, v))
    lse = np.empty((*batch, L), dtype=out.dtype)
    step = _block_rows(q, k, v, mask, dropout_mask)
    for start in range(0, L, step):
        stop = min(L, start + step)
        scores = _masked_scores(q[..., start:stop, :], k, _rows(mask, start, stop), is_causal, scale, start)
        probs, block_lse = _softmax_in_place(scores)
        if dropout_mask is not None:
            probs = _combine(probs, _rows(dropout_mask, start, stop), np.multiply)
        out[..., start:stop, :] = np.matmul(probs, v)
        lse[..., start:stop] = block_lse
    return out, lse


@register("attention_backward", "blocked", priority=10)
def attention_backward_blocked(grad_out, q, k, v, out, lse, mask, is_causal, scale, dropout_mask):
    mask = _as_mask(mask, q.dtype)
    batch = _batch_shape(q, k, v, mask, dropout_mask)
    dtype = np.result_type(q, k, v, grad_out)
    L, S = q.shape[-2], k.shape[-2]
    grad_q = np.empty((*batch, L, q.shape[-1]), dtype=dtype)
    grad_k = np.zeros((*batch, S, k.shape[-1]), dtype=dtype)
    grad_v = np.zeros((*batch, S, v.shape[-1]), dtype=dtype)
    delta = np.sum(grad_out * out, axis=-1, keepdims=True)  # rowsum(dO * out) = rowsum(P * dP)
    step = _block_rows(q, k, v, mask, dropout_mask)
    for start in range(0, L, step):
        stop = min(L, start + step)
        rows = slice(start, stop)
        q_block, grad_out_block = q[..., rows, :], grad_out[..., rows, :]
        probs = _masked_scores(q_block, k, _rows(mask, start, stop), is_causal, scale, start)
        probs -= _safe_lse(lse[..., rows])[..., None]
        np.exp(probs, out=probs)
        drop = _rows(dropout_mask, start, stop)
        grad_v += np.matmul(_swap(probs if drop is None else probs * drop), grad_out_block)
        grad_scores = np.matmul(grad_out_block, _swap(v))  # dP
        if drop is not None:
            grad_scores = _combine(grad_scores, drop, np.multiply)
        grad_scores = _combine(grad_scores, delta[..., rows, :], np.subtract)
        grad_scores = _combine(grad_scores, probs, np.multiply)  # dS = P * (dP - delta)
        grad_q[..., rows, :] = np.matmul(grad_scores, k)
        grad_k += np.matmul(_swap(grad_scores), q_block)
    grad_q *= scale  # dq = dS @ k * scale, dk = dS^T @ q * scale: scaling the (L, E) results is cheaper than dS
    grad_k *= scale
    return _reduce_to(grad_q, q.shape), _reduce_to(grad_k, k.shape), _reduce_to(grad_v, v.shape)
