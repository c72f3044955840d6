"""Anomaly detection: stop at the first op whose output or gradient holds NaN or Inf."""
from __future__ import annotations

import threading
import traceback


class _AnomalyState(threading.local):
    enabled = False
    in_backward = False  # the engine checks a node's gradients itself, not the ops inside its backward


_state = _AnomalyState()


def is_anomaly_enabled() -> bool:
    return _state.enabled


class detect_anomaly:
    """Within this block every op checks its outputs (forward) and its input gradients
    (backward) for NaN/Inf and raises ``RuntimeError`` naming the op, together with
    where in your code the op was called."""

    def __init__(self, check_nan: bool = True):
        self.check_nan = check_nan

    def __enter__(self):
        self._previous = _state.enabled
        _state.enabled = self.check_nan
        return self

    def __exit__(self, *exc):
        _state.enabled = self._previous
        return False


def creation_site() -> str:
    """The user's line that called the op (the innermost frame outside tinynn)."""
    for frame in reversed(traceback.extract_stack()[:-1]):
        if "/tinynn/" not in frame.filename.replace("\\", "/"):
            return f'{frame.filename}:{frame.lineno} in {frame.name}: "{frame.line}"'
    return "<unknown>"


def check_finite(xp, array, op_name: str, what: str, site: str | None) -> None:
    if array is None or array.dtype.kind not in "fc":
        return
    if not bool(xp.isfinite(array).all()):
        kind = "nan" if bool(xp.isnan(array).any()) else "inf"
        where = f"\nThe op was created at {site}" if site else ""
        raise RuntimeError(f"detect_anomaly: function '{op_name}' returned {kind} values in {what}.{where}")
