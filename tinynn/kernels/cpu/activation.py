"""Elementwise activation kernels on raw arrays: ``erf`` and GELU (exact and tanh form).

    gelu(x)       = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2
    gelu'(x)      = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
    gelu_tanh(x)  = x (1 + t) / 2,  t = tanh(sqrt(2/pi) (x + 0.044715 x^3))
    gelu_tanh'(x) = (1 + t) / 2 + x (1 - t^2) / 2 * sqrt(2/pi) (1 + 3 * 0.044715 x^2)

NumPy has no erf, so ``reference`` (priority 0) evaluates ``math.erf`` per element
in Python (slow, exact) and the NumPy formulas above on top of it. ``numba``
(priority 10) fuses each op into one loop, computing in float64. For float64
arrays it calls libm (``math.erf``, ``math.exp``, ``math.tanh``: full precision).
For float32 arrays it uses approximations that, unlike those libm calls, vectorise:
erf as a rational function (Eigen's ``generic_fast_erf_float``: odd degree-13
numerator over even degree-8 denominator, input clamped to [-4, 4]; max error
6.5e-8 against ``math.erf``, about one float32 ulp near 1), exp as (e^(v/256))^256
(relative error < 1e-10) and tanh through that exp.

Callers pass C-contiguous float32/float64 arrays of any shape.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from tinynn.backend.kernels import register

_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


# ======================================================================================
# reference (NumPy + math.erf)
# ======================================================================================
_erf_object_ufunc = np.frompyfunc(math.erf, 1, 1)


@register("erf", "reference", device="cpu", priority=0)
def erf_reference(x):
    x = np.asarray(x)
    return np.asarray(_erf_object_ufunc(x), dtype=np.float64).astype(x.dtype)


def _gelu_tanh_inner(x):
    return np.tanh((x + _GELU_C * x * x * x) * _SQRT_2_OVER_PI)


@register("gelu_forward", "reference", device="cpu", priority=0)
def gelu_forward_reference(x, approximate: str = "none"):
    """GELU of ``x``: x Phi(x) (``approximate="none"``) or its tanh approximation."""
    if approximate == "tanh":
        return np.asarray(0.5 * x * (1.0 + _gelu_tanh_inner(x)), dtype=x.dtype)
    return np.asarray(x * (0.5 * (1.0 + erf_reference(x * _INV_SQRT_2))), dtype=x.dtype)


@register("gelu_backward", "reference", device="cpu", priority=0)
def gelu_backward_reference(grad_y, x, approximate: str = "none"):
    """grad_y * gelu'(x)."""
    if approximate == "tanh":
        t = _gelu_tanh_inner(x)
        slope = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3 * _GELU_C * x * x)
    else:
        slope = 0.5 * (1.0 + erf_reference(x * _INV_SQRT_2)) + x * np.exp(-0.5 * x * x) * _INV_SQRT_2PI
    return np.asarray(grad_y * slope, dtype=x.dtype)


# ======================================================================================
# numba
# ======================================================================================
# error_model="numpy": no ZeroDivisionError check per division, which would stop the
# loops from vectorising. No fastmath: the formulas are evaluated as written.
@njit(cache=True, inline="always", error_model="numpy")
def _erf_rational(v):
    """erf(v) to 6.5e-8 (float32 accuracy): p(v) / q(v) on v clamped to [-4, 4]."""
    v = 4.0 if v > 4.0 else v  # written so that NaN falls through both clamps
    v = -4.0 if v < -4.0 else v
    v2 = v * v
    p = -2.72614225801306e-10
    p = p * v2 + 2.77068142495902e-08
    p = p * v2 - 2.10102402082508e-06
    p = p * v2 - 5.69250639462346e-05
    p = p * v2 - 7.34990630326855e-04
    p = p * v2 - 2.95459980854025e-03
    p = p * v2 - 1.60960333262415e-02
    q = -1.45660718464996e-05
    q = q * v2 - 2.13374055278905e-04
    q = q * v2 - 1.68282697438203e-03
    q = q * v2 - 7.37332916720468e-03
    q = q * v2 - 1.42647390514189e-02
    r = v * p / q
    r = 1.0 if r > 1.0 else r  # the approximation overshoots |erf| <= 1 by < 1e-7 near the clamp
    return -1.0 if r < -1.0 else r


