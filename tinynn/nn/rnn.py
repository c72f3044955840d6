"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` and their single-step cells.

PyTorch's layers, parameters and gate orders:

    RNN   h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)            (or relu)
    LSTM  i, f, g, o = split(x W_ih^T + b_ih + h W_hh^T + b_hh)    gates in that order
          c' = sigmoid(f) * c + sigmoid(i) * tanh(g);  h' = sigmoid(o) * tanh(c')
    GRU   r, z, n gates:  r = sigmoid(x W_ir + b_ir + h W_hr + b_hr)
                          z = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
                          n = tanh(x W_in + b_in + r * (h W_hn + b_hn))
                          h' = (1 - z) * n + z * h

How it is made fast. Written with one tinynn op per arithmetic step, an LSTM
step is about fifteen ops, and at the sizes people train on a CPU (hidden 128,
batch 32) the Python cost of those ops outweighs the arithmetic. So:

1. the input projection ``x W_ih^T + b`` of *all* time steps is one big matmul,
   made with ordinary tinynn ops (its gradient flows through them);
2. the recurrence over time is ONE ``Function`` per layer and direction (a
   "scan"): its forward loops over the steps on raw arrays and keeps the gate
   activations; its backward is backpropagation through time on raw arrays, with
   the recurrent weight gradient summed in a single matmul at the end.

Each scan also has a *reference*: the same recurrence written step by step with
tinynn ops. It is the readable statement of the maths, the tests compare the scan
against it, and it is what the scan's backward differentiates when a graph of the
gradient is asked for (``create_graph=True``), so double backward works too.
"""
from __future__ import annotations

import contextlib
import math
import warnings

from ..autograd.function import Function
from ..autograd.grad_mode import _state as _grad_state
from ..backend.device import get_array_module
from ..tensor import Tensor
from .. import ops
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]


# =====================================================================================
# Scans: one Function for the whole recurrence of one layer in one direction.
#   xw  (L, N, G*H)  the input projection of every step (biases included, except
#                    GRU's b_hh, which sits inside r * (h W_hn^T + b_hn))
#   h0  (N, H)       the initial hidden state (and c0 for the LSTM)
#   w_hh (G*H, H)    the recurrent weights
# Outputs: every step's hidden state (L, N, H), then the final state(s).
# =====================================================================================
def _time_steps(length: int, reverse: bool):
    return range(length - 1, -1, -1) if reverse else range(length)


def _previous_states(xp, out, h0, reverse: bool):
    """The hidden state each step started from, stacked in time order: step t of a
    forward scan starts from out[t - 1] (h0 at t = 0), of a reverse scan from out[t + 1]."""
    if reverse:
        return xp.concatenate([out[1:], h0[None]], axis=0)
    return xp.concatenate([h0[None], out[:-1]], axis=0)


def _overflow_to_inf_is_fine(xp):
    """exp(-a) may overflow to inf for a very negative gate; 1 / (1 + inf) = 0 is then
    the right sigmoid, so NumPy's overflow warning is silenced."""
    return xp.errstate(over="ignore") if hasattr(xp, "errstate") else contextlib.nullcontext()


def _sigmoid_of_negated_(xp, a):
    """In place: a <- 1 / (1 + e^a), i.e. sigmoid(-a); callers negate (and scale) first."""
    xp.exp(a, out=a)
    a += 1.0
    xp.reciprocal(a, out=a)
    return a


def _sum_over_steps_matmul(d_gates, h_prev):
    """sum_t d_gates[t]^T @ h_prev[t], as one (G*H, L*N) @ (L*N, H) matmul."""
    return d_gates.reshape(-1, d_gates.shape[-1]).T @ h_prev.reshape(-1, h_prev.shape[-1])


def _backward_by_reference(ctx, reference, inputs, grad_outputs):
    """Gradients with a graph of their own (``create_graph=True``): run the step-by-step
    reference on the saved input tensors and differentiate that, so that higher-order
    derivatives flow through ordinary ops."""
    from ..autograd import grad

    wanted = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and ctx.needs_input_grad[i]]
    outputs = reference(*inputs)
    grads = grad(outputs, [inputs[i] for i in wanted], list(grad_outputs), create_graph=True, allow_unused=True)
    result = [None] * len(ctx.needs_input_grad)
    for i, g in zip(wanted, grads):
        result[i] = g
    return tuple(result)


