"""The training app: train an image classifier, evaluate a checkpoint, describe a model.

From Python::

    from tinynn.train import TrainConfig, train
    result = train(TrainConfig(model="lenet5", dataset="fashion-mnist", epochs=5))
    print(result.metrics[-1]["test_acc"], result.run_dir)

From the shell (``tinynn/cli.py``)::

    tinynn train                                  # LeNet-5 on the bundled sample, 3 epochs
    tinynn train --model lenet5 --dataset fashion-mnist --epochs 5 --out runs/lenet
    tinynn train --resume runs/lenet              # continue an interrupted run
    tinynn eval --checkpoint runs/lenet
    tinynn info --model resnet18_cifar --dataset cifar10

A run directory holds ``config.json``, ``metrics.jsonl`` (one JSON line per
epoch), ``checkpoint.ckpt`` (rewritten atomically after every epoch and on
Ctrl-C), ``curves.png`` and ``confusion_matrix.png``.

Resuming is exact: the checkpoint holds the model, optimizer and scheduler
states, every RNG state and the data loader's generator as it was when the
interrupted epoch began, plus how many batches of that epoch were done. On
resume the epoch's order is drawn again from that generator state, the done
batches are skipped, and training goes on with the very same numbers, so an
interrupted and resumed run ends with the same weights as an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

CHECKPOINT_NAME = "checkpoint.ckpt"
CHECKPOINT_FORMAT = "tinynn.train/1"


class TrainError(Exception):
    """A problem with the user's request (unknown model, bad option, unreadable checkpoint...)."""


