"""conv1d / conv2d / conv_transpose1d / conv_transpose2d / unfold / fold: PyTorch parity,
gradcheck through both kernel implementations, double backward, and error messages."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

import tinynn as tn
from tinynn.autograd import gradcheck, gradgradcheck
from tinynn.backend import kernels
from tinynn.ops import conv as C

CONV_OPS = ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight")


@pytest.fixture(params=["numba", "reference"])
def impl(request):
    """Run the test with every conv kernel switched to one implementation."""
    with contextlib.ExitStack() as stack:
        for op in CONV_OPS:
            stack.enter_context(kernels.use(op, request.param))
        yield request.param


def _arrays(seed, *shapes, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


# name, our fn, torch fn name, (x shape, w shape, bias?), kwargs
PARITY = [
    ("conv2d", "conv2d", (2, 4, 7, 6), (6, 2, 3, 2), True, dict(stride=2, padding=1, groups=2)),
    ("conv2d", "conv2d", (2, 3, 8, 8), (5, 3, 3, 3), True, dict(padding="same", dilation=2)),
    ("conv2d", "conv2d", (2, 3, 8, 7), (4, 3, 2, 2), False, dict(padding="same")),  # even kernel: asymmetric
    ("conv2d", "conv2d", (1, 4, 6, 6), (4, 1, 3, 3), True, dict(padding=1, groups=4)),  # depthwise
    ("conv2d", "conv2d", (2, 3, 9, 7), (2, 3, 3, 1), True, dict(padding="valid", stride=(2, 1), dilation=(1, 2))),
    ("conv2d", "conv2d", (3, 8, 8), (4, 3, 3, 3), True, dict(padding=1)),  # unbatched
    ("conv1d", "conv1d", (2, 3, 9), (4, 3, 3), True, dict(stride=2, padding=1)),
    ("conv1d", "conv1d", (2, 4, 10), (4, 2, 4), False, dict(padding="same", groups=2, dilation=2)),
    ("conv_transpose2d", "conv_transpose2d", (2, 4, 5, 5), (4, 3, 3, 3), True,
     dict(stride=2, padding=1, output_padding=1, groups=2)),
    ("conv_transpose2d", "conv_transpose2d", (1, 2, 4, 3), (2, 3, 2, 3), False, dict(stride=(1, 2), dilation=2)),
    ("conv_transpose1d", "conv_transpose1d", (2, 3, 6), (3, 2, 3), True, dict(stride=3, padding=1, output_padding=2)),
]


def _parity_id(case):
    return f"{case[0]}-{case[2]}-{case[3]}-{case[5]}".replace(" ", "")


@pytest.mark.parity
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", PARITY, ids=[_parity_id(c) for c in PARITY])
def test_torch_parity(case, dtype, impl):
    torch = pytest.importorskip("torch")
    name, torch_name, x_shape, w_shape, with_bias, kwargs = case
    shapes = [x_shape, w_shape] + ([(w_shape[1] * kwargs.get("groups", 1),) if "transpose" in name
                                    else (w_shape[0],)] if with_bias else [])
    arrays = _arrays(0, *shapes, dtype=dtype)
    ours = [tn.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = getattr(C, name)(*ours, **kwargs)
    y_t = getattr(torch.nn.functional, torch_name)(*theirs, **kwargs)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    assert y.shape == tuple(y_t.shape) and y.dtype == dtype
    np.testing.assert_allclose(y.numpy(), y_t.detach().numpy(), **tol)
    grad = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    y.backward(tn.tensor(grad))
    y_t.backward(torch.tensor(grad))
    for a, b, what in zip(ours, theirs, ("input", "weight", "bias")):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), err_msg=what, **tol)


GRADCHECK = [
    ("conv2d", (1, 4, 5, 4), (2, 2, 3, 2), dict(stride=2, padding=1, groups=2)),
    ("conv2d", (2, 2, 4, 4), (3, 2, 2, 2), dict(dilation=2, padding=1)),
    ("conv1d", (1, 2, 6), (2, 2, 3), dict(stride=2, padding="valid")),
    ("conv_transpose2d", (1, 4, 3, 3), (4, 1, 3, 2), dict(stride=2, padding=1, output_padding=1, groups=2)),
]


@pytest.mark.parametrize("name, x_shape, w_shape, kwargs", GRADCHECK, ids=[f"{c[0]}-{c[3]}" for c in GRADCHECK])
def test_gradcheck_and_gradgradcheck(name, x_shape, w_shape, kwargs, impl):
    x, w = (tn.tensor(a, requires_grad=True) for a in _arrays(2, x_shape, w_shape))

    def fn(x, w):
        return getattr(C, name)(x, w, **kwargs)

    assert gradcheck(fn, (x, w))
    assert gradgradcheck(fn, (x, w))


def test_bias_gradcheck():
    x, w, b = (tn.tensor(a, requires_grad=True) for a in _arrays(3, (1, 2, 4, 4), (3, 2, 3, 3), (3,)))
    assert gradcheck(lambda x, w, b: C.conv2d(x, w, b, padding=1), (x, w, b))


def test_hessian_vector_product_matches_the_closed_form(impl):
    """L = sum(conv(x, w)^2): d/dw <dL/dw, v> = 2 * conv_weight_grad(conv(x, v), x), computed here
    with the reference kernels on raw arrays."""
    from tinynn.kernels.cpu.conv import conv2d_backward_weight_reference, conv2d_forward_reference
    x_data, w_data, v_data = _arrays(4, (1, 2, 5, 5), (2, 2, 3, 3), (2, 2, 3, 3))
    x, w = tn.tensor(x_data), tn.tensor(w_data, requires_grad=True)
    geometry = ((1, 1), (1, 1), (1, 1), 1)
    (g,) = tn.autograd.grad((C.conv2d(x, w, padding=1) ** 2).sum(), [w], create_graph=True)
    (hv,) = tn.autograd.grad((g * tn.tensor(v_data)).sum(), [w])
    expected = 2 * conv2d_backward_weight_reference(conv2d_forward_reference(x_data, v_data, *geometry), x_data,
                                                    w_data.shape, *geometry)
    np.testing.assert_allclose(hv.numpy(), expected, rtol=1e-10)


@pytest.mark.parity
@pytest.mark.parametrize("kwargs", [dict(kernel_size=(2, 3), dilation=(1, 2), padding=1, stride=(2, 1)),
                                    dict(kernel_size=3), dict(kernel_size=1, stride=2)])
def test_unfold_fold_match_torch(kwargs, impl):
    torch = pytest.importorskip("torch")
    (x,) = _arrays(7, (2, 3, 7, 6))
    xt = torch.tensor(x, requires_grad=True)
    ours = tn.tensor(x, requires_grad=True)
    cols, cols_t = C.unfold(ours, **kwargs), torch.nn.functional.unfold(xt, **kwargs)
    np.testing.assert_allclose(cols.numpy(), cols_t.detach().numpy())
    image = C.fold(cols, (7, 6), **kwargs)
    image_t = torch.nn.functional.fold(cols_t, (7, 6), **kwargs)
    np.testing.assert_allclose(image.numpy(), image_t.detach().numpy(), rtol=1e-12)
    grad = np.random.default_rng(8).standard_normal(image.shape)
    image.backward(tn.tensor(grad))
    image_t.backward(torch.tensor(grad))
    np.testing.assert_allclose(ours.grad.numpy(), xt.grad.numpy(), rtol=1e-12)


def test_unfold_gradcheck():
    (x,) = (tn.tensor(a, requires_grad=True) for a in _arrays(9, (1, 2, 4, 3)))
    assert gradcheck(lambda x: C.unfold(x, (2, 2), padding=1, stride=(1, 2)), (x,))
    cols = tn.tensor(_arrays(10, (1, 8, 6))[0], requires_grad=True)
    assert gradcheck(lambda c: C.fold(c, (3, 4), (2, 2), padding=(0, 1), stride=(1, 2)), (cols,))


def test_float32_stays_float32():
    x, w = (tn.tensor(a) for a in _arrays(0, (1, 2, 5, 5), (3, 2, 3, 3), dtype=np.float32))
    assert C.conv2d(x, w).dtype == np.float32


@pytest.mark.parametrize("call, message", [
    (lambda: C.conv2d(tn.zeros(2, 3, 8, 8), tn.zeros(6, 4, 3, 3)),
     r"conv2d: input has 3 channels but weight expects 4 \(groups=1\); input \(2, 3, 8, 8\), weight \(6, 4, 3, 3\)"),
    (lambda: C.conv2d(tn.zeros(2, 4, 8, 8), tn.zeros(5, 2, 3, 3), groups=2),
     r"out_channels 5 .* divisible by groups 2"),
    (lambda: C.conv2d(tn.zeros(8, 8), tn.zeros(1, 1, 3, 3)), r"conv2d: expected a 4-d \(batched\) or 3-d"),
    (lambda: C.conv2d(tn.zeros(1, 1, 2, 2), tn.zeros(1, 1, 3, 3)), r"too small"),
    (lambda: C.conv2d(tn.zeros(1, 1, 5, 5), tn.zeros(1, 1, 3, 3), stride=2, padding="same"),
     r"padding='same' is not supported for strided"),
    (lambda: C.conv2d(tn.zeros(1, 1, 5, 5), tn.zeros(1, 1, 3, 3), padding="full"), r"'valid' or 'same'"),
    (lambda: C.conv2d(tn.zeros(1, 1, 5, 5), tn.zeros(2, 1, 3, 3), tn.zeros(3)), r"bias must have shape \(2,\)"),
    (lambda: C.conv2d(tn.zeros(1, 1, 5, 5), tn.zeros(1, 1, 3, 3, dtype=tn.float64)), r"dtype"),
    (lambda: C.conv_transpose2d(tn.zeros(1, 2, 3, 3), tn.zeros(2, 1, 3, 3), stride=2, output_padding=2),
     r"output_padding \(2, 2\) must be smaller"),
    (lambda: C.conv2d(tn.zeros(1, 1, 5, 5), tn.zeros(1, 1, 3, 3), stride=0), r"stride must be positive"),
])
def test_errors_name_the_op_and_shapes(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