class RNNScan(Function):
    """h_t = act(xw_t + h_{t-1} W_hh^T) for act = tanh or relu."""

    @staticmethod
    def forward(ctx, xw, h0, w_hh, nonlinearity: str, reverse: bool):
        xp = get_array_module(xw)
        out = xp.empty(xw.shape[:2] + (w_hh.shape[1],), dtype=xw.dtype)
        w_hh_t = w_hh.T
        h = h0
        for t in _time_steps(xw.shape[0], reverse):
            pre = h @ w_hh_t
            pre += xw[t]
            h = xp.tanh(pre, out=out[t]) if nonlinearity == "tanh" else xp.maximum(pre, 0, out=out[t])
        ctx.nonlinearity, ctx.reverse = nonlinearity, reverse
        ctx.save_for_backward(xw, h0, w_hh, out)
        return out, h.copy()

    @staticmethod
    def backward(ctx, grad_out, grad_hn):
        xw, h0, w_hh, out = ctx.saved_tensors
        if _grad_state.enabled:
            return _backward_by_reference(ctx, lambda *a: rnn_scan_reference(*a[:3], ctx.nonlinearity, ctx.reverse),
                                          (xw, h0, w_hh, None, None), (grad_out, grad_hn))
        xp = get_array_module(xw.data)
        out_a, w = out.data, w_hh.data
        # act' written from the output: tanh' = 1 - h^2, relu' = [h > 0]
        d_act = 1.0 - out_a * out_a if ctx.nonlinearity == "tanh" else (out_a > 0).astype(out_a.dtype)
        d_pre = xp.empty_like(out_a)
        dh = grad_hn.data.copy()
        for t in _time_steps(out_a.shape[0], not ctx.reverse):  # backward walks time the other way
            dh += grad_out.data[t]
            xp.multiply(dh, d_act[t], out=d_pre[t])     # d pre_t = dh_t * act'(pre_t)
            dh = d_pre[t] @ w                            # d h_{t-1} = d pre_t W_hh
        need = ctx.needs_input_grad
        d_w = _sum_over_steps_matmul(d_pre, _previous_states(xp, out_a, h0.data, ctx.reverse)) if need[2] else None
        return d_pre, dh, d_w, None, None


