"""``tinynn`` on the command line: ``train``, ``eval``, ``info``.

    tinynn train                      # LeNet-5 on the bundled Fashion-MNIST sample
    tinynn train --model lenet5 --dataset fashion-mnist --epochs 5 --batch-size 128 \\
                 --optimizer adam --lr 1e-3 --scheduler cosine --device cpu --seed 0 --out runs/lenet
    tinynn train --resume runs/lenet  # continue after Ctrl-C
    tinynn eval --checkpoint runs/lenet
    tinynn info --model lenet5

Mistakes in the request (unknown model or dataset, missing data, a damaged
checkpoint, a batch size of 0...) print one ``tinynn: error: ...`` line and exit
with status 1 (2 for malformed arguments, 130 after Ctrl-C); no traceback.
Set ``TINYNN_DEBUG=1`` to see the traceback of an unexpected error.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .train import DATASET_NAMES, OPTIMIZERS, SCHEDULERS, TrainConfig
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="tinynn", description="Train and inspect tinynn image classifiers.")
    commands = parser.add_subparsers(dest="command", metavar="{train,eval,info}")

    train = commands.add_parser("train", help="train a model (default: LeNet-5 on the bundled Fashion-MNIST sample)",
                                description="Train an image classifier. With no arguments: LeNet-5 on the "
                                            "bundled 10k/2k Fashion-MNIST sample, a few epochs.")
    train.add_argument("--model", default=defaults.model, help=f"a constructor of tinynn.models (default {defaults.model})")
    train.add_argument("--dataset", default=defaults.dataset,
                       help=f"{' | '.join(DATASET_NAMES)} (default {defaults.dataset})")
    train.add_argument("--epochs", type=_positive_int, default=defaults.epochs)
    train.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size)
    train.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer)
    train.add_argument("--lr", type=_positive_float, default=defaults.lr)
    train.add_argument("--momentum", type=float, default=defaults.momentum)
    train.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    train.add_argument("--scheduler", choices=SCHEDULERS, default=defaults.scheduler)
    train.add_argument("--device", default=defaults.device, help="cpu or cuda")
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--out", default=None, help="run directory (default runs/<model>-<dataset>-<time>)")
    train.add_argument("--data-root", default=None, help="where the dataset files are (see tinynn.datasets)")
    train.add_argument("--download", action="store_true", help="download missing dataset files")
    train.add_argument("--augment", action="store_true", help="random crops (and flips for CIFAR-10)")
    train.add_argument("--limit-train", type=_positive_int, default=None, help="use only the first N training images")
    train.add_argument("--limit-test", type=_positive_int, default=None, help="use only the first N test images")
    train.add_argument("--num-workers", type=int, default=0, help="> 0: load batches in a background thread")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    train.add_argument("--resume", metavar="DIR", default=None,
                       help="continue the run in DIR from its checkpoint (other options are taken from it)")

    evaluate = commands.add_parser("eval", help="accuracy and per-class accuracy of a checkpoint")
    evaluate.add_argument("--checkpoint", required=True, help="a checkpoint file or a run directory")
    evaluate.add_argument("--dataset", default=None, help="test set to use (default: the one it was trained on)")
    evaluate.add_argument("--data-root", default=None)
    evaluate.add_argument("--download", action="store_true")
    evaluate.add_argument("--batch-size", type=_positive_int, default=256)
    evaluate.add_argument("--device", default="cpu")

    info = commands.add_parser("info", help="layer table, parameter count and FLOPs of a model")
    info.add_argument("--model", default=defaults.model)
    info.add_argument("--dataset", default="fashion-mnist", help="decides the input size (default 1×28×28)")
    info.add_argument("--num-classes", type=_positive_int, default=None)
    return parser


def _cmd_train(args) -> int:
    from .train import TrainConfig, train
    common = {"progress": not args.no_progress, "plots": not args.no_plots}
    if args.resume:
        result = train(resume=args.resume, **common, num_workers=args.num_workers)
    else:
        config = TrainConfig(model=args.model, dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size,
                             optimizer=args.optimizer, lr=args.lr, momentum=args.momentum,
                             weight_decay=args.weight_decay, scheduler=args.scheduler, device=args.device,
                             seed=args.seed, out=args.out, data_root=args.data_root, download=args.download,
                             augment=args.augment, limit_train=args.limit_train, limit_test=args.limit_test,
                             num_workers=args.num_workers, **common)
        result = train(config)
    if result.interrupted:
        return 130
    if result.metrics:
        print(f"test accuracy: {result.test_accuracy:.4f}  (run directory: {result.run_dir})")
    return 0


def _cmd_eval(args) -> int:
    from .train import evaluate_checkpoint
    result = evaluate_checkpoint(args.checkpoint, dataset=args.dataset, data_root=args.data_root,
                                 batch_size=args.batch_size, device=args.device, download=args.download)
    print(f"{result['model']} on the {result['dataset']} test set ({result['samples']} images)")
    print(f"accuracy: {result['accuracy']:.4f}   loss: {result['loss']:.4f}")
    print("per-class accuracy:")
    width = max(len(name) for name in result["per_class"])
    for name, accuracy in result["per_class"].items():
        print(f"  {name:<{width}}  {accuracy:.4f}")
    return 0


def _cmd_info(args) -> int:
    from .train import format_info, model_info
    print(format_info(model_info(args.model, dataset=args.dataset, num_classes=args.num_classes)))
    return 0


def _user_errors() -> tuple:
    """The exceptions that mean "the request cannot be done" rather than "tinynn has a bug"."""
    from .datasets import DatasetFormatError, DatasetNotFoundError, DownloadError
    from .train import TrainError
    errors = [TrainError, DatasetNotFoundError, DatasetFormatError, DownloadError, MemoryError]
    try:
        from .serialization import CheckpointError
        errors.append(CheckpointError)
    except ImportError:
        pass
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    handlers = {"train": _cmd_train, "eval": _cmd_eval, "info": _cmd_info}
    try:
        return handlers[args.command](args)
    except _user_errors() as e:
        message = str(e) if not isinstance(e, MemoryError) else "out of memory (try a smaller --batch-size)"
        print(f"tinynn: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tinynn: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: say so in one line unless asked for the traceback
        if os.environ.get("TINYNN_DEBUG"):
            traceback.print_exc()
        else:
            print(f"tinynn: error: unexpected {type(e).__name__}: {e} (set TINYNN_DEBUG=1 for the traceback)",
                  file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
