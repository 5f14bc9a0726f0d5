"""MTLoRA's Swin: the package's Swin encoder with task-agnostic low-rank
adapters in every block and task-specific ones in the last block of each
stage (Agiza, Neseem, Reda, CVPR 2024)."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmseg.registry import MODELS

from mmadamtl.utils import check_tasks

from ..layers.block_runner import FullRunner
from ..layers.lora import LoRALinear
from ..layers.mtlora_runner import MTLoRARunner
from ..utils.complexity import counted_flops
from .encoder import NO_CONTROL, Control, constant_stats
from .swin_encoder import SwinEncoder

# Where TA-LoRA may go in a Swin block (mmseg's module paths), and which
# of them may carry task-specific pairs (qkv stays shared: attention runs
# once, on the shared stream).
LORA_TARGETS = {
    'qkv': 'attn.w_msa.qkv',
    'proj': 'attn.w_msa.proj',
    'fc1': 'ffn.layers.0.0',
    'fc2': 'ffn.layers.1',
}
TASK_TARGETS = ('proj', 'fc1', 'fc2')
LORA_DEFAULTS = dict(
    r=64,
    scale=4.0,
    dropout=0.05,
    targets=('qkv', 'proj', 'fc1', 'fc2'),
    tasks=None,
    task_r=4,
    task_scale=4.0,
    task_targets=TASK_TARGETS,
    stream_dropout=True,
    downsample=False,
    merged=False)


def check_lora_cfg(lora: dict) -> dict:
    """``lora`` completed with :data:`LORA_DEFAULTS`, or a ``ValueError``
    naming the bad key."""
    unknown = set(lora) - set(LORA_DEFAULTS)
    if unknown:
        raise ValueError(f'lora: unknown key(s) {sorted(unknown)}; valid '
                         f'keys are {sorted(LORA_DEFAULTS)}')
    cfg = dict(LORA_DEFAULTS, **lora)
    for key in ('r', 'task_r'):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or \
                value <= 0:
            raise ValueError(f'lora.{key} must be an int >= 1, got '
                             f'{value!r} (leave a layer out of '
                             f'lora.targets / lora.task_targets instead)')
    for key in ('scale', 'task_scale'):
        if not isinstance(cfg[key], (int, float)) or cfg[key] <= 0:
            raise ValueError(f'lora.{key} must be > 0, got {cfg[key]!r}')
    if not isinstance(cfg['stream_dropout'], bool):
        raise ValueError(f'lora.stream_dropout must be True or False, got '
                         f'{cfg["stream_dropout"]!r}')
    if not 0 <= cfg['dropout'] < 1:
        raise ValueError(f'lora.dropout must be in [0, 1), got '
                         f'{cfg["dropout"]!r}')
    for key, allowed in (('targets', tuple(LORA_TARGETS)),
                         ('task_targets', TASK_TARGETS)):
        if isinstance(cfg[key], str):
            raise ValueError(f'lora.{key} must be a list, got '
                             f'{cfg[key]!r}')
        cfg[key] = list(cfg[key])
        for name in cfg[key]:
            if name not in allowed:
                raise ValueError(f'lora.{key}: unknown target layer '
                                 f'{name!r}; valid are {list(allowed)}')
    if cfg['tasks'] is not None:
        cfg['tasks'] = check_tasks(cfg['tasks'], where='lora.tasks')
    return cfg


def _get(module: nn.Module, path: str) -> nn.Module:
    for part in path.split('.'):
        module = getattr(module, part)
    return module


def _set(module: nn.Module, path: str, child: nn.Module) -> None:
    parent, _, name = path.rpartition('.')
    if parent:
        module = _get(module, parent)
    setattr(module, name, child)


@MODELS.register_module()
class MTLoRASwinTransformer(SwinEncoder):
    """Swin encoder with MTLoRA's adapters.

    Every argument of mmseg's ``SwinTransformer`` (and ``SwinEncoder``'s
    ``out_after_downsample``; MTLoRA taps after the patch merging) plus
    ``lora``:

    - **TA-LoRA**, task-agnostic: a shared pair of rank ``r`` on each
      layer of ``targets`` (``qkv``, ``proj``, ``fc1``, ``fc2``) of every
      block, output scale ``scale`` (4.0, not alpha / r), dropout
      ``dropout`` on its input, A Kaiming-uniform and B zero;
    - **TS-LoRA**, task-specific: in the last block of each stage, a pair
      of rank ``task_r`` per task of ``tasks`` on each layer of
      ``task_targets`` (``proj``, ``fc1``, ``fc2``), scale ``task_scale``;
      each task keeps its own residual stream through that block (see
      :class:`MTLoRARunner`) and gets its own multi-scale features;
      ``stream_dropout=False`` reads the fc1/fc2 task pairs' stream
      inputs without dropout, as the official code does (True: the
      adapters' ``dropout`` there too);
    - ``downsample=True`` (MTLoRA+): a TA pair on every patch merging's
      reduction as well.

    The base weights keep mmseg's Swin keys (the layers become
    :class:`~mmadamtl.models.layers.LoRALinear`, whose ``weight`` and
    ``bias`` are the replaced layer's), the adapters are ``lora_A``,
    ``lora_B``, ``task_A.<task>`` and ``task_B.<task>`` under them, so
    mmseg, converted and static multi-task checkpoints load unchanged.
    Which parameters train is set by the segmentor's
    ``train_cfg.frozen/trainable``.

    ``forward(x, tasks=None)`` returns ``{task: [stage maps]}`` for
    ``tasks`` (default: all of ``lora.tasks``); a model without task
    pairs returns the shared list, like mmseg's Swin.

    Args:
        lora: See :data:`LORA_DEFAULTS`; ``tasks`` is filled in from the
            decode head by ``MultiTaskEncoderDecoder``.
    """

    def __init__(self, *args, lora: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = check_lora_cfg(lora or {})
        self.lora_cfg = cfg
        tasks = cfg['tasks'] or []
        self.lora_tasks: List[str] = tasks if cfg['task_targets'] else []
        if self.lora_tasks and any(
                getattr(b, 'with_cp', False) for s in self.stages
                for b in s.blocks):
            raise ValueError('MTLoRASwinTransformer: with_cp is not '
                             'supported with task-specific adapters')
        shared = dict(scale=cfg['scale'], dropout=cfg['dropout'])
        for stage in self.stages:
            for j, block in enumerate(stage.blocks):
                # The last block of a stage forks the task streams; its
                # proj, fc1 and fc2 are LoRALinear (rank 0 where not
                # adapted) since the streams reuse their base outputs.
                fork = j == len(stage.blocks) - 1 and bool(self.lora_tasks)
                for name, path in LORA_TARGETS.items():
                    ts = fork and name in cfg['task_targets']
                    # After merge_lora only the forking layers keep
                    # their TA pairs (their streams read W x, unmerged).
                    ta = name in cfg['targets'] and (
                        not cfg['merged'] or (fork and name in TASK_TARGETS))
                    if not (ta or ts or (fork and name in TASK_TARGETS)):
                        continue
                    layer = LoRALinear.from_linear(
                        _get(block, path), rank=cfg['r'] if ta else 0,
                        tasks=self.lora_tasks if ts else (),
                        task_rank=cfg['task_r'],
                        task_scale=cfg['task_scale'],
                        task_dropout=name == 'proj' or
                        bool(cfg['stream_dropout']), **shared)
                    layer.forks = fork and name in TASK_TARGETS
                    _set(block, path, layer)
            if cfg['downsample'] and not cfg['merged'] and \
                    stage.downsample is not None:
                stage.downsample.reduction = LoRALinear.from_linear(
                    stage.downsample.reduction, rank=cfg['r'], **shared)
        self._flops: Dict[tuple, float] = {}

    def lora_layers(self) -> Dict[str, LoRALinear]:
        """Every adapted layer by its module path."""
        return {
            n: m
            for n, m in self.named_modules() if isinstance(m, LoRALinear)
        }

    def init_weights(self) -> None:
        super().init_weights()
        # mmseg's init re-draws every Linear's weight and bias only; the
        # adapters start as A Kaiming-uniform, B zero.
        for layer in self.lora_layers().values():
            layer.reset_adapters()

    def _run_tasks(self, tasks: Optional[Sequence[str]]) -> List[str]:
        if tasks is None:
            return list(self.lora_tasks)
        return check_tasks(tasks, where='MTLoRASwinTransformer tasks')

    @classmethod
    def complete_config(cls, cfg: dict, tasks: Sequence[str]) -> dict:
        """``lora.tasks`` defaults to the heads' tasks, and each task with
        adapters needs a decoder."""
        lora = dict(cfg.get('lora') or {})
        if lora.get('tasks') is None:
            lora['tasks'] = list(tasks)
        else:
            for task in lora['tasks']:
                if task not in tasks:
                    raise ValueError(
                        f'backbone.lora.tasks: task {task!r} has no decoder '
                        f'in decode_head.tasks {list(tasks)}')
        return dict(cfg, lora=lora)

    @classmethod
    def static_config(cls, cfg: dict) -> dict:
        """The package's ``SwinEncoder`` with the same arguments, no
        adapters."""
        cfg = {k: v for k, v in cfg.items() if k != 'lora'}
        return dict(cfg, type='SwinEncoder')

    @property
    def controls(self):
        """``tasks``: the task streams that run."""
        return frozenset({'tasks'})

    def streams(self, x: torch.Tensor,
                tasks: Optional[Sequence[str]] = None):
        """Stage features: ``{task: [maps]}`` for ``tasks`` (default: the
        tasks with adapters), or the shared list for a model without
        task-specific adapters."""
        if not self.lora_tasks:
            return self.run_stages(x, FullRunner())
        return self.run_stages(x, MTLoRARunner(self, self._run_tasks(tasks)))

    def forward(self, x: torch.Tensor, control: Optional[Control] = None):
        """The streams of ``control.tasks`` alone (no cost count)."""
        control = NO_CONTROL if control is None else control
        self.check_control(control)
        return self.streams(x, control.tasks)

    def encode(self, x: torch.Tensor, control: Control = NO_CONTROL):
        """The streams of ``control.tasks`` and their cost (adapters and
        task streams included, :meth:`encoder_flops`)."""
        self.check_control(control)
        feats = self.streams(x, control.tasks)
        flops = self.encoder_flops(x.shape[2:], control.tasks)
        return feats, constant_stats(flops, x.shape[0], x.device)

    @torch.no_grad()
    def merge_lora(self) -> int:
        """Fold the TA-LoRA pairs into their frozen weights (``W + s B A``)
        where that leaves the forward unchanged: everywhere except in the
        layers the task streams fork from (``proj``, ``fc1``, ``fc2`` of
        the last block of each stage, whose streams read the unmerged
        ``W x``), and the task pairs stay. Returns the number of layers
        merged. The model then matches its config with
        ``lora.merged=True``; without task streams that is mmseg's Swin
        (``SwinEncoder``) with merged weights."""
        merged = 0
        for layer in self.lora_layers().values():
            if layer.rank and not layer.forks:
                layer.merge()
                merged += 1
        self.lora_cfg = dict(self.lora_cfg, merged=True)
        self._flops.clear()
        return merged

    def encoder_flops(self, img_hw: Sequence[int],
                      tasks: Optional[Sequence[str]] = None) -> float:
        """Multiply-adds of one image's forward at ``img_hw`` running
        ``tasks``' streams, by mmengine's counter (adapters and task
        streams included), counted once per size and task set."""
        tasks = self._run_tasks(tasks) if self.lora_tasks else []
        key = (tuple(int(v) for v in img_hw), tuple(tasks))
        if key not in self._flops:
            encoder = self

            class _Flat(nn.Module):

                def __init__(self):
                    super().__init__()
                    self.encoder = encoder

                def forward(self, x):
                    out = self.encoder.streams(x, tasks or None)
                    if isinstance(out, dict):
                        return tuple(m for t in tasks for m in out[t])
                    return tuple(out)

            p = next(self.parameters())
            x = torch.zeros(1, 3, *key[0], dtype=p.dtype, device=p.device)
            was_training = self.training
            self.eval()
            try:
                with torch.no_grad():
                    self._flops[key] = counted_flops(_Flat(), x)
            finally:
                self.train(was_training)
        return self._flops[key]
