"""Swin checkpoints: conversion of the official release to mmseg's keys,
and checks that a checkpoint really belongs to the model it is loaded into.

mmseg's ``SwinTransformer.init_weights`` and mmengine's ``load_from`` load
with ``strict=False`` and stay silent about keys that do not match, so an
unconverted or foreign checkpoint would quietly leave the model random.
"""
import re
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from mmengine.model import is_model_wrapper
from mmengine.runner import CheckpointLoader

# Keys a Swin checkpoint may lack: the per-stage output norms (official
# Swin has only the last) and buffers rebuilt at construction.
SWIN_OPTIONAL_KEYS = (r'^norm[0-2]\.', r'relative_position_index$')


def _unfold_order(weight: torch.Tensor) -> torch.Tensor:
    """Reorder PatchMerging channels from the official concatenation
    ``[x(0,0), x(1,0), x(0,1), x(1,1)]`` (each over all C channels) to
    ``nn.Unfold``'s channel-major order with kernel positions
    ``(0,0), (0,1), (1,0), (1,1)``. Works on the reduction's (out, 4C)
    weight and on the norm's (4C,) vectors."""
    lead = weight.shape[:-1]
    c = weight.shape[-1] // 4
    w = weight.reshape(*lead, 4, c)[..., [0, 2, 1, 3], :]
    return w.transpose(-1, -2).reshape(*lead, 4 * c)


def convert_official_swin(state_dict: Dict[str, torch.Tensor]
                          ) -> 'OrderedDict[str, torch.Tensor]':
    """Map an official Swin (microsoft/Swin-Transformer) state dict to the
    keys of mmseg's ``SwinTransformer``. The classifier is dropped and the
    final ``norm`` becomes ``norm3``."""
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith('head.'):
            continue
        new = key
        if key.startswith('layers.'):
            new = key.replace('layers.', 'stages.', 1)
            new = new.replace('.attn.', '.attn.w_msa.')
            new = new.replace('.mlp.fc1.', '.ffn.layers.0.0.')
            new = new.replace('.mlp.fc2.', '.ffn.layers.1.')
            if '.downsample.' in key:
                value = _unfold_order(value)
        elif key.startswith('patch_embed.proj.'):
            new = key.replace('patch_embed.proj.', 'patch_embed.projection.')
        elif key.startswith('norm.'):
            new = key.replace('norm.', 'norm3.', 1)
        out[new] = value
    return out


def looks_like_official_swin(keys: Iterable[str]) -> bool:
    """Official or timm layout (``layers.<i>.blocks.<j>`` keys)."""
    return any(k.startswith('layers.') and '.blocks.' in k for k in keys)


# Every key of the official and timm (>= 0.9) Swin layouts.
_SWIN_SOURCE_KEYS = re.compile(
    r'^(patch_embed\.(proj|norm)\.(weight|bias)'
    r'|absolute_pos_embed'
    r'|layers\.\d+\.blocks\.\d+\.(norm1|norm2|attn\.qkv|attn\.proj'
    r'|mlp\.fc1|mlp\.fc2)\.(weight|bias)'
    r'|layers\.\d+\.blocks\.\d+\.attn\.relative_position_(bias_table'
    r'|index)'
    r'|layers\.\d+\.blocks\.\d+\.attn_mask'
    r'|layers\.\d+\.downsample\.(norm\.(weight|bias)|reduction\.weight)'
    r'|norm\.(weight|bias)|head\.(fc\.)?(weight|bias))$')