# ---------------------------------------------------------------------------- config
@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in the run directory and the checkpoint)."""

    model: str = "lenet5"
    dataset: str = "fashion-mnist-sample"
    epochs: int = 3
    batch_size: int = 128
    optimizer: str = "adam"          # sgd | adam | adamw | rmsprop
    lr: float = 3e-3                 # Adam at 3e-3 + cosine: LeNet-5 reaches ~0.83 on the sample in 3 epochs
    momentum: float = 0.9            # for sgd and rmsprop
    weight_decay: float = 0.0
    scheduler: str = "cosine"        # none | cosine | step | onecycle
    device: str = "cpu"
    seed: int = 0
    out: str | None = None           # run directory; default runs/<model>-<dataset>-<time>
    data_root: str | None = None
    download: bool = False
    augment: bool = False            # random crop (+ flip for CIFAR-10), applied per batch
    limit_train: int | None = None   # use only the first N training images (quick runs, tests)
    limit_test: int | None = None
    num_workers: int = 0             # > 0: prepare batches in a background thread
    progress: bool = True            # tqdm progress bars
    plots: bool = True               # write curves.png and confusion_matrix.png

    def validate(self) -> None:
        checks = [
            (isinstance(self.epochs, int) and self.epochs >= 1, f"epochs must be a positive integer, got {self.epochs!r}"),
            (isinstance(self.batch_size, int) and not isinstance(self.batch_size, bool) and self.batch_size >= 1,
             f"batch size must be a positive integer, got {self.batch_size!r}"),
            (self.lr > 0 and math.isfinite(self.lr), f"learning rate must be a positive number, got {self.lr!r}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay!r}"),
            (self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}"),
            (self.scheduler in SCHEDULERS, f"unknown scheduler {self.scheduler!r}; choose from {', '.join(SCHEDULERS)}"),
            (self.limit_train is None or self.limit_train >= 1, f"limit_train must be >= 1, got {self.limit_train!r}"),
            (self.limit_test is None or self.limit_test >= 1, f"limit_test must be >= 1, got {self.limit_test!r}"),
            (self.num_workers >= 0, f"num_workers must be >= 0, got {self.num_workers!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainError(message)
        dataset_spec(self.dataset)  # raises for unknown names
        if self.device not in ("cpu",) and not self.device.startswith("cuda"):
            raise TrainError(f"unknown device {self.device!r}; use cpu or cuda")


# ---------------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class DatasetSpec:
    name: str
    in_channels: int
    image_size: int
    mean: tuple
    std: tuple
    crop_padding: int
    flip: bool

    def load(self, train: bool, root: str | None, download: bool):
        import tinynn.datasets as datasets
        if self.name == "fashion-mnist-sample":
            return datasets.FashionMNIST(train=train, embedded=True)
        cls = {"fashion-mnist": datasets.FashionMNIST, "mnist": datasets.MNIST, "cifar10": datasets.CIFAR10}[self.name]
        return cls(root=root, train=train, download=download)


_DATASETS = {
    "fashion-mnist-sample": DatasetSpec("fashion-mnist-sample", 1, 28, (0.2860,), (0.3530,), 2, False),
    "fashion-mnist": DatasetSpec("fashion-mnist", 1, 28, (0.2860,), (0.3530,), 2, False),
    "mnist": DatasetSpec("mnist", 1, 28, (0.1307,), (0.3081,), 2, False),
    "cifar10": DatasetSpec("cifar10", 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 4, True),
}
_DATASET_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10",
                    "sample": "fashion-mnist-sample", "embedded": "fashion-mnist-sample"}
DATASET_NAMES = list(_DATASETS)


def dataset_spec(name: str) -> DatasetSpec:
    key = _DATASET_ALIASES.get(name.lower(), name.lower())
    if key not in _DATASETS:
        raise TrainError(f"unknown dataset {name!r}; choose from {', '.join(DATASET_NAMES)}")
    return _DATASETS[key]


def _limit(dataset, n: int | None):
    from tinynn.utils.data import Subset
    if n is None or n >= len(dataset):
        return dataset
    return Subset(dataset, np.arange(n))


def make_datasets(config: TrainConfig):
    """(train, test) datasets of ``config``: ToTensor + Normalize, as batches (see transforms)."""
    import tinynn.transforms as T
    spec = dataset_spec(config.dataset)
    transform = T.Compose([T.ToTensor(), T.Normalize(spec.mean, spec.std)])
    train_set = spec.load(True, config.data_root, config.download)
    test_set = spec.load(False, config.data_root, config.download)
    train_set.transform = test_set.transform = transform
    return _limit(train_set, config.limit_train), _limit(test_set, config.limit_test), train_set.classes


def make_augment(config: TrainConfig, generator):
    """The per-batch augmentation (random crop, and flips for CIFAR-10), or None."""
    if not config.augment:
        return None
    import tinynn.transforms as T
    spec = dataset_spec(config.dataset)
    steps = [T.RandomCrop(spec.image_size, padding=spec.crop_padding, generator=generator)]
    if spec.flip:
        steps.append(T.RandomHorizontalFlip(generator=generator))
    return T.Compose(steps)


# ---------------------------------------------------------------------------- models
def available_models() -> list[str]:
    """The classifier constructors of ``tinynn.models``: public functions taking ``num_classes``."""
    import tinynn.models as models
    names = []
    for name, obj in vars(models).items():
        if name.startswith("_") or not inspect.isfunction(obj):
            continue
        try:
            if "num_classes" in inspect.signature(obj).parameters:
                names.append(name)
        except (TypeError, ValueError):
            continue
    return sorted(names)


def build_model(name: str, num_classes: int, in_channels: int, image_size: int):
    """Call ``tinynn.models.<name>``, passing the arguments its signature accepts."""
    try:
        import tinynn.models as models
    except ImportError as e:
        raise TrainError(f"tinynn.models is not available ({e})") from e
    key = name.lower().replace("-", "_")
    names = available_models()
    if key not in names:
        raise TrainError(f"unknown model {name!r}; choose from {', '.join(names)}")
    constructor = getattr(models, key)
    params = inspect.signature(constructor).parameters
    offered = {"num_classes": num_classes, "in_channels": in_channels, "image_size": image_size,
               "input_size": image_size, "in_features": in_channels * image_size * image_size}
    kwargs = {k: v for k, v in offered.items() if k in params}
    return constructor(**kwargs)


def usable_device(name: str):
    """``tn.device(name)``, after checking that a tensor can be put there."""
    import tinynn as tn
    try:
        device = tn.device(name)
        tn.zeros(1).to(device)
    except Exception as e:
        raise TrainError(f"device {name!r} is not usable: {e}") from e
    return device


def check_model_fits(model, name: str, spec: DatasetSpec, num_classes: int) -> None:
    """Run one blank image through the model (eval mode, no grad) to catch size mismatches early."""
    import tinynn as tn
    was_training = model.training
    model.eval()
    shape = (1, spec.in_channels, spec.image_size, spec.image_size)
    try:
        with tn.no_grad():
            out = model(tn.zeros(*shape, device=next(iter(model.parameters())).device))
    except Exception as e:
        raise TrainError(f"model {name!r} cannot run on {spec.name} images "
                         f"({'×'.join(map(str, shape[1:]))}): {type(e).__name__}: {e}") from e
    finally:
        model.train(was_training)
    if tuple(out.shape) != (1, num_classes):
        raise TrainError(f"model {name!r} gives outputs of shape {tuple(out.shape)} for one image; "
                         f"expected (1, {num_classes}) for {spec.name}")


# ---------------------------------------------------------------------------- optimizers
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULERS = ("none", "cosine", "step", "onecycle")


def make_optimizer(config: TrainConfig, parameters):
    import tinynn.optim as optim
    if config.optimizer == "sgd":
        return optim.SGD(parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay or 1e-2)
    return optim.RMSprop(parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def make_scheduler(config: TrainConfig, optimizer, steps_per_epoch: int):
    """(scheduler, steps it once per "epoch" or per "batch"), or (None, None)."""
    from tinynn.optim import lr_scheduler
    if config.scheduler == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs), "epoch"
    if config.scheduler == "step":
        return lr_scheduler.StepLR(optimizer, step_size=max(1, config.epochs // 3), gamma=0.1), "epoch"
    if config.scheduler == "onecycle":
        return lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr,
                                       total_steps=config.epochs * steps_per_epoch), "batch"
    return None, None


# ---------------------------------------------------------------------------- results
@dataclass
class TrainResult:
    run_dir: Path
    metrics: list[dict] = field(default_factory=list)
    model: Any = None
    interrupted: bool = False
    confusion: np.ndarray | None = None
    classes: list[str] = field(default_factory=list)

    @property
    def test_accuracy(self) -> float | None:
        return self.metrics[-1]["test_acc"] if self.metrics else None


class _Run:
    """The objects of one training run, and its progress (what a checkpoint holds)."""

    def __init__(self, config: TrainConfig, run_dir: Path):
        import tinynn as tn
        from tinynn.utils.data import DataLoader
        self.config = config
        self.run_dir = run_dir
        self.spec = dataset_spec(config.dataset)
        train_set, test_set, self.classes = make_datasets(config)
        tn.manual_seed(config.seed)
        self.model = build_model(config.model, len(self.classes), self.spec.in_channels, self.spec.image_size)
        self.device = usable_device(config.device)
        self.model.to(self.device)
        check_model_fits(self.model, config.model, self.spec, len(self.classes))
        self.loader_generator = tn.Generator().manual_seed(config.seed)
        batch_device = None if self.device.type == "cpu" else self.device  # batches are built on the cpu
        self.train_loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True,
                                       generator=self.loader_generator, num_workers=config.num_workers,
                                       device=batch_device)
        self.test_loader = DataLoader(test_set, batch_size=max(config.batch_size, 256), device=batch_device)
        self.optimizer = make_optimizer(config, self.model.parameters())
        self.scheduler, self.scheduler_unit = make_scheduler(config, self.optimizer, len(self.train_loader))
        self.augment_generator = tn.Generator().manual_seed(config.seed)
        self.augment = make_augment(config, self.augment_generator)
        import tinynn.nn as nn
        self.criterion = nn.CrossEntropyLoss()
        # progress: resume at batch `step` of epoch `epoch`; loader generator state at that epoch's start
        self.epoch, self.step = 0, 0
        self.epoch_start_generator_state = self.loader_generator.get_state()
        self.partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        self.metrics: list[dict] = []

    # --- checkpoints --------------------------------------------------------------
    def checkpoint(self) -> dict:
        import tinynn as tn
        return {
            "format": CHECKPOINT_FORMAT,
            "config": json.dumps(dataclasses.asdict(self.config)),
            "classes": list(self.classes),
            "epoch": self.epoch,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            # generator states hold 128-bit integers: JSON strings keep them exact
            "rng": json.dumps(tn.get_rng_state()),
            "loader_generator": json.dumps(self.epoch_start_generator_state),
            "partial": dict(self.partial),
            "metrics": json.dumps(self.metrics),
        }

    def save(self) -> Path:
        from tinynn.serialization import save  # tn.save: atomic (temporary file, fsync, rename)
        path = self.run_dir / CHECKPOINT_NAME
        save(self.checkpoint(), str(path))
        return path

    def restore(self, ckpt: dict) -> None:
        import tinynn as tn
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        tn.set_rng_state(json.loads(ckpt["rng"]))
        self.epoch_start_generator_state = json.loads(ckpt["loader_generator"])
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        self.partial = {k: ckpt["partial"][k] for k in self.partial}
        self.metrics = json.loads(ckpt["metrics"])


def _seed_for(seed: int, epoch: int, step: int) -> int:
    """A distinct, reproducible seed per batch (for augmentation draws)."""
    return (seed * 1_000_003 + epoch * 100_003 + step) % (2**63)


def _progress(total: int, initial: int, desc: str, enabled: bool):
    if enabled:
        try:
            from tqdm.auto import tqdm
            return tqdm(total=total, initial=initial, desc=desc, unit="batch", dynamic_ncols=True, leave=True,
                        disable=None, mininterval=0.5)  # disable=None: no bar when stderr is not a terminal
        except ImportError:
            pass
    return None


def _train_one_epoch(run: _Run, on_step: Callable | None) -> dict:
    """Train from batch ``run.step`` to the end of epoch ``run.epoch``; returns the epoch's train stats."""
    config, model = run.config, run.model
    model.train()
    run.loader_generator.set_state(run.epoch_start_generator_state)
    bar = _progress(len(run.train_loader), run.step, f"epoch {run.epoch + 1}/{config.epochs}", config.progress)
    started = time.perf_counter() - run.partial["seconds"]
    try:
        for step, (images, labels) in enumerate(run.train_loader):
            if step < run.step:
                continue  # done before the interruption: same batch, already learned from
            if run.augment is not None:
                run.augment_generator.manual_seed(_seed_for(config.seed, run.epoch, step))
                images = run.augment(images)
            run.optimizer.zero_grad()
            logits = model(images)
            loss = run.criterion(logits, labels)
            loss.backward()
            run.optimizer.step()
            if run.scheduler_unit == "batch":
                run.scheduler.step()
            n = len(labels)
            run.partial["loss_sum"] += loss.item() * n
            run.partial["correct"] += int((logits.data.argmax(1) == labels.data).sum())
            run.partial["seen"] += n
            run.step = step + 1
            run.partial["seconds"] = time.perf_counter() - started
            if bar is not None and (step % 5 == 0 or run.step == len(run.train_loader)):
                seen = run.partial["seen"]
                bar.set_postfix(loss=f"{run.partial['loss_sum'] / seen:.4f}",
                                acc=f"{run.partial['correct'] / seen:.4f}",
                                img_s=f"{seen / max(run.partial['seconds'], 1e-9):.0f}", refresh=False)
            if bar is not None:
                bar.update(1)
            # a safe point: the step is complete and counted, so stopping here resumes exactly
            if on_step is not None:
                try:
                    on_step(run.epoch, run.step)
                except KeyboardInterrupt:
                    raise _StopRequested from None
            if _stop.requested:
                raise _StopRequested
    finally:
        if bar is not None:
            bar.close()
    seen = max(run.partial["seen"], 1)
    return {"train_loss": run.partial["loss_sum"] / seen, "train_acc": run.partial["correct"] / seen,
            "seconds": run.partial["seconds"], "images_per_s": run.partial["seen"] / max(run.partial["seconds"], 1e-9)}


