"""LeNet-5 (or another small CNN) on the full Fashion-MNIST (60k train / 10k test): tinynn next to PyTorch.

    python benchmarks/fashion_mnist_pytorch_compare.py --epochs 3
    python benchmarks/fashion_mnist_pytorch_compare.py --model small_cnn --lr 2e-3 --epochs 8

Both frameworks train the same network from the same initial weights (tinynn's,
copied into PyTorch), on the same batches in the same order (the permutations
come from one tn.Generator), with Adam and a cosine schedule. The script prints
seconds per epoch and test accuracy for each, side by side. It needs the data
set (``apt-get install dataset-fashion-mnist``, or ``--data-root`` / TINYNN_DATA)
and PyTorch (``pip install torch``). Timings are wall-clock on this machine.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5", help="lenet5 or small_cnn (a Sequential of supported layers)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--skip-tinynn", action="store_true")
    parser.add_argument("--skip-torch", action="store_true")
    return parser.parse_args()


def run_tinynn(args) -> list[dict]:
    from tinynn.train import TrainConfig, train
    with tempfile.TemporaryDirectory() as out:
        result = train(TrainConfig(model=args.model, dataset="fashion-mnist", epochs=args.epochs,
                                   batch_size=args.batch_size, optimizer="adam", lr=args.lr, scheduler="cosine",
                                   seed=args.seed, data_root=args.data_root, progress=False, plots=False,
                                   out=out + "/run"), log=lambda msg: print("  tinynn", msg))
    return [{"seconds": m["seconds"], "test_acc": m["test_acc"], "train_loss": m["train_loss"]} for m in result.metrics]


def torch_twin(tn_model):
    """A PyTorch copy of a small tinynn CNN: same layers in the same order, same weights."""
    import torch
    import torch.nn as tnn
    layers = []
    for _, module in tn_model.named_modules():
        kind = type(module).__name__
        if list(module.children()):
            continue
        if kind == "Conv2d":
            layers.append(tnn.Conv2d(module.in_channels, module.out_channels, module.kernel_size,
                                     stride=module.stride, padding=module.padding, bias=module.bias is not None))
        elif kind == "BatchNorm2d":
            layers.append(tnn.BatchNorm2d(module.num_features, eps=module.eps, momentum=module.momentum))
        elif kind == "Dropout":
            layers.append(tnn.Dropout(module.p))
        elif kind == "Linear":
            if not any(isinstance(layer, (tnn.Linear, tnn.Flatten)) for layer in layers):
                layers.append(tnn.Flatten())       # LeNet5.forward flattens between features and classifier
            layers.append(tnn.Linear(module.in_features, module.out_features))
        elif kind in ("ReLU", "Tanh", "Flatten", "Identity"):
            layers.append(getattr(tnn, kind)())
        elif kind in ("MaxPool2d", "AvgPool2d"):
            layers.append(getattr(tnn, kind)(module.kernel_size, module.stride))
        else:
            raise NotImplementedError(f"no PyTorch twin for {kind}")
    model = tnn.Sequential(*layers)
    with torch.no_grad():
        for theirs, ours in zip(model.parameters(), tn_model.parameters()):
            theirs.copy_(torch.from_numpy(np.array(ours.data)))
    return model


def run_torch(args) -> list[dict]:
    import torch
    import torch.nn.functional as F

    import tinynn as tn
    from tinynn.datasets import FashionMNIST
    from tinynn.train import build_model
    if args.threads:
        torch.set_num_threads(args.threads)
    mean, std = 0.2860, 0.3530
    def load(train):
        ds = FashionMNIST(args.data_root, train=train)
        x = (ds.data.astype(np.float32) / 255 - mean) / std
        return torch.from_numpy(x[:, None]), torch.from_numpy(ds.targets)
    x_train, y_train = load(True)
    x_test, y_test = load(False)
    tn.manual_seed(args.seed)                              # the same initial weights as tinynn's run
    model = torch_twin(build_model(args.model, 10, 1, 28))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    order_generator = tn.Generator().manual_seed(args.seed)   # the DataLoader's batches, in its order
    results = []
    for epoch in range(args.epochs):
        model.train()
        order = torch.from_numpy(np.asarray(order_generator.permutation(len(x_train))))
        start, loss_sum = time.perf_counter(), 0.0
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(idx)
        seconds = time.perf_counter() - start
        scheduler.step()
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(x_test[i:i + 1000]).argmax(1) == y_test[i:i + 1000]).sum())
                          for i in range(0, len(x_test), 1000))
        results.append({"seconds": seconds, "test_acc": correct / len(x_test), "train_loss": loss_sum / len(order)})
        print(f"  torch  epoch {epoch + 1}/{args.epochs}: train loss {results[-1]['train_loss']:.4f} "
              f"test acc {results[-1]['test_acc']:.4f} | {seconds:.1f}s")
    return results


def main() -> None:
    args = parse_args()
    import os
    print(f"{args.model}, Fashion-MNIST 60k/10k, batch {args.batch_size}, Adam lr {args.lr}, cosine, "
          f"{args.epochs} epochs, {os.cpu_count()} CPUs")
    ours = [] if args.skip_tinynn else run_tinynn(args)
    theirs = [] if args.skip_torch else run_torch(args)
    print(f"\n{'epoch':>5} | {'tinynn s':>9} {'tinynn acc':>10} | {'torch s':>8} {'torch acc':>9}")
    for epoch in range(args.epochs):
        a = ours[epoch] if epoch < len(ours) else None
        b = theirs[epoch] if epoch < len(theirs) else None
        cell = lambda r, w1, w2: (f"{r['seconds']:>{w1}.1f} {r['test_acc']:>{w2}.4f}" if r else f"{'-':>{w1}} {'-':>{w2}}")  # noqa: E731
        print(f"{epoch + 1:>5} | {cell(a, 9, 10)} | {cell(b, 8, 9)}")
    if ours and theirs:
        ratio = np.mean([r["seconds"] for r in ours]) / np.mean([r["seconds"] for r in theirs])
        print(f"tinynn takes {ratio:.1f}x PyTorch's time per epoch")


if __name__ == "__main__":
    main()