def swin_checkpoint_format(state_dict: Dict[str, torch.Tensor]) -> str:
    """``'official'`` (microsoft/Swin-Transformer: patch merging at the end
    of a stage, ``layers.0.downsample``), ``'timm'`` (timm >= 0.9: patch
    merging at the start of the next stage, ``layers.1.downsample``,
    ``head.fc``) or ``'mmseg'`` (``stages.<i>`` keys), told by the keys.

    Raises:
        ValueError: For any other layout, naming the keys it did not
            expect.
    """
    keys = list(state_dict)
    if any(k.startswith('stages.') for k in keys) and not any(
            k.startswith('layers.') for k in keys):
        return 'mmseg'
    unexpected = [k for k in keys if not _SWIN_SOURCE_KEYS.match(k)]
    if unexpected or not looks_like_official_swin(keys):
        raise ValueError(
            f'not a Swin checkpoint of a known layout (official, timm >= 0.9 '
            f'or mmseg): {len(unexpected)} unexpected key(s) '
            f'{unexpected[:5]}' if unexpected else
            'not a Swin checkpoint of a known layout: no '
            '"layers.<i>.blocks.<j>" or "stages.<i>" keys')
    if any(k.startswith('layers.0.downsample.') for k in keys):
        return 'official'
    if any(re.match(r'layers\.\d+\.downsample\.', k) for k in keys) or \
            any(k.startswith('head.fc.') for k in keys):
        return 'timm'
    # One stage and no classifier: both layouts are the same.
    return 'official'


def timm_to_official_swin(state_dict: Dict[str, torch.Tensor]
                          ) -> 'OrderedDict[str, torch.Tensor]':
    """A timm (>= 0.9) Swin state dict in the official layout: each patch
    merging moves from the start of stage i to the end of stage i - 1
    (timm's channel order of the merging is the official one), ``head.fc``
    becomes ``head``, and timm's buffers (``relative_position_index``,
    ``attn_mask``) are dropped (rebuilt at construction)."""
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.endswith(('relative_position_index', 'attn_mask')):
            continue
        key = re.sub(r'^layers\.(\d+)\.downsample\.',
                     lambda m: f'layers.{int(m.group(1)) - 1}.downsample.',
                     key)
        out[key.replace('head.fc.', 'head.', 1)] = value
    return out


def convert_swin_checkpoint(state_dict: Dict[str, torch.Tensor]
                            ) -> Tuple[str, 'OrderedDict[str, torch.Tensor]']:
    """Any accepted Swin layout to mmseg's: returns the detected format
    (:func:`swin_checkpoint_format`) and the converted state dict."""
    fmt = swin_checkpoint_format(state_dict)
    if fmt == 'mmseg':
        return fmt, OrderedDict(state_dict)
    if fmt == 'timm':
        state_dict = timm_to_official_swin(state_dict)
    return fmt, convert_official_swin(state_dict)


def load_state_dict_file(path: str) -> Dict[str, torch.Tensor]:
    """Load a checkpoint's weights ('state_dict', 'model' or the bare
    dict), without the 'module.' prefix of DDP checkpoints."""
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    if not isinstance(ckpt, dict):
        raise ValueError(f'{path} is not a checkpoint (got {type(ckpt)})')
    state = ckpt.get('state_dict', ckpt.get('model', ckpt))
    return OrderedDict((k[7:] if k.startswith('module.') else k, v)
                       for k, v in state.items())


def compare_state_dicts(expected: Dict[str, torch.Tensor],
                        given: Dict[str, torch.Tensor],
                        optional: Iterable[str] = ()
                        ) -> Tuple[List[str], List[str], List[str]]:
    """Missing keys, unexpected keys and keys of a different shape (keys
    matching a regex in ``optional`` may be missing)."""
    patterns = [re.compile(p) for p in optional]
    missing = [
        k for k in expected
        if k not in given and not any(p.search(k) for p in patterns)
    ]
    unexpected = [k for k in given if k not in expected]
    mismatched = [
        f'{k}: checkpoint {tuple(given[k].shape)} vs model '
        f'{tuple(v.shape)}' for k, v in expected.items()
        if k in given and hasattr(given[k], 'shape')
        and tuple(given[k].shape) != tuple(v.shape)
        and 'relative_position_bias_table' not in k
    ]
    return missing, unexpected, mismatched


