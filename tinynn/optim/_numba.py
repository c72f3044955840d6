"""Fused cpu kernels for the optimizer updates (Numba).

The NumPy updates next to each optimizer (``sgd_update``, ``adam_update``, ...)
are the reference: readable, and they run on CuPy too. But each NumPy operation
is a full pass over the parameter, and an Adam step takes about a dozen of them.
The kernels here do the same arithmetic element by element in a single pass,
reading the parameter, its gradient and its buffers once.

They are registered in the kernel registry as the ``numba`` implementation of
``optim_sgd``, ``optim_adam``, ... on the cpu, so
``tn.backend.kernels.use("optim_adam", "reference")`` switches back to NumPy.
Arrays that are not C-contiguous, or whose dtypes differ from the parameter's,
take the reference path.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..kernels import cpu as _cpu_kernels  # noqa: F401  (sets Numba's cache directory first)
from ..backend.kernels import register
from .adagrad import adagrad_update
from .adam import adam_update, init_adam_state
from .rmsprop import init_rmsprop_state, rmsprop_update
from .sgd import sgd_update

__all__ = ["sgd_update_numba", "adam_update_numba", "rmsprop_update_numba", "adagrad_update_numba"]


def _fusable(param, *arrays) -> bool:
    """Whether the kernels can run: NumPy float arrays, C-contiguous, all of the parameter's dtype and shape."""
    if not isinstance(param, np.ndarray) or param.dtype.kind != "f" or not param.flags.c_contiguous:
        return False
    return all(isinstance(a, np.ndarray) and a.dtype == param.dtype and a.shape == param.shape
               and a.flags.c_contiguous for a in arrays)


def _flat(array: np.ndarray) -> np.ndarray:
    return array.reshape(-1)  # a view: the arrays are C-contiguous


# ---------------------------------------------------------------------------------- SGD

@njit(cache=True, nogil=True, error_model="numpy")
def _sgd_kernel(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step):
    for i in range(param.size):
        g = -grad[i] if maximize else grad[i]
        if weight_decay != 0.0:
            g = g + weight_decay * param[i]
        if momentum != 0.0:
            if first_step:
                b = g                                          # b_1 = g_1
            else:
                b = buf[i] * momentum + (1.0 - dampening) * g  # b = momentum * b + (1 - dampening) * g
            buf[i] = b
            g = g + momentum * b if nesterov else b
        param[i] = param[i] + (-lr) * g


