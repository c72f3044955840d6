"""A NumPy-backed stand-in for CuPy, as strict as CuPy where code usually goes wrong.

It lets the test suite run tinynn's "cuda" code paths on a machine without a GPU,
to find places that only work with NumPy. Like CuPy:

* ``numpy.asarray(cupy_array)`` (implicit conversion to the host) raises TypeError;
  ``.get()`` copies to the host;
* arithmetic, ufuncs and cupy functions that mix a cupy array with a non-0-d NumPy
  array raise TypeError ("Unsupported type <class 'numpy.ndarray'>");
* Numba ``@njit`` functions cannot take these arrays (no buffer protocol);
* reductions return 0-d arrays, not NumPy scalars;
* NumPy functions called on cupy arrays dispatch to "cupy" (NEP 18).

Indexing and item assignment with NumPy index arrays or values are accepted (CuPy
copies them to the device). Only the parts of CuPy that tinynn uses exist.
"""
from __future__ import annotations

import collections
import importlib as _importlib
import traceback

import numpy as _np

__version__ = "14.0.0-fake"

# Every device-to-host transfer (a synchronisation on a real GPU), by the tinynn line that asked for it.
host_transfers: "collections.Counter[str]" = collections.Counter()


def _count_host_transfer(kind: str) -> None:
    for frame in reversed(traceback.extract_stack(limit=12)[:-2]):
        if "/tinynn/" in frame.filename:
            host_transfers[f"{frame.filename.split('/tinynn/')[-1]}:{frame.lineno} ({kind})"] += 1
            return
_LENIENT = {"asarray", "array", "asanyarray", "ascontiguousarray", "get_array_module"}


