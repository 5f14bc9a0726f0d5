"""MTLoRA deployment helpers: merge the task-agnostic adapters into the
frozen weights, and save/load only the trained weights (adapter files)
on top of a base checkpoint."""
import copy
from typing import Dict, Tuple

import torch
from mmengine.config import Config

from mmadamtl.models.backbones.swin_checkpoint import load_state_dict_file
from mmadamtl.utils.safe_io import save_torch

ADAPTER_FORMAT = 'mmadamtl.mtlora_adapters.v1'


def _model(model):
    return getattr(model, 'module', model)


def merge_lora_model(model) -> Tuple[Config, int]:
    """Merge ``model``'s TA-LoRA pairs in place (see
    ``MTLoRASwinTransformer.merge_lora``) and return the config that
    builds the merged model, and the number of layers merged. Without
    task streams the config is a plain ``SwinEncoder``'s."""
    model = _model(model)
    backbone = model.backbone
    if not hasattr(backbone, 'merge_lora'):
        raise ValueError(f'{type(backbone).__name__} has no LoRA to merge '
                         f'(expected MTLoRASwinTransformer)')
    merged = backbone.merge_lora()
    cfg = copy.deepcopy(model.cfg)
    bb = cfg.model.backbone
    if backbone.lora_tasks:
        bb.lora = dict(bb.get('lora') or {}, merged=True)
    else:
        bb.type = 'SwinEncoder'
        bb.pop('lora', None)
    # The merged model is for inference: nothing is frozen by name.
    cfg.model.get('train_cfg', {}).pop('frozen', None)
    cfg.model.get('train_cfg', {}).pop('trainable', None)
    return cfg, merged


def adapter_state(model) -> Dict[str, torch.Tensor]:
    """What fine-tuning changed: every parameter that trains
    (``requires_grad``) and the buffers of the decode head (its
    BatchNorms' statistics)."""
    model = _model(model)
    state = {
        n: p.detach().clone()
        for n, p in model.named_parameters() if p.requires_grad
    }
    state.update({
        f'decode_head.{n}': b.detach().clone()
        for n, b in model.decode_head.named_buffers()
    })
    return state


def save_adapters(model, path: str, base: str = '', **write) -> int:
    """Write ``adapter_state(model)`` to ``path`` (``torch.save`` of
    tensors and strings only, read back weights-only; atomically, and
    ``write`` as :func:`mmadamtl.utils.safe_io.atomic_write`'s
    ``inputs``/``overwrite``). Returns the number of tensors."""
    state = adapter_state(model)
    write.setdefault('inputs', [base])
    save_torch(dict(state_dict=state,
                    meta=dict(format=ADAPTER_FORMAT, base=str(base))), path,
               what='adapter file', **write)
    return len(state)


def load_adapters(model, path: str) -> int:
    """Load an adapter file written by :func:`save_adapters` into
    ``model`` (whose base weights are already loaded). Every tensor of
    the file must exist in the model with its shape, and the file must
    cover every parameter that trains; returns the number loaded.

    Raises:
        ValueError: Naming the file and the keys that do not match.
    """
    model = _model(model)
    state = load_state_dict_file(path)
    expected = model.state_dict()
    unknown = [k for k in state if k not in expected]
    shapes = [k for k in state if k in expected and
              expected[k].shape != state[k].shape]
    uncovered = [n for n, p in model.named_parameters()
                 if p.requires_grad and n not in state]
    if unknown or shapes or uncovered:
        raise ValueError(
            f'adapter file {path} does not fit {type(model).__name__} '
            f'(another architecture, rank or task set?): unknown keys '
            f'{unknown[:3]}, shape mismatches {shapes[:3]}, trained '
            f'parameters it lacks {uncovered[:3]}')
    model.load_state_dict(state, strict=False)
    return len(state)
