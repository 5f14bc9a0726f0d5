"""Accuracy against executed GFLOPs over a range of budgets.

    python tools/sweep_budget.py CONFIG --checkpoint F
        --budgets 0.3 0.4 ... 1.0 [--static-config C --static-checkpoint S]
        [--budget-mode target|cap|input]
        [--metric delta_m|semseg/mIoU|...] [--out-dir DIR]
        [--num-images N] [--batch-size N] [--data-root DIR] [--json]
        [--overwrite]

Evaluates the adaptive model at every budget on the test set with the
config's evaluator (``MultiTaskMetric``), and the static model once: by
default the same weights with mmseg's ``SwinTransformer`` (every block
runs), or ``--static-config``/``--static-checkpoint`` (e.g. the separately
trained static baseline). Δm of every budget is against the static
model.

Every budget runs in ``--budget-mode`` (default: the config's
``test_cfg.budget_mode``), and each row reports the requested budget next
to the executed share of block compute (mean over the images) and the
largest image's executed encoder GFLOPs over the static encoder's.

Writes to ``--out-dir`` (default ``work_dirs/sweep_<config name>``):
- ``sweep.csv``: one row per budget (budget, mode, executed share, max
  image share, GFLOPs, encoder GFLOPs, ratios to static, Δm, every
  metric);
- ``sweep.json``: the same plus the static model's row;
- ``pareto.png``: left, ``--metric`` against executed GFLOPs, one point
  per budget, the static model as a star, the Pareto front as a line;
  right, executed share against requested budget, with the identity line
  and the +-0.03 band.
"""
import argparse
import copy
import csv
import io
import os
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmadamtl.apis import (build_test_dataset,  # noqa: E402
                           collate_batches, init_model,
                           static_counterpart)
from mmadamtl.evaluation.metrics.multi_task_metric import (  # noqa: E402
    LOWER_IS_BETTER, delta_m)
from mmadamtl.utils import TASKS  # noqa: E402
from mmadamtl.utils.safe_io import (check_output,  # noqa: E402
                                    save_figure, write_json, write_text)
