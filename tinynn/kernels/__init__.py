"""Kernels: pure functions on raw arrays for the hot ops, one package per device.

Importing ``tinynn.kernels.cpu`` (or ``.cuda``) registers its implementations in
``tinynn.backend.kernels``; the registry imports them lazily on first use.
"""
