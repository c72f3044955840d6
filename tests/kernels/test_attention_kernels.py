"""Attention kernels: the query-blocked kernel against the full-matrix reference, and the
reference against PyTorch."""
from __future__ import annotations

import numpy as np
import pytest

from tinynn.backend import kernels
from tinynn.kernels.cpu import attention as attention_kernels

# (batch dims, L, S, E, Ev, mask kind, is_causal, dropout)
CASES = [
    ((2, 3), 5, 7, 4, 6, None, False, False),
    ((2, 2), 6, 6, 4, 4, "bool", False, False),
    ((1, 2), 5, 3, 4, 4, None, True, False),      # causal with L > S
    ((2, 1), 4, 5, 3, 3, "float", False, True),
    ((2, 2), 3, 3, 2, 2, "fully_masked_row", False, True),
    ((3,), 6, 4, 5, 2, "bool", False, False),       # (B, L, E): 3-d
    ((), 4, 4, 3, 3, None, True, False),           # (L, E): 2-d
]


def _operands(case, dtype, contiguous, seed=0):
    batch, L, S, E, Ev, mask_kind, is_causal, dropout = case
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((*batch, L, E)).astype(dtype)
    k = rng.standard_normal((*batch, S, E)).astype(dtype)
    v = rng.standard_normal((*batch, S, Ev)).astype(dtype)
    if not contiguous:
        q, k, v = (np.swapaxes(np.swapaxes(a, -1, -2).copy(), -1, -2) for a in (q, k, v))
    mask = None
    if mask_kind == "bool":
        mask = np.where(rng.random((L, S)) > 0.3, 0.0, -np.inf).astype(dtype)
    elif mask_kind == "float":
        mask = rng.standard_normal((*batch[:1], 1, L, S)).astype(dtype)
    elif mask_kind == "fully_masked_row":
        mask = np.zeros((L, S), dtype)
        mask[1] = -np.inf
    dropout_mask = None
    if dropout:
        dropout_mask = ((rng.random((*batch, L, S)) > 0.3) / 0.7).astype(dtype)
    grad_out = rng.standard_normal((*batch, L, Ev)).astype(dtype)
    return q, k, v, mask, is_causal, 1 / np.sqrt(E), dropout_mask, grad_out


def _run(name, q, k, v, mask, is_causal, scale, dropout_mask, grad_out):
    with kernels.use("attention_forward", name), kernels.use("attention_backward", name):
        out, lse = kernels.get("attention_forward")(q, k, v, mask, is_causal, scale, dropout_mask)
        grads = kernels.get("attention_backward")(grad_out, q, k, v, out, lse, mask, is_causal, scale, dropout_mask)
    return (out, lse, *grads)


TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-11, atol=1e-12)}


@pytest.mark.parametrize("block_elements", [1 << 20, 7], ids=["one_block", "row_blocks"])
@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "strided"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_blocked_matches_reference(case, dtype, contiguous, block_elements, monkeypatch):
    monkeypatch.setattr(attention_kernels, "BLOCK_ELEMENTS", block_elements)
    operands = _operands(case, dtype, contiguous)
    expected = _run("reference", *operands)
    actual = _run("blocked", *operands)
    for what, a, e in zip(("out", "lse", "grad_q", "grad_k", "grad_v"), actual, expected):
        assert a.shape == e.shape, what
        assert a.dtype == dtype, what
        np.testing.assert_allclose(a, e, err_msg=what, **TOL[dtype])


@pytest.mark.parametrize("name", ["reference", "blocked"])
def test_fully_masked_row_gives_zeros_not_nan(name):
    q, k, v, mask, is_causal, scale, dropout_mask, grad_out = _operands(CASES[4], np.float64, True)
    out, lse, grad_q, grad_k, grad_v = _run(name, q, k, v, mask, is_causal, scale, None, grad_out)
    assert np.all(out[..., 1, :] == 0) and np.all(np.isneginf(lse[..., 1]))
    assert np.all(np.isfinite(grad_q)) and np.all(grad_q[..., 1, :] == 0)
    assert np.all(np.isfinite(grad_k)) and np.all(np.isfinite(grad_v))


@pytest.mark.parity
@pytest.mark.parametrize("case", [c for c in CASES if not c[7]])
def test_reference_matches_torch(case):
    torch = pytest.importorskip("torch")
    q, k, v, mask, is_causal, scale, _, grad_out = _operands(case, np.float64, True)
    qt, kt, vt = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    out_t = torch.nn.functional.scaled_dot_product_attention(
        qt, kt, vt, attn_mask=None if mask is None else torch.tensor(mask), is_causal=is_causal)
    out_t.backward(torch.tensor(grad_out))
    out, lse, grad_q, grad_k, grad_v = _run("reference", q, k, v, mask, is_causal, scale, None, grad_out)
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in ((grad_q, qt), (grad_k, kt), (grad_v, vt)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)
    scores = q @ np.swapaxes(k, -1, -2) * scale + (0 if mask is None else mask)
    if is_causal:
        scores = np.where(np.triu(np.ones(scores.shape[-2:], bool), 1), -np.inf, scores)
    np.testing.assert_allclose(lse, torch.logsumexp(torch.tensor(scores), -1).numpy(), rtol=1e-12)
