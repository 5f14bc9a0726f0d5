"""The controllable-widths part of `make demo`: one trained model, any
compute budget and task preference after deployment, on CPU.

    python tools/demo_controllable.py [--work-dir work_dirs/demo] [--retrain]
                                      [--schedule-scale F]

1. train the super-network (configs/controllable_swin_synthetic.py, the
   static model's 800 iterations, sandwich rule with CI-KD; the last 32
   training images held out);
2. measure the lookup table on the held-out images (tools/controllable.py
   table: every stage-uniform encoder at every decoder width), and the
   same grid on the validation set, for reporting (a task's output
   depends only on the encoder and its own decoder's width, so any
   configuration's validation metrics and losses are read from it);
3. budget control: budgets from the cheapest configuration's share to 1,
   times 20 preferences sampled uniformly from the simplex: the share of
   requests whose executed GFLOPs stay within budget and the mean
   |executed - budget| / budget; a sample of them run through
   ``model.predict`` to check that the GFLOPs in the predictions'
   metainfo are the searched ones; CPU latency (batch 1, alternating)
   next to GFLOPs at a few budgets;
4. task control at budgets 1.0 and 0.5 over the 20 preferences: per task
   Spearman's rho between its preference and its normalised score,
   uniformity and hypervolume (DYMU's protocol);
5. accuracy: Δm against the static multi-task model (same 800
   iterations, same data) of the widest, the narrowest and the
   uniform-preference configurations, one request also through
   tools/test.py; a Pareto plot (GFLOPs vs Δm) next to AdaMTL's budget
   rows of the same demo;
6. print the tables and save them (controllable_results.{md,json},
   controllable_pareto.png) in the work dir.

Finished trainings are reused unless --retrain is given.
"""
import argparse
import json
import os
import os.path as osp
import time

from demo_common import (CONTROLLABLE, ROOT, STATIC, TASK_COLUMNS,
                         add_demo_args, demo_paths, ensure_synthetic_data,
                         evaluate, quick_banner, train)

from mmadamtl.utils.safe_io import save_figure, write_json, write_text

NUM_PREFS = 20
TASK_BUDGETS = (1.0, 0.5)


def measure(work_dir, data_root, retrain, scale=1.0):
    """Train (or reuse) and measure the held-out table and the validation
    grid."""
    from mmengine.config import Config

    from mmadamtl.apis import (build_table, build_test_dataset,
                               collate_batches, heldout_batches, init_model,
                               measure_configs)

    data_opt = [f'{k}.dataset.data_root={data_root}'
                for k in ('train_dataloader', 'val_dataloader',
                          'test_dataloader', 'lookup_dataloader')]
    start = time.time()
    ckpt = train(CONTROLLABLE, osp.join(work_dir, 'controllable'),
                 data_opt[:3], retrain,
                 options=[data_opt[3]], scale=scale)
    train_s = time.time() - start
    opts = {o.split('=')[0]: o.split('=')[1] for o in data_opt}
    model = init_model(osp.join(ROOT, CONTROLLABLE), ckpt, cfg_options=opts)
    dataset, batches = heldout_batches(model)
    table = build_table(model, dataset, batches)
    table.source['checkpoint'] = ckpt
    table_path = osp.join(osp.dirname(ckpt), 'lookup_table.json')
    # The demo's own table, measured anew on every run.
    table.save(table_path, overwrite=True)
    val = build_test_dataset(Config.fromfile(osp.join(ROOT, CONTROLLABLE)),
                             data_root)
    grid = measure_configs(model, collate_batches(val, None, 4),
                           model.cfg.test_evaluator, val.metainfo)
    model.test_cfg['lookup_table'] = table_path
    return model, ckpt, table_path, grid, train_s, data_opt


