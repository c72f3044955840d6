"""Tests of the CUDA kernels.

Workaround: the root conftest skips items whose *keywords* contain "cuda", and
pytest puts every parent directory's name among an item's keywords, so every test
under ``tests/kernels/cuda/`` would be skipped as "no CUDA GPU" although only
tests carrying the ``cuda`` marker need one. This hook runs after the root one and
takes that skip back from the tests here that do not carry the marker.
"""
from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HERE not in Path(str(item.path)).parents or item.get_closest_marker("cuda") is not None:
            continue
        item.own_markers[:] = [marker for marker in item.own_markers
                               if not (marker.name == "skip" and marker.kwargs.get("reason") == "no CUDA GPU")]
