"""Shared set-up of tools/train.py and tools/test.py."""
import os

import torch
import torch.distributed as dist
from mmengine.config import Config


def setup_launcher(cfg: Config, launcher: str) -> None:
    """Prepare a distributed run.

    mmengine's PyTorch launcher calls ``torch.cuda.set_device`` and passes
    ``device_ids=[LOCAL_RANK]`` to DDP, which both fail on a machine with no
    GPU. There the process group is started here on ``gloo`` (mmengine
    then skips its own start) and DDP gets ``device_ids=None``.
    """
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise ValueError(f'launcher {launcher!r} needs GPUs; on CPU only '
                         f'the pytorch launcher (torchrun) is supported')
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']))
    wrapper = dict(cfg.get('model_wrapper_cfg') or
                   dict(type='MMDistributedDataParallel'))
    wrapper['device_ids'] = None
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters',
                       cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