def budget_control_figures(model, grid, val_batch):
    """Budget control over budgets x sampled preferences, metainfo checks
    and latency rows."""
    import numpy as np
    import torch

    from mmadamtl.evaluation import budget_control, simplex_samples
    from mmadamtl.utils.timing import alternate_timings

    hw = tuple(grid['img_size'])
    tasks = model.tasks
    top = model.max_flops(hw)
    cheapest = model.subnet_flops(hw, 'min',
                                  dict.fromkeys(tasks, model.widths[0]))
    lo = float(np.ceil(cheapest / top * 100) / 100)
    budgets = [float(b) for b in np.round(np.linspace(lo, 1.0, 8), 3)]
    prefs = simplex_samples(NUM_PREFS, len(tasks), seed=0)
    executed, asked, rows = [], [], []
    for b in budgets:
        for r in prefs:
            found = model.search(hw, b, dict(zip(tasks, r)))
            executed.append(found.flops / 1e9)
            asked.append(found.budget_flops / 1e9)
    ctrl = budget_control(executed, asked)
    ctrl.update(budgets=budgets, min_share=cheapest / top,
                max_gflops=top / 1e9)
    # The predictions' metainfo: the searched configuration's GFLOPs.
    checked = 0
    inputs = val_batch['inputs'][:1]
    for b in budgets:
        pref = dict(zip(tasks, prefs[checked % NUM_PREFS]))
        with torch.no_grad(), model.runtime(budget=b, preference=pref):
            meta = model.predict(inputs)[0].metainfo
        found = model.search(hw, b, pref)
        assert abs(meta['gflops'] - found.flops / 1e9) < 1e-9
        assert meta['gflops'] <= meta['controllable']['budget_gflops']
        checked += 1
    ctrl['metainfo_checked'] = checked
    # Latency next to GFLOPs, uniform preference, batch 1.
    lat_budgets = sorted({lo} | {b for b in (0.5, 0.75, 1.0) if b > lo})
    steps = min(8, len(val_batch['inputs']))
    fns, configs = {}, {}
    for b in lat_budgets:
        found = model.search(hw, b, None)
        configs[b] = found

        def fn(step, found=found):
            subnet = dict(encoder=found.encoder, decoders=found.decoders)
            with torch.no_grad(), model.runtime(budget=None, preference=None,
                                                subnet=subnet):
                model.encode_decode(val_batch['inputs'][step:step + 1],
                                    None)
        fns[b] = fn
    times = alternate_timings(fns, repeats=5, warmup=1, steps=steps,
                              desc='latency')
    for b in lat_budgets:
        ms = 1e3 * float(np.median(times[b])) / steps
        rows.append(dict(budget=b, gflops=configs[b].flops / 1e9,
                         share=configs[b].flops / top, latency_ms=ms,
                         encoder=[list(s) for s in configs[b].encoder],
                         decoders=configs[b].decoders))
    full_ms = rows[-1]['latency_ms']
    for r in rows:
        r['latency_ratio'] = r['latency_ms'] / full_ms
    return ctrl, rows


def task_control_figures(model, grid):
    """Spearman per task, uniformity and hypervolume per budget."""
    import numpy as np

    from mmadamtl.apis import config_metrics
    from mmadamtl.evaluation import (hypervolume, simplex_samples, spearman,
                                     uniformity)
    from mmadamtl.evaluation.metrics.multi_task_metric import relative_gain

    hw = tuple(grid['img_size'])
    tasks = model.tasks
    prefs = simplex_samples(NUM_PREFS, len(tasks), seed=0)
    widest = config_metrics(grid, model.backbone.max_config,
                            dict.fromkeys(tasks, 1.0))
    all_losses = np.array([[v for row in grid['losses'][t] for v in row]
                           for t in tasks])
    reference = (1.1 * all_losses.max(axis=1)).tolist()
    out = dict(reference_point=dict(zip(tasks, reference)), budgets={})
    for b in TASK_BUDGETS:
        scores = {t: [] for t in tasks}
        losses, unif = [], []
        for r in prefs:
            pref = dict(zip(tasks, r))
            found = model.search(hw, b, pref)
            m = config_metrics(grid, found.encoder, found.decoders)
            loss = config_metrics(grid, found.encoder, found.decoders,
                                  'losses')
            for t in tasks:
                scores[t].append(relative_gain(t, m[t], widest[t]))
            vec = [loss[t] for t in tasks]
            losses.append(vec)
            unif.append(uniformity(r, vec))
        rho = {t: spearman(prefs[:, i], scores[t])
               for i, t in enumerate(tasks)}
        out['budgets'][b] = dict(
            spearman=rho, spearman_mean=float(np.mean(list(rho.values()))),
            uniformity=float(np.mean(unif)),
            hypervolume=hypervolume(losses, reference))
    return out


