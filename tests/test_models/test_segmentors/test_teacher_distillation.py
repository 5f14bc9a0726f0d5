"""``train_cfg.distill``: knowledge distillation from a static teacher
checkpoint into the multi-task segmentor (AdaMTL's recipe option)."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS

from mmadamtl.models.losses import distill_task
from mmadamtl.utils import TASKS
from tests.conftest import ROOT
from tests.test_models.test_segmentors.test_multi_task_encoder_decoder \
    import _sample

ADAPTIVE = f'{ROOT}/tests/configs/tiny_adamtl_swin_synthetic.py'


def _static_checkpoint(tiny_cfg, path, seed=3):
    torch.manual_seed(seed)
    static = MODELS.build(copy.deepcopy(tiny_cfg.model))
    static.init_weights()
    torch.save(dict(state_dict=static.state_dict(), meta=dict()), path)
    return static.eval()


def _student(distill, seed=0):
    cfg = copy.deepcopy(Config.fromfile(ADAPTIVE).model)
    cfg.train_cfg = dict(cfg.get('train_cfg') or {}, distill=distill)
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.train()


def test_distillation_from_a_static_teacher(tiny_cfg, tmp_path):
    """Each trained task gets ``<task>.loss_pkd``: the distillation of the
    static checkpoint's outputs, computed as an independent static model
    built from that checkpoint gives them; the teacher takes no gradient,
    stays in eval mode and is not part of the student's state."""
    path = str(tmp_path / 'static.pth')
    static = _static_checkpoint(tiny_cfg, path)
    model = _student(dict(teacher_checkpoint=path, temperature=2.0,
                          loss_weight=0.5, task_weights=dict(edge=3.0)))
    keys = set(model.state_dict())
    seen = {}
    model.kd_loss.register_forward_hook(
        lambda m, args, out: seen.update(student=args[0], teacher=args[1]))
    x = torch.rand(2, 3, 64, 64)
    samples = [_sample(64, 64, seed=i) for i in range(2)]
    model.set_train_budgets(torch.tensor([0.4, 0.7]))
    losses = model.loss(x, samples)
    assert {k for k in losses if k.endswith('.loss_pkd')} == {
        f'{t}.loss_pkd' for t in model.tasks}
    with torch.no_grad():
        expected = static.decode_head(static.extract_feat(x), model.tasks)
    for task in model.tasks:
        torch.testing.assert_close(seen['teacher'][task], expected[task])
        value = distill_task(TASKS[task].kind, seen['student'][task],
                             expected[task], temperature=2.0)
        weight = 0.5 * (3.0 if task == 'edge' else 1.0)
        torch.testing.assert_close(losses[f'{task}.loss_pkd'],
                                   weight * value)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    teacher = model.kd_teacher()
    assert not teacher.training
    assert all(p.grad is None and not p.requires_grad
               for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.backbone.parameters())
    assert set(model.state_dict()) == keys
    model.train()
    assert not model.kd_teacher().training
    # Moved or cast: rebuilt from the checkpoint.
    model.float()
    assert model.kd_teacher() is not teacher


def test_distillation_config_errors(tiny_cfg, tmp_path):
    with pytest.raises(ValueError, match='teacher_checkpoint'):
        _student(dict(temperature=2.0))
    with pytest.raises(ValueError, match='temperature'):
        _student(dict(teacher_checkpoint='x.pth', temperature=0))
    with pytest.raises(ValueError, match='loss_weight'):
        _student(dict(teacher_checkpoint='x.pth', loss_weight=-1.0))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['weight'\]"):
        _student(dict(teacher_checkpoint='x.pth', weight=2.0))
    with pytest.raises(ValueError, match='temperature'):
        distill_task('seg', torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2),
                     temperature=-1)
    model = _student(dict(teacher_checkpoint=str(tmp_path / 'none.pth')))
    with pytest.raises(FileNotFoundError, match='none.pth'):
        model.kd_teacher()
    # A checkpoint of another architecture is refused, naming keys.
    other = copy.deepcopy(tiny_cfg)
    other.model.decode_head.tasks.pop('depth')
    path = str(tmp_path / 'other.pth')
    _static_checkpoint(other, path)
    model = _student(dict(teacher_checkpoint=path))
    with pytest.raises(ValueError, match='depth'):
        model.kd_teacher()
