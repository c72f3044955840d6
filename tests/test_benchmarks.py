"""The benchmark command runs in its short mode, so it cannot rot (it never asserts on time)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = {"mlp", "lenet5", "resnet8", "transformer", "lstm"}


@pytest.mark.parity  # it times PyTorch side by side
def test_quick_benchmark_runs_every_workload_and_writes_json(tmp_path):
    out = tmp_path / "results.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--json", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {row["workload"]: row for row in report["workloads"]}
    assert set(rows) == WORKLOADS
    for row in rows.values():
        assert row["tinynn_ms"] > 0 and row["torch_ms"] > 0
        assert row["ratio"] == pytest.approx(row["tinynn_ms"] / row["torch_ms"])
        # Both sides start from the same weights on the same batch: the first losses agree.
        assert row["first_loss"]["tinynn"] == pytest.approx(row["first_loss"]["torch"], rel=1e-4)
    assert report["kernels"], "the per-kernel micro-benchmarks produced no rows"
    for workload in WORKLOADS:
        assert workload in result.stdout
