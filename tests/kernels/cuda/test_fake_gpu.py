"""Runs tests/test_cuda.py, and a sweep of functional ops and small models, against
the fake CuPy of fake_cupy/ (no GPU needed).

The fake is a NumPy-backed CuPy that refuses implicit host/device mixing the way
CuPy does; ops with a ``cupy`` implementation run it, and the other cuda kernels
are bridged to their cpu reference. So this
exercises tinynn's whole "cuda" path (tensors, autograd, ops, layers, optimizers,
checkpoints) and catches NumPy-only code before a GPU machine sees it. The Numba
CUDA kernels themselves are checked by the simulator tests instead.
"""
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
REPO_ROOT = Path(__file__).parents[3]


def test_cuda_tests_pass_on_a_fake_gpu():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(HERE / "fake_cupy"),
                                                                   os.environ.get("PYTHONPATH")])))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "fake_gpu_plugin", "-p", "no:cacheprovider",
               str(REPO_ROOT / "tests" / "test_cuda.py")]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    report = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, f"tests/test_cuda.py failed on the fake GPU:\n{report}"
    assert " passed" in result.stdout, report


def test_functional_ops_and_small_models_run_on_a_fake_gpu():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(HERE / "fake_cupy"),
                                                                   os.environ.get("PYTHONPATH")])))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    result = subprocess.run([sys.executable, str(HERE / "fake_cupy" / "smoke_fake_gpu.py")], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"on the fake GPU:\n{result.stdout[-6000:]}{result.stderr[-3000:]}"
    assert result.stdout.count("ok   ") >= 20, result.stdout
