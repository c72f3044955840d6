"""CPU kernels: a NumPy ``reference`` and a fast implementation of each hot op.
Importing this package registers them in ``tinynn.backend.kernels``.

    op                                   implementations (default first)
    conv2d_forward / _backward_input /   numba (Numba im2col/col2im + BLAS), reference (per-tap NumPy)
      _backward_weight
    max_pool2d_forward / _backward,      numba, reference (Python loop over windows)
    avg_pool2d_forward / _backward,
    adaptive_avg_pool2d_forward / _backward, adaptive_max_pool2d_forward
    attention_forward / _backward        blocked (query blocks, in place), reference (full score matrix)
    layer_norm_forward / _backward,      numba (one or two passes, float64 sums), reference (NumPy)
    group_norm_forward / _backward,
    batch_norm_forward / _backward
    erf, gelu_forward / _backward        numba (vectorised; float64 through libm), reference (NumPy)
    optim_sgd, optim_adam, ...           numba (fused single pass), reference (registered by tinynn.optim)

Numba caches compiled kernels next to their source (``cache=True``). When the
package directory is not writable (a system-wide install), compiled kernels go to
``~/.cache/tinynn/numba`` instead, so they are still compiled only once.
"""
import os


def _set_numba_cache_dir() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    if os.access(os.path.dirname(os.path.abspath(__file__)), os.W_OK):
        return
    cache_dir = os.path.join(os.path.expanduser("~"), ".cache", "tinynn", "numba")
    os.environ["NUMBA_CACHE_DIR"] = cache_dir
    import numba.core.config  # Numba reads the variable at import; it may be imported already

    numba.core.config.CACHE_DIR = cache_dir


_set_numba_cache_dir()

from . import activation, attention, conv, normalization, pooling  # noqa: E402,F401  (importing registers them)
