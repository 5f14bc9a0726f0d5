"""Draw predictions, ground truth and the policy's decisions per image.

    python tools/visualize.py CONFIG --checkpoint F --images I [I ...]
        --out DIR [--budget B] [--tasks ...] [--data-root DIR] [--json]
        [--overwrite]

``--images``: test-set indices (``0``), image ids (``val_0003``, the file
name without extension) or image files; a file outside the test set is
shown without ground truth. For every image one PNG ``<id>.png`` in
``--out`` holds:

- the input, with the GFLOPs the image executed (and the static
  model's) in the title;
- the policy's block decisions (one row per stage, a cell per block,
  filled = ran) and one heat map per stage of the share of the stage's
  blocks that ran each token's MLP (skipped blocks count as not run);
- every task's prediction next to its ground truth.

The budget is ``--budget`` or the config's ``test_cfg.budget``; a static
config draws the predictions only.
"""
import argparse
import os
import os.path as osp
import sys

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmadamtl.apis import build_test_dataset, init_model  # noqa: E402
from mmadamtl.datasets.transforms.loading import \
    check_image_header  # noqa: E402
from mmadamtl.utils.cli import progress, run_tool  # noqa: E402
from mmadamtl.utils.safe_io import (check_outside_data,  # noqa: E402
                                    save_figure)

_UNSET = object()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw predictions and policy decisions per image')
    parser.add_argument('config')
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--images', nargs='+', required=True,
                        help='test-set indices, image ids or image files')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace figures already in --out')
    parser.add_argument('--budget', type=float, default=_UNSET)
    parser.add_argument('--tasks', nargs='+')
    parser.add_argument('--data-root', help='override the test data root')
    parser.add_argument('--json', action='store_true',
                        help='print one JSON object instead of lines')
    return parser.parse_args(argv)


def find_items(dataset, images):
    """(id, item) per requested image, in order."""
    paths = [osp.abspath(dataset.get_data_info(i)['img_path'])
             for i in range(len(dataset))]
    ids = [osp.splitext(osp.basename(p))[0] for p in paths]
    found = []
    for image in images:
        if image.isdigit():
            i = int(image)
            if i >= len(dataset):
                raise ValueError(f'--images: index {i} is out of range; '
                                 f'the test set has {len(dataset)} images')
        elif image in ids:
            i = ids.index(image)
        elif osp.abspath(image) in paths:
            i = paths.index(osp.abspath(image))
        elif osp.isfile(image):
            check_image_header(image)
            found.append((osp.splitext(osp.basename(image))[0],
                          image_only_item(dataset, image)))
            continue
        else:
            raise ValueError(f'--images: {image!r} is neither a test-set '
                             f'index, an image id (e.g. {ids[0]!r}) nor an '
                             f'image file')
        found.append((ids[i], dataset[i]))
    return found


def image_only_item(dataset, path):
    """A file outside the test set: the test pipeline without its
    annotation loading."""
    from mmcv.transforms import Compose
    steps = [t for t in dataset.pipeline.transforms
             if 'Annotation' not in type(t).__name__]
    return Compose(steps)(dict(img_path=path, task_fields=[],
                               reduce_zero_label=False, seg_fields=[]))


def colorize(spec, data, num_classes=None):
    """RGB float image of a task map (C, H, W); ignored pixels black."""
    import matplotlib
    data = np.asarray(data, dtype=np.float64)
    if spec.kind == 'seg':
        labels = data[0]
        cmap = matplotlib.colormaps['tab20']
        rgb = cmap(np.mod(labels, 20) / 19.)[..., :3]
        rgb[labels == spec.ignore_value] = 0
        return rgb
    if spec.kind == 'binary':
        m = data[0]
        rgb = np.repeat(np.clip(m, 0, 1)[..., None], 3, -1)
        rgb[m == spec.ignore_value] = [0.5, 0, 0]
        return rgb
    if spec.kind == 'normals':
        valid = np.abs(data).sum(0) > 0
        rgb = np.clip((data.transpose(1, 2, 0) + 1) / 2, 0, 1)
        rgb[~valid] = 0
        return rgb
    return data[0]


