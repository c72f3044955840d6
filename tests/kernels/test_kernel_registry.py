"""The cpu kernels are registered under the expected names, fast one first, and
``kernels.use`` switches which one runs."""
from __future__ import annotations

import pytest

from tinynn.backend import kernels
from tinynn.kernels.cpu import attention, conv

FAST = {
    "conv2d_forward": "numba", "conv2d_backward_input": "numba", "conv2d_backward_weight": "numba",
    "max_pool2d_forward": "numba", "max_pool2d_backward": "numba", "avg_pool2d_forward": "numba",
    "avg_pool2d_backward": "numba", "adaptive_avg_pool2d_forward": "numba", "adaptive_avg_pool2d_backward": "numba",
    "adaptive_max_pool2d_forward": "numba", "attention_forward": "blocked", "attention_backward": "blocked",
}


@pytest.mark.parametrize("op", sorted(FAST))
def test_fast_implementation_is_the_default(op):
    assert kernels.available(op, "cpu") == [FAST[op], "reference"]


def test_use_switches_the_implementation_and_restores_it():
    assert kernels.get("conv2d_forward") is conv.conv2d_forward_numba
    with kernels.use("conv2d_forward", "reference"):
        assert kernels.get("conv2d_forward") is conv.conv2d_forward_reference
        assert kernels.get("conv2d_backward_input") is conv.conv2d_backward_input_numba  # other ops unaffected
    assert kernels.get("conv2d_forward") is conv.conv2d_forward_numba
    with kernels.use("attention_forward", "reference"):
        assert kernels.get("attention_forward") is attention.attention_forward_reference


def test_use_rejects_unknown_names():
    with pytest.raises(ValueError, match="no implementation 'fortran'"):
        with kernels.use("conv2d_forward", "fortran"):
            pass



def test_numba_cache_falls_back_to_the_home_directory_when_the_package_is_read_only(monkeypatch, tmp_path):
    import numba.core.config

    import tinynn.kernels.cpu as cpu_kernels
    monkeypatch.setenv("NUMBA_CACHE_DIR", "")  # unset for the function; monkeypatch restores the original after
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(cpu_kernels.os, "access", lambda path, mode: False)
    monkeypatch.setattr(numba.core.config, "CACHE_DIR", numba.core.config.CACHE_DIR)  # restored afterwards
    cpu_kernels._set_numba_cache_dir()
    expected = str(tmp_path / ".cache" / "tinynn" / "numba")
    assert cpu_kernels.os.environ["NUMBA_CACHE_DIR"] == expected
    assert numba.core.config.CACHE_DIR == expected


def test_an_explicit_numba_cache_dir_is_kept(monkeypatch, tmp_path):
    import tinynn.kernels.cpu as cpu_kernels
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cpu_kernels.os, "access", lambda path, mode: False)
    cpu_kernels._set_numba_cache_dir()
    assert cpu_kernels.os.environ["NUMBA_CACHE_DIR"] == str(tmp_path)