class LSTMScan(Function):
    """The LSTM recurrence; gates i, f, g, o. Keeps the activated gates, every cell
    state and tanh of it for the backward pass. With a projection ``w_hr`` (P, H)
    (``proj_size``), the hidden state is h_t = (o tanh(c_t)) W_hr^T, of size P."""

    @staticmethod
    def forward(ctx, xw, h0, c0, w_hh, w_hr, reverse: bool):
        xp = get_array_module(xw)
        length, batch = xw.shape[:2]
        hidden = w_hh.shape[0] // 4
        # One exp activates all four gates: sigmoid(a) = 1 / (1 + e^-a) for i, f, o and
        # tanh(a) = 2 sigmoid(2a) - 1 for g (exp is about twice as fast as tanh in NumPy).
        scale = xp.full(4 * hidden, -1.0, dtype=xw.dtype)
        scale[2 * hidden:3 * hidden] = -2.0
        gates = xp.empty_like(xw)                        # activated i, f, g, o of every step
        cells = xp.empty((length, batch, hidden), dtype=xw.dtype)
        tanh_cells = xp.empty_like(cells)
        # o tanh(c_t) of every step; the output itself unless there is a projection
        unprojected = xp.empty_like(cells)
        out = unprojected if w_hr is None else xp.empty((length, batch, w_hr.shape[0]), dtype=xw.dtype)
        w_hh_t = w_hh.T
        h, c = h0, c0
        with _overflow_to_inf_is_fine(xp):
            for t in _time_steps(length, reverse):
                act = xp.matmul(h, w_hh_t, out=gates[t])
                act += xw[t]
                act *= scale
                _sigmoid_of_negated_(xp, act)
                g = act[:, 2 * hidden:3 * hidden]
                g *= 2.0
                g -= 1.0
                i, f, o = act[:, :hidden], act[:, hidden:2 * hidden], act[:, 3 * hidden:]
                c = xp.multiply(f, c, out=cells[t])
                c += i * g                                   # c_t = f c_{t-1} + i g
                tc = xp.tanh(c, out=tanh_cells[t])
                h = xp.multiply(o, tc, out=unprojected[t])   # h_t = o tanh(c_t)
                if w_hr is not None:
                    h = xp.matmul(h, w_hr.T, out=out[t])     # h_t = (o tanh(c_t)) W_hr^T
        ctx.reverse = reverse
        ctx.save_for_backward(xw, h0, c0, w_hh, w_hr, out, gates, cells, tanh_cells, unprojected)
        return out, h.copy(), c.copy()

    @staticmethod
    def backward(ctx, grad_out, grad_hn, grad_cn):
        xw, h0, c0, w_hh, w_hr, out, gates, cells, tanh_cells, unprojected = ctx.saved_tensors
        if _grad_state.enabled:
            return _backward_by_reference(ctx, lambda *a: lstm_scan_reference(*a[:5], ctx.reverse),
                                          (xw, h0, c0, w_hh, w_hr, None), (grad_out, grad_hn, grad_cn))
        xp = get_array_module(xw.data)
        act, c_all, tc_all, w = gates.data, cells.data, tanh_cells.data, w_hh.data
        hidden = act.shape[-1] // 4
        w_r = None if w_hr is None else w_hr.data
        d_projected = None if w_r is None else xp.empty_like(out.data)   # dL/dh_t of every step, for dW_hr
        # Derivatives of the activations, for all steps at once (in place: big temporaries
        # cost page faults): sigmoid' = y (1 - y) for i, f, o and tanh' = 1 - y^2 for g.
        d_act = 1.0 - act
        d_act *= act
        g_all, d_g = act[..., 2 * hidden:3 * hidden], d_act[..., 2 * hidden:3 * hidden]
        xp.multiply(g_all, g_all, out=d_g)
        xp.subtract(1.0, d_g, out=d_g)
        # dL/dc_t through h_t = o tanh(c_t) is dh_t * o (1 - tanh^2 c_t)
        o_dtanh = tc_all * tc_all
        xp.subtract(1.0, o_dtanh, out=o_dtanh)
        o_dtanh *= act[..., 3 * hidden:]
        c_prev_all = _previous_states(xp, c_all, c0.data, ctx.reverse)

        d_gates = xp.empty_like(act)
        dh = grad_hn.data.copy()
        dc = grad_cn.data.copy()
        for t in _time_steps(act.shape[0], not ctx.reverse):
            dh += grad_out.data[t]
            if w_r is not None:                          # back through h_t = u_t W_hr^T: du_t = dh_t W_hr
                d_projected[t] = dh
                dh = dh @ w_r
            dc += dh * o_dtanh[t]
            a, d = act[t], d_gates[t]
            xp.multiply(dc, a[:, 2 * hidden:3 * hidden], out=d[:, :hidden])             # di = dc g
            xp.multiply(dc, c_prev_all[t], out=d[:, hidden:2 * hidden])                 # df = dc c_{t-1}
            xp.multiply(dc, a[:, :hidden], out=d[:, 2 * hidden:3 * hidden])             # dg = dc i
            xp.multiply(dh, tc_all[t], out=d[:, 3 * hidden:])                           # do = dh tanh(c_t)
            d *= d_act[t]                                                               # through the activations
            dc *= a[:, hidden:2 * hidden]                # d c_{t-1} = dc f
            dh = d @ w                                   # d h_{t-1} = d gates W_hh
        need = ctx.needs_input_grad
        d_w = _sum_over_steps_matmul(d_gates, _previous_states(xp, out.data, h0.data, ctx.reverse)) \
            if need[3] else None
        d_w_hr = _sum_over_steps_matmul(d_projected, unprojected.data) if w_r is not None and need[4] else None
        return d_gates, dh, dc, d_w, d_w_hr, None