def _strict_unwrap(value, where: str):
    """The NumPy array behind ``value``; NumPy arrays themselves are refused (CuPy never converts them implicitly)."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, _np.ndarray):
        if value.ndim == 0:
            return value
        raise TypeError(f"Unsupported type {type(value)} (a NumPy array mixed with cupy arrays in {where})")
    if isinstance(value, (list, tuple)):
        return type(value)(_strict_unwrap(v, where) for v in value)
    if isinstance(value, dict):
        return {k: _strict_unwrap(v, where) for k, v in value.items()}
    return value


def _lenient_unwrap(value):
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, (list, tuple)):
        return type(value)(_lenient_unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _lenient_unwrap(v) for k, v in value.items()}
    return value


def _wrap(value):
    if isinstance(value, _np.ndarray):
        return ndarray(value)
    if isinstance(value, _np.generic):
        return ndarray(_np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class _FakeDevice:
    id = 0
    compute_capability = "90"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        pass


def _binary(name):
    def op(self, other):
        return _wrap(getattr(self._a, name)(_strict_unwrap(other, f"ndarray.{name}")))
    op.__name__ = name
    return op


def _inplace(name):
    def op(self, other):
        getattr(self._a, name)(_strict_unwrap(other, f"ndarray.{name}"))
        return self
    op.__name__ = name
    return op


class ndarray:
    """A cupy.ndarray: a NumPy array the host must not touch implicitly."""

    __array_priority__ = 100
    __hash__ = None

    def __init__(self, array):
        object.__setattr__(self, "_a", array)

    # --- the host boundary
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def get(self, stream=None, order="C", out=None):
        _count_host_transfer("get")
        return _np.array(self._a, order=order)

    @property
    def device(self):
        return _FakeDevice()

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        result = getattr(ufunc, method)(*_strict_unwrap(inputs, f"numpy.{ufunc.__name__}"),
                                        **_strict_unwrap(kwargs, ufunc.__name__))
        return _wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        return _wrap(func(*_strict_unwrap(args, f"numpy.{func.__name__}"),
                          **_strict_unwrap(kwargs, func.__name__)))

    # --- attributes and methods come from the NumPy array
    def __getattr__(self, name):
        if name in ("item", "tolist"):
            _count_host_transfer(name)
        if name.startswith("__"):  # no __array_interface__ & co: the host cannot see device memory
            raise AttributeError(name)
        attribute = getattr(self._a, name)
        if callable(attribute):
            def method(*args, **kwargs):
                return _wrap(attribute(*_strict_unwrap(args, f"ndarray.{name}"),
                                       **_strict_unwrap(kwargs, f"ndarray.{name}")))
            return method
        return _wrap(attribute)

    def __setattr__(self, name, value):
        setattr(self._a, name, _lenient_unwrap(value))

    # --- indexing (NumPy indices and values are copied to the "device", as CuPy does)
    def __getitem__(self, index):
        return _wrap(self._a[_lenient_unwrap(index)])

    def __setitem__(self, index, value):
        self._a[_lenient_unwrap(index)] = _lenient_unwrap(value)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(v) for v in self._a)

    def __bool__(self):
        _count_host_transfer("bool")
        return bool(self._a)

    def __float__(self):
        _count_host_transfer("float")
        return float(self._a)

    def __int__(self):
        _count_host_transfer("int")
        return int(self._a)

    def __complex__(self):
        return complex(self._a)

    def __format__(self, spec):
        return format(self._a, spec)

    def __repr__(self):
        return repr(self._a).replace("array(", "cupy_array(")

    def __str__(self):
        return str(self._a)

    def __neg__(self):
        return _wrap(-self._a)

    def __pos__(self):
        return _wrap(+self._a)

    def __abs__(self):
        return _wrap(abs(self._a))

    def __invert__(self):
        return _wrap(~self._a)

    def __copy__(self):
        return ndarray(self._a.copy())

    def __deepcopy__(self, memo):
        return ndarray(self._a.copy())


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor", "lshift",
              "rshift"):
    setattr(ndarray, f"__{_name}__", _binary(f"__{_name}__"))
    setattr(ndarray, f"__r{_name}__", _binary(f"__r{_name}__"))
    setattr(ndarray, f"__i{_name}__", _inplace(f"__i{_name}__"))
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(ndarray, f"__{_name}__", _binary(f"__{_name}__"))
ndarray.__module__ = "cupy"


class _Ufunc:
    """A NumPy ufunc with its methods (``at``, ``reduce``, ...), refusing NumPy arrays."""

    def __init__(self, ufunc):
        self._ufunc = ufunc

    def __call__(self, *args, **kwargs):
        return _wrap(self._ufunc(*_strict_unwrap(args, self._ufunc.__name__),
                                 **_strict_unwrap(kwargs, self._ufunc.__name__)))

    def __getattr__(self, name):
        method = getattr(self._ufunc, name)
        if not callable(method):
            return method

        def call(*args, **kwargs):
            return _wrap(method(*_strict_unwrap(args, f"{self._ufunc.__name__}.{name}"),
                                **_strict_unwrap(kwargs, f"{self._ufunc.__name__}.{name}")))
        return call


def __getattr__(name):
    attribute = getattr(_np, name)
    if isinstance(attribute, _np.ufunc):
        return _Ufunc(attribute)
    if isinstance(attribute, type) or not callable(attribute):
        return attribute  # dtypes (cupy.float32 is numpy.float32), constants

    def function(*args, **kwargs):
        if name in _LENIENT:
            return _wrap(_np.array(attribute(*_lenient_unwrap(args), **_lenient_unwrap(kwargs)), copy=False,
                                   subok=False)) if name != "get_array_module" else None
        return _wrap(attribute(*_strict_unwrap(args, f"cupy.{name}"), **_strict_unwrap(kwargs, f"cupy.{name}")))
    function.__name__ = name
    return function


def asarray(a, dtype=None, order=None):
    if isinstance(a, ndarray) and (dtype is None or _np.dtype(dtype) == a.dtype):
        return a
    return ndarray(_np.array(_lenient_unwrap(a), dtype=dtype, order=order or "K", copy=None))


def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    return ndarray(_np.array(_lenient_unwrap(obj), dtype=dtype, copy=True, order=order, ndmin=ndmin))


def get_array_module(*args):
    import sys
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else _np


class _MemoryPool:
    def free_all_blocks(self):
        pass

    def used_bytes(self):
        return 0


def get_default_memory_pool():
    return _MemoryPool()


def get_default_pinned_memory_pool():
    return _MemoryPool()


# The submodules use _wrap and ndarray, so they come last; imported by name because
# ``from . import random`` would find numpy.random through the module __getattr__.
cuda = _importlib.import_module(__name__ + ".cuda")
lib = _importlib.import_module(__name__ + ".lib")
random = _importlib.import_module(__name__ + ".random")
