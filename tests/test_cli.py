"""``tinynn`` on the command line: happy paths and bad input (clear message, non-zero exit, no traceback)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tinynn.cli import main

TINY = ["--limit-train", "64", "--limit-test", "64", "--batch-size", "32", "--no-progress", "--no-plots"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


@pytest.fixture
def no_real_data(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from tinynn.datasets import FashionMNIST
    monkeypatch.setattr(FashionMNIST, "system_dirs", [])


def test_train_eval_info(tmp_path, capsys):
    run = tmp_path / "run"
    code, out, _ = run_cli(capsys, "train", "--epochs", "1", "--out", str(run), *TINY)
    assert code == 0 and "test accuracy:" in out and "epoch 1/1" in out
    code, out, _ = run_cli(capsys, "eval", "--checkpoint", str(run / "checkpoint.ckpt"))
    assert code == 0 and "accuracy:" in out and "Ankle boot" in out and "per-class" in out
    code, out, _ = run_cli(capsys, "info", "--model", "lenet5")
    assert code == 0 and "parameters: 61,706" in out and "FLOPs per image: 833,040" in out


@pytest.mark.parametrize("argv, message", [
    (["train", "--model", "nosuchnet"], "unknown model 'nosuchnet'"),
    (["train", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["info", "--model", "nosuchnet"], "unknown model"),
])
def test_unknown_names(capsys, tmp_path, argv, message):
    code, _, err = run_cli(capsys, *argv, *(["--out", str(tmp_path / "r")] + TINY if argv[0] == "train" else []))
    assert code == 1 and message in err and err.startswith("tinynn: error:")


def test_missing_data_without_download(capsys, tmp_path, no_real_data):
    code, _, err = run_cli(capsys, "train", "--dataset", "fashion-mnist", "--out", str(tmp_path / "r"), *TINY)
    assert code == 1 and "cannot find" in err and "--download" in err


@pytest.mark.parametrize("content", [b"", b"garbage, not a zip", b"PK\x03\x04truncated"])
def test_corrupt_checkpoint(capsys, tmp_path, content):
    (tmp_path / "checkpoint.ckpt").write_bytes(content)
    code, _, err = run_cli(capsys, "eval", "--checkpoint", str(tmp_path / "checkpoint.ckpt"))
    assert code == 1 and "cannot read checkpoint" in err
    code, _, err = run_cli(capsys, "train", "--resume", str(tmp_path))
    assert code == 1 and "cannot read checkpoint" in err


@pytest.mark.parametrize("value", ["0", "-5", "abc"])
def test_impossible_batch_size(capsys, value):
    with pytest.raises(SystemExit) as info:
        main(["train", "--batch-size", value])
    assert info.value.code == 2
    assert "--batch-size: expected a positive integer" in capsys.readouterr().err


def test_console_script_exit_code(tmp_path):
    """The installed entry point (python -m tinynn.cli): non-zero exit, one-line error."""
    done = subprocess.run([sys.executable, "-m", "tinynn.cli", "eval", "--checkpoint", str(tmp_path / "nope")],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("tinynn: error: no checkpoint") and "Traceback" not in done.stderr


def test_sigint_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    """Ctrl-C during training: the run stops after the current batch, saves, exits with 130."""
    import os
    import signal
    import time

    from tinynn.train import load_checkpoint
    run = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-m", "tinynn.cli", "train", "--model", "mlp", "--epochs", "1000",
                              "--out", str(run), *TINY], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 120
        while not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text():
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert "Traceback" not in err and "checkpoint saved" in out and "--resume" in out
    ckpt = load_checkpoint(run)
    assert ckpt["epoch"] >= 1 and 0 <= ckpt["step"] <= 2
    assert os.path.exists(run / "checkpoint.ckpt")
