"""One declarative harness for every differentiable op (Chainer's FunctionTestCase,
tinygrad's helper_test_op).

A test module lists its ops as ``OpCase`` entries and asks ``op_tests(CASES)`` for the
generated tests::

    CASES = [OpCase("exp", tn.exp, np.exp, "exp", shapes=[(2, 3)])]
    (test_forward, test_non_contiguous_inputs, test_gradcheck, test_gradgradcheck,
     test_torch_parity) = op_tests(CASES)

From each entry pytest then runs

* ``test_forward``       the tinynn result against the NumPy reference, in float32 and float64
                         (values and dtype);
* ``test_non_contiguous_inputs`` the same inputs in Fortran order: same outputs and gradients;
* ``test_gradcheck``     backward against central finite differences in float64;
* ``test_gradgradcheck`` double backward against finite differences (``twice=True`` ops);
* ``test_torch_parity``  forward and backward against PyTorch, float32 and float64
                         (``@pytest.mark.parity``).

Every positional input is a floating tensor drawn from ``domain``; integer arguments
(indices, masks) are fixed inside the callables, so each callable is ``f(*inputs, **kwargs)``.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pytest

import tinynn as tn
from tinynn.autograd import gradcheck, gradgradcheck

# --- input domains: where an op's inputs are drawn from ---------------------------------


def _real(rng, shape):
    return rng.standard_normal(shape)


def _positive(rng, shape):  # log, sqrt, rsqrt, the base of a real power
    return rng.uniform(0.5, 2.0, shape)


def _nonzero(rng, shape):  # divisors: |x| >= 0.5 keeps 1/x tame for finite differences
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)


def _distinct(rng, shape):
    """Values on a shuffled grid (..., -0.45, -0.15, 0.15, 0.45, ...) plus noise below 0.03:
    at least 0.24 apart (no ties for max/min) and at least 0.02 away from the kinks at 0
    and ±0.5 (abs, relu, clamp), far more than a finite-difference step."""
    n = int(np.prod(shape))
    grid = (np.arange(n) - n // 2) * 0.3 + 0.15
    return rng.permutation(grid).reshape(shape) + rng.uniform(-0.03, 0.03, shape)


def _unit(rng, shape):
    return rng.uniform(-0.9, 0.9, shape)


DOMAINS: dict[str, Callable] = {"real": _real, "positive": _positive, "nonzero": _nonzero,
                                "distinct": _distinct, "unit": _unit}


@dataclass
class OpCase:
    """One op under test.

    name      the test id
    fn        the tinynn callable, ``fn(*tensors, **kwargs)``
    ref       the NumPy reference, ``ref(*arrays, **kwargs)`` (None: PyTorch is the reference)
    torch_fn  the PyTorch callable, ``torch_fn(*torch_tensors, **kwargs)``, or the name of a
              ``torch`` function (None: no parity test)
    shapes    one shape per input (pairs that broadcast test broadcasting)
    kwargs    keyword arguments for all three callables (dim, keepdim, ...)
    domain    a key of DOMAINS for all inputs, or a tuple with one per input
    grad      differentiable (False: comparisons, argmax: forward only)
    twice     twice differentiable: run gradgradcheck
    """
    name: str
    fn: Callable
    ref: Callable | None
    torch_fn: Callable | str | None
    shapes: Sequence[tuple]
    kwargs: dict = field(default_factory=dict)
    domain: Any = "real"
    grad: bool = True
    twice: bool = True
    check_dtype: bool = True

    def __post_init__(self):
        if self.kwargs:
            self.name += "-" + ",".join(f"{k}={v}" for k, v in self.kwargs.items())

    # --- inputs ------------------------------------------------------------------
    def arrays(self, dtype) -> list[np.ndarray]:
        """The inputs, the same for every test of this case (seeded by its name)."""
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        domains = self.domain if isinstance(self.domain, tuple) else (self.domain,) * len(self.shapes)
        return [DOMAINS[d](rng, s).astype(dtype) for d, s in zip(domains, self.shapes)]

    def run(self, *tensors):
        return self.fn(*tensors, **self.kwargs)

    def torch_callable(self):
        import torch
        return getattr(torch, self.torch_fn) if isinstance(self.torch_fn, str) else self.torch_fn


def cases(name: str, fn, ref, torch_fn, shapes_list, kwargs_list=({},), **options) -> list[OpCase]:
    """One OpCase per (shapes, kwargs) combination."""
    return [OpCase(f"{name}{list(shapes)}".replace(" ", ""), fn, ref, torch_fn, shapes, dict(kwargs), **options)
            for shapes in shapes_list for kwargs in kwargs_list]


# --- helpers ---------------------------------------------------------------------------


def torch_module():
    """PyTorch, imported only when a parity test calls it (the tables load without it)."""
    import torch
    return torch



def as_list(out) -> list:
    """An op's result (a tensor, or a tuple/namedtuple of them) as a flat list."""
    return list(out) if isinstance(out, (tuple, list)) else [out]


TOLERANCE = {np.dtype(np.float32): dict(rtol=2e-5, atol=2e-6), np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12)}
TORCH_TOLERANCE = {np.dtype(np.float32): dict(rtol=1e-4, atol=1e-5), np.dtype(np.float64): dict(rtol=1e-9, atol=1e-11)}


