"""Transforms against plain NumPy references, on single images and on batches."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
import tinynn.transforms as T
from tinynn.datasets import embedded_fashion_mnist
from tinynn.utils.data import DataLoader, default_collate


def _gen(seed=0):
    return tn.Generator().manual_seed(seed)


def test_to_tensor_gray_and_color():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    out = T.ToTensor()(gray)
    assert isinstance(out, tn.Tensor) and out.shape == (1, 3, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out.data[0], gray / 255, rtol=1e-6)
    color = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    np.testing.assert_allclose(T.ToTensor()(color).data, color.transpose(2, 0, 1) / 255, rtol=1e-6)
    floats = np.full((2, 2), 3.0)
    np.testing.assert_array_equal(T.ToTensor()(floats).data, np.full((1, 2, 2), 3.0))  # not scaled


def test_to_tensor_batch_matches_single():
    images = np.random.default_rng(1).integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    batch = T.ToTensor().apply_batch(images)
    assert batch.shape == (4, 3, 5, 6)
    for i in range(4):
        np.testing.assert_array_equal(batch.data[i], T.ToTensor()(images[i]).data)


def test_normalize_single_and_batch():
    x = np.random.default_rng(2).random((2, 3, 4, 5)).astype(np.float32)
    mean, std = (0.1, 0.2, 0.3), (0.5, 1.0, 2.0)
    expected = (x - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    norm = T.Normalize(mean, std)
    np.testing.assert_allclose(norm(tn.tensor(x)).data, expected, rtol=1e-6)
    np.testing.assert_allclose(norm(x[1]), expected[1], rtol=1e-6)   # arrays stay arrays
    with pytest.raises(ValueError, match="3 values but the image has 2 channels"):
        norm(x[:, :2])
    with pytest.raises(ValueError, match="C×H×W image or an N×C×H×W batch"):
        norm(x[0, 0])


def test_horizontal_flip_reference():
    x = np.random.default_rng(3).random((16, 2, 3, 4))
    flip = T.RandomHorizontalFlip(p=0.5, generator=_gen(0))
    out = flip(x)
    chosen = T.RandomHorizontalFlip(p=0.5, generator=_gen(0)).sample_params(16)
    assert 0 < chosen.sum() < 16
    for i in range(16):
        np.testing.assert_array_equal(out[i], x[i, :, :, ::-1] if chosen[i] else x[i])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x[0]), x[0][:, :, ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=0.0)(x[0]), x[0])


def _reference_crop(image, padding, top, left, size):
    padded = np.pad(image, ((0, 0), (padding, padding), (padding, padding)))
    return padded[:, top:top + size, left:left + size]


def test_random_crop_reference():
    x = np.random.default_rng(4).random((10, 3, 8, 8)).astype(np.float32)
    crop = T.RandomCrop(8, padding=2, generator=_gen(5))
    out = crop(tn.tensor(x))
    assert out.shape == (10, 3, 8, 8)
    top, left = T.RandomCrop(8, padding=2, generator=_gen(5)).sample_params(10, 12, 12)
    assert len(set(zip(top.tolist(), left.tolist()))) > 1
    for i in range(10):
        np.testing.assert_array_equal(out.data[i], _reference_crop(x[i], 2, top[i], left[i], 8))


def test_random_crop_single_image_and_errors():
    x = np.arange(2 * 5 * 5, dtype=np.float32).reshape(2, 5, 5)
    out = T.RandomCrop(3, generator=_gen(1))(x)
    top, left = T.RandomCrop(3, generator=_gen(1)).sample_params(1, 5, 5)
    np.testing.assert_array_equal(out, x[:, top[0]:top[0] + 3, left[0]:left[0] + 3])
    with pytest.raises(ValueError, match="larger than"):
        T.RandomCrop(7)(x)
    assert T.RandomCrop(7, pad_if_needed=True)(x).shape == (2, 7, 7)


def test_random_erasing_reference():
    x = np.random.default_rng(6).random((12, 1, 10, 10)).astype(np.float32) + 1
    erase = T.RandomErasing(p=0.7, value=0.0, generator=_gen(2))
    out = erase(x)
    boxes = T.RandomErasing(p=0.7, generator=_gen(2)).sample_params(12, 10, 10)
    assert (boxes[:, 2] > 0).sum() > 0 and (boxes[:, 2] == 0).sum() > 0
    for i, (top, left, h, w) in enumerate(boxes):
        expected = x[i].copy()
        expected[:, top:top + h, left:left + w] = 0
        np.testing.assert_array_equal(out[i], expected)
        area = h * w / 100
        assert h == 0 or 0.02 * 0.5 <= area <= 0.33 * 1.5   # rounding of h and w


def test_random_rotation_matches_rot90_and_identity():
    x = np.random.default_rng(7).random((2, 3, 7, 7))
    rot = T.RandomRotation((90, 90))
    np.testing.assert_array_equal(rot(x), np.rot90(x, k=1, axes=(2, 3)))   # counter-clockwise, like torchvision
    np.testing.assert_array_equal(T.RandomRotation((0, 0))(x[0]), x[0])


def test_random_rotation_fills_corners():
    x = np.ones((1, 1, 9, 9))
    out = T.RandomRotation((45, 45), fill=-1)(x)
    assert out[0, 0, 0, 0] == -1 and out[0, 0, 4, 4] == 1


def test_same_generator_seed_same_output():
    x = np.random.default_rng(8).random((6, 1, 8, 8)).astype(np.float32)
    pipeline = lambda seed: T.Compose([T.RandomCrop(8, padding=1, generator=_gen(seed)),  # noqa: E731
                                       T.RandomHorizontalFlip(generator=_gen(seed + 1)),
                                       T.RandomErasing(p=1.0, generator=_gen(seed + 2))])
    np.testing.assert_array_equal(pipeline(0)(x), pipeline(0)(x))
    assert not np.array_equal(pipeline(0)(x), pipeline(10)(x))


def test_image_dataset_batch_path_equals_per_item_path():
    transform = T.Compose([T.ToTensor(), T.Normalize((0.5,), (0.25,))])
    ds = embedded_fashion_mnist(train=False, transform=transform)
    assert transform.supports_batch
    fast = next(iter(DataLoader(ds, batch_size=9, shuffle=True, generator=_gen(3))))
    slow = next(iter(DataLoader(ds, batch_size=9, shuffle=True, generator=_gen(3), collate_fn=default_collate)))
    assert fast[0].shape == (9, 1, 28, 28) and fast[0].dtype == np.float32
    np.testing.assert_allclose(fast[0].data, slow[0].data, rtol=1e-6)
    np.testing.assert_array_equal(fast[1].data, slow[1].data)


def test_non_batch_transform_falls_back_to_per_item():
    ds = embedded_fashion_mnist(train=False, transform=T.Compose([T.ToTensor(), T.Lambda(lambda t: t * 2)]))
    images, labels = next(iter(DataLoader(ds, batch_size=4)))
    assert images.shape == (4, 1, 28, 28)
    np.testing.assert_allclose(images.data[0], ds.data[0][None] / 255 * 2, rtol=1e-6)