class GRUScan(Function):
    """The GRU recurrence; gates r, z, n. ``b_hh`` (or None) is added to h W_hh^T
    because r multiplies the whole of h W_hn^T + b_hn."""

    @staticmethod
    def forward(ctx, xw, h0, w_hh, b_hh, reverse: bool):
        xp = get_array_module(xw)
        length, batch = xw.shape[:2]
        hidden = w_hh.shape[1]
        rz = xp.empty((length, batch, 2 * hidden), dtype=xw.dtype)   # activated r, z
        n_all = xp.empty((length, batch, hidden), dtype=xw.dtype)
        hn_all = xp.empty_like(n_all)                                # h W_hn^T + b_hn of each step
        out = xp.empty_like(n_all)
        w_hh_t = w_hh.T
        h = h0
        with _overflow_to_inf_is_fine(xp):
            for t in _time_steps(length, reverse):
                hw = h @ w_hh_t
                if b_hh is not None:
                    hw += b_hh
                x_t = xw[t]
                a = rz[t]
                xp.add(x_t[:, :2 * hidden], hw[:, :2 * hidden], out=a)
                xp.negative(a, out=a)
                _sigmoid_of_negated_(xp, a)              # r, z = sigmoid(x W_i + b_i + h W_h + b_h)
                r, z = a[:, :hidden], a[:, hidden:]
                hn_all[t] = hw[:, 2 * hidden:]
                n = xp.multiply(r, hn_all[t], out=n_all[t])
                n += x_t[:, 2 * hidden:]
                xp.tanh(n, out=n)                        # n = tanh(x W_in + b_in + r (h W_hn + b_hn))
                h_new = xp.subtract(h, n, out=out[t])
                h_new *= z
                h_new += n                               # h' = n + z (h - n) = (1 - z) n + z h
                h = h_new
        ctx.reverse = reverse
        ctx.save_for_backward(xw, h0, w_hh, b_hh, out, rz, n_all, hn_all)
        return out, h.copy()

    @staticmethod
    def backward(ctx, grad_out, grad_hn):
        xw, h0, w_hh, b_hh, out, rz, n_all, hn_all = ctx.saved_tensors
        if _grad_state.enabled:
            return _backward_by_reference(ctx, lambda *a: gru_scan_reference(*a[:4], ctx.reverse),
                                          (xw, h0, w_hh, b_hh, None), (grad_out, grad_hn))
        xp = get_array_module(xw.data)
        rz_a, n_a, hn_a, w = rz.data, n_all.data, hn_all.data, w_hh.data
        hidden = w.shape[1]
        h_prev_all = _previous_states(xp, out.data, h0.data, ctx.reverse)
        d_rz_act = 1.0 - rz_a                            # sigmoid' = y (1 - y), all steps at once
        d_rz_act *= rz_a
        d_n_act = n_a * n_a                              # tanh' = 1 - n^2
        xp.subtract(1.0, d_n_act, out=d_n_act)
        d_x = xp.empty(xw.shape, dtype=xw.dtype)         # gradient of the input projection
        d_hw = xp.empty_like(d_x)                        # gradient of h W_hh^T + b_hh
        dh = grad_hn.data.copy()
        for t in _time_steps(n_a.shape[0], not ctx.reverse):
            dh += grad_out.data[t]
            r, z = rz_a[t, :, :hidden], rz_a[t, :, hidden:]
            dx, dhw = d_x[t], d_hw[t]
            d_n = dx[:, 2 * hidden:]
            xp.subtract(1.0, z, out=d_n)
            d_n *= dh
            d_n *= d_n_act[t]                            # d n_pre = dh (1 - z) tanh'
            xp.multiply(d_n, hn_a[t], out=dx[:, :hidden])                # dr = d n_pre (h W_hn + b_hn)
            xp.subtract(h_prev_all[t], n_a[t], out=dx[:, hidden:2 * hidden])
            dx[:, hidden:2 * hidden] *= dh                               # dz = dh (h - n)
            dx[:, :2 * hidden] *= d_rz_act[t]                            # through the sigmoids
            dhw[:, :2 * hidden] = dx[:, :2 * hidden]
            xp.multiply(d_n, r, out=dhw[:, 2 * hidden:])                 # d(h W_hn + b_hn) = d n_pre r
            dh = dh * z + dhw @ w                        # d h_{t-1}: directly through z h, and through W_hh
        need = ctx.needs_input_grad
        d_w = _sum_over_steps_matmul(d_hw, h_prev_all) if need[2] else None
        d_b = d_hw.sum(axis=(0, 1)) if b_hh is not None and need[3] else None
        return d_x, dh, d_w, d_b, None


