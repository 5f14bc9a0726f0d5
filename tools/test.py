"""Evaluate a multi-task checkpoint (mmseg's tools/test.py, plus
mmadamtl)."""
import argparse
import json
import os
import os.path as osp

from mmengine.runner import Runner

import mmadamtl  # noqa: F401  (registers the components)
from mmadamtl.models.backbones import check_checkpoint_matches
from mmadamtl.utils import (add_common_args, load_config, set_local_rank,
                            shutdown_distributed)


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
    add_common_args(parser)
    args = parser.parse_args()
    set_local_rank(args)
    return args


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.launcher,
                      args.work_dir)
    cfg.load_from = args.checkpoint
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True

    runner = Runner.from_cfg(cfg)
    check_checkpoint_matches(runner.model, args.checkpoint)
    metrics = runner.test()
    if args.metrics_out:
        os.makedirs(osp.dirname(osp.abspath(args.metrics_out)),
                    exist_ok=True)
        with open(args.metrics_out, 'w', encoding='utf-8') as f:
            json.dump(metrics, f, indent=2)
    shutdown_distributed(runner)


if __name__ == '__main__':
    main()