from mmadamtl.utils.cli import (positive_int, progress,  # noqa: E402
                                run_tool)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Evaluate an adaptive model over a range of budgets')
    parser.add_argument('config', help='an adaptive config')
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument(
        '--budgets', type=float, nargs='+',
        default=[0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    parser.add_argument('--static-config',
                        help='config of the static model (default: CONFIG '
                        'with mmseg\'s SwinTransformer)')
    parser.add_argument('--static-checkpoint',
                        help='its weights (default: --checkpoint)')
    parser.add_argument('--budget-mode', choices=['target', 'cap', 'input'],
                        help="how budgets are met (default: the config's "
                        'test_cfg.budget_mode)')
    parser.add_argument('--metric', default='delta_m',
                        help='y axis of the plot: delta_m or a metric key '
                        'such as semseg/mIoU')
    parser.add_argument('--tasks', nargs='+', help='tasks to run')
    parser.add_argument('--out-dir')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the files of an earlier sweep')
    parser.add_argument('--num-images', type=positive_int,
                        help='evaluate only the first N test images')
    parser.add_argument('--batch-size', type=positive_int, default=4)
    parser.add_argument('--data-root', help='override the test data root')
    parser.add_argument('--json', action='store_true',
                        help='print one JSON object instead of tables')
    return parser.parse_args(argv)


def evaluate(model, batches, evaluator_cfg, desc):
    """Metrics of ``model`` on raw collated ``batches``."""
    import torch
    from mmengine.evaluator import Evaluator
    evaluator = Evaluator(copy.deepcopy(evaluator_cfg))
    evaluator.dataset_meta = batches.dataset_meta
    n = 0
    with torch.no_grad():
        for batch in progress(batches, desc):
            batch = copy.deepcopy(batch)
            outputs = model.test_step(batch)
            evaluator.process(data_samples=outputs, data_batch=batch)
            n += len(outputs)
    return evaluator.evaluate(n)


class Batches(list):
    dataset_meta: dict = {}


def load_batches(cfg, args):
    dataset = build_test_dataset(cfg, args.data_root)
    batches = Batches(collate_batches(dataset, args.num_images,
                                      args.batch_size))
    batches.dataset_meta = dataset.metainfo
    return batches, sum(len(b['inputs']) for b in batches)


def sweep(args):
    out_dir = args.out_dir or osp.join(
        'work_dirs', 'sweep_' + osp.splitext(osp.basename(args.config))[0])
    write = dict(inputs=[args.config, args.checkpoint],
                 overwrite=args.overwrite)
    # Refused before the sweep's compute, not after it.
    for name in ('sweep.csv', 'pareto.png', 'sweep.json'):
        check_output(osp.join(out_dir, name), **write)
    for b in args.budgets:
        if not 0 < b <= 1:
            raise ValueError(f'--budgets: {b} is not in (0, 1]')
    adaptive = init_model(args.config, args.checkpoint)
    if not adaptive.adaptive:
        raise ValueError(f'{args.config} has no adaptive backbone; a budget '
                         f'sweep needs AdaptiveSwinTransformer with a policy')
    cfg = adaptive.cfg
    if args.static_config:
        static = init_model(args.static_config,
                            args.static_checkpoint or args.checkpoint)
    else:
        static = static_counterpart(adaptive)
    if args.budget_mode:
        adaptive.set_budget_mode(args.budget_mode)
    if args.tasks:
        adaptive.set_active_tasks(args.tasks)
        static.set_active_tasks(args.tasks)
    batches, n = load_batches(cfg, args)
    evaluator_cfg = cfg.test_evaluator

    static_metrics = evaluate(static, batches, evaluator_cfg, 'static')
    baselines = {
        t: static_metrics[TASKS[t].main_key]
        for t in adaptive.active_tasks if TASKS[t].main_key in static_metrics
    }
    if args.metric != 'delta_m' and args.metric not in static_metrics:
        raise ValueError(f'--metric {args.metric!r} is not a metric of this '
                         f'model; choose delta_m or one of '
                         f'{sorted(static_metrics)}')

    def row(name, budget, metrics):
        return dict(model=name, budget=budget,
                    budget_mode=adaptive.budget_mode if budget else None,
                    executed_share=metrics.get('block_fraction'),
                    max_image_share=metrics.get('encoder_share_max'),
                    gflops=metrics['gflops'],
                    encoder_gflops=metrics['encoder_gflops'],
                    gflops_ratio=metrics['gflops'] / static_metrics[
                        'gflops'],
                    encoder_ratio=metrics['encoder_gflops'] /
                    static_metrics['encoder_gflops'],
                    delta_m=delta_m(metrics, baselines),
                    metrics=metrics)

    rows = []
    for b in args.budgets:
        with adaptive.runtime(budget=b):
            rows.append(row('adaptive', b, evaluate(adaptive, batches,
                                                    evaluator_cfg,
                                                    f'budget {b:g}')))
    os.makedirs(out_dir, exist_ok=True)
    result = dict(config=args.config, checkpoint=args.checkpoint,
                  static_config=args.static_config or
                  f'{args.config} with SwinTransformer',
                  num_images=n, tasks=adaptive.active_tasks,
                  metric=args.metric,
                  static=row('static', None, static_metrics), rows=rows,
                  csv=osp.join(out_dir, 'sweep.csv'),
                  plot=osp.join(out_dir, 'pareto.png'))
    write_csv(result['csv'], rows, **write)
    plot(result, result['plot'], **write)
    write_json(osp.join(out_dir, 'sweep.json'), result, **write)
    return result


# Row keys of the CSV before the metrics.
ROW_KEYS = ['budget', 'budget_mode', 'executed_share', 'max_image_share',
            'gflops', 'encoder_gflops', 'gflops_ratio', 'encoder_ratio',
            'delta_m']


def write_csv(path, rows, **write):
    metric_keys = [k for k in rows[0]['metrics']
                   if k not in ('gflops', 'encoder_gflops')]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator='\n')
    writer.writerow(ROW_KEYS + metric_keys)
    for r in rows:
        writer.writerow([r[k] for k in ROW_KEYS] +
                        [r['metrics'][k] for k in metric_keys])
    write_text(path, text.getvalue(), **write)


def value(r, metric):
    return r['delta_m'] if metric == 'delta_m' else r['metrics'][metric]


def pareto_front(points, higher_is_better=True):
    """Points not dominated (fewer GFLOPs and a better value), sorted by
    GFLOPs."""
    front, best = [], None
    for x, y in sorted(points, key=lambda p: (p[0], -p[1] if
                                              higher_is_better else p[1])):
        if best is None or (y > best if higher_is_better else y < best):
            front.append((x, y))
            best = y
    return front


def plot(result, path, **write):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    metric = result['metric']
    higher = metric.partition('/')[2] not in LOWER_IS_BETTER
    rows, static = result['rows'], result['static']
    pts = [(r['gflops'], value(r, metric)) for r in rows]
    fig, (ax, share) = plt.subplots(1, 2, figsize=(10, 4), dpi=120,
                                    gridspec_kw=dict(width_ratios=[3, 2]))
    front = pareto_front(pts + [(static['gflops'], value(static, metric))],
                         higher)
    ax.plot(*zip(*front), '-', color='0.7', zorder=1, label='Pareto front')
    ax.scatter(*zip(*pts), color='tab:blue', zorder=2,
               label='AdaMTL (budget)')
    for k, (r, (x, y)) in enumerate(zip(rows, pts)):
        # Alternate above and below: neighbouring budgets may be close.
        ax.annotate(f"{r['budget']:g}", (x, y), textcoords='offset points',
                    xytext=(4, 5 if k % 2 == 0 else -11), fontsize=8)
    ax.scatter([static['gflops']], [value(static, metric)], marker='*',
               s=160, color='tab:red', zorder=3, label='static')
    ax.set_xlabel('executed GFLOPs per image (all tasks)')
    ax.set_ylabel('Δm vs static (%)' if metric == 'delta_m' else metric)
    ax.set_title(osp.basename(result['config']), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    req = [r['budget'] for r in rows]
    share.fill_between([0, 1], [-0.03, 0.97], [0.03, 1.03], color='0.9',
                       label='requested +-0.03')
    share.plot([0, 1], [0, 1], '--', color='0.5', lw=1)
    share.plot(req, [r['executed_share'] for r in rows], 'o-',
               color='tab:blue', label='executed share (mean)')
    if any(r['max_image_share'] is not None for r in rows):
        share.plot(req, [r['max_image_share'] for r in rows], 'v',
                   color='tab:orange', label='max image encoder share')
    share.set_xlabel('requested budget')
    share.set_ylabel('executed share')
    share.set_title(f"budget_mode={rows[0]['budget_mode']}", fontsize=9)
    share.set_xlim(0, 1.02)
    share.set_ylim(0, 1.05)
    share.grid(alpha=0.3)
    share.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, **write)
    plt.close(fig)


def render(r) -> str:
    keys = [k for k in r['static']['metrics']
            if k not in ('gflops', 'encoder_gflops')]
    head = ['model', 'budget', 'mode', 'executed share', 'max image share',
            'GFLOPs', 'encoder GFLOPs', 'ratio', 'encoder ratio',
            'Δm (%)'] + keys
    lines = [f"{r['config']} ({r['checkpoint']}), {r['num_images']} test "
             f"images; static: {r['static_config']}", '',
             '| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for x in [r['static']] + r['rows']:
        budget = '-' if x['budget'] is None else f"{x['budget']:g}"
        cells = [x['model'], budget, x['budget_mode'] or '-',
                 _fmt(x['executed_share']), _fmt(x['max_image_share']),
                 f"{x['gflops']:.4f}",
                 f"{x['encoder_gflops']:.4f}", f"{x['gflops_ratio']:.3f}",
                 f"{x['encoder_ratio']:.3f}", f"{x['delta_m']:+.2f}"]
        cells += [f"{x['metrics'][k]:.2f}" for k in keys]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', f"wrote {r['csv']} and {r['plot']}"]
    return '\n'.join(lines)


def _fmt(value):
    return '-' if value is None else f'{value:.3f}'


def main(argv=None):
    run_tool(argv, parse_args, sweep, render)


if __name__ == '__main__':
    main()
