"""MNIST / FashionMNIST / CIFAR10: layouts, search order, attributes, errors."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn.datasets as datasets
from tinynn.datasets import CIFAR10, MNIST, DatasetFormatError, DatasetNotFoundError, FashionMNIST

from dataset_files import make_cifar_archive, make_mnist_split, write_idx


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
@pytest.mark.parametrize("compress", [True, False])
def test_mnist_layouts(isolated_data_dirs, layout, compress):
    root = isolated_data_dirs / "root"
    folder = root if layout == "flat" else root / "MNIST" / "raw"
    images, labels = make_mnist_split(folder, "t10k", 7, compress=compress)
    ds = MNIST(root, train=False)
    assert len(ds) == 7 and ds.data.dtype == np.uint8 and ds.data.shape == (7, 28, 28)
    assert ds.targets.dtype == np.int64
    np.testing.assert_array_equal(ds.data, images)
    image, label = ds[3]
    np.testing.assert_array_equal(image, images[3])
    assert label == labels[3] and isinstance(label, int)
    assert len(ds.classes) == 10


def test_transform_and_target_transform_are_applied(isolated_data_dirs):
    make_mnist_split(isolated_data_dirs / "r", "train", 4)
    ds = FashionMNIST(isolated_data_dirs / "r", transform=lambda im: im.shape, target_transform=lambda y: -y)
    shape, label = ds[0]
    assert shape == (28, 28) and label == -int(ds.targets[0])
    assert ds.classes[9] == "Ankle boot"


def test_search_order_root_then_env_then_cache(isolated_data_dirs, monkeypatch):
    env_dir = isolated_data_dirs / "tinynn_data"
    cache_dir = isolated_data_dirs / "cache" / "tinynn" / "MNIST" / "raw"
    make_mnist_split(cache_dir, "train", 3)
    assert len(MNIST()) == 3                                    # found in the cache
    make_mnist_split(env_dir, "train", 4)
    assert len(MNIST()) == 4                                    # $TINYNN_DATA wins over the cache
    make_mnist_split(isolated_data_dirs / "given", "train", 5)
    assert len(MNIST(isolated_data_dirs / "given")) == 5        # the given root wins over both


def test_missing_files_say_where_they_were_looked_for(isolated_data_dirs):
    with pytest.raises(DatasetNotFoundError) as info:
        MNIST(isolated_data_dirs / "nowhere", train=True)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and "nowhere" in message and "download=True" in message


def test_corrupt_file_names_the_file(isolated_data_dirs):
    folder = isolated_data_dirs / "r"
    make_mnist_split(folder, "train", 4)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(3, dtype=np.uint8))
    with pytest.raises(DatasetFormatError, match="4 images but 3 labels"):
        MNIST(folder)


def test_embedded_fashion_mnist_sample():
    train = datasets.embedded_fashion_mnist(train=True)
    test = FashionMNIST(train=False, embedded=True)
    assert train.data.shape == (10000, 28, 28) and test.data.shape == (2000, 28, 28)
    np.testing.assert_array_equal(np.bincount(train.targets), [1000] * 10)
    np.testing.assert_array_equal(np.bincount(test.targets), [200] * 10)
    assert train.data.mean() > 50  # real clothing pictures, not blank images
    with pytest.raises(ValueError, match="embedded"):
        FashionMNIST(root="/tmp", embedded=True)


def test_embedded_sample_is_drawn_from_the_real_data():
    full_dir = FashionMNIST.system_dirs[0]
    if not (full_dir / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    full = FashionMNIST(full_dir, train=False)
    sample = FashionMNIST(train=False, embedded=True)
    full_rows = {row.tobytes(): label for row, label in zip(full.data, full.targets)}
    assert all(full_rows.get(img.tobytes()) == label for img, label in zip(sample.data[:50], sample.targets[:50]))


@pytest.mark.parametrize("layout", ["archive", "extracted"])
def test_cifar10_reads_archive_or_extracted_batches(isolated_data_dirs, layout):
    root = isolated_data_dirs / "root"
    root.mkdir()
    expected = make_cifar_archive(root / "cifar-10-python.tar.gz", n_per_batch=4)
    if layout == "extracted":
        import tarfile
        with tarfile.open(root / "cifar-10-python.tar.gz") as tar:
            tar.extractall(root, filter="data")
        (root / "cifar-10-python.tar.gz").unlink()
    train, test = CIFAR10(root, train=True), CIFAR10(root, train=False)
    assert train.data.shape == (20, 32, 32, 3) and test.data.shape == (4, 32, 32, 3)
    assert train.targets.dtype == np.int64
    data, labels = expected["data_batch_2"]
    np.testing.assert_array_equal(train.data[4:8].transpose(0, 3, 1, 2).reshape(4, -1), data)
    np.testing.assert_array_equal(train.targets[4:8], labels)
    assert train.classes[0] == "airplane" and len(train.classes) == 10
    image, label = test[1]
    assert image.shape == (32, 32, 3) and label == expected["test_batch"][1][1]


def test_cifar10_missing(isolated_data_dirs):
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py"):
        CIFAR10(isolated_data_dirs / "none")


def test_batch_path_applies_target_transform(isolated_data_dirs):
    from tinynn.utils.data import DataLoader
    _, labels = make_mnist_split(isolated_data_dirs / "r", "train", 6)
    ds = MNIST(isolated_data_dirs / "r", target_transform=lambda y: y + 100)
    images, targets = next(iter(DataLoader(ds, batch_size=4)))
    assert images.shape == (4, 28, 28) and images.dtype == np.uint8     # no transform: the raw uint8 images
    assert targets.tolist() == (labels[:4].astype(int) + 100).tolist()


@pytest.mark.slow  # reads 70,000 images and gzips 12,000 at level 9: tens of seconds on 2 busy cores
def test_embedded_sample_is_reproducible_from_the_debian_package(tmp_path):
    """tools/make_embedded_sample.py rebuilds the bundled files byte for byte."""
    import subprocess
    import sys
    from pathlib import Path

    from tinynn.datasets import EMBEDDED_DIR
    if not (FashionMNIST.system_dirs[0] / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    repo = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, str(repo / "tools" / "make_embedded_sample.py"), "--dest", str(tmp_path)],
                   check=True, capture_output=True, cwd=repo)
    for path in sorted(EMBEDDED_DIR.glob("*.gz")):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name
