"""BatchNorm recalibration of one deployed sub-network.

A slimmable decoder's switchable BatchNorms hold, per width, statistics
averaged over every encoder sub-network that fed that width in training;
the sub-network that is deployed sees other statistics. As slimmable and
once-for-all networks do, :func:`recalibrate_bn` re-estimates them on a
few hundred training images at that sub-network: running statistics
reset, a cumulative average (``momentum=None``), BatchNorms in training
mode, everything else in eval mode (no dropout or drop path), no
gradients.

The model passed in is left as it was: the recalibrated buffers are
returned, to load into the model that is deployed (e.g. the physically
narrow one of :func:`mmadamtl.apis.deploy.narrow_model`, a copy), since
in the slimmable model the same BatchNorms serve other sub-networks.
"""
import copy
import random
from typing import Dict, Iterable, List, Optional, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS
from torch.nn.modules.batchnorm import _BatchNorm

from mmadamtl.models.backbones.encoder import Control

from .inference import collate_batches

_STATS = ('running_mean', 'running_var', 'num_batches_tracked')


def train_batches(cfg: Config, num_images: int,
                  batch_size: Optional[int] = None, seed: int = 0) -> list:
    """The first ``num_images`` images of ``cfg``'s training set through
    its training pipeline (augmentations included, drawn from ``seed``:
    the same call gives the same images; the global random states are
    restored after it), collated in batches of ``batch_size`` (default:
    the ``train_dataloader``'s); raw, the model's data preprocessor still
    has to run.

    Raises:
        ValueError: ``num_images`` < 1, or more than the set holds.
    """
    if int(num_images) < 1:
        raise ValueError(f'BN recalibration needs at least one image, got '
                         f'{num_images}')
    init_default_scope('mmseg')
    dataset = DATASETS.build(copy.deepcopy(cfg.train_dataloader.dataset))
    if len(dataset) < num_images:
        raise ValueError(f'BN recalibration: {num_images} images asked for, '
                         f'the training set has {len(dataset)}')
    size = batch_size or cfg.train_dataloader.get('batch_size', 2)
    # The pipelines draw from numpy's and Python's global generators.
    states = np.random.get_state(), random.getstate()
    try:
        np.random.seed(seed)
        random.seed(seed)
        return collate_batches(dataset, int(num_images), int(size))
    finally:
        np.random.set_state(states[0])
        random.setstate(states[1])


def _images(model: nn.Module, batch: Union[dict, torch.Tensor]
            ) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    return model.data_preprocessor(batch, False)['inputs']


@torch.no_grad()
def recalibrate_bn(model: nn.Module,
                   batches: Iterable[Union[dict, torch.Tensor]],
                   control: Optional[Control] = None
                   ) -> Dict[str, torch.Tensor]:
    """Re-estimate the running statistics of the BatchNorms that run at
    ``control`` on ``batches``, and return them; ``model`` is left as it
    was (weights, buffers, modes and momenta).

    Every BatchNorm's running mean and variance become the average over
    the batches of its batch mean and (unbiased) batch variance, the
    inputs computed with every BatchNorm normalising by its batch
    statistics (PyTorch's cumulative average, ``momentum=None``).

    Args:
        model: A ``MultiTaskEncoderDecoder`` (slimmable, narrow or
            static).
        batches: Raw collated batches (e.g. :func:`train_batches`), which
            the model's data preprocessor prepares, or preprocessed image
            tensors (B, 3, H, W).
        control: The sub-network that runs (default: ``model``'s
            :meth:`control` for each batch's size).

    Returns:
        dict: ``state_dict`` keys -> tensors: ``running_mean``,
        ``running_var`` and ``num_batches_tracked`` of each BatchNorm that
        ran. ``model.load_state_dict(stats, strict=False)`` applies them.

    Raises:
        ValueError: No batches.
    """
    norms = {name: m for name, m in model.named_modules()
             if isinstance(m, _BatchNorm) and m.track_running_stats}
    saved_stats = {name: [getattr(m, k).clone() for k in _STATS]
                   for name, m in norms.items()}
    saved_momentum = {name: m.momentum for name, m in norms.items()}
    saved_modes = {name: m.training for name, m in model.named_modules()}
    ran: List[str] = []
    count = 0
    try:
        for m in norms.values():
            m.reset_running_stats()
            m.momentum = None
        for batch in batches:
            inputs = _images(model, batch)
            # Before the modes are set and the BatchNorms watched: a
            # search may count a decoder's cost with a forward in eval
            # mode (restoring the mode it found), which is not a
            # BatchNorm that ran.
            run = model.control(inputs.shape[2:]) if control is None \
                else control
            model.eval()
            for m in norms.values():
                m.train()
            hooks = [m.register_forward_pre_hook(
                lambda mod, args, name=name: ran.append(name))
                for name, m in norms.items()]
            try:
                model._decode(inputs, run.replace(captured=False))
            finally:
                for h in hooks:
                    h.remove()
            count += 1
        if not count:
            raise ValueError('BN recalibration: no batches')
        return {f'{name}.{k}': getattr(norms[name], k).clone()
                for name in dict.fromkeys(ran) for k in _STATS}
    finally:
        for name, m in norms.items():
            for k, v in zip(_STATS, saved_stats[name]):
                getattr(m, k).copy_(v)
            m.momentum = saved_momentum[name]
        for name, m in model.named_modules():
            m.training = saved_modes[name]
