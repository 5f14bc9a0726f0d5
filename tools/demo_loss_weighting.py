"""The loss-weighting part of `make demo`: fixed task weights against
uncertainty weighting, DWA and GradNorm on the synthetic data.

    python tools/demo_loss_weighting.py [--work-dir work_dirs/demo]
                                        [--retrain] [--timing-iters 120]
                                        [--schedule-scale F]

1. train (or reuse) configs/ablations/static_swin_synthetic_{uncertainty,
   dwa,gradnorm}.py, each 800 iterations like the fixed-weight static model
   (configs/static_swin_synthetic.py, AdaMTL's stage 1, reused);
2. evaluate each with tools/test.py;
3. time training: ``--timing-iters`` iterations of each config (more than
   the 100 warm-up iterations of its schedule), run one after the other in
   fresh processes, median iteration time after the first 20
   (tools/train_time.py);
4. print one table: per-task main metrics, Δm against the fixed-weight
   model and against the single-task models (the baselines file
   tools/demo.py writes), training ms/iteration; save it as Markdown and
   JSON in the work dir.
"""
import argparse
import json
import os
import os.path as osp
import sys

from demo_common import (ROOT, STATIC, TASK_COLUMNS, add_demo_args,
                         data_options, demo_paths, evaluate, fmt,
                         quick_banner, run, train)

from mmadamtl.utils.safe_io import write_json, write_text

WEIGHTINGS = [('fixed weights', None),
              ('uncertainty (Kendall et al.)', 'uncertainty'),
              ('DWA (Liu et al.)', 'dwa'),
              ('GradNorm (Chen et al.)', 'gradnorm')]


def config_of(key):
    return STATIC if key is None else \
        f'configs/ablations/static_swin_synthetic_{key}.py'


def iteration_ms(config, work_dir, data_opt, iters, scale=1.0):
    """Median training iteration time (ms) of a short fresh run of
    ``iters`` iterations (its schedule scaled by ``scale`` as the
    trainings' are, so that a quick run's warm-up fits in it)."""
    from mmadamtl.utils.timing import iteration_times
    import statistics
    full = round(iters / scale)
    quick = [] if scale == 1 else [
        '--schedule-scale', repr(scale), '--cfg-options',
        f'train_cfg.val_begin={10**9}']
    run([sys.executable, 'tools/train.py', config, '--work-dir', work_dir,
         *quick, '--cfg-options', *data_opt, f'train_cfg.max_iters={full}',
         f'train_cfg.val_interval={full + 1}',
         'default_hooks.logger.interval=1',
         f'default_hooks.checkpoint.interval={full + 1}'])
    return 1e3 * statistics.median(iteration_times(work_dir, skip=20))


def quick_options(key, scale):
    """DWA's period counts iterations too: a quick run scales it with the
    schedule."""
    if key != 'dwa' or scale == 1:
        return []
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, config_of(key)))
    period = cfg.model.decode_head.loss_weighting.interval
    return [f'model.decode_head.loss_weighting.interval='
            f'{max(1, round(period * scale))}']


def report(work_dir, data_opt, retrain=False, timing_iters=120, scale=1.0,
           data_root='data/synthetic'):
    from mmadamtl.evaluation.metrics.multi_task_metric import delta_m
    from mmadamtl.utils import TASKS
    single_path = osp.join(work_dir, 'single_task', 'baselines.json')
    with open(single_path, encoding='utf-8') as f:
        single = {t: e['value'] for t, e in
                  json.load(f)['baselines'].items()}
    rows = []
    for name, key in WEIGHTINGS:
        run_dir = osp.join(work_dir, 'static' if key is None else
                           osp.join('loss_weighting', key))
        ckpt = train(config_of(key), run_dir, data_opt, retrain,
                     options=quick_options(key, scale), scale=scale)
        metrics = evaluate(
            config_of(key), ckpt, osp.join(work_dir, 'eval'),
            osp.join(work_dir, f"loss_weighting_{key or 'fixed'}_metrics"
                     '.json'), data_opt, {})
        rows.append(dict(name=name, key=key, config=config_of(key),
                         checkpoint=osp.relpath(ckpt, ROOT),
                         metrics=metrics))
    for r in rows:
        r['iter_ms'] = iteration_ms(
            r['config'], osp.join(work_dir, 'loss_weighting_timing',
                                  r['key'] or 'fixed'), data_opt,
            timing_iters, scale)
    fixed = {t: rows[0]['metrics'][TASKS[t].main_key] for t in TASK_COLUMNS}
    for r in rows:
        r['delta_m_fixed'] = delta_m(r['metrics'], fixed)
        r['delta_m_single'] = delta_m(r['metrics'], single)
    specs = [TASKS[t] for t in TASK_COLUMNS]
    head = ['loss weighting'] + [s.label for s in specs] + [
        'Δm vs fixed (%)', 'Δm vs single-task (%)',
        'train ms/iter', 'train time vs fixed']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for r in rows:
        m = r['metrics']
        lines.append('| ' + ' | '.join(
            [r['name']] + [f'{m[s.main_key]:.2f}' for s in specs] +
            [fmt(r['delta_m_fixed'], '{:+.2f}'),
             fmt(r['delta_m_single'], '{:+.2f}'), f"{r['iter_ms']:.0f}",
             f"{r['iter_ms'] / rows[0]['iter_ms']:.2f}"]) + ' |')
    table = '\n'.join(lines)
    title = ('Loss weighting on the synthetic dataset (static multi-task '
             f'Swin, 800 iterations each, CPU, {os.cpu_count()} cores)')
    notes = ('Every model: the same data, seed and 800 iterations; '
             'weightings act on top of the fixed task weights. Δm vs '
             'single-task: against the single-task models of '
             f'{osp.relpath(single_path, ROOT)} (1400 iterations, so '
             'these 800-iteration models trained less). Training time: '
             f'median of iterations 21-{timing_iters} of a fresh run of '
             'each config, one after the other.')
    text = (f'# {title}\n\n{quick_banner(scale, data_root)}{table}\n\n'
            f'{notes}\n')
    write_text(osp.join(work_dir, 'loss_weighting_results.md'), text,
               overwrite=True)
    write_json(osp.join(work_dir, 'loss_weighting_results.json'),
               dict(title=title, schedule_scale=scale, rows=rows,
                    single_task_baselines=single), overwrite=True)
    print(f'\n{text}')
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_demo_args(parser)
    parser.add_argument('--timing-iters', type=int, default=120)
    args = parser.parse_args()
    demo_paths(args)
    report(osp.join(ROOT, args.work_dir), data_options(args.data_root),
           args.retrain, args.timing_iters, args.schedule_scale,
           args.data_root)


if __name__ == '__main__':
    os.environ.setdefault('PYTHONUNBUFFERED', '1')
    main()
