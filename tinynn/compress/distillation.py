"""Knowledge distillation (Hinton et al., 2015): a student learns from a teacher's softened outputs.

``p_T = softmax(z / T)``: a temperature ``T > 1`` flattens the teacher's distribution so the
student also learns which wrong classes are *nearly* right ("dark knowledge"). The loss is
``α · T² · KL(p_T(teacher) ‖ p_T(student)) + (1 - α) · CE(student, labels)``; the ``T²``
keeps the soft term's gradients on the same scale as the hard term's when ``T`` changes.
"""
from __future__ import annotations

import tinynn as tn
import tinynn.nn.functional as F


def distillation_loss(student_logits, teacher_logits, target=None, temperature: float = 4.0, alpha: float = 0.9):
    """The distillation objective above, averaged over the batch. ``target=None`` gives the soft term alone
    (``alpha`` is then ignored). The teacher's logits are detached: no gradient flows into the teacher."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"distillation_loss: student logits {student_logits.shape} and teacher logits "
                         f"{teacher_logits.shape} differ")
    if temperature <= 0:
        raise ValueError(f"distillation_loss: temperature must be positive, got {temperature}")
    log_p_student = tn.log_softmax(student_logits / temperature, -1)
    log_p_teacher = tn.log_softmax(teacher_logits.detach() / temperature, -1)
    # KL(p_t ‖ p_s) = Σ p_t (log p_t - log p_s), averaged over the batch ("batchmean").
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1).mean()
    soft = kl * (temperature ** 2)
    if target is None:
        return soft
    return soft * alpha + F.cross_entropy(student_logits, target) * (1.0 - alpha)


def distill_step(student, teacher, optimizer, inputs, target, temperature: float = 4.0, alpha: float = 0.9) -> float:
    """One optimisation step of the student on a batch; the teacher runs in eval mode without a graph."""
    teacher.eval()
    student.train()
    with tn.no_grad():
        teacher_logits = teacher(inputs)
    optimizer.zero_grad()
    loss = distillation_loss(student(inputs), teacher_logits, target, temperature, alpha)
    loss.backward()
    optimizer.step()
    return loss.item()
