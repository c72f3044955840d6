"""Training-step benchmarks: tinynn against PyTorch, side by side in the same run.

    python -m benchmarks.run [--quick] [--json PATH] [--only mlp,lenet5] [--no-micro] [--no-memory]

For each workload (see ``benchmarks/workloads.py``) both frameworks train the same model
from the same weights on the same batch. Steps alternate between the two (so a
disturbance from another process hits both), with 2 threads each (BLAS, OpenMP, Numba,
``torch.set_num_threads(2)``), and the table shows the median ms/step after warm-up,
the ratio tinynn / PyTorch, the achieved GFLOP/s (forward + backward FLOPs counted by
PyTorch's FlopCounterMode, analytically for the LSTM), and the peak memory of a training
step, measured in a fresh process per framework and workload (VmHWM growth). Then
per-kernel micro-benchmarks (convolution, pooling, attention) at the workloads' shapes.

``--quick`` runs a few steps of everything (CI: under a minute) and skips the memory
probes. Nothing here asserts on time: these are figures to read, not tests.

On a machine busy with other work, NumPy's OpenBLAS with 2 threads collapses (a GEMM
waits for a preempted worker: 5-10x slower steps were measured at load average 9 on
2 cores, while PyTorch's passive OpenMP pool degrades gracefully); ``--blas-threads 1``
then gives tinynn's realistic figures. The header prints the load average.
"""
from __future__ import annotations

import os

import sys

THREADS = "2"
# --blas-threads must act before NumPy loads OpenBLAS, so it is read from argv here.
_BLAS = sys.argv[sys.argv.index("--blas-threads") + 1] if "--blas-threads" in sys.argv[:-1] else THREADS
os.environ.setdefault("OPENBLAS_NUM_THREADS", _BLAS)
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, THREADS)  # before NumPy, Numba or torch start their thread pools
# Idle OpenMP workers sleep instead of spinning: on 2 shared cores, spinning workers of one
# library steal the time slices of the other's (KERNELS.md). Applies to both frameworks.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from .workloads import DESCRIPTIONS, WORKLOADS, build_pair, training_flops  # noqa: E402

TARGETS = {"mlp": 1.1, "lenet5": 1.0, "resnet8": 1.5, "transformer": 1.3, "lstm": 1.3}


def _lstm_flops() -> float:
    """FlopCounterMode does not see aten::lstm: 2*B*T*(I+H)*4H multiply-adds forward, x3 for training."""
    B, T, I, H = 32, 50, 32, 128
    return 3 * 2.0 * B * T * (I + H) * 4 * H + 3 * 2.0 * B * H * 10


def flops_per_step(name: str) -> float:
    return _lstm_flops() if name == "lstm" else training_flops(name)


def time_workload(name: str, warmup: int, steps: int, block: int = 1) -> dict:
    """Median step time of each side. The sides take turns every ``block`` steps: 1 alternates
    step by step (load changes hit both alike); a larger block measures steady training, where
    each framework's thread pool and caches stay warm between its own steps."""
    ours, theirs = build_pair(name)
    loss_ours, loss_theirs = ours.step(), theirs.step()  # same weights, same batch: same first loss
    for _ in range(warmup):
        ours.step()
        theirs.step()
    times = {"tinynn": [], "torch": []}
    for i in range(0, steps, block):
        pair = (ours, theirs) if (i // block) % 2 == 0 else (theirs, ours)
        for work in pair:
            for _ in range(min(block, steps - i)):
                start = time.perf_counter()
                work.step()
                times[work.framework].append(time.perf_counter() - start)
    ms = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    flops = flops_per_step(name)
    return {"workload": name, "description": DESCRIPTIONS[name], "tinynn_ms": ms["tinynn"], "torch_ms": ms["torch"],
            "ratio": ms["tinynn"] / ms["torch"], "target_ratio": TARGETS[name], "flops_per_step": flops,
            "tinynn_gflops": flops / ms["tinynn"] / 1e6, "torch_gflops": flops / ms["torch"] / 1e6,
            "first_loss": {"tinynn": loss_ours, "torch": loss_theirs}, "steps": steps}


# --- peak memory, in a fresh process per (workload, framework) ---------------------------

def _vm_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _probe_memory(name: str, framework: str) -> None:
    """(Runs in the child.) Build the model, take one warm-up step, then report how far the
    resident set's high-water mark rises above that during 3 more training steps
    (activations, gradients, temporaries and allocator slack). The warm-up keeps one-off
    costs out of the figure: Numba loading its compiled kernels (LLVM), PyTorch's lazy
    initialisation, and the optimizer state, which both sides then hold alike."""
    from .workloads import build_tinynn, build_torch
    work = build_torch(name) if framework == "torch" else build_tinynn(name)
    if framework == "torch":
        import torch
        torch.set_num_threads(int(THREADS))
    work.step()
    before = _vm_kib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    for _ in range(3):
        work.step()
    print(json.dumps({"peak_mib": (_vm_kib("VmHWM") - before) / 1024}))


def peak_memory_mib(name: str, framework: str) -> float | None:
    cmd = [sys.executable, "-m", "benchmarks.run", "--probe-memory", name, framework]
    # malloc left untuned in the probe: with tinynn's tuning (backend/memory.py) freed pages stay
    # resident, so the warm-up step would hide the peak instead of letting RSS show it.
    env = dict(os.environ, TINYNN_MALLOC_TUNING="0")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True, env=env).stdout
        return float(json.loads(out.strip().splitlines()[-1])["peak_mib"])
    except (subprocess.SubprocessError, ValueError, KeyError, IndexError, OSError):
        return None