# --- references: the same recurrences, one tinynn op per step ---------------------
def rnn_scan_reference(xw, h0, w_hh, nonlinearity: str, reverse: bool):
    act = ops.tanh if nonlinearity == "tanh" else ops.relu
    outs = [None] * xw.shape[0]
    h = h0
    for t in _time_steps(xw.shape[0], reverse):
        h = act(xw[t] + h @ w_hh.T)
        outs[t] = h
    return ops.stack(outs), h


def lstm_scan_reference(xw, h0, c0, w_hh, w_hr, reverse: bool):
    outs = [None] * xw.shape[0]
    h, c = h0, c0
    for t in _time_steps(xw.shape[0], reverse):
        i, f, g, o = ops.chunk(xw[t] + h @ w_hh.T, 4, dim=-1)
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        h = ops.sigmoid(o) * ops.tanh(c)
        if w_hr is not None:
            h = h @ w_hr.T
        outs[t] = h
    return ops.stack(outs), h, c


def gru_scan_reference(xw, h0, w_hh, b_hh, reverse: bool):
    outs = [None] * xw.shape[0]
    h = h0
    for t in _time_steps(xw.shape[0], reverse):
        hw = h @ w_hh.T
        if b_hh is not None:
            hw = hw + b_hh
        x_r, x_z, x_n = ops.chunk(xw[t], 3, dim=-1)
        h_r, h_z, h_n = ops.chunk(hw, 3, dim=-1)
        r = ops.sigmoid(x_r + h_r)
        z = ops.sigmoid(x_z + h_z)
        n = ops.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h
        outs[t] = h
    return ops.stack(outs), h


# =====================================================================================
# Modules
# =====================================================================================
_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _input_projection(x, w_ih, bias):
    """x W_ih^T + bias for every step at once: (L, N, I) -> (L, N, G*H), one matmul."""
    return F.linear(x, w_ih, bias)


def _run_scan(mode: str, x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, reverse: bool):
    """One layer in one direction: returns (output (L, N, H), h_n) or (output, (h_n, c_n))."""
    if mode == "GRU":
        out, h_n = GRUScan.apply(_input_projection(x, w_ih, b_ih), h0, w_hh, b_hh, reverse)
        return out, h_n
    # RNN and LSTM: both biases sit outside any gate product, so they fold into one.
    bias = b_ih if b_hh is None else (b_hh if b_ih is None else b_ih + b_hh)
    xw = _input_projection(x, w_ih, bias)
    if mode == "LSTM":
        out, h_n, c_n = LSTMScan.apply(xw, h0, c0, w_hh, w_hr, reverse)
        return out, (h_n, c_n)
    out, h_n = RNNScan.apply(xw, h0, w_hh, "tanh" if mode == "RNN_TANH" else "relu", reverse)
    return out, h_n


def _init_uniform(params, hidden_size: int) -> None:
    """PyTorch's recurrent init: every weight and bias ~ U(-1/sqrt(hidden), 1/sqrt(hidden))."""
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    for p in params:
        init.uniform_(p, -bound, bound)


def _new_parameter(*shape, device=None, dtype=None) -> Parameter:
    from ..creation import empty
    return Parameter(empty(*shape, device=device, dtype=dtype))


