"""The malloc tuning applied at import, and its opt-out."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tinynn.backend import memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tune_malloc_is_accepted_by_glibc():
    assert memory.tune_malloc() is True


def test_opt_out_leaves_malloc_alone(monkeypatch):
    monkeypatch.setenv("TINYNN_MALLOC_TUNING", "0")
    assert memory.tune_malloc() is False


def test_importing_tinynn_with_the_opt_out_works():
    env = dict(os.environ, TINYNN_MALLOC_TUNING="0")
    out = subprocess.run([sys.executable, "-c", "import tinynn as tn; print((tn.ones(3) * 2).sum().item())"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "6.0"