@register("optim_sgd", "numba", device="cpu", priority=10)
def sgd_update_numba(param, grad, state, *, lr, momentum, dampening, weight_decay, nesterov, maximize):
    buf = state.get("momentum_buffer") if momentum != 0 else None
    if not _fusable(param, grad, *(() if buf is None else (buf,))):
        return sgd_update(param, grad, state, lr=lr, momentum=momentum, dampening=dampening,
                          weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
    first_step = momentum != 0 and buf is None
    if first_step:
        buf = state["momentum_buffer"] = np.empty_like(param)
    _sgd_kernel(_flat(param), _flat(grad), _flat(param if buf is None else buf), float(lr), float(momentum),
                float(dampening), float(weight_decay), bool(nesterov), bool(maximize), first_step)


# ---------------------------------------------------------------------------------- Adam / AdamW

@njit(cache=True, nogil=True, error_model="numpy")
def _adam_kernel(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay,
                 amsgrad, maximize, decoupled_weight_decay, bias_correction1, bias_correction2_sqrt):
    step_size = lr / bias_correction1
    weight = 1.0 - beta1
    decay = 1.0 - lr * weight_decay
    for i in range(param.size):
        g = -grad[i] if maximize else grad[i]
        p = param[i]
        if weight_decay != 0.0:
            if decoupled_weight_decay:
                p = p * decay                                  # AdamW: p * (1 - lr * wd)
            else:
                g = g + weight_decay * p                       # Adam: g + wd * p
        m = exp_avg[i]
        if abs(weight) < 0.5:                                  # lerp, rounded as torch.lerp
            m = m + weight * (g - m)
        else:
            m = g - (g - m) * (1.0 - weight)
        exp_avg[i] = m
        v = exp_avg_sq[i] * beta2 + (1.0 - beta2) * g * g      # v = beta2 * v + (1 - beta2) * g^2
        exp_avg_sq[i] = v
        if amsgrad:
            v = max(max_exp_avg_sq[i], v)
            max_exp_avg_sq[i] = v
        denom = math.sqrt(v) / bias_correction2_sqrt + eps
        param[i] = p + (-step_size) * m / denom


@register("optim_adam", "numba", device="cpu", priority=10)
def adam_update_numba(param, grad, state, *, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize,
                      decoupled_weight_decay):
    if not state:
        init_adam_state(param, state, amsgrad)
    buffers = [state["exp_avg"], state["exp_avg_sq"]] + ([state["max_exp_avg_sq"]] if amsgrad else [])
    if not _fusable(param, grad, *buffers):
        return adam_update(param, grad, state, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                           amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
    state["step"] += 1
    step = state["step"]
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    max_exp_avg_sq = state["max_exp_avg_sq"] if amsgrad else exp_avg_sq
    _adam_kernel(_flat(param), _flat(grad), _flat(exp_avg), _flat(exp_avg_sq), _flat(max_exp_avg_sq),
                 float(lr), float(beta1), float(beta2), float(eps), float(weight_decay), bool(amsgrad),
                 bool(maximize), bool(decoupled_weight_decay), 1 - beta1 ** step, (1 - beta2 ** step) ** 0.5)


# ---------------------------------------------------------------------------------- RMSprop

@njit(cache=True, nogil=True, error_model="numpy")
def _rmsprop_kernel(param, grad, square_avg, grad_avg, buf, lr, alpha, eps, weight_decay, momentum, centered,
                    maximize):
    weight = 1.0 - alpha
    for i in range(param.size):
        g = -grad[i] if maximize else grad[i]
        if weight_decay != 0.0:
            g = g + weight_decay * param[i]
        v = square_avg[i] * alpha + (1.0 - alpha) * g * g     # v = alpha * v + (1 - alpha) * g^2
        square_avg[i] = v
        if centered:
            m = grad_avg[i]
            if abs(weight) < 0.5:
                m = m + weight * (g - m)
            else:
                m = g - (g - m) * (1.0 - weight)
            grad_avg[i] = m
            avg = math.sqrt(v - m * m) + eps
        else:
            avg = math.sqrt(v) + eps
        if momentum > 0.0:
            b = buf[i] * momentum + g / avg
            buf[i] = b
            param[i] = param[i] + (-lr) * b
        else:
            param[i] = param[i] + (-lr) * g / avg


@register("optim_rmsprop", "numba", device="cpu", priority=10)
def rmsprop_update_numba(param, grad, state, *, lr, alpha, eps, weight_decay, momentum, centered, maximize):
    if not state:
        init_rmsprop_state(param, state, momentum, centered)
    square_avg = state["square_avg"]
    grad_avg = state["grad_avg"] if centered else square_avg
    buf = state["momentum_buffer"] if momentum > 0 else square_avg
    if not _fusable(param, grad, square_avg, grad_avg, buf):
        return rmsprop_update(param, grad, state, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                              momentum=momentum, centered=centered, maximize=maximize)
    state["step"] += 1
    _rmsprop_kernel(_flat(param), _flat(grad), _flat(square_avg), _flat(grad_avg), _flat(buf), float(lr),
                    float(alpha), float(eps), float(weight_decay), float(momentum), bool(centered), bool(maximize))


# ---------------------------------------------------------------------------------- Adagrad

@njit(cache=True, nogil=True, error_model="numpy")
def _adagrad_kernel(param, grad, square_sum, clr, eps, weight_decay, maximize):
    for i in range(param.size):
        g = -grad[i] if maximize else grad[i]
        if weight_decay != 0.0:
            g = g + weight_decay * param[i]
        s = square_sum[i] + g * g                              # s = s + g^2
        square_sum[i] = s
        param[i] = param[i] + (-clr) * g / (math.sqrt(s) + eps)


@register("optim_adagrad", "numba", device="cpu", priority=10)
def adagrad_update_numba(param, grad, state, *, lr, lr_decay, eps, weight_decay, maximize):
    if not _fusable(param, grad, state["sum"]):
        return adagrad_update(param, grad, state, lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                              maximize=maximize)
    state["step"] += 1
    clr = lr / (1 + (state["step"] - 1) * lr_decay)
    _adagrad_kernel(_flat(param), _flat(grad), _flat(state["sum"]), float(clr), float(eps), float(weight_decay),
                    bool(maximize))