class RNNBase(Module):
    """The machinery shared by ``RNN``, ``LSTM`` and ``GRU``: parameters named
    ``weight_ih_l{k}[_reverse]``, ``weight_hh_l{k}[_reverse]``, ``bias_ih_l{k}[_reverse]``,
    ``bias_hh_l{k}[_reverse]`` in PyTorch's order, input checks, layers and directions."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None) -> None:
        super().__init__()
        if mode not in _GATES:
            raise ValueError(f"Unknown RNN mode '{mode}'")
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError(f"hidden_size must be a positive integer, got {hidden_size!r}")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
        if isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(f"dropout should be a number in range [0, 1] representing the probability of an "
                             f"element being zeroed, got {dropout!r}")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size has to be smaller than hidden_size (got proj_size={proj_size}, "
                             f"hidden_size={hidden_size})")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        gate_size = _GATES[mode] * hidden_size
        num_directions = 2 if bidirectional else 1
        self._flat_weights_names = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else self._state_size * num_directions
            for direction in range(num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = {"weight_ih": (gate_size, layer_input), "weight_hh": (gate_size, self._state_size)}
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                if proj_size:
                    shapes.update(weight_hr=(proj_size, hidden_size))
                for name, shape in shapes.items():
                    setattr(self, name + suffix, _new_parameter(*shape, device=device, dtype=dtype))
                    self._flat_weights_names.append(name + suffix)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_uniform(self.parameters(), self.hidden_size)

    def flatten_parameters(self) -> None:
        """A no-op kept for PyTorch compatibility (cuDNN's weight packing)."""

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _state_size(self) -> int:
        """The size of h: proj_size when the LSTM projects its hidden state, else hidden_size."""
        return self.proj_size or self.hidden_size

    @property
    def all_weights(self) -> list:
        per_layer = 2 + 2 * bool(self.bias) + bool(self.proj_size)
        names = self._flat_weights_names
        return [[getattr(self, n) for n in names[i:i + per_layer]] for i in range(0, len(names), per_layer)]

    def _layer_weights(self, layer: int, direction: int):
        """(w_ih, w_hh, b_ih, b_hh, w_hr) of one layer and direction; None for those it lacks."""
        suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")

        def get(name):
            return getattr(self, name + suffix, None)
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr")

    def _check_input(self, x) -> None:
        name = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: expected a Tensor input, got {type(x).__name__}")
        if x.ndim not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {x.ndim}D tensor instead "
                             f"(shape {tuple(x.shape)})")
        if x.shape[-1] != self.input_size:
            raise RuntimeError(f"{name}: input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {x.shape[-1]} (input shape {tuple(x.shape)})")
        if x.dtype != self.weight_ih_l0.dtype:
            raise TypeError(f"{name}: input dtype {x.dtype} does not match the parameters' dtype "
                            f"{self.weight_ih_l0.dtype}")

    def _check_hidden(self, h, expected: tuple, what: str = "hidden") -> None:
        if tuple(h.shape) != expected:
            raise RuntimeError(f"{type(self).__name__}: Expected {what} size {expected}, got {tuple(h.shape)}")

    def _initial_states(self, hx, batched: bool, batch: int, like):
        """(h0, c0) shaped (num_layers * num_directions, N, H); zeros when hx is None."""
        from ..creation import zeros
        is_lstm = self.mode == "LSTM"
        expected = (self.num_layers * self.num_directions, batch, self._state_size)
        cell_expected = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if hx is None:
            h0 = zeros(*expected, dtype=like.dtype, device=like.device)
            c0 = zeros(*cell_expected, dtype=like.dtype, device=like.device) if is_lstm else None
            return h0, c0
        states = list(hx) if is_lstm else [hx]
        if is_lstm and len(states) != 2:
            raise ValueError("LSTM: hx must be a tuple (h_0, c_0)")
        for s in states:
            if not isinstance(s, Tensor):
                raise TypeError(f"{type(self).__name__}: expected hidden state Tensors, got {type(s).__name__}")
            want = 2 if not batched else 3
            if s.ndim != want:
                raise RuntimeError(f"{type(self).__name__}: For {'batched 3-D' if batched else 'unbatched 2-D'} "
                                   f"input, hx should also be {want}-D but got {s.ndim}-D tensor")
        if not batched:
            states = [s.unsqueeze(1) for s in states]
        for s, what, shape in zip(states, ("hidden", "cell"), (expected, cell_expected)):
            self._check_hidden(s, shape, what)
        return states[0], (states[1] if is_lstm else None)

    def forward(self, input, hx=None):
        self._check_input(input)
        batched = input.ndim == 3
        x = input if batched else input.unsqueeze(1)
        if self.batch_first and batched:
            x = x.transpose(0, 1)
        h0_all, c0_all = self._initial_states(hx, batched, x.shape[1], x)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                c0 = c0_all[index] if c0_all is not None else None
                out, state = _run_scan(self.mode, x, *self._layer_weights(layer, direction), h0_all[index], c0,
                                       reverse=direction == 1)
                outputs.append(out)
                if self.mode == "LSTM":
                    h_n.append(state[0])
                    c_n.append(state[1])
                else:
                    h_n.append(state)
            x = outputs[0] if len(outputs) == 1 else ops.cat(outputs, dim=2)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, p=self.dropout, training=True)
        output = x
        if self.batch_first and batched:
            output = output.transpose(0, 1)
        h_n = ops.stack(h_n)
        c_n = ops.stack(c_n) if c_n else None
        if not batched:
            output = output.squeeze(1)
            h_n = h_n.squeeze(1)
            c_n = c_n.squeeze(1) if c_n is not None else None
        return (output, (h_n, c_n)) if self.mode == "LSTM" else (output, h_n)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu).

    ``RNN(input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True,
    batch_first=False, dropout=0.0, bidirectional=False)``; returns ``output, h_n``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None) -> None:
        modes = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}
        if nonlinearity not in modes:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__(modes[nonlinearity], input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype)


