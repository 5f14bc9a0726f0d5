"""Train single-task reference models and write their main metrics to the
baselines file that multi-task configs read for Δm.

    python tools/single_task_baselines.py CONFIG [CONFIG ...] --out FILE
        [--work-dir-root work_dirs/single_task] [--retrain]
        [--cfg-options key=value ...]

Each CONFIG is a single-task config (``configs/single_task/``: one task,
the multi-task model's backbone, decoder, loss and schedule). For each,
the tool trains it with tools/train.py into ``WORK_DIR_ROOT/<task>``
unless a finished run is there (its ``last_checkpoint`` names a
checkpoint saved at the config's ``max_iters``; runs trained elsewhere,
e.g. with tools/dist_train.sh on GPUs, are reused the same way; an
unfinished run is resumed), evaluates that checkpoint with tools/test.py,
and writes (atomically; an existing FILE only with ``--overwrite``)

    {"baselines": {"<task>": {"value": ..., "metric": "<task>/<name>",
                              "config": ..., "checkpoint": ...,
                              "max_iters": ...}, ...},
     "command": "..."}

A multi-task config then reads it::

    val_evaluator = dict(type='MultiTaskMetric',
                         single_task_baselines='FILE')

Example (all six synthetic single-task models, as ``make demo`` does)::

    python tools/single_task_baselines.py \\
        configs/single_task/static_swin_synthetic_1400it_*.py \\
        --work-dir-root work_dirs/demo/single_task \\
        --out work_dirs/demo/single_task/baselines.json
"""
import argparse
import json
import os.path as osp
import shlex
import subprocess
import sys

from mmengine.config import Config, DictAction

from mmadamtl.utils.safe_io import check_output, write_json
from mmadamtl.utils.schedule import scale_schedule
from mmadamtl.utils.work_dir import finished_checkpoint

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train single-task models and write the Δm baselines')
    parser.add_argument('configs', nargs='+', help='single-task configs')
    parser.add_argument('--out', required=True,
                        help='the baselines JSON file to write')
    parser.add_argument('--work-dir-root', default='work_dirs/single_task',
                        help='each task trains in WORK_DIR_ROOT/<task>')
    parser.add_argument('--retrain', action='store_true',
                        help='train again even where a finished run is')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing --out file')
    parser.add_argument('--schedule-scale', type=float, default=1.0,
                        metavar='F',
                        help='a quick run: each training F of its '
                        'iterations (tools/train.py --schedule-scale), no '
                        'validation during training')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        default={},
                        help='passed to tools/train.py and tools/test.py')
    return parser.parse_args(argv)


def single_task(config: str, options: dict = None,
                scale: float = 1.0) -> tuple:
    """``(task, max_iters)`` of a single-task config (with the
    ``--cfg-options`` and the schedule scale); an error naming the config
    if it has more or fewer than one task."""
    from mmadamtl.utils import TASKS
    if not osp.isfile(config):
        raise FileNotFoundError(f'config not found: {config}')
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(dict(options or {}))
    tasks = list(cfg.model.decode_head.get('tasks', {}))
    if len(tasks) != 1:
        raise ValueError(
            f'{config}: a single-task config has exactly one task in '
            f'model.decode_head.tasks, this one has {tasks}')
    if tasks[0] not in TASKS:
        raise ValueError(f'{config}: unknown task {tasks[0]!r}')
    if scale != 1:
        scale_schedule(cfg, scale)
    return tasks[0], cfg.get('train_cfg', {}).get('max_iters')


def _run(tool, args):
    """Run one of tools/ (paths stay relative to the caller's cwd)."""
    cmd = [sys.executable, osp.join(ROOT, 'tools', tool)] + args
    print('+', ' '.join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True)


def _options(opts: dict) -> list:
    return [f'{k}={v}' for k, v in opts.items()]


def main(argv=None) -> dict:
    args = parse_args(argv)
    from mmadamtl.utils import TASKS
    plan = {}
    for config in args.configs:
        task, iters = single_task(config, args.cfg_options,
                                  args.schedule_scale)
        if task in plan:
            raise ValueError(f'task {task!r} given twice: {plan[task][0]} '
                             f'and {config}')
        plan[task] = (config, iters)
    check_output(args.out, args.configs, args.overwrite, '--out')
    opts = _options(args.cfg_options)
    quick = [] if args.schedule_scale == 1 else [
        '--schedule-scale', repr(args.schedule_scale), '--cfg-options',
        f'train_cfg.val_begin={10**9}']
    baselines = {}
    for task, (config, iters) in plan.items():
        work_dir = osp.join(args.work_dir_root, task)
        found = None if args.retrain else finished_checkpoint(work_dir,
                                                              iters)
        if found is None:
            resume = [] if args.retrain else ['--resume']
            _run('train.py', [config, '--work-dir', work_dir] + resume +
                 quick + (['--cfg-options', *opts] if opts else []))
            found = finished_checkpoint(work_dir, iters)
            if found is None:
                raise RuntimeError(f'{task}: the training in {work_dir} did '
                                   f'not reach max_iters={iters}')
        else:
            print(f'{task}: reusing the finished training in {work_dir} '
                  f'(iteration {found[1]})')
        ckpt = found[0]
        out = osp.join(work_dir, 'test_metrics.json')
        _run('test.py', [config, ckpt, '--work-dir', work_dir,
                         '--metrics-out', out, '--overwrite'] +
             (['--cfg-options', *opts] if opts else []))
        with open(out, encoding='utf-8') as f:
            metrics = json.load(f)
        key = TASKS[task].main_key
        if key not in metrics:
            raise KeyError(f'{config}: the test gave no {key} '
                           f'(got {sorted(metrics)})')
        baselines[task] = dict(value=metrics[key], metric=key,
                               config=config, checkpoint=ckpt,
                               max_iters=iters, trained_iters=found[1])
        print(f'{task}: {key} = {metrics[key]:.4f}')
    result = dict(
        baselines=baselines,
        command=' '.join(['python', 'tools/single_task_baselines.py'] +
                         [shlex.quote(a) for a in (argv if argv is not None
                                                   else sys.argv[1:])]))
    write_json(args.out, result, inputs=args.configs,
               overwrite=args.overwrite, what='--out')
    print(f'wrote {args.out}')
    return result


if __name__ == '__main__':
    main()
