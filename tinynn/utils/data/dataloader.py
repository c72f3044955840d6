"""``DataLoader``: batches from a dataset, with PyTorch's arguments and semantics.

Fast path: when the dataset has ``get_batch(indices)`` (``TensorDataset``, the
image datasets in ``tinynn.datasets``, a ``Subset`` of either) and no custom
``collate_fn`` is given, a batch is fetched with one NumPy gather instead of
``batch_size`` calls to ``dataset[i]`` followed by a collate.

``num_workers > 0`` prepares batches in one background thread, up to
``num_workers * prefetch_factor`` batches ahead, so loading overlaps with the
model's compute (NumPy releases the GIL in its copies). Batches come out in the
same order and with the same contents as with ``num_workers=0``.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .dataset import Dataset


# ------------------------------------------------------------------ collate
def default_collate(batch: Sequence[Any]):
    """Stack a list of samples into a batch, as PyTorch's ``default_collate`` does.

    Tensors and arrays are stacked along a new first dimension; ints become an
    int64 Tensor, floats a float64 Tensor, bools a bool Tensor; tuples, lists and
    dicts are collated field by field; strings stay a list.
    """
    import tinynn as tn
    if len(batch) == 0:
        raise ValueError("default_collate: cannot collate an empty batch")
    elem = batch[0]
    if isinstance(elem, tn.Tensor):
        xp = tn.backend.get_array_module(elem)
        return tn.Tensor(xp.stack([b.data for b in batch]))
    if isinstance(elem, np.ndarray):
        return tn.from_numpy(np.stack(batch))
    if isinstance(elem, (bool, np.bool_)):
        return tn.from_numpy(np.asarray(batch, dtype=np.bool_))
    if isinstance(elem, (int, np.integer)):
        return tn.from_numpy(np.asarray(batch, dtype=np.int64))
    if isinstance(elem, (float, np.floating)):
        return tn.from_numpy(np.asarray(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, dict):
        return {key: default_collate([b[key] for b in batch]) for key in elem}
    if isinstance(elem, (tuple, list)):
        if any(len(b) != len(elem) for b in batch):
            raise RuntimeError("default_collate: each sample in the batch must have the same number of fields")
        fields = [default_collate(list(column)) for column in zip(*batch)]
        return tuple(fields) if isinstance(elem, tuple) else fields
    raise TypeError(f"default_collate: don't know how to batch samples of type {type(elem).__name__}")


def _to_device(batch, device):
    import tinynn as tn
    if isinstance(batch, tn.Tensor):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


# ------------------------------------------------------------------ loader
class DataLoader:
    """Iterate over ``dataset`` in batches.

    Args follow PyTorch: ``batch_size``, ``shuffle`` (a new order each epoch, drawn
    from ``generator`` or the default cpu generator), ``sampler`` / ``batch_sampler``
    (iterables of indices / of index lists), ``drop_last``, ``collate_fn``,
    ``num_workers`` (threads here, see the module docstring). ``pin_memory``,
    ``timeout``, ``worker_init_fn``, ``persistent_workers`` are accepted and
    ignored. ``device`` (tinynn's own) moves every batch there.
    """

    def __init__(self, dataset: Dataset, batch_size: int | None = 1, shuffle: bool = False,
                 sampler=None, batch_sampler=None, num_workers: int = 0,
                 collate_fn: Callable | None = None, pin_memory: bool = False, drop_last: bool = False,
                 timeout: float = 0, worker_init_fn=None, generator=None, prefetch_factor: int | None = None,
                 persistent_workers: bool = False, device=None):
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler is mutually exclusive with "
                                 "batch_size, shuffle, sampler and drop_last")
            batch_size = None
        elif batch_size is None:
            raise ValueError("DataLoader: batch_size=None (no batching) is not supported")
        elif not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler is mutually exclusive with shuffle")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be a non-negative integer, got {num_workers!r}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor if prefetch_factor is not None else 2
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.generator = generator
        self.pin_memory = pin_memory
        self.device = device

    def __len__(self) -> int:
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    # --- which indices, in which batches --------------------------------------------
    def _order(self) -> np.ndarray:
        """The sample order of one epoch (a fresh permutation when shuffling)."""
        if self.sampler is not None:
            return np.fromiter((int(i) for i in self.sampler), dtype=np.int64)
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        from ...backend.random import default_generator
        generator = self.generator if self.generator is not None else default_generator("cpu")
        order = generator.permutation(n)
        return np.asarray(order.get() if hasattr(order, "get") else order, dtype=np.int64)

    def _index_batches(self) -> list[np.ndarray]:
        if self.batch_sampler is not None:
            return [np.asarray(list(b), dtype=np.int64) for b in self.batch_sampler]
        order = self._order()
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        return [order[i:i + self.batch_size] for i in range(0, stop, self.batch_size)]

    # --- fetching ---------------------------------------------------------------------
    def _fetch(self, indices: np.ndarray):
        if self.collate_fn is None and hasattr(self.dataset, "get_batch"):
            batch = self.dataset.get_batch(indices)
        else:
            collate = self.collate_fn if self.collate_fn is not None else default_collate
            batch = collate([self.dataset[int(i)] for i in indices])
        return _to_device(batch, self.device) if self.device is not None else batch

    def __iter__(self) -> Iterator:
        # the order is drawn here, when the epoch starts, as in PyTorch
        index_batches = self._index_batches()
        if self.num_workers == 0:
            return (self._fetch(indices) for indices in index_batches)
        return _PrefetchIterator(self._fetch, index_batches, self.num_workers * self.prefetch_factor)


class _PrefetchIterator:
    """Runs ``fetch`` over ``index_batches`` in a background thread, ``depth`` batches ahead."""

    _DONE = object()

    def __init__(self, fetch: Callable, index_batches: list, depth: int):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(fetch, index_batches), daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, fetch, index_batches) -> None:
        try:
            for indices in index_batches:
                if not self._put(("batch", fetch(indices))):
                    return
        except BaseException as e:  # handed to the consumer, re-raised there
            self._put(("error", e))
            return
        self._put(("done", None))

    def __iter__(self):
        return self

    def __next__(self):
        if self._stop.is_set():
            raise StopIteration
        kind, value = self._queue.get()
        if kind == "batch":
            return value
        self.close()
        if kind == "error":
            raise value
        raise StopIteration

    def close(self) -> None:
        self._stop.set()

    def __del__(self):
        self.close()
