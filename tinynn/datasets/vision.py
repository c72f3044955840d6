"""MNIST, Fashion-MNIST and CIFAR-10, read from the publishers' own files.

Where the files are looked for, in order (the first directory that has them wins):

1. ``root`` as given, then ``$TINYNN_DATA``, then the user cache ``~/.cache/tinynn``
   (``$XDG_CACHE_HOME/tinynn``); in each, the files directly in it (Debian's layout)
   or in torchvision's layout (``root/FashionMNIST/raw/``, ``root/cifar-10-batches-py/``);
2. for Fashion-MNIST, ``/usr/share/datasets/fashion-mnist`` (Debian's
   ``dataset-fashion-mnist`` package).

``download=True`` fetches missing files from the publishers' mirrors into the
first of those roots (``root/<Name>/raw/``), checking each file's MD5.
``TINYNN_MIRROR`` (or ``mirrors=[...]``) replaces the mirror list with your own
base URL(s).

Each dataset keeps the whole split in memory as NumPy arrays, like torchvision:
``.data`` (uint8, N×H×W or N×H×W×C), ``.targets`` (int64, N), ``.classes``.
``ds[i]`` returns ``(image, label)`` with the image as a uint8 NumPy array (H×W or
H×W×C) passed through ``transform``, and the label as an int passed through
``target_transform``. ``ds.get_batch(indices)`` is the DataLoader's fast path: it
indexes whole batches with NumPy and applies batch-capable transforms once.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..utils.data import Dataset
from .download import DownloadError, download_from_mirrors
from .formats import (DatasetFormatError, load_cifar_batch, load_cifar_meta, read_cifar_archive,
                      read_idx_images, read_idx_labels)

EMBEDDED_DIR = Path(__file__).resolve().parent / "data" / "fashion-mnist-sample"


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are in none of the searched directories (and download was off)."""


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tinynn"


def candidate_roots(root: "str | os.PathLike | None") -> list[Path]:
    """The roots searched, in order: ``root``, ``$TINYNN_DATA``, the user cache directory."""
    roots = []
    if root is not None:
        roots.append(Path(root).expanduser())
    if os.environ.get("TINYNN_DATA"):
        roots.append(Path(os.environ["TINYNN_DATA"]).expanduser())
    roots.append(user_cache_dir())
    return roots


class VisionDataset(Dataset):
    """Images and labels held as NumPy arrays, with torchvision's attributes."""

    classes: list[str] = []
    data: np.ndarray
    targets: np.ndarray

    def __init__(self, transform: Callable | None = None, target_transform: Callable | None = None):
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        image, target = self.data[index], int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    def get_batch(self, indices: np.ndarray):
        """A collated batch ``(images, labels)`` for ``indices``, built with one NumPy gather.

        The images go through the transform's batch form when it has one
        (``transform.apply_batch``); otherwise each image is transformed on its own
        and the results are stacked, exactly as the default collate would.
        """
        from ..utils.data import default_collate
        indices = np.asarray(indices, dtype=np.int64)
        images = self.data[indices]
        if self.transform is not None:
            if _supports_batch(self.transform):
                images = self.transform.apply_batch(images)
            else:
                images = default_collate([self.transform(img) for img in images])
        else:
            images = _as_tensor(images)
        targets = self.targets[indices]
        if self.target_transform is not None:
            targets = default_collate([self.target_transform(int(t)) for t in targets])
        else:
            targets = _as_tensor(targets)
        return images, targets

    def __repr__(self) -> str:
        split = "train" if getattr(self, "train", True) else "test"
        return (f"{type(self).__name__}(split={split!r}, size={len(self)}, "
                f"image_shape={tuple(self.data.shape[1:])}, source={getattr(self, 'source', None)!s})")


def _supports_batch(transform) -> bool:
    return hasattr(transform, "apply_batch") and getattr(transform, "supports_batch", True)


def _as_tensor(array: np.ndarray):
    import tinynn as tn
    return tn.from_numpy(np.ascontiguousarray(array))


