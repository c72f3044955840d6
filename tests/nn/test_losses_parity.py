"""Every loss against PyTorch (one table entry each) and through gradcheck."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
from tests.nn.harness import Case, constant, integers, randn, run_gradcheck, run_gradgradcheck, run_parity, uniform


def _tensor(nn, values):
    """A constructor argument (class weights) for whichever library ``nn`` belongs to."""
    if nn.__name__.startswith("torch"):
        import torch
        return torch.tensor(values, dtype=torch.float32)
    return tn.tensor(values, dtype=tn.float32)


def _probabilities(*shape):
    def make(rng):
        p = rng.uniform(0.1, 1.0, shape)
        return p / p.sum(axis=1, keepdims=True)
    return constant(make)


def _signs(*shape):
    return constant(lambda rng: rng.choice([-1.0, 1.0], size=shape))


def _with_ignored(classes, *shape, ignore=-100):
    def make(rng):
        t = rng.integers(0, classes, shape)
        t.reshape(-1)[::3] = ignore
        return t.astype(np.int64)
    return constant(make)


LOSSES = [
    Case("MSELoss", lambda nn: nn.MSELoss(), [randn(3, 4), randn(3, 4)]),
    Case("MSELoss-sum", lambda nn: nn.MSELoss(reduction="sum"), [randn(3, 4), randn(3, 4)]),
    Case("MSELoss-none", lambda nn: nn.MSELoss(reduction="none"), [randn(3, 4), randn(3, 4)]),
    Case("L1Loss", lambda nn: nn.L1Loss(), [randn(3, 4), randn(3, 4)]),
    Case("SmoothL1Loss", lambda nn: nn.SmoothL1Loss(beta=0.5), [randn(3, 4), randn(3, 4)]),
    Case("HuberLoss", lambda nn: nn.HuberLoss(delta=0.7, reduction="sum"), [randn(3, 4), randn(3, 4)]),
    Case("CrossEntropyLoss", lambda nn: nn.CrossEntropyLoss(), [randn(4, 5, scale=2.0), integers(5, 4)]),
    Case("CrossEntropyLoss-sum", lambda nn: nn.CrossEntropyLoss(reduction="sum"), [randn(4, 3), integers(3, 4)]),
    Case("CrossEntropyLoss-none", lambda nn: nn.CrossEntropyLoss(reduction="none"), [randn(4, 3), integers(3, 4)]),
    Case("CrossEntropyLoss-weight", lambda nn: nn.CrossEntropyLoss(weight=_tensor(nn, [0.2, 1.0, 3.0])),
         [randn(5, 3), integers(3, 5)]),
    Case("CrossEntropyLoss-ignore", lambda nn: nn.CrossEntropyLoss(ignore_index=-100),
         [randn(6, 4), _with_ignored(4, 6)]),
    Case("CrossEntropyLoss-ignore-class", lambda nn: nn.CrossEntropyLoss(ignore_index=1, reduction="none"),
         [randn(6, 3), integers(3, 6)]),
    Case("CrossEntropyLoss-smoothing", lambda nn: nn.CrossEntropyLoss(label_smoothing=0.2),
         [randn(4, 5), integers(5, 4)]),
    Case("CrossEntropyLoss-smoothing-weight-ignore",
         lambda nn: nn.CrossEntropyLoss(weight=_tensor(nn, [0.5, 2.0, 1.0]), label_smoothing=0.1, ignore_index=-100),
         [randn(6, 3), _with_ignored(3, 6)]),
    Case("CrossEntropyLoss-smoothing-ignore-sum", lambda nn: nn.CrossEntropyLoss(label_smoothing=0.3,
                                                                                reduction="sum"),
         [randn(6, 3), _with_ignored(3, 6)]),
    Case("CrossEntropyLoss-spatial", lambda nn: nn.CrossEntropyLoss(), [randn(2, 3, 2, 2), integers(3, 2, 2, 2)]),
    Case("CrossEntropyLoss-spatial-weight-none",
         lambda nn: nn.CrossEntropyLoss(weight=_tensor(nn, [1.0, 2.0, 0.5]), reduction="none"),
         [randn(2, 3, 4), integers(3, 2, 4)]),
    Case("CrossEntropyLoss-probabilities", lambda nn: nn.CrossEntropyLoss(), [randn(4, 3), _probabilities(4, 3)]),
    Case("CrossEntropyLoss-probabilities-weight-smoothing",
         lambda nn: nn.CrossEntropyLoss(weight=_tensor(nn, [1.0, 2.0, 0.5]), label_smoothing=0.2),
         [randn(4, 3), _probabilities(4, 3)]),
    Case("CrossEntropyLoss-unbatched", lambda nn: nn.CrossEntropyLoss(), [randn(4), constant(lambda rng: np.int64(2))]),
    Case("NLLLoss", lambda nn: nn.NLLLoss(), [randn(4, 3), integers(3, 4)]),
    Case("NLLLoss-weight-ignore", lambda nn: nn.NLLLoss(weight=_tensor(nn, [1.0, 0.3, 2.0])),
         [randn(6, 3), _with_ignored(3, 6)]),
    Case("NLLLoss-spatial-none", lambda nn: nn.NLLLoss(reduction="none"), [randn(2, 3, 3), integers(3, 2, 3)]),
    Case("BCELoss", lambda nn: nn.BCELoss(), [uniform(3, 4, low=0.05, high=0.95), uniform(3, 4, grad=False)]),
    Case("BCELoss-weight", lambda nn: nn.BCELoss(weight=_tensor(nn, [1.0, 2.0, 0.5, 1.5])),
         [uniform(3, 4, low=0.05, high=0.95), uniform(3, 4, grad=False)]),
    Case("BCEWithLogitsLoss", lambda nn: nn.BCEWithLogitsLoss(), [randn(3, 4, scale=3.0), uniform(3, 4, grad=False)]),
    Case("BCEWithLogitsLoss-pos-weight",
         lambda nn: nn.BCEWithLogitsLoss(pos_weight=_tensor(nn, [1.0, 3.0, 0.5, 2.0]), reduction="none"),
         [randn(3, 4, scale=3.0), uniform(3, 4, grad=False)]),
    Case("KLDivLoss-batchmean", lambda nn: nn.KLDivLoss(reduction="batchmean"),
         [randn(3, 4), constant(lambda rng: np.where(rng.uniform(size=(3, 4)) < 0.2, 0.0, rng.uniform(size=(3, 4))))]),
    Case("KLDivLoss-mean", lambda nn: nn.KLDivLoss(), [randn(3, 4), uniform(3, 4, grad=False)]),
    Case("KLDivLoss-log-target", lambda nn: nn.KLDivLoss(reduction="sum", log_target=True), [randn(3, 4), randn(3, 4)]),
    Case("CosineEmbeddingLoss", lambda nn: nn.CosineEmbeddingLoss(margin=0.2), [randn(4, 3), randn(4, 3), _signs(4)]),
    Case("MarginRankingLoss", lambda nn: nn.MarginRankingLoss(margin=0.3), [randn(5), randn(5), _signs(5)]),
    Case("HingeEmbeddingLoss", lambda nn: nn.HingeEmbeddingLoss(margin=0.5), [randn(5), _signs(5)]),
    Case("SoftMarginLoss", lambda nn: nn.SoftMarginLoss(), [randn(5), _signs(5)]),
    Case("TripletMarginLoss", lambda nn: nn.TripletMarginLoss(margin=1.0), [randn(4, 3), randn(4, 3), randn(4, 3)]),
    Case("TripletMarginLoss-swap-p1", lambda nn: nn.TripletMarginLoss(margin=0.5, p=1.0, swap=True),
         [randn(4, 3), randn(4, 3), randn(4, 3)]),
    Case("PoissonNLLLoss", lambda nn: nn.PoissonNLLLoss(), [randn(3, 4), uniform(3, 4, high=3.0, grad=False)]),
    Case("GaussianNLLLoss", lambda nn: nn.GaussianNLLLoss(),
         [randn(3, 4), randn(3, 4), uniform(3, 4, low=0.5, high=2.0)]),
]

NO_GRADCHECK: set = set()


@pytest.mark.parity
@pytest.mark.parametrize("case", LOSSES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_matches_torch(case, dtype):
    pytest.importorskip("torch")
    run_parity(case, dtype)


@pytest.mark.parametrize("case", [c for c in LOSSES if c.name not in NO_GRADCHECK], ids=str)
def test_loss_gradcheck(case):
    run_gradcheck(case)


@pytest.mark.parametrize("case", [c for c in LOSSES if c.name not in NO_GRADCHECK], ids=str)
def test_loss_double_backward(case):
    run_gradgradcheck(case)
