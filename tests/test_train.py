"""The training app: artifacts, exact resume after an interruption, crash-safe checkpoints."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tinynn.serialization import save
from tinynn.train import (TrainConfig, TrainError, build_model, evaluate_checkpoint, load_checkpoint, model_info,
                          train)

TINY = dict(model="lenet5", dataset="fashion-mnist-sample", batch_size=32, limit_train=96, limit_test=64,
            progress=False, plots=False)


def _quiet(*args):
    pass


def _weights(model) -> dict[str, np.ndarray]:
    return {k: np.array(v.data if hasattr(v, "data") else v) for k, v in model.state_dict().items()}


def test_small_run_writes_metrics_checkpoint_and_plots(tmp_path):
    result = train(TrainConfig(**{**TINY, "plots": True}, epochs=2, out=str(tmp_path / "run")), log=_quiet)
    run = tmp_path / "run"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert {"train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "images_per_s"} <= set(lines[0])
    assert lines[1]["lr"] < lines[0]["lr"]                    # cosine schedule stepped once per epoch
    assert 0 <= result.test_accuracy <= 1 and result.test_accuracy == lines[-1]["test_acc"]
    assert result.confusion.shape == (10, 10) and result.confusion.sum() == 64
    for name in ("checkpoint.ckpt", "config.json", "curves.png", "confusion_matrix.png"):
        assert (run / name).stat().st_size > 0, name
    ckpt = load_checkpoint(run)
    assert ckpt["epoch"] == 2 and ckpt["step"] == 0


def test_training_lowers_the_loss(tmp_path):
    result = train(TrainConfig(**{**TINY, "limit_train": 512}, epochs=3, lr=2e-3, out=str(tmp_path / "r")), log=_quiet)
    losses = [m["train_loss"] for m in result.metrics]
    assert losses[-1] < losses[0]
    assert result.metrics[-1]["train_acc"] > 0.3               # far above chance (0.1) on 10 classes


_REFERENCES: dict = {}


def _reference_run(tmp_path_factory, config: TrainConfig):
    """The uninterrupted run of ``config`` (trained once, shared by the cases that resume it)."""
    key = repr(config)
    if key not in _REFERENCES:
        _REFERENCES[key] = train(config, out=str(tmp_path_factory.mktemp("reference") / "run"), log=_quiet)
    return _REFERENCES[key]


@pytest.mark.parametrize("model, augment, stop_at", [
    ("lenet5", False, (0, 2)),      # Ctrl-C in the middle of epoch 1
    ("mlp", False, (0, 3)),         # after the last batch of epoch 1, before its evaluation
    ("mlp", False, (1, 1)),         # in the middle of epoch 2
    ("mlp", True, (0, 1)),          # with random augmentation: its draws must replay too
], ids=["lenet5-mid-epoch-1", "end-of-epoch-1", "mid-epoch-2", "augment-mid-epoch-1"])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, tmp_path_factory, model, augment, stop_at):
    config = TrainConfig(**{**TINY, "model": model, "batch_size": 16, "limit_train": 48, "limit_test": 32},
                         epochs=2, augment=augment)      # 3 batches per epoch
    reference = _reference_run(tmp_path_factory, config)

    def interrupt(epoch, steps_done):
        if (epoch, steps_done) == stop_at:
            raise KeyboardInterrupt                      # what Ctrl-C does, at a known point

    first = train(config, out=str(tmp_path / "resumed"), on_step=interrupt, log=_quiet)
    assert first.interrupted
    ckpt = load_checkpoint(tmp_path / "resumed")
    assert (ckpt["epoch"], ckpt["step"]) == stop_at
    second = train(resume=tmp_path / "resumed", log=_quiet)
    assert not second.interrupted
    expected, got = _weights(reference.model), _weights(second.model)
    assert expected.keys() == got.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    drop_timing = lambda ms: [{k: v for k, v in m.items() if k not in ("seconds", "images_per_s")} for m in ms]  # noqa: E731
    assert drop_timing(second.metrics) == drop_timing(reference.metrics)


def test_resume_differs_from_a_fresh_start(tmp_path):
    """Guards the test above: stopping and starting over (not resuming) gives other weights."""
    config = TrainConfig(**{**TINY, "model": "mlp", "batch_size": 16, "limit_train": 48, "limit_test": 32}, epochs=2)
    full = train(config, out=str(tmp_path / "full"), log=_quiet)
    one = train(dataclasses.replace(config, epochs=1), out=str(tmp_path / "one"), log=_quiet)
    assert any(not np.array_equal(a, b) for a, b in zip(_weights(full.model).values(), _weights(one.model).values()))


def test_existing_run_is_not_overwritten(tmp_path):
    train(TrainConfig(**{**TINY, "limit_train": 32}, epochs=1), out=str(tmp_path / "r"), log=_quiet)
    with pytest.raises(TrainError, match="--resume"):
        train(TrainConfig(**{**TINY, "limit_train": 32}, epochs=1), out=str(tmp_path / "r"), log=_quiet)


def test_corrupt_or_missing_checkpoint(tmp_path):
    (tmp_path / "checkpoint.ckpt").write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(TrainError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path)
    with pytest.raises(TrainError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing")
    save({"format": "something else"}, str(tmp_path / "other.ckpt"))
    with pytest.raises(TrainError, match="not a tinynn training checkpoint"):
        load_checkpoint(tmp_path / "other.ckpt")


def test_bad_config_values():
    for bad in (dict(batch_size=0), dict(epochs=0), dict(lr=-1.0), dict(optimizer="lbfgs"), dict(dataset="imagenet")):
        with pytest.raises(TrainError):
            train(TrainConfig(**{**TINY, **bad}), log=_quiet)
    with pytest.raises(TrainError, match="unknown model 'resnet9000'"):
        train(TrainConfig(**{**TINY, "model": "resnet9000"}), out=None, log=_quiet)


def test_evaluate_checkpoint_per_class(tmp_path):
    train(TrainConfig(**{**TINY, "limit_train": 32}, epochs=1), out=str(tmp_path / "r"), log=_quiet)
    result = evaluate_checkpoint(tmp_path / "r")
    assert result["samples"] == 2000                          # the whole test split, not the training limit
    assert len(result["per_class"]) == 10 and "Ankle boot" in result["per_class"]
    per_class = np.array(list(result["per_class"].values()))
    assert abs(per_class.mean() - result["accuracy"]) < 1e-9  # 200 test images per class


def test_model_info_lenet5():
    info = model_info("lenet5")
    assert info["params"] == 61_706                           # 156 + 2,416 + 48,120 + 10,164 + 850
    assert info["macs"] == 416_520                            # 117,600 + 240,000 + 48,000 + 10,080 + 840
    assert info["flops"] == 2 * info["macs"]
    assert info["layers"][-1]["output"] == (1, 10)


_SAVER = textwrap.dedent("""
    import sys, numpy as np
    from tinynn.train import TrainConfig, _Run
    from pathlib import Path
    run = _Run(TrainConfig(limit_train=32, limit_test=32, progress=False, plots=False), Path(sys.argv[1]))
    i = 0
    while True:
        i += 1
        run.epoch = i
        run.save()
        print(i, flush=True)
