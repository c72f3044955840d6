"""Build small dataset files in the publishers' formats (imported by the tests here)."""
from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
from tinynn.datasets.formats import encode_idx


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    raw = encode_idx(array)
    path.write_bytes(gzip.compress(raw, mtime=0) if compress else raw)
    return path


def make_mnist_split(folder: Path, prefix: str, n: int, seed: int = 0, compress: bool = True):
    """Random images and labels written as ``{prefix}-images-idx3-ubyte[.gz]`` & co."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
    return images, labels


def cifar_batch_bytes(n: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A CIFAR python batch as the publisher pickles it (dict of bytes keys, protocol 2)."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).tolist()
    batch = {b"batch_label": b"test batch", b"labels": labels, b"data": data,
             b"filenames": [b"img_%d.png" % i for i in range(n)]}
    return pickle.dumps(batch, protocol=2), data, np.asarray(labels)


def make_cifar_archive(path: Path, n_per_batch: int = 4) -> dict:
    """A ``cifar-10-python.tar.gz`` with five small train batches, a test batch and meta."""
    contents, expected = {}, {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        contents[name], data, labels = cifar_batch_bytes(n_per_batch, seed=i)
        expected[name] = (data, labels)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    contents["batches.meta"] = pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2)
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in contents.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return expected


