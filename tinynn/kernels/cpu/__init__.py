"""CPU kernels (NumPy references and Numba). Importing this package registers them."""
