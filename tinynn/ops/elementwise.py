"""Elementwise ops. Each ``Function`` has its forward (on arrays) and its backward
(a formula in tinynn ops, so it can itself be differentiated).

The engine reduces broadcast gradients to each input's shape, so backward formulas
below never sum over broadcast dims themselves.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd.function import Function
from ..backend.device import get_array_module as _xp  # numpy or cupy, for an array
from ._common import binary_operands, is_tensor




# --- binary arithmetic ----------------------------------------------------------
class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad):  # d(a+b) = da + db
        return grad, grad


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, grad):  # d(a-b) = da - db
        return grad, (-grad if ctx.needs_input_grad[1] else None)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):  # d(ab) = b da + a db
        a, b = ctx.saved_tensors
        return (grad * b if ctx.needs_input_grad[0] else None,
                grad * a if ctx.needs_input_grad[1] else None)


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad):  # d(a/b) = da / b - a db / b^2
        a, b = ctx.saved_tensors
        grad_a = grad / b if ctx.needs_input_grad[0] else None
        grad_b = -grad * a / (b * b) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


class Pow(Function):
    """a ** b with both tensors."""

    @staticmethod
    def forward(ctx, a, b):
        y = a ** b
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx, grad):  # d(a^b) = b a^(b-1) da + a^b log(a) db
        a, b, y = ctx.saved_tensors
        grad_a = None
        if ctx.needs_input_grad[0]:  # where b == 0, a^b is constant 1: gradient 0 (also at a == 0)
            grad_a = where(b == 0, 0.0, grad * b * a ** (b - 1))
        grad_b = None
        if ctx.needs_input_grad[1]:  # where a == 0 the limit is 0 (PyTorch's convention)
            grad_b = grad * y * where(a == 0, 0.0, log(where(a == 0, 1.0, a)))
        return grad_a, grad_b


class PowScalar(Function):
    """a ** p with a constant Python exponent p."""

    @staticmethod
    def forward(ctx, a, p):
        ctx.save_for_backward(a)
        ctx.p = p
        return a ** p

    @staticmethod
    def backward(ctx, grad):  # d(a^p) = p a^(p-1) da
        (a,) = ctx.saved_tensors
        p = ctx.p
        if p == 0:
            return grad * 0.0, None
        if p == 1:
            return grad, None
        if p == 2:
            return grad * a * 2.0, None
        return grad * (p * a ** (p - 1)), None


class Maximum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _xp(a).maximum(a, b)

    @staticmethod
    def backward(ctx, grad):  # the larger input gets the gradient; ties split it in half (PyTorch)
        a, b = ctx.saved_tensors
        share_a = (a > b).to(grad.dtype) + (a == b).to(grad.dtype) * 0.5
        return grad * share_a, grad * (1.0 - share_a)


class Minimum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _xp(a).minimum(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        share_a = (a < b).to(grad.dtype) + (a == b).to(grad.dtype) * 0.5
        return grad * share_a, grad * (1.0 - share_a)


class Where(Function):
    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.save_for_backward(condition)
        return _xp(a).where(condition, a, b)

    @staticmethod
    def backward(ctx, grad):  # the gradient goes to whichever input was picked
        (condition,) = ctx.saved_tensors
        zero = grad.new_zeros(())
        return (None,
                where(condition, grad, zero) if ctx.needs_input_grad[1] else None,
                where(condition, zero, grad) if ctx.needs_input_grad[2] else None)


# --- unary math -------------------------------------------------------------------
class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Abs(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return _xp(a).abs(a)

    @staticmethod
    def backward(ctx, grad):  # d|a| = sign(a) da  (0 at a = 0)
        (a,) = ctx.saved_tensors
        return grad * sign(a)


class Exp(Function):
    @staticmethod
    def forward(ctx, a):
        y = _xp(a).exp(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):  # d e^a = e^a da
        (y,) = ctx.saved_tensors
        return grad * y


class Log(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return _xp(a).log(a)

    @staticmethod
    def backward(ctx, grad):  # d log a = da / a
        (a,) = ctx.saved_tensors
        return grad / a


class Log1p(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return _xp(a).log1p(a)

    @staticmethod
    def backward(ctx, grad):  # d log(1+a) = da / (1+a)
        (a,) = ctx.saved_tensors
        return grad / (a + 1.0)


class Expm1(Function):
    @staticmethod
    def forward(ctx, a):
        y = _xp(a).expm1(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):  # d (e^a - 1) = e^a da = (y + 1) da
        (y,) = ctx.saved_tensors
        return grad * (y + 1.0)


class Sqrt(Function):
    @staticmethod
    def forward(ctx, a):
        y = _xp(a).sqrt(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):  # d sqrt(a) = da / (2 sqrt(a))
        (y,) = ctx.saved_tensors
        return grad / (y * 2.0)


class Rsqrt(Function):
    @staticmethod
    def forward(ctx, a):
        y = 1.0 / _xp(a).sqrt(a)
        y = y.astype(a.dtype, copy=False)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):  # d a^(-1/2) = -1/2 a^(-3/2) da
        (y,) = ctx.saved_tensors
        return grad * (y * y * y) * -0.5


class Sin(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return _xp(a).sin(a)

    @staticmethod
    def backward(ctx, grad):  # d sin a = cos a da
        (a,) = ctx.saved_tensors
        return grad * cos(a)


class Cos(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return _xp(a).cos(a)

    @staticmethod
    def backward(ctx, grad):  # d cos a = -sin a da
        (a,) = ctx.saved_tensors
        return -grad * sin(a)


class Tanh(Function):
    @staticmethod
    def forward(ctx, a):
        y = _xp(a).tanh(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):  # d tanh a = (1 - tanh^2 a) da
        (y,) = ctx.saved_tensors
        return grad * (1.0 - y * y)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, a):
        xp = _xp(a)
        # 1 / (1 + e^-a) for a >= 0 and e^a / (1 + e^a) otherwise: neither overflows.
        e = xp.exp(-xp.abs(a))
        y = xp.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(a.dtype, copy=False)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):  # d sigmoid(a) = y (1 - y) da
        (y,) = ctx.saved_tensors
        return grad * (y * (1.0 - y))


class Relu(Function):
    @staticmethod
    def forward(ctx, a):
        y = _xp(a).maximum(a, 0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):  # d relu(a) = [a > 0] da
        (y,) = ctx.saved_tensors
        return grad * (y.data > 0)


class Clamp(Function):
    @staticmethod
    def forward(ctx, a, low, high):
        ctx.save_for_backward(a)
        ctx.low, ctx.high = low, high
        return _xp(a).clip(a, low, high)

    @staticmethod
    def backward(ctx, grad):  # the gradient passes where low <= a <= high
        (a,) = ctx.saved_tensors
        xp = a.xp
        inside = xp.ones(a.shape, dtype=bool)
        if ctx.low is not None:
            inside &= a.data >= ctx.low
        if ctx.high is not None:
            inside &= a.data <= ctx.high
        return grad * inside, None, None


class Erf(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return _erf_array(a)

    @staticmethod
    def backward(ctx, grad):  # d erf(a) = 2/sqrt(pi) e^(-a^2) da
        (a,) = ctx.saved_tensors
        return grad * exp(-(a * a)) * (2.0 / math.sqrt(math.pi))


def _erf_array(a):
    """erf on arrays: NumPy has none, so the registry's cpu ``erf`` kernel (Numba, see
    tinynn/kernels/cpu/activation.py) on cpu, CuPy's on cuda."""
    if not isinstance(a, (np.ndarray, np.generic)):
        import cupyx.scipy.special
        return cupyx.scipy.special.erf(a)
    from ..backend import kernels
    a = np.asarray(a)
    if a.dtype == np.float16:
        return _erf_array(a.astype(np.float32)).astype(np.float16)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return kernels.get("erf", "cpu")(a if a.flags.c_contiguous else np.ascontiguousarray(a))


