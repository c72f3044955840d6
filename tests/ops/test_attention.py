"""scaled_dot_product_attention: PyTorch parity (masks, causal, scale, GQA, 3-d inputs),
gradcheck through both kernel implementations, double backward, dropout, errors."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

import tinynn as tn
from tinynn.autograd import gradcheck, gradgradcheck
from tinynn.backend import kernels
from tinynn.ops.attention import scaled_dot_product_attention as sdpa


@pytest.fixture(params=["blocked", "reference"])
def impl(request):
    with contextlib.ExitStack() as stack:
        for op in ("attention_forward", "attention_backward"):
            stack.enter_context(kernels.use(op, request.param))
        yield request.param


def _arrays(seed, *shapes, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _mask(kind, shape):
    rng = np.random.default_rng(3)
    if kind == "bool":
        mask = rng.random(shape) > 0.4
        mask[..., 0] = True  # every row may attend somewhere (PyTorch's math path gives NaN otherwise)
        return mask
    return rng.standard_normal(shape)


# (q shape, k shape, v shape, mask kind, mask shape, kwargs)
PARITY = [
    ((2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 3), None, None, {}),
    ((2, 5, 4), (2, 5, 4), (2, 5, 4), None, None, dict(is_causal=True)),
    ((2, 2, 5, 4), (2, 2, 6, 4), (2, 2, 6, 3), "bool", (5, 6), {}),
    ((2, 2, 5, 4), (2, 2, 6, 4), (2, 2, 6, 3), "float", (2, 1, 5, 6), dict(scale=0.3)),
    ((2, 4, 5, 4), (2, 2, 6, 4), (2, 2, 6, 3), None, None, dict(enable_gqa=True)),
    ((1, 2, 4, 3), (1, 2, 7, 3), (1, 2, 7, 5), "bool", (1, 2, 4, 7), dict(scale=2.0)),
]


@pytest.mark.parity
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", PARITY, ids=[f"{c[0]}-{c[3]}-{c[5]}".replace(" ", "") for c in PARITY])
def test_torch_parity(case, dtype, impl):
    torch = pytest.importorskip("torch")
    q_shape, k_shape, v_shape, mask_kind, mask_shape, kwargs = case
    arrays = _arrays(0, q_shape, k_shape, v_shape, dtype=dtype)
    mask = None if mask_kind is None else _mask(mask_kind, mask_shape)
    if mask is not None and mask.dtype.kind == "f":
        mask = mask.astype(dtype)
    ours = [tn.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = sdpa(*ours, attn_mask=None if mask is None else tn.tensor(mask), **kwargs)
    y_t = torch.nn.functional.scaled_dot_product_attention(
        *theirs, attn_mask=None if mask is None else torch.tensor(mask), **kwargs)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    assert y.shape == tuple(y_t.shape) and y.dtype == dtype
    np.testing.assert_allclose(y.numpy(), y_t.detach().numpy(), **tol)
    grad = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    y.backward(tn.tensor(grad))
    y_t.backward(torch.tensor(grad))
    for a, b, what in zip(ours, theirs, "qkv"):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), err_msg=what, **tol)


@pytest.mark.parity
def test_fully_masked_rows_give_zeros_like_torch():
    torch = pytest.importorskip("torch")
    q, k, v = _arrays(2, (1, 1, 3, 4), (1, 1, 5, 4), (1, 1, 5, 4))
    mask = np.ones((3, 5), bool)
    mask[1] = False
    ours = [tn.tensor(a, requires_grad=True) for a in (q, k, v)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    y = sdpa(*ours, attn_mask=tn.tensor(mask))
    y_t = torch.nn.functional.scaled_dot_product_attention(*theirs, attn_mask=torch.tensor(mask))
    np.testing.assert_allclose(y.numpy(), y_t.detach().numpy(), rtol=1e-10)
    y.sum().backward()
    y_t.sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kwargs", [dict(), dict(is_causal=True), dict(attn_mask="bool"), dict(dropout_p=0.4)],
                         ids=["plain", "causal", "bool_mask", "dropout"])
def test_gradcheck_and_gradgradcheck(kwargs, impl):
    q, k, v = (tn.tensor(a, requires_grad=True) for a in _arrays(4, (1, 2, 3, 2), (1, 2, 4, 2), (1, 2, 4, 3)))
    if kwargs.get("attn_mask") == "bool":
        kwargs = dict(attn_mask=tn.tensor(_mask("bool", (3, 4))))

    def fn(q, k, v):
        if kwargs.get("dropout_p"):
            tn.manual_seed(7)  # the same dropout mask at every evaluation
        return sdpa(q, k, v, **kwargs)

    assert gradcheck(fn, (q, k, v))
    assert gradgradcheck(fn, (q, k, v))


def test_dropout_zeroes_probabilities_and_rescales():
    q, k, v = (tn.tensor(a) for a in _arrays(5, (2, 2, 16, 4), (2, 2, 16, 4), (2, 2, 16, 4)))
    tn.manual_seed(0)
    y = sdpa(q, k, v, dropout_p=0.5)
    tn.manual_seed(0)
    again = sdpa(q, k, v, dropout_p=0.5)
    np.testing.assert_array_equal(y.numpy(), again.numpy())  # reproducible from the seed
    assert not np.allclose(y.numpy(), sdpa(q, k, v).numpy())
    # with value = ones, each output is (sum of kept probabilities) / (1 - p): 1 on average
    ones = tn.ones(2, 2, 16, 4, dtype=tn.float64)
    tn.manual_seed(1)
    kept = sdpa(q, k, ones, dropout_p=0.5).numpy()
    assert abs(kept.mean() - 1.0) < 0.15
    assert np.all(sdpa(q, k, v, dropout_p=1.0).numpy() == 0)


def test_float32_stays_float32():
    q, k, v = (tn.tensor(a) for a in _arrays(6, (2, 3, 4), (2, 5, 4), (2, 5, 4), dtype=np.float32))
    assert sdpa(q, k, v).dtype == np.float32


@pytest.mark.parametrize("call, message", [
    (lambda q, k, v: sdpa(q, tn.zeros(2, 5, 3, dtype=tn.float64), v), r"query's feature size 4 != key's 3"),
    (lambda q, k, v: sdpa(q, k, tn.zeros(2, 4, 4, dtype=tn.float64)), r"key and value must have the same sequence"),
    (lambda q, k, v: sdpa(q, k, v, attn_mask=tn.ones(3, 3, dtype=tn.bool)), r"attn_mask of shape \(3, 3\) does not"),
    (lambda q, k, v: sdpa(q, k, v, attn_mask=tn.ones(3, 5, dtype=tn.bool), is_causal=True), r"is_causal"),
    (lambda q, k, v: sdpa(q.float(), k, v), r"same dtype"),
    (lambda q, k, v: sdpa(q, k, v, dropout_p=1.5), r"dropout_p"),
])
def test_errors_name_the_op(call, message):
    q, k, v = (tn.tensor(a) for a in _arrays(6, (2, 3, 4), (2, 5, 4), (2, 5, 4)))
    with pytest.raises((ValueError, TypeError), match=message):
        call(q, k, v)
