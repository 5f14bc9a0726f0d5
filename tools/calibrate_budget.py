"""Measure an adaptive checkpoint's budget curve (for budget_mode='target'
and 'cap') and write the checkpoint with it.

    python tools/calibrate_budget.py CONFIG CHECKPOINT --out OUT.pth
        [--num-images 64] [--batch-size 8] [--data-root DIR] [--json]
        [--overwrite]

OUT.pth must differ from CHECKPOINT (the input is never written) and may
exist only with ``--overwrite``; it is written atomically.

Checkpoints trained with ``BudgetCalibrationHook`` (the joint AdaMTL
recipes) already hold their curve; this tool measures it for others (or
on other images). The images are the first ``--num-images`` of the
config's train dataset, read through its test pipeline. Prints the curve
(budget input -> mean executed share of block compute).
"""
import argparse
import json
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    from mmadamtl.utils.cli import positive_int
    parser = argparse.ArgumentParser(
        description="Measure an adaptive checkpoint's budget curve")
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True,
                        help='checkpoint to write (with the curve)')
    parser.add_argument('--num-images', type=positive_int, default=64)
    parser.add_argument('--batch-size', type=positive_int, default=8)
    parser.add_argument('--data-root', help='override the train data root')
    parser.add_argument('--json', action='store_true')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing --out file')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmadamtl.apis import init_model
    from mmadamtl.engine.hooks.budget_calibration_hook import (
        calibration_batches, calibration_dataset)
    from mmadamtl.models.policies import CALIBRATION_GRID, calibrate_budget
    from mmadamtl.utils import load_checkpoint_file

    from mmadamtl.utils.safe_io import check_output, save_torch

    sources = [args.config, args.checkpoint]
    check_output(args.out, sources, args.overwrite)
    model = init_model(args.config, args.checkpoint)
    if not model.adaptive:
        raise ValueError(f'{args.config} has no adaptive backbone: nothing '
                         f'to calibrate')
    cfg = model.cfg
    if args.data_root:
        cfg.train_dataloader.dataset.data_root = args.data_root
    batches = calibration_batches(calibration_dataset(cfg), args.num_images,
                                  args.batch_size)
    inputs = [model.data_preprocessor(b, False)['inputs'] for b in batches]
    curve = calibrate_budget(model.backbone, inputs, model.tasks,
                             show_progress=True)
    ckpt = load_checkpoint_file(args.checkpoint)
    state = ckpt.get('state_dict', ckpt)
    state['backbone.policy.budget_curve'] = \
        model.backbone.policy.budget_curve.clone()
    save_torch(ckpt, args.out, inputs=sources, overwrite=args.overwrite)
    result = dict(checkpoint=args.out,
                  curve=dict(zip(map(float, CALIBRATION_GRID),
                                 map(float, curve))))
    if args.json:
        print(json.dumps(result))
    else:
        for b, c in result['curve'].items():
            print(f'{b:5.2f} -> {c:.3f}')
        print(f'saved {args.out}')


if __name__ == '__main__':
    main()
