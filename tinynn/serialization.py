"""Safe checkpoints: ``tn.save(obj, path)`` and ``tn.load(path)``.

A checkpoint is an ordinary ``.npz`` file (a zip of ``.npy`` arrays) that can hold
nothing but plain arrays:

* every tensor and array in ``obj`` becomes one entry, ``arr_0``, ``arr_1``, ...;
* the structure around them (dicts, lists, tuples, ints, floats, bools, strings,
  None) is written as JSON, stored as a uint8 array of UTF-8 bytes in the entry
  ``__tinynn__``; its leaves point at the array entries by name.

Both sides use ``allow_pickle=False``, so loading a file can never run code from it
(unlike ``pickle``/``torch.load``): a pickle, an object array, a truncated or
otherwise damaged file raises :class:`CheckpointError` and nothing is executed.

Writes are atomic: the file is written to a temporary name in the same directory,
flushed and fsync'ed, then renamed over ``path`` with ``os.replace``. If anything
fails midway, the old checkpoint at ``path`` is left untouched.

The JSON encoding of one value (``encode_value`` below):

=====================  ==================================================
Python value           JSON node
=====================  ==================================================
None, bool, int, str   itself (JSON keeps ``1``, ``1.0`` and ``true`` apart)
finite float           itself (``repr`` round trip is exact)
nan / inf / -inf       ``{"type": "float", "value": "nan"}`` and so on
list                   a JSON array of nodes
tuple                  ``{"type": "tuple", "items": [...]}``
dict                   ``{"type": "dict", "keys": [...], "values": [...]}``
Tensor                 ``{"type": "tensor", "key": "arr_3", "requires_grad": false}``
numpy array            ``{"type": "ndarray", "key": "arr_4"}``
numpy scalar           ``{"type": "numpy_scalar", "key": "arr_5"}``
=====================  ==================================================

Dict keys are nodes too, so ``{0: ...}`` (optimizer state) comes back with the int key.
"""
from __future__ import annotations

import io
import json
import math
import os
import secrets
from typing import Any, BinaryIO

import numpy as np

from .backend.device import CPU, array_module_for, as_device, device
from .tensor import Tensor

__all__ = ["save", "load", "CheckpointError"]

FORMAT_NAME = "tinynn.checkpoint"
FORMAT_VERSION = 1
STRUCTURE_ENTRY = "__tinynn__"
_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"


class CheckpointError(ValueError):
    """The file is not a tinynn checkpoint, or it is corrupt (loading executed nothing)."""


# --------------------------------------------------------------------------- encoding

def _to_host(array) -> np.ndarray:
    """A NumPy copy-or-view of a NumPy or CuPy array (cuda arrays are copied to the host)."""
    if isinstance(array, np.ndarray):
        return array
    if hasattr(array, "get"):  # cupy.ndarray
        return array.get()
    return np.asarray(array)