def evaluate_model(model, loader, num_classes: int) -> dict:
    """Loss, accuracy and the confusion matrix (rows: true class, columns: predicted)."""
    import tinynn as tn
    import tinynn.nn.functional as F
    model.eval()
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    loss_sum, seen = 0.0, 0
    with tn.no_grad():
        for images, labels in loader:
            logits = model(images)
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
            predicted = _to_numpy(logits.data.argmax(1))
            np.add.at(confusion, (_to_numpy(labels.data), predicted), 1)
            seen += len(labels)
    return {"test_loss": loss_sum / max(seen, 1), "test_acc": float(np.trace(confusion) / max(seen, 1)),
            "confusion": confusion}


def _to_numpy(array) -> np.ndarray:
    return array.get() if hasattr(array, "get") else np.asarray(array)


# ---------------------------------------------------------------------------- train
def default_run_dir(config: TrainConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.model}-{dataset_spec(config.dataset).name}-{stamp}"


def load_checkpoint(path: "str | os.PathLike") -> dict:
    """Read a training checkpoint (a run directory or the file), with clear errors."""
    from tinynn.serialization import load
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise TrainError(f"no checkpoint at {path}")
    try:
        ckpt = load(str(path))
    except Exception as e:  # tn.load raises CheckpointError for damaged files; anything else is damage too
        raise TrainError(f"cannot read checkpoint {path}: {e}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise TrainError(f"{path} is not a tinynn training checkpoint")
    return ckpt


def _config_from_checkpoint(ckpt: dict) -> TrainConfig:
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in json.loads(ckpt["config"]).items() if k in known})


