"""PredictionDistillLoss / distill_task against hand computations."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from mmadamtl.models.losses import PredictionDistillLoss, distill_task


def _softmax(xs, t):
    e = [math.exp(x / t) for x in xs]
    return [v / sum(e) for v in e]


def test_seg_kl_with_temperature_by_hand():
    # One image, 3 classes, two pixels.
    s = torch.tensor([[[[1.0, 0.0]], [[2.0, 1.0]], [[0.0, -1.0]]]])
    t = torch.tensor([[[[0.5, 2.0]], [[1.0, 0.0]], [[3.0, 0.0]]]])
    temp = 2.0
    expect = 0.0
    for px in range(2):
        p = _softmax([float(s[0, c, 0, px]) for c in range(3)], temp)
        q = _softmax([float(t[0, c, 0, px]) for c in range(3)], temp)
        expect += sum(qi * math.log(qi / pi) for pi, qi in zip(p, q))
    expect = temp**2 * expect / 2
    got = distill_task('seg', s, t, temperature=temp)
    assert got.item() == pytest.approx(expect, rel=1e-5)
    # torch's own KL, written out: mean over pixels of the class sum.
    kl = F.kl_div(F.log_softmax(s / temp, 1), F.log_softmax(t / temp, 1),
                  reduction='none', log_target=True).sum(1).mean()
    assert got.item() == pytest.approx(temp**2 * kl.item(), rel=1e-5)


def test_binary_bce_with_soft_targets_by_hand():
    s = torch.tensor([[[[2.0, -1.0], [0.5, 0.0]]]])
    t = torch.tensor([[[[0.0, 1.0], [-2.0, 3.0]]]])
    expect = 0.0
    for x, y in zip(s.flatten().tolist(), t.flatten().tolist()):
        q = 1 / (1 + math.exp(-y))
        p = 1 / (1 + math.exp(-x))
        expect += -(q * math.log(p) + (1 - q) * math.log(1 - p))
    got = distill_task('binary', s, t)
    assert got.item() == pytest.approx(expect / 4, rel=1e-5)
    # A valid mask: the first row only.
    valid = torch.tensor([[[[True, True], [False, False]]]])
    first = sum(
        -(q * math.log(p) + (1 - q) * math.log(1 - p))
        for p, q in ((1 / (1 + math.exp(-2.0)), 0.5),
                     (1 / (1 + math.exp(1.0)), 1 / (1 + math.exp(-1.0)))))
    assert distill_task('binary', s, t, valid=valid).item() == \
        pytest.approx(first / 2, rel=1e-5)


def test_normals_and_depth_l1_by_hand():
    s = torch.tensor([[[[3.0]], [[0.0]], [[4.0]]]])  # -> (0.6, 0, 0.8)
    t = torch.tensor([[[[0.0]], [[2.0]], [[0.0]]]])  # -> (0, 1, 0)
    assert distill_task('normals', s, t).item() == pytest.approx(
        (0.6 + 1.0 + 0.8) / 3, rel=1e-6)
    d_s = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    d_t = torch.tensor([[[[1.5, 2.0], [1.0, 4.0]]]])
    assert distill_task('depth', d_s, d_t).item() == pytest.approx(
        (0.5 + 0 + 2.0 + 0) / 4, rel=1e-6)


def test_module_weights_keys_and_zero_at_the_teacher():
    loss = MODELS.build(dict(type='PredictionDistillLoss', temperature=3.0,
                             task_weights=dict(depth=2.0), loss_weight=0.5))
    gen = torch.Generator().manual_seed(0)
    student = dict(semseg=torch.randn(2, 5, 4, 4, generator=gen),
                   normals=torch.randn(2, 3, 4, 4, generator=gen),
                   depth=torch.randn(2, 1, 4, 4, generator=gen),
                   edge=torch.randn(2, 1, 4, 4, generator=gen))
    teacher = {k: torch.randn(v.shape, generator=gen)
               for k, v in student.items()}
    out = loss(student, teacher)
    assert set(out) == {f'{t}.loss_pkd' for t in student}
    assert out['depth.loss_pkd'].item() == pytest.approx(
        0.5 * 2.0 * (student['depth'] - teacher['depth']).abs().mean().item(),
        rel=1e-6)
    assert out['edge.loss_pkd'].item() == pytest.approx(
        0.5 * F.binary_cross_entropy_with_logits(
            student['edge'], torch.sigmoid(teacher['edge'])).item(),
        rel=1e-6)
    same = loss(teacher, teacher)
    for task in ('semseg', 'normals', 'depth'):
        assert same[f'{task}.loss_pkd'].abs().item() < 1e-6, task
    # BCE against soft targets: at the teacher, the teacher's entropy.
    q = torch.sigmoid(teacher['edge'])
    entropy = -(q * q.log() + (1 - q) * (1 - q).log()).mean()
    assert same['edge.loss_pkd'].item() == pytest.approx(
        0.5 * entropy.item(), rel=1e-5)


def test_gradient_reaches_the_student_only():
    loss = PredictionDistillLoss()
    s = {t: torch.randn(1, c, 3, 3, requires_grad=True)
         for t, c in (('semseg', 4), ('saliency', 1), ('normals', 3),
                      ('depth', 1))}
    t = {k: torch.randn(v.shape, requires_grad=True) for k, v in s.items()}
    sum(loss(s, t).values()).backward()
    for task in s:
        assert t[task].grad is None, task
        assert s[task].grad is not None and s[task].grad.abs().sum() > 0


def test_float32_under_autocast():
    loss = PredictionDistillLoss(temperature=2.0)
    s = dict(semseg=torch.randn(1, 4, 3, 3), depth=torch.randn(1, 1, 3, 3),
             normals=torch.randn(1, 3, 3, 3), edge=torch.randn(1, 1, 3, 3))
    t = {k: torch.randn(v.shape) for k, v in s.items()}
    ref = loss(s, t)
    with torch.autocast('cpu', dtype=torch.float16):
        got = loss({k: v.half() for k, v in s.items()},
                   {k: v.half() for k, v in t.items()})
    for key, value in got.items():
        assert value.dtype == torch.float32, key
        # Only the inputs' rounding to float16 differs.
        assert value.item() == pytest.approx(ref[key].item(), rel=2e-2,
                                             abs=1e-3), key


def test_bad_inputs_fail_clearly():
    with pytest.raises(ValueError, match='temperature'):
        PredictionDistillLoss(temperature=0)
    with pytest.raises(ValueError, match='sky'):
        PredictionDistillLoss(task_weights=dict(sky=1.0))
    with pytest.raises(ValueError, match=r"task_weights\['depth'\]"):
        PredictionDistillLoss(task_weights=dict(depth=-1.0))
    loss = PredictionDistillLoss()
    with pytest.raises(KeyError, match='depth'):
        loss(dict(depth=torch.zeros(1, 1, 2, 2)),
             dict(semseg=torch.zeros(1, 3, 2, 2)))
    with pytest.raises(ValueError, match='differ'):
        loss(dict(depth=torch.zeros(1, 1, 2, 2)),
             dict(depth=torch.zeros(1, 1, 4, 4)))
    with pytest.raises(ValueError, match='unknown task kind'):
        distill_task('flow', torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2))
    with pytest.raises(ValueError, match='valid mask'):
        distill_task('depth', torch.zeros(1, 1, 2, 2),
                     torch.zeros(1, 1, 2, 2), valid=torch.ones(1, 2, 2))
