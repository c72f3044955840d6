"""CPU kernels (NumPy references and Numba). Importing this package registers them.

Numba caches compiled kernels next to their source (``cache=True``). When the
package directory is not writable (a system-wide install), compiled kernels go to
``~/.cache/tinynn/numba`` instead, so they are still compiled only once.
"""
import os


def _set_numba_cache_dir() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    if os.access(os.path.dirname(os.path.abspath(__file__)), os.W_OK):
        return
    cache_dir = os.path.join(os.path.expanduser("~"), ".cache", "tinynn", "numba")
    os.environ["NUMBA_CACHE_DIR"] = cache_dir
    import numba.core.config  # Numba reads the variable at import; it may be imported already

    numba.core.config.CACHE_DIR = cache_dir


_set_numba_cache_dir()

from . import conv  # noqa: E402,F401  (registers the kernels)
from . import pooling  # noqa: E402,F401
from . import attention  # noqa: E402,F401