class ZeroGradient(Function):
    """Piecewise-constant functions (floor, ceil, round, sign): derivative 0 almost everywhere."""

    @staticmethod
    def forward(ctx, a, fn_name):
        return getattr(_xp(a), fn_name)(a)

    @staticmethod
    def backward(ctx, grad):
        return grad * 0.0, None


class Cast(Function):
    @staticmethod
    def forward(ctx, a, dtype):
        ctx.input_dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, grad):  # the gradient is cast back
        return cast(grad, ctx.input_dtype) if ctx.input_dtype.kind in "fc" else None, None


class ToDevice(Function):
    @staticmethod
    def forward(ctx, a, device):
        from ..backend.device import array_module_for, device_of_array
        ctx.source = device_of_array(a)
        ctx.output_device = device
        if device.type == "cpu":
            return a.get()
        xp = array_module_for(device)
        with xp.cuda.Device(device.index or 0):
            return xp.asarray(a)

    @staticmethod
    def backward(ctx, grad):  # the gradient travels back
        return to_device(grad, ctx.source), None


class Clone(Function):
    @staticmethod
    def forward(ctx, a):
        return a.copy()

    @staticmethod
    def backward(ctx, grad):
        return grad


class Contiguous(Function):
    @staticmethod
    def forward(ctx, a):
        return _xp(a).ascontiguousarray(a)

    @staticmethod
    def backward(ctx, grad):
        return grad


