"""Activation kernels (erf, GELU): Numba against math.erf and the NumPy reference, and
F.gelu's dispatch through the registry."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tinynn as tn
import tinynn.nn.functional as F
from tinynn.backend import kernels

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}
GRID = np.linspace(-7.0, 7.0, 20001)  # dense, and past both ends of the rational approximation's clamp
ERF_ON_GRID = np.array([math.erf(v) for v in GRID])


def _run(name, op, *args):
    with kernels.use(op, name):
        return kernels.get(op)(*args)


@pytest.mark.parametrize("op", ["erf", "gelu_forward", "gelu_backward"])
def test_registered_numba_first(op):
    assert kernels.available(op, "cpu") == ["numba", "reference"]


def test_erf_float64_is_libm_erf():
    np.testing.assert_array_equal(kernels.get("erf")(GRID), ERF_ON_GRID)


def test_erf_float32_rational_approximation_is_float32_accurate():
    """Evaluated on float32 inputs, the result is within 1e-7 of erf of that input (float32
    spacing near 1 is 6e-8), never leaves [-1, 1], is odd, and keeps NaN."""
    x = GRID.astype(np.float32)
    got = kernels.get("erf")(x)
    assert got.dtype == np.float32
    want = np.array([math.erf(v) for v in x.astype(np.float64)])
    assert np.abs(got.astype(np.float64) - want).max() < 1e-7
    assert np.abs(got).max() <= 1.0
    np.testing.assert_array_equal(got, -kernels.get("erf")(-x))
    assert np.isnan(kernels.get("erf")(np.array([np.nan], np.float32)))[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(), (1,), (7, 13), (3, 5, 129)])
def test_gelu_numba_matches_reference(shape, approximate, dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3.0).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    as64 = lambda *arrays: tuple(a.astype(np.float64) for a in arrays)  # noqa: E731
    for op, arrays in (("gelu_forward", (x,)), ("gelu_backward", (g, x))):
        got = _run("numba", op, *arrays, approximate)
        # float32 against the reference in float64: its float32 evaluation of 1 + tanh near
        # tanh = -1 cancels to a few 1e-6 absolute error, which the numba kernel (float64 inside) avoids.
        want = _run("reference", op, *as64(*arrays), approximate)
        assert got.dtype == dtype and got.shape == shape
        np.testing.assert_allclose(got, want, **TOL[dtype], err_msg=op)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_float32_is_close_to_float64(approximate):
    """The float32 kernels (fast erf, exp and tanh) against the float64 ones (libm's)."""
    x64 = GRID
    g64 = np.ones_like(x64)
    for op, args in (("gelu_forward", (approximate,)), ("gelu_backward", (approximate,))):
        fn = kernels.get(op)
        x32 = x64.astype(np.float32)
        want = fn(x64, *args) if op == "gelu_forward" else fn(g64, x32.astype(np.float64), *args)
        got = fn(x32, *args) if op == "gelu_forward" else fn(g64.astype(np.float32), x32, *args)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=2e-7, err_msg=op)


@pytest.mark.parametrize("kernel", ["numba", "reference"])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_F_gelu_through_either_kernel_on_a_non_contiguous_input(kernel, approximate):
    base = np.random.default_rng(1).standard_normal((4, 6)) * 2.0
    results = []
    for dtype, impl in ((np.float32, kernel), (np.float64, "reference")):
        leaf = tn.tensor(base.astype(dtype), requires_grad=True)
        x = leaf.transpose(0, 1)
        assert not x.data.flags.c_contiguous
        with kernels.use("gelu_forward", impl), kernels.use("gelu_backward", impl):
            y = F.gelu(x, approximate=approximate)
            (y * y).sum().backward()
        results.append((y.data, leaf.grad.data))
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_erf_op_float16_and_integer_inputs():
    assert tn.erf(tn.tensor(np.array([0.5], np.float16))).dtype == np.float16
    np.testing.assert_allclose(tn.ops.elementwise._erf_array(np.array([1, -2])), [math.erf(1), math.erf(-2)])


@pytest.mark.parity
def test_erf_matches_torch():
    torch = pytest.importorskip("torch")
    for dtype, tol in ((np.float64, 1e-15), (np.float32, 1.2e-7)):
        x = GRID.astype(dtype)
        np.testing.assert_allclose(kernels.get("erf")(x), torch.special.erf(torch.from_numpy(x)).numpy(),
                                   rtol=0, atol=tol)
