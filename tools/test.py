"""Evaluate a multi-task checkpoint (mmseg's tools/test.py, plus
mmadamtl).

``--out DIR`` refuses a folder that is, or lies inside, a data root of
the config (predictions would replace ground truth) and existing
prediction files; ``--metrics-out`` refuses an input of the command and
an existing file. ``--overwrite`` lets both replace existing files.
``--recalibrate-bn N`` tests a controllable model's sub-network with its
BatchNorm statistics re-estimated on N training images
(``BNRecalibrationHook``).
"""
import argparse

from mmengine.dist import is_main_process
from mmengine.runner import Runner

import mmadamtl  # noqa: F401  (registers the components)
from mmadamtl.models.backbones import check_checkpoint_matches
from mmadamtl.utils import (add_common_args, load_config, set_local_rank,
                            shutdown_distributed)
from mmadamtl.utils.cli import non_negative_int
from mmadamtl.utils.safe_io import (check_output, check_outside_data,
                                    write_json)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a multi-task model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        help='the directory to save the predictions in for offline '
        'evaluation (as mmseg\'s tools/test.py: sets the evaluator\'s '
        'output_dir and keep_results)')
    parser.add_argument('--metrics-out',
                        help='dump the metrics to this JSON file')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace existing --out predictions and '
                        '--metrics-out file')
    parser.add_argument('--recalibrate-bn', type=non_negative_int, default=0,
                        metavar='N',
                        help='a controllable model: test its sub-network '
                        'with the BatchNorm statistics re-estimated on N '
                        'training images (BNRecalibrationHook; default 0: '
                        'the trained statistics)')
    add_common_args(parser)
    args = parser.parse_args()
    set_local_rank(args)
    return args


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.launcher,
                      args.work_dir)
    cfg.load_from = args.checkpoint
    inputs = [args.config, args.checkpoint]
    if args.metrics_out:
        check_output(args.metrics_out, inputs, args.overwrite,
                     '--metrics-out')
    if args.out is not None:
        check_outside_data(args.out, cfg, '--out')
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
        cfg.test_evaluator['overwrite'] = args.overwrite
    if args.recalibrate_bn:
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [dict(
            type='BNRecalibrationHook', num_images=args.recalibrate_bn)]

    runner = Runner.from_cfg(cfg)
    check_checkpoint_matches(runner.model, args.checkpoint)
    metrics = runner.test()
    if args.metrics_out and is_main_process():
        write_json(args.metrics_out, metrics, inputs=inputs,
                   overwrite=args.overwrite, what='--metrics-out')
    shutdown_distributed(runner)


if __name__ == '__main__':
    main()
