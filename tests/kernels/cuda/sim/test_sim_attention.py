"""Attention CUDA kernels (fused numba_cuda and composed cupy) under Numba's CUDA simulator.

The simulator runs the fused kernels with 4-row tiles, so these small shapes
already cover several query/key tiles and a ragged last tile.
"""
import numpy as np
import pytest

from tinynn.backend import kernels
from tinynn.kernels.cuda import attention

from cudasim_helpers import IN_SIMULATOR, SKIP_REASON, assert_close

pytestmark = [pytest.mark.cudasim, pytest.mark.skipif(not IN_SIMULATOR, reason=SKIP_REASON)]

IMPLEMENTATIONS = ["numba_cuda", "cupy"]
# (B, H, L, S, E, Ev, is_causal, mask kind, dropout, scale)
CASES = [
    (1, 2, 5, 6, 3, 2, False, None, False, None),
    (1, 2, 5, 6, 3, 2, True, "full", False, None),
    (2, 1, 6, 4, 2, 3, True, None, False, 0.7),  # causal with L > S
    (1, 2, 5, 6, 3, 2, False, "padding", True, None),  # key padding (-inf) and dropout
    (2, 2, 3, 9, 4, 4, False, "row", True, 0.5),
]


def _mask(kind, rng, B, H, L, S):
    if kind is None:
        return None
    if kind == "full":  # (L, S) additive, broadcast over B and H
        return rng.standard_normal((L, S))
    if kind == "row":  # (B, H, L, S)
        return rng.standard_normal((B, H, L, S))
    padding = np.zeros((B, 1, 1, S))  # key padding: the last two keys of batch 0 are hidden
    padding[0, ..., -2:] = -np.inf
    return padding


def _inputs(case, rng, dtype):
    B, H, L, S, E, Ev, is_causal, mask_kind, dropout, scale = case
    q = rng.standard_normal((B, H, L, E)).astype(dtype)
    k = rng.standard_normal((B, H, S, E)).astype(dtype)
    v = rng.standard_normal((B, H, S, Ev)).astype(dtype)
    mask = _mask(mask_kind, rng, B, H, L, S)
    mask = None if mask is None else mask.astype(dtype)
    dropout_mask = ((rng.random((B, H, L, S)) > 0.3) / 0.7).astype(dtype) if dropout else None
    return q, k, v, mask, is_causal, scale, dropout_mask


def _run(name, q, k, v, mask, is_causal, scale, dropout_mask, grad_out):
    with kernels.use("attention_forward", name, device="cuda"), kernels.use("attention_backward", name, device="cuda"):
        out, lse = kernels.get("attention_forward", "cuda")(q, k, v, mask, is_causal, scale, dropout_mask)
        grads = kernels.get("attention_backward", "cuda")(grad_out, q, k, v, out, lse, mask, is_causal, scale,
                                                          dropout_mask)
    return out, lse, grads


def _numpy_attention(q, k, v, mask, is_causal, scale, dropout_mask, grad_out):
    """The definition, in float64 NumPy: softmax, then the chain rule through it."""
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = scale * q @ k.swapaxes(-1, -2) + (0 if mask is None else mask)
    if is_causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf)
    lse = np.log(np.exp(s - s.max(-1, keepdims=True)).sum(-1)) + s.max(-1)
    p = np.exp(s - lse[..., None])
    z = 1 if dropout_mask is None else dropout_mask
    out = (p * z) @ v
    grad_v = (p * z).swapaxes(-1, -2) @ grad_out
    grad_p = (grad_out @ v.swapaxes(-1, -2)) * z
    grad_s = p * (grad_p - (grad_p * p).sum(-1, keepdims=True))  # softmax backward
    return out, lse, (scale * grad_s @ k, scale * grad_s.swapaxes(-1, -2) @ q, grad_v)


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"L{c[2]}S{c[3]}-causal{c[6]}-mask{c[7]}-drop{c[8]}")
def test_attention_matches_the_definition(name, case, rng):
    q, k, v, mask, is_causal, scale, dropout_mask = _inputs(case, rng, np.float64)
    grad_out = rng.standard_normal((*q.shape[:3], v.shape[3]))
    out, lse, grads = _run(name, q, k, v, mask, is_causal, scale, dropout_mask, grad_out)
    out_ref, lse_ref, grads_ref = _numpy_attention(q, k, v, mask, is_causal, scale, dropout_mask, grad_out)
    assert out.shape == out_ref.shape and lse.shape == lse_ref.shape
    assert_close(out, out_ref, np.float64, "out")
    assert_close(lse, lse_ref, np.float64, "lse")
    for grad, grad_ref, what in zip(grads, grads_ref, ("grad_q", "grad_k", "grad_v")):
        assert_close(grad, grad_ref, np.float64, what)


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_attention_float32_matches_cpu_reference(name, rng, cpu_reference):
    q, k, v, mask, is_causal, scale, dropout_mask = _inputs(CASES[1], rng, np.float32)
    grad_out = rng.standard_normal((*q.shape[:3], v.shape[3])).astype(np.float32)
    out, lse, grads = _run(name, q, k, v, mask, is_causal, scale, dropout_mask, grad_out)
    assert out.dtype == lse.dtype == np.float32
    scale = 1 / np.sqrt(q.shape[-1])  # the reference takes the scale already resolved
    out_ref, lse_ref = cpu_reference("attention_forward")(q, k, v, mask, is_causal, scale, dropout_mask)
    grads_ref = cpu_reference("attention_backward")(grad_out, q, k, v, out_ref, lse_ref, mask, is_causal, scale,
                                                    dropout_mask)
    assert_close(out, out_ref, np.float32, "out")
    assert_close(lse, lse_ref, np.float32, "lse")
    for grad, grad_ref, what in zip(grads, grads_ref, ("grad_q", "grad_k", "grad_v")):
        assert grad.dtype == np.float32
        assert_close(grad, grad_ref, np.float32, what)


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_fully_masked_rows_give_zero_outputs_and_zero_gradients(name, rng):
    q, k, v = (rng.standard_normal((1, 1, 3, 2)) for _ in range(3))
    mask = np.zeros((3, 3))
    mask[1] = -np.inf  # query 1 sees nothing: PyTorch's SDPA gives 0 there, not NaN
    out, lse, (grad_q, grad_k, grad_v) = _run(name, q, k, v, mask, False, None, None, np.ones((1, 1, 3, 2)))
    np.testing.assert_array_equal(out[0, 0, 1], 0)
    assert lse[0, 0, 1] == -np.inf and np.isfinite(lse[0, 0, [0, 2]]).all()
    np.testing.assert_array_equal(grad_q[0, 0, 1], 0)
    assert np.isfinite(grad_k).all() and np.isfinite(grad_v).all()
    # the visible rows are untouched by the masked one
    rows = [0, 2]
    out_ref, _, (grad_q_ref, _, _) = _numpy_attention(q[..., rows, :], k, v, mask[rows], False, None, None,
                                                      np.ones((1, 1, 2, 2)))
    assert_close(out[..., rows, :], out_ref, np.float64, "visible rows")
    assert_close(grad_q[..., rows, :], grad_q_ref, np.float64, "grad_q of visible rows")


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_batch_dims_broadcast_and_gradients_reduce(name, rng):
    # 3-D q (N, L, E) against k, v shared by the batch (1, S, E), and a (N, 1, S) key-padding mask
    q = rng.standard_normal((3, 5, 2))
    k = rng.standard_normal((1, 6, 2))
    v = rng.standard_normal((1, 6, 3))
    mask = np.where(rng.random((3, 1, 6)) < 0.3, -np.inf, 0.0)
    mask[:, :, 0] = 0  # every query sees key 0
    grad_out = rng.standard_normal((3, 5, 3))
    out, lse, grads = _run(name, q, k, v, mask, True, 0.8, None, grad_out)
    out_ref, lse_ref, grads_ref = _numpy_attention(q, k, v, mask, True, 0.8, None, grad_out)
    assert out.shape == (3, 5, 3) and lse.shape == (3, 5)
    assert_close(out, out_ref, np.float64, "out")
    assert_close(lse, lse_ref, np.float64, "lse")
    for grad, grad_ref, original, what in zip(grads, grads_ref, (q, k, v), ("grad_q", "grad_k", "grad_v")):
        assert grad.shape == original.shape, what
        assert_close(grad, grad_ref.sum(axis=0, keepdims=True) if original.shape[0] == 1 else grad_ref,
                     np.float64, what)


