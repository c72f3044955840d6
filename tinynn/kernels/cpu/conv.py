"""2-d convolution kernels on raw NumPy arrays: forward and both backward passes.

Shapes (PyTorch's): x (N, C, H, W), w (O, C // groups, KH, KW), y (N, O, OH, OW).
stride, padding and dilation are ``(int, int)`` pairs; padding is symmetric zero
padding; there is no bias (the op layer adds it).

Two implementations are registered:

``reference`` (priority 0)
    The definition, one kernel tap at a time: for every tap ``(kh, kw)`` the
    output gains ``w[:, :, kh, kw] @ (the input shifted by that tap)``. Readable,
    slow, and a different algorithm from the fast path, so tests compare two
    independent computations.

``numba`` (priority 10)
    im2col + BLAS: a Numba kernel gathers every receptive field into a column
    matrix, BLAS GEMMs with the weights do all the arithmetic, and the
    backward-input pass scatters columns back with a Numba col2im. Measured on
    the 2-core box (float32, LeNet / ResNet-CIFAR shapes): the serial Numba
    im2col is 1.6x faster than NumPy strided copies and ~3x faster than
    ``torch.nn.functional.unfold``; a direct Numba convolution was 1.5-20x
    slower than im2col + BLAS (KERNELS.md), so the arithmetic always goes
    through BLAS.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit, uint64

from tinynn.backend.kernels import register

from .shapes import conv_output_size

Pair = tuple[int, int]


def _output_hw(x_shape, w_shape, stride: Pair, padding: Pair, dilation: Pair) -> Pair:
    _, _, H, W = x_shape
    _, _, KH, KW = w_shape
    OH = conv_output_size(H, KH, stride[0], padding[0], dilation[0])
    OW = conv_output_size(W, KW, stride[1], padding[1], dilation[1])
    if OH <= 0 or OW <= 0:
        raise ValueError(f"conv2d: input {tuple(x_shape)} is too small for kernel {(KH, KW)} "
                         f"with padding {padding} and dilation {dilation} (output would be {OH}x{OW})")
    return OH, OW


def _result_dtype(*arrays) -> np.dtype:
    return np.result_type(*arrays)


# --------------------------------------------------------------------------------------
# reference: sum over kernel taps
# --------------------------------------------------------------------------------------

def _tap_slices(kh: int, kw: int, OH: int, OW: int, stride: Pair, dilation: Pair):
    """Rows/cols of the *padded* input that tap (kh, kw) reads for every output pixel:
    x_padded[oh * sh + kh * dh, ow * sw + kw * dw]."""
    h0, w0 = kh * dilation[0], kw * dilation[1]
    return (slice(h0, h0 + stride[0] * (OH - 1) + 1, stride[0]),
            slice(w0, w0 + stride[1] * (OW - 1) + 1, stride[1]))


def _pad_hw(x: np.ndarray, padding: Pair) -> np.ndarray:
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


@register("conv2d_forward", "reference", priority=0)
def conv2d_forward_reference(x, w, stride, padding, dilation, groups):
    """y[n, g*Og + o] = sum_{c, kh, kw} w[g*Og + o, c, kh, kw] * x_pad[n, g*Cg + c, oh*sh + kh*dh, ow*sw + kw*dw]"""
    N, C, _, _ = x.shape
    O, Cg, KH, KW = w.shape
    OH, OW = _output_hw(x.shape, w.shape, stride, padding, dilation)
    G, Og = groups, O // groups
    xp = _pad_hw(x, padding)
    xg = xp.reshape(N, G, Cg, *xp.shape[2:])
    wg = w.reshape(G, Og, Cg, KH, KW)
    y = np.zeros((N, G, Og, OH, OW), dtype=_result_dtype(x, w))
    for kh in range(KH):
        for kw in range(KW):
            rows, cols = _tap_slices(kh, kw, OH, OW, stride, dilation)
            y += np.einsum("goc,ngchw->ngohw", wg[:, :, :, kh, kw], xg[:, :, :, rows, cols])
    return y.reshape(N, O, OH, OW)


@register("conv2d_backward_input", "reference", priority=0)
def conv2d_backward_input_reference(grad_y, w, x_shape, stride, padding, dilation, groups):
    """grad_x_pad[n, g*Cg + c, oh*sh + kh*dh, ow*sw + kw*dw]
    += sum_o w[g*Og + o, c, kh, kw] * grad_y[n, g*Og + o, oh, ow]"""
    N, C, H, W = x_shape
    O, Cg, KH, KW = w.shape
    _, _, OH, OW = grad_y.shape
    G, Og = groups, O // groups
    ph, pw = padding
    grad_xp = np.zeros((N, G, Cg, H + 2 * ph, W + 2 * pw), dtype=_result_dtype(grad_y, w))
    gy = grad_y.reshape(N, G, Og, OH, OW)
    wg = w.reshape(G, Og, Cg, KH, KW)
    for kh in range(KH):
        for kw in range(KW):
            rows, cols = _tap_slices(kh, kw, OH, OW, stride, dilation)
            grad_xp[:, :, :, rows, cols] += np.einsum("goc,ngohw->ngchw", wg[:, :, :, kh, kw], gy)
    return grad_xp[:, :, :, ph:ph + H, pw:pw + W].reshape(N, C, H, W).copy()


@register("conv2d_backward_weight", "reference", priority=0)
def conv2d_backward_weight_reference(grad_y, x, w_shape, stride, padding, dilation, groups):
    """grad_w[g*Og + o, c, kh, kw]
    = sum_{n, oh, ow} grad_y[n, g*Og + o, oh, ow] * x_pad[n, g*Cg + c, oh*sh + kh*dh, ow*sw + kw*dw]"""
    N = x.shape[0]
    O, Cg, KH, KW = w_shape
    _, _, OH, OW = grad_y.shape
    G, Og = groups, O // groups
    xp = _pad_hw(x, padding)
    xg = xp.reshape(N, G, Cg, *xp.shape[2:])
    gy = grad_y.reshape(N, G, Og, OH, OW)
    grad_w = np.zeros((G, Og, Cg, KH, KW), dtype=_result_dtype(grad_y, x))
    for kh in range(KH):
        for kw in range(KW):
            rows, cols = _tap_slices(kh, kw, OH, OW, stride, dilation)
            grad_w[:, :, :, kh, kw] = np.einsum("ngohw,ngchw->goc", gy, xg[:, :, :, rows, cols])
    return grad_w.reshape(O, Cg, KH, KW)


# --------------------------------------------------------------------------------------
# numba: im2col + BLAS
# --------------------------------------------------------------------------------------
# Two layouts of the column matrix, rows ordered (c, kh, kw), P = OH*OW pixels:
#   "images" (N, K, P): one GEMM per image, whose result is already in NCHW order;
#   "rows"   (K, N*P):  one GEMM for the whole batch, but y / dy need an (N, O, P) <-> (O, N*P) transpose.
# Per pass, the faster layout (measured at the LeNet-5 / ResNet-8 shapes, float32, 1 BLAS thread,
# CPU time, ms "rows" -> "images"):
#   forward          y[n]     = W @ cols[n]          images (lenet1 2.90 -> 1.96, res16 4.04 -> 3.92)
#   backward input   dcols[n] = W^T @ dy[n], col2im  images (lenet1 2.86 -> 1.90, res32 3.39 -> 2.96)
#   backward weight  dW       = dy^T @ cols^T        rows   (lenet2 2.28 vs 2.91, res64 3.03 vs 3.37):
#                    contracting over all images and pixels in one GEMM beats N GEMMs + a sum.
# (Computing dx as a convolution of dy with the flipped kernel, instead of col2im, was slower:
# res16 6.4 -> 7.0 ms, lenet2 2.8 -> 16 ms.)
#
# The kernels are serial on purpose. Numba's parallel (OpenMP) worker threads and
# OpenBLAS's threads spin while waiting; on 2 cores they steal each other's time
# slices and a conv step became 5-10x slower (measured: 380 ms vs 40 ms for the
# LeNet+ResNet-CIFAR conv set). Serial gathers + 2-thread BLAS is the fastest mix.
#
# The inner loops index with unsigned integers on purpose: Numba checks every signed
# index for negative wrap-around, which stops LLVM from vectorising the copy. With
# uint64 indices the copies vectorise (measured 3x faster).

@njit(cache=True, nogil=True)
def _inside_columns(shift_w, sw, W, OW):
    """The output columns ow_lo <= ow < ow_hi whose input column ow*sw + shift_w lies inside
    the image (0 <= ow*sw + shift_w < W); the others read padding."""
    ow_lo = min(OW, max(0, (-shift_w + sw - 1) // sw))
    ow_hi = max(ow_lo, min(OW, (W - 1 - shift_w) // sw + 1))
    return ow_lo, ow_hi


@njit(cache=True, boundscheck=False, nogil=True)
def _im2col_kernel(x, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, row_stride, image_stride, cols, n_begin, n_end):
    """cols.flat[row * row_stride + n * image_stride + oh*OW + ow] = x[n, c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]
    (0 outside), with row = (c*KH + kh)*KW + kw, for images n_begin <= n < n_end.
    The two strides choose the layout of ``cols``."""
    N, C, H, W = x.shape
    x_flat = x.ravel()
    cols_flat = cols.ravel()
    for n in range(n_begin, n_end):
        for c in range(C):
            for kh in range(KH):
                for kw in range(KW):
                    row_start = ((c * KH + kh) * KW + kw) * row_stride + n * image_stride
                    shift_w = kw * dw - pw
                    ow_lo, ow_hi = _inside_columns(shift_w, sw, W, OW)
                    for oh in range(OH):
                        ih = oh * sh - ph + kh * dh
                        dst = uint64(row_start + oh * OW)
                        if ih < 0 or ih >= H:
                            for ow in range(uint64(OW)):
                                cols_flat[dst + ow] = 0
                            continue
                        for ow in range(uint64(ow_lo)):
                            cols_flat[dst + ow] = 0
                        for ow in range(uint64(ow_hi), uint64(OW)):
                            cols_flat[dst + ow] = 0
                        src = uint64(((n * C + c) * H + ih) * W + ow_lo * sw + shift_w)
                        dst += uint64(ow_lo)
                        step = uint64(sw)
                        for i in range(uint64(ow_hi - ow_lo)):
                            cols_flat[dst + i] = x_flat[src + i * step]


@njit(cache=True, boundscheck=False, nogil=True)
def _col2im_kernel(cols, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, row_stride, image_stride, x, n_begin, n_end):
    """The adjoint of im2col: x[n, c, ih, iw] += cols[...] for every (tap, output pixel) reading (ih, iw),
    for images n_begin <= n < n_end. x starts zeroed."""
    N, C, H, W = x.shape
    x_flat = x.ravel()
    cols_flat = cols.ravel()
    for n in range(n_begin, n_end):
        for c in range(C):
            for kh in range(KH):
                for kw in range(KW):
                    row_start = ((c * KH + kh) * KW + kw) * row_stride + n * image_stride
                    shift_w = kw * dw - pw
                    ow_lo, ow_hi = _inside_columns(shift_w, sw, W, OW)
                    for oh in range(OH):
                        ih = oh * sh - ph + kh * dh
                        if ih < 0 or ih >= H:
                            continue
                        src = uint64(row_start + oh * OW + ow_lo)
                        dst = uint64(((n * C + c) * H + ih) * W + ow_lo * sw + shift_w)
                        step = uint64(sw)
                        for i in range(uint64(ow_hi - ow_lo)):
                            x_flat[dst + i * step] += cols_flat[src + i]


def _is_pointwise(kernel_size: Pair, stride: Pair, padding: Pair) -> bool:
    """A 1x1, stride-1, unpadded convolution reads each pixel once: no gathering needed."""
    return kernel_size == (1, 1) and stride == (1, 1) and padding == (0, 0)


# im2col / col2im can split a chunk of images between threads: the kernels release the GIL
# (nogil) and each thread writes its own images, so no locks are needed. It is OFF by default:
# on the shared 2-core machine (load average ~5) a preempted worker stalls the whole step, as
# OpenBLAS's do. LeNet-5 step, ratio to PyTorch, 1 BLAS thread: 1 im2col thread 0.89-0.99,
# 2 threads 1.26-1.27 (ResNet-8: 1.00-1.06 vs 1.13-1.41). Set IM2COL_THREADS = 2 on an idle machine.
# Below MIN_PARALLEL_ELEMENTS columns the thread hand-off costs more than it saves.
IM2COL_THREADS = 1
MIN_PARALLEL_ELEMENTS = 1 << 18
_pool: ThreadPoolExecutor | None = None


def _threads() -> int:
    return max(1, min(os.cpu_count() or 1, IM2COL_THREADS))


def _over_images(kernel, N: int, elements_per_image: int, *args) -> None:
    """Run ``kernel(*args, n_begin, n_end)`` over images [0, N), split into contiguous chunks per thread."""
    threads = min(_threads(), N)
    if threads < 2 or N * elements_per_image < MIN_PARALLEL_ELEMENTS:
        kernel(*args, 0, N)
        return
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tinynn-im2col")
    bounds = [N * i // threads for i in range(threads + 1)]
    futures = [_pool.submit(kernel, *args, bounds[i], bounds[i + 1]) for i in range(1, threads)]
    kernel(*args, bounds[0], bounds[1])  # the calling thread takes the first chunk
    for future in futures:
        future.result()


def _geometry(x_shape, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair):
    N, C, H, W = x_shape
    OH = conv_output_size(H, kernel_size[0], stride[0], padding[0], dilation[0])
    OW = conv_output_size(W, kernel_size[1], stride[1], padding[1], dilation[1])
    return N, C * kernel_size[0] * kernel_size[1], OH, OW


def _strides(layout: str, N: int, K: int, P: int) -> tuple[int, int]:
    """(row_stride, image_stride) of a column matrix: "rows" is (K, N*P), "images" is (N, K, P)."""
    return (N * P, P) if layout == "rows" else (P, K * P)


def im2col(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair,
           layout: str = "rows") -> np.ndarray:
    """Receptive fields as columns, rows ordered (c, kh, kw) as in ``torch.nn.functional.unfold``:
    (N, C, H, W) -> (C*KH*KW, N*OH*OW) for layout "rows", (N, C*KH*KW, OH*OW) for "images"."""
    N, K, OH, OW = _geometry(x.shape, kernel_size, stride, padding, dilation)
    P = OH * OW
    if _is_pointwise(kernel_size, stride, padding):  # a 1x1 convolution reads each pixel once
        if layout == "images":
            return np.ascontiguousarray(x).reshape(N, K, P)
        return np.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(K, N * P)
    cols = np.empty((K, N * P) if layout == "rows" else (N, K, P), dtype=x.dtype)
    _over_images(_im2col_kernel, N, K * P, np.ascontiguousarray(x), *kernel_size, *stride, *padding, *dilation,
                 OH, OW, *_strides(layout, N, K, P), cols)
    return cols


def col2im(cols: np.ndarray, x_shape, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair,
           layout: str = "rows", out: np.ndarray | None = None) -> np.ndarray:
    """Sum columns back into an image of shape ``x_shape`` (into ``out``, a C-contiguous array, if
    given); the adjoint of ``im2col``."""
    N, K, OH, OW = _geometry(x_shape, kernel_size, stride, padding, dilation)
    P = OH * OW
    if _is_pointwise(kernel_size, stride, padding):
        image = cols.reshape(x_shape) if layout == "images" else \
            cols.reshape(x_shape[1], N, *x_shape[2:]).transpose(1, 0, 2, 3)
        if out is None:
            return np.ascontiguousarray(image)
        out[...] = image
        return out
    if out is None:
        x = np.zeros(x_shape, dtype=cols.dtype)
    else:
        x = out
        x.fill(0)
    _over_images(_col2im_kernel, N, K * P, np.ascontiguousarray(cols), *kernel_size, *stride, *padding, *dilation,
                 OH, OW, *_strides(layout, N, K, P), x)
    return x


def _batch_to_columns(a: np.ndarray, groups: int) -> np.ndarray:
    """(N, O, OH, OW) -> (G, O // G, N*OH*OW): channels as rows, (image, pixel) as columns."""
    N, O = a.shape[:2]
    return np.ascontiguousarray(a.reshape(N, O, -1).transpose(1, 0, 2)).reshape(groups, O // groups, -1)


# The batch is processed in chunks of images whose columns fill about CHUNK_BYTES: the column
# matrix is written and read back while it is still in cache, and the temporary memory is bounded.
# Measured against whole-batch columns (float32, 1 BLAS thread, CPU ms): lenet1 forward 2.62 -> 1.76,
# res16 forward 5.11 -> 4.28, backward input 6.18 -> 4.43; -8% over the LeNet + ResNet-8 conv set.
# 1 MiB and 4 MiB chunks were no better than 2 MiB.
CHUNK_BYTES = 2 << 20


def _chunks(N: int, bytes_per_image: int):
    step = max(1, CHUNK_BYTES // max(1, bytes_per_image))
    return [(start, min(N, start + step)) for start in range(0, N, step)]


@register("conv2d_forward", "numba", priority=10)
def conv2d_forward_numba(x, w, stride, padding, dilation, groups):
    """y[n] = W @ cols[n] per image and group: (G, Og, Cg*KH*KW) @ (G, Cg*KH*KW, OH*OW)."""
    N = x.shape[0]
    O, Cg, KH, KW = w.shape
    OH, OW = _output_hw(x.shape, w.shape, stride, padding, dilation)
    dtype = _result_dtype(x, w)
    G, K, P = groups, Cg * KH * KW, OH * OW
    x = np.ascontiguousarray(x, dtype=dtype)
    w_groups = w.astype(dtype, copy=False).reshape(G, O // G, K)
    y = np.empty((N, G, O // G, P), dtype=dtype)  # NCHW: each image's GEMM writes its own slice
    for start, stop in _chunks(N, G * K * P * dtype.itemsize):
        cols = im2col(x[start:stop], (KH, KW), stride, padding, dilation, layout="images")
        np.matmul(w_groups, cols.reshape(stop - start, G, K, P), out=y[start:stop])
    return y.reshape(N, O, OH, OW)


@register("conv2d_backward_input", "numba", priority=10)
def conv2d_backward_input_numba(grad_y, w, x_shape, stride, padding, dilation, groups):
    """dcols[n] = W^T @ dy[n] per image and group, then col2im scatters the columns back into dx."""
    N = grad_y.shape[0]
    O, Cg, KH, KW = w.shape
    dtype = _result_dtype(grad_y, w)
    G, K = groups, Cg * KH * KW
    w_t = w.astype(dtype, copy=False).reshape(G, O // G, K).transpose(0, 2, 1)
    gy = np.ascontiguousarray(grad_y, dtype=dtype).reshape(N, G, O // G, -1)
    grad_x = np.empty(tuple(x_shape), dtype=dtype)
    for start, stop in _chunks(N, G * K * gy.shape[-1] * dtype.itemsize):
        grad_cols = np.matmul(w_t, gy[start:stop])  # (m, G, Cg*KH*KW, P)
        col2im(grad_cols.reshape(stop - start, G * K, -1), (stop - start, *x_shape[1:]), (KH, KW), stride, padding,
               dilation, layout="images", out=grad_x[start:stop])
    return grad_x


@register("conv2d_backward_weight", "numba", priority=10)
def conv2d_backward_weight_numba(grad_y, x, w_shape, stride, padding, dilation, groups):
    """dW = dy^T @ cols^T per group: (G, Og, m*P) @ (G, m*P, Cg*KH*KW), summed over chunks of m images."""
    N = x.shape[0]
    O, Cg, KH, KW = w_shape
    dtype = _result_dtype(grad_y, x)
    G, K = groups, Cg * KH * KW
    x = np.ascontiguousarray(x, dtype=dtype)
    gy = np.ascontiguousarray(grad_y, dtype=dtype)
    grad_w = np.zeros((G, O // G, K), dtype=dtype)
    for start, stop in _chunks(N, G * K * gy.shape[2] * gy.shape[3] * dtype.itemsize):
        cols = im2col(x[start:stop], (KH, KW), stride, padding, dilation)  # (K_total, m*P)
        gy_rows = _batch_to_columns(gy[start:stop], G)  # (G, Og, m*P)
        grad_w += np.matmul(gy_rows, cols.reshape(G, K, -1).transpose(0, 2, 1))
    return grad_w.reshape(O, Cg, KH, KW)
