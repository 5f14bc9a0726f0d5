"""The main job of `make demo`: train the static multi-task baseline on the
embedded synthetic dataset, evaluate it and print a table of the metrics.

    python tools/demo.py [--work-dir work_dirs/demo] [--retrain]

Generates data/synthetic first if it is missing or was made by an older
version of the generator. A finished training
(its final checkpoint) is reused unless --retrain is given. The table is
also saved as Markdown and JSON in the work dir.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/static_swin_synthetic.py'


def run(cmd):
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def synthetic_data_current(root: str) -> bool:
    """Whether ``root`` holds data of the current generator version."""
    from mmadamtl.datasets.synthetic import GENERATOR_VERSION
    meta = osp.join(root, 'meta.json')
    if not osp.isfile(meta):
        return False
    with open(meta, encoding='utf-8') as f:
        return json.load(f).get('version') == GENERATOR_VERSION


def metrics_table(metrics: dict) -> str:
    rows = ['| task | metric | value |', '| --- | --- | --- |']
    for key, value in metrics.items():
        task, _, name = key.partition('/')
        rows.append(f'| {task} | {name or task} | {value:.2f} |')
    return '\n'.join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/synthetic')
    parser.add_argument('--retrain', action='store_true')
    args = parser.parse_args()
    py = sys.executable
    work_dir = osp.join(ROOT, args.work_dir)
    static_dir = osp.join(work_dir, 'static')
    data_opt = [f'train_dataloader.dataset.data_root={args.data_root}',
                f'val_dataloader.dataset.data_root={args.data_root}',
                f'test_dataloader.dataset.data_root={args.data_root}']

    start = time.time()
    if not synthetic_data_current(osp.join(ROOT, args.data_root)):
        run([py, 'tools/make_synthetic_dataset.py', args.data_root])
    last = osp.join(static_dir, 'last_checkpoint')
    if args.retrain or not osp.isfile(last):
        run([py, 'tools/train.py', CONFIG, '--work-dir', static_dir,
             '--cfg-options', *data_opt])
    with open(last, encoding='utf-8') as f:
        checkpoint = f.read().strip()
    out = osp.join(work_dir, 'static_metrics.json')
    run([py, 'tools/test.py', CONFIG, checkpoint, '--work-dir', static_dir,
         '--out', out, '--cfg-options', *data_opt])
    with open(out, encoding='utf-8') as f:
        metrics = json.load(f)

    table = metrics_table(metrics)
    title = ('Static multi-task Swin on the synthetic dataset '
             f'({CONFIG}, checkpoint {osp.relpath(checkpoint, ROOT)})')
    with open(osp.join(work_dir, 'results.md'), 'w', encoding='utf-8') as f:
        f.write(f'# {title}\n\n{table}\n')
    with open(osp.join(work_dir, 'results.json'), 'w',
              encoding='utf-8') as f:
        json.dump(dict(config=CONFIG, checkpoint=checkpoint,
                       metrics=metrics), f, indent=2)
    print(f'\n{title}\n\n{table}\n')
    print(f'saved {osp.join(args.work_dir, "results.md")} and results.json '
          f'({time.time() - start:.0f}s)')


if __name__ == '__main__':
    os.environ.setdefault('PYTHONUNBUFFERED', '1')
    main()