def test_large_heads_fall_back_to_the_composed_kernel(rng, monkeypatch):
    monkeypatch.setattr(attention, "MAX_FUSED_HEAD_DIM", 2)
    q, k, v, mask, is_causal, scale, dropout_mask = _inputs(CASES[0], rng, np.float64)
    grad_out = rng.standard_normal((*q.shape[:3], v.shape[3]))
    out, lse, grads = _run("numba_cuda", q, k, v, mask, is_causal, scale, dropout_mask, grad_out)
    out_ref, lse_ref, grads_ref = _numpy_attention(q, k, v, mask, is_causal, scale, dropout_mask, grad_out)
    assert_close(out, out_ref, np.float64, "out")
    assert_close(grads[0], grads_ref[0], np.float64, "grad_q")


def test_attention_rejects_mismatched_shapes():
    q = np.zeros((1, 1, 2, 3))
    with pytest.raises(ValueError, match="attention"):
        kernels.get("attention_forward", "cuda")(q, np.zeros((2, 1, 2, 3)), np.zeros((3, 1, 2, 3)), None, False,
                                                  None, None)
    with pytest.raises(ValueError, match="attention"):
        kernels.get("attention_forward", "cuda")(q, np.zeros((1, 1, 2, 4)), np.zeros((1, 1, 2, 3)), None, False,
                                                  None, None)


@pytest.mark.parity
def test_fused_attention_matches_torch(rng):
    torch = pytest.importorskip("torch")
    q, k, v, mask, is_causal, scale, _ = _inputs(CASES[1], rng, np.float64)
    qt, kt, vt = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    attn_mask = torch.tensor(mask) if mask is not None else None
    if is_causal:  # torch rejects attn_mask together with is_causal: fold causality into the mask
        causal = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool).tril()
        attn_mask = (attn_mask if attn_mask is not None else torch.zeros(causal.shape, dtype=torch.float64))
        attn_mask = attn_mask.masked_fill(~causal, float("-inf"))
    out_t = torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, attn_mask=attn_mask, scale=scale)
    grad_out = rng.standard_normal(tuple(out_t.shape))
    out_t.backward(torch.tensor(grad_out))
    out, _, grads = _run("numba_cuda", q, k, v, mask, is_causal, scale, None, grad_out)
    assert_close(out, out_t.detach().numpy(), np.float64, "out")
    for grad, tensor, what in zip(grads, (qt, kt, vt), ("grad_q", "grad_k", "grad_v")):
        assert_close(grad, tensor.grad.numpy(), np.float64, what)


def test_kernels_are_registered_on_cuda():
    assert kernels.available("attention_forward", "cuda")[:2] == ["numba_cuda", "cupy"]
    for op in ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "max_pool2d_forward",
               "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward", "adaptive_avg_pool2d_forward",
               "adaptive_avg_pool2d_backward", "adaptive_max_pool2d_forward", "attention_backward"):
        assert "numba_cuda" in kernels.available(op, "cuda"), op
