"""``tn.cuda`` and ``tinynn.kernels.cuda`` on a machine without CuPy or a GPU."""
import os
import subprocess
import sys

import pytest

import tinynn.cuda


def test_cuda_module_reports_no_gpu_and_never_raises_without_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # "import cupy" now fails, as when it is not installed
    assert tinynn.cuda.is_available() is False
    assert tinynn.cuda.device_count() == 0
    tinynn.cuda.manual_seed(1)  # silently ignored, as in PyTorch
    tinynn.cuda.manual_seed_all(1)
    tinynn.cuda.empty_cache()
    with pytest.raises(RuntimeError, match=r"tn.cuda.synchronize: no CUDA GPU.*pip install 'tinynn\[cuda\]'"):
        tinynn.cuda.synchronize()
    with pytest.raises(RuntimeError, match="current_device"):
        tinynn.cuda.current_device()


def test_importing_the_cuda_kernels_needs_no_gpu_driver_or_cupy():
    script = (
        "import sys; sys.modules['cupy'] = None\n"
        "from tinynn.backend import kernels\n"
        "names = kernels.available('conv2d_forward', 'cuda')\n"
        "assert names == ['numba_cuda', 'cupy'], names\n"
        "assert kernels.available('attention_forward', 'cuda')[:2] == ['numba_cuda', 'cupy']\n"
        "from tinynn.kernels.cuda import conv, pooling\n"
        "assert not conv._im2col_kernel.overloads and not pooling._max_pool_kernel.overloads  # nothing compiled\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"})
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr


def test_cuda_kernels_refuse_numpy_arrays_outside_the_simulator(monkeypatch):
    import numpy as np

    from tinynn.kernels.cuda import _launch, conv
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    assert not _launch.is_simulator()
    with pytest.raises(TypeError, match="CuPy arrays"):
        conv.conv2d_forward(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 1, 1)), (1, 1), (0, 0), (1, 1), 1)