""")


def test_checkpoint_write_killed_midway_keeps_previous_checkpoint(tmp_path):
    """kill -9 a process that rewrites its checkpoint in a loop: the file on disk always loads."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for delay in (0.0, 0.013, 0.031, 0.057):
        child = subprocess.Popen([sys.executable, "-c", _SAVER, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
        try:
            assert child.stdout.readline().strip() == "1"       # one checkpoint is complete
            time.sleep(delay)
            os.kill(child.pid, signal.SIGKILL)                  # somewhere inside a later save
        finally:
            child.wait(timeout=60)
        ckpt = load_checkpoint(tmp_path)
        assert ckpt["epoch"] >= 1
        build_model("lenet5", 10, 1, 28).load_state_dict(ckpt["model"])   # complete, loadable weights


@pytest.mark.slow
def test_lenet5_reaches_88_percent_on_real_fashion_mnist(tmp_path):
    """LeNet-5 on the full Fashion-MNIST (Debian's dataset-fashion-mnist): >= 0.88 test accuracy."""
    from tinynn.datasets import FashionMNIST
    if not all((FashionMNIST.system_dirs[0] / f).exists() for f in ("train-images-idx3-ubyte.gz",
                                                                     "t10k-images-idx3-ubyte.gz")):
        pytest.skip("real Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    result = train(TrainConfig(model="lenet5", dataset="fashion-mnist", epochs=SLOW_EPOCHS, batch_size=128,
                               optimizer="adam", lr=3e-3, scheduler="cosine", progress=False, plots=False,
                               out=str(tmp_path / "run")), log=print)
    assert result.test_accuracy >= 0.88, result.metrics


SLOW_EPOCHS = 3
