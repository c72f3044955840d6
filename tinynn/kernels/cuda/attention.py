"""Scaled dot-product attention on the GPU: a fused FlashAttention-style kernel and a
composed version built from CuPy GEMMs.

Shapes: q (..., L, E), k (..., S, E), v (..., S, Ev), usually (B, H, L, E); the
leading dims broadcast. ``mask`` is an ADDITIVE float array broadcastable to
(..., L, S) (or None); ``dropout_mask`` holds 0 or 1/(1-p) and multiplies the
probabilities (or None). ``is_causal`` lets query i see keys j <= i (PyTorch's
top-left alignment). ``scale`` None means 1/sqrt(E). With s = scale * q k^T + mask:

    P = softmax(s),  out = (P * Z) @ v,  lse = log sum_j exp(s_ij)

Fused forward: one thread block per (batch element or head, tile of query rows),
one thread per query row. Key/value tiles are loaded into shared memory by all the block's
threads; each thread keeps a running maximum m, running sum l and accumulator a
for its row (online softmax) and rescales them by exp(m_old - m_new) when the
maximum grows, so the (L, S) score matrix is never stored.

Fused backward (FlashAttention-2), with D_i = dO_i . O_i:

    P_ij  = exp(s_ij - lse_i)
    dV_j  = sum_i P_ij Z_ij dO_i
    dS_ij = P_ij (Z_ij dO_i . V_j - D_i)
    dQ_i  = scale * sum_j dS_ij K_j,      dK_j = scale * sum_i dS_ij Q_i

computed by two kernels so that nothing needs atomics: one with a thread per key
row (dK, dV) and one with a thread per query row (dQ), each recomputing P.

Rows whose every score is masked out (-inf) give zero outputs and lse = -inf (as
PyTorch's SDPA does); their gradients are zero. The fused kernels see the batch as
(1, N, ...) views (N = the product of the batch dims), so broadcast inputs and
masks are not copied.
"""
from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import cuda  # a module global: the simulator swaps it per simulated thread

from ...backend.kernels import register
from ._launch import array_module, is_simulator, launch

# Largest head dimension the fused kernels handle (their per-thread rows live in
# local memory); larger heads use the composed version.
MAX_FUSED_HEAD_DIM = 256
# Shared memory the fused kernels may use per block (the static limit is 48 KiB).
SHARED_MEMORY_BUDGET = 32 * 1024
GPU_TILE = 64
SIMULATOR_TILE = 4


def _padded(dim: int) -> int:
    """Next power of two >= dim (at least 8): head sizes share compiled kernels."""
    return max(8, 1 << (dim - 1).bit_length())


def _tile_size(head_dim: int, value_dim: int, itemsize: int) -> int:
    """Rows per tile: GPU_TILE, halved until two tiles of rows fit the shared-memory budget."""
    if is_simulator():
        return SIMULATOR_TILE
    tile = GPU_TILE
    while tile > 8 and tile * (head_dim + value_dim + 2) * itemsize > SHARED_MEMORY_BUDGET:
        tile //= 2
    return tile


# ----------------------------------------------------------------------------- fused kernels
@cuda.jit(device=True)
def _load_tile(tile_rows, source, b, h, tile_start, length, dim, thread, zero):
    """Cooperative load into shared memory: the block's threads together copy rows
    ``tile_start .. tile_start + tile`` of ``source[b, h]`` (their first ``dim`` columns) into
    ``tile_rows``; rows past ``length`` are zeros. The caller synchronises afterwards."""
    tile = tile_rows.shape[0]
    for index in range(thread, tile * dim, tile):
        i, e = index // dim, index % dim
        tile_rows[i, e] = source[b, h, tile_start + i, e] if tile_start + i < length else zero


