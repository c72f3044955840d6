"""Per-kernel micro-benchmarks: tinynn's default cpu kernels against PyTorch, same inputs,
alternating calls, median time. Shapes are the ones the training workloads use."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

# name, N, C, H, W, O, kernel, stride, padding
CONV_SHAPES = [
    ("lenet5.conv1", 128, 1, 28, 28, 6, 5, 1, 2),
    ("lenet5.conv2", 128, 6, 14, 14, 16, 5, 1, 0),
    ("resnet8.conv16", 32, 16, 32, 32, 16, 3, 1, 1),
    ("resnet8.conv32s2", 32, 16, 32, 32, 32, 3, 2, 1),
    ("resnet8.conv32", 32, 32, 16, 16, 32, 3, 1, 1),
    ("resnet8.conv64", 32, 64, 8, 8, 64, 3, 1, 1),
    ("resnet8.shortcut1x1s2", 32, 16, 32, 32, 32, 1, 2, 0),
]


def median_ms(fns: dict[str, Callable], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median wall time (ms) of each function, calling them in alternation so that
    a disturbance from other processes hits both sides alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for r in range(repeats):
        keys = list(fns) if r % 2 == 0 else list(reversed(fns))
        for k in keys:
            start = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - start)
    return {k: float(np.median(v)) * 1e3 for k, v in times.items()}


def _conv_cases(rng):
    import torch
    from tinynn.backend import kernels
    fwd, bwd_in, bwd_w = (kernels.get(op) for op in
                          ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight"))
    for name, N, C, H, W, O, k, s, p in CONV_SHAPES:
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        w = (rng.standard_normal((O, C, k, k)) * 0.1).astype(np.float32)
        geometry = ((s, s), (p, p), (1, 1), 1)
        y = fwd(x, w, *geometry)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        xt, wt, gyt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy)

        def torch_backward(mask, xt=xt, wt=wt, gyt=gyt, s=s, p=p):
            return torch.ops.aten.convolution_backward(gyt, xt, wt, None, [s, s], [p, p], [1, 1], False, [0, 0], 1,
                                                       mask)

        flops = 2.0 * N * O * y.shape[2] * y.shape[3] * C * k * k
        yield (f"conv {name} forward", flops,
               lambda x=x, w=w, g=geometry: fwd(x, w, *g),
               lambda xt=xt, wt=wt, s=s, p=p: torch.nn.functional.conv2d(xt, wt, stride=s, padding=p))
        yield (f"conv {name} backward input", flops,
               lambda gy=gy, w=w, shape=x.shape, g=geometry: bwd_in(gy, w, shape, *g),
               lambda tb=torch_backward: tb([True, False, False]))
        yield (f"conv {name} backward weight", flops,
               lambda gy=gy, x=x, shape=w.shape, g=geometry: bwd_w(gy, x, shape, *g),
               lambda tb=torch_backward: tb([False, True, False]))


def _pool_cases(rng):
    import torch
    from tinynn.backend import kernels
    max_fwd, max_bwd = kernels.get("max_pool2d_forward"), kernels.get("max_pool2d_backward")
    for name, shape in (("lenet5.pool1", (128, 6, 28, 28)), ("lenet5.pool2", (128, 16, 10, 10))):
        x = rng.standard_normal(shape).astype(np.float32)
        y, idx = max_fwd(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        xt, gyt = torch.from_numpy(x), torch.from_numpy(gy)
        _, idx_t = torch.nn.functional.max_pool2d(xt, 2, return_indices=True)
        yield (f"max_pool2d {name} forward", None,
               lambda x=x: max_fwd(x, (2, 2), (2, 2), (0, 0), (1, 1), False),
               lambda xt=xt: torch.nn.functional.max_pool2d(xt, 2, return_indices=True))
        yield (f"max_pool2d {name} backward", None,
               lambda gy=gy, idx=idx, shape=x.shape: max_bwd(gy, idx, shape),
               lambda gyt=gyt, xt=xt, it=idx_t: torch.ops.aten.max_pool2d_with_indices_backward(
                   gyt, xt, [2, 2], [2, 2], [0, 0], [1, 1], False, it))
    avg_fwd, avg_bwd = kernels.get("adaptive_avg_pool2d_forward"), kernels.get("adaptive_avg_pool2d_backward")
    x = rng.standard_normal((32, 64, 8, 8)).astype(np.float32)
    gy = rng.standard_normal((32, 64, 1, 1)).astype(np.float32)
    xt, gyt = torch.from_numpy(x), torch.from_numpy(gy)
    yield ("adaptive_avg_pool2d resnet8.gap forward", None, lambda: avg_fwd(x, (1, 1)),
           lambda: torch.nn.functional.adaptive_avg_pool2d(xt, 1))
    yield ("adaptive_avg_pool2d resnet8.gap backward", None, lambda: avg_bwd(gy, x.shape),
           lambda: torch.ops.aten._adaptive_avg_pool2d_backward(gyt, xt))


def _attention_cases(rng, quick=False):
    import torch
    from tinynn.backend import kernels
    fwd, bwd = kernels.get("attention_forward"), kernels.get("attention_backward")
    shapes = [("transformer (16x4x64x32)", (16, 4, 64, 32))]
    if not quick:
        shapes.append(("long (4x4x512x32)", (4, 4, 512, 32)))
    for name, (B, H, L, E) in shapes:
        q, k, v, go = (rng.standard_normal((B, H, L, E)).astype(np.float32) for _ in range(4))
        scale = 1 / np.sqrt(E)
        out, lse = fwd(q, k, v, None, False, scale, None)
        qt, kt, vt = (torch.from_numpy(a).requires_grad_() for a in (q, k, v))
        got = torch.from_numpy(go)
        flops = 4.0 * B * H * L * L * E

        def torch_fwd_bwd(qt=qt, kt=kt, vt=vt, got=got):
            out = torch.nn.functional.scaled_dot_product_attention(qt, kt, vt)
            torch.autograd.grad(out, (qt, kt, vt), got)

        yield (f"attention {name} forward", flops, lambda q=q, k=k, v=v, s=scale: fwd(q, k, v, None, False, s, None),
               lambda qt=qt, kt=kt, vt=vt: torch.nn.functional.scaled_dot_product_attention(
                   qt.detach(), kt.detach(), vt.detach()))
        yield (f"attention {name} forward+backward", 3.5 * flops,
               lambda q=q, k=k, v=v, s=scale, go=go: bwd(go, q, k, v, *fwd(q, k, v, None, False, s, None), None,
                                                         False, s, None),
               torch_fwd_bwd)


def run_micro(repeats: int, quick: bool = False, log=print) -> list[dict]:
    rng = np.random.default_rng(0)
    results = []
    for cases in (_conv_cases(rng), _pool_cases(rng), _attention_cases(rng, quick)):
        for name, flops, ours, theirs in cases:
            t = median_ms({"tinynn": ours, "torch": theirs}, repeats)
            row = {"kernel": name, "tinynn_ms": t["tinynn"], "torch_ms": t["torch"],
                   "ratio": t["tinynn"] / t["torch"],
                   "tinynn_gflops": flops / t["tinynn"] / 1e6 if flops else None}
            results.append(row)
            log(f"  {name:48s} {t['tinynn']:8.3f} {t['torch']:8.3f} {row['ratio']:6.2f}"
                + (f" {row['tinynn_gflops']:7.1f}" if flops else ""))
    return results
