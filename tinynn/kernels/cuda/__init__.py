"""CUDA kernels (Numba CUDA, CuPy). Importing this package registers them; nothing compiles at import."""