@functools.lru_cache(maxsize=None)
def _forward_kernel(tile: int, head_dim: int, value_dim: int, dtype_name: str):
    """The fused forward kernel for one (tile, padded head sizes, dtype), compiled on first launch."""
    dtype = numba.from_dtype(np.dtype(dtype_name))

    @cuda.jit
    def forward(q, k, v, mask, dropout, is_causal, scale, out, lse, zero, minus_inf):
        batch_head = cuda.blockIdx.x  # x: up to 2**31 - 1 blocks; y (row tiles) only 65535
        heads = q.shape[1]
        b, h = batch_head // heads, batch_head % heads
        query_len, key_len, e_dim, ev_dim = q.shape[2], k.shape[2], q.shape[3], v.shape[3]
        thread = cuda.threadIdx.x
        row = cuda.blockIdx.y * tile + thread
        active = row < query_len

        k_tile = cuda.shared.array((tile, head_dim), dtype)
        v_tile = cuda.shared.array((tile, value_dim), dtype)
        q_row = cuda.local.array(head_dim, dtype)
        acc = cuda.local.array(value_dim, dtype)
        scores = cuda.local.array(tile, dtype)

        for e in range(e_dim):
            q_row[e] = q[b, h, row, e] * scale if active else zero
        for e in range(ev_dim):
            acc[e] = zero
        running_max = minus_inf
        running_sum = zero

        # causal: no row of this block looks past the block's last row
        key_end = min(key_len, (cuda.blockIdx.y + 1) * tile) if is_causal else key_len
        for tile_start in range(0, key_end, tile):
            _load_tile(k_tile, k, b, h, tile_start, key_len, e_dim, thread, zero)
            _load_tile(v_tile, v, b, h, tile_start, key_len, ev_dim, thread, zero)
            cuda.syncthreads()

            if active:
                tile_max = minus_inf
                for j in range(tile):
                    col = tile_start + j
                    score = minus_inf
                    if col < key_len and not (is_causal and col > row):
                        dot = zero
                        for e in range(e_dim):
                            dot += q_row[e] * k_tile[j, e]
                        score = dot + mask[b, h, row, col]
                    scores[j] = score
                    tile_max = max(tile_max, score)
                new_max = max(running_max, tile_max)
                if new_max != minus_inf:  # otherwise nothing visible yet: keep l = 0, a = 0
                    correction = math.exp(running_max - new_max)  # 0 when running_max was -inf
                    running_sum *= correction
                    for e in range(ev_dim):
                        acc[e] *= correction
                    for j in range(tile):
                        col = tile_start + j
                        if scores[j] != minus_inf:
                            p = math.exp(scores[j] - new_max)
                            running_sum += p
                            p *= dropout[b, h, row, col]
                            for e in range(ev_dim):
                                acc[e] += p * v_tile[j, e]
                    running_max = new_max
            cuda.syncthreads()

        if active:
            if running_sum > zero:
                for e in range(ev_dim):
                    out[b, h, row, e] = acc[e] / running_sum
                lse[b, h, row] = running_max + math.log(running_sum)
            else:  # every key masked: no attention at all (PyTorch's safe softmax)
                for e in range(ev_dim):
                    out[b, h, row, e] = zero
                lse[b, h, row] = minus_inf

    return forward


