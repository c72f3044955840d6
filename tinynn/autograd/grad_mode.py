"""Grad modes: whether ops record the graph (``no_grad``, ``enable_grad``, ``set_grad_enabled``)."""
from __future__ import annotations

import functools
import threading


class _GradState(threading.local):
    enabled = True


_state = _GradState()


def is_grad_enabled() -> bool:
    return _state.enabled


class _GradModeContext:
    """Base for the grad-mode context managers; each also works as a decorator."""

    mode: bool

    def __enter__(self):
        self._previous = _state.enabled
        _state.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _state.enabled = self._previous
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper


class _DecoratorWithoutParentheses(_GradModeContext):
    """``@no_grad`` as well as ``@no_grad()`` and ``with no_grad():``."""

    def __new__(cls, orig_func=None):
        if orig_func is None:
            return super().__new__(cls)
        return cls()(orig_func)


class no_grad(_DecoratorWithoutParentheses):
    """Ops inside record nothing: results have ``requires_grad=False``."""

    mode = False


class enable_grad(_DecoratorWithoutParentheses):
    """Re-enable recording inside a ``no_grad`` block."""

    mode = True


class set_grad_enabled(_GradModeContext):
    """``set_grad_enabled(False)`` switches recording off now (as a call) or inside a ``with`` block."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._previous = _state.enabled
        _state.enabled = self.mode

    def __enter__(self):
        return self

    def __call__(self, fn):
        mode = self.mode
        _state.enabled = self._previous  # used as a decorator: do not leave the mode switched

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper
