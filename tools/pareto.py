"""The accuracy-cost Pareto figure of `make demo`: every method against
the static models a user would otherwise train, on the synthetic data.

    python tools/pareto.py [--seeds N] [--quick] [--work-dir DIR]
                           [--figure PATH [--overwrite]] [--retrain]
                           [--budgets 0.25 0.5 0.75]
                           [--controllable-budgets 0.5 0.75 1.0]
                           [--mtlora-rank 8] [--skip-controllable]
                           [--recalibrate-bn N]
                           [--family 1-1-2-1 1-1-1-1 embed32]
                           [--adamtl-recipes main long-joint batch-budget
                                             shared-tokens]
                           [--controllable-recipes main uniform-decoders
                                                   predict-distill]

1. train (or reuse) for each seed 0..N-1: the static family, each member
   trained as long as AdaMTL's three stages together (1400 iterations):
   depths 2-2-2-2 (configs/static_swin_synthetic_1400it.py, the fair
   baseline), 1-1-2-1 and 1-1-1-1 (configs/static_family/,
   configs/static_swin_synthetic_small.py) and 2-2-2-2 with embedding 32
   instead of 48 (--family picks which of the last three); AdaMTL's
   three stages (each of --adamtl-recipes: main, 800 / 100 / 500
   iterations; long-joint, 400 / 100 / 900; batch-budget, the main
   recipe's stages 1-2 and stage 3 with the budget held on the batch's
   mean; shared-tokens, the main recipe's stage 1 and stages 2-3 with
   one token selector per stage); the controllable
   super-network of each of --controllable-recipes (main, the demo's;
   uniform-decoders and predict-distill, the ablations of
   configs/ablations/) and its lookup table (tools/controllable.py
   table);
2. evaluate with tools/test.py (one metric, the edge benchmark, for
   every row): the static family, each recipe's AdaMTL at each of
   --budgets (``budget_mode='target'``), the controllable model's searched
   sub-network at each of --controllable-budgets (uniform preference;
   with --recalibrate-bn N, each also with its BatchNorm statistics
   re-estimated on N training images: tools/test.py --recalibrate-bn)
   and MTLoRA at --mtlora-rank (seed 0 only: the MTLoRA part of the demo,
   when it ran);
3. time every model on the validation images (batch 1, CPU, alternately
   image by image, median ms per image);
4. Δm of every model against the fair static model's metrics averaged
   over the seeds, then per row the mean over seeds and the sample
   standard deviation of Δm; mark the rows no other row beats in
   accuracy at lower cost (encoder GFLOPs, latency);
5. save the table (pareto_results.md, pareto_results.json: one row per
   model with ``method``, ``budget``, ``encoder_gflops``, ``gflops``,
   ``delta_m``, ``delta_m_std``, ``seeds``, ``latency_ms``; the per-seed
   rows too; the rows also as ``pareto`` in the demo's results.json
   where there is one) and the figure (Δm against executed encoder GFLOPs and
   against latency, error bars one standard deviation over the seeds) in
   the work dir.

Seed 0 is the configs' own seed: its trainings are the demo's
(work_dirs/demo, or work_dirs/demo_quick with --quick), reused (the
recipes the demo does not train train there: long-joint in
long_joint_static, long_joint_policy and long_joint, batch-budget in
batch_budget, shared-tokens in shared_tokens_policy and shared_tokens,
the controllable ablations in controllable_uniform_decoders and
controllable_predict_distill); seed s
trains each next to seed 0's run, with ``randomness.seed=s``
(work_dirs/demo/static_1400it_seed1 next to work_dirs/demo/static_1400it).
Finished trainings and evaluations newer than their checkpoint are
reused unless --retrain is given.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

from demo_common import (ADAMTL_RECIPES, CONTROLLABLE, MTLORA, ONE_SEED_NOTE,
                         QUICK_SCALE, ROOT, STATIC, STATIC_FAIR, STATIC_SMALL,
                         TASK_COLUMNS, add_demo_args, data_options,
                         demo_paths, ensure_synthetic_data, evaluate,
                         finished, fmt, load_model, objects_corr,
                         quick_banner, run, seed_dir, seed_options,
                         time_models, train, train_adamtl)

from mmadamtl.utils.cli import non_negative_int, positive_int

# The static family: (method, config, work dir and metrics tag of seed 0,
# its --family name); the first is the fair baseline Δm is measured
# against, always trained. The first and third are the demo's own
# references.
FAMILY = [
    ('static 2-2-2-2', STATIC_FAIR, 'static_1400it', 'static', '2-2-2-2'),
    ('static 1-1-2-1', 'configs/static_family/'
     'static_swin_synthetic_1400it_depths1121.py', 'static_depths1121',
     'static_depths1121', '1-1-2-1'),
    ('static 1-1-1-1', STATIC_SMALL, 'static_small', 'static_small',
     '1-1-1-1'),
    ('static 2-2-2-2, embed 32', 'configs/static_family/'
     'static_swin_synthetic_1400it_embed32.py', 'static_embed32',
     'static_embed32', 'embed32'),
]
SMALLER = [m[4] for m in FAMILY[1:]]
# The controllable rows with their sub-network's BatchNorm statistics
# re-estimated (--recalibrate-bn): the plain row's method and this suffix.
RECALIBRATED_SUFFIX = ', BN recalibrated'
RECALIBRATED = 'controllable' + RECALIBRATED_SUFFIX
# The controllable recipes: method (and family), config, work dir name of
# seed 0 and metrics tag prefix (the main recipe's: the demo's own).
CONTROLLABLE_RECIPES = {
    'main': ('controllable', CONTROLLABLE, 'controllable'),
    'uniform-decoders': (
        'controllable, uniform decoder widths',
        'configs/ablations/controllable_swin_synthetic_uniform_decoders.py',
        'controllable_uniform_decoders'),
    'predict-distill': (
        'controllable, prediction distillation',
        'configs/ablations/controllable_swin_synthetic_predict_distill.py',
        'controllable_predict_distill'),
}
# AdaMTL's rows per recipe (demo_common.ADAMTL_RECIPES): method and family,
# and the metrics tag of seed 0 (the main recipe's: the demo's own).
ADAMTL_ROWS = {'main': ('AdaMTL', 'AdaMTL'),
               'long-joint': ('AdaMTL, long joint stage',
                              'AdaMTL_long_joint'),
               'batch-budget': ('AdaMTL, batch-mean budget',
                                'AdaMTL_batch_budget'),
               'shared-tokens': ('AdaMTL, shared token selectors',
                                 'AdaMTL_shared_tokens')}
# What each recipe other than the main one changes, for the table's note.
ADAMTL_NOTES = {
    'long-joint': 'its long joint stage 400 + 100 + 900',
    'batch-budget': 'its batch-mean budget recipe the same (the joint stage '
    'holding one budget per batch on the batch\'s mean)',
    'shared-tokens': 'its shared token selectors recipe the same (policy '
    'and joint stages with one token selector per stage)'}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_demo_args(parser)
    parser.add_argument('--quick', action='store_true',
                        help=f'the quick run\'s trainings (`make demo`): '
                        f'--schedule-scale {QUICK_SCALE:g}')
    parser.add_argument('--seeds', type=positive_int, default=1,
                        help='training seeds 0..N-1 (seed 0: the demo\'s '
                        'trainings); default 1')
    parser.add_argument('--figure', help='default: pareto.png in the work '
                        'dir (written anew on every run)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing --figure')
    parser.add_argument('--budgets', type=float, nargs='+',
                        default=[0.25, 0.5, 0.75],
                        help='AdaMTL\'s budgets (budget_mode target)')
    parser.add_argument('--controllable-budgets', type=float, nargs='+',
                        default=[0.5, 0.75, 1.0],
                        help='budgets of the controllable model\'s searched '
                        'sub-networks (uniform preference)')
    parser.add_argument('--mtlora-rank', type=int, default=8,
                        help='the MTLoRA row: the demo\'s run of this rank')
    parser.add_argument('--skip-controllable', action='store_true',
                        help='leave out the controllable rows')
    parser.add_argument('--recalibrate-bn', type=non_negative_int, default=0,
                        metavar='N',
                        help='each controllable row also with its '
                        'sub-network\'s BatchNorm statistics re-estimated on '
                        'N training images (tools/test.py --recalibrate-bn; '
                        'timed as the same sub-network); default 0: off')
    parser.add_argument('--adamtl-recipes', nargs='+',
                        choices=list(ADAMTL_RECIPES), default=['main'],
                        help='AdaMTL\'s recipes, each trained and evaluated '
                        'at every --budgets: main (800 static / 100 policy '
                        '/ 500 joint iterations, the demo\'s), long-joint '
                        '(400 / 100 / 900), batch-budget (the main '
                        'recipe\'s stages 1-2, stage 3 on the batch\'s '
                        'mean budget), shared-tokens (stages 2-3 with one '
                        'token selector per stage); default main')
    parser.add_argument('--controllable-recipes', nargs='+',
                        choices=list(CONTROLLABLE_RECIPES), default=['main'],
                        help='the controllable super-networks, each trained '
                        'with its lookup table and evaluated at every '
                        '--controllable-budgets: main (the demo\'s), '
                        'uniform-decoders, predict-distill (the ablation '
                        'configs); default main')
    parser.add_argument('--family', nargs='+', choices=SMALLER,
                        default=SMALLER,
                        help='the smaller static models trained beside the '
                        'fair 2-2-2-2 one (always trained: Δm\'s '
                        'reference); default all')
    args = parser.parse_args(argv)
    for option in ('adamtl_recipes', 'controllable_recipes'):
        names = getattr(args, option)
        twice = sorted({r for r in names if names.count(r) > 1})
        if twice:
            parser.error(f'--{option.replace("_", "-")} names '
                         f'{", ".join(twice)} more than once')
    if args.recalibrate_bn and args.skip_controllable:
        parser.error('--recalibrate-bn adds controllable rows, which '
                     '--skip-controllable leaves out')
    for name in ('budgets', 'controllable_budgets'):
        bad = [b for b in getattr(args, name) if not 0 < b <= 1]
        if bad:
            parser.error(f"--{name.replace('_', '-')}: budgets are shares "
                         f'of the full model in (0, 1], got {bad}')
    if args.quick:
        if args.schedule_scale not in (1.0, QUICK_SCALE):
            parser.error(f'--quick is --schedule-scale {QUICK_SCALE:g}; '
                         f'give one of the two, not --schedule-scale '
                         f'{args.schedule_scale:g}')
        args.schedule_scale = QUICK_SCALE
    demo_paths(args)
    return args


def specs(work_dir, data_root, seed, retrain, scale, budgets,
          controllable_budgets, mtlora_rank, skip_controllable=False,
          family=None, recalibrate_bn=0, adamtl_recipes=('main',),
          controllable_recipes=('main',)):
    """Train (or reuse) seed ``seed``'s models; returns one spec per row:
    ``method``, ``family``, ``budget``, ``seed``, ``config``, ``ckpt``,
    ``opts`` (the evaluation's config options), ``args`` (further
    tools/test.py arguments), ``metrics_path`` (its tools/test.py
    metrics) and, for a row timed as another one, ``timed_as`` (that
    spec). ``family``: the --family names of the smaller static models to
    train beside the fair one (None: all); ``recalibrate_bn``: N > 0 adds
    each controllable row with its BatchNorm statistics re-estimated on N
    training images; ``adamtl_recipes``: AdaMTL's recipes to train and
    evaluate (see ``ADAMTL_ROWS``); ``controllable_recipes``: likewise the
    controllable super-networks (see ``CONTROLLABLE_RECIPES``)."""
    data_opt = data_options(data_root)

    def metrics_path(tag):
        return seed_dir(osp.join(work_dir, tag), seed) + '_metrics.json'

    out = []
    for method, config, run_dir, tag, name in FAMILY:
        if name in SMALLER and family is not None and name not in family:
            continue
        ckpt = train(config, seed_dir(osp.join(work_dir, run_dir), seed),
                     data_opt, retrain, options=seed_options(seed),
                     scale=scale)
        out.append(dict(method=method, family='static', budget=None,
                        config=config, ckpt=ckpt, opts={},
                        metrics_path=metrics_path(tag)))
    stages = {}  # the stages recipes share train once (--retrain too)
    for recipe in adamtl_recipes:
        method, tag = ADAMTL_ROWS[recipe]
        adamtl = train_adamtl(work_dir, data_opt, retrain, scale, seed,
                              recipe, trained=stages)['adamtl']
        for b in budgets:
            out.append(dict(
                method=method, family=method, budget=b,
                config=ADAMTL_RECIPES[recipe][-1][0], ckpt=adamtl,
                opts={'model.test_cfg.budget': b,
                      'model.test_cfg.budget_mode': 'target'},
                metrics_path=metrics_path(f'{tag}_target_b{b:g}')))
    lookup = f'lookup_dataloader.dataset.data_root={data_root}'
    for recipe in () if skip_controllable else controllable_recipes:
        method, config, name = CONTROLLABLE_RECIPES[recipe]
        ckpt = train(config, seed_dir(osp.join(work_dir, name), seed),
                     data_opt, retrain,
                     options=[lookup, *seed_options(seed)], scale=scale)
        table = osp.join(osp.dirname(ckpt), 'lookup_table.json')
        if retrain or not osp.isfile(table) or \
                osp.getmtime(table) < osp.getmtime(ckpt):
            run([sys.executable, 'tools/controllable.py', 'table',
                 config, ckpt, '--overwrite', '--cfg-options', lookup])
        for b in controllable_budgets:
            # The edge benchmark, as every other row (the controllable
            # config's own evaluator approximates edges).
            plain = dict(
                method=method, family=method, budget=b,
                config=config, ckpt=ckpt,
                opts={'model.test_cfg.lookup_table': table,
                      'model.test_cfg.budget': b,
                      'test_evaluator.edge_protocol': 'bsds'},
                metrics_path=metrics_path(f'{name}_bsds_b{b:g}'))
            out.append(plain)
            if recalibrate_bn:
                # The same sub-network, so the same time: timed once.
                recal = method + RECALIBRATED_SUFFIX
                out.append(dict(
                    plain, method=recal, family=recal,
                    args=['--recalibrate-bn', str(recalibrate_bn)],
                    timed_as=plain, metrics_path=metrics_path(
                        f'{name}_bsds_bn{recalibrate_bn}_b{b:g}')))
    run_dir = osp.join(work_dir, f'mtlora_r{mtlora_rank}')
    opts = {'model.backbone.lora.r': mtlora_rank}
    ckpt = finished(MTLORA, run_dir, [f'{k}={v}' for k, v in opts.items()],
                    scale) if seed == 0 else None
    if ckpt:
        out.append(dict(
            method=f'MTLoRA r={mtlora_rank}', family='MTLoRA', budget=None,
            config=MTLORA, ckpt=ckpt, opts=opts,
            metrics_path=metrics_path(f'mtlora_r{mtlora_rank}')))
    elif seed == 0:
        print(f'[pareto] no finished MTLoRA r={mtlora_rank} run in '
              f'{run_dir}: its row is left out (tools/demo_mtlora.py '
              f'trains it)')
    for s in out:
        s['seed'] = seed
    return out


def seed_rows(evaluated, latency_ms, objects_r=None):
    """One row per model and seed: Δm against the fair static model's
    main metrics averaged over its seeds (the first static method).

    Args:
        evaluated: Specs (see ``specs``) with ``metrics`` the dict of
            their evaluation.
        latency_ms: Median ms per image of each spec, in order.
        objects_r: Per spec, in order, the correlation of its images'
            executed encoder GFLOPs with their object counts (None: a
            static model); None: not measured.

    Returns:
        tuple[list[dict], dict]: The rows (``method``, ``family``,
        ``budget``, ``seed``, ``config``, ``checkpoint``, the costs, Δm,
        latency and the main metrics) and the reference (task -> main
        metric).
    """
    import numpy as np

    from mmadamtl.evaluation.metrics.multi_task_metric import delta_m
    from mmadamtl.utils import TASKS

    fair = [e['metrics'] for e in evaluated if e['method'] == FAMILY[0][0]]
    if not fair:
        raise ValueError(f'no {FAMILY[0][0]} row: Δm has no reference')
    reference = {t: float(np.mean([m[TASKS[t].main_key] for m in fair]))
                 for t in TASK_COLUMNS}
    rows = []
    if objects_r is None:
        objects_r = [None] * len(evaluated)
    for e, ms, r in zip(evaluated, latency_ms, objects_r):
        m = e['metrics']
        rows.append(dict(
            method=e['method'], family=e['family'], budget=e['budget'],
            seed=e['seed'], config=e['config'],
            checkpoint=osp.relpath(e['ckpt'], ROOT),
            encoder_gflops=m['encoder_gflops'], gflops=m['gflops'],
            delta_m=delta_m(m, reference), latency_ms=ms,
            gflops_objects_corr=r,
            metrics={TASKS[t].main_key: m[TASKS[t].main_key]
                     for t in TASK_COLUMNS}))
    return rows, reference


def table_rows(per_seed):
    """The table's rows: the per-seed rows (see ``seed_rows``) averaged
    over the seeds, each marked on or off the fronts of Δm against encoder
    GFLOPs and against latency."""
    import numpy as np

    from mmadamtl.evaluation import aggregate_seeds, mark_fronts
    rows = mark_fronts(aggregate_seeds(
        [{k: v for k, v in r.items() if k not in ('metrics', 'checkpoint')}
         for r in per_seed]))
    # The correlation with object count: the mean over the seeds where
    # every seed measured one (an adaptive model), else None.
    for row in rows:
        rs = [r.get('gflops_objects_corr') for r in per_seed
              if (r['method'], r['budget']) == (row['method'],
                                                row['budget'])]
        row['gflops_objects_corr'] = float(np.mean(rs)) \
            if rs and None not in rs else None
    return rows


def render(rows, seeds, scale=1.0, data_root='data/synthetic') -> str:
    """The Markdown table of the aggregated rows."""
    n = len(seeds)
    head = ['method', 'budget', 'seeds', 'encoder GFLOPs', 'GFLOPs',
            'Δm vs static 2-2-2-2 (%)', 'CPU latency (ms/img)',
            'r (GFLOPs, objects)', 'Pareto (GFLOPs / latency)']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for r in rows:
        dm = f"{r['delta_m']:+.2f}" + (
            f" ± {r['delta_m_std']:.2f}" if r['delta_m_std'] is not None
            else '')
        front = '/'.join('yes' if r[k] else 'no' for k in (
            'pareto_encoder_gflops', 'pareto_latency_ms'))
        lines.append('| ' + ' | '.join([
            r['method'], fmt(r['budget'], '{:g}'), str(len(r['seeds'])),
            f"{r['encoder_gflops']:.4f}", f"{r['gflops']:.4f}", dm,
            f"{r['latency_ms']:.2f}",
            fmt(r.get('gflops_objects_corr'), '{:+.2f}'), front]) + ' |')
    spread = ONE_SEED_NOTE if n == 1 else (
        f'mean ± sample standard deviation over seeds '
        f'{", ".join(map(str, seeds))}')
    notes = (
        f'Seeds: {spread}. Every static model and AdaMTL trained 1400 '
        'iterations in all (AdaMTL: 800 static + 100 policy + 500 joint'
        + ''.join(f', {note}' for recipe, note in ADAMTL_NOTES.items()
                  if any(r['family'] == ADAMTL_ROWS[recipe][0]
                         for r in rows)) + '; '
        'the controllable super-network 800, each iteration training 4 '
        'sub-networks; MTLoRA 400 from an 800-iteration semseg-pretrained '
        'encoder, seed 0 only). Δm against the static 2-2-2-2 model '
        '(its main metrics averaged over the seeds), every model evaluated '
        'by tools/test.py with the same metric (edges: the BSDS benchmark, '
        '25 thresholds). Encoder GFLOPs and GFLOPs: mean executed per '
        'image. Latency: median per image at batch 1 (`model.predict`), '
        'all models timed alternately image by image in one process '
        f'({os.cpu_count()} cores; compare within the table). r: the '
        'correlation of each image\'s executed encoder GFLOPs with its '
        'number of objects, mean over the seeds (- where every image '
        'costs the same). Pareto: no other row has at least its Δm at no '
        'more cost.')
    if any(r['family'].endswith(RECALIBRATED_SUFFIX) for r in rows):
        notes += (f' Rows "...{RECALIBRATED_SUFFIX}": the controllable '
                  'row of the same recipe and budget with its '
                  'sub-network\'s BatchNorm statistics re-estimated on '
                  'training images (tools/test.py --recalibrate-bn), the '
                  'same sub-network and so timed as that row, not again; '
                  'the fronts count both, so of each pair the one with the '
                  'lower Δm is off them.')
    title = ('Accuracy against cost on the synthetic dataset: the static '
             'family, AdaMTL, controllable widths and MTLoRA')
    return (f'# {title}\n\n{quick_banner(scale, data_root)}'
            + '\n'.join(lines) + f'\n\n{notes}\n')


def plot(rows, path, seeds, overwrite=True) -> None:
    """Two panels, Δm against encoder GFLOPs and against latency; error
    bars one standard deviation over the seeds; the static family drawn
    as a line."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mmadamtl.utils.safe_io import save_figure

    styles = dict(static=('k', 'o', '-'), AdaMTL=('C0', '^', '--'),
                  **{ADAMTL_ROWS['long-joint'][0]: ('C4', 'v', '--'),
                     ADAMTL_ROWS['batch-budget'][0]: ('navy', '<', '--'),
                     ADAMTL_ROWS['shared-tokens'][0]: ('teal', '>', '--')},
                  controllable=('C1', 's', ':'),
                  **{RECALIBRATED: ('C3', 's', '-.')},
                  MTLoRA=('C2', 'D', ''))
    # The controllable ablations: a colour of their own each, plain and
    # recalibrated (C7, grey, is left to the zero line's neighbourhood).
    ablations = [m for m, _, _ in CONTROLLABLE_RECIPES.values()
                 if m != 'controllable']
    for i, method in enumerate(ablations):
        styles[method] = (f'C{5 + i}', 's', ':')
        styles[method + RECALIBRATED_SUFFIX] = (f'C{8 + i}', 's', '-.')
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, cost, label in zip(
            axes, ('encoder_gflops', 'latency_ms'),
            ('executed encoder GFLOPs per image (128x128)',
             'CPU latency (ms per image, batch 1)')):
        for family, (color, marker, line) in styles.items():
            pts = sorted(((r[cost], r['delta_m'], r['delta_m_std'] or 0.0,
                           r) for r in rows if r['family'] == family),
                         key=lambda p: p[0])
            if not pts:
                continue
            name = pts[0][3]['method'] if family == 'MTLoRA' else family
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts],
                        yerr=[p[2] for p in pts], color=color, marker=marker,
                        linestyle=line or 'none', capsize=3, label=name)
            for x, y, _, r in pts:
                tag = r['method'].replace('static ', '') \
                    if family == 'static' else fmt(r['budget'], '{:g}')
                if tag != '-':
                    ax.annotate(tag, (x, y), fontsize=6,
                                xytext=(3, 3), textcoords='offset points')
        ax.axhline(0, color='grey', lw=0.5)
        ax.set_xlabel(label)
    axes[0].set_ylabel('Δm vs static 2-2-2-2 (%)')
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"mean ± std over seeds {', '.join(map(str, seeds))}"
        if len(seeds) > 1 else f'seed {seeds[0]} ({ONE_SEED_NOTE})',
        fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120, overwrite=overwrite)
    plt.close(fig)


def add_to_demo_results(work_dir: str, res: dict) -> None:
    """The rows (``method``, ``budget``, ``encoder_gflops``, ``gflops``,
    ``delta_m``, ``latency_ms``, ``delta_m_std``, ``seeds``, ...) also go
    into the demo's results.json of the work dir, as ``pareto`` beside its
    AdaMTL table, where the demo wrote one (both are the demo's own
    outputs, rewritten on every run)."""
    from mmadamtl.utils.safe_io import write_json
    path = osp.join(work_dir, 'results.json')
    if not osp.isfile(path):
        return
    with open(path, encoding='utf-8') as f:
        demo = json.load(f)
    demo['pareto'] = {k: res[k] for k in ('seeds', 'note', 'figure',
                                          'rows')}
    write_json(path, demo, overwrite=True)


def report(args) -> dict:
    """Train, evaluate, time, aggregate; save the table and the figure;
    returns the results."""
    from mmadamtl.utils.safe_io import check_output, write_json, write_text

    work_dir = osp.join(ROOT, args.work_dir)
    shown = args.figure or osp.join(args.work_dir, 'pareto.png')
    figure = osp.join(ROOT, shown)
    # A figure path of the user's is replaced only when asked; the work
    # dir's outputs are the tool's own, written anew on every run.
    own = args.figure is None
    check_output(figure, overwrite=own or args.overwrite, what='figure')
    seeds = list(range(args.seeds))
    ensure_synthetic_data(args.data_root)
    start = time.time()
    todo = []
    for seed in seeds:
        todo += specs(work_dir, args.data_root, seed, args.retrain,
                      args.schedule_scale, args.budgets,
                      args.controllable_budgets, args.mtlora_rank,
                      args.skip_controllable, args.family,
                      args.recalibrate_bn, args.adamtl_recipes,
                      args.controllable_recipes)
    train_s = time.time() - start
    data_opt = data_options(args.data_root)
    for e in todo:
        e['metrics'] = evaluate(
            e['config'], e['ckpt'], osp.join(work_dir, 'eval'),
            e['metrics_path'], data_opt, e['opts'], reuse=not args.retrain,
            args=e.get('args', ()))
    # A row timed as another takes that one's measurements.
    index = {id(e): i for i, e in enumerate(todo)}
    timed = [index[id(e['timed_as'])] if 'timed_as' in e else i
             for i, e in enumerate(todo)]
    models = {i: load_model(todo[i]['config'], todo[i]['ckpt'],
                            todo[i]['opts']) for i in sorted(set(timed))}
    timing = time_models(models, STATIC, osp.join(ROOT, args.data_root))
    objects_r = objects_corr(timing, osp.join(ROOT, args.data_root))
    per_seed, reference = seed_rows(
        todo, [timing['latency_ms'][i] for i in timed],
        [objects_r[i] for i in timed])
    rows = table_rows(per_seed)
    text = render(rows, seeds, args.schedule_scale, args.data_root)
    res = dict(schedule_scale=args.schedule_scale, seeds=seeds,
               note=None if len(seeds) > 1 else ONE_SEED_NOTE,
               train_seconds=train_s, reference=reference, rows=rows,
               per_seed=per_seed, figure=shown)
    write_text(osp.join(work_dir, 'pareto_results.md'), text,
               overwrite=True)
    write_json(osp.join(work_dir, 'pareto_results.json'), res,
               overwrite=True)
    add_to_demo_results(work_dir, res)
    plot(rows, figure, seeds, overwrite=own or args.overwrite)
    print(f'\n{text}')
    print(f"saved {osp.join(args.work_dir, 'pareto_results')}.md and .json, "
          f'{shown} ({time.time() - start:.0f}s)')
    return res


def main(argv=None):
    report(parse_args(argv))


if __name__ == '__main__':
    os.environ.setdefault('PYTHONUNBUFFERED', '1')
    main()
