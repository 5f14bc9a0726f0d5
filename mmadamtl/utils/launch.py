"""Shared set-up of tools/train.py and tools/test.py."""
import logging
import os
import os.path as osp
import sys
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction


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


def shutdown_distributed(runner=None) -> None:
    """End a finished distributed run cleanly; nothing in a
    single-process run.

    Destroys the process group, flushes the logs, closes the runner's
    visualizer, and ends the process with ``os._exit(0)``. Letting the
    interpreter shut down instead sometimes aborts a rank with
    "terminate called without an active exception" (a C++ thread of the
    distributed stack destroyed at exit; pytorch issue 190489 and PR
    179291). We saw that with gloo on CPU in about one run in five, after
    training had finished and every checkpoint had been written. Call it
    only after a successful run: a rank that failed must not wait at the
    barrier.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    dist.destroy_process_group()
    if runner is not None and getattr(runner, 'visualizer', None):
        runner.visualizer.close()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def load_config(config: str,
                cfg_options: Optional[dict] = None,
                launcher: str = 'none',
                work_dir: Optional[str] = None) -> Config:
    """Read a config as mmseg's tools do: apply ``--cfg-options``, set up
    the launcher, and default the work dir to ``work_dirs/<config name>``.
    """
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    setup_launcher(cfg, launcher)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])
    return cfg


def add_common_args(parser) -> None:
    """Arguments tools/train.py and tools/test.py share with mmseg's."""
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def set_local_rank(args) -> None:
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