def _assert_close(actual, expected, tol, what):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    if actual.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        np.testing.assert_allclose(actual, expected, err_msg=what, **tol)


def _ids(case_list):
    return [c.name for c in case_list]


# --- the generated tests ------------------------------------------------------------------


def op_tests(case_list: list[OpCase]):
    """The five parametrized tests for a table of ops (assign them to test_* names)."""
    names = _ids(case_list)
    assert len(set(names)) == len(names), f"duplicate case names: {sorted(n for n in names if names.count(n) > 1)}"
    with_ref = [c for c in case_list if c.ref is not None]
    differentiable = [c for c in case_list if c.grad]
    twice = [c for c in differentiable if c.twice]
    with_torch = [c for c in case_list if c.torch_fn is not None]

    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    @pytest.mark.parametrize("case", with_ref, ids=_ids(with_ref))
    def test_forward(case: OpCase, dtype):
        arrays = case.arrays(dtype)
        expected = as_list(case.ref(*[a.copy() for a in arrays], **case.kwargs))
        actual = as_list(case.run(*[tn.tensor(a) for a in arrays]))
        assert len(actual) == len(expected), f"{case.name}: {len(actual)} outputs, expected {len(expected)}"
        for i, (out, exp) in enumerate(zip(actual, expected)):
            exp = np.asarray(exp)
            if case.check_dtype:
                assert out.dtype == exp.dtype, f"{case.name} output {i}: dtype {out.dtype}, expected {exp.dtype}"
            _assert_close(out.numpy(), exp, TOLERANCE[np.dtype(dtype)], f"{case.name} output {i}")

    @pytest.mark.parametrize("case", with_ref, ids=_ids(with_ref))
    def test_non_contiguous_inputs(case: OpCase):
        """The same values in Fortran order (other strides): same outputs and gradients."""
        arrays = case.arrays(np.float64)
        results = []
        for layout in (np.ascontiguousarray, np.asfortranarray):
            inputs = [tn.tensor(layout(a), requires_grad=case.grad) for a in arrays]
            outputs = as_list(case.run(*inputs))
            if case.grad:
                loss = sum((o * (k + 1.0)).sum() for k, o in enumerate(outputs) if o.dtype.kind == "f")
                loss.backward()
            results.append(([o.numpy() for o in outputs], [None if t.grad is None else t.grad.numpy()
                                                             for t in inputs]))
        (outs_c, grads_c), (outs_f, grads_f) = results
        for a, b in zip(outs_c + grads_c, outs_f + grads_f):
            if a is None or b is None:
                assert a is None and b is None
            else:
                _assert_close(b, a, TOLERANCE[np.dtype(np.float64)], f"{case.name} non-contiguous")

    @pytest.mark.parametrize("case", differentiable, ids=_ids(differentiable))
    def test_gradcheck(case: OpCase):
        inputs = [tn.tensor(a, requires_grad=True) for a in case.arrays(np.float64)]
        assert gradcheck(case.run, inputs)

    @pytest.mark.parametrize("case", twice, ids=_ids(twice))
    def test_gradgradcheck(case: OpCase):
        inputs = [tn.tensor(a, requires_grad=True) for a in case.arrays(np.float64)]
        assert gradgradcheck(case.run, inputs)

    @pytest.mark.parity
    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    @pytest.mark.parametrize("case", with_torch, ids=_ids(with_torch))
    def test_torch_parity(case: OpCase, dtype):
        torch = pytest.importorskip("torch")
        arrays = case.arrays(dtype)
        ours = [tn.tensor(a, requires_grad=case.grad) for a in arrays]
        theirs = [torch.tensor(a, requires_grad=case.grad) for a in arrays]
        out_ours = as_list(case.run(*ours))
        out_theirs = as_list(case.torch_callable()(*theirs, **case.kwargs))
        tol = TORCH_TOLERANCE[np.dtype(dtype)]
        assert len(out_ours) == len(out_theirs)
        for i, (o, t) in enumerate(zip(out_ours, out_theirs)):
            assert o.dtype == np.dtype(str(t.dtype).removeprefix("torch.")), f"{case.name} output {i} dtype"
            _assert_close(o.numpy(), t.detach().numpy(), tol, f"{case.name} forward output {i}")
        if not case.grad:
            return
        # Backward: the gradient of sum_i <out_i, w_i> for fixed random weights w_i.
        rng = np.random.default_rng(1)
        loss_ours, loss_theirs = 0, 0
        for o, t in zip(out_ours, out_theirs):
            if o.dtype.kind != "f":
                continue
            w = rng.standard_normal(o.shape).astype(dtype)
            loss_ours = loss_ours + (o * tn.tensor(w)).sum()
            loss_theirs = loss_theirs + (t * torch.tensor(w)).sum()
        loss_ours.backward()
        loss_theirs.backward()
        for k, (a, b) in enumerate(zip(ours, theirs)):
            expected = np.zeros(a.shape, dtype) if b.grad is None else b.grad.numpy()
            actual = np.zeros(a.shape, dtype) if a.grad is None else a.grad.numpy()
            if a.grad is not None:
                assert a.grad.dtype == np.dtype(dtype), f"{case.name} grad {k} dtype {a.grad.dtype}"
            _assert_close(actual, expected, tol, f"{case.name} gradient of input {k}")

    return test_forward, test_non_contiguous_inputs, test_gradcheck, test_gradgradcheck, test_torch_parity