@functools.lru_cache(maxsize=None)
def _backward_key_kernel(tile: int, head_dim: int, value_dim: int, dtype_name: str):
    """dK and dV: one thread per key row, looping over tiles of query rows."""
    dtype = numba.from_dtype(np.dtype(dtype_name))

    @cuda.jit
    def backward_key(grad_out, q, k, v, lse, delta, mask, dropout, is_causal, scale, grad_k, grad_v, zero,
                     minus_inf):
        batch_head = cuda.blockIdx.x  # x: up to 2**31 - 1 blocks; y (row tiles) only 65535
        heads = q.shape[1]
        b, h = batch_head // heads, batch_head % heads
        query_len, key_len, e_dim, ev_dim = q.shape[2], k.shape[2], q.shape[3], v.shape[3]
        thread = cuda.threadIdx.x
        col = cuda.blockIdx.y * tile + thread
        active = col < key_len

        q_tile = cuda.shared.array((tile, head_dim), dtype)
        grad_out_tile = cuda.shared.array((tile, value_dim), dtype)
        lse_tile = cuda.shared.array(tile, dtype)
        delta_tile = cuda.shared.array(tile, dtype)
        k_row = cuda.local.array(head_dim, dtype)
        v_row = cuda.local.array(value_dim, dtype)
        dk = cuda.local.array(head_dim, dtype)
        dv = cuda.local.array(value_dim, dtype)
        for e in range(e_dim):
            k_row[e] = k[b, h, col, e] * scale if active else zero
            dk[e] = zero
        for e in range(ev_dim):
            v_row[e] = v[b, h, col, e] if active else zero
            dv[e] = zero

        # causal: query rows before this block's first key never see it
        query_start = cuda.blockIdx.y * tile if is_causal else 0
        for tile_start in range(query_start, query_len, tile):
            _load_tile(q_tile, q, b, h, tile_start, query_len, e_dim, thread, zero)
            _load_tile(grad_out_tile, grad_out, b, h, tile_start, query_len, ev_dim, thread, zero)
            row = tile_start + thread
            lse_tile[thread] = lse[b, h, row] if row < query_len else minus_inf
            delta_tile[thread] = delta[b, h, row] if row < query_len else zero
            cuda.syncthreads()

            if active:
                for i in range(tile):
                    row = tile_start + i
                    if row >= query_len or (is_causal and col > row) or lse_tile[i] == minus_inf:
                        continue
                    dot = zero
                    for e in range(e_dim):
                        dot += q_tile[i, e] * k_row[e]
                    score = dot + mask[b, h, row, col]
                    if score == minus_inf:
                        continue
                    p = math.exp(score - lse_tile[i])
                    z = dropout[b, h, row, col]
                    grad_p = zero  # dO_i . V_j
                    for e in range(ev_dim):
                        grad_p += grad_out_tile[i, e] * v_row[e]
                    for e in range(ev_dim):
                        dv[e] += p * z * grad_out_tile[i, e]
                    grad_score = p * (grad_p * z - delta_tile[i])
                    for e in range(e_dim):
                        dk[e] += grad_score * q_tile[i, e]
            cuda.syncthreads()

        if active:
            for e in range(e_dim):
                grad_k[b, h, col, e] = dk[e] * scale
            for e in range(ev_dim):
                grad_v[b, h, col, e] = dv[e]

    return backward_key


@functools.lru_cache(maxsize=None)
def _backward_query_kernel(tile: int, head_dim: int, value_dim: int, dtype_name: str):
    """dQ: one thread per query row, looping over tiles of key rows."""
    dtype = numba.from_dtype(np.dtype(dtype_name))

    @cuda.jit
    def backward_query(grad_out, q, k, v, lse, delta, mask, dropout, is_causal, scale, grad_q, zero, minus_inf):
        batch_head = cuda.blockIdx.x  # x: up to 2**31 - 1 blocks; y (row tiles) only 65535
        heads = q.shape[1]
        b, h = batch_head // heads, batch_head % heads
        query_len, key_len, e_dim, ev_dim = q.shape[2], k.shape[2], q.shape[3], v.shape[3]
        thread = cuda.threadIdx.x
        row = cuda.blockIdx.y * tile + thread
        active = row < query_len

        k_tile = cuda.shared.array((tile, head_dim), dtype)
        v_tile = cuda.shared.array((tile, value_dim), dtype)
        q_row = cuda.local.array(head_dim, dtype)
        grad_out_row = cuda.local.array(value_dim, dtype)
        dq = cuda.local.array(head_dim, dtype)
        for e in range(e_dim):
            q_row[e] = q[b, h, row, e] * scale if active else zero
            dq[e] = zero
        for e in range(ev_dim):
            grad_out_row[e] = grad_out[b, h, row, e] if active else zero
        row_lse = lse[b, h, row] if active else minus_inf
        row_delta = delta[b, h, row] if active else zero

        key_end = min(key_len, (cuda.blockIdx.y + 1) * tile) if is_causal else key_len
        for tile_start in range(0, key_end, tile):
            _load_tile(k_tile, k, b, h, tile_start, key_len, e_dim, thread, zero)
            _load_tile(v_tile, v, b, h, tile_start, key_len, ev_dim, thread, zero)
            cuda.syncthreads()

            if active and row_lse != minus_inf:
                for j in range(tile):
                    col = tile_start + j
                    if col >= key_len or (is_causal and col > row):
                        continue
                    dot = zero
                    for e in range(e_dim):
                        dot += q_row[e] * k_tile[j, e]
                    score = dot + mask[b, h, row, col]
                    if score == minus_inf:
                        continue
                    p = math.exp(score - row_lse)
                    grad_p = zero
                    for e in range(ev_dim):
                        grad_p += grad_out_row[e] * v_tile[j, e]
                    grad_score = p * (grad_p * dropout[b, h, row, col] - row_delta)
                    for e in range(e_dim):
                        dq[e] += grad_score * k_tile[j, e]
            cuda.syncthreads()

        if active:
            for e in range(e_dim):
                grad_q[b, h, row, e] = dq[e] * scale

    return backward_query


