"""MultiheadAttention: PyTorch parity over layouts, masks, kdim/vdim and need_weights;
gradcheck; initialisation; clear errors for bad masks and inputs."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
import tinynn.nn as nn
from tinynn.autograd import gradcheck, gradgradcheck

TOL = {np.float64: dict(rtol=1e-6, atol=1e-9), np.float32: dict(rtol=1e-4, atol=1e-5)}
E, HEADS, L, S, N = 8, 2, 5, 7, 3


def _masks(rng):
    bool_mask = rng.random((L, S)) < 0.3
    bool_mask[:, 0] = False                      # every query keeps a key (no all-masked rows)
    padding = rng.random((N, S)) < 0.3
    padding[:, 0] = False
    return {
        "bool2d": bool_mask,
        "float2d": rng.standard_normal((L, S)),
        "float3d": rng.standard_normal((N * HEADS, L, S)),
        "bool3d": np.broadcast_to(bool_mask, (N * HEADS, L, S)).copy(),
        "padding": padding,
        "float_padding": rng.standard_normal((N, S)),
        "causal": np.triu(np.ones((L, L), dtype=bool), 1),
    }


# Each case: constructor kwargs, forward kwargs (masks by name), layout flags.
CASES = {
    "plain": ({}, {}),
    "no-weights": ({}, {"need_weights": False}),
    "per-head-weights": ({}, {"average_attn_weights": False}),
    "batch-first": ({"batch_first": True}, {}),
    "batch-first-no-weights": ({"batch_first": True}, {"need_weights": False}),
    "kdim-vdim": ({"kdim": 3, "vdim": 5}, {}),
    "kdim-vdim-no-weights": ({"kdim": 3, "vdim": 5, "batch_first": True}, {"need_weights": False}),
    "no-bias": ({"bias": False}, {"need_weights": False}),
    "unbatched": ({}, {"unbatched": True}),
    "unbatched-no-weights": ({}, {"unbatched": True, "need_weights": False}),
    "self-attention": ({}, {"self": True}),
    "self-attention-batch-first": ({"batch_first": True}, {"self": True, "need_weights": False}),
    "bool-mask": ({}, {"attn_mask": "bool2d"}),
    "bool-mask-no-weights": ({}, {"attn_mask": "bool2d", "need_weights": False}),
    "float-mask": ({}, {"attn_mask": "float2d"}),
    "float-mask-no-weights": ({}, {"attn_mask": "float2d", "need_weights": False}),
    "3d-mask": ({}, {"attn_mask": "float3d"}),
    "3d-bool-mask-no-weights": ({}, {"attn_mask": "bool3d", "need_weights": False}),
    "padding": ({}, {"key_padding_mask": "padding"}),
    "padding-no-weights": ({"batch_first": True}, {"key_padding_mask": "padding", "need_weights": False}),
    "float-padding-and-mask": ({}, {"key_padding_mask": "float_padding", "attn_mask": "float2d",
                                    "need_weights": False}),
    "causal-hint": ({}, {"self": True, "attn_mask": "causal", "is_causal": True, "need_weights": False}),
    "causal-hint-with-weights": ({}, {"self": True, "attn_mask": "causal", "is_causal": True}),
    "bias-kv-zero-attn": ({"add_bias_kv": True, "add_zero_attn": True}, {"attn_mask": "float2d",
                                                                         "key_padding_mask": "float_padding"}),
    "bias-kv-no-weights": ({"add_bias_kv": True}, {"need_weights": False}),
}


def _run_case(torch, ctor, fwd, dtype, rng):
    fwd = dict(fwd)
    unbatched, self_attention = fwd.pop("unbatched", False), fwd.pop("self", False)
    masks = _masks(rng)
    torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
    theirs = torch.nn.MultiheadAttention(E, HEADS, **ctor).to(torch_dtype)
    ours = nn.MultiheadAttention(E, HEADS, **ctor, dtype=dtype)
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in state.items()]
    ours.load_state_dict(state)

    batch_first = ctor.get("batch_first", False)
    src = L if self_attention else S
    shapes = [(L, E), (src, ctor.get("kdim", E)), (src, ctor.get("vdim", E))]
    if not unbatched:
        shapes = [(N,) + s if batch_first else (s[0], N, s[1]) for s in shapes]
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes[:1 if self_attention else 3]]
    t_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    n_in = [tn.tensor(a, requires_grad=True) for a in arrays]
    if self_attention:
        t_in, n_in = t_in * 3, n_in * 3
    t_kw, n_kw = {}, {}
    for key, value in fwd.items():
        if key in ("attn_mask", "key_padding_mask"):
            mask = masks[value][:src] if value == "causal" else masks[value]
            if unbatched and key == "key_padding_mask":
                mask = mask[0]
            t_kw[key], n_kw[key] = torch.tensor(mask), tn.tensor(mask)
        else:
            t_kw[key] = n_kw[key] = value
    t_out, t_weights = theirs(*t_in, **t_kw)
    n_out, n_weights = ours(*n_in, **n_kw)
    tol = TOL[dtype]
    np.testing.assert_allclose(n_out.numpy(), t_out.detach().numpy(), **tol)
    if t_weights is None:
        assert n_weights is None
    else:
        np.testing.assert_allclose(n_weights.numpy(), t_weights.detach().numpy(), **tol)
    grad = rng.standard_normal(tuple(t_out.shape)).astype(dtype)
    (t_out * torch.tensor(grad)).sum().backward()
    (n_out * tn.tensor(grad)).sum().backward()
    for i, (t, n) in enumerate(zip(t_in, n_in)):
        np.testing.assert_allclose(n.grad.numpy(), t.grad.numpy(), err_msg=f"grad of input {i}", **tol)
    for (name, tp), (_, np_) in zip(theirs.named_parameters(), ours.named_parameters()):
        np.testing.assert_allclose(np_.grad.numpy(), tp.grad.numpy(), err_msg=f"grad of {name}", **tol)


@pytest.mark.parity
@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
@pytest.mark.parametrize("case", list(CASES))
def test_multihead_attention_matches_pytorch(case, rng):
    torch = pytest.importorskip("torch")
    _run_case(torch, *CASES[case], np.float64, rng)


@pytest.mark.parity
@pytest.mark.parametrize("case", ["plain", "no-weights", "padding-no-weights", "kdim-vdim"])
def test_multihead_attention_matches_pytorch_float32(case, rng):
    torch = pytest.importorskip("torch")
    _run_case(torch, *CASES[case], np.float32, rng)


@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_passes_gradcheck(need_weights, rng):
    mha = nn.MultiheadAttention(4, 2, dtype=tn.float64)
    with tn.no_grad():  # nonzero biases, so their paths are exercised too
        mha.in_proj_bias.copy_(rng.standard_normal(12))
    q = tn.tensor(rng.standard_normal((3, 2, 4)), requires_grad=True)
    k = tn.tensor(rng.standard_normal((4, 2, 4)), requires_grad=True)
    v = tn.tensor(rng.standard_normal((4, 2, 4)), requires_grad=True)
    mask = tn.tensor(rng.standard_normal((3, 4)))
    assert gradcheck(lambda q, k, v: mha(q, k, v, attn_mask=mask, need_weights=need_weights)[0], [q, k, v])


def test_self_attention_packed_projection_passes_gradcheck_and_gradgradcheck(rng):
    """query is key is value takes the one-matmul path (UnbindQKV); check it to second order."""
    mha = nn.MultiheadAttention(4, 2, dtype=tn.float64)
    with tn.no_grad():
        mha.in_proj_bias.copy_(rng.standard_normal(12))
    x = tn.tensor(rng.standard_normal((3, 1, 4)), requires_grad=True)
    assert gradcheck(lambda x: mha(x, x, x, need_weights=False)[0], [x])
    assert gradgradcheck(lambda x: mha(x, x, x, need_weights=False)[0], [x])


def test_initialisation():
    mha = nn.MultiheadAttention(16, 4)
    bound = np.sqrt(6.0 / (16 + 48))             # xavier_uniform on the (3E, E) packed weight
    w = mha.in_proj_weight.numpy()
    assert w.shape == (48, 16) and np.abs(w).max() <= bound and w.std() > bound / 3
    assert not mha.in_proj_bias.numpy().any() and not mha.out_proj.bias.numpy().any()
    assert mha.head_dim == 4


def test_separate_projection_weights_when_kdim_or_vdim_differ():
    mha = nn.MultiheadAttention(8, 2, kdim=3, vdim=5)
    assert mha.in_proj_weight is None
    assert [name for name, _ in mha.named_parameters()] == [
        "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]


def test_attention_weights_are_probabilities(rng):
    mha = nn.MultiheadAttention(E, HEADS).eval()
    q = tn.tensor(rng.standard_normal((L, N, E)).astype(np.float32))
    k = tn.tensor(rng.standard_normal((S, N, E)).astype(np.float32))
    mask = _masks(rng)["bool2d"]
    _, weights = mha(q, k, k, attn_mask=tn.tensor(mask))
    assert weights.shape == (N, L, S)
    np.testing.assert_allclose(weights.numpy().sum(-1), 1.0, rtol=1e-5)
    assert np.all(weights.numpy()[:, mask] == 0)  # masked keys get no weight


def test_dropout_on_attention_only_in_training(rng):
    mha = nn.MultiheadAttention(E, HEADS, dropout=0.5)
    x = tn.tensor(rng.standard_normal((L, N, E)).astype(np.float32))
    mha.eval()
    first, second = mha(x, x, x)[0].numpy(), mha(x, x, x)[0].numpy()
    np.testing.assert_array_equal(first, second)
    mha.train()
    assert not np.allclose(mha(x, x, x)[0].numpy(), first)


# --- errors -------------------------------------------------------------------------------
def _qkv():
    return tn.randn(L, N, E), tn.randn(S, N, E), tn.randn(S, N, E)


def test_bad_2d_mask_shape_names_both_shapes():
    mha = nn.MultiheadAttention(E, HEADS)
    with pytest.raises(ValueError, match=r"2D attn_mask is \(5, 5\), but should be \(5, 7\)"):
        mha(*_qkv(), attn_mask=tn.zeros(L, L))


def test_bad_3d_mask_shape_names_both_shapes():
    mha = nn.MultiheadAttention(E, HEADS)
    with pytest.raises(ValueError, match=r"3D attn_mask is \(3, 5, 7\), but should be \(6, 5, 7\)"):
        mha(*_qkv(), attn_mask=tn.zeros(N, L, S), need_weights=False)


def test_mask_rank_not_supported():
    mha = nn.MultiheadAttention(E, HEADS)
    with pytest.raises(ValueError, match="dimension 4 is not supported"):
        mha(*_qkv(), attn_mask=tn.zeros(1, 1, L, S))


def test_bad_key_padding_mask_shape():
    mha = nn.MultiheadAttention(E, HEADS)
    with pytest.raises(ValueError, match=r"key_padding_mask shape of \(3, 7\), but got \(7, 3\)"):
        mha(*_qkv(), key_padding_mask=tn.zeros(S, N, dtype=tn.bool))


def test_integer_mask_rejected():
    mha = nn.MultiheadAttention(E, HEADS)
    with pytest.raises(TypeError, match="only bool and floating types of attn_mask"):
        mha(*_qkv(), attn_mask=tn.zeros(L, S, dtype=tn.int64))


def test_wrong_embedding_dim():
    mha = nn.MultiheadAttention(E, HEADS)
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="expecting query embedding dimension of 8, but got 6"):
        mha(tn.randn(L, N, 6), k, v)


def test_causal_hint_needs_a_mask():
    mha = nn.MultiheadAttention(E, HEADS)
    x = tn.randn(L, N, E)
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        mha(x, x, x, is_causal=True)


def test_embed_dim_must_divide_into_heads():
    with pytest.raises(ValueError, match=r"embed_dim \(10\) must be divisible by num_heads \(4\)"):
        nn.MultiheadAttention(10, 4)