# --- public functions ------------------------------------------------------------
def _broadcasting(fn_class, op: str, *operands):
    """``fn_class.apply(*operands)``, turning NumPy's broadcasting error into one that
    names the op and the shapes (the check costs nothing unless the op fails)."""
    try:
        return fn_class.apply(*operands)
    except ValueError:
        shapes = [t.shape for t in operands]
        try:
            np.broadcast_shapes(*shapes)
        except ValueError:
            raise ValueError(f"{op}: shapes {' and '.join(map(str, shapes))} cannot be broadcast together") from None
        raise


def add(a, b, alpha=1):
    a, b = binary_operands(a, b)
    if alpha != 1:
        b = mul(b, alpha)
    return _broadcasting(Add, "add", a, b)


def sub(a, b, alpha=1):
    a, b = binary_operands(a, b)
    if alpha != 1:
        b = mul(b, alpha)
    return _broadcasting(Sub, "sub", a, b)


def mul(a, b):
    return _broadcasting(Mul, "mul", *binary_operands(a, b))


def div(a, b, rounding_mode=None):
    if rounding_mode == "floor":
        return floor_divide(a, b)
    if rounding_mode == "trunc":
        q = div(a, b)
        return ZeroGradient.apply(q, "trunc")
    a, b = binary_operands(a, b)
    if a.dtype.kind != "f" and b.dtype.kind != "f":  # true division of integers gives floats
        from ..backend.dtypes import get_default_dtype
        a, b = cast(a, get_default_dtype()), cast(b, get_default_dtype())
    return _broadcasting(Div, "div", a, b)


def true_divide(a, b):
    return div(a, b)


def pow(a, b):
    if is_tensor(a) and not is_tensor(b) and isinstance(b, (int, float)):
        if a.dtype.kind != "f" and isinstance(b, float):
            from ..backend.dtypes import get_default_dtype
            a = cast(a, get_default_dtype())
        return PowScalar.apply(a, b)
    return _broadcasting(Pow, "pow", *binary_operands(a, b))


def floor_divide(a, b):
    a, b = binary_operands(a, b)
    from ..tensor import Tensor
    return Tensor._make(a.xp.floor_divide(a.data, b.data), a.device)


def remainder(a, b):
    a, b = binary_operands(a, b)
    return sub(a, mul(floor_divide(a, b), b))


def maximum(a, b):
    return _broadcasting(Maximum, "maximum", *binary_operands(a, b))