# ----------------------------------------------------------------------------- argument handling
def _check(q, k, v):
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"attention: q, k, v need at least 2 dims (..., L|S, E), got {q.shape}, {k.shape}, {v.shape}")
    if k.shape[-1] != q.shape[-1] or v.shape[-2] != k.shape[-2]:
        raise ValueError(f"attention: q {q.shape}, k {k.shape}, v {v.shape} do not match (..., L, E), (..., S, E), "
                         "(..., S, Ev)")


def _batch_shape(*arrays) -> tuple:
    """The broadcast of the leading (batch) dims of q, k, v and the masks, usually (B, H)."""
    try:
        return tuple(np.broadcast_shapes(*(a.shape[:-2] for a in arrays if a is not None)))
    except ValueError:
        raise ValueError("attention: batch dims of " + ", ".join(str(a.shape) for a in arrays if a is not None)
                         + " do not broadcast") from None


def _as_batch_of_heads(xp, array, batch, tail):
    """``array`` broadcast to batch + tail and viewed as (1, prod(batch), *tail): the fused kernels index
    [b, h, row, column] and see the whole batch as the heads of one sample. Views where possible: a mask
    shared by all heads is broadcast, not copied."""
    array = xp.asarray(array)
    lead = array.shape[:-2]
    if all(d == 1 for d in lead):
        flat = array.reshape((1, 1) + array.shape[-2:])
    elif lead == batch:
        flat = array.reshape((1, -1) + array.shape[-2:])
    else:  # broadcast over some batch dims only: materialise
        flat = xp.broadcast_to(array, batch + array.shape[-2:]).reshape((1, -1) + array.shape[-2:])
    return xp.broadcast_to(flat, (1, math.prod(batch)) + tuple(tail))


def _reduce_to(xp, grad, shape):
    """Sum a gradient over the batch dims its input was broadcast along (e.g. k shared by all heads)."""
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, (g, s) in enumerate(zip(grad.shape, shape)) if s == 1 and g != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def _constant_view(xp, array, dtype, fill, batch, tail):
    """A mask as (1, N, L, S) of ``dtype``; an absent one as a broadcast constant."""
    if array is None:
        return xp.broadcast_to(xp.full((1, 1, 1, 1), fill, dtype=dtype), (1, math.prod(batch)) + tuple(tail))
    return _as_batch_of_heads(xp, xp.asarray(array).astype(dtype, copy=False), batch, tail)


