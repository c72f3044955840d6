"""Fixtures for the dataset tests."""
from __future__ import annotations

import pytest


@pytest.fixture
def isolated_data_dirs(tmp_path, monkeypatch):
    """No real dataset is found: $TINYNN_DATA and the cache point into tmp_path."""
    monkeypatch.setenv("TINYNN_DATA", str(tmp_path / "tinynn_data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYNN_MIRROR", raising=False)
    from tinynn.datasets import FashionMNIST
    monkeypatch.setattr(FashionMNIST, "system_dirs", [])
    return tmp_path