def draw(path, image, title, sample, tasks, policy, depths, **write):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mmadamtl.utils import TASKS
    stages = len(policy['token_maps']) if policy else 0
    ncols = max(4, 2 + stages)
    task_rows = -(-2 * len(tasks) // ncols)
    fig, axes = plt.subplots(1 + task_rows, ncols,
                             figsize=(2.2 * ncols, 2.3 * (1 + task_rows)),
                             dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    axes[0, 0].imshow(image)
    axes[0, 0].set_title('input', fontsize=8)
    fig.suptitle(title, fontsize=9)
    if policy:
        ax = axes[0, 1]
        ax.axis('on')
        grid = np.full((len(depths), max(depths)), np.nan)
        blocks = np.asarray(policy['blocks'])
        start = 0
        for s, d in enumerate(depths):
            grid[s, :d] = blocks[start:start + d]
            start += d
        ax.imshow(grid, cmap='Greens', vmin=-0.2, vmax=1)
        ax.set_xticks(range(max(depths)))
        ax.set_yticks(range(len(depths)),
                      [f'stage {s + 1}' for s in range(len(depths))],
                      fontsize=7)
        ax.tick_params(labelsize=7)
        ax.set_xlabel('block (dark: ran)', fontsize=7)
        ax.set_title(f"blocks run: {int(blocks.sum())}/{blocks.size}",
                     fontsize=8)
        for s, m in enumerate(policy['token_maps']):
            ax = axes[0, 2 + s]
            im = ax.imshow(np.asarray(m), cmap='magma', vmin=0, vmax=1)
            ax.set_title(f"stage {s + 1} MLP tokens "
                         f"{100 * policy['token_keep'][s]:.0f}%", fontsize=8)
        fig.colorbar(im, ax=axes[0, 1 + stages], fraction=0.046, pad=0.04)
    panels = []
    for task in tasks:
        spec = TASKS[task]
        pred = sample.get(spec.pred_field).data.cpu().numpy()
        gt = sample.get(spec.gt_field)
        gt = None if gt is None else gt.data.cpu().numpy()
        vrange = None
        if spec.kind == 'depth':
            ref = gt[gt > 0] if gt is not None and (gt > 0).any() else pred
            vrange = (float(ref.min()), float(ref.max()))
        panels.append((f'{task} pred', colorize(spec, pred), vrange))
        panels.append((f'{task} GT', None if gt is None else
                       colorize(spec, gt), vrange))
    for k, (name, img, vrange) in enumerate(panels):
        ax = axes[1 + k // ncols, k % ncols]
        if img is None:
            ax.text(0.5, 0.5, 'no ground truth', ha='center', va='center',
                    fontsize=8)
        elif img.ndim == 2:
            ax.imshow(img, cmap='viridis', vmin=vrange[0], vmax=vrange[1])
        else:
            ax.imshow(img)
        ax.set_title(name, fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, **write)
    plt.close(fig)


def visualize(args):
    import mmcv
    import torch
    from mmengine.dataset import pseudo_collate
    model = init_model(args.config, args.checkpoint)
    if args.tasks:
        model.set_active_tasks(args.tasks)
    if args.budget is not _UNSET:
        model.set_budget(args.budget)
    dataset = build_test_dataset(model.cfg, args.data_root)
    items = find_items(dataset, args.images)
    check_outside_data(args.out, model.cfg, '--out')
    inputs = [args.config, args.checkpoint] + [
        i for i in args.images if osp.isfile(i)]
    os.makedirs(args.out, exist_ok=True)
    depths = [len(s.blocks) for s in model.backbone.stages]
    written = []
    for name, item in progress(items, 'drawing'):
        with torch.no_grad():
            with model.runtime(budget=None):
                full = model.test_step(pseudo_collate([item]))[0].metainfo
            sample = model.test_step(pseudo_collate([item]))[0]
        meta = sample.metainfo
        image = mmcv.imread(meta['img_path'], channel_order='rgb')
        policy = meta.get('policy')
        budget = 'every block' if model.budget is None else \
            f'budget {model.budget:g}'
        title = (f"{name}: {meta['gflops']:.4f} GFLOPs executed "
                 f"(encoder {meta['encoder_gflops']:.4f}); every block "
                 f"{full['gflops']:.4f}; {budget}")
        path = osp.join(args.out, f'{name}.png')
        draw(path, image, title, sample, model.active_tasks, policy, depths,
             inputs=inputs, overwrite=args.overwrite)
        written.append(dict(image=name, file=path, gflops=meta['gflops'],
                            encoder_gflops=meta['encoder_gflops'],
                            full_gflops=full['gflops'],
                            blocks=policy['blocks'] if policy else None))
    return dict(config=args.config, checkpoint=args.checkpoint,
                budget=model.budget, tasks=model.active_tasks,
                images=written)


def render(r) -> str:
    return '\n'.join(
        f"{w['file']}: {w['gflops']:.4f} GFLOPs executed (every block "
        f"{w['full_gflops']:.4f})" for w in r['images'])


def main(argv=None):
    run_tool(argv, parse_args, visualize, render)


if __name__ == '__main__':
    main()
