"""Many functional ops, a few models and the training app on the fake GPU; prints one line per check.

Run with this folder on PYTHONPATH (tests/kernels/cuda/test_fake_gpu.py does). Exit
status 1 if any check failed; each failure names the tinynn lines it came from.
"""
from __future__ import annotations

import sys
import traceback

import fake_gpu_plugin

fake_gpu_plugin.pytest_configure(None)

import tinynn as tn  # noqa: E402
import tinynn.models as models  # noqa: E402
import tinynn.nn.functional as F  # noqa: E402
from tinynn import optim  # noqa: E402


def x(*shape):
    return tn.randn(*shape, device="cuda", requires_grad=True)


def ints(high, *shape):
    return tn.randint(0, high, shape, device="cuda")


def cuda(values):
    return tn.tensor(values, device="cuda")


CHECKS = {
    "unfold/fold": lambda: F.fold(F.unfold(x(1, 2, 5, 5), 3, padding=1), (5, 5), 3, padding=1),
    "conv1d": lambda: F.conv1d(x(2, 3, 9), x(4, 3, 3), stride=2, padding=1),
    "conv_transpose2d": lambda: F.conv_transpose2d(x(1, 3, 4, 4), x(3, 2, 3, 3), stride=2, padding=1),
    "max/avg_pool1d": lambda: F.max_pool1d(x(2, 3, 9), 3, 2) + F.avg_pool1d(x(2, 3, 9), 3, 2),
    "adaptive_max_pool2d": lambda: F.adaptive_max_pool2d(x(1, 2, 7, 7), 3),
    "interpolate": lambda: F.interpolate(x(1, 2, 4, 4), scale_factor=2, mode="bilinear", align_corners=False)
    + F.interpolate(x(1, 2, 4, 4), size=(8, 8)),
    "batch_norm": lambda: F.batch_norm(x(4, 3, 2, 2), tn.zeros(3, device="cuda"), tn.ones(3, device="cuda"),
                                       training=True),
    "group/layer_norm": lambda: F.group_norm(x(2, 4, 3, 3), 2).sum() + F.layer_norm(x(2, 5), (5,)).sum(),
    "dropout": lambda: F.dropout(x(10), 0.5) + F.dropout2d(x(2, 5, 1, 1), 0.5).reshape(10),
    "activations": lambda: F.gelu(x(5), approximate="tanh") + F.gelu(x(5)) + F.elu(x(5)) + F.silu(x(5))
    + F.softplus(x(5)) + F.leaky_relu(x(5)) + F.relu6(x(5)) + F.logsigmoid(x(5)),
    "embedding": lambda: F.embedding(ints(10, 3, 4), x(10, 5), padding_idx=0),
    "one_hot": lambda: F.one_hot(ints(5, 7), 5).float() * x(7, 5),
    "cross_entropy": lambda: F.cross_entropy(x(4, 5, 3), ints(5, 4, 3), weight=tn.rand(5, device="cuda"),
                                             label_smoothing=0.1),
    "nll/bce/kl": lambda: F.nll_loss(x(4, 5), ints(5, 4)) + F.binary_cross_entropy(x(6).sigmoid(),
                                                                                      tn.rand(6, device="cuda"))
    + F.kl_div(x(3, 4).log_softmax(-1), tn.rand(3, 4, device="cuda"), reduction="batchmean"),
    "distances": lambda: F.cosine_similarity(x(3, 4), x(3, 4)).sum() + F.pairwise_distance(x(3, 4), x(3, 4)).sum()
    + F.triplet_margin_loss(x(3, 4), x(3, 4), x(3, 4)) + F.normalize(x(3, 4)).sum(),
    "pad modes": lambda: F.pad(x(1, 2, 4, 4), (1, 2, 1, 0), mode="reflect").sum()
    + F.pad(x(1, 2, 4, 4), (1, 1, 1, 1), mode="replicate").sum(),
    "scaled_dot_product_attention": lambda: F.scaled_dot_product_attention(
        x(1, 4, 3, 2), x(1, 2, 5, 2), x(1, 2, 5, 2), enable_gqa=True, dropout_p=0.2, is_causal=True),
    "creation": lambda: (tn.linspace(0, 1, 4, device="cuda") + tn.eye(4, device="cuda")
                         + tn.randperm(4, device="cuda").float() + tn.arange(4, device="cuda").float()) * x(4, 4),
}


def train_steps(model, inputs, targets):
    model = model.to("cuda")
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
    return loss.detach()


CHECKS.update({
    "lenet5": lambda: train_steps(models.lenet5(), tn.randn(4, 1, 28, 28, device="cuda"), ints(10, 4)),
    "lstm classifier": lambda: train_steps(models.LSTMClassifier(vocab_size=20, embed_dim=4, hidden_size=4,
                                                                 num_classes=3), ints(20, 2, 5), ints(3, 2)),
})


def main() -> int:
    failures = 0
    for name, check in CHECKS.items():
        try:
            out = check()
            out = out[0] if isinstance(out, tuple) else out
            assert out.device == tn.device("cuda"), f"result on {out.device}"
            if out.requires_grad:
                (out.float() ** 2).sum().backward()
            print(f"ok   {name}")
        except Exception as error:  # report every failure, then fail
            failures += 1
            frames = [f"{f.filename.split('/tinynn/')[-1]}:{f.lineno}" for f in traceback.extract_tb(error.__traceback__)
                      if "/tinynn/" in f.filename]
            print(f"FAIL {name}: {type(error).__name__}: {str(error)[:200]} (at {', '.join(frames[-3:])})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