def _fused_setup(q, k, v, mask, dropout_mask):
    """Everything in the (1, N, ..) layout of the fused kernels, and the kernels' compile-time key."""
    xp = array_module(q)
    batch = _batch_shape(q, k, v, mask, dropout_mask)
    query_len, key_len = q.shape[-2], k.shape[-2]
    e_dim, ev_dim = q.shape[-1], v.shape[-1]
    q4 = _as_batch_of_heads(xp, q, batch, (query_len, e_dim))
    k4 = _as_batch_of_heads(xp, k, batch, (key_len, e_dim))
    v4 = _as_batch_of_heads(xp, v, batch, (key_len, ev_dim))
    mask4 = _constant_view(xp, mask, q.dtype, 0, batch, (query_len, key_len))
    dropout4 = _constant_view(xp, dropout_mask, q.dtype, 1, batch, (query_len, key_len))
    head_dim, value_dim = _padded(e_dim), _padded(ev_dim)
    tile = _tile_size(head_dim, value_dim, q.dtype.itemsize)
    kernel_key = (tile, head_dim, value_dim, q.dtype.name)
    return xp, batch, (q4, k4, v4, mask4, dropout4), kernel_key


def _use_fused(q, v) -> bool:
    return max(q.shape[-1], v.shape[-1]) <= MAX_FUSED_HEAD_DIM and q.dtype.kind == "f" and q.dtype.itemsize >= 4


def _scale_value(q, scale) -> float:
    return 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)


def _constants(dtype):
    return dtype.type(0), dtype.type(-np.inf)


