"""CUDA kernels (Numba CUDA, CuPy). Importing this package registers them; nothing compiles at import.

Kernels take CuPy arrays on a GPU, or NumPy arrays under Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``), which is how they are tested on machines without a
GPU; ``_launch`` hides the difference. Registered implementations (device "cuda"):

* ``numba_cuda``: conv2d (im2col + cuBLAS + col2im), max/avg/adaptive pooling,
  fused attention (online softmax in shared memory);
* ``cupy``: attention composed from cuBLAS GEMMs and CuPy elementwise kernels.
"""
from . import attention, conv, pooling

__all__ = ["attention", "conv", "pooling"]