def _describe(path: str, what: str, missing, unexpected, mismatched,
              keys) -> str:
    msg = [f'checkpoint {path} does not fit {what}:']
    if missing:
        msg.append(f'{len(missing)} missing key(s), e.g. {missing[:3]}')
    if unexpected:
        msg.append(f'{len(unexpected)} unexpected key(s), e.g. '
                   f'{unexpected[:3]}')
    if mismatched:
        msg.append(f'{len(mismatched)} shape mismatch(es), e.g. '
                   f'{mismatched[:3]}')
    if looks_like_official_swin(keys):
        msg.append('It looks like an official Swin checkpoint: convert it '
                   'with tools/convert_swin_checkpoint.py first.')
    return '\n  '.join(msg)


# The encoder's output norms, one per tapped stage.
TAP_NORM = re.compile(r'^norm[0-3]\.')
# MTLoRA's adapter parameters (``LoRALinear``).
ADAPTER_KEY = re.compile(r'(^|\.)(lora_[AB]|task_[AB]\.[^.]+)$')


def check_pretrained_backbone(backbone: torch.nn.Module) -> None:
    """Raise if the backbone's ``init_cfg`` names a checkpoint whose weights
    do not match it (checked before mmseg loads it non-strictly)."""
    init_cfg = getattr(backbone, 'init_cfg', None)
    if not isinstance(init_cfg, dict) or init_cfg.get(
            'type') != 'Pretrained' or not init_cfg.get('checkpoint'):
        return
    path = init_cfg['checkpoint']
    state = load_state_dict_file(path)
    prefix = init_cfg.get('prefix')
    if prefix:
        state = {k[len(prefix) + 1:]: v for k, v in state.items()
                 if k.startswith(prefix + '.')}
    elif any(k.startswith('backbone.') for k in state):
        state = {k[9:]: v for k, v in state.items()
                 if k.startswith('backbone.')}
    missing, unexpected, mismatched = compare_state_dicts(
        backbone.state_dict(), state, SWIN_OPTIONAL_KEYS)
    # An adaptive Swin's policy and MTLoRA's adapters are not part of a
    # Swin checkpoint.
    missing = [k for k in missing if not k.startswith('policy.')
               and not ADAPTER_KEY.search(k)]
    if getattr(backbone, 'out_after_downsample', False):
        # Tap norms of a checkpoint tapped before the patch mergings (a
        # static multi-task model): other widths, not loaded (see
        # SwinEncoder.load_state_dict).
        mismatched = [m for m in mismatched if not TAP_NORM.match(m)]
    if missing or mismatched:
        raise ValueError(
            _describe(path, type(backbone).__name__, missing, [], mismatched,
                      state.keys()))


def check_checkpoint_matches(model: torch.nn.Module,
                             path: str,
                             allow_missing: bool = False,
                             optional: Iterable[str] = (),
                             state: Optional[Dict[str, torch.Tensor]] = None
                             ) -> List[str]:
    """Raise if a whole-model checkpoint (``load_from``, test) was saved
    from another architecture: keys the model does not have, or shapes
    that differ. ``allow_missing`` accepts a checkpoint that covers only
    part of the model (a stage hand-off that adds modules), as long as
    it covers some of it; keys matching a regex in ``optional`` may be
    missing. ``state`` checks already-loaded weights (``path`` then only
    names them). Returns the missing ``optional`` keys."""
    if is_model_wrapper(model):
        model = model.module
    if state is None:
        state = load_state_dict_file(path)
    expected = model.state_dict()
    missing, unexpected, mismatched = compare_state_dicts(expected, state)
    patterns = [re.compile(p) for p in optional]
    skipped = [k for k in missing if any(p.search(k) for p in patterns)]
    missing = [k for k in missing if k not in skipped]
    if allow_missing and len(missing) < len(expected):
        missing = []
    if missing or unexpected or mismatched:
        raise ValueError(
            _describe(path, type(model).__name__, missing, unexpected,
                      mismatched, state.keys()))
    return skipped
