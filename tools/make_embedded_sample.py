"""Build the Fashion-MNIST sample bundled in ``tinynn/datasets/data/fashion-mnist-sample/``.

    apt-get install dataset-fashion-mnist        # the real data, MIT licence, in /usr/share/datasets
    python tools/make_embedded_sample.py         # writes the four .gz files

The sample is stratified: 1,000 training images of each of the 10 classes (10,000)
and 200 test images of each class (2,000), drawn without replacement with NumPy's
PCG64 generator seeded with 0, kept in their original order. The output is IDX,
gzip-compressed with mtime 0, so running this again writes byte-identical files.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tinynn.datasets.formats import read_idx_images, read_idx_labels, write_idx_gz

SOURCE = Path("/usr/share/datasets/fashion-mnist")
DEST = Path(__file__).resolve().parents[1] / "tinynn" / "datasets" / "data" / "fashion-mnist-sample"
PER_CLASS = {"train": 1000, "t10k": 200}


def stratified_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` random indices of each class, returned sorted (original order)."""
    chosen = [rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False)
              for c in range(int(labels.max()) + 1)]
    return np.sort(np.concatenate(chosen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--dest", type=Path, default=DEST)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    args.dest.mkdir(parents=True, exist_ok=True)
    for split, per_class in PER_CLASS.items():
        images = read_idx_images(args.source / f"{split}-images-idx3-ubyte.gz")
        labels = read_idx_labels(args.source / f"{split}-labels-idx1-ubyte.gz")
        keep = stratified_indices(labels, per_class, rng)
        write_idx_gz(images[keep], args.dest / f"{split}-images-idx3-ubyte.gz")
        write_idx_gz(labels[keep].astype(np.uint8), args.dest / f"{split}-labels-idx1-ubyte.gz")
        print(f"{split}: {len(keep)} images, {np.bincount(labels[keep]).tolist()} per class")


if __name__ == "__main__":
    main()
