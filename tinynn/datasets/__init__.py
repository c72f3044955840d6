"""Datasets in their publishers' formats: MNIST, Fashion-MNIST, CIFAR-10.

    import tinynn as tn
    train = tn.datasets.FashionMNIST(train=True, transform=tn.transforms.ToTensor())
    sample = tn.datasets.FashionMNIST(train=True, embedded=True)   # bundled 10k/2k sample
"""
from .download import DownloadError, download_url
from .formats import DatasetFormatError, read_idx, read_idx_images, read_idx_labels
from .vision import (CIFAR10, EMBEDDED_DIR, MNIST, DatasetNotFoundError, FashionMNIST, VisionDataset,
                     embedded_fashion_mnist)

__all__ = ["MNIST", "FashionMNIST", "CIFAR10", "embedded_fashion_mnist", "VisionDataset",
           "DatasetNotFoundError", "DatasetFormatError", "DownloadError", "download_url",
           "read_idx", "read_idx_images", "read_idx_labels", "EMBEDDED_DIR"]
