"""Building blocks of the measurement tools (tools/get_flops.py,
tools/benchmark.py, tools/sweep_budget.py, tools/visualize.py): load a
model from a config and checkpoint, get batches from the test set (or
random ones), time callables alternately, show progress."""
import contextlib
import copy
import json
import logging
import os.path as osp
import sys
import time
import warnings
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmadamtl.models.backbones.swin_checkpoint import (
    check_checkpoint_matches, load_state_dict_file)
from mmadamtl.utils import TASKS


def _config(config: Union[str, Config],
            cfg_options: Optional[dict] = None) -> Config:
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        if not osp.isfile(config):
            raise FileNotFoundError(f'config file {config} does not exist')
        cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def static_variant(config: Union[str, Config]) -> Config:
    """The config's model with mmseg's ``SwinTransformer`` (no policy):
    the static model with the same architecture and weights."""
    cfg = _config(config)
    backbone = cfg.model.backbone
    if backbone.get('type') == 'AdaptiveSwinTransformer':
        backbone.type = 'SwinTransformer'
        backbone.pop('policy', None)
    cfg.model.get('train_cfg', {}).pop('budget_loss', None)
    cfg.model.get('train_cfg', {}).pop('task_losses', None)
    cfg.model.get('test_cfg', {}).pop('budget', None)
    return cfg


def init_model(config: Union[str, Config],
               checkpoint: Optional[str] = None,
               cfg_options: Optional[dict] = None,
               device: str = 'cpu',
               state_dict: Optional[dict] = None) -> torch.nn.Module:
    """Build the model of ``config`` in eval mode and load ``checkpoint``.

    The checkpoint must match the model (a clear error names the keys
    that do not); only the policy of an adaptive model may be missing
    (a static checkpoint in an adaptive config), with a warning, leaving
    the policy at its initialisation. Without a checkpoint the weights
    are PyTorch's default initialisation (enough for FLOPs and timing).
    ``state_dict`` loads already-read weights instead of a file.
    """
    init_default_scope('mmseg')
    from mmseg.registry import MODELS

    import mmadamtl  # noqa: F401
    cfg = _config(config, cfg_options)
    model = MODELS.build(cfg.model)
    model.cfg = cfg
    model.policy_loaded = False
    if checkpoint is not None or state_dict is not None:
        where = checkpoint or 'the given state dict'
        if state_dict is None:
            if not osp.isfile(checkpoint):
                raise FileNotFoundError(
                    f'checkpoint {checkpoint} does not exist')
            state_dict = load_state_dict_file(checkpoint)
        # Only the policy may be missing (a static checkpoint).
        policy_missing = check_checkpoint_matches(
            model, where, optional=[r'(^|\.)policy\.'], state=state_dict)
        model.load_state_dict(state_dict, strict=False)
        model.policy_loaded = getattr(model, 'adaptive', False) and \
            not policy_missing
        if policy_missing:
            warnings.warn(f'{where} has no policy weights: the policy keeps '
                          f'its initialisation')
    return model.to(device).eval()


def build_test_dataset(cfg: Config, data_root: Optional[str] = None):
    """The config's test dataset, optionally from another ``data_root``."""
    init_default_scope('mmseg')
    from mmseg.registry import DATASETS
    ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    if data_root is not None:
        ds_cfg.data_root = data_root
    root = ds_cfg.get('data_root')
    if root and not osp.isdir(root):
        raise FileNotFoundError(
            f'data_root {root} of the test dataset does not exist; pass '
            f'--data-root (or --random-inputs where the tool has it)')
    return DATASETS.build(ds_cfg)


def load_batch(model, dataset, indices: Sequence[int],
               device: Optional[str] = None) -> dict:
    """Test-pipeline items ``indices`` of ``dataset``, collated and
    preprocessed by the model's data preprocessor."""
    data = pseudo_collate([dataset[i] for i in indices])
    data = model.data_preprocessor(data, False)
    if device is not None:
        data['inputs'] = data['inputs'].to(device)
        data['data_samples'] = [s.to(device) for s in data['data_samples']]
    return data


def random_batch(model, batch_size: int, shape: Sequence[int],
                 seed: int = 0, device: str = 'cpu') -> dict:
    """A preprocessed batch of noise images of ``shape`` with random
    ground truth for every task of the model (for timing without data)."""
    g = torch.Generator().manual_seed(seed)
    h, w = int(shape[0]), int(shape[1])
    inputs = torch.randn(batch_size, 3, h, w, generator=g)
    samples = []
    for _ in range(batch_size):
        sample = SegDataSample(metainfo=dict(
            ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w)))
        for task in model.tasks:
            spec = TASKS[task]
            if spec.kind in ('seg', 'binary'):
                gt = torch.randint(0, 2, (1, h, w), generator=g)
            elif spec.kind == 'normals':
                gt = torch.nn.functional.normalize(
                    torch.randn(3, h, w, generator=g), dim=0)
            else:
                gt = torch.rand(1, h, w, generator=g) + 0.5
            sample.set_field(PixelData(data=gt), spec.gt_field)
        samples.append(sample.to(device))
    return dict(inputs=inputs.to(device), data_samples=samples)