# --- report --------------------------------------------------------------------------------

def _fmt(value, spec: str) -> str:
    """format(value, spec), or a dash as wide as the field for a missing value."""
    return "-".rjust(int(spec.split(".")[0])) if value is None else format(value, spec)


def print_table(rows: list[dict], log=print) -> None:
    log(f"{'workload':12s} {'tinynn ms':>10s} {'torch ms':>9s} {'ratio':>6s} {'target':>6s} "
        f"{'tn GF/s':>8s} {'pt GF/s':>8s} {'tn MiB':>7s} {'pt MiB':>7s}")
    for r in rows:
        mark = "" if r["ratio"] <= r["target_ratio"] else "  (missed)"
        log(f"{r['workload']:12s} {r['tinynn_ms']:10.2f} {r['torch_ms']:9.2f} {r['ratio']:6.2f} "
            f"{r['target_ratio']:6.2f} {r['tinynn_gflops']:8.1f} {r['torch_gflops']:8.1f} "
            f"{_fmt(r.get('tinynn_peak_mib'), '7.1f')} {_fmt(r.get('torch_peak_mib'), '7.1f')}{mark}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps of everything (CI); no memory probes")
    parser.add_argument("--json", metavar="PATH", help="write all results to this JSON file")
    parser.add_argument("--only", help="comma-separated workloads (default: all)")
    parser.add_argument("--steps", type=int, help="timed steps per framework (default 30, quick 3)")
    parser.add_argument("--block", type=int, default=1,
                        help="steps each side runs before the other takes over (default 1: alternate every step; "
                             "e.g. 10 measures steady training with warm thread pools)")
    parser.add_argument("--no-micro", action="store_true", help="skip the per-kernel micro-benchmarks")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    parser.add_argument("--blas-threads", default=THREADS,
                        help="OpenBLAS threads for tinynn's NumPy (default 2; 1 is far more robust on a loaded "
                             "machine: OpenBLAS workers that get preempted stall every GEMM)")
    parser.add_argument("--probe-memory", nargs=2, metavar=("WORKLOAD", "FRAMEWORK"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe_memory:
        _probe_memory(*args.probe_memory)
        return 0

    import torch
    torch.set_num_threads(int(THREADS))
    import tinynn  # noqa: F401  (import before timing anything)

    names = args.only.split(",") if args.only else list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    steps = args.steps or (3 if args.quick else 30)
    warmup = 1 if args.quick else 5
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"tinynn vs PyTorch {torch.__version__}, {THREADS} threads each (tinynn BLAS: "
          f"{os.environ['OPENBLAS_NUM_THREADS']}), median of {steps} steps alternating every {args.block} after {warmup} warm-up, "
          f"float32; load average {load:.1f} on {os.cpu_count()} cores")
    if load > (os.cpu_count() or 1):
        print("warning: the machine is busy with other work; figures (multi-threaded BLAS above all) are unreliable")
    rows = []
    for name in names:
        row = time_workload(name, warmup, steps, args.block)
        if not (args.quick or args.no_memory):
            row["tinynn_peak_mib"] = peak_memory_mib(name, "tinynn")
            row["torch_peak_mib"] = peak_memory_mib(name, "torch")
        rows.append(row)
        print(f"  {name}: {row['tinynn_ms']:.2f} ms vs {row['torch_ms']:.2f} ms ({row['ratio']:.2f}x)", flush=True)
    print()
    print_table(rows)
    micro = []
    if not args.no_micro:
        from .micro import run_micro
        print(f"\nkernels (ms, median of alternating calls):\n  {'kernel':48s} {'tinynn':>8s} {'torch':>8s} "
              f"{'ratio':>6s} {'GF/s':>7s}")
        micro = run_micro(repeats=3 if args.quick else 30, quick=args.quick)
    if args.json:
        result = {"threads": int(THREADS), "blas_threads": int(os.environ["OPENBLAS_NUM_THREADS"]),
                  "load_average": load, "torch": torch.__version__, "numpy": np.__version__,
                  "python": platform.python_version(), "machine": platform.machine(), "quick": args.quick,
                  "workloads": rows, "kernels": micro}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
