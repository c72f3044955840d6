"""Dataset, TensorDataset, Subset, random_split, DataLoader (PyTorch semantics)."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
from tinynn.utils.data import (ConcatDataset, DataLoader, Dataset, Subset, TensorDataset, default_collate,
                               random_split)


class Squares(Dataset):
    """A plain map-style dataset with no batch fast path."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((2,), i * i, dtype=np.float32), i


def _labels(loader):
    return [b[1].data.tolist() for b in loader]


def test_tensor_dataset_items_and_length():
    x, y = tn.arange(12).reshape(6, 2), tn.arange(6)
    ds = TensorDataset(x, y)
    assert len(ds) == 6
    xi, yi = ds[4]
    assert xi.tolist() == [8, 9] and yi.item() == 4
    with pytest.raises(ValueError, match="same first dimension"):
        TensorDataset(x, tn.arange(5))


@pytest.mark.parametrize("drop_last, sizes", [(False, [4, 4, 2]), (True, [4, 4])])
def test_sequential_batches(drop_last, sizes):
    ds = TensorDataset(tn.arange(20).reshape(10, 2), tn.arange(10))
    loader = DataLoader(ds, batch_size=4, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(sizes) == len(batches)
    assert [len(b[1].data) for b in batches] == sizes
    assert sum(_labels(loader), []) == list(range(sum(sizes)))
    assert isinstance(batches[0][0], tn.Tensor) and batches[0][0].shape == (4, 2)


def test_shuffle_is_a_permutation_and_seeded():
    ds = TensorDataset(tn.arange(50))
    first = sum([b[0].data.tolist() for b in DataLoader(ds, 8, shuffle=True, generator=tn.Generator().manual_seed(3))], [])
    again = sum([b[0].data.tolist() for b in DataLoader(ds, 8, shuffle=True, generator=tn.Generator().manual_seed(3))], [])
    other = sum([b[0].data.tolist() for b in DataLoader(ds, 8, shuffle=True, generator=tn.Generator().manual_seed(4))], [])
    assert sorted(first) == list(range(50))
    assert first == again and first != other and first != list(range(50))


def test_each_epoch_draws_a_new_order_and_default_generator_follows_manual_seed():
    ds = TensorDataset(tn.arange(30))
    tn.manual_seed(0)
    loader = DataLoader(ds, batch_size=30, shuffle=True)
    epoch1, epoch2 = (next(iter(loader))[0].data.tolist() for _ in range(2))
    assert epoch1 != epoch2
    tn.manual_seed(0)
    assert next(iter(loader))[0].data.tolist() == epoch1


def test_fast_path_equals_item_by_item_path():
    x = tn.randn(13, 3)
    y = tn.arange(13)
    fast = list(DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True, generator=tn.Generator().manual_seed(1)))
    slow = list(DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True, generator=tn.Generator().manual_seed(1),
                           collate_fn=default_collate))
    for (xf, yf), (xs, ys) in zip(fast, slow):
        np.testing.assert_array_equal(xf.data, xs.data)
        np.testing.assert_array_equal(yf.data, ys.data)


def test_map_dataset_with_default_collate():
    xb, yb = next(iter(DataLoader(Squares(5), batch_size=3)))
    assert xb.dtype == np.float32 and xb.shape == (3, 2)
    assert yb.dtype == np.int64 and yb.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(xb.data[:, 0], [0, 1, 4])


def test_default_collate_structures():
    batch = default_collate([{"x": 1.5, "name": "a", "flag": True}, {"x": 2.0, "name": "b", "flag": False}])
    assert batch["x"].dtype == np.float64 and batch["name"] == ["a", "b"] and batch["flag"].dtype == np.bool_
    with pytest.raises(TypeError, match="don't know how to batch"):
        default_collate([object(), object()])


def test_custom_collate_fn_and_batch_sampler():
    loader = DataLoader(Squares(6), batch_sampler=[[5, 0], [2]], collate_fn=lambda items: [i for _, i in items])
    assert list(loader) == [[5, 0], [2]] and len(loader) == 2


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_batch_size_is_rejected(bad):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        DataLoader(Squares(3), batch_size=bad)


def test_prefetch_thread_gives_identical_batches():
    ds = TensorDataset(tn.randn(37, 4), tn.arange(37))
    plain = list(DataLoader(ds, 6, shuffle=True, generator=tn.Generator().manual_seed(7)))
    threaded = list(DataLoader(ds, 6, shuffle=True, generator=tn.Generator().manual_seed(7), num_workers=2))
    assert len(plain) == len(threaded) == 7
    for (a, b), (c, d) in zip(plain, threaded):
        np.testing.assert_array_equal(a.data, c.data)
        np.testing.assert_array_equal(b.data, d.data)


def test_prefetch_thread_reraises_dataset_errors():
    class Broken(Squares):
        def __getitem__(self, i):
            if i == 4:
                raise KeyError("sample 4 is broken")
            return super().__getitem__(i)

    with pytest.raises(KeyError, match="sample 4"):
        list(DataLoader(Broken(8), batch_size=2, num_workers=1))


def test_subset_and_its_fast_path():
    ds = TensorDataset(tn.arange(10) * 10)
    sub = Subset(ds, [9, 2, 4])
    assert len(sub) == 3 and sub[0][0].item() == 90
    assert hasattr(sub, "get_batch")
    assert next(iter(DataLoader(sub, batch_size=3)))[0].tolist() == [90, 20, 40]
    assert not hasattr(Subset(Squares(4), [0]), "get_batch")
    with pytest.raises(IndexError):
        Subset(ds, [10])


@pytest.mark.parametrize("lengths, expected", [([7, 3], [7, 3]), ([0.5, 0.5], [5, 5]), ([0.34, 0.33, 0.33], [4, 3, 3])])
def test_random_split(lengths, expected):
    parts = random_split(Squares(10), lengths, generator=tn.Generator().manual_seed(0))
    assert [len(p) for p in parts] == expected
    together = np.concatenate([p.indices for p in parts])
    assert sorted(together.tolist()) == list(range(10))
    again = random_split(Squares(10), lengths, generator=tn.Generator().manual_seed(0))
    assert all((a.indices == b.indices).all() for a, b in zip(parts, again))


def test_random_split_bad_lengths():
    with pytest.raises(ValueError, match="sum to 9"):
        random_split(Squares(10), [5, 4])


def test_concat_dataset():
    both = Squares(3) + Squares(2)
    assert isinstance(both, ConcatDataset) and len(both) == 5
    assert both[3][1] == 0 and both[-1][1] == 1