def train(config: TrainConfig | None = None, *, resume: "str | os.PathLike | None" = None,
          on_step: Callable[[int, int], None] | None = None, log: Callable[[str], None] = print,
          **overrides) -> TrainResult:
    """Train a model; returns a ``TrainResult`` (metrics per epoch, the model, the run directory).

    ``resume=DIR`` continues the run in DIR from its checkpoint (its saved config is
    used; ``overrides`` may change only ``progress``, ``plots``, ``num_workers``).
    ``on_step(epoch, steps_done)`` is called after every optimizer step.
    Ctrl-C (KeyboardInterrupt) saves a checkpoint and returns with ``interrupted=True``.
    """
    if resume is not None:
        ckpt = load_checkpoint(resume)
        config = _config_from_checkpoint(ckpt)
        for key in ("progress", "plots", "num_workers"):
            if key in overrides:
                setattr(config, key, overrides.pop(key))
        if overrides:
            raise TrainError(f"cannot change {', '.join(sorted(overrides))} when resuming a run")
        run_dir = Path(resume) if Path(resume).is_dir() else Path(resume).parent
    else:
        config = dataclasses.replace(config or TrainConfig(), **overrides)
        config.validate()
        run_dir = Path(config.out) if config.out else default_run_dir(config)
        if (run_dir / CHECKPOINT_NAME).exists():
            raise TrainError(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                             "or choose another --out")
    config.validate()
    run_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(config, run_dir)
    if resume is not None:
        run.restore(ckpt)
        log(f"resuming {run_dir} at epoch {run.epoch + 1}, batch {run.step}")
    else:
        (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    _write_metrics(run)
    result = TrainResult(run_dir=run_dir, model=run.model, classes=list(run.classes))
    try:
        with _stop:
            _train_epochs(run, on_step, log, result)
    except _StopRequested:
        with _sigint_deferred():
            path = run.save()
        result.interrupted = True
        log(f"interrupted at epoch {run.epoch + 1}, batch {run.step}: checkpoint saved to {path}\n"
            f"continue with: tinynn train --resume {run_dir}")
    except KeyboardInterrupt:
        # a hard interrupt may land in the middle of an update: keep the last clean checkpoint
        result.interrupted = True
        log(f"interrupted; the last checkpoint ({run_dir / CHECKPOINT_NAME}, end of epoch {run.epoch}) is kept\n"
            f"continue with: tinynn train --resume {run_dir}")
    result.metrics = list(run.metrics)
    if config.plots and run.metrics:
        _write_plots(run_dir, run.metrics, result.confusion, run.classes, log)
    return result


def _train_epochs(run: _Run, on_step, log, result: TrainResult) -> None:
    config = run.config
    while run.epoch < config.epochs:
        lr = run.optimizer.param_groups[0]["lr"]
        stats = _train_one_epoch(run, on_step)
        last_eval = evaluate_model(run.model, run.test_loader, len(run.classes))
        result.confusion = last_eval["confusion"]
        record = {"epoch": run.epoch + 1, **stats, "test_loss": last_eval["test_loss"],
                  "test_acc": last_eval["test_acc"], "lr": lr}
        run.metrics.append(record)
        if run.scheduler_unit == "epoch":
            with warnings.catch_warnings():  # a run resumed after its epoch's last batch steps no optimizer first
                warnings.filterwarnings("ignore", message=".*before `optimizer.step\\(\\)`")
                run.scheduler.step()
        run.epoch, run.step = run.epoch + 1, 0
        run.partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        run.epoch_start_generator_state = run.loader_generator.get_state()
        run.save()
        _write_metrics(run)
        log(f"epoch {record['epoch']}/{config.epochs}: train loss {record['train_loss']:.4f} "
            f"acc {record['train_acc']:.4f} | test loss {record['test_loss']:.4f} "
            f"acc {record['test_acc']:.4f} | {record['seconds']:.1f}s, {record['images_per_s']:.0f} img/s")
        if _stop.requested:
            raise _StopRequested


class _StopRequested(Exception):
    """Ctrl-C was pressed; raised between two training steps, where stopping is exact."""


class _StopFlag:
    """The first Ctrl-C sets ``requested`` (training stops after the current batch);
    a second one interrupts at once, as usual."""

    def __init__(self):
        self.requested = False
        self._old = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this batch (Ctrl-C again to stop at once)...", file=sys.stderr)

    def __enter__(self):
        self.requested = False
        try:
            self._old = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # signals can only be handled in the main thread
            self._old = None
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        self.requested = False


_stop = _StopFlag()


class _sigint_deferred:
    """Hold off a second Ctrl-C while the interrupt checkpoint is written (it is atomic anyway)."""

    def __enter__(self):
        self._old = None
        try:
            self._old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not in the main thread
            pass

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _write_metrics(run: _Run) -> None:
    """metrics.jsonl: one JSON object per finished epoch (rewritten whole, so resumes stay clean)."""
    path = run.run_dir / "metrics.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(m) + "\n" for m in run.metrics))
    os.replace(tmp, path)


def _write_plots(run_dir: Path, metrics: list[dict], confusion, classes, log) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("plots skipped: matplotlib is not installed (pip install 'tinynn[app]')")
        return
    epochs = [m["epoch"] for m in metrics]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [m["train_loss"] for m in metrics], "o-", label="train")
    ax_loss.plot(epochs, [m["test_loss"] for m in metrics], "o-", label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    ax_acc.plot(epochs, [m["train_acc"] for m in metrics], "o-", label="train")
    ax_acc.plot(epochs, [m["test_acc"] for m in metrics], "o-", label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    fig.savefig(run_dir / "curves.png", dpi=100)
    plt.close(fig)
    if confusion is not None:
        fig, ax = plt.subplots(figsize=(7, 6))
        image = ax.imshow(confusion, cmap="Blues")
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set(xlabel="predicted", ylabel="true", title=f"Confusion matrix (test accuracy {metrics[-1]['test_acc']:.4f})")
        threshold = confusion.max() / 2
        for (i, j), count in np.ndenumerate(confusion):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="white" if count > threshold else "black")
        fig.colorbar(image, ax=ax)
        fig.tight_layout()
        fig.savefig(run_dir / "confusion_matrix.png", dpi=100)
        plt.close(fig)


# ---------------------------------------------------------------------------- eval
def evaluate_checkpoint(path: "str | os.PathLike", dataset: str | None = None, data_root: str | None = None,
                        batch_size: int = 256, device: str = "cpu", download: bool = False) -> dict:
    """Accuracy and per-class accuracy of a checkpoint on a test set (its own by default)."""
    from tinynn.utils.data import DataLoader
    ckpt = load_checkpoint(path)
    config = _config_from_checkpoint(ckpt)
    config = dataclasses.replace(config, dataset=dataset or config.dataset, data_root=data_root or config.data_root,
                                 download=download, limit_test=None, device=device)
    if batch_size < 1:
        raise TrainError(f"batch size must be a positive integer, got {batch_size}")
    spec = dataset_spec(config.dataset)
    _, test_set, classes = make_datasets(dataclasses.replace(config, limit_train=1))
    model = build_model(config.model, len(ckpt["classes"]), spec.in_channels, spec.image_size)
    try:
        model.load_state_dict(ckpt["model"])
    except Exception as e:
        raise TrainError(f"the checkpoint's weights do not fit model {config.model!r}: {e}") from e
    device = usable_device(device)
    model.to(device)
    loader = DataLoader(test_set, batch_size=batch_size, device=None if device.type == "cpu" else device)
    result = evaluate_model(model, loader, len(classes))
    confusion = result["confusion"]
    per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
    return {"accuracy": result["test_acc"], "loss": result["test_loss"], "per_class": dict(zip(classes, per_class.tolist())),
            "confusion": confusion, "model": config.model, "dataset": spec.name, "samples": int(confusion.sum())}


# ---------------------------------------------------------------------------- info
_FLOP_LAYERS = ("Conv1d", "Conv2d", "ConvTranspose2d", "Linear")


def _own_parameter_count(module) -> int:
    try:
        params = module.parameters(recurse=False)
    except TypeError:
        params = getattr(module, "_parameters", {}).values()
    return int(sum(p.data.size for p in params if p is not None))


def _multiply_adds(module, inputs, output) -> int:
    """Multiply-adds of one forward call of a Conv / Linear layer (others count 0)."""
    kind = type(module).__name__
    if kind in ("Conv1d", "Conv2d"):
        kernel = int(np.prod(module.weight.shape[1:]))        # in_channels / groups × kernel size
        return int(np.prod(output.shape)) * kernel
    if kind == "ConvTranspose2d":
        x = inputs[0]
        return int(np.prod(x.shape)) * int(np.prod(module.weight.shape[1:]))
    if kind == "Linear":
        return int(np.prod(output.shape)) * module.weight.shape[1]
    return 0


def model_info(name: str, dataset: str = "fashion-mnist", num_classes: int | None = None) -> dict:
    """Layer table (leaf modules: type, output shape, parameters, multiply-adds) for one image."""
    import tinynn as tn
    spec = dataset_spec(dataset)
    model = build_model(name, num_classes or 10, spec.in_channels, spec.image_size)
    rows, handles = [], []
    for layer_name, module in model.named_modules():
        if layer_name and not list(module.children()):
            def hook(mod, inputs, output, layer_name=layer_name):
                out = output[0] if isinstance(output, (tuple, list)) else output
                rows.append({"name": layer_name, "type": type(mod).__name__, "output": tuple(out.shape),
                             "params": _own_parameter_count(mod), "macs": _multiply_adds(mod, inputs, out)})
            handles.append(module.register_forward_hook(hook))
    model.eval()
    try:
        with tn.no_grad():
            model(tn.zeros(1, spec.in_channels, spec.image_size, spec.image_size))
    except Exception as e:
        raise TrainError(f"model {name!r} cannot run on {spec.name} images "
                         f"({spec.in_channels}×{spec.image_size}×{spec.image_size}): {e}") from e
    finally:
        for handle in handles:
            handle.remove()
    total_params = int(sum(p.data.size for p in model.parameters()))
    trainable = int(sum(p.data.size for p in model.parameters() if p.requires_grad))
    macs = sum(r["macs"] for r in rows)
    return {"model": name, "input": (1, spec.in_channels, spec.image_size, spec.image_size), "layers": rows,
            "params": total_params, "trainable": trainable, "macs": macs, "flops": 2 * macs}


def format_info(info: dict) -> str:
    name_w = max([len("layer")] + [len(r["name"]) for r in info["layers"]])
    type_w = max([len("type")] + [len(r["type"]) for r in info["layers"]])
    header = f"{'layer':<{name_w}}  {'type':<{type_w}}  {'output shape':<18}  {'params':>10}  {'MACs':>12}"
    lines = [f"{info['model']} on input {'×'.join(map(str, info['input']))}", header, "-" * len(header)]
    for r in info["layers"]:
        shape = "×".join(map(str, r["output"]))
        lines.append(f"{r['name']:<{name_w}}  {r['type']:<{type_w}}  {shape:<18}  {r['params']:>10,}  {r['macs']:>12,}")
    lines.append("-" * len(header))
    lines.append(f"parameters: {info['params']:,} ({info['trainable']:,} trainable)")
    lines.append(f"FLOPs per image: {info['flops']:,} ({info['macs']:,} multiply-adds in Conv/Linear layers; "
                 "1 multiply-add = 2 FLOPs)")
    return "\n".join(lines)


__all__ = ["TrainConfig", "TrainResult", "TrainError", "train", "evaluate_checkpoint", "evaluate_model",
           "model_info", "format_info", "load_checkpoint", "available_models", "build_model", "DATASET_NAMES"]
