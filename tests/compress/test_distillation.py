"""Knowledge distillation loss: the formula, PyTorch's KLDivLoss, teacher isolation, a training step."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
import tinynn.nn as nn
from tinynn.compress import distill_step, distillation_loss


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_distillation_loss_matches_formula():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((4, 5)).astype(np.float32)
    t = rng.standard_normal((4, 5)).astype(np.float32)
    y = np.array([0, 3, 1, 4])
    T, alpha = 3.0, 0.7
    log_ps, log_pt = _log_softmax(s / T), _log_softmax(t / T)
    kl = (np.exp(log_pt) * (log_pt - log_ps)).sum(-1).mean()
    ce = -_log_softmax(s)[np.arange(4), y].mean()
    expected = alpha * T * T * kl + (1 - alpha) * ce
    got = distillation_loss(tn.from_numpy(s), tn.from_numpy(t), tn.from_numpy(y), temperature=T, alpha=alpha)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    soft_only = distillation_loss(tn.from_numpy(s), tn.from_numpy(t), temperature=T)
    assert soft_only.item() == pytest.approx(T * T * kl, rel=1e-5)
    assert distillation_loss(tn.from_numpy(t), tn.from_numpy(t)).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parity
def test_soft_term_matches_torch_kl_div():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    s = rng.standard_normal((6, 4)).astype(np.float32)
    t = rng.standard_normal((6, 4)).astype(np.float32)
    T = 2.0
    expected = torch.nn.functional.kl_div(torch.log_softmax(torch.tensor(s) / T, -1),
                                          torch.log_softmax(torch.tensor(t) / T, -1), reduction="batchmean",
                                          log_target=True) * T * T
    got = distillation_loss(tn.from_numpy(s), tn.from_numpy(t), temperature=T)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_no_gradient_reaches_the_teacher_and_errors():
    teacher_logits = tn.randn(3, 4, requires_grad=True)
    student_logits = tn.randn(3, 4, requires_grad=True)
    distillation_loss(student_logits, teacher_logits, tn.tensor([0, 1, 2])).backward()
    assert teacher_logits.grad is None and student_logits.grad is not None
    with pytest.raises(ValueError, match="differ"):
        distillation_loss(tn.randn(3, 4), tn.randn(3, 5))
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(tn.randn(3, 4), tn.randn(3, 4), temperature=0.0)


def test_distill_step_moves_the_student_towards_the_teacher():
    from tinynn.optim import SGD

    teacher = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    student = nn.Linear(4, 3)
    x = tn.randn(32, 4)
    y = tn.from_numpy(np.random.default_rng(0).integers(0, 3, 32))
    opt = SGD(student.parameters(), lr=0.1)
    teacher_before = [p.numpy().copy() for p in teacher.parameters()]
    losses = [distill_step(student, teacher, opt, x, y, temperature=2.0, alpha=0.8) for _ in range(10)]
    assert losses[-1] < losses[0]
    for before, p in zip(teacher_before, teacher.parameters()):
        np.testing.assert_array_equal(before, p.numpy())