class LSTM(RNNBase):
    """Long short-term memory; gates i, f, g, o (PyTorch's order). Returns ``output, (h_n, c_n)``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device=device, dtype=dtype)


class GRU(RNNBase):
    """Gated recurrent unit; gates r, z, n (PyTorch's order). Returns ``output, h_n``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)


# =====================================================================================
# Cells: one time step, input (N, I) or unbatched (I,)
# =====================================================================================
class RNNCellBase(Module):
    """Parameters ``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H), ``bias_ih``, ``bias_hh``."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        gate_size = _GATES[mode] * hidden_size
        self.weight_ih = _new_parameter(gate_size, input_size, device=device, dtype=dtype)
        self.weight_hh = _new_parameter(gate_size, hidden_size, device=device, dtype=dtype)
        if bias:
            self.bias_ih = _new_parameter(gate_size, device=device, dtype=dtype)
            self.bias_hh = _new_parameter(gate_size, device=device, dtype=dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_uniform(self.parameters(), self.hidden_size)

    def _check(self, input, states) -> bool:
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected a Tensor input, got {type(input).__name__}")
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead "
                             f"(shape {tuple(input.shape)})")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{name}: input has inconsistent input_size: got {input.shape[-1]} expected "
                               f"{self.input_size} (input shape {tuple(input.shape)})")
        for s in states:
            if s is not None and s.ndim != input.ndim:
                raise RuntimeError(f"{name}: Expected hidden to be {input.ndim}D (like the input), got {s.ndim}D "
                                   f"(shape {tuple(s.shape)})")
            if s is not None and s.shape[-1] != self.hidden_size:
                raise RuntimeError(f"{name}: hidden has inconsistent hidden_size: got {s.shape[-1]}, expected "
                                   f"{self.hidden_size}")
            if s is not None and input.ndim == 2 and s.shape[0] != input.shape[0]:
                raise RuntimeError(f"{name}: Input batch size {input.shape[0]} doesn't match hidden batch size "
                                   f"{s.shape[0]}")
        return input.ndim == 2

    def _step(self, input, h, c=None):
        """Run the layer's scan over a single step; h, c are (N, H) or None (zeros)."""
        from ..creation import zeros
        x = input.unsqueeze(0)                                       # (1, N, I)
        if h is None:
            h = zeros(input.shape[0], self.hidden_size, dtype=input.dtype, device=input.device)
        if self.mode == "LSTM" and c is None:
            c = zeros(input.shape[0], self.hidden_size, dtype=input.dtype, device=input.device)
        return _run_scan(self.mode, x, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, None, h, c,
                         False)[1]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity='{self.nonlinearity}'"
        return s


class RNNCell(RNNCellBase):
    """One Elman step: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None) -> None:
        modes = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}
        if nonlinearity not in modes:
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        self.nonlinearity = nonlinearity
        super().__init__(modes[nonlinearity], input_size, hidden_size, bias, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        batched = self._check(input, (hx,))
        if not batched:
            input, hx = input.unsqueeze(0), (hx.unsqueeze(0) if hx is not None else None)
        h = self._step(input, hx)
        return h if batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step; returns ``(h', c')``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__("LSTM", input_size, hidden_size, bias, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        h, c = hx if hx is not None else (None, None)
        batched = self._check(input, (h, c))
        if not batched:
            input = input.unsqueeze(0)
            h, c = (h.unsqueeze(0), c.unsqueeze(0)) if hx is not None else (None, None)
        h, c = self._step(input, h, c)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step; returns h'."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__("GRU", input_size, hidden_size, bias, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        batched = self._check(input, (hx,))
        if not batched:
            input, hx = input.unsqueeze(0), (hx.unsqueeze(0) if hx is not None else None)
        h = self._step(input, hx)
        return h if batched else h.squeeze(0)
