"""The dtype policy: tinynn's dtypes are NumPy dtypes; float32 is the default."""
from __future__ import annotations

import numpy as np

float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)

half, float, double = float16, float32, float64
int, long = int32, int64

_default_float = float32


def get_default_dtype() -> np.dtype:
    return _default_float


def set_default_dtype(dtype) -> None:
    """Set the dtype that Python floats and ``tn.randn`` & co. produce (float32 or float64)."""
    global _default_float
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {dtype}")
    _default_float = dtype


def as_dtype(dtype) -> np.dtype | None:
    """Accept a NumPy dtype, a type like ``float`` or a name like 'float32'; None stays None."""
    if dtype is None:
        return None
    if dtype is bool:
        return bool_
    try:
        return np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"unknown dtype {dtype!r}") from e


def is_floating(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


def infer_dtype(data) -> np.dtype:
    """The dtype ``tn.tensor(data)`` gives, as PyTorch does: floats -> default float,
    ints -> int64, bools -> bool; arrays keep their own dtype."""
    if hasattr(data, "dtype"):
        return np.dtype(data.dtype)
    arr = np.asarray(data)
    if arr.dtype == np.bool_:
        return bool_
    if arr.dtype.kind in "iu":
        return int64
    if arr.dtype.kind == "f":
        return _default_float
    raise TypeError(f"tensor: cannot make a tensor from data of type {type(data).__name__}")
