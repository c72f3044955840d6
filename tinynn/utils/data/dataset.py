"""Map-style datasets: ``Dataset``, ``TensorDataset``, ``Subset``, ``random_split``.

A dataset may offer ``get_batch(indices)``: it returns an already collated batch
for an integer array of indices. The DataLoader uses it (when no custom
``collate_fn`` is given) instead of calling ``dataset[i]`` once per sample, so an
array-backed dataset costs one NumPy gather per batch instead of a Python loop.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


class Dataset:
    """A map-style dataset: ``len(ds)`` samples, ``ds[i]`` returns sample ``i``."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __add__(self, other: "Dataset") -> "ConcatDataset":
        return ConcatDataset([self, other])


def _rows(tensor, indices):
    """Rows ``indices`` of a Tensor (as a new Tensor, outside autograd) or of an array."""
    import tinynn as tn
    if isinstance(tensor, tn.Tensor):
        data = tensor.data
        if not isinstance(data, np.ndarray):  # cupy: move the indices to the device
            import cupy
            indices = cupy.asarray(indices)
        return tn.Tensor(data[indices])
    return tensor[indices]


class TensorDataset(Dataset):
    """Samples are rows of the given tensors: ``ds[i] == tuple(t[i] for t in tensors)``."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        sizes = [len(t) for t in tensors]
        if any(s != sizes[0] for s in sizes):
            raise ValueError(f"TensorDataset: all tensors need the same first dimension, got sizes {sizes}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return len(self.tensors[0])

    def get_batch(self, indices: np.ndarray):
        indices = np.asarray(indices, dtype=np.int64)
        return tuple(_as_batch(_rows(t, indices)) for t in self.tensors)


def _as_batch(value):
    """NumPy arrays in a batch become Tensors, like the default collate makes them."""
    if isinstance(value, np.ndarray):
        import tinynn as tn
        return tn.from_numpy(np.ascontiguousarray(value))
    return value


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(self.indices) and (self.indices.min() < -len(dataset) or self.indices.max() >= len(dataset)):
            raise IndexError(f"Subset: indices out of range for a dataset of {len(dataset)} samples")

    def __getitem__(self, index):
        if isinstance(index, (list, np.ndarray)):
            return [self.dataset[int(i)] for i in self.indices[index]]
        return self.dataset[int(self.indices[index])]

    def __len__(self) -> int:
        return len(self.indices)

    def __getattr__(self, name):
        # only reached for attributes a Subset lacks: expose get_batch when the base has it
        if name == "get_batch" and hasattr(self.__dict__.get("dataset"), "get_batch"):
            return lambda indices: self.dataset.get_batch(self.indices[np.asarray(indices, dtype=np.int64)])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class ConcatDataset(Dataset):
    """Several datasets one after the other."""

    def __init__(self, datasets: Sequence[Dataset]):
        self.datasets = list(datasets)
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return self.cumulative_sizes[-1] if self.cumulative_sizes else 0

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"ConcatDataset: index {index} out of range for {len(self)} samples")
        which = int(np.searchsorted(self.cumulative_sizes, index, side="right"))
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - start]


def _lengths_from_fractions(fractions: Sequence[float], n: int) -> list[int]:
    """PyTorch's rule: floor each share, then hand the remainder out one by one."""
    lengths = [math.floor(n * f) for f in fractions]
    for i in range(n - sum(lengths)):
        lengths[i % len(lengths)] += 1
    return lengths


def random_split(dataset: Dataset, lengths: Sequence[float], generator=None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random ``Subset``s of the given lengths or fractions."""
    from ...backend.random import default_generator
    n = len(dataset)
    if lengths and all(0 <= x <= 1 for x in lengths) and math.isclose(sum(lengths), 1) and sum(lengths) != n:
        lengths = _lengths_from_fractions(lengths, n)
    if any(int(x) != x or x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths must be non-negative integers or fractions summing to 1, got {list(lengths)}")
    if sum(lengths) != n:
        raise ValueError(f"random_split: lengths {list(lengths)} sum to {sum(lengths)}, "
                         f"but the dataset has {n} samples")
    generator = generator if generator is not None else default_generator("cpu")
    order = np.asarray(generator.permutation(n))
    splits, start = [], 0
    for length in lengths:
        splits.append(Subset(dataset, order[start:start + int(length)]))
        start += int(length)
    return splits
