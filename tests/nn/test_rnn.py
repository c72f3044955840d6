"""RNN, LSTM, GRU and their cells: PyTorch parity, the fused scans against their
step-by-step references, gradcheck, dropout between layers, init and errors."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
import tinynn.nn as nn
from tinynn.autograd import gradcheck, gradgradcheck
from tinynn.nn.rnn import (GRUScan, LSTMScan, RNNScan, gru_scan_reference, lstm_scan_reference,
                           rnn_scan_reference)

TOL = {np.float64: dict(rtol=1e-6, atol=1e-9), np.float32: dict(rtol=1e-4, atol=1e-5)}


# --- helpers ---------------------------------------------------------------------------
def _pair(torch, array, dtype, grad=True):
    """The same values as a torch tensor and a tinynn tensor (both leaves)."""
    t = torch.tensor(np.asarray(array, dtype=dtype), requires_grad=grad)
    return t, tn.tensor(np.asarray(array, dtype=dtype), requires_grad=grad)


def _copy_weights(torch_module, tinynn_module):
    """torch -> tinynn through load_state_dict (NumPy arrays); keys and shapes must match."""
    state = {k: v.detach().numpy() for k, v in torch_module.state_dict().items()}
    ours = tinynn_module.state_dict()
    assert list(ours) == list(state)
    assert [tuple(v.shape) for v in ours.values()] == [v.shape for v in state.values()]
    tinynn_module.load_state_dict(state)


def _close(ours, theirs, dtype, what=""):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), err_msg=what, **TOL[dtype])


def _flatten(outputs):
    """(output, h) or (output, (h, c)) -> [output, h, (c)]."""
    out, state = outputs
    return [out] + (list(state) if isinstance(state, tuple) else [state])


def _check_parity(torch, torch_module, our_module, inputs, dtype, rng):
    """Forward every output, then backward a random weighting of all of them and compare
    the gradients of the inputs and of every parameter."""
    _copy_weights(torch_module, our_module)
    t_outs = _flatten(torch_module(*[p[0] for p in inputs]))
    n_outs = _flatten(our_module(*[p[1] for p in inputs]))
    assert len(t_outs) == len(n_outs)
    t_loss, n_loss = 0, 0
    for i, (t, n) in enumerate(zip(t_outs, n_outs)):
        assert tuple(n.shape) == tuple(t.shape), f"output {i}: {n.shape} vs {tuple(t.shape)}"
        _close(n, t, dtype, f"output {i}")
        weight = rng.standard_normal(tuple(t.shape)).astype(dtype)
        t_loss = t_loss + (t * torch.tensor(weight)).sum()
        n_loss = n_loss + (n * tn.tensor(weight)).sum()
    t_loss.backward()
    n_loss.backward()
    for i, (t, n) in enumerate(_leaves(inputs)):
        _close(n.grad, t.grad, dtype, f"grad of input {i}")
    for (name, tp), (our_name, np_) in zip(torch_module.named_parameters(), our_module.named_parameters()):
        assert name == our_name
        _close(np_.grad, tp.grad, dtype, f"grad of {name}")


def _leaves(inputs):
    """The (torch, tinynn) leaf pairs of the inputs; an LSTM state (h0, c0) gives two."""
    for t, n in inputs:
        yield from (zip(t, n) if isinstance(t, tuple) else [(t, n)])


def _inputs_for(torch, mode, cfg, dtype, rng):
    """Input (and initial state, if cfg asks) as torch/tinynn pairs."""
    L, N, I, H = 5, 3, 4, 6
    directions = 2 if cfg.get("bidirectional") else 1
    layers = cfg.get("num_layers", 1)
    if cfg.get("unbatched"):
        x_shape, h_shape = (L, I), (layers * directions, H)
    else:
        x_shape = (N, L, I) if cfg.get("batch_first") else (L, N, I)
        h_shape = (layers * directions, N, H)
    inputs = [_pair(torch, rng.standard_normal(x_shape), dtype)]
    if cfg.get("initial_state"):
        h0 = _pair(torch, rng.standard_normal(h_shape), dtype)
        if mode == "LSTM":
            c0 = _pair(torch, rng.standard_normal(h_shape), dtype)
            inputs.append(((h0[0], c0[0]), (h0[1], c0[1])))
        else:
            inputs.append(h0)
    return inputs


def _module_args(cfg):
    return {k: v for k, v in cfg.items() if k in ("num_layers", "bidirectional", "batch_first", "bias")}


MODES = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("GRU", {})]
CONFIGS = [
    {},
    {"num_layers": 2},
    {"bidirectional": True, "initial_state": True},
    {"num_layers": 2, "bidirectional": True, "batch_first": True, "initial_state": True},
    {"unbatched": True, "initial_state": True, "bidirectional": True, "bias": False},
    {"unbatched": True},
]


def _mode_id(m):
    return m[0] + ("-" + m[1]["nonlinearity"] if m[1] else "")


def _config_id(cfg):
    return "-".join(f"{k}" for k in cfg) or "default"


# --- parity with PyTorch --------------------------------------------------------------------
@pytest.mark.parity
@pytest.mark.parametrize("mode", MODES, ids=_mode_id)
@pytest.mark.parametrize("cfg", CONFIGS, ids=_config_id)
def test_recurrent_layers_match_pytorch(mode, cfg, rng):
    torch = pytest.importorskip("torch")
    name, extra = mode
    torch_module = getattr(torch.nn, name)(4, 6, **_module_args(cfg), **extra).double()
    our_module = getattr(nn, name)(4, 6, **_module_args(cfg), **extra, dtype=tn.float64)
    inputs = _inputs_for(torch, name, cfg, np.float64, rng)
    _check_parity(torch, torch_module, our_module, inputs, np.float64, rng)


@pytest.mark.parity
@pytest.mark.parametrize("mode", MODES, ids=_mode_id)
def test_recurrent_layers_match_pytorch_float32(mode, rng):
    torch = pytest.importorskip("torch")
    name, extra = mode
    cfg = {"num_layers": 2, "bidirectional": True, "initial_state": True}
    torch_module = getattr(torch.nn, name)(4, 6, **_module_args(cfg), **extra)
    our_module = getattr(nn, name)(4, 6, **_module_args(cfg), **extra)
    inputs = _inputs_for(torch, name, cfg, np.float32, rng)
    _check_parity(torch, torch_module, our_module, inputs, np.float32, rng)


@pytest.mark.parity
@pytest.mark.parametrize("name,extra", [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}), ("LSTMCell", {}),
                                        ("GRUCell", {}), ("GRUCell", {"bias": False})])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
def test_cells_match_pytorch(name, extra, batched, with_state, rng):
    torch = pytest.importorskip("torch")
    torch_cell = getattr(torch.nn, name)(4, 6, **extra).double()
    our_cell = getattr(nn, name)(4, 6, **extra, dtype=tn.float64)
    lead = (3,) if batched else ()
    inputs = [_pair(torch, rng.standard_normal(lead + (4,)), np.float64)]
    if with_state:
        h = _pair(torch, rng.standard_normal(lead + (6,)), np.float64)
        if name == "LSTMCell":
            c = _pair(torch, rng.standard_normal(lead + (6,)), np.float64)
            inputs.append(((h[0], c[0]), (h[1], c[1])))
        else:
            inputs.append(h)
    _copy_weights(torch_cell, our_cell)
    t_out = torch_cell(*[p[0] for p in inputs])
    n_out = our_cell(*[p[1] for p in inputs])
    t_outs = list(t_out) if isinstance(t_out, tuple) else [t_out]
    n_outs = list(n_out) if isinstance(n_out, tuple) else [n_out]
    t_loss = n_loss = 0
    for t, n in zip(t_outs, n_outs):
        assert tuple(n.shape) == tuple(t.shape)
        _close(n, t, np.float64)
        weight = rng.standard_normal(tuple(t.shape))
        t_loss, n_loss = t_loss + (t * torch.tensor(weight)).sum(), n_loss + (n * tn.tensor(weight)).sum()
    t_loss.backward()
    n_loss.backward()
    _close(inputs[0][1].grad, inputs[0][0].grad, np.float64, "grad of input")
    for (pname, tp), (_, np_) in zip(torch_cell.named_parameters(), our_cell.named_parameters()):
        _close(np_.grad, tp.grad, np.float64, f"grad of {pname}")


@pytest.mark.parity
@pytest.mark.parametrize("cfg", [{}, {"num_layers": 2, "bidirectional": True}, {"batch_first": True, "bias": False}],
                         ids=_config_id)
def test_lstm_with_projection_matches_pytorch(cfg, rng):
    torch = pytest.importorskip("torch")
    torch_module = torch.nn.LSTM(4, 6, proj_size=3, **cfg).double()
    our_module = nn.LSTM(4, 6, proj_size=3, **cfg, dtype=tn.float64)
    states = (2 if cfg.get("bidirectional") else 1) * cfg.get("num_layers", 1)
    x = _pair(torch, rng.standard_normal((3, 5, 4) if cfg.get("batch_first") else (5, 3, 4)), np.float64)
    h0 = _pair(torch, rng.standard_normal((states, 3, 3)), np.float64)   # h has proj_size features
    c0 = _pair(torch, rng.standard_normal((states, 3, 6)), np.float64)   # c keeps hidden_size
    _check_parity(torch, torch_module, our_module, [x, ((h0[0], c0[0]), (h0[1], c0[1]))], np.float64, rng)


@pytest.mark.parity
def test_state_dict_keys_match_pytorch_for_deep_bidirectional_lstm():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.LSTM(3, 5, num_layers=3, bidirectional=True, bias=False).state_dict()
    ours = nn.LSTM(3, 5, num_layers=3, bidirectional=True, bias=False).state_dict()
    assert [(k, tuple(v.shape)) for k, v in ours.items()] == [(k, tuple(v.shape)) for k, v in theirs.items()]


# --- the fused scans against their references (no PyTorch needed) ---------------------------
def _scan_cases(rng, L=4, N=3, H=5, dtype=np.float64):

    def t(*shape, grad=True):
        return tn.tensor(rng.standard_normal(shape).astype(dtype) * 0.7, requires_grad=grad)
    return {
        "rnn-tanh": (lambda xw, h0, w, rev: RNNScan.apply(xw, h0, w, "tanh", rev),
                     lambda xw, h0, w, rev: rnn_scan_reference(xw, h0, w, "tanh", rev),
                     [t(L, N, H), t(N, H), t(H, H)]),
        "rnn-relu": (lambda xw, h0, w, rev: RNNScan.apply(xw, h0, w, "relu", rev),
                     lambda xw, h0, w, rev: rnn_scan_reference(xw, h0, w, "relu", rev),
                     [t(L, N, H), t(N, H), t(H, H)]),
        "lstm": (lambda xw, h0, c0, w, rev: LSTMScan.apply(xw, h0, c0, w, None, rev),
                 lambda xw, h0, c0, w, rev: lstm_scan_reference(xw, h0, c0, w, None, rev),
                 [t(L, N, 4 * H), t(N, H), t(N, H), t(4 * H, H)]),
        "lstm-proj": (lambda xw, h0, c0, w, w_hr, rev: LSTMScan.apply(xw, h0, c0, w, w_hr, rev),
                      lambda xw, h0, c0, w, w_hr, rev: lstm_scan_reference(xw, h0, c0, w, w_hr, rev),
                      [t(L, N, 4 * H), t(N, 2), t(N, H), t(4 * H, 2), t(2, H)]),
        "gru": (lambda xw, h0, w, b, rev: GRUScan.apply(xw, h0, w, b, rev),
                lambda xw, h0, w, b, rev: gru_scan_reference(xw, h0, w, b, rev),
                [t(L, N, 3 * H), t(N, H), t(3 * H, H), t(3 * H)]),
    }


@pytest.mark.parametrize("name", ["rnn-tanh", "rnn-relu", "lstm", "lstm-proj", "gru"])
@pytest.mark.parametrize("reverse", [False, True])
def test_fused_scan_matches_step_by_step_reference(name, reverse, rng):
    fused, reference, inputs = _scan_cases(rng)[name]
    outs_fused = fused(*inputs, reverse)
    outs_ref = reference(*inputs, reverse)
    weights = [tn.tensor(rng.standard_normal(o.shape)) for o in outs_ref]
    grads = []
    for outs in (outs_fused, outs_ref):
        loss = sum((o * w).sum() for o, w in zip(outs, weights))
        grads.append(tn.autograd.grad(loss, inputs))
    for a, b in zip(outs_fused, outs_ref):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
    for i, (a, b) in enumerate(zip(*grads)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12, err_msg=f"input {i}")


@pytest.mark.parametrize("name", ["rnn-tanh", "lstm", "lstm-proj", "gru"])
def test_fused_scans_pass_gradcheck(name, rng):
    fused, _, inputs = _scan_cases(rng)[name]
    for reverse in (False, True):
        assert gradcheck(lambda *a: fused(*a, reverse), inputs)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_fused_scans_are_twice_differentiable(name, rng):
    """create_graph=True differentiates the reference, so second derivatives are exact."""
    fused, _, inputs = _scan_cases(rng, L=2, N=1, H=2)[name]  # small: gradgradcheck is O(n^2)
    assert gradgradcheck(lambda *a: fused(*a, False)[0], inputs)


def test_lstm_cell_passes_gradcheck(rng):
    cell = nn.LSTMCell(3, 4, dtype=tn.float64)
    x = tn.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    h = tn.tensor(rng.standard_normal((2, 4)), requires_grad=True)
    c = tn.tensor(rng.standard_normal((2, 4)), requires_grad=True)
    assert gradcheck(lambda x, h, c: cell(x, (h, c)), [x, h, c])


def test_gru_layer_passes_gradcheck(rng):
    gru = nn.GRU(3, 4, num_layers=2, bidirectional=True, dtype=tn.float64)
    x = tn.tensor(rng.standard_normal((3, 2, 3)), requires_grad=True)
    h = tn.tensor(rng.standard_normal((4, 2, 4)), requires_grad=True)
    assert gradcheck(lambda x, h: gru(x, h), [x, h])


# --- behaviour -------------------------------------------------------------------------
def test_dropout_between_layers_only_in_training(rng):
    x = tn.tensor(rng.standard_normal((6, 2, 3)).astype(np.float32))
    with_dropout = nn.LSTM(3, 8, num_layers=2, dropout=0.5)
    without = nn.LSTM(3, 8, num_layers=2)
    without.load_state_dict(with_dropout.state_dict())
    with_dropout.eval()
    np.testing.assert_array_equal(with_dropout(x)[0].numpy(), without(x)[0].numpy())
    with_dropout.train()
    assert not np.allclose(with_dropout(x)[0].numpy(), without(x)[0].numpy())


def test_initialisation_is_uniform_in_inverse_sqrt_hidden():
    gru = nn.GRU(5, 16, num_layers=2, bidirectional=True)
    bound = 1 / np.sqrt(16)
    for name, p in gru.named_parameters():
        values = p.numpy()
        assert values.dtype == np.float32
        assert np.all(np.abs(values) <= bound), name
        assert values.std() > bound / 3, name  # spread over the range, not constant


def test_output_shapes():
    lstm = nn.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True)
    out, (h, c) = lstm(tn.randn(4, 7, 3))
    assert out.shape == (4, 7, 10) and h.shape == (4, 4, 5) and c.shape == (4, 4, 5)
    out, h = nn.GRU(3, 5)(tn.randn(7, 3))
    assert out.shape == (7, 5) and h.shape == (1, 5)


def test_lstm_final_state_is_last_output():
    lstm = nn.LSTM(3, 5)
    out, (h, _) = lstm(tn.randn(6, 2, 3))
    np.testing.assert_array_equal(out.numpy()[-1], h.numpy()[0])


# --- errors ---------------------------------------------------------------------------------
def test_wrong_input_size_names_both_sizes():
    with pytest.raises(RuntimeError, match=r"input_size.*Expected 4, got 5"):
        nn.LSTM(4, 6)(tn.randn(3, 2, 5))


def test_wrong_input_rank():
    with pytest.raises(ValueError, match="2D or 3D.*4D"):
        nn.GRU(4, 6)(tn.randn(3, 2, 1, 4))


def test_wrong_hidden_shape_names_the_shapes():
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 2, 6\), got \(1, 3, 6\)"):
        nn.RNN(4, 6)(tn.randn(3, 2, 4), tn.randn(1, 3, 6))


def test_unbatched_input_with_batched_state():
    with pytest.raises(RuntimeError, match="unbatched 2-D input, hx should also be 2-D"):
        nn.GRU(4, 6)(tn.randn(3, 4), tn.randn(1, 1, 6))


def test_lstm_state_must_be_a_pair():
    with pytest.raises(ValueError, match=r"\(h_0, c_0\)"):
        nn.LSTM(4, 6)(tn.randn(3, 2, 4), (tn.randn(1, 2, 6),))


def test_cell_wrong_input_size():
    with pytest.raises(RuntimeError, match="inconsistent input_size: got 3 expected 4"):
        nn.GRUCell(4, 6)(tn.randn(2, 3))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(4, 6, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout"):
        nn.LSTM(4, 6, dropout=1.5)
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        nn.LSTM(4, 6, proj_size=6)
    with pytest.raises(ValueError, match="only supported for LSTM"):
        nn.rnn.RNNBase("GRU", 4, 6, proj_size=3)


def test_dropout_with_one_layer_warns():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        nn.GRU(4, 6, dropout=0.2)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_inference_under_no_grad_records_nothing(name, rng):
    layer = getattr(nn, name)(3, 4, num_layers=2, bidirectional=True)
    x = tn.tensor(rng.standard_normal((5, 2, 3)).astype(np.float32))
    expected = layer(x)[0].numpy()
    with tn.no_grad():
        out = layer(x)[0]
    assert out.grad_fn is None and not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_frozen_weights_still_give_input_gradients(name, rng):
    layer = getattr(nn, name)(3, 4, dtype=tn.float64)
    x = tn.tensor(rng.standard_normal((5, 2, 3)), requires_grad=True)
    layer(x)[0].sum().backward()
    expected = x.grad.numpy().copy()
    layer.zero_grad()
    layer.requires_grad_(False)
    x.grad = None
    layer(x)[0].sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)
    assert all(p.grad is None for p in layer.parameters())
