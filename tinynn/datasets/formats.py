"""Readers for the publishers' own dataset file formats: IDX (MNIST family) and
CIFAR-10's python batches.

Both readers validate what they read (magic numbers, sizes, label ranges) and
raise ``DatasetFormatError`` naming the file and what is wrong, so a truncated
download or a wrong file never turns into a silent garbage dataset.
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile

import numpy as np


class DatasetFormatError(ValueError):
    """A dataset file is not in the format it should be (bad magic, wrong size, ...)."""


# ----------------------------------------------------------------------------- IDX
# The IDX format (http://yann.lecun.com/exdb/mnist/): a 4-byte magic number
#   0x00 0x00 <type code> <number of dimensions>
# then one big-endian uint32 per dimension, then the values in C order.
_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: "str | os.PathLike") -> bytes:
    """The file's bytes, gunzipped when it is gzip-compressed (by magic, not by name)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise DatasetFormatError(f"{path}: corrupt or truncated gzip stream ({e})") from e
    return raw


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse an IDX byte string into an array of its declared type and shape."""
    if len(raw) < 4:
        raise DatasetFormatError(f"{name}: too short to be an IDX file ({len(raw)} bytes)")
    zero0, zero1, type_code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0 or type_code not in _IDX_TYPES or not 1 <= ndim <= 4:
        raise DatasetFormatError(
            f"{name}: bad IDX magic number 0x{raw[:4].hex()} (expected 0x0000<type><ndim>, "
            "e.g. 0x00000803 for images or 0x00000801 for labels)")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DatasetFormatError(f"{name}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_TYPES[type_code]
    expected = int(np.prod(shape)) * dtype.itemsize
    actual = len(raw) - header_size
    if actual != expected:
        raise DatasetFormatError(
            f"{name}: IDX header declares shape {shape} ({expected} bytes of data) "
            f"but the file holds {actual} bytes (truncated or corrupt file?)")
    array = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)  # native byte order, writable


def read_idx(path: "str | os.PathLike") -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a NumPy array."""
    return parse_idx(_read_bytes(path), name=str(path))


def read_idx_images(path: "str | os.PathLike") -> np.ndarray:
    """Read an IDX image file: uint8, N×H×W."""
    images = read_idx(path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetFormatError(
            f"{path}: expected an IDX image file (uint8, 3 dimensions N×H×W), "
            f"got {images.dtype} with shape {images.shape}")
    return images


def read_idx_labels(path: "str | os.PathLike", num_classes: int = 10) -> np.ndarray:
    """Read an IDX label file: int64, N, every value in [0, num_classes)."""
    labels = read_idx(path)
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DatasetFormatError(
            f"{path}: expected an IDX label file (uint8, 1 dimension), "
            f"got {labels.dtype} with shape {labels.shape}")
    check_labels(labels, num_classes, str(path))
    return labels.astype(np.int64)


def check_labels(labels: np.ndarray, num_classes: int, name: str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetFormatError(
            f"{name}: labels must lie in [0, {num_classes}), found values in "
            f"[{labels.min()}, {labels.max()}]")


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array (used by tools/ and tests to write files)."""
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"encode_idx: only uint8 arrays are supported, got {array.dtype}")
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.tobytes()


def write_idx_gz(array: np.ndarray, path: "str | os.PathLike") -> None:
    """Write a uint8 array as a gzip-compressed IDX file, byte-for-byte reproducibly (mtime 0)."""
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
        f.write(encode_idx(array))


# -------------------------------------------------------------------- CIFAR-10
# CIFAR-10's "python version" ships each batch as a pickled dict
#   {b"batch_label": bytes, b"labels": [int]*10000, b"data": uint8 array 10000×3072,
#    b"filenames": [bytes]*10000}
# pickled by Python 2 with NumPy. Unpickling runs whatever callables the file names,
# so a plain ``pickle.load`` on a downloaded file would execute code from the
# network. ``_SafeUnpickler`` only lets the file name the few callables that such a
# batch needs to rebuild a NumPy array (``_reconstruct``, ``ndarray``, ``dtype``);
# the dict, lists, ints and bytes are built by pickle's own opcodes without calling
# anything. Python 3 writes bytes in protocol-2 pickles as ``_codecs.encode(text,
# "latin1")``, so that one call is allowed too, through a stand-in that accepts
# only latin-1. Any other global (os.system, builtins.eval, ...) raises.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if encoding.lower().replace("-", "") != "latin1":
        raise DatasetFormatError(f"refusing to decode pickled text with codec {encoding!r}")
    return text.encode("latin1")


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) not in _ALLOWED_GLOBALS:
            raise DatasetFormatError(
                f"refusing to unpickle {module}.{name}: a CIFAR batch only contains "
                "dicts, lists, bytes, ints and NumPy arrays")
        if module == "numpy.core.multiarray":  # NumPy 2 moved it; old pickles name the old path
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def load_cifar_batch(raw: bytes, name: str = "<bytes>", num_classes: int = 10):
    """Parse one CIFAR python batch: returns (images uint8 N×32×32×3, labels int64 N)."""
    try:
        batch = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except DatasetFormatError as e:
        raise DatasetFormatError(f"{name}: {e}") from None
    except Exception as e:  # truncated or not a pickle at all
        raise DatasetFormatError(f"{name}: not a readable CIFAR python batch ({type(e).__name__}: {e})") from e
    if not isinstance(batch, dict):
        raise DatasetFormatError(f"{name}: expected a pickled dict, got {type(batch).__name__}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise DatasetFormatError(f"{name}: a CIFAR batch needs 'data' and 'labels', found {sorted(batch)}")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetFormatError(f"{name}: 'data' must be uint8 N×3072, got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise DatasetFormatError(f"{name}: {data.shape[0]} images but {labels.shape[0]} labels")
    check_labels(labels, num_classes, name)
    # rows are 1024 red, 1024 green, 1024 blue values: N×3×32×32 -> N×32×32×3 (HWC, like torchvision)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
    return images, labels


def load_cifar_meta(raw: bytes, name: str = "<bytes>") -> list[str]:
    """The class names from CIFAR-10's ``batches.meta``."""
    try:
        meta = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
        names = meta[b"label_names"] if b"label_names" in meta else meta["label_names"]
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    except Exception as e:
        raise DatasetFormatError(f"{name}: not a readable CIFAR batches.meta ({e})") from e


def read_cifar_archive(path: "str | os.PathLike", members: list[str]) -> dict[str, bytes]:
    """The bytes of the named batches (e.g. ``data_batch_1``) inside ``cifar-10-python.tar.gz``."""
    wanted = set(members)
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                base = os.path.basename(member.name)
                if member.isfile() and base in wanted:
                    found[base] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DatasetFormatError(f"{path}: corrupt or truncated tar.gz archive ({e})") from e
    missing = wanted - set(found)
    if missing:
        raise DatasetFormatError(f"{path}: archive lacks {sorted(missing)}")
    return found