def minimum(a, b):
    return _broadcasting(Minimum, "minimum", *binary_operands(a, b))


def where(condition, a, b):
    """Pick ``a`` where ``condition`` holds, else ``b`` (broadcasting all three)."""
    from ..creation import as_tensor
    if not is_tensor(a) and not is_tensor(b):
        a = as_tensor(a, device=condition.device if is_tensor(condition) else None)
    a, b = binary_operands(a, b)
    condition = condition if is_tensor(condition) else as_tensor(condition, device=a.device)
    if condition.dtype.kind != "b":
        condition = condition.bool()
    return _broadcasting(Where, "where", condition, a, b)


def _unary(fn_class):
    def op(a):
        if a.dtype.kind != "f":
            from ..backend.dtypes import get_default_dtype
            a = cast(a, get_default_dtype())
        return fn_class.apply(a)
    op.__name__ = fn_class.__name__.lower()
    op.__doc__ = f"Elementwise {fn_class.__name__.lower()} (differentiable)."
    return op


neg = lambda a: Neg.apply(a)  # noqa: E731
exp = _unary(Exp)
log = _unary(Log)
log1p = _unary(Log1p)
expm1 = _unary(Expm1)
sqrt = _unary(Sqrt)
rsqrt = _unary(Rsqrt)
sin = _unary(Sin)
cos = _unary(Cos)
tanh = _unary(Tanh)
sigmoid = _unary(Sigmoid)
erf = _unary(Erf)


def abs(a):
    return Abs.apply(a)


def relu(a):
    return Relu.apply(a)


def clamp(a, min=None, max=None):
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if is_tensor(min) or is_tensor(max):  # tensor bounds: compose from maximum/minimum
        out = a if min is None else maximum(a, min)
        return out if max is None else minimum(out, max)
    return Clamp.apply(a, min, max)


clip = clamp


def square(a):
    return PowScalar.apply(a, 2)


def reciprocal(a):
    return div(1.0, a)


def sign(a):
    return ZeroGradient.apply(a, "sign")


def floor(a):
    return ZeroGradient.apply(a, "floor")


def ceil(a):
    return ZeroGradient.apply(a, "ceil")


def round(a):
    return ZeroGradient.apply(a, "round")


def trunc(a):
    return ZeroGradient.apply(a, "trunc")


def cast(a, dtype):
    return Cast.apply(a, np.dtype(dtype))


def to_device(a, device):
    return ToDevice.apply(a, device)


def clone(a):
    return Clone.apply(a)


def contiguous(a):
    if a.data.flags.c_contiguous:
        return a
    return Contiguous.apply(a)


# --- comparisons and logic: not differentiable, computed directly -----------------
def _compare(name):
    def op(a, b):
        a, b = binary_operands(a, b)
        from ..tensor import Tensor
        try:
            return Tensor._make(getattr(a.xp, name)(a.data, b.data), a.device)
        except ValueError:
            raise ValueError(f"{name}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None
    op.__name__ = name
    return op


eq = _compare("equal")
ne = _compare("not_equal")
lt = _compare("less")
le = _compare("less_equal")
gt = _compare("greater")
ge = _compare("greater_equal")
logical_and = _compare("logical_and")
logical_or = _compare("logical_or")
logical_xor = _compare("logical_xor")


def _predicate(name):
    def op(a):
        from ..tensor import Tensor
        return Tensor._make(getattr(a.xp, name)(a.data), a.device)
    op.__name__ = name
    return op


logical_not = _predicate("logical_not")
isnan = _predicate("isnan")
isinf = _predicate("isinf")
isfinite = _predicate("isfinite")


def allclose(a, b, rtol=1e-5, atol=1e-8, equal_nan=False) -> bool:
    a, b = binary_operands(a, b)
    return bool(a.xp.allclose(a.data, b.data, rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(a, b) -> bool:
    return a.shape == b.shape and bool((a.data == b.data).all())