# ----------------------------------------------------------------------------- fused (numba_cuda)
@register("attention_forward", "numba_cuda", device="cuda", priority=10)
def attention_forward(q, k, v, mask, is_causal: bool, scale, dropout_mask):
    """(out, lse) from the fused online-softmax kernel; (..., L, S) scores are never stored."""
    _check(q, k, v)
    if not _use_fused(q, v):
        return attention_forward_composed(q, k, v, mask, is_causal, scale, dropout_mask)
    xp, batch, (q4, k4, v4, mask4, dropout4), kernel_key = _fused_setup(q, k, v, mask, dropout_mask)
    heads, query_len = q4.shape[1], q4.shape[2]
    out = xp.empty((1, heads, query_len, v.shape[-1]), dtype=q.dtype)
    lse = xp.empty((1, heads, query_len), dtype=q.dtype)
    tile = kernel_key[0]
    launch(_forward_kernel(*kernel_key), (heads, -(-query_len // tile)), tile, q4, k4, v4, mask4, dropout4,
           bool(is_causal), q.dtype.type(_scale_value(q, scale)), out, lse, *_constants(q.dtype))
    return out.reshape(batch + out.shape[2:]), lse.reshape(batch + lse.shape[2:])


@register("attention_backward", "numba_cuda", device="cuda", priority=10)
def attention_backward(grad_out, q, k, v, out, lse, mask, is_causal: bool, scale, dropout_mask):
    """(grad_q, grad_k, grad_v) from the two fused backward kernels (FlashAttention-2's recomputation)."""
    _check(q, k, v)
    if not _use_fused(q, v):
        return attention_backward_composed(grad_out, q, k, v, out, lse, mask, is_causal, scale, dropout_mask)
    xp, batch, (q4, k4, v4, mask4, dropout4), kernel_key = _fused_setup(q, k, v, mask, dropout_mask)
    heads, query_len, key_len = q4.shape[1], q4.shape[2], k4.shape[2]
    grad_out4 = _as_batch_of_heads(xp, xp.asarray(grad_out).astype(q.dtype, copy=False), batch,
                                   (query_len, v.shape[-1]))
    out4 = _as_batch_of_heads(xp, out, batch, (query_len, v.shape[-1]))
    lse4 = xp.ascontiguousarray(xp.broadcast_to(lse, batch + (query_len,)).reshape(1, heads, query_len))
    delta = (grad_out4 * out4).sum(axis=-1)  # D_i = dO_i . O_i
    scale = q.dtype.type(_scale_value(q, scale))
    grad_q = xp.empty((1, heads, query_len, q.shape[-1]), dtype=q.dtype)
    grad_k = xp.empty((1, heads, key_len, k.shape[-1]), dtype=q.dtype)
    grad_v = xp.empty((1, heads, key_len, v.shape[-1]), dtype=q.dtype)
    tile = kernel_key[0]
    launch(_backward_key_kernel(*kernel_key), (heads, -(-key_len // tile)), tile, grad_out4, q4, k4, v4, lse4,
           delta, mask4, dropout4, bool(is_causal), scale, grad_k, grad_v, *_constants(q.dtype))
    launch(_backward_query_kernel(*kernel_key), (heads, -(-query_len // tile)), tile, grad_out4, q4, k4, v4, lse4,
           delta, mask4, dropout4, bool(is_causal), scale, grad_q, *_constants(q.dtype))
    return tuple(_reduce_to(xp, grad.reshape(batch + grad.shape[2:]), original.shape)
                 for grad, original in ((grad_q, q), (grad_k, k), (grad_v, v)))


# ----------------------------------------------------------------------------- composed (cupy)
def _scores(xp, q, k, mask, is_causal, scale):
    """s = scale * q k^T + mask, with -inf above the diagonal when causal."""
    scores = xp.matmul(q, k.swapaxes(-1, -2)) * q.dtype.type(scale)
    if mask is not None:
        scores = scores + xp.asarray(mask).astype(q.dtype, copy=False)
    if is_causal:
        query_len, key_len = scores.shape[-2:]
        visible = xp.tril(xp.ones((query_len, key_len), dtype=bool))
        scores = xp.where(visible, scores, q.dtype.type(-np.inf))
    return scores


def _probabilities(xp, scores, lse):
    """P = exp(s - lse); 0 on rows where every score is -inf (lse = -inf)."""
    finite_lse = xp.where(xp.isfinite(lse), lse, 0)
    return xp.exp(scores - finite_lse[..., None])


@register("attention_forward", "cupy", device="cuda", priority=5)
def attention_forward_composed(q, k, v, mask, is_causal: bool, scale, dropout_mask):
    """(out, lse) from two batched GEMMs (cuBLAS) around an explicit (..., L, S) softmax."""
    xp = array_module(q)
    _check(q, k, v)
    _batch_shape(q, k, v, mask, dropout_mask)
    scores = _scores(xp, q, k, mask, is_causal, _scale_value(q, scale))
    row_max = scores.max(axis=-1, keepdims=True)
    row_max = xp.where(xp.isfinite(row_max), row_max, 0)
    with np.errstate(divide="ignore"):  # log(0) = -inf on fully masked rows
        lse = (row_max + xp.log(xp.exp(scores - row_max).sum(axis=-1, keepdims=True)))[..., 0]
    probabilities = _probabilities(xp, scores, lse)
    if dropout_mask is not None:
        probabilities = probabilities * xp.asarray(dropout_mask).astype(q.dtype, copy=False)
    return xp.matmul(probabilities, v).astype(q.dtype, copy=False), lse.astype(q.dtype, copy=False)


@register("attention_backward", "cupy", device="cuda", priority=5)
def attention_backward_composed(grad_out, q, k, v, out, lse, mask, is_causal: bool, scale, dropout_mask):
    """The backward formulas of the module docstring, with the (..., L, S) matrices materialised."""
    xp = array_module(q)
    scale = q.dtype.type(_scale_value(q, scale))
    probabilities = _probabilities(xp, _scores(xp, q, k, mask, is_causal, scale), lse)
    keep = 1 if dropout_mask is None else xp.asarray(dropout_mask).astype(q.dtype, copy=False)
    grad_probabilities = xp.matmul(grad_out, v.swapaxes(-1, -2)) * keep  # dP = (dO V^T) * Z
    grad_v = xp.matmul((probabilities * keep).swapaxes(-1, -2), grad_out)  # dV = (P*Z)^T dO
    delta = (grad_out * out).sum(axis=-1, keepdims=True)  # D = rowsum(dO * O)
    grad_scores = probabilities * (grad_probabilities - delta)  # dS = P (dP - D)
    grad_q = xp.matmul(grad_scores, k) * scale
    grad_k = xp.matmul(grad_scores.swapaxes(-1, -2), q) * scale
    return tuple(_reduce_to(xp, grad, original.shape).astype(q.dtype, copy=False)
                 for grad, original in ((grad_q, q), (grad_k, k), (grad_v, v)))