# ------------------------------------------------------------------ MNIST family
class MNIST(VisionDataset):
    """The MNIST handwritten digits (60,000 train / 10,000 test, 28×28 grey)."""

    mirrors = [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ]
    # (file name, MD5 of the publisher's .gz), as torchvision lists them
    resources = [
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ]
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
               "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]
    system_dirs: list[Path] = []  # read-only places a distribution installs the files

    def __init__(self, root: "str | os.PathLike | None" = None, train: bool = True,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 download: bool = False, mirrors: Sequence[str] | None = None):
        super().__init__(transform, target_transform)
        self.train = train
        self.root = root
        prefix = "train" if train else "t10k"
        self._files = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
        folder = self._find_folder(root)
        if folder is None and download:
            folder = self._download(root, mirrors)
        if folder is None:
            raise DatasetNotFoundError(self._not_found_message(root))
        self.source = folder
        self.data = read_idx_images(self._path(folder, self._files[0]))
        self.targets = read_idx_labels(self._path(folder, self._files[1]), len(self.classes))
        if len(self.data) != len(self.targets):
            raise DatasetFormatError(f"{folder}: {len(self.data)} images but {len(self.targets)} labels")

    # --- finding files ------------------------------------------------------------
    @classmethod
    def _folder_name(cls) -> str:
        return cls.__name__

    def _search_dirs(self, root) -> list[Path]:
        dirs = []
        for r in candidate_roots(root):
            dirs += [r, r / self._folder_name() / "raw", r / self._folder_name()]
        return dirs + list(self.system_dirs)

    @staticmethod
    def _path(folder: Path, stem: str) -> Path:
        """``stem.gz`` if present, else the uncompressed ``stem``."""
        gz = folder / (stem + ".gz")
        return gz if gz.is_file() else folder / stem

    def _find_folder(self, root) -> Path | None:
        for folder in self._search_dirs(root):
            if all(self._path(folder, stem).is_file() for stem in self._files):
                return folder
        return None

    def _not_found_message(self, root) -> str:
        searched = "\n  ".join(str(d) for d in self._search_dirs(root))
        return (f"{type(self).__name__}: cannot find {' and '.join(f + '[.gz]' for f in self._files)} in any of\n  "
                f"{searched}\npass download=True (CLI: --download) to fetch them, or set TINYNN_DATA "
                "to the directory that holds them")

    # --- downloading --------------------------------------------------------------
    def _download(self, root, mirrors) -> Path:
        if mirrors is None:
            mirrors = [os.environ["TINYNN_MIRROR"]] if os.environ.get("TINYNN_MIRROR") else self.mirrors
        dest = candidate_roots(root)[0] / self._folder_name() / "raw"
        md5s = dict(self.resources)
        for stem in self._files:
            name = stem + ".gz"
            if not (dest / name).is_file():
                download_from_mirrors(name, list(mirrors), dest, md5s.get(name))
        return dest


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST (60,000 train / 10,000 test, 28×28 grey, 10 clothing classes).

    ``FashionMNIST(embedded=True)`` reads the small stratified sample shipped inside
    tinynn (10,000 train / 2,000 test images of the real data set, see
    ``tinynn/datasets/data/README.md``), so examples and the default ``tinynn train``
    run offline.
    """

    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources = [
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ]
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    system_dirs = [Path("/usr/share/datasets/fashion-mnist")]

    def __init__(self, root: "str | os.PathLike | None" = None, train: bool = True,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 download: bool = False, mirrors: Sequence[str] | None = None, embedded: bool = False):
        if embedded:
            if root is not None or download:
                raise ValueError("FashionMNIST: embedded=True reads the bundled sample; "
                                 "it takes neither root nor download")
            root = EMBEDDED_DIR
        self.embedded = embedded
        super().__init__(root, train, transform, target_transform, download, mirrors)

    def _search_dirs(self, root) -> list[Path]:
        if self.embedded:
            return [EMBEDDED_DIR]
        return super()._search_dirs(root)


def embedded_fashion_mnist(train: bool = True, transform: Callable | None = None,
                           target_transform: Callable | None = None) -> FashionMNIST:
    """The Fashion-MNIST sample bundled with tinynn (10,000 train / 2,000 test images)."""
    return FashionMNIST(train=train, transform=transform, target_transform=target_transform, embedded=True)


# ---------------------------------------------------------------------- CIFAR-10
class CIFAR10(VisionDataset):
    """CIFAR-10 (50,000 train / 10,000 test, 32×32 RGB; ``.data`` is N×32×32×3 uint8).

    Reads the python batches from ``root/cifar-10-batches-py/`` or straight from
    ``cifar-10-python.tar.gz`` (nothing is extracted to disk).
    """

    mirrors = ["https://www.cs.toronto.edu/~kriz/"]
    archive = ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")
    base_folder = "cifar-10-batches-py"
    train_batches = [f"data_batch_{i}" for i in range(1, 6)]
    test_batches = ["test_batch"]
    classes = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]

    def __init__(self, root: "str | os.PathLike | None" = None, train: bool = True,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 download: bool = False, mirrors: Sequence[str] | None = None):
        super().__init__(transform, target_transform)
        self.train = train
        self.root = root
        names = self.train_batches if train else self.test_batches
        batches = self._find_batches(root, names)
        if batches is None and download:
            self._download(root, mirrors)
            batches = self._find_batches(root, names)
        if batches is None:
            raise DatasetNotFoundError(self._not_found_message(root))
        images, labels = zip(*(load_cifar_batch(batches[n], name=f"{self.source}:{n}") for n in names))
        self.data = np.concatenate(images)
        self.targets = np.concatenate(labels)

    def _search(self, root):
        for r in candidate_roots(root):
            for folder in (r / self.base_folder, r / "CIFAR10" / "raw" / self.base_folder):
                yield "dir", folder
            for folder in (r, r / "CIFAR10" / "raw"):
                yield "tar", folder / self.archive[0]

    def _find_batches(self, root, names) -> dict[str, bytes] | None:
        for kind, place in self._search(root):
            if kind == "dir" and all((place / n).is_file() for n in names):
                self.source = place
                if (place / "batches.meta").is_file():
                    self.classes = load_cifar_meta((place / "batches.meta").read_bytes(), str(place))
                return {n: (place / n).read_bytes() for n in names}
            if kind == "tar" and place.is_file():
                self.source = place
                return read_cifar_archive(place, names)
        return None

    def _not_found_message(self, root) -> str:
        searched = "\n  ".join(str(p) for _, p in self._search(root))
        return (f"CIFAR10: cannot find the python batches in any of\n  {searched}\n"
                "pass download=True (CLI: --download) to fetch them, or set TINYNN_DATA")

    def _download(self, root, mirrors) -> None:
        if mirrors is None:
            mirrors = [os.environ["TINYNN_MIRROR"]] if os.environ.get("TINYNN_MIRROR") else self.mirrors
        dest = candidate_roots(root)[0]
        download_from_mirrors(self.archive[0], list(mirrors), dest, self.archive[1])


__all__ = ["MNIST", "FashionMNIST", "CIFAR10", "embedded_fashion_mnist", "VisionDataset",
           "DatasetNotFoundError", "DatasetFormatError", "DownloadError", "EMBEDDED_DIR"]
