"""Inference helpers, as mmseg's ``apis/inference.py``: build a model from
a config and checkpoint, its static counterpart, and test batches (from
the test set or random)."""
import copy
import os.path as osp
import warnings
from typing import Optional, Sequence, Union

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample

from mmadamtl.models.backbones.encoder import static_encoder_config
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
    """The config's model with its encoder's static counterpart
    (``MultiTaskEncoder.static_config``: mmseg's ``SwinTransformer`` for
    AdaMTL's, the package's ``SwinEncoder`` for MTLoRA's): the static model
    with the same architecture and base weights."""
    cfg = _config(config)
    adapters = 'lora' in cfg.model.backbone
    cfg.model.backbone = static_encoder_config(cfg.model.backbone)
    train_cfg = cfg.model.get('train_cfg', {})
    if adapters:
        # The adapters' freezing goes with them.
        train_cfg.pop('frozen', None)
        train_cfg.pop('trainable', None)
    train_cfg.pop('budget_loss', None)
    train_cfg.pop('task_losses', None)
    cfg.model.get('test_cfg', {}).pop('budget', None)
    cfg.model.get('test_cfg', {}).pop('captured', None)
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

    Returns:
        The model, with its config as ``model.cfg`` and
        ``model.policy_loaded`` telling whether trained policy weights
        were loaded.
    """
    init_default_scope('mmseg')
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


def static_counterpart(model: torch.nn.Module, device: str = 'cpu'
                       ) -> torch.nn.Module:
    """The static model of ``model``'s config (:func:`static_variant`)
    with ``model``'s weights for every key it has (an adaptive model's
    policy and MTLoRA's adapters are not part of it; a key it lacks
    raises): what the tools compare an efficient model with."""
    static = init_model(static_variant(model.cfg), device=device)
    own = static.state_dict()
    static.load_state_dict({k: v for k, v in model.state_dict().items()
                            if k in own})
    return static


def build_test_dataset(cfg: Config, data_root: Optional[str] = None):
    """The config's test dataset, optionally from another ``data_root``."""
    init_default_scope('mmseg')
    ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    if data_root is not None:
        ds_cfg.data_root = data_root
    root = ds_cfg.get('data_root')
    if root and not osp.isdir(root):
        raise FileNotFoundError(
            f'data_root {root} of the test dataset does not exist; pass '
            f'--data-root (or --random-inputs where the tool has it)')
    return DATASETS.build(ds_cfg)


def collate_batches(dataset, num_images: Optional[int],
                    batch_size: int) -> list:
    """The first ``num_images`` items of ``dataset`` (all when None),
    collated in batches of ``batch_size``; raw, the model's data
    preprocessor still has to run."""
    n = len(dataset) if num_images is None else min(num_images,
                                                    len(dataset))
    return [
        pseudo_collate([dataset[i]
                        for i in range(s, min(s + batch_size, n))])
        for s in range(0, n, batch_size)
    ]


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


def measurement_batches(model, cfg: Config, steps: int, batch_size: int,
                        shape: Optional[Sequence[int]] = None,
                        random_inputs: bool = False,
                        data_root: Optional[str] = None,
                        device: str = 'cpu') -> tuple:
    """``steps`` preprocessed batches of ``batch_size`` for the measuring
    tools: the test set's first images (cycled), or with
    ``random_inputs`` noise images of ``shape`` (default: the config's
    ``crop_size``). Returns the batches and a description of them."""
    if random_inputs:
        shape = list(shape or cfg.get('crop_size', (512, 512)))
        batches = [random_batch(model, batch_size, shape, seed=s,
                                device=device) for s in range(steps)]
        return batches, f'{steps * batch_size} noise images ' \
            f'{shape[0]}x{shape[1]}'
    dataset = build_test_dataset(cfg, data_root)
    if len(dataset) < batch_size:
        raise ValueError(f'the test set has {len(dataset)} images, fewer '
                         f'than --batch-size {batch_size}')
    batches = [
        load_batch(model, dataset, [(s * batch_size + k) % len(dataset)
                                    for k in range(batch_size)], device)
        for s in range(steps)
    ]
    shapes = sorted({tuple(b['inputs'].shape[2:]) for b in batches})
    return batches, f'{steps * batch_size} test images ' + ', '.join(
        f'{h}x{w}' for h, w in shapes)
