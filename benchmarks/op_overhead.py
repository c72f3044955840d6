"""Per-op overhead of tinynn vs PyTorch, measured in the same run.

    python benchmarks/op_overhead.py [--repeat 7] [--threads 2]

Cases:
  * ``a + b`` on 10-element float32 tensors: forward only (no grad), forward with grad
    recording, and forward + backward (``(a + b).sum().backward()``), where the cost is
    almost all Python/dispatch overhead rather than arithmetic;
  * a 256x256 float32 matmul, forward + backward, where BLAS does the work.

Each figure is the best of ``--repeat`` runs of an auto-sized loop (the minimum is the
least disturbed by other processes), in microseconds per iteration.
"""
from __future__ import annotations

import argparse
import os
import timeit

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")  # NumPy's BLAS: as many threads as torch gets (set before import)

import numpy as np  # noqa: E402


def best_time_us(fn, repeat: int) -> float:
    """Microseconds per call: the best of ``repeat`` loops of about 0.2 s each."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def make_cases(lib) -> dict:
    """The benchmark cases for ``lib`` (``tinynn`` or ``torch``: both have ``tensor`` and ``no_grad``),
    built from the same random data so the two libraries run the very same work."""
    rng = np.random.default_rng(0)
    a, b = (lib.tensor(rng.standard_normal(10).astype(np.float32)) for _ in range(2))
    ga, gb = (lib.tensor(rng.standard_normal(10).astype(np.float32), requires_grad=True) for _ in range(2))
    x, w = (lib.tensor(rng.standard_normal((256, 256)).astype(np.float32), requires_grad=True) for _ in range(2))

    def add_no_grad():
        with lib.no_grad():
            return a + b

    def add_backward():
        (ga + gb).sum().backward()

    def matmul_backward():
        (x @ w).sum().backward()

    return {"a + b (10 floats), forward, no grad": add_no_grad,
            "a + b (10 floats), forward, grad recorded": lambda: ga + gb,
            "(a + b).sum() forward + backward": add_backward,
            "256x256 matmul forward + backward": matmul_backward}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (NumPy's BLAS reads OMP_NUM_THREADS, default 2)")
    args = parser.parse_args()

    import tinynn
    ours = make_cases(tinynn)
    try:
        import torch
        torch.set_num_threads(args.threads)
        theirs = make_cases(torch)
    except ImportError:
        print("PyTorch is not installed (pip install torch): tinynn figures only")
        theirs = {}

    width = max(len(name) for name in ours)
    print(f"{'case':<{width}}  {'tinynn us':>10}  {'torch us':>10}  {'ratio':>7}")
    for name, fn in ours.items():
        ours_us = best_time_us(fn, args.repeat)
        if name in theirs:
            theirs_us = best_time_us(theirs[name], args.repeat)
            print(f"{name:<{width}}  {ours_us:10.1f}  {theirs_us:10.1f}  {ours_us / theirs_us:6.1f}x")
        else:
            print(f"{name:<{width}}  {ours_us:10.1f}")


if __name__ == "__main__":
    main()