def accuracy_rows(model, grid, static_metrics):
    """Δm vs the static model of named configurations."""
    from mmadamtl.apis import main_metrics
    from mmadamtl.evaluation.metrics.multi_task_metric import delta_m
    from mmadamtl.utils import TASKS

    hw = tuple(grid['img_size'])
    tasks = model.tasks
    base = {t: static_metrics[TASKS[t].main_key] for t in TASK_COLUMNS}
    named = [('widest', 'max', dict.fromkeys(tasks, model.widths[-1])),
             ('narrowest', 'min', dict.fromkeys(tasks, model.widths[0]))]
    rows = []
    for name, enc, decs in named:
        rows.append(dict(name=name, encoder=enc, decoders=decs))
    for b in (0.75, 0.5, 0.4):
        try:
            found = model.search(hw, b, None)
        except ValueError:  # below the cheapest configuration
            continue
        rows.append(dict(name=f'uniform preference, budget {b}',
                         encoder=found.encoder, decoders=found.decoders))
    for r in rows:
        enc = model.backbone.check_config(r['encoder'])
        r['encoder'] = [list(s) for s in enc]
        r['metrics'] = main_metrics(grid, enc, r['decoders'])
        r['gflops'] = model.subnet_flops(hw, enc, r['decoders']) / 1e9
        r['delta_m'] = delta_m(r['metrics'], base)
    return rows


