"""The IDX and CIFAR readers: valid files, truncated files, wrong magic numbers."""
from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest

from tinynn.datasets.formats import (DatasetFormatError, encode_idx, load_cifar_batch, parse_idx,
                                     read_cifar_archive, read_idx, read_idx_images, read_idx_labels)

from dataset_files import cifar_batch_bytes, make_cifar_archive, write_idx


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    images = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    path = write_idx(tmp_path / "images", images, compress)
    out = read_idx_images(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 5)
    np.testing.assert_array_equal(out, images)


def test_idx_header_is_big_endian_and_exact():
    raw = encode_idx(np.zeros((2, 3), dtype=np.uint8))
    assert raw[:4] == b"\x00\x00\x08\x02"
    assert raw[4:12] == b"\x00\x00\x00\x02\x00\x00\x00\x03"
    assert len(raw) == 12 + 6


def test_idx_other_types_are_read_in_native_order():
    values = np.array([1.5, -2.0, 3.25], dtype=">f4")
    raw = b"\x00\x00\x0d\x01" + np.array([3], dtype=">u4").tobytes() + values.tobytes()
    out = parse_idx(raw)
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, [1.5, -2.0, 3.25])


def test_labels_are_int64_and_range_checked(tmp_path):
    labels = np.array([0, 9, 3], dtype=np.uint8)
    out = read_idx_labels(write_idx(tmp_path / "labels.gz", labels))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, labels)
    bad = write_idx(tmp_path / "bad-labels.gz", np.array([0, 10], dtype=np.uint8))
    with pytest.raises(DatasetFormatError, match=r"labels must lie in \[0, 10\)"):
        read_idx_labels(bad)


@pytest.mark.parametrize("magic", [b"\x00\x00\x08\x00", b"\x01\x00\x08\x03", b"\x00\x00\x07\x03", b"PK\x03\x04"])
def test_wrong_magic_is_rejected(tmp_path, magic):
    raw = encode_idx(np.zeros((2, 4, 4), dtype=np.uint8))
    path = tmp_path / "bad"
    path.write_bytes(magic + raw[4:])
    with pytest.raises(DatasetFormatError, match="bad IDX magic"):
        read_idx(path)


def test_truncated_data_is_rejected(tmp_path):
    raw = encode_idx(np.zeros((10, 4, 4), dtype=np.uint8))
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(raw[:-7]))
    with pytest.raises(DatasetFormatError, match="truncated or corrupt"):
        read_idx(path)


def test_truncated_gzip_stream_is_rejected(tmp_path):
    raw = gzip.compress(encode_idx(np.zeros((10, 4, 4), dtype=np.uint8)))
    path = tmp_path / "cut.gz"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetFormatError, match="gzip"):
        read_idx(path)


def test_labels_file_where_images_expected(tmp_path):
    path = write_idx(tmp_path / "labels.gz", np.zeros(5, dtype=np.uint8))
    with pytest.raises(DatasetFormatError, match="image file"):
        read_idx_images(path)


# ------------------------------------------------------------------ CIFAR
def test_cifar_batch_is_decoded_to_nhwc():
    raw, data, labels = cifar_batch_bytes(3, seed=0)
    images, out_labels = load_cifar_batch(raw)
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
    assert out_labels.dtype == np.int64
    np.testing.assert_array_equal(out_labels, labels)
    # pixel (y, x) of channel c sits at column c*1024 + y*32 + x of the flat row
    np.testing.assert_array_equal(images[1, 5, 7, 2], data[1, 2 * 1024 + 5 * 32 + 7])
    np.testing.assert_array_equal(images[2, :, :, 0], data[2, :1024].reshape(32, 32))


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned > /dev/null",))


def test_cifar_unpickler_refuses_arbitrary_callables():
    raw = pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=2)
    with pytest.raises(DatasetFormatError, match="refusing to unpickle"):
        load_cifar_batch(raw, name="evil")


def test_cifar_batch_with_bad_labels_or_shape():
    raw = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 11]}, protocol=2)
    with pytest.raises(DatasetFormatError, match="labels must lie"):
        load_cifar_batch(raw)
    raw = pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=2)
    with pytest.raises(DatasetFormatError, match="N×3072"):
        load_cifar_batch(raw)
    raw = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, protocol=2)
    with pytest.raises(DatasetFormatError, match="2 images but 1 labels"):
        load_cifar_batch(raw)


def test_truncated_cifar_batch_and_archive(tmp_path):
    raw, _, _ = cifar_batch_bytes(3, seed=0)
    with pytest.raises(DatasetFormatError, match="not a readable CIFAR"):
        load_cifar_batch(raw[: len(raw) // 2])
    archive = tmp_path / "cifar-10-python.tar.gz"
    make_cifar_archive(archive)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(DatasetFormatError, match="archive"):
        read_cifar_archive(cut, ["data_batch_1"])


def test_cifar_batch_pickled_by_old_numpy_is_read():
    # the publisher's files name numpy.core.multiarray (NumPy 1.x); NumPy 2 moved it to numpy._core
    raw, data, _ = cifar_batch_bytes(2, seed=1)
    old = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert old != raw
    images, _ = load_cifar_batch(old)
    np.testing.assert_array_equal(images.transpose(0, 3, 1, 2).reshape(2, -1), data)
