"""Train a multi-task model (mmseg's tools/train.py, plus mmadamtl).

One training per work dir: a second one started while the first runs is
refused (``WORK_DIR/.train.lock``; a lock left by a killed run is
replaced). ``--resume`` without a path continues from the newest
checkpoint that loads, also after a kill left ``last_checkpoint`` empty.
"""
import argparse
import contextlib
import logging

from mmengine.logging import print_log
from mmengine.runner import Runner

import mmadamtl  # noqa: F401  (registers the components)
from mmadamtl.models.backbones import check_checkpoint_matches
from mmadamtl.utils import (add_common_args, load_config, set_local_rank,
                            shutdown_distributed)
from mmadamtl.utils.schedule import scale_schedule
from mmadamtl.utils.work_dir import (launch_rank, resume_checkpoint,
                                     work_dir_lock)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a multi-task model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or, without a value, from '
        'the latest checkpoint in the work dir')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--schedule-scale',
        type=float,
        metavar='F',
        help='a quick run: multiply every iteration count of the schedule '
        '(max_iters, warm-up, validation/checkpoint/logger intervals) by F '
        'in (0, 1]')
    add_common_args(parser)
    args = parser.parse_args()
    set_local_rank(args)
    return args


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.launcher,
                      args.work_dir)
    if args.schedule_scale is not None:
        scale_schedule(cfg, args.schedule_scale)

    if args.amp:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in your config.',
                      logger='current', level=logging.WARNING)
        else:
            assert optim_wrapper == 'OptimWrapper', (
                '`--amp` is only supported when the optimizer wrapper type '
                f'is `OptimWrapper` but got {optim_wrapper}.')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    # The first process of a run holds the work dir (the other ranks of a
    # torchrun, slurm or mpi launch share it).
    first = launch_rank() == 0
    with (work_dir_lock(cfg.work_dir, log) if first
          else contextlib.nullcontext()):
        if args.resume == 'auto':
            found = resume_checkpoint(cfg.work_dir, log)
            if found is None:
                # Nothing to resume: a fresh start, from the config's
                # load_from (a previous stage) if it has one.
                cfg.resume = False
                if first:
                    log(f'--resume: no checkpoint in {cfg.work_dir}; '
                        f'training from the start (load_from: '
                        f'{cfg.get("load_from")})')
            else:
                cfg.resume = True
                cfg.load_from = found
        elif args.resume is not None:
            cfg.resume = True
            cfg.load_from = args.resume

        runner = Runner.from_cfg(cfg)
        if cfg.get('load_from') and not cfg.get('resume'):
            # Stage hand-off may add modules (missing keys are fine), but a
            # checkpoint of another architecture must not load silently.
            check_checkpoint_matches(runner.model, cfg.load_from,
                                     allow_missing=True)
        runner.train()
    shutdown_distributed(runner)


def log(msg: str) -> None:
    print_log(msg, logger='current', level=logging.WARNING)


if __name__ == '__main__':
    main()
