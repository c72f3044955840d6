"""Normalisation kernels (layer / group / batch norm): Numba against the NumPy reference,
float32 statistics against float64 ones, and the layers' dispatch through the registry."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
import tinynn.nn.functional as F
from tinynn.backend import kernels

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}

# op family -> list of (x shape, extra args); layouts as the kernels see them
LAYER_SHAPES = [(1, 1), (1, 5), (7, 13), (33, 128)]
GROUP_SHAPES = [((1, 6, 5), 3), ((3, 4, 7), 2), ((2, 6, 1), 6), ((2, 5, 9), 1)]
BATCH_SHAPES = [(1, 3, 7), (5, 4, 9), (2, 1, 1), (3, 7, 1)]


def _run(name, op, *args):
    with kernels.use(op, name):
        return kernels.get(op)(*args)


def _arrays(shape, channels, dtype, affine, seed=0):
    """x (with a mean far from 0, as activations often have), grad_y, and weight/bias or None."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2.0 + 3.0).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(channels).astype(dtype) if affine else None
    b = rng.standard_normal(channels).astype(dtype) if affine else None
    return x, g, w, b


def _assert_all_close(got, want, dtype):
    assert len(got) == len(want)
    for a, e in zip(got, want):
        assert a.dtype == dtype and a.shape == e.shape
        np.testing.assert_allclose(a, e, **TOL[dtype])


@pytest.mark.parametrize("op", ["layer_norm_forward", "layer_norm_backward", "group_norm_forward",
                                "group_norm_backward", "batch_norm_forward", "batch_norm_backward"])
def test_registered_numba_first(op):
    assert kernels.available(op, "cpu") == ["numba", "reference"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", LAYER_SHAPES)
def test_layer_norm_numba_matches_reference(shape, affine, dtype):
    x, g, w, b = _arrays(shape, shape[1], dtype, affine)
    forward = [_run(name, "layer_norm_forward", x, w, b, 1e-5) for name in ("numba", "reference")]
    _assert_all_close(forward[0], forward[1], dtype)
    _, mean, rstd = forward[1]
    backward = [_run(name, "layer_norm_backward", g, x, mean, rstd, w) for name in ("numba", "reference")]
    _assert_all_close(backward[0], backward[1], dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape,groups", GROUP_SHAPES)
def test_group_norm_numba_matches_reference(shape, groups, affine, dtype):
    x, g, w, b = _arrays(shape, shape[1], dtype, affine)
    forward = [_run(name, "group_norm_forward", x, w, b, groups, 1e-5) for name in ("numba", "reference")]
    _assert_all_close(forward[0], forward[1], dtype)
    _, mean, rstd = forward[1]
    assert mean.shape == (shape[0], groups)
    backward = [_run(name, "group_norm_backward", g, x, mean, rstd, w, groups) for name in ("numba", "reference")]
    _assert_all_close(backward[0], backward[1], dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_batch_norm_numba_matches_reference(shape, affine, dtype):
    x, g, w, b = _arrays(shape, shape[1], dtype, affine)
    forward = [_run(name, "batch_norm_forward", x, w, b, 1e-5) for name in ("numba", "reference")]
    _assert_all_close(forward[0], forward[1], dtype)
    _, mean, invstd, _ = forward[1]
    backward = [_run(name, "batch_norm_backward", g, x, mean, invstd, w) for name in ("numba", "reference")]
    _assert_all_close(backward[0], backward[1], dtype)


def test_batch_norm_float32_statistics_do_not_drift():
    """Over 2**18 float32 values per channel, mean/var/gradients stay within 1e-6 relative of
    the float64 computation (float32 running sums would drift by ~1e-4)."""
    rng = np.random.default_rng(1)
    x64 = rng.standard_normal((64, 2, 4096)) * 0.5 + 10.0
    g64 = rng.standard_normal(x64.shape)
    x32, g32 = x64.astype(np.float32), g64.astype(np.float32)
    forward64 = _run("reference", "batch_norm_forward", x32.astype(np.float64), None, None, 1e-5)
    _, mean, invstd, var = kernels.get("batch_norm_forward")(x32, None, None, 1e-5)
    np.testing.assert_allclose(mean, forward64[1], rtol=1e-6)
    np.testing.assert_allclose(var, forward64[3], rtol=1e-5)  # var ~ 0.25 of values ~ 10: float32 inputs limit it
    np.testing.assert_allclose(invstd, forward64[2], rtol=1e-5)
    _, grad_w, grad_b = kernels.get("batch_norm_backward")(g32, x32, mean, invstd, None)
    want = _run("reference", "batch_norm_backward", g32.astype(np.float64), x32.astype(np.float64),
                forward64[1], forward64[2], None)
    np.testing.assert_allclose(grad_b, want[2], rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(grad_w, want[1], rtol=1e-5, atol=1e-2)


def test_layer_norm_float32_row_statistics_match_float64():
    x64 = np.random.default_rng(2).standard_normal((4, 65536)) + 100.0
    x32 = x64.astype(np.float32)
    _, mean, rstd = kernels.get("layer_norm_forward")(x32, None, None, 1e-5)
    _, mean64, rstd64 = _run("reference", "layer_norm_forward", x32.astype(np.float64), None, None, 1e-5)
    np.testing.assert_allclose(mean, mean64, rtol=1e-7)
    np.testing.assert_allclose(rstd, rstd64, rtol=1e-6)


@pytest.mark.parametrize("kernel", ["numba", "reference"])
@pytest.mark.parametrize("op,fn,channels", [
    ("layer_norm", lambda x, w, b: F.layer_norm(x, 6, w, b), 6),
    ("group_norm", lambda x, w, b: F.group_norm(x, 2, w, b), 4),
    ("batch_norm", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), 4)])
def test_layers_match_float64_reference_through_either_kernel(op, fn, channels, kernel):
    """The layer on a permuted (non-contiguous) float32 view, run through ``kernel``, gives
    what the float64 reference gives: output and gradients of input, weight and bias."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((3, 4, 5, 6))
    w, b = rng.standard_normal(channels), rng.standard_normal(channels)
    results = []
    for dtype, impl in ((np.float32, kernel), (np.float64, "reference")):
        leaf = tn.tensor(base.astype(dtype), requires_grad=True)
        x = leaf.permute(0, 2, 1, 3) if op == "layer_norm" else leaf.permute(0, 1, 3, 2)  # last dim 6 / dim 1 4
        assert not x.data.flags.c_contiguous
        wt, bt = (tn.tensor(a.astype(dtype), requires_grad=True) for a in (w, b))
        with kernels.use(f"{op}_forward", impl), kernels.use(f"{op}_backward", impl):
            y = fn(x, wt, bt)
            (y * y).sum().backward()
        results.append([y.data, leaf.grad.data, wt.grad.data, bt.grad.data])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=op)


def test_batch_norm_variance_with_a_large_mean_and_small_spread():
    """The numba kernel's one-pass variance (sums shifted by a sample) against the reference's
    two-pass one, where var = E[x^2] - E[x]^2 without the shift would lose every digit."""
    x = np.random.default_rng(4).standard_normal((8, 3, 50)) * 1e-3 + 1e4
    _, mean, invstd, var = kernels.get("batch_norm_forward")(x, None, None, 0.0)
    _, mean_ref, invstd_ref, var_ref = _run("reference", "batch_norm_forward", x, None, None, 0.0)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-14)
    np.testing.assert_allclose(var, var_ref, rtol=1e-7)
    np.testing.assert_allclose(invstd, invstd_ref, rtol=1e-7)
