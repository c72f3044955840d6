"""Type-check and compile every CUDA kernel to PTX for sm_90 without a GPU or driver.

``numba.cuda.compile_ptx`` runs Numba's typing and NVVM, which catch errors the
simulator cannot (it runs kernels as plain Python). It needs the NVIDIA
``numba-cuda`` package with its NVVM (``pip install "numba-cuda[cu13]"``); the
test skips without it, and on machines with a GPU (where the real tests compile
the kernels). Device functions called from a kernel are compiled for "the current
device's" compute capability, which needs a driver: the test stands a fake sm_90
device in for it. The kernel wrappers run with their launches recorded
instead of executed, so each kernel is compiled for the argument types its
wrapper really passes.
"""
import numpy as np
import pytest

from tinynn.kernels.cuda import _launch, attention, conv, pooling


class _FakeSm90:
    compute_capability = (9, 0)


def _compile_ptx_or_skip(monkeypatch):
    try:
        import numba
        from numba import cuda

        if numba.config.ENABLE_CUDASIM:
            pytest.skip("compile_ptx is not available under the simulator")
        if getattr(cuda, "implementation", None) != "NVIDIA":
            pytest.skip('needs the NVIDIA numba-cuda target (pip install "numba-cuda[cu13]"), not numba\'s built-in one')
        if cuda.is_available():
            pytest.skip("a GPU is present: the cuda tests compile the kernels for it")
        import numba.cuda.dispatcher

        monkeypatch.setattr(numba.cuda.dispatcher, "get_current_device", lambda: _FakeSm90())

        @cuda.jit(device=True)
        def twice(value):
            return 2 * value

        def probe(a):
            a[0] = twice(a[1])

        cuda.compile_ptx(probe, (numba.float32[::1],), cc=(9, 0))
    except pytest.skip.Exception:
        raise
    except Exception as error:  # no numba-cuda / NVVM on this machine
        pytest.skip(f"numba.cuda.compile_ptx is unavailable ({type(error).__name__}: {error}); "
                    'pip install "numba-cuda[cu13]"')
    return cuda.compile_ptx


@pytest.fixture
def recorded_launches(monkeypatch):
    """Run the wrappers on NumPy arrays, recording (kernel, args) instead of launching."""
    launches = []
    monkeypatch.setattr(_launch, "is_simulator", lambda: True)  # lets array_module accept NumPy arrays
    record_elementwise = lambda kernel, count, *args: launches.append((kernel, args))  # noqa: E731
    monkeypatch.setattr(conv, "launch_elementwise", record_elementwise)
    monkeypatch.setattr(pooling, "launch_elementwise", record_elementwise)
    monkeypatch.setattr(attention, "launch", lambda kernel, blocks, threads, *args: launches.append((kernel, args)))
    return launches


def _run_every_wrapper(dtype):
    x = np.ones((2, 4, 5, 5), dtype)
    w = np.ones((4, 2, 3, 3), dtype)
    geometry = ((1, 2), (1, 1), (2, 1), 2)
    conv.conv2d_forward(x, w, *geometry)
    conv.conv2d_backward_input(np.ones((2, 4, 3, 3), dtype), w, x.shape, *geometry)
    y, indices = pooling.max_pool2d_forward(x, (2, 2), (2, 2), (1, 1), (1, 1), True)
    pooling.max_pool2d_backward(y, indices, x.shape)
    y = pooling.avg_pool2d_forward(x, (2, 2), (2, 2), (1, 1), True, False, None)
    pooling.avg_pool2d_backward(y, x.shape, (2, 2), (2, 2), (1, 1), True, False, None)
    y = pooling.adaptive_avg_pool2d_forward(x, (2, 3))
    pooling.adaptive_avg_pool2d_backward(y, x.shape)
    pooling.adaptive_max_pool2d_forward(x, (2, 3))
    q = np.ones((1, 2, 5, 8), dtype)
    mask = np.zeros((5, 5), dtype)
    attention.attention_forward(q, q, q, mask, True, None, None)
    lse = np.zeros((1, 2, 5), dtype)
    attention.attention_backward(q, q, q, q, q, lse, mask, True, None, None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_every_kernel_compiles_to_ptx_for_sm90(dtype, recorded_launches, monkeypatch):
    import numba

    compile_ptx = _compile_ptx_or_skip(monkeypatch)
    with np.errstate(all="ignore"):  # the GEMMs read never-written buffers
        _run_every_wrapper(dtype)
    compiled = set()
    for kernel, args in recorded_launches:
        # what a CuPy array is typed as: a writable device array (NumPy broadcast views are read-only)
        signature = tuple(numba.typeof(a).copy(readonly=False) if isinstance(a, np.ndarray) else numba.typeof(a)
                          for a in args)
        ptx, _ = compile_ptx(kernel.py_func, signature, cc=(9, 0))
        assert ".entry" in ptx and ".target sm_90" in ptx
        compiled.add(kernel.py_func.__name__)
    expected = {"_im2col_kernel", "_col2im_kernel", "_max_pool_kernel", "_max_pool_backward_kernel", "_avg_pool_kernel",
                "_avg_pool_backward_kernel", "_adaptive_avg_pool_kernel", "_adaptive_avg_pool_backward_kernel",
                "_adaptive_max_pool_kernel"}
    if dtype != np.float16:  # half-precision attention runs the composed (CuPy) version
        expected |= {"forward", "backward_key", "backward_query"}
    assert expected <= compiled
