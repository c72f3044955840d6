"""Transformer layers and stacks: PyTorch parity (post-/pre-LN, relu/gelu, masks,
layouts), state_dict keys, deep-copied layers, the causal mask helpers, errors."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
import tinynn.nn as nn
import tinynn.nn.functional as F
from tinynn.nn.transformer import _detect_is_causal_mask

D_MODEL, HEADS, FF = 8, 2, 16


def _copy_and_compare(torch, theirs, ours, t_args, n_args, t_kwargs, n_kwargs, rng, dtype=np.float64):
    """Same weights (through load_state_dict), eval mode; compare output, input and parameter grads."""
    tol = dict(rtol=1e-6, atol=1e-9) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in state.items()]
    ours.load_state_dict(state)
    theirs.eval()
    ours.eval()
    t_out = theirs(*t_args, **t_kwargs)
    n_out = ours(*n_args, **n_kwargs)
    np.testing.assert_allclose(n_out.numpy(), t_out.detach().numpy(), **tol)
    grad = rng.standard_normal(tuple(t_out.shape)).astype(dtype)
    (t_out * torch.tensor(grad)).sum().backward()
    (n_out * tn.tensor(grad)).sum().backward()
    for i, (t, n) in enumerate(zip(t_args, n_args)):
        np.testing.assert_allclose(n.grad.numpy(), t.grad.numpy(), err_msg=f"grad of input {i}", **tol)
    for (name, tp), (our_name, np_) in zip(theirs.named_parameters(), ours.named_parameters()):
        assert name == our_name
        np.testing.assert_allclose(np_.grad.numpy(), tp.grad.numpy(), err_msg=f"grad of {name}", **tol)


def _pair(torch, rng, *shape, dtype=np.float64):
    a = rng.standard_normal(shape).astype(dtype)
    return torch.tensor(a, requires_grad=True), tn.tensor(a, requires_grad=True)


def _mask_pair(torch, array):
    return torch.tensor(array), tn.tensor(array)


def _activation(name, torch):
    """The same activation for both libraries: a name, or a callable/module."""
    if name == "gelu-module":
        return torch.nn.GELU(), nn.GELU()
    if name == "gelu-function":
        return torch.nn.functional.gelu, F.gelu
    return name, name


@pytest.mark.parity
@pytest.mark.filterwarnings("ignore:Support for mismatched")
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation,batch_first", [("relu", False), ("gelu", True), ("gelu-module", False)])
@pytest.mark.parametrize("masks", ["none", "causal+padding", "causal-hint"])
def test_encoder_layer_matches_pytorch(norm_first, activation, batch_first, masks, rng):
    torch = pytest.importorskip("torch")
    t_act, n_act = _activation(activation, torch)
    kwargs = dict(dim_feedforward=FF, norm_first=norm_first, batch_first=batch_first)
    theirs = torch.nn.TransformerEncoderLayer(D_MODEL, HEADS, activation=t_act, **kwargs).double()
    ours = nn.TransformerEncoderLayer(D_MODEL, HEADS, activation=n_act, **kwargs, dtype=tn.float64)
    batch, seq = 3, 5
    x = _pair(torch, rng, *((batch, seq) if batch_first else (seq, batch)), D_MODEL)
    t_kw, n_kw = {}, {}
    if masks != "none":
        causal = nn.Transformer.generate_square_subsequent_mask(seq, dtype=tn.float64).numpy()
        t_kw["src_mask"], n_kw["src_mask"] = _mask_pair(torch, causal)
    if masks == "causal+padding":
        padding = np.zeros((batch, seq), dtype=bool)
        padding[0, -2:] = True
        t_kw["src_key_padding_mask"], n_kw["src_key_padding_mask"] = _mask_pair(torch, padding)
    if masks == "causal-hint":
        t_kw["is_causal"] = n_kw["is_causal"] = True
    _copy_and_compare(torch, theirs, ours, [x[0]], [x[1]], t_kw, n_kw, rng)


@pytest.mark.parity
@pytest.mark.filterwarnings("ignore:Support for mismatched")
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu-function"])
def test_decoder_layer_matches_pytorch(norm_first, activation, rng):
    torch = pytest.importorskip("torch")
    t_act, n_act = _activation(activation, torch)
    theirs = torch.nn.TransformerDecoderLayer(D_MODEL, HEADS, FF, activation=t_act, norm_first=norm_first).double()
    ours = nn.TransformerDecoderLayer(D_MODEL, HEADS, FF, activation=n_act, norm_first=norm_first,
                                      dtype=tn.float64)
    tgt, memory = _pair(torch, rng, 4, 2, D_MODEL), _pair(torch, rng, 6, 2, D_MODEL)
    causal = nn.Transformer.generate_square_subsequent_mask(4, dtype=tn.float64).numpy()
    memory_padding = np.zeros((2, 6), dtype=bool)
    memory_padding[1, :2] = True
    tgt_padding = np.zeros((2, 4), dtype=bool)
    tgt_padding[0, 3] = True
    masks = dict(tgt_mask=causal, memory_mask=rng.standard_normal((4, 6)), tgt_key_padding_mask=tgt_padding,
                 memory_key_padding_mask=memory_padding)
    t_kw = {k: torch.tensor(v) for k, v in masks.items()}
    n_kw = {k: tn.tensor(v) for k, v in masks.items()}
    _copy_and_compare(torch, theirs, ours, [tgt[0], memory[0]], [tgt[1], memory[1]], t_kw, n_kw, rng)


@pytest.mark.parity
def test_decoder_layer_causal_hint_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.TransformerDecoderLayer(D_MODEL, HEADS, FF, batch_first=True).double()
    ours = nn.TransformerDecoderLayer(D_MODEL, HEADS, FF, batch_first=True, dtype=tn.float64)
    tgt, memory = _pair(torch, rng, 2, 4, D_MODEL), _pair(torch, rng, 2, 6, D_MODEL)
    causal = nn.Transformer.generate_square_subsequent_mask(4, dtype=tn.float64).numpy()
    t_kw = dict(tgt_mask=torch.tensor(causal), tgt_is_causal=True)
    n_kw = dict(tgt_mask=tn.tensor(causal), tgt_is_causal=True)
    _copy_and_compare(torch, theirs, ours, [tgt[0], memory[0]], [tgt[1], memory[1]], t_kw, n_kw, rng)


@pytest.mark.parity
@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_matches_pytorch(norm_first, rng):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Transformer(D_MODEL, HEADS, 2, 2, FF, norm_first=norm_first).double()
    ours = nn.Transformer(D_MODEL, HEADS, 2, 2, FF, norm_first=norm_first, dtype=tn.float64)
    src, tgt = _pair(torch, rng, 5, 2, D_MODEL), _pair(torch, rng, 4, 2, D_MODEL)
    causal = nn.Transformer.generate_square_subsequent_mask(4, dtype=tn.float64).numpy()
    padding = np.zeros((2, 5), dtype=bool)
    padding[1, -1] = True
    t_kw = dict(tgt_mask=torch.tensor(causal), src_key_padding_mask=torch.tensor(padding),
                memory_key_padding_mask=torch.tensor(padding))
    n_kw = dict(tgt_mask=tn.tensor(causal), src_key_padding_mask=tn.tensor(padding),
                memory_key_padding_mask=tn.tensor(padding))
    _copy_and_compare(torch, theirs, ours, [src[0], tgt[0]], [src[1], tgt[1]], t_kw, n_kw, rng)


@pytest.mark.parity
@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
def test_transformer_unbatched_batch_first_gelu_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Transformer(D_MODEL, HEADS, 1, 1, FF, batch_first=True, activation="gelu").double()
    ours = nn.Transformer(D_MODEL, HEADS, 1, 1, FF, batch_first=True, activation="gelu", dtype=tn.float64)
    src, tgt = _pair(torch, rng, 5, D_MODEL), _pair(torch, rng, 4, D_MODEL)
    _copy_and_compare(torch, theirs, ours, [src[0], tgt[0]], [src[1], tgt[1]], {}, {}, rng)


@pytest.mark.parity
@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
def test_encoder_stack_float32_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    layer_t = torch.nn.TransformerEncoderLayer(D_MODEL, HEADS, FF, batch_first=True)
    layer_n = nn.TransformerEncoderLayer(D_MODEL, HEADS, FF, batch_first=True)
    theirs = torch.nn.TransformerEncoder(layer_t, 2, norm=torch.nn.LayerNorm(D_MODEL))
    ours = nn.TransformerEncoder(layer_n, 2, norm=nn.LayerNorm(D_MODEL))
    x = _pair(torch, rng, 3, 5, D_MODEL, dtype=np.float32)
    causal = nn.Transformer.generate_square_subsequent_mask(5).numpy()
    _copy_and_compare(torch, theirs, ours, [x[0]], [x[1]], dict(mask=torch.tensor(causal)),
                      dict(mask=tn.tensor(causal)), rng, dtype=np.float32)


@pytest.mark.parity
def test_square_subsequent_mask_matches_pytorch():
    torch = pytest.importorskip("torch")
    ours = nn.Transformer.generate_square_subsequent_mask(4)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours.numpy(), torch.nn.Transformer.generate_square_subsequent_mask(4).numpy())


# --- behaviour without PyTorch -------------------------------------------------------------
def test_stack_holds_independent_deep_copies():
    layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, FF)
    encoder = nn.TransformerEncoder(layer, 3)
    params = [p for l in encoder.layers for p in l.parameters()]
    assert len({id(p) for p in params}) == len(params)
    assert all(p is not q for p, q in zip(layer.parameters(), encoder.layers[0].parameters()))
    np.testing.assert_array_equal(encoder.layers[2].linear1.weight.numpy(), layer.linear1.weight.numpy())
    assert list(encoder.state_dict())[0] == "layers.0.self_attn.in_proj_weight"


def test_transformer_state_dict_names():
    keys = list(nn.Transformer(D_MODEL, HEADS, 1, 1, FF).state_dict())
    for key in ("encoder.layers.0.norm2.bias", "encoder.norm.weight", "decoder.layers.0.multihead_attn.in_proj_bias",
                "decoder.layers.0.norm3.weight", "decoder.norm.bias"):
        assert key in keys


def test_transformer_reinitialises_matrices_xavier_uniform():
    model = nn.Transformer(D_MODEL, HEADS, 1, 1, FF)
    w = model.encoder.layers[0].linear1.weight.numpy()           # (FF, D_MODEL)
    assert np.abs(w).max() <= np.sqrt(6.0 / (FF + D_MODEL))
    assert w.std() > np.sqrt(6.0 / (FF + D_MODEL)) / 3
    # 1-d parameters keep their own init: zero attention biases, LayerNorm weight ones
    assert not model.encoder.layers[0].self_attn.in_proj_bias.numpy().any()
    np.testing.assert_array_equal(model.decoder.norm.weight.numpy(), 1.0)


def test_causal_mask_detection():
    float_causal = nn.Transformer.generate_square_subsequent_mask(4)
    bool_causal = tn.tensor(np.triu(np.ones((4, 4), dtype=bool), 1))
    assert _detect_is_causal_mask(float_causal)
    assert _detect_is_causal_mask(bool_causal)
    assert not _detect_is_causal_mask(tn.zeros(4, 4))
    assert not _detect_is_causal_mask(float_causal, size=5)
    assert not _detect_is_causal_mask(None)
    assert _detect_is_causal_mask(None, is_causal=True)


def test_dropout_only_in_training(rng):
    layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, FF, dropout=0.5)
    x = tn.tensor(rng.standard_normal((5, 2, D_MODEL)).astype(np.float32))
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), layer(x).numpy())
    reference = layer(x).numpy()
    layer.train()
    assert not np.allclose(layer(x).numpy(), reference)


def test_bad_activation_name():
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(D_MODEL, HEADS, FF, activation="tanh")


def test_transformer_batch_mismatch():
    model = nn.Transformer(D_MODEL, HEADS, 1, 1, FF)
    with pytest.raises(RuntimeError, match="batch number of src and tgt must be equal"):
        model(tn.randn(5, 2, D_MODEL), tn.randn(4, 3, D_MODEL))


def test_transformer_feature_mismatch():
    model = nn.Transformer(D_MODEL, HEADS, 1, 1, FF)
    with pytest.raises(RuntimeError, match="feature number of src and tgt must be equal to d_model"):
        model(tn.randn(5, 2, D_MODEL), tn.randn(4, 2, 6))


def test_encoder_layer_bad_mask_shape_is_reported():
    layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, FF)
    with pytest.raises(ValueError, match=r"2D attn_mask is \(4, 4\), but should be \(5, 5\)"):
        layer(tn.randn(5, 2, D_MODEL), src_mask=tn.zeros(4, 4))