def pareto_plot(model, grid, static_metrics, adamtl, path,
                static_benchmark=None):
    """GFLOPs vs Δm (against the static model) of the controllable model's
    budget sweep (uniform preference) and AdaMTL's rows. Each is compared
    with the static model evaluated by its own edge protocol: the sweep
    (the grid's approximation) with ``static_metrics``, AdaMTL's rows (the
    benchmark) with ``static_benchmark``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    from mmadamtl.apis import main_metrics
    from mmadamtl.evaluation.metrics.multi_task_metric import delta_m
    from mmadamtl.utils import TASKS

    hw = tuple(grid['img_size'])
    base = {t: static_metrics[TASKS[t].main_key] for t in TASK_COLUMNS}
    bench = static_benchmark or static_metrics
    base_adamtl = {t: bench[TASKS[t].main_key] for t in TASK_COLUMNS}
    sweep = []
    for b in np.round(np.linspace(0.35, 1.0, 14), 3):
        try:
            found = model.search(hw, float(b), None)
        except ValueError:
            continue
        m = main_metrics(grid, found.encoder, found.decoders)
        sweep.append((found.flops / 1e9, delta_m(m, base), float(b)))
    points = dict(controllable=sweep)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p[0] for p in sweep], [p[1] for p in sweep], 'o-',
            label='controllable widths (one model, budget sweep)')
    for r in adamtl:
        if r['mode'] in ('target', 'cap', '-') and 'metrics' in r:
            d = delta_m(r['metrics'], base_adamtl)
            g = r['metrics']['gflops']
            label = r['model'] if r['mode'] == '-' else \
                f"AdaMTL {r['mode']} {r['requested']} (1400 it)"
            points.setdefault('others', []).append((g, d, label))
            ax.plot([g], [d], 's' if r['mode'] == '-' else '^',
                    label=label)
    ax.plot([static_metrics['gflops']], [0.0], 'k*',
            label='static (800 it), the reference')
    ax.axhline(0, color='grey', lw=0.5)
    ax.set_xlabel('executed GFLOPs per image (128x128)')
    ax.set_ylabel('Δm vs static multi-task model (%)')
    ax.legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, path, dpi=120, overwrite=True)
    plt.close(fig)
    return points


def render(res, scale=1.0, data_root='data/synthetic') -> str:
    from mmadamtl.utils import TASKS
    bc = res['budget_control']
    banner = [quick_banner(scale, data_root).strip(), ''] \
        if scale != 1 else []
    lines = [
        '# Controllable widths on the synthetic dataset (one model, CPU, '
        f'{os.cpu_count()} cores)', '', *banner,
        '## Budget control', '',
        f"{bc['requests']} requests: {len(bc['budgets'])} budgets from "
        f"{bc['budgets'][0]} (the cheapest configuration is "
        f"{bc['min_share']:.3f} of the widest model's "
        f"{bc['max_gflops']:.4f} GFLOPs) to 1.0, x {NUM_PREFS} preferences "
        'sampled uniformly from the simplex.', '',
        '| within budget | mean abs(executed - budget) / budget | '
        'metainfo checked |', '| --- | --- | --- |',
        f"| {100 * bc['within']:.1f}% | {bc['mean_rel_gap']:.4f} | "
        f"{bc['metainfo_checked']} predictions |", '',
        '| budget (uniform preference) | executed GFLOPs | share of widest '
        '| CPU latency (ms, batch 1) | latency share | encoder (heads, mlp '
        'ratio) | decoder widths |', '|' + ' --- |' * 7]
    for r in res['latency']:
        enc = r['encoder']
        enc_s = (f'{enc[0]}' if all(s == enc[0] for s in enc) else
                 str(enc))
        decs = sorted(set(r['decoders'].values()))
        lines.append(
            f"| {r['budget']:.2f} | {r['gflops']:.4f} | {r['share']:.3f} | "
            f"{r['latency_ms']:.1f} | {r['latency_ratio']:.3f} | {enc_s} | "
            f"{decs} |")
    tc = res['task_control']
    tasks = list(tc['reference_point'])
    lines += ['', '## Task control', '',
              f'{NUM_PREFS} preferences sampled uniformly from the simplex '
              "(seed 0); scores on the validation set; hypervolume of the "
              "weighted validation losses against the reference point "
              "1.1 x each task's largest loss in the grid.", '',
              '| budget | ' + ' | '.join(f'ρ {t}' for t in tasks) +
              ' | mean ρ | uniformity | hypervolume |',
              '|' + ' --- |' * (len(tasks) + 4)]
    for b, v in tc['budgets'].items():
        lines.append(f'| {b} | ' + ' | '.join(
            f"{v['spearman'][t]:+.2f}" for t in tasks) +
            f" | {v['spearman_mean']:+.2f} | {v['uniformity']:.4f} | "
            f"{v['hypervolume']:.4g} |")
    specs = [TASKS[t] for t in TASK_COLUMNS]
    lines += ['', '## Accuracy', '',
              'Δm against the static multi-task model '
              '(configs/static_swin_synthetic.py: the same 800 iterations, '
              'data and schedule; each controllable iteration trains 4 '
              'sub-networks, so about 4x its training compute).', '',
              '| configuration | ' + ' | '.join(s.label for s in specs) +
              ' | Δm (%) | GFLOPs |', '|' + ' --- |' * (len(specs) + 3)]
    for r in res['accuracy']:
        lines.append(f"| {r['name']} | " + ' | '.join(
            f"{r['metrics'][s.main_key]:.2f}" for s in specs) +
            f" | {r['delta_m']:+.2f} | {r['gflops']:.4f} |")
    st = res['static']
    lines.append('| static multi-task model (800 it) | ' + ' | '.join(
        f'{st[s.main_key]:.2f}' for s in specs) +
        f" | 0 | {st['gflops']:.4f} |")
    tt = res['test_tool_check']
    lines += ['', f"tools/test.py on the request budget {tt['budget']}, "
              f"uniform preference: {tt['gflops']:.4f} GFLOPs, max "
              'difference of its main metrics from the grid: '
              f"{tt['max_abs_diff']:.2e}.", '']
    return '\n'.join(lines)


def report(work_dir, data_root, retrain, scale=1.0) -> str:
    from mmadamtl.apis import collate_batches, main_metrics
    from mmadamtl.utils import TASKS

    model, ckpt, table_path, grid, train_s, data_opt = measure(
        work_dir, data_root, retrain, scale)
    # The static multi-task model of the same 800 iterations (AdaMTL's
    # part trains it as its stage 1).
    static_ckpt = train(STATIC, osp.join(work_dir, 'static'), data_opt[:3],
                        retrain, scale=scale)
    # Evaluated as the controllable config evaluates (its edge protocol).
    static_path = osp.join(work_dir, 'static_800it_distance_metrics.json')
    if retrain or not osp.isfile(static_path):
        evaluate(STATIC, static_ckpt, osp.join(work_dir, 'eval'),
                 static_path, data_opt[:3],
                 {'test_evaluator.edge_protocol': 'distance',
                  'test_evaluator.edge_thresholds': 25})
    with open(static_path, encoding='utf-8') as f:
        static = json.load(f)
    from mmadamtl.apis import build_test_dataset
    from mmengine.config import Config
    val = build_test_dataset(Config.fromfile(osp.join(ROOT, CONTROLLABLE)),
                             data_root)
    batch = model.data_preprocessor(collate_batches(val, 8, 8)[0], False)
    budget, lat = budget_control_figures(model, grid, batch)
    tasks = task_control_figures(model, grid)
    acc = accuracy_rows(model, grid, static)
    # One request as users run it: tools/test.py with test_cfg.
    out = osp.join(work_dir, 'controllable_b0.5_metrics.json')
    metrics = evaluate(CONTROLLABLE, ckpt, osp.join(work_dir, 'eval'), out,
                       data_opt[:3], {'model.test_cfg.lookup_table':
                                      table_path,
                                      'model.test_cfg.budget': 0.5})
    found = model.search(tuple(grid['img_size']), 0.5, None)
    grid_m = main_metrics(grid, found.encoder, found.decoders)
    check = dict(budget=0.5, gflops=metrics['gflops'],
                 max_abs_diff=max(abs(metrics[k] - v)
                                  for k, v in grid_m.items()))
    results_path = osp.join(work_dir, 'results.json')
    adamtl = []
    if osp.isfile(results_path):
        with open(results_path, encoding='utf-8') as f:
            adamtl = json.load(f)['results']
    # The same static model under the edge benchmark, for AdaMTL's rows.
    bench_path = osp.join(work_dir, 'static_800it_metrics.json')
    static_bench = evaluate(STATIC, static_ckpt, osp.join(work_dir, 'eval'),
                            bench_path, data_opt[:3], {})
    points = pareto_plot(model, grid, static, adamtl,
                         osp.join(work_dir, 'controllable_pareto.png'),
                         static_benchmark=static_bench)
    res = dict(train_seconds=train_s, checkpoint=ckpt, table=table_path,
               budget_control=budget, latency=lat, task_control=tasks,
               accuracy=acc, static={k: static[k] for k in
                                     [TASKS[t].main_key
                                      for t in TASK_COLUMNS] + ['gflops']},
               test_tool_check=check, pareto=points)
    res['schedule_scale'] = scale
    text = render(res, scale, data_root)
    write_text(osp.join(work_dir, 'controllable_results.md'), text,
               overwrite=True)
    write_json(osp.join(work_dir, 'controllable_results.json'), res,
               overwrite=True)
    print(f'\n{text}')
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_demo_args(parser)
    args = parser.parse_args(argv)
    demo_paths(args)
    work_dir = osp.join(ROOT, args.work_dir)
    ensure_synthetic_data(args.data_root)
    report(work_dir, args.data_root, args.retrain, args.schedule_scale)


if __name__ == '__main__':
    os.environ.setdefault('PYTHONUNBUFFERED', '1')
    main()