class _Encoder:
    """Walks ``obj`` once, collecting arrays and building the JSON structure."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def add_array(self, array: np.ndarray, where: str) -> str:
        if array.dtype.hasobject or array.dtype.kind not in "biufc":
            raise TypeError(f"tn.save: cannot save an array of dtype {array.dtype} at {where} "
                            "(only bool, integer, float and complex arrays are allowed)")
        key = f"arr_{len(self.arrays)}"
        self.arrays[key] = array
        return key

    def encode(self, obj: Any, where: str) -> Any:
        if isinstance(obj, np.generic) and obj.dtype.kind in "biufc":  # before float: np.float64 is a float
            return {"type": "numpy_scalar", "key": self.add_array(np.asarray(obj), where)}
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return int(obj)  # an int subclass (e.g. an IntEnum) is saved as its value
        if isinstance(obj, float):
            if math.isfinite(obj):
                return float(obj)
            return {"type": "float", "value": repr(float(obj))}  # 'nan', 'inf', '-inf'
        if isinstance(obj, Tensor):
            key = self.add_array(_to_host(obj.data), where)
            return {"type": "tensor", "key": key, "requires_grad": bool(obj.requires_grad)}
        if isinstance(obj, np.ndarray) or type(obj).__module__.startswith("cupy"):
            return {"type": "ndarray", "key": self.add_array(_to_host(obj), where)}
        if isinstance(obj, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if isinstance(obj, tuple):
            return {"type": "tuple", "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, dict):
            keys, values = [], []
            for k, v in obj.items():
                if not (k is None or isinstance(k, (bool, int, float, str, tuple))):
                    raise TypeError(f"tn.save: dict key {k!r} at {where} has type {type(k).__name__}; "
                                    "keys must be str, int, float, bool, None or tuples of them")
                keys.append(self.encode(k, f"{where} key {k!r}"))
                values.append(self.encode(v, f"{where}[{k!r}]"))
            return {"type": "dict", "keys": keys, "values": values}
        raise TypeError(f"tn.save: cannot save an object of type {type(obj).__module__}.{type(obj).__qualname__} "
                        f"at {where}; checkpoints hold dicts, lists, tuples, tensors, arrays, ints, floats, "
                        "bools, strings and None")


def _encode(obj: Any) -> dict[str, np.ndarray]:
    """All the entries of the .npz file for ``obj``: the arrays plus the JSON structure."""
    encoder = _Encoder()
    root = encoder.encode(obj, "obj")
    document = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "root": root}
    text = json.dumps(document, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    entries = dict(encoder.arrays)
    entries[STRUCTURE_ENTRY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return entries


def _write_npz(file: BinaryIO, entries: dict[str, np.ndarray]) -> None:
    # a file object, so NumPy writes exactly there and adds no '.npz' suffix
    np.savez(file, allow_pickle=False, **entries)


# --------------------------------------------------------------------------- saving

def save(obj: Any, f: "str | os.PathLike[str] | BinaryIO") -> None:
    """Save ``obj`` (nested dicts/lists/tuples of tensors, arrays and Python scalars) to ``f``.

    ``f`` is a path, used exactly as given, or a binary file object. Writing to a path
    is atomic: a reader sees either the old file or the complete new one.
    """
    entries = _encode(obj)  # raise on unsupported objects before touching the disk
    if hasattr(f, "write"):
        _write_npz(f, entries)
        return
    path = os.fspath(f)
    directory = os.path.dirname(os.path.abspath(path))
    tmp_path = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
    # O_EXCL: never reuse an existing file; mode 0o666 minus the umask, as for an ordinary new file
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as tmp:
            _write_npz(tmp, entries)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); harmless where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- loading

class _Decoder:
    """Rebuilds the saved object from the JSON structure and the array entries."""

    def __init__(self, npz, name: str, device: device) -> None:
        self.npz = npz
        self.name = name
        self.device = device

    def fail(self, why: str) -> CheckpointError:
        return CheckpointError(f"tn.load: {self.name} is not a valid tinynn checkpoint or is corrupt: {why}")

    def array(self, node: dict) -> np.ndarray:
        key = node.get("key")
        if not isinstance(key, str) or key == STRUCTURE_ENTRY or key not in self.npz.files:
            raise self.fail(f"missing array entry {key!r}")
        array = self.npz[key]  # allow_pickle=False: an object array raises here
        if array.dtype.hasobject or array.dtype.kind not in "biufc":
            raise self.fail(f"array entry {key!r} has unsupported dtype {array.dtype}")
        return array

    def decode(self, node: Any) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict):
            raise self.fail(f"unexpected JSON node {node!r:.80}")
        kind = node.get("type")
        if kind == "dict":
            keys, values = node.get("keys"), node.get("values")
            if not isinstance(keys, list) or not isinstance(values, list) or len(keys) != len(values):
                raise self.fail("malformed dict node")
            return {self.decode(k): self.decode(v) for k, v in zip(keys, values)}
        if kind == "tuple":
            items = node.get("items")
            if not isinstance(items, list):
                raise self.fail("malformed tuple node")
            return tuple(self.decode(v) for v in items)
        if kind == "float":
            value = node.get("value")
            if value not in ("nan", "inf", "-inf"):
                raise self.fail(f"malformed float node {value!r}")
            return float(value)
        if kind == "ndarray":
            return self.array(node)
        if kind == "numpy_scalar":
            return self.array(node)[()]
        if kind == "tensor":
            array = self.array(node)
            requires_grad = node.get("requires_grad") is True and array.dtype.kind in "fc"
            if self.device != CPU:
                array = _array_on(array, self.device)
            return Tensor._make(array, self.device, requires_grad=requires_grad)
        raise self.fail(f"unknown node type {kind!r}")


def load(f: "str | os.PathLike[str] | BinaryIO", map_location: "str | device | None" = None,
         weights_only: bool = True) -> Any:
    """Load an object written by :func:`save`. Tensors come back on the cpu, or on
    ``map_location`` if given (e.g. ``"cuda"``); arrays always come back as NumPy arrays.

    Raises :class:`CheckpointError` (a ``ValueError``) for anything that is not an
    intact tinynn checkpoint; no code from the file is ever executed.
    ``weights_only`` is accepted for compatibility with ``torch.load``: loading is
    always as safe as PyTorch's ``weights_only=True``.
    """
    target = as_device(map_location)
    if hasattr(f, "read"):
        return _load_file(f, getattr(f, "name", "the file object"), target)
    with open(f, "rb") as file:
        return _load_file(file, repr(os.fspath(f)), target)


def _array_on(array: np.ndarray, target: device):
    """Copy a host array to ``target`` (a cuda device)."""
    xp = array_module_for(target)
    with xp.cuda.Device(target.index or 0):
        return xp.asarray(array)


def _load_file(file: BinaryIO, name: str, target: device) -> Any:
    def corrupt(why: str) -> CheckpointError:
        return CheckpointError(f"tn.load: {name} is not a tinynn checkpoint or is corrupt: {why}")

    start = file.tell()
    magic = file.read(4)
    file.seek(start)
    if magic not in (_ZIP_MAGIC, _EMPTY_ZIP_MAGIC):
        raise corrupt("it is not an .npz (zip) archive (pickled files are refused)")
    try:
        npz = np.load(file, allow_pickle=False)
    except Exception as e:  # truncated zip directory, bad header, ...
        raise corrupt(f"{type(e).__name__}: {e}") from e
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise corrupt("not an .npz archive")
    with npz:
        if STRUCTURE_ENTRY not in npz.files:
            raise corrupt(f"no {STRUCTURE_ENTRY!r} entry")
        try:
            document = _read_structure(npz[STRUCTURE_ENTRY])
            if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
                raise corrupt("wrong format marker")
            if document.get("version") != FORMAT_VERSION:
                raise corrupt(f"unsupported format version {document.get('version')!r}")
            return _Decoder(npz, name, target).decode(document.get("root"))
        except CheckpointError:
            raise
        except Exception as e:  # bad CRC, truncated entry, object array, bad JSON, deep nesting ...
            raise corrupt(f"{type(e).__name__}: {e}") from e


def _read_structure(array: np.ndarray) -> Any:
    if array.dtype != np.uint8 or array.ndim != 1:
        raise ValueError(f"structure entry has dtype {array.dtype} and shape {array.shape}")
    return json.loads(array.tobytes().decode("utf-8"))