@njit(cache=True, inline="always", error_model="numpy")
def _exp_by_squaring(v):
    """e^v for v clamped to [-80, 80], to ~1e-13 relative: (e^(v/256))^256, e^(v/256) by its
    degree-10 Taylor polynomial (|v/256| < 0.32). Unlike libm's exp, it vectorises."""
    v = 80.0 if v > 80.0 else v  # NaN falls through
    v = -80.0 if v < -80.0 else v
    z = v * (1.0 / 256.0)
    e = 1.0 / 3628800.0
    e = e * z + 1.0 / 362880.0
    e = e * z + 1.0 / 40320.0
    e = e * z + 1.0 / 5040.0
    e = e * z + 1.0 / 720.0
    e = e * z + 1.0 / 120.0
    e = e * z + 1.0 / 24.0
    e = e * z + 1.0 / 6.0
    e = e * z + 0.5
    e = e * z + 1.0
    e = e * z + 1.0
    for _ in range(8):
        e = e * e
    return e


@njit(cache=True, inline="always", error_model="numpy")
def _tanh_by_exp(v):
    """tanh(v) = 1 - 2 / (e^(2v) + 1), with the vectorising exp (tanh is +-1 in float64 past |v| = 20)."""
    return 1.0 - 2.0 / (_exp_by_squaring(2.0 * v) + 1.0)


@njit(cache=True, inline="always")
def _erf_libm(v):
    return math.erf(v)


@njit(cache=True, inline="always")
def _exp_libm(v):
    return math.exp(v)


@njit(cache=True, inline="always")
def _tanh_libm(v):
    return math.tanh(v)


def _make_elementwise_kernels(erf, exp, tanh):
    """The erf and GELU loops around one set of scalar functions (libm's or the fast ones)."""

    @njit(cache=True, error_model="numpy")
    def erf_loop(x, out):
        for i in range(x.size):
            out[i] = erf(np.float64(x[i]))

    @njit(cache=True, error_model="numpy")
    def gelu_forward(x, out):
        for i in range(x.size):
            v = np.float64(x[i])
            out[i] = v * 0.5 * (1.0 + erf(v * _INV_SQRT_2))

    @njit(cache=True, error_model="numpy")
    def gelu_backward(g, x, out):
        for i in range(x.size):  # g * (Phi(x) + x phi(x))
            v = np.float64(x[i])
            cdf = 0.5 * (1.0 + erf(v * _INV_SQRT_2))
            out[i] = g[i] * (cdf + v * exp(-0.5 * v * v) * _INV_SQRT_2PI)

    @njit(cache=True, error_model="numpy")
    def gelu_tanh_forward(x, out):
        for i in range(x.size):
            v = np.float64(x[i])
            t = tanh((v + _GELU_C * v * v * v) * _SQRT_2_OVER_PI)
            out[i] = 0.5 * v * (1.0 + t)

    @njit(cache=True, error_model="numpy")
    def gelu_tanh_backward(g, x, out):
        for i in range(x.size):
            v = np.float64(x[i])
            t = tanh((v + _GELU_C * v * v * v) * _SQRT_2_OVER_PI)
            slope = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3 * _GELU_C * v * v)
            out[i] = g[i] * slope

    return erf_loop, gelu_forward, gelu_backward, gelu_tanh_forward, gelu_tanh_backward


# float64 arrays get libm's functions (full precision); float32 arrays the vectorising
# approximations, accurate to well below float32's resolution.
_KERNELS = {np.dtype(np.float64): _make_elementwise_kernels(_erf_libm, _exp_libm, _tanh_libm),
            np.dtype(np.float32): _make_elementwise_kernels(_erf_rational, _exp_by_squaring, _tanh_by_exp)}


@register("erf", "numba", device="cpu", priority=10)
def erf_numba(x):
    out = np.empty_like(x)
    _KERNELS[x.dtype][0](x.reshape(-1), out.reshape(-1))
    return out


@register("gelu_forward", "numba", device="cpu", priority=10)
def gelu_forward_numba(x, approximate: str = "none"):
    out = np.empty_like(x)
    _KERNELS[x.dtype][3 if approximate == "tanh" else 1](x.reshape(-1), out.reshape(-1))
    return out


@register("gelu_backward", "numba", device="cpu", priority=10)
def gelu_backward_numba(grad_y, x, approximate: str = "none"):
    out = np.empty_like(x)
    _KERNELS[x.dtype][4 if approximate == "tanh" else 2](grad_y.reshape(-1), x.reshape(-1), out.reshape(-1))
    return out
