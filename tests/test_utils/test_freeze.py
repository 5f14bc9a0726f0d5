"""train_cfg.frozen/trainable: module paths and glob patterns."""
import pytest
import torch.nn as nn

from mmadamtl.models.utils.freeze import freeze_parameters


def _model():
    block = nn.ModuleDict(dict(norm1=nn.LayerNorm(4), fc=nn.Linear(4, 4)))
    return nn.ModuleDict(dict(
        backbone=nn.ModuleDict(dict(blocks=nn.ModuleList([block]),
                                    policy=nn.Linear(4, 1))),
        head=nn.Linear(4, 2)))


def _trainable(model):
    return sorted(n for n, p in model.named_parameters() if p.requires_grad)


def test_longer_trainable_path_wins():
    model = _model()
    frozen = freeze_parameters(model, ['backbone'], ['backbone.policy'])
    assert _trainable(model) == ['backbone.policy.bias',
                                 'backbone.policy.weight', 'head.bias',
                                 'head.weight']
    assert len(frozen) == 4


def test_patterns_match_names_and_module_paths():
    model = _model()
    freeze_parameters(model, ['backbone'], ['backbone.*norm*',
                                            'backbone.blocks.*.fc.bias'])
    assert _trainable(model) == ['backbone.blocks.0.fc.bias',
                                 'backbone.blocks.0.norm1.bias',
                                 'backbone.blocks.0.norm1.weight',
                                 'head.bias', 'head.weight']


def test_a_missing_path_is_an_error_a_pattern_is_not():
    with pytest.raises(ValueError, match="'backbone.polcy'"):
        freeze_parameters(_model(), ['backbone'], ['backbone.polcy'])
    model = _model()
    freeze_parameters(model, ['backbone'], ['backbone.*lora_*'])
    assert _trainable(model) == ['head.bias', 'head.weight']
