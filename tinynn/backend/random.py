"""Random number generators, one per device, and ``manual_seed``.

Every sampling function in tinynn draws from a ``Generator``: either one passed
explicitly (``generator=``) or the default generator of the tensor's device.
``tn.manual_seed(s)`` reseeds the default generators of every backend.
"""
from __future__ import annotations

import numpy as np

from .device import as_device, cupy_module, device


class Generator:
    """A seedable random generator for one device (PyTorch's ``torch.Generator``)."""

    def __init__(self, device: "str | device" = "cpu"):
        self.device = as_device(device)
        self._seed = int(np.random.SeedSequence().entropy % (2**63))
        self._state = None
        self.manual_seed(self._seed)

    def manual_seed(self, seed: int) -> "Generator":
        self._seed = int(seed)
        if self.device.type == "cpu":
            self._state = np.random.Generator(np.random.PCG64(self._seed))
        else:
            cp = cupy_module()
            with cp.cuda.Device(self.device.index or 0):
                self._state = cp.random.RandomState(self._seed % (2**63))
        return self

    def seed(self) -> int:
        """Reseed from fresh entropy and return the seed."""
        self.manual_seed(int(np.random.SeedSequence().entropy % (2**63)))
        return self._seed

    def initial_seed(self) -> int:
        return self._seed

    # --- state, for checkpoints ------------------------------------------------
    def get_state(self) -> dict:
        if self.device.type == "cpu":
            return self._state.bit_generator.state
        return {"seed": self._seed}  # CuPy's RandomState has no portable state

    def set_state(self, state: dict) -> None:
        if self.device.type == "cpu":
            self._state.bit_generator.state = state
        else:
            self.manual_seed(state["seed"])

    # --- sampling (return raw arrays of the device's module) -------------------
    def uniform(self, shape, dtype, low=0.0, high=1.0):
        if self.device.type == "cpu":
            return self._state.uniform(low, high, size=shape).astype(dtype, copy=False)
        return self._state.uniform(low, high, size=shape).astype(dtype, copy=False)

    def normal(self, shape, dtype, mean=0.0, std=1.0):
        if self.device.type == "cpu":
            return self._state.normal(mean, std, size=shape).astype(dtype, copy=False)
        return self._state.normal(mean, std, size=shape).astype(dtype, copy=False)

    def integers(self, low, high, shape, dtype=np.int64):
        if self.device.type == "cpu":
            return self._state.integers(low, high, size=shape, dtype=dtype)
        return self._state.randint(low, high, size=shape).astype(dtype, copy=False)

    def permutation(self, n: int):
        if self.device.type == "cpu":
            return self._state.permutation(n)
        return self._state.permutation(n)

    def bernoulli(self, shape, p: float, dtype):
        """1 with probability ``p``, else 0."""
        return (self.uniform(shape, np.float32 if dtype == np.float16 else dtype) < p).astype(dtype)


_default_generators: dict = {}


def default_generator(dev: "str | device | None" = None) -> Generator:
    """The default generator of a device (created on first use)."""
    dev = as_device(dev)
    gen = _default_generators.get(dev)
    if gen is None:
        gen = Generator(dev)
        if _last_seed is not None:
            gen.manual_seed(_last_seed)
        _default_generators[dev] = gen
    return gen


_last_seed: int | None = None


def manual_seed(seed: int) -> Generator:
    """Seed every backend's default generator (and NumPy's global one); returns the cpu generator."""
    global _last_seed
    _last_seed = int(seed)
    np.random.seed(_last_seed % (2**32))
    for gen in _default_generators.values():
        gen.manual_seed(_last_seed)
    return default_generator("cpu")


def initial_seed() -> int:
    return default_generator("cpu").initial_seed()


def get_rng_state() -> dict:
    """States of all default generators, keyed by device string (for checkpoints)."""
    return {str(dev): gen.get_state() for dev, gen in _default_generators.items()}


def set_rng_state(states: dict) -> None:
    for dev, state in states.items():
        default_generator(dev).set_state(state)
