"""Image transforms with torchvision's names, for single images and whole batches.

``ToTensor`` turns a uint8 image (H×W or H×W×C NumPy array) into a float32 C×H×W
Tensor in [0, 1]. Every other transform takes a C×H×W image or an N×C×H×W batch
(a Tensor or a NumPy/CuPy array, and returns the same kind): called on a batch,
a random transform draws its parameters independently for each image, all at once.

``transform.apply_batch(images)`` is the batch form used by the DataLoader's fast
path: for ``ToTensor`` it takes N×H×W / N×H×W×C uint8 stacks, for the others it is
the same as calling on an N×C×H×W batch.

Random transforms take ``generator=`` (a ``tn.Generator``) for reproducible draws;
by default they draw from tinynn's default cpu generator (``tn.manual_seed``).
Each splits into ``sample_params`` (the random draws) and ``apply_params`` (the
deterministic image operation), so the maths can be read, and tested, on its own.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np


# ------------------------------------------------------------------ helpers
def _unwrap(x):
    """(raw array, function that wraps a result back into the input's kind)."""
    from .tensor import Tensor
    if isinstance(x, Tensor):
        return x.data, lambda array: Tensor(array, device=x.device)
    return x, lambda array: array


def _xp(array):
    return np if isinstance(array, np.ndarray) else __import__("cupy")


def _as_batch(array, op: str):
    """View a C×H×W image as a batch of one; returns (N×C×H×W array, was_single)."""
    if array.ndim == 3:
        return array[None], True
    if array.ndim == 4:
        return array, False
    raise ValueError(f"{op}: expected a C×H×W image or an N×C×H×W batch, got shape {tuple(array.shape)}")


def _generator(generator):
    if generator is not None:
        return generator
    from .backend.random import default_generator
    return default_generator("cpu")


def _pair(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    if len(size) == 1:
        return int(size[0]), int(size[0])
    return int(size[0]), int(size[1])


class Transform:
    """Base class: ``__call__`` on an image or batch; ``apply_batch`` on a batch."""

    supports_batch = True

    def __call__(self, x):
        raise NotImplementedError

    def apply_batch(self, x):
        return self(x)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "generator")
        return f"{type(self).__name__}({fields})"


class Compose(Transform):
    """Apply several transforms in order."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    @property
    def supports_batch(self) -> bool:
        return all(hasattr(t, "apply_batch") and getattr(t, "supports_batch", True) for t in self.transforms)

    def apply_batch(self, x):
        for t in self.transforms:
            x = t.apply_batch(x)
        return x

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


class Lambda(Transform):
    """Apply a function (only to single images: it has no batch form)."""

    supports_batch = False

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, x):
        return self.fn(x)


# ------------------------------------------------------------------ deterministic
class ToTensor(Transform):
    """uint8 H×W / H×W×C image -> float32 C×H×W Tensor in [0, 1] (``x / 255``).

    Non-uint8 arrays are only moved to C×H×W and cast to float32, not scaled,
    as in torchvision. ``apply_batch`` does the same to N×H×W / N×H×W×C stacks.
    """

    def __call__(self, pic):
        from .tensor import Tensor
        array = pic.data if isinstance(pic, Tensor) else np.asarray(pic)
        if array.ndim == 2:
            array = array[None]
        elif array.ndim == 3:
            array = array.transpose(2, 0, 1)
        else:
            raise ValueError(f"ToTensor: expected an H×W or H×W×C image, got shape {tuple(array.shape)}")
        return Tensor(_to_unit_float(array))

    def apply_batch(self, pics):
        from .tensor import Tensor
        array = pics.data if isinstance(pics, Tensor) else np.asarray(pics)
        if array.ndim == 3:
            array = array[:, None]
        elif array.ndim == 4:
            array = array.transpose(0, 3, 1, 2)
        else:
            raise ValueError(f"ToTensor: expected an N×H×W or N×H×W×C batch, got shape {tuple(array.shape)}")
        return Tensor(_to_unit_float(array))


def _to_unit_float(array):
    xp = _xp(array)
    if array.dtype == np.uint8:
        return xp.ascontiguousarray(array, dtype=np.float32) * np.float32(1 / 255)
    return xp.ascontiguousarray(array, dtype=np.float32)


class Normalize(Transform):
    """``(x - mean[c]) / std[c]`` per channel, on C×H×W or N×C×H×W."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False):
        self.mean = tuple(float(m) for m in np.atleast_1d(mean))
        self.std = tuple(float(s) for s in np.atleast_1d(std))
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std must be non-zero, got {self.std}")
        self.inplace = inplace

    def __call__(self, x):
        array, wrap = _unwrap(x)
        batch, single = _as_batch(array, "Normalize")
        channels = batch.shape[1]
        if len(self.mean) not in (1, channels) or len(self.std) not in (1, channels):
            raise ValueError(f"Normalize: mean/std have {len(self.mean)}/{len(self.std)} values "
                             f"but the image has {channels} channels")
        xp = _xp(array)
        mean = xp.asarray(self.mean, dtype=array.dtype).reshape(1, -1, 1, 1)
        inv_std = xp.asarray([1 / s for s in self.std], dtype=array.dtype).reshape(1, -1, 1, 1)
        if self.inplace:
            batch -= mean
            batch *= inv_std
            out = batch
        else:
            out = (batch - mean) * inv_std
        return wrap(out[0] if single else out)


class Pad(Transform):
    """Zero (or ``fill``) padding of the last two dimensions."""

    def __init__(self, padding, fill: float = 0, padding_mode: str = "constant"):
        self.padding = _padding4(padding)
        self.fill = fill
        self.padding_mode = padding_mode

    def __call__(self, x):
        array, wrap = _unwrap(x)
        return wrap(_pad(array, self.padding, self.fill, self.padding_mode))


def _padding4(padding) -> tuple[int, int, int, int]:
    """torchvision's padding forms -> (left, top, right, bottom)."""
    if isinstance(padding, (int, np.integer)):
        return (int(padding),) * 4
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        return padding[0], padding[1], padding[0], padding[1]
    if len(padding) == 4:
        return padding
    raise ValueError(f"padding must be an int or a sequence of 2 or 4 ints, got {padding}")


def _pad(array, padding, fill, mode):
    left, top, right, bottom = padding
    if not any(padding):
        return array
    widths = [(0, 0)] * (array.ndim - 2) + [(top, bottom), (left, right)]
    xp = _xp(array)
    if mode == "constant":
        return xp.pad(array, widths, mode="constant", constant_values=fill)
    if mode in ("edge", "reflect", "symmetric"):
        return xp.pad(array, widths, mode=mode)
    raise ValueError(f"padding_mode must be constant, edge, reflect or symmetric, got {mode!r}")


# ------------------------------------------------------------------ random
class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, generator=None):
        self.p = p
        self.generator = generator

    def sample_params(self, n: int) -> np.ndarray:
        """One bool per image: flip it or not."""
        return np.asarray(_generator(self.generator).uniform((n,), np.float64)) < self.p

    @staticmethod
    def apply_params(batch, flip: np.ndarray):
        xp = _xp(batch)
        flip = xp.asarray(flip).reshape(-1, 1, 1, 1)
        return xp.where(flip, batch[..., ::-1], batch)

    def __call__(self, x):
        array, wrap = _unwrap(x)
        batch, single = _as_batch(array, "RandomHorizontalFlip")
        out = self.apply_params(batch, self.sample_params(len(batch)))
        return wrap(out[0] if single else out)


class RandomVerticalFlip(RandomHorizontalFlip):
    """Mirror each image top-bottom with probability ``p``."""

    @staticmethod
    def apply_params(batch, flip):
        xp = _xp(batch)
        flip = xp.asarray(flip).reshape(-1, 1, 1, 1)
        return xp.where(flip, batch[..., ::-1, :], batch)


class RandomCrop(Transform):
    """Pad by ``padding``, then cut a random ``size`` window from each image."""

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill: float = 0,
                 padding_mode: str = "constant", generator=None):
        self.size = _pair(size)
        self.padding = _padding4(padding) if padding is not None else (0, 0, 0, 0)
        self.pad_if_needed = pad_if_needed
        self.fill = fill
        self.padding_mode = padding_mode
        self.generator = generator

    def sample_params(self, n: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Top and left corner of each window, uniform over the valid positions."""
        h, w = self.size
        if height < h or width < w:
            raise ValueError(f"RandomCrop: crop size {(h, w)} is larger than the (padded) image {(height, width)}")
        gen = _generator(self.generator)
        top = np.asarray(gen.integers(0, height - h + 1, (n,)))
        left = np.asarray(gen.integers(0, width - w + 1, (n,)))
        return top, left

    def apply_params(self, batch, top: np.ndarray, left: np.ndarray):
        """out[n, c, y, x] = batch[n, c, top[n] + y, left[n] + x]."""
        xp = _xp(batch)
        h, w = self.size
        rows = xp.asarray(top)[:, None] + xp.arange(h)                # N×h
        cols = xp.asarray(left)[:, None] + xp.arange(w)               # N×w
        n = xp.arange(len(batch))[:, None, None]
        out = batch[n, :, rows[:, :, None], cols[:, None, :]]        # N×h×w×C (advanced dims first)
        return xp.ascontiguousarray(out.transpose(0, 3, 1, 2))

    def _padded(self, batch):
        batch = _pad(batch, self.padding, self.fill, self.padding_mode)
        if self.pad_if_needed:
            h, w = self.size
            extra_h, extra_w = max(0, h - batch.shape[2]), max(0, w - batch.shape[3])
            batch = _pad(batch, (extra_w, extra_h, extra_w, extra_h), self.fill, self.padding_mode)
        return batch

    def __call__(self, x):
        array, wrap = _unwrap(x)
        batch, single = _as_batch(array, "RandomCrop")
        batch = self._padded(batch)
        top, left = self.sample_params(len(batch), batch.shape[2], batch.shape[3])
        out = self.apply_params(batch, top, left)
        return wrap(out[0] if single else out)


class RandomErasing(Transform):
    """With probability ``p``, set a random rectangle of each image to ``value``.

    torchvision's algorithm: the rectangle's area is ``scale`` (a fraction range) of
    the image and its aspect ratio is log-uniform in ``ratio``; up to 10 tries to
    fit it inside the image, else the image is left as it is.
    """

    def __init__(self, p: float = 0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value: float = 0,
                 inplace: bool = False, generator=None):
        if not (0 <= p <= 1):
            raise ValueError(f"RandomErasing: p must be in [0, 1], got {p}")
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError(f"RandomErasing: scale and ratio must be (min, max), got {scale}, {ratio}")
        self.p, self.scale, self.ratio, self.value, self.inplace = p, tuple(scale), tuple(ratio), value, inplace
        self.generator = generator

    def sample_params(self, n: int, height: int, width: int) -> np.ndarray:
        """N×4 int array (top, left, h, w) per image; h = w = 0 means "not erased"."""
        gen = _generator(self.generator)
        boxes = np.zeros((n, 4), dtype=np.int64)
        erase = np.asarray(gen.uniform((n,), np.float64)) < self.p
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for i in np.flatnonzero(erase):
            for _ in range(10):
                target = area * float(gen.uniform((), np.float64, *self.scale))
                aspect = math.exp(float(gen.uniform((), np.float64, *log_ratio)))
                h = int(round(math.sqrt(target * aspect)))
                w = int(round(math.sqrt(target / aspect)))
                if 0 < h < height and 0 < w < width:
                    top = int(gen.integers(0, height - h + 1, ()))
                    left = int(gen.integers(0, width - w + 1, ()))
                    boxes[i] = (top, left, h, w)
                    break
        return boxes

    def apply_params(self, batch, boxes: np.ndarray):
        """Pixels with top <= y < top + h and left <= x < left + w become ``value``."""
        xp = _xp(batch)
        boxes = xp.asarray(boxes)
        top, left, h, w = (boxes[:, k].reshape(-1, 1, 1, 1) for k in range(4))
        y = xp.arange(batch.shape[2]).reshape(1, 1, -1, 1)
        x = xp.arange(batch.shape[3]).reshape(1, 1, 1, -1)
        inside = (y >= top) & (y < top + h) & (x >= left) & (x < left + w)
        if self.inplace:
            batch[xp.broadcast_to(inside, batch.shape)] = self.value
            return batch
        return xp.where(inside, xp.asarray(self.value, dtype=batch.dtype), batch)

    def __call__(self, x):
        array, wrap = _unwrap(x)
        batch, single = _as_batch(array, "RandomErasing")
        out = self.apply_params(batch, self.sample_params(len(batch), batch.shape[2], batch.shape[3]))
        return wrap(out[0] if single else out)


class RandomRotation(Transform):
    """Rotate each image by an angle uniform in ``degrees`` (nearest-neighbour, about the centre).

    Pixels that come from outside the image are set to ``fill``.
    """

    def __init__(self, degrees, fill: float = 0, generator=None):
        if isinstance(degrees, (int, float)):
            if degrees < 0:
                raise ValueError(f"RandomRotation: degrees must be non-negative, got {degrees}")
            degrees = (-degrees, degrees)
        self.degrees = (float(degrees[0]), float(degrees[1]))
        self.fill = fill
        self.generator = generator

    def sample_params(self, n: int) -> np.ndarray:
        return np.asarray(_generator(self.generator).uniform((n,), np.float64, *self.degrees))

    def apply_params(self, batch, angles: np.ndarray):
        """out[y, x] = in[R(-angle) · ((y, x) - centre) + centre], rounded to the nearest pixel.

        Like torchvision, a positive angle turns the picture counter-clockwise.
        """
        xp = _xp(batch)
        n, c, height, width = batch.shape
        theta = xp.asarray(np.deg2rad(angles)).reshape(-1, 1, 1)
        cy, cx = (height - 1) / 2, (width - 1) / 2
        y = xp.arange(height).reshape(1, -1, 1) - cy
        x = xp.arange(width).reshape(1, 1, -1) - cx
        cos, sin = xp.cos(theta), xp.sin(theta)
        # image y points down, so a counter-clockwise turn by θ maps output (x, y) back to
        # input (x cosθ - y sinθ, x sinθ + y cosθ)
        src_x = xp.rint(x * cos - y * sin + cx).astype(np.int64)
        src_y = xp.rint(x * sin + y * cos + cy).astype(np.int64)
        valid = (src_x >= 0) & (src_x < width) & (src_y >= 0) & (src_y < height)
        src_x, src_y = xp.clip(src_x, 0, width - 1), xp.clip(src_y, 0, height - 1)
        out = batch[xp.arange(n).reshape(-1, 1, 1), :, src_y, src_x]       # N×H×W×C
        out = out.transpose(0, 3, 1, 2)
        return xp.where(valid[:, None], out, xp.asarray(self.fill, dtype=batch.dtype))

    def __call__(self, x):
        array, wrap = _unwrap(x)
        batch, single = _as_batch(array, "RandomRotation")
        out = self.apply_params(batch, self.sample_params(len(batch)))
        return wrap(out[0] if single else out)


__all__ = ["Transform", "Compose", "Lambda", "ToTensor", "Normalize", "Pad", "RandomHorizontalFlip",
           "RandomVerticalFlip", "RandomCrop", "RandomErasing", "RandomRotation"]