def synchronize(device: str) -> None:
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def alternate_timings(fns: Dict[str, Callable[[int], object]],
                      repeats: int,
                      warmup: int = 2,
                      steps: int = 1,
                      device: str = 'cpu',
                      desc: str = 'timing') -> Dict[str, List[float]]:
    """Seconds per round of every callable, measured alternately.

    A round calls ``fns[name](step)`` for ``step`` in ``range(steps)``
    (e.g. one call per batch); at every step all callables run one after
    the other, in an order that rotates, so that drifts of the machine
    hit all alike. ``warmup`` rounds are not timed; the result holds one
    total per timed round.
    """
    names = list(fns)
    times = {n: [] for n in names}
    for r in progress(range(warmup + repeats), desc):
        total = dict.fromkeys(names, 0.)
        for step in range(steps):
            shift = (r * steps + step) % len(names)
            for name in names[shift:] + names[:shift]:
                synchronize(device)
                start = time.perf_counter()
                fns[name](step)
                synchronize(device)
                total[name] += time.perf_counter() - start
        if r >= warmup:
            for name in names:
                times[name].append(total[name])
    return times


def progress(iterable: Iterable, desc: str, total: Optional[int] = None):
    """Iterate with a rich progress bar on stderr (stdout stays clean for
    ``--json``)."""
    from rich.console import Console
    from rich.progress import track
    console = Console(file=sys.stderr)
    if total is None and hasattr(iterable, '__len__'):
        total = len(iterable)
    yield from track(iterable, description=desc, total=total,
                     console=console, transient=False)


@torch.no_grad()
def calibrate_policy(model, inputs: torch.Tensor, budget: float,
                     iters: int = 16) -> dict:
    """Make an untrained policy execute about ``budget`` on ``inputs``.

    For timing an adaptive model that has no trained policy (e.g. Swin-T
    at 512x512 here): one offset is added to the output biases of all
    token selectors and one to those of all block selectors. Both are
    found by bisection: the token offset so that a share ``p`` of the
    tokens goes through the MLPs, the block offset so that the executed
    share of the blocks' compute is ``budget``, where ``p`` is chosen so
    that keeping a share ``p`` of the blocks and of the tokens would
    execute ``budget`` (a mix of both kinds of skipping, as a trained
    policy makes). The decisions stay input-dependent; the executed
    GFLOPs are whatever these decisions execute.
    """
    backbone = model.backbone
    policy = backbone.policy
    block_out = [s.out for s in policy.block_selectors if hasattr(s, 'out')]
    token_out = [t.out for stage in policy.token_selectors for t in stage]
    # The budget enters the logits only through a positive direct term,
    # so that lower budgets run less (an untrained policy's random
    # budget weights point anywhere).
    for m in policy.modules():
        if hasattr(m, 'budget_embed'):
            m.budget_embed.weight.zero_()
            m.budget_out.weight.fill_(1.)
    base = {m: m.bias.detach().clone() for m in block_out + token_out}
    cost = backbone.cost(inputs.shape[2:])
    attn = sum(b.attn for s in cost.stages for b in s.blocks)
    mlp = sum(b.mlp_per_token * b.tokens for s in cost.stages
              for b in s.blocks)
    if not token_out:
        p_token = 1.
    elif not block_out:
        p_token = max(0., (budget * (attn + mlp) - attn) / mlp)
    else:
        # Keeping a share p of the blocks and of their MLP tokens runs
        # p (attn + p mlp) = budget (attn + mlp).
        p_token = (-attn + (attn**2 + 4 * mlp * budget *
                            (attn + mlp))**0.5) / (2 * mlp)

    def shift(mods, offset):
        for m in mods:
            m.bias.copy_(base[m] + offset)

    def stats():
        backbone(inputs, budget=budget, tasks=model.active_tasks)
        return backbone.last_stats

    def bisect(mods, measure, target):
        lo, hi = -30., 30.
        for _ in progress(range(iters), 'calibrating the policy'):
            mid = (lo + hi) / 2
            shift(mods, mid)
            if measure() < target:
                lo = mid
            else:
                hi = mid
        shift(mods, hi)
        return hi

    token_offset = block_offset = 0.
    if token_out:
        shift(block_out, 100.)
        token_offset = bisect(
            token_out, lambda: float(stats().token_fraction.mean()),
            p_token)
    if block_out:
        block_offset = bisect(
            block_out, lambda: float(stats().block_fraction.mean()), budget)
    s = stats()
    return dict(token_offset=token_offset, block_offset=block_offset,
                block_fraction=float(s.block_fraction.mean()),
                block_keep=float(s.block_keep.mean()),
                token_keep=float(s.token_keep.mean()))


@contextlib.contextmanager
def stdout_to_stderr():
    """Send everything printed or logged (mmengine's logger included) to
    stderr, so that a tool's stdout holds only its result."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    swapped = [
        h for h in logger.handlers if isinstance(h, logging.StreamHandler)
        and getattr(h, 'stream', None) is sys.stdout
    ]
    for h in swapped:
        h.setStream(sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for h in swapped:
            h.setStream(sys.stdout)


def run_tool(argv, parse_args: Callable, work: Callable,
             render: Callable) -> dict:
    """The ``main`` of a measurement tool: parse ``argv``, run ``work``
    with every log on stderr, and print its result as one JSON object
    (``--json``) or as the table ``render`` makes of it."""
    args = parse_args(argv)
    with stdout_to_stderr():
        result = work(args)
    print(json.dumps(result) if args.json else render(result))
    return result
